//! Mail kept aside: an auto-reply or a bounce that answers no conversation, mail with no
//! sender or one that is not an address, mail that cannot be read at all. It is never
//! routed, but it is not lost: the core keeps it whole ([`Core::keep_aside`]), counted by
//! why (`switchboard_email_unroutable_total{reason}`), for supervisors to see, and a
//! supervisor can turn one into a contact ([`Email::contact_from_kept`]): an interaction
//! queued and routed like any new mail, with the message in its history.
//!
//! [`Core::keep_aside`]: switchboard_contract::Core::keep_aside

use serde_json::json;
use sha2::{Digest, Sha256};
use switchboard_contract::{ChannelKind, KeptAside};

use crate::inbound::{truncate, truncate_chars, Opened, Outcome, Refused};
use crate::parse::{self, Mail};
use crate::Email;

/// Why mail is kept aside, as the labels of `switchboard_email_unroutable_total`.
pub const REASONS: [&str; 6] = [
    "auto_reply",
    "bounce",
    "loop",
    "no_sender",
    "bad_sender",
    "unreadable",
];

/// A message kept aside, as the store gives it back.
#[derive(Debug, Clone, Copy)]
pub struct KeptMessage<'a> {
    /// Its id in the store.
    pub id: &'a str,
    /// Why it was kept aside.
    pub reason: &'a str,
    /// The message as it came (`None` when it was kept before its bytes were).
    pub raw: Option<&'a [u8]>,
    /// Who sent it, when known.
    pub sender: Option<&'a str>,
    /// Its subject.
    pub subject: Option<&'a str>,
    /// The start of its text.
    pub preview: Option<&'a str>,
}

/// Why a message kept aside was not made a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAContact {
    /// It names no sender: the customer's address must be given.
    NoSender,
    /// The address is refused, and why.
    Invalid(String),
    /// The store cannot take it now.
    Temporary(String),
}

/// A contact made of a message kept aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// Its interaction.
    pub interaction_id: String,
    /// False when this message had made it before (the same interaction).
    pub created: bool,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Email {
    /// Keeps a message aside, once, and counts it by `reason` (one of [`REASONS`]).
    pub(crate) async fn aside(
        &self,
        raw: &[u8],
        mail: Option<&Mail>,
        envelope_from: Option<&str>,
        reason: &'static str,
        detail: String,
    ) -> Result<Outcome, Refused> {
        debug_assert!(
            REASONS.contains(&reason),
            "{reason} is not a kept-aside reason"
        );
        let digest = hex(&Sha256::digest(raw));
        let sender = mail.and_then(|m| m.from.clone()).or_else(|| {
            envelope_from
                .filter(|e| e.contains('@'))
                .map(|e| e.trim().to_ascii_lowercase())
        });
        let kept = KeptAside {
            channel: ChannelKind::Email,
            key: mail.map_or_else(|| format!("sha256:{digest}"), |m| m.key.clone()),
            fingerprint: mail.map_or(digest, |m| m.fingerprint.clone()),
            reason: reason.into(),
            detail,
            sender,
            subject: mail
                .and_then(|m| m.subject.as_deref())
                .map(|s| truncate(s, 900)),
            preview: mail
                .map(|m| truncate_chars(&m.text, 500))
                .filter(|p| !p.is_empty()),
            raw: raw.to_vec(),
        };
        if !self.core.keep_aside(kept).await? {
            return Ok(Outcome::Duplicate);
        }
        metrics::counter!("switchboard_email_messages_total", "outcome" => "unroutable")
            .increment(1);
        metrics::counter!("switchboard_email_unroutable_total", "reason" => reason).increment(1);
        Ok(Outcome::Recorded(format!("kept aside: {reason}")))
    }

    /// Makes a contact of a message kept aside, for supervisor `by`: from its sender, or
    /// from `email` when given (the message has none, or names the wrong one). Made once:
    /// asked again, it answers the same interaction.
    pub async fn contact_from_kept(
        &self,
        kept: KeptMessage<'_>,
        email: Option<&str>,
        by: &str,
    ) -> Result<Made, NotAContact> {
        let read = kept.raw.map(|raw| {
            // Read without the header limit: a person chose this one.
            parse::read_with(raw, &self.limits, usize::MAX).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(raw).replace('\0', "");
                stored(kept, Some(truncate(text.trim(), 1 << 20)))
            })
        });
        let mail = read.unwrap_or_else(|| stored(kept, kept.preview.map(str::to_string)));
        let from = email
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .or_else(|| mail.from.clone())
            .or_else(|| kept.sender.map(str::to_string))
            .ok_or(NotAContact::NoSender)?;
        let extra = json!({ "kept_aside": { "id": kept.id, "reason": kept.reason, "by": by } });
        match self.open(&mail, &from, &mail.to, None, Some(extra)).await {
            Ok(Opened::Created(interaction_id)) => Ok(Made {
                interaction_id,
                created: true,
            }),
            Ok(Opened::Known(interaction_id)) => Ok(Made {
                interaction_id,
                created: false,
            }),
            Ok(Opened::Invalid(why)) => Err(NotAContact::Invalid(why)),
            Err(Refused::Temporary(why)) => Err(NotAContact::Temporary(why)),
            Err(Refused::Busy(secs)) => Err(NotAContact::Temporary(format!(
                "the server is past its capacity; try again in {secs} s"
            ))),
        }
    }
}

/// A message known only by what was kept of it: its sender, subject and `text`.
fn stored(kept: KeptMessage<'_>, text: Option<String>) -> Mail {
    Mail {
        key: format!("kept:{}", kept.id),
        fingerprint: hex(&Sha256::digest(kept.id.as_bytes())),
        message_id: None,
        answers: Vec::new(),
        token: None,
        from: kept.sender.map(str::to_string),
        from_name: None,
        to: Vec::new(),
        subject: kept.subject.map(str::to_string),
        text: text.unwrap_or_default(),
        html: false,
        files: Vec::new(),
        noise: None,
        list: false,
    }
}
