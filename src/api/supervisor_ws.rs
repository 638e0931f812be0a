//! The supervisor websocket (`/supervisor/ws`): the live queue of `GET /api/queue`,
//! pushed as it changes. The first frame logs in with the admin token or a supervisor's
//! or admin's own token:
//! `{"type": "login", "token": "…"}`; then every frame is `{"type": "queue", …}`, at
//! most four a second, or `{"type": "notice", "notice": "sla_breached", …}` when a
//! service target or complaint is warned of or breached.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;

use super::AppState;
use crate::routing::protocol::{decode, error_frame, ClientMessage, MAX_CLIENT_FRAME};

/// Pushes are at least this far apart; changes in between are sent together.
const COALESCE: Duration = Duration::from_millis(250);

/// `GET /supervisor/ws`.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .read_buffer_size(super::agent_ws::READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session(socket, state))
}

async fn session(mut socket: WebSocket, state: AppState) {
    let login = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let token = match login {
        Ok(Some(Ok(Message::Text(t)))) => match decode(&t) {
            Ok(ClientMessage::Login { token, .. }) => token,
            Ok(_) => {
                // Best effort: a peer that has gone cannot be told why; nothing changed.
                let _ = socket
                    .send(Message::Text(
                        error_frame("login_first", "the first message must be a login").into(),
                    ))
                    .await;
                return;
            }
            Err(e) => {
                // Best effort: a peer that has gone cannot be told why; nothing changed.
                let _ = socket
                    .send(Message::Text(error_frame(e.code, &e.message).into()))
                    .await;
                return;
            }
        },
        _ => return,
    };
    let allowed = super::auth::principal(&state, &token)
        .await
        .is_ok_and(|p| p.role >= crate::store::agents::Role::Supervisor);
    if !allowed {
        let frame = CloseFrame {
            code: 4001,
            reason: Utf8Bytes::from_static("invalid token"),
        };
        // Best effort: a peer that has gone cannot be told why; nothing changed.
        let _ = socket.send(Message::Close(Some(frame))).await;
        return;
    }
    let mut changes = state.router.changes();
    let mut notices = state.services.notices();
    loop {
        let Some(snapshot) = state.router.snapshot().await else {
            break;
        };
        let mut snapshot = super::with_nodes(&state, snapshot);
        snapshot["type"] = "queue".into();
        if socket
            .send(Message::Text(snapshot.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            notice = notices.recv() => match notice {
                Ok(mut n) => {
                    n["notice"] = n["type"].take();
                    n["type"] = "notice".into();
                    if socket.send(Message::Text(n.to_string().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                // Missed notices are in the history; the view goes on.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            frame = socket.recv() => match frame {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Anything else a supervisor sends is ignored; the view is read-only.
                Some(Ok(_)) => {}
            },
        }
        tokio::time::sleep(COALESCE).await;
    }
}
