//! Latencies of every contact a benchmark sent, those that never arrived included: a
//! request that failed, a contact never offered, a message never delivered counts as
//! slower than any that arrived, so a percentile that falls on one says so instead of
//! being computed over the successes alone.

// Shared by several benchmarks, each of which uses a part of it.
#![allow(dead_code)]

/// Latencies in milliseconds, and how many never arrived.
pub struct Latencies {
    sorted_ms: Vec<f64>,
    missing: usize,
}

impl Latencies {
    /// The latencies that arrived (ms), and the count of those that did not.
    pub fn new(mut ms: Vec<f64>, missing: usize) -> Latencies {
        ms.sort_by(f64::total_cmp);
        Latencies {
            sorted_ms: ms,
            missing,
        }
    }

    /// How many arrived.
    pub fn arrived(&self) -> usize {
        self.sorted_ms.len()
    }

    /// How many never did.
    pub fn missing(&self) -> usize {
        self.missing
    }

    /// The latency at quantile `p` (nearest rank) over all of them; `None` when it falls
    /// on one that never arrived, or there are none.
    pub fn at(&self, p: f64) -> Option<f64> {
        let n = self.sorted_ms.len() + self.missing;
        if n == 0 {
            return None;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        self.sorted_ms.get(i).copied()
    }

    /// The latency at `p` for a table: `12.34 ms`, `-` when there are none, or `missing`
    /// (what those that never arrived are called) when it falls on one of them.
    pub fn show(&self, p: f64, missing: &str) -> String {
        match self.at(p) {
            Some(ms) => format!("{ms:.2} ms"),
            None if self.sorted_ms.is_empty() && self.missing == 0 => "-".into(),
            None => missing.into(),
        }
    }
}
