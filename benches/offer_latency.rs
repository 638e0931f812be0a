//! End-to-end routing latency: from `POST /api/interactions` to the offer frame at an
//! agent's websocket, under a steady load, beside the POST's own answer time (the intake
//! commit) measured for the same contacts in the same run.
//!
//!     cargo bench --bench offer_latency
//!     BENCH_RATE=400 BENCH_SECS=20 BENCH_AGENTS=100 cargo bench --bench offer_latency
//!
//! Agents accept every offer at once and complete it at once (no wrap-up), so capacity is
//! always there and the figure is the routing path itself: commit, router wake-up,
//! decision, the `offered` commit, the frame.
//!
//! Every contact sent counts: a POST that fails is in the intake percentiles as a
//! failure, and a contact accepted but not offered within `BENCH_DRAIN_SECS` (10) of the
//! last POST is in the offer percentiles as never offered — a run with either did not
//! keep up, and says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "common/latency.rs"]
mod latency;
#[path = "common/server.rs"]
mod server;

use latency::Latencies;

fn main() {
    let rate = env("BENCH_RATE", 200);
    let secs = env("BENCH_SECS", 10);
    let agents = env("BENCH_AGENTS", 50) as usize;
    let drain = env("BENCH_DRAIN_SECS", 10);
    let server = server::start(TOKEN, |s, dir| {
        let rules = dir.join("routing.toml");
        std::fs::write(
            &rules,
            include_str!("../config/routing.toml").replace("wrap_up_secs = 30", "wrap_up_secs = 0"),
        )
        .unwrap();
        s.routing.rules_file = rules.display().to_string();
    });
    let base = server.base.clone();
    let r = server::load(async move { run(&base, rate, secs, agents, drain).await });
    server.stop();

    println!(
        "# Offer latency ({rate} contacts/s for {secs} s, {agents} agents accepting at once)\n"
    );
    println!("| path | p50 | p95 | p99 | max | arrived | never arrived |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, v, missing) in [
        (
            "POST /api/interactions → 201 (baseline)",
            &r.intake,
            "failed",
        ),
        (
            "POST /api/interactions → offer frame at the agent",
            &r.offer,
            "never offered",
        ),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} {missing} |",
            v.show(0.5, missing),
            v.show(0.95, missing),
            v.show(0.99, missing),
            v.show(1.0, missing),
            v.arrived(),
            v.missing(),
        );
    }
    println!(
        "\n{} contacts sent: {} accepted, {} failed; {} of the accepted offered, {} never offered within {drain} s of the last POST.",
        r.sent,
        r.intake.arrived(),
        r.intake.missing(),
        r.offer.arrived(),
        r.offer.missing(),
    );
    if r.intake.missing() == 0 && r.offer.missing() == 0 {
        println!("Kept up: every contact sent was accepted and offered.");
    } else {
        println!(
            "Did not keep up: {} failed, {} never offered. The percentiles count them as slower than any that arrived.",
            r.intake.missing(),
            r.offer.missing()
        );
    }
    if let (Some(o50), Some(i50), Some(o99), Some(i99)) = (
        r.offer.at(0.5),
        r.intake.at(0.5),
        r.offer.at(0.99),
        r.intake.at(0.99),
    ) {
        println!(
            "Routing adds {:.2} ms at p50 and {:.2} ms at p99 to the intake commit ({:.2}× and {:.2}×).",
            o50 - i50,
            o99 - i99,
            o50 / i50,
            o99 / i99
        );
    }
}

/// What a run measured.
struct Measured {
    /// Contacts posted.
    sent: usize,
    /// POST → 201, the failed counted as missing.
    intake: Latencies,
    /// POST → offer frame, over the accepted; the never offered counted as missing.
    offer: Latencies,
}

/// Posts `rate` contacts a second for `secs` to `agents` agents who accept at once, then
/// waits up to `drain` seconds for every accepted contact to be offered.
async fn run(base: &str, rate: u64, secs: u64, agents: usize, drain: u64) -> Measured {
    let client = reqwest::Client::new();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let offered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut desks = Vec::new();
    for n in 0..agents {
        let a: Value = client
            .post(format!("{base}/api/agents"))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": format!("Agent {n}"), "level": 3 }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = a["token"].as_str().unwrap().to_string();
        let url = format!("{}/agent/ws", base.replacen("http://", "ws://", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Message::Text(
            json!({ "type": "login", "token": token })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        ws.send(Message::Text(
            json!({ "type": "presence", "status": "available" })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let offered = offered.clone();
        desks.push(tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("offer") => {
                        let id = v["interaction"]["id"].as_str().unwrap().to_string();
                        offered.lock().unwrap().entry(id).or_insert_with(Instant::now);
                        let accept = json!({ "type": "accept", "offer_id": v["offer_id"] });
                        if ws.send(Message::Text(accept.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some("assigned") => {
                        let done = json!({ "type": "complete", "interaction_id": v["interaction_id"], "disposition": "resolved" });
                        if ws.send(Message::Text(done.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Open loop: one contact every 1/rate s, whatever the answers do.
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut posts = Vec::new();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let due = start + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        n += 1;
        let (client, url, sent) = (
            client.clone(),
            format!("{base}/api/interactions"),
            sent.clone(),
        );
        posts.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let body = json!({ "customer": { "email": format!("c{}@example.com", n % 1000) }, "subject": "latency" });
            let resp = client.post(url).bearer_auth(TOKEN).json(&body).send().await.ok()?;
            if resp.status().as_u16() != 201 {
                return None;
            }
            let v: Value = resp.json().await.ok()?;
            let took = t0.elapsed().as_secs_f64() * 1000.0;
            // The offer may arrive before the answer: keep when the POST was sent.
            sent.lock().unwrap().insert(v["id"].as_str()?.to_string(), t0);
            Some(took)
        }));
    }
    let total = posts.len();
    let mut intake: Vec<f64> = Vec::new();
    for p in posts {
        // A POST that failed, was refused or whose task panicked is a failure.
        if let Ok(Some(ms)) = p.await {
            intake.push(ms);
        }
    }
    // Every accepted contact offered, or the drain over.
    let deadline = Instant::now() + Duration::from_secs(drain);
    loop {
        let all = {
            let (sent, offered) = (sent.lock().unwrap(), offered.lock().unwrap());
            sent.keys().all(|id| offered.contains_key(id))
        };
        if all || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for d in desks {
        d.abort();
    }
    let sent = sent.lock().unwrap();
    let offered = offered.lock().unwrap();
    let offer: Vec<f64> = sent
        .iter()
        .filter_map(|(id, t0)| Some(offered.get(id)?.duration_since(*t0).as_secs_f64() * 1000.0))
        .collect();
    let never_offered = sent.len() - offer.len();
    Measured {
        sent: total,
        intake: Latencies::new(intake.clone(), total - intake.len()),
        offer: Latencies::new(offer, never_offered),
    }
}
