//! Reports over a date range for the people who run the centre: `GET /api/reports` (JSON),
//! `GET /api/reports.csv` (the same, one row per bucket and slice) and
//! `GET /api/reports/interactions.csv` (one row per contact, streamed page by page).
//! Figures come from the hourly rollups the leader keeps (see `store::reports`), never
//! from scanning the history per request. Days and weeks (from Monday) are in the
//! centre's time zone (`api.report_time_zone`) or the one asked (`tz`); `table` builds
//! the rows. A report by agent or team over days or weeks in the centre's zone, from a
//! local midnight to another, reads the agents' days the rollup keeps in that zone.

mod table;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Supervisor;
use super::error::{ApiError, ApiQuery};
use super::AppState;
use crate::store::parse_rfc3339;
use crate::store::reports::zone::{self, Buckets, Piece, Zone};
use crate::store::reports::{self, days, presence, Only, HOUR_MS};
use table::Plan;

const DAY_MS: i64 = 24 * HOUR_MS;
/// 2000-01-01T00:00:00Z: no report starts earlier (the bucket arithmetic needs a
/// positive local time, and no centre's history is older).
const EARLIEST_MS: i64 = 946_684_800_000;
/// Interactions read per page of the CSV export.
const PAGE: i64 = 1_000;

/// What a report covers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Start: an RFC 3339 time or a date (`2026-11-01`, local midnight); rounded down to
    /// the hour.
    from: Option<String>,
    /// End: an RFC 3339 time (exclusive) or a date (included whole, to the next local
    /// midnight); rounded up to the hour.
    to: Option<String>,
    /// Bucket width: `hour`, `day` (by default) or `week` (from Monday), in the time zone.
    by: Option<String>,
    /// What each bucket is split by: `tier` (by default), `channel`, `topic`, `team` or
    /// `agent`.
    slice: Option<String>,
    /// The time zone of dates, days and weeks (an IANA name such as `Asia/Shanghai`);
    /// `api.report_time_zone` by default.
    tz: Option<String>,
}

/// The range of an interaction listing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionsQuery {
    /// Start, as in the report (contacts that arrived from then).
    from: Option<String>,
    /// End, as in the report (contacts that arrived before then).
    to: Option<String>,
    /// The time zone of the dates, as in the report.
    tz: Option<String>,
}

/// The contacts behind one bar of a report.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillQuery {
    /// Start, as in the report (contacts that arrived from then).
    from: Option<String>,
    /// End, as in the report (contacts that arrived before then).
    to: Option<String>,
    /// The slice the bar is of: `tier`, `channel`, `topic`, `team` or `agent`.
    slice: Option<String>,
    /// The slice's value ('' for none: no topic, no agent, no team).
    value: Option<String>,
    /// Most contacts listed, 1 to 500 (100 by default).
    limit: Option<i64>,
    /// The time zone of the dates, as in the report.
    tz: Option<String>,
}

/// A checked range: `[from, to)` in ms on whole hours.
struct Range {
    from: i64,
    to: i64,
}

/// The zone asked for, or the centre's.
fn zone_of(state: &AppState, tz: &Option<String>) -> Result<Zone, ApiError> {
    match tz {
        Some(name) => zone::parse(name).map_err(|e| ApiError::field("tz", e)),
        None => zone::parse(&state.settings.api.report_time_zone)
            .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("api.report_time_zone: {e}"))),
    }
}

/// A time or a date (midnight in `zone`); a date `to` means the end of that day.
fn parse_time(zone: &Zone, field: &str, value: &str, end: bool) -> Result<i64, ApiError> {
    if let Some(ms) = parse_rfc3339(value) {
        return Ok(ms);
    }
    let date: jiff::civil::Date = value.trim().parse().map_err(|_| {
        ApiError::field(
            field,
            "must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)",
        )
    })?;
    let date = if end {
        date.tomorrow()
            .map_err(|_| ApiError::field(field, "is out of range"))?
    } else {
        date
    };
    zone.midnight(date)
        .ok_or_else(|| ApiError::field(field, "is out of range"))
}

fn range(
    state: &AppState,
    zone: &Zone,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<Range, ApiError> {
    let from = from
        .as_deref()
        .ok_or_else(|| ApiError::field("from", "is required"))?;
    let to = to
        .as_deref()
        .ok_or_else(|| ApiError::field("to", "is required"))?;
    let from = parse_time(zone, "from", from, false)?.div_euclid(HOUR_MS) * HOUR_MS;
    let to = (parse_time(zone, "to", to, true)?.saturating_add(HOUR_MS - 1)).div_euclid(HOUR_MS)
        * HOUR_MS;
    if from < EARLIEST_MS {
        return Err(ApiError::field("from", "must be in 2000 or later"));
    }
    if to <= from {
        return Err(ApiError::field("to", "must be after from"));
    }
    let max = i64::from(state.settings.api.max_report_days);
    if to - from > max * DAY_MS {
        return Err(ApiError::field(
            "to",
            format!("the range may cover at most {max} days (api.max_report_days)"),
        ));
    }
    Ok(Range { from, to })
}

/// A checked report query: the zone, the range and its pieces, the buckets, the slice.
struct Checked {
    zone: Zone,
    range: Range,
    pieces: Vec<Piece>,
    by: &'static str,
    buckets: Buckets,
    slice: &'static str,
    /// Whether the agents' days could serve it: by agent or team, over days or weeks,
    /// in the centre's zone, from a local midnight to another.
    days: bool,
}

impl Checked {
    fn plan(&self) -> Plan<'_> {
        Plan {
            zone: &self.zone,
            pieces: &self.pieces,
            buckets: self.buckets,
            slice: self.slice,
            days: false,
        }
    }
}

/// The centre's zone's name, as the rollup keeps the days in it.
fn centre_zone(state: &AppState) -> Result<String, ApiError> {
    zone::parse(&state.settings.api.report_time_zone)
        .map(|z| z.name().to_string())
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("api.report_time_zone: {e}")))
}

/// A slice by name, `tier` when none is given.
fn slice(name: Option<&str>) -> Result<&'static str, ApiError> {
    match name.unwrap_or("tier") {
        "tier" => Ok("tier"),
        "channel" => Ok("channel"),
        "topic" => Ok("topic"),
        "team" => Ok("team"),
        "agent" => Ok("agent"),
        _ => Err(ApiError::field(
            "slice",
            "must be tier, channel, topic, team or agent",
        )),
    }
}

fn check(state: &AppState, q: &ReportQuery) -> Result<Checked, ApiError> {
    let zone = zone_of(state, &q.tz)?;
    let range = range(state, &zone, &q.from, &q.to)?;
    let (by, buckets) = match q.by.as_deref().unwrap_or("day") {
        "hour" => ("hour", Buckets::HOUR),
        "day" => ("day", Buckets::DAY),
        "week" => ("week", Buckets::WEEK),
        _ => return Err(ApiError::field("by", "must be hour, day or week")),
    };
    let slice = slice(q.slice.as_deref())?;
    let pieces = zone
        .pieces(range.from, range.to)
        .map_err(|e| ApiError::field("tz", e))?;
    let days = matches!(slice, "agent" | "team")
        && by != "hour"
        && zone.name() == centre_zone(state)?
        && days::day_of(&zone, range.from) == range.from
        && days::day_of(&zone, range.to) == range.to;
    Ok(Checked {
        zone,
        range,
        pieces,
        by,
        buckets,
        slice,
        days,
    })
}

async fn table(state: &AppState, c: &Checked) -> Result<table::Table, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let mut plan = c.plan();
    // The days serve once built for this zone; until then the hours do.
    plan.days = c.days && days::state(&mut conn).await?.ready_for(c.zone.name());
    Ok(table::build(&mut conn, &plan, now).await?)
}

/// Whether every recorded history event and presence change is counted yet, and the
/// agents' days are whole in the centre's zone.
async fn up_to_date(state: &AppState) -> Result<bool, ApiError> {
    let zone = centre_zone(state)?;
    let mut conn = state.store.pool().acquire().await?;
    Ok(
        reports::cursor(&mut conn).await? >= reports::last_seq(&mut conn).await?
            && presence::cursor(&mut conn).await? >= presence::last_seq(&mut conn).await?
            && days::state(&mut conn).await?.ready_for(&zone),
    )
}

/// `GET /api/reports`: per bucket and slice, the centre's figures.
pub async fn get(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = check(&state, &q)?;
    let up_to_date = up_to_date(&state).await?;
    let people = c.plan().of_people();
    let rows: Vec<Value> = table(&state, &c)
        .await?
        .iter()
        .map(|((bucket, value), line)| {
            let mut row = Map::new();
            row.insert("bucket".into(), json!(c.zone.rfc3339(*bucket)));
            row.insert("bucket_end".into(), json!(c.zone.rfc3339(line.end)));
            row.insert(c.slice.into(), json!(value));
            for (k, v) in table::figures(line, people) {
                row.insert(k.into(), v);
            }
            if people {
                row.insert("away_reasons".into(), table::away_reasons(line));
            }
            Value::Object(row)
        })
        .collect();
    Ok(Json(json!({
        "from": c.zone.rfc3339(c.range.from), "to": c.zone.rfc3339(c.range.to), "by": c.by,
        "slice": c.slice, "time_zone": c.zone.name(), "up_to_date": up_to_date, "rows": rows,
    })))
}

fn csv_response(name: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Writes one CSV record to bytes.
fn record<I, T>(fields: I) -> Result<Vec<u8>, csv::Error>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields)?;
    w.into_inner().map_err(|e| e.into_error().into())
}

/// `GET /api/reports.csv`: the report, one row per bucket and slice.
pub async fn csv(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let c = check(&state, &q)?;
    let people = c.plan().of_people();
    let rows = table(&state, &c).await?;
    let mut out = record(["bucket", c.slice].into_iter().chain(table::names(people)))
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    for ((bucket, value), line) in &rows {
        let cells = [c.zone.rfc3339(*bucket), value.clone()].into_iter().chain(
            table::figures(line, people)
                .into_iter()
                .map(|(_, v)| match v {
                    Value::Null => String::new(),
                    v => v.to_string(),
                }),
        );
        out.extend(record(cells).map_err(|e| ApiError::Unexpected(e.into()))?);
    }
    Ok(csv_response("report.csv", Body::from(out)))
}

/// `GET /api/reports/interactions.csv`: one row per contact that arrived in the range,
/// with its times and outcome, streamed a page at a time.
pub async fn interactions_csv(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<InteractionsQuery>,
) -> Result<Response, ApiError> {
    let zone = zone_of(&state, &q.tz)?;
    let r = range(&state, &zone, &q.from, &q.to)?;
    let head = record(reports::INTERACTION_COLUMNS).map_err(|e| ApiError::Unexpected(e.into()))?;
    let store = state.store.clone();
    // The state: the header still to send, then the key after which the next page starts.
    let start = (Some(head), Some((r.from - 1, String::new())));
    let pages = futures_util::stream::unfold(start, move |(head, after)| {
        let store = store.clone();
        async move {
            if let Some(head) = head {
                return Some((Ok(bytes::Bytes::from(head)), (None, after)));
            }
            let (at, id) = after?;
            let page = async {
                let mut conn = store.pool().acquire().await?;
                reports::interactions_page(&mut conn, (at, &id), r.to, PAGE, Only::All).await
            }
            .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    // The header is gone: the client sees a cut-off download, and the log why.
                    tracing::warn!(error = %e, "The interaction export could not read a page");
                    return Some((Err(std::io::Error::other(e)), (None, None)));
                }
            };
            let next = (page.len() as i64 == PAGE)
                .then(|| page.last().map(|p| (p.created_at, p.id.clone())))
                .flatten();
            let mut out = Vec::new();
            for p in &page {
                match record(p.cells()) {
                    Ok(b) => out.extend(b),
                    Err(e) => return Some((Err(std::io::Error::other(e)), (None, None))),
                }
            }
            if out.is_empty() {
                return None;
            }
            Some((Ok(bytes::Bytes::from(out)), (None, next)))
        }
    });
    Ok(csv_response("interactions.csv", Body::from_stream(pages)))
}

/// `GET /api/reports/interactions`: the contacts behind a bar, those that arrived in the
/// range with the slice's value (for an agent: those the agent holds or last held; for a
/// team: those its agents hold or last held, or for '' those no agent in a team holds), in
/// arrival order, as JSON.
pub async fn interactions(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<DrillQuery>,
) -> Result<Json<Value>, ApiError> {
    let zone = zone_of(&state, &q.tz)?;
    let r = range(&state, &zone, &q.from, &q.to)?;
    let slice = slice(q.slice.as_deref())?;
    let value = q
        .value
        .as_deref()
        .ok_or_else(|| ApiError::field("value", "is required"))?;
    if value.len() > 200 {
        return Err(ApiError::field("value", "must be at most 200 bytes"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 500"));
    }
    let mut conn = state.store.pool().acquire().await?;
    let members: Vec<String> = if slice == "team" {
        let teams = table::teams(&mut conn).await?;
        teams
            .into_iter()
            .filter(|(_, t)| t.iter().any(|t| t == value) || (value.is_empty() && t.is_empty()))
            .map(|(a, _)| a)
            .collect()
    } else {
        Vec::new()
    };
    let only = match slice {
        "team" => Only::AgentIn(&members, value.is_empty()),
        _ => Only::Is(slice, value),
    };
    let mut page =
        reports::interactions_page(&mut conn, (r.from - 1, ""), r.to, limit + 1, only).await?;
    let more = page.len() as i64 > limit;
    page.truncate(limit as usize);
    let lines: Vec<Value> = page
        .iter()
        .map(|p| {
            let cells = p.cells();
            let obj: Map<String, Value> = reports::INTERACTION_COLUMNS
                .iter()
                .zip(cells)
                .map(|(k, v)| {
                    let v = if v.is_empty() { Value::Null } else { json!(v) };
                    (k.to_string(), v)
                })
                .collect();
            Value::Object(obj)
        })
        .collect();
    Ok(Json(json!({
        "from": zone.rfc3339(r.from), "to": zone.rfc3339(r.to), "slice": slice, "value": value,
        "interactions": lines, "more": more,
    })))
}
