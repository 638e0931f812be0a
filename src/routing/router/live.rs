//! The live view supervisors read: the queue, the agents, service levels.

use super::*;

/// How many of the longest-waiting interactions the live view lists one by one.
const WAITING_LISTED: usize = 100;

impl Router {
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
        json!({ "waiting": self.waiting.len(), "by_tier": tiers, "by_channel": by_channel, "by_topic": by_topic,
                "oldest": list, "agents": agents, "service_level": self.service_level(now) })
    }

    /// Where waiting interactions stand: each one's place among the waiting interactions
    /// of its channel in routing order (overdue first, then by score; equals share a
    /// place), and an estimate of its wait from the rate of answers over the last 15
    /// minutes (Little's law). One sort per channel asked about, however many are asked.
    pub(super) fn positions(&self, ids: &[String], now: i64) -> HashMap<String, Position> {
        let key = |w: &WaitingInteraction| {
            let (score, overdue) = policy::score(w, &self.rules, now);
            (overdue, score)
        };
        let descending = |a: &(bool, f64), b: &(bool, f64)| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1));
        let mut by_channel: HashMap<ChannelKind, Vec<(bool, f64)>> = HashMap::new();
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
            let target = self
                .rules
                .tiers
                .get(tier)
                .map_or(i64::MAX, |t| t.max_wait_secs as i64 * 1000);
            let e = per.entry(tier.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(*waited <= target);
        }
        per.into_iter()
            .map(|(tier, (n, within))| {
                let target = self.rules.tiers.get(tier).map(|t| t.max_wait_secs);
                (tier.to_string(), json!({ "answered": n, "within_target": within, "target_secs": target, "share": within as f64 / n as f64 }))
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }
}
