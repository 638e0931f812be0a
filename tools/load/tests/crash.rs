//! The load generator run as its users run it, against the server binary of this
//! workspace: the crash test (SIGKILL under load, restart on the same data), on SQLite
//! and on PostgreSQL, must find every acknowledged contact present once and offered, and
//! the baseline run must keep up and compare with the bare stack; past capacity the
//! goodput must hold.

use std::path::PathBuf;
use std::process::Command;

/// The server binary `cargo test --workspace` builds beside this one.
fn server_binary() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_switchboard-load"));
    let binary = exe.with_file_name("switchboard");
    assert!(
        binary.exists(),
        "{} is built by `cargo test --workspace` (or `cargo build`)",
        binary.display()
    );
    binary
}

/// The goodput test measures rates, so it runs alone; the others may run together.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn run(args: &[&str]) -> String {
    let _shared = MACHINE.read().unwrap_or_else(|p| p.into_inner());
    run_alone(args)
}

fn run_alone(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .arg("--binary")
        .arg(server_binary())
        .args(args)
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh, empty PostgreSQL database on the server `SWITCHBOARD_TEST_PG_URL` names, as
/// the API tests make one. The tests that call it are ignored by a plain `cargo test`
/// and fail without the URL (`bash .ci/run` sets it and runs them).
fn fresh_postgres() -> String {
    use sqlx::Connection;
    let admin = match std::env::var("SWITCHBOARD_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("SWITCHBOARD_TEST_PG_URL is not set: this test runs on PostgreSQL (bash .ci/run starts one and sets it)"),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("sb_test_load_{}_{nanos}", std::process::id());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot reach PostgreSQL at SWITCHBOARD_TEST_PG_URL: {e}")
                });
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create the test database");
        });
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// The crash test at a small size: SIGKILL every 3 s for 8 s under load, on `database`
/// (a fresh SQLite file when `None`); every acknowledged contact must be there once, and
/// offered.
fn crash_test(database: Option<&str>) {
    let mut args = vec![
        "--rate",
        "20",
        "--secs",
        "8",
        "--agents",
        "10",
        "--kill-every",
        "3",
    ];
    if let Some(url) = database {
        args.extend(["--database-url", url]);
    }
    verdict(&run(&args));
}

/// The crash test's table says every acknowledged contact is there once, none held by
/// two agents, and every accepted one was offered after the faults.
fn verdict(out: &str) {
    // | kills | acknowledged | present | duplicated | lost | double-assigned |
    let row = out
        .lines()
        .skip_while(|l| !l.starts_with("## Crash test"))
        .find(|l| l.starts_with("| ") && !l.starts_with("| kills"))
        .unwrap_or_else(|| panic!("a crash test verdict:\n{out}"));
    let cells: Vec<u64> = row
        .split('|')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let [kills, acknowledged, present, duplicated, lost, double] = cells[..] else {
        panic!("six figures: {row}");
    };
    assert!(kills >= 1, "{out}");
    assert!(acknowledged >= 50, "the load was acknowledged: {out}");
    assert_eq!(present, acknowledged, "{out}");
    assert_eq!((duplicated, lost, double), (0, 0, 0), "{out}");
    assert!(
        out.contains("\nKept up"),
        "every contact accepted was offered after the restarts: {out}"
    );
}

#[test]
fn killed_under_load_it_keeps_every_acknowledged_contact_once() {
    crash_test(None);
}

#[test]
#[ignore = "needs PostgreSQL (SWITCHBOARD_TEST_PG_URL): bash .ci/run starts it"]
fn killed_under_load_on_postgresql_it_keeps_every_acknowledged_contact_once() {
    crash_test(Some(&fresh_postgres()));
}

/// Three nodes on one PostgreSQL database, contacts and agents dealt to all of them, the
/// leader killed every 4 s and started again as a follower: every acknowledged contact
/// is there once and was never held by two agents, and after every kill another node
/// led and routed contacts sent after it.
#[test]
#[ignore = "needs PostgreSQL (SWITCHBOARD_TEST_PG_URL): bash .ci/run starts it"]
fn a_cluster_whose_leader_is_killed_under_load_keeps_every_acknowledged_contact_once() {
    let db = fresh_postgres();
    let out = run(&[
        "--rate",
        "20",
        "--secs",
        "14",
        "--agents",
        "12",
        "--nodes",
        "3",
        "--database-url",
        &db,
        "--kill-leader-every",
        "4",
    ]);
    verdict(&out);
    let failover = out
        .lines()
        .find(|l| l.starts_with("failover over "))
        .unwrap_or_else(|| panic!("a failover line:\n{out}"));
    assert!(
        !failover.contains("never followed"),
        "every kill was followed by a new leader and routing: {out}"
    );
}

#[test]
fn the_baseline_runs_the_same_load_against_the_bare_stack() {
    let out = run(&[
        "--rate",
        "20",
        "--secs",
        "3",
        "--agents",
        "10",
        "--baseline",
    ]);
    assert!(
        out.contains("## The bare stack, same load, same run"),
        "{out}"
    );
    let ratios: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("## Switchboard as a ratio"))
        .filter(|l| l.starts_with("| phone") || l.starts_with("| email") || l.starts_with("| chat"))
        .collect();
    assert_eq!(ratios.len(), 3, "{out}");
    for r in ratios {
        assert!(r.contains('×'), "each channel has a ratio: {r}");
    }
    assert!(out.contains("server CPU per 1,000 contacts"), "{out}");
}

/// Past capacity: the same mixed load (calls, some from known high-tier customers, mail
/// and chats; agents working every offer) at a rate the server keeps up with, about at
/// it, and at several times what it can route, each on a fresh server. Goodput — offers
/// reaching desktops per second — must not collapse at twice the capacity and past it:
/// at least 75% of the best rate measured (the generator fails the run otherwise; before
/// admission control it fell under 66% at five times). The 90% the centre is promised
/// is what BENCHMARKS.md measures on the release build; this debug build on a shared
/// machine is held to less so the check fails on a collapse, not on noise. Nothing
/// accepted may go unoffered, each channel must answer only as it should (accepted or
/// refused in its own way, nothing failed), and known high-tier callers must be taken
/// ahead of others.
#[test]
fn past_capacity_goodput_holds_and_high_tier_calls_go_first() {
    let _alone = MACHINE.write().unwrap_or_else(|p| p.into_inner());
    let out = run_alone(&[
        "--rates",
        GOODPUT_RATES,
        "--secs",
        "8",
        "--agents",
        "1000",
        "--drain-secs",
        "20",
        "--highs",
        "100",
        "--high-share",
        "0.2",
        "--goodput-floor",
        "0.75",
    ]);
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("/s |") && !l.starts_with("| offered"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 3, "a row per rate:\n{out}");
    // Columns by their heading, so a column added to the table moves none of them.
    let header: Vec<String> = out
        .lines()
        .find(|l| l.starts_with("| offered rate"))
        .unwrap_or_else(|| panic!("no table heading:\n{out}"))
        .split('|')
        .map(|c| c.trim().to_string())
        .collect();
    let column = |name: &str| -> usize {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name:?}:\n{out}"))
    };
    let (refused_at, failed_at) = (
        column("refused phone / email / chat"),
        column("failed phone / email / chat"),
    );
    let (high_at, others_at) = (
        column("high-tier calls accepted"),
        column("others accepted"),
    );
    let figures = |cell: &str| -> Vec<u64> {
        cell.split('/')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{cell}:\n{out}"))
            })
            .collect()
    };
    for row in &rows {
        assert_eq!(
            figures(&row[failed_at]),
            [0, 0, 0],
            "nothing failed at {}:\n{out}",
            row[1]
        );
    }
    let top = &rows[2];
    let refused: u64 = figures(&top[refused_at]).iter().sum();
    assert!(
        refused > 0,
        "the top rate went past capacity, so something was refused:\n{out}"
    );
    // "120 of 160 (75%)" against "31%".
    let percent = |cell: &str| -> f64 {
        let p = cell.rsplit('(').next().unwrap_or(cell);
        p.trim_end_matches(')')
            .trim_end_matches('%')
            .parse()
            .unwrap_or_else(|_| panic!("a share: {cell}:\n{out}"))
    };
    assert!(
        percent(&top[high_at]) > percent(&top[others_at]),
        "known high-tier calls taken ahead of the others:\n{out}"
    );
    assert!(
        out.contains("\nEvery accepted contact was offered."),
        "{out}"
    );
}

/// On a 2-core machine this debug build routes about 300 to 400 contacts a second (the
/// 1,000 agents could take 1,000): a rate under that, one about at it, and 2.5 to 3 times
/// it. Not more: past that this debug build of the generator, on the same 2 cores, starves
/// its own agents (at 1,500/s goodput measured 61–84% of the best from run to run, at
/// 1,000/s 89–97%).
const GOODPUT_RATES: &str = "100,400,1000";
