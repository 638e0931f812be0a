//! The crash test: faults under load — the server killed with SIGKILL and started again
//! on the same data, the leader of several nodes killed (and started again as a
//! follower), or the database restarted — and afterwards the check that every contact
//! any channel acknowledged is there exactly once and was never held by two agents, with
//! the time each leader's death cost.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::Server;
use crate::tally::Shared;
use crate::Args;

/// A leader killed: when, and when another node was first seen leading (`None` when
/// none did within 30 s).
pub type LeaderKill = (Instant, Option<Instant>);

/// The faults of one run and how many of each happened.
#[derive(Default)]
pub struct Faults {
    /// SIGKILLs followed by a restart.
    pub kills: Arc<AtomicU64>,
    /// Database restarts whose command succeeded.
    pub restarts: Arc<AtomicU64>,
    /// Each leader killed.
    pub leader_kills: Arc<Mutex<Vec<LeaderKill>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Faults {
    /// Starts the faults `args` asks for, from `started` (the first contact sent), each
    /// at its interval and none in the run's last second.
    pub fn start(&mut self, args: &Args, server: &Arc<Server>, started: Instant) {
        let run_for = Duration::from_secs(args.secs);
        if let Some(every) = args.kill_every {
            let (server, kills) = (server.clone(), self.kills.clone());
            self.tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(every)).await;
                    if started.elapsed() + Duration::from_secs(1) >= run_for {
                        return;
                    }
                    let s = server.clone();
                    let restarted = tokio::task::spawn_blocking(move || {
                        for node in &s.nodes {
                            node.kill();
                            node.restart();
                        }
                    });
                    if restarted.await.is_ok() {
                        kills.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        if let Some(every) = args.kill_leader_every {
            let (server, record) = (server.clone(), self.leader_kills.clone());
            self.tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    tokio::time::sleep(Duration::from_secs(every)).await;
                    if started.elapsed() + Duration::from_secs(1) >= run_for {
                        return;
                    }
                    let Some(lead) = server.leader(&client).await else {
                        continue;
                    };
                    let s = server.clone();
                    if tokio::task::spawn_blocking(move || s.nodes[lead].kill())
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    let killed = Instant::now();
                    let next = server
                        .new_leader(&client, lead, Duration::from_secs(30))
                        .await;
                    record.lock().unwrap().push((killed, next));
                    // The dead node comes back, as an orchestrator restarts it: a follower.
                    let s = server.clone();
                    if tokio::task::spawn_blocking(move || s.nodes[lead].restart())
                        .await
                        .is_err()
                    {
                        eprintln!("node {lead} could not be started again");
                    }
                }
            }));
        }
        if let (Some(cmd), Some(every)) = (args.restart_database.clone(), args.restart_every) {
            let restarts = self.restarts.clone();
            self.tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(every)).await;
                    if started.elapsed() + Duration::from_secs(1) >= run_for {
                        return;
                    }
                    let cmd = cmd.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        Command::new("sh").arg("-c").arg(&cmd).status()
                    })
                    .await;
                    if matches!(done, Ok(Ok(s)) if s.success()) {
                        restarts.fetch_add(1, Ordering::SeqCst);
                    } else {
                        eprintln!("the database restart command failed: {done:?}");
                    }
                }
            }));
        }
    }

    /// Ends the faults still pending (the run is over).
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// The crash test's verdict, printed as a table: every contact a channel acknowledged is
/// there, its customer (one per contact) has exactly one interaction, and no interaction
/// was assigned to two agents (as the desktops were told, and as its history says).
/// Answers whether nothing was lost, duplicated or double-assigned.
pub async fn verify(server: &Server, client: &reqwest::Client, tally: &Shared, kills: u64) -> bool {
    let accepted = tally.lock().unwrap().all_accepted();
    let mut double = tally.lock().unwrap().double_assigned();
    // Reads retried while the server answers 503 (a store coming back).
    let get = |path: String| {
        let (client, token) = (client.clone(), server.token.clone());
        async move {
            for _ in 0..100 {
                match client.get(&path).bearer_auth(&token).send().await {
                    Ok(r) if r.status().as_u16() != 503 => {
                        let status = r.status().as_u16();
                        return (status, r.json::<Value>().await.unwrap_or_default());
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            (0, Value::Null)
        }
    };
    let (mut present, mut lost, mut duplicated) = (0usize, Vec::new(), Vec::new());
    for a in &accepted {
        let encoded = a.key.replace(':', "%3A").replace('@', "%40");
        let path = format!(
            "{}/api/interactions?channel={}&key={encoded}",
            server.base(),
            a.channel
        );
        let (status, interaction) = get(path).await;
        if status != 200 {
            lost.push(a.key.clone());
            continue;
        }
        present += 1;
        let assignments = interaction["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter(|e| e["kind"] == "assigned")
                    .filter_map(|e| e["data"]["agent_id"].as_str())
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            })
            .unwrap_or(0);
        if assignments > 1 {
            double.push((a.key.clone(), assignments));
        }
        let (_, c) = get(format!("{}/api/customers?{}", server.base(), a.customer)).await;
        let id = c["id"].as_str().unwrap_or_default();
        let (_, h) = get(format!(
            "{}/api/customers/{id}/history?limit=500",
            server.base()
        ))
        .await;
        // Each of its interactions, received (or, a chat whose visitor had not written
        // yet when the server was killed, opened): one for one contact.
        let received = h["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter(|e| e["kind"] == "interaction_received" || e["kind"] == "opened")
                    .filter_map(|e| e["interaction_id"].as_str())
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            })
            .unwrap_or(0);
        if received != 1 {
            duplicated.push((a.key.clone(), received));
        }
    }
    println!("\n## Crash test\n");
    println!("| kills | acknowledged | present | duplicated | lost | double-assigned |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {kills} | {} | {present} | {} | {} | {} |",
        accepted.len(),
        duplicated.len(),
        lost.len(),
        double.len()
    );
    if !lost.is_empty() || !duplicated.is_empty() || !double.is_empty() {
        eprintln!("lost: {lost:?}\nduplicated: {duplicated:?}\ndouble-assigned: {double:?}");
        return false;
    }
    true
}

/// The failover table of the leader kills: for each, how long until another node said
/// it leads and until a contact sent after the kill was offered (routing again); then
/// p50 and max of each. Answers whether every kill was followed by both.
pub fn failovers(kills: &[LeaderKill], tally: &Shared) -> bool {
    let t = tally.lock().unwrap();
    let mut led = Vec::new();
    let mut routed = Vec::new();
    println!("\n## Leader kills\n");
    println!("| kill | another node leads after | routing again after |");
    println!("|---:|---:|---:|");
    let secs = |d: Option<Duration>| {
        d.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    for (i, (at, next)) in kills.iter().enumerate() {
        let lead = next.map(|n| n.saturating_duration_since(*at));
        let again = t.routing_again(*at);
        println!("| {} | {} | {} |", i + 1, secs(lead), secs(again));
        led.extend(lead);
        routed.extend(again);
    }
    let all = led.len() == kills.len() && routed.len() == kills.len();
    let stat = |v: &mut Vec<Duration>| {
        v.sort();
        match (v.get(v.len().saturating_sub(1) / 2), v.last()) {
            (Some(p50), Some(max)) => format!(
                "p50 {:.2} s, max {:.2} s",
                p50.as_secs_f64(),
                max.as_secs_f64()
            ),
            _ => "none".to_string(),
        }
    };
    println!(
        "\nfailover over {} leader kills: a new leader {}; routing again {}{}",
        kills.len(),
        stat(&mut led),
        stat(&mut routed),
        if all {
            ""
        } else {
            " (some kills were never followed by both: see the table)"
        }
    );
    all
}
