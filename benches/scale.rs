//! The scale curve: how intake, routing and memory grow with the size of the centre —
//! from 100 to 10,000 agents logged in, and from 1,000 to 1,000,000 customers in the
//! history. Each size runs the real server (the release binary, its own process, so its
//! CPU and memory are its own) on a fresh SQLite database seeded to that size; every
//! figure is also given as a ratio to the smallest size, measured in the same run.
//!
//!     cargo bench --bench scale
//!     SCALE_CUSTOMERS=1000,100000 SCALE_AGENTS=100,1000 cargo bench --bench scale
//!     SCALE_CUSTOMERS= SCALE_AGENTS=10000 SCALE_SERVER=/path/to/switchboard cargo bench --bench scale
//!
//! Customers: each has an email identity and three history events (created, identity
//! added, an earlier contact). Against each size: 32 clients file contacts from returning
//! customers (found by email among all of them) as fast as they are answered, for 5 s;
//! then one client reads customers by email and their history pages.
//!
//! Agents: all logged in over the agent websocket and available; contacts arrive at 100 a
//! second for 5 s and the agents accept and complete each at once. Measured: contact →
//! offer latency, the server's CPU per contact, and its memory per agent logged in.
//!
//! Every contact sent counts. A POST that fails (or a lookup, or a history read) is
//! counted and is in the percentiles as a failure; a contact accepted but not offered
//! within `SCALE_DRAIN_SECS` (10) of the last POST is counted and is in the offer
//! percentiles as never offered, and one offered but not completed by then is counted as
//! not completed. The server's CPU is read when the first contact is sent and again when
//! every accepted one is completed (or the drain is over), and divided by the contacts
//! accepted. A size with any of these did not keep up, and the closing line says so.
//! `SCALE_SECS` (5) sets how long contacts are sent at each size.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio_tungstenite::tungstenite::Message;

#[path = "common/latency.rs"]
mod latency;
use latency::Latencies;

const TOKEN: &str = "scale-token";

fn secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn sizes(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// The server binary on its own data directory.
struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(dir: tempfile::TempDir) -> Server {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rules = dir.path().join("routing.toml");
        std::fs::write(
            &rules,
            include_str!("../config/routing.toml").replace("wrap_up_secs = 30", "wrap_up_secs = 0"),
        )
        .unwrap();
        // SCALE_SERVER: another build of the server, measured the same way.
        let binary = std::env::var("SCALE_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchboard").to_string());
        let mut child = Command::new(binary)
            .env(
                "SWITCHBOARD__SERVER__HTTP_ADDR",
                format!("127.0.0.1:{port}"),
            )
            .env("SWITCHBOARD__STORAGE__DATA_DIR", dir.path())
            .env("SWITCHBOARD__API__ADMIN_TOKEN", TOKEN)
            .env("SWITCHBOARD__EMAIL__SMTP_ADDR", "")
            .env("SWITCHBOARD__LOG__LEVEL", "warn")
            .env("SWITCHBOARD__ROUTING__RULES_FILE", &rules)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with("Switchboard listening on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// (CPU seconds so far, resident memory in MiB).
    fn usage(&self) -> (f64, f64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, r)| {
                r.split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
        let rss_kib: f64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        (ticks as f64 / 100.0, rss_kib / 1024.0)
    }

    fn stop(mut self) -> tempfile::TempDir {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        self.dir
    }
}

/// A fresh data directory with the schema in place (the server migrates at start).
fn fresh() -> tempfile::TempDir {
    Server::start(tempfile::tempdir().unwrap()).stop()
}

async fn open(dir: &std::path::Path) -> SqliteConnection {
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}/switchboard.db", dir.display()))
            .unwrap()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
    SqliteConnection::connect_with(&options).await.unwrap()
}

fn customer_id(i: u64) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

/// Seeds `n` customers, each with an email identity and three history events.
async fn seed_customers(dir: &std::path::Path, n: u64) {
    let mut db = open(dir).await;
    let now = 1_790_000_000_000i64;
    const BATCH: u64 = 500;
    let mut tx = db.begin().await.unwrap();
    for start in (0..n).step_by(BATCH as usize) {
        let end = (start + BATCH).min(n);
        let rows = |cols: usize| {
            (0..(end - start) as usize)
                .map(|r| {
                    let p: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
                    format!("({})", p.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!(
            "INSERT INTO customers (id, name, created_at, updated_at) VALUES {}",
            rows(4)
        );
        let mut q = sqlx::query(&sql);
        for i in start..end {
            q = q
                .bind(customer_id(i))
                .bind(format!("Customer {i}"))
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *tx).await.unwrap();
        let sql = format!(
            "INSERT INTO customer_identities (kind, value, customer_id, created_at) VALUES {}",
            rows(4)
        );
        let mut q = sqlx::query(&sql);
        for i in start..end {
            q = q
                .bind("email")
                .bind(format!("c{i}@scale.example"))
                .bind(customer_id(i))
                .bind(now);
        }
        q.execute(&mut *tx).await.unwrap();
        let sql = format!("INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data) VALUES {}", rows(6));
        for (kind, data) in [
            ("customer_created", r#"{"channel":"api","name":null}"#),
            ("identity_added", r#"{"channel":"api","kind":"email"}"#),
            ("note", r#"{"text":"an earlier contact"}"#),
        ] {
            let mut q = sqlx::query(&sql);
            for i in start..end {
                q = q
                    .bind(customer_id(i))
                    .bind(None::<String>)
                    .bind(kind)
                    .bind(now)
                    .bind("system")
                    .bind(data);
            }
            q.execute(&mut *tx).await.unwrap();
        }
        if end % 100_000 == 0 {
            tx.commit().await.unwrap();
            tx = db.begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await
        .unwrap();
}

/// Seeds `n` active agents with known tokens (`agent-{i}`).
async fn seed_agents(dir: &std::path::Path, n: u64) {
    let mut db = open(dir).await;
    let mut tx = db.begin().await.unwrap();
    for i in 0..n {
        let digest: String = Sha256::digest(format!("agent-{i}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        sqlx::query("INSERT INTO agents (id, name, level, skills, token_sha256, active, created_at, updated_at, role) VALUES ($1, $2, 3, '[]', $3, 1, 0, 0, 'agent')")
            .bind(format!("00000000-0000-7000-9000-{i:012}"))
            .bind(format!("Agent {i}"))
            .bind(digest)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

struct CustomerRow {
    customers: u64,
    contacts_per_sec: f64,
    sent: usize,
    intake: Latencies,
    lookups: Latencies,
    histories: Latencies,
    rss: f64,
    db_mib: f64,
}

async fn customers_at(n: u64) -> CustomerRow {
    let dir = fresh();
    seed_customers(dir.path(), n).await;
    let db_mib = std::fs::metadata(dir.path().join("switchboard.db"))
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(0.0);
    let server = Server::start(dir);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    // Returning customers, spread over all of them.
    let next = Arc::new(AtomicU64::new(0));
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + secs("SCALE_SECS", 5);
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (client, base, next, lat, failed) = (
            client.clone(),
            base.clone(),
            next.clone(),
            lat.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let who = (k.wrapping_mul(2_654_435_761)) % n;
                let t0 = Instant::now();
                let r = client
                    .post(format!("{base}/api/interactions"))
                    .bearer_auth(TOKEN)
                    .json(&json!({ "idempotency_key": format!("s-{k}"), "customer": { "email": format!("c{who}@scale.example") }, "subject": "scale" }))
                    .send()
                    .await;
                if matches!(r, Ok(ref r) if r.status().as_u16() == 201) {
                    lat.lock().unwrap().push(t0.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let began = Instant::now();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = began.elapsed().as_secs_f64();
    let intake = lat.lock().unwrap().clone();
    let failed = failed.load(Ordering::Relaxed) as usize;
    let contacts_per_sec = intake.len() as f64 / elapsed;
    // The queue the load left settles first; the first reads warm the caches.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut lookups, mut histories) = (Vec::new(), Vec::new());
    let (mut lookups_failed, mut histories_failed) = (0, 0);
    for k in 0..350u64 {
        let who = (k.wrapping_mul(40_503) + 7) % n;
        let t0 = Instant::now();
        let found = async {
            let r = client
                .get(format!("{base}/api/customers?email=c{who}%40scale.example"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?;
            if r.status() != 200 {
                return None;
            }
            let c: Value = r.json().await.ok()?;
            c["id"].as_str().map(str::to_string)
        }
        .await;
        let lookup = t0.elapsed().as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        let history = match &found {
            Some(id) => {
                let r = client
                    .get(format!("{base}/api/customers/{id}/history"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
            None => false,
        };
        let history_ms = t0.elapsed().as_secs_f64() * 1000.0;
        // The first fifty warm the caches.
        if k < 50 {
            continue;
        }
        match found {
            Some(_) => lookups.push(lookup),
            None => lookups_failed += 1,
        }
        if history {
            histories.push(history_ms);
        } else {
            histories_failed += 1;
        }
    }
    let rss = server.usage().1;
    server.stop();
    CustomerRow {
        customers: n,
        contacts_per_sec,
        sent: intake.len() + failed,
        intake: Latencies::new(intake, failed),
        lookups: Latencies::new(lookups, lookups_failed),
        histories: Latencies::new(histories, histories_failed),
        rss,
        db_mib,
    }
}

struct AgentRow {
    agents: u64,
    sent: usize,
    failed: usize,
    offer: Latencies,
    not_completed: usize,
    cpu_ms_per_contact: f64,
    rss_idle: f64,
    rss_logged_in: f64,
}

/// What the desktops saw: contact key → when first offered and its interaction id;
/// interactions whose completion the server confirmed.
#[derive(Default)]
struct Desks {
    offered: HashMap<String, (Instant, String)>,
    completed: std::collections::HashSet<String>,
}

async fn agents_at(n: u64) -> AgentRow {
    let dir = fresh();
    seed_agents(dir.path(), n).await;
    let server = Server::start(dir);
    let base = server.base.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, rss_idle) = server.usage();
    let desks_saw: Arc<Mutex<Desks>> = Arc::default();
    let ready = Arc::new(AtomicU64::new(0));
    let mut desks = Vec::new();
    let url = format!("{}/agent/ws", base.replacen("http://", "ws://", 1));
    for i in 0..n {
        let (desks_saw, ready, url) = (desks_saw.clone(), ready.clone(), url.clone());
        desks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for frame in [
                json!({ "type": "login", "token": format!("agent-{i}") }),
                json!({ "type": "presence", "status": "available" }),
            ] {
                ws.send(Message::Text(frame.to_string().into())).await.unwrap();
            }
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let v: Value = serde_json::from_str(&t).unwrap();
                let answer = match v["type"].as_str() {
                    Some("presence") => {
                        ready.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some("offer") => {
                        let key = v["interaction"]["contact_key"].as_str().unwrap_or_default().to_string();
                        let id = v["interaction"]["id"].as_str().unwrap_or_default().to_string();
                        desks_saw.lock().unwrap().offered.entry(key).or_insert_with(|| (Instant::now(), id));
                        json!({ "type": "accept", "offer_id": v["offer_id"] })
                    }
                    Some("assigned") => json!({ "type": "complete", "interaction_id": v["interaction_id"], "disposition": "resolved" }),
                    Some("completed") => {
                        let id = v["interaction_id"].as_str().unwrap_or_default().to_string();
                        desks_saw.lock().unwrap().completed.insert(id);
                        continue;
                    }
                    _ => continue,
                };
                if ws.send(Message::Text(answer.to_string().into())).await.is_err() {
                    break;
                }
            }
        }));
        // Logins at a steady pace, as a shift starts.
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.load(Ordering::Relaxed), n, "every agent logged in");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss_logged_in) = server.usage();
    let client = reqwest::Client::new();
    // Contact key → when its POST was sent, for the accepted ones.
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let interval = Duration::from_millis(10);
    let run = secs("SCALE_SECS", 5);
    let start = Instant::now();
    let mut posts = Vec::new();
    let mut k = 0u32;
    while start.elapsed() < run {
        tokio::time::sleep_until((start + interval * k).into()).await;
        k += 1;
        let (client, base, accepted) = (client.clone(), base.clone(), accepted.clone());
        posts.push(tokio::spawn(async move {
            let key = format!("a-{k}");
            let t0 = Instant::now();
            let r = client
                .post(format!("{base}/api/interactions"))
                .bearer_auth(TOKEN)
                .json(&json!({ "idempotency_key": key, "customer": { "email": format!("c{}@agents.example", k % 500) }, "subject": "scale" }))
                .send()
                .await;
            if matches!(r, Ok(ref r) if r.status().as_u16() == 201) {
                accepted.lock().unwrap().insert(key, t0);
            }
        }));
    }
    let sent = posts.len();
    for p in posts {
        // A POST whose task panicked is not in `accepted`: counted as failed below.
        let _ = p.await;
    }
    // The work is done when every accepted contact is offered and completed.
    let deadline = Instant::now() + secs("SCALE_DRAIN_SECS", 10);
    loop {
        let done = {
            let (accepted, saw) = (accepted.lock().unwrap(), desks_saw.lock().unwrap());
            accepted.keys().all(|key| {
                saw.offered
                    .get(key)
                    .is_some_and(|(_, id)| saw.completed.contains(id))
            })
        };
        if done || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu1, _) = server.usage();
    for d in desks {
        d.abort();
    }
    server.stop();
    let accepted = accepted.lock().unwrap();
    let saw = desks_saw.lock().unwrap();
    let lat: Vec<f64> = accepted
        .iter()
        .filter_map(|(key, t0)| {
            Some(saw.offered.get(key)?.0.duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    let never_offered = accepted.len() - lat.len();
    let not_completed = accepted
        .keys()
        .filter(|key| {
            !saw.offered
                .get(*key)
                .is_some_and(|(_, id)| saw.completed.contains(id))
        })
        .count();
    AgentRow {
        agents: n,
        sent,
        failed: sent - accepted.len(),
        offer: Latencies::new(lat, never_offered),
        not_completed,
        cpu_ms_per_contact: (cpu1 - cpu0) * 1000.0 / accepted.len().max(1) as f64,
        rss_idle,
        rss_logged_in,
    }
}

fn main() {
    // Thousands of agents' sockets, at both ends.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads and writes only the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let customers = sizes("SCALE_CUSTOMERS", &[1_000, 10_000, 100_000, 1_000_000]);
    let agents = sizes("SCALE_AGENTS", &[100, 1_000, 10_000]);

    println!("# Scale: customers in the history\n");
    println!("| customers | contacts/s (32 clients) | × smallest | sent | failed | intake p99 | lookup by email p50 | p99 | history page p50 | p99 | server memory | database |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first = None;
    let mut short = Vec::new();
    for n in customers {
        let r = rt.block_on(customers_at(n));
        let base = *first.get_or_insert(r.contacts_per_sec);
        println!(
            "| {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {:.0} MiB |",
            r.customers,
            r.contacts_per_sec,
            r.contacts_per_sec / base,
            r.sent,
            r.intake.missing(),
            r.intake.show(0.99, "failed"),
            r.lookups.show(0.5, "failed"),
            r.lookups.show(0.99, "failed"),
            r.histories.show(0.5, "failed"),
            r.histories.show(0.99, "failed"),
            r.rss,
            r.db_mib
        );
        let failed = r.intake.missing() + r.lookups.missing() + r.histories.missing();
        if failed > 0 {
            short.push(format!(
                "{} customers: {} contacts failed, {} lookups and {} history pages failed",
                r.customers,
                r.intake.missing(),
                r.lookups.missing(),
                r.histories.missing()
            ));
        }
    }

    println!("\n# Scale: agents logged in (100 contacts/s, accepted and completed at once)\n");
    println!("| agents | sent | failed | never offered | not completed | contact → offer p50 | p99 | server CPU per contact accepted | × smallest | memory idle | memory logged in | per agent |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first = None;
    for n in agents {
        let r = rt.block_on(agents_at(n));
        let base = *first.get_or_insert(r.cpu_ms_per_contact);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} ms | {:.2} | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
            r.agents,
            r.sent,
            r.failed,
            r.offer.missing(),
            r.not_completed,
            r.offer.show(0.5, "never offered"),
            r.offer.show(0.99, "never offered"),
            r.cpu_ms_per_contact,
            r.cpu_ms_per_contact / base,
            r.rss_idle,
            r.rss_logged_in,
            (r.rss_logged_in - r.rss_idle) * 1024.0 / r.agents as f64
        );
        if r.failed + r.offer.missing() + r.not_completed > 0 {
            short.push(format!(
                "{} agents: {} contacts failed, {} never offered, {} not completed",
                r.agents,
                r.failed,
                r.offer.missing(),
                r.not_completed
            ));
        }
    }
    if short.is_empty() {
        println!("\nKept up at every size: every contact and read sent succeeded, every contact was offered and completed.");
    } else {
        println!("\nDid not keep up: {}.", short.join("; "));
    }
}
