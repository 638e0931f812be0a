//! Websockets on a follower: a desktop (`/agent/ws`), a supervisor's live view
//! (`/supervisor/ws`) or a chat page (`/channels/chat/ws`) connected to a node that does
//! not lead is relayed, frame by frame, to the leader, where the router and the chats
//! live. The leader sees the client's own address and origin. When the leader goes, the
//! relay closes the client's socket with 1012 ("restarting"): desktops and chat pages
//! reconnect through the load balancer and resume with the new leader, from the store.

use std::sync::Arc;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use switchboard_contract::ClientAddr;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::rpc::SECRET_HEADER;
use super::{Cluster, Role};

/// The websockets that live on the leader.
const RELAYED: [&str; 3] = ["/agent/ws", "/supervisor/ws", "/channels/chat/ws"];

/// Middleware: on a follower, relays the leader's websockets to it; everything else (and
/// everything on the leader) is served here.
pub async fn relay_to_leader(
    State(cluster): State<Option<Arc<Cluster>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(cluster) = cluster else {
        return next.run(req).await;
    };
    if !RELAYED.contains(&req.uri().path()) || cluster.leads() {
        return next.run(req).await;
    }
    let leader = match cluster.role() {
        Role::Follower { leader: Some(l) } => l.url,
        _ => {
            return crate::api::error::ApiError::Unavailable(
                "no node leads just now (a new leader is taking over); reconnect in a moment"
                    .into(),
            )
            .into_response()
        }
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let client = req.extensions().get::<ClientAddr>().copied();
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let target = format!("{}{path}", leader.replacen("http", "ws", 1));
    let secret = cluster.secret().to_string();
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("switchboard_cluster_relayed_sockets").increment(1.0);
            relay(socket, &target, origin, client, &secret).await;
            metrics::gauge!("switchboard_cluster_relayed_sockets").decrement(1.0);
        })
}

/// Relays one websocket to the leader until either side closes it.
async fn relay(
    client: WebSocket,
    target: &str,
    origin: Option<HeaderValue>,
    addr: Option<ClientAddr>,
    secret: &str,
) {
    let (mut to_client, mut from_client) = client.split();
    let upstream = async {
        let mut req = target.into_client_request()?;
        let h = req.headers_mut();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o);
        }
        if let Some(ClientAddr(a)) = addr {
            if let Ok(v) = HeaderValue::from_str(&a.to_string()) {
                h.insert("x-forwarded-for", v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(secret) {
            h.insert(SECRET_HEADER, v);
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok::<_, tungstenite::Error>(ws)
    }
    .await;
    let upstream = match upstream {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "Could not reach the leader for a websocket");
            // Best effort: the client reconnects whatever it is told.
            let _ = to_client
                .send(closing(1013, "the leader is unreachable; reconnect"))
                .await;
            return;
        }
    };
    let (mut to_leader, mut from_leader) = upstream.split();
    let up = async {
        while let Some(Ok(m)) = from_client.next().await {
            let last = matches!(m, ws::Message::Close(_));
            if to_leader.send(to_tungstenite(m)).await.is_err() || last {
                break;
            }
        }
    };
    let down = async {
        while let Some(m) = from_leader.next().await {
            let Ok(m) = m else { break };
            let Some(m) = from_tungstenite(m) else {
                continue;
            };
            let last = matches!(m, ws::Message::Close(_));
            if to_client.send(m).await.is_err() || last {
                return;
            }
        }
        // The leader went without a goodbye: the client reconnects and resumes.
        let _ = to_client
            .send(closing(1012, "the server is restarting; reconnect"))
            .await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

fn closing(code: u16, reason: &str) -> ws::Message {
    ws::Message::Close(Some(ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn to_tungstenite(m: ws::Message) -> tungstenite::Message {
    match m {
        ws::Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
        ws::Message::Binary(b) => tungstenite::Message::Binary(b),
        ws::Message::Ping(b) => tungstenite::Message::Ping(b),
        ws::Message::Pong(b) => tungstenite::Message::Pong(b),
        ws::Message::Close(c) => {
            tungstenite::Message::Close(c.map(|c| tungstenite::protocol::CloseFrame {
                code: c.code.into(),
                reason: c.reason.as_str().into(),
            }))
        }
    }
}

fn from_tungstenite(m: tungstenite::Message) -> Option<ws::Message> {
    Some(match m {
        tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
        tungstenite::Message::Binary(b) => ws::Message::Binary(b),
        tungstenite::Message::Ping(b) => ws::Message::Ping(b),
        tungstenite::Message::Pong(b) => ws::Message::Pong(b),
        tungstenite::Message::Close(c) => ws::Message::Close(c.map(|c| ws::CloseFrame {
            code: c.code.into(),
            reason: c.reason.as_str().into(),
        })),
        tungstenite::Message::Frame(_) => return None,
    })
}
