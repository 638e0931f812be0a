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

use crate::calls::{call_id, CallEvent, Format, Ringing, Route};
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

/// `<Dial>` to an agent's extension, as `phone.twilio_dial` says to reach it. When
/// `status_url` is given, Twilio reports there (with the extension in its query) the
/// moment the agent answers, so the call is known to be connected to that agent.
pub(crate) fn dial(template: &str, extension: &str, status_url: Option<&str>) -> String {
    let target = template.replace("{extension}", extension);
    let report = status_url
        .map(|url| {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("extension", extension)
                .finish();
            format!(
                " statusCallbackEvent=\"answered\" statusCallback=\"{}\"",
                xml(&format!("{url}?{query}"))
            )
        })
        .unwrap_or_default();
    let noun = if target.starts_with("sip:") {
        format!("<Sip{report}>{}</Sip>", xml(&target))
    } else if let Some(client) = target.strip_prefix("client:") {
        format!("<Client{report}>{}</Client>", xml(client))
    } else {
        format!("<Number{report}>{}</Number>", xml(&target))
    };
    twiml(&format!("<Dial>{noun}</Dial>"))
}

/// Where Twilio reports a dialled agent's answer: the status callback under the public
/// URL.
pub(crate) fn status_url(settings: &crate::PhoneSettings) -> Option<String> {
    let base = settings.twilio_public_url.trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/channels/phone/twilio/status"))
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
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        signature: header("x-twilio-signature"),
        settings: header("x-twilio-webhooks-signature-settings"),
    };
    let key = if signed.settings.is_some() && !s.twilio_webhook_key.is_empty() {
        &s.twilio_webhook_key
    } else {
        &s.twilio_auth_token
    };
    verified_params(key, &s.twilio_public_url, path, signed, &body)
}

/// A Twilio request's signature headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signed<'a> {
    /// `X-Twilio-Signature`.
    pub signature: Option<&'a str>,
    /// `X-Twilio-Webhooks-Signature-Settings`, which names the algorithm when it is not
    /// HMAC-SHA1.
    pub settings: Option<&'a str>,
}

/// The form parameters of a Twilio request to `path` (with its query) under the public
/// URL, once its signature is checked against them exactly as Twilio's own validator
/// checks it: the URL with and without its port, the algorithm the settings header
/// names, compared in constant time.
pub fn verified_params(
    key: &str,
    public_url: &str,
    path: &str,
    signed: Signed<'_>,
    body: &[u8],
) -> Result<Vec<(String, String)>, PhoneError> {
    if key.is_empty() || public_url.is_empty() {
        return Err(PhoneError::Unauthorized(
            "Twilio webhooks are not enabled: set phone.twilio_auth_token and phone.twilio_public_url".into(),
        ));
    }
    let algorithm =
        signature::TwilioAlgorithm::from_settings(signed.settings).ok_or_else(|| {
            PhoneError::Unauthorized(
                "X-Twilio-Webhooks-Signature-Settings names an algorithm Switchboard does not know"
                    .into(),
            )
        })?;
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let url = format!("{}{path}", public_url.trim_end_matches('/'));
    signature::twilio_verify(algorithm, key, &url, &params, signed.signature)
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

/// Decodes the incoming-call webhook's parameters: the ringing call, or `None` for an
/// outbound call (an agent's own, not a contact).
pub fn decode_voice(params: &[(String, String)]) -> Result<Option<Ringing>, PhoneError> {
    let id = call_id("CallSid", param(params, "CallSid"))?;
    if param(params, "Direction").is_some_and(|d| d.starts_with("outbound")) {
        return Ok(None);
    }
    let from = param(params, "From")
        .ok_or_else(|| PhoneError::invalid("From", "is required: the caller's number"))?;
    Ok(Some(Ringing {
        call_id: id,
        from: from.to_string(),
        to: param(params, "To").map(str::to_string),
        topic: None,
        caller_name: param(params, "CallerName").map(str::to_string),
        from_field: "From",
    }))
}

/// Decodes a status callback's parameters into the event it describes; statuses that
/// change nothing (`queued`, `ringing`…) are [`CallEvent::Ignored`]. A callback about a
/// dialled agent's leg (it carries `ParentCallSid`) is about the caller's call: its
/// answer is the call answered at `extension` (the agent Switchboard dialled, from the
/// callback's query); the leg's own end changes nothing (the caller's call reports its
/// own).
pub fn decode_status(
    params: &[(String, String)],
    extension: Option<&str>,
) -> Result<CallEvent, PhoneError> {
    let own = call_id("CallSid", param(params, "CallSid"))?;
    let status = param(params, "CallStatus")
        .ok_or_else(|| PhoneError::invalid("CallStatus", "is required"))?;
    if let Some(parent) = param(params, "ParentCallSid") {
        let id = call_id("ParentCallSid", Some(parent))?;
        return match status {
            "in-progress" | "answered" => Ok(CallEvent::Answered {
                call_id: id,
                extension: extension.map(str::to_string),
            }),
            known if STATUSES.contains(&known) => Ok(CallEvent::Ignored { call_id: id }),
            other => Err(unknown_status(other)),
        };
    }
    let id = own;
    Ok(match status {
        "in-progress" if param(params, "StatusCallbackEvent") == Some("answered") => {
            CallEvent::Answered {
                call_id: id,
                extension: extension.map(str::to_string),
            }
        }
        "completed" | "busy" | "no-answer" | "failed" | "canceled" => CallEvent::Ended {
            ringing: param(params, "From").map(|from| Ringing {
                call_id: id.clone(),
                from: from.to_string(),
                to: param(params, "To").map(str::to_string),
                topic: None,
                caller_name: None,
                from_field: "From",
            }),
            call_id: id,
            cause: status.to_string(),
            duration_secs: param(params, "CallDuration").and_then(|d| d.parse().ok()),
        },
        "queued" | "initiated" | "ringing" | "in-progress" => CallEvent::Ignored { call_id: id },
        other => return Err(unknown_status(other)),
    })
}

/// Every call status Twilio reports.
const STATUSES: [&str; 10] = [
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "answered",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
];

fn unknown_status(status: &str) -> PhoneError {
    PhoneError::invalid(
        "CallStatus",
        format!(
            "'{}' is not a Twilio call status",
            status.chars().take(40).collect::<String>()
        ),
    )
}

/// `POST /channels/phone/twilio/voice`: a call comes in.
pub async fn voice(
    State(phone): State<Arc<Phone>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let params = authentic(&phone, &uri, &headers, body).await?;
    let Some(ringing) = decode_voice(&params)? else {
        return Ok(xml_response(twiml("")));
    };
    let route = phone.ringing(Format::Twilio, ringing).await?;
    let s = &phone.settings;
    let base = s.twilio_public_url.trim_end_matches('/');
    Ok(xml_response(match route {
        Route::Dial { extension, .. } => dial(&s.twilio_dial, &extension, status_url(s).as_deref()),
        // While waiting, the caller is offered a callback (see `wait`).
        Route::Queue { .. } => twiml(&format!(
            "<Enqueue waitUrl=\"{}\">{}</Enqueue>",
            xml(&format!("{base}/channels/phone/twilio/wait")),
            xml(&s.twilio_queue)
        )),
        // Past capacity the call is not taken: the caller hears busy (Twilio's <Reject>
        // does not answer the call, so nothing is said first).
        Route::Reject | Route::Busy { .. } => twiml("<Reject reason=\"busy\"/>"),
        Route::Over { .. } => twiml("<Hangup/>"),
        // Connected already: nothing more for Twilio to do with the caller here.
        Route::Connected { .. } => twiml(""),
        Route::Closed { info, .. } => closed(base, &info),
    }))
}

/// The TwiML of a call while closed: the message, then a callback offered, a voicemail
/// recorded, or the end.
fn closed(base: &str, info: &switchboard_contract::ServiceInfo) -> String {
    let gather = xml(&format!("{base}/channels/phone/twilio/gather"));
    let mut verbs = format!("<Say>{}</Say>", xml(&info.closed_message));
    if let Some(when) = &info.opens_at_local {
        verbs.push_str(&format!("<Say>We open again {}.</Say>", xml(when)));
    }
    match info.closed_call.as_str() {
        "callback" => verbs.push_str(&format!(
            "<Gather numDigits=\"1\" timeout=\"8\" action=\"{gather}\"><Say>To be called back when we open, press 1.</Say></Gather><Say>Goodbye.</Say><Hangup/>"
        )),
        "voicemail" => verbs.push_str(&format!(
            "<Say>Please leave a message after the tone.</Say><Record maxLength=\"120\" playBeep=\"true\" action=\"{gather}\"/><Hangup/>"
        )),
        _ => verbs.push_str("<Hangup/>"),
    }
    twiml(&verbs)
}

/// `POST /channels/phone/twilio/wait`: what a caller waiting in the queue hears (Twilio
/// asks again each time it ends): after the rules' wait, the offer of a callback that
/// keeps their place.
pub async fn wait(
    State(phone): State<Arc<Phone>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let params = authentic(&phone, &uri, &headers, body).await?;
    let waited: u32 = param(&params, "QueueTime")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let offer_after = phone
        .core
        .service(switchboard_contract::ChannelKind::Phone, None)
        .await
        .callback_offer_after_secs;
    let base = phone.settings.twilio_public_url.trim_end_matches('/');
    let gather = xml(&format!("{base}/channels/phone/twilio/gather"));
    Ok(xml_response(if waited >= offer_after {
        twiml(&format!(
            "<Gather numDigits=\"1\" timeout=\"5\" action=\"{gather}\"><Say>To keep your place and be called back, press 1.</Say></Gather><Pause length=\"20\"/>"
        ))
    } else {
        twiml(&format!(
            "<Pause length=\"{}\"/>",
            (offer_after - waited).min(20)
        ))
    }))
}

/// `POST /channels/phone/twilio/gather`: the caller's key press (1: call me back) or
/// their voicemail, from the closed message or the queue.
pub async fn gather(
    State(phone): State<Arc<Phone>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let params = authentic(&phone, &uri, &headers, body).await?;
    let call = call_id("CallSid", param(&params, "CallSid"))?;
    let f = Format::Twilio;
    if let Some(recording) = param(&params, "RecordingUrl") {
        let duration = param(&params, "RecordingDuration").and_then(|d| d.parse().ok());
        phone.voicemail(f, &call, duration, Some(recording)).await?;
        return Ok(xml_response(twiml(
            "<Say>Thank you. Goodbye.</Say><Hangup/>",
        )));
    }
    if param(&params, "Digits") == Some("1") {
        phone.callback_requested(f, &call, None).await?;
        return Ok(xml_response(twiml(
            "<Say>Thank you. We will call you back when it is your turn.</Say><Hangup/>",
        )));
    }
    // Any other key in the queue: back to waiting.
    Ok(xml_response(twiml("")))
}

/// `POST /channels/phone/twilio/status`: the call's status changed.
pub async fn status(
    State(phone): State<Arc<Phone>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PhoneError> {
    let params = authentic(&phone, &uri, &headers, body).await?;
    let f = Format::Twilio;
    // The extension Switchboard dialled, in the query of the status URL it gave Twilio
    // (signed with the rest of the URL).
    let query = |name: &str| {
        uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    };
    // A callback Switchboard had Twilio dial: how it went.
    if let Some(callback) = query("callback") {
        if let Some(result) = callback_outcome(&params)? {
            phone.callback_done(&callback, result).await?;
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let extension = query("extension");
    match decode_status(&params, extension.as_deref())? {
        CallEvent::Answered { call_id, extension } => {
            phone.answered(f, &call_id, extension.as_deref()).await?;
        }
        CallEvent::Ended {
            call_id,
            cause,
            duration_secs,
            ringing,
        } => {
            phone
                .ended(f, &call_id, &cause, duration_secs, ringing)
                .await?;
        }
        CallEvent::Ringing(_)
        | CallEvent::Transferred { .. }
        | CallEvent::Voicemail { .. }
        | CallEvent::CallbackRequested { .. }
        | CallEvent::CallbackResult { .. }
        | CallEvent::Satisfaction { .. }
        | CallEvent::Ignored { .. } => {}
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What a status callback of a callback's outbound call says of it: its result once the
/// call is over (`None` while it goes on).
pub fn callback_outcome(params: &[(String, String)]) -> Result<Option<&'static str>, PhoneError> {
    let status = param(params, "CallStatus")
        .ok_or_else(|| PhoneError::invalid("CallStatus", "is required"))?;
    Ok(match status {
        "completed" => Some(
            if param(params, "CallDuration").and_then(|d| d.parse::<u64>().ok()) == Some(0) {
                "no_answer"
            } else {
                "answered"
            },
        ),
        "busy" => Some("busy"),
        "no-answer" => Some("no_answer"),
        "failed" | "canceled" => Some("failed"),
        known if STATUSES.contains(&known) => None,
        other => return Err(unknown_status(other)),
    })
}

/// The REST request that has Twilio call a customer back and connect them to the agent
/// at `extension`: (URL path under the API, form body).
pub(crate) fn callback_call(
    settings: &crate::PhoneSettings,
    number: &str,
    extension: &str,
    callback_id: &str,
) -> (String, String) {
    let base = settings.twilio_public_url.trim_end_matches('/');
    let status = format!(
        "{base}/channels/phone/twilio/status?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("callback", callback_id)
            .finish()
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("To", number)
        .append_pair("From", &settings.twilio_caller_id)
        .append_pair("Twiml", &dial(&settings.twilio_dial, extension, None))
        .append_pair("StatusCallback", &status)
        .append_pair("StatusCallbackEvent", "completed")
        .finish();
    (
        format!(
            "/2010-04-01/Accounts/{}/Calls.json",
            settings.twilio_account_sid
        ),
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_targets_follow_the_template_and_are_escaped() {
        assert!(dial("sip:{extension}@pbx.example.com", "201", None)
            .contains("<Dial><Sip>sip:201@pbx.example.com</Sip></Dial>"));
        assert!(dial("client:{extension}", "ann", None).contains("<Client>ann</Client>"));
        assert!(dial("+4930{extension}", "1<2", None).contains("<Number>+49301&lt;2</Number>"));
        assert!(dial("+4930{extension}", "1 2", Some("https://x/status")).contains(
            "<Number statusCallbackEvent=\"answered\" statusCallback=\"https://x/status?extension=1+2\">"
        ));
    }
}
