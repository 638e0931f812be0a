//! A chat visitor's side belongs to the visitor's page alone: its resume secret never
//! reaches staff (history, API, offers), an agent who tries every value it was shown
//! cannot resume it, and secrets recorded before they were kept as digests stop working
//! at the upgrade. Limits count per chat and per client address, so reconnecting or
//! inventing visitor ids gets around neither.

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::helpers::{spawn_app_with, spawn_settings, test_settings, Backend};

/// Every string anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

async fn an_agent_cannot_take_over_a_visitors_chat_with_anything_it_was_shown(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, ana_token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let (ben, ben_token) = create_agent(&app, json!({ "name": "Ben" })).await;
    let mut ana = Desktop::available(&app.base, &ana_token).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, secret) = page
        .start(json!({ "type": "start", "visitor_id": "v-sec", "name": "Vic" }))
        .await;
    // Its first message puts the chat in line (sent again below: acknowledged once).
    page.write("m1", "my account number is 12345").await;
    let offer = ana.expect("offer").await;
    let interaction = ana.accept(&offer).await;
    page.send(json!({ "type": "message", "id": "m1", "text": "my account number is 12345" }))
        .await;
    page.expect("ack").await;

    // Everything Ana was shown, as an agent sees it: the offer, the interaction, the
    // customer and their history.
    let as_ana = |path: String| {
        let req = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&ana_token);
        async move { crate::helpers::send(req).await }
    };
    let (status, i) = as_ana(format!("/api/interactions/{interaction}")).await;
    assert_eq!(status, 200, "{i}");
    let customer = i["customer_id"].as_str().unwrap().to_string();
    let (_, c) = as_ana(format!("/api/customers/{customer}")).await;
    let (_, h) = as_ana(format!("/api/customers/{customer}/history")).await;
    let (_, sup) = app.get(&format!("/api/interactions/{interaction}")).await;
    let shown = json!([offer, i, c, h, sup]);
    assert!(
        !shown.to_string().contains(&secret),
        "the resume secret reached staff: {shown}"
    );

    // A supervisor moves the chat to Ben; Ana tries every value she was shown as the
    // secret, over the real chat websocket.
    let mut ben_desk = Desktop::login(&app.base, &ben_token, None).await;
    let (status, moved) = app
        .post(
            &format!("/api/interactions/{interaction}/move"),
            &json!({ "agent_id": ben }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    ben_desk.expect("assigned").await;
    let mut tried = Vec::new();
    strings(&shown, &mut tried);
    tried.sort();
    tried.dedup();
    assert!(tried.len() > 10, "{tried:?}");
    let mut thief = Visitor::connect(&app).await;
    for guess in &tried {
        thief
            .send(json!({ "type": "resume", "chat_id": chat_id, "resume_token": guess, "last_seq": 0 }))
            .await;
        let answer = thief.expect("error").await;
        assert_eq!(answer["code"], "unknown_chat", "{guess}: {answer}");
    }
    // The visitor's own page still resumes with its secret.
    let mut again = Visitor::connect(&app).await;
    again
        .send(
            json!({ "type": "resume", "chat_id": chat_id, "resume_token": secret, "last_seq": 0 }),
        )
        .await;
    again.expect("resumed").await;
    app.stop().await;
}

async fn a_reconnecting_visitor_keeps_its_chats_rate_and_one_address_cannot_open_chats_without_end(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.chat.messages_per_minute = 3;
        s.chat.chats_per_minute_per_address = 4;
        s.chat.messages_per_minute_per_address = 5;
    })
    .await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, secret) = page
        .start(json!({ "type": "start", "visitor_id": "v-rate" }))
        .await;
    for i in 0..3 {
        page.send(json!({ "type": "message", "id": format!("r{i}"), "text": "hi" }))
            .await;
        page.expect("ack").await;
    }
    // Reconnecting does not give the chat a new allowance.
    drop(page);
    let mut page = Visitor::connect(&app).await;
    page.send(
        json!({ "type": "resume", "chat_id": chat_id, "resume_token": secret, "last_seq": 0 }),
    )
    .await;
    page.expect("resumed").await;
    page.send(json!({ "type": "message", "id": "r3", "text": "hi" }))
        .await;
    assert_eq!(page.expect("error").await["code"], "slow_down");
    // A message sent again (its ack was lost) is answered, not counted.
    page.send(json!({ "type": "message", "id": "r0", "text": "hi" }))
        .await;
    assert_eq!(page.expect("ack").await["id"], "r0");

    // New visitor ids from the same address: its chats and messages are counted together.
    let mut started = 1;
    let mut refused = None;
    for i in 0..10 {
        let mut p = Visitor::connect(&app).await;
        p.send(json!({ "type": "start", "visitor_id": format!("v-invented-{i}") }))
            .await;
        let v = p.answer().await;
        if v["type"] == "started" {
            started += 1;
            if started == 3 {
                // Two more messages fill the address's five (three were sent above).
                for m in 0..3 {
                    p.send(json!({ "type": "message", "id": format!("x{m}"), "text": "hi" }))
                        .await;
                    let a = p.answer().await;
                    let want = if m < 2 { "ack" } else { "error" };
                    assert_eq!(a["type"], want, "message {m}: {a}");
                }
            }
        } else {
            refused = Some(v);
            break;
        }
    }
    assert_eq!(started, 4, "four chats a minute from one address");
    let refused = refused.expect("the fifth start is refused");
    assert_eq!(refused["code"], "slow_down", "{refused}");
    app.stop().await;
}

/// Secrets written by the version before (whole, in the `chat_started` event) stop working
/// when the new version starts: the upgrade removes them from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_secrets_recorded_before_the_upgrade_stop_working() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&Backend::Sqlite, &dir).await;
    let app = spawn_settings(settings.clone()).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, secret) = page
        .start(json!({ "type": "start", "visitor_id": "v-old" }))
        .await;
    drop(page);
    app.stop().await;
    // The store as the version before left it: the secret whole in the event, in the
    // history and in the channel's own record, and the upgrade not yet applied.
    let mut db = sqlx::SqliteConnection::connect(&settings.database_url())
        .await
        .unwrap();
    let old = json!({ "resume_token": secret, "visitor_id": "v-old" }).to_string();
    for sql in [
        "DELETE FROM _sqlx_migrations WHERE version = 10",
        "DROP TRIGGER history_no_update",
        "UPDATE history SET data = $1 WHERE kind = 'chat_started'",
        "CREATE TRIGGER history_no_update BEFORE UPDATE ON history \
         BEGIN SELECT RAISE(ABORT, 'history is append-only'); END",
        "UPDATE channel_events SET data = $1 WHERE kind = 'chat_started'",
    ] {
        sqlx::query(sql).bind(&old).execute(&mut db).await.unwrap();
    }
    db.close().await.unwrap();

    let app = spawn_settings(settings.clone()).await;
    let mut thief = Visitor::connect(&app).await;
    thief
        .send(
            json!({ "type": "resume", "chat_id": chat_id, "resume_token": secret, "last_seq": 0 }),
        )
        .await;
    assert_eq!(thief.expect("error").await["code"], "unknown_chat");
    let (_, i) = app
        .get(&format!("/api/interactions?channel=chat&key={chat_id}"))
        .await;
    assert!(!i.to_string().contains(&secret), "{i}");
    app.stop().await;
    let file = std::fs::read(dir.path().join("switchboard.db")).unwrap();
    let wal = std::fs::read(dir.path().join("switchboard.db-wal")).unwrap_or_default();
    let found = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(
        !found(&file) && !found(&wal),
        "the old secret is gone from the database file"
    );
}

both_backends!(
    an_agent_cannot_take_over_a_visitors_chat_with_anything_it_was_shown,
    a_reconnecting_visitor_keeps_its_chats_rate_and_one_address_cannot_open_chats_without_end,
);
