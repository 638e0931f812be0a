//! Intake: every new contact, from any channel, is checked and normalised here, then
//! handed to the one writer task (`writer`) that resolves its customer, commits it and
//! queues it, and only then answered. An answer of `Ok` is the durability promise.

#[cfg(test)]
pub(crate) mod group_tests;
mod screen;
pub mod window;
mod writer;

pub use writer::waiting;

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use switchboard_contract::{Accepted, BoxFuture, ChannelKind, Intake, IntakeError, NewInteraction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::config::Settings;
use crate::customers::identity::{Identity, IdentityKind, IdentityParser};
use crate::queue::Queue;
use crate::service::Services;
use crate::store::interactions::InteractionRow;
use crate::store::Store;
use crate::telemetry;

/// The longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 998;
/// The longest body, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// What the writer answers: the interaction as committed (or as it was, for a retry).
#[derive(Debug, Clone)]
pub struct Committed {
    /// The stored interaction.
    pub interaction: InteractionRow,
    /// False when the idempotency key was known and nothing new was written.
    pub created: bool,
    /// What recording the contact's first channel event came to, when it carried one.
    pub first_event: Option<switchboard_contract::Recorded>,
}

/// A contact checked and normalised, ready for the writer.
struct Job {
    new: NewInteraction,
    identities: Vec<Identity>,
    /// An address the customer typed without proof: recorded, never an identity.
    claimed: Option<Identity>,
    hash: String,
    submitted: Instant,
    reply: oneshot::Sender<Result<Committed, IntakeError>>,
}

impl Job {
    /// Answers the submitter. One that has gone (a client hung up) needs no answer: what
    /// was committed stays committed and queued, and what was refused was never written.
    fn answer(self, outcome: Result<Committed, IntakeError>) {
        if self.reply.send(outcome).is_err() {
            tracing::debug!(
                channel = self.new.channel.as_str(),
                "A contact's submitter left before its answer"
            );
        }
    }
}

/// What a submitter is told when a line of the intake would not take its contact.
fn refused_by_line(e: mpsc::error::TrySendError<Job>) -> (Job, IntakeError) {
    match e {
        mpsc::error::TrySendError::Full(job) => (
            job,
            IntakeError::Unavailable("intake is busy; retry shortly".into()),
        ),
        mpsc::error::TrySendError::Closed(job) => (job, IntakeError::ShuttingDown),
    }
}

/// Takes the next jobs of `line` into `batch` (up to `max`), waiting for the first;
/// false once the line is closed and empty. On `shutdown` the line is closed: nothing
/// new comes in, and what was already submitted still comes out.
async fn next_jobs(
    line: &mut mpsc::Receiver<Job>,
    batch: &mut Vec<Job>,
    max: usize,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        n = line.recv_many(batch, max) => return n > 0,
        () = shutdown.cancelled() => line.close(),
    }
    line.recv_many(batch, max).await > 0
}

/// The intake service: cheap to share, one per server.
pub struct IntakeService {
    jobs: mpsc::Sender<Job>,
    /// While admission control sheds load, contacts are screened here first.
    screen: mpsc::Sender<Job>,
    parser: IdentityParser,
    admission: Arc<Admission>,
}

/// Starts the writer task. It runs until `shutdown` is cancelled, then commits what was
/// already submitted, refuses the rest and returns.
pub fn start(
    store: Store,
    settings: &Settings,
    queue: Arc<Queue>,
    services: Arc<Services>,
    shutdown: CancellationToken,
) -> (Arc<IntakeService>, JoinHandle<()>) {
    let (service, writer, jobs, (screen, screened)) = parts(store, settings, queue, services);
    tokio::spawn(screen.run(screened, shutdown.clone()));
    let handle = tokio::spawn(writer.run(jobs, shutdown));
    (Arc::new(service), handle)
}

/// The service and its writer, not yet running (tests start the writer when they choose).
fn parts(
    store: Store,
    settings: &Settings,
    queue: Arc<Queue>,
    services: Arc<Services>,
) -> (
    IntakeService,
    writer::Writer,
    mpsc::Receiver<Job>,
    (screen::Screen, mpsc::Receiver<Job>),
) {
    let (tx, rx) = mpsc::channel(settings.intake.max_pending);
    let (screen_tx, screen_rx) = mpsc::channel(settings.intake.max_pending);
    let admission = Admission::new(&settings.admission, &settings.tiers);
    let commit_window = window::configured(&settings.storage, store.backend());
    let screen = screen::Screen::new(
        store.clone(),
        settings.tiers.clone(),
        admission.clone(),
        tx.clone(),
        settings.intake.max_batch,
    );
    let writer = writer::Writer::new(
        store,
        settings.tiers.clone(),
        queue,
        services,
        settings.intake.max_batch,
        commit_window,
        admission.clone(),
    );
    let service = IntakeService {
        jobs: tx,
        screen: screen_tx,
        parser: IdentityParser::new(&settings.customers.phone_default_region),
        admission,
    };
    (service, writer, rx, (screen, screen_rx))
}

impl IntakeService {
    /// Admission control: its pressure, and what it refused.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Checks, commits and queues `new`; answers with the interaction as stored.
    pub async fn submit_full(&self, new: NewInteraction) -> Result<Committed, IntakeError> {
        let channel = new.channel;
        let result = self.submit_inner(new).await;
        if let Err(e) = &result {
            telemetry::interaction_refused(channel.as_str(), refusal_reason(e));
        }
        result
    }

    async fn submit_inner(&self, new: NewInteraction) -> Result<Committed, IntakeError> {
        let mut new = normalise(new)?;
        let identities = self
            .parser
            .from_hint(&new.customer, "customer")
            .map_err(|e| IntakeError::Invalid {
                field: e.field,
                message: e.message,
            })?;
        let claimed = match &new.customer.claimed_email {
            Some(email) => Some(
                self.parser
                    .parse(IdentityKind::Email, email, "customer.claimed_email")
                    .map_err(|e| IntakeError::Invalid {
                        field: e.field,
                        message: e.message,
                    })?,
            ),
            None => None,
        };
        let hash = fingerprint(&mut new);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            new,
            identities,
            claimed,
            hash,
            submitted: Instant::now(),
            reply,
        };
        // Past capacity the screen decides first whether it is taken at all.
        let line = if self.admission.shedding() {
            &self.screen
        } else {
            &self.jobs
        };
        line.try_send(job).map_err(|e| refused_by_line(e).1)?;
        answer.await.unwrap_or(Err(IntakeError::ShuttingDown))
    }
}

impl Intake for IntakeService {
    fn submit(&self, interaction: NewInteraction) -> BoxFuture<'_, Result<Accepted, IntakeError>> {
        Box::pin(async move {
            let c = self.submit_full(interaction).await?;
            Ok(Accepted {
                interaction_id: c.interaction.id,
                customer_id: c.interaction.customer_id,
                tier: c.interaction.tier,
                created: c.created,
                opens_at_ms: c.interaction.opens_at,
                first_event: c.first_event,
            })
        })
    }

    fn refuses_every(&self, channel: ChannelKind) -> Option<u32> {
        if !self.admission.refuses_every(channel) {
            return None;
        }
        telemetry::interaction_refused(channel.as_str(), "overloaded");
        Some(self.admission.retry_after_secs())
    }
}

fn refusal_reason(e: &IntakeError) -> &'static str {
    match e {
        IntakeError::Invalid { .. } => "invalid",
        IntakeError::KeyReused => "key_reused",
        IntakeError::Unavailable(_) => "unavailable",
        IntakeError::ShuttingDown => "shutting_down",
        IntakeError::Overloaded { .. } => "overloaded",
    }
}

fn invalid(field: &str, message: impl Into<String>) -> IntakeError {
    IntakeError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Trims, bounds and checks every free-text field; empty optional fields become absent.
fn normalise(mut new: NewInteraction) -> Result<NewInteraction, IntakeError> {
    let key = new.idempotency_key.trim();
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(invalid(
            "idempotency_key",
            format!("must be 1 to {MAX_KEY_BYTES} bytes"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid(
            "idempotency_key",
            "must not contain control characters",
        ));
    }
    new.idempotency_key = key.to_string();
    new.topic = match new
        .topic
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => {
            let t = t.to_ascii_lowercase();
            let ok = t.len() <= 64
                && t.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
                });
            if !ok {
                return Err(invalid(
                    "topic",
                    "must be 1 to 64 letters, digits, '.', '-' or '_'",
                ));
            }
            Some(t)
        }
    };
    new.subject = text_field(
        new.subject,
        "subject",
        |s| s.chars().count() <= MAX_SUBJECT_CHARS,
        || format!("must be at most {MAX_SUBJECT_CHARS} characters"),
    )?;
    new.body = text_field(
        new.body,
        "body",
        |s| s.len() <= MAX_BODY_BYTES,
        || format!("must be at most {MAX_BODY_BYTES} bytes"),
    )?;
    new.customer.name = text_field(
        new.customer.name,
        "customer.name",
        |s| s.chars().count() <= MAX_NAME_CHARS,
        || format!("must be at most {MAX_NAME_CHARS} characters"),
    )?;
    Ok(new)
}

/// A free-text field: trimmed, empty as absent, no NUL (no database stores it), bounded.
fn text_field(
    value: Option<String>,
    field: &str,
    fits: impl Fn(&str) -> bool,
    limit: impl Fn() -> String,
) -> Result<Option<String>, IntakeError> {
    let Some(v) = value else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.contains('\0') {
        return Err(invalid(field, "must not contain NUL characters"));
    }
    if !fits(v) {
        return Err(invalid(field, limit()));
    }
    Ok(Some(v.to_string()))
}

/// A digest of the normalised contact: a retry has the same one, a reused key does not.
/// The channel's first event is not part of it (a retried ringing event may say more
/// than the hang-up that made the call known).
fn fingerprint(new: &mut NewInteraction) -> String {
    let first_event = new.first_event.take();
    let json = serde_json::to_vec(&*new).unwrap_or_default();
    new.first_event = first_event;
    Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_contract::{ChannelKind, CustomerHint};

    fn new(key: &str) -> NewInteraction {
        NewInteraction {
            channel: ChannelKind::Api,
            idempotency_key: key.into(),
            customer: CustomerHint {
                email: Some("a@example.com".into()),
                ..Default::default()
            },
            topic: Some(" Billing ".into()),
            subject: Some("  ".into()),
            body: Some(" Hello ".into()),
            preferred_agent: None,
            not_before_ms: None,
            waits_for_first_message: false,
            first_event: None,
        }
    }

    #[test]
    fn fields_are_trimmed_and_empty_ones_dropped() {
        let n = normalise(new(" k1 ")).unwrap();
        assert_eq!(n.idempotency_key, "k1");
        assert_eq!(n.topic.as_deref(), Some("billing"));
        assert_eq!(n.subject, None);
        assert_eq!(n.body.as_deref(), Some("Hello"));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(NewInteraction, &str)> = vec![
            (new(""), "idempotency_key"),
            (new(&"k".repeat(300)), "idempotency_key"),
            (
                NewInteraction {
                    topic: Some("billing & refunds".into()),
                    ..new("k")
                },
                "topic",
            ),
            (
                NewInteraction {
                    subject: Some("x".repeat(1000)),
                    ..new("k")
                },
                "subject",
            ),
            (
                NewInteraction {
                    body: Some("a\0b".into()),
                    preferred_agent: None,
                    not_before_ms: None,
                    ..new("k")
                },
                "body",
            ),
        ];
        for (n, field) in cases {
            match normalise(n) {
                Err(IntakeError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_retry_has_the_same_fingerprint_and_a_different_contact_does_not() {
        let mut a = normalise(new("k")).unwrap();
        // A retry whose channel event says more (a ringing after its hang-up) is the
        // same contact.
        let mut b = normalise(NewInteraction {
            first_event: Some(switchboard_contract::FirstEvent {
                event_key: "k:ringing".into(),
                kind: "call_ringing".into(),
                data: serde_json::json!({ "to": "+4420" }),
                fingerprint: None,
                files: Vec::new(),
            }),
            ..new("k")
        })
        .unwrap();
        let mut c = normalise(NewInteraction {
            body: Some("Other".into()),
            preferred_agent: None,
            not_before_ms: None,
            waits_for_first_message: false,
            first_event: None,
            ..new("k")
        })
        .unwrap();
        let first = b.first_event.clone();
        assert_eq!(fingerprint(&mut a), fingerprint(&mut b));
        assert_eq!(b.first_event, first, "the event stays with the contact");
        assert_ne!(fingerprint(&mut a), fingerprint(&mut c));
    }
}
