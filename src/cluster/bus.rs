//! The cluster's bus: PostgreSQL LISTEN/NOTIFY, a wake-up over what the store holds.
//!
//! - `sb_queued` (any node, in the transaction that commits new or reopened contacts):
//!   their ids, so the leader's router takes them up at once. Sent at commit, so the
//!   leader never hears of a contact that is not there.
//! - `sb_announce` (the leader, after each commit): what the router announced —
//!   assignments, completions, commands stored, agents typing — for the channels of the
//!   other nodes (a call ringing on a follower learns which agent took it).
//! - `sb_leader`: a new leader took over.
//!
//! A notification is lost when a listener's connection drops; the listener then reads
//! what it may have missed from the store (the leader, every waiting contact), and the
//! channels' own catch-ups cover announcements.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::queue::Queue;
use crate::routing::router::{Announcement, Relay, RouterHandle};
use crate::store::{interactions, now_ms, Backend, Conn, Store};

const QUEUED: &str = "sb_queued";
const ANNOUNCE: &str = "sb_announce";
const LEADER: &str = "sb_leader";
/// The most bytes of one notification's payload (PostgreSQL takes under 8,000).
const PAYLOAD: usize = 7_000;

/// Tells the leader, at this transaction's commit, of contacts it must take up: newly
/// queued, or waiting again. Nothing on SQLite, whose one node queues them itself.
pub async fn queued(conn: &mut Conn, backend: Backend, ids: &[String]) -> Result<(), sqlx::Error> {
    if backend != Backend::Postgres || ids.is_empty() {
        return Ok(());
    }
    for payload in chunks(ids.iter().map(|id| serde_json::json!(id))) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(QUEUED)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Tells every node a new leader took over.
pub async fn leader_changed(store: &Store) {
    if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
        .bind(LEADER)
        .execute(store.pool())
        .await
    {
        // The others read who leads at their next check anyway.
        tracing::debug!(error = %e, "Could not announce the new leader");
    }
}

/// JSON arrays of `items`, each under the payload limit.
fn chunks(items: impl Iterator<Item = serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for item in items {
        let text = item.to_string();
        if size + text.len() + 1 > PAYLOAD && !current.is_empty() {
            out.push(format!("[{}]", current.join(",")));
            current.clear();
            size = 2;
        }
        size += text.len() + 1;
        current.push(text);
    }
    if !current.is_empty() {
        out.push(format!("[{}]", current.join(",")));
    }
    out
}

/// Announcements as sent: who sent them, when (by the database's clock), what.
#[derive(Serialize, Deserialize)]
struct Announced {
    node: String,
    at: i64,
    all: Vec<Announcement>,
}

/// Sends the leader's announcements to the other nodes, in order, from a task of its own:
/// the router never waits on it.
pub struct Notifier {
    tx: mpsc::UnboundedSender<Vec<Announcement>>,
}

impl Notifier {
    /// A notifier sending on `store` in the name of `node`, until `stop`.
    pub fn start(store: Store, node: String, stop: CancellationToken) -> Arc<Notifier> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Announcement>>();
        tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    b = rx.recv() => match b { Some(b) => b, None => return },
                    () = stop.cancelled() => return,
                };
                let mut all = batch;
                while let Ok(more) = rx.try_recv() {
                    all.extend(more);
                }
                if let Err(e) = send(&store, &node, all).await {
                    // The other nodes' channels catch up from the store when they find
                    // they have missed something; a follower's ringing call hears "queue"
                    // and its dial follows by callback.
                    tracing::warn!(error = %e, "Could not send announcements to the other nodes");
                    metrics::counter!("switchboard_cluster_relay_failures_total").increment(1);
                }
            }
        });
        Arc::new(Notifier { tx })
    }
}

async fn send(store: &Store, node: &str, all: Vec<Announcement>) -> Result<(), sqlx::Error> {
    let mut conn = store.pool().acquire().await?;
    let at = now_ms();
    let mut batch: Vec<Announcement> = Vec::new();
    let mut size = 0;
    let flush = |batch: Vec<Announcement>| Announced {
        node: node.to_string(),
        at,
        all: batch,
    };
    let mut payloads = Vec::new();
    for a in all {
        let len = serde_json::to_string(&a).map(|t| t.len()).unwrap_or(0);
        if size + len > PAYLOAD - 200 && !batch.is_empty() {
            payloads.push(flush(std::mem::take(&mut batch)));
            size = 0;
        }
        size += len + 1;
        batch.push(a);
    }
    if !batch.is_empty() {
        payloads.push(flush(batch));
    }
    for p in payloads {
        let text = serde_json::to_string(&p).unwrap_or_default();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ANNOUNCE)
            .bind(text)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Relay for Notifier {
    fn publish(&self, announcements: Vec<Announcement>) {
        // The task ends only at shutdown, when nothing is left to announce.
        let _ = self.tx.send(announcements);
    }
}

/// Listens on the bus until `stop`: the leader takes up the contacts queued on any node,
/// a follower passes the leader's announcements to its channels, and every node learns
/// of a new leader at once.
pub async fn listen(
    cluster: Arc<Cluster>,
    db_url: String,
    router: RouterHandle,
    queue: Arc<Queue>,
    store: Store,
    stop: CancellationToken,
) {
    loop {
        let mut listener = match connect(&db_url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "Could not listen to the other nodes; trying again");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        // Whatever was sent while this node was not listening: read from the store.
        catch_up(&queue, &store).await;
        loop {
            let got = tokio::select! {
                n = listener.try_recv() => n,
                () = stop.cancelled() => return,
            };
            match got {
                Ok(Some(n)) => {
                    handle(&cluster, &router, &queue, &store, n.channel(), n.payload()).await
                }
                // The connection was lost and made again: notifications may be missed.
                Ok(None) => catch_up(&queue, &store).await,
                Err(e) => {
                    tracing::warn!(error = %e, "Lost the connection listening to the other nodes");
                    break;
                }
            }
        }
    }
}

async fn connect(db_url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(db_url).await?;
    l.listen_all([QUEUED, ANNOUNCE, LEADER]).await?;
    Ok(l)
}

async fn handle(
    cluster: &Cluster,
    router: &RouterHandle,
    queue: &Queue,
    store: &Store,
    channel: &str,
    payload: &str,
) {
    match channel {
        // Kept only while this node routes (from the moment it starts taking over).
        QUEUED if queue.is_active() => {
            let ids: Vec<String> = serde_json::from_str(payload).unwrap_or_default();
            take_up(queue, store, &ids).await;
        }
        ANNOUNCE => {
            let Ok(a) = serde_json::from_str::<Announced>(payload) else {
                tracing::warn!("An announcement from another node could not be read");
                return;
            };
            if a.node == cluster.node() {
                return;
            }
            metrics::histogram!("switchboard_cluster_relay_lag_seconds")
                .record((now_ms() - a.at).max(0) as f64 / 1000.0);
            router.announced_elsewhere(a.all);
        }
        LEADER if !cluster.leads() => cluster.follow().await,
        _ => {}
    }
}

/// Puts the waiting ones of `ids` in the leader's queue (each once).
async fn take_up(queue: &Queue, store: &Store, ids: &[String]) {
    let rows = async {
        let mut conn = store.pool().acquire().await?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = interactions::get(&mut conn, id).await? {
                rows.push(r);
            }
        }
        Ok::<_, sqlx::Error>(rows)
    }
    .await;
    match rows {
        Ok(rows) => queue.push_all(
            rows.iter()
                .filter(|r| r.state == "queued")
                .map(crate::intake::waiting),
        ),
        // They wait in the store; the next catch-up (or take-over) finds them.
        Err(e) => tracing::warn!(error = %e, "Could not read contacts queued on another node"),
    }
}

/// After notifications may have been missed: a node that routes reads every waiting
/// contact.
async fn catch_up(queue: &Queue, store: &Store) {
    if !queue.is_active() {
        return;
    }
    let waiting = async {
        let mut conn = store.pool().acquire().await?;
        interactions::in_state(&mut conn, "queued").await
    }
    .await;
    match waiting {
        Ok(rows) => queue.push_all(rows.iter().map(crate::intake::waiting)),
        Err(e) => tracing::warn!(error = %e, "Could not read the waiting contacts to catch up"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_split_under_the_limit_and_keep_every_item() {
        let ids: Vec<serde_json::Value> = (0..1000)
            .map(|i| serde_json::json!(format!("0190c0de-0000-7000-8000-{i:012}")))
            .collect();
        let out = chunks(ids.clone().into_iter());
        assert!(out.len() > 1);
        let mut back = Vec::new();
        for p in &out {
            assert!(p.len() <= PAYLOAD, "{}", p.len());
            back.extend(serde_json::from_str::<Vec<serde_json::Value>>(p).unwrap());
        }
        assert_eq!(back, ids);
    }
}
