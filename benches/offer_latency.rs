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

#[path = "common/server.rs"]
mod server;

fn main() {
    let rate = env("BENCH_RATE", 200);
    let secs = env("BENCH_SECS", 10);
    let agents = env("BENCH_AGENTS", 50) as usize;
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
    let (intake, offer) = server::load(async move { run(&base, rate, secs, agents).await });
    server.stop();

    let pct = |v: &[f64], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    println!(
        "# Offer latency ({rate} contacts/s for {secs} s, {agents} agents accepting at once)\n"
    );
    println!("| path | p50 | p95 | p99 | max | contacts |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, v) in [
        ("POST /api/interactions → 201 (baseline)", &intake),
        ("POST /api/interactions → offer frame at the agent", &offer),
    ] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            pct(v, 0.5),
            pct(v, 0.95),
            pct(v, 0.99),
            v[v.len() - 1],
            v.len()
        );
    }
    println!(
        "\nrouting adds {:.2} ms at p50 and {:.2} ms at p99 to the intake commit ({:.2}× and {:.2}×)",
        pct(&offer, 0.5) - pct(&intake, 0.5),
        pct(&offer, 0.99) - pct(&intake, 0.99),
        pct(&offer, 0.5) / pct(&intake, 0.5),
        pct(&offer, 0.99) / pct(&intake, 0.99)
    );
}

/// Sorted latencies in ms: (POST answered, offer received).
async fn run(base: &str, rate: u64, secs: u64, agents: usize) -> (Vec<f64>, Vec<f64>) {
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
            let v: Value = resp.json().await.ok()?;
            let took = t0.elapsed().as_secs_f64() * 1000.0;
            // The offer may arrive before the answer: keep when the POST was sent.
            sent.lock().unwrap().insert(v["id"].as_str()?.to_string(), t0);
            Some(took)
        }));
    }
    let mut intake: Vec<f64> = Vec::new();
    for p in posts {
        if let Ok(Some(ms)) = p.await {
            intake.push(ms);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for d in desks {
        d.abort();
    }
    let sent = sent.lock().unwrap();
    let mut offer: Vec<f64> = offered
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(id, at)| Some(at.duration_since(*sent.get(id)?).as_secs_f64() * 1000.0))
        .collect();
    intake.sort_by(f64::total_cmp);
    offer.sort_by(f64::total_cmp);
    (intake, offer)
}
