//! `POST /api/routing/simulate`: the replay simulator over the API. A window of recorded
//! history is replayed under the active rules and, when given, a candidate rule set;
//! the answer puts both beside what happened live.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::auth::Supervisor;
use super::error::{ApiError, ApiJson};
use super::AppState;
use crate::routing::rules::Rules;
use crate::simulation::{self, Active, Comparison, Refused};
use crate::store::{now_ms, parse_rfc3339};

/// The body of `POST /api/routing/simulate`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateIn {
    /// The window's start (RFC 3339).
    from: String,
    /// The window's end (RFC 3339); at most now.
    to: String,
    /// A candidate rule set: the same TOML document as `config/routing.toml`.
    rules: Option<String>,
    /// Target wait per tier in seconds, for the service level (default: each tier's
    /// target in the active rules: `target_secs`, or `max_wait_secs` under the head-start
    /// order).
    #[serde(default)]
    targets_secs: BTreeMap<String, u64>,
}

/// `POST /api/routing/simulate`: 200 with the comparison; 422 for a candidate that does
/// not validate, an empty or oversized window; 429 while another simulation runs.
pub async fn simulate(
    State(state): State<AppState>,
    _: Supervisor,
    ApiJson(req): ApiJson<SimulateIn>,
) -> Result<Json<Comparison>, ApiError> {
    let time = |field: &str, v: &str| {
        parse_rfc3339(v)
            .ok_or_else(|| ApiError::field(field, format!("'{v}' is not an RFC 3339 time")))
    };
    let (from_ms, to_ms) = (time("from", &req.from)?, time("to", &req.to)?);
    let tiers = &state.settings.tiers.order;
    if let Some(t) = req.targets_secs.keys().find(|t| !tiers.contains(t)) {
        return Err(ApiError::field(
            format!("targets_secs.{t}"),
            format!("there is no tier '{t}'; the tiers are {}", tiers.join(", ")),
        ));
    }
    let candidate = match &req.rules {
        Some(text) => Some(
            Rules::check(text, "the candidate rules", tiers)
                .map(|(rules, _)| rules)
                .map_err(|r| ApiError::InvalidRules {
                    errors: r.errors,
                    warnings: r.warnings,
                })?,
        ),
        None => None,
    };
    // One simulation at a time: its thread is one of the machine's cores.
    let permit = state.simulations.clone().try_acquire_owned().map_err(|_| {
        ApiError::TooManyRequests(
            "a simulation is already running; try again when it has finished".into(),
        )
    })?;
    let active = Active::latest(&state.store, tiers).await?;
    let request = simulation::Request {
        from_ms,
        to_ms,
        candidate,
        targets_secs: req.targets_secs,
    };
    // The replay runs to its end, holding the one permit, even when the client goes away
    // (its thread cannot be stopped early): the next simulation waits for it.
    let (store, settings) = (state.store.clone(), state.settings.clone());
    let run = tokio::spawn(async move {
        let _permit = permit;
        simulation::simulate(&store, &settings.routing, active, request, now_ms()).await
    });
    run.await
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("the simulation task failed: {e}")))?
        .map(Json)
        .map_err(|e| match e {
            Refused::Window { field, message } => ApiError::Unprocessable {
                field: Some(field.into()),
                message,
            },
            Refused::Empty(..) | Refused::TooMany(_) | Refused::TimeLimit(_) => {
                ApiError::Unprocessable {
                    field: None,
                    message: e.to_string(),
                }
            }
            Refused::Store(e) => e.into(),
            Refused::Failed(m) => ApiError::Unexpected(anyhow::anyhow!(m)),
        })
}
