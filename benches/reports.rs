//! A month's report for a 200-agent centre, from the hourly rollups, beside the raw read
//! of the same history in the same run; and the rate of the per-contact CSV export.
//!
//!     cargo bench --bench reports
//!     REPORTS_CONTACTS=100000 cargo bench --bench reports
//!
//! A fresh SQLite database is seeded with `REPORTS_CONTACTS` (1,000,000) contacts spread
//! over 30 days, 200 agents, three channels and tiers, three topics: each received, then
//! abandoned (15%) or answered, sometimes transferred and answered again (10%), completed
//! (95% of those answered) and rated (a third of those); a tenth book a callback. The
//! rows are written straight into the tables in bulk (the history through the store's
//! bulk insert) so seeding takes minutes, not hours. Then the real server starts on it in
//! this process; its leader's rollup counts the whole history (timed: the catch-up rate),
//! and the month's report by day and tier is asked for over HTTP 20 times (median and
//! slowest). The raw figure is what a report without rollups must do: read every counted
//! history event of the month with its interaction (the rollup's own read, unbounded)
//! and add them up, timed 3 times. Last, the month's contacts are downloaded as CSV.
//! The 200 agents are on file in 10 teams of 20, each with a month of shifts in the
//! presence log (logged in at eight, away for lunch at noon, back at a quarter to one,
//! logged out at five, each a little earlier or later), and every completion states its
//! wrap-up: the reports by agent and by team carry time per state and occupancy. Those
//! over days and weeks in the centre's zone (UTC) read the agents' daily rollups; the
//! same by agent in Europe/Berlin reads the hourly ones, for comparison.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::config::Settings;
use switchboard::startup::Application;
use switchboard::store::agents::{self, AgentRow};
use switchboard::store::bulk::{self, Arg};
use switchboard::store::{reports, Store};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-10-01T00:00:00Z.
const START: i64 = 1_790_812_800_000;
const TOKEN: &str = "bench-admin-token-0123456789";

struct Gen(u64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Writes `n` contacts' rows; answers the history rows written.
async fn seed(store: &Store, n: usize) -> usize {
    let mut g = Gen(0x2545_F491_4F6C_DD1D);
    let mut events = 0;
    const CHUNK: usize = 10_000;
    for chunk in 0..n.div_ceil(CHUNK) {
        let (mut customers, mut interactions, mut history) = (Vec::new(), Vec::new(), Vec::new());
        for k in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
            let id = format!("00000000-0000-7000-8000-{k:012}");
            let customer = format!("00000000-0000-7000-9000-{k:012}");
            let created = START + g.below(30 * DAY as u64) as i64;
            let channel = ["phone", "chat", "email"][g.below(3) as usize];
            let tier = ["high", "medium", "low"][g.below(3) as usize];
            let topic = [None, Some("billing"), Some("complaint")][g.below(3) as usize];
            customers.extend([
                Arg::from(customer.as_str()),
                Arg::from(created),
                Arg::from(created),
            ]);
            let mut ev = |kind: &str, at: i64, actor: &str, data: serde_json::Value| {
                history.extend([
                    Arg::from(customer.as_str()),
                    Arg::from(id.as_str()),
                    Arg::from(kind),
                    Arg::from(at),
                    Arg::from(actor),
                    Arg::from(data.to_string()),
                ]);
            };
            ev("interaction_received", created, "system", json!({}));
            if g.below(10) == 0 {
                ev("callback_booked", created, "system", json!({}));
            }
            let wait = g.below(120_000) as i64;
            let (state, agent) = if g.below(100) < 15 {
                let data = json!({ "reason": "hangup", "waited_secs": wait as f64 / 1000.0 });
                ev("abandoned", created + wait, "customer", data);
                ("abandoned", None)
            } else {
                let mut agent = format!("agent-{:03}", g.below(200));
                let mut at = created + wait;
                let data = json!({ "agent_id": agent, "waited_secs": wait as f64 / 1000.0 });
                ev("assigned", at, &agent, data);
                if g.below(10) == 0 {
                    at += g.below(300_000) as i64;
                    ev(
                        "transferred",
                        at,
                        &agent,
                        json!({ "from": agent, "to": { "queue": true } }),
                    );
                    agent = format!("agent-{:03}", g.below(200));
                    at += 10_000;
                    let data = json!({ "agent_id": agent, "waited_secs": 10.0 });
                    ev("assigned", at, &agent, data);
                }
                if g.below(20) == 0 {
                    ("assigned", Some(agent))
                } else {
                    at += 60_000 + g.below(600_000) as i64;
                    let data =
                        json!({ "agent_id": agent, "disposition": "resolved", "wrap_up_secs": 30 });
                    ev("completed", at, &agent, data);
                    if g.below(3) == 0 {
                        let data = json!({ "score": 1 + g.below(5), "answered_by": "chat" });
                        ev("satisfaction", at + 60_000, "customer", data);
                    }
                    ("completed", Some(agent))
                }
            };
            interactions.extend([
                Arg::from(id.as_str()),
                Arg::from(channel),
                Arg::from(format!("bench-{k}")),
                Arg::from("bench"),
                Arg::from(customer.as_str()),
                Arg::from(tier),
                Arg::from("default"),
                Arg::from("generated"),
                Arg::from(topic.map(str::to_string)),
                Arg::from(state),
                Arg::from(created),
                Arg::from(created),
                Arg::from(agent),
            ]);
        }
        events += history.len() / 6;
        let mut tx = store.begin_write().await.expect("a write");
        bulk::insert(
            &mut tx,
            "INSERT INTO customers (id, created_at, updated_at)",
            3,
            customers,
            "",
        )
        .await
        .expect("customers");
        bulk::insert(
            &mut tx,
            "INSERT INTO interactions (id, channel, idempotency_key, request_hash, customer_id, \
             tier, tier_source, tier_reason, topic, state, created_at, updated_at, agent_id)",
            13,
            interactions,
            "",
        )
        .await
        .expect("interactions");
        bulk::insert(
            &mut tx,
            "INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data)",
            6,
            history,
            "",
        )
        .await
        .expect("history");
        tx.commit().await.expect("commit");
    }
    events
}

/// Puts the 200 agents on file in 10 teams and writes their month of shifts to the
/// presence log; answers the changes written.
async fn seed_presence(store: &Store) -> usize {
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let mut tx = store.begin_write().await.expect("a write");
    let mut changes = Vec::new();
    for k in 0..200 {
        let id = format!("agent-{k:03}");
        let a = AgentRow {
            id: id.clone(),
            name: id.clone(),
            email: None,
            extension: None,
            level: 3,
            skills: vec![format!("team-{}", k % 10)],
            capacity: Default::default(),
            role: Default::default(),
            active: true,
            created_at: START,
            updated_at: START,
        };
        agents::insert(&mut tx, &a, &format!("bench-token-{k}"))
            .await
            .expect("an agent");
        for day in 0..30 {
            let jitter = |g: &mut Gen| g.below(30 * 60_000) as i64 - 15 * 60_000;
            let at = START + day * DAY;
            for (hour, status, reason) in [
                (8 * HOUR, "available", None),
                (12 * HOUR, "away", Some("lunch")),
                (12 * HOUR + 45 * 60_000, "available", None),
                (17 * HOUR, "offline", None),
            ] {
                changes.extend([
                    Arg::from(id.as_str()),
                    Arg::from(status),
                    Arg::from(reason.map(str::to_string)),
                    Arg::from(at + hour + jitter(&mut g)),
                ]);
            }
        }
    }
    let n = changes.len() / 4;
    bulk::insert(
        &mut tx,
        "INSERT INTO agent_presence (agent_id, status, reason, at)",
        4,
        changes,
        "",
    )
    .await
    .expect("presence");
    tx.commit().await.expect("commit");
    n
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("REPORTS_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("switchboard.db").display()
    );

    let store = Store::connect(&url, 4).await.expect("the store");
    let t = Instant::now();
    let events = seed(&store, n).await;
    let changes = seed_presence(&store).await;
    println!(
        "seeded {n} contacts, {events} history events, {changes} presence changes, in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    store.pool().close().await;

    let mut settings = Settings::defaults();
    settings.server.http_addr = "127.0.0.1:0".into();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.storage.database_url = url.clone();
    settings.api.admin_token = TOKEN.into();
    settings.email.smtp_addr = "127.0.0.1:0".into();
    let app = Application::build(settings)
        .await
        .expect("the server builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |path: String| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
    };
    let month = "from=2026-10-01&to=2026-10-30";

    // The rollup catches up with the whole history.
    let t = Instant::now();
    loop {
        let body: serde_json::Value = get(format!("/api/reports?{month}"))
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("JSON");
        if body["up_to_date"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up = t.elapsed();
    println!(
        "rollup: {events} events counted in {:.1} s ({:.0} events/s)",
        caught_up.as_secs_f64(),
        events as f64 / caught_up.as_secs_f64()
    );

    // The month's report from the rollups, over HTTP.
    let mut times = Vec::new();
    let mut rows = 0;
    let mut received = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let body: serde_json::Value = get(format!("/api/reports?{month}&by=day&slice=tier"))
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("JSON");
        times.push(t.elapsed());
        let r = body["rows"].as_array().expect("rows");
        rows = r.len();
        received = r
            .iter()
            .map(|r| r["received"].as_i64().unwrap_or(0))
            .sum::<i64>();
    }
    times.sort();
    assert_eq!(received as usize, n, "the report counts every contact");
    println!(
        "report from the rollups (month, by day and tier, {rows} rows, over HTTP): median {}, slowest of 20 {}",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    for (what, query) in [
        ("by day and agent", "by=day&slice=agent"),
        ("by day and team", "by=day&slice=team"),
        ("by week and team", "by=week&slice=team"),
        (
            "by day and tier in Europe/Berlin",
            "by=day&slice=tier&tz=Europe/Berlin",
        ),
        (
            "by day and agent in Europe/Berlin, from the hourly rollups",
            "by=day&slice=agent&tz=Europe/Berlin",
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let body: serde_json::Value = get(format!("/api/reports?{month}&{query}"))
                .await
                .expect("the server answers")
                .json()
                .await
                .expect("JSON");
            times.push(t.elapsed());
            let r = body["rows"].as_array().expect("rows");
            rows = r.len();
            if query.contains("agent") {
                assert!(
                    r.iter().any(|r| r["occupancy"].as_f64().is_some()),
                    "occupancy is reported"
                );
            }
        }
        times.sort();
        println!(
            "report from the rollups (month, {what}, {rows} rows, over HTTP): median {}, slowest of 20 {}",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }

    // The raw read of the same month, as a report without rollups would do per request.
    let raw = Store::connect(&url, 2).await.expect("the store");
    let active = switchboard::simulation::Active::latest(&raw, &Settings::defaults().tiers.order)
        .await
        .expect("rules");
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut conn = raw.pool().acquire().await.expect("a connection");
        let all = reports::read_after(&mut conn, 0, i64::MAX, i64::MAX)
            .await
            .expect("the history");
        let sums = reports::tally(&all, |t| active.rules.service_target_secs(t));
        times.push(t.elapsed());
        let got: i64 = sums.values().map(|s| s[0]).sum();
        assert_eq!(got as usize, n, "the raw read counts every contact");
    }
    times.sort();
    println!(
        "the same month straight from the history (read and add up every event): median {}, slowest of 3 {}",
        ms(times[1]),
        ms(times[2])
    );

    // Every contact of the month as CSV.
    let t = Instant::now();
    let mut res = get("/api/reports/interactions.csv?from=2026-09-30&to=2026-10-31".to_string())
        .await
        .expect("the server answers");
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = res.chunk().await.expect("the download") {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = t.elapsed();
    assert_eq!(lines - 1, n, "one row per contact");
    println!(
        "interaction CSV: {} rows, {:.1} MB in {:.1} s ({:.0} rows/s)",
        lines - 1,
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        (lines - 1) as f64 / took.as_secs_f64()
    );

    // The run is over: a server that already stopped, or stops with an error, changes no
    // figure printed above.
    let _ = stop.send(());
    let _ = server.await;
}
