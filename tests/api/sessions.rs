//! The agent websocket's sessions at their edges: every close code the agent protocol
//! documents (docs/agent-protocol.md), each sent for its reason, a frame too large to
//! read, and a desktop that comes back after its resume grace.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::agent_client::{create_agent, Desktop};
use crate::helpers::{spawn_app_with, Backend, TestApp};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A websocket on `/agent/ws` that has sent nothing yet.
async fn connect(app: &TestApp) -> Socket {
    let url = format!("{}/agent/ws", app.base.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The close frame that ends `ws` within `wait`: (code, reason).
async fn closed(ws: &mut Socket, wait: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(c))))) => {
                return (u16::from(c.code), c.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("a close frame without a code"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A login frame for `token`.
fn login(token: &str) -> Message {
    Message::Text(
        json!({ "type": "login", "token": token })
            .to_string()
            .into(),
    )
}

/// Renames a table of the store, as a fault from outside: while it is away, every query
/// of it fails.
async fn rename(database_url: &str, from: &str, to: &str) {
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    crate::helpers::db_exec(database_url, &sql, &sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_close_code_is_sent_for_its_reason() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.agents.heartbeat_timeout_secs = 5;
    })
    .await;
    let started = Instant::now();
    // 4000: a connection that never logs in (checked last: it takes 10 s, the others
    // run meanwhile).
    let mut mute = connect(&app).await;
    // 4003: a desktop that logs in and then says nothing.
    let (_, silent_token) = create_agent(&app, json!({ "name": "Silent" })).await;
    let mut silent = Desktop::login(&app.base, &silent_token, None).await;

    // 4001: a wrong token.
    let mut ws = connect(&app).await;
    ws.send(login("not-a-token")).await.unwrap();
    assert_eq!(
        closed(&mut ws, Duration::from_secs(10)).await,
        (4001, "invalid token".into())
    );

    // 4002: the same agent logs in from elsewhere; the first desktop is closed.
    let (_, token) = create_agent(&app, json!({ "name": "Twice" })).await;
    let mut first = Desktop::login(&app.base, &token, None).await;
    let mut second = Desktop::login(&app.base, &token, None).await;
    let c = first.expect("closed").await;
    assert_eq!(
        (c["code"].as_u64(), c["reason"].as_str()),
        (Some(4002), Some("logged in elsewhere"))
    );
    second.send(json!({ "type": "heartbeat" })).await;
    second.expect("heartbeat_ack").await;

    // 4004: the agent removed, or its token reset.
    let (removed, removed_token) = create_agent(&app, json!({ "name": "Leaving" })).await;
    let mut d = Desktop::login(&app.base, &removed_token, None).await;
    assert_eq!(app.delete(&format!("/api/agents/{removed}")).await, 204);
    let c = d.expect("closed").await;
    assert_eq!(
        (c["code"].as_u64(), c["reason"].as_str()),
        (Some(4004), Some("agent removed"))
    );
    let (reset, reset_token) = create_agent(&app, json!({ "name": "Reset" })).await;
    let mut d = Desktop::login(&app.base, &reset_token, None).await;
    let (status, _) = app
        .post(&format!("/api/agents/{reset}/token"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let c = d.expect("closed").await;
    assert_eq!(
        (c["code"].as_u64(), c["reason"].as_str()),
        (Some(4004), Some("token reset"))
    );

    // A frame over 64 KiB is not read: the connection is dropped without a close frame
    // (the server cannot send one past the unread frame), and the desktop resumes.
    let (_, big_token) = create_agent(&app, json!({ "name": "Verbose" })).await;
    let mut ws = connect(&app).await;
    ws.send(login(&big_token)).await.unwrap();
    let welcome = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t).unwrap(),
        other => panic!("a welcome, not {other:?}"),
    };
    let pad = "x".repeat(70 * 1024);
    let _ = ws
        .send(Message::Text(
            json!({ "type": "heartbeat", "pad": pad })
                .to_string()
                .into(),
        ))
        .await;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(None | Some(Err(_))) => {}
        other => panic!("the connection is dropped, not {other:?}"),
    }
    let again = Desktop::login(
        &app.base,
        &big_token,
        Some((welcome["session"].as_str().unwrap(), 0)),
    )
    .await;
    assert_eq!(again.welcome["resumed"], true, "{}", again.welcome);

    // 1011: the store cannot be read when the desktop logs in.
    let (_, store_token) = create_agent(&app, json!({ "name": "Unlucky" })).await;
    rename(&app.database_url, "agents", "agents_away").await;
    let mut ws = connect(&app).await;
    ws.send(login(&store_token)).await.unwrap();
    let refused = closed(&mut ws, Duration::from_secs(10)).await;
    rename(&app.database_url, "agents_away", "agents").await;
    assert_eq!(
        refused,
        (1011, "the store is unavailable; reconnect shortly".into())
    );
    // Back, the same desktop logs in.
    Desktop::login(&app.base, &store_token, None).await;

    // 4003 and 4000, by their time limits.
    let c = silent.expect("closed").await;
    assert_eq!(
        (c["code"].as_u64(), c["reason"].as_str()),
        (Some(4003), Some("no heartbeat"))
    );
    assert_eq!(
        closed(&mut mute, Duration::from_secs(15)).await,
        (4000, "log in first, within 10 s".into())
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not before its 10 s"
    );

    // 1012: the server stops while a desktop is connected.
    let (_, last_token) = create_agent(&app, json!({ "name": "Last" })).await;
    let mut last = Desktop::login(&app.base, &last_token, None).await;
    let stopping = tokio::spawn(app.stop());
    let c = last.expect("closed").await;
    assert_eq!(
        (c["code"].as_u64(), c["reason"].as_str()),
        (Some(1012), Some("the server is restarting"))
    );
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_back_after_its_resume_grace_starts_anew_and_its_offer_went_to_the_next_agent() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.agents.resume_grace_secs = 1).await;
    let (away_id, away_token) = create_agent(&app, json!({ "name": "Away" })).await;
    let (next_id, next_token) = create_agent(&app, json!({ "name": "Next" })).await;
    let mut away = Desktop::available(&app.base, &away_token).await;
    let mut next = Desktop::available(&app.base, &next_token).await;
    let contact = app
        .contact(json!({ "customer": { "email": "grace@example.com" } }))
        .await;
    let id = contact["id"].as_str().unwrap().to_string();
    // Idle longer, the first desktop is offered it, and vanishes with the offer.
    let offer = away.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], id.as_str());
    let (session, seen) = (away.session.clone(), away.last_seq);
    away.vanish().await;
    assert_eq!(
        next.take_offer().await,
        id,
        "the offer went to the next agent"
    );

    // The session is kept for its grace, then dropped: the live queue stops listing it.
    let listed = |q: &Value| {
        q["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == away_id.as_str())
    };
    let (_, q) = app.get("/api/queue").await;
    assert!(listed(&q), "kept for a resume at first: {q}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, q) = app.get("/api/queue").await;
        if !listed(&q) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived its grace: {q}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back with its old session: a new one, nothing replayed, away, holding nothing.
    let mut back = Desktop::login(&app.base, &away_token, Some((&session, seen))).await;
    let w = &back.welcome;
    assert_eq!(w["resumed"], false, "{w}");
    assert_ne!(w["session"], session.as_str(), "{w}");
    assert_eq!(
        (w["seq"].as_u64(), w["presence"].as_str()),
        (Some(0), Some("away")),
        "{w}"
    );
    assert_eq!(w["assigned"], json!([]), "{w}");
    back.send(json!({ "type": "heartbeat" })).await;
    assert_eq!(
        back.next().await["type"],
        "heartbeat_ack",
        "no event of the old session is replayed"
    );
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), Some(next_id.as_str()))
    );
    let withdrawn = crate::helpers::event(&i, "offer_withdrawn");
    assert_eq!(
        withdrawn["data"]["reason"], "agent disconnected",
        "{withdrawn}"
    );
    app.stop().await;
}
