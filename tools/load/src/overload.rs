//! Past capacity (`--rates`): the same load at each rate on a fresh server, and the
//! curve of what the server did with it — the useful work (offers reaching desktops per
//! second while contacts were being sent), how long an accepted contact waited for its
//! offer, what each channel refused in its own way (a busy answer to a call, SMTP 451, a
//! chat told to start later) and what failed (no answer in time, a broken connection, an
//! error). Known high-tier customers' calls (`--highs`) are counted apart: admitted
//! ahead of the others is what the curve checks.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::run;
use crate::server::Server;
use crate::tally::{Shared, Wait, CHANNELS};
use crate::Args;

/// One rate's row.
struct Row {
    rate: f64,
    sent: u64,
    accepted_per_sec: f64,
    refused: [u64; 3],
    failed: [u64; 3],
    offers_per_sec: f64,
    /// Of them, offers of contacts their channel acknowledged.
    acknowledged_offers_per_sec: f64,
    never_offered: u64,
    p50: String,
    p99: String,
    high: (u64, u64, u64),
    others_accepted: f64,
    cpu: Option<f64>,
    generator_cpu: Option<f64>,
}

/// Runs every rate of `args.rates` and prints the curve; fails when a contact accepted
/// was never offered.
pub async fn curve(args: &Args) -> ExitCode {
    let client = reqwest::Client::new();
    let mut rows = Vec::new();
    for &rate in &args.rates {
        // Each rate on a fresh database: a PostgreSQL one beside the one named.
        let database_url = match &args.database_url {
            Some(url) => Some(
                crate::nodes::fresh_beside(url, &format!("rate_{}", rate.round() as u64)).await,
            ),
            None => None,
        };
        let args = Args {
            rate,
            rates: Vec::new(),
            database_url,
            ..args.clone()
        };
        let server = Arc::new(Server::start(&args));
        run::high_customers(&server, &client, args.highs).await;
        let tally: Shared = Arc::default();
        let r = run::generate(
            &server,
            &client,
            &tally,
            &args,
            args.agents,
            Wait::Completions,
            |_| {},
        )
        .await;
        let t = tally.lock().unwrap();
        let mut row = Row {
            rate,
            sent: 0,
            accepted_per_sec: 0.0,
            refused: [0; 3],
            failed: [0; 3],
            offers_per_sec: t.offered_by(r.started + Duration::from_secs_f64(r.elapsed)) as f64
                / r.elapsed,
            acknowledged_offers_per_sec: t
                .offered_acknowledged_by(r.started + Duration::from_secs_f64(r.elapsed))
                as f64
                / r.elapsed,
            never_offered: 0,
            p50: t.to_offer_all().show(0.50, "never offered"),
            p99: t.to_offer_all().show(0.99, "never offered"),
            high: t.high,
            others_accepted: 0.0,
            cpu: r.server.map(|u| u.cpu_secs / (r.elapsed + r.drained)),
            generator_cpu: r.generator_cpu_secs.map(|c| c / (r.elapsed + r.drained)),
        };
        let mut accepted = 0;
        for (i, c) in CHANNELS.iter().enumerate() {
            let f = t.figures(c);
            row.sent += f.sent;
            accepted += f.accepted;
            row.refused[i] = t.refused_count(c);
            row.failed[i] = f.failed;
            row.never_offered += f.never_offered();
        }
        row.accepted_per_sec = accepted as f64 / r.elapsed;
        let others_sent = row.sent - t.high.0;
        row.others_accepted = (accepted - t.high.1) as f64 / others_sent.max(1) as f64;
        eprintln!(
            "rate {rate}: {accepted} of {} accepted, {:.1} offers/s",
            row.sent, row.offers_per_sec
        );
        rows.push(row);
        drop(t);
        // The server of this rate stops before the next is measured.
        drop(server);
    }
    println!(
        "# switchboard-load past capacity: {} s per rate ({}), {} agents holding each {:.1} s; {} known high-tier callers, {:.0}% of calls\n",
        args.secs,
        args.mix,
        args.agents,
        args.handle_secs,
        args.highs,
        args.high_share * 100.0
    );
    println!("| offered rate | sent | accepted/s | **offers/s** | of them acknowledged | contact → offer p50 | p99 | refused phone / email / chat | failed phone / email / chat | never offered | high-tier calls accepted | others accepted | server CPU | generator CPU |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|");
    let best = rows.iter().map(|r| r.offers_per_sec).fold(0.0, f64::max);
    let mut lost = 0;
    for r in &rows {
        lost += r.never_offered;
        println!(
            "| {:.0}/s | {} | {:.1} | **{:.1}** ({:.0}% of the best) | {:.1} | {} | {} | {} / {} / {} | {} / {} / {} | {} | {} | {:.0}% | {} | {} |",
            r.rate,
            r.sent,
            r.accepted_per_sec,
            r.offers_per_sec,
            r.offers_per_sec / best.max(f64::MIN_POSITIVE) * 100.0,
            r.acknowledged_offers_per_sec,
            r.p50,
            r.p99,
            r.refused[0],
            r.refused[1],
            r.refused[2],
            r.failed[0],
            r.failed[1],
            r.failed[2],
            r.never_offered,
            if r.high.0 == 0 {
                "-".to_string()
            } else {
                format!("{} of {} ({:.0}%)", r.high.1, r.high.0, r.high.1 as f64 / r.high.0 as f64 * 100.0)
            },
            r.others_accepted * 100.0,
            r.cpu.map_or("-".into(), |c| format!("{:.0}% of a core", c * 100.0)),
            r.generator_cpu.map_or("-".into(), |c| format!("{:.0}% of a core", c * 100.0)),
        );
    }
    // Past capacity: every rate offered at twice or more what the server routed at best
    // keeps what share of that best.
    let past: Vec<&Row> = rows.iter().filter(|r| r.rate >= 2.0 * best).collect();
    let kept = past
        .iter()
        .map(|r| r.offers_per_sec / best.max(f64::MIN_POSITIVE))
        .fold(1.0, f64::min);
    if past.is_empty() {
        println!(
            "\nNo rate reached twice the best goodput ({best:.1} offers/s): nothing was measured past capacity."
        );
    } else {
        println!(
            "\nGoodput at twice the capacity and past it: at least {:.0}% of the best ({best:.1} offers/s).",
            kept * 100.0
        );
    }
    if lost > 0 {
        println!("Not kept: {lost} accepted contacts were never offered.");
        ExitCode::from(2)
    } else if args
        .goodput_floor
        .is_some_and(|floor| past.is_empty() || kept < floor)
    {
        println!(
            "Collapsed: past capacity the goodput fell under {:.0}% of the best.",
            args.goodput_floor.unwrap_or(0.0) * 100.0
        );
        ExitCode::from(3)
    } else {
        println!("Every accepted contact was offered.");
        ExitCode::SUCCESS
    }
}
