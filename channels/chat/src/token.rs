//! The customer token a business's own site signs to tell Switchboard who a logged-in
//! visitor is: `base64url(JSON claims) "." hex(HMAC-SHA256(secret, base64url part))`,
//! with the claims `{"email"?, "external_id"?, "name"?, "exp"}` (`exp` in Unix seconds).
//! A token that does not verify, or has expired, is refused; the visitor may still chat
//! anonymously.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The customer's email address.
    pub email: Option<String>,
    /// The customer's id in the business's CRM.
    pub external_id: Option<String>,
    /// A display name.
    pub name: Option<String>,
    /// When it expires (Unix seconds).
    pub exp: u64,
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

fn mac(secret: &str, payload: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(payload.as_bytes());
    m
}

/// Signs claims (what a business's site does; here for tests and tools).
pub fn sign(secret: &str, claims_json: &str) -> String {
    let payload = b64url(claims_json.as_bytes());
    let sig: String = mac(secret, &payload)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{payload}.{sig}")
}

/// Verifies a token at `now` (Unix seconds).
pub fn verify(secret: &str, token: &str, now: u64) -> Result<Claims, &'static str> {
    if secret.is_empty() {
        return Err("customer tokens are not enabled (chat.customer_token_secret)");
    }
    let (payload, sig) = token.split_once('.').ok_or("not a customer token")?;
    let sig: Vec<u8> = (0..sig.len())
        .step_by(2)
        .map(|i| {
            sig.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .ok_or("not a customer token")?;
    mac(secret, payload)
        .verify_slice(&sig)
        .map_err(|_| "the customer token's signature does not match")?;
    let claims: Claims = unb64url(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the customer token's claims are unreadable")?;
    if claims.exp <= now {
        return Err("the customer token has expired");
    }
    if claims.email.is_none() && claims.external_id.is_none() {
        return Err("the customer token names no customer (email or external_id)");
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_expire() {
        let t = sign("s", r#"{"email":"vip@example.com","name":"V","exp":2000}"#);
        let c = verify("s", &t, 1000).unwrap();
        assert_eq!(c.email.as_deref(), Some("vip@example.com"));
        assert_eq!(verify("s", &t, 2000), Err("the customer token has expired"));
        assert!(verify("t", &t, 1000).is_err());
        assert!(verify("s", "garbage", 1000).is_err());
        let (p, s) = t.split_once('.').unwrap();
        let forged = format!(
            "{}.{s}",
            b64url(br#"{"email":"other@example.com","exp":2000}"#)
        );
        assert!(verify("s", &forged, 1000).is_err(), "{p}");
        assert_eq!(
            unb64url(&b64url(b"any bytes \xff\x00")).unwrap(),
            b"any bytes \xff\x00"
        );
    }
}
