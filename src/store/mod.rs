//! The store: one sqlx pool over SQLite (the embedded default) or PostgreSQL.
//!
//! Every query is written once, in the SQL both databases speak (`$1` placeholders,
//! `ON CONFLICT`, `RETURNING`), and runs through sqlx's `Any` driver; only the
//! migrations differ, one folder per backend. Times are stored as milliseconds since
//! the epoch and money as cents, so no type needs translating between the two.

pub mod agents;
pub mod audit;
pub mod bulk;
pub mod channel;
pub mod customers;
pub mod erasure;
pub mod history;
pub mod interactions;
pub mod kept_aside;
pub mod outbox;
pub mod presence;
pub mod redact;
pub mod reports;
pub mod retention;
pub mod rules;
pub mod search;
pub mod service;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use sqlx::AnyConnection as Conn;

/// Set on every SQLite connection. WAL lets readers work beside the one writer; FULL
/// makes every commit durable before it returns, which every contact's acknowledgement
/// relies on. A 64 MiB page cache and memory-mapped reads keep the hot indexes out of
/// read system calls. Secure delete overwrites what a change removes, so data taken out
/// of the store (a secret, an erased customer) is not left readable in the file.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
     PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456; \
     PRAGMA secure_delete = ON;";

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in WAL mode with synchronous=FULL.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store: a connection pool and the backend it talks to.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's one writer, taken in turn: writers wait here, woken the moment the
    /// previous one ends, rather than in SQLite's busy handler, which sleeps and retries
    /// (up to 100 ms a time) and so left contacts waiting for nothing under load.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The line the other writers wait in before the writer's turn, one at a time, so
    /// the router's turn (which every offer, acceptance and completion waits for) comes
    /// after at most the writer holding it and the one next in line.
    line: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The longest a write waited for its turn since [`Store::take_write_wait_ms`] last
    /// read it (ms): past capacity, what a channel's event waits before its commit.
    write_wait_ms: Arc<AtomicI64>,
    /// The router's fence: the epoch of the lead this node holds (0: a single node, no
    /// fence; -1: this node does not lead). See [`Store::begin_fenced`].
    fence: Arc<AtomicI64>,
}

/// Why a fenced write could not begin.
#[derive(Debug)]
pub enum FenceError {
    /// A newer leader holds the lead: this node must stop routing.
    Fenced,
    /// The store could not be reached.
    Store(sqlx::Error),
}

impl From<sqlx::Error> for FenceError {
    fn from(e: sqlx::Error) -> Self {
        FenceError::Store(e)
    }
}

impl std::fmt::Display for FenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FenceError::Fenced => f.write_str("a newer leader holds the lead"),
            FenceError::Store(e) => e.fmt(f),
        }
    }
}

/// A transaction that writes. On SQLite it holds the writer's turn until it ends.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then gives the turn to the next writer.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then gives the turn to the next writer.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

/// Each backend's migrations, in order: (version, description, SQL).
macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal $file:literal),* $(,)?) => {
        &[$(($version, $name, include_str!(concat!("../../migrations/", $dir, "/", $file)))),*]
    };
}
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = migrations!("sqlite": 1 "core" "0001_core.sql", 2 "agents" "0002_agents.sql", 3 "routing" "0003_routing.sql", 4 "rule versions" "0004_rule_versions.sql", 5 "audit" "0005_audit.sql", 6 "roles" "0006_roles.sql", 7 "presence" "0007_presence.sql", 8 "channel events" "0008_channel_events.sql", 9 "email" "0009_email.sql", 10 "chat secrets" "0010_chat_secrets.sql", 11 "kept aside" "0011_kept_aside.sql", 13 "cluster" "0013_cluster.sql", 14 "service" "0014_service.sql", 15 "customer data" "0015_customer_data.sql", 16 "search" "0016_search.sql", 17 "canned answers and signatures" "0017_canned.sql", 18 "reports" "0018_reports.sql", 19 "report measures" "0019_report_measures.sql", 20 "report days" "0020_report_days.sql");
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = migrations!("postgres": 1 "core" "0001_core.sql", 2 "agents" "0002_agents.sql", 3 "routing" "0003_routing.sql", 4 "rule versions" "0004_rule_versions.sql", 5 "audit" "0005_audit.sql", 6 "roles" "0006_roles.sql", 7 "presence" "0007_presence.sql", 8 "channel events" "0008_channel_events.sql", 9 "email" "0009_email.sql", 10 "chat secrets" "0010_chat_secrets.sql", 11 "kept aside" "0011_kept_aside.sql", 12 "no truncate" "0012_no_truncate.sql", 13 "cluster" "0013_cluster.sql", 14 "service" "0014_service.sql", 15 "customer data" "0015_customer_data.sql", 16 "search" "0016_search.sql", 17 "canned answers and signatures" "0017_canned.sql", 18 "reports" "0018_reports.sql", 19 "report measures" "0019_report_measures.sql", 20 "report days" "0020_report_days.sql");

/// The migrations of one backend, built into the binary.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> futures_core_compat::BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, desc, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(desc),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// sqlx's `MigrationSource` names the boxed future of `futures-core`; this is the same type.
mod futures_core_compat {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

impl Store {
    /// Connects to `url`, creating a SQLite file (and its folder) when needed, and applies
    /// every migration not yet applied.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite {
            if let Some(file) = sqlite_path(url) {
                private_database(std::path::Path::new(&file))?;
            }
        }
        let options = AnyConnectOptions::from_str(url)
            .context("Reading the database URL")?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            conn.execute(SQLITE_PRAGMAS).await?;
                        }
                        // A transaction left open by a node that stopped (paused, cut
                        // off) is ended by the database: it cannot hold the leader row's
                        // lock, and a new leader's takeover, waiting on it, for long.
                        Backend::Postgres => {
                            conn.execute("SET idle_in_transaction_session_timeout = 15000")
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("Connecting to the database")?;
        let store = Store {
            pool,
            backend,
            writer: Default::default(),
            line: Default::default(),
            write_wait_ms: Arc::new(AtomicI64::new(0)),
            fence: Arc::new(AtomicI64::new(0)),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let source = match self.backend {
            Backend::Sqlite => Embedded(SQLITE_MIGRATIONS),
            Backend::Postgres => Embedded(POSTGRES_MIGRATIONS),
        };
        let migrator = Migrator::new(source).await.context("Loading migrations")?;
        migrator
            .run(&self.pool)
            .await
            .context("Applying migrations")?;
        Ok(())
    }

    /// True when the store answers and every migration is applied.
    pub async fn ready(&self) -> Result<(), String> {
        let expected = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.len(),
            Backend::Postgres => POSTGRES_MIGRATIONS.len(),
        } as i64;
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| format!("the database does not answer: {e}"))?;
        if applied < expected {
            return Err(format!("{applied} of {expected} migrations applied"));
        }
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a writer waits its turn (up to `busy_timeout`) instead of
    /// failing when another writer committed between its reads and its first write.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        self.begin_write_as(false).await
    }

    /// The longest a write waited for its turn (on SQLite, where writers take turns)
    /// since this was last asked, in ms.
    pub fn take_write_wait_ms(&self) -> i64 {
        self.write_wait_ms.swap(0, Ordering::Relaxed)
    }

    /// Begins a write, ahead of the other writers waiting (`first`) or in line with them.
    async fn begin_write_as(&self, first: bool) -> Result<WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let asked = std::time::Instant::now();
                let turn = if first {
                    self.writer.clone().lock_owned().await
                } else {
                    let _line = self.line.lock().await;
                    self.writer.clone().lock_owned().await
                };
                self.write_wait_ms
                    .fetch_max(asked.elapsed().as_millis() as i64, Ordering::Relaxed);
                Ok(WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            }),
        }
    }

    /// Begins a write the router (or another task that must run once) makes while it
    /// leads: in the same transaction, the lead's epoch is checked against the
    /// database's, under a share lock on the leader row. A newer leader's takeover bumps
    /// that row, so it waits for this transaction, and every transaction after it is
    /// refused here: a paused or cut-off old leader can never write once another leads.
    pub async fn begin_fenced(&self) -> Result<WriteTx, FenceError> {
        self.begin_fenced_as(false).await
    }

    /// [`Store::begin_fenced`] for the router's turns: on SQLite it goes ahead of the
    /// other writers waiting, so routing keeps its pace while new contacts queue for
    /// their commit (which admission control then sees as lag).
    pub async fn begin_routing(&self) -> Result<WriteTx, FenceError> {
        self.begin_fenced_as(true).await
    }

    async fn begin_fenced_as(&self, first: bool) -> Result<WriteTx, FenceError> {
        let epoch = self.fence.load(Ordering::SeqCst);
        if epoch < 0 {
            tracing::debug!("A fenced write refused: this node does not lead");
            return Err(FenceError::Fenced);
        }
        let mut tx = self.begin_write_as(first).await?;
        if epoch > 0 {
            let current: i64 =
                sqlx::query_scalar("SELECT epoch FROM cluster_leader WHERE id = 1 FOR SHARE")
                    .fetch_one(&mut *tx)
                    .await?;
            if current != epoch {
                tracing::warn!(
                    epoch,
                    current,
                    "A newer leader's epoch fences this node's writes"
                );
                tx.rollback().await?;
                self.fence.store(-1, Ordering::SeqCst);
                return Err(FenceError::Fenced);
            }
        }
        Ok(tx)
    }

    /// Whether this node's fenced writes are refused (it does not lead, or a newer leader
    /// fenced it).
    pub fn fenced(&self) -> bool {
        self.fence.load(Ordering::SeqCst) < 0
    }

    /// Sets the epoch this node's fenced writes carry (`-1`: it does not lead).
    pub fn set_fence(&self, epoch: i64) {
        self.fence.store(epoch, Ordering::SeqCst);
    }

    /// The pool, for queries outside a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Empties SQLite's write-ahead log into the database file and truncates it, so that
    /// what a change removed (an erased customer, content past its retention) is in no
    /// older copy of a page left in the log; the file itself keeps no removed content
    /// (`secure_delete`). Readers still on an older snapshot hold it up (SQLite waits for
    /// them up to `busy_timeout` each time): it is tried three times, and answers whether
    /// it was done (on PostgreSQL, where the write-ahead log is the server's, always true).
    pub async fn truncate_log(&self) -> bool {
        if self.backend != Backend::Sqlite {
            return true;
        }
        for _ in 0..3 {
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await
            {
                Ok((0, _, _)) => return true,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Could not empty the write-ahead log");
                    return false;
                }
            }
        }
        false
    }

    /// Closes every connection (at shutdown, after the last write). On SQLite every
    /// commit is first copied from the write-ahead log into the database file, which is
    /// then whole by itself (and holds no page a change replaced): closing the pool does
    /// not wait for each connection's own last checkpoint, so it is not left to them.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
            {
                // The log stays beside the file and SQLite replays it at the next start:
                // nothing is lost, the file alone is just not yet complete.
                tracing::warn!(error = %e, "Could not copy the write-ahead log into the database file at shutdown");
            }
        }
        self.pool.close().await;
    }
}

/// Creates a directory (and its parents) readable by this user only; one that exists
/// already loses what other users could do with it.
pub fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("Creating the data directory {}", dir.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
        .with_context(|| format!("Creating the data directory {}", dir.display()))?;
    keep_from_others(dir)
}

/// The SQLite database file and its directory, readable by this user only: the file is
/// created `0600` before SQLite opens it (SQLite gives its WAL and shared-memory files
/// the database's permissions), and files an earlier version left readable by every
/// local user are closed to them.
fn private_database(file: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        private_dir(dir)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("Creating the database file {}", file.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        if path.exists() {
            keep_from_others(&path)?;
        }
    }
    Ok(())
}

/// Takes away every permission of users other than the owner (and the owner's group).
fn keep_from_others(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("Reading the permissions of {}", path.display()))?;
        let mode = meta.permissions().mode();
        if mode & 0o007 != 0 {
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o007)) {
                Ok(()) => tracing::warn!(
                    path = %path.display(),
                    "Other users could read this store file; they no longer can"
                ),
                // Not ours to change (a directory the system made): said, not fatal.
                Err(e) => tracing::warn!(
                    path = %path.display(), error = %e,
                    "Other users can read this store file, and its permissions could not be changed"
                ),
            }
        }
    }
    Ok(())
}

/// The file path inside a `sqlite:` URL.
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// True when `e` says the store cannot be reached or is too busy now (the request
/// itself may be fine): callers answer "retry" rather than "failed".
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// How far this machine's clock is behind the database's, in ms (0 on SQLite). Every
/// node of a cluster reads the time as the database's, so nodes whose clocks differ
/// still agree on every wait and deadline.
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// How far tests have moved this server's clock forward (`service.test_clock`).
static TEST_SHIFT_MS: AtomicI64 = AtomicI64::new(0);

/// Now, in milliseconds since the Unix epoch, by the database's clock (see
/// [`set_clock_offset`]).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// The time service commitments are counted in — openings, deadlines, booked
/// callbacks, survey links — at the moment `now` (from [`now_ms`]): the same, unless a
/// test moved it forward ([`shift_test_clock`]). Liveness (heartbeats, offer timeouts)
/// stays on the real clock, so moving it disconnects nobody.
pub fn service_time(now: i64) -> i64 {
    now + TEST_SHIFT_MS.load(Ordering::Relaxed)
}

/// [`service_time`] now.
pub fn service_now() -> i64 {
    service_time(now_ms())
}

/// The moment of [`now_ms`]'s clock that the service time `at` stands for (the inverse
/// of [`service_time`]).
pub fn real_time(at: i64) -> i64 {
    at - TEST_SHIFT_MS.load(Ordering::Relaxed)
}

/// Told when a test moves the service clock, so what waits for a service time (the
/// deadline watch) looks again at once.
pub static TEST_CLOCK_MOVED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Moves the service clock forward by `ms` (a test's control of time). Only with
/// `service.test_clock`.
pub fn shift_test_clock(ms: i64) {
    TEST_SHIFT_MS.fetch_add(ms.max(0), Ordering::Relaxed);
    TEST_CLOCK_MOVED.notify_waiters();
}

/// Moves this machine's reading of the time by `ms` more, toward the database's.
pub fn add_clock_offset(ms: i64) {
    CLOCK_OFFSET_MS.fetch_add(ms, Ordering::Relaxed);
}

/// How far this machine's clock is behind the database's, in ms.
pub fn clock_offset() -> i64 {
    CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An RFC 3339 time as milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/switchboard.db?mode=rwc").as_deref(),
            Some("data/switchboard.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///srv/x.db").as_deref(),
            Some("/srv/x.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn times_format_as_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
