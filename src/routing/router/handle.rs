//! The router's handle: how the rest of the server talks to the router — the local one
//! while it runs in this process, else (on a cluster's follower) the leader's, through
//! [`Remote`] — and the desktops' links, the commands, and the announcements the router
//! makes to the channels of every node.

use super::*;
use serde::{Deserialize, Serialize};
use switchboard_contract::BoxFuture;

/// What the router sends a desktop's connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A text frame.
    Frame(String),
    /// Close with a code and reason.
    Close(u16, String),
}

/// Messages of one desktop the router may hold unhandled: a desktop that sends faster is
/// not read until the router catches up (its socket, not the server's memory, holds the
/// rest), so no desktop can grow the router's inbox without bound.
pub const DESKTOP_INBOX: usize = 64;

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

/// How long agents' sessions live without word from them, and how long a busy router
/// holds a turn open.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimes {
    /// A connected desktop silent this long is disconnected.
    pub heartbeat_timeout: Duration,
    /// A disconnected agent may resume within this.
    pub resume_grace: Duration,
    /// Once busy, the router waits this long before each turn, so that more commands
    /// and contacts share its commit (`storage.commit_window_ms`).
    pub commit_window: Duration,
}

pub(super) enum Command {
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
        /// One of the desktop's places in the router's inbox, given back once handled.
        _place: tokio::sync::OwnedSemaphorePermit,
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
        /// One an agent holds is completed on the agent's behalf.
        close: bool,
        reply: oneshot::Sender<Result<Ended, sqlx::Error>>,
    },
    Move {
        interaction_id: String,
        to: String,
        by: String,
        reply: oneshot::Sender<Result<Moved, sqlx::Error>>,
    },
    Take {
        interaction_id: String,
        agent_id: String,
        reply: oneshot::Sender<Result<Taken, sqlx::Error>>,
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
    /// Answered as soon as the router reaches it: how far behind it is.
    Ping {
        reply: oneshot::Sender<()>,
    },
    Tell {
        interaction_id: String,
        event: Value,
    },
    TellAgent {
        agent_id: String,
        event: Value,
    },
    Connected {
        interaction_id: String,
        agent_id: Option<String>,
        channel: ChannelKind,
        done: Option<CommandFor>,
        reply: oneshot::Sender<Result<Connected, sqlx::Error>>,
    },
}

/// What an agent's taking a waiting contact from its team's queue came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Taken {
    /// It is the agent's now.
    Taken,
    /// It was not taken, and why (a colleague took it first, it is on offer, no room…).
    Refused(String),
    /// No such interaction.
    Unknown,
}

/// What moving an interaction came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// An agent held it: it was completed on the agent's behalf (an admin closing it,
    /// [`RouterHandle::close`]), and the agent was told.
    Closed {
        /// The agent.
        agent_id: String,
    },
    /// It had ended already.
    Already,
    /// It waited for the customer's first message, which never came: closed as left
    /// (state `left`), neither answered nor abandoned.
    Left,
    /// No such interaction.
    Unknown,
}

/// The router of another node (the cluster's leader), reached over the network: a
/// follower's handle sends it what its own callers ask.
pub trait Remote: Send + Sync + 'static {
    /// Asks the leader's router; `Err` when no leader could be reached.
    fn call(&self, call: Call) -> BoxFuture<'_, Result<Reply, String>>;
}

/// What a node asks the leader's router.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// The live queue and agents.
    Snapshot,
    /// End an interaction on the customer's side.
    End {
        /// The interaction.
        interaction_id: String,
        /// Why.
        reason: String,
        /// One an agent holds is completed on the agent's behalf.
        #[serde(default)]
        close: bool,
    },
    /// Move an interaction to an agent.
    Move {
        /// The interaction.
        interaction_id: String,
        /// The agent.
        to: String,
        /// Who asked.
        by: String,
    },
    /// An agent takes a waiting contact from its team's queue.
    Take {
        /// The interaction.
        interaction_id: String,
        /// The agent.
        agent_id: String,
    },
    /// Set an agent away.
    SetAway {
        /// The agent.
        agent_id: String,
        /// Why.
        reason: Option<String>,
    },
    /// Where waiting interactions stand.
    Positions {
        /// The interactions.
        ids: Vec<String>,
    },
    /// Tell the agent holding an interaction something.
    Tell {
        /// The interaction.
        interaction_id: String,
        /// What.
        event: Value,
    },
    /// Tell an agent something (a deadline of work it owns).
    TellAgent {
        /// The agent.
        agent_id: String,
        /// What.
        event: Value,
    },
    /// A channel's system connected an interaction.
    Connected {
        /// The interaction.
        interaction_id: String,
        /// To whom.
        agent_id: Option<String>,
        /// Its channel.
        channel: ChannelKind,
        /// The command its system needs no longer.
        done: Option<CommandFor>,
    },
    /// An agent's record changed (read it from the store).
    AgentChanged {
        /// The agent.
        agent_id: String,
        /// Its session ends.
        log_out: bool,
    },
    /// Customers changed: these waiting interactions are to be read again.
    CustomersChanged {
        /// The interactions.
        ids: Vec<String>,
    },
    /// A new version of the rules is active (read it from the store).
    RulesChanged,
}

/// The leader router's answer to a [`Call`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The live queue.
    Snapshot {
        /// As `GET /api/queue` shows it.
        view: Value,
    },
    /// An interaction ended.
    Ended {
        /// What it came to.
        ended: Ended,
    },
    /// An interaction moved.
    Moved {
        /// What it came to.
        moved: Moved,
    },
    /// An agent's take.
    Taken {
        /// What it came to.
        taken: Taken,
    },
    /// An agent set away (or not logged in).
    Away {
        /// Whether it was.
        done: bool,
    },
    /// Waiting interactions' places.
    Positions {
        /// By interaction.
        positions: HashMap<String, Position>,
    },
    /// A connection.
    Connected {
        /// What it came to.
        connected: Connected,
    },
    /// Done (for calls that answer nothing).
    Done,
    /// The store failed: retry.
    Unavailable {
        /// Why.
        message: String,
    },
}

/// What a node's router announces once committed, to the channels of every node:
/// assignments, completions, commands stored for a channel, agents typing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement {
    /// An interaction was assigned.
    Assigned(Assignment),
    /// An interaction was completed.
    Completed(Completed),
    /// A command was stored for a channel.
    CommandStored {
        /// The channel.
        channel: ChannelKind,
    },
    /// An agent is typing in a chat.
    Typing {
        /// The interaction.
        interaction_id: String,
    },
}

/// Where the leader's announcements go beyond this node (the cluster's relay).
pub trait Relay: Send + Sync + 'static {
    /// Passes announcements on to the other nodes, without waiting.
    fn publish(&self, announcements: Vec<Announcement>);
}

/// The announcements' listeners on this node, and the relay to the others.
pub(super) struct Announcer {
    /// Shared, not copied, by every listener: each call ringing listens while its
    /// answer waits.
    assignments: broadcast::Sender<Arc<Assignment>>,
    completions: broadcast::Sender<Completed>,
    commands: broadcast::Sender<ChannelKind>,
    /// Commands stored claimed for this node's channels (not relayed: the leader's own
    /// channels deliver them, as they would have claimed them).
    handed: broadcast::Sender<Arc<Vec<Due>>>,
    typing: broadcast::Sender<String>,
    relay: std::sync::RwLock<Option<Arc<dyn Relay>>>,
}

impl Announcer {
    fn new(buffer: usize) -> Announcer {
        let buffer = buffer.max(1);
        Announcer {
            assignments: broadcast::channel(buffer).0,
            completions: broadcast::channel(buffer).0,
            commands: broadcast::channel(buffer).0,
            handed: broadcast::channel(buffer).0,
            typing: broadcast::channel(buffer).0,
            relay: std::sync::RwLock::new(None),
        }
    }

    /// Tells this node's listeners, then the other nodes.
    pub(super) fn announce(&self, all: Vec<Announcement>) {
        if all.is_empty() {
            return;
        }
        for a in &all {
            self.here(a.clone());
        }
        let relay = self.relay.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(relay) = relay {
            relay.publish(all);
        }
    }

    /// Hands commands stored claimed to this node's channels. Nobody listening, or a
    /// listener behind, is no loss: they are due again from the store when their claim
    /// runs out.
    pub(super) fn hand(&self, due: Vec<Due>) {
        if due.is_empty() {
            return;
        }
        if self.handed.send(Arc::new(due)).is_err() {
            tracing::debug!(
                "No channel here took the commands handed; they are due again after their claim"
            );
        }
    }

    /// Tells this node's listeners only. Nobody listening is no loss: a channel that
    /// listens later, or fell behind, reads what it missed from the store.
    pub(super) fn here(&self, a: Announcement) {
        match a {
            Announcement::Assigned(x) => {
                let _ = self.assignments.send(Arc::new(x));
            }
            Announcement::Completed(x) => {
                let _ = self.completions.send(x);
            }
            Announcement::CommandStored { channel } => {
                let _ = self.commands.send(channel);
            }
            Announcement::Typing { interaction_id } => {
                let _ = self.typing.send(interaction_id);
            }
        }
    }
}

/// Talks to the router: the one running in this process while it runs (a single node,
/// or a cluster's leader), else — on a cluster's follower — the leader's, through
/// [`Remote`]. Cheap to clone.
#[derive(Clone)]
pub struct RouterHandle {
    shared: Arc<Shared>,
}

struct Shared {
    /// The local router's inbox, while it runs.
    local: std::sync::RwLock<Option<mpsc::UnboundedSender<Command>>>,
    /// The leader's router, on a cluster.
    remote: Option<Arc<dyn Remote>>,
    changes: watch::Sender<u64>,
    announcer: Arc<Announcer>,
}

/// A failure to reach the leader's router, as a store error callers answer "retry".
fn unreachable(message: String) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(message))
}

impl RouterHandle {
    /// A handle with no router behind it yet: a local one is attached when it starts
    /// ([`start`]), and `remote` answers meanwhile on a cluster. `announced` bounds how
    /// far a channel may fall behind the announcements.
    pub fn new(announced: usize, remote: Option<Arc<dyn Remote>>) -> RouterHandle {
        RouterHandle {
            shared: Arc::new(Shared {
                local: std::sync::RwLock::new(None),
                remote,
                changes: watch::channel(0).0,
                announcer: Arc::new(Announcer::new(announced)),
            }),
        }
    }

    /// Sends the leader's announcements on to the other nodes from now on.
    pub fn relay_to(&self, relay: Arc<dyn Relay>) {
        *self
            .shared
            .announcer
            .relay
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(relay);
    }

    /// Tells this node's channels what another node's router announced.
    pub fn announced_elsewhere(&self, all: Vec<Announcement>) {
        for a in all {
            self.shared.announcer.here(a);
        }
    }

    /// Whether a router runs in this process now.
    pub fn is_local(&self) -> bool {
        self.local().is_some()
    }

    pub(super) fn announcer(&self) -> Arc<Announcer> {
        self.shared.announcer.clone()
    }

    pub(super) fn changes_sender(&self) -> &watch::Sender<u64> {
        &self.shared.changes
    }

    pub(super) fn attach(&self, tx: mpsc::UnboundedSender<Command>) {
        *self.shared.local.write().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    pub(super) fn detach(&self) {
        *self.shared.local.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn local(&self) -> Option<mpsc::UnboundedSender<Command>> {
        self.shared
            .local
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends `cmd` to the local router, or, without one, asks the leader's `call`; a
    /// reply from the leader is turned into this node's answer by `from_remote`.
    async fn ask<T>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<T>) -> Command,
        call: impl FnOnce() -> Call,
        from_remote: impl FnOnce(Reply) -> Option<T>,
    ) -> Option<T> {
        let local = |tx: mpsc::UnboundedSender<Command>| async move {
            let (reply, answer) = oneshot::channel();
            tx.send(cmd(reply)).ok()?;
            answer.await.ok()
        };
        if let Some(tx) = self.local() {
            return local(tx).await;
        }
        let remote = self.shared.remote.as_ref()?;
        match remote.call(call()).await {
            Ok(reply) => from_remote(reply),
            // This node may have taken the lead meanwhile.
            Err(_) if self.local().is_some() => local(self.local()?).await,
            Err(e) => {
                tracing::warn!(error = %e, "Could not reach the leader's router");
                None
            }
        }
    }

    /// Tells the local router, or the leader's, without waiting for an answer.
    fn tell(&self, cmd: Command, call: impl FnOnce() -> Call + Send + 'static) {
        if let Some(tx) = self.local() {
            // A router that has stopped takes nothing more: the server is stopping, or
            // this node no longer leads (the new leader reads the store).
            let _ = tx.send(cmd);
            return;
        }
        if let Some(remote) = self.shared.remote.clone() {
            tokio::spawn(async move {
                // What this tells is committed already: a leader it cannot reach reads
                // it from the store when it takes over.
                if let Err(e) = remote.call(call()).await {
                    tracing::warn!(error = %e, "Could not tell the leader's router");
                }
            });
        }
    }

    /// Attaches a logged-in desktop; answers the connection's id. Only a node whose
    /// router runs takes desktops (a follower passes them on to the leader).
    pub async fn connect(
        &self,
        agent: AgentRow,
        resume: Option<Resume>,
        out: DesktopLink,
    ) -> Option<u64> {
        let tx = self.local()?;
        let (reply, answer) = oneshot::channel();
        tx.send(Command::Connect {
            agent,
            resume,
            out,
            reply,
        })
        .ok()?;
        answer.await.ok()
    }

    /// Hands the router a message from a desktop, holding one of the desktop's places in
    /// the router's inbox (see [`DESKTOP_INBOX`]) until it is handled.
    pub fn message(
        &self,
        agent_id: &str,
        conn: u64,
        msg: ClientMessage,
        place: tokio::sync::OwnedSemaphorePermit,
    ) {
        if let Some(tx) = self.local() {
            // A router that has stopped takes no more messages: its desktops are closed.
            let _ = tx.send(Command::Message {
                agent_id: agent_id.into(),
                conn,
                msg,
                _place: place,
            });
        }
    }

    /// Tells the router a desktop's connection ended.
    pub fn disconnect(&self, agent_id: &str, conn: u64) {
        if let Some(tx) = self.local() {
            // A stopped router has no sessions left to end.
            let _ = tx.send(Command::Disconnect {
                agent_id: agent_id.into(),
                conn,
            });
        }
    }

    /// Ends an interaction on the customer's side, wherever it is.
    pub async fn end(
        &self,
        interaction_id: &str,
        reason: &str,
    ) -> Option<Result<Ended, sqlx::Error>> {
        self.end_as(interaction_id, reason, false).await
    }

    /// Ends an interaction for an admin, wherever it is: a waiting one is abandoned (as
    /// [`RouterHandle::end`] does), one an agent holds is completed on the agent's behalf
    /// (disposition `closed_by_admin`), the agent told and its capacity freed.
    pub async fn close(
        &self,
        interaction_id: &str,
        reason: &str,
    ) -> Option<Result<Ended, sqlx::Error>> {
        self.end_as(interaction_id, reason, true).await
    }

    async fn end_as(
        &self,
        interaction_id: &str,
        reason: &str,
        close: bool,
    ) -> Option<Result<Ended, sqlx::Error>> {
        self.ask(
            |reply| Command::End {
                interaction_id: interaction_id.into(),
                reason: reason.into(),
                close,
                reply,
            },
            || Call::End {
                interaction_id: interaction_id.into(),
                reason: reason.into(),
                close,
            },
            |r| match r {
                Reply::Ended { ended } => Some(Ok(ended)),
                Reply::Unavailable { message } => Some(Err(unreachable(message))),
                _ => None,
            },
        )
        .await
    }

    /// Moves an interaction to agent `to` (a supervisor's action).
    pub async fn move_to(
        &self,
        interaction_id: &str,
        to: &str,
        by: &str,
    ) -> Option<Result<Moved, sqlx::Error>> {
        self.ask(
            |reply| Command::Move {
                interaction_id: interaction_id.into(),
                to: to.into(),
                by: by.into(),
                reply,
            },
            || Call::Move {
                interaction_id: interaction_id.into(),
                to: to.into(),
                by: by.into(),
            },
            |r| match r {
                Reply::Moved { moved } => Some(Ok(moved)),
                Reply::Unavailable { message } => Some(Err(unreachable(message))),
                _ => None,
            },
        )
        .await
    }

    /// Agent `agent_id` takes waiting interaction `interaction_id` from its team's queue:
    /// exactly one of several agents taking it at once gets it.
    pub async fn take(
        &self,
        interaction_id: &str,
        agent_id: &str,
    ) -> Option<Result<Taken, sqlx::Error>> {
        self.ask(
            |reply| Command::Take {
                interaction_id: interaction_id.into(),
                agent_id: agent_id.into(),
                reply,
            },
            || Call::Take {
                interaction_id: interaction_id.into(),
                agent_id: agent_id.into(),
            },
            |r| match r {
                Reply::Taken { taken } => Some(Ok(taken)),
                Reply::Unavailable { message } => Some(Err(unreachable(message))),
                _ => None,
            },
        )
        .await
    }

    /// Sets a logged-in agent away (a supervisor's action); false when it is not logged in.
    pub async fn set_away(&self, agent_id: &str, reason: Option<String>) -> Option<bool> {
        let r2 = reason.clone();
        self.ask(
            |reply| Command::SetAway {
                agent_id: agent_id.into(),
                reason,
                reply,
            },
            || Call::SetAway {
                agent_id: agent_id.into(),
                reason: r2,
            },
            |r| match r {
                Reply::Away { done } => Some(done),
                _ => None,
            },
        )
        .await
    }

    /// Where each of these waiting interactions stands (those not waiting are left out).
    pub async fn positions(&self, ids: Vec<String>) -> HashMap<String, Position> {
        let ids2 = ids.clone();
        self.ask(
            |reply| Command::Positions { ids, reply },
            || Call::Positions { ids: ids2 },
            |r| match r {
                Reply::Positions { positions } => Some(positions),
                _ => None,
            },
        )
        .await
        .unwrap_or_default()
    }

    /// A channel's own system connected an interaction to an agent (or to someone
    /// Switchboard does not know): see [`switchboard_contract::Core::connected`].
    pub async fn connected(
        &self,
        interaction_id: &str,
        agent_id: Option<&str>,
        channel: ChannelKind,
        done: Option<CommandFor>,
    ) -> Option<Result<Connected, sqlx::Error>> {
        let done2 = done.clone();
        self.ask(
            |reply| Command::Connected {
                interaction_id: interaction_id.into(),
                agent_id: agent_id.map(str::to_string),
                channel,
                done,
                reply,
            },
            || Call::Connected {
                interaction_id: interaction_id.into(),
                agent_id: agent_id.map(str::to_string),
                channel,
                done: done2,
            },
            |r| match r {
                Reply::Connected { connected } => Some(Ok(connected)),
                Reply::Unavailable { message } => Some(Err(unreachable(message))),
                _ => None,
            },
        )
        .await
    }

    /// Tells the agent holding an interaction `event` (a numbered event on its desktop,
    /// kept for a resume); nobody is told when nobody holds it.
    pub fn tell_holder(&self, interaction_id: &str, event: Value) {
        let (id, ev) = (interaction_id.to_string(), event.clone());
        self.tell(
            Command::Tell {
                interaction_id: interaction_id.into(),
                event,
            },
            move || Call::Tell {
                interaction_id: id,
                event: ev,
            },
        );
    }

    /// Tells an agent `event` on its desktop (a numbered event, kept for a resume), when
    /// it is logged in.
    pub fn tell_agent(&self, agent_id: &str, event: Value) {
        let (id, ev) = (agent_id.to_string(), event.clone());
        self.tell(
            Command::TellAgent {
                agent_id: agent_id.into(),
                event,
            },
            move || Call::TellAgent {
                agent_id: id,
                event: ev,
            },
        );
    }

    /// Every assignment from now on, announced once committed (by whichever node leads).
    pub fn assignments(&self) -> broadcast::Receiver<Arc<Assignment>> {
        self.shared.announcer.assignments.subscribe()
    }

    /// Every completion from now on, announced once committed.
    pub fn completions(&self) -> broadcast::Receiver<Completed> {
        self.shared.announcer.completions.subscribe()
    }

    /// The channel of every command the router stores from now on, once committed.
    pub fn commands_stored(&self) -> broadcast::Receiver<ChannelKind> {
        self.shared.announcer.commands.subscribe()
    }

    /// Commands the router stores claimed for this node's channels from now on, once
    /// committed, to deliver without claiming them.
    pub fn commands_handed(&self) -> broadcast::Receiver<Arc<Vec<Due>>> {
        self.shared.announcer.handed.subscribe()
    }

    /// Chats whose agent is typing, from now on.
    pub fn agents_typing(&self) -> broadcast::Receiver<String> {
        self.shared.announcer.typing.subscribe()
    }

    /// Changes each time the local router's live state may have changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Routes by `rules` (version `version`) from now on, for waiting interactions too.
    pub fn set_rules(&self, rules: Arc<Rules>, version: i64) {
        // The version is committed: a router that is not running reads it at its start.
        self.tell(Command::SetRules { rules, version }, || Call::RulesChanged);
    }

    /// An agent's record changed: a logged-in agent is routed by the new one at once; one
    /// removed, or whose token was reset (`log_out`), is disconnected (close code 4004).
    pub fn agent_changed(&self, agent: AgentRow, log_out: bool) {
        let id = agent.id.clone();
        // The change is committed: a router that is not running reads agents at login.
        self.tell(Command::AgentChanged { agent, log_out }, move || {
            Call::AgentChanged {
                agent_id: id,
                log_out,
            }
        });
    }

    /// Tells the router that customers changed: the waiting contacts to read again from
    /// the store (those [`crate::customers::waiting::refresh`] answered, once committed).
    pub fn customers_changed(&self, interaction_ids: Vec<String>) {
        if !interaction_ids.is_empty() {
            let ids = interaction_ids.clone();
            // Committed: a router that is not running reads tiers and owners at start.
            self.tell(Command::CustomersChanged(interaction_ids), move || {
                Call::CustomersChanged { ids }
            });
        }
    }

    /// How long this node's router takes to reach a command sent now: its lag, as every
    /// caller waiting on it (an agent's acceptance, a call's place in line) sees it.
    /// `None` when this node does not route, or its router stopped meanwhile.
    pub async fn lag(&self) -> Option<std::time::Duration> {
        let tx = self.local()?;
        let sent = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        tx.send(Command::Ping { reply }).ok()?;
        answer.await.ok()?;
        Some(sent.elapsed())
    }

    /// The live queue and agents, as `GET /api/queue` shows them.
    pub async fn snapshot(&self) -> Option<Value> {
        self.ask(
            |reply| Command::Snapshot { reply },
            || Call::Snapshot,
            |r| match r {
                Reply::Snapshot { view } => Some(view),
                _ => None,
            },
        )
        .await
    }
}
