//! `switchboard-load`: drives a Switchboard the way its users do, every channel at once —
//! phone systems posting signed call events, mail servers delivering over SMTP, chat
//! visitors on websockets — while simulated agents on the agent websocket accept each
//! offer, hold it for a handling time and complete it. It counts, itself, every contact
//! sent, acknowledged, failed, offered and completed, and reports per channel: contacts
//! accepted per second, failures, the acknowledgement's latency, the time from a contact
//! being sent to its offer reaching an agent (p50/p95/p99/max, with the never offered
//! counted), and whether the server kept up; and the server's CPU and memory when it
//! runs the server.
//!
//! With `--nodes N` (on PostgreSQL) it starts a cluster of N nodes and deals contacts and
//! agents to them in turn, as a load balancer would; `--url` (with `--smtp`) repeated
//! drives nodes running elsewhere the same way.
//!
//! With `--kill-every N` it is the crash test: the server it started is killed with
//! SIGKILL every N seconds and restarted on the same data, under the same load; at the
//! end every contact any channel acknowledged must be there exactly once, never held by
//! two agents. With `--kill-leader-every N` on several nodes, the node leading the
//! routing is the one killed (then started again, as a follower), and each kill's
//! failover is timed.
//!
//!     cargo run --release -p switchboard-load -- --rate 30 --secs 20 --agents 30
//!     cargo run --release -p switchboard-load -- --rate 30 --secs 40 --kill-every 8
//!     cargo run --release -p switchboard-load -- --nodes 3 --database-url postgres://…/empty --kill-leader-every 6
//!     cargo run --release -p switchboard-load -- --url http://10.0.0.5:8080 --smtp 10.0.0.5:2525 --url http://10.0.0.6:8080 --smtp 10.0.0.6:2525 --token … --phone-secret …
//!
//! Exit status: 0 when the run kept up (and the crash test found everything), 1 when
//! the crash test found a contact lost or duplicated, 2 when the run did not keep up (a
//! contact failed in a run without faults, or an accepted one was never offered or, in a
//! run without faults, never completed before the drain time ran out).
//!
//! # Layout
//! - `server`: the server under load — started on a fresh database, killed and started
//!   again, its CPU and memory read from `/proc`.
//! - `channels`: the channels' drivers — a phone system, a mail server, a chat visitor.
//! - `agents`: desktops that accept, hold and complete every offer.
//! - `tally`: what was sent, accepted, failed, offered and completed, contact by contact,
//!   and the percentiles over all of them.
//! - `run`: one run — contacts at the rate and mix, then the wait for the work to be
//!   done, the server's CPU read around it.
//! - `crash`: the faults under load and the check that nothing acknowledged is lost.
//! - `report`: the tables and the verdict.
//! - `baseline`, `bare`: the same load against the bare stack, and the ratios.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Parser;

mod agents;
mod bare;
mod baseline;
mod channels;
mod crash;
mod nodes;
mod overload;
mod report;
mod run;
mod server;
mod tally;

use server::Server;
use tally::{Shared, Wait};

#[derive(Clone, Debug, Parser)]
#[command(
    about = "Drives a Switchboard with phone, email and chat contacts and agents that work them"
)]
pub struct Args {
    /// A running node to drive (repeat it for every node of a cluster); without it, the
    /// release binary is started on a fresh data directory.
    #[arg(long)]
    pub url: Vec<String>,
    /// Nodes to start on one database (`--database-url`, PostgreSQL) when no --url is
    /// given.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// The server binary to start (without --url).
    #[arg(long, default_value = "target/release/switchboard")]
    pub binary: String,
    /// The admin token (with --url).
    #[arg(long)]
    pub token: Option<String>,
    /// The phone channel's secret (with --url).
    #[arg(long)]
    pub phone_secret: Option<String>,
    /// The SMTP listener of each --url, in the same order.
    #[arg(long)]
    pub smtp: Vec<String>,
    /// Contacts per second, all channels together.
    #[arg(long, default_value_t = 30.0)]
    pub rate: f64,
    /// Shares of phone, email and chat, as phone=N,email=N,chat=N.
    #[arg(long, default_value = "phone=40,email=30,chat=30")]
    pub mix: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Agents working the contacts.
    #[arg(long, default_value_t = 30)]
    pub agents: usize,
    /// Seconds an agent holds each contact before completing it.
    #[arg(long, default_value_t = 1.0)]
    pub handle_secs: f64,
    /// Seconds of wrap-up after each contact, in the rules of a server it starts.
    #[arg(long, default_value_t = 0)]
    pub wrap_up_secs: u64,
    /// The crash test: SIGKILL the server it started every this many seconds, restart it
    /// on the same data, and check afterwards that every acknowledged contact is there
    /// exactly once.
    #[arg(long)]
    pub kill_every: Option<u64>,
    /// The crash test on several nodes (`--nodes`): SIGKILL the node leading the routing
    /// every this many seconds, start it again (a follower), and time each failover.
    #[arg(long)]
    pub kill_leader_every: Option<u64>,
    /// The database of a server it starts (an empty PostgreSQL database, say); by default
    /// a fresh SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// A shell command that restarts the database (`pg_ctlcluster 15 main restart`), run
    /// every --restart-every seconds under the load; then the same check as the crash
    /// test follows.
    #[arg(long, requires = "restart_every")]
    pub restart_database: Option<String>,
    /// Seconds between database restarts.
    #[arg(long, requires = "restart_database")]
    pub restart_every: Option<u64>,
    /// Seconds to wait after the last contact is sent for the work to be done (every
    /// contact answered, and every accepted one offered and completed); what is not done
    /// by then is reported as not done.
    #[arg(long, default_value_t = 15)]
    pub drain_secs: u64,
    /// Then run the same load against bare endpoints of the same stack (axum, sqlx on
    /// SQLite with the same durability and group commit, tokio): a webhook, an SMTP
    /// listener and a chat websocket that only insert a row per contact (and per chat
    /// message); and report every figure as a ratio to theirs.
    #[arg(long)]
    pub baseline: bool,
    /// After a run on several nodes, the same load against one node on a fresh database
    /// of the same PostgreSQL server, and the cluster's figures as ratios to its.
    #[arg(long, requires = "nodes")]
    pub against_one_node: bool,
    /// Keep the log of each server started (`node-N.log`, at level info) in this
    /// directory; by default their logs are dropped.
    #[arg(long)]
    pub logs: Option<String>,
    /// Known high-tier customers (created before the run, each with a phone number) some
    /// calls come from: `--high-share` of them.
    #[arg(long, default_value_t = 0)]
    pub highs: u64,
    /// The share of calls from the known high-tier customers (with --highs).
    #[arg(long, default_value_t = 0.1)]
    pub high_share: f64,
    /// Past capacity: one run per rate (contacts/s, comma-separated), each on a fresh
    /// server, then the curve — offers per second and contact → offer against the rate
    /// offered, with what each channel refused and what failed.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// With --rates: fail (exit status 3) when a rate offered at twice or more the most
    /// offers per second measured (the capacity) gave fewer than this share of it (0.9:
    /// goodput stays at 90% of capacity however far past it the load goes), or when no
    /// rate reached twice the capacity.
    #[arg(long, requires = "rates")]
    pub goodput_floor: Option<f64>,
    /// Serve the bare endpoints from this data directory (what --baseline starts).
    #[arg(long, hide = true)]
    pub serve_bare: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.serve_bare {
        bare::serve(dir).await;
        return ExitCode::SUCCESS;
    }
    let total: f64 = run::shares(&args.mix).iter().sum();
    assert!(
        total > 0.0 && args.rate > 0.0,
        "--mix and --rate must ask for some contacts"
    );
    let kills = args.kill_every.is_some() || args.kill_leader_every.is_some();
    assert!(
        !kills || args.url.is_empty(),
        "the crash test kills the servers it starts: leave out --url"
    );
    assert!(
        args.nodes == 1
            || args
                .database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("postgres")),
        "several nodes share one PostgreSQL database: give --database-url postgres://…"
    );
    assert!(
        args.kill_leader_every.is_none() || args.nodes > 1,
        "--kill-leader-every needs a leader to kill and followers to take over: --nodes 3"
    );
    let faulty = kills || args.restart_database.is_some();
    if args.baseline && (!args.url.is_empty() || faulty || args.nodes > 1) {
        eprintln!("--baseline compares with one server this run starts and keeps up: leave out --url, --nodes, --kill-every, --kill-leader-every and --restart-database");
        return ExitCode::FAILURE;
    }
    if !args.rates.is_empty() {
        return overload::curve(&args).await;
    }
    let server = Arc::new(if args.url.is_empty() {
        Server::start(&args)
    } else {
        Server::remote(&args)
    });
    let client = reqwest::Client::new();
    run::high_customers(&server, &client, args.highs).await;
    let tally: Shared = Arc::default();
    // A crash test waits for every accepted contact to be offered again after the last
    // restart; a completion committed just before a kill may never be confirmed.
    let wait = match (args.agents, faulty) {
        (0, _) => Wait::Answers,
        (_, true) => Wait::Offers,
        (_, false) => Wait::Completions,
    };
    let mut faults = crash::Faults::default();
    let run = run::generate(
        &server,
        &client,
        &tally,
        &args,
        args.agents,
        wait,
        |started| faults.start(&args, &server, started),
    )
    .await;
    faults.stop();
    println!(
        "# switchboard-load: {:.0} contacts/s for {} s ({}), {} agents holding each {:.1} s, {} s wrap-up\n",
        args.rate, args.secs, args.mix, args.agents, args.handle_secs, args.wrap_up_secs
    );
    let totals = report::channels(&tally, run.elapsed, args.agents > 0);
    if server.nodes.len() > 1 && args.agents > 0 {
        report::relay(&tally);
    }
    let mut kept_up = report::verdict(
        &totals,
        &run,
        args.agents > 0,
        faulty,
        wait == Wait::Completions,
    );
    // CPU is read from the same processes: not across the crash test's restarts.
    if let (Some(u), false) = (run.server, kills) {
        println!(
            "\nserver ({} node{}): {:.0}% of one core from the first contact sent to the work done, {:.1} MiB resident",
            server.nodes.len(),
            if server.nodes.len() > 1 { "s together" } else { "" },
            u.cpu_secs / (run.elapsed + run.drained) * 100.0,
            u.rss_kib as f64 / 1024.0
        );
    }
    if faulty {
        println!(
            "\ndatabase restarts: {}",
            faults.restarts.load(Ordering::SeqCst)
        );
        let leader_kills = faults.leader_kills.lock().unwrap().clone();
        let killed = faults.kills.load(Ordering::SeqCst) + leader_kills.len() as u64;
        let failed_over = crash::failovers(&leader_kills, &tally);
        if !crash::verify(&server, &client, &tally, killed).await || !failed_over {
            return ExitCode::FAILURE;
        }
    }
    // The servers of this run stop before another is measured.
    drop(server);
    if args.against_one_node {
        if args.nodes < 2 || faulty {
            eprintln!("--against-one-node compares a cluster that keeps up with one node: give --nodes 3, without faults");
            return ExitCode::FAILURE;
        }
        kept_up &= nodes::compare(&args, &client, &tally, &run, &totals).await;
    }
    if args.baseline {
        kept_up &= baseline::compare(&args, &client, &tally, &run, &totals).await;
    }
    if kept_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
