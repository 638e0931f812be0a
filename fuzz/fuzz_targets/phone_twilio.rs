//! The phone channel's Twilio webhooks: the form body checked against
//! `X-Twilio-Signature`, then decoded as the incoming-call webhook and as a status
//! callback, as the handlers act on them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_phone::signature::twilio_sign;
use switchboard_phone::twilio::{decode_status, decode_voice, verified_params, Signed};
use switchboard_phone::{CallEvent, PhoneError, Ringing, MAX_CALL_ID};

const TOKEN: &str = "fuzz-auth-token";
const PUBLIC: &str = "https://switchboard.example.com/";
const PATH: &str = "/channels/phone/twilio/voice";

fuzz_target!(|body: &[u8]| {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let url = format!("{}{PATH}", PUBLIC.trim_end_matches('/'));
    let signature = twilio_sign(TOKEN, &url, &params);
    // Signed as Twilio signs, the body verifies and gives its parameters.
    let got = verified_params(
        TOKEN,
        PUBLIC,
        PATH,
        Signed {
            signature: Some(&signature),
            settings: None,
        },
        body,
    )
    .expect("a correctly signed body verifies");
    assert_eq!(got, params);
    // Unsigned, signed for another URL, or with a parameter added: refused.
    for (path, signature, body) in [
        (PATH, None, body.to_vec()),
        (
            "/channels/phone/twilio/status",
            Some(&signature),
            body.to_vec(),
        ),
        (PATH, Some(&signature), [body, b"&Extra=1"].concat()),
    ] {
        let signed = Signed {
            signature: signature.map(String::as_str),
            settings: None,
        };
        assert!(matches!(
            verified_params(TOKEN, PUBLIC, path, signed, &body),
            Err(PhoneError::Unauthorized(_))
        ));
    }
    // Any signature header (here, the first value): refused or verified, never a panic.
    let _ = verified_params(
        TOKEN,
        PUBLIC,
        PATH,
        Signed {
            signature: params.first().map(|(_, v)| v.as_str()),
            settings: params.get(1).map(|(_, v)| v.as_str()),
        },
        body,
    );

    match decode_voice(&got) {
        Err(e) => invalid(e),
        Ok(None) => {}
        Ok(Some(r)) => {
            call_id(&r.call_id);
            assert!(!r.from.is_empty());
            let again = pairs(&voice(&r));
            assert_eq!(decode_voice(&again), Ok(Some(r)));
        }
    }
    match decode_status(&got, None) {
        Err(e) => invalid(e),
        Ok(event) => {
            call_id(event.call_id());
            let again = pairs(&status(&event));
            assert_eq!(decode_status(&again, None), Ok(event));
        }
    }
});

fn invalid(e: PhoneError) {
    match e {
        PhoneError::Invalid { field, message } => {
            assert!(!field.is_empty() && !message.is_empty())
        }
        other => panic!("verified parameters are invalid or an event, not {other:?}"),
    }
}

fn call_id(id: &str) {
    assert!(!id.is_empty() && id == id.trim() && id.len() <= MAX_CALL_ID);
    assert!(!id.chars().any(char::is_control));
}

fn pairs(p: &[(&str, String)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// The parameters of an incoming-call webhook for `r`.
fn voice(r: &Ringing) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("CallSid", r.call_id.clone()),
        ("Direction", "inbound".into()),
        ("From", r.from.clone()),
    ];
    p.extend(r.to.clone().map(|t| ("To", t)));
    p.extend(r.caller_name.clone().map(|n| ("CallerName", n)));
    p
}

/// The parameters of a status callback for `event`.
fn status(event: &CallEvent) -> Vec<(&'static str, String)> {
    let mut p = vec![("CallSid", event.call_id().to_string())];
    match event {
        CallEvent::Answered { extension, .. } => {
            assert_eq!(*extension, None);
            p.push(("CallStatus", "in-progress".into()));
            p.push(("StatusCallbackEvent", "answered".into()));
        }
        CallEvent::Ended {
            cause,
            duration_secs,
            ringing,
            ..
        } => {
            p.push(("CallStatus", cause.clone()));
            p.extend(duration_secs.map(|d| ("CallDuration", d.to_string())));
            if let Some(r) = ringing {
                p.push(("From", r.from.clone()));
                p.extend(r.to.clone().map(|t| ("To", t)));
            }
        }
        CallEvent::Ignored { .. } => p.push(("CallStatus", "queued".into())),
        other => panic!("no status callback is {other:?}"),
    }
    p
}
