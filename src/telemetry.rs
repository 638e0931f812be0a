//! Logs and metrics. Each observable occurrence is one named function here that logs
//! and counts with bounded labels (channel, tier, outcome) and never with customer data:
//! no addresses, numbers, names or bodies reach a log line or a metric.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Customers' waits, in seconds: service-level targets sit between 10 s and 10 minutes.
const WAIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0,
];

/// Starts logging to standard output. Safe to call more than once (later calls do nothing).
pub fn init_logging(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    // A subscriber set already (a second server in one test process) keeps logging.
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide metrics recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("switchboard_wait_seconds".into()),
                    WAIT_BUCKETS,
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("switchboard_abandoned_wait_seconds".into()),
                    WAIT_BUCKETS,
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            let upkeep = handle.clone();
            // Histograms keep raw samples until rendered; drain them even when nobody scrapes.
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .expect("spawn metrics upkeep thread");
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "switchboard_interactions_received_total",
        "Contacts accepted, by channel (retries of one contact count once)."
    );
    metrics::describe_counter!(
        "switchboard_interactions_queued_total",
        "Interactions queued, by channel and tier at entry."
    );
    metrics::describe_counter!(
        "switchboard_intake_duplicates_total",
        "Contacts delivered again under a known idempotency key, by channel."
    );
    metrics::describe_counter!(
        "switchboard_intake_refused_total",
        "Contacts refused, by channel and reason."
    );
    metrics::describe_gauge!("switchboard_queue_depth", "Interactions waiting, by tier.");
    metrics::describe_histogram!(
        "switchboard_intake_seconds",
        "Time from a contact's submission to its commit."
    );
    metrics::describe_histogram!(
        "switchboard_router_turn_seconds",
        "A turn of the router: its commands handled, contacts offered, and its commit."
    );
    metrics::describe_histogram!(
        "switchboard_router_commit_seconds",
        "The end of a router's turn: its commit (offers, acceptances, completions), with what its offers show read beside it, then its answers sent."
    );
    metrics::describe_gauge!(
        "switchboard_admission_lag_seconds",
        "Each part of the lag the admission follows: router (a command's wait for the router), untaken (a committed contact's wait to be taken up), intake (a contact's or a channel's write's wait for its commit), store (a channel's write's alone)."
    );
    metrics::describe_histogram!(
        "switchboard_intake_batch_size",
        "Contacts committed per transaction."
    );
    metrics::describe_counter!(
        "switchboard_http_requests_total",
        "HTTP requests answered, by route and status class."
    );
    metrics::describe_counter!(
        "switchboard_offers_total",
        "Offers by outcome (offered, accepted, declined, timed_out) and tier."
    );
    metrics::describe_histogram!(
        "switchboard_wait_seconds",
        "Customers' wait from arrival to an agent's acceptance, by tier."
    );
    metrics::describe_counter!(
        "switchboard_abandoned_total",
        "Interactions that ended while waiting, by tier."
    );
    metrics::describe_histogram!(
        "switchboard_abandoned_wait_seconds",
        "How long abandoned interactions had waited, by tier."
    );
    metrics::describe_histogram!(
        "switchboard_search_seconds",
        "Time to answer a search, by whether the index answered it (indexed) or recent messages were read (recent)."
    );
    metrics::describe_counter!(
        "switchboard_search_index_gave_way_total",
        "Searches whose index lookup took longer than its time (PostgreSQL) and read the newest messages instead."
    );
    metrics::describe_counter!(
        "switchboard_agent_sessions_total",
        "Agent desktop logins, disconnections, and connections cut off for not reading."
    );
    metrics::describe_counter!(
        "switchboard_customers_erased_total",
        "Customers erased (their data removed for good), by outcome."
    );
    metrics::describe_counter!(
        "switchboard_customer_exports_total",
        "Exports of everything held about a customer, by outcome."
    );
    metrics::describe_counter!(
        "switchboard_retention_runs_total",
        "Runs of the retention, by outcome (done, failed, not_leader)."
    );
    metrics::describe_counter!(
        "switchboard_retention_removed_total",
        "Old content removed by the retention, by channel and what (bodies, history_events, attachments…)."
    );
}

/// A customer was erased (`outcome`: `erased`, `refused_in_progress`, `already_erased`,
/// `failed`); counted, never who.
pub fn customer_erased(outcome: &'static str) {
    counter!("switchboard_customers_erased_total", "outcome" => outcome).increment(1);
}

/// A customer's data was exported (`outcome`: `sent`, `failed`).
pub fn customer_exported(outcome: &'static str) {
    counter!("switchboard_customer_exports_total", "outcome" => outcome).increment(1);
}

/// A retention run ended (`outcome`: `done`, `failed`, `not_leader`).
pub fn retention_run(outcome: &'static str) {
    counter!("switchboard_retention_runs_total", "outcome" => outcome).increment(1);
}

/// A retention run removed `n` pieces of `what` from `channel`'s contacts.
pub fn retention_removed(channel: &str, what: &'static str, n: u64) {
    if n > 0 {
        counter!("switchboard_retention_removed_total", "channel" => channel.to_string(), "what" => what)
            .increment(n);
    }
}

/// A search was answered: by the index, or by reading recent messages (a query of one-
/// and two-character words only).
pub fn searched(indexed: bool, took: Duration) {
    let path = if indexed { "indexed" } else { "recent" };
    histogram!("switchboard_search_seconds", "path" => path).record(took.as_secs_f64());
}

/// A search's index lookup took longer than its time and gave way to reading the newest
/// messages.
pub fn search_index_gave_way() {
    counter!("switchboard_search_index_gave_way_total").increment(1);
}

/// A new interaction was committed and queued.
pub fn interaction_queued(channel: &str, tier: &str, waited: Duration) {
    counter!("switchboard_interactions_received_total", "channel" => channel.to_string())
        .increment(1);
    counter!("switchboard_interactions_queued_total", "channel" => channel.to_string(), "tier" => tier.to_string())
        .increment(1);
    histogram!("switchboard_intake_seconds", "channel" => channel.to_string())
        .record(waited.as_secs_f64());
}

/// A contact was delivered again and answered with the interaction it already made.
pub fn interaction_duplicate(channel: &str) {
    counter!("switchboard_intake_duplicates_total", "channel" => channel.to_string()).increment(1);
}

/// A contact was refused; `reason` is one of a few fixed words.
pub fn interaction_refused(channel: &str, reason: &'static str) {
    counter!("switchboard_intake_refused_total", "channel" => channel.to_string(), "reason" => reason).increment(1);
}

/// A group of contacts was committed in one transaction.
pub fn batch_committed(size: usize) {
    histogram!("switchboard_intake_batch_size").record(size as f64);
}

/// A commit failed; the contacts in it are retried one by one.
pub fn batch_failed(size: usize, error: &sqlx::Error) {
    tracing::warn!(size, error = %error, "A group commit failed; retrying its contacts one by one");
}

/// The queue's depth per tier.
pub fn queue_depth(by_tier: &BTreeMap<String, usize>) {
    for (tier, n) in by_tier {
        gauge!("switchboard_queue_depth", "tier" => tier.to_string()).set(*n as f64);
    }
}

/// Commands waiting for the router after a turn (desktops' messages among them, each
/// desktop holding at most a few).
pub fn router_inbox(waiting: usize) {
    gauge!("switchboard_router_inbox").set(waiting as f64);
}

/// One turn of the router: how long it took in all, and of that its commit.
pub fn router_turn(took: Duration, commit: Duration) {
    histogram!("switchboard_router_turn_seconds").record(took.as_secs_f64());
    histogram!("switchboard_router_commit_seconds").record(commit.as_secs_f64());
}

/// The store refused routing changes of this many interactions (their state was not
/// what the router held); they were read again.
pub fn router_refused(interactions: usize) {
    counter!("switchboard_router_refused_total").increment(interactions as u64);
}

/// An agent's session changed (`login`, `disconnect`, `cut_off`).
pub fn agent_event(kind: &'static str) {
    counter!("switchboard_agent_sessions_total", "event" => kind).increment(1);
}

/// An offer was made or ended (`offered`, `accepted`, `declined`, `timed_out`).
pub fn offer_outcome(outcome: &'static str, tier: &str) {
    counter!("switchboard_offers_total", "outcome" => outcome, "tier" => tier.to_string())
        .increment(1);
}

/// An interaction was answered (accepted by an agent) after waiting `waited_ms`.
pub fn answered(tier: &str, waited_ms: i64) {
    histogram!("switchboard_wait_seconds", "tier" => tier.to_string())
        .record(waited_ms.max(0) as f64 / 1000.0);
}

/// An agent asked to take a waiting contact from its team's queue: `taken`, `refused`
/// (a colleague was first, it was on offer, no room…) or `unknown`.
pub fn taken_from_queue(outcome: &'static str) {
    counter!("switchboard_taken_from_queue_total", "outcome" => outcome).increment(1);
}

/// A waiting interaction ended on the customer's side after `waited_ms`.
pub fn abandoned(tier: &str, waited_ms: i64) {
    counter!("switchboard_abandoned_total", "tier" => tier.to_string()).increment(1);
    histogram!("switchboard_abandoned_wait_seconds", "tier" => tier.to_string())
        .record(waited_ms.max(0) as f64 / 1000.0);
}

/// An HTTP request was answered.
pub fn http_answered(route: &str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("switchboard_http_requests_total", "route" => route.to_string(), "status" => class)
        .increment(1);
}
