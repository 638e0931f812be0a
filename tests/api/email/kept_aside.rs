//! Mail that is not simply a new conversation or a reply, over the real SMTP listener: a
//! Message-ID reused for other content, mail kept aside (listed for supervisors, made a
//! contact once, counted by why), and a NUL byte in a customer's mail.

use std::collections::HashMap;

use lettre::AsyncTransport;
use serde_json::{json, Value};

use super::{app, interactions_of, kinds, mailer};
use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{event, send, Backend, TestApp};

/// Sends `raw` over SMTP (an empty `from` is the null sender of a bounce); answers the
/// server's whole reply.
async fn deliver(app: &TestApp, from: &str, raw: &str) -> (String, String) {
    let envelope = lettre::address::Envelope::new(
        (!from.is_empty()).then(|| from.parse().unwrap()),
        vec!["support@shop.test".parse().unwrap()],
    )
    .unwrap();
    let answer = mailer(app)
        .send_raw(&envelope, raw.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}: {raw}"));
    (
        answer.code().to_string(),
        answer.message().collect::<Vec<_>>().join(" "),
    )
}

fn mail(from: &str, id: &str, subject: &str, body: &str) -> String {
    format!("From: {from}\r\nTo: support@shop.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\r\n{body}\r\n")
}

async fn a_reused_message_id_with_other_content_is_a_new_message_and_says_so(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let first = mail(
        "Rui <rui@example.pt>",
        "same@mailer.example.pt",
        "Order 1",
        "Where is order 1?",
    );
    let (code, text) = deliver(&app, "rui@example.pt", &first).await;
    assert_eq!(code, "250", "{text}");
    // The sender's mailer gives every message the same Message-ID.
    let second = mail(
        "Rui <rui@example.pt>",
        "same@mailer.example.pt",
        "Order 2",
        "And order 2?",
    );
    let (code, text) = deliver(&app, "rui@example.pt", &second).await;
    assert_eq!(
        code, "250",
        "a new message, not a temporary failure: {text}"
    );
    assert!(text.contains("accepted as"), "{text}");
    // Each delivered again: nothing changes (idempotent).
    for raw in [&first, &second] {
        let (code, text) = deliver(&app, "rui@example.pt", raw).await;
        assert_eq!(
            (code.as_str(), text.contains("nothing changed")),
            ("250", true),
            "{text}"
        );
    }
    let found = interactions_of(&app, "rui@example.pt").await;
    assert_eq!(found.len(), 2, "{found:?}");
    let by_subject: HashMap<&str, &Value> = found
        .iter()
        .map(|i| (i["subject"].as_str().unwrap(), i))
        .collect();
    let (one, two) = (by_subject["Order 1"], by_subject["Order 2"]);
    assert_eq!(two["body"], "And order 2?");
    let received = &event(two, "email_received")["data"];
    assert_eq!(received["message_id_reused"], true, "{received}");
    assert_eq!(received["message_id"], "same@mailer.example.pt");
    assert!(event(one, "email_received")["data"]["message_id_reused"].is_null());

    // Replies reusing one Message-ID: each is its own message on the conversation.
    let reply = |body: &str| {
        format!("From: rui@example.pt\r\nTo: support@shop.test\r\nSubject: Re: Order 1\r\nMessage-ID: <reply@mailer.example.pt>\r\nIn-Reply-To: <same@mailer.example.pt>\r\n\r\n{body}\r\n")
    };
    for body in ["Any news?", "Still waiting.", "Still waiting."] {
        let (code, text) = deliver(&app, "rui@example.pt", &reply(body)).await;
        assert_eq!(code, "250", "{text}");
    }
    let (_, one) = app
        .get(&format!(
            "/api/interactions/{}",
            one["id"].as_str().unwrap()
        ))
        .await;
    let texts: Vec<&str> = one["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "email_received")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Where is order 1?", "Any news?", "Still waiting."]);
    app.stop().await;
}

/// Every `switchboard_email_unroutable_total` by reason, as /metrics shows it now.
async fn unroutable(app: &TestApp) -> HashMap<String, f64> {
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("switchboard_email_unroutable_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            Some((reason.to_string(), rest.trim().parse().ok()?))
        })
        .collect()
}

async fn mail_kept_aside_is_listed_for_supervisors_and_made_a_contact_once(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let (_, agent) = create_agent(&app, json!({ "name": "Ann" })).await;
    let (_, supervisor) = create_agent(&app, json!({ "name": "Sue", "role": "supervisor" })).await;
    let before = unroutable(&app).await;
    let cases = [
        ("dan@example.net", mail("dan@example.net", "ooo-1@example.net", "Out of office", "Away until Monday.").replace("Subject:", "Auto-Submitted: auto-replied\r\nSubject:"), "auto_reply"),
        ("", "From: MAILER-DAEMON@mx.example.net\r\nTo: support@shop.test\r\nSubject: Undelivered Mail\r\nMessage-ID: <b-1@mx.example.net>\r\n\r\nUser unknown\r\n".to_string(), "bounce"),
        ("eve@example.org", "To: support@shop.test\r\nSubject: Who am I\r\nMessage-ID: <anon-1@example.org>\r\n\r\nMy order never came.\r\n".to_string(), "no_sender"),
        ("fay@example.org", mail("Fay <fay..@example.org>", "bad-1@example.org", "Broken address", "Please call me."), "bad_sender"),
        ("", "\u{1}\u{2} this is not mail\r\n".to_string(), "unreadable"),
    ];
    for (from, raw, reason) in &cases {
        let (code, text) = deliver(&app, from, raw).await;
        assert_eq!(code, "250", "{reason}: {text}");
        assert!(text.contains("not routed"), "{reason}: {text}");
    }
    // Counted by why.
    let after = unroutable(&app).await;
    for (_, _, reason) in &cases {
        let grew = after.get(*reason).copied().unwrap_or(0.0)
            - before.get(*reason).copied().unwrap_or(0.0);
        assert!(grew >= 1.0, "{reason}: {before:?} → {after:?}");
    }

    // Supervisors see it, newest first, with why; agents may not.
    let list = |token: &str, query: &str| {
        let req = app
            .client
            .get(format!("{}/api/email/kept-aside{query}", app.base))
            .bearer_auth(token.to_string());
        send(req)
    };
    let (status, _) = list(&agent, "").await;
    assert_eq!(status, 403);
    let (status, page) = list(&supervisor, "").await;
    assert_eq!(status, 200, "{page}");
    let messages = page["messages"].as_array().unwrap();
    let reasons: Vec<&str> = messages
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "unreadable",
            "bad_sender",
            "no_sender",
            "bounce",
            "auto_reply"
        ]
    );
    let ooo = &messages[4];
    assert_eq!(ooo["from"], "dan@example.net");
    assert_eq!(ooo["subject"], "Out of office");
    assert_eq!(ooo["detail"], "Auto-Submitted: auto-replied");
    assert_eq!(ooo["preview"], "Away until Monday.");
    assert!(ooo["received_at"].as_str().unwrap().ends_with('Z'), "{ooo}");
    assert!(ooo["contact"].is_null());
    assert_eq!(
        messages[2]["from"], "eve@example.org",
        "the envelope's sender"
    );
    assert!(messages[0]["from"].is_null(), "no sender at all");
    // Paged.
    let (_, first) = list(&supervisor, "?limit=2").await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    let next = first["next_before"].as_str().unwrap();
    let (_, rest) = list(&supervisor, &format!("?limit=10&before={next}")).await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 3);
    assert!(rest["next_before"].is_null());

    // A supervisor makes a contact of the auto-reply: queued and routed like any mail.
    let mut ann = Desktop::available(&app.base, &agent).await;
    let make = |id: &str, body: Value| {
        let req = app
            .client
            .post(format!("{}/api/email/kept-aside/{id}/contact", app.base))
            .bearer_auth(supervisor.clone())
            .json(&body);
        send(req)
    };
    let ooo_id = ooo["id"].as_str().unwrap();
    let (status, made) = make(ooo_id, json!({})).await;
    assert_eq!(status, 201, "{made}");
    let interaction = made["interaction_id"].as_str().unwrap();
    assert_eq!(ann.take_offer().await, interaction);
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    assert_eq!(
        (i["channel"].as_str(), i["subject"].as_str()),
        (Some("email"), Some("Out of office"))
    );
    assert_eq!(i["body"], "Away until Monday.");
    let received = &event(&i, "email_received")["data"];
    assert_eq!(received["kept_aside"]["reason"], "auto_reply", "{received}");
    // Once only.
    let (status, again) = make(ooo_id, json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (_, page) = list(&supervisor, "").await;
    let ooo = &page["messages"][4];
    assert_eq!(ooo["contact"]["interaction_id"], interaction);

    // No sender: the supervisor names the customer; an agent may not do it at all.
    let anon = messages[2]["id"].as_str().unwrap();
    let unreadable = messages[0]["id"].as_str().unwrap();
    let (status, answer) = make(unreadable, json!({})).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("email")),
        "{answer}"
    );
    let (status, _) = send(
        app.client
            .post(format!("{}/api/email/kept-aside/{anon}/contact", app.base))
            .bearer_auth(agent.clone())
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, made) = make(unreadable, json!({ "email": "gus@example.org" })).await;
    assert_eq!(status, 201, "{made}");
    let found = interactions_of(&app, "gus@example.org").await;
    assert_eq!(found.len(), 1);
    assert!(found[0]["body"]
        .as_str()
        .unwrap()
        .contains("this is not mail"));
    let (status, _) = make(anon, json!({})).await;
    assert_eq!(status, 201, "the envelope's sender is the customer");
    let (status, _) = make("0190c2a4-0000-7000-8000-000000000000", json!({})).await;
    assert_eq!(status, 404);

    // Audited.
    let (_, audit) = app.get("/api/audit?action=email.kept_aside.contact").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3, "{audit}");
    app.stop().await;
}

async fn a_nul_byte_does_not_keep_a_customers_mail_aside(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let raw = mail(
        "Hana <hana@example.jp>",
        "nul-1@example.jp",
        "Broken\0 form",
        "My order\0 is late.",
    );
    let (code, text) = deliver(&app, "hana@example.jp", &raw).await;
    assert_eq!(code, "250", "{text}");
    assert!(text.contains("accepted as"), "{text}");
    let found = interactions_of(&app, "hana@example.jp").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["subject"], "Broken form");
    assert_eq!(found[0]["body"], "My order is late.");
    assert!(kinds(&found[0]).contains(&"email_received".to_string()));
    app.stop().await;
}

both_backends!(
    a_reused_message_id_with_other_content_is_a_new_message_and_says_so,
    mail_kept_aside_is_listed_for_supervisors_and_made_a_contact_once,
    a_nul_byte_does_not_keep_a_customers_mail_aside,
);
