//! The IMAP poller against a real IMAP server (Dovecot, started on loopback by
//! `.ci/dovecot`): messages put into a mailbox are taken once each, marked seen only once
//! taken, and a restart of Switchboard goes on where it stopped — nothing taken twice,
//! nothing skipped.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use switchboard_email::imap::ImapMailbox;
use tokio::net::TcpStream;

use crate::helpers::{spawn_settings, test_settings, Backend, TestApp};

/// The test IMAP server, from `SWITCHBOARD_TEST_IMAP` (`.ci/run` starts Dovecot and sets
/// it). The tests that need it are ignored unless asked for; asked for without it, they fail.
fn server() -> String {
    std::env::var("SWITCHBOARD_TEST_IMAP").expect(
        "SWITCHBOARD_TEST_IMAP names the test IMAP server (bash .ci/run starts Dovecot and sets it)",
    )
}

async fn session(url: &str) -> async_imap::Session<TcpStream> {
    let addr = url.trim_start_matches("imap://");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    client
        .login("sbtest", "sbtest")
        .await
        .map_err(|(e, _)| e)
        .unwrap()
}

fn message(n: usize, folder: &str) -> String {
    format!(
        "From: Customer {n} <c{n}.{folder}@example.com>\r\nTo: support@shop.test\r\nSubject: Question {n}\r\nMessage-ID: <q{n}.{folder}@example.com>\r\n\r\nQuestion number {n}.\r\n"
    )
}

async fn interactions_of(app: &TestApp, email: &str) -> Vec<Value> {
    let (status, c) = app.get(&format!("/api/customers?email={email}")).await;
    if status == 404 {
        return Vec::new();
    }
    let (_, h) = app
        .get(&format!(
            "/api/customers/{}/history",
            c["id"].as_str().unwrap()
        ))
        .await;
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "email_received")
        .cloned()
        .collect()
}

/// Waits until each of `senders` has a message taken.
async fn until_taken(app: &TestApp, folder: &str, senders: std::ops::Range<usize>) {
    for _ in 0..200 {
        let mut all = true;
        for n in senders.clone() {
            if interactions_of(app, &format!("c{n}.{folder}@example.com"))
                .await
                .is_empty()
            {
                all = false;
            }
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the poller did not take messages {senders:?} within 20 s");
}

/// How many of the folder's messages are marked seen.
async fn seen(url: &str, folder: &str) -> usize {
    let mut s = session(url).await;
    s.select(folder).await.unwrap();
    let fetched: Vec<_> = s
        .fetch("1:*", "FLAGS")
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    fetched
        .into_iter()
        .filter_map(Result::ok)
        .filter(|f| f.flags().any(|fl| fl == async_imap::types::Flag::Seen))
        .count()
}

async fn a_mailbox_is_taken_once_across_a_restart(backend: Backend) {
    let url = server();
    let folder = format!("t{}", uuid_like());
    let mut imap = session(&url).await;
    imap.create(&folder).await.unwrap();
    for n in 0..3 {
        imap.append(&folder, None, None, message(n, &folder))
            .await
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&backend, &dir).await;
    settings.email.imap = vec![ImapMailbox {
        url: url.clone(),
        username: "sbtest".into(),
        password: "sbtest".into(),
        folder: folder.clone(),
        poll_secs: 1,
    }];
    let app = spawn_settings(settings.clone()).await;
    until_taken(&app, &folder, 0..3).await;
    assert_eq!(seen(&url, &folder).await, 3, "marked seen once taken");
    app.stop().await;

    // While Switchboard is down: two new messages, and someone marks an old one unseen
    // again (another mail client): the cursor, not the flag, says what was taken.
    for n in 3..5 {
        imap.append(&folder, None, None, message(n, &folder))
            .await
            .unwrap();
    }
    imap.select(&folder).await.unwrap();
    let _ = imap
        .store("1", "-FLAGS (\\Seen)")
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;

    let app = spawn_settings(settings).await;
    until_taken(&app, &folder, 0..5).await;
    // A message put in afterwards is taken by a later poll than the two above: once it is
    // taken, any poll that would take the old one again has run.
    imap.append(&folder, None, None, message(5, &folder))
        .await
        .unwrap();
    until_taken(&app, &folder, 5..6).await;
    for n in 0..6 {
        let taken = interactions_of(&app, &format!("c{n}.{folder}@example.com")).await;
        assert_eq!(taken.len(), 1, "message {n} taken exactly once");
        assert_eq!(taken[0]["data"]["subject"], format!("Question {n}"));
    }
    assert_eq!(
        seen(&url, &folder).await,
        5,
        "the old message stays as the other client left it"
    );
    app.stop().await;
    imap.logout().await.unwrap();
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

mod a_mailbox_is_taken_once_across_a_restart {
    use crate::helpers::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs Dovecot (SWITCHBOARD_TEST_IMAP): bash .ci/run starts it"]
    async fn sqlite() {
        super::a_mailbox_is_taken_once_across_a_restart(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs Dovecot and PostgreSQL (SWITCHBOARD_TEST_IMAP, SWITCHBOARD_TEST_PG_URL): bash .ci/run starts them"]
    async fn postgres() {
        super::a_mailbox_is_taken_once_across_a_restart(Backend::postgres()).await
    }
}
