//! Running it: health, readiness, metrics, clean shutdown, configuration checks.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_all_queued, send, spawn_app, start_process, Backend, Load};

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() {
    let app = spawn_app(Backend::Sqlite).await;
    app.contact(json!({ "customer": { "email": "private.person@example.com", "phone": "+14155550123" }, "body": "secret words" })).await;
    let (status, health) = send(app.client.get(format!("{}/healthz", app.base))).await;
    assert_eq!((status, health["status"].as_str().unwrap()), (200, "ok"));
    let (status, ready) = send(app.client.get(format!("{}/readyz", app.base))).await;
    assert_eq!((status, ready["status"].as_str().unwrap()), (200, "ready"));

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "switchboard_interactions_received_total{channel=\"api\"}",
        "switchboard_interactions_queued_total{channel=\"api\",tier=\"low\"}",
        "switchboard_queue_depth{tier=\"low\"}",
        "switchboard_intake_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    for private in ["private.person", "4155550123", "secret words"] {
        assert!(
            !metrics.contains(private),
            "metrics carry customer data: {private}"
        );
    }
    app.stop().await;
}

both_backends!(sigterm_mid_load_stops_cleanly_and_keeps_every_contact_it_acknowledged);

async fn sigterm_mid_load_stops_cleanly_and_keeps_every_contact_it_acknowledged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let server = start_process(&url, dir.path());
    let load = Load::start(&server.base, 16, "term");
    load.until_acknowledged(200).await;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut server = server;
    let mut exited = None;
    for _ in 0..200 {
        if let Some(s) = server.child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.expect("the server exits within 10 s of SIGTERM");
    assert!(status.success(), "a clean exit: {status}");
    let acked = load.finish().await;

    let server = start_process(&url, dir.path());
    assert_all_queued(&server.base, &acked).await;
}

#[test]
fn check_config_names_what_is_wrong_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[tiers]\norder = [\"gold\", \"silver\"]\ndefault = \"bronze\"\n[tiers.rules.platinum]\nmin_frequency = 2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tiers.default: 'bronze' is not one of tiers.order"),
        "{err}"
    );
    assert!(
        err.contains("tiers.rules.platinum: 'platinum' is not one of tiers.order"),
        "{err}"
    );

    // A reports' time zone that is none, or off the whole hour, is named.
    let zone = dir.path().join("zone.toml");
    std::fs::write(&zone, "[api]\nreport_time_zone = \"Asia/Kolkata\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config"])
        .arg(&zone)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api.report_time_zone: Asia/Kolkata is +5:30 from UTC"),
        "{err}"
    );

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[storage]\nmax_conections = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config"])
        .arg(&typo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("storage.max_conections") && err.contains("typo.toml"),
        "{err}"
    );

    // The routing rules it names are checked too.
    let rules = dir.path().join("routing.toml");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/routing.toml"))
            .unwrap();
    std::fs::write(
        &rules,
        shipped.replace("{ owner = true, timeout_secs = 10 },", "{ owner = true },"),
    )
    .unwrap();
    let with_rules = dir.path().join("with-rules.toml");
    std::fs::write(
        &with_rules,
        format!(
            "[routing]\nrules_file = {:?}\n",
            rules.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config"])
        .arg(&with_rules)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rings[0].steps[0].timeout_secs: needed"),
        "{err}"
    );

    let good = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}
