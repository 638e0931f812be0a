//! Validation of a rule set: every error and every doubtful setting, each named by where
//! it is (`tiers.high.target_secs`, `rings[0].steps[1].timeout_secs`).

use std::collections::BTreeMap;

use switchboard_contract::ChannelKind;

use super::{Order, Report, Rules, MAX_SECS};

impl Rules {
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
        for (i, channel) in self.pull.channels.iter().enumerate() {
            if matches!(channel, ChannelKind::Phone | ChannelKind::Chat) {
                r.errors.push(format!(
                    "pull.channels[{i}]: '{channel}' is answered live and only offered; \
                     agents may take email and api contacts themselves"
                ));
            }
        }
        let c = &self.capacity;
        // Each checked on its own: their sum can overflow.
        if [c.phone, c.chat, c.email, c.api].iter().all(|&n| n == 0) {
            r.errors
                .push("capacity: every channel is 0, so no agent could take any work".into());
        }
        for tier in tiers {
            if !self.tiers.contains_key(tier) {
                r.errors.push(format!(
                    "tiers.{tier}: missing (every configured tier needs {})",
                    match self.order {
                        Order::Targets => "its own table, with target_secs unless it has no target",
                        Order::HeadStart => "a head start and a maximum wait",
                    }
                ));
            }
        }
        for name in self.tiers.keys() {
            if !tiers.contains(name) {
                r.errors.push(format!(
                    "tiers.{name}: '{name}' is not a configured tier {tiers:?}"
                ));
            }
        }
        match self.order {
            Order::Targets => self.validate_targets(tiers, &mut r),
            Order::HeadStart => self.validate_head_starts(tiers, &mut r),
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

    /// The target order's settings: targets, urgency and the fair wait.
    fn validate_targets(&self, tiers: &[String], r: &mut Report) {
        let f = &self.fair_wait;
        if f.window_hours == 0 || f.window_hours > MAX_SECS / 3600 {
            r.errors.push(format!(
                "fair_wait.window_hours: between 1 and {} (a year), not {}",
                MAX_SECS / 3600,
                f.window_hours
            ));
        }
        for (at, v) in [
            ("fair_wait.limit", f.limit),
            ("fair_wait.warning", f.warning),
        ] {
            if !(v.is_finite() && (0.5..=10.0).contains(&v)) {
                r.errors
                    .push(format!("{at}: a multiple between 0.5 and 10, not {v}"));
            }
        }
        if f.warning > f.limit {
            r.errors.push(format!(
                "fair_wait.warning: {} is past the limit {}; the warning comes first",
                f.warning, f.limit
            ));
        }
        for (name, t) in &self.tiers {
            let at = format!("tiers.{name}");
            match t.target_secs {
                Some(0) => r
                    .errors
                    .push(format!("{at}.target_secs: must be at least 1")),
                Some(secs) => too_long(r, &format!("{at}.target_secs"), secs),
                None if t.urgent => r.errors.push(format!(
                    "{at}.urgent: needs target_secs (urgent means urgent within its target)"
                )),
                None => {}
            }
            for (field, set) in [
                ("head_start_secs", t.head_start_secs.is_some()),
                ("max_wait_secs", t.max_wait_secs.is_some()),
            ] {
                if set {
                    r.warnings.push(format!(
                        "{at}.{field}: used only with order = \"head_start\"; ignored"
                    ));
                }
            }
        }
        // A better tier should not be served behind a worse one.
        for pair in tiers.windows(2) {
            let (Some(better), Some(worse)) = (self.tiers.get(&pair[0]), self.tiers.get(&pair[1]))
            else {
                continue;
            };
            if worse.urgent && !better.urgent {
                r.warnings.push(format!(
                    "tiers.{}.urgent: the lower tier is urgent and the better tier {} is not",
                    pair[1], pair[0]
                ));
            }
            if let (Some(b), Some(w)) = (better.target_secs, worse.target_secs) {
                if w < b {
                    r.warnings.push(format!(
                        "tiers.{}.target_secs: {w} is shorter than the better tier {}'s {b}",
                        pair[1], pair[0]
                    ));
                }
            } else if better.target_secs.is_none() && worse.target_secs.is_some() {
                r.warnings.push(format!(
                    "tiers.{}.target_secs: the lower tier has a target and the better tier {} has none",
                    pair[1], pair[0]
                ));
            }
        }
        if !self.tiers.values().any(|t| t.target_secs.is_some()) {
            r.warnings.push(
                "tiers: no tier has a target, so every contact is served in arrival order".into(),
            );
        }
    }

    /// The head-start order's settings: every tier's head start and maximum wait.
    fn validate_head_starts(&self, tiers: &[String], r: &mut Report) {
        for (name, t) in &self.tiers {
            let at = format!("tiers.{name}");
            if t.head_start_secs.is_none() {
                r.errors.push(format!(
                    "{at}.head_start_secs: needed with order = \"head_start\""
                ));
            }
            match t.max_wait_secs {
                None => r.errors.push(format!(
                    "{at}.max_wait_secs: needed with order = \"head_start\""
                )),
                Some(0) => r
                    .errors
                    .push(format!("{at}.max_wait_secs: must be at least 1")),
                Some(secs) => too_long(r, &format!("{at}.max_wait_secs"), secs),
            }
            if let Some(secs) = t.head_start_secs {
                too_long(r, &format!("{at}.head_start_secs"), secs);
            }
            for (field, set) in [
                ("target_secs", t.target_secs.is_some()),
                ("urgent", t.urgent),
            ] {
                if set {
                    r.warnings.push(format!(
                        "{at}.{field}: used only with order = \"targets\"; ignored"
                    ));
                }
            }
        }
        // A better tier should not start behind a worse one.
        for pair in tiers.windows(2) {
            let head_start = |t: &str| self.tiers.get(t).and_then(|r| r.head_start_secs);
            if let (Some(better), Some(worse)) = (head_start(&pair[0]), head_start(&pair[1])) {
                if better < worse {
                    r.warnings.push(format!(
                        "tiers.{}.head_start_secs: {} is less than the lower tier {}'s {}",
                        pair[0], better, pair[1], worse
                    ));
                }
            }
        }
    }
}

/// An error when `secs` is longer than any rule may name.
fn too_long(r: &mut Report, at: &str, secs: u64) {
    if secs > MAX_SECS {
        r.errors
            .push(format!("{at}: at most {MAX_SECS} (a year), not {secs}"));
    }
}
