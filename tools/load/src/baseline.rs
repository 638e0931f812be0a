//! The same load against the bare stack (`bare.rs`), in the same run, and every figure
//! of the Switchboard run as a ratio to the bare stack's: the acknowledgement's latency
//! per channel, CPU per contact accepted, memory. Both runs are measured the same way:
//! the same generator, rate and mix, CPU read from the first contact sent until the
//! run's work is done.

use std::sync::Arc;

use crate::report::{self, Totals};
use crate::run::{generate, Run};
use crate::server::Server;
use crate::tally::{At, Shared, Wait, CHANNELS};
use crate::Args;

/// Runs the bare stack under the same load and prints it beside Switchboard's run
/// (`ours`, `our_run`, `our_totals`). Answers whether the bare stack kept up.
pub async fn compare(
    args: &Args,
    client: &reqwest::Client,
    ours: &Shared,
    our_run: &Run,
    our_totals: &Totals,
) -> bool {
    let server = Arc::new(Server::start_bare());
    let bare: Shared = Arc::default();
    let run = generate(&server, client, &bare, args, 0, Wait::Answers, |_| {}).await;
    println!("\n## The bare stack, same load, same run\n");
    let totals = report::channels(&bare, run.elapsed, false);
    let kept_up = report::verdict(&totals, &run, false, false, false);
    println!(
        "\n## Switchboard as a ratio to the bare stack (1.0 = as cheap as the bare minimum)\n"
    );
    println!("| channel | ack p50 | ack p99 |");
    println!("|---|---:|---:|");
    for c in CHANNELS {
        let (a, b) = (
            ours.lock().unwrap().figures(c),
            bare.lock().unwrap().figures(c),
        );
        let ratio = |p| match (a.ack.at(p), b.ack.at(p)) {
            (At::Micros(a), At::Micros(b)) if b > 0 => format!("{:.2}×", a as f64 / b as f64),
            (At::Missing, _) => "Switchboard's falls on a failure".into(),
            (_, At::Missing) => "the bare stack's falls on a failure".into(),
            _ => "-".into(),
        };
        println!("| {c} | {} | {} |", ratio(0.50), ratio(0.99));
    }
    if let (Some(a), Some(b)) = (our_run.server, run.server) {
        let per = |cpu: f64, n: u64| cpu * 1000.0 / n.max(1) as f64;
        let (x, y) = (
            per(a.cpu_secs, our_totals.accepted),
            per(b.cpu_secs, totals.accepted),
        );
        println!(
            "\nserver CPU per 1,000 contacts accepted, from the first sent to the work done: Switchboard {x:.2} s (routing and agents included), bare {y:.2} s: {:.1}×",
            x / y.max(1e-9)
        );
        println!(
            "server memory when the work was done: Switchboard {:.1} MiB, bare {:.1} MiB",
            a.rss_kib as f64 / 1024.0,
            b.rss_kib as f64 / 1024.0
        );
    }
    kept_up
}
