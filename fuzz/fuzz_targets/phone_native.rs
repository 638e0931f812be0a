//! The phone channel's native webhook: the signature check over the raw body, and the
//! decoding of the JSON call event the handler acts on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use switchboard_phone::native::decode;
use switchboard_phone::signature::{native_sign, native_verify, Refused};
use switchboard_phone::{CallEvent, PhoneError, MAX_CALL_ID};

const SECRET: &str = "fuzz-secret";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|body: &[u8]| {
    // What the phone system signs verifies; the body changed by one byte does not.
    let signature = native_sign(SECRET, NOW, body);
    assert_eq!(
        native_verify(SECRET, Some("1800000000"), Some(&signature), body, NOW, 300),
        Ok(())
    );
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert_eq!(
        native_verify(
            SECRET,
            Some("1800000000"),
            Some(&signature),
            &changed,
            NOW,
            300
        ),
        Err(Refused::Mismatch)
    );
    // Headers as a client might send them (the first two lines of the input): refused or
    // verified, never a panic.
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines();
    let _ = native_verify(SECRET, lines.next(), lines.next(), body, NOW, 300);

    match decode(body) {
        Err(PhoneError::Invalid { field, message }) => {
            assert!(!field.is_empty() && !message.is_empty())
        }
        Err(other) => panic!("a body is invalid or an event, not {other:?}"),
        Ok(event) => {
            let id = event.call_id();
            assert!(!id.is_empty() && id == id.trim() && id.len() <= MAX_CALL_ID);
            assert!(!id.chars().any(char::is_control));
            if let CallEvent::Transferred { to_extension, .. } = &event {
                assert!(!to_extension.is_empty() && to_extension == to_extension.trim());
            }
            // Written back as a native event, it reads as the same event.
            let again = encode(&event).to_string();
            assert_eq!(decode(again.as_bytes()), Ok(event), "{again}");
        }
    }
});

/// The native JSON that describes `event`.
fn encode(event: &CallEvent) -> serde_json::Value {
    match event {
        CallEvent::Ringing(r) => json!({
            "event": "ringing", "call_id": r.call_id, "from": r.from, "to": r.to,
            "topic": r.topic, "caller_name": r.caller_name,
        }),
        CallEvent::Answered { call_id, extension } => {
            json!({ "event": "answered", "call_id": call_id, "extension": extension })
        }
        CallEvent::Transferred {
            call_id,
            to_extension,
        } => json!({ "event": "transferred", "call_id": call_id, "to_extension": to_extension }),
        CallEvent::Ended {
            call_id,
            cause,
            duration_secs,
            ringing,
        } => {
            let mut v = json!({ "event": "ended", "call_id": call_id, "cause": cause, "duration_secs": duration_secs });
            if let Some(r) = ringing {
                assert_eq!(r.call_id, *call_id);
                v["from"] = json!(r.from);
                v["to"] = json!(r.to);
                v["topic"] = json!(r.topic);
            }
            v
        }
        CallEvent::Voicemail {
            call_id,
            duration_secs,
            recording_url,
        } => json!({
            "event": "voicemail", "call_id": call_id, "duration_secs": duration_secs,
            "recording_url": recording_url,
        }),
        CallEvent::CallbackRequested { call_id, number } => {
            json!({ "event": "callback", "call_id": call_id, "number": number })
        }
        CallEvent::CallbackResult {
            callback_id,
            result,
        } => json!({ "event": "callback_result", "callback_id": callback_id, "result": result }),
        CallEvent::Satisfaction {
            call_id,
            score,
            comment,
        } => json!({ "event": "satisfaction", "call_id": call_id, "score": score, "comment": comment }),
        CallEvent::Ignored { .. } => panic!("no native event is ignored"),
    }
}
