//! Customer admin over the API: identities, explicit tiers, purchases, history paging.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_app, Backend};

both_backends!(
    an_admin_creates_finds_and_updates_a_customer,
    an_identity_owned_by_another_customer_is_a_conflict,
    history_pages_newest_first_without_gaps_or_repeats,
    customers_are_found_by_part_of_a_name_or_the_start_of_an_identity,
);

async fn an_admin_creates_finds_and_updates_a_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, c) = app
        .post(
            "/api/customers",
            &json!({ "name": "Ana Souza", "identities": [
                { "kind": "external_id", "value": "crm-1001" },
                { "kind": "email", "value": "Ana@Example.com" },
                { "kind": "phone", "value": "+55 11 98765 4321" } ] }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["tier"]["tier"], "low");

    for query in [
        "email=ana%40example.com",
        "phone=%2B5511987654321",
        "external_id=crm-1001",
    ] {
        let (status, found) = app.get(&format!("/api/customers?{query}")).await;
        assert_eq!(
            (status, found["id"].as_str().unwrap()),
            (200, id),
            "{query}"
        );
    }
    let (status, _) = app.get("/api/customers?email=nobody%40example.com").await;
    assert_eq!(status, 404);

    let (status, c) = app
        .put(
            &format!("/api/customers/{id}"),
            &json!({ "tier": "medium", "identities": [{ "kind": "visitor_id", "value": "v-77" }] }),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c["tier"],
        json!({ "tier": "medium", "source": "explicit", "reason": "tier 'medium' set explicitly on the customer" })
    );
    assert_eq!(c["name"], "Ana Souza", "a field left out stays as it was");
    assert_eq!(c["identities"].as_array().unwrap().len(), 4);

    let (status, c) = app
        .put(
            &format!("/api/customers/{id}"),
            &json!({ "tier": null, "lifetime_value": 30000 }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(c["explicit_tier"], json!(null));
    assert_eq!(c["tier"]["tier"], "high");
    assert_eq!(c["lifetime_value"], "30000.00");

    let (status, err) = app
        .put(
            &format!("/api/customers/{id}"),
            &json!({ "tier": "platinum" }),
        )
        .await;
    assert_eq!((status, err["field"].as_str().unwrap()), (400, "tier"));

    // A purchase sent again under the same reference replaces, not adds.
    let (s1, _) = app
        .put(
            &format!("/api/customers/{id}/purchases/A-1"),
            &json!({ "amount": 10.0, "at": "2026-01-05" }),
        )
        .await;
    let (s2, c) = app
        .put(
            &format!("/api/customers/{id}/purchases/A-1"),
            &json!({ "amount": 12.5, "at": "2026-01-05" }),
        )
        .await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(
        c["purchases"],
        json!({ "count": 1, "total": "12.50", "last_at": "2026-01-05T00:00:00Z" })
    );
    let (status, err) = app
        .put(
            &format!("/api/customers/{id}/purchases/A-2"),
            &json!({ "amount": 5, "at": "someday" }),
        )
        .await;
    assert_eq!((status, err["field"].as_str().unwrap()), (400, "at"));

    assert_eq!(
        app.delete(&format!("/api/customers/{id}/identities/visitor_id/v-77"))
            .await,
        200
    );
    let (status, _) = app.get("/api/customers?visitor_id=v-77").await;
    assert_eq!(status, 404);

    let (_, history) = app.get(&format!("/api/customers/{id}/history")).await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"customer_updated")
            && kinds.contains(&"purchase_recorded")
            && kinds.contains(&"identity_removed"),
        "{kinds:?}"
    );
    let update = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "customer_updated")
        .unwrap();
    assert_eq!(update["actor"], "admin");
    assert!(
        update["data"]["before"].is_object() && update["data"]["after"].is_object(),
        "{update}"
    );
    app.stop().await;
}

async fn an_identity_owned_by_another_customer_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, a) = app
        .post(
            "/api/customers",
            &json!({ "identities": [{ "kind": "email", "value": "one@example.com" }] }),
        )
        .await;
    let (_, b) = app
        .post(
            "/api/customers",
            &json!({ "identities": [{ "kind": "email", "value": "two@example.com" }] }),
        )
        .await;
    let (status, err) = app
        .put(&format!("/api/customers/{}", b["id"].as_str().unwrap()), &json!({ "name": "Two", "identities": [{ "kind": "email", "value": "ONE@example.com" }] }))
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["field"], "identities[0]");
    let (_, b_after) = app
        .get(&format!("/api/customers/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        b_after["name"],
        json!(null),
        "a refused update changes nothing"
    );
    let (_, owner) = app.get("/api/customers?email=one%40example.com").await;
    assert_eq!(owner["id"], a["id"]);
    app.stop().await;
}

async fn history_pages_newest_first_without_gaps_or_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..7 {
        app.contact(json!({ "idempotency_key": format!("p-{i}"), "customer": { "email": "pager@example.com" } })).await;
    }
    let (_, c) = app.get("/api/customers?email=pager%40example.com").await;
    let id = c["id"].as_str().unwrap();
    let mut seqs = Vec::new();
    let mut path = format!("/api/customers/{id}/history?limit=4");
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 4);
        seqs.extend(events.iter().map(|e| e["seq"].as_i64().unwrap()));
        match page["next_before"].as_i64() {
            Some(before) => path = format!("/api/customers/{id}/history?limit=4&before={before}"),
            None => break,
        }
    }
    // 7 contacts × 3 events, plus the customer's creation and its email identity.
    assert_eq!(seqs.len(), 23);
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first: {seqs:?}"
    );
    let (status, err) = app
        .get(&format!("/api/customers/{id}/history?limit=0"))
        .await;
    assert_eq!((status, err["field"].as_str().unwrap()), (400, "limit"));
    app.stop().await;
}

async fn customers_are_found_by_part_of_a_name_or_the_start_of_an_identity(backend: Backend) {
    let app = spawn_app(backend).await;
    for (name, email, phone) in [
        ("Mei Chen", "mei.chen@example.com", "+8613800000001"),
        ("Chen Wei", "wei@example.org", "+8613800000002"),
        ("Ana 100% Lima", "ana@example.com", "+5511999990000"),
    ] {
        let (status, c) = app
            .post(
                "/api/customers",
                &json!({ "name": name, "identities": [
                    { "kind": "email", "value": email }, { "kind": "phone", "value": phone }] }),
            )
            .await;
        assert_eq!(status, 201, "{c}");
    }
    let names = |v: &Value| -> Vec<String> {
        v["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    // Part of a name, any case; by name.
    let (status, found) = app.get("/api/customers/search?q=chEN").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(names(&found), ["Chen Wei", "Mei Chen"]);
    assert_eq!(found["customers"][1]["identities"][0]["kind"], "email");
    // The start of an identity: an address, a number.
    let (_, found) = app.get("/api/customers/search?q=MEI.CH").await;
    assert_eq!(names(&found), ["Mei Chen"]);
    let (_, found) = app.get("/api/customers/search?q=%2B86138").await;
    assert_eq!(names(&found), ["Chen Wei", "Mei Chen"]);
    // Not the middle of an identity; wildcards are plain characters.
    let (_, found) = app.get("/api/customers/search?q=example.org").await;
    assert_eq!(names(&found), Vec::<String>::new());
    let (_, found) = app.get("/api/customers/search?q=%25").await;
    assert_eq!(names(&found), ["Ana 100% Lima"]);
    let (_, found) = app.get("/api/customers/search?q=_").await;
    assert_eq!(names(&found), Vec::<String>::new());
    let (_, found) = app.get("/api/customers/search?q=e&limit=1").await;
    assert_eq!(names(&found).len(), 1);
    // Bounded input, answered in the API's own errors.
    let (status, e) = app.get("/api/customers/search?q=%20").await;
    assert_eq!(status, 400, "{e}");
    let (status, _) = app
        .get(&format!("/api/customers/search?q={}", "x".repeat(101)))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.get("/api/customers/search?q=a&limit=51").await;
    assert_eq!(status, 400);
    app.stop().await;
}
