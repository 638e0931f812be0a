//! Customers, their identities and their purchases, in the store.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::Conn;
use crate::customers::identity::{Identity, IdentityKind};
use crate::customers::tier::ValueData;

/// A customer's own record.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    /// Its id.
    pub id: String,
    /// A display name.
    pub name: Option<String>,
    /// A tier set explicitly.
    pub explicit_tier: Option<String>,
    /// The CRM's lifetime value, in cents.
    pub lifetime_value_cents: Option<i64>,
    /// The account manager (an agent id) whose this customer's contacts go to first.
    pub owner_agent_id: Option<String>,
    /// When it was created (ms).
    pub created_at: i64,
    /// When it last changed (ms).
    pub updated_at: i64,
}

fn customer_row(row: &AnyRow) -> Result<CustomerRow, sqlx::Error> {
    Ok(CustomerRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        explicit_tier: row.try_get("explicit_tier")?,
        lifetime_value_cents: row.try_get("lifetime_value_cents")?,
        owner_agent_id: row.try_get("owner_agent_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The customer owning each of `identities` that is known, as (identity, customer id).
pub async fn owners(
    conn: &mut Conn,
    identities: &[Identity],
) -> Result<Vec<(Identity, String)>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in identities.chunks(400) {
        let mut kinds: Vec<&str> = chunk.iter().map(|i| i.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let values: Vec<Arg> = chunk.iter().map(|i| Arg::from(i.value.as_str())).collect();
        let sql = format!(
            "SELECT kind, value, customer_id FROM customer_identities WHERE kind IN ({}) AND value IN ({})",
            bulk::list(1, kinds.len()),
            bulk::list(kinds.len() + 1, values.len())
        );
        let args = kinds.iter().map(|k| Arg::from(*k)).chain(values).collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            let kind: String = row.try_get("kind")?;
            let Some(kind) = IdentityKind::parse(&kind) else {
                continue;
            };
            let identity = Identity {
                kind,
                value: row.try_get("value")?,
            };
            // The IN lists also match crossed pairs (one entry's kind, another's value).
            if chunk.contains(&identity) {
                out.push((identity, row.try_get("customer_id")?));
            }
        }
    }
    Ok(out)
}

/// Creates customers with no identities yet: (id, name) each, in as few statements as fit.
pub async fn create_many(
    conn: &mut Conn,
    customers: &[(String, Option<String>)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let args = customers
        .iter()
        .flat_map(|(id, name)| {
            [
                Arg::from(id.as_str()),
                Arg::from(name.clone()),
                Arg::from(now),
                Arg::from(now),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        "INSERT INTO customers (id, name, created_at, updated_at)",
        4,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// Gives each identity to its customer unless someone owns it already; answers how
/// many were given.
pub async fn add_identities(
    conn: &mut Conn,
    given: &[(Identity, String)],
    now: i64,
) -> Result<u64, sqlx::Error> {
    let args = given
        .iter()
        .flat_map(|(i, c)| {
            [
                Arg::from(i.kind.as_str()),
                Arg::from(i.value.as_str()),
                Arg::from(c.as_str()),
                Arg::from(now),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        "INSERT INTO customer_identities (kind, value, customer_id, created_at)",
        4,
        args,
        "ON CONFLICT (kind, value) DO NOTHING",
    )
    .await
}

/// Each of the customers `ids` with its value data (purchases since `window_start`
/// counting toward frequency and monetary value), in one query.
pub async fn with_value_data(
    conn: &mut Conn,
    ids: &[String],
    window_start: i64,
) -> Result<Vec<(CustomerRow, ValueData)>, sqlx::Error> {
    let rows = bulk::fetch_in(conn, &[Arg::from(window_start)], ids, |list| {
        format!(
            "SELECT c.id, c.name, c.explicit_tier, c.lifetime_value_cents, c.owner_agent_id, c.created_at, c.updated_at, \
                    CAST(COALESCE(SUM(p.amount_cents), 0) AS BIGINT) AS total, \
                    CAST(COALESCE(SUM(CASE WHEN p.purchased_at >= $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS window_count, \
                    CAST(COALESCE(SUM(CASE WHEN p.purchased_at >= $1 THEN p.amount_cents ELSE 0 END), 0) AS BIGINT) AS window_cents, \
                    MAX(p.purchased_at) AS last_at \
             FROM customers c LEFT JOIN purchases p ON p.customer_id = c.id \
             WHERE c.id IN ({list}) \
             GROUP BY c.id, c.name, c.explicit_tier, c.lifetime_value_cents, c.owner_agent_id, c.created_at, c.updated_at"
        )
    })
    .await?;
    rows.iter()
        .map(|row| {
            let c = customer_row(row)?;
            let value = value_row(row, &c)?;
            Ok((c, value))
        })
        .collect()
}

fn value_row(row: &AnyRow, c: &CustomerRow) -> Result<ValueData, sqlx::Error> {
    Ok(ValueData {
        explicit_tier: c.explicit_tier.clone(),
        lifetime_value_cents: c.lifetime_value_cents,
        total_cents: row.try_get::<i64, _>("total")?,
        window_count: row
            .try_get::<i64, _>("window_count")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        window_cents: row.try_get::<i64, _>("window_cents")?,
        last_purchase_ms: row.try_get("last_at")?,
    })
}

/// Creates a customer with no identities yet.
pub async fn create(
    conn: &mut Conn,
    id: &str,
    name: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO customers (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives `identity` to the customer unless someone owns it already; true when it was added.
pub async fn add_identity(
    conn: &mut Conn,
    customer_id: &str,
    identity: &Identity,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO customer_identities (kind, value, customer_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (kind, value) DO NOTHING",
    )
    .bind(identity.kind.as_str())
    .bind(identity.value.as_str())
    .bind(customer_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes `identity` from the customer; true when it had it.
pub async fn remove_identity(
    conn: &mut Conn,
    customer_id: &str,
    identity: &Identity,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM customer_identities WHERE kind = $1 AND value = $2 AND customer_id = $3",
    )
    .bind(identity.kind.as_str())
    .bind(identity.value.as_str())
    .bind(customer_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The customer `id`, or the one it was merged into; `None` when neither exists.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<CustomerRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.id, c.name, c.explicit_tier, c.lifetime_value_cents, c.owner_agent_id, c.created_at, c.updated_at \
         FROM customers c WHERE c.id = COALESCE((SELECT merged_into FROM customers WHERE id = $1), $1) \
         AND c.merged_into IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(customer_row).transpose()
}

/// For each of `ids`, the customer as [`get`] answers it (a merged one's survivor), with
/// its identities, most trusted kind first: three statements per 400, whatever the count.
pub async fn get_many_with_identities(
    conn: &mut Conn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, (CustomerRow, Vec<Identity>)>, sqlx::Error> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(400) {
        let sql = format!(
            "SELECT r.id AS asked, c.id, c.name, c.explicit_tier, c.lifetime_value_cents, c.owner_agent_id, c.created_at, c.updated_at \
             FROM customers r JOIN customers c ON c.id = COALESCE(r.merged_into, r.id) AND c.merged_into IS NULL \
             WHERE r.id IN ({})",
            bulk::list(1, chunk.len())
        );
        let args = chunk.iter().map(|id| Arg::from(id.as_str())).collect();
        let mut found: Vec<(String, CustomerRow)> = Vec::with_capacity(chunk.len());
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            found.push((row.try_get("asked")?, customer_row(&row)?));
        }
        let mut owners: Vec<&str> = found.iter().map(|(_, c)| c.id.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut identities: std::collections::HashMap<String, Vec<Identity>> =
            std::collections::HashMap::new();
        if !owners.is_empty() {
            let sql = format!(
                "SELECT customer_id, kind, value FROM customer_identities WHERE customer_id IN ({})",
                bulk::list(1, owners.len())
            );
            let args = owners.iter().map(|id| Arg::from(*id)).collect();
            for row in bulk::bind_all(sqlx::query(&sql), args)
                .fetch_all(&mut *conn)
                .await?
            {
                let kind: String = row.try_get("kind")?;
                if let Some(kind) = IdentityKind::parse(&kind) {
                    identities
                        .entry(row.try_get("customer_id")?)
                        .or_default()
                        .push(Identity {
                            kind,
                            value: row.try_get("value")?,
                        });
                }
            }
        }
        for (asked, customer) in found {
            let mut ids = identities.get(&customer.id).cloned().unwrap_or_default();
            ids.sort();
            out.insert(asked, (customer, ids));
        }
    }
    Ok(out)
}

/// The customer's identities, most trusted kind first.
pub async fn identities(conn: &mut Conn, customer_id: &str) -> Result<Vec<Identity>, sqlx::Error> {
    let rows = sqlx::query("SELECT kind, value FROM customer_identities WHERE customer_id = $1")
        .bind(customer_id)
        .fetch_all(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("kind")?;
        if let Some(kind) = IdentityKind::parse(&kind) {
            out.push(Identity {
                kind,
                value: row.try_get("value")?,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Customers (not merged away) whose name contains `text`, or with an identity that
/// starts with it, ignoring case; at most `limit`, by name: (id, name).
pub async fn search(
    conn: &mut Conn,
    text: &str,
    limit: i64,
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    let escaped: String = text
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let rows = sqlx::query(
        "SELECT c.id, c.name FROM customers c \
         WHERE c.merged_into IS NULL AND (LOWER(c.name) LIKE $1 ESCAPE '\\' \
            OR c.id IN (SELECT customer_id FROM customer_identities WHERE LOWER(value) LIKE $2 ESCAPE '\\')) \
         ORDER BY c.name, c.id LIMIT $3",
    )
    .bind(format!("%{escaped}%"))
    .bind(format!("{escaped}%"))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// What is known of the customer's value, with purchases since `window_start` (ms)
/// counted toward frequency and monetary value.
pub async fn value_data(
    conn: &mut Conn,
    customer: &CustomerRow,
    window_start: i64,
) -> Result<ValueData, sqlx::Error> {
    let found = with_value_data(conn, std::slice::from_ref(&customer.id), window_start).await?;
    match found.into_iter().next() {
        Some((_, mut value)) => {
            // The caller's copy of the customer may carry edits not yet written.
            value.explicit_tier = customer.explicit_tier.clone();
            value.lifetime_value_cents = customer.lifetime_value_cents;
            Ok(value)
        }
        None => Err(sqlx::Error::RowNotFound),
    }
}

/// Writes the customer's own fields as given.
pub async fn update(conn: &mut Conn, c: &CustomerRow, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE customers SET name = $2, explicit_tier = $3, lifetime_value_cents = $4, owner_agent_id = $5, \
         updated_at = $6 WHERE id = $1",
    )
    .bind(c.id.as_str())
    .bind(c.name.as_deref())
    .bind(c.explicit_tier.as_deref())
    .bind(c.lifetime_value_cents)
    .bind(c.owner_agent_id.as_deref())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets a name on a customer that has none.
pub async fn name_if_unnamed(
    conn: &mut Conn,
    customer_id: &str,
    name: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE customers SET name = $2, updated_at = $3 WHERE id = $1 AND name IS NULL")
        .bind(customer_id)
        .bind(name)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a purchase; a purchase with the same reference is replaced. True when new.
pub async fn upsert_purchase(
    conn: &mut Conn,
    customer_id: &str,
    purchase_ref: &str,
    amount_cents: i64,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let existed: Option<i64> = sqlx::query_scalar(
        "SELECT amount_cents FROM purchases WHERE customer_id = $1 AND purchase_ref = $2",
    )
    .bind(customer_id)
    .bind(purchase_ref)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO purchases (customer_id, purchase_ref, amount_cents, purchased_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (customer_id, purchase_ref) DO UPDATE SET amount_cents = $3, purchased_at = $4",
    )
    .bind(customer_id)
    .bind(purchase_ref)
    .bind(amount_cents)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(existed.is_none())
}

/// Folds customer `from` into `into`: its identities and purchases move, its explicit
/// tier, lifetime value and name fill gaps in `into`, and it points at `into` from now
/// on (as does anything merged into it before). Its history and interactions stay where
/// they were written and are read as part of `into`'s.
pub async fn merge(
    conn: &mut Conn,
    into: &CustomerRow,
    from: &CustomerRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE customer_identities SET customer_id = $1 WHERE customer_id = $2")
        .bind(into.id.as_str())
        .bind(from.id.as_str())
        .execute(&mut *conn)
        .await?;
    // The same order recorded on both is one purchase: keep the survivor's copy.
    sqlx::query(
        "DELETE FROM purchases WHERE customer_id = $2 AND purchase_ref IN \
         (SELECT purchase_ref FROM purchases WHERE customer_id = $1)",
    )
    .bind(into.id.as_str())
    .bind(from.id.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE purchases SET customer_id = $1 WHERE customer_id = $2")
        .bind(into.id.as_str())
        .bind(from.id.as_str())
        .execute(&mut *conn)
        .await?;
    let merged = CustomerRow {
        name: into.name.clone().or_else(|| from.name.clone()),
        explicit_tier: into
            .explicit_tier
            .clone()
            .or_else(|| from.explicit_tier.clone()),
        lifetime_value_cents: into.lifetime_value_cents.or(from.lifetime_value_cents),
        owner_agent_id: into
            .owner_agent_id
            .clone()
            .or_else(|| from.owner_agent_id.clone()),
        ..into.clone()
    };
    update(&mut *conn, &merged, now).await?;
    sqlx::query(
        "UPDATE customers SET merged_into = $1, updated_at = $3 WHERE id = $2 OR merged_into = $2",
    )
    .bind(into.id.as_str())
    .bind(from.id.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Purchase figures for display: count, total in cents, last purchase time.
pub async fn purchase_summary(
    conn: &mut Conn,
    customer_id: &str,
) -> Result<(i64, i64, Option<i64>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) AS total, MAX(purchased_at) AS last_at \
         FROM purchases WHERE customer_id = $1",
    )
    .bind(customer_id)
    .fetch_one(conn)
    .await?;
    Ok((
        row.try_get("n")?,
        row.try_get("total")?,
        row.try_get("last_at")?,
    ))
}
