//! What erasure and export look for before anything is changed: the record a customer's
//! id answers as and the records merged into it, their contacts in progress, and what
//! names them outside their own records.

use serde::Serialize;
use sqlx::Row;

use super::args;
use crate::store::bulk;
use crate::store::Conn;

/// A customer as erasure sees it: the record its id answers as (following merges), every
/// record merged into that one, and when it was erased, if it was.
#[derive(Debug, Clone)]
pub struct Target {
    /// The surviving record's id.
    pub customer_id: String,
    /// It and every record merged into it.
    pub ids: Vec<String>,
    /// When it was erased (ms), if it was.
    pub erased_at: Option<i64>,
}

/// The customer `id` answers as, with the records merged into it; `None` when unknown.
pub async fn target(conn: &mut Conn, id: &str) -> Result<Option<Target>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, erased_at FROM customers \
         WHERE id = COALESCE((SELECT merged_into FROM customers WHERE id = $1), $1) AND merged_into IS NULL",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let customer_id: String = row.try_get("id")?;
    let merged: Vec<String> =
        sqlx::query_scalar("SELECT id FROM customers WHERE merged_into = $1 ORDER BY id")
            .bind(customer_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
    let mut ids = vec![customer_id.clone()];
    ids.extend(merged);
    Ok(Some(Target {
        customer_id,
        ids,
        erased_at: row.try_get("erased_at")?,
    }))
}

/// A contact of the customer still in progress (queued, offered or assigned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Open {
    /// The interaction.
    pub interaction_id: String,
    /// Its channel.
    pub channel: String,
    /// Its state.
    pub state: String,
    /// The agent offered or holding it.
    pub agent_id: Option<String>,
}

/// The customer's contacts in progress, oldest first.
pub async fn open_contacts(conn: &mut Conn, ids: &[String]) -> Result<Vec<Open>, sqlx::Error> {
    let sql = format!(
        "SELECT id, channel, state, agent_id FROM interactions WHERE customer_id IN ({}) \
         AND state IN ('opened', 'queued', 'offered', 'assigned') ORDER BY created_at, id",
        bulk::list(1, ids.len())
    );
    let rows = bulk::bind_all(sqlx::query(&sql), args(ids))
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Open {
                interaction_id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                state: r.try_get("state")?,
                agent_id: r.try_get("agent_id")?,
            })
        })
        .collect()
}

/// What names the customer outside their own records, found before the writer's turn is
/// taken (these reads may cover whole tables): events of other customers' histories that
/// name them, channel events kept without a contact that carry their address or number,
/// and mail kept aside from or about them.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    /// History events (by seq) of other customers naming them.
    pub history: Vec<i64>,
    /// Channel events without a contact, as (channel, event key).
    pub channel_events: Vec<(String, String)>,
    /// Mail kept aside (by id).
    pub kept_aside: Vec<String>,
}

/// What text names the customer: their ids as written, and their addresses and numbers in
/// any case. CRM ids and chat visitor ids are not looked for: a short CRM id ("42") would
/// match unrelated text.
struct Names {
    ids: Vec<String>,
    identities: Vec<String>,
}

impl Names {
    async fn of(conn: &mut Conn, target: &Target) -> Result<Names, sqlx::Error> {
        let sql = format!(
            "SELECT value FROM customer_identities WHERE customer_id IN ({}) AND kind IN ('email', 'phone')",
            bulk::list(1, target.ids.len())
        );
        let identities = bulk::bind_all(sqlx::query(&sql), args(&target.ids))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0).map(|v| v.to_lowercase()))
            .collect::<Result<_, _>>()?;
        Ok(Names {
            ids: target.ids.clone(),
            identities,
        })
    }

    fn in_text(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.ids.iter().any(|id| text.contains(id.as_str()))
            || self.identities.iter().any(|v| lower.contains(v.as_str()))
    }
}

/// Looks for what names the customer elsewhere: see [`Elsewhere`].
pub async fn elsewhere(conn: &mut Conn, target: &Target) -> Result<Elsewhere, sqlx::Error> {
    let names = Names::of(conn, target).await?;
    let mut found = Elsewhere::default();
    let rows = sqlx::query(
        "SELECT seq, customer_id, data FROM history WHERE kind IN ('possible_duplicate', 'email_claimed')",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let customer: String = r.try_get("customer_id")?;
        let data: String = r.try_get("data")?;
        if !target.ids.contains(&customer) && names.in_text(&data) {
            found.history.push(r.try_get("seq")?);
        }
    }
    let rows = sqlx::query(
        "SELECT channel, event_key, contact_key, data FROM channel_events WHERE interaction_id IS NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let data: String = r.try_get("data")?;
        let contact: String = r.try_get("contact_key")?;
        if names.in_text(&data) || names.in_text(&contact) {
            found
                .channel_events
                .push((r.try_get("channel")?, r.try_get("event_key")?));
        }
    }
    found.kept_aside = kept_aside_naming(conn, &names).await?;
    Ok(found)
}

/// Mail kept aside from the customer or naming their address or number (by id): what an
/// export shows and an erasure removes.
pub async fn kept_aside_about(
    conn: &mut Conn,
    target: &Target,
) -> Result<Vec<String>, sqlx::Error> {
    let names = Names::of(conn, target).await?;
    kept_aside_naming(conn, &names).await
}

async fn kept_aside_naming(conn: &mut Conn, names: &Names) -> Result<Vec<String>, sqlx::Error> {
    let mut found = Vec::new();
    // Read one message at a time: its bytes may be large.
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM kept_aside ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    for id in ids {
        let row = sqlx::query("SELECT sender, subject, preview, raw FROM kept_aside WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(r) = row else { continue };
        let text = |col: &str| -> Result<String, sqlx::Error> {
            Ok(r.try_get::<Option<String>, _>(col)?.unwrap_or_default())
        };
        let raw: Option<Vec<u8>> = r.try_get("raw")?;
        let raw = raw.map(|b| String::from_utf8_lossy(&b).into_owned());
        if names.in_text(&text("sender")?)
            || names.in_text(&text("subject")?)
            || names.in_text(&text("preview")?)
            || raw.as_deref().is_some_and(|r| names.in_text(r))
        {
            found.push(id);
        }
    }
    Ok(found)
}
