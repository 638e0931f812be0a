//! The phone channel's Zammad generic CTI webhook: the event decoded from a form body
//! and from a JSON body, as the handler acts on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_phone::zammad::decode;
use switchboard_phone::{CallEvent, PhoneError, MAX_CALL_ID};

fuzz_target!(|body: &[u8]| {
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=utf-8"),
    ] {
        match decode(content_type, body) {
            Err(PhoneError::Invalid { field, message }) => {
                assert!(!field.is_empty() && !message.is_empty())
            }
            // Zammad answers a direction other than in or out with 422, before anything else.
            Err(PhoneError::Unprocessable { field, message }) => {
                assert!(field == "direction" && !message.is_empty())
            }
            Err(other) => panic!("a body is invalid or an event, not {other:?}"),
            Ok(event) => check(&event),
        }
    }
});

fn check(event: &CallEvent) {
    let id = event.call_id();
    assert!(!id.is_empty() && id == id.trim() && id.len() <= MAX_CALL_ID);
    assert!(!id.chars().any(char::is_control));
    if matches!(
        event,
        CallEvent::Transferred { .. }
            | CallEvent::Voicemail { .. }
            | CallEvent::CallbackResult { .. }
            | CallEvent::Satisfaction { .. }
    ) {
        panic!("Zammad has no transfers, voicemail, callback results or surveys: {event:?}");
    }
    // A caller's number made of blanks is read as an empty (withheld) number, which a
    // form cannot say again; every other event, written back as a form and as JSON,
    // reads as the same event.
    let blank_caller = match event {
        CallEvent::Ringing(r) => r.from.is_empty(),
        CallEvent::Ended {
            ringing: Some(r), ..
        } => r.from.is_empty(),
        _ => false,
    };
    if blank_caller {
        return;
    }
    let fields = encode(event);
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    assert_eq!(decode(None, form.as_bytes()).as_ref(), Ok(event), "{form}");
    let json: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
        .collect();
    let json = serde_json::Value::Object(json).to_string();
    assert_eq!(
        decode(Some("application/json"), json.as_bytes()).as_ref(),
        Ok(event),
        "{json}"
    );
}

/// The generic CTI fields that describe `event`.
fn encode(event: &CallEvent) -> Vec<(&'static str, String)> {
    fn caller(f: &mut Vec<(&'static str, String)>, r: &switchboard_phone::Ringing) {
        f.push(("from", r.from.clone()));
        if let Some(to) = &r.to {
            f.push(("to", to.clone()));
        }
        if let Some(q) = &r.topic {
            f.push(("queue", q.clone()));
        }
    }
    let mut f = vec![("callId", event.call_id().to_string()), ("direction", "in".into())];
    match event {
        CallEvent::Ringing(r) => {
            f.push(("event", "newCall".into()));
            caller(&mut f, r);
        }
        CallEvent::Answered { extension, .. } => {
            f.push(("event", "answer".into()));
            if let Some(e) = extension {
                f.push(("answeringNumber", e.clone()));
            }
        }
        CallEvent::Ended { cause, ringing, .. } => {
            f.push(("event", "hangup".into()));
            f.push(("cause", cause.clone()));
            if let Some(r) = ringing {
                caller(&mut f, r);
            }
        }
        CallEvent::CallbackRequested { number, .. } => {
            f.push(("event", "callback".into()));
            if let Some(n) = number {
                f.push(("callbackNumber", n.clone()));
            }
        }
        CallEvent::Ignored { .. } => {
            f.push(("event", "hangup".into()));
            f[1].1 = "out".into();
        }
        CallEvent::Transferred { .. }
        | CallEvent::Voicemail { .. }
        | CallEvent::CallbackResult { .. }
        | CallEvent::Satisfaction { .. } => unreachable!(),
    }
    f
}
