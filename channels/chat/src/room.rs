//! One chat's live state: its connections, and its events. Every event a visitor sees
//! (a message either way, the agent joining, the chat closing) is numbered and recorded
//! in the customer's history before it is sent, so a page that reloads or reconnects
//! receives exactly what it missed, in order, from the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_contract::{ChannelEvent, ChannelKind, Position, Recorded};
use tokio::sync::mpsc;

use crate::limit::Bucket;
use crate::Chat;

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
    conns: Vec<(u64, mpsc::Sender<String>)>,
    next_conn: u64,
    assigned: bool,
    ended: bool,
    gone_since: Option<Instant>,
    started: Option<Instant>,
    last_position: Option<Position>,
    last_typing: Option<Instant>,
    /// The visitor's messages per minute, over every connection the chat has had.
    rate: Option<Bucket>,
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
pub type Conn = (u64, mpsc::Receiver<String>);

/// Frames that may wait for one connection. A page further behind is not reading: it is
/// detached (its connection ends) rather than its frames kept without bound, and it gets
/// what it missed from the store when it resumes.
pub const OUTBOX: usize = 512;

impl Room {
    /// A new chat's room.
    pub fn new(key: String, interaction_id: String, visitor_id: String) -> Arc<Room> {
        Arc::new(Room {
            key,
            interaction_id,
            visitor_id,
            state: tokio::sync::Mutex::new(State {
                started: Some(Instant::now()),
                ..State::default()
            }),
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
        let mut state = State {
            assigned: contact.state == "assigned",
            ended: matches!(contact.state.as_str(), "completed" | "abandoned"),
            started: Some(Instant::now()),
            ..State::default()
        };
        for e in &events {
            let seq = e["seq"].as_u64().unwrap_or(0);
            state.seq = state.seq.max(seq);
            if e["type"] == "message" && e["from"] == "visitor" {
                if let Some(id) = e["id"].as_str() {
                    state.sent.insert(id.to_string(), seq);
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
        let (tx, rx) = mpsc::channel(OUTBOX);
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
        s.conns.retain(|(_, tx)| tx.try_send(text.clone()).is_ok());
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
            .retain(|(_, tx)| tx.try_send(text.clone()).is_ok());
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
    /// visitor wrote while the chat waited.
    pub async fn agent_joined(&self, chat: &Chat, name: &str) {
        let first = name.split_whitespace().next().unwrap_or("An agent");
        let mut s = self.state.lock().await;
        // Under the lock: every message published before this point is in the store and
        // is told below; every one after is told as it comes.
        s.assigned = true;
        let joined = json!({ "type": "agent_joined", "name": first });
        let key = format!("joined:{}", uuid::Uuid::now_v7());
        if let Err(e) = self.publish_in(&mut s, chat, key, joined).await {
            tracing::warn!(error = %e, "Could not record an agent joining a chat");
        }
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
            Err(e) => {
                tracing::warn!(error = %e, "Could not read a chat's transcript for its agent")
            }
        }
    }

    /// Ends the chat: recorded and told (`closed`), and, when `end` is true, the
    /// interaction ends too (abandoned if it was still waiting).
    pub async fn close(&self, chat: &Chat, by: &str, reason: &str, end: bool) {
        if self.ended().await {
            return;
        }
        if end {
            if let Err(e) = chat.core.end(ChannelKind::Chat, &self.key, reason).await {
                tracing::warn!(error = %e, "Could not end a chat's interaction");
                return;
            }
        }
        if let Err(e) = self
            .publish(
                chat,
                "closed".into(),
                json!({ "type": "closed", "by": by, "reason": reason }),
            )
            .await
        {
            tracing::warn!(error = %e, "Could not record a chat's end");
        }
        self.state.lock().await.ended = true;
        chat.rooms().remove(&self.key);
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

/// Delivers agents' messages (stored by the router with the agent's other writes):
/// each recorded and numbered in its chat, sent to the visitor, and the agent told.
pub async fn deliver_agents(chat: &Chat) {
    let due = match chat.core.due(ChannelKind::Chat, 64).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read agents' chat messages");
            return;
        }
    };
    for d in due {
        let p = &d.command.payload;
        let key = p["contact_key"].as_str().unwrap_or_default();
        let room = match chat.room(key) {
            Some(r) => Some(r),
            None => Room::load(chat, key, None).await.ok().flatten(),
        };
        let Some(room) = room else {
            let _ = chat.core.failed(&d.command.id, None, "no such chat").await;
            continue;
        };
        let reply_id = p["reply_id"].as_str().unwrap_or_default();
        let event =
            json!({ "type": "message", "from": "agent", "id": reply_id, "text": p["body"] });
        match room.publish(chat, format!("agent:{reply_id}"), event).await {
            Ok(seq) => {
                metrics::counter!("switchboard_chat_messages_total", "from" => "agent")
                    .increment(1);
                let _ = chat.core.delivered(&d.command.id).await;
                chat.core
                    .tell_agent(
                        &room.interaction_id,
                        json!({ "type": "reply_sent", "reply_id": reply_id, "chat_seq": seq }),
                    )
                    .await;
            }
            Err(e) => {
                let _ = chat.core.failed(&d.command.id, Some(500), &e).await;
            }
        }
    }
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
        let mut rooms = chat.rooms();
        // A visitor who resumed meanwhile brought it back already.
        rooms.entry(key).or_insert(room);
        taken += 1;
    }
    if taken > 0 {
        tracing::info!(chats = taken, "Open chats taken up again after the start");
    }
}

/// Tells waiting visitors where they stand, and abandons chats whose visitor has gone
/// or that waited too long.
pub async fn watch_waiting(chat: &Chat) {
    let rooms: Vec<Arc<Room>> = chat.rooms().values().cloned().collect();
    let s = &chat.settings;
    let mut told: Vec<(Arc<Room>, Option<Position>)> = Vec::new();
    for room in rooms {
        let (waiting, gone, waited, last, connected) = {
            let st = room.state.lock().await;
            (
                !st.assigned && !st.ended,
                st.gone_since.map(|t| t.elapsed()),
                st.started.map(|t| t.elapsed()).unwrap_or_default(),
                st.last_position,
                !st.conns.is_empty(),
            )
        };
        if !waiting {
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
        if connected {
            told.push((room, last));
        }
    }
    if told.is_empty() {
        return;
    }
    // Every waiting chat's place, in one question to the router.
    let ids = told.iter().map(|(r, _)| r.interaction_id.clone()).collect();
    let positions = chat.core.positions(ids).await;
    for (room, last) in told {
        let position = positions.get(&room.interaction_id).copied();
        if position.is_some() && position != last {
            room.state.lock().await.last_position = position;
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
