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

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::redact::{self, Purpose};
use super::{Backend, Conn};

/// Rows of the history redacted per read.
const PAGE: i64 = 500;

/// A customer as erasure sees it: the record its id answers as (following merges), every
/// record merged into that one, and when it was erased, if it was.
#[derive(Debug, Clone)]
pub struct Target {
    /// The surviving record's id.
    pub customer_id: String,
    /// It and every record merged into it.
    pub ids: Vec<String>,
    /// When it was erased (ms), if it was.
    pub erased_at: Option<i64>,
}

/// The customer `id` answers as, with the records merged into it; `None` when unknown.
pub async fn target(conn: &mut Conn, id: &str) -> Result<Option<Target>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, erased_at FROM customers \
         WHERE id = COALESCE((SELECT merged_into FROM customers WHERE id = $1), $1) AND merged_into IS NULL",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let customer_id: String = row.try_get("id")?;
    let merged: Vec<String> =
        sqlx::query_scalar("SELECT id FROM customers WHERE merged_into = $1 ORDER BY id")
            .bind(customer_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
    let mut ids = vec![customer_id.clone()];
    ids.extend(merged);
    Ok(Some(Target {
        customer_id,
        ids,
        erased_at: row.try_get("erased_at")?,
    }))
}

/// A contact of the customer still in progress (queued, offered or assigned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Open {
    /// The interaction.
    pub interaction_id: String,
    /// Its channel.
    pub channel: String,
    /// Its state.
    pub state: String,
    /// The agent offered or holding it.
    pub agent_id: Option<String>,
}

/// The customer's contacts in progress, oldest first.
pub async fn open_contacts(conn: &mut Conn, ids: &[String]) -> Result<Vec<Open>, sqlx::Error> {
    let sql = format!(
        "SELECT id, channel, state, agent_id FROM interactions WHERE customer_id IN ({}) \
         AND state IN ('queued', 'offered', 'assigned') ORDER BY created_at, id",
        bulk::list(1, ids.len())
    );
    let rows = bulk::bind_all(sqlx::query(&sql), args(ids))
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Open {
                interaction_id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                state: r.try_get("state")?,
                agent_id: r.try_get("agent_id")?,
            })
        })
        .collect()
}

/// What names the customer outside their own records, found before the writer's turn is
/// taken (these reads may cover whole tables): events of other customers' histories that
/// name them, channel events kept without a contact that carry their address or number,
/// and mail kept aside from or about them.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    /// History events (by seq) of other customers naming them.
    pub history: Vec<i64>,
    /// Channel events without a contact, as (channel, event key).
    pub channel_events: Vec<(String, String)>,
    /// Mail kept aside (by id).
    pub kept_aside: Vec<String>,
}

/// What text names the customer: their ids as written, and their addresses and numbers in
/// any case. CRM ids and chat visitor ids are not looked for: a short CRM id ("42") would
/// match unrelated text.
struct Names {
    ids: Vec<String>,
    identities: Vec<String>,
}

impl Names {
    async fn of(conn: &mut Conn, target: &Target) -> Result<Names, sqlx::Error> {
        let sql = format!(
            "SELECT value FROM customer_identities WHERE customer_id IN ({}) AND kind IN ('email', 'phone')",
            bulk::list(1, target.ids.len())
        );
        let identities = bulk::bind_all(sqlx::query(&sql), args(&target.ids))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0).map(|v| v.to_lowercase()))
            .collect::<Result<_, _>>()?;
        Ok(Names {
            ids: target.ids.clone(),
            identities,
        })
    }

    fn in_text(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.ids.iter().any(|id| text.contains(id.as_str()))
            || self.identities.iter().any(|v| lower.contains(v.as_str()))
    }
}

/// Looks for what names the customer elsewhere: see [`Elsewhere`].
pub async fn elsewhere(conn: &mut Conn, target: &Target) -> Result<Elsewhere, sqlx::Error> {
    let names = Names::of(conn, target).await?;
    let mut found = Elsewhere::default();
    let rows = sqlx::query(
        "SELECT seq, customer_id, data FROM history WHERE kind IN ('possible_duplicate', 'email_claimed')",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let customer: String = r.try_get("customer_id")?;
        let data: String = r.try_get("data")?;
        if !target.ids.contains(&customer) && names.in_text(&data) {
            found.history.push(r.try_get("seq")?);
        }
    }
    let rows = sqlx::query(
        "SELECT channel, event_key, contact_key, data FROM channel_events WHERE interaction_id IS NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let data: String = r.try_get("data")?;
        let contact: String = r.try_get("contact_key")?;
        if names.in_text(&data) || names.in_text(&contact) {
            found
                .channel_events
                .push((r.try_get("channel")?, r.try_get("event_key")?));
        }
    }
    found.kept_aside = kept_aside_naming(conn, &names).await?;
    Ok(found)
}

/// Mail kept aside from the customer or naming their address or number (by id): what an
/// export shows and an erasure removes.
pub async fn kept_aside_about(
    conn: &mut Conn,
    target: &Target,
) -> Result<Vec<String>, sqlx::Error> {
    let names = Names::of(conn, target).await?;
    kept_aside_naming(conn, &names).await
}

async fn kept_aside_naming(conn: &mut Conn, names: &Names) -> Result<Vec<String>, sqlx::Error> {
    let mut found = Vec::new();
    // Read one message at a time: its bytes may be large.
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM kept_aside ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    for id in ids {
        let row = sqlx::query("SELECT sender, subject, preview, raw FROM kept_aside WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(r) = row else { continue };
        let text = |col: &str| -> Result<String, sqlx::Error> {
            Ok(r.try_get::<Option<String>, _>(col)?.unwrap_or_default())
        };
        let raw: Option<Vec<u8>> = r.try_get("raw")?;
        let raw = raw.map(|b| String::from_utf8_lossy(&b).into_owned());
        if names.in_text(&text("sender")?)
            || names.in_text(&text("subject")?)
            || names.in_text(&text("preview")?)
            || raw.as_deref().is_some_and(|r| names.in_text(r))
        {
            found.push(id);
        }
    }
    Ok(found)
}

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
