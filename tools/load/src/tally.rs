//! What a run did, contact by contact: how many each channel sent, which the server
//! acknowledged and which failed, when each was first offered to a desktop, and which the
//! server confirmed completed. Every figure of the report is computed from here, over
//! every contact sent: a contact that failed or was never offered is not left out of a
//! percentile but counted as slower than any that arrived.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The channels driven, in the order of the report.
pub const CHANNELS: [&str; 3] = ["phone", "email", "chat"];

/// A contact its channel acknowledged.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// `phone`, `email` or `chat`.
    pub channel: &'static str,
    /// Its key on the channel: what its offer names as `contact_key`.
    pub key: String,
    /// The query naming its customer (`phone=…`, `email=…`, `visitor_id=…`).
    pub customer: String,
    /// When it was sent.
    pub sent_at: Instant,
    /// From being sent to its acknowledgement.
    pub ack: Duration,
}

/// Everything counted in one run.
#[derive(Default)]
pub struct Tally {
    sent: HashMap<&'static str, u64>,
    failed: HashMap<&'static str, u64>,
    /// Refused the channel's own way because the server was past its capacity (a busy
    /// answer to a call, SMTP 451, a chat told to start later, HTTP 503 with
    /// `Retry-After`): answered, not accepted, and not an error.
    refused: HashMap<&'static str, u64>,
    /// Calls of known high-tier customers: sent, accepted, refused.
    pub high: (u64, u64, u64),
    accepted: Vec<Accepted>,
    /// Contact key → when its first offer reached a desktop (it may come before the
    /// acknowledgement reaches the sender, so it is kept for any key).
    offered: HashMap<String, Instant>,
    /// Interaction id → contact key, learnt from the offers.
    keys: HashMap<String, String>,
    /// Contact keys whose completion the server confirmed.
    completed: HashSet<String>,
    /// Contact key → whether the desktop its first offer reached was on a node that was
    /// not the router's leader (the offer relayed), in a run on several nodes.
    relayed: HashMap<String, bool>,
    /// Interaction id → the agents the server said it was assigned to.
    held_by: HashMap<String, HashSet<String>>,
}

/// The tally shared by every task of a run.
pub type Shared = Arc<Mutex<Tally>>;

/// Latencies of the contacts of a run, with those that never arrived (a failure, an
/// offer that never came) counted as slower than any that did.
pub struct Latencies {
    sorted_us: Vec<u64>,
    missing: usize,
}

impl Latencies {
    fn new(mut us: Vec<u64>, missing: usize) -> Latencies {
        us.sort_unstable();
        Latencies {
            sorted_us: us,
            missing,
        }
    }

    /// How many contacts, arrived or not.
    pub fn count(&self) -> usize {
        self.sorted_us.len() + self.missing
    }

    /// The latency at quantile `p` (nearest rank) over all contacts.
    pub fn at(&self, p: f64) -> At {
        let n = self.sorted_us.len() + self.missing;
        if n == 0 {
            return At::NoContacts;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        self.sorted_us
            .get(i)
            .map_or(At::Missing, |us| At::Micros(*us))
    }

    /// The latency at `p` for a table: milliseconds, `-` with no contacts, or `missing`
    /// (what the contacts that never arrived are called) when it falls on one of them.
    pub fn show(&self, p: f64, missing: &str) -> String {
        match self.at(p) {
            At::Micros(us) => format!("{:.1} ms", us as f64 / 1000.0),
            At::NoContacts => "-".into(),
            At::Missing => missing.into(),
        }
    }
}

/// What a run waits for before it counts its work done.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wait {
    /// Every contact answered (no agents to offer them to).
    Answers,
    /// And every accepted one offered (a crash test: a completion the server committed
    /// just before it was killed is never confirmed on a desktop).
    Offers,
    /// And every accepted one completed, confirmed by the server.
    Completions,
}

/// A percentile of [`Latencies`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    /// The run had no contacts.
    NoContacts,
    /// It falls on a contact that never arrived.
    Missing,
    /// This many microseconds.
    Micros(u64),
}

/// One channel's figures.
pub struct ChannelFigures {
    /// Contacts sent.
    pub sent: u64,
    /// Acknowledged by the channel.
    pub accepted: u64,
    /// Refused, unanswered or broken off.
    pub failed: u64,
    /// Accepted and offered to a desktop.
    pub offered: u64,
    /// Accepted and confirmed completed.
    pub completed: u64,
    /// Sent → acknowledged; failures count as missing.
    pub ack: Latencies,
    /// Sent → first offer, over the accepted; the never offered count as missing.
    pub to_offer: Latencies,
}

impl ChannelFigures {
    /// Accepted but never offered.
    pub fn never_offered(&self) -> u64 {
        self.accepted - self.offered
    }
}

impl Tally {
    /// A contact is about to be sent on `channel`.
    pub fn sending(&mut self, channel: &'static str) {
        *self.sent.entry(channel).or_default() += 1;
    }

    /// Its channel acknowledged it.
    pub fn accepted(&mut self, contact: Accepted) {
        self.accepted.push(contact);
    }

    /// It was refused, not answered in time, or the connection broke.
    pub fn failed(&mut self, channel: &'static str) {
        *self.failed.entry(channel).or_default() += 1;
    }

    /// The server refused it in the channel's own way, past its capacity.
    pub fn refused(&mut self, channel: &'static str) {
        *self.refused.entry(channel).or_default() += 1;
    }

    /// Refused past capacity on `channel`.
    pub fn refused_count(&self, channel: &str) -> u64 {
        self.refused.get(channel).copied().unwrap_or(0)
    }

    /// Offers that reached a desktop by `until`.
    pub fn offered_by(&self, until: Instant) -> usize {
        self.offered.values().filter(|at| **at <= until).count()
    }

    /// Offers reaching desktops by `until` of contacts their channel acknowledged: the
    /// part of [`Tally::offered_by`] whose sender knew the contact was taken (a call
    /// whose webhook went unanswered may be offered all the same, after its phone system
    /// gave up on the answer).
    pub fn offered_acknowledged_by(&self, until: Instant) -> usize {
        self.accepted
            .iter()
            .filter(|a| self.offered.get(&a.key).is_some_and(|at| *at <= until))
            .count()
    }

    /// A desktop was offered interaction `id`, the contact `key`; `relayed` when that
    /// desktop was connected to a node that does not lead the routing.
    pub fn offered(&mut self, key: &str, id: &str, relayed: bool) {
        if !self.offered.contains_key(key) {
            self.offered.insert(key.to_string(), Instant::now());
            self.relayed.insert(key.to_string(), relayed);
        }
        self.keys.insert(id.to_string(), key.to_string());
    }

    /// The server told `agent` interaction `id` is theirs.
    pub fn assigned(&mut self, id: &str, agent: &str) {
        self.held_by
            .entry(id.to_string())
            .or_default()
            .insert(agent.to_string());
    }

    /// Interactions the server assigned to more than one agent.
    pub fn double_assigned(&self) -> Vec<(String, usize)> {
        self.held_by
            .iter()
            .filter(|(_, agents)| agents.len() > 1)
            .map(|(id, agents)| (id.clone(), agents.len()))
            .collect()
    }

    /// After a fault at `at`: how long until routing was seen again — the first offer of
    /// a contact sent after it (which no router from before the fault can have made).
    /// `None` when no such contact was offered.
    pub fn routing_again(&self, at: Instant) -> Option<Duration> {
        self.accepted
            .iter()
            .filter(|a| a.sent_at > at)
            .filter_map(|a| self.offered.get(&a.key))
            .min()
            .map(|first| first.saturating_duration_since(at))
    }

    /// Sent → first offer over every accepted contact of every channel; the never
    /// offered count as missing.
    pub fn to_offer_all(&self) -> Latencies {
        let us: Vec<u64> = self
            .accepted
            .iter()
            .filter_map(|a| {
                let at = self.offered.get(&a.key)?;
                Some(at.saturating_duration_since(a.sent_at).as_micros() as u64)
            })
            .collect();
        let missing = self.accepted.len() - us.len();
        Latencies::new(us, missing)
    }

    /// Accepted contacts the server confirmed completed.
    pub fn completed_count(&self) -> usize {
        self.accepted
            .iter()
            .filter(|a| self.completed.contains(&a.key))
            .count()
    }

    /// Sent → first offer over every accepted contact offered, split by whether the
    /// desktop was on the leader (`false`) or on a follower (`true`).
    pub fn to_offer_by_relay(&self, relayed: bool) -> Latencies {
        let us = self
            .accepted
            .iter()
            .filter(|a| self.relayed.get(&a.key) == Some(&relayed))
            .filter_map(|a| {
                let at = self.offered.get(&a.key)?;
                Some(at.saturating_duration_since(a.sent_at).as_micros() as u64)
            })
            .collect();
        Latencies::new(us, 0)
    }

    /// The server confirmed interaction `id` completed.
    pub fn completed(&mut self, id: &str) {
        if let Some(key) = self.keys.get(id) {
            self.completed.insert(key.clone());
        }
    }

    /// Every contact sent has its answer (accepted or failed), and what `wait` asks of
    /// the accepted ones has happened.
    pub fn done(&self, wait: Wait) -> bool {
        let answered = self.sent.values().sum::<u64>()
            == self.accepted.len() as u64
                + self.failed.values().sum::<u64>()
                + self.refused.values().sum::<u64>();
        answered
            && match wait {
                Wait::Answers => true,
                Wait::Offers => self
                    .accepted
                    .iter()
                    .all(|a| self.offered.contains_key(&a.key)),
                Wait::Completions => self
                    .accepted
                    .iter()
                    .all(|a| self.completed.contains(&a.key)),
            }
    }

    /// Every contact its channel acknowledged, in the order they were.
    pub fn all_accepted(&self) -> Vec<Accepted> {
        self.accepted.clone()
    }

    /// One channel's figures.
    pub fn figures(&self, channel: &str) -> ChannelFigures {
        let mine: Vec<&Accepted> = self
            .accepted
            .iter()
            .filter(|a| a.channel == channel)
            .collect();
        let failed = self.failed.get(channel).copied().unwrap_or(0);
        let offers: Vec<u64> = mine
            .iter()
            .filter_map(|a| {
                let at = self.offered.get(&a.key)?;
                // An offer can beat the acknowledgement home, never the sending.
                Some(at.saturating_duration_since(a.sent_at).as_micros() as u64)
            })
            .collect();
        let offered = offers.len() as u64;
        ChannelFigures {
            sent: self.sent.get(channel).copied().unwrap_or(0),
            accepted: mine.len() as u64,
            failed,
            offered,
            completed: mine
                .iter()
                .filter(|a| self.completed.contains(&a.key))
                .count() as u64,
            ack: Latencies::new(
                mine.iter().map(|a| a.ack.as_micros() as u64).collect(),
                failed as usize,
            ),
            to_offer: Latencies::new(offers, mine.len() - offered as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_that_falls_on_a_missing_contact_says_so() {
        // 98 answered in 1..=98 ms, 2 never: the p99 is one of the two.
        let l = Latencies::new((1..=98).map(|ms| ms * 1000).collect(), 2);
        assert_eq!(l.show(0.50, "failed"), "50.0 ms");
        assert_eq!(l.show(0.98, "failed"), "98.0 ms");
        assert_eq!(l.show(0.99, "failed"), "failed");
        assert_eq!(Latencies::new(Vec::new(), 0).show(0.5, "failed"), "-");
    }

    #[test]
    fn a_run_is_done_when_every_contact_is_answered_and_every_accepted_one_completed() {
        let mut t = Tally::default();
        t.sending("phone");
        t.sending("phone");
        assert!(!t.done(Wait::Answers));
        t.failed("phone");
        t.accepted(Accepted {
            channel: "phone",
            key: "native:1".into(),
            customer: String::new(),
            sent_at: Instant::now(),
            ack: Duration::from_millis(3),
        });
        assert!(t.done(Wait::Answers));
        assert!(!t.done(Wait::Offers), "accepted but not yet offered");
        t.offered("native:1", "i-1", false);
        assert!(t.done(Wait::Offers));
        assert!(!t.done(Wait::Completions), "offered but not yet completed");
        t.completed("i-1");
        assert!(t.done(Wait::Completions));
        let f = t.figures("phone");
        assert_eq!((f.sent, f.accepted, f.failed, f.offered), (2, 1, 1, 1));
        assert_eq!(f.ack.show(0.5, "failed"), "3.0 ms");
        assert_eq!(f.ack.show(1.0, "failed"), "failed");
    }
}
