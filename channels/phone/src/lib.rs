//! Switchboard's phone channel. Phone systems post call events as webhooks; each inbound
//! call becomes an interaction routed like any other, and the phone system is told
//! where to connect the caller: in the answer to the ringing event when an agent takes
//! the call within the answer window, otherwise later by a signed callback (or, for
//! Twilio, by updating the live call). The call's own state is the authority on the
//! interaction's life: a hang-up ends it wherever it is.
//!
//! Three formats, one behaviour:
//! - [`native`]: Switchboard's JSON events, signed with HMAC-SHA256 ([`signature`]);
//! - [`zammad`]: Zammad's "generic CTI" (`newCall` / `answer` / `hangup`), so phone
//!   systems that already speak to Zammad work unchanged;
//! - [`twilio`]: Twilio Voice webhooks and status callbacks, answered with TwiML.
//!
//! The adapter reaches the core only through [`switchboard_contract::Core`].

mod calls;
mod deliver;
pub mod native;
pub mod signature;
pub mod twilio;
pub mod zammad;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use switchboard_contract::Core;
use tokio::sync::Notify;

pub use calls::{CallEvent, Ringing, MAX_CALL_ID};
pub use deliver::run;

/// The phone channel's settings (`[phone]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSettings {
    /// The shared secret of the native webhooks and callbacks; empty refuses them.
    pub secret: String,
    /// How far a native request's timestamp may be from now, in seconds.
    pub max_clock_skew_secs: u64,
    /// How long the answer to a ringing event waits for an agent to take the call, in ms.
    pub answer_window_ms: u64,
    /// Where native dial commands for calls taken after the answer window are posted;
    /// empty sends none.
    pub callback_url: String,
    /// Attempts at delivering a command before giving up.
    pub callback_max_attempts: u32,
    /// The token in Zammad generic CTI URLs (`/channels/phone/zammad/{token}`); empty
    /// refuses them.
    pub zammad_token: String,
    /// The Twilio account's SID, for updating calls.
    pub twilio_account_sid: String,
    /// The Twilio account's auth token, which signs Twilio's webhooks; empty refuses them.
    pub twilio_auth_token: String,
    /// The secret of a Twilio webhook shared key, when Twilio signs webhooks with one;
    /// empty: the auth token signs them.
    #[serde(default)]
    pub twilio_webhook_key: String,
    /// The public base URL Twilio calls (`https://switchboard.example.com`): signatures
    /// cover the URL as Twilio sent it, not as a proxy passed it on.
    pub twilio_public_url: String,
    /// Twilio's REST API.
    pub twilio_api_url: String,
    /// What `<Dial>` rings for an agent, with `{extension}` replaced: `sip:…` dials a SIP
    /// address, `client:…` a Twilio Client, anything else a number.
    pub twilio_dial: String,
    /// The Twilio queue callers wait in (`<Enqueue>`).
    pub twilio_queue: String,
    /// The number Twilio makes callbacks from; empty: none are dialled by Twilio.
    #[serde(default)]
    pub twilio_caller_id: String,
    /// Callers answered with a refusal (the numbers as the phone system sends them).
    pub blocked_numbers: Vec<String>,
    /// The largest event body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// The running channel: its settings, the core, and an HTTP client for callbacks.
pub struct Phone {
    settings: PhoneSettings,
    core: Arc<dyn Core>,
    http: reqwest::Client,
    /// Wakes the delivery of commands.
    wake: Notify,
    /// Calls (by contact key) whose ringing event is still waiting for an agent: the
    /// answer to that event carries the dial, not a callback.
    ringing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Other nodes take ringing events too (a cluster): a call may be ringing on one of
    /// them, so a fresh assignment's callback waits out the answer window.
    clustered: std::sync::atomic::AtomicBool,
}

impl Phone {
    /// The channel over `core`.
    pub fn new(settings: PhoneSettings, core: Arc<dyn Core>) -> Arc<Phone> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Arc::new(Phone {
            settings,
            core,
            http,
            wake: Notify::new(),
            ringing: std::sync::Mutex::default(),
            clustered: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Says other nodes take ringing events too (see [`Phone`]'s `clustered`).
    pub fn set_clustered(&self, clustered: bool) {
        self.clustered
            .store(clustered, std::sync::atomic::Ordering::Relaxed);
    }

    fn ringing_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.ringing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while the ringing event of this call (by its contact key) is waiting for an
    /// agent.
    fn within_window(&self, contact_key: &str) -> bool {
        self.ringing_set().contains(contact_key)
    }
}

/// The webhook routes, under `/channels/phone`.
pub fn routes<S: Clone + Send + Sync + 'static>(phone: Arc<Phone>) -> Router<S> {
    Router::new()
        .route("/channels/phone/events", post(native::events))
        .route("/channels/phone/zammad/{token}", post(zammad::events))
        .route("/channels/phone/twilio/voice", post(twilio::voice))
        .route("/channels/phone/twilio/status", post(twilio::status))
        .route("/channels/phone/twilio/wait", post(twilio::wait))
        .route("/channels/phone/twilio/gather", post(twilio::gather))
        .with_state(phone)
}

/// Why an event was not processed, answered in the format's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    /// 401: not signed, or signed wrongly; nothing was processed.
    Unauthorized(String),
    /// 400: the event is wrong; `field` names the part at fault.
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// 422: the event is well formed but names something the format does not have (a
    /// Zammad call's `direction` other than `in` or `out`, as Zammad answers it).
    Unprocessable {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// 413: the body is larger than allowed.
    TooLarge(usize),
    /// 503: the core cannot take it now; nothing was accepted, retry.
    Unavailable(String),
}

impl PhoneError {
    fn invalid(field: &str, message: impl Into<String>) -> PhoneError {
        PhoneError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl IntoResponse for PhoneError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = match self {
            PhoneError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m, None),
            PhoneError::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{field}: {message}"),
                Some(field),
            ),
            PhoneError::Unprocessable { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                format!("{field}: {message}"),
                Some(field),
            ),
            PhoneError::TooLarge(max) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the event is larger than {max} bytes"),
                None,
            ),
            PhoneError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, None),
        };
        let mut body = json!({ "error": code, "message": message });
        if let Some(f) = field {
            body["field"] = json!(f);
        }
        let mut r = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// Reads a request body up to the configured limit.
async fn read_body(phone: &Phone, body: axum::body::Body) -> Result<axum::body::Bytes, PhoneError> {
    axum::body::to_bytes(body, phone.settings.max_body_bytes)
        .await
        .map_err(|_| PhoneError::TooLarge(phone.settings.max_body_bytes))
}

/// The current Unix time in seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
