//! Building and running the server: `Application::build` opens the store, restores the
//! queue, starts the intake writer and binds the listener; `run_until_stopped` serves
//! until a shutdown signal, then drains in order (HTTP, then intake, then the store).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::customers::identity::IdentityParser;
use crate::queue::Queue;
use crate::routing::router::{self, SessionTimes};
use crate::routing::versions::{self, FromFile};
use crate::store::{interactions, Backend, Store};
use crate::{intake, telemetry};

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Store,
    writer: JoinHandle<()>,
    writer_stop: CancellationToken,
    router_task: JoinHandle<()>,
    router_stop: CancellationToken,
    grace: Duration,
    data_location: String,
    token_location: Option<PathBuf>,
    smtp_addr: Option<SocketAddr>,
    channels_stop: CancellationToken,
    limits: crate::serve::Limits,
}

impl Application {
    /// Opens the store (applying migrations), restores the queue from it, and binds.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        // The token is needed once, to take its digest; it is not kept in the settings
        // every handler can see.
        let (token, token_location) = admin_token(&settings)?;
        settings.api.admin_token.clear();
        let settings = Arc::new(settings);
        let url = settings.database_url();
        // The recorder first, so the queue depth restored below is published.
        let metrics = telemetry::metrics_handle();
        let store = Store::connect(&url, settings.storage.max_connections).await?;
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
        let mut conn = store.pool().acquire().await.context("Reading the queue")?;
        // Offers die with the process that made them: those interactions wait again.
        interactions::requeue_offered(&mut conn, crate::store::now_ms())
            .await
            .context("Returning offered interactions to the queue")?;
        // Nobody is logged in yet, whatever the presence log says of the last run.
        crate::store::presence::all_offline(&mut conn, crate::store::now_ms())
            .await
            .context("Closing the last run's agent shifts")?;
        let waiting = interactions::in_state(&mut conn, "queued")
            .await
            .context("Reading the queue")?;
        drop(conn);
        let queue = Arc::new(Queue::new(
            settings.tiers.order.clone(),
            waiting.iter().map(intake::waiting),
        ));
        let writer_stop = CancellationToken::new();
        let (intake, writer) =
            intake::start(store.clone(), &settings, queue.clone(), writer_stop.clone());
        let router_stop = CancellationToken::new();
        let times = SessionTimes {
            heartbeat_timeout: Duration::from_secs(settings.agents.heartbeat_timeout_secs),
            resume_grace: Duration::from_secs(settings.agents.resume_grace_secs),
        };
        let (router_handle, router_task) = router::start(
            store.clone(),
            Arc::new(active.rules),
            active.version,
            queue.clone(),
            times,
            settings.routing.announcements_buffer,
            router_stop.clone(),
        );
        let rules_lock: Arc<tokio::sync::Mutex<()>> = Arc::default();
        #[cfg(unix)]
        tokio::spawn(reload_on_sighup(
            store.clone(),
            settings.clone(),
            router_handle.clone(),
            rules_lock.clone(),
            router_stop.clone(),
        ));
        let addr: SocketAddr = settings
            .server
            .http_addr
            .parse()
            .context("Reading server.http_addr")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("Listening on {addr}"))?;
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
        // The phone channel: webhooks on the HTTP port, and its commands delivered in the
        // background until the router stops.
        let core = Arc::new(crate::channels::CoreService::new(
            intake.clone(),
            store.clone(),
            router_handle.clone(),
            queue.clone(),
        ));
        let phone = switchboard_phone::Phone::new(settings.phone.clone(), core.clone());
        // The email channel: the SMTP listener, bound now so a taken port stops the start.
        let channels_stop = CancellationToken::new();
        let chat = switchboard_chat::Chat::new(settings.chat.clone(), core.clone());
        tokio::spawn(switchboard_chat::run(
            chat.clone(),
            router_stop.clone().cancelled_owned(),
        ));
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
        for mailbox in &settings.email.imap {
            tokio::spawn(switchboard_email::imap::run(
                email.clone(),
                mailbox.clone(),
                channels_stop.clone(),
            ));
        }
        tokio::spawn(switchboard_email::outbound::run(
            email.clone(),
            router_stop.clone().cancelled_owned(),
        ));
        tokio::spawn(switchboard_phone::run(
            phone.clone(),
            router_stop.clone().cancelled_owned(),
        ));
        let state = AppState {
            phone,
            chat,
            email,
            parser: IdentityParser::new(&settings.customers.phone_default_region),
            settings: settings.clone(),
            store: store.clone(),
            intake,
            queue,
            admin_token_sha256: Sha256::digest(token.as_bytes()).into(),
            metrics,
            rules_lock: rules_lock.clone(),
            simulations: Arc::new(tokio::sync::Semaphore::new(1)),
            router: router_handle.clone(),
        };
        Ok(Application {
            listener,
            router: api::router(state),
            store,
            writer,
            writer_stop,
            router_task,
            router_stop,
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
            },
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
        self.router_stop.cancel();
        if let Err(e) = self.router_task.await {
            tracing::error!(error = %e, "The router ended abnormally");
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

/// The configured admin token, or the one generated into the data directory on first start.
fn admin_token(settings: &Settings) -> anyhow::Result<(String, Option<PathBuf>)> {
    let configured = settings.api.admin_token.trim();
    if !configured.is_empty() {
        return Ok((configured.to_string(), None));
    }
    let path = settings.storage.data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            return Ok((existing.trim().to_string(), Some(path)));
        }
    }
    crate::store::private_dir(&settings.storage.data_dir)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("No randomness for the admin token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &token)
        .with_context(|| format!("Writing the admin token to {}", path.display()))?;
    Ok((token, Some(path)))
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
