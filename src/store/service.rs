//! Service commitments in the store: each contact's deadlines, complaints and their
//! owners. The deadlines follow the history: [`on_events`] is called with every event
//! appended, in the same transaction, and moves the targets the events answer (an agent's
//! reply meets a first response, a customer's message starts a next response, a
//! completion meets what is left). What needs a calendar (when a resumed or new target
//! is due) is left for the leader's deadline watch ([`crate::service::watch`]), which
//! works it out, warns and escalates.

use std::collections::HashMap;

use sqlx::Row;
use switchboard_contract::ChannelKind;

use super::bulk::{self, Arg};
use super::Conn;
use crate::service::{Deadline, Service};

/// A complaint not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenComplaint {
    /// Its id.
    pub id: String,
    /// Its owner, once named.
    pub owner_agent_id: Option<String>,
    /// When it must be resolved (ms).
    pub due_at: i64,
}

/// The open complaint of each of `customers`, if any (the oldest, when several).
pub async fn open_complaints(
    conn: &mut Conn,
    customers: &[String],
) -> Result<HashMap<String, OpenComplaint>, sqlx::Error> {
    let rows = bulk::fetch_in(conn, &[], customers, |list| {
        format!(
            "SELECT customer_id, id, owner_agent_id, due_at FROM complaints \
             WHERE customer_id IN ({list}) AND state <> 'resolved' ORDER BY opened_at DESC"
        )
    })
    .await?;
    let mut open = HashMap::new();
    for row in rows {
        // Oldest last: it is the one kept.
        open.insert(
            row.try_get::<String, _>(0)?,
            OpenComplaint {
                id: row.try_get(1)?,
                owner_agent_id: row.try_get(2)?,
                due_at: row.try_get(3)?,
            },
        );
    }
    Ok(open)
}

/// Opens a complaint for `customer_id` at `now`, with its deadline from `service`.
pub async fn open_complaint(
    conn: &mut Conn,
    service: &Service,
    customer_id: &str,
    topic: &str,
    now: i64,
) -> Result<OpenComplaint, sqlx::Error> {
    let c = &service.rules().complaints;
    let d = service.deadline(
        "complaint",
        c.calendar.as_deref(),
        now,
        i64::from(c.resolution_hours) * 3_600_000,
        i64::from(c.warn_before_mins) * 60_000,
    );
    let id = super::new_id();
    sqlx::query(
        "INSERT INTO complaints (id, customer_id, topic, owner_agent_id, opened_at, due_at, warn_at, state, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, 'open', $4)",
    )
    .bind(&id)
    .bind(customer_id)
    .bind(topic)
    .bind(now)
    .bind(d.due_at)
    .bind(d.warn_at)
    .execute(&mut *conn)
    .await?;
    Ok(OpenComplaint {
        id,
        owner_agent_id: None,
        due_at: d.due_at,
    })
}

/// Writes new contacts' deadlines: (interaction, channel, deadline).
pub async fn insert_deadlines(
    conn: &mut Conn,
    deadlines: &[(String, ChannelKind, Deadline)],
    now: i64,
) -> Result<(), sqlx::Error> {
    if deadlines.is_empty() {
        return Ok(());
    }
    let args = deadlines
        .iter()
        .flat_map(|(id, channel, d)| {
            [
                Arg::from(id.as_str()),
                Arg::from(d.target),
                Arg::from(channel.as_str()),
                Arg::from(d.calendar.clone()),
                Arg::from(d.budget_ms),
                Arg::from(d.warn_ms),
                Arg::from(d.started_at),
                Arg::from(d.due_at),
                Arg::from(d.warn_at),
                Arg::from("pending"),
                Arg::from(now),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        "INSERT INTO interaction_deadlines (interaction_id, target, channel, calendar, budget_ms, warn_ms, started_at, due_at, warn_at, state, updated_at)",
        11,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// What an event of the history does to its contact's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// An agent answered: the first and next response are met, and the resolution waits
    /// on the customer (paused).
    Answered,
    /// An agent took it: on a channel where taking it is the answer (a call, an API
    /// contact) the first response is met; a complaint without an owner has one.
    Assigned {
        /// The agent.
        agent: String,
    },
    /// The customer wrote again: a next response begins, a paused resolution resumes.
    CustomerWrote,
    /// It was completed: what is left is met; completed as resolved by its complaint's
    /// owner, the complaint is resolved.
    Completed {
        /// The agent.
        agent: String,
        /// Its disposition was `resolved`.
        resolved: bool,
    },
    /// It ended while waiting (abandoned): what is left no longer applies.
    Ended,
}

/// What an event of `kind`, by `actor`, with `data` (read only when `data()` is called)
/// does to its contact's targets.
pub fn effect(kind: &str, actor: &str, data: impl FnOnce() -> serde_json::Value) -> Option<Effect> {
    Some(match kind {
        "assigned" => {
            let d = data();
            Effect::Assigned {
                agent: d["agent_id"].as_str().unwrap_or(actor).to_string(),
            }
        }
        "completed" => {
            let d = data();
            Effect::Completed {
                agent: d["agent_id"].as_str().unwrap_or(actor).to_string(),
                resolved: d["disposition"] == "resolved",
            }
        }
        "abandoned" | "ended_by_customer" => Effect::Ended,
        "email_sent" => Effect::Answered,
        "email_received" | "reopened" => Effect::CustomerWrote,
        "chat" => {
            let d = data();
            match (d["type"].as_str(), d["from"].as_str()) {
                (Some("message"), Some("agent")) => Effect::Answered,
                (Some("message"), Some("visitor")) => Effect::CustomerWrote,
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Marks targets met by `sql(list)` (an UPDATE of the interactions in `list` at `$1` the
/// time, returning each target and channel met), once per chunk of `ids`, and counts
/// them in `switchboard_sla_total{outcome="met"}` as they are written.
async fn met(
    conn: &mut Conn,
    ids: &[&str],
    now: i64,
    sql: impl Fn(&str) -> String,
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    for r in bulk::fetch_in(conn, &[Arg::from(now)], ids, sql).await? {
        let target: String = r.try_get("target")?;
        let channel: String = r.try_get("channel")?;
        metrics::counter!("switchboard_sla_total", "target" => target, "outcome" => "met", "channel" => channel, "tier" => "any").increment(1);
    }
    Ok(())
}

/// Runs `sql(list)` (a write of the interactions in `list`, with `$1` the time) once per
/// chunk of `ids`.
async fn write_in(
    conn: &mut Conn,
    ids: &[&str],
    now: i64,
    sql: impl Fn(&str) -> String,
) -> Result<(), sqlx::Error> {
    if !ids.is_empty() {
        bulk::fetch_in(conn, &[Arg::from(now)], ids, sql).await?;
    }
    Ok(())
}

/// Moves the targets of contacts as `effects` (interaction, effect) say, in the
/// transaction that appends the events they come from.
///
/// A turn of the router appends hundreds of events at once; each kind of effect is
/// written as one statement for all the contacts it moves, not one per contact. The
/// effects on one contact keep their order: they are taken in waves, each holding at
/// most one effect per contact, and a wave is written only after the one before it.
/// Complaints, which several contacts may share, are moved one effect at a time, in
/// order, for the few contacts that belong to one.
pub async fn apply(
    conn: &mut Conn,
    effects: &[(&str, Effect)],
    now: i64,
) -> Result<(), sqlx::Error> {
    if effects.is_empty() {
        return Ok(());
    }
    let now = super::service_time(now);
    let mut waves: Vec<Vec<&(&str, Effect)>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for e in effects {
        let wave = seen.entry(e.0).and_modify(|w| *w += 1).or_insert(0);
        if waves.len() <= *wave {
            waves.push(Vec::new());
        }
        waves[*wave].push(e);
    }
    for wave in &waves {
        let of = |pick: fn(&Effect) -> bool| -> Vec<&str> {
            wave.iter()
                .filter(|(_, e)| pick(e))
                .map(|(id, _)| *id)
                .collect()
        };
        let assigned = of(|e| matches!(e, Effect::Assigned { .. }));
        let answered = of(|e| matches!(e, Effect::Answered));
        let wrote = of(|e| matches!(e, Effect::CustomerWrote));
        let completed = of(|e| matches!(e, Effect::Completed { .. }));
        let ended = of(|e| matches!(e, Effect::Ended));
        met(conn, &assigned, now, |list| {
            format!(
                "UPDATE interaction_deadlines SET state = 'met', met_at = $1, updated_at = $1 \
                 WHERE interaction_id IN ({list}) AND target = 'first_response' \
                 AND state IN ('pending', 'warned') AND channel IN ('phone', 'api') RETURNING target, channel"
            )
        })
        .await?;
        met(conn, &answered, now, |list| {
            format!(
                "UPDATE interaction_deadlines SET state = 'met', met_at = $1, updated_at = $1 \
                 WHERE interaction_id IN ({list}) AND target IN ('first_response', 'next_response') \
                 AND state IN ('pending', 'warned') RETURNING target, channel"
            )
        })
        .await?;
        write_in(conn, &answered, now, |list| {
            format!(
                "UPDATE interaction_deadlines SET state = 'paused', paused_at = $1, updated_at = $1 \
                 WHERE interaction_id IN ({list}) AND target = 'resolution' AND state IN ('pending', 'warned')"
            )
        })
        .await?;
        // Only once the customer has had an answer: before, the first response is still
        // due.
        write_in(conn, &wrote, now, |list| {
            format!(
                "INSERT INTO interaction_deadlines (interaction_id, target, channel, started_at, state, updated_at) \
                 SELECT interaction_id, 'next_response', channel, $1, 'pending', $1 FROM interaction_deadlines \
                 WHERE interaction_id IN ({list}) AND target = 'first_response' AND state IN ('met', 'breached') \
                 ON CONFLICT (interaction_id, target) DO UPDATE SET started_at = $1, state = 'pending', \
                 budget_ms = NULL, due_at = NULL, warn_at = NULL, spent_ms = 0, met_at = NULL, breached_at = NULL, updated_at = $1 \
                 WHERE interaction_deadlines.state IN ('met', 'breached', 'cancelled')"
            )
        })
        .await?;
        // A paused resolution (or a met one, of a contact reopened) runs again: the watch
        // works out when it is due from what was spent.
        write_in(conn, &wrote, now, |list| {
            format!(
                "UPDATE interaction_deadlines SET state = 'pending', due_at = NULL, warn_at = NULL, \
                 paused_at = COALESCE(paused_at, met_at), resumed_at = $1, met_at = NULL, updated_at = $1 \
                 WHERE interaction_id IN ({list}) AND target = 'resolution' AND state IN ('paused', 'met')"
            )
        })
        .await?;
        met(conn, &completed, now, |list| {
            format!(
                "UPDATE interaction_deadlines SET state = 'met', met_at = $1, updated_at = $1 \
                 WHERE interaction_id IN ({list}) AND state IN ('pending', 'warned', 'paused') RETURNING target, channel"
            )
        })
        .await?;
        write_in(conn, &ended, now, |list| {
            format!(
                "UPDATE interaction_deadlines SET state = 'cancelled', updated_at = $1 \
                 WHERE interaction_id IN ({list}) AND state IN ('pending', 'warned', 'paused')"
            )
        })
        .await?;
    }
    complaints(conn, effects, now).await
}

/// What `effects` do to complaints, in order: the first agent who answers a complaint
/// owns it, and its owner's resolved completion resolves it. Only contacts that belong to
/// a complaint (found in one look for all) are written.
async fn complaints(
    conn: &mut Conn,
    effects: &[(&str, Effect)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let asking: Vec<&str> = effects
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Effect::Assigned { .. } | Effect::Completed { resolved: true, .. }
            )
        })
        .map(|(id, _)| *id)
        .collect();
    if asking.is_empty() {
        return Ok(());
    }
    let mut of: HashMap<String, String> = HashMap::new();
    for r in bulk::fetch_in(conn, &[], &asking, |list| {
        format!(
            "SELECT id, complaint_id FROM interactions WHERE id IN ({list}) AND complaint_id IS NOT NULL"
        )
    })
    .await?
    {
        of.insert(r.try_get(0)?, r.try_get(1)?);
    }
    for (id, effect) in effects {
        let Some(complaint) = of.get(*id) else {
            continue;
        };
        match effect {
            Effect::Assigned { agent } => {
                sqlx::query(
                    "UPDATE complaints SET owner_agent_id = $2, updated_at = $3 \
                     WHERE id = $1 AND owner_agent_id IS NULL AND state <> 'resolved'",
                )
                .bind(complaint)
                .bind(agent)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            Effect::Completed {
                agent,
                resolved: true,
            } => {
                // Its owner says it is resolved: so is the complaint.
                sqlx::query(
                    "UPDATE complaints SET state = 'resolved', resolved_at = $3, resolved_by = $2, updated_at = $3 \
                     WHERE id = $1 AND state <> 'resolved' AND owner_agent_id = $2",
                )
                .bind(complaint)
                .bind(agent)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// One target of one contact, as the deadline watch and the API read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineRow {
    /// The contact.
    pub interaction_id: String,
    /// [`target`]'s name.
    pub target: String,
    /// Its channel.
    pub channel: String,
    /// Its calendar (`None`: around the clock).
    pub calendar: Option<String>,
    /// Its length in open time, once known.
    pub budget_ms: Option<i64>,
    /// How long before it the warning comes, in open time.
    pub warn_ms: i64,
    /// When its clock (last) started.
    pub started_at: i64,
    /// Open time spent before a pause.
    pub spent_ms: i64,
    /// When it is due, once worked out.
    pub due_at: Option<i64>,
    /// When the warning comes, once worked out.
    pub warn_at: Option<i64>,
    /// `pending`, `warned`, `paused`, `met`, `breached` or `cancelled`.
    pub state: String,
    /// When it was paused.
    pub paused_at: Option<i64>,
    /// When it ran again after the pause.
    pub resumed_at: Option<i64>,
    /// When it was met.
    pub met_at: Option<i64>,
    /// When it was breached.
    pub breached_at: Option<i64>,
}

const DEADLINE_COLUMNS: &str = "interaction_id, target, channel, calendar, budget_ms, warn_ms, started_at, spent_ms, due_at, warn_at, state, paused_at, met_at, breached_at, resumed_at";

fn deadline_row(row: &sqlx::any::AnyRow) -> Result<DeadlineRow, sqlx::Error> {
    Ok(DeadlineRow {
        interaction_id: row.try_get(0)?,
        target: row.try_get(1)?,
        channel: row.try_get(2)?,
        calendar: row.try_get(3)?,
        budget_ms: row.try_get(4)?,
        warn_ms: row.try_get(5)?,
        started_at: row.try_get(6)?,
        spent_ms: row.try_get(7)?,
        due_at: row.try_get(8)?,
        warn_at: row.try_get(9)?,
        state: row.try_get(10)?,
        paused_at: row.try_get(11)?,
        met_at: row.try_get(12)?,
        breached_at: row.try_get(13)?,
        resumed_at: row.try_get(14)?,
    })
}

/// The targets of `interaction_ids`.
pub async fn deadlines_of(
    conn: &mut Conn,
    interaction_ids: &[String],
) -> Result<Vec<DeadlineRow>, sqlx::Error> {
    bulk::fetch_in(conn, &[], interaction_ids, |list| {
        format!("SELECT {DEADLINE_COLUMNS} FROM interaction_deadlines WHERE interaction_id IN ({list}) ORDER BY started_at")
    })
    .await?
    .iter()
    .map(deadline_row)
    .collect()
}

/// Targets the watch must act on at `now`: running ones whose due time is to be worked
/// out, whose warning or breach has come; at most `limit`.
pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<DeadlineRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {DEADLINE_COLUMNS} FROM interaction_deadlines \
         WHERE (state = 'pending' AND (due_at IS NULL OR warn_at <= $1 OR due_at <= $1)) \
            OR (state = 'warned' AND due_at <= $1) \
         ORDER BY due_at LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(deadline_row)
    .collect()
}

/// The earliest moment a running target needs the watch (a warning or a due time).
pub async fn next_due(conn: &mut Conn) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(CASE WHEN state = 'pending' THEN warn_at ELSE due_at END) FROM interaction_deadlines \
         WHERE state IN ('pending', 'warned')",
    )
    .fetch_one(conn)
    .await
}

/// Targets breached or warned of since `since`, newest first.
pub async fn recent_breaches(
    conn: &mut Conn,
    since: i64,
    limit: i64,
) -> Result<Vec<DeadlineRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {DEADLINE_COLUMNS} FROM interaction_deadlines \
         WHERE (state = 'breached' AND breached_at >= $1) OR (state = 'warned' AND warn_at >= $1) \
         ORDER BY COALESCE(breached_at, warn_at) DESC LIMIT $2"
    ))
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(deadline_row)
    .collect()
}

/// A complaint, with its contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintRow {
    /// Its id.
    pub id: String,
    /// Whose.
    pub customer_id: String,
    /// Its topic.
    pub topic: String,
    /// Its owner, once named.
    pub owner_agent_id: Option<String>,
    /// `open`, `warned`, `breached` or `resolved`.
    pub state: String,
    /// When it was opened.
    pub opened_at: i64,
    /// When it must be resolved.
    pub due_at: i64,
    /// When it was resolved.
    pub resolved_at: Option<i64>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Its contacts' ids, oldest first.
    pub interactions: Vec<String>,
}

const COMPLAINT_COLUMNS: &str =
    "id, customer_id, topic, owner_agent_id, state, opened_at, due_at, resolved_at, resolved_by";

fn complaint_row(r: &sqlx::any::AnyRow) -> Result<ComplaintRow, sqlx::Error> {
    Ok(ComplaintRow {
        id: r.try_get(0)?,
        customer_id: r.try_get(1)?,
        topic: r.try_get(2)?,
        owner_agent_id: r.try_get(3)?,
        state: r.try_get(4)?,
        opened_at: r.try_get(5)?,
        due_at: r.try_get(6)?,
        resolved_at: r.try_get(7)?,
        resolved_by: r.try_get(8)?,
        interactions: Vec::new(),
    })
}

async fn with_interactions(
    conn: &mut Conn,
    mut rows: Vec<ComplaintRow>,
) -> Result<Vec<ComplaintRow>, sqlx::Error> {
    let ids: Vec<String> = rows.iter().map(|c| c.id.clone()).collect();
    let found = bulk::fetch_in(conn, &[], &ids, |list| {
        format!("SELECT complaint_id, id FROM interactions WHERE complaint_id IN ({list}) ORDER BY created_at")
    })
    .await?;
    let mut by: HashMap<String, Vec<String>> = HashMap::new();
    for r in found {
        by.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
    }
    for c in &mut rows {
        c.interactions = by.remove(&c.id).unwrap_or_default();
    }
    Ok(rows)
}

/// One complaint.
pub async fn complaint(conn: &mut Conn, id: &str) -> Result<Option<ComplaintRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COMPLAINT_COLUMNS} FROM complaints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(with_interactions(conn, vec![complaint_row(&row)?])
        .await?
        .pop())
}

/// Complaints in any of `states`, by due time.
pub async fn complaints_in(
    conn: &mut Conn,
    states: &[&str],
    limit: i64,
) -> Result<Vec<ComplaintRow>, sqlx::Error> {
    let list = bulk::list(2, states.len());
    let sql = format!("SELECT {COMPLAINT_COLUMNS} FROM complaints WHERE state IN ({list}) ORDER BY due_at LIMIT $1");
    let mut q = sqlx::query(&sql).bind(limit);
    for s in states {
        q = q.bind(*s);
    }
    let rows = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(complaint_row)
        .collect::<Result<Vec<_>, _>>()?;
    with_interactions(conn, rows).await
}

/// Names a complaint's owner.
pub async fn set_complaint_owner(
    conn: &mut Conn,
    id: &str,
    agent: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE complaints SET owner_agent_id = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(agent)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Resolves a complaint.
pub async fn resolve_complaint(
    conn: &mut Conn,
    id: &str,
    by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE complaints SET state = 'resolved', resolved_at = $3, resolved_by = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(by)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Books `interaction_id` as a callback to `number`; false when it was one already.
pub async fn add_callback(
    conn: &mut Conn,
    interaction_id: &str,
    number: &str,
    source: &str,
    attempts: u32,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO callbacks (interaction_id, number, source, attempts, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'waiting', $5, $5) ON CONFLICT (interaction_id) DO NOTHING",
    )
    .bind(interaction_id)
    .bind(number)
    .bind(source)
    .bind(i64::from(attempts))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The callback `interaction_id` is, if it is one.
pub async fn callback(
    conn: &mut Conn,
    interaction_id: &str,
) -> Result<Option<switchboard_contract::CallbackTask>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT number, source, attempts, state FROM callbacks WHERE interaction_id = $1",
    )
    .bind(interaction_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(switchboard_contract::CallbackTask {
            interaction_id: interaction_id.to_string(),
            number: r.try_get(0)?,
            source: r.try_get(1)?,
            attempts: r.try_get::<i64, _>(2)?.max(0) as u32,
        })
    })
    .transpose()
}

/// Whether `interaction_id` is a callback not yet dialled (its caller hung up and is
/// called back when its turn comes).
pub async fn callback_waiting(conn: &mut Conn, interaction_id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM callbacks WHERE interaction_id = $1 AND state = 'waiting'",
    )
    .bind(interaction_id)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Records a callback's outcome: false when it had one already.
pub async fn finish_callback(
    conn: &mut Conn,
    interaction_id: &str,
    state: &str,
    result: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE callbacks SET state = $2, last_result = $3, attempts = attempts + 1, updated_at = $4 \
         WHERE interaction_id = $1 AND state IN ('waiting', 'dialling')",
    )
    .bind(interaction_id)
    .bind(state)
    .bind(result)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a callback as being dialled.
pub async fn dialling(conn: &mut Conn, interaction_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE callbacks SET state = 'dialling', updated_at = $2 WHERE interaction_id = $1 AND state = 'waiting'")
        .bind(interaction_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The tier interaction `id` was given.
pub async fn tier_of(conn: &mut Conn, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT tier FROM interactions WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The phone number of the customer of interaction `id`, if they have one.
pub async fn phone_of(conn: &mut Conn, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT ci.value FROM interactions i JOIN customers c ON c.id = i.customer_id \
         JOIN customer_identities ci ON ci.customer_id = COALESCE(c.merged_into, c.id) \
         WHERE i.id = $1 AND ci.kind = 'phone' ORDER BY ci.created_at LIMIT 1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records a score of interaction `i` (once): false when it was scored before.
pub async fn add_satisfaction(
    conn: &mut Conn,
    i: &super::interactions::InteractionRow,
    answered_by: &str,
    score: u8,
    comment: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO satisfaction (interaction_id, customer_id, answered_by, score, comment, agent_id, tier, topic, channel, answered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (interaction_id) DO NOTHING",
    )
    .bind(&i.id)
    .bind(&i.customer_id)
    .bind(answered_by)
    .bind(i64::from(score))
    .bind(comment)
    .bind(&i.agent_id)
    .bind(&i.tier)
    .bind(&i.topic)
    .bind(&i.channel)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who answers for interaction `id` after it: its complaint's owner, else the agent who
/// held it, else the customer's account manager.
pub async fn owner_of(conn: &mut Conn, id: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.owner_agent_id, i.agent_id, cu.owner_agent_id FROM interactions i \
         JOIN customers cu ON cu.id = i.customer_id LEFT JOIN complaints c ON c.id = i.complaint_id WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => r
            .try_get::<Option<String>, _>(0)?
            .or(r.try_get::<Option<String>, _>(1)?)
            .or(r.try_get::<Option<String>, _>(2)?),
        None => None,
    })
}

/// A hint that names customer `customer_id` by their most trusted identity.
pub async fn hint_for(
    conn: &mut Conn,
    customer_id: &str,
) -> Result<switchboard_contract::CustomerHint, sqlx::Error> {
    let rows = sqlx::query("SELECT kind, value FROM customer_identities WHERE customer_id = $1")
        .bind(customer_id)
        .fetch_all(conn)
        .await?;
    let mut hint = switchboard_contract::CustomerHint::default();
    for r in rows {
        let (kind, value): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        match kind.as_str() {
            "external_id" => hint.external_id = Some(value),
            "email" => hint.email = Some(value),
            "phone" => hint.phone = Some(value),
            "visitor_id" => hint.visitor_id = Some(value),
            _ => {}
        }
    }
    Ok(hint)
}

/// The open complaint of each of `interaction_ids` that belongs to one, by interaction.
pub async fn complaints_of_interactions(
    conn: &mut Conn,
    interaction_ids: &[String],
) -> Result<HashMap<String, OpenComplaint>, sqlx::Error> {
    let rows = bulk::fetch_in(conn, &[], interaction_ids, |list| {
        format!(
            "SELECT i.id, c.id, c.owner_agent_id, c.due_at FROM interactions i JOIN complaints c ON c.id = i.complaint_id \
             WHERE i.id IN ({list}) AND c.state <> 'resolved'"
        )
    })
    .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<String, _>(0)?,
            OpenComplaint {
                id: r.try_get(1)?,
                owner_agent_id: r.try_get(2)?,
                due_at: r.try_get(3)?,
            },
        );
    }
    Ok(out)
}

/// Counts of each score (1 to 5) answered between `from` and `to`, grouped by `column`
/// (one of the satisfaction table's: agent_id, tier, topic, channel).
pub async fn satisfaction_by(
    conn: &mut Conn,
    column: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(Option<String>, [i64; 5])>, sqlx::Error> {
    debug_assert!(["agent_id", "tier", "topic", "channel"].contains(&column));
    let rows = sqlx::query(&format!(
        "SELECT {column}, score, COUNT(*) FROM satisfaction WHERE answered_at >= $1 AND answered_at <= $2 \
         GROUP BY {column}, score ORDER BY {column}"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<(Option<String>, [i64; 5])> = Vec::new();
    for r in rows {
        let key: Option<String> = r.try_get(0)?;
        let score: i64 = r.try_get(1)?;
        let n: i64 = r.try_get(2)?;
        if out.last().map(|(k, _)| k) != Some(&key) {
            out.push((key, [0; 5]));
        }
        if let (Some(last), Ok(i)) = (out.last_mut(), usize::try_from(score - 1)) {
            if i < 5 {
                last.1[i] += n;
            }
        }
    }
    Ok(out)
}

/// Sets (or clears) an agent's absence and substitute.
pub async fn set_absence(
    conn: &mut Conn,
    agent: &str,
    absence: Option<(i64, &str)>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE agents SET absent_until = $2, substitute_id = $3 WHERE id = $1")
        .bind(agent)
        .bind(absence.map(|a| a.0))
        .bind(absence.map(|a| a.1))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn rows(conn: &mut Conn, sql: &str) -> Vec<(String, String)> {
        sqlx::query(sql)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect()
    }

    /// A turn's events come to `apply` together, several about one contact: each kind is
    /// written for every contact at once, and a contact's effects still land in the order
    /// they happened, whatever order the kinds are written in (a complaint is owned
    /// before it is resolved, a contact ended is not met by a late acceptance).
    #[tokio::test]
    async fn effects_written_together_keep_each_contacts_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = Store::connect(&url, 1).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        for sql in [
            "INSERT INTO customers (id, created_at, updated_at) VALUES ('c1', 1, 1)",
            "INSERT INTO complaints (id, customer_id, topic, opened_at, due_at, warn_at, state, updated_at) \
             VALUES ('k1', 'c1', 'complaint', 1, 9, 8, 'open', 1)",
        ] {
            sqlx::query(sql).execute(&mut *conn).await.unwrap();
        }
        for (id, channel) in [("i1", "phone"), ("i2", "phone"), ("i3", "email")] {
            sqlx::query(
                "INSERT INTO interactions (id, channel, idempotency_key, request_hash, customer_id, tier, \
                 tier_source, tier_reason, state, created_at, updated_at) \
                 VALUES ($1, $2, $1, 'h', 'c1', 'low', 'default', 'default', 'queued', 1, 1)",
            )
            .bind(id)
            .bind(channel)
            .execute(&mut *conn)
            .await
            .unwrap();
            for target in ["first_response", "resolution"] {
                sqlx::query(
                    "INSERT INTO interaction_deadlines (interaction_id, target, channel, started_at, state, updated_at) \
                     VALUES ($1, $2, $3, 1, 'pending', 1)",
                )
                .bind(id)
                .bind(target)
                .bind(channel)
                .execute(&mut *conn)
                .await
                .unwrap();
            }
        }
        sqlx::query("UPDATE interactions SET complaint_id = 'k1' WHERE id = 'i1'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let assigned = |agent: &str| Effect::Assigned {
            agent: agent.into(),
        };
        // In an order the kinds are not written in: i2 ends before an acceptance
        // arrives, i3 is answered, writes again, and is answered again.
        let effects = [
            ("i1", assigned("a1")),
            ("i2", Effect::Ended),
            ("i3", Effect::Answered),
            (
                "i1",
                Effect::Completed {
                    agent: "a1".into(),
                    resolved: true,
                },
            ),
            ("i2", assigned("a2")),
            ("i3", Effect::CustomerWrote),
            ("i3", Effect::Answered),
        ];
        apply(&mut conn, &effects, 100).await.unwrap();
        let states = rows(
            &mut conn,
            "SELECT interaction_id || ' ' || target, state FROM interaction_deadlines \
             ORDER BY interaction_id, target",
        )
        .await;
        let want = [
            ("i1 first_response", "met"),
            ("i1 resolution", "met"),
            ("i2 first_response", "cancelled"),
            ("i2 resolution", "cancelled"),
            ("i3 first_response", "met"),
            ("i3 next_response", "met"),
            ("i3 resolution", "paused"),
        ];
        assert_eq!(
            states,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        let complaint = rows(
            &mut conn,
            "SELECT owner_agent_id, state FROM complaints WHERE id = 'k1'",
        )
        .await;
        assert_eq!(complaint, [("a1".to_string(), "resolved".to_string())]);
    }
}
