//! Mail kept aside, for supervisors: `GET /api/email/kept-aside` lists it, newest first,
//! with why (`auto_reply`, `bounce`, `loop`, `no_sender`, `bad_sender`, `unreadable`),
//! who sent it, its subject, the start of its text and when it came; and
//! `POST /api/email/kept-aside/{id}/contact` turns one into a contact, once: an
//! interaction queued and routed like any new mail, audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_email::kept::{KeptMessage, NotAContact};

use super::auth::Supervisor;
use super::error::{check_id, ApiError, ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::store::audit::{self, Change};
use crate::store::kept_aside::{self, Entry};
use crate::store::{now_ms, rfc3339};

/// The channel whose mail this lists.
const CHANNEL: &str = "email";

/// The query of `GET /api/email/kept-aside`.
#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeptQuery {
    /// The previous page's `next_before`.
    before: Option<String>,
    /// Messages per page, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// The body of `POST /api/email/kept-aside/{id}/contact`.
#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeContact {
    /// The customer's address, when the message names none or the wrong one.
    email: Option<String>,
}

fn view(e: &Entry) -> Value {
    json!({
        "id": e.id, "reason": e.reason, "detail": e.detail, "from": e.sender,
        "subject": e.subject, "preview": e.preview, "size": e.size,
        "received_at": rfc3339(e.received_at),
        "contact": e.interaction_id.as_ref().map(|i| json!({
            "interaction_id": i, "by": e.contact_by, "at": e.contact_at.map(rfc3339),
        })),
    })
}

/// `GET /api/email/kept-aside`.
pub async fn list(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<KeptQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 200"));
    }
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => Some(
            b.split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| ApiError::field("before", "is not a next_before this API gave"))?,
        ),
    };
    let mut conn = state.store.pool().acquire().await?;
    let mut entries = kept_aside::page(&mut conn, CHANNEL, before, limit + 1).await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let next_before = more
        .then(|| {
            entries
                .last()
                .map(|e| format!("{}.{}", e.received_at, e.id))
        })
        .flatten();
    Ok(Json(json!({
        "messages": entries.iter().map(view).collect::<Vec<_>>(),
        "next_before": next_before,
    })))
}

/// `POST /api/email/kept-aside/{id}/contact`.
pub async fn contact(
    State(state): State<AppState>,
    Supervisor(by): Supervisor,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<MakeContact>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_id("message kept aside", &id)?;
    let mut conn = state.store.pool().acquire().await?;
    let (entry, raw) = kept_aside::get(&mut conn, CHANNEL, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no message kept aside has that id".into()))?;
    drop(conn);
    if let Some(made) = &entry.interaction_id {
        return Err(ApiError::Conflict {
            field: None,
            message: format!("a contact was made of it already: interaction {made}"),
        });
    }
    let kept = KeptMessage {
        id: &entry.id,
        reason: &entry.reason,
        raw: raw.as_deref(),
        sender: entry.sender.as_deref(),
        subject: entry.subject.as_deref(),
        preview: entry.preview.as_deref(),
    };
    let made = state
        .email
        .contact_from_kept(kept, req.email.as_deref(), &by.actor)
        .await
        .map_err(|e| match e {
            NotAContact::NoSender => ApiError::field(
                "email",
                "the message names no sender: give the customer's address",
            ),
            NotAContact::Invalid(why) => ApiError::field("email", why),
            NotAContact::Temporary(why) => ApiError::Unavailable(why),
        })?;
    // The interaction is committed and queued; the mark and the audit follow. Two
    // supervisors at once make one interaction (its key is the message's): the one whose
    // mark lands first is answered 201, the other 409.
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    if !kept_aside::contacted(&mut tx, &id, &made.interaction_id, &by.actor, now).await? {
        return Err(ApiError::Conflict {
            field: None,
            message: format!(
                "a contact was made of it already: interaction {}",
                made.interaction_id
            ),
        });
    }
    let change = Change::by(
        &by.actor,
        "email.kept_aside.contact",
        "kept_aside",
        &id,
        None,
        Some(json!({ "interaction_id": made.interaction_id, "reason": entry.reason })),
    );
    audit::record(&mut tx, &[change], now).await?;
    tx.commit().await?;
    let entry = Entry {
        interaction_id: Some(made.interaction_id.clone()),
        contact_by: Some(by.actor.clone()),
        contact_at: Some(now),
        ..entry
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "interaction_id": made.interaction_id, "kept_aside": view(&entry) })),
    ))
}
