//! The interaction queue in memory: the waiting interactions, as the router will read
//! them. The store is the authority (every entry here was committed first); this is
//! rebuilt from the interactions in state `queued` whenever the server starts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use switchboard_contract::ChannelKind;

use crate::telemetry;

/// One waiting interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The interaction's id.
    pub interaction_id: String,
    /// The customer's tier at entry.
    pub tier: String,
    /// Its channel.
    pub channel: ChannelKind,
    /// Its topic.
    pub topic: Option<String>,
    /// When it was accepted (ms): its wait counts from here.
    pub enqueued_at: i64,
}

/// The waiting interactions, by id.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: Mutex<BTreeMap<String, Waiting>>,
    /// The configured tiers: their depth is published even when zero.
    tiers: Vec<String>,
}

impl Queue {
    /// A queue of the configured `tiers` holding `entries` (from the store at start-up).
    pub fn new(tiers: Vec<String>, entries: impl IntoIterator<Item = Waiting>) -> Self {
        let q = Queue { waiting: Mutex::default(), tiers };
        q.push_all(entries);
        q
    }

    /// Adds committed interactions.
    pub fn push_all(&self, entries: impl IntoIterator<Item = Waiting>) {
        let mut waiting = self.waiting.lock().expect("queue lock");
        for w in entries {
            waiting.insert(w.interaction_id.clone(), w);
        }
        self.publish(&waiting);
    }

    /// How many interactions wait.
    pub fn len(&self) -> usize {
        self.waiting.lock().expect("queue lock").len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every waiting interaction, oldest first.
    pub fn snapshot(&self) -> Vec<Waiting> {
        let mut all: Vec<_> = self.waiting.lock().expect("queue lock").values().cloned().collect();
        all.sort_by(|a, b| (a.enqueued_at, &a.interaction_id).cmp(&(b.enqueued_at, &b.interaction_id)));
        all
    }

    fn publish(&self, waiting: &BTreeMap<String, Waiting>) {
        let mut by_tier: BTreeMap<&str, usize> = self.tiers.iter().map(|t| (t.as_str(), 0)).collect();
        for w in waiting.values() {
            *by_tier.entry(w.tier.as_str()).or_default() += 1;
        }
        telemetry::queue_depth(&by_tier);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, tier: &str, at: i64) -> Waiting {
        Waiting { interaction_id: id.into(), tier: tier.into(), channel: ChannelKind::Api, topic: None, enqueued_at: at }
    }

    #[test]
    fn the_same_interaction_queued_twice_waits_once() {
        let q = Queue::new(vec!["high".into(), "low".into()], [w("a", "high", 2), w("b", "low", 1)]);
        q.push_all([w("a", "high", 2)]);
        assert_eq!(q.len(), 2);
        let ids: Vec<_> = q.snapshot().into_iter().map(|w| w.interaction_id).collect();
        assert_eq!(ids, ["b", "a"]);
    }
}
