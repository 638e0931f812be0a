//! Agent admin over the API: agents, their tokens, and customers' account managers.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{send, spawn_app, Backend};

both_backends!(
    an_admin_creates_an_agent_and_sees_its_token_once,
    bad_agent_fields_are_named_and_extensions_are_unique,
    a_customer_can_have_an_active_agent_as_owner,
);

async fn an_admin_creates_an_agent_and_sees_its_token_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, a) = app
        .post(
            "/api/agents",
            &json!({ "name": "Wang Fang", "email": "Wang.Fang@Example.com", "extension": "201", "level": 3,
                     "skills": ["Billing", "complaints", "billing"], "capacity": { "chat": 5 } }),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_string();
    let token = a["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(a["email"], "wang.fang@example.com");
    assert_eq!(a["skills"], json!(["billing", "complaints"]));
    assert_eq!(a["capacity"], json!({ "chat": 5 }));

    let (status, got) = app.get(&format!("/api/agents/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        got.get("token").is_none(),
        "the token is shown only when made: {got}"
    );
    let (_, list) = app.get("/api/agents").await;
    assert!(list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == id.as_str()));
    assert!(!list.to_string().contains(&token));

    let (status, changed) = app
        .put(
            &format!("/api/agents/{id}"),
            &json!({ "level": 4, "extension": null }),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["level"].as_u64(),
            &changed["extension"],
            &changed["name"]
        ),
        (Some(4), &Value::Null, &json!("Wang Fang"))
    );

    let (status, reset) = app
        .post(&format!("/api/agents/{id}/token"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_ne!(reset["token"].as_str().unwrap(), token);

    assert_eq!(app.delete(&format!("/api/agents/{id}")).await, 204);
    let (_, removed) = app.get(&format!("/api/agents/{id}")).await;
    assert_eq!(removed["active"], false);
    let (status, _) = app
        .post(&format!("/api/agents/{id}/token"), &json!({}))
        .await;
    assert_eq!(status, 409);
    app.stop().await;
}

async fn bad_agent_fields_are_named_and_extensions_are_unique(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "A", "level": 11 }), "level"),
        (
            json!({ "name": "A", "extension": "two-oh-one" }),
            "extension",
        ),
        (
            json!({ "name": "A", "skills": ["billing & more"] }),
            "skills[0]",
        ),
        (
            json!({ "name": "A", "capacity": { "chat": 500 } }),
            "capacity.chat",
        ),
        (
            json!({ "name": "A", "capacity": { "fax": 1 } }),
            "capacity.fax",
        ),
        (json!({ "name": "A", "email": "nope" }), "email"),
        (json!({ "name": "A", "team": "x" }), "team"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/api/agents", &body).await;
        assert_eq!(
            (status, err["field"].as_str().unwrap_or_default()),
            (400, field),
            "{body} → {err}"
        );
    }
    let (status, _) = app
        .post("/api/agents", &json!({ "name": "A", "extension": "201" }))
        .await;
    assert_eq!(status, 201);
    let (status, err) = app
        .post("/api/agents", &json!({ "name": "B", "extension": "201" }))
        .await;
    assert_eq!((status, err["field"].as_str().unwrap()), (409, "extension"));
    let (status, _) = app.get("/api/agents/not-an-id").await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn a_customer_can_have_an_active_agent_as_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, agent) = app
        .post("/api/agents", &json!({ "name": "Account Manager" }))
        .await;
    let agent_id = agent["id"].as_str().unwrap();
    let (_, c) = app
        .post(
            "/api/customers",
            &json!({ "identities": [{ "kind": "email", "value": "vip@example.com" }] }),
        )
        .await;
    let path = format!("/api/customers/{}", c["id"].as_str().unwrap());

    let (status, owned) = app.put(&path, &json!({ "owner": agent_id })).await;
    assert_eq!((status, owned["owner"].as_str().unwrap()), (200, agent_id));
    let (status, err) = app
        .put(
            &path,
            &json!({ "owner": "00000000-0000-7000-8000-000000000000" }),
        )
        .await;
    assert_eq!((status, err["field"].as_str().unwrap()), (400, "owner"));
    let (_, history) = app.get(&format!("{path}/history")).await;
    let update = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "customer_updated")
        .unwrap();
    assert_eq!(update["data"]["after"]["owner"], agent_id);

    assert_eq!(app.delete(&format!("/api/agents/{agent_id}")).await, 204);
    let (status, _) = app.put(&path, &json!({ "owner": agent_id })).await;
    assert_eq!(status, 400, "a removed agent cannot become an owner");
    let (status, cleared) = send(
        app.admin(reqwest::Method::PUT, &path)
            .json(&json!({ "owner": null })),
    )
    .await;
    assert_eq!((status, &cleared["owner"]), (200, &Value::Null));
    app.stop().await;
}
