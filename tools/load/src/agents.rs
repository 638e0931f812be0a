//! Agents on the agent websocket, as desktops are: each logs in, says it is available,
//! accepts every offer, holds the contact for the handling time and completes it; after
//! a dropped connection (a server killed under it) it logs in again and finishes the
//! work it held. Each offer and each confirmed completion is counted in the tally. On
//! several nodes the agents are dealt to the nodes in turn, and one whose node dies logs
//! in again through the next.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::tally::Shared;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Creates agent `n` on the server; answers its record (with its token).
pub async fn create(server: &Server, client: &reqwest::Client, n: usize) -> Value {
    client
        .post(format!("{}/api/agents", server.base()))
        .bearer_auth(&server.token)
        .json(&json!({ "name": format!("Load Agent {n}"), "capacity": { "chat": 3, "email": 3, "phone": 1 } }))
        .send()
        .await
        .expect("the server creates agents")
        .json()
        .await
        .expect("the server answers an agent's record")
}

/// Agent `n` at work until `stop`, logging in again whenever its connection drops (on
/// several nodes, through the next node).
pub async fn agent(
    server: Arc<Server>,
    me: Value,
    n: usize,
    tally: Shared,
    hold: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut node = n % server.nodes.len();
    while !*stop.borrow() {
        let url = format!(
            "{}/agent/ws",
            server.nodes[node].base.replacen("http", "ws", 1)
        );
        let desk = Desk {
            server: &server,
            node,
            me: &me,
            tally: &tally,
            hold,
        };
        match tokio_tungstenite::connect_async(&url).await {
            Ok((ws, _)) => {
                work(ws, desk, stop.clone()).await;
                node = (node + 1) % server.nodes.len();
            }
            Err(_) => {
                node = (node + 1) % server.nodes.len();
                // The server is down (the crash test): try again shortly.
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

/// Completes interaction `id` after the handling time.
fn complete_later(out: &mpsc::UnboundedSender<String>, id: Value, hold: Duration) {
    let out = out.clone();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        let done = json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" });
        // A connection gone meanwhile: the work comes back at the next login's welcome.
        let _ = out.send(done.to_string());
    });
}

/// One desktop: who, on which node.
struct Desk<'a> {
    server: &'a Server,
    node: usize,
    me: &'a Value,
    tally: &'a Shared,
    hold: Duration,
}

/// One desktop connection's work, until it drops or the run stops.
async fn work(ws: Ws, desk: Desk<'_>, mut stop: watch::Receiver<bool>) {
    let Desk {
        me, tally, hold, ..
    } = desk;
    let agent = me["id"].as_str().unwrap_or_default();
    let (mut tx, mut rx) = ws.split();
    let (out, mut outbox) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(t) = outbox.recv().await {
            if tx.send(Message::Text(t.into())).await.is_err() {
                return;
            }
        }
    });
    // Sends into our own writer's channel, which lives as long as this function: they
    // cannot fail while it runs.
    let _ = out.send(json!({ "type": "login", "token": me["token"] }).to_string());
    let _ = out.send(json!({ "type": "presence", "status": "available" }).to_string());
    let mut beat = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = beat.tick() => { let _ = out.send(json!({ "type": "heartbeat" }).to_string()); }
            _ = stop.wait_for(|s| *s) => break,
            f = rx.next() => {
                let t = match f {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => break,
                };
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                match v["type"].as_str() {
                    Some("offer") => {
                        let key = v["interaction"]["contact_key"].as_str().unwrap_or_default();
                        let id = v["interaction"]["id"].as_str().unwrap_or_default();
                        let relayed = desk.server.relayed(desk.node);
                        tally.lock().unwrap().offered(key, id, relayed);
                        let _ = out.send(json!({ "type": "accept", "offer_id": v["offer_id"] }).to_string());
                    }
                    // Work held from before a reconnect is finished too.
                    Some("welcome") => {
                        for held in v["assigned"].as_array().into_iter().flatten() {
                            tally.lock().unwrap().assigned(held["id"].as_str().unwrap_or_default(), agent);
                            complete_later(&out, held["id"].clone(), hold);
                        }
                    }
                    Some("assigned") => {
                        tally.lock().unwrap().assigned(v["interaction_id"].as_str().unwrap_or_default(), agent);
                        complete_later(&out, v["interaction_id"].clone(), hold);
                    }
                    Some("completed") => {
                        let id = v["interaction_id"].as_str().unwrap_or_default();
                        tally.lock().unwrap().completed(id);
                    }
                    _ => {}
                }
            }
        }
    }
    drop(out);
    writer.abort();
}
