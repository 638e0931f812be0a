//! The router: one task that owns the live routing state (waiting interactions, agent
//! sessions, offers) and acts on events — an interaction arriving, an agent's message,
//! an agent connecting or vanishing, a deadline passing. After each event it asks the
//! pure [`policy`] what to offer, and carries that out: the store first,
//! then the agent's desktop. It sleeps until the next deadline it knows of (an offer
//! expiring, a ring opening, a wrap-up ending, a heartbeat due), never on a fixed tick.
//!
//! Durability: every transition (offered, assigned, back to the queue, completed) is
//! committed before the agent is told. Offers die with the server: at start-up every
//! interaction still `offered` waits again; `assigned` ones stay with their agent, who
//! gets them back on login.
//!
//! # Layout
//! - this file: the handle, the task's loop, and the turn's grouped commit (`flush`);
//! - `session`: one desktop's session and its numbered events;
//! - `sessions`: login, resume, messages, vanishing, expiry;
//! - `offers`: offers and their outcomes, and contacts ended by the customer;
//! - `live`: the supervisors' view.

mod live;
mod offers;
mod session;
mod sessions;
mod supervise;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_contract::{Assignment, ChannelKind, Completed, Position};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::index::{self, WaitingIndex};
use super::policy::{self, AgentView, Load, Presence, WaitingInteraction};
use super::protocol::{ClientMessage, PresenceRequest, Resume};
use super::rules::{Capacity, Rules};
use crate::customers::waiting::WaitingNow;
use crate::queue::Queue;
use crate::store::agents::AgentRow;
use crate::store::history::{self, NewEvent};
use crate::store::interactions::{self, InteractionRow};
use crate::store::{customers, new_id, now_ms, presence, rfc3339, Store};
use crate::telemetry;
use session::{agent_json, interaction_json, view, Session};

/// Events kept per agent for a reconnecting desktop.
const RESUME_LOG: usize = 1000;
/// The longest reply an agent may send, in bytes.
const MAX_REPLY_BYTES: usize = 256 * 1024;
/// History events sent with an offer.
const OFFER_HISTORY: i64 = 10;

/// What the router sends a desktop's connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A text frame.
    Frame(String),
    /// Close with a code and reason.
    Close(u16, String),
}

/// Frames that may wait for one desktop: a resume's whole replay and as much again. A
/// desktop further behind is not reading: its connection is cut rather than its frames
/// kept without bound, and it gets what it missed from the log when it resumes.
pub const DESKTOP_OUTBOX: usize = 2 * RESUME_LOG;

/// The router's end of one desktop's connection: a bounded queue of frames, and the
/// signal that cuts the connection when that queue is full.
#[derive(Debug, Clone)]
pub struct DesktopLink {
    tx: mpsc::Sender<Outbound>,
    cut: CancellationToken,
}

impl DesktopLink {
    /// A link, and the end the connection's writer reads.
    pub fn new() -> (DesktopLink, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(DESKTOP_OUTBOX);
        let link = DesktopLink {
            tx,
            cut: CancellationToken::new(),
        };
        (link, rx)
    }

    /// Queues a frame without waiting; a desktop that has fallen a whole outbox behind
    /// is cut off instead (its connection ends, and the router hears of it as of any
    /// dropped desktop).
    pub fn send(&self, out: Outbound) {
        match self.tx.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.cut.is_cancelled() {
                    tracing::warn!(
                        frames = DESKTOP_OUTBOX,
                        "A desktop is not reading its frames; its connection is cut"
                    );
                    telemetry::agent_event("cut_off");
                }
                self.cut.cancel();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Completes when the connection has been cut.
    pub async fn cut(&self) {
        self.cut.cancelled().await;
    }
}

/// How long agents' sessions live without word from them.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimes {
    /// A connected desktop silent this long is disconnected.
    pub heartbeat_timeout: Duration,
    /// A disconnected agent may resume within this.
    pub resume_grace: Duration,
}

enum Command {
    Connect {
        agent: AgentRow,
        resume: Option<Resume>,
        out: DesktopLink,
        reply: oneshot::Sender<u64>,
    },
    Message {
        agent_id: String,
        conn: u64,
        msg: ClientMessage,
    },
    Disconnect {
        agent_id: String,
        conn: u64,
    },
    Snapshot {
        reply: oneshot::Sender<Value>,
    },
    AgentChanged {
        agent: AgentRow,
        log_out: bool,
    },
    CustomersChanged(Vec<String>),
    SetRules {
        rules: Arc<Rules>,
        version: i64,
    },
    End {
        interaction_id: String,
        reason: String,
        reply: oneshot::Sender<Result<Ended, sqlx::Error>>,
    },
    Move {
        interaction_id: String,
        to: String,
        by: String,
        reply: oneshot::Sender<Result<Moved, sqlx::Error>>,
    },
    SetAway {
        agent_id: String,
        reason: Option<String>,
        reply: oneshot::Sender<bool>,
    },
    Positions {
        ids: Vec<String>,
        reply: oneshot::Sender<HashMap<String, Position>>,
    },
    Tell {
        interaction_id: String,
        event: Value,
    },
}

/// What moving an interaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// It was waiting: it is now offered to the agent.
    Offered,
    /// It was assigned: it now belongs to the agent, and `from` was told.
    Reassigned {
        /// Who held it.
        from: String,
    },
    /// It cannot be moved there, and why.
    Refused(String),
    /// No such interaction.
    Unknown,
}

/// What ending an interaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It was waiting: now abandoned, with its wait logged.
    Abandoned {
        /// How long it waited (ms).
        waited_ms: i64,
    },
    /// An agent holds it: the agent was told, and completes it as usual.
    WhileHeld {
        /// The agent.
        agent_id: Option<String>,
    },
    /// It had ended already.
    Already,
    /// No such interaction.
    Unknown,
}

/// Talks to the router task. Cheap to clone.
#[derive(Clone)]
pub struct RouterHandle {
    tx: mpsc::UnboundedSender<Command>,
    changes: watch::Receiver<u64>,
    assignments: broadcast::Sender<Assignment>,
    completions: broadcast::Sender<Completed>,
    commands: broadcast::Sender<ChannelKind>,
    typing: broadcast::Sender<String>,
}

impl RouterHandle {
    /// Attaches a logged-in desktop; answers the connection's id.
    pub async fn connect(
        &self,
        agent: AgentRow,
        resume: Option<Resume>,
        out: DesktopLink,
    ) -> Option<u64> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Connect {
                agent,
                resume,
                out,
                reply,
            })
            .ok()?;
        answer.await.ok()
    }

    /// Hands the router a message from a desktop.
    pub fn message(&self, agent_id: &str, conn: u64, msg: ClientMessage) {
        let _ = self.tx.send(Command::Message {
            agent_id: agent_id.into(),
            conn,
            msg,
        });
    }

    /// Tells the router a desktop's connection ended.
    pub fn disconnect(&self, agent_id: &str, conn: u64) {
        let _ = self.tx.send(Command::Disconnect {
            agent_id: agent_id.into(),
            conn,
        });
    }

    /// Ends an interaction on the customer's side, wherever it is.
    pub async fn end(
        &self,
        interaction_id: &str,
        reason: &str,
    ) -> Option<Result<Ended, sqlx::Error>> {
        let (reply, answer) = oneshot::channel();
        let cmd = Command::End {
            interaction_id: interaction_id.into(),
            reason: reason.into(),
            reply,
        };
        self.tx.send(cmd).ok()?;
        answer.await.ok()
    }

    /// Moves an interaction to agent `to` (a supervisor's action).
    pub async fn move_to(
        &self,
        interaction_id: &str,
        to: &str,
        by: &str,
    ) -> Option<Result<Moved, sqlx::Error>> {
        let (reply, answer) = oneshot::channel();
        let cmd = Command::Move {
            interaction_id: interaction_id.into(),
            to: to.into(),
            by: by.into(),
            reply,
        };
        self.tx.send(cmd).ok()?;
        answer.await.ok()
    }

    /// Sets a logged-in agent away (a supervisor's action); false when it is not logged in.
    pub async fn set_away(&self, agent_id: &str, reason: Option<String>) -> Option<bool> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::SetAway {
                agent_id: agent_id.into(),
                reason,
                reply,
            })
            .ok()?;
        answer.await.ok()
    }

    /// Where each of these waiting interactions stands (those not waiting are left out).
    pub async fn positions(&self, ids: Vec<String>) -> HashMap<String, Position> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Positions { ids, reply }).is_err() {
            return HashMap::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Tells the agent holding an interaction `event` (a numbered event on its desktop,
    /// kept for a resume); nobody is told when nobody holds it.
    pub fn tell_holder(&self, interaction_id: &str, event: Value) {
        let _ = self.tx.send(Command::Tell {
            interaction_id: interaction_id.into(),
            event,
        });
    }

    /// Every assignment from now on, announced once committed.
    pub fn assignments(&self) -> broadcast::Receiver<Assignment> {
        self.assignments.subscribe()
    }

    /// Every completion from now on, announced once committed.
    pub fn completions(&self) -> broadcast::Receiver<Completed> {
        self.completions.subscribe()
    }

    /// The channel of every command the router stores from now on, once committed.
    pub fn commands_stored(&self) -> broadcast::Receiver<ChannelKind> {
        self.commands.subscribe()
    }

    /// Chats whose agent is typing, from now on.
    pub fn agents_typing(&self) -> broadcast::Receiver<String> {
        self.typing.subscribe()
    }

    /// Changes each time the live state may have changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Routes by `rules` (version `version`) from now on, for waiting interactions too.
    pub fn set_rules(&self, rules: Arc<Rules>, version: i64) {
        let _ = self.tx.send(Command::SetRules { rules, version });
    }

    /// An agent's record changed: a logged-in agent is routed by the new one at once; one
    /// removed, or whose token was reset (`log_out`), is disconnected (close code 4004).
    pub fn agent_changed(&self, agent: AgentRow, log_out: bool) {
        let _ = self.tx.send(Command::AgentChanged { agent, log_out });
    }

    /// Tells the router that customers changed: the waiting contacts to read again from
    /// the store (those [`crate::customers::waiting::refresh`] answered, once committed).
    pub fn customers_changed(&self, interaction_ids: Vec<String>) {
        if !interaction_ids.is_empty() {
            let _ = self.tx.send(Command::CustomersChanged(interaction_ids));
        }
    }

    /// The live queue and agents, as `GET /api/queue` shows them.
    pub async fn snapshot(&self) -> Option<Value> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Command::Snapshot { reply }).ok()?;
        answer.await.ok()
    }
}

/// A waiting interaction in the router.
struct Item {
    w: WaitingInteraction,
    customer_id: String,
    /// The agent its channel asked for first (the one who handled the thread it
    /// continues), who goes before the customer's account manager.
    preferred: Option<String>,
    /// The key its channel submitted it under.
    contact_key: String,
    /// The offer out for it, if any.
    offer: Option<String>,
}

struct Offer {
    interaction_id: String,
    agent_id: String,
    expires_at: i64,
}

/// Starts the router task.
pub fn start(
    store: Store,
    rules: Arc<Rules>,
    rules_version: i64,
    queue: Arc<Queue>,
    times: SessionTimes,
    shutdown: CancellationToken,
) -> (RouterHandle, tokio::task::JoinHandle<()>) {
    let (changes_tx, changes_rx) = watch::channel(0u64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (assignments, _) = broadcast::channel(ANNOUNCED);
    let (completions, _) = broadcast::channel(ANNOUNCED);
    let (commands, _) = broadcast::channel(ANNOUNCED);
    let (typing, _) = broadcast::channel(ANNOUNCED);
    let router = Router {
        store,
        rules,
        rules_version,
        queue,
        times,
        waiting: HashMap::new(),
        index: WaitingIndex::default(),
        agents: HashMap::new(),
        offers: HashMap::new(),
        next_conn: 0,
        changes: changes_tx,
        changed: true,
        answered: VecDeque::new(),
        idle: live::IdleWhileWaiting::default(),
        pending: Vec::new(),
        events: Vec::new(),
        presence_log: Vec::new(),
        announced: Vec::new(),
        leaving: Vec::new(),
        assignments: assignments.clone(),
        completions: completions.clone(),
        commands: commands.clone(),
        typing: typing.clone(),
        completed: Vec::new(),
        replies: Vec::new(),
        stop: shutdown.clone(),
    };
    (
        RouterHandle {
            tx,
            changes: changes_rx,
            assignments,
            completions,
            commands,
            typing,
        },
        tokio::spawn(router.run(rx, shutdown)),
    )
}

struct Router {
    store: Store,
    rules: Arc<Rules>,
    /// The version of `rules`, written with every decision.
    rules_version: i64,
    queue: Arc<Queue>,
    times: SessionTimes,
    waiting: HashMap<String, Item>,
    /// The waiting interactions not on offer, as the policy reads them.
    index: WaitingIndex,
    agents: HashMap<String, Session>,
    offers: HashMap<String, Offer>,
    next_conn: u64,
    /// Bumped after every turn that changed something, for supervisors' live views.
    changes: watch::Sender<u64>,
    /// Something changed in this turn.
    changed: bool,
    /// Answered interactions of the last [`SERVICE_WINDOW_MS`]: (when, tier, wait).
    answered: VecDeque<(i64, String, i64)>,
    /// Agents' time idle while contacts they had room for waited, for the live view.
    idle: live::IdleWhileWaiting,
    /// Writes decided this turn of the loop, committed together at its end.
    pending: Vec<Pending>,
    /// History events decided this turn, committed with them.
    events: Vec<NewEvent>,
    /// Presence changes of this turn, for the presence log.
    presence_log: Vec<presence::Change>,
    /// Assignments of this turn, announced once committed.
    announced: Vec<Assignment>,
    /// Interactions ended this turn, taken out of the queue once committed.
    leaving: Vec<String>,
    /// Completions of this turn, announced once committed.
    completed: Vec<Completed>,
    completions: broadcast::Sender<Completed>,
    commands: broadcast::Sender<ChannelKind>,
    typing: broadcast::Sender<String>,
    assignments: broadcast::Sender<Assignment>,
    /// Answers to give once this turn's writes are committed.
    replies: Vec<(oneshot::Sender<EndResult>, EndResult)>,
    stop: CancellationToken,
}

/// What ending an interaction answers.
type EndResult = Result<Ended, sqlx::Error>;

/// A write the router has decided and not yet committed.
enum Pending {
    Transition {
        id: String,
        from: &'static [&'static str],
        to: &'static str,
        agent: Option<String>,
    },
    Complete {
        id: String,
        agent: String,
        disposition: String,
        notes: Option<String>,
    },
    /// A command for a channel's external system (an email reply to send).
    Command {
        id: String,
        channel: ChannelKind,
        payload: Value,
    },
}

/// Assignments an adapter may fall behind by before it misses some.
const ANNOUNCED: usize = 4096;

/// The most commands taken in one turn of the loop (one commit).
const TURN: usize = 256;

/// The window service levels are measured over.
const SERVICE_WINDOW_MS: i64 = 15 * 60 * 1000;

impl Router {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>, shutdown: CancellationToken) {
        let queue = self.queue.clone();
        self.take_fresh().await;
        loop {
            let now = now_ms();
            let sleep = Duration::from_millis(
                self.next_deadline(now).saturating_sub(now).clamp(0, 60_000) as u64,
            );
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => return,
                },
                () = queue.arrived() => self.take_fresh().await,
                () = tokio::time::sleep(sleep) => {}
                () = shutdown.cancelled() => {
                    for s in self.agents.values_mut() {
                        if let Some((_, out)) = s.conn.take() {
                            out.send(Outbound::Close(1012, "the server is restarting".into()));
                        }
                    }
                    return;
                }
            }
            // Whatever else has arrived meanwhile joins this turn, and its commit.
            for _ in 0..TURN {
                match rx.try_recv() {
                    Ok(cmd) => self.handle(cmd).await,
                    Err(_) => break,
                }
            }
            // Contacts queued meanwhile are routed in this turn too: an agent who has
            // just become free is offered the best of everything waiting, not only of
            // what the router had taken up before.
            self.take_fresh().await;
            let now = now_ms();
            self.expire(now).await;
            self.index.observe(&self.rules, now);
            self.dispatch(now).await;
            self.note_idle(now);
            self.flush().await;
            // Supervisors are woken only when what they see may have changed.
            if std::mem::take(&mut self.changed) {
                self.changes.send_modify(|v| *v += 1);
            }
        }
    }

    /// The earliest moment something is due without any event.
    fn next_deadline(&self, now: i64) -> i64 {
        let mut next = now + 60_000;
        for o in self.offers.values() {
            next = next.min(o.expires_at);
        }
        for s in self.agents.values() {
            if let Some(t) = s.wrap_up_until {
                if t > now {
                    next = next.min(t);
                }
            }
            match (s.disconnected_at, &s.conn) {
                (Some(at), _) => next = next.min(at + self.times.resume_grace.as_millis() as i64),
                (None, Some(_)) => {
                    next = next.min(s.last_heard + self.times.heartbeat_timeout.as_millis() as i64)
                }
                (None, None) => {}
            }
        }
        // Rings open on a timetable: wake when the next one does, if anyone could take it.
        if !self.index.is_empty()
            && self
                .agents
                .values()
                .any(|s| s.presence == Presence::Available)
        {
            if let Some(at) = self
                .index
                .next_ring_opening(&self.rules, &self.staffed(), now)
            {
                next = next.min(at);
            }
        }
        next
    }

    async fn take_fresh(&mut self) {
        let fresh = self.queue.take_fresh();
        if fresh.is_empty() {
            return;
        }
        self.changed = true;
        // Tier and owner as the store has them now: a customer changed since the
        // contact's commit has had it decided again there.
        let ids: Vec<String> = fresh.iter().map(|w| w.interaction_id.clone()).collect();
        let now: HashMap<String, WaitingNow> = match self.current(&ids).await {
            Ok(c) => c
                .into_iter()
                .map(|n| (n.interaction_id.clone(), n))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Could not read customers' owners; routing without them");
                HashMap::new()
            }
        };
        for w in fresh {
            let (tier, owner) = match now.get(&w.interaction_id) {
                Some(n) => {
                    self.queue.retier(&n.interaction_id, &n.tier);
                    (n.tier.clone(), n.owner.clone())
                }
                None => (w.tier, None),
            };
            let item = Item {
                w: WaitingInteraction {
                    id: w.interaction_id.clone(),
                    // The agent who handled the thread it continues goes first, in the
                    // owner's place; otherwise the customer's account manager.
                    owner: w.preferred_agent.clone().or(owner),
                    tier,
                    channel: w.channel,
                    topic: w.topic,
                    enqueued_at_ms: w.enqueued_at,
                    excluded: Vec::new(),
                },
                customer_id: w.customer_id,
                preferred: w.preferred_agent,
                contact_key: w.contact_key,
                offer: None,
            };
            self.index.insert(item.w.clone());
            self.waiting.insert(w.interaction_id, item);
        }
    }

    /// Waiting contacts whose customer changed take the tier and owner the store has
    /// for them now; one on offer keeps its offer and waits under them if it comes back.
    /// One not yet taken from the queue is read when it is.
    async fn customers_changed(&mut self, ids: Vec<String>) {
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| self.waiting.contains_key(id))
            .collect();
        if ids.is_empty() {
            return;
        }
        let current = match self.current(&ids).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read changed customers' waiting contacts");
                return;
            }
        };
        for now in current {
            let Some(item) = self.waiting.get_mut(&now.interaction_id) else {
                continue;
            };
            self.queue.retier(&now.interaction_id, &now.tier);
            let owner = item.preferred.clone().or(now.owner);
            item.customer_id = now.customer_id;
            if item.w.tier == now.tier && item.w.owner == owner {
                continue;
            }
            item.w.tier = now.tier;
            item.w.owner = owner;
            if item.offer.is_none() {
                self.index.insert(item.w.clone());
            }
        }
    }

    /// Waiting interactions as the store has them now.
    async fn current(&self, ids: &[String]) -> Result<Vec<WaitingNow>, sqlx::Error> {
        let mut conn = self.store.pool().acquire().await?;
        crate::customers::waiting::current(&mut conn, ids).await
    }

    async fn handle(&mut self, cmd: Command) {
        self.changed |= !matches!(cmd, Command::Snapshot { .. });
        match cmd {
            Command::Connect {
                agent,
                resume,
                out,
                reply,
            } => {
                // A resuming desktop is sent its missed events from the log: commit
                // what this turn decided so far, so the log holds only committed events.
                self.flush().await;
                self.next_conn += 1;
                let conn = self.next_conn;
                self.connect(agent, resume, conn, out).await;
                let _ = reply.send(conn);
            }
            Command::Message {
                agent_id,
                conn,
                msg,
            } => {
                let now = now_ms();
                match self.agents.get_mut(&agent_id) {
                    Some(s) if s.conn.as_ref().is_some_and(|(c, _)| *c == conn) => {
                        s.last_heard = now
                    }
                    _ => return,
                }
                self.message(&agent_id, msg, now).await;
            }
            Command::Disconnect { agent_id, conn } => {
                let now = now_ms();
                let attached = self
                    .agents
                    .get(&agent_id)
                    .is_some_and(|s| s.conn.as_ref().is_some_and(|(c, _)| *c == conn));
                if attached {
                    self.vanish(&agent_id, now).await;
                }
            }
            Command::SetRules { rules, version } => {
                // Everything already waiting is ordered and ringed by the new rules from
                // this turn on: the policy reads them afresh for every decision.
                self.rules = rules;
                self.rules_version = version;
                tracing::info!(version, "Routing by a new version of the rules");
            }
            Command::CustomersChanged(ids) => self.customers_changed(ids).await,
            Command::AgentChanged { agent, log_out } => {
                let now = now_ms();
                let id = agent.id.clone();
                match self.agents.get_mut(&id) {
                    Some(s) if !log_out && agent.active => s.row = agent,
                    Some(s) => {
                        let reason = if agent.active {
                            "token reset"
                        } else {
                            "agent removed"
                        };
                        if let Some((_, out)) = s.conn.take() {
                            out.send(Outbound::Close(4004, reason.into()));
                        }
                        self.vanish(&id, now).await;
                        self.note_presence();
                        self.agents.remove(&id);
                    }
                    None => {}
                }
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(now_ms()));
            }
            Command::Move {
                interaction_id,
                to,
                by,
                reply,
            } => {
                self.take_fresh().await;
                let result = self.move_to(&interaction_id, &to, &by, now_ms()).await;
                // Answered once what it decided is committed.
                self.flush().await;
                let _ = reply.send(result);
            }
            Command::SetAway {
                agent_id,
                reason,
                reply,
            } => {
                let done = self.set_away(&agent_id, reason, now_ms()).await;
                self.flush().await;
                let _ = reply.send(done);
            }
            Command::Tell {
                interaction_id,
                mut event,
            } => {
                if let Some(s) = self
                    .agents
                    .values_mut()
                    .find(|s| s.held.contains_key(&interaction_id))
                {
                    event["interaction_id"] = json!(interaction_id);
                    s.emit(event);
                }
            }
            Command::Positions { ids, reply } => {
                self.take_fresh().await;
                let _ = reply.send(self.positions(&ids, now_ms()));
            }
            Command::End {
                interaction_id,
                reason,
                reply,
            } => {
                self.take_fresh().await;
                let result = self.end(&interaction_id, &reason, now_ms()).await;
                self.replies.push((reply, result));
            }
        }
    }

    /// Decides a move of an interaction and its history event; both are committed with
    /// the rest of this turn's writes, before anyone is told. The router is the only
    /// writer of these states, so what it holds in memory is what the store will hold.
    fn stage(
        &mut self,
        id: &str,
        from: &'static [&'static str],
        to: &'static str,
        agent: Option<&str>,
        event: NewEvent,
    ) {
        self.pending.push(Pending::Transition {
            id: id.to_string(),
            from,
            to,
            agent: agent.map(str::to_string),
        });
        self.events.push(event);
    }

    /// An offer that ended unaccepted: the interaction waits again (back in the index),
    /// with why in its history.
    fn requeue(
        &mut self,
        offer: &Offer,
        kind: &'static str,
        actor: String,
        reason: Option<String>,
    ) {
        let Some(item) = self.waiting.get_mut(&offer.interaction_id) else {
            return;
        };
        item.offer = None;
        self.index.insert(item.w.clone());
        let event = NewEvent {
            customer_id: item.customer_id.clone(),
            interaction_id: Some(offer.interaction_id.clone()),
            kind,
            actor,
            data: json!({ "agent_id": offer.agent_id, "reason": reason }),
        };
        self.stage(&offer.interaction_id, &["offered"], "queued", None, event);
    }

    /// Commits this turn's writes in one transaction, then sends the events and answers
    /// that depend on them. A store that fails is retried (nothing is told meanwhile);
    /// at shutdown, what was not committed is dropped, and offers die with the process
    /// anyway.
    async fn flush(&mut self) {
        self.note_presence();
        if !self.pending.is_empty() || !self.events.is_empty() || !self.presence_log.is_empty() {
            let started = now_ms();
            let mut delay = Duration::from_millis(50);
            loop {
                match self.write_pending().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "The router could not commit; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = self.stop.cancelled() => return,
                        }
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
            let stored: Vec<ChannelKind> = self
                .pending
                .iter()
                .filter_map(|p| match p {
                    Pending::Command { channel, .. } => Some(*channel),
                    _ => None,
                })
                .collect();
            for channel in stored {
                let _ = self.commands.send(channel);
            }
            self.pending.clear();
            self.events.clear();
            self.presence_log.clear();
            for a in self.announced.drain(..) {
                let _ = self.assignments.send(a);
            }
            for id in self.leaving.drain(..) {
                self.queue.remove(&id);
            }
            for c in self.completed.drain(..) {
                let _ = self.completions.send(c);
            }
            // While the store stalled, nobody's messages were read: a stall must not
            // count against agents' heartbeats or offers.
            let stalled = now_ms() - started;
            if stalled > 1000 {
                for s in self.agents.values_mut() {
                    s.last_heard += stalled;
                }
                for o in self.offers.values_mut() {
                    o.expires_at += stalled;
                }
            }
        }
        for s in self.agents.values_mut() {
            if !s.unsent.is_empty() {
                self.changed = true;
            }
            s.send_unsent();
        }
        for (reply, result) in self.replies.drain(..) {
            let _ = reply.send(result);
        }
    }

    async fn write_pending(&self) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
        for p in &self.pending {
            let moved = match p {
                Pending::Transition {
                    id,
                    from,
                    to,
                    agent,
                } => interactions::transition(&mut tx, id, from, to, agent.as_deref(), now).await?,
                Pending::Complete {
                    id,
                    agent,
                    disposition,
                    notes,
                } => {
                    interactions::complete(&mut tx, id, agent, disposition, notes.as_deref(), now)
                        .await?
                }
                Pending::Command {
                    id,
                    channel,
                    payload,
                } => {
                    // Stored once: a reply sent again under the same id is not repeated.
                    crate::store::outbox::put(
                        &mut tx,
                        id,
                        channel.as_str(),
                        &payload.to_string(),
                        false,
                        now,
                    )
                    .await?;
                    true
                }
            };
            if !moved {
                tracing::warn!(
                    "An interaction was not in the state the router expected; its move was skipped"
                );
            }
        }
        history::append(&mut tx, &self.events, now).await?;
        presence::append(&mut tx, &self.presence_log, now).await?;
        tx.commit().await
    }

    /// Stages a presence-log entry for every agent whose presence changed since the last.
    fn note_presence(&mut self) {
        for s in self.agents.values_mut() {
            if s.logged != s.presence {
                self.presence_log.push(presence::Change {
                    agent_id: s.row.id.clone(),
                    status: s.presence.as_str(),
                });
                s.logged = s.presence;
            }
        }
    }
}
