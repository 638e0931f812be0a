//! A reply the relay took is sent once: when the store cannot record that it went (its
//! history, its delivery), only the record is tried again, never the sending; and a
//! reply that is sent again after a crash carries the same Message-ID.

use super::*;
use crate::helpers::db_exec;

async fn a_reply_the_relay_took_is_not_sent_again_when_its_record_fails(backend: Backend) {
    let (relay, sink) = smtp_sink().await;
    let (app, _dir) = app(backend, relay, |_| {}).await;
    let (_, token) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut ann = Desktop::available(&app.base, &token).await;
    mailer(&app)
        .send(plain(
            "gil@example.com",
            "Where is my parcel",
            "It has not come.",
        ))
        .await
        .unwrap();
    let interaction = ann.take_offer().await;
    // The store refuses to mark replies delivered for now.
    db_exec(
        &app.database_url,
        "CREATE TRIGGER sb_no_mark BEFORE UPDATE ON outbox \
         WHEN NEW.id LIKE 'reply:%' AND NEW.delivered_at IS NOT NULL \
         BEGIN SELECT RAISE(ABORT, 'injected: cannot mark'); END",
        "CREATE FUNCTION sb_no_mark() RETURNS trigger AS $$ BEGIN \
           IF NEW.id LIKE 'reply:%' AND NEW.delivered_at IS NOT NULL THEN \
             RAISE EXCEPTION 'injected: cannot mark'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER sb_no_mark BEFORE UPDATE ON outbox \
         FOR EACH ROW EXECUTE FUNCTION sb_no_mark()",
    )
    .await;
    ann.send(json!({ "type": "reply", "interaction_id": interaction, "body": "It left today.", "reply_id": "once" }))
        .await;
    ann.expect("reply_queued").await;
    // The relay takes it; several passes go by with the mark refused (each pass is a
    // quarter of a second: wait for the relay, then for two more).
    for _ in 0..200 {
        if !sink.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sink.lock().unwrap().len(), 1, "the relay took the reply");
    tokio::time::sleep(Duration::from_millis(800)).await;
    db_exec(
        &app.database_url,
        "DROP TRIGGER sb_no_mark",
        "DROP TRIGGER sb_no_mark ON outbox; DROP FUNCTION sb_no_mark()",
    )
    .await;
    let sent = ann.expect("reply_sent").await;
    let message_id = sent["message_id"].as_str().unwrap().to_string();
    let got = sink.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "sent once, whatever the store did: {got:?}");
    assert!(
        got[0].2.contains(&format!("<{message_id}>")),
        "the Message-ID the agent was told is the one sent"
    );
    // Recorded once in the history.
    let (_, i) = app.get(&format!("/api/interactions/{interaction}")).await;
    let sent_events = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "email_sent")
        .count();
    assert_eq!(sent_events, 1);
    app.stop().await;
}

both_backends!(a_reply_the_relay_took_is_not_sent_again_when_its_record_fails);
