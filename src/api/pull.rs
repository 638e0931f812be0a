//! Agents taking waiting contacts themselves, where the rules allow it for the channel
//! (`[pull]`): the team's queue an agent sees, and taking one from it. Push (offers)
//! goes on for every channel; this lets an agent take ahead.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sqlx::Row;

use super::auth::Anyone;
use super::error::{check_id, ApiError, ApiPath};
use super::views::InteractionView;
use super::AppState;
use crate::routing::router::{in_team, Taken};
use crate::store::{bulk, rfc3339};

/// Waiting contacts listed, at most (the oldest first).
const LISTED: i64 = 100;

fn agent_of(who: &Anyone) -> Result<String, ApiError> {
    who.0.agent_id.clone().ok_or_else(|| {
        ApiError::field(
            "token",
            "the admin token has no team of its own: use an agent's token",
        )
    })
}

/// `GET /api/me/team-queue`: the channels the rules let agents take themselves, and the
/// waiting contacts of those channels in the caller's team (their topic is one of its
/// skills, or they have none), oldest first, each saying whether it is on offer now.
pub async fn team_queue(
    State(state): State<AppState>,
    who: Anyone,
) -> Result<Json<Value>, ApiError> {
    let agent_id = agent_of(&who)?;
    let channels: Vec<String> = state
        .services
        .get()
        .rules()
        .pull
        .channels
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    if channels.is_empty() {
        return Ok(Json(json!({ "channels": [], "waiting": [] })));
    }
    let mut conn = state.store.pool().acquire().await?;
    let skills = crate::store::agents::get(&mut conn, &agent_id)
        .await?
        .map(|a| a.skills)
        .unwrap_or_default();
    let sql = format!(
        "SELECT i.id, i.channel, i.tier, i.topic, i.subject, i.state, i.created_at, c.name \
         FROM interactions i JOIN customers c ON c.id = i.customer_id \
         WHERE i.state IN ('queued', 'offered') AND i.channel IN ({}) \
         ORDER BY i.created_at LIMIT {}",
        bulk::list(1, channels.len()),
        LISTED * 5
    );
    let mut query = sqlx::query(&sql);
    for c in &channels {
        query = query.bind(c.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut waiting = Vec::new();
    for r in &rows {
        let topic: Option<String> = r.try_get("topic")?;
        if !in_team(topic.as_deref(), &skills) {
            continue;
        }
        waiting.push(json!({
            "id": r.try_get::<String, _>("id")?,
            "channel": r.try_get::<String, _>("channel")?,
            "tier": r.try_get::<String, _>("tier")?,
            "topic": topic,
            "subject": r.try_get::<Option<String>, _>("subject")?,
            "customer_name": r.try_get::<Option<String>, _>("name")?,
            "waiting_since": rfc3339(r.try_get("created_at")?),
            "on_offer": r.try_get::<String, _>("state")? == "offered",
        }));
        if waiting.len() as i64 == LISTED {
            break;
        }
    }
    Ok(Json(json!({ "channels": channels, "waiting": waiting })))
}

/// `POST /api/interactions/{id}/take`: the caller takes a waiting contact from its team's
/// queue; of several agents taking it at once exactly one gets it (`200` with the
/// interaction), the others a `409` saying why (a colleague took it first, it is on
/// offer, no room…). Written to the history as its `assigned` event, marked
/// `taken_from_queue`, by the agent.
pub async fn take(
    State(state): State<AppState>,
    who: Anyone,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InteractionView>, ApiError> {
    check_id("interaction", &id)?;
    let agent_id = agent_of(&who)?;
    let taken = state
        .router
        .take(&id, &agent_id)
        .await
        .ok_or_else(|| ApiError::Unavailable("the router is restarting; try again".into()))??;
    crate::telemetry::taken_from_queue(match &taken {
        Taken::Taken => "taken",
        Taken::Refused(_) => "refused",
        Taken::Unknown => "unknown",
    });
    match taken {
        Taken::Taken => {
            let mut conn = state.store.pool().acquire().await?;
            super::interactions::view(&mut conn, &id).await
        }
        Taken::Refused(why) => Err(ApiError::Conflict {
            field: None,
            message: why,
        }),
        Taken::Unknown => Err(ApiError::NotFound("no interaction has that id".into())),
    }
}
