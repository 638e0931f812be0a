//! Customer admin: create, look up, update, identities, purchases, merge, history.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Admin, Anyone, Principal, Supervisor};
use super::error::{check_id, present, ApiError, ApiJson, ApiPath, ApiQuery};
use super::views::{CustomerView, EventView};
use super::AppState;
use crate::customers::identity::{Identity, IdentityKind};
use crate::customers::tier::{self, to_cents};
use crate::customers::waiting;
use crate::store::audit::Change;
use crate::store::customers::{self as store, CustomerRow};
use crate::store::history::{self, NewEvent};
use crate::store::{new_id, now_ms, rfc3339, Conn};

const DAY_MS: i64 = 86_400_000;

/// One identity as the API names it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityIn {
    kind: String,
    value: String,
}

/// The body of `POST /api/customers`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    name: Option<String>,
    tier: Option<String>,
    lifetime_value: Option<f64>,
    #[serde(default)]
    identities: Vec<IdentityIn>,
}

/// The body of `PUT /api/customers/{id}`: a field left out stays as it is; `null` clears it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    tier: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    lifetime_value: Option<Option<f64>>,
    /// The account manager: an agent's id.
    #[serde(default, deserialize_with = "present")]
    owner: Option<Option<String>>,
    /// Identities to add.
    #[serde(default)]
    identities: Vec<IdentityIn>,
}

/// Checks a name, an explicit tier and a lifetime value, as the API and imports take them.
pub fn check_profile(
    state: &AppState,
    name: Option<&str>,
    tier: Option<&str>,
    lifetime_value: Option<f64>,
) -> Result<(), (String, String)> {
    if let Some(n) = name {
        if n.chars().count() > crate::intake::MAX_NAME_CHARS || n.contains('\0') {
            return Err((
                "name".into(),
                format!(
                    "must be at most {} characters, without NUL",
                    crate::intake::MAX_NAME_CHARS
                ),
            ));
        }
    }
    if let Some(t) = tier {
        if !state.settings.tiers.order.iter().any(|x| x == t) {
            return Err((
                "tier".into(),
                format!(
                    "'{t}' is not one of the tiers {:?}",
                    state.settings.tiers.order
                ),
            ));
        }
    }
    if let Some(v) = lifetime_value {
        if !v.is_finite() || !(0.0..1e13).contains(&v) {
            return Err((
                "lifetime_value".into(),
                "must be a number from 0 to 10^13".into(),
            ));
        }
    }
    Ok(())
}

fn parse_identities(state: &AppState, given: &[IdentityIn]) -> Result<Vec<Identity>, ApiError> {
    given
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let field = format!("identities[{i}]");
            let kind = IdentityKind::parse(&id.kind).ok_or_else(|| {
                ApiError::field(
                    format!("{field}.kind"),
                    format!(
                        "'{}' is not one of email, phone, visitor_id, external_id",
                        id.kind
                    ),
                )
            })?;
            state
                .parser
                .parse(kind, &id.value, &format!("{field}.value"))
                .map_err(|e| ApiError::field(e.field, e.message))
        })
        .collect()
}

/// Gives `identities` to the customer; an identity someone else owns is a 409.
async fn claim(
    conn: &mut Conn,
    by: &Principal,
    customer_id: &str,
    identities: &[Identity],
    now: i64,
) -> Result<Vec<NewEvent>, ApiError> {
    let mut events = Vec::new();
    for (i, identity) in identities.iter().enumerate() {
        if let Some((_, owner)) = store::owners(conn, std::slice::from_ref(identity))
            .await?
            .pop()
        {
            if owner != customer_id {
                return Err(ApiError::Conflict {
                    field: Some(format!("identities[{i}]")),
                    message: format!(
                        "{} belongs to customer {owner}; merge the two customers if they are one person",
                        identity.kind.as_str()
                    ),
                });
            }
            continue;
        }
        if !store::add_identity(conn, customer_id, identity, now).await? {
            return Err(ApiError::Conflict {
                field: Some(format!("identities[{i}]")),
                message: format!(
                    "{} was just given to another customer; retry",
                    identity.kind.as_str()
                ),
            });
        }
        events.push(admin_event(
            by,
            customer_id,
            "identity_added",
            json!({ "kind": identity.kind, "value": identity.value }),
        ));
    }
    Ok(events)
}

/// Writes admin events to the customer's history and, as changes by the admin, to the
/// audit trail (`customer.<event>`, the data's `before`/`after` when it has them).
pub(super) async fn append_admin(
    conn: &mut Conn,
    events: &[NewEvent],
    now: i64,
) -> Result<(), sqlx::Error> {
    history::append(&mut *conn, events, now).await?;
    let changes: Vec<Change> = events
        .iter()
        .map(|e| {
            let (before, after) = match (e.data.get("before"), e.data.get("after")) {
                (Some(b), Some(a)) => (Some(b.clone()), Some(a.clone())),
                _ => (None, Some(e.data.clone())),
            };
            Change {
                actor: e.actor.clone(),
                action: audit_action(e.kind),
                target_kind: "customer",
                target_id: Some(e.customer_id.clone()),
                before,
                after,
            }
        })
        .collect();
    crate::store::audit::record(conn, &changes, now).await
}

/// The audit action for a customer history event.
fn audit_action(kind: &'static str) -> &'static str {
    match kind {
        "customer_created" => "customer.create",
        "customer_updated" => "customer.update",
        "identity_added" => "customer.identity_add",
        "identity_removed" => "customer.identity_remove",
        "purchase_recorded" => "customer.purchase",
        "purchases_imported" => "customer.purchases_import",
        "customers_merged" => "customer.merge",
        _ => "customer.change",
    }
}

fn admin_event(
    by: &Principal,
    customer_id: &str,
    kind: &'static str,
    data: serde_json::Value,
) -> NewEvent {
    NewEvent {
        customer_id: customer_id.to_string(),
        interaction_id: None,
        kind,
        actor: by.actor.clone(),
        data,
    }
}

fn bad(field_and_message: (String, String)) -> ApiError {
    ApiError::field(field_and_message.0, field_and_message.1)
}

/// `POST /api/customers`: 201 with the new customer.
pub async fn create(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiJson(req): ApiJson<CreateCustomer>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    let name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    check_profile(&state, name, req.tier.as_deref(), req.lifetime_value).map_err(bad)?;
    let identities = parse_identities(&state, &req.identities)?;
    let now = now_ms();
    let id = new_id();
    let mut tx = state.store.begin_write().await?;
    store::create(&mut tx, &id, name, now).await?;
    let mut row = store::get(&mut tx, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("customer vanished after insert"))?;
    row.explicit_tier = req.tier.clone();
    row.lifetime_value_cents = req.lifetime_value.map(to_cents);
    store::update(&mut tx, &row, now).await?;
    let mut events = vec![admin_event(
        &by,
        &id,
        "customer_created",
        json!({ "name": name, "tier": req.tier, "lifetime_value": req.lifetime_value }),
    )];
    events.extend(claim(&mut tx, &by, &id, &identities, now).await?);
    append_admin(&mut tx, &events, now).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, &mut *state.store.pool().acquire().await?, &id).await?),
    ))
}

/// `GET /api/customers/{id}` (a merged customer answers as the one it was merged into).
pub async fn get(
    State(state): State<AppState>,
    Anyone(by): Anyone,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let customer = load(&mut conn, &id).await?;
    may_see(&mut conn, &by, &customer.id, &id).await?;
    Ok(Json(view(&state, &mut conn, &id).await?))
}

/// `GET /api/customers?email=…` (or `phone`, `visitor_id`, `external_id`): the customer
/// owning that identity.
pub async fn lookup(
    State(state): State<AppState>,
    _: Supervisor,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
) -> Result<Json<CustomerView>, ApiError> {
    let mut given = q.iter();
    let (Some((kind, value)), None) = (given.next(), given.next()) else {
        return Err(ApiError::field(
            "query",
            "give exactly one of email, phone, visitor_id or external_id",
        ));
    };
    let kind = IdentityKind::parse(kind).ok_or_else(|| {
        ApiError::field(
            kind.clone(),
            "is not one of email, phone, visitor_id, external_id",
        )
    })?;
    let identity = state
        .parser
        .parse(kind, value, kind.as_str())
        .map_err(|e| ApiError::field(e.field, e.message))?;
    let mut conn = state.store.pool().acquire().await?;
    let Some((_, id)) = store::owners(&mut conn, &[identity]).await?.pop() else {
        return Err(ApiError::NotFound(format!(
            "no customer has that {}",
            kind.as_str()
        )));
    };
    Ok(Json(view(&state, &mut conn, &id).await?))
}

/// The query of `GET /api/customers/search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Part of a name, or the start of an identity (an address, a number…): 1 to 100
    /// characters, case ignored.
    q: String,
    /// At most this many, 1 to 50 (default 20).
    limit: Option<i64>,
}

/// `GET /api/customers/search?q=…`: customers by part of their name or the start of
/// any identity, by name.
pub async fn search(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let text = q.q.trim();
    if text.is_empty() || text.chars().count() > 100 || text.chars().any(char::is_control) {
        return Err(ApiError::field("q", "1 to 100 characters"));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::field("limit", "1 to 50"));
    }
    let mut conn = state.store.pool().acquire().await?;
    let mut found = Vec::new();
    for (id, name) in store::search(&mut conn, text, limit).await? {
        let identities = store::identities(&mut conn, &id).await?;
        found.push(json!({ "id": id, "name": name, "identities": identities }));
    }
    Ok(Json(json!({ "customers": found })))
}

/// `PUT /api/customers/{id}`: changes the fields given, adds the identities given.
pub async fn update(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateCustomer>,
) -> Result<Json<CustomerView>, ApiError> {
    let name = req
        .name
        .clone()
        .map(|n| n.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()));
    check_profile(
        &state,
        name.clone().flatten().as_deref(),
        req.tier.clone().flatten().as_deref(),
        req.lifetime_value.flatten(),
    )
    .map_err(bad)?;
    let identities = parse_identities(&state, &req.identities)?;
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    let before = load(&mut tx, &id).await?;
    let mut after = before.clone();
    if let Some(n) = name {
        after.name = n;
    }
    if let Some(t) = req.tier {
        after.explicit_tier = t;
    }
    if let Some(v) = req.lifetime_value {
        after.lifetime_value_cents = v.map(to_cents);
    }
    if let Some(owner) = req.owner {
        if let Some(agent) = &owner {
            let active = check_id("agent", agent).is_ok()
                && crate::store::agents::get(&mut tx, agent)
                    .await?
                    .is_some_and(|a| a.active);
            if !active {
                return Err(ApiError::field("owner", "is not the id of an active agent"));
            }
        }
        after.owner_agent_id = owner;
    }
    let mut events = Vec::new();
    if after != before {
        store::update(&mut tx, &after, now).await?;
        events.push(admin_event(
            &by,
            &after.id,
            "customer_updated",
            json!({ "before": profile(&before), "after": profile(&after) }),
        ));
    }
    events.extend(claim(&mut tx, &by, &after.id, &identities, now).await?);
    append_admin(&mut tx, &events, now).await?;
    let waiting = waiting::refresh(
        &mut tx,
        &state.settings.tiers,
        std::slice::from_ref(&after.id),
        &by.actor,
        now,
    )
    .await?;
    tx.commit().await?;
    state.router.customers_changed(waiting);
    let mut conn = state.store.pool().acquire().await?;
    Ok(Json(view(&state, &mut conn, &after.id).await?))
}

fn profile(c: &CustomerRow) -> serde_json::Value {
    json!({
        "name": c.name,
        "explicit_tier": c.explicit_tier,
        "lifetime_value": c.lifetime_value_cents.map(tier::money),
        "owner": c.owner_agent_id,
    })
}

/// `DELETE /api/customers/{id}/identities/{kind}/{value}`.
pub async fn remove_identity(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath((id, kind, value)): ApiPath<(String, String, String)>,
) -> Result<Json<CustomerView>, ApiError> {
    let kind = IdentityKind::parse(&kind).ok_or_else(|| {
        ApiError::field(
            "kind",
            "is not one of email, phone, visitor_id, external_id",
        )
    })?;
    let identity = state
        .parser
        .parse(kind, &value, "value")
        .map_err(|e| ApiError::field(e.field, e.message))?;
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    let customer = load(&mut tx, &id).await?;
    if !store::remove_identity(&mut tx, &customer.id, &identity).await? {
        return Err(ApiError::NotFound(format!(
            "the customer has no such {}",
            kind.as_str()
        )));
    }
    append_admin(
        &mut tx,
        &[admin_event(
            &by,
            &customer.id,
            "identity_removed",
            json!({ "kind": kind, "value": identity.value }),
        )],
        now,
    )
    .await?;
    tx.commit().await?;
    let mut conn = state.store.pool().acquire().await?;
    Ok(Json(view(&state, &mut conn, &customer.id).await?))
}

/// The body of `PUT /api/customers/{id}/purchases/{ref}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseIn {
    /// In major units (12.50), negative for a refund.
    pub amount: f64,
    /// When (RFC 3339 or YYYY-MM-DD); now when left out.
    pub at: Option<String>,
}

/// Checks a purchase and turns it into (cents, ms).
pub fn check_purchase(p: &PurchaseIn, now: i64) -> Result<(i64, i64), (String, String)> {
    if !p.amount.is_finite() || p.amount.abs() >= 1e11 {
        return Err((
            "amount".into(),
            "must be a number between -10^11 and 10^11".into(),
        ));
    }
    let at = match &p.at {
        None => now,
        Some(s) => parse_time(s).ok_or_else(|| {
            (
                "at".to_string(),
                format!("'{s}' is not a date (2026-03-01) or an RFC 3339 time"),
            )
        })?,
    };
    if at > now + DAY_MS {
        return Err(("at".into(), "is in the future".into()));
    }
    Ok((to_cents(p.amount), at))
}

fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = crate::store::parse_rfc3339(s) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// `PUT /api/customers/{id}/purchases/{ref}`: records a purchase under the CRM's own
/// reference (201 when new, 200 when it replaced one with the same reference).
pub async fn put_purchase(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath((id, purchase_ref)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PurchaseIn>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    if purchase_ref.is_empty()
        || purchase_ref.len() > 128
        || purchase_ref.chars().any(char::is_control)
    {
        return Err(ApiError::field(
            "purchase_ref",
            "must be 1 to 128 bytes without control characters",
        ));
    }
    let now = now_ms();
    let (cents, at) = check_purchase(&req, now).map_err(bad)?;
    let mut tx = state.store.begin_write().await?;
    let customer = load(&mut tx, &id).await?;
    let new = store::upsert_purchase(&mut tx, &customer.id, &purchase_ref, cents, at).await?;
    append_admin(
        &mut tx,
        &[admin_event(&by, &customer.id, "purchase_recorded", json!({ "ref": purchase_ref, "amount": tier::money(cents), "at": crate::store::rfc3339(at) }))],
        now,
    )
    .await?;
    let waiting = waiting::refresh(
        &mut tx,
        &state.settings.tiers,
        std::slice::from_ref(&customer.id),
        &by.actor,
        now,
    )
    .await?;
    tx.commit().await?;
    state.router.customers_changed(waiting);
    let mut conn = state.store.pool().acquire().await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&state, &mut conn, &customer.id).await?)))
}

/// The body of `POST /api/customers/{id}/merge`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeIn {
    /// The customer to fold into this one.
    from: String,
}

/// `POST /api/customers/{id}/merge`: two records turn out to be one person. The
/// customer `from` is folded into `{id}`; its history becomes part of `{id}`'s.
pub async fn merge(
    State(state): State<AppState>,
    Admin(by): Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<MergeIn>,
) -> Result<Json<CustomerView>, ApiError> {
    let now = now_ms();
    let mut tx = state.store.begin_write().await?;
    let into = load(&mut tx, &id).await?;
    if uuid::Uuid::try_parse(&req.from).is_err() {
        return Err(ApiError::field("from", "is not a customer id"));
    }
    let from = store::get(&mut tx, &req.from)
        .await?
        .ok_or_else(|| ApiError::field("from", format!("no customer has the id '{}'", req.from)))?;
    if from.id == into.id {
        return Err(ApiError::field("from", "is already this customer"));
    }
    store::merge(&mut tx, &into, &from, now).await?;
    append_admin(
        &mut tx,
        &[
            admin_event(
                &by,
                &into.id,
                "customers_merged",
                json!({ "merged": from.id, "into": into.id }),
            ),
            admin_event(
                &by,
                &from.id,
                "customers_merged",
                json!({ "merged": from.id, "into": into.id }),
            ),
        ],
        now,
    )
    .await?;
    // The merged customer's waiting contacts are the merged-into customer's now.
    let waiting = waiting::refresh(
        &mut tx,
        &state.settings.tiers,
        std::slice::from_ref(&into.id),
        &by.actor,
        now,
    )
    .await?;
    tx.commit().await?;
    state.router.customers_changed(waiting);
    let mut conn = state.store.pool().acquire().await?;
    Ok(Json(view(&state, &mut conn, &into.id).await?))
}

/// Paging of `GET /api/customers/{id}/history`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only events older than this sequence number (the previous page's `next_before`).
    before: Option<i64>,
    /// Events per page, 1 to 500 (default 50).
    limit: Option<i64>,
}

/// `GET /api/customers/{id}/history`: newest first, across every channel.
pub async fn history(
    State(state): State<AppState>,
    Anyone(by): Anyone,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 500"));
    }
    let mut conn = state.store.pool().acquire().await?;
    let customer = load(&mut conn, &id).await?;
    may_see(&mut conn, &by, &customer.id, &id).await?;
    let events = history::page(&mut conn, &customer.id, q.before, limit + 1).await?;
    let more = events.len() as i64 > limit;
    let events: Vec<_> = events.into_iter().take(limit as usize).collect();
    let next_before = if more {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(json!({
        "customer_id": customer.id,
        "events": events.into_iter().map(EventView::from).collect::<Vec<_>>(),
        "next_before": next_before,
    })))
}

/// An agent sees a customer only while serving them (holding or being offered one of
/// their interactions); supervisors and admins see every customer. One it may not see is
/// answered as one that does not exist (`requested` is the id it asked for), so an agent
/// cannot learn which ids exist.
async fn may_see(
    conn: &mut Conn,
    by: &Principal,
    customer_id: &str,
    requested: &str,
) -> Result<(), ApiError> {
    if by.role != crate::store::agents::Role::Agent {
        return Ok(());
    }
    let serving: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM interactions WHERE agent_id = $1 AND state IN ('assigned', 'offered') \
         AND customer_id IN (SELECT id FROM customers WHERE id = $2 OR merged_into = $2)",
    )
    .bind(by.agent_id.as_deref())
    .bind(customer_id)
    .fetch_one(conn)
    .await?;
    if serving == 0 {
        return Err(not_found(requested));
    }
    Ok(())
}

/// Reads a customer by an id from a request: 404 when it is not a UUID or unknown.
async fn load(conn: &mut Conn, id: &str) -> Result<CustomerRow, ApiError> {
    check_id("customer", id)?;
    found(store::get(conn, id).await?, id)
}

fn found(row: Option<CustomerRow>, id: &str) -> Result<CustomerRow, ApiError> {
    row.ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no customer has the id '{id}'"))
}

/// The customer as the API shows it, with the tier it would get now.
pub async fn view(state: &AppState, conn: &mut Conn, id: &str) -> Result<CustomerView, ApiError> {
    let c = load(conn, id).await?;
    let now = now_ms();
    let value = store::value_data(
        conn,
        &c,
        now - i64::from(state.settings.tiers.window_days) * DAY_MS,
    )
    .await?;
    let decision = tier::decide(&state.settings.tiers, &value, now);
    let identities = store::identities(conn, &c.id).await?;
    let purchases = store::purchase_summary(conn, &c.id).await?;
    let open = open_matters(conn, &c.id).await?;
    let owner_name: Option<String> = match &c.owner_agent_id {
        Some(owner) => {
            sqlx::query_scalar("SELECT name FROM agents WHERE id = $1")
                .bind(owner)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    let mut view = CustomerView::new(c, decision, identities, purchases, open);
    view.set_owner_name(owner_name);
    Ok(view)
}

/// An open interaction as read for the customer's panel: id, channel, state, topic,
/// subject, agent and when it came.
type MatterRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

/// The customer's interactions not yet completed, oldest first, each with its next
/// deadline (its earliest service target still running, or its complaint's), and the
/// customer's open complaints with their owners.
async fn open_matters(conn: &mut Conn, id: &str) -> Result<Vec<serde_json::Value>, ApiError> {
    let rows: Vec<MatterRow> = sqlx::query_as(
        "SELECT id, channel, state, topic, subject, agent_id, created_at FROM interactions \
             WHERE state IN ('queued', 'offered', 'assigned') \
             AND customer_id IN (SELECT id FROM customers WHERE id = $1 OR merged_into = $1) \
             ORDER BY created_at LIMIT 50",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let targets = crate::store::service::deadlines_of(conn, &ids).await?;
    let complaints = crate::store::service::complaints_of_interactions(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|(id, channel, st, topic, subject, agent_id, created_at)| {
            let running = targets
                .iter()
                .filter(|d| d.interaction_id == id && matches!(d.state.as_str(), "pending" | "warned" | "breached"))
                .filter(|d| d.state != "breached" || d.target != "first_response" || st != "assigned")
                .filter_map(|d| Some((d.due_at.filter(|t| *t < i64::MAX)?, d.target.clone())))
                .min();
            let complaint = complaints.get(&id);
            let (deadline, target) = match (running, complaint) {
                (Some((at, _)), Some(c)) if c.due_at < at => (Some(c.due_at), "complaint".to_string()),
                (Some((at, t)), _) => (Some(at), t),
                (None, Some(c)) => (Some(c.due_at), "complaint".into()),
                (None, None) => (None, String::new()),
            };
            serde_json::json!({
                "interaction_id": id, "channel": channel, "state": st, "topic": topic,
                "subject": subject, "agent_id": agent_id, "created_at": rfc3339(created_at),
                "deadline": deadline.map(rfc3339), "deadline_target": (!target.is_empty()).then_some(target),
                "complaint_id": complaint.map(|c| c.id.clone()),
                "complaint_owner": complaint.and_then(|c| c.owner_agent_id.clone()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_times_read_dates_and_rfc3339() {
        assert_eq!(parse_time("2026-03-01"), Some(1_772_323_200_000));
        assert_eq!(
            parse_time("2026-03-01T08:00:00+08:00"),
            Some(1_772_323_200_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
