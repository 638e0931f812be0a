//! Twilio Voice: the incoming-call webhook (`POST /channels/phone/twilio/voice`) and the
//! status callback (`POST /channels/phone/twilio/status`), form-encoded and signed with
//! `X-Twilio-Signature` ([`crate::signature`]) over the public URL in
//! `phone.twilio_public_url`. A call is answered with TwiML: `<Dial>` to the agent when
//! one took it within the answer window, `<Enqueue>` otherwise — and when an agent takes
//! it later, Switchboard updates the live call through Twilio's REST API with the
//! `<Dial>`, which takes the caller out of the queue to the agent.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::calls::{call_id, Format, Ringing, Route};
use crate::signature;
use crate::{read_body, Phone, PhoneError};

/// Escapes text for XML.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A TwiML document around `verbs`.
fn twiml(verbs: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{verbs}</Response>")
}

/// `<Dial>` to an agent's extension, as `phone.twilio_dial` says to reach it.
pub(crate) fn dial(template: &str, extension: &str) -> String {
    let target = template.replace("{extension}", extension);
    let noun = if target.starts_with("sip:") {
        format!("<Sip>{}</Sip>", xml(&target))
    } else if let Some(client) = target.strip_prefix("client:") {
        format!("<Client>{}</Client>", xml(client))
    } else {
        format!("<Number>{}</Number>", xml(&target))
    };
    twiml(&format!("<Dial>{noun}</Dial>"))
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// Reads and authenticates a Twilio request: its form parameters.
async fn authentic(
    phone: &Phone,
    uri: &Uri,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Vec<(String, String)>, PhoneError> {
    let body = read_body(phone, body).await?;
    let s = &phone.settings;
    if s.twilio_auth_token.is_empty() || s.twilio_public_url.is_empty() {
        return Err(PhoneError::Unauthorized(
            "Twilio webhooks are not enabled: set phone.twilio_auth_token and phone.twilio_public_url".into(),
        ));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path}", s.twilio_public_url.trim_end_matches('/'));
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    signature::twilio_verify(&s.twilio_auth_token, &url, &params, given)
        .map_err(|e| PhoneError::Unauthorized(e.to_string()))?;
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `POST /channels/phone/twilio/voice`: a call comes in.
pub async fn voice(
    State(phone): State<Arc<Phone>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let params = authentic(&phone, &uri, &headers, body).await?;
    let id = call_id("CallSid", param(&params, "CallSid"))?;
    if param(&params, "Direction").is_some_and(|d| d.starts_with("outbound")) {
        return Ok(xml_response(twiml("")));
    }
    let from = param(&params, "From")
        .ok_or_else(|| PhoneError::invalid("From", "is required: the caller's number"))?;
    let route = phone
        .ringing(
            Format::Twilio,
            Ringing {
                call_id: id,
                from: from.to_string(),
                to: param(&params, "To").map(str::to_string),
                topic: None,
                caller_name: param(&params, "CallerName").map(str::to_string),
                from_field: "From",
            },
        )
        .await?;
    let s = &phone.settings;
    Ok(xml_response(match route {
        Route::Dial { extension, .. } => dial(&s.twilio_dial, &extension),
        Route::Queue { .. } => twiml(&format!("<Enqueue>{}</Enqueue>", xml(&s.twilio_queue))),
        Route::Reject => twiml("<Reject reason=\"busy\"/>"),
        Route::Over { .. } => twiml("<Hangup/>"),
    }))
}

/// `POST /channels/phone/twilio/status`: the call's status changed.
pub async fn status(
    State(phone): State<Arc<Phone>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let params = authentic(&phone, &uri, &headers, body).await?;
    let id = call_id("CallSid", param(&params, "CallSid"))?;
    let status = param(&params, "CallStatus")
        .ok_or_else(|| PhoneError::invalid("CallStatus", "is required"))?;
    let duration = param(&params, "CallDuration").and_then(|d| d.parse().ok());
    let f = Format::Twilio;
    match status {
        "in-progress" if param(&params, "StatusCallbackEvent") == Some("answered") => {
            phone.answered(f, &id, None).await?;
        }
        "completed" | "busy" | "no-answer" | "failed" | "canceled" => {
            let ringing = param(&params, "From").map(|from| Ringing {
                call_id: id.clone(),
                from: from.to_string(),
                to: param(&params, "To").map(str::to_string),
                topic: None,
                caller_name: None,
                from_field: "From",
            });
            phone.ended(f, &id, status, duration, ringing).await?;
        }
        "queued" | "initiated" | "ringing" | "in-progress" => {}
        other => {
            return Err(PhoneError::invalid(
                "CallStatus",
                format!(
                    "'{}' is not a Twilio call status",
                    other.chars().take(40).collect::<String>()
                ),
            ))
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_targets_follow_the_template_and_are_escaped() {
        assert!(dial("sip:{extension}@pbx.example.com", "201")
            .contains("<Dial><Sip>sip:201@pbx.example.com</Sip></Dial>"));
        assert!(dial("client:{extension}", "ann").contains("<Client>ann</Client>"));
        assert!(dial("+4930{extension}", "1<2").contains("<Number>+49301&lt;2</Number>"));
    }
}
