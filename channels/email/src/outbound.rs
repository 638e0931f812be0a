//! Agents' replies, sent as replies in the customer's thread. The router stores each
//! reply in the outbox with the agent's other writes; this sends it through the relay
//! (`email.relay_url`) with lettre: to the customer, from the mailbox the customer wrote
//! to, with `In-Reply-To` and `References` naming the thread's messages and the
//! conversation's `[#token]` in the subject, so the customer's answer comes back to the
//! same interaction. Each reply is MIME (lettre writes it): `text/plain; charset=utf-8`
//! with its transfer encoding, an encoded-word subject when it is not ASCII, and a
//! `multipart/alternative` of the text and the agent's HTML when they wrote rich text
//! (the HTML never goes without its text). A sent reply is recorded in the history; a
//! failed one is retried with backoff (up to ten minutes apart, `email.send_max_attempts`
//! attempts) and the agent is told each time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchboard_contract::{ChannelEvent, ChannelKind, Due};

use crate::inbound::{message_key, token_key, truncate, RECEIVED, SENT};
use crate::parse::LOOP_HEADER;
use crate::Email;

/// Replies handled per pass.
const BATCH: u32 = 16;

/// The header that marks Switchboard's own mail.
#[derive(Debug, Clone)]
struct Loop(String);

impl Header for Loop {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(LOOP_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Loop(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The conversation's token, for subjects: stable for an interaction.
pub fn token(interaction_id: &str) -> String {
    Sha256::digest(interaction_id.as_bytes())[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends replies until `shutdown` completes.
pub async fn run(email: Arc<Email>, shutdown: impl Future<Output = ()> + Send) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => email.send_due().await,
        }
    }
}

/// Why a reply was not sent.
enum Failure {
    /// Worth another try.
    Transient(String),
    /// Never going to work.
    Permanent(String),
}

impl Email {
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let s = &self.settings;
        if s.relay_url.is_empty() {
            return Err("no relay is configured (email.relay_url)".into());
        }
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::from_url(&s.relay_url)
            .map_err(|e| format!("email.relay_url: {e}"))?
            .timeout(Some(Duration::from_secs(30)));
        if !s.relay_username.is_empty() {
            b = b.credentials(Credentials::new(
                s.relay_username.clone(),
                s.relay_password.clone(),
            ));
        }
        Ok(b.build())
    }

    async fn send_due(&self) {
        let due = match self.core.due(ChannelKind::Email, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the replies due");
                return;
            }
        };
        for d in due {
            let p = &d.command.payload;
            let interaction = p["interaction_id"].as_str().unwrap_or_default().to_string();
            let reply_id = p["reply_id"].clone();
            let result = match self.send(&d).await {
                Ok(message_id) => {
                    metrics::counter!("switchboard_email_replies_total", "outcome" => "sent")
                        .increment(1);
                    self.core
                        .tell_agent(&interaction, json!({ "type": "reply_sent", "reply_id": reply_id, "message_id": message_id }))
                        .await;
                    self.core.delivered(&d.command.id).await
                }
                Err(failure) => {
                    let attempts = d.attempts + 1;
                    let (error, retry) = match failure {
                        Failure::Transient(e) if attempts < self.settings.send_max_attempts => {
                            (e, Some((1000u64 << attempts.min(10)).min(600_000)))
                        }
                        Failure::Transient(e) | Failure::Permanent(e) => (e, None),
                    };
                    let outcome = if retry.is_some() { "retried" } else { "failed" };
                    metrics::counter!("switchboard_email_replies_total", "outcome" => outcome)
                        .increment(1);
                    tracing::warn!(attempts, error = %error, retrying = retry.is_some(), "A reply was not sent");
                    self.core
                        .tell_agent(
                            &interaction,
                            json!({
                                "type": "reply_failed", "reply_id": reply_id, "error": error,
                                "retrying": retry.is_some(), "attempts": attempts,
                            }),
                        )
                        .await;
                    self.core.failed(&d.command.id, retry, &error).await
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "Could not record a reply's delivery");
            }
        }
    }

    /// One attempt at a reply; answers its Message-ID.
    async fn send(&self, due: &Due) -> Result<String, Failure> {
        let p = &due.command.payload;
        let contact = p["contact_key"].as_str().unwrap_or_default();
        let interaction = p["interaction_id"].as_str().unwrap_or_default();
        let body = p["body"].as_str().unwrap_or_default();
        let html = p["html"].as_str().filter(|h| !h.trim().is_empty());
        let core_err = |e: switchboard_contract::IntakeError| Failure::Transient(e.to_string());
        let received = self
            .core
            .events_of(ChannelKind::Email, contact, RECEIVED)
            .await
            .map_err(core_err)?;
        let sent = self
            .core
            .events_of(ChannelKind::Email, contact, SENT)
            .await
            .map_err(core_err)?;
        let first = received
            .first()
            .ok_or_else(|| Failure::Permanent("this interaction has no email to answer".into()))?;
        let customer = first["from"]
            .as_str()
            .ok_or_else(|| Failure::Permanent("the customer's message has no sender".into()))?;
        // From the mailbox the customer wrote to, when it is one of ours.
        let ours = first["to"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|a| self.accepts(a))
            .map(str::to_string)
            .unwrap_or_else(|| self.settings.from_address.clone());
        let subject = first["subject"].as_str().unwrap_or("your message");
        let token = token(interaction);
        let subject = format!(
            "{}{} [#{token}]",
            if subject.to_ascii_lowercase().starts_with("re:") {
                ""
            } else {
                "Re: "
            },
            subject.replace(&format!(" [#{token}]"), "")
        );
        // The thread: every message of it, oldest first; the reply answers the latest
        // message from the customer.
        let thread: Vec<String> = received
            .iter()
            .chain(sent.iter())
            .filter_map(|e| e["message_id"].as_str())
            .map(|id| format!("<{id}>"))
            .collect();
        let in_reply_to = received
            .iter()
            .rev()
            .find_map(|e| e["message_id"].as_str())
            .map(|id| format!("<{id}>"));
        let references = thread[thread.len().saturating_sub(20)..].join(" ");
        let message_id = format!("{}@{}", uuid::Uuid::now_v7(), self.settings.hostname);
        let from: Mailbox = ours.parse().map_err(|e| {
            Failure::Permanent(format!(
                "the reply's sender '{ours}' is not an address: {e}"
            ))
        })?;
        let to: Mailbox = customer.parse().map_err(|e| {
            Failure::Permanent(format!("the customer's address is not usable: {e}"))
        })?;
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(subject.clone())
            .message_id(Some(format!("<{message_id}>")))
            .header(Loop(self.settings.hostname.clone()));
        if let Some(irt) = &in_reply_to {
            builder = builder.in_reply_to(irt.clone());
        }
        if !references.is_empty() {
            builder = builder.references(references);
        }
        let message = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                body.to_string(),
                html.to_string(),
            )),
            None => builder.singlepart(SinglePart::plain(body.to_string())),
        }
        .map_err(|e| Failure::Permanent(format!("the reply could not be written: {e}")))?;
        let transport = self.transport().map_err(Failure::Permanent)?;
        transport.send(message).await.map_err(|e| {
            if e.is_permanent() {
                Failure::Permanent(format!("the relay refused the reply: {e}"))
            } else {
                Failure::Transient(format!("the relay could not take the reply: {e}"))
            }
        })?;
        // Recorded in the history; the customer's answer finds the thread by its
        // Message-ID, or by the token in the subject.
        for (event_key, kind, data) in [
            (
                message_key(&message_id),
                SENT,
                json!({
                    "message_id": message_id, "from": ours, "to": [customer], "subject": subject,
                    "text": truncate(body, 1 << 20), "html": html.map(|h| truncate(h, 1 << 20)),
                    "agent_id": p["agent_id"], "reply_id": p["reply_id"],
                }),
            ),
            (
                token_key(&token),
                "email_reference",
                json!({ "token": token }),
            ),
        ] {
            self.core
                .record(ChannelEvent {
                    channel: ChannelKind::Email,
                    contact_key: contact.to_string(),
                    event_key,
                    kind: kind.into(),
                    data,
                    files: Vec::new(),
                })
                .await
                .map_err(core_err)?;
        }
        Ok(message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_short() {
        assert_eq!(token("abc"), token("abc"));
        assert_ne!(token("abc"), token("abd"));
        assert_eq!(token("abc").len(), 10);
        assert_eq!(
            crate::parse::token_in(&format!("Re: Hi [#{}]", token("abc"))),
            Some(token("abc"))
        );
    }
}
