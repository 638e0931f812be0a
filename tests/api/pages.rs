//! What the desktop and the console are served and read: the pages themselves, the
//! agent's capacity in the welcome, the customer's open matters with their deadlines,
//! the live queue's longest waits, and the service level hour by hour.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestApp, TOKEN};

async fn pages_are_served_with_a_strict_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = reqwest::Client::new();
    for (path, marker) in [
        ("/desktop", "/ui/desktop.js"),
        ("/console", "/ui/console.js"),
    ] {
        let r = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let policy = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        let html = r.text().await.unwrap();
        assert!(html.contains(marker), "{path} loads its script");
    }
    for asset in [
        "app.css",
        "common.js",
        "desktop.js",
        "console.js",
        "kept-aside.js",
        "service.js",
        "reports.js",
        "work.js",
        "canned.js",
        "retention.js",
        "search.js",
    ] {
        let r = client
            .get(format!("{}/ui/{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.text().await.unwrap().len() > 1000, "{asset} has content");
    }
    app.stop().await;
}

/// Sends `GET target` exactly as written (an HTTP library would tidy `..` away before
/// sending); answers the status and what came back.
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: switchboard\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer to {target}: {text:?}"));
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_reaches_a_file_outside_what_the_server_serves() {
    let app = spawn_app(Backend::Sqlite).await;
    let contact = app
        .contact(json!({ "customer": { "email": "files@example.com" } }))
        .await;
    let id = contact["id"].as_str().unwrap();
    // Files a traversal would reach from where the server runs (the workspace: the tests
    // run in it) or from the root, each with a line only that file has.
    let workspace = std::fs::read_to_string("Cargo.toml").expect("the tests run in the workspace");
    assert!(workspace.contains("[workspace]"));
    let secrets = ["[workspace]", "root:x:0:0"];
    let mut targets = Vec::new();
    for dots in ["..", "%2e%2e", "%2E%2E", ".%2e"] {
        for slash in ["/", "%2f", "%2F", "%5c", "\\"] {
            for (up, file) in [(1, "Cargo.toml"), (12, "etc/passwd")] {
                let path = format!("{dots}{slash}").repeat(up) + &file.replace('/', slash);
                targets.push(format!("/ui/{path}"));
                targets.push(format!("/api/interactions/{id}/attachments/{path}"));
                targets.push(format!("/chat/{path}"));
            }
        }
    }
    targets.push("/ui/../Cargo.toml".into());
    targets.push("/../Cargo.toml".into());
    targets.push("/ui/%00../Cargo.toml".into());
    for target in &targets {
        let (status, text) = raw_get(&app, target).await;
        assert!(
            (400..500).contains(&status),
            "{target} is answered as not found or refused: {text}"
        );
        for secret in secrets {
            assert!(!text.contains(secret), "{target} served a file: {text}");
        }
    }
    // The same client reads a page, so the answers above are not for want of asking right.
    let (status, text) = raw_get(&app, "/ui/app.css").await;
    assert_eq!(status, 200, "{text}");
    app.stop().await;
}

async fn the_desktop_learns_capacity_open_matters_and_deadlines(backend: Backend) {
    let app = spawn_app(backend).await;
    let (agent_id, token) = create_agent(
        &app,
        json!({ "name": "Wang Fang", "skills": ["complaints"], "capacity": { "chat": 2 } }),
    )
    .await;
    let mut desk = Desktop::available(&app.base, &token).await;
    // The rules' capacity, with the agent's own override.
    assert_eq!(desk.welcome["capacity"]["chat"], 2);
    assert_eq!(desk.welcome["capacity"]["phone"], 1);
    assert_eq!(desk.welcome["capacity"]["email"], 5);

    let complaint = app
        .contact(json!({ "customer": { "email": "mei.chen@example.com" }, "topic": "complaint", "subject": "Broken on arrival" }))
        .await;
    let offer = desk.expect("offer").await;
    desk.accept(&offer).await;
    let customer = complaint["customer_id"].as_str().unwrap();
    // The agent serving the customer sees the open complaint with its 24 h deadline.
    let r = reqwest::Client::new()
        .get(format!("{}/api/customers/{customer}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    let matters = c["open_matters"].as_array().unwrap();
    assert_eq!(matters.len(), 1, "{c}");
    assert_eq!(matters[0]["interaction_id"], complaint["id"]);
    assert_eq!(matters[0]["state"], "assigned");
    let created = time(&complaint["created_at"]);
    let deadline = time(&matters[0]["deadline"]);
    assert_eq!(deadline - created, 24 * 3600 * 1000);

    // The account manager is named for the agent reading the customer.
    let (status, c) = app
        .put(
            &format!("/api/customers/{customer}"),
            &json!({ "owner": agent_id }),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["owner"], agent_id.as_str());
    assert_eq!(c["owner_name"], "Wang Fang");

    // A second contact without a deadline topic is open, with no deadline.
    app.contact(json!({ "customer": { "email": "mei.chen@example.com" }, "subject": "And an invoice copy" }))
        .await;
    let (_, c) = app.get(&format!("/api/customers/{customer}")).await;
    let matters = c["open_matters"].as_array().unwrap();
    assert_eq!(matters.len(), 2, "{c}");
    assert!(matters[1]["deadline"].is_null());

    // Completed, the complaint is no longer an open matter.
    let id = complaint["id"].as_str().unwrap();
    desk.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
        .await;
    desk.expect("completed").await;
    let (_, c) = app.get(&format!("/api/customers/{customer}")).await;
    let open: Vec<&Value> = c["open_matters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["interaction_id"] == complaint["id"])
        .collect();
    assert!(open.is_empty(), "{c}");
    app.stop().await;
}

async fn the_console_sees_the_longest_waits_and_the_service_level_by_hour(backend: Backend) {
    let app = spawn_app(backend).await;
    // A medium-tier customer: the shipped rules give the medium tier a 60 s target.
    let (status, c) = app
        .post(
            "/api/customers",
            &json!({ "tier": "medium", "identities": [{ "kind": "email", "value": "lin@example.com" }] }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let waiting = app
        .contact(json!({ "customer": { "email": "lin@example.com" }, "topic": "billing", "subject": "Where is my refund?" }))
        .await;
    let (status, q) = app.get("/api/queue").await;
    assert_eq!(status, 200);
    let oldest = q["oldest"].as_array().unwrap();
    assert_eq!(oldest.len(), 1, "{q}");
    assert_eq!(oldest[0]["id"], waiting["id"]);
    assert_eq!(oldest[0]["channel"], "api");
    assert_eq!(oldest[0]["topic"], "billing");
    assert!(oldest[0]["waited_secs"].as_i64().unwrap() >= 0);

    // Nothing answered yet: no tier has figures.
    let (status, sl) = app.get("/api/queue/service-level").await;
    assert_eq!(status, 200);
    assert_eq!(sl["hours"].as_array().unwrap().len(), 24);
    assert!(sl["tiers"].as_object().unwrap().is_empty(), "{sl}");

    let (_, token) = create_agent(&app, json!({ "name": "Lin", "skills": ["billing"] })).await;
    let mut desk = Desktop::available(&app.base, &token).await;
    let offer = desk.expect("offer").await;
    desk.accept(&offer).await;
    let (_, sl) = app.get("/api/queue/service-level?hours=3").await;
    let hours = sl["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 3);
    let medium = &sl["tiers"]["medium"];
    assert_eq!(medium["target_secs"], 60, "{sl}");
    let points = medium["hours"].as_array().unwrap();
    // The answer falls in the current hour, the last of the window (or the one before,
    // when an hour turned between the answer and the question).
    let answered: Vec<usize> = (0..3).filter(|&h| points[h]["answered"] == 1).collect();
    assert!(answered == [2] || answered == [1], "{sl}");
    let hour = &points[answered[0]];
    assert_eq!(hour["within_target"], 1);
    assert_eq!(hour["share"], 1.0);
    assert!(
        points[0]["share"].is_null(),
        "an hour with no contacts has no share"
    );

    let (status, e) = app.get("/api/queue/service-level?hours=0").await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["field"], "hours");
    let (status, _) = app.get("/api/queue/service-level?hours=lots").await;
    assert_eq!(status, 400);
    // Agents do not see the console's figures.
    let r = reqwest::Client::new()
        .get(format!("{}/api/queue/service-level", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

fn time(v: &Value) -> i64 {
    let s = v.as_str().expect("a time");
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

both_backends!(
    pages_are_served_with_a_strict_policy,
    the_desktop_learns_capacity_open_matters_and_deadlines,
    the_console_sees_the_longest_waits_and_the_service_level_by_hour,
);
