//! A report's table: the rollups' rows of each piece of the range (cut where the time
//! zone's offset changes) put into buckets named by their true start, teams made of
//! their agents' rows, and for agents and teams the time per presence state, with the
//! state each agent is in now counted up to now. A report by agent or team over days
//! or weeks of the days kept (`Plan::days`) reads the agents' days instead of the hours.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::store::agents;
use crate::store::reports::zone::{Buckets, Piece, Zone};
use crate::store::reports::{self, Sums, N};
use crate::store::reports::{days, presence};
use crate::store::Conn;

/// Time (ms) available, away and offline.
pub type States = [i64; 3];

/// A row of the table: the sums, and for agents and teams the time per state.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// The contact measures.
    pub sums: Sums,
    /// Time per presence state (agents and teams only).
    pub states: States,
    /// Time away per reason given ('' for none).
    pub away_reasons: BTreeMap<String, i64>,
    /// Where the bucket ends (ms, UTC): a day the clocks change is 23 or 25 hours.
    pub end: i64,
}

/// The table: per bucket start (ms, UTC) and slice value.
pub type Table = BTreeMap<(i64, String), Line>;

/// Where the rows of a report come from and go.
pub struct Plan<'a> {
    /// The zone.
    pub zone: &'a Zone,
    /// The range cut where the offset changes.
    pub pieces: &'a [Piece],
    /// The bucket width.
    pub buckets: Buckets,
    /// `tier`, `channel`, `topic`, `team` or `agent`.
    pub slice: &'a str,
    /// Whether to read the agents' days (kept in this zone, whole, the range on local
    /// midnights) rather than the hours.
    pub days: bool,
}

impl Plan<'_> {
    /// Whether the slice is of people, who have presence.
    pub fn of_people(&self) -> bool {
        matches!(self.slice, "agent" | "team")
    }

    /// The range: `[from, to)` (ms, UTC).
    fn range(&self) -> (i64, i64) {
        let from = self.pieces.first().map_or(0, |p| p.from);
        (from, self.pieces.last().map_or(from, |p| p.to))
    }

    /// The bucket of the day starting at `day` (ms, UTC, a local midnight): its start
    /// and end.
    fn start_of_day(&self, day: i64, named: &mut HashMap<i64, (i64, i64)>) -> (i64, i64) {
        let offset = self.zone.offset_at(day);
        self.start(self.buckets.local_start(day + offset), offset, named)
    }

    /// The start (ms, UTC) of the bucket whose local start is `local`, in a piece
    /// `offset` ms from UTC. An hour is the hour itself (a local hour the clocks go back
    /// over comes twice, and is two buckets); a day or a week starts at local midnight.
    /// Answers the start and the end.
    fn start(&self, local: i64, offset: i64, named: &mut HashMap<i64, (i64, i64)>) -> (i64, i64) {
        if self.buckets == Buckets::HOUR {
            return (local - offset, local - offset + self.buckets.width);
        }
        *named.entry(local).or_insert_with(|| {
            (
                self.zone.instant_of_local(local),
                self.zone.instant_of_local(local + self.buckets.width),
            )
        })
    }
}

/// Each agent's teams (their skills), and the agents in no team.
pub async fn teams(conn: &mut Conn) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    Ok(agents::list(conn)
        .await?
        .into_iter()
        .map(|a| (a.id, a.skills))
        .collect())
}

/// The values of the slice an agent's row goes to: itself, or its teams ('' for none).
fn values<'t>(
    plan: &Plan<'_>,
    agent: &'t str,
    teams: &'t HashMap<String, Vec<String>>,
) -> Vec<&'t str> {
    if plan.slice != "team" {
        return vec![agent];
    }
    match teams.get(agent) {
        Some(t) if !t.is_empty() => t.iter().map(String::as_str).collect(),
        _ => vec![""],
    }
}

/// The table of `plan` over the store's rollups; `now` ends the states still open.
pub async fn build(conn: &mut Conn, plan: &Plan<'_>, now: i64) -> Result<Table, sqlx::Error> {
    let column = if plan.slice == "team" {
        "agent"
    } else {
        plan.slice
    };
    let teams = if plan.slice == "team" {
        teams(conn).await?
    } else {
        HashMap::new()
    };
    let mut named = HashMap::new();
    let mut table = Table::new();
    if plan.days {
        let (from, to) = plan.range();
        for (day, agent, sums) in days::report(conn, from, to).await? {
            let (start, end) = plan.start_of_day(day, &mut named);
            for v in values(plan, &agent, &teams) {
                let line = table.entry((start, v.to_string())).or_default();
                line.end = end;
                for (a, b) in line.sums.iter_mut().zip(sums) {
                    *a += b;
                }
            }
        }
    }
    for p in plan.pieces.iter().filter(|_| !plan.days) {
        let rows = reports::report(conn, column, p.from, p.to, plan.buckets, p.offset).await?;
        for (local, value, sums) in rows {
            let (start, end) = plan.start(local, p.offset, &mut named);
            for v in values(plan, &value, &teams) {
                let line = table.entry((start, v.to_string())).or_default();
                line.end = end;
                for (a, b) in line.sums.iter_mut().zip(sums) {
                    *a += b;
                }
            }
        }
    }
    if !plan.of_people() {
        return Ok(table);
    }
    let add = |table: &mut Table,
               (start, end): (i64, i64),
               agent: &str,
               (status, reason): (&str, &str),
               ms: i64| {
        let Some(k) = ["available", "away", "offline"]
            .iter()
            .position(|s| *s == status)
        else {
            return;
        };
        for v in values(plan, agent, &teams) {
            let line = table.entry((start, v.to_string())).or_default();
            line.end = end;
            line.states[k] += ms;
            if status == "away" {
                *line.away_reasons.entry(reason.to_string()).or_default() += ms;
            }
        }
    };
    if plan.days {
        let (from, to) = plan.range();
        for (day, agent, status, reason, ms) in days::presence(conn, from, to).await? {
            let bucket = plan.start_of_day(day, &mut named);
            add(&mut table, bucket, &agent, (&status, &reason), ms);
        }
    }
    for p in plan.pieces.iter().filter(|_| !plan.days) {
        let rows = presence::report(conn, p.from, p.to, plan.buckets, p.offset).await?;
        for (local, agent, status, reason, ms) in rows {
            let bucket = plan.start(local, p.offset, &mut named);
            add(&mut table, bucket, &agent, (&status, &reason), ms);
        }
    }
    // The states not ended yet count up to now.
    for (agent, (status, reason, since)) in presence::open(conn).await? {
        for p in plan.pieces {
            for (hour, ms) in presence::split(since.max(p.from), now.min(p.to)) {
                let local = plan.buckets.local_start(hour + p.offset);
                let bucket = plan.start(local, p.offset, &mut named);
                add(&mut table, bucket, &agent, (&status, &reason), ms);
            }
        }
    }
    Ok(table)
}

/// A mean, or none of nothing.
fn mean(sum: i64, n: i64, scale: f64) -> Option<f64> {
    (n > 0).then(|| sum as f64 / n as f64 / scale)
}

/// The figures of one row, named as the report states them; the presence figures for a
/// slice of people only.
pub fn figures(line: &Line, people: bool) -> Vec<(&'static str, Value)> {
    let [received, answered, within, answer_ms, abandoned, abandoned_ms, completed, handling_ms, transfers, callbacks, csat_n, csat_sum, targeted, wrap_ups, wrap_up_ms, sla_contacts, sla_met] =
        line.sums;
    const _: () = assert!(N == 17);
    let mut out = vec![
        ("received", json!(received)),
        ("answered", json!(answered)),
        ("abandoned", json!(abandoned)),
        (
            "mean_abandoned_wait_secs",
            json!(mean(abandoned_ms, abandoned, 1000.0)),
        ),
        ("answered_within_target", json!(within)),
        // Of the contacts answered whose tier has a target: none when no tier had one.
        ("service_level", json!(mean(within, targeted, 1.0))),
        (
            "average_speed_of_answer_secs",
            json!(mean(answer_ms, answered, 1000.0)),
        ),
        ("completed", json!(completed)),
        (
            "mean_handling_secs",
            json!(mean(handling_ms, completed, 1000.0)),
        ),
        // Of the completions that state the wrap-up they started.
        (
            "mean_wrap_up_secs",
            json!(mean(wrap_up_ms, wrap_ups, 1000.0)),
        ),
        ("transfers", json!(transfers)),
        ("callbacks", json!(callbacks)),
        // Of the contacts completed that had service targets, those with none breached.
        ("sla_contacts", json!(sla_contacts)),
        ("sla_attainment", json!(mean(sla_met, sla_contacts, 1.0))),
        ("csat_average", json!(mean(csat_sum, csat_n, 1.0))),
        ("csat_count", json!(csat_n)),
    ];
    if people {
        let [available, away, offline] = line.states;
        out.extend([
            ("available_secs", json!(available as f64 / 1000.0)),
            ("away_secs", json!(away as f64 / 1000.0)),
            ("offline_secs", json!(offline as f64 / 1000.0)),
            // Handling and wrap-up of the contacts completed, over the time available:
            // above 1 when several chats or mails were handled at once.
            (
                "occupancy",
                json!(mean(handling_ms + wrap_up_ms, available, 1.0)),
            ),
        ]);
    }
    out
}

/// Time away per reason (secs), for a slice of people.
pub fn away_reasons(line: &Line) -> Value {
    Value::Object(
        line.away_reasons
            .iter()
            .map(|(r, ms)| (r.clone(), json!(*ms as f64 / 1000.0)))
            .collect(),
    )
}

/// The figure names of a report of people or not, in order.
pub fn names(people: bool) -> Vec<&'static str> {
    figures(&Line::default(), people)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}
