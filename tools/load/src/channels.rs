//! The channels' drivers, each playing what sends contacts on that channel: a phone
//! system posting a signed `ringing` event, a mail server delivering one message over a
//! whole SMTP session, a chat visitor starting a chat and writing. Each counts its
//! contact as sent, then as accepted (with the channel's acknowledgement: the webhook's
//! 2xx, the `250` after DATA, the chat's `started`) or as failed. On several nodes the
//! contacts are dealt to the nodes in turn.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::tally::{Accepted, Shared};

/// How long a contact may take to be acknowledged before it counts as failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn accepted(tally: &Shared, channel: &'static str, key: String, customer: String, sent: Instant) {
    tally.lock().unwrap().accepted(Accepted {
        channel,
        key,
        customer,
        sent_at: sent,
        ack: sent.elapsed(),
    });
}

/// Counts a failure, and tells the first few of the run why, so a failed run says what
/// went wrong.
fn failed(tally: &Shared, channel: &'static str, why: impl std::fmt::Display) {
    static TOLD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if TOLD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
        eprintln!("a {channel} contact failed: {why}");
    }
    tally.lock().unwrap().failed(channel);
}

fn refused(tally: &Shared, channel: &'static str, high: bool) {
    let mut t = tally.lock().unwrap();
    t.refused(channel);
    if high {
        t.high.2 += 1;
    }
}

/// The number of the `i`th known high-tier customer.
pub fn high_number(i: u64) -> String {
    format!("+4940{:07}", i)
}

/// A phone system announces call `n` ringing, signed as the native webhook requires;
/// `high`: from one of the `highs` known high-tier customers.
pub async fn phone_call(
    server: &Server,
    client: &reqwest::Client,
    tally: &Shared,
    n: u64,
    high: Option<u64>,
) {
    let call = format!("load-{n}");
    let number = match high {
        Some(highs) => high_number(n % highs.max(1)),
        None => format!("+4930{:07}", n % 100_000),
    };
    let high = high.is_some();
    if high {
        tally.lock().unwrap().high.0 += 1;
    }
    let body = json!({ "event": "ringing", "call_id": call, "from": number, "to": "+4930999000" })
        .to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature =
        switchboard_phone::signature::native_sign(&server.phone_secret, ts, body.as_bytes());
    tally.lock().unwrap().sending("phone");
    let began = Instant::now();
    let sent = client
        .post(format!("{}/channels/phone/events", server.node(n).base))
        .header("x-switchboard-timestamp", ts.to_string())
        .header("x-switchboard-signature", signature)
        .body(body)
        .timeout(ANSWER_WITHIN)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            let answer: Value = r.json().await.unwrap_or_default();
            if answer["action"] == "busy" {
                return refused(tally, "phone", high);
            }
            if high {
                tally.lock().unwrap().high.1 += 1;
            }
            accepted(
                tally,
                "phone",
                format!("native:{call}"),
                format!("phone={}", number.replace('+', "%2B")),
                began,
            )
        }
        Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
            refused(tally, "phone", high)
        }
        Ok(r) => failed(tally, "phone", format!("answered {}", r.status())),
        Err(e) if e.is_timeout() => failed(
            tally,
            "phone",
            format!("no answer within {} s", ANSWER_WITHIN.as_secs()),
        ),
        Err(e) => failed(tally, "phone", e),
    }
}

/// One SMTP reply, with its continuation lines.
async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut full = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
            return full;
        }
        full.push_str(&l);
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return full;
        }
    }
}

/// A mail server delivers message `n` over a session of its own.
pub async fn email(server: &Server, tally: &Shared, n: u64) {
    let id = format!("load-{n}@load.example");
    let sender = format!("c{}@load.example", n % 100_000);
    tally.lock().unwrap().sending("email");
    let began = Instant::now();
    let session = async {
        let stream = tokio::net::TcpStream::connect(&server.node(n).smtp)
            .await
            .ok()?;
        stream.set_nodelay(true).ok()?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        reply(&mut r).await;
        let commands = [
            "EHLO load.example\r\n".to_string(),
            format!("MAIL FROM:<{sender}>\r\n"),
            "RCPT TO:<support@example.com>\r\n".into(),
            "DATA\r\n".into(),
        ];
        for cmd in commands {
            w.write_all(cmd.as_bytes()).await.ok()?;
            let a = reply(&mut r).await;
            // Refused before the message is sent (past capacity, at MAIL): as a mail
            // server would, it keeps the message and retries.
            if a.starts_with('4') {
                // Nothing was taken: a lost QUIT changes nothing.
                let _ = w.write_all(b"QUIT\r\n").await;
                return Some(false);
            }
            if !(a.starts_with('2') || a.starts_with('3')) {
                return None;
            }
        }
        let msg = format!(
            "From: Customer <{sender}>\r\nTo: support@example.com\r\nSubject: Order {n}\r\nMessage-ID: <{id}>\r\n\r\nWhere is my order {n}?\r\n.\r\n"
        );
        w.write_all(msg.as_bytes()).await.ok()?;
        let a = reply(&mut r).await;
        // The message is taken (or not) by now: a lost QUIT changes nothing.
        let _ = w.write_all(b"QUIT\r\n").await;
        if a.starts_with("451") {
            return Some(false);
        }
        a.starts_with("250").then_some(true)
    };
    match tokio::time::timeout(ANSWER_WITHIN, session).await {
        Ok(Some(false)) => refused(tally, "email", false),
        Ok(Some(true)) => accepted(
            tally,
            "email",
            format!("email:{id}"),
            format!("email={sender}"),
            began,
        ),
        Ok(None) => failed(
            tally,
            "email",
            "the session broke or was answered with an error",
        ),
        Err(_) => failed(
            tally,
            "email",
            format!("no answer within {} s", ANSWER_WITHIN.as_secs()),
        ),
    }
}

/// A visitor starts chat `n`, writes once, and stays until the chat is closed or the
/// run stops.
pub async fn chat(server: &Server, tally: &Shared, n: u64, mut stop: watch::Receiver<bool>) {
    let url = format!(
        "{}/channels/chat/ws",
        server.node(n).base.replacen("http", "ws", 1)
    );
    tally.lock().unwrap().sending("chat");
    let began = Instant::now();
    let start = json!({ "type": "start", "visitor_id": format!("load-{n}") }).to_string();
    let started = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        ws.send(Message::Text(start.into())).await.ok()?;
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                match v["type"].as_str() {
                    Some("started") => return Some(Some((ws, v["chat_id"].as_str()?.to_string()))),
                    // Told to start later (the server past its capacity): refused for now.
                    Some("busy") => return Some(None),
                    Some("error") => return None,
                    _ => {}
                }
            }
        }
        None
    };
    let (mut ws, chat_id) = match tokio::time::timeout(ANSWER_WITHIN, started).await {
        Ok(Some(Some(opened))) => opened,
        Ok(Some(None)) => return refused(tally, "chat", false),
        Ok(None) => {
            return failed(
                tally,
                "chat",
                "the start broke or was answered with an error",
            )
        }
        Err(_) => {
            return failed(
                tally,
                "chat",
                format!("not started within {} s", ANSWER_WITHIN.as_secs()),
            )
        }
    };
    // A chat is a contact once its visitor has written: it is accepted when the first
    // message is acknowledged (stored; the chat then waits in line for an agent). A
    // connection that breaks before is a failure, as an unanswered request is.
    let hello = json!({ "type": "message", "id": "m1", "text": "Hello, I need help." });
    let written = async {
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .ok()?;
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "ack" && v["id"] == "m1" {
                    return Some(());
                }
            }
        }
        None
    };
    match tokio::time::timeout(ANSWER_WITHIN, written).await {
        Ok(Some(())) => accepted(
            tally,
            "chat",
            chat_id,
            format!("visitor_id=load-{n}"),
            began,
        ),
        Ok(None) => return failed(tally, "chat", "the first message broke the chat"),
        Err(_) => {
            return failed(
                tally,
                "chat",
                format!(
                    "the first message not acknowledged within {} s",
                    ANSWER_WITHIN.as_secs()
                ),
            )
        }
    }
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) if t.contains("\"closed\"") => return,
                None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}
