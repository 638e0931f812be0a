//! Refused is refused: bad input on every channel and every part of the API is answered
//! in its own protocol and changes nothing. The whole store (every row of every table)
//! is read before and after each channel's refusals and must be the same.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lettre::AsyncTransport;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::helpers::{
    assert_store_unchanged, settled_contents, spawn_app_with, store_contents, Backend, TestApp,
};
use crate::phone;

/// A server with every channel on: phone (all three formats), email for shop.test, chat
/// with small limits, and a rules file of its own.
async fn app(backend: Backend) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.toml");
    std::fs::write(&rules, include_str!("../../config/routing.toml")).unwrap();
    let app = spawn_app_with(backend, |s| {
        phone::configure(s, "http://127.0.0.1:1", 0);
        s.routing.rules_file = rules.display().to_string();
        s.email.domains = vec!["shop.test".into()];
        s.email.max_message_bytes = 4096;
        s.chat.customer_token_secret = "chat-secret".into();
        s.chat.max_message_bytes = 100;
        s.chat.messages_per_minute = 2;
        s.chat.max_chats_per_visitor = 1;
    })
    .await;
    (app, dir)
}

/// An HTTP request as a client sends it: method, path, token (none: no header), content
/// type and body.
async fn http(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// One SMTP session, each line answered before the next (a dropped connection ends it);
/// answers the replies' codes.
async fn smtp(app: &TestApp, lines: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(app.smtp.unwrap()).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut codes = Vec::new();
    let reply = async |r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>| loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
            return None;
        }
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return Some(l[..3].to_string());
        }
    };
    codes.extend(reply(&mut r).await);
    for line in lines {
        if w.write_all(format!("{line}\r\n").as_bytes()).await.is_err() {
            break;
        }
        match reply(&mut r).await {
            Some(code) => codes.push(code),
            None => break,
        }
    }
    codes
}

async fn every_refusal_on_every_channel_changes_nothing(backend: Backend) {
    let (app, dir) = app(backend).await;
    let admin = crate::helpers::TOKEN;

    // What there is before: customers, an agent holding a contact and a chat, another
    // agent's token, a chat at its message limit and one that has ended.
    let (status, ann) = app.post("/api/customers", &json!({ "name": "Ann", "identities": [{ "kind": "email", "value": "ann@example.com" }] })).await;
    assert_eq!(status, 201, "{ann}");
    let ann = ann["id"].as_str().unwrap().to_string();
    let (_, bo) = app
        .post(
            "/api/customers",
            &json!({ "identities": [{ "kind": "phone", "value": "+14155550100" }] }),
        )
        .await;
    let bo = bo["id"].as_str().unwrap().to_string();
    let (agent_id, token) = create_agent(&app, json!({ "name": "Ada", "extension": "201" })).await;
    let (_, other_token) = create_agent(&app, json!({ "name": "Cy", "role": "agent" })).await;
    let mut ada = Desktop::available(&app.base, &token).await;
    let held = app
        .contact(json!({ "idempotency_key": "held", "customer": { "email": "ann@example.com" }, "body": "first" }))
        .await;
    let held = held["id"].as_str().unwrap().to_string();
    assert_eq!(ada.take_offer().await, held);
    let mut page = Visitor::connect(&app).await;
    let (chat_id, _) = page
        .start(json!({ "type": "start", "visitor_id": "v-1" }))
        .await;
    page.write("m1", "hi").await;
    let chat = ada.take_offer().await;
    page.expect("agent_joined").await;
    page.write("m2", "hi").await;
    ada.expect("message").await;
    ada.expect("message").await;
    let mut gone = Visitor::connect(&app).await;
    let (gone_chat, gone_secret) = gone
        .start(json!({ "type": "start", "visitor_id": "v-2" }))
        .await;
    // Written in, then closed while waiting: abandoned.
    gone.write("g1", "hi").await;
    gone.send(json!({ "type": "close" })).await;
    gone.expect("closed").await;
    // Its abandonment is the last thing written before the refusals.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, i) = app
            .get(&format!("/api/interactions?channel=chat&key={gone_chat}"))
            .await;
        if i["state"] == "abandoned" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{i}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = settled_contents(&app).await;

    // The API.
    let json_ct = "application/json";
    let customer = format!("/api/customers/{ann}");
    let cases: Vec<(&str, String, Option<&str>, &str, String)> = vec![
        ("POST", "/api/interactions".into(), None, json_ct, json!({ "customer": { "email": "x@example.com" } }).to_string()),
        ("POST", "/api/interactions".into(), Some("wrong"), json_ct, json!({ "customer": { "email": "x@example.com" } }).to_string()),
        ("POST", "/api/interactions".into(), Some(admin), json_ct, json!({ "customer": { "email": "not an address" } }).to_string()),
        ("POST", "/api/interactions".into(), Some(admin), json_ct, json!({ "customer": { "email": "x@example.com" }, "priority": "urgent" }).to_string()),
        ("POST", "/api/interactions".into(), Some(admin), json_ct, json!({ "customer": { "email": "x@example.com" }, "body": "x".repeat(20_000) }).to_string()),
        ("POST", "/api/interactions".into(), Some(admin), json_ct, "{\"customer\": ".into()),
        ("POST", "/api/interactions".into(), Some(admin), "text/plain", "hello".into()),
        ("POST", "/api/interactions".into(), Some(admin), json_ct, json!({ "idempotency_key": "held", "customer": { "email": "ann@example.com" }, "body": "other" }).to_string()),
        ("POST", "/api/interactions".into(), Some(&token), json_ct, json!({ "customer": { "email": "x@example.com" } }).to_string()),
        ("POST", format!("/api/interactions/{held}/end"), Some(&other_token), json_ct, "{}".into()),
        ("POST", "/api/interactions/0190c0de-0000-7000-8000-000000000000/end".into(), Some(admin), json_ct, "{}".into()),
        ("POST", format!("/api/interactions/{held}/move"), Some(admin), json_ct, json!({ "agent_id": "nobody" }).to_string()),
        ("POST", format!("/api/interactions/{held}/move"), Some(&token), json_ct, json!({ "agent_id": agent_id }).to_string()),
        ("POST", "/api/customers".into(), Some(admin), json_ct, json!({ "identities": [{ "kind": "email", "value": "ANN@example.com" }] }).to_string()),
        ("POST", "/api/customers".into(), Some(admin), json_ct, json!({ "identities": [{ "kind": "fax", "value": "1" }] }).to_string()),
        ("PUT", customer.clone(), Some(admin), json_ct, json!({ "name": "Changed", "tier": "platinum" }).to_string()),
        ("PUT", customer.clone(), Some(admin), json_ct, json!({ "name": "Changed", "owner": "0190c0de-0000-7000-8000-000000000000" }).to_string()),
        ("PUT", customer.clone(), Some(admin), json_ct, json!({ "name": "Changed", "identities": [{ "kind": "phone", "value": "+14155550100" }] }).to_string()),
        ("PUT", customer.clone(), Some(&token), json_ct, json!({ "name": "Changed" }).to_string()),
        ("DELETE", format!("{customer}/identities/email/nobody%40example.com"), Some(admin), json_ct, String::new()),
        ("PUT", format!("{customer}/purchases/p-1"), Some(admin), json_ct, json!({ "amount": "lots" }).to_string()),
        ("PUT", format!("{customer}/purchases/p-1"), Some(admin), json_ct, json!({ "amount": 5, "at": "someday" }).to_string()),
        ("POST", format!("{customer}/merge"), Some(admin), json_ct, json!({ "from": ann }).to_string()),
        ("POST", format!("{customer}/merge"), Some(admin), json_ct, json!({ "from": "0190c0de-0000-7000-8000-000000000000" }).to_string()),
        ("POST", "/api/customers/import".into(), Some(admin), "text/csv", "email,name\nnew@example.com,New\nnot-an-address,Bad\n".into()),
        ("POST", "/api/customers/import".into(), Some(admin), json_ct, json!([{ "email": "new@example.com" }, { "email": "ann@example.com", "phone": "+14155550100" }]).to_string()),
        ("POST", "/api/agents".into(), Some(admin), json_ct, json!({ "name": "Dup", "extension": "201" }).to_string()),
        ("POST", "/api/agents".into(), Some(admin), json_ct, json!({ "name": "A", "level": 11 }).to_string()),
        ("POST", "/api/agents".into(), Some(&token), json_ct, json!({ "name": "Self-made" }).to_string()),
        ("PUT", format!("/api/agents/{agent_id}"), Some(admin), json_ct, json!({ "level": 0 }).to_string()),
        ("POST", "/api/agents/0190c0de-0000-7000-8000-000000000000/token".into(), Some(admin), json_ct, "{}".into()),
        ("DELETE", "/api/agents/0190c0de-0000-7000-8000-000000000000".into(), Some(admin), json_ct, String::new()),
        ("POST", format!("/api/agents/{agent_id}/away"), Some(&other_token), json_ct, "{}".into()),
        ("PUT", "/api/routing/rules".into(), Some(admin), "application/toml", "not = = toml".into()),
        ("PUT", "/api/routing/rules".into(), Some(admin), "application/toml", include_str!("../../config/routing.toml").replace("timeout_secs = 20", "timeout_secs = -1")),
        ("POST", "/api/routing/rules/rollback".into(), Some(admin), json_ct, json!({ "version": 99 }).to_string()),
        ("POST", "/api/email/kept-aside/0190c0de-0000-7000-8000-000000000000/contact".into(), Some(admin), json_ct, "{}".into()),
        ("POST", "/api/routing/simulate".into(), Some(admin), json_ct, json!({ "from": "yesterday", "to": "today" }).to_string()),
    ];
    for (method, path, token, content_type, body) in &cases {
        let (status, answer) = http(&app, method, path, *token, content_type, body).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path} {body:.200} is refused: {status} {answer}"
        );
        let answer: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|_| panic!("{method} {path}: a JSON error, not {answer}"));
        assert!(answer["error"].is_string(), "{answer}");
    }
    // The rules file made invalid, then read again: refused, and nothing applied.
    std::fs::write(dir.path().join("routing.toml"), "not = = toml").unwrap();
    let (status, _) = app.post("/api/routing/rules/reload", &json!({})).await;
    assert_eq!(status, 422);
    assert_store_unchanged(&app.database_url, &before, "the API's refusals").await;

    // The phone channel, in each of its formats.
    let ringing = json!({ "event": "ringing", "call_id": "bad-1", "from": "+4930111111" });
    for (body, secret, timestamp) in [
        (ringing.clone(), "wrong-secret", phone::now()),
        (ringing.clone(), phone::SECRET, phone::now() - 3600),
        (
            json!({ "event": "exploded", "call_id": "x" }),
            phone::SECRET,
            phone::now(),
        ),
        (
            json!({ "event": "ringing", "call_id": "x", "from": "not a number" }),
            phone::SECRET,
            phone::now(),
        ),
        (
            json!({ "event": "ringing", "call_id": "y".repeat(300), "from": "+4930111111" }),
            phone::SECRET,
            phone::now(),
        ),
        (
            json!({ "event": "ringing", "call_id": "x", "from": "+4930111111", "pad": "p".repeat(5000) }),
            phone::SECRET,
            phone::now(),
        ),
        (
            json!({ "event": "transferred", "call_id": "x" }),
            phone::SECRET,
            phone::now(),
        ),
    ] {
        let (status, r) = phone::native_at(&app, &body, secret, timestamp).await;
        assert!((400..500).contains(&status), "{body:.200}: {status} {r}");
    }
    let (status, _) =
        phone::send_raw(&app, "/channels/phone/events", &ringing.to_string(), &[]).await;
    assert_eq!(status, 401);
    let new_call = [
        ("event", "newCall"),
        ("from", "493055571600"),
        ("direction", "in"),
        ("callId", "z-1"),
    ];
    let (status, _) = phone::zammad(&app, "wrong-token", &new_call).await;
    assert_eq!(status, 401);
    let (status, _) = phone::zammad(
        &app,
        phone::ZAMMAD_TOKEN,
        &[("event", "ring"), ("direction", "in"), ("callId", "z-2")],
    )
    .await;
    assert_eq!(status, 400);
    let call = [
        ("AccountSid", phone::TWILIO_SID),
        ("CallSid", "CA11111111111111111111111111111111"),
        ("From", "+14155550111"),
        ("To", "+14155550199"),
    ];
    let (status, _) = phone::twilio(
        &app,
        "/channels/phone/twilio/voice",
        &call,
        Some("bm90IGEgc2lnbmF0dXJl".into()),
    )
    .await;
    assert_eq!(status, 401);
    assert_store_unchanged(&app.database_url, &before, "the phone channel's refusals").await;

    // SMTP: refused recipients, sizes and sequences; too many errors; a session that ends
    // in the middle of its message.
    let big = format!("Subject: big\r\n\r\n{}\r\n.", "x".repeat(5000));
    let half = "Subject: half\r\n\r\nthe connection drops before the end";
    for (lines, expected) in [
        (
            vec![
                "EHLO c",
                "MAIL FROM:<a@example.com>",
                "RCPT TO:<x@elsewhere.test>",
                "DATA",
                "QUIT",
            ],
            vec!["220", "250", "250", "550", "503", "221"],
        ),
        (
            vec![
                "EHLO c",
                "MAIL FROM:<a@example.com> SIZE=999999",
                "RCPT TO:<support@shop.test>",
                "QUIT",
            ],
            vec!["220", "250", "552", "503", "221"],
        ),
        (
            vec![
                "EHLO c",
                "MAIL FROM:<a@example.com>",
                "RCPT TO:<support@shop.test>",
                "DATA",
                &big,
                "QUIT",
            ],
            vec!["220", "250", "250", "250", "354", "552", "221"],
        ),
        (
            vec![
                "MAIL FROM:<a@example.com>",
                "RCPT TO:<support@shop.test>",
                "DATA",
                "FROB",
                "QUIT",
            ],
            vec!["220", "503", "503", "503", "500", "221"],
        ),
    ] {
        assert_eq!(smtp(&app, &lines).await, expected, "{lines:?}");
    }
    let junk: Vec<&str> = std::iter::repeat_n("FROB", 12).collect();
    assert!(smtp(&app, &junk).await.contains(&"421".to_string()));
    let mut s = TcpStream::connect(app.smtp.unwrap()).await.unwrap();
    s.write_all(
        format!("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<support@shop.test>\r\nDATA\r\n{half}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut r = BufReader::new(s);
    let mut seen = String::new();
    while !seen.contains("354") {
        r.read_line(&mut seen).await.unwrap();
    }
    drop(r);
    // A real client, refused its recipient.
    let message = lettre::Message::builder()
        .from("a@example.com".parse().unwrap())
        .to("x@elsewhere.test".parse().unwrap())
        .body("refused".to_string())
        .unwrap();
    let refused =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(app.smtp.unwrap().port())
            .build()
            .send(message)
            .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_store_unchanged(&app.database_url, &before, "the SMTP listener's refusals").await;

    // The chat websocket.
    let mut p = Visitor::connect(&app).await;
    p.send(json!({ "type": "message", "id": "x", "text": "hi" }))
        .await;
    assert_eq!(p.answer().await["code"], "start_first");
    p.ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(p.answer().await["code"], "bad_frame");
    p.ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(p.answer().await["code"], "bad_frame");
    for start in [
        json!({ "type": "start", "visitor_id": "" }),
        json!({ "type": "start", "visitor_id": "v-3", "customer_token": "forged.00" }),
        json!({ "type": "start", "visitor_id": "v-3", "email": "not an address" }),
    ] {
        p.send(start.clone()).await;
        assert_eq!(p.answer().await["code"], "bad_field", "{start}");
    }
    p.send(json!({ "type": "resume", "chat_id": chat_id, "resume_token": "0000", "last_seq": 0 }))
        .await;
    assert_eq!(p.answer().await["code"], "unknown_chat");
    // The same visitor again: one chat each.
    p.send(json!({ "type": "start", "visitor_id": "v-1" }))
        .await;
    assert_eq!(p.answer().await["code"], "too_many_chats");
    // The open chat: a message too large, then one over the limit.
    page.send(json!({ "type": "message", "id": "big", "text": "x".repeat(101) }))
        .await;
    assert_eq!(page.answer().await["code"], "too_large");
    page.send(json!({ "type": "message", "id": "m3", "text": "hi" }))
        .await;
    assert_eq!(page.answer().await["code"], "slow_down");
    page.send(json!({ "type": "message", "id": "m4", "text": "" }))
        .await;
    let empty = page.answer().await;
    assert!(
        ["bad_field", "slow_down"].contains(&empty["code"].as_str().unwrap_or("")),
        "{empty}"
    );
    // The chat that has ended.
    let mut back = Visitor::connect(&app).await;
    back.send(json!({ "type": "resume", "chat_id": gone_chat, "resume_token": gone_secret, "last_seq": 0 }))
        .await;
    back.expect("resumed").await;
    back.send(json!({ "type": "message", "id": "late", "text": "still there?" }))
        .await;
    assert_eq!(back.answer().await["code"], "ended");
    assert_store_unchanged(&app.database_url, &before, "the chat's refusals").await;

    // The agent websocket: bad frames, work that is not the agent's, a wrong token.
    for (frame, code) in [
        ("not json".to_string(), "not_json"),
        (r#"{"type":"dance"}"#.into(), "unknown_type"),
        (r#"{"type":"accept"}"#.into(), "bad_field"),
        (r#"{"type":"accept","offer_id":"nope"}"#.into(), "not_your_offer"),
        (r#"{"type":"decline","offer_id":"nope"}"#.into(), "not_your_offer"),
        (json!({ "type": "complete", "interaction_id": "0190c0de-0000-7000-8000-000000000000", "disposition": "resolved" }).to_string(), "not_yours"),
        (json!({ "type": "reply", "interaction_id": "0190c0de-0000-7000-8000-000000000000", "body": "x" }).to_string(), "not_yours"),
        (json!({ "type": "reply", "interaction_id": held, "body": "  " }).to_string(), "bad_field"),
        (json!({ "type": "reply", "interaction_id": chat, "body": "x", "html": "<p>x</p>" }).to_string(), "bad_field"),
        (json!({ "type": "complete", "interaction_id": held, "disposition": "" }).to_string(), "bad_field"),
        (json!({ "type": "presence", "status": "asleep" }).to_string(), "bad_field"),
        (format!(r#"{{"type":"heartbeat","pad":"{}"}}"#, "x".repeat(20 * 1024)), "too_large"),
    ] {
        ada.send_text(&frame).await;
        let e = ada.expect("error").await;
        assert_eq!(e["code"], code, "{frame:.100}: {e}");
    }
    let url = format!("{}/agent/ws", app.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::Text(
        json!({ "type": "login", "token": "wrong" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(c))))) => assert_eq!(u16::from(c.code), 4001),
        other => panic!("a wrong token is closed with 4001: {other:?}"),
    }
    // The desktop's frames are handled in order: its heartbeat answered means every
    // frame before it was.
    ada.send(json!({ "type": "heartbeat" })).await;
    ada.expect("heartbeat_ack").await;
    assert_store_unchanged(&app.database_url, &before, "the agent websocket's refusals").await;

    // And what is accepted does change it: the comparison sees a change.
    app.contact(json!({ "customer": { "email": "ann@example.com" }, "body": "second" }))
        .await;
    let after = store_contents(&app.database_url).await;
    assert_ne!(after, before, "an accepted contact shows in the store");
    let (_, c) = app.get(&format!("/api/customers/{bo}")).await;
    assert_eq!(c["identities"][0]["value"], "+14155550100");
    app.stop().await;
}

both_backends!(every_refusal_on_every_channel_changes_nothing);
