//! Customer identities: parsed and normalised once, at the edge, so the store only ever
//! sees one spelling of each (parse, don't validate).

use std::fmt;

use phonenumber::country::Id as Region;
use serde::Serialize;
use switchboard_contract::CustomerHint;

/// The kinds of identity a customer can be found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// The customer's id in the business's CRM: the most trusted.
    ExternalId,
    /// An email address, lowercased.
    Email,
    /// A phone number in E.164.
    Phone,
    /// A web chat visitor id.
    VisitorId,
}

impl IdentityKind {
    /// Every kind, most trusted first: when a contact's identities point at different
    /// customers, the first kind found decides.
    pub const BY_TRUST: [IdentityKind; 4] =
        [Self::ExternalId, Self::Email, Self::Phone, Self::VisitorId];

    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalId => "external_id",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::VisitorId => "visitor_id",
        }
    }

    /// Parses [`IdentityKind::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::BY_TRUST.into_iter().find(|k| k.as_str() == name)
    }
}

/// One normalised identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Identity {
    /// What kind it is.
    pub kind: IdentityKind,
    /// Its normalised value.
    pub value: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.value)
    }
}

/// An identity that could not be read, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct IdentityError {
    /// The field at fault.
    pub field: String,
    /// Why.
    pub message: String,
}

/// Reads identities with the site's phone region.
#[derive(Debug, Clone, Default)]
pub struct IdentityParser {
    region: Option<Region>,
}

const MAX_ID_LEN: usize = 128;

impl IdentityParser {
    /// A parser; `region` reads national phone numbers ("" accepts only international ones).
    pub fn new(region: &str) -> Self {
        IdentityParser {
            region: region.parse().ok(),
        }
    }

    /// Parses one identity of `kind`; `field` names it in errors.
    pub fn parse(
        &self,
        kind: IdentityKind,
        raw: &str,
        field: &str,
    ) -> Result<Identity, IdentityError> {
        let err = |message: String| IdentityError {
            field: field.to_string(),
            message,
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(err("must not be empty".into()));
        }
        let value = match kind {
            IdentityKind::Email => normalise_email(raw).map_err(err)?,
            IdentityKind::Phone => self.normalise_phone(raw).map_err(err)?,
            IdentityKind::VisitorId | IdentityKind::ExternalId => {
                if raw.len() > MAX_ID_LEN {
                    return Err(err(format!("must be at most {MAX_ID_LEN} bytes")));
                }
                if raw.chars().any(char::is_control) {
                    return Err(err("must not contain control characters".into()));
                }
                raw.to_string()
            }
        };
        Ok(Identity { kind, value })
    }

    /// Every identity a channel's hint carries, most trusted first. `prefix` is the JSON
    /// path of the hint (`customer`) for error messages.
    pub fn from_hint(
        &self,
        hint: &CustomerHint,
        prefix: &str,
    ) -> Result<Vec<Identity>, IdentityError> {
        let fields = [
            (IdentityKind::ExternalId, &hint.external_id),
            (IdentityKind::Email, &hint.email),
            (IdentityKind::Phone, &hint.phone),
            (IdentityKind::VisitorId, &hint.visitor_id),
        ];
        let mut out = Vec::new();
        for (kind, value) in fields {
            if let Some(v) = value {
                out.push(self.parse(kind, v, &format!("{prefix}.{}", kind.as_str()))?);
            }
        }
        Ok(out)
    }

    fn normalise_phone(&self, raw: &str) -> Result<String, String> {
        if raw.len() > 64 {
            return Err("is too long to be a phone number".into());
        }
        let international = raw.starts_with('+') || raw.starts_with("00");
        if !international && self.region.is_none() {
            return Err(format!(
                "'{raw}' has no country code: write it in international form (+CC…), or set customers.phone_default_region"
            ));
        }
        let raw = match raw.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => raw.to_string(),
        };
        let number = phonenumber::parse(self.region, &raw)
            .map_err(|_| format!("'{raw}' is not a phone number"))?;
        if !phonenumber::is_valid(&number) {
            return Err(format!("'{raw}' is not a valid phone number"));
        }
        Ok(number.format().mode(phonenumber::Mode::E164).to_string())
    }
}

/// Lowercases the whole address: mailbox names are case-insensitive in practice, and a
/// customer who writes once as Ann@Example.com and once as ann@example.com is one person.
fn normalise_email(raw: &str) -> Result<String, String> {
    if raw.len() > 254 {
        return Err("is longer than an email address can be (254)".into());
    }
    // A bare address only: "Ann <ann@example.com>" is a mail header, not an identity.
    let options = email_address::Options::default().without_display_text();
    let parsed = email_address::EmailAddress::parse_with_options(raw, options)
        .map_err(|e| format!("'{raw}' is not a valid email address ({e})"))?;
    if !parsed.domain().contains('.') && !parsed.domain().starts_with('[') {
        return Err(format!(
            "'{raw}' is not a valid email address (the domain has no dot)"
        ));
    }
    Ok(parsed.as_str().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_trimmed() {
        let p = IdentityParser::default();
        let id = p
            .parse(IdentityKind::Email, "  Ann.Lee@Example.COM ", "email")
            .unwrap();
        assert_eq!(id.value, "ann.lee@example.com");
    }

    #[test]
    fn bad_emails_name_their_field() {
        let p = IdentityParser::default();
        for bad in [
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
            "Ann <ann@example.com>",
        ] {
            let e = p
                .parse(IdentityKind::Email, bad, "customer.email")
                .unwrap_err();
            assert_eq!(e.field, "customer.email", "{bad}");
        }
    }

    #[test]
    fn phones_become_e164_whatever_their_spelling() {
        let p = IdentityParser::default();
        for raw in ["+44 20 7946 0018", "+442079460018", "0044 (20) 7946-0018"] {
            assert_eq!(
                p.parse(IdentityKind::Phone, raw, "phone").unwrap().value,
                "+442079460018",
                "{raw}"
            );
        }
    }

    #[test]
    fn national_numbers_need_a_region() {
        let none = IdentityParser::default();
        assert!(none
            .parse(IdentityKind::Phone, "020 7946 0018", "phone")
            .is_err());
        let gb = IdentityParser::new("GB");
        assert_eq!(
            gb.parse(IdentityKind::Phone, "020 7946 0018", "phone")
                .unwrap()
                .value,
            "+442079460018"
        );
        let cn = IdentityParser::new("CN");
        assert_eq!(
            cn.parse(IdentityKind::Phone, "138 0013 8000", "phone")
                .unwrap()
                .value,
            "+8613800138000"
        );
    }

    #[test]
    fn nonsense_numbers_are_refused() {
        let p = IdentityParser::default();
        for bad in ["+1", "+44 12", "hello", "+999 1234 5678"] {
            assert!(p.parse(IdentityKind::Phone, bad, "phone").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hint_yields_its_identities_most_trusted_first() {
        let p = IdentityParser::default();
        let hint = CustomerHint {
            email: Some("a@example.com".into()),
            phone: Some("+14155550123".into()),
            visitor_id: Some("v-1".into()),
            external_id: Some("crm-9".into()),
            name: None,
            claimed_email: Some("b@example.com".into()),
        };
        let kinds: Vec<_> = p
            .from_hint(&hint, "customer")
            .unwrap()
            .into_iter()
            .map(|i| i.kind)
            .collect();
        assert_eq!(kinds, IdentityKind::BY_TRUST);
    }
}
