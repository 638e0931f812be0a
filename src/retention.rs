//! Retention: per channel, what customers and agents wrote is removed once it is older
//! than the channel's period (`[retention]`), keeping each contact's metadata for
//! reports. The node that leads runs it (a single node always, a cluster's leader only:
//! its writes are fenced), when it takes the lead and then every `interval_mins`; an admin
//! may also run it at once (`POST /api/retention/run`). What is removed, and how the
//! store keeps track, is in [`crate::store::retention`]. A run that removed anything, and
//! every admin's run, is audited with its counts, never with what it removed.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use switchboard_contract::ChannelKind;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::store::retention::{self as store, Removed};
use crate::store::{audit, redact, rfc3339, service_now, FenceError, Store, WriteTx};
use crate::telemetry;

const DAY_MS: i64 = 86_400_000;
/// History events read per page of a run's window.
const PAGE: i64 = 1000;
/// Contacts handled in one transaction (on SQLite, intake waits for each).
const BATCH: usize = 100;

/// One channel's part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRun {
    /// The channel.
    pub channel: &'static str,
    /// Its period in days.
    pub days: u32,
    /// Content from before this time was removed.
    pub before: String,
    /// What was removed.
    pub removed: Removed,
    /// Contacts in progress whose old content waits for their end.
    pub deferred: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// When it ran.
    pub at: String,
    /// The channels with a period.
    pub channels: Vec<ChannelRun>,
}

impl Run {
    /// Everything removed, in sum.
    pub fn total(&self) -> u64 {
        self.channels.iter().map(|c| c.removed.total()).sum()
    }
}

/// Runs until `stop`: at once, then every `interval_mins` (and when a test moves the
/// service clock). Nothing to do when every channel keeps its content forever.
pub async fn run(store: Store, settings: RetentionSettings, stop: CancellationToken) {
    if ChannelKind::ALL.iter().all(|c| settings.days(*c) == 0) {
        return;
    }
    let every = Duration::from_secs(u64::from(settings.interval_mins) * 60);
    loop {
        match run_once(&store, &settings, true, "retention").await {
            Ok(_) => {}
            // This node no longer leads: the next leader runs it.
            Err(FenceError::Fenced) => telemetry::retention_run("not_leader"),
            Err(FenceError::Store(e)) => {
                telemetry::retention_run("failed");
                tracing::warn!(error = %e, "The retention could not run; trying again at its next turn");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = crate::store::TEST_CLOCK_MOVED.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Runs the retention once, for every channel with a period: as the leader (`fenced`:
/// refused once another node leads) or for an admin (`actor`), on any node. Each step is
/// idempotent, so two runs at once only repeat each other's work.
pub async fn run_once(
    store: &Store,
    settings: &RetentionSettings,
    fenced: bool,
    actor: &str,
) -> Result<Run, FenceError> {
    let now = service_now();
    let mut run = Run {
        at: rfc3339(now),
        channels: Vec::new(),
    };
    for channel in ChannelKind::ALL {
        let days = settings.days(channel);
        if days == 0 {
            continue;
        }
        let cutoff = now - i64::from(days) * DAY_MS;
        let (removed, deferred) = run_channel(store, channel.as_str(), cutoff, fenced, now).await?;
        for (what, n) in removed.each() {
            telemetry::retention_removed(channel.as_str(), what, n);
        }
        run.channels.push(ChannelRun {
            channel: channel.as_str(),
            days,
            before: rfc3339(cutoff),
            removed,
            deferred,
        });
    }
    let total = run.total();
    // The leader's runs are audited when they removed something (an hourly run that found
    // nothing old changed nothing); an admin's always, as every admin's action is.
    if total > 0 || !fenced {
        let mut tx = begin(store, fenced).await?;
        let change = audit::Change {
            actor: actor.to_string(),
            action: "retention.run",
            target_kind: "retention",
            target_id: None,
            before: None,
            after: Some(json!(run)),
        };
        audit::record(&mut tx, &[change], crate::store::now_ms()).await?;
        tx.commit().await?;
        // No older copy of a changed page stays in SQLite's log; one held up by a reader
        // goes at the next run that removes anything, or at shutdown.
        store.truncate_log().await;
        tracing::info!(removed = total, "The retention removed old content");
    }
    telemetry::retention_run("done");
    Ok(run)
}

/// One channel's run: the contacts with content in the window since its cursor, those
/// deferred that have ended, and its mail kept aside. Answers what was removed and how
/// many contacts were deferred.
async fn run_channel(
    store: &Store,
    channel: &str,
    cutoff: i64,
    fenced: bool,
    now: i64,
) -> Result<(Removed, u64), FenceError> {
    let mut removed = Removed::default();
    let mut deferred = 0;
    // Reads and writes take their connections in turn (a pool of one must do).
    let from = store::done_before(&mut *store.pool().acquire().await?, channel).await?;
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let contacts = {
            let mut conn = store.pool().acquire().await?;
            let page = store::window(&mut conn, from, cutoff, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = (last.0, last.1);
            let mut ids: Vec<String> = page.iter().map(|(_, _, id)| id.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            store::of_channel(&mut conn, channel, &ids).await?
        };
        for batch in contacts.chunks(BATCH) {
            let mut tx = begin(store, fenced).await?;
            redact::allow(&mut tx, store.backend(), redact::Purpose::Retention).await?;
            for (id, in_progress) in batch {
                if *in_progress {
                    store::defer(&mut tx, id, channel, cutoff).await?;
                    deferred += 1;
                } else {
                    removed.add(&store::remove(&mut tx, id, cutoff).await?);
                }
            }
            redact::close(&mut tx, store.backend(), redact::Purpose::Retention).await?;
            tx.commit().await?;
        }
        // Everything before this page's last moment is done (events of that very moment
        // may continue on the next page).
        let mut tx = begin(store, fenced).await?;
        store::advance(&mut tx, channel, after.0, now, removed.total()).await?;
        tx.commit().await?;
    }
    loop {
        let ended =
            store::deferred_ended(&mut *store.pool().acquire().await?, channel, BATCH as i64)
                .await?;
        if ended.is_empty() {
            break;
        }
        let mut tx = begin(store, fenced).await?;
        redact::allow(&mut tx, store.backend(), redact::Purpose::Retention).await?;
        for id in &ended {
            removed.add(&store::remove(&mut tx, id, cutoff).await?);
        }
        redact::close(&mut tx, store.backend(), redact::Purpose::Retention).await?;
        tx.commit().await?;
    }
    let mut tx = begin(store, fenced).await?;
    removed.mail_kept_aside += store::remove_kept_aside(&mut tx, channel, cutoff).await?;
    store::advance(&mut tx, channel, cutoff, now, removed.total()).await?;
    tx.commit().await?;
    Ok((removed, deferred))
}

/// A write: fenced for the leader's runs, plain for an admin's.
async fn begin(store: &Store, fenced: bool) -> Result<WriteTx, FenceError> {
    if fenced {
        store.begin_fenced().await
    } else {
        Ok(store.begin_write().await?)
    }
}
