//! Reports over a date range for the people who run the centre: `GET /api/reports` (JSON),
//! `GET /api/reports.csv` (the same, one row per bucket and slice) and
//! `GET /api/reports/interactions.csv` (one row per contact, streamed page by page).
//! Figures come from the hourly rollups the leader keeps (see `store::reports`), never
//! from scanning the history per request. Buckets are in UTC; weeks start on Monday.

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
use crate::store::reports::{self, Sums, HOUR_MS};
use crate::store::{parse_rfc3339, rfc3339};

const DAY_MS: i64 = 24 * HOUR_MS;
/// The epoch was a Thursday: weeks start four days later, on a Monday.
const MONDAY_MS: i64 = 4 * DAY_MS;
/// Interactions read per page of the CSV export.
const PAGE: i64 = 1_000;

/// What a report covers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Start: an RFC 3339 time or a date (`2026-11-01`, midnight UTC); rounded down to
    /// the hour.
    from: Option<String>,
    /// End: an RFC 3339 time (exclusive) or a date (included whole, to the next
    /// midnight UTC); rounded up to the hour.
    to: Option<String>,
    /// Bucket width: `hour`, `day` (by default) or `week` (from Monday), in UTC.
    by: Option<String>,
    /// What each bucket is split by: `tier` (by default), `channel`, `topic` or `agent`.
    slice: Option<String>,
}

/// The range of an interaction listing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionsQuery {
    /// Start, as in the report (contacts that arrived from then).
    from: Option<String>,
    /// End, as in the report (contacts that arrived before then).
    to: Option<String>,
}

/// The contacts behind one bar of a report.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillQuery {
    /// Start, as in the report (contacts that arrived from then).
    from: Option<String>,
    /// End, as in the report (contacts that arrived before then).
    to: Option<String>,
    /// The slice the bar is of: `tier`, `channel`, `topic` or `agent`.
    slice: Option<String>,
    /// The slice's value ('' for none: no topic, no agent).
    value: Option<String>,
    /// Most contacts listed, 1 to 500 (100 by default).
    limit: Option<i64>,
}

/// A checked range: `[from, to)` in ms on whole hours.
struct Range {
    from: i64,
    to: i64,
}

/// A time or a date; a date `to` means the end of that day.
fn parse_time(field: &str, value: &str, end: bool) -> Result<i64, ApiError> {
    if let Some(ms) = parse_rfc3339(value) {
        return Ok(ms);
    }
    let date: jiff::civil::Date = value.trim().parse().map_err(|_| {
        ApiError::field(
            field,
            "must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)",
        )
    })?;
    let ms = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| ApiError::field(field, "is out of range"))?
        .timestamp()
        .as_millisecond();
    Ok(if end { ms + DAY_MS } else { ms })
}

fn range(state: &AppState, from: &Option<String>, to: &Option<String>) -> Result<Range, ApiError> {
    let from = from
        .as_deref()
        .ok_or_else(|| ApiError::field("from", "is required"))?;
    let to = to
        .as_deref()
        .ok_or_else(|| ApiError::field("to", "is required"))?;
    let from = parse_time("from", from, false)?.div_euclid(HOUR_MS) * HOUR_MS;
    let to = (parse_time("to", to, true)? + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS;
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

/// A checked report query: the range, the bucket width and alignment, the slice.
struct Checked {
    range: Range,
    by: &'static str,
    width: i64,
    offset: i64,
    slice: &'static str,
}

/// A slice by name, `tier` when none is given.
fn slice(name: Option<&str>) -> Result<&'static str, ApiError> {
    match name.unwrap_or("tier") {
        "tier" => Ok("tier"),
        "channel" => Ok("channel"),
        "topic" => Ok("topic"),
        "agent" => Ok("agent"),
        _ => Err(ApiError::field(
            "slice",
            "must be tier, channel, topic or agent",
        )),
    }
}

fn check(state: &AppState, q: &ReportQuery) -> Result<Checked, ApiError> {
    let range = range(state, &q.from, &q.to)?;
    let (by, width, offset) = match q.by.as_deref().unwrap_or("day") {
        "hour" => ("hour", HOUR_MS, 0),
        "day" => ("day", DAY_MS, 0),
        "week" => ("week", 7 * DAY_MS, MONDAY_MS),
        _ => return Err(ApiError::field("by", "must be hour, day or week")),
    };
    let slice = slice(q.slice.as_deref())?;
    Ok(Checked {
        range,
        by,
        width,
        offset,
        slice,
    })
}

/// A mean, or none of nothing.
fn mean(sum: i64, n: i64, scale: f64) -> Option<f64> {
    (n > 0).then(|| sum as f64 / n as f64 / scale)
}

/// The figures of one bucket, named as the report states them.
fn figures(s: &Sums) -> Vec<(&'static str, Value)> {
    let [received, answered, within, answer_ms, abandoned, abandoned_ms, completed, handling_ms, transfers, callbacks, csat_n, csat_sum, targeted] =
        *s;
    vec![
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
        ("transfers", json!(transfers)),
        ("callbacks", json!(callbacks)),
        ("csat_average", json!(mean(csat_sum, csat_n, 1.0))),
        ("csat_count", json!(csat_n)),
    ]
}

async fn rows(state: &AppState, c: &Checked) -> Result<Vec<reports::ReportRow>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    Ok(reports::report(
        &mut conn,
        c.slice,
        c.range.from,
        c.range.to,
        c.width,
        c.offset,
    )
    .await?)
}

/// `GET /api/reports`: per bucket and slice, the centre's figures.
pub async fn get(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = check(&state, &q)?;
    let up_to_date = {
        let mut conn = state.store.pool().acquire().await?;
        reports::cursor(&mut conn).await? >= reports::last_seq(&mut conn).await?
    };
    let rows: Vec<Value> = rows(&state, &c)
        .await?
        .iter()
        .map(|(bucket, value, sums)| {
            let mut row = Map::new();
            row.insert("bucket".into(), json!(rfc3339(*bucket)));
            row.insert(c.slice.into(), json!(value));
            for (k, v) in figures(sums) {
                row.insert(k.into(), v);
            }
            Value::Object(row)
        })
        .collect();
    Ok(Json(json!({
        "from": rfc3339(c.range.from), "to": rfc3339(c.range.to), "by": c.by,
        "slice": c.slice, "time_zone": "UTC", "up_to_date": up_to_date, "rows": rows,
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
    let rows = rows(&state, &c).await?;
    let names: Vec<&str> = figures(&[0; 13]).iter().map(|(k, _)| *k).collect();
    let mut out = record(["bucket", c.slice].into_iter().chain(names))
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    for (bucket, value, sums) in &rows {
        let cells =
            [rfc3339(*bucket), value.clone()]
                .into_iter()
                .chain(figures(sums).into_iter().map(|(_, v)| match v {
                    Value::Null => String::new(),
                    v => v.to_string(),
                }));
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
    let r = range(&state, &q.from, &q.to)?;
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
                reports::interactions_page(&mut conn, (at, &id), r.to, PAGE, None).await
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
/// range with the slice's value (for an agent: those the agent holds or last held), in
/// arrival order, as JSON.
pub async fn interactions(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<DrillQuery>,
) -> Result<Json<Value>, ApiError> {
    let r = range(&state, &q.from, &q.to)?;
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
    let mut page = reports::interactions_page(
        &mut conn,
        (r.from - 1, ""),
        r.to,
        limit + 1,
        Some((slice, value)),
    )
    .await?;
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
        "from": rfc3339(r.from), "to": rfc3339(r.to), "slice": slice, "value": value,
        "interactions": lines, "more": more,
    })))
}
