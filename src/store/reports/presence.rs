//! Agents' time per presence state (`available`, `away` per reason, `offline`) per hour, kept from
//! the presence log as the contact measures are kept from the history: a pass reads the
//! changes after `report_cursor.presence_seq`, ends each agent's open state at its next
//! change, adds the time between to the hours it spans, and moves the cursor in the same
//! transaction. The state an agent is in now is in `report_presence_open` until it ends.

use std::collections::BTreeMap;

use sqlx::Row;

use super::super::bulk::{self, Arg};
use super::super::Conn;
use super::zone::Buckets;
use super::HOUR_MS;

/// One change of the presence log, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its position in the log.
    pub seq: i64,
    /// The agent.
    pub agent: String,
    /// The state it starts.
    pub status: String,
    /// Why away ('' for none given, and for the other states).
    pub reason: String,
    /// When (ms).
    pub at: i64,
}

/// Each agent's state now (status, reason) and since when (ms), as far as the rollup has
/// read.
pub type Open = BTreeMap<String, (String, String, i64)>;

/// Time (ms) per hour, agent, state and reason.
pub type Hours = BTreeMap<(i64, String, String, String), i64>;

/// The last presence-log `seq` counted.
pub async fn cursor(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT presence_seq FROM report_cursor WHERE id = 1")
        .fetch_one(conn)
        .await
}

/// The newest presence-log `seq`.
pub async fn last_seq(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM agent_presence")
        .fetch_one(conn)
        .await
}

/// Up to `limit` changes after `after` and no later than `horizon`, oldest first.
pub async fn read_after(
    conn: &mut Conn,
    after: i64,
    horizon: i64,
    limit: i64,
) -> Result<Vec<Change>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, agent_id, status, reason, at FROM agent_presence \
         WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(horizon)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Change {
                seq: r.try_get("seq")?,
                agent: r.try_get("agent_id")?,
                status: r.try_get("status")?,
                reason: r
                    .try_get::<Option<String>, _>("reason")?
                    .unwrap_or_default(),
                at: r.try_get("at")?,
            })
        })
        .collect()
}

/// Every agent's open state.
pub async fn open(conn: &mut Conn) -> Result<Open, sqlx::Error> {
    let rows = sqlx::query("SELECT agent, status, reason, since FROM report_presence_open")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            let state = (
                r.try_get("status")?,
                r.try_get("reason")?,
                r.try_get("since")?,
            );
            Ok((r.try_get("agent")?, state))
        })
        .collect()
}

/// `[from, to)` cut at the hours: each hour's start and the time of it inside.
pub fn split(from: i64, to: i64) -> impl Iterator<Item = (i64, i64)> {
    let first = from.div_euclid(HOUR_MS) * HOUR_MS;
    (0..)
        .map(move |k| first + k * HOUR_MS)
        .take_while(move |h| *h < to)
        .map(move |h| (h, (h + HOUR_MS).min(to) - h.max(from)))
        .filter(|(_, ms)| *ms > 0)
}

/// Ends each agent's open state at its next change and adds the time to `hours`; the
/// change opens the next state. A change older than the open state (a clock set back)
/// only opens its state.
pub fn tally(open: &mut Open, changes: &[Change]) -> Hours {
    let mut hours = Hours::new();
    for c in changes {
        if let Some((status, reason, since)) = open.get(&c.agent) {
            for (hour, ms) in split(*since, c.at) {
                let key = (hour, c.agent.clone(), status.clone(), reason.clone());
                *hours.entry(key).or_default() += ms;
            }
        }
        let reason = if c.status == "away" {
            c.reason.clone()
        } else {
            String::new()
        };
        open.insert(c.agent.clone(), (c.status.clone(), reason, c.at));
    }
    hours
}

/// Adds `hours` to the stored ones, stores `open` (the agents in `changed`) and sets
/// the presence cursor to `seq`, in the caller's transaction.
pub async fn add(
    conn: &mut Conn,
    hours: &Hours,
    open: &Open,
    changed: &[String],
    seq: i64,
) -> Result<(), sqlx::Error> {
    if !hours.is_empty() {
        let args = hours
            .iter()
            .flat_map(|((hour, agent, status, reason), ms)| {
                [
                    Arg::from(*hour),
                    Arg::from(agent.as_str()),
                    Arg::from(status.as_str()),
                    Arg::from(reason.as_str()),
                    Arg::from(*ms),
                ]
            })
            .collect();
        bulk::insert(
            conn,
            "INSERT INTO report_presence_hours (hour, agent, status, reason, ms)",
            5,
            args,
            "ON CONFLICT (hour, agent, status, reason) DO UPDATE SET ms = report_presence_hours.ms + excluded.ms",
        )
        .await?;
    }
    let args: Vec<Arg> = changed
        .iter()
        .filter_map(|a| open.get(a).map(|o| (a, o)))
        .flat_map(|(agent, (status, reason, since))| {
            [
                Arg::from(agent.as_str()),
                Arg::from(status.as_str()),
                Arg::from(reason.as_str()),
                Arg::from(*since),
            ]
        })
        .collect();
    if !args.is_empty() {
        bulk::insert(
            conn,
            "INSERT INTO report_presence_open (agent, status, reason, since)",
            4,
            args,
            "ON CONFLICT (agent) DO UPDATE SET status = excluded.status, reason = excluded.reason, \
             since = excluded.since",
        )
        .await?;
    }
    sqlx::query("UPDATE report_cursor SET presence_seq = $1 WHERE id = 1")
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(())
}

/// One row of the presence report: the bucket's local start, the agent, the state, the
/// reason, ms.
pub type PresenceRow = (i64, String, String, String, i64);

/// Time per local bucket (as [`super::report`] buckets), agent and state over the hours
/// in `[from, to)` counted so far, in a zone `offset` ms from UTC over the range.
pub async fn report(
    conn: &mut Conn,
    from: i64,
    to: i64,
    b: Buckets,
    offset: i64,
) -> Result<Vec<PresenceRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT (hour + $3) / $4 * $4 - $5 AS bucket, agent, status, reason, \
         CAST(SUM(ms) AS BIGINT) AS ms FROM report_presence_hours WHERE hour >= $1 AND hour < $2 \
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    )
    .bind(from)
    .bind(to)
    .bind(offset + b.shift)
    .bind(b.width)
    .bind(b.shift)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("bucket")?,
                r.try_get("agent")?,
                r.try_get("status")?,
                r.try_get("reason")?,
                r.try_get("ms")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64, agent: &str, status: &str, at: i64) -> Change {
        Change {
            seq,
            agent: agent.into(),
            status: status.into(),
            reason: if status == "away" {
                "break".into()
            } else {
                String::new()
            },
            at,
        }
    }

    #[test]
    fn a_state_is_counted_when_it_ends_split_across_the_hours_it_spans() {
        let mut open = Open::new();
        let h = HOUR_MS;
        let hours = tally(
            &mut open,
            &[
                change(1, "ann", "available", 9 * h + 30 * 60_000),
                change(2, "bo", "away", 10 * h),
                change(3, "ann", "away", 11 * h + 15 * 60_000),
                change(4, "ann", "offline", 11 * h + 45 * 60_000),
            ],
        );
        let get = |hour: i64, a: &str, s: &str| {
            let reason = if s == "away" { "break" } else { "" };
            hours
                .get(&(hour * h, a.to_string(), s.to_string(), reason.to_string()))
                .copied()
        };
        assert_eq!(get(9, "ann", "available"), Some(30 * 60_000));
        assert_eq!(get(10, "ann", "available"), Some(h));
        assert_eq!(get(11, "ann", "available"), Some(15 * 60_000));
        assert_eq!(get(11, "ann", "away"), Some(30 * 60_000));
        assert_eq!(hours.len(), 4, "bo's away has not ended: {hours:?}");
        assert_eq!(open["bo"], ("away".into(), "break".into(), 10 * h));
        assert_eq!(
            open["ann"],
            ("offline".into(), String::new(), 11 * h + 45 * 60_000)
        );
        assert_eq!(split(5, 5).count(), 0);
        assert_eq!(split(h, 3 * h).collect::<Vec<_>>(), [(h, h), (2 * h, h)]);
    }
}
