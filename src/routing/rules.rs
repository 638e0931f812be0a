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
    /// How an agent is chosen among the eligible.
    pub selection: Selection,
    /// Offers, misses and wrap-up.
    pub offer: OfferRules,
    /// What an agent handles at once, unless the agent's record says otherwise.
    pub capacity: Capacity,
    /// Per tier: head start and longest wait.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierRouting {
    /// Seconds added to the wait when ordering.
    pub head_start_secs: u64,
    /// Past this wait, it goes ahead of all that have not passed theirs.
    pub max_wait_secs: u64,
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

    /// Every error and warning, against the configured tiers (best first).
    pub fn validate(&self, tiers: &[String]) -> Report {
        let mut r = Report::default();
        if self.offer.timeout_secs == 0 {
            r.errors
                .push("offer.timeout_secs: must be at least 1".into());
        }
        if self.offer.misses_before_away == 0 {
            r.errors
                .push("offer.misses_before_away: must be at least 1".into());
        }
        for (at, secs) in [
            ("offer.timeout_secs", self.offer.timeout_secs),
            ("offer.wrap_up_secs", self.offer.wrap_up_secs),
        ] {
            too_long(&mut r, at, secs);
        }
        let c = &self.capacity;
        // Each checked on its own: their sum can overflow.
        if [c.phone, c.chat, c.email, c.api].iter().all(|&n| n == 0) {
            r.errors
                .push("capacity: every channel is 0, so no agent could take any work".into());
        }
        for tier in tiers {
            if !self.tiers.contains_key(tier) {
                r.errors.push(format!("tiers.{tier}: missing (every configured tier needs a head start and a maximum wait)"));
            }
        }
        for (name, t) in &self.tiers {
            if !tiers.contains(name) {
                r.errors.push(format!(
                    "tiers.{name}: '{name}' is not a configured tier {tiers:?}"
                ));
            }
            if t.max_wait_secs == 0 {
                r.errors
                    .push(format!("tiers.{name}.max_wait_secs: must be at least 1"));
            }
            too_long(
                &mut r,
                &format!("tiers.{name}.max_wait_secs"),
                t.max_wait_secs,
            );
        }
        // A better tier should not start behind a worse one.
        for pair in tiers.windows(2) {
            if let (Some(better), Some(worse)) =
                (self.tiers.get(&pair[0]), self.tiers.get(&pair[1]))
            {
                if better.head_start_secs < worse.head_start_secs {
                    r.warnings.push(format!(
                        "tiers.{}.head_start_secs: {} is less than the lower tier {}'s {}",
                        pair[0], better.head_start_secs, pair[1], worse.head_start_secs
                    ));
                }
            }
        }
        let mut seen: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
        for (i, plan) in self.rings.iter().enumerate() {
            let at = format!("rings[{i}]");
            if plan.tier != "*" && !tiers.contains(&plan.tier) {
                r.errors.push(format!(
                    "{at}.tier: '{}' is not a configured tier {tiers:?} (or \"*\")",
                    plan.tier
                ));
            }
            if let Some(first) = seen.insert((plan.tier.as_str(), plan.topic.as_deref()), i) {
                r.errors.push(format!(
                    "{at}: the same tier and topic as rings[{first}], which would always win"
                ));
            }
            if plan.steps.is_empty() {
                r.errors.push(format!("{at}.steps: name at least one ring"));
            }
            let last = plan.steps.len().saturating_sub(1);
            for (j, ring) in plan.steps.iter().enumerate() {
                let at = format!("{at}.steps[{j}]");
                if let Some(secs) = ring.timeout_secs {
                    too_long(&mut r, &format!("{at}.timeout_secs"), secs);
                }
                match (j < last, ring.timeout_secs) {
                    (true, None) => r.errors.push(format!(
                        "{at}.timeout_secs: needed, or the rings after it can never open"
                    )),
                    (true, Some(0)) => r
                        .warnings
                        .push(format!("{at}.timeout_secs: 0 opens the next ring at once")),
                    (false, Some(_)) => r.warnings.push(format!(
                        "{at}.timeout_secs: the last ring has no next ring to open; ignored"
                    )),
                    _ => {}
                }
            }
            let widest_is_everyone = plan.steps.last().is_some_and(|g| {
                !g.owner && g.min_level.is_none() && g.skills.is_empty() && !g.topic_skill
            });
            if !widest_is_everyone {
                r.warnings.push(format!(
                    "{at}: its widest ring is not every agent, so its interactions can wait without limit when those agents are busy or away"
                ));
            }
        }
        crate::service::rules::validate(self, tiers, &mut r);
        for tier in tiers {
            let served = self
                .rings
                .iter()
                .any(|p| (p.tier == *tier || p.tier == "*") && p.topic.is_none());
            if !self.rings.is_empty() && !served {
                r.warnings.push(format!("tier '{tier}' has no ring plan without a topic: such interactions go to every agent at once"));
            }
        }
        r
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

/// An error when `secs` is longer than any rule may name.
fn too_long(r: &mut Report, at: &str, secs: u64) {
    if secs > MAX_SECS {
        r.errors
            .push(format!("{at}: at most {MAX_SECS} (a year), not {secs}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<String> {
        vec!["high".into(), "medium".into(), "low".into()]
    }

    #[test]
    fn the_shipped_rules_are_valid_and_clean() {
        let rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
        let report = rules.validate(&tiers());
        assert_eq!(report, Report::default());
    }

    #[test]
    fn ring_plans_are_found_most_specific_first() {
        let rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
        assert!(rules.rings_for("high", None)[1].min_level == Some(3));
        assert!(
            rules.rings_for("high", Some("complaint"))[1].min_level == Some(3),
            "the tier's own plan beats '*' with a topic"
        );
        assert_eq!(
            rules.rings_for("low", Some("complaint"))[1].skills,
            ["complaints"]
        );
        assert!(rules.rings_for("low", Some("billing"))[1].topic_skill);
        let none = Rules {
            rings: Vec::new(),
            ..rules
        };
        assert_eq!(none.rings_for("low", None), &EVERYONE);
    }

    #[test]
    fn every_error_is_listed_with_where_it_is() {
        let text = r#"
            [selection]
            strategy = "longest_idle"
            [offer]
            timeout_secs = 0
            misses_before_away = 3
            wrap_up_secs = 30
            [capacity]
            phone = 1
            chat = 3
            email = 5
            api = 5
            calls_block_other_work = true
            [tiers.high]
            head_start_secs = 0
            max_wait_secs = 20
            [tiers.gold]
            head_start_secs = 10
            max_wait_secs = 20
            [[rings]]
            tier = "vip"
            steps = [{ owner = true }, {}]
        "#;
        let report = Rules::parse(text, "t").unwrap().validate(&tiers());
        let joined = report.errors.join("\n");
        for expected in [
            "offer.timeout_secs",
            "tiers.medium: missing",
            "tiers.low: missing",
            "tiers.gold: 'gold' is not a configured tier",
            "rings[0].tier: 'vip'",
            "rings[0].steps[0].timeout_secs: needed",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in:\n{joined}"
            );
        }
        assert_eq!(report.errors.len(), 6, "{joined}");
    }

    #[test]
    fn doubtful_rules_are_warned_about() {
        let mut rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
        rules.rings[0].steps.pop();
        rules.tiers.get_mut("high").unwrap().head_start_secs = 0;
        let report = rules.validate(&tiers());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let joined = report.warnings.join("\n");
        assert!(
            joined.contains("its widest ring is not every agent"),
            "{joined}"
        );
        assert!(
            joined.contains("the last ring has no next ring"),
            "{joined}"
        );
        assert!(joined.contains("tiers.high.head_start_secs"), "{joined}");
    }

    #[test]
    fn a_rules_file_that_cannot_be_read_is_an_error_not_an_empty_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routing.toml");
        // There, and not text: it cannot be read as a rules document.
        std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
        for given in [Some(file.as_path()), None] {
            let err = Rules::read_source_or(given, &file).unwrap_err();
            assert!(err.errors[0].contains("cannot be read"), "{err:?}");
        }
    }

    #[test]
    fn numbers_too_large_for_the_router_are_errors_not_overflows() {
        // Capacities were summed as u32 to see that one is not 0: these overflowed (a
        // panic with overflow checks, a wrong "every channel is 0" without).
        let text = DEFAULT_TOML.replace("phone = 1", "phone = 4294967295");
        let (rules, report) = Rules::check(&text, "t", &tiers()).unwrap();
        assert_eq!(rules.capacity.phone, u32::MAX);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let zero = "phone = 0\nchat = 0\nemail = 0\napi = 0";
        let text = DEFAULT_TOML.replace("phone = 1\nchat = 3\nemail = 5\napi = 5", zero);
        let joined = Rules::check(&text, "t", &tiers())
            .unwrap_err()
            .errors
            .join("\n");
        assert!(joined.contains("capacity: every channel is 0"), "{joined}");
        // Seconds the router would overflow in milliseconds from now (a ring's timeout
        // here: the rings after it opened at once, or never): refused by name.
        let text = DEFAULT_TOML
            .replace("timeout_secs = 20", "timeout_secs = 9223372036854775807")
            .replace(
                "min_level = 3, timeout_secs = 10",
                "min_level = 3, timeout_secs = 9223372036854775807",
            )
            .replace("max_wait_secs = 600", "max_wait_secs = 31536001");
        let report = Rules::check(&text, "t", &tiers()).unwrap_err();
        let joined = report.errors.join("\n");
        for at in [
            "offer.timeout_secs: at most 31536000",
            "tiers.low.max_wait_secs: at most 31536000",
            "rings[0].steps[1].timeout_secs: at most 31536000",
        ] {
            assert!(joined.contains(at), "missing {at:?} in:\n{joined}");
        }
        assert_eq!(report.errors.len(), 3, "{joined}");
        // A year is allowed, and the router's arithmetic holds with it.
        let text = DEFAULT_TOML.replace(
            "min_level = 3, timeout_secs = 10",
            "min_level = 3, timeout_secs = 31536000",
        );
        let (rules, _) = Rules::check(&text, "t", &tiers()).unwrap();
        let steps = &rules.rings[0].steps;
        assert_eq!(crate::routing::policy::rings_open(steps, i64::MAX), 3);
    }

    #[test]
    fn typos_and_wrong_types_are_named() {
        let e = Rules::parse("[selection]\nstrategy = \"fastest\"\n", "r.toml").unwrap_err();
        assert!(
            e.errors[0].contains("r.toml") && e.errors[0].contains("selection.strategy"),
            "{:?}",
            e.errors
        );
    }
}
