//! Erasing a customer in the store: everything that could name them goes, everywhere it
//! is kept — their identities, name and value data, what they and the agents wrote
//! (subjects, bodies, notes, chat and mail in the history, files), the channels' records
//! of their contacts (events, fingerprints, idempotency keys, commands with their
//! numbers and replies), mail kept aside from or about them, their comments in surveys,
//! and the audit trail's records of their data. What stays is anonymous: the customer's
//! id with when it was erased, and each interaction's channel, tier, times, states and
//! agents, so every count and report is unchanged.
//!
//! The history and the audit trail are redacted under the guard of [`super::redact`];
//! every other table is updated or deleted from. The caller holds the writer's turn and
//! commits (see `api::erase`).
//!
//! # Layout
//! - [`find`]: the customer and their merged records, their contacts in progress, and
//!   what names them elsewhere — read before the writer's turn is taken;
//! - this file: the erasure itself, and what it removed, counted.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::redact::{self, Purpose};
use super::{Backend, Conn};

mod find;
pub use find::{elsewhere, kept_aside_about, open_contacts, target, Elsewhere, Open, Target};

/// Rows of the history redacted per read.
const PAGE: i64 = 500;

/// What an erasure removed, counted (never what it was).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// The customer's interactions (kept, anonymous).
    pub interactions: u64,
    /// Identities removed.
    pub identities: u64,
    /// Purchases removed.
    pub purchases: u64,
    /// History events redacted (the customer's, and others' that named them).
    pub history_events: u64,
    /// Audit entries whose records were redacted.
    pub audit_entries: u64,
    /// Files removed.
    pub attachments: u64,
    /// Channel events removed.
    pub channel_events: u64,
    /// Commands of the outbox removed (replies not yet sent among them).
    pub commands: u64,
    /// Mail kept aside removed.
    pub mail_kept_aside: u64,
    /// Survey comments removed.
    pub survey_comments: u64,
    /// Callback numbers removed.
    pub callback_numbers: u64,
}

/// Erases `target` in the caller's transaction (which holds the writer's turn): see the
/// module's documentation. `elsewhere` is what [`elsewhere`] found.
pub async fn erase(
    conn: &mut Conn,
    backend: Backend,
    target: &Target,
    elsewhere: &Elsewhere,
    now: i64,
) -> Result<Removed, sqlx::Error> {
    let mut removed = Removed::default();
    let ids = &target.ids;
    let customers = bulk::list(1, ids.len());

    // Their interactions, with the keys channels know them by (before those go).
    let rows = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT id, channel, idempotency_key FROM interactions WHERE customer_id IN ({customers})"
        )),
        args(ids),
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut interactions = Vec::with_capacity(rows.len());
    let mut contact_keys = Vec::with_capacity(rows.len());
    for r in &rows {
        interactions.push(r.try_get::<String, _>("id")?);
        contact_keys.push((
            r.try_get::<String, _>("channel")?,
            r.try_get::<String, _>("idempotency_key")?,
        ));
    }
    removed.interactions = interactions.len() as u64;
    // Out of the search index first, while the words it was built from are still there.
    for id in &interactions {
        crate::store::search::forget(conn, id, None).await?;
    }

    redact::allow(conn, backend, Purpose::Erasure).await?;
    removed.history_events = redact_history(conn, ids, &elsewhere.history).await?;
    removed.audit_entries = bulk::bind_all(
        sqlx::query(&format!(
            "UPDATE audit SET \
             before = CASE WHEN before IS NULL THEN NULL ELSE ${m} END, \
             after = CASE WHEN after IS NULL THEN NULL ELSE ${m} END \
             WHERE target_kind = 'customer' AND target_id IN ({customers}) \
             AND ((before IS NOT NULL AND before <> ${m}) OR (after IS NOT NULL AND after <> ${m}))",
            m = ids.len() + 1
        )),
        args(ids)
            .into_iter()
            .chain([Arg::from(redact::AUDIT_MARKER)])
            .collect(),
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    redact::close(conn, backend, Purpose::Erasure).await?;

    // The interactions stay for the counts, without a word of what was said, and under
    // keys that name nothing (a channel delivering the same message again makes a new
    // contact: the one it would have matched is gone).
    bulk::bind_all(
        sqlx::query(&format!(
            "UPDATE interactions SET subject = NULL, body = NULL, notes = NULL, \
             tier_reason = 'erased', request_hash = '', idempotency_key = 'erased:' || id \
             WHERE customer_id IN ({customers})"
        )),
        args(ids),
    )
    .execute(&mut *conn)
    .await?;
    for chunk in interactions.chunks(400) {
        let list = bulk::list(1, chunk.len());
        let of = |sql: &str| sql.replace("{list}", &list);
        removed.attachments += run(
            conn,
            &of("DELETE FROM attachments WHERE interaction_id IN ({list})"),
            chunk,
        )
        .await?;
        removed.channel_events += run(
            conn,
            &of("DELETE FROM channel_events WHERE interaction_id IN ({list})"),
            chunk,
        )
        .await?;
        removed.commands += run(
            conn,
            &of("DELETE FROM outbox WHERE interaction_id IN ({list})"),
            chunk,
        )
        .await?;
        removed.callback_numbers += run(conn, &of("UPDATE callbacks SET number = '' WHERE interaction_id IN ({list}) AND number <> ''"), chunk).await?;
        removed.survey_comments += run(conn, &of("UPDATE satisfaction SET comment = NULL WHERE interaction_id IN ({list}) AND comment IS NOT NULL"), chunk).await?;
        removed.mail_kept_aside += run(
            conn,
            &of("DELETE FROM kept_aside WHERE interaction_id IN ({list})"),
            chunk,
        )
        .await?;
        run(
            conn,
            &of("DELETE FROM retention_deferred WHERE interaction_id IN ({list})"),
            chunk,
        )
        .await?;
    }
    // Commands a node of an earlier version stored (during a rolling upgrade) name their
    // interaction only in their payload.
    for id in &interactions {
        removed.commands +=
            sqlx::query("DELETE FROM outbox WHERE interaction_id IS NULL AND payload LIKE $1")
                .bind(format!("%\"interaction_id\":\"{id}\"%"))
                .execute(&mut *conn)
                .await?
                .rows_affected();
    }
    // Events a channel recorded under a contact's key before it had an interaction.
    for (channel, key) in &contact_keys {
        removed.channel_events +=
            sqlx::query("DELETE FROM channel_events WHERE channel = $1 AND contact_key = $2")
                .bind(channel.as_str())
                .bind(key.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected();
    }
    for (channel, key) in &elsewhere.channel_events {
        removed.channel_events +=
            sqlx::query("DELETE FROM channel_events WHERE channel = $1 AND event_key = $2")
                .bind(channel.as_str())
                .bind(key.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected();
    }
    for id in &elsewhere.kept_aside {
        removed.mail_kept_aside += sqlx::query("DELETE FROM kept_aside WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    removed.survey_comments += run(
        conn,
        &format!("UPDATE satisfaction SET comment = NULL WHERE customer_id IN ({customers}) AND comment IS NOT NULL"),
        ids,
    )
    .await?;
    removed.purchases = run(
        conn,
        &format!("DELETE FROM purchases WHERE customer_id IN ({customers})"),
        ids,
    )
    .await?;
    removed.identities = run(
        conn,
        &format!("DELETE FROM customer_identities WHERE customer_id IN ({customers})"),
        ids,
    )
    .await?;
    bulk::bind_all(
        sqlx::query(&format!(
            "UPDATE customers SET name = NULL, explicit_tier = NULL, lifetime_value_cents = NULL, \
             owner_agent_id = NULL, erased_at = ${n}, updated_at = ${n} WHERE id IN ({customers})",
            n = ids.len() + 1
        )),
        args(ids).into_iter().chain([Arg::from(now)]).collect(),
    )
    .execute(&mut *conn)
    .await?;
    // SQLite's full-text indexes keep a deleted term in their older segments until they
    // are merged: merged now, so no part of the customer's words stays in the file.
    crate::store::search::compact(conn).await?;
    Ok(removed)
}

/// Redacts the history of the customer's records (`ids`), and the events of other
/// histories that named them (`others`, by seq); answers how many events changed.
async fn redact_history(
    conn: &mut Conn,
    ids: &[String],
    others: &[i64],
) -> Result<u64, sqlx::Error> {
    let mut changed = 0;
    let mut after = 0i64;
    let sql = format!(
        "SELECT seq, data FROM history WHERE customer_id IN ({}) AND seq > ${} ORDER BY seq LIMIT ${}",
        bulk::list(1, ids.len()),
        ids.len() + 1,
        ids.len() + 2
    );
    loop {
        let rows = bulk::bind_all(
            sqlx::query(&sql),
            args(ids)
                .into_iter()
                .chain([Arg::from(after), Arg::from(PAGE)])
                .collect(),
        )
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("seq")?;
        let page: Vec<(i64, String)> = rows
            .iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("data")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (seq, data) in page {
            changed += redact_event(conn, seq, &data).await?;
        }
    }
    let mut seen = HashSet::new();
    for seq in others.iter().filter(|s| seen.insert(**s)) {
        let data: Option<String> = sqlx::query_scalar("SELECT data FROM history WHERE seq = $1")
            .bind(*seq)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(data) = data {
            changed += redact_event(conn, *seq, &data).await?;
        }
    }
    Ok(changed)
}

/// Redacts one event for erasure, when it holds anything to remove: 1 when it changed.
/// The event is written only as it was read (a retention run on another node may redact
/// it meanwhile: then it is read again).
async fn redact_event(conn: &mut Conn, seq: i64, data: &str) -> Result<u64, sqlx::Error> {
    let mut data = data.to_string();
    for _ in 0..3 {
        let value: Value = match serde_json::from_str(&data) {
            Ok(v) => v,
            // Not JSON (no event is written so): nothing the redaction may change.
            Err(_) => return Ok(0),
        };
        let Some(redacted) = redact::for_erasure(&value) else {
            return Ok(0);
        };
        let done = sqlx::query("UPDATE history SET data = $1 WHERE seq = $2 AND data = $3")
            .bind(redacted.to_string())
            .bind(seq)
            .bind(data.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if done == 1 {
            return Ok(1);
        }
        match sqlx::query_scalar::<_, String>("SELECT data FROM history WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await?
        {
            Some(now) => data = now,
            None => return Ok(0),
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "history event {seq} kept changing while it was erased"
    )))
}

/// Runs `sql`, whose placeholders `$1…` take `values`; answers the rows it changed.
async fn run(conn: &mut Conn, sql: &str, values: &[String]) -> Result<u64, sqlx::Error> {
    Ok(bulk::bind_all(sqlx::query(sql), args(values))
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

fn args(values: &[String]) -> Vec<Arg> {
    values.iter().map(|v| Arg::from(v.as_str())).collect()
}
