//! Building and running the server: `Application::build` opens the store, starts the
//! intake writer and the channels, binds the listener, and — on a single node at once,
//! on a cluster whenever this node takes the lead — takes over the live state and starts
//! the router and every task that runs once (`LeaderDuties`); `run_until_stopped` serves
//! until a shutdown signal, then drains in order (HTTP, then the lead, then intake, then
//! the store).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use switchboard_contract::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::cluster::{self, Cluster, Duties, Running};
use crate::config::Settings;
use crate::customers::identity::IdentityParser;
use crate::queue::Queue;
use crate::routing::router::{self, RouterHandle, SessionTimes};
use crate::routing::versions::{self, FromFile};
use crate::service::Services;
use crate::simulation::Active;
use crate::store::{interactions, Backend, Store};
use crate::{intake, telemetry};

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Store,
    writer: JoinHandle<()>,
    writer_stop: CancellationToken,
    /// Ends the lead (or the single node's duties) and the cluster's tasks.
    lead_stop: CancellationToken,
    /// Completes when the duties have stopped.
    lead_done: JoinHandle<()>,
    grace: Duration,
    data_location: String,
    token_location: Option<PathBuf>,
    smtp_addr: Option<SocketAddr>,
    channels_stop: CancellationToken,
    limits: crate::serve::Limits,
    /// The one node on this SQLite database (released at the end).
    _single: Option<SingleNode>,
}

/// What a node runs while it leads (a single node, always): the router over the live
/// state taken over from the store, and the tasks that must run once — the channels'
/// outboxes, mailbox polling, the chats' timers, the deadline watch, the retention.
struct LeaderDuties {
    settings: Arc<Settings>,
    store: Store,
    router: RouterHandle,
    queue: Arc<Queue>,
    phone: Arc<switchboard_phone::Phone>,
    chat: Arc<switchboard_chat::Chat>,
    email: Arc<switchboard_email::Email>,
    times: SessionTimes,
    services: Arc<Services>,
}

impl LeaderDuties {
    /// The live state as the store has it: offers die with the leader that made them
    /// (those interactions wait again), nobody is logged in yet, and the waiting
    /// interactions are the queue. Written under the lead's fence.
    async fn take_over(&self) -> anyhow::Result<Active> {
        let now = crate::store::now_ms();
        // The queue takes contacts from now on (those the bus announces meanwhile), before
        // the store is read for those already waiting: none falls between the two.
        self.queue.reset(std::iter::empty());
        let mut tx = self
            .store
            .begin_fenced()
            .await
            .map_err(|e| anyhow::anyhow!("Taking over the live state: {e}"))?;
        interactions::requeue_offered(&mut tx, now)
            .await
            .context("Returning offered interactions to the queue")?;
        crate::store::presence::all_offline(&mut tx, now)
            .await
            .context("Closing the last leader's agent shifts")?;
        let waiting = interactions::in_state(&mut tx, "queued")
            .await
            .context("Reading the queue")?;
        tx.commit().await.context("Taking over the live state")?;
        self.queue.push_all(waiting.iter().map(intake::waiting));
        Active::latest(&self.store, &self.settings.tiers.order)
            .await
            .context("Reading the active routing rules")
    }
}

impl Duties for LeaderDuties {
    fn start(&self, epoch: i64) -> BoxFuture<'_, anyhow::Result<Running>> {
        Box::pin(async move {
            let active = self.take_over().await?;
            let report_zone =
                crate::store::reports::zone::parse(&self.settings.api.report_time_zone)
                    .map_err(|e| anyhow::anyhow!("api.report_time_zone: {e}"))?;
            let stop = CancellationToken::new();
            let router = router::start(
                &self.router,
                self.store.clone(),
                Arc::new(active.rules),
                active.version,
                self.queue.clone(),
                self.times,
                stop.clone(),
            );
            let mut tasks = vec![
                tokio::spawn(crate::service::watch::run(
                    crate::service::watch::Watch {
                        store: self.store.clone(),
                        services: self.services.clone(),
                        queue: self.queue.clone(),
                        router: self.router.clone(),
                        settings: self.settings.clone(),
                    },
                    stop.clone(),
                )),
                tokio::spawn(crate::service::rollup::run(
                    self.store.clone(),
                    self.settings.tiers.order.clone(),
                    report_zone,
                    stop.clone(),
                )),
                tokio::spawn(switchboard_chat::run(
                    self.chat.clone(),
                    stop.clone().cancelled_owned(),
                )),
                tokio::spawn(switchboard_email::outbound::run(
                    self.email.clone(),
                    stop.clone().cancelled_owned(),
                )),
                tokio::spawn(switchboard_phone::run(
                    self.phone.clone(),
                    stop.clone().cancelled_owned(),
                )),
                tokio::spawn(crate::retention::run(
                    self.store.clone(),
                    self.settings.retention.clone(),
                    stop.clone(),
                )),
            ];
            for mailbox in &self.settings.email.imap {
                tasks.push(tokio::spawn(switchboard_email::imap::run(
                    self.email.clone(),
                    mailbox.clone(),
                    stop.clone(),
                )));
            }
            if epoch > 0 {
                tracing::info!(epoch, waiting = self.queue.len(), "Took over the routing");
            }
            // The router stopping on its own (fenced by a newer leader) ends the lead.
            let ended = stop.clone();
            let queue = self.queue.clone();
            let clustered = epoch > 0;
            let done: BoxFuture<'static, ()> = Box::pin(async move {
                if let Err(e) = router.await {
                    tracing::error!(error = %e, "The router ended abnormally");
                }
                ended.cancel();
                if clustered {
                    // The next leader takes the queue from the store.
                    queue.deactivate();
                }
                for t in tasks {
                    if let Err(e) = t.await {
                        tracing::error!(error = %e, "A leader's task ended abnormally");
                    }
                }
            });
            Ok(Running { stop, done })
        })
    }
}

/// The lock that keeps a second server off a SQLite database: SQLite holds one node.
struct SingleNode {
    _file: std::fs::File,
}

impl SingleNode {
    fn claim(db: &Path) -> anyhow::Result<SingleNode> {
        if let Some(dir) = db.parent() {
            crate::store::private_dir(dir)?;
        }
        let path = PathBuf::from(format!("{}.lock", db.display()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("Opening {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock only reads the descriptor of a file this struct keeps open.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked != 0 {
                anyhow::bail!(
                    "Another Switchboard server is running on the SQLite database {}: SQLite \
                     holds one node. Stop the other one, or run several nodes on PostgreSQL \
                     (docs/cluster.md).",
                    db.display()
                );
            }
        }
        Ok(SingleNode { _file: file })
    }
}

impl Application {
    /// Opens the store (applying migrations), starts intake and the channels, binds, and
    /// starts the lead: at once on a single node, by election on a cluster.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let url = settings.database_url();
        // The recorder first, so the queue depth restored below is published.
        let metrics = telemetry::metrics_handle();
        let single = match crate::store::sqlite_path(&url) {
            Some(file) => Some(SingleNode::claim(Path::new(&file))?),
            None => None,
        };
        // On PostgreSQL each node names its connections after itself, so an operator (or a
        // test) can find every connection of one node in pg_stat_activity.
        let node = crate::store::new_id();
        let url = match crate::store::sqlite_path(&url) {
            Some(_) => url,
            None => with_application_name(&url, &format!("switchboard-{node}")),
        };
        let store = Store::connect(&url, settings.storage.max_connections).await?;
        // The token is needed once, to take its digest; it is not kept in the settings
        // every handler can see.
        let (token_sha256, token_location) = admin_token(&settings, &store).await?;
        settings.api.admin_token.clear();
        let settings = Arc::new(settings);
        let active =
            match versions::from_file(&store, settings.routing.path(), &settings.tiers.order).await
            {
                Ok(FromFile::Changed(a)) => {
                    tracing::info!(
                        version = a.version,
                        "The routing rules file changed: it is now the active version"
                    );
                    a
                }
                Ok(FromFile::Unchanged(a)) => a,
                Err(errors) => anyhow::bail!(
                    "The routing rules are not valid:\n  - {}",
                    errors.lines().join("\n  - ")
                ),
            };
        for w in &active.report.warnings {
            tracing::warn!(warning = %w, "The routing rules are doubtful");
        }
        let services = Services::new(active.version, Arc::new(active.rules.clone()));
        if !settings.customers.matter_deadline_hours.is_empty() {
            tracing::warn!("customers.matter_deadline_hours is no longer read: deadlines are the [[policies]] and [complaints] of the routing rules");
        }
        let addr: SocketAddr = settings
            .server
            .http_addr
            .parse()
            .context("Reading server.http_addr")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("Listening on {addr}"))?;
        let local = listener.local_addr().context("Reading the bound address")?;
        let cluster = match store.backend() {
            Backend::Postgres => Some(
                Cluster::join(
                    store.clone(),
                    &url,
                    node,
                    &settings.cluster.advertise_url,
                    local,
                )
                .await
                .context("Joining the cluster")?,
            ),
            Backend::Sqlite => None,
        };
        let queue = Arc::new(Queue::new(settings.tiers.order.clone(), []));
        if store.backend() == Backend::Postgres {
            // Nothing waits here until this node leads.
            queue.deactivate();
        }
        let writer_stop = CancellationToken::new();
        let (intake, writer) = intake::start(
            store.clone(),
            &settings,
            queue.clone(),
            services.clone(),
            writer_stop.clone(),
        );
        let lead_stop = CancellationToken::new();
        let times = SessionTimes {
            heartbeat_timeout: Duration::from_secs(settings.agents.heartbeat_timeout_secs),
            resume_grace: Duration::from_secs(settings.agents.resume_grace_secs),
            commit_window: crate::intake::window::configured(&settings.storage, store.backend()),
        };
        let router_handle = RouterHandle::new(
            settings.routing.announcements_buffer,
            cluster
                .clone()
                .map(|c| cluster::rpc::LeaderRouter::new(c) as Arc<dyn router::Remote>),
        );
        if let Some(c) = &cluster {
            router_handle.relay_to(cluster::bus::Notifier::start(
                store.clone(),
                c.node().to_string(),
                lead_stop.clone(),
            ));
        }
        // Past capacity, some new contacts are refused: the pressure follows the router's
        // lag and the intake's.
        crate::admission::start(
            intake.admission().clone(),
            queue.clone(),
            router_handle.clone(),
            store.clone(),
            writer_stop.clone(),
        );
        let rules_lock: Arc<tokio::sync::Mutex<()>> = Arc::default();
        #[cfg(unix)]
        tokio::spawn(reload_on_sighup(
            store.clone(),
            settings.clone(),
            router_handle.clone(),
            services.clone(),
            rules_lock.clone(),
            lead_stop.clone(),
        ));
        let data_location = match store.backend() {
            Backend::Sqlite => {
                let file = settings.storage.data_dir.join("switchboard.db");
                let shown = if settings.storage.database_url.is_empty() {
                    absolute(&file)
                } else {
                    url.clone()
                };
                format!("SQLite at {shown}")
            }
            Backend::Postgres => format!("PostgreSQL at {}", redact(&url)),
        };
        // The channels: each serves here (webhooks, SMTP, websockets); what runs once
        // (outboxes, mailbox polling, chats' timers) runs where the lead is.
        // Survey links are signed with a secret every node shares.
        let survey_key = cluster::shared_secret(&store, "survey")
            .await
            .context("Reading the survey links' secret")?;
        let core = Arc::new(crate::channels::CoreService::new(
            intake.clone(),
            store.clone(),
            router_handle.clone(),
            queue.clone(),
            crate::channels::ServiceParts {
                services: services.clone(),
                default_tier: settings.tiers.default.clone(),
                parser: IdentityParser::new(&settings.customers.phone_default_region),
                survey_key,
                public_url: settings.service.public_url.clone(),
                commit_window: crate::intake::window::configured(
                    &settings.storage,
                    store.backend(),
                ),
            },
        ));
        let phone = switchboard_phone::Phone::new(settings.phone.clone(), core.clone());
        let channels_core = core.clone();
        phone.set_clustered(cluster.is_some());
        let channels_stop = CancellationToken::new();
        let chat = switchboard_chat::Chat::new(settings.chat.clone(), core.clone());
        let email = switchboard_email::Email::new(settings.email.clone(), core)
            .map_err(|e| anyhow::anyhow!(e))
            .context("Starting the email channel")?;
        let smtp_addr = if settings.email.smtp_addr.is_empty() {
            None
        } else {
            let addr: SocketAddr = settings
                .email
                .smtp_addr
                .parse()
                .context("Reading email.smtp_addr")?;
            let smtp = TcpListener::bind(addr)
                .await
                .with_context(|| format!("Listening for SMTP on {addr}"))?;
            let bound = smtp.local_addr().context("Reading the SMTP address")?;
            tokio::spawn(switchboard_email::smtp::serve(
                email.clone(),
                smtp,
                channels_stop.clone(),
            ));
            Some(bound)
        };
        let duties = Arc::new(LeaderDuties {
            settings: settings.clone(),
            store: store.clone(),
            router: router_handle.clone(),
            queue: queue.clone(),
            phone: phone.clone(),
            chat: chat.clone(),
            email: email.clone(),
            times,
            services: services.clone(),
        });
        let lead_done = match &cluster {
            // A single node leads from the start: it takes over before it serves.
            None => {
                let running = duties.start(0).await?;
                let stop = lead_stop.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    running.stop.cancel();
                    running.done.await;
                })
            }
            Some(c) => {
                // Rules applied on another node reach this node's intake within seconds.
                let (st, sv, tiers, stop) = (
                    store.clone(),
                    services.clone(),
                    settings.tiers.order.clone(),
                    lead_stop.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(2)) => {}
                            () = stop.cancelled() => return,
                        }
                        if let Err(e) = sv.refresh(&st, &tiers).await {
                            tracing::warn!(error = %e, "Could not read the newest rules version; trying again");
                        }
                    }
                });
                tokio::spawn(cluster::bus::listen(
                    c.clone(),
                    url.clone(),
                    router_handle.clone(),
                    queue.clone(),
                    store.clone(),
                    lead_stop.clone(),
                ));
                let run = tokio::spawn(c.clone().run(duties, lead_stop.clone()));
                // The first election's outcome before serving: this node leads (a lone
                // node at once), or knows who does.
                let mut roles = c.roles();
                let settled = tokio::time::timeout(
                    Duration::from_secs(5),
                    roles.wait_for(|r| !matches!(r, cluster::Role::Follower { leader: None })),
                )
                .await;
                if settled.is_err() {
                    tracing::warn!("No node leads yet; serving, and routing once one does");
                }
                run
            }
        };
        let state = AppState {
            phone,
            chat,
            email,
            parser: IdentityParser::new(&settings.customers.phone_default_region),
            settings: settings.clone(),
            store: store.clone(),
            intake,
            queue,
            admin_token_sha256: token_sha256,
            metrics,
            rules_lock: rules_lock.clone(),
            simulations: Arc::new(tokio::sync::Semaphore::new(1)),
            router: router_handle.clone(),
            cluster: cluster.clone(),
            services: services.clone(),
            core: channels_core,
        };
        Ok(Application {
            listener,
            router: api::router(state),
            store,
            writer,
            writer_stop,
            lead_stop,
            lead_done,
            grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            data_location,
            token_location,
            smtp_addr,
            channels_stop,
            limits: crate::serve::Limits {
                header_read_timeout: Duration::from_secs(settings.server.header_read_timeout_secs),
                max_connections: crate::serve::connection_cap(
                    settings.server.max_connections,
                    settings.storage.max_connections,
                ),
                trusted_proxies: settings
                    .server
                    .trusted_proxies
                    .iter()
                    .filter_map(|p| p.parse().ok())
                    .collect(),
                cluster_secret: cluster.as_ref().map(|c| Arc::from(c.secret())),
            },
            _single: single,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the SMTP listener listens, when it runs.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp_addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where its data lives, for people (passwords redacted).
    pub fn data_location(&self) -> &str {
        &self.data_location
    }

    /// Where the generated admin token was written, when it was generated.
    pub fn token_location(&self) -> Option<&Path> {
        self.token_location.as_deref()
    }

    /// Serves until `stop` completes, then shuts down in order: stop taking requests and
    /// let those in flight finish (at most the grace period), commit every contact
    /// already handed to intake, close the store.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let http_stop = CancellationToken::new();
        let server =
            crate::serve::serve(self.listener, self.router, self.limits, http_stop.clone());
        let mut server = tokio::spawn(server);
        tokio::select! {
            result = &mut server => {
                result.context("The HTTP server task failed")?;
            }
            () = stop => {
                tracing::info!("Shutting down: finishing requests in flight");
                http_stop.cancel();
                self.channels_stop.cancel();
                if tokio::time::timeout(self.grace, &mut server).await.is_err() {
                    tracing::warn!(grace_secs = self.grace.as_secs(), "Requests still in flight after the grace period were cut off");
                    server.abort();
                }
            }
        }
        // The lead ends (a cluster's other nodes take it over), with the router and every
        // task that runs once.
        self.lead_stop.cancel();
        if let Err(e) = self.lead_done.await {
            tracing::error!(error = %e, "The lead ended abnormally");
        }
        self.writer_stop.cancel();
        if let Err(e) = self.writer.await {
            tracing::error!(error = %e, "The intake writer ended abnormally");
        }
        self.store.close().await;
        tracing::info!("Stopped");
        Ok(())
    }
}

/// On SIGHUP, reads the routing rules file again: if it changed, it becomes the next
/// version and applies at once; if it has errors, it is refused whole and the active rules
/// stay.
#[cfg(unix)]
async fn reload_on_sighup(
    store: Store,
    settings: Arc<Settings>,
    router: router::RouterHandle,
    services: Arc<Services>,
    lock: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            () = stop.cancelled() => return,
        }
        match versions::reload(
            &store,
            settings.routing.path(),
            &settings.tiers.order,
            &router,
            &services,
            &lock,
        )
        .await
        {
            Ok((version, true)) => {
                tracing::info!(version, "Reloaded the routing rules file as a new version")
            }
            Ok((version, false)) => {
                tracing::info!(
                    version,
                    "The routing rules file is unchanged; the active version stays"
                )
            }
            Err(errors) => {
                for e in &errors.lines() {
                    tracing::error!(error = %e, "The routing rules file was not reloaded");
                }
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a Ctrl-C handler the server runs on (SIGTERM still stops it); it must
        // not take the failure to listen for one as the signal itself.
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "Cannot listen for Ctrl-C; stop the server with SIGTERM");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The admin token's digest: of the configured token, else of the one generated into
/// the data directory on first start. On a cluster the generated token is the first
/// node's (in its data directory), and every node takes its digest from the store.
async fn admin_token(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<([u8; 32], Option<PathBuf>)> {
    let configured = settings.api.admin_token.trim();
    if !configured.is_empty() {
        return Ok((Sha256::digest(configured.as_bytes()).into(), None));
    }
    let path = settings.storage.data_dir.join("admin-token");
    let existing = std::fs::read_to_string(&path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if store.backend() == Backend::Postgres {
        let shared: Option<String> = sqlx::query_scalar(
            "SELECT value FROM cluster_secrets WHERE name = 'admin_token_sha256'",
        )
        .fetch_optional(store.pool())
        .await
        .context("Reading the admin token's digest")?;
        if let Some(hex) = shared {
            let digest = unhex32(&hex).context("The stored admin token's digest is damaged")?;
            let here =
                existing.filter(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())) == digest);
            return Ok((digest, here.map(|_| path)));
        }
    }
    let token = match existing {
        Some(t) => t,
        None => {
            crate::store::private_dir(&settings.storage.data_dir)?;
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| anyhow::anyhow!("No randomness for the admin token: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&path, &token)
                .with_context(|| format!("Writing the admin token to {}", path.display()))?;
            token
        }
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if store.backend() == Backend::Postgres {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        sqlx::query(
            "INSERT INTO cluster_secrets (name, value) VALUES ('admin_token_sha256', $1) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&hex)
        .execute(store.pool())
        .await
        .context("Storing the admin token's digest")?;
        // Another node stored its own first: that one is the cluster's.
        return Box::pin(admin_token(settings, store)).await;
    }
    Ok((digest, Some(path)))
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// A PostgreSQL URL naming its connections `name` (unless it names them already).
fn with_application_name(url: &str, name: &str) -> String {
    if url.contains("application_name=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => url.to_string(),
    };
    let url = url.as_str();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://sb:secret@db:5432/sb"),
            "postgres://sb@db:5432/sb"
        );
        assert_eq!(redact("postgres://db/sb"), "postgres://db/sb");
        assert_eq!(
            redact("postgres://db/sb?user=x&password=y&sslmode=require"),
            "postgres://db/sb?user=x&sslmode=require"
        );
    }
}
