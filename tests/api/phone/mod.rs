//! The phone channel end to end, in each of its three formats: real-format payloads,
//! signed here as each vendor documents it (with this file's own HMAC code, not the
//! server's), a call followed from ringing through the queue, the offer on an agent's
//! websocket, the dial (in the answer, by a signed callback, or by updating the Twilio
//! call), answer and hang-up; abandoned calls; and every kind of bad event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{
    assert_store_unchanged, event, send, settled_contents, spawn_app_with, start_process_with,
    Backend, TestApp, TOKEN,
};

mod answered;
mod vendors;

pub(crate) const SECRET: &str = "phone-test-secret";
pub(crate) const ZAMMAD_TOKEN: &str = "zammad-token-123";
pub(crate) const TWILIO_TOKEN: &str = "twilio-auth-token";
pub(crate) const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const TWILIO_PUBLIC: &str = "https://switchboard.example.com";

/// What a fake phone system (or Twilio's API) received: (path, headers, body).
pub(crate) type Received = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A fake phone system: records every request; refuses the first `failures` with 500.
async fn phone_system(failures: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let log = received.clone();
    let left = Arc::new(Mutex::new(failures));
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let (log, left) = (log.clone(), left.clone());
            async move {
                log.lock()
                    .unwrap()
                    .push((uri.path().to_string(), headers, body));
                let mut left = left.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Every phone format enabled, calling back to `callback`.
pub(crate) fn configure(s: &mut switchboard::config::Settings, callback: &str, window_ms: u64) {
    let p = &mut s.phone;
    p.secret = SECRET.into();
    p.callback_url = format!("{callback}/switchboard/commands");
    p.answer_window_ms = window_ms;
    p.zammad_token = ZAMMAD_TOKEN.into();
    p.twilio_account_sid = TWILIO_SID.into();
    p.twilio_auth_token = TWILIO_TOKEN.into();
    p.twilio_public_url = TWILIO_PUBLIC.into();
    p.twilio_api_url = callback.to_string();
    p.blocked_numbers = vec!["+44 20 7946 0999".into()];
    p.max_body_bytes = 4096;
}

/// A fake phone system that takes every request (for tests elsewhere).
pub(crate) async fn fake_phone_system() -> (String, Received) {
    phone_system(0).await
}

/// A server with every phone format enabled (for tests elsewhere).
pub(crate) async fn phone_app(backend: Backend, callback: &str, window_ms: u64) -> TestApp {
    app(backend, callback, window_ms).await
}

/// Posts a signed native event in the background (its answer may wait for an agent);
/// answers (status, body) when it comes.
pub(crate) fn native_in_background(
    app: &TestApp,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let (client, base) = (app.client.clone(), app.base.clone());
    tokio::spawn(async move {
        let text = body.to_string();
        let ts = now();
        let resp = client
            .post(format!("{base}/channels/phone/events"))
            .header("content-type", "application/json")
            .header("x-switchboard-timestamp", ts.to_string())
            .header(
                "x-switchboard-signature",
                native_signature(SECRET, ts, &text),
            )
            .body(text)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

/// A server with every phone format enabled, calling back to `callback`.
async fn app(backend: Backend, callback: &str, window_ms: u64) -> TestApp {
    let callback = callback.to_string();
    spawn_app_with(backend, move |s| configure(s, &callback, window_ms)).await
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The native signature: hex HMAC-SHA256 of "{timestamp}.{body}".
fn native_signature(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}

/// Posts a native event signed with `secret` at `timestamp`.
pub(crate) async fn native_at(
    app: &TestApp,
    body: &Value,
    secret: &str,
    timestamp: u64,
) -> (u16, Value) {
    let text = body.to_string();
    let resp = app
        .client
        .post(format!("{}/channels/phone/events", app.base))
        .header("content-type", "application/json")
        .header("x-switchboard-timestamp", timestamp.to_string())
        .header(
            "x-switchboard-signature",
            native_signature(secret, timestamp, &text),
        )
        .body(text)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn native(app: &TestApp, body: Value) -> (u16, Value) {
    native_at(app, &body, SECRET, now()).await
}

/// Twilio's signature: Base64 HMAC-SHA1 of the URL and the sorted parameters.
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub(crate) async fn twilio(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> (u16, String) {
    let signature =
        signature.unwrap_or_else(|| twilio_signature(&format!("{TWILIO_PUBLIC}{path}"), params));
    let body = form(params);
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

pub(crate) async fn zammad(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}/channels/phone/zammad/{token}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(params))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn history_kinds(app: &TestApp, interaction_id: &str) -> (Value, Vec<String>) {
    let (status, i) = app
        .get(&format!("/api/interactions/{interaction_id}"))
        .await;
    assert_eq!(status, 200, "{i}");
    let kinds = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    (i, kinds)
}

/// Asserts `expected` appear in this order. (The ringing event is recorded while the
/// router may already be offering the call, so its place beside `offered` varies; it
/// is checked on its own.)
fn assert_in_order(kinds: &[String], expected: &[&str]) {
    assert!(
        kinds.iter().any(|k| k == "call_ringing"),
        "call_ringing missing in {kinds:?}"
    );
    let mut at = 0;
    for want in expected {
        match kinds[at..].iter().position(|k| k == want) {
            Some(i) => at += i + 1,
            None => panic!("{want} missing or out of order in {kinds:?}"),
        }
    }
}

/// Waits until the fake phone system has received `n` requests.
pub(crate) async fn received(log: &Received, n: usize) -> Vec<(String, HeaderMap, String)> {
    for _ in 0..200 {
        if log.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = log.lock().unwrap().clone();
    assert!(got.len() >= n, "expected {n} requests, got {}", got.len());
    got
}

async fn a_native_call_taken_within_the_window_is_dialled_in_the_answer(backend: Backend) {
    let (url, _) = phone_system(0).await;
    // Eight seconds for the agent to take it, as a loaded CI machine may need.
    let app = app(backend, &url, 8000).await;
    let (agent_id, token) = create_agent(
        &app,
        json!({ "name": "Ann", "extension": "201", "skills": ["billing"] }),
    )
    .await;
    let mut desk = Desktop::available(&app.base, &token).await;

    let ringing = json!({ "event": "ringing", "call_id": "call-1", "from": "+4930123456", "to": "+4930999", "topic": "billing" });
    let base = app.base.clone();
    let post = {
        let app_client = app.client.clone();
        let body = ringing.to_string();
        tokio::spawn(async move {
            let ts = now();
            app_client
                .post(format!("{base}/channels/phone/events"))
                .header("x-switchboard-timestamp", ts.to_string())
                .header(
                    "x-switchboard-signature",
                    native_signature(SECRET, ts, &body),
                )
                .body(body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let offered = desk.expect("offer").await;
    assert_eq!(offered["interaction"]["channel"], "phone");
    let interaction_id = desk.accept(&offered).await;
    let answer = post.await.unwrap();
    assert_eq!(answer["action"], "dial", "{answer}");
    assert_eq!(answer["extension"], "201");
    assert_eq!(answer["agent_id"], agent_id.as_str());
    assert_eq!(answer["interaction_id"], interaction_id.as_str());

    // The phone system retries the ringing event: nothing changes.
    let (status, again) = native(&app, ringing).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["interaction_id"], interaction_id.as_str());

    let (status, r) = native(
        &app,
        json!({ "event": "answered", "call_id": "call-1", "extension": "201" }),
    )
    .await;
    assert_eq!((status, &r["recorded"]), (200, &json!(true)), "{r}");
    // The agent's desktop shows the call connected.
    let state = desk.expect("call_state").await;
    assert_eq!(state["state"], "connected");
    assert_eq!(state["interaction_id"], interaction_id.as_str());
    let (_, r) = native(
        &app,
        json!({ "event": "transferred", "call_id": "call-1", "to_extension": "305" }),
    )
    .await;
    assert_eq!(r["recorded"], true);
    let (_, r) = native(&app, json!({ "event": "ended", "call_id": "call-1", "cause": "normal_clearing", "duration_secs": 95 })).await;
    assert_eq!(r["recorded"], true);
    // The agent was told the caller hung up.
    desk.expect("interaction_ended").await;

    let (i, kinds) = history_kinds(&app, &interaction_id).await;
    assert_in_order(
        &kinds,
        &[
            "interaction_received",
            "offered",
            "assigned",
            "call_answered",
            "call_transferred",
            "ended_by_customer",
            "call_ended",
        ],
    );
    assert_eq!(
        event(&i, "call_answered")["data"]["agent_id"],
        agent_id.as_str()
    );
    assert_eq!(event(&i, "call_ended")["data"]["duration_secs"], 95);
    assert_eq!(event(&i, "call_ended")["data"]["missed"], false);
    // The caller is a customer, found by number in E.164.
    let (status, c) = app.get("/api/customers?phone=%2B4930123456").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["id"], i["customer_id"]);
    app.stop().await;
}

async fn a_queued_native_call_is_dialled_by_a_signed_callback_retried_until_taken(
    backend: Backend,
) {
    let (url, log) = phone_system(1).await;
    let app = app(backend, &url, 300).await;
    let (status, q) = native(
        &app,
        json!({ "event": "ringing", "call_id": "call-2", "from": "+4930123457" }),
    )
    .await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["action"], "queue", "{q}");
    assert_eq!(q["position"], 1);
    let interaction_id = q["interaction_id"].as_str().unwrap().to_string();

    let (agent_id, token) = create_agent(&app, json!({ "name": "Bo", "extension": "202" })).await;
    let mut desk = Desktop::available(&app.base, &token).await;
    assert_eq!(desk.take_offer().await, interaction_id);

    // The first delivery is refused (500), the second accepted: the same command twice.
    let got = received(&log, 2).await;
    let (path, headers, body) = &got[1];
    assert_eq!(path, "/switchboard/commands");
    let ts: u64 = headers["x-switchboard-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ts.abs_diff(now()) < 60);
    assert_eq!(
        headers["x-switchboard-signature"].to_str().unwrap(),
        native_signature(SECRET, ts, body),
        "the callback is signed as documented"
    );
    let cmd: Value = serde_json::from_str(body).unwrap();
    assert_eq!(cmd["action"], "dial");
    assert_eq!(cmd["call_id"], "call-2");
    assert_eq!(cmd["extension"], "202");
    assert_eq!(cmd["agent_id"], agent_id.as_str());
    let first: Value = serde_json::from_str(&got[0].2).unwrap();
    assert_eq!(
        first["command_id"], cmd["command_id"],
        "a retry carries the same command id"
    );
    assert_eq!(
        headers["x-switchboard-command-id"].to_str().unwrap(),
        cmd["command_id"].as_str().unwrap()
    );

    native(
        &app,
        json!({ "event": "answered", "call_id": "call-2", "extension": "202" }),
    )
    .await;

    // A supervisor moves the call to another agent: the phone system is told to
    // transfer it, by a command of its own.
    let (cy, cy_token) = create_agent(&app, json!({ "name": "Cy", "extension": "203" })).await;
    let mut cy_desk = Desktop::available(&app.base, &cy_token).await;
    let (status, moved) = app
        .post(
            &format!("/api/interactions/{interaction_id}/move"),
            &json!({ "agent_id": cy }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    cy_desk.expect("assigned").await;
    // Delivered once accepted, not again: the next request the phone system gets is the
    // transfer (a dial still due would have gone before it).
    let got = received(&log, 3).await;
    assert_eq!(got.len(), 3, "delivered once accepted, not again");
    let transfer: Value = serde_json::from_str(&got[2].2).unwrap();
    assert_eq!(
        (
            transfer["extension"].as_str(),
            transfer["agent_id"].as_str()
        ),
        (Some("203"), Some(cy.as_str()))
    );
    assert_ne!(transfer["command_id"], cmd["command_id"]);

    native(&app, json!({ "event": "ended", "call_id": "call-2", "cause": "normal_clearing", "duration_secs": 40 })).await;
    let (_, kinds) = history_kinds(&app, &interaction_id).await;
    assert_in_order(
        &kinds,
        &[
            "offered",
            "assigned",
            "call_answered",
            "moved",
            "call_ended",
        ],
    );
    app.stop().await;
}

async fn a_caller_who_hangs_up_while_waiting_is_a_missed_call_for_follow_up(backend: Backend) {
    let (url, log) = phone_system(0).await;
    let app = app(backend, &url, 200).await;
    let (_, q) = native(
        &app,
        json!({ "event": "ringing", "call_id": "call-3", "from": "+4930123458" }),
    )
    .await;
    assert_eq!(q["action"], "queue");
    let interaction_id = q["interaction_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hangup = json!({ "event": "ended", "call_id": "call-3", "cause": "cancel" });
    let (status, r) = native(&app, hangup.clone()).await;
    assert_eq!((status, &r["recorded"]), (200, &json!(true)), "{r}");
    // Retried by the phone system: recorded once.
    let (_, r) = native(&app, hangup).await;
    assert_eq!(r["recorded"], false);

    let (i, kinds) = history_kinds(&app, &interaction_id).await;
    assert_eq!(i["state"], "abandoned");
    assert_eq!(kinds.iter().filter(|k| *k == "call_ended").count(), 1);
    let ended = &event(&i, "call_ended")["data"];
    assert_eq!(
        (ended["missed"].as_bool(), ended["follow_up"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(ended["waited_secs"].as_f64().unwrap() >= 0.3, "{ended}");
    assert!(
        event(&i, "abandoned")["data"]["waited_secs"]
            .as_f64()
            .unwrap()
            >= 0.3
    );

    // A hang-up whose ringing never arrived is still logged as a missed call; its late
    // ringing event finds the call over.
    let (_, r) = native(
        &app,
        json!({ "event": "ended", "call_id": "call-4", "cause": "cancel", "from": "+4930123459" }),
    )
    .await;
    let late = r["interaction_id"].as_str().unwrap().to_string();
    let (_, r) = native(
        &app,
        json!({ "event": "ringing", "call_id": "call-4", "from": "+4930123459" }),
    )
    .await;
    assert_eq!(r["action"], "none", "{r}");
    let (i, _) = history_kinds(&app, &late).await;
    assert_eq!(i["state"], "abandoned");
    assert_eq!(event(&i, "call_ended")["data"]["missed"], true);

    // An answer for a call nobody reported is kept aside; nothing else changes.
    let (status, r) = native(
        &app,
        json!({ "event": "answered", "call_id": "nobody", "extension": "9" }),
    )
    .await;
    assert_eq!((status, &r["recorded"]), (200, &json!(false)), "{r}");
    // No agent took either call: no command was sent.
    assert!(log.lock().unwrap().is_empty());
    app.stop().await;
}

async fn a_queued_caller_is_told_their_place_in_routing_order(backend: Backend) {
    let (url, _) = phone_system(0).await;
    let app = app(backend, &url, 0).await;
    let (status, c) = app
        .post(
            "/api/customers",
            &json!({ "tier": "high", "identities": [{ "kind": "phone", "value": "+4930555000" }] }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let mut places = Vec::new();
    for (id, from) in [
        ("q-1", "+4930555001"),
        ("q-2", "+4930555002"),
        ("q-3", "+4930555000"),
    ] {
        let (status, r) = native(
            &app,
            json!({ "event": "ringing", "call_id": id, "from": from }),
        )
        .await;
        assert_eq!((status, r["action"].as_str()), (200, Some("queue")), "{r}");
        places.push(r["position"].as_u64());
    }
    // Two low-tier callers in arrival order; the high-tier caller, with its head start,
    // goes ahead of both.
    assert_eq!(places, [Some(1), Some(2), Some(1)]);
    app.stop().await;
}

async fn bad_call_events_are_refused_and_change_nothing(backend: Backend) {
    let (url, _) = phone_system(0).await;
    let app = app(backend, &url, 100).await;
    let ringing = json!({ "event": "ringing", "call_id": "bad-1", "from": "+4930111111" });
    let before = settled_contents(&app).await;

    // Wrong secret, stale or future timestamp, no signature: 401, nothing processed.
    let (status, r) = native_at(&app, &ringing, "wrong-secret", now()).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (401, Some("unauthorized")),
        "{r}"
    );
    let (status, r) = native_at(&app, &ringing, SECRET, now() - 3600).await;
    assert_eq!(status, 401);
    assert!(r["message"].as_str().unwrap().contains("timestamp"), "{r}");
    let (status, _) = send_raw(&app, "/channels/phone/events", &ringing.to_string(), &[]).await;
    assert_eq!(status, 401);
    let (status, _) = app.get("/api/customers?phone=%2B4930111111").await;
    assert_eq!(status, 404, "nothing was processed");

    for (body, field) in [
        (json!({ "event": "exploded", "call_id": "x" }), "event"),
        (json!({ "call_id": "x" }), "event"),
        (
            json!({ "event": "ringing", "from": "+4930111111" }),
            "call_id",
        ),
        (json!({ "event": "ringing", "call_id": "x" }), "from"),
        (
            json!({ "event": "ringing", "call_id": "x", "from": "not a number" }),
            "from",
        ),
        (
            json!({ "event": "ringing", "call_id": "y".repeat(300), "from": "+4930111111" }),
            "call_id",
        ),
        (
            json!({ "event": "transferred", "call_id": "x" }),
            "to_extension",
        ),
    ] {
        let (status, r) = native(&app, body.clone()).await;
        assert_eq!(
            (status, r["field"].as_str()),
            (400, Some(field)),
            "{body}: {r}"
        );
    }
    let (status, r) = native(&app, json!({ "event": "ringing", "call_id": "x", "from": "+4930111111", "padding": "p".repeat(5000) })).await;
    assert_eq!(
        (status, r["error"].as_str()),
        (413, Some("too_large")),
        "{r}"
    );
    let (status, r) = send_raw(&app, "/channels/phone/events", "{not json", &[]).await;
    assert_eq!(
        status, 401,
        "unsigned garbage is refused before it is read: {r}"
    );

    // A blocked caller is refused.
    let (status, r) = native(
        &app,
        json!({ "event": "ringing", "call_id": "spam", "from": "+442079460999" }),
    )
    .await;
    assert_eq!((status, r["action"].as_str()), (200, Some("reject")), "{r}");
    assert_store_unchanged(&app.database_url, &before, "bad call events").await;

    // The server still routes: a good event after all the bad ones.
    let (status, r) = native(&app, ringing).await;
    assert_eq!((status, r["action"].as_str()), (200, Some("queue")), "{r}");
    app.stop().await;
}

pub(crate) async fn send_raw(
    app: &TestApp,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}{path}", app.base))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn zammad_generic_cti_events_work_unchanged(backend: Backend) {
    let (url, log) = phone_system(0).await;
    let app = app(backend, &url, 100).await;
    let (agent_id, token) = create_agent(&app, json!({ "name": "Emma", "extension": "42", "email": "emma@example.com", "skills": ["support"] })).await;

    let new_call = [
        ("event", "newCall"),
        ("from", "493055571600"),
        ("to", "4930999"),
        ("direction", "in"),
        ("callId", "zammad-1"),
        ("user[]", "Christopher Miller"),
        ("user[]", "Emma Taylor"),
        ("queue", "support"),
    ];
    let (status, r) = zammad(&app, "wrong-token", &new_call).await;
    assert_eq!(status, 401, "{r}");
    let (status, r) = zammad(&app, ZAMMAD_TOKEN, &new_call).await;
    assert_eq!((status, &r), (200, &json!({})));
    let mut desk = Desktop::available(&app.base, &token).await;
    let interaction_id = desk.take_offer().await;

    let (status, r) = zammad(
        &app,
        ZAMMAD_TOKEN,
        &[
            ("event", "answer"),
            ("from", "493055571600"),
            ("to", "4930999"),
            ("direction", "in"),
            ("callId", "zammad-1"),
            ("user", "Emma Taylor"),
            ("answeringNumber", "emma@example.com"),
        ],
    )
    .await;
    assert_eq!((status, &r), (200, &json!({})));
    // Zammad's JSON form, for the hang-up.
    let resp = app
        .client
        .post(format!("{}/channels/phone/zammad/{ZAMMAD_TOKEN}", app.base))
        .json(&json!({ "event": "hangup", "from": "493055571600", "to": "4930999", "direction": "in",
                        "callId": "zammad-1", "user": "Emma Taylor", "answeringNumber": "emma@example.com", "cause": "normalClearing" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));

    let (i, kinds) = history_kinds(&app, &interaction_id).await;
    assert_in_order(
        &kinds,
        &["offered", "assigned", "call_answered", "call_ended"],
    );
    assert_eq!(
        event(&i, "call_answered")["data"]["agent_id"],
        agent_id.as_str()
    );
    assert_eq!(event(&i, "call_ended")["data"]["cause"], "normalClearing");
    assert_eq!(i["topic"], "support");

    // A blocked caller gets Zammad's reject; an outbound call is not a contact; a missed call.
    let (_, r) = zammad(
        &app,
        ZAMMAD_TOKEN,
        &[
            ("event", "newCall"),
            ("from", "442079460999"),
            ("to", "4930999"),
            ("direction", "in"),
            ("callId", "zammad-2"),
        ],
    )
    .await;
    assert_eq!(r, json!({ "action": "reject", "reason": "busy" }));
    let (_, r) = zammad(
        &app,
        ZAMMAD_TOKEN,
        &[
            ("event", "newCall"),
            ("from", "4930999"),
            ("to", "493055571600"),
            ("direction", "out"),
            ("callId", "zammad-3"),
        ],
    )
    .await;
    assert_eq!(r, json!({}));
    let (status, r) = zammad(
        &app,
        ZAMMAD_TOKEN,
        &[
            ("event", "newCall"),
            ("direction", "in"),
            ("callId", "zammad-4"),
        ],
    )
    .await;
    assert_eq!((status, r["field"].as_str()), (400, Some("from")), "{r}");
    let (status, r) = zammad(
        &app,
        ZAMMAD_TOKEN,
        &[
            ("event", "ring"),
            ("direction", "in"),
            ("callId", "zammad-4"),
        ],
    )
    .await;
    assert_eq!((status, r["field"].as_str()), (400, Some("event")), "{r}");
    // Zammad's protocol has no commands: none were sent.
    assert!(log.lock().unwrap().is_empty());
    desk.vanish().await;
    app.stop().await;
}

async fn twilio_calls_are_answered_with_twiml_and_updated_when_taken(backend: Backend) {
    let (twilio_api, log) = phone_system(0).await;
    // A wide answer window: the agent below must accept within it even on a busy machine.
    let app = app(backend, &twilio_api, 8000).await;
    let call = [
        ("AccountSid", TWILIO_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA11111111111111111111111111111111"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
        ("CallerName", "Jo Caller"),
    ];
    // A forged signature: refused, nothing processed.
    let (status, _) = twilio(
        &app,
        "/channels/phone/twilio/voice",
        &call,
        Some("bm90IGEgc2lnbmF0dXJl".into()),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = app.get("/api/customers?phone=%2B14155550100").await;
    assert_eq!(status, 404);

    // Nobody is ready: the caller waits in the Twilio queue.
    let (status, twiml) = twilio(&app, "/channels/phone/twilio/voice", &call, None).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains(&format!(
            "<Enqueue waitUrl=\"{TWILIO_PUBLIC}/channels/phone/twilio/wait\">switchboard</Enqueue>"
        )),
        "{twiml}"
    );
    // While it waits, Twilio asks what to play: a pause at first, then the offer to be
    // called back (press 1), which Twilio posts to the gather URL.
    let waiting = [
        ("CallSid", "CA11111111111111111111111111111111"),
        ("QueueTime", "3"),
    ];
    let (status, twiml) = twilio(&app, "/channels/phone/twilio/wait", &waiting, None).await;
    assert!(
        status == 200 && twiml.contains("<Pause length=") && !twiml.contains("<Gather"),
        "{twiml}"
    );
    let waiting = [
        ("CallSid", "CA11111111111111111111111111111111"),
        ("QueueTime", "3600"),
    ];
    let (status, twiml) = twilio(&app, "/channels/phone/twilio/wait", &waiting, None).await;
    assert!(
        status == 200
            && twiml.contains(&format!(
                "<Gather numDigits=\"1\" timeout=\"5\" action=\"{TWILIO_PUBLIC}/channels/phone/twilio/gather\">"
            )),
        "{twiml}"
    );

    // An agent takes it: Switchboard updates the live call with a <Dial> to the agent.
    let (_, token) = create_agent(&app, json!({ "name": "Lee", "extension": "301" })).await;
    let mut desk = Desktop::available(&app.base, &token).await;
    let interaction_id = desk.take_offer().await;
    let got = received(&log, 1).await;
    let (path, headers, body) = &got[0];
    assert_eq!(
        path,
        &format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls/CA11111111111111111111111111111111.json")
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"));
    assert_eq!(
        headers["authorization"].to_str().unwrap(),
        format!("Basic {basic}")
    );
    let twiml: String = form_value(body, "Twiml");
    // The <Dial> asks Twilio to report the agent's answer, naming the extension dialled.
    let report = format!("{TWILIO_PUBLIC}/channels/phone/twilio/status?extension=301");
    assert!(
        twiml.contains(&format!(
            "<Dial><Sip statusCallbackEvent=\"answered\" statusCallback=\"{report}\">sip:301@pbx.example.com</Sip></Dial>"
        )),
        "{twiml}"
    );
    // Twilio reports the dialled leg answered, as its status callbacks do: a child call
    // of the caller's, to the URL the <Dial> gave, signed over that URL.
    let (status, r) = twilio(
        &app,
        "/channels/phone/twilio/status?extension=301",
        &[
            ("AccountSid", TWILIO_SID),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", "CA99999999999999999999999999999999"),
            ("ParentCallSid", "CA11111111111111111111111111111111"),
            ("CallStatus", "in-progress"),
            ("CallbackSource", "call-progress-events"),
            ("Direction", "outbound-dial"),
            ("From", "+14155550100"),
            ("SequenceNumber", "0"),
            ("StatusCallbackEvent", "answered"),
            ("To", "sip:301@pbx.example.com"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 204, "{r}");
    let (i, _) = history_kinds(&app, &interaction_id).await;
    let answered = &event(&i, "call_answered")["data"];
    assert_eq!(
        (answered["extension"].as_str(), answered["outcome"].as_str()),
        (Some("301"), Some("already_held")),
        "{answered}"
    );
    assert_eq!(answered["agent_id"], i["agent_id"]);

    // The status callback ends it.
    let (status, _) = twilio(
        &app,
        "/channels/phone/twilio/status",
        &[
            ("AccountSid", TWILIO_SID),
            ("CallSid", "CA11111111111111111111111111111111"),
            ("CallStatus", "completed"),
            ("CallDuration", "61"),
            ("From", "+14155550100"),
            ("To", "+14155550199"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (i, kinds) = history_kinds(&app, &interaction_id).await;
    assert_in_order(
        &kinds,
        &[
            "interaction_received",
            "offered",
            "assigned",
            "call_answered",
            "call_ended",
        ],
    );
    assert_eq!(event(&i, "call_ended")["data"]["duration_secs"], 61);
    let (status, c) = app.get("/api/customers?phone=%2B14155550100").await;
    assert_eq!((status, c["name"].as_str()), (200, Some("Jo Caller")));

    // With an agent ready, the answer itself dials: the agent accepts within the window.
    desk.vanish().await;
    let (_, token) = create_agent(&app, json!({ "name": "Max", "extension": "302" })).await;
    let mut ready = Desktop::available(&app.base, &token).await;
    let second = [
        ("CallSid", "CA22222222222222222222222222222222"),
        ("Direction", "inbound"),
        ("From", "+14155550101"),
        ("To", "+14155550199"),
    ];
    let pending = {
        let (client, base) = (app.client.clone(), app.base.clone());
        let sig = twilio_signature(
            &format!("{TWILIO_PUBLIC}/channels/phone/twilio/voice"),
            &second,
        );
        let body = form(&second);
        tokio::spawn(async move {
            client
                .post(format!("{base}/channels/phone/twilio/voice"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let second_call = ready.take_offer().await;
    let twiml = pending.await.unwrap();
    assert!(
        twiml.contains(">sip:302@pbx.example.com</Sip></Dial>"),
        "{twiml}"
    );
    // Dialled in the answer: no call update. A supervisor then moves the call, and the
    // next update Twilio gets is that move's (a dial update would have gone before it).
    let (other, other_token) =
        create_agent(&app, json!({ "name": "Ola", "extension": "303" })).await;
    let mut other_desk = Desktop::available(&app.base, &other_token).await;
    let (status, moved) = app
        .post(
            &format!("/api/interactions/{second_call}/move"),
            &json!({ "agent_id": other }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    other_desk.expect("assigned").await;
    let got = received(&log, 2).await;
    assert_eq!(got.len(), 2, "dialled in the answer: no call update");
    let (path, _, body) = &got[1];
    assert!(
        path.ends_with("/Calls/CA22222222222222222222222222222222.json"),
        "{path}"
    );
    let moved_to = form_value(body, "Twiml");
    assert!(
        moved_to.contains(">sip:303@pbx.example.com</Sip></Dial>"),
        "{moved_to}"
    );
    app.stop().await;
}

async fn a_call_taken_while_no_command_could_be_stored_is_dialled_after_a_restart(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let (phone_url, log) = phone_system(0).await;
    let client = reqwest::Client::new();
    let env = [
        ("SWITCHBOARD__PHONE__SECRET", SECRET),
        ("SWITCHBOARD__PHONE__ANSWER_WINDOW_MS", "100"),
    ];
    // The first run has nowhere to send dial commands: the call is taken without one.
    let server = start_process_with(&url, dir.path(), &env);
    let ringing =
        json!({ "event": "ringing", "call_id": "restart-1", "from": "+4930123450" }).to_string();
    let ts = now();
    let (status, q) = send(
        client
            .post(format!("{}/channels/phone/events", server.base))
            .header("x-switchboard-timestamp", ts.to_string())
            .header(
                "x-switchboard-signature",
                native_signature(SECRET, ts, &ringing),
            )
            .body(ringing),
    )
    .await;
    assert_eq!((status, q["action"].as_str()), (200, Some("queue")), "{q}");
    let (status, agent) = send(
        client
            .post(format!("{}/api/agents", server.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": "Rae", "extension": "207" })),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let mut desk = Desktop::available(&server.base, agent["token"].as_str().unwrap()).await;
    let interaction_id = desk.take_offer().await;
    desk.vanish().await;
    drop(server);
    assert!(log.lock().unwrap().is_empty());

    // The next run can send them: it finds the call taken without a dial, and dials.
    let callback = format!("{phone_url}/switchboard/commands");
    let mut env = env.to_vec();
    env.push(("SWITCHBOARD__PHONE__CALLBACK_URL", callback.as_str()));
    let _server = start_process_with(&url, dir.path(), &env);
    let got = received(&log, 1).await;
    let cmd: Value = serde_json::from_str(&got[0].2).unwrap();
    assert_eq!(cmd["call_id"], "restart-1");
    assert_eq!(cmd["interaction_id"], interaction_id.as_str());
    assert_eq!(cmd["extension"], "207");
}

fn form_value(body: &str, name: &str) -> String {
    form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

both_backends!(
    a_native_call_taken_within_the_window_is_dialled_in_the_answer,
    a_queued_native_call_is_dialled_by_a_signed_callback_retried_until_taken,
    a_caller_who_hangs_up_while_waiting_is_a_missed_call_for_follow_up,
    bad_call_events_are_refused_and_change_nothing,
    a_queued_caller_is_told_their_place_in_routing_order,
    zammad_generic_cti_events_work_unchanged,
    twilio_calls_are_answered_with_twiml_and_updated_when_taken,
    a_call_taken_while_no_command_could_be_stored_is_dialled_after_a_restart,
);
