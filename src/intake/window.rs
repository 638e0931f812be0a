//! The commit window of a group writer (new contacts, channel events, chats' first
//! messages).
//!
//! A group writer commits whatever has gathered while its previous commit was on disk.
//! Under load that is not much: the writers of contacts, events and the router take the
//! store's one writer in turn, each commit is short, and each writer's group is then one
//! or two items, each paying a commit (and on SQLite, a rewrite of the same hot pages) of
//! its own. So once a writer is busy — its next item came within three windows of its
//! last commit, or within thirty of a commit that held several — it holds its group open
//! for a short window before committing, the way PostgreSQL's `commit_delay` does: the
//! few milliseconds added to each answer buy several items per commit. A writer that is
//! not busy (an item after a quiet moment) commits at once.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::store::Backend;

/// An item arriving within this many windows of the last commit's end finds the writer
/// busy; within ten times as many, if that commit held several items.
const BUSY_WINDOWS: u32 = 3;

/// The window `storage.commit_window_ms` gives writers to `backend`. On PostgreSQL, whose
/// writers commit side by side rather than taking one writer in turn, it measured no gain
/// (BENCHMARKS.md) and none is held.
pub fn configured(settings: &crate::config::StorageSettings, backend: Backend) -> Duration {
    match backend {
        Backend::Sqlite => Duration::from_millis(settings.commit_window_ms),
        Backend::Postgres => Duration::ZERO,
    }
}

/// A group writer's window: how long a busy group stays open.
pub struct Window {
    window: Duration,
    /// When the last group's commit ended, and how many items it held.
    last_commit: Option<(Instant, usize)>,
}

impl Window {
    /// A window of `window` (zero: never held open).
    pub fn new(window: Duration) -> Self {
        Window {
            window,
            last_commit: None,
        }
    }

    /// Called with the group started (its first items already in `group`): when the
    /// writer is busy, waits out the window, then adds to the group what has arrived
    /// meanwhile, up to `max` items in all.
    pub async fn fill<T>(&self, rx: &mut mpsc::Receiver<T>, group: &mut Vec<T>, max: usize) {
        if group.len() >= max || !self.hold().await {
            return;
        }
        while group.len() < max {
            match rx.try_recv() {
                Ok(item) => group.push(item),
                Err(_) => break,
            }
        }
    }

    /// When the writer is busy, waits out the window (for a writer that gathers its group
    /// its own way) and answers true; otherwise answers false at once.
    pub async fn hold(&self) -> bool {
        if !self.busy() {
            return false;
        }
        tokio::time::sleep(self.window).await;
        true
    }

    /// Notes that a group of `items` has ended its commit (committed or not).
    pub fn committed(&mut self, items: usize) {
        self.last_commit = Some((Instant::now(), items));
    }

    fn busy(&self) -> bool {
        !self.window.is_zero()
            && self.last_commit.is_some_and(|(t, n)| {
                let since = t.elapsed();
                since < self.window * BUSY_WINDOWS
                    || (n > 1 && since < self.window * BUSY_WINDOWS * 10)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `item` (and, once the group started, `company` from another task), gathers
    /// the group as a writer does: the group, and how long its window held it.
    async fn group(
        w: &Window,
        tx: &mpsc::Sender<i32>,
        rx: &mut mpsc::Receiver<i32>,
        item: i32,
        company: Option<i32>,
    ) -> (Vec<i32>, Duration) {
        tx.send(item).await.unwrap();
        let mut group = Vec::new();
        rx.recv_many(&mut group, 8).await;
        if let Some(c) = company {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(c).await.unwrap() });
        }
        let started = tokio::time::Instant::now();
        w.fill(rx, &mut group, 8).await;
        (group, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_item_is_committed_at_once_and_a_busy_group_waits_for_company() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut w = Window::new(Duration::from_millis(2));
        // The first item of a quiet writer: no wait.
        let (first, held) = group(&w, &tx, &mut rx, 1, None).await;
        assert_eq!(held, Duration::ZERO);
        w.committed(first.len());
        // Groups of one 10 ms apart: not busy.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (_, held) = group(&w, &tx, &mut rx, 10, None).await;
        assert_eq!(held, Duration::ZERO);
        w.committed(2);
        // 10 ms after a commit of several, the writer is busy: the group waits 2 ms and
        // takes what came in meanwhile.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (busy, held) = group(&w, &tx, &mut rx, 2, Some(3)).await;
        assert_eq!(held, Duration::from_millis(2));
        assert_eq!(busy, vec![2, 3]);
        // Long after the last commit, quiet again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, held) = group(&w, &tx, &mut rx, 4, None).await;
        assert_eq!(held, Duration::ZERO);
        // A zero window never waits.
        let mut z = Window::new(Duration::ZERO);
        z.committed(2);
        let (_, held) = group(&z, &tx, &mut rx, 5, None).await;
        assert_eq!(held, Duration::ZERO);
    }
}
