//! The routing rules over the API: read the active version, validate a candidate, apply
//! one (a new version, applied at once to what is waiting), list versions, roll back.
//! Rules travel as the same TOML document as `config/routing.toml`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Admin, Supervisor};
use super::error::{read_body, ApiError, ApiJson, ApiQuery};
use super::AppState;
use crate::routing::rules::{Report, Rules};
use crate::routing::versions::FileError;
use crate::store::{self, now_ms, rfc3339};

/// Reads a TOML (or plain text) body.
async fn document(state: &AppState, req: Request) -> Result<String, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(
        content_type.as_str(),
        "application/toml" | "text/plain" | "text/x-toml"
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "send the rules as TOML, with Content-Type: application/toml".into(),
        ));
    }
    let body = read_body(req, state).await?;
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest {
        field: None,
        message: "the rules are not UTF-8 text".into(),
    })
}

fn invalid(report: Report) -> ApiError {
    ApiError::InvalidRules {
        errors: report.errors,
        warnings: report.warnings,
    }
}

/// `GET /api/routing/rules`: the active version.
pub async fn get(State(state): State<AppState>, _: Supervisor) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let v = store::rules::latest(&mut conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("no rules are stored yet".into()))?;
    Ok(Json(json!({
        "version": v.version, "actor": v.actor, "comment": v.comment, "created_at": rfc3339(v.created_at), "document": v.document,
    })))
}

/// `POST /api/routing/rules/validate`: every error with its location, and warnings;
/// changes nothing.
pub async fn validate(
    State(state): State<AppState>,
    _: Supervisor,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let text = document(&state, req).await?;
    let report = match Rules::check(&text, "the rules", &state.settings.tiers.order) {
        Ok((_, report)) => report,
        Err(report) => report,
    };
    Ok(Json(
        json!({ "valid": report.errors.is_empty(), "errors": report.errors, "warnings": report.warnings }),
    ))
}

/// Why a change is made, in the query string.
#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    comment: Option<String>,
}

/// `PUT /api/routing/rules?comment=…`: a valid document becomes the next version and
/// applies at once, to interactions already waiting too; an invalid one is refused whole
/// (422, every error listed) and nothing changes.
pub async fn put(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiQuery(c): ApiQuery<Comment>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let text = document(&state, req).await?;
    apply(&state, by.actor, text, c.comment).await
}

/// The body of `POST /api/routing/rules/rollback`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version to return to.
    version: i64,
}

/// `POST /api/routing/rules/rollback`: an earlier version's document becomes the next
/// version.
pub async fn rollback(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiJson(req): ApiJson<Rollback>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let old = store::rules::get(&mut conn, req.version)
        .await?
        .ok_or_else(|| {
            ApiError::field("version", format!("there is no version {}", req.version))
        })?;
    drop(conn);
    apply(
        &state,
        by.actor,
        old.document,
        Some(format!("rollback to version {}", req.version)),
    )
    .await
}

pub(super) async fn apply(
    state: &AppState,
    actor: String,
    text: String,
    comment: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let (rules, report) =
        Rules::check(&text, "the rules", &state.settings.tiers.order).map_err(invalid)?;
    let comment: Option<String> =
        comment.map(|c| c.chars().filter(|c| !c.is_control()).take(500).collect());
    // The commit and the hand-over to the router run to the end even if the request
    // times out, so the router never routes by an older version than the store's newest.
    let state = state.clone();
    let task = tokio::spawn(async move {
        let _one_at_a_time = state.rules_lock.lock().await;
        let mut tx = state.store.begin_write().await?;
        let version =
            store::rules::add(&mut tx, &text, &actor, comment.as_deref(), now_ms()).await?;
        let after = json!({ "version": version, "comment": comment });
        let change = store::audit::Change::by(
            &actor,
            "rules.apply",
            "rules",
            &version.to_string(),
            None,
            Some(after),
        );
        store::audit::record(&mut tx, &[change], now_ms()).await?;
        tx.commit().await?;
        let rules = Arc::new(rules);
        state.services.set(version, rules.clone());
        state.router.set_rules(rules, version);
        Ok::<i64, sqlx::Error>(version)
    });
    let version = task
        .await
        .map_err(|e| anyhow::anyhow!("the rules task failed: {e}"))??;
    Ok(Json(
        json!({ "version": version, "warnings": report.warnings }),
    ))
}

/// `GET /api/routing/rules/versions`: every version, newest first, without documents.
pub async fn versions(
    State(state): State<AppState>,
    _: Supervisor,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let all: Vec<Value> = store::rules::all(&mut conn)
        .await?
        .into_iter()
        .map(|v| json!({ "version": v.version, "actor": v.actor, "comment": v.comment, "created_at": rfc3339(v.created_at) }))
        .collect();
    Ok(Json(json!({ "versions": all })))
}

/// `POST /api/routing/rules/reload`: reads the rules file again (as SIGHUP does); if it
/// changed, it becomes the next version and applies at once.
pub async fn reload(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    // Run to the end even if the request times out: a version committed must reach the
    // router.
    let task = tokio::spawn(async move {
        let s = &state.settings;
        crate::routing::versions::reload(
            &state.store,
            s.routing.path(),
            &s.tiers.order,
            &state.router,
            &state.services,
            &state.rules_lock,
        )
        .await
    });
    match task
        .await
        .map_err(|e| anyhow::anyhow!("the reload task failed: {e}"))?
    {
        Ok((version, changed)) => Ok(Json(json!({ "version": version, "changed": changed }))),
        Err(FileError::Invalid(errors)) => Err(ApiError::InvalidRules {
            errors,
            warnings: Vec::new(),
        }),
        Err(FileError::Store(e)) => Err(e.into()),
    }
}
