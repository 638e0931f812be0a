//! The phone system is the authority on its calls: a call it reports answered at an
//! agent's extension is that agent's there and then (counted against their capacity,
//! shown on their desktop), never offered again, and its hang-up is a completed call;
//! answered at an extension of no agent, it is answered outside Switchboard, and ends
//! completed, never missed. In the native format, in Zammad's (whose phone systems
//! always route calls themselves), and out of order.

use super::*;

/// The interaction, its state and agent.
async fn interaction(app: &TestApp, id: &str) -> Value {
    let (status, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(status, 200, "{i}");
    i
}

/// An agent's load on the phone, as the live queue shows it.
async fn phone_load(app: &TestApp, agent_id: &str) -> u64 {
    let (status, q) = app.get("/api/queue").await;
    assert_eq!(status, 200, "{q}");
    q["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent_id)
        .map(|a| a["load"]["phone"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("agent {agent_id} is not in the live view: {q}"))
}

async fn a_call_answered_at_an_agents_extension_is_theirs_and_never_offered_again(
    backend: Backend,
) {
    let (url, log) = phone_system(0).await;
    let app = app(backend, &url, 100).await;
    let (ana, ana_token) = create_agent(&app, json!({ "name": "Ana", "extension": "201" })).await;
    let (_ben, ben_token) = create_agent(&app, json!({ "name": "Ben", "extension": "202" })).await;
    // Ana is logged in but away: Switchboard would not offer her anything.
    let mut ana_desk = Desktop::login(&app.base, &ana_token, None).await;
    let mut ben_desk = Desktop::available(&app.base, &ben_token).await;

    let (_, q) = native(
        &app,
        json!({ "event": "ringing", "call_id": "ans-1", "from": "+4930123401" }),
    )
    .await;
    assert_eq!(q["action"], "queue", "{q}");
    let first = q["interaction_id"].as_str().unwrap().to_string();
    // Ben is offered it, and does not answer yet; meanwhile the phone system's own
    // ring group connects the caller to Ana's phone.
    let offer = ben_desk.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], first.as_str());
    let (status, r) = native(
        &app,
        json!({ "event": "answered", "call_id": "ans-1", "extension": "201" }),
    )
    .await;
    assert_eq!((status, &r["recorded"]), (200, &json!(true)), "{r}");

    // Ben's offer is withdrawn as answered elsewhere (not his miss); Ana has the call.
    let ended = ben_desk.expect("offer_ended").await;
    assert_eq!(
        (ended["offer_id"].clone(), ended["reason"].as_str()),
        (offer["offer_id"].clone(), Some("answered_elsewhere"))
    );
    let assigned = ana_desk.expect("assigned").await;
    assert_eq!(assigned["interaction_id"], first.as_str());
    assert_eq!(assigned["connected_by"], "phone");
    assert_eq!(ana_desk.expect("call_state").await["state"], "connected");
    let i = interaction(&app, &first).await;
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), Some(ana.as_str()))
    );
    assert_eq!(
        phone_load(&app, &ana).await,
        1,
        "the call counts against Ana's capacity"
    );
    // Accepting the withdrawn offer now is refused.
    ben_desk
        .send(json!({ "type": "accept", "offer_id": offer["offer_id"] }))
        .await;
    assert_eq!(ben_desk.expect("error").await["code"], "not_your_offer");

    // The next call goes to Ben: the first is never offered again.
    let (_, q) = native(
        &app,
        json!({ "event": "ringing", "call_id": "ans-2", "from": "+4930123402" }),
    )
    .await;
    let second = q["interaction_id"].as_str().unwrap().to_string();
    let next = ben_desk.expect("offer").await;
    assert_eq!(next["interaction"]["id"], second.as_str());
    ben_desk.accept(&next).await;
    // Ben's call is dialled by a callback; the one Ana answered never is.
    let got = received(&log, 1).await;
    let dial: Value = serde_json::from_str(&got[0].2).unwrap();
    assert_eq!(dial["interaction_id"], second.as_str());

    // The caller hangs up: a completed call, not a missed one.
    let (_, r) = native(&app, json!({ "event": "ended", "call_id": "ans-1", "cause": "normal_clearing", "duration_secs": 61 })).await;
    assert_eq!(r["recorded"], true, "{r}");
    ana_desk.expect("interaction_ended").await;
    let (i, kinds) = history_kinds(&app, &first).await;
    assert!(!kinds.iter().any(|k| k == "abandoned"), "{kinds:?}");
    assert_in_order(
        &kinds,
        &[
            "offered",
            "offer_withdrawn",
            "assigned",
            "call_answered",
            "call_ended",
        ],
    );
    let assigned = event(&i, "assigned");
    assert_eq!(assigned["actor"], "phone");
    assert_eq!(assigned["data"]["agent_id"], ana.as_str());
    let call_ended = &event(&i, "call_ended")["data"];
    assert_eq!(
        (
            call_ended["missed"].as_bool(),
            call_ended["follow_up"].as_bool()
        ),
        (Some(false), Some(false)),
        "{call_ended}"
    );
    assert_eq!(call_ended["agent_id"], ana.as_str());
    // Ana completes it as any call.
    ana_desk
        .send(json!({ "type": "complete", "interaction_id": first, "disposition": "resolved" }))
        .await;
    ana_desk.expect("completed").await;
    assert_eq!(interaction(&app, &first).await["state"], "completed");
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "no dial command was ever sent for the call the phone system connected"
    );
    app.stop().await;
}

async fn zammad_calls_answered_at_the_phone_are_completed_calls_not_missed_ones(backend: Backend) {
    let (url, _) = phone_system(0).await;
    let app = app(backend, &url, 100).await;
    let (ana, ana_token) = create_agent(&app, json!({ "name": "Ana", "extension": "201" })).await;
    let mut ana_desk = Desktop::login(&app.base, &ana_token, None).await;
    let call = |id: &'static str, event: &'static str| {
        vec![
            ("event", event),
            ("from", "493055571601"),
            ("to", "4930999"),
            ("direction", "in"),
            ("callId", id),
        ]
    };
    // Zammad's phone system rings its agents itself and says who answered.
    let (status, _) = zammad(&app, ZAMMAD_TOKEN, &call("z-ans-1", "newCall")).await;
    assert_eq!(status, 200);
    let mut answer = call("z-ans-1", "answer");
    answer.push(("user", "Ana"));
    answer.push(("answeringNumber", "201"));
    let (status, r) = zammad(&app, ZAMMAD_TOKEN, &answer).await;
    assert_eq!((status, &r), (200, &json!({})));
    let assigned = ana_desk.expect("assigned").await;
    let first = assigned["interaction_id"].as_str().unwrap().to_string();
    let mut hangup = call("z-ans-1", "hangup");
    hangup.push(("cause", "normalClearing"));
    zammad(&app, ZAMMAD_TOKEN, &hangup).await;
    ana_desk.expect("interaction_ended").await;
    let (i, kinds) = history_kinds(&app, &first).await;
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), Some(ana.as_str()))
    );
    assert!(!kinds.iter().any(|k| k == "abandoned"), "{kinds:?}");
    assert_eq!(event(&i, "call_ended")["data"]["missed"], false);
    ana_desk
        .send(json!({ "type": "complete", "interaction_id": first, "disposition": "resolved" }))
        .await;
    ana_desk.expect("completed").await;

    // Answered at an extension of no agent: answered outside Switchboard. It is never
    // offered, and ends completed with the call.
    zammad(&app, ZAMMAD_TOKEN, &call("z-ans-2", "newCall")).await;
    let mut answer = call("z-ans-2", "answer");
    answer.push(("answeringNumber", "999"));
    zammad(&app, ZAMMAD_TOKEN, &answer).await;
    let (status, i) = app
        .get("/api/interactions?channel=phone&key=zammad:z-ans-2")
        .await;
    assert_eq!(status, 200, "{i}");
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), None),
        "{i}"
    );
    let outside = i["id"].as_str().unwrap().to_string();
    // Ana becomes available: she is not offered the call answered outside.
    ana_desk
        .send(json!({ "type": "presence", "status": "available" }))
        .await;
    ana_desk.expect("presence").await;
    let mut hangup = call("z-ans-2", "hangup");
    hangup.push(("cause", "normalClearing"));
    zammad(&app, ZAMMAD_TOKEN, &hangup).await;
    let (i, kinds) = history_kinds(&app, &outside).await;
    assert_eq!(i["state"], "completed", "{i}");
    assert!(
        !kinds.iter().any(|k| k == "offered" || k == "abandoned"),
        "{kinds:?}"
    );
    assert_eq!(
        event(&i, "completed")["data"]["disposition"],
        "answered_outside"
    );
    let ended = &event(&i, "call_ended")["data"];
    assert_eq!(
        (ended["missed"].as_bool(), ended["follow_up"].as_bool()),
        (Some(false), Some(false))
    );

    // A call nobody answered is still a missed call.
    zammad(&app, ZAMMAD_TOKEN, &call("z-ans-3", "newCall")).await;
    let (_, i) = app
        .get("/api/interactions?channel=phone&key=zammad:z-ans-3")
        .await;
    let missed = i["id"].as_str().unwrap().to_string();
    let mut hangup = call("z-ans-3", "hangup");
    hangup.push(("cause", "cancel"));
    zammad(&app, ZAMMAD_TOKEN, &hangup).await;
    let (i, _) = history_kinds(&app, &missed).await;
    assert_eq!(i["state"], "abandoned");
    assert_eq!(event(&i, "call_ended")["data"]["missed"], true);

    // A direction Zammad does not know: 422, as Zammad answers it, and nothing recorded.
    let mut odd = call("z-ans-4", "newCall");
    odd[3] = ("direction", "inbound");
    let (status, r) = zammad(&app, ZAMMAD_TOKEN, &odd).await;
    assert_eq!(
        (status, r["field"].as_str()),
        (422, Some("direction")),
        "{r}"
    );
    let mut none = call("z-ans-4", "newCall");
    none.remove(3);
    let (status, _) = zammad(&app, ZAMMAD_TOKEN, &none).await;
    assert_eq!(status, 422);
    let (status, _) = app
        .get("/api/interactions?channel=phone&key=zammad:z-ans-4")
        .await;
    assert_eq!(status, 404, "a refused event made no interaction");
    app.stop().await;
}

async fn an_answer_that_overtakes_its_ringing_event_keeps_the_call_out_of_the_queue(
    backend: Backend,
) {
    let (url, _) = phone_system(0).await;
    let app = app(backend, &url, 100).await;
    let (ana, ana_token) = create_agent(&app, json!({ "name": "Ana", "extension": "201" })).await;
    let mut ana_desk = Desktop::available(&app.base, &ana_token).await;
    let (_, r) = native(
        &app,
        json!({ "event": "answered", "call_id": "early-1", "extension": "201" }),
    )
    .await;
    assert_eq!(
        r["recorded"], false,
        "kept aside until the call is known: {r}"
    );
    let (status, r) = native(
        &app,
        json!({ "event": "ringing", "call_id": "early-1", "from": "+4930123403" }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["action"].as_str(), r["reason"].as_str()),
        (Some("none"), Some("the call is connected already")),
        "{r}"
    );
    let id = r["interaction_id"].as_str().unwrap().to_string();
    let assigned = ana_desk.expect("assigned").await;
    assert_eq!(assigned["interaction_id"], id.as_str());
    let i = interaction(&app, &id).await;
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), Some(ana.as_str()))
    );
    app.stop().await;
}

async fn a_twilio_call_reported_in_progress_while_it_waits_is_answered_outside(backend: Backend) {
    let (url, _) = phone_system(0).await;
    let app = app(backend, &url, 0).await;
    let sid = "CA33333333333333333333333333333333";
    let (status, twiml) = twilio(
        &app,
        "/channels/phone/twilio/voice",
        &[
            ("CallSid", sid),
            ("Direction", "inbound"),
            ("From", "+14155550120"),
            ("To", "+14155550199"),
        ],
        None,
    )
    .await;
    assert!(
        status == 200 && twiml.contains(">switchboard</Enqueue>"),
        "{twiml}"
    );
    // Another application took the caller out of the queue and Twilio reports the call
    // answered: nobody Switchboard knows has it.
    let (status, _) = twilio(
        &app,
        "/channels/phone/twilio/status",
        &[
            ("CallSid", sid),
            ("CallStatus", "in-progress"),
            ("StatusCallbackEvent", "answered"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, i) = app
        .get(&format!("/api/interactions?channel=phone&key=twilio:{sid}"))
        .await;
    assert_eq!(status, 200, "{i}");
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), None),
        "{i}"
    );
    let id = i["id"].as_str().unwrap().to_string();
    twilio(
        &app,
        "/channels/phone/twilio/status",
        &[
            ("CallSid", sid),
            ("CallStatus", "completed"),
            ("CallDuration", "30"),
        ],
        None,
    )
    .await;
    let (i, kinds) = history_kinds(&app, &id).await;
    assert_eq!(i["state"], "completed");
    assert!(!kinds.iter().any(|k| k == "abandoned"), "{kinds:?}");
    assert_eq!(event(&i, "call_ended")["data"]["missed"], false);
    app.stop().await;
}

both_backends!(
    a_twilio_call_reported_in_progress_while_it_waits_is_answered_outside,
    a_call_answered_at_an_agents_extension_is_theirs_and_never_offered_again,
    zammad_calls_answered_at_the_phone_are_completed_calls_not_missed_ones,
    an_answer_that_overtakes_its_ringing_event_keeps_the_call_out_of_the_queue,
);
