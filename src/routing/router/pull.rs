//! Agents taking waiting contacts themselves ("pull"), where the rules allow it for the
//! contact's channel (`[pull]`): the router alone decides, one command at a time, so of
//! several agents taking the same contact at once exactly one gets it.

use super::*;

/// Whether a contact of `topic` is in the queue of an agent with `skills`: it has no
/// topic, or its topic is one of the agent's skills (the team that serves it).
pub fn in_team(topic: Option<&str>, skills: &[String]) -> bool {
    topic.is_none_or(|t| skills.iter().any(|s| s == t))
}

impl Router {
    /// Agent `agent_id` takes waiting interaction `id`: assigned to it at once, unless the
    /// rules keep its channel push-only, it is on offer to someone, it is not the agent's
    /// team's, the agent is not logged in or has no room for it, or it waits no more.
    pub(super) async fn take(
        &mut self,
        id: &str,
        agent_id: &str,
        now: i64,
    ) -> Result<Taken, sqlx::Error> {
        let Some(item) = self.waiting.get(id) else {
            // Not waiting here: say why, from the store (what this turn decided first).
            self.flush().await;
            let mut conn = self.store.pool().acquire().await?;
            let Some(row) = interactions::get(&mut conn, id).await? else {
                return Ok(Taken::Unknown);
            };
            let why = match row.state.as_str() {
                "assigned" if row.agent_id.as_deref() == Some(agent_id) => "you hold it already",
                "assigned" => "a colleague took it first",
                "completed" | "abandoned" | "left" => "it has ended",
                _ => "it is not waiting",
            };
            return Ok(Taken::Refused(why.into()));
        };
        let channel = item.w.channel;
        if !self.rules.pull.allows(channel) {
            return Ok(Taken::Refused(format!(
                "the rules do not let agents take {channel} contacts themselves; they are offered"
            )));
        }
        if item.offer.is_some() {
            return Ok(Taken::Refused(
                "it is on offer to a colleague right now".into(),
            ));
        }
        let Some(s) = self.agents.get(agent_id).filter(|s| s.conn.is_some()) else {
            return Ok(Taken::Refused("log in to the desktop to take work".into()));
        };
        if !pull_team(item, &s.row.skills) {
            return Ok(Taken::Refused(
                "it is not your team's: its topic is none of your skills".into(),
            ));
        }
        let capacity = s.row.capacity.over(self.rules.capacity);
        if !policy::room_for(&s.load(), &capacity, channel, &self.rules) {
            return Ok(Taken::Refused(format!(
                "you have no room for another {channel} contact"
            )));
        }
        let waited_ms = now - item.w.enqueued_at_ms;
        let tier = item.w.tier.clone();
        let contact_key = item.contact_key.clone();
        let customer_id = item.customer_id.clone();
        let Some(s) = self.agents.get_mut(agent_id) else {
            return Ok(Taken::Refused("log in to the desktop to take work".into()));
        };
        s.held.insert(
            id.to_string(),
            Held {
                channel,
                customer_id: customer_id.clone(),
                contact_key: contact_key.clone(),
            },
        );
        self.announced.push(Assignment {
            interaction_id: id.to_string(),
            contact_key,
            channel,
            agent_id: agent_id.to_string(),
            agent_name: s.row.name.clone(),
            extension: s.row.extension.clone(),
            arrived_at_ms: now - waited_ms,
        });
        s.emit(json!({ "type": "assigned", "interaction_id": id, "taken_from_queue": true }));
        let event = NewEvent {
            customer_id,
            interaction_id: Some(id.to_string()),
            kind: "assigned",
            actor: agent_id.to_string(),
            data: json!({ "agent_id": agent_id, "waited_secs": waited_ms as f64 / 1000.0,
                          "taken_from_queue": true }),
        };
        self.stage(id, &["queued"], "assigned", Some(agent_id), event);
        self.waiting.remove(id);
        self.index.remove(id);
        self.queue.remove(id);
        telemetry::answered(&tier, waited_ms);
        self.answered.push_back((now, tier, waited_ms));
        self.changed = true;
        Ok(Taken::Taken)
    }
}

fn pull_team(item: &Item, skills: &[String]) -> bool {
    in_team(item.w.topic.as_deref(), skills)
}

#[cfg(test)]
mod tests {
    use super::in_team;

    #[test]
    fn a_contact_is_in_the_queue_of_the_team_its_topic_names_or_of_everyone_without_one() {
        let billing = vec!["billing".to_string()];
        assert!(in_team(None, &billing));
        assert!(in_team(Some("billing"), &billing));
        assert!(!in_team(Some("complaint"), &billing));
        assert!(in_team(None, &[]));
        assert!(!in_team(Some("billing"), &[]));
    }
}
