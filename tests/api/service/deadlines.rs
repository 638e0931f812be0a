//! Deadlines counted in a calendar's open time: an email thread's next response due
//! across a holiday, its warning and its breach, escalated to the agent who holds it, to
//! the supervisors watching and to the signed webhook.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::{at, Centre, WEBHOOK_SECRET};
use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{events, Backend, TOKEN};

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

/// `date` (days since the epoch) as `YYYY-MM-DD`.
fn date(days: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(days * 86_400).unwrap();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

/// The service sections: email served by a calendar open around the clock but closed on
/// `holiday`; everything else around the clock.
fn service(holiday: &str) -> String {
    format!(
        r#"
[calendars.desk]
time_zone = "UTC"
monday = ["00:00-24:00"]
tuesday = ["00:00-24:00"]
wednesday = ["00:00-24:00"]
thursday = ["00:00-24:00"]
friday = ["00:00-24:00"]
saturday = ["00:00-24:00"]
sunday = ["00:00-24:00"]
holidays = ["{holiday}"]

[calendars.always]
time_zone = "UTC"
always_open = true

[[hours]]
channel = "email"
calendar = "desk"

[[hours]]
calendar = "always"

[[policies]]
channel = "email"
first_response_mins = 30
next_response_mins = 60
resolution_mins = 100000
warn_before_mins = 10

[[policies]]
channel = "api"
first_response_mins = 60
warn_before_mins = 5
"#
    )
}

/// A relay that takes every message (the agent's replies).
async fn relay() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 relay\r\n").await.unwrap();
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            w.write_all(b"250 kept\r\n").await.unwrap();
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let answer: &[u8] = if upper.starts_with("EHLO") {
                        b"250 relay\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(answer).await.unwrap();
                }
            });
        }
    });
    port
}

/// The supervisors' live view, logged in; answers its next notice.
struct Watching(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Watching {
    async fn open(base: &str) -> Watching {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!(
            "{}/supervisor/ws",
            base.replacen("http", "ws", 1)
        ))
        .await
        .unwrap();
        ws.send(Frame::Text(
            json!({ "type": "login", "token": TOKEN })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        Watching(ws)
    }

    async fn notice(&mut self, kind: &str) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), self.0.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} notice within 15 s"))
                .expect("the live view stays open")
                .unwrap();
            if let Frame::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "notice" && v["notice"] == kind {
                    return v;
                }
            }
        }
    }
}

/// Waits until `check` holds of the interaction (read again every 50 ms, at most 15 s).
async fn until(centre: &Centre, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, i) = centre.app.get(&format!("/api/interactions/{id}")).await;
        if check(&i) {
            return i;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn target<'a>(i: &'a Value, name: &str) -> &'a Value {
    i["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == name)
        .unwrap_or_else(|| panic!("no {name} target: {i}"))
}

both_backends!(an_email_threads_next_response_waits_out_a_holiday_then_breaches_and_escalates);

async fn an_email_threads_next_response_waits_out_a_holiday_then_breaches_and_escalates(
    backend: Backend,
) {
    // The day whose 23:30 the customer writes again at: today, unless that has passed.
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut day = now / DAY;
    if now - day * DAY > 23 * 60 * MIN {
        day += 1;
    }
    let holiday = date(day + 1);
    let relay = relay().await;
    let centre = Centre::start(backend, &service(&holiday), relay).await;
    let (ann_id, token) = create_agent(&centre.app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&centre.app.base, &token).await;
    let mut watching = Watching::open(&centre.app.base).await;
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(centre.smtp.port())
        .build();

    // The first mail, answered within its first response target.
    let first = Message::builder()
        .from("carla@example.org".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Parcel 12")
        .message_id(Some("<parcel-12@example.org>".into()))
        .body("Where is parcel 12?".to_string())
        .unwrap();
    mailer.send(first).await.unwrap();
    let id = ann.take_offer().await;
    ann.send(
        json!({ "type": "reply", "interaction_id": id, "body": "On its way.", "reply_id": "r1" }),
    )
    .await;
    let reply_id = ann.expect("reply_sent").await["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let i = until(&centre, &id, "the first response met", |i| {
        target(i, "first_response")["state"] == "met"
    })
    .await;
    assert_eq!(
        target(&i, "resolution")["state"],
        "paused",
        "waiting on the customer: {i}"
    );

    // At 23:30 the customer writes again: 30 open minutes are left that day, the next
    // is a holiday, so the next response is due at 00:30 the day after.
    let evening = day * DAY + 23 * 60 * MIN + 30 * MIN;
    centre.advance_to(evening).await;
    let again = Message::builder()
        .from("carla@example.org".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Re: Parcel 12")
        .in_reply_to(format!("<{reply_id}>"))
        .body("It is not here yet.".to_string())
        .unwrap();
    mailer.send(again).await.unwrap();
    ann.expect("message").await;
    let i = until(&centre, &id, "the next response worked out", |i| {
        !target(i, "next_response")["due_at"].is_null()
    })
    .await;
    let due = (day + 2) * DAY + 30 * MIN;
    let next = target(&i, "next_response");
    // The clock moved by whole seconds: the customer wrote within a few of 23:30.
    assert!((at(&next["due_at"]) - due).abs() < 10_000, "{next}");
    assert_eq!(next["calendar"], "desk");
    assert_eq!(
        target(&i, "resolution")["state"],
        "pending",
        "running again: {i}"
    );

    // A contact served around the clock, due an hour from 23:30: its breach in the
    // middle of the holiday is the watch's pass that would have breached the thread too.
    let (_, other) = centre
        .app
        .post(
            "/api/interactions",
            &json!({ "idempotency_key": "barrier", "customer": { "email": "dan@example.org" }, "subject": "Call me" }),
        )
        .await;
    let other_id = other["id"].as_str().unwrap().to_string();
    centre.advance_to((day + 1) * DAY + 12 * 60 * MIN).await;
    watching.notice("sla_breached").await;
    until(&centre, &other_id, "the API contact breached", |i| {
        target(i, "first_response")["state"] == "breached"
    })
    .await;
    let (_, i) = centre.app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(
        target(&i, "next_response")["state"],
        "pending",
        "12.5 hours later, but within 30 open minutes: {i}"
    );
    assert!(events(&i, "sla_breached").is_empty(), "{i}");

    // Ten open minutes before: the warning, to the agent holding the thread.
    centre.advance_to(due - 9 * MIN).await;
    let warned = ann.expect("sla_warning").await;
    assert_eq!(warned["interaction_id"], id.as_str());
    assert_eq!(warned["target"], "next_response");

    // Past it: breached, and escalated to the agent, the supervisors and the webhook.
    centre.advance_to(due + MIN).await;
    let breach = ann.expect("sla_breached").await;
    assert_eq!(breach["interaction_id"], id.as_str());
    assert_eq!(breach["target"], "next_response");
    assert_eq!(breach["owner_agent_id"], ann_id.as_str());
    let notice = loop {
        let n = watching.notice("sla_breached").await;
        if n["interaction_id"] == id.as_str() {
            break n;
        }
    };
    assert_eq!(notice["target"], "next_response");
    let i = until(&centre, &id, "the breach recorded", |i| {
        target(i, "next_response")["state"] == "breached"
    })
    .await;
    let recorded = events(&i, "sla_breached");
    assert_eq!(recorded.len(), 1, "{i}");
    assert_eq!(recorded[0]["data"]["target"], "next_response");
    assert_eq!(recorded[0]["data"]["owner_agent_id"], ann_id.as_str());

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (headers, body) = loop {
        let found = centre.posts.lock().unwrap().iter().find_map(|(h, b)| {
            let v: Value = serde_json::from_str(b).ok()?;
            (v["interaction_id"] == id.as_str()).then(|| (h.clone(), b.clone()))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no webhook for the breach"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["event"], "sla_breached");
    assert_eq!(v["target"], "next_response");
    assert_eq!(v["owner_agent_id"], ann_id.as_str());
    assert!(
        !body.contains("carla"),
        "no personal data in the webhook: {body}"
    );
    // Signed as the phone channel's commands are: HMAC-SHA256 of "timestamp.body".
    let ts = headers["x-switchboard-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        headers["x-switchboard-signature"].to_str().unwrap(),
        format!("v1={expected}")
    );
    // The breach is listed for supervisors, and counted.
    let (_, b) = centre
        .app
        .get("/api/service/breaches?since=1970-01-01T00:00:00Z")
        .await;
    assert!(
        b["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["interaction_id"] == id.as_str() && t["state"] == "breached"),
        "{b}"
    );
    let metrics = reqwest::get(format!("{}/metrics", centre.app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchboard_sla_total")
                && l.contains("target=\"next_response\"")
                && l.contains("outcome=\"breached\"")),
        "{metrics}"
    );
}
