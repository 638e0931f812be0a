//! Search: an agent finds the conversations it has held, and their customers, by a
//! Chinese word of a chat, an English word of a mail, a customer's name or address; it
//! never finds another agent's; supervisors find everything; what is written is found at
//! once, and what was stored before the index existed is found too.

use lettre::AsyncTransport;
use serde_json::{json, Value};

use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::chat::Visitor;
use crate::helpers::{
    db_exec, send, spawn_app_with, spawn_settings, test_settings, Backend, TestApp, TOKEN,
};

both_backends!(
    an_agent_finds_its_own_conversations_and_customers_and_no_one_elses,
    bad_searches_are_answered_with_the_field_at_fault,
    what_was_stored_before_the_index_existed_is_found,
    an_agent_finds_its_own_among_thousands_of_others,
);

/// `GET /api/search` with `token` and these parameters: (status, body).
async fn search(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    send(
        app.client
            .get(format!("{}/api/search", app.base))
            .query(params)
            .bearer_auth(token),
    )
    .await
}

/// The ids of the interactions found for `q`.
async fn found(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    let (status, r) = search(app, token, &[("q", q)]).await;
    assert_eq!(status, 200, "{q}: {r}");
    ids(&r["interactions"])
}

/// The names of the customers found for `q`.
async fn customers(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    let (status, r) = search(app, token, &[("q", q)]).await;
    assert_eq!(status, 200, "{q}: {r}");
    r["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.email.domains = vec!["shop.test".into()];
        s.email.from_address = "support@shop.test".into();
    })
    .await
}

async fn an_agent_finds_its_own_conversations_and_customers_and_no_one_elses(backend: Backend) {
    let app = app(backend).await;
    let (ann_id, ann) = create_agent(&app, json!({ "name": "Ann" })).await;
    let (bob_id, bob) = create_agent(&app, json!({ "name": "Bob" })).await;
    let (_, sue) = create_agent(&app, json!({ "name": "Sue", "role": "supervisor" })).await;
    let mut ann_desk = Desktop::available(&app.base, &ann).await;

    // Ann's chat: a visitor writes in Chinese.
    let mut visitor = Visitor::connect(&app).await;
    visitor
        .start(json!({ "type": "start", "visitor_id": "v-search-1" }))
        .await;
    // Its greeting puts it in line; what it is about comes after.
    visitor.write("m0", "您好").await;
    let chat = ann_desk.take_offer().await;
    visitor
        .write("m1", "你好，我想申请退款，订单号是 A1234，请尽快处理。")
        .await;

    // Ann's mail, over SMTP.
    let answer = crate::email::mailer(&app)
        .send(crate::email::plain(
            "kim@example.org",
            "Delivery question",
            "Hello,\r\nthe parcel arrived damaged: the courier left it in the rain.\r\nPlease advise.\r\n",
        ))
        .await
        .unwrap();
    assert_eq!(answer.code().to_string(), "250");
    let mail = ann_desk.take_offer().await;

    // Ann's API contact, from a customer with a name and an address.
    let li = app
        .contact(json!({ "idempotency_key": "s-li", "customer": { "email": "li.wei@example.net", "name": "Li Wei" }, "subject": "Invoice copy", "body": "Please send the invoice again." }))
        .await;
    assert_eq!(ann_desk.take_offer().await, li["id"].as_str().unwrap());
    // And one from a customer with a two-character Chinese name.
    let wang = app
        .contact(json!({ "idempotency_key": "s-wang", "customer": { "email": "wang@example.cn", "name": "王伟" }, "subject": "发票" }))
        .await;
    assert_eq!(ann_desk.take_offer().await, wang["id"].as_str().unwrap());

    // Bob's conversation, which Ann never held.
    ann_desk
        .send(json!({ "type": "presence", "status": "away" }))
        .await;
    ann_desk.expect("presence").await;
    let mut bob_desk = Desktop::available(&app.base, &bob).await;
    let kettle = app
        .contact(json!({ "idempotency_key": "s-bob", "customer": { "email": "zed@example.com", "name": "Zed Rowe" }, "body": "Refund for the broken kettle, please." }))
        .await;
    let kettle = kettle["id"].as_str().unwrap().to_string();
    assert_eq!(bob_desk.take_offer().await, kettle);

    // A Chinese word of the chat (indexed), and a two-character one (recent messages).
    let (status, r) = search(&app, &ann, &[("q", "申请退款")]).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(ids(&r["interactions"]), [chat.as_str()], "{r}");
    let hit = &r["interactions"][0];
    assert_eq!(
        (
            hit["channel"].as_str(),
            hit["matched"].as_str(),
            hit["state"].as_str()
        ),
        (Some("chat"), Some("chat"), Some("assigned")),
        "{r}"
    );
    assert!(hit["snippet"].as_str().unwrap().contains("申请退款"), "{r}");
    assert_eq!(r["indexed"], true);
    let (_, r) = search(&app, &ann, &[("q", "退款")]).await;
    assert_eq!(ids(&r["interactions"]), [chat.as_str()], "{r}");
    assert_eq!(r["indexed"], false);
    // An English word of the mail's body, in any case; two words both in it.
    let (_, r) = search(&app, &ann, &[("q", "COURIER")]).await;
    assert_eq!(ids(&r["interactions"]), [mail.as_str()], "{r}");
    let hit = &r["interactions"][0];
    assert_eq!(hit["matched"], "email_received", "{r}");
    assert_eq!(hit["subject"], "Delivery question");
    assert_eq!(hit["customer_name"], Value::Null);
    assert!(
        hit["snippet"]
            .as_str()
            .unwrap()
            .contains("courier left it in the rain"),
        "{r}"
    );
    assert_eq!(found(&app, &ann, "parcel rain").await, [mail.as_str()]);
    assert!(found(&app, &ann, "parcel snow").await.is_empty());
    // A customer by name (a short and a long word), by email, by a Chinese name.
    assert_eq!(customers(&app, &ann, "li wei").await, ["Li Wei"]);
    assert_eq!(customers(&app, &ann, "li.wei@example").await, ["Li Wei"]);
    assert_eq!(customers(&app, &ann, "王伟").await, ["王伟"]);
    assert_eq!(
        found(&app, &ann, "invoice again").await,
        [li["id"].as_str().unwrap()]
    );

    // Ann never finds Bob's conversation or customer; Bob, a supervisor and an admin do.
    assert!(found(&app, &ann, "kettle").await.is_empty());
    assert!(customers(&app, &ann, "Zed Rowe").await.is_empty());
    assert_eq!(found(&app, &bob, "kettle").await, [kettle.as_str()]);
    assert!(found(&app, &bob, "courier").await.is_empty());
    assert!(found(&app, &bob, "退款").await.is_empty());
    assert_eq!(found(&app, &sue, "kettle").await, [kettle.as_str()]);
    assert_eq!(found(&app, &sue, "courier").await, [mail.as_str()]);
    assert_eq!(customers(&app, &sue, "zed").await, ["Zed Rowe"]);
    assert_eq!(found(&app, TOKEN, "申请退款").await, [chat.as_str()]);
    // "refund" is in Bob's conversation only; the chat says it in Chinese.
    assert_eq!(found(&app, &sue, "refund").await, [kettle.as_str()]);

    // What is written next is found at once: the visitor's next message, Ann's answer.
    visitor
        .send(json!({ "type": "message", "id": "m2", "text": "另外，发票抬头写错了。" }))
        .await;
    visitor.expect("ack").await;
    let (_, r) = search(&app, &ann, &[("q", "发票抬头")]).await;
    assert_eq!(ids(&r["interactions"]), [chat.as_str()], "{r}");
    assert!(r["interactions"][0]["snippet"]
        .as_str()
        .unwrap()
        .contains("发票抬头写错了"));
    ann_desk
        .send(json!({ "type": "reply", "interaction_id": chat, "body": "好的，我们会重新开具发票。", "reply_id": "r1" }))
        .await;
    ann_desk.expect("reply_sent").await;
    assert_eq!(found(&app, &ann, "重新开具").await, [chat.as_str()]);

    // A page at a time, newest match first: "please" is in the chat (请), the mail and
    // Li Wei's contact; the mail's and Li Wei's are in English.
    let (_, first) = search(&app, &ann, &[("q", "please"), ("limit", "1")]).await;
    assert_eq!(
        ids(&first["interactions"]),
        [li["id"].as_str().unwrap()],
        "{first}"
    );
    let before = first["next_before"]
        .as_i64()
        .expect("a next page")
        .to_string();
    let (_, second) = search(
        &app,
        &ann,
        &[("q", "please"), ("limit", "1"), ("before", &before)],
    )
    .await;
    assert_eq!(ids(&second["interactions"]), [mail.as_str()], "{second}");
    assert!(second["customers"].as_array().unwrap().is_empty());
    let (_, both) = search(&app, &ann, &[("q", "please")]).await;
    assert_eq!(
        ids(&both["interactions"]),
        [li["id"].as_str().unwrap(), mail.as_str()]
    );
    assert_eq!(both["next_before"], Value::Null);

    // Ann hands the mail to Bob: she still finds it, and may read it; Bob finds it now.
    ann_desk
        .send(json!({ "type": "presence", "status": "available" }))
        .await;
    ann_desk.expect("presence").await;
    ann_desk
        .send(json!({ "type": "transfer", "interaction_id": mail, "to_agent": bob_id, "note": "Bob knows the courier" }))
        .await;
    ann_desk.expect("interaction_ended").await;
    assert_eq!(bob_desk.take_offer().await, mail);
    assert_eq!(found(&app, &ann, "courier").await, [mail.as_str()]);
    assert_eq!(found(&app, &bob, "courier").await, [mail.as_str()]);
    let (status, i) = send(
        app.client
            .get(format!("{}/api/interactions/{mail}", app.base))
            .bearer_auth(&ann),
    )
    .await;
    assert_eq!(
        (status, i["agent_id"].as_str()),
        (200, Some(bob_id.as_str())),
        "{i}"
    );
    // The hand-over note is found as a note is.
    let (_, r) = search(&app, &bob, &[("q", "knows the courier")]).await;
    assert_eq!(r["interactions"][0]["matched"], "transferred", "{r}");
    // Bob still cannot read what he never held.
    let (status, _) = send(
        app.client
            .get(format!("{}/api/interactions/{chat}", app.base))
            .bearer_auth(&bob),
    )
    .await;
    assert_eq!(status, 404);
    let _ = ann_id;
    app.stop().await;
}

async fn bad_searches_are_answered_with_the_field_at_fault(backend: Backend) {
    let app = app(backend).await;
    let long = "字".repeat(201);
    let many = "one two three four five six seven eight nine ten eleven";
    for (params, field) in [
        (vec![], "q"),
        (vec![("q", "")], "q"),
        (vec![("q", "   ")], "q"),
        (vec![("q", long.as_str())], "q"),
        (vec![("q", many)], "q"),
        (vec![("q", "a\u{7}b")], "q"),
        (vec![("q", "refund"), ("limit", "0")], "limit"),
        (vec![("q", "refund"), ("limit", "51")], "limit"),
        (vec![("q", "refund"), ("before", "0")], "before"),
        (vec![("q", "refund"), ("limit", "ten")], "query"),
        (vec![("q", "refund"), ("sort", "new")], "query"),
    ] {
        let (status, r) = search(&app, TOKEN, &params).await;
        assert_eq!(
            (status, r["field"].as_str()),
            (400, Some(field)),
            "{params:?}: {r}"
        );
        assert!(!r["message"].as_str().unwrap_or_default().is_empty(), "{r}");
    }
    // At the bounds, and with every character LIKE and FTS5 treat specially: answered.
    for q in [
        "字".repeat(200),
        "one two three four five six seven eight nine ten".into(),
        "\"%_\\ AND OR NOT * ( ) : ^".into(),
        "x".into(),
    ] {
        let (status, r) = search(&app, TOKEN, &[("q", &q), ("limit", "50")]).await;
        assert_eq!(status, 200, "{q}: {r}");
        assert!(r["interactions"].as_array().unwrap().is_empty(), "{r}");
    }
    let (status, _) = send(app.client.get(format!("{}/api/search?q=refund", app.base))).await;
    assert_eq!(status, 401);
    app.stop().await;
}

async fn what_was_stored_before_the_index_existed_is_found(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&backend, &dir).await;
    let app = spawn_settings(settings.clone()).await;
    let (_, ann) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut desk = Desktop::available(&app.base, &ann).await;
    let c = app
        .contact(json!({ "idempotency_key": "old-1", "customer": { "email": "mei@example.cn", "name": "陈美玲" }, "subject": "旧的问题", "body": "去年的包裹一直没有收到" }))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(desk.take_offer().await, id);
    desk.send(json!({ "type": "note", "interaction_id": id, "text": "客户很着急，明天回电" }))
        .await;
    desk.expect("note").await;
    drop(desk);
    app.stop().await;

    // The store as it was before the search migration: its objects gone, unapplied.
    db_exec(
        &settings.database_url(),
        "DROP TRIGGER interaction_holders_insert; DROP TRIGGER interaction_holders_update;
         DROP TABLE interaction_holders; DROP TABLE search_held;
         DROP TRIGGER search_index_add; DROP TABLE search_index; DROP VIEW search_documents;
         DROP TRIGGER customers_search_insert; DROP TRIGGER customers_search_rename;
         DROP TRIGGER customers_search_delete; DROP TRIGGER customer_identities_search_insert;
         DROP TRIGGER customer_identities_search_delete; DROP TRIGGER customer_identities_search_update;
         DROP TABLE search_customers; DROP TABLE search_customer_terms;
         DELETE FROM _sqlx_migrations WHERE version = 16;",
        "DROP TABLE interaction_holders; DROP FUNCTION interaction_holders_add CASCADE;
         DROP TABLE search_held; DROP FUNCTION search_held_holder;
         DROP FUNCTION search_index_add CASCADE;
         DROP TABLE search_index; DROP VIEW search_documents; DROP FUNCTION search_json;
         DROP INDEX customers_name_search; DROP INDEX customer_identities_search;
         DELETE FROM _sqlx_migrations WHERE version = 16;",
    )
    .await;

    let app = spawn_settings(settings).await;
    assert_eq!(found(&app, &ann, "没有收到").await, [id.as_str()]);
    assert_eq!(found(&app, &ann, "明天回电").await, [id.as_str()]);
    assert_eq!(found(&app, &ann, "旧的").await, [id.as_str()]);
    assert_eq!(customers(&app, &ann, "陈美玲").await, ["陈美玲"]);
    assert_eq!(customers(&app, &ann, "mei@example").await, ["陈美玲"]);
    app.stop().await;
}

async fn an_agent_finds_its_own_among_thousands_of_others(backend: Backend) {
    let app = app(backend).await;
    let (_, ann) = create_agent(&app, json!({ "name": "Ann" })).await;
    let (_, bob) = create_agent(&app, json!({ "name": "Bob" })).await;
    let mut ann_desk = Desktop::available(&app.base, &ann).await;
    let mine = app
        .contact(json!({ "idempotency_key": "k-ann", "customer": { "email": "kai@example.org" }, "body": "The kettle still leaks." }))
        .await;
    let mine = mine["id"].as_str().unwrap().to_string();
    assert_eq!(ann_desk.take_offer().await, mine);
    ann_desk
        .send(json!({ "type": "presence", "status": "away" }))
        .await;
    ann_desk.expect("presence").await;
    let mut bob_desk = Desktop::available(&app.base, &bob).await;
    let theirs = app
        .contact(json!({ "idempotency_key": "k-bob", "customer": { "email": "kim@example.org" }, "body": "Which kettle fits?" }))
        .await;
    let (theirs, customer) = (
        theirs["id"].as_str().unwrap().to_string(),
        theirs["customer_id"].as_str().unwrap().to_string(),
    );
    assert_eq!(bob_desk.take_offer().await, theirs);
    // Bob's conversation grows by 2,500 notes naming the kettle, all newer than Ann's
    // message: more than an agent's search looks up in the index.
    let notes = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
         INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data) \
         SELECT '{customer}', '{theirs}', 'note', 1, 'system', '{{\"text\": \"kettle note ' || i || '\"}}' FROM n"
    );
    db_exec(&app.database_url, &notes, &notes).await;

    // Ann finds hers, and that there is nothing more; by a short word too.
    let (_, r) = search(&app, &ann, &[("q", "kettle")]).await;
    assert_eq!(ids(&r["interactions"]), [mine.as_str()], "{r}");
    assert_eq!(r["next_before"], Value::Null, "{r}");
    assert_eq!(found(&app, &ann, "ke").await, [mine.as_str()]);
    assert_eq!(found(&app, &bob, "kettle").await, [theirs.as_str()]);
    assert_eq!(
        found(&app, TOKEN, "kettle").await,
        [theirs.as_str(), mine.as_str()]
    );
    app.stop().await;
}

/// On PostgreSQL, an index lookup that takes longer than its time (here: it waits for a
/// lock another client holds) gives way to the agent's newest messages, and the answer
/// still comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (SWITCHBOARD_TEST_PG_URL): bash .ci/run starts it"]
async fn on_postgresql_a_slow_index_gives_way_to_the_newest_messages() {
    use sqlx::Connection;
    let app = app(Backend::postgres()).await;
    let (_, ann) = create_agent(&app, json!({ "name": "Ann" })).await;
    let mut desk = Desktop::available(&app.base, &ann).await;
    let old = app
        .contact(json!({ "idempotency_key": "slow-1", "customer": { "email": "kai@example.org" }, "body": "The kettle still leaks." }))
        .await;
    let old = old["id"].as_str().unwrap().to_string();
    assert_eq!(desk.take_offer().await, old);
    let busy = app
        .contact(json!({ "idempotency_key": "slow-2", "customer": { "email": "kim@example.org" }, "body": "A long conversation." }))
        .await;
    let (busy, customer) = (
        busy["id"].as_str().unwrap().to_string(),
        busy["customer_id"].as_str().unwrap().to_string(),
    );
    assert_eq!(desk.take_offer().await, busy);
    // Ann's newest 2,100 messages do not name the kettle: the index must be asked.
    let notes = format!(
        "INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data) \
         SELECT '{customer}', '{busy}', 'note', 1, 'system', '{{\"text\": \"note ' || i || '\"}}' \
         FROM generate_series(1, 2100) i"
    );
    db_exec(&app.database_url, "", &notes).await;

    // Another client holds the table the index lookup reads an agent's interactions from.
    let mut other = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE interaction_holders IN ACCESS EXCLUSIVE MODE")
        .execute(&mut other)
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    };
    let ((status, r), ()) = tokio::join!(search(&app, &ann, &[("q", "kettle")]), release);
    assert_eq!(status, 200, "{r}");
    assert_eq!(ids(&r["interactions"]), [old.as_str()], "{r}");
    assert_eq!(
        crate::helpers::metric(&app, "switchboard_search_index_gave_way_total", "").await,
        1.0
    );
    app.stop().await;
}
