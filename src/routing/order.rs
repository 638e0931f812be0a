//! The order waiting interactions are served in: a key per interaction, by the rules'
//! `order`. Pure: the key depends on the interaction, the rules, the time, and — for the
//! target order — the channel's fair wait, which the [`super::index`] works out from the
//! arrivals it has seen.
//!
//! # The target order (the default)
//! Every waiting interaction has a *standing*; higher standings go first:
//!
//! 1. **past the fair limit** — it has waited longer than the fair limit: oldest first;
//! 2. **urgent, within target** — its tier is urgent and it can still be answered within
//!    its tier's target: the one closest to missing it first;
//! 3. **near the fair limit** — past the fair warning: oldest first;
//! 4. **within target** — it can still be answered within its tier's target: closest
//!    to missing it first;
//! 5. **waiting** — past its target, or of a tier without one: oldest first.
//!
//! The *fair wait* is the yardstick that keeps every tier's worst wait near what plain
//! first-come-first-served (FIFO) would give: the longest wait FIFO would have given on
//! the channel over the window (`fair_wait.window_hours`), times `fair_wait.limit` (or
//! `fair_wait.warning`), less the time it takes to answer the interactions already left
//! behind FIFO's order (those FIFO would have answered by now, at the rate contacts
//! arrive). A contact within its target costs the others little, because targets are
//! short; a contact past the limit goes first whatever its tier, so no tier's tail grows
//! much beyond FIFO's. This is a waiting-time-ratio rule in the sense of Gurvich & Whitt
//! and Mandelbaum & Stolyar's generalized cμ: each contact's urgency is its wait against
//! its own deadline (its target, then the fair wait), and the most urgent goes first.
//!
//! # The head-start order (the previous one)
//! A contact's score is its wait plus its tier's head start; past its tier's maximum wait
//! it goes ahead of all that have not passed theirs.

use std::cmp::Ordering;

use serde::Serialize;

use super::policy::WaitingInteraction;
use super::rules::{Order, Rules, TierRouting};

/// The fair wait on one channel when a decision is made, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FairWait {
    /// The longest wait FIFO would have given on the channel over the window (or now,
    /// if longer): the yardstick.
    pub fifo_longest_secs: f64,
    /// The wait FIFO would be giving now: how long ago arrived the interaction FIFO
    /// would answer next.
    pub fifo_now_secs: f64,
    /// Seconds it takes, at the rate contacts arrive, to answer the interactions left
    /// behind FIFO's order; taken off both bounds below.
    pub owed_secs: f64,
    /// Past this wait, an interaction goes ahead of every other.
    pub limit_secs: f64,
    /// Past this wait, an interaction goes ahead of every tier's target but urgent ones.
    pub warning_secs: f64,
}

impl FairWait {
    /// The bounds the rules set from the yardstick: `longest` FIFO's longest wait, `now`
    /// FIFO's wait now, `owed` the time to answer those left behind (all seconds).
    pub fn new(rules: &Rules, longest: f64, now: f64, owed: f64) -> FairWait {
        let longest = longest.max(now);
        FairWait {
            fifo_longest_secs: longest,
            fifo_now_secs: now,
            owed_secs: owed,
            // Never below FIFO's wait now: an interaction FIFO itself would not have
            // answered yet is not late.
            limit_secs: (rules.fair_wait.limit * longest - owed).max(now),
            warning_secs: rules.fair_wait.warning * longest - owed,
        }
    }
}

/// Where a waiting interaction stands in the order; a higher standing goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Past its target or without one (target order), or within its maximum wait
    /// (head-start order): by wait (or score).
    Waiting,
    /// Target order: within its tier's target, its tier not urgent.
    WithinTarget,
    /// Target order: past the fair warning.
    NearFairLimit,
    /// Target order: within its urgent tier's target.
    UrgentWithinTarget,
    /// Head-start order: past its tier's maximum wait.
    PastMaxWait,
    /// Target order: past the fair limit.
    PastFairLimit,
}

impl Standing {
    /// Is it past a bound that puts it ahead of every other (the fair limit, or the
    /// tier's maximum wait)?
    pub fn overdue(self) -> bool {
        matches!(self, Standing::PastFairLimit | Standing::PastMaxWait)
    }
}

/// An interaction's place in the order: the standing first, then the value (higher
/// first), then the earlier arrival, then the id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    /// Its standing.
    pub standing: Standing,
    /// Within the standing: seconds waited (head-start order: plus the head start);
    /// within a target, seconds waited less the target (the closer to it, the higher).
    pub value: f64,
    /// Seconds waited.
    pub waited_secs: f64,
}

impl Key {
    /// The order between two interactions' keys: `Greater` goes first. Ties go to the
    /// earlier arrival, then the smaller id, so the same state always gives the same
    /// order.
    pub fn cmp(&self, a: &WaitingInteraction, other: &Key, b: &WaitingInteraction) -> Ordering {
        self.standing
            .cmp(&other.standing)
            .then(self.value.total_cmp(&other.value))
            .then(b.enqueued_at_ms.cmp(&a.enqueued_at_ms))
            .then(b.id.cmp(&a.id))
    }
}

/// The key of `w` at `now_ms`. `fair` is its channel's fair wait (target order only;
/// without it nothing is past the fair bounds).
pub fn key(w: &WaitingInteraction, rules: &Rules, fair: Option<&FairWait>, now_ms: i64) -> Key {
    let tier = rules.tiers.get(&w.tier).copied().unwrap_or_default();
    key_in(w, rules.order, &tier, fair, now_ms)
}

/// The key of `w` at `now_ms` under `order`, its tier's settings already looked up.
pub fn key_in(
    w: &WaitingInteraction,
    order: Order,
    tier: &TierRouting,
    fair: Option<&FairWait>,
    now_ms: i64,
) -> Key {
    let waited = (now_ms - w.enqueued_at_ms).max(0) as f64 / 1000.0;
    let (standing, value) = match order {
        Order::HeadStart => {
            let score = waited + tier.head_start_secs.unwrap_or(0) as f64;
            match tier.max_wait_secs {
                Some(max) if waited > max as f64 => (Standing::PastMaxWait, score),
                _ => (Standing::Waiting, score),
            }
        }
        Order::Targets => {
            let past = |bound: Option<f64>| bound.is_some_and(|b| waited > b);
            let within = tier.target_secs.map(|t| t as f64).filter(|t| waited < *t);
            match within {
                _ if past(fair.map(|f| f.limit_secs)) => (Standing::PastFairLimit, waited),
                Some(t) if tier.urgent => (Standing::UrgentWithinTarget, waited - t),
                _ if past(fair.map(|f| f.warning_secs)) => (Standing::NearFairLimit, waited),
                Some(t) => (Standing::WithinTarget, waited - t),
                None => (Standing::Waiting, waited),
            }
        }
    };
    Key {
        standing,
        value,
        waited_secs: waited,
    }
}

/// Target order: interactions of `tier` that arrived after this moment (ms) are still
/// within its target. Within a tier, those within target go first, oldest first, and
/// those past it follow, oldest first: two runs in arrival order, split here.
pub fn target_split(rules: &Rules, tier: &str, now_ms: i64) -> Option<i64> {
    split_in(rules.order, rules.tiers.get(tier)?, now_ms)
}

/// [`target_split`] under `order`, the tier's settings already looked up.
pub fn split_in(order: Order, tier: &TierRouting, now_ms: i64) -> Option<i64> {
    if order != Order::Targets {
        return None;
    }
    let secs = tier.target_secs?;
    Some(now_ms.saturating_sub(secs.saturating_mul(1000) as i64))
}

#[cfg(test)]
mod tests;
