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
