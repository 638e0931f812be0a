//! The replay simulator: a window of recorded history — the contacts that arrived, their
//! tiers, topics and handling times, and the agents on duty — replayed through the real
//! routing policy ([`crate::routing::index::route`]) in simulated time, under the active
//! rules and under a candidate, so an admin sees what a change would have done before
//! making it.
//!
//! - [`engine`]: the discrete-event replay (pure, no I/O);
//! - [`figures`]: service level, waits, abandonment and occupancy from its outcomes;
//! - [`record`]: the window read from the store;
//! - [`workload`]: a synthetic workload (the field's standard case) to replay instead.

pub mod engine;
pub mod figures;
pub mod record;
pub mod workload;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::RoutingSettings;
use crate::routing::rules::{Order, Rules, TierRouting, MAX_SECS};
use crate::store::{rfc3339, Store};
use engine::{Scenario, SimError};
use figures::Report;

/// What to replay.
#[derive(Debug, Clone)]
pub struct Request {
    /// The window's start (ms).
    pub from_ms: i64,
    /// The window's end (ms).
    pub to_ms: i64,
    /// The rule set to try, beside the active one.
    pub candidate: Option<Rules>,
    /// Target wait per tier (seconds) for the service level; by default each tier's
    /// target in the active rules (`target_secs`, or `max_wait_secs` under the head-start
    /// order). The same targets judge every rule set.
    pub targets_secs: BTreeMap<String, u64>,
}

/// The rules in force, and their version.
#[derive(Debug, Clone)]
pub struct Active {
    /// The rules.
    pub rules: Rules,
    /// Their version.
    pub version: i64,
}

impl Active {
    /// The newest stored version.
    pub async fn latest(store: &Store, tiers: &[String]) -> anyhow::Result<Active> {
        let mut conn = store.pool().acquire().await?;
        let v = crate::store::rules::latest(&mut conn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no routing rules are stored yet"))?;
        let (rules, _) = Rules::check(&v.document, "the active rules", tiers)
            .map_err(|r| anyhow::anyhow!("the active rules do not validate: {:?}", r.errors))?;
        Ok(Active {
            rules,
            version: v.version,
        })
    }
}

/// Why a simulation could not be run.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The window is not one (`field` names the bound at fault).
    #[error("{field}: {message}")]
    Window {
        /// `from` or `to`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No contact arrived in it.
    #[error("no contacts arrived between {0} and {1}; choose a window with recorded contacts")]
    Empty(String, String),
    /// It holds more contacts than one simulation replays.
    #[error("the window holds more than {0} contacts; replay a shorter one")]
    TooMany(usize),
    /// It ran too long.
    #[error(transparent)]
    TimeLimit(#[from] SimError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// The replay itself failed (a fault of ours).
    #[error("the simulation failed: {0}")]
    Failed(String),
}

/// The window replayed, and how it was bounded.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Its start.
    pub from: String,
    /// Its end: no contact after it.
    pub to: String,
    /// Where the replay stopped: contacts still waiting then count as unanswered.
    pub horizon: String,
}

/// A simulation's answer: what happened live, the active rules replayed, and the
/// candidate replayed, over the same window and judged by the same targets.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The window.
    pub window: Window,
    /// Contacts that arrived in it.
    pub contacts: usize,
    /// Agents on duty at any time in it.
    pub agents_on_duty: usize,
    /// The service-level target per tier, in seconds.
    pub targets_secs: BTreeMap<String, u64>,
    /// What happened live.
    pub recorded: Report,
    /// The active rules replayed.
    pub active: Report,
    /// The active rules' version.
    pub active_version: i64,
    /// The candidate replayed, when one was given.
    pub candidate: Option<Report>,
    /// Plain first-come-first-served replayed over the same window: the yardstick (the
    /// active rules' capacity and offers, every tier alike, one ring of everyone).
    pub fifo: Report,
    /// Wall time the replays took (ms).
    pub elapsed_ms: u64,
}

/// Runs a simulation: checks the window against the limits, reads it, replays it under
/// the active rules and the candidate on a thread of its own at a lower priority (never
/// on the threads that serve live traffic), and compares. `now_ms` bounds the window's end.
pub async fn simulate(
    store: &Store,
    limits: &RoutingSettings,
    active: Active,
    request: Request,
    now_ms: i64,
) -> Result<Comparison, Refused> {
    let (from, to) = (request.from_ms, request.to_ms.min(now_ms));
    if from >= to {
        return Err(Refused::Window {
            field: "to",
            message: "the window must end after it starts, and start in the past".into(),
        });
    }
    let longest = limits.simulation_max_window_hours as i64 * 3600 * 1000;
    if to - from > longest {
        return Err(Refused::Window {
            field: "to",
            message: format!(
                "the window is {:.1} hours; the longest replayed is {} hours",
                (to - from) as f64 / 3_600_000.0,
                limits.simulation_max_window_hours
            ),
        });
    }
    // Contacts still waiting at the window's end are followed for as long again (at
    // most until now), so a late arrival's wait is measured, not cut off.
    let horizon = (to + (to - from)).min(now_ms.max(to));
    let mut conn = store.pool().acquire().await?;
    let scenario = match record::load(&mut conn, from, to, horizon, limits.simulation_max_contacts)
        .await?
    {
        record::Loaded::Scenario(s) => s,
        record::Loaded::TooMany => return Err(Refused::TooMany(limits.simulation_max_contacts)),
    };
    drop(conn);
    if !scenario.arrivals.iter().any(|a| a.counted) {
        return Err(Refused::Empty(rfc3339(from), rfc3339(to)));
    }
    let mut targets_secs = service_targets(&active.rules);
    targets_secs.extend(request.targets_secs);
    let agents_on_duty = on_duty(&scenario);
    let limit = Duration::from_secs(limits.simulation_time_limit_secs);
    let targets = targets_secs.clone();
    let (recorded, active_report, candidate, fifo, elapsed) = in_background(move || {
        let started = Instant::now();
        let targets_ms: BTreeMap<String, i64> = targets
            .iter()
            .map(|(t, s)| (t.clone(), *s as i64 * 1000))
            .collect();
        let judge = |rules: &Rules| -> Result<Report, SimError> {
            let run = replay_within(&scenario, rules, started, limit)?;
            Ok(figures::estimate(&scenario.arrivals, &run, &targets_ms))
        };
        let active_report = judge(&active.rules)?;
        let candidate = request.candidate.as_ref().map(judge).transpose()?;
        let fifo = judge(&fifo_rules(&active.rules))?;
        let recorded = figures::recorded(&scenario.arrivals, &targets_ms);
        Ok::<_, SimError>((recorded, active_report, candidate, fifo, started.elapsed()))
    })
    .await??;
    Ok(Comparison {
        window: Window {
            from: rfc3339(from),
            to: rfc3339(to),
            horizon: rfc3339(horizon),
        },
        contacts: recorded.overall.contacts,
        agents_on_duty,
        targets_secs,
        recorded,
        active: active_report,
        active_version: active.version,
        candidate,
        fifo,
        elapsed_ms: elapsed.as_millis() as u64,
    })
}

/// The rules of plain first-come-first-served beside `rules`: the same capacity, offers
/// and selection, but every tier ordered alike, purely by arrival, and one ring of
/// everyone. The yardstick a rule set is judged against.
pub fn fifo_rules(rules: &Rules) -> Rules {
    let mut fifo = rules.clone();
    // The head-start order with nothing added and nothing overdue is arrival order.
    fifo.order = Order::HeadStart;
    for t in fifo.tiers.values_mut() {
        *t = TierRouting {
            head_start_secs: Some(0),
            max_wait_secs: Some(MAX_SECS),
            ..TierRouting::default()
        };
    }
    fifo.rings.clear();
    fifo
}

/// Each tier's service-level target in `rules`, in seconds (tiers without one left out).
pub fn service_targets(rules: &Rules) -> BTreeMap<String, u64> {
    rules
        .tiers
        .keys()
        .filter_map(|t| Some((t.clone(), rules.service_target_secs(t)?)))
        .collect()
}

/// Replays `rules` in what is left of `limit` since `started` (the active rules and the
/// candidate and FIFO share one limit). Past it, the error states the configured limit, not what
/// was left of it when this replay began.
pub(crate) fn replay_within(
    scenario: &Scenario,
    rules: &Rules,
    started: Instant,
    limit: Duration,
) -> Result<engine::Run, SimError> {
    engine::replay(scenario, rules, limit.saturating_sub(started.elapsed()))
        .map_err(|SimError::TimeLimit(_)| SimError::TimeLimit(limit.as_secs()))
}

/// Runs `f` on a thread of its own at a lower scheduling priority, so that on a busy
/// machine the threads serving live traffic (the router above all) win the cores.
async fn in_background<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refused> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("simulation".into())
        .spawn(move || {
            lower_priority();
            // The caller that went away gets nothing, and needs nothing.
            let _ = tx.send(f());
        })
        .map_err(|e| Refused::Failed(format!("no thread for it: {e}")))?;
    rx.await
        .map_err(|_| Refused::Failed("its thread stopped short".into()))
}

/// Nice 10 for the calling thread (Linux keeps a nice value per thread).
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority takes plain integers and only changes the scheduling priority
    // of the thread named, here the calling one.
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
    if done != 0 {
        tracing::debug!("Could not lower the simulation thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Agents available or away at any time of the replay.
fn on_duty(s: &Scenario) -> usize {
    let mut seen = vec![false; s.agents.len()];
    for p in &s.presence {
        if p.presence != crate::routing::policy::Presence::Offline {
            if let Some(x) = seen.get_mut(p.agent) {
                *x = true;
            }
        }
    }
    seen.into_iter().filter(|x| *x).count()
}

/// The comparison as a table for a terminal.
pub fn table(c: &Comparison) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Window {} to {} (followed until {}): {} contacts, {} agents on duty; replayed in {} ms.",
        c.window.from, c.window.to, c.window.horizon, c.contacts, c.agents_on_duty, c.elapsed_ms
    );
    let targets: Vec<String> = c
        .targets_secs
        .iter()
        .map(|(t, s)| format!("{t} {s} s"))
        .collect();
    let _ = writeln!(
        out,
        "Service level: answered within {}.",
        targets.join(", ")
    );
    let _ = writeln!(
        out,
        "\n{:<22} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "contacts", "service", "mean wait", "p95 wait", "longest", "abandoned", "occupancy"
    );
    let active = format!("active (v{})", c.active_version);
    let mut columns: Vec<(&str, &Report)> = vec![("recorded", &c.recorded), (&active, &c.active)];
    if let Some(cand) = &c.candidate {
        columns.push(("candidate", cand));
    }
    columns.push(("FIFO", &c.fifo));
    // Occupancy is the whole centre's: shown once, with all contacts.
    let mut group = |title: String, pick: &dyn Fn(&Report) -> Option<&figures::Figures>| {
        let whole = title == "all contacts";
        let _ = writeln!(out, "{title}");
        for (name, r) in &columns {
            let Some(f) = pick(r) else { continue };
            let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
            let _ = writeln!(
                out,
                "  {:<20} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                f.contacts,
                f.service_level
                    .map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
                secs(f.mean_wait_secs),
                secs(f.p95_wait_secs),
                secs(f.longest_wait_secs),
                format!("{:.1}", f.abandoned),
                match (whole, r.occupancy) {
                    (false, _) => String::new(),
                    (true, None) => "-".into(),
                    (true, Some(v)) => format!("{:.1}%", v * 100.0),
                },
            );
        }
    };
    group("all contacts".into(), &|r| Some(&r.overall));
    for tier in c.recorded.by_tier.keys() {
        group(format!("tier {tier}"), &|r| r.by_tier.get(tier));
    }
    for topic in c.recorded.by_topic.keys() {
        group(format!("topic {topic}"), &|r| r.by_topic.get(topic));
    }
    let _ = writeln!(
        out,
        "\nAgent time idle while a contact waited (held by its rings): {}.",
        columns
            .iter()
            .filter_map(|(name, r)| {
                r.idle_while_waiting_secs
                    .map(|s| format!("{name} {:.1} agent-minutes", s / 60.0))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}
