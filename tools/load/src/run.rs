//! One run: agents log in, contacts go out at the chosen rate and mix for the run's
//! length (whatever the answers do: an open loop, as customers arrive), then the run
//! waits until the work is done — every contact answered and, with agents, every
//! accepted one offered and completed — or the drain time is over. The server's CPU is
//! read when the run starts sending and again when its work is done, never before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::server::{Server, Usage};
use crate::tally::{Shared, Wait, CHANNELS};
use crate::{agents, channels, Args};

/// What one run measured of the server.
pub struct Run {
    /// When the first contact was sent.
    pub started: Instant,
    /// Seconds contacts were being sent.
    pub elapsed: f64,
    /// Seconds from the last contact sent to the work done (or the drain's end).
    pub drained: f64,
    /// Whether the work was done before the drain time ran out.
    pub done: bool,
    /// What the server used from the first contact sent to the work done, and its
    /// resident memory then (a server we started and did not restart).
    pub server: Option<Usage>,
    /// CPU seconds this generator used over the same span: on one machine it shares the
    /// cores with the server.
    pub generator_cpu_secs: Option<f64>,
}

/// Sends contacts at `args.rate` and `args.mix` for `args.secs` with `agents` agents
/// working them, waits for the work as `wait` says (at most `args.drain_secs`), then
/// stops the agents and visitors. `faults` starts the crash test's faults when the
/// first contact goes out.
pub async fn generate(
    server: &Arc<Server>,
    client: &reqwest::Client,
    tally: &Shared,
    args: &Args,
    agents: usize,
    wait: Wait,
    faults: impl FnOnce(Instant),
) -> Run {
    let shares = shares(&args.mix);
    let total: f64 = shares.iter().sum();
    let (stop_tx, stop) = watch::channel(false);
    let mut workers = Vec::new();
    for n in 0..agents {
        let me = agents::create(server, client, n).await;
        let hold = Duration::from_secs_f64(args.handle_secs);
        workers.push(tokio::spawn(agents::agent(
            server.clone(),
            me,
            n,
            tally.clone(),
            hold,
            stop.clone(),
        )));
    }
    // Time for the desktops to log in; a contact that comes first waits for one. On
    // several nodes, which one leads (whose desktops' frames are not relayed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    if server.nodes.len() > 1 {
        let until = Instant::now() + Duration::from_secs(30);
        while server.leader(client).await.is_none() {
            assert!(
                Instant::now() < until,
                "no node leads the routing after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let before = server.usage();
    let generator_before = crate::server::usage(std::process::id());
    let started = Instant::now();
    faults(started);
    let run = Duration::from_secs(args.secs);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = Vec::new();
    let mut n = 0u64;
    let mut next = Instant::now();
    let mut credit = [0.0f64; 3];
    while started.elapsed() < run {
        n += 1;
        // Deal contacts to channels by their shares, evenly.
        for (i, s) in shares.iter().enumerate() {
            credit[i] += s / total;
        }
        let pick = (0..3)
            .max_by(|a, b| credit[*a].total_cmp(&credit[*b]))
            .unwrap();
        credit[pick] -= 1.0;
        let (server, client, tally, stop, args) = (
            server.clone(),
            client.clone(),
            tally.clone(),
            stop.clone(),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            match CHANNELS[pick] {
                "phone" => {
                    // Every so many calls come from a known high-tier customer.
                    let high = (args.highs > 0
                        && (n * 7919) % 1000 < (args.high_share * 1000.0) as u64)
                        .then_some(args.highs);
                    channels::phone_call(&server, &client, &tally, n, high).await
                }
                "email" => channels::email(&server, &tally, n).await,
                _ => channels::chat(&server, &tally, n, stop).await,
            }
        }));
        next += interval;
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent_all = Instant::now();
    let deadline = sent_all + Duration::from_secs(args.drain_secs);
    let mut done = tally.lock().unwrap().done(wait);
    while !done && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        done = tally.lock().unwrap().done(wait);
    }
    let drained = sent_all.elapsed().as_secs_f64();
    // The work is done (or the drain is over): now the server's CPU covers all of it.
    let after = server.usage();
    let generator_after = crate::server::usage(std::process::id());
    // Every agent and visitor holds a receiver: the send reaches them all.
    let _ = stop_tx.send(true);
    for t in tasks.into_iter().chain(workers) {
        // A task that panicked has already said why on stderr; its contact was counted
        // as sent and never answered, which the report shows.
        let _ = t.await;
    }
    Run {
        started,
        elapsed,
        drained,
        done,
        server: before.zip(after).map(|(b, a)| Usage {
            cpu_secs: a.cpu_secs - b.cpu_secs,
            rss_kib: a.rss_kib,
        }),
        generator_cpu_secs: generator_before
            .zip(generator_after)
            .map(|(b, a)| a.cpu_secs - b.cpu_secs),
    }
}

/// Creates the `args.highs` known high-tier customers the calls of `--high-share` come
/// from (each by its phone number), in batches.
pub async fn high_customers(server: &Server, client: &reqwest::Client, highs: u64) {
    let mut n = 0;
    while n < highs {
        let batch: Vec<_> = (n..(n + 32).min(highs))
            .map(|i| {
                let client = client.clone();
                let url = format!("{}/api/customers", server.base());
                let token = server.token.clone();
                async move {
                    let r = client
                        .post(url)
                        .bearer_auth(token)
                        .json(&serde_json::json!({ "name": format!("High {i}"), "tier": "high",
                            "identities": [{ "kind": "phone", "value": channels::high_number(i) }] }))
                        .send()
                        .await
                        .expect("the server creates customers");
                    assert!(r.status().is_success(), "creating a high-tier customer: {} {}", r.status(), r.text().await.unwrap_or_default());
                }
            })
            .collect();
        futures_util::future::join_all(batch).await;
        n += 32;
    }
}

/// The shares of phone, email and chat asked for by `--mix` (`phone=40,email=30,chat=30`).
pub fn shares(mix: &str) -> Vec<f64> {
    CHANNELS
        .iter()
        .map(|c| {
            mix.split(',')
                .find_map(|p| {
                    p.trim()
                        .strip_prefix(&format!("{c}="))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0.0)
        })
        .collect()
}
