//! The API channel: other systems (a CRM, a web form, a callback request) create
//! contacts here, and anyone with the admin token reads them back.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use switchboard_contract::{ChannelKind, CustomerHint, NewInteraction};

use super::auth::{Admin, Anyone, Principal, Supervisor};
use super::error::{check_id, ApiError, ApiJson, ApiPath, ApiQuery};
use super::views::InteractionView;
use super::AppState;
use crate::routing::router::{Ended, Moved};
use crate::store::agents::Role;
use crate::store::audit::Change;
use crate::store::{history, interactions, new_id};

/// The body of `POST /api/interactions`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInteraction {
    /// The same key twice is one interaction (the `Idempotency-Key` header does the same).
    idempotency_key: Option<String>,
    /// Who the customer is: at least one of email, phone, visitor_id, external_id.
    customer: CustomerHint,
    topic: Option<String>,
    subject: Option<String>,
    body: Option<String>,
}

/// `POST /api/interactions`: 201 with the new interaction once it is committed and
/// queued; 200 with the same interaction when its idempotency key was seen before.
pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateInteraction>,
) -> Result<Response, ApiError> {
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let key = match (header_key, req.idempotency_key) {
        (Some(h), Some(b)) if h.trim() != b.trim() => {
            return Err(ApiError::field(
                "idempotency_key",
                "differs from the Idempotency-Key header; send one or make them equal",
            ))
        }
        (Some(k), _) | (None, Some(k)) => k,
        // Without a key the contact cannot be recognised when retried: give it a unique one.
        (None, None) => format!("generated:{}", new_id()),
    };
    if req.customer.is_anonymous() {
        return Err(ApiError::field(
            "customer",
            "name at least one of email, phone, visitor_id or external_id",
        ));
    }
    let committed = state
        .intake
        .submit_full(NewInteraction {
            channel: ChannelKind::Api,
            idempotency_key: key,
            customer: req.customer,
            topic: req.topic,
            subject: req.subject,
            body: req.body,
            preferred_agent: None,
            not_before_ms: None,
            waits_for_first_message: false,
            first_event: None,
        })
        .await?;
    let status = if committed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/interactions/{}", committed.interaction.id);
    let mut response = (
        status,
        Json(InteractionView::new(committed.interaction, None)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert("location", v);
    }
    if !committed.created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The body of `POST /api/interactions/{id}/end`.
#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndInteraction {
    /// Why (`withdrawn`, `resolved elsewhere`…); `withdrawn` when left out.
    reason: Option<String>,
}

/// `POST /api/interactions/{id}/end`: the contact ended on the customer's side (the
/// request was withdrawn). Waiting, it is abandoned with its wait logged; held by an
/// agent, the agent is told and completes it as usual.
pub async fn end(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<EndInteraction>,
) -> Result<Json<InteractionView>, ApiError> {
    check_id("interaction", &id)?;
    let reason: String = req
        .reason
        .unwrap_or_else(|| "withdrawn".into())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let ended = state
        .router
        .end(&id, &reason)
        .await
        .ok_or_else(|| ApiError::Unavailable("the router is restarting".into()))??;
    match ended {
        Ended::Unknown => {
            return Err(ApiError::NotFound(format!(
                "no interaction has the id '{id}'"
            )))
        }
        Ended::Already => {
            return Err(ApiError::Conflict {
                field: None,
                message: "the interaction has already ended".into(),
            })
        }
        Ended::Abandoned { .. } | Ended::WhileHeld { .. } | Ended::Closed { .. } | Ended::Left => {}
    }
    let mut conn = state.store.pool().acquire().await?;
    view(&mut conn, &id).await
}

/// The query of `GET /api/interactions`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// The channel (`api`, `email`, `chat`, `phone`).
    channel: String,
    /// The key the channel submitted it under: an API idempotency key, `email:<Message-ID>`,
    /// `native:<call id>`, a chat id.
    key: String,
}

/// `GET /api/interactions?channel=…&key=…` (supervisors): the interaction a channel
/// created under a key, with its history.
pub async fn by_key(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> Result<Json<InteractionView>, ApiError> {
    if ChannelKind::parse(&q.channel).is_none() {
        return Err(ApiError::field("channel", "one of api, email, chat, phone"));
    }
    let mut conn = state.store.pool().acquire().await?;
    let row = interactions::by_key(&mut conn, &q.channel, &q.key)
        .await?
        .ok_or_else(|| ApiError::NotFound("no interaction has that key on that channel".into()))?;
    view(&mut conn, &row.id).await
}

/// `GET /api/interactions/{id}`: the interaction with its whole history.
pub async fn get(
    State(state): State<AppState>,
    Anyone(by): Anyone,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InteractionView>, ApiError> {
    check_id("interaction", &id)?;
    let mut conn = state.store.pool().acquire().await?;
    agent_may_see(&mut conn, &by, &id).await?;
    view(&mut conn, &id).await
}

/// An agent sees only the interactions it holds or has held (its searches find them);
/// one it may not see is answered as one that does not exist, so an agent cannot learn
/// which ids exist.
async fn agent_may_see(
    conn: &mut crate::store::Conn,
    by: &Principal,
    id: &str,
) -> Result<(), ApiError> {
    if by.role != Role::Agent {
        return Ok(());
    }
    match interactions::get(conn, id).await? {
        Some(r) if r.agent_id == by.agent_id => Ok(()),
        Some(_) => match by.agent_id.as_deref() {
            Some(agent) if crate::store::search::held(conn, agent, id).await? => Ok(()),
            _ => Err(not_found(id)),
        },
        None => Err(not_found(id)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no interaction has the id '{id}'"))
}

/// The interaction with its whole history.
pub(super) async fn view(
    conn: &mut crate::store::Conn,
    id: &str,
) -> Result<Json<InteractionView>, ApiError> {
    let Some(row) = interactions::get(conn, id).await? else {
        return Err(not_found(id));
    };
    let events = history::of_interaction(conn, id).await?;
    let files = crate::store::channel::files_of(conn, id).await?;
    let mut view = InteractionView::new(row, Some(events));
    let deadlines = crate::store::service::deadlines_of(conn, &[id.to_string()]).await?;
    view.set_deadlines(
        deadlines
            .iter()
            .map(super::service::deadline_json)
            .collect(),
    );
    view.set_attachments(
        files
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.id, "name": f.name, "content_type": f.content_type, "size": f.size,
                    "kept": f.kept,
                    "url": f.kept.then(|| format!("/api/interactions/{id}/attachments/{}", f.id)),
                })
            })
            .collect(),
    );
    Ok(Json(view))
}

/// `GET /api/interactions/{id}/attachments/{file}`: a file that came with the
/// interaction, for those who may see the interaction.
pub async fn attachment(
    State(state): State<AppState>,
    Anyone(by): Anyone,
    ApiPath((id, file)): ApiPath<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    check_id("interaction", &id)?;
    let mut conn = state.store.pool().acquire().await?;
    agent_may_see(&mut conn, &by, &id).await?;
    let Some((name, content_type, data)) =
        crate::store::channel::file(&mut conn, &id, &file).await?
    else {
        return Err(ApiError::NotFound(format!(
            "interaction '{id}' has no file '{file}'"
        )));
    };
    let Some(data) = data else {
        return Err(ApiError::NotFound(format!(
            "'{name}' was over the size limit: it is listed, but its content was not kept"
        )));
    };
    // Served as a download, never rendered: a file from a customer is not trusted.
    let safe_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let content_type = if content_type.parse::<axum::http::HeaderValue>().is_ok() {
        content_type
    } else {
        "application/octet-stream".into()
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe_name}\""),
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        ],
        data,
    )
        .into_response())
}

/// The body of `POST /api/interactions/{id}/move`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveInteraction {
    /// The agent to move it to.
    agent_id: String,
}

/// `POST /api/interactions/{id}/move` (supervisors): a waiting interaction is offered to
/// the agent at once; an assigned one is handed over, and both agents are told.
pub async fn move_to(
    State(state): State<AppState>,
    Supervisor(by): Supervisor,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<MoveInteraction>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_id("interaction", &id)?;
    if uuid::Uuid::try_parse(&req.agent_id).is_err() {
        return Err(ApiError::field("agent_id", "is not an agent id"));
    }
    let mut conn = state.store.pool().acquire().await?;
    let target = crate::store::agents::get(&mut conn, &req.agent_id).await?;
    if !target.is_some_and(|a| a.active) {
        return Err(ApiError::field(
            "agent_id",
            "is not the id of an active agent",
        ));
    }
    drop(conn);
    let moved = state
        .router
        .move_to(&id, &req.agent_id, &by.actor)
        .await
        .ok_or_else(|| ApiError::Unavailable("the router is restarting".into()))??;
    let (result, from) = match moved {
        Moved::Unknown => {
            return Err(ApiError::NotFound(format!(
                "no interaction has the id '{id}'"
            )))
        }
        Moved::Refused(why) => {
            return Err(ApiError::Conflict {
                field: None,
                message: format!("it cannot be moved: {why}"),
            })
        }
        Moved::Offered => ("offered", None),
        Moved::Reassigned { from } => ("reassigned", Some(from)),
    };
    let mut tx = state.store.begin_write().await?;
    let change = Change::by(
        &by.actor,
        "interaction.move",
        "interaction",
        &id,
        Some(serde_json::json!({ "agent_id": from })),
        Some(serde_json::json!({ "agent_id": req.agent_id, "result": result })),
    );
    crate::store::audit::record(&mut tx, &[change], crate::store::now_ms()).await?;
    tx.commit().await?;
    Ok(Json(
        serde_json::json!({ "result": result, "from": from, "to": req.agent_id }),
    ))
}
