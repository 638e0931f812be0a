//! Phone call events per second through the native webhook, with their latency, beside a
//! bare endpoint of the same server stack (`GET /healthz`: the same listener, router,
//! middleware and client) measured in the same run.
//!
//!     cargo bench --bench phone_events               # 10 s per measurement, 64 clients
//!     BENCH_SECS=30 BENCH_CLIENTS=128 cargo bench --bench phone_events
//!
//! Each client plays a phone system: a call rings (a signed `ringing` event: the caller
//! found or created by number, the interaction committed and queued, the event recorded
//! once in the history) and then the caller hangs up while waiting (a signed `ended`
//! event: the interaction abandoned, the missed call logged). No agent is logged in and
//! the answer window is 0, so each answer comes as soon as the work is durable. Callers
//! come from 5,000 numbers, as repeat customers do.
//!
//! The rate counts the events answered 2xx; every request that failed is counted, is in
//! the percentiles as a failure, and makes the run one that did not keep up.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchboard_phone::signature::native_sign;

const SECRET: &str = "bench-secret";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[path = "common/latency.rs"]
mod latency;
#[path = "common/server.rs"]
mod server;

use latency::Latencies;

fn main() {
    let secs = env("BENCH_SECS", 10);
    let clients = env("BENCH_CLIENTS", 64) as usize;
    let duration = Duration::from_secs(secs);
    let server = server::start("bench-token", |s, _| {
        s.phone.secret = SECRET.into();
        s.phone.answer_window_ms = 0;
    });
    let base = server.base.clone();
    let (bare, calls) = server::load(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        // Warm-up: the callers exist before the measured run.
        run(
            &client,
            &base,
            clients,
            Duration::from_secs(2),
            Kind::Calls,
            "warm",
        )
        .await;
        let bare = run(&client, &base, clients, duration, Kind::Bare, "bare").await;
        let calls = run(&client, &base, clients, duration, Kind::Calls, "run").await;
        (bare, calls)
    });
    server.stop();

    println!("# Phone webhook benchmark ({secs} s per measurement, {clients} clients)\n");
    println!("| path | events/s | p50 | p99 | ratio to the bare endpoint | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, r: &Run| {
        let l = r.latencies(None);
        println!(
            "| {name} | {:.0} | {} | {} | {:.3} | {} |",
            r.rate(),
            l.show(0.50, "failed"),
            l.show(0.99, "failed"),
            r.rate() / bare.rate(),
            r.errors
        );
    };
    row("GET /healthz (bare endpoint, same stack)", &bare);
    row("signed call events (ringing + ended), durable", &calls);
    println!(
        "\n{} events answered 2xx ({} calls), {} failed (in the percentiles as failures; the rate counts the answered); ringing p99 {}, ended p99 {}",
        calls.latencies.len(),
        calls.latencies.len() / 2,
        calls.errors,
        calls.latencies(Some(0)).show(0.99, "failed"),
        calls.latencies(Some(1)).show(0.99, "failed"),
    );
    if calls.errors + bare.errors == 0 {
        println!("Kept up: every request sent was answered 2xx.");
    } else {
        println!(
            "Did not keep up: {} call events and {} bare requests failed.",
            calls.errors, bare.errors
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bare,
    Calls,
}

struct Run {
    /// (event index within the call: 0 ringing, 1 ended; latency µs)
    latencies: Vec<(u8, u32)>,
    errors: usize,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    /// The latencies of one kind of event (0 ringing, 1 ended) or all, failures counted
    /// as missing (a failed call event is not known to be either, so it counts for both).
    fn latencies(&self, which: Option<u8>) -> Latencies {
        Latencies::new(
            self.latencies
                .iter()
                .filter(|(k, _)| which.is_none_or(|w| w == *k))
                .map(|(_, us)| *us as f64 / 1000.0)
                .collect(),
            self.errors,
        )
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn run(
    client: &reqwest::Client,
    base: &str,
    clients: usize,
    duration: Duration,
    kind: Kind,
    phase: &'static str,
) -> Run {
    let start = Instant::now();
    let base: Arc<str> = base.into();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut n = 0u64;
            while start.elapsed() < duration {
                n += 1;
                if kind == Kind::Bare {
                    let t = Instant::now();
                    match client.get(format!("{base}/healthz")).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            lat.push((0, t.elapsed().as_micros() as u32));
                        }
                        _ => errors += 1,
                    }
                    continue;
                }
                let call = format!("{phase}-{c}-{n}");
                let from = format!("+4930{:07}", (c as u64 * 7919 + n) % 5000);
                let events = [
                    json!({ "event": "ringing", "call_id": call, "from": from, "to": "+4930999000", "topic": "billing" }),
                    json!({ "event": "ended", "call_id": call, "cause": "cancel" }),
                ];
                for (i, e) in events.iter().enumerate() {
                    let body = e.to_string();
                    let ts = unix_now();
                    let t = Instant::now();
                    let sent = client
                        .post(format!("{base}/channels/phone/events"))
                        .header("content-type", "application/json")
                        .header("x-switchboard-timestamp", ts.to_string())
                        .header("x-switchboard-signature", native_sign(SECRET, ts, body.as_bytes()))
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            lat.push((i as u8, t.elapsed().as_micros() as u32));
                        }
                        _ => errors += 1,
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    Run {
        latencies,
        errors,
        elapsed: start.elapsed(),
    }
}
