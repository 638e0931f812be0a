//! The audit trail: every change, with who, when, what, and before and after.

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{send, spawn_app, Backend};

both_backends!(every_change_is_in_the_audit_trail_with_before_and_after);

async fn every_change_is_in_the_audit_trail_with_before_and_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, c) = app.post("/api/customers", &json!({ "name": "Ann", "identities": [{ "kind": "email", "value": "ann@example.com" }] })).await;
    let customer = c["id"].as_str().unwrap().to_string();
    app.put(
        &format!("/api/customers/{customer}"),
        &json!({ "tier": "high" }),
    )
    .await;
    let (agent, token) = create_agent(&app, json!({ "name": "Bo", "level": 2 })).await;
    app.put(&format!("/api/agents/{agent}"), &json!({ "level": 4 }))
        .await;
    let (_, reset) = app
        .post(&format!("/api/agents/{agent}/token"), &json!({}))
        .await;
    let new_token = reset["token"].as_str().unwrap().to_string();
    let _desk = Desktop::login(&app.base, &new_token, None).await;
    let doc =
        include_str!("../../config/routing.toml").replace("wrap_up_secs = 30", "wrap_up_secs = 10");
    let (status, _) = send(
        app.admin(
            reqwest::Method::PUT,
            "/api/routing/rules?comment=shorter%20wrap-up",
        )
        .header("content-type", "application/toml")
        .body(doc),
    )
    .await;
    assert_eq!(status, 200);

    let (status, all) = app.get("/api/audit?limit=500").await;
    assert_eq!(status, 200, "{all}");
    let entries = all["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "customer.create",
        "customer.identity_add",
        "customer.update",
        "agent.create",
        "agent.update",
        "agent.token_reset",
        "agent.login",
        "rules.apply",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    let text = all.to_string();
    assert!(
        !text.contains(&token) && !text.contains(&new_token),
        "tokens are never recorded"
    );

    let update = entries
        .iter()
        .find(|e| e["action"] == "customer.update")
        .unwrap();
    assert_eq!(
        (update["actor"].as_str(), update["target_id"].as_str()),
        (Some("admin"), Some(customer.as_str()))
    );
    assert_eq!(
        (
            &update["before"]["explicit_tier"],
            &update["after"]["explicit_tier"]
        ),
        (&Value::Null, &json!("high"))
    );
    let agent_update = entries
        .iter()
        .find(|e| e["action"] == "agent.update")
        .unwrap();
    assert_eq!(
        (
            agent_update["before"]["level"].as_u64(),
            agent_update["after"]["level"].as_u64()
        ),
        (Some(2), Some(4))
    );
    let login = entries
        .iter()
        .find(|e| e["action"] == "agent.login")
        .unwrap();
    assert_eq!(login["actor"], agent.as_str());
    let rules = entries
        .iter()
        .find(|e| e["action"] == "rules.apply")
        .unwrap();
    assert_eq!(
        (
            rules["after"]["version"].as_i64(),
            rules["after"]["comment"].as_str()
        ),
        (Some(2), Some("shorter wrap-up"))
    );

    let (_, agents_only) = app
        .get(&format!("/api/audit?action=agent.&target_id={agent}"))
        .await;
    let only: Vec<&str> = agents_only["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        only,
        [
            "agent.login",
            "agent.token_reset",
            "agent.update",
            "agent.create"
        ]
    );
    let (_, page) = app.get("/api/audit?limit=2").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let before = page["next_before"].as_i64().expect("more pages");
    let (status, next) = app
        .get(&format!("/api/audit?limit=2&before={before}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        next["entries"][0]["seq"].as_i64().unwrap() < page["entries"][1]["seq"].as_i64().unwrap()
    );
    let (_, upper) = app.get("/api/audit?action=AGENT.").await;
    assert_eq!(
        upper["entries"].as_array().unwrap().len(),
        0,
        "actions compare exactly, on both databases"
    );
    let (status, e) = app.get("/api/audit?since=yesterday").await;
    assert_eq!((status, e["field"].as_str()), (400, Some("since")));
    app.stop().await;
}
