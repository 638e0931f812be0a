//! Nothing accepted is lost: the server is killed with SIGKILL while contacts are being
//! acknowledged, started again on the same data, and every acknowledged one is there; and
//! nothing is acknowledged that the store could not commit.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_all_queued, send, start_process, Backend, Load, TOKEN};

both_backends!(every_contact_acknowledged_before_a_sigkill_is_queued_after_restart);

async fn every_contact_acknowledged_before_a_sigkill_is_queued_after_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let mut server = start_process(&url, dir.path());

    // Sixteen clients post contacts as fast as they are answered; the kill comes while
    // requests are in flight.
    let load = Load::start(&server.base, 16, "crash");
    load.until_acknowledged(300).await;
    server.child.kill().expect("SIGKILL the server");
    server.child.wait().unwrap();
    let acked = load.finish().await;

    let server = start_process(&url, dir.path());
    let client = reqwest::Client::new();
    let (status, ready) = send(client.get(format!("{}/readyz", server.base))).await;
    assert_eq!(status, 200);
    assert!(
        ready["queued"].as_u64().unwrap() >= acked.len() as u64,
        "{ready} vs {} acknowledged",
        acked.len()
    );
    assert_all_queued(&server.base, &acked).await;

    // A channel that retries after the crash gets the same interaction, not a second one.
    let (key, id) = &acked[acked.len() / 2];
    let w = key.split('-').nth(1).unwrap();
    let body =
        json!({ "idempotency_key": key, "customer": { "email": format!("crash{w}@example.com") } });
    let (status, again) = send(
        client
            .post(format!("{}/api/interactions", server.base))
            .bearer_auth(TOKEN)
            .json(&body),
    )
    .await;
    assert_eq!((status, again["id"].as_str().unwrap()), (200, id.as_str()));
}

/// The store made unable to commit, from outside the server, until [`Outage::end`].
enum Outage {
    /// SQLite: another connection holds the database's write lock (as a backup or a
    /// person at the `sqlite3` prompt might); the server's writes wait out their busy
    /// timeout and fail.
    Sqlite(sqlx::SqliteConnection),
    /// PostgreSQL: the database turned read-only (as a standby is after a failover) and
    /// the server's sessions ended, so the sessions it opens again cannot write.
    Postgres { admin: String, database: String },
}

impl Outage {
    async fn start(database_url: &str) -> Outage {
        use sqlx::Connection;
        if database_url.starts_with("sqlite:") {
            let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut db)
                .await
                .unwrap();
            Outage::Sqlite(db)
        } else {
            let admin = std::env::var("SWITCHBOARD_TEST_PG_URL").unwrap();
            let database = database_url.rsplit('/').next().unwrap().to_string();
            let outage = Outage::Postgres { admin, database };
            outage
                .postgres(&["ALTER DATABASE {db} SET default_transaction_read_only = on"])
                .await;
            outage
        }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(mut db) => {
                sqlx::query("ROLLBACK").execute(&mut db).await.unwrap();
            }
            outage => {
                outage
                    .postgres(&["ALTER DATABASE {db} RESET default_transaction_read_only"])
                    .await
            }
        }
    }

    /// Runs `statements` on the admin database, then ends the test database's sessions.
    async fn postgres(&self, statements: &[&str]) {
        use sqlx::Connection;
        let Outage::Postgres { admin, database } = self else {
            return;
        };
        let mut db = sqlx::PgConnection::connect(admin).await.unwrap();
        for sql in statements {
            sqlx::query(&sql.replace("{db}", database))
                .execute(&mut db)
                .await
                .unwrap();
        }
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(database)
            .execute(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
}

both_backends!(a_store_that_cannot_commit_is_answered_503_and_nothing_is_accepted);

async fn a_store_that_cannot_commit_is_answered_503_and_nothing_is_accepted(backend: Backend) {
    use lettre::AsyncTransport;
    let app = crate::helpers::spawn_app(backend).await;
    let contact =
        json!({ "idempotency_key": "outage-1", "customer": { "email": "patient@example.com" } });
    let mail = || {
        lettre::Message::builder()
            .from("writer@example.com".parse().unwrap())
            .to("support@example.com".parse().unwrap())
            .subject("During the outage")
            .message_id(Some("<outage-1@example.com>".into()))
            .body("Sent while the store could not commit.".to_string())
            .unwrap()
    };
    let mailer =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(app.smtp.unwrap().port())
            .build();

    // On SQLite each group of contacts the writer tries waits out the busy timeout (5 s)
    // before it is refused: the mail, arriving after the contact, would wait another 5 s
    // in a group of its own. Its refusal is checked on PostgreSQL, where it is quick.
    let with_mail = !app.database_url.starts_with("sqlite:");
    let outage = Outage::start(&app.database_url).await;
    let post = app
        .admin(reqwest::Method::POST, "/api/interactions")
        .json(&contact)
        .send();
    let mailed = async {
        if with_mail {
            Some(mailer.send(mail()).await)
        } else {
            None
        }
    };
    let (answer, sent) = tokio::join!(post, mailed);
    outage.end().await;
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was accepted"),
        "{body}"
    );
    if let Some(sent) = sent {
        let refused = sent.expect_err("the mail is refused while the store cannot commit");
        assert!(
            refused.is_transient(),
            "a temporary refusal (4xx): {refused}"
        );
        assert!(refused.to_string().contains("451"), "{refused}");
    }

    // Nothing of either was kept: the same contact and the same mail, sent again now,
    // are new.
    let (status, _) = app.get("/api/interactions?channel=api&key=outage-1").await;
    assert_eq!(status, 404, "the refused contact was not accepted");
    let (status, created) = app.post("/api/interactions", &contact).await;
    assert_eq!(status, 201, "{created}");
    if with_mail {
        let again = mailer.send(mail()).await.unwrap();
        let text: String = again.message().collect::<Vec<_>>().join(" ");
        assert!(text.contains("accepted as"), "{text}");
    }
    let (status, ready) = send(app.client.get(format!("{}/readyz", app.base))).await;
    assert_eq!(status, 200, "{ready}");
    app.stop().await;
}
