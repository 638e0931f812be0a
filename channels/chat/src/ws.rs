//! The customer websocket (`GET /channels/chat/ws`). The first frame starts or resumes a
//! chat; then the visitor's messages are committed before each is acknowledged, and the
//! chat's events (the agent's messages, the agent joining, the end) arrive numbered.
//! Frames are bounded in size and rate, silence is bounded in time, a visitor's open
//! chats are capped, and the page's origin must be allowed. Bad frames get an `error`
//! frame, never a dropped connection for other visitors, never a panic.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use switchboard_contract::{
    ChannelEvent, ChannelKind, ClientAddr, CustomerHint, FirstEvent, IntakeError, NewInteraction,
    Rated,
};

use crate::protocol::{decode, ClientFrame};
use crate::room::{Refused, Room, STARTED};
use crate::{token, Chat};

/// How long a new connection has to start or resume.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// A frame the page has not taken within this is a page that has stopped reading.
const SEND_STALL: Duration = Duration::from_secs(20);
/// What each connection keeps to read into: most frames a page sends (a ping, a message
/// of a sentence or two) fit in one read, and a longer one is read in parts.
pub const READ_BUFFER: usize = 512;
/// Bytes a connection may have written but not yet taken by its page: more than the
/// largest frame sent to a page (an agent's reply is at most 256 KiB, and JSON escapes a
/// byte in at most six). The frames are written one at a time, so this bounds the send of
/// one frame, not a queue, and costs nothing until a frame needs it.
pub const MAX_UNSENT: usize = 2 * 1024 * 1024;

/// `GET /channels/chat/ws`.
pub async fn upgrade(
    State(chat): State<Arc<Chat>>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let client = client.map(|Extension(ClientAddr(a))| a);
    let allowed = &chat.settings.allowed_origins;
    if !allowed.is_empty() {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return (
                StatusCode::FORBIDDEN,
                "this page's origin may not open chats",
            )
                .into_response();
        }
    }
    let max = max_frame(chat.settings.max_message_bytes);
    // Chats are many and mostly quiet: a small read buffer, grown only while a frame needs
    // it, and no write buffering (each frame is written and flushed on its own).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT)
        .on_upgrade(move |socket| connection(chat, socket, client))
}

/// A start refused for now because the server is past its capacity.
const BUSY: &str = "busy";
/// How long a page told `busy` waits before starting again.
const BUSY_RETRY_SECS: u32 = 5;

/// A visitor waiting in line to start: counted while waiting, with its place when it
/// joined.
struct InLine<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    position: usize,
}

impl<'a> InLine<'a> {
    fn join(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        let position = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        InLine { count, position }
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An error frame for the page.
pub(crate) fn error_frame(code: &str, message: &str) -> Message {
    error(code, message)
}

/// The largest frame read: the longest message allowed however its page writes it (JSON
/// may escape a byte of text in up to six: a control character as `\u0001`; an emoji's
/// four bytes as two escaped halves, twelve), and the frame around it. It costs nothing
/// until a frame that long comes: the read buffer grows only for the frame it reads.
fn max_frame(max_message_bytes: usize) -> usize {
    max_message_bytes * 6 + 1024
}

/// Answers a frame that was not read because it is over [`max_frame`]: the page is told
/// why, and the connection closed with the websocket's own code for it (1009), since the
/// rest of that frame is not read. Other errors (a connection that broke, a frame that
/// breaks the websocket protocol) end the connection as they are.
async fn too_large(socket: &mut WebSocket, e: axum::Error) {
    let inner = e.into_inner();
    if let Some(tungstenite::Error::Capacity(_)) = inner.downcast_ref::<tungstenite::Error>() {
        metrics::counter!("switchboard_chat_refused_total", "reason" => "frame_too_large")
            .increment(1);
        if send(
            socket,
            error(
                "too_large",
                "this frame is longer than any message allowed; it was not read",
            ),
        )
        .await
            && send(socket, close(1009, "frame too large")).await
        {
            // The rest of the frame is still on its way and is never read; closing now
            // would reset the connection, and a page that had not read the answer yet
            // would lose it. It is given a moment to.
            tokio::time::sleep(LINGER).await;
        }
    }
}

/// How long a connection closed for a frame too large stays open, unread, so that the page
/// reads why before the connection is reset.
const LINGER: Duration = Duration::from_secs(1);

fn error(code: &str, message: &str) -> Message {
    Message::Text(
        json!({ "type": "error", "code": code, "message": message })
            .to_string()
            .into(),
    )
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

async fn connection(chat: Arc<Chat>, mut socket: WebSocket, client: Option<IpAddr>) {
    // The first frames, boxed: starting or resuming a chat awaits the intake and the
    // store, whose futures are large, and a connection's task then holds for the chat's
    // whole life only what waiting needs.
    let Some((room, (conn, mut events), replayed)) =
        Box::pin(hello(&chat, &mut socket, client)).await
    else {
        return;
    };
    serve(&chat, &room, &mut socket, &mut events, replayed, client).await;
    room.detach(conn).await;
}

/// A chat open on a connection: its room, the connection attached to it, and the last
/// number a resume replayed.
type Opened = (Arc<Room>, crate::room::Conn, u64);

/// Reads frames until one starts or resumes a chat; `None` when the connection ends
/// first.
async fn hello(chat: &Arc<Chat>, socket: &mut WebSocket, client: Option<IpAddr>) -> Option<Opened> {
    // Set while this visitor waits in line to start (the server past its capacity).
    let mut in_line: Option<InLine> = None;
    loop {
        let frame = match tokio::time::timeout(HELLO_WITHIN, socket.recv()).await {
            Err(_) => {
                send(socket, close(4001, "start or resume a chat first")).await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                too_large(socket, e).await;
                return None;
            }
            Ok(Some(Ok(f))) => f,
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Binary(_) => {
                if !send(socket, error("bad_frame", "send text frames (JSON)")).await {
                    return None;
                }
                continue;
            }
            Message::Close(_) => return None,
            _ => continue,
        };
        match decode(&text) {
            Ok(ClientFrame::Start {
                visitor_id,
                customer_token,
                email,
                name,
                topic,
            }) => match start(chat, client, visitor_id, customer_token, email, name, topic).await {
                Ok((room, started)) => {
                    if !send(socket, Message::Text(started.to_string().into())).await {
                        return None;
                    }
                    let conn = room.attach().await;
                    return Some((room, conn, 0));
                }
                Err((BUSY, _)) => {
                    // Past capacity: the chat is not taken yet. The page is told its place
                    // among those waiting to start and starts again after a while; the
                    // connection stays, and answers its pings meanwhile.
                    let line = in_line.get_or_insert_with(|| InLine::join(&chat.starting));
                    let frame = json!({ "type": "busy", "position": line.position,
                        "retry_in_secs": BUSY_RETRY_SECS,
                        "message": "many chats are starting at once; this one starts in a moment" });
                    if !send(socket, Message::Text(frame.to_string().into())).await {
                        return None;
                    }
                }
                Err((code, message)) => {
                    if !send(socket, error(code, &message)).await {
                        return None;
                    }
                    if code == "too_many_chats" {
                        send(socket, close(4008, &message)).await;
                        return None;
                    }
                }
            },
            Ok(ClientFrame::Resume {
                chat_id,
                resume_token,
                last_seq,
            }) => match resume(chat, &chat_id, &resume_token, last_seq).await {
                Ok(r) => {
                    for f in r.frames {
                        if !send(socket, Message::Text(f.to_string().into())).await {
                            r.room.detach(r.conn.0).await;
                            return None;
                        }
                    }
                    return Some((r.room, r.conn, r.replayed));
                }
                Err((code, message)) => {
                    if !send(socket, error(code, &message)).await {
                        return None;
                    }
                }
            },
            Ok(ClientFrame::Ping {}) => {
                if !send(
                    socket,
                    Message::Text(json!({ "type": "pong" }).to_string().into()),
                )
                .await
                {
                    return None;
                }
            }
            Ok(_) => {
                if !send(socket, error("start_first", "start or resume a chat first")).await {
                    return None;
                }
            }
            Err(e) => {
                if !send(socket, error("bad_frame", &e)).await {
                    return None;
                }
            }
        }
    }
}

/// The chat's life on this connection, until either side goes.
async fn serve(
    chat: &Chat,
    room: &Arc<Room>,
    socket: &mut WebSocket,
    events: &mut crate::outbox::Receiver,
    mut replayed: u64,
    client: Option<IpAddr>,
) {
    let s = &chat.settings;
    let idle = Duration::from_secs(s.idle_timeout_secs.max(5));
    loop {
        let frame = tokio::select! {
            e = events.recv() => match e {
                Some(text) => {
                    // Numbered events the resume replayed already are not sent twice.
                    // Events come in order: once one past the replay comes, the rest
                    // are new, and no frame needs reading again.
                    if replayed > 0 {
                        match seq_of(&text) {
                            Some(n) if n <= replayed => continue,
                            Some(_) => replayed = 0,
                            None => {}
                        }
                    }
                    if !send(socket, Message::Text(text.into())).await {
                        return;
                    }
                    continue;
                }
                None => return,
            },
            f = tokio::time::timeout(idle, socket.recv()) => match f {
                Err(_) => {
                    send(socket, close(4000, "idle too long")).await;
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    too_large(socket, e).await;
                    return;
                }
                Ok(Some(Ok(f))) => f,
            },
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Binary(_) => {
                if !send(socket, error("bad_frame", "send text frames (JSON)")).await {
                    return;
                }
                continue;
            }
            Message::Close(_) => return,
            _ => continue,
        };
        // Boxed: what a frame awaits (the store, the router) is allocated only while it
        // does, not for as long as the connection waits.
        let answer = Box::pin(answer(chat, room, &text, client)).await;
        if let Some(a) = answer {
            if !send(socket, a).await {
                return;
            }
        }
    }
}

/// What the page is answered to a frame of an open chat (`None`: nothing).
async fn answer(
    chat: &Chat,
    room: &Arc<Room>,
    text: &str,
    client: Option<IpAddr>,
) -> Option<Message> {
    let s = &chat.settings;
    match decode(text) {
        Err(e) => Some(error("bad_frame", &e)),
        Ok(ClientFrame::Message { id, text }) => {
            if id.is_empty() || id.len() > 64 {
                Some(error(
                    "bad_field",
                    "id: give each message an id of 1 to 64 characters",
                ))
            } else if text.trim().is_empty() {
                Some(error("bad_field", "text: write something"))
            } else if text.len() > s.max_message_bytes {
                Some(error(
                    "too_large",
                    &format!("text: at most {} bytes", s.max_message_bytes),
                ))
            } else {
                // A message sent again after a reconnect is answered with its ack and
                // counts against nothing; a new one counts against its chat and its
                // address.
                let address_allows = |now| {
                    client.is_none_or(|a| {
                        chat.messages
                            .take(a, s.messages_per_minute_per_address, now)
                    })
                };
                match room
                    .visitor_message(chat, &id, &text.replace('\0', ""), address_allows)
                    .await
                {
                    Ok(ack) => Some(Message::Text(ack.to_string().into())),
                    Err(Refused::Ended) => Some(error("ended", "this chat has ended")),
                    Err(Refused::SlowDown) => {
                        metrics::counter!("switchboard_chat_refused_total", "reason" => "rate")
                            .increment(1);
                        Some(error(
                            "slow_down",
                            "too many messages; this one was not sent, send it again shortly",
                        ))
                    }
                    Err(Refused::Unavailable(_)) => Some(error(
                        "unavailable",
                        "the message was not sent; send it again",
                    )),
                }
            }
        }
        Ok(ClientFrame::Typing {}) => {
            room.typing(chat).await;
            None
        }
        Ok(ClientFrame::Close {}) => {
            room.close(chat, "visitor", "the visitor ended the chat", true)
                .await;
            None
        }
        Ok(ClientFrame::Ping {}) => {
            Some(Message::Text(json!({ "type": "pong" }).to_string().into()))
        }
        Ok(ClientFrame::Rating { score, comment }) => {
            let comment = comment.map(|c| c.chars().take(2000).collect::<String>());
            Some(
                match chat
                    .core
                    .rate(ChannelKind::Chat, &room.key, score, comment.as_deref())
                    .await
                {
                    Ok(Rated::Recorded { .. }) => Message::Text(
                        json!({ "type": "rated", "score": score })
                            .to_string()
                            .into(),
                    ),
                    Ok(Rated::AlreadyAnswered) => {
                        error("already_rated", "this chat was scored before; thank you")
                    }
                    Ok(Rated::Unknown) => error(
                        "not_completed",
                        "a chat is scored once its agent has completed it",
                    ),
                    Err(IntakeError::Invalid { message, .. }) => {
                        error("bad_field", &format!("score: {message}"))
                    }
                    Err(e) => error("unavailable", &format!("{e}; send it again")),
                },
            )
        }
        Ok(ClientFrame::Transcript { email }) => {
            Some(crate::transcript::request(chat, &room.key, &room.interaction_id, &email).await)
        }
        Ok(ClientFrame::Start { .. } | ClientFrame::Resume { .. }) => Some(error(
            "already_started",
            "this connection already carries a chat",
        )),
    }
}

/// Sends a frame of the chat; false when the page has gone, or has stopped taking its
/// frames: it is let go, and resumes with what it missed.
async fn send(socket: &mut WebSocket, frame: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_STALL, socket.send(frame)).await,
        Ok(Ok(()))
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn secret() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Refusal = (&'static str, String);

/// Opens a chat: the visitor identified (by a signed token, a pre-chat email, or its
/// visitor id), the interaction committed and queued.
async fn start(
    chat: &Chat,
    client: Option<IpAddr>,
    visitor_id: String,
    customer_token: Option<String>,
    email: Option<String>,
    name: Option<String>,
    topic: Option<String>,
) -> Result<(Arc<Room>, Value), Refusal> {
    let visitor_id = visitor_id.trim().to_string();
    if visitor_id.is_empty() || visitor_id.len() > 100 || visitor_id.chars().any(char::is_control) {
        return Err((
            "bad_field",
            "visitor_id: 1 to 100 printable characters".into(),
        ));
    }
    if let Some(a) = client {
        if !chat.starts.take(
            a,
            chat.settings.chats_per_minute_per_address,
            Instant::now(),
        ) {
            metrics::counter!("switchboard_chat_refused_total", "reason" => "starts").increment(1);
            return Err((
                "slow_down",
                "too many chats started from here; try again in a minute".into(),
            ));
        }
    }
    let open = chat.rooms().open_of(&visitor_id);
    if open >= chat.settings.max_chats_per_visitor {
        return Err((
            "too_many_chats",
            format!(
                "at most {} chats at once",
                chat.settings.max_chats_per_visitor
            ),
        ));
    }
    let name = name
        .map(|n| n.trim().chars().take(100).collect::<String>())
        .filter(|n| !n.is_empty());
    let customer = match customer_token {
        Some(t) => {
            let claims = token::verify(&chat.settings.customer_token_secret, &t, unix_now())
                .map_err(|e| ("bad_field", format!("customer_token: {e}")))?;
            CustomerHint {
                email: claims.email,
                external_id: claims.external_id,
                name: claims.name.or(name),
                visitor_id: Some(visitor_id.clone()),
                ..CustomerHint::default()
            }
        }
        // A pre-chat form's address is only the visitor's word: kept and shown to the
        // agent, it names no customer (a signed customer token does).
        None => CustomerHint {
            claimed_email: email.filter(|e| !e.trim().is_empty()),
            name,
            visitor_id: Some(visitor_id.clone()),
            ..CustomerHint::default()
        },
    };
    let key = format!("chat:{}", uuid::Uuid::now_v7());
    let resume_token = secret();
    let started = FirstEvent {
        event_key: format!("{key}:started"),
        kind: STARTED.into(),
        // Only the secret's digest is kept, and privately: the history, the API and the
        // agents' desktops never see it, and the secret itself stays on the visitor's
        // page.
        data: json!({ "visitor_id": visitor_id,
                      "private": { "resume_digest": crate::room::digest(&resume_token) } }),
        fingerprint: None,
        files: Vec::new(),
    };
    let accepted = chat
        .core
        .submit(NewInteraction {
            channel: ChannelKind::Chat,
            idempotency_key: key.clone(),
            customer,
            topic,
            subject: Some("Web chat".into()),
            body: None,
            preferred_agent: None,
            not_before_ms: None,
            waits_for_first_message: true,
            // Recorded in the chat's own commit.
            first_event: Some(started.clone()),
        })
        .await
        .map_err(|e| match e {
            IntakeError::Invalid { field, message } => (
                "bad_field",
                format!(
                    "{}: {message}",
                    match field.trim_start_matches("customer.") {
                        "claimed_email" => "email",
                        other => other,
                    }
                ),
            ),
            IntakeError::Overloaded { .. } => (BUSY, String::new()),
            other => ("unavailable", format!("{other}; try again")),
        })?;
    if accepted.first_event.is_none() {
        // An intake that records no first events: recorded on its own.
        chat.core
            .record(ChannelEvent {
                channel: ChannelKind::Chat,
                contact_key: key.clone(),
                event_key: started.event_key,
                kind: started.kind,
                data: started.data,
                files: Vec::new(),
            })
            .await
            .map_err(|e| ("unavailable", format!("{e}; try again")))?;
    }
    let room = Room::new(key.clone(), accepted.interaction_id, visitor_id);
    chat.rooms().insert_if_absent(room.clone());
    metrics::counter!("switchboard_chats_started_total").increment(1);
    let mut started =
        json!({ "type": "started", "chat_id": key, "resume_token": resume_token, "seq": 0 });
    // Taken while closed: the visitor leaves a message, answered from the opening.
    if accepted.opens_at_ms.is_some() {
        metrics::counter!("switchboard_chats_closed_total").increment(1);
        let info = chat
            .core
            .service(ChannelKind::Chat, Some(&accepted.tier))
            .await;
        started["closed"] = json!({
            "message": info.closed_message, "opens_at": info.opens_at,
            "opens_at_local": info.opens_at_local, "hours": info.hours,
        });
    }
    Ok((room, started))
}

/// The number of a numbered event's frame (`None` for frames not kept: queue, typing).
fn seq_of(frame: &str) -> Option<u64> {
    serde_json::from_str::<Value>(frame)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .filter(|n| *n > 0)
}

/// A chat taken up again on a connection: the room, the connection attached to it (so
/// nothing published from then on passes it by), the frames it missed, and the last
/// number among them (live frames up to it were replayed already).
struct Resumed {
    room: Arc<Room>,
    conn: crate::room::Conn,
    frames: Vec<Value>,
    replayed: u64,
}

/// Takes up a chat again: every event after `last_seq`, in order, then what follows.
async fn resume(
    chat: &Chat,
    chat_id: &str,
    resume_token: &str,
    last_seq: u64,
) -> Result<Resumed, Refusal> {
    let unknown = || {
        (
            "unknown_chat",
            "no such chat, or the resume token is wrong: start a new one".to_string(),
        )
    };
    if !chat_id.starts_with("chat:") || chat_id.len() > 64 {
        return Err(unknown());
    }
    let loaded = Room::load(chat, chat_id, Some(resume_token))
        .await
        .map_err(|e| ("unavailable", format!("{e}; try again")))?
        .ok_or_else(unknown)?;
    let room = {
        let mut rooms = chat.rooms();
        match rooms.get(chat_id) {
            Some(r) => r.clone(),
            None if !loaded.is_ended_now() => rooms.insert_if_absent(loaded),
            None => loaded,
        }
    };
    // Attached before the store is read: an event published meanwhile is in the store's
    // answer, or comes live, or both (then it is skipped live), never neither.
    let conn = room.attach().await;
    let missed = match room.since(chat, last_seq).await {
        Ok(m) => m,
        Err(e) => {
            room.detach(conn.0).await;
            return Err(("unavailable", format!("{e}; try again")));
        }
    };
    let replayed = missed
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(last_seq);
    let mut frames = vec![json!({ "type": "resumed", "chat_id": chat_id, "missed": missed.len() })];
    frames.extend(missed);
    Ok(Resumed {
        room,
        conn,
        frames,
        replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of three arguments answers: what the task
    /// running it holds for as long as it runs.
    fn future_size<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_waiting_chats_connection_holds_little_beyond_its_socket() {
        // The socket itself is 368 bytes; starting or resuming (the intake's and the
        // store's futures) and answering a frame are allocated only while they run.
        // Before they were boxed, a connection's task held 2,368 bytes for its whole
        // life (in a debug build; 1,480 now).
        let size = future_size(connection);
        assert!(size <= 1536, "a chat's connection holds {size} bytes");
    }
}
