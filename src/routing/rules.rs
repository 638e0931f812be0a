//! The routing rules: a validated document (default in `config/routing.toml`) that says
//! how waiting interactions are ordered, which agents may take them, and how agents are
//! chosen and offered work.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use switchboard_contract::ChannelKind;

use crate::service::calendar::CalendarDoc;
use crate::service::rules::{
    CallbackRules, ClosedRules, ComplaintRules, HoursRule, Policy, SatisfactionRules,
};

/// The default rules, as shipped in `config/routing.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/routing.toml");

/// Where the rules are looked for when the configuration does not say.
pub const DEFAULT_PATH: &str = "config/routing.toml";

/// The whole rule set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// How waiting interactions are ordered. A document without it was written before
    /// the target order existed, and keeps the head-start order it was written for.
    #[serde(default = "Order::written_before_targets")]
    pub order: Order,
    /// The fair wait that bounds the target order (ignored by the head-start order).
    #[serde(default)]
    pub fair_wait: FairWaitRules,
    /// How an agent is chosen among the eligible.
    pub selection: Selection,
    /// Offers, misses and wrap-up.
    pub offer: OfferRules,
    /// What an agent handles at once, unless the agent's record says otherwise.
    pub capacity: Capacity,
    /// Per tier: its target (target order), or its head start and longest wait
    /// (head-start order).
    pub tiers: BTreeMap<String, TierRouting>,
    /// Ring plans, by tier (or `*`) and optional topic.
    #[serde(default)]
    pub rings: Vec<RingPlan>,
    /// Calendars, by name: when the centre is open (see [`crate::service`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calendars: BTreeMap<String, CalendarDoc>,
    /// Which calendar serves which contacts; none: every contact around the clock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<HoursRule>,
    /// What each channel does while closed.
    #[serde(default)]
    pub closed: ClosedRules,
    /// Service targets by tier, topic and channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    /// Complaints: their topics and deadline.
    #[serde(default)]
    pub complaints: ComplaintRules,
    /// Calling customers back.
    #[serde(default)]
    pub callbacks: CallbackRules,
    /// Asking customers how it went.
    #[serde(default)]
    pub satisfaction: SatisfactionRules,
    /// Channels whose waiting contacts agents may also take themselves, from their team's
    /// queue on the desktop; offers go on as before (none: push only).
    #[serde(default, skip_serializing_if = "PullRules::is_empty")]
    pub pull: PullRules,
}

/// Which channels' waiting contacts agents may take themselves (`[pull]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PullRules {
    /// The channels (`email`, `api`): their waiting contacts are listed to the agents of
    /// their team, any of whom may take one that is not on offer.
    #[serde(default)]
    pub channels: Vec<ChannelKind>,
}

impl PullRules {
    /// True when no channel may be pulled (the default).
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Whether agents may take waiting contacts of `channel` themselves.
    pub fn allows(&self, channel: ChannelKind) -> bool {
        self.channels.contains(&channel)
    }
}

/// How waiting interactions are ordered (see [`super::order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// By each tier's target and how close each contact is to it, bounded by the fair
    /// wait: the default.
    Targets,
    /// By seconds waited plus the tier's head start; past its tier's maximum wait, a
    /// contact goes ahead of all that have not passed theirs. The order before targets.
    HeadStart,
}

impl Order {
    /// The order of a document that does not name one: it was written for head starts.
    fn written_before_targets() -> Order {
        Order::HeadStart
    }

    /// Its name in the rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Targets => "targets",
            Order::HeadStart => "head_start",
        }
    }
}

/// The fair wait of the target order: the longest wait plain first-come-first-served
/// (FIFO) would have given lately, worked out from the arrivals, and the multiples of it
/// past which a contact goes ahead of others whatever its tier.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FairWaitRules {
    /// Hours over which FIFO's longest wait is remembered.
    pub window_hours: u64,
    /// Past this multiple of it, a contact goes ahead of every other, oldest first.
    pub limit: f64,
    /// Past this multiple of it, a contact goes ahead of every tier's target but the
    /// urgent tiers'.
    pub warning: f64,
}

impl Default for FairWaitRules {
    fn default() -> Self {
        FairWaitRules {
            window_hours: 168,
            limit: 1.25,
            warning: 1.05,
        }
    }
}

/// How an agent is chosen among the eligible.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// The strategy.
    pub strategy: Strategy,
}

/// Selection strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent idle the longest.
    LongestIdle,
    /// The agent with the least work in progress.
    LeastBusy,
    /// The agent offered work least recently.
    RoundRobin,
}

/// Offers, misses and wrap-up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OfferRules {
    /// Seconds to accept an offer.
    pub timeout_secs: u64,
    /// Misses in a row before the agent is set away.
    pub misses_before_away: u32,
    /// Seconds after completing before new work.
    pub wrap_up_secs: u64,
}

/// What an agent handles at once, per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Calls at once.
    pub phone: u32,
    /// Chats at once.
    pub chat: u32,
    /// Emails at once.
    pub email: u32,
    /// API-created contacts at once.
    pub api: u32,
    /// While on a call, take nothing else.
    pub calls_block_other_work: bool,
}

impl Capacity {
    /// The capacity for one channel.
    pub fn of(&self, channel: ChannelKind) -> u32 {
        match channel {
            ChannelKind::Phone => self.phone,
            ChannelKind::Chat => self.chat,
            ChannelKind::Email => self.email,
            ChannelKind::Api => self.api,
        }
    }
}

/// One tier's place in the order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierRouting {
    /// Target order: the wait its contacts should be answered within; until then they
    /// go ahead of contacts past their targets. None: no target, served in arrival order
    /// with those past theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_secs: Option<u64>,
    /// Target order: within its target, a contact of this tier goes ahead even of those
    /// nearing the fair wait.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    /// Head-start order: seconds added to the wait when ordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_start_secs: Option<u64>,
    /// Head-start order: past this wait, it goes ahead of all that have not passed theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_secs: Option<u64>,
}

/// The rings of agents for interactions of one tier (or `*`) and topic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RingPlan {
    /// A tier, or `*` for every tier.
    pub tier: String,
    /// Only for this topic, when given.
    pub topic: Option<String>,
    /// The rings, innermost first.
    pub steps: Vec<Ring>,
}

/// One ring: which agents, and how long before the next ring opens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    /// The customer's own account manager.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner: bool,
    /// Agents at this level or above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<u8>,
    /// Agents with every one of these skills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// Agents whose skills include the interaction's topic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub topic_skill: bool,
    /// Seconds before the next ring opens (every ring but the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// What is wrong with a rule set, and what is doubtful.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Problems that stop the rules from being used, each naming where.
    pub errors: Vec<String>,
    /// Doubtful but usable.
    pub warnings: Vec<String>,
}

/// The longest time any rule may name, in seconds (a year). The router counts in
/// milliseconds on `i64` from now: a longer offer, wrap-up, wait or ring would overflow
/// there, and no contact centre means one.
pub const MAX_SECS: u64 = 365 * 24 * 3600;

/// Everyone: the ring used when an interaction has no plan.
pub static EVERYONE: [Ring; 1] = [Ring {
    owner: false,
    min_level: None,
    skills: Vec::new(),
    topic_skill: false,
    timeout_secs: None,
}];

impl Rules {
    /// Reads rules from TOML text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Rules, Report> {
        toml_from_str(text).map_err(|e| Report {
            errors: vec![format!("{source}: {e}")],
            warnings: Vec::new(),
        })
    }

    /// Reads and validates the rules file, or the built-in defaults when `path` is `None`
    /// and `config/routing.toml` does not exist.
    pub fn load(path: Option<&Path>, tiers: &[String]) -> Result<(Rules, Report), Report> {
        let (text, source) = Rules::read_source(path)?;
        Rules::check(&text, &source, tiers)
    }

    /// Parses and validates a rules document; `Err` when it has errors.
    pub fn check(text: &str, source: &str, tiers: &[String]) -> Result<(Rules, Report), Report> {
        let rules = Rules::parse(text, source)?;
        let report = rules.validate(tiers);
        if report.errors.is_empty() {
            Ok((rules, report))
        } else {
            Err(report)
        }
    }

    /// The rules file's text and a name for it: `path`, else `config/routing.toml` when
    /// it exists, else the built-in copy.
    pub fn read_source(path: Option<&Path>) -> Result<(String, String), Report> {
        Self::read_source_or(path, Path::new(DEFAULT_PATH))
    }

    /// [`Rules::read_source`], with `default` in `config/routing.toml`'s place.
    fn read_source_or(path: Option<&Path>, default: &Path) -> Result<(String, String), Report> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| Report {
                errors: vec![format!("{}: cannot be read: {e}", p.display())],
                warnings: Vec::new(),
            })
        };
        Ok(match path {
            Some(p) => (read(p)?, p.display().to_string()),
            // There, but unreadable: an error, never an empty document.
            None if default.is_file() => (read(default)?, default.display().to_string()),
            None => (
                DEFAULT_TOML.to_string(),
                "built-in routing rules".to_string(),
            ),
        })
    }

    /// The wait a tier's service level is measured against: its target (target order)
    /// or its maximum wait (head-start order); `None` for a tier without one.
    pub fn service_target_secs(&self, tier: &str) -> Option<u64> {
        let t = self.tiers.get(tier)?;
        match self.order {
            Order::Targets => t.target_secs,
            Order::HeadStart => t.max_wait_secs,
        }
    }

    /// The rings for an interaction of `tier` and `topic`.
    pub fn rings_for(&self, tier: &str, topic: Option<&str>) -> &[Ring] {
        let find = |t: &str, topic: Option<&str>| {
            self.rings
                .iter()
                .find(|p| p.tier == t && p.topic.as_deref() == topic)
                .map(|p| p.steps.as_slice())
        };
        topic
            .and_then(|tp| find(tier, Some(tp)))
            .or_else(|| find(tier, None))
            .or_else(|| topic.and_then(|tp| find("*", Some(tp))))
            .or_else(|| find("*", None))
            .unwrap_or(&EVERYONE)
    }
}

/// TOML with the line and column of any error, through figment's TOML parser.
fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(text))
        .extract::<T>()
        .map_err(|e| {
            e.into_iter()
                .map(|e| {
                    if e.path.is_empty() {
                        e.kind.to_string()
                    } else {
                        format!("{}: {}", e.path.join("."), e.kind)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
}

mod validate;

#[cfg(test)]
mod tests;
