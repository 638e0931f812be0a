//! The order, case by case: standings and keys under the shipped target order (high:
//! target 20 s, urgent; medium: target 60 s; low: no target; fair limit 1.25, warning
//! 1.05) and under the head-start order shipped before it.

use super::*;
use crate::routing::rules::DEFAULT_TOML;
use switchboard_contract::ChannelKind;

const NOW: i64 = 1_800_000_000_000;

fn targets() -> Rules {
    Rules::parse(DEFAULT_TOML, "default").unwrap()
}

fn head_starts() -> Rules {
    Rules::parse(
        include_str!("../../../config/routing-head-start.toml"),
        "head start",
    )
    .unwrap()
}

fn waiting(id: &str, tier: &str, waited_ms: i64) -> WaitingInteraction {
    WaitingInteraction {
        id: id.into(),
        tier: tier.into(),
        channel: ChannelKind::Phone,
        topic: None,
        owner: None,
        enqueued_at_ms: NOW - waited_ms,
        excluded: Vec::new(),
    }
}

/// A fair wait with these bounds (seconds).
fn fair(limit: f64, warning: f64) -> FairWait {
    FairWait {
        fifo_longest_secs: 0.0,
        fifo_now_secs: 0.0,
        owed_secs: 0.0,
        limit_secs: limit,
        warning_secs: warning,
    }
}

/// (what, tier, waited ms, fair wait, standing, value).
type StandingCase = (
    &'static str,
    &'static str,
    i64,
    Option<FairWait>,
    Standing,
    f64,
);

#[test]
fn each_interaction_stands_by_its_target_and_the_fair_wait() {
    let r = targets();
    let usual = fair(300.0, 250.0);
    let cases: Vec<StandingCase> = vec![
        (
            "high within its 20 s target: urgent, 15 s to spare",
            "high",
            5_000,
            Some(usual),
            Standing::UrgentWithinTarget,
            -15.0,
        ),
        (
            "high past its target: waits by its wait",
            "high",
            25_000,
            Some(usual),
            Standing::Waiting,
            25.0,
        ),
        (
            "medium within its 60 s target: not urgent",
            "medium",
            30_000,
            Some(usual),
            Standing::WithinTarget,
            -30.0,
        ),
        (
            "medium at its target has missed it",
            "medium",
            60_000,
            Some(usual),
            Standing::Waiting,
            60.0,
        ),
        (
            "low has no target",
            "low",
            1_000,
            Some(usual),
            Standing::Waiting,
            1.0,
        ),
        (
            "low past the fair warning",
            "low",
            260_000,
            Some(usual),
            Standing::NearFairLimit,
            260.0,
        ),
        (
            "low past the fair limit",
            "low",
            301_000,
            Some(usual),
            Standing::PastFairLimit,
            301.0,
        ),
        (
            "the fair limit outranks even an urgent target",
            "high",
            5_000,
            Some(fair(4.0, 2.0)),
            Standing::PastFairLimit,
            5.0,
        ),
        (
            "an urgent target outranks the fair warning",
            "high",
            5_000,
            Some(fair(100.0, 4.0)),
            Standing::UrgentWithinTarget,
            -15.0,
        ),
        (
            "the fair warning outranks a target that is not urgent",
            "medium",
            30_000,
            Some(fair(100.0, 20.0)),
            Standing::NearFairLimit,
            30.0,
        ),
        (
            "without a fair wait, nothing is past it",
            "low",
            10_000_000,
            None,
            Standing::Waiting,
            10_000.0,
        ),
        (
            "a tier the rules do not know has no target",
            "vip",
            1_000,
            Some(usual),
            Standing::Waiting,
            1.0,
        ),
    ];
    for (what, tier, waited_ms, f, standing, value) in cases {
        let k = key(&waiting("i", tier, waited_ms), &r, f.as_ref(), NOW);
        assert_eq!((k.standing, k.value), (standing, value), "{what}");
        assert_eq!(k.waited_secs, waited_ms as f64 / 1000.0, "{what}");
    }
}

#[test]
fn interactions_go_in_order_of_standing_then_urgency_then_arrival() {
    let r = targets();
    let f = fair(300.0, 250.0);
    // (what, the one that goes first, the other).
    let cases = vec![
        (
            "a high contact within target before a low one that waited longer",
            waiting("high", "high", 10_000),
            waiting("low", "low", 200_000),
        ),
        (
            "a low contact past the fair limit before a high one within target",
            waiting("low", "low", 301_000),
            waiting("high", "high", 19_000),
        ),
        (
            "a high contact within target before a low one near the fair limit",
            waiting("high", "high", 1_000),
            waiting("low", "low", 299_000),
        ),
        (
            "a low contact near the fair limit before a medium one within target",
            waiting("low", "low", 251_000),
            waiting("medium", "medium", 59_000),
        ),
        (
            "within target, the one closest to missing it first",
            waiting("close", "medium", 50_000),
            waiting("far", "medium", 10_000),
        ),
        (
            "a medium contact within target before a high one past its target",
            waiting("medium", "medium", 1_000),
            waiting("high", "high", 21_000),
        ),
        (
            "past their targets, tiers alike: the longer wait first",
            waiting("low", "low", 100_000),
            waiting("high", "high", 90_000),
        ),
        (
            "a medium contact within target before an older one of the same tier past it",
            waiting("new", "medium", 30_000),
            waiting("old", "medium", 90_000),
        ),
        (
            "equal in all else: the earlier id",
            waiting("a", "low", 5_000),
            waiting("b", "low", 5_000),
        ),
    ];
    for (what, first, second) in cases {
        let (k1, k2) = (
            key(&first, &r, Some(&f), NOW),
            key(&second, &r, Some(&f), NOW),
        );
        assert_eq!(k1.cmp(&first, &k2, &second), Ordering::Greater, "{what}");
        assert_eq!(k2.cmp(&second, &k1, &first), Ordering::Less, "{what}");
    }
}

#[test]
fn the_head_start_order_adds_head_starts_and_puts_the_overdue_first() {
    let r = head_starts();
    let cases: Vec<(&str, &str, i64, Standing, f64)> = vec![
        (
            "high: 300 s head start",
            "high",
            10_000,
            Standing::Waiting,
            310.0,
        ),
        (
            "high past its 20 s maximum wait",
            "high",
            21_000,
            Standing::PastMaxWait,
            321.0,
        ),
        (
            "medium: 60 s head start",
            "medium",
            100_000,
            Standing::Waiting,
            160.0,
        ),
        (
            "low past its 600 s maximum wait",
            "low",
            601_000,
            Standing::PastMaxWait,
            601.0,
        ),
    ];
    for (what, tier, waited_ms, standing, value) in cases {
        let k = key(&waiting("i", tier, waited_ms), &r, None, NOW);
        assert_eq!((k.standing, k.value), (standing, value), "{what}");
        assert!(k.standing.overdue() == (standing == Standing::PastMaxWait));
    }
    // The fair wait means nothing to it.
    let k = key(
        &waiting("i", "low", 500_000),
        &r,
        Some(&fair(1.0, 1.0)),
        NOW,
    );
    assert_eq!(k.standing, Standing::Waiting);
    assert_eq!(target_split(&r, "high", NOW), None);
}

#[test]
fn the_fair_wait_is_the_yardstick_times_the_multiples_less_what_is_owed() {
    let r = targets();
    // FIFO's longest 400 s, its wait now 100 s, 40 s owed to those left behind.
    let f = FairWait::new(&r, 400.0, 100.0, 40.0);
    assert_eq!(f.limit_secs, 1.25 * 400.0 - 40.0);
    assert_eq!(f.warning_secs, 1.05 * 400.0 - 40.0);
    // Never a limit below FIFO's own wait now: what FIFO would not have answered yet is
    // not late.
    let f = FairWait::new(&r, 100.0, 90.0, 1000.0);
    assert_eq!(f.limit_secs, 90.0);
    // FIFO's wait now counts when it is the longest yet.
    let f = FairWait::new(&r, 50.0, 80.0, 0.0);
    assert_eq!(f.fifo_longest_secs, 80.0);
    assert_eq!(f.limit_secs, 100.0);
}

#[test]
fn within_target_means_arrived_after_the_split() {
    let r = targets();
    let split = target_split(&r, "medium", NOW).unwrap();
    assert_eq!(split, NOW - 60_000);
    let f = fair(1e9, 1e9);
    let just_in = waiting("i", "medium", 59_999);
    assert!(just_in.enqueued_at_ms > split);
    assert_eq!(
        key(&just_in, &r, Some(&f), NOW).standing,
        Standing::WithinTarget
    );
    let at = waiting("i", "medium", 60_000);
    assert!(at.enqueued_at_ms <= split);
    assert_eq!(key(&at, &r, Some(&f), NOW).standing, Standing::Waiting);
    assert_eq!(target_split(&r, "low", NOW), None, "no target, no split");
}
