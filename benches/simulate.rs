//! The replay simulator: contacts replayed per second of wall time, and how much faster
//! than real time a window replays, beside the time of one routing decision measured in
//! the same run (each replayed contact costs a few decisions: its own, and the passes
//! that find nobody free).
//!
//!     cargo bench --bench simulate
//!
//! The scenarios are synthetic but shaped like a busy centre: agents of levels 1–4 with
//! one or two of three skills, everyone on duty for the whole window; calls, chats and
//! emails arriving at random (Poisson) at about 85% of what the agents can handle, 20%
//! high tier, 30% medium, 50% low, each with a topic; handling times exponential around
//! four minutes; 3% of customers give up after a random wait. The shipped rules (rings,
//! targets within the fair wait, wrap-up) decide.
//!
//! Like is compared with like: the replay's wall time is the median of five runs after a
//! warm-up (the fastest and slowest beside it), and the decision's time is the median of
//! nine batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchboard::routing::index::{self, WaitingIndex};
use switchboard::routing::policy::{AgentView, Load, Presence};
use switchboard::routing::rules::{Rules, DEFAULT_TOML};
use switchboard::simulation::engine::{self, Arrival, Outcome, PresenceChange, Scenario, SimAgent};
use switchboard::simulation::figures;
use switchboard::store::agents::CapacityOverride;
use switchboard_contract::ChannelKind;

const HOUR: i64 = 3_600_000;
/// Arrivals per agent per mean handling time. Agents hold up to three chats or five
/// emails at once, so this keeps most of them busy and a queue forming at peaks.
const LOAD: f64 = 1.45;
const SKILLS: [&str; 3] = ["billing", "tech", "sales"];

/// A small deterministic generator (xorshift64*), so every run replays the same centre.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

fn scenario(agents: usize, hours: i64, seed: u64) -> Scenario {
    let mut rng = Rng(seed);
    let handling_mean = 240_000.0;

    let per_ms = LOAD * agents as f64 / handling_mean;
    let to = hours * HOUR;
    let mut arrivals = Vec::new();
    let mut t = 0.0;
    loop {
        t += rng.exp(1.0 / per_ms);
        if t as i64 >= to {
            break;
        }
        let tier = match rng.unit() {
            x if x < 0.2 => "high",
            x if x < 0.5 => "medium",
            _ => "low",
        };
        let channel = match rng.unit() {
            x if x < 0.6 => ChannelKind::Phone,
            x if x < 0.9 => ChannelKind::Chat,
            _ => ChannelKind::Email,
        };
        let patience = (rng.unit() < 0.03).then(|| rng.exp(60_000.0) as i64);
        arrivals.push(Arrival {
            id: format!("c{}", arrivals.len()),
            tier: tier.into(),
            channel,
            topic: Some(SKILLS[(rng.next() % 3) as usize].into()),
            owner: None,
            at_ms: t as i64,
            not_before_ms: None,
            counted: true,
            handling_ms: Some(rng.exp(handling_mean) as i64),
            accept_ms: 1500,
            patience_ms: patience,
            recorded: patience.map_or(Outcome::Answered(0), Outcome::Abandoned),
        });
    }
    let agents: Vec<SimAgent> = (0..agents)
        .map(|i| SimAgent {
            id: format!("a{i}"),
            level: (i % 4 + 1) as u8,
            skills: vec![SKILLS[i % 3].to_string(), SKILLS[(i / 3) % 3].to_string()],
            capacity: CapacityOverride::default(),
        })
        .collect();
    let presence = (0..agents.len())
        .map(|agent| PresenceChange {
            at_ms: 0,
            agent,
            presence: Presence::Available,
        })
        .collect();
    Scenario {
        from_ms: 0,
        to_ms: to,
        horizon_ms: to + HOUR,
        arrivals,
        agents,
        presence,
        held: Vec::new(),
        handling_in_order: Vec::new(),
    }
}

/// One routing decision over the scenario's agents (one free) and 1,000 waiting: the
/// same call the replay makes at every instant. The median of nine batches' means, as
/// the replay's time is the median of its runs.
fn one_decision(s: &Scenario, rules: &Rules) -> Duration {
    let mut idx = WaitingIndex::default();
    for a in s.arrivals.iter().take(1000) {
        idx.insert(switchboard::routing::policy::WaitingInteraction {
            id: a.id.clone(),
            tier: a.tier.clone(),
            channel: a.channel,
            topic: a.topic.clone(),
            owner: None,
            enqueued_at_ms: a.at_ms,
            excluded: Vec::new(),
        });
    }
    let now = s.arrivals[999].at_ms + 60_000;
    let views: Vec<AgentView> = s
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| AgentView {
            id: a.id.clone(),
            level: a.level,
            skills: a.skills.clone(),
            presence: Presence::Available,
            has_pending_offer: false,
            wrap_up_until_ms: None,
            load: if i == 0 {
                Load::default()
            } else {
                Load {
                    phone: 1,
                    chat: 3,
                    email: 5,
                    api: 5,
                }
            },
            capacity: rules.capacity,
            idle_since_ms: 0,
            last_offered_at_ms: 0,
        })
        .collect();
    median((0..9).map(|_| {
        let calls = 250;
        let start = Instant::now();
        for _ in 0..calls {
            black_box(index::route(&idx, &views, rules, now));
        }
        start.elapsed() / calls
    }))
}

/// The median of an odd number of timings.
fn median(times: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = times.collect();
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
    println!("# Replay simulator benchmark (the shipped rules)\n");
    println!("| centre | window | contacts | replay wall time, median of 5 (fastest–slowest) | contacts/s | faster than real time | one decision, median (same run) | replay per contact / one decision | service level (all with a target / high tier) | occupancy |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (agents, hours) in [(200usize, 1i64), (200, 8), (1000, 1)] {
        let s = scenario(agents, hours, 0x5eed + agents as u64);
        let decision = one_decision(&s, &rules);
        // One warm-up, then the median of five runs; the decision above is a median too.
        engine::replay(&s, &rules, Duration::from_secs(600)).unwrap();
        let mut times = Vec::new();
        let mut run = None;
        for _ in 0..5 {
            let start = Instant::now();
            let r = engine::replay(&s, &rules, Duration::from_secs(600)).unwrap();
            times.push(start.elapsed());
            run = Some(r);
        }
        let run = run.unwrap();
        let (fastest, slowest) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        let wall = median(times.into_iter());
        let targets = switchboard::simulation::service_targets(&rules)
            .into_iter()
            .map(|(t, secs)| (t, secs as i64 * 1000))
            .collect();
        let report = figures::estimate(&s.arrivals, &run, &targets);
        let n = s.arrivals.len();
        let per_contact = wall.as_secs_f64() / n as f64;
        println!(
            "| {agents} agents | {hours} h | {n} | {:.0} ms ({:.0}–{:.0}) | {:.0} | {:.0}× | {:.1} µs | {:.1} | {:.1}% / {:.1}% | {:.0}% |",
            wall.as_secs_f64() * 1000.0,
            fastest.as_secs_f64() * 1000.0,
            slowest.as_secs_f64() * 1000.0,
            n as f64 / wall.as_secs_f64(),
            (hours * HOUR) as f64 / 1000.0 / wall.as_secs_f64(),
            decision.as_secs_f64() * 1e6,
            per_contact / decision.as_secs_f64(),
            report.overall.service_level.unwrap_or(0.0) * 100.0,
            report.by_tier["high"].service_level.unwrap_or(0.0) * 100.0,
            report.occupancy.unwrap_or(0.0) * 100.0,
        );
    }
}
