//! `GET /api/customers/{id}/export`: everything held about a person, as one JSON document
//! (GDPR articles 15 and 20, PIPL article 45) — their record and every record merged into
//! it, identities, purchases, complaints, their history, every interaction with its
//! history (mail, chat transcripts, calls, replies), files (base64), survey answers,
//! callbacks and commands, and mail kept aside from or about them.
//!
//! The document is streamed: a task reads the store one interaction (and one file) at a
//! time and hands the body pieces of about 64 KiB through a small channel, so a customer
//! with years of mail costs the server one interaction's memory, not the whole document.
//! A failure midway cuts the body short (the document does not parse), logged and counted.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::mpsc;

use super::auth::Admin;
use super::erase::live_target;
use super::error::{check_id, ApiError, ApiPath};
use super::views::{EventView, InteractionView};
use super::AppState;
use crate::customers::tier::money;
use crate::store::audit::{self, Change};
use crate::store::bulk::{self, Arg};
use crate::store::erasure::{self, Target};
use crate::store::{channel, history, interactions, now_ms, rfc3339, Conn, Store};
use crate::telemetry;

/// The document's format, named in it.
const FORMAT: &str = "switchboard-customer-export/1";
/// Body pieces are handed on at about this size.
const PIECE: usize = 64 * 1024;

/// `GET /api/customers/{id}/export`: 200 with the document (streamed), 404 unknown, 410
/// erased. A merged customer's id answers as the one it was merged into.
pub async fn export(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("customer", &id)?;
    let target = live_target(&mut *state.store.pool().acquire().await?, &id).await?;
    // Who read whom, and when: before a byte of it leaves.
    let mut tx = state.store.begin_write().await?;
    let change = Change::by(
        &by.actor,
        "customer.export",
        "customer",
        &target.customer_id,
        None,
        None,
    );
    audit::record(&mut tx, &[change], now_ms()).await?;
    tx.commit().await?;

    let (pieces, body) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = state.store.clone();
    let file = format!("customer-{}.json", target.customer_id);
    tokio::spawn(async move {
        let mut out = Out {
            pieces: pieces.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        match write(&store, &target, &mut out).await {
            Ok(()) => match out.flush().await {
                Ok(()) => telemetry::customer_exported("sent"),
                // Only sending is left: the client went away.
                Err(_) => telemetry::customer_exported("cancelled"),
            },
            // The client went away: nobody to tell.
            Err(Stop::Gone) => telemetry::customer_exported("cancelled"),
            Err(Stop::Store(e)) => {
                telemetry::customer_exported("failed");
                tracing::warn!(error = %e, "A customer's export failed midway; its body was cut short");
                // The body ends in an error: the client sees a broken transfer, never a
                // document that looks whole.
                let _ = pieces
                    .send(Err(std::io::Error::other("the export failed")))
                    .await;
            }
        }
    });
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|piece| (piece, body))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        )
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Unexpected(e.into()))
}

/// Why writing stopped.
enum Stop {
    /// The client went away.
    Gone,
    /// The store failed.
    Store(sqlx::Error),
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Store(e)
    }
}

/// The body being written: pieces handed on as they fill.
struct Out {
    pieces: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Out {
    async fn text(&mut self, s: &str) -> Result<(), Stop> {
        self.buf.extend_from_slice(s.as_bytes());
        if self.buf.len() >= PIECE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn json(&mut self, v: &Value) -> Result<(), Stop> {
        self.text(&v.to_string()).await
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.pieces.send(Ok(piece)).await.map_err(|_| Stop::Gone)
    }
}

/// Writes the whole document.
async fn write(store: &Store, target: &Target, out: &mut Out) -> Result<(), Stop> {
    let mut conn = store.pool().acquire().await?;
    let ids = &target.ids;
    let list = bulk::list(1, ids.len());
    let args = || -> Vec<Arg> { ids.iter().map(|i| Arg::from(i.as_str())).collect() };

    out.text(&format!(
        "{{\"format\":{},\"exported_at\":{},\"customer\":",
        json!(FORMAT),
        json!(rfc3339(now_ms()))
    ))
    .await?;
    let customers = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT id, name, explicit_tier, lifetime_value_cents, owner_agent_id, created_at, updated_at \
             FROM customers WHERE id IN ({list}) ORDER BY created_at, id"
        )),
        args(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut records = Vec::new();
    for r in &customers {
        let id: String = r.try_get("id")?;
        records.push((
            id.clone(),
            json!({
                "id": id,
                "name": r.try_get::<Option<String>, _>("name")?,
                "explicit_tier": r.try_get::<Option<String>, _>("explicit_tier")?,
                "lifetime_value": r.try_get::<Option<i64>, _>("lifetime_value_cents")?.map(money),
                "owner": r.try_get::<Option<String>, _>("owner_agent_id")?,
                "created_at": rfc3339(r.try_get("created_at")?),
                "updated_at": rfc3339(r.try_get("updated_at")?),
            }),
        ));
    }
    let (survivor, merged): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|(id, _)| *id == target.customer_id);
    let mut customer = survivor
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .unwrap_or(json!({}));
    customer["merged"] = json!(merged.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
    out.json(&customer).await?;

    let identities = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT kind, value, created_at FROM customer_identities WHERE customer_id IN ({list}) ORDER BY kind, value"
        )),
        args(),
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({ "kind": r.try_get::<String, _>("kind")?, "value": r.try_get::<String, _>("value")?,
                   "since": rfc3339(r.try_get("created_at")?) }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.text(",\"identities\":").await?;
    out.json(&json!(identities)).await?;

    let purchases = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT purchase_ref, amount_cents, purchased_at FROM purchases WHERE customer_id IN ({list}) \
             ORDER BY purchased_at, purchase_ref"
        )),
        args(),
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({ "ref": r.try_get::<String, _>("purchase_ref")?, "amount": money(r.try_get("amount_cents")?),
                   "at": rfc3339(r.try_get("purchased_at")?) }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.text(",\"purchases\":").await?;
    out.json(&json!(purchases)).await?;

    let complaints = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT id, topic, owner_agent_id, opened_at, due_at, state, resolved_at, resolved_by \
             FROM complaints WHERE customer_id IN ({list}) ORDER BY opened_at, id"
        )),
        args(),
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "id": r.try_get::<String, _>("id")?, "topic": r.try_get::<String, _>("topic")?,
            "owner_agent_id": r.try_get::<Option<String>, _>("owner_agent_id")?,
            "opened_at": rfc3339(r.try_get("opened_at")?), "due_at": rfc3339(r.try_get("due_at")?),
            "state": r.try_get::<String, _>("state")?,
            "resolved_at": r.try_get::<Option<i64>, _>("resolved_at")?.map(rfc3339),
            "resolved_by": r.try_get::<Option<String>, _>("resolved_by")?,
        }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.text(",\"complaints\":").await?;
    out.json(&json!(complaints)).await?;

    // Their own events (not about one interaction): created, changed, merged…
    let events = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT seq, customer_id, interaction_id, kind, occurred_at, actor, data FROM history \
             WHERE customer_id IN ({list}) AND interaction_id IS NULL ORDER BY seq"
        )),
        args(),
    )
    .fetch_all(&mut *conn)
    .await?;
    out.text(",\"history\":[").await?;
    for (i, r) in events.iter().enumerate() {
        if i > 0 {
            out.text(",").await?;
        }
        let data: String = r.try_get("data")?;
        let event = history::Event {
            seq: r.try_get("seq")?,
            customer_id: r.try_get("customer_id")?,
            interaction_id: r.try_get("interaction_id")?,
            kind: r.try_get("kind")?,
            occurred_at: r.try_get("occurred_at")?,
            actor: r.try_get("actor")?,
            data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        };
        out.json(&json!(EventView::from(event))).await?;
    }
    out.text("]").await?;

    // Mail kept aside from or about them: one message at a time, its bytes in base64.
    let kept_aside = erasure::kept_aside_about(&mut conn, target).await?;
    out.text(",\"mail_kept_aside\":[").await?;
    let mut first = true;
    for id in &kept_aside {
        let row = sqlx::query(
            "SELECT id, reason, detail, sender, subject, preview, size, received_at, interaction_id, raw \
             FROM kept_aside WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        // Removed since it was found: not held any more.
        let Some(r) = row else { continue };
        if !first {
            out.text(",").await?;
        }
        first = false;
        let raw: Option<Vec<u8>> = r.try_get("raw")?;
        out.json(&json!({
            "id": r.try_get::<String, _>("id")?, "reason": r.try_get::<String, _>("reason")?,
            "detail": r.try_get::<String, _>("detail")?, "from": r.try_get::<Option<String>, _>("sender")?,
            "subject": r.try_get::<Option<String>, _>("subject")?, "preview": r.try_get::<Option<String>, _>("preview")?,
            "size": r.try_get::<i64, _>("size")?, "received_at": rfc3339(r.try_get("received_at")?),
            "interaction_id": r.try_get::<Option<String>, _>("interaction_id")?,
            "raw_base64": raw.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        }))
        .await?;
    }
    out.text("]").await?;

    // Their interactions, oldest first, one at a time.
    let interaction_ids: Vec<String> = bulk::bind_all(
        sqlx::query(&format!(
            "SELECT id FROM interactions WHERE customer_id IN ({list}) ORDER BY created_at, id"
        )),
        args(),
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    out.text(",\"interactions\":[").await?;
    for (i, id) in interaction_ids.iter().enumerate() {
        if i > 0 {
            out.text(",").await?;
        }
        interaction(&mut conn, id, out).await?;
    }
    out.text("]}").await
}

/// One interaction: its record and history, its survey answer, callback and commands,
/// then its files one by one.
async fn interaction(conn: &mut Conn, id: &str, out: &mut Out) -> Result<(), Stop> {
    let Some(row) = interactions::get(conn, id).await? else {
        return out.text("null").await;
    };
    let events = history::of_interaction(conn, id).await?;
    let mut v = json!(InteractionView::new(row, Some(events)));
    v["satisfaction"] = sqlx::query(
        "SELECT score, comment, answered_by, answered_at FROM satisfaction WHERE interaction_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| -> Result<Value, sqlx::Error> {
        Ok(json!({ "score": r.try_get::<i64, _>("score")?, "comment": r.try_get::<Option<String>, _>("comment")?,
                   "answered_by": r.try_get::<String, _>("answered_by")?, "answered_at": rfc3339(r.try_get("answered_at")?) }))
    })
    .transpose()?
    .unwrap_or(Value::Null);
    v["callback"] = sqlx::query(
        "SELECT number, source, attempts, state, last_result FROM callbacks WHERE interaction_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| -> Result<Value, sqlx::Error> {
        Ok(json!({ "number": r.try_get::<String, _>("number")?, "source": r.try_get::<String, _>("source")?,
                   "attempts": r.try_get::<i64, _>("attempts")?, "state": r.try_get::<String, _>("state")?,
                   "last_result": r.try_get::<Option<String>, _>("last_result")? }))
    })
    .transpose()?
    .unwrap_or(Value::Null);
    let commands = sqlx::query(
        "SELECT id, channel, payload, created_at, delivered_at FROM outbox WHERE interaction_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        let payload: String = r.try_get("payload")?;
        Ok(json!({ "id": r.try_get::<String, _>("id")?, "channel": r.try_get::<String, _>("channel")?,
                   "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::String(payload)),
                   "created_at": rfc3339(r.try_get("created_at")?),
                   "delivered_at": r.try_get::<Option<i64>, _>("delivered_at")?.map(rfc3339) }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    v["commands"] = json!(commands);
    // The record without its closing brace, then its files.
    let text = v.to_string();
    out.text(&text[..text.len() - 1]).await?;
    out.text(",\"attachments\":[").await?;
    let files = channel::files_of(conn, id).await?;
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.text(",").await?;
        }
        let data = channel::file(conn, id, &f.id)
            .await?
            .and_then(|(_, _, d)| d);
        out.json(&json!({
            "id": f.id, "name": f.name, "content_type": f.content_type, "size": f.size,
            "data_base64": data.map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
        }))
        .await?;
    }
    out.text("]}").await
}
