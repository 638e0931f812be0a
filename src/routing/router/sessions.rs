//! Desktops coming and going: login and resume, messages, vanishing, and the deadlines
//! of silent desktops and expired offers.

use super::*;

impl Router {
    pub(super) async fn connect(
        &mut self,
        agent: AgentRow,
        resume: Option<Resume>,
        conn: u64,
        out: DesktopLink,
    ) {
        let now = now_ms();
        let id = agent.id.clone();
        let held = self.held_by(&id).await;
        if let Some(s) = self.agents.get_mut(&id) {
            if let Some((_, old)) = s.conn.take() {
                old.send(Outbound::Close(4002, "logged in elsewhere".into()));
            }
            let resumable = resume
                .as_ref()
                .is_some_and(|r| r.session == s.session && r.last_seq <= s.seq);
            if resumable {
                let from = resume.map(|r| r.last_seq).unwrap_or(0);
                let missed: Vec<String> = s
                    .log
                    .iter()
                    .filter(|(seq, _)| *seq > from)
                    .map(|(_, t)| t.clone())
                    .collect();
                let complete = s.log.front().is_none_or(|(first, _)| *first <= from + 1);
                s.conn = Some((conn, out));
                s.row = agent;
                s.last_heard = now;
                // A desktop that comes back after the server noticed its drop returns
                // to its presence before the drop; one that comes back before keeps it.
                if s.disconnected_at.take().is_some() {
                    s.presence = s.presence_before;
                }
                let assigned: Vec<Value> = held
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(interaction_json)
                    .collect();
                let welcome = json!({ "type": "welcome", "session": s.session, "seq": s.seq, "resumed": true,
                                      "complete": complete, "presence": s.presence, "agent": agent_json(&s.row),
                                      "capacity": s.row.capacity.over(self.rules.capacity),
                                      "assigned": assigned });
                s.reply(welcome);
                for text in missed {
                    if let Some((_, out)) = &s.conn {
                        out.send(Outbound::Frame(text));
                    }
                }
                return;
            }
            // Not resumable: a new session, as below; keep what it holds.
        }
        let held = match held {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read an agent's assigned work");
                out.send(Outbound::Close(
                    1011,
                    "the store is unavailable; reconnect shortly".into(),
                ));
                // An earlier session of this agent has lost its connection above: it
                // waits for a resume like any vanished one.
                if self.agents.contains_key(&id) {
                    self.vanish(&id, now).await;
                }
                return;
            }
        };
        let mut s = Session {
            row: agent,
            presence: Presence::Away,
            presence_before: Presence::Away,
            logged: Presence::Offline,
            away_reason: None,
            logged_reason: None,
            conn: Some((conn, out)),
            session: new_id(),
            seq: 0,
            log: VecDeque::new(),
            log_bytes: 0,
            last_heard: now,
            disconnected_at: None,
            offer: None,
            held: held.iter().map(|i| (i.id.clone(), Held::of(i))).collect(),
            wrap_up_until: None,
            idle_since: now,
            last_offered_at: 0,
            misses: 0,
            staged: Vec::new(),
        };
        // A desktop resuming a session this router never knew (its node restarted, or
        // another node took over the routing) starts again in the presence it had.
        let unknown = !self.agents.contains_key(&id);
        if let Some(p) = resume.as_ref().and_then(|r| r.presence).filter(|_| unknown) {
            s.presence = match p {
                PresenceRequest::Available => Presence::Available,
                PresenceRequest::Away => Presence::Away,
            };
        }
        if let Some(old) = self.agents.remove(&id) {
            s.offer = None;
            s.logged = old.logged;
            s.logged_reason = old.logged_reason;
            if s.presence == Presence::Away {
                s.away_reason = old.away_reason;
            }
            s.wrap_up_until = old.wrap_up_until;
            s.idle_since = old.idle_since;
            s.last_offered_at = old.last_offered_at;
            if let Some(offer) = old.offer {
                self.revoke(&offer, "reconnected", now).await;
            }
        }
        let assigned: Vec<Value> = held.iter().map(interaction_json).collect();
        s.reply(json!({ "type": "welcome", "session": s.session, "seq": 0, "resumed": false, "complete": true,
                        "presence": s.presence, "agent": agent_json(&s.row), "assigned": assigned,
                        "capacity": s.row.capacity.over(self.rules.capacity) }));
        telemetry::agent_event("login");
        self.agents.insert(id, s);
    }

    pub(super) async fn held_by(&self, agent_id: &str) -> Result<Vec<InteractionRow>, sqlx::Error> {
        let mut conn = self.store.pool().acquire().await?;
        interactions::assigned_to(&mut conn, agent_id).await
    }

    pub(super) async fn message(&mut self, agent_id: &str, msg: ClientMessage, now: i64) {
        match msg {
            ClientMessage::Login { .. } => {
                if let Some(s) = self.agents.get(agent_id) {
                    s.error("already_logged_in", "this connection is logged in already");
                }
            }
            ClientMessage::Typing { interaction_id } => {
                if self.agents.get(agent_id).is_some_and(|s| {
                    s.held
                        .get(&interaction_id)
                        .is_some_and(|h| h.channel == ChannelKind::Chat)
                }) {
                    // Not kept: a typing notice nobody listens to is lost by design.
                    self.announcer
                        .announce(vec![Announcement::Typing { interaction_id }]);
                }
            }
            ClientMessage::Heartbeat {} => {
                if let Some(s) = self.agents.get(agent_id) {
                    s.reply(json!({ "type": "heartbeat_ack" }));
                }
            }
            ClientMessage::Presence { status, reason } => {
                if let Some(s) = self.agents.get_mut(agent_id) {
                    s.presence = match status {
                        PresenceRequest::Available => Presence::Available,
                        PresenceRequest::Away => Presence::Away,
                    };
                    if s.presence == Presence::Available {
                        s.misses = 0;
                    }
                    let reason = reason.map(|r| r.chars().take(100).collect::<String>());
                    s.away_reason = (s.presence == Presence::Away)
                        .then(|| reason.as_deref().and_then(away_reason))
                        .flatten();
                    s.emit(json!({ "type": "presence", "status": s.presence, "reason": reason }));
                }
            }
            ClientMessage::Accept { offer_id } => self.accept(agent_id, &offer_id, now).await,
            ClientMessage::Decline { offer_id, reason } => {
                let mine = self
                    .offers
                    .get(&offer_id)
                    .is_some_and(|o| o.agent_id == agent_id);
                if !mine {
                    if let Some(s) = self.agents.get(agent_id) {
                        s.error("not_your_offer", "that offer is not yours or has ended");
                    }
                    return;
                }
                self.lapse(&offer_id, "offer_declined", reason, now).await;
            }
            ClientMessage::Complete {
                interaction_id,
                disposition,
                notes,
            } => {
                self.complete(agent_id, &interaction_id, &disposition, notes, now)
                    .await
            }
            ClientMessage::Reply {
                interaction_id,
                body,
                html,
                reply_id,
                to,
                cc,
                attachments,
            } => {
                let mail = super::offers::MailParts {
                    to: to.unwrap_or_default(),
                    cc: cc.unwrap_or_default(),
                    attachments: attachments.unwrap_or_default(),
                };
                self.reply(agent_id, &interaction_id, body, html, reply_id, mail)
                    .await
            }
            ClientMessage::Transfer {
                interaction_id,
                to_agent,
                to_skill,
                note,
            } => {
                self.transfer(agent_id, &interaction_id, to_agent, to_skill, note, now)
                    .await
            }
            ClientMessage::Note {
                interaction_id,
                text,
            } => self.note(agent_id, &interaction_id, &text, now).await,
        }
    }

    /// A desktop's connection ended: its offer goes to the next agent at once; its
    /// session waits for a resume for the grace period.
    pub(super) async fn vanish(&mut self, agent_id: &str, now: i64) {
        let offer = match self.agents.get_mut(agent_id) {
            Some(s) => {
                s.conn = None;
                s.disconnected_at = Some(now);
                if s.presence != Presence::Offline {
                    s.presence_before = s.presence;
                }
                s.presence = Presence::Offline;
                s.offer.clone()
            }
            None => return,
        };
        if let Some(offer) = offer {
            self.revoke(&offer, "agent disconnected", now).await;
        }
        telemetry::agent_event("disconnect");
    }

    /// Offers past their time, silent desktops, sessions past their grace.
    pub(super) async fn expire(&mut self, now: i64) {
        let lapsed: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lapsed {
            self.lapse(&id, "offer_timed_out", None, now).await;
        }
        let silent: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, s)| {
                s.conn.is_some()
                    && s.last_heard + self.times.heartbeat_timeout.as_millis() as i64 <= now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            if let Some((_, out)) = self.agents.get_mut(&id).and_then(|s| s.conn.take()) {
                out.send(Outbound::Close(4003, "no heartbeat".into()));
            }
            self.vanish(&id, now).await;
        }
        while self
            .answered
            .front()
            .is_some_and(|(at, _, _)| at + SERVICE_WINDOW_MS < now)
        {
            self.answered.pop_front();
        }
        let grace = self.times.resume_grace.as_millis() as i64;
        self.agents
            .retain(|_, s| s.disconnected_at.is_none_or(|at| at + grace > now));
    }
}
