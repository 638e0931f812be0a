//! `GET /api/audit`: the audit trail, filtered, newest first.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Supervisor;
use super::error::{ApiError, ApiQuery};
use super::AppState;
use crate::store::audit::{self, Filter};
use crate::store::rfc3339;

/// The filters of `GET /api/audit`.
#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only by this actor (`admin`, an agent's id, `file`).
    actor: Option<String>,
    /// Only this action (`customer.update`), or a family of them ending in `.` (`agent.`).
    action: Option<String>,
    /// Only this kind of target (`customer`, `agent`, `rules`).
    target_kind: Option<String>,
    /// Only this target.
    target_id: Option<String>,
    /// Only at or after this RFC 3339 time.
    since: Option<String>,
    /// Only before this RFC 3339 time.
    until: Option<String>,
    /// The previous page's `next_before`.
    before: Option<i64>,
    /// Entries per page, 1 to 500 (default 100).
    limit: Option<i64>,
}

fn time(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            crate::store::parse_rfc3339(&v)
                .ok_or_else(|| ApiError::field(field, format!("'{v}' is not an RFC 3339 time")))
        })
        .transpose()
}

/// `GET /api/audit`.
pub async fn list(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 500"));
    }
    let filter = Filter {
        actor: q.actor,
        action: q.action,
        target_kind: q.target_kind,
        target_id: q.target_id,
        since: time("since", q.since)?,
        until: time("until", q.until)?,
    };
    let mut conn = state.store.pool().acquire().await?;
    let entries = audit::page(&mut conn, &filter, q.before, limit + 1).await?;
    let more = entries.len() as i64 > limit;
    let entries: Vec<_> = entries.into_iter().take(limit as usize).collect();
    let next_before = if more {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at": rfc3339(e.occurred_at), "actor": e.actor, "action": e.action,
                "target_kind": e.target_kind, "target_id": e.target_id, "before": e.before, "after": e.after,
            })
        })
        .collect();
    Ok(Json(
        json!({ "entries": entries, "next_before": next_before }),
    ))
}
