//! The retention over the API: what each channel keeps and how far its old content has
//! been removed (`GET /api/retention`), and a run at once (`POST /api/retention/run`).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use switchboard_contract::ChannelKind;

use super::auth::{Admin, Supervisor};
use super::error::ApiError;
use super::AppState;
use crate::store::{retention, rfc3339, FenceError};

/// `GET /api/retention`: per channel, its period (0: kept forever), the time before
/// which its content has been removed, its last run and the contacts whose old content
/// waits for their end.
pub async fn get(State(state): State<AppState>, _: Supervisor) -> Result<Json<Value>, ApiError> {
    let settings = &state.settings.retention;
    let states = retention::states(&mut *state.store.pool().acquire().await?).await?;
    let channels: Vec<Value> = ChannelKind::ALL
        .iter()
        .map(|c| {
            let s = states.iter().find(|s| s.channel == c.as_str());
            json!({
                "channel": c.as_str(),
                "days": settings.days(*c),
                "removed_before": s.map(|s| rfc3339(s.done_before)),
                "last_run_at": s.map(|s| rfc3339(s.last_run_at)),
                "last_removed": s.map_or(0, |s| s.last_removed),
                "deferred": s.map_or(0, |s| s.deferred),
            })
        })
        .collect();
    Ok(Json(json!({
        "interval_mins": settings.interval_mins,
        "channels": channels,
    })))
}

/// `POST /api/retention/run`: runs the retention now, on this node, and answers what it
/// removed per channel (counted). The leader's own runs go on as scheduled.
pub async fn run(State(state): State<AppState>, Admin(by): Admin) -> Result<Json<Value>, ApiError> {
    match crate::retention::run_once(&state.store, &state.settings.retention, false, &by.actor)
        .await
    {
        Ok(run) => Ok(Json(json!(run))),
        Err(FenceError::Store(e)) => {
            crate::telemetry::retention_run("failed");
            Err(e.into())
        }
        // Unfenced: never refused for the lead.
        Err(FenceError::Fenced) => Err(ApiError::Unavailable(
            "the retention could not run here; retry".into(),
        )),
    }
}
