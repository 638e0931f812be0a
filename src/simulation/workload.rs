//! A synthetic workload for judging rules on the field's standard case rather than on a
//! recorded window: identical agents on one channel, contacts arriving at random
//! (Poisson) at a chosen occupancy, handling times drawn from an exponential or lognormal
//! distribution, tiers in chosen shares. The `routing_outcome` benchmark and the test that
//! the shipped rules keep their promises replay it through [`super::engine`].
//!
//! The standard workload ([`Workload::default`]): 50 agents, one channel (calls, one at a
//! time), 95% occupancy, exponential handling with a mean of 300 s, tiers high / medium /
//! low at 10 / 30 / 60% of arrivals, no wrap-up, no abandonment, every offer accepted at
//! once. Agents are at level 1 (what the API gives a new agent) with no skills.

use rand_distr::{Distribution, Exp, LogNormal, Uniform};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use switchboard_contract::ChannelKind;

use super::engine::{Arrival, Outcome, PresenceChange, Scenario, SimAgent};
use crate::routing::policy::Presence;
use crate::store::agents::CapacityOverride;

/// How handling times are distributed (each with the workload's mean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Handling {
    /// Exponential: the textbook case, for which Erlang C holds.
    Exponential,
    /// Lognormal with this shape (the standard deviation of the logarithm): what
    /// measured call centres show. 1.0 gives a coefficient of variation of about 1.3.
    LogNormal {
        /// The standard deviation of the logarithm.
        sigma: f64,
    },
}

/// A synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Identical agents, all on duty throughout.
    pub agents: usize,
    /// The share of the agents' time the arrivals keep busy (arrival rate × mean
    /// handling time ÷ agents), below 1.
    pub occupancy: f64,
    /// Mean handling time (seconds).
    pub mean_handling_secs: f64,
    /// How handling times are distributed.
    pub handling: Handling,
    /// Tiers and their shares of arrivals (the shares need not add up to 1).
    pub mix: Vec<(String, f64)>,
    /// Hours of arrivals.
    pub hours: f64,
    /// The seed: the same seed gives the same contacts.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            agents: 50,
            occupancy: 0.95,
            mean_handling_secs: 300.0,
            handling: Handling::Exponential,
            mix: vec![
                ("high".into(), 0.10),
                ("medium".into(), 0.30),
                ("low".into(), 0.60),
            ],
            hours: 100.0,
            seed: 1,
        }
    }
}

/// Why a workload cannot be generated, naming the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadWorkload {
    /// The parameter.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(field: &'static str, message: &str) -> BadWorkload {
    BadWorkload {
        field,
        message: message.into(),
    }
}

impl Workload {
    /// The contacts and agents, ready to replay. The window is the hours of arrivals;
    /// the replay follows the last contacts until they are answered.
    pub fn scenario(&self) -> Result<Scenario, BadWorkload> {
        self.check()?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mean_ms = self.mean_handling_secs * 1000.0;
        let rate_per_ms = self.occupancy * self.agents as f64 / mean_ms;
        let gaps = Exp::new(rate_per_ms).map_err(|_| bad("occupancy", "gives no arrivals"))?;
        let handling = HandlingDraw::new(self.handling, mean_ms)?;
        let total: f64 = self.mix.iter().map(|(_, s)| s).sum();
        let pick = Uniform::new(0.0, total).map_err(|_| bad("mix", "the shares add up to 0"))?;
        let to_ms = (self.hours * 3_600_000.0) as i64;
        let mut arrivals = Vec::new();
        let mut t = 0.0f64;
        loop {
            t += gaps.sample(&mut rng);
            if t as i64 >= to_ms {
                break;
            }
            let mut x = pick.sample(&mut rng);
            let tier = self
                .mix
                .iter()
                .find(|(_, share)| {
                    x -= share;
                    x < 0.0
                })
                .unwrap_or(&self.mix[self.mix.len() - 1]);
            arrivals.push(Arrival {
                id: format!("c{}", arrivals.len()),
                tier: tier.0.clone(),
                channel: ChannelKind::Phone,
                topic: None,
                owner: None,
                at_ms: t as i64,
                not_before_ms: None,
                counted: true,
                handling_ms: None,
                accept_ms: 0,
                patience_ms: None,
                recorded: Outcome::Answered(0),
            });
        }
        // Handling times in the order contacts are taken (see
        // `Scenario::handling_in_order`): the same work for every rule set.
        let handling_in_order: Vec<i64> = (0..arrivals.len())
            .map(|_| handling.sample(&mut rng))
            .collect();
        for (a, h) in arrivals.iter_mut().zip(&handling_in_order) {
            a.handling_ms = Some(*h);
        }
        let agents: Vec<SimAgent> = (0..self.agents)
            .map(|i| SimAgent {
                id: format!("a{i:03}"),
                level: 1,
                skills: Vec::new(),
                capacity: CapacityOverride {
                    phone: Some(1),
                    ..CapacityOverride::default()
                },
            })
            .collect();
        let presence = (0..self.agents)
            .map(|agent| PresenceChange {
                at_ms: 0,
                agent,
                presence: Presence::Available,
            })
            .collect();
        Ok(Scenario {
            from_ms: 0,
            to_ms,
            // Long enough for the last contacts to be answered: the queue empties at the
            // agents' whole rate once arrivals stop.
            horizon_ms: to_ms + 24 * 3_600_000,
            arrivals,
            agents,
            presence,
            held: Vec::new(),
            handling_in_order,
        })
    }

    fn check(&self) -> Result<(), BadWorkload> {
        if self.agents == 0 || self.agents > 100_000 {
            return Err(bad("agents", "must be between 1 and 100000"));
        }
        if !(self.occupancy > 0.0 && self.occupancy < 1.0) {
            return Err(bad(
                "occupancy",
                "must be above 0 and below 1 (at 1 or more the queue grows without end)",
            ));
        }
        if !(self.mean_handling_secs >= 1.0 && self.mean_handling_secs <= 86_400.0) {
            return Err(bad("mean_handling_secs", "must be between 1 and 86400"));
        }
        if let Handling::LogNormal { sigma } = self.handling {
            if !(sigma > 0.0 && sigma <= 3.0) {
                return Err(bad("sigma", "must be above 0 and at most 3"));
            }
        }
        if self.mix.is_empty() || self.mix.iter().any(|(_, s)| !(s.is_finite() && *s >= 0.0)) {
            return Err(bad(
                "mix",
                "name at least one tier, each with a share of 0 or more",
            ));
        }
        if !(self.hours > 0.0 && self.hours <= 10_000.0) {
            return Err(bad("hours", "must be above 0 and at most 10000"));
        }
        Ok(())
    }
}

/// A handling-time distribution with its parameters, in milliseconds.
enum HandlingDraw {
    Exponential(Exp<f64>),
    LogNormal(LogNormal<f64>),
}

impl HandlingDraw {
    fn new(h: Handling, mean_ms: f64) -> Result<HandlingDraw, BadWorkload> {
        Ok(match h {
            Handling::Exponential => HandlingDraw::Exponential(
                Exp::new(1.0 / mean_ms).map_err(|_| bad("mean_handling_secs", "out of range"))?,
            ),
            // A lognormal's mean is exp(mu + sigma²/2): mu is chosen to give the mean.
            Handling::LogNormal { sigma } => HandlingDraw::LogNormal(
                LogNormal::new(mean_ms.ln() - sigma * sigma / 2.0, sigma)
                    .map_err(|_| bad("sigma", "out of range"))?,
            ),
        })
    }

    fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> i64 {
        let ms = match self {
            HandlingDraw::Exponential(d) => d.sample(rng),
            HandlingDraw::LogNormal(d) => d.sample(rng),
        };
        ms.round().max(1.0) as i64
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::routing::rules::{Rules, DEFAULT_TOML};
    use crate::simulation::engine::replay;
    use crate::simulation::fifo_rules;
    use crate::simulation::figures::{estimate, Report};

    fn tiers() -> Vec<String> {
        vec!["high".into(), "medium".into(), "low".into()]
    }

    /// Each tier within `secs`.
    fn within(secs: i64) -> BTreeMap<String, i64> {
        tiers().into_iter().map(|t| (t, secs * 1000)).collect()
    }

    fn share(r: &Report, tier: &str) -> f64 {
        r.by_tier[tier].service_level.unwrap()
    }

    #[test]
    fn the_standard_workload_is_poisson_at_the_occupancy_asked() {
        let w = Workload {
            hours: 10.0,
            ..Workload::default()
        };
        let s = w.scenario().unwrap();
        // 0.95 × 50 agents ÷ 300 s = 570 contacts an hour, give or take chance.
        let n = s.arrivals.len() as f64;
        assert!((n - 5700.0).abs() < 4.0 * 5700f64.sqrt(), "{n} contacts");
        let high = s.arrivals.iter().filter(|a| a.tier == "high").count() as f64;
        assert!((high / n - 0.10).abs() < 0.02, "{high} high of {n}");
        let mean = s.handling_in_order.iter().sum::<i64>() as f64 / n / 1000.0;
        assert!((mean - 300.0).abs() < 15.0, "mean handling {mean} s");
        assert_eq!(w.scenario().unwrap(), s, "the same seed, the same contacts");
        let lognormal = Workload {
            handling: Handling::LogNormal { sigma: 1.0 },
            ..w
        };
        let s = lognormal.scenario().unwrap();
        let mean = s.handling_in_order.iter().sum::<i64>() as f64 / n / 1000.0;
        assert!(
            (mean - 300.0).abs() < 25.0,
            "lognormal mean handling {mean} s"
        );
    }

    #[test]
    fn bad_workloads_are_refused_by_name() {
        for (w, field) in [
            (
                Workload {
                    occupancy: 1.0,
                    ..Workload::default()
                },
                "occupancy",
            ),
            (
                Workload {
                    agents: 0,
                    ..Workload::default()
                },
                "agents",
            ),
            (
                Workload {
                    mix: vec![("high".into(), -1.0)],
                    ..Workload::default()
                },
                "mix",
            ),
            (
                Workload {
                    handling: Handling::LogNormal { sigma: f64::NAN },
                    ..Workload::default()
                },
                "sigma",
            ),
        ] {
            assert_eq!(w.scenario().unwrap_err().field, field);
        }
    }

    /// The promise of the routing model on a day of the field's standard workload (50
    /// agents, 95% busy, tiers 10/30/60%): the shipped rules answer ≥ 95% of the high tier
    /// within 20 s and ≥ 80% of the medium tier within 60 s, no tier's longest wait
    /// passes 1.2 × FIFO's, and the mean wait is FIFO's; FIFO itself, replayed over the
    /// same contacts, keeps neither target. (`cargo bench --bench routing_outcome` holds
    /// the long runs, other loads, mixes and handling times.)
    #[test]
    fn the_shipped_rules_keep_every_tiers_promise_on_a_day_of_the_standard_workload() {
        let s = Workload {
            hours: 24.0,
            seed: 1,
            ..Workload::default()
        }
        .scenario()
        .unwrap();
        let (mut rules, _) = Rules::check(DEFAULT_TOML, "default", &tiers()).unwrap();
        rules.offer.wrap_up_secs = 0;
        let fifo = fifo_rules(&rules);
        let limit = Duration::from_secs(120);
        let run = replay(&s, &rules, limit).unwrap();
        let fifo_run = replay(&s, &fifo, limit).unwrap();
        let (at_20, at_60) = (
            estimate(&s.arrivals, &run, &within(20)),
            estimate(&s.arrivals, &run, &within(60)),
        );
        let (fifo_20, fifo_60) = (
            estimate(&s.arrivals, &fifo_run, &within(20)),
            estimate(&s.arrivals, &fifo_run, &within(60)),
        );
        assert!(
            share(&at_20, "high") >= 0.95,
            "high {}",
            share(&at_20, "high")
        );
        assert!(
            share(&at_60, "medium") >= 0.80,
            "medium {}",
            share(&at_60, "medium")
        );
        let fifo_longest = fifo_20.overall.longest_wait_secs.unwrap();
        for tier in tiers() {
            let longest = at_20.by_tier[&tier].longest_wait_secs.unwrap();
            assert!(
                longest <= 1.2 * fifo_longest,
                "{tier}: longest {longest} s, FIFO's {fifo_longest} s"
            );
        }
        let (mean, fifo_mean) = (
            at_20.overall.mean_wait_secs.unwrap(),
            fifo_20.overall.mean_wait_secs.unwrap(),
        );
        assert!(
            (mean / fifo_mean - 1.0).abs() <= 0.02,
            "{mean} s vs {fifo_mean} s"
        );
        assert_eq!(
            run.idle_while_waiting_ms, 0,
            "no agent idled while anyone waited"
        );
        // The same contacts first come, first served: neither target is kept.
        assert!(
            share(&fifo_20, "high") < 0.6,
            "FIFO high {}",
            share(&fifo_20, "high")
        );
        assert!(
            share(&fifo_60, "medium") < 0.7,
            "FIFO medium {}",
            share(&fifo_60, "medium")
        );
    }
}
