//! What the server holds for each open websocket: one task per connection, whatever the
//! socket — a visitor's chat page, an agent's desktop, a supervisor's view — so the
//! connections a node holds cost it no more tasks than there are connections. Counted in
//! the runtime that serves them, before and after they open.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::helpers::{spawn_app_with, Backend, TOKEN};

/// Each kind of connection opened.
const EACH: usize = 8;

/// The server's tasks alive once whatever was passing through has settled.
async fn tasks_alive() -> usize {
    // Work in flight (a request's connection before its upgrade, a delivery, a commit)
    // ends within moments; what stays is what the connections hold.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn each_open_connection_is_served_by_one_task(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.chat.chats_per_minute_per_address = 0;
        s.chat.messages_per_minute_per_address = 0;
    })
    .await;
    let mut tokens = Vec::new();
    for a in 0..EACH {
        let (_, token) = create_agent(&app, json!({ "name": format!("Agent {a}") })).await;
        tokens.push(token);
    }
    let before = tasks_alive().await;

    let mut pages = Vec::new();
    for v in 0..EACH {
        let mut page = Visitor::connect(&app).await;
        page.start(json!({ "type": "start", "visitor_id": format!("v-{v}") }))
            .await;
        page.send(json!({ "type": "message", "id": "m1", "text": "hello" }))
            .await;
        page.expect("ack").await;
        pages.push(page);
    }
    let mut desktops = Vec::new();
    for token in &tokens {
        desktops.push(Desktop::login(&app.base, token, None).await);
    }
    let url = format!("{}/supervisor/ws", app.base.replacen("http://", "ws://", 1));
    let mut views = Vec::new();
    for _ in 0..EACH {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let login = json!({ "type": "login", "token": TOKEN }).to_string();
        ws.send(Message::Text(login.into())).await.unwrap();
        let first = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => break serde_json::from_str::<Value>(&t).unwrap(),
                Ok(Some(Ok(_))) => continue,
                other => panic!("the supervisor's view did not open: {other:?}"),
            }
        };
        assert_eq!(first["type"], "queue", "{first}");
        views.push(ws);
    }

    let after = tasks_alive().await;
    let connections = 3 * EACH;
    // A few passing tasks (a delivery, a write being committed) may be caught alive; a
    // second task per desktop would be eight more.
    assert!(
        after.saturating_sub(before) <= connections + 3,
        "{connections} connections hold {} tasks ({before} before, {after} after)",
        after.saturating_sub(before)
    );
    drop((pages, desktops, views));
    app.stop().await;
}

both_backends!(each_open_connection_is_served_by_one_task);

async fn a_desktop_back_from_further_than_the_kept_events_is_told_its_resume_is_not_complete(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.chat.messages_per_minute = 1000;
        s.chat.messages_per_minute_per_address = 0;
    })
    .await;
    let (_, token) = create_agent(&app, json!({ "name": "Sam Lee" })).await;
    let mut sam = Desktop::available(&app.base, &token).await;
    let mut page = Visitor::connect(&app).await;
    page.start(json!({ "type": "start", "visitor_id": "v-long-day" }))
        .await;
    page.write("m0", "Hello").await;
    sam.take_offer().await;
    page.expect("agent_joined").await;
    assert_eq!(sam.expect("message").await["text"], "Hello");
    let long = "Here is everything about my order. ".repeat(110);

    // A short drop: every event missed is still kept, and comes on the resume.
    let (session, seen) = (sam.session.clone(), sam.last_seq);
    sam.vanish().await;
    page.send(json!({ "type": "message", "id": "short", "text": "Are you there?" }))
        .await;
    page.expect("ack").await;
    let mut sam = Desktop::login(&app.base, &token, Some((&session, seen))).await;
    assert_eq!(
        (
            sam.welcome["resumed"].as_bool(),
            sam.welcome["complete"].as_bool()
        ),
        (Some(true), Some(true)),
        "{}",
        sam.welcome
    );
    sam.last_seq = seen;
    assert_eq!(sam.expect("message").await["text"], "Are you there?");

    // A long one: more missed than a desktop's events are kept for (64 KiB). The resume
    // says so, and brings the newest of them.
    let (session, seen) = (sam.session.clone(), sam.last_seq);
    sam.vanish().await;
    for i in 0..20 {
        page.send(
            json!({ "type": "message", "id": format!("long-{i}"), "text": format!("{i}: {long}") }),
        )
        .await;
        page.expect("ack").await;
    }
    let mut sam = Desktop::login(&app.base, &token, Some((&session, seen))).await;
    assert_eq!(
        (
            sam.welcome["resumed"].as_bool(),
            sam.welcome["complete"].as_bool()
        ),
        (Some(true), Some(false)),
        "{}",
        sam.welcome
    );
    let replayed: Vec<u64> = sam
        .frames_until_quiet(Duration::from_secs(2))
        .await
        .iter()
        .filter(|v| v["type"] == "message")
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert!(
        replayed.first().is_some_and(|first| *first > seen + 1),
        "the oldest missed are not kept: {replayed:?} after {seen}"
    );
    assert_eq!(
        replayed.last().copied(),
        sam.welcome["seq"].as_u64(),
        "the newest is"
    );
    app.stop().await;
}

both_backends!(a_desktop_back_from_further_than_the_kept_events_is_told_its_resume_is_not_complete);
