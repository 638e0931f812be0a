//! The replay itself: a discrete-event simulation. Time jumps from one event to the next
//! (a contact arriving, an agent's presence changing, an offer accepted, a contact
//! released, a customer giving up, a wrap-up ending, a ring opening); after each instant
//! the policy is asked what to offer, exactly as the live router asks it.
//!
//! What it assumes, where the record cannot say: every offer is accepted, after the delay
//! its agent took live (or the window's median for contacts nobody took); a contact takes
//! the handling time it took live, whoever takes it; agents keep the skills, levels and
//! capacity they have now; customers keep their current account manager.
//!
//! Opening hours and callbacks are the rule set's own: a contact arriving while its
//! calendar (under the rules replayed) is closed waits for the opening, a callback waits
//! for its booked time, and its wait counts from then, as live. So a change of hours
//! shows what it would have done.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use switchboard_contract::ChannelKind;

use crate::routing::index::{self, WaitingIndex};
use crate::routing::policy::{self, AgentView, Load, Presence, WaitingInteraction};
use crate::routing::rings::Staffed;
use crate::routing::rules::Rules;
use crate::store::agents::CapacityOverride;

/// One contact of the window, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// The interaction's id.
    pub id: String,
    /// The customer's tier at entry.
    pub tier: String,
    /// Its channel.
    pub channel: ChannelKind,
    /// Its topic.
    pub topic: Option<String>,
    /// The customer's account manager.
    pub owner: Option<String>,
    /// When it entered the queue (ms).
    pub at_ms: i64,
    /// A callback booked for a time: not routed before it (ms).
    pub not_before_ms: Option<i64>,
    /// It arrived in the window, and counts in the figures; false for one already waiting
    /// when the window opened (it takes part, but is not counted).
    pub counted: bool,
    /// How long its agent held it (ms); `None`: it was still held at the horizon.
    pub handling_ms: Option<i64>,
    /// How long its offer took to be accepted (ms).
    pub accept_ms: i64,
    /// After how long waiting its customer gave up, when they did.
    pub patience_ms: Option<i64>,
    /// What happened to it live.
    pub recorded: Outcome,
}

/// What became of a contact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// An agent took it after this wait (ms).
    Answered(i64),
    /// Its customer gave up after this wait (ms).
    Abandoned(i64),
    /// Still waiting at the horizon, after this long (ms).
    Unanswered(i64),
}

impl Outcome {
    /// The wait, whatever its end (ms).
    pub fn wait_ms(self) -> i64 {
        match self {
            Outcome::Answered(w) | Outcome::Abandoned(w) | Outcome::Unanswered(w) => w,
        }
    }
}

/// An agent who was on duty at some time in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct SimAgent {
    /// Its id.
    pub id: String,
    /// Seniority.
    pub level: u8,
    /// Skills and teams.
    pub skills: Vec<String>,
    /// Its own capacity, where it differs from the rules'.
    pub capacity: CapacityOverride,
}

/// An agent's presence changing (the window's opening states are changes at its start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceChange {
    /// When (ms).
    pub at_ms: i64,
    /// Index into [`Scenario::agents`].
    pub agent: usize,
    /// The new presence.
    pub presence: Presence,
}

/// Work an agent already held when the window opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// Index into [`Scenario::agents`].
    pub agent: usize,
    /// Its channel.
    pub channel: ChannelKind,
    /// When it was released (ms); `None`: still held at the horizon.
    pub until_ms: Option<i64>,
}

/// A window of recorded history, ready to replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    /// The window's start (ms).
    pub from_ms: i64,
    /// The window's end: no arrival after it (ms).
    pub to_ms: i64,
    /// Where the replay stops: contacts still waiting then are unanswered (ms).
    pub horizon_ms: i64,
    /// The contacts, in arrival order.
    pub arrivals: Vec<Arrival>,
    /// The agents.
    pub agents: Vec<SimAgent>,
    /// Their presence, in time order.
    pub presence: Vec<PresenceChange>,
    /// Work held at the start.
    pub held: Vec<Held>,
    /// When not empty, the n-th contact taken is held for the n-th of these (ms) rather
    /// than for its own handling time: a synthetic workload whose handling time does not
    /// depend on the contact. Every rule set that keeps agents as busy then meets the
    /// same work at the same moments, so a comparison measures the rules, not which
    /// contact happened to draw a long call.
    pub handling_in_order: Vec<i64>,
}

/// What a replay came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Per arrival, in [`Scenario::arrivals`] order.
    pub outcomes: Vec<Outcome>,
    /// Agent-time available or working within the window (ms).
    pub staffed_ms: i64,
    /// Agent-time working: holding work, in wrap-up, or with an offer out (ms).
    pub busy_ms: i64,
    /// Agent-time idle while a contact waited that the agent had room for but was not
    /// offered — held back by its rings (ms): service the rules cost.
    pub idle_while_waiting_ms: i64,
    /// Offers made.
    pub offers: usize,
    /// Contacts that arrived while their calendar was closed and waited for the opening.
    pub held_for_opening: usize,
}

/// Why a replay stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// It ran past its time limit.
    #[error("the simulation ran past its limit of {0} s; replay a shorter window")]
    TimeLimit(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Presence(usize),
    Arrive(usize),
    Accept { arrival: usize, agent: usize },
    Release { agent: usize, channel: usize },
    Abandon(usize),
    Wake,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Coming,
    Waiting,
    Offered(usize),
    Done(Outcome),
}

/// Replays `scenario` under `rules`, giving up after `limit` of wall time.
pub fn replay(scenario: &Scenario, rules: &Rules, limit: Duration) -> Result<Run, SimError> {
    Sim::new(scenario, rules).run(limit)
}

struct Sim<'a> {
    s: &'a Scenario,
    rules: &'a Rules,
    /// When each arrival may be routed: its arrival, its booked time, or the opening of
    /// its calendar under these rules, whichever is last.
    ready: Vec<i64>,
    held_for_opening: usize,
    views: Vec<AgentView>,
    index: WaitingIndex,
    states: Vec<State>,
    by_id: HashMap<&'a str, usize>,
    agent_by_id: HashMap<String, usize>,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    seq: u64,
    wakes: BTreeSet<i64>,
    now: i64,
    staffed_ms: i64,
    busy_ms: i64,
    idle_while_waiting_ms: i64,
    offers: usize,
    /// Contacts taken so far.
    taken: usize,
}

fn slot(channel: ChannelKind) -> usize {
    ChannelKind::ALL
        .iter()
        .position(|c| *c == channel)
        .unwrap_or(0)
}

fn load_mut(load: &mut Load, channel: ChannelKind) -> &mut u32 {
    match channel {
        ChannelKind::Phone => &mut load.phone,
        ChannelKind::Chat => &mut load.chat,
        ChannelKind::Email => &mut load.email,
        ChannelKind::Api => &mut load.api,
    }
}

impl<'a> Sim<'a> {
    fn new(s: &'a Scenario, rules: &'a Rules) -> Sim<'a> {
        let views = s
            .agents
            .iter()
            .map(|a| AgentView {
                id: a.id.clone(),
                level: a.level,
                skills: a.skills.clone(),
                presence: Presence::Offline,
                has_pending_offer: false,
                wrap_up_until_ms: None,
                load: Load::default(),
                capacity: a.capacity.over(rules.capacity),
                idle_since_ms: s.from_ms,
                last_offered_at_ms: 0,
            })
            .collect();
        let service = crate::service::Service::new(std::sync::Arc::new(rules.clone()));
        let mut held_for_opening = 0;
        let ready: Vec<i64> = s
            .arrivals
            .iter()
            .map(|a| {
                let at = a.at_ms.max(a.not_before_ms.unwrap_or(a.at_ms));
                match service.calendar_for(&a.tier, a.channel) {
                    Some((_, c)) if !c.is_open(at) => {
                        held_for_opening += usize::from(a.counted);
                        c.next_open(at).unwrap_or(i64::MAX)
                    }
                    _ => at,
                }
            })
            .collect();
        let mut sim = Sim {
            s,
            rules,
            ready,
            held_for_opening,
            views,
            index: WaitingIndex::default(),
            states: vec![State::Coming; s.arrivals.len()],
            by_id: s
                .arrivals
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id.as_str(), i))
                .collect(),
            agent_by_id: s
                .agents
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id.clone(), i))
                .collect(),
            events: BinaryHeap::new(),
            seq: 0,
            wakes: BTreeSet::new(),
            now: s.from_ms,
            staffed_ms: 0,
            busy_ms: 0,
            idle_while_waiting_ms: 0,
            offers: 0,
            taken: 0,
        };
        for (i, p) in s.presence.iter().enumerate() {
            sim.push(p.at_ms.max(s.from_ms), Event::Presence(i));
        }
        for (i, a) in s.arrivals.iter().enumerate() {
            let ready = sim.ready[i];
            if ready < s.horizon_ms {
                sim.push(ready.max(s.from_ms), Event::Arrive(i));
            }
            if let Some(p) = a.patience_ms {
                sim.push((a.at_ms + p).max(s.from_ms), Event::Abandon(i));
            }
        }
        for h in &s.held {
            if let Some(v) = sim.views.get_mut(h.agent) {
                *load_mut(&mut v.load, h.channel) += 1;
            }
            if let Some(until) = h.until_ms {
                let channel = slot(h.channel);
                let at = until.max(s.from_ms);
                sim.push(
                    at,
                    Event::Release {
                        agent: h.agent,
                        channel,
                    },
                );
            }
        }
        sim
    }

    fn push(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    fn run(mut self, limit: Duration) -> Result<Run, SimError> {
        let started = Instant::now();
        let mut turns = 0u64;
        while let Some(&Reverse((at, _, _))) = self.events.peek() {
            if at >= self.s.horizon_ms {
                break;
            }
            self.account(at);
            while let Some(Reverse((_, _, event))) =
                self.events.peek().copied().filter(|e| e.0 .0 == at)
            {
                self.events.pop();
                self.apply(event, at);
            }
            self.wakes.remove(&at);
            self.dispatch(at);
            turns += 1;
            if turns % 1024 == 0 && started.elapsed() > limit {
                return Err(SimError::TimeLimit(limit.as_secs()));
            }
        }
        self.account(self.s.horizon_ms);
        let horizon = self.s.horizon_ms;
        let outcomes = self
            .states
            .iter()
            .zip(&self.ready)
            .map(|(state, ready)| match state {
                State::Done(o) => *o,
                _ => Outcome::Unanswered((horizon - ready).max(0)),
            })
            .collect();
        Ok(Run {
            outcomes,
            staffed_ms: self.staffed_ms,
            busy_ms: self.busy_ms,
            idle_while_waiting_ms: self.idle_while_waiting_ms,
            offers: self.offers,
            held_for_opening: self.held_for_opening,
        })
    }

    /// Adds the time since the last instant to the agents' staffed and busy time, and to
    /// the time agents sat idle while a contact they had room for waited, within the
    /// window (after it, the replay only follows the contacts still waiting).
    fn account(&mut self, until: i64) {
        let dt = until.min(self.s.to_ms) - self.now.min(self.s.to_ms);
        if dt > 0 {
            let waiting: Vec<ChannelKind> = ChannelKind::ALL
                .into_iter()
                .filter(|c| self.index.waiting_on(*c) > 0)
                .collect();
            for v in &self.views {
                let busy = v.load.total() > 0
                    || v.has_pending_offer
                    || v.wrap_up_until_ms.is_some_and(|t| t > self.now);
                if busy {
                    self.busy_ms += dt;
                    self.staffed_ms += dt;
                } else if v.presence == Presence::Available {
                    self.staffed_ms += dt;
                }
                if policy::idle_while_waiting(v, &waiting, self.rules, self.now) {
                    self.idle_while_waiting_ms += dt;
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn apply(&mut self, event: Event, at: i64) {
        match event {
            Event::Presence(i) => {
                let p = self.s.presence[i];
                if let Some(v) = self.views.get_mut(p.agent) {
                    if v.presence != Presence::Available && p.presence == Presence::Available {
                        v.idle_since_ms = v.idle_since_ms.max(at);
                    }
                    v.presence = p.presence;
                }
            }
            Event::Arrive(i) => {
                let a = &self.s.arrivals[i];
                if self.states[i] == State::Coming {
                    self.states[i] = State::Waiting;
                    self.index.insert(WaitingInteraction {
                        id: a.id.clone(),
                        tier: a.tier.clone(),
                        channel: a.channel,
                        topic: a.topic.clone(),
                        owner: a.owner.clone(),
                        enqueued_at_ms: self.ready[i],
                        excluded: Vec::new(),
                    });
                }
            }
            Event::Accept { arrival, agent } => {
                if self.states[arrival] != State::Offered(agent) {
                    return;
                }
                let a = &self.s.arrivals[arrival];
                self.states[arrival] = State::Done(Outcome::Answered(at - self.ready[arrival]));
                let v = &mut self.views[agent];
                v.has_pending_offer = false;
                *load_mut(&mut v.load, a.channel) += 1;
                let in_order = self.s.handling_in_order.get(self.taken).copied();
                self.taken += 1;
                if let Some(h) = in_order.or(a.handling_ms) {
                    let channel = slot(a.channel);
                    self.push(at + h.max(0), Event::Release { agent, channel });
                }
            }
            Event::Release { agent, channel } => {
                let wrap = self.rules.offer.wrap_up_secs as i64 * 1000;
                let v = &mut self.views[agent];
                let held = load_mut(&mut v.load, ChannelKind::ALL[channel]);
                *held = held.saturating_sub(1);
                v.wrap_up_until_ms = Some(at + wrap);
                v.idle_since_ms = at + wrap;
                if wrap > 0 {
                    self.push(at + wrap, Event::Wake);
                }
            }
            Event::Abandon(i) => {
                let a = &self.s.arrivals[i];
                match self.states[i] {
                    State::Waiting => {
                        self.index.remove(&a.id);
                    }
                    State::Offered(agent) => self.views[agent].has_pending_offer = false,
                    // Gave up before it could be routed (closed, or before its booked
                    // time): never waited in the queue.
                    State::Coming => {
                        self.states[i] = State::Done(Outcome::Abandoned(0));
                        return;
                    }
                    State::Done(_) => return,
                }
                self.states[i] = State::Done(Outcome::Abandoned((at - self.ready[i]).max(0)));
            }
            Event::Wake => {}
        }
    }

    /// Asks the policy what to offer now, as the live router does after each turn.
    fn dispatch(&mut self, at: i64) {
        if self.index.is_empty() {
            return;
        }
        self.index.observe(self.rules, at);
        for d in index::route(&self.index, &self.views, self.rules, at) {
            let (Some(&i), Some(&agent)) = (
                self.by_id.get(d.interaction_id.as_str()),
                self.agent_by_id.get(&d.agent_id),
            ) else {
                continue;
            };
            self.index.remove(&d.interaction_id);
            self.states[i] = State::Offered(agent);
            let v = &mut self.views[agent];
            v.has_pending_offer = true;
            v.last_offered_at_ms = at;
            self.offers += 1;
            let delay = self.s.arrivals[i].accept_ms.max(0);
            self.push(at + delay, Event::Accept { arrival: i, agent });
        }
        let staffed = Staffed::new(&self.views);
        if let Some(next) = self.index.next_ring_opening(self.rules, &staffed, at) {
            if next > at && next < self.s.horizon_ms && self.wakes.insert(next) {
                self.push(next, Event::Wake);
            }
        }
    }
}

/// Is the agent free now, with room for a contact of a channel on which contacts wait?
/// After each instant's offers such an agent was held back from all of them by their
/// rings: capacity the rules left unused.
pub fn idle_while_waiting(
    v: &AgentView,
    waiting: &[ChannelKind],
    rules: &Rules,
    now_ms: i64,
) -> bool {
    policy::ready(v, now_ms) && waiting.iter().any(|c| policy::has_room(v, *c, rules))
}

#[cfg(test)]
mod tests;
