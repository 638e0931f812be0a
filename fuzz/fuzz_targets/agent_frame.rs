//! The agent websocket: each text frame an agent's desktop sends, decoded as the
//! agent and supervisor connections decode it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::routing::protocol::{decode, ClientMessage, MAX_CLIENT_FRAME, MAX_REPLY_FRAME};

fuzz_target!(|data: &[u8]| {
    // A websocket text frame is UTF-8 (the websocket layer refuses anything else).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Err(e) => {
            assert!(
                ["not_json", "unknown_type", "bad_field", "too_large"].contains(&e.code),
                "{}",
                e.code
            );
            assert!(!e.message.is_empty());
        }
        Ok(message) => {
            // Only a reply (a long mail) may be longer than the other frames.
            let limit = if matches!(message, ClientMessage::Reply { .. }) {
                MAX_REPLY_FRAME
            } else {
                MAX_CLIENT_FRAME
            };
            assert!(text.len() <= limit);
            // Written again as a frame, the message reads as itself (unless writing out
            // its empty optional fields made it longer than a frame may be).
            let frame = wire(&message);
            if frame.len() <= limit {
                assert_eq!(decode(&frame), Ok(message), "{frame}");
            }
        }
    }
});

/// The frame for `message`: its tag as `"type"` beside its fields.
fn wire(message: &ClientMessage) -> String {
    let Value::Object(tagged) = serde_json::to_value(message).expect("a message serializes") else {
        panic!("a message serializes as an object");
    };
    let (kind, body) = tagged.into_iter().next().expect("one tag");
    let Value::Object(mut fields) = body else {
        panic!("a message's body is an object");
    };
    fields.insert("type".into(), Value::String(kind));
    Value::Object(fields).to_string()
}
