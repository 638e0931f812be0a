//! The bare websocket echo the chat benchmarks compare with: the same libraries as
//! Switchboard's chat socket (tokio, axum and its websockets), each text frame answered
//! with itself, one task per connection, nothing written anywhere — what the sockets
//! alone cost.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;

/// The echo's read buffer: the chat socket's (`READ_BUFFER` in
/// `channels/chat/src/ws.rs`), so what a chat costs beyond this is the chat's own.
const READ_BUFFER: usize = 512;

/// `GET /echo`: each text frame answered with itself.
pub fn app() -> Router {
    Router::new().route(
        "/echo",
        get(|ws: WebSocketUpgrade| async move {
            ws.read_buffer_size(READ_BUFFER)
                .write_buffer_size(0)
                .on_upgrade(|mut socket: WebSocket| async move {
                    while let Some(Ok(m)) = socket.recv().await {
                        if let Message::Text(t) = m {
                            if socket.send(Message::Text(t)).await.is_err() {
                                return;
                            }
                        }
                    }
                })
        }),
    )
}
