//! Roles: every endpoint checks what the person asking may do (403 otherwise).

use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{send, spawn_app, Backend, TestApp};

both_backends!(
    each_role_is_refused_what_it_must_not_do,
    an_agent_gets_neither_another_agents_attachment_nor_the_live_queue,
);

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let (status, answer) = send(req).await;
    if status == 403 {
        assert_eq!(answer["error"], "forbidden", "{answer}");
    }
    status
}

async fn each_role_is_refused_what_it_must_not_do(backend: Backend) {
    use reqwest::Method as M;
    let app = spawn_app(backend).await;
    let (agent_id, agent) =
        create_agent(&app, json!({ "name": "Agent", "capacity": { "api": 1 } })).await;
    let (_, supervisor) =
        create_agent(&app, json!({ "name": "Supervisor", "role": "supervisor" })).await;
    let (admin_id, admin) = create_agent(&app, json!({ "name": "Admin", "role": "admin" })).await;

    // The agent gets one contact, and may see it and its customer, nothing else.
    let mut desk = Desktop::available(&app.base, &agent).await;
    let mine = app
        .contact(json!({ "customer": { "email": "mine@example.com" } }))
        .await;
    let theirs = app
        .contact(json!({ "customer": { "email": "theirs@example.com" } }))
        .await;
    let taken = desk.take_offer().await;
    let (mine, theirs) = if taken == mine["id"] {
        (mine, theirs)
    } else {
        (theirs, mine)
    };
    let mine_id = mine["id"].as_str().unwrap();
    let mine_customer = mine["customer_id"].as_str().unwrap();
    let their_id = theirs["id"].as_str().unwrap();
    let their_customer = theirs["customer_id"].as_str().unwrap();
    let rules = include_str!("../../config/routing.toml");

    let cases: Vec<(&str, M, String, Option<Value>, u16)> = vec![
        // What an agent may and may not do.
        (
            &agent,
            M::GET,
            format!("/api/interactions/{mine_id}"),
            None,
            200,
        ),
        (
            &agent,
            M::GET,
            format!("/api/customers/{mine_customer}"),
            None,
            200,
        ),
        (
            &agent,
            M::GET,
            format!("/api/customers/{mine_customer}/history"),
            None,
            200,
        ),
        (
            &agent,
            M::GET,
            format!("/api/interactions/{their_id}"),
            None,
            404,
        ),
        (
            &agent,
            M::GET,
            format!("/api/customers/{their_customer}"),
            None,
            404,
        ),
        (
            &agent,
            M::GET,
            format!("/api/customers/{their_customer}/history"),
            None,
            404,
        ),
        (&agent, M::GET, "/api/queue".into(), None, 403),
        (&agent, M::GET, "/api/agents".into(), None, 403),
        (&agent, M::GET, "/api/audit".into(), None, 403),
        (&agent, M::GET, "/api/routing/rules".into(), None, 403),
        (
            &agent,
            M::GET,
            "/api/customers?email=theirs%40example.com".into(),
            None,
            403,
        ),
        (
            &agent,
            M::POST,
            "/api/customers".into(),
            Some(json!({ "identities": [] })),
            403,
        ),
        (
            &agent,
            M::PUT,
            format!("/api/agents/{agent_id}"),
            Some(json!({ "level": 9 })),
            403,
        ),
        (
            &agent,
            M::POST,
            "/api/interactions".into(),
            Some(json!({ "customer": { "email": "x@example.com" } })),
            403,
        ),
        // What a supervisor may and may not do.
        (&supervisor, M::GET, "/api/queue".into(), None, 200),
        (&supervisor, M::GET, "/api/agents".into(), None, 200),
        (&supervisor, M::GET, "/api/audit".into(), None, 200),
        (&supervisor, M::GET, "/api/routing/rules".into(), None, 200),
        (
            &supervisor,
            M::GET,
            "/api/routing/rules/versions".into(),
            None,
            200,
        ),
        (
            &supervisor,
            M::GET,
            format!("/api/interactions/{their_id}"),
            None,
            200,
        ),
        (
            &supervisor,
            M::GET,
            format!("/api/customers/{their_customer}/history"),
            None,
            200,
        ),
        (
            &supervisor,
            M::POST,
            "/api/customers".into(),
            Some(json!({ "identities": [] })),
            403,
        ),
        (
            &supervisor,
            M::POST,
            "/api/agents".into(),
            Some(json!({ "name": "New" })),
            403,
        ),
        (
            &supervisor,
            M::PUT,
            format!("/api/customers/{their_customer}"),
            Some(json!({ "tier": "high" })),
            403,
        ),
        (
            &supervisor,
            M::POST,
            "/api/routing/rules/rollback".into(),
            Some(json!({ "version": 1 })),
            403,
        ),
        (
            &supervisor,
            M::POST,
            "/api/interactions".into(),
            Some(json!({ "customer": { "email": "x@example.com" } })),
            403,
        ),
        // An admin agent may change things, in its own name.
        (
            &admin,
            M::PUT,
            format!("/api/customers/{their_customer}"),
            Some(json!({ "tier": "high" })),
            200,
        ),
        (
            &admin,
            M::POST,
            "/api/agents".into(),
            Some(json!({ "name": "Made by an admin" })),
            201,
        ),
    ];
    for (token, method, path, body, expected) in cases {
        let who = if token == agent {
            "agent"
        } else if token == supervisor {
            "supervisor"
        } else {
            "admin"
        };
        let status = call(&app, token, method.clone(), &path, body).await;
        assert_eq!(status, expected, "{who} {method} {path}");
    }
    let (status, rules_put) = send(
        app.client
            .put(format!("{}/api/routing/rules", app.base))
            .bearer_auth(&supervisor)
            .header("content-type", "application/toml")
            .body(rules),
    )
    .await;
    assert_eq!(
        (status, rules_put["error"].as_str()),
        (403, Some("forbidden"))
    );

    // What an agent may not see is answered as what does not exist: the answer tells
    // nothing of whether the id exists.
    let nobody = "0190c0de-0000-7000-8000-000000000000";
    for (theirs, unknown) in [
        (
            format!("/api/interactions/{their_id}"),
            format!("/api/interactions/{nobody}"),
        ),
        (
            format!("/api/customers/{their_customer}"),
            format!("/api/customers/{nobody}"),
        ),
        (
            format!("/api/interactions/{their_id}/attachments/x"),
            format!("/api/interactions/{nobody}/attachments/x"),
        ),
    ] {
        let get = |path: String| {
            send(
                app.client
                    .get(format!("{}{path}", app.base))
                    .bearer_auth(&agent),
            )
        };
        let (a, b) = (get(theirs.clone()).await, get(unknown).await);
        assert_eq!((a.0, b.0), (404, 404), "{theirs}: {} / {}", a.1, b.1);
        assert_eq!(a.1["error"], b.1["error"]);
        assert_eq!(
            a.1["message"]
                .as_str()
                .unwrap()
                .replace(their_id, "ID")
                .replace(their_customer, "ID"),
            b.1["message"].as_str().unwrap().replace(nobody, "ID"),
            "{theirs}"
        );
    }

    let (_, audit) = app.get("/api/audit?action=customer.update").await;
    assert_eq!(
        audit["entries"][0]["actor"],
        admin_id.as_str(),
        "changes are recorded in the name of who made them"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_move_work_and_set_agents_away() {
    let app = spawn_app(Backend::Sqlite).await;
    let (a_id, a_token) =
        create_agent(&app, json!({ "name": "A", "capacity": { "api": 1 } })).await;
    let (b_id, b_token) =
        create_agent(&app, json!({ "name": "B", "capacity": { "api": 1 } })).await;
    let (_, sup) = create_agent(&app, json!({ "name": "S", "role": "supervisor" })).await;
    let mut a = Desktop::available(&app.base, &a_token).await;
    let first = app
        .contact(json!({ "customer": { "email": "one@example.com" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.take_offer().await, first);
    let mut b = Desktop::login(&app.base, &b_token, None).await;

    // An assigned interaction handed from A to B.
    let moved = send(
        app.client
            .post(format!("{}/api/interactions/{first}/move", app.base))
            .bearer_auth(&sup)
            .json(&json!({ "agent_id": b_id })),
    )
    .await;
    assert_eq!(
        (moved.0, moved.1["result"].as_str()),
        (200, Some("reassigned")),
        "{}",
        moved.1
    );
    let ended = a.expect("interaction_ended").await;
    assert_eq!(
        (ended["interaction_id"].as_str(), ended["reason"].as_str()),
        (Some(first.as_str()), Some("moved"))
    );
    assert_eq!(b.expect("assigned").await["interaction_id"], first.as_str());
    let (_, i) = app.get(&format!("/api/interactions/{first}")).await;
    assert_eq!(i["agent_id"], b_id.as_str());
    assert!(i["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "moved"));

    // A set away: no more offers to A; a waiting contact moved to A is offered all the same.
    let away = send(
        app.client
            .post(format!("{}/api/agents/{a_id}/away", app.base))
            .bearer_auth(&sup)
            .json(&json!({ "reason": "coaching" })),
    )
    .await;
    assert_eq!(away.0, 200, "{}", away.1);
    let p = a.expect("presence").await;
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("away"), Some("coaching"))
    );
    let second = app
        .contact(json!({ "customer": { "email": "two@example.com" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let moved = send(
        app.client
            .post(format!("{}/api/interactions/{second}/move", app.base))
            .bearer_auth(&sup)
            .json(&json!({ "agent_id": a_id })),
    )
    .await;
    assert_eq!(
        (moved.0, moved.1["result"].as_str()),
        (200, Some("offered")),
        "{}",
        moved.1
    );
    assert_eq!(a.take_offer().await, second);
    // Away, A was offered nothing by routing: the one offer of it is the move's.
    let (_, i) = app.get(&format!("/api/interactions/{second}")).await;
    let offers: Vec<&Value> = i["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "offered")
        .collect();
    assert_eq!(offers.len(), 1, "{i}");
    let reason = offers[0]["data"]["decision"]["considered"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("moved here by"), "{reason}");

    // Not for agents; not to nobody.
    let refused = send(
        app.client
            .post(format!("{}/api/interactions/{second}/move", app.base))
            .bearer_auth(&a_token)
            .json(&json!({ "agent_id": b_id })),
    )
    .await;
    assert_eq!(refused.0, 403);
    let (status, _) = send(
        app.client
            .post(format!("{}/api/agents/{b_id}/away", app.base))
            .bearer_auth(&a_token)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, e) = app
        .post(
            &format!("/api/interactions/{second}/move"),
            &json!({ "agent_id": "nobody" }),
        )
        .await;
    assert_eq!((status, e["field"].as_str()), (400, Some("agent_id")));
    let (_, audit) = app.get("/api/audit?action=interaction.move").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn an_agent_gets_neither_another_agents_attachment_nor_the_live_queue(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use lettre::message::{header::ContentType, Attachment, MultiPart};
    use lettre::AsyncTransport;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app(backend).await;
    let (_, holder) = create_agent(&app, json!({ "name": "Holder" })).await;
    let (_, other) = create_agent(&app, json!({ "name": "Other" })).await;
    let (_, supervisor) =
        create_agent(&app, json!({ "name": "Supervisor", "role": "supervisor" })).await;
    let mut desk = Desktop::available(&app.base, &holder).await;
    let mail = lettre::Message::builder()
        .from("ivy@example.com".parse().unwrap())
        .to("support@example.com".parse().unwrap())
        .subject("My contract")
        .multipart(
            MultiPart::mixed()
                .singlepart(lettre::message::SinglePart::plain("Attached.".to_string()))
                .singlepart(Attachment::new("contract.pdf".into()).body(
                    b"%PDF-1.4 private".to_vec(),
                    ContentType::parse("application/pdf").unwrap(),
                )),
        )
        .unwrap();
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.unwrap().port())
        .build()
        .send(mail)
        .await
        .unwrap();
    let id = desk.take_offer().await;
    let (_, i) = app.get(&format!("/api/interactions/{id}")).await;
    let url = i["attachments"][0]["url"].as_str().unwrap().to_string();
    let get = |token: &str, path: &str| {
        app.client
            .get(format!("{}{path}", app.base))
            .bearer_auth(token.to_string())
            .send()
    };

    // The agent holding it, and a supervisor, download it.
    for token in [&holder, &supervisor] {
        let r = get(token, &url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.unwrap()[..], b"%PDF-1.4 private");
    }
    // Another agent is told what it would be told of a file that does not exist.
    let file = url.rsplit('/').next().unwrap();
    let nobody = "0190c0de-0000-7000-8000-000000000000";
    let theirs = get(&other, &url).await.unwrap();
    let missing = get(
        &other,
        &format!("/api/interactions/{nobody}/attachments/{file}"),
    )
    .await
    .unwrap();
    assert_eq!(
        (theirs.status().as_u16(), missing.status().as_u16()),
        (404, 404)
    );
    let (theirs, missing): (Value, Value) =
        (theirs.json().await.unwrap(), missing.json().await.unwrap());
    assert_eq!(
        theirs["message"].as_str().unwrap().replace(&id, "ID"),
        missing["message"].as_str().unwrap().replace(nobody, "ID"),
    );
    assert!(!theirs.to_string().contains("PDF"), "{theirs}");

    // The live queue: a supervisor's token is let in, an agent's is closed with 4001.
    let url = format!("{}/supervisor/ws", app.base.replacen("http://", "ws://", 1));
    for (token, allowed) in [(&supervisor, true), (&holder, false), (&other, false)] {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.send(Message::Text(
            json!({ "type": "login", "token": token })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("an answer within 10 s");
        match frame {
            Some(Ok(Message::Text(t))) if allowed => {
                let q: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(q["type"], "queue", "{q}");
            }
            Some(Ok(Message::Close(Some(c)))) if !allowed => {
                assert_eq!(
                    (u16::from(c.code), c.reason.as_str()),
                    (4001, "invalid token")
                );
            }
            other => panic!("allowed: {allowed}, got {other:?}"),
        }
    }
    app.stop().await;
}
