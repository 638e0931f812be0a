//! Contacts a channel's own system connected: a phone system reporting a call answered
//! at an extension, or moved to another. The phone system is the authority on its
//! calls, so its word is carried out as an assignment: a waiting call is taken out of
//! the queue there and then (its offer withdrawn, never offered again) and given to the
//! agent of that extension — counting against their capacity, shown on their desktop —
//! or, answered by someone Switchboard does not know, kept out of the queue until the
//! call ends. A call another agent held moves, as a supervisor's move does.

use super::*;

impl Router {
    pub(super) async fn connected(
        &mut self,
        id: &str,
        agent: Option<&str>,
        channel: ChannelKind,
        done: Option<CommandFor>,
        now: i64,
    ) -> Result<Connected, sqlx::Error> {
        let interaction_id = id.to_string();
        if let Some(item) = self.waiting.remove(id) {
            self.index.remove(id);
            // It leaves the queue once this turn's writes are committed, as an ended
            // contact does: a resync from the store before then would put it back.
            self.leaving.push(interaction_id.clone());
            let waited_ms = now - item.w.enqueued_at_ms;
            let mut offer_id = None;
            if let Some(o) = item.offer.as_ref().and_then(|o| self.offers.remove(o)) {
                let taken_by_offered = agent == Some(o.agent_id.as_str());
                if let Some(s) = self.agents.get_mut(&o.agent_id) {
                    s.offer = None;
                    if !taken_by_offered {
                        // Not the agent's miss: the call was answered elsewhere.
                        s.emit_always(json!({ "type": "offer_ended", "offer_id": item.offer, "interaction_id": id, "reason": "answered_elsewhere" }));
                    }
                }
                if taken_by_offered {
                    offer_id = item.offer.clone();
                } else {
                    self.events.push(NewEvent {
                        customer_id: item.customer_id.clone(),
                        interaction_id: Some(interaction_id.clone()),
                        kind: "offer_withdrawn",
                        actor: channel.as_str().to_string(),
                        data: json!({ "agent_id": o.agent_id, "reason": "answered elsewhere" }),
                    });
                }
            }
            let event = NewEvent {
                customer_id: item.customer_id.clone(),
                interaction_id: Some(interaction_id.clone()),
                kind: "assigned",
                actor: channel.as_str().to_string(),
                data: json!({
                    "agent_id": agent, "waited_secs": waited_ms as f64 / 1000.0,
                    "connected_by": channel.as_str(), "outside": agent.is_none(),
                }),
            };
            self.stage(id, &["queued", "offered"], "assigned", agent, event);
            telemetry::answered(&item.w.tier, waited_ms);
            self.answered
                .push_back((now, item.w.tier.clone(), waited_ms));
            let Some(agent) = agent else {
                return Ok(Connected::Outside { interaction_id });
            };
            let held = Held {
                channel,
                customer_id: item.customer_id.clone(),
                contact_key: item.contact_key.clone(),
            };
            self.hand_to(id, agent, held, done, offer_id);
            return Ok(Connected::Assigned {
                interaction_id,
                agent_id: agent.to_string(),
                from: None,
            });
        }
        // What this turn decided so far must be in the store before the store is read.
        self.flush().await;
        let mut conn = self.store.pool().acquire().await?;
        let Some(row) = interactions::get(&mut conn, id).await? else {
            return Ok(Connected::Unknown);
        };
        drop(conn);
        match row.state.as_str() {
            "assigned" => {}
            "completed" | "abandoned" => return Ok(Connected::Ended { interaction_id }),
            // Waiting in the store but not here: only between a restart's requeue and the
            // queue being read, which the take-up before this closed. Nothing to move.
            _ => return Ok(Connected::AlreadyHeld { interaction_id }),
        }
        let Some(agent) = agent.filter(|a| row.agent_id.as_deref() != Some(*a)) else {
            return Ok(Connected::AlreadyHeld { interaction_id });
        };
        let from = row.agent_id.clone();
        let event = NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(interaction_id.clone()),
            kind: "moved",
            actor: channel.as_str().to_string(),
            data: json!({ "from": from, "to": agent, "connected_by": channel.as_str() }),
        };
        self.stage(id, &["assigned"], "assigned", Some(agent), event);
        if let Some(s) = from.as_deref().and_then(|f| self.agents.get_mut(f)) {
            s.held.remove(id);
            s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "reason": "moved" }));
        }
        self.hand_to(
            id,
            agent,
            Held {
                channel,
                ..Held::of(&row)
            },
            done,
            None,
        );
        self.changed = true;
        Ok(Connected::Assigned {
            interaction_id,
            agent_id: agent.to_string(),
            from,
        })
    }

    /// Gives an interaction the channel connected to `agent`: held by their session if
    /// they are logged in (else they get it at login, from the store), and the channel's
    /// command for it stored as carried out.
    fn hand_to(
        &mut self,
        id: &str,
        agent: &str,
        held: Held,
        done: Option<CommandFor>,
        offer_id: Option<String>,
    ) {
        let channel = held.channel;
        if let Some(done) = done {
            let ChannelCommand {
                id: command_id,
                channel,
                payload,
            } = done.command(id, agent);
            self.pending.push(Pending::Command {
                id: command_id,
                channel,
                payload,
                delivered: true,
                about: Some(id.to_string()),
                handed: false,
            });
        }
        if let Some(s) = self.agents.get_mut(agent) {
            s.held.insert(id.to_string(), held);
            s.misses = 0;
            s.emit(json!({ "type": "assigned", "interaction_id": id, "offer_id": offer_id, "connected_by": channel.as_str() }));
        }
    }
}
