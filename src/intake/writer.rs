//! The intake writer: one task that commits new contacts in groups.
//!
//! While one transaction is being made durable, the next contacts gather in the channel;
//! the writer then takes all of them (up to `max_batch`) into the next transaction. No
//! timer is involved: under light load each contact gets its own commit at once, under
//! heavy load one fsync serves hundreds. Every contact is still answered only after the
//! transaction holding it has committed.
//!
//! A failed group is retried one contact at a time, so one contact the store refuses
//! never costs its neighbours their acceptance.

use std::sync::Arc;

use serde_json::json;
use switchboard_contract::{ChannelKind, IntakeError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Committed, Job};
use crate::config::TierSettings;
use crate::customers::identity::Identity;
use crate::customers::tier;
use crate::queue::{Queue, Waiting};
use crate::store::history::NewEvent;
use crate::store::interactions::InteractionRow;
use crate::store::{customers, history, interactions, now_ms, new_id, Conn, Store};
use crate::telemetry;

const DAY_MS: i64 = 86_400_000;

pub(super) struct Writer {
    store: Store,
    tiers: TierSettings,
    queue: Arc<Queue>,
    max_batch: usize,
}

/// What one contact came to inside a transaction: committed (new or known), or refused
/// for its own sake (the transaction goes on without it).
type JobOutcome = Result<Committed, IntakeError>;

impl Writer {
    pub(super) fn new(store: Store, tiers: TierSettings, queue: Arc<Queue>, max_batch: usize) -> Self {
        Writer { store, tiers, queue, max_batch }
    }

    pub(super) async fn run(self, mut jobs: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            tokio::select! {
                n = jobs.recv_many(&mut batch, self.max_batch) => {
                    if n == 0 {
                        return;
                    }
                }
                () = shutdown.cancelled() => {
                    // Refuse new submissions, but commit every one already handed over.
                    jobs.close();
                    while jobs.recv_many(&mut batch, self.max_batch).await > 0 {
                        self.commit(std::mem::take(&mut batch)).await;
                    }
                    return;
                }
            }
            self.commit(std::mem::take(&mut batch)).await;
        }
    }

    async fn commit(&self, jobs: Vec<Job>) {
        let now = now_ms();
        match self.try_group(&jobs, now).await {
            Ok(outcomes) => {
                telemetry::batch_committed(jobs.len());
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    self.answer(job, outcome);
                }
            }
            Err(e) => {
                telemetry::batch_failed(jobs.len(), &e);
                for job in jobs {
                    let outcome = self.try_alone(&job).await;
                    self.answer(job, outcome);
                }
            }
        }
    }

    /// One contact in its own transaction, tried twice: a unique-key race with an admin
    /// edit resolves on the second try; a store that is down answers `Unavailable`.
    async fn try_alone(&self, job: &Job) -> JobOutcome {
        let mut last = None;
        for _ in 0..2 {
            match self.try_group(std::slice::from_ref(job), now_ms()).await {
                Ok(mut outcomes) => return outcomes.pop().expect("one outcome per job"),
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("at least one try");
        tracing::error!(error = %e, channel = job.new.channel.as_str(), "A contact could not be committed; it was refused, not accepted");
        Err(IntakeError::Unavailable("the store could not commit the contact".into()))
    }

    async fn try_group(&self, jobs: &[Job], now: i64) -> Result<Vec<JobOutcome>, sqlx::Error> {
        let mut tx = self.store.pool().begin().await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(self.one(&mut tx, job, now).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Resolves the customer, decides the tier, writes the interaction and its history.
    async fn one(&self, conn: &mut Conn, job: &Job, now: i64) -> Result<JobOutcome, sqlx::Error> {
        let channel = job.new.channel.as_str();
        if let Some(known) = interactions::by_key(conn, channel, &job.new.idempotency_key).await? {
            if known.request_hash != job.hash {
                return Ok(Err(IntakeError::KeyReused));
            }
            return Ok(Ok(Committed { interaction: known, created: false }));
        }
        let (customer_id, mut events) = resolve_customer(conn, job, now).await?;
        let customer = customers::get(conn, &customer_id).await?.ok_or(sqlx::Error::RowNotFound)?;
        let value = customers::value_data(conn, &customer, now - i64::from(self.tiers.window_days) * DAY_MS).await?;
        let decision = tier::decide(&self.tiers, &value, now);
        let row = InteractionRow {
            id: new_id(),
            channel: channel.to_string(),
            idempotency_key: job.new.idempotency_key.clone(),
            request_hash: job.hash.clone(),
            customer_id: customer.id.clone(),
            tier: decision.tier.clone(),
            tier_source: serde_json::to_value(decision.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            tier_reason: decision.reason.clone(),
            topic: job.new.topic.clone(),
            subject: job.new.subject.clone(),
            body: job.new.body.clone(),
            state: "queued".into(),
            created_at: now,
            updated_at: now,
        };
        interactions::insert(conn, &row).await?;
        let about = |kind, data| NewEvent {
            customer_id: customer.id.clone(),
            interaction_id: Some(row.id.clone()),
            kind,
            actor: "system".into(),
            data,
        };
        events.push(about(
            "interaction_received",
            json!({ "channel": channel, "topic": row.topic, "subject": row.subject, "idempotency_key": row.idempotency_key }),
        ));
        events.push(about("tier_decided", json!({ "tier": decision.tier, "source": decision.source, "reason": decision.reason })));
        events.push(about("queued", json!({ "tier": decision.tier })));
        history::append(conn, &events, now).await?;
        Ok(Ok(Committed { interaction: row, created: true }))
    }

    fn answer(&self, job: Job, outcome: JobOutcome) {
        let channel = job.new.channel.as_str();
        if let Ok(c) = &outcome {
            // A retry of a contact whose first commit was uncertain finds it stored but
            // perhaps not yet queued in memory; queueing is idempotent, so queue it anyway.
            if c.interaction.state == "queued" {
                self.queue.push_all([waiting(&c.interaction)]);
            }
            if c.created {
                telemetry::interaction_queued(channel, &c.interaction.tier, job.submitted.elapsed());
            } else {
                telemetry::interaction_duplicate(channel);
            }
        }
        // The submitter may have gone (a client hung up); the contact is committed anyway.
        let _ = job.reply.send(outcome);
    }
}

/// The queue entry for a stored interaction.
pub fn waiting(i: &InteractionRow) -> Waiting {
    Waiting {
        interaction_id: i.id.clone(),
        tier: i.tier.clone(),
        channel: ChannelKind::parse(&i.channel).unwrap_or(ChannelKind::Api),
        topic: i.topic.clone(),
        enqueued_at: i.created_at,
    }
}

/// Finds the customer by the contact's identities (most trusted first), or creates one,
/// and gives it the identities nobody owns yet. Identities owned by someone else are not
/// moved: that is a merge, which only an admin decides; it is noted in the history.
async fn resolve_customer(conn: &mut Conn, job: &Job, now: i64) -> Result<(String, Vec<NewEvent>), sqlx::Error> {
    let owners = customers::owners(conn, &job.identities).await?;
    let owner_of = |id: &Identity| owners.iter().find(|(i, _)| i == id).map(|(_, c)| c.clone());
    let found = job.identities.iter().find_map(owner_of);
    let mut events = Vec::new();
    let name = job.new.customer.name.as_deref();
    let customer_id = match found {
        Some(id) => {
            if let Some(name) = name {
                customers::name_if_unnamed(conn, &id, name, now).await?;
            }
            id
        }
        None => {
            let id = new_id();
            customers::create(conn, &id, name, now).await?;
            events.push(NewEvent {
                customer_id: id.clone(),
                interaction_id: None,
                kind: "customer_created",
                actor: "system".into(),
                data: json!({ "channel": job.new.channel.as_str(), "name": name }),
            });
            id
        }
    };
    for identity in &job.identities {
        match owner_of(identity) {
            None => {
                customers::add_identity(conn, &customer_id, identity, now).await?;
                events.push(NewEvent {
                    customer_id: customer_id.clone(),
                    interaction_id: None,
                    kind: "identity_added",
                    actor: "system".into(),
                    data: json!({ "kind": identity.kind, "value": identity.value, "channel": job.new.channel.as_str() }),
                });
            }
            Some(other) if other != customer_id => events.push(NewEvent {
                customer_id: customer_id.clone(),
                interaction_id: None,
                kind: "possible_duplicate",
                actor: "system".into(),
                data: json!({
                    "kind": identity.kind,
                    "value": identity.value,
                    "other_customer_id": other,
                    "note": "one contact named identities of two customers; merge them if they are one person"
                }),
            }),
            Some(_) => {}
        }
    }
    Ok((customer_id, events))
}
