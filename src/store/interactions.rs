//! Interactions in the store. The durable queue is the set of interactions in state
//! `queued`; the in-memory [`crate::queue::Queue`] is rebuilt from it at start-up.

use sqlx::any::AnyRow;
use sqlx::Row;

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

const COLUMNS: &str = "id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, tier_reason, \
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

/// Writes a new interaction.
pub async fn insert(conn: &mut Conn, i: &InteractionRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO interactions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(i.id.as_str())
    .bind(i.channel.as_str())
    .bind(i.idempotency_key.as_str())
    .bind(i.request_hash.as_str())
    .bind(i.customer_id.as_str())
    .bind(i.tier.as_str())
    .bind(i.tier_source.as_str())
    .bind(i.tier_reason.as_str())
    .bind(i.topic.as_deref())
    .bind(i.subject.as_deref())
    .bind(i.body.as_deref())
    .bind(i.state.as_str())
    .bind(i.created_at)
    .bind(i.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The interaction a channel created under `key`, if any.
pub async fn by_key(conn: &mut Conn, channel: &str, key: &str) -> Result<Option<InteractionRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM interactions WHERE channel = $1 AND idempotency_key = $2"))
        .bind(channel)
        .bind(key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(row_to_interaction).transpose()
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
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM interactions WHERE state = $1 ORDER BY created_at, id"))
        .bind(state)
        .fetch_all(conn)
        .await?;
    rows.iter().map(row_to_interaction).collect()
}
