//! Routing: time per routing decision as the queue grows, beside the time to merely look
//! at every waiting interaction once (what any policy without an index pays), measured
//! in the same run.
//!
//!     cargo bench --bench routing
//!
//! The case is the common one: 1,000 agents, all busy but one who has just freed up, and
//! 1k, 10k or 100k interactions waiting across tiers, channels, topics and owners; under
//! the shipped target order, then under the head-start order shipped before it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchboard::routing::index::{self, WaitingIndex};
use switchboard::routing::order;
use switchboard::routing::policy::{AgentView, Load, Presence, WaitingInteraction};
use switchboard::routing::rules::{Rules, DEFAULT_TOML};
use switchboard_contract::ChannelKind;

const NOW: i64 = 1_800_000_000_000;
const AGENTS: usize = 1000;

/// The rules shipped before the target order.
const HEAD_START: &str = include_str!("../config/routing-head-start.toml");

fn main() {
    println!("# Routing benchmark ({AGENTS} agents, one free)\n");
    println!("| order | waiting | per decision | scan of every waiting interaction (baseline) | decision / scan | decision vs 1k |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, text) in [
        ("targets (default)", DEFAULT_TOML),
        ("head_start", HEAD_START),
    ] {
        let rules = Rules::parse(text, name).unwrap();
        run(name, &rules);
    }
}

fn run(name: &str, rules: &Rules) {
    let rules = rules.clone();
    let agents = agents(&rules);
    let mut first = None;
    for n in [1_000usize, 10_000, 100_000] {
        let mut waiting = waiting(n);
        // As they arrived.
        waiting.sort_by_key(|w| w.enqueued_at_ms);
        let mut idx = WaitingIndex::default();
        for w in &waiting {
            idx.insert(w.clone());
        }
        // As the router does before each round of offers.
        idx.observe(&rules, NOW);
        let decision = time_per_call(|| {
            let d = index::route(&idx, &agents, &rules, NOW);
            assert_eq!(d.len(), 1, "the free agent gets an offer");
            black_box(d);
        });
        let fair: Vec<_> = ChannelKind::ALL
            .iter()
            .map(|c| idx.fair_wait(*c, &rules, NOW))
            .collect();
        let scan = time_per_call(|| {
            let best = waiting
                .iter()
                .map(|w| {
                    let f = fair[ChannelKind::ALL
                        .iter()
                        .position(|c| *c == w.channel)
                        .unwrap()];
                    order::key(w, &rules, f.as_ref(), NOW).value
                })
                .fold(f64::MIN, f64::max);
            black_box(best);
        });
        let base = *first.get_or_insert(decision);
        println!(
            "| {name} | {n} | {:.1} µs | {:.1} µs | {:.3} | {:.2}× |",
            decision.as_secs_f64() * 1e6,
            scan.as_secs_f64() * 1e6,
            decision.as_secs_f64() / scan.as_secs_f64(),
            decision.as_secs_f64() / base.as_secs_f64()
        );
    }
}

/// Median time of one call, over enough calls to fill about a second.
fn time_per_call(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(100));
    let reps = (Duration::from_millis(100).as_nanos() / once.as_nanos()).clamp(3, 100_000) as u32;
    let mut samples: Vec<Duration> = (0..9)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed() / reps
        })
        .collect();
    samples.sort();
    samples[4]
}

fn agents(rules: &Rules) -> Vec<AgentView> {
    (0..AGENTS)
        .map(|i| {
            let free = i == AGENTS / 2;
            let mut load = Load::default();
            if !free {
                load = Load {
                    phone: 1,
                    chat: 3,
                    email: 5,
                    api: 5,
                };
            }
            AgentView {
                id: format!("agent-{i:04}"),
                level: (i % 5 + 1) as u8,
                skills: ["billing", "complaints", "shipping"]
                    .iter()
                    .take(i % 4)
                    .map(|s| s.to_string())
                    .collect(),
                presence: Presence::Available,
                has_pending_offer: false,
                wrap_up_until_ms: None,
                load,
                capacity: rules.capacity,
                idle_since_ms: NOW - (i as i64 * 1000),
                last_offered_at_ms: 0,
            }
        })
        .collect()
}

fn waiting(n: usize) -> Vec<WaitingInteraction> {
    (0..n)
        .map(|i| WaitingInteraction {
            id: format!("i-{i:06}"),
            tier: [
                "high", "medium", "low", "low", "low", "medium", "low", "low", "low", "low",
            ][i % 10]
                .to_string(),
            channel: [ChannelKind::Email, ChannelKind::Chat, ChannelKind::Phone][i % 3],
            topic: [None, Some("billing"), Some("complaint"), Some("shipping")][i % 4]
                .map(str::to_string),
            owner: (i % 20 == 0).then(|| format!("agent-{:04}", (i * 7) % AGENTS)),
            enqueued_at_ms: NOW - ((i * 37) % 600_000) as i64,
            excluded: Vec::new(),
        })
        .collect()
}
