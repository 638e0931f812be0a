//! The web chat channel end to end, with real websocket clients playing visitor and
//! agent: a known high-tier visitor routed ahead of an anonymous one, messages both ways,
//! a visitor reconnecting mid-chat without loss or repetition, an abandoned chat, the
//! transcript in the history, and every kind of bad frame.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{event, events, spawn_app_with, spawn_settings, Backend, TestApp};

const SECRET: &str = "chat-token-secret";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A visitor's page.
pub(crate) struct Visitor {
    pub(crate) ws: Socket,
}

impl Visitor {
    pub(crate) async fn connect(app: &TestApp) -> Visitor {
        let url = format!(
            "{}/channels/chat/ws",
            app.base.replacen("http://", "ws://", 1)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the chat websocket connects");
        Visitor { ws }
    }

    pub(crate) async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub(crate) async fn next(&mut self) -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
                Ok(Some(Ok(Message::Close(c)))) => {
                    return json!({ "type": "closed_socket", "code": c.map(|c| u16::from(c.code)) })
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no frame: {other:?}"),
            }
        }
    }

    /// The next frame that answers something the page sent: an ack, an error, or the
    /// start (the chat's own numbered events and queue positions are skipped).
    pub(crate) async fn answer(&mut self) -> Value {
        loop {
            let v = self.next().await;
            if ["ack", "error", "started", "closed_socket"]
                .contains(&v["type"].as_str().unwrap_or(""))
            {
                return v;
            }
        }
    }

    pub(crate) async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The next message from the agent (the visitor's own messages come back numbered
    /// too, for its other tabs).
    pub(crate) async fn agent_message(&mut self) -> Value {
        loop {
            let v = self.expect("message").await;
            if v["from"] == "agent" {
                return v;
            }
        }
    }

    /// Sends a message and waits for its acknowledgement; answers its number. A chat's
    /// first message is what puts it in line for an agent.
    pub(crate) async fn write(&mut self, id: &str, text: &str) -> u64 {
        self.send(json!({ "type": "message", "id": id, "text": text }))
            .await;
        let ack = self.expect("ack").await;
        assert_eq!(ack["id"], id, "{ack}");
        ack["seq"].as_u64().expect("an ack's number")
    }

    /// Starts a chat; answers (chat id, resume token).
    pub(crate) async fn start(&mut self, start: Value) -> (String, String) {
        self.send(start).await;
        let s = self.expect("started").await;
        (
            s["chat_id"].as_str().unwrap().into(),
            s["resume_token"].as_str().unwrap().into(),
        )
    }
}

async fn app(backend: Backend, adjust: impl FnOnce(&mut switchboard::config::Settings)) -> TestApp {
    spawn_app_with(backend, |s| {
        s.chat.customer_token_secret = SECRET.into();
        adjust(s);
    })
    .await
}

async fn a_known_customer_is_served_first_and_messages_flow_both_ways(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let (status, c) = app
        .post("/api/customers", &json!({ "tier": "high", "identities": [{ "kind": "email", "value": "vip@example.com" }] }))
        .await;
    assert_eq!(status, 201, "{c}");

    // An anonymous visitor starts first; a known high-tier customer (signed token) second.
    let mut anon = Visitor::connect(&app).await;
    anon.start(json!({ "type": "start", "visitor_id": "anon-1" }))
        .await;
    anon.write("a1", "Hi").await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = switchboard_chat::token::sign(
        SECRET,
        &json!({ "email": "vip@example.com", "name": "Vera", "exp": exp }).to_string(),
    );
    let mut vip = Visitor::connect(&app).await;
    let (vip_chat, _) = vip
        .start(json!({ "type": "start", "visitor_id": "vip-1", "customer_token": token }))
        .await;
    // Visitor to agent: committed, acknowledged with its number; the chat waits from it.
    assert!(vip.write("v1", "Hello, my order is late.").await > 0);

    // The agent logs in: the high-tier chat is offered first.
    // Level 3: the shipped rules offer the high tier to senior agents first.
    let (_, agent_token) = create_agent(&app, json!({ "name": "Sam Lee", "level": 3 })).await;
    let mut sam = Desktop::available(&app.base, &agent_token).await;
    let offer = sam.expect("offer").await;
    assert_eq!(offer["interaction"]["channel"], "chat");
    assert_eq!(offer["interaction"]["tier"], "high");
    // The offer carries what the visitor wrote.
    assert_eq!(offer["interaction"]["body"], "Hello, my order is late.");
    let interaction = sam.accept(&offer).await;
    let joined = vip.expect("agent_joined").await;
    assert_eq!(joined["name"], "Sam");
    // Relayed to the agent who joined.
    let relayed = sam.expect("message").await;
    assert_eq!(
        (relayed["text"].as_str(), relayed["interaction_id"].as_str()),
        (Some("Hello, my order is late."), Some(interaction.as_str()))
    );
    // Typing both ways, then agent to visitor.
    vip.send(json!({ "type": "typing" })).await;
    assert_eq!(
        sam.expect("typing").await["interaction_id"],
        interaction.as_str()
    );
    sam.send(json!({ "type": "typing", "interaction_id": interaction }))
        .await;
    assert_eq!(vip.expect("typing").await["from"], "agent");
    sam.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Let me check.", "reply_id": "a1" })).await;
    sam.expect("reply_queued").await;
    let m = vip.agent_message().await;
    assert_eq!(m["text"], "Let me check.");
    sam.expect("reply_sent").await;

    // The agent ends it: the visitor is told; the transcript is in the history.
    sam.send(
        json!({ "type": "complete", "interaction_id": interaction, "disposition": "resolved" }),
    )
    .await;
    assert_eq!(vip.expect("closed").await["by"], "agent");
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    assert_eq!(i["idempotency_key"], vip_chat.as_str());
    let transcript: Vec<(String, String)> = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "chat" && e["data"]["type"] == "message")
        .map(|e| {
            (
                e["data"]["from"].as_str().unwrap().to_string(),
                e["data"]["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        transcript,
        vec![
            ("visitor".into(), "Hello, my order is late.".into()),
            ("agent".into(), "Let me check.".into())
        ]
    );
    app.stop().await;
}

async fn a_visitor_who_reconnects_misses_nothing_and_repeats_nothing(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let (_, agent_token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::available(&app.base, &agent_token).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, resume_token) = page
        .start(json!({ "type": "start", "visitor_id": "v-2", "email": "kim@example.com" }))
        .await;
    let seq1 = page.write("m1", "first").await;
    let interaction = ana.take_offer().await;
    let joined = page.expect("agent_joined").await["seq"].as_u64().unwrap();

    // The page's network drops; meanwhile the agent writes twice.
    drop(page);
    for (id, text) in [("a1", "one"), ("a2", "two")] {
        ana.send(
            json!({ "type": "reply", "interaction_id": interaction, "body": text, "reply_id": id }),
        )
        .await;
        ana.expect("reply_sent").await;
    }

    // The page resumes from what it saw: both agent messages, in order, once.
    let mut page = Visitor::connect(&app).await;
    page.send(json!({ "type": "resume", "chat_id": chat_id, "resume_token": resume_token, "last_seq": joined })).await;
    let resumed = page.expect("resumed").await;
    assert_eq!(resumed["missed"], 2);
    let a = page.agent_message().await;
    let b = page.agent_message().await;
    assert_eq!(
        (a["text"].as_str(), b["text"].as_str()),
        (Some("one"), Some("two"))
    );
    assert_eq!(b["seq"].as_u64().unwrap(), a["seq"].as_u64().unwrap() + 1);
    // The page resends its message (it never saw the ack): acknowledged, not repeated.
    page.send(json!({ "type": "message", "id": "m1", "text": "first" }))
        .await;
    assert_eq!(page.expect("ack").await["seq"].as_u64(), Some(seq1));
    page.send(json!({ "type": "message", "id": "m2", "text": "second" }))
        .await;
    page.expect("ack").await;
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    let visitor_texts: Vec<&str> = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "chat" && e["data"]["from"] == "visitor")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(visitor_texts, ["first", "second"]);
    // A wrong resume token resumes nothing.
    let mut stranger = Visitor::connect(&app).await;
    stranger
        .send(
            json!({ "type": "resume", "chat_id": chat_id, "resume_token": "0000", "last_seq": 0 }),
        )
        .await;
    assert_eq!(stranger.expect("error").await["code"], "unknown_chat");
    app.stop().await;
}

async fn an_agent_writing_while_the_page_resumes_is_read_once(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let (_, agent_token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::available(&app.base, &agent_token).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, resume_token) = page
        .start(json!({ "type": "start", "visitor_id": "v-race" }))
        .await;
    page.write("m1", "Hello").await;
    let interaction = ana.take_offer().await;
    let mut last_seq = page.expect("agent_joined").await["seq"].as_u64().unwrap();
    // Again and again the page reconnects just as the agent writes: each message must
    // reach it once, whether it falls in the replay, comes live, or both.
    for round in 0..12 {
        drop(page);
        let text = format!("reply {round}");
        ana.send(json!({ "type": "reply", "interaction_id": interaction, "body": text, "reply_id": format!("r{round}") }))
            .await;
        page = Visitor::connect(&app).await;
        page.send(json!({ "type": "resume", "chat_id": chat_id, "resume_token": resume_token, "last_seq": last_seq }))
            .await;
        page.expect("resumed").await;
        let got = page.agent_message().await;
        assert_eq!(got["text"], text.as_str(), "round {round}");
        last_seq = got["seq"].as_u64().unwrap();
        ana.expect("reply_sent").await;
        // Nothing twice: the agent writes again, and the page's next message is that one,
        // numbered next. A repeat of the first would have come before it.
        let mark = format!("mark {round}");
        ana.send(json!({ "type": "reply", "interaction_id": interaction, "body": mark, "reply_id": format!("k{round}") }))
            .await;
        let next = page.expect("message").await;
        assert_eq!(
            (next["text"].as_str(), next["seq"].as_u64()),
            (Some(mark.as_str()), Some(last_seq + 1)),
            "round {round}: the message after {got}"
        );
        last_seq = next["seq"].as_u64().unwrap();
        ana.expect("reply_sent").await;
    }
    app.stop().await;
}

async fn what_a_visitor_wrote_while_waiting_reaches_the_agent_who_joins(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let mut page = Visitor::connect(&app).await;
    page.start(json!({ "type": "start", "visitor_id": "v-5" }))
        .await;
    for (id, text) in [
        ("w1", "Is anyone there?"),
        ("w2", "I need help with a refund."),
    ] {
        page.send(json!({ "type": "message", "id": id, "text": text }))
            .await;
        page.expect("ack").await;
    }
    let (_, token) = create_agent(&app, json!({ "name": "Noor" })).await;
    let mut noor = Desktop::available(&app.base, &token).await;
    noor.take_offer().await;
    let first = noor.expect("message").await;
    let second = noor.expect("message").await;
    assert_eq!(
        (first["text"].as_str(), second["text"].as_str()),
        (Some("Is anyone there?"), Some("I need help with a refund."))
    );
    // After joining, each new message is told as it comes, once: the one after it is
    // the next message the agent hears of.
    for (id, text) in [("w3", "Thanks!"), ("w4", "Bye.")] {
        page.send(json!({ "type": "message", "id": id, "text": text }))
            .await;
        page.expect("ack").await;
        assert_eq!(noor.expect("message").await["text"], text);
    }
    app.stop().await;
}

async fn two_chats_keep_their_own_events_whatever_ids_their_pages_use(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let mut chats = Vec::new();
    for visitor in ["v-a", "v-b"] {
        let mut page = Visitor::connect(&app).await;
        let (chat_id, _) = page
            .start(json!({ "type": "start", "visitor_id": visitor }))
            .await;
        // Both pages number their first message the same way.
        page.send(
            json!({ "type": "message", "id": "m1", "text": format!("hello from {visitor}") }),
        )
        .await;
        let ack = page.expect("ack").await;
        assert_eq!(ack["seq"], 1, "each chat records its own message: {ack}");
        page.send(json!({ "type": "close" })).await;
        page.expect("closed").await;
        chats.push((visitor, chat_id));
    }
    for (visitor, chat_id) in chats {
        let (_, i) = app
            .get(&format!("/api/interactions?channel=chat&key={chat_id}"))
            .await;
        let (_, i) = app
            .get(&format!("/api/interactions/{}", i["id"].as_str().unwrap()))
            .await;
        let chat: Vec<&Value> = i["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "chat")
            .map(|e| &e["data"])
            .collect();
        assert!(
            chat.iter()
                .any(|d| d["type"] == "message" && d["text"] == format!("hello from {visitor}")),
            "{visitor}'s message is in their chat: {chat:?}"
        );
        assert!(
            chat.iter().any(|d| d["type"] == "closed"),
            "{visitor}'s chat is closed in its history: {chat:?}"
        );
    }
    app.stop().await;
}

async fn a_visitor_who_leaves_while_waiting_is_an_abandoned_chat(backend: Backend) {
    let app = app(backend, |s| s.chat.abandon_after_secs = 1).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, _) = page
        .start(json!({ "type": "start", "visitor_id": "v-3" }))
        .await;
    page.send(json!({ "type": "message", "id": "m1", "text": "anyone there?" }))
        .await;
    page.expect("ack").await;
    // While it waits, the page is told where it stands.
    assert_eq!(page.expect("queue").await["position"], 1);
    drop(page);
    // Abandoned once its visitor has been gone a second: waited for in its history, where
    // the abandonment and the chat's end are written (each by its own commit).
    let (status, v) = app.get("/api/customers?visitor_id=v-3").await;
    assert_eq!(status, 200, "{v}");
    let history = format!("/api/customers/{}/history", v["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let closed = loop {
        let (_, h) = app.get(&history).await;
        let events = h["events"].as_array().unwrap().clone();
        let closed = events
            .iter()
            .find(|e| e["kind"] == "chat" && e["data"]["type"] == "closed")
            .cloned();
        if let (Some(closed), true) = (closed, events.iter().any(|e| e["kind"] == "abandoned")) {
            break closed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not abandoned within 10 s: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["waiting"], 0, "the chat left the queue: {q}");
    assert_eq!(closed["data"]["by"], "visitor");
    assert!(chat_id.starts_with("chat:"));
    app.stop().await;
}

async fn a_chat_left_waiting_across_a_restart_is_abandoned_when_its_visitor_does_not_return(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(&backend, &dir).await;
    settings.chat.abandon_after_secs = 1;
    let app = spawn_settings(settings.clone()).await;
    let mut page = Visitor::connect(&app).await;
    let (gone, _) = page
        .start(json!({ "type": "start", "visitor_id": "v-gone" }))
        .await;
    page.write("m1", "Hello?").await;
    let mut other = Visitor::connect(&app).await;
    let (back, token) = other
        .start(json!({ "type": "start", "visitor_id": "v-back" }))
        .await;
    other.write("m1", "Hello!").await;
    // The server restarts with both chats waiting and neither page connected.
    drop((page, other));
    app.stop().await;
    let app = spawn_settings(settings).await;
    // One visitor comes back within the grace and keeps their place.
    let mut other = Visitor::connect(&app).await;
    other
        .send(json!({ "type": "resume", "chat_id": back, "resume_token": token, "last_seq": 0 }))
        .await;
    other.expect("resumed").await;
    // The other never does: their chat is abandoned, as it would have been without the restart.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, i) = app
            .get(&format!("/api/interactions?channel=chat&key={gone}"))
            .await;
        if i["state"] == "abandoned" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not abandoned within 10 s: {i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(
        q["waiting"], 1,
        "only the chat whose visitor returned still waits: {q}"
    );
    let (_, i) = app
        .get(&format!("/api/interactions?channel=chat&key={back}"))
        .await;
    assert_eq!(i["state"], "queued", "{i}");
    app.stop().await;
}

async fn bad_frames_get_clear_answers(backend: Backend) {
    let app = app(backend, |s| {
        s.chat.max_message_bytes = 100;
        s.chat.messages_per_minute = 3;
        s.chat.max_chats_per_visitor = 1;
        s.chat.allowed_origins = vec!["https://shop.example.com".into()];
    })
    .await;
    // A page from another origin may not open chats.
    let url = format!(
        "{}/channels/chat/ws",
        app.base.replacen("http://", "ws://", 1)
    );
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "refused"
    );
    let connect = || async {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut()
            .insert("origin", "https://shop.example.com".parse().unwrap());
        Visitor {
            ws: tokio_tungstenite::connect_async(req).await.unwrap().0,
        }
    };
    let mut page = connect().await;
    page.send(json!({ "type": "message", "id": "x", "text": "hi" }))
        .await;
    assert_eq!(page.expect("error").await["code"], "start_first");
    page.ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(page.expect("error").await["code"], "bad_frame");
    page.ws
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(page.expect("error").await["code"], "bad_frame");
    page.send(json!({ "type": "start", "visitor_id": "" }))
        .await;
    assert_eq!(page.expect("error").await["code"], "bad_field");
    page.send(json!({ "type": "start", "visitor_id": "v-4", "customer_token": "forged.00" }))
        .await;
    assert_eq!(page.expect("error").await["code"], "bad_field");
    page.start(json!({ "type": "start", "visitor_id": "v-4" }))
        .await;
    page.send(json!({ "type": "message", "id": "big", "text": "x".repeat(101) }))
        .await;
    assert_eq!(page.expect("error").await["code"], "too_large");
    for i in 0..3 {
        page.send(json!({ "type": "message", "id": format!("f{i}"), "text": "flood" }))
            .await;
        page.expect("ack").await;
    }
    page.send(json!({ "type": "message", "id": "f3", "text": "flood" }))
        .await;
    assert_eq!(page.expect("error").await["code"], "slow_down");
    // A second chat for the same visitor is one too many.
    let mut second = connect().await;
    second
        .send(json!({ "type": "start", "visitor_id": "v-4" }))
        .await;
    assert_eq!(second.expect("error").await["code"], "too_many_chats");
    assert_eq!(second.next().await["code"], 4008);
    // A frame longer than any message allowed is not read: the page is told why, and its
    // connection closed with the websocket's code for it.
    let mut huge = connect().await;
    huge.ws
        .send(Message::Text("x".repeat(8 * 1024).into()))
        .await
        .unwrap();
    assert_eq!(huge.answer().await["code"], "too_large");
    assert_eq!(huge.next().await["code"], 1009);
    // The first connection is unharmed.
    page.send(json!({ "type": "ping" })).await;
    page.expect("pong").await;
    app.stop().await;
}

/// `text` as a JSON string the way a page that escapes everything outside printable
/// ASCII writes it (Python's `json.dumps` by default): six bytes for a control character
/// or an accented letter, twelve for an emoji — the longest frame a message can make.
fn escaped(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.push('"');
    out
}

async fn a_message_at_the_limit_goes_through_however_it_is_escaped_and_one_over_is_answered(
    backend: Backend,
) {
    // The default limit (4,000 bytes): far more than a connection's read buffer holds.
    let app = app(backend, |_| {}).await;
    let limit = switchboard::config::Settings::defaults()
        .chat
        .max_message_bytes;
    let mut page = Visitor::connect(&app).await;
    page.start(json!({ "type": "start", "visitor_id": "v-long" }))
        .await;
    page.write("hello", "Hello").await;
    let (_, agent_token) = create_agent(&app, json!({ "name": "Sam Lee" })).await;
    let mut sam = Desktop::available(&app.base, &agent_token).await;
    let offer = sam.expect("offer").await;
    sam.accept(&offer).await;
    page.expect("agent_joined").await;
    assert_eq!(sam.expect("message").await["text"], "Hello");

    // Exactly the limit, in the characters that escape longest: control characters,
    // emoji, accented letters, quotes, and plain text.
    let mut text = "\u{1}".repeat(limit / 8) + &"😀".repeat(limit / 8) + &"é".repeat(limit / 8);
    text += &"\"".repeat(limit / 16);
    text += &"a".repeat(limit - text.len());
    assert_eq!(text.len(), limit);
    let frame = format!(
        r#"{{"type":"message","id":"at-limit","text":{}}}"#,
        escaped(&text)
    );
    assert!(frame.len() > 3 * limit, "{} bytes on the wire", frame.len());
    page.ws.send(Message::Text(frame.into())).await.unwrap();
    let ack = page.answer().await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("ack"), Some("at-limit")),
        "{ack}"
    );
    let relayed = sam.expect("message").await;
    assert_eq!(
        relayed["text"].as_str(),
        Some(text.as_str()),
        "the agent reads it whole"
    );

    // One byte over: answered with the protocol's error, and the chat goes on.
    let over = format!(
        r#"{{"type":"message","id":"over","text":{}}}"#,
        escaped(&(text.clone() + "a"))
    );
    page.ws.send(Message::Text(over.into())).await.unwrap();
    let refused = page.answer().await;
    assert_eq!(refused["code"], "too_large", "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains(&limit.to_string()));
    page.send(json!({ "type": "message", "id": "after", "text": "Still there?" }))
        .await;
    assert_eq!(page.answer().await["id"], "after");
    assert_eq!(sam.expect("message").await["text"], "Still there?");
    app.stop().await;
}

/// The chat's interaction, by its chat id.
async fn chat_interaction(app: &TestApp, chat_id: &str) -> Value {
    let (status, i) = app
        .get(&format!("/api/interactions?channel=chat&key={chat_id}"))
        .await;
    assert_eq!(status, 200, "{i}");
    let (_, i) = app
        .get(&format!("/api/interactions/{}", i["id"].as_str().unwrap()))
        .await;
    i
}

async fn a_chat_is_offered_only_once_its_visitor_has_written(backend: Backend) {
    let app = app(backend, |_| {}).await;
    // An agent is free before the visitor opens the chat.
    let (_, token) = create_agent(&app, json!({ "name": "Lin" })).await;
    let mut lin = Desktop::available(&app.base, &token).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, _) = page
        .start(json!({ "type": "start", "visitor_id": "v-silent" }))
        .await;
    // Opened, kept, but nobody is asked to answer it, it has no place in line and
    // nothing counts it as waiting.
    let quiet = lin.frames_until_quiet(Duration::from_secs(3)).await;
    assert!(
        !quiet.iter().any(|f| f["type"] == "offer"),
        "no offer before the visitor writes: {quiet:?}"
    );
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["waiting"], 0, "an unwritten chat does not wait: {q}");
    let i = chat_interaction(&app, &chat_id).await;
    assert_eq!(i["state"], "opened", "{i}");
    assert!(
        events(&i, "interaction_received").is_empty() && events(&i, "queued").is_empty(),
        "not received or queued yet: {i}"
    );
    let mut frames = Vec::new();
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(300), page.ws.next()).await
    {
        frames.push(t.to_string());
    }
    assert!(
        !frames.iter().any(|f| f.contains("\"queue\"")),
        "no place in line before writing: {frames:?}"
    );
    // The customer is made a VIP meanwhile: the chat is in line as one.
    let (_, c) = app.get("/api/customers?visitor_id=v-silent").await;
    let (status, c) = app
        .put(
            &format!("/api/customers/{}", c["id"].as_str().unwrap()),
            &json!({ "name": "Silke", "tier": "high" }),
        )
        .await;
    assert_eq!(status, 200, "{c}");

    // The visitor writes: the offer comes at once, carrying what was written, and its
    // wait counts from the message, not from the opening seconds before.
    let text = "你好，我想改一下送货地址。";
    page.write("m1", text).await;
    let offer = lin.expect("offer").await;
    assert_eq!(offer["interaction"]["body"], text, "{offer}");
    assert_eq!(offer["interaction"]["channel"], "chat");
    assert_eq!(offer["interaction"]["tier"], "high", "{offer}");
    let interaction = lin.accept(&offer).await;
    assert_eq!(lin.expect("message").await["text"], text);
    page.expect("agent_joined").await;
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    let waited = event(&i, "assigned")["data"]["waited_secs"]
        .as_f64()
        .unwrap();
    assert!(
        waited < 2.5,
        "the wait counts from the first message: {waited} s"
    );
    let received = event(&i, "interaction_received");
    assert_eq!(received["data"]["first_message"], true, "{received}");
    app.stop().await;
}

async fn a_visitor_who_leaves_without_writing_left_no_contact_and_none_abandoned(backend: Backend) {
    let app = app(backend, |s| s.chat.abandon_after_secs = 1).await;
    let mut page = Visitor::connect(&app).await;
    // About a complaint, but never written: no complaint is opened either.
    let (gone, _) = page
        .start(json!({ "type": "start", "visitor_id": "v-window-shopper", "topic": "complaint" }))
        .await;
    drop(page);
    // Another closes the widget without writing.
    let mut other = Visitor::connect(&app).await;
    let (closed, _) = other
        .start(json!({ "type": "start", "visitor_id": "v-closer" }))
        .await;
    other.send(json!({ "type": "close" })).await;
    assert_eq!(other.expect("closed").await["by"], "visitor");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let i = chat_interaction(&app, &gone).await;
        if i["state"] == "left" {
            assert!(events(&i, "abandoned").is_empty(), "{i}");
            assert!(events(&i, "complaint_opened").is_empty(), "{i}");
            assert_eq!(i["complaint_id"], Value::Null, "{i}");
            assert_eq!(
                event(&i, "left_unwritten")["data"]["reason"],
                "the visitor left without writing"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not closed as left within 10 s: {i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let i = chat_interaction(&app, &closed).await;
    assert_eq!(i["state"], "left", "{i}");
    // The service level counts neither: nobody was asked to answer them.
    let (_, sl) = app.get("/api/queue/service-level?hours=1").await;
    assert!(sl["tiers"].as_object().unwrap().is_empty(), "{sl}");
    // One about a complaint that is written in opens the complaint, at its first message.
    let mut writer = Visitor::connect(&app).await;
    let (complaint, _) = writer
        .start(json!({ "type": "start", "visitor_id": "v-complainer", "topic": "complaint" }))
        .await;
    assert!(events(
        &chat_interaction(&app, &complaint).await,
        "complaint_opened"
    )
    .is_empty());
    writer.write("m1", "The parcel came broken.").await;
    let i = chat_interaction(&app, &complaint).await;
    assert_eq!(i["state"], "queued", "{i}");
    assert_eq!(events(&i, "complaint_opened").len(), 1, "{i}");
    assert!(i["complaint_id"].is_string(), "{i}");
    writer.send(json!({ "type": "close" })).await;
    writer.expect("closed").await;
    app.stop().await;
}

async fn a_chat_opened_before_a_restart_is_offered_when_its_visitor_writes_after(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::helpers::test_settings(&backend, &dir).await;
    let app = spawn_settings(settings.clone()).await;
    let (_, token) = create_agent(&app, json!({ "name": "Lin" })).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, resume_token) = page
        .start(json!({ "type": "start", "visitor_id": "v-restart" }))
        .await;
    // The server restarts between the chat's start and its first message.
    drop(page);
    app.stop().await;
    let app = spawn_settings(settings).await;
    let mut lin = Desktop::available(&app.base, &token).await;
    let mut page = Visitor::connect(&app).await;
    page.send(json!({ "type": "resume", "chat_id": chat_id, "resume_token": resume_token, "last_seq": 0 }))
        .await;
    page.expect("resumed").await;
    let quiet = lin.frames_until_quiet(Duration::from_secs(2)).await;
    assert!(
        !quiet.iter().any(|f| f["type"] == "offer"),
        "still not offered after the restart: {quiet:?}"
    );
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["waiting"], 0, "{q}");
    page.write("m1", "Are you there?").await;
    let offer = lin.expect("offer").await;
    assert_eq!(offer["interaction"]["body"], "Are you there?", "{offer}");
    lin.accept(&offer).await;
    assert_eq!(page.expect("agent_joined").await["name"], "Lin");
    app.stop().await;
}

both_backends!(
    a_chat_is_offered_only_once_its_visitor_has_written,
    a_visitor_who_leaves_without_writing_left_no_contact_and_none_abandoned,
    a_chat_opened_before_a_restart_is_offered_when_its_visitor_writes_after,
    a_known_customer_is_served_first_and_messages_flow_both_ways,
    a_visitor_who_reconnects_misses_nothing_and_repeats_nothing,
    a_visitor_who_leaves_while_waiting_is_an_abandoned_chat,
    a_chat_left_waiting_across_a_restart_is_abandoned_when_its_visitor_does_not_return,
    two_chats_keep_their_own_events_whatever_ids_their_pages_use,
    an_agent_writing_while_the_page_resumes_is_read_once,
    what_a_visitor_wrote_while_waiting_reaches_the_agent_who_joins,
    bad_frames_get_clear_answers,
    a_pre_chat_email_is_the_visitors_word_and_names_no_customer,
    a_message_at_the_limit_goes_through_however_it_is_escaped_and_one_over_is_answered,
);

async fn a_pre_chat_email_is_the_visitors_word_and_names_no_customer(backend: Backend) {
    let app = app(backend, |_| {}).await;
    let (status, vip) = app
        .post("/api/customers", &json!({ "tier": "high", "identities": [{ "kind": "email", "value": "vip@example.com" }] }))
        .await;
    assert_eq!(status, 201, "{vip}");
    let vip_id = vip["id"].as_str().unwrap();

    // Someone types the VIP's address in the pre-chat form.
    let mut page = Visitor::connect(&app).await;
    page.start(json!({ "type": "start", "visitor_id": "claims-1", "email": "VIP@example.com", "name": "Vera?" }))
        .await;
    page.write("m1", "Hello").await;
    let (_, agent_token) = create_agent(&app, json!({ "name": "Sam", "level": 3 })).await;
    let mut sam = Desktop::available(&app.base, &agent_token).await;
    let offer = sam.expect("offer").await;
    // Neither the VIP's tier nor the VIP's record: a customer of the visitor's own.
    assert_eq!(offer["interaction"]["tier"], "low", "{offer}");
    let customer = offer["interaction"]["customer_id"].as_str().unwrap();
    assert_ne!(customer, vip_id);
    let interaction = sam.accept(&offer).await;

    // The agent sees what was claimed, unverified, and whose address it is.
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    let claim = &event(&i, "email_claimed")["data"];
    assert_eq!(claim["email"], "vip@example.com");
    assert_eq!(claim["verified"], false);
    assert_eq!(claim["customer_id"], vip_id);
    assert_eq!(claim["same_customer"], false);

    // The address was given to nobody: the VIP keeps it alone, the visitor's customer has
    // only its visitor id, and the VIP's next email is the VIP's.
    let (_, v) = app.get(&format!("/api/customers/{vip_id}")).await;
    let kinds: Vec<&str> = v["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["email"], "{v}");
    let (_, c) = app.get(&format!("/api/customers/{customer}")).await;
    assert_eq!(c["identities"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["identities"][0]["kind"], "visitor_id");

    // An address nobody has is not given away either: its owner's first email makes a
    // customer of its own.
    let mut other = Visitor::connect(&app).await;
    other
        .start(json!({ "type": "start", "visitor_id": "claims-2", "email": "new@example.com" }))
        .await;
    other.write("m1", "Hello").await;
    let offer = sam.expect("offer").await;
    let claimant = offer["interaction"]["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, i) = app
        .get(&format!(
            "/api/interactions/{}",
            offer["interaction"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        event(&i, "email_claimed")["data"]["customer_id"],
        Value::Null
    );
    let mail = app
        .contact(json!({ "customer": { "email": "new@example.com" }, "subject": "Hello" }))
        .await;
    assert_ne!(mail["customer_id"].as_str().unwrap(), claimant);

    // A malformed address is refused as before.
    let mut bad = Visitor::connect(&app).await;
    bad.send(json!({ "type": "start", "visitor_id": "claims-3", "email": "not an address" }))
        .await;
    let e = bad.expect("error").await;
    assert_eq!(e["code"], "bad_field");
    assert!(e["message"].as_str().unwrap().starts_with("email:"), "{e}");
    app.stop().await;
}

both_backends!(a_visitor_gets_the_transcript_by_mail_once);

async fn a_visitor_gets_the_transcript_by_mail_once(backend: Backend) {
    let (relay, sink) = crate::email::smtp_sink().await;
    let app = app(backend, |s| {
        s.email.relay_url = format!("smtp://127.0.0.1:{relay}");
        s.email.from_address = "support@shop.test".into();
        s.email.hostname = "switchboard.test".into();
    })
    .await;
    let (_, token) = create_agent(&app, json!({ "name": "Lin" })).await;
    let mut lin = Desktop::available(&app.base, &token).await;
    let mut page = Visitor::connect(&app).await;
    page.start(json!({ "type": "start", "visitor_id": "transcript-visitor" }))
        .await;
    page.send(json!({ "type": "message", "id": "m1", "text": "我的包裹在哪里？" }))
        .await;
    let id = lin.take_offer().await;
    lin.send(json!({ "type": "reply", "interaction_id": id, "body": "It left today.", "reply_id": "a1" }))
        .await;
    page.agent_message().await;
    // Bad addresses are refused; nothing is sent.
    page.send(json!({ "type": "transcript", "email": "not an address" }))
        .await;
    assert_eq!(page.answer().await["code"], "bad_field");
    page.send(json!({ "type": "transcript", "email": "nina@example.org" }))
        .await;
    assert_eq!(
        page.expect("transcript_queued").await["type"],
        "transcript_queued"
    );
    page.send(json!({ "type": "transcript", "email": "nina@example.org" }))
        .await;
    assert_eq!(page.answer().await["code"], "already_sent", "once per chat");
    // The mail: to the address given, both sides of the chat, marked automatic, read
    // by Python's email package.
    let mut raw = None;
    for _ in 0..200 {
        if let Some(m) = sink.lock().unwrap().first() {
            raw = Some(m.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, to, data) = raw.expect("the transcript reaches the relay");
    assert_eq!(to, vec!["<nina@example.org>".to_string()]);
    let read = crate::email::python_reads(&data);
    assert_eq!(read["defects"], json!([]), "{read}");
    let text = read["plain"]["content"].as_str().unwrap();
    assert!(
        text.contains("You: 我的包裹在哪里？") && text.contains("Agent: It left today."),
        "{text}"
    );
    assert!(data.contains("Auto-Submitted: auto-replied"), "{data}");
    app.stop().await;
}
