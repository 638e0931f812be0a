//! The live view supervisors read: the queue, the agents, service levels.

use super::*;
use crate::routing::order::{self, FairWait, Standing};
use crate::routing::rings::{Member, Staffed};

/// How many of the longest-waiting interactions the live view lists one by one.
const WAITING_LISTED: usize = 100;

/// Agents' time spent idle while a contact they had room for waited — held back by its
/// rings, since every agent who may take a contact is offered one at each turn: the
/// service the rings cost, over the last [`SERVICE_WINDOW_MS`].
#[derive(Debug, Default)]
pub(super) struct IdleWhileWaiting {
    /// When it was last counted (ms).
    counted_at: i64,
    /// Agents idle while contacts waited then.
    agents: usize,
    /// Agent-time since, in slices: (end of the slice, agent-ms in it).
    slices: VecDeque<(i64, i64)>,
}

impl IdleWhileWaiting {
    /// Agent-seconds over the window up to `now`.
    fn agent_secs(&self, now: i64) -> f64 {
        let past: i64 = self
            .slices
            .iter()
            .filter(|(end, _)| *end + SERVICE_WINDOW_MS >= now)
            .map(|(_, ms)| ms)
            .sum();
        let open = (now - self.counted_at).max(0) * self.agents as i64;
        (past + open) as f64 / 1000.0
    }
}

impl Router {
    /// Which rings the agents with a session could fill, for the rings' timetable.
    pub(super) fn staffed(&self) -> Staffed<'_> {
        Staffed::of(self.agents.values().map(|s| Member {
            id: &s.row.id,
            level: s.row.level,
            skills: &s.row.skills,
            logged_in: s.presence != Presence::Offline,
        }))
    }

    /// After a round of offers: adds the time since the last round during which agents
    /// sat idle while contacts they had room for waited, and counts them anew.
    pub(super) fn note_idle(&mut self, now: i64) {
        let idle = &mut self.idle;
        let elapsed = (now - idle.counted_at).max(0);
        if idle.counted_at > 0 && idle.agents > 0 && elapsed > 0 {
            idle.slices.push_back((now, elapsed * idle.agents as i64));
        }
        while idle
            .slices
            .front()
            .is_some_and(|(end, _)| *end + SERVICE_WINDOW_MS < now)
        {
            idle.slices.pop_front();
        }
        idle.counted_at = now;
        let waiting: Vec<ChannelKind> = ChannelKind::ALL
            .into_iter()
            .filter(|c| self.index.waiting_on(*c) > 0)
            .collect();
        idle.agents = if waiting.is_empty() {
            0
        } else {
            let rules = &self.rules;
            self.agents
                .values()
                .filter(|s| {
                    let (load, capacity) = (s.load(), s.row.capacity.over(rules.capacity));
                    policy::free_now(s.presence, s.offer.is_some(), s.wrap_up_until, now)
                        && waiting
                            .iter()
                            .any(|c| policy::room_for(&load, &capacity, *c, rules))
                })
                .count()
        };
    }

    pub(super) fn snapshot(&self, now: i64) -> Value {
        let mut by_tier: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut by_channel: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
        for item in self.waiting.values() {
            by_tier
                .entry(item.w.tier.clone())
                .or_default()
                .push((now - item.w.enqueued_at_ms) / 1000);
            *by_channel.entry(item.w.channel.as_str()).or_default() += 1;
            *by_topic
                .entry(item.w.topic.clone().unwrap_or_else(|| "(none)".into()))
                .or_default() += 1;
        }
        let tiers: BTreeMap<String, Value> = by_tier
            .into_iter()
            .map(|(t, ages)| {
                let oldest = ages.iter().copied().max().unwrap_or(0);
                (t, json!({ "waiting": ages.len(), "oldest_secs": oldest }))
            })
            .collect();
        let agents: Vec<Value> = self
            .agents
            .values()
            .map(|s| {
                let load = s.load();
                json!({
                    "id": s.row.id, "name": s.row.name, "presence": s.presence,
                    "holding": s.held.len(), "offered": s.offer.is_some(),
                    "wrap_up": s.wrap_up_until.is_some_and(|t| t > now),
                    "load": { "phone": load.phone, "chat": load.chat, "email": load.email, "api": load.api },
                })
            })
            .collect();
        // The longest-waiting interactions, each with its age: what a supervisor scans
        // for. Bounded, so a push stays small however long the queue grows.
        let mut oldest: Vec<&WaitingInteraction> = self.waiting.values().map(|i| &i.w).collect();
        oldest.sort_by_key(|w| w.enqueued_at_ms);
        let list: Vec<Value> = oldest
            .iter()
            .take(WAITING_LISTED)
            .map(|w| {
                json!({ "id": w.id, "tier": w.tier, "channel": w.channel.as_str(), "topic": w.topic,
                        "waited_secs": (now - w.enqueued_at_ms) / 1000 })
            })
            .collect();
        let idle = json!({
            "window_secs": SERVICE_WINDOW_MS / 1000,
            "agent_secs": (self.idle.agent_secs(now) * 10.0).round() / 10.0,
            "agents_now": self.idle.agents,
        });
        json!({ "waiting": self.waiting.len(), "by_tier": tiers, "by_channel": by_channel, "by_topic": by_topic,
                "oldest": list, "agents": agents, "service_level": self.service_level(now),
                "idle_while_waiting": idle })
    }

    /// Where waiting interactions stand: each one's place among the waiting interactions
    /// of its channel in routing order (by standing, then value; equals share a place),
    /// and an estimate of its wait from the rate of answers over the last 15 minutes
    /// (Little's law). One sort per channel asked about, however many are asked.
    pub(super) fn positions(&self, ids: &[String], now: i64) -> HashMap<String, Position> {
        let fair: HashMap<ChannelKind, Option<FairWait>> = ChannelKind::ALL
            .into_iter()
            .zip(self.index.fair_waits_now(&self.rules, now))
            .collect();
        let key = |w: &WaitingInteraction| {
            let k = order::key(w, &self.rules, fair[&w.channel].as_ref(), now);
            (k.standing, k.value)
        };
        let descending =
            |a: &(Standing, f64), b: &(Standing, f64)| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1));
        let mut by_channel: HashMap<ChannelKind, Vec<(Standing, f64)>> = HashMap::new();
        for id in ids {
            if let Some(item) = self.waiting.get(id) {
                by_channel.entry(item.w.channel).or_default();
            }
        }
        for item in self.waiting.values() {
            if let Some(keys) = by_channel.get_mut(&item.w.channel) {
                keys.push(key(&item.w));
            }
        }
        for keys in by_channel.values_mut() {
            keys.sort_by(descending);
        }
        let window_ms = self
            .answered
            .front()
            .map_or(0, |(at, _, _)| (now - at).max(1));
        let per_sec = (self.answered.len() >= 2)
            .then(|| self.answered.len() as f64 / (window_ms as f64 / 1000.0));
        let mut out = HashMap::new();
        for id in ids {
            let Some(item) = self.waiting.get(id) else {
                continue;
            };
            let mine = key(&item.w);
            let keys = &by_channel[&item.w.channel];
            // Those strictly ahead of it.
            let ahead = keys.partition_point(|k| descending(k, &mine).is_lt());
            out.insert(
                id.clone(),
                Position {
                    position: ahead as u32 + 1,
                    estimated_wait_secs: per_sec.map(|r| ((ahead + 1) as f64 / r).ceil() as u32),
                },
            );
        }
        out
    }

    /// Per tier, over the last 15 minutes: interactions answered, and the share answered
    /// within the tier's maximum wait (its service-level target).
    pub(super) fn service_level(&self, now: i64) -> Value {
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (at, tier, waited) in &self.answered {
            if *at + SERVICE_WINDOW_MS < now {
                continue;
            }
            // A tier without a target has no service level: nothing counts as within it.
            let target = self.rules.service_target_secs(tier);
            let e = per.entry(tier.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(target.is_some_and(|t| *waited <= t as i64 * 1000));
        }
        per.into_iter()
            .map(|(tier, (n, within))| {
                let target = self.rules.service_target_secs(tier);
                let share = target.map(|_| within as f64 / n as f64);
                (tier.to_string(), json!({ "answered": n, "within_target": within, "target_secs": target, "share": share }))
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }
}
