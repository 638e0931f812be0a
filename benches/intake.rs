//! Intake throughput: durable contacts per second through `POST /api/interactions` with
//! 64 concurrent clients, beside the raw rate of the same database inserts on the same
//! machine in the same run: one row per transaction (the weakest baseline), 512
//! single-row INSERTs per transaction, and one 512-row INSERT per transaction (the
//! strongest), each ratio given.
//!
//! The rate counts the accepted contacts (`201`); every POST that failed is counted, is
//! in the percentiles as a failure, and makes the run one that did not keep up.
//!
//!     cargo bench --bench intake                 # 10 s per measurement
//!     BENCH_SECS=30 BENCH_CLIENTS=256 cargo bench --bench intake
//!
//! The server runs in this process on its own 2-thread runtime; the load runs on another
//! thread, as a separate client would. Both share the machine's cores, as they would on
//! one box.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "common/latency.rs"]
mod latency;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/server.rs"]
mod server;
use latency::Latencies;
use raw::raw_inserts;

const TOKEN: &str = "bench-token";

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let duration = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!("# Intake benchmark ({secs} s per measurement, {clients} clients)\n");
    let raw_one = rt.block_on(raw_inserts(duration, 1, false));
    let raw_batch = rt.block_on(raw_inserts(duration, 512, false));
    let raw_multi = rt.block_on(raw_inserts(duration, 512, true));
    let http = intake_over_http(duration, clients);

    println!("| path | rate | p50 | p99 | ratio to raw 1 row/txn | ratio to raw 512 INSERTs/txn | ratio to one 512-row INSERT/txn |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| raw SQLite INSERT, 1 row per transaction | {raw_one:.0} rows/s | | | 1.00 | {:.2} | {:.3} |",
        raw_one / raw_batch,
        raw_one / raw_multi
    );
    println!(
        "| raw SQLite INSERT, 512 per transaction | {raw_batch:.0} rows/s | | | {:.2} | 1.00 | {:.3} |",
        raw_batch / raw_one,
        raw_batch / raw_multi
    );
    println!(
        "| raw SQLite, one 512-row INSERT per transaction | {raw_multi:.0} rows/s | | | {:.2} | {:.2} | 1.000 |",
        raw_multi / raw_one,
        raw_multi / raw_batch
    );
    println!(
        "| POST /api/interactions, durable, {clients} clients | {:.0} req/s | {} | {} | {:.2} | {:.2} | {:.3} |",
        http.rate,
        http.latencies.show(0.50, "failed"),
        http.latencies.show(0.99, "failed"),
        http.rate / raw_one,
        http.rate / raw_batch,
        http.rate / raw_multi
    );
    let (ok, failed) = (http.latencies.arrived(), http.latencies.missing());
    println!(
        "\n{} contacts sent: {ok} accepted, {failed} failed (in the percentiles as failures; the rate counts the accepted).",
        ok + failed
    );
    println!(
        "Each accepted contact writes four rows (the interaction and three history events): {:.0} rows/s, {:.2} of 512 INSERTs per transaction, {:.3} of one 512-row INSERT.",
        http.rate * 4.0,
        http.rate * 4.0 / raw_batch,
        http.rate * 4.0 / raw_multi
    );
    if failed == 0 {
        println!("Kept up: every contact sent was accepted.");
    } else {
        println!(
            "Did not keep up: {failed} of {} contacts failed.",
            ok + failed
        );
    }
}

struct HttpResult {
    /// Accepted contacts per second.
    rate: f64,
    /// POST → 201, the failed counted as missing.
    latencies: Latencies,
}

fn intake_over_http(duration: Duration, clients: usize) -> HttpResult {
    let server = server::start(TOKEN, |_, _| {});
    let base = server.base.clone();
    let (lat, errors, elapsed) = server::load(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        // Warm up: the customers exist before the measured run, as repeat customers do.
        let stop = Arc::new(AtomicBool::new(false));
        run_clients(
            &client,
            &base,
            clients,
            Duration::from_secs(1),
            stop.clone(),
            "warm",
        )
        .await;
        run_clients(&client, &base, clients, duration, stop, "run").await
    });
    server.stop();
    HttpResult {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        latencies: Latencies::new(lat.iter().map(|us| *us as f64 / 1000.0).collect(), errors),
    }
}

/// `clients` tasks posting contacts for `duration`; answers the latencies (µs) of the
/// accepted ones, the error count and the elapsed time.
async fn run_clients(
    client: &reqwest::Client,
    base: &str,
    clients: usize,
    duration: Duration,
    stop: Arc<AtomicBool>,
    phase: &'static str,
) -> (Vec<u32>, usize, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, stop) = (
            client.clone(),
            format!("{base}/api/interactions"),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut n = 0u64;
            while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({
                    "idempotency_key": format!("{phase}-{c}-{n}"),
                    "customer": { "email": format!("customer{}@example.com", (c as u64 * 7919 + n) % 5000) },
                    "topic": "billing",
                    "subject": "Where is my order?",
                    "body": "Hello, I ordered three weeks ago and nothing has arrived yet. Could you check, please?"
                });
                let t = Instant::now();
                match client.post(&url).bearer_auth(TOKEN).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    (all, errors, start.elapsed())
}
