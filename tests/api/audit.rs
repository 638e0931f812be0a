//! The audit trail: every change, with who, when, what, and before and after.

use lettre::AsyncTransport;

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{assert_store_unchanged, send, settled_contents, spawn_app_with, Backend};

both_backends!(every_change_is_in_the_audit_trail_with_before_and_after);

/// Every action the server writes to the audit trail, each made here the way its users
/// make it: customers (over the API and by import), agents (and a desktop's login), the
/// rules (applied, rolled back, reloaded from the file), a supervisor's moves and
/// away-settings, and mail kept aside made a contact.
const EVERY_ACTION: [&str; 16] = [
    "customer.create",
    "customer.identity_add",
    "customer.update",
    "customer.identity_remove",
    "customer.purchase",
    "customer.purchases_import",
    "customer.merge",
    "agent.create",
    "agent.update",
    "agent.token_reset",
    "agent.login",
    "agent.set_away",
    "agent.remove",
    "interaction.move",
    "rules.apply",
    "email.kept_aside.contact",
];

async fn every_change_is_in_the_audit_trail_with_before_and_after(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("routing.toml");
    let shipped = include_str!("../../config/routing.toml");
    std::fs::write(&rules_file, shipped).unwrap();
    let app = spawn_app_with(backend, |s| {
        s.routing.rules_file = rules_file.display().to_string();
        s.email.domains = vec!["shop.test".into()];
    })
    .await;

    // Customers: created, changed, an identity added and taken away, a purchase, an
    // import with purchases, and two merged.
    let (_, c) = app.post("/api/customers", &json!({ "name": "Ann", "identities": [{ "kind": "email", "value": "ann@example.com" }] })).await;
    let customer = c["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .put(
            &format!("/api/customers/{customer}"),
            &json!({ "tier": "high", "identities": [{ "kind": "phone", "value": "+14155550100" }] }),
        )
        .await;
    assert_eq!(status, 200);
    let status = app
        .delete(&format!(
            "/api/customers/{customer}/identities/phone/%2B14155550100"
        ))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .put(
            &format!("/api/customers/{customer}/purchases/o-1"),
            &json!({ "amount": 25 }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, imported) = send(
        app.admin(reqwest::Method::POST, "/api/customers/import")
            .json(&json!([{ "email": "bo@example.com", "purchases": [{ "ref": "i-1", "amount": 10 }] }])),
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    let (_, bo) = app.get("/api/customers?email=bo%40example.com").await;
    let (status, _) = app
        .post(
            &format!("/api/customers/{customer}/merge"),
            &json!({ "from": bo["id"] }),
        )
        .await;
    assert_eq!(status, 200);

    // Agents: created, changed, a token reset, a login, set away by a supervisor, and
    // one removed.
    let (agent, token) = create_agent(&app, json!({ "name": "Bo", "level": 2 })).await;
    app.put(&format!("/api/agents/{agent}"), &json!({ "level": 4 }))
        .await;
    let (_, reset) = app
        .post(&format!("/api/agents/{agent}/token"), &json!({}))
        .await;
    let new_token = reset["token"].as_str().unwrap().to_string();
    let mut desk = Desktop::available(&app.base, &new_token).await;
    let (status, _) = app
        .post(
            &format!("/api/agents/{agent}/away"),
            &json!({ "reason": "coaching" }),
        )
        .await;
    assert_eq!(status, 200);
    desk.expect("presence").await;
    let (leaver, _) = create_agent(&app, json!({ "name": "Cy" })).await;
    assert_eq!(app.delete(&format!("/api/agents/{leaver}")).await, 204);

    // A waiting contact moved to the agent.
    let waiting = app
        .contact(json!({ "customer": { "email": "dee@example.com" } }))
        .await;
    let (status, moved) = app
        .post(
            &format!("/api/interactions/{}/move", waiting["id"].as_str().unwrap()),
            &json!({ "agent_id": agent }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");

    // The rules: applied, rolled back, and the file changed and read again.
    let doc = shipped.replace("wrap_up_secs = 30", "wrap_up_secs = 10");
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
    let (status, _) = app
        .post("/api/routing/rules/rollback", &json!({ "version": 1 }))
        .await;
    assert_eq!(status, 200);
    std::fs::write(
        &rules_file,
        shipped.replace("strategy = \"longest_idle\"", "strategy = \"round_robin\""),
    )
    .unwrap();
    let (status, reloaded) = app.post("/api/routing/rules/reload", &json!({})).await;
    assert_eq!((status, &reloaded["changed"]), (200, &json!(true)));

    // A customer's mail kept aside (sent as bulk mail) made a contact.
    let raw = "From: eve@example.com\r\nTo: support@shop.test\r\nSubject: Refund\r\nPrecedence: bulk\r\n\r\nPlease refund me.\r\n";
    let envelope = lettre::address::Envelope::new(
        Some("eve@example.com".parse().unwrap()),
        vec!["support@shop.test".parse().unwrap()],
    )
    .unwrap();
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.unwrap().port())
        .build()
        .send_raw(&envelope, raw.as_bytes())
        .await
        .unwrap();
    let (_, kept) = app.get("/api/email/kept-aside").await;
    let kept_id = kept["messages"][0]["id"].as_str().unwrap().to_string();
    let (status, made) = app
        .post(
            &format!("/api/email/kept-aside/{kept_id}/contact"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 201, "{made}");

    // Every action is in the trail, and nothing else is.
    let (status, all) = app.get("/api/audit?limit=500").await;
    assert_eq!(status, 200, "{all}");
    let entries = all["entries"].as_array().unwrap();
    let actions: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let every: std::collections::BTreeSet<&str> = EVERY_ACTION.into_iter().collect();
    assert_eq!(actions, every);
    // Each by who did it, on what.
    let find = |action: &str, actor: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["actor"] == actor)
            .unwrap_or_else(|| panic!("no {action} by {actor} in {all}"))
    };
    for (action, actor, kind, target) in [
        ("customer.update", "admin", "customer", customer.as_str()),
        ("customer.identity_remove", "admin", "customer", &customer),
        ("customer.purchase", "admin", "customer", &customer),
        ("agent.login", &agent, "agent", &agent),
        ("agent.set_away", "admin", "agent", &agent),
        ("agent.remove", "admin", "agent", &leaver),
        (
            "interaction.move",
            "admin",
            "interaction",
            waiting["id"].as_str().unwrap(),
        ),
        ("email.kept_aside.contact", "admin", "kept_aside", &kept_id),
    ] {
        let e = find(action, actor);
        assert_eq!(
            (e["target_kind"].as_str(), e["target_id"].as_str()),
            (Some(kind), Some(target)),
            "{e}"
        );
    }
    let merged: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["action"] == "customer.merge")
        .map(|e| e["target_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        merged,
        [customer.as_str(), bo["id"].as_str().unwrap()].into(),
        "both customers of a merge"
    );
    let imported = find("customer.purchases_import", "admin");
    assert_eq!(imported["target_id"], bo["id"]);
    assert_eq!(find("customer.create", "admin")["target_id"], bo["id"]);
    assert_eq!(
        find("agent.set_away", "admin")["after"]["reason"],
        "coaching"
    );
    assert_eq!(
        find("interaction.move", "admin")["after"]["agent_id"],
        agent.as_str()
    );
    assert_eq!(
        find("email.kept_aside.contact", "admin")["after"]["interaction_id"],
        made["interaction_id"]
    );
    let applied: Vec<(&str, i64)> = entries
        .iter()
        .filter(|e| e["action"] == "rules.apply")
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["after"]["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        applied,
        [("file", 4), ("admin", 3), ("admin", 2), ("file", 1)],
        "newest first: the reload, the rollback, the change, the first read of the file"
    );
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
        .find(|e| e["action"] == "rules.apply" && e["after"]["version"] == 2)
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
            "agent.set_away",
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

both_backends!(the_database_itself_refuses_to_change_or_remove_history_and_audit);

/// Runs `sql` on the store at `database_url` from outside the server, as someone with a
/// SQL client would; answers the database's error, if any.
async fn run_sql(database_url: &str, sql: &str) -> Result<(), String> {
    use sqlx::Connection;
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query(sql)
            .execute(&mut db)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    } else {
        let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query(sql)
            .execute(&mut db)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

async fn the_database_itself_refuses_to_change_or_remove_history_and_audit(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    app.contact(json!({ "customer": { "email": "kept@example.com" }, "subject": "On the record" }))
        .await;
    let (status, _) = app
        .post(
            "/api/customers",
            &json!({ "name": "Audited", "identities": [] }),
        )
        .await;
    assert_eq!(status, 201);
    let before = settled_contents(&app).await;
    assert!(!before["history"].is_empty() && !before["audit"].is_empty());
    let postgres = !app.database_url.starts_with("sqlite:");
    for (table, column, guard) in [
        ("history", "kind", "history is append-only"),
        ("audit", "actor", "the audit trail is append-only"),
    ] {
        let mut statements = vec![
            format!("UPDATE {table} SET {column} = 'rewritten'"),
            format!("UPDATE {table} SET {column} = 'rewritten' WHERE seq = (SELECT MAX(seq) FROM {table})"),
            format!("DELETE FROM {table}"),
            format!("DELETE FROM {table} WHERE seq = (SELECT MIN(seq) FROM {table})"),
        ];
        if postgres {
            statements.push(format!("TRUNCATE {table}"));
        }
        for sql in statements {
            let refused = run_sql(&app.database_url, &sql).await;
            assert!(
                refused.as_ref().is_err_and(|e| e.contains(guard)),
                "{sql}: {refused:?}"
            );
        }
    }
    assert_store_unchanged(
        &app.database_url,
        &before,
        "changing the history or the audit",
    )
    .await;
    // What the database refused, the API still shows.
    let (_, c) = app.get("/api/customers?email=kept%40example.com").await;
    let (_, h) = app
        .get(&format!(
            "/api/customers/{}/history",
            c["id"].as_str().unwrap()
        ))
        .await;
    assert!(h["events"].as_array().unwrap().len() >= 3, "{h}");
    app.stop().await;
}
