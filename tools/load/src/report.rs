//! The report: per channel, contacts sent, accepted per second, failed, the
//! acknowledgement's latency, offers and the time from a contact sent to its first offer
//! on a desktop, as Markdown tables; then the verdict — whether the server kept up.
//!
//! Every percentile is over every contact sent (the offer's, over every contact
//! accepted): one that failed, or was never offered, counts as slower than any that
//! arrived, so a p99 that falls on one says `failed` or `never offered`.

use crate::run::Run;
use crate::tally::{At, Shared, CHANNELS};

/// What the run did in all, for the verdict.
#[derive(Debug, Default)]
pub struct Totals {
    /// Contacts sent.
    pub sent: u64,
    /// Acknowledged.
    pub accepted: u64,
    /// Refused, unanswered or broken off.
    pub failed: u64,
    /// Accepted and never offered.
    pub never_offered: u64,
    /// Accepted and not confirmed completed.
    pub not_completed: u64,
}

/// Prints what each channel got; with `offers`, what the agents were offered too.
pub fn channels(tally: &Shared, elapsed: f64, offers: bool) -> Totals {
    let t = tally.lock().unwrap();
    if offers {
        println!("| channel | sent | accepted/s | failed | ack p50 | ack p99 | offered/s | never offered | contact → offer p50 | p95 | p99 | max |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!("| channel | sent | accepted/s | failed | ack p50 | ack p99 |");
        println!("|---|---:|---:|---:|---:|---:|");
    }
    let mut totals = Totals::default();
    for c in CHANNELS {
        let f = t.figures(c);
        totals.sent += f.sent;
        totals.accepted += f.accepted;
        totals.failed += f.failed;
        totals.never_offered += f.never_offered();
        totals.not_completed += f.accepted - f.completed;
        let first = format!(
            "| {c} | {} | {:.1} | {} | {} | {} |",
            f.sent,
            f.accepted as f64 / elapsed,
            f.failed,
            f.ack.show(0.50, "failed"),
            f.ack.show(0.99, "failed"),
        );
        if offers {
            println!(
                "{first} {:.1} | {} | {} | {} | {} | {} |",
                f.offered as f64 / elapsed,
                f.never_offered(),
                f.to_offer.show(0.50, "never offered"),
                f.to_offer.show(0.95, "never offered"),
                f.to_offer.show(0.99, "never offered"),
                f.to_offer.show(1.0, "never offered"),
            );
        } else {
            println!("{first}");
        }
    }
    totals
}

/// On several nodes: contact → offer for desktops on the leader and on the followers
/// (whose router frames are relayed by their node), and the relay's added latency.
pub fn relay(tally: &Shared) {
    let t = tally.lock().unwrap();
    let (direct, relayed) = (t.to_offer_by_relay(false), t.to_offer_by_relay(true));
    println!("\n| desktop on | offers | contact → offer p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (name, l) in [("the leader", &direct), ("a follower", &relayed)] {
        println!(
            "| {name} | {} | {} | {} |",
            l.count(),
            l.show(0.50, "-"),
            l.show(0.99, "-")
        );
    }
    if let (At::Micros(a), At::Micros(b)) = (direct.at(0.5), relayed.at(0.5)) {
        println!(
            "\nThe relay adds {:.1} ms at the median to an offer reaching a desktop on a follower.",
            (b as f64 - a as f64) / 1000.0
        );
    }
}

/// Prints whether the server kept up with the load and answers it: every contact sent
/// was accepted (unless `faults` refused some on purpose) and, with `agents`, every
/// accepted one offered (and, when the run waited for them, completed) before the
/// drain time ran out.
pub fn verdict(totals: &Totals, run: &Run, agents: bool, faults: bool, completions: bool) -> bool {
    let mut short = Vec::new();
    if totals.failed > 0 {
        let what = format!("{} of {} contacts sent failed", totals.failed, totals.sent);
        if faults {
            println!("\n{what}: refused or unanswered while the server or its database was down.");
        } else {
            short.push(what);
        }
    }
    if agents && totals.never_offered > 0 {
        short.push(format!(
            "{} of {} accepted were never offered",
            totals.never_offered, totals.accepted
        ));
    }
    if agents && completions && totals.not_completed > 0 {
        short.push(format!(
            "{} of {} accepted were not completed",
            totals.not_completed, totals.accepted
        ));
    }
    let wait = if run.done {
        format!(
            "the work was done {:.1} s after the last contact was sent",
            run.drained
        )
    } else {
        format!(
            "the drain ended {:.1} s after the last contact was sent",
            run.drained
        )
    };
    if short.is_empty() {
        let then = match (agents, completions) {
            (false, _) => "",
            (true, false) => " and offered",
            (true, true) => ", offered and completed",
        };
        if totals.failed == 0 {
            println!(
                "\nKept up: all {} contacts sent were accepted{then}; {wait}.",
                totals.sent
            );
        } else if agents {
            let then = then
                .trim_start_matches([' ', ','])
                .trim_start_matches("and ");
            println!(
                "\nKept up with the rest: all {} contacts accepted were {then}; {wait}.",
                totals.accepted
            );
        } else {
            println!("\nKept up with the rest: {wait}.");
        }
        true
    } else {
        println!("\nDid not keep up: {}; {wait}.", short.join("; "));
        false
    }
}
