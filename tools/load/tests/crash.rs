//! The load generator run as its users run it, against the server binary of this
//! workspace: the crash test (SIGKILL under load, restart on the same data) must find
//! every acknowledged contact present once, and the baseline run must compare with the
//! bare stack.

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

fn run(args: &[&str]) -> String {
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

#[test]
fn killed_under_load_it_keeps_every_acknowledged_contact_once() {
    let out = run(&[
        "--rate",
        "20",
        "--secs",
        "8",
        "--agents",
        "10",
        "--kill-every",
        "3",
    ]);
    // | kills | acknowledged | present | duplicated | lost |
    let row = out
        .lines()
        .skip_while(|l| !l.starts_with("## Crash test"))
        .find(|l| l.starts_with("| ") && !l.starts_with("| kills"))
        .unwrap_or_else(|| panic!("a crash test verdict:\n{out}"));
    let cells: Vec<u64> = row
        .split('|')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let [kills, acknowledged, present, duplicated, lost] = cells[..] else {
        panic!("five figures: {row}");
    };
    assert!(kills >= 1, "{out}");
    assert!(acknowledged >= 50, "the load was acknowledged: {out}");
    assert_eq!(present, acknowledged, "{out}");
    assert_eq!((duplicated, lost), (0, 0), "{out}");
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
