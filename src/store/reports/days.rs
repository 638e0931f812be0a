//! Agents' figures per local day of the centre's time zone (`api.report_time_zone`):
//! the contact measures and the time per presence state, so that a month's report by
//! agent or team over days or weeks reads one row per agent and day, not 24. Kept by
//! the same rollup pass and transaction as the hours (each hour's deltas are added to
//! its day too). `report_days_state` names the zone the days were built for; when the
//! configured zone differs (or the tables are new) the days are emptied and rebuilt
//! from the hourly tables, a few days a pass, oldest first: while `built_to` is set,
//! the days from it on are not there yet, and an hour from it on goes to the hours only
//! (the rebuild copies it when it gets there).

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::super::bulk::{self, Arg};
use super::super::Conn;
use super::presence::Hours;
use super::zone::{Buckets, Zone};
use super::{Key, Sums, MEASURES, N};

/// Days copied from the hours in one rebuild step.
const CHUNK_DAYS: i64 = 7;
const DAY_MS: i64 = 24 * super::HOUR_MS;

/// The zone the days are kept in, and how far they are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The IANA name of the zone ('' before the first build).
    pub zone: String,
    /// While rebuilding: the local midnight (ms, UTC) from which the days are not built.
    pub built_to: Option<i64>,
}

impl State {
    /// Whether reports in `zone` may read the days: built for it, and whole.
    pub fn ready_for(&self, zone: &str) -> bool {
        self.zone == zone && self.built_to.is_none()
    }

    /// Whether an hour's deltas go to its day now (a day not built yet gets them from
    /// the hours when the rebuild reaches it).
    fn takes(&self, hour: i64) -> bool {
        self.built_to.is_none_or(|b| hour < b)
    }
}

/// The days' state.
pub async fn state(conn: &mut Conn) -> Result<State, sqlx::Error> {
    let row = sqlx::query("SELECT zone, built_to FROM report_days_state WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(State {
        zone: row.try_get("zone")?,
        built_to: row.try_get("built_to")?,
    })
}

/// The day holding `hour` in `zone`: the instant (ms, UTC) of its local midnight.
pub fn day_of(zone: &Zone, hour: i64) -> i64 {
    zone.instant_of_local(Buckets::DAY.local_start(hour + zone.offset_at(hour)))
}

/// `day_of`, remembered per hour: a pass maps the same hours over and over.
fn days_of(zone: &Zone) -> impl FnMut(i64) -> i64 + '_ {
    let mut seen: HashMap<i64, i64> = HashMap::new();
    move |hour| *seen.entry(hour).or_insert_with(|| day_of(zone, hour))
}

/// When the days were built for another zone than `zone` (or never), empties them and
/// starts their rebuild, in the caller's transaction; answers the state now.
pub async fn keep_for(conn: &mut Conn, zone: &Zone) -> Result<State, sqlx::Error> {
    let st = state(conn).await?;
    if st.zone == zone.name() {
        return Ok(st);
    }
    sqlx::query("DELETE FROM report_agent_days")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM report_presence_days")
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE report_days_state SET zone = $1, built_to = 0 WHERE id = 1")
        .bind(zone.name())
        .execute(&mut *conn)
        .await?;
    tracing::info!(
        zone = zone.name(),
        was = st.zone.as_str(),
        "The reports' days are rebuilt from the hours for the configured time zone"
    );
    Ok(State {
        zone: zone.name().to_string(),
        built_to: Some(0),
    })
}

/// Adds a pass's contact buckets (per hour, …, agent) to their agents' days.
pub async fn add_contacts(
    conn: &mut Conn,
    zone: &Zone,
    st: &State,
    buckets: &BTreeMap<Key, Sums>,
) -> Result<(), sqlx::Error> {
    let mut day = days_of(zone);
    let mut by_day: BTreeMap<(i64, &str), Sums> = BTreeMap::new();
    for ((hour, _, _, _, agent), sums) in buckets.iter().filter(|(k, _)| st.takes(k.0)) {
        let d = by_day.entry((day(*hour), agent)).or_default();
        for (a, b) in d.iter_mut().zip(sums) {
            *a += b;
        }
    }
    upsert_contacts(conn, &by_day).await
}

async fn upsert_contacts(
    conn: &mut Conn,
    by_day: &BTreeMap<(i64, &str), Sums>,
) -> Result<(), sqlx::Error> {
    let args = by_day
        .iter()
        .flat_map(|((day, agent), sums)| {
            [Arg::from(*day), Arg::from(*agent)]
                .into_iter()
                .chain(sums.iter().map(|v| Arg::from(*v)))
                .collect::<Vec<_>>()
        })
        .collect();
    super::upsert(conn, "report_agent_days", "day", &["agent"], args).await
}

/// Adds a pass's presence time (per hour, agent, state, reason) to the agents' days.
pub async fn add_presence(
    conn: &mut Conn,
    zone: &Zone,
    st: &State,
    hours: &Hours,
) -> Result<(), sqlx::Error> {
    let mut day = days_of(zone);
    let mut by_day: BTreeMap<(i64, &str, &str, &str), i64> = BTreeMap::new();
    for ((hour, agent, status, reason), ms) in hours.iter().filter(|(k, _)| st.takes(k.0)) {
        *by_day
            .entry((day(*hour), agent, status, reason))
            .or_default() += ms;
    }
    upsert_presence(conn, &by_day).await
}

async fn upsert_presence(
    conn: &mut Conn,
    by_day: &BTreeMap<(i64, &str, &str, &str), i64>,
) -> Result<(), sqlx::Error> {
    if by_day.is_empty() {
        return Ok(());
    }
    let args = by_day
        .iter()
        .flat_map(|((day, agent, status, reason), ms)| {
            [
                Arg::from(*day),
                Arg::from(*agent),
                Arg::from(*status),
                Arg::from(*reason),
                Arg::from(*ms),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        "INSERT INTO report_presence_days (day, agent, status, reason, ms)",
        5,
        args,
        "ON CONFLICT (day, agent, status, reason) DO UPDATE SET ms = report_presence_days.ms + excluded.ms",
    )
    .await?;
    Ok(())
}

/// One step of a rebuild: copies the next [`CHUNK_DAYS`] days that have hours into the
/// days, or ends the rebuild when no hour is left to copy. Answers whether the days
/// are whole now.
pub async fn rebuild_step(
    conn: &mut Conn,
    zone: &Zone,
    st: &mut State,
) -> Result<bool, sqlx::Error> {
    let Some(from) = st.built_to else {
        return Ok(true);
    };
    let mut next: Option<i64> = None;
    for table in ["report_agent_hours", "report_presence_hours"] {
        let first: Option<i64> =
            sqlx::query_scalar(&format!("SELECT MIN(hour) FROM {table} WHERE hour >= $1"))
                .bind(from)
                .fetch_one(&mut *conn)
                .await?;
        next = match (next, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let Some(next) = next else {
        sqlx::query("UPDATE report_days_state SET built_to = NULL WHERE id = 1")
            .execute(&mut *conn)
            .await?;
        st.built_to = None;
        return Ok(true);
    };
    // Whole local days: the hours before `from` are in the days already, and none lies
    // between `from` and `next`.
    let local = Buckets::DAY.local_start(next + zone.offset_at(next));
    let to = zone.instant_of_local(local + CHUNK_DAYS * DAY_MS);
    let mut day = days_of(zone);

    let measures = MEASURES.join(", ");
    let rows = sqlx::query(&format!(
        "SELECT hour, agent, {measures} FROM report_agent_hours WHERE hour >= $1 AND hour < $2"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut agents: BTreeMap<(i64, String), Sums> = BTreeMap::new();
    for r in &rows {
        let d = agents
            .entry((day(r.try_get("hour")?), r.try_get("agent")?))
            .or_insert([0; N]);
        for (i, m) in MEASURES.iter().enumerate() {
            d[i] += r.try_get::<i64, _>(*m)?;
        }
    }
    let rows = sqlx::query(
        "SELECT hour, agent, status, reason, ms FROM report_presence_hours \
         WHERE hour >= $1 AND hour < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut presence: BTreeMap<(i64, String, String, String), i64> = BTreeMap::new();
    for r in &rows {
        let key = (
            day(r.try_get("hour")?),
            r.try_get("agent")?,
            r.try_get("status")?,
            r.try_get("reason")?,
        );
        *presence.entry(key).or_default() += r.try_get::<i64, _>("ms")?;
    }
    let agents = agents
        .iter()
        .map(|((d, a), s)| ((*d, a.as_str()), *s))
        .collect();
    upsert_contacts(conn, &agents).await?;
    let presence = presence
        .iter()
        .map(|((d, a, s, r), ms)| ((*d, a.as_str(), s.as_str(), r.as_str()), *ms))
        .collect();
    upsert_presence(conn, &presence).await?;
    sqlx::query("UPDATE report_days_state SET built_to = $1 WHERE id = 1")
        .bind(to)
        .execute(&mut *conn)
        .await?;
    st.built_to = Some(to);
    Ok(false)
}

/// The contact measures per day and agent over the days in `[from, to)` (local
/// midnights), in no particular order.
pub async fn report(
    conn: &mut Conn,
    from: i64,
    to: i64,
) -> Result<Vec<super::ReportRow>, sqlx::Error> {
    // The measures nested as one array: serde reads tuples of at most 16.
    let nested = format!(
        "day, agent, {}({})",
        super::json_array(conn),
        MEASURES.join(", ")
    );
    super::json_rows(
        conn,
        &nested,
        "FROM report_agent_days WHERE day >= $1 AND day < $2",
        from,
        to,
    )
    .await
}

/// Time per day, agent, state and reason over the days in `[from, to)`, in no particular
/// order.
pub async fn presence(
    conn: &mut Conn,
    from: i64,
    to: i64,
) -> Result<Vec<super::presence::PresenceRow>, sqlx::Error> {
    super::json_rows(
        conn,
        "day, agent, status, reason, ms",
        "FROM report_presence_days WHERE day >= $1 AND day < $2",
        from,
        to,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::store::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn an_hour_goes_to_its_local_day_across_summer_time() {
        let z = super::super::zone::parse("Europe/Berlin").unwrap();
        // 2026-10-25 has 25 hours in Berlin: from 22:00 UTC the day before to 23:00 UTC.
        assert_eq!(
            day_of(&z, at("2026-10-24T21:00:00Z")),
            at("2026-10-23T22:00:00Z")
        );
        assert_eq!(
            day_of(&z, at("2026-10-24T22:00:00Z")),
            at("2026-10-24T22:00:00Z")
        );
        assert_eq!(
            day_of(&z, at("2026-10-25T22:00:00Z")),
            at("2026-10-24T22:00:00Z")
        );
        assert_eq!(
            day_of(&z, at("2026-10-25T23:00:00Z")),
            at("2026-10-25T23:00:00Z")
        );
        let st = State {
            zone: "Europe/Berlin".into(),
            built_to: Some(at("2026-10-24T22:00:00Z")),
        };
        assert!(st.takes(at("2026-10-24T21:00:00Z")));
        assert!(!st.takes(at("2026-10-24T22:00:00Z")));
        assert!(!st.ready_for("Europe/Berlin"));
    }
}
