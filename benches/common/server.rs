//! The real server for benchmarks, in this process on its own 2-thread runtime, on a
//! fresh SQLite database (WAL, `synchronous=FULL`): the settings a benchmark needs, then
//! its addresses, and a clean stop.

// Shared by several benchmarks, each of which uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use switchboard::config::Settings;
use switchboard::startup::Application;

/// A running server.
pub struct BenchServer {
    /// Its runtime (benchmarks may run their baselines on it too).
    pub rt: tokio::runtime::Runtime,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its SMTP listener.
    pub smtp: Option<SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Starts the server with the bench defaults (loopback ports chosen by the system, the
/// admin `token`, warnings only), adjusted by `adjust`.
pub fn start(token: &str, adjust: impl FnOnce(&mut Settings, &std::path::Path)) -> BenchServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.server.http_addr = "127.0.0.1:0".into();
    settings.email.smtp_addr = "127.0.0.1:0".into();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.api.admin_token = token.into();
    settings.log.level = "warn".into();
    adjust(&mut settings, dir.path());
    let app = rt.block_on(Application::build(settings)).unwrap();
    let base = format!("http://{}", app.local_addr());
    let smtp = app.smtp_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    BenchServer {
        rt,
        base,
        smtp,
        stop,
        task,
        _dir: dir,
    }
}

impl BenchServer {
    /// Stops it the way SIGTERM does, and waits.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.rt.block_on(self.task).unwrap().unwrap();
    }
}

/// Runs the load on a thread of its own with a single-threaded runtime, as a separate
/// client would; answers what it answers.
pub fn load<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}
