//! An agent's own work: internal notes with mentions, handing a conversation to a
//! colleague, a skill or the queue, and the work list.

use std::time::Duration;

use serde_json::json;

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{events, spawn_app, Backend};

both_backends!(a_conversation_is_noted_with_a_mention_and_handed_to_a_colleague_then_a_team);

async fn a_conversation_is_noted_with_a_mention_and_handed_to_a_colleague_then_a_team(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (ann_id, ann_token) = create_agent(&app, json!({ "name": "Ann Lee" })).await;
    let mut ann = Desktop::available(&app.base, &ann_token).await;
    let contact = app
        .contact(json!({ "idempotency_key": "refund-1", "customer": { "email": "kim@example.org" }, "subject": "Refund" }))
        .await;
    let id = contact["id"].as_str().unwrap().to_string();
    assert_eq!(ann.take_offer().await, id);
    let (bob_id, bob_token) = create_agent(&app, json!({ "name": "Bob Wu" })).await;
    let (_, cai_token) = create_agent(&app, json!({ "name": "蔡明", "skills": ["billing"] })).await;
    let mut bob = Desktop::available(&app.base, &bob_token).await;

    // A note naming Bob: kept in the history, shown to Ann, told to Bob; never to the
    // customer (an API contact has no channel to leak to, and the note is no reply).
    ann.send(json!({ "type": "note", "interaction_id": id, "text": "@bob the refund is approved, see ticket 88" }))
        .await;
    let mine = ann.expect("note").await;
    assert_eq!(mine["mentions"], json!([bob_id]), "{mine}");
    let told = bob.expect("mention").await;
    assert_eq!(told["interaction_id"], id.as_str());
    assert_eq!(told["from_name"], "Ann Lee");
    assert_eq!(told["text"], "@bob the refund is approved, see ticket 88");
    // Bad notes and transfers are answered, and change nothing.
    ann.send(json!({ "type": "note", "interaction_id": id, "text": "  " }))
        .await;
    assert_eq!(ann.expect("error").await["code"], "bad_field");
    ann.send(json!({ "type": "transfer", "interaction_id": id, "to_agent": "no-such-agent" }))
        .await;
    assert_eq!(ann.expect("error").await["code"], "bad_field");
    ann.send(json!({ "type": "transfer", "interaction_id": id, "to_agent": bob_id, "to_skill": "billing" }))
        .await;
    assert_eq!(ann.expect("error").await["code"], "bad_field");
    bob.send(json!({ "type": "transfer", "interaction_id": id, "to_agent": ann_id }))
        .await;
    assert_eq!(bob.expect("error").await["code"], "not_yours");

    // Ann hands it to Bob with a note: it leaves her desk, and Bob is offered it.
    ann.send(json!({ "type": "transfer", "interaction_id": id, "to_agent": bob_id, "note": "Customer prefers mail" }))
        .await;
    let ended = ann.expect("interaction_ended").await;
    assert_eq!(
        (ended["interaction_id"].as_str(), ended["reason"].as_str()),
        (Some(id.as_str()), Some("transferred"))
    );
    assert_eq!(bob.take_offer().await, id);
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(
        (i["state"].as_str(), i["agent_id"].as_str()),
        (Some("assigned"), Some(bob_id.as_str())),
        "{i}"
    );
    let handed = events(&i, "transferred");
    assert_eq!(handed.len(), 1, "{i}");
    assert_eq!(handed[0]["data"]["note"], "Customer prefers mail");
    assert_eq!(handed[0]["data"]["to"]["agent_id"], bob_id.as_str());
    assert_eq!(handed[0]["actor"], ann_id.as_str());
    let notes = events(&i, "note");
    assert_eq!(notes[0]["data"]["mentions"], json!([bob_id]));

    // Bob's work list has it; Ann's no longer does.
    let (status, w) = crate::helpers::send(
        reqwest::Client::new()
            .get(format!("{}/api/me/work", app.base))
            .bearer_auth(&bob_token),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["open"][0]["id"], id.as_str(), "{w}");
    assert_eq!(w["open"][0]["subject"], "Refund");
    let (_, w) = crate::helpers::send(
        reqwest::Client::new()
            .get(format!("{}/api/me/work", app.base))
            .bearer_auth(&ann_token),
    )
    .await;
    assert_eq!(w["open"], json!([]), "{w}");
    let (status, _) = app.get("/api/me/work").await;
    assert_eq!(status, 400, "the admin token has no work of its own");

    // Bob hands it to the billing team: 蔡明, the one agent with that skill, is offered
    // it, though Ann was idle longer.
    let mut cai = Desktop::available(&app.base, &cai_token).await;
    bob.send(json!({ "type": "transfer", "interaction_id": id, "to_skill": "billing" }))
        .await;
    bob.expect("interaction_ended").await;
    assert_eq!(cai.take_offer().await, id);
    assert!(
        ann.next_within(Duration::from_millis(300))
            .await
            .filter(|f| f["type"] == "offer")
            .is_none(),
        "the team was offered it, not Ann"
    );

    // Back to the queue: never offered again to the one who handed it on.
    cai.send(json!({ "type": "transfer", "interaction_id": id }))
        .await;
    cai.expect("interaction_ended").await;
    let offer = loop {
        let f = ann.next().await;
        if f["type"] == "offer" {
            break f;
        }
    };
    assert_eq!(offer["interaction"]["id"], id.as_str());
    let id = ann.accept(&offer).await;
    ann.send(json!({ "type": "complete", "interaction_id": id, "disposition": "resolved" }))
        .await;
    ann.expect("completed").await;
    let (_, w) = crate::helpers::send(
        reqwest::Client::new()
            .get(format!("{}/api/me/work", app.base))
            .bearer_auth(&ann_token),
    )
    .await;
    assert_eq!(
        w["recent"][0]["id"],
        id.as_str(),
        "completed this week: {w}"
    );
    let (_, c) = crate::helpers::send(
        reqwest::Client::new()
            .get(format!("{}/api/colleagues", app.base))
            .bearer_auth(&ann_token),
    )
    .await;
    let names: Vec<&str> = c["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"蔡明") && names.contains(&"Bob Wu"), "{c}");
    assert!(!c.to_string().contains("token"), "{c}");
    app.stop().await;
}

both_backends!(canned_answers_are_shared_by_admins_and_personal_for_agents);

async fn canned_answers_are_shared_by_admins_and_personal_for_agents(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, ann) = create_agent(&app, json!({ "name": "Ann" })).await;
    let (_, bob) = create_agent(&app, json!({ "name": "Bob" })).await;
    let as_agent = |token: &str, method: reqwest::Method, path: &str| {
        reqwest::Client::new()
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(token)
    };
    // Shared, by the admin: in Chinese, with its variables.
    let (status, shared) = app
        .post(
            "/api/canned",
            &json!({ "shortcut": "退款", "title": "退款已处理", "body": "您好 {customer_name}，退款已处理。——{agent_name}", "language": "zh-CN", "team": "billing" }),
        )
        .await;
    assert_eq!(status, 201, "{shared}");
    assert_eq!(shared["personal"], false);
    // Bad ones: a shortcut with a space, a variable that does not exist, an empty text.
    for (body, field) in [
        (
            json!({ "shortcut": "two words", "title": "x", "body": "x" }),
            "shortcut",
        ),
        (
            json!({ "shortcut": "x", "title": "x", "body": "Hi {customer_email}" }),
            "body",
        ),
        (
            json!({ "shortcut": "x", "title": "x", "body": "  " }),
            "body",
        ),
        (
            json!({ "shortcut": "x", "title": "", "body": "x" }),
            "title",
        ),
    ] {
        let (status, e) = app.post("/api/canned", &body).await;
        assert_eq!((status, e["field"].as_str()), (400, Some(field)), "{e}");
    }
    // Ann's own: personal, whatever she asks.
    let (status, mine) = crate::helpers::send(
        as_agent(&ann, reqwest::Method::POST, "/api/canned")
            .json(&json!({ "shortcut": "thanks", "title": "Thanks", "body": "Thank you, {customer_name}!" })),
    )
    .await;
    assert_eq!(
        (status, mine["personal"].as_bool()),
        (201, Some(true)),
        "{mine}"
    );
    // Each agent sees the shared ones and their own.
    let (_, a) = crate::helpers::send(as_agent(&ann, reqwest::Method::GET, "/api/canned")).await;
    let (_, b) = crate::helpers::send(as_agent(&bob, reqwest::Method::GET, "/api/canned")).await;
    let shortcuts = |v: &serde_json::Value| -> Vec<String> {
        v["answers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["shortcut"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(shortcuts(&a), vec!["thanks", "退款"]);
    assert_eq!(shortcuts(&b), vec!["退款"]);
    // Agents do not change shared answers, nor another agent's own.
    let shared_id = shared["id"].as_str().unwrap();
    let mine_id = mine["id"].as_str().unwrap();
    let (status, _) = crate::helpers::send(
        as_agent(
            &ann,
            reqwest::Method::PUT,
            &format!("/api/canned/{shared_id}"),
        )
        .json(&json!({ "shortcut": "x", "title": "x", "body": "x" })),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = crate::helpers::send(as_agent(
        &bob,
        reqwest::Method::DELETE,
        &format!("/api/canned/{mine_id}"),
    ))
    .await;
    assert_eq!(status, 404, "another agent's answer is not Bob's to see");
    let gone = as_agent(
        &ann,
        reqwest::Method::DELETE,
        &format!("/api/canned/{mine_id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(gone.status(), 204);
    // Changes to shared answers are audited.
    let (status, edited) = app
        .put(
            &format!("/api/canned/{shared_id}"),
            &json!({ "shortcut": "退款", "title": "退款", "body": "退款已处理。", "language": "zh-CN" }),
        )
        .await;
    assert_eq!(
        (status, edited["title"].as_str()),
        (200, Some("退款")),
        "{edited}"
    );
    let (_, audit) = app.get("/api/audit?action=canned.").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["canned.update", "canned.create"], "{audit}");
    app.stop().await;
}

both_backends!(agents_take_waiting_mail_from_their_teams_queue_and_each_is_taken_once);

/// A request as the agent of `token`.
async fn as_agent(
    app: &crate::helpers::TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    crate::helpers::send(
        app.client
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(token),
    )
    .await
}

async fn agents_take_waiting_mail_from_their_teams_queue_and_each_is_taken_once(backend: Backend) {
    use lettre::AsyncTransport;
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.toml");
    std::fs::write(
        &rules,
        format!(
            "{}\n[pull]\nchannels = [\"email\"]\n",
            include_str!("../../config/routing.toml")
        ),
    )
    .unwrap();
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.routing.rules_file = rules.display().to_string();
        s.email.domains = vec!["shop.test".into()];
        s.email.from_address = "support@shop.test".into();
    })
    .await;
    // Agents logged in but away: nothing is offered to them, and what waits is theirs to
    // take. Dee has room for one mail at a time.
    let (ann_id, ann_token) = create_agent(&app, json!({ "name": "Ann Lee" })).await;
    let (bob_id, bob_token) = create_agent(&app, json!({ "name": "Bob Wu" })).await;
    let (_, dee_token) = create_agent(
        &app,
        json!({ "name": "Dee Ray", "capacity": { "email": 1 } }),
    )
    .await;
    let _desks = [
        Desktop::login(&app.base, &ann_token, None).await,
        Desktop::login(&app.base, &bob_token, None).await,
        Desktop::login(&app.base, &dee_token, None).await,
    ];
    for (from, subject) in [
        ("kim@example.org", "Wrong size"),
        ("lea@example.org", "Gift wrap"),
        ("max@example.org", "Late parcel"),
    ] {
        let answer = crate::email::mailer(&app)
            .send(crate::email::plain(from, subject, "Hello, please help."))
            .await
            .unwrap();
        assert_eq!(answer.code().to_string(), "250");
    }
    // An API contact, push-only under these rules, waits too.
    let api = app
        .contact(json!({ "idempotency_key": "push-only", "customer": { "email": "push@example.org" }, "subject": "push" }))
        .await;
    let api = api["id"].as_str().unwrap().to_string();

    // Each agent sees the team's waiting mail (none has a topic: everyone's), oldest first.
    let (status, q) = as_agent(&app, Method::GET, &ann_token, "/api/me/team-queue").await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["channels"], json!(["email"]));
    let waiting = q["waiting"].as_array().unwrap().clone();
    let subjects: Vec<&str> = waiting
        .iter()
        .map(|w| w["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Wrong size", "Gift wrap", "Late parcel"], "{q}");
    assert_eq!(waiting[0]["on_offer"], false);
    let ids: Vec<String> = waiting
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();

    // Ann and Bob take the same mail at once: exactly one gets it, the other is told.
    let path = format!("/api/interactions/{}/take", ids[0]);
    let (a, b) = tokio::join!(
        as_agent(&app, Method::POST, &ann_token, &path),
        as_agent(&app, Method::POST, &bob_token, &path),
    );
    let mut answers = [(a.0, ann_id.clone(), a.1), (b.0, bob_id.clone(), b.1)];
    answers.sort_by_key(|(status, _, _)| *status);
    let [(won, winner, view), (lost, _, refusal)] = answers;
    assert_eq!((won, lost), (200, 409), "{view} {refusal}");
    assert_eq!(view["state"], "assigned");
    assert_eq!(view["agent_id"], winner.as_str());
    assert_eq!(refusal["message"], "a colleague took it first", "{refusal}");
    // In the history once: assigned to the one, by that agent, taken from the queue.
    let assigned = events(&view, "assigned");
    assert_eq!(assigned.len(), 1, "{view}");
    assert_eq!(assigned[0]["actor"], winner.as_str());
    assert_eq!(assigned[0]["data"]["taken_from_queue"], true);
    // Gone from the team's queue.
    let (_, q) = as_agent(&app, Method::GET, &bob_token, "/api/me/team-queue").await;
    assert_eq!(q["waiting"].as_array().unwrap().len(), 2, "{q}");

    // Dee takes one; a second is past her room. A push-only channel is refused too. Each
    // refusal says why, and the contact stays where it was.
    let (status, v) = as_agent(
        &app,
        Method::POST,
        &dee_token,
        &format!("/api/interactions/{}/take", ids[1]),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    for (token, id, why) in [
        (
            &dee_token,
            &ids[2],
            "you have no room for another email contact",
        ),
        (
            &ann_token,
            &api,
            "the rules do not let agents take api contacts themselves; they are offered",
        ),
    ] {
        let (status, e) = as_agent(
            &app,
            Method::POST,
            token,
            &format!("/api/interactions/{id}/take"),
        )
        .await;
        assert_eq!((status, e["message"].as_str()), (409, Some(why)), "{e}");
        let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
        assert_eq!(i["state"], "queued", "{i}");
    }
    let (status, _) = as_agent(
        &app,
        Method::POST,
        &ann_token,
        "/api/interactions/0190c0de-0000-7000-8000-000000000000/take",
    )
    .await;
    assert_eq!(status, 404);
    let (status, e) = app
        .post(&format!("/api/interactions/{}/take", ids[2]), &json!({}))
        .await;
    assert_eq!(status, 400, "the admin token has no team: {e}");
    app.stop().await;
}
