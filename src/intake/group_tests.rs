//! The writer's handling of a group: contacts are handed over before the writer starts,
//! so they all land in one transaction.

use std::sync::Arc;
use std::time::Duration;

use switchboard_contract::{ChannelKind, CustomerHint, IntakeError, NewInteraction};
use tokio_util::sync::CancellationToken;

use super::{parts, Committed};
use crate::config::Settings;
use crate::queue::Queue;
use crate::store::Store;

pub(crate) fn contact(key: &str, email: &str, subject: &str) -> NewInteraction {
    NewInteraction {
        channel: ChannelKind::Email,
        idempotency_key: key.into(),
        customer: CustomerHint {
            email: Some(email.into()),
            ..Default::default()
        },
        topic: None,
        subject: Some(subject.into()),
        body: None,
        preferred_agent: None,
        not_before_ms: None,
        waits_for_first_message: false,
        first_event: None,
    }
}

/// Submits `contacts` all before the writer starts, then starts it; answers in order.
pub(crate) async fn one_group(
    store: &Store,
    contacts: Vec<NewInteraction>,
) -> (Vec<Result<Committed, IntakeError>>, Arc<Queue>) {
    let settings = Settings::defaults();
    let queue = Arc::new(Queue::new(settings.tiers.order.clone(), []));
    let (service, writer, jobs, _) = parts(
        store.clone(),
        &settings,
        queue.clone(),
        crate::service::Services::new(
            0,
            std::sync::Arc::new(
                crate::routing::rules::Rules::parse(crate::routing::rules::DEFAULT_TOML, "default")
                    .unwrap(),
            ),
        ),
    );
    let service = Arc::new(service);
    let n = contacts.len();
    let mut answers = Vec::new();
    for c in contacts {
        let submitter = service.clone();
        answers.push(tokio::spawn(async move { submitter.submit_full(c).await }));
        // Keep the hand-over order: wait until this one is in the channel.
        while service.jobs.max_capacity() - service.jobs.capacity() < answers.len() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(service.jobs.max_capacity() - service.jobs.capacity(), n);
    let stop = CancellationToken::new();
    let running = tokio::spawn(writer.run(jobs, stop.clone()));
    let mut out = Vec::new();
    for a in answers {
        out.push(a.await.unwrap());
    }
    stop.cancel();
    running.await.unwrap();
    (out, queue)
}

pub(crate) async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (Store::connect(&url, 2).await.unwrap(), dir)
}

async fn count(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM interactions")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn retries_and_reused_keys_inside_one_group_are_told_apart() {
    let (store, _dir) = store().await;
    let (answers, queue) = one_group(
        &store,
        vec![
            contact("a", "x@example.com", "first"),
            contact("a", "x@example.com", "first"),
            contact("a", "x@example.com", "different"),
            contact("e", "X@example.com", "second"),
        ],
    )
    .await;
    let a = answers[0].as_ref().unwrap();
    let again = answers[1].as_ref().unwrap();
    assert!(a.created && !again.created);
    assert_eq!(a.interaction.id, again.interaction.id);
    assert_eq!(answers[2].as_ref().unwrap_err(), &IntakeError::KeyReused);
    let e = answers[3].as_ref().unwrap();
    assert!(e.created);
    assert_eq!(
        e.interaction.customer_id, a.interaction.customer_id,
        "the customer created in the group is found by the next contact"
    );
    assert_eq!(count(&store).await, 2);
    assert_eq!(queue.len(), 2);
}

#[tokio::test]
async fn a_contact_the_store_refuses_costs_its_neighbours_nothing() {
    let (store, _dir) = store().await;
    // The store refuses one contact (as a full disk or a broken row would): the group
    // fails, and each contact is retried on its own.
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON interactions WHEN NEW.subject = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let (answers, queue) = one_group(
        &store,
        vec![
            contact("a", "a@example.com", "fine"),
            contact("p", "p@example.com", "poison"),
            contact("b", "b@example.com", "fine"),
        ],
    )
    .await;
    assert!(answers[0].as_ref().unwrap().created);
    assert!(
        matches!(answers[1], Err(IntakeError::Unavailable(_))),
        "{:?}",
        answers[1]
    );
    assert!(answers[2].as_ref().unwrap().created);
    assert_eq!(count(&store).await, 2);
    assert_eq!(queue.len(), 2);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM customer_identities WHERE value = 'p@example.com'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(orphans, 0, "nothing of the refused contact was kept");
}

fn ringing(key: &str, from: &str) -> NewInteraction {
    NewInteraction {
        channel: ChannelKind::Phone,
        customer: CustomerHint {
            phone: Some(from.into()),
            ..Default::default()
        },
        first_event: Some(switchboard_contract::FirstEvent {
            event_key: format!("{key}:ringing"),
            kind: "call_ringing".into(),
            data: serde_json::json!({ "to": "+441234", "private": { "secret": "s" } }),
            fingerprint: None,
            files: Vec::new(),
        }),
        ..contact(key, "unused@example.com", "Inbound call")
    }
}

#[tokio::test]
async fn a_contacts_first_event_is_recorded_in_its_commit_once_and_its_private_part_is_not_shown() {
    use switchboard_contract::Recorded;
    let (store, _dir) = store().await;
    let mut phone = ringing("twilio:CA1", "+4915112345678");
    phone.customer.email = None;
    // The same ringing delivered twice in one group, then again in a later one.
    let (answers, _) = one_group(&store, vec![phone.clone(), phone.clone()]).await;
    let first = answers[0].as_ref().unwrap();
    let id = first.interaction.id.clone();
    let new = Recorded::New {
        interaction_id: id.clone(),
        state: "queued".into(),
        agent_id: None,
    };
    assert_eq!(first.first_event, Some(new));
    assert_eq!(
        answers[1].as_ref().unwrap().first_event,
        Some(Recorded::Duplicate)
    );
    let (later, _) = one_group(&store, vec![phone]).await;
    let later = later[0].as_ref().unwrap();
    assert!(!later.created);
    assert_eq!(later.first_event, Some(Recorded::Duplicate));

    let mut conn = store.pool().acquire().await.unwrap();
    let history = crate::store::history::page(&mut conn, &first.interaction.customer_id, None, 50)
        .await
        .unwrap();
    let ringing: Vec<_> = history
        .iter()
        .filter(|e| e.kind == "call_ringing")
        .collect();
    assert_eq!(ringing.len(), 1, "recorded once");
    assert_eq!(ringing[0].actor, "phone");
    assert_eq!(ringing[0].data, serde_json::json!({ "to": "+441234" }));
    assert!(
        history.iter().position(|e| e.kind == "call_ringing")
            < history.iter().position(|e| e.kind == "queued"),
        "the ringing follows the contact's own events (newest first)"
    );
    let kept: String = sqlx::query_scalar(
        "SELECT data FROM channel_events WHERE event_key = 'twilio:CA1:ringing'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(
        kept.contains("secret"),
        "the channel keeps its private part"
    );
}

#[tokio::test]
async fn a_first_event_of_a_contact_known_before_is_recorded_with_the_state_it_is_in() {
    use switchboard_contract::Recorded;
    let (store, _dir) = store().await;
    // A hang-up made the call known (no ringing), and it was abandoned.
    let mut hang_up = ringing("native:c2", "+4915112345679");
    hang_up.customer.email = None;
    let ring = hang_up.clone();
    hang_up.first_event = None;
    let (made, _) = one_group(&store, vec![hang_up]).await;
    let id = made[0].as_ref().unwrap().interaction.id.clone();
    sqlx::query("UPDATE interactions SET state = 'abandoned' WHERE id = $1")
        .bind(&id)
        .execute(store.pool())
        .await
        .unwrap();
    let (answers, queue) = one_group(&store, vec![ring]).await;
    let late = answers[0].as_ref().unwrap();
    assert!(!late.created, "the same call, whatever its event says");
    assert_eq!(
        late.first_event,
        Some(Recorded::New {
            interaction_id: id,
            state: "abandoned".into(),
            agent_id: None,
        })
    );
    assert_eq!(queue.len(), 0, "an abandoned call is not queued again");
}

fn mail(key: &str, fingerprint: &str) -> NewInteraction {
    NewInteraction {
        first_event: Some(switchboard_contract::FirstEvent {
            event_key: format!("message:{key}"),
            kind: "email_received".into(),
            data: serde_json::json!({ "subject": "Invoice" }),
            fingerprint: Some(fingerprint.into()),
            files: vec![switchboard_contract::Attachment {
                name: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                size: 4,
                data: Some(b"%PDF".to_vec()),
            }],
        }),
        ..contact(key, "payer@example.com", "Invoice")
    }
}

#[tokio::test]
async fn a_mails_files_come_with_its_commit_and_another_message_under_its_key_is_left_to_the_channel(
) {
    use switchboard_contract::Recorded;
    let (store, _dir) = store().await;
    let (answers, _) = one_group(&store, vec![mail("<m1@x>", "f1")]).await;
    let first = answers[0].as_ref().unwrap();
    assert!(matches!(first.first_event, Some(Recorded::New { .. })));
    let files: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, size FROM attachments WHERE interaction_id = $1")
            .bind(&first.interaction.id)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(files, [("invoice.pdf".to_string(), 4)]);
    // The same message again: a duplicate, its file stored once.
    let (again, _) = one_group(&store, vec![mail("<m1@x>", "f1")]).await;
    assert_eq!(
        again[0].as_ref().unwrap().first_event,
        Some(Recorded::Duplicate)
    );
    // Another message under the same key (a contact known by its key, its event not
    // this message): not recorded with it, for the channel to record apart.
    let mut other = mail("<m1@x>", "f2");
    other.first_event.as_mut().unwrap().data = serde_json::json!({ "subject": "Other" });
    let (reused, _) = one_group(&store, vec![other]).await;
    assert_eq!(reused[0].as_ref().unwrap().first_event, None);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachments")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1, "nothing of the other message was stored");
}
