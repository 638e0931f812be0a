//! The figures an admin judges a rule set by, from a replay's outcomes (or from what
//! happened live): per tier and per topic, the service level, the mean, 95th-percentile
//! and longest waits, the abandonment estimate; and the agents' occupancy.

use std::collections::BTreeMap;

use serde::Serialize;

use super::engine::{Arrival, Outcome, Run};

/// One group's figures. Waits are in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Contacts that arrived in the window.
    pub contacts: usize,
    /// Taken by an agent.
    pub answered: usize,
    /// Customers who gave up, as an estimate for a simulation (see [`estimate`]).
    pub abandoned: f64,
    /// Still waiting at the horizon.
    pub unanswered: usize,
    /// Share of contacts answered within their tier's target wait (of those whose tier
    /// has a target).
    pub service_level: Option<f64>,
    /// Mean wait of the answered.
    pub mean_wait_secs: Option<f64>,
    /// 95th percentile wait of the answered.
    pub p95_wait_secs: Option<f64>,
    /// The longest anyone waited, answered or not.
    pub longest_wait_secs: Option<f64>,
    /// Abandoned, as a share of contacts.
    pub abandonment_rate: Option<f64>,
}

/// A rule set's figures over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// All contacts.
    pub overall: Figures,
    /// Per tier.
    pub by_tier: BTreeMap<String, Figures>,
    /// Per topic (`(none)` for contacts without one).
    pub by_topic: BTreeMap<String, Figures>,
    /// Share of staffed agent-time spent working; `None` where it is not known.
    pub occupancy: Option<f64>,
    /// Offers made (for a simulation).
    pub offers: Option<usize>,
    /// Agent-seconds spent idle while a contact the agent had room for waited, held
    /// back by its rings (for a simulation): what the rings cost in service.
    pub idle_while_waiting_secs: Option<f64>,
    /// Contacts that arrived while their calendar was closed under these rules and
    /// waited for the opening (for a simulation).
    pub held_for_opening: Option<usize>,
}

#[derive(Default)]
struct Tally {
    contacts: usize,
    /// Contacts whose tier has a target.
    targeted: usize,
    answered: Vec<i64>,
    within: usize,
    abandoned: f64,
    unanswered: usize,
    longest: i64,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, target_ms: Option<i64>, abandon_chance: f64) {
        self.contacts += 1;
        self.targeted += usize::from(target_ms.is_some());
        self.longest = self.longest.max(outcome.wait_ms());
        match outcome {
            Outcome::Answered(w) => {
                self.answered.push(w);
                self.within += usize::from(target_ms.is_some_and(|t| w <= t));
            }
            Outcome::Abandoned(_) => self.abandoned += 1.0,
            Outcome::Unanswered(_) => self.unanswered += 1,
        }
        self.abandoned += abandon_chance;
    }

    fn figures(mut self) -> Figures {
        self.answered.sort_unstable();
        let n = self.contacts as f64;
        let secs = |ms: i64| ms as f64 / 1000.0;
        let p95 = (!self.answered.is_empty()).then(|| {
            let rank = ((self.answered.len() as f64) * 0.95).ceil() as usize;
            secs(self.answered[rank.clamp(1, self.answered.len()) - 1])
        });
        Figures {
            contacts: self.contacts,
            answered: self.answered.len(),
            abandoned: round(self.abandoned),
            unanswered: self.unanswered,
            service_level: (self.targeted > 0)
                .then(|| round(self.within as f64 / self.targeted as f64)),
            mean_wait_secs: (!self.answered.is_empty()).then(|| {
                round(secs(self.answered.iter().sum::<i64>()) / self.answered.len() as f64)
            }),
            p95_wait_secs: p95,
            longest_wait_secs: (self.contacts > 0).then(|| secs(self.longest)),
            abandonment_rate: (self.contacts > 0).then(|| round(self.abandoned / n)),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The figures of `outcomes` (one per arrival), counting only arrivals of the window.
/// `targets` gives each tier's target wait (ms; a tier without one has no service level);
/// `abandon_chance` the estimated chance, per arrival, that its customer gave up where
/// the outcome does not say so.
pub fn report(
    arrivals: &[Arrival],
    outcomes: &[Outcome],
    targets: &BTreeMap<String, i64>,
    abandon_chance: &[f64],
) -> Report {
    let mut overall = Tally::default();
    let mut by_tier: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_topic: BTreeMap<String, Tally> = BTreeMap::new();
    for (i, (a, o)) in arrivals.iter().zip(outcomes).enumerate() {
        if !a.counted {
            continue;
        }
        let target = targets.get(&a.tier).copied();
        let chance = abandon_chance.get(i).copied().unwrap_or(0.0);
        overall.add(*o, target, chance);
        by_tier
            .entry(a.tier.clone())
            .or_default()
            .add(*o, target, chance);
        by_topic
            .entry(a.topic.clone().unwrap_or_else(|| "(none)".into()))
            .or_default()
            .add(*o, target, chance);
    }
    Report {
        overall: overall.figures(),
        by_tier: by_tier.into_iter().map(|(k, t)| (k, t.figures())).collect(),
        by_topic: by_topic
            .into_iter()
            .map(|(k, t)| (k, t.figures()))
            .collect(),
        occupancy: None,
        offers: None,
        idle_while_waiting_secs: None,
        held_for_opening: None,
    }
}

/// What happened live, as figures.
pub fn recorded(arrivals: &[Arrival], targets: &BTreeMap<String, i64>) -> Report {
    let outcomes: Vec<Outcome> = arrivals.iter().map(|a| a.recorded).collect();
    report(arrivals, &outcomes, targets, &[])
}

/// A replay's figures. Its abandonment is an estimate: a customer who gave up live gives
/// up again if the replay keeps them waiting as long (the engine does that); one answered
/// live who waits longer in the replay than they did live may give up too, with the
/// chance that the tier's recorded patience (a Kaplan–Meier estimate over the window's
/// waits, answered ones counting as censored) ends between the two waits.
pub fn estimate(arrivals: &[Arrival], run: &Run, targets: &BTreeMap<String, i64>) -> Report {
    let patience = Patience::by_tier(arrivals);
    let chance: Vec<f64> = arrivals
        .iter()
        .zip(&run.outcomes)
        .map(|(a, o)| match (a.recorded, *o) {
            (Outcome::Answered(live), Outcome::Answered(w) | Outcome::Unanswered(w))
                if w > live =>
            {
                patience
                    .get(&a.tier)
                    .map_or(0.0, |p| p.gives_up_between(live, w))
            }
            _ => 0.0,
        })
        .collect();
    let mut r = report(arrivals, &run.outcomes, targets, &chance);
    r.occupancy = (run.staffed_ms > 0).then(|| round(run.busy_ms as f64 / run.staffed_ms as f64));
    r.offers = Some(run.offers);
    r.idle_while_waiting_secs = Some(round(run.idle_while_waiting_ms as f64 / 1000.0));
    r.held_for_opening = Some(run.held_for_opening);
    r
}

/// A tier's recorded patience: the survival curve of "still willing to wait".
struct Patience {
    /// (wait, share still waiting after it), in order of wait.
    steps: Vec<(i64, f64)>,
}

impl Patience {
    fn by_tier(arrivals: &[Arrival]) -> BTreeMap<String, Patience> {
        let mut waits: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
        for a in arrivals {
            let (w, gave_up) = match a.recorded {
                Outcome::Abandoned(w) => (w, true),
                other => (other.wait_ms(), false),
            };
            waits.entry(a.tier.clone()).or_default().push((w, gave_up));
        }
        waits
            .into_iter()
            .map(|(tier, w)| (tier, Patience::kaplan_meier(w)))
            .collect()
    }

    fn kaplan_meier(mut waits: Vec<(i64, bool)>) -> Patience {
        // At equal waits, give-ups come before censored waits, as the estimator requires.
        waits.sort_by_key(|&(w, gave_up)| (w, !gave_up));
        let mut at_risk = waits.len() as f64;
        let mut survival = 1.0;
        let mut steps = Vec::new();
        let mut i = 0;
        while i < waits.len() {
            let w = waits[i].0;
            let (mut events, mut leaving) = (0.0, 0.0);
            while i < waits.len() && waits[i].0 == w {
                events += f64::from(u8::from(waits[i].1));
                leaving += 1.0;
                i += 1;
            }
            if events > 0.0 {
                survival *= 1.0 - events / at_risk;
                steps.push((w, survival));
            }
            at_risk -= leaving;
        }
        Patience { steps }
    }

    fn surviving(&self, wait: i64) -> f64 {
        self.steps
            .iter()
            .take_while(|(w, _)| *w <= wait)
            .last()
            .map_or(1.0, |(_, s)| *s)
    }

    /// The chance that someone still waiting after `from` gives up by `to`.
    fn gives_up_between(&self, from: i64, to: i64) -> f64 {
        let before = self.surviving(from);
        if before <= 0.0 {
            return 0.0;
        }
        (1.0 - self.surviving(to) / before).clamp(0.0, 1.0)
    }
}
