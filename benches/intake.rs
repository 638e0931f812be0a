//! Intake throughput: durable contacts per second through `POST /api/interactions` with
//! 64 concurrent clients, beside the raw rate of the same database inserts on the same
//! machine in the same run.
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

#[path = "common/raw.rs"]
mod raw;
#[path = "common/server.rs"]
mod server;
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

    println!("| path | rate | p50 | p99 | ratio to raw 1 row/txn | ratio to raw 512 rows/txn |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| raw SQLite INSERT, 1 row per transaction | {raw_one:.0} rows/s | | | 1.00 | {:.2} |",
        raw_one / raw_batch
    );
    println!("| raw SQLite INSERT, 512 rows per transaction | {raw_batch:.0} rows/s | | | {:.2} | 1.00 |", raw_batch / raw_one);
    println!(
        "| raw SQLite, one 512-row INSERT per transaction | {raw_multi:.0} rows/s | | | {:.2} | {:.2} |",
        raw_multi / raw_one,
        raw_multi / raw_batch
    );
    println!(
        "| POST /api/interactions, durable, {clients} clients | {:.0} req/s | {:.2} ms | {:.2} ms | {:.2} | {:.2} |",
        http.rate,
        http.p50_ms,
        http.p99_ms,
        http.rate / raw_one,
        http.rate / raw_batch
    );
    println!("\n{} contacts accepted, {} errors", http.ok, http.errors);
}

struct HttpResult {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    ok: usize,
    errors: usize,
}

fn intake_over_http(duration: Duration, clients: usize) -> HttpResult {
    let server = server::start(TOKEN, |_, _| {});
    let base = server.base.clone();
    let (mut lat, errors, elapsed) = server::load(async move {
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
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    HttpResult {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        ok: lat.len(),
        errors,
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
