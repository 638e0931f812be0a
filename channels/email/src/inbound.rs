//! What an arriving message means, whichever way it came (SMTP or IMAP):
//!
//! - a **new conversation**: an interaction for the sender, routed by tier, with the
//!   message (its text, recipients, attachments) in the history;
//! - a **reply** (by In-Reply-To / References, or the `[#token]` in its subject): a
//!   message on the interaction it answers; a reply to a closed one reopens it or starts
//!   a linked one (`email.reply_to_closed`), offered first to the agent who handled it;
//! - **noise** (an auto-reply, a bounce, Switchboard's own mail come back): recorded on
//!   the conversation it answers, or kept aside ([`crate::kept`]), never routed and never
//!   answered;
//! - **unroutable** (not a message, no sender, a sender that is not an address): kept
//!   aside with why.
//!
//! Everything is idempotent by the message's key (its Message-ID, or its digest): the
//! same message delivered twice — a retried SMTP session, a re-polled mailbox — changes
//! nothing the second time. Another message reusing a Message-ID (its fingerprint
//! differs) is another message: it is taken under its id and its fingerprint, and its
//! history says the id was reused. The message is acknowledged only after this is
//! committed.

use serde_json::json;
use switchboard_contract::{
    Attachment, ChannelEvent, ChannelKind, Command, Contact, CustomerHint, FirstEvent, IntakeError,
    NewInteraction, Recorded,
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
    /// Try again in this many seconds (SMTP 451): the server is past its capacity and
    /// refuses some new contacts for a while (counted by admission control, not a fault).
    Busy(u32),
}

impl From<IntakeError> for Refused {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Overloaded { retry_after_secs } => Refused::Busy(retry_after_secs),
            e => Refused::Temporary(e.to_string()),
        }
    }
}

/// The history kind of an arriving customer message.
pub const RECEIVED: &str = "email_received";
/// The history kind of a reply sent by an agent.
pub const SENT: &str = "email_sent";
/// The history kind of an acknowledgement sent (not an answer: it meets no target).
pub const ACKNOWLEDGED: &str = "email_acknowledged";
/// The history kind of a satisfaction survey sent.
pub const SURVEYED: &str = "email_survey_sent";

/// The keys an email is known by in the channel's events.
pub(crate) fn message_key(id: &str) -> String {
    format!("msg:{id}")
}

/// The key a new conversation is submitted under: its message's id, or that id's digest
/// when it is too long for a key.
pub(crate) fn contact_key(id: &str) -> String {
    if id.len() <= 200 {
        return format!("email:{id}");
    }
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("email:sha256:{digest}")
}

/// The key of a conversation's subject token.
pub(crate) fn token_key(token: &str) -> String {
    format!("token:{token}")
}

/// The key of a message that reuses another's Message-ID: its id and its fingerprint.
pub(crate) fn reused_key(mail: &Mail) -> String {
    format!("{}#{}", mail.key, &mail.fingerprint[..16])
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

/// What opening a conversation came to.
pub(crate) enum Opened {
    /// A new interaction.
    Created(String),
    /// The interaction this message opened before.
    Known(String),
    /// The core refuses it (a sender that is not an address), and why.
    Invalid(String),
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
                    .aside(raw, None, envelope_from, "unreadable", why.to_string())
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
            let why = match &noise {
                parse::Noise::AutoReply(why) => why.clone(),
                parse::Noise::Bounce => "a delivery report".into(),
                parse::Noise::Loop => "Switchboard's own mail".into(),
            };
            let Some(t) = thread else {
                return self
                    .aside(raw, Some(&mail), envelope_from, noise.reason(), why)
                    .await;
            };
            metrics::counter!("switchboard_email_messages_total", "outcome" => noise.kind())
                .increment(1);
            let data = json!({
                "message_id": mail.message_id, "from": mail.from, "subject": mail.subject,
                "reason": why,
            });
            return self
                .on(&t.contact_key, &mail, noise.kind(), data)
                .await
                .map(|r| match r {
                    Recorded::Duplicate => Outcome::Duplicate,
                    _ => Outcome::Recorded(noise.kind().into()),
                });
        }
        let Some(from) = mail.from.clone() else {
            return self
                .aside(
                    raw,
                    Some(&mail),
                    envelope_from,
                    "no_sender",
                    "the message has no sender (From)".into(),
                )
                .await;
        };
        let recipients = if recipients.is_empty() {
            mail.to.clone()
        } else {
            recipients.to_vec()
        };
        match thread {
            Some(t) if matches!(t.state.as_str(), "completed" | "abandoned") => {
                self.closed_thread(raw, t, &mail, &from, &recipients).await
            }
            Some(t) => {
                let data = self.received(&mail, &recipients);
                match self.on(&t.contact_key, &mail, RECEIVED, data).await? {
                    Recorded::Duplicate => Ok(Outcome::Duplicate),
                    _ => {
                        if !mail.list {
                            self.acknowledge(&t.contact_key, &t.interaction_id).await;
                        }
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
            None => self.start(raw, &mail, &from, &recipients, None, None).await,
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
        raw: &[u8],
        t: Contact,
        mail: &Mail,
        from: &str,
        recipients: &[String],
    ) -> Result<Outcome, Refused> {
        let agent = t.agent_id.clone();
        if self.settings.reply_to_closed == "new" {
            return self
                .start(raw, mail, from, recipients, agent, Some(t.interaction_id))
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
        raw: &[u8],
        mail: &Mail,
        from: &str,
        recipients: &[String],
        preferred_agent: Option<String>,
        follows: Option<String>,
    ) -> Result<Outcome, Refused> {
        let extra = follows.map(|f| json!({ "follows": f }));
        match self
            .open(mail, from, recipients, preferred_agent, extra)
            .await?
        {
            Opened::Created(interaction_id) => {
                metrics::counter!("switchboard_email_messages_total", "outcome" => "new")
                    .increment(1);
                Ok(Outcome::New { interaction_id })
            }
            Opened::Known(_) => Ok(Outcome::Duplicate),
            Opened::Invalid(why) => {
                self.aside(raw, Some(mail), Some(from), "bad_sender", why)
                    .await
            }
        }
    }

    /// Opens a conversation with `mail`: its interaction (under the message's key, or
    /// under its key and fingerprint when another message took the key first), then the
    /// message in its history with `extra` beside the message's own details.
    pub(crate) async fn open(
        &self,
        mail: &Mail,
        from: &str,
        recipients: &[String],
        preferred_agent: Option<String>,
        extra: Option<serde_json::Value>,
    ) -> Result<Opened, Refused> {
        let mut data = self.received(mail, recipients);
        if let Some(serde_json::Value::Object(extra)) = extra {
            for (k, v) in extra {
                data[k] = v;
            }
        }
        let mut reused = false;
        let (key, accepted) = loop {
            let key = if reused {
                contact_key(&reused_key(mail))
            } else {
                contact_key(&mail.key)
            };
            // The message is recorded in its conversation's own commit.
            let first = self.received_event(&key, mail, RECEIVED, data.clone(), reused);
            let submitted = self
                .core
                .submit(NewInteraction {
                    channel: ChannelKind::Email,
                    idempotency_key: key.clone(),
                    customer: CustomerHint {
                        email: Some(from.to_string()),
                        name: mail.from_name.as_deref().map(|n| truncate_chars(n, 200)),
                        ..CustomerHint::default()
                    },
                    topic: None,
                    subject: mail
                        .subject
                        .clone()
                        .filter(|s| !s.is_empty())
                        .map(|s| truncate(&s, 900)),
                    body: Some(truncate(&mail.text, 1 << 20)).filter(|b| !b.is_empty()),
                    preferred_agent: preferred_agent.clone(),
                    not_before_ms: None,
                    waits_for_first_message: false,
                    first_event: Some(FirstEvent {
                        event_key: first.event_key,
                        kind: first.kind,
                        data: first.data,
                        fingerprint: Some(mail.fingerprint.clone()),
                        files: first.files,
                    }),
                })
                .await;
            match submitted {
                Ok(a) => break (key, a),
                // Another message took this Message-ID first: this one is its own.
                Err(IntakeError::KeyReused) if !reused => reused = true,
                // A sender address the core refuses (not an address).
                Err(IntakeError::Invalid { field, message }) => {
                    return Ok(Opened::Invalid(format!("{field}: {message}")))
                }
                Err(e) => return Err(e.into()),
            }
        };
        let recorded = match accepted.first_event.clone() {
            Some(recorded) => recorded,
            // Not recorded with it (another message under the same key): apart.
            None => {
                self.record_received(&key, mail, RECEIVED, data, reused)
                    .await?
            }
        };
        Ok(if !accepted.created && recorded == Recorded::Duplicate {
            Opened::Known(accepted.interaction_id)
        } else {
            if !mail.list {
                self.acknowledge(&key, &accepted.interaction_id).await;
            }
            Opened::Created(accepted.interaction_id)
        })
    }

    /// Acknowledges a customer's message with when an answer is due, when the rules say
    /// to: at most once a conversation a day (the command's id says which day). Noise
    /// (auto-replies, bounces, loops) and list mail never come here. An acknowledgement that
    /// cannot be stored is counted and logged; the message itself is taken all the same.
    pub(crate) async fn acknowledge(&self, contact_key: &str, interaction_id: &str) {
        let ack = match self.core.acknowledgement(interaction_id).await {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => {
                metrics::counter!("switchboard_email_acknowledgements_total", "outcome" => "failed").increment(1);
                tracing::warn!(error = %e, "Could not work out a message's acknowledgement; it is not sent");
                return;
            }
        };
        let day = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        let command = Command {
            id: format!("ack:{contact_key}:{day}"),
            channel: ChannelKind::Email,
            payload: json!({
                "action": "acknowledge", "contact_key": contact_key, "interaction_id": interaction_id,
                "subject": ack.0, "body": ack.1,
            }),
        };
        match self.core.command(command, false).await {
            Ok(true) => {
                metrics::counter!("switchboard_email_acknowledgements_total", "outcome" => "queued").increment(1);
            }
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("switchboard_email_acknowledgements_total", "outcome" => "failed").increment(1);
                tracing::warn!(error = %e, "Could not store a message's acknowledgement; it is not sent");
            }
        }
    }

    /// The history data of an arriving message (its files added by [`Email::on`]).
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
        self.record_received(contact, mail, kind, data, false).await
    }

    /// As [`Email::on`]; `reused` when the message is known to reuse another's
    /// Message-ID (it is recorded under its id and fingerprint, and says so). A message
    /// whose id turns out to be taken by another is recorded so too.
    async fn record_received(
        &self,
        contact: &str,
        mail: &Mail,
        kind: &str,
        data: serde_json::Value,
        reused: bool,
    ) -> Result<Recorded, Refused> {
        let event = self.received_event(contact, mail, kind, data.clone(), reused);
        match self
            .core
            .record_message(event, mail.fingerprint.clone())
            .await
        {
            Err(IntakeError::KeyReused) if !reused => {
                Box::pin(self.record_received(contact, mail, kind, data, true)).await
            }
            other => Ok(other?),
        }
    }

    /// A message as its conversation's event: with its files when it is one received,
    /// under its own key, or its reused key's.
    fn received_event(
        &self,
        contact: &str,
        mail: &Mail,
        kind: &str,
        mut data: serde_json::Value,
        reused: bool,
    ) -> ChannelEvent {
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
        if reused {
            data["message_id_reused"] = json!(true);
        }
        ChannelEvent {
            channel: ChannelKind::Email,
            contact_key: contact.to_string(),
            event_key: message_key(&if reused {
                reused_key(mail)
            } else {
                mail.key.clone()
            }),
            kind: kind.into(),
            data,
            files,
        }
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

/// At most `max` characters of `s`.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
