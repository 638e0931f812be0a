//! The router: one task that owns the live routing state (waiting interactions, agent
//! sessions, offers) and acts on events — an interaction arriving, an agent's message,
//! an agent connecting or vanishing, a deadline passing. After each event it asks the
//! pure [`policy`](super::policy) what to offer, and carries that out: the store first,
//! then the agent's desktop. It sleeps until the next deadline it knows of (an offer
//! expiring, a ring opening, a wrap-up ending, a heartbeat due), never on a fixed tick.
//!
//! Durability: every transition (offered, assigned, back to the queue, completed) is
//! committed before the agent is told. Offers die with the server: at start-up every
//! interaction still `offered` waits again; `assigned` ones stay with their agent, who
//! gets them back on login.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_contract::ChannelKind;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::index::{self, WaitingIndex};
use super::policy::{self, AgentView, Load, Presence, WaitingInteraction};
use super::protocol::{ClientMessage, PresenceRequest, Resume};
use super::rules::{Capacity, Rules};
use crate::queue::{Queue, Waiting};
use crate::store::agents::AgentRow;
use crate::store::history::{self, NewEvent};
use crate::store::interactions::{self, InteractionRow};
use crate::store::{customers, new_id, now_ms, rfc3339, Store};
use crate::telemetry;

/// Events kept per agent for a reconnecting desktop.
const RESUME_LOG: usize = 1000;
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
        out: mpsc::UnboundedSender<Outbound>,
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
    End {
        interaction_id: String,
        reason: String,
        reply: oneshot::Sender<Result<Ended, sqlx::Error>>,
    },
}

/// What ending an interaction came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It was waiting: now abandoned, with its wait logged.
    Abandoned,
    /// An agent holds it: the agent was told, and completes it as usual.
    WhileHeld,
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
}

impl RouterHandle {
    /// Attaches a logged-in desktop; answers the connection's id.
    pub async fn connect(
        &self,
        agent: AgentRow,
        resume: Option<Resume>,
        out: mpsc::UnboundedSender<Outbound>,
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

    /// Changes each time the live state may have changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// An agent's record changed: a logged-in agent is routed by the new one at once; one
    /// removed, or whose token was reset (`log_out`), is disconnected (close code 4004).
    pub fn agent_changed(&self, agent: AgentRow, log_out: bool) {
        let _ = self.tx.send(Command::AgentChanged { agent, log_out });
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
    /// The offer out for it, if any.
    offer: Option<String>,
}

struct Offer {
    interaction_id: String,
    agent_id: String,
    expires_at: i64,
}

struct Session {
    row: AgentRow,
    presence: Presence,
    /// Presence to return to when a vanished desktop resumes.
    presence_before: Presence,
    conn: Option<(u64, mpsc::UnboundedSender<Outbound>)>,
    session: String,
    seq: u64,
    log: VecDeque<(u64, String)>,
    last_heard: i64,
    disconnected_at: Option<i64>,
    offer: Option<String>,
    /// Held interactions and their channels.
    held: HashMap<String, ChannelKind>,
    wrap_up_until: Option<i64>,
    idle_since: i64,
    last_offered_at: i64,
    misses: u32,
    /// Events numbered but not yet sent: they go out once the router's writes for them
    /// are committed.
    unsent: Vec<String>,
}

impl Session {
    /// Numbers an event and keeps it for a resume; it is sent at the next flush, after
    /// the writes it reports are committed.
    fn emit(&mut self, mut event: Value) {
        self.seq += 1;
        event["seq"] = json!(self.seq);
        let text = event.to_string();
        self.log.push_back((self.seq, text.clone()));
        while self.log.len() > RESUME_LOG {
            self.log.pop_front();
        }
        self.unsent.push(text);
    }

    /// Sends the events committed since the last flush.
    fn send_unsent(&mut self) {
        let unsent = std::mem::take(&mut self.unsent);
        if let Some((_, out)) = &self.conn {
            for text in unsent {
                let _ = out.send(Outbound::Frame(text));
            }
        }
    }

    /// Sends a frame that is not kept (answers to the frame just received).
    fn reply(&self, event: Value) {
        if let Some((_, out)) = &self.conn {
            let _ = out.send(Outbound::Frame(event.to_string()));
        }
    }

    fn error(&self, code: &str, message: &str) {
        self.reply(json!({ "type": "error", "code": code, "message": message }));
    }

    fn load(&self) -> Load {
        let mut load = Load::default();
        for channel in self.held.values() {
            match channel {
                ChannelKind::Phone => load.phone += 1,
                ChannelKind::Chat => load.chat += 1,
                ChannelKind::Email => load.email += 1,
                ChannelKind::Api => load.api += 1,
            }
        }
        load
    }
}

/// Starts the router task.
pub fn start(
    store: Store,
    rules: Arc<Rules>,
    queue: Arc<Queue>,
    times: SessionTimes,
    shutdown: CancellationToken,
) -> (RouterHandle, tokio::task::JoinHandle<()>) {
    let (changes_tx, changes_rx) = watch::channel(0u64);
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router {
        store,
        rules,
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
        pending: Vec::new(),
        events: Vec::new(),
        replies: Vec::new(),
        stop: shutdown.clone(),
    };
    (
        RouterHandle {
            tx,
            changes: changes_rx,
        },
        tokio::spawn(router.run(rx, shutdown)),
    )
}

struct Router {
    store: Store,
    rules: Arc<Rules>,
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
    /// Writes decided this turn of the loop, committed together at its end.
    pending: Vec<Pending>,
    /// History events decided this turn, committed with them.
    events: Vec<NewEvent>,
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
}

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
                            let _ = out.send(Outbound::Close(1012, "the server is restarting".into()));
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
            let now = now_ms();
            self.expire(now).await;
            self.dispatch(now).await;
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
        if self
            .agents
            .values()
            .any(|s| s.presence == Presence::Available)
        {
            if let Some(at) = self.index.next_ring_opening(&self.rules, now) {
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
        let owners = match self.owners(&fresh).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read customers' owners; routing without them");
                HashMap::new()
            }
        };
        for w in fresh {
            let item = Item {
                w: WaitingInteraction {
                    id: w.interaction_id.clone(),
                    owner: owners.get(&w.customer_id).cloned().flatten(),
                    tier: w.tier,
                    channel: w.channel,
                    topic: w.topic,
                    enqueued_at_ms: w.enqueued_at,
                    excluded: Vec::new(),
                },
                customer_id: w.customer_id,
                offer: None,
            };
            self.index.insert(item.w.clone());
            self.waiting.insert(w.interaction_id, item);
        }
    }

    /// Each new interaction's customer's owner, in one query.
    async fn owners(
        &self,
        fresh: &[Waiting],
    ) -> Result<HashMap<String, Option<String>>, sqlx::Error> {
        let mut ids: Vec<String> = fresh.iter().map(|w| w.customer_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut conn = self.store.pool().acquire().await?;
        customers::owners_of(&mut conn, &ids).await
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
                            let _ = out.send(Outbound::Close(4004, reason.into()));
                        }
                        self.vanish(&id, now).await;
                        self.agents.remove(&id);
                    }
                    None => {}
                }
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(now_ms()));
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

    async fn connect(
        &mut self,
        agent: AgentRow,
        resume: Option<Resume>,
        conn: u64,
        out: mpsc::UnboundedSender<Outbound>,
    ) {
        let now = now_ms();
        let id = agent.id.clone();
        let held = self.held_by(&id).await;
        if let Some(s) = self.agents.get_mut(&id) {
            if let Some((_, old)) = s.conn.take() {
                let _ = old.send(Outbound::Close(4002, "logged in elsewhere".into()));
            }
            let resumable = resume
                .as_ref()
                .is_some_and(|r| r.session == s.session && r.last_seq <= s.seq);
            if resumable {
                let from = resume.map(|r| r.last_seq).unwrap_or(0);
                let missed: Vec<String> = s
                    .log
                    .iter()
                    .filter(|(seq, _)| *seq > from)
                    .map(|(_, t)| t.clone())
                    .collect();
                let complete = s.log.front().is_none_or(|(first, _)| *first <= from + 1);
                s.conn = Some((conn, out));
                s.row = agent;
                s.last_heard = now;
                // A desktop that comes back after the server noticed its drop returns
                // to its presence before the drop; one that comes back before keeps it.
                if s.disconnected_at.take().is_some() {
                    s.presence = s.presence_before;
                }
                let assigned: Vec<Value> = held
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(interaction_json)
                    .collect();
                let welcome = json!({ "type": "welcome", "session": s.session, "seq": s.seq, "resumed": true,
                                      "complete": complete, "presence": s.presence, "agent": agent_json(&s.row),
                                      "assigned": assigned });
                s.reply(welcome);
                for text in missed {
                    if let Some((_, out)) = &s.conn {
                        let _ = out.send(Outbound::Frame(text));
                    }
                }
                return;
            }
            // Not resumable: a new session, as below; keep what it holds.
        }
        let held = match held {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read an agent's assigned work");
                let _ = out.send(Outbound::Close(
                    1011,
                    "the store is unavailable; reconnect shortly".into(),
                ));
                // An earlier session of this agent has lost its connection above: it
                // waits for a resume like any vanished one.
                if self.agents.contains_key(&id) {
                    self.vanish(&id, now).await;
                }
                return;
            }
        };
        let mut s = Session {
            row: agent,
            presence: Presence::Away,
            presence_before: Presence::Away,
            conn: Some((conn, out)),
            session: new_id(),
            seq: 0,
            log: VecDeque::new(),
            last_heard: now,
            disconnected_at: None,
            offer: None,
            held: held
                .iter()
                .map(|i| {
                    (
                        i.id.clone(),
                        ChannelKind::parse(&i.channel).unwrap_or(ChannelKind::Api),
                    )
                })
                .collect(),
            wrap_up_until: None,
            idle_since: now,
            last_offered_at: 0,
            misses: 0,
            unsent: Vec::new(),
        };
        if let Some(old) = self.agents.remove(&id) {
            s.offer = None;
            s.wrap_up_until = old.wrap_up_until;
            s.idle_since = old.idle_since;
            s.last_offered_at = old.last_offered_at;
            if let Some(offer) = old.offer {
                self.revoke(&offer, "reconnected", now).await;
            }
        }
        let assigned: Vec<Value> = held.iter().map(interaction_json).collect();
        s.reply(json!({ "type": "welcome", "session": s.session, "seq": 0, "resumed": false, "complete": true,
                        "presence": s.presence, "agent": agent_json(&s.row), "assigned": assigned }));
        telemetry::agent_event("login");
        self.agents.insert(id, s);
    }

    async fn held_by(&self, agent_id: &str) -> Result<Vec<InteractionRow>, sqlx::Error> {
        let mut conn = self.store.pool().acquire().await?;
        interactions::assigned_to(&mut conn, agent_id).await
    }

    async fn message(&mut self, agent_id: &str, msg: ClientMessage, now: i64) {
        match msg {
            ClientMessage::Login { .. } => {
                if let Some(s) = self.agents.get(agent_id) {
                    s.error("already_logged_in", "this connection is logged in already");
                }
            }
            ClientMessage::Heartbeat {} => {
                if let Some(s) = self.agents.get(agent_id) {
                    s.reply(json!({ "type": "heartbeat_ack" }));
                }
            }
            ClientMessage::Presence { status, reason } => {
                if let Some(s) = self.agents.get_mut(agent_id) {
                    s.presence = match status {
                        PresenceRequest::Available => Presence::Available,
                        PresenceRequest::Away => Presence::Away,
                    };
                    if s.presence == Presence::Available {
                        s.misses = 0;
                    }
                    let reason = reason.map(|r| r.chars().take(100).collect::<String>());
                    s.emit(json!({ "type": "presence", "status": s.presence, "reason": reason }));
                }
            }
            ClientMessage::Accept { offer_id } => self.accept(agent_id, &offer_id, now).await,
            ClientMessage::Decline { offer_id, reason } => {
                let mine = self
                    .offers
                    .get(&offer_id)
                    .is_some_and(|o| o.agent_id == agent_id);
                if !mine {
                    if let Some(s) = self.agents.get(agent_id) {
                        s.error("not_your_offer", "that offer is not yours or has ended");
                    }
                    return;
                }
                self.lapse(&offer_id, "offer_declined", reason, now).await;
            }
            ClientMessage::Complete {
                interaction_id,
                disposition,
                notes,
            } => {
                self.complete(agent_id, &interaction_id, &disposition, notes, now)
                    .await
            }
        }
    }

    async fn accept(&mut self, agent_id: &str, offer_id: &str, now: i64) {
        let Some(offer) = self.offers.get(offer_id).filter(|o| o.agent_id == agent_id) else {
            if let Some(s) = self.agents.get(agent_id) {
                s.error(
                    "not_your_offer",
                    "that offer is not yours or has ended (declined, timed out or withdrawn)",
                );
            }
            return;
        };
        let interaction_id = offer.interaction_id.clone();
        let Some(item) = self.waiting.get(&interaction_id) else {
            return;
        };
        let waited_ms = now - item.w.enqueued_at_ms;
        let (tier, channel) = (item.w.tier.clone(), item.w.channel);
        let event = NewEvent {
            customer_id: item.customer_id.clone(),
            interaction_id: Some(interaction_id.clone()),
            kind: "assigned",
            actor: agent_id.to_string(),
            data: json!({ "agent_id": agent_id, "waited_secs": waited_ms as f64 / 1000.0 }),
        };
        self.stage(
            &interaction_id,
            &["offered"],
            "assigned",
            Some(agent_id),
            event,
        );
        let Some(s) = self.agents.get_mut(agent_id) else {
            return;
        };
        self.offers.remove(offer_id);
        self.waiting.remove(&interaction_id);
        self.index.remove(&interaction_id);
        self.queue.remove(&interaction_id);
        s.offer = None;
        s.misses = 0;
        s.held.insert(interaction_id.clone(), channel);
        s.emit(
            json!({ "type": "assigned", "offer_id": offer_id, "interaction_id": interaction_id }),
        );
        telemetry::offer_outcome("accepted", &tier);
        telemetry::answered(&tier, waited_ms);
        self.answered.push_back((now, tier, waited_ms));
    }

    async fn complete(
        &mut self,
        agent_id: &str,
        interaction_id: &str,
        disposition: &str,
        notes: Option<String>,
        now: i64,
    ) {
        // An accept earlier in this turn must be in the store before it is read.
        self.flush().await;
        let Some(s) = self.agents.get(agent_id) else {
            return;
        };
        if !s.held.contains_key(interaction_id) {
            s.error("not_yours", "you do not hold that interaction");
            return;
        }
        let disposition: String = disposition.trim().chars().take(64).collect();
        if disposition.is_empty() || disposition.contains('\0') {
            s.error(
                "bad_field",
                "disposition: name the outcome (resolved, callback, escalated…)",
            );
            return;
        }
        let notes = notes
            .map(|n| n.replace('\0', ""))
            .map(|n| n.chars().take(10_000).collect::<String>());
        let result = async {
            let mut conn = self.store.pool().acquire().await?;
            interactions::get(&mut conn, interaction_id).await
        }
        .await
        .map(|row| match row {
            Some(row) if row.state == "assigned" && row.agent_id.as_deref() == Some(agent_id) => {
                self.events.push(NewEvent {
                    customer_id: row.customer_id,
                    interaction_id: Some(interaction_id.to_string()),
                    kind: "completed",
                    actor: agent_id.to_string(),
                    data: json!({ "agent_id": agent_id, "disposition": disposition, "notes": notes }),
                });
                self.pending.push(Pending::Complete {
                    id: interaction_id.to_string(),
                    agent: agent_id.to_string(),
                    disposition: disposition.clone(),
                    notes: notes.clone(),
                });
                true
            }
            _ => false,
        });
        let wrap_up = self.rules.offer.wrap_up_secs as i64 * 1000;
        let Some(s) = self.agents.get_mut(agent_id) else {
            return;
        };
        match result {
            Ok(true) => {
                s.held.remove(interaction_id);
                s.wrap_up_until = Some(now + wrap_up);
                s.idle_since = now + wrap_up;
                s.emit(json!({ "type": "completed", "interaction_id": interaction_id, "wrap_up_until": rfc3339(now + wrap_up) }));
            }
            Ok(false) => {
                s.held.remove(interaction_id);
                s.error("not_yours", "that interaction is no longer yours");
            }
            Err(_) => s.error(
                "unavailable",
                "the store could not record the completion; try again",
            ),
        }
    }

    /// The contact ended on the customer's side: abandoned if it was waiting (its offer
    /// withdrawn), or told to the agent who holds it.
    async fn end(&mut self, id: &str, reason: &str, now: i64) -> Result<Ended, sqlx::Error> {
        // What this turn decided so far must be in the store before the store is read.
        self.flush().await;
        if let Some(item) = self.waiting.get(id) {
            let (tier, customer_id, waited_ms, offer) = (
                item.w.tier.clone(),
                item.customer_id.clone(),
                now - item.w.enqueued_at_ms,
                item.offer.clone(),
            );
            let event = NewEvent {
                customer_id,
                interaction_id: Some(id.to_string()),
                kind: "abandoned",
                actor: "customer".into(),
                data: json!({ "reason": reason, "waited_secs": waited_ms as f64 / 1000.0 }),
            };
            self.stage(id, &["queued", "offered"], "abandoned", None, event);
            self.waiting.remove(id);
            self.index.remove(id);
            // Committed before it leaves the queue: a resync from the store in between
            // would otherwise put it back.
            self.flush().await;
            self.queue.remove(id);
            if let Some(offer_id) = offer {
                if let Some(o) = self.offers.remove(&offer_id) {
                    if let Some(s) = self.agents.get_mut(&o.agent_id) {
                        s.offer = None;
                        s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "offer_id": offer_id, "reason": reason }));
                    }
                }
            }
            telemetry::abandoned(&tier, waited_ms);
            return Ok(Ended::Abandoned);
        }
        let mut conn = self.store.pool().acquire().await?;
        let Some(row) = interactions::get(&mut conn, id).await? else {
            return Ok(Ended::Unknown);
        };
        if row.state != "assigned" {
            return Ok(Ended::Already);
        }
        let event = NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(id.to_string()),
            kind: "ended_by_customer",
            actor: "customer".into(),
            data: json!({ "reason": reason, "agent_id": row.agent_id }),
        };
        self.events.push(event);
        if let Some(s) = row.agent_id.as_deref().and_then(|a| self.agents.get_mut(a)) {
            s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "reason": reason }));
        }
        Ok(Ended::WhileHeld)
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
        if !self.pending.is_empty() || !self.events.is_empty() {
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
            self.pending.clear();
            self.events.clear();
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
            };
            if !moved {
                tracing::warn!(
                    "An interaction was not in the state the router expected; its move was skipped"
                );
            }
        }
        history::append(&mut tx, &self.events, now).await?;
        tx.commit().await
    }

    /// An offer declined or timed out: the interaction waits again, not for this agent,
    /// and the agent's misses count toward being set away.
    async fn lapse(
        &mut self,
        offer_id: &str,
        kind: &'static str,
        reason: Option<String>,
        _now: i64,
    ) {
        let Some(offer) = self.offers.remove(offer_id) else {
            return;
        };
        let logged_in: Vec<String> = self.agents.keys().cloned().collect();
        let Some(item) = self.waiting.get_mut(&offer.interaction_id) else {
            return;
        };
        item.w.excluded.push(offer.agent_id.clone());
        // Once every agent logged in has passed on it, it starts a new round rather than
        // wait for an agent who has not: no interaction waits forever for want of one.
        if logged_in.iter().all(|a| item.w.excluded.contains(a)) {
            item.w.excluded.clear();
        }
        let tier = item.w.tier.clone();
        self.requeue(&offer, kind, offer.agent_id.clone(), reason);
        let what = if kind == "offer_declined" {
            "declined"
        } else {
            "timed_out"
        };
        telemetry::offer_outcome(what, &tier);
        let misses_before_away = self.rules.offer.misses_before_away;
        if let Some(s) = self.agents.get_mut(&offer.agent_id) {
            s.offer = None;
            s.misses += 1;
            s.emit(json!({ "type": "offer_ended", "offer_id": offer_id, "interaction_id": offer.interaction_id, "reason": what }));
            if s.misses >= misses_before_away && s.presence == Presence::Available {
                s.presence = Presence::Away;
                s.emit(json!({ "type": "presence", "status": "away", "reason": format!("{} offers missed in a row", s.misses) }));
            }
        }
    }

    /// Withdraws an offer through no fault of the agent (it vanished, the contact ended).
    async fn revoke(&mut self, offer_id: &str, reason: &str, _now: i64) {
        let Some(offer) = self.offers.remove(offer_id) else {
            return;
        };
        self.requeue(
            &offer,
            "offer_withdrawn",
            "system".into(),
            Some(reason.to_string()),
        );
        if let Some(s) = self.agents.get_mut(&offer.agent_id) {
            s.offer = None;
            s.emit(json!({ "type": "offer_ended", "offer_id": offer_id, "interaction_id": offer.interaction_id, "reason": reason }));
        }
    }

    /// A desktop's connection ended: its offer goes to the next agent at once; its
    /// session waits for a resume for the grace period.
    async fn vanish(&mut self, agent_id: &str, now: i64) {
        let offer = match self.agents.get_mut(agent_id) {
            Some(s) => {
                s.conn = None;
                s.disconnected_at = Some(now);
                if s.presence != Presence::Offline {
                    s.presence_before = s.presence;
                }
                s.presence = Presence::Offline;
                s.offer.clone()
            }
            None => return,
        };
        if let Some(offer) = offer {
            self.revoke(&offer, "agent disconnected", now).await;
        }
        telemetry::agent_event("disconnect");
    }

    /// Offers past their time, silent desktops, sessions past their grace.
    async fn expire(&mut self, now: i64) {
        let lapsed: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lapsed {
            self.lapse(&id, "offer_timed_out", None, now).await;
        }
        let silent: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, s)| {
                s.conn.is_some()
                    && s.last_heard + self.times.heartbeat_timeout.as_millis() as i64 <= now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            if let Some((_, out)) = self.agents.get_mut(&id).and_then(|s| s.conn.take()) {
                let _ = out.send(Outbound::Close(4003, "no heartbeat".into()));
            }
            self.vanish(&id, now).await;
        }
        while self
            .answered
            .front()
            .is_some_and(|(at, _, _)| at + SERVICE_WINDOW_MS < now)
        {
            self.answered.pop_front();
        }
        let grace = self.times.resume_grace.as_millis() as i64;
        self.agents
            .retain(|_, s| s.disconnected_at.is_none_or(|at| at + grace > now));
    }

    /// Asks the policy what to offer, and offers it.
    async fn dispatch(&mut self, now: i64) {
        if self.index.is_empty() {
            return;
        }
        let agents: Vec<AgentView> = self
            .agents
            .values()
            .map(|s| view(s, self.rules.capacity))
            .collect();
        let decisions = index::route(&self.index, &agents, &self.rules, now);
        for d in decisions {
            self.offer(d, now).await;
        }
    }

    async fn offer(&mut self, d: policy::Decision, now: i64) {
        let Some(item) = self.waiting.get(&d.interaction_id) else {
            return;
        };
        let event = NewEvent {
            customer_id: item.customer_id.clone(),
            interaction_id: Some(d.interaction_id.clone()),
            kind: "offered",
            actor: "router".into(),
            data: json!({ "rule_version": 1, "decision": d }),
        };
        let details = match self
            .offer_details(&d.interaction_id, &item.customer_id)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read an interaction to offer it");
                return;
            }
        };
        self.stage(
            &d.interaction_id,
            &["queued"],
            "offered",
            Some(&d.agent_id),
            event,
        );
        let offer_id = new_id();
        let expires_at = now + self.rules.offer.timeout_secs as i64 * 1000;
        if let Some(item) = self.waiting.get_mut(&d.interaction_id) {
            item.offer = Some(offer_id.clone());
        }
        self.index.remove(&d.interaction_id);
        self.offers.insert(
            offer_id.clone(),
            Offer {
                interaction_id: d.interaction_id.clone(),
                agent_id: d.agent_id.clone(),
                expires_at,
            },
        );
        telemetry::offer_outcome("offered", &d.tier);
        if let Some(s) = self.agents.get_mut(&d.agent_id) {
            s.offer = Some(offer_id.clone());
            s.last_offered_at = now;
            s.emit(json!({
                "type": "offer",
                "offer_id": offer_id,
                "expires_at": rfc3339(expires_at),
                "expires_in_ms": expires_at - now,
                "interaction": details,
            }));
        }
    }

    /// What an agent sees in an offer: the interaction, its customer, recent history.
    async fn offer_details(
        &self,
        interaction_id: &str,
        customer_id: &str,
    ) -> Result<Value, sqlx::Error> {
        let mut conn = self.store.pool().acquire().await?;
        let row = interactions::get(&mut conn, interaction_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let customer = customers::get(&mut conn, customer_id).await?;
        let identities = match &customer {
            Some(c) => customers::identities(&mut conn, &c.id).await?,
            None => Vec::new(),
        };
        let recent = history::page(&mut conn, customer_id, None, OFFER_HISTORY).await?;
        let mut v = interaction_json(&row);
        v["customer"] = json!({
            "id": customer_id,
            "name": customer.as_ref().and_then(|c| c.name.clone()),
            "identities": identities,
            "tier_reason": row.tier_reason,
        });
        v["history"] = recent
            .into_iter()
            .map(|e| json!({ "seq": e.seq, "kind": e.kind, "at": rfc3339(e.occurred_at), "interaction_id": e.interaction_id, "data": e.data }))
            .collect();
        Ok(v)
    }

    fn snapshot(&self, now: i64) -> Value {
        let mut by_tier: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut by_channel: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
        for item in self.waiting.values() {
            by_tier
                .entry(item.w.tier.clone())
                .or_default()
                .push((now - item.w.enqueued_at_ms) / 1000);
            *by_channel.entry(item.w.channel.as_str()).or_default() += 1;
            *by_topic
                .entry(item.w.topic.clone().unwrap_or_else(|| "(none)".into()))
                .or_default() += 1;
        }
        let tiers: BTreeMap<String, Value> = by_tier
            .into_iter()
            .map(|(t, ages)| {
                let oldest = ages.iter().copied().max().unwrap_or(0);
                (t, json!({ "waiting": ages.len(), "oldest_secs": oldest }))
            })
            .collect();
        let agents: Vec<Value> = self
            .agents
            .values()
            .map(|s| {
                json!({
                    "id": s.row.id, "name": s.row.name, "presence": s.presence,
                    "holding": s.held.len(), "offered": s.offer.is_some(),
                    "wrap_up": s.wrap_up_until.is_some_and(|t| t > now),
                })
            })
            .collect();
        json!({ "waiting": self.waiting.len(), "by_tier": tiers, "by_channel": by_channel, "by_topic": by_topic,
                "agents": agents, "service_level": self.service_level(now) })
    }

    /// Per tier, over the last 15 minutes: interactions answered, and the share answered
    /// within the tier's maximum wait (its service-level target).
    fn service_level(&self, now: i64) -> Value {
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (at, tier, waited) in &self.answered {
            if *at + SERVICE_WINDOW_MS < now {
                continue;
            }
            let target = self
                .rules
                .tiers
                .get(tier)
                .map_or(i64::MAX, |t| t.max_wait_secs as i64 * 1000);
            let e = per.entry(tier.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(*waited <= target);
        }
        per.into_iter()
            .map(|(tier, (n, within))| {
                let target = self.rules.tiers.get(tier).map(|t| t.max_wait_secs);
                (tier.to_string(), json!({ "answered": n, "within_target": within, "target_secs": target, "share": within as f64 / n as f64 }))
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }
}

fn view(s: &Session, rules_capacity: Capacity) -> AgentView {
    let o = s.row.capacity;
    AgentView {
        id: s.row.id.clone(),
        level: s.row.level,
        skills: s.row.skills.clone(),
        presence: s.presence,
        has_pending_offer: s.offer.is_some(),
        wrap_up_until_ms: s.wrap_up_until,
        load: s.load(),
        capacity: Capacity {
            phone: o.phone.unwrap_or(rules_capacity.phone),
            chat: o.chat.unwrap_or(rules_capacity.chat),
            email: o.email.unwrap_or(rules_capacity.email),
            api: o.api.unwrap_or(rules_capacity.api),
            calls_block_other_work: rules_capacity.calls_block_other_work,
        },
        idle_since_ms: s.idle_since,
        last_offered_at_ms: s.last_offered_at,
    }
}

fn agent_json(a: &AgentRow) -> Value {
    json!({ "id": a.id, "name": a.name, "level": a.level, "skills": a.skills, "extension": a.extension })
}

fn interaction_json(i: &InteractionRow) -> Value {
    json!({
        "id": i.id, "channel": i.channel, "state": i.state, "tier": i.tier, "topic": i.topic,
        "subject": i.subject, "body": i.body, "customer_id": i.customer_id, "created_at": rfc3339(i.created_at),
    })
}
