//! Routing end to end: agents on real websockets, contacts over the API, the shipped
//! routing rules with their timeouts shortened so the tests run in seconds.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{
    at_ms, event, events, send, spawn_app_with, start_process_with, Backend, TestApp, TOKEN,
};

/// The shipped rules with short timeouts: offers `offer_secs`, rings 2 s, wrap-up 1 s,
/// two misses set an agent away.
fn test_rules(offer_secs: u64) -> String {
    let shipped = include_str!("../../config/routing.toml");
    let replaced = shipped
        .replace(
            "timeout_secs = 20\n",
            &format!("timeout_secs = {offer_secs}\n"),
        )
        .replace("misses_before_away = 3", "misses_before_away = 2")
        .replace("wrap_up_secs = 30", "wrap_up_secs = 1")
        .replace(
            "{ owner = true, timeout_secs = 10 }",
            "{ owner = true, timeout_secs = 2 }",
        )
        .replace(
            "{ min_level = 3, timeout_secs = 5 }",
            "{ min_level = 3, timeout_secs = 2 }",
        )
        .replace(
            "{ owner = true, timeout_secs = 20 }",
            "{ owner = true, timeout_secs = 2 }",
        )
        .replace(
            "{ topic_skill = true, timeout_secs = 20 }",
            "{ topic_skill = true, timeout_secs = 2 }",
        );
    assert_ne!(replaced, shipped);
    replaced
}

/// A server with the test rules; the directory holding them lives as long as the test.
async fn app_with_rules(backend: Backend, offer_secs: u64) -> (TestApp, tempfile::TempDir) {
    app_with_rules_text(backend, test_rules(offer_secs)).await
}

/// A server with these rules.
async fn app_with_rules_text(backend: Backend, rules: String) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, rules).unwrap();
    let app = spawn_app_with(backend, |s| {
        s.routing.rules_file = path.display().to_string()
    })
    .await;
    (app, dir)
}

/// Two agents logged in and available, the first idle longer (so offered first).
async fn two_available(
    app: &TestApp,
    first: Value,
    second: Value,
) -> ((String, Desktop), (String, Desktop)) {
    let (first_id, first_token) = create_agent(app, first).await;
    let (second_id, second_token) = create_agent(app, second).await;
    let first = Desktop::available(&app.base, &first_token).await;
    // Idle longer is a matter of time: the second becomes available a little later.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = Desktop::available(&app.base, &second_token).await;
    ((first_id, first), (second_id, second))
}

/// A customer with an explicit tier (and owner); answers its id.
async fn customer(app: &TestApp, email: &str, tier: &str, owner: Option<&str>) -> String {
    let (status, c) = app
        .post(
            "/api/customers",
            &json!({ "tier": tier, "identities": [{ "kind": "email", "value": email }] }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    if let Some(owner) = owner {
        let (status, _) = app
            .put(&format!("/api/customers/{id}"), &json!({ "owner": owner }))
            .await;
        assert_eq!(status, 200);
    }
    id
}

async fn contact(app: &TestApp, email: &str, subject: &str) -> String {
    let i = app
        .contact(json!({ "customer": { "email": email }, "subject": subject }))
        .await;
    i["id"].as_str().unwrap().to_string()
}

fn kinds(history: &Value) -> Vec<String> {
    history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

both_backends!(
    a_high_tier_contact_goes_to_the_senior_ring_first_then_widens,
    an_offer_that_is_declined_or_times_out_goes_to_the_next_agent,
    a_customer_made_high_tier_while_waiting_is_routed_as_high_tier_from_then_on,
);

async fn a_high_tier_contact_goes_to_the_senior_ring_first_then_widens(backend: Backend) {
    let (app, _rules) = app_with_rules(backend, 10).await;
    let (junior_id, junior_token) =
        create_agent(&app, json!({ "name": "Junior", "level": 1 })).await;
    let (senior_id, senior_token) =
        create_agent(&app, json!({ "name": "Senior", "level": 3 })).await;
    let mut junior = Desktop::available(&app.base, &junior_token).await;
    let mut senior = Desktop::available(&app.base, &senior_token).await;
    customer(&app, "vip@example.com", "high", None).await;

    let id = contact(&app, "vip@example.com", "Order 7 is late").await;
    let offer = senior.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], id.as_str());
    assert_eq!(offer["interaction"]["tier"], "high");
    assert_eq!(offer["interaction"]["subject"], "Order 7 is late");
    assert!(
        !offer["interaction"]["history"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the offer carries recent history"
    );

    // The senior passes; the everyone ring opens 2 s after arrival and the junior gets it.
    senior
        .send(json!({ "type": "decline", "offer_id": offer["offer_id"], "reason": "busy" }))
        .await;
    assert_eq!(senior.expect("offer_ended").await["reason"], "declined");
    assert_eq!(junior.take_offer().await, id);

    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["state"], "assigned");
    let k = kinds(&i);
    assert_eq!(
        &k[k.len() - 4..],
        ["offered", "offer_declined", "offered", "assigned"],
        "{k:?}"
    );
    let first_offer = event(&i, "offered");
    let decision = &first_offer["data"]["decision"];
    assert_eq!(decision["agent_id"], senior_id.as_str());
    assert_eq!(decision["tier"], "high");
    assert_eq!(decision["rings_open"], 1);
    // Why it went first: the target order, within the high tier's urgent 20 s target.
    assert_eq!(decision["order"], "targets", "{decision}");
    assert_eq!(decision["standing"], "urgent_within_target", "{decision}");
    assert_eq!(decision["target_secs"], 20, "{decision}");
    assert!(
        decision["waited_secs"].as_f64().unwrap() < 20.0,
        "{decision}"
    );
    assert!(
        decision["fair_wait"]["limit_secs"].is_number(),
        "{decision}"
    );
    assert_eq!(first_offer["data"]["rule_version"], 1);
    assert_eq!(
        decision["others"]["not in an open ring"], 1,
        "the junior was not in the senior ring: {decision}"
    );
    // The junior's offer came when the everyone ring opened, by the server's clock: not
    // before its 2 s, and long before the senior's offer would have timed out.
    let second = events(&i, "offered")[1];
    let d = &second["data"]["decision"];
    assert_eq!(d["agent_id"], junior_id.as_str(), "{d}");
    assert!(d["rings_open"].as_u64().unwrap() > 1, "{d}");
    let after = at_ms(&second["at"]) - at_ms(&i["created_at"]);
    assert!(
        (2000..10_000).contains(&after),
        "offered {after} ms after arrival"
    );
    app.stop().await;
}

async fn an_offer_that_is_declined_or_times_out_goes_to_the_next_agent(backend: Backend) {
    let (app, _rules) = app_with_rules(backend, 1).await;
    let ((_, mut a), (_, mut b)) =
        two_available(&app, json!({ "name": "A" }), json!({ "name": "B" })).await;

    // A has been idle longer, so A is offered first; A lets it lapse.
    let id = contact(&app, "someone@example.com", "Hello").await;
    let offer = a.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], id.as_str());
    assert_eq!(a.expect("offer_ended").await["reason"], "timed_out");
    assert_eq!(b.take_offer().await, id);

    // Two misses in a row set an agent away.
    let second = contact(&app, "other@example.com", "Hi").await;
    let offer = a.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], second.as_str());
    a.send(json!({ "type": "decline", "offer_id": offer["offer_id"] }))
        .await;
    assert_eq!(a.expect("offer_ended").await["reason"], "declined");
    let away = a.expect("presence").await;
    assert_eq!(away["status"], "away", "{away}");
    // Accepting an offer that is gone is answered, not obeyed.
    a.send(json!({ "type": "accept", "offer_id": offer["offer_id"] }))
        .await;
    assert_eq!(a.expect("error").await["code"], "not_your_offer");
    assert_eq!(b.take_offer().await, second);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_offered_first_and_others_after_the_owner_timeout() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 10).await;
    let ((_, mut other), (am_id, mut am)) = two_available(
        &app,
        json!({ "name": "Other", "level": 5 }),
        json!({ "name": "Account manager" }),
    )
    .await;
    customer(&app, "owned@example.com", "low", Some(&am_id)).await;

    // The owner gets it though the other agent has been idle longer.
    let first = contact(&app, "owned@example.com", "Renewal").await;
    assert_eq!(am.take_offer().await, first);

    // The owner away: the contact waits for the owner's 2 s, then goes to the other agent.
    am.send(json!({ "type": "presence", "status": "away", "reason": "lunch" }))
        .await;
    am.expect("presence").await;
    let second = contact(&app, "owned@example.com", "Invoice").await;
    // The other agent's first offer is this one (not the first contact, which the owner
    // holds), made once the owner's 2 s had passed, by the server's clock.
    assert_eq!(other.take_offer().await, second);
    let (_, i) = app.get(&format!("/api/interactions/{second}")).await;
    let held = at_ms(&event(&i, "offered")["at"]) - at_ms(&i["created_at"]);
    assert!(
        held >= 2000,
        "held for the owner first: offered after {held} ms"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_respected_and_wrap_up_comes_before_new_work() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 10).await;
    let (_, token) = create_agent(&app, json!({ "name": "Solo", "capacity": { "api": 1 } })).await;
    let mut solo = Desktop::available(&app.base, &token).await;
    let first = contact(&app, "one@example.com", "1").await;
    let second = contact(&app, "two@example.com", "2").await;
    assert_eq!(solo.take_offer().await, first);

    solo.send(json!({ "type": "complete", "interaction_id": first, "disposition": "resolved", "notes": "refunded" })).await;
    let done = solo.expect("completed").await;
    assert!(done["wrap_up_until"].is_string());
    assert_eq!(solo.take_offer().await, second);
    // By the server's clock: the second was offered only after the first was completed
    // and its wrap-up of 1 s had passed, never beside it.
    let (_, one) = app.get(&format!("/api/interactions/{first}")).await;
    let (_, two) = app.get(&format!("/api/interactions/{second}")).await;
    let offers = events(&two, "offered");
    assert_eq!(offers.len(), 1, "{two}");
    let gap = at_ms(&offers[0]["at"]) - at_ms(&event(&one, "completed")["at"]);
    assert!(gap >= 1000, "offered {gap} ms after the completion");
    // The history states the wrap-up the completion started, for the reports.
    assert_eq!(event(&one, "completed")["data"]["wrap_up_secs"], 1, "{one}");

    let (_, i) = app.get(&format!("/api/interactions/{first}")).await;
    assert_eq!(
        (
            i["state"].as_str(),
            i["disposition"].as_str(),
            i["notes"].as_str()
        ),
        (Some("completed"), Some("resolved"), Some("refunded"))
    );
    // Completing what one does not hold is refused.
    solo.send(json!({ "type": "complete", "interaction_id": first, "disposition": "resolved" }))
        .await;
    assert_eq!(solo.expect("error").await["code"], "not_yours");
    app.stop().await;
}

/// Under the target order, a low-tier contact first in line is passed by high-tier ones
/// within their target only until it is past the fair wait: the wait first come, first
/// served would have given it, and a little more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_tier_contact_is_served_within_the_fair_wait_despite_high_tier_ones() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 10).await;
    let (_, token) = create_agent(
        &app,
        json!({ "name": "Only", "level": 5, "capacity": { "api": 1 } }),
    )
    .await;
    customer(&app, "big@example.com", "high", None).await;
    let low = contact(&app, "small@example.com", "low tier").await;
    let mut highs = Vec::new();
    for n in 0..6 {
        highs.push(contact(&app, "big@example.com", &format!("high {n}")).await);
    }
    let mut desk = Desktop::available(&app.base, &token).await;
    let mut served = Vec::new();
    while served.len() < 7 {
        let id = desk.take_offer().await;
        served.push(id.clone());
        desk.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
            .await;
        desk.expect("completed").await;
    }
    let low_at = served.iter().position(|i| *i == low).unwrap();
    assert!(low_at < 6, "the low contact passed the fair limit and went before the remaining high ones: served {low_at}th");
    assert!(low_at > 0, "within their target, high contacts go first");
    let (_, i) = app.get(&format!("/api/interactions/{low}")).await;
    let decision = &event(&i, "offered")["data"]["decision"];
    assert_eq!(decision["standing"], "past_fair_limit", "{decision}");
    assert_eq!(decision["overdue"], true, "{decision}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_vanishes_mid_offer_loses_it_to_the_next_at_once() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let ((_, mut a), (_, mut b)) =
        two_available(&app, json!({ "name": "A" }), json!({ "name": "B" })).await;
    let id = contact(&app, "c@example.com", "x").await;
    a.expect("offer").await;
    a.vanish().await;
    assert_eq!(b.take_offer().await, id);
    // Withdrawn because the desktop went, not timed out after its 30 s.
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(
        event(&i, "offer_withdrawn")["data"]["reason"],
        "agent disconnected"
    );
    assert!(events(&i, "offer_timed_out").is_empty(), "{i}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_that_reconnects_resumes_with_every_missed_event_in_order() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let (_, token) = create_agent(&app, json!({ "name": "A" })).await;
    let mut a = Desktop::available(&app.base, &token).await;
    let held = contact(&app, "held@example.com", "kept").await;
    assert_eq!(a.take_offer().await, held);
    let pending = contact(&app, "pending@example.com", "pending").await;
    let offer = a.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], pending.as_str());
    let (session, seen) = (a.session.clone(), a.last_seq);
    a.vanish().await;

    // While away, the offer is withdrawn: that event waits for the desktop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, i) = app.get(&format!("/api/interactions/{pending}")).await;
        if !events(&i, "offer_withdrawn").is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the offer was never withdrawn: {i}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = Desktop::login(&app.base, &token, Some((&session, seen))).await;
    assert_eq!(again.welcome["resumed"], true);
    assert_eq!(
        again.welcome["assigned"][0]["id"],
        held.as_str(),
        "a resume lists the work held too"
    );
    again.last_seq = seen;
    let missed = again.next().await;
    assert_eq!(
        (missed["type"].as_str(), missed["seq"].as_u64()),
        (Some("offer_ended"), Some(seen + 1)),
        "{missed}"
    );
    assert_eq!(missed["reason"], "agent disconnected");
    // It was available before it vanished, so it is again, and gets the offer back.
    assert_eq!(again.take_offer().await, pending);

    // A new session (no resume) still gets back the work it holds.
    again.vanish().await;
    let fresh = Desktop::login(&app.base, &token, None).await;
    let assigned: Vec<&str> = fresh.welcome["assigned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(assigned.len(), 2);
    assert!(assigned.contains(&held.as_str()) && assigned.contains(&pending.as_str()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_answered_and_a_wrong_token_is_refused() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let (_, token) = create_agent(&app, json!({ "name": "A" })).await;
    let mut a = Desktop::login(&app.base, &token, None).await;
    for (frame, code) in [
        ("not json", "not_json"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"type":"accept"}"#, "bad_field"),
        (r#"{"type":"accept","offer_id":"nope"}"#, "not_your_offer"),
    ] {
        a.send_text(frame).await;
        let e = a.expect("error").await;
        assert_eq!(e["code"], code, "{frame}: {e}");
    }
    // A message over the protocol's 16 KiB is refused with an error, not a dropped line.
    a.send_text(&format!(
        r#"{{"type":"heartbeat","pad":"{}"}}"#,
        "x".repeat(20 * 1024)
    ))
    .await;
    assert_eq!(a.expect("error").await["code"], "too_large");
    a.send(json!({ "type": "heartbeat" })).await;
    assert_eq!(
        a.next().await["type"],
        "heartbeat_ack",
        "the connection is still usable"
    );

    let url = format!("{}/agent/ws", app.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({ "type": "login", "token": "wrong" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(c)))) => {
            assert_eq!(
                (u16::from(c.code), c.reason.as_str()),
                (4001, "invalid token")
            );
        }
        other => panic!("expected a close with a reason, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_queue_shows_waiting_work_agents_and_service_level() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let (_, token) = create_agent(&app, json!({ "name": "A", "capacity": { "api": 1 } })).await;
    let mut a = Desktop::available(&app.base, &token).await;
    contact(&app, "q1@example.com", "1").await;
    contact(&app, "q2@example.com", "2").await;
    a.take_offer().await;
    let (status, q) = app.get("/api/queue").await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["waiting"], 1);
    assert_eq!(q["by_tier"]["low"]["waiting"], 1);
    assert_eq!(q["by_channel"]["api"], 1);
    assert_eq!(q["agents"][0]["holding"], 1);
    assert_eq!(q["service_level"]["low"]["answered"], 1);
    // The low tier has no target under the shipped rules: no share to show.
    assert_eq!(q["service_level"]["low"]["target_secs"], Value::Null, "{q}");
    assert_eq!(q["service_level"]["low"]["share"], Value::Null, "{q}");
    // The one agent is busy: nobody idles while a contact waits.
    assert_eq!(q["idle_while_waiting"]["agents_now"], 0, "{q}");
    assert_eq!(q["idle_while_waiting"]["window_secs"], 900, "{q}");
    app.stop().await;
}

/// A high-tier contact held for the senior ring while a junior agent is free shows in the
/// live view as an agent idle while a contact waits, and the time it cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_queue_shows_agents_idle_while_a_ring_holds_a_contact() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let (_, junior_token) = create_agent(&app, json!({ "name": "Junior", "level": 1 })).await;
    let (_, senior_token) = create_agent(&app, json!({ "name": "Senior", "level": 3 })).await;
    let mut junior = Desktop::available(&app.base, &junior_token).await;
    // The senior is logged in but away: the senior ring holds high contacts for 2 s.
    let _senior = Desktop::login(&app.base, &senior_token, None).await;
    customer(&app, "vip@example.com", "high", None).await;
    let id = contact(&app, "vip@example.com", "Held").await;
    // Seen once the router has taken it up (well within the ring's 2 s).
    let mut q = Value::Null;
    for _ in 0..20 {
        q = app.get("/api/queue").await.1;
        if q["idle_while_waiting"]["agents_now"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(q["waiting"], 1, "{q}");
    assert_eq!(q["idle_while_waiting"]["agents_now"], 1, "{q}");
    // After the ring's timeout the junior is offered it; the 2 s cost are counted.
    assert_eq!(junior.take_offer().await, id);
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["idle_while_waiting"]["agents_now"], 0, "{q}");
    let cost = q["idle_while_waiting"]["agent_secs"].as_f64().unwrap();
    assert!((1.5..5.0).contains(&cost), "{q}");
    app.stop().await;
}

both_backends!(a_sigkill_loses_no_offered_or_assigned_interaction);

async fn a_sigkill_loses_no_offered_or_assigned_interaction(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.toml");
    std::fs::write(&rules, test_rules(30)).unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let server = start_process_with(
        &url,
        dir.path(),
        &[(
            "SWITCHBOARD__ROUTING__RULES_FILE",
            rules.display().to_string().as_str(),
        )],
    );
    let client = reqwest::Client::new();
    let (_, agent) = send(
        client
            .post(format!("{}/api/agents", server.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": "A" })),
    )
    .await;
    let token = agent["token"].as_str().unwrap().to_string();
    let mut a = Desktop::available(&server.base, &token).await;
    let post = |subject: &'static str| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            let (status, i) = send(
                client
                    .post(format!("{base}/api/interactions"))
                    .bearer_auth(TOKEN)
                    .json(&json!({ "customer": { "email": "k@example.com" }, "subject": subject })),
            )
            .await;
            assert_eq!(status, 201);
            i["id"].as_str().unwrap().to_string()
        }
    };
    let assigned = post("assigned").await;
    assert_eq!(a.take_offer().await, assigned);
    let offered = post("offered").await;
    assert_eq!(
        a.expect("offer").await["interaction"]["id"],
        offered.as_str()
    );
    drop(server); // SIGKILL

    let server = start_process_with(
        &url,
        dir.path(),
        &[(
            "SWITCHBOARD__ROUTING__RULES_FILE",
            rules.display().to_string().as_str(),
        )],
    );
    let state = |id: String| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            let (_, i) = send(
                client
                    .get(format!("{base}/api/interactions/{id}"))
                    .bearer_auth(TOKEN),
            )
            .await;
            i["state"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(state(assigned.clone()).await, "assigned");
    assert_eq!(
        state(offered.clone()).await,
        "queued",
        "an offer dies with the server; the contact waits again"
    );
    let mut a = Desktop::login(&server.base, &token, None).await;
    assert_eq!(
        a.welcome["assigned"][0]["id"],
        assigned.as_str(),
        "the agent gets its work back"
    );
    a.send(json!({ "type": "presence", "status": "available" }))
        .await;
    assert_eq!(a.take_offer().await, offered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_withdrawn_while_waiting_or_offered_is_abandoned_with_its_wait() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let waiting = contact(&app, "w@example.com", "no agent yet").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, i) = app
        .post(
            &format!("/api/interactions/{waiting}/end"),
            &json!({ "reason": "customer gave up" }),
        )
        .await;
    assert_eq!(
        (status, i["state"].as_str().unwrap()),
        (200, "abandoned"),
        "{i}"
    );
    let abandoned = event(&i, "abandoned");
    assert!(
        abandoned["data"]["waited_secs"].as_f64().unwrap() >= 0.2,
        "{abandoned}"
    );
    assert_eq!(abandoned["data"]["reason"], "customer gave up");
    let (status, _) = app
        .post(&format!("/api/interactions/{waiting}/end"), &json!({}))
        .await;
    assert_eq!(status, 409, "it has ended already");

    let (_, token) = create_agent(&app, json!({ "name": "A" })).await;
    let mut a = Desktop::available(&app.base, &token).await;
    let offered = contact(&app, "o@example.com", "on offer").await;
    assert_eq!(
        a.expect("offer").await["interaction"]["id"],
        offered.as_str()
    );
    let (status, _) = app
        .post(&format!("/api/interactions/{offered}/end"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let ended = a.expect("interaction_ended").await;
    assert_eq!(
        (ended["interaction_id"].as_str(), ended["reason"].as_str()),
        (Some(offered.as_str()), Some("withdrawn"))
    );
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["waiting"], 0);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_abandoned_total{tier=\"low\"}"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_see_the_queue_change_live() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let url = format!("{}/supervisor/ws", app.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::Text(
        json!({ "type": "login", "token": TOKEN })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let first = next_queue_frame(&mut ws).await;
    assert_eq!(
        (first["type"].as_str(), first["waiting"].as_u64()),
        (Some("queue"), Some(0))
    );
    contact(&app, "live@example.com", "watch me").await;
    let mut seen = first;
    for _ in 0..20 {
        if seen["waiting"] == 1 {
            break;
        }
        seen = next_queue_frame(&mut ws).await;
    }
    assert_eq!(seen["waiting"], 1, "{seen}");
    assert_eq!(seen["by_tier"]["low"]["waiting"], 1);

    let (mut wrong, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    wrong
        .send(Message::Text(
            json!({ "type": "login", "token": "nope" })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    match wrong.next().await {
        Some(Ok(Message::Close(Some(c)))) => assert_eq!(u16::from(c.code), 4001),
        other => panic!("expected a close, got {other:?}"),
    }
    app.stop().await;
}

async fn next_queue_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    use futures_util::StreamExt;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
            serde_json::from_str(&t).unwrap()
        }
        other => panic!("expected a queue frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_desktop_is_disconnected_and_its_offer_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, test_rules(60)).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.routing.rules_file = path.display().to_string();
        s.agents.heartbeat_timeout_secs = 5;
    })
    .await;
    let ((_, mut silent), (_, mut awake)) = two_available(
        &app,
        json!({ "name": "Silent" }),
        json!({ "name": "Awake" }),
    )
    .await;
    let id = contact(&app, "hb@example.com", "anyone there?").await;
    assert_eq!(
        silent.expect("offer").await["interaction"]["id"],
        id.as_str()
    );
    // The awake desktop keeps its heartbeat; the silent one sends nothing.
    let beat = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline {
            awake.send(json!({ "type": "heartbeat" })).await;
            let beat_due = Instant::now() + Duration::from_secs(1);
            while let Some(v) = awake
                .next_within(beat_due.saturating_duration_since(Instant::now()))
                .await
            {
                if v["type"] == "offer" {
                    return Some(v);
                }
            }
        }
        None
    });
    let closed = silent.expect("closed").await;
    assert_eq!(
        (closed["code"].as_u64(), closed["reason"].as_str()),
        (Some(4003), Some("no heartbeat"))
    );
    let offer = beat
        .await
        .unwrap()
        .expect("the offer moved to the awake agent");
    assert_eq!(offer["interaction"]["id"], id.as_str());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_token_or_a_removed_agent_ends_the_session_and_a_change_applies_at_once() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 30).await;
    let (id, token) = create_agent(&app, json!({ "name": "A", "level": 1 })).await;
    let mut a = Desktop::available(&app.base, &token).await;
    customer(&app, "vip2@example.com", "high", None).await;

    // Promoted while logged in: the senior ring applies to it at once.
    let (status, _) = app
        .put(&format!("/api/agents/{id}"), &json!({ "level": 3 }))
        .await;
    assert_eq!(status, 200);
    let high = contact(&app, "vip2@example.com", "urgent").await;
    let offer = a.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], high.as_str());
    a.send(json!({ "type": "decline", "offer_id": offer["offer_id"] }))
        .await;
    assert_eq!(a.expect("offer_ended").await["reason"], "declined");

    let (status, reset) = app
        .post(&format!("/api/agents/{id}/token"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let closed = a.expect("closed").await;
    assert_eq!(
        (closed["code"].as_u64(), closed["reason"].as_str()),
        (Some(4004), Some("token reset"))
    );
    let new_token = reset["token"].as_str().unwrap();
    let b = Desktop::login(&app.base, new_token, None).await;
    assert_eq!(b.welcome["agent"]["level"], 3);

    assert_eq!(app.delete(&format!("/api/agents/{id}")).await, 204);
    let mut b = b;
    let closed = b.expect("closed").await;
    assert_eq!(
        (closed["code"].as_u64(), closed["reason"].as_str()),
        (Some(4004), Some("agent removed"))
    );
    app.stop().await;
}

async fn a_customer_made_high_tier_while_waiting_is_routed_as_high_tier_from_then_on(
    backend: Backend,
) {
    // The high tier's owner ring holds a contact for its account manager a whole minute.
    let rules = test_rules(10).replace(
        "{ owner = true, timeout_secs = 2 }",
        "{ owner = true, timeout_secs = 60 }",
    );
    let (app, _rules) = app_with_rules_text(backend, rules).await;
    let (owner_id, owner_token) = create_agent(&app, json!({ "name": "Owner", "level": 3 })).await;
    let (other_id, other_token) = create_agent(&app, json!({ "name": "Other", "level": 3 })).await;
    customer(&app, "medium@example.com", "medium", None).await;
    let upgraded = customer(&app, "low@example.com", "low", None).await;
    // The account manager is logged in, away for now: a ring of theirs holds what is
    // theirs (a ring of agents none of whom is logged in would be passed over).
    let mut owner = Desktop::login(&app.base, &owner_token, None).await;
    // Nobody is available: both wait, the medium one first in line.
    let medium = contact(&app, "medium@example.com", "Where is my parcel?").await;
    let low = contact(&app, "low@example.com", "I would like to order a lot").await;
    let (_, i) = app.get(&format!("/api/interactions/{low}")).await;
    assert_eq!(i["tier"], "low");

    // While it waits, the admin learns who this is: a high-value customer, with an
    // account manager.
    let (status, c) = app
        .put(
            &format!("/api/customers/{upgraded}"),
            &json!({ "tier": "high", "owner": owner_id }),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    let (_, i) = app.get(&format!("/api/interactions/{low}")).await;
    assert_eq!(i["tier"], "high", "{i}");
    let changed = event(&i, "tier_changed");
    assert_eq!(changed["data"]["from"], "low");
    assert_eq!(changed["data"]["tier"], "high");
    assert_eq!(changed["data"]["source"], "explicit");
    assert_eq!(changed["actor"], "admin");
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["by_tier"]["high"]["waiting"], 1, "{q}");
    assert!(q["by_tier"].get("low").is_none(), "{q}");

    // Another senior agent comes first: the high-tier contact is its account manager's
    // for now, so this one is offered the medium contact.
    let mut other = Desktop::available(&app.base, &other_token).await;
    let offer = other.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], medium.as_str(), "{offer}");
    other.accept(&offer).await;
    // The account manager comes back and is offered it, as high tier.
    owner
        .send(json!({ "type": "presence", "status": "available" }))
        .await;
    let offer = owner.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], low.as_str(), "{offer}");
    assert_eq!(offer["interaction"]["tier"], "high");
    owner.accept(&offer).await;
    let (_, i) = app.get(&format!("/api/interactions/{low}")).await;
    let decision = &event(&i, "offered")["data"]["decision"];
    assert_eq!(decision["tier"], "high", "{decision}");
    assert_eq!(decision["agent_id"], owner_id.as_str(), "{decision}");
    assert_ne!(decision["agent_id"], other_id.as_str());

    // A change that leaves no contact waiting writes no tier change.
    let (_, m) = app.get(&format!("/api/interactions/{medium}")).await;
    let (status, _) = app
        .put(
            &format!("/api/customers/{}", m["customer_id"].as_str().unwrap()),
            &json!({ "tier": "low" }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, m) = app.get(&format!("/api/interactions/{medium}")).await;
    assert_eq!(m["tier"], "medium");
    assert!(!kinds(&m).iter().any(|k| k == "tier_changed"), "{m}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_customers_waiting_contact_takes_the_survivors_tier() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 10).await;
    let survivor = customer(&app, "known@example.com", "high", None).await;
    let (_, anonymous) = app
        .post(
            "/api/customers",
            &json!({ "identities": [{ "kind": "phone", "value": "+14155550123" }] }),
        )
        .await;
    let anonymous = anonymous["id"].as_str().unwrap().to_string();
    let call = app
        .contact(json!({ "customer": { "phone": "+14155550123" }, "subject": "A call" }))
        .await;
    assert_eq!(call["tier"], "low");
    let id = call["id"].as_str().unwrap();

    // The caller turns out to be the known high-tier customer.
    let (status, _) = app
        .post(
            &format!("/api/customers/{survivor}/merge"),
            &json!({ "from": anonymous }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["tier"], "high", "{i}");
    assert_eq!(event(&i, "tier_changed")["data"]["from"], "low");
    let (_, q) = app.get("/api/queue").await;
    assert_eq!(q["by_tier"]["high"]["waiting"], 1, "{q}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_that_stops_reading_is_cut_off_and_resumes_with_nothing_lost() {
    let (app, _rules) = app_with_rules(Backend::Sqlite, 10).await;
    let (_, token) = create_agent(&app, json!({ "name": "Stalled" })).await;
    let mut desktop = Desktop::available(&app.base, &token).await;
    let (session, seen) = (desktop.session.clone(), desktop.last_seq);

    // Every bad frame is answered with an error frame the desktop never reads. The server
    // keeps at most an outbox of them (and the sockets' buffers), then cuts the link.
    let sent = desktop
        .flood_without_reading("not json", 2_000_000)
        .await
        .expect(
            "the server cuts off a desktop that does not read, rather than queueing without end",
        );
    assert!(sent > 2_000, "cut after {sent} frames");

    // Meanwhile a contact comes: the agent, dropped, is not offered it; on resuming,
    // it is offered it.
    let id = contact(&app, "patient@example.com", "Still there?").await;
    let mut back = Desktop::login(&app.base, &token, Some((&session, seen))).await;
    assert_eq!(back.welcome["resumed"], true, "{}", back.welcome);
    back.send(json!({ "type": "presence", "status": "available" }))
        .await;
    assert_eq!(back.take_offer().await, id);
    app.stop().await;
}
