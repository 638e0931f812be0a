//! One chat's live state: its connections, and its events. Every event a visitor sees
//! (a message either way, the agent joining, the chat closing) is numbered and recorded
//! in the customer's history before it is sent, so a page that reloads or reconnects
//! receives exactly what it missed, in order, from the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limit::Bucket;
use crate::outbox;
use crate::Chat;
use serde_json::{json, Value};
use switchboard_contract::{ChannelEvent, ChannelKind, Due, Position, Recorded};

/// The history kind of the events a visitor sees.
pub const EVENT: &str = "chat";
/// The history kind of a chat's start (its resume secret's digest is kept privately).
pub const STARTED: &str = "chat_started";

/// The digest a resume secret is kept as (hex SHA-256).
pub fn digest(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A chat.
pub struct Room {
    /// Its key (`chat:…`): the interaction's idempotency key, and the chat's id.
    pub key: String,
    /// Its interaction.
    pub interaction_id: String,
    /// The visitor's id.
    pub visitor_id: String,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    seq: u64,
    /// The visitor's message ids, with the number each was given.
    sent: HashMap<String, u64>,
    conns: Vec<(u64, outbox::Sender)>,
    next_conn: u64,
    assigned: bool,
    ended: bool,
    /// The visitor has written, and the chat is queued for an agent: until then it is
    /// not offered, has no place in line and no wait.
    written: bool,
    /// The visitor's first message, stored but not yet queued (the store could not take
    /// that step): tried again at each pass.
    first_owed: Option<String>,
    gone_since: Option<Instant>,
    /// When its wait began: the visitor's first message (or the start of this process,
    /// for one waiting already).
    started: Option<Instant>,
    last_position: Option<Position>,
    /// When the router was last asked where this chat stands.
    position_asked: Option<Instant>,
    last_typing: Option<Instant>,
    /// The visitor's messages per minute, over every connection the chat has had.
    rate: Option<Bucket>,
    /// Events the visitor is owed that the store could not record yet (an agent joining,
    /// the chat's end): recorded and sent at the next pass.
    owed: Vec<Owed>,
}

/// An event the visitor is owed.
#[derive(Debug, Clone)]
enum Owed {
    /// An agent (by id and first name) joined.
    Joined { agent_id: String, name: String },
    /// The chat ended; an agent's completion asks the visitor how it went.
    Closed {
        by: String,
        reason: String,
        survey: Option<String>,
    },
}

/// Why a visitor's message was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The chat has ended.
    Ended,
    /// Over the chat's or the address's rate: send it again shortly.
    SlowDown,
    /// The store could not take it: send it again.
    Unavailable(String),
}

/// A room's connection id, and where its frames go.
pub type Conn = (u64, outbox::Receiver);

impl Room {
    /// A new chat's room.
    pub fn new(key: String, interaction_id: String, visitor_id: String) -> Arc<Room> {
        Arc::new(Room {
            key,
            interaction_id,
            visitor_id,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    /// A chat's room from the store (after a restart), when `token` is its resume
    /// secret; `None` when there is no such chat or the secret is wrong.
    pub async fn load(
        chat: &Chat,
        key: &str,
        token: Option<&str>,
    ) -> Result<Option<Arc<Room>>, String> {
        let core = &chat.core;
        let started = core
            .events_of(ChannelKind::Chat, key, STARTED)
            .await
            .map_err(|e| e.to_string())?;
        let Some(first) = started.first() else {
            return Ok(None);
        };
        if let Some(t) = token {
            // Compared as digests of equal length, whole: the time taken says nothing of
            // the secret. A chat started before secrets were kept as digests has none,
            // and cannot be resumed.
            let Some(kept) = first["private"]["resume_digest"].as_str() else {
                return Ok(None);
            };
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                kept.as_bytes(),
                digest(t).as_bytes(),
            )) {
                return Ok(None);
            }
        }
        let Some(contact) = core
            .find_contact(ChannelKind::Chat, &[key.to_string()])
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let events = core
            .events_of(ChannelKind::Chat, key, EVENT)
            .await
            .map_err(|e| e.to_string())?;
        let written = contact.state != "opened";
        let mut state = State {
            assigned: contact.state == "assigned",
            ended: matches!(contact.state.as_str(), "completed" | "abandoned" | "left"),
            written,
            started: written.then(Instant::now),
            ..State::default()
        };
        for e in &events {
            let seq = e["seq"].as_u64().unwrap_or(0);
            state.seq = state.seq.max(seq);
            if e["type"] == "message" && e["from"] == "visitor" {
                if let Some(id) = e["id"].as_str() {
                    state.sent.insert(id.to_string(), seq);
                }
                // Stored before a stop, but not queued: it is queued at the next pass.
                if !written && state.first_owed.is_none() {
                    state.first_owed = e["text"].as_str().map(str::to_string);
                }
            }
            if e["type"] == "closed" {
                state.ended = true;
            }
        }
        Ok(Some(Arc::new(Room {
            key: key.to_string(),
            interaction_id: contact.interaction_id,
            visitor_id: first["visitor_id"].as_str().unwrap_or_default().to_string(),
            state: tokio::sync::Mutex::new(state),
        })))
    }

    /// Attaches a connection.
    pub async fn attach(&self) -> Conn {
        let (tx, rx) = outbox::outbox();
        let mut s = self.state.lock().await;
        s.next_conn += 1;
        let id = s.next_conn;
        s.conns.push((id, tx));
        s.gone_since = None;
        (id, rx)
    }

    /// Detaches a connection; with none left, the visitor is gone (for now).
    pub async fn detach(&self, conn: u64) {
        let mut s = self.state.lock().await;
        s.conns.retain(|(c, _)| *c != conn);
        if s.conns.is_empty() {
            s.gone_since = Some(Instant::now());
        }
    }

    /// Whether it has ended.
    pub async fn ended(&self) -> bool {
        self.state.lock().await.ended
    }

    /// Whether it has ended, without waiting (a room being loaded is not shared yet).
    pub fn is_ended_now(&self) -> bool {
        self.state.try_lock().map(|s| s.ended).unwrap_or(false)
    }

    /// Numbers `event`, records it (once per `event_key`), then sends it to every
    /// connection. Answers its number (0 when its key was recorded before).
    async fn publish(&self, chat: &Chat, event_key: String, event: Value) -> Result<u64, String> {
        let mut s = self.state.lock().await;
        self.publish_in(&mut s, chat, event_key, event).await
    }

    async fn publish_in(
        &self,
        s: &mut State,
        chat: &Chat,
        event_key: String,
        mut event: Value,
    ) -> Result<u64, String> {
        let seq = s.seq + 1;
        event["seq"] = json!(seq);
        let recorded = chat
            .core
            .record(ChannelEvent {
                channel: ChannelKind::Chat,
                contact_key: self.key.clone(),
                // Event keys are unique per channel: each is this chat's own.
                event_key: format!("{}:{event_key}", self.key),
                kind: EVENT.into(),
                data: event.clone(),
                files: Vec::new(),
            })
            .await
            .map_err(|e| e.to_string())?;
        if recorded == Recorded::Duplicate {
            return Ok(0);
        }
        s.seq = seq;
        let text = event.to_string();
        s.conns.retain(|(_, tx)| tx.send(text.clone()));
        Ok(seq)
    }

    /// Sends a frame that is not recorded (queue position, typing, acks) to every
    /// connection.
    async fn tell(&self, frame: Value) {
        let text = frame.to_string();
        self.state
            .lock()
            .await
            .conns
            .retain(|(_, tx)| tx.send(text.clone()));
    }

    /// The visitor's message: committed, numbered, acknowledged (`ack` with its number),
    /// and told to the agent holding the chat. The same message id again is acknowledged
    /// with its number and not repeated.
    pub async fn visitor_message(
        &self,
        chat: &Chat,
        id: &str,
        text: &str,
        address_allows: impl FnOnce(Instant) -> bool,
    ) -> Result<Value, Refused> {
        let seq = {
            let mut s = self.state.lock().await;
            if let Some(seq) = s.sent.get(id).copied() {
                return Ok(json!({ "type": "ack", "id": id, "seq": seq }));
            }
            if s.ended {
                return Err(Refused::Ended);
            }
            let now = Instant::now();
            let per_minute = chat.settings.messages_per_minute;
            let rate = s.rate.get_or_insert_with(|| Bucket::full(per_minute, now));
            if !rate.take(per_minute, now) || !address_allows(now) {
                return Err(Refused::SlowDown);
            }
            let event = json!({ "type": "message", "from": "visitor", "id": id, "text": text });
            let seq = self
                .publish_in(&mut s, chat, format!("visitor:{id}"), event)
                .await
                .map_err(Refused::Unavailable)?;
            s.sent.insert(id.to_string(), seq);
            // The first message queues the chat for an agent (a store that cannot take
            // that step now leaves it owed, for the next pass: the message is kept).
            if !s.written {
                if s.first_owed.is_none() {
                    s.first_owed = Some(text.to_string());
                }
                self.queue_written(&mut s, chat).await;
            }
            // Before an agent has joined, the message reaches the agent with the rest of
            // the transcript when it joins (see `agent_joined`); after, at once.
            if s.assigned {
                chat.core
                    .tell_agent(&self.interaction_id, visitor_said(text, seq))
                    .await;
            }
            seq
        };
        metrics::counter!("switchboard_chat_messages_total", "from" => "visitor").increment(1);
        Ok(json!({ "type": "ack", "id": id, "seq": seq }))
    }

    /// Queues the chat for an agent after the visitor's first message (owed in
    /// `first_owed`); left owed when the store cannot take it now.
    async fn queue_written(&self, s: &mut State, chat: &Chat) {
        let Some(text) = s.first_owed.clone() else {
            return;
        };
        match chat
            .core
            .first_message(ChannelKind::Chat, &self.key, &text)
            .await
        {
            // False: queued already (by another node's pass, or before a restart).
            Ok(queued) => {
                s.written = true;
                s.first_owed = None;
                s.started = Some(Instant::now());
                if queued {
                    metrics::counter!("switchboard_chats_written_total").increment(1);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not queue a chat after its first message; it is tried again shortly");
                metrics::counter!("switchboard_chat_events_owed_total").increment(1);
            }
        }
    }

    /// Queues, at each pass, the chats whose first message is stored but not yet queued.
    pub async fn settle_written(&self, chat: &Chat) {
        let mut s = self.state.lock().await;
        if !s.written && !s.ended && s.first_owed.is_some() {
            self.queue_written(&mut s, chat).await;
        }
    }

    /// The visitor is typing: the agent is told, at most every two seconds.
    pub async fn typing(&self, chat: &Chat) {
        {
            let mut s = self.state.lock().await;
            if s.last_typing
                .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
            {
                return;
            }
            s.last_typing = Some(Instant::now());
        }
        chat.core
            .tell_agent(
                &self.interaction_id,
                json!({ "type": "typing", "channel": "chat" }),
            )
            .await;
    }

    /// The agent is typing: the visitor's page is told (not kept).
    pub async fn agent_typing(&self) {
        self.tell(json!({ "type": "typing", "from": "agent" }))
            .await;
    }

    /// An agent took the chat: the visitor is told, and the agent is told what the
    /// visitor wrote while the chat waited. A store that cannot record it now leaves it
    /// owed, recorded and told at a later pass.
    pub async fn agent_joined(&self, chat: &Chat, agent_id: &str, name: &str) {
        let first = name.split_whitespace().next().unwrap_or("An agent");
        let mut s = self.state.lock().await;
        // Under the lock: every message published before this point is in the store and
        // is told below; every one after is told as it comes.
        s.assigned = true;
        let owed = Owed::Joined {
            agent_id: agent_id.to_string(),
            name: first.to_string(),
        };
        if !self.settle(&mut s, chat, owed).await {
            return;
        }
        drop(s);
        match self.since(chat, 0).await {
            Ok(events) => {
                for e in events
                    .iter()
                    .filter(|e| e["type"] == "message" && e["from"] == "visitor")
                {
                    let text = e["text"].as_str().unwrap_or_default();
                    let seq = e["seq"].as_u64().unwrap_or(0);
                    chat.core
                        .tell_agent(&self.interaction_id, visitor_said(text, seq))
                        .await;
                }
            }
            // The agent reads the transcript in the interaction's history instead.
            Err(e) => {
                tracing::warn!(error = %e, "Could not read a chat's transcript for its agent")
            }
        }
    }

    /// Records and tells an event the visitor is owed; when the store cannot take it
    /// now, it stays owed (answers false) and a later pass tries again.
    async fn settle(&self, s: &mut State, chat: &Chat, owed: Owed) -> bool {
        let (key, event) = match &owed {
            // Once per agent: the same agent joining again is the same news.
            Owed::Joined { agent_id, name } => (
                format!("joined:{agent_id}"),
                json!({ "type": "agent_joined", "name": name }),
            ),
            Owed::Closed { by, reason, survey } => (
                "closed".to_string(),
                match survey {
                    Some(question) => json!({ "type": "closed", "by": by, "reason": reason,
                                              "survey": { "question": question, "scale": [1, 5] } }),
                    None => json!({ "type": "closed", "by": by, "reason": reason }),
                },
            ),
        };
        match self.publish_in(s, chat, key, event).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "Could not record a chat event; it is tried again shortly");
                metrics::counter!("switchboard_chat_events_owed_total").increment(1);
                s.owed.push(owed);
                false
            }
        }
    }

    /// Records the events the store could not take before, in order.
    pub async fn settle_owed(&self, chat: &Chat) {
        let mut s = self.state.lock().await;
        let owed = std::mem::take(&mut s.owed);
        let mut rest = owed.into_iter();
        for o in rest.by_ref() {
            if !self.settle(&mut s, chat, o).await {
                break;
            }
        }
        s.owed.extend(rest);
        let closed = s.ended && s.owed.is_empty();
        drop(s);
        if closed {
            chat.rooms().remove(&self.key);
        }
    }

    /// Ends the chat: recorded and told (`closed`), and, when `end` is true, the
    /// interaction ended as the customer's (abandoned if it waited). A store that cannot
    /// record the end now leaves it owed: the room stays until it is told.
    pub async fn close(&self, chat: &Chat, by: &str, reason: &str, end: bool) {
        if self.ended().await {
            return;
        }
        if end {
            if let Err(e) = chat.core.end(ChannelKind::Chat, &self.key, reason).await {
                // Nothing changed: the next pass that finds it gone or waiting too long
                // ends it again.
                tracing::warn!(error = %e, "Could not end a chat's interaction");
                return;
            }
        }
        // Completed by its agent: the visitor is asked how it went (in the widget).
        let survey = if by == "agent" {
            chat.core
                .service(ChannelKind::Chat, None)
                .await
                .survey_question
        } else {
            None
        };
        let mut s = self.state.lock().await;
        if s.ended {
            return;
        }
        s.ended = true;
        let owed = Owed::Closed {
            by: by.to_string(),
            reason: reason.to_string(),
            survey,
        };
        let told = self.settle(&mut s, chat, owed).await;
        drop(s);
        if told {
            chat.rooms().remove(&self.key);
        }
        metrics::counter!("switchboard_chats_closed_total", "by" => by.to_string()).increment(1);
    }

    /// The events after `last_seq`, from the store, in order.
    pub async fn since(&self, chat: &Chat, last_seq: u64) -> Result<Vec<Value>, String> {
        let mut events = chat
            .core
            .events_of(ChannelKind::Chat, &self.key, EVENT)
            .await
            .map_err(|e| e.to_string())?;
        events.retain(|e| e["seq"].as_u64().is_some_and(|s| s > last_seq));
        events.sort_by_key(|e| e["seq"].as_u64());
        Ok(events)
    }
}

/// What the agent's desktop is told of a visitor's message.
fn visitor_said(text: &str, seq: u64) -> Value {
    json!({ "type": "message", "channel": "chat", "from": "visitor", "text": text, "chat_seq": seq })
}

/// Attempts at delivering an agent's chat message before it is given up (about a quarter
/// of an hour with the backoff below).
const REPLY_ATTEMPTS: u32 = 30;

/// Delivers the agents' messages due: each is published in its chat (recorded and sent
/// to the visitor's pages), and the agent is told it was sent. A store that cannot be
/// read or written now is retried with backoff, the agent told it is retrying; only a
/// chat that does not exist, or a message that failed every attempt, is given up — the
/// agent told, the give-up counted and logged.
pub async fn deliver_agents(chat: &Arc<Chat>) {
    let due = match chat.core.due(ChannelKind::Chat, 64).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read agents' chat messages; retrying shortly");
            return;
        }
    };
    deliver(chat, due).await;
}

/// Delivers agents' messages claimed for this node already: those the router stored
/// claimed and handed over at its commit, and those claimed from the store.
pub async fn deliver(chat: &Arc<Chat>, due: Vec<Due>) {
    // Each chat's messages in order, the chats at once: messages due together share the
    // event writer's commits instead of each waiting for the one before.
    let mut per_chat: Vec<Vec<Due>> = Vec::new();
    let mut of_chat: HashMap<String, usize> = HashMap::new();
    for d in due {
        let key = d.command.payload["contact_key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let i = *of_chat.entry(key).or_insert_with(|| {
            per_chat.push(Vec::new());
            per_chat.len() - 1
        });
        per_chat[i].push(d);
    }
    let mut deliveries = tokio::task::JoinSet::new();
    for messages in per_chat {
        let chat = chat.clone();
        deliveries.spawn(async move {
            for d in messages {
                deliver_one(&chat, d).await;
            }
        });
    }
    while let Some(done) = deliveries.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "An agent's chat delivery stopped; its messages are due again after their lease");
        }
    }
}

/// Delivers one agent's message, or records why not.
async fn deliver_one(chat: &Arc<Chat>, d: Due) {
    let p = &d.command.payload;
    let id = &d.command.id;
    let interaction = p["interaction_id"].as_str().unwrap_or_default();
    let reply_id = p["reply_id"].as_str().unwrap_or_default();
    match deliver_agent(chat, &d).await {
        Ok((room, seq)) => {
            metrics::counter!("switchboard_chat_messages_total", "from" => "agent").increment(1);
            // The visitor has it. Telling the agent and marking it sent (a commit) go on
            // apart, so the messages due next are not held up behind that commit; the
            // chat's next message is published after this one all the same (it is
            // claimed by a later pass, and this one stays claimed meanwhile).
            let (chat, id, reply_id) = (chat.clone(), id.clone(), reply_id.to_string());
            tokio::spawn(async move {
                chat.core
                    .tell_agent(
                        &room.interaction_id,
                        json!({ "type": "reply_sent", "reply_id": reply_id, "chat_seq": seq }),
                    )
                    .await;
                // Not marked: it is due again, and publishing it again is a duplicate
                // (its event key is recorded), so the visitor sees it once either way.
                if let Err(e) = chat.core.delivered(&id).await {
                    tracing::warn!(error = %e, "Could not mark an agent's chat message sent; it is checked again");
                }
            });
        }
        Err(failure) => {
            let attempts = d.attempts + 1;
            let (error, retry) = match failure {
                Failure::Retry(e) if attempts < REPLY_ATTEMPTS => {
                    (e, Some((500u64 << attempts.min(6)).min(30_000)))
                }
                Failure::Retry(e) | Failure::GiveUp(e) => (e, None),
            };
            let outcome = if retry.is_some() {
                "retried"
            } else {
                "given_up"
            };
            metrics::counter!("switchboard_chat_replies_total", "outcome" => outcome).increment(1);
            if retry.is_some() {
                tracing::warn!(attempts, error = %error, "An agent's chat message was not delivered; retrying");
            } else {
                tracing::error!(attempts, error = %error, "Gave up an agent's chat message");
            }
            chat.core
                .tell_agent(
                    interaction,
                    json!({ "type": "reply_failed", "reply_id": reply_id, "error": error,
                            "retrying": retry.is_some(), "attempts": attempts }),
                )
                .await;
            // Not recorded: it stays due and is tried again at the next pass.
            if let Err(e) = chat.core.failed(id, retry, &error).await {
                tracing::warn!(error = %e, "Could not record a failed chat delivery; it is tried again");
            }
        }
    }
}

/// Why an agent's chat message was not delivered.
enum Failure {
    /// Worth another try (the store could not be reached).
    Retry(String),
    /// Never going to work.
    GiveUp(String),
}

/// One attempt at an agent's chat message: its chat (from memory, or the store after a
/// restart), then the message published in it; answers the room and its number.
async fn deliver_agent(chat: &Chat, d: &Due) -> Result<(Arc<Room>, u64), Failure> {
    let p = &d.command.payload;
    let key = p["contact_key"].as_str().unwrap_or_default();
    let room = match chat.room(key) {
        Some(r) => r,
        None => match Room::load(chat, key, None).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Failure::GiveUp("no such chat".into())),
            Err(e) => return Err(Failure::Retry(format!("the chat could not be read: {e}"))),
        },
    };
    let reply_id = p["reply_id"].as_str().unwrap_or_default();
    let event = json!({ "type": "message", "from": "agent", "id": reply_id, "text": p["body"] });
    let seq = room
        .publish(chat, format!("agent:{reply_id}"), event)
        .await
        .map_err(Failure::Retry)?;
    Ok((room, seq))
}

/// The most chats taken up again at start.
const OPEN_AT_START: usize = 100_000;

/// After a restart, the chats still open come back as rooms with nobody connected: a
/// waiting one whose visitor does not return within `abandon_after_secs` is abandoned as
/// any other, and an agent who joins or ends one is announced in it, to be read when the
/// visitor resumes.
pub async fn take_up_open_chats(chat: &Chat) {
    let keys = match chat
        .core
        .open_contacts(ChannelKind::Chat, OPEN_AT_START)
        .await
    {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the open chats; each comes back when its visitor resumes");
            return;
        }
    };
    let mut taken = 0usize;
    for key in keys {
        if chat.room(&key).is_some() {
            continue;
        }
        let Ok(Some(room)) = Room::load(chat, &key, None).await else {
            continue;
        };
        room.state.lock().await.gone_since = Some(Instant::now());
        // A visitor who resumed meanwhile brought it back already.
        chat.rooms().insert_if_absent(room);
        taken += 1;
    }
    if taken > 0 {
        tracing::info!(chats = taken, "Open chats taken up again after the start");
    }
}

/// Records in each chat what the store could not take before (an agent joining, the
/// chat's end).
pub async fn settle_owed(chat: &Chat) {
    let rooms: Vec<Arc<Room>> = chat.rooms().values().cloned().collect();
    for room in rooms {
        let owing = !room.state.lock().await.owed.is_empty();
        if owing {
            room.settle_owed(chat).await;
        }
    }
}

/// Takes every open chat's state from the store, after the channel fell behind the
/// router's announcements: a chat an agent took is told the agent joined, one that
/// ended is closed. Nothing announced is lost to a channel that was slow to listen.
pub async fn catch_up(chat: &Chat) {
    let rooms: Vec<Arc<Room>> = chat.rooms().values().cloned().collect();
    metrics::counter!("switchboard_channel_caught_up_total", "channel" => "chat").increment(1);
    for room in rooms {
        let (assigned, ended) = {
            let s = room.state.lock().await;
            (s.assigned, s.ended)
        };
        if ended {
            continue;
        }
        let contact = match chat
            .core
            .find_contact(ChannelKind::Chat, std::slice::from_ref(&room.key))
            .await
        {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                // Caught up at the next lag, or when the visitor resumes (from the store).
                tracing::warn!(error = %e, "Could not read a chat's state to catch up");
                continue;
            }
        };
        match contact.state.as_str() {
            "assigned" if !assigned => {
                let agent = contact.agent_id.clone().unwrap_or_default();
                let name = contact.agent_name.clone().unwrap_or_default();
                room.agent_joined(chat, &agent, &name).await;
            }
            "completed" => {
                room.close(chat, "agent", "the agent ended the chat", false)
                    .await
            }
            "abandoned" => {
                room.close(chat, "system", "the chat has ended", false)
                    .await
            }
            _ => {}
        }
    }
}

/// A waiting visitor is told where it stands when that changes, looked at no more often
/// than this: a place in a queue of thousands moves every second, and a frame a second
/// to every one of a hundred thousand pages tells nobody anything more.
const POSITION_EVERY: Duration = Duration::from_secs(10);

/// Tells waiting visitors where they stand, and abandons chats whose visitor has gone
/// or that waited too long.
pub async fn watch_waiting(chat: &Chat) {
    let rooms: Vec<Arc<Room>> = chat.rooms().values().cloned().collect();
    let s = &chat.settings;
    let mut told: Vec<(Arc<Room>, Option<Position>)> = Vec::new();
    for room in rooms {
        let (waiting, written, gone, waited, last, connected, asked) = {
            let st = room.state.lock().await;
            (
                !st.assigned && !st.ended,
                st.written,
                st.gone_since.map(|t| t.elapsed()),
                st.started.map(|t| t.elapsed()).unwrap_or_default(),
                st.last_position,
                !st.conns.is_empty(),
                st.position_asked.map(|t| t.elapsed()),
            )
        };
        if !waiting {
            continue;
        }
        if !written {
            // Not yet in line: no wait, no place. A visitor who leaves without writing
            // closes it as left (no contact was made, none abandoned).
            room.settle_written(chat).await;
            if gone.is_some_and(|g| g >= Duration::from_secs(s.abandon_after_secs))
                && !room.state.lock().await.written
            {
                room.close(chat, "visitor", "the visitor left without writing", true)
                    .await;
            }
            continue;
        }
        if gone.is_some_and(|g| g >= Duration::from_secs(s.abandon_after_secs)) {
            room.close(
                chat,
                "visitor",
                "the visitor left before an agent answered",
                true,
            )
            .await;
            continue;
        }
        if waited >= Duration::from_secs(s.max_wait_secs) {
            room.close(
                chat,
                "system",
                "no agent was free in time; please write to us instead",
                true,
            )
            .await;
            continue;
        }
        if connected && asked.is_none_or(|a| a >= POSITION_EVERY) {
            told.push((room, last));
        }
    }
    if told.is_empty() {
        return;
    }
    // The places of the chats due a look, in one question to the router.
    let ids = told.iter().map(|(r, _)| r.interaction_id.clone()).collect();
    let positions = chat.core.positions(ids).await;
    let now = Instant::now();
    for (room, last) in told {
        let position = positions.get(&room.interaction_id).copied();
        let mut st = room.state.lock().await;
        st.position_asked = Some(now);
        if position.is_some() && position != last {
            st.last_position = position;
            drop(st);
            room.tell(json!({
                "type": "queue", "position": position.map(|p| p.position),
                "estimated_wait_secs": position.and_then(|p| p.estimated_wait_secs),
            }))
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OUTBOX;

    #[tokio::test]
    async fn a_connection_that_does_not_take_its_frames_is_let_go_and_others_are_not() {
        let room = Room::new("chat-1".into(), "i-1".into(), "v-1".into());
        let (_, mut stalled) = room.attach().await;
        let (_, mut reading) = room.attach().await;
        for n in 0..OUTBOX + 10 {
            room.tell(json!({ "type": "typing", "n": n })).await;
            let frame = reading
                .try_recv()
                .expect("the reading page gets every frame");
            assert!(frame.contains(&format!("\"n\":{n}")), "{frame}");
        }
        // The stalled page's frames stop at a full outbox, and then its channel ends:
        // its connection closes, and it resumes from the store.
        let mut kept = 0;
        while stalled.recv().await.is_some() {
            kept += 1;
        }
        assert_eq!(kept, OUTBOX);
        assert_eq!(room.state.lock().await.conns.len(), 1);
    }
}
