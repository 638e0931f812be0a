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

use crate::inbound::{message_key, token_key, truncate, ACKNOWLEDGED, RECEIVED, SENT, SURVEYED};
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

/// `Auto-Submitted: auto-replied` (RFC 3834), on acknowledgements.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".into())
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
    let mut completions = email.core.completions();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            c = completions.recv() => match c {
                Ok(c) if c.channel == ChannelKind::Email => email.ask(&c).await,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // A survey is a courtesy: those missed are not sent, and counted.
                    metrics::counter!("switchboard_email_surveys_total", "outcome" => "missed").increment(n);
                    tracing::warn!(missed = n, "Fell behind the completions; their surveys are not sent");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
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
    /// A completed conversation: its customer is sent the survey, when the rules ask
    /// mail contacts (once: the command's id is the interaction's).
    async fn ask(&self, c: &switchboard_contract::Completed) {
        let survey = match self.core.survey(&c.interaction_id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                metrics::counter!("switchboard_email_surveys_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(error = %e, "Could not write a survey; it is not sent");
                return;
            }
        };
        let command = switchboard_contract::Command {
            id: format!("survey:{}", c.interaction_id),
            channel: ChannelKind::Email,
            payload: json!({
                "action": "survey", "contact_key": c.contact_key, "interaction_id": c.interaction_id,
                "subject": survey.0, "body": survey.1,
            }),
        };
        if let Err(e) = self.core.command(command, false).await {
            metrics::counter!("switchboard_email_surveys_total", "outcome" => "failed")
                .increment(1);
            tracing::warn!(error = %e, "Could not store a survey; it is not sent");
        }
    }

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
                tracing::warn!(error = %e, "Could not read the replies due; retrying shortly");
                return;
            }
        };
        for d in due {
            let p = &d.command.payload;
            let interaction = p["interaction_id"].as_str().unwrap_or_default().to_string();
            let reply_id = p["reply_id"].clone();
            // A reply the relay took before is not sent again: only its record is.
            let taken = self.sent_lock().get(&d.command.id).cloned();
            let sent = match taken {
                Some(sent) => Ok(sent),
                None => self.send(&d).await,
            };
            let result = match sent {
                Ok(sent) => {
                    if let Err(e) = self.settle(&d, &sent).await {
                        tracing::warn!(error = %e, "A reply was sent but could not be recorded; recording it again shortly");
                        self.sent_lock().insert(d.command.id.clone(), sent);
                        continue;
                    }
                    self.sent_lock().remove(&d.command.id);
                    if p["action"] == "acknowledge" || p["action"] == "survey" {
                        metrics::counter!("switchboard_email_courtesies_total", "kind" => p["action"].as_str().unwrap_or_default().to_string(), "outcome" => "sent").increment(1);
                        continue;
                    }
                    metrics::counter!("switchboard_email_replies_total", "outcome" => "sent")
                        .increment(1);
                    self.core
                        .tell_agent(&interaction, json!({ "type": "reply_sent", "reply_id": reply_id, "message_id": sent.message_id }))
                        .await;
                    Ok(())
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
                    if p["action"] == "acknowledge" || p["action"] == "survey" {
                        metrics::counter!("switchboard_email_courtesies_total", "kind" => p["action"].as_str().unwrap_or_default().to_string(), "outcome" => outcome).increment(1);
                        tracing::warn!(attempts, error = %error, retrying = retry.is_some(), "An acknowledgement or survey was not sent");
                        if let Err(e) = self.core.failed(&d.command.id, retry, &error).await {
                            tracing::warn!(error = %e, "Could not record an acknowledgement's failure");
                        }
                        continue;
                    }
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
            // Not recorded: the reply stays due, and its next pass records it.
            if let Err(e) = result {
                tracing::warn!(error = %e, "Could not record a reply's delivery");
            }
        }
    }

    fn sent_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Sent>> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a reply the relay took: its events in the history, then the command
    /// delivered. Either may be done already (a second pass after a failure): each is
    /// recorded once.
    async fn settle(
        &self,
        due: &Due,
        sent: &Sent,
    ) -> Result<(), switchboard_contract::IntakeError> {
        for (event_key, kind, data) in &sent.events {
            self.core
                .record(ChannelEvent {
                    channel: ChannelKind::Email,
                    contact_key: sent.contact_key.clone(),
                    event_key: event_key.clone(),
                    kind: kind.to_string(),
                    data: data.clone(),
                    files: Vec::new(),
                })
                .await?;
        }
        self.core.delivered(&due.command.id).await
    }

    /// One attempt at a reply: answers what was sent, to be recorded.
    async fn send(&self, due: &Due) -> Result<Sent, Failure> {
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
        // An acknowledgement or a survey: written by Switchboard, not an agent's answer.
        let ack = p["action"] == "acknowledge" || p["action"] == "survey";
        let subject = if ack {
            p["subject"].as_str().unwrap_or("We have your message")
        } else {
            first["subject"].as_str().unwrap_or("your message")
        };
        let token = token(interaction);
        let subject = if ack {
            format!(
                "{} [#{token}]",
                subject.replace(&format!(" [#{token}]"), "")
            )
        } else {
            format!(
                "{}{} [#{token}]",
                if subject.to_ascii_lowercase().starts_with("re:") {
                    ""
                } else {
                    "Re: "
                },
                subject.replace(&format!(" [#{token}]"), "")
            )
        };
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
        let message_id = reply_message_id(&due.command.id, &self.settings.hostname);
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
        if ack {
            // RFC 3834: an automatic answer, which well-behaved responders do not answer.
            builder = builder.header(AutoSubmitted);
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
        // To be recorded in the history; the customer's answer finds the thread by its
        // Message-ID, or by the token in the subject.
        Ok(Sent {
            message_id: message_id.clone(),
            contact_key: contact.to_string(),
            events: vec![
                (
                    message_key(&message_id),
                    match p["action"].as_str() {
                        Some("acknowledge") => ACKNOWLEDGED,
                        Some("survey") => SURVEYED,
                        _ => SENT,
                    },
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
            ],
        })
    }
}

/// A reply the relay took, and what is to be recorded of it.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    message_id: String,
    contact_key: String,
    /// (event key, kind, data) of each event to record.
    events: Vec<(String, &'static str, Value)>,
}

/// A reply's Message-ID, from its command's id: the same reply always has the same one,
/// so a reply sent again (after a crash between the relay taking it and its record) is
/// the same message to the customer's mail system, which shows it once.
pub fn reply_message_id(command_id: &str, hostname: &str) -> String {
    let digest: String = Sha256::digest(command_id.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("reply-{digest}@{hostname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replys_message_id_is_the_same_every_time_it_is_sent() {
        let a = reply_message_id("reply:agent-1:r1", "sb.example.com");
        assert_eq!(a, reply_message_id("reply:agent-1:r1", "sb.example.com"));
        assert_ne!(a, reply_message_id("reply:agent-1:r2", "sb.example.com"));
        assert!(
            a.starts_with("reply-") && a.ends_with("@sb.example.com"),
            "{a}"
        );
    }

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
