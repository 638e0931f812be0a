//! Canned answers: prepared replies an agent inserts with a shortcut. Shared ones are the
//! admins' (per team and language), audited; personal ones belong to their agent alone.
//! The desktop fills their variables — `{customer_name}`, `{agent_name}`,
//! `{interaction_number}` — as it inserts them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::auth::{Anyone, Principal};
use super::error::{ApiError, ApiJson, ApiPath};
use super::AppState;
use crate::store::{self, agents::Role, now_ms, rfc3339};

/// The variables a canned answer may use.
pub const VARIABLES: [&str; 3] = ["customer_name", "agent_name", "interaction_number"];

/// A canned answer to create or replace.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedBody {
    /// The word typed after `/` or `::` to insert it: letters, digits (any script), `-`
    /// and `_`, up to 32 characters.
    pub shortcut: String,
    /// What it is, as listed.
    pub title: String,
    /// The text inserted; may use `{customer_name}`, `{agent_name}`,
    /// `{interaction_number}`.
    pub body: String,
    /// A language (`en`, `zh-CN`…); none: any.
    #[serde(default)]
    pub language: Option<String>,
    /// A team (a skill); none: everyone. Shared answers only.
    #[serde(default)]
    pub team: Option<String>,
    /// The caller's own answer rather than a shared one (agents' answers always are).
    #[serde(default)]
    pub personal: bool,
}

/// Checks a body; answers it cleaned.
fn checked(b: CannedBody) -> Result<CannedBody, ApiError> {
    let shortcut = b.shortcut.trim().to_lowercase();
    if shortcut.is_empty()
        || shortcut.chars().count() > 32
        || !shortcut
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::field(
            "shortcut",
            "1 to 32 letters, digits, '-' or '_' (no spaces)",
        ));
    }
    let title = b.title.trim().to_string();
    if title.is_empty() || title.chars().count() > 120 || title.contains('\0') {
        return Err(ApiError::field("title", "1 to 120 characters"));
    }
    if b.body.trim().is_empty() || b.body.len() > 16 * 1024 || b.body.contains('\0') {
        return Err(ApiError::field("body", "the text, at most 16 KiB"));
    }
    let mut rest = b.body.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.is_empty()
            && !VARIABLES.contains(&name)
        {
            return Err(ApiError::field(
                "body",
                format!("{{{name}}} is not a variable: use {{customer_name}}, {{agent_name}} or {{interaction_number}}"),
            ));
        }
        rest = &after[close + 1..];
    }
    let short = |field: &str, v: Option<String>| -> Result<Option<String>, ApiError> {
        match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
            Some(s) if s.chars().count() > 32 || s.contains('\0') => {
                Err(ApiError::field(field, "at most 32 characters"))
            }
            other => Ok(other),
        }
    };
    Ok(CannedBody {
        shortcut,
        title,
        body: b.body,
        language: short("language", b.language)?,
        team: short("team", b.team)?,
        personal: b.personal,
    })
}

fn view(r: &sqlx::any::AnyRow) -> Result<Value, sqlx::Error> {
    let owner: Option<String> = r.try_get("owner_agent_id")?;
    Ok(json!({
        "id": r.try_get::<String, _>("id")?,
        "shortcut": r.try_get::<String, _>("shortcut")?,
        "title": r.try_get::<String, _>("title")?,
        "body": r.try_get::<String, _>("body")?,
        "language": r.try_get::<Option<String>, _>("language")?,
        "team": r.try_get::<Option<String>, _>("team")?,
        "personal": owner.is_some(),
        "updated_at": rfc3339(r.try_get("updated_at")?),
    }))
}

const COLUMNS: &str = "id, shortcut, title, body, language, team, owner_agent_id, updated_at";

/// `GET /api/canned`: the shared answers and the caller's own, by shortcut.
pub async fn list(State(state): State<AppState>, who: Anyone) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM canned_answers WHERE owner_agent_id IS NULL OR owner_agent_id = $1 \
         ORDER BY shortcut, language, id LIMIT 2000"
    ))
    .bind(who.0.agent_id.clone().unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?;
    let answers = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "answers": answers, "variables": VARIABLES })))
}

/// Whether `who` may change an answer owned by `owner` (NULL: shared).
fn may_change(who: &Principal, owner: Option<&str>) -> bool {
    match owner {
        None => who.role >= Role::Admin,
        Some(o) => who.agent_id.as_deref() == Some(o),
    }
}

/// `POST /api/canned`: a new answer — shared (admins) or personal (`personal: true`, and
/// every agent's own).
pub async fn create(
    State(state): State<AppState>,
    who: Anyone,
    ApiJson(b): ApiJson<CannedBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = who.0;
    let b = checked(b)?;
    let personal = b.personal || who.role < Role::Admin;
    let owner = if personal {
        Some(who.agent_id.clone().ok_or_else(|| {
            ApiError::field("personal", "the admin token has no answers of its own")
        })?)
    } else {
        None
    };
    if personal && b.team.is_some() {
        return Err(ApiError::field("team", "a personal answer has no team"));
    }
    let id = store::new_id();
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    sqlx::query(
        "INSERT INTO canned_answers (id, shortcut, title, body, language, team, owner_agent_id, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&b.shortcut)
    .bind(&b.title)
    .bind(&b.body)
    .bind(&b.language)
    .bind(&b.team)
    .bind(&owner)
    .bind(&who.actor)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if owner.is_none() {
        let change = store::audit::Change::by(
            &who.actor,
            "canned.create",
            "canned_answer",
            &id,
            None,
            Some(
                json!({ "shortcut": b.shortcut, "title": b.title, "language": b.language, "team": b.team }),
            ),
        );
        store::audit::record(&mut tx, &[change], now).await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(get_one(&state, &id).await?)))
}

async fn get_one(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM canned_answers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no canned answer has the id '{id}'")))?;
    Ok(view(&row)?)
}

/// The owner of answer `id` as the caller may see it; 404 for what it may not see.
async fn owner_of(
    tx: &mut store::Conn,
    who: &Principal,
    id: &str,
) -> Result<Option<String>, ApiError> {
    let row = sqlx::query("SELECT owner_agent_id FROM canned_answers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no canned answer has the id '{id}'")))?;
    let owner: Option<String> = row.try_get("owner_agent_id")?;
    if owner
        .as_deref()
        .is_some_and(|o| who.agent_id.as_deref() != Some(o))
    {
        // Another agent's own answer: not theirs to see.
        return Err(ApiError::NotFound(format!(
            "no canned answer has the id '{id}'"
        )));
    }
    if !may_change(who, owner.as_deref()) {
        return Err(ApiError::Forbidden(
            "shared canned answers are changed by admins".into(),
        ));
    }
    Ok(owner)
}

/// `PUT /api/canned/{id}`: replaces an answer (its owner, or an admin for shared ones).
pub async fn replace(
    State(state): State<AppState>,
    who: Anyone,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<CannedBody>,
) -> Result<Json<Value>, ApiError> {
    let who = who.0;
    let b = checked(b)?;
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    let owner = owner_of(&mut tx, &who, &id).await?;
    if owner.is_some() && b.team.is_some() {
        return Err(ApiError::field("team", "a personal answer has no team"));
    }
    sqlx::query(
        "UPDATE canned_answers SET shortcut = $2, title = $3, body = $4, language = $5, team = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(&id)
    .bind(&b.shortcut)
    .bind(&b.title)
    .bind(&b.body)
    .bind(&b.language)
    .bind(&b.team)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if owner.is_none() {
        let change = store::audit::Change::by(
            &who.actor,
            "canned.update",
            "canned_answer",
            &id,
            None,
            Some(
                json!({ "shortcut": b.shortcut, "title": b.title, "language": b.language, "team": b.team }),
            ),
        );
        store::audit::record(&mut tx, &[change], now).await?;
    }
    tx.commit().await?;
    Ok(Json(get_one(&state, &id).await?))
}

/// `DELETE /api/canned/{id}`.
pub async fn remove(
    State(state): State<AppState>,
    who: Anyone,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let who = who.0;
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    let owner = owner_of(&mut tx, &who, &id).await?;
    sqlx::query("DELETE FROM canned_answers WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if owner.is_none() {
        let change = store::audit::Change::by(
            &who.actor,
            "canned.remove",
            "canned_answer",
            &id,
            None,
            None,
        );
        store::audit::record(&mut tx, &[change], now).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
