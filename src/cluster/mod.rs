//! Several nodes on one PostgreSQL database: every node serves every channel and takes
//! contacts on its own (its commit is the acknowledgement); exactly one node — the
//! leader — runs the router and everything else that must run once (outboxes, mailbox
//! polling, chat timers). PostgreSQL is the coordination engine: no consensus of our own,
//! no other server. SQLite is a single node and uses none of this.
//!
//! - **Election:** a node leads while it holds a session advisory lock on a connection of
//!   its own; taking the lead bumps the epoch in the one-row `cluster_leader` table. Every
//!   write the router makes checks that epoch in its own transaction (the fence,
//!   [`crate::store::Store::begin_fenced`]), so a paused or cut-off old leader can never
//!   write once another has taken over, even if it has not noticed.
//! - **The bus** ([`bus`]): LISTEN/NOTIFY wakes the leader for contacts committed on any
//!   node, and carries the leader's announcements (assignments, completions, commands
//!   stored) to the channels of every node.
//! - **Calls** ([`rpc`]): a follower's router handle asks the leader's router over HTTP.
//! - **Websockets** ([`proxy`]): a desktop, a supervisor or a chat page connected to a
//!   follower is relayed to the leader, where the router and the chats live.
//! - **Clock:** every node reads the time as the database's (an offset measured against
//!   it), so nodes whose clocks differ agree on every wait and deadline.
//!
//! # Layout
//! - this file: the node, its role, the election, the heartbeat and the clock;
//! - [`bus`], [`rpc`], [`proxy`].

pub mod bus;
pub mod proxy;
pub mod rpc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Connection;
use switchboard_contract::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{now_ms, Store};

/// The advisory lock whose holder leads (an arbitrary, fixed number: "SWTCHBRD").
const LEAD_LOCK: i64 = 0x5357_5443_4842_5244;
/// How often a follower tries to take the lead, and a leader checks it still holds it.
const LEAD_CHECK: Duration = Duration::from_millis(500);
/// How long a new leader waits, lock in hand and epoch bumped, before it routes: an old
/// leader cut off from the database notices within two lead checks and stops first (its
/// writes are refused from the bump on, whether it notices or not).
const TAKEOVER_GRACE: Duration = Duration::from_millis(1500);
/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node not heard from for this long is gone.
const NODE_GONE_MS: i64 = 10_000;
/// How often the clock's offset to the database's is measured again.
const CLOCK_EVERY: Duration = Duration::from_secs(30);

/// What this node is now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// The only node (SQLite): it runs everything.
    Single,
    /// It leads, with this epoch.
    Leader {
        /// The lead's epoch.
        epoch: i64,
    },
    /// Another node leads (or none does, between two leads).
    Follower {
        /// The leader, when there is one.
        leader: Option<LeaderInfo>,
    },
}

/// The node that leads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderInfo {
    /// Its id.
    pub node: String,
    /// Where the other nodes reach it.
    pub url: String,
    /// Its epoch.
    pub epoch: i64,
}

/// A node of the cluster, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeInfo {
    /// Its id.
    pub node: String,
    /// Where it is reached.
    pub url: String,
    /// `leader` or `follower`.
    pub role: String,
    /// When it started, and when it was last heard from (RFC 3339).
    pub started_at: String,
    /// When it last said it was alive.
    pub seen_at: String,
}

/// What a node does while it leads, started when it takes the lead and stopped when it
/// loses it.
pub trait Duties: Send + Sync + 'static {
    /// Takes over the live state from the store and starts the router and every task
    /// that runs once; answers a token that stops them all, and a future that completes
    /// when they have stopped.
    fn start(&self, epoch: i64) -> BoxFuture<'_, anyhow::Result<Running>>;
}

/// Duties running: stopped by cancelling `stop`, finished when `done` completes.
pub struct Running {
    /// Stops them.
    pub stop: CancellationToken,
    /// Completes when they have stopped.
    pub done: BoxFuture<'static, ()>,
}

/// This node in the cluster.
pub struct Cluster {
    node: String,
    url: String,
    db_url: String,
    store: Store,
    secret: String,
    started_at: i64,
    role: watch::Sender<Role>,
    nodes: std::sync::RwLock<Vec<NodeInfo>>,
    http: reqwest::Client,
}

impl Cluster {
    /// Joins the cluster on the store at `db_url`: this node's id, the URL the others
    /// reach it at (`advertise`, else `http://{local}`), the shared secret of calls
    /// between nodes (made by the first node), and the database's clock.
    pub async fn join(
        store: Store,
        db_url: &str,
        node: String,
        advertise: &str,
        local: std::net::SocketAddr,
    ) -> anyhow::Result<Arc<Cluster>> {
        let url = if advertise.is_empty() {
            format!("http://{local}")
        } else {
            advertise.trim_end_matches('/').to_string()
        };
        let secret = shared_secret(&store, "cluster").await?;
        measure_clock(&store)
            .await
            .context("Reading the database's clock")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("Building the client for calls between nodes")?;
        // No fenced write until this node wins the lead.
        store.set_fence(-1);
        Ok(Arc::new(Cluster {
            node,
            url,
            db_url: db_url.to_string(),
            store,
            secret,
            started_at: now_ms(),
            role: watch::channel(Role::Follower { leader: None }).0,
            nodes: std::sync::RwLock::default(),
            http,
        }))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where the other nodes reach this one.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The secret every node presents to the others.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// What this node is now.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Changes of this node's role.
    pub fn roles(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Whether this node leads now.
    pub fn leads(&self) -> bool {
        matches!(*self.role.borrow(), Role::Leader { .. })
    }

    /// The nodes alive, as last read.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The node and its role, for `/readyz` and the console.
    pub fn describe(&self) -> Value {
        let role = self.role();
        json!({ "node": self.node, "url": self.url, "role": role, "nodes": self.nodes() })
    }

    /// Runs the election, the heartbeat and the clock until `stop`: while this node
    /// leads, `duties` run; when it stops leading (its lock's connection lost, or a write
    /// fenced by a newer lead), they are stopped before anything else.
    pub async fn run(self: Arc<Self>, duties: Arc<dyn Duties>, stop: CancellationToken) {
        tokio::spawn(self.clone().heartbeat(stop.clone()));
        tokio::spawn(self.clone().keep_clock(stop.clone()));
        // The election's own connection, kept between attempts.
        let mut conn: Option<sqlx::PgConnection> = None;
        loop {
            let lock = tokio::select! {
                lock = self.try_lead(&mut conn) => lock,
                () = stop.cancelled() => return,
            };
            match lock {
                Ok(Some((epoch, succeeds))) => {
                    if let Some(c) = conn.take() {
                        self.lead(c, epoch, succeeds, &*duties, &stop).await;
                    }
                    if stop.is_cancelled() {
                        return;
                    }
                }
                Ok(None) => {
                    self.store.set_fence(-1);
                    self.follow().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Could not take part in the election; trying again");
                    conn = None;
                    self.role.send_replace(Role::Follower { leader: None });
                }
            }
            tokio::select! {
                () = tokio::time::sleep(LEAD_CHECK) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Tries the lead's lock on the election's own connection: with it, the epoch is
    /// bumped (waiting for any write of the old leader in flight) and answered, with
    /// whether a leader held it before; the connection then holds the lock for as long as
    /// it lives.
    async fn try_lead(
        &self,
        conn: &mut Option<sqlx::PgConnection>,
    ) -> anyhow::Result<Option<(i64, bool)>> {
        if conn.is_none() {
            *conn = Some(sqlx::PgConnection::connect(&self.db_url).await?);
        }
        let Some(c) = conn.as_mut() else {
            return Ok(None);
        };
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEAD_LOCK)
            .fetch_one(&mut *c)
            .await?;
        if !got {
            return Ok(None);
        }
        let before: Option<String> =
            sqlx::query_scalar("SELECT node FROM cluster_leader WHERE id = 1")
                .fetch_one(&mut *c)
                .await?;
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE cluster_leader SET epoch = epoch + 1, node = $1, url = $2, since = $3 \
             WHERE id = 1 RETURNING epoch",
        )
        .bind(&self.node)
        .bind(&self.url)
        .bind(now_ms())
        .fetch_one(&mut *c)
        .await?;
        Ok(Some((epoch, before.is_some())))
    }

    /// Leads until the lock's connection fails, a write is fenced, or `stop`.
    async fn lead(
        &self,
        mut conn: sqlx::PgConnection,
        epoch: i64,
        succeeds: bool,
        duties: &dyn Duties,
        stop: &CancellationToken,
    ) {
        self.store.set_fence(epoch);
        // Taking over from another leader (not the first lead on this database): it may
        // not have noticed yet.
        if succeeds {
            tokio::select! {
                () = tokio::time::sleep(TAKEOVER_GRACE) => {}
                () = stop.cancelled() => {}
            }
        }
        // The live state is taken over and the router started before this node says it
        // leads: a call that finds it leading finds its router running.
        let running = match duties.start(epoch).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "Could not take over as leader; giving up the lead");
                None
            }
        };
        if running.is_some() {
            self.role.send_replace(Role::Leader { epoch });
            metrics::counter!("switchboard_cluster_leader_changes_total").increment(1);
            metrics::gauge!("switchboard_cluster_is_leader").set(1.0);
            metrics::gauge!("switchboard_cluster_epoch").set(epoch as f64);
            tracing::info!(epoch, "This node leads");
            bus::leader_changed(&self.store).await;
        }
        if let Some(ended) = running.as_ref().map(|r| r.stop.clone()) {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(LEAD_CHECK) => {}
                    () = stop.cancelled() => break,
                    () = ended.cancelled() => break,
                }
                if self.store.fenced() {
                    tracing::warn!(epoch, "A newer leader fenced this node's writes; stopping");
                    break;
                }
                let alive = tokio::time::timeout(
                    LEAD_CHECK,
                    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut conn),
                )
                .await;
                if !matches!(alive, Ok(Ok(_))) {
                    tracing::warn!(epoch, "Lost the connection that holds the lead; stopping");
                    break;
                }
            }
        }
        // Stop routing first: the fence already refuses anything else this node writes.
        self.store.set_fence(-1);
        self.role.send_replace(Role::Follower { leader: None });
        metrics::gauge!("switchboard_cluster_is_leader").set(0.0);
        if let Some(running) = running {
            running.stop.cancel();
            running.done.await;
        }
        // Gives the lock back at once (a dead connection has given it back already).
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "The lead's connection was gone already");
        }
        tracing::info!(epoch, "This node no longer leads");
    }

    /// Reads who leads, as a follower (asked by the election, and when a call to the
    /// leader failed or the bus says the lead changed). A node holding the lead — taking
    /// over, its router not yet started — is left as it is: the fence and the role are
    /// the election's.
    pub(crate) async fn follow(&self) {
        if !self.store.fenced() {
            return;
        }
        let leader = match self.leader().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read who leads");
                None
            }
        };
        let role = Role::Follower { leader };
        if *self.role.borrow() != role {
            self.role.send_replace(role);
        }
    }

    /// The leader the store names (it may have died since: the lock says who holds it).
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, sqlx::Error> {
        let row: Option<(i64, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT epoch, node, url FROM cluster_leader WHERE id = 1")
                .fetch_optional(self.store.pool())
                .await?;
        Ok(row
            .and_then(|(epoch, node, url)| {
                Some(LeaderInfo {
                    node: node?,
                    url: url?,
                    epoch,
                })
            })
            .filter(|l| l.node != self.node))
    }

    /// Says every few seconds that this node is alive, and reads which others are.
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let role = if self.leads() { "leader" } else { "follower" };
            let beat = async {
                let mut conn = self.store.pool().acquire().await?;
                sqlx::query(
                    "INSERT INTO cluster_nodes (node, url, started_at, seen_at, role) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node) DO UPDATE \
                     SET seen_at = excluded.seen_at, role = excluded.role, url = excluded.url",
                )
                .bind(&self.node)
                .bind(&self.url)
                .bind(self.started_at)
                .bind(now_ms())
                .bind(role)
                .execute(&mut *conn)
                .await?;
                let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
                    "SELECT node, url, started_at, seen_at, role FROM cluster_nodes \
                     WHERE seen_at > $1 ORDER BY started_at",
                )
                .bind(now_ms() - NODE_GONE_MS)
                .fetch_all(&mut *conn)
                .await?;
                // Nodes long gone are forgotten.
                sqlx::query("DELETE FROM cluster_nodes WHERE seen_at < $1")
                    .bind(now_ms() - 24 * 3_600_000)
                    .execute(&mut *conn)
                    .await?;
                Ok::<_, sqlx::Error>(rows)
            }
            .await;
            match beat {
                Ok(rows) => {
                    metrics::gauge!("switchboard_cluster_nodes").set(rows.len() as f64);
                    *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = rows
                        .into_iter()
                        .map(|(node, url, started, seen, role)| NodeInfo {
                            node,
                            url,
                            role,
                            started_at: crate::store::rfc3339(started),
                            seen_at: crate::store::rfc3339(seen),
                        })
                        .collect();
                }
                // Said again at the next beat; meanwhile others see this node as alive for
                // a while yet.
                Err(e) => tracing::warn!(error = %e, "Could not say this node is alive"),
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                () = stop.cancelled() => break,
            }
        }
        // Leaving: the others stop counting this node at once.
        if let Err(e) = sqlx::query("DELETE FROM cluster_nodes WHERE node = $1")
            .bind(&self.node)
            .execute(self.store.pool())
            .await
        {
            tracing::debug!(error = %e, "Could not say this node left; it is forgotten in a while");
        }
    }

    /// Keeps this node's clock on the database's.
    async fn keep_clock(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(CLOCK_EVERY) => {}
                () = stop.cancelled() => return,
            }
            if let Err(e) = measure_clock(&self.store).await {
                // The last offset measured stays in force.
                tracing::warn!(error = %e, "Could not read the database's clock");
            }
        }
    }

    /// Checks a call from another node: it must present the cluster's secret.
    pub fn trusts(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                p.as_bytes(),
                self.secret.as_bytes(),
            ))
        })
    }
}

/// Sets this machine's clock offset to the database's: the midpoint of a round trip.
async fn measure_clock(store: &Store) -> Result<(), sqlx::Error> {
    let before = Instant::now();
    let local_before = now_ms();
    let db: i64 =
        sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
            .fetch_one(store.pool())
            .await?;
    let rtt = before.elapsed().as_millis() as i64;
    let local = local_before + rtt / 2;
    // now_ms() already includes the last offset: adjust it by what is still off.
    let off = db - local;
    if off.abs() > 2 {
        crate::store::add_clock_offset(off);
    }
    metrics::gauge!("switchboard_cluster_clock_offset_ms").set(crate::store::clock_offset() as f64);
    Ok(())
}

/// A secret every node of the cluster shares, made by the first node that asks.
pub async fn shared_secret(store: &Store, name: &str) -> anyhow::Result<String> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("No randomness for a secret: {e}"))?;
    let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    sqlx::query(
        "INSERT INTO cluster_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(&fresh)
    .execute(store.pool())
    .await
    .context("Storing the cluster's secret")?;
    let value: String = sqlx::query_scalar("SELECT value FROM cluster_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(store.pool())
        .await
        .context("Reading the cluster's secret")?;
    Ok(value)
}
