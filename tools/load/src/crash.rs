//! The crash test: faults under load — the server killed with SIGKILL and started again
//! on the same data, or its database restarted — and afterwards the check that every
//! contact any channel acknowledged is there exactly once.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::Server;
use crate::tally::Shared;
use crate::Args;

/// The faults of one run and how many of each happened.
#[derive(Default)]
pub struct Faults {
    /// SIGKILLs followed by a restart.
    pub kills: Arc<AtomicU64>,
    /// Database restarts whose command succeeded.
    pub restarts: Arc<AtomicU64>,
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
                    if tokio::task::spawn_blocking(move || s.crash_and_restart())
                        .await
                        .is_ok()
                    {
                        kills.fetch_add(1, Ordering::SeqCst);
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
/// there, and its customer (one per contact) has exactly one interaction. Answers
/// whether nothing was lost or duplicated.
pub async fn verify(server: &Server, client: &reqwest::Client, tally: &Shared, kills: u64) -> bool {
    let accepted = tally.lock().unwrap().all_accepted();
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
            server.base, a.channel
        );
        if get(path).await.0 != 200 {
            lost.push(a.key.clone());
            continue;
        }
        present += 1;
        let (_, c) = get(format!("{}/api/customers?{}", server.base, a.customer)).await;
        let id = c["id"].as_str().unwrap_or_default();
        let (_, h) = get(format!(
            "{}/api/customers/{id}/history?limit=500",
            server.base
        ))
        .await;
        let received = h["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter(|e| e["kind"] == "interaction_received")
                    .count()
            })
            .unwrap_or(0);
        if received != 1 {
            duplicated.push((a.key.clone(), received));
        }
    }
    println!("\n## Crash test\n");
    println!("| kills | acknowledged | present | duplicated | lost |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {kills} | {} | {present} | {} | {} |",
        accepted.len(),
        duplicated.len(),
        lost.len()
    );
    if !lost.is_empty() || !duplicated.is_empty() {
        eprintln!("lost: {lost:?}\nduplicated: {duplicated:?}");
        return false;
    }
    true
}
