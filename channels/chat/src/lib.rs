//! Switchboard's web chat channel. A visitor on the business's website opens a chat over
//! the customer websocket (`/channels/chat/ws`); the chat is queued by the visitor's tier
//! (a known customer is recognised by a token the business's site signs, or by the email
//! of a pre-chat form), offered to an agent, and relayed both ways in real time through
//! the agent websocket. Every message is committed before it is acknowledged, numbered,
//! and kept in the customer's history: a visitor whose page reloads or whose network
//! drops resumes the same chat and receives what it missed, in order.
//!
//! - [`protocol`]: the frames, documented in `docs/chat-protocol.md`;
//! - [`room`]: one chat's live state and its numbered, recorded events;
//! - [`outbox`]: the frames waiting for one connection;
//! - [`rooms`]: the open chats, found by key, visitor and interaction;
//! - [`ws`]: the websocket and its limits;
//! - [`limit`]: rate limits per chat and per client address;
//! - [`token`]: the signed customer token;
//! - the widget (`/chat/widget.js`) and its demo page (`/chat/demo`).

pub mod limit;
pub mod outbox;
pub mod protocol;
pub mod room;
pub mod rooms;
pub mod token;
pub mod transcript;
pub mod ws;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use switchboard_contract::{ChannelKind, Core, Due};
use tokio::sync::broadcast::error::RecvError;

use room::Room;
use rooms::Rooms;

/// The chat channel's settings (`[chat]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// Origins allowed to open the websocket (`https://shop.example.com`); empty allows
    /// any.
    pub allowed_origins: Vec<String>,
    /// The secret the business's site signs customer tokens with; empty accepts none.
    pub customer_token_secret: String,
    /// The longest message, in bytes.
    pub max_message_bytes: usize,
    /// Messages one chat may send per minute, whatever connections it uses.
    pub messages_per_minute: u32,
    /// Messages one client address may send per minute, across all its chats (0: no
    /// limit).
    pub messages_per_minute_per_address: u32,
    /// Chats one client address may start per minute (0: no limit).
    pub chats_per_minute_per_address: u32,
    /// Seconds a connection may stay silent (the widget pings every 20).
    pub idle_timeout_secs: u64,
    /// Seconds a waiting chat whose visitor has gone stays before it is abandoned.
    pub abandon_after_secs: u64,
    /// Seconds a chat may wait for an agent before it is abandoned.
    pub max_wait_secs: u64,
    /// Open chats one visitor may have at once.
    pub max_chats_per_visitor: usize,
}

/// The running channel.
pub struct Chat {
    settings: ChatSettings,
    core: Arc<dyn Core>,
    rooms: Mutex<Rooms>,
    /// Chats started, per client address.
    starts: limit::PerAddress,
    /// Messages sent, per client address.
    messages: limit::PerAddress,
    /// Visitors told to wait before their chat starts (the server past its capacity).
    starting: std::sync::atomic::AtomicUsize,
}

impl Chat {
    /// The channel over `core`.
    pub fn new(settings: ChatSettings, core: Arc<dyn Core>) -> Arc<Chat> {
        Arc::new(Chat {
            settings,
            core,
            rooms: Mutex::default(),
            starts: limit::PerAddress::default(),
            messages: limit::PerAddress::default(),
            starting: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn room(&self, key: &str) -> Option<Arc<Room>> {
        self.rooms().get(key).cloned()
    }

    fn room_of(&self, interaction_id: &str) -> Option<Arc<Room>> {
        self.rooms().of_interaction(interaction_id).cloned()
    }
}

const WIDGET: &str = include_str!("../static/widget.js");
const DEMO: &str = include_str!("../static/demo.html");

/// The websocket, the widget and its demo page.
pub fn routes<S: Clone + Send + Sync + 'static>(chat: Arc<Chat>) -> Router<S> {
    Router::new()
        .route("/channels/chat/ws", get(ws::upgrade))
        .route(
            "/chat/widget.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    WIDGET,
                )
                    .into_response()
            }),
        )
        .route(
            "/chat/demo",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DEMO).into_response()
            }),
        )
        // The same page in Chinese: the widget speaks the page's language.
        .route(
            "/chat/demo/zh",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    DEMO.replacen("<html lang=\"en\">", "<html lang=\"zh-CN\">", 1)
                        .replacen(" data-title=\"Chat with us\"", "", 1),
                )
                    .into_response()
            }),
        )
        .with_state(chat)
}

/// Runs the channel's background work until `shutdown`: agents joining and finishing,
/// agents' messages delivered, queue positions, and chats abandoned.
pub async fn run(chat: Arc<Chat>, shutdown: impl std::future::Future<Output = ()> + Send) {
    // The passes over every open chat (queue positions, waits, owed events) run in a task
    // of their own: at a hundred thousand chats a pass takes a while, and agents joining
    // and their messages are not held up behind it.
    let passes = tokio::spawn(passes(chat.clone()));
    relay(chat, shutdown).await;
    passes.abort();
}

/// Every second: events the store could not take before, chats abandoned, and where
/// waiting visitors stand.
async fn passes(chat: Arc<Chat>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        room::settle_owed(&chat).await;
        room::watch_waiting(&chat).await;
    }
}

/// Agents joining and finishing, agents' messages delivered (as they are stored, and
/// each second those due again), until `shutdown`.
async fn relay(chat: Arc<Chat>, shutdown: impl std::future::Future<Output = ()> + Send) {
    let mut assignments = chat.core.assignments();
    let mut completions = chat.core.completions();
    let mut commands = chat.core.commands_stored();
    let mut handed = chat.core.commands_handed();
    let mut typing = chat.core.agents_typing();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    room::take_up_open_chats(&chat).await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            a = assignments.recv() => match a {
                Ok(a) if a.channel == ChannelKind::Chat => {
                    if let Some(room) = chat.room(&a.contact_key) {
                        room.agent_joined(&chat, &a.agent_id, &a.agent_name).await;
                    }
                }
                Ok(_) => {}
                // Fell behind: what was missed is read from the store.
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "The chat channel fell behind the assignments; catching up from the store");
                    room::catch_up(&chat).await;
                }
                Err(RecvError::Closed) => return,
            },
            c = completions.recv() => match c {
                Ok(c) if c.channel == ChannelKind::Chat => {
                    if let Some(room) = chat.room(&c.contact_key) {
                        room.close(&chat, "agent", "the agent ended the chat", false).await;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "The chat channel fell behind the completions; catching up from the store");
                    room::catch_up(&chat).await;
                }
                Err(RecvError::Closed) => return,
            },
            t = typing.recv() => match t {
                Ok(interaction_id) => {
                    if let Some(room) = chat.room_of(&interaction_id) {
                        room.agent_typing().await;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            c = commands.recv() => match c {
                Ok(ChannelKind::Chat) | Err(RecvError::Lagged(_)) => room::deliver_agents(&chat).await,
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            },
            // Agents' messages stored claimed for this node: delivered with no claim.
            // Those of other channels are not the chat's; any missed (behind) are due
            // again from the store when their claim runs out.
            h = handed.recv() => match h {
                Ok(due) => {
                    let mine: Vec<Due> = due
                        .iter()
                        .filter(|d| d.command.channel == ChannelKind::Chat)
                        .cloned()
                        .collect();
                    if !mine.is_empty() {
                        room::deliver(&chat, mine).await;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "The chat channel fell behind the agents' messages; they are delivered from the store shortly");
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => room::deliver_agents(&chat).await,
        }
    }
}
