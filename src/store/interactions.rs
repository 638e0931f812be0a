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
    /// The agent offered or holding it.
    pub agent_id: Option<String>,
    /// How it ended, as the agent said.
    pub disposition: Option<String>,
    /// The agent's notes.
    pub notes: Option<String>,
    /// The agent to offer it to first.
    pub preferred_agent_id: Option<String>,
    /// When it is first routed, when it arrived while its calendar was closed (ms).
    pub opens_at: Option<i64>,
    /// The complaint it belongs to.
    pub complaint_id: Option<String>,
}

/// The columns written when an interaction is accepted.
const INSERT_COLUMNS: &str =
    "id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, tier_reason, \
                              topic, subject, body, state, created_at, updated_at, preferred_agent_id, opens_at, complaint_id";
/// Every column read.
const COLUMNS: &str = "id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, tier_reason, \
                       topic, subject, body, state, created_at, updated_at, agent_id, disposition, notes, preferred_agent_id, opens_at, complaint_id";

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
        agent_id: row.try_get("agent_id")?,
        disposition: row.try_get("disposition")?,
        notes: row.try_get("notes")?,
        preferred_agent_id: row.try_get("preferred_agent_id")?,
        opens_at: row.try_get("opens_at")?,
        complaint_id: row.try_get("complaint_id")?,
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
                Arg::from(i.preferred_agent_id.clone()),
                Arg::from(i.opens_at),
                Arg::from(i.complaint_id.clone()),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        &format!("INSERT INTO interactions ({INSERT_COLUMNS})"),
        17,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// Every interaction created under any of `keys` (on any channel).
pub async fn by_keys(conn: &mut Conn, keys: &[&str]) -> Result<Vec<InteractionRow>, sqlx::Error> {
    bulk::fetch_in(conn, &[], keys, |list| {
        format!("SELECT {COLUMNS} FROM interactions WHERE idempotency_key IN ({list})")
    })
    .await?
    .iter()
    .map(row_to_interaction)
    .collect()
}

/// The interaction a channel created under `key`.
pub async fn by_key(
    conn: &mut Conn,
    channel: &str,
    key: &str,
) -> Result<Option<InteractionRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM interactions WHERE idempotency_key = $1 AND channel = $2"
    ))
    .bind(key)
    .bind(channel)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(row_to_interaction).transpose()
}

/// Puts an ended interaction back in the queue, to be offered first to `preferred`.
/// False when it had not ended.
pub async fn reopen(
    conn: &mut Conn,
    id: &str,
    preferred: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE interactions SET state = 'queued', agent_id = NULL, preferred_agent_id = $2, \
         updated_at = $3 WHERE id = $1 AND state IN ('completed', 'abandoned')",
    )
    .bind(id)
    .bind(preferred)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A contact that waited for the customer's first message (state `opened`) is queued:
/// it arrives now with `text` as its content, its wait counting from `now`. False when
/// it was not waiting for one.
pub async fn first_message(
    conn: &mut Conn,
    id: &str,
    text: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE interactions SET state = 'queued', created_at = $2, updated_at = $2, body = $3 \
         WHERE id = $1 AND state = 'opened'",
    )
    .bind(id)
    .bind(now)
    .bind(text)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A contact queued at its first message joins a complaint (`complaint_id`), its owner
/// (or the owner's substitute) offered it first.
pub async fn join_complaint(
    conn: &mut Conn,
    id: &str,
    complaint_id: &str,
    preferred: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE interactions SET complaint_id = $2, preferred_agent_id = COALESCE($3, preferred_agent_id) \
         WHERE id = $1",
    )
    .bind(id)
    .bind(complaint_id)
    .bind(preferred)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One interaction by id.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<InteractionRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM interactions WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(row_to_interaction).transpose()
}

/// The interactions of `ids` that exist, in no order: one statement per 400.
pub async fn get_many(conn: &mut Conn, ids: &[String]) -> Result<Vec<InteractionRow>, sqlx::Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(400) {
        let sql = format!(
            "SELECT {COLUMNS} FROM interactions WHERE id IN ({})",
            bulk::list(1, chunk.len())
        );
        let args = chunk.iter().map(|id| Arg::from(id.as_str())).collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(row_to_interaction(&row)?);
        }
    }
    Ok(out)
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

/// Moves an interaction from one of `from` to `to`, held by `agent` (or no one); false
/// when it was not in one of `from` (someone else moved it first).
pub async fn transition(
    conn: &mut Conn,
    id: &str,
    from: &[&str],
    to: &str,
    agent: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE interactions SET state = $2, agent_id = $3, updated_at = $4 WHERE id = $1 AND state IN ({})",
        bulk::list(5, from.len())
    );
    let mut q = sqlx::query(&sql).bind(id).bind(to).bind(agent).bind(now);
    for f in from {
        q = q.bind(*f);
    }
    Ok(q.execute(conn).await?.rows_affected() == 1)
}

/// One move of [`transition_many`]: the interaction, its new state, who holds it then.
pub struct Move<'a> {
    /// The interaction.
    pub id: &'a str,
    /// Its new state.
    pub to: &'a str,
    /// Who holds it then (none: nobody).
    pub agent: Option<&'a str>,
}

/// [`transition`] for many interactions at once, each from one of `from`: one statement
/// per 300 (the ids must differ). Answers the ids moved; the others were not in one of
/// `from`.
pub async fn transition_many(
    conn: &mut Conn,
    moves: &[Move<'_>],
    from: &[&str],
    now: i64,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut moved = std::collections::HashSet::with_capacity(moves.len());
    for chunk in moves.chunks(300) {
        let n = chunk.len() * 3;
        let sql = format!(
            "UPDATE interactions SET state = v.column2, agent_id = v.column3, updated_at = ${} \
             FROM (VALUES {}) AS v WHERE interactions.id = v.column1 AND interactions.state IN ({}) \
             RETURNING interactions.id",
            n + 1,
            bulk::placeholders(chunk.len(), 3),
            bulk::list(n + 2, from.len())
        );
        let args = chunk
            .iter()
            .flat_map(|m| {
                [
                    Arg::from(m.id),
                    Arg::from(m.to),
                    Arg::from(m.agent.map(str::to_string)),
                ]
            })
            .chain(std::iter::once(Arg::from(now)))
            .chain(from.iter().map(|f| Arg::from(*f)))
            .collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            moved.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(moved)
}

/// One completion: the interaction, the agent who holds it, and what they recorded.
pub struct Completion<'a> {
    /// The interaction.
    pub id: &'a str,
    /// The agent who must hold it.
    pub agent: &'a str,
    /// Its disposition.
    pub disposition: &'a str,
    /// The agent's notes.
    pub notes: Option<&'a str>,
}

/// Completes interactions their agents hold, a statement per 300; answers those
/// completed (one its agent no longer holds is left as it is).
pub async fn complete_many(
    conn: &mut Conn,
    completions: &[Completion<'_>],
    now: i64,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut done = std::collections::HashSet::with_capacity(completions.len());
    for chunk in completions.chunks(300) {
        let n = chunk.len() * 4;
        let sql = format!(
            "UPDATE interactions SET state = 'completed', disposition = v.column3, notes = v.column4, \
             updated_at = ${} FROM (VALUES {}) AS v \
             WHERE interactions.id = v.column1 AND interactions.agent_id = v.column2 \
             AND interactions.state = 'assigned' RETURNING interactions.id",
            n + 1,
            bulk::placeholders(chunk.len(), 4),
        );
        let args = chunk
            .iter()
            .flat_map(|c| {
                [
                    Arg::from(c.id),
                    Arg::from(c.agent),
                    Arg::from(c.disposition),
                    Arg::from(c.notes.map(str::to_string)),
                ]
            })
            .chain(std::iter::once(Arg::from(now)))
            .collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            done.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(done)
}

/// The interactions an agent holds, oldest first.
pub async fn assigned_to(conn: &mut Conn, agent: &str) -> Result<Vec<InteractionRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM interactions WHERE agent_id = $1 AND state = 'assigned' ORDER BY created_at, id"
    ))
    .bind(agent)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_interaction).collect()
}

/// Offers die with the server: at start-up, every interaction still `offered` waits again.
pub async fn requeue_offered(conn: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("UPDATE interactions SET state = 'queued', agent_id = NULL, updated_at = $1 WHERE state = 'offered'")
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected())
}
