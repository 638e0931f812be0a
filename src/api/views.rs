//! The JSON shapes the API answers with.

use serde::Serialize;
use serde_json::Value;

use crate::customers::identity::Identity;
use crate::customers::tier::{money, TierDecision};
use crate::store::customers::CustomerRow;
use crate::store::history::Event;
use crate::store::interactions::InteractionRow;
use crate::store::rfc3339;

/// An interaction.
#[derive(Debug, Serialize)]
pub struct InteractionView {
    id: String,
    channel: String,
    state: String,
    customer_id: String,
    tier: String,
    tier_source: String,
    tier_reason: String,
    topic: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    idempotency_key: String,
    agent_id: Option<String>,
    disposition: Option<String>,
    notes: Option<String>,
    created_at: String,
    updated_at: String,
    /// The agent it is offered to first (the agent of the thread it continues).
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_agent_id: Option<String>,
    /// Files that came with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<Vec<serde_json::Value>>,
    /// When it is first routed, when it arrived while its calendar was closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    opens_at: Option<String>,
    /// The complaint it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    complaint_id: Option<String>,
    /// Its service targets: when each is due, and whether it was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    deadlines: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<EventView>>,
}

impl InteractionView {
    /// Lists its service targets.
    pub fn set_deadlines(&mut self, deadlines: Vec<serde_json::Value>) {
        self.deadlines = Some(deadlines);
    }

    /// Lists the files that came with it.
    pub fn set_attachments(&mut self, files: Vec<serde_json::Value>) {
        self.attachments = Some(files);
    }

    /// The interaction, with its history when given.
    pub fn new(i: InteractionRow, history: Option<Vec<Event>>) -> Self {
        InteractionView {
            created_at: rfc3339(i.created_at),
            updated_at: rfc3339(i.updated_at),
            id: i.id,
            channel: i.channel,
            state: i.state,
            customer_id: i.customer_id,
            tier: i.tier,
            tier_source: i.tier_source,
            tier_reason: i.tier_reason,
            topic: i.topic,
            subject: i.subject,
            body: i.body,
            idempotency_key: i.idempotency_key,
            agent_id: i.agent_id,
            disposition: i.disposition,
            notes: i.notes,
            preferred_agent_id: i.preferred_agent_id,
            opens_at: i.opens_at.map(rfc3339),
            complaint_id: i.complaint_id,
            deadlines: None,
            attachments: None,
            history: history.map(|h| h.into_iter().map(EventView::from).collect()),
        }
    }
}

/// One history event.
#[derive(Debug, Serialize)]
pub struct EventView {
    seq: i64,
    kind: String,
    at: String,
    actor: String,
    customer_id: String,
    interaction_id: Option<String>,
    data: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            seq: e.seq,
            kind: e.kind,
            at: rfc3339(e.occurred_at),
            actor: e.actor,
            customer_id: e.customer_id,
            interaction_id: e.interaction_id,
            data: e.data,
        }
    }
}

/// A customer, with the tier it would get now.
#[derive(Debug, Serialize)]
pub struct CustomerView {
    id: String,
    name: Option<String>,
    tier: TierDecision,
    explicit_tier: Option<String>,
    lifetime_value: Option<String>,
    owner: Option<String>,
    /// The account manager's name, for people reading the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_name: Option<String>,
    identities: Vec<Identity>,
    purchases: PurchaseSummary,
    /// Its interactions not yet completed, with a deadline where their topic has one.
    open_matters: Vec<Value>,
    created_at: String,
    updated_at: String,
}

/// What a customer bought, in sum.
#[derive(Debug, Serialize)]
pub struct PurchaseSummary {
    count: i64,
    total: String,
    last_at: Option<String>,
}

impl CustomerView {
    /// Names the account manager.
    pub fn set_owner_name(&mut self, name: Option<String>) {
        self.owner_name = name;
    }

    /// Puts a customer's parts together.
    pub fn new(
        c: CustomerRow,
        tier: TierDecision,
        identities: Vec<Identity>,
        purchases: (i64, i64, Option<i64>),
        open_matters: Vec<Value>,
    ) -> Self {
        CustomerView {
            id: c.id,
            name: c.name,
            tier,
            explicit_tier: c.explicit_tier,
            lifetime_value: c.lifetime_value_cents.map(money),
            owner: c.owner_agent_id,
            owner_name: None,
            identities,
            purchases: PurchaseSummary {
                count: purchases.0,
                total: money(purchases.1),
                last_at: purchases.2.map(rfc3339),
            },
            open_matters,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}
