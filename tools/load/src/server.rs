//! The server under load: running nodes named by their URLs, or the release binary
//! started as one node or several on one database (a cluster on PostgreSQL), each on a
//! fresh data directory and fixed loopback ports (so one killed and started again is
//! where the clients left it). Their CPU and memory are read from `/proc` when they are
//! our children.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Args;

/// One server process (or one remote node).
pub struct Node {
    child: Mutex<Option<Child>>,
    /// How to start it again (the crash test); `None` for a node we did not start.
    command: Option<Mutex<Command>>,
    /// `http://host:port`.
    pub base: String,
    /// The SMTP listener, `host:port`.
    pub smtp: String,
    /// Where its output is kept (`--logs`), appended to across restarts.
    log: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// The server the load is driven against: one node or several serving one database.
pub struct Server {
    /// Every node; the channels and agents are dealt to them in turn.
    pub nodes: Vec<Node>,
    /// The admin token.
    pub token: String,
    /// The phone channel's webhook secret.
    pub phone_secret: String,
    /// The node leading the routing when last looked at (`usize::MAX` before).
    pub leading: AtomicUsize,
    _rules: Option<tempfile::TempDir>,
}

impl Drop for Node {
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
    /// Nodes that run elsewhere (`--url` and `--smtp`, paired in order): nothing to
    /// start, kill or measure.
    pub fn remote(args: &Args) -> Server {
        assert_eq!(
            args.url.len(),
            args.smtp.len(),
            "one --smtp for each --url, in the same order"
        );
        let nodes = args
            .url
            .iter()
            .zip(&args.smtp)
            .map(|(url, smtp)| Node {
                child: Mutex::new(None),
                command: None,
                base: url.trim_end_matches('/').to_string(),
                smtp: smtp.clone(),
                log: None,
                _dir: None,
            })
            .collect();
        Server {
            nodes,
            token: args.token.clone().expect("--token with --url"),
            phone_secret: args
                .phone_secret
                .clone()
                .expect("--phone-secret with --url"),
            leading: AtomicUsize::new(usize::MAX),
            _rules: None,
        }
    }

    /// Starts `--nodes` server processes on the database named by `--database-url` (a
    /// fresh SQLite file for a single node without it), each on a fresh data directory
    /// and its own loopback ports, and waits until each listens.
    pub fn start(args: &Args) -> Server {
        let shared = tempfile::tempdir().unwrap();
        let rules = shared.path().join("routing.toml");
        std::fs::write(
            &rules,
            include_str!("../../../config/routing.toml").replace(
                "wrap_up_secs = 30",
                &format!("wrap_up_secs = {}", args.wrap_up_secs),
            ),
        )
        .unwrap();
        let nodes = (0..args.nodes.max(1))
            .map(|i| {
                let log = args
                    .logs
                    .as_ref()
                    .map(|dir| std::path::Path::new(dir).join(format!("node-{i}.log")));
                let dir = tempfile::tempdir().unwrap();
                let http = format!("127.0.0.1:{}", free_port());
                let smtp = format!("127.0.0.1:{}", free_port());
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
                    // Every visitor of the load comes from one address: the per-address
                    // limits would refuse all but the first few.
                    .env("SWITCHBOARD__CHAT__MESSAGES_PER_MINUTE_PER_ADDRESS", "0")
                    .env("SWITCHBOARD__CHAT__CHATS_PER_MINUTE_PER_ADDRESS", "0")
                    .env(
                        "SWITCHBOARD__LOG__LEVEL",
                        if args.logs.is_some() { "info" } else { "warn" },
                    )
                    .env("SWITCHBOARD__ROUTING__RULES_FILE", &rules)
                    .env(
                        "SWITCHBOARD__STORAGE__DATABASE_URL",
                        args.database_url.clone().unwrap_or_default(),
                    )
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                let child = spawn(&mut command, log.as_deref());
                Node {
                    child: Mutex::new(Some(child)),
                    command: Some(Mutex::new(command)),
                    log,
                    base: format!("http://{http}"),
                    smtp,
                    _dir: Some(dir),
                }
            })
            .collect();
        Server {
            nodes,
            token: "load-token".into(),
            phone_secret: "load-secret".into(),
            leading: AtomicUsize::new(usize::MAX),
            _rules: Some(shared),
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
        let child = spawn(&mut command, None);
        Server {
            nodes: vec![Node {
                child: Mutex::new(Some(child)),
                command: None,
                base: format!("http://{http}"),
                smtp,
                log: None,
                _dir: Some(dir),
            }],
            token: String::new(),
            phone_secret: "load-secret".into(),
            leading: AtomicUsize::new(0),
            _rules: None,
        }
    }

    /// The node the `n`th contact (or agent) goes to: the nodes in turn.
    pub fn node(&self, n: u64) -> &Node {
        &self.nodes[n as usize % self.nodes.len()]
    }

    /// The first node's URL, for the API calls that any node answers alike.
    pub fn base(&self) -> &str {
        &self.nodes[0].base
    }

    /// What the server's processes have used so far together, when all are our
    /// children.
    pub fn usage(&self) -> Option<Usage> {
        self.nodes.iter().try_fold(
            Usage {
                cpu_secs: 0.0,
                rss_kib: 0,
            },
            |sum, n| {
                let u = n.usage()?;
                Some(Usage {
                    cpu_secs: sum.cpu_secs + u.cpu_secs,
                    rss_kib: sum.rss_kib + u.rss_kib,
                })
            },
        )
    }

    /// Whether a desktop on node `n` has its router's frames relayed (it is not on the
    /// leader, as last seen).
    pub fn relayed(&self, n: usize) -> bool {
        self.nodes.len() > 1 && self.leading.load(Ordering::SeqCst) != n
    }

    /// Which node leads the routing, as each says on `/readyz` (remembered for
    /// [`Server::relayed`]); `None` while none does.
    pub async fn leader(&self, client: &reqwest::Client) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            let ready = client
                .get(format!("{}/readyz", n.base))
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            if let Ok(r) = ready {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                if v["role"]["role"] == "leader" || v["role"]["role"] == "single" {
                    self.leading.store(i, Ordering::SeqCst);
                    return Some(i);
                }
            }
        }
        None
    }

    /// Waits until a node other than `not` leads; answers when it was first seen, or
    /// `None` when none does within `within`.
    pub async fn new_leader(
        &self,
        client: &reqwest::Client,
        not: usize,
        within: Duration,
    ) -> Option<Instant> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            match self.leader(client).await {
                Some(i) if i != not => return Some(Instant::now()),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        None
    }
}

impl Node {
    /// What this process has used so far, when it is our child.
    pub fn usage(&self) -> Option<Usage> {
        let pid = self.child.lock().unwrap().as_ref().map(Child::id)?;
        usage(pid)
    }

    /// SIGKILL; answers when the process is gone.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            // SIGKILL is the fault under test; a child already gone is as good.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The same server again on the same data and ports, once it listens.
    pub fn restart(&self) {
        let Some(command) = &self.command else { return };
        let child = spawn(&mut command.lock().unwrap(), self.log.as_deref());
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

/// Starts a server process and waits until it says it listens; its output goes on to
/// `log` (appended) or nowhere.
fn spawn(command: &mut Command, log: Option<&std::path::Path>) -> Child {
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
    let mut log = log.map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("the log directory is writable")
    });
    std::thread::spawn(move || {
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                use std::io::Write;
                // A log that cannot be written loses only the log; the run goes on.
                if writeln!(f, "{line}").is_err() {
                    log = None;
                }
            }
        }
    });
    child
}

/// CPU time and resident memory of a process, from `/proc`.
pub(crate) fn usage(pid: u32) -> Option<Usage> {
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
