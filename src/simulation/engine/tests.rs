use std::collections::BTreeMap;

use super::*;
use crate::routing::rules::DEFAULT_TOML;
use crate::simulation::figures;

const S: i64 = 1000;

/// The shipped rules without rings (every agent eligible) and without wrap-up.
fn rules() -> Rules {
    let mut r = Rules::parse(DEFAULT_TOML, "test").expect("the default rules parse");
    r.rings.clear();
    r.offer.wrap_up_secs = 0;
    r
}

fn agent(id: &str) -> SimAgent {
    SimAgent {
        id: id.into(),
        level: 1,
        skills: Vec::new(),
        capacity: CapacityOverride::default(),
    }
}

fn call(id: &str, tier: &str, at: i64, handling: i64) -> Arrival {
    Arrival {
        id: id.into(),
        tier: tier.into(),
        channel: ChannelKind::Phone,
        topic: None,
        owner: None,
        at_ms: at,
        not_before_ms: None,
        counted: true,
        handling_ms: Some(handling),
        accept_ms: 0,
        patience_ms: None,
        recorded: Outcome::Answered(0),
    }
}

fn on_duty(agents: usize, at: i64) -> Vec<PresenceChange> {
    (0..agents)
        .map(|agent| PresenceChange {
            at_ms: at,
            agent,
            presence: Presence::Available,
        })
        .collect()
}

fn scenario(arrivals: Vec<Arrival>, agents: usize) -> Scenario {
    Scenario {
        from_ms: 0,
        to_ms: 100 * S,
        horizon_ms: 1000 * S,
        arrivals,
        agents: (0..agents).map(|i| agent(&format!("a{i}"))).collect(),
        presence: on_duty(agents, 0),
        held: Vec::new(),
        handling_in_order: Vec::new(),
    }
}

fn waits(run: &Run) -> Vec<Outcome> {
    run.outcomes.clone()
}

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn one_agent_serves_calls_in_turn() {
    let s = scenario(
        vec![call("c1", "low", 0, 10 * S), call("c2", "low", S, 10 * S)],
        1,
    );
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!(
        waits(&run),
        vec![Outcome::Answered(0), Outcome::Answered(9 * S)]
    );
    assert_eq!(run.offers, 2);
}

#[test]
fn the_high_tier_within_its_target_goes_first() {
    let arrivals = vec![
        call("busy", "low", 0, 10 * S),
        call("low", "low", S, 10 * S),
        call("high", "high", 2 * S, 10 * S),
    ];
    let s = scenario(arrivals, 1);
    let run = replay(&s, &rules(), LIMIT).unwrap();
    // The high-tier call, later but with a head start, is taken when the agent frees up.
    assert_eq!(run.outcomes[2], Outcome::Answered(8 * S));
    assert_eq!(run.outcomes[1], Outcome::Answered(19 * S));

    // First come, first served: the low one first.
    let run = replay(&s, &crate::simulation::fifo_rules(&rules()), LIMIT).unwrap();
    assert_eq!(run.outcomes[1], Outcome::Answered(9 * S));
    assert_eq!(run.outcomes[2], Outcome::Answered(18 * S));
}

#[test]
fn a_customer_who_gave_up_live_gives_up_again_when_kept_as_long() {
    let mut impatient = call("c2", "low", 0, 10 * S);
    impatient.patience_ms = Some(5 * S);
    let s = scenario(vec![call("c1", "low", 0, 10 * S), impatient], 1);
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!(run.outcomes[1], Outcome::Abandoned(5 * S));

    // With a second agent on duty it is answered at once instead.
    let mut s2 = s.clone();
    s2.agents.push(agent("a1"));
    s2.presence = on_duty(2, 0);
    let run = replay(&s2, &rules(), LIMIT).unwrap();
    assert_eq!(run.outcomes[1], Outcome::Answered(0));
}

#[test]
fn agents_take_work_only_while_on_duty_and_after_wrap_up() {
    let mut s = scenario(
        vec![call("c1", "low", 0, 10 * S), call("c2", "low", S, S)],
        1,
    );
    s.presence = vec![PresenceChange {
        at_ms: 30 * S,
        agent: 0,
        presence: Presence::Available,
    }];
    let mut r = rules();
    r.offer.wrap_up_secs = 5;
    let run = replay(&s, &r, LIMIT).unwrap();
    // On duty at 30 s; the first call ends at 40 s, wrap-up until 45 s.
    assert_eq!(run.outcomes[0], Outcome::Answered(30 * S));
    assert_eq!(run.outcomes[1], Outcome::Answered(44 * S));
}

#[test]
fn contacts_never_taken_are_unanswered_at_the_horizon() {
    let mut s = scenario(vec![call("c1", "low", 10 * S, S)], 1);
    s.presence.clear();
    s.horizon_ms = 200 * S;
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!(run.outcomes, vec![Outcome::Unanswered(190 * S)]);
    assert_eq!(run.staffed_ms, 0);
}

#[test]
fn work_held_when_the_window_opens_keeps_its_agent_busy() {
    let mut s = scenario(vec![call("c1", "low", 0, S)], 1);
    s.held.push(Held {
        agent: 0,
        channel: ChannelKind::Phone,
        until_ms: Some(20 * S),
    });
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!(run.outcomes[0], Outcome::Answered(20 * S));
}

#[test]
fn rings_open_on_their_timetable_and_cost_idle_time() {
    let mut r = rules();
    r.rings = Rules::parse(DEFAULT_TOML, "test").unwrap().rings;
    // The default plan for the high tier: owner (10 s), level 3 (5 s), everyone. With a
    // level-3 agent logged in but busy, a level-1 agent waits for the level-3 ring's
    // timeout (there is no owner ring to pass: no owner): 5 s, idle all the while.
    let mut s = scenario(vec![call("c1", "high", 0, S)], 2);
    s.agents[1].level = 3;
    s.held.push(Held {
        agent: 1,
        channel: ChannelKind::Phone,
        until_ms: Some(60 * S),
    });
    let run = replay(&s, &r, LIMIT).unwrap();
    assert_eq!(run.outcomes[0], Outcome::Answered(5 * S));
    assert_eq!(run.idle_while_waiting_ms, 5 * S);
    // With no level-3 agent logged in, the ring could hold nobody: passed over at once.
    s.presence.retain(|p| p.agent != 1);
    let run = replay(&s, &r, LIMIT).unwrap();
    assert_eq!(run.outcomes[0], Outcome::Answered(0));
    assert_eq!(run.idle_while_waiting_ms, 0);
}

#[test]
fn occupancy_is_busy_time_over_staffed_time() {
    let mut s = scenario(vec![call("c1", "low", 0, 50 * S)], 1);
    s.horizon_ms = 100 * S;
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!((run.busy_ms, run.staffed_ms), (50 * S, 100 * S));
    let report = figures::estimate(&s.arrivals, &run, &BTreeMap::new());
    assert_eq!(report.occupancy, Some(0.5));
}

#[test]
fn a_long_replay_stops_at_its_time_limit() {
    let arrivals: Vec<Arrival> = (0..5000)
        .map(|i| call(&format!("c{i}"), "low", i * S, 10 * S))
        .collect();
    let mut s = scenario(arrivals, 1);
    s.horizon_ms = 100_000 * S;
    assert_eq!(
        replay(&s, &rules(), Duration::ZERO),
        Err(SimError::TimeLimit(0))
    );
}

#[test]
fn figures_count_service_level_waits_and_estimated_abandonment() {
    let mut arrivals: Vec<Arrival> = (0..4)
        .map(|i| call(&format!("c{i}"), "low", 0, S))
        .collect();
    // Live: two answered at once, one after 10 s, one gave up after 20 s.
    arrivals[0].recorded = Outcome::Answered(0);
    arrivals[1].recorded = Outcome::Answered(0);
    arrivals[2].recorded = Outcome::Answered(10 * S);
    arrivals[3].recorded = Outcome::Abandoned(20 * S);
    let targets = BTreeMap::from([("low".to_string(), 5 * S)]);
    let live = figures::recorded(&arrivals, &targets);
    assert_eq!(live.overall.contacts, 4);
    assert_eq!(live.overall.answered, 3);
    assert_eq!(live.overall.abandoned, 1.0);
    assert_eq!(live.overall.service_level, Some(0.5));
    assert_eq!(live.overall.longest_wait_secs, Some(20.0));

    // A replay keeps the third waiting 30 s: past everyone's recorded patience (the one
    // who gave up did so at 20 s, and all others at risk then were answered earlier),
    // so it is counted as certainly given up.
    let run = Run {
        outcomes: vec![
            Outcome::Answered(0),
            Outcome::Answered(0),
            Outcome::Answered(30 * S),
            Outcome::Abandoned(20 * S),
        ],
        staffed_ms: 0,
        busy_ms: 0,
        idle_while_waiting_ms: 0,
        offers: 3,
        held_for_opening: 0,
    };
    let sim = figures::estimate(&arrivals, &run, &targets);
    assert_eq!(sim.overall.abandoned, 2.0);
    assert_eq!(sim.overall.mean_wait_secs, Some(10.0));
    assert_eq!(sim.overall.p95_wait_secs, Some(30.0));
    assert_eq!(sim.occupancy, None);
}

#[test]
fn a_replay_past_the_time_limit_says_the_configured_limit() {
    let arrivals: Vec<Arrival> = (0..5000)
        .map(|i| call(&format!("c{i}"), "low", i * S, 10 * S))
        .collect();
    let mut s = scenario(arrivals, 1);
    s.horizon_ms = 100_000 * S;
    // Most of the limit was spent already (on the active rules): the candidate stops at
    // once, and says the limit configured, 20 s, not the 0 s that were left.
    let started = Instant::now() - Duration::from_secs(25);
    let limit = Duration::from_secs(20);
    let refused = crate::simulation::replay_within(&s, &rules(), started, limit);
    assert_eq!(refused.err(), Some(SimError::TimeLimit(20)));
    assert_eq!(
        SimError::TimeLimit(20).to_string(),
        "the simulation ran past its limit of 20 s; replay a shorter window"
    );
}

/// The test rules with a calendar that opens a minute into the window (1970-01-01, a
/// Thursday, at 00:01 UTC) serving every contact.
fn opening_a_minute_in() -> Rules {
    let doc = format!(
        "{DEFAULT_TOML}\n[calendars.desk]\ntime_zone = \"UTC\"\nthursday = [\"00:01-24:00\"]\n\n[[hours]]\ncalendar = \"desk\"\n"
    );
    let mut r = Rules::parse(&doc, "test").expect("the rules with hours parse");
    r.rings.clear();
    r.offer.wrap_up_secs = 0;
    r
}

#[test]
fn a_contact_arriving_closed_waits_for_the_opening_under_the_rules_replayed() {
    let s = scenario(
        vec![
            call("night", "low", 0, 10 * S),
            call("day", "low", 65 * S, 10 * S),
        ],
        1,
    );
    // Open around the clock: both are taken as they come.
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!(
        run.outcomes,
        vec![Outcome::Answered(0), Outcome::Answered(0)]
    );
    assert_eq!(run.held_for_opening, 0);
    // Opening at 00:01: the first waits for it, and its wait counts from then; the agent,
    // busy with it until 70 s, takes the second 5 s late.
    let run = replay(&s, &opening_a_minute_in(), LIMIT).unwrap();
    assert_eq!(
        run.outcomes,
        vec![Outcome::Answered(0), Outcome::Answered(5 * S)]
    );
    assert_eq!(run.held_for_opening, 1);
    // A caller who gave up before the opening never waited in the queue.
    let mut gone = call("gone", "low", 0, 10 * S);
    gone.patience_ms = Some(30 * S);
    let run = replay(&scenario(vec![gone], 1), &opening_a_minute_in(), LIMIT).unwrap();
    assert_eq!(run.outcomes, vec![Outcome::Abandoned(0)]);
}

#[test]
fn a_callback_booked_for_a_time_is_not_routed_before_it() {
    let mut callback = call("callback", "high", 0, 10 * S);
    callback.not_before_ms = Some(30 * S);
    let s = scenario(vec![callback, call("later", "low", 10 * S, 10 * S)], 1);
    let run = replay(&s, &rules(), LIMIT).unwrap();
    // The later contact is taken at once; the callback at its time, its wait from then.
    assert_eq!(
        run.outcomes,
        vec![Outcome::Answered(0), Outcome::Answered(0)]
    );
    let mut s = s;
    s.arrivals[1].handling_ms = Some(40 * S);
    let run = replay(&s, &rules(), LIMIT).unwrap();
    assert_eq!(
        run.outcomes,
        vec![Outcome::Answered(20 * S), Outcome::Answered(0)]
    );
}
