//! The API channel: creating interactions, idempotency, tiers, and bad input.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{send, spawn_app, Backend, TestApp};

both_backends!(
    a_new_contact_is_answered_201_with_its_customer_tier_and_queued_state,
    the_same_idempotency_key_twice_is_one_interaction,
    concurrent_retries_of_one_contact_create_it_once,
    a_reused_key_with_different_content_is_refused_409,
    tiers_are_high_medium_and_low_from_value_data,
    a_customer_reached_by_email_and_by_phone_has_one_history,
    a_contact_naming_two_customers_is_noted_as_a_possible_duplicate_and_merges_nothing,
    bad_input_is_answered_with_a_json_error_naming_the_problem,
);

async fn a_new_contact_is_answered_201_with_its_customer_tier_and_queued_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app
        .post(
            "/api/interactions",
            &json!({
                "idempotency_key": "web-form-1",
                "customer": { "email": "Mei.Chen@Example.com", "name": "Mei Chen" },
                "topic": "Billing",
                "subject": "Invoice 42",
                "body": "I was charged twice."
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "queued");
    assert_eq!(body["channel"], "api");
    assert_eq!(body["tier"], "low");
    assert_eq!(body["tier_source"], "default");
    assert_eq!(body["topic"], "billing");
    let id = body["id"].as_str().unwrap();

    let (status, got) = app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], body["id"]);
    assert_eq!(got["body"], "I was charged twice.");
    let kinds: Vec<&str> = got["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["interaction_received", "tier_decided", "queued"]);

    let (_, customer) = app
        .get(&format!(
            "/api/customers/{}",
            body["customer_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(customer["name"], "Mei Chen");
    assert_eq!(
        customer["identities"],
        json!([{ "kind": "email", "value": "mei.chen@example.com" }])
    );
    app.stop().await;
}

async fn the_same_idempotency_key_twice_is_one_interaction(backend: Backend) {
    let app = spawn_app(backend).await;
    let contact = json!({ "idempotency_key": "crm-case-7", "customer": { "phone": "+1 415 555 0123" }, "subject": "Call me back" });
    let (first_status, first) = app.post("/api/interactions", &contact).await;
    let (second_status, second) = app.post("/api/interactions", &contact).await;
    assert_eq!((first_status, second_status), (201, 200));
    assert_eq!(first["id"], second["id"]);

    // The Idempotency-Key header is the same key.
    let no_key = json!({ "customer": { "phone": "+1 415 555 0123" }, "subject": "Call me back" });
    let (s1, a) = send(
        app.admin(reqwest::Method::POST, "/api/interactions")
            .header("Idempotency-Key", "hdr-1")
            .json(&no_key),
    )
    .await;
    let (s2, b) = send(
        app.admin(reqwest::Method::POST, "/api/interactions")
            .header("Idempotency-Key", "hdr-1")
            .json(&no_key),
    )
    .await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(a["id"], b["id"]);

    // Without a key, two contacts are two interactions.
    let (_, c) = app.post("/api/interactions", &no_key).await;
    let (_, d) = app.post("/api/interactions", &no_key).await;
    assert_ne!(c["id"], d["id"]);

    let (_, history) = app
        .get(&format!(
            "/api/customers/{}/history?limit=500",
            first["customer_id"].as_str().unwrap()
        ))
        .await;
    let received = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "interaction_received")
        .count();
    assert_eq!(
        received, 4,
        "two keyed contacts sent twice each and two unkeyed ones: {history}"
    );
    app.stop().await;
}

async fn concurrent_retries_of_one_contact_create_it_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let contact =
        json!({ "idempotency_key": "storm-1", "customer": { "email": "storm@example.com" } });
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let req = app
            .admin(reqwest::Method::POST, "/api/interactions")
            .json(&contact);
        tasks.push(tokio::spawn(send(req)));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 201 || status == 200, "{status}: {body}");
        created += usize::from(status == 201);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry answers the one interaction");
    assert_eq!(created, 1, "exactly one answer says it was created");
    app.stop().await;
}

async fn a_reused_key_with_different_content_is_refused_409(backend: Backend) {
    let app = spawn_app(backend).await;
    app.contact(json!({ "idempotency_key": "k", "customer": { "email": "a@example.com" }, "body": "first" })).await;
    let (status, body) = app
        .post("/api/interactions", &json!({ "idempotency_key": "k", "customer": { "email": "a@example.com" }, "body": "second" }))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["field"], "idempotency_key");
    app.stop().await;
}

/// Makes a customer with `purchases` (amount, days ago) and optional extra fields.
async fn customer_with(
    app: &TestApp,
    email: &str,
    extra: Value,
    purchases: &[(f64, i64)],
) -> String {
    let mut body = json!({ "identities": [{ "kind": "email", "value": email }] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, c) = app.post("/api/customers", &body).await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let now = time::OffsetDateTime::now_utc();
    for (i, (amount, days_ago)) in purchases.iter().enumerate() {
        let at = (now - time::Duration::days(*days_ago))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let (status, _) = app
            .put(
                &format!("/api/customers/{id}/purchases/order-{i}"),
                &json!({ "amount": amount, "at": at }),
            )
            .await;
        assert_eq!(status, 201);
    }
    id
}

async fn tiers_are_high_medium_and_low_from_value_data(backend: Backend) {
    let app = spawn_app(backend).await;
    // Default rules: high needs 6+ purchases and 5000+ in a year with one in the last
    // 90 days (or 20000 lifetime); medium 2+ purchases and 500+ within 180 days (or 5000).
    customer_with(
        &app,
        "whale@example.com",
        json!({}),
        &[
            (1500.0, 5),
            (1500.0, 20),
            (900.0, 40),
            (800.0, 60),
            (700.0, 100),
            (600.0, 200),
        ],
    )
    .await;
    customer_with(
        &app,
        "regular@example.com",
        json!({}),
        &[(300.0, 10), (400.0, 50)],
    )
    .await;
    customer_with(
        &app,
        "lapsed@example.com",
        json!({}),
        &[(300.0, 300), (400.0, 320)],
    )
    .await;
    customer_with(&app, "vip@example.com", json!({ "tier": "high" }), &[]).await;
    customer_with(
        &app,
        "crm@example.com",
        json!({ "lifetime_value": 25000.0 }),
        &[],
    )
    .await;

    let cases = [
        ("whale@example.com", "high", "value"),
        ("regular@example.com", "medium", "value"),
        ("lapsed@example.com", "low", "default"),
        ("vip@example.com", "high", "explicit"),
        ("crm@example.com", "high", "value"),
        ("stranger@example.com", "low", "default"),
    ];
    for (email, tier, source) in cases {
        let i = app.contact(json!({ "customer": { "email": email } })).await;
        assert_eq!(
            (
                i["tier"].as_str().unwrap(),
                i["tier_source"].as_str().unwrap()
            ),
            (tier, source),
            "{email}: {}",
            i["tier_reason"]
        );
        assert!(!i["tier_reason"].as_str().unwrap().is_empty());
    }
    app.stop().await;
}

async fn a_customer_reached_by_email_and_by_phone_has_one_history(backend: Backend) {
    let app = spawn_app(backend).await;
    // A web form gives both: the two identities become one customer.
    let first = app
        .contact(json!({ "idempotency_key": "form-1", "customer": { "email": "li.wei@example.cn", "phone": "+86 138 0013 8000" }, "subject": "Order" }))
        .await;
    let by_mail = app.contact(json!({ "idempotency_key": "mail-1", "customer": { "email": "LI.WEI@example.cn" }, "subject": "Re: Order" })).await;
    let by_phone = app
        .contact(json!({ "idempotency_key": "call-1", "customer": { "phone": "008613800138000" } }))
        .await;
    let customer = first["customer_id"].as_str().unwrap();
    assert_eq!(by_mail["customer_id"], customer);
    assert_eq!(by_phone["customer_id"], customer);

    let (status, history) = app.get(&format!("/api/customers/{customer}/history")).await;
    assert_eq!(status, 200);
    let received: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "interaction_received")
        .map(|e| e["data"]["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        received,
        ["call-1", "mail-1", "form-1"],
        "newest first, across channels"
    );

    // Two records that turn out to be one person: merged, one history.
    let a = app
        .contact(json!({ "idempotency_key": "m-a", "customer": { "email": "sam@example.com" } }))
        .await;
    let b = app
        .contact(json!({ "idempotency_key": "m-b", "customer": { "phone": "+44 20 7946 0018" } }))
        .await;
    assert_ne!(a["customer_id"], b["customer_id"]);
    let (a_id, b_id) = (
        a["customer_id"].as_str().unwrap(),
        b["customer_id"].as_str().unwrap(),
    );
    let (status, merged) = app
        .post(
            &format!("/api/customers/{a_id}/merge"),
            &json!({ "from": b_id }),
        )
        .await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["identities"].as_array().unwrap().len(), 2);
    let later = app
        .contact(json!({ "idempotency_key": "m-c", "customer": { "phone": "+442079460018" } }))
        .await;
    assert_eq!(
        later["customer_id"], a_id,
        "the phone now finds the surviving customer"
    );
    let (_, history) = app.get(&format!("/api/customers/{a_id}/history")).await;
    let keys: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "interaction_received")
        .map(|e| e["data"]["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["m-c", "m-b", "m-a"]);
    let (status, old) = app.get(&format!("/api/customers/{b_id}")).await;
    assert_eq!(
        (status, old["id"].as_str().unwrap()),
        (200, a_id),
        "the merged id answers as the survivor"
    );
    app.stop().await;
}

async fn a_contact_naming_two_customers_is_noted_as_a_possible_duplicate_and_merges_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, by_mail) = app
        .post("/api/customers", &json!({ "tier": "high", "identities": [{ "kind": "email", "value": "kai@example.com" }] }))
        .await;
    let (_, by_phone) = app
        .post(
            "/api/customers",
            &json!({ "identities": [{ "kind": "phone", "value": "+14155550142" }] }),
        )
        .await;
    let (mail_id, phone_id) = (
        by_mail["id"].as_str().unwrap(),
        by_phone["id"].as_str().unwrap(),
    );

    // A web form gives both: the email, more trusted, decides whose contact it is.
    let i = app
        .contact(json!({ "customer": { "email": "KAI@example.com", "phone": "+1 415 555 0142" }, "subject": "Both" }))
        .await;
    assert_eq!(i["customer_id"], mail_id);
    assert_eq!(i["tier"], "high");
    let (_, h) = app.get(&format!("/api/customers/{mail_id}/history")).await;
    let noted: Vec<&Value> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "possible_duplicate")
        .collect();
    assert_eq!(noted.len(), 1, "{h}");
    let d = &noted[0]["data"];
    assert_eq!(
        (
            d["kind"].as_str(),
            d["value"].as_str(),
            d["other_customer_id"].as_str()
        ),
        (Some("phone"), Some("+14155550142"), Some(phone_id)),
        "{d}"
    );
    assert_eq!(noted[0]["actor"], "system");

    // Nothing was merged or moved: each keeps its own identity, the phone still finds
    // its customer, and the other customer's history has no contact.
    let (_, c) = app.get(&format!("/api/customers/{mail_id}")).await;
    assert_eq!(
        c["identities"],
        json!([{ "kind": "email", "value": "kai@example.com" }])
    );
    let (_, found) = app.get("/api/customers?phone=%2B14155550142").await;
    assert_eq!(found["id"], phone_id);
    let (_, other) = app.get(&format!("/api/customers/{phone_id}/history")).await;
    assert!(
        !other["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "interaction_received"),
        "{other}"
    );
    // A contact naming identities of one customer notes nothing.
    app.contact(json!({ "customer": { "email": "kai@example.com" }, "subject": "Only mine" }))
        .await;
    let (_, h) = app.get(&format!("/api/customers/{mail_id}/history")).await;
    let count = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "possible_duplicate")
        .count();
    assert_eq!(count, 1);
    app.stop().await;
}

async fn bad_input_is_answered_with_a_json_error_naming_the_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = format!("{}/api/interactions", app.base);

    // No token, wrong token.
    let (status, body) = send(app.client.post(&url).json(&json!({}))).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "unauthorized")
    );
    let (status, _) = send(app.client.post(&url).bearer_auth("wrong").json(&json!({}))).await;
    assert_eq!(status, 401);

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({ "customer": { "emial": "a@example.com" } }),
            400,
            "customer.emial",
        ),
        (
            json!({ "customer": { "email": "not-an-address" } }),
            400,
            "customer.email",
        ),
        (
            json!({ "customer": { "phone": "+44 12" } }),
            400,
            "customer.phone",
        ),
        (json!({ "customer": {} }), 400, "customer"),
        (
            json!({ "customer": { "email": "a@example.com" }, "topic": "billing & more" }),
            400,
            "topic",
        ),
        (
            json!({ "customer": { "email": "a@example.com" }, "subject": 5 }),
            400,
            "subject",
        ),
        (
            json!({ "customer": { "email": "a@example.com" }, "body": "nul\u{0}byte" }),
            400,
            "body",
        ),
        (
            json!({ "customer": { "email": "a@example.com" }, "priority": "urgent" }),
            400,
            "priority",
        ),
    ];
    for (body, want_status, want_field) in cases {
        let (status, err) = app.post("/api/interactions", &body).await;
        assert_eq!(status, want_status, "{body} → {err}");
        assert_eq!(err["field"], want_field, "{body} → {err}");
        assert!(err["message"].as_str().unwrap().len() > 10, "{err}");
    }

    let (status, err) = send(
        app.admin(reqwest::Method::POST, "/api/interactions")
            .header("content-type", "application/json")
            .body("{\"customer\": "),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        err["message"].as_str().unwrap().contains("not valid JSON"),
        "{err}"
    );

    let (status, err) = send(
        app.admin(reqwest::Method::POST, "/api/interactions")
            .header("content-type", "text/plain")
            .body("hi"),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str().unwrap()),
        (415, "unsupported_media_type")
    );

    let huge = json!({ "customer": { "email": "a@example.com" }, "body": "x".repeat(20 * 1024) });
    let (status, err) = app.post("/api/interactions", &huge).await;
    assert_eq!((status, err["error"].as_str().unwrap()), (413, "too_large"));

    let (status, err) = app
        .get("/api/interactions/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!((status, err["error"].as_str().unwrap()), (404, "not_found"));
    let (status, _) = app.get("/api/customers/nobody").await;
    assert_eq!(status, 404);
    // A path that is not even text is still answered in JSON.
    let (status, err) = app.get("/api/customers/%FF").await;
    assert_eq!((status, err["field"].as_str().unwrap()), (400, "path"));
    let (status, _) = app.get("/api/interactions/%00").await;
    assert_eq!(status, 404);

    // None of it cost anything already accepted.
    let ok = app
        .contact(json!({ "idempotency_key": "after", "customer": { "email": "a@example.com" } }))
        .await;
    assert_eq!(ok["state"], "queued");
    app.stop().await;
}
