//! Messages channels kept aside instead of making contacts of them, kept whole for
//! supervisors: listed newest first, and each turned into a contact at most once.

use sqlx::Row;
use switchboard_contract::KeptAside;

use super::{new_id, Conn};

/// One message kept aside, as listed (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// Its channel.
    pub channel: String,
    /// Why, as a fixed label.
    pub reason: String,
    /// Why, as a sentence.
    pub detail: String,
    /// Who sent it, when known.
    pub sender: Option<String>,
    /// Its subject.
    pub subject: Option<String>,
    /// The start of its text.
    pub preview: Option<String>,
    /// Its size in bytes (0 when its bytes were not kept).
    pub size: i64,
    /// When it came (ms).
    pub received_at: i64,
    /// The interaction made of it, once one is.
    pub interaction_id: Option<String>,
    /// Who made it.
    pub contact_by: Option<String>,
    /// When (ms).
    pub contact_at: Option<i64>,
}

const COLUMNS: &str = "id, channel, reason, detail, sender, subject, preview, size, received_at, \
     interaction_id, contact_by, contact_at";

fn entry(r: &sqlx::any::AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        reason: r.try_get("reason")?,
        detail: r.try_get("detail")?,
        sender: r.try_get("sender")?,
        subject: r.try_get("subject")?,
        preview: r.try_get("preview")?,
        size: r.try_get("size")?,
        received_at: r.try_get("received_at")?,
        interaction_id: r.try_get("interaction_id")?,
        contact_by: r.try_get("contact_by")?,
        contact_at: r.try_get("contact_at")?,
    })
}

/// Keeps a message, once per (channel, key): false when it was kept before. The same key
/// with another fingerprint is another message reusing it: kept under the key and its
/// fingerprint, once too.
pub async fn keep(conn: &mut Conn, kept: &KeptAside, now: i64) -> Result<bool, sqlx::Error> {
    let channel = kept.channel.as_str();
    let known: Option<Option<String>> = sqlx::query_scalar(
        "SELECT fingerprint FROM kept_aside WHERE channel = $1 AND aside_key = $2",
    )
    .bind(channel)
    .bind(kept.key.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let key = match known {
        None => kept.key.clone(),
        Some(Some(f)) if f != kept.fingerprint => {
            format!(
                "{}#{}",
                kept.key,
                &kept.fingerprint[..16.min(kept.fingerprint.len())]
            )
        }
        Some(_) => return Ok(false),
    };
    let written = sqlx::query(
        "INSERT INTO kept_aside (id, channel, aside_key, fingerprint, reason, detail, sender, \
         subject, preview, size, raw, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (channel, aside_key) DO NOTHING",
    )
    .bind(new_id())
    .bind(channel)
    .bind(key)
    .bind(kept.fingerprint.as_str())
    .bind(kept.reason.as_str())
    .bind(kept.detail.as_str())
    .bind(kept.sender.clone())
    .bind(kept.subject.clone())
    .bind(kept.preview.clone())
    .bind(kept.raw.len() as i64)
    .bind(kept.raw.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// A page of a channel's messages kept aside, newest first, from before `before`
/// (`(received_at, id)` of the last one of the previous page).
pub async fn page(
    conn: &mut Conn,
    channel: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let (at, id) = before.unwrap_or((i64::MAX, String::new()));
    let sql = format!(
        "SELECT {COLUMNS} FROM kept_aside WHERE channel = $1 \
         AND (received_at < $2 OR (received_at = $2 AND id < $3)) \
         ORDER BY received_at DESC, id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(channel)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(entry).collect()
}

/// One message kept aside, with its bytes (`None` when they were not kept).
pub async fn get(
    conn: &mut Conn,
    channel: &str,
    id: &str,
) -> Result<Option<(Entry, Option<Vec<u8>>)>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, raw FROM kept_aside WHERE channel = $1 AND id = $2"
    ))
    .bind(channel)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((entry(&r)?, r.try_get("raw")?))).transpose()
}

/// Records that a contact was made of a message: false when one was made before.
pub async fn contacted(
    conn: &mut Conn,
    id: &str,
    interaction_id: &str,
    by: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE kept_aside SET interaction_id = $1, contact_by = $2, contact_at = $3 \
         WHERE id = $4 AND interaction_id IS NULL",
    )
    .bind(interaction_id)
    .bind(by)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
