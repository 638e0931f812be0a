//! Webhook signatures, as each side documents them.
//!
//! - **Native** (Switchboard's own format, both ways): `X-Switchboard-Timestamp` holds the
//!   Unix time in seconds and `X-Switchboard-Signature` holds `v1=` and the lowercase hex
//!   HMAC-SHA256, keyed with the shared secret, of the timestamp, a `.`, and the raw body.
//!   A timestamp further than the allowed skew from now is refused, so a captured request
//!   cannot be replayed later.
//! - **Twilio** (`X-Twilio-Signature`): the Base64 HMAC-SHA1, keyed with the account's auth
//!   token, of the full URL Twilio requested followed by every POST parameter's name and
//!   value, sorted by name, with nothing between them.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The native timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-switchboard-timestamp";
/// The native signature header.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A header is missing or unreadable.
    Missing(&'static str),
    /// The timestamp is too far from now.
    Stale,
    /// The signature does not match.
    Mismatch,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Missing(h) => write!(f, "the {h} header is missing or malformed"),
            Refused::Stale => {
                f.write_str("the timestamp is too far from now; sign each request when it is sent")
            }
            Refused::Mismatch => f.write_str("the signature does not match the body"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn native_mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The native signature header's value for `body` sent at `timestamp`.
pub fn native_sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mac = native_mac(secret, &timestamp.to_string(), body);
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a native request's headers against its body, at `now` (Unix seconds).
pub fn native_verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
    max_skew_secs: u64,
) -> Result<(), Refused> {
    let timestamp = timestamp.ok_or(Refused::Missing("X-Switchboard-Timestamp"))?;
    let at: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refused::Missing("X-Switchboard-Timestamp"))?;
    if at.abs_diff(now) > max_skew_secs {
        return Err(Refused::Stale);
    }
    let given = signature
        .and_then(|s| s.trim().strip_prefix("v1="))
        .and_then(unhex)
        .ok_or(Refused::Missing("X-Switchboard-Signature"))?;
    native_mac(secret, timestamp.trim(), body)
        .verify_slice(&given)
        .map_err(|_| Refused::Mismatch)
}

/// The algorithms Twilio signs webhooks with: HMAC-SHA1 keyed with the auth token (the
/// default), or HMAC-SHA256 when the request's `X-Twilio-Webhooks-Signature-Settings`
/// names it (webhooks signed with a shared key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioAlgorithm {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
}

impl TwilioAlgorithm {
    /// The algorithm `X-Twilio-Webhooks-Signature-Settings` names (`key=…,algorithm=…`),
    /// as Twilio's validator reads it: none, or none named, is HMAC-SHA1; one it does not
    /// know is `None` (refused).
    pub fn from_settings(header: Option<&str>) -> Option<TwilioAlgorithm> {
        let named = header.unwrap_or_default().split(',').find_map(|part| {
            let (name, value) = part.split_once('=')?;
            (name.trim() == "algorithm" && !value.trim().is_empty()).then(|| value.trim())
        });
        match named.map(str::to_ascii_uppercase).as_deref() {
            None | Some("HMAC_SHA1") => Some(TwilioAlgorithm::Sha1),
            Some("HMAC_SHA256") => Some(TwilioAlgorithm::Sha256),
            Some(_) => None,
        }
    }
}

/// What Twilio signs: the URL, then each parameter's name and value, names sorted and
/// each name's values sorted, each distinct pair once (as Twilio's own validator
/// computes it).
fn twilio_data(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    data
}

/// Twilio's signature of a request to `url` with form `params`, with `algorithm`.
pub fn twilio_sign_with(
    algorithm: TwilioAlgorithm,
    key: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    let data = twilio_data(url, params);
    let digest = match algorithm {
        TwilioAlgorithm::Sha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        TwilioAlgorithm::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Twilio's (HMAC-SHA1) signature of a request to `url` with form `params`.
pub fn twilio_sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    twilio_sign_with(TwilioAlgorithm::Sha1, auth_token, url, params)
}

/// The two forms of a URL Twilio's validator checks a signature against: without its
/// port, and with it (the scheme's default added when it has none), since Twilio signs
/// some requests one way and some the other.
pub fn twilio_url_forms(url: &str) -> [String; 2] {
    let Some((scheme, rest)) = url.split_once("://") else {
        return [url.to_string(), url.to_string()];
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    };
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    [
        format!("{scheme}://{host}{tail}"),
        format!("{scheme}://{host}:{}{tail}", port.unwrap_or(default_port)),
    ]
}

/// Checks `X-Twilio-Signature` as Twilio's validator does: computed with `algorithm`
/// over `url` without its port and with it, compared in constant time.
pub fn twilio_verify(
    algorithm: TwilioAlgorithm,
    key: &str,
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Result<(), Refused> {
    let given = signature
        .filter(|s| !s.is_empty())
        .ok_or(Refused::Missing("X-Twilio-Signature"))?;
    let mut valid = false;
    for form in twilio_url_forms(url) {
        valid |= same(&twilio_sign_with(algorithm, key, &form, params), given);
    }
    if valid {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// Compares two strings in time that depends only on their lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"event":"ringing","call_id":"c1","from":"+4930123456"}"#;
        let sig = native_sign("s3cret", 1_800_000_000, body);
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        let ok = |ts: &str, sig: &str, body: &[u8], now: u64| {
            native_verify("s3cret", Some(ts), Some(sig), body, now, 300)
        };
        assert_eq!(ok("1800000000", &sig, body, 1_800_000_100), Ok(()));
        assert_eq!(
            ok("1800000000", &sig, b"{}", 1_800_000_000),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            ok("1800000001", &sig, body, 1_800_000_000),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            ok("1800000000", &sig, body, 1_800_000_301),
            Err(Refused::Stale)
        );
        assert_eq!(
            native_verify("s3cret", None, Some(&sig), body, 0, 300),
            Err(Refused::Missing("X-Switchboard-Timestamp"))
        );
        assert_eq!(
            ok("1800000000", "v1=zz", body, 1_800_000_000),
            Err(Refused::Missing("X-Switchboard-Signature"))
        );
    }

    #[test]
    fn the_twilio_signature_matches_an_independent_computation() {
        // Computed with Python's hmac module: base64(hmac_sha1("12345", url + sorted
        // name/value pairs)), for the example in Twilio's security documentation.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let expected = TWILIO_EXAMPLE;
        let sha1 = TwilioAlgorithm::Sha1;
        assert_eq!(twilio_sign("12345", url, &params), expected);
        assert_eq!(
            twilio_verify(sha1, "12345", url, &params, Some(expected)),
            Ok(())
        );
        assert_eq!(
            twilio_verify(sha1, "12346", url, &params, Some(expected)),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            twilio_verify(
                sha1,
                "12345",
                "https://mycompany.com/myapp.php",
                &params,
                Some(expected)
            ),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn twilio_urls_are_checked_with_and_without_their_port() {
        assert_eq!(
            twilio_url_forms("https://x.example.com/a?b=1"),
            [
                "https://x.example.com/a?b=1".to_string(),
                "https://x.example.com:443/a?b=1".to_string()
            ]
        );
        assert_eq!(
            twilio_url_forms("http://x.example.com:8080/a"),
            [
                "http://x.example.com/a".to_string(),
                "http://x.example.com:8080/a".to_string()
            ]
        );
        assert_eq!(
            twilio_url_forms("http://x.example.com"),
            [
                "http://x.example.com".to_string(),
                "http://x.example.com:80".to_string()
            ]
        );
    }

    #[test]
    fn the_signature_settings_header_names_the_algorithm() {
        let alg = TwilioAlgorithm::from_settings;
        assert_eq!(alg(None), Some(TwilioAlgorithm::Sha1));
        assert_eq!(alg(Some("key=k1")), Some(TwilioAlgorithm::Sha1));
        assert_eq!(
            alg(Some("key=k1, algorithm=HMAC_SHA256")),
            Some(TwilioAlgorithm::Sha256)
        );
        assert_eq!(alg(Some("algorithm=HMAC_MD5")), None);
    }

    const TWILIO_EXAMPLE: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
}
