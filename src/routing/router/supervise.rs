//! What supervisors do to live work: move an interaction to another agent, set an agent
//! away.

use super::*;

impl Router {
    /// Moves an interaction to agent `to`: one waiting (or on offer elsewhere) is offered
    /// to `to` at once; one assigned is handed over, and both agents are told.
    pub(super) async fn move_to(
        &mut self,
        id: &str,
        to: &str,
        by: &str,
        now: i64,
    ) -> Result<Moved, sqlx::Error> {
        self.flush().await;
        if self.waiting.contains_key(id) {
            let Some(target) = self.agents.get(to).filter(|s| s.conn.is_some()) else {
                return Ok(Moved::Refused("the agent is not logged in".into()));
            };
            if target.offer.is_some() {
                return Ok(Moved::Refused(
                    "the agent has an offer waiting for an answer".into(),
                ));
            }
            if let Some(offer_id) = self.waiting.get(id).and_then(|i| i.offer.clone()) {
                self.revoke(&offer_id, "moved by a supervisor", now).await;
            }
            let Some(item) = self.waiting.get(id) else {
                return Ok(Moved::Refused("it is no longer waiting".into()));
            };
            let fair = self.index.fair_wait(item.w.channel, &self.rules, now);
            let key = crate::routing::order::key(&item.w, &self.rules, fair.as_ref(), now);
            let decision = policy::Decision::by_hand(
                &item.w,
                &key,
                fair,
                &self.rules,
                to,
                format!("moved here by {by}"),
            );
            self.offer(decision, now).await;
            self.changed = true;
            return Ok(Moved::Offered);
        }
        let mut conn = self.store.pool().acquire().await?;
        let Some(row) = interactions::get(&mut conn, id).await? else {
            return Ok(Moved::Unknown);
        };
        drop(conn);
        if row.state != "assigned" {
            return Ok(Moved::Refused("it has ended".into()));
        }
        let from = row.agent_id.clone().unwrap_or_default();
        if from == to {
            return Ok(Moved::Refused("the agent holds it already".into()));
        }
        let event = NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(id.to_string()),
            kind: "moved",
            actor: by.to_string(),
            data: json!({ "from": from, "to": to }),
        };
        self.stage(id, &["assigned"], "assigned", Some(to), event);
        let channel = ChannelKind::parse(&row.channel).unwrap_or(ChannelKind::Api);
        if let Some(s) = self.agents.get_mut(&from) {
            s.held.remove(id);
            s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "reason": "moved" }));
        }
        if let Some(s) = self.agents.get_mut(to) {
            s.held.insert(id.to_string(), Held::of(&row));
            s.emit(json!({ "type": "assigned", "interaction_id": id, "moved_from": from }));
            // Its channel learns of the new agent as of any assignment (a call is
            // transferred to the new agent's extension).
            self.announced.push(Assignment {
                interaction_id: id.to_string(),
                contact_key: row.idempotency_key.clone(),
                channel,
                agent_id: to.to_string(),
                agent_name: s.row.name.clone(),
                extension: s.row.extension.clone(),
                arrived_at_ms: row.created_at,
            });
        }
        self.changed = true;
        Ok(Moved::Reassigned { from })
    }

    /// Sets a logged-in agent away (its offer, if any, goes to the next agent).
    pub(super) async fn set_away(
        &mut self,
        agent_id: &str,
        reason: Option<String>,
        now: i64,
    ) -> bool {
        let offer = match self.agents.get_mut(agent_id) {
            Some(s) if s.conn.is_some() => {
                s.presence = Presence::Away;
                s.away_reason = Some(
                    reason
                        .as_deref()
                        .and_then(away_reason)
                        .unwrap_or_else(|| "set by a supervisor".into()),
                );
                s.emit(json!({ "type": "presence", "status": "away", "reason": reason, "set_by": "supervisor" }));
                s.offer.clone()
            }
            _ => return false,
        };
        if let Some(offer_id) = offer {
            self.revoke(&offer_id, "set away by a supervisor", now)
                .await;
        }
        self.changed = true;
        true
    }
}
