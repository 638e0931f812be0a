//! Changing the routing rules while the centre runs: validate, apply (a new version that
//! applies at once to what is waiting), versions, roll back, and the file with SIGHUP.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{event, send, spawn_app, start_process_with, Backend, TestApp, TOKEN};

both_backends!(a_rule_change_reorders_what_is_already_waiting_and_rolls_back);

const SHIPPED: &str = include_str!("../../config/routing.toml");

async fn put_rules(app: &TestApp, doc: &str) -> (u16, Value) {
    send(
        app.admin(reqwest::Method::PUT, "/api/routing/rules?comment=test")
            .header("content-type", "application/toml")
            .body(doc.to_string()),
    )
    .await
}

async fn a_rule_change_reorders_what_is_already_waiting_and_rolls_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, active) = app.get("/api/routing/rules").await;
    assert_eq!((status, active["version"].as_i64()), (200, Some(1)));
    assert_eq!(active["document"], SHIPPED, "version 1 is the shipped file");

    let (_, c) = app.post("/api/customers", &json!({ "tier": "high", "identities": [{ "kind": "email", "value": "big@example.com" }] })).await;
    assert!(c["id"].is_string());
    let low = app
        .contact(json!({ "customer": { "email": "small@example.com" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let high = app
        .contact(json!({ "customer": { "email": "big@example.com" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The low tier now has an urgent target and the high tier's is not: valid, with a
    // warning.
    let changed = SHIPPED
        .replace("target_secs = 20\nurgent = true\n", "target_secs = 20\n")
        .replace(
            "[tiers.low]\n",
            "[tiers.low]\ntarget_secs = 30\nurgent = true\n",
        );
    assert_ne!(changed, SHIPPED);
    let (status, v) = put_rules(&app, &changed).await;
    assert_eq!((status, v["version"].as_i64()), (200, Some(2)), "{v}");
    assert!(
        v["warnings"].to_string().contains("tiers.low.urgent"),
        "{v}"
    );

    let (_, token) = create_agent(
        &app,
        json!({ "name": "A", "level": 5, "capacity": { "api": 1 } }),
    )
    .await;
    let mut a = Desktop::available(&app.base, &token).await;
    assert_eq!(
        a.take_offer().await,
        low,
        "the waiting low contact now goes first"
    );
    let (_, i) = app.get(&format!("/api/interactions/{low}")).await;
    let offered = event(&i, "offered");
    assert_eq!(offered["data"]["rule_version"], 2);

    let (status, back) = app
        .post("/api/routing/rules/rollback", &json!({ "version": 1 }))
        .await;
    assert_eq!((status, back["version"].as_i64()), (200, Some(3)));
    let (_, active) = app.get("/api/routing/rules").await;
    assert_eq!(
        (active["version"].as_i64(), active["document"].as_str()),
        (Some(3), Some(SHIPPED))
    );
    let (_, versions) = app.get("/api/routing/rules/versions").await;
    let list: Vec<(i64, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(list, [(3, "admin"), (2, "admin"), (1, "file")]);
    // The one agent is full; a second one gets the high contact under version 3.
    let (_, b_token) = create_agent(&app, json!({ "name": "B", "level": 5 })).await;
    let mut b = Desktop::available(&app.base, &b_token).await;
    assert_eq!(b.take_offer().await, high);
    let (_, i) = app.get(&format!("/api/interactions/{high}")).await;
    let offered = event(&i, "offered");
    assert_eq!(offered["data"]["rule_version"], 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_with_errors_are_refused_whole_with_every_error_located() {
    let app = spawn_app(Backend::Sqlite).await;
    let broken = SHIPPED
        .replace("timeout_secs = 20\n", "timeout_secs = 0\n")
        .replace("{ owner = true, timeout_secs = 10 },", "{ owner = true },");
    let (status, err) = put_rules(&app, &broken).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (422, Some("invalid_rules")),
        "{err}"
    );
    let errors = err["errors"].to_string();
    assert!(
        errors.contains("offer.timeout_secs") && errors.contains("rings[0].steps[0].timeout_secs"),
        "{errors}"
    );
    let (_, active) = app.get("/api/routing/rules").await;
    assert_eq!(active["version"], 1, "nothing changed");

    let (status, v) = send(
        app.admin(reqwest::Method::POST, "/api/routing/rules/validate")
            .header("content-type", "application/toml")
            .body(broken),
    )
    .await;
    assert_eq!((status, v["valid"].as_bool()), (200, Some(false)));
    assert_eq!(v["errors"].as_array().unwrap().len(), 2, "{v}");
    let (status, _) = put_rules(&app, "this is = = not toml").await;
    assert_eq!(status, 422);
    let (status, _) = send(
        app.admin(reqwest::Method::PUT, "/api/routing/rules")
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 415);
    let (status, e) = app
        .post("/api/routing/rules/rollback", &json!({ "version": 42 }))
        .await;
    assert_eq!((status, e["field"].as_str()), (400, Some("version")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_rules_file_applies_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.toml");
    std::fs::write(&rules, SHIPPED).unwrap();
    let url = Backend::Sqlite.fresh_database(dir.path()).await;
    let env = [(
        "SWITCHBOARD__ROUTING__RULES_FILE",
        rules.display().to_string(),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = start_process_with(&url, dir.path(), &env);
    let client = reqwest::Client::new();
    let version = || async {
        let (_, v) = send(
            client
                .get(format!("{}/api/routing/rules", server.base))
                .bearer_auth(TOKEN),
        )
        .await;
        v["version"].as_i64().unwrap()
    };
    assert_eq!(version().await, 1);
    std::fs::write(
        &rules,
        SHIPPED.replace("strategy = \"longest_idle\"", "strategy = \"round_robin\""),
    )
    .unwrap();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let mut seen = 1;
    for _ in 0..50 {
        seen = version().await;
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 2, "the edited file became version 2");
    // A broken file is refused, as the server's log says, and the active version stays.
    std::fs::write(&rules, "not = = toml").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    server
        .until_logged("The routing rules file was not reloaded")
        .await;
    assert_eq!(version().await, 2);
    // `switchboard reload` asks the running server to do the same.
    std::fs::write(
        &rules,
        SHIPPED.replace("strategy = \"longest_idle\"", "strategy = \"least_busy\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("reload")
        .env(
            "SWITCHBOARD__SERVER__HTTP_ADDR",
            server.base.trim_start_matches("http://"),
        )
        .env("SWITCHBOARD__API__ADMIN_TOKEN", TOKEN)
        .env("SWITCHBOARD__ROUTING__RULES_FILE", &rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("changed: now version 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(version().await, 3);
    // A restart with the file unchanged since it was last read keeps the active version.
    drop(server);
    let server = start_process_with(&url, dir.path(), &env);
    let (_, v) = send(
        client
            .get(format!("{}/api/routing/rules", server.base))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(v["version"], 3);
}
