//! The report rollup, run by the node that leads: it reads the history after the stored
//! cursor in batches and adds each batch to the hour buckets of `report_hours`, moving
//! the cursor in the same fenced transaction, so every event is counted exactly once
//! whatever crashes or changes of leader come between passes. Agents' presence log is
//! read after its own cursor in the same pass and transaction, and so are the agents'
//! days in the centre's time zone (`store::reports::days`), rebuilt from the hours a
//! few days a pass when the zone they were kept in is not the configured one.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::simulation::Active;
use crate::store::reports::zone::Zone;
use crate::store::reports::{self, days, presence};
use crate::store::{Backend, FenceError, Store};

/// How long the rollup rests once it has caught up.
const REST: Duration = Duration::from_secs(2);
/// Events read in one pass.
const BATCH: i64 = 5_000;
/// How long the rollup rests between passes while catching up: each pass's horizon
/// briefly holds up the history's writers on PostgreSQL, so passes back to back would
/// slow intake and routing under load; 20,000 events a second is still several times
/// what the busiest centre writes.
const CATCH_UP: Duration = Duration::from_millis(250);

/// Runs until `stop`: a pass every [`CATCH_UP`] while there is history to count (or days
/// to rebuild), then every [`REST`]; the days are kept in `zone`.
pub async fn run(store: Store, tiers: Vec<String>, zone: Zone, stop: CancellationToken) {
    loop {
        let rest = match pass(&store, &tiers, &zone).await {
            Ok(true) => CATCH_UP,
            Ok(false) => REST,
            Err(e) => {
                metrics::counter!("switchboard_report_rollup_failures_total").increment(1);
                tracing::warn!(error = %e, "The report rollup could not run; trying again");
                REST
            }
        };
        tokio::select! {
            () = tokio::time::sleep(rest) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// The newest `seq`s of the history and of the presence log below which no row can still
/// appear. On SQLite writers take
/// turns, so every `seq` read is committed in order. On PostgreSQL a transaction may
/// commit a smaller `seq` after a larger one is visible: a brief share lock on the
/// history waits for every transaction that is writing to it to end, after which no
/// `seq` up to the newest can still come. Bounded by a lock timeout, so a long writer
/// delays the rollup (it answers none) rather than the writers queued behind the lock.
async fn horizon(store: &Store) -> Result<Option<(i64, i64)>, sqlx::Error> {
    match store.backend() {
        Backend::Sqlite => {
            let mut conn = store.pool().acquire().await?;
            let seq = reports::last_seq(&mut conn).await?;
            Ok(Some((seq, presence::last_seq(&mut conn).await?)))
        }
        Backend::Postgres => {
            let mut tx = store.pool().begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '200ms'")
                .execute(&mut *tx)
                .await?;
            match sqlx::query("LOCK TABLE history, agent_presence IN SHARE MODE")
                .execute(&mut *tx)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
            let seq = reports::last_seq(&mut tx).await?;
            let presence = presence::last_seq(&mut tx).await?;
            tx.commit().await?;
            Ok(Some((seq, presence)))
        }
    }
}

/// Counts one batch of the history and one of the presence log after their cursors,
/// into the hours and the agents' days in `zone`, and takes one step of a rebuild of
/// the days; answers whether there is more to do at once (a full batch read, or days
/// still to rebuild).
pub async fn pass(store: &Store, tiers: &[String], zone: &Zone) -> anyhow::Result<bool> {
    let Some((horizon, presence_horizon)) = horizon(store).await? else {
        return Ok(false);
    };
    {
        let mut conn = store.pool().acquire().await?;
        if reports::cursor(&mut conn).await? >= horizon
            && presence::cursor(&mut conn).await? >= presence_horizon
            && days::state(&mut conn).await?.ready_for(zone.name())
        {
            return Ok(false);
        }
    }
    let active = Active::latest(store, tiers).await?;
    // Read before the write transaction, so contacts and the router are not held up
    // while thousands of events are read: only this pass moves the cursors, and the
    // write transaction checks they are where the reading started (another leader's
    // pass may have moved them; then this one counts nothing and reads again).
    let (after, events, presence_after, changes, mut open) = {
        let mut conn = store.pool().acquire().await?;
        let after = reports::cursor(&mut conn).await?;
        let events = reports::read_after(&mut conn, after, horizon, BATCH).await?;
        let presence_after = presence::cursor(&mut conn).await?;
        let changes =
            presence::read_after(&mut conn, presence_after, presence_horizon, BATCH).await?;
        let open = presence::open(&mut conn).await?;
        (after, events, presence_after, changes, open)
    };
    // A short batch reached the horizon: the cursor goes there, past the kinds not counted.
    let to = if (events.len() as i64) < BATCH {
        horizon
    } else {
        events.last().map_or(horizon, |e| e.seq)
    };
    let buckets = reports::tally(&events, |t| active.rules.service_target_secs(t));
    let presence_to = if (changes.len() as i64) < BATCH {
        presence_horizon
    } else {
        changes.last().map_or(presence_horizon, |c| c.seq)
    };
    let hours = presence::tally(&mut open, &changes);
    let mut changed: Vec<String> = changes.iter().map(|c| c.agent.clone()).collect();
    changed.sort();
    changed.dedup();

    let mut tx = match store.begin_fenced().await {
        Ok(tx) => tx,
        Err(FenceError::Fenced) => return Ok(false),
        Err(FenceError::Store(e)) => return Err(e.into()),
    };
    if reports::cursor(&mut tx).await? != after
        || presence::cursor(&mut tx).await? != presence_after
    {
        return Ok(true);
    }
    let mut day_state = days::keep_for(&mut tx, zone).await?;
    reports::add(&mut tx, &buckets, to).await?;
    days::add_contacts(&mut tx, zone, &day_state, &buckets).await?;
    presence::add(&mut tx, &hours, &open, &changed, presence_to).await?;
    days::add_presence(&mut tx, zone, &day_state, &hours).await?;
    // After the deltas: an hour the rebuild has not reached went to the hours only, and
    // the step copies it from there with the rest of its day.
    let days_whole = days::rebuild_step(&mut tx, zone, &mut day_state).await?;
    tx.commit().await?;
    metrics::counter!("switchboard_report_rollup_events_total").increment(events.len() as u64);
    metrics::counter!("switchboard_report_rollup_presence_changes_total")
        .increment(changes.len() as u64);
    Ok(!days_whole || events.len() as i64 >= BATCH || changes.len() as i64 >= BATCH)
}
