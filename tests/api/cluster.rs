//! Several nodes on one PostgreSQL database, as real server processes on loopback ports:
//! a contact taken by any node is offered once and assigned once; desktops and chat pages
//! on followers work as on the leader; the leader killed with SIGKILL under load, or cut
//! off from the database, hands the routing to another node within seconds with every
//! acknowledged contact kept once and none held by two agents; a rolling restart of
//! every node loses nothing. Two servers on one SQLite file are refused.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent_client::Desktop;
use crate::chat::Visitor;
use crate::helpers::{send, start_process_with, Backend, ServerProcess, TestApp, TOKEN};

/// The PostgreSQL server's admin URL (these tests need it: `bash .ci/run` starts it).
fn pg() -> Backend {
    match std::env::var("SWITCHBOARD_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Backend::Postgres(url),
        _ => panic!("SWITCHBOARD_TEST_PG_URL is not set: the cluster runs on PostgreSQL (bash .ci/run starts one)"),
    }
}

const PHONE_SECRET: &str = "cluster-phone-secret";

/// One node: its process and its own data directory.
struct Node {
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl Node {
    fn base(&self) -> &str {
        &self.process.base
    }
}

/// Starts a node on `db`.
fn node(db: &str) -> Node {
    node_with(db, &[])
}

/// Starts a node on `db` with `extra` settings (environment variables) besides.
fn node_with(db: &str, extra: &[(&str, &str)]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("SWITCHBOARD__AGENTS__RESUME_GRACE_SECS", "60"),
        ("SWITCHBOARD__PHONE__SECRET", PHONE_SECRET),
        ("SWITCHBOARD__PHONE__ANSWER_WINDOW_MS", "8000"),
    ];
    env.extend_from_slice(extra);
    let process = start_process_with(db, dir.path(), &env);
    Node { process, _dir: dir }
}

/// Starts `n` nodes on a fresh database.
async fn cluster(n: usize) -> (String, Vec<Node>) {
    let dir = tempfile::tempdir().unwrap();
    let db = pg().fresh_database(dir.path()).await;
    let nodes = (0..n).map(|_| node(&db)).collect();
    (db, nodes)
}

/// A client for one node, as the tests' other helpers expect.
fn app(base: &str) -> TestApp {
    crate::helpers::remote_app(base)
}

/// What `/readyz` says a node is.
async fn role(base: &str) -> Option<Value> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let v: Value = resp.json().await.ok()?;
    Some(v["role"].clone())
}

/// Waits until exactly one of `bases` leads; answers its index and epoch. Two nodes never
/// lead with one epoch; a node cut off from the database may say it leads with an older
/// one until it notices, for a few seconds at most (its writes are refused meanwhile).
async fn leader(bases: &[&str]) -> (usize, i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut both_since: Option<Instant> = None;
    loop {
        let mut leaders = Vec::new();
        for (i, b) in bases.iter().enumerate() {
            if let Some(r) = role(b).await {
                if r["role"] == "leader" {
                    leaders.push((i, r["epoch"].as_i64().unwrap()));
                }
            }
        }
        if leaders.len() == 1 {
            return leaders[0];
        }
        let epochs: HashSet<i64> = leaders.iter().map(|(_, e)| *e).collect();
        assert_eq!(
            epochs.len(),
            leaders.len(),
            "two nodes lead with one epoch: {leaders:?}"
        );
        if leaders.len() > 1 {
            let since = *both_since.get_or_insert_with(Instant::now);
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "a stale leader still says it leads after 5 s: {leaders:?}"
            );
        }
        assert!(Instant::now() < deadline, "no node leads after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts the shipped rules with no wrap-up in force, through `base` (any node: the
/// leader's router hears of the new version).
async fn no_wrap_up(base: &str) {
    let rules =
        include_str!("../../config/routing.toml").replace("wrap_up_secs = 30", "wrap_up_secs = 0");
    let (status, r) = send(
        reqwest::Client::new()
            .put(format!("{base}/api/routing/rules?comment=no+wrap-up"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/toml")
            .body(rules),
    )
    .await;
    assert_eq!(status, 200, "{r}");
}

/// A new extension for each agent made here.
fn next_extension() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(201);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        .to_string()
}

/// Creates an agent through `base`; answers its (id, token).
async fn agent(base: &str, name: &str) -> (String, String) {
    let (status, a) = send(
        reqwest::Client::new()
            .post(format!("{base}/api/agents"))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": name, "extension": next_extension(), "capacity": { "api": 1, "chat": 1 } })),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    (
        a["id"].as_str().unwrap().into(),
        a["token"].as_str().unwrap().into(),
    )
}

/// Posts a contact through `base`; answers its interaction id.
async fn contact(base: &str, key: &str) -> String {
    let (status, i) = send(
        reqwest::Client::new()
            .post(format!("{base}/api/interactions"))
            .bearer_auth(TOKEN)
            .json(&json!({ "idempotency_key": key, "customer": { "email": format!("{key}@example.com") } })),
    )
    .await;
    assert_eq!(status, 201, "{i}");
    i["id"].as_str().unwrap().into()
}

/// An interaction with its history, read through `base`.
async fn interaction(base: &str, id: &str) -> Value {
    let (status, i) = send(
        reqwest::Client::new()
            .get(format!("{base}/api/interactions/{id}"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{i}");
    i
}

fn count(i: &Value, kind: &str) -> usize {
    i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash .ci/run starts it"]
async fn three_nodes_offer_each_contact_once_and_relay_desktops_and_chats() {
    let (_db, nodes) = cluster(3).await;
    let bases: Vec<&str> = nodes.iter().map(Node::base).collect();
    let (lead, _) = leader(&bases).await;
    let followers: Vec<&str> = (0..3).filter(|i| *i != lead).map(|i| bases[i]).collect();
    no_wrap_up(followers[0]).await;
    // Agents made on one node, logged in on the followers.
    let (ana_id, ana) = agent(followers[0], "Ana").await;
    let (ben_id, ben) = agent(bases[lead], "Ben").await;
    let mut ana_desk = Desktop::available(followers[0], &ana).await;
    let mut ben_desk = Desktop::available(followers[1], &ben).await;
    // A contact on each node: each offered once, to one agent, and assigned once.
    let mut taken: HashMap<String, String> = HashMap::new();
    for (n, base) in bases.iter().enumerate() {
        let id = contact(base, &format!("cluster-{n}")).await;
        let offer = tokio::select! {
            o = ana_desk.expect("offer") => ("ana", o),
            o = ben_desk.expect("offer") => ("ben", o),
        };
        assert_eq!(offer.1["interaction"]["id"], id.as_str());
        let desk = if offer.0 == "ana" {
            &mut ana_desk
        } else {
            &mut ben_desk
        };
        desk.accept(&offer.1).await;
        desk.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
            .await;
        desk.expect("completed").await;
        taken.insert(id, offer.0.to_string());
    }
    for id in taken.keys() {
        // Read through another node than the one it came from: the store is one.
        let i = interaction(followers[1], id).await;
        assert_eq!((count(&i, "offered"), count(&i, "assigned")), (1, 1), "{i}");
    }
    // A chat page on a follower, its agent on the other follower.
    let page_app = app(followers[1]);
    let mut page = Visitor::connect(&page_app).await;
    page.start(json!({ "type": "start", "visitor_id": "v-cluster" }))
        .await;
    // Its first message puts it in line (sent again below: acknowledged, not repeated).
    page.write("m1", "hello from a follower").await;
    let chat_agent = tokio::select! {
        o = ana_desk.expect("offer") => (&mut ana_desk, o),
        o = ben_desk.expect("offer") => (&mut ben_desk, o),
    };
    let (desk, offer) = chat_agent;
    let chat = desk.accept(&offer).await;
    page.expect("agent_joined").await;
    page.send(json!({ "type": "message", "id": "m1", "text": "hello from a follower" }))
        .await;
    page.expect("ack").await;
    let said = desk.expect("message").await;
    assert_eq!(said["text"], "hello from a follower");
    desk.send(
        json!({ "type": "reply", "interaction_id": chat, "body": "hello back", "reply_id": "r1" }),
    )
    .await;
    assert_eq!(page.agent_message().await["text"], "hello back");
    desk.send(json!({ "type": "complete", "interaction_id": chat, "disposition": "resolved" }))
        .await;
    desk.expect("completed").await;
    // A call ringing on a follower, taken by an agent on the other follower within the
    // answer window: the follower's answer dials the agent (it heard of the assignment).
    let body =
        json!({ "event": "ringing", "call_id": "cluster-call", "from": "+4930123499" }).to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(PHONE_SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v1={hex}")
    };
    let ringing = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{}/channels/phone/events", followers[1]))
            .header("x-switchboard-timestamp", ts.to_string())
            .header("x-switchboard-signature", signature)
            .body(body)
            .send(),
    );
    let (offered_to, call_offer) = tokio::select! {
        o = ana_desk.expect("offer") => (ana_id.clone(), o),
        o = ben_desk.expect("offer") => (ben_id.clone(), o),
    };
    let desk = if offered_to == ana_id {
        &mut ana_desk
    } else {
        &mut ben_desk
    };
    desk.accept(&call_offer).await;
    let answer: Value = ringing.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        (answer["action"].as_str(), answer["agent_id"].as_str()),
        (Some("dial"), Some(offered_to.as_str())),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash .ci/run starts it"]
async fn the_leaders_death_costs_seconds_not_contacts() {
    let (db, mut nodes) = cluster(3).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base().to_string()).collect();
    let refs: Vec<&str> = bases.iter().map(String::as_str).collect();
    let (lead, epoch) = leader(&refs).await;
    no_wrap_up(&bases[(lead + 1) % 3]).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != lead).collect();
    // Agents on every node, working every contact at once (no wrap-up, hold a moment).
    let mut workers = Vec::new();
    let held_by: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    for (n, base) in bases.iter().enumerate() {
        for k in 0..2 {
            let (id, token) = agent(base, &format!("Agent {n}-{k}")).await;
            workers.push(tokio::spawn(work(
                bases.clone(),
                n,
                id,
                token,
                held_by.clone(),
            )));
        }
    }
    // Contacts posted to every node, round robin, for the whole test.
    let posting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let poster = tokio::spawn(post_round_robin(
        "rr".into(),
        bases.clone(),
        posting.clone(),
        acked.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The leader dies.
    let killed_at = Instant::now();
    let dead = nodes.remove(lead);
    drop(dead);
    let alive: Vec<&str> = survivors.iter().map(|i| bases[*i].as_str()).collect();
    let (new_lead, new_epoch) = leader(&alive).await;
    let failover = killed_at.elapsed();
    assert!(new_epoch > epoch);
    // Routing resumes: a contact posted now is offered and taken.
    let probe = contact(alive[new_lead], "after-the-death").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = interaction(alive[0], &probe).await;
        if count(&i, "assigned") == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "routing did not resume: {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    posting.store(false, std::sync::atomic::Ordering::SeqCst);
    poster.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "{} contacts acknowledged", acked.len());
    // Every acknowledged contact is there, once; none was held by two agents.
    let mut ids = HashSet::new();
    for (key, id) in &acked {
        let i = interaction(alive[0], id).await;
        assert_eq!(i["id"], id.as_str(), "{key}");
        assert!(ids.insert(id.clone()), "{key} acknowledged twice as {id}");
        assert!(count(&i, "assigned") <= 1, "assigned twice: {i}");
        assert_eq!(count(&i, "interaction_received"), 1, "{i}");
    }
    for (id, holders) in held_by.lock().unwrap().iter() {
        let distinct: HashSet<&String> = holders.iter().collect();
        assert!(distinct.len() <= 1, "{id} was held by {distinct:?}");
    }
    for w in workers {
        w.abort();
    }
    eprintln!(
        "failover: a new leader {:.2} s after the kill, routing again after {:.2} s; {} contacts acknowledged",
        failover.as_secs_f64(),
        resumed.as_secs_f64(),
        acked.len()
    );
    assert!(
        resumed < Duration::from_secs(10),
        "routing resumed {:.1} s after the leader's death",
        resumed.as_secs_f64()
    );
    let _ = db;
}

/// An agent on `bases[n]` accepting and completing every offer; when its node dies, it
/// logs in again through another node and resumes. Records who held what.
async fn work(
    bases: Vec<String>,
    n: usize,
    id: String,
    token: String,
    held_by: Arc<Mutex<HashMap<String, Vec<String>>>>,
) {
    let mut node = n;
    let mut resume: Option<(String, u64)> = None;
    loop {
        let base = &bases[node];
        let Some(mut desk) = try_login(base, &token, resume.as_ref()).await else {
            node = (node + 1) % bases.len();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        // Whatever the welcome says it holds is completed first.
        let held: Vec<String> = desk.welcome["assigned"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for h in held {
            desk.send(
                json!({ "type": "complete", "interaction_id": h, "disposition": "resolved" }),
            )
            .await;
        }
        desk.send(json!({ "type": "presence", "status": "available" }))
            .await;
        loop {
            let Some(v) = desk.next_within(Duration::from_secs(30)).await else {
                continue;
            };
            match v["type"].as_str() {
                Some("offer") => {
                    desk.send(json!({ "type": "accept", "offer_id": v["offer_id"] }))
                        .await
                }
                Some("assigned") => {
                    let i = v["interaction_id"].as_str().unwrap_or_default().to_string();
                    held_by
                        .lock()
                        .unwrap()
                        .entry(i.clone())
                        .or_default()
                        .push(id.clone());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    desk.send(json!({ "type": "complete", "interaction_id": i, "disposition": "resolved" }))
                        .await;
                }
                Some("closed") => break,
                _ => {}
            }
        }
        resume = Some((desk.session.clone(), desk.last_seq));
        node = (node + 1) % bases.len();
    }
}

async fn try_login(base: &str, token: &str, resume: Option<&(String, u64)>) -> Option<Desktop> {
    tokio::time::timeout(
        Duration::from_secs(5),
        crate::agent_client::Desktop::try_login(base, token, resume.map(|(s, n)| (s.as_str(), *n))),
    )
    .await
    .ok()
    .flatten()
}

/// Posts contacts to every node in turn while `posting`; keeps those acknowledged (201).
async fn post_round_robin(
    prefix: String,
    bases: Vec<String>,
    posting: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut n = 0u64;
    while posting.load(std::sync::atomic::Ordering::SeqCst) {
        let base = &bases[(n as usize) % bases.len()];
        let key = format!("{prefix}-{n}");
        n += 1;
        let resp = client
            .post(format!("{base}/api/interactions"))
            .bearer_auth(TOKEN)
            .json(&json!({ "idempotency_key": key, "customer": { "email": format!("rr{}@example.com", n % 50) } }))
            .send()
            .await;
        if let Ok(r) = resp {
            if r.status() == 201 {
                if let Ok(v) = r.json::<Value>().await {
                    acked
                        .lock()
                        .unwrap()
                        .push((key, v["id"].as_str().unwrap_or_default().to_string()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash .ci/run starts it"]
async fn a_leader_cut_off_from_the_database_is_fenced_and_another_leads() {
    let (db, nodes) = cluster(3).await;
    let bases: Vec<&str> = nodes.iter().map(Node::base).collect();
    let (lead, epoch) = leader(&bases).await;
    let node_id = reqwest::Client::new()
        .get(format!("{}/readyz", bases[lead]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["node"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Every connection of the leader's is terminated by the database.
    let admin = match pg() {
        Backend::Postgres(url) => url,
        Backend::Sqlite => unreachable!(),
    };
    crate::helpers::db_exec(
        &admin,
        "",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'switchboard-{node_id}'"
        ),
    )
    .await;
    // A lead with a newer epoch: the old one's writes are refused from then on.
    let deadline = Instant::now() + Duration::from_secs(20);
    let new_epoch = loop {
        let (_, e) = leader(&bases).await;
        if e > epoch {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no newer lead than epoch {epoch}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(new_epoch > epoch);
    // Routing works under the new lead, and nothing is assigned twice.
    let (_, token) = agent(bases[0], "Cy").await;
    let mut desk = Desktop::available(bases[(lead + 1) % 3], &token).await;
    let id = contact(bases[(lead + 2) % 3], "after-the-cut").await;
    let offer = desk.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], id.as_str());
    desk.accept(&offer).await;
    let i = interaction(bases[lead], &id).await;
    assert_eq!((count(&i, "offered"), count(&i, "assigned")), (1, 1), "{i}");
    let _ = db;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash .ci/run starts it"]
async fn a_rolling_restart_of_every_node_loses_nothing() {
    let (db, mut nodes) = cluster(3).await;
    let posting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let bases = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|n| n.base().to_string())
            .collect::<Vec<_>>(),
    ));
    let poster = {
        let (bases, posting, acked) = (bases.clone(), posting.clone(), acked.clone());
        tokio::spawn(async move {
            // Each round posts to the nodes alive at that moment.
            let mut round = 0;
            while posting.load(std::sync::atomic::Ordering::SeqCst) {
                let now: Vec<String> = bases.lock().unwrap().clone();
                let flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
                let part = Arc::new(Mutex::new(Vec::new()));
                let stop = flag.clone();
                let h = tokio::spawn(post_round_robin(
                    format!("round-{round}"),
                    now,
                    flag,
                    part.clone(),
                ));
                tokio::time::sleep(Duration::from_millis(300)).await;
                stop.store(false, std::sync::atomic::Ordering::SeqCst);
                h.await.unwrap();
                acked.lock().unwrap().append(&mut part.lock().unwrap());
                round += 1;
            }
        })
    };
    for i in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Stopped as an orchestrator stops it (SIGTERM), and started again.
        let old = nodes.remove(i);
        let pid = old.process.child.id() as i32;
        // SAFETY: kill only sends a signal to the child this test started.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let mut process = old.process;
        let _ = process.child.wait();
        let fresh = node(&db);
        bases.lock().unwrap()[i] = fresh.base().to_string();
        nodes.insert(i, fresh);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    posting.store(false, std::sync::atomic::Ordering::SeqCst);
    poster.await.unwrap();
    let refs: Vec<String> = bases.lock().unwrap().clone();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    leader(&refs).await;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "{} acknowledged", acked.len());
    let mut ids = HashSet::new();
    for (key, id) in &acked {
        let i = interaction(refs[0], id).await;
        assert_eq!(count(&i, "interaction_received"), 1, "{key}: {i}");
        assert!(ids.insert(id.clone()), "{key}: {id} twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_sqlite_file_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("switchboard.db").display()
    );
    let first = start_process_with(&db, dir.path(), &[]);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .env(
            "SWITCHBOARD_CONFIG",
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml"),
        )
        .env("SWITCHBOARD__SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD__STORAGE__DATA_DIR", dir.path())
        .env("SWITCHBOARD__STORAGE__DATABASE_URL", &db)
        .env("SWITCHBOARD__API__ADMIN_TOKEN", TOKEN)
        .env("SWITCHBOARD__EMAIL__SMTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("Another Switchboard server is running on the SQLite database")
            && said.contains("PostgreSQL"),
        "{said}"
    );
    // The first is unharmed.
    let (status, _) = send(reqwest::Client::new().get(format!("{}/healthz", first.base))).await;
    assert_eq!(status, 200);
}

/// The retention runs on the leader only: with two nodes configured alike, the month-old
/// mail loses its words once, by the leader's run, and the follower never runs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash .ci/run starts it"]
async fn only_the_leader_runs_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = pg().fresh_database(dir.path()).await;
    let month_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 31 * 86_400_000;
    let store = switchboard::store::Store::connect(&db, 1).await.unwrap();
    for sql in [
        "INSERT INTO customers (id, name, created_at, updated_at) VALUES ('c-old', NULL, $1, $1)",
        "INSERT INTO interactions (id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, tier_reason, \
         subject, body, state, created_at, updated_at) \
         VALUES ('i-old', 'email', 'k-old', 'h', 'c-old', 'low', 'default', 'r', 'Old subject', 'old words', 'completed', $1, $1)",
        "INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data) \
         VALUES ('c-old', 'i-old', 'email_received', $1, 'email', '{\"from\":\"old@example.com\",\"text\":\"old words\"}')",
    ] {
        sqlx::query(sql).bind(month_ago).execute(store.pool()).await.unwrap();
    }
    let retention = [("SWITCHBOARD__RETENTION__EMAIL_DAYS", "30")];
    let nodes = [node_with(&db, &retention), node_with(&db, &retention)];
    let bases = [nodes[0].base(), nodes[1].base()];
    let (lead, _) = leader(&bases).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let data: String =
            sqlx::query_scalar("SELECT data FROM history WHERE interaction_id = 'i-old'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        if !data.contains("old words") {
            assert_eq!(data, r#"{"from":"old@example.com","redacted":"retention"}"#);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader did not run the retention: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = |base: &str| {
        let url = format!("{base}/metrics");
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("switchboard_retention_runs_total"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        runs(bases[lead]).await,
        ["switchboard_retention_runs_total{outcome=\"done\"} 1"]
    );
    assert!(
        runs(bases[1 - lead]).await.is_empty(),
        "the follower ran the retention"
    );
    let (_, audit) = app(bases[1 - lead])
        .get("/api/audit?action=retention.run")
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash .ci/run starts it"]
async fn two_agents_on_two_nodes_taking_one_contact_get_one_answer_each() {
    let (_db, nodes) = cluster(3).await;
    let bases: Vec<&str> = nodes.iter().map(Node::base).collect();
    let (lead, _) = leader(&bases).await;
    let followers: Vec<&str> = (0..3).filter(|i| *i != lead).map(|i| bases[i]).collect();
    // Agents may take API contacts themselves: put in force through a follower.
    let rules = format!(
        "{}\n[pull]\nchannels = [\"api\"]\n",
        include_str!("../../config/routing.toml")
    );
    let (status, r) = send(
        reqwest::Client::new()
            .put(format!("{}/api/routing/rules?comment=pull", followers[0]))
            .bearer_auth(TOKEN)
            .header("content-type", "application/toml")
            .body(rules),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    // Two agents, each logged in (away: nothing is offered) on a follower of its own.
    let (ana_id, ana) = agent(followers[0], "Ana").await;
    let (ben_id, ben) = agent(followers[1], "Ben").await;
    let _ana_desk = Desktop::login(followers[0], &ana, None).await;
    let _ben_desk = Desktop::login(followers[1], &ben, None).await;
    let id = contact(bases[lead], "pull-cluster").await;
    // Each sees it in the team's queue through its own node (the rules reach every node).
    for (base, token) in [(followers[0], &ana), (followers[1], &ben)] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, q) = send(
                reqwest::Client::new()
                    .get(format!("{base}/api/me/team-queue"))
                    .bearer_auth(token),
            )
            .await;
            assert_eq!(status, 200, "{q}");
            if q["waiting"]
                .as_array()
                .is_some_and(|w| w.iter().any(|x| x["id"] == id.as_str()))
            {
                break;
            }
            assert!(Instant::now() < deadline, "not in the team's queue: {q}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let take = |base: &str, token: &str| {
        send(
            reqwest::Client::new()
                .post(format!("{base}/api/interactions/{id}/take"))
                .bearer_auth(token),
        )
    };
    let (a, b) = tokio::join!(take(followers[0], &ana), take(followers[1], &ben));
    let mut answers = [(a.0, ana_id, a.1), (b.0, ben_id, b.1)];
    answers.sort_by_key(|(status, _, _)| *status);
    let [(won, winner, view), (lost, _, refusal)] = answers;
    assert_eq!((won, lost), (200, 409), "{view} {refusal}");
    assert_eq!(view["agent_id"], winner.as_str());
    assert_eq!(refusal["message"], "a colleague took it first");
    let i = interaction(followers[1], &id).await;
    assert_eq!(count(&i, "assigned"), 1, "{i}");
}
