//! The yardstick of the target order, per channel: the wait plain first-come-first-served
//! (FIFO) would be giving now, and the longest it would have given over a window.
//!
//! FIFO answers contacts in arrival order, so while `q` contacts wait, FIFO's queue is the
//! `q` latest arrivals and the next it would answer is the `q`-th latest: FIFO's wait now
//! is that arrival's age. Any order that keeps agents as busy has the same number waiting
//! (the same work arrives and the same agents do it), so this needs only the arrival
//! times, not a second queue. The wait only grows between answers and drops at each, so
//! its peaks are seen just before the router's offers: the router (and the replay) call
//! [`Yardstick::observe`] then.

use std::collections::VecDeque;

/// One channel's arrivals and FIFO's longest wait.
#[derive(Debug, Clone, Default)]
pub struct Yardstick {
    /// Arrivals not older than the oldest still waiting, in time order: (ms, id). The
    /// id tells an interaction returning to the queue (after a declined offer) from a
    /// new arrival.
    arrivals: VecDeque<(i64, String)>,
    /// FIFO's waits seen, as a window maximum: (when, wait ms), each newer one smaller.
    peaks: VecDeque<(i64, i64)>,
}

impl Yardstick {
    /// Notes an arrival (an interaction already noted is not counted again).
    pub fn arrived(&mut self, at_ms: i64, id: &str) {
        // Nearly always the latest: found from the back.
        let i = self
            .arrivals
            .partition_point(|(t, x)| (*t, x.as_str()) < (at_ms, id));
        if self
            .arrivals
            .get(i)
            .is_some_and(|(t, x)| *t == at_ms && x == id)
        {
            return;
        }
        self.arrivals.insert(i, (at_ms, id.to_string()));
    }

    /// FIFO's wait now (ms) while `waiting` contacts wait.
    pub fn fifo_now(&self, waiting: usize, now_ms: i64) -> i64 {
        if waiting == 0 {
            return 0;
        }
        let i = self.arrivals.len().saturating_sub(waiting);
        self.arrivals.get(i).map_or(0, |(t, _)| (now_ms - t).max(0))
    }

    /// When the contact FIFO would answer next arrived (ms), while `waiting` wait.
    pub fn fifo_next(&self, waiting: usize) -> Option<i64> {
        let i = self.arrivals.len().checked_sub(waiting)?;
        self.arrivals.get(i).map(|(t, _)| *t)
    }

    /// Records FIFO's wait now as a peak, keeps the window's, and forgets arrivals older
    /// than `oldest_waiting_ms` (FIFO's next is never older than the oldest waiting).
    pub fn observe(
        &mut self,
        waiting: usize,
        oldest_waiting_ms: Option<i64>,
        now_ms: i64,
        window_ms: i64,
    ) {
        let wait = self.fifo_now(waiting, now_ms);
        while self.peaks.back().is_some_and(|(_, w)| *w <= wait) {
            self.peaks.pop_back();
        }
        self.peaks.push_back((now_ms, wait));
        while self
            .peaks
            .front()
            .is_some_and(|(at, _)| *at < now_ms.saturating_sub(window_ms))
        {
            self.peaks.pop_front();
        }
        let keep_from = oldest_waiting_ms.unwrap_or(i64::MAX);
        while self.arrivals.front().is_some_and(|(t, _)| *t < keep_from) {
            self.arrivals.pop_front();
        }
    }

    /// FIFO's longest wait over the window (ms).
    pub fn longest(&self) -> i64 {
        self.peaks.front().map_or(0, |(_, w)| *w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn fifo_waits_as_long_as_the_latest_arrivals_take_to_reach_the_one_it_answers_next() {
        let mut y = Yardstick::default();
        for (i, at) in [0, 10, 20, 30].into_iter().enumerate() {
            y.arrived(at * S, &format!("c{i}"));
        }
        // Four waiting: FIFO answers the first arrival next; two waiting: the third.
        assert_eq!(y.fifo_now(4, 40 * S), 40 * S);
        assert_eq!(y.fifo_now(2, 40 * S), 20 * S);
        assert_eq!(y.fifo_now(0, 40 * S), 0);
        assert_eq!(y.fifo_next(2), Some(20 * S));
        // A contact back in the queue after a declined offer is not a new arrival.
        y.arrived(10 * S, "c1");
        assert_eq!(y.fifo_now(4, 40 * S), 40 * S);
        // One arriving out of order takes its place in time.
        y.arrived(25 * S, "late");
        assert_eq!(y.fifo_now(3, 40 * S), 20 * S);
    }

    #[test]
    fn the_longest_wait_is_kept_for_the_window_and_then_forgotten() {
        let mut y = Yardstick::default();
        y.arrived(0, "a");
        y.observe(1, Some(0), 100 * S, 3600 * S);
        assert_eq!(y.longest(), 100 * S);
        // Answered; a later, shorter wait does not lower it.
        y.arrived(200 * S, "b");
        y.observe(1, Some(200 * S), 230 * S, 3600 * S);
        assert_eq!(y.longest(), 100 * S);
        // An hour after the peak, the window no longer holds it: the next longest does.
        y.arrived(3790 * S, "c");
        y.observe(1, Some(3790 * S), 3800 * S, 3600 * S);
        assert_eq!(y.longest(), 30 * S);
        y.observe(0, None, 3900 * S, 3600 * S);
        assert_eq!(y.longest(), 10 * S);
        // Nothing waiting: the arrivals are forgotten.
        assert_eq!(y.fifo_next(1), None);
    }
}
