//! The release server as a process of its own, for benchmarks that read its memory from
//! `/proc` apart from the load generator's: started on a data directory with settings
//! given as environment variables, its address read from its first line, killed when
//! dropped.

// Shared by several benchmarks, each of which uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A server process.
pub struct Process {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Already gone is as good as killed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://127.0.0.1:PORT` + `path`.
    pub fn ws(&self, path: &str) -> String {
        format!("{}{path}", self.base.replacen("http://", "ws://", 1))
    }
}

/// Starts `binary` (the release build unless a benchmark names another) on `dir` with
/// the benchmark defaults (a loopback port chosen by the system, the admin `token`, no
/// SMTP listener, warnings only), adjusted by `env` (`SWITCHBOARD__SECTION__KEY`).
pub fn start_server(binary: &str, dir: &Path, token: &str, env: &[(&str, &str)]) -> Process {
    let mut command = Command::new(binary);
    command
        .env("SWITCHBOARD__SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD__STORAGE__DATA_DIR", dir)
        .env("SWITCHBOARD__API__ADMIN_TOKEN", token)
        .env("SWITCHBOARD__EMAIL__SMTP_ADDR", "")
        .env("SWITCHBOARD__LOG__LEVEL", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
    wait_for_address(child, "Switchboard listening on ")
}

/// Reads `child`'s output until the line that starts with `prefix` and names its
/// address; the rest of its output is read and dropped.
pub fn wait_for_address(mut child: Child, prefix: &str) -> Process {
    let mut lines = BufReader::new(child.stdout.take().expect("its output is piped")).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("it prints where it listens")
            .expect("its output is text");
        if let Some(a) = line.strip_prefix(prefix) {
            break a.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Process { child, base }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The process's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The process's resident anonymous memory (its heap and stacks, not its binary's pages
/// or the files it maps), in KiB.
pub fn anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}
