//! The API's description of itself: served to anyone, complete, and true — every
//! operation it lists exists, and refuses the roles it says it refuses.

use serde_json::{json, Value};

use crate::agent_client::create_agent;
use crate::helpers::{send, spawn_app, Backend, TestApp};

async fn document(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "served without a token");
    resp.json().await.unwrap()
}

/// Every (method, path) the document lists, with its least role.
fn operations(doc: &Value) -> Vec<(String, String, String)> {
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let role = op["x-required-role"].as_str().unwrap().to_string();
            ops.push((method.to_uppercase(), path.clone(), role));
        }
    }
    ops
}

/// Calls an operation with `token` (none: no Authorization header), path parameters
/// filled with an unknown id and an empty body of the kind it reads.
async fn call(
    app: &TestApp,
    doc: &Value,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let concrete: String = path
        .split('/')
        .map(|p| if p.starts_with('{') { "unknown" } else { p })
        .collect::<Vec<_>>()
        .join("/");
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}{concrete}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let body = &doc["paths"][path][method.to_lowercase()]["requestBody"]["content"];
    if body.get("application/json").is_some() {
        req = req.json(&json!({}));
    } else if body.get("application/toml").is_some() {
        req = req.header("content-type", "application/toml").body("");
    }
    send(req).await
}

#[tokio::test]
async fn the_api_describes_itself() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    for (method, path) in [
        ("POST", "/api/interactions"),
        ("GET", "/api/customers/{id}/history"),
        ("PUT", "/api/routing/rules"),
        ("POST", "/api/routing/simulate"),
        ("GET", "/api/audit"),
        ("GET", "/api/openapi.json"),
    ] {
        assert!(
            ops.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is described"
        );
    }
    // Bodies and queries are described from the types the handlers read.
    let create = &doc["paths"]["/api/interactions"]["post"];
    let schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = schema_ref.rsplit('/').next().unwrap();
    let schema = &doc["components"]["schemas"][name];
    assert!(schema["properties"]["customer"].is_object(), "{schema}");
    assert!(
        schema["properties"]["idempotency_key"].is_object(),
        "{schema}"
    );
    let history = &doc["paths"]["/api/customers/{id}/history"]["get"]["parameters"];
    let names: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "before", "limit"]);
    assert_eq!(
        doc["paths"]["/api/routing/simulate"]["post"]["responses"]["429"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_described_operation_exists_and_refuses_the_roles_it_says() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    let (_, agent) = create_agent(&app, json!({ "name": "Ann", "role": "agent" })).await;
    let (_, supervisor) = create_agent(&app, json!({ "name": "Sam", "role": "supervisor" })).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 30, "{} operations", ops.len());
    for (method, path, role) in &ops {
        // Exists: the admin reaches the handler (an unknown id may be 404, but never
        // "no such endpoint", and never 405).
        let (status, body) = call(&app, &doc, method, path, Some(crate::helpers::TOKEN)).await;
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert_ne!(body["message"], "no such endpoint", "{method} {path}");
        if role == "public" {
            continue;
        }
        let (status, body) = call(&app, &doc, method, path, None).await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
        if role == "supervisor" || role == "admin" {
            let (status, body) = call(&app, &doc, method, path, Some(&agent)).await;
            assert_eq!(status, 403, "{method} {path} as an agent: {body}");
        }
        if role == "admin" {
            let (status, body) = call(&app, &doc, method, path, Some(&supervisor)).await;
            assert_eq!(status, 403, "{method} {path} as a supervisor: {body}");
        }
        if role == "agent" {
            let (status, body) = call(&app, &doc, method, path, Some(&agent)).await;
            assert_ne!(status, 403, "{method} {path} is open to agents: {body}");
        }
    }
    app.stop().await;
}
