//! Switchboard's own call events: `POST /channels/phone/events`, a JSON body signed as
//! [`crate::signature`] says.
//!
//! ```json
//! {"event": "ringing", "call_id": "c-1", "from": "+4930123456", "to": "+4930999", "topic": "billing"}
//! {"event": "answered", "call_id": "c-1", "extension": "201"}
//! {"event": "transferred", "call_id": "c-1", "to_extension": "305"}
//! {"event": "ended", "call_id": "c-1", "cause": "normal_clearing", "duration_secs": 184}
//! {"event": "voicemail", "call_id": "c-1", "duration_secs": 31, "recording_url": "https://…"}
//! {"event": "callback", "call_id": "c-1"}                  (the caller asks to be called back; "number" to call another)
//! {"event": "callback_result", "callback_id": "…", "result": "no_answer"}
//! {"event": "satisfaction", "call_id": "c-1", "score": 4}
//! ```
//!
//! While the caller's calendar is closed, `ringing` is answered `{"action": "closed",
//! "message": …, "then": "callback" | "voicemail" | "message", "opens_at": …,
//! "opens_at_local": …, "hours": […]}`: play the message, then offer a callback (post
//! `callback` when the caller takes it), record a voicemail (post `voicemail`), or end.
//!
//! The answer to `ringing` says what to do now: `{"action": "dial", "extension": "201",
//! "agent_id": …, "interaction_id": …}` when an agent took the call within the answer
//! window; `{"action": "queue", "position": 2, "estimated_wait_secs": 40, …}` otherwise
//! (the dial command follows as a signed callback to `phone.callback_url`);
//! `{"action": "reject", "reason": "blocked"}` for a blocked number; `{"action": "busy",
//! "reason": "overloaded", "retry_after_secs": 30}` when Switchboard is past its capacity
//! and did not take the call (give the caller the busy treatment; nothing was stored); `{"action": "none",
//! "reason": "the call has ended"}` when its hang-up came first. Other events answer
//! `{"recorded": true}`, or `false` when the same event was sent before or the call is
//! unknown (the event is kept aside).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use switchboard_contract::{Rated, Recorded};

use crate::calls::{call_id, CallEvent, Format, Ringing, Route};
use crate::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::{read_body, unix_now, Phone, PhoneError};

/// A native event.
#[derive(Debug, Deserialize)]
struct Event {
    event: Option<String>,
    call_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    topic: Option<String>,
    caller_name: Option<String>,
    extension: Option<String>,
    to_extension: Option<String>,
    cause: Option<String>,
    duration_secs: Option<u64>,
    recording_url: Option<String>,
    number: Option<String>,
    callback_id: Option<String>,
    result: Option<String>,
    score: Option<serde_json::Value>,
    comment: Option<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to an event other than ringing.
pub(crate) fn recorded(r: &Recorded) -> serde_json::Value {
    match r {
        Recorded::New { interaction_id, .. } => {
            json!({ "recorded": true, "interaction_id": interaction_id })
        }
        Recorded::Duplicate => {
            json!({ "recorded": false, "reason": "this event was received before" })
        }
        Recorded::UnknownContact => {
            json!({ "recorded": false, "reason": "no such call: the event is kept aside" })
        }
    }
}

/// Decodes a native event body (already authenticated) into the event it describes, or
/// says which field is wrong.
pub fn decode(body: &[u8]) -> Result<CallEvent, PhoneError> {
    let e: Event = serde_json::from_slice(body)
        .map_err(|err| PhoneError::invalid("body", format!("not a call event: {err}")))?;
    let event = e.event.as_deref().ok_or_else(|| {
        PhoneError::invalid(
            "event",
            "is required: ringing, answered, transferred, ended, voicemail, callback, callback_result or satisfaction",
        )
    })?;
    if event == "callback_result" {
        return Ok(CallEvent::CallbackResult {
            callback_id: call_id("callback_id", e.callback_id.as_deref())?,
            result: crate::calls::callback_result("result", e.result.as_deref())?,
        });
    }
    let id = call_id("call_id", e.call_id.as_deref())?;
    Ok(match event {
        "callback" => CallEvent::CallbackRequested {
            call_id: id,
            number: e.number.filter(|n| !n.trim().is_empty()),
        },
        "satisfaction" => CallEvent::Satisfaction {
            call_id: id,
            score: crate::calls::score(
                "score",
                e.score.as_ref().map(|v| v.to_string()).as_deref().map(|s| s.trim_matches('"')),
            )?,
            comment: e.comment.filter(|c| !c.trim().is_empty()),
        },
        "ringing" => {
            let from = e.from.ok_or_else(|| {
                PhoneError::invalid("from", "is required: the caller's number, or \"anonymous\"")
            })?;
            CallEvent::Ringing(Ringing {
                call_id: id,
                from,
                to: e.to,
                topic: e.topic,
                caller_name: e.caller_name,
                from_field: "from",
            })
        }
        "answered" => CallEvent::Answered {
            call_id: id,
            extension: e.extension,
        },
        "transferred" => {
            let to = e
                .to_extension
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| PhoneError::invalid("to_extension", "is required for a transfer"))?;
            CallEvent::Transferred {
                call_id: id,
                to_extension: to.to_string(),
            }
        }
        "ended" => CallEvent::Ended {
            ringing: e.from.map(|from| Ringing {
                call_id: id.clone(),
                from,
                to: e.to,
                topic: e.topic,
                caller_name: None,
                from_field: "from",
            }),
            call_id: id,
            cause: e.cause.unwrap_or_else(|| "normal_clearing".into()),
            duration_secs: e.duration_secs,
        },
        "voicemail" => CallEvent::Voicemail {
            call_id: id,
            duration_secs: e.duration_secs,
            recording_url: e.recording_url,
        },
        other => {
            return Err(PhoneError::invalid(
                "event",
                format!(
                    "'{}' is not one of ringing, answered, transferred, ended, voicemail, callback, callback_result, satisfaction",
                    other.chars().take(40).collect::<String>()
                ),
            ))
        }
    })
}

/// `POST /channels/phone/events`.
pub async fn events(
    State(phone): State<Arc<Phone>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let body = read_body(&phone, body).await?;
    if phone.settings.secret.is_empty() {
        return Err(PhoneError::Unauthorized(
            "native call events are not enabled: set phone.secret".into(),
        ));
    }
    signature::native_verify(
        &phone.settings.secret,
        header(&headers, TIMESTAMP_HEADER),
        header(&headers, SIGNATURE_HEADER),
        &body,
        unix_now(),
        phone.settings.max_clock_skew_secs,
    )
    .map_err(|e| PhoneError::Unauthorized(e.to_string()))?;
    let f = Format::Native;
    let answer = match decode(&body)? {
        CallEvent::Ringing(ringing) => match phone.ringing(f, ringing).await? {
            Route::Dial {
                interaction_id,
                agent_id,
                extension,
            } => {
                json!({ "action": "dial", "extension": extension, "agent_id": agent_id, "interaction_id": interaction_id })
            }
            Route::Queue {
                interaction_id,
                position,
            } => json!({
                "action": "queue", "interaction_id": interaction_id,
                "position": position.map(|p| p.position),
                "estimated_wait_secs": position.and_then(|p| p.estimated_wait_secs),
            }),
            Route::Reject => json!({ "action": "reject", "reason": "blocked" }),
            Route::Busy { retry_after_secs } => {
                json!({ "action": "busy", "reason": "overloaded", "retry_after_secs": retry_after_secs })
            }
            Route::Connected { interaction_id } => {
                json!({ "action": "none", "reason": "the call is connected already", "interaction_id": interaction_id })
            }
            Route::Over { interaction_id } => {
                json!({ "action": "none", "reason": "the call has ended", "interaction_id": interaction_id })
            }
            Route::Closed {
                interaction_id,
                info,
            } => json!({
                "action": "closed", "interaction_id": interaction_id, "message": info.closed_message,
                "then": info.closed_call, "opens_at": info.opens_at,
                "opens_at_local": info.opens_at_local, "hours": info.hours,
            }),
        },
        CallEvent::CallbackRequested { call_id, number } => recorded(
            &phone
                .callback_requested(f, &call_id, number.as_deref())
                .await?,
        ),
        CallEvent::CallbackResult {
            callback_id,
            result,
        } => {
            let next = phone.callback_done(&callback_id, &result).await?;
            json!({ "recorded": true, "next_attempt": next })
        }
        CallEvent::Satisfaction {
            call_id,
            score,
            comment,
        } => match phone
            .satisfaction(f, &call_id, score, comment.as_deref())
            .await?
        {
            Rated::Recorded { interaction_id, .. } => {
                json!({ "recorded": true, "interaction_id": interaction_id })
            }
            Rated::AlreadyAnswered => {
                json!({ "recorded": false, "reason": "this call was scored before" })
            }
            Rated::Unknown => {
                json!({ "recorded": false, "reason": "no completed call has that id" })
            }
        },
        CallEvent::Answered { call_id, extension } => {
            recorded(&phone.answered(f, &call_id, extension.as_deref()).await?)
        }
        CallEvent::Transferred {
            call_id,
            to_extension,
        } => recorded(&phone.transferred(f, &call_id, &to_extension).await?),
        CallEvent::Ended {
            call_id,
            cause,
            duration_secs,
            ringing,
        } => recorded(
            &phone
                .ended(f, &call_id, &cause, duration_secs, ringing)
                .await?,
        ),
        CallEvent::Voicemail {
            call_id,
            duration_secs,
            recording_url,
        } => recorded(
            &phone
                .voicemail(f, &call_id, duration_secs, recording_url.as_deref())
                .await?,
        ),
        // The native format has no event that changes nothing.
        CallEvent::Ignored { .. } => json!({ "recorded": false }),
    };
    Ok(Json(answer).into_response())
}
