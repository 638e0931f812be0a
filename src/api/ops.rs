//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

/// 200 while the process serves HTTP.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// 200 when the store answers and its migrations are applied; 503 otherwise (a node
/// that lost its database takes nothing it could not commit). Says the node's role: a
/// single node, or a cluster's leader or follower (every role serves every channel).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (role, node) = match &state.cluster {
        Some(c) => (json!(c.role()), json!({ "id": c.node(), "url": c.url() })),
        None => (json!({ "role": "single" }), json!(null)),
    };
    match state.store.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "role": role, "node": node,
                         "queued": state.router.is_local().then(|| state.queue.len()) })),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "not_ready", "error": "unavailable", "message": why,
                         "role": role, "node": node }),
            ),
        ),
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
