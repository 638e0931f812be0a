//! An agent's own work: its open conversations (most urgent first) and those it completed
//! lately, and the colleagues it can hand work to.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sqlx::Row;

use super::auth::Anyone;
use super::error::ApiError;
use super::service::deadline_json;
use super::AppState;
use crate::store::{self, now_ms, rfc3339};

/// Completed work shown, at most.
const RECENT: i64 = 50;
/// How far back completed work is shown.
const RECENT_MS: i64 = 7 * 86_400_000;

/// `GET /api/me/work`: the caller's open conversations — assigned to it, most urgent
/// first (the earliest due target, then the longest held) — and those it completed in
/// the last seven days, newest first; each with its customer's name, subject, channel,
/// tier, when it last changed and its open targets.
pub async fn mine(State(state): State<AppState>, who: Anyone) -> Result<Json<Value>, ApiError> {
    let Some(agent_id) = who.0.agent_id else {
        return Err(ApiError::field(
            "token",
            "the admin token has no work of its own: use an agent's token",
        ));
    };
    let mut conn = state.store.pool().acquire().await?;
    let select = "SELECT i.id, i.channel, i.tier, i.topic, i.subject, i.state, i.created_at, \
                  i.updated_at, i.complaint_id, c.name FROM interactions i \
                  JOIN customers c ON c.id = i.customer_id WHERE i.agent_id = $1";
    let open = sqlx::query(&format!(
        "{select} AND i.state = 'assigned' ORDER BY i.updated_at LIMIT 500"
    ))
    .bind(&agent_id)
    .fetch_all(&mut *conn)
    .await?;
    let recent = sqlx::query(&format!(
        "{select} AND i.state = 'completed' AND i.updated_at >= $2 ORDER BY i.updated_at DESC LIMIT $3"
    ))
    .bind(&agent_id)
    .bind(now_ms() - RECENT_MS)
    .bind(RECENT)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = open
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
    let mut due: HashMap<String, Vec<store::service::DeadlineRow>> = HashMap::new();
    for d in store::service::deadlines_of(&mut conn, &ids).await? {
        due.entry(d.interaction_id.clone()).or_default().push(d);
    }
    let view = |r: &sqlx::any::AnyRow,
                due: Option<&Vec<store::service::DeadlineRow>>|
     -> Result<(Option<i64>, Value), sqlx::Error> {
        let targets: Vec<&store::service::DeadlineRow> = due
            .into_iter()
            .flatten()
            .filter(|d| matches!(d.state.as_str(), "pending" | "warned" | "breached"))
            .collect();
        let first_due = targets
            .iter()
            .filter_map(|d| d.due_at)
            .filter(|t| *t < i64::MAX)
            .min();
        Ok((
            first_due,
            json!({
                "id": r.try_get::<String, _>("id")?,
                "channel": r.try_get::<String, _>("channel")?,
                "tier": r.try_get::<String, _>("tier")?,
                "topic": r.try_get::<Option<String>, _>("topic")?,
                "subject": r.try_get::<Option<String>, _>("subject")?,
                "state": r.try_get::<String, _>("state")?,
                "customer_name": r.try_get::<Option<String>, _>("name")?,
                "complaint": r.try_get::<Option<String>, _>("complaint_id")?.is_some(),
                "created_at": rfc3339(r.try_get("created_at")?),
                "updated_at": rfc3339(r.try_get("updated_at")?),
                "due_at": first_due.map(rfc3339),
                "deadlines": targets.iter().map(|d| deadline_json(d)).collect::<Vec<_>>(),
            }),
        ))
    };
    let mut open_views = Vec::with_capacity(open.len());
    for r in &open {
        let id: String = r.try_get("id")?;
        open_views.push(view(r, due.get(&id))?);
    }
    // Most urgent first: a due target before none, the earliest first; then the longest
    // held (the order read).
    open_views.sort_by_key(|(d, _)| d.unwrap_or(i64::MAX));
    let recent_views = recent
        .iter()
        .map(|r| view(r, None).map(|(_, v)| v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "open": open_views.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "recent": recent_views,
    })))
}

/// `GET /api/colleagues`: the active agents anyone logged in can hand work to: id,
/// name, skills and level (no addresses, no tokens).
pub async fn colleagues(State(state): State<AppState>, _: Anyone) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let agents: Vec<Value> = store::agents::list(&mut conn)
        .await?
        .into_iter()
        .filter(|a| a.active)
        .map(|a| json!({ "id": a.id, "name": a.name, "skills": a.skills, "level": a.level }))
        .collect();
    Ok(Json(json!({ "agents": agents })))
}
