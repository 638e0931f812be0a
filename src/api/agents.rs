//! Agent admin: create, list, change, remove, and reset an agent's login token. A token
//! is shown once, when made; only its SHA-256 is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{Admin, Principal, Supervisor};
use super::error::{check_id, present, ApiError, ApiJson, ApiPath};
use super::AppState;
use crate::customers::identity::{IdentityKind, IdentityParser};
use crate::store::agents::{self as store, AgentRow, CapacityOverride, Role};
use crate::store::audit::{self, Change};
use crate::store::{new_id, now_ms, rfc3339, Conn};

/// The most skills an agent may have.
pub const MAX_SKILLS: usize = 50;

/// The body of `POST /api/agents`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    name: String,
    email: Option<String>,
    extension: Option<String>,
    level: Option<u8>,
    /// `agent` (the default), `supervisor` or `admin`.
    #[serde(default)]
    role: Role,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    capacity: CapacityOverride,
}

/// The body of `PUT /api/agents/{id}`: a field left out stays, `null` clears it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    extension: Option<Option<String>>,
    level: Option<u8>,
    role: Option<Role>,
    skills: Option<Vec<String>>,
    capacity: Option<CapacityOverride>,
}

/// An agent as the API shows it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    id: String,
    name: String,
    email: Option<String>,
    extension: Option<String>,
    level: u8,
    role: Role,
    skills: Vec<String>,
    capacity: CapacityOverride,
    active: bool,
    created_at: String,
    updated_at: String,
}

impl From<AgentRow> for AgentView {
    fn from(a: AgentRow) -> Self {
        AgentView {
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
            id: a.id,
            name: a.name,
            email: a.email,
            extension: a.extension,
            level: a.level,
            role: a.role,
            skills: a.skills,
            capacity: a.capacity,
            active: a.active,
        }
    }
}

/// A new login token and its digest.
fn new_token() -> Result<(String, String), ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok((token.clone(), token_digest(&token)))
}

/// The digest an agent's token is stored and looked up as.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

fn check_email(email: Option<String>) -> Result<Option<String>, ApiError> {
    email
        .map(|e| {
            IdentityParser::default()
                .parse(IdentityKind::Email, &e, "email")
                .map(|i| i.value)
                .map_err(|e| ApiError::field(e.field, e.message))
        })
        .transpose()
}

fn check_extension(extension: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(x) = extension.map(|x| x.trim().to_string()) else {
        return Ok(None);
    };
    if x.is_empty()
        || x.len() > 32
        || !x
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | '+'))
    {
        return Err(ApiError::field(
            "extension",
            "must be 1 to 32 digits (and * # +)",
        ));
    }
    Ok(Some(x))
}

fn check_level(level: u8) -> Result<u8, ApiError> {
    if !(1..=10).contains(&level) {
        return Err(ApiError::field("level", "must be from 1 to 10"));
    }
    Ok(level)
}

fn check_skills(skills: Vec<String>) -> Result<Vec<String>, ApiError> {
    if skills.len() > MAX_SKILLS {
        return Err(ApiError::field("skills", format!("at most {MAX_SKILLS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(skills.len());
    for (i, s) in skills.into_iter().enumerate() {
        let s = s.trim().to_ascii_lowercase();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            });
        if !ok {
            return Err(ApiError::field(
                format!("skills[{i}]"),
                "must be 1 to 64 letters, digits, '.', '-' or '_'",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn check_capacity(c: CapacityOverride) -> Result<CapacityOverride, ApiError> {
    for (name, v) in [
        ("phone", c.phone),
        ("chat", c.chat),
        ("email", c.email),
        ("api", c.api),
    ] {
        if v.is_some_and(|v| v > 100) {
            return Err(ApiError::field(
                format!("capacity.{name}"),
                "must be from 0 to 100",
            ));
        }
    }
    Ok(c)
}

async fn extension_free(
    conn: &mut Conn,
    extension: Option<&str>,
    id: &str,
) -> Result<(), ApiError> {
    if let Some(x) = extension {
        if let Some(other) = store::extension_taken(conn, x, id).await? {
            return Err(ApiError::Conflict {
                field: Some("extension".into()),
                message: format!("extension {x} belongs to agent {other}"),
            });
        }
    }
    Ok(())
}

/// Records a change to an agent in the audit trail, in the caller's transaction.
async fn audit_agent(
    conn: &mut Conn,
    by: &Principal,
    action: &'static str,
    agent_id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), sqlx::Error> {
    audit::record(
        conn,
        &[Change::by(
            &by.actor, action, "agent", agent_id, before, after,
        )],
        now_ms(),
    )
    .await
}

async fn load(conn: &mut Conn, id: &str) -> Result<AgentRow, ApiError> {
    check_id("agent", id)?;
    store::get(conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent has the id '{id}'")))
}

/// `POST /api/agents`: 201 with the agent and its login token (shown only now).
pub async fn create(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiJson(req): ApiJson<CreateAgent>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = now_ms();
    let agent = AgentRow {
        id: new_id(),
        name: check_name(&req.name)?,
        email: check_email(req.email)?,
        extension: check_extension(req.extension)?,
        level: check_level(req.level.unwrap_or(1))?,
        skills: check_skills(req.skills)?,
        role: req.role,
        capacity: check_capacity(req.capacity)?,
        active: true,
        created_at: now,
        updated_at: now,
    };
    let (token, digest) = new_token()?;
    let mut tx = state.store.begin_write().await?;
    extension_free(&mut tx, agent.extension.as_deref(), &agent.id).await?;
    store::insert(&mut tx, &agent, &digest).await?;
    let after = serde_json::to_value(AgentView::from(agent.clone())).ok();
    audit_agent(&mut tx, &by, "agent.create", &agent.id, None, after).await?;
    tx.commit().await?;
    let mut body = serde_json::to_value(AgentView::from(agent)).map_err(anyhow::Error::from)?;
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /api/agents`: every agent, active first.
pub async fn list(State(state): State<AppState>, _: Supervisor) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let agents: Vec<AgentView> = store::list(&mut conn)
        .await?
        .into_iter()
        .map(AgentView::from)
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// `GET /api/agents/{id}`.
pub async fn get(
    State(state): State<AppState>,
    _: Supervisor,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AgentView>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    Ok(Json(load(&mut conn, &id).await?.into()))
}

/// `PUT /api/agents/{id}`: changes the fields given.
pub async fn update(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateAgent>,
) -> Result<Json<AgentView>, ApiError> {
    let mut tx = state.store.begin_write().await?;
    let mut agent = load(&mut tx, &id).await?;
    let before = serde_json::to_value(AgentView::from(agent.clone())).ok();
    if let Some(n) = req.name {
        agent.name = check_name(&n)?;
    }
    if let Some(e) = req.email {
        agent.email = check_email(e)?;
    }
    if let Some(x) = req.extension {
        agent.extension = check_extension(x)?;
    }
    if let Some(l) = req.level {
        agent.level = check_level(l)?;
    }
    if let Some(r) = req.role {
        agent.role = r;
    }
    if let Some(s) = req.skills {
        agent.skills = check_skills(s)?;
    }
    if let Some(c) = req.capacity {
        agent.capacity = check_capacity(c)?;
    }
    agent.updated_at = now_ms();
    extension_free(&mut tx, agent.extension.as_deref(), &agent.id).await?;
    store::update(&mut tx, &agent).await?;
    let after = serde_json::to_value(AgentView::from(agent.clone())).ok();
    audit_agent(&mut tx, &by, "agent.update", &agent.id, before, after).await?;
    tx.commit().await?;
    state.router.agent_changed(agent.clone(), false);
    Ok(Json(agent.into()))
}

/// `DELETE /api/agents/{id}`: the agent can no longer log in or be offered work; the
/// record stays for the history that names it. Customers it owned keep it as owner
/// until reassigned, and their contacts pass over it.
pub async fn remove(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.store.begin_write().await?;
    let mut agent = load(&mut tx, &id).await?;
    if agent.active {
        agent.active = false;
        agent.updated_at = now_ms();
        store::update(&mut tx, &agent).await?;
        audit_agent(&mut tx, &by, "agent.remove", &agent.id, None, None).await?;
    }
    tx.commit().await?;
    state.router.agent_changed(agent, true);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/agents/{id}/token`: a new login token; the old one stops working.
pub async fn reset_token(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (token, digest) = new_token()?;
    let mut tx = state.store.begin_write().await?;
    let agent = load(&mut tx, &id).await?;
    if !agent.active {
        return Err(ApiError::Conflict {
            field: None,
            message: "the agent was removed".into(),
        });
    }
    store::set_token(&mut tx, &agent.id, &digest, now_ms()).await?;
    // The token itself is never recorded.
    audit_agent(&mut tx, &by, "agent.token_reset", &agent.id, None, None).await?;
    tx.commit().await?;
    // Whoever holds the old token is logged out.
    state.router.agent_changed(agent.clone(), true);
    Ok(Json(json!({ "id": agent.id, "token": token })))
}

/// The body of `POST /api/agents/{id}/away`.
#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAway {
    /// Why, shown to the agent.
    reason: Option<String>,
}

/// `POST /api/agents/{id}/away` (supervisors): a logged-in agent is set away; an offer it
/// holds goes to the next agent.
pub async fn set_away(
    State(state): State<AppState>,
    Supervisor(by): Supervisor,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SetAway>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let agent = load(&mut conn, &id).await?;
    drop(conn);
    let reason = req.reason.map(|r| {
        r.chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect::<String>()
    });
    let done = state
        .router
        .set_away(&agent.id, reason.clone())
        .await
        .ok_or_else(|| ApiError::Unavailable("the router is restarting".into()))?;
    if !done {
        return Err(ApiError::Conflict {
            field: None,
            message: "the agent is not logged in".into(),
        });
    }
    let mut tx = state.store.begin_write().await?;
    audit_agent(
        &mut tx,
        &by,
        "agent.set_away",
        &agent.id,
        None,
        Some(json!({ "reason": reason })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "id": agent.id, "presence": "away" })))
}
