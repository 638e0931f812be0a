//! The agent websocket (`/agent/ws`): the transport around the router. It reads the
//! login, checks the token, then relays frames both ways: decoded messages to the
//! router, the router's events to the desktop. Bad frames get an error frame and the
//! connection stays; a wrong token closes it with a reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use super::agents::token_digest;
use super::AppState;
use crate::routing::protocol::{decode, error_frame, ClientMessage, MAX_CLIENT_FRAME};
use crate::routing::router::{DesktopLink, Outbound};
use crate::store::agents;

/// How long a new connection has to log in.
const LOGIN_WITHIN: Duration = Duration::from_secs(10);
pub(super) const READ_BUFFER: usize = 512;

/// `GET /agent/ws`: upgrades to the agent protocol.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // The transport takes up to 64 KiB, so a message over the protocol's 16 KiB is
    // answered with an error frame; a larger frame is not read, and the connection is
    // dropped without a close frame (the transport sends none for it).
    ws.max_message_size(4 * MAX_CLIENT_FRAME)
        .max_frame_size(4 * MAX_CLIENT_FRAME)
        .read_buffer_size(4096)
        .on_upgrade(move |socket| session(socket, state))
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

async fn session(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();

    // The login: the first text frame, within LOGIN_WITHIN of connecting (pings and
    // bad frames do not extend it).
    let deadline = tokio::time::Instant::now() + LOGIN_WITHIN;
    let (token, resume) = loop {
        let frame = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return,
            Err(_) => {
                // Best effort: a peer that has gone cannot be told why; nothing changed.
                let _ = sink.send(close(4000, "log in first, within 10 s")).await;
                return;
            }
        };
        match frame {
            Message::Text(text) => match decode(&text) {
                Ok(ClientMessage::Login { token, resume }) => break (token, resume),
                Ok(_) => {
                    // Best effort: a peer that has gone cannot be told why; nothing changed.
                    let _ = sink
                        .send(Message::Text(
                            error_frame("login_first", "the first message must be a login").into(),
                        ))
                        .await;
                }
                Err(e) => {
                    // Best effort: a peer that has gone cannot be told why; nothing changed.
                    let _ = sink
                        .send(Message::Text(error_frame(e.code, &e.message).into()))
                        .await;
                }
            },
            Message::Binary(_) => {
                // Best effort: a peer that has gone cannot be told why; nothing changed.
                let _ = sink
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
            let _ = sink.send(close(4001, "invalid token")).await;
            return;
        }
        Err(_) => {
            // Best effort: a peer that has gone cannot be told why; nothing changed.
            let _ = sink
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
        let _ = sink
            .send(close(1011, "the store is unavailable; reconnect shortly"))
            .await;
        return;
    }
    let (link, mut out_rx) = DesktopLink::new();
    let Some(conn) = state.router.connect(agent, resume, link.clone()).await else {
        // Best effort: a peer that has gone cannot be told why; nothing changed.
        let _ = sink.send(close(1012, "the server is restarting")).await;
        return;
    };

    // The writer: everything for this desktop goes through one channel, in order. It
    // ends when the router drops its sender (or asks to close) and this task drops its own.
    let writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            let (msg, last) = match out {
                Outbound::Frame(text) => (Message::Text(text.into()), false),
                Outbound::Close(code, reason) => (close(code, &reason), true),
            };
            if sink.send(msg).await.is_err() || last {
                break;
            }
        }
        // Best effort: a peer that has gone cannot be told why; nothing changed.
        let _ = sink.close().await;
    });

    let mut writer = writer;
    // This desktop's places in the router's inbox: with all taken, it is not read until
    // the router has handled some.
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(
        crate::routing::router::DESKTOP_INBOX,
    ));
    loop {
        // When the writer ends (the router closed the connection), stop reading too: a
        // peer that never answers the close must not keep this task alive.
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut writer => break,
            // Cut off for not reading: the writer may be stuck on a full socket.
            () = link.cut() => break,
        };
        let Some(Ok(frame)) = frame else { break };
        match frame {
            Message::Text(text) => match decode(&text) {
                Ok(msg) => {
                    let place = tokio::select! {
                        place = places.clone().acquire_owned() => match place {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                        _ = &mut writer => break,
                        () = link.cut() => break,
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
    writer.abort();
}
