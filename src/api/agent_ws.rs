//! The agent websocket (`/agent/ws`): the transport around the router. It reads the
//! login, checks the token, then relays frames both ways: decoded messages to the
//! router, the router's events to the desktop. Bad frames get an error frame and the
//! connection stays; a wrong token closes it with a reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;

use super::agents::token_digest;
use super::AppState;
use crate::routing::protocol::{decode, error_frame, ClientMessage, MAX_TRANSPORT_FRAME};
use crate::routing::router::{DesktopLink, Outbound};
use crate::store::agents;

/// How long a new connection has to log in.
const LOGIN_WITHIN: Duration = Duration::from_secs(10);
/// What each desktop's and supervisor's connection keeps to read into: most frames a
/// desktop sends (a login, an accept, a short reply) fit in one read, and a longer one is
/// read in parts. Desktops are many and mostly quiet.
pub(super) const READ_BUFFER: usize = 512;
/// A frame the desktop has not taken within this (the sockets' buffers full all along) is
/// a desktop that has stopped reading: it is cut off, and resumes with what it missed.
/// Its frames are not read meanwhile, so this also bounds what it can send unanswered.
const SEND_STALL: Duration = Duration::from_secs(10);

/// `GET /agent/ws`: upgrades to the agent protocol.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // The transport takes a little more than the protocol's limits (16 KiB a message, a
    // reply 516 KiB), so a message over them is answered with an error frame; a larger
    // frame is not read, and the connection is dropped without a close frame (the
    // transport sends none for it). The read buffer grows only while a frame needs it;
    // nothing is buffered for writing (each frame is written and flushed on its own).
    ws.max_message_size(MAX_TRANSPORT_FRAME)
        .max_frame_size(MAX_TRANSPORT_FRAME)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session(socket, state))
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

async fn session(mut socket: WebSocket, state: AppState) {
    // The login: the first text frame, within LOGIN_WITHIN of connecting (pings and
    // bad frames do not extend it).
    let deadline = tokio::time::Instant::now() + LOGIN_WITHIN;
    let (token, resume) = loop {
        let frame = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return,
            Err(_) => {
                // Best effort: a peer that has gone cannot be told why; nothing changed.
                let _ = socket.send(close(4000, "log in first, within 10 s")).await;
                return;
            }
        };
        match frame {
            Message::Text(text) => match decode(&text) {
                Ok(ClientMessage::Login { token, resume }) => break (token, resume),
                Ok(_) => {
                    // Best effort: a peer that has gone cannot be told why; nothing changed.
                    let _ = socket
                        .send(Message::Text(
                            error_frame("login_first", "the first message must be a login").into(),
                        ))
                        .await;
                }
                Err(e) => {
                    // Best effort: a peer that has gone cannot be told why; nothing changed.
                    let _ = socket
                        .send(Message::Text(error_frame(e.code, &e.message).into()))
                        .await;
                }
            },
            Message::Binary(_) => {
                // Best effort: a peer that has gone cannot be told why; nothing changed.
                let _ = socket
                    .send(Message::Text(
                        error_frame("binary", "send JSON text frames").into(),
                    ))
                    .await;
            }
            Message::Close(_) => return,
            _ => {}
        }
    };
    let agent = match state.store.pool().acquire().await {
        Ok(mut conn) => agents::by_token(&mut conn, &token_digest(&token)).await,
        Err(e) => Err(e),
    };
    let agent = match agent {
        Ok(Some(a)) => a,
        Ok(None) => {
            // Best effort: a peer that has gone cannot be told why; nothing changed.
            let _ = socket.send(close(4001, "invalid token")).await;
            return;
        }
        Err(_) => {
            // Best effort: a peer that has gone cannot be told why; nothing changed.
            let _ = socket
                .send(close(1011, "the store is unavailable; reconnect shortly"))
                .await;
            return;
        }
    };
    let agent_id = agent.id.clone();
    let login = crate::store::audit::Change {
        actor: agent_id.clone(),
        action: "agent.login",
        target_kind: "agent",
        target_id: Some(agent_id.clone()),
        before: None,
        after: Some(serde_json::json!({ "resume": resume.is_some() })),
    };
    // Every login is in the audit trail: one the store cannot record is refused, and the
    // desktop reconnects (as it does when the store cannot read its work).
    let recorded = async {
        let mut conn = state.store.pool().acquire().await?;
        crate::store::audit::record(&mut conn, &[login], crate::store::now_ms()).await
    }
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "Could not record an agent's login in the audit trail; the login is refused");
        // Best effort: a peer that has gone cannot be told why; nothing changed.
        let _ = socket
            .send(close(1011, "the store is unavailable; reconnect shortly"))
            .await;
        return;
    }
    let (link, mut out_rx) = DesktopLink::new();
    let Some(conn) = state.router.connect(agent, resume, link.clone()).await else {
        // Best effort: a peer that has gone cannot be told why; nothing changed.
        let _ = socket.send(close(1012, "the server is restarting")).await;
        return;
    };

    // One task for the connection: the router's frames for this desktop (one channel, in
    // order) are written between reads. The connection ends when the router drops its
    // sender or asks to close, when the desktop goes, or when it is cut off for not
    // reading: its outbox full, or a frame not taken within SEND_STALL.
    // This desktop's places in the router's inbox: with all taken, it is not read until
    // the router has handled some (its frames are still written meanwhile).
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(
        crate::routing::router::DESKTOP_INBOX,
    ));
    'connection: loop {
        let frame = tokio::select! {
            out = out_rx.recv() => {
                if !write(&mut socket, out, &link).await {
                    break;
                }
                continue;
            }
            frame = socket.recv() => frame,
            () = link.cut() => break,
        };
        let Some(Ok(frame)) = frame else { break };
        match frame {
            Message::Text(text) => match decode(&text) {
                Ok(msg) => {
                    let place = loop {
                        tokio::select! {
                            place = places.clone().acquire_owned() => match place {
                                Ok(p) => break p,
                                Err(_) => break 'connection,
                            },
                            out = out_rx.recv() => if !write(&mut socket, out, &link).await {
                                break 'connection;
                            },
                            () = link.cut() => break 'connection,
                        }
                    };
                    state.router.message(&agent_id, conn, msg, place)
                }
                Err(e) => link.send(Outbound::Frame(error_frame(e.code, &e.message))),
            },
            Message::Binary(_) => link.send(Outbound::Frame(error_frame(
                "binary",
                "send JSON text frames",
            ))),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    state.router.disconnect(&agent_id, conn);
    drop(link);
}

/// Writes one of the router's frames for the desktop (`None`: the router let it go, and
/// the connection is closed); false when the connection is over: closed, gone, or cut
/// off while the write waited.
async fn write(socket: &mut WebSocket, out: Option<Outbound>, link: &DesktopLink) -> bool {
    let (msg, last) = match out {
        Some(Outbound::Frame(text)) => (Message::Text(text.into()), false),
        Some(Outbound::Close(code, reason)) => (close(code, &reason), true),
        None => (Message::Close(None), true),
    };
    tokio::select! {
        sent = tokio::time::timeout(SEND_STALL, socket.send(msg)) => match sent {
            Ok(sent) => sent.is_ok() && !last,
            Err(_) => {
                tracing::warn!(
                    secs = SEND_STALL.as_secs(),
                    "A desktop has not taken a frame; its connection is cut"
                );
                crate::telemetry::agent_event("cut_off");
                false
            }
        },
        () = link.cut() => false,
    }
}
