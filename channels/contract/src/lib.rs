//! The contract between Switchboard's channel adapters and its core.
//!
//! # Layout
//! - [`ChannelKind`]: the channels a contact can arrive by.
//! - [`NewInteraction`] and [`CustomerHint`]: one inbound contact, normalised, as every
//!   adapter hands it to the core.
//! - [`Intake`]: the core's side of the hand-over. `submit` resolves only after the
//!   interaction is committed to the store, so an adapter acknowledges its protocol
//!   (SMTP 250, webhook 2xx, chat ack) only once the contact cannot be lost.
//! - [`Core`]: what the core offers channels that follow a contact's life after it is
//!   accepted (a phone call answered, transferred, hung up): its history, its end, the
//!   agent who took it, and a durable outbox of commands for the channel's system.
//! - [`ChannelAdapter`] and [`AdapterContext`]: how the server starts an adapter, and
//!   [`AdapterContext::new_test`], which hands a test the receiving end.
//!
//! Adapters know nothing of the queue, the router or the database: this crate is all
//! they share with the core, and the dependencies run one way (contract ← adapters ←
//! server).

mod core;

pub use crate::core::{
    Assignment, Attachment, CallbackTask, ChannelEvent, Command, CommandFor, Completed, Connected,
    Contact, Core, Due, Ending, KeptAside, NewCallback, Position, Rated, Recorded, ServiceInfo,
    StoredFile,
};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

/// A boxed, sendable future, as the adapter traits return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The address of the client an HTTP request came from, as the server resolved it: the
/// peer, or, behind a trusted proxy, the address the proxy forwarded. Channels bound
/// what one client may do by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The channel a contact arrived by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Created over the HTTP API by another system (a CRM, a web form, a callback request).
    Api,
    /// Inbound email (SMTP or IMAP).
    Email,
    /// A web chat started by a visitor.
    Chat,
    /// A phone call reported by the phone system.
    Phone,
}

impl ChannelKind {
    /// Every channel, in a fixed order (for metrics and reports).
    pub const ALL: [ChannelKind; 4] = [Self::Api, Self::Email, Self::Chat, Self::Phone];

    /// The channel's name as it appears in the API, the store and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Email => "email",
            Self::Chat => "chat",
            Self::Phone => "phone",
        }
    }

    /// Parses the name written by [`ChannelKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a channel knows of who the customer is. The core normalises and validates each
/// identity (an email address, an E.164 phone number) and resolves them to one customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerHint {
    /// An email address, as the channel saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A phone number, as the channel saw it (E.164 preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The web chat widget's visitor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
    /// The customer's id in the business's CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// A display name, when the channel has one (a From header's name, a pre-chat form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An email address the customer typed without proof of owning it (a web chat's
    /// pre-chat form). It is kept with the contact and shown to the agent, with the
    /// customer it names if any, but it finds no customer and is given to none: whoever
    /// types a customer's address gets neither their tier nor their history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_email: Option<String>,
}

impl CustomerHint {
    /// True when the hint names no identity at all.
    pub fn is_anonymous(&self) -> bool {
        self.email.is_none()
            && self.phone.is_none()
            && self.visitor_id.is_none()
            && self.external_id.is_none()
    }
}

/// One inbound contact, normalised: what every adapter hands to the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInteraction {
    /// The channel it arrived by.
    pub channel: ChannelKind,
    /// Unique per channel for one contact: delivering it again (a retried webhook, a
    /// re-polled mail, a resent chat message) yields the same interaction.
    pub idempotency_key: String,
    /// Who the customer is, as far as the channel knows.
    pub customer: CustomerHint,
    /// What it is about (`billing`, `complaint`…), when the channel knows.
    pub topic: Option<String>,
    /// A subject line.
    pub subject: Option<String>,
    /// The contact's content (a mail's text, a chat's first message), when it has one.
    pub body: Option<String>,
    /// The agent to offer it to first (before the rest of its rings), when the contact
    /// continues one that agent handled (a reply to a closed email thread).
    #[serde(default)]
    pub preferred_agent: Option<String>,
    /// Not to be routed before this moment (ms since the epoch): a callback booked for
    /// a time.
    #[serde(default)]
    pub not_before_ms: Option<i64>,
    /// Not offered to agents before the customer writes (a web chat the visitor opened):
    /// kept, but not queued until [`Core::first_message`], and its wait counts from then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waits_for_first_message: bool,
    /// The channel's own first event about the contact (a call ringing, a chat started),
    /// recorded in the contact's own commit rather than in one of its own: what it came
    /// to is in [`Accepted::first_event`]. Recorded once per event key, as
    /// [`Core::record`] records it; not part of what makes a retry the same contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event: Option<FirstEvent>,
}

/// A channel's first event about a contact, recorded with it: its history entry and its
/// place among the channel's events, as [`ChannelEvent`] has them (without files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstEvent {
    /// Unique per event within the channel (`twilio:CA…:ringing`).
    pub event_key: String,
    /// The history event's kind (`call_ringing`).
    pub kind: String,
    /// Its details, with an optional `private` member as in [`ChannelEvent::data`].
    pub data: serde_json::Value,
    /// A digest of the message it carries, when it carries one (as
    /// [`Core::record_message`] takes it): its key recorded before with another digest is
    /// another message, which is not recorded with the contact (the channel records it
    /// apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Files that came with it, stored with the interaction in the same commit.
    #[serde(skip)]
    pub files: Vec<Attachment>,
}

/// What the core answers when it has committed an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The interaction's id.
    pub interaction_id: String,
    /// The customer it was resolved to.
    pub customer_id: String,
    /// The customer's value tier at entry.
    pub tier: String,
    /// False when the idempotency key was seen before and this is the earlier interaction.
    pub created: bool,
    /// When it is served, when it arrived while its calendar was closed (ms since the
    /// epoch): it waits for that opening, and the channel says so.
    #[serde(default)]
    pub opens_at_ms: Option<i64>,
    /// What recording the submission's [`NewInteraction::first_event`] came to, when it
    /// carried one: new (with the interaction's state as it was, which for a contact
    /// known before may be over already), or a duplicate. `None` when it carried none, or
    /// when its key was recorded before with another message's fingerprint: the channel
    /// records that one itself.
    #[serde(default)]
    pub first_event: Option<Recorded>,
}

/// Why the core did not accept a contact. Each adapter answers it in its own protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The contact itself is wrong: the adapter should refuse it permanently
    /// (HTTP 400, SMTP 550, a chat error frame).
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault, as a path (`customer.email`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The idempotency key was used before for a different contact.
    #[error("idempotency key was already used for a different contact")]
    KeyReused,
    /// The store cannot commit now: the adapter should refuse temporarily
    /// (HTTP 503, SMTP 451) so the sender retries; nothing was accepted.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The server is shutting down and accepts nothing new.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The server is past its capacity and refuses some new contacts for a while
    /// (admission control): the adapter refuses in its own way and says when to retry
    /// (HTTP 503 with `Retry-After`, SMTP 451, a busy answer to a call, a chat's start
    /// tried again); nothing was accepted.
    #[error("too many contacts at once; retry in {retry_after_secs} s")]
    Overloaded {
        /// When the sender should try again.
        retry_after_secs: u32,
    },
}

/// The core's side of the hand-over.
pub trait Intake: Send + Sync + 'static {
    /// Resolves the customer, commits and queues the interaction, then answers.
    /// Only an `Ok` answer means the contact is accepted.
    fn submit(&self, interaction: NewInteraction) -> BoxFuture<'_, Result<Accepted, IntakeError>>;

    /// Past capacity, whether every new contact of `channel` is refused now whatever its
    /// customer, and if so when to retry (seconds): an adapter may then refuse before it
    /// reads the contact at all (SMTP 451 at `MAIL`, before the message is sent). An
    /// answer of `Some` is counted as one refusal; ask once per contact.
    fn refuses_every(&self, _channel: ChannelKind) -> Option<u32> {
        None
    }
}

/// What the server hands an adapter when it starts it.
#[derive(Clone)]
pub struct AdapterContext {
    /// Where the adapter submits contacts.
    pub intake: Arc<dyn Intake>,
    /// Becomes `true` when the server shuts down: the adapter stops accepting and returns.
    pub shutdown: watch::Receiver<bool>,
}

/// A channel adapter: built from its configuration, run as one task until shutdown.
pub trait ChannelAdapter: Send + 'static {
    /// The channel it serves.
    fn kind(&self) -> ChannelKind;
    /// Runs until `ctx.shutdown` turns true.
    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<'static, Result<(), String>>;
}

/// One submission seen by a test's [`TestIntake`]: the interaction and where to answer it.
pub struct Submission {
    /// What the adapter submitted.
    pub interaction: NewInteraction,
    /// Answer it; dropping it answers [`IntakeError::Unavailable`].
    pub reply: oneshot::Sender<Result<Accepted, IntakeError>>,
}

/// The receiving end of [`AdapterContext::new_test`].
pub struct TestIntake {
    /// Every submission, in order.
    pub submissions: mpsc::UnboundedReceiver<Submission>,
    /// Send `true` to ask the adapter to shut down.
    pub shutdown: watch::Sender<bool>,
}

struct ChannelIntake(mpsc::UnboundedSender<Submission>);

impl Intake for ChannelIntake {
    fn submit(&self, interaction: NewInteraction) -> BoxFuture<'_, Result<Accepted, IntakeError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.0
                .send(Submission { interaction, reply })
                .map_err(|_| IntakeError::ShuttingDown)?;
            answer.await.unwrap_or_else(|_| {
                Err(IntakeError::Unavailable(
                    "test intake dropped the submission".into(),
                ))
            })
        })
    }
}

impl AdapterContext {
    /// A context for a test: the test holds the receiving end, sees each submission and
    /// decides its answer.
    pub fn new_test() -> (Self, TestIntake) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let ctx = AdapterContext {
            intake: Arc::new(ChannelIntake(tx)),
            shutdown: shutdown_rx,
        };
        (
            ctx,
            TestIntake {
                submissions: rx,
                shutdown: shutdown_tx,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_context_hands_each_submission_to_the_test_and_returns_its_answer() {
        let (ctx, mut test) = AdapterContext::new_test();
        let new = NewInteraction {
            channel: ChannelKind::Email,
            idempotency_key: "<m1@example.com>".into(),
            customer: CustomerHint {
                email: Some("a@example.com".into()),
                ..Default::default()
            },
            topic: None,
            subject: Some("Hello".into()),
            body: None,
            preferred_agent: None,
            not_before_ms: None,
            waits_for_first_message: false,
            first_event: None,
        };
        let sent = new.clone();
        let adapter = tokio::spawn(async move { ctx.intake.submit(sent).await });
        let got = test.submissions.recv().await.expect("a submission");
        assert_eq!(got.interaction, new);
        let accepted = Accepted {
            interaction_id: "i1".into(),
            customer_id: "c1".into(),
            tier: "low".into(),
            created: true,
            opens_at_ms: None,
            first_event: None,
        };
        got.reply.send(Ok(accepted.clone())).unwrap();
        assert_eq!(adapter.await.unwrap(), Ok(accepted));
    }

    #[tokio::test]
    async fn a_dropped_submission_is_answered_as_unavailable_so_the_adapter_does_not_acknowledge() {
        let (ctx, mut test) = AdapterContext::new_test();
        let adapter = tokio::spawn(async move {
            ctx.intake
                .submit(NewInteraction {
                    channel: ChannelKind::Phone,
                    idempotency_key: "call-1".into(),
                    customer: CustomerHint::default(),
                    topic: None,
                    subject: None,
                    body: None,
                    preferred_agent: None,
                    not_before_ms: None,
                    waits_for_first_message: false,
                    first_event: None,
                })
                .await
        });
        drop(test.submissions.recv().await.expect("a submission"));
        assert!(matches!(
            adapter.await.unwrap(),
            Err(IntakeError::Unavailable(_))
        ));
    }

    #[test]
    fn channel_names_round_trip() {
        for c in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(c.as_str()), Some(c));
        }
        assert_eq!(ChannelKind::parse("fax"), None);
    }
}
