//! `POST /api/customers/{id}/erase`: a person removed for good, at their request (GDPR
//! article 17, PIPL article 47). What goes and what stays is
//! [`crate::store::erasure`]'s; here the request is checked, contacts still in progress
//! are refused (or ended first, when asked), and the erasure is committed with an audit
//! entry that says who erased which customer id and when — and what was removed,
//! counted, never what it was.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Admin;
use super::error::{check_id, ApiError, ApiPath, ApiQuery};
use super::AppState;
use crate::routing::router::Ended;
use crate::store::audit::{self, Change};
use crate::store::erasure::{self, Target};
use crate::store::history::{self, NewEvent};
use crate::store::{now_ms, rfc3339, Conn};
use crate::telemetry;

/// The query of `POST /api/customers/{id}/erase`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseQuery {
    /// End the customer's contacts in progress first (waiting ones abandoned, those an
    /// agent holds completed on the agent's behalf); without it they are refused (409).
    #[serde(default)]
    end_open: bool,
}

/// Why an erasure ended a contact.
const ENDED_FOR: &str = "the customer's data was erased";

/// `POST /api/customers/{id}/erase` (`?end_open=true`): 200 with what was removed,
/// counted; 404 unknown; 409 contacts in progress; 410 erased already.
pub async fn erase(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EraseQuery>,
) -> Result<Json<Value>, ApiError> {
    check_id("customer", &id)?;
    let (target, open) = {
        let mut conn = state.store.pool().acquire().await?;
        let target = live_target(&mut conn, &id).await.inspect_err(|e| {
            if matches!(e, ApiError::Gone(_)) {
                telemetry::customer_erased("already_erased");
            }
        })?;
        let open = erasure::open_contacts(&mut conn, &target.ids).await?;
        (target, open)
    };
    if !open.is_empty() && !q.end_open {
        telemetry::customer_erased("refused_in_progress");
        return Err(in_progress(
            &open,
            "end them first, or erase with ?end_open=true to end them now",
        ));
    }
    // Ended one by one through the router, which tells their agents and frees them.
    let mut ended = Vec::new();
    for o in &open {
        let outcome = state
            .router
            .close(&o.interaction_id, ENDED_FOR)
            .await
            .ok_or_else(|| {
                ApiError::Unavailable("the router is restarting; nothing was erased, retry".into())
            })??;
        let as_what = match outcome {
            Ended::Abandoned { .. } => "abandoned",
            Ended::Closed { .. } | Ended::WhileHeld { .. } => "completed",
            Ended::Left => "left",
            Ended::Already | Ended::Unknown => "ended already",
        };
        ended.push(json!({ "interaction_id": o.interaction_id, "channel": o.channel, "was": o.state, "ended": as_what }));
    }
    let elsewhere = erasure::elsewhere(&mut *state.store.pool().acquire().await?, &target).await?;

    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    // Read again in the writer's turn: another erasure, or a new contact, may have come.
    let target = live_target(&mut tx, &id).await?;
    let open = erasure::open_contacts(&mut tx, &target.ids).await?;
    if !open.is_empty() {
        telemetry::customer_erased("refused_in_progress");
        return Err(in_progress(
            &open,
            "still in progress after ending them (a contact that arrived meanwhile, or one the router could not close); erase again",
        ));
    }
    let removed =
        match erasure::erase(&mut tx, state.store.backend(), &target, &elsewhere, now).await {
            Ok(r) => r,
            Err(e) => {
                telemetry::customer_erased("failed");
                return Err(e.into());
            }
        };
    let merged: Vec<&String> = target.ids.iter().skip(1).collect();
    history::append(
        &mut tx,
        [&NewEvent {
            customer_id: target.customer_id.clone(),
            interaction_id: None,
            kind: "customer_erased",
            actor: by.actor.clone(),
            data: json!({}),
        }],
        now,
    )
    .await?;
    let ended_ids: Vec<&Value> = ended.iter().map(|e| &e["interaction_id"]).collect();
    let change = Change::by(
        &by.actor,
        "customer.erase",
        "customer",
        &target.customer_id,
        None,
        Some(json!({ "merged": merged, "ended": ended_ids, "removed": removed })),
    );
    audit::record(&mut tx, &[change], now).await?;
    tx.commit().await?;
    let log_truncated = state.store.truncate_log().await;
    if !log_truncated {
        tracing::warn!("A customer was erased, but the write-ahead log could not be emptied yet: older copies of its pages stay in it until it is; trying again");
        let store = state.store.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                if store.truncate_log().await {
                    tracing::info!("The write-ahead log was emptied after an erasure");
                    return;
                }
            }
            tracing::warn!("The write-ahead log could not be emptied within five minutes of an erasure; it will be at shutdown");
        });
    }
    telemetry::customer_erased("erased");
    tracing::info!(
        interactions = removed.interactions,
        history_events = removed.history_events,
        "A customer was erased"
    );
    Ok(Json(json!({
        "customer_id": target.customer_id,
        "erased_at": rfc3339(now),
        "merged": merged,
        "ended": ended,
        "removed": removed,
        "log_truncated": log_truncated,
    })))
}

/// The customer `id` answers as: 404 when unknown, 410 when erased already.
pub(super) async fn live_target(conn: &mut Conn, id: &str) -> Result<Target, ApiError> {
    let Some(target) = erasure::target(conn, id).await? else {
        return Err(ApiError::NotFound(format!("no customer has the id '{id}'")));
    };
    if let Some(at) = target.erased_at {
        return Err(ApiError::Gone(format!(
            "customer {} was erased at {}: nothing is held about them any more",
            target.customer_id,
            rfc3339(at)
        )));
    }
    Ok(target)
}

/// The 409 for contacts in progress, naming each.
fn in_progress(open: &[erasure::Open], what: &str) -> ApiError {
    ApiError::InProgress {
        message: format!(
            "the customer has {} contact(s) in progress ({}): {what}",
            open.len(),
            open.iter()
                .map(|o| format!("{} {} {}", o.channel, o.state, o.interaction_id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        open: open.iter().map(|o| json!(o)).collect(),
    }
}
