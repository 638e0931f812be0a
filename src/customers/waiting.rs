//! A changed customer's contacts that still wait. A contact's tier is decided when it
//! arrives; when an admin then changes the customer (an explicit tier, a lifetime value,
//! a purchase, the account manager, a merge), the contacts still waiting are decided
//! again, in the change's own transaction, so that a customer made VIP while on hold is
//! routed as VIP from that moment, and a restart finds the same tier in the store.

use serde_json::json;

use super::tier;
use crate::config::TierSettings;
use crate::store::bulk::{self, Arg};
use crate::store::customers;
use crate::store::history::{self, NewEvent};
use crate::store::Conn;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A waiting contact as it stands after its customer changed, for the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingNow {
    /// The interaction.
    pub interaction_id: String,
    /// Its customer (another one than before after a merge).
    pub customer_id: String,
    /// The tier it would get now.
    pub tier: String,
    /// The customer's account manager.
    pub owner: Option<String>,
}

/// Decides again the tier of every contact of `customer_ids` still waiting (queued or on
/// offer), writes the ones that change with a `tier_changed` event by `actor`, and
/// answers them all as they stand now. Call it inside the transaction that changed the
/// customers, and hand the answer to the router once that transaction is committed.
pub async fn refresh(
    conn: &mut Conn,
    settings: &TierSettings,
    customer_ids: &[String],
    actor: &str,
    now: i64,
) -> Result<Vec<WaitingNow>, sqlx::Error> {
    // Few contacts wait at any moment, and few of the customers changed have one: find
    // those first, and decide tiers only for their customers.
    let mut open: Vec<(String, String, String)> = Vec::new();
    for chunk in customer_ids.chunks(400) {
        let sql = format!(
            "SELECT id, customer_id, tier FROM interactions \
             WHERE state IN ('queued', 'offered') AND customer_id IN ({})",
            bulk::list(1, chunk.len())
        );
        let args = chunk.iter().map(|id| Arg::from(id.as_str())).collect();
        for row in bulk::bind_all(sqlx::query(&sql), args)
            .fetch_all(&mut *conn)
            .await?
        {
            use sqlx::Row;
            open.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
    }
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = open.iter().map(|(_, c, _)| c.clone()).collect();
    ids.sort();
    ids.dedup();
    let window_start = now - i64::from(settings.window_days) * DAY_MS;
    let decided: std::collections::HashMap<String, (tier::TierDecision, Option<String>)> =
        customers::with_value_data(conn, &ids, window_start)
            .await?
            .into_iter()
            .map(|(c, value)| {
                let decision = tier::decide(settings, &value, now);
                (c.id, (decision, c.owner_agent_id))
            })
            .collect();

    let mut events = Vec::new();
    let mut out = Vec::with_capacity(open.len());
    for (interaction_id, customer_id, was) in open {
        let Some((decision, owner)) = decided.get(&customer_id) else {
            continue;
        };
        if decision.tier != was {
            sqlx::query(
                "UPDATE interactions SET tier = $2, tier_source = $3, tier_reason = $4, updated_at = $5 \
                 WHERE id = $1",
            )
            .bind(&interaction_id)
            .bind(&decision.tier)
            .bind(decision.source.as_str())
            .bind(&decision.reason)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            events.push(NewEvent {
                customer_id: customer_id.clone(),
                interaction_id: Some(interaction_id.clone()),
                kind: "tier_changed",
                actor: actor.to_string(),
                data: json!({ "from": was, "tier": decision.tier, "source": decision.source, "reason": decision.reason }),
            });
        }
        out.push(WaitingNow {
            interaction_id,
            customer_id,
            tier: decision.tier.clone(),
            owner: owner.clone(),
        });
    }
    if !events.is_empty() {
        history::append(conn, &events, now).await?;
    }
    Ok(out)
}
