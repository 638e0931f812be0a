//! Nothing lost on a bad moment: each test injects a fault from outside, at the moment
//! that used to lose work — a store that cannot read a chat, a dial command the store
//! refuses, a state change or a completion the store refuses, a channel that falls behind the router, a
//! chat's first message kept while the store refuses to put the chat in line —
//! and shows nothing is lost, nothing is done twice, and nobody is told what did not
//! happen.

use std::time::Duration;

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::helpers::{
    db_exec, metric, spawn_app, spawn_app_with, spawn_settings, test_settings, Backend, TestApp,
};

/// Makes the store skip, without an error, any change moving interaction `id` to
/// `state` (a trigger, on either database), as a store refusing the router's write.
async fn refuse_moves_to(app: &TestApp, id: &str, state: &str) {
    db_exec(
        &app.database_url,
        &format!(
            "CREATE TRIGGER sb_refuse BEFORE UPDATE ON interactions \
             WHEN OLD.id = '{id}' AND NEW.state = '{state}' BEGIN SELECT RAISE(IGNORE); END"
        ),
        &format!(
            "CREATE FUNCTION sb_refuse() RETURNS trigger AS $$ BEGIN \
               IF OLD.id = '{id}' AND NEW.state = '{state}' THEN RETURN NULL; END IF; \
               RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER sb_refuse BEFORE UPDATE ON interactions \
             FOR EACH ROW EXECUTE FUNCTION sb_refuse()"
        ),
    )
    .await;
}

/// Drops the `sb_refuse` trigger a test made: the store takes every change again.
async fn stop_refusing(app: &TestApp) {
    db_exec(
        &app.database_url,
        "DROP TRIGGER sb_refuse",
        "DROP TRIGGER sb_refuse ON interactions; DROP FUNCTION sb_refuse()",
    )
    .await;
}

/// Waits (up to 20 s) until `check` holds, asking again every 50 ms.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 20 s");
}

async fn an_agents_chat_reply_survives_a_store_that_cannot_read_the_chat(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&backend, &dir).await;
    let app = spawn_settings(settings.clone()).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::available(&app.base, &token).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, secret) = page
        .start(json!({ "type": "start", "visitor_id": "v-fault" }))
        .await;
    page.write("m1", "Hello").await;
    let interaction = ana.take_offer().await;
    page.expect("agent_joined").await;
    drop(page);
    drop(ana);
    app.stop().await;
    // The store cannot read chats for a while: the server restarts meanwhile, so the
    // chat is not in memory and must be read when the agent's reply goes out.
    db_exec(
        &app_url(&settings),
        "ALTER TABLE channel_events RENAME TO channel_events_away",
        "ALTER TABLE channel_events RENAME TO channel_events_away",
    )
    .await;
    let app = spawn_settings(settings.clone()).await;
    let mut ana = Desktop::login(&app.base, &token, None).await;
    ana.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Still here?", "reply_id": "r-fault" }))
        .await;
    assert_eq!(ana.expect("reply_queued").await["reply_id"], "r-fault");
    // The agent is told it did not go yet, and that it is being retried.
    let failed = ana.expect("reply_failed").await;
    assert_eq!(
        (failed["reply_id"].as_str(), failed["retrying"].as_bool()),
        (Some("r-fault"), Some(true)),
        "{failed}"
    );
    // The store comes back: the reply goes out, once, and the agent hears it did.
    db_exec(
        &app_url(&settings),
        "ALTER TABLE channel_events_away RENAME TO channel_events",
        "ALTER TABLE channel_events_away RENAME TO channel_events",
    )
    .await;
    loop {
        let v = ana.next().await;
        if v["type"] == "reply_sent" {
            assert_eq!(v["reply_id"], "r-fault");
            break;
        }
    }
    let mut page = Visitor::connect(&app).await;
    page.send(
        json!({ "type": "resume", "chat_id": chat_id, "resume_token": secret, "last_seq": 0 }),
    )
    .await;
    page.expect("resumed").await;
    let said = page.agent_message().await;
    assert_eq!(said["text"], "Still here?");
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    let sent: Vec<&Value> = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "chat" && e["data"]["id"] == "r-fault")
        .collect();
    assert_eq!(sent.len(), 1, "recorded once: {sent:?}");
    app.stop().await;
}

fn app_url(settings: &switchboard::config::Settings) -> String {
    settings.database_url()
}

async fn a_change_the_store_refuses_is_neither_told_nor_recorded(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::login(&app.base, &token, None).await;
    let contact = app
        .contact(json!({ "customer": { "email": "refused@example.com" } }))
        .await;
    let id = contact["id"].as_str().unwrap().to_string();
    // The store skips, without an error, any change putting this contact on offer: the
    // router's change does not apply.
    refuse_moves_to(&app, &id, "offered").await;
    ana.send(json!({ "type": "presence", "status": "available" }))
        .await;
    until("the router's offer refused", || async {
        metric(&app, "switchboard_router_refused_total", "").await >= 1.0
    })
    .await;
    // Nothing of the refused offer is in the history, and the store still has it waiting.
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["state"], "queued", "{i}");
    let kinds: Vec<&str> = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"offered"), "{kinds:?}");
    // The store takes changes again: the contact is offered, and that offer is the first
    // the agent hears of it (the desktop client checks events come without gaps).
    stop_refusing(&app).await;
    // A new turn of the router: the agent says again it is available.
    ana.send(json!({ "type": "presence", "status": "available" }))
        .await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], id.as_str());
    ana.accept(&offer).await;
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    let offered = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "offered")
        .count();
    assert_eq!((i["state"].as_str(), offered), (Some("assigned"), 1), "{i}");
    app.stop().await;
}

/// A completion is written with the router's turn, without reading the store first: when
/// the store refuses it, the agent is never told it completed. Still theirs in the store,
/// it is theirs again on the desktop; ended meanwhile by someone else, they are told it
/// is no longer theirs.
async fn a_completion_the_store_refuses_is_never_told_as_done(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::available(&app.base, &token).await;
    let contact = app
        .contact(json!({ "customer": { "email": "kept@example.com" } }))
        .await;
    let id = contact["id"].as_str().unwrap().to_string();
    assert_eq!(ana.take_offer().await, id);
    // The store skips, without an error, the change completing this contact.
    refuse_moves_to(&app, &id, "completed").await;
    ana.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
        .await;
    // Read again from the store, it is still Ana's: she holds it again, never told it
    // completed.
    loop {
        let v = ana.next().await;
        assert_ne!(
            v["type"], "completed",
            "a refused completion told as done: {v}"
        );
        if v["type"] == "assigned" {
            assert_eq!(v["interaction_id"], id.as_str());
            break;
        }
    }
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["state"], "assigned", "{i}");
    assert!(
        i["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] != "completed"),
        "{i}"
    );
    stop_refusing(&app).await;
    // Ended behind the router's back (as another process would): her completion is
    // refused, and she is told it is no longer hers.
    db_exec(
        &app.database_url,
        &format!("UPDATE interactions SET state = 'abandoned' WHERE id = '{id}'"),
        &format!("UPDATE interactions SET state = 'abandoned' WHERE id = '{id}'"),
    )
    .await;
    ana.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
        .await;
    loop {
        let v = ana.next().await;
        assert_ne!(
            v["type"], "completed",
            "a refused completion told as done: {v}"
        );
        if v["type"] == "error" {
            assert_eq!(v["code"], "not_yours", "{v}");
            break;
        }
    }
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["state"], "abandoned", "{i}");
    // The router goes on: her next contact is offered, taken and completed.
    let next = app
        .contact(json!({ "customer": { "email": "next@example.com" } }))
        .await;
    let next = next["id"].as_str().unwrap().to_string();
    assert_eq!(ana.take_offer().await, next);
    ana.send(json!({ "type": "complete", "interaction_id": next, "disposition": "resolved" }))
        .await;
    assert_eq!(
        ana.expect("completed").await["interaction_id"],
        next.as_str()
    );
    let (_, i) = app.get(&format!("/api/interactions/{next}")).await;
    assert_eq!(i["state"], "completed", "{i}");
    app.stop().await;
}

async fn a_chat_channel_that_falls_behind_the_router_tells_every_visitor_their_agent(
    backend: Backend,
) {
    // The router keeps a single assignment for the channels: any burst leaves the chat
    // channel behind, and it must catch up from the store.
    let app = spawn_app_with(backend, |s| s.routing.announcements_buffer = 1).await;
    const CHATS: usize = 8;
    let mut rounds = 0;
    while metric(
        &app,
        "switchboard_channel_caught_up_total",
        "channel=\"chat\"",
    )
    .await
        < 1.0
    {
        rounds += 1;
        assert!(
            rounds <= 5,
            "the chat channel never fell behind in 5 bursts"
        );
        let mut desks = Vec::new();
        let mut pages = Vec::new();
        for i in 0..CHATS {
            let mut page = Visitor::connect(&app).await;
            page.start(json!({ "type": "start", "visitor_id": format!("v-burst-{rounds}-{i}") }))
                .await;
            page.write("m1", "Hello").await;
            pages.push(page);
            let (_, token) =
                create_agent(&app, json!({ "name": format!("Agent {rounds}-{i}") })).await;
            desks.push(Desktop::available(&app.base, &token).await);
        }
        // Every agent accepts at once: the assignments come in a burst.
        let mut offers = Vec::new();
        for d in desks.iter_mut() {
            offers.push(d.expect("offer").await);
        }
        for (d, offer) in desks.iter_mut().zip(&offers) {
            d.send(json!({ "type": "accept", "offer_id": offer["offer_id"] }))
                .await;
        }
        for d in desks.iter_mut() {
            d.expect("assigned").await;
        }
        // Every visitor is told an agent joined.
        for page in pages.iter_mut() {
            page.expect("agent_joined").await;
        }
    }
    app.stop().await;
}

async fn a_dial_the_store_could_not_take_is_sent_by_callback(backend: Backend) {
    let (url, log) = crate::phone::fake_phone_system().await;
    let app = crate::phone::phone_app(backend, &url, 5000).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ann", "extension": "201" })).await;
    let mut desk = Desktop::available(&app.base, &token).await;
    // The store refuses every dial command for now.
    db_exec(
        &app.database_url,
        "CREATE TRIGGER sb_no_dial BEFORE INSERT ON outbox WHEN NEW.id LIKE 'dial:%' \
         BEGIN SELECT RAISE(ABORT, 'injected: no dial commands'); END",
        "CREATE FUNCTION sb_no_dial() RETURNS trigger AS $$ BEGIN \
           IF NEW.id LIKE 'dial:%' THEN RAISE EXCEPTION 'injected: no dial commands'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER sb_no_dial BEFORE INSERT ON outbox \
         FOR EACH ROW EXECUTE FUNCTION sb_no_dial()",
    )
    .await;
    let ringing = crate::phone::native_in_background(
        &app,
        json!({ "event": "ringing", "call_id": "lost-dial", "from": "+4930123480" }),
    );
    // The agent takes the call within the answer window; its dial cannot be stored.
    let interaction = desk.take_offer().await;
    let (status, answer) = ringing.await.unwrap();
    // The caller is told to wait rather than refused (the call is taken: a retried
    // ringing would hear "queue" anyway).
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("queue")),
        "{answer}"
    );
    db_exec(
        &app.database_url,
        "DROP TRIGGER sb_no_dial",
        "DROP TRIGGER sb_no_dial ON outbox; DROP FUNCTION sb_no_dial()",
    )
    .await;
    // Within seconds the phone system is told to connect the caller to the agent.
    until("the dial callback", || async {
        !log.lock().unwrap().is_empty()
    })
    .await;
    let dial: Value = serde_json::from_str(&log.lock().unwrap()[0].2).unwrap();
    assert_eq!(
        (dial["interaction_id"].as_str(), dial["extension"].as_str()),
        (Some(interaction.as_str()), Some("201"))
    );
    app.stop().await;
}

/// A desktop that sends as fast as it can never has more than its few places in the
/// router's inbox: the rest waits in its own socket, not in the server's memory, and
/// every message is still handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_desktop_cannot_grow_the_routers_inbox() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const REPLIES: usize = 3000;
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::available(&app.base, &token).await;
    let mut page = Visitor::connect(&app).await;
    page.start(json!({ "type": "start", "visitor_id": "v-flood" }))
        .await;
    page.write("m1", "Hello").await;
    let interaction = ana.take_offer().await;
    drop(ana);
    // The same agent's desktop again, as a raw client that writes without pause and
    // reads on its own.
    let url = format!("{}/agent/ws", app.base.replacen("http://", "ws://", 1));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::Text(
        json!({ "type": "login", "token": token })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let queued = tokio::spawn(async move {
        let mut n = 0;
        while let Some(Ok(Message::Text(t))) = rx.next().await {
            if serde_json::from_str::<Value>(&t).unwrap()["type"] == "reply_queued" {
                n += 1;
                if n == REPLIES {
                    break;
                }
            }
        }
        n
    });
    let highest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (app_base, highest) = (app.base.clone(), highest.clone());
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            loop {
                let text = client
                    .get(format!("{app_base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let inbox = text
                    .lines()
                    .find(|l| l.starts_with("switchboard_router_inbox "))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .unwrap_or(0.0);
                highest.fetch_max(inbox as u64, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for i in 0..REPLIES {
        let frame = json!({ "type": "reply", "interaction_id": interaction, "body": format!("line {i}"), "reply_id": format!("f{i}") });
        tx.feed(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    tx.flush().await.unwrap();
    let handled = tokio::time::timeout(Duration::from_secs(60), queued)
        .await
        .expect("every reply handled within a minute")
        .unwrap();
    sampler.abort();
    assert_eq!(handled, REPLIES, "every message was handled");
    // This desktop's places, and the chat channel's notices of the replies it delivers
    // (a batch at a time); without the bound the inbox held most of the flood (thousands).
    let highest = highest.load(std::sync::atomic::Ordering::SeqCst);
    let bound = 2 * switchboard::routing::router::DESKTOP_INBOX as u64 + 32;
    assert!(
        highest <= bound,
        "the router's inbox reached {highest} (bound {bound})"
    );
    app.stop().await;
}

/// The store takes the visitor's first message but refuses to put the chat in line: the
/// message is acknowledged (it is kept), the chat is queued at a later pass once the
/// store takes it, and the agent is offered it with that message.
async fn a_chat_whose_first_message_could_not_queue_it_is_queued_at_the_next_pass(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let mut ana = Desktop::available(&app.base, &token).await;
    let refuse = (
        "CREATE TRIGGER sb_refuse BEFORE UPDATE ON interactions \
         WHEN OLD.state = 'opened' AND NEW.state = 'queued' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        "CREATE FUNCTION sb_refuse() RETURNS trigger AS $$ BEGIN \
           IF OLD.state = 'opened' AND NEW.state = 'queued' THEN RAISE EXCEPTION 'refused'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER sb_refuse BEFORE UPDATE ON interactions \
         FOR EACH ROW EXECUTE FUNCTION sb_refuse()",
    );
    db_exec(&app.database_url, refuse.0, refuse.1).await;
    let mut page = Visitor::connect(&app).await;
    let (chat_id, _) = page
        .start(json!({ "type": "start", "visitor_id": "v-refused" }))
        .await;
    // Acknowledged once kept; the step that queues it was tried before the answer.
    page.write("m1", "Hello, is anyone there?").await;
    let quiet = ana.frames_until_quiet(Duration::from_millis(1500)).await;
    assert!(
        !quiet.iter().any(|f| f["type"] == "offer"),
        "not offered while the store refuses: {quiet:?}"
    );
    let (_, i) = app
        .get(&format!("/api/interactions?channel=chat&key={chat_id}"))
        .await;
    assert_eq!(i["state"], "opened", "{i}");
    stop_refusing(&app).await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["interaction"]["body"], "Hello, is anyone there?");
    ana.accept(&offer).await;
    assert_eq!(page.expect("agent_joined").await["name"], "Ana");
    app.stop().await;
}

both_backends!(
    a_chat_whose_first_message_could_not_queue_it_is_queued_at_the_next_pass,
    an_agents_chat_reply_survives_a_store_that_cannot_read_the_chat,
    a_change_the_store_refuses_is_neither_told_nor_recorded,
    a_completion_the_store_refuses_is_never_told_as_done,
    a_chat_channel_that_falls_behind_the_router_tells_every_visitor_their_agent,
    a_dial_the_store_could_not_take_is_sent_by_callback,
    an_offer_whose_contact_cannot_be_read_is_not_shown_and_is_made_again_once_it_can,
);

/// What an offer shows is read beside the router's commit: when the store cannot read
/// it, the agent is shown no empty offer; the contact waits again, and is offered, whole,
/// once the store reads again.
async fn an_offer_whose_contact_cannot_be_read_is_not_shown_and_is_made_again_once_it_can(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ana" })).await;
    let i = app
        .contact(json!({ "customer": { "email": "unread@example.com" }, "subject": "Where is my order?" }))
        .await;
    let id = i["id"].as_str().unwrap().to_string();
    // The customers' identities cannot be read for a while (an offer shows them; the
    // router's own writes do not touch them).
    db_exec(
        &app.database_url,
        "ALTER TABLE customer_identities RENAME TO customer_identities_away",
        "ALTER TABLE customer_identities RENAME TO customer_identities_away",
    )
    .await;
    let mut ana = Desktop::available(&app.base, &token).await;
    let frames = ana.frames_until_quiet(Duration::from_millis(2500)).await;
    assert!(
        !frames.iter().any(|f| f["type"] == "offer"),
        "no offer shown without what it shows: {frames:?}"
    );
    db_exec(
        &app.database_url,
        "ALTER TABLE customer_identities_away RENAME TO customer_identities",
        "ALTER TABLE customer_identities_away RENAME TO customer_identities",
    )
    .await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], id.as_str());
    assert_eq!(offer["interaction"]["subject"], "Where is my order?");
    assert_eq!(
        offer["interaction"]["customer"]["identities"][0]["value"], "unread@example.com",
        "{offer}"
    );
    ana.accept(&offer).await;
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["state"], "assigned");
    let withdrawn: Vec<&Value> = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "offer_withdrawn")
        .collect();
    assert!(
        !withdrawn.is_empty()
            && withdrawn
                .iter()
                .all(|e| e["data"]["reason"] == "the interaction could not be read to show it"),
        "each offer not shown is in the contact's history as withdrawn: {withdrawn:?}"
    );
    app.stop().await;
}
