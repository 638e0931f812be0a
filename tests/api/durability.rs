//! Nothing accepted is lost: the server is killed with SIGKILL while contacts are being
//! acknowledged, started again on the same data, and every acknowledged one is there.

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
