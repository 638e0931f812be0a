//! Bulk customer import: thousands of rows in one request, all or nothing.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_store_unchanged, send, settled_contents, spawn_app, Backend, TestApp};

both_backends!(
    a_csv_of_thousands_of_customers_imports_in_one_request,
    one_bad_row_refuses_the_whole_import_and_every_bad_row_is_reported,
    a_json_import_with_purchases_sets_tiers_and_updates_known_customers,
);

async fn import(app: &TestApp, content_type: &str, body: String) -> (u16, Value) {
    send(
        app.admin(reqwest::Method::POST, "/api/customers/import")
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

async fn a_csv_of_thousands_of_customers_imports_in_one_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut csv = String::from("external_id,email,phone,name,tier,lifetime_value\n");
    for i in 0..3000 {
        let tier = if i % 10 == 0 { "high" } else { "" };
        csv.push_str(&format!(
            "crm-{i},user{i}@example.com,+1415555{:04},User {i},{tier},\n",
            i
        ));
    }
    let (status, body) = import(&app, "text/csv", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "rows": 3000, "created": 3000, "updated": 0 }));
    let (_, c) = app.get("/api/customers?phone=%2B14155550010").await;
    assert_eq!(
        (
            c["name"].as_str().unwrap(),
            c["tier"]["tier"].as_str().unwrap()
        ),
        ("User 10", "high")
    );
    let i = app
        .contact(json!({ "customer": { "email": "USER10@example.com" } }))
        .await;
    assert_eq!(i["customer_id"], c["id"]);
    assert_eq!(i["tier"], "high");
    app.stop().await;
}

async fn one_bad_row_refuses_the_whole_import_and_every_bad_row_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = settled_contents(&app).await;
    let csv = "email,phone,tier,lifetime_value\n\
               good@example.com,,,\n\
               not-an-email,,,\n\
               fine@example.com,+44 12,,\n\
               ok@example.com,,gold,\n\
               more@example.com,,,lots\n\
               good@example.com,,,\n\
               ,,,\n";
    let (status, body) = import(&app, "text/csv", csv.into()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_rows");
    let errors: Vec<(i64, Option<&str>)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["field"].as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (2, Some("email")),
            (3, Some("phone")),
            (4, Some("tier")),
            (5, Some("lifetime_value")),
            (6, Some("email")),
            (7, None)
        ]
    );
    let (status, _) = app.get("/api/customers?email=good%40example.com").await;
    assert_eq!(status, 404, "nothing was written");

    let (status, err) = import(
        &app,
        "text/csv",
        "email,shoe_size\na@example.com,9\n".into(),
    )
    .await;
    assert_eq!((status, err["field"].as_str().unwrap()), (400, "shoe_size"));
    let (status, _) = import(&app, "application/xml", "<x/>".into()).await;
    assert_eq!(status, 415);
    assert_store_unchanged(&app.database_url, &before, "the refused imports").await;
    app.stop().await;
}

async fn a_json_import_with_purchases_sets_tiers_and_updates_known_customers(backend: Backend) {
    let app = spawn_app(backend).await;
    let known = app
        .contact(json!({ "customer": { "email": "known@example.com" } }))
        .await;
    let today = time::OffsetDateTime::now_utc().date();
    let purchases: Vec<Value> = (0..6).map(|i| json!({ "ref": format!("o{i}"), "amount": 1000, "at": (today - time::Duration::days(i * 10)).to_string() })).collect();
    let rows = json!({ "customers": [
        { "email": "known@example.com", "external_id": "crm-9", "purchases": purchases },
        { "phone": "+33 1 42 68 53 00", "name": "Claire", "lifetime_value": 6000 },
    ]});
    let (status, body) = import(&app, "application/json", rows.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "rows": 2, "created": 1, "updated": 1 }));
    let (_, c) = app.get("/api/customers?external_id=crm-9").await;
    assert_eq!(c["id"], known["customer_id"]);
    assert_eq!(c["tier"]["tier"], "high");
    let (_, claire) = app.get("/api/customers?phone=%2B33142685300").await;
    assert_eq!(claire["tier"]["tier"], "medium");

    let (status, body) = import(
        &app,
        "application/json",
        json!([{ "email": "x@example.com", "purchases": [{ "ref": "a", "amount": "ten" }] }])
            .to_string(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "purchases[0].amount");
    app.stop().await;
}
