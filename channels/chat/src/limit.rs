//! Rate limits: how often a chat, or a client address, may act. A visitor who reconnects
//! keeps its chat's limit, and one who invents visitor ids keeps its address's: neither
//! is a way around them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `per_minute` actions a minute, in bursts of at most that many.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(per_minute: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(per_minute),
            at: now,
        }
    }

    /// Takes one action's token; false when there is none (the action is refused).
    pub fn take(&mut self, per_minute: u32, now: Instant) -> bool {
        let cap = f64::from(per_minute);
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * cap / 60.0;
        self.tokens = (self.tokens + refill).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, per_minute: u32, now: Instant) -> bool {
        let mut b = *self;
        b.take(per_minute, now) && b.tokens + 1.0 >= f64::from(per_minute)
    }
}

/// Buckets per client address. Addresses whose bucket has filled again are forgotten
/// when the map grows (at most once a second), so it holds only the addresses active in
/// the last minute or so.
#[derive(Debug, Default)]
pub struct PerAddress {
    state: Mutex<Addresses>,
}

#[derive(Debug, Default)]
struct Addresses {
    buckets: HashMap<IpAddr, Bucket>,
    pruned_at: Option<Instant>,
}

/// Addresses kept before the full ones are forgotten.
const FORGET_ABOVE: usize = 4096;

impl PerAddress {
    /// Takes one of `addr`'s tokens; false when it has none left this minute.
    pub fn take(&self, addr: IpAddr, per_minute: u32, now: Instant) -> bool {
        if per_minute == 0 {
            return true;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = s
            .pruned_at
            .is_none_or(|at| now.saturating_duration_since(at).as_secs() >= 1);
        if s.buckets.len() >= FORGET_ABOVE && due {
            s.buckets.retain(|_, b| !b.is_full(per_minute, now));
            s.pruned_at = Some(now);
        }
        s.buckets
            .entry(addr)
            .or_insert_with(|| Bucket::full(per_minute, now))
            .take(per_minute, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_rate_and_refills_with_time() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        assert!((0..3).all(|_| b.take(3, t0)));
        assert!(!b.take(3, t0));
        assert!(
            b.take(3, t0 + Duration::from_secs(20)),
            "one token per 20 s"
        );
        assert!(!b.take(3, t0 + Duration::from_secs(21)));
    }

    #[test]
    fn addresses_are_limited_apart_and_forgotten_once_full_again() {
        let t0 = Instant::now();
        let limits = PerAddress::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(limits.take(a, 1, t0));
        assert!(!limits.take(a, 1, t0));
        assert!(limits.take(b, 1, t0), "another address has its own");
        for i in 0..FORGET_ABOVE as u32 {
            limits.take(IpAddr::from(i.to_be_bytes()), 1, t0);
        }
        let later = t0 + Duration::from_secs(120);
        limits.take(a, 1, later);
        assert!(limits.state.lock().unwrap().buckets.len() < FORGET_ABOVE);
    }
}
