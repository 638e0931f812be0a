//! Typed settings: the built-in defaults (`config/switchboard.toml`, embedded), then a
//! file, then `SWITCHBOARD__SECTION__KEY` variables from the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::Deserialize;

/// The default configuration, as shipped in `config/switchboard.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/switchboard.toml");

/// Where the default configuration file is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "config/switchboard.toml";

/// All of Switchboard's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The HTTP listener and shutdown.
    pub server: ServerSettings,
    /// Where data lives.
    pub storage: StorageSettings,
    /// Group commit of new contacts.
    pub intake: IntakeSettings,
    /// What is refused, and in which order, when the server is past its capacity.
    pub admission: AdmissionSettings,
    /// The admin API.
    pub api: ApiSettings,
    /// Customer identities.
    pub customers: CustomerSettings,
    /// Value tiers and how they are computed.
    pub tiers: TierSettings,
    /// Agent sessions.
    pub agents: AgentSettings,
    /// Where the routing rules are.
    pub routing: RoutingSettings,
    /// The phone channel.
    pub phone: switchboard_phone::PhoneSettings,
    /// The email channel.
    pub email: switchboard_email::EmailSettings,
    /// The web chat channel.
    pub chat: switchboard_chat::ChatSettings,
    /// Several nodes on PostgreSQL.
    pub cluster: ClusterSettings,
    /// Service commitments: escalations.
    pub service: ServiceSettings,
    /// How long what customers and agents wrote is kept, per channel.
    pub retention: RetentionSettings,
    /// Logging.
    pub log: LogSettings,
}

/// Several nodes on one PostgreSQL database (SQLite is one node and ignores this).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Where the other nodes reach this one (`http://10.0.0.5:8080`); empty: the address
    /// it listens on.
    pub advertise_url: String,
}

/// Service commitments: where escalations go (the commitments themselves are in the
/// routing rules).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Where breaches are posted (empty: nowhere).
    pub escalation_webhook_url: String,
    /// The secret they are signed with.
    pub escalation_webhook_secret: String,
    /// Where customers reach this server, for survey links in mail (empty: none sent).
    pub public_url: String,
    /// Lets tests move the clock forward over `POST /internal/clock`.
    pub test_clock: bool,
}

/// Retention: per channel, how many days what customers and agents wrote is kept before
/// the leader removes it (keeping each contact's metadata for reports).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days mail's content is kept (0: forever).
    pub email_days: u32,
    /// Days chats' texts are kept (0: forever).
    pub chat_days: u32,
    /// Days calls' content (voicemail recordings, notes) is kept (0: forever).
    pub phone_days: u32,
    /// Days the content of contacts made over the API is kept (0: forever).
    pub api_days: u32,
    /// Minutes between two runs of the retention.
    pub interval_mins: u32,
}

/// The longest retention period a channel may be given, in days (about a century).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl RetentionSettings {
    /// The days a channel's content is kept (0: forever).
    pub fn days(&self, channel: switchboard_contract::ChannelKind) -> u32 {
        use switchboard_contract::ChannelKind;
        match channel {
            ChannelKind::Email => self.email_days,
            ChannelKind::Chat => self.chat_days,
            ChannelKind::Phone => self.phone_days,
            ChannelKind::Api => self.api_days,
        }
    }

    fn check(&self, problems: &mut Vec<String>) {
        for channel in switchboard_contract::ChannelKind::ALL {
            let days = self.days(channel);
            if days > MAX_RETENTION_DAYS {
                problems.push(format!(
                    "retention.{channel}_days: {days} is over {MAX_RETENTION_DAYS}; give 0 to keep forever, or 1 to {MAX_RETENTION_DAYS} days"
                ));
            }
        }
        if !(1..=1440).contains(&self.interval_mins) {
            problems.push("retention.interval_mins: must be from 1 to 1440 (a day)".into());
        }
    }
}

/// Agent sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Seconds of silence before a desktop is disconnected.
    pub heartbeat_timeout_secs: u64,
    /// Seconds a disconnected desktop may resume its session.
    pub resume_grace_secs: u64,
}

/// Where the routing rules are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSettings {
    /// The rules file; empty for `config/routing.toml` when it exists, else the built-in rules.
    pub rules_file: String,
    /// The longest window the replay simulator takes, in hours.
    pub simulation_max_window_hours: u64,
    /// The most contacts one simulation replays.
    pub simulation_max_contacts: usize,
    /// The longest one simulation may run, in seconds.
    pub simulation_time_limit_secs: u64,
    /// Assignments and completions a channel may fall behind by before it reads what it
    /// missed from the store instead.
    pub announcements_buffer: usize,
}

impl RoutingSettings {
    /// The rules file to read, if any (`None`: the default lookup).
    pub fn path(&self) -> Option<&Path> {
        (!self.rules_file.is_empty()).then(|| Path::new(&self.rules_file))
    }
}

/// The HTTP listener and shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server binds (port 0 picks a free port).
    pub http_addr: String,
    /// Seconds a shutdown waits for requests in flight.
    pub shutdown_grace_secs: u64,
    /// Seconds one HTTP request may take.
    pub request_timeout_secs: u64,
    /// Seconds a connection may take to send a request's headers, and idle between
    /// requests, before it is closed.
    pub header_read_timeout_secs: u64,
    /// The most HTTP connections (websockets included) open at once; 0: as many as the
    /// process's file limit allows, less what the store and files need.
    pub max_connections: usize,
    /// Load balancers and proxies in front whose `X-Forwarded-For` is believed (IP
    /// addresses or networks such as `10.0.0.0/8`); the client address is then the one
    /// they forwarded.
    pub trusted_proxies: Vec<String>,
}

/// Where data lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Directory for the SQLite database and generated secrets.
    pub data_dir: PathBuf,
    /// Database URL; empty means SQLite in `data_dir`.
    pub database_url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a busy group writer holds its group open before committing (ms).
    pub commit_window_ms: u64,
}

/// Group commit of new contacts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSettings {
    /// Most contacts committed in one transaction.
    pub max_batch: usize,
    /// Most contacts waiting for a commit before channels are told to retry.
    pub max_pending: usize,
}

/// Admission control: past the rate the server can route, new contacts are refused early
/// (in each channel's own way: HTTP 503, SMTP 451, a busy answer to a ringing call, a
/// chat's start delayed) rather than all slowed down until nothing is routed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSettings {
    /// Off: every contact is taken whatever the load (up to `intake.max_pending`).
    pub enabled: bool,
    /// The longest a committed contact may wait for the router to take it up, or a
    /// contact for its commit, before refusing begins (ms).
    pub target_lag_ms: u64,
    /// What a refused sender is told to wait before retrying (seconds).
    pub retry_after_secs: u32,
    /// The longest a new contact may wait in line for its commit: one that waited longer
    /// is refused (never acknowledged) rather than taken late, when its sender has
    /// likely given up (ms).
    pub max_wait_ms: u64,
    /// Where on the pressure's scale (0 to 1) each channel starts being refused: the
    /// cheapest to refuse first (mail servers retry for days; a caller is a person on the
    /// line).
    pub channel_start: BTreeMap<String, f64>,
    /// Added per tier to its channel's start: known customers of a better tier are
    /// refused later. A tier not named adds nothing.
    pub tier_start: BTreeMap<String, f64>,
    /// Over how much of the pressure's scale a class goes from none refused to all.
    pub ramp: f64,
}

/// The admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer token for the admin API; empty means generated into the data directory.
    pub admin_token: String,
    /// Largest JSON body, in bytes.
    pub max_body_bytes: usize,
    /// Largest import body, in bytes.
    pub max_import_bytes: usize,
    /// Most rows in one import.
    pub max_import_rows: usize,
    /// The longest date range one report may cover, in days.
    pub max_report_days: u32,
    /// The time zone (IANA name) of reports' days and weeks when a report names none.
    #[serde(default = "utc")]
    pub report_time_zone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// Customer identities.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSettings {
    /// ISO 3166 region for phone numbers without a country code; empty for none.
    pub phone_default_region: String,
    /// No longer read: deadlines are the service policies and `[complaints]` of the
    /// routing rules. Accepted so an older configuration still starts (with a warning).
    #[serde(default)]
    pub matter_deadline_hours: std::collections::BTreeMap<String, u32>,
}

/// Value tiers and how they are computed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSettings {
    /// Every tier, best first.
    pub order: Vec<String>,
    /// The tier of a customer no rule places.
    pub default: String,
    /// Days of purchases that count toward frequency and monetary value.
    pub window_days: u32,
    /// Each tier's rule, by tier name.
    #[serde(default)]
    pub rules: BTreeMap<String, TierRule>,
}

/// What a customer's value data must meet for a tier.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// Met alone when the lifetime value reaches it.
    pub min_lifetime_value: Option<f64>,
    /// With the two below: the last purchase is at most this many days old.
    pub max_recency_days: Option<u32>,
    /// With the others: at least this many purchases in the window.
    pub min_frequency: Option<u32>,
    /// With the others: at least this much spent in the window.
    pub min_monetary: Option<f64>,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// One line per problem, each naming where it is.
    pub problems: Vec<String>,
}

impl Settings {
    /// Loads the defaults, then `path` (or `config/switchboard.toml` when it exists),
    /// then the environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        match path {
            Some(p) => {
                if !p.is_file() {
                    return Err(ConfigError {
                        problems: vec![format!("{}: no such configuration file", p.display())],
                    });
                }
                figment = figment.merge(Toml::file_exact(p));
            }
            None if Path::new(DEFAULT_PATH).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_PATH));
            }
            None => {}
        }
        Self::from_figment(layered(
            figment.merge(Env::prefixed("SWITCHBOARD__").split("__")),
        ))
    }

    /// Loads only the built-in defaults (tests start from these).
    pub fn defaults() -> Settings {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
            .expect("the built-in defaults are valid")
    }

    fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract().map_err(|e| ConfigError {
            problems: e.into_iter().map(|e| describe_figment_error(&e)).collect(),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot: names that must refer to each other, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.http_addr.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "server.http_addr: '{}' is not an address and port such as 127.0.0.1:8080",
                self.server.http_addr
            ));
        }
        if self.server.request_timeout_secs == 0 {
            problems.push("server.request_timeout_secs: must be at least 1".into());
        }
        if self.server.header_read_timeout_secs == 0 {
            problems.push("server.header_read_timeout_secs: must be at least 1".into());
        }
        for p in &self.server.trusted_proxies {
            if let Err(e) = p.parse::<crate::serve::Network>() {
                problems.push(format!("server.trusted_proxies: {e}"));
            }
        }
        let url = &self.storage.database_url;
        let known_scheme = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p));
        if !url.is_empty() && !known_scheme {
            problems.push("storage.database_url: must start with sqlite:, postgres:// or postgresql:// (or be empty for the embedded SQLite)".into());
        }
        if self.storage.max_connections == 0 {
            problems.push("storage.max_connections: must be at least 1".into());
        }
        if self.intake.max_batch == 0 || self.intake.max_batch > 10_000 {
            problems.push("intake.max_batch: must be between 1 and 10000".into());
        }
        if self.storage.commit_window_ms > 50 {
            problems.push("storage.commit_window_ms: must be at most 50".into());
        }
        if self.intake.max_pending < self.intake.max_batch {
            problems.push("intake.max_pending: must be at least intake.max_batch".into());
        }
        if self.admission.target_lag_ms < 10 || self.admission.target_lag_ms > 600_000 {
            problems.push("admission.target_lag_ms: must be between 10 and 600000".into());
        }
        if self.admission.max_wait_ms < self.admission.target_lag_ms
            || self.admission.max_wait_ms > 600_000
        {
            problems.push(
                "admission.max_wait_ms: must be at least admission.target_lag_ms and at most 600000"
                    .into(),
            );
        }
        if self.admission.retry_after_secs == 0 || self.admission.retry_after_secs > 3600 {
            problems.push("admission.retry_after_secs: must be between 1 and 3600".into());
        }
        if !(self.admission.ramp > 0.0 && self.admission.ramp <= 1.0) {
            problems.push("admission.ramp: must be more than 0 and at most 1".into());
        }
        for (c, v) in &self.admission.channel_start {
            if switchboard_contract::ChannelKind::parse(c).is_none() {
                problems.push(format!(
                    "admission.channel_start.{c}: not a channel (phone, email, chat, api)"
                ));
            }
            if !(0.0..=1.0).contains(v) {
                problems.push(format!("admission.channel_start.{c}: must be from 0 to 1"));
            }
        }
        for (t, v) in &self.admission.tier_start {
            if !self.tiers.order.contains(t) {
                problems.push(format!(
                    "admission.tier_start.{t}: not a tier of tiers.order"
                ));
            }
            if !(0.0..=1.0).contains(v) {
                problems.push(format!("admission.tier_start.{t}: must be from 0 to 1"));
            }
        }
        if self.api.max_body_bytes < 1024 {
            problems.push("api.max_body_bytes: must be at least 1024".into());
        }
        if self.api.max_import_bytes < self.api.max_body_bytes {
            problems.push("api.max_import_bytes: must be at least api.max_body_bytes".into());
        }
        if self.agents.heartbeat_timeout_secs < 5 {
            problems.push("agents.heartbeat_timeout_secs: must be at least 5".into());
        }
        if self.api.max_import_rows == 0 {
            problems.push("api.max_import_rows: must be at least 1".into());
        }
        if self.api.max_report_days == 0 {
            problems.push("api.max_report_days: must be at least 1".into());
        }
        if let Err(e) = crate::store::reports::zone::parse(&self.api.report_time_zone) {
            problems.push(format!("api.report_time_zone: {e}"));
        }
        let region = &self.customers.phone_default_region;
        if !region.is_empty() && region.parse::<phonenumber::country::Id>().is_err() {
            problems.push(format!(
                "customers.phone_default_region: '{region}' is not an ISO 3166 region code such as US, GB or CN"
            ));
        }
        if self.routing.simulation_max_window_hours == 0 {
            problems.push("routing.simulation_max_window_hours: must be at least 1".into());
        }
        if self.routing.announcements_buffer == 0 {
            problems.push("routing.announcements_buffer: must be at least 1".into());
        }
        if self.routing.simulation_max_contacts == 0 {
            problems.push("routing.simulation_max_contacts: must be at least 1".into());
        }
        if self.routing.simulation_time_limit_secs == 0
            || self.routing.simulation_time_limit_secs >= self.server.request_timeout_secs
        {
            problems.push(
                "routing.simulation_time_limit_secs: must be at least 1 and under server.request_timeout_secs"
                    .into(),
            );
        }
        let phone = &self.phone;
        if phone.max_body_bytes < 1024 {
            problems.push("phone.max_body_bytes: must be at least 1024".into());
        }
        if phone.answer_window_ms > 10_000 {
            problems.push(
                "phone.answer_window_ms: at most 10000; a phone system waits for the answer".into(),
            );
        }
        if phone.callback_max_attempts == 0 {
            problems.push("phone.callback_max_attempts: must be at least 1".into());
        }
        if !phone.callback_url.is_empty() && phone.secret.is_empty() {
            problems.push("phone.callback_url: callbacks are signed; set phone.secret too".into());
        }
        for (key, url) in [
            ("phone.callback_url", &phone.callback_url),
            ("phone.twilio_public_url", &phone.twilio_public_url),
            ("phone.twilio_api_url", &phone.twilio_api_url),
        ] {
            if !url.is_empty() && reqwest::Url::parse(url).is_err() {
                problems.push(format!("{key}: '{url}' is not a URL"));
            }
        }
        if !phone.twilio_auth_token.is_empty() && phone.twilio_public_url.is_empty() {
            problems.push("phone.twilio_public_url: required with phone.twilio_auth_token (Twilio signs the public URL)".into());
        }
        let email = &self.email;
        if !email.smtp_addr.is_empty() && email.smtp_addr.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "email.smtp_addr: '{}' is not an address and port such as 0.0.0.0:2525",
                email.smtp_addr
            ));
        }
        if email.max_message_bytes < 1024 {
            problems.push("email.max_message_bytes: must be at least 1024".into());
        }
        if email.max_recipients == 0 || email.max_headers == 0 {
            problems.push("email.max_recipients, email.max_headers: must be at least 1".into());
        }
        if !["reopen", "new"].contains(&email.reply_to_closed.as_str()) {
            problems.push(format!(
                "email.reply_to_closed: '{}' is not reopen or new",
                email.reply_to_closed
            ));
        }
        let relay = &email.relay_url;
        if !(relay.is_empty() || relay.starts_with("smtp://") || relay.starts_with("smtps://")) {
            problems.push("email.relay_url: must start with smtp:// or smtps://".into());
        }
        if email.tls_cert_file.is_empty() != email.tls_key_file.is_empty() {
            problems.push(
                "email.tls_cert_file, email.tls_key_file: give both for STARTTLS, or neither"
                    .into(),
            );
        }
        if email.send_max_attempts == 0 {
            problems.push("email.send_max_attempts: must be at least 1".into());
        }
        let chat = &self.chat;
        if chat.max_message_bytes < 16 || chat.max_message_bytes > 65536 {
            problems.push("chat.max_message_bytes: between 16 and 65536".into());
        }
        if chat.messages_per_minute == 0 || chat.max_chats_per_visitor == 0 {
            problems.push(
                "chat.messages_per_minute, chat.max_chats_per_visitor: must be at least 1".into(),
            );
        }
        if chat.idle_timeout_secs < 30 {
            problems.push("chat.idle_timeout_secs: at least 30 (the widget pings every 20)".into());
        }
        let service = &self.service;
        if !service.public_url.is_empty() && reqwest::Url::parse(&service.public_url).is_err() {
            problems.push(format!(
                "service.public_url: '{}' is not a URL",
                service.public_url
            ));
        }
        if !service.escalation_webhook_url.is_empty() {
            if reqwest::Url::parse(&service.escalation_webhook_url).is_err() {
                problems.push(format!(
                    "service.escalation_webhook_url: '{}' is not a URL",
                    service.escalation_webhook_url
                ));
            }
            if service.escalation_webhook_secret.is_empty() {
                problems.push("service.escalation_webhook_url: escalations are signed; set service.escalation_webhook_secret too".into());
            }
        }
        self.tiers.check(&mut problems);
        self.retention.check(&mut problems);
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problems.push(format!(
                "log.level: '{}' is not a valid log filter",
                self.log.level
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The database URL in use: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.storage.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.storage.data_dir.join("switchboard.db").display()
            )
        } else {
            self.storage.database_url.clone()
        }
    }
}

impl TierSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if self.order.is_empty() {
            problems.push("tiers.order: name at least one tier".into());
        }
        for (i, name) in self.order.iter().enumerate() {
            let valid = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !valid {
                problems.push(format!(
                    "tiers.order[{i}]: '{name}' must be 1 to 32 lowercase letters, digits, '-' or '_'"
                ));
            }
            if self.order[..i].contains(name) {
                problems.push(format!("tiers.order[{i}]: '{name}' is listed twice"));
            }
        }
        if !self.order.contains(&self.default) {
            problems.push(format!(
                "tiers.default: '{}' is not one of tiers.order {:?}",
                self.default, self.order
            ));
        }
        if self.window_days == 0 {
            problems.push("tiers.window_days: must be at least 1".into());
        }
        for (name, rule) in &self.rules {
            let at = format!("tiers.rules.{name}");
            if !self.order.contains(name) {
                problems.push(format!(
                    "{at}: '{name}' is not one of tiers.order {:?}",
                    self.order
                ));
            }
            if *name == self.default {
                problems.push(format!(
                    "{at}: the default tier needs no rule (customers no other rule places get it)"
                ));
            }
            let rfm = [
                rule.max_recency_days.is_some(),
                rule.min_frequency.is_some(),
                rule.min_monetary.is_some(),
            ];
            if rule.min_lifetime_value.is_none() && !rfm.iter().any(|x| *x) {
                problems.push(format!(
                    "{at}: set min_lifetime_value, or max_recency_days / min_frequency / min_monetary, or remove the rule"
                ));
            }
            for (key, value) in [
                ("min_lifetime_value", rule.min_lifetime_value),
                ("min_monetary", rule.min_monetary),
            ] {
                if let Some(v) = value {
                    if !v.is_finite() || v < 0.0 {
                        problems.push(format!("{at}.{key}: must be a number of zero or more"));
                    }
                }
            }
        }
    }
}

/// The built-in defaults under what the admin wrote. Tier rules belong to the tiers they
/// name: when the admin's configuration defines `tiers.order` or any `tiers.rules`, its
/// rules replace the built-in ones whole instead of being mixed with them.
fn layered(admin: Figment) -> Figment {
    let mut defaults: Dict = Figment::from(Toml::string(DEFAULT_TOML))
        .extract()
        .expect("the built-in defaults parse");
    if admin.find_value("tiers.order").is_ok() || admin.find_value("tiers.rules").is_ok() {
        if let Some(Value::Dict(_, tiers)) = defaults.get_mut("tiers") {
            tiers.remove("rules");
        }
    }
    // Tiers renamed without saying how admission ranks them keep the built-in ranking by
    // place: the admin's best tier starts where the built-in best does, and so on.
    if let (Ok(Value::Array(_, order)), Err(_)) = (
        admin.find_value("tiers.order"),
        admin.find_value("admission.tier_start"),
    ) {
        let built_in: Vec<String> = defaults
            .get("tiers")
            .and_then(|t| t.as_dict())
            .and_then(|t| t.get("order"))
            .and_then(|o| o.as_array())
            .map(|o| {
                o.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Dict(_, admission)) = defaults.get_mut("admission") {
            if let Some(Value::Dict(_, start)) = admission.get("tier_start").cloned() {
                let ranked: Dict = order
                    .iter()
                    .zip(&built_in)
                    .filter_map(|(mine, theirs)| {
                        Some((mine.as_str()?.to_string(), start.get(theirs)?.clone()))
                    })
                    .collect();
                admission.insert("tier_start".into(), Value::from(ranked));
            }
        }
    }
    Figment::from(Serialized::defaults(defaults)).merge(admin)
}

/// One figment error as a line that says where (key and source) and what.
fn describe_figment_error(e: &figment::Error) -> String {
    let key = if e.path.is_empty() {
        String::new()
    } else {
        e.path.join(".")
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(src) => format!(" (from {src})"),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", e.kind)
    } else {
        format!("{key}: {}{source}", e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Settings, ConfigError> {
        Settings::from_figment(layered(Figment::from(Toml::string(toml))))
    }

    #[test]
    fn an_admin_who_renames_the_tiers_writes_their_rules_too() {
        let s = load_str("[tiers]\norder = [\"gold\", \"silver\"]\ndefault = \"silver\"\n[tiers.rules.gold]\nmin_lifetime_value = 100.0\n").unwrap();
        assert_eq!(s.tiers.rules.keys().collect::<Vec<_>>(), ["gold"]);
        assert_eq!(
            s.admission.tier_start.get("gold"),
            Some(&0.6),
            "the best tier keeps the best tier's place in admission"
        );
        assert_eq!(s.admission.tier_start.get("silver"), Some(&0.3));
        let s = load_str("[tiers]\nwindow_days = 30\n").unwrap();
        assert_eq!(
            s.tiers.rules.len(),
            2,
            "other tier keys keep the built-in rules"
        );
    }

    #[test]
    fn the_shipped_file_is_valid() {
        let s = Settings::defaults();
        assert_eq!(s.tiers.order, ["high", "medium", "low"]);
        assert_eq!(s.tiers.default, "low");
    }

    #[test]
    fn a_misspelt_key_is_named_with_its_section() {
        let err = load_str("[server]\nhttp_adr = \"1.2.3.4:5\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server") && err.contains("http_adr"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = load_str("[storage]\nmax_connections = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.max_connections"), "{err}");
    }

    #[test]
    fn every_semantic_problem_is_listed_at_once() {
        let err = load_str(
            "[server]\nhttp_addr = \"nowhere\"\n[tiers]\ndefault = \"gold\"\n[tiers.rules.platinum]\nmin_frequency = 3\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.http_addr"), "{text}");
        assert!(text.contains("tiers.default: 'gold'"), "{text}");
        assert!(text.contains("tiers.rules.platinum"), "{text}");
        assert_eq!(err.problems.len(), 3, "{text}");
    }

    #[test]
    fn a_commit_window_past_50_ms_is_refused() {
        let err = load_str("[storage]\ncommit_window_ms = 500\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.commit_window_ms: must be at most 50"),
            "{err}"
        );
        assert!(load_str("[storage]\ncommit_window_ms = 0\n").is_ok());
    }

    #[test]
    fn a_bad_region_is_refused() {
        let err = load_str("[customers]\nphone_default_region = \"XX\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("customers.phone_default_region"), "{err}");
    }

    #[test]
    fn retention_periods_are_bounded_and_named_when_wrong() {
        let s = load_str("[retention]\nemail_days = 30\n").unwrap();
        assert_eq!(
            (
                s.retention.email_days,
                s.retention.chat_days,
                s.retention.interval_mins
            ),
            (30, 0, 60),
            "a channel left out keeps its content forever"
        );
        let err = load_str("[retention]\nchat_days = 40000\ninterval_mins = 0\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("retention.chat_days: 40000 is over 36500"),
            "{text}"
        );
        assert!(
            text.contains("retention.interval_mins: must be from 1 to 1440"),
            "{text}"
        );
        assert_eq!(err.problems.len(), 2, "{text}");
        let err = load_str("[retention]\nphone_days = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.phone_days"), "{err}");
        let err = load_str("[retention]\nsms_days = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("retention") && err.contains("sms_days"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_database_url_means_sqlite_in_the_data_dir() {
        let s = load_str("[storage]\ndata_dir = \"/srv/sb\"\n").unwrap();
        assert_eq!(s.database_url(), "sqlite:///srv/sb/switchboard.db?mode=rwc");
    }
}
