//! Web chat: how many chats the server holds and what each costs in memory (idle, and
//! active with an agent), and how fast messages are relayed from visitor to agent with
//! their latency, beside two baselines on the same stack (axum's websockets on tokio, 2
//! worker threads) measured in the same run: a chat socket that only commits each
//! message as a row (group-committed, `synchronous=FULL`, the load generator's bare
//! stack) before its ack — the least a durable chat must do — and a websocket echo that
//! writes nothing.
//!
//!     cargo bench --bench chat                       # 2,000 idle chats, 100 active
//!     BENCH_IDLE=5000 BENCH_ACTIVE=200 BENCH_SECS=20 cargo bench --bench chat
//!
//! The server runs as its own process (the release binary, on a fresh SQLite database),
//! so its memory is read from /proc apart from the load generator's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[path = "common/echo.rs"]
mod echo;
#[path = "common/latency.rs"]
mod latency;
#[path = "common/process.rs"]
mod process;
// The bare stack of the load generator, whose chat socket is the insert-only baseline
// (its webhook and SMTP listener are not used here).
#[allow(dead_code)]
#[path = "../tools/load/src/bare.rs"]
mod bare;

use latency::Latencies;
use process::{rss_kib, Process};

const TOKEN: &str = "bench-token";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn start_server(dir: &std::path::Path) -> Process {
    process::start_server(
        env!("CARGO_BIN_EXE_switchboard"),
        dir,
        TOKEN,
        &[
            ("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE", "100000"),
            ("SWITCHBOARD__CHAT__MAX_CHATS_PER_VISITOR", "100000"),
            // Every visitor of the bench comes from one address.
            ("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE_PER_ADDRESS", "0"),
            ("SWITCHBOARD__CHAT__CHATS_PER_MINUTE_PER_ADDRESS", "0"),
            ("SWITCHBOARD__CHAT__IDLE_TIMEOUT_SECS", "3600"),
        ],
    )
}

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn next_json(ws: &mut Socket) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

async fn until(ws: &mut Socket, kind: &str) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

/// Opens a visitor's chat and writes its first message, which puts it in line for an
/// agent; answers its socket.
async fn visitor(chat_url: &str, id: String) -> Socket {
    let mut ws = connect(chat_url).await;
    ws.send(Message::Text(
        json!({ "type": "start", "visitor_id": id })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    until(&mut ws, "started").await;
    ws.send(Message::Text(
        json!({ "type": "message", "id": "m0", "text": "Hello" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    until(&mut ws, "ack").await;
    ws
}

fn main() {
    let idle = env("BENCH_IDLE", 2000) as usize;
    let active = env("BENCH_ACTIVE", 100) as usize;
    let secs = env("BENCH_SECS", 10);
    // Idle chats are measured on a server of their own, so freed memory never hides growth.
    let idle_dir = tempfile::tempdir().unwrap();
    let idle_server = start_server(idle_dir.path());
    let idle_pid = idle_server.pid();
    let idle_url = format!(
        "{}/channels/chat/ws",
        idle_server.base.replacen("http://", "ws://", 1)
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let pid = server.pid();
    let base = server.base.clone();
    let chat_url = format!("{}/channels/chat/ws", base.replacen("http://", "ws://", 1));
    let agent_url = format!("{}/agent/ws", base.replacen("http://", "ws://", 1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (idle_kib, active_kib, relay, echo, bare) = rt.block_on(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(idle_pid);
        // Idle chats: started, waiting, nobody writing.
        let mut idle_socks = Vec::with_capacity(idle);
        for i in 0..idle {
            idle_socks.push(visitor(&idle_url, format!("idle-{i}")).await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let with_idle = rss_kib(idle_pid);
        let idle_kib = (with_idle.saturating_sub(before)) as f64 / idle as f64;
        drop(idle_socks);

        // Active chats: each taken by an agent (3 chats each).
        let client = reqwest::Client::new();
        let agents_needed = active.div_ceil(3);
        let mut desks = Vec::new();
        for a in 0..agents_needed {
            let agent: Value = client
                .post(format!("{base}/api/agents"))
                .bearer_auth(TOKEN)
                .json(&json!({ "name": format!("Agent {a}") }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut ws = connect(&agent_url).await;
            ws.send(Message::Text(
                json!({ "type": "login", "token": agent["token"] })
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
            until(&mut ws, "welcome").await;
            ws.send(Message::Text(
                json!({ "type": "presence", "status": "available" })
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
            until(&mut ws, "presence").await;
            desks.push(ws);
        }
        let before_active = rss_kib(pid);
        let mut visitors = Vec::new();
        for i in 0..active {
            visitors.push(visitor(&chat_url, format!("active-{i}")).await);
        }
        // Agents accept every offer until each chat is taken.
        let mut taken = 0;
        let mut owner_of: Vec<usize> = Vec::new();
        let mut interaction_of = Vec::new();
        while taken < active {
            for (d, ws) in desks.iter_mut().enumerate() {
                if let Ok(Some(Ok(Message::Text(t)))) =
                    tokio::time::timeout(Duration::from_millis(20), ws.next()).await
                {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "offer" {
                        ws.send(Message::Text(
                            json!({ "type": "accept", "offer_id": v["offer_id"] })
                                .to_string()
                                .into(),
                        ))
                        .await
                        .unwrap();
                    } else if v["type"] == "assigned" {
                        taken += 1;
                        owner_of.push(d);
                        interaction_of.push(v["interaction_id"].as_str().unwrap().to_string());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let active_kib = rss_kib(pid).saturating_sub(before_active) as f64 / active as f64;

        // Relay: every visitor writes in a closed loop; each message's latency is from its
        // send to its `ack` (after its commit) and to its arrival on the agent's desktop.
        let duration = Duration::from_secs(secs);
        let relay = relay(visitors, desks, duration).await;

        // Baselines on the same stack, with as many clients: a websocket echo that writes
        // nothing, and a chat socket that commits each message (one row, group-committed,
        // `synchronous=FULL`) before its ack — the least a durable chat must do.
        let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (echo_addr, bare_addr) = (
            echo_listener.local_addr().unwrap(),
            bare_listener.local_addr().unwrap(),
        );
        let bare_dir = tempfile::tempdir().unwrap();
        let bare_path = bare_dir.path().to_path_buf();
        let baselines = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let echo = echo::app();
                let store = bare::Store::open(&bare_path).await;
                let both = async {
                    tokio::join!(
                        axum::serve(echo_listener, echo),
                        axum::serve(bare_listener, bare::app(store))
                    )
                };
                // They serve until the measurements are over.
                let _ = tokio::time::timeout(2 * duration + Duration::from_secs(20), both).await;
            });
        });
        let echo = closed_loop(&format!("ws://{echo_addr}/echo"), active, duration, false).await;
        let bare = closed_loop(
            &format!("ws://{bare_addr}/channels/chat/ws"),
            active,
            duration,
            true,
        )
        .await;
        drop(baselines);
        drop(bare_dir);
        (idle_kib, active_kib, relay, echo, bare)
    });
    drop(server);
    drop(idle_server);
    println!("# Web chat benchmark ({idle} idle chats, {active} active, {secs} s relay)\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| server memory per idle chat (waiting, connected) | {idle_kib:.1} KiB |");
    println!("| server memory per active chat (with an agent) | {active_kib:.1} KiB |");
    println!();
    println!("| path | messages/s | ack p50 | ack p99 | at the agent p50 | p99 | sent | failed | not delivered | ratio to insert-only | ratio to the echo |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| websocket echo that writes nothing, same stack, {active} clients | {:.0} | {} | {} | | | {} | {} | | {:.2} | 1.000 |",
        echo.rate,
        echo.ack.show(0.5, "failed"),
        echo.ack.show(0.99, "failed"),
        echo.sent,
        echo.ack.missing(),
        echo.rate / bare.rate
    );
    println!(
        "| insert-only chat socket, durable, group-committed, same stack, {active} chats | {:.0} | {} | {} | | | {} | {} | | 1.000 | {:.3} |",
        bare.rate,
        bare.ack.show(0.5, "failed"),
        bare.ack.show(0.99, "failed"),
        bare.sent,
        bare.ack.missing(),
        bare.rate / echo.rate
    );
    println!(
        "| **visitor → agent relay, durable, {active} chats** | **{:.0}** | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} |",
        relay.rate,
        relay.ack.show(0.5, "failed"),
        relay.ack.show(0.99, "failed"),
        relay.delivered.show(0.5, "not delivered"),
        relay.delivered.show(0.99, "not delivered"),
        relay.sent,
        relay.ack.missing(),
        relay.delivered.missing(),
        relay.rate / bare.rate,
        relay.rate / echo.rate
    );
    println!(
        "\nRates count the messages acknowledged (every path is a closed loop on its answer); a message that failed (an error frame, no answer within 10 s, a broken connection) is in the ack percentiles as a failure, and one acknowledged but not at its agent within 5 s of the last is in the agent's as not delivered."
    );
    let short =
        relay.ack.missing() + relay.delivered.missing() + bare.ack.missing() + echo.ack.missing();
    if short == 0 {
        println!("Kept up: every message sent was acknowledged, and every one of the relay's reached its agent.");
    } else {
        println!(
            "Did not keep up: relay {} failed and {} not delivered; insert-only {} failed; echo {} failed.",
            relay.ack.missing(),
            relay.delivered.missing(),
            bare.ack.missing(),
            echo.ack.missing()
        );
    }
}

/// What a closed loop of messages measured.
struct Measured {
    /// Messages acknowledged per second.
    rate: f64,
    /// Messages sent.
    sent: usize,
    /// Send → ack (the echo's answer), failures counted as missing.
    ack: Latencies,
    /// Send → at the agent's desktop, over the acknowledged; those not delivered
    /// counted as missing (the relay only).
    delivered: Latencies,
}

/// How long one message may wait for its answer before it counts as failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Waits for the answer to message `id`: its `ack` (or, `any`, whatever frame comes
/// first, as an echo answers); `false` on an error frame, a broken connection or none
/// within [`ANSWER_WITHIN`].
async fn answer(ws: &mut Socket, id: &str, any: bool) -> bool {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_))) if any => return true,
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("ack") if v["id"] == id => return true,
                        Some("error") => return false,
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, wait)
        .await
        .unwrap_or(false)
}

/// The relay: each visitor writes in a closed loop for `duration` (send, wait for the
/// `ack`, send again) while the agents' desktops read; then up to 5 s for the
/// acknowledged messages still on their way to the agents.
async fn relay(visitors: Vec<Socket>, desks: Vec<Socket>, duration: Duration) -> Measured {
    // Message text → when it was sent.
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Message text → send → desktop, in µs.
    let delivered: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for mut ws in desks {
        let (sent_at, delivered, stop) = (sent_at.clone(), delivered.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(Duration::from_millis(200), ws.next()).await
                else {
                    continue;
                };
                let Message::Text(t) = frame else { continue };
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "message" {
                    let text = v["text"].as_str().unwrap_or_default();
                    if let Some(at) = sent_at.lock().unwrap().get(text) {
                        delivered
                            .lock()
                            .unwrap()
                            .entry(text.to_string())
                            .or_insert(at.elapsed().as_micros() as u64);
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    let mut writers = Vec::new();
    for (i, mut ws) in visitors.into_iter().enumerate() {
        let sent_at = sent_at.clone();
        writers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0usize);
            let mut n = 0u64;
            while start.elapsed() < duration {
                n += 1;
                let (id, text) = (format!("m{n}"), format!("v{i}-m{n}"));
                let t0 = Instant::now();
                sent_at.lock().unwrap().insert(text.clone(), t0);
                let frame = json!({ "type": "message", "id": id, "text": text }).to_string();
                if ws.send(Message::Text(frame.into())).await.is_err() {
                    failed += 1;
                    break;
                }
                if answer(&mut ws, &id, false).await {
                    acked.push((text, t0.elapsed().as_micros() as u64));
                } else {
                    failed += 1;
                }
            }
            (acked, failed)
        }));
    }
    let (mut acked, mut failed) = (Vec::new(), 0);
    for w in writers {
        let (a, f) = w.await.unwrap();
        acked.extend(a);
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let all = {
            let d = delivered.lock().unwrap();
            acked.iter().all(|(text, _)| d.contains_key(text))
        };
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    let d = delivered.lock().unwrap();
    let at_agent: Vec<f64> = acked
        .iter()
        .filter_map(|(text, _)| Some(*d.get(text)? as f64 / 1000.0))
        .collect();
    let not_delivered = acked.len() - at_agent.len();
    Measured {
        rate: acked.len() as f64 / elapsed,
        sent: acked.len() + failed,
        ack: Latencies::new(
            acked.iter().map(|(_, us)| *us as f64 / 1000.0).collect(),
            failed,
        ),
        delivered: Latencies::new(at_agent, not_delivered),
    }
}

/// `clients` sockets at `url` in a closed loop for `duration`: send a message, wait for
/// its answer, send again. With `chat`, each first starts a chat and waits for its ack
/// (an insert-only chat socket); otherwise any frame answers (an echo).
async fn closed_loop(url: &str, clients: usize, duration: Duration, chat: bool) -> Measured {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            if chat {
                let hello = json!({ "type": "start", "visitor_id": format!("bare-{c}") });
                ws.send(Message::Text(hello.to_string().into()))
                    .await
                    .unwrap();
                until(&mut ws, "started").await;
            }
            let (mut lat, mut failed, mut n) = (Vec::new(), 0usize, 0u64);
            while start.elapsed() < duration {
                n += 1;
                let id = format!("m{n}");
                let t = Instant::now();
                let frame = json!({ "type": "message", "id": id, "text": "hello" }).to_string();
                if ws.send(Message::Text(frame.into())).await.is_err() {
                    failed += 1;
                    break;
                }
                if answer(&mut ws, &id, !chat).await {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed += 1;
                }
            }
            (lat, failed)
        }));
    }
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.unwrap();
        lat.extend(l);
        failed += f;
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    Measured {
        rate,
        sent: lat.len() + failed,
        ack: Latencies::new(lat, failed),
        delivered: Latencies::new(Vec::new(), 0),
    }
}
