//! Channel events recorded once per key, and the outbox of commands for channels'
//! external systems: stored first, delivered by the channel's adapter, retried until
//! delivered or given up.

use std::collections::HashSet;

use sqlx::Row;

use super::bulk::{self, Arg};
use super::Conn;

/// A channel event to record.
pub struct EventRow<'a> {
    /// Its channel.
    pub channel: &'a str,
    /// Its key, unique in the channel.
    pub event_key: &'a str,
    /// The key of the contact it belongs to.
    pub contact_key: &'a str,
    /// The contact's interaction, when there is one.
    pub interaction_id: Option<&'a str>,
    /// Its kind.
    pub kind: &'a str,
    /// Its details (JSON).
    pub data: String,
    /// A digest of the message it carries, when it carries one.
    pub fingerprint: Option<&'a str>,
}

/// Records channel events, each key once, in as few statements as fit: answers the
/// (channel, key) of those recorded now, not before (nor earlier in `rows`).
pub async fn record_events(
    conn: &mut Conn,
    rows: &[EventRow<'_>],
    now: i64,
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let args = rows
        .iter()
        .flat_map(|r| {
            [
                Arg::from(r.channel),
                Arg::from(r.event_key),
                Arg::from(r.contact_key),
                Arg::from(r.interaction_id.map(str::to_string)),
                Arg::from(r.kind),
                Arg::from(r.data.clone()),
                Arg::from(now),
                Arg::from(r.fingerprint.map(str::to_string)),
            ]
        })
        .collect();
    let returned = bulk::insert_returning(
        conn,
        "INSERT INTO channel_events (channel, event_key, contact_key, interaction_id, kind, data, at, fingerprint)",
        8,
        args,
        "ON CONFLICT (channel, event_key) DO NOTHING RETURNING channel, event_key",
    )
    .await?;
    let mut recorded = HashSet::with_capacity(returned.len());
    for row in returned {
        recorded.insert((row.try_get(0)?, row.try_get(1)?));
    }
    Ok(recorded)
}

/// Whether an event key recorded before carries another message than `fingerprint`
/// says (its key reused): false for an event without a fingerprint.
pub async fn reused(
    conn: &mut Conn,
    channel: &str,
    event_key: &str,
    fingerprint: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let Some(f) = fingerprint else {
        return Ok(false);
    };
    Ok(self::fingerprint(conn, channel, event_key)
        .await?
        .is_some_and(|known| known != f))
}

/// The fingerprint an event was recorded with (`None`: none, or no such event).
pub async fn fingerprint(
    conn: &mut Conn,
    channel: &str,
    event_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT fingerprint FROM channel_events WHERE channel = $1 AND event_key = $2",
    )
    .bind(channel)
    .bind(event_key)
    .fetch_optional(&mut *conn)
    .await?
    .flatten())
}

/// How long a command claimed for delivery is its claimer's: past it, its delivery
/// neither recorded nor given up, it is due again (the claimer died or fell behind).
pub const DELIVERY_LEASE_MS: i64 = 5_000;

/// Stores a command once: false when its id was stored before. A command `delivered`
/// already is kept only so that it is not repeated.
pub async fn put(
    conn: &mut Conn,
    id: &str,
    channel: &str,
    payload: &str,
    delivered: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let (next_at, delivered_at) = if delivered {
        (None, Some(now))
    } else {
        (Some(now), None)
    };
    insert(conn, id, channel, payload, next_at, delivered_at, now).await
}

/// Stores a command once, claimed already for delivery by this node until `until` (as
/// [`claim`] would): it is handed to its channel at the commit, with no claim of its own;
/// if it is neither delivered nor given up by then, it is due again. False when its id
/// was stored before (and it is not handed).
pub async fn put_claimed(
    conn: &mut Conn,
    id: &str,
    channel: &str,
    payload: &str,
    now: i64,
    until: i64,
) -> Result<bool, sqlx::Error> {
    insert(conn, id, channel, payload, Some(until), None, now).await
}

async fn insert(
    conn: &mut Conn,
    id: &str,
    channel: &str,
    payload: &str,
    next_at: Option<i64>,
    delivered_at: Option<i64>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    // The interaction it is about, so that erasure and retention find a customer's
    // commands without reading every payload.
    #[derive(serde::Deserialize)]
    struct About {
        interaction_id: Option<String>,
    }
    let about = serde_json::from_str::<About>(payload)
        .ok()
        .and_then(|a| a.interaction_id);
    let done = sqlx::query(
        "INSERT INTO outbox (id, channel, payload, attempts, next_at, created_at, delivered_at, interaction_id) \
         VALUES ($1, $2, $3, 0, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(channel)
    .bind(payload)
    .bind(next_at)
    .bind(now)
    .bind(delivered_at)
    .bind(about)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// (interaction id, contact key, agent id, agent name, extension) of the interactions of `channel`
/// held by an agent with neither a command `{prefix}{id}:{agent id}` nor a `{over_kind}`
/// event.
pub type Unanswered = (String, String, String, String, Option<String>);

/// See [`Unanswered`].
pub async fn unanswered_assignments(
    conn: &mut Conn,
    channel: &str,
    prefix: &str,
    over_kind: &str,
) -> Result<Vec<Unanswered>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.id, i.idempotency_key, i.agent_id, a.name, a.extension FROM interactions i \
         LEFT JOIN agents a ON a.id = i.agent_id \
         WHERE i.state = 'assigned' AND i.channel = $1 AND i.agent_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = $2 || i.id || ':' || i.agent_id) \
         AND NOT EXISTS (SELECT 1 FROM channel_events e WHERE e.channel = $1 \
                         AND e.contact_key = i.idempotency_key AND e.kind = $3) \
         ORDER BY i.updated_at",
    )
    .bind(channel)
    .bind(prefix)
    .bind(over_kind)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("idempotency_key")?,
                r.try_get("agent_id")?,
                r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
                r.try_get("extension")?,
            ))
        })
        .collect()
}

/// A command due: (id, payload, attempts).
pub type DueRow = (String, String, i64);

/// Commands of `channel` due at `now`, oldest first.
pub async fn due(
    conn: &mut Conn,
    channel: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<DueRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, payload, attempts FROM outbox WHERE channel = $1 AND next_at IS NOT NULL \
         AND next_at <= $2 ORDER BY next_at, created_at LIMIT $3",
    )
    .bind(channel)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("payload")?,
                r.try_get("attempts")?,
            ))
        })
        .collect()
}

/// Claims the commands of `channel` due at `now`, oldest first, until `until`: they are
/// due again then if their delivery is neither recorded nor given up by that time (the
/// deliverer died). Inside the leader's fenced transaction, so only one node delivers.
pub async fn claim(
    conn: &mut Conn,
    backend: super::Backend,
    channel: &str,
    now: i64,
    limit: i64,
    until: i64,
) -> Result<Vec<DueRow>, sqlx::Error> {
    // PostgreSQL: rows another transaction has claimed are passed over, not waited for.
    let lock = match backend {
        super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        super::Backend::Sqlite => "",
    };
    let rows = sqlx::query(&format!(
        "SELECT id, payload, attempts FROM outbox WHERE channel = $1 AND next_at IS NOT NULL \
         AND next_at <= $2 ORDER BY next_at, created_at LIMIT $3{lock}"
    ))
    .bind(channel)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let due: Vec<DueRow> = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("payload")?,
                r.try_get("attempts")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    if !due.is_empty() {
        let sql = format!(
            "UPDATE outbox SET next_at = $1 WHERE id IN ({})",
            bulk::list(2, due.len())
        );
        let mut q = sqlx::query(&sql).bind(until);
        for (id, _, _) in &due {
            q = q.bind(id.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(due)
}

/// A command was delivered.
pub async fn delivered(conn: &mut Conn, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET delivered_at = $2, next_at = NULL, attempts = attempts + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A delivery failed: due again at `next_at`, or never (given up).
pub async fn failed(
    conn: &mut Conn,
    id: &str,
    next_at: Option<i64>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET next_at = $2, attempts = attempts + 1, last_error = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(next_at)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
