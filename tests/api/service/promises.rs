//! The promises made to customers outside calls: a chat while closed, mail acknowledged
//! with its answer time, complaints with one owner across channels, an absent owner's
//! substitute, and customers' scores from every channel reaching the report.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

use super::calls::{closed_until_the_day_after_tomorrow, opening};
use super::{at, Centre, PHONE_SECRET};
use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::email::{python_reads, smtp_sink, Sink};
use crate::helpers::{events, Backend, TestApp};
use crate::phone::{native_at, now};

const MIN: i64 = 60_000;

fn mailer(centre: &Centre) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(centre.smtp.port())
        .build()
}

/// Waits until the sink holds `n` messages (at most 15 s); answers them.
async fn sunk(sink: &Sink, n: usize) -> Vec<String> {
    for _ in 0..300 {
        if sink.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: Vec<String> = sink.lock().unwrap().iter().map(|m| m.2.clone()).collect();
    assert!(got.len() >= n, "expected {n} messages, got {}", got.len());
    got
}

/// The interactions of the customer with this email address, oldest first.
async fn interactions_of(app: &TestApp, email: &str) -> Vec<Value> {
    let (status, c) = app.get(&format!("/api/customers?email={email}")).await;
    if status == 404 {
        return Vec::new();
    }
    let (_, h) = app
        .get(&format!(
            "/api/customers/{}/history?limit=500",
            c["id"].as_str().unwrap()
        ))
        .await;
    let mut ids: Vec<String> = Vec::new();
    for e in h["events"].as_array().unwrap() {
        if let Some(id) = e["interaction_id"].as_str() {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for id in ids.iter().rev() {
        let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
        out.push(i);
    }
    out.sort_by_key(|i| at(&i["created_at"]));
    out
}

both_backends!(a_chat_while_closed_shows_the_hours_waits_for_the_opening_and_is_rated);

async fn a_chat_while_closed_shows_the_hours_waits_for_the_opening_and_is_rated(backend: Backend) {
    let centre = Centre::start(backend, &closed_until_the_day_after_tomorrow(""), 9).await;
    let (ann_id, token) = create_agent(&centre.app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&centre.app.base, &token).await;

    // The widget hears it is closed, with the hours and the opening.
    let mut page = Visitor::connect(&centre.app).await;
    page.send(
        json!({ "type": "start", "visitor_id": "night-visitor", "email": "nina@example.org" }),
    )
    .await;
    let started = page.expect("started").await;
    let closed = &started["closed"];
    assert_eq!(
        closed["message"],
        "We are closed now. Leave us a message and we will answer it when we open.",
        "{started}"
    );
    assert_eq!(at(&closed["opens_at"]), opening(), "{started}");
    assert!(
        closed["hours"].to_string().contains("Monday 00:00-24:00"),
        "{started}"
    );
    // The visitor leaves a message: taken, and nobody is offered it while closed.
    page.send(json!({ "type": "message", "id": "m1", "text": "Do you ship to Norway?" }))
        .await;
    assert_eq!(page.answer().await["type"], "ack");
    assert!(
        ann.next_within(Duration::from_millis(800))
            .await
            .filter(|f| f["type"] == "offer")
            .is_none(),
        "nothing is offered while closed"
    );

    // At the opening it is routed; the agent answers and completes it.
    centre.advance_to(opening() + MIN).await;
    let offer = ann.expect("offer").await;
    assert_eq!(offer["interaction"]["channel"], "chat", "{offer}");
    let id = ann.accept(&offer).await;
    let (_, i) = centre.app.get(&format!("/api/interactions/{id}")).await;
    assert!(
        i["history"].to_string().contains("Do you ship to Norway?"),
        "the message left while closed is in the thread: {i}"
    );
    assert_eq!(page.expect("agent_joined").await["name"], "Ann");
    ann.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
        .await;

    // The visitor is told the chat closed, and asked to rate it.
    let closed = page.expect("closed").await;
    assert_eq!(closed["by"], "agent", "{closed}");
    assert_eq!(
        closed["survey"]["question"],
        "How satisfied are you with the help you got?"
    );
    page.send(json!({ "type": "rating", "score": 2, "comment": "Slow to answer." }))
        .await;
    let rated = page.expect("rated").await;
    assert_eq!(rated["score"], 2, "{rated}");
    page.send(json!({ "type": "rating", "score": 5 })).await;
    let twice = page.answer().await;
    assert_eq!(twice["type"], "error", "a chat is rated once: {twice}");
    page.send(json!({ "type": "rating", "score": 9 })).await;
    assert_eq!(page.answer().await["type"], "error");

    // A low score opens a follow-up for the agent who served them.
    let follow_up = ann.expect("offer").await;
    assert!(
        follow_up["interaction"]["subject"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("follow"),
        "{follow_up}"
    );
    let (_, i) = centre.app.get(&format!("/api/interactions/{id}")).await;
    let score = events(&i, "satisfaction");
    assert_eq!(score.len(), 1, "{i}");
    assert_eq!(score[0]["data"]["score"], 2);

    let (status, r) = centre.app.get("/api/reports/satisfaction?by=agent").await;
    assert_eq!(status, 200, "{r}");
    let mine = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == ann_id.as_str())
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(
        (mine["answers"].as_i64(), mine["average"].as_f64()),
        (Some(1), Some(2.0))
    );
    let (status, r) = centre.app.get("/api/reports/satisfaction?by=mood").await;
    assert_eq!((status, r["field"].as_str()), (400, Some("by")), "{r}");
}

both_backends!(mail_while_closed_is_acknowledged_once_with_its_answer_time_and_never_to_machines);

async fn mail_while_closed_is_acknowledged_once_with_its_answer_time_and_never_to_machines(
    backend: Backend,
) {
    let (relay, sink) = smtp_sink().await;
    let service = closed_until_the_day_after_tomorrow(
        "[[policies]]\nchannel = \"email\"\nfirst_response_mins = 90\nwarn_before_mins = 10\n",
    );
    let centre = Centre::start(backend, &service, relay).await;
    let mailer = mailer(&centre);
    let mail = |from: &str, subject: &str, id: &str| {
        Message::builder()
            .from(from.parse().unwrap())
            .to("support@shop.test".parse().unwrap())
            .subject(subject)
            .message_id(Some(id.to_string()))
    };

    // A new thread while closed: acknowledged with when the answer is due (90 open
    // minutes from the opening), threaded to the customer's message, marked automatic.
    mailer
        .send(
            mail("olga@example.org", "Broken lid", "<lid-1@example.org>")
                .body("The lid of my kettle broke.".to_string())
                .unwrap(),
        )
        .await
        .unwrap();
    let raw = sunk(&sink, 1).await.remove(0);
    let read = python_reads(&raw);
    assert_eq!(read["defects"], json!([]), "{read}");
    // The subject carries the thread's tag, as every message of the thread does.
    assert!(
        read["subject"]
            .as_str()
            .unwrap()
            .starts_with("We have your message: Broken lid [#"),
        "{read}"
    );
    let text = read["plain"]["content"].as_str().unwrap();
    let due = time::OffsetDateTime::from_unix_timestamp((opening() + 90 * MIN) / 1000).unwrap();
    let due_text = format!("{:02}:{:02}", due.hour(), due.minute());
    assert!(text.contains(&due_text), "due at {due_text}: {text}");
    assert!(text.contains("Thank you for your message"), "{text}");
    assert!(raw.contains("Auto-Submitted: auto-replied"), "{raw}");
    assert!(raw.contains("In-Reply-To: <lid-1@example.org>"), "{raw}");
    {
        let kept = sink.lock().unwrap();
        assert_eq!(kept[0].1, vec!["<olga@example.org>".to_string()]);
    }

    // The customer writes again in the thread the same day: no second acknowledgement.
    mailer
        .send(
            mail("olga@example.org", "Re: Broken lid", "<lid-2@example.org>")
                .in_reply_to("<lid-1@example.org>".into())
                .body("A photo follows.".to_string())
                .unwrap(),
        )
        .await
        .unwrap();
    // An auto-reply, a mailing list and a bounce: taken, never acknowledged.
    let mut auto = mail("ooo@example.org", "Out of office", "<ooo-1@example.org>")
        .body("I am away.".to_string())
        .unwrap();
    auto.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-replied".into(),
    ));
    mailer.send(auto).await.unwrap();
    let mut list = mail("list@example.org", "Weekly news", "<news-1@example.org>")
        .body("News.".to_string())
        .unwrap();
    list.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("List-Id"),
        "<news.example.org>".into(),
    ));
    mailer.send(list).await.unwrap();
    let bounce = Message::builder()
        .from("mailer-daemon@example.org".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Undelivered Mail Returned to Sender")
        .body("The message could not be delivered.".to_string())
        .unwrap();
    let envelope =
        lettre::address::Envelope::new(None, vec!["support@shop.test".parse().unwrap()]).unwrap();
    mailer
        .send_raw(&envelope, &bounce.formatted())
        .await
        .unwrap();
    // A second customer's new thread is the barrier: its acknowledgement comes after
    // anything the messages above would have caused.
    mailer
        .send(
            mail("pia@example.org", "Invoice", "<inv-1@example.org>")
                .body("Where is my invoice?".to_string())
                .unwrap(),
        )
        .await
        .unwrap();
    let all = sunk(&sink, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all: Vec<String> = {
        let kept = sink.lock().unwrap();
        assert!(kept.len() >= all.len());
        kept.iter().map(|m| m.1.join(",")).collect()
    };
    assert_eq!(
        all,
        vec![
            "<olga@example.org>".to_string(),
            "<pia@example.org>".to_string()
        ],
        "one acknowledgement per thread, none to machines"
    );
    // The history says so.
    let olga = interactions_of(&centre.app, "olga@example.org").await;
    let acks: usize = olga
        .iter()
        .map(|i| events(i, "email_acknowledged").len())
        .sum();
    assert_eq!(acks, 1, "{olga:?}");
}

both_backends!(a_complaint_keeps_one_owner_across_channels_and_their_substitute_while_away);

async fn a_complaint_keeps_one_owner_across_channels_and_their_substitute_while_away(
    backend: Backend,
) {
    let centre = Centre::start(backend, "", 9).await;
    // Both handle complaints (the shipped rules offer them to that skill first).
    let (ann_id, ann_token) = create_agent(
        &centre.app,
        json!({ "name": "Ann", "skills": ["complaints"] }),
    )
    .await;
    let (bob_id, bob_token) = create_agent(
        &centre.app,
        json!({ "name": "Bob", "skills": ["complaints"] }),
    )
    .await;
    let mut ann = Desktop::available(&centre.app.base, &ann_token).await;

    // A complaint by the API: Ann answers it first and owns it.
    let first = centre
        .app
        .contact(json!({
            "idempotency_key": "complaint-1", "topic": "complaint",
            "customer": { "email": "quinn@example.org" }, "subject": "Damaged sofa",
        }))
        .await;
    let first_id = first["id"].as_str().unwrap().to_string();
    assert_eq!(ann.take_offer().await, first_id);
    let (_, list) = centre.app.get("/api/complaints").await;
    let complaint = list["complaints"][0].clone();
    assert_eq!(complaint["owner_agent_id"], ann_id.as_str(), "{list}");
    let complaint_id = complaint["id"].as_str().unwrap().to_string();
    let due = at(&complaint["due_at"]);
    let opened = at(&complaint["opened_at"]);
    assert!(
        (due - opened - 24 * 60 * MIN).abs() < 5_000,
        "24 hours: {complaint}"
    );
    ann.send(json!({ "type": "complete", "interaction_id": first_id, "disposition": "follow_up" }))
        .await;

    // Bob is at his desk and idle longer; the customer writes in the chat about the same
    // complaint: it goes to Ann, its owner.
    let mut bob = Desktop::available(&centre.app.base, &bob_token).await;
    let chat = centre
        .app
        .contact(json!({
            "idempotency_key": "complaint-2", "topic": "complaint",
            "customer": { "email": "quinn@example.org" }, "subject": "Still waiting",
        }))
        .await;
    let chat_id = chat["id"].as_str().unwrap().to_string();
    assert_eq!(ann.take_offer().await, chat_id, "the owner is offered it");
    let (_, i) = centre
        .app
        .get(&format!("/api/interactions/{chat_id}"))
        .await;
    assert_eq!(i["complaint_id"], complaint_id.as_str(), "{i}");
    ann.send(json!({ "type": "complete", "interaction_id": chat_id, "disposition": "follow_up" }))
        .await;

    // Ann is away for a week, Bob stands in: the next contact of the complaint is his,
    // though Ann is logged in.
    let until = store_time(centre.now().await + 7 * 24 * 60 * MIN);
    let (status, r) = centre
        .app
        .put(
            &format!("/api/agents/{ann_id}/absence"),
            &json!({ "until": until, "substitute_id": bob_id }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = centre
        .app
        .put(
            &format!("/api/agents/{ann_id}/absence"),
            &json!({ "until": until, "substitute_id": ann_id }),
        )
        .await;
    assert_eq!(
        (status, r["field"].as_str()),
        (400, Some("substitute_id")),
        "{r}"
    );
    let third = centre
        .app
        .contact(json!({
            "idempotency_key": "complaint-3", "topic": "complaint",
            "customer": { "email": "quinn@example.org" }, "subject": "Any news?",
        }))
        .await;
    let third_id = third["id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.take_offer().await,
        third_id,
        "the substitute is offered it"
    );

    // A supervisor hands the complaint to Bob; Bob resolves it, within its deadline.
    let (status, c) = centre
        .app
        .post(
            &format!("/api/complaints/{complaint_id}/owner"),
            &json!({ "agent_id": bob_id }),
        )
        .await;
    assert_eq!(
        (status, c["owner_agent_id"].as_str()),
        (200, Some(bob_id.as_str())),
        "{c}"
    );
    let (status, c) = centre
        .app
        .post(
            &format!("/api/complaints/{complaint_id}/resolve"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, c["state"].as_str()),
        (200, Some("resolved")),
        "{c}"
    );
    let (status, _) = centre
        .app
        .post(
            &format!("/api/complaints/{complaint_id}/resolve"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "resolved once");
    let (_, open) = centre.app.get("/api/complaints").await;
    assert_eq!(open["complaints"], json!([]), "{open}");
    let (_, c) = centre
        .app
        .get("/api/customers?email=quinn@example.org")
        .await;
    let (_, h) = centre
        .app
        .get(&format!(
            "/api/customers/{}/history",
            c["id"].as_str().unwrap()
        ))
        .await;
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["complaint_opened", "complaint_owner", "complaint_resolved"] {
        assert!(kinds.contains(&kind), "{kind}: {kinds:?}");
    }
    drop((ann, bob));
}

fn store_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

both_backends!(scores_come_from_the_mail_link_the_phone_survey_and_the_api);

async fn scores_come_from_the_mail_link_the_phone_survey_and_the_api(backend: Backend) {
    let (relay, sink) = smtp_sink().await;
    let centre = Centre::start_with(
        backend,
        "",
        relay,
        &[("SWITCHBOARD__SERVICE__PUBLIC_URL", "https://help.shop.test")],
    )
    .await;
    let (_, token) = create_agent(&centre.app, json!({ "name": "Ann", "extension": "201" })).await;
    let mut ann = Desktop::available(&centre.app.base, &token).await;

    // Mail: completed, the customer is sent a link to score it.
    mailer(&centre)
        .send(
            Message::builder()
                .from("rita@example.org".parse().unwrap())
                .to("support@shop.test".parse().unwrap())
                .subject("Size")
                .message_id(Some("<size-1@example.org>".into()))
                .body("Which size fits me?".to_string())
                .unwrap(),
        )
        .await
        .unwrap();
    let mail_id = ann.take_offer().await;
    ann.send(
        json!({ "type": "reply", "interaction_id": mail_id, "body": "Size M.", "reply_id": "r1" }),
    )
    .await;
    ann.expect("reply_sent").await;
    ann.send(json!({ "type": "complete", "interaction_id": mail_id, "disposition": "resolved" }))
        .await;
    let messages = sunk(&sink, 2).await;
    let survey = messages
        .iter()
        .find(|m| m.contains("How did we do?"))
        .unwrap_or_else(|| panic!("no survey mail: {messages:?}"));
    let read = python_reads(survey);
    assert_eq!(read["defects"], json!([]), "{read}");
    let text = read["plain"]["content"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("https://help.shop.test/survey/"))
        .unwrap_or_else(|| panic!("no link: {text}"));
    let path = link.trim_start_matches("https://help.shop.test");
    let page = reqwest::get(format!("{}{path}", centre.app.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("How satisfied are you"), "{html}");
    let client = reqwest::Client::new();
    let post = |p: String, score: &str| {
        client
            .post(format!("{}{p}", centre.app.base))
            .form(&[("score", score), ("comment", "Helpful")])
            .send()
    };
    let forged = format!("{}0", path);
    assert_eq!(post(forged, "5").await.unwrap().status(), 400, "forged");
    assert_eq!(
        post(path.to_string(), "9").await.unwrap().status(),
        400,
        "out of range"
    );
    assert_eq!(post(path.to_string(), "5").await.unwrap().status(), 200);
    assert_eq!(
        post(path.to_string(), "4").await.unwrap().status(),
        409,
        "twice"
    );

    // Phone: the caller scores the call in the phone system's survey after it ends.
    let ringing = json!({ "event": "ringing", "call_id": "csat-1", "from": "+49 30 9998887" });
    let call = native_at(&centre.app, &ringing, PHONE_SECRET, now());
    let (call, offer) = tokio::join!(call, ann.expect("offer"));
    assert_eq!(call.0, 200, "{call:?}");
    let call_id = ann.accept(&offer).await;
    ann.send(json!({ "type": "complete", "interaction_id": call_id, "disposition": "resolved" }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, r) = native_at(
        &centre.app,
        &json!({ "event": "satisfaction", "call_id": "csat-1", "score": 4 }),
        PHONE_SECRET,
        now(),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = native_at(
        &centre.app,
        &json!({ "event": "satisfaction", "call_id": "csat-1", "score": 0 }),
        PHONE_SECRET,
        now(),
    )
    .await;
    assert_eq!((status, r["field"].as_str()), (400, Some("score")), "{r}");

    // The API: a CRM's survey of a contact completed here.
    let api = centre
        .app
        .contact(
            json!({ "idempotency_key": "csat-api", "customer": { "email": "sam@example.org" } }),
        )
        .await;
    let api_id = api["id"].as_str().unwrap().to_string();
    let (status, _) = centre
        .app
        .post(
            &format!("/api/interactions/{api_id}/satisfaction"),
            &json!({ "score": 3 }),
        )
        .await;
    assert_eq!(status, 404, "not completed yet");
    assert_eq!(ann.take_offer().await, api_id);
    ann.send(json!({ "type": "complete", "interaction_id": api_id, "disposition": "resolved" }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, r) = centre
        .app
        .post(
            &format!("/api/interactions/{api_id}/satisfaction"),
            &json!({ "score": 3 }),
        )
        .await;
    assert_eq!(status, 200, "{r}");

    let (_, r) = centre.app.get("/api/reports/satisfaction?by=channel").await;
    let mut got: Vec<(String, i64, f64)> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["answers"].as_i64().unwrap(),
                g["average"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("api".into(), 1, 3.0),
            ("email".into(), 1, 5.0),
            ("phone".into(), 1, 4.0)
        ],
        "{r}"
    );

    // A link past its days: gone.
    centre.advance(15 * 86_400).await;
    let page = reqwest::get(format!("{}{path}", centre.app.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
}

both_backends!(calendars_hours_and_policies_are_edited_over_the_api_and_refused_with_every_fault);

async fn calendars_hours_and_policies_are_edited_over_the_api_and_refused_with_every_fault(
    backend: Backend,
) {
    let centre = Centre::start(backend, "", 9).await;
    let app = &centre.app;
    // A calendar with every kind of fault: refused whole, each fault named.
    let (status, r) = app
        .put(
            "/api/service/calendars/office",
            &json!({ "calendar": {
                "time_zone": "Mars/Olympus",
                "monday": ["09:00-12:00", "11:00-13:00"],
                "tuesday": ["18:00-09:00"],
                "holidays": ["2026-02-30"],
            } }),
        )
        .await;
    assert_eq!(
        (status, r["error"].as_str()),
        (422, Some("invalid_rules")),
        "{r}"
    );
    let errors = r["errors"].to_string();
    for fault in [
        "calendars.office.time_zone",
        "calendars.office.monday",
        "calendars.office.tuesday[0]",
        "calendars.office.holidays[0]",
    ] {
        assert!(errors.contains(fault), "{fault}: {errors}");
    }
    // A good one, then the hours that use it: a new version of the rules, audited.
    let (status, r) = app
        .put(
            "/api/service/calendars/office",
            &json!({ "calendar": {
                "time_zone": "Asia/Shanghai",
                "monday": ["09:00-12:00", "13:00-18:00"],
                "holidays": ["10-01"],
            }, "comment": "Shanghai office" }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = app
        .put(
            "/api/service/calendars/always",
            &json!({ "calendar": { "time_zone": "UTC", "always_open": true } }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = app
        .put(
            "/api/service/hours",
            &json!({ "hours": [
                { "tier": "high", "calendar": "always" },
                { "calendar": "office" },
                { "channel": "email", "calendar": "office" },
            ] }),
        )
        .await;
    assert_eq!(status, 422, "a rule that matches nothing: {r}");
    assert!(r["errors"].to_string().contains("hours[2]"), "{r}");
    let (status, r) = app
        .put(
            "/api/service/hours",
            &json!({ "hours": [{ "calendar": "nowhere" }] }),
        )
        .await;
    assert!(
        status == 422 && r["errors"].to_string().contains("hours[0].calendar"),
        "{r}"
    );
    let (status, r) = app
        .put(
            "/api/service/hours",
            &json!({ "hours": [{ "tier": "high", "calendar": "always" }, { "calendar": "office" }] }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, s) = app.get("/api/service").await;
    assert_eq!(s["hours"][1]["calendar"], "office", "{s}");
    assert_eq!(
        s["calendars"]["office"]["time_zone"], "Asia/Shanghai",
        "{s}"
    );
    // A calendar in use cannot go.
    let (status, r) = send_delete(app, "/api/service/calendars/office").await;
    assert!(
        status == 422 && r["errors"].to_string().contains("hours[1].calendar"),
        "{r}"
    );

    // Policies: zero targets, a tier that does not exist, one matching nothing.
    let (status, r) = app
        .put(
            "/api/service/policies",
            &json!({ "policies": [
                { "channel": "email", "first_response_mins": 0 },
                { "tier": "platinum", "first_response_mins": 10 },
                { "first_response_mins": 30 },
                { "channel": "chat", "first_response_mins": 5 },
            ] }),
        )
        .await;
    assert_eq!(status, 422, "{r}");
    let errors = r["errors"].to_string();
    for fault in [
        "policies[0].first_response_mins",
        "policies[1].tier",
        "policies[3]",
    ] {
        assert!(errors.contains(fault), "{fault}: {errors}");
    }
    let (status, r) = app
        .put(
            "/api/service/policies",
            &json!({ "policies": [{ "channel": "chat", "first_response_mins": 3, "warn_before_mins": 1 }] }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, s) = app.get("/api/service").await;
    assert_eq!(
        s["policies"],
        json!([{ "tier": "*", "topic": "*", "channel": "chat", "first_response_mins": 3, "warn_before_mins": 1 }])
    );
    // Every change is in the audit log, by whom.
    let (_, audit) = app.get("/api/audit?limit=50").await;
    let text = audit.to_string();
    assert!(text.contains("Shanghai office"), "{text}");
    // Agents cannot edit them.
    let (_, token) = create_agent(app, json!({ "name": "Ann" })).await;
    let resp = reqwest::Client::new()
        .put(format!("{}/api/service/policies", app.base))
        .bearer_auth(token)
        .json(&json!({ "policies": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

async fn send_delete(app: &TestApp, path: &str) -> (u16, Value) {
    crate::helpers::send(app.admin(reqwest::Method::DELETE, path)).await
}
