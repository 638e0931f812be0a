//! Past capacity: the real server is driven harder than it can keep up with, on every
//! channel at once, with admission control's target lag at its least (10 ms), and must
//! refuse part of the new contacts in each channel's own way while keeping every promise:
//! nothing acknowledged is lost, nothing refused was stored, known high-tier callers are
//! taken ahead of the others, and the refusals are counted and shown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::helpers::{metric, spawn_app_with, Backend};
use crate::phone;

const RETRY_AFTER: u32 = 7;
const HIGH_CALLERS: u64 = 40;

fn high_number(i: u64) -> String {
    format!("+4940{:07}", 1_000 + i)
}

#[derive(Default)]
struct Seen {
    /// API contacts acknowledged: (key, interaction id).
    api_taken: Vec<(String, String)>,
    /// API contacts refused as overloaded: their keys.
    api_refused: Vec<String>,
    /// Anything else an API contact got (a fault).
    api_other: Vec<String>,
    /// SMTP replies at the end of DATA: 250 and 451 counted; anything else kept.
    mail_taken: u64,
    mail_refused: u64,
    /// Of the refused, those refused at MAIL, before the message was sent.
    mail_refused_unsent: u64,
    mail_other: Vec<String>,
    /// Calls: (high tier, action, seconds to the answer).
    calls: Vec<(bool, String, f64)>,
}

impl Seen {
    fn enough(&self) -> bool {
        let busy_others = self
            .calls
            .iter()
            .filter(|(high, a, _)| !high && a == "busy")
            .count();
        self.api_refused.len() >= 20
            && self.mail_refused >= 3
            && self.mail_refused_unsent >= 1
            && busy_others >= 3
    }
}

async fn smtp_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&l);
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

/// One message over a whole SMTP session: the reply to its DATA, or the refusal (4xx)
/// of a command before it, with the command refused (`MAIL`) or `DATA`.
async fn mail(smtp: std::net::SocketAddr, n: u64) -> (&'static str, String) {
    let stream = TcpStream::connect(smtp).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    smtp_reply(&mut r).await;
    for (verb, cmd) in [
        ("EHLO", "EHLO client.test\r\n".to_string()),
        ("MAIL", format!("MAIL FROM:<burst{n}@customer.test>\r\n")),
        ("RCPT", "RCPT TO:<help@shop.test>\r\n".into()),
        ("DATA", "DATA\r\n".into()),
    ] {
        w.write_all(cmd.as_bytes()).await.unwrap();
        let a = smtp_reply(&mut r).await;
        if a.starts_with('4') {
            // Refused before the message was sent: a mail server keeps it and retries.
            let _ = w.write_all(b"QUIT\r\n").await;
            return (verb, a);
        }
        assert!(
            a.starts_with('2') || a.starts_with('3'),
            "{cmd:?} answered {a:?}"
        );
    }
    let msg = format!(
        "From: <burst{n}@customer.test>\r\nTo: <help@shop.test>\r\nSubject: Burst {n}\r\nMessage-ID: <burst-{n}@customer.test>\r\n\r\nWhere is order {n}?\r\n.\r\n"
    );
    w.write_all(msg.as_bytes()).await.unwrap();
    let a = smtp_reply(&mut r).await;
    // The message is taken or refused by now.
    let _ = w.write_all(b"QUIT\r\n").await;
    ("DATA", a)
}

/// The refusal metric is the test process's own (one recorder for every server in it):
/// the two backends' runs take turns so each counts only its own refusals.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn past_capacity(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(backend, |s| {
        s.admission.enabled = true;
        phone::configure(s, "http://127.0.0.1:1", 0);
        s.email.domains = vec!["shop.test".into()];
        s.intake.max_pending = 100_000;
        s.admission.target_lag_ms = 10;
        s.admission.retry_after_secs = RETRY_AFTER;
    })
    .await;
    let app = Arc::new(app);
    let api_refused = "channel=\"api\",tier=\"low\"";
    let email_refused = "channel=\"email\",tier=\"low\"";
    // Refused at MAIL, before its sender (and so its tier) is read.
    let email_refused_unread = "channel=\"email\",tier=\"any\"";
    let api_before = metric(&app, "switchboard_admission_refused_total", api_refused).await;
    let email_before = metric(&app, "switchboard_admission_refused_total", email_refused).await
        + metric(
            &app,
            "switchboard_admission_refused_total",
            email_refused_unread,
        )
        .await;
    for i in 0..HIGH_CALLERS {
        let (status, body) = app
            .post(
                "/api/customers",
                &json!({ "name": format!("Valued {i}"), "tier": "high",
                         "identities": [{ "kind": "phone", "value": high_number(i) }] }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // Every channel at once, as fast as answered, until each has been refused a few times
    // (or a minute has passed: then the test fails below, never past capacity).
    let seen = Arc::new(Mutex::new(Seen::default()));
    let started = Instant::now();
    let until = started + Duration::from_secs(60);
    let going = move |seen: &Arc<Mutex<Seen>>| {
        Instant::now() < until
            && !(started.elapsed() > Duration::from_secs(3) && seen.lock().unwrap().enough())
    };
    let mut workers = Vec::new();
    for w in 0..48u64 {
        let (app, seen) = (app.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while going(&seen) {
                n += 1;
                let key = format!("burst-{w}-{n}");
                let r = app
                    .admin(reqwest::Method::POST, "/api/interactions")
                    .json(&json!({ "idempotency_key": key, "customer": { "email": format!("{key}@customer.test") }, "subject": "Burst" }))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: Value = r.json().await.unwrap_or_default();
                let mut s = seen.lock().unwrap();
                match status {
                    201 => s
                        .api_taken
                        .push((key, body["id"].as_str().unwrap().to_string())),
                    503 if body["error"] == "overloaded"
                        && retry.as_deref() == Some(&RETRY_AFTER.to_string()) =>
                    {
                        s.api_refused.push(key)
                    }
                    _ => s.api_other.push(format!("{status} {retry:?} {body}")),
                }
            }
        }));
    }
    for w in 0..6u64 {
        let (app, seen) = (app.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let smtp = app.smtp.unwrap();
            let mut n = 0;
            while going(&seen) {
                n += 1;
                let (at, a) = mail(smtp, w * 1_000_000 + n).await;
                let mut s = seen.lock().unwrap();
                if at == "DATA" && a.starts_with("250") {
                    s.mail_taken += 1;
                } else if at == "DATA" && a.starts_with("451") {
                    s.mail_refused += 1;
                } else if at == "MAIL" && a.starts_with("451 4.3.2") {
                    // Past the point where every mail is refused whatever its sender,
                    // it is refused before it is sent.
                    s.mail_refused += 1;
                    s.mail_refused_unsent += 1;
                } else {
                    s.mail_other.push(format!("{at}: {a}"));
                }
            }
        }));
    }
    for w in 0..12u64 {
        let (app, seen) = (app.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while going(&seen) {
                n += 1;
                // Every other call from a known high-tier customer.
                let high = n % 2 == 0;
                let from = if high {
                    high_number((w * 7 + n) % HIGH_CALLERS)
                } else {
                    format!("+4930{:07}", w * 100_000 + n)
                };
                let sent = Instant::now();
                let (status, answer) = phone::native(
                    &app,
                    json!({ "event": "ringing", "call_id": format!("burst-{w}-{n}"), "from": from, "to": "+4930999000" }),
                )
                .await;
                let took = sent.elapsed().as_secs_f64();
                let action = if status == 200 {
                    answer["action"].as_str().unwrap_or("?").to_string()
                } else {
                    format!("HTTP {status} {answer}")
                };
                seen.lock().unwrap().calls.push((high, action, took));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());

    // Past capacity it was, and each channel refused in its own way.
    assert!(
        seen.enough(),
        "the burst never took the server past capacity: {} API refused, {} mails refused ({} at MAIL), calls {:?}",
        seen.api_refused.len(),
        seen.mail_refused,
        seen.mail_refused_unsent,
        seen.calls.iter().filter(|(_, a, _)| a == "busy").count()
    );
    assert!(
        seen.api_other.is_empty(),
        "API answers other than 201 or 503 overloaded: {:?}",
        &seen.api_other[..seen.api_other.len().min(5)]
    );
    assert!(
        seen.mail_other.is_empty(),
        "SMTP answers other than 250 or 451: {:?}",
        &seen.mail_other[..seen.mail_other.len().min(5)]
    );
    let odd: Vec<_> = seen
        .calls
        .iter()
        .filter(|(_, a, _)| a != "queue" && a != "busy")
        .collect();
    assert!(
        odd.is_empty(),
        "calls answered other than queue or busy: {:?}",
        &odd[..odd.len().min(5)]
    );
    // A ringing call is answered at once (queue or busy), never held until the phone
    // system gives up on the webhook (Twilio waits 15 s).
    let slowest = seen.calls.iter().map(|(_, _, t)| *t).fold(0.0, f64::max);
    assert!(
        slowest < 10.0,
        "a call waited {slowest:.1} s for its answer"
    );

    // Known high-tier callers are taken ahead of the others.
    let share = |high: bool| {
        let mine: Vec<_> = seen.calls.iter().filter(|(h, _, _)| *h == high).collect();
        let taken = mine.iter().filter(|(_, a, _)| a == "queue").count();
        (taken as f64 / mine.len().max(1) as f64, mine.len())
    };
    let ((high, highs), (others, lows)) = (share(true), share(false));
    assert!(
        high > others,
        "high-tier calls taken {:.0}% of {highs}, the others {:.0}% of {lows}",
        high * 100.0,
        others * 100.0
    );

    // Every acknowledged contact is stored.
    for (key, id) in &seen.api_taken {
        let (status, body) = app.get(&format!("/api/interactions/{id}")).await;
        assert_eq!(
            status, 200,
            "acknowledged contact {key} is not stored: {body}"
        );
    }

    // The refusals are counted per channel and tier, and shown in the live view.
    let counted =
        metric(&app, "switchboard_admission_refused_total", api_refused).await - api_before;
    assert_eq!(
        counted as usize,
        seen.api_refused.len(),
        "API refusals counted"
    );
    let counted = metric(&app, "switchboard_admission_refused_total", email_refused).await
        + metric(
            &app,
            "switchboard_admission_refused_total",
            email_refused_unread,
        )
        .await
        - email_before;
    assert!(
        counted >= seen.mail_refused as f64,
        "{counted} mail refusals counted, {} seen",
        seen.mail_refused
    );
    let (_, live) = app.get("/api/queue").await;
    assert!(
        live["admission"]["refused_last_minute"].as_u64().unwrap() >= seen.api_refused.len() as u64,
        "{}",
        live["admission"]
    );

    // Once the burst is over the pressure falls back to nothing, and a refused contact sent
    // again is taken as new: nothing of it was stored when it was refused.
    let calm = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, live) = app.get("/api/queue").await;
        if live["admission"]["pressure"].as_f64() == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < calm,
            "the pressure never fell: {}",
            live["admission"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for key in seen.api_refused.iter().take(20) {
        let (status, body) = app
            .post(
                "/api/interactions",
                &json!({ "idempotency_key": key, "customer": { "email": format!("{key}@customer.test") }, "subject": "Burst" }),
            )
            .await;
        assert_eq!(status, 201, "a refused contact sent again: {body}");
    }
    Arc::try_unwrap(app)
        .ok()
        .expect("every worker is done")
        .stop()
        .await;
}

both_backends!(alone: past_capacity);
