//! Deciding a customer's value tier: a pure function of the customer's value data, the
//! tier settings and the time, returning the tier with the reason for it.

use serde::Serialize;

use crate::config::{TierRule, TierSettings};

const DAY_MS: i64 = 86_400_000;

/// What is known of a customer's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueData {
    /// A tier set on the customer by an admin or the CRM.
    pub explicit_tier: Option<String>,
    /// The CRM's lifetime-value figure, in cents.
    pub lifetime_value_cents: Option<i64>,
    /// All purchases ever, in cents.
    pub total_cents: i64,
    /// Purchases within the window.
    pub window_count: u32,
    /// Spent within the window, in cents.
    pub window_cents: i64,
    /// When the last purchase was made (ms since the epoch).
    pub last_purchase_ms: Option<i64>,
}

/// Where a tier came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierSource {
    /// Set explicitly on the customer.
    Explicit,
    /// Computed from value data against a tier rule.
    Value,
    /// No rule placed the customer.
    Default,
}

impl TierSource {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TierSource::Explicit => "explicit",
            TierSource::Value => "value",
            TierSource::Default => "default",
        }
    }
}

/// A decided tier and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierDecision {
    /// The tier.
    pub tier: String,
    /// Where it came from.
    pub source: TierSource,
    /// A sentence an agent or admin can read.
    pub reason: String,
}

/// Decides the tier: explicit wins, then the first rule met (best tier first), then the default.
pub fn decide(settings: &TierSettings, data: &ValueData, now_ms: i64) -> TierDecision {
    let mut stale_explicit = None;
    if let Some(t) = &data.explicit_tier {
        if settings.order.contains(t) {
            return TierDecision {
                tier: t.clone(),
                source: TierSource::Explicit,
                reason: format!("tier '{t}' set explicitly on the customer"),
            };
        }
        stale_explicit = Some(format!(
            "explicit tier '{t}' is no longer configured, so it was ignored; "
        ));
    }
    let prefix = stale_explicit.unwrap_or_default();
    for tier in &settings.order {
        let Some(rule) = settings.rules.get(tier) else {
            continue;
        };
        if let Some(why) = meets(rule, settings.window_days, data, now_ms) {
            return TierDecision {
                tier: tier.clone(),
                source: TierSource::Value,
                reason: format!("{prefix}{why}"),
            };
        }
    }
    let why = if data.lifetime_value_cents.is_none()
        && data.total_cents == 0
        && data.last_purchase_ms.is_none()
    {
        "no value data"
    } else {
        "value data meets no tier rule"
    };
    TierDecision {
        tier: settings.default.clone(),
        source: TierSource::Default,
        reason: format!("{prefix}{why}: default tier '{}'", settings.default),
    }
}

/// Why `data` meets `rule`, or `None`.
fn meets(rule: &TierRule, window_days: u32, data: &ValueData, now_ms: i64) -> Option<String> {
    if let Some(min) = rule.min_lifetime_value {
        let (ltv, what) = match data.lifetime_value_cents {
            Some(v) => (v, "lifetime value from the CRM"),
            None => (data.total_cents, "lifetime purchases"),
        };
        if ltv >= to_cents(min) {
            return Some(format!("{what} {} ≥ {}", money(ltv), money(to_cents(min))));
        }
    }
    let has_rfm = rule.max_recency_days.is_some()
        || rule.min_frequency.is_some()
        || rule.min_monetary.is_some();
    if !has_rfm {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(days) = rule.max_recency_days {
        let last = data.last_purchase_ms?;
        let age_days = (now_ms - last).max(0) / DAY_MS;
        if age_days > i64::from(days) {
            return None;
        }
        parts.push(format!("last purchase {age_days} days ago ≤ {days}"));
    }
    if let Some(n) = rule.min_frequency {
        if data.window_count < n {
            return None;
        }
        parts.push(format!(
            "{} purchases in {window_days} days ≥ {n}",
            data.window_count
        ));
    }
    if let Some(min) = rule.min_monetary {
        if data.window_cents < to_cents(min) {
            return None;
        }
        parts.push(format!(
            "spent {} in {window_days} days ≥ {}",
            money(data.window_cents),
            money(to_cents(min))
        ));
    }
    Some(parts.join(", "))
}

/// A money amount in major units to cents, rounded.
pub fn to_cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Cents as a decimal amount with two places.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    const NOW: i64 = 1_800_000_000_000;

    fn data(count: u32, spent: f64, days_ago: Option<i64>) -> ValueData {
        ValueData {
            explicit_tier: None,
            lifetime_value_cents: None,
            total_cents: to_cents(spent),
            window_count: count,
            window_cents: to_cents(spent),
            last_purchase_ms: days_ago.map(|d| NOW - d * DAY_MS),
        }
    }

    #[test]
    fn tiers_follow_the_default_rules() {
        let s = Settings::defaults().tiers;
        let cases = [
            // (what, data, tier, source)
            (
                "no purchases",
                data(0, 0.0, None),
                "low",
                TierSource::Default,
            ),
            (
                "one small recent purchase",
                data(1, 40.0, Some(3)),
                "low",
                TierSource::Default,
            ),
            (
                "regular mid spender",
                data(3, 900.0, Some(20)),
                "medium",
                TierSource::Value,
            ),
            (
                "frequent big spender",
                data(8, 7_500.0, Some(5)),
                "high",
                TierSource::Value,
            ),
            (
                "big spender gone quiet",
                data(8, 7_500.0, Some(150)),
                "medium",
                TierSource::Value,
            ),
            (
                "lapsed for a year",
                data(8, 4_000.0, Some(200)),
                "low",
                TierSource::Default,
            ),
            (
                "lifetime purchases alone",
                data(1, 25_000.0, Some(400)),
                "high",
                TierSource::Value,
            ),
        ];
        for (what, d, tier, source) in cases {
            let got = decide(&s, &d, NOW);
            assert_eq!(
                (got.tier.as_str(), got.source),
                (tier, source),
                "{what}: {}",
                got.reason
            );
        }
    }

    #[test]
    fn an_explicit_tier_wins_over_value_data() {
        let s = Settings::defaults().tiers;
        let mut d = data(20, 90_000.0, Some(1));
        d.explicit_tier = Some("low".into());
        let got = decide(&s, &d, NOW);
        assert_eq!(
            (got.tier.as_str(), got.source),
            ("low", TierSource::Explicit)
        );
    }

    #[test]
    fn an_explicit_tier_no_longer_configured_is_ignored_and_said_so() {
        let s = Settings::defaults().tiers;
        let mut d = data(8, 7_500.0, Some(5));
        d.explicit_tier = Some("gold".into());
        let got = decide(&s, &d, NOW);
        assert_eq!(got.tier, "high");
        assert!(
            got.reason.contains("'gold' is no longer configured"),
            "{}",
            got.reason
        );
    }

    #[test]
    fn the_crm_lifetime_value_is_used_when_given() {
        let s = Settings::defaults().tiers;
        let mut d = data(0, 0.0, None);
        d.lifetime_value_cents = Some(to_cents(6_000.0));
        let got = decide(&s, &d, NOW);
        assert_eq!(got.tier, "medium");
        assert!(
            got.reason.contains("lifetime value from the CRM 6000.00"),
            "{}",
            got.reason
        );
    }

    #[test]
    fn reasons_say_why() {
        let s = Settings::defaults().tiers;
        let got = decide(&s, &data(8, 7_500.0, Some(5)), NOW);
        assert_eq!(
            got.reason,
            "last purchase 5 days ago ≤ 90, 8 purchases in 365 days ≥ 6, spent 7500.00 in 365 days ≥ 5000.00"
        );
        assert_eq!(
            decide(&s, &data(0, 0.0, None), NOW).reason,
            "no value data: default tier 'low'"
        );
    }

    #[test]
    fn money_formats_cents() {
        assert_eq!(money(123456), "1234.56");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(to_cents(19.999), 2000);
    }
}
