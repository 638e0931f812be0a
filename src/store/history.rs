//! The customer history: an append-only record of every event about a customer and
//! their interactions, across all channels. The tables refuse updates and deletes.

use sqlx::Row;

use super::bulk::Arg;
use super::{bulk, service, Conn};

/// One event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The customer it is about.
    pub customer_id: String,
    /// The interaction it is about, if any.
    pub interaction_id: Option<String>,
    /// What happened (`interaction_received`, `tier_decided`…).
    pub kind: &'static str,
    /// Who did it (`system`, `admin`, an agent's id…).
    pub actor: String,
    /// The event's details.
    pub data: serde_json::Value,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its position in the whole history: later events have larger numbers.
    pub seq: i64,
    /// The customer it was recorded under.
    pub customer_id: String,
    /// The interaction it is about, if any.
    pub interaction_id: Option<String>,
    /// What happened.
    pub kind: String,
    /// When (ms).
    pub occurred_at: i64,
    /// Who did it.
    pub actor: String,
    /// Details.
    pub data: serde_json::Value,
}

/// Appends `events`, all at `now`, in as few statements as fit.
pub async fn append<'a>(
    conn: &mut Conn,
    events: impl IntoIterator<Item = &'a NewEvent>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let events: Vec<&NewEvent> = events.into_iter().collect();
    // The targets these events answer move in the same commit.
    let effects: Vec<(&str, service::Effect)> = events
        .iter()
        .filter_map(|e| {
            let id = e.interaction_id.as_deref()?;
            Some((id, service::effect(e.kind, &e.actor, || e.data.clone())?))
        })
        .collect();
    let args = events
        .iter()
        .flat_map(|e| {
            [
                Arg::from(e.customer_id.as_str()),
                Arg::from(e.interaction_id.clone()),
                Arg::from(e.kind),
                Arg::from(now),
                Arg::from(e.actor.as_str()),
                Arg::from(e.data.to_string()),
            ]
        })
        .collect();
    insert(conn, args).await?;
    service::apply(conn, &effects, now).await
}

/// Writes history rows of six values each (see [`append`]).
async fn insert(conn: &mut Conn, args: Vec<Arg>) -> Result<(), sqlx::Error> {
    bulk::insert(
        conn,
        "INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data)",
        6,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// An event whose kind is not known in advance (a channel's own event) for the history.
pub struct ChannelEntry<'a> {
    /// The customer it is about.
    pub customer_id: &'a str,
    /// The interaction it is about.
    pub interaction_id: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// Who did it: the channel, or the customer.
    pub actor: &'a str,
    /// The event's details, as JSON text.
    pub data: &'a str,
}

/// A channel event's details as the history shows them: without their `private` member
/// (kept with the channel's event for its own checks). `None` when there is none to
/// remove, and the details are shown as they are.
pub fn without_private(data: &serde_json::Value) -> Option<String> {
    let private = data.as_object()?.contains_key("private");
    private.then(|| {
        let mut shown = data.clone();
        if let Some(o) = shown.as_object_mut() {
            o.remove("private");
        }
        shown.to_string()
    })
}

/// Appends channels' events, all at `now`, in as few statements as fit.
pub async fn append_channel(
    conn: &mut Conn,
    entries: &[ChannelEntry<'_>],
    now: i64,
) -> Result<(), sqlx::Error> {
    let effects: Vec<(&str, service::Effect)> = entries
        .iter()
        .filter_map(|e| {
            let data = || serde_json::from_str(e.data).unwrap_or_default();
            Some((e.interaction_id, service::effect(e.kind, e.actor, data)?))
        })
        .collect();
    let args = entries
        .iter()
        .flat_map(|e| {
            [
                Arg::from(e.customer_id),
                Arg::from(e.interaction_id),
                Arg::from(e.kind),
                Arg::from(now),
                Arg::from(e.actor),
                Arg::from(e.data),
            ]
        })
        .collect();
    insert(conn, args).await?;
    service::apply(conn, &effects, now).await
}

/// A page of the customer's history (including customers merged into it), newest
/// first, of events older than `before` when given.
pub async fn page(
    conn: &mut Conn,
    customer_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, customer_id, interaction_id, kind, occurred_at, actor, data FROM history \
         WHERE customer_id IN (SELECT id FROM customers WHERE id = $1 OR merged_into = $1) AND seq < $2 \
         ORDER BY seq DESC LIMIT $3",
    )
    .bind(customer_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_event).collect()
}

/// For each customer of `customer_ids`, its newest `limit` events (and those of the
/// customers merged into it), newest first, as [`page`] answers them: one statement per
/// 50 customers, each of its parts reading no more than its own `limit` events.
pub async fn recent_many(
    conn: &mut Conn,
    customer_ids: &[String],
    limit: i64,
) -> Result<std::collections::HashMap<String, Vec<Event>>, sqlx::Error> {
    let mut out: std::collections::HashMap<String, Vec<Event>> = std::collections::HashMap::new();
    for chunk in customer_ids.chunks(50) {
        let parts: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = i + 2;
                format!(
                    "SELECT * FROM (SELECT seq, customer_id, interaction_id, kind, occurred_at, actor, data, ${p} AS asked FROM history \
                     WHERE customer_id IN (SELECT id FROM customers WHERE id = ${p} OR merged_into = ${p}) \
                     ORDER BY seq DESC LIMIT $1) AS part{i}"
                )
            })
            .collect();
        let sql = parts.join(" UNION ALL ");
        let args = std::iter::once(Arg::from(limit))
            .chain(chunk.iter().map(|id| Arg::from(id.as_str())))
            .collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            let asked: String = row.try_get("asked")?;
            out.entry(asked).or_default().push(row_to_event(&row)?);
        }
    }
    for events in out.values_mut() {
        events.sort_by_key(|e| std::cmp::Reverse(e.seq));
    }
    Ok(out)
}

/// Every event about one interaction, oldest first.
pub async fn of_interaction(
    conn: &mut Conn,
    interaction_id: &str,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, customer_id, interaction_id, kind, occurred_at, actor, data FROM history \
         WHERE interaction_id = $1 ORDER BY seq",
    )
    .bind(interaction_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_event).collect()
}

fn row_to_event(row: &sqlx::any::AnyRow) -> Result<Event, sqlx::Error> {
    let data: String = row.try_get("data")?;
    Ok(Event {
        seq: row.try_get("seq")?,
        customer_id: row.try_get("customer_id")?,
        interaction_id: row.try_get("interaction_id")?,
        kind: row.try_get("kind")?,
        occurred_at: row.try_get("occurred_at")?,
        actor: row.try_get("actor")?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
    })
}
