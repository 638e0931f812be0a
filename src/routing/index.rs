//! The waiting interactions, indexed so that a routing decision costs the same whether
//! ten or a hundred thousand interactions wait.
//!
//! Interactions with the same tier, channel, topic and owner share a *bucket*. Within a
//! bucket the routing order is arrival order (same head start, same maximum wait) and the
//! rings are the same (an older interaction has at least as many open). So the policy
//! only ever needs each bucket's oldest interaction: if that one cannot be served by any
//! free agent, no younger one in the bucket can either — unless it was excluded by a
//! decline, which is checked as it goes. A decision merges the buckets' heads by score,
//! and stops as soon as no agent is free.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use switchboard_contract::ChannelKind;

use super::policy::{self, AgentView, Decision, WaitingInteraction};
use super::rules::Rules;

type BucketKey = (String, ChannelKind, Option<String>, Option<String>);

/// The waiting interactions, by bucket.
#[derive(Debug, Default, Clone)]
pub struct WaitingIndex {
    items: HashMap<String, WaitingInteraction>,
    buckets: HashMap<BucketKey, BTreeSet<(i64, String)>>,
}

fn key(w: &WaitingInteraction) -> BucketKey {
    (w.tier.clone(), w.channel, w.topic.clone(), w.owner.clone())
}

impl WaitingIndex {
    /// Adds (or replaces) an interaction.
    pub fn insert(&mut self, w: WaitingInteraction) {
        self.remove(&w.id);
        self.buckets
            .entry(key(&w))
            .or_default()
            .insert((w.enqueued_at_ms, w.id.clone()));
        self.items.insert(w.id.clone(), w);
    }

    /// Takes an interaction out.
    pub fn remove(&mut self, id: &str) -> Option<WaitingInteraction> {
        let w = self.items.remove(id)?;
        let k = key(&w);
        if let Some(b) = self.buckets.get_mut(&k) {
            b.remove(&(w.enqueued_at_ms, w.id.clone()));
            if b.is_empty() {
                self.buckets.remove(&k);
            }
        }
        Some(w)
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the next ring opens for any waiting interaction, after `now` (ms). Each
    /// bucket's interactions share their rings, so for each ring the first interaction
    /// still waiting for it is found by a search, not a scan.
    pub fn next_ring_opening(&self, rules: &Rules, now: i64) -> Option<i64> {
        let mut next: Option<i64> = None;
        for bucket in self.buckets.values() {
            let Some(w) = bucket.first().and_then(|(_, id)| self.items.get(id)) else {
                continue;
            };
            let rings = policy::rings_of(w, rules);
            let mut offset = 0i64;
            for ring in rings.iter().take(rings.len().saturating_sub(1)) {
                offset += ring.timeout_secs.unwrap_or(0) as i64 * 1000;
                // The oldest interaction for which this ring is still closed opens it first.
                if let Some((enqueued, _)) =
                    bucket.range((now - offset + 1, String::new())..).next()
                {
                    let at = enqueued + offset;
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        next
    }
}

/// A bucket's candidate, ordered as the policy serves them: overdue first, then by score,
/// then the earlier arrival.
struct Head<'a> {
    overdue: bool,
    score: f64,
    w: &'a WaitingInteraction,
    bucket: &'a BTreeSet<(i64, String)>,
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head<'_> {}
impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.overdue
            .cmp(&other.overdue)
            .then(self.score.total_cmp(&other.score))
            .then(other.w.enqueued_at_ms.cmp(&self.w.enqueued_at_ms))
            .then(other.w.id.cmp(&self.w.id))
    }
}

/// The offers to make now, from the index (see [`policy::route`] for the rules of it).
pub fn route(
    index: &WaitingIndex,
    agents: &[AgentView],
    rules: &Rules,
    now_ms: i64,
) -> Vec<Decision> {
    // Per channel, the agents who could take work on it now. Most agents of a busy
    // centre are at capacity: they are left out here, so a head no free agent can
    // take costs nothing to try.
    let mut free: [Vec<&AgentView>; 4] = Default::default();
    for a in agents.iter().filter(|a| policy::ready(a, now_ms)) {
        for (slot, channel) in ChannelKind::ALL.iter().enumerate() {
            if policy::has_room(a, *channel, rules) {
                free[slot].push(a);
            }
        }
    }
    let slot = |c: ChannelKind| ChannelKind::ALL.iter().position(|x| *x == c).unwrap_or(0);
    if free.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Head<'_>> = index
        .buckets
        .values()
        .filter_map(|b| {
            let (_, id) = b.first()?;
            let w = index.items.get(id)?;
            let (score, overdue) = policy::score(w, rules, now_ms);
            Some(Head {
                overdue,
                score,
                w,
                bucket: b,
            })
        })
        .collect();
    let mut decisions = Vec::new();
    while let Some(h) = heap.pop() {
        if free.iter().all(Vec::is_empty) {
            break;
        }
        let candidates = &free[slot(h.w.channel)];
        if candidates.is_empty() {
            // Nobody can take this channel now: the whole bucket waits.
            continue;
        }
        match policy::decide_one(h.w, h.overdue, h.score, candidates, agents, rules, now_ms) {
            Some(d) => {
                for list in free.iter_mut() {
                    list.retain(|a| a.id != d.agent_id);
                }
                decisions.push(d);
            }
            // Not servable now, and not for want of a decline: nor is any younger
            // interaction of this bucket.
            None if h.w.excluded.is_empty() => continue,
            None => {}
        }
        if let Some(next) = next_in_bucket(index, h.bucket, h.w) {
            let (score, overdue) = policy::score(next, rules, now_ms);
            heap.push(Head {
                overdue,
                score,
                w: next,
                bucket: h.bucket,
            });
        }
    }
    decisions
}

fn next_in_bucket<'a>(
    index: &'a WaitingIndex,
    bucket: &'a BTreeSet<(i64, String)>,
    after: &WaitingInteraction,
) -> Option<&'a WaitingInteraction> {
    use std::ops::Bound::{Excluded, Unbounded};
    let (_, id) = bucket
        .range((
            Excluded((after.enqueued_at_ms, after.id.clone())),
            Unbounded,
        ))
        .next()?;
    index.items.get(id)
}
