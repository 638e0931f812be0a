//! One agent's session: what the router knows of a logged-in (or briefly vanished)
//! desktop, its numbered events kept for a resume, and how it looks to the policy.

use super::*;

pub(super) struct Session {
    pub(super) row: AgentRow,
    pub(super) presence: Presence,
    /// Presence to return to when a vanished desktop resumes.
    pub(super) presence_before: Presence,
    /// Presence as last written to the presence log.
    pub(super) logged: Presence,
    /// Why it is away, when it says (or a supervisor, or its missed offers, do).
    pub(super) away_reason: Option<String>,
    /// The reason last written to the presence log with `away`.
    pub(super) logged_reason: Option<String>,
    pub(super) conn: Option<(u64, DesktopLink)>,
    pub(super) session: String,
    pub(super) seq: u64,
    pub(super) log: VecDeque<(u64, String)>,
    /// The bytes of the events in `log`.
    pub(super) log_bytes: usize,
    pub(super) last_heard: i64,
    pub(super) disconnected_at: Option<i64>,
    pub(super) offer: Option<String>,
    /// Held interactions, by id.
    pub(super) held: HashMap<String, Held>,
    pub(super) wrap_up_until: Option<i64>,
    pub(super) idle_since: i64,
    pub(super) last_offered_at: i64,
    pub(super) misses: u32,
    /// Events decided this turn: they are numbered and go out once the router's writes
    /// for them are committed, and not at all when a write they report was refused.
    pub(super) staged: Vec<Staged>,
}

/// An interaction an agent holds: its channel, and what its completion writes beside
/// the change of state (so a completion needs no read of the store).
pub(super) struct Held {
    pub(super) channel: ChannelKind,
    pub(super) customer_id: String,
    /// The key its channel submitted it under.
    pub(super) contact_key: String,
}

impl Held {
    /// As the store has it.
    pub(super) fn of(row: &InteractionRow) -> Held {
        Held {
            channel: ChannelKind::parse(&row.channel).unwrap_or(ChannelKind::Api),
            customer_id: row.customer_id.clone(),
            contact_key: row.idempotency_key.clone(),
        }
    }
}

/// An event for the desktop, waiting for the commit of what it reports.
pub(super) struct Staged {
    event: Value,
    /// The interaction it is about, if any: when a write of that interaction is refused
    /// in this turn, the event did not happen and is not sent.
    about: Option<String>,
}

impl Session {
    /// Stages an event about what this turn decided: it is numbered, kept for a resume
    /// and sent at the next flush, after the writes it reports are committed; it is
    /// dropped if the store refused a write of the interaction it is about.
    pub(super) fn emit(&mut self, event: Value) {
        let about = event["interaction_id"]
            .as_str()
            .or_else(|| event["interaction"]["id"].as_str())
            .map(str::to_string);
        self.staged.push(Staged { event, about });
    }

    /// Stages an event that stands whatever the store refused this turn: a reply queued
    /// in the outbox (written either way), or the agent's own offer gone from the
    /// router's hands (it is gone whether or not the interaction's change was written).
    pub(super) fn emit_always(&mut self, event: Value) {
        self.staged.push(Staged { event, about: None });
    }

    /// Moves the end of the wrap-up a completion of `interaction_id` started to `until`,
    /// in the agent's state and in the `completed` event not yet sent.
    pub(super) fn extend_wrap_up(&mut self, interaction_id: &str, until: i64) {
        self.wrap_up_until = Some(until);
        self.idle_since = self.idle_since.max(until);
        for staged in &mut self.staged {
            if staged.event["type"] == "completed"
                && staged.about.as_deref() == Some(interaction_id)
            {
                staged.event["wrap_up_until"] = json!(rfc3339(until));
            }
        }
    }

    /// Fills in what the staged frame of offer `offer_id` shows.
    pub(super) fn show_offer(&mut self, offer_id: &str, interaction: Value) {
        if let Some(staged) = self
            .staged
            .iter_mut()
            .find(|s| s.event["type"] == "offer" && s.event["offer_id"] == offer_id)
        {
            staged.event["interaction"] = interaction;
        }
    }

    /// Takes back the staged frame of offer `offer_id`, not sent yet.
    pub(super) fn unstage_offer(&mut self, offer_id: &str) {
        self.staged
            .retain(|s| !(s.event["type"] == "offer" && s.event["offer_id"] == offer_id));
    }

    /// Numbers and sends the events staged since the last flush, leaving out those about
    /// interactions whose writes were refused.
    pub(super) fn release(&mut self, refused: &std::collections::HashSet<String>) {
        for Staged { mut event, about } in std::mem::take(&mut self.staged) {
            if about.is_some_and(|id| refused.contains(&id)) {
                continue;
            }
            self.seq += 1;
            event["seq"] = json!(self.seq);
            let text = event.to_string();
            self.log_bytes += text.len();
            self.log.push_back((self.seq, text.clone()));
            // The newest event is kept whatever its size.
            while self.log.len() > RESUME_LOG
                || (self.log_bytes > RESUME_LOG_BYTES && self.log.len() > 1)
            {
                if let Some((_, dropped)) = self.log.pop_front() {
                    self.log_bytes -= dropped.len();
                }
            }
            if let Some((_, out)) = &self.conn {
                out.send(Outbound::Frame(text));
            }
        }
    }

    /// Sends a frame that is not kept (answers to the frame just received).
    pub(super) fn reply(&self, event: Value) {
        if let Some((_, out)) = &self.conn {
            out.send(Outbound::Frame(event.to_string()));
        }
    }

    pub(super) fn error(&self, code: &str, message: &str) {
        self.reply(json!({ "type": "error", "code": code, "message": message }));
    }

    pub(super) fn load(&self) -> Load {
        let mut load = Load::default();
        for held in self.held.values() {
            match held.channel {
                ChannelKind::Phone => load.phone += 1,
                ChannelKind::Chat => load.chat += 1,
                ChannelKind::Email => load.email += 1,
                ChannelKind::Api => load.api += 1,
            }
        }
        load
    }
}

pub(super) fn view(s: &Session, rules_capacity: Capacity) -> AgentView {
    AgentView {
        id: s.row.id.clone(),
        level: s.row.level,
        skills: s.row.skills.clone(),
        presence: s.presence,
        has_pending_offer: s.offer.is_some(),
        wrap_up_until_ms: s.wrap_up_until,
        load: s.load(),
        capacity: s.row.capacity.over(rules_capacity),
        idle_since_ms: s.idle_since,
        last_offered_at_ms: s.last_offered_at,
    }
}

pub(super) fn agent_json(a: &AgentRow) -> Value {
    json!({ "id": a.id, "name": a.name, "level": a.level, "skills": a.skills, "extension": a.extension })
}

pub(super) fn interaction_json(i: &InteractionRow) -> Value {
    json!({
        "id": i.id, "channel": i.channel, "state": i.state, "tier": i.tier, "topic": i.topic,
        "subject": i.subject, "body": i.body, "customer_id": i.customer_id, "created_at": rfc3339(i.created_at),
        "contact_key": i.idempotency_key,
    })
}
