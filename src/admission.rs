//! Admission control: what the server does past its capacity.
//!
//! Without it, a burst beyond the rate the server can route slows everything at once:
//! contacts are committed faster than the router takes them up, every answer that waits
//! on the router (a ringing call's place in line) waits longer, and the useful work —
//! offers to agents — falls while the machine stays busy. With it, the server measures
//! its own lag and refuses part of the new contacts early, before anything is written,
//! so that what it takes keeps being routed at full speed.
//!
//! - **The signal** is the lag: how long a command sent to the router now waits for it,
//!   how long the oldest committed contact has waited for the router to take it up, a
//!   contact for its commit (counted while it waits, not only once committed), or a
//!   channel's write (a call's ringing, a chat's first message) for its turn. The
//!   *pressure* (0 to 1) follows it: past `target_lag_ms` it rises, faster the further
//!   past; under it, it falls; and while the lag falls, it falls with it (see
//!   [`Admission::observe`]).
//! - **The order** of refusal: each class (channel, tier) starts being refused at its
//!   channel's start plus its tier's on the pressure's scale, and is wholly refused
//!   `ramp` later. By default mail goes first (mail servers retry for days), then chat
//!   and the API, calls last; within each, the best tiers' known customers last. A
//!   contact's tier is the one its customer has (found by identity); a customer not
//!   known yet has the default tier.
//! - **Where**: while the pressure is above 0 every new contact is screened before the
//!   store's writer (`intake::screen`), its customer's tier read beside the writer, so a
//!   refusal is answered at once rather than after waiting in line for a commit.
//! - **Refusing** is in each channel's own way, and nothing refused was acknowledged:
//!   HTTP 503 with `Retry-After`, SMTP 451, a busy answer to a ringing call, a chat's
//!   start delayed with its place in line. A chat is admitted at its start: its first
//!   message, which puts it in line for an agent, is never refused.
//! - **Visible**: `/metrics` counts what was refused per channel and tier, and shows the
//!   pressure and the lag; the supervisors' live view shows them too.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_contract::ChannelKind;
use tokio_util::sync::CancellationToken;

use crate::config::{AdmissionSettings, TierSettings};
use crate::queue::Queue;
use crate::routing::router::RouterHandle;
use crate::store::{now_ms, Store};

/// How often the pressure is brought up to date.
const TICK: Duration = Duration::from_millis(100);
/// How much the pressure rises a tick per target of lag, once the lag is past its target.
const RISE: f64 = 0.02;
/// How much the pressure falls a tick per target the lag is short of its target.
const FALL: f64 = 0.01;
/// How much the pressure moves a tick per target the lag moved since the last tick.
const TREND: f64 = 0.2;
/// The window of the refusals the live view shows, in seconds.
const RECENT_SECS: i64 = 60;

/// The refusals of one second: per channel and tier, how many.
struct Second {
    at: i64,
    counts: Vec<(ChannelKind, String, u64)>,
}

/// The refusals of the last minute, as one count per second, channel and tier: counting
/// one costs the same however many were refused before it (a burst of thousands a
/// second for minutes is when it is counted most).
#[derive(Default)]
struct Recent {
    seconds: VecDeque<Second>,
}

impl Recent {
    /// Counts one refusal at `now_secs`, and forgets the seconds out of the window.
    fn count(&mut self, now_secs: i64, channel: ChannelKind, tier: &str) {
        while self
            .seconds
            .front()
            .is_some_and(|s| s.at + RECENT_SECS <= now_secs)
        {
            self.seconds.pop_front();
        }
        if self.seconds.back().is_none_or(|s| s.at != now_secs) {
            self.seconds.push_back(Second {
                at: now_secs,
                counts: Vec::new(),
            });
        }
        let Some(second) = self.seconds.back_mut() else {
            return;
        };
        match second
            .counts
            .iter_mut()
            .find(|(c, t, _)| *c == channel && t == tier)
        {
            Some((_, _, n)) => *n += 1,
            None => second.counts.push((channel, tier.to_string(), 1)),
        }
    }

    /// The counts of the window ending at `now_secs`.
    fn within(&self, now_secs: i64) -> impl Iterator<Item = &(ChannelKind, String, u64)> {
        self.seconds
            .iter()
            .filter(move |s| s.at + RECENT_SECS > now_secs)
            .flat_map(|s| s.counts.iter())
    }
}

/// The server's admission state: shared by the intake (which asks it) and the
/// controller task (which keeps its pressure).
pub struct Admission {
    settings: AdmissionSettings,
    /// Each tier's start, added to its channel's.
    tier_start: HashMap<String, f64>,
    default_tier: String,
    /// The pressure, in millionths (0 to 1,000,000).
    pressure: AtomicU32,
    /// The lag last measured (ms).
    lag_ms: AtomicI64,
    /// The longest a contact waited for its commit since the last tick (ms).
    intake_wait_ms: AtomicI64,
    /// When the oldest contact of the group being committed now was submitted (ms from
    /// `epoch`, before it when negative; `i64::MIN`: none is).
    committing_since: AtomicI64,
    /// The start of `committing_since`'s clock.
    epoch: Instant,
    /// A counter for the refusal draws.
    draws: AtomicU64,
    /// Refusals of the last minute, for the live view.
    recent: Mutex<Recent>,
}

impl Admission {
    /// Admission as `settings` say, over the tiers of `tiers`.
    pub fn new(settings: &AdmissionSettings, tiers: &TierSettings) -> Arc<Admission> {
        Arc::new(Admission {
            settings: settings.clone(),
            tier_start: settings
                .tier_start
                .iter()
                .map(|(t, v)| (t.clone(), *v))
                .collect(),
            default_tier: tiers.default.clone(),
            pressure: AtomicU32::new(0),
            lag_ms: AtomicI64::new(0),
            intake_wait_ms: AtomicI64::new(0),
            committing_since: AtomicI64::new(i64::MIN),
            epoch: Instant::now(),
            draws: AtomicU64::new(now_ms() as u64),
            recent: Mutex::new(Recent::default()),
        })
    }

    /// The pressure now, 0 (nothing refused) to 1.
    pub fn pressure(&self) -> f64 {
        f64::from(self.pressure.load(Ordering::Relaxed)) / 1_000_000.0
    }

    /// Whether anything may be refused now: when not, the intake need not look up
    /// customers' tiers before the commit.
    pub fn shedding(&self) -> bool {
        self.settings.enabled && self.pressure.load(Ordering::Relaxed) > 0
    }

    /// The tier of a customer not known yet.
    pub fn default_tier(&self) -> &str {
        &self.default_tier
    }

    /// What a refused sender is told to wait (seconds).
    pub fn retry_after_secs(&self) -> u32 {
        self.settings.retry_after_secs
    }

    /// The share of contacts of this channel and tier refused at `pressure`.
    pub fn refused_share(&self, channel: ChannelKind, tier: &str, pressure: f64) -> f64 {
        let start = self
            .settings
            .channel_start
            .get(channel.as_str())
            .copied()
            .unwrap_or(0.0)
            + self.tier_start.get(tier).copied().unwrap_or(0.0);
        ((pressure - start) / self.settings.ramp).clamp(0.0, 1.0)
    }

    /// Whether to refuse a new contact of this channel and tier now. A refusal is counted
    /// (per channel and tier) and logged by the caller's channel in its own way.
    pub fn refuse(&self, channel: ChannelKind, tier: &str) -> bool {
        if !self.shedding() {
            return false;
        }
        let share = self.refused_share(channel, tier, self.pressure());
        if share <= 0.0 {
            return false;
        }
        let refused = share >= 1.0 || self.draw() < share;
        if refused {
            self.count_refusal(channel, tier);
        }
        refused
    }

    /// Whether every new contact of `channel` is refused now, whatever its customer's tier
    /// (even the best tier's share is whole at this pressure). When so, it is counted as a
    /// refusal of a tier not read (`any`): the channel refuses before reading the contact.
    pub fn refuses_every(&self, channel: ChannelKind) -> bool {
        if !self.shedding() {
            return false;
        }
        let pressure = self.pressure();
        let best = self
            .tier_start
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(self.default_tier.as_str(), |(t, _)| t.as_str());
        let every = self.refused_share(channel, best, pressure) >= 1.0
            && self.refused_share(channel, &self.default_tier, pressure) >= 1.0;
        if every {
            self.count_refusal(channel, "any");
        }
        every
    }

    /// Counts a refusal of this channel and tier, for `/metrics` and the live view.
    fn count_refusal(&self, channel: ChannelKind, tier: &str) {
        metrics::counter!("switchboard_admission_refused_total",
            "channel" => channel.as_str(), "tier" => tier.to_string())
        .increment(1);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count(now_ms() / 1000, channel, tier);
    }

    /// The longest a new contact may wait for its commit before it is refused instead
    /// (`None`: admission control is off).
    pub fn max_wait(&self) -> Option<Duration> {
        self.settings
            .enabled
            .then(|| Duration::from_millis(self.settings.max_wait_ms))
    }

    /// Counts a new contact refused because it waited longer than [`Admission::max_wait`]
    /// (its tier was not read: it is counted as `unknown`).
    pub fn refused_late(&self, channel: ChannelKind) {
        self.count_refusal(channel, "unknown");
    }

    /// A number drawn evenly from [0, 1): splitmix64 over a shared counter.
    fn draw(&self) -> f64 {
        let mut z = self
            .draws
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The intake tells how long a contact waited for its commit, or the store how long
    /// a write (a channel's first event of a contact) waited for its turn.
    pub fn committed_after(&self, wait: Duration) {
        self.intake_wait_ms
            .fetch_max(wait.as_millis() as i64, Ordering::Relaxed);
    }

    /// The intake tells when the oldest contact of the group it is committing now was
    /// submitted, or that it commits none (`None`).
    pub fn committing(&self, oldest: Option<Instant>) {
        let since = oldest.map_or(i64::MIN, |o| self.since_epoch_ms(o));
        self.committing_since.store(since, Ordering::Relaxed);
    }

    /// How long the oldest contact of the group being committed has waited (ms).
    fn committing_for_ms(&self) -> i64 {
        match self.committing_since.load(Ordering::Relaxed) {
            i64::MIN => 0,
            since => (self.since_epoch_ms(Instant::now()) - since).max(0),
        }
    }

    /// An instant as ms from `epoch` (negative before it).
    fn since_epoch_ms(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.epoch) {
            Some(after) => after.as_millis() as i64,
            None => -(self.epoch.duration_since(at).as_millis() as i64),
        }
    }

    /// One step of the controller: the lag measured now moves the pressure.
    ///
    /// The step follows how far the lag is from its target and how fast it moves (as the
    /// PIE queue manager's controller does): past the target it rises, under it it falls,
    /// and while the lag falls (the backlog draining) it falls sooner.
    ///
    /// A controller that rose by steps while the lag was past its target and fell only
    /// once it was under half of it wound up to 1 while the backlog drained, then held
    /// it there for seconds with the backlog gone, refusing nearly everything and offering
    /// a tenth of what it could, before letting the next burst in: under a sustained load
    /// at five times capacity goodput swung between full and a tenth. With the trend the
    /// pressure settles where what is admitted is what is routed.
    pub fn observe(&self, router_lag_ms: i64) {
        let intake = self
            .intake_wait_ms
            .swap(0, Ordering::Relaxed)
            .max(self.committing_for_ms());
        metrics::gauge!("switchboard_admission_lag_seconds", "source" => "intake")
            .set(intake as f64 / 1000.0);
        let lag = router_lag_ms.max(intake);
        let previous = self.lag_ms.swap(lag, Ordering::Relaxed);
        let target = self.settings.target_lag_ms.max(1) as f64;
        // How fast the lag moved since the last tick, in targets. Rising, it counts only
        // from past the target: a backlog growing. A lag jumping there from nothing (a
        // store's hiccup, a second's stall) moves the pressure only by its distance, and
        // refuses nothing unless it lasts. Falling, it counts from past half the target:
        // a backlog draining. Under that it is the noise of a server keeping up.
        let from = if lag > previous { target } else { target / 2.0 };
        let trend = if (previous as f64) > from {
            ((lag - previous) as f64 / target).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let p = self.pressure();
        // Past the target, up by 2% to 10% a tick, the further past the more: from nothing
        // to everything refusable in 1 to 5 s. Under it, down by up to 1% a tick, the
        // further under the more. And up to 20% more either way as fast as a backlog
        // grows or drains.
        let level = if lag as f64 > target {
            RISE * (lag as f64 / target).min(5.0)
        } else {
            FALL * (lag as f64 - target) / target
        };
        let next = p + level + TREND * trend;
        let next = if self.settings.enabled {
            next.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.pressure
            .store((next * 1_000_000.0) as u32, Ordering::Relaxed);
        metrics::gauge!("switchboard_admission_pressure").set(next);
        metrics::gauge!("switchboard_router_lag_seconds").set(lag as f64 / 1000.0);
    }

    /// What the supervisors' live view shows: the pressure, the lag, and the refusals of
    /// the last minute per channel and tier.
    pub fn view(&self) -> Value {
        let mut per: HashMap<String, HashMap<String, u64>> = HashMap::new();
        let mut total = 0;
        {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            for (channel, tier, n) in recent.within(now_ms() / 1000) {
                *per.entry(channel.as_str().to_string())
                    .or_default()
                    .entry(tier.clone())
                    .or_default() += n;
                total += n;
            }
        }
        let pressure = self.pressure();
        json!({
            "enabled": self.settings.enabled,
            "overloaded": pressure > 0.0,
            "pressure": (pressure * 1000.0).round() / 1000.0,
            "lag_ms": self.lag_ms.load(Ordering::Relaxed),
            "target_lag_ms": self.settings.target_lag_ms,
            "refused_last_minute": total,
            "refused_by_channel": per,
        })
    }
}

/// Keeps the pressure up to date every tick, until `shutdown`, from the router's lag:
/// how long a command sent to it now takes to be reached (measured by a probe always in
/// flight: while one is unanswered, its age), or how long a committed contact has waited
/// for it to be taken up, or a write waited for its turn in the store, whichever is
/// longest.
pub fn start(
    admission: Arc<Admission>,
    queue: Arc<Queue>,
    router: RouterHandle,
    store: Store,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // When the probe in flight was sent (ms), and the lag the last one answered.
    let probe_sent = Arc::new(AtomicI64::new(0));
    let last_lag = Arc::new(AtomicI64::new(0));
    let prober = {
        let (probe_sent, last_lag, shutdown) =
            (probe_sent.clone(), last_lag.clone(), shutdown.clone());
        async move {
            loop {
                probe_sent.store(now_ms(), Ordering::Relaxed);
                let lag = tokio::select! {
                    lag = router.lag() => lag,
                    () = shutdown.cancelled() => return,
                };
                probe_sent.store(0, Ordering::Relaxed);
                match lag {
                    Some(l) => last_lag.store(l.as_millis() as i64, Ordering::Relaxed),
                    // This node does not route now: nothing of the router's to wait for.
                    None => last_lag.store(0, Ordering::Relaxed),
                }
                tokio::select! {
                    () = tokio::time::sleep(TICK / 2) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    };
    tokio::spawn(prober);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = now_ms();
                    let sent = probe_sent.load(Ordering::Relaxed);
                    let in_flight = if sent > 0 { now - sent } else { 0 };
                    let router = last_lag.load(Ordering::Relaxed).max(in_flight);
                    let untaken = queue.untaken_for_ms(now);
                    let store = store.take_write_wait_ms().max(0);
                    for (source, ms) in [("router", router), ("untaken", untaken), ("store", store)] {
                        metrics::gauge!("switchboard_admission_lag_seconds", "source" => source)
                            .set(ms as f64 / 1000.0);
                    }
                    admission.committed_after(Duration::from_millis(store as u64));
                    admission.observe(router.max(untaken));
                }
                () = shutdown.cancelled() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn admission() -> Arc<Admission> {
        let s = Settings::defaults();
        Admission::new(&s.admission, &s.tiers)
    }

    #[test]
    fn mail_goes_first_calls_last_and_the_best_tier_last_of_all() {
        let a = admission();
        let share = |c, t, p| a.refused_share(c, t, p);
        // At a little pressure only mail of customers not known to be better is refused.
        assert!(share(ChannelKind::Email, "low", 0.1) > 0.0);
        assert_eq!(share(ChannelKind::Chat, "low", 0.1), 0.0);
        assert_eq!(share(ChannelKind::Phone, "low", 0.1), 0.0);
        // At full pressure everything of the default tier is refused, and a high-tier
        // customer's call still mostly taken.
        assert_eq!(share(ChannelKind::Email, "low", 1.0), 1.0);
        assert_eq!(share(ChannelKind::Phone, "low", 1.0), 1.0);
        assert!(share(ChannelKind::Phone, "high", 1.0) < 0.5);
        assert!(share(ChannelKind::Phone, "high", 1.0) < share(ChannelKind::Email, "high", 1.0));
    }

    #[test]
    fn every_mail_is_refused_unread_only_once_even_the_best_tier_would_be() {
        let a = admission();
        for _ in 0..3 {
            a.observe(1_500);
        }
        // Some pressure: the default tier's mail is refused, a high-tier customer's not
        // yet, so mail must still be read to be screened.
        assert!(
            a.pressure() > 0.0 && a.pressure() < 0.85,
            "{}",
            a.pressure()
        );
        assert!(!a.refuses_every(ChannelKind::Email));
        for _ in 0..30 {
            a.observe(5_000);
        }
        assert_eq!(a.pressure(), 1.0);
        assert!(a.refuses_every(ChannelKind::Email));
        assert!(a.refuses_every(ChannelKind::Chat));
        // A high-tier customer's call is never wholly refused by default.
        assert!(!a.refuses_every(ChannelKind::Phone));
        let view = a.view();
        assert_eq!(view["refused_by_channel"]["email"]["any"], 1, "{view}");
        assert_eq!(view["refused_by_channel"]["chat"]["any"], 1, "{view}");
        assert_eq!(view["refused_last_minute"], 2);
    }

    #[test]
    fn the_pressure_rises_with_the_lag_and_falls_without_it() {
        let a = admission();
        assert!(!a.shedding());
        for _ in 0..20 {
            a.observe(5_000);
        }
        assert!(a.pressure() > 0.5, "pressure {}", a.pressure());
        assert!(a.refuse(ChannelKind::Email, "low"));
        let high = a.pressure();
        for _ in 0..200 {
            a.observe(0);
        }
        assert!(a.pressure() < high);
        assert_eq!(a.pressure(), 0.0);
        assert!(!a.refuse(ChannelKind::Email, "low"));
        assert_eq!(a.view()["refused_last_minute"], 1);
    }

    #[test]
    fn a_commit_that_waited_counts_as_lag() {
        let a = admission();
        a.committed_after(Duration::from_secs(3));
        a.observe(0);
        assert!(a.pressure() > 0.0);
        assert_eq!(a.view()["lag_ms"], 3000);
    }

    #[test]
    fn a_group_still_waiting_for_its_commit_counts_as_lag_as_it_waits() {
        let a = admission();
        let submitted = Instant::now() - Duration::from_secs(3);
        a.committing(Some(submitted));
        a.observe(0);
        assert!(a.pressure() > 0.0);
        assert!(
            a.view()["lag_ms"].as_i64().unwrap() >= 2_990,
            "{}",
            a.view()
        );
        // Committed: no longer waiting, no longer lag.
        a.committing(None);
        a.observe(0);
        assert_eq!(a.view()["lag_ms"], 0);
    }

    #[test]
    fn the_pressure_falls_as_soon_as_the_lag_does_not_only_once_it_is_gone() {
        let a = admission();
        for _ in 0..30 {
            a.observe(5_000);
        }
        assert_eq!(a.pressure(), 1.0);
        // The backlog drains: the lag is still past its target, but falling.
        let mut last = a.pressure();
        for lag in [4_000, 3_000, 2_000, 1_500] {
            a.observe(lag);
            assert!(a.pressure() < last, "{lag} ms: {} >= {last}", a.pressure());
            last = a.pressure();
        }
        assert!(last < 0.6, "{last}");
        // Steady at the target: it holds.
        a.observe(1_000);
        let held = a.pressure();
        for _ in 0..10 {
            a.observe(1_000);
        }
        assert!(
            (a.pressure() - held).abs() < 1e-6,
            "{} against {held}",
            a.pressure()
        );
        // Gone: nothing is refused within a few seconds.
        for _ in 0..60 {
            a.observe(0);
        }
        assert_eq!(a.pressure(), 0.0);
    }

    #[test]
    fn a_moment_of_lag_from_nothing_refuses_nothing() {
        let a = admission();
        // A store's hiccup: the lag jumps past its target for a tick and is gone.
        a.observe(0);
        a.observe(1_500);
        a.observe(0);
        assert_eq!(a.pressure(), 0.0);
        // It lasts and grows: a backlog building, and the pressure rises with it.
        for lag in [1_500, 2_000, 2_500, 3_000] {
            a.observe(lag);
        }
        assert!(a.pressure() > 0.3, "{}", a.pressure());
    }

    #[test]
    fn refusals_are_counted_per_second_and_forgotten_after_a_minute() {
        let mut recent = Recent::default();
        for _ in 0..1_000 {
            recent.count(100, ChannelKind::Phone, "low");
        }
        recent.count(100, ChannelKind::Phone, "high");
        recent.count(130, ChannelKind::Email, "any");
        let sum = |r: &Recent, at, c, t: &str| -> u64 {
            r.within(at)
                .filter(|(ch, tier, _)| *ch == c && tier == t)
                .map(|(_, _, n)| n)
                .sum()
        };
        // One second's thousand refusals of a class are one count.
        assert_eq!(recent.seconds.len(), 2);
        assert_eq!(recent.seconds[0].counts.len(), 2);
        assert_eq!(sum(&recent, 159, ChannelKind::Phone, "low"), 1_000);
        assert_eq!(sum(&recent, 159, ChannelKind::Phone, "high"), 1);
        // A minute on, the second of the calls is out of the window; the mail is not.
        assert_eq!(sum(&recent, 160, ChannelKind::Phone, "low"), 0);
        assert_eq!(sum(&recent, 160, ChannelKind::Email, "any"), 1);
        // And it is dropped at the next count, not kept.
        recent.count(161, ChannelKind::Chat, "low");
        assert_eq!(recent.seconds.len(), 2);
    }

    #[test]
    fn draws_are_spread_evenly() {
        let a = admission();
        let n = 10_000;
        let below = (0..n).filter(|_| a.draw() < 0.3).count();
        assert!((2_700..3_300).contains(&below), "{below} of {n} below 0.3");
    }
}
