//! The deadline watch, run by the node that leads: it hands the router the contacts whose
//! opening (or booked time) has come, works out when each running target is due in its
//! calendar's open time, and at a warning or a breach records it in the history, tells
//! the owner's desktop and the supervisors, and posts the escalation webhook. Its writes
//! are fenced: a node that lost the lead escalates nothing twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;
use switchboard_contract::ChannelKind;
use tokio_util::sync::CancellationToken;

use super::{Service, Services};
use crate::config::Settings;
use crate::queue::Queue;
use crate::routing::router::RouterHandle;
use crate::store::history::{self, NewEvent};
use crate::store::service::{self as deadlines, DeadlineRow};
use crate::store::{now_ms, outbox, rfc3339, service_now, Conn, FenceError, Store};

/// The longest the watch sleeps: a target set meanwhile is looked at within this.
const AT_MOST: Duration = Duration::from_millis(500);
/// Targets handled in one pass.
const BATCH: i64 = 200;
/// The outbox channel of escalation webhooks.
pub const WEBHOOK: &str = "webhook";

/// What the watch needs.
pub struct Watch {
    /// The store.
    pub store: Store,
    /// The commitments in force.
    pub services: Arc<Services>,
    /// The queue, whose held contacts it releases.
    pub queue: Arc<Queue>,
    /// The router, to tell agents.
    pub router: RouterHandle,
    /// Where escalations are posted.
    pub settings: Arc<Settings>,
}

/// Runs until `stop`.
pub async fn run(watch: Watch, stop: CancellationToken) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let now = service_now();
        watch.queue.release_due(now);
        if let Err(e) = watch.pass(now).await {
            metrics::counter!("switchboard_service_watch_failures_total").increment(1);
            tracing::warn!(error = %e, "The deadline watch could not run; trying again");
        }
        if let Err(e) = watch.post_escalations(&client).await {
            tracing::warn!(error = %e, "Escalations could not be read for posting; trying again");
        }
        let next = watch.queue.next_release().map_or(AT_MOST, |at| {
            Duration::from_millis((at - service_now()).clamp(1, AT_MOST.as_millis() as i64) as u64)
        });
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// A warning or breach found in a pass, to tell once committed.
struct Notice {
    agent: Option<String>,
    holder_of: Option<String>,
    event: Value,
}

impl Watch {
    /// One pass over the targets and complaints whose time has come.
    async fn pass(&self, now: i64) -> anyhow::Result<()> {
        let rows = {
            let mut conn = self.store.pool().acquire().await?;
            let rows = deadlines::due(&mut conn, now, BATCH).await?;
            let complaints = due_complaints(&mut conn, now).await?;
            if rows.is_empty() && complaints.is_empty() {
                return Ok(());
            }
            (rows, complaints)
        };
        let mut tx = match self.store.begin_fenced().await {
            Ok(tx) => tx,
            Err(FenceError::Fenced) => return Ok(()),
            Err(FenceError::Store(e)) => return Err(e.into()),
        };
        let service = self.services.get();
        let mut notices = Vec::new();
        let mut events = Vec::new();
        for row in rows.0 {
            if row.due_at.is_none() {
                work_out(&mut tx, &service, &row, now).await?;
            } else if row.due_at <= Some(now) {
                if let Some(n) = self.breach(&mut tx, &row, now, &mut events).await? {
                    notices.push(n);
                }
            } else if row.state == "pending" && row.warn_at <= Some(now) {
                if let Some(n) = self.warn(&mut tx, &row, now, &mut events).await? {
                    notices.push(n);
                }
            }
        }
        for c in rows.1 {
            if let Some(n) = self.complaint(&mut tx, &c, now, &mut events).await? {
                notices.push(n);
            }
        }
        history::append(&mut tx, &events, now_ms()).await?;
        tx.commit().await?;
        for n in notices {
            if let Some(id) = &n.holder_of {
                self.router.tell_holder(id, n.event.clone());
            } else if let Some(agent) = &n.agent {
                self.router.tell_agent(agent, n.event.clone());
            }
            self.services.notify(n.event);
        }
        Ok(())
    }

    /// A target's warning: recorded, and told to its owner.
    async fn warn(
        &self,
        conn: &mut Conn,
        row: &DeadlineRow,
        now: i64,
        events: &mut Vec<NewEvent>,
    ) -> Result<Option<Notice>, sqlx::Error> {
        let moved = sqlx::query(
            "UPDATE interaction_deadlines SET state = 'warned', updated_at = $3 \
             WHERE interaction_id = $1 AND target = $2 AND state = 'pending'",
        )
        .bind(&row.interaction_id)
        .bind(&row.target)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        self.about(conn, row, "sla_warning", now, events).await
    }

    /// A target's breach: recorded, counted, told to its owner and the supervisors, and
    /// posted to the escalation webhook.
    async fn breach(
        &self,
        conn: &mut Conn,
        row: &DeadlineRow,
        now: i64,
        events: &mut Vec<NewEvent>,
    ) -> Result<Option<Notice>, sqlx::Error> {
        let moved = sqlx::query(
            "UPDATE interaction_deadlines SET state = 'breached', breached_at = $3, updated_at = $3 \
             WHERE interaction_id = $1 AND target = $2 AND state IN ('pending', 'warned')",
        )
        .bind(&row.interaction_id)
        .bind(&row.target)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        let notice = self.about(conn, row, "sla_breached", now, events).await?;
        if let Some(n) = &notice {
            self.escalate(conn, &n.event, now).await?;
        }
        Ok(notice)
    }

    /// The history event of a warning or breach of `row`, and whom to tell.
    async fn about(
        &self,
        conn: &mut Conn,
        row: &DeadlineRow,
        kind: &'static str,
        now: i64,
        events: &mut Vec<NewEvent>,
    ) -> Result<Option<Notice>, sqlx::Error> {
        let Some(who) = responsible(conn, &row.interaction_id, now).await? else {
            return Ok(None);
        };
        let due = row.due_at.unwrap_or(now);
        let data = json!({
            "target": row.target, "due_at": rfc3339(due), "owner_agent_id": who.owner,
            "late_secs": ((now - due).max(0)) / 1000,
        });
        events.push(NewEvent {
            customer_id: who.customer_id.clone(),
            interaction_id: Some(row.interaction_id.clone()),
            kind,
            actor: "system".into(),
            data: data.clone(),
        });
        let outcome = if kind == "sla_breached" {
            "breached"
        } else {
            "warned"
        };
        metrics::counter!("switchboard_sla_total", "target" => row.target.clone(), "outcome" => outcome, "channel" => row.channel.clone(), "tier" => who.tier.clone()).increment(1);
        let event = json!({
            "type": kind, "interaction_id": row.interaction_id, "target": row.target,
            "due_at": rfc3339(due), "owner_agent_id": who.owner, "tier": who.tier,
            "channel": row.channel, "topic": who.topic, "customer_id": who.customer_id,
        });
        Ok(Some(Notice {
            agent: who.owner,
            holder_of: who.held.then(|| row.interaction_id.clone()),
            event,
        }))
    }

    /// A complaint whose warning or deadline came.
    async fn complaint(
        &self,
        conn: &mut Conn,
        c: &DueComplaint,
        now: i64,
        events: &mut Vec<NewEvent>,
    ) -> Result<Option<Notice>, sqlx::Error> {
        let breach = c.due_at <= now;
        let (state, kind) = if breach {
            ("breached", "complaint_breached")
        } else {
            ("warned", "complaint_warning")
        };
        let moved = sqlx::query(
            "UPDATE complaints SET state = $2, updated_at = $3 WHERE id = $1 AND state = $4",
        )
        .bind(&c.id)
        .bind(state)
        .bind(now)
        .bind(&c.state)
        .execute(&mut *conn)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        let owner = match &c.owner {
            Some(o) => substitute(conn, o, now).await?,
            None => None,
        };
        let data =
            json!({ "complaint_id": c.id, "due_at": rfc3339(c.due_at), "owner_agent_id": owner });
        events.push(NewEvent {
            customer_id: c.customer_id.clone(),
            interaction_id: None,
            kind,
            actor: "system".into(),
            data,
        });
        let outcome = if breach { "breached" } else { "warned" };
        metrics::counter!("switchboard_sla_total", "target" => "complaint", "outcome" => outcome, "channel" => "any", "tier" => "any").increment(1);
        let event = json!({
            "type": kind, "complaint_id": c.id, "target": "complaint", "due_at": rfc3339(c.due_at),
            "owner_agent_id": owner, "customer_id": c.customer_id,
        });
        if breach {
            self.escalate(conn, &event, now).await?;
        }
        Ok(Some(Notice {
            agent: owner,
            holder_of: None,
            event,
        }))
    }

    /// Stores the escalation webhook's post for a breach (once per breach).
    async fn escalate(&self, conn: &mut Conn, event: &Value, now: i64) -> Result<(), sqlx::Error> {
        if self.settings.service.escalation_webhook_url.is_empty() {
            return Ok(());
        }
        let id = format!(
            "escalation:{}:{}:{}",
            event["interaction_id"]
                .as_str()
                .or(event["complaint_id"].as_str())
                .unwrap_or_default(),
            event["target"].as_str().unwrap_or_default(),
            event["due_at"].as_str().unwrap_or_default()
        );
        let mut body = event.clone();
        body["event"] = body["type"].take();
        if let Some(o) = body.as_object_mut() {
            o.remove("type");
        }
        body["escalated_at"] = json!(rfc3339(now));
        // The outbox runs on the real clock (it is delivery, not a commitment).
        outbox::put(conn, &id, WEBHOOK, &body.to_string(), false, now_ms()).await?;
        Ok(())
    }

    /// Posts the escalations due, signed; each is retried with a growing pause and given
    /// up (logged and counted) after ten attempts.
    async fn post_escalations(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = &self.settings.service.escalation_webhook_url;
        if url.is_empty() {
            return Ok(());
        }
        let due = {
            let mut conn = self.store.pool().acquire().await?;
            if outbox::due(&mut conn, WEBHOOK, now_ms(), 1)
                .await?
                .is_empty()
            {
                return Ok(());
            }
            drop(conn);
            let mut tx = match self.store.begin_fenced().await {
                Ok(tx) => tx,
                Err(FenceError::Fenced) => return Ok(()),
                Err(FenceError::Store(e)) => return Err(e.into()),
            };
            let now = now_ms();
            let rows = outbox::claim(
                &mut tx,
                self.store.backend(),
                WEBHOOK,
                now,
                20,
                now + 30_000,
            )
            .await?;
            tx.commit().await?;
            rows
        };
        let secret = &self.settings.service.escalation_webhook_secret;
        for (id, body, attempts) in due {
            let ts = now_ms() / 1000;
            let signature =
                switchboard_phone::signature::native_sign(secret, ts as u64, body.as_bytes());
            let sent = client
                .post(url)
                .header("content-type", "application/json")
                .header(
                    switchboard_phone::signature::TIMESTAMP_HEADER,
                    ts.to_string(),
                )
                .header(switchboard_phone::signature::SIGNATURE_HEADER, signature)
                .header("x-switchboard-delivery", &id)
                .body(body)
                .send()
                .await;
            let mut conn = self.store.pool().acquire().await?;
            match sent {
                Ok(r) if r.status().is_success() => {
                    outbox::delivered(&mut conn, &id, now_ms()).await?;
                    metrics::counter!("switchboard_escalations_posted_total", "outcome" => "delivered").increment(1);
                }
                other => {
                    let error = match other {
                        Ok(r) => format!("the webhook answered {}", r.status()),
                        Err(e) => format!("the webhook could not be reached: {e}"),
                    };
                    let attempts = attempts + 1;
                    let retry = (attempts < 10).then(|| now_ms() + 1000 * (1 << attempts.min(8)));
                    if retry.is_none() {
                        metrics::counter!("switchboard_escalations_posted_total", "outcome" => "given_up").increment(1);
                        tracing::error!(delivery = %id, error = %error, "An escalation webhook was given up after 10 attempts");
                    } else {
                        tracing::warn!(delivery = %id, error = %error, "An escalation webhook failed; it is retried");
                    }
                    outbox::failed(&mut conn, &id, retry, &error).await?;
                }
            }
        }
        Ok(())
    }
}

/// Works out when a running target is due: the next response's length from its policy,
/// the open time spent before a pause, then its due and warning times in its calendar.
async fn work_out(
    conn: &mut Conn,
    service: &Service,
    row: &DeadlineRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (mut budget, mut warn, mut calendar) = (row.budget_ms, row.warn_ms, row.calendar.clone());
    if budget.is_none() {
        let i = sqlx::query("SELECT tier, topic, channel FROM interactions WHERE id = $1")
            .bind(&row.interaction_id)
            .fetch_optional(&mut *conn)
            .await?;
        let found = match i {
            Some(i) => {
                let (tier, topic, channel): (String, Option<String>, String) =
                    (i.try_get(0)?, i.try_get(1)?, i.try_get(2)?);
                let channel = ChannelKind::parse(&channel).unwrap_or(ChannelKind::Api);
                calendar = service
                    .calendar_for(&tier, channel)
                    .map(|(n, _)| n.to_string());
                service
                    .policy(&tier, topic.as_deref(), channel)
                    .and_then(|p| {
                        warn = i64::from(p.warn_before_mins) * 60_000;
                        Some(i64::from(p.next_response_mins?) * 60_000)
                    })
            }
            None => None,
        };
        match found {
            Some(b) => budget = Some(b),
            None => {
                // No policy names a next response: there is none to keep.
                sqlx::query(
                    "UPDATE interaction_deadlines SET state = 'cancelled', updated_at = $3 \
                     WHERE interaction_id = $1 AND target = $2 AND due_at IS NULL",
                )
                .bind(&row.interaction_id)
                .bind(&row.target)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
        }
    }
    let budget = budget.unwrap_or(0);
    let cal = calendar.as_deref().and_then(|c| service.calendar(c));
    let open = |from: i64, to: i64| cal.map_or((to - from).max(0), |c| c.open_between(from, to));
    // A resolution resumed after a pause: the open time it ran before counts.
    let (mut spent, mut started) = (row.spent_ms, row.started_at);
    if let (Some(paused), Some(resumed)) = (row.paused_at, row.resumed_at) {
        spent += open(started, paused);
        started = resumed;
    }
    let left = (budget - spent).max(0);
    let d = service.deadline("", calendar.as_deref(), started, left, warn);
    sqlx::query(
        "UPDATE interaction_deadlines SET budget_ms = $3, warn_ms = $4, calendar = $5, started_at = $6, \
         spent_ms = $7, paused_at = NULL, resumed_at = NULL, due_at = $8, warn_at = $9, updated_at = $10 \
         WHERE interaction_id = $1 AND target = $2 AND state = 'pending' AND due_at IS NULL",
    )
    .bind(&row.interaction_id)
    .bind(&row.target)
    .bind(budget)
    .bind(warn)
    .bind(&calendar)
    .bind(started)
    .bind(spent)
    .bind(d.due_at)
    .bind(d.warn_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Who answers for a contact now: the agent holding it, else its complaint's owner,
/// else the customer's own account manager — an absent one's substitute in their place.
struct Responsible {
    customer_id: String,
    tier: String,
    topic: Option<String>,
    owner: Option<String>,
    /// The owner holds the contact (told as its holder).
    held: bool,
}

async fn responsible(
    conn: &mut Conn,
    interaction_id: &str,
    now: i64,
) -> Result<Option<Responsible>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.customer_id, i.tier, i.topic, i.state, i.agent_id, c.owner_agent_id, cu.owner_agent_id \
         FROM interactions i JOIN customers cu ON cu.id = i.customer_id \
         LEFT JOIN complaints c ON c.id = i.complaint_id WHERE i.id = $1",
    )
    .bind(interaction_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let state: String = row.try_get(3)?;
    let holder: Option<String> = row.try_get(4)?;
    let held = state == "assigned" && holder.is_some();
    let named = if held {
        holder
    } else {
        row.try_get::<Option<String>, _>(5)?
            .or(row.try_get::<Option<String>, _>(6)?)
    };
    let owner = match named {
        Some(a) if !held => substitute(conn, &a, now).await?,
        other => other,
    };
    Ok(Some(Responsible {
        customer_id: row.try_get(0)?,
        tier: row.try_get(1)?,
        topic: row.try_get(2)?,
        owner,
        held,
    }))
}

/// `agent`, or their substitute while they are away.
pub async fn substitute(
    conn: &mut Conn,
    agent: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT absent_until, substitute_id FROM agents WHERE id = $1")
        .bind(agent)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => {
            let until: Option<i64> = r.try_get(0)?;
            let sub: Option<String> = r.try_get(1)?;
            match (until, sub) {
                (Some(u), Some(s)) if u > now => Some(s),
                _ => Some(agent.to_string()),
            }
        }
        None => None,
    })
}

/// A complaint whose warning or deadline has come.
struct DueComplaint {
    id: String,
    customer_id: String,
    owner: Option<String>,
    due_at: i64,
    state: String,
}

async fn due_complaints(conn: &mut Conn, now: i64) -> Result<Vec<DueComplaint>, sqlx::Error> {
    sqlx::query(
        "SELECT id, customer_id, owner_agent_id, due_at, state FROM complaints \
         WHERE (state = 'open' AND (warn_at <= $1 OR due_at <= $1)) OR (state = 'warned' AND due_at <= $1) \
         ORDER BY due_at LIMIT 100",
    )
    .bind(now)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| {
        Ok(DueComplaint {
            id: r.try_get(0)?,
            customer_id: r.try_get(1)?,
            owner: r.try_get(2)?,
            due_at: r.try_get(3)?,
            state: r.try_get(4)?,
        })
    })
    .collect()
}
