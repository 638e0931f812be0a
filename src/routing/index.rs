//! The waiting interactions, indexed so that a routing decision costs the same whether
//! ten or a hundred thousand interactions wait.
//!
//! Interactions with the same tier, channel, topic and owner share a *bucket*, kept in
//! arrival order. Within a bucket the rings are the same (an older interaction has at
//! least as many open), and the order is arrival order within each of at most two *runs*:
//! under the target order, those still within their tier's target (the newest) go before
//! those past it, each run oldest first; under the head-start order, the bucket is one
//! run. So the policy only ever needs each run's oldest interaction: if that one cannot
//! be served by any free agent, no younger one of its run can either — unless it was
//! excluded by a decline, which is checked as it goes. A decision merges the runs' heads
//! by their keys, and stops as soon as no agent is free.
//!
//! The index also keeps, per channel, the [`Yardstick`] the target order's fair wait is
//! measured by.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound::{Excluded, Included, Unbounded};

use switchboard_contract::ChannelKind;

use super::order::{self, FairWait, Key};
use super::policy::{self, AgentView, Decision, WaitingInteraction};
use super::rings::{self, Staffed};
use super::rules::{Order, Rules, TierRouting};
use super::yardstick::Yardstick;

type BucketKey = (String, ChannelKind, Option<String>, Option<String>);

/// The settings of a tier the rules do not name: no target, no head start.
static NO_SETTINGS: TierRouting = TierRouting {
    target_secs: None,
    urgent: false,
    head_start_secs: None,
    max_wait_secs: None,
};
type Bucket = BTreeSet<(i64, String)>;

/// The waiting interactions, by bucket.
#[derive(Debug, Default, Clone)]
pub struct WaitingIndex {
    items: HashMap<String, WaitingInteraction>,
    buckets: HashMap<BucketKey, Bucket>,
    /// How many wait on each channel, in [`ChannelKind::ALL`] order.
    per_channel: [usize; 4],
    /// Per channel, in the same order: the fair wait's yardstick.
    yardsticks: [Yardstick; 4],
}

/// A channel's place in [`ChannelKind::ALL`].
fn slot(channel: ChannelKind) -> usize {
    ChannelKind::ALL
        .iter()
        .position(|c| *c == channel)
        .unwrap_or(0)
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
        let c = slot(w.channel);
        self.per_channel[c] += 1;
        self.yardsticks[c].arrived(w.enqueued_at_ms, &w.id);
        self.items.insert(w.id.clone(), w);
    }

    /// Takes an interaction out.
    pub fn remove(&mut self, id: &str) -> Option<WaitingInteraction> {
        let w = self.items.remove(id)?;
        self.per_channel[slot(w.channel)] -= 1;
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

    /// How many wait on `channel`.
    pub fn waiting_on(&self, channel: ChannelKind) -> usize {
        self.per_channel[slot(channel)]
    }

    /// The interaction with this id, if it waits.
    pub fn get(&self, id: &str) -> Option<&WaitingInteraction> {
        self.items.get(id)
    }

    /// Notes how long plain first-come-first-served would be keeping contacts waiting
    /// now, for the fair wait. Called before each round of offers: that wait only grows
    /// between answers, so its peaks are just before them.
    pub fn observe(&mut self, rules: &Rules, now_ms: i64) {
        let mut oldest: [Option<i64>; 4] = [None; 4];
        for ((_, channel, _, _), b) in &self.buckets {
            if let Some((at, _)) = b.first() {
                let o = &mut oldest[slot(*channel)];
                *o = Some(o.map_or(*at, |x| x.min(*at)));
            }
        }
        let window_ms = (rules.fair_wait.window_hours as i64).saturating_mul(3_600_000);
        for (c, y) in self.yardsticks.iter_mut().enumerate() {
            y.observe(self.per_channel[c], oldest[c], now_ms, window_ms);
        }
    }

    /// The fair wait of every channel now, in [`ChannelKind::ALL`] order.
    pub fn fair_waits_now(&self, rules: &Rules, now_ms: i64) -> [Option<FairWait>; 4] {
        self.fair_waits(rules, [true; 4], now_ms)
    }

    /// The fair wait on `channel` now (target order, and someone waiting on it).
    pub fn fair_wait(&self, channel: ChannelKind, rules: &Rules, now_ms: i64) -> Option<FairWait> {
        let mut want = [false; 4];
        want[slot(channel)] = true;
        self.fair_waits(rules, want, now_ms)[slot(channel)]
    }

    /// The fair wait of each channel marked in `want`, in [`ChannelKind::ALL`] order, in
    /// one pass over the buckets.
    fn fair_waits(&self, rules: &Rules, want: [bool; 4], now_ms: i64) -> [Option<FairWait>; 4] {
        let next = self.fifo_next(rules, want);
        let mut behind = [0usize; 4];
        if next.iter().any(Option::is_some) {
            for ((_, channel, _, _), b) in &self.buckets {
                behind[slot(*channel)] += left_behind(b, next[slot(*channel)]);
            }
        }
        self.fair_waits_from(rules, next, behind, now_ms)
    }

    /// Target order: when the contact FIFO would answer next arrived, on each channel
    /// marked in `want` where someone waits.
    fn fifo_next(&self, rules: &Rules, want: [bool; 4]) -> [Option<i64>; 4] {
        std::array::from_fn(|c| {
            (rules.order == Order::Targets && want[c])
                .then(|| self.yardsticks[c].fifo_next(self.per_channel[c]))
                .flatten()
        })
    }

    /// The fair waits, from when FIFO's next arrived and how many wait older than it.
    fn fair_waits_from(
        &self,
        rules: &Rules,
        next: [Option<i64>; 4],
        behind: [usize; 4],
        now_ms: i64,
    ) -> [Option<FairWait>; 4] {
        std::array::from_fn(|c| {
            next[c]?;
            let (waiting, y) = (self.per_channel[c], &self.yardsticks[c]);
            let fifo_now = y.fifo_now(waiting, now_ms);
            // FIFO's wait now spans `waiting` arrivals: the time between two of them.
            let per_contact = fifo_now as f64 / waiting as f64;
            Some(FairWait::new(
                rules,
                y.longest() as f64 / 1000.0,
                fifo_now as f64 / 1000.0,
                behind[c] as f64 * per_contact / 1000.0,
            ))
        })
    }

    /// When the next ring opens for any waiting interaction, after `now` (ms). Each
    /// bucket's interactions share their rings, so for each ring the first interaction
    /// still waiting for it is found by a search, not a scan.
    pub fn next_ring_opening(&self, rules: &Rules, staffed: &Staffed<'_>, now: i64) -> Option<i64> {
        let mut next: Option<i64> = None;
        for bucket in self.buckets.values() {
            let Some(w) = bucket.first().and_then(|(_, id)| self.items.get(id)) else {
                continue;
            };
            let rings = rings::rings_of(w, rules, staffed);
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

    /// The key of a waiting interaction now: its place in the order.
    pub fn key_of(&self, w: &WaitingInteraction, rules: &Rules, now_ms: i64) -> Key {
        order::key(
            w,
            rules,
            self.fair_wait(w.channel, rules, now_ms).as_ref(),
            now_ms,
        )
    }
}

/// How many of a bucket wait older than the contact FIFO would answer next (`next`):
/// left behind FIFO's order.
fn left_behind(b: &Bucket, next: Option<i64>) -> usize {
    match (next, b.first()) {
        (Some(next), Some((at, _))) if *at < next => b.range(..(next, String::new())).count(),
        _ => 0,
    }
}

/// One run of a bucket: the interactions from `from` on (by arrival), up to and
/// including `until` when given.
#[derive(Clone, Copy)]
struct Run<'a> {
    bucket: &'a Bucket,
    until: Option<i64>,
    /// The bucket's tier's settings.
    tier: &'a TierRouting,
}

impl<'a> Run<'a> {
    /// The first entry of the run after `after` (or its first).
    fn next(&self, after: Option<&(i64, String)>) -> Option<&'a (i64, String)> {
        let lower = match after {
            Some(a) => Excluded(a.clone()),
            None => Unbounded,
        };
        let e = self.bucket.range((lower, Unbounded)).next()?;
        self.until.is_none_or(|u| e.0 <= u).then_some(e)
    }

    /// The run from the first entry after `split` on.
    fn after(
        bucket: &'a Bucket,
        split: i64,
        tier: &'a TierRouting,
    ) -> Option<(Run<'a>, &'a (i64, String))> {
        let e = bucket
            .range((
                Included((split.saturating_add(1), String::new())),
                Unbounded,
            ))
            .next()?;
        Some((
            Run {
                bucket,
                until: None,
                tier,
            },
            e,
        ))
    }
}

/// A run's candidate, ordered as the policy serves them.
struct Head<'a> {
    key: Key,
    w: &'a WaitingInteraction,
    run: Run<'a>,
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
        self.key.cmp(self.w, &other.key, other.w)
    }
}

fn head<'a>(
    w: &'a WaitingInteraction,
    run: Run<'a>,
    rules: &Rules,
    fair: &[Option<FairWait>; 4],
    now_ms: i64,
) -> Head<'a> {
    Head {
        key: order::key_in(
            w,
            rules.order,
            run.tier,
            fair[slot(w.channel)].as_ref(),
            now_ms,
        ),
        w,
        run,
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
        for (i, channel) in ChannelKind::ALL.iter().enumerate() {
            if policy::has_room(a, *channel, rules) {
                free[i].push(a);
            }
        }
    }
    if free.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    // One pass over the buckets: each run's oldest, and (target order) how many wait
    // behind FIFO's order on each channel someone could be offered work on.
    let next = index.fifo_next(rules, std::array::from_fn(|c| !free[c].is_empty()));
    let mut behind = [0usize; 4];
    let mut heads: Vec<(&WaitingInteraction, Run<'_>)> = Vec::new();
    for ((tier, channel, _, _), b) in &index.buckets {
        let c = slot(*channel);
        if free[c].is_empty() {
            // Nobody can take this channel now: the whole bucket waits.
            continue;
        }
        behind[c] += left_behind(b, next[c]);
        let tier = rules.tiers.get(tier).unwrap_or(&NO_SETTINGS);
        let split = order::split_in(rules.order, tier, now_ms);
        // Past the target (or the whole bucket): from its oldest.
        let past = Run {
            bucket: b,
            until: split,
            tier,
        };
        if let Some(w) = past.next(None).and_then(|(_, id)| index.items.get(id)) {
            heads.push((w, past));
        }
        // Within the target: from its oldest (none when even the newest is past it).
        let within = split.filter(|s| b.last().is_some_and(|(at, _)| at > s));
        if let Some((run, (_, id))) = within.and_then(|s| Run::after(b, s, tier)) {
            if let Some(w) = index.items.get(id) {
                heads.push((w, run));
            }
        }
    }
    let fair = index.fair_waits_from(rules, next, behind, now_ms);
    let mut heap: BinaryHeap<Head<'_>> = heads
        .into_iter()
        .map(|(w, run)| head(w, run, rules, &fair, now_ms))
        .collect();
    let staffed = Staffed::new(agents);
    let mut decisions = Vec::new();
    while let Some(h) = heap.pop() {
        if free.iter().all(Vec::is_empty) {
            break;
        }
        let c = slot(h.w.channel);
        let candidates = &free[c];
        if candidates.is_empty() {
            continue;
        }
        let decided = policy::decide_one(
            h.w,
            &h.key,
            fair[c].as_ref(),
            candidates,
            agents,
            &staffed,
            rules,
            now_ms,
        );
        match decided {
            Some(d) => {
                for list in free.iter_mut() {
                    list.retain(|a| a.id != d.agent_id);
                }
                decisions.push(d);
            }
            // Not servable now, and not for want of a decline: nor is any younger
            // interaction of this run.
            None if h.w.excluded.is_empty() => continue,
            None => {}
        }
        let after = (h.w.enqueued_at_ms, h.w.id.clone());
        if let Some(next) = h
            .run
            .next(Some(&after))
            .and_then(|(_, id)| index.items.get(id))
        {
            heap.push(head(next, h.run, rules, &fair, now_ms));
        }
    }
    decisions
}
