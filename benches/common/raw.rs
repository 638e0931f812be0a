//! The raw durable insert rate of the store, for benchmarks' same-run baselines:
//! interaction rows written straight into a fresh SQLite database (WAL,
//! `synchronous=FULL`, the server's own pragmas and table), with nothing else.

use std::time::{Duration, Instant};

use switchboard::store::interactions::{self, InteractionRow};
use switchboard::store::{new_id, now_ms, Store};

/// Inserts interaction rows straight into a fresh store, `per_txn` to a transaction
/// (as one multi-row statement when `multi`), for `duration`; answers rows per second.
pub async fn raw_inserts(duration: Duration, per_txn: usize, multi: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("raw.db").display());
    let store = Store::connect(&url, 4).await.unwrap();
    let customer = new_id();
    sqlx::query("INSERT INTO customers (id, created_at, updated_at) VALUES ($1, 0, 0)")
        .bind(customer.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    let start = Instant::now();
    let mut rows = 0usize;
    while start.elapsed() < duration {
        let mut tx = store.pool().begin().await.unwrap();
        if multi {
            let rows: Vec<InteractionRow> = (0..per_txn).map(|_| raw_row(&customer)).collect();
            interactions::insert_many(&mut tx, &rows).await.unwrap();
        }
        for _ in 0..if multi { 0 } else { per_txn } {
            let id = new_id();
            sqlx::query(
                "INSERT INTO interactions (id, channel, idempotency_key, request_hash, customer_id, tier, tier_source, \
                 tier_reason, topic, subject, body, state, created_at, updated_at) \
                 VALUES ($1, 'api', $1, 'h', $2, 'low', 'default', 'r', NULL, 'subject', 'body', 'queued', $3, $3)",
            )
            .bind(id.as_str())
            .bind(customer.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        rows += per_txn;
    }
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    store.close().await;
    rate
}

fn raw_row(customer: &str) -> InteractionRow {
    let id = new_id();
    let now = now_ms();
    InteractionRow {
        idempotency_key: id.clone(),
        id,
        channel: "api".into(),
        request_hash: "h".into(),
        customer_id: customer.to_string(),
        tier: "low".into(),
        tier_source: "default".into(),
        tier_reason: "r".into(),
        topic: None,
        subject: Some("subject".into()),
        body: Some("body".into()),
        state: "queued".into(),
        created_at: now,
        updated_at: now,
        agent_id: None,
        disposition: None,
        notes: None,
        preferred_agent_id: None,
        opens_at: None,
        complaint_id: None,
    }
}
