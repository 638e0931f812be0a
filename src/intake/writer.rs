//! The intake writer: one task that commits new contacts in groups.
//!
//! While one transaction is being made durable, the next contacts gather in the channel;
//! the writer then takes all of them (up to `max_batch`) into the next transaction. No
//! timer is involved under light load: each contact gets its own commit at once. Once
//! busy, the writer holds each group open for `storage.commit_window_ms` (see `window`),
//! and under heavy load one fsync serves hundreds. Every contact is still answered only
//! after the transaction holding it has committed.
//!
//! A failed group is retried one contact at a time, so one contact the store refuses
//! never costs its neighbours their acceptance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_contract::{ChannelKind, FirstEvent, IntakeError, Recorded};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::window::Window;
use super::{next_jobs, Committed, Job};
use crate::admission::Admission;
use crate::config::TierSettings;
use crate::customers::identity::Identity;
use crate::customers::tier::{self, ValueData};
use crate::queue::{Queue, Waiting};
use crate::service::Services;
use crate::store::customers::CustomerRow;
use crate::store::history::NewEvent;
use crate::store::interactions::InteractionRow;
use crate::store::{self, customers, history, interactions, new_id, now_ms, outbox, Conn, Store};
use crate::telemetry;

const DAY_MS: i64 = 86_400_000;

pub(super) struct Writer {
    store: Store,
    tiers: TierSettings,
    queue: Arc<Queue>,
    services: Arc<Services>,
    max_batch: usize,
    /// How long a busy group is held open (`storage.commit_window_ms`).
    window: Duration,
    /// Past capacity, refuses some new contacts before anything of them is written.
    admission: Arc<Admission>,
    /// Set when a commit failed in a way that leaves its outcome unknown.
    uncertain: AtomicBool,
}

fn unavailable() -> IntakeError {
    IntakeError::Unavailable("the store could not commit the contact".into())
}

/// What one contact came to inside a transaction: committed (new or known), or refused
/// for its own sake (the transaction goes on without it).
type JobOutcome = Result<Committed, IntakeError>;

impl Writer {
    pub(super) fn new(
        store: Store,
        tiers: TierSettings,
        queue: Arc<Queue>,
        services: Arc<Services>,
        max_batch: usize,
        window: Duration,
        admission: Arc<Admission>,
    ) -> Self {
        Writer {
            store,
            tiers,
            queue,
            services,
            max_batch,
            window,
            admission,
            uncertain: AtomicBool::new(false),
        }
    }

    pub(super) async fn run(self, mut jobs: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut window = Window::new(self.window);
        // On shutdown new submissions are refused, but every one already handed over is
        // committed.
        while next_jobs(&mut jobs, &mut batch, self.max_batch, &shutdown).await {
            window.fill(&mut jobs, &mut batch, self.max_batch).await;
            let items = batch.len();
            self.commit(std::mem::take(&mut batch)).await;
            window.committed(items);
        }
    }

    async fn commit(&self, jobs: Vec<Job>) {
        // A contact that waited past the bound is refused, not acknowledged late (its
        // sender retries, or has given up already): the line keeps moving for the rest.
        let jobs = match self.admission.max_wait() {
            Some(bound) => {
                let (late, jobs): (Vec<Job>, Vec<Job>) = jobs
                    .into_iter()
                    .partition(|j| j.submitted.elapsed() > bound);
                if !late.is_empty() {
                    tracing::warn!(
                        contacts = late.len(),
                        "New contacts waited past admission.max_wait_ms for their commit; refused"
                    );
                }
                let retry_after_secs = self.admission.retry_after_secs();
                for job in late {
                    self.admission.refused_late(job.new.channel);
                    job.answer(Err(IntakeError::Overloaded { retry_after_secs }));
                }
                if jobs.is_empty() {
                    return;
                }
                jobs
            }
            None => jobs,
        };
        let now = now_ms();
        // While the group waits for the store, its oldest contact's wait is the lag
        // admission control sees, as it grows, not only once committed.
        if let Some(oldest) = jobs.iter().map(|j| j.submitted).min() {
            self.admission.committing(Some(oldest));
        }
        match self.try_group(&jobs, now).await {
            Ok(outcomes) => {
                telemetry::batch_committed(jobs.len());
                self.answer(jobs.into_iter().zip(outcomes).collect());
                self.resync_if_needed().await;
            }
            // The store cannot be reached or is busy: every contact in the group would
            // fail alike, so refuse them all now and let their channels retry, rather
            // than wait out a timeout per contact.
            Err(e) if store::is_unavailable(&e) => {
                telemetry::batch_failed(jobs.len(), &e);
                self.mark_uncertain();
                let refused = jobs.into_iter().map(|j| (j, Err(unavailable()))).collect();
                self.answer(refused);
            }
            Err(e) => {
                telemetry::batch_failed(jobs.len(), &e);
                self.mark_uncertain();
                for job in jobs {
                    let outcome = self.try_alone(&job).await;
                    self.answer(vec![(job, outcome)]);
                }
                self.resync_if_needed().await;
            }
        }
    }

    /// One contact in its own transaction, tried twice: a race with another writer
    /// (an admin claiming an identity) resolves on the second try; a contact the store
    /// refuses twice is refused, and its channel told to retry.
    async fn try_alone(&self, job: &Job) -> JobOutcome {
        let mut last = None;
        for _ in 0..2 {
            match self.try_group(std::slice::from_ref(job), now_ms()).await {
                Ok(mut outcomes) => return outcomes.pop().expect("one outcome per job"),
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("at least one try");
        tracing::error!(
            error = %e,
            channel = job.new.channel.as_str(),
            "A contact could not be committed; it was refused, not accepted"
        );
        Err(unavailable())
    }

    /// A failed commit may still have reached the disk (the connection broke after
    /// COMMIT was sent). Such a contact is in the store but was answered as refused and
    /// is not in the queue; the next successful commit reloads the queue to find it.
    fn mark_uncertain(&self) {
        self.uncertain.store(true, Ordering::Relaxed);
    }

    async fn resync_if_needed(&self) {
        if !self.uncertain.swap(false, Ordering::Relaxed) {
            return;
        }
        let reloaded = async {
            let mut conn = self.store.pool().acquire().await?;
            interactions::in_state(&mut conn, "queued").await
        };
        match reloaded.await {
            Ok(rows) => self.queue.push_all(rows.iter().map(waiting)),
            Err(_) => self.mark_uncertain(),
        }
    }

    async fn try_group(&self, jobs: &[Job], now: i64) -> Result<Vec<JobOutcome>, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let outcomes = self.process(&mut tx, jobs, now).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Writes a group of contacts with a fixed number of statements, whatever its size:
    /// known keys and identity owners are read in one query each, customers are resolved
    /// in memory, and customers, identities, interactions and history are written with
    /// multi-row INSERTs.
    async fn process(
        &self,
        conn: &mut Conn,
        jobs: &[Job],
        now: i64,
    ) -> Result<Vec<JobOutcome>, sqlx::Error> {
        let keys: Vec<&str> = jobs
            .iter()
            .map(|j| j.new.idempotency_key.as_str())
            .collect();
        let known: HashMap<(String, String), InteractionRow> = interactions::by_keys(conn, &keys)
            .await?
            .into_iter()
            .map(|r| ((r.channel.clone(), r.idempotency_key.clone()), r))
            .collect();
        // Claimed addresses are looked up too, to tell the agent whom they would name.
        let mut identities: Vec<Identity> = jobs
            .iter()
            .flat_map(|j| j.identities.iter().chain(&j.claimed).cloned())
            .collect();
        identities.sort();
        identities.dedup();
        let mut owner: HashMap<Identity, String> = customers::owners(conn, &identities)
            .await?
            .into_iter()
            .collect();

        let mut slots = Vec::with_capacity(jobs.len());
        let mut first_of_key: HashMap<(&str, &str), usize> = HashMap::new();
        let mut new_customers = Vec::new();
        let mut new_identities = Vec::new();
        // Per new interaction: its job and customer, the customer events it caused, and
        // what its claimed address says.
        let mut pending: Vec<(usize, String, Vec<NewEvent>, Option<Value>)> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let channel = job.new.channel.as_str();
            let key = job.new.idempotency_key.as_str();
            if let Some(k) = known.get(&(channel.to_string(), key.to_string())) {
                slots.push(if k.request_hash == job.hash {
                    Slot::Done(Box::new(Ok(Committed {
                        interaction: k.clone(),
                        created: false,
                        first_event: None,
                    })))
                } else {
                    Slot::Done(Box::new(Err(IntakeError::KeyReused)))
                });
                continue;
            }
            if let Some(&first) = first_of_key.get(&(channel, key)) {
                slots.push(if jobs[first].hash == job.hash {
                    Slot::SameAs(first)
                } else {
                    Slot::Done(Box::new(Err(IntakeError::KeyReused)))
                });
                continue;
            }
            first_of_key.insert((channel, key), i);
            let (customer_id, events) =
                resolve_customer(job, &mut owner, &mut new_customers, &mut new_identities);
            let claim = job.claimed.as_ref().map(|c| {
                let named = owner.get(c);
                json!({
                    "email": c.value,
                    "verified": false,
                    "customer_id": named,
                    "same_customer": named == Some(&customer_id),
                })
            });
            slots.push(Slot::New(pending.len()));
            pending.push((i, customer_id, events, claim));
        }
        customers::create_many(conn, &new_customers, now).await?;
        let given = customers::add_identities(conn, &new_identities, now).await?;
        if given != new_identities.len() as u64 {
            // Someone else (an admin, an import, another node) claimed one of these
            // identities since they were read: retry, and the retry will see the owner.
            return Err(sqlx::Error::Protocol(
                "an identity was claimed by another writer during the commit".into(),
            ));
        }

        let mut ids: Vec<String> = pending.iter().map(|(_, c, _, _)| c.clone()).collect();
        ids.sort();
        ids.dedup();
        let window_start = now - i64::from(self.tiers.window_days) * DAY_MS;
        // An admin's change to one of these customers commits wholly before the tiers
        // are decided here, or decides these contacts again after this commit.
        crate::customers::waiting::lock(conn, &ids, true).await?;
        let mut loaded: HashMap<String, (CustomerRow, ValueData)> =
            customers::with_value_data(conn, &ids, window_start)
                .await?
                .into_iter()
                .map(|(c, v)| (c.id.clone(), (c, v)))
                .collect();

        // The commitments in force when these contacts arrived: their calendars decide
        // when they are routed, their policies when each answer is due.
        let service = self.services.get();
        let served_at = store::service_time(now);
        // A chat that waits for its first message is no complaint yet: it becomes one when
        // the visitor writes (`Core::first_message`).
        let is_complaint = |job: &Job| {
            !job.new.waits_for_first_message && service.is_complaint(job.new.topic.as_deref())
        };
        let complaint_customers: Vec<String> = pending
            .iter()
            .filter(|(i, _, _, _)| is_complaint(&jobs[*i]))
            .map(|(_, c, _, _)| c.clone())
            .collect();
        let mut complaints = if complaint_customers.is_empty() {
            HashMap::new()
        } else {
            store::service::open_complaints(conn, &complaint_customers).await?
        };
        let mut deadlines = Vec::new();
        let mut rows = Vec::with_capacity(pending.len());
        let mut events = Vec::with_capacity(pending.len() * 3);
        for (i, customer_id, customer_events, claim) in pending {
            let job = &jobs[i];
            let (customer, value) = loaded
                .get_mut(&customer_id)
                .ok_or(sqlx::Error::RowNotFound)?;
            if let (None, Some(name)) = (&customer.name, &job.new.customer.name) {
                customers::name_if_unnamed(conn, &customer.id, name, now).await?;
                customer.name = Some(name.clone());
            }
            let decision = tier::decide(&self.tiers, value, now);
            let channel = job.new.channel;
            let opens_at = service
                .opens_at(&decision.tier, channel, served_at)
                .max(job.new.not_before_ms.filter(|t| *t > served_at));
            let id = new_id();
            // A complaint joins the customer's open one (its owner goes first), or opens
            // one with its deadline.
            let mut preferred = job.new.preferred_agent.clone();
            let mut complaint_event = None;
            let complaint_id = if is_complaint(job) {
                let topic = job.new.topic.clone().unwrap_or_default();
                let open = match complaints.get(&customer_id) {
                    Some(c) => c.clone(),
                    None => {
                        let c = store::service::open_complaint(
                            conn,
                            &service,
                            &customer_id,
                            &topic,
                            served_at,
                        )
                        .await?;
                        complaint_event = Some(
                            json!({ "complaint_id": c.id, "due_at": store::rfc3339(c.due_at) }),
                        );
                        complaints.insert(customer_id.clone(), c.clone());
                        c
                    }
                };
                if let Some(owner) = &open.owner_agent_id {
                    preferred = crate::service::watch::substitute(conn, owner, served_at).await?;
                }
                Some(open.id)
            } else {
                None
            };
            // A chat the visitor opened waits for its first message: kept, but neither
            // queued nor due anything until then (`Core::first_message`).
            let waits = job.new.waits_for_first_message;
            // Targets count from when it is served: the opening, for one taken while
            // closed.
            for d in service
                .deadlines(
                    &decision.tier,
                    job.new.topic.as_deref(),
                    channel,
                    opens_at.unwrap_or(served_at),
                )
                .into_iter()
                .filter(|_| !waits)
            {
                deadlines.push((id.clone(), channel, d));
            }
            let row = InteractionRow {
                id,
                channel: job.new.channel.as_str().to_string(),
                idempotency_key: job.new.idempotency_key.clone(),
                request_hash: job.hash.clone(),
                customer_id: customer_id.clone(),
                tier: decision.tier.clone(),
                tier_source: decision.source.as_str().to_string(),
                tier_reason: decision.reason.clone(),
                topic: job.new.topic.clone(),
                subject: job.new.subject.clone(),
                body: job.new.body.clone(),
                state: if waits { "opened" } else { "queued" }.into(),
                created_at: now,
                updated_at: now,
                agent_id: None,
                disposition: None,
                notes: None,
                preferred_agent_id: preferred,
                opens_at,
                complaint_id,
            };
            events.extend(customer_events);
            let about = |kind, data| NewEvent {
                customer_id: customer_id.clone(),
                interaction_id: Some(row.id.clone()),
                kind,
                actor: "system".into(),
                data,
            };
            // One waiting for its first message is received (and counted so) when the
            // customer writes.
            if !waits {
                events.push(about(
                    "interaction_received",
                    json!({ "channel": row.channel, "topic": row.topic, "subject": row.subject, "idempotency_key": row.idempotency_key }),
                ));
            }
            if let Some(claim) = claim {
                events.push(about("email_claimed", claim));
            }
            if let Some(opened) = complaint_event {
                events.push(about("complaint_opened", opened));
            }
            if let Some(at) = opens_at {
                events.push(about(
                    "held_until_open",
                    json!({ "opens_at": store::rfc3339(at) }),
                ));
            }
            events.push(about("tier_decided", json!({ "tier": decision.tier, "source": decision.source, "reason": decision.reason })));
            events.push(if waits {
                about(
                    "opened",
                    json!({ "channel": row.channel, "topic": row.topic, "waits_for": "first_message" }),
                )
            } else {
                about("queued", json!({ "tier": decision.tier }))
            });
            rows.push(row);
        }
        interactions::insert_many(conn, &rows).await?;
        store::service::insert_deadlines(conn, &deadlines, served_at).await?;
        history::append(conn, &events, now).await?;
        // On a cluster, the leader takes them up at this commit, whichever node it is.
        let ids: Vec<String> = rows
            .iter()
            .filter(|r| r.state == "queued")
            .map(|r| r.id.clone())
            .collect();
        crate::cluster::bus::queued(conn, self.store.backend(), &ids).await?;

        let mut outcomes: Vec<JobOutcome> = Vec::with_capacity(jobs.len());
        for slot in &slots {
            outcomes.push(match slot {
                Slot::Done(o) => (**o).clone(),
                Slot::New(p) => Ok(Committed {
                    interaction: rows[*p].clone(),
                    created: true,
                    first_event: None,
                }),
                Slot::SameAs(first) => match &slots[*first] {
                    Slot::New(p) => Ok(Committed {
                        interaction: rows[*p].clone(),
                        created: false,
                        first_event: None,
                    }),
                    _ => unreachable!("a key's first contact in a group is always new"),
                },
            });
        }
        record_first_events(conn, jobs, &mut outcomes, now).await?;
        Ok(outcomes)
    }

    /// Queues what was committed, then answers every submitter.
    fn answer(&self, answered: Vec<(Job, JobOutcome)>) {
        // A retry of a contact whose first commit was uncertain finds it stored but
        // perhaps not yet queued in memory; queueing is idempotent, so queue it anyway.
        self.queue
            .push_all(answered.iter().filter_map(|(_, o)| match o {
                Ok(c) if c.interaction.state == "queued" => Some(waiting(&c.interaction)),
                _ => None,
            }));
        if let Some(longest) = answered.iter().map(|(j, _)| j.submitted.elapsed()).max() {
            self.admission.committed_after(longest);
        }
        self.admission.committing(None);
        for (job, outcome) in answered {
            let channel = job.new.channel.as_str();
            match &outcome {
                Ok(c) if c.created => telemetry::interaction_queued(
                    channel,
                    &c.interaction.tier,
                    job.submitted.elapsed(),
                ),
                Ok(_) => telemetry::interaction_duplicate(channel),
                Err(_) => {}
            }
            job.answer(outcome);
        }
    }
}

/// Records the channel's first event of each contact that carries one, in the contact's
/// own commit (a call's ringing costs it no commit of its own): the events in one
/// statement, each key once as [`outbox::record_events`] keeps them, and their history in
/// one. A contact known before (a retry, or a call its hang-up made known) gets its event
/// too, with the state it is in.
async fn record_first_events(
    conn: &mut Conn,
    jobs: &[Job],
    outcomes: &mut [JobOutcome],
    now: i64,
) -> Result<(), sqlx::Error> {
    let carried: Vec<(usize, &FirstEvent, &InteractionRow)> = jobs
        .iter()
        .zip(outcomes.iter())
        .enumerate()
        .filter_map(|(i, (job, outcome))| {
            Some((
                i,
                job.new.first_event.as_ref()?,
                &outcome.as_ref().ok()?.interaction,
            ))
        })
        .collect();
    if carried.is_empty() {
        return Ok(());
    }
    let rows: Vec<outbox::EventRow> = carried
        .iter()
        .map(|(i, event, contact)| outbox::EventRow {
            channel: jobs[*i].new.channel.as_str(),
            event_key: &event.event_key,
            contact_key: &jobs[*i].new.idempotency_key,
            interaction_id: Some(&contact.id),
            kind: &event.kind,
            data: event.data.to_string(),
            fingerprint: event.fingerprint.as_deref(),
        })
        .collect();
    let shown: Vec<Option<String>> = carried
        .iter()
        .map(|(_, event, _)| history::without_private(&event.data))
        .collect();
    let mut new = outbox::record_events(conn, &rows, now).await?;
    let mut entries = Vec::new();
    let mut recorded = Vec::with_capacity(carried.len());
    for (((i, event, contact), row), shown) in carried.iter().zip(&rows).zip(&shown) {
        // A key is new once: the same event twice in a group is recorded by the first.
        if !new.remove(&(row.channel.to_string(), row.event_key.to_string())) {
            // The same key with another message's digest is another message: left to
            // its channel, which records it apart.
            if !outbox::reused(conn, row.channel, row.event_key, row.fingerprint).await? {
                recorded.push((*i, Recorded::Duplicate));
            }
            continue;
        }
        if !event.files.is_empty() {
            store::channel::attach_files(conn, &contact.id, row.event_key, &event.files, now)
                .await?;
        }
        entries.push(history::ChannelEntry {
            customer_id: &contact.customer_id,
            interaction_id: &contact.id,
            kind: row.kind,
            actor: row.channel,
            data: shown.as_deref().unwrap_or(&row.data),
        });
        recorded.push((
            *i,
            Recorded::New {
                interaction_id: contact.id.clone(),
                state: contact.state.clone(),
                agent_id: contact.agent_id.clone(),
            },
        ));
    }
    history::append_channel(conn, &entries, now).await?;
    for (i, r) in recorded {
        if let Ok(c) = &mut outcomes[i] {
            c.first_event = Some(r);
        }
    }
    Ok(())
}

/// The queue entry for a stored interaction.
pub fn waiting(i: &InteractionRow) -> Waiting {
    Waiting {
        interaction_id: i.id.clone(),
        customer_id: i.customer_id.clone(),
        tier: i.tier.clone(),
        channel: ChannelKind::parse(&i.channel).unwrap_or(ChannelKind::Api),
        topic: i.topic.clone(),
        contact_key: i.idempotency_key.clone(),
        preferred_agent: i.preferred_agent_id.clone(),
        // One taken while closed waits from the opening: its wait, as the router orders
        // by it and the service level counts it, is in open time.
        enqueued_at: i.opens_at.map_or(i.created_at, |o| {
            o.max(i.created_at).min(crate::store::now_ms())
        }),
        not_before: i.opens_at,
    }
}

/// What became of one contact while its group is planned.
enum Slot {
    /// Answered without writing: a known key (the earlier interaction) or a reused one.
    Done(Box<JobOutcome>),
    /// A new interaction: its index among the rows to write.
    New(usize),
    /// The same contact delivered twice within the group: answered like that job.
    SameAs(usize),
}

/// Finds the customer by the contact's identities (most trusted first), or plans a new
/// one, and gives it the identities nobody owns yet. Identities owned by someone else
/// are not moved: that is a merge, which only an admin decides; it is noted in the
/// history. `owner` is updated so later contacts in the same group see the result.
fn resolve_customer(
    job: &Job,
    owner: &mut HashMap<Identity, String>,
    new_customers: &mut Vec<(String, Option<String>)>,
    new_identities: &mut Vec<(Identity, String)>,
) -> (String, Vec<NewEvent>) {
    let channel = job.new.channel.as_str();
    let mut events = Vec::new();
    let event = |customer_id: &str, kind, data| NewEvent {
        customer_id: customer_id.to_string(),
        interaction_id: None,
        kind,
        actor: "system".into(),
        data,
    };
    let customer_id = match job.identities.iter().find_map(|id| owner.get(id).cloned()) {
        Some(id) => id,
        None => {
            let id = new_id();
            new_customers.push((id.clone(), job.new.customer.name.clone()));
            events.push(event(
                &id,
                "customer_created",
                json!({ "channel": channel, "name": job.new.customer.name }),
            ));
            id
        }
    };
    for identity in &job.identities {
        match owner.get(identity) {
            None => {
                owner.insert(identity.clone(), customer_id.clone());
                new_identities.push((identity.clone(), customer_id.clone()));
                events.push(event(
                    &customer_id,
                    "identity_added",
                    json!({ "kind": identity.kind, "value": identity.value, "channel": channel }),
                ));
            }
            Some(other) if *other != customer_id => events.push(event(
                &customer_id,
                "possible_duplicate",
                json!({
                    "kind": identity.kind,
                    "value": identity.value,
                    "other_customer_id": other,
                    "note": "one contact named identities of two customers; merge them if they are one person"
                }),
            )),
            Some(_) => {}
        }
    }
    (customer_id, events)
}
