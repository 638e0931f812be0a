//! What channels keep beyond interactions: finding a contact by any of its keys, the
//! events recorded for it, the files that came with it, and channels' cursors in their
//! external sources.

use sqlx::Row;

use super::bulk::{self, Arg};
use super::interactions::{self, InteractionRow};
use super::Conn;

/// The interaction a channel knows by any of `keys` (the key it was submitted under, or
/// the event key of an event recorded for it), the first of `keys` found winning.
pub async fn find_contact(
    conn: &mut Conn,
    channel: &str,
    keys: &[String],
) -> Result<Option<InteractionRow>, sqlx::Error> {
    let keys: Vec<&String> = keys.iter().take(200).collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let list = bulk::list(2, keys.len());
    let sql = format!(
        "SELECT idempotency_key AS k, idempotency_key AS contact FROM interactions \
         WHERE channel = $1 AND idempotency_key IN ({list}) \
         UNION ALL SELECT event_key AS k, contact_key AS contact FROM channel_events \
         WHERE channel = $1 AND event_key IN ({list})"
    );
    let mut args = vec![Arg::from(channel)];
    args.extend(keys.iter().map(|k| Arg::from(k.as_str())));
    let rows = bulk::bind_all(sqlx::query(&sql), args)
        .fetch_all(&mut *conn)
        .await?;
    let mut found: Vec<(String, String)> = Vec::new();
    for r in &rows {
        found.push((r.try_get("k")?, r.try_get("contact")?));
    }
    for k in keys {
        if let Some((_, contact)) = found.iter().find(|(f, _)| f == k) {
            if let Some(row) = interactions::by_key(conn, channel, contact).await? {
                return Ok(Some(row));
            }
        }
    }
    Ok(None)
}

/// The data of every event of `kind` recorded for a contact, oldest first.
pub async fn events_of(
    conn: &mut Conn,
    channel: &str,
    contact_key: &str,
    kind: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT data FROM channel_events WHERE channel = $1 AND contact_key = $2 AND kind = $3 \
         ORDER BY at, event_key",
    )
    .bind(channel)
    .bind(contact_key)
    .bind(kind)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| r.try_get("data")).collect()
}

/// A file stored with an interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its id.
    pub id: String,
    /// Its file name.
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its size.
    pub size: i64,
    /// Whether its content is kept (it was within the limit).
    pub kept: bool,
}

/// Stores a channel event's files with its interaction, as [`attach`] does.
pub async fn attach_files(
    conn: &mut Conn,
    interaction_id: &str,
    event_key: &str,
    files: &[switchboard_contract::Attachment],
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let files: Vec<(String, String, i64, Option<Vec<u8>>)> = files
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                f.content_type.clone(),
                f.size as i64,
                f.data.clone(),
            )
        })
        .collect();
    attach(conn, interaction_id, event_key, &files, now).await
}

/// Stores files with an interaction, each once: their ids derive from the interaction,
/// `prefix` and their position (hex, safe in a URL). Answers their ids in order.
pub async fn attach(
    conn: &mut Conn,
    interaction_id: &str,
    prefix: &str,
    files: &[(String, String, i64, Option<Vec<u8>>)],
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    use sha2::{Digest, Sha256};
    let stem: String = Sha256::digest(format!("{interaction_id}\n{prefix}").as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut ids = Vec::with_capacity(files.len());
    for (i, (name, content_type, size, data)) in files.iter().enumerate() {
        let id = format!("{stem}-{}", i + 1);
        sqlx::query(
            "INSERT INTO attachments (id, interaction_id, name, content_type, size, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(interaction_id)
        .bind(name.as_str())
        .bind(content_type.as_str())
        .bind(*size)
        .bind(data.clone())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// The files of an interaction, without their content.
pub async fn files_of(
    conn: &mut Conn,
    interaction_id: &str,
) -> Result<Vec<StoredFile>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, content_type, size, data IS NOT NULL AS kept FROM attachments \
         WHERE interaction_id = $1 ORDER BY created_at, id",
    )
    .bind(interaction_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredFile {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                content_type: r.try_get("content_type")?,
                size: r.try_get("size")?,
                kept: r
                    .try_get::<bool, _>("kept")
                    .or_else(|_| r.try_get::<i64, _>("kept").map(|v| v != 0))?,
            })
        })
        .collect()
}

/// One file's name, type and content (`None`: not kept).
pub async fn file(
    conn: &mut Conn,
    interaction_id: &str,
    id: &str,
) -> Result<Option<(String, String, Option<Vec<u8>>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, content_type, data FROM attachments WHERE interaction_id = $1 AND id = $2",
    )
    .bind(interaction_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("name")?,
            r.try_get("content_type")?,
            r.try_get("data")?,
        ))
    })
    .transpose()
}

/// A channel's cursor.
pub async fn cursor(
    conn: &mut Conn,
    channel: &str,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM channel_cursors WHERE channel = $1 AND name = $2")
        .bind(channel)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
}

/// Saves a channel's cursor.
pub async fn set_cursor(
    conn: &mut Conn,
    channel: &str,
    name: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO channel_cursors (channel, name, value) VALUES ($1, $2, $3) \
         ON CONFLICT (channel, name) DO UPDATE SET value = excluded.value",
    )
    .bind(channel)
    .bind(name)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
