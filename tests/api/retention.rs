//! Retention end to end: contacts whose content is older than their channel's period
//! lose exactly that content when the leader runs the retention (at its start, then on
//! its schedule, or when an admin asks), and nothing newer; the contacts' metadata stays,
//! contacts in progress keep theirs until they end, and each run is shown, counted and
//! audited without a word of what it removed.
//!
//! The old contacts are written into the store before the server starts, with the times
//! a month-old contact has (the history cannot be changed afterwards, and a server cannot
//! be made to live a month in a test); the new ones come through the real channels.

use serde_json::{json, Value};
use sqlx::Row;
use switchboard::store::Store;

use crate::both_backends;
use crate::helpers::{send, spawn_settings, test_settings, Backend, TestApp};

const DAY_MS: i64 = 86_400_000;
/// The old contact still in progress (the API names interactions by UUID).
const OPEN: &str = "0190a000-0000-7000-8000-000000000031";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An old contact to write into the store: its events are (days ago, kind, data).
struct Old {
    id: &'static str,
    channel: &'static str,
    state: &'static str,
    /// Days ago it came.
    came: f64,
    /// Days ago it last changed (its completion, with the notes).
    changed: f64,
    events: Vec<(f64, &'static str, Value)>,
}

/// Writes `old` as the server would have: the interaction, its history, a file, the
/// channel's copy of each message, a delivered command and a survey answer, each at its
/// time.
async fn write_old(store: &Store, now: i64, old: &Old) {
    let at = |days: f64| now - (days * DAY_MS as f64) as i64;
    let p = store.pool();
    sqlx::query(
        "INSERT INTO interactions (id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, \
         tier_reason, topic, subject, body, state, created_at, updated_at, agent_id, disposition, notes) \
         VALUES ($1, $2, $3, 'h', 'c-old', 'low', 'default', 'no value data', NULL, $4, $5, $6, $7, $8, NULL, $9, $10)",
    )
    .bind(old.id)
    .bind(old.channel)
    .bind(format!("key-{}", old.id))
    .bind(format!("subject of {}", old.id))
    .bind(format!("body of {}", old.id))
    .bind(old.state)
    .bind(at(old.came))
    .bind(at(old.changed))
    .bind((old.state == "completed").then_some("resolved"))
    .bind((old.state == "completed").then(|| format!("notes of {}", old.id)))
    .execute(p)
    .await
    .unwrap();
    for (i, (days, kind, data)) in old.events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO history (customer_id, interaction_id, kind, occurred_at, actor, data) \
             VALUES ('c-old', $1, $2, $3, 'system', $4)",
        )
        .bind(old.id)
        .bind(*kind)
        .bind(at(*days))
        .bind(data.to_string())
        .execute(p)
        .await
        .unwrap();
        if ["email_received", "chat", "voicemail"].contains(kind) {
            sqlx::query(
                "INSERT INTO channel_events (channel, event_key, contact_key, interaction_id, kind, data, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(old.channel)
            .bind(format!("{}-{i}", old.id))
            .bind(format!("key-{}", old.id))
            .bind(old.id)
            .bind(*kind)
            .bind(data.to_string())
            .bind(at(*days))
            .execute(p)
            .await
            .unwrap();
        }
    }
    sqlx::query(
        "INSERT INTO attachments (id, interaction_id, name, content_type, size, data, created_at) \
         VALUES ($1, $2, 'scan.pdf', 'application/pdf', 4, $3, $4)",
    )
    .bind(format!("file-{}", old.id))
    .bind(old.id)
    .bind(b"%PDF".to_vec())
    .bind(at(old.came))
    .execute(p)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (id, channel, payload, attempts, next_at, created_at, delivered_at, interaction_id) \
         VALUES ($1, $2, $3, 1, NULL, $4, $4, $5)",
    )
    .bind(format!("reply:{}", old.id))
    .bind(old.channel)
    .bind(json!({ "interaction_id": old.id, "body": format!("reply to {}", old.id) }).to_string())
    .bind(at(old.changed))
    .bind(old.id)
    .execute(p)
    .await
    .unwrap();
    if old.state == "completed" {
        sqlx::query(
            "INSERT INTO satisfaction (interaction_id, customer_id, answered_by, score, comment, agent_id, tier, topic, channel, answered_at) \
             VALUES ($1, 'c-old', $2, 5, $3, NULL, 'low', NULL, $2, $4)",
        )
        .bind(old.id)
        .bind(old.channel)
        .bind(format!("comment on {}", old.id))
        .bind(at(old.changed))
        .execute(p)
        .await
        .unwrap();
    }
}

/// Everything the store holds of one interaction, as text: what must not change.
async fn held(store: &Store, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let p = store.pool();
    let r = sqlx::query(
        "SELECT subject, body, notes, state, tier, created_at FROM interactions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(p)
    .await
    .unwrap();
    out.push(format!(
        "interaction {:?} {:?} {:?} {} {} {}",
        r.get::<Option<String>, _>(0),
        r.get::<Option<String>, _>(1),
        r.get::<Option<String>, _>(2),
        r.get::<String, _>(3),
        r.get::<String, _>(4),
        r.get::<i64, _>(5)
    ));
    for r in sqlx::query(
        "SELECT kind, occurred_at, data FROM history WHERE interaction_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(p)
    .await
    .unwrap()
    {
        out.push(format!(
            "event {} {} {}",
            r.get::<String, _>(0),
            r.get::<i64, _>(1),
            r.get::<String, _>(2)
        ));
    }
    for r in sqlx::query("SELECT name, size FROM attachments WHERE interaction_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(p)
        .await
        .unwrap()
    {
        out.push(format!(
            "file {} {}",
            r.get::<String, _>(0),
            r.get::<i64, _>(1)
        ));
    }
    for r in sqlx::query(
        "SELECT event_key, data FROM channel_events WHERE interaction_id = $1 ORDER BY event_key",
    )
    .bind(id)
    .fetch_all(p)
    .await
    .unwrap()
    {
        out.push(format!(
            "copy {} {}",
            r.get::<String, _>(0),
            r.get::<String, _>(1)
        ));
    }
    for r in sqlx::query("SELECT id, payload FROM outbox WHERE interaction_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(p)
        .await
        .unwrap()
    {
        out.push(format!(
            "command {} {}",
            r.get::<String, _>(0),
            r.get::<String, _>(1)
        ));
    }
    for r in sqlx::query("SELECT score, comment FROM satisfaction WHERE interaction_id = $1")
        .bind(id)
        .fetch_all(p)
        .await
        .unwrap()
    {
        out.push(format!(
            "score {} {:?}",
            r.get::<i64, _>(0),
            r.get::<Option<String>, _>(1)
        ));
    }
    out
}

/// The history data of an interaction's events, oldest first.
async fn events(store: &Store, id: &str) -> Vec<(String, Value)> {
    sqlx::query("SELECT kind, data FROM history WHERE interaction_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                serde_json::from_str(&r.get::<String, _>(1)).unwrap(),
            )
        })
        .collect()
}

async fn count(store: &Store, sql: &str, id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Waits until the leader's run at its start has gone over every channel with a period.
async fn until_run(app: &TestApp) -> Value {
    for _ in 0..200 {
        let (status, r) = app.get("/api/retention").await;
        assert_eq!(status, 200, "{r}");
        let done = r["channels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["days"] != 0)
            .all(|c| c["last_run_at"].is_string());
        let (_, audit) = app.get("/api/audit?action=retention.run").await;
        if done && !audit["entries"].as_array().unwrap().is_empty() {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the leader did not run the retention at its start");
}

async fn content_older_than_its_channels_period_goes_and_nothing_newer(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&backend, &dir).await;
    settings.retention.email_days = 30;
    settings.retention.chat_days = 30;
    settings.retention.phone_days = 30;
    settings.retention.api_days = 0;
    settings.retention.interval_mins = 1440;

    // A month ago and before, written as the server wrote them.
    let now = now_ms();
    let store = Store::connect(&settings.database_url(), 2).await.unwrap();
    sqlx::query("INSERT INTO customers (id, name, created_at, updated_at) VALUES ('c-old', 'Old Customer', $1, $1)")
        .bind(now - 400 * DAY_MS)
        .execute(store.pool())
        .await
        .unwrap();
    let mail = |text: &str| {
        json!({ "from": "old@example.com", "subject": "Parcel", "text": text, "html": format!("<p>{text}</p>"),
                                     "attachments": [{ "name": "scan.pdf", "size": 4 }], "message_id": "<m@example.com>" })
    };
    let olds = [
        // A mail of 31 days ago: everything of it goes.
        Old {
            id: "mail-31",
            channel: "email",
            state: "completed",
            came: 31.0,
            changed: 30.5,
            events: vec![
                (
                    31.0,
                    "interaction_received",
                    json!({ "channel": "email", "subject": "Parcel" }),
                ),
                (31.0, "email_received", mail("ancient words")),
                (
                    30.5,
                    "completed",
                    json!({ "agent_id": "a-1", "disposition": "resolved", "notes": "notes of mail-31" }),
                ),
            ],
        },
        // 29 days ago: nothing goes.
        Old {
            id: "mail-29",
            channel: "email",
            state: "completed",
            came: 29.0,
            changed: 28.0,
            events: vec![
                (
                    29.0,
                    "interaction_received",
                    json!({ "channel": "email", "subject": "Parcel" }),
                ),
                (29.0, "email_received", mail("young words")),
                (
                    28.0,
                    "completed",
                    json!({ "agent_id": "a-1", "disposition": "resolved", "notes": "notes of mail-29" }),
                ),
            ],
        },
        // A thread of 31 days ago that went on 10 days ago: only its old part goes.
        Old {
            id: "thread",
            channel: "email",
            state: "completed",
            came: 31.0,
            changed: 9.0,
            events: vec![
                (31.0, "email_received", mail("first, ancient")),
                (10.0, "email_received", mail("second, recent")),
                (
                    9.0,
                    "completed",
                    json!({ "agent_id": "a-1", "disposition": "resolved", "notes": "notes of thread" }),
                ),
            ],
        },
        // In progress: its old content waits for its end.
        Old {
            id: OPEN,
            channel: "email",
            state: "queued",
            came: 31.0,
            changed: 31.0,
            events: vec![(31.0, "email_received", mail("still being answered"))],
        },
        Old {
            id: "chat-31",
            channel: "chat",
            state: "completed",
            came: 31.0,
            changed: 31.0,
            events: vec![
                (
                    31.0,
                    "chat",
                    json!({ "type": "message", "from": "visitor", "id": "m1", "text": "old chat words", "seq": 1 }),
                ),
                (
                    31.0,
                    "completed",
                    json!({ "agent_id": "a-1", "disposition": "resolved", "notes": "notes of chat-31" }),
                ),
            ],
        },
        Old {
            id: "call-31",
            channel: "phone",
            state: "abandoned",
            came: 31.0,
            changed: 31.0,
            events: vec![(
                31.0,
                "voicemail",
                json!({ "duration_secs": 31, "recording_url": "https://pbx.example/rec/old.wav", "follow_up": true }),
            )],
        },
        // The API channel keeps its content forever (api_days = 0).
        Old {
            id: "api-400",
            channel: "api",
            state: "completed",
            came: 400.0,
            changed: 399.0,
            events: vec![(
                400.0,
                "interaction_received",
                json!({ "channel": "api", "subject": "Old request" }),
            )],
        },
    ];
    for old in &olds {
        write_old(&store, now, old).await;
    }
    for (id, days) in [("aside-40", 40), ("aside-1", 1)] {
        sqlx::query(
            "INSERT INTO kept_aside (id, channel, aside_key, reason, detail, sender, subject, preview, size, raw, received_at) \
             VALUES ($1, 'email', $1, 'auto_reply', 'Auto-Submitted: auto-replied', 'old@example.com', 'Away', 'Away until', 4, $2, $3)",
        )
        .bind(id)
        .bind(b"Away".to_vec())
        .bind(now - days * DAY_MS)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let mut kept_before = Vec::new();
    for id in ["mail-29", OPEN, "api-400"] {
        kept_before.push(held(&store, id).await);
    }
    let thread_before = events(&store, "thread").await;
    store.close().await;

    // The server starts: as it takes the lead, it runs the retention.
    let app = spawn_settings(settings.clone()).await;
    let fresh = app
        .contact(json!({ "customer": { "email": "new@example.com" }, "subject": "New", "body": "fresh words stay" }))
        .await;
    let state = until_run(&app).await;
    let store = Store::connect(&settings.database_url(), 2).await.unwrap();

    // The old mail: its words, file, copies, reply and comment are gone; its metadata
    // (channel, state, times, agent, disposition, score, sender) stays.
    let r = sqlx::query(
        "SELECT subject, body, notes, state, disposition FROM interactions WHERE id = 'mail-31'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        (
            r.get::<Option<String>, _>(0),
            r.get::<Option<String>, _>(1),
            r.get::<Option<String>, _>(2)
        ),
        (None, None, None)
    );
    assert_eq!(
        (r.get::<String, _>(3), r.get::<Option<String>, _>(4)),
        ("completed".into(), Some("resolved".into()))
    );
    assert_eq!(
        events(&store, "mail-31").await,
        [
            (
                "interaction_received".to_string(),
                json!({ "channel": "email", "redacted": "retention" })
            ),
            (
                "email_received".to_string(),
                json!({ "from": "old@example.com", "message_id": "<m@example.com>", "redacted": "retention" })
            ),
            (
                "completed".to_string(),
                json!({ "agent_id": "a-1", "disposition": "resolved", "redacted": "retention" })
            ),
        ]
    );
    for table in ["attachments", "outbox"] {
        assert_eq!(
            count(
                &store,
                &format!("SELECT COUNT(*) FROM {table} WHERE interaction_id = $1"),
                "mail-31"
            )
            .await,
            0,
            "{table}"
        );
    }
    let copy: String =
        sqlx::query_scalar("SELECT data FROM channel_events WHERE interaction_id = 'mail-31'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(
        !copy.contains("ancient") && copy.contains("\"redacted\":\"retention\""),
        "{copy}"
    );
    let score: (i64, Option<String>) =
        sqlx::query_as("SELECT score, comment FROM satisfaction WHERE interaction_id = 'mail-31'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(score, (5, None));

    // Younger than 30 days, of a channel that keeps forever, or in progress: untouched.
    for (id, before) in ["mail-29", OPEN, "api-400"].iter().zip(&kept_before) {
        assert_eq!(&held(&store, id).await, before, "{id} is unchanged");
    }
    let (_, i) = app
        .get(&format!(
            "/api/interactions/{}",
            fresh["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(i["body"], "fresh words stay");

    // The thread loses its first message only; its subject came 31 days ago, its notes 9.
    let thread = events(&store, "thread").await;
    assert_eq!(
        thread[0].1,
        json!({ "from": "old@example.com", "message_id": "<m@example.com>", "redacted": "retention" })
    );
    assert_eq!(
        thread[1..],
        thread_before[1..],
        "the recent message and the completion stay"
    );
    let r = sqlx::query("SELECT subject, notes FROM interactions WHERE id = 'thread'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        (r.get::<Option<String>, _>(0), r.get::<Option<String>, _>(1)),
        (None, Some("notes of thread".into()))
    );

    // Chat texts and recordings' links of a month ago go too.
    assert_eq!(
        events(&store, "chat-31").await[0].1,
        json!({ "type": "message", "from": "visitor", "id": "m1", "seq": 1, "redacted": "retention" })
    );
    assert_eq!(
        events(&store, "call-31").await[0].1,
        json!({ "duration_secs": 31, "follow_up": true, "redacted": "retention" })
    );
    let aside: Vec<String> = sqlx::query_scalar("SELECT id FROM kept_aside ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(aside, ["aside-1"]);

    // Shown: each channel's period, how far it has gone, the contact waiting to end.
    let email = state["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .unwrap();
    assert_eq!(
        (email["days"].as_i64(), email["deferred"].as_i64()),
        (Some(30), Some(1)),
        "{state}"
    );
    let api = state["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "api")
        .unwrap();
    assert_eq!(
        (api["days"].as_i64(), &api["last_run_at"]),
        (Some(0), &Value::Null),
        "{state}"
    );

    // Audited with its counts, never its words.
    let (_, audit) = app.get("/api/audit?action=retention.run").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["actor"], "retention");
    let email_run = entry["after"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .unwrap();
    assert_eq!(email_run["removed"]["attachments"], 2, "{entry}");
    assert_eq!(email_run["removed"]["mail_kept_aside"], 1, "{entry}");
    let text = audit.to_string();
    for word in [
        "ancient",
        "old chat words",
        "pbx.example",
        "notes of",
        "comment on",
    ] {
        assert!(!text.contains(word), "the audit shows {word}");
    }

    // The contact in progress ends; an admin's run removes its old content now.
    let (status, body) = app
        .post(&format!("/api/interactions/{OPEN}/end"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, run) = send(app.admin(reqwest::Method::POST, "/api/retention/run")).await;
    assert_eq!(status, 200, "{run}");
    let email_run = run["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .unwrap();
    assert_eq!(
        (
            email_run["removed"]["bodies"].as_i64(),
            email_run["deferred"].as_i64()
        ),
        (Some(1), Some(0)),
        "{run}"
    );
    assert_eq!(events(&store, OPEN).await[0].1["redacted"], "retention");
    let (_, state) = app.get("/api/retention").await;
    assert!(
        state["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["deferred"] == 0),
        "{state}"
    );
    // Run again: nothing is left to remove; the admin's run is audited all the same.
    let (_, again) = send(app.admin(reqwest::Method::POST, "/api/retention/run")).await;
    assert!(
        again["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["removed"].as_object().unwrap().values().all(|v| v == 0)),
        "{again}"
    );
    let (_, audit) = app.get("/api/audit?action=retention.run").await;
    let actors: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["admin", "admin", "retention"], "{audit}");

    // Counted by channel and what.
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
        metrics.contains(
            "switchboard_retention_removed_total{channel=\"email\",what=\"attachments\"}"
        ),
        "{metrics}"
    );
    // Only admins run it; supervisors read it.
    let (_, supervisor) =
        crate::agent_client::create_agent(&app, json!({ "name": "Sue", "role": "supervisor" }))
            .await;
    let (status, _) = send(
        app.client
            .post(format!("{}/api/retention/run", app.base))
            .bearer_auth(&supervisor),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        app.client
            .get(format!("{}/api/retention", app.base))
            .bearer_auth(&supervisor),
    )
    .await;
    assert_eq!(status, 200);
    store.close().await;
    app.stop().await;
}

both_backends!(content_older_than_its_channels_period_goes_and_nothing_newer);

/// A retention period the configuration cannot hold is refused at the check, named.
#[test]
fn bad_retention_settings_are_refused_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[retention]\nemail_days = 99999\ninterval_mins = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("retention.email_days: 99999 is over 36500"),
        "{text}"
    );
    assert!(text.contains("retention.interval_mins"), "{text}");
}
