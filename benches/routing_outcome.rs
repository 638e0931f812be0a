//! Routing outcome: what the rules do for each tier on the field's standard workload, beside
//! plain first-come-first-served (FIFO) replayed over the same contacts in the same run.
//!
//!     cargo bench --bench routing_outcome                       # the standard workload, seed 1
//!     cargo bench --bench routing_outcome -- --occupancy 0.98 --seeds 1,2,3,4,5
//!     cargo bench --bench routing_outcome -- --handling lognormal --sigma 1.0
//!     cargo bench --bench routing_outcome -- --mix high=5,medium=25,low=70
//!     cargo bench --bench routing_outcome -- --suite            # every variation, 5 seeds
//!     cargo bench --bench routing_outcome -- --rules my-rules.toml
//!
//! The workload (`simulation::workload`): identical agents on one channel with capacity 1,
//! Poisson arrivals at the given occupancy, handling time exponential or lognormal with the
//! given mean, tiers in the given shares, no wrap-up, no abandonment, every offer accepted
//! at once. It is replayed through the project's replay engine (`simulation::engine`, which
//! asks the real `routing::index::route` at every instant) under three rule sets:
//!
//! - *default*: the shipped `config/routing.toml` (or `--rules`), wrap-up set to 0;
//! - *previous*: the rules shipped before the target ordering (head starts and maximum
//!   waits, the same rings), wrap-up 0;
//! - *FIFO*: the same engine with rules that order purely by arrival, every tier alike,
//!   one ring of everyone.
//!
//! Per tier it prints the service level within 20 s and within the tier's own target, the
//! mean, 95th-percentile and longest wait; overall, the mean wait and the agent-time spent
//! idle while a contact waited. The promises checked: high tier within 20 s ≥ 95%, medium
//! within 60 s ≥ 80%, every tier's longest wait ≤ 1.2 × FIFO's longest, overall mean wait
//! within 2% of FIFO's. FIFO is checked against Erlang C where handling is exponential.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use switchboard::routing::rules::{Rules, DEFAULT_TOML};
use switchboard::simulation::engine::{self, Scenario};
use switchboard::simulation::figures::{self, Report};
use switchboard::simulation::workload::{Handling, Workload};
use switchboard::simulation::{fifo_rules, service_targets};

/// The rules shipped before the target order (head starts and maximum waits).
const PREVIOUS: &str = include_str!("../config/routing-head-start.toml");

const TIERS: [&str; 3] = ["high", "medium", "low"];

#[derive(Parser, Debug)]
#[command(about = "Routing outcome on a synthetic workload, beside FIFO in the same run")]
struct Args {
    /// Identical agents.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Occupancy the arrivals make (0 < x < 1).
    #[arg(long, default_value_t = 0.95)]
    occupancy: f64,
    /// Handling-time distribution: exponential or lognormal.
    #[arg(long, default_value = "exponential")]
    handling: String,
    /// Lognormal shape (standard deviation of the logarithm).
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// Mean handling time, seconds.
    #[arg(long, default_value_t = 300.0)]
    mean_handling: f64,
    /// Tier mix, in percent of arrivals.
    #[arg(long, default_value = "high=10,medium=30,low=60")]
    mix: String,
    /// Hours of arrivals.
    #[arg(long, default_value_t = 100.0)]
    hours: f64,
    /// Seeds, comma-separated: one run each.
    #[arg(long, default_value = "1")]
    seeds: String,
    /// A rules file to judge instead of the shipped defaults.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Every variation (90%, 95%, 98% occupancy; mixes 5/25/70 and 20/30/50; lognormal
    /// handling) over the seeds (1–5 unless --seeds is given): one summary table.
    #[arg(long)]
    suite: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    let tiers: Vec<String> = TIERS.iter().map(|t| t.to_string()).collect();
    let default = match &args.rules {
        Some(p) => {
            let text = std::fs::read_to_string(p).expect("the rules file can be read");
            let (rules, _) = Rules::check(&text, &p.display().to_string(), &tiers)
                .unwrap_or_else(|r| panic!("the rules do not validate: {:?}", r.errors));
            rules
        }
        None => Rules::check(DEFAULT_TOML, "default", &tiers).unwrap().0,
    };
    let previous = Rules::check(PREVIOUS, "previous", &tiers).unwrap().0;
    let sets = [
        ("default", no_wrap_up(default.clone())),
        ("previous", no_wrap_up(previous)),
        ("FIFO", no_wrap_up(fifo_rules(&default))),
    ];
    // Every set is judged by the same targets: the default rules' own.
    let targets = service_targets(&default);
    let base = Workload {
        agents: args.agents,
        occupancy: args.occupancy,
        mean_handling_secs: args.mean_handling,
        handling: match args.handling.as_str() {
            "exponential" => Handling::Exponential,
            "lognormal" => Handling::LogNormal { sigma: args.sigma },
            other => panic!("--handling: '{other}' is not exponential or lognormal"),
        },
        mix: parse_mix(&args.mix),
        hours: args.hours,
        seed: 1,
    };
    let seeds: Vec<u64> = if args.suite && args.seeds == "1" {
        (1..=5).collect()
    } else {
        args.seeds
            .split(',')
            .map(|s| s.trim().parse().expect("--seeds: numbers"))
            .collect()
    };
    println!("{}", machine());
    if args.suite {
        suite(&base, &seeds, &sets, &targets);
    } else {
        for seed in seeds {
            let w = Workload {
                seed,
                ..base.clone()
            };
            one(&w, &sets, &targets);
        }
    }
}

fn no_wrap_up(mut r: Rules) -> Rules {
    r.offer.wrap_up_secs = 0;
    r
}

fn parse_mix(text: &str) -> Vec<(String, f64)> {
    text.split(',')
        .map(|part| {
            let (tier, share) = part.split_once('=').expect("--mix: tier=percent,…");
            (
                tier.trim().to_string(),
                share.trim().parse().expect("--mix: a number"),
            )
        })
        .collect()
}

/// One replay's figures: at each tier's own target, and at 20 s and 60 s for every tier.
struct Outcome {
    at_target: Report,
    at_20: Report,
    at_60: Report,
    secs: f64,
}

fn replay(s: &Scenario, rules: &Rules, targets: &BTreeMap<String, u64>) -> Outcome {
    let started = Instant::now();
    let run = engine::replay(s, rules, Duration::from_secs(3600)).expect("the replay finishes");
    let secs = started.elapsed().as_secs_f64();
    // Every tier of the workload, whether or not the rules give it a target.
    let tiers: std::collections::BTreeSet<&str> =
        s.arrivals.iter().map(|a| a.tier.as_str()).collect();
    let judge = |f: &dyn Fn(&str) -> Option<u64>| {
        let t: BTreeMap<String, i64> = tiers
            .iter()
            .filter_map(|k| Some((k.to_string(), f(k)? as i64 * 1000)))
            .collect();
        figures::estimate(&s.arrivals, &run, &t)
    };
    Outcome {
        at_target: judge(&|k| targets.get(k).copied()),
        at_20: judge(&|_| Some(20)),
        at_60: judge(&|_| Some(60)),
        secs,
    }
}

/// The four promises' figures for one replay, against FIFO's in the same run.
#[derive(Debug, Clone)]
struct Verdict {
    /// High tier answered within 20 s.
    high_20: f64,
    /// Medium tier answered within 60 s.
    medium_60: f64,
    /// The longest wait of any tier over FIFO's longest.
    tail_ratio: f64,
    /// The tier it was.
    tail_tier: String,
    /// Overall mean wait over FIFO's.
    mean_ratio: f64,
}

impl Verdict {
    fn of(o: &Outcome, fifo: &Outcome) -> Verdict {
        let sl = |r: &Report, tier: &str| {
            r.by_tier
                .get(tier)
                .and_then(|f| f.service_level)
                .unwrap_or(1.0)
        };
        let fifo_longest = fifo
            .at_20
            .overall
            .longest_wait_secs
            .unwrap_or(0.0)
            .max(1e-9);
        let (tail_tier, longest) = o
            .at_20
            .by_tier
            .iter()
            .map(|(t, f)| (t.clone(), f.longest_wait_secs.unwrap_or(0.0)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default();
        Verdict {
            high_20: sl(&o.at_20, "high"),
            medium_60: sl(&o.at_60, "medium"),
            tail_ratio: longest / fifo_longest,
            tail_tier,
            mean_ratio: o.at_20.overall.mean_wait_secs.unwrap_or(0.0)
                / fifo.at_20.overall.mean_wait_secs.unwrap_or(0.0).max(1e-9),
        }
    }

    fn met(&self) -> [bool; 4] {
        [
            self.high_20 >= 0.95,
            self.medium_60 >= 0.80,
            self.tail_ratio <= 1.2,
            (self.mean_ratio - 1.0).abs() <= 0.02,
        ]
    }

    /// The worst of two, promise by promise.
    fn worst(self, other: &Verdict) -> Verdict {
        let (tail_ratio, tail_tier) = if other.tail_ratio > self.tail_ratio {
            (other.tail_ratio, other.tail_tier.clone())
        } else {
            (self.tail_ratio, self.tail_tier)
        };
        Verdict {
            high_20: self.high_20.min(other.high_20),
            medium_60: self.medium_60.min(other.medium_60),
            tail_ratio,
            tail_tier,
            mean_ratio: if (other.mean_ratio - 1.0).abs() > (self.mean_ratio - 1.0).abs() {
                other.mean_ratio
            } else {
                self.mean_ratio
            },
        }
    }

    fn cells(&self) -> String {
        let [a, b, c, d] = self.met().map(|ok| if ok { "" } else { " ✗" });
        format!(
            "{:.3}{a} | {:.3}{b} | {:.2}× ({}){c} | {:+.1}%{d}",
            self.high_20,
            self.medium_60,
            self.tail_ratio,
            self.tail_tier,
            (self.mean_ratio - 1.0) * 100.0
        )
    }
}

/// One workload: per tier and rule set, every figure, and the promises.
fn one(w: &Workload, sets: &[(&str, Rules)], targets: &BTreeMap<String, u64>) {
    let s = w.scenario().unwrap_or_else(|e| panic!("--{e}"));
    println!("\n## {}\n", describe(w));
    let outcomes: Vec<(&str, Outcome)> = sets
        .iter()
        .map(|(name, rules)| (*name, replay(&s, rules, targets)))
        .collect();
    let fifo = &outcomes[outcomes.len() - 1].1;
    println!(
        "{} contacts; replays took {}.\n",
        s.arrivals.len(),
        outcomes
            .iter()
            .map(|(n, o)| format!("{n} {:.2} s", o.secs))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| tier | rules | contacts | within 20 s | within target | mean wait | p95 wait | longest wait |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} s"));
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    for (tier, _) in &w.mix {
        for (name, o) in &outcomes {
            let (Some(t20), Some(tt)) = (o.at_20.by_tier.get(tier), o.at_target.by_tier.get(tier))
            else {
                continue;
            };
            let target = targets
                .get(tier)
                .map_or("no target".into(), |t| format!("{t} s"));
            println!(
                "| {tier} | {name} | {} | {} | {} ({target}) | {} | {} | {} |",
                t20.contacts,
                pct(t20.service_level),
                pct(tt.service_level),
                secs(t20.mean_wait_secs),
                secs(t20.p95_wait_secs),
                secs(t20.longest_wait_secs),
            );
        }
    }
    println!("\n| rules | mean wait, all | longest, all | agent time idle while a contact waited | high ≤ 20 s | medium ≤ 60 s | longest / FIFO's | mean vs FIFO |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, o) in &outcomes {
        let v = Verdict::of(o, fifo);
        println!(
            "| {name} | {} | {} | {:.0} s | {} |",
            secs(o.at_20.overall.mean_wait_secs),
            secs(o.at_20.overall.longest_wait_secs),
            o.at_20.idle_while_waiting_secs.unwrap_or(0.0),
            v.cells()
        );
    }
    if let Handling::Exponential = w.handling {
        let (within_20, mean) = erlang_c(w);
        println!(
            "\nFIFO against Erlang C (M/M/{}, {:.0}% occupancy): within 20 s {:.3} (Erlang C {:.3}), mean wait {:.1} s (Erlang C {:.1} s).",
            w.agents,
            w.occupancy * 100.0,
            fifo.at_20.overall.service_level.unwrap_or(0.0),
            within_20,
            fifo.at_20.overall.mean_wait_secs.unwrap_or(0.0),
            mean
        );
    }
}

/// Every variation over the seeds: the worst seed's figure for each promise.
fn suite(base: &Workload, seeds: &[u64], sets: &[(&str, Rules)], targets: &BTreeMap<String, u64>) {
    let variations: Vec<(&str, Workload)> = vec![
        ("standard (95%, 10/30/60, exponential)", base.clone()),
        (
            "90% occupancy",
            Workload {
                occupancy: 0.90,
                ..base.clone()
            },
        ),
        (
            "98% occupancy",
            Workload {
                occupancy: 0.98,
                ..base.clone()
            },
        ),
        (
            "mix 5/25/70",
            Workload {
                mix: parse_mix("high=5,medium=25,low=70"),
                ..base.clone()
            },
        ),
        (
            "mix 20/30/50",
            Workload {
                mix: parse_mix("high=20,medium=30,low=50"),
                ..base.clone()
            },
        ),
        (
            "lognormal handling (σ = 1)",
            Workload {
                handling: Handling::LogNormal { sigma: 1.0 },
                ..base.clone()
            },
        ),
    ];
    println!(
        "\n{} agents, {} h per run, seeds {:?}; each cell the worst seed's figure (✗: the promise is not kept).\n",
        base.agents, base.hours, seeds
    );
    println!("| workload | rules | high ≤ 20 s | medium ≤ 60 s | longest / FIFO's (tier) | mean vs FIFO | FIFO: within 20 s, mean, longest |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (what, w) in variations {
        let mut worst: Vec<Option<Verdict>> = vec![None; sets.len() - 1];
        let mut fifo_figures = Vec::new();
        for &seed in seeds {
            let s = Workload { seed, ..w.clone() }.scenario().unwrap();
            let outcomes: Vec<Outcome> = sets.iter().map(|(_, r)| replay(&s, r, targets)).collect();
            let fifo = &outcomes[outcomes.len() - 1];
            fifo_figures.push((
                fifo.at_20.overall.service_level.unwrap_or(0.0),
                fifo.at_20.overall.mean_wait_secs.unwrap_or(0.0),
                fifo.at_20.overall.longest_wait_secs.unwrap_or(0.0),
            ));
            for (i, o) in outcomes[..outcomes.len() - 1].iter().enumerate() {
                let v = Verdict::of(o, fifo);
                worst[i] = Some(match worst[i].take() {
                    Some(w) => w.worst(&v),
                    None => v,
                });
            }
        }
        let fifo = format!(
            "{:.3}–{:.3}, {:.0}–{:.0} s, {:.0}–{:.0} s",
            fifo_figures.iter().map(|f| f.0).fold(f64::MAX, f64::min),
            fifo_figures.iter().map(|f| f.0).fold(f64::MIN, f64::max),
            fifo_figures.iter().map(|f| f.1).fold(f64::MAX, f64::min),
            fifo_figures.iter().map(|f| f.1).fold(f64::MIN, f64::max),
            fifo_figures.iter().map(|f| f.2).fold(f64::MAX, f64::min),
            fifo_figures.iter().map(|f| f.2).fold(f64::MIN, f64::max),
        );
        for (i, v) in worst.into_iter().enumerate() {
            let v = v.expect("at least one seed");
            println!("| {what} | {} | {} | {fifo} |", sets[i].0, v.cells());
        }
    }
}

fn describe(w: &Workload) -> String {
    let handling = match w.handling {
        Handling::Exponential => "exponential".to_string(),
        Handling::LogNormal { sigma } => format!("lognormal σ = {sigma}"),
    };
    let mix: Vec<String> = w.mix.iter().map(|(t, s)| format!("{t} {s}")).collect();
    format!(
        "{} agents, {:.0}% occupancy, handling {handling} with mean {} s, mix {}, {} h, seed {}",
        w.agents,
        w.occupancy * 100.0,
        w.mean_handling_secs,
        mix.join(" / "),
        w.hours,
        w.seed
    )
}

/// Erlang C for M/M/N: the share answered within 20 s and the mean wait (seconds).
fn erlang_c(w: &Workload) -> (f64, f64) {
    let n = w.agents as f64;
    let a = w.occupancy * n; // offered load in erlangs
                             // Erlang B by its recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=w.agents {
        b = a * b / (k as f64 + a * b);
    }
    let c = b / (1.0 - w.occupancy * (1.0 - b));
    let decay = (n - a) / w.mean_handling_secs; // per second
    (1.0 - c * (-decay * 20.0).exp(), c / decay)
}

/// The machine, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("# Routing outcome\n\nMachine: {cpu}, {cores} cores available.")
}
