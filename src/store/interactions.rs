//! Interactions in the store. The durable queue is the set of interactions in state
//! `queued`; the in-memory [`crate::queue::Queue`] is rebuilt from it at start-up.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::Conn;

/// An interaction as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionRow {
    /// Its id.
    pub id: String,
    /// The channel it came by.
    pub channel: String,
    /// The channel's idempotency key.
    pub idempotency_key: String,
    /// A digest of the contact as first submitted (to tell a retry from a reused key).
    pub request_hash: String,
    /// The customer it belongs to.
    pub customer_id: String,
    /// The tier at entry.
    pub tier: String,
    /// Where the tier came from (`explicit`, `value`, `default`).
    pub tier_source: String,
    /// Why that tier.
    pub tier_reason: String,
    /// What it is about.
    pub topic: Option<String>,
    /// Its subject.
    pub subject: Option<String>,
    /// Its content.
    pub body: Option<String>,
    /// Where it is in its life (`queued`…).
    pub state: String,
    /// When it was accepted (ms).
    pub created_at: i64,
    /// When it last changed (ms).
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, tier_reason, \
                       topic, subject, body, state, created_at, updated_at";

fn row_to_interaction(row: &AnyRow) -> Result<InteractionRow, sqlx::Error> {
    Ok(InteractionRow {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        idempotency_key: row.try_get("idempotency_key")?,
        request_hash: row.try_get("request_hash")?,
        customer_id: row.try_get("customer_id")?,
        tier: row.try_get("tier")?,
        tier_source: row.try_get("tier_source")?,
        tier_reason: row.try_get("tier_reason")?,
        topic: row.try_get("topic")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        state: row.try_get("state")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Writes new interactions, as few statements as fit.
pub async fn insert_many(conn: &mut Conn, rows: &[InteractionRow]) -> Result<(), sqlx::Error> {
    let args = rows
        .iter()
        .flat_map(|i| {
            [
                Arg::from(i.id.as_str()),
                Arg::from(i.channel.as_str()),
                Arg::from(i.idempotency_key.as_str()),
                Arg::from(i.request_hash.as_str()),
                Arg::from(i.customer_id.as_str()),
                Arg::from(i.tier.as_str()),
                Arg::from(i.tier_source.as_str()),
                Arg::from(i.tier_reason.as_str()),
                Arg::from(i.topic.clone()),
                Arg::from(i.subject.clone()),
                Arg::from(i.body.clone()),
                Arg::from(i.state.as_str()),
                Arg::from(i.created_at),
                Arg::from(i.updated_at),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        &format!("INSERT INTO interactions ({COLUMNS})"),
        14,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// Every interaction created under any of `keys` (on any channel).
pub async fn by_keys(conn: &mut Conn, keys: &[&str]) -> Result<Vec<InteractionRow>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in keys.chunks(400) {
        let sql = format!(
            "SELECT {COLUMNS} FROM interactions WHERE idempotency_key IN ({})",
            bulk::list(1, chunk.len())
        );
        let args = chunk.iter().map(|k| Arg::from(*k)).collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(row_to_interaction(&row)?);
        }
    }
    Ok(out)
}

/// One interaction by id.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<InteractionRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM interactions WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(row_to_interaction).transpose()
}

/// Every interaction in `state`, oldest first.
pub async fn in_state(conn: &mut Conn, state: &str) -> Result<Vec<InteractionRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM interactions WHERE state = $1 ORDER BY created_at, id"
    ))
    .bind(state)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_interaction).collect()
}
