//! Web chat: how many chats the server holds and what each costs in memory (idle, and
//! active with an agent), and how fast messages are relayed from visitor to agent with
//! their latency, beside a bare websocket echo on the same stack (axum's websockets on
//! tokio, 2 worker threads) measured in the same run.
//!
//!     cargo bench --bench chat                       # 2,000 idle chats, 100 active
//!     BENCH_IDLE=5000 BENCH_ACTIVE=200 BENCH_SECS=20 cargo bench --bench chat
//!
//! The server runs as its own process (the release binary, on a fresh SQLite database),
//! so its memory is read from /proc apart from the load generator's.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD__SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD__STORAGE__DATA_DIR", dir)
        .env("SWITCHBOARD__API__ADMIN_TOKEN", TOKEN)
        .env("SWITCHBOARD__EMAIL__SMTP_ADDR", "")
        .env("SWITCHBOARD__LOG__LEVEL", "warn")
        .env("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE", "100000")
        .env("SWITCHBOARD__CHAT__MAX_CHATS_PER_VISITOR", "100000")
        .env("SWITCHBOARD__CHAT__IDLE_TIMEOUT_SECS", "3600")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the release binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("it prints where it listens").unwrap();
        if let Some(a) = line.strip_prefix("Switchboard listening on ") {
            break a.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, base }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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

/// Opens a visitor's chat; answers its socket.
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
    ws
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    v.sort_unstable();
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0) as f64
        / 1000.0
}

fn main() {
    let idle = env("BENCH_IDLE", 2000) as usize;
    let active = env("BENCH_ACTIVE", 100) as usize;
    let secs = env("BENCH_SECS", 10);
    // Idle chats are measured on a server of their own, so freed memory never hides growth.
    let idle_dir = tempfile::tempdir().unwrap();
    let idle_server = start_server(idle_dir.path());
    let idle_pid = idle_server.child.id();
    let idle_url = format!(
        "{}/channels/chat/ws",
        idle_server.base.replacen("http://", "ws://", 1)
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let pid = server.child.id();
    let base = server.base.clone();
    let chat_url = format!("{}/channels/chat/ws", base.replacen("http://", "ws://", 1));
    let agent_url = format!("{}/agent/ws", base.replacen("http://", "ws://", 1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (idle_kib, active_kib, relay, echo) = rt.block_on(async move {
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
        // send to its arrival on the agent's desktop.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
        let sent_at = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
            String,
            Instant,
        >::new()));
        let start = Instant::now();
        let duration = Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for (i, mut ws) in visitors.into_iter().enumerate() {
            let sent_at = sent_at.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < duration {
                    n += 1;
                    let text = format!("v{i}-m{n}");
                    sent_at.lock().unwrap().insert(text.clone(), Instant::now());
                    ws.send(Message::Text(
                        json!({ "type": "message", "id": format!("m{n}"), "text": text })
                            .to_string()
                            .into(),
                    ))
                    .await
                    .unwrap();
                    until(&mut ws, "ack").await;
                }
            }));
        }
        let mut readers = Vec::new();
        for mut ws in desks {
            let (tx, sent_at) = (tx.clone(), sent_at.clone());
            readers.push(tokio::spawn(async move {
                while let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(Duration::from_secs(2), ws.next()).await
                {
                    let Message::Text(t) = frame else { continue };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "message" {
                        if let Some(at) = sent_at
                            .lock()
                            .unwrap()
                            .remove(v["text"].as_str().unwrap_or_default())
                        {
                            let _ = tx.send((at.elapsed().as_micros() as u64, Instant::now()));
                        }
                    }
                }
            }));
        }
        drop(tx);
        for t in tasks {
            t.await.unwrap();
        }
        for r in readers {
            let _ = r.await;
        }
        let mut lat = Vec::new();
        while let Ok((l, _)) = rx.try_recv() {
            lat.push(l as u32);
        }
        let relay = (
            lat.len() as f64 / start.elapsed().as_secs_f64(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
        );

        // Baseline: a bare websocket echo on the same stack, with as many clients.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = listener.local_addr().unwrap();
        let echo_server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/echo",
                    axum::routing::get(|ws: WebSocketUpgrade| async move {
                        ws.on_upgrade(|mut s| async move {
                            while let Some(Ok(m)) = s.recv().await {
                                if let AxMessage::Text(t) = m {
                                    if s.send(AxMessage::Text(t)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        })
                    }),
                );
                let _ = tokio::time::timeout(
                    duration + Duration::from_secs(10),
                    axum::serve(listener, app),
                )
                .await;
            });
        });
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..active {
            tasks.push(tokio::spawn(async move {
                let mut ws = connect(&format!("ws://{echo_addr}/echo")).await;
                let mut lat = Vec::new();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    ws.send(Message::Text(
                        "{\"type\":\"message\",\"id\":\"m\",\"text\":\"hello\"}".into(),
                    ))
                    .await
                    .unwrap();
                    let _ = ws.next().await;
                    lat.push(t.elapsed().as_micros() as u32);
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let echo = (
            lat.len() as f64 / start.elapsed().as_secs_f64(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
        );
        drop(echo_server);
        (idle_kib, active_kib, relay, echo)
    });
    drop(server);
    drop(idle_server);
    println!("# Web chat benchmark ({idle} idle chats, {active} active, {secs} s relay)\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| server memory per idle chat (waiting, connected) | {idle_kib:.1} KiB |");
    println!("| server memory per active chat (with an agent) | {active_kib:.1} KiB |");
    println!();
    println!("| path | messages/s | p50 | p99 | ratio to the bare echo |");
    println!("|---|---:|---:|---:|---:|");
    println!("| bare websocket echo, same stack, {active} clients | {:.0} | {:.2} ms | {:.2} ms | 1.000 |", echo.0, echo.1, echo.2);
    println!("| **visitor → agent relay, durable, {active} chats** | **{:.0}** | {:.2} ms | {:.2} ms | {:.3} |", relay.0, relay.1, relay.2, relay.0 / echo.0);
}
