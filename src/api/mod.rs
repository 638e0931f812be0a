//! The HTTP interface: the admin and integration API under `/api`, and the operational
//! endpoints (`/healthz`, `/readyz`, `/metrics`).

mod agent_ws;
mod agents;
mod audit;
pub mod auth;
mod customers;
pub mod error;
mod import;
mod interactions;
mod ops;
mod rules;
mod simulate;
mod supervisor_ws;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::customers::identity::IdentityParser;
use crate::intake::IntakeService;
use crate::queue::Queue;
use crate::store::Store;
use crate::telemetry;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The settings the server started with.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Store,
    /// Where new contacts go.
    pub intake: Arc<IntakeService>,
    /// The waiting interactions.
    pub queue: Arc<Queue>,
    /// Reads identities given to the customer API.
    pub parser: IdentityParser,
    /// The admin token's SHA-256 (the token itself is not kept).
    pub admin_token_sha256: [u8; 32],
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Held while the routing rules change, so changes apply one at a time.
    pub rules_lock: Arc<tokio::sync::Mutex<()>>,
    /// The router.
    pub router: crate::routing::router::RouterHandle,
    /// One permit: simulations run one at a time.
    pub simulations: Arc<tokio::sync::Semaphore>,
}

/// The whole HTTP router.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let import = Router::new()
        .route("/api/customers/import", post(import::import))
        .layer(DefaultBodyLimit::max(settings.api.max_import_bytes));
    let api = Router::new()
        .route("/api/interactions", post(interactions::create))
        .route("/api/interactions/{id}", get(interactions::get))
        .route("/api/interactions/{id}/end", post(interactions::end))
        .route("/api/interactions/{id}/move", post(interactions::move_to))
        .route(
            "/api/customers",
            post(customers::create).get(customers::lookup),
        )
        .route(
            "/api/customers/{id}",
            get(customers::get).put(customers::update),
        )
        .route(
            "/api/customers/{id}/identities/{kind}/{value}",
            delete(customers::remove_identity),
        )
        .route(
            "/api/customers/{id}/purchases/{purchase_ref}",
            put(customers::put_purchase),
        )
        .route("/api/customers/{id}/merge", post(customers::merge))
        .route("/api/customers/{id}/history", get(customers::history))
        .route("/api/agents", post(agents::create).get(agents::list))
        .route(
            "/api/agents/{id}",
            get(agents::get).put(agents::update).delete(agents::remove),
        )
        .route("/api/agents/{id}/token", post(agents::reset_token))
        .route("/api/agents/{id}/away", post(agents::set_away))
        .route("/api/queue", get(queue))
        .route("/api/audit", get(audit::list))
        .route("/api/routing/rules", get(rules::get).put(rules::put))
        .route("/api/routing/rules/validate", post(rules::validate))
        .route("/api/routing/rules/versions", get(rules::versions))
        .route("/api/routing/rules/rollback", post(rules::rollback))
        .route("/api/routing/rules/reload", post(rules::reload))
        .route("/api/routing/simulate", post(simulate::simulate))
        .layer(DefaultBodyLimit::max(settings.api.max_body_bytes))
        .merge(import)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let timeout = Duration::from_secs(settings.server.request_timeout_secs);
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/agent/ws", get(agent_ws::upgrade))
        .route("/supervisor/ws", get(supervisor_ws::upgrade))
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(move |req, next| {
            observe(req, next, timeout)
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The span names the route template, never the concrete path: paths carry
            // customer ids and identities.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .with_state(state)
}

/// `GET /api/queue`: waiting interactions by tier, channel and topic, agents and their
/// states, and the service level per tier over the last 15 minutes.
async fn queue(
    State(state): State<AppState>,
    _: auth::Supervisor,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    state
        .router
        .snapshot()
        .await
        .map(axum::Json)
        .ok_or_else(|| ApiError::Unavailable("the router is restarting".into()))
}

/// Bounds the request's time and counts its answer by route.
async fn observe(req: Request, next: Next, timeout: Duration) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    };
    telemetry::http_answered(
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
    );
    response
}
