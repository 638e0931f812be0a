//! What an agent does with work it holds besides answering it: hand it to a colleague, a
//! skill or the queue, and leave notes for colleagues.

use super::*;

/// Longest note, in characters.
const MAX_NOTE: usize = 4_000;

impl Router {
    /// The agent hands an interaction it holds on: to `to_agent` (offered to them first),
    /// to the agents of `to_skill` (offered to them first), or back to the queue. It
    /// waits again, never offered back to the agent who handed it on, with the note in
    /// its history for whoever takes it; its channel hears of the new agent as of any
    /// assignment (a call is transferred to the new agent's extension).
    pub(super) async fn transfer(
        &mut self,
        agent_id: &str,
        id: &str,
        to_agent: Option<String>,
        to_skill: Option<String>,
        note: Option<String>,
        now: i64,
    ) {
        // An accept earlier in this turn must be in the store before it is read.
        self.flush().await;
        let Some(s) = self.agents.get(agent_id) else {
            return;
        };
        if !s.held.contains_key(id) {
            s.error("not_yours", "you do not hold that interaction");
            return;
        }
        let note = clean(note);
        let to_skill = to_skill
            .map(|k| k.trim().chars().take(64).collect::<String>())
            .filter(|k| !k.is_empty());
        let to_agent = to_agent.filter(|a| !a.trim().is_empty());
        if to_agent.is_some() && to_skill.is_some() {
            s.error(
                "bad_field",
                "to_agent, to_skill: name one, or neither for the queue",
            );
            return;
        }
        if to_agent.as_deref() == Some(agent_id) {
            s.error("bad_field", "to_agent: you hold it already");
            return;
        }
        let row = async {
            let mut conn = self.store.pool().acquire().await?;
            let row = interactions::get(&mut conn, id).await?;
            let target = match &to_agent {
                Some(a) => Some(crate::store::agents::get(&mut conn, a).await?),
                None => None,
            };
            Ok::<_, sqlx::Error>((row, target))
        }
        .await;
        let (row, target) = match row {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read an interaction to transfer");
                s.error("unavailable", "the store could not be read; try again");
                return;
            }
        };
        let Some(row) =
            row.filter(|r| r.state == "assigned" && r.agent_id.as_deref() == Some(agent_id))
        else {
            s.error("not_yours", "you do not hold that interaction");
            return;
        };
        if let Some(target) = &target {
            match target {
                Some(t) if t.active => {}
                _ => {
                    s.error("bad_field", "to_agent: no such agent");
                    return;
                }
            }
        }
        let channel = ChannelKind::parse(&row.channel).unwrap_or(ChannelKind::Api);
        let to = match (&to_agent, &to_skill) {
            (Some(a), _) => json!({ "agent_id": a }),
            (_, Some(k)) => json!({ "skill": k }),
            _ => json!({ "queue": true }),
        };
        let event = NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(id.to_string()),
            kind: "transferred",
            actor: agent_id.to_string(),
            data: json!({ "from": agent_id, "to": to, "note": note }),
        };
        self.stage(id, &["assigned"], "queued", None, event);
        if let Some(s) = self.agents.get_mut(agent_id) {
            s.held.remove(id);
            s.emit(json!({ "type": "interaction_ended", "interaction_id": id, "reason": "transferred" }));
        }
        let topic = to_skill.clone().or(row.topic.clone());
        let waiting = crate::queue::Waiting {
            interaction_id: id.to_string(),
            customer_id: row.customer_id.clone(),
            tier: row.tier.clone(),
            channel,
            topic: topic.clone(),
            contact_key: row.idempotency_key.clone(),
            preferred_agent: to_agent.clone(),
            enqueued_at: now,
            not_before: None,
        };
        self.queue.track(waiting);
        let item = Item {
            w: WaitingInteraction {
                id: id.to_string(),
                tier: row.tier.clone(),
                channel,
                topic,
                owner: to_agent.clone(),
                enqueued_at_ms: now,
                excluded: vec![agent_id.to_string()],
            },
            customer_id: row.customer_id,
            preferred: to_agent,
            contact_key: row.idempotency_key,
            offer: None,
        };
        self.index.insert(item.w.clone());
        self.waiting.insert(id.to_string(), item);
        metrics::counter!("switchboard_transfers_total", "channel" => channel.as_str())
            .increment(1);
        self.changed = true;
    }

    /// An internal note on an interaction the agent holds: in its history (never sent to
    /// the customer), on the desktop of whoever holds it, and told to every agent named
    /// with `@name` (their name, or its first word; case ignored).
    pub(super) async fn note(&mut self, agent_id: &str, id: &str, text: &str, _now: i64) {
        let Some(s) = self.agents.get(agent_id) else {
            return;
        };
        if !s.held.contains_key(id) {
            s.error("not_yours", "you do not hold that interaction");
            return;
        }
        let Some(text) = clean(Some(text.to_string())) else {
            s.error(
                "bad_field",
                &format!("text: write the note, at most {MAX_NOTE} characters"),
            );
            return;
        };
        let author = s.row.name.clone();
        let found = async {
            let mut conn = self.store.pool().acquire().await?;
            let row = interactions::get(&mut conn, id).await?;
            let agents = crate::store::agents::list(&mut conn).await?;
            Ok::<_, sqlx::Error>((row, agents))
        }
        .await;
        let (row, agents) = match found {
            Ok((Some(row), agents)) => (row, agents),
            Ok((None, _)) => {
                s.error("not_yours", "you do not hold that interaction");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not read an interaction to note on");
                s.error("unavailable", "the store could not be read; try again");
                return;
            }
        };
        let mentioned: Vec<String> = mentions(&text)
            .iter()
            .filter_map(|m| {
                agents
                    .iter()
                    .filter(|a| a.active && a.id != agent_id)
                    .find(|a| named(&a.name, m))
                    .map(|a| a.id.clone())
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.events.push(NewEvent {
            customer_id: row.customer_id,
            interaction_id: Some(id.to_string()),
            kind: "note",
            actor: agent_id.to_string(),
            data: json!({ "text": text, "mentions": mentioned }),
        });
        let frame = json!({
            "type": "note", "interaction_id": id, "from": agent_id, "from_name": author,
            "text": text, "mentions": mentioned,
        });
        if let Some(s) = self.agents.get_mut(agent_id) {
            s.emit(frame.clone());
        }
        for m in &mentioned {
            if let Some(s) = self.agents.get_mut(m) {
                let mut told = frame.clone();
                told["type"] = json!("mention");
                s.emit(told);
            }
        }
        metrics::counter!("switchboard_notes_total").increment(1);
    }
}

/// A note as kept: without NULs, trimmed, bounded; `None` when empty.
fn clean(text: Option<String>) -> Option<String> {
    text.map(|t| {
        t.replace('\0', "")
            .trim()
            .chars()
            .take(MAX_NOTE)
            .collect::<String>()
    })
    .filter(|t| !t.is_empty())
}

/// The names a note mentions: each `@` followed by letters or digits (any script),
/// dots, dashes or underscores.
fn mentions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let after = &rest[at + 1..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        let name = name.trim_end_matches(['.', '-', '_']).to_string();
        if !name.is_empty() && (at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric())) {
            out.push(name.to_lowercase());
        }
        rest = after;
    }
    out
}

/// Whether `@mention` names the agent called `name`: the whole name without spaces, or
/// its first word (case ignored).
fn named(name: &str, mention: &str) -> bool {
    let lower = name.to_lowercase();
    let whole: String = lower.split_whitespace().collect();
    let first = lower.split_whitespace().next().unwrap_or_default();
    whole == mention || first == mention
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_read_in_any_script_and_not_in_addresses() {
        assert_eq!(
            mentions("@Lee please look, and @王芳. Mail ann@example.com"),
            vec!["lee".to_string(), "王芳".to_string()]
        );
        assert_eq!(mentions("@ alone, @@x"), vec!["x".to_string()]);
        assert!(named("Lee Wong", "lee") && named("Lee Wong", "leewong"));
        assert!(named("王芳", "王芳") && !named("Ann", "an"));
    }
}
