//! The server under load: a running one named by its URL, or the release binary started
//! on a fresh data directory (and, for the crash test, killed and started again on the
//! same data and ports). Its CPU and memory are read from `/proc` when it is our child.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use crate::Args;

/// A server the load is driven against.
pub struct Server {
    child: Mutex<Option<Child>>,
    /// How to start it again (the crash test); `None` for a server we did not start.
    command: Option<Mutex<Command>>,
    /// `http://host:port`.
    pub base: String,
    /// The admin token.
    pub token: String,
    /// The phone channel's webhook secret.
    pub phone_secret: String,
    /// The SMTP listener, `host:port`.
    pub smtp: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.get_mut().unwrap().as_mut() {
            // A server we started ends with the run; one already gone has nothing to kill.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a process had used at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// CPU time, user and system, in seconds.
    pub cpu_secs: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
}

impl Server {
    /// A server that runs elsewhere: nothing to start, kill or measure.
    pub fn remote(args: &Args) -> Server {
        let url = args.url.as_deref().expect("a remote server has a URL");
        Server {
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
        }
    }

    /// Starts the server binary on a fresh data directory (and the database named by
    /// `--database-url`, or a fresh SQLite file), on fixed loopback ports so a restarted
    /// server is where the clients left it.
    pub fn start(args: &Args) -> Server {
        let dir = tempfile::tempdir().unwrap();
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
            // Every visitor of the load comes from one address: the per-address limits
            // would refuse all but the first few.
            .env("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE_PER_ADDRESS", "0")
            .env("SWITCHBOARD__CHAT__CHATS_PER_MINUTE_PER_ADDRESS", "0")
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

    /// The bare stack (`bare.rs`), served by this same executable as a child process so
    /// its CPU and memory are its own.
    pub fn start_bare() -> Server {
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
        Server {
            child: Mutex::new(Some(child)),
            command: None,
            base: format!("http://{http}"),
            token: String::new(),
            phone_secret: "load-secret".into(),
            smtp,
            _dir: Some(dir),
        }
    }

    /// What the server process has used so far, when it is our child.
    pub fn usage(&self) -> Option<Usage> {
        let pid = self.child.lock().unwrap().as_ref().map(Child::id)?;
        usage(pid)
    }

    /// SIGKILL, then the same server again on the same data and ports.
    pub fn crash_and_restart(&self) {
        let Some(command) = &self.command else { return };
        if let Some(mut c) = self.child.lock().unwrap().take() {
            // SIGKILL is the fault under test; a child already gone is as good.
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

/// Starts a server process and waits until it says it listens.
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
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    child
}

/// CPU time and resident memory of a process, from `/proc`.
fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // utime and stime, in clock ticks of 1/100 s on Linux.
    let ticks = field(11)? + field(12)?;
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some(Usage {
        cpu_secs: ticks as f64 / 100.0,
        rss_kib,
    })
}
