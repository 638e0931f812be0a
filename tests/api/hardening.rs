//! What a hostile client does to the real binary: half-open connections by the hundred
//! at a lowered file limit while `/healthz` is polled and an agent works, and the files
//! the server leaves for other local users to read.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::agent_client::Desktop;
use crate::helpers::{start_process_limited, TOKEN};

/// Raises this test process's own file limit, so it can hold more sockets than the
/// server it attacks.
fn raise_own_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// Opens a connection that sends part of a request's headers and then nothing.
async fn half_open(addr: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: switchboard\r\nX-Slow: ")
        .await
        .ok()?;
    Some(s)
}

async fn healthz(client: &reqwest::Client, base: &str) -> Result<u16, String> {
    client
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_starve_neither_health_checks_nor_agents() {
    const SERVER_FILES: u64 = 256;
    assert!(
        raise_own_file_limit() >= 4 * SERVER_FILES,
        "the test needs room for its attack's sockets"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("switchboard.db").display()
    );
    // Headers may take a minute here: the server must cope without waiting for that.
    let server = start_process_limited(
        &db,
        dir.path(),
        &[("SWITCHBOARD__SERVER__HEADER_READ_TIMEOUT_SECS", "60")],
        Some(SERVER_FILES),
    );
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (status, agent) = crate::helpers::send(
        client
            .post(format!("{base}/api/agents"))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": "Ana" })),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let token = agent["token"].as_str().unwrap().to_string();

    // Three times the server's file limit in half-open connections, with a health check
    // every fifty: each is answered.
    let mut attack = Vec::new();
    let mut checks = Vec::new();
    for i in 0..(3 * SERVER_FILES as usize) {
        if let Some(s) = half_open(&addr).await {
            attack.push(s);
        }
        if i % 50 == 49 {
            checks.push(healthz(&client, &base).await);
        }
    }
    assert!(
        checks.iter().all(|c| c == &Ok(200)),
        "health checks under attack: {checks:?}"
    );
    // An agent logs in and is offered a contact, in the middle of it all.
    let mut desk = Desktop::available(&base, &token).await;
    let (status, contact) = crate::helpers::send(
        client
            .post(format!("{base}/api/interactions"))
            .bearer_auth(TOKEN)
            .json(&json!({ "customer": { "email": "under.attack@example.com" } })),
    )
    .await;
    assert_eq!(status, 201, "{contact}");
    let offer = desk.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], contact["id"]);
    // More half-open connections: the agent's working websocket is never the one closed.
    for _ in 0..SERVER_FILES {
        if let Some(s) = half_open(&addr).await {
            attack.push(s);
        }
    }
    desk.send(json!({ "type": "heartbeat" })).await;
    assert_eq!(desk.expect("heartbeat_ack").await["type"], "heartbeat_ack");
    // The server closed most of the attack's connections to make room.
    let mut closed = 0;
    for s in attack.iter_mut() {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= attack.len() - SERVER_FILES as usize,
        "{closed} of {} half-open connections closed",
        attack.len()
    );
    assert_eq!(healthz(&client, &base).await, Ok(200));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("switchboard.db").display()
    );
    let server = start_process_limited(
        &db,
        dir.path(),
        &[("SWITCHBOARD__SERVER__HEADER_READ_TIMEOUT_SECS", "1")],
        None,
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut s = half_open(&addr).await.expect("connects");
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "closed (or answered and closed) within the header timeout: {read:?}"
    );
    // An idle keep-alive connection is closed the same way.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: switchboard\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle keep-alive connection is closed");
    drop(server);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_database_are_private_to_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // As the quick start runs it: no database URL, SQLite in the data directory.
    let server = start_process_limited("", &data, &[], None);
    let (status, _) = crate::helpers::send(
        reqwest::Client::new()
            .post(format!("{}/api/interactions", server.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "customer": { "email": "private@example.com" } })),
    )
    .await;
    assert_eq!(status, 201);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for name in ["switchboard.db", "switchboard.db-wal", "switchboard.db-shm"] {
        let p = data.join(name);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    drop(server);
}
