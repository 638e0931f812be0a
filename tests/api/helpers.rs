//! Starting the real server for a test: on a free port, with a fresh database (a new
//! SQLite file, or a new PostgreSQL database), talking to it over HTTP as users do.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use switchboard::config::Settings;
use switchboard::startup::Application;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The admin token every test server is given.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server at this admin URL.
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend from `SWITCHBOARD_TEST_PG_URL`. A test that asks for it
    /// fails without it: PostgreSQL tests are marked ignored, so a run that includes them
    /// (`--include-ignored`, as `.ci/run` does) must have PostgreSQL to say they passed.
    pub fn postgres() -> Backend {
        match std::env::var("SWITCHBOARD_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Backend::Postgres(url),
            _ => panic!(
                "SWITCHBOARD_TEST_PG_URL is not set: this test runs on PostgreSQL \
                 (bash .ci/run starts it and sets the URL)"
            ),
        }
    }

    /// A database URL for a new, empty database on this backend, inside `dir` for SQLite.
    pub async fn fresh_database(&self, dir: &std::path::Path) -> String {
        match self {
            Backend::Sqlite => {
                format!("sqlite://{}?mode=rwc", dir.join("switchboard.db").display())
            }
            Backend::Postgres(admin_url) => {
                use sqlx::Connection;
                let name = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("cannot reach PostgreSQL at SWITCHBOARD_TEST_PG_URL: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(admin_url);
                format!("{base}/{name}")
            }
        }
    }
}

/// Settings for a test server: a free port, the test token, a fresh database.
pub async fn test_settings(backend: &Backend, dir: &TempDir) -> Settings {
    let mut s = Settings::defaults();
    s.server.http_addr = "127.0.0.1:0".into();
    s.server.shutdown_grace_secs = 2;
    s.storage.data_dir = dir.path().to_path_buf();
    s.storage.database_url = backend.fresh_database(dir.path()).await;
    s.storage.max_connections = 4;
    s.api.admin_token = TOKEN.into();
    s.api.max_body_bytes = 16 * 1024;
    s.email.smtp_addr = "127.0.0.1:0".into();
    // A test of one capability is not a test of the load the whole suite puts on a
    // shared machine: nothing is refused for load unless the test says so (overload.rs).
    s.admission.enabled = false;
    s
}

/// A server running in this process.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client.
    pub client: reqwest::Client,
    /// The database it runs on, for the command line.
    pub database_url: String,
    /// Where its SMTP listener listens.
    pub smtp: Option<std::net::SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<TempDir>,
}

/// A client for a server running elsewhere (another process), at `base`.
pub fn remote_app(base: &str) -> TestApp {
    TestApp {
        base: base.to_string(),
        client: reqwest::Client::new(),
        database_url: String::new(),
        smtp: None,
        stop: None,
        task: None,
        _dir: None,
    }
}

/// Starts a server on `backend` with the test defaults.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server on `backend`, letting the test adjust its settings first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&backend, &dir).await;
    adjust(&mut settings);
    let mut app = spawn_settings(settings).await;
    app._dir = Some(dir);
    app
}

/// Starts a server with exactly these settings (its data directory is the caller's to
/// keep: a test restarting the server on the same data starts it again with them).
pub async fn spawn_settings(settings: Settings) -> TestApp {
    let database_url = settings.database_url();
    let app = Application::build(settings)
        .await
        .expect("the server builds");
    let base = format!("http://{}", app.local_addr());
    let smtp = app.smtp_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        database_url,
        smtp,
        stop: Some(stop),
        task: Some(task),
        _dir: None,
    }
}

impl TestApp {
    /// A request to `path` with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    /// POSTs JSON with the admin token; answers (status, body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        send(self.admin(reqwest::Method::POST, path).json(body)).await
    }

    /// PUTs JSON with the admin token; answers (status, body).
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        send(self.admin(reqwest::Method::PUT, path).json(body)).await
    }

    /// GETs with the admin token; answers (status, body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.admin(reqwest::Method::GET, path)).await
    }

    /// DELETEs with the admin token; answers the status (a success has no body).
    pub async fn delete(&self, path: &str) -> u16 {
        self.admin(reqwest::Method::DELETE, path)
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// Creates an interaction and expects it accepted; answers its body.
    pub async fn contact(&self, body: Value) -> Value {
        let (status, json) = self.post("/api/interactions", &body).await;
        assert!(
            status == 201 || status == 200,
            "expected the contact to be accepted, got {status}: {json}"
        );
        json
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

/// Sends a request; answers the status and the JSON body (a non-JSON body fails the test).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("a body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("expected a JSON body with {status}, got: {text:?}"));
    (status, json)
}

/// The server binary, run as a separate process (for crash and signal tests).
pub struct ServerProcess {
    /// The child.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every line it has written (its log, on standard output and error), each also
    /// passed on to the test's own.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Every line the server has written so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server has logged a line containing `needle` (fails the test
    /// after 10 s); answers the line.
    pub async fn until_logged(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not log {needle:?} within 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    /// A failing test must not leave its server running (it would hold the test's pipes).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `switchboard` binary on `database_url` with `data_dir`, waiting until it
/// prints where it listens.
pub fn start_process(database_url: &str, data_dir: &std::path::Path) -> ServerProcess {
    start_process_with(database_url, data_dir, &[])
}

/// Like [`start_process`], with more environment variables.
pub fn start_process_with(
    database_url: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> ServerProcess {
    start_process_limited(database_url, data_dir, env, None)
}

/// Like [`start_process_with`], with the process's open-file limit (soft and hard) set to
/// `files` when given, as a small `ulimit -n` would.
pub fn start_process_limited(
    database_url: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    files: Option<u64>,
) -> ServerProcess {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.envs(env.iter().copied());
    if let Some(files) = files {
        // SAFETY: setrlimit is async-signal-safe; it only reads the struct passed.
        unsafe {
            command.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: files as libc::rlim_t,
                    rlim_max: files as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = command
        .arg("serve")
        .env(
            "SWITCHBOARD_CONFIG",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml"),
        )
        .env("SWITCHBOARD__SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD__STORAGE__DATA_DIR", data_dir)
        .env("SWITCHBOARD__STORAGE__DATABASE_URL", database_url)
        .env("SWITCHBOARD__API__ADMIN_TOKEN", TOKEN)
        .env("SWITCHBOARD__EMAIL__SMTP_ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD__LOG__LEVEL", "warn")
        .env("SWITCHBOARD__ADMISSION__ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the switchboard binary");
    let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("{line}");
            kept.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server prints where it listens before exiting")
            .expect("read stdout");
        if let Some(addr) = line.strip_prefix("Switchboard listening on ") {
            break addr.trim().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
            kept.lock().unwrap().push(line);
        }
    });
    ServerProcess { child, base, log }
}

/// Runs a test body once on SQLite and once on PostgreSQL: `both_backends!(name);`
/// expands to `name::sqlite` and `name::postgres` tests calling `name(backend)`. The
/// PostgreSQL variant is ignored unless asked for (`--include-ignored`), so a plain
/// `cargo test` reports it as not run rather than passed; asked for without
/// `SWITCHBOARD_TEST_PG_URL`, it fails.
///
/// `both_backends!(alone: name);` runs `name` with the machine to itself: for a test that
/// drives a server past what the machine can do, which would otherwise starve the tests
/// running beside it of the time their own deadlines assume.
#[macro_export]
macro_rules! both_backends {
    (alone: $($name:ident),* $(,)?) => {
        $crate::both_backends!(@holding write; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!(@holding read; $($name),*);
    };
    // Each test holds the machine as `$hold` says (`write`: alone; `read`: shared).
    (@holding $hold:ident; $($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let _machine = $crate::helpers::MACHINE.$hold().await;
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL (SWITCHBOARD_TEST_PG_URL): bash .ci/run starts it"]
            async fn postgres() {
                let _machine = $crate::helpers::MACHINE.$hold().await;
                super::$name($crate::helpers::Backend::postgres()).await
            }
        }
    )*};
}

/// Shared by every test of both backends, held whole by a test that must run alone.
pub static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Clients posting contacts as fast as they are answered, keeping each one acknowledged
/// (201) with its idempotency key; each stops at its first refusal or broken connection.
pub struct Load {
    acked: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` posters against `base`; contact keys start with `prefix`.
    pub fn start(base: &str, clients: usize, prefix: &str) -> Load {
        let acked: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let workers = (0..clients)
            .map(|w| {
                let (client, url, acked, prefix) = (client.clone(), format!("{base}/api/interactions"), acked.clone(), prefix.to_string());
                tokio::spawn(async move {
                    for n in 0.. {
                        let key = format!("{prefix}-{w}-{n}");
                        let body = serde_json::json!({ "idempotency_key": key, "customer": { "email": format!("{prefix}{w}@example.com") } });
                        let Ok(resp) = client.post(&url).bearer_auth(TOKEN).json(&body).send().await else { break };
                        if resp.status() != 201 {
                            break;
                        }
                        let Ok(v) = resp.json::<Value>().await else { break };
                        acked.lock().unwrap().push((key, v["id"].as_str().unwrap().to_string()));
                    }
                })
            })
            .collect();
        Load { acked, workers }
    }

    /// Waits until at least `n` contacts were acknowledged.
    pub async fn until_acknowledged(&self, n: usize) {
        while self.acked.lock().unwrap().len() < n {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Waits for every poster to stop; answers the acknowledged (key, interaction id).
    pub async fn finish(self) -> Vec<(String, String)> {
        for w in self.workers {
            w.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Asserts that every acknowledged interaction is stored and queued.
pub async fn assert_all_queued(base: &str, acked: &[(String, String)]) {
    let client = reqwest::Client::new();
    for (key, id) in acked {
        let (status, i) = send(
            client
                .get(format!("{base}/api/interactions/{id}"))
                .bearer_auth(TOKEN),
        )
        .await;
        assert_eq!(
            (status, i["state"].as_str().unwrap_or_default()),
            (200, "queued"),
            "acknowledged {id} ({key}) is missing"
        );
    }
}

/// The first event of `kind` in an interaction's `history` (fails the test if none).
pub fn event<'a>(interaction: &'a Value, kind: &str) -> &'a Value {
    interaction["history"]
        .as_array()
        .expect("a history")
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {interaction}"))
}

/// Tables a node rewrites by itself as it runs (its heartbeat, its election), whatever is
/// asked of it: not the store's content.
const LIVENESS_TABLES: [&str; 2] = ["cluster_nodes", "cluster_leader"];

/// Every row of every table of the store at `database_url` but the nodes' liveness, as
/// text, sorted: what a test compares before and after something that must change nothing.
pub async fn store_contents(database_url: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    use sqlx::{Connection, Row};
    let mut contents = std::collections::BTreeMap::new();
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("open the test database");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        for table in tables
            .into_iter()
            .filter(|t| !LIVENESS_TABLES.contains(&t.as_str()))
        {
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(&table)
                .fetch_all(&mut db)
                .await
                .unwrap();
            let row = columns
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || ',' || ");
            let mut rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT {row} FROM \"{table}\""))
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
            rows.sort();
            contents.insert(table, rows);
        }
        db.close().await.unwrap();
    } else {
        let mut db = sqlx::PgConnection::connect(database_url)
            .await
            .expect("open the test database");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut db)
                .await
                .unwrap();
        for table in tables
            .into_iter()
            .filter(|t| !LIVENESS_TABLES.contains(&t.as_str()))
        {
            let mut rows: Vec<String> = sqlx::query(&format!("SELECT t::text FROM \"{table}\" t"))
                .fetch_all(&mut db)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            rows.sort();
            contents.insert(table, rows);
        }
        db.close().await.unwrap();
    }
    contents
}

/// [`store_contents`] of `app`'s store once its reports' rollup has counted everything
/// and built the days of the centre's zone: the rollup writes on its own clock (its first
/// pass after start-up among others), which a snapshot taken before it would count as a
/// change made by what the test does next.
pub async fn settled_contents(app: &TestApp) -> std::collections::BTreeMap<String, Vec<String>> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = app.get("/api/reports?from=2026-01-01&to=2026-01-02").await;
        assert_eq!(status, 200, "{body}");
        if body["up_to_date"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the reports' rollup did not catch up in 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store_contents(&app.database_url).await
}

/// Asserts the store holds what it held in `before` (taken by [`store_contents`]),
/// naming each table that changed and the rows that came or went.
pub async fn assert_store_unchanged(
    database_url: &str,
    before: &std::collections::BTreeMap<String, Vec<String>>,
    what: &str,
) {
    let after = store_contents(database_url).await;
    let mut changes = Vec::new();
    for (table, rows) in &after {
        let old = before.get(table).cloned().unwrap_or_default();
        let gone: Vec<&String> = old.iter().filter(|r| !rows.contains(r)).collect();
        let came: Vec<&String> = rows.iter().filter(|r| !old.contains(r)).collect();
        if !gone.is_empty() || !came.is_empty() {
            changes.push(format!("{table}: gone {gone:?}, came {came:?}"));
        }
    }
    assert!(
        changes.is_empty(),
        "{what} changed the store:\n{}",
        changes.join("\n")
    );
}

/// A time the API wrote (RFC 3339), in milliseconds since the epoch.
pub fn at_ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("a time, not {v}"));
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Every event of `kind` in an interaction's `history`, oldest first.
pub fn events<'a>(interaction: &'a Value, kind: &str) -> Vec<&'a Value> {
    interaction["history"]
        .as_array()
        .expect("a history")
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Runs SQL on a test server's database from outside, as another client would: how a
/// test injects a store fault (a trigger that refuses a write, a table out of reach) at
/// the moment it chooses. `sqlite` runs on SQLite, `postgres` on PostgreSQL.
pub async fn db_exec(database_url: &str, sqlite: &str, postgres: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let sql = if database_url.starts_with("sqlite:") {
        sqlite
    } else {
        postgres
    };
    let mut conn = sqlx::AnyConnection::connect(database_url)
        .await
        .expect("the test reaches the server's database");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close");
}

/// The value of a counter or gauge in the server's `/metrics` (summed over its labels
/// matching `labels`, e.g. `channel="chat"`), 0 when absent.
pub async fn metric(app: &TestApp, name: &str, labels: &str) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split([' ', '{']).next() == Some(name) && (labels.is_empty() || l.contains(labels))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
