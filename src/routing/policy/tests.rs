//! The policy, case by case, against the head-start rules shipped before the target order
//! (`config/routing-head-start.toml`): high: owner 15 s → level ≥ 3 for 10 s → everyone;
//! head starts high 300 s, medium 60 s, low 0 s; maximum waits high 20 s, medium 180 s,
//! low 600 s; complaints to the `complaints` skill; other topics to agents with that
//! skill. Eligibility, capacity and selection are the same under either order; the
//! target order's own cases are in `order/tests.rs`, and the randomized comparison with a
//! reference that sorts everything runs under both.

use super::*;
use crate::routing::order;
use crate::routing::rules::{Rules, DEFAULT_TOML};

const NOW: i64 = 1_800_000_000_000;

/// The head-start rules.
const HEAD_START_TOML: &str = include_str!("../../../config/routing-head-start.toml");

fn rules() -> Rules {
    Rules::parse(HEAD_START_TOML, "head start").unwrap()
}

fn agent(id: &str, level: u8, idle_secs: i64) -> AgentView {
    AgentView {
        id: id.into(),
        level,
        skills: Vec::new(),
        presence: Presence::Available,
        has_pending_offer: false,
        wrap_up_until_ms: None,
        load: Load::default(),
        capacity: rules().capacity,
        idle_since_ms: NOW - idle_secs * 1000,
        last_offered_at_ms: 0,
    }
}

fn waiting(id: &str, tier: &str, channel: ChannelKind, waited_secs: i64) -> WaitingInteraction {
    WaitingInteraction {
        id: id.into(),
        tier: tier.into(),
        channel,
        topic: None,
        owner: None,
        enqueued_at_ms: NOW - waited_secs * 1000,
        excluded: Vec::new(),
    }
}

/// (interaction, agent) pairs decided.
fn offers(w: &[WaitingInteraction], a: &[AgentView], rules: &Rules) -> Vec<(String, String)> {
    route(w, a, rules, NOW)
        .into_iter()
        .map(|d| (d.interaction_id, d.agent_id))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(i, a)| (i.to_string(), a.to_string()))
        .collect()
}

/// (what, waiting, agents, expected offers).
type Case = (
    &'static str,
    Vec<WaitingInteraction>,
    Vec<AgentView>,
    Vec<(String, String)>,
);

#[test]
fn eligibility_widens_ring_by_ring() {
    let r = rules();
    let junior = agent("junior", 1, 600);
    let senior = agent("senior", 3, 10);
    let mut busy_senior = senior.clone();
    busy_senior.load.chat = 3;
    let mut away_senior = senior.clone();
    away_senior.presence = Presence::Away;
    let mut gone_senior = senior.clone();
    gone_senior.presence = Presence::Offline;
    let mut am = agent("am", 1, 1);
    am.id = "am".into();
    let with_owner = |waited| WaitingInteraction {
        owner: Some("am".into()),
        ..waiting("h", "high", ChannelKind::Chat, waited)
    };
    let mut busy_am = am.clone();
    busy_am.load.chat = 3;

    let cases: Vec<Case> = vec![
        (
            "no owner: the senior ring is first, even with a longer-idle junior",
            vec![waiting("h", "high", ChannelKind::Chat, 1)],
            vec![junior.clone(), senior.clone()],
            pairs(&[("h", "senior")]),
        ),
        (
            "senior ring busy: nobody until it times out",
            vec![waiting("h", "high", ChannelKind::Chat, 9)],
            vec![junior.clone(), busy_senior.clone()],
            pairs(&[]),
        ),
        (
            "after the senior ring's 10 s, everyone",
            vec![waiting("h", "high", ChannelKind::Chat, 11)],
            vec![junior.clone(), busy_senior.clone()],
            pairs(&[("h", "junior")]),
        ),
        (
            "the owner first, over an idler senior",
            vec![with_owner(5)],
            vec![senior.clone(), am.clone()],
            pairs(&[("h", "am")]),
        ),
        (
            "owner busy: held for the owner until 15 s",
            vec![with_owner(14)],
            vec![senior.clone(), busy_am.clone()],
            pairs(&[]),
        ),
        (
            "owner busy past 15 s: the senior ring",
            vec![with_owner(16)],
            vec![junior.clone(), senior.clone(), busy_am.clone()],
            pairs(&[("h", "senior")]),
        ),
        (
            "an open inner ring is preferred to an outer one",
            vec![with_owner(30)],
            vec![junior.clone(), senior.clone(), am.clone()],
            pairs(&[("h", "am")]),
        ),
        (
            "no senior logged in: the senior ring is passed over at once",
            vec![waiting("h", "high", ChannelKind::Chat, 1)],
            vec![junior.clone()],
            pairs(&[("h", "junior")]),
        ),
        (
            "a senior who has logged out holds nothing",
            vec![waiting("h", "high", ChannelKind::Chat, 1)],
            vec![junior.clone(), gone_senior],
            pairs(&[("h", "junior")]),
        ),
        (
            "a senior logged in but away still holds it for the ring's timeout",
            vec![waiting("h", "high", ChannelKind::Chat, 1)],
            vec![junior.clone(), away_senior],
            pairs(&[]),
        ),
        (
            "the owner not logged in: straight to the senior ring",
            vec![with_owner(1)],
            vec![junior.clone(), senior.clone()],
            pairs(&[("h", "senior")]),
        ),
        (
            "neither owner nor senior logged in: to everyone at once",
            vec![with_owner(1)],
            vec![junior.clone()],
            pairs(&[("h", "junior")]),
        ),
    ];
    for (what, w, a, expected) in cases {
        assert_eq!(offers(&w, &a, &r), expected, "{what}");
    }
}

#[test]
fn order_follows_head_starts_and_maximum_waits() {
    let r = rules();
    let one = vec![agent("a", 3, 60)];
    let cases: Vec<(&str, Vec<WaitingInteraction>, &str)> = vec![
        (
            "a high contact's head start puts it before a low one that waited longer",
            vec![
                waiting("low", "low", ChannelKind::Email, 100),
                waiting("high", "high", ChannelKind::Email, 10),
            ],
            "high",
        ),
        (
            "a low contact past its maximum wait goes before a high one within its own",
            vec![
                waiting("low", "low", ChannelKind::Email, 601),
                waiting("high", "high", ChannelKind::Email, 5),
            ],
            "low",
        ),
        (
            "within a tier, first come first served",
            vec![
                waiting("second", "medium", ChannelKind::Email, 30),
                waiting("first", "medium", ChannelKind::Email, 31),
            ],
            "first",
        ),
        (
            "a medium contact needs 60 s more wait to pass a low one",
            vec![
                waiting("low", "low", ChannelKind::Email, 200),
                waiting("medium", "medium", ChannelKind::Email, 139),
            ],
            "low",
        ),
    ];
    for (what, w, first) in cases {
        let got = offers(&w, &one, &r);
        assert_eq!(got.len(), 1, "{what}");
        assert_eq!(got[0].0, first, "{what}");
    }
}

#[test]
fn capacity_and_calls_limit_what_an_agent_takes() {
    let r = rules();
    let mut chatting = agent("a", 3, 60);
    chatting.load.chat = 3;
    let mut on_call = agent("a", 3, 60);
    on_call.load.phone = 1;
    let mut own_capacity = agent("a", 3, 60);
    own_capacity.capacity.chat = 5;
    own_capacity.load.chat = 3;
    let cases = [
        (
            "three chats: no fourth",
            chatting.clone(),
            ChannelKind::Chat,
            false,
        ),
        (
            "three chats: an email still fits",
            chatting,
            ChannelKind::Email,
            true,
        ),
        (
            "on a call: no email",
            on_call.clone(),
            ChannelKind::Email,
            false,
        ),
        (
            "on a call: no second call",
            on_call,
            ChannelKind::Phone,
            false,
        ),
        (
            "an agent's own capacity counts",
            own_capacity,
            ChannelKind::Chat,
            true,
        ),
    ];
    for (what, a, channel, offered) in cases {
        let got = offers(&[waiting("i", "low", channel, 5)], &[a], &r);
        assert_eq!(!got.is_empty(), offered, "{what}");
    }
    let mut calls_do_not_block = r.clone();
    calls_do_not_block.capacity.calls_block_other_work = false;
    let mut on_call = agent("a", 3, 60);
    on_call.load.phone = 1;
    assert_eq!(
        offers(
            &[waiting("i", "low", ChannelKind::Email, 5)],
            &[on_call],
            &calls_do_not_block
        )
        .len(),
        1
    );
}

#[test]
fn only_ready_agents_get_offers_and_each_at_most_one() {
    let r = rules();
    let mut away = agent("away", 3, 900);
    away.presence = Presence::Away;
    let mut offline = agent("offline", 3, 900);
    offline.presence = Presence::Offline;
    let mut offered = agent("offered", 3, 900);
    offered.has_pending_offer = true;
    let mut wrapping = agent("wrapping", 3, 900);
    wrapping.wrap_up_until_ms = Some(NOW + 10_000);
    let mut wrapped = agent("wrapped", 3, 5);
    wrapped.wrap_up_until_ms = Some(NOW - 1);
    let w = vec![
        waiting("x", "low", ChannelKind::Email, 50),
        waiting("y", "low", ChannelKind::Email, 40),
    ];
    assert_eq!(
        offers(&w, &[away, offline, offered, wrapping, wrapped], &r),
        pairs(&[("x", "wrapped")])
    );
}

#[test]
fn an_agent_who_declined_is_not_offered_the_same_again() {
    let r = rules();
    let mut w = waiting("x", "low", ChannelKind::Chat, 50);
    w.excluded = vec!["a".into()];
    assert_eq!(
        offers(&[w], &[agent("a", 3, 900), agent("b", 1, 5)], &r),
        pairs(&[("x", "b")])
    );
}

#[test]
fn topics_go_to_agents_with_the_skill_first() {
    let r = rules();
    let mut billing = agent("billing", 1, 5);
    billing.skills = vec!["billing".into()];
    let mut complaints = agent("complaints", 1, 5);
    complaints.skills = vec!["complaints".into()];
    let other = agent("other", 3, 900);
    let topic = |t: &str, waited| WaitingInteraction {
        topic: Some(t.into()),
        ..waiting("i", "medium", ChannelKind::Email, waited)
    };
    let mut shipping = agent("shipping", 1, 5);
    shipping.skills = vec!["shipping".into()];
    shipping.load.email = 5;
    let all = vec![billing, complaints, other];
    assert_eq!(
        offers(&[topic("billing", 1)], &all, &r),
        pairs(&[("i", "billing")])
    );
    assert_eq!(
        offers(&[topic("complaint", 1)], &all, &r),
        pairs(&[("i", "complaints")])
    );
    assert_eq!(
        offers(&[topic("shipping", 1)], &all, &r),
        pairs(&[("i", "other")]),
        "nobody logged in has the skill: the skill ring is passed over at once"
    );
    let with_busy_shipping = [all.clone(), vec![shipping]].concat();
    assert_eq!(
        offers(&[topic("shipping", 1)], &with_busy_shipping, &r),
        pairs(&[]),
        "an agent with the skill is logged in but busy: held for 30 s"
    );
    assert_eq!(
        offers(&[topic("shipping", 31)], &with_busy_shipping, &r),
        pairs(&[("i", "other")])
    );
}

#[test]
fn each_strategy_picks_its_agent() {
    let mut r = rules();
    let mut a = agent("a", 3, 900);
    a.load.email = 3;
    a.last_offered_at_ms = NOW - 1_000;
    let mut b = agent("b", 3, 100);
    b.last_offered_at_ms = NOW - 500_000;
    let mut c = agent("c", 3, 300);
    c.load.email = 1;
    c.last_offered_at_ms = NOW - 90_000;
    let w = [waiting("i", "low", ChannelKind::Email, 5)];
    for (strategy, expected) in [
        (Strategy::LongestIdle, "a"),
        (Strategy::LeastBusy, "b"),
        (Strategy::RoundRobin, "b"),
    ] {
        r.selection.strategy = strategy;
        assert_eq!(
            offers(&w, &[a.clone(), b.clone(), c.clone()], &r),
            pairs(&[("i", expected)]),
            "{strategy:?}"
        );
    }
}

#[test]
fn every_decision_says_why() {
    let r = rules();
    let mut away = agent("away", 3, 900);
    away.presence = Presence::Away;
    let mut full = agent("full", 3, 900);
    full.load.chat = 3;
    let junior = agent("junior", 1, 900);
    let decisions = route(
        &[waiting("h", "high", ChannelKind::Chat, 2)],
        &[
            away,
            full,
            junior,
            agent("senior", 4, 30),
            agent("senior2", 3, 20),
        ],
        &r,
        NOW,
    );
    let d = &decisions[0];
    assert_eq!(
        (d.agent_id.as_str(), d.ring, d.rings_open, d.overdue),
        ("senior", 0, 1, false)
    );
    assert_eq!(d.score_secs, 302.0);
    assert_eq!(
        (d.order, d.standing, d.waited_secs, d.target_secs),
        (Order::HeadStart, Standing::Waiting, 2.0, None)
    );
    let why: BTreeMap<&str, &str> = d
        .considered
        .iter()
        .map(|c| (c.agent_id.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(why["senior"], "ring 0, longest idle (30 s)");
    assert_eq!(why["senior2"], "ring 0, a longer-idle agent comes first");
    assert_eq!(why["away"], "away");
    assert_eq!(why["full"], "at capacity for chat (3/3)");
    assert_eq!(
        d.others.get("not in an open ring"),
        Some(&1),
        "the junior is counted, not listed"
    );
}

#[test]
fn a_decision_names_the_rings_it_passed_over_and_why() {
    let r = rules();
    let with_owner = WaitingInteraction {
        owner: Some("gone".into()),
        ..waiting("h", "high", ChannelKind::Chat, 1)
    };
    let d = &route(
        &[with_owner, waiting("n", "high", ChannelKind::Email, 1)],
        &[agent("junior", 1, 60), agent("junior2", 1, 30)],
        &r,
        NOW,
    );
    let why = |id: &str| -> Vec<(usize, &str)> {
        d.iter()
            .find(|d| d.interaction_id == id)
            .unwrap()
            .passed_over
            .iter()
            .map(|p| (p.step, p.reason))
            .collect()
    };
    assert_eq!(
        why("h"),
        [
            (0, "no agent of this ring is logged in"),
            (1, "no agent of this ring is logged in")
        ],
        "the owner and every senior are logged out"
    );
    assert_eq!(
        why("n"),
        [
            (0, "the customer has no account manager"),
            (1, "no agent of this ring is logged in")
        ]
    );
    let data = serde_json::to_value(&d[0]).unwrap();
    assert_eq!(data["passed_over"][0]["step"], 0, "{data}");
}

#[test]
fn every_decision_under_the_target_order_says_where_it_stood() {
    let r = Rules::parse(DEFAULT_TOML, "default").unwrap();
    let decisions = route(
        &[
            waiting("late", "medium", ChannelKind::Email, 90),
            waiting("fresh", "medium", ChannelKind::Email, 10),
        ],
        &[agent("a", 1, 30)],
        &r,
        NOW,
    );
    // Within its 60 s target it goes before the one past it, though younger.
    let d = &decisions[0];
    assert_eq!(d.interaction_id, "fresh");
    assert_eq!(
        (
            d.order,
            d.standing,
            d.waited_secs,
            d.target_secs,
            d.score_secs
        ),
        (
            Order::Targets,
            Standing::WithinTarget,
            10.0,
            Some(60),
            -50.0
        )
    );
    let fair = d.fair_wait.expect("the target order records the fair wait");
    assert_eq!(
        fair.fifo_now_secs, 90.0,
        "FIFO would answer the oldest next"
    );
    let data = serde_json::to_value(d).unwrap();
    assert_eq!(data["standing"], "within_target");
    assert_eq!(data["order"], "targets");
}

#[test]
fn rings_open_one_after_another() {
    let r = rules();
    let rings: Vec<&Ring> = r.rings_for("high", None).iter().collect();
    let rings = rings.as_slice();
    assert_eq!(rings_open(rings, 0), 1);
    assert_eq!(rings_open(rings, 14_999), 1);
    assert_eq!(rings_open(rings, 15_000), 2);
    assert_eq!(rings_open(rings, 25_000), 3);
    assert_eq!(rings_open(&rings[2..], 0), 1);
}

#[test]
fn nobody_free_means_nothing_to_decide() {
    let mut a = agent("a", 3, 60);
    a.presence = Presence::Offline;
    assert!(route(
        &[waiting("i", "low", ChannelKind::Chat, 900)],
        &[a],
        &rules(),
        NOW
    )
    .is_empty());
    assert!(route(&[], &[agent("a", 3, 60)], &rules(), NOW).is_empty());
}

/// The policy without the index's runs: every interaction keyed and sorted, each tried
/// in turn (the fair wait read from the same index).
fn reference(
    index: &WaitingIndex,
    waiting: &[WaitingInteraction],
    agents: &[AgentView],
    rules: &Rules,
    now: i64,
) -> Vec<(String, String)> {
    let mut free: Vec<&AgentView> = agents.iter().filter(|a| ready(a, now)).collect();
    let staffed = Staffed::new(agents);
    let fair = |w: &WaitingInteraction| index.fair_wait(w.channel, rules, now);
    let mut order: Vec<(order::Key, &WaitingInteraction)> = waiting
        .iter()
        .map(|w| (order::key(w, rules, fair(w).as_ref(), now), w))
        .collect();
    order.sort_by(|(ka, a), (kb, b)| kb.cmp(b, ka, a));
    let mut out = Vec::new();
    for (k, w) in order {
        let on_channel: Vec<&AgentView> = free
            .iter()
            .copied()
            .filter(|a| has_room(a, w.channel, rules))
            .collect();
        let f = fair(w);
        if let Some(d) = decide_one(w, &k, f.as_ref(), &on_channel, agents, &staffed, rules, now) {
            free.retain(|a| a.id != d.agent_id);
            out.push((d.interaction_id, d.agent_id));
        }
    }
    out
}

#[test]
fn the_index_decides_exactly_as_keying_every_interaction_would() {
    let head_start = rules();
    let targets = Rules::parse(DEFAULT_TOML, "default").unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut seen: std::collections::BTreeSet<Standing> = Default::default();
    for round in 0..600 {
        let r = if round % 2 == 0 {
            &head_start
        } else {
            &targets
        };
        let agents: Vec<AgentView> = (0..next(6) + 1)
            .map(|i| {
                let mut a = agent(&format!("a{i}"), (next(5) + 1) as u8, next(900) as i64);
                a.skills = ["billing", "complaints", "shipping"]
                    .iter()
                    .filter(|_| next(2) == 0)
                    .map(|s| s.to_string())
                    .collect();
                a.load.chat = next(4) as u32;
                a.load.phone = u32::from(next(5) == 0);
                a.presence = if next(6) == 0 {
                    Presence::Away
                } else {
                    Presence::Available
                };
                a
            })
            .collect();
        let waiting: Vec<WaitingInteraction> = (0..next(40))
            .map(|i| {
                let tier = ["high", "medium", "low"][next(3) as usize];
                let channel =
                    [ChannelKind::Chat, ChannelKind::Email, ChannelKind::Phone][next(3) as usize];
                let mut w = waiting(&format!("w{i}"), tier, channel, next(700) as i64);
                w.topic = [None, Some("billing"), Some("complaint")][next(3) as usize]
                    .map(str::to_string);
                w.owner = if next(4) == 0 {
                    Some(format!("a{}", next(6)))
                } else {
                    None
                };
                if next(5) == 0 {
                    w.excluded = vec![format!("a{}", next(6))];
                }
                w
            })
            .collect();
        let mut index = WaitingIndex::default();
        // Contacts already answered, newer than those waiting: FIFO would be further on,
        // so the old ones waiting are behind it and near or past the fair limit.
        let answered = next(30) as i64;
        for i in 0..answered {
            let mut w = self::waiting(&format!("done{i}"), "low", ChannelKind::Chat, i * 10);
            w.channel = [ChannelKind::Chat, ChannelKind::Email, ChannelKind::Phone][i as usize % 3];
            index.insert(w);
        }
        index.observe(r, NOW - 60_000);
        for i in 0..answered {
            index.remove(&format!("done{i}"));
        }
        for w in &waiting {
            index.insert(w.clone());
        }
        index.observe(r, NOW);
        for w in &waiting {
            seen.insert(index.key_of(w, r, NOW).standing);
        }
        assert_eq!(
            super::super::index::route(&index, &agents, r, NOW)
                .into_iter()
                .map(|d| (d.interaction_id, d.agent_id))
                .collect::<Vec<_>>(),
            reference(&index, &waiting, &agents, r, NOW),
            "round {round}"
        );
    }
    assert_eq!(
        seen.len(),
        6,
        "every standing of both orders was exercised: {seen:?}"
    );
}
