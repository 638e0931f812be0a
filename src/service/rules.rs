//! The service commitments as the routing rules document writes them: calendars, which
//! calendar serves which contacts, what each channel does while closed, the service
//! policies (first response, next response, resolution), complaints, callbacks and the
//! satisfaction survey. They live in the same versioned document as the routing rules,
//! so one change of hours and targets is validated, simulated, applied, audited and
//! rolled back as the rest of the rules are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_contract::ChannelKind;

use super::calendar::Calendar;
use crate::routing::rules::{Report, Rules};

/// Which calendar serves contacts of a tier on a channel (the first rule that matches).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursRule {
    /// A tier, or `*`.
    #[serde(default = "any")]
    pub tier: String,
    /// A channel (`phone`, `email`, `chat`, `api`), or `*`.
    #[serde(default = "any")]
    pub channel: String,
    /// The calendar's name in `[calendars]`.
    pub calendar: String,
}

/// What a phone call is answered with while closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedCall {
    /// The closed message, then the caller may ask to be called back at the opening.
    Callback,
    /// The closed message, then a voicemail is recorded.
    Voicemail,
    /// The closed message, then the call ends.
    Message,
}

impl ClosedCall {
    /// Its name in the rules.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedCall::Callback => "callback",
            ClosedCall::Voicemail => "voicemail",
            ClosedCall::Message => "message",
        }
    }
}

/// When a mail is acknowledged with the expected answer time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acknowledge {
    /// Only mail that arrives while closed.
    Closed,
    /// Every new mail thread.
    Always,
    /// Never.
    Never,
}

impl Acknowledge {
    /// Its name in the rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Acknowledge::Closed => "closed",
            Acknowledge::Always => "always",
            Acknowledge::Never => "never",
        }
    }
}

/// What each channel does while its calendar is closed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClosedRules {
    /// What a call is answered with.
    pub phone: ClosedCall,
    /// What the caller hears (the phone system speaks it).
    pub phone_message: String,
    /// What the chat widget shows, above the hours and a form for an offline message.
    pub chat_message: String,
    /// When a mail gets an acknowledgement.
    pub email_acknowledge: Acknowledge,
    /// The acknowledgement's subject (`{subject}`: the customer's subject).
    pub email_subject: String,
    /// Its text: `{due}` is when an answer is due, `{opens}` the next opening, both in
    /// the calendar's time zone.
    pub email_text: String,
}

impl Default for ClosedRules {
    fn default() -> Self {
        ClosedRules {
            phone: ClosedCall::Callback,
            phone_message: "Thank you for calling. We are closed now.".into(),
            chat_message: "We are closed now. Leave us a message and we will answer it when we open.".into(),
            email_acknowledge: Acknowledge::Closed,
            email_subject: "We have your message: {subject}".into(),
            email_text: "Thank you for your message. We have received it and will answer by {due}.\n\nPlease do not reply to this acknowledgement: your message is with us already.".into(),
        }
    }
}

/// Targets for contacts of a tier, topic and channel (the first policy that matches).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A tier, or `*`.
    #[serde(default = "any")]
    pub tier: String,
    /// A topic, or `*`.
    #[serde(default = "any")]
    pub topic: String,
    /// A channel, or `*`.
    #[serde(default = "any")]
    pub channel: String,
    /// Minutes of open time until the first answer is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_mins: Option<u32>,
    /// Minutes of open time until an answer is due after each further message of the
    /// customer (email and chat threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_response_mins: Option<u32>,
    /// Minutes of open time until it is resolved (time waiting on the customer does not
    /// count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_mins: Option<u32>,
    /// Minutes before a target that the warning comes.
    #[serde(default = "warn_before")]
    pub warn_before_mins: u32,
}

/// Complaints: a named owner and a deadline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplaintRules {
    /// The topics that are complaints.
    pub topics: Vec<String>,
    /// Hours until a complaint must be resolved.
    pub resolution_hours: u32,
    /// The calendar those hours are counted in; none: around the clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Minutes before the deadline that the warning comes.
    pub warn_before_mins: u32,
}

impl Default for ComplaintRules {
    fn default() -> Self {
        ComplaintRules {
            topics: vec!["complaint".into()],
            resolution_hours: 24,
            calendar: None,
            warn_before_mins: 120,
        }
    }
}

/// Calling customers back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackRules {
    /// Per tier: whether a missed call becomes a callback task (a tier left out: yes).
    pub missed_calls: BTreeMap<String, bool>,
    /// Dial attempts before a callback is given up.
    pub attempts: u32,
    /// Minutes between attempts.
    pub retry_after_mins: u32,
    /// Seconds a caller waits before being offered a callback in the queue (0: at once).
    pub offer_after_secs: u32,
}

impl Default for CallbackRules {
    fn default() -> Self {
        CallbackRules {
            missed_calls: BTreeMap::new(),
            attempts: 3,
            retry_after_mins: 10,
            offer_after_secs: 60,
        }
    }
}

/// Asking the customer how it went.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SatisfactionRules {
    /// The channels whose completed contacts are asked (`chat`, `email`, `phone`).
    pub channels: Vec<String>,
    /// The question.
    pub question: String,
    /// A score at or below this opens a follow-up for the owner (0: never).
    pub follow_up_at_or_below: u8,
    /// Days an email's survey link stays valid.
    pub link_valid_days: u32,
}

impl Default for SatisfactionRules {
    fn default() -> Self {
        SatisfactionRules {
            channels: vec!["chat".into(), "email".into(), "phone".into()],
            question: "How satisfied are you with the help you got?".into(),
            follow_up_at_or_below: 2,
            link_valid_days: 14,
        }
    }
}

fn any() -> String {
    "*".into()
}

fn warn_before() -> u32 {
    15
}

/// The longest target any policy may name, in minutes (a year).
pub const MAX_MINS: u32 = 365 * 24 * 60;

/// Builds every calendar of `rules`; errors name the field.
pub fn calendars(rules: &Rules) -> Result<BTreeMap<String, Calendar>, Vec<String>> {
    let mut built = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, doc) in &rules.calendars {
        if !valid_name(name) {
            errors.push(format!(
                "calendars.{name}: a calendar's name is 1 to 64 letters, digits, '-' or '_'"
            ));
        }
        match Calendar::build(&format!("calendars.{name}"), doc) {
            Ok(c) => {
                built.insert(name.clone(), c);
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(errors)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `pattern` (a name or `*`) covers `value`.
pub fn covers(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern == value
}

/// Checks the service sections of `rules` against the configured tiers, adding to `r`.
pub fn validate(rules: &Rules, tiers: &[String], r: &mut Report) {
    if let Err(e) = calendars(rules) {
        r.errors.extend(e);
    }
    let tier_ok = |t: &str| t == "*" || tiers.iter().any(|x| x == t);
    let channel_ok = |c: &str| c == "*" || ChannelKind::parse(c).is_some();
    for (i, h) in rules.hours.iter().enumerate() {
        let at = format!("hours[{i}]");
        if !tier_ok(&h.tier) {
            r.errors.push(format!(
                "{at}.tier: '{}' is not a configured tier {tiers:?} (or \"*\")",
                h.tier
            ));
        }
        if !channel_ok(&h.channel) {
            r.errors.push(format!(
                "{at}.channel: '{}' is not a channel (phone, email, chat, api, or \"*\")",
                h.channel
            ));
        }
        if !rules.calendars.contains_key(&h.calendar) {
            r.errors.push(format!(
                "{at}.calendar: no calendar is named '{}' in [calendars]",
                h.calendar
            ));
        }
        if let Some(j) = rules.hours[..i]
            .iter()
            .position(|e| covers(&e.tier, &h.tier) && covers(&e.channel, &h.channel))
        {
            r.errors.push(format!(
                "{at}: matches nothing, since hours[{j}] comes first and covers every contact it would"
            ));
        }
    }
    if !rules.hours.is_empty() {
        let uncovered: Vec<String> = tiers
            .iter()
            .flat_map(|t| ChannelKind::ALL.map(move |c| (t.clone(), c)))
            .filter(|(t, c)| {
                !rules
                    .hours
                    .iter()
                    .any(|h| covers(&h.tier, t) && covers(&h.channel, c.as_str()))
            })
            .map(|(t, c)| format!("{t}/{c}"))
            .collect();
        if !uncovered.is_empty() {
            r.warnings.push(format!(
                "hours: no rule covers {}: those contacts are served around the clock",
                uncovered.join(", ")
            ));
        }
    }
    for (i, p) in rules.policies.iter().enumerate() {
        let at = format!("policies[{i}]");
        if !tier_ok(&p.tier) {
            r.errors.push(format!(
                "{at}.tier: '{}' is not a configured tier {tiers:?} (or \"*\")",
                p.tier
            ));
        }
        if !channel_ok(&p.channel) {
            r.errors.push(format!(
                "{at}.channel: '{}' is not a channel (phone, email, chat, api, or \"*\")",
                p.channel
            ));
        }
        let targets = [
            ("first_response_mins", p.first_response_mins),
            ("next_response_mins", p.next_response_mins),
            ("resolution_mins", p.resolution_mins),
        ];
        if targets.iter().all(|(_, t)| t.is_none()) {
            r.errors.push(format!(
                "{at}: names no target (first_response_mins, next_response_mins or resolution_mins)"
            ));
        }
        for (name, t) in targets {
            match t {
                Some(0) => r
                    .errors
                    .push(format!("{at}.{name}: must be at least 1 minute")),
                Some(m) if m > MAX_MINS => r
                    .errors
                    .push(format!("{at}.{name}: at most {MAX_MINS} (a year), not {m}")),
                Some(m) if p.warn_before_mins >= m => r.errors.push(format!(
                    "{at}.warn_before_mins: {} is not before the {name} target of {m}",
                    p.warn_before_mins
                )),
                _ => {}
            }
        }
        if p.next_response_mins.is_some() && matches!(p.channel.as_str(), "phone" | "api") {
            r.warnings.push(format!(
                "{at}.next_response_mins: a {} contact has no thread of messages; ignored",
                p.channel
            ));
        }
        if let Some(j) = rules.policies[..i].iter().position(|e| {
            covers(&e.tier, &p.tier) && covers(&e.topic, &p.topic) && covers(&e.channel, &p.channel)
        }) {
            r.errors.push(format!(
                "{at}: matches nothing, since policies[{j}] comes first and covers every contact it would"
            ));
        }
    }
    let c = &rules.complaints;
    if c.resolution_hours == 0 {
        r.errors
            .push("complaints.resolution_hours: must be at least 1".into());
    } else if c.resolution_hours > MAX_MINS / 60 {
        r.errors.push(format!(
            "complaints.resolution_hours: at most {} (a year)",
            MAX_MINS / 60
        ));
    } else if c.warn_before_mins >= c.resolution_hours * 60 {
        r.errors.push(format!(
            "complaints.warn_before_mins: {} is not before the deadline of {} hours",
            c.warn_before_mins, c.resolution_hours
        ));
    }
    if let Some(cal) = &c.calendar {
        if !rules.calendars.contains_key(cal) {
            r.errors.push(format!(
                "complaints.calendar: no calendar is named '{cal}' in [calendars]"
            ));
        }
    }
    for (i, t) in c.topics.iter().enumerate() {
        if t.trim().is_empty() || *t != t.to_ascii_lowercase() {
            r.errors.push(format!(
                "complaints.topics[{i}]: '{t}' is not a topic (lower case, as contacts carry them)"
            ));
        }
    }
    let cb = &rules.callbacks;
    for tier in cb.missed_calls.keys() {
        if !tiers.contains(tier) {
            r.errors.push(format!(
                "callbacks.missed_calls.{tier}: '{tier}' is not a configured tier {tiers:?}"
            ));
        }
    }
    if cb.attempts == 0 || cb.attempts > 20 {
        r.errors
            .push("callbacks.attempts: 1 to 20 dial attempts".into());
    }
    if cb.retry_after_mins == 0 || cb.retry_after_mins > 7 * 24 * 60 {
        r.errors
            .push("callbacks.retry_after_mins: 1 minute to a week".into());
    }
    let s = &rules.satisfaction;
    for (i, ch) in s.channels.iter().enumerate() {
        if !matches!(ch.as_str(), "chat" | "email" | "phone" | "api") {
            r.errors.push(format!(
                "satisfaction.channels[{i}]: '{ch}' is not a channel (chat, email, phone, api)"
            ));
        }
    }
    if s.follow_up_at_or_below > 5 {
        r.errors.push(
            "satisfaction.follow_up_at_or_below: scores are 1 to 5 (0: never follow up)".into(),
        );
    }
    if s.link_valid_days == 0 || s.link_valid_days > 365 {
        r.errors
            .push("satisfaction.link_valid_days: 1 to 365".into());
    }
    if s.question.trim().is_empty() || s.question.chars().count() > 300 {
        r.errors
            .push("satisfaction.question: 1 to 300 characters".into());
    }
    for (field, text, limit) in [
        ("closed.phone_message", &rules.closed.phone_message, 1000),
        ("closed.chat_message", &rules.closed.chat_message, 2000),
        ("closed.email_subject", &rules.closed.email_subject, 200),
        ("closed.email_text", &rules.closed.email_text, 10_000),
    ] {
        if text.trim().is_empty() || text.chars().count() > limit {
            r.errors.push(format!("{field}: 1 to {limit} characters"));
        }
    }
}
