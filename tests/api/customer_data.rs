//! The customer's data under the admins' control, end to end: a customer who wrote by
//! every channel — the API, mail with a file, a chat, a call with a voicemail — with a
//! merged record, purchases, a survey comment, an agent's notes and replies and mail kept
//! aside, is exported whole and then erased; afterwards none of their name, address,
//! number or words is anywhere in the database's bytes (the SQLite file with its log, or
//! a dump of the PostgreSQL database), while every count stays. The history stays
//! append-only for everything but the redaction erasure and retention make.

use std::collections::BTreeSet;

use base64::Engine;
use lettre::message::{header::ContentType, Attachment, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use switchboard::store::Store;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::helpers::{send, spawn_app_with, start_process_with, Backend, TestApp, TOKEN};

const NAME: &str = "Qorvath Meixiang 梅香";
const EMAIL: &str = "qorvath.mei@example.com";
const PHONE: &str = "+49 30 12345678";
const ALT_NAME: &str = "Bartholomew Alt-Qorvath";
const ALT_EMAIL: &str = "mei.alt@example.com";
const BYSTANDER: &str = "the bystander's unrelated text stays";

/// What identifies the customer, and a word of everything they and the agents wrote
/// about them (the API contact, the mail, its file, the chat both ways, the reply, the
/// notes, the survey comment, the voicemail's recording, the mail kept aside, the
/// purchase): none may be left after the erasure.
const TRACES: &[&str] = &[
    "qorvath",
    "梅香",
    "bartholomew",
    "mei.alt@example.com",
    "493012345678",
    "zanzibarite",
    "frobnicated",
    "quuxolite",
    "plimsollite",
    "wobbegong",
    "snollygoster",
    "floofulous",
    "grumbleweed",
    "zorblatt",
    "snarkleberry",
    "kaleidoscopine",
    "ord-qv-7731",
];

/// A server with every channel: mail for shop.test relayed to a sink, the phone channel
/// calling back to a fake phone system, chat, and rules without wrap-up.
pub(crate) struct Centre {
    pub(crate) app: TestApp,
    _dir: tempfile::TempDir,
}

pub(crate) async fn centre(backend: Backend) -> Centre {
    let (relay, _sink) = crate::email::smtp_sink().await;
    let (phone_system, _) = crate::phone::fake_phone_system().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.toml");
    std::fs::write(
        &rules,
        include_str!("../../config/routing.toml").replace("wrap_up_secs = 30", "wrap_up_secs = 0"),
    )
    .unwrap();
    let app = spawn_app_with(backend, |s| {
        crate::phone::configure(s, &phone_system, 100);
        s.routing.rules_file = rules.display().to_string();
        s.email.domains = vec!["shop.test".into()];
        s.email.hostname = "switchboard.test".into();
        s.email.from_address = "support@shop.test".into();
        s.email.relay_url = format!("smtp://127.0.0.1:{relay}");
    })
    .await;
    Centre { app, _dir: dir }
}

fn mailer(app: &TestApp) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.unwrap().port())
        .build()
}

/// The seeded customer, their contacts, and the agent and visitor still connected.
pub(crate) struct Seeded {
    pub(crate) customer: String,
    pub(crate) merged: String,
    pub(crate) api: String,
    pub(crate) email: String,
    pub(crate) chat: String,
    pub(crate) call: String,
    pub(crate) callback: String,
    pub(crate) bystander: String,
    pub(crate) desk: Desktop,
    pub(crate) agent_token: String,
    pub(crate) visitor: Visitor,
}

/// The customer writes by every channel; the agent answers, notes and completes; the chat
/// stays with the agent and the voicemail's callback waits (two contacts in progress).
pub(crate) async fn seed(app: &TestApp) -> Seeded {
    let (status, c) = app
        .post(
            "/api/customers",
            &json!({ "name": NAME, "identities": [
                { "kind": "email", "value": EMAIL }, { "kind": "phone", "value": PHONE },
                { "kind": "visitor_id", "value": "v-qorvath" }, { "kind": "external_id", "value": "crm-qorvath-88" }] }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let customer = c["id"].as_str().unwrap().to_string();
    let (status, alt) = app
        .post(
            "/api/customers",
            &json!({ "name": ALT_NAME, "identities": [{ "kind": "email", "value": ALT_EMAIL }] }),
        )
        .await;
    assert_eq!(status, 201, "{alt}");
    let merged = alt["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            &format!("/api/customers/{customer}/merge"),
            &json!({ "from": merged }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(
            &format!("/api/customers/{customer}/purchases/ord-qv-7731"),
            &json!({ "amount": 120.5 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // The agent takes no calls, so the call and its callback wait.
    let (_, agent_token) = create_agent(
        app,
        json!({ "name": "Lin", "capacity": { "phone": 0, "chat": 3, "email": 5, "api": 5 } }),
    )
    .await;
    let mut desk = Desktop::available(&app.base, &agent_token).await;

    let api = app
        .contact(json!({ "idempotency_key": "web-qv-1", "customer": { "email": EMAIL },
                          "subject": "Zanzibarite invoice", "body": "My zanzibarite order was charged twice." }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(desk.take_offer().await, api);
    complete(&mut desk, &api, "Refund promised; grumbleweed.").await;

    let mail = Message::builder()
        .from(format!("Qorvath Meixiang <{EMAIL}>").parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Frobnicated parcel")
        .message_id(Some("<parcel-qv@example.com>".into()))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(
                    "The quuxolite vase arrived broken.".to_string(),
                ))
                .singlepart(
                    Attachment::new("receipt-quuxolite.txt".into())
                        .body(b"plimsollite receipt".to_vec(), ContentType::TEXT_PLAIN),
                ),
        )
        .unwrap();
    mailer(app).send(mail).await.unwrap();
    let email = desk.take_offer().await;
    desk.send(json!({ "type": "reply", "interaction_id": email, "body": "Sorry: a floofulous replacement is on its way.", "reply_id": "r-qv" }))
        .await;
    desk.expect("reply_sent").await;
    complete(&mut desk, &email, "Sent a new vase.").await;

    let mut visitor = Visitor::connect(app).await;
    visitor
        .start(json!({ "type": "start", "visitor_id": "v-qorvath" }))
        .await;
    visitor
        .send(json!({ "type": "message", "id": "m1", "text": "My wobbegong login fails." }))
        .await;
    let chat = desk.take_offer().await;
    desk.send(json!({ "type": "reply", "interaction_id": chat, "body": "Try this: snollygoster.", "reply_id": "c-qv" }))
        .await;
    assert_eq!(
        visitor.agent_message().await["text"],
        "Try this: snollygoster."
    );

    let (status, body) = app
        .post(
            &format!("/api/interactions/{api}/satisfaction"),
            &json!({ "score": 4, "comment": "Quick and kind, zorblatt!" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = crate::phone::native(
        app,
        json!({ "event": "ringing", "call_id": "c-qv-1", "from": "+493012345678", "to": "+4930999" }),
    )
    .await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("queue")),
        "{body}"
    );
    let call = body["interaction_id"].as_str().unwrap().to_string();
    let (status, body) = crate::phone::native(
        app,
        json!({ "event": "voicemail", "call_id": "c-qv-1", "duration_secs": 12,
                "recording_url": "https://pbx.example/rec/snarkleberry.wav" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, c) = app.get(&format!("/api/customers/{customer}")).await;
    let callback = c["open_matters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["channel"] == "phone")
        .unwrap_or_else(|| panic!("the voicemail booked a callback: {c}"))["interaction_id"]
        .as_str()
        .unwrap()
        .to_string();

    // An auto-reply of theirs that answers no conversation is kept aside.
    let ooo = format!("From: {EMAIL}\r\nTo: support@shop.test\r\nSubject: Out of office: kaleidoscopine\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <ooo-qv@example.com>\r\n\r\nAway until Monday.\r\n");
    let envelope = lettre::address::Envelope::new(
        Some(EMAIL.parse().unwrap()),
        vec!["support@shop.test".parse().unwrap()],
    )
    .unwrap();
    mailer(app)
        .send_raw(&envelope, ooo.as_bytes())
        .await
        .unwrap();
    let (_, kept) = app.get("/api/email/kept-aside").await;
    assert_eq!(kept["messages"][0]["from"], EMAIL, "{kept}");

    let bystander = app
        .contact(
            json!({ "customer": { "email": "other.person@example.org", "name": "Other Person" },
                          "subject": "Unrelated", "body": BYSTANDER }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    Seeded {
        customer,
        merged,
        api,
        email,
        chat,
        call,
        callback,
        bystander,
        desk,
        agent_token,
        visitor,
    }
}

async fn complete(desk: &mut Desktop, interaction: &str, notes: &str) {
    desk.send(json!({ "type": "complete", "interaction_id": interaction, "disposition": "resolved", "notes": notes }))
        .await;
    assert_eq!(
        desk.expect("completed").await["interaction_id"],
        interaction
    );
}

/// Everything the database keeps, lowercased: the SQLite file with its write-ahead log
/// and shared-memory file, or a dump of the PostgreSQL database (`pg_dump`, as a backup
/// would be made).
async fn stored_bytes(database_url: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    match switchboard::store::sqlite_path(database_url) {
        Some(file) => {
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(b) = std::fs::read(format!("{file}{suffix}")) {
                    bytes.extend(b);
                }
            }
        }
        None => {
            let out = std::process::Command::new("pg_dump")
                .args(["--no-owner", "--dbname", database_url])
                .output()
                .expect("pg_dump runs (bash .ci/run installs PostgreSQL's client)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            bytes = out.stdout;
        }
    }
    bytes.to_ascii_lowercase()
}

/// Whether `bytes` hold `needle` as text, or in hex (as `pg_dump` writes binary columns:
/// files, raw mail).
fn holds(bytes: &[u8], needle: &str) -> bool {
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    [needle.as_bytes(), hex.as_bytes()]
        .iter()
        .any(|n| bytes.windows(n.len()).any(|w| w == *n))
}

/// The counts reports are made of: interactions per channel and tier, completed ones.
async fn counts(store: &Store) -> (Vec<(String, String, i64)>, i64) {
    let by: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT channel, tier, COUNT(*) FROM interactions GROUP BY channel, tier ORDER BY channel, tier",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let completed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM interactions WHERE state = 'completed'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    (by, completed)
}

/// Each of the customer's interactions as reports see it: id, channel, tier, when, agent.
async fn anonymous_shape(
    store: &Store,
    ids: &[&str],
) -> Vec<(String, String, String, i64, Option<String>)> {
    let mut out = Vec::new();
    for id in ids {
        out.push(
            sqlx::query_as(
                "SELECT id, channel, tier, created_at, agent_id FROM interactions WHERE id = $1",
            )
            .bind(*id)
            .fetch_one(store.pool())
            .await
            .unwrap(),
        );
    }
    out
}

async fn erase(app: &TestApp, id: &str, query: &str) -> (u16, Value) {
    send(app.admin(
        reqwest::Method::POST,
        &format!("/api/customers/{id}/erase{query}"),
    ))
    .await
}

async fn an_erased_customer_is_found_nowhere_and_every_count_stays(backend: Backend) {
    let centre = centre(backend).await;
    let app = &centre.app;
    let mut s = seed(app).await;
    let store = Store::connect(&app.database_url, 2).await.unwrap();

    // Everything is there before: the test can fail.
    let bytes = stored_bytes(&app.database_url).await;
    for t in TRACES {
        assert!(holds(&bytes, t), "{t} is stored before the erasure");
    }
    let before = counts(&store).await;
    let (_, scores_before) = app.get("/api/reports/satisfaction?by=channel").await;
    let ids = [s.api.as_str(), &s.email, &s.chat, &s.call, &s.callback];
    let shape_before = anonymous_shape(&store, &ids).await;

    // Only admins erase.
    let (status, _) = send(
        app.client
            .post(format!("{}/api/customers/{}/erase", app.base, s.customer))
            .bearer_auth(&s.agent_token),
    )
    .await;
    assert_eq!(status, 403);
    // Contacts in progress are named, and nothing is erased.
    let (status, refused) = erase(app, &s.customer, "").await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("in_progress")),
        "{refused}"
    );
    let open: BTreeSet<&str> = refused["open"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["interaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(open, BTreeSet::from([s.chat.as_str(), s.callback.as_str()]));
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("end_open=true"),
        "{refused}"
    );
    let (_, c) = app.get(&format!("/api/customers/{}", s.customer)).await;
    assert_eq!(c["name"], NAME);

    // Erased by the merged record's id, which answers as the survivor; the contacts in
    // progress are ended first, and the agent holding the chat is told.
    let (status, erased) = erase(app, &s.merged, "?end_open=true").await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["customer_id"], s.customer.as_str());
    assert_eq!(erased["merged"], json!([s.merged]));
    let ended: BTreeSet<(String, String)> = erased["ended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["interaction_id"].as_str().unwrap().to_string(),
                e["ended"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ended,
        BTreeSet::from([
            (s.chat.clone(), "completed".to_string()),
            (s.callback.clone(), "abandoned".to_string())
        ])
    );
    assert_eq!(erased["removed"]["identities"], 5, "{erased}");
    assert_eq!(erased["removed"]["interactions"], 5, "{erased}");
    assert_eq!(erased["removed"]["purchases"], 1, "{erased}");
    assert_eq!(erased["removed"]["attachments"], 1, "{erased}");
    assert_eq!(erased["removed"]["mail_kept_aside"], 1, "{erased}");
    assert_eq!(erased["removed"]["survey_comments"], 1, "{erased}");
    assert_eq!(erased["log_truncated"], true);
    let told = s.desk.expect("interaction_ended").await;
    assert_eq!(
        (told["interaction_id"].as_str(), told["closed"].as_bool()),
        (Some(s.chat.as_str()), Some(true)),
        "{told}"
    );
    s.visitor.expect("closed").await;

    // Nothing of them is left in the database's bytes.
    let bytes = stored_bytes(&app.database_url).await;
    let left: Vec<&&str> = TRACES.iter().filter(|t| holds(&bytes, t)).collect();
    assert!(left.is_empty(), "still stored after the erasure: {left:?}");
    assert!(holds(&bytes, BYSTANDER), "another customer's words stay");

    // Every count stays: the chat ended completed, the callback abandoned.
    let after = counts(&store).await;
    assert_eq!(after.0, before.0, "interactions per channel and tier");
    assert_eq!(
        after.1,
        before.1 + 1,
        "completed: the chat closed for the erasure"
    );
    let (_, scores_after) = app.get("/api/reports/satisfaction?by=channel").await;
    assert_eq!(scores_after["groups"], scores_before["groups"]);
    assert_eq!(scores_before["groups"][0]["answers"], 1, "{scores_before}");
    assert_eq!(anonymous_shape(&store, &ids).await, shape_before);

    // An anonymous record is left; both ids answer as it.
    for id in [&s.customer, &s.merged] {
        let (status, c) = app.get(&format!("/api/customers/{id}")).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(
            (&c["id"], &c["name"], &c["identities"]),
            (&json!(s.customer), &Value::Null, &json!([]))
        );
        assert!(c["erased_at"].is_string(), "{c}");
    }
    let (_, history) = app
        .get(&format!("/api/customers/{}/history?limit=500", s.customer))
        .await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "customer_erased");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "interaction_received")
            .count(),
        5
    );
    let (_, interaction) = app.get(&format!("/api/interactions/{}", s.email)).await;
    assert_eq!(
        (&interaction["subject"], &interaction["body"]),
        (&Value::Null, &Value::Null)
    );
    let (_, other) = app.get(&format!("/api/interactions/{}", s.bystander)).await;
    assert_eq!(other["body"], BYSTANDER);

    // The audit trail says who erased which customer and when, and nothing of them.
    let (_, audit) = app.get("/api/audit?action=customer.erase").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        (
            entries[0]["actor"].as_str(),
            entries[0]["target_id"].as_str()
        ),
        (Some("admin"), Some(s.customer.as_str()))
    );
    assert!(entries[0]["at"].is_string());
    let (_, trail) = app.get("/api/audit?limit=500").await;
    let trail = trail.to_string().to_lowercase();
    for t in TRACES {
        assert!(!trail.contains(t), "the audit trail still shows {t}");
    }

    // Metrics count it and carry nothing of them.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // (Counted in this test process's one recorder: other tests erase too.)
    let erased_count: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_customers_erased_total{outcome=\"erased\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(erased_count >= 1.0, "{metrics}");
    for t in TRACES {
        assert!(!metrics.to_lowercase().contains(t), "/metrics shows {t}");
    }

    // Erased is erased: again, or its export, answers 410 by either id.
    for id in [&s.customer, &s.merged] {
        let (status, again) = erase(app, id, "?end_open=true").await;
        assert_eq!(
            (status, again["error"].as_str()),
            (410, Some("gone")),
            "{again}"
        );
        let (status, _) = app.get(&format!("/api/customers/{id}/export")).await;
        assert_eq!(status, 410);
    }
    let (status, _) = erase(app, &uuid::Uuid::now_v7().to_string(), "").await;
    assert_eq!(status, 404);
    let (status, _) = erase(app, "not-an-id", "").await;
    assert_eq!(status, 404);
    let (status, bad) = erase(app, &s.customer, "?end_open=perhaps").await;
    assert_eq!(status, 400, "{bad}");
    store.close().await;
}

async fn an_export_holds_everything_about_the_customer_and_parses(backend: Backend) {
    let centre = centre(backend).await;
    let app = &centre.app;
    let s = seed(app).await;

    // By the merged record's id: it answers as the survivor.
    let resp = app
        .admin(
            reqwest::Method::GET,
            &format!("/api/customers/{}/export", s.merged),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not sized in advance"
    );
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&s.customer));
    let doc: Value = serde_json::from_str(&resp.text().await.unwrap()).expect("the export is JSON");

    assert_eq!(doc["format"], "switchboard-customer-export/1");
    assert_eq!(
        (
            doc["customer"]["id"].as_str(),
            doc["customer"]["name"].as_str()
        ),
        (Some(s.customer.as_str()), Some(NAME))
    );
    assert_eq!(doc["customer"]["merged"][0]["id"], s.merged.as_str());
    assert_eq!(doc["customer"]["merged"][0]["name"], ALT_NAME);
    let identities: BTreeSet<&str> = doc["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        identities,
        BTreeSet::from([
            EMAIL,
            ALT_EMAIL,
            "+493012345678",
            "v-qorvath",
            "crm-qorvath-88"
        ])
    );
    assert_eq!(
        doc["purchases"],
        json!([{ "ref": "ord-qv-7731", "amount": "120.50", "at": doc["purchases"][0]["at"] }])
    );
    let kinds: Vec<&str> = doc["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"customer_created") && kinds.contains(&"customers_merged"),
        "{kinds:?}"
    );
    let kept = &doc["mail_kept_aside"][0];
    assert_eq!(kept["subject"], "Out of office: kaleidoscopine");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(kept["raw_base64"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(raw)
        .unwrap()
        .contains("Away until Monday."));

    let interactions = doc["interactions"].as_array().unwrap();
    let ids: BTreeSet<&str> = interactions
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([s.api.as_str(), &s.email, &s.chat, &s.call, &s.callback])
    );
    let of = |id: &str| interactions.iter().find(|i| i["id"] == id).unwrap();
    let said = |i: &Value, kind: &str, field: &str| -> Vec<String> {
        i["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .filter_map(|e| e["data"][field].as_str().map(str::to_string))
            .collect()
    };

    let api = of(&s.api);
    assert_eq!(api["body"], "My zanzibarite order was charged twice.");
    assert_eq!(api["notes"], "Refund promised; grumbleweed.");
    assert_eq!(
        (
            api["satisfaction"]["score"].as_i64(),
            api["satisfaction"]["comment"].as_str()
        ),
        (Some(4), Some("Quick and kind, zorblatt!"))
    );

    let mail = of(&s.email);
    assert_eq!(
        said(mail, "email_received", "text"),
        ["The quuxolite vase arrived broken."]
    );
    assert!(
        said(mail, "email_sent", "text")[0].contains("floofulous"),
        "{mail}"
    );
    let file = &mail["attachments"][0];
    assert_eq!(file["name"], "receipt-quuxolite.txt");
    let content = base64::engine::general_purpose::STANDARD
        .decode(file["data_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(content, b"plimsollite receipt");
    assert!(
        mail["commands"][0]["payload"]["body"]
            .as_str()
            .unwrap()
            .contains("floofulous"),
        "{mail}"
    );

    let chat = of(&s.chat);
    let transcript = said(chat, "chat", "text");
    assert_eq!(
        transcript,
        ["My wobbegong login fails.", "Try this: snollygoster."]
    );

    assert_eq!(
        said(of(&s.call), "voicemail", "recording_url"),
        ["https://pbx.example/rec/snarkleberry.wav"]
    );
    assert_eq!(of(&s.callback)["callback"]["number"], "+493012345678");

    let text = doc.to_string();
    assert!(
        !text.contains(BYSTANDER),
        "another customer's words are not theirs"
    );

    // The export is audited: who read whom.
    let (_, audit) = app.get("/api/audit?action=customer.export").await;
    assert_eq!(
        audit["entries"][0]["target_id"],
        s.customer.as_str(),
        "{audit}"
    );
    let (status, _) = app
        .get(&format!("/api/customers/{}/export", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        app.client
            .get(format!("{}/api/customers/{}/export", app.base, s.customer))
            .bearer_auth(&s.agent_token),
    )
    .await;
    assert_eq!(status, 403);
}

async fn the_history_stays_append_only_but_for_a_redaction(backend: Backend) {
    use switchboard::store::redact::{self, Purpose};
    let app = spawn_app_with(backend.clone(), |_| {}).await;
    let (status, _) = app
        .post("/api/customers", &json!({ "name": "Kim", "identities": [{ "kind": "email", "value": "kim@example.com" }] }))
        .await;
    assert_eq!(status, 201);
    let store = Store::connect(&app.database_url, 2).await.unwrap();
    let refused = |r: Result<sqlx::any::AnyQueryResult, sqlx::Error>, what: &str| {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("append-only"), "{what}: {e}");
    };
    // Ordinary code may neither change nor remove the history or the audit trail.
    for sql in [
        r#"UPDATE history SET data = '{"redacted":"erasure"}'"#,
        "DELETE FROM history",
        r#"UPDATE audit SET after = '{"redacted":"erasure"}'"#,
        "DELETE FROM audit",
    ] {
        let mut tx = store.begin_write().await.unwrap();
        refused(sqlx::query(sql).execute(&mut *tx).await, sql);
        tx.rollback().await.unwrap();
    }
    if matches!(backend, Backend::Postgres(_)) {
        for sql in ["TRUNCATE history", "TRUNCATE audit"] {
            let mut tx = store.begin_write().await.unwrap();
            refused(sqlx::query(sql).execute(&mut *tx).await, sql);
            tx.rollback().await.unwrap();
        }
    }
    // A redaction may only take members away, marked, and touch nothing else.
    let (seq, data): (i64, String) =
        sqlx::query_as("SELECT seq, data FROM history WHERE kind = 'customer_created'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(data.contains("Kim"), "{data}");
    for (sql, purpose) in [
        (
            "UPDATE history SET kind = 'x' WHERE seq = $1",
            Purpose::Erasure,
        ),
        (
            r#"UPDATE history SET data = '{"redacted":"erasure","name":"Someone else"}' WHERE seq = $1"#,
            Purpose::Erasure,
        ),
        (
            r#"UPDATE history SET data = '{"redacted":"retention"}' WHERE seq = $1"#,
            Purpose::Erasure,
        ),
        ("DELETE FROM history WHERE seq = $1", Purpose::Erasure),
        (r#"UPDATE audit SET actor = 'nobody'"#, Purpose::Erasure),
        (
            r#"UPDATE audit SET after = '{"redacted":"erasure"}'"#,
            Purpose::Retention,
        ),
    ] {
        let mut tx = store.begin_write().await.unwrap();
        redact::allow(&mut tx, store.backend(), purpose)
            .await
            .unwrap();
        let query = if sql.contains("$1") {
            sqlx::query(sql).bind(seq)
        } else {
            sqlx::query(sql)
        };
        refused(query.execute(&mut *tx).await, sql);
        tx.rollback().await.unwrap();
    }
    let mut tx = store.begin_write().await.unwrap();
    redact::allow(&mut tx, store.backend(), Purpose::Erasure)
        .await
        .unwrap();
    sqlx::query(r#"UPDATE history SET data = '{"redacted":"erasure"}' WHERE seq = $1"#)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .expect("a redaction goes through");
    sqlx::query(
        r#"UPDATE audit SET after = '{"redacted":"erasure"}' WHERE action = 'customer.create'"#,
    )
    .execute(&mut *tx)
    .await
    .expect("an audit record is redacted");
    redact::close(&mut tx, store.backend(), Purpose::Erasure)
        .await
        .unwrap();
    // Closed again within the same transaction: refused.
    refused(
        sqlx::query(r#"UPDATE history SET data = '{"redacted":"erasure"}'"#)
            .execute(&mut *tx)
            .await,
        "after the redaction closed",
    );
    tx.rollback().await.unwrap();
    store.close().await;
}

async fn a_contact_an_agent_holds_is_completed_for_the_erasure_and_the_agent_told(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ola" })).await;
    let mut desk = Desktop::available(&app.base, &token).await;
    let held = app
        .contact(json!({ "customer": { "email": "held@example.com" }, "body": "keep me" }))
        .await;
    let id = held["id"].as_str().unwrap();
    assert_eq!(desk.take_offer().await, id);
    let customer = held["customer_id"].as_str().unwrap();
    let (status, erased) = erase(&app, customer, "?end_open=true").await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["ended"][0]["was"], "assigned");
    let told = desk.expect("interaction_ended").await;
    assert_eq!(told["closed"], true, "{told}");
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(
        (i["state"].as_str(), i["disposition"].as_str()),
        (Some("completed"), Some("closed_by_admin"))
    );
    // The agent is free again: the next contact is offered.
    let next = app
        .contact(json!({ "customer": { "email": "next@example.com" } }))
        .await;
    assert_eq!(desk.expect("offer").await["interaction"]["id"], next["id"]);
}

both_backends!(
    an_erased_customer_is_found_nowhere_and_every_count_stays,
    an_export_holds_everything_about_the_customer_and_parses,
    the_history_stays_append_only_but_for_a_redaction,
    a_contact_an_agent_holds_is_completed_for_the_erasure_and_the_agent_told,
);

/// The server's log, at the level production runs (info), says a customer was erased and
/// carries nothing of them, before or after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_never_carries_an_erased_customers_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Backend::Sqlite.fresh_database(dir.path()).await;
    let server = start_process_with(&db, dir.path(), &[("RUST_LOG", "info")]);
    let app = crate::helpers::remote_app(&server.base);
    let contact = app
        .contact(
            json!({ "customer": { "email": EMAIL, "name": NAME, "phone": PHONE },
                         "subject": "Zanzibarite invoice", "body": "my wobbegong is broken" }),
        )
        .await;
    let customer = contact["customer_id"].as_str().unwrap();
    let (status, body) = send(
        app.client
            .post(format!(
                "{}/api/customers/{customer}/erase?end_open=true",
                app.base
            ))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.until_logged("A customer was erased").await;
    let log = server.lines().join("\n").to_lowercase();
    for t in [
        "qorvath",
        "梅香",
        "493012345678",
        "zanzibarite",
        "wobbegong",
    ] {
        assert!(!log.contains(t), "the log carries {t}:\n{log}");
    }
}
