//! The replay simulator over the API: a live run recorded, then replayed under the same
//! rules (the figures must match what happened) and under a candidate that favours the
//! high tier (its service level must rise); and every bad request answered clearly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{send, spawn_app_with, Backend, TestApp};

/// Every tier first come, first served (no head start), one contact per agent at a time,
/// no rings and no wrap-up; `high_head_start` for the high tier.
fn rules(high_head_start: u64) -> String {
    format!(
        r#"
[selection]
strategy = "longest_idle"

[offer]
timeout_secs = 20
misses_before_away = 3
wrap_up_secs = 0

[capacity]
phone = 1
chat = 1
email = 1
api = 1
calls_block_other_work = true

[tiers.high]
head_start_secs = {high_head_start}
max_wait_secs = 600

[tiers.medium]
head_start_secs = 0
max_wait_secs = 600

[tiers.low]
head_start_secs = 0
max_wait_secs = 600
"#
    )
}

/// A desktop that accepts every offer and completes it after `handling`, until `done`
/// reaches `total`.
async fn work(mut d: Desktop, handling: Duration, done: Arc<AtomicUsize>, total: usize) {
    while done.load(Ordering::SeqCst) < total {
        let Some(v) = d.next_within(Duration::from_millis(200)).await else {
            continue;
        };
        match v["type"].as_str() {
            Some("offer") => {
                d.send(json!({ "type": "accept", "offer_id": v["offer_id"] }))
                    .await
            }
            Some("assigned") => {
                tokio::time::sleep(handling).await;
                d.send(json!({ "type": "complete", "interaction_id": v["interaction_id"], "disposition": "resolved" }))
                    .await;
            }
            Some("completed") => {
                done.fetch_add(1, Ordering::SeqCst);
            }
            Some("closed") => panic!("a desktop was closed: {v}"),
            _ => {}
        }
    }
}

async fn customer(app: &TestApp, email: &str, tier: &str) {
    let (status, c) = app
        .post(
            "/api/customers",
            &json!({ "tier": tier, "identities": [{ "kind": "email", "value": email }] }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A live run: two agents, twelve contacts (low first, then high and low mixed) 150 ms
/// apart, each handled for a second. Answers the window that holds it.
async fn live_run(app: &TestApp) -> (String, String) {
    customer(app, "gold@example.com", "high").await;
    customer(app, "plain@example.com", "low").await;
    let done = Arc::new(AtomicUsize::new(0));
    let total = 12;
    let mut workers = Vec::new();
    for name in ["Ada", "Bo"] {
        let (_, token) = create_agent(app, json!({ "name": name })).await;
        let d = Desktop::available(&app.base, &token).await;
        workers.push(tokio::spawn(work(
            d,
            Duration::from_secs(1),
            done.clone(),
            total,
        )));
    }
    let from = rfc3339(time::OffsetDateTime::now_utc() - Duration::from_secs(1));
    for tier in "LLLLHLHLHLHH".chars() {
        let email = if tier == 'H' {
            "gold@example.com"
        } else {
            "plain@example.com"
        };
        app.contact(json!({ "customer": { "email": email } })).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("the agents handle every contact within 30 s")
            .unwrap();
    }
    let to = rfc3339(time::OffsetDateTime::now_utc());
    (from, to)
}

fn secs(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a figure, not {v}"))
}

async fn the_simulator_replays_the_live_run_and_shows_a_better_rule_set(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, rules(0)).unwrap();
    let app = spawn_app_with(backend, |s| {
        s.routing.rules_file = path.display().to_string()
    })
    .await;
    let (from, to) = live_run(&app).await;

    let (status, sim) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": from, "to": to, "rules": rules(300), "targets_secs": { "high": 2, "low": 2 } }),
        )
        .await;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(sim["contacts"], 12, "{sim}");
    assert_eq!(sim["agents_on_duty"], 2, "{sim}");

    // What happened live, as recorded.
    let live = &sim["recorded"];
    assert_eq!(live["overall"]["answered"], 12, "{live}");
    assert_eq!(live["by_tier"]["high"]["contacts"], 5);
    assert_eq!(live["by_tier"]["low"]["contacts"], 7);

    // The same rules replayed: the simulated waits are the recorded ones within a tenth of
    // a second, as the README says (the replay does not spend the moments the live router
    // took to commit between one contact and the next: a few milliseconds each).
    let same = &sim["active"];
    assert_eq!(same["overall"]["answered"], 12, "{same}");
    for tier in ["high", "low"] {
        for figure in ["mean_wait_secs", "p95_wait_secs", "longest_wait_secs"] {
            let (l, s) = (
                secs(&live["by_tier"][tier][figure]),
                secs(&same["by_tier"][tier][figure]),
            );
            assert!(
                (l - s).abs() <= 0.1,
                "{tier} {figure}: recorded {l} s, replayed {s} s\n{sim}"
            );
        }
    }
    // Under first come, first served the high tier, arriving later, waits longest.
    assert!(
        secs(&live["by_tier"]["high"]["mean_wait_secs"]) > 2.0,
        "{live}"
    );
    let occupancy = secs(&same["occupancy"]);
    assert!(occupancy > 0.5 && occupancy <= 1.0, "{same}");

    // The candidate gives the high tier a head start: its service level rises, and the
    // low tier pays for it.
    let better = &sim["candidate"];
    let (before, after) = (
        secs(&same["by_tier"]["high"]["service_level"]),
        secs(&better["by_tier"]["high"]["service_level"]),
    );
    assert!(
        after >= before + 0.4,
        "high service level {before} -> {after}\n{sim}"
    );
    assert!(
        secs(&better["by_tier"]["high"]["mean_wait_secs"])
            < secs(&same["by_tier"]["high"]["mean_wait_secs"]) - 1.0,
        "{sim}"
    );
    assert!(
        secs(&better["by_tier"]["low"]["mean_wait_secs"])
            > secs(&same["by_tier"]["low"]["mean_wait_secs"]),
        "{sim}"
    );
    assert_eq!(better["overall"]["answered"], 12);

    // First come, first served replayed beside them: with no head starts and no rings
    // the active rules are just that, and the candidate's high tier beats it.
    let fifo = &sim["fifo"];
    for tier in ["high", "low"] {
        assert_eq!(
            fifo["by_tier"][tier]["mean_wait_secs"], same["by_tier"][tier]["mean_wait_secs"],
            "{sim}"
        );
    }
    assert!(
        secs(&better["by_tier"]["high"]["mean_wait_secs"])
            < secs(&fifo["by_tier"]["high"]["mean_wait_secs"]) - 1.0,
        "{sim}"
    );
    assert_eq!(fifo["idle_while_waiting_secs"], 0.0, "{fifo}");

    // The command line replays the same window to the same figures.
    let candidate = dir.path().join("candidate.toml");
    std::fs::write(&candidate, rules(300)).unwrap();
    let cli = |json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        c.env("SWITCHBOARD__STORAGE__DATABASE_URL", &app.database_url)
            .args([
                "simulate", "--from", &from, "--to", &to, "--target", "high=2",
            ])
            .args(["--target", "low=2", "--rules"])
            .arg(&candidate);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = cli(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    for report in ["recorded", "active", "candidate", "fifo"] {
        assert_eq!(from_cli[report], sim[report], "{report}");
    }
    let out = cli(false);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && table.contains("tier high")
            && table.contains("candidate")
            && table.contains("FIFO"),
        "{table}"
    );
    app.stop().await;
}

async fn bad_simulations_are_answered_clearly(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.routing.simulation_max_window_hours = 24).await;
    let now = time::OffsetDateTime::now_utc();
    let hour_ago = rfc3339(now - Duration::from_secs(3600));
    let later = rfc3339(now + Duration::from_secs(3600));

    // Nothing arrived in the window.
    let (status, body) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": hour_ago, "to": later }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("unprocessable"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("no contacts"),
        "{body}"
    );

    // Longer than the limit.
    let (status, body) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": rfc3339(now - Duration::from_secs(30 * 86400)), "to": rfc3339(now) }),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("to")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("24 hours"),
        "{body}"
    );

    // Backwards.
    let (status, body) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": rfc3339(now), "to": hour_ago }),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("to")),
        "{body}"
    );

    // Not a time; an unknown tier; rules that do not validate.
    let (status, body) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": "yesterday", "to": later }),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("from")),
        "{body}"
    );
    let (status, body) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": hour_ago, "to": later, "targets_secs": { "platinum": 5 } }),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("targets_secs.platinum")),
        "{body}"
    );
    let broken = rules(0).replace("wrap_up_secs = 0", "wrap_up_secs = \"soon\"");
    let (status, body) = app
        .post(
            "/api/routing/simulate",
            &json!({ "from": hour_ago, "to": later, "rules": broken }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_rules"))
    );
    assert!(!body["errors"].as_array().unwrap().is_empty(), "{body}");

    // An agent may not run simulations.
    let (_, token) = create_agent(&app, json!({ "name": "Cy" })).await;
    let (status, _) = send(
        app.client
            .post(format!("{}/api/routing/simulate", app.base))
            .bearer_auth(token)
            .json(&json!({ "from": hour_ago, "to": later })),
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}

both_backends!(
    the_simulator_replays_the_live_run_and_shows_a_better_rule_set,
    bad_simulations_are_answered_clearly,
);
