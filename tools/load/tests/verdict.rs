//! The load generator counts what did not happen: contacts that failed and contacts
//! accepted but never offered are in its figures, and a run with either says it did not
//! keep up and exits with status 2.

use std::path::PathBuf;
use std::process::Command;

/// Runs the generator; answers its exit code and what it printed.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_switchboard-load"));
    let out = Command::new(&exe)
        .arg("--binary")
        .arg(exe.with_file_name("switchboard"))
        .args(args)
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), stdout)
}

/// The row of `channel` in the first table that has one, as its cells.
fn row(out: &str, channel: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("| {channel} |")))
        .unwrap_or_else(|| panic!("a row for {channel}:\n{out}"));
    line.split('|')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn contacts_nobody_answered_are_failures_in_every_figure() {
    // Nothing listens on port 9 of loopback: every contact is refused.
    let (code, out) = run(&[
        "--url",
        "http://127.0.0.1:9",
        "--token",
        "t",
        "--phone-secret",
        "s",
        "--smtp",
        "127.0.0.1:9",
        "--agents",
        "0",
        "--rate",
        "10",
        "--secs",
        "2",
        "--mix",
        "phone=50,email=50,chat=0",
    ]);
    assert_eq!(code, Some(2), "{out}");
    // | channel | sent | accepted/s | failed | ack p50 | ack p99 |
    let phone = row(&out, "phone");
    assert_eq!(phone[1], "10", "{out}");
    assert_eq!(phone[2], "0.0", "{out}");
    assert_eq!(phone[3], "10", "{out}");
    assert_eq!((phone[4].as_str(), phone[5].as_str()), ("failed", "failed"));
    assert!(
        out.contains("Did not keep up: 20 of 20 contacts sent failed"),
        "{out}"
    );
}

#[test]
fn contacts_accepted_but_never_offered_are_counted_and_the_run_did_not_keep_up() {
    // One agent, who takes one call at a time and holds each for a minute: of 20 calls,
    // one is offered and the rest wait.
    let (code, out) = run(&[
        "--agents",
        "1",
        "--handle-secs",
        "60",
        "--rate",
        "10",
        "--secs",
        "2",
        "--drain-secs",
        "2",
        "--mix",
        "phone=100,email=0,chat=0",
    ]);
    assert_eq!(code, Some(2), "{out}");
    // | channel | sent | accepted/s | failed | ack p50 | ack p99 | offered/s | never offered | p50 | p95 | p99 | max |
    let phone = row(&out, "phone");
    assert_eq!((phone[1].as_str(), phone[3].as_str()), ("20", "0"), "{out}");
    assert_eq!(phone[7], "19", "{out}");
    assert_eq!(
        phone[8], "never offered",
        "the median call was never offered: {out}"
    );
    assert!(
        out.contains("Did not keep up: 19 of 20 accepted were never offered"),
        "{out}"
    );
}

#[test]
fn more_chats_a_minute_than_one_address_may_start_are_all_accepted_under_load() {
    // Every visitor of the load comes from 127.0.0.1; the server it starts must not
    // refuse them by the per-address limit (20 chats a minute by default).
    let (code, out) = run(&[
        "--agents",
        "15",
        "--rate",
        "20",
        "--secs",
        "2",
        "--mix",
        "phone=0,email=0,chat=100",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let chat = row(&out, "chat");
    assert_eq!((chat[1].as_str(), chat[3].as_str()), ("40", "0"), "{out}");
    assert!(out.contains("Kept up: all 40 contacts sent"), "{out}");
}
