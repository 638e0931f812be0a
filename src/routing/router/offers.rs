//! Offers and their outcomes: dispatching the policy's decisions, accepting, declining,
//! timing out, withdrawing, completing, and contacts that end on the customer's side.

use super::*;

impl Router {
    pub(super) async fn accept(&mut self, agent_id: &str, offer_id: &str, now: i64) {
        let Some(offer) = self.offers.get(offer_id).filter(|o| o.agent_id == agent_id) else {
            if let Some(s) = self.agents.get(agent_id) {
                s.error(
                    "not_your_offer",
                    "that offer is not yours or has ended (declined, timed out or withdrawn)",
                );
            }
            return;
        };
        let interaction_id = offer.interaction_id.clone();
        let Some(item) = self.waiting.get(&interaction_id) else {
            return;
        };
        let waited_ms = now - item.w.enqueued_at_ms;
        let (tier, channel) = (item.w.tier.clone(), item.w.channel);
        let contact_key = item.contact_key.clone();
        let customer_id = item.customer_id.clone();
        let event = NewEvent {
            customer_id: customer_id.clone(),
            interaction_id: Some(interaction_id.clone()),
            kind: "assigned",
            actor: agent_id.to_string(),
            data: json!({ "agent_id": agent_id, "waited_secs": waited_ms as f64 / 1000.0 }),
        };
        self.stage(
            &interaction_id,
            &["offered"],
            "assigned",
            Some(agent_id),
            event,
        );
        let Some(s) = self.agents.get_mut(agent_id) else {
            return;
        };
        self.offers.remove(offer_id);
        self.waiting.remove(&interaction_id);
        self.index.remove(&interaction_id);
        self.queue.remove(&interaction_id);
        s.offer = None;
        s.misses = 0;
        s.held.insert(
            interaction_id.clone(),
            Held {
                channel,
                customer_id,
                contact_key: contact_key.clone(),
            },
        );
        self.announced.push(Assignment {
            interaction_id: interaction_id.clone(),
            contact_key,
            channel,
            agent_id: agent_id.to_string(),
            agent_name: s.row.name.clone(),
            extension: s.row.extension.clone(),
            arrived_at_ms: now - waited_ms,
        });
        s.emit(
            json!({ "type": "assigned", "offer_id": offer_id, "interaction_id": interaction_id }),
        );
        telemetry::offer_outcome("accepted", &tier);
        telemetry::answered(&tier, waited_ms);
        self.answered.push_back((now, tier, waited_ms));
    }

    /// An agent completes an interaction it holds. Written with the turn's other
    /// changes, with no read of the store: the store completes it only if it is still
    /// assigned to this agent, and when it is not, the turn is written without it, the
    /// interaction is read again, and the agent told it is no longer theirs.
    pub(super) async fn complete(
        &mut self,
        agent_id: &str,
        interaction_id: &str,
        disposition: &str,
        notes: Option<String>,
        now: i64,
    ) {
        let Some(s) = self.agents.get_mut(agent_id) else {
            return;
        };
        if !s.held.contains_key(interaction_id) {
            s.error("not_yours", "you do not hold that interaction");
            return;
        }
        let disposition: String = disposition.trim().chars().take(64).collect();
        if disposition.is_empty() || disposition.contains('\0') {
            s.error(
                "bad_field",
                "disposition: name the outcome (resolved, callback, escalated…)",
            );
            return;
        }
        let Some(held) = s.held.remove(interaction_id) else {
            return;
        };
        let notes = notes
            .map(|n| n.replace('\0', ""))
            .map(|n| n.chars().take(10_000).collect::<String>());
        // The wrap-up this completion starts, stated in the history for the reports.
        let wrap_up_secs = self.rules.offer.wrap_up_secs;
        let wrap_up = wrap_up_secs as i64 * 1000;
        let before = Some((s.wrap_up_until, s.idle_since));
        s.wrap_up_until = Some(now + wrap_up);
        s.idle_since = now + wrap_up;
        s.emit(json!({ "type": "completed", "interaction_id": interaction_id, "wrap_up_until": rfc3339(now + wrap_up) }));
        self.events.push(NewEvent {
            customer_id: held.customer_id,
            interaction_id: Some(interaction_id.to_string()),
            kind: "completed",
            actor: agent_id.to_string(),
            data: json!({ "agent_id": agent_id, "disposition": disposition, "notes": notes, "wrap_up_secs": wrap_up_secs }),
        });
        self.pending.push(Pending::Complete {
            id: interaction_id.to_string(),
            agent: agent_id.to_string(),
            disposition,
            notes,
            before,
        });
        self.completed.push(Completed {
            interaction_id: interaction_id.to_string(),
            contact_key: held.contact_key,
            channel: held.channel,
        });
    }

    /// An agent answers the customer of an interaction it holds: the reply is stored in
    /// the outbox with this turn's writes, and the channel sends it (and tells the agent
    /// how that went).
    pub(super) async fn reply(
        &mut self,
        agent_id: &str,
        interaction_id: &str,
        body: String,
        html: Option<String>,
        reply_id: Option<String>,
        mail: MailParts,
    ) {
        let Some(s) = self.agents.get(agent_id) else {
            return;
        };
        let channel = match s.held.get(interaction_id).map(|h| h.channel) {
            None => return s.error("not_yours", "you do not hold that interaction"),
            Some(c @ (ChannelKind::Email | ChannelKind::Chat)) => c,
            Some(other) => {
                return s.error(
                    "bad_field",
                    &format!("interaction_id: a {other} interaction is answered on its own channel, not by reply"),
                )
            }
        };
        let body = body.replace('\0', "");
        if body.trim().is_empty() || body.len() > MAX_REPLY_BYTES {
            return s.error(
                "bad_field",
                &format!("body: write the reply, at most {MAX_REPLY_BYTES} bytes"),
            );
        }
        // Rich text rides beside the text (its alternative), as the agent wrote it.
        let html = html
            .map(|h| h.replace('\0', ""))
            .filter(|h| !h.trim().is_empty());
        if let Some(h) = &html {
            if channel != ChannelKind::Email {
                return s.error(
                    "bad_field",
                    "html: rich text is for email replies; a chat takes the text",
                );
            }
            if body.len() + h.len() > MAX_REPLY_BYTES {
                return s.error(
                    "bad_field",
                    &format!("html: the reply, text and HTML together, is at most {MAX_REPLY_BYTES} bytes"),
                );
            }
        }
        if !mail.is_empty() && channel != ChannelKind::Email {
            return s.error(
                "bad_field",
                "to, cc, attachments: a chat reply is the text alone",
            );
        }
        if let Err(e) = mail.check() {
            return s.error("bad_field", &e);
        }
        let reply_id = reply_id
            .map(|r| {
                r.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .filter(|r| !r.is_empty())
            .unwrap_or_else(new_id);
        let row = async {
            let mut conn = self.store.pool().acquire().await?;
            let row = interactions::get(&mut conn, interaction_id).await?;
            let mut missing = None;
            for f in &mail.attachments {
                if crate::store::channel::file(&mut conn, interaction_id, f)
                    .await?
                    .and_then(|(_, _, data)| data)
                    .is_none()
                {
                    missing = Some(f.clone());
                    break;
                }
            }
            Ok::<_, sqlx::Error>(row.map(|r| (r, missing)))
        }
        .await;
        let Some(s) = self.agents.get_mut(agent_id) else {
            return;
        };
        let row = match row {
            Ok(Some((_, Some(missing)))) => {
                return s.error(
                    "bad_field",
                    &format!("attachments: no file '{missing}' was uploaded to this interaction"),
                )
            }
            Ok(Some((row, None))) => row,
            Ok(None) => return s.error("not_yours", "that interaction is no longer yours"),
            Err(_) => {
                return s.error(
                    "unavailable",
                    "the store could not take the reply; send it again",
                )
            }
        };
        let mut payload = json!({
            "interaction_id": interaction_id, "contact_key": row.idempotency_key,
            "agent_id": agent_id, "reply_id": reply_id, "body": body,
        });
        if let Some(h) = html {
            payload["html"] = json!(h);
        }
        if !mail.to.is_empty() {
            payload["to"] = json!(mail.to);
        }
        if !mail.cc.is_empty() {
            payload["cc"] = json!(mail.cc);
        }
        if !mail.attachments.is_empty() {
            payload["attachments"] = json!(mail.attachments);
        }
        self.pending.push(Pending::Command {
            id: format!("reply:{agent_id}:{reply_id}"),
            delivered: false,
            about: None,
            // The visitor waits for a chat reply: handed to the chat at the commit.
            handed: channel == ChannelKind::Chat,
            channel,
            payload,
        });
        s.emit_always(json!({ "type": "reply_queued", "interaction_id": interaction_id, "reply_id": reply_id }));
    }

    /// The contact ended on the customer's side: abandoned if it was waiting (its offer
    /// withdrawn), or told to the agent who holds it.
    pub(super) async fn end(
        &mut self,
        id: &str,
        reason: &str,
        close: bool,
        now: i64,
    ) -> Result<Ended, sqlx::Error> {
        if let Some(item) = self.waiting.get(id) {
            let (tier, customer_id, waited_ms, offer) = (
                item.w.tier.clone(),
                item.customer_id.clone(),
                now - item.w.enqueued_at_ms,
                item.offer.clone(),
            );
            let event = NewEvent {
                customer_id,
                interaction_id: Some(id.to_string()),
                kind: "abandoned",
                actor: "customer".into(),
                data: json!({ "reason": reason, "waited_secs": waited_ms as f64 / 1000.0 }),
            };
            self.stage(id, &["queued", "offered"], "abandoned", None, event);
            self.waiting.remove(id);
            self.index.remove(id);
            // It leaves the queue once this turn's writes are committed (with every other
            // contact ended in the same turn): a resync from the store before then would
            // otherwise put it back.
            self.leaving.push(id.to_string());
            if let Some(offer_id) = offer {
                if let Some(o) = self.offers.remove(&offer_id) {
                    if let Some(s) = self.agents.get_mut(&o.agent_id) {
                        s.offer = None;
                        s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "offer_id": offer_id, "reason": reason }));
                    }
                }
            }
            telemetry::abandoned(&tier, waited_ms);
            return Ok(Ended::Abandoned { waited_ms });
        }
        // What this turn decided so far must be in the store before the store is read.
        self.flush().await;
        let mut conn = self.store.pool().acquire().await?;
        let Some(row) = interactions::get(&mut conn, id).await? else {
            return Ok(Ended::Unknown);
        };
        if row.state == "queued" && self.queue.is_held(id) {
            // Held for its opening (or its booked time), it never reached the router's
            // list: it ends there, a contact lost while closed.
            let waited_ms = (now - row.created_at).max(0);
            let event = NewEvent {
                customer_id: row.customer_id.clone(),
                interaction_id: Some(id.to_string()),
                kind: "abandoned",
                actor: "customer".into(),
                data: json!({ "reason": reason, "waited_secs": waited_ms as f64 / 1000.0, "while_closed": true }),
            };
            self.stage(id, &["queued"], "abandoned", None, event);
            self.leaving.push(id.to_string());
            return Ok(Ended::Abandoned { waited_ms });
        }
        if row.state == "opened" {
            // Waiting for the customer's first message, which never came (a chat opened
            // and left): never queued, so neither answered nor abandoned. A first message
            // committed meanwhile wins: this move is then refused and written without.
            let event = NewEvent {
                customer_id: row.customer_id.clone(),
                interaction_id: Some(id.to_string()),
                kind: "left_unwritten",
                actor: "customer".into(),
                data: json!({ "reason": reason }),
            };
            self.stage(id, &["opened"], "left", None, event);
            return Ok(Ended::Left);
        }
        if row.state != "assigned" {
            return Ok(Ended::Already);
        }
        if row.agent_id.is_none() {
            // Answered outside Switchboard: nobody is here to complete it, so it ends
            // with the call, as completed (never as missed).
            let event = NewEvent {
                customer_id: row.customer_id.clone(),
                interaction_id: Some(id.to_string()),
                kind: "completed",
                actor: "customer".into(),
                data: json!({ "agent_id": null, "disposition": "answered_outside", "reason": reason }),
            };
            self.stage(id, &["assigned"], "completed", None, event);
            return Ok(Ended::WhileHeld { agent_id: None });
        }
        if let (true, Some(agent)) = (close, row.agent_id.clone()) {
            return Ok(self.close_held(&row, &agent, reason));
        }
        let event = NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(id.to_string()),
            kind: "ended_by_customer",
            actor: "customer".into(),
            data: json!({ "reason": reason, "agent_id": row.agent_id }),
        };
        self.events.push(event);
        if let Some(s) = row.agent_id.as_deref().and_then(|a| self.agents.get_mut(a)) {
            s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "reason": reason }));
        }
        Ok(Ended::WhileHeld {
            agent_id: row.agent_id,
        })
    }

    /// Completes an interaction `agent` holds on the agent's behalf (an admin closing it,
    /// before erasing its customer): its capacity is freed at once, with no wrap-up, and
    /// its desktop told to close it.
    fn close_held(&mut self, row: &InteractionRow, agent: &str, reason: &str) -> Ended {
        const DISPOSITION: &str = "closed_by_admin";
        self.events.push(NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(row.id.clone()),
            kind: "completed",
            actor: "admin".into(),
            data: json!({ "agent_id": agent, "disposition": DISPOSITION, "reason": reason, "wrap_up_secs": 0 }),
        });
        self.pending.push(Pending::Complete {
            id: row.id.clone(),
            agent: agent.to_string(),
            disposition: DISPOSITION.into(),
            notes: None,
            before: None,
        });
        let channel = self
            .agents
            .get_mut(agent)
            .and_then(|s| {
                let channel = s.held.remove(&row.id).map(|h| h.channel);
                s.emit(json!({ "type": "interaction_ended", "interaction_id": row.id, "reason": reason, "closed": true }));
                channel
            })
            .or_else(|| ChannelKind::parse(&row.channel));
        if let Some(channel) = channel {
            self.completed.push(Completed {
                interaction_id: row.id.clone(),
                contact_key: row.idempotency_key.clone(),
                channel,
            });
        }
        Ended::Closed {
            agent_id: agent.to_string(),
        }
    }

    /// An offer declined or timed out: the interaction waits again, not for this agent,
    /// and the agent's misses count toward being set away.
    pub(super) async fn lapse(
        &mut self,
        offer_id: &str,
        kind: &'static str,
        reason: Option<String>,
        _now: i64,
    ) {
        let Some(offer) = self.offers.remove(offer_id) else {
            return;
        };
        let logged_in: Vec<String> = self.agents.keys().cloned().collect();
        let Some(item) = self.waiting.get_mut(&offer.interaction_id) else {
            return;
        };
        item.w.excluded.push(offer.agent_id.clone());
        // Once every agent logged in has passed on it, it starts a new round rather than
        // wait for an agent who has not: no interaction waits forever for want of one.
        if logged_in.iter().all(|a| item.w.excluded.contains(a)) {
            item.w.excluded.clear();
        }
        let tier = item.w.tier.clone();
        self.requeue(&offer, kind, offer.agent_id.clone(), reason);
        let what = if kind == "offer_declined" {
            "declined"
        } else {
            "timed_out"
        };
        telemetry::offer_outcome(what, &tier);
        let misses_before_away = self.rules.offer.misses_before_away;
        if let Some(s) = self.agents.get_mut(&offer.agent_id) {
            s.offer = None;
            s.misses += 1;
            s.emit_always(json!({ "type": "offer_ended", "offer_id": offer_id, "interaction_id": offer.interaction_id, "reason": what }));
            if s.misses >= misses_before_away && s.presence == Presence::Available {
                s.presence = Presence::Away;
                s.away_reason = Some("missed offers".into());
                s.emit(json!({ "type": "presence", "status": "away", "reason": format!("{} offers missed in a row", s.misses) }));
            }
        }
    }

    /// Withdraws an offer through no fault of the agent (it vanished, the contact ended).
    pub(super) async fn revoke(&mut self, offer_id: &str, reason: &str, _now: i64) {
        let Some(offer) = self.offers.remove(offer_id) else {
            return;
        };
        self.requeue(
            &offer,
            "offer_withdrawn",
            "system".into(),
            Some(reason.to_string()),
        );
        if let Some(s) = self.agents.get_mut(&offer.agent_id) {
            s.offer = None;
            s.emit_always(json!({ "type": "offer_ended", "offer_id": offer_id, "interaction_id": offer.interaction_id, "reason": reason }));
        }
    }

    /// Asks the policy what to offer, and offers it.
    pub(super) async fn dispatch(&mut self, now: i64) {
        if self.index.is_empty() {
            return;
        }
        // In a busy centre every agent is occupied most turns: then nobody can be
        // offered anything, and the views of thousands of agents need not be built.
        let anyone_free = self
            .agents
            .values()
            .any(|s| policy::free_now(s.presence, s.offer.is_some(), s.wrap_up_until, now));
        if !anyone_free {
            return;
        }
        let agents: Vec<AgentView> = self
            .agents
            .values()
            .map(|s| view(s, self.rules.capacity))
            .collect();
        let decisions = index::route(&self.index, &agents, &self.rules, now);
        if decisions.is_empty() {
            return;
        }
        // What every offer of this turn shows is read together, beside the turn's
        // commit rather than before it: the router's turn does not wait for the read.
        for d in decisions {
            self.offer_with(d, None, now);
        }
    }

    /// The offers of the turn just committed get what they show, read beside its commit
    /// (`read`; read again here for any it lacks): each offer's frame, staged for its
    /// agent and not yet sent, is filled in, so frames keep their order. An offer whose
    /// interaction could not be read is not shown: it is withdrawn and its interaction
    /// waits again (written with the next turn).
    pub(super) async fn show_offers(
        &mut self,
        read: Result<HashMap<String, Value>, sqlx::Error>,
        refused: &HashSet<String>,
    ) {
        let unread = std::mem::take(&mut self.unread_offers);
        if unread.is_empty() {
            return;
        }
        let mut details = read.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Could not read the interactions offered beside the commit; reading them again");
            HashMap::new()
        });
        let missing: Vec<(String, String)> = unread
            .iter()
            .filter(|u| !details.contains_key(&u.interaction_id))
            .filter(|u| !refused.contains(&u.interaction_id))
            .map(|u| (u.interaction_id.clone(), u.customer_id.clone()))
            .collect();
        if !missing.is_empty() {
            match self.offers_details(&missing).await {
                Ok(more) => details.extend(more),
                Err(e) => {
                    tracing::warn!(error = %e, offers = missing.len(), "Could not read interactions offered; they wait again")
                }
            }
        }
        for u in unread {
            if refused.contains(&u.interaction_id) {
                // Its writes were refused: its frame is not sent, and it is read again.
                continue;
            }
            match details.remove(&u.interaction_id) {
                Some(v) => {
                    if let Some(s) = self.agents.get_mut(&u.agent_id) {
                        s.show_offer(&u.offer_id, v);
                    }
                }
                None => {
                    if let Some(s) = self.agents.get_mut(&u.agent_id) {
                        s.unstage_offer(&u.offer_id);
                        if s.offer.as_deref() == Some(u.offer_id.as_str()) {
                            s.offer = None;
                        }
                    }
                    if let Some(offer) = self.offers.remove(&u.offer_id) {
                        self.requeue(
                            &offer,
                            "offer_withdrawn",
                            "system".into(),
                            Some("the interaction could not be read to show it".into()),
                        );
                        self.changed = true;
                    }
                }
            }
        }
    }

    /// Offers `d`'s interaction alone (a supervisor's move), reading what it shows.
    pub(super) async fn offer(&mut self, d: policy::Decision, now: i64) {
        let Some(item) = self.waiting.get(&d.interaction_id) else {
            return;
        };
        let details = match self
            .offer_details(&d.interaction_id, &item.customer_id)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read an interaction to offer it");
                return;
            }
        };
        self.offer_with(d, Some(details), now);
    }

    /// Offers `d`'s interaction to its agent, showing `details`: staged with this turn's
    /// writes, told once they are committed. Without `details`, they are read beside the
    /// commit and filled in before the frame is sent ([`Self::show_offers`]).
    fn offer_with(&mut self, d: policy::Decision, details: Option<Value>, now: i64) {
        let Some(item) = self.waiting.get(&d.interaction_id) else {
            return;
        };
        let item_customer = item.customer_id.clone();
        let event = NewEvent {
            customer_id: item.customer_id.clone(),
            interaction_id: Some(d.interaction_id.clone()),
            kind: "offered",
            actor: "router".into(),
            data: json!({ "rule_version": self.rules_version, "decision": d }),
        };
        self.stage(
            &d.interaction_id,
            &["queued"],
            "offered",
            Some(&d.agent_id),
            event,
        );
        let offer_id = new_id();
        let expires_at = now + self.rules.offer.timeout_secs as i64 * 1000;
        if let Some(item) = self.waiting.get_mut(&d.interaction_id) {
            item.offer = Some(offer_id.clone());
        }
        self.index.remove(&d.interaction_id);
        self.offers.insert(
            offer_id.clone(),
            Offer {
                interaction_id: d.interaction_id.clone(),
                agent_id: d.agent_id.clone(),
                expires_at,
            },
        );
        telemetry::offer_outcome("offered", &d.tier);
        let details = details.unwrap_or_else(|| {
            self.unread_offers.push(UnreadOffer {
                offer_id: offer_id.clone(),
                interaction_id: d.interaction_id.clone(),
                customer_id: item_customer.clone(),
                agent_id: d.agent_id.clone(),
            });
            json!({ "id": d.interaction_id })
        });
        if let Some(s) = self.agents.get_mut(&d.agent_id) {
            s.offer = Some(offer_id.clone());
            s.last_offered_at = now;
            s.emit(json!({
                "type": "offer",
                "offer_id": offer_id,
                "expires_at": rfc3339(expires_at),
                "expires_in_ms": expires_at - now,
                "interaction": details,
            }));
        }
    }

    /// [`Self::offer_details`] for many offers at once, by interaction id: the
    /// interactions, their customers with identities, and each customer's recent history,
    /// each read in one go.
    pub(super) async fn offers_details(
        &self,
        asked: &[(String, String)],
    ) -> Result<HashMap<String, Value>, sqlx::Error> {
        let mut conn = self.store.pool().acquire().await?;
        let ids: Vec<String> = asked.iter().map(|(i, _)| i.clone()).collect();
        let mut customer_ids: Vec<String> = asked.iter().map(|(_, c)| c.clone()).collect();
        customer_ids.sort();
        customer_ids.dedup();
        let rows = interactions::get_many(&mut conn, &ids).await?;
        let customers = customers::get_many_with_identities(&mut conn, &customer_ids).await?;
        let recent = history::recent_many(&mut conn, &customer_ids, OFFER_HISTORY).await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let customer = customers.get(&row.customer_id);
            let mut v = interaction_json(&row);
            v["customer"] = json!({
                "id": row.customer_id,
                "name": customer.and_then(|(c, _)| c.name.clone()),
                "identities": customer.map(|(_, i)| i.clone()).unwrap_or_default(),
                "tier_reason": row.tier_reason,
            });
            v["history"] = recent
                .get(&row.customer_id)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| json!({ "seq": e.seq, "kind": e.kind, "at": rfc3339(e.occurred_at), "interaction_id": e.interaction_id, "data": e.data }))
                .collect();
            out.insert(row.id.clone(), v);
        }
        Ok(out)
    }

    /// What an agent sees in an offer: the interaction, its customer, recent history.
    pub(super) async fn offer_details(
        &self,
        interaction_id: &str,
        customer_id: &str,
    ) -> Result<Value, sqlx::Error> {
        self.offers_details(&[(interaction_id.to_string(), customer_id.to_string())])
            .await?
            .remove(interaction_id)
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// A mail reply's recipients, copies and files, beside its text.
#[derive(Debug, Default)]
pub(super) struct MailParts {
    /// Recipients instead of the customer alone.
    pub to: Vec<String>,
    /// Copies.
    pub cc: Vec<String>,
    /// Uploaded files' ids.
    pub attachments: Vec<String>,
}

impl MailParts {
    fn is_empty(&self) -> bool {
        self.to.is_empty() && self.cc.is_empty() && self.attachments.is_empty()
    }

    /// Each address an address, each list bounded; the message names the field.
    fn check(&self) -> Result<(), String> {
        for (field, list) in [("to", &self.to), ("cc", &self.cc)] {
            if list.len() > 20 {
                return Err(format!("{field}: at most 20 addresses"));
            }
            for a in list {
                if a.parse::<email_address::EmailAddress>().is_err() {
                    return Err(format!(
                        "{field}: '{}' is not an email address",
                        a.chars().take(80).collect::<String>()
                    ));
                }
            }
        }
        if self.attachments.len() > 10 {
            return Err("attachments: at most 10 files".into());
        }
        Ok(())
    }
}
