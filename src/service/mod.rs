//! Service commitments: what a contact centre promises its customers — when it is open,
//! how soon each kind of contact is answered and resolved, that a complaint has a named
//! owner, that a caller who could not wait is called back, and asking afterwards how it
//! went. They are written in the routing rules document (`[calendars]`, `[[hours]]`,
//! `[closed]`, `[[policies]]`, `[complaints]`, `[callbacks]`, `[satisfaction]`), so they
//! are versioned, checked, simulated and applied with the rest of the rules.
//!
//! # Layout
//! - [`calendar`]: opening hours, time zones and holidays, and counting in open time.
//! - [`rules`]: the sections of the rules document, and their checks.
//! - [`Service`]: one version of them, ready to answer (which calendar serves a contact,
//!   whether it is open, when a target is due); [`Services`] holds the version in force
//!   on this node.

pub mod calendar;
pub mod rollup;
pub mod rules;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use switchboard_contract::ChannelKind;

use crate::routing::rules::Rules;
use calendar::Calendar;
use rules::{covers, Policy};

/// The targets a contact is held to, by name in the store and the history.
pub mod target {
    /// The first answer.
    pub const FIRST_RESPONSE: &str = "first_response";
    /// An answer after each further message of the customer.
    pub const NEXT_RESPONSE: &str = "next_response";
    /// The contact resolved.
    pub const RESOLUTION: &str = "resolution";
}

/// One target of one contact, as intake sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    /// [`target`]'s name.
    pub target: &'static str,
    /// The calendar it is counted in (`None`: around the clock).
    pub calendar: Option<String>,
    /// Its length in open time (ms).
    pub budget_ms: i64,
    /// How long before it the warning comes, in open time (ms).
    pub warn_ms: i64,
    /// When its clock started.
    pub started_at: i64,
    /// When it is due.
    pub due_at: i64,
    /// When the warning comes.
    pub warn_at: i64,
}

/// One version of the service commitments, ready to answer.
#[derive(Debug, Clone)]
pub struct Service {
    rules: Arc<Rules>,
    calendars: BTreeMap<String, Calendar>,
}

impl Service {
    /// The commitments of `rules` (checked already: a calendar that does not build is
    /// left out, and what it serves is served around the clock).
    pub fn new(rules: Arc<Rules>) -> Service {
        let calendars = rules
            .calendars
            .iter()
            .filter_map(|(name, doc)| Some((name.clone(), Calendar::build(name, doc).ok()?)))
            .collect();
        Service { rules, calendars }
    }

    /// The rules these come from.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A calendar by name.
    pub fn calendar(&self, name: &str) -> Option<&Calendar> {
        self.calendars.get(name)
    }

    /// The calendar that serves a contact of `tier` on `channel`: its name and itself;
    /// `None` when it is served around the clock.
    pub fn calendar_for(&self, tier: &str, channel: ChannelKind) -> Option<(&str, &Calendar)> {
        let rule = self
            .rules
            .hours
            .iter()
            .find(|h| covers(&h.tier, tier) && covers(&h.channel, channel.as_str()))?;
        let (name, cal) = self.calendars.get_key_value(&rule.calendar)?;
        Some((name.as_str(), cal))
    }

    /// When a contact of `tier` on `channel` arriving at `now` is served: `None` when it
    /// is open now, else its calendar's next opening (`i64::MAX` when it never opens
    /// within a year).
    pub fn opens_at(&self, tier: &str, channel: ChannelKind, now: i64) -> Option<i64> {
        let (_, cal) = self.calendar_for(tier, channel)?;
        if cal.is_open(now) {
            None
        } else {
            Some(cal.next_open(now).unwrap_or(i64::MAX))
        }
    }

    /// The policy for a contact (the first that matches), if any.
    pub fn policy(&self, tier: &str, topic: Option<&str>, channel: ChannelKind) -> Option<&Policy> {
        let topic = topic.unwrap_or("");
        self.rules.policies.iter().find(|p| {
            covers(&p.tier, tier)
                && (p.topic == "*" || p.topic == topic)
                && covers(&p.channel, channel.as_str())
        })
    }

    /// Whether `topic` is a complaint's.
    pub fn is_complaint(&self, topic: Option<&str>) -> bool {
        topic.is_some_and(|t| self.rules.complaints.topics.iter().any(|c| c == t))
    }

    /// The deadline of `minutes` of open time from `from` in the contact's calendar
    /// (`None`: around the clock), warned `warn_mins` before.
    pub fn deadline(
        &self,
        target: &'static str,
        calendar: Option<&str>,
        from: i64,
        budget_ms: i64,
        warn_ms: i64,
    ) -> Deadline {
        let cal = calendar.and_then(|c| self.calendars.get(c));
        let after = |ms: i64| match cal {
            Some(c) => c.after_open(from, ms).unwrap_or(i64::MAX),
            None => from.saturating_add(ms),
        };
        Deadline {
            target,
            calendar: calendar.map(str::to_string),
            budget_ms,
            warn_ms,
            started_at: from,
            due_at: after(budget_ms),
            warn_at: after((budget_ms - warn_ms).max(0)),
        }
    }

    /// The deadlines a new contact of `tier`, `topic` on `channel` is held to from
    /// `from` (its arrival): the policy's first response and resolution; the next
    /// response is set when the customer writes again after an answer.
    pub fn deadlines(
        &self,
        tier: &str,
        topic: Option<&str>,
        channel: ChannelKind,
        from: i64,
    ) -> Vec<Deadline> {
        let Some(p) = self.policy(tier, topic, channel) else {
            return Vec::new();
        };
        let calendar = self.calendar_for(tier, channel).map(|(n, _)| n);
        let warn = i64::from(p.warn_before_mins) * 60_000;
        [
            (target::FIRST_RESPONSE, p.first_response_mins),
            (target::RESOLUTION, p.resolution_mins),
        ]
        .into_iter()
        .filter_map(|(t, mins)| {
            let mins = mins?;
            Some(self.deadline(t, calendar, from, i64::from(mins) * 60_000, warn))
        })
        .collect()
    }
}

/// The version of the service commitments in force on this node, swapped whole when the
/// rules change.
#[derive(Debug)]
pub struct Services {
    current: RwLock<(i64, Arc<Service>)>,
    /// Warnings and breaches, for the supervisors' live view.
    notices: tokio::sync::broadcast::Sender<serde_json::Value>,
}

impl Services {
    /// The commitments of rules version `version`.
    pub fn new(version: i64, rules: Arc<Rules>) -> Arc<Services> {
        Arc::new(Services {
            current: RwLock::new((version, Arc::new(Service::new(rules)))),
            notices: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// The version in force.
    pub fn get(&self) -> Arc<Service> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// The rules version in force.
    pub fn version(&self) -> i64 {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Puts rules version `version` in force, unless a newer one is already.
    pub fn set(&self, version: i64, rules: Arc<Rules>) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if version >= current.0 {
            *current = (version, Arc::new(Service::new(rules)));
        }
    }

    /// Tells the supervisors watching of a warning or breach (those not watching find it
    /// in the history).
    pub fn notify(&self, notice: serde_json::Value) {
        // Nobody watching is fine: the notice is in the history already.
        let _ = self.notices.send(notice);
    }

    /// Warnings and breaches from now on.
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value> {
        self.notices.subscribe()
    }

    /// Reads the newest rules version from the store and puts it in force when it is
    /// newer than this node's (another node applied it).
    pub async fn refresh(
        &self,
        store: &crate::store::Store,
        tiers: &[String],
    ) -> anyhow::Result<()> {
        let newest: Option<i64> = {
            let mut conn = store.pool().acquire().await?;
            sqlx::query_scalar("SELECT MAX(version) FROM routing_rules")
                .fetch_one(&mut *conn)
                .await?
        };
        if newest.is_some_and(|v| v > self.version()) {
            let active = crate::simulation::Active::latest(store, tiers).await?;
            self.set(active.version, Arc::new(active.rules));
        }
        Ok(())
    }
}
