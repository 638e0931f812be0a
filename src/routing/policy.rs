//! The routing policy: a pure function from the waiting interactions, the agents, the
//! rules and the time to the offers to make now, each with the reasons for it. It does
//! no I/O; the worker around it gathers the state, calls it, and carries out its
//! decisions.

use std::collections::BTreeMap;

use serde::Serialize;
use switchboard_contract::ChannelKind;

use super::index::WaitingIndex;
use super::rules::{Capacity, Ring, Rules, Strategy};

/// A waiting interaction, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingInteraction {
    /// Its id.
    pub id: String,
    /// The customer's tier at entry.
    pub tier: String,
    /// Its channel.
    pub channel: ChannelKind,
    /// Its topic.
    pub topic: Option<String>,
    /// The customer's account manager, when they have one.
    pub owner: Option<String>,
    /// When it entered the queue (ms).
    pub enqueued_at_ms: i64,
    /// Agents who declined it or let its offer lapse: not offered it again.
    pub excluded: Vec<String>,
}

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Ready for work.
    Available,
    /// Logged in, not taking work.
    Away,
    /// Not connected.
    Offline,
}

impl Presence {
    /// Its name, as the protocol and the presence log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }

    /// Reads a name written by [`Presence::as_str`].
    pub fn parse(s: &str) -> Option<Presence> {
        [Presence::Available, Presence::Away, Presence::Offline]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Work in progress per channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Calls.
    pub phone: u32,
    /// Chats.
    pub chat: u32,
    /// Emails.
    pub email: u32,
    /// API-created contacts.
    pub api: u32,
}

impl Load {
    /// Work in progress on one channel.
    pub fn of(&self, channel: ChannelKind) -> u32 {
        match channel {
            ChannelKind::Phone => self.phone,
            ChannelKind::Chat => self.chat,
            ChannelKind::Email => self.email,
            ChannelKind::Api => self.api,
        }
    }

    /// Work in progress in all.
    pub fn total(&self) -> u32 {
        self.phone + self.chat + self.email + self.api
    }
}

/// An agent, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    /// Its id.
    pub id: String,
    /// Seniority: higher is more senior.
    pub level: u8,
    /// Skills and teams.
    pub skills: Vec<String>,
    /// Presence.
    pub presence: Presence,
    /// An offer is waiting for the agent's answer (one at a time).
    pub has_pending_offer: bool,
    /// In wrap-up until then (ms).
    pub wrap_up_until_ms: Option<i64>,
    /// Work in progress.
    pub load: Load,
    /// What the agent handles at once.
    pub capacity: Capacity,
    /// Idle since (ms): the end of the last wrap-up, or the login.
    pub idle_since_ms: i64,
    /// When the agent was last offered work (ms), for round robin.
    pub last_offered_at_ms: i64,
}

/// Why an agent was or was not chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Considered {
    /// The agent.
    pub agent_id: String,
    /// Chosen or not.
    pub chosen: bool,
    /// Why.
    pub reason: String,
}

/// One offer to make.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The interaction.
    pub interaction_id: String,
    /// The agent to offer it to.
    pub agent_id: String,
    /// The tier it was ordered by.
    pub tier: String,
    /// Its score when decided: seconds waited plus the tier's head start.
    pub score_secs: f64,
    /// It had waited past its tier's maximum wait.
    pub overdue: bool,
    /// The ring the agent was found in (0 is innermost).
    pub ring: usize,
    /// Rings open when decided.
    pub rings_open: usize,
    /// Agents of the open rings considered, and why each was or was not chosen (at most
    /// [`MAX_LISTED`]; the rest are counted in `others`).
    pub considered: Vec<Considered>,
    /// Agents not listed, counted by reason.
    pub others: BTreeMap<String, usize>,
}

/// Most agents listed by name in one decision's explanation.
pub const MAX_LISTED: usize = 20;

/// The offers to make now. Interactions are taken in order (overdue first, then by
/// score); each goes to an agent of its innermost open ring that can take it, chosen by
/// the strategy. An agent gets at most one offer per call. (The router keeps a
/// [`WaitingIndex`] and calls [`super::index::route`] directly; this builds one.)
pub fn route(
    waiting: &[WaitingInteraction],
    agents: &[AgentView],
    rules: &Rules,
    now_ms: i64,
) -> Vec<Decision> {
    let mut index = WaitingIndex::default();
    for w in waiting {
        index.insert(w.clone());
    }
    super::index::route(&index, agents, rules, now_ms)
}

/// The decision for one interaction among the `free` agents, if any can take it.
pub(super) fn decide_one(
    w: &WaitingInteraction,
    overdue: bool,
    score_secs: f64,
    free: &[&AgentView],
    agents: &[AgentView],
    rules: &Rules,
    now_ms: i64,
) -> Option<Decision> {
    let rings = rings_of(w, rules);
    let open = rings_open(&rings, now_ms - w.enqueued_at_ms);
    let (ring, chosen) = choose(w, &rings[..open], free, rules)?;
    let (considered, others) = explain(w, &rings[..open], agents, chosen, ring, rules, now_ms);
    Some(Decision {
        interaction_id: w.id.clone(),
        agent_id: chosen.id.clone(),
        tier: w.tier.clone(),
        score_secs,
        overdue,
        ring,
        rings_open: open,
        considered,
        others,
    })
}

/// Seconds waited plus the tier's head start, and whether it is past its maximum wait.
pub fn score(w: &WaitingInteraction, rules: &Rules, now_ms: i64) -> (f64, bool) {
    let waited = (now_ms - w.enqueued_at_ms).max(0) as f64 / 1000.0;
    match rules.tiers.get(&w.tier) {
        Some(t) => (
            waited + t.head_start_secs as f64,
            waited > t.max_wait_secs as f64,
        ),
        None => (waited, false),
    }
}

/// The interaction's rings, less those that can match nobody for it (an owner ring when
/// the customer has no owner, a topic ring when it has no topic): those are passed over
/// at once instead of holding it for their timeout.
pub fn rings_of(w: &WaitingInteraction, rules: &Rules) -> Vec<Ring> {
    rules
        .rings_for(&w.tier, w.topic.as_deref())
        .iter()
        .filter(|r| !(r.owner && w.owner.is_none() || r.topic_skill && w.topic.is_none()))
        .cloned()
        .collect()
}

/// How many rings are open after `waited_ms`: the first at once, each next one when the
/// timeouts before it have passed.
pub fn rings_open(rings: &[Ring], waited_ms: i64) -> usize {
    let mut until_ms = 0i64;
    for (i, ring) in rings.iter().enumerate() {
        match ring.timeout_secs {
            Some(t) if i + 1 < rings.len() => {
                until_ms += (t as i64) * 1000;
                if waited_ms < until_ms {
                    return i + 1;
                }
            }
            _ => return rings.len(),
        }
    }
    rings.len()
}

/// Could the agent take any work now?
pub(super) fn ready(a: &AgentView, now_ms: i64) -> bool {
    free_now(a.presence, a.has_pending_offer, a.wrap_up_until_ms, now_ms)
}

/// Available, with no offer waiting for an answer, and out of wrap-up.
pub(super) fn free_now(
    presence: Presence,
    has_pending_offer: bool,
    wrap_up_until_ms: Option<i64>,
    now_ms: i64,
) -> bool {
    presence == Presence::Available
        && !has_pending_offer
        && wrap_up_until_ms.is_none_or(|t| t <= now_ms)
}

/// Is the agent in this ring for this interaction?
fn in_ring(ring: &Ring, a: &AgentView, w: &WaitingInteraction) -> bool {
    (!ring.owner || w.owner.as_deref() == Some(a.id.as_str()))
        && ring.min_level.is_none_or(|l| a.level >= l)
        && ring.skills.iter().all(|s| a.skills.contains(s))
        && (!ring.topic_skill || w.topic.as_ref().is_some_and(|t| a.skills.contains(t)))
}

/// Why a ready agent cannot take this interaction, if it cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obstacle {
    Declined,
    OnCall,
    AtCapacity(u32, u32),
}

impl Obstacle {
    /// The reason without its figures, for counting.
    fn category(self) -> &'static str {
        match self {
            Obstacle::Declined => "declined or missed this interaction",
            Obstacle::OnCall => "on a call",
            Obstacle::AtCapacity(..) => "at capacity",
        }
    }

    fn describe(self, channel: ChannelKind) -> String {
        match self {
            Obstacle::AtCapacity(load, cap) => format!("at capacity for {channel} ({load}/{cap})"),
            other => other.category().to_string(),
        }
    }
}

/// Has the agent room for work on `channel` (not at capacity, not blocked by a call)?
pub(super) fn has_room(a: &AgentView, channel: ChannelKind, rules: &Rules) -> bool {
    let blocked =
        rules.capacity.calls_block_other_work && channel != ChannelKind::Phone && a.load.phone > 0;
    !blocked && a.load.of(channel) < a.capacity.of(channel)
}

fn cannot_take(a: &AgentView, w: &WaitingInteraction, rules: &Rules) -> Option<Obstacle> {
    if w.excluded.contains(&a.id) {
        return Some(Obstacle::Declined);
    }
    if rules.capacity.calls_block_other_work && w.channel != ChannelKind::Phone && a.load.phone > 0
    {
        return Some(Obstacle::OnCall);
    }
    let (load, cap) = (a.load.of(w.channel), a.capacity.of(w.channel));
    if load >= cap {
        return Some(Obstacle::AtCapacity(load, cap));
    }
    None
}

/// The innermost open ring with an agent who can take it, and the agent the strategy picks.
fn choose<'a>(
    w: &WaitingInteraction,
    open: &[Ring],
    free: &[&'a AgentView],
    rules: &Rules,
) -> Option<(usize, &'a AgentView)> {
    for (i, ring) in open.iter().enumerate() {
        let best = free
            .iter()
            .copied()
            .filter(|a| in_ring(ring, a, w) && cannot_take(a, w, rules).is_none())
            .min_by(|a, b| prefer(a, b, rules.selection.strategy));
        if let Some(a) = best {
            return Some((i, a));
        }
    }
    None
}

/// The strategy's order: the preferred agent compares least. Ties go to the longest
/// idle, then to the id, so the same state always gives the same decision.
fn prefer(a: &AgentView, b: &AgentView, strategy: Strategy) -> std::cmp::Ordering {
    let by_strategy = match strategy {
        Strategy::LongestIdle => a.idle_since_ms.cmp(&b.idle_since_ms),
        Strategy::LeastBusy => a.load.total().cmp(&b.load.total()),
        Strategy::RoundRobin => a.last_offered_at_ms.cmp(&b.last_offered_at_ms),
    };
    by_strategy
        .then(a.idle_since_ms.cmp(&b.idle_since_ms))
        .then(a.id.cmp(&b.id))
}

fn explain(
    w: &WaitingInteraction,
    open: &[Ring],
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

#[cfg(test)]
mod tests;
