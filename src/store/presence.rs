//! Agents' presence over time: the router appends each change (available, away,
//! offline), and the replay simulator reads back who was on duty when.

use sqlx::Row;

use super::bulk::{self, Arg};
use super::Conn;

/// One change of an agent's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The agent.
    pub agent_id: String,
    /// `available`, `away` or `offline`.
    pub status: &'static str,
    /// Why it is away, when it said (or a supervisor or its missed offers did).
    pub reason: Option<String>,
}

/// Appends `changes`, all at `now`.
pub async fn append(conn: &mut Conn, changes: &[Change], now: i64) -> Result<(), sqlx::Error> {
    let args = changes
        .iter()
        .flat_map(|c| {
            [
                Arg::from(c.agent_id.as_str()),
                Arg::from(c.status),
                Arg::from(c.reason.clone()),
                Arg::from(now),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        "INSERT INTO agent_presence (agent_id, status, reason, at)",
        4,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// At start-up nobody is logged in: every agent whose last recorded presence is not
/// `offline` (the server stopped, or was killed, while they were on) is recorded offline
/// now. Answers how many.
pub async fn all_offline(conn: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO agent_presence (agent_id, status, at) \
         SELECT p.agent_id, 'offline', $1 FROM agent_presence p \
         WHERE p.seq = (SELECT MAX(q.seq) FROM agent_presence q WHERE q.agent_id = p.agent_id) \
         AND p.status <> 'offline'",
    )
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// One recorded change, with its time (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The agent.
    pub agent_id: String,
    /// `available`, `away` or `offline`.
    pub status: String,
    /// When (ms).
    pub at: i64,
}

/// Each agent's presence as of `at` (its last change before then), for agents that
/// were not offline.
pub async fn on_duty_at(conn: &mut Conn, at: i64) -> Result<Vec<Recorded>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.agent_id, p.status, p.at FROM agent_presence p \
         WHERE p.seq = (SELECT MAX(q.seq) FROM agent_presence q WHERE q.agent_id = p.agent_id AND q.at < $1) \
         AND p.status <> 'offline' ORDER BY p.agent_id",
    )
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(recorded).collect()
}

/// Every change in `[from, to)`, in order.
pub async fn between(conn: &mut Conn, from: i64, to: i64) -> Result<Vec<Recorded>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT agent_id, status, at FROM agent_presence WHERE at >= $1 AND at < $2 ORDER BY at, seq",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(recorded).collect()
}

fn recorded(r: &sqlx::any::AnyRow) -> Result<Recorded, sqlx::Error> {
    Ok(Recorded {
        agent_id: r.try_get("agent_id")?,
        status: r.try_get("status")?,
        at: r.try_get("at")?,
    })
}
