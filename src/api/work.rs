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

/// The body of `PUT /api/me/signature`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Added below each mail reply as it is begun; empty: none. At most 2,000 characters.
    pub signature: String,
}

/// `GET /api/me/signature`: the caller's mail signature.
pub async fn signature(
    State(state): State<AppState>,
    who: Anyone,
) -> Result<Json<Value>, ApiError> {
    let agent_id = own(&who)?;
    let mut conn = state.store.pool().acquire().await?;
    let row = sqlx::query("SELECT signature FROM agents WHERE id = $1")
        .bind(&agent_id)
        .fetch_optional(&mut *conn)
        .await?;
    let signature: Option<String> = match row {
        Some(r) => r.try_get("signature")?,
        None => None,
    };
    Ok(Json(json!({ "signature": signature.unwrap_or_default() })))
}

/// `PUT /api/me/signature`: sets it.
pub async fn set_signature(
    State(state): State<AppState>,
    who: Anyone,
    super::error::ApiJson(s): super::error::ApiJson<Signature>,
) -> Result<Json<Value>, ApiError> {
    let agent_id = own(&who)?;
    let text = s.signature.replace('\0', "");
    if text.chars().count() > 2000 {
        return Err(ApiError::field("signature", "at most 2,000 characters"));
    }
    let text = text.trim_end().to_string();
    let mut tx = state.store.begin_write().await?;
    sqlx::query("UPDATE agents SET signature = $2 WHERE id = $1")
        .bind(&agent_id)
        .bind(if text.is_empty() {
            None
        } else {
            Some(text.clone())
        })
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(json!({ "signature": text })))
}

/// The caller's agent id; the admin token has none.
fn own(who: &Anyone) -> Result<String, ApiError> {
    who.0.agent_id.clone().ok_or_else(|| {
        ApiError::field(
            "token",
            "the admin token has no work of its own: use an agent's token",
        )
    })
}

/// `POST /api/interactions/{id}/files?name=…`: a file the agent holding the interaction
/// attaches to its next mail reply (the body is the file; its `Content-Type` kept).
/// Answers its id, named in the reply's `attachments`.
pub async fn upload(
    State(state): State<AppState>,
    who: Anyone,
    super::error::ApiPath(id): super::error::ApiPath<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    req: axum::extract::Request,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let name: String = q
        .get("name")
        .map(|n| {
            n.trim()
                .chars()
                .filter(|c| !c.is_control() && !matches!(c, '/' | '\\'))
                .take(200)
                .collect()
        })
        .filter(|n: &String| !n.is_empty())
        .ok_or_else(|| ApiError::field("name", "the file's name, such as invoice.pdf"))?;
    let content_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.parse::<mime_guard::Check>().is_ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let data = super::error::read_body(req, &state).await?;
    if data.is_empty() {
        return Err(ApiError::field("body", "the file is empty"));
    }
    let mut tx = state.store.begin_write().await?;
    let row = store::interactions::get(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no interaction has the id '{id}'")))?;
    let holds = row.state == "assigned" && row.agent_id == who.0.agent_id;
    if !holds {
        // An agent learns nothing of interactions it does not hold.
        return Err(if who.0.role == store::agents::Role::Agent {
            ApiError::NotFound(format!("no interaction has the id '{id}'"))
        } else {
            ApiError::Conflict {
                field: None,
                message: "files are attached by the agent holding the interaction".into(),
            }
        });
    }
    let file_id = format!("out-{}", store::new_id());
    sqlx::query(
        "INSERT INTO attachments (id, interaction_id, name, content_type, size, data, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&file_id)
    .bind(&id)
    .bind(&name)
    .bind(&content_type)
    .bind(data.len() as i64)
    .bind(data.to_vec())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(
            json!({ "id": file_id, "name": name, "content_type": content_type, "size": data.len() }),
        ),
    ))
}

/// A content type as a header may carry it: `type/subtype` and parameters, printable.
mod mime_guard {
    pub struct Check;
    impl std::str::FromStr for Check {
        type Err = ();
        fn from_str(s: &str) -> Result<Check, ()> {
            let main = s.split(';').next().unwrap_or_default().trim();
            let ok = s.len() <= 200
                && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                && main
                    .split_once('/')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
            if ok {
                Ok(Check)
            } else {
                Err(())
            }
        }
    }
}
