//! Why a decision went as it did: every agent accounted for, the first few in words.

use std::collections::BTreeMap;

use super::{
    cannot_take, in_ring, AgentView, Considered, Obstacle, Presence, Rules, Strategy,
    WaitingInteraction, MAX_LISTED,
};
use crate::routing::rules::Ring;

/// The agents considered for `w` and why each was or was not chosen, and the rest
/// counted by reason.
pub(super) fn explain(
    w: &WaitingInteraction,
    open: &[&Ring],
    agents: &[AgentView],
    chosen: &AgentView,
    ring: usize,
    rules: &Rules,
    now_ms: i64,
) -> (Vec<Considered>, BTreeMap<String, usize>) {
    let mut considered = vec![Considered {
        agent_id: chosen.id.clone(),
        chosen: true,
        reason: format!(
            "ring {ring}, {}",
            strategy_reason(chosen, rules.selection.strategy, now_ms)
        ),
    }];
    // Every agent is accounted for, but only the first few are described in words: a
    // centre of a thousand agents must not cost a thousand sentences per decision.
    let mut others: BTreeMap<&'static str, usize> = BTreeMap::new();
    for a in agents.iter().filter(|a| a.id != chosen.id) {
        let in_open = open.iter().position(|r| in_ring(r, a, w));
        let obstacle = in_open.and_then(|_| cannot_take(a, w, rules));
        let category = match in_open {
            None => "not in an open ring",
            Some(_) if a.presence == Presence::Away => "away",
            Some(_) if a.presence == Presence::Offline => "offline",
            Some(_) if a.has_pending_offer => "already has an offer",
            Some(_) if a.wrap_up_until_ms.is_some_and(|t| t > now_ms) => "in wrap-up",
            Some(_) if obstacle.is_some() => obstacle.map_or("", Obstacle::category),
            Some(r) if r > ring => "in a later ring",
            Some(_) => "another agent comes first",
        };
        if considered.len() < MAX_LISTED && category != "not in an open ring" {
            // Only the listed few are described in words.
            let reason = match (category, obstacle, in_open) {
                ("in a later ring", _, Some(r)) => format!("in ring {r}, after ring {ring}"),
                ("another agent comes first", _, Some(r)) => {
                    format!(
                        "ring {r}, {} comes first",
                        rules_word(rules.selection.strategy)
                    )
                }
                (_, Some(o), _) if category == o.category() => o.describe(w.channel),
                _ => category.to_string(),
            };
            considered.push(Considered {
                agent_id: a.id.clone(),
                chosen: false,
                reason,
            });
        } else {
            *others.entry(category).or_default() += 1;
        }
    }
    (
        considered,
        others
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn strategy_reason(a: &AgentView, strategy: Strategy, now_ms: i64) -> String {
    match strategy {
        Strategy::LongestIdle => format!(
            "longest idle ({} s)",
            (now_ms - a.idle_since_ms).max(0) / 1000
        ),
        Strategy::LeastBusy => format!("least busy ({} in progress)", a.load.total()),
        Strategy::RoundRobin => "next in turn".into(),
    }
}

fn rules_word(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::LongestIdle => "a longer-idle agent",
        Strategy::LeastBusy => "a less busy agent",
        Strategy::RoundRobin => "an agent earlier in turn",
    }
}
