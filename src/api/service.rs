//! The service commitments over the API: what is in force (calendars open or closed now,
//! the policies, complaints, callbacks, the survey), structured edits of calendars,
//! hours and policies (each a new version of the rules document, applied as a PUT of the
//! rules is), the targets warned of and breached, complaints and their owners, and the
//! test clock.

use serde::Deserialize;
use serde_json::{json, Value};

use axum::extract::State;
use axum::Json;

use super::auth::{Admin, Supervisor};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::service::calendar::CalendarDoc;
use crate::service::rules::{HoursRule, Policy};
use crate::store::service::DeadlineRow;
use crate::store::{self, now_ms, rfc3339};

/// A target as the API shows it.
pub fn deadline_json(d: &DeadlineRow) -> Value {
    json!({
        "target": d.target,
        "state": d.state,
        "due_at": d.due_at.filter(|t| *t < i64::MAX).map(rfc3339),
        "warn_at": d.warn_at.filter(|t| *t < i64::MAX).map(rfc3339),
        "met_at": d.met_at.map(rfc3339),
        "breached_at": d.breached_at.map(rfc3339),
        "calendar": d.calendar,
    })
}

/// `GET /api/service`: the commitments in force, with each calendar's state now.
pub async fn get(State(state): State<AppState>, _: Supervisor) -> Result<Json<Value>, ApiError> {
    let service = state.services.get();
    let rules = service.rules();
    let now = store::service_now();
    let calendars: serde_json::Map<String, Value> = rules
        .calendars
        .iter()
        .map(|(name, doc)| {
            let status = service.calendar(name).map(|c| {
                json!({
                    "open_now": c.is_open(now),
                    "next_change": c.next_change(now).map(rfc3339),
                    "local_time": c.local(now),
                })
            });
            let mut v = serde_json::to_value(doc).unwrap_or_default();
            v["status"] = status.unwrap_or(Value::Null);
            (name.clone(), v)
        })
        .collect();
    Ok(Json(json!({
        "version": state.services.version(),
        "now": rfc3339(now),
        "calendars": calendars,
        "hours": rules.hours,
        "closed": rules.closed,
        "policies": rules.policies,
        "complaints": rules.complaints,
        "callbacks": rules.callbacks,
        "satisfaction": rules.satisfaction,
        "waiting_for_opening": state.queue.held(),
    })))
}

/// The body of a structured edit: why, for the version's comment.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarEdit {
    /// The calendar.
    pub calendar: CalendarDoc,
    /// Why, kept with the new version.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `PUT /api/service/calendars/{name}`: adds or replaces a calendar.
pub async fn put_calendar(
    State(state): State<AppState>,
    by: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(edit): ApiJson<CalendarEdit>,
) -> Result<Json<Value>, ApiError> {
    let value = serde_json::to_value(&edit.calendar).map_err(anyhow::Error::from)?;
    let comment = edit
        .comment
        .unwrap_or_else(|| format!("calendar {name} changed"));
    edit_document(&state, by.0.actor, comment, move |doc| {
        let table = doc
            .entry("calendars")
            .or_insert(toml_edit::Item::Table(toml_edit::Table::new()));
        let Some(table) = table.as_table_mut() else {
            return Err("calendars: is not a table in the rules".to_string());
        };
        table.set_implicit(true);
        table.insert(&name, toml_edit::Item::Table(to_table(&value)?));
        Ok(())
    })
    .await
}

/// `DELETE /api/service/calendars/{name}`: removes a calendar no rule names.
pub async fn delete_calendar(
    State(state): State<AppState>,
    by: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.services.get().rules().calendars.contains_key(&name) {
        return Err(ApiError::NotFound(format!("no calendar is named '{name}'")));
    }
    edit_document(
        &state,
        by.0.actor,
        format!("calendar {name} removed"),
        move |doc| {
            if let Some(t) = doc.get_mut("calendars").and_then(|c| c.as_table_mut()) {
                t.remove(&name);
            }
            Ok(())
        },
    )
    .await
}

/// The body of `PUT /api/service/policies`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesEdit {
    /// Every policy, first match first.
    pub policies: Vec<Policy>,
    /// Why, kept with the new version.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `PUT /api/service/policies`: replaces every policy.
pub async fn put_policies(
    State(state): State<AppState>,
    by: Admin,
    ApiJson(edit): ApiJson<PoliciesEdit>,
) -> Result<Json<Value>, ApiError> {
    let value = serde_json::to_value(&edit.policies).map_err(anyhow::Error::from)?;
    let comment = edit
        .comment
        .unwrap_or_else(|| "service policies changed".into());
    edit_document(&state, by.0.actor, comment, move |doc| {
        replace_array(doc, "policies", &value)
    })
    .await
}

/// The body of `PUT /api/service/hours`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursEdit {
    /// Which calendar serves which contacts, first match first.
    pub hours: Vec<HoursRule>,
    /// Why, kept with the new version.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `PUT /api/service/hours`: replaces which calendar serves which contacts.
pub async fn put_hours(
    State(state): State<AppState>,
    by: Admin,
    ApiJson(edit): ApiJson<HoursEdit>,
) -> Result<Json<Value>, ApiError> {
    let value = serde_json::to_value(&edit.hours).map_err(anyhow::Error::from)?;
    let comment = edit
        .comment
        .unwrap_or_else(|| "opening hours changed".into());
    edit_document(&state, by.0.actor, comment, move |doc| {
        replace_array(doc, "hours", &value)
    })
    .await
}

/// Edits the active rules document (its comments and layout kept), then applies it as a
/// new version: checked whole, refused with every error named.
async fn edit_document(
    state: &AppState,
    actor: String,
    comment: String,
    edit: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<(), String>,
) -> Result<Json<Value>, ApiError> {
    let current = {
        let mut conn = state.store.pool().acquire().await?;
        store::rules::latest(&mut conn)
            .await?
            .ok_or_else(|| ApiError::NotFound("no rules are stored yet".into()))?
    };
    let mut doc: toml_edit::DocumentMut = current
        .document
        .parse()
        .map_err(|e| anyhow::anyhow!("the active rules are not TOML: {e}"))?;
    edit(&mut doc).map_err(|message| ApiError::BadRequest {
        field: None,
        message,
    })?;
    super::rules::apply(state, actor, doc.to_string(), Some(comment)).await
}

/// Replaces the array of tables `key` (`[[policies]]`) with `value`'s entries.
fn replace_array(doc: &mut toml_edit::DocumentMut, key: &str, value: &Value) -> Result<(), String> {
    let mut array = toml_edit::ArrayOfTables::new();
    for v in value.as_array().into_iter().flatten() {
        array.push(to_table(v)?);
    }
    if array.is_empty() {
        doc.remove(key);
    } else {
        doc.insert(key, toml_edit::Item::ArrayOfTables(array));
    }
    Ok(())
}

/// A JSON object as a TOML table.
fn to_table(v: &Value) -> Result<toml_edit::Table, String> {
    let text = toml::to_string(v).map_err(|e| format!("cannot be written as TOML: {e}"))?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("cannot be written as TOML: {e}"))?;
    Ok(doc.as_table().clone())
}

/// The query of `GET /api/service/breaches`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreachQuery {
    /// Only those breached or warned of at or after this moment (RFC 3339); default: the
    /// last 24 hours.
    #[serde(default)]
    pub since: Option<String>,
}

/// `GET /api/service/breaches`: targets breached, and those warned of and still running,
/// newest first (at most 500).
pub async fn breaches(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<BreachQuery>,
) -> Result<Json<Value>, ApiError> {
    let since = match &q.since {
        Some(s) => store::parse_rfc3339(s.trim()).ok_or_else(|| {
            ApiError::field("since", "is not a moment such as 2026-12-03T08:00:00Z")
        })?,
        None => store::service_now() - 86_400_000,
    };
    let mut conn = state.store.pool().acquire().await?;
    let rows = store::service::recent_breaches(&mut conn, since, 500).await?;
    let complaints = store::service::complaints_in(&mut conn, &["warned", "breached"], 500).await?;
    Ok(Json(json!({
        "targets": rows.iter().map(|d| {
            let mut v = deadline_json(d);
            v["interaction_id"] = json!(d.interaction_id);
            v["channel"] = json!(d.channel);
            v
        }).collect::<Vec<_>>(),
        "complaints": complaints.iter().map(complaint_json).collect::<Vec<_>>(),
    })))
}

fn complaint_json(c: &store::service::ComplaintRow) -> Value {
    json!({
        "id": c.id, "customer_id": c.customer_id, "topic": c.topic, "owner_agent_id": c.owner_agent_id,
        "state": c.state, "opened_at": rfc3339(c.opened_at), "due_at": rfc3339(c.due_at),
        "resolved_at": c.resolved_at.map(rfc3339), "resolved_by": c.resolved_by,
        "interactions": c.interactions,
    })
}

/// The query of `GET /api/complaints`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintQuery {
    /// `open` (not resolved: open, warned or breached; the default), `resolved` or `all`.
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /api/complaints`: complaints with their owners and deadlines, by due time.
pub async fn complaints(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<ComplaintQuery>,
) -> Result<Json<Value>, ApiError> {
    let states: &[&str] = match q.state.as_deref().unwrap_or("open") {
        "open" => &["open", "warned", "breached"],
        "resolved" => &["resolved"],
        "all" => &["open", "warned", "breached", "resolved"],
        other => {
            return Err(ApiError::field(
                "state",
                format!("'{other}' is not open, resolved or all"),
            ))
        }
    };
    let mut conn = state.store.pool().acquire().await?;
    let rows = store::service::complaints_in(&mut conn, states, 1000).await?;
    Ok(Json(
        json!({ "complaints": rows.iter().map(complaint_json).collect::<Vec<_>>() }),
    ))
}

/// The body of `POST /api/complaints/{id}/owner`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerBody {
    /// The agent who owns it from now on.
    pub agent_id: String,
}

/// `POST /api/complaints/{id}/owner`: a supervisor names (or changes) a complaint's
/// owner.
pub async fn set_owner(
    State(state): State<AppState>,
    by: Supervisor,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<OwnerBody>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.store.begin_write().await?;
    let Some(c) = store::service::complaint(&mut tx, &id).await? else {
        return Err(ApiError::NotFound(format!(
            "no complaint has the id '{id}'"
        )));
    };
    if c.state == "resolved" {
        return Err(ApiError::Conflict {
            field: None,
            message: "the complaint is resolved".into(),
        });
    }
    let Some(agent) = store::agents::get(&mut tx, &body.agent_id).await? else {
        return Err(ApiError::field("agent_id", "no such agent"));
    };
    if !agent.active {
        return Err(ApiError::field("agent_id", "the agent is deactivated"));
    }
    let now = now_ms();
    store::service::set_complaint_owner(&mut tx, &id, &body.agent_id, now).await?;
    let event = store::history::NewEvent {
        customer_id: c.customer_id.clone(),
        interaction_id: None,
        kind: "complaint_owner",
        actor: by.0.actor.clone(),
        data: json!({ "complaint_id": id, "owner_agent_id": body.agent_id, "before": c.owner_agent_id }),
    };
    store::history::append(&mut tx, [&event], now).await?;
    let change = store::audit::Change::by(
        &by.0.actor,
        "complaint.owner",
        "complaint",
        &id,
        Some(json!({ "owner_agent_id": c.owner_agent_id })),
        Some(json!({ "owner_agent_id": body.agent_id })),
    );
    store::audit::record(&mut tx, &[change], now).await?;
    tx.commit().await?;
    let mut conn = state.store.pool().acquire().await?;
    let c = store::service::complaint(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(id.clone()))?;
    Ok(Json(complaint_json(&c)))
}

/// `POST /api/complaints/{id}/resolve`: the complaint is resolved (by its owner or a
/// supervisor).
pub async fn resolve(
    State(state): State<AppState>,
    super::auth::Anyone(by): super::auth::Anyone,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.store.begin_write().await?;
    let Some(c) = store::service::complaint(&mut tx, &id).await? else {
        return Err(ApiError::NotFound(format!(
            "no complaint has the id '{id}'"
        )));
    };
    let is_owner = by.agent_id.is_some() && by.agent_id == c.owner_agent_id;
    if by.role < store::agents::Role::Supervisor && !is_owner {
        // An agent may not learn of complaints it does not own.
        return Err(ApiError::NotFound(format!(
            "no complaint has the id '{id}'"
        )));
    }
    if c.state == "resolved" {
        return Err(ApiError::Conflict {
            field: None,
            message: "the complaint is resolved already".into(),
        });
    }
    let now = now_ms();
    store::service::resolve_complaint(&mut tx, &id, &by.actor, store::service_time(now)).await?;
    let met = store::service_time(now) <= c.due_at;
    let event = store::history::NewEvent {
        customer_id: c.customer_id.clone(),
        interaction_id: None,
        kind: "complaint_resolved",
        actor: by.actor.clone(),
        data: json!({ "complaint_id": id, "within_deadline": met, "due_at": rfc3339(c.due_at) }),
    };
    store::history::append(&mut tx, [&event], now).await?;
    tx.commit().await?;
    metrics::counter!("switchboard_sla_total", "target" => "complaint", "outcome" => if met { "met" } else { "met_late" }, "channel" => "any", "tier" => "any").increment(1);
    let mut conn = state.store.pool().acquire().await?;
    let c = store::service::complaint(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(id.clone()))?;
    Ok(Json(complaint_json(&c)))
}

/// The body of `POST /api/test/clock`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockBody {
    /// Seconds to move the clock forward (at most a year).
    pub advance_secs: u64,
}

/// `POST /api/test/clock`: moves the server's clock forward, when `service.test_clock`
/// allows it (tests of deadlines and opening hours); otherwise there is no such endpoint.
pub async fn clock(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(body): ApiJson<ClockBody>,
) -> Result<Json<Value>, ApiError> {
    if !state.settings.service.test_clock {
        return Err(ApiError::NotFound("no such endpoint".into()));
    }
    if body.advance_secs > 366 * 86_400 {
        return Err(ApiError::field("advance_secs", "at most a year"));
    }
    crate::store::shift_test_clock(body.advance_secs as i64 * 1000);
    Ok(Json(json!({ "now": rfc3339(store::service_now()) })))
}

/// The body of `POST /api/callbacks`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BookCallback {
    /// Unique per callback: booking it again changes nothing.
    pub idempotency_key: String,
    /// The number to call.
    pub number: String,
    /// Not before this moment (RFC 3339); by default when its turn comes.
    #[serde(default)]
    pub at: Option<String>,
    /// What it is about.
    #[serde(default)]
    pub topic: Option<String>,
    /// A note for the agent.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/callbacks`: books a callback (a CRM, a web form): routed like a call when
/// its time comes, and dialled when an agent takes it.
pub async fn book_callback(
    State(state): State<AppState>,
    _: Supervisor,
    ApiJson(b): ApiJson<BookCallback>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let key = b.idempotency_key.trim();
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
        return Err(ApiError::field(
            "idempotency_key",
            "1 to 200 printable characters",
        ));
    }
    let digits: String = b.number.chars().filter(char::is_ascii_digit).collect();
    let blocked = state
        .settings
        .phone
        .blocked_numbers
        .iter()
        .any(|n| n.chars().filter(char::is_ascii_digit).collect::<String>() == digits);
    if blocked {
        return Err(ApiError::field("number", "this number is blocked"));
    }
    let not_before = match &b.at {
        Some(at) => Some(store::parse_rfc3339(at.trim()).ok_or_else(|| {
            ApiError::field("at", "is not a moment such as 2026-12-03T08:00:00Z")
        })?),
        None => None,
    };
    let note = b.note.map(|n| {
        n.chars()
            .filter(|c| *c != '\0')
            .take(2000)
            .collect::<String>()
    });
    let booked = state
        .core
        .book(switchboard_contract::NewCallback {
            key: format!("api:{key}"),
            number: b.number,
            customer: Default::default(),
            topic: b.topic,
            source: "api".into(),
            note,
            not_before_ms: not_before,
            attempts: 0,
            follows: None,
        })
        .await
        .map_err(ApiError::from)?;
    let id = booked.ok_or_else(|| anyhow::anyhow!("an API callback is always booked"))?;
    let mut conn = state.store.pool().acquire().await?;
    let row = store::interactions::get(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(id.clone()))?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({
            "interaction_id": id, "customer_id": row.customer_id, "tier": row.tier,
            "opens_at": row.opens_at.map(rfc3339),
        })),
    ))
}

/// The body of `POST /api/interactions/{id}/satisfaction`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Score {
    /// 1 to 5.
    pub score: u8,
    /// What the customer said.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /api/interactions/{id}/satisfaction`: a customer's score of a completed contact
/// given through another system (a CRM's survey).
pub async fn satisfaction(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(s): ApiJson<Score>,
) -> Result<Json<Value>, ApiError> {
    use switchboard_contract::Rated;
    match state
        .core
        .rate_interaction(&id, "api", s.score, s.comment.as_deref())
        .await
        .map_err(ApiError::from)?
    {
        Rated::Recorded {
            interaction_id,
            follow_up,
        } => Ok(Json(
            json!({ "interaction_id": interaction_id, "score": s.score, "follow_up": follow_up }),
        )),
        Rated::AlreadyAnswered => Err(ApiError::Conflict {
            field: None,
            message: "this contact was scored before".into(),
        }),
        Rated::Unknown => Err(ApiError::NotFound(format!(
            "no completed interaction has the id '{id}'"
        ))),
    }
}

/// The query of `GET /api/reports/satisfaction`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SatisfactionQuery {
    /// From (RFC 3339); default: 30 days ago.
    #[serde(default)]
    pub from: Option<String>,
    /// To (RFC 3339); default: now.
    #[serde(default)]
    pub to: Option<String>,
    /// `agent`, `tier`, `topic` or `channel`.
    pub by: String,
}

/// `GET /api/reports/satisfaction`: scores answered in a range, by agent, tier, topic or
/// channel: how many, their average, and how many of each score.
pub async fn satisfaction_report(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<SatisfactionQuery>,
) -> Result<Json<Value>, ApiError> {
    let column = match q.by.as_str() {
        "agent" => "agent_id",
        "tier" => "tier",
        "topic" => "topic",
        "channel" => "channel",
        other => {
            return Err(ApiError::field(
                "by",
                format!("'{other}' is not agent, tier, topic or channel"),
            ))
        }
    };
    let now = now_ms();
    let time = |field: &str, v: &Option<String>, default: i64| match v {
        Some(t) => store::parse_rfc3339(t.trim())
            .ok_or_else(|| ApiError::field(field, "is not a moment such as 2026-12-03T08:00:00Z")),
        None => Ok(default),
    };
    let from = time("from", &q.from, now - 30 * 86_400_000)?;
    let to = time("to", &q.to, now)?;
    if to < from {
        return Err(ApiError::field("to", "is before from"));
    }
    let mut conn = state.store.pool().acquire().await?;
    let rows = store::service::satisfaction_by(&mut conn, column, from, to).await?;
    Ok(Json(json!({
        "from": rfc3339(from), "to": rfc3339(to), "by": q.by,
        "groups": rows.iter().map(|(key, counts)| {
            let n: i64 = counts.iter().sum();
            let total: i64 = counts.iter().enumerate().map(|(i, c)| (i as i64 + 1) * c).sum();
            json!({
                "key": key, "answers": n,
                "average": if n > 0 { (total as f64 / n as f64 * 100.0).round() / 100.0 } else { 0.0 },
                "scores": { "1": counts[0], "2": counts[1], "3": counts[2], "4": counts[3], "5": counts[4] },
            })
        }).collect::<Vec<_>>(),
    })))
}

/// The body of `PUT /api/agents/{id}/absence`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Absence {
    /// Away until (RFC 3339).
    pub until: String,
    /// Who takes their owned customers and complaints meanwhile.
    pub substitute_id: String,
}

/// `PUT /api/agents/{id}/absence`: an agent is away until a time; their owned customers'
/// contacts and their complaints go to the substitute meanwhile.
pub async fn set_absence(
    State(state): State<AppState>,
    by: Supervisor,
    ApiPath(id): ApiPath<String>,
    ApiJson(a): ApiJson<Absence>,
) -> Result<Json<Value>, ApiError> {
    let until = store::parse_rfc3339(a.until.trim())
        .ok_or_else(|| ApiError::field("until", "is not a moment such as 2026-12-24T08:00:00Z"))?;
    if until <= store::service_now() {
        return Err(ApiError::field("until", "is in the past"));
    }
    if a.substitute_id == id {
        return Err(ApiError::field(
            "substitute_id",
            "an agent cannot stand in for themselves",
        ));
    }
    let mut tx = state.store.begin_write().await?;
    let Some(agent) = store::agents::get(&mut tx, &id).await? else {
        return Err(ApiError::NotFound(format!("no agent has the id '{id}'")));
    };
    match store::agents::get(&mut tx, &a.substitute_id).await? {
        Some(s) if s.active => {}
        Some(_) => {
            return Err(ApiError::field(
                "substitute_id",
                "the substitute is deactivated",
            ))
        }
        None => return Err(ApiError::field("substitute_id", "no such agent")),
    }
    let now = now_ms();
    store::service::set_absence(&mut tx, &id, Some((until, &a.substitute_id))).await?;
    let change = store::audit::Change::by(
        &by.0.actor,
        "agent.absence",
        "agent",
        &agent.id,
        None,
        Some(json!({ "until": rfc3339(until), "substitute_id": a.substitute_id })),
    );
    store::audit::record(&mut tx, &[change], now).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "agent_id": id, "absent_until": rfc3339(until), "substitute_id": a.substitute_id }),
    ))
}

/// `DELETE /api/agents/{id}/absence`: the agent is back.
pub async fn clear_absence(
    State(state): State<AppState>,
    by: Supervisor,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let mut tx = state.store.begin_write().await?;
    if store::agents::get(&mut tx, &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no agent has the id '{id}'")));
    }
    store::service::set_absence(&mut tx, &id, None).await?;
    let change = store::audit::Change::by(
        &by.0.actor,
        "agent.absence",
        "agent",
        &id,
        None,
        Some(json!({ "until": null })),
    );
    store::audit::record(&mut tx, &[change], now_ms()).await?;
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
