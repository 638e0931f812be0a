//! The interaction queue in memory: the waiting interactions, as the router will read
//! them. The store is the authority (every entry here was committed first); this is
//! rebuilt from the interactions in state `queued` whenever the server starts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;

use switchboard_contract::ChannelKind;

use crate::telemetry;

/// One waiting interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The interaction's id.
    pub interaction_id: String,
    /// The customer it belongs to.
    pub customer_id: String,
    /// The customer's tier at entry.
    pub tier: String,
    /// Its channel.
    pub channel: ChannelKind,
    /// Its topic.
    pub topic: Option<String>,
    /// The key its channel submitted it under (a call's id), for the channel's commands.
    pub contact_key: String,
    /// The agent to offer it to first (the customer's own account manager otherwise).
    pub preferred_agent: Option<String>,
    /// When it was accepted (ms): its wait counts from here.
    pub enqueued_at: i64,
    /// Not handed to the router before this moment (ms): a contact taken while closed
    /// waits for the opening, a callback for its time.
    pub not_before: Option<i64>,
}

/// The waiting interactions, by id, with their count per tier kept as they change.
#[derive(Debug, Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    /// Wakes the router when interactions arrive.
    arrived: Notify,
}

/// Whether a queue holds anything: only while this node's router runs (a single node
/// always; a cluster's node while it leads). A follower's intake commits contacts the
/// leader takes up; it keeps none of them here.

#[derive(Debug, Default)]
struct Inner {
    /// False on a node that does not route: pushes are not kept.
    inactive: bool,
    waiting: HashMap<String, Waiting>,
    /// Waiting per tier; every configured tier is present, so a depth of zero is published.
    depth: BTreeMap<String, usize>,
    /// Arrived since the router last looked.
    fresh: Vec<Waiting>,
    /// Waiting, but not handed to the router before their time: (time, id).
    held: BTreeSet<(i64, String)>,
    /// When `fresh` last went from empty to holding something (wall clock, ms): how long
    /// the router has left contacts untaken, the lag admission control watches.
    fresh_since: Option<i64>,
}

impl Queue {
    /// A queue of the configured `tiers` holding `entries` (from the store at start-up).
    pub fn new(tiers: Vec<String>, entries: impl IntoIterator<Item = Waiting>) -> Self {
        let inner = Inner {
            inactive: false,
            waiting: HashMap::new(),
            depth: tiers.into_iter().map(|t| (t, 0)).collect(),
            fresh: Vec::new(),
            held: BTreeSet::new(),
            fresh_since: None,
        };
        let q = Queue {
            inner: Mutex::new(inner),
            arrived: Notify::new(),
        };
        q.push_all(entries);
        telemetry::queue_depth(&q.inner.lock().expect("queue lock").depth);
        q
    }

    /// Adds committed interactions; one already waiting is not added twice. One whose
    /// time has not come is held (it waits, and counts) until [`Queue::release_due`].
    pub fn push_all(&self, entries: impl IntoIterator<Item = Waiting>) {
        let now = crate::store::service_now();
        let mut inner = self.inner.lock().expect("queue lock");
        if inner.inactive {
            return;
        }
        // Held ones whose time has come go first: they wait from that time, before
        // anything arriving now.
        let mut changed = release(&mut inner, now) > 0;
        for w in entries {
            if inner.waiting.contains_key(&w.interaction_id) {
                continue;
            }
            *inner.depth.entry(w.tier.clone()).or_default() += 1;
            match w.not_before {
                Some(at) if at > now => {
                    inner.held.insert((at, w.interaction_id.clone()));
                }
                _ => {
                    if inner.fresh.is_empty() {
                        inner.fresh_since = Some(crate::store::now_ms());
                    }
                    inner.fresh.push(w.clone());
                    changed = true;
                }
            }
            inner.waiting.insert(w.interaction_id.clone(), w);
        }
        if changed {
            telemetry::queue_depth(&inner.depth);
            // One stored permit is enough: the router takes every fresh entry at once.
            self.arrived.notify_one();
        }
    }

    /// Replaces what waits with `entries` (from the store, when this node takes over the
    /// routing): the router is handed each of them afresh.
    pub fn reset(&self, entries: impl IntoIterator<Item = Waiting>) {
        self.clear(false);
        self.push_all(entries);
        telemetry::queue_depth(&self.inner.lock().expect("queue lock").depth);
    }

    /// Whether the queue keeps what is pushed (this node routes, or is taking over).
    pub fn is_active(&self) -> bool {
        !self.inner.lock().expect("queue lock").inactive
    }

    /// Empties the queue and keeps nothing pushed from now on (this node stopped routing)
    /// until the next [`Queue::reset`].
    pub fn deactivate(&self) {
        self.clear(true);
    }

    fn clear(&self, inactive: bool) {
        let mut inner = self.inner.lock().expect("queue lock");
        inner.inactive = inactive;
        inner.waiting.clear();
        inner.fresh.clear();
        inner.fresh_since = None;
        inner.held.clear();
        for n in inner.depth.values_mut() {
            *n = 0;
        }
        telemetry::queue_depth(&inner.depth);
    }

    /// Hands the router the held interactions whose time has come by `now` (the service
    /// clock's); answers how many.
    pub fn release_due(&self, now: i64) -> usize {
        let mut inner = self.inner.lock().expect("queue lock");
        let released = release(&mut inner, now);
        if released > 0 {
            self.arrived.notify_one();
        }
        released
    }

    /// When the next held interaction's time comes.
    pub fn next_release(&self) -> Option<i64> {
        self.inner
            .lock()
            .expect("queue lock")
            .held
            .first()
            .map(|(at, _)| *at)
    }

    /// Counts an interaction the router put back to waiting itself (a transfer): kept
    /// for the depth and a resync, not handed to the router again.
    pub fn track(&self, w: Waiting) {
        let mut inner = self.inner.lock().expect("queue lock");
        if inner.inactive || inner.waiting.contains_key(&w.interaction_id) {
            return;
        }
        *inner.depth.entry(w.tier.clone()).or_default() += 1;
        telemetry::queue_depth(&inner.depth);
        inner.waiting.insert(w.interaction_id.clone(), w);
    }

    /// Whether this interaction waits for its time (not yet handed to the router).
    pub fn is_held(&self, interaction_id: &str) -> bool {
        let inner = self.inner.lock().expect("queue lock");
        inner.waiting.get(interaction_id).is_some_and(|w| {
            w.not_before
                .is_some_and(|at| inner.held.contains(&(at, w.interaction_id.clone())))
        })
    }

    /// How many wait for their time (closed hours, a booked callback).
    pub fn held(&self) -> usize {
        self.inner.lock().expect("queue lock").held.len()
    }

    /// Takes the interactions that arrived since the last call.
    pub fn take_fresh(&self) -> Vec<Waiting> {
        let mut inner = self.inner.lock().expect("queue lock");
        inner.fresh_since = None;
        std::mem::take(&mut inner.fresh)
    }

    /// How long (ms, by the wall clock `now`) the oldest contact handed to the router has
    /// waited for it to take it up; 0 when it has taken everything.
    pub fn untaken_for_ms(&self, now: i64) -> i64 {
        let inner = self.inner.lock().expect("queue lock");
        inner.fresh_since.map_or(0, |since| (now - since).max(0))
    }

    /// Completes when interactions have arrived since the last [`Queue::take_fresh`].
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Takes an interaction out (assigned, or ended while waiting); false when it was not in.
    pub fn remove(&self, interaction_id: &str) -> bool {
        let mut inner = self.inner.lock().expect("queue lock");
        let Some(w) = inner.waiting.remove(interaction_id) else {
            return false;
        };
        if let Some(at) = w.not_before {
            inner.held.remove(&(at, w.interaction_id.clone()));
        }
        // Released, but not yet taken by the router: it never will be.
        inner.fresh.retain(|f| f.interaction_id != interaction_id);
        if let Some(n) = inner.depth.get_mut(&w.tier) {
            *n = n.saturating_sub(1);
        }
        telemetry::queue_depth(&inner.depth);
        true
    }

    /// Moves a waiting interaction to another tier (its customer's changed meanwhile).
    pub fn retier(&self, interaction_id: &str, tier: &str) {
        let mut inner = self.inner.lock().expect("queue lock");
        let Some(w) = inner.waiting.get_mut(interaction_id) else {
            return;
        };
        if w.tier == tier {
            return;
        }
        let was = std::mem::replace(&mut w.tier, tier.to_string());
        if let Some(n) = inner.depth.get_mut(&was) {
            *n = n.saturating_sub(1);
        }
        *inner.depth.entry(tier.to_string()).or_default() += 1;
        telemetry::queue_depth(&inner.depth);
    }

    /// How many interactions wait.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("queue lock").waiting.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many wait in each tier.
    pub fn depth(&self) -> BTreeMap<String, usize> {
        self.inner.lock().expect("queue lock").depth.clone()
    }
}

/// Hands the router the held interactions whose time has come by `now` (service time);
/// answers how many.
fn release(inner: &mut Inner, now: i64) -> usize {
    let mut released = 0;
    while let Some((at, _)) = inner.held.first() {
        if *at > now {
            break;
        }
        let (at, id) = inner.held.pop_first().expect("a first entry");
        if let Some(w) = inner.waiting.get(&id).cloned() {
            // Its wait counts from its time (the opening, the booked moment), on the
            // router's clock: ahead of what arrived after it.
            let w = Waiting {
                enqueued_at: crate::store::real_time(at).min(crate::store::now_ms()),
                ..w
            };
            inner.waiting.insert(id, w.clone());
            if inner.fresh.is_empty() {
                inner.fresh_since = Some(crate::store::now_ms());
            }
            inner.fresh.push(w);
            released += 1;
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, tier: &str, at: i64) -> Waiting {
        Waiting {
            interaction_id: id.into(),
            customer_id: "c".into(),
            tier: tier.into(),
            channel: ChannelKind::Api,
            topic: None,
            contact_key: format!("key-{id}"),
            preferred_agent: None,
            enqueued_at: at,
            not_before: None,
        }
    }

    #[test]
    fn a_retiered_interaction_counts_in_its_new_tier() {
        let q = Queue::new(vec!["high".into(), "low".into()], [w("a", "low", 1)]);
        q.retier("a", "high");
        let depth = q.depth();
        assert_eq!((depth["high"], depth["low"]), (1, 0));
        q.retier("gone", "high");
        assert!(q.remove("a"));
        let depth = q.depth();
        assert_eq!((depth["high"], depth["low"]), (0, 0));
    }

    #[test]
    fn a_held_interaction_waits_and_counts_but_reaches_the_router_at_its_time() {
        let q = Queue::new(vec!["low".into()], []);
        let now = crate::store::service_now();
        let later = Waiting {
            not_before: Some(now + 60_000),
            ..w("night", "low", now)
        };
        q.push_all([later, w("day", "low", now)]);
        assert_eq!(q.depth()["low"], 2, "both wait");
        let ids = |v: Vec<Waiting>| v.into_iter().map(|w| w.interaction_id).collect::<Vec<_>>();
        assert_eq!(ids(q.take_fresh()), ["day"]);
        assert_eq!(q.release_due(now + 59_999), 0);
        assert_eq!(q.next_release(), Some(now + 60_000));
        assert_eq!(q.release_due(now + 60_000), 1);
        assert_eq!(ids(q.take_fresh()), ["night"]);
        assert_eq!(q.held(), 0);
        // One removed while held (its caller hung up) is never handed over.
        q.push_all([Waiting {
            not_before: Some(now + 1_000),
            ..w("gone", "low", now)
        }]);
        assert!(q.remove("gone"));
        assert_eq!(q.release_due(now + 2_000), 0);
    }

    #[test]
    fn the_same_interaction_queued_twice_waits_once() {
        let q = Queue::new(
            vec!["high".into(), "low".into()],
            [w("a", "high", 2), w("b", "low", 1)],
        );
        q.push_all([w("a", "high", 2)]);
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.depth(),
            BTreeMap::from([("high".to_string(), 1), ("low".to_string(), 1)])
        );
        let fresh: Vec<_> = q
            .take_fresh()
            .into_iter()
            .map(|w| w.interaction_id)
            .collect();
        assert_eq!(
            fresh,
            ["a", "b"],
            "the router is handed each interaction once"
        );
    }
}
