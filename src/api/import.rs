//! Bulk customer import from CSV or JSON: all rows or none, with every bad row reported.
//!
//! Each row is matched to a customer by its identities (CRM id first); a matched customer
//! is updated with the fields the row gives, an unmatched one is created. Rows are first
//! checked on their own, then written in one transaction; any row that fails either step
//! rolls the whole import back, and the answer lists every failing row.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::header;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Admin;
use super::customers::{check_profile, check_purchase, PurchaseIn};
use super::error::{parse_json, read_body, ApiError, RowError};
use super::AppState;
use crate::customers::identity::Identity;
use crate::customers::tier::to_cents;
use crate::store::customers as store;
use crate::store::history::NewEvent;
use crate::store::{new_id, now_ms, Conn};

/// The columns a CSV import may have, in any order.
pub const CSV_COLUMNS: [&str; 7] = [
    "external_id",
    "email",
    "phone",
    "visitor_id",
    "name",
    "tier",
    "lifetime_value",
];

/// One row, as CSV columns or a JSON object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    external_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    visitor_id: Option<String>,
    name: Option<String>,
    tier: Option<String>,
    lifetime_value: Option<f64>,
    /// JSON only: purchases to record, each under the CRM's reference.
    #[serde(default)]
    purchases: Vec<ImportPurchase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportPurchase {
    #[serde(rename = "ref")]
    purchase_ref: String,
    amount: f64,
    at: Option<String>,
}

/// A row checked on its own: identities parsed, values converted.
struct Checked {
    row: usize,
    identities: Vec<Identity>,
    name: Option<String>,
    tier: Option<String>,
    lifetime_value_cents: Option<i64>,
    purchases: Vec<(String, i64, i64)>,
}

/// `POST /api/customers/import` with `Content-Type: text/csv` or `application/json`.
pub async fn import(
    State(state): State<AppState>,
    Admin(by): Admin,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_csv = content_type == "text/csv";
    if !is_csv && content_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            "send the import as text/csv or application/json".into(),
        ));
    }
    let body = read_body(req, &state).await?;
    let parsed = if is_csv {
        csv_rows(&body)?
    } else {
        json_rows(&body)?
    };
    if parsed.is_empty() {
        return Err(ApiError::BadRequest {
            field: None,
            message: "the import has no rows".into(),
        });
    }
    if parsed.len() > state.settings.api.max_import_rows {
        return Err(ApiError::TooLarge(format!(
            "the import has {} rows; at most {} are taken in one request",
            parsed.len(),
            state.settings.api.max_import_rows
        )));
    }
    let now = now_ms();
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(parsed.len());
    let mut seen: HashMap<Identity, usize> = HashMap::new();
    for (i, row) in parsed.into_iter().enumerate() {
        let n = i + 1;
        match row.and_then(|r| check(&state, n, r, now)) {
            Ok(c) => {
                for id in &c.identities {
                    if let Some(first) = seen.insert(id.clone(), n) {
                        errors.push(row_error(
                            n,
                            id.kind.as_str(),
                            format!("the same {} is on row {first}", id.kind.as_str()),
                        ));
                    }
                }
                checked.push(c);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(rejected(errors));
    }
    let mut tx = state.store.begin_write().await?;
    let mut created = 0usize;
    let mut updated = Vec::new();
    for row in &checked {
        match write(&mut tx, &by.actor, row, now).await? {
            Ok((true, _)) => created += 1,
            Ok((false, id)) => updated.push(id),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        tx.rollback().await?;
        return Err(rejected(errors));
    }
    // Customers already known may have contacts waiting: they take their new tiers.
    let waiting = crate::customers::waiting::refresh(
        &mut tx,
        &state.settings.tiers,
        &updated,
        &by.actor,
        now,
    )
    .await?;
    tx.commit().await?;
    state.router.customers_changed(waiting);
    let updated = updated.len();
    Ok(Json(
        json!({ "rows": checked.len(), "created": created, "updated": updated }),
    ))
}

fn rejected(errors: Vec<RowError>) -> ApiError {
    ApiError::Rows {
        message: format!(
            "{} row(s) have errors; nothing was imported",
            errors
                .iter()
                .map(|e| e.row)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        ),
        errors,
    }
}

fn row_error(row: usize, field: &str, message: impl Into<String>) -> RowError {
    RowError {
        row,
        field: Some(field.to_string()),
        message: message.into(),
    }
}

fn csv_rows(body: &[u8]) -> Result<Vec<Result<Row, RowError>>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::BadRequest {
            field: None,
            message: format!("the CSV header cannot be read: {e}"),
        })?
        .clone();
    for h in headers.iter() {
        if !CSV_COLUMNS.contains(&h) {
            return Err(ApiError::BadRequest {
                field: Some(h.to_string()),
                message: format!(
                    "column '{h}' is not known; the columns are {}",
                    CSV_COLUMNS.join(", ")
                ),
            });
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let n = i + 1;
        let row = record
            .map_err(|e| RowError {
                row: n,
                field: None,
                message: format!("cannot be read as CSV: {e}"),
            })
            .and_then(|r| {
                let mut row = Row::default();
                for (column, value) in headers.iter().zip(r.iter()) {
                    let v = (!value.is_empty()).then(|| value.to_string());
                    match column {
                        "external_id" => row.external_id = v,
                        "email" => row.email = v,
                        "phone" => row.phone = v,
                        "visitor_id" => row.visitor_id = v,
                        "name" => row.name = v,
                        "tier" => row.tier = v,
                        _ => {
                            row.lifetime_value = match v {
                                None => None,
                                Some(s) => Some(s.parse().map_err(|_| {
                                    row_error(n, "lifetime_value", format!("'{s}' is not a number"))
                                })?),
                            }
                        }
                    }
                }
                Ok(row)
            });
        rows.push(row);
    }
    Ok(rows)
}

fn json_rows(body: &[u8]) -> Result<Vec<Result<Row, RowError>>, ApiError> {
    let value: Value = parse_json(body)?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut o) if o.len() == 1 && o.get("customers").is_some_and(Value::is_array) => {
            match o.remove("customers") {
                Some(Value::Array(items)) => items,
                _ => unreachable!("checked to be an array"),
            }
        }
        _ => {
            return Err(ApiError::BadRequest {
                field: None,
                message: "send a JSON array of customers, or {\"customers\": [...]}".into(),
            })
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_path_to_error::deserialize::<_, Row>(item).map_err(|e| {
                let path = e.path().to_string();
                RowError {
                    row: i + 1,
                    field: (path != ".").then_some(path),
                    message: e.into_inner().to_string(),
                }
            })
        })
        .collect())
}

fn check(state: &AppState, n: usize, row: Row, now: i64) -> Result<Checked, RowError> {
    let hint = switchboard_contract::CustomerHint {
        email: row.email,
        phone: row.phone,
        visitor_id: row.visitor_id,
        external_id: row.external_id,
        name: None,
        claimed_email: None,
    };
    if hint.is_anonymous() {
        return Err(RowError {
            row: n,
            field: None,
            message: "name at least one of external_id, email, phone or visitor_id".into(),
        });
    }
    let identities = state
        .parser
        .from_hint(&hint, "")
        .map_err(|e| row_error(n, e.field.trim_start_matches('.'), e.message))?;
    let name = row
        .name
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    check_profile(
        state,
        name.as_deref(),
        row.tier.as_deref(),
        row.lifetime_value,
    )
    .map_err(|(f, m)| row_error(n, &f, m))?;
    let mut purchases = Vec::with_capacity(row.purchases.len());
    for (j, p) in row.purchases.iter().enumerate() {
        if p.purchase_ref.is_empty()
            || p.purchase_ref.len() > 128
            || p.purchase_ref.chars().any(char::is_control)
        {
            return Err(row_error(
                n,
                &format!("purchases[{j}].ref"),
                "must be 1 to 128 bytes without control characters",
            ));
        }
        let (cents, at) = check_purchase(
            &PurchaseIn {
                amount: p.amount,
                at: p.at.clone(),
            },
            now,
        )
        .map_err(|(f, m)| row_error(n, &format!("purchases[{j}].{f}"), m))?;
        purchases.push((p.purchase_ref.clone(), cents, at));
    }
    Ok(Checked {
        row: n,
        identities,
        name,
        tier: row.tier,
        lifetime_value_cents: row.lifetime_value.map(to_cents),
        purchases,
    })
}

/// Writes one checked row; `Ok((true, id))` when it created the customer `id`. A row whose identities
/// belong to two different customers is an error: only a merge may join them.
async fn write(
    conn: &mut Conn,
    actor: &str,
    row: &Checked,
    now: i64,
) -> Result<Result<(bool, String), RowError>, sqlx::Error> {
    let owners = store::owners(conn, &row.identities).await?;
    let mut ids: Vec<&String> = owners.iter().map(|(_, c)| c).collect();
    ids.sort();
    ids.dedup();
    if ids.len() > 1 {
        return Ok(Err(RowError {
            row: row.row,
            field: None,
            message: format!(
                "its identities belong to different customers ({}); merge them first",
                ids.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }));
    }
    let event = |customer_id: &str, kind: &'static str, data: Value| NewEvent {
        customer_id: customer_id.to_string(),
        interaction_id: None,
        kind,
        actor: actor.to_string(),
        data,
    };
    let mut events = Vec::new();
    let (customer_id, created) = match ids.first() {
        Some(id) => ((*id).clone(), false),
        None => {
            let id = new_id();
            store::create(conn, &id, row.name.as_deref(), now).await?;
            events.push(event(&id, "customer_created", json!({ "via": "import" })));
            (id, true)
        }
    };
    let before = store::get(conn, &customer_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let mut after = before.clone();
    if row.name.is_some() {
        after.name = row.name.clone();
    }
    if row.tier.is_some() {
        after.explicit_tier = row.tier.clone();
    }
    if row.lifetime_value_cents.is_some() {
        after.lifetime_value_cents = row.lifetime_value_cents;
    }
    if after != before {
        store::update(conn, &after, now).await?;
        if !created {
            events.push(event(
                &customer_id,
                "customer_updated",
                json!({ "via": "import" }),
            ));
        }
    }
    for identity in &row.identities {
        if store::add_identity(conn, &customer_id, identity, now).await? {
            events.push(event(
                &customer_id,
                "identity_added",
                json!({ "kind": identity.kind, "value": identity.value, "via": "import" }),
            ));
        }
    }
    for (purchase_ref, cents, at) in &row.purchases {
        store::upsert_purchase(conn, &customer_id, purchase_ref, *cents, *at).await?;
    }
    if !row.purchases.is_empty() {
        events.push(event(
            &customer_id,
            "purchases_imported",
            json!({ "count": row.purchases.len() }),
        ));
    }
    super::customers::append_admin(conn, &events, now).await?;
    Ok(Ok((created, customer_id)))
}
