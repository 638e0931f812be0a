//! Report rollups: counts and sums per hour, channel, tier, topic and agent, kept from the
//! history incrementally. A pass reads the history after a stored cursor, adds what it
//! read to the hour buckets and moves the cursor in one transaction, so a crash between
//! passes neither counts an event twice nor misses one.

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

/// The measures of one bucket, in the order of the table's columns.
pub const MEASURES: [&str; 13] = [
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
];

/// Where a bucket's counts go: hour start (ms), channel, tier, topic, agent.
pub type Key = (i64, String, String, String, String);

/// The sums of one bucket, indexed as [`MEASURES`].
pub type Sums = [i64; 13];

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
}

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
          AND a.kind = 'assigned' AND a.seq < h.seq) AS assigned_at \
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
                (agent_of("agent_id"), vec![(6, 1), (7, handled)])
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
    upsert(conn, "report_hours", &["channel", "tier", "topic"], args).await?;
    let args = by_agent
        .iter()
        .flat_map(|((hour, agent), sums)| {
            [Arg::from(*hour), Arg::from(*agent)]
                .into_iter()
                .chain(sums.iter().map(|v| Arg::from(*v)))
                .collect::<Vec<_>>()
        })
        .collect();
    upsert(conn, "report_agent_hours", &["agent"], args).await?;
    sqlx::query("UPDATE report_cursor SET seq = $1 WHERE id = 1")
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds rows of (hour, `keys`…, measures…) to `table`'s.
async fn upsert(
    conn: &mut Conn,
    table: &str,
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
        &format!("INSERT INTO {table} (hour, {keys}, {columns})"),
        2 + keys.matches(',').count() + MEASURES.len(),
        args,
        &format!("ON CONFLICT (hour, {keys}) DO UPDATE SET {updates}"),
    )
    .await?;
    Ok(())
}

/// One row of a report: the bucket's start (ms), the slice's value, the sums.
pub type ReportRow = (i64, String, Sums);

/// The sums per bucket of `width` ms (aligned on `offset` ms from the epoch) and value of
/// `slice` (`tier`, `channel`, `topic` or `agent`, checked by the caller) over hours in
/// `[from, to)`, ordered by bucket and slice.
pub async fn report(
    conn: &mut Conn,
    slice: &str,
    from: i64,
    to: i64,
    width: i64,
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
        "SELECT (hour - $3) / $4 * $4 + $3 AS bucket, {slice} AS slice, {sums} \
         FROM {table} WHERE hour >= $1 AND hour < $2 \
         GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(from)
    .bind(to)
    .bind(offset)
    .bind(width)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let mut sums = [0i64; 13];
            for (i, m) in MEASURES.iter().enumerate() {
                sums[i] = r.try_get(*m)?;
            }
            Ok((r.try_get("bucket")?, r.try_get("slice")?, sums))
        })
        .collect()
}

/// The columns of the interaction export, in order.
pub const INTERACTION_COLUMNS: [&str; 10] = [
    "id",
    "channel",
    "tier",
    "topic",
    "agent",
    "created",
    "answered",
    "completed",
    "wait_secs",
    "outcome",
];

/// One contact as the reports list it.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionLine {
    /// Its id.
    pub id: String,
    /// Its channel.
    pub channel: String,
    /// Its tier at entry.
    pub tier: String,
    /// Its topic, if any.
    pub topic: Option<String>,
    /// The agent who holds or last held it, if any.
    pub agent: Option<String>,
    /// When it arrived (ms).
    pub created_at: i64,
    /// When it was first answered (ms), if it was.
    pub answered_at: Option<i64>,
    /// When it was completed or abandoned (ms), if it was.
    pub ended_at: Option<i64>,
    /// Its state now: `completed`, `abandoned`, `assigned`, `queued`…
    pub outcome: String,
}

impl InteractionLine {
    /// How long the customer waited (ms): to the first answer, or to giving up; none
    /// while still waiting.
    pub fn wait_ms(&self) -> Option<i64> {
        match (self.answered_at, self.outcome.as_str()) {
            (Some(a), _) => Some(a - self.created_at),
            (None, "abandoned") => self.ended_at.map(|e| e - self.created_at),
            _ => None,
        }
    }

    /// Its cells for the export, in [`INTERACTION_COLUMNS`] order (times RFC 3339 UTC).
    pub fn cells(&self) -> [String; 10] {
        let time = |t: Option<i64>| t.map(super::rfc3339).unwrap_or_default();
        [
            self.id.clone(),
            self.channel.clone(),
            self.tier.clone(),
            self.topic.clone().unwrap_or_default(),
            self.agent.clone().unwrap_or_default(),
            super::rfc3339(self.created_at),
            time(self.answered_at),
            time(self.ended_at.filter(|_| self.outcome == "completed")),
            self.wait_ms()
                .map(|w| format!("{:.3}", w as f64 / 1000.0))
                .unwrap_or_default(),
            self.outcome.clone(),
        ]
    }
}

/// Up to `limit` contacts that arrived after `after` (arrival ms, id) and before `to`,
/// in arrival order; with `only`, those whose slice (`tier`, `channel`, `topic` or
/// `agent`, checked by the caller) has that value ('' for none). A chat whose visitor
/// never wrote (`opened`, `left`) is no contact, and is not listed.
pub async fn interactions_page(
    conn: &mut Conn,
    after: (i64, &str),
    to: i64,
    limit: i64,
    only: Option<(&str, &str)>,
) -> Result<Vec<InteractionLine>, sqlx::Error> {
    let filter = match only {
        Some((slice, _)) => {
            let column = match slice {
                "tier" => "i.tier",
                "channel" => "i.channel",
                "topic" => "i.topic",
                _ => "i.agent_id",
            };
            format!("AND COALESCE({column}, '') = $5")
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT i.id, i.channel, i.tier, i.topic, i.agent_id, i.created_at, i.state, \
         (SELECT MIN(h.occurred_at) FROM history h WHERE h.interaction_id = i.id \
          AND h.kind = 'assigned') AS answered_at, \
         (SELECT MAX(h.occurred_at) FROM history h WHERE h.interaction_id = i.id \
          AND h.kind IN ('completed', 'abandoned')) AS ended_at \
         FROM interactions i \
         WHERE (i.created_at > $1 OR (i.created_at = $1 AND i.id > $2)) AND i.created_at < $3 \
         AND i.state NOT IN ('opened', 'left') {filter} ORDER BY i.created_at, i.id LIMIT $4",
    );
    let rows = sqlx::query(&sql)
        .bind(after.0)
        .bind(after.1)
        .bind(to)
        .bind(limit);
    let rows = match only {
        Some((_, value)) => rows.bind(value),
        None => rows,
    }
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InteractionLine {
                id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                tier: r.try_get("tier")?,
                topic: r.try_get("topic")?,
                agent: r.try_get("agent_id")?,
                created_at: r.try_get("created_at")?,
                answered_at: r.try_get("answered_at")?,
                ended_at: r.try_get("ended_at")?,
                outcome: r.try_get("state")?,
            })
        })
        .collect()
}
