//! The command line: `switchboard [serve]`, `check-config [PATH]`, `reload` and `simulate`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Settings, DEFAULT_PATH};
use crate::routing::rules::Rules;
use crate::startup::{shutdown_signal, Application};
use crate::telemetry;

/// Switchboard: contact-centre middleware.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The configuration file (default: config/switchboard.toml when present, else the
    /// built-in defaults). SWITCHBOARD__SECTION__KEY variables override it.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until Ctrl-C or SIGTERM.
    Serve,
    /// Check a configuration file and say exactly what is wrong and where.
    CheckConfig {
        /// The file to check (default: --config, else config/switchboard.toml).
        path: Option<PathBuf>,
    },
    /// Ask the running server (at server.http_addr) to read its routing rules file again.
    Reload,
    /// Replay a window of recorded history under the active rules and, with --rules, a
    /// candidate rule set; print the service level, waits, abandonment and occupancy of
    /// each beside what happened live.
    Simulate(SimulateArgs),
}

/// What `switchboard simulate` replays.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The window's start, RFC 3339 (2026-11-26T09:00:00Z).
    #[arg(long, conflicts_with = "last", requires = "to")]
    pub from: Option<String>,
    /// The window's end, RFC 3339.
    #[arg(long, conflicts_with = "last", requires = "from")]
    pub to: Option<String>,
    /// The window ending now, as a length: 90m, 8h, 2d.
    #[arg(long)]
    pub last: Option<String>,
    /// A candidate rules file (the same format as config/routing.toml).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// A tier's target wait for the service level, as TIER=SECONDS (repeatable).
    #[arg(long = "target", value_name = "TIER=SECONDS")]
    pub targets: Vec<String>,
    /// Print the whole comparison as JSON (the API's answer) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command line; the process exits with the code returned.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig { path } => check_config(path.or(cli.config)),
        Command::Serve => serve(cli.config),
        Command::Reload => reload(cli.config),
        Command::Simulate(args) => simulate(cli.config, args),
    }
}

/// Loads the settings, or says on standard error why not (`what` names them) and
/// answers the exit code.
fn load(path: Option<&std::path::Path>, what: &str) -> Result<Settings, std::process::ExitCode> {
    Settings::load(path).map_err(|e| {
        eprintln!("{what} is not valid:");
        for p in &e.problems {
            eprintln!("  - {p}");
        }
        std::process::ExitCode::from(2)
    })
}

fn check_config(path: Option<PathBuf>) -> std::process::ExitCode {
    let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let settings = match load(
        Some(&path),
        &format!("{}: the configuration", path.display()),
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    println!("{}: the configuration is valid", path.display());
    let rules_name = settings.routing.path().map_or_else(
        || "the routing rules".to_string(),
        |p| p.display().to_string(),
    );
    match Rules::load(settings.routing.path(), &settings.tiers.order) {
        Ok((_, report)) => {
            println!("{rules_name}: the routing rules are valid");
            for w in &report.warnings {
                println!("  warning: {w}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(report) => {
            eprintln!("{rules_name}: the routing rules are not valid:");
            for e in &report.errors {
                eprintln!("  - {e}");
            }
            for w in &report.warnings {
                eprintln!("  warning: {w}");
            }
            std::process::ExitCode::from(2)
        }
    }
}

fn reload(config: Option<PathBuf>) -> std::process::ExitCode {
    let settings = match load(config.as_deref(), "The configuration") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let token = match settings.api.admin_token.trim() {
        "" => std::fs::read_to_string(settings.storage.data_dir.join("admin-token"))
            .unwrap_or_default(),
        t => t.to_string(),
    };
    let mut addr: std::net::SocketAddr = match settings.server.http_addr.parse() {
        Ok(a) => a,
        Err(_) => return std::process::ExitCode::from(2),
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/api/routing/rules/reload");
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| {
            rt.block_on(async {
                let resp = reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(token.trim())
                    .send()
                    .await?;
                let status = resp.status();
                Ok::<_, reqwest::Error>((
                    status,
                    resp.json::<serde_json::Value>().await.unwrap_or_default(),
                ))
            })
        });
    match answer {
        Ok(Ok((status, body))) if status.is_success() => {
            let changed = if body["changed"] == true {
                "changed: now"
            } else {
                "unchanged: still"
            };
            println!(
                "The routing rules file is {changed} version {}",
                body["version"]
            );
            std::process::ExitCode::SUCCESS
        }
        Ok(Ok((_, body))) => {
            eprintln!(
                "The server refused the rules file: {}",
                body["message"].as_str().unwrap_or("no reason given")
            );
            for e in body["errors"].as_array().into_iter().flatten() {
                eprintln!("  - {}", e.as_str().unwrap_or_default());
            }
            std::process::ExitCode::from(2)
        }
        Ok(Err(e)) => {
            eprintln!("Could not reach Switchboard at {url}: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("Cannot start: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn simulate(config: Option<PathBuf>, args: SimulateArgs) -> std::process::ExitCode {
    let settings = match load(config.as_deref(), "The configuration") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let usage = |m: String| {
        eprintln!("{m}");
        std::process::ExitCode::from(2)
    };
    let now = crate::store::now_ms();
    let (from_ms, to_ms) = match (&args.from, &args.to, &args.last) {
        (Some(f), Some(t), None) => {
            match (
                crate::store::parse_rfc3339(f),
                crate::store::parse_rfc3339(t),
            ) {
                (Some(f), Some(t)) => (f, t),
                _ => {
                    return usage(
                        "--from and --to take RFC 3339 times such as 2026-11-26T09:00:00Z".into(),
                    )
                }
            }
        }
        (None, None, Some(last)) => match duration_ms(last) {
            Some(d) => (now - d, now),
            None => {
                return usage(format!(
                    "--last: '{last}' is not a length such as 90m, 8h or 2d"
                ))
            }
        },
        _ => return usage("say which window to replay: --last 8h, or --from and --to".into()),
    };
    let mut targets_secs = std::collections::BTreeMap::new();
    for t in &args.targets {
        match t
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim().parse::<u64>()))
        {
            Some((tier, Ok(secs))) if settings.tiers.order.iter().any(|x| x == tier) => {
                targets_secs.insert(tier.to_string(), secs);
            }
            _ => {
                return usage(format!(
                    "--target: '{t}' is not TIER=SECONDS with a tier of {}",
                    settings.tiers.order.join(", ")
                ))
            }
        }
    }
    let candidate = match &args.rules {
        Some(path) => match Rules::load(Some(path), &settings.tiers.order) {
            Ok((rules, _)) => Some(rules),
            Err(report) => {
                eprintln!("{}: the candidate rules are not valid:", path.display());
                for e in &report.errors {
                    eprintln!("  - {e}");
                }
                return std::process::ExitCode::from(2);
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(format!("Cannot start: {e}")),
    };
    let result = runtime.block_on(async {
        let store = crate::store::Store::connect(
            &settings.database_url(),
            settings.storage.max_connections,
        )
        .await?;
        let active = crate::simulation::Active::latest(&store, &settings.tiers.order).await?;
        let request = crate::simulation::Request {
            from_ms,
            to_ms,
            candidate,
            targets_secs,
        };
        let answer =
            crate::simulation::simulate(&store, &settings.routing, active, request, now).await;
        store.close().await;
        Ok::<_, anyhow::Error>(answer)
    });
    match result {
        Ok(Ok(c)) if args.json => {
            println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Ok(Ok(c)) => {
            print!("{}", crate::simulation::table(&c));
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(e)) => usage(format!("Cannot simulate: {e}")),
        Err(e) => {
            eprintln!("Cannot read the store: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `90m`, `8h`, `2d`, `600s` in milliseconds.
fn duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = match s.chars().last()? {
        's' => 1000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(unit)
}

/// Every agent desktop, chat visitor and SMTP session is an open socket: the soft limit
/// on open files (1,024 on many systems) is raised to the hard limit, as far as the
/// system allows, so a centre of thousands of agents is not refused at the 1,025th.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(
                    "Could not raise the limit on open files; it stays {}",
                    limit.rlim_cur
                );
            }
        }
    }
}

fn serve(config: Option<PathBuf>) -> std::process::ExitCode {
    let settings = match load(config.as_deref(), "The configuration") {
        Ok(s) => s,
        Err(code) => return code,
    };
    telemetry::init_logging(&settings.log);
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let app = Application::build(settings).await?;
        println!("Switchboard listening on http://{}", app.local_addr());
        if let Some(smtp) = app.smtp_addr() {
            println!("SMTP listening on {smtp}");
        }
        println!("Data: {}", app.data_location());
        if let Some(path) = app.token_location() {
            println!("Admin API token: in {}", path.display());
        }
        app.run_until_stopped(shutdown_signal()).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Switchboard stopped on an error");
            eprintln!("Switchboard stopped: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
