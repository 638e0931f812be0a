//! The core's side of the channel contract beyond intake ([`switchboard_contract::Core`]):
//! channel events in the history (once per key), contacts ended by the customer, queue
//! positions, agents by extension, assignments as they are committed, and the outbox of
//! commands for channels' external systems. The adapters in `channels/` reach the store
//! and the router only through this.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use switchboard_contract::{
    Accepted, Assignment, BoxFuture, CallbackTask, ChannelEvent, ChannelKind, Command, CommandFor,
    Completed, Connected, Contact, Core, Due, Ending, Intake, IntakeError, KeptAside, NewCallback,
    NewInteraction, Position, Rated, Recorded, ServiceInfo,
};
use tokio::sync::{broadcast, mpsc, oneshot};

pub mod service;

use crate::intake::window::Window;
use crate::intake::IntakeService;
use crate::queue::Queue;
use crate::routing::router::{Ended, RouterHandle};
use crate::store::interactions::InteractionRow;
use crate::store::{self, history, interactions, now_ms, outbox, Store};

/// The core, as channels see it.
pub struct CoreService {
    intake: Arc<IntakeService>,
    store: Store,
    router: RouterHandle,
    queue: Arc<Queue>,
    events: mpsc::Sender<ChannelWrite>,
    /// Chats' first messages waiting to queue their contacts, committed in groups.
    first_messages: mpsc::Sender<FirstMessage>,
    services: Arc<crate::service::Services>,
    default_tier: String,
    parser: crate::customers::identity::IdentityParser,
    /// Signs survey links.
    survey_key: String,
    /// Where customers reach this server (survey links); empty: no links.
    public_url: String,
}

/// What the core needs for the centre's service commitments (hours, callbacks, surveys).
pub struct ServiceParts {
    /// The calendars, policies and rules in force.
    pub services: Arc<crate::service::Services>,
    /// The tier of a customer the store does not know.
    pub default_tier: String,
    /// Reads callback numbers as identities.
    pub parser: crate::customers::identity::IdentityParser,
    /// Signs survey links.
    pub survey_key: String,
    /// Where customers reach this server (survey links); empty: no links.
    pub public_url: String,
    /// How long a busy event writer holds its group open (`storage.commit_window_ms`).
    pub commit_window: std::time::Duration,
}

/// Channel events waiting for the event writer before new ones are refused (retry).
const EVENT_QUEUE: usize = 4096;
/// Most channel events committed in one transaction.
const EVENT_GROUP: usize = 256;

impl CoreService {
    /// The core over these parts, with its event writer running until the process ends
    /// or every sender is gone.
    pub fn new(
        intake: Arc<IntakeService>,
        store: Store,
        router: RouterHandle,
        queue: Arc<Queue>,
        service: ServiceParts,
    ) -> Self {
        let ServiceParts {
            services,
            default_tier,
            parser,
            survey_key,
            public_url,
            commit_window,
        } = service;
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(write_events(store.clone(), rx, Window::new(commit_window)));
        let (first_messages, first_rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(write_first_messages(
            store.clone(),
            services.clone(),
            queue.clone(),
            first_rx,
            Window::new(commit_window),
        ));
        CoreService {
            intake,
            store,
            router,
            queue,
            events,
            first_messages,
            services,
            default_tier,
            parser,
            survey_key,
            public_url,
        }
    }
}

/// An event to record, the digest of the message it carries (if it carries one), and
/// where to answer.
type EventJob = (
    ChannelEvent,
    Option<String>,
    oneshot::Sender<Result<Recorded, IntakeError>>,
);

/// A command to store for its channel's system, whether it is delivered already (the
/// channel carries it in its own answer), and where to answer whether it was stored now.
type CommandJob = (Command, bool, oneshot::Sender<Result<bool, IntakeError>>);

/// What the channel writer commits: a channel's event, or a command for its system.
enum ChannelWrite {
    Event(EventJob),
    Command(CommandJob),
}

/// Commits channel events and commands in groups, as intake commits contacts: while one
/// group is being made durable the next gathers, and each is answered after its commit.
/// A call's dial stored here shares its commit with every event and dial of its group,
/// and takes its turn at the store's writer like every write.
async fn write_events(store: Store, mut rx: mpsc::Receiver<ChannelWrite>, mut window: Window) {
    let mut group: Vec<ChannelWrite> = Vec::with_capacity(EVENT_GROUP);
    let mut events: Vec<EventJob> = Vec::with_capacity(EVENT_GROUP);
    let mut commands: Vec<CommandJob> = Vec::new();
    while rx.recv_many(&mut group, EVENT_GROUP).await > 0 {
        window.fill(&mut rx, &mut group, EVENT_GROUP).await;
        for write in group.drain(..) {
            match write {
                ChannelWrite::Event(e) => events.push(e),
                ChannelWrite::Command(c) => commands.push(c),
            }
        }
        let committed = commit_writes(&store, &events, &commands).await;
        window.committed(events.len() + commands.len());
        // A channel that stopped waiting (its session closed, its webhook timed out) has
        // nothing to hear: what was committed stays, and a retry finds each event
        // recorded once and each command stored once.
        match committed {
            Ok((answers, stored)) => {
                for ((_, _, reply), answer) in events.drain(..).zip(answers) {
                    let _ = reply.send(answer);
                }
                for ((_, _, reply), stored) in commands.drain(..).zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(e) => {
                let e = unavailable(e);
                for (_, _, reply) in events.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
                for (_, _, reply) in commands.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Commits a group of events and commands in one transaction: whether each command was
/// stored now (false: its id was stored before, by whoever delivers it).
async fn commit_writes(
    store: &Store,
    events: &[EventJob],
    commands: &[CommandJob],
) -> Result<(Vec<Result<Recorded, IntakeError>>, Vec<bool>), sqlx::Error> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let answers = if events.is_empty() {
        Vec::new()
    } else {
        record_group(&mut tx, events, now).await?
    };
    let mut stored = Vec::with_capacity(commands.len());
    for (command, delivered, _) in commands {
        stored.push(
            outbox::put(
                &mut tx,
                &command.id,
                command.channel.as_str(),
                &command.payload.to_string(),
                *delivered,
                now,
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok((answers, stored))
}

/// A chat's first message, to queue its contact (kept until then, not routed).
struct FirstMessage {
    channel: ChannelKind,
    contact_key: String,
    text: String,
    /// True when this message queued it; false when it was not waiting for one.
    reply: oneshot::Sender<Result<bool, IntakeError>>,
}

/// Queues contacts at their first message, whatever gathered while the last group was
/// committed in one transaction (as the intake groups new contacts): a chat's first
/// message costs its contact no commit of its own. A group the store refuses is
/// answered unavailable, each of its chats trying again at its next pass.
async fn write_first_messages(
    store: Store,
    services: Arc<crate::service::Services>,
    queue: Arc<Queue>,
    mut rx: mpsc::Receiver<FirstMessage>,
    mut window: Window,
) {
    let mut group: Vec<FirstMessage> = Vec::with_capacity(EVENT_GROUP);
    while rx.recv_many(&mut group, EVENT_GROUP).await > 0 {
        window.fill(&mut rx, &mut group, EVENT_GROUP).await;
        let committed = commit_first_messages(&store, &services, &group).await;
        window.committed(group.len());
        match committed {
            Ok((queued, waiting)) => {
                // Routed once committed, never before.
                queue.push_all(waiting);
                for (job, queued) in group.drain(..).zip(queued) {
                    // A chat that stopped waiting (its visitor left) has nothing to hear:
                    // its contact is queued all the same.
                    let _ = job.reply.send(Ok(queued));
                }
            }
            Err(e) => {
                let e = unavailable(e);
                for job in group.drain(..) {
                    // Nothing of the group was stored: a chat still waiting tries again
                    // at its next pass, and one that stopped waiting is queued by the
                    // pass that finds its first message stored and not yet queued.
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Queues each contact of `group` still waiting for its first message, in one
/// transaction: whether each was queued by it, and the contacts to route.
async fn commit_first_messages(
    store: &Store,
    services: &crate::service::Services,
    group: &[FirstMessage],
) -> Result<(Vec<bool>, Vec<crate::queue::Waiting>), sqlx::Error> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let mut keys: Vec<&str> = group.iter().map(|j| j.contact_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut rows: HashMap<(String, String), InteractionRow> = interactions::by_keys(&mut tx, &keys)
        .await?
        .into_iter()
        .map(|r| ((r.channel.clone(), r.idempotency_key.clone()), r))
        .collect();
    // Their targets count from now (or from the opening, while closed), as those of
    // contacts arriving now.
    let served_at = store::service_time(now);
    let service = services.get();
    let mut queued = Vec::with_capacity(group.len());
    let mut waiting = Vec::new();
    let mut deadlines = Vec::new();
    let mut events = Vec::new();
    let mut ids = Vec::new();
    for job in group {
        let key = (job.channel.as_str().to_string(), job.contact_key.clone());
        // Conditional on its state: a visitor who left meanwhile (the router closed it
        // as left) stays left, and a message sent again queues it once.
        let Some(row) = rows.get_mut(&key) else {
            queued.push(false);
            continue;
        };
        if row.state != "opened"
            || !interactions::first_message(&mut tx, &row.id, &job.text, now).await?
        {
            queued.push(false);
            continue;
        }
        row.state = "queued".into();
        row.created_at = now;
        row.body = Some(job.text.clone());
        let from = row.opens_at.map_or(served_at, |o| o.max(served_at));
        deadlines.extend(
            service
                .deadlines(&row.tier, row.topic.as_deref(), job.channel, from)
                .into_iter()
                .map(|d| (row.id.clone(), job.channel, d)),
        );
        let (customer_id, interaction_id) = (row.customer_id.clone(), row.id.clone());
        let about = |kind, data| history::NewEvent {
            customer_id: customer_id.clone(),
            interaction_id: Some(interaction_id.clone()),
            kind,
            actor: "system".into(),
            data,
        };
        events.push(about(
            "interaction_received",
            json!({ "channel": row.channel, "topic": row.topic, "subject": row.subject,
                    "idempotency_key": row.idempotency_key, "first_message": true }),
        ));
        events.push(about("queued", json!({ "tier": row.tier })));
        // About a complaint: it joins the customer's open one (its owner first), or
        // opens one, as a contact arriving now would.
        if service.is_complaint(row.topic.as_deref()) {
            let open =
                store::service::open_complaints(&mut tx, std::slice::from_ref(&row.customer_id))
                    .await?
                    .remove(&row.customer_id);
            let complaint = match open {
                Some(c) => c,
                None => {
                    let c = store::service::open_complaint(
                        &mut tx,
                        &service,
                        &row.customer_id,
                        row.topic.as_deref().unwrap_or_default(),
                        served_at,
                    )
                    .await?;
                    events.push(about(
                        "complaint_opened",
                        json!({ "complaint_id": c.id, "due_at": store::rfc3339(c.due_at) }),
                    ));
                    c
                }
            };
            let preferred = match &complaint.owner_agent_id {
                Some(owner) => crate::service::watch::substitute(&mut tx, owner, served_at).await?,
                None => None,
            };
            interactions::join_complaint(&mut tx, &row.id, &complaint.id, preferred.as_deref())
                .await?;
            row.complaint_id = Some(complaint.id.clone());
            if preferred.is_some() {
                row.preferred_agent_id = preferred;
            }
        }
        ids.push(row.id.clone());
        waiting.push(crate::intake::waiting(row));
        queued.push(true);
    }
    store::service::insert_deadlines(&mut tx, &deadlines, served_at).await?;
    history::append(&mut tx, events.iter(), now).await?;
    // On a cluster, the leader takes them up at this commit.
    crate::cluster::bus::queued(&mut tx, store.backend(), &ids).await?;
    tx.commit().await?;
    Ok((queued, waiting))
}

/// Records a group of events with a fixed number of statements, whatever its size: the
/// contacts are read in one query, the events inserted in one (each key once: the store
/// answers which were new), and the history written in one; only files take their own,
/// and so does checking a known key's fingerprint (a message redelivered, or its id
/// reused).
async fn record_group(
    tx: &mut store::Conn,
    group: &[EventJob],
    now: i64,
) -> Result<Vec<Result<Recorded, IntakeError>>, sqlx::Error> {
    let mut keys: Vec<&str> = group
        .iter()
        .map(|(e, _, _)| e.contact_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let contacts: HashMap<(String, String), InteractionRow> = interactions::by_keys(tx, &keys)
        .await?
        .into_iter()
        .map(|r| ((r.channel.clone(), r.idempotency_key.clone()), r))
        .collect();
    // Each event's contact, looked up once.
    let found: Vec<Option<&InteractionRow>> = group
        .iter()
        .map(|(e, _, _)| contacts.get(&(e.channel.as_str().to_string(), e.contact_key.clone())))
        .collect();
    let rows: Vec<outbox::EventRow> = group
        .iter()
        .zip(&found)
        .map(|((e, fingerprint, _), row)| outbox::EventRow {
            channel: e.channel.as_str(),
            event_key: &e.event_key,
            contact_key: &e.contact_key,
            interaction_id: row.map(|r| r.id.as_str()),
            kind: &e.kind,
            data: e.data.to_string(),
            fingerprint: fingerprint.as_deref(),
        })
        .collect();
    // What the history shows: the event without its private part.
    let shown: Vec<Option<String>> = group
        .iter()
        .map(|(e, _, _)| history::without_private(&e.data))
        .collect();
    let mut new = outbox::record_events(tx, &rows, now).await?;

    let mut answers = Vec::with_capacity(group.len());
    let mut entries = Vec::new();
    for ((((event, fingerprint, _), contact), recorded), shown) in
        group.iter().zip(&found).zip(&rows).zip(&shown)
    {
        let channel = event.channel.as_str();
        // A key is new once: a second delivery in the same group is a duplicate, unless
        // it carries another message than the one recorded under the key.
        if !new.remove(&(channel.to_string(), event.event_key.clone())) {
            let reused =
                outbox::reused(tx, channel, &event.event_key, fingerprint.as_deref()).await?;
            answers.push(if reused {
                Err(IntakeError::KeyReused)
            } else {
                Ok(Recorded::Duplicate)
            });
            continue;
        }
        let Some(row) = contact else {
            answers.push(Ok(Recorded::UnknownContact));
            continue;
        };
        if !event.files.is_empty() {
            store::channel::attach_files(tx, &row.id, &event.event_key, &event.files, now).await?;
        }
        entries.push(history::ChannelEntry {
            customer_id: &row.customer_id,
            interaction_id: &row.id,
            kind: &event.kind,
            actor: channel,
            data: shown.as_deref().unwrap_or(&recorded.data),
        });
        answers.push(Ok(Recorded::New {
            interaction_id: row.id.clone(),
            state: row.state.clone(),
            agent_id: row.agent_id.clone(),
        }));
    }
    history::append_channel(tx, &entries, now).await?;
    Ok(answers)
}

/// A store error as a channel answers it: retry later, nothing changed.
fn unavailable(e: sqlx::Error) -> IntakeError {
    if !store::is_unavailable(&e) {
        tracing::error!(error = %e, "A channel's store operation failed");
    }
    IntakeError::Unavailable("the store could not record it".into())
}

impl Intake for CoreService {
    fn submit(&self, interaction: NewInteraction) -> BoxFuture<'_, Result<Accepted, IntakeError>> {
        self.intake.submit(interaction)
    }

    fn refuses_every(&self, channel: ChannelKind) -> Option<u32> {
        self.intake.refuses_every(channel)
    }
}

impl CoreService {
    /// Hands an event to the event writer and waits for its commit.
    async fn write_event(
        &self,
        event: ChannelEvent,
        fingerprint: Option<String>,
    ) -> Result<Recorded, IntakeError> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send(ChannelWrite::Event((event, fingerprint, reply)))
            .await
            .map_err(|_| IntakeError::ShuttingDown)?;
        answer.await.unwrap_or(Err(IntakeError::ShuttingDown))
    }
}

impl Core for CoreService {
    fn record(&self, event: ChannelEvent) -> BoxFuture<'_, Result<Recorded, IntakeError>> {
        Box::pin(self.write_event(event, None))
    }

    fn record_message(
        &self,
        event: ChannelEvent,
        fingerprint: String,
    ) -> BoxFuture<'_, Result<Recorded, IntakeError>> {
        Box::pin(self.write_event(event, Some(fingerprint)))
    }

    fn keep_aside(&self, kept: KeptAside) -> BoxFuture<'_, Result<bool, IntakeError>> {
        Box::pin(async move {
            let mut tx = self.store.begin_write().await.map_err(unavailable)?;
            let new = store::kept_aside::keep(&mut tx, &kept, now_ms())
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(new)
        })
    }

    fn end<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<Ending, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let Some(row) = interactions::by_key(&mut conn, channel.as_str(), contact_key)
                .await
                .map_err(unavailable)?
            else {
                return Ok(Ending::Unknown);
            };
            // A caller who asked to be called back keeps the place: nothing ends.
            if matches!(row.state.as_str(), "queued" | "offered")
                && crate::store::service::callback_waiting(&mut conn, &row.id)
                    .await
                    .map_err(unavailable)?
            {
                return Ok(Ending::CallbackKept {
                    interaction_id: row.id,
                });
            }
            drop(conn);
            let ended = self
                .router
                .end(&row.id, reason)
                .await
                .ok_or(IntakeError::ShuttingDown)?
                .map_err(unavailable)?;
            let interaction_id = row.id;
            Ok(match ended {
                Ended::Abandoned { waited_ms } => Ending::Abandoned {
                    interaction_id,
                    waited_secs: waited_ms as f64 / 1000.0,
                },
                Ended::WhileHeld { agent_id } => Ending::WhileHeld {
                    interaction_id,
                    agent_id,
                },
                Ended::Closed { agent_id } => Ending::WhileHeld {
                    interaction_id,
                    agent_id: Some(agent_id),
                },
                Ended::Already => Ending::Already { interaction_id },
                Ended::Left => Ending::Left { interaction_id },
                Ended::Unknown => Ending::Unknown,
            })
        })
    }

    fn first_message<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<bool, IntakeError>> {
        Box::pin(async move {
            // Grouped with the other chats' first messages of the moment: one commit for
            // all of them, each answered after it.
            let (reply, answer) = oneshot::channel();
            let job = FirstMessage {
                channel,
                contact_key: contact_key.to_string(),
                text: text.to_string(),
                reply,
            };
            if self.first_messages.send(job).await.is_err() {
                return Err(IntakeError::ShuttingDown);
            }
            answer.await.unwrap_or(Err(IntakeError::ShuttingDown))
        })
    }

    fn connected<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        agent_id: Option<&'a str>,
        done: Option<CommandFor>,
    ) -> BoxFuture<'a, Result<Connected, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let Some(row) = interactions::by_key(&mut conn, channel.as_str(), contact_key)
                .await
                .map_err(unavailable)?
            else {
                return Ok(Connected::Unknown);
            };
            drop(conn);
            self.router
                .connected(&row.id, agent_id, channel, done)
                .await
                .ok_or(IntakeError::ShuttingDown)?
                .map_err(unavailable)
        })
    }

    fn positions<'a>(
        &'a self,
        interaction_ids: Vec<String>,
    ) -> BoxFuture<'a, std::collections::HashMap<String, Position>> {
        Box::pin(self.router.positions(interaction_ids))
    }

    fn find_agent<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            store::agents::by_reference(&mut conn, reference)
                .await
                .map_err(unavailable)
        })
    }

    fn assignments(&self) -> broadcast::Receiver<Arc<Assignment>> {
        self.router.assignments()
    }

    fn completions(&self) -> broadcast::Receiver<Completed> {
        self.router.completions()
    }

    fn commands_stored(&self) -> broadcast::Receiver<ChannelKind> {
        self.router.commands_stored()
    }

    fn commands_handed(&self) -> broadcast::Receiver<Arc<Vec<Due>>> {
        self.router.commands_handed()
    }

    fn agents_typing(&self) -> broadcast::Receiver<String> {
        self.router.agents_typing()
    }

    fn find_contact<'a>(
        &'a self,
        channel: ChannelKind,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Option<Contact>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let Some(r) = store::channel::find_contact(&mut conn, channel.as_str(), keys)
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            let agent_name = match &r.agent_id {
                Some(a) => store::agents::get(&mut conn, a)
                    .await
                    .map_err(unavailable)?
                    .map(|a| a.name),
                None => None,
            };
            Ok(Some(Contact {
                contact_key: r.idempotency_key,
                interaction_id: r.id,
                state: r.state,
                agent_id: r.agent_id,
                agent_name,
            }))
        })
    }

    fn open_contacts(
        &self,
        channel: ChannelKind,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            sqlx::query_scalar(
                "SELECT idempotency_key FROM interactions WHERE channel = $1 \
                 AND state IN ('opened', 'queued', 'offered', 'assigned') ORDER BY created_at LIMIT $2",
            )
            .bind(channel.as_str())
            .bind(limit as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)
        })
    }

    fn reopen<'a>(
        &'a self,
        interaction_id: &'a str,
        preferred_agent: Option<&'a str>,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, IntakeError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut tx = self.store.begin_write().await.map_err(unavailable)?;
            if !interactions::reopen(&mut tx, interaction_id, preferred_agent, now)
                .await
                .map_err(unavailable)?
            {
                return Ok(false);
            }
            let row = interactions::get(&mut tx, interaction_id)
                .await
                .map_err(unavailable)?
                .ok_or(IntakeError::Unavailable("the interaction vanished".into()))?;
            history::append_channel(
                &mut tx,
                &[history::ChannelEntry {
                    customer_id: &row.customer_id,
                    interaction_id,
                    kind: "reopened",
                    actor: "customer",
                    data: &json!({ "reason": reason, "preferred_agent": preferred_agent })
                        .to_string(),
                }],
                now,
            )
            .await
            .map_err(unavailable)?;
            // On a cluster, the leader takes it up at this commit.
            crate::cluster::bus::queued(
                &mut tx,
                self.store.backend(),
                std::slice::from_ref(&row.id),
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            // Committed, it waits again: the router takes it from the queue.
            self.queue.push_all([crate::intake::waiting(&row)]);
            Ok(true)
        })
    }

    fn events_of<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        kind: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let rows = store::channel::events_of(&mut conn, channel.as_str(), contact_key, kind)
                .await
                .map_err(unavailable)?;
            Ok(rows
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect())
        })
    }

    fn cursor<'a>(
        &'a self,
        channel: ChannelKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            store::channel::cursor(&mut conn, channel.as_str(), name)
                .await
                .map_err(unavailable)
        })
    }

    fn set_cursor<'a>(
        &'a self,
        channel: ChannelKind,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            store::channel::set_cursor(&mut conn, channel.as_str(), name, value)
                .await
                .map_err(unavailable)
        })
    }

    fn file<'a>(
        &'a self,
        interaction_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<switchboard_contract::StoredFile>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            Ok(store::channel::file(&mut conn, interaction_id, file_id)
                .await
                .map_err(unavailable)?
                .and_then(|(name, content_type, data)| Some((name, content_type, data?))))
        })
    }

    fn tell_agent<'a>(
        &'a self,
        interaction_id: &'a str,
        event: serde_json::Value,
    ) -> BoxFuture<'a, ()> {
        self.router.tell_holder(interaction_id, event);
        Box::pin(async {})
    }

    fn unanswered_assignments<'a>(
        &'a self,
        channel: ChannelKind,
        command_prefix: &'a str,
        over_kind: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Assignment>, IntakeError>> {
        Box::pin(async move {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let rows = outbox::unanswered_assignments(
                &mut conn,
                channel.as_str(),
                command_prefix,
                over_kind,
            )
            .await
            .map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(
                    |(interaction_id, contact_key, agent_id, agent_name, extension)| Assignment {
                        interaction_id,
                        contact_key,
                        channel,
                        agent_id,
                        agent_name,
                        extension,
                        // Long arrived: nobody's answer window is still open for it.
                        arrived_at_ms: 0,
                    },
                )
                .collect())
        })
    }

    fn service(&self, channel: ChannelKind, tier: Option<&str>) -> BoxFuture<'_, ServiceInfo> {
        let info = self.service_info(channel, tier);
        Box::pin(async move { info })
    }

    fn request_callback<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, Result<bool, IntakeError>> {
        Box::pin(self.keep_for_callback(channel, contact_key, number))
    }

    fn book_callback(
        &self,
        callback: NewCallback,
    ) -> BoxFuture<'_, Result<Option<String>, IntakeError>> {
        Box::pin(self.book(callback))
    }

    fn callback<'a>(
        &'a self,
        interaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallbackTask>, IntakeError>> {
        Box::pin(self.callback_of(interaction_id))
    }

    fn callback_result<'a>(
        &'a self,
        interaction_id: &'a str,
        result: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, IntakeError>> {
        Box::pin(self.record_callback_result(interaction_id, result))
    }

    fn acknowledgement<'a>(
        &'a self,
        interaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, IntakeError>> {
        Box::pin(self.acknowledgement_of(interaction_id))
    }

    fn survey<'a>(
        &'a self,
        interaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, IntakeError>> {
        Box::pin(async move { Ok(self.survey_mail(interaction_id)) })
    }

    fn rate<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        score: u8,
        comment: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Rated, IntakeError>> {
        Box::pin(async move {
            let id = {
                let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
                interactions::by_key(&mut conn, channel.as_str(), contact_key)
                    .await
                    .map_err(unavailable)?
                    .map(|r| r.id)
            };
            match id {
                Some(id) => {
                    self.rate_interaction(&id, channel.as_str(), score, comment)
                        .await
                }
                None => Ok(Rated::Unknown),
            }
        })
    }

    fn command(
        &self,
        command: Command,
        delivered: bool,
    ) -> BoxFuture<'_, Result<bool, IntakeError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.events
                .send(ChannelWrite::Command((command, delivered, reply)))
                .await
                .map_err(|_| IntakeError::ShuttingDown)?;
            answer.await.unwrap_or(Err(IntakeError::ShuttingDown))
        })
    }

    fn due(
        &self,
        channel: ChannelKind,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<Due>, IntakeError>> {
        Box::pin(async move {
            // Most passes find nothing due: asked first without taking the writer's turn.
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let any = outbox::due(&mut conn, channel.as_str(), now_ms(), 1)
                .await
                .map_err(unavailable)?;
            drop(conn);
            if any.is_empty() {
                return Ok(Vec::new());
            }
            // Claimed by the leader only (a fenced write), for a while: a node that dies
            // delivering leaves them due again to the next leader.
            let mut tx = match self.store.begin_fenced().await {
                Ok(tx) => tx,
                Err(store::FenceError::Fenced) => return Ok(Vec::new()),
                Err(store::FenceError::Store(e)) => return Err(unavailable(e)),
            };
            let now = now_ms();
            let rows = outbox::claim(
                &mut tx,
                self.store.backend(),
                channel.as_str(),
                now,
                i64::from(limit),
                now + outbox::DELIVERY_LEASE_MS,
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|(id, payload, attempts)| Due {
                    command: Command {
                        id,
                        channel,
                        payload: serde_json::from_str(&payload).unwrap_or(json!(null)),
                    },
                    attempts: attempts.max(0) as u32,
                })
                .collect())
        })
    }

    fn delivered<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), IntakeError>> {
        Box::pin(async move {
            // In the writer's turn, as every write: an autocommit out of turn would hold
            // SQLite's lock while a writer in turn waits for it in the busy handler's
            // sleeps (up to 100 ms each), and every chat message behind that writer too.
            let mut tx = self.store.begin_write().await.map_err(unavailable)?;
            outbox::delivered(&mut tx, id, now_ms())
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        })
    }

    fn failed<'a>(
        &'a self,
        id: &'a str,
        retry_in_ms: Option<u64>,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), IntakeError>> {
        Box::pin(async move {
            // In the writer's turn, as `delivered`.
            let mut tx = self.store.begin_write().await.map_err(unavailable)?;
            let next_at = retry_in_ms.map(|ms| now_ms() + ms as i64);
            outbox::failed(&mut tx, id, next_at, error)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::group_tests::{contact, one_group, store};

    async fn commit_events(
        store: &Store,
        group: &[EventJob],
    ) -> Result<Vec<Result<Recorded, IntakeError>>, sqlx::Error> {
        Ok(commit_writes(store, group, &[]).await?.0)
    }

    fn event(key: &str, contact_key: &str) -> EventJob {
        let job = ChannelEvent {
            channel: ChannelKind::Email,
            contact_key: contact_key.into(),
            event_key: key.into(),
            kind: "email_received".into(),
            data: json!({ "key": key }),
            files: Vec::new(),
        };
        (job, None, oneshot::channel().0)
    }

    fn dial(id: &str, delivered: bool) -> CommandJob {
        let command = Command {
            id: id.into(),
            channel: ChannelKind::Phone,
            payload: json!({ "kind": "dial", "interaction_id": "i1" }),
        };
        (command, delivered, oneshot::channel().0)
    }

    #[tokio::test]
    async fn commands_share_the_group_commit_each_stored_once_and_a_delivered_one_is_never_due() {
        let (store, _dir) = store().await;
        let (_, stored) = commit_writes(
            &store,
            &[event("e1", "<nobody@x>")],
            &[
                dial("dial:a", true),
                dial("dial:a", false),
                dial("dial:b", false),
            ],
        )
        .await
        .unwrap();
        // The second `dial:a` finds the first stored: whoever stored it first sends it.
        assert_eq!(stored, [true, false, true]);
        let (_, again) = commit_writes(&store, &[], &[dial("dial:b", true)])
            .await
            .unwrap();
        assert_eq!(again, [false], "a command is stored once across groups too");
        let mut conn = store.pool().acquire().await.unwrap();
        let due: Vec<String> = outbox::due(&mut conn, "phone", now_ms() + 1, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(due, ["dial:b"], "only the undelivered command is due");
    }

    #[tokio::test]
    async fn a_command_stored_claimed_is_due_again_only_when_its_claim_runs_out() {
        // A chat reply the router stores claimed and hands to this node's chat at its
        // commit: if the chat never delivers it (behind, or the node died), the store
        // still has it, due once the claim runs out.
        let (store, _dir) = store().await;
        let now = now_ms();
        let until = now + outbox::DELIVERY_LEASE_MS;
        let mut tx = store.begin_write().await.unwrap();
        let payload = json!({ "interaction_id": "i1", "contact_key": "c1", "body": "Hi" });
        let first = outbox::put_claimed(
            &mut tx,
            "reply:a:r1",
            "chat",
            &payload.to_string(),
            now,
            until,
        )
        .await
        .unwrap();
        let again = outbox::put_claimed(&mut tx, "reply:a:r1", "chat", "{}", now, until)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!((first, again), (true, false), "stored once, handed once");
        let mut conn = store.pool().acquire().await.unwrap();
        let now_due = outbox::due(&mut conn, "chat", until - 1, 10).await.unwrap();
        assert!(now_due.is_empty(), "not due while claimed: {now_due:?}");
        let later = outbox::due(&mut conn, "chat", until, 10).await.unwrap();
        assert_eq!(
            later,
            [("reply:a:r1".to_string(), payload.to_string(), 0)],
            "due once its claim ran out, with no attempt counted"
        );
    }

    #[tokio::test]
    async fn a_group_records_each_key_once_and_tells_unknown_contacts_apart() {
        let (store, _dir) = store().await;
        let (committed, _) =
            one_group(&store, vec![contact("<m1@x>", "a@example.com", "Hi")]).await;
        let interaction = committed[0].as_ref().unwrap().interaction.clone();

        let group = [
            event("e1", "<m1@x>"),
            event("e1", "<m1@x>"),
            event("e2", "<m1@x>"),
            event("e3", "<nobody@x>"),
        ];
        let answers = commit_events(&store, &group).await.unwrap();
        let new = Recorded::New {
            interaction_id: interaction.id.clone(),
            state: "queued".into(),
            agent_id: None,
        };
        assert_eq!(
            answers,
            [
                Ok(new.clone()),
                Ok(Recorded::Duplicate),
                Ok(new),
                Ok(Recorded::UnknownContact)
            ]
        );
        // Delivered again in a later group: a duplicate; every new one is in the history
        // once, by its channel.
        let again = commit_events(&store, &[event("e2", "<m1@x>"), event("e3", "<nobody@x>")])
            .await
            .unwrap();
        assert_eq!(again, [Ok(Recorded::Duplicate), Ok(Recorded::Duplicate)]);
        let history: Vec<(String, String)> = sqlx::query_as(
            "SELECT actor, data FROM history WHERE kind = 'email_received' ORDER BY seq",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(
            history,
            [
                ("email".to_string(), r#"{"key":"e1"}"#.to_string()),
                ("email".to_string(), r#"{"key":"e2"}"#.to_string())
            ]
        );
    }

    #[tokio::test]
    async fn a_known_key_with_another_fingerprint_is_refused_as_reused_and_changes_nothing() {
        let (store, _dir) = store().await;
        one_group(&store, vec![contact("<m1@x>", "a@example.com", "Hi")]).await;
        let with = |key: &str, fingerprint: Option<&str>| {
            let (job, _, reply) = event(key, "<m1@x>");
            (job, fingerprint.map(str::to_string), reply)
        };
        let first = commit_events(&store, &[with("m", Some("f1"))])
            .await
            .unwrap();
        assert!(matches!(first[0], Ok(Recorded::New { .. })));
        let answers = commit_events(
            &store,
            &[
                with("m", Some("f1")),
                with("m", Some("f2")),
                with("m", None),
                with("n", Some("g1")),
                with("n", Some("g2")),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            answers[0],
            Ok(Recorded::Duplicate),
            "the same message again"
        );
        assert_eq!(answers[1], Err(IntakeError::KeyReused), "another message");
        assert_eq!(
            answers[2],
            Ok(Recorded::Duplicate),
            "no fingerprint to tell"
        );
        assert!(matches!(answers[3], Ok(Recorded::New { .. })));
        assert_eq!(
            answers[4],
            Err(IntakeError::KeyReused),
            "within one group too"
        );
        let recorded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM history WHERE kind = 'email_received'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(recorded, 2);
    }
}
