//! Report rollups: counts and sums per hour, channel, tier, topic and agent, kept from the
//! history incrementally. A pass reads the history after a stored cursor, adds what it
//! read to the hour buckets and moves the cursor in one transaction, so a crash between
//! passes neither counts an event twice nor misses one. Agents' time per presence state
//! is kept the same way from the presence log (`presence`); `zone` puts hours into a
//! time zone's days and weeks; `days` keeps agents' figures per day of the centre's
//! zone, which reports by agent or team over days and weeks read.
//!
//! # Layout
//! - here: the contact measures per hour (read, tally, add) and the report over them;
//! - `listing`: the contacts one by one, behind the interaction export and a bar's
//!   drill-down;
//! - `presence`: time per presence state per hour and agent;
//! - `days`: agents' measures and presence per local day, and their rebuild;
//! - `zone`: a report's time zone, its offsets over a range and its bucket starts.

pub mod days;
mod listing;
pub mod presence;
pub mod zone;

pub use listing::{interactions_page, InteractionLine, Only, INTERACTION_COLUMNS};

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::Conn;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The history kinds the rollups count.
pub const KINDS: &str = "('interaction_received', 'assigned', 'abandoned', 'completed', \
                         'transferred', 'callback_booked', 'satisfaction')";

/// How many measures a bucket holds.
pub const N: usize = 17;

/// The measures of one bucket, in the order of the table's columns.
pub const MEASURES: [&str; N] = [
    "received",
    "answered",
    "within_target",
    "answer_ms",
    "abandoned",
    "abandoned_wait_ms",
    "completed",
    "handling_ms",
    "transfers",
    "callbacks",
    "csat_count",
    "csat_sum",
    "targeted",
    "wrap_ups",
    "wrap_up_ms",
    "sla_contacts",
    "sla_met",
];

/// Where a bucket's counts go: hour start (ms), channel, tier, topic, agent.
pub type Key = (i64, String, String, String, String);

/// The sums of one bucket, indexed as [`MEASURES`].
pub type Sums = [i64; N];

/// One history event as the rollups read it, with its interaction's dimensions.
#[derive(Debug, Clone)]
pub struct Read {
    /// Its position in the history.
    pub seq: i64,
    /// Its kind.
    pub kind: String,
    /// When it happened (ms).
    pub occurred_at: i64,
    /// Its details.
    pub data: Value,
    /// The interaction's channel.
    pub channel: String,
    /// The interaction's tier at entry.
    pub tier: String,
    /// The interaction's topic, '' for none.
    pub topic: String,
    /// When the interaction arrived (ms).
    pub created_at: i64,
    /// The agent who holds (or last held) it, '' for none.
    pub holder: String,
    /// When it was last answered before this event (ms), if it was.
    pub assigned_at: Option<i64>,
    /// For a completion: how many service targets the contact had by then…
    pub sla_targets: i64,
    /// …and how many of them were breached (or met after they were due) by then.
    pub sla_breached: i64,
}

/// For a completion, its contact's service targets started by then (`targets`) and those
/// breached, or met after their due time, by then (`breached`): the contact's commitment
/// was kept when it had targets and none was breached. Other events: 0 and 0.
pub const SLA_COLUMNS: &str = "\
    CASE WHEN h.kind = 'completed' THEN (SELECT COUNT(*) FROM interaction_deadlines d \
     WHERE d.interaction_id = h.interaction_id AND d.started_at <= h.occurred_at) ELSE 0 END \
     AS sla_targets, \
    CASE WHEN h.kind = 'completed' THEN (SELECT COUNT(*) FROM interaction_deadlines d \
     WHERE d.interaction_id = h.interaction_id AND d.started_at <= h.occurred_at \
     AND ((d.breached_at IS NOT NULL AND d.breached_at <= h.occurred_at) \
      OR (d.met_at IS NOT NULL AND d.due_at IS NOT NULL AND d.met_at > d.due_at))) ELSE 0 END \
     AS sla_breached";

/// The cursor: the last history `seq` the rollups have counted.
pub async fn cursor(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT seq FROM report_cursor WHERE id = 1")
        .fetch_one(conn)
        .await
}

/// Up to `limit` counted events after `after` and no later than `horizon`, oldest first.
pub async fn read_after(
    conn: &mut Conn,
    after: i64,
    horizon: i64,
    limit: i64,
) -> Result<Vec<Read>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT h.seq, h.kind, h.occurred_at, h.data, i.channel, i.tier, i.topic, i.created_at, \
         i.agent_id, \
         (SELECT MAX(a.occurred_at) FROM history a WHERE a.interaction_id = h.interaction_id \
          AND a.kind = 'assigned' AND a.seq < h.seq) AS assigned_at, {SLA_COLUMNS} \
         FROM history h JOIN interactions i ON i.id = h.interaction_id \
         WHERE h.seq > $1 AND h.seq <= $2 AND h.kind IN {KINDS} ORDER BY h.seq LIMIT $3"
    ))
    .bind(after)
    .bind(horizon)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let data: String = r.try_get("data")?;
            Ok(Read {
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                occurred_at: r.try_get("occurred_at")?,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
                channel: r.try_get("channel")?,
                tier: r.try_get("tier")?,
                topic: r.try_get::<Option<String>, _>("topic")?.unwrap_or_default(),
                created_at: r.try_get("created_at")?,
                holder: r
                    .try_get::<Option<String>, _>("agent_id")?
                    .unwrap_or_default(),
                assigned_at: r.try_get("assigned_at")?,
                sla_targets: r.try_get("sla_targets")?,
                sla_breached: r.try_get("sla_breached")?,
            })
        })
        .collect()
}

/// The newest history `seq`.
pub async fn last_seq(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM history")
        .fetch_one(conn)
        .await
}

/// Adds each event to its hour's bucket; `target_secs` is a tier's service-level target
/// (none: nothing is within it). A wait the event does not state is the time from
/// arrival, as the service-level chart takes it.
pub fn tally(events: &[Read], target_secs: impl Fn(&str) -> Option<u64>) -> BTreeMap<Key, Sums> {
    let mut out: BTreeMap<Key, Sums> = BTreeMap::new();
    for e in events {
        let agent_of = |field: &str| e.data[field].as_str().unwrap_or_default().to_string();
        let waited_ms = || {
            e.data["waited_secs"]
                .as_f64()
                .map_or((e.occurred_at - e.created_at).max(0), |s| {
                    (s * 1000.0).round() as i64
                })
        };
        let (agent, add): (String, Vec<(usize, i64)>) = match e.kind.as_str() {
            "interaction_received" => (String::new(), vec![(0, 1)]),
            "assigned" => {
                let w = waited_ms();
                let target = target_secs(&e.tier);
                let within = target.is_some_and(|t| w <= t as i64 * 1000);
                (
                    agent_of("agent_id"),
                    vec![
                        (1, 1),
                        (2, i64::from(within)),
                        (3, w),
                        (12, i64::from(target.is_some())),
                    ],
                )
            }
            "abandoned" => (String::new(), vec![(4, 1), (5, waited_ms())]),
            "completed" => {
                let handled = e.assigned_at.map_or(0, |a| (e.occurred_at - a).max(0));
                let mut add = vec![(6, 1), (7, handled)];
                // The wrap-up the completion started, where the event states it (older
                // history does not: those completions count no wrap-up either way).
                if let Some(secs) = e.data["wrap_up_secs"].as_f64() {
                    add.extend([(13, 1), (14, (secs * 1000.0).round() as i64)]);
                }
                if e.sla_targets > 0 {
                    add.extend([(15, 1), (16, i64::from(e.sla_breached == 0))]);
                }
                (agent_of("agent_id"), add)
            }
            "transferred" => (agent_of("from"), vec![(8, 1)]),
            "callback_booked" => (String::new(), vec![(9, 1)]),
            "satisfaction" => match e.data["score"].as_i64() {
                Some(score) => (e.holder.clone(), vec![(10, 1), (11, score)]),
                None => continue,
            },
            _ => continue,
        };
        let key = (
            e.occurred_at.div_euclid(HOUR_MS) * HOUR_MS,
            e.channel.clone(),
            e.tier.clone(),
            e.topic.clone(),
            agent,
        );
        let sums = out.entry(key).or_default();
        for (i, v) in add {
            sums[i] += v;
        }
    }
    out
}

/// Adds `buckets` to the stored ones (per channel, tier and topic, and per agent) and
/// sets the cursor to `seq`, in the caller's transaction.
pub async fn add(
    conn: &mut Conn,
    buckets: &BTreeMap<Key, Sums>,
    seq: i64,
) -> Result<(), sqlx::Error> {
    let mut by_kind: BTreeMap<(i64, &str, &str, &str), Sums> = BTreeMap::new();
    let mut by_agent: BTreeMap<(i64, &str), Sums> = BTreeMap::new();
    for ((hour, channel, tier, topic, agent), sums) in buckets {
        let a = by_kind.entry((*hour, channel, tier, topic)).or_default();
        let b = by_agent.entry((*hour, agent)).or_default();
        for (i, v) in sums.iter().enumerate() {
            a[i] += v;
            b[i] += v;
        }
    }
    let args = by_kind
        .iter()
        .flat_map(|((hour, channel, tier, topic), sums)| {
            [
                Arg::from(*hour),
                Arg::from(*channel),
                Arg::from(*tier),
                Arg::from(*topic),
            ]
            .into_iter()
            .chain(sums.iter().map(|v| Arg::from(*v)))
            .collect::<Vec<_>>()
        })
        .collect();
    upsert(
        conn,
        "report_hours",
        "hour",
        &["channel", "tier", "topic"],
        args,
    )
    .await?;
    let args = by_agent
        .iter()
        .flat_map(|((hour, agent), sums)| {
            [Arg::from(*hour), Arg::from(*agent)]
                .into_iter()
                .chain(sums.iter().map(|v| Arg::from(*v)))
                .collect::<Vec<_>>()
        })
        .collect();
    upsert(conn, "report_agent_hours", "hour", &["agent"], args).await?;
    sqlx::query("UPDATE report_cursor SET seq = $1 WHERE id = 1")
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds rows of (`time`, `keys`…, measures…) to `table`'s.
async fn upsert(
    conn: &mut Conn,
    table: &str,
    time: &str,
    keys: &[&str],
    args: Vec<Arg>,
) -> Result<(), sqlx::Error> {
    if args.is_empty() {
        return Ok(());
    }
    let keys = keys.join(", ");
    let columns = MEASURES.join(", ");
    let updates = MEASURES
        .iter()
        .map(|m| format!("{m} = {table}.{m} + excluded.{m}"))
        .collect::<Vec<_>>()
        .join(", ");
    bulk::insert(
        conn,
        &format!("INSERT INTO {table} ({time}, {keys}, {columns})"),
        2 + keys.matches(',').count() + MEASURES.len(),
        args,
        &format!("ON CONFLICT ({time}, {keys}) DO UPDATE SET {updates}"),
    )
    .await?;
    Ok(())
}

/// One row of a report: the bucket's start (ms), the slice's value, the sums.
pub type ReportRow = (i64, String, Sums);

/// The sums per bucket and value of `slice` (`tier`, `channel`, `topic` or `agent`,
/// checked by the caller) over hours in `[from, to)`, ordered by bucket and slice. The
/// bucket is the local one of `b` in a time zone `offset` ms from UTC over the whole
/// range (see [`zone::Buckets`]): its start in local ms from the epoch.
pub async fn report(
    conn: &mut Conn,
    slice: &str,
    from: i64,
    to: i64,
    b: zone::Buckets,
    offset: i64,
) -> Result<Vec<ReportRow>, sqlx::Error> {
    debug_assert!(["channel", "tier", "topic", "agent"].contains(&slice));
    let sums = MEASURES
        .iter()
        .map(|m| format!("CAST(SUM({m}) AS BIGINT) AS {m}"))
        .collect::<Vec<_>>()
        .join(", ");
    let table = if slice == "agent" {
        "report_agent_hours"
    } else {
        "report_hours"
    };
    let rows = sqlx::query(&format!(
        "SELECT (hour + $3) / $4 * $4 - $5 AS bucket, {slice} AS slice, {sums} \
         FROM {table} WHERE hour >= $1 AND hour < $2 \
         GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(from)
    .bind(to)
    .bind(offset + b.shift)
    .bind(b.width)
    .bind(b.shift)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| report_row(r, "bucket", "slice"))
        .collect()
}

/// A report's row read from a query's: its bucket and slice columns, then every measure.
/// The database's function making a JSON array of its arguments.
pub(crate) fn json_array(conn: &Conn) -> &'static str {
    if conn.backend_name() == "PostgreSQL" {
        "json_build_array"
    } else {
        "json_array"
    }
}

/// Reads the rows of `SELECT {columns} {rest}` (`rest` bound to `from` and `to`) as one
/// JSON array the database builds, each row an array of `columns` in order. A report by
/// agent over a month reads tens of thousands of rows; through the Any driver each row and
/// each of its values cost a conversion of their own, most of such a report's time.
pub(crate) async fn json_rows<T: serde::de::DeserializeOwned>(
    conn: &mut Conn,
    columns: &str,
    rest: &str,
    from: i64,
    to: i64,
) -> Result<Vec<T>, sqlx::Error> {
    let row = format!("{}({columns})", json_array(conn));
    let sql = if conn.backend_name() == "PostgreSQL" {
        format!("SELECT COALESCE(json_agg({row}), '[]'::json)::text {rest}")
    } else {
        format!("SELECT json_group_array({row}) {rest}")
    };
    let text: String = sqlx::query_scalar(&sql)
        .bind(from)
        .bind(to)
        .fetch_one(conn)
        .await?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn report_row(
    r: &sqlx::any::AnyRow,
    bucket: &str,
    slice: &str,
) -> Result<ReportRow, sqlx::Error> {
    let mut sums = [0i64; N];
    for (i, m) in MEASURES.iter().enumerate() {
        sums[i] = r.try_get(*m)?;
    }
    Ok((r.try_get(bucket)?, r.try_get(slice)?, sums))
}
