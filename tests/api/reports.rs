//! Reports: the figures the hourly rollups give equal the same figures computed straight
//! from the raw history and presence log, over a generated month of contacts and agents'
//! shifts, in UTC and in a zone with summer time; the rollup counts nothing twice across
//! a restart; the CSV exports parse; bad input is refused by name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;
use switchboard::store::agents::{self, AgentRow};
use switchboard::store::history::{self, NewEvent};
use switchboard::store::interactions::{self, InteractionRow};
use switchboard::store::{customers, presence, Store};

use crate::helpers::{spawn_settings, test_settings, Backend, TestApp};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-10-01T00:00:00Z, a Thursday: the generated month starts here.
const START: i64 = 1_790_812_800_000;
const AGENTS: [&str; 6] = ["ag-ann", "ag-bo", "ag-chen", "ag-dee", "ag-eli", "ag-fay"];
/// The agents' teams (skills): Chen is in two, Eli in none, Fay is not on file.
const TEAMS: [(&str, &[&str]); 5] = [
    ("ag-ann", &["billing"]),
    ("ag-bo", &["billing"]),
    ("ag-chen", &["billing", "complaints"]),
    ("ag-dee", &["complaints"]),
    ("ag-eli", &[]),
];
/// How many measures the report keeps per bucket.
const N: usize = 17;

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `n` contacts spread over the 30 days from [`START`] straight into the store,
/// through its own append functions, each with the events of its life: received, then
/// abandoned, or answered (sometimes transferred and answered again), completed and
/// rated; some callbacks booked. `seed` varies the month.
async fn generate(store: &Store, n: usize, seed: u64) {
    let mut g = Gen(seed);
    for chunk in 0..n.div_ceil(200) {
        let mut tx = store.begin_write().await.expect("a write");
        #[allow(clippy::type_complexity)]
        let mut deadlines: Vec<(
            String,
            &str,
            &str,
            i64,
            i64,
            &str,
            Option<i64>,
            Option<i64>,
        )> = Vec::new();
        for k in chunk * 200..((chunk + 1) * 200).min(n) {
            let id = uuid::Uuid::now_v7().to_string();
            let customer = uuid::Uuid::now_v7().to_string();
            let created = START + g.below(30 * DAY as u64) as i64;
            let channel = ["phone", "chat", "email"][g.below(3) as usize];
            let tier = ["high", "medium", "low"][g.below(3) as usize];
            let topic = [None, Some("billing"), Some("complaint")][g.below(3) as usize];
            customers::create_many(&mut tx, &[(customer.clone(), None)], created)
                .await
                .expect("customer");
            let row = InteractionRow {
                id: id.clone(),
                channel: channel.into(),
                idempotency_key: format!("gen-{seed}-{k}"),
                request_hash: "gen".into(),
                customer_id: customer.clone(),
                tier: tier.into(),
                tier_source: "default".into(),
                tier_reason: "generated".into(),
                topic: topic.map(str::to_string),
                subject: None,
                body: None,
                state: "queued".into(),
                created_at: created,
                updated_at: created,
                agent_id: None,
                disposition: None,
                notes: None,
                preferred_agent_id: None,
                opens_at: None,
                complaint_id: None,
            };
            interactions::insert_many(&mut tx, &[row])
                .await
                .expect("interaction");
            let ev = |kind: &'static str, actor: &str, data: Value| NewEvent {
                customer_id: customer.clone(),
                interaction_id: Some(id.clone()),
                kind,
                actor: actor.to_string(),
                data,
            };
            let mut life: Vec<(i64, NewEvent)> =
                vec![(created, ev("interaction_received", "system", json!({})))];
            if g.below(10) == 0 {
                life.push((created, ev("callback_booked", "system", json!({}))));
            }
            let wait = g.below(180_000) as i64;
            let (state, agent) = if g.below(100) < 15 {
                let data = json!({ "reason": "hangup", "waited_secs": wait as f64 / 1000.0 });
                life.push((created + wait, ev("abandoned", "customer", data)));
                ("abandoned", None)
            } else {
                let mut agent = AGENTS[g.below(6) as usize];
                // Now and then the wait is not stated: it is taken from the arrival.
                let data = if g.below(10) == 0 {
                    json!({ "agent_id": agent })
                } else {
                    json!({ "agent_id": agent, "waited_secs": wait as f64 / 1000.0 })
                };
                let mut at = created + wait;
                life.push((at, ev("assigned", agent, data)));
                if g.below(10) == 0 {
                    at += g.below(600_000) as i64;
                    let data = json!({ "from": agent, "to": { "queue": true } });
                    life.push((at, ev("transferred", agent, data)));
                    let again = g.below(30_000) as i64;
                    at += again;
                    agent = AGENTS[g.below(6) as usize];
                    let data = json!({ "agent_id": agent, "waited_secs": again as f64 / 1000.0 });
                    life.push((at, ev("assigned", agent, data)));
                }
                if g.below(20) == 0 {
                    ("assigned", Some(agent))
                } else {
                    at += 30_000 + g.below(900_000) as i64;
                    // Older history states no wrap-up.
                    let data = if g.below(8) == 0 {
                        json!({ "agent_id": agent, "disposition": "resolved" })
                    } else {
                        json!({ "agent_id": agent, "disposition": "resolved", "wrap_up_secs": g.below(121) })
                    };
                    life.push((at, ev("completed", agent, data)));
                    // Service targets: a first response due a minute after arrival, met in
                    // time, met late, or breached; now and then a resolution too.
                    if g.below(2) == 0 {
                        let answered = created + wait;
                        let due = created + 60_000;
                        let (state, met, breached) = match g.below(3) {
                            _ if answered <= due => ("met", Some(answered), None),
                            0 => ("met", Some(answered), None),
                            _ => ("breached", None, Some(due)),
                        };
                        deadlines.push((
                            id.clone(),
                            "first_response",
                            channel,
                            created,
                            due,
                            state,
                            met,
                            breached,
                        ));
                        if g.below(3) == 0 {
                            let due = created + 600_000;
                            let (state, met, breached) = if at <= due {
                                ("met", Some(at), None)
                            } else {
                                ("breached", None, Some(due))
                            };
                            deadlines.push((
                                id.clone(),
                                "resolution",
                                channel,
                                created,
                                due,
                                state,
                                met,
                                breached,
                            ));
                        }
                    }
                    if g.below(3) == 0 {
                        let data = json!({ "score": 1 + g.below(5), "answered_by": "chat" });
                        life.push((at + 60_000, ev("satisfaction", "customer", data)));
                    }
                    ("completed", Some(agent))
                }
            };
            for (at, e) in &life {
                history::append(&mut tx, [e], *at).await.expect("append");
            }
            sqlx::query("UPDATE interactions SET state = $1, agent_id = $2 WHERE id = $3")
                .bind(state)
                .bind(agent)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .expect("state");
        }
        for (id, target, channel, started, due, state, met, breached) in &deadlines {
            sqlx::query(
                "INSERT INTO interaction_deadlines (interaction_id, target, channel, started_at, \
                 due_at, state, met_at, breached_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4)",
            )
            .bind(id)
            .bind(*target)
            .bind(*channel)
            .bind(*started)
            .bind(*due)
            .bind(*state)
            .bind(*met)
            .bind(*breached)
            .execute(&mut *tx)
            .await
            .expect("deadline");
        }
        tx.commit().await.expect("commit");
    }
}

/// Puts the agents of [`TEAMS`] on file, and writes each agent's shifts over the month
/// to the presence log: available and away by turns with gaps offline, each state a few
/// minutes to a few hours long, every agent offline at the end.
async fn generate_presence(store: &Store, seed: u64) {
    let mut g = Gen(seed);
    let mut tx = store.begin_write().await.expect("a write");
    for (id, teams) in TEAMS {
        let a = AgentRow {
            id: id.into(),
            name: id.into(),
            email: None,
            extension: None,
            level: 3,
            skills: teams.iter().map(|t| t.to_string()).collect(),
            capacity: Default::default(),
            role: Default::default(),
            active: true,
            created_at: START,
            updated_at: START,
        };
        agents::insert(&mut tx, &a, &format!("not a token {id}"))
            .await
            .expect("agent");
    }
    for agent in AGENTS {
        let mut at = START + g.below(3 * HOUR as u64) as i64;
        while at < START + 29 * DAY {
            let status = ["available", "available", "away", "offline"][g.below(4) as usize];
            let reason = [None, Some("break"), Some("training")][g.below(3) as usize];
            let change = presence::Change {
                agent_id: agent.into(),
                status,
                reason: reason.filter(|_| status == "away").map(str::to_string),
            };
            presence::append(&mut tx, &[change], at)
                .await
                .expect("presence");
            at += 60_000 + g.below(4 * HOUR as u64) as i64;
        }
        let change = presence::Change {
            agent_id: agent.into(),
            status: "offline",
            reason: None,
        };
        presence::append(&mut tx, &[change], at)
            .await
            .expect("presence");
    }
    tx.commit().await.expect("commit");
}

/// The tiers' service-level targets in the stored rules, read from the document itself.
async fn targets(app: &TestApp) -> BTreeMap<String, i64> {
    let (status, rules) = app.get("/api/routing/rules").await;
    assert_eq!(status, 200, "{rules}");
    let doc: toml::Table = rules["document"].as_str().unwrap().parse().unwrap();
    doc["tiers"]
        .as_table()
        .unwrap()
        .iter()
        .filter_map(|(t, v)| Some((t.clone(), v.get("target_secs")?.as_integer()?)))
        .collect()
}

/// What a report covers, for the raw figures: the zone, the bucket width, the slice and
/// the range `[from, to)` (ms).
struct Ask<'a> {
    tz: &'a str,
    by: &'a str,
    slice: &'a str,
    from: i64,
    to: i64,
}

/// The month of October 2026 in `tz`: from its first local midnight to its last.
fn october(tz: &str) -> (i64, i64) {
    let tz = jiff::tz::TimeZone::get(tz).unwrap();
    let at = |d: &str| {
        d.parse::<jiff::civil::Date>()
            .unwrap()
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
            .as_millisecond()
    };
    (at("2026-10-01"), at("2026-11-01"))
}

/// The start of the bucket holding `at`: its hour, or its local day's (or Monday's)
/// midnight in the zone, worked out with the calendar.
fn bucket_of(ask: &Ask<'_>, at: i64) -> i64 {
    let hour = at.div_euclid(HOUR) * HOUR;
    if ask.by == "hour" {
        return hour;
    }
    let tz = jiff::tz::TimeZone::get(ask.tz).unwrap();
    let mut date = jiff::Timestamp::from_millisecond(hour)
        .unwrap()
        .to_zoned(tz.clone())
        .date();
    if ask.by == "week" {
        let back = i64::from(date.weekday().to_monday_zero_offset());
        date = date.checked_sub(jiff::Span::new().days(back)).unwrap();
    }
    date.to_zoned(tz).unwrap().timestamp().as_millisecond()
}

/// The values of the slice an agent's figures go to: itself, or its teams.
fn values_of(slice: &str, agent: &str) -> Vec<String> {
    if slice != "team" {
        return vec![agent.to_string()];
    }
    match TEAMS.iter().find(|(a, _)| *a == agent) {
        Some((_, teams)) if !teams.is_empty() => teams.iter().map(|t| t.to_string()).collect(),
        _ => vec![String::new()],
    }
}

/// A contact's target as the raw figures read it: started, due, met, breached (ms).
type Deadline = (i64, Option<i64>, Option<i64>, Option<i64>);

/// One bucket's raw figures: the measures, and the time available, away, offline, and
/// away per reason.
#[derive(Debug, Default, Clone, PartialEq)]
struct Raw {
    sums: [i64; N],
    states: [i64; 3],
    away: BTreeMap<String, i64>,
}

/// The figures straight from the raw history and presence log: every event and change
/// read with a plain query and added up here, per bucket and value of the slice.
async fn raw(
    store: &Store,
    targets: &BTreeMap<String, i64>,
    ask: &Ask<'_>,
) -> BTreeMap<(i64, String), Raw> {
    let mut conn = store.pool().acquire().await.unwrap();
    let rows = sqlx::query(
        "SELECT h.interaction_id, h.kind, h.occurred_at, h.data, i.channel, i.tier, i.topic, \
         i.created_at, i.agent_id FROM history h JOIN interactions i ON i.id = h.interaction_id \
         ORDER BY h.seq",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    // Each contact's targets: started, due, met, breached.
    let mut deadlines: BTreeMap<String, Vec<Deadline>> = BTreeMap::new();
    for d in sqlx::query(
        "SELECT interaction_id, started_at, due_at, met_at, breached_at FROM interaction_deadlines",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
    {
        deadlines.entry(d.get("interaction_id")).or_default().push((
            d.get("started_at"),
            d.get("due_at"),
            d.get("met_at"),
            d.get("breached_at"),
        ));
    }
    let mut answered_at: BTreeMap<String, i64> = BTreeMap::new();
    let mut out: BTreeMap<(i64, String), Raw> = BTreeMap::new();
    for r in rows {
        let id: String = r.get("interaction_id");
        let kind: String = r.get("kind");
        let at: i64 = r.get("occurred_at");
        let data: Value = serde_json::from_str(&r.get::<String, _>("data")).unwrap();
        let tier: String = r.get("tier");
        let created: i64 = r.get("created_at");
        let wait = data["waited_secs"]
            .as_f64()
            .map_or(at - created, |s| (s * 1000.0).round() as i64);
        let mut agent = String::new();
        let mut add = [0i64; N];
        match kind.as_str() {
            "interaction_received" => add[0] = 1,
            "assigned" => {
                answered_at.insert(id.clone(), at);
                agent = data["agent_id"].as_str().unwrap().into();
                add[1] = 1;
                add[2] = i64::from(targets.get(&tier).is_some_and(|t| wait <= t * 1000));
                add[3] = wait;
                add[12] = i64::from(targets.contains_key(&tier));
            }
            "abandoned" => (add[4], add[5]) = (1, wait),
            "completed" => {
                agent = data["agent_id"].as_str().unwrap().into();
                (add[6], add[7]) = (1, at - answered_at[&id]);
                if let Some(w) = data["wrap_up_secs"].as_i64() {
                    (add[13], add[14]) = (1, w * 1000);
                }
                let mine: Vec<_> = deadlines
                    .get(&id)
                    .map(|d| d.iter().filter(|d| d.0 <= at).collect())
                    .unwrap_or_default();
                if !mine.is_empty() {
                    let kept = mine.iter().all(|(_, due, met, breached)| {
                        breached.is_none_or(|b| b > at)
                            && !matches!((met, due), (Some(m), Some(d)) if m > d)
                    });
                    (add[15], add[16]) = (1, i64::from(kept));
                }
            }
            "transferred" => (agent, add[8]) = (data["from"].as_str().unwrap().into(), 1),
            "callback_booked" => add[9] = 1,
            "satisfaction" => {
                agent = r.get("agent_id");
                (add[10], add[11]) = (1, data["score"].as_i64().unwrap());
            }
            _ => continue,
        }
        if at < ask.from || at >= ask.to {
            continue;
        }
        let values = match ask.slice {
            "tier" => vec![tier],
            "channel" => vec![r.get("channel")],
            "topic" => vec![r.get::<Option<String>, _>("topic").unwrap_or_default()],
            slice => values_of(slice, &agent),
        };
        for value in values {
            let sums = &mut out.entry((bucket_of(ask, at), value)).or_default().sums;
            for (s, a) in sums.iter_mut().zip(add) {
                *s += a;
            }
        }
    }
    if !matches!(ask.slice, "agent" | "team") {
        return out;
    }
    // Each agent's states, from one change to its next; the last up to now.
    let changes =
        sqlx::query("SELECT agent_id, status, reason, at FROM agent_presence ORDER BY seq")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let mut open: BTreeMap<String, (String, String, i64)> = BTreeMap::new();
    let mut spans: Vec<(String, String, String, i64, i64)> = Vec::new();
    for c in changes {
        let agent: String = c.get("agent_id");
        let at: i64 = c.get("at");
        let reason = c.get::<Option<String>, _>("reason").unwrap_or_default();
        let state = (c.get("status"), reason, at);
        if let Some((status, reason, since)) = open.insert(agent.clone(), state) {
            spans.push((agent, status, reason, since, at));
        }
    }
    spans.extend(
        open.into_iter()
            .map(|(a, (s, r, since))| (a, s, r, since, now)),
    );
    for (agent, status, reason, since, until) in spans {
        let k = ["available", "away", "offline"]
            .iter()
            .position(|s| *s == status)
            .unwrap();
        let mut hour = since.div_euclid(HOUR) * HOUR;
        while hour < until {
            let ms = (hour + HOUR).min(until) - hour.max(since);
            if ms > 0 && hour >= ask.from && hour < ask.to {
                for value in values_of(ask.slice, &agent) {
                    let raw = out.entry((bucket_of(ask, hour), value)).or_default();
                    raw.states[k] += ms;
                    if status == "away" {
                        *raw.away.entry(reason.clone()).or_default() += ms;
                    }
                }
            }
            hour += HOUR;
        }
    }
    out
}

/// The report's rows, keyed as [`raw`] keys them, once every recorded event is counted.
async fn report(app: &TestApp, query: &str) -> (Value, BTreeMap<(i64, String), Value>) {
    for _ in 0..600 {
        let (status, body) = app.get(&format!("/api/reports?{query}")).await;
        assert_eq!(status, 200, "{body}");
        if body["up_to_date"] == true {
            let slice = body["slice"].as_str().unwrap().to_string();
            let rows = body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let at = switchboard::store::parse_rfc3339(r["bucket"].as_str().unwrap());
                    (
                        (at.unwrap(), r[&slice].as_str().unwrap().to_string()),
                        r.clone(),
                    )
                })
                .collect();
            return (body, rows);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rollup did not catch up with the history within a minute");
}

/// Every figure of every bucket in the report equals the raw history's.
fn assert_same(report: &BTreeMap<(i64, String), Value>, raw: &BTreeMap<(i64, String), Raw>) {
    assert_eq!(
        report.keys().collect::<Vec<_>>(),
        raw.keys().collect::<Vec<_>>(),
        "the same buckets and slices"
    );
    let mean = |s: i64, n: i64, scale: f64| (n > 0).then(|| s as f64 / n as f64 / scale);
    let close = |got: &Value, want: Option<f64>, what: &str, key: &(i64, String)| match want {
        None => assert!(got.is_null(), "{what} of {key:?}: {got}, expected none"),
        Some(w) => {
            let g = got.as_f64().unwrap_or(f64::NAN);
            assert!((g - w).abs() < 1e-9, "{what} of {key:?}: {g}, expected {w}");
        }
    };
    for (
        key,
        Raw {
            sums: s,
            states,
            away,
        },
    ) in raw
    {
        let r = &report[key];
        assert_eq!(r["received"], s[0], "received of {key:?}");
        assert_eq!(r["answered"], s[1], "answered of {key:?}");
        assert_eq!(
            r["answered_within_target"], s[2],
            "within target of {key:?}"
        );
        assert_eq!(r["abandoned"], s[4], "abandoned of {key:?}");
        assert_eq!(r["completed"], s[6], "completed of {key:?}");
        assert_eq!(r["transfers"], s[8], "transfers of {key:?}");
        assert_eq!(r["callbacks"], s[9], "callbacks of {key:?}");
        assert_eq!(r["csat_count"], s[10], "CSAT answers of {key:?}");
        assert_eq!(r["sla_contacts"], s[15], "contacts with targets of {key:?}");
        close(
            &r["service_level"],
            mean(s[2], s[12], 1.0),
            "service level",
            key,
        );
        close(
            &r["average_speed_of_answer_secs"],
            mean(s[3], s[1], 1000.0),
            "ASA",
            key,
        );
        close(
            &r["mean_abandoned_wait_secs"],
            mean(s[5], s[4], 1000.0),
            "abandoned wait",
            key,
        );
        close(
            &r["mean_handling_secs"],
            mean(s[7], s[6], 1000.0),
            "handling",
            key,
        );
        close(
            &r["mean_wrap_up_secs"],
            mean(s[14], s[13], 1000.0),
            "wrap-up",
            key,
        );
        close(
            &r["sla_attainment"],
            mean(s[16], s[15], 1.0),
            "SLA attainment",
            key,
        );
        close(&r["csat_average"], mean(s[11], s[10], 1.0), "CSAT", key);
        if r.get("available_secs").is_some() {
            close(
                &r["available_secs"],
                Some(states[0] as f64 / 1000.0),
                "available",
                key,
            );
            close(
                &r["away_secs"],
                Some(states[1] as f64 / 1000.0),
                "away",
                key,
            );
            close(
                &r["offline_secs"],
                Some(states[2] as f64 / 1000.0),
                "offline",
                key,
            );
            close(
                &r["occupancy"],
                mean(s[7] + s[14], states[0], 1.0),
                "occupancy",
                key,
            );
            let reasons = r["away_reasons"].as_object().unwrap();
            assert_eq!(
                reasons.keys().collect::<Vec<_>>(),
                away.keys().collect::<Vec<_>>(),
                "reasons for being away of {key:?}"
            );
            for (reason, ms) in away {
                close(
                    &reasons[reason],
                    Some(*ms as f64 / 1000.0),
                    &format!("away for '{reason}'"),
                    key,
                );
            }
        } else {
            assert_eq!(
                states, &[0; 3],
                "presence of {key:?} in a report of people only"
            );
        }
    }
}

async fn reports_from_the_rollups_equal_the_raw_history_across_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&backend, &dir).await;
    let app = spawn_settings(settings.clone()).await;
    let store = Store::connect(&app.database_url, 2).await.unwrap();
    let targets = targets(&app).await;
    assert!(
        !targets.contains_key("low"),
        "one tier without a target, whose service level is none"
    );
    assert!(
        targets.contains_key("high"),
        "the default rules set targets: {targets:?}"
    );
    let month = "from=2026-10-01&to=2026-10-31";
    let (from, to) = october("UTC");
    let utc = |by, slice| Ask {
        tz: "UTC",
        by,
        slice,
        from,
        to,
    };

    // Half a month's contacts and the month's shifts, counted; then a restart, and the
    // other half.
    generate(&store, 1_500, 0x9E37_79B9_7F4A_7C15).await;
    generate_presence(&store, 0x2545_F491_4F6C_DD1D).await;
    let (_, before) = report(&app, &format!("{month}&by=day&slice=agent")).await;
    assert_same(&before, &raw(&store, &targets, &utc("day", "agent")).await);
    app.stop().await;
    let app = spawn_settings(settings).await;
    let (_, again) = report(&app, &format!("{month}&by=day&slice=agent")).await;
    assert_eq!(again, before, "a restart counts nothing twice");
    generate(&store, 1_500, 0xD1B5_4A32_D192_ED03).await;

    for by in ["hour", "day", "week"] {
        for slice in ["tier", "channel", "topic", "team", "agent"] {
            let (body, rows) = report(&app, &format!("{month}&by={by}&slice={slice}")).await;
            assert_eq!(body["time_zone"], "UTC");
            assert_same(&rows, &raw(&store, &targets, &utc(by, slice)).await);
        }
    }
    // Berlin's clocks go back on 2026-10-25: that day has 25 hours, and its contacts and
    // shifts are that day's; Shanghai is eight hours ahead all year.
    for (tz, by, slice) in [
        ("Europe/Berlin", "day", "team"),
        ("Europe/Berlin", "week", "tier"),
        ("Europe/Berlin", "hour", "agent"),
        ("Asia/Shanghai", "day", "agent"),
    ] {
        let (from, to) = october(tz);
        let ask = Ask {
            tz,
            by,
            slice,
            from,
            to,
        };
        let (body, rows) = report(&app, &format!("{month}&by={by}&slice={slice}&tz={tz}")).await;
        assert_eq!(body["time_zone"], tz);
        assert_same(&rows, &raw(&store, &targets, &ask).await);
        if (tz, by) == ("Europe/Berlin", "day") {
            let day = rows
                .iter()
                .find(|(k, _)| switchboard::store::rfc3339(k.0) == "2026-10-24T22:00:00Z")
                .expect("a bucket for 2026-10-25 in Berlin")
                .1;
            assert_eq!(day["bucket"], "2026-10-25T00:00:00+02:00");
            assert_eq!(day["bucket_end"], "2026-10-26T00:00:00+01:00");
        }
    }
    // Every team's figures are its agents' added up; Chen's count in both of his.
    let (_, agents) = report(&app, &format!("{month}&by=week&slice=agent")).await;
    let (_, teams) = report(&app, &format!("{month}&by=week&slice=team")).await;
    let sum = |rows: &BTreeMap<(i64, String), Value>, of: &[&str], figure: &str| -> i64 {
        rows.iter()
            .filter(|(k, _)| of.contains(&k.1.as_str()))
            .map(|(_, r)| r[figure].as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        sum(&teams, &["billing"], "completed"),
        sum(&agents, &["ag-ann", "ag-bo", "ag-chen"], "completed")
    );
    assert!(sum(&teams, &["complaints"], "completed") > 0);
    // The figures compared are there to compare: some targets missed and some kept,
    // wrap-ups, time available and occupancy.
    let some = |what: &str, f: &dyn Fn(&Value) -> bool| {
        assert!(agents.values().any(f), "some agent's week has {what}")
    };
    some("targets kept and missed", &|r| {
        r["sla_attainment"]
            .as_f64()
            .is_some_and(|a| a > 0.0 && a < 1.0)
    });
    some("wrap-up", &|r| {
        r["mean_wrap_up_secs"].as_f64().is_some_and(|w| w > 0.0)
    });
    some("time away for a reason", &|r| {
        r["away_reasons"]["break"].as_f64().is_some_and(|a| a > 0.0)
    });
    some("occupancy", &|r| {
        r["available_secs"].as_f64().is_some_and(|a| a > 0.0)
            && r["away_secs"].as_f64().is_some_and(|a| a > 0.0)
            && r["occupancy"].as_f64().is_some_and(|o| o > 0.0)
    });
    // A team's bar lists the contacts its agents hold or last held.
    let (status, body) = app
        .get("/api/reports/interactions?from=2026-10-01&to=2026-10-31&slice=team&value=complaints&limit=500")
        .await;
    assert_eq!(status, 200, "{body}");
    let listed = body["interactions"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed
            .iter()
            .all(|i| i["agent"] == "ag-chen" || i["agent"] == "ag-dee"),
        "{body}"
    );
    let (_, rows) = report(&app, &format!("{month}&by=week&slice=tier")).await;
    let received: i64 = rows.values().map(|r| r["received"].as_i64().unwrap()).sum();
    assert_eq!(received, 3_000, "every generated contact is received once");
    // Weeks start on Monday: 2026-09-28 holds the month's first Thursday to Sunday.
    let first = rows.keys().map(|k| k.0).min().unwrap();
    assert_eq!(switchboard::store::rfc3339(first), "2026-09-28T00:00:00Z");
    // The reports by agent and team over days and weeks above were in the centre's zone
    // (UTC by default), which the agents' days are kept in: they read those.
    assert_eq!(days_kept(&store).await, ("UTC".to_string(), None));
    app.stop().await;
}

/// The zone the agents' days are kept in, and while they are rebuilt, how far.
async fn days_kept(store: &Store) -> (String, Option<i64>) {
    let mut conn = store.pool().acquire().await.unwrap();
    let r = sqlx::query("SELECT zone, built_to FROM report_days_state WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (r.get("zone"), r.get("built_to"))
}

/// The agents' days are kept in the centre's time zone: when it changes, a restart
/// rebuilds them from the hours, and the reports by agent and team over the new zone's
/// days and weeks equal the raw history's, those counted before the change and after.
/// With the hours gone they still do: they come from the days.
async fn changing_the_centres_time_zone_rebuilds_the_days_and_the_figures_stay_equal_to_the_raw_history(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&backend, &dir).await;
    let app = spawn_settings(settings.clone()).await;
    let store = Store::connect(&app.database_url, 2).await.unwrap();
    let targets = targets(&app).await;
    let month = "from=2026-10-01&to=2026-10-31";
    generate(&store, 1_000, 0x5DEE_CE66_D1CE_4E5B).await;
    generate_presence(&store, 0x9E37_79B9_7F4A_7C15).await;
    let (from, to) = october("UTC");
    let ask = Ask {
        tz: "UTC",
        by: "day",
        slice: "agent",
        from,
        to,
    };
    let (_, rows) = report(&app, &format!("{month}&by=day&slice=agent")).await;
    assert_same(&rows, &raw(&store, &targets, &ask).await);
    assert_eq!(days_kept(&store).await, ("UTC".to_string(), None));
    app.stop().await;

    // Berlin's clocks go back on 2026-10-25: its days are not UTC's, and one has 25 hours.
    settings.api.report_time_zone = "Europe/Berlin".into();
    let app = spawn_settings(settings).await;
    generate(&store, 1_000, 0xA076_1D64_78BD_642F).await;
    let (from, to) = october("Europe/Berlin");
    let asks = [
        ("day", "agent"),
        ("week", "team"),
        ("day", "team"),
        ("week", "agent"),
    ]
    .map(|(by, slice)| Ask {
        tz: "Europe/Berlin",
        by,
        slice,
        from,
        to,
    });
    for ask in &asks {
        let (by, slice) = (ask.by, ask.slice);
        let (body, rows) = report(&app, &format!("{month}&by={by}&slice={slice}")).await;
        assert_eq!(body["time_zone"], "Europe/Berlin");
        assert_same(&rows, &raw(&store, &targets, ask).await);
    }
    assert_eq!(days_kept(&store).await, ("Europe/Berlin".to_string(), None));
    let mut conn = store.pool().acquire().await.unwrap();
    let days: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT day FROM report_agent_days")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert!(
        !days.is_empty()
            && days
                .iter()
                .all(|d| [22, 23].contains(&(d.rem_euclid(DAY) / HOUR))),
        "every day starts at Berlin's midnight: {days:?}"
    );

    // Without the hours, the reports over days still equal the raw history's.
    for table in ["report_agent_hours", "report_presence_hours"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    for ask in &asks {
        let (by, slice) = (ask.by, ask.slice);
        let (_, rows) = report(&app, &format!("{month}&by={by}&slice={slice}")).await;
        assert_same(&rows, &raw(&store, &targets, ask).await);
    }
    let (_, hours) = report(&app, &format!("{month}&by=hour&slice=agent")).await;
    assert!(
        hours
            .values()
            .all(|r| r["received"] == 0 && r["completed"] == 0),
        "a report over hours reads the hours, gone"
    );
    app.stop().await;
}

async fn report_csv_and_interaction_csv_parse_and_match_the_report(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&backend, &dir).await;
    let app = spawn_settings(settings).await;
    let store = Store::connect(&app.database_url, 2).await.unwrap();
    // More contacts than one page of the export (1,000).
    generate(&store, 2_300, 7).await;
    let query = "from=2026-10-01&to=2026-10-31&by=day&slice=channel";
    let (_, rows) = report(&app, query).await;

    let res = app
        .admin(reqwest::Method::GET, &format!("/api/reports.csv?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let head = csv.headers().unwrap().clone();
    assert_eq!(&head[0], "bucket");
    assert_eq!(&head[1], "channel");
    let records: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        records.len(),
        rows.len(),
        "one CSV row per bucket and slice"
    );
    for rec in &records {
        let key = (
            switchboard::store::parse_rfc3339(&rec[0]).unwrap(),
            rec[1].to_string(),
        );
        for (name, cell) in head.iter().zip(rec.iter()).skip(2) {
            let want = &rows[&key][name];
            match want.as_f64() {
                None => assert_eq!(cell, "", "{name} of {key:?}"),
                // Within a unit in the last place: JSON readers may round the last digit.
                Some(w) => {
                    let got = cell.parse::<f64>().unwrap();
                    assert!(
                        (got - w).abs() <= w.abs() * 1e-12,
                        "{name} of {key:?}: {got} {w}"
                    );
                }
            }
        }
    }

    let res = app
        .admin(
            reqwest::Method::GET,
            "/api/reports/interactions.csv?from=2026-10-01&to=2026-10-31",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    // Python's csv module reads it as the crate does.
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv,sys,json; r=list(csv.DictReader(sys.stdin)); \
             print(json.dumps([len(r), sorted(set(x['outcome'] for x in r)), r[0]]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin
        .as_ref()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success());
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed[0], 2_300, "one row per contact, across pages");
    assert_eq!(parsed[1], json!(["abandoned", "assigned", "completed"]));
    let first = &parsed[2];
    for column in [
        "id",
        "channel",
        "tier",
        "topic",
        "agent",
        "created",
        "answered",
        "completed",
        "wait_secs",
        "outcome",
    ] {
        assert!(first.get(column).is_some(), "column {column}: {first}");
    }
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let mut last = 0;
    let mut ids = std::collections::BTreeSet::new();
    for rec in csv.records() {
        let rec = rec.unwrap();
        let created = switchboard::store::parse_rfc3339(&rec[5]).unwrap();
        assert!(created >= last, "in arrival order");
        last = created;
        assert!(ids.insert(rec[0].to_string()), "each contact once");
        if &rec[9] == "completed" {
            let answered = switchboard::store::parse_rfc3339(&rec[6]).unwrap();
            let done = switchboard::store::parse_rfc3339(&rec[7]).unwrap();
            assert!(created <= answered && answered < done, "{rec:?}");
        }
    }
    let received: i64 = rows.values().map(|r| r["received"].as_i64().unwrap()).sum();
    assert_eq!(
        ids.len() as i64,
        received,
        "the export lists what the report counts"
    );

    // A bar's contacts: those that arrived in its bucket on its channel, as many as it
    // counts received.
    for ((bucket, channel), row) in rows.iter().take(5) {
        let (from, to) = (
            switchboard::store::rfc3339(*bucket),
            switchboard::store::rfc3339(bucket + DAY),
        );
        let (status, body) = app
            .get(&format!(
                "/api/reports/interactions?from={from}&to={to}&slice=channel&value={channel}&limit=500"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        let listed = body["interactions"].as_array().unwrap();
        assert_eq!(
            listed.len() as i64,
            row["received"].as_i64().unwrap(),
            "{from} {channel}"
        );
        assert_eq!(body["more"], false);
        for i in listed {
            assert_eq!(&i["channel"], channel);
            assert!(ids.contains(i["id"].as_str().unwrap()));
        }
    }
    let (status, body) = app
        .get("/api/reports/interactions?from=2026-10-01&to=2026-10-31&slice=agent&value=ag-ann&limit=3")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["interactions"].as_array().unwrap().len(), 3);
    assert_eq!(body["more"], true);
    assert!(body["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["agent"] == "ag-ann"));
    app.stop().await;
}

async fn bad_report_queries_are_refused_naming_the_field(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&backend, &dir).await;
    settings.api.max_report_days = 40;
    let app = spawn_settings(settings).await;
    for (query, field) in [
        ("to=2026-10-31", "from"),
        ("from=2026-10-01", "to"),
        ("from=yesterday&to=2026-10-31", "from"),
        ("from=2026-10-31&to=2026-10-01", "to"),
        ("from=2026-10-01T05:00:00Z&to=2026-10-01T05:00:00Z", "to"),
        ("from=2026-01-01&to=2026-12-31", "to"),
        ("from=2026-10-01&to=2026-10-31&by=month", "by"),
        ("from=2026-10-01&to=2026-10-31&slice=customer", "slice"),
        ("from=2026-10-01&to=2026-10-31&slice=tier;DROP", "slice"),
        ("from=2026-10-01&to=2026-10-31&colour=red", "query"),
        ("from=2026-10-01&to=2026-10-31&tz=Mars/Olympus", "tz"),
        ("from=2026-10-01&to=2026-10-31&tz=", "tz"),
        ("from=2026-10-01&to=2026-10-31&tz=Asia/Kolkata", "tz"),
        ("from=2026-10-01&to=2026-10-31&tz=Australia/Adelaide", "tz"),
        ("from=1999-12-01&to=1999-12-31", "from"),
    ] {
        for path in ["/api/reports", "/api/reports.csv"] {
            let (status, body) = app.get(&format!("{path}?{query}")).await;
            assert_eq!(status, 400, "{path}?{query}: {body}");
            assert_eq!(body["field"], field, "{path}?{query}: {body}");
        }
    }
    let (status, body) = app
        .get("/api/reports/interactions.csv?from=2026-10-31&to=2026-10-01")
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("to")),
        "{body}"
    );
    for (query, field) in [
        ("from=2026-10-01&to=2026-10-02&slice=tier", "value"),
        ("from=2026-10-01&to=2026-10-02&slice=mood&value=x", "slice"),
        (
            "from=2026-10-01&to=2026-10-02&slice=tier&value=high&limit=0",
            "limit",
        ),
        (
            "from=2026-10-01&to=2026-10-02&slice=tier&value=high&limit=501",
            "limit",
        ),
    ] {
        let (status, body) = app.get(&format!("/api/reports/interactions?{query}")).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{query}: {body}"
        );
    }
    let (_, body) = app
        .get("/api/reports?from=2026-10-01&to=2026-10-31&tz=Asia/Kolkata")
        .await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Asia/Kolkata is +5:30 from UTC, not a whole number of hours"),
        "{body}"
    );
    let (_, body) = app
        .get("/api/reports?from=2026-10-01&to=2026-10-31&tz=Mars/Olympus")
        .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'Mars/Olympus'"),
        "the bad zone is named: {body}"
    );
    let (status, body) = app
        .get(
            "/api/reports/interactions?from=2026-10-01&to=2026-10-02&slice=team&value=x&tz=Nowhere",
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("tz")),
        "{body}"
    );
    // Teams and zones a whole number of hours from UTC are reported.
    for query in [
        "slice=team",
        "slice=team&tz=Asia/Shanghai",
        "by=week&tz=America/New_York",
    ] {
        let (status, body) = app
            .get(&format!(
                "/api/reports?from=2026-10-01&to=2026-10-31&{query}"
            ))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
    }
    // The configured maximum itself is allowed.
    let (status, body) = app.get("/api/reports?from=2026-10-01&to=2026-11-09").await;
    assert_eq!(status, 200, "{body}");
    // Agents do not see the centre's reports.
    let res = app
        .client
        .get(format!(
            "{}/api/reports?from=2026-10-01&to=2026-10-02",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}

crate::both_backends!(
    reports_from_the_rollups_equal_the_raw_history_across_a_restart,
    changing_the_centres_time_zone_rebuilds_the_days_and_the_figures_stay_equal_to_the_raw_history,
    report_csv_and_interaction_csv_parse_and_match_the_report,
    bad_report_queries_are_refused_naming_the_field,
);

/// An agent's day as its desktop lives it: available, away for lunch (the reason it
/// gives), available again; the report by agent shows the time in each state and the
/// reason, from the presence log the router writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_time_away_is_reported_with_the_reason_it_gave() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_settings(test_settings(&Backend::Sqlite, &dir).await).await;
    let (id, token) =
        crate::agent_client::create_agent(&app, json!({ "name": "Lin", "skills": ["billing"] }))
            .await;
    let mut desk = crate::agent_client::Desktop::available(&app.base, &token).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    desk.send(json!({ "type": "presence", "status": "away", "reason": " Lunch " }))
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    desk.send(json!({ "type": "presence", "status": "available" }))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let today = jiff::Timestamp::now().to_string()[..10].to_string();
    let (mut row, mut team) = (Value::Null, Value::Null);
    for _ in 0..100 {
        let (_, rows) = report(&app, &format!("from={today}&to={today}&slice=agent")).await;
        let (_, teams) = report(&app, &format!("from={today}&to={today}&slice=team")).await;
        let find = |rows: &BTreeMap<(i64, String), Value>, v: &str| {
            rows.iter().find(|(k, _)| k.1 == v).map(|(_, r)| r.clone())
        };
        if let (Some(r), Some(t)) = (find(&rows, &id), find(&teams, "billing")) {
            if r["away_reasons"]["lunch"].as_f64().is_some() {
                (row, team) = (r, t);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let away = row["away_reasons"]["lunch"].as_f64().unwrap_or(0.0);
    assert!((1.2..10.0).contains(&away), "away for lunch: {row}");
    // Logging in is away without a reason until the desktop says available.
    assert!(row["away_secs"].as_f64().unwrap() >= away, "{row}");
    assert!(row["available_secs"].as_f64().unwrap() >= 1.2, "{row}");
    assert_eq!(
        row["occupancy"], 0.0,
        "available, but no contact handled: {row}"
    );
    assert_eq!(
        team["away_reasons"], row["away_reasons"],
        "Lin is the billing team"
    );
    app.stop().await;
}
