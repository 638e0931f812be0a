//! Nothing accepted is lost: the server is killed with SIGKILL while contacts are being
//! acknowledged, started again on the same data, and every acknowledged one is there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::helpers::{send, start_process, Backend, TOKEN};

both_backends!(every_contact_acknowledged_before_a_sigkill_is_queued_after_restart);

async fn every_contact_acknowledged_before_a_sigkill_is_queued_after_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let mut server = start_process(&url, dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Sixteen clients post contacts as fast as they are answered; each keeps the ones
    // acknowledged (201) with their keys. The kill comes while requests are in flight.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..16 {
        let (client, base, acked) = (client.clone(), server.base.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            for n in 0.. {
                let key = format!("crash-{w}-{n}");
                let body = json!({ "idempotency_key": key, "customer": { "email": format!("c{w}@example.com") }, "subject": "crash test" });
                let Ok(resp) = client.post(format!("{base}/api/interactions")).bearer_auth(TOKEN).json(&body).send().await else { break };
                if resp.status() != 201 {
                    break;
                }
                let Ok(v) = resp.json::<serde_json::Value>().await else { break };
                acked.lock().unwrap().push((key, v["id"].as_str().unwrap().to_string()));
            }
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("SIGKILL the server");
    server.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    let mut server = start_process(&url, dir.path());
    let (status, ready) = send(client.get(format!("{}/readyz", server.base))).await;
    assert_eq!(status, 200);
    assert!(
        ready["queued"].as_u64().unwrap() >= acked.len() as u64,
        "{ready} vs {} acknowledged",
        acked.len()
    );
    for (key, id) in &acked {
        let (status, i) = send(
            client
                .get(format!("{}/api/interactions/{id}", server.base))
                .bearer_auth(TOKEN),
        )
        .await;
        assert_eq!(
            status, 200,
            "acknowledged interaction {id} ({key}) is missing after the crash"
        );
        assert_eq!(i["state"], "queued");
    }
    // A channel that retries after the crash gets the same interaction, not a second one.
    let (key, id) = &acked[acked.len() / 2];
    let w = key.split('-').nth(1).unwrap();
    let body = json!({ "idempotency_key": key, "customer": { "email": format!("c{w}@example.com") }, "subject": "crash test" });
    let (status, again) = send(
        client
            .post(format!("{}/api/interactions", server.base))
            .bearer_auth(TOKEN)
            .json(&body),
    )
    .await;
    assert_eq!((status, again["id"].as_str().unwrap()), (200, id.as_str()));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
