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
//! - `handle`: the handle (local, or the leader's on a cluster's follower), desktops'
//!   links, the commands, and the announcements;
//! - this file: the task's loop, and the turn's grouped commit (`flush`);
//! - `session`: one desktop's session and its numbered events;
//! - `sessions`: login, resume, messages, vanishing, expiry;
//! - `offers`: offers and their outcomes, and contacts ended by the customer;
//! - `connected`: contacts a channel's own system connected (a call answered at the
//!   phone system);
//! - `live`: the supervisors' view.

mod connected;
mod handle;
mod live;
mod offers;
mod pull;
mod session;
mod sessions;
mod supervise;
mod transfer;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_contract::{
    Assignment, ChannelKind, Command as ChannelCommand, CommandFor, Completed, Connected, Due,
    Position,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::index::{self, WaitingIndex};
use super::policy::{self, AgentView, Load, Presence, WaitingInteraction};
use super::protocol::{ClientMessage, PresenceRequest, Resume};
use super::rules::{Capacity, Rules};
use crate::customers::waiting::WaitingNow;
use crate::intake::window::Window;
use crate::queue::Queue;
use crate::store::agents::AgentRow;
use crate::store::history::{self, NewEvent};
use crate::store::interactions::{self, InteractionRow};
use crate::store::{customers, new_id, now_ms, presence, rfc3339, Store};
use crate::telemetry;
use session::{agent_json, interaction_json, view, Held, Session};

pub use handle::{
    Announcement, Call, DesktopLink, Ended, Moved, Outbound, Relay, Remote, Reply, RouterHandle,
    SessionTimes, Taken, DESKTOP_INBOX, DESKTOP_OUTBOX,
};
use handle::{Announcer, Command};
pub use pull::in_team;

/// Events kept per agent for a reconnecting desktop.
const RESUME_LOG: usize = 1000;
/// Bytes of events kept per agent for a reconnecting desktop: a shift's offers (each with
/// its customer's recent history) and messages would otherwise keep megabytes for every
/// agent. A desktop that comes back from further behind is told its resume is not
/// `complete`, and reloads its work as after a new login.
const RESUME_LOG_BYTES: usize = 64 * 1024;
/// The longest reply an agent may send, in bytes.
const MAX_REPLY_BYTES: usize = 256 * 1024;
/// History events sent with an offer.
const OFFER_HISTORY: i64 = 10;

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

/// Where a turn's answer to a position request goes.
type PositionsReply = oneshot::Sender<HashMap<String, Position>>;

/// Starts the router task behind `handle`: from now until it stops (at `shutdown`, or
/// when this node stops leading), the handle's callers talk to it.
pub fn start(
    handle: &RouterHandle,
    store: Store,
    rules: Arc<Rules>,
    rules_version: i64,
    queue: Arc<Queue>,
    times: SessionTimes,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::unbounded_channel();
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
        changes: handle.changes_sender().clone(),
        changed: true,
        answered: VecDeque::new(),
        idle: live::IdleWhileWaiting::default(),
        pending: Vec::new(),
        events: Vec::new(),
        presence_log: Vec::new(),
        announced: Vec::new(),
        leaving: Vec::new(),
        announcer: handle.announcer(),
        completed: Vec::new(),
        unread_offers: Vec::new(),
        replies: Vec::new(),
        asked_positions: Vec::new(),
        stop: shutdown.clone(),
        fenced: false,
    };
    handle.attach(tx);
    let handle = handle.clone();
    tokio::spawn(async move {
        router.run(rx, shutdown).await;
        handle.detach();
    })
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
    /// Tells the channels (of every node) what was committed.
    announcer: Arc<Announcer>,
    /// A newer leader holds the lead: this router stops.
    fenced: bool,
    /// Offers of this turn whose details are read beside its commit.
    unread_offers: Vec<UnreadOffer>,
    /// Answers to give once this turn's writes are committed.
    replies: Vec<Box<dyn FnOnce() + Send + Sync>>,
    /// Positions asked for this turn, answered together at its end: one sort of the
    /// waiting contacts per turn, however many calls ring in it.
    asked_positions: Vec<(Vec<String>, PositionsReply)>,
    stop: CancellationToken,
}

/// An offer made this turn whose frame waits for what it shows.
struct UnreadOffer {
    offer_id: String,
    interaction_id: String,
    customer_id: String,
    agent_id: String,
}

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
        /// The agent's wrap-up before this completion started one (`wrap_up_until`,
        /// `idle_since`), given back if the store refuses it; none when it started none.
        before: Option<(Option<i64>, i64)>,
    },
    /// A command for a channel's external system (an email reply to send), or one its
    /// system needs no longer (`delivered`: kept only so it is never sent). `about`: the
    /// interaction whose change it depends on (it is not stored when that change is
    /// refused); none for a reply, which stands either way.
    Command {
        id: String,
        channel: ChannelKind,
        payload: Value,
        delivered: bool,
        about: Option<String>,
        /// Stored claimed for this node's channel and handed to it at the commit (a
        /// chat reply, which the visitor waits for), rather than claimed by the
        /// channel in a commit of its own.
        handed: bool,
    },
}

impl Pending {
    /// The interaction whose state this write changes or depends on.
    fn about(&self) -> Option<&str> {
        match self {
            Pending::Transition { id, .. } | Pending::Complete { id, .. } => Some(id),
            Pending::Command { about, .. } => about.as_deref(),
        }
    }
}

/// What writing a turn came to.
enum Written {
    /// Everything was committed; these commands were stored handed to their channel.
    All(HashSet<String>),
    /// Nothing was committed: the store refused changes of these interactions.
    Refused(Vec<String>),
    /// Nothing was committed: a newer leader holds the lead.
    Fenced,
}

/// The most commands taken in one turn of the loop (one commit).
const TURN: usize = 1024;

/// The window service levels are measured over.
const SERVICE_WINDOW_MS: i64 = 15 * 60 * 1000;

impl Router {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>, shutdown: CancellationToken) {
        let queue = self.queue.clone();
        let mut window = Window::new(self.times.commit_window);
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
            let turn = std::time::Instant::now();
            // Once busy, the turn is held open a moment: whatever else arrives meanwhile
            // joins it, and its commit.
            window.hold().await;
            let mut commands = 1;
            for _ in 0..TURN {
                match rx.try_recv() {
                    Ok(cmd) => {
                        commands += 1;
                        self.handle(cmd).await
                    }
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
            let flushing = std::time::Instant::now();
            self.flush().await;
            telemetry::router_turn(turn.elapsed(), flushing.elapsed());
            window.committed(commands);
            self.answer_positions();
            if self.fenced {
                // Another node leads: its desktops reconnect to it (through their node).
                for s in self.agents.values_mut() {
                    if let Some((_, out)) = s.conn.take() {
                        out.send(Outbound::Close(
                            1012,
                            "another node leads now; reconnect".into(),
                        ));
                    }
                }
                return;
            }
            // Supervisors are woken only when what they see may have changed.
            if std::mem::take(&mut self.changed) {
                self.changes.send_modify(|v| *v += 1);
            }
            telemetry::router_inbox(rx.len());
        }
    }

    /// The earliest moment something is due without any event.
    fn next_deadline(&self, now: i64) -> i64 {
        let mut next = now + 60_000;
        // Writes decided after a commit (offers withdrawn because what they show could
        // not be read) go with the next turn, at most a second away: it also offers
        // them again, once the store can be read.
        if !self.pending.is_empty() {
            next = next.min(now + 1000);
        }
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

    /// Handles one command. Answers go back on the command's own channel; a caller that
    /// has gone away (`reply.send` failing) has nothing left to be told, and what it asked
    /// is committed or not as for any other caller.
    async fn handle(&mut self, cmd: Command) {
        self.changed |= !matches!(cmd, Command::Snapshot { .. } | Command::Ping { .. });
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
                ..
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
            Command::Take {
                interaction_id,
                agent_id,
                reply,
            } => {
                self.take_fresh().await;
                let result = self.take(&interaction_id, &agent_id, now_ms()).await;
                // Answered once it is committed: a second agent's take, after this one,
                // reads it taken. A caller gone meanwhile loses nothing: the taker's
                // desktop is told of the assignment as of any other.
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
                    // Told by a channel about its own doings: stands whatever the router
                    // decides this turn.
                    s.emit_always(event);
                }
            }
            Command::TellAgent { agent_id, event } => {
                if let Some(s) = self.agents.get_mut(&agent_id) {
                    s.emit_always(event);
                }
            }
            Command::Positions { ids, reply } => self.asked_positions.push((ids, reply)),
            // Answered after the turn's commit, as an acceptance or a completion is: the
            // lag is what they wait.
            Command::Ping { reply } => self.after_commit(move || {
                // The prober may have stopped waiting (shutting down): nothing to tell.
                let _ = reply.send(());
            }),
            Command::End {
                interaction_id,
                reason,
                close,
                reply,
            } => {
                self.take_fresh().await;
                let result = self.end(&interaction_id, &reason, close, now_ms()).await;
                self.after_commit(move || {
                    let _ = reply.send(result);
                });
            }
            Command::Connected {
                interaction_id,
                agent_id,
                channel,
                done,
                reply,
            } => {
                self.take_fresh().await;
                let result = self
                    .connected(
                        &interaction_id,
                        agent_id.as_deref(),
                        channel,
                        done,
                        now_ms(),
                    )
                    .await;
                self.after_commit(move || {
                    let _ = reply.send(result);
                });
            }
        }
    }

    /// Answers every position asked for this turn, from one look at the waiting
    /// contacts (taken up to now). A caller that has gone away has nothing to be told.
    fn answer_positions(&mut self) {
        if self.asked_positions.is_empty() {
            return;
        }
        let asked = std::mem::take(&mut self.asked_positions);
        let ids: Vec<String> = asked
            .iter()
            .flat_map(|(ids, _)| ids.iter().cloned())
            .collect();
        let all = self.positions(&ids, now_ms());
        for (ids, reply) in asked {
            let mine = ids
                .iter()
                .filter_map(|id| all.get(id).map(|p| (id.clone(), *p)))
                .collect();
            let _ = reply.send(mine);
        }
    }

    /// Answers a caller once this turn's writes are committed (a caller that has gone
    /// away loses nothing: the answer only reports what the store holds).
    fn after_commit(&mut self, reply: impl FnOnce() + Send + Sync + 'static) {
        self.replies.push(Box::new(reply));
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
        let mut refused = HashSet::new();
        let mut lost_completions = Vec::new();
        if !self.pending.is_empty() || !self.events.is_empty() || !self.presence_log.is_empty() {
            let started = now_ms();
            let mut delay = Duration::from_millis(50);
            // What this turn's offers show is read while its writes commit (a reader
            // beside the writer): the turn waits for the longer of the two, not both.
            let asked: Vec<(String, String)> = self
                .unread_offers
                .iter()
                .map(|u| (u.interaction_id.clone(), u.customer_id.clone()))
                .collect();
            let (first, shown) = if asked.is_empty() {
                (self.write_pending(&refused).await, Ok(HashMap::new()))
            } else {
                tokio::join!(self.write_pending(&refused), self.offers_details(&asked))
            };
            let mut first = Some(first);
            let handed = loop {
                let written = match first.take() {
                    Some(w) => w,
                    None => self.write_pending(&refused).await,
                };
                match written {
                    Ok(Written::All(stored)) => break stored,
                    // Writes of these interactions were refused: their state is not what
                    // the router held. The turn is written again without any of their
                    // writes, events or messages, and they are read again from the store.
                    Ok(Written::Refused(ids)) => {
                        tracing::error!(
                            interactions = ids.len(),
                            "The store refused a routing change: an interaction was not in the state the router held; it is read again"
                        );
                        telemetry::router_refused(ids.len());
                        refused.extend(ids);
                    }
                    // A newer leader holds the lead: nothing of this turn was written, and
                    // this router stops (its loop ends after this turn).
                    Ok(Written::Fenced) => {
                        tracing::warn!("A newer leader fenced this router's writes; it stops");
                        self.fenced = true;
                        self.pending.clear();
                        self.events.clear();
                        self.presence_log.clear();
                        self.announced.clear();
                        self.leaving.clear();
                        self.completed.clear();
                        self.unread_offers.clear();
                        for s in self.agents.values_mut() {
                            s.staged.clear();
                        }
                        self.replies.clear();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "The router could not commit; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = self.stop.cancelled() => return,
                        }
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            };
            // What was committed is announced to the channels of every node: commands
            // stored, assignments and completions (none about a refused interaction).
            let mut told: Vec<Announcement> = self
                .pending
                .iter()
                .filter_map(|p| match p {
                    Pending::Command {
                        channel,
                        delivered: false,
                        handed: false,
                        ..
                    } => Some(Announcement::CommandStored { channel: *channel }),
                    _ => None,
                })
                .collect();
            // Commands stored claimed go to this node's channel at once: no claim, no
            // read. Not heard (no listener, or one behind), they are due again after
            // their lease, from the store.
            let to_hand: Vec<Due> = self
                .pending
                .iter()
                .filter_map(|p| match p {
                    Pending::Command {
                        id,
                        channel,
                        payload,
                        handed: true,
                        ..
                    } if handed.contains(id) => Some(Due {
                        command: ChannelCommand {
                            id: id.clone(),
                            channel: *channel,
                            payload: payload.clone(),
                        },
                        attempts: 0,
                    }),
                    _ => None,
                })
                .collect();
            self.announcer.hand(to_hand);
            // A wrap-up runs from its completion as recorded, the commit: new work comes
            // no sooner after it by the history's clock than by the router's.
            let committed = now_ms();
            let wrap_up = self.rules.offer.wrap_up_secs as i64 * 1000;
            for p in &self.pending {
                if let Pending::Complete {
                    id,
                    agent,
                    before: Some(_),
                    ..
                } = p
                {
                    if let Some(s) = self.agents.get_mut(agent).filter(|_| !refused.contains(id)) {
                        if s.wrap_up_until.is_some_and(|t| t < committed + wrap_up) {
                            s.extend_wrap_up(id, committed + wrap_up);
                        }
                    }
                }
            }
            // Completions the store refused (the interaction was no longer the agent's):
            // their agents are told once the interaction is read again.
            lost_completions.extend(self.pending.iter().filter_map(|p| match p {
                Pending::Complete {
                    id, agent, before, ..
                } if refused.contains(id) => Some((id.clone(), agent.clone(), *before)),
                _ => None,
            }));
            self.pending.clear();
            self.events.clear();
            self.presence_log.clear();
            told.extend(
                self.announced
                    .drain(..)
                    .filter(|a| !refused.contains(&a.interaction_id))
                    .map(Announcement::Assigned),
            );
            for id in self.leaving.drain(..) {
                if !refused.contains(&id) {
                    self.queue.remove(&id);
                }
            }
            told.extend(
                self.completed
                    .drain(..)
                    .filter(|c| !refused.contains(&c.interaction_id))
                    .map(Announcement::Completed),
            );
            self.announcer.announce(told);
            // Before the frames staged this turn are sent (below): each offer's shows
            // what was read beside the commit.
            self.show_offers(shown, &refused).await;
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
            if !s.staged.is_empty() {
                self.changed = true;
            }
            s.release(&refused);
        }
        if !refused.is_empty() {
            self.resync(refused.into_iter().collect()).await;
            for (id, agent, before) in lost_completions {
                let Some(s) = self.agents.get_mut(&agent) else {
                    continue;
                };
                // Not completed: no wrap-up either.
                if let Some((wrap_up_until, idle_since)) = before {
                    s.wrap_up_until = wrap_up_until;
                    s.idle_since = idle_since;
                }
                if !s.held.contains_key(&id) {
                    s.error("not_yours", "that interaction is no longer yours");
                }
            }
            for s in self.agents.values_mut() {
                s.release(&HashSet::new());
            }
        }
        for reply in self.replies.drain(..) {
            reply();
        }
    }

    /// Writes this turn's decisions in one transaction, leaving out those about the
    /// interactions in `skip`. When the store refuses a state change (the interaction is
    /// not in the state the router held), nothing is committed, and the interactions it
    /// refused are answered so the turn is written again without them.
    async fn write_pending(&self, skip: &HashSet<String>) -> Result<Written, sqlx::Error> {
        let now = now_ms();
        let mut tx = match self.store.begin_routing().await {
            Ok(tx) => tx,
            Err(crate::store::FenceError::Fenced) => return Ok(Written::Fenced),
            Err(crate::store::FenceError::Store(e)) => return Err(e),
        };
        let mut refused = Vec::new();
        let mut stored_handed = HashSet::new();
        // The moves and completions of the turn are written a statement per kind for all
        // the interactions they change (the offers of a turn, its acceptances, its
        // completions), not one per write. The writes of one interaction keep their
        // order: they are taken in waves, each holding at most one write per
        // interaction, and a wave is written only after the one before it.
        let mut waves: Vec<Vec<&Pending>> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for p in &self.pending {
            let (Pending::Transition { id, .. } | Pending::Complete { id, .. }) = p else {
                continue;
            };
            if skip.contains(id) {
                continue;
            }
            let wave = seen.entry(id).and_modify(|w| *w += 1).or_insert(0);
            if waves.len() <= *wave {
                waves.push(Vec::new());
            }
            waves[*wave].push(p);
        }
        for wave in &waves {
            // Moves from the same states go together.
            let mut runs: Vec<(&[&str], Vec<interactions::Move<'_>>)> = Vec::new();
            let mut completions = Vec::new();
            for p in wave {
                match p {
                    Pending::Transition {
                        id,
                        from,
                        to,
                        agent,
                    } => {
                        let m = interactions::Move {
                            id,
                            to,
                            agent: agent.as_deref(),
                        };
                        match runs.iter_mut().find(|(f, _)| f == from) {
                            Some((_, run)) => run.push(m),
                            None => runs.push((from, vec![m])),
                        }
                    }
                    Pending::Complete {
                        id,
                        agent,
                        disposition,
                        notes,
                        ..
                    } => completions.push(interactions::Completion {
                        id,
                        agent,
                        disposition,
                        notes: notes.as_deref(),
                    }),
                    Pending::Command { .. } => {}
                }
            }
            for (from, run) in &runs {
                refused.extend(Self::write_run(&mut tx, run, from, now).await?);
            }
            if !completions.is_empty() {
                let done = interactions::complete_many(&mut tx, &completions, now).await?;
                refused.extend(
                    completions
                        .iter()
                        .filter(|c| !done.contains(c.id))
                        .map(|c| c.id.to_string()),
                );
            }
        }
        // Commands, in the order they were decided. Each stands or falls with its
        // interaction's change: when any change is refused nothing is committed, and the
        // turn is written again without the refused interactions' writes.
        for p in &self.pending {
            let Pending::Command {
                id,
                channel,
                payload,
                delivered,
                handed,
                ..
            } = p
            else {
                continue;
            };
            if p.about().is_some_and(|id| skip.contains(id)) {
                continue;
            }
            // Stored once: a reply sent again under the same id is not repeated.
            let payload = payload.to_string();
            if *handed && !*delivered {
                let until = now + crate::store::outbox::DELIVERY_LEASE_MS;
                if crate::store::outbox::put_claimed(
                    &mut tx,
                    id,
                    channel.as_str(),
                    &payload,
                    now,
                    until,
                )
                .await?
                {
                    stored_handed.insert(id.clone());
                }
            } else {
                crate::store::outbox::put(&mut tx, id, channel.as_str(), &payload, *delivered, now)
                    .await?;
            }
        }
        if !refused.is_empty() {
            tx.rollback().await?;
            return Ok(Written::Refused(refused));
        }
        let events: Vec<&NewEvent> = self
            .events
            .iter()
            .filter(|e| {
                !e.interaction_id
                    .as_ref()
                    .is_some_and(|id| skip.contains(id))
            })
            .collect();
        history::append(&mut tx, events, now).await?;
        presence::append(&mut tx, &self.presence_log, now).await?;
        tx.commit().await?;
        Ok(Written::All(stored_handed))
    }

    /// Writes one run of moves; answers the interactions the store refused to move.
    async fn write_run(
        tx: &mut crate::store::Conn,
        run: &[interactions::Move<'_>],
        from: &[&str],
        now: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let moved = interactions::transition_many(tx, run, from, now).await?;
        Ok(run
            .iter()
            .filter(|m| !moved.contains(m.id))
            .map(|m| m.id.to_string())
            .collect())
    }

    /// Interactions whose writes the store refused, taken as the store has them: out of
    /// the queue, offers and desktops they were in, back where the store says they are.
    async fn resync(&mut self, ids: Vec<String>) {
        let rows = async {
            let mut conn = self.store.pool().acquire().await?;
            let mut rows = Vec::with_capacity(ids.len());
            for id in &ids {
                rows.push(interactions::get(&mut conn, id).await?);
            }
            Ok::<_, sqlx::Error>(rows)
        }
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                // They are read again at the next refusal or restart; meanwhile the store
                // keeps refusing what does not match it, so nothing wrong is written.
                tracing::error!(error = %e, "Could not read refused interactions again");
                return;
            }
        };
        for (id, row) in ids.iter().zip(rows) {
            self.waiting.remove(id);
            self.index.remove(id);
            self.queue.remove(id);
            let offers: Vec<String> = self
                .offers
                .iter()
                .filter(|(_, o)| &o.interaction_id == id)
                .map(|(k, _)| k.clone())
                .collect();
            for offer_id in offers {
                if let Some(o) = self.offers.remove(&offer_id) {
                    if let Some(s) = self.agents.get_mut(&o.agent_id) {
                        s.offer = None;
                        s.emit(json!({ "type": "offer_ended", "offer_id": offer_id, "interaction_id": id, "reason": "changed" }));
                    }
                }
            }
            let holder = row
                .as_ref()
                .filter(|r| r.state == "assigned")
                .and_then(|r| r.agent_id.clone());
            for (agent_id, s) in self.agents.iter_mut() {
                let held = s.held.contains_key(id);
                if held && holder.as_deref() != Some(agent_id.as_str()) {
                    s.held.remove(id);
                    s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "reason": "changed" }));
                } else if !held && holder.as_deref() == Some(agent_id.as_str()) {
                    if let Some(r) = &row {
                        s.held.insert(id.clone(), Held::of(r));
                        s.emit(json!({ "type": "assigned", "interaction_id": id }));
                    }
                }
            }
            match row {
                // Waiting in the store: it waits here too, from the queue.
                Some(r) if r.state == "queued" => {
                    self.queue.push_all([crate::intake::waiting(&r)]);
                }
                // On offer in the store, but to nobody here: it waits again.
                Some(r) if r.state == "offered" => {
                    let event = NewEvent {
                        customer_id: r.customer_id.clone(),
                        interaction_id: Some(id.clone()),
                        kind: "offer_withdrawn",
                        actor: "system".into(),
                        data: json!({ "agent_id": r.agent_id, "reason": "read again after a refused change" }),
                    };
                    self.stage(id, &["offered"], "queued", None, event);
                    self.queue.push_all([crate::intake::waiting(&r)]);
                }
                _ => {}
            }
        }
        self.changed = true;
    }

    /// Stages a presence-log entry for every agent whose presence (or reason for being
    /// away) changed since the last.
    fn note_presence(&mut self) {
        for s in self.agents.values_mut() {
            let reason = s
                .away_reason
                .clone()
                .filter(|_| s.presence == Presence::Away);
            if s.logged != s.presence || s.logged_reason != reason {
                self.presence_log.push(presence::Change {
                    agent_id: s.row.id.clone(),
                    status: s.presence.as_str(),
                    reason: reason.clone(),
                });
                s.logged = s.presence;
                s.logged_reason = reason;
            }
        }
    }
}

/// The reason for being away as the presence log and the reports keep it: trimmed, in
/// lower case, at most 40 characters; none when empty.
pub(super) fn away_reason(said: &str) -> Option<String> {
    let r: String = said.trim().to_lowercase().chars().take(40).collect();
    let r = r.trim_end().to_string();
    (!r.is_empty()).then_some(r)
}
