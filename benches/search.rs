//! Search: how long `GET /api/search` takes as the messages grow — 10,000, 100,000 and
//! 1,000,000 — on SQLite and on PostgreSQL, beside a full scan of the same data (the
//! same question asked with `LIKE '%…%'` and no index) in the same run.
//!
//!     cargo bench --bench search
//!     SEARCH_SIZES=10000,100000 SEARCH_BACKENDS=sqlite cargo bench --bench search
//!
//! PostgreSQL is the server at `SWITCHBOARD_TEST_PG_URL` (a fresh database per size,
//! dropped after); without it the PostgreSQL rows say so and are not measured.
//! `SEARCH_KEEP=dir` keeps every database (SQLite's in `dir`, PostgreSQL's named
//! `sb_bench_search_<messages>`) and says where, to look at the plans afterwards; a run
//! with it that finds one already there measures it again without seeding it anew.
//!
//! Data, from a fixed seed: conversations of 2 to 18 messages (10 on average) over a
//! year, 60% in English and 40% in Chinese, a customer for every two conversations (a
//! name, an email address), 50 agents each holding a fiftieth of them. Chat, mail in and
//! out, and internal notes, with the history events routing writes around them. Words
//! are drawn by Zipf's law from 5,000 made-up English words and 3,000 Chinese words of two
//! or three characters; each conversation's first message names its order number. The
//! rows go in through multi-row INSERTs in transactions of 50,000 messages, the
//! indexes kept by the migration's triggers as they are in service.
//!
//! Queries, each kind from 50 different strings: an order number (one conversation), a
//! rare English word (Zipf rank 2,001–2,050: about 0.05% of messages as a word, more
//! inside longer made-up words), a common one (ranks 3–52: 2–26%), a Chinese word of
//! three characters (about 1%), a Chinese word of two characters (answered from recent
//! messages: the index holds three), and a customer's name — each asked by an admin
//! (everything) and by an agent (its own conversations, a fiftieth). Each search is the HTTP
//! request, with `limit=20`, to the server running in this process; a request that
//! fails counts as slower than any (see `common/latency.rs`). After five unmeasured
//! searches, `SEARCH_SAMPLES` (50) are timed per kind and asker.
//!
//! The full scan answers the same question in SQL alone, without HTTP (which favours
//! it): the newest 200 messages of the asker's conversations containing every word
//! (read from the history's JSON, as without the search migration), newest first, and
//! the customers whose name or an identity contains the query. `SEARCH_SCAN_SAMPLES`
//! (10) are timed per kind and asker, each a different string.

use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use switchboard::store::bulk::{self, Arg};
use switchboard::store::{Backend, Store};

#[path = "common/latency.rs"]
mod latency;
#[path = "common/server.rs"]
mod server;

use latency::Latencies;

const TOKEN: &str = "search-bench-token";
const AGENTS: usize = 50;
/// Messages per transaction while seeding.
const TX_MESSAGES: u64 = 50_000;
/// A year, in ms: the conversations are spread over it.
const YEAR_MS: i64 = 365 * 86_400_000;
const START_MS: i64 = 1_760_000_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: a small, fixed generator, so every run seeds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Words drawn by Zipf's law (exponent 1): word `r` (from 0) with weight 1 / (r + 1).
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(words: Vec<String>) -> Vocabulary {
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / (r as f64 + 1.0);
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }
    fn draw(&self, rng: &mut Rng) -> &str {
        let x = rng.unit() * self.cumulative.last().unwrap();
        let i = self.cumulative.partition_point(|&c| c < x);
        &self.words[i.min(self.words.len() - 1)]
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "to", "ri", "mu", "se", "la", "no", "vi", "de", "po", "ga", "ru", "mi", "te", "sa", "lo",
    "ne", "bi", "fu", "ze", "ko", "ta", "ra", "ma", "su", "li", "na", "ve", "do", "pe",
];
const HANZI: &str = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞";

/// 5,000 made-up English words of two to four syllables, each once.
fn english() -> Vec<String> {
    let mut rng = Rng(7);
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::new();
    while words.len() < 5_000 {
        let n = 2 + rng.below(3) as usize;
        let w: String = (0..n)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
            .collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// 3,000 Chinese words, three in five of two characters and the rest of three, each once.
fn chinese() -> Vec<String> {
    let chars: Vec<char> = HANZI.chars().collect();
    let mut rng = Rng(11);
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::new();
    while words.len() < 3_000 {
        let n = if rng.below(5) < 3 { 2 } else { 3 };
        let w: String = (0..n)
            .map(|_| chars[rng.below(chars.len() as u64) as usize])
            .collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

const FIRST: &[&str] = &[
    "Maria", "James", "Anna", "Oliver", "Sofia", "Lucas", "Emma", "Noah", "Mia", "Liam", "Chloe",
    "Ethan", "Grace", "Henry", "Isla", "Jack", "Laura", "Mason", "Nora", "Owen",
];
const LAST: &[&str] = &[
    "Lopez", "Smith", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark",
    "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams",
];
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗";

fn customer_name(i: u64) -> String {
    let mut rng = Rng(i.wrapping_mul(31) + 3);
    if i % 5 < 3 {
        format!(
            "{} {}",
            FIRST[rng.below(FIRST.len() as u64) as usize],
            LAST[rng.below(LAST.len() as u64) as usize]
        )
    } else {
        let sur: Vec<char> = SURNAMES.chars().collect();
        let given: Vec<char> = HANZI.chars().collect();
        let n = 1 + rng.below(2) as usize;
        let mut s = sur[rng.below(sur.len() as u64) as usize].to_string();
        for _ in 0..n {
            s.push(given[rng.below(given.len() as u64) as usize]);
        }
        s
    }
}

fn customer_id(i: u64) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

fn agent_id(i: usize) -> String {
    format!("00000000-0000-7000-9000-{i:012}")
}

fn agent_token(i: usize) -> String {
    format!("search-agent-{i}")
}

fn interaction_id(i: u64) -> String {
    format!("00000000-0000-7000-a000-{i:012}")
}

/// What the data holds: the conversations each agent held.
struct Seeded {
    conversations: u64,
    customers: u64,
    seconds: f64,
}

/// One message's words.
fn sentence(rng: &mut Rng, vocabulary: &Vocabulary, chinese: bool) -> String {
    let n = 6 + rng.below(19) as usize;
    let mut out = String::new();
    for k in 0..n {
        if chinese {
            if k > 0 && rng.below(6) == 0 {
                out.push('，');
            }
        } else if k > 0 {
            out.push(' ');
        }
        out.push_str(vocabulary.draw(rng));
    }
    out.push(if chinese { '。' } else { '.' });
    out
}

/// Seeds `messages` messages (and their conversations, customers and agents).
async fn seed(store: &Store, messages: u64, en: &Vocabulary, zh: &Vocabulary) -> Seeded {
    let began = Instant::now();
    let conversations_planned = messages.div_ceil(10);
    let customers = (conversations_planned / 2).max(1);
    let mut tx = store.begin_write().await.unwrap();
    for i in 0..AGENTS {
        let digest: String = Sha256::digest(agent_token(i).as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        sqlx::query("INSERT INTO agents (id, name, level, skills, token_sha256, active, created_at, updated_at, role) VALUES ($1, $2, 3, '[]', $3, 1, 0, 0, 'agent')")
            .bind(agent_id(i))
            .bind(format!("Agent {i}"))
            .bind(digest)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut rows = Vec::new();
    let mut identities = Vec::new();
    for i in 0..customers {
        rows.extend([
            Arg::from(customer_id(i)),
            Arg::from(customer_name(i)),
            Arg::from(START_MS),
            Arg::from(START_MS),
        ]);
        identities.extend([
            Arg::from("email"),
            Arg::from(format!("customer{i}@mail{}.example", i % 97)),
            Arg::from(customer_id(i)),
            Arg::from(START_MS),
        ]);
    }
    bulk::insert(
        &mut tx,
        "INSERT INTO customers (id, name, created_at, updated_at)",
        4,
        rows,
        "",
    )
    .await
    .unwrap();
    bulk::insert(
        &mut tx,
        "INSERT INTO customer_identities (kind, value, customer_id, created_at)",
        4,
        identities,
        "",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut rng = Rng(42);
    let (mut written, mut conversation) = (0u64, 0u64);
    let step = YEAR_MS / conversations_planned as i64;
    while written < messages {
        let mut tx = store.begin_write().await.unwrap();
        let (mut interactions, mut history) = (Vec::new(), Vec::new());
        let mut in_tx = 0;
        while in_tx < TX_MESSAGES && written < messages {
            let c = conversation;
            conversation += 1;
            let id = interaction_id(c);
            let customer = customer_id(rng.below(customers));
            let agent = agent_id(rng.below(AGENTS as u64) as usize);
            let chinese = rng.below(5) < 2;
            let channel = ["chat", "email", "api"][rng.below(3) as usize];
            let n = (2 + rng.below(17)).min(messages - written);
            let mut at = START_MS + c as i64 * step;
            let vocabulary = if chinese { zh } else { en };
            let subject = sentence(&mut rng, vocabulary, chinese);
            let subject: String = subject.chars().take(40).collect();
            interactions.extend([
                Arg::from(id.clone()),
                Arg::from(channel),
                Arg::from(format!("k{c}")),
                Arg::from("h"),
                Arg::from(customer.clone()),
                Arg::from("low"),
                Arg::from("default"),
                Arg::from("bench"),
                Arg::from(subject.clone()),
                Arg::from(None::<String>),
                Arg::from("completed"),
                Arg::from(at),
                Arg::from(at),
                Arg::from(agent.clone()),
            ]);
            let mut event = |kind: &str, actor: &str, data: String, at: i64| {
                history.extend([
                    Arg::from(customer.clone()),
                    Arg::from(id.clone()),
                    Arg::from(kind),
                    Arg::from(at),
                    Arg::from(actor),
                    Arg::from(data),
                ]);
            };
            event(
                "interaction_received",
                "system",
                serde_json::json!({ "channel": channel, "subject": subject }).to_string(),
                at,
            );
            event(
                "tier_decided",
                "system",
                r#"{"tier":"low","source":"default","reason":"bench"}"#.into(),
                at,
            );
            event("queued", "system", r#"{"tier":"low"}"#.into(), at);
            event(
                "offered",
                "router",
                format!(r#"{{"agent_id":"{agent}"}}"#),
                at + 1_000,
            );
            event(
                "assigned",
                &agent,
                format!(r#"{{"agent_id":"{agent}","waited_secs":3.0}}"#),
                at + 3_000,
            );
            for m in 0..n {
                at += 60_000;
                let mut text = sentence(&mut rng, vocabulary, chinese);
                if m == 0 {
                    text = format!("order ORD-{c:07}: {text}");
                }
                let from_customer = m % 2 == 0;
                let (kind, actor, data) = match channel {
                    _ if m > 0 && rng.below(12) == 0 => (
                        "note",
                        agent.as_str(),
                        serde_json::json!({ "text": text, "mentions": [] }),
                    ),
                    "chat" => (
                        "chat",
                        if from_customer {
                            "customer"
                        } else {
                            agent.as_str()
                        },
                        serde_json::json!({ "type": "message", "from": if from_customer { "visitor" } else { "agent" }, "text": text }),
                    ),
                    _ if from_customer => (
                        "email_received",
                        "customer",
                        serde_json::json!({ "subject": subject, "text": text }),
                    ),
                    _ => (
                        "email_sent",
                        agent.as_str(),
                        serde_json::json!({ "text": text }),
                    ),
                };
                event(kind, actor, data.to_string(), at);
            }
            event(
                "completed",
                &agent,
                format!(r#"{{"agent_id":"{agent}","disposition":"resolved","notes":null}}"#),
                at + 60_000,
            );
            written += n;
            in_tx += n;
        }
        bulk::insert(
            &mut tx,
            "INSERT INTO interactions (id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, tier_reason, subject, body, state, created_at, updated_at, agent_id)",
            14,
            interactions,
            "",
        )
        .await
        .unwrap();
        bulk::insert(
            &mut tx,
            "INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data)",
            6,
            history,
            "",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    if store.backend() == Backend::Postgres {
        sqlx::query("VACUUM ANALYZE")
            .execute(store.pool())
            .await
            .unwrap();
    }
    Seeded {
        conversations: conversation,
        customers,
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// One kind of query: its name and its strings.
struct Kind {
    name: &'static str,
    queries: Vec<String>,
}

fn kinds(en: &[String], zh: &[String], seeded: &Seeded) -> Vec<Kind> {
    let mut rng = Rng(99);
    let pick = |from: &[String], n: usize| from.iter().take(n).cloned().collect::<Vec<_>>();
    let zh3: Vec<String> = zh[40..]
        .iter()
        .filter(|w| w.chars().count() == 3)
        .take(50)
        .cloned()
        .collect();
    let zh2: Vec<String> = zh[10..]
        .iter()
        .filter(|w| w.chars().count() == 2)
        .take(50)
        .cloned()
        .collect();
    vec![
        Kind {
            name: "order number (one conversation)",
            queries: (0..50)
                .map(|_| format!("ORD-{:07}", rng.below(seeded.conversations)))
                .collect(),
        },
        Kind {
            name: "rare English word (~0.05%)",
            queries: pick(&en[2_000..], 50),
        },
        Kind {
            name: "common English word (2–26%)",
            queries: pick(&en[2..], 50),
        },
        Kind {
            name: "Chinese word, 3 characters (~1%)",
            queries: zh3,
        },
        Kind {
            name: "Chinese word, 2 characters (recent messages)",
            queries: zh2,
        },
        Kind {
            name: "customer's name",
            queries: (0..50)
                .map(|_| customer_name(rng.below(seeded.customers)))
                .collect(),
        },
    ]
}

/// Times `samples` searches through the API, cycling through `queries`; answers the
/// latencies and the interactions and customers found by each answer.
async fn searches(
    base: &str,
    token: &str,
    queries: &[String],
    samples: usize,
) -> (Latencies, Vec<(usize, usize)>) {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let (mut ms, mut failed, mut found) = (Vec::new(), 0, Vec::new());
    for i in 0..samples {
        let q = &queries[i % queries.len()];
        let t0 = Instant::now();
        let r = client
            .get(format!("{base}/api/search"))
            .query(&[("q", q.as_str()), ("limit", "20")])
            .bearer_auth(token)
            .send()
            .await;
        let body = match r {
            Ok(r) if r.status() == 200 => r.json::<Value>().await.ok(),
            _ => None,
        };
        match body {
            Some(b) => {
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                let n = |k: &str| b[k].as_array().map_or(0, Vec::len);
                found.push((n("interactions"), n("customers")));
            }
            None => {
                failed += 1;
                found.push((0, 0));
            }
        }
    }
    (Latencies::new(ms, failed), found)
}

/// The same question without an index, in SQL alone: the latencies, and the
/// interactions (at most 20) and customers found by each.
async fn full_scans(
    pool: &sqlx::AnyPool,
    backend: Backend,
    agent: Option<&str>,
    queries: &[String],
    samples: usize,
) -> (Latencies, Vec<(usize, usize)>) {
    // The words of each message as the history holds them, and the asker's conversations.
    let text = match backend {
        Backend::Sqlite => "json_extract(h.data, '$.text')",
        Backend::Postgres => "(h.data::jsonb ->> 'text')",
    };
    let like = match backend {
        Backend::Sqlite => "LIKE",
        Backend::Postgres => "ILIKE",
    };
    // An agent's own conversations are $1; the words follow.
    let (mine, first) = match agent {
        Some(_) => (
            "h.interaction_id IN (SELECT id FROM interactions WHERE agent_id = $1) AND ",
            2,
        ),
        None => ("", 1),
    };
    let (mut ms, mut found) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let q = &queries[i % queries.len()];
        let words: Vec<&str> = q.split_whitespace().collect();
        let all: String = (0..words.len())
            .map(|k| format!(" AND {text} {like} ${}", k + first))
            .collect();
        let sql = format!(
            "SELECT h.seq, h.interaction_id FROM history h WHERE {mine}h.kind IN ('chat', 'email_received', 'email_sent', 'note') \
             {all} ORDER BY h.seq DESC LIMIT 200"
        );
        let theirs = if agent.is_some() {
            " AND id IN (SELECT customer_id FROM interactions WHERE agent_id = $2)"
        } else {
            ""
        };
        let customers = format!(
            "SELECT id FROM customers WHERE (name {like} $1 OR id IN \
             (SELECT customer_id FROM customer_identities WHERE value {like} $1)){theirs} LIMIT 20"
        );
        let t0 = Instant::now();
        let mut query = sqlx::query(&sql);
        if let Some(a) = agent {
            query = query.bind(a.to_string());
        }
        for w in &words {
            query = query.bind(format!("%{w}%"));
        }
        let rows = query.fetch_all(pool).await.unwrap();
        let mut customers = sqlx::query(&customers).bind(format!("%{q}%"));
        if let Some(a) = agent {
            customers = customers.bind(a.to_string());
        }
        let customers = customers.fetch_all(pool).await.unwrap();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let mut seen = std::collections::HashSet::new();
        let interactions = rows
            .iter()
            .map(|r| r.get::<String, _>(1))
            .filter(|i| seen.insert(i.clone()))
            .take(20)
            .count();
        found.push((interactions, customers.len()));
    }
    (Latencies::new(ms, 0), found)
}

/// Interactions and customers found per answer, on average: `3.2 / 1.0`.
fn mean_found(found: &[(usize, usize)]) -> String {
    let n = found.len().max(1) as f64;
    let (i, c) = found.iter().fold((0, 0), |(i, c), (a, b)| (i + a, c + b));
    format!("{:.1} / {:.1}", i as f64 / n, c as f64 / n)
}

/// A fresh database on `backend` for `messages`: its URL, and what drops it after.
/// A database on `backend` for `messages`: its URL, the PostgreSQL database's name (to
/// drop after), and whether it is seeded already (kept by an earlier run).
async fn fresh(
    backend: Backend,
    messages: u64,
    dir: &std::path::Path,
) -> Option<(String, Option<String>, bool)> {
    let keep = std::env::var("SEARCH_KEEP").ok();
    match backend {
        Backend::Sqlite => {
            let dir = keep.map_or(dir.to_path_buf(), Into::into);
            let file = dir.join(format!("search-{messages}.db"));
            let kept = file.exists();
            Some((format!("sqlite://{}?mode=rwc", file.display()), None, kept))
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = std::env::var("SWITCHBOARD_TEST_PG_URL")
                .ok()
                .filter(|u| !u.is_empty())?;
            let name = match keep {
                Some(_) => format!("sb_bench_search_{messages}"),
                None => format!("sb_bench_search_{messages}_{}", std::process::id()),
            };
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            let kept: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            if !kept {
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            Some((format!("{base}/{name}"), Some(name), kept))
        }
    }
}

/// What a kept database holds.
async fn counted(store: &Store) -> Seeded {
    let count = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .unwrap() as u64
    };
    Seeded {
        conversations: count("interactions").await,
        customers: count("customers").await,
        seconds: 0.0,
    }
}

async fn drop_database(name: &str) {
    use sqlx::Connection;
    let admin = std::env::var("SWITCHBOARD_TEST_PG_URL").unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn database_mib(store: &Store, url: &str) -> f64 {
    match store.backend() {
        Backend::Sqlite => switchboard::store::sqlite_path(url)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0.0, |m| m.len() as f64 / 1048576.0),
        Backend::Postgres => {
            let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(store.pool())
                .await
                .unwrap();
            bytes as f64 / 1048576.0
        }
    }
}

fn main() {
    let sizes: Vec<u64> = std::env::var("SEARCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let backends: Vec<Backend> = std::env::var("SEARCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .filter_map(|b| match b.trim() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" => Some(Backend::Postgres),
            _ => None,
        })
        .collect();
    let samples = env("SEARCH_SAMPLES", 50) as usize;
    let scan_samples = env("SEARCH_SCAN_SAMPLES", 10) as usize;
    let en_words = english();
    let zh_words = chinese();
    let (en, zh) = (
        Vocabulary::new(en_words.clone()),
        Vocabulary::new(zh_words.clone()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    sqlx::any::install_default_drivers();

    let mut over = Vec::new();
    for backend in backends {
        for &messages in &sizes {
            let dir = tempfile::tempdir().unwrap();
            let Some((url, pg_name, kept)) = rt.block_on(fresh(backend, messages, dir.path()))
            else {
                println!("\n## PostgreSQL, {messages} messages: not measured (SWITCHBOARD_TEST_PG_URL is not set)\n");
                continue;
            };
            let store = rt.block_on(Store::connect(&url, 4)).unwrap();
            let seeded = match kept {
                true => rt.block_on(counted(&store)),
                false => rt.block_on(seed(&store, messages, &en, &zh)),
            };
            let mib = rt.block_on(database_mib(&store, &url));
            rt.block_on(store.close());
            let how = match kept {
                true => "kept from an earlier run".to_string(),
                false => format!(
                    "seeded in {:.1} s ({:.0} messages/s with the indexes kept)",
                    seeded.seconds,
                    messages as f64 / seeded.seconds
                ),
            };
            println!(
                "\n## {backend:?}, {messages} messages: {} conversations, {} customers, {how}, database {mib:.0} MiB\n",
                seeded.conversations, seeded.customers,
            );
            let server = server::start(TOKEN, |s, _| {
                s.storage.database_url = url.clone();
                s.storage.max_connections = 4;
            });
            let scan_pool = server
                .rt
                .block_on(
                    sqlx::any::AnyPoolOptions::new()
                        .max_connections(1)
                        .connect(&url),
                )
                .unwrap();
            println!("| query | asker | search p50 | search p99 | full scan p50 | full scan p99 | found: search | found: full scan |");
            println!("|---|---|---:|---:|---:|---:|---:|---:|");
            let base = server.base.clone();
            let warm: Vec<String> = en_words[100..105].to_vec();
            server::load({
                let base = base.clone();
                async move { searches(&base, TOKEN, &warm, 5).await }
            });
            for kind in kinds(&en_words, &zh_words, &seeded) {
                for (asker, token, agent) in [
                    ("admin", TOKEN.to_string(), None),
                    ("agent", agent_token(7), Some(agent_id(7))),
                ] {
                    let queries = kind.queries.clone();
                    let b = base.clone();
                    let (lat, found) =
                        server::load(async move { searches(&b, &token, &queries, samples).await });
                    let (scan, scan_found) = server.rt.block_on(full_scans(
                        &scan_pool,
                        backend,
                        agent.as_deref(),
                        &kind.queries,
                        scan_samples,
                    ));
                    if lat.at(0.99).is_none_or(|ms| ms >= 100.0) {
                        over.push(format!("{backend:?} {messages} {} ({asker})", kind.name));
                    }
                    println!(
                        "| {} | {asker} | {} | {} | {} | {} | {} | {} |",
                        kind.name,
                        lat.show(0.5, "failed"),
                        lat.show(0.99, "failed"),
                        scan.show(0.5, "-"),
                        scan.show(0.99, "-"),
                        mean_found(&found[..scan_samples.min(found.len())]),
                        mean_found(&scan_found),
                    );
                }
            }
            let gave_way = server::load({
                let base = base.clone();
                async move {
                    let text = reqwest::get(format!("{base}/metrics"))
                        .await
                        .ok()?
                        .text()
                        .await
                        .ok()?;
                    text.lines()
                        .find(|l| l.starts_with("switchboard_search_index_gave_way_total"))
                        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                }
            });
            if backend == Backend::Postgres {
                println!(
                    "\nSearches whose index lookup was stopped at {} ms and read the newest messages instead: {}",
                    switchboard::store::search::INDEX_MS,
                    gave_way.unwrap_or(0.0)
                );
            }
            server.rt.block_on(scan_pool.close());
            server.stop();
            match pg_name {
                _ if std::env::var("SEARCH_KEEP").is_ok() => println!("\nKept: {url}"),
                Some(name) => rt.block_on(drop_database(&name)),
                None => {}
            }
        }
    }
    if over.is_empty() {
        println!("\nEvery search's p99 was under 100 ms.");
    } else {
        println!(
            "\nA p99 of 100 ms or more (or a failure): {}",
            over.join("; ")
        );
    }
}
