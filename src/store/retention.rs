//! Retention in the store: what customers and agents wrote, older than a channel's
//! period, removed from contacts that have ended — subjects, bodies and notes, the
//! history's texts, files, chat messages and replies, recordings' links, channels' copies
//! of messages, sent commands, survey comments, mail kept aside — while each contact's
//! metadata (channel, tier, times, states, agents, scores) stays for reports.
//!
//! Each channel keeps a cursor: content older than `done_before` has been removed, but
//! from contacts then in progress, which wait in `retention_deferred` until they end. A
//! run reads the history from the cursor to the new cutoff (by time, through its index)
//! to find the contacts with content in that window; everything of such a contact older
//! than the cutoff goes (see [`remove`]). Every step is idempotent: a run cut short is
//! simply run again. The history is redacted under the guard of [`super::redact`].

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::redact;
use super::Conn;

/// What retention removed, counted (never what it was).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Interactions whose subject, body or notes were removed.
    pub bodies: u64,
    /// History events whose content was removed.
    pub history_events: u64,
    /// Files removed.
    pub attachments: u64,
    /// Channels' copies of messages whose content was removed.
    pub channel_events: u64,
    /// Commands of the outbox (sent or given up) removed.
    pub commands: u64,
    /// Survey comments removed.
    pub survey_comments: u64,
    /// Mail kept aside removed.
    pub mail_kept_aside: u64,
}

impl Removed {
    /// Everything removed, in sum.
    pub fn total(&self) -> u64 {
        self.bodies
            + self.history_events
            + self.attachments
            + self.channel_events
            + self.commands
            + self.survey_comments
            + self.mail_kept_aside
    }

    /// Adds `other` to this.
    pub fn add(&mut self, other: &Removed) {
        self.bodies += other.bodies;
        self.history_events += other.history_events;
        self.attachments += other.attachments;
        self.channel_events += other.channel_events;
        self.commands += other.commands;
        self.survey_comments += other.survey_comments;
        self.mail_kept_aside += other.mail_kept_aside;
    }

    /// Each count with its name, for metrics.
    pub fn each(&self) -> [(&'static str, u64); 7] {
        [
            ("bodies", self.bodies),
            ("history_events", self.history_events),
            ("attachments", self.attachments),
            ("channel_events", self.channel_events),
            ("commands", self.commands),
            ("survey_comments", self.survey_comments),
            ("mail_kept_aside", self.mail_kept_aside),
        ]
    }
}

/// A channel's retention so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The channel.
    pub channel: String,
    /// Content older than this (ms) has been removed, but from contacts deferred.
    pub done_before: i64,
    /// When it last ran (ms).
    pub last_run_at: i64,
    /// What its last run removed, in sum.
    pub last_removed: i64,
    /// Contacts in progress whose old content waits for their end.
    pub deferred: i64,
}

/// Every channel's retention so far.
pub async fn states(conn: &mut Conn) -> Result<Vec<State>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.channel, s.done_before, s.last_run_at, s.last_removed, \
         (SELECT COUNT(*) FROM retention_deferred d WHERE d.channel = s.channel) AS deferred \
         FROM retention_state s ORDER BY s.channel",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(State {
                channel: r.try_get("channel")?,
                done_before: r.try_get("done_before")?,
                last_run_at: r.try_get("last_run_at")?,
                last_removed: r.try_get("last_removed")?,
                deferred: r.try_get("deferred")?,
            })
        })
        .collect()
}

/// Where a channel's cursor stands (0: nothing removed yet).
pub async fn done_before(conn: &mut Conn, channel: &str) -> Result<i64, sqlx::Error> {
    Ok(
        sqlx::query_scalar("SELECT done_before FROM retention_state WHERE channel = $1")
            .bind(channel)
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}

/// Moves a channel's cursor to `done_before` (never back) and records a run.
pub async fn advance(
    conn: &mut Conn,
    channel: &str,
    done_before: i64,
    now: i64,
    removed: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO retention_state (channel, done_before, last_run_at, last_removed) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel) DO UPDATE SET \
         done_before = CASE WHEN retention_state.done_before > excluded.done_before \
                            THEN retention_state.done_before ELSE excluded.done_before END, \
         last_run_at = excluded.last_run_at, last_removed = excluded.last_removed",
    )
    .bind(channel)
    .bind(done_before)
    .bind(now)
    .bind(removed as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of the history's events about interactions in `[from, to)`, after `after`
/// (`(occurred_at, seq)` of the last of the previous page), oldest first:
/// `(occurred_at, seq, interaction_id)`.
pub async fn window(
    conn: &mut Conn,
    from: i64,
    to: i64,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT occurred_at, seq, interaction_id FROM history \
         WHERE occurred_at >= $1 AND occurred_at < $2 \
         AND (occurred_at > $3 OR (occurred_at = $3 AND seq > $4)) AND interaction_id IS NOT NULL \
         ORDER BY occurred_at, seq LIMIT $5",
    )
    .bind(from)
    .bind(to)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Which of `ids` are interactions of `channel`, with whether each is in progress.
pub async fn of_channel(
    conn: &mut Conn,
    channel: &str,
    ids: &[String],
) -> Result<Vec<(String, bool)>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in ids.chunks(400) {
        let sql = format!(
            "SELECT id, state FROM interactions WHERE channel = $1 AND id IN ({})",
            bulk::list(2, chunk.len())
        );
        let args = std::iter::once(Arg::from(channel))
            .chain(chunk.iter().map(|i| Arg::from(i.as_str())))
            .collect();
        for r in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            let state: String = r.try_get("state")?;
            out.push((
                r.try_get("id")?,
                matches!(state.as_str(), "opened" | "queued" | "offered" | "assigned"),
            ));
        }
    }
    Ok(out)
}

/// Contacts of `channel` deferred while in progress that have ended since, at most `limit`.
pub async fn deferred_ended(
    conn: &mut Conn,
    channel: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT d.interaction_id FROM retention_deferred d JOIN interactions i ON i.id = d.interaction_id \
         WHERE d.channel = $1 AND i.state NOT IN ('opened', 'queued', 'offered', 'assigned') \
         ORDER BY d.interaction_id LIMIT $2",
    )
    .bind(channel)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Notes a contact in progress whose content older than `before` waits for its end.
pub async fn defer(
    conn: &mut Conn,
    interaction_id: &str,
    channel: &str,
    before: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO retention_deferred (interaction_id, channel, before) VALUES ($1, $2, $3) \
         ON CONFLICT (interaction_id) DO UPDATE SET before = excluded.before",
    )
    .bind(interaction_id)
    .bind(channel)
    .bind(before)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes everything of one ended contact older than `cutoff` (ms), in the caller's
/// transaction, which has opened a redaction for retention ([`redact::allow`]).
pub async fn remove(
    conn: &mut Conn,
    interaction_id: &str,
    cutoff: i64,
) -> Result<Removed, sqlx::Error> {
    let mut removed = Removed::default();
    // Out of the search index first, while the words it was built from are still there.
    crate::store::search::forget(conn, interaction_id, Some(cutoff)).await?;
    let exec = |sql: &'static str| sqlx::query(sql).bind(interaction_id).bind(cutoff);
    // Subject and body came with the contact; notes with its completion.
    removed.bodies = exec(
        "UPDATE interactions SET \
         subject = CASE WHEN created_at < $2 THEN NULL ELSE subject END, \
         body = CASE WHEN created_at < $2 THEN NULL ELSE body END, \
         notes = CASE WHEN updated_at < $2 THEN NULL ELSE notes END \
         WHERE id = $1 AND ((created_at < $2 AND (subject IS NOT NULL OR body IS NOT NULL)) \
                            OR (updated_at < $2 AND notes IS NOT NULL))",
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let events = sqlx::query(
        "SELECT seq, data FROM history WHERE interaction_id = $1 AND occurred_at < $2 ORDER BY seq",
    )
    .bind(interaction_id)
    .bind(cutoff)
    .fetch_all(&mut *conn)
    .await?;
    for r in events {
        let (seq, data): (i64, String) = (r.try_get("seq")?, r.try_get("data")?);
        if let Some(kept) = redacted(&data) {
            // Only as read: an erasure that redacted it meanwhile left nothing to take.
            removed.history_events +=
                sqlx::query("UPDATE history SET data = $1 WHERE seq = $2 AND data = $3")
                    .bind(kept)
                    .bind(seq)
                    .bind(data)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
        }
    }
    let copies = sqlx::query(
        "SELECT channel, event_key, data FROM channel_events WHERE interaction_id = $1 AND at < $2",
    )
    .bind(interaction_id)
    .bind(cutoff)
    .fetch_all(&mut *conn)
    .await?;
    for r in copies {
        let (channel, key, data): (String, String, String) = (
            r.try_get("channel")?,
            r.try_get("event_key")?,
            r.try_get("data")?,
        );
        if let Some(kept) = redacted(&data) {
            removed.channel_events += sqlx::query(
                "UPDATE channel_events SET data = $1 WHERE channel = $2 AND event_key = $3 AND data = $4",
            )
            .bind(kept)
            .bind(channel)
            .bind(key)
            .bind(data)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
    }
    removed.attachments =
        exec("DELETE FROM attachments WHERE interaction_id = $1 AND created_at < $2")
            .execute(&mut *conn)
            .await?
            .rows_affected();
    // Commands still to be delivered stay: only those sent or given up go.
    removed.commands = exec(
        "DELETE FROM outbox WHERE interaction_id = $1 AND created_at < $2 \
         AND (delivered_at IS NOT NULL OR next_at IS NULL)",
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    removed.survey_comments = exec(
        "UPDATE satisfaction SET comment = NULL WHERE interaction_id = $1 AND answered_at < $2 AND comment IS NOT NULL",
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM retention_deferred WHERE interaction_id = $1")
        .bind(interaction_id)
        .execute(&mut *conn)
        .await?;
    Ok(removed)
}

/// Removes mail a channel kept aside that came before `cutoff` (ms); answers how many.
pub async fn remove_kept_aside(
    conn: &mut Conn,
    channel: &str,
    cutoff: i64,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM kept_aside WHERE channel = $1 AND received_at < $2")
            .bind(channel)
            .bind(cutoff)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Event data (JSON text) without its content, when it has any.
fn redacted(data: &str) -> Option<String> {
    let value: Value = serde_json::from_str(data).ok()?;
    redact::for_retention(&value).map(|v| v.to_string())
}
