//! Zammad's "generic CTI" format: `POST /channels/phone/zammad/{token}` with the events
//! `newCall`, `answer` and `hangup`, as JSON or form-encoded, with Zammad's fields
//! (`from`, `to`, `direction`, `callId`, `user` / `user[]`, `queue`, `cause`,
//! `answeringNumber`) and its replies: `{}`, or `{"action": "reject", "reason": "busy"}`
//! for a blocked caller (and while closed). A fourth event, `callback` (the caller asks
//! to be called back, keeping their place; `callbackNumber` to call another number), is
//! Switchboard's own, for phone systems whose IVR offers it. A phone system configured
//! for Zammad works unchanged; the
//! token in the path authenticates it, as in Zammad. Outbound calls (`direction=out`)
//! are an agent's own calls, not contacts: they are answered and not queued.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::calls::{call_id, international, CallEvent, Format, Ringing, Route};
use crate::{read_body, Phone, PhoneError};

/// The fields of one event, from JSON or a form.
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fields, PhoneError> {
        let json = content_type.is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !json {
            return Ok(Fields(form_urlencoded::parse(body).into_owned().collect()));
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| PhoneError::invalid("body", format!("not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| PhoneError::invalid("body", "must be a JSON object"))?;
        let mut fields = Vec::new();
        for (k, v) in obj {
            match v {
                Value::String(s) => fields.push((k.clone(), s.clone())),
                Value::Number(n) => fields.push((k.clone(), n.to_string())),
                Value::Array(items) => {
                    for i in items.iter().filter_map(Value::as_str) {
                        fields.push((format!("{k}[]"), i.to_string()));
                    }
                }
                _ => {}
            }
        }
        Ok(Fields(fields))
    }
}

fn same_token(given: &str, expected: &str) -> bool {
    // Digests of equal length compared whole: the time taken says nothing of the token.
    !expected.is_empty() && Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
}

/// `POST /channels/phone/zammad/{token}`.
pub async fn events(
    State(phone): State<Arc<Phone>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, PhoneError> {
    let body = read_body(&phone, body).await?;
    if !same_token(&token, &phone.settings.zammad_token) {
        return Err(PhoneError::Unauthorized(
            "unknown CTI token: use the endpoint shown in Switchboard's phone.zammad_token".into(),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let fmt = Format::Zammad;
    match decode(content_type, &body)? {
        CallEvent::Ringing(ringing) => Ok(Json(match phone.ringing(fmt, ringing).await? {
            // Zammad's protocol has one answer for a call not to take: a closed centre's
            // phone system plays its own closed message on it.
            Route::Reject | Route::Closed { .. } | Route::Busy { .. } => {
                json!({ "action": "reject", "reason": "busy" })
            }
            Route::Dial { .. }
            | Route::Queue { .. }
            | Route::Over { .. }
            | Route::Connected { .. } => {
                json!({})
            }
        })),
        CallEvent::Answered { call_id, extension } => {
            phone.answered(fmt, &call_id, extension.as_deref()).await?;
            Ok(Json(json!({})))
        }
        CallEvent::Ended {
            call_id,
            cause,
            duration_secs,
            ringing,
        } => {
            phone
                .ended(fmt, &call_id, &cause, duration_secs, ringing)
                .await?;
            Ok(Json(json!({})))
        }
        CallEvent::CallbackRequested { call_id, number } => {
            phone
                .callback_requested(fmt, &call_id, number.as_deref())
                .await?;
            Ok(Json(json!({})))
        }
        CallEvent::Transferred { .. }
        | CallEvent::Voicemail { .. }
        | CallEvent::CallbackResult { .. }
        | CallEvent::Satisfaction { .. }
        | CallEvent::Ignored { .. } => Ok(Json(json!({}))),
    }
}

/// Decodes a generic CTI event (JSON when `content_type` says so, else a form) into the
/// event it describes, or says which field is wrong. Outbound calls are
/// [`CallEvent::Ignored`].
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<CallEvent, PhoneError> {
    let f = Fields::parse(content_type, body)?;
    // Zammad checks the direction before anything else, and refuses any other with 422.
    let outbound = match f.get("direction") {
        Some("in") => false,
        Some("out") => true,
        other => {
            return Err(PhoneError::Unprocessable {
                field: "direction".into(),
                message: format!(
                    "must be in or out{}",
                    other
                        .map(|d| format!(", not '{}'", d.chars().take(20).collect::<String>()))
                        .unwrap_or_default()
                ),
            })
        }
    };
    let event = f.get("event").ok_or_else(|| {
        PhoneError::invalid("event", "is required: newCall, answer, hangup or callback")
    })?;
    let id = call_id("callId", f.get("callId"))?;
    let ringing = |from: &str| Ringing {
        call_id: id.clone(),
        from: international(from),
        to: f.get("to").map(str::to_string),
        topic: f.get("queue").map(str::to_string),
        caller_name: None,
        from_field: "from",
    };
    Ok(match event {
        "newCall" | "answer" | "hangup" | "callback" if outbound => {
            CallEvent::Ignored { call_id: id }
        }
        // Not Zammad's own: a phone system whose IVR offers callbacks posts it, with the
        // same fields, when the caller takes the offer.
        "callback" => CallEvent::CallbackRequested {
            number: f.get("callbackNumber").map(international),
            call_id: id,
        },
        "newCall" => {
            let from = f.get("from").ok_or_else(|| {
                PhoneError::invalid("from", "is required: the caller's number, or anonymous")
            })?;
            CallEvent::Ringing(ringing(from))
        }
        // The answering extension; without one, the `user` Zammad names (an agent's
        // email or id, as Switchboard finds agents).
        "answer" => CallEvent::Answered {
            extension: f
                .get("answeringNumber")
                .or_else(|| f.get("user"))
                .map(str::to_string),
            call_id: id,
        },
        "hangup" => CallEvent::Ended {
            ringing: f.get("from").map(ringing),
            cause: f.get("cause").unwrap_or("normalClearing").to_string(),
            duration_secs: None,
            call_id: id,
        },
        other => {
            return Err(PhoneError::invalid(
                "event",
                format!(
                    "'{}' is not one of newCall, answer, hangup, callback",
                    other.chars().take(40).collect::<String>()
                ),
            ))
        }
    })
}
