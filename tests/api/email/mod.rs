//! The email channel end to end: real mail sent over SMTP with lettre (and swaks) into
//! the listener, an agent's reply over the websocket delivered to an
//! SMTP sink with its threading headers, the customer's answer threading back, noise
//! recorded but never routed, and every way the SMTP dialogue can go wrong.
//!
//! - [`replies`]: agents' replies as a standard MIME parser (Python's) reads them;
//! - [`charsets`]: legacy charset labels, undeclared charsets, a missing blank line;
//! - [`kept_aside`]: reused Message-IDs, mail kept aside and made a contact, NUL bytes;
//! - [`pipelining`]: clients that pipeline their commands (RFC 2920), swaks among them.

mod charsets;
mod delivery;
mod kept_aside;
mod pipelining;
mod replies;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::{header::ContentType, Attachment, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{event, spawn_app_with, Backend, TestApp};

/// Messages received by a test SMTP sink: (envelope sender, recipients, data).
pub(crate) type Sink = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;

/// A minimal SMTP server on loopback that keeps every message it is given.
pub(crate) async fn smtp_sink() -> (u16, Sink) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink: Sink = Arc::default();
    let kept = sink.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ready\r\n").await.unwrap();
                let (mut from, mut to) = (String::new(), Vec::new());
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let answer = if upper.starts_with("EHLO") {
                        "250-sink\r\n250 8BITMIME\r\n".to_string()
                    } else if upper.starts_with("MAIL FROM:") {
                        from = line[10..].trim().to_string();
                        "250 ok\r\n".into()
                    } else if upper.starts_with("RCPT TO:") {
                        to.push(line[8..].trim().to_string());
                        "250 ok\r\n".into()
                    } else if upper.starts_with("DATA") {
                        w.write_all(b"354 go\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            r.read_line(&mut l).await.unwrap();
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        kept.lock()
                            .unwrap()
                            .push((from.clone(), std::mem::take(&mut to), data));
                        "250 kept\r\n".into()
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "250 ok\r\n".into()
                    };
                    w.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (port, sink)
}

/// The server with email accepted for shop.test, replies relayed to `relay_port`, and
/// the shipped routing rules with a one-second wrap-up.
async fn app(
    backend: Backend,
    relay_port: u16,
    adjust: impl FnOnce(&mut switchboard::config::Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.toml");
    std::fs::write(
        &rules,
        include_str!("../../../config/routing.toml")
            .replace("wrap_up_secs = 30", "wrap_up_secs = 1"),
    )
    .unwrap();
    let app = spawn_app_with(backend, |s| {
        s.routing.rules_file = rules.display().to_string();
        s.email.domains = vec!["shop.test".into()];
        s.email.hostname = "switchboard.test".into();
        s.email.from_address = "support@shop.test".into();
        s.email.relay_url = format!("smtp://127.0.0.1:{relay_port}");
        adjust(s);
    })
    .await;
    (app, dir)
}

pub(crate) fn mailer(app: &TestApp) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.unwrap().port())
        .build()
}

/// A plain message to support@shop.test.
pub(crate) fn plain(from: &str, subject: &str, body: &str) -> Message {
    Message::builder()
        .from(from.parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject(subject)
        .body(body.to_string())
        .unwrap()
}

/// The interactions of the customer with this email address, newest first.
async fn interactions_of(app: &TestApp, email: &str) -> Vec<Value> {
    let (status, c) = app.get(&format!("/api/customers?email={email}")).await;
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{c}");
    let (_, h) = app
        .get(&format!(
            "/api/customers/{}/history?limit=500",
            c["id"].as_str().unwrap()
        ))
        .await;
    let mut ids: Vec<String> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "interaction_received")
        .filter_map(|e| e["interaction_id"].as_str().map(str::to_string))
        .collect();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
        out.push(i);
    }
    out
}

fn kinds(i: &Value) -> Vec<String> {
    i["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// What Python's standard `email` package (a MIME parser that is not Switchboard's own)
/// reads in `raw`: see `read_mime.py`. Fails the test when there is no `python3`.
pub(crate) fn python_reads(raw: &str) -> Value {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", include_str!("read_mime.py")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 reads the replies back (bash .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Bytes as quoted-printable, every byte escaped.
fn qp(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("={b:02X}")).collect()
}

async fn mail_becomes_an_interaction_with_its_charsets_and_attachments(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let (status, c) = app
        .post("/api/customers", &json!({ "tier": "high", "identities": [{ "kind": "email", "value": "wang@example.cn" }] }))
        .await;
    assert_eq!(status, 201, "{c}");

    // A multipart message in GB2312, with an attachment, as a Chinese mail client sends it.
    let (subject, _, _) = encoding_rs::GBK.encode("订单还没有到");
    let (body, _, _) = encoding_rs::GBK.encode("您好，我的订单还没有到，请帮忙查询。");
    let raw = format!(
        "From: =?GB2312?Q?{}?= <wang@example.cn>\r\nTo: support@shop.test\r\nSubject: =?GB2312?Q?{}?=\r\nMessage-ID: <cn-1@example.cn>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=GB2312\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--b\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfs\r\n--b--\r\n",
        qp(&encoding_rs::GBK.encode("王先生").0),
        qp(&subject),
        qp(&body)
    );
    let envelope = lettre::address::Envelope::new(
        Some("wang@example.cn".parse().unwrap()),
        vec!["support@shop.test".parse().unwrap()],
    )
    .unwrap();
    let answer = mailer(&app)
        .send_raw(&envelope, raw.as_bytes())
        .await
        .unwrap();
    assert_eq!(answer.code().to_string(), "250");

    let found = interactions_of(&app, "wang@example.cn").await;
    assert_eq!(found.len(), 1);
    let i = &found[0];
    assert_eq!(
        (i["channel"].as_str(), i["tier"].as_str()),
        (Some("email"), Some("high"))
    );
    assert_eq!(i["subject"], "订单还没有到");
    assert_eq!(i["body"], "您好，我的订单还没有到，请帮忙查询。");
    let received = &event(i, "email_received")["data"];
    assert_eq!(received["from_name"], "王先生");
    assert_eq!(received["to"], json!(["support@shop.test"]));
    let files = i["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{i}");
    assert_eq!(
        (files[0]["name"].as_str(), files[0]["size"].as_i64()),
        (Some("invoice.pdf"), Some(12))
    );
    let resp = app
        .client
        .get(format!("{}{}", app.base, files[0]["url"].as_str().unwrap()))
        .bearer_auth(crate::helpers::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"invoice.pdf\""
    );
    assert_eq!(&resp.bytes().await.unwrap()[..], b"%PDF-1.4\n%\xc7\xec");

    // Sent again (a retried session): nothing changes.
    mailer(&app)
        .send_raw(&envelope, raw.as_bytes())
        .await
        .unwrap();
    let again = interactions_of(&app, "wang@example.cn").await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        kinds(&again[0])
            .iter()
            .filter(|k| *k == "email_received")
            .count(),
        1
    );

    // A UTF-8 message built by lettre, multipart with HTML and an attachment.
    let message = Message::builder()
        .from("Ana Lima <ana@example.com>".parse().unwrap())
        .to("orders@shop.test".parse().unwrap())
        .subject("Pedido nº 42 — chegou partido")
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(
                    "O vaso chegou partido.".to_string(),
                    "<p>O vaso chegou <b>partido</b>.</p>".to_string(),
                ))
                .singlepart(Attachment::new("foto.png".into()).body(
                    vec![0x89, b'P', b'N', b'G'],
                    ContentType::parse("image/png").unwrap(),
                )),
        )
        .unwrap();
    mailer(&app).send(message).await.unwrap();
    let ana = interactions_of(&app, "ana@example.com").await;
    assert_eq!(ana.len(), 1);
    assert_eq!(ana[0]["subject"], "Pedido nº 42 — chegou partido");
    assert_eq!(ana[0]["body"], "O vaso chegou partido.");
    assert_eq!(ana[0]["attachments"][0]["name"], "foto.png");
    assert_eq!(ana[0]["attachments"][0]["content_type"], "image/png");
    app.stop().await;
}

async fn an_agent_answers_and_the_conversation_threads_both_ways(backend: Backend) {
    let (relay, sink) = smtp_sink().await;
    let (app, _dir) = app(backend, relay, |_| {}).await;
    let (ann_id, token) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&app.base, &token).await;

    let first = Message::builder()
        .from("Carla <carla@example.org>".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Refund for order 77")
        .message_id(Some("<first-77@example.org>".into()))
        .body("Please refund my order 77.".to_string())
        .unwrap();
    mailer(&app).send(first).await.unwrap();
    let interaction = ann.take_offer().await;

    // The agent answers over the websocket; the reply reaches the relay as a reply.
    ann.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Refunded today.", "reply_id": "r1" })).await;
    assert_eq!(ann.expect("reply_queued").await["reply_id"], "r1");
    let sent = ann.expect("reply_sent").await;
    let message_id = sent["message_id"].as_str().unwrap().to_string();
    let got = sink.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (from, to, data) = &got[0];
    assert_eq!(from, "<support@shop.test>");
    assert_eq!(to, &vec!["<carla@example.org>".to_string()]);
    let header = |name: &str| {
        data.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {data}"))
    };
    assert_eq!(header("In-Reply-To"), "<first-77@example.org>");
    assert!(header("References").contains("<first-77@example.org>"));
    assert_eq!(header("Message-ID"), format!("<{message_id}>"));
    let subject = header("Subject");
    assert!(
        subject.starts_with("Re: Refund for order 77 [#"),
        "{subject}"
    );
    assert_eq!(header("X-Switchboard-Loop"), "switchboard.test");
    assert!(data.contains("Refunded today."));
    // The same reply sent again (after a reconnect) is not sent twice: the next reply
    // the relay gets is the agent's next one.
    ann.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Refunded today.", "reply_id": "r1" })).await;
    ann.expect("reply_queued").await;
    ann.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Anything else?", "reply_id": "r2" })).await;
    while ann.expect("reply_sent").await["reply_id"] != "r2" {}
    let relayed: Vec<String> = sink.lock().unwrap().iter().map(|m| m.2.clone()).collect();
    assert_eq!(relayed.len(), 2, "{relayed:?}");
    assert!(relayed[1].contains("Anything else?"), "{relayed:?}");

    // The customer answers the reply: it threads to the same interaction, and the
    // agent is told.
    let answer = Message::builder()
        .from("carla@example.org".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject(format!("Re: {subject}"))
        .in_reply_to(format!("<{message_id}>"))
        .references(format!("<first-77@example.org> <{message_id}>"))
        .body("Thanks! When will I see it?".to_string())
        .unwrap();
    mailer(&app).send(answer).await.unwrap();
    assert_eq!(
        ann.expect("message").await["interaction_id"],
        interaction.as_str()
    );
    // An answer that lost its headers still threads, by the token in its subject.
    let by_token = plain("carla@example.org", &subject, "Sent from my phone");
    mailer(&app).send(by_token).await.unwrap();
    ann.expect("message").await;

    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    let k = kinds(&i);
    assert_eq!(
        k.iter().filter(|k| *k == "email_received").count(),
        3,
        "{k:?}"
    );
    assert_eq!(k.iter().filter(|k| *k == "email_sent").count(), 2, "{k:?}");
    assert_eq!(event(&i, "email_sent")["data"]["agent_id"], ann_id.as_str());
    assert_eq!(interactions_of(&app, "carla@example.org").await.len(), 1);

    // Completed, then the customer writes again: reopened, and offered to Ann first
    // although Bo has been idle longer.
    ann.send(
        json!({ "type": "complete", "interaction_id": interaction, "disposition": "resolved" }),
    )
    .await;
    ann.expect("completed").await;
    let (_, token) = create_agent(&app, json!({ "name": "Bo" })).await;
    let mut bo = Desktop::available(&app.base, &token).await;
    until_wrapped_up(&app, &ann_id).await;
    let again = Message::builder()
        .from("carla@example.org".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject(format!("Re: {subject}"))
        .in_reply_to(format!("<{message_id}>"))
        .body("It never arrived.".to_string())
        .unwrap();
    mailer(&app).send(again).await.unwrap();
    assert_eq!(ann.take_offer().await, interaction);
    // Bo was not offered it: his first offer is the next new mail.
    mailer(&app)
        .send(plain("dora@example.org", "New here", "Hello"))
        .await
        .unwrap();
    let next = bo.take_offer().await;
    assert_ne!(next, interaction);
    let (_, n) = app.get(&format!("/api/interactions/{next}")).await;
    assert_eq!(n["subject"], "New here");
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    assert!(kinds(&i).contains(&"reopened".to_string()));
    assert_eq!(i["preferred_agent_id"], ann_id.as_str());
    app.stop().await;
}

/// Waits until the live queue shows the agent's wrap-up over.
async fn until_wrapped_up(app: &TestApp, agent_id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, q) = app.get("/api/queue").await;
        let agent = q["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == agent_id)
            .cloned()
            .unwrap_or_else(|| panic!("{agent_id} is not listed: {q}"));
        if agent["wrap_up"] == false {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still in wrap-up: {agent}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_reply_to_a_closed_conversation_can_start_a_linked_one(backend: Backend) {
    let (relay, _sink) = smtp_sink().await;
    let (app, _dir) = app(backend, relay, |s| s.email.reply_to_closed = "new".into()).await;
    let (ann_id, token) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&app.base, &token).await;
    let first = Message::builder()
        .from("gil@example.com".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Invoice copy")
        .message_id(Some("<inv-1@example.com>".into()))
        .body("Please send a copy.".to_string())
        .unwrap();
    mailer(&app).send(first).await.unwrap();
    let old = ann.take_offer().await;
    ann.send(json!({ "type": "complete", "interaction_id": old, "disposition": "resolved" }))
        .await;
    ann.expect("completed").await;
    until_wrapped_up(&app, &ann_id).await;
    let again = Message::builder()
        .from("gil@example.com".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Re: Invoice copy")
        .in_reply_to("<inv-1@example.com>".into())
        .body("It was the wrong invoice.".to_string())
        .unwrap();
    mailer(&app).send(again).await.unwrap();
    let new = ann.take_offer().await;
    assert_ne!(new, old);
    let (_, i) = app.get(&format!("/api/interactions/{new}")).await;
    assert_eq!(event(&i, "email_received")["data"]["follows"], old.as_str());
    assert_eq!(i["preferred_agent_id"], ann_id.as_str());
    let (_, o) = app.get(&format!("/api/interactions/{old}")).await;
    assert_eq!(o["state"], "completed", "the old one stays closed");
    app.stop().await;
}

async fn noise_is_recorded_and_never_routed(backend: Backend) {
    let (relay, _sink) = smtp_sink().await;
    let (app, _dir) = app(backend, relay, |_| {}).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&app.base, &token).await;
    mailer(&app)
        .send(
            Message::builder()
                .from("dan@example.net".parse().unwrap())
                .to("support@shop.test".parse().unwrap())
                .subject("Where is my parcel?")
                .message_id(Some("<parcel@example.net>".into()))
                .body("Where is it?".to_string())
                .unwrap(),
        )
        .await
        .unwrap();
    let interaction = ann.take_offer().await;

    // An out-of-office answer to the thread: on its history, not routed.
    let ooo = "From: dan@example.net\r\nTo: support@shop.test\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\nIn-Reply-To: <parcel@example.net>\r\nMessage-ID: <ooo@example.net>\r\n\r\nI am away until Monday.\r\n";
    let bounce = "From: MAILER-DAEMON@mx.example.net\r\nTo: support@shop.test\r\nSubject: Undelivered Mail\r\nMessage-ID: <bounce@mx.example.net>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n--r--\r\n";
    let own = "From: support@shop.test\r\nTo: support@shop.test\r\nSubject: Re: something\r\nMessage-ID: <x@switchboard.test>\r\nX-Switchboard-Loop: switchboard.test\r\n\r\nLooping.\r\n";
    let list = "From: news@example.net\r\nTo: support@shop.test\r\nSubject: Our newsletter\r\nPrecedence: bulk\r\n\r\nNews.\r\n";
    for (raw, sender) in [
        (ooo, "dan@example.net"),
        (bounce, ""),
        (own, "support@shop.test"),
        (list, "news@example.net"),
    ] {
        let envelope = lettre::address::Envelope::new(
            if sender.is_empty() {
                None
            } else {
                Some(sender.parse().unwrap())
            },
            vec!["support@shop.test".parse().unwrap()],
        )
        .unwrap();
        let answer = mailer(&app)
            .send_raw(&envelope, raw.as_bytes())
            .await
            .unwrap();
        assert_eq!(answer.code().to_string(), "250");
        assert!(
            answer.message().any(|m| m.contains("not routed")),
            "{answer:?}"
        );
    }
    // None of it was offered: the next offer is the next customer's mail.
    mailer(&app)
        .send(plain(
            "eli@example.net",
            "A real question",
            "Is it in stock?",
        ))
        .await
        .unwrap();
    let next = ann.take_offer().await;
    let (_, n) = app.get(&format!("/api/interactions/{next}")).await;
    assert_eq!(n["subject"], "A real question");
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    assert_eq!(
        event(&i, "email_auto_reply")["data"]["reason"],
        "Auto-Submitted: auto-replied"
    );
    assert!(interactions_of(&app, "news@example.net").await.is_empty());
    assert!(interactions_of(&app, "support@shop.test").await.is_empty());
    assert_eq!(interactions_of(&app, "dan@example.net").await.len(), 1);
    app.stop().await;
}

async fn a_reply_the_relay_cannot_take_is_reported_to_the_agent(backend: Backend) {
    // Nothing listens on the relay's port: every attempt fails, and is retried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (app, _dir) = app(backend, closed, |s| s.email.send_max_attempts = 2).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&app.base, &token).await;
    mailer(&app)
        .send(plain("fay@example.com", "Hello", "Hi"))
        .await
        .unwrap();
    let interaction = ann.take_offer().await;
    ann.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Hello Fay" }))
        .await;
    ann.expect("reply_queued").await;
    let failed = ann.expect("reply_failed").await;
    assert_eq!(
        (failed["retrying"].as_bool(), failed["attempts"].as_u64()),
        (Some(true), Some(1)),
        "{failed}"
    );
    let last = ann.expect("reply_failed").await;
    assert_eq!(
        (last["retrying"].as_bool(), last["attempts"].as_u64()),
        (Some(false), Some(2)),
        "{last}"
    );
    // A reply may only answer an email the agent holds.
    ann.send(json!({ "type": "reply", "interaction_id": "someone-elses", "body": "x" }))
        .await;
    assert_eq!(ann.expect("error").await["code"], "not_yours");
    ann.send(json!({ "type": "reply", "interaction_id": interaction, "body": "  " }))
        .await;
    assert_eq!(ann.expect("error").await["code"], "bad_field");
    app.stop().await;
}

/// One raw SMTP session that waits for each reply before it sends the next line (see
/// [`pipelining`] for a client that does not); answers the server's replies in order.
async fn dialogue(app: &TestApp, lines: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(app.smtp.unwrap()).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut replies = Vec::new();
    let read_reply = async |r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>| {
        let mut full = String::new();
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).await.unwrap() == 0 {
                return full;
            }
            full.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return full.trim_end().to_string();
            }
        }
    };
    replies.push(read_reply(&mut r).await);
    for line in lines {
        // A server that has closed the session (421) reads nothing more.
        if w.write_all(format!("{line}\r\n").as_bytes()).await.is_err() {
            break;
        }
        let reply = read_reply(&mut r).await;
        if reply.is_empty() {
            break;
        }
        replies.push(reply);
    }
    replies
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|r| r.get(..3).unwrap_or("")).collect()
}

async fn the_smtp_dialogue_refuses_what_it_must(backend: Backend) {
    let (app, _dir) = app(backend, 1, |s| s.email.max_message_bytes = 4096).await;

    let r = dialogue(
        &app,
        &[
            "EHLO client.test",
            "MAIL FROM:<a@example.com> SIZE=999999",
            "QUIT",
        ],
    )
    .await;
    assert!(
        r[1].contains("SIZE 4096") && r[1].contains("PIPELINING"),
        "{r:?}"
    );
    assert_eq!(codes(&r), ["220", "250", "552", "221"]);

    let big = "x".repeat(100);
    let mut lines = vec![
        "EHLO c",
        "MAIL FROM:<big@example.com>",
        "RCPT TO:<support@shop.test>",
        "DATA",
    ];
    let body: Vec<String> = std::iter::once("Subject: big".to_string())
        .chain(std::iter::once(String::new()))
        .chain((0..100).map(|_| big.clone()))
        .collect();
    let mut text = body.join("\r\n");
    text.push_str("\r\n.");
    lines.push(&text);
    lines.push("NOOP");
    let r = dialogue(&app, &lines).await;
    assert_eq!(
        codes(&r),
        ["220", "250", "250", "250", "354", "552", "250"],
        "{r:?}"
    );
    assert!(
        interactions_of(&app, "big@example.com").await.is_empty(),
        "nothing of it was kept"
    );

    let r = dialogue(
        &app,
        &[
            "MAIL FROM:<a@example.com>",
            "EHLO c",
            "RCPT TO:<a@shop.test>",
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<someone@elsewhere.test>",
            "DATA",
            "FROB",
            &"NOOP ".repeat(400),
            "RSET",
            "VRFY x",
            "QUIT",
        ],
    )
    .await;
    assert_eq!(
        codes(&r),
        ["220", "503", "250", "503", "250", "550", "503", "500", "500", "250", "252", "221"],
        "{r:?}"
    );

    // Too many errors close the session.
    let junk: Vec<&str> = std::iter::repeat_n("FROB", 12).collect();
    let r = dialogue(&app, &junk).await;
    assert!(r.iter().any(|l| l.starts_with("421")), "{r:?}");

    // A message with no sender is recorded, not routed.
    let r = dialogue(
        &app,
        &[
            "EHLO c",
            "MAIL FROM:<>",
            "RCPT TO:<support@shop.test>",
            "DATA",
            "Subject: who?\r\n\r\nno sender\r\n.",
            "QUIT",
        ],
    )
    .await;
    assert_eq!(
        codes(&r),
        ["220", "250", "250", "250", "354", "250", "221"],
        "{r:?}"
    );
    assert!(r[5].contains("not routed"), "{r:?}");

    // The server still takes good mail afterwards.
    mailer(&app)
        .send(plain("ok@example.com", "fine", "fine"))
        .await
        .unwrap();
    assert_eq!(interactions_of(&app, "ok@example.com").await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_offered_and_used_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a test certificate (.ci/run installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (app, _rules) = app(Backend::Sqlite, 1, |s| {
        s.email.tls_cert_file = cert.display().to_string();
        s.email.tls_key_file = key.display().to_string();
    })
    .await;
    let r = dialogue(&app, &["EHLO c", "STARTTLS now", "QUIT"]).await;
    assert!(r[1].contains("250-STARTTLS"), "{r:?}");
    assert_eq!(codes(&r), ["220", "250", "501", "221"]);

    // A client that insists on TLS delivers over it.
    let tls = lettre::transport::smtp::client::TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let secure = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.unwrap().port())
        .tls(lettre::transport::smtp::client::Tls::Required(tls))
        .build();
    secure
        .send(plain("tls@example.com", "Private", "Over TLS"))
        .await
        .unwrap();
    assert_eq!(interactions_of(&app, "tls@example.com").await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs swaks: bash .ci/run installs it"]
async fn swaks_delivers_a_message_with_an_attachment() {
    let (app, dir) = app(Backend::Sqlite, 1, |_| {}).await;
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "line one\nline two\n").unwrap();
    let port = app.smtp.unwrap().port().to_string();
    let out = std::process::Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--from",
            "eve@example.com",
            "--to",
            "support@shop.test",
        ])
        .args([
            "--header",
            "Subject: Sent with swaks",
            "--body",
            "Hello from swaks",
            "--attach",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript.contains("<-  250 2.0.0 accepted as"),
        "{transcript}"
    );
    let i = &interactions_of(&app, "eve@example.com").await[0];
    assert_eq!(i["subject"], "Sent with swaks");
    assert_eq!(i["attachments"][0]["name"], "notes.txt");
    app.stop().await;
}

both_backends!(
    mail_becomes_an_interaction_with_its_charsets_and_attachments,
    an_agent_answers_and_the_conversation_threads_both_ways,
    noise_is_recorded_and_never_routed,
    the_smtp_dialogue_refuses_what_it_must,
    a_reply_the_relay_cannot_take_is_reported_to_the_agent,
    a_reply_to_a_closed_conversation_can_start_a_linked_one,
);
