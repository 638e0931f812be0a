//! The chat channel's customer websocket: each text frame a visitor's page sends,
//! decoded as the connection handler decodes it, and the customer token a `start`
//! frame may carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_chat::protocol::{decode, ClientFrame};
use switchboard_chat::token;

const SECRET: &str = "fuzz-site-secret";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    // A websocket text frame is UTF-8 (the websocket layer refuses anything else).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Err(e) => assert!(e.starts_with("not a chat frame")),
        Ok(frame) => {
            // Written again, the frame reads as itself.
            let written = serde_json::to_string(&frame).expect("a frame serializes");
            assert_eq!(decode(&written).as_ref(), Ok(&frame), "{written}");
            if let ClientFrame::Start {
                customer_token: Some(t),
                ..
            } = &frame
            {
                let _ = token::verify(SECRET, t, NOW);
            }
        }
    }
    // The whole text as a token: refused or verified, never a panic.
    let _ = token::verify(SECRET, text, NOW);
    // The text as claims, signed by the site: the signature always verifies, so any
    // refusal is about the claims.
    match token::verify(SECRET, &token::sign(SECRET, text), NOW) {
        Ok(claims) => {
            assert!(claims.exp > NOW);
            assert!(claims.email.is_some() || claims.external_id.is_some());
        }
        Err(why) => assert!(
            why != "not a customer token" && why != "the customer token's signature does not match",
            "{why}"
        ),
    }
});
