//! `switchboard-load`: drives a Switchboard the way its users do, every channel at once —
//! phone systems posting signed call events, mail servers delivering over SMTP, chat
//! visitors on websockets — while simulated agents on the agent websocket accept each
//! offer, hold it for a handling time and complete it. It counts what each channel had
//! acknowledged, itself, and reports per channel: contacts accepted per second, the time
//! from a contact being sent to its offer reaching an agent (p50/p95/p99/max), offers per
//! second, errors; and the server's CPU and memory when it runs the server.
//!
//! With `--kill-every N` it is the crash test: the server it started is killed with
//! SIGKILL every N seconds and restarted on the same data, under the same load; at the
//! end every contact any channel acknowledged must be there exactly once.
//!
//!     cargo run --release -p switchboard-load -- --rate 30 --secs 20 --agents 30
//!     cargo run --release -p switchboard-load -- --rate 30 --secs 40 --kill-every 8
//!     cargo run --release -p switchboard-load -- --url http://10.0.0.5:8080 --token … --phone-secret … --smtp 10.0.0.5:2525

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

mod bare;

#[derive(Debug, Parser)]
#[command(
    about = "Drives a Switchboard with phone, email and chat contacts and agents that work them"
)]
struct Args {
    /// A running server to drive; without it, the release binary is started on a fresh
    /// data directory.
    #[arg(long)]
    url: Option<String>,
    /// The server binary to start (without --url).
    #[arg(long, default_value = "target/release/switchboard")]
    binary: String,
    /// The admin token (with --url).
    #[arg(long)]
    token: Option<String>,
    /// The phone channel's secret (with --url).
    #[arg(long)]
    phone_secret: Option<String>,
    /// The SMTP listener (with --url).
    #[arg(long)]
    smtp: Option<String>,
    /// Contacts per second, all channels together.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Shares of phone, email and chat, as phone=N,email=N,chat=N.
    #[arg(long, default_value = "phone=40,email=30,chat=30")]
    mix: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Agents working the contacts.
    #[arg(long, default_value_t = 30)]
    agents: usize,
    /// Seconds an agent holds each contact before completing it.
    #[arg(long, default_value_t = 1.0)]
    handle_secs: f64,
    /// Seconds of wrap-up after each contact, in the rules of a server it starts.
    #[arg(long, default_value_t = 0)]
    wrap_up_secs: u64,
    /// The crash test: SIGKILL the server it started every this many seconds, restart it
    /// on the same data, and check afterwards that every acknowledged contact is there
    /// exactly once.
    #[arg(long)]
    kill_every: Option<u64>,
    /// The database of a server it starts (an empty PostgreSQL database, say); by default
    /// a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// A shell command that restarts the database (`pg_ctlcluster 15 main restart`), run
    /// every --restart-every seconds under the load; then the same check as the crash
    /// test follows.
    #[arg(long, requires = "restart_every")]
    restart_database: Option<String>,
    /// Seconds between database restarts.
    #[arg(long, requires = "restart_database")]
    restart_every: Option<u64>,
    /// Then run the same load against bare endpoints of the same stack (axum, sqlx on
    /// SQLite with the same durability, tokio): a webhook and an SMTP listener that only
    /// insert a row, and a websocket that only echoes; and report every figure as a
    /// ratio to theirs.
    #[arg(long)]
    baseline: bool,
    /// Serve the bare endpoints from this data directory (what --baseline starts).
    #[arg(long, hide = true)]
    serve_bare: Option<String>,
}

const CHANNELS: [&str; 3] = ["phone", "email", "chat"];

/// A contact a channel acknowledged: (channel, key, the query naming its customer).
type Acked = (&'static str, String, String);

/// What one channel saw.
#[derive(Default)]
struct Tally {
    accepted: u64,
    errors: u64,
    offers: u64,
    /// Contact sent → offer on a desktop (µs).
    to_offer: Vec<u64>,
    /// Contact sent → the channel's acknowledgement (µs).
    to_ack: Vec<u64>,
}

#[derive(Default)]
struct Shared {
    tallies: HashMap<&'static str, Tally>,
    /// Contact key → when it was sent, and its channel.
    sent: HashMap<String, (Instant, &'static str)>,
    /// Every acknowledged contact, as this generator counted it.
    acked: Vec<Acked>,
}

type State = Arc<Mutex<Shared>>;

struct Server {
    child: Mutex<Option<Child>>,
    /// How to start it again (the crash test).
    command: Option<Mutex<Command>>,
    base: String,
    token: String,
    phone_secret: String,
    smtp: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.lock().unwrap().as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// SIGKILL, then the same server again on the same data and ports.
    fn crash_and_restart(&self) {
        let Some(command) = &self.command else { return };
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let child = spawn(&mut command.lock().unwrap());
        *self.child.lock().unwrap() = Some(child);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server binary and waits until it listens.
fn spawn(command: &mut Command) -> Child {
    use std::io::BufRead;
    let mut child = command
        .spawn()
        .expect("the server binary starts (build it with cargo build --release)");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the server prints where it listens")
            .unwrap();
        if line.contains(" listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    child
}

fn start(args: &Args) -> Server {
    if let Some(url) = &args.url {
        return Server {
            child: Mutex::new(None),
            command: None,
            base: url.trim_end_matches('/').to_string(),
            token: args.token.clone().expect("--token with --url"),
            phone_secret: args
                .phone_secret
                .clone()
                .expect("--phone-secret with --url"),
            smtp: args.smtp.clone().expect("--smtp with --url"),
            _dir: None,
        };
    }
    let dir = tempfile::tempdir().unwrap();
    // Fixed ports, so a restarted server is where the clients left it.
    let http = format!("127.0.0.1:{}", free_port());
    let smtp = format!("127.0.0.1:{}", free_port());
    let rules = dir.path().join("routing.toml");
    std::fs::write(
        &rules,
        include_str!("../../../config/routing.toml").replace(
            "wrap_up_secs = 30",
            &format!("wrap_up_secs = {}", args.wrap_up_secs),
        ),
    )
    .unwrap();
    let mut command = Command::new(&args.binary);
    command
        .env("SWITCHBOARD__SERVER__HTTP_ADDR", &http)
        .env("SWITCHBOARD__STORAGE__DATA_DIR", dir.path())
        .env("SWITCHBOARD__API__ADMIN_TOKEN", "load-token")
        .env("SWITCHBOARD__PHONE__SECRET", "load-secret")
        .env("SWITCHBOARD__PHONE__ANSWER_WINDOW_MS", "0")
        .env("SWITCHBOARD__EMAIL__SMTP_ADDR", &smtp)
        .env("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE", "100000")
        .env("SWITCHBOARD__CHAT__MAX_CHATS_PER_VISITOR", "100000")
        .env("SWITCHBOARD__LOG__LEVEL", "warn")
        .env("SWITCHBOARD__ROUTING__RULES_FILE", &rules)
        .env(
            "SWITCHBOARD__STORAGE__DATABASE_URL",
            args.database_url.clone().unwrap_or_default(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let child = spawn(&mut command);
    Server {
        child: Mutex::new(Some(child)),
        command: Some(Mutex::new(command)),
        base: format!("http://{http}"),
        token: "load-token".into(),
        phone_secret: "load-secret".into(),
        smtp,
        _dir: Some(dir),
    }
}

/// (utime + stime in clock ticks, RSS in KiB) of a process.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (field(11) + field(12), rss)
}

/// A contact is being sent: an offer for it is timed from now (it may come before the
/// acknowledgement does).
fn sending(state: &State, channel: &'static str, key: String, at: Instant) {
    state.lock().unwrap().sent.insert(key, (at, channel));
}

fn acked(state: &State, channel: &'static str, key: String, customer: String, sent: Instant) {
    let mut s = state.lock().unwrap();
    let t = s.tallies.entry(channel).or_default();
    t.accepted += 1;
    t.to_ack.push(sent.elapsed().as_micros() as u64);
    s.acked.push((channel, key, customer));
}

fn failed(state: &State, channel: &'static str) {
    state
        .lock()
        .unwrap()
        .tallies
        .entry(channel)
        .or_default()
        .errors += 1;
}

async fn phone_call(server: &Server, client: &reqwest::Client, state: &State, n: u64) {
    let call = format!("load-{n}");
    let number = format!("+4930{:07}", n % 100_000);
    let body = json!({ "event": "ringing", "call_id": call, "from": number, "to": "+4930999000" })
        .to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature =
        switchboard_phone::signature::native_sign(&server.phone_secret, ts, body.as_bytes());
    let began = Instant::now();
    sending(state, "phone", format!("native:{call}"), began);
    let sent = client
        .post(format!("{}/channels/phone/events", server.base))
        .header("x-switchboard-timestamp", ts.to_string())
        .header("x-switchboard-signature", signature)
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => acked(
            state,
            "phone",
            format!("native:{call}"),
            format!("phone={}", number.replace('+', "%2B")),
            began,
        ),
        _ => failed(state, "phone"),
    }
}

async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut full = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
            return full;
        }
        full.push_str(&l);
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return full;
        }
    }
}

async fn email(server: &Server, state: &State, n: u64) {
    let id = format!("load-{n}@load.example");
    let sender = format!("c{}@load.example", n % 100_000);
    let began = Instant::now();
    sending(state, "email", format!("email:{id}"), began);
    let result = async {
        let stream = tokio::net::TcpStream::connect(&server.smtp).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        reply(&mut r).await;
        let commands = [
            "EHLO load.example\r\n".to_string(),
            format!("MAIL FROM:<{sender}>\r\n"),
            "RCPT TO:<support@example.com>\r\n".into(),
            "DATA\r\n".into(),
        ];
        for cmd in commands {
            w.write_all(cmd.as_bytes()).await.ok()?;
            let a = reply(&mut r).await;
            if !(a.starts_with('2') || a.starts_with('3')) {
                return None;
            }
        }
        let msg = format!(
            "From: Customer <{sender}>\r\nTo: support@example.com\r\nSubject: Order {n}\r\nMessage-ID: <{id}>\r\n\r\nWhere is my order {n}?\r\n.\r\n"
        );
        w.write_all(msg.as_bytes()).await.ok()?;
        let a = reply(&mut r).await;
        let _ = w.write_all(b"QUIT\r\n").await;
        a.starts_with("250").then_some(())
    };
    match tokio::time::timeout(Duration::from_secs(10), result).await {
        Ok(Some(())) => acked(
            state,
            "email",
            format!("email:{id}"),
            format!("email={sender}"),
            began,
        ),
        _ => failed(state, "email"),
    }
}

async fn chat(server: &Server, state: &State, n: u64, until: Instant) {
    let url = format!("{}/channels/chat/ws", server.base.replacen("http", "ws", 1));
    let began = Instant::now();
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return failed(state, "chat");
    };
    let start = json!({ "type": "start", "visitor_id": format!("load-{n}") }).to_string();
    if ws.send(Message::Text(start.into())).await.is_err() {
        return failed(state, "chat");
    }
    let mut chat_id = None;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            if v["type"] == "started" {
                chat_id = v["chat_id"].as_str().map(str::to_string);
                break;
            }
        }
    }
    let Some(chat_id) = chat_id else {
        return failed(state, "chat");
    };
    sending(state, "chat", chat_id.clone(), began);
    acked(
        state,
        "chat",
        chat_id,
        format!("visitor_id=load-{n}"),
        began,
    );
    let hello = json!({ "type": "message", "id": "m1", "text": "Hello, I need help." });
    let _ = ws.send(Message::Text(hello.to_string().into())).await;
    // The visitor stays until the chat ends or the run does.
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"closed\"") => break,
            Ok(None) | Ok(Some(Err(_))) => break,
            _ => {}
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An agent: accepts every offer, holds each contact `hold`, completes it; logs in again
/// when its connection drops (a server killed under it), as a real desktop does.
async fn agent(
    server: Arc<Server>,
    client: reqwest::Client,
    state: State,
    n: usize,
    hold: Duration,
    until: Instant,
) {
    let a: Value = client
        .post(format!("{}/api/agents", server.base))
        .bearer_auth(&server.token)
        .json(&json!({ "name": format!("Load Agent {n}"), "capacity": { "chat": 3, "email": 3, "phone": 1 } }))
        .send()
        .await
        .expect("the server creates agents")
        .json()
        .await
        .unwrap();
    let url = format!("{}/agent/ws", server.base.replacen("http", "ws", 1));
    while Instant::now() < until {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((ws, _)) => work(ws, &a, &state, hold, until).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One desktop connection's work, until it drops or the run ends.
async fn work(ws: Ws, a: &Value, state: &State, hold: Duration, until: Instant) {
    let (mut tx, mut rx) = ws.split();
    let (out, mut outbox) = tokio::sync::mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(t) = outbox.recv().await {
            if tx.send(Message::Text(t.into())).await.is_err() {
                return;
            }
        }
    });
    let _ = out.send(json!({ "type": "login", "token": a["token"] }).to_string());
    let _ = out.send(json!({ "type": "presence", "status": "available" }).to_string());
    let mut beat = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = beat.tick() => { let _ = out.send(json!({ "type": "heartbeat" }).to_string()); }
            _ = tokio::time::sleep_until(until.into()) => break,
            f = rx.next() => {
                let t = match f {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => break,
                };
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "offer" {
                    let key = v["interaction"]["contact_key"].as_str().unwrap_or_default().to_string();
                    {
                        let mut s = state.lock().unwrap();
                        if let Some((at, channel)) = s.sent.get(&key).copied() {
                            let t = s.tallies.entry(channel).or_default();
                            t.offers += 1;
                            t.to_offer.push(at.elapsed().as_micros() as u64);
                        }
                    }
                    let _ = out.send(json!({ "type": "accept", "offer_id": v["offer_id"] }).to_string());
                } else if v["type"] == "welcome" {
                    // Work held from before a reconnect is finished too.
                    for held in v["assigned"].as_array().into_iter().flatten() {
                        let id = held["id"].clone();
                        let out = out.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(hold).await;
                            let done = json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" });
                            let _ = out.send(done.to_string());
                        });
                    }
                } else if v["type"] == "assigned" {
                    let id = v["interaction_id"].clone();
                    let out = out.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(hold).await;
                        let done = json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" });
                        let _ = out.send(done.to_string());
                    });
                }
            }
        }
    }
    drop(out);
    writer.abort();
}

/// The crash test's verdict: every contact a channel acknowledged is there, and its
/// customer (one per contact) has exactly one interaction.
async fn verify(server: &Server, client: &reqwest::Client, state: &State, kills: u64) -> bool {
    let acked: Vec<Acked> = state.lock().unwrap().acked.clone();
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
    for (channel, key, customer) in &acked {
        let encoded = key.replace(':', "%3A").replace('@', "%40");
        let path = format!(
            "{}/api/interactions?channel={channel}&key={encoded}",
            server.base
        );
        if get(path).await.0 != 200 {
            lost.push(key.clone());
            continue;
        }
        present += 1;
        let (_, c) = get(format!("{}/api/customers?{customer}", server.base)).await;
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
            duplicated.push((key.clone(), received));
        }
    }
    println!("\n## Crash test\n");
    println!("| kills | acknowledged | present | duplicated | lost |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {kills} | {} | {present} | {} | {} |",
        acked.len(),
        duplicated.len(),
        lost.len()
    );
    if !lost.is_empty() || !duplicated.is_empty() {
        eprintln!("lost: {lost:?}\nduplicated: {duplicated:?}");
        return false;
    }
    true
}

fn pct(v: &mut [u64], p: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    format!("{:.1} ms", v[i] as f64 / 1000.0)
}

/// What one run measured of the server: CPU and memory, when it runs the server.
struct Run {
    elapsed: f64,
    /// Seconds of CPU the server used, and its resident memory at the end (KiB).
    server: Option<(f64, u64)>,
}

/// Sends contacts at the chosen rate and mix for the run's length (with agents working
/// them, when there are any), and waits for every contact and agent to finish.
async fn generate(
    server: &Arc<Server>,
    client: &reqwest::Client,
    state: &State,
    args: &Args,
    agents: usize,
    faults: impl FnOnce(Instant),
) -> Run {
    let shares = shares(args);
    let total: f64 = shares.iter().sum();
    let run = Duration::from_secs(args.secs);
    // Agents keep working a little after the last contact, so late offers are counted.
    let until = Instant::now() + run + Duration::from_secs(5);
    let mut workers = Vec::new();
    for n in 0..agents {
        let hold = Duration::from_secs_f64(args.handle_secs);
        workers.push(tokio::spawn(agent(
            server.clone(),
            client.clone(),
            state.clone(),
            n,
            hold,
            until,
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.pid().map(usage);
    let started = Instant::now();
    faults(started);
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
        let (server, client, state) = (server.clone(), client.clone(), state.clone());
        tasks.push(tokio::spawn(async move {
            match CHANNELS[pick] {
                "phone" => phone_call(&server, &client, &state, n).await,
                "email" => email(&server, &state, n).await,
                _ => chat(&server, &state, n, until).await,
            }
        }));
        next += interval;
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = server.pid().map(usage);
    for t in tasks {
        let _ = t.await;
    }
    for a in workers {
        let _ = a.await;
    }
    Run {
        elapsed,
        // Clock ticks are 100 a second on Linux.
        server: before
            .zip(after)
            .map(|((t0, _), (t1, rss))| (t1.saturating_sub(t0) as f64 / 100.0, rss)),
    }
}

/// The shares of phone, email and chat asked for by --mix.
fn shares(args: &Args) -> Vec<f64> {
    CHANNELS
        .iter()
        .map(|c| {
            args.mix
                .split(',')
                .find_map(|p| {
                    p.trim()
                        .strip_prefix(&format!("{c}="))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0.0)
        })
        .collect()
}

/// Prints what each channel got, as a Markdown table.
fn report(state: &State, elapsed: f64, offers: bool) {
    let mut s = state.lock().unwrap();
    if offers {
        println!("| channel | accepted/s | errors | ack p50 | ack p99 | offers/s | contact → offer p50 | p95 | p99 | max |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!("| channel | accepted/s | errors | ack p50 | ack p99 |");
        println!("|---|---:|---:|---:|---:|");
    }
    for c in CHANNELS {
        let t = s.tallies.entry(c).or_default();
        let mut ack = t.to_ack.clone();
        let mut lat = t.to_offer.clone();
        let first = format!(
            "| {c} | {:.1} | {} | {} | {} |",
            t.accepted as f64 / elapsed,
            t.errors,
            pct(&mut ack, 0.50),
            pct(&mut ack, 0.99),
        );
        if offers {
            println!(
                "{first} {:.1} | {} | {} | {} | {} |",
                t.offers as f64 / elapsed,
                pct(&mut lat, 0.50),
                pct(&mut lat, 0.95),
                pct(&mut lat, 0.99),
                pct(&mut lat, 1.0)
            );
        } else {
            println!("{first}");
        }
    }
}

/// The acknowledgement latency at `p` of one channel, in µs.
fn ack_at(state: &State, channel: &str, p: f64) -> Option<f64> {
    let s = state.lock().unwrap();
    let mut v = s.tallies.get(channel)?.to_ack.clone();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i] as f64)
}

fn accepted(state: &State) -> u64 {
    state
        .lock()
        .unwrap()
        .tallies
        .values()
        .map(|t| t.accepted)
        .sum()
}

/// The bare stack: the same load, against endpoints that do only the least a durable
/// channel must (read, insert one row in SQLite with the same durability, answer), and
/// every figure of the Switchboard run as a ratio to theirs.
async fn baseline(args: &Args, client: &reqwest::Client, ours: &State, our_run: &Run) {
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let smtp = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .arg("--serve-bare")
        .arg(dir.path())
        .env("BARE_HTTP", &http)
        .env("BARE_SMTP", &smtp)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let child = spawn(&mut command);
    let server = Arc::new(Server {
        child: Mutex::new(Some(child)),
        command: None,
        base: format!("http://{http}"),
        token: String::new(),
        phone_secret: "load-secret".into(),
        smtp,
        _dir: Some(dir),
    });
    let state: State = Arc::default();
    let run = generate(&server, client, &state, args, 0, |_| {}).await;
    println!("\n## The bare stack, same load, same run\n");
    report(&state, run.elapsed, false);
    println!(
        "\n## Switchboard as a ratio to the bare stack (1.0 = as cheap as the bare minimum)\n"
    );
    println!("| channel | ack p50 | ack p99 |");
    println!("|---|---:|---:|");
    for c in CHANNELS {
        let ratio = |p| match (ack_at(ours, c, p), ack_at(&state, c, p)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "-".into(),
        };
        println!("| {c} | {} | {} |", ratio(0.50), ratio(0.99));
    }
    if let (Some((cpu, rss)), Some((bare_cpu, bare_rss))) = (our_run.server, run.server) {
        let per = |cpu: f64, n: u64| cpu * 1000.0 / n.max(1) as f64;
        let (a, b) = (per(cpu, accepted(ours)), per(bare_cpu, accepted(&state)));
        println!(
            "\nserver CPU per 1,000 contacts: Switchboard {a:.2} s (routing and agents included), bare {b:.2} s: {:.1}×",
            a / b.max(1e-9)
        );
        println!(
            "server memory: Switchboard {:.1} MiB, bare {:.1} MiB",
            rss as f64 / 1024.0,
            bare_rss as f64 / 1024.0
        );
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.serve_bare {
        bare::serve(dir).await;
        return std::process::ExitCode::SUCCESS;
    }
    let total: f64 = shares(&args).iter().sum();
    assert!(
        total > 0.0 && args.rate > 0.0,
        "--mix and --rate must ask for some contacts"
    );
    assert!(
        args.kill_every.is_none() || args.url.is_none(),
        "the crash test kills the server it starts: leave out --url"
    );
    let server = Arc::new(start(&args));
    let client = reqwest::Client::new();
    let state: State = Arc::default();
    let run_for = Duration::from_secs(args.secs);
    let kills = Arc::new(AtomicU64::new(0));
    let restarts = Arc::new(AtomicU64::new(0));
    let mut faults = Vec::new();
    let run = generate(&server, &client, &state, &args, args.agents, |started| {
        if let Some(every) = args.kill_every {
            let (server, kills) = (server.clone(), kills.clone());
            faults.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(every)).await;
                    if started.elapsed() + Duration::from_secs(1) >= run_for {
                        return;
                    }
                    let s = server.clone();
                    let _ = tokio::task::spawn_blocking(move || s.crash_and_restart()).await;
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        if let (Some(cmd), Some(every)) = (args.restart_database.clone(), args.restart_every) {
            let restarts = restarts.clone();
            faults.push(tokio::spawn(async move {
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
    })
    .await;
    for f in faults {
        f.abort();
    }
    println!(
        "# switchboard-load: {:.0} contacts/s for {} s ({}), {} agents holding each {:.1} s, {} s wrap-up\n",
        args.rate, args.secs, args.mix, args.agents, args.handle_secs, args.wrap_up_secs
    );
    report(&state, run.elapsed, true);
    // CPU is read from one process: not across the crash test's restarts.
    if let (Some((cpu, rss)), None) = (run.server, args.kill_every) {
        println!(
            "\nserver: {:.0}% of one core, {:.1} MiB resident",
            cpu / run.elapsed * 100.0,
            rss as f64 / 1024.0
        );
    }
    if args.kill_every.is_some() || args.restart_database.is_some() {
        println!("\ndatabase restarts: {}", restarts.load(Ordering::SeqCst));
        let ok = verify(&server, &client, &state, kills.load(Ordering::SeqCst)).await;
        if !ok {
            return std::process::ExitCode::FAILURE;
        }
    }
    if args.baseline {
        if args.url.is_some() || args.kill_every.is_some() {
            eprintln!("--baseline compares with a server this run starts and keeps up: leave out --url and --kill-every");
            return std::process::ExitCode::FAILURE;
        }
        drop(server);
        baseline(&args, &client, &state, &run).await;
    }
    std::process::ExitCode::SUCCESS
}
