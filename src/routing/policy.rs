//! The routing policy: a pure function from the waiting interactions, the agents, the
//! rules and the time to the offers to make now, each with the reasons for it. It does
//! no I/O; the worker around it gathers the state, calls it, and carries out its
//! decisions.

use std::collections::BTreeMap;

use serde::Serialize;
use switchboard_contract::ChannelKind;

use super::index::WaitingIndex;
use super::order::{FairWait, Key, Standing};
use super::rings::{in_ring, passed_over, rings_of, rings_open, PassedOver, Staffed};
use super::rules::{Capacity, Order, Ring, Rules, Strategy};
use explain::explain;

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
    /// The order it was taken in (`targets` or `head_start`).
    pub order: Order,
    /// Where it stood in that order (see [`super::order`]).
    pub standing: Standing,
    /// Seconds it had waited.
    pub waited_secs: f64,
    /// Its tier's target (target order).
    pub target_secs: Option<u64>,
    /// Its value within its standing: seconds waited plus the head start (head-start
    /// order); seconds waited, or within a target seconds past it (negative) (target
    /// order).
    pub score_secs: f64,
    /// It had waited past its tier's maximum wait, or past the fair limit.
    pub overdue: bool,
    /// Its channel's fair wait when decided (target order).
    pub fair_wait: Option<FairWait>,
    /// The ring the agent was found in (0 is innermost), among those not passed over.
    pub ring: usize,
    /// Rings open when decided, among those not passed over.
    pub rings_open: usize,
    /// Rings of its plan passed over at once, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<PassedOver>,
    /// Agents of the open rings considered, and why each was or was not chosen (at most
    /// [`MAX_LISTED`]; the rest are counted in `others`).
    pub considered: Vec<Considered>,
    /// Agents not listed, counted by reason.
    pub others: BTreeMap<String, usize>,
}

impl Decision {
    /// A decision made by hand (a supervisor's move): `w` goes to `agent_id`, for `why`.
    pub fn by_hand(
        w: &WaitingInteraction,
        key: &Key,
        fair: Option<FairWait>,
        rules: &Rules,
        agent_id: &str,
        why: String,
    ) -> Decision {
        Decision {
            interaction_id: w.id.clone(),
            agent_id: agent_id.to_string(),
            tier: w.tier.clone(),
            order: rules.order,
            standing: key.standing,
            waited_secs: key.waited_secs,
            target_secs: target_of(w, rules),
            score_secs: key.value,
            overdue: key.standing.overdue(),
            fair_wait: fair,
            ring: 0,
            rings_open: 0,
            passed_over: Vec::new(),
            considered: vec![Considered {
                agent_id: agent_id.to_string(),
                chosen: true,
                reason: why,
            }],
            others: BTreeMap::new(),
        }
    }
}

/// The target `w` is ordered by (target order only).
fn target_of(w: &WaitingInteraction, rules: &Rules) -> Option<u64> {
    match rules.order {
        Order::Targets => rules.tiers.get(&w.tier).and_then(|t| t.target_secs),
        Order::HeadStart => None,
    }
}

/// Most agents listed by name in one decision's explanation.
pub const MAX_LISTED: usize = 20;

/// The offers to make now. Interactions are taken in the rules' order (see
/// [`super::order`]); each goes to an agent of its innermost open ring that can take it,
/// chosen by the strategy. An agent gets at most one offer per call. (The router keeps
/// a [`WaitingIndex`] and calls [`super::index::route`] directly; this builds one.)
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
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_one(
    w: &WaitingInteraction,
    key: &Key,
    fair: Option<&FairWait>,
    free: &[&AgentView],
    agents: &[AgentView],
    staffed: &Staffed<'_>,
    rules: &Rules,
    now_ms: i64,
) -> Option<Decision> {
    let rings = rings_of(w, rules, staffed);
    let open = rings_open(&rings, now_ms - w.enqueued_at_ms);
    let (ring, chosen) = choose(w, &rings[..open], free, rules)?;
    let (considered, others) = explain(w, &rings[..open], agents, chosen, ring, rules, now_ms);
    Some(Decision {
        interaction_id: w.id.clone(),
        agent_id: chosen.id.clone(),
        tier: w.tier.clone(),
        order: rules.order,
        standing: key.standing,
        waited_secs: key.waited_secs,
        target_secs: target_of(w, rules),
        score_secs: key.value,
        overdue: key.standing.overdue(),
        fair_wait: fair.copied(),
        ring,
        rings_open: open,
        passed_over: passed_over(w, rules, staffed),
        considered,
        others,
    })
}

/// Could the agent take any work now?
pub fn ready(a: &AgentView, now_ms: i64) -> bool {
    free_now(a.presence, a.has_pending_offer, a.wrap_up_until_ms, now_ms)
}

/// Available, with no offer waiting for an answer, and out of wrap-up.
pub fn free_now(
    presence: Presence,
    has_pending_offer: bool,
    wrap_up_until_ms: Option<i64>,
    now_ms: i64,
) -> bool {
    presence == Presence::Available
        && !has_pending_offer
        && wrap_up_until_ms.is_none_or(|t| t <= now_ms)
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
pub fn has_room(a: &AgentView, channel: ChannelKind, rules: &Rules) -> bool {
    room_for(&a.load, &a.capacity, channel, rules)
}

/// With this load and capacity, is there room for work on `channel`?
pub fn room_for(load: &Load, capacity: &Capacity, channel: ChannelKind, rules: &Rules) -> bool {
    let blocked =
        rules.capacity.calls_block_other_work && channel != ChannelKind::Phone && load.phone > 0;
    !blocked && load.of(channel) < capacity.of(channel)
}

/// Is the agent free now, with room for a contact of a channel on which contacts wait
/// (`waiting`)? After a round of offers such an agent was held back from every one of
/// them by its rings: capacity the rules left unused.
pub fn idle_while_waiting(
    a: &AgentView,
    waiting: &[ChannelKind],
    rules: &Rules,
    now_ms: i64,
) -> bool {
    ready(a, now_ms) && waiting.iter().any(|c| has_room(a, *c, rules))
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
    open: &[&Ring],
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

mod explain;

#[cfg(test)]
mod tests;
