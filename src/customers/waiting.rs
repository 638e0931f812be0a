//! A changed customer's contacts that still wait. A contact's tier is decided when it
//! arrives; when an admin then changes the customer (an explicit tier, a lifetime value,
//! a purchase, the account manager, a merge), the contacts still waiting are decided
//! again, in the change's own transaction, so that a customer made VIP while on hold is
//! routed as VIP from that moment, and a restart finds the same tier in the store.
//!
//! The store is the authority: the router is told which contacts to look at again, and
//! reads their tier and owner from the store ([`current`]), so two changes told to it in
//! either order, or a contact queued just after a change, end as the store says.

use std::collections::HashMap;

use serde_json::json;
use sqlx::Row;

use super::tier;
use crate::config::TierSettings;
use crate::store::bulk;
use crate::store::customers;
use crate::store::history::{self, NewEvent};
use crate::store::Conn;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A waiting contact as the store has it now, for the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingNow {
    /// The interaction.
    pub interaction_id: String,
    /// Its customer, following merges.
    pub customer_id: String,
    /// Its tier.
    pub tier: String,
    /// The customer's account manager.
    pub owner: Option<String>,
}

/// Locks the rows of `ids` in the customers table until the transaction ends, on
/// PostgreSQL (`share`: against changes; otherwise: for a change). SQLite needs none:
/// its writers take turns, and a reader inside a write transaction sees every commit.
/// Intake deciding tiers and an admin changing a customer so see each other's commits:
/// a contact is either decided after the change, or there to be decided again by it.
pub async fn lock(conn: &mut Conn, ids: &[String], share: bool) -> Result<(), sqlx::Error> {
    if conn.backend_name() != "PostgreSQL" || ids.is_empty() {
        return Ok(());
    }
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    let strength = if share { "SHARE" } else { "UPDATE" };
    bulk::fetch_in(conn, &[], &sorted, |list| {
        format!("SELECT id FROM customers WHERE id IN ({list}) ORDER BY id FOR {strength}")
    })
    .await?;
    Ok(())
}

/// Decides again the tier of every contact of `customer_ids` (and of the customers
/// merged into them) still waiting, queued or on offer (or a chat waiting for its
/// visitor's first message); writes the ones that change,
/// each with a `tier_changed` event by `actor`. Answers every such contact's id. Call it
/// inside the transaction that changed the customers, and hand the ids to the router
/// once that transaction is committed.
pub async fn refresh(
    conn: &mut Conn,
    settings: &TierSettings,
    customer_ids: &[String],
    actor: &str,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    lock(conn, customer_ids, false).await?;
    // Few contacts wait at any moment, and few of the customers changed have one: find
    // those first, and decide tiers only for their customers.
    let open: Vec<(String, String, String)> = bulk::fetch_in(conn, &[], customer_ids, |list| {
        format!(
            "SELECT i.id, COALESCE(c.merged_into, c.id), i.tier \
             FROM interactions i JOIN customers c ON c.id = i.customer_id \
             WHERE i.state IN ('opened', 'queued', 'offered') AND (c.id IN ({list}) OR c.merged_into IN ({list}))"
        )
    })
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = open.iter().map(|(_, c, _)| c.clone()).collect();
    ids.sort();
    ids.dedup();
    let window_start = now - i64::from(settings.window_days) * DAY_MS;
    let decided: HashMap<String, tier::TierDecision> =
        customers::with_value_data(conn, &ids, window_start)
            .await?
            .into_iter()
            .map(|(c, value)| (c.id, tier::decide(settings, &value, now)))
            .collect();

    let mut events = Vec::new();
    let mut out = Vec::with_capacity(open.len());
    for (interaction_id, customer_id, was) in open {
        let Some(decision) = decided.get(&customer_id) else {
            continue;
        };
        if decision.tier != was {
            // Only while it waits (or, a chat, waits for its first message): one the
            // router has just assigned or ended keeps the tier it was served under.
            let changed = sqlx::query(
                "UPDATE interactions SET tier = $2, tier_source = $3, tier_reason = $4, updated_at = $5 \
                 WHERE id = $1 AND state IN ('opened', 'queued', 'offered')",
            )
            .bind(&interaction_id)
            .bind(&decision.tier)
            .bind(decision.source.as_str())
            .bind(&decision.reason)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                continue;
            }
            events.push(NewEvent {
                customer_id: customer_id.clone(),
                interaction_id: Some(interaction_id.clone()),
                kind: "tier_changed",
                actor: actor.to_string(),
                data: json!({ "from": was, "tier": decision.tier, "source": decision.source, "reason": decision.reason }),
            });
        }
        out.push(interaction_id);
    }
    if !events.is_empty() {
        history::append(conn, &events, now).await?;
    }
    Ok(out)
}

/// The interactions of `ids` still waiting, as the store has them now: tier, customer
/// (following merges) and that customer's account manager.
pub async fn current(conn: &mut Conn, ids: &[String]) -> Result<Vec<WaitingNow>, sqlx::Error> {
    // An account manager away names a substitute, who takes their place meanwhile.
    let now = bulk::Arg::from(crate::store::service_now());
    bulk::fetch_in(conn, &[now], ids, |list| {
        format!(
            "SELECT i.id, COALESCE(s.id, c.id), i.tier, \
             COALESCE(a.substitute_id, COALESCE(s.owner_agent_id, c.owner_agent_id)) \
             FROM interactions i JOIN customers c ON c.id = i.customer_id \
             LEFT JOIN customers s ON s.id = c.merged_into \
             LEFT JOIN agents a ON a.id = COALESCE(s.owner_agent_id, c.owner_agent_id) AND a.absent_until > $1 \
             WHERE i.id IN ({list}) AND i.state IN ('queued', 'offered')"
        )
    })
    .await?
    .iter()
    .map(|row| {
        Ok(WaitingNow {
            interaction_id: row.try_get(0)?,
            customer_id: row.try_get(1)?,
            tier: row.try_get(2)?,
            owner: row.try_get(3)?,
        })
    })
    .collect()
}
