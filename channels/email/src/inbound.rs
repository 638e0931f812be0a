//! What an arriving message means, whichever way it came (SMTP or IMAP):
//!
//! - a **new conversation**: an interaction for the sender, routed by tier, with the
//!   message (its text, recipients, attachments) in the history;
//! - a **reply** (by In-Reply-To / References, or the `[#token]` in its subject): a
//!   message on the interaction it answers; a reply to a closed one reopens it or starts
//!   a linked one (`email.reply_to_closed`), offered first to the agent who handled it;
//! - **noise** (an auto-reply, a bounce, Switchboard's own mail come back): recorded on
//!   the conversation it answers, or kept aside, never routed and never answered;
//! - **unroutable** (not a message, no sender, absurd headers): kept aside with why.
//!
//! Everything is idempotent by the message's key (its Message-ID, or its digest): the
//! same message delivered twice — a retried SMTP session, a re-polled mailbox — changes
//! nothing the second time. The message is acknowledged only after this is committed.

use serde_json::json;
use switchboard_contract::{
    Attachment, ChannelEvent, ChannelKind, Contact, CustomerHint, IntakeError, NewInteraction,
    Recorded,
};

use crate::parse::{self, Mail};
use crate::Email;

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new conversation.
    New {
        /// Its interaction.
        interaction_id: String,
    },
    /// A message on an existing conversation.
    Threaded {
        /// The interaction.
        interaction_id: String,
        /// It had ended and was reopened (or a linked one started).
        reopened: bool,
    },
    /// Recorded, not routed (noise, or unroutable), and why.
    Recorded(String),
    /// Delivered before: nothing changed.
    Duplicate,
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Try again later (SMTP 451): the store cannot commit now.
    Temporary(String),
}

impl From<IntakeError> for Refused {
    fn from(e: IntakeError) -> Self {
        Refused::Temporary(e.to_string())
    }
}

/// The history kind of an arriving customer message.
pub const RECEIVED: &str = "email_received";
/// The history kind of a reply sent by an agent.
pub const SENT: &str = "email_sent";

/// The keys an email is known by in the channel's events.
pub(crate) fn message_key(id: &str) -> String {
    format!("msg:{id}")
}

/// The key a new conversation is submitted under.
pub(crate) fn contact_key(id: &str) -> String {
    format!("email:{id}")
}

/// The key of a conversation's subject token.
pub(crate) fn token_key(token: &str) -> String {
    format!("token:{token}")
}

/// The keys under which the conversation a message answers may be known, best first:
/// each message it names (as a message in a conversation, then as the one that started
/// it), then its subject's token.
pub fn thread_keys(mail: &Mail) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for id in &mail.answers {
        keys.push(message_key(id));
        keys.push(contact_key(id));
    }
    if let Some(t) = &mail.token {
        keys.push(token_key(t));
    }
    keys
}

impl Email {
    /// Takes one raw message, delivered by SMTP (`envelope_from`, `recipients`) or IMAP.
    pub async fn take(
        &self,
        raw: &[u8],
        envelope_from: Option<&str>,
        recipients: &[String],
    ) -> Result<Outcome, Refused> {
        let mail = match parse::read(raw, &self.limits) {
            Ok(m) => m,
            Err(why) => {
                return self
                    .aside(
                        &format!("unreadable:{}", digest(raw)),
                        "email_unroutable",
                        json!({ "reason": why.to_string(), "size": raw.len() }),
                    )
                    .await
            }
        };
        // A bounce is announced by an empty envelope sender too.
        let noise = mail
            .noise
            .clone()
            .or_else(|| (envelope_from == Some("")).then_some(parse::Noise::Bounce));
        let thread = self.thread_of(&mail).await?;
        if let Some(noise) = noise {
            metrics::counter!("switchboard_email_messages_total", "outcome" => noise.kind())
                .increment(1);
            let data = json!({
                "message_id": mail.message_id, "from": mail.from, "subject": mail.subject,
                "reason": match &noise { parse::Noise::AutoReply(why) => why.clone(), parse::Noise::Bounce => "a delivery report".into(), parse::Noise::Loop => "Switchboard's own mail".into() },
            });
            return match thread {
                Some(t) => self
                    .on(&t.contact_key, &mail, noise.kind(), data)
                    .await
                    .map(|r| match r {
                        Recorded::Duplicate => Outcome::Duplicate,
                        _ => Outcome::Recorded(noise.kind().into()),
                    }),
                None => {
                    self.aside(&format!("noise:{}", mail.key), noise.kind(), data)
                        .await
                }
            };
        }
        let Some(from) = mail.from.clone() else {
            metrics::counter!("switchboard_email_messages_total", "outcome" => "unroutable")
                .increment(1);
            return self
                .aside(&format!("unroutable:{}", mail.key), "email_unroutable", json!({ "reason": "the message has no sender (From)", "message_id": mail.message_id, "subject": mail.subject }))
                .await;
        };
        let recipients = if recipients.is_empty() {
            mail.to.clone()
        } else {
            recipients.to_vec()
        };
        match thread {
            Some(t) if matches!(t.state.as_str(), "completed" | "abandoned") => {
                self.closed_thread(t, &mail, &from, &recipients).await
            }
            Some(t) => {
                let data = self.received(&mail, &recipients);
                match self.on(&t.contact_key, &mail, RECEIVED, data).await? {
                    Recorded::Duplicate => Ok(Outcome::Duplicate),
                    _ => {
                        metrics::counter!("switchboard_email_messages_total", "outcome" => "threaded").increment(1);
                        self.core
                            .tell_agent(&t.interaction_id, json!({ "type": "message", "channel": "email", "subject": mail.subject }))
                            .await;
                        Ok(Outcome::Threaded {
                            interaction_id: t.interaction_id,
                            reopened: false,
                        })
                    }
                }
            }
            None => self.start(&mail, &from, &recipients, None, None).await,
        }
    }

    /// The conversation a message answers: by the messages it names, then its token.
    async fn thread_of(&self, mail: &Mail) -> Result<Option<Contact>, Refused> {
        let keys = thread_keys(mail);
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(self.core.find_contact(ChannelKind::Email, &keys).await?)
    }

    /// A reply to a conversation that has ended.
    async fn closed_thread(
        &self,
        t: Contact,
        mail: &Mail,
        from: &str,
        recipients: &[String],
    ) -> Result<Outcome, Refused> {
        let agent = t.agent_id.clone();
        if self.settings.reply_to_closed == "new" {
            return self
                .start(mail, from, recipients, agent, Some(t.interaction_id))
                .await;
        }
        // Reopen: the message is recorded first (once), then the interaction waits again.
        let data = self.received(mail, recipients);
        let recorded = self.on(&t.contact_key, mail, RECEIVED, data).await?;
        let reopened = self
            .core
            .reopen(
                &t.interaction_id,
                agent.as_deref(),
                "the customer wrote again",
            )
            .await?;
        if recorded == Recorded::Duplicate && !reopened {
            return Ok(Outcome::Duplicate);
        }
        metrics::counter!("switchboard_email_messages_total", "outcome" => "reopened").increment(1);
        Ok(Outcome::Threaded {
            interaction_id: t.interaction_id,
            reopened: true,
        })
    }

    /// A new conversation (linked to `follows` when it continues a closed one).
    async fn start(
        &self,
        mail: &Mail,
        from: &str,
        recipients: &[String],
        preferred_agent: Option<String>,
        follows: Option<String>,
    ) -> Result<Outcome, Refused> {
        let key = contact_key(&mail.key);
        let accepted = self
            .core
            .submit(NewInteraction {
                channel: ChannelKind::Email,
                idempotency_key: key.clone(),
                customer: CustomerHint {
                    email: Some(from.to_string()),
                    name: mail.from_name.clone(),
                    ..CustomerHint::default()
                },
                topic: None,
                subject: mail
                    .subject
                    .clone()
                    .filter(|s| !s.is_empty())
                    .map(|s| truncate(&s, 900)),
                body: Some(truncate(&mail.text, 1 << 20)).filter(|b| !b.is_empty()),
                preferred_agent,
            })
            .await;
        let accepted = match accepted {
            Ok(a) => a,
            // A sender address the core refuses (not an address): kept aside with why.
            Err(IntakeError::Invalid { field, message }) => {
                return self
                    .aside(&format!("unroutable:{}", mail.key), "email_unroutable", json!({ "reason": format!("{field}: {message}"), "message_id": mail.message_id }))
                    .await
            }
            Err(e) => return Err(e.into()),
        };
        let mut data = self.received(mail, recipients);
        if let Some(f) = follows {
            data["follows"] = json!(f);
        }
        let recorded = self.on(&key, mail, RECEIVED, data).await?;
        if !accepted.created && recorded == Recorded::Duplicate {
            return Ok(Outcome::Duplicate);
        }
        metrics::counter!("switchboard_email_messages_total", "outcome" => "new").increment(1);
        Ok(Outcome::New {
            interaction_id: accepted.interaction_id,
        })
    }

    /// The history data of an arriving message (its files added by [`with_files`]).
    fn received(&self, mail: &Mail, recipients: &[String]) -> serde_json::Value {
        json!({
            "message_id": mail.message_id, "from": mail.from, "from_name": mail.from_name,
            "to": recipients, "subject": mail.subject, "text": truncate(&mail.text, 1 << 20),
            "html": mail.html, "answers": mail.answers,
            "attachments": mail.files.iter().map(|f| json!({ "name": f.name, "content_type": f.content_type, "size": f.data.len() })).collect::<Vec<_>>(),
        })
    }

    /// Records an event of a message on a conversation, once per message, with the
    /// message's files (those over the size limit listed without their content) when it
    /// is a customer's message.
    async fn on(
        &self,
        contact: &str,
        mail: &Mail,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Recorded, Refused> {
        let max = self.settings.max_attachment_bytes;
        let files = if kind == RECEIVED {
            mail.files
                .iter()
                .map(|f| Attachment {
                    name: truncate(&f.name, 255),
                    content_type: truncate(&f.content_type, 127),
                    size: f.data.len() as u64,
                    data: (f.data.len() <= max).then(|| f.data.clone()),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(self
            .core
            .record(ChannelEvent {
                channel: ChannelKind::Email,
                contact_key: contact.to_string(),
                event_key: message_key(&mail.key),
                kind: kind.into(),
                data,
                files,
            })
            .await?)
    }

    /// Keeps a message aside (no conversation: noise, unroutable), once.
    async fn aside(
        &self,
        key: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Outcome, Refused> {
        let r = self
            .core
            .record(ChannelEvent {
                channel: ChannelKind::Email,
                contact_key: key.to_string(),
                event_key: key.to_string(),
                kind: kind.into(),
                data,
                files: Vec::new(),
            })
            .await?;
        Ok(match r {
            Recorded::Duplicate => Outcome::Duplicate,
            _ => Outcome::Recorded(kind.into()),
        })
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn digest(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
