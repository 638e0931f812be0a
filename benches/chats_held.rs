//! Chats held open: how many waiting chats one node holds, what each costs in memory,
//! how long they take to open, and how fast a message goes between a visitor and an agent
//! while they are held — at 1,000, 10,000 and 100,000 chats, beside a bare websocket
//! echo of the same libraries holding as many connections, measured the same way in the
//! same run.
//!
//!     cargo bench --bench chats_held                         # 1,000, 10,000, 100,000
//!     HELD_SIZES=1000,10000 HELD_SECS=20 cargo bench --bench chats_held
//!     HELD_SERVER=/path/to/switchboard cargo bench --bench chats_held   # another build
//!
//! At each size, for the echo and then for Switchboard (each its own process, on a fresh
//! SQLite database for Switchboard, so its memory is read from `/proc` apart from the
//! load's):
//! - **Open.** The server's anonymous memory (`RssAnon`) is read; then N visitors open a
//!   chat as the widget does — connect, `start`, wait for `started`, write one message,
//!   wait for its `ack` (the echo: connect, one message, its echo). The first
//!   `HELD_MEASURED` (60) are this process's own; the rest come from client processes
//!   (this benchmark run again), at most 5,000 each, each from its own loopback address
//!   (127.0.0.10, .11, …) so no address runs out of ports; each client process opens 32
//!   at a time. A chat not open within 10 s is counted as failed to open.
//! - **Hold.** Every visitor stays, pinging every 20 s as the widget does, for
//!   `HELD_SECS` (30); then the server's anonymous memory is read again, and the growth
//!   is divided by the chats open.
//! - **Relay.** 20 agents log in and take the 60 oldest chats (this process's own, three
//!   each); each of those visitors then writes 15 messages, a second apart (60 a second
//!   in all); the agent answers each as it arrives. Timed: the visitor's message to its agent, the agent's
//!   answer to the visitor, and the round trip. An answer not back within 10 s counts as
//!   not answered and is in the percentiles as such (`failed`). The echo's round trip is
//!   timed the same way on its 60 own connections.
//! - A held connection that the server closed, or that broke, is counted as dropped.
//!
//! Every process raises its open-file limit as far as the system lets it (as root, the
//! hard limit too, to `fs.nr_open`); a size the limit cannot hold (the server needs a file
//! per chat) is measured at the most it holds instead (in thousands, 512 files kept for
//! the rest), and the report says so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[path = "common/echo.rs"]
mod echo;
#[path = "common/latency.rs"]
mod latency;
#[path = "common/process.rs"]
mod process;

use latency::Latencies;
use process::{anon_kib, Process};

const TOKEN: &str = "held-token";
/// Chats (and echo connections) the relay is timed on: this process's own.
const AGENTS: usize = 20;
/// Chats each agent takes (the default chat capacity).
const CHATS_PER_AGENT: usize = 3;
/// Messages each timed visitor writes.
const ROUND_TRIPS: usize = 15;
/// Between one timed message and the next.
const PACE: Duration = Duration::from_secs(1);
/// The widget's ping interval.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How long a chat may take to open, and an answer to come back.
const WITHIN: Duration = Duration::from_secs(10);
/// Chats one client process opens at most.
const PER_CLIENT: usize = 5_000;
/// Chats one client process opens at once.
const OPENING_AT_ONCE: usize = 32;

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Raises this process's open-file limit as far as the system lets it (the processes it
/// starts, the server among them, inherit it): the hard limit too where this process may
/// (as root, up to `fs.nr_open`), else the soft limit to the hard one. Answers the limit.
fn raise_file_limit() -> u64 {
    let most: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let raised = libc::rlimit {
            rlim_cur: most.max(lim.rlim_max),
            rlim_max: most.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// The client side's websocket settings: small buffers, so that a hundred thousand
/// client connections fit beside the server.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Connects to `url` from `source` (a loopback address of its own, for ports).
async fn connect(url: &str, source: std::net::IpAddr) -> Option<Socket> {
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()?
        .parse()
        .ok()?;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(source, 0)).ok()?;
    let stream = socket.connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .ok()?;
    Some(ws)
}

async fn send(ws: &mut Socket, v: Value) -> Option<()> {
    ws.send(Message::Text(v.to_string().into())).await.ok()
}

/// The next text frame, as JSON (an echo's answers are not JSON: `Value::Null`).
async fn next_text(ws: &mut Socket) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Waits for the frame `want` accepts; `None` on an error frame, a closed connection or
/// [`WITHIN`] passing.
async fn until(ws: &mut Socket, want: impl Fn(&Value) -> bool) -> Option<Value> {
    let wait = async {
        loop {
            let v: Value = serde_json::from_str(&next_text(ws).await?).unwrap_or_default();
            if want(&v) {
                return Some(v);
            }
            if v["type"] == "error" {
                return None;
            }
        }
    };
    tokio::time::timeout(WITHIN, wait).await.ok().flatten()
}

/// What is held: a chat on Switchboard, or a connection to the echo.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Echo,
}

/// Opens one as a visitor does: a chat started and its first message acknowledged, or
/// an echo connection and its first message echoed.
async fn open(url: &str, source: std::net::IpAddr, kind: Kind, id: &str) -> Option<Socket> {
    let opening = async {
        let mut ws = connect(url, source).await?;
        match kind {
            Kind::Chat => {
                send(&mut ws, json!({ "type": "start", "visitor_id": id })).await?;
                until(&mut ws, |v| v["type"] == "started").await?;
                send(
                    &mut ws,
                    json!({ "type": "message", "id": "m1", "text": "Hello, is my order on its way?" }),
                )
                .await?;
                until(&mut ws, |v| v["type"] == "ack").await?;
            }
            Kind::Echo => {
                ws.send(Message::Text("Hello, is my order on its way?".into()))
                    .await
                    .ok()?;
                next_text(&mut ws).await?;
            }
        }
        Some(ws)
    };
    tokio::time::timeout(WITHIN, opening).await.ok().flatten()
}

/// Holds `ws` until `stop`: a ping every [`PING_EVERY`] (the first after `offset`), the
/// server's frames read. Answers false when the connection was closed or broke before.
async fn hold(mut ws: Socket, kind: Kind, offset: Duration, stop: CancellationToken) -> bool {
    let mut next_ping = tokio::time::Instant::now() + offset;
    loop {
        tokio::select! {
            () = stop.cancelled() => return true,
            () = tokio::time::sleep_until(next_ping) => {
                next_ping += PING_EVERY;
                let ping = match kind {
                    Kind::Chat => json!({ "type": "ping" }).to_string(),
                    Kind::Echo => "ping".to_string(),
                };
                if ws.send(Message::Text(ping.into())).await.is_err() {
                    return false;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// A client process: opens its share, holds it, says how it went.
// ---------------------------------------------------------------------------------------

fn client_process() {
    raise_file_limit();
    let url = std::env::var("HELD_URL").unwrap();
    let count = env_u64("HELD_COUNT", 0) as usize;
    let source: std::net::IpAddr = std::env::var("HELD_SOURCE").unwrap().parse().unwrap();
    let kind = if std::env::var("HELD_KIND").as_deref() == Ok("echo") {
        Kind::Echo
    } else {
        Kind::Chat
    };
    let prefix = std::env::var("HELD_PREFIX").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stop = CancellationToken::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
        let mut opening = Vec::with_capacity(count);
        for i in 0..count {
            let (url, gate, stop) = (url.clone(), gate.clone(), stop.clone());
            let id = format!("{prefix}-{i}");
            // Pings spread over the interval, as visitors' pages are.
            let offset = PING_EVERY.mul_f64((i as f64 * 0.618_034) % 1.0);
            opening.push(tokio::spawn(async move {
                let (ws, ms) = {
                    let _place = gate.acquire().await.unwrap();
                    let t = Instant::now();
                    let ws = open(&url, source, kind, &id).await;
                    (ws, t.elapsed().as_secs_f64() * 1000.0)
                };
                match ws {
                    Some(ws) => (Some(ms), Some(tokio::spawn(hold(ws, kind, offset, stop)))),
                    None => (None, None),
                }
            }));
        }
        let (mut opened, mut failed, mut holders) = (Vec::new(), 0usize, Vec::new());
        for o in opening {
            match o.await.unwrap() {
                (Some(ms), Some(h)) => {
                    opened.push(format!("{ms:.2}"));
                    holders.push(h);
                }
                _ => failed += 1,
            }
        }
        println!("opened {} {failed} {}", opened.len(), opened.join(","));
        // Held until told to stop (or the benchmark has gone).
        let mut line = String::new();
        tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
            .await
            .ok();
        stop.cancel();
        let mut dropped = 0;
        for h in holders {
            if !h.await.unwrap_or(false) {
                dropped += 1;
            }
        }
        println!("dropped {dropped}");
    });
}

/// A client process at work.
struct Client {
    child: Child,
    out: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Client {
    fn spawn(url: &str, count: usize, source: &str, kind: Kind, prefix: &str) -> Client {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("HELD_ROLE", "client")
            .env("HELD_URL", url)
            .env("HELD_COUNT", count.to_string())
            .env("HELD_SOURCE", source)
            .env("HELD_PREFIX", prefix)
            .env(
                "HELD_KIND",
                if kind == Kind::Echo { "echo" } else { "chat" },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("a client process starts");
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Client { child, out }
    }

    /// Waits for it to have opened its share: the open times of those it opened, and
    /// how many failed.
    fn opened(&mut self) -> (Vec<f64>, usize) {
        let line = self.out.next().and_then(Result::ok).unwrap_or_default();
        let mut parts = line.splitn(4, ' ');
        assert_eq!(
            parts.next(),
            Some("opened"),
            "a client process reports: {line}"
        );
        let _ok = parts.next();
        let failed = parts.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        let ms = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .filter_map(|v| v.parse().ok())
            .collect();
        (ms, failed)
    }

    /// Tells it to let its connections go; answers how many had been dropped before.
    fn stop(mut self) -> usize {
        if let Some(stdin) = self.child.stdin.as_mut() {
            // A client that has gone has dropped everything: read below.
            let _ = stdin.write_all(b"stop\n");
        }
        let line = self.out.next().and_then(Result::ok).unwrap_or_default();
        let _ = self.child.wait();
        line.strip_prefix("dropped ")
            .and_then(|d| d.trim().parse().ok())
            .unwrap_or(usize::MAX)
    }
}

// ---------------------------------------------------------------------------------------
// The echo's own process.
// ---------------------------------------------------------------------------------------

fn echo_process() {
    raise_file_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "Echo listening on http://{}",
            listener.local_addr().unwrap()
        );
        axum::serve(listener, echo::app()).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// The benchmark.
// ---------------------------------------------------------------------------------------

/// What one server did at one size.
struct Row {
    opened: usize,
    failed_to_open: usize,
    dropped: usize,
    open_secs: f64,
    open_ms: Latencies,
    anon_before_kib: u64,
    anon_after_kib: u64,
    round_trip: Latencies,
    to_agent: Latencies,
    to_visitor: Latencies,
}

impl Row {
    fn per_chat_kib(&self) -> f64 {
        self.anon_after_kib.saturating_sub(self.anon_before_kib) as f64 / self.opened.max(1) as f64
    }
}

/// One timed visitor (or echo client) of this process: opened, then held until `go`,
/// then [`ROUND_TRIPS`] messages.
struct Timed {
    ws: Socket,
}

/// Messages on their way: text → when the visitor sent it, and when its agent answered.
#[derive(Default)]
struct Clock {
    sent: HashMap<String, Instant>,
    answered: HashMap<String, Instant>,
    to_agent_ms: Vec<f64>,
}

type SharedClock = Arc<Mutex<Clock>>;

/// A timed visitor's messages, 200 ms apart; each waits for its answer (the agent's, or
/// the echo's). Answers the round trips and the agent → visitor times (ms), and how many
/// were not answered.
async fn round_trips(
    mut t: Timed,
    name: String,
    kind: Kind,
    clock: SharedClock,
) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut rt, mut back, mut missing) = (Vec::new(), Vec::new(), 0);
    for i in 0..ROUND_TRIPS {
        let text = format!("{name} message {i}");
        let t0 = Instant::now();
        clock.lock().unwrap().sent.insert(text.clone(), t0);
        let frame = match kind {
            Kind::Chat => {
                json!({ "type": "message", "id": format!("r{i}"), "text": text }).to_string()
            }
            Kind::Echo => text.clone(),
        };
        if t.ws.send(Message::Text(frame.into())).await.is_err() {
            missing += ROUND_TRIPS - i;
            break;
        }
        let answered = async {
            loop {
                let frame = next_text(&mut t.ws).await?;
                match kind {
                    Kind::Echo if frame == text => return Some(()),
                    Kind::Echo => {}
                    Kind::Chat => {
                        let v: Value = serde_json::from_str(&frame).unwrap_or_default();
                        if v["type"] == "message" && v["from"] == "agent" && v["text"] == text {
                            return Some(());
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(WITHIN, answered).await {
            Ok(Some(())) => {
                rt.push(t0.elapsed().as_secs_f64() * 1000.0);
                if let Some(at) = clock.lock().unwrap().answered.get(&text) {
                    back.push(at.elapsed().as_secs_f64() * 1000.0);
                }
            }
            _ => missing += 1,
        }
        tokio::time::sleep(PACE).await;
    }
    (rt, back, missing)
}

/// An agent's desktop: logs in, takes every offer, and answers every visitor's message
/// with the same text, at once, until `stop`. Answers how many chats it was assigned
/// through `assigned`.
async fn desk(
    base: String,
    agent_url: String,
    n: usize,
    clock: SharedClock,
    assigned: Arc<tokio::sync::Semaphore>,
    stop: CancellationToken,
) {
    let client = reqwest::Client::new();
    let agent: Value = client
        .post(format!("{base}/api/agents"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": format!("Agent {n}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ws = connect(&agent_url, "127.0.0.1".parse().unwrap())
        .await
        .expect("the agent websocket opens");
    send(&mut ws, json!({ "type": "login", "token": agent["token"] })).await;
    until(&mut ws, |v| v["type"] == "welcome").await.unwrap();
    send(
        &mut ws,
        json!({ "type": "presence", "status": "available" }),
    )
    .await;
    let mut replies = 0u64;
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => return,
            f = next_text(&mut ws) => match f { Some(f) => f, None => return },
        };
        let v: Value = serde_json::from_str(&frame).unwrap_or_default();
        match v["type"].as_str() {
            Some("offer") => {
                send(
                    &mut ws,
                    json!({ "type": "accept", "offer_id": v["offer_id"] }),
                )
                .await;
            }
            Some("assigned") => assigned.add_permits(1),
            Some("message") if v["from"] == "visitor" => {
                let text = v["text"].as_str().unwrap_or_default().to_string();
                {
                    let mut c = clock.lock().unwrap();
                    let Some(sent) = c.sent.get(&text).copied() else {
                        continue;
                    };
                    c.to_agent_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                    c.answered.insert(text.clone(), Instant::now());
                }
                replies += 1;
                let reply = json!({ "type": "reply", "interaction_id": v["interaction_id"],
                                    "body": text, "reply_id": format!("a{n}-{replies}") });
                send(&mut ws, reply).await;
            }
            _ => {}
        }
    }
}

/// Opens `n` on `server` (this process's timed ones first, then client processes), holds
/// them, reads the memory, and times the relay.
async fn measure(server: &Process, kind: Kind, n: usize, hold_secs: u64) -> Row {
    let path = if kind == Kind::Chat {
        "/channels/chat/ws"
    } else {
        "/echo"
    };
    let url = server.ws(path);
    let pid = server.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let anon_before_kib = anon_kib(pid);
    let timed_count = (AGENTS * CHATS_PER_AGENT).min(n);
    let started = Instant::now();
    // This process's own, the first and so the oldest: the ones the agents take.
    let stop = CancellationToken::new();
    let mut timed = Vec::new();
    let mut open_ms = Vec::new();
    let mut failed_to_open = 0;
    let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    for i in 0..timed_count {
        let t = Instant::now();
        match open(&url, local, kind, &format!("timed-{i}")).await {
            Some(ws) => {
                open_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                timed.push(ws);
            }
            None => failed_to_open += 1,
        }
    }
    // Until the relay, the timed ones are held like the rest.
    let timed_holders: Vec<_> = timed
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut ws = ws;
                let mut next_ping = tokio::time::Instant::now() + PING_EVERY.mul_f64(i as f64 / 60.0);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Some(ws),
                        () = tokio::time::sleep_until(next_ping) => {
                            next_ping += PING_EVERY;
                            let ping = if kind == Kind::Chat { json!({ "type": "ping" }).to_string() } else { "ping".into() };
                            if ws.send(Message::Text(ping.into())).await.is_err() { return None; }
                        }
                        frame = ws.next() => match frame {
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                            Some(Ok(_)) => {}
                        },
                    }
                }
            })
        })
        .collect();
    let rest = n - timed_count;
    let mut clients: Vec<Client> = (0..rest.div_ceil(PER_CLIENT))
        .map(|c| {
            let share = PER_CLIENT.min(rest - c * PER_CLIENT);
            let source = format!("127.0.0.{}", 10 + c);
            Client::spawn(&url, share, &source, kind, &format!("held-{c}"))
        })
        .collect();
    let reports = tokio::task::spawn_blocking(move || {
        let r: Vec<_> = clients.iter_mut().map(Client::opened).collect();
        (clients, r)
    });
    let (clients, reports) = reports.await.unwrap();
    for (ms, failed) in reports {
        open_ms.extend(ms);
        failed_to_open += failed;
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened = open_ms.len();
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let anon_after_kib = anon_kib(pid);

    // The relay, on this process's own.
    stop.cancel();
    let mut timed = Vec::new();
    let mut dropped = 0;
    for h in timed_holders {
        match h.await.unwrap() {
            Some(ws) => timed.push(Timed { ws }),
            None => dropped += 1,
        }
    }
    let clock: SharedClock = Arc::default();
    let desks_stop = CancellationToken::new();
    if kind == Kind::Chat {
        let assigned = Arc::new(tokio::sync::Semaphore::new(0));
        for a in 0..AGENTS {
            tokio::spawn(desk(
                server.base.clone(),
                server.ws("/agent/ws"),
                a,
                clock.clone(),
                assigned.clone(),
                desks_stop.clone(),
            ));
        }
        // Every timed chat taken before the relay starts (those that are not are not
        // answered, and count so).
        let all = assigned.acquire_many(timed.len() as u32);
        if tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .is_err()
        {
            let queue: Value = match reqwest::Client::new()
                .get(format!("{}/api/queue", server.base))
                .bearer_auth(TOKEN)
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(e) => json!(e.to_string()),
            };
            eprintln!(
                "Not every timed chat was taken by an agent within 60 s: {} of {} assigned; the queue: {}",
                assigned.available_permits(),
                timed.len(),
                queue
            );
        }
        // Each visitor reads its agent's arrival before timing.
        for t in &mut timed {
            let _ = until(&mut t.ws, |v| v["type"] == "agent_joined").await;
        }
    }
    let mut tasks = Vec::new();
    for (i, t) in timed.into_iter().enumerate() {
        tasks.push(tokio::spawn(round_trips(
            t,
            format!("v{i}"),
            kind,
            clock.clone(),
        )));
    }
    let (mut rt, mut back, mut missing) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (r, b, m) = t.await.unwrap();
        rt.extend(r);
        back.extend(b);
        missing += m;
    }
    desks_stop.cancel();
    let to_agent = std::mem::take(&mut clock.lock().unwrap().to_agent_ms);
    let answered = rt.len();
    let to_agent_missing = (answered + missing).saturating_sub(to_agent.len());
    for c in clients {
        dropped += c.stop();
    }
    Row {
        opened,
        failed_to_open,
        dropped,
        open_secs,
        open_ms: Latencies::new(open_ms, failed_to_open),
        anon_before_kib,
        anon_after_kib,
        round_trip: Latencies::new(rt, missing),
        to_agent: Latencies::new(
            to_agent,
            if kind == Kind::Chat {
                to_agent_missing
            } else {
                0
            },
        ),
        to_visitor: Latencies::new(back, if kind == Kind::Chat { missing } else { 0 }),
    }
}

fn main() {
    match std::env::var("HELD_ROLE").as_deref() {
        Ok("client") => return client_process(),
        Ok("echo") => return echo_process(),
        _ => {}
    }
    let limit = raise_file_limit();
    let sizes: Vec<usize> = std::env::var("HELD_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let hold_secs = env_u64("HELD_SECS", 30);
    let binary =
        std::env::var("HELD_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchboard").into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let mut cut_to = Vec::new();
    // The server holds a file per chat, and keeps some for its store and listeners.
    let most = (limit.saturating_sub(512) / 1000 * 1000) as usize;
    for &asked in &sizes {
        let n = asked.min(most);
        if n < asked {
            cut_to.push((asked, n));
        }
        if n == 0 || rows.iter().any(|(done, _, _)| *done == n) {
            continue;
        }
        let echo = process::wait_for_address(
            Command::new(std::env::current_exe().unwrap())
                .env("HELD_ROLE", "echo")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
            "Echo listening on ",
        );
        let echo_row = rt.block_on(measure(&echo, Kind::Echo, n, hold_secs));
        drop(echo);
        let dir = tempfile::tempdir().unwrap();
        let server = process::start_server(
            &binary,
            dir.path(),
            TOKEN,
            &[
                // Every visitor of the bench comes from loopback.
                ("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE_PER_ADDRESS", "0"),
                ("SWITCHBOARD__CHAT__CHATS_PER_MINUTE_PER_ADDRESS", "0"),
            ],
        );
        let chat_row = rt.block_on(measure(&server, Kind::Chat, n, hold_secs));
        drop(server);
        rows.push((n, echo_row, chat_row));
    }
    print(&rows, &cut_to, limit, hold_secs, &binary);
}

fn print(
    rows: &[(usize, Row, Row)],
    cut_to: &[(usize, usize)],
    limit: u64,
    hold_secs: u64,
    binary: &str,
) {
    println!("# Chats held open ({binary}; held {hold_secs} s; open-file limit {limit})\n");
    println!("| chats | server | anonymous memory before | after | per chat | time to open | open p50 | open p99 | failed to open | dropped | round trip p50 | p99 | visitor → agent p99 | agent → visitor p50 | p99 | not answered |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut short = Vec::new();
    for (n, echo, chat) in rows {
        for (name, r) in [("bare websocket echo", echo), ("**Switchboard**", chat)] {
            println!(
                "| {n} | {name} | {:.1} MiB | {:.1} MiB | **{:.1} KiB** | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.anon_before_kib as f64 / 1024.0,
                r.anon_after_kib as f64 / 1024.0,
                r.per_chat_kib(),
                r.open_secs,
                r.open_ms.show(0.5, "failed"),
                r.open_ms.show(0.99, "failed"),
                r.failed_to_open,
                r.dropped,
                r.round_trip.show(0.5, "failed"),
                r.round_trip.show(0.99, "failed"),
                r.to_agent.show(0.99, "failed"),
                r.to_visitor.show(0.5, "failed"),
                r.to_visitor.show(0.99, "failed"),
                r.round_trip.missing(),
            );
            if r.failed_to_open + r.dropped + r.round_trip.missing() > 0 {
                short.push(format!(
                    "{name} at {n}: {} failed to open, {} dropped, {} not answered",
                    r.failed_to_open,
                    r.dropped,
                    r.round_trip.missing()
                ));
            }
        }
    }
    println!(
        "\nPer chat: the growth of the server's anonymous memory from before the first chat opened to {hold_secs} s after the last, over the chats open. Time to open: from the first connection to the last chat's first message acknowledged. The relay: {} visitors of {AGENTS} agents, {ROUND_TRIPS} messages each, {} ms apart; the echo's round trip on as many connections.",
        AGENTS * CHATS_PER_AGENT,
        PACE.as_millis()
    );
    for (asked, n) in cut_to {
        println!("Not measured at {asked} chats: the open-file limit ({limit}) holds at most {n} (the server needs a file per chat); raise the hard limit (`ulimit -Hn`, or LimitNOFILE under systemd) to measure it.");
    }

    if short.is_empty() {
        println!("Kept up: every chat opened and stayed, and every message was answered.");
    } else {
        println!("Did not keep up: {}.", short.join("; "));
    }
}
