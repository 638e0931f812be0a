//! What a call event means, whatever format brought it: the call's life as the
//! interaction's life. Every event goes to the customer's history once (a retried
//! webhook changes nothing); a ringing call becomes an interaction and is offered to an
//! agent; a hang-up ends it wherever it is; a call that hung up while waiting is logged
//! as missed, with its wait, for follow-up.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_contract::{
    ChannelEvent, ChannelKind, Command, CommandFor, Connected, CustomerHint, Ending, FirstEvent,
    IntakeError, NewCallback, NewInteraction, Position, Recorded, ServiceInfo,
};

use crate::{Phone, PhoneError};

/// The longest a ringing call's answer waits for the router to say where it stands.
const POSITION_WITHIN: Duration = Duration::from_millis(200);

/// The format a call arrived in; it prefixes the call's key, so calls of two formats
/// with the same id stay apart, and it decides how the phone system is told later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Switchboard's JSON events.
    Native,
    /// Zammad's generic CTI.
    Zammad,
    /// Twilio Voice.
    Twilio,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Zammad => "zammad",
            Format::Twilio => "twilio",
        }
    }

    /// The interaction's idempotency key for a call.
    pub(crate) fn key(self, call_id: &str) -> String {
        format!("{}:{call_id}", self.as_str())
    }

    /// The format and call id of a key made by [`Format::key`].
    pub(crate) fn split(key: &str) -> Option<(Format, &str)> {
        let (prefix, call_id) = key.split_once(':')?;
        let format = [Format::Native, Format::Zammad, Format::Twilio]
            .into_iter()
            .find(|f| f.as_str() == prefix)?;
        Some((format, call_id))
    }
}

/// What the history keeps of a call's ringing.
fn ringing_data(format: Format, r: &Ringing) -> Value {
    json!({ "format": format.as_str(), "to": r.to })
}

/// The longest call id accepted.
pub const MAX_CALL_ID: usize = 250;

/// Checks a call id and answers it trimmed.
pub(crate) fn call_id(field: &str, value: Option<&str>) -> Result<String, PhoneError> {
    let id = value.map(str::trim).unwrap_or_default();
    if id.is_empty() {
        return Err(PhoneError::invalid(
            field,
            "is required: the phone system's id of the call",
        ));
    }
    if id.len() > MAX_CALL_ID || id.chars().any(char::is_control) {
        return Err(PhoneError::invalid(
            field,
            format!("must be at most {MAX_CALL_ID} printable characters"),
        ));
    }
    Ok(id.to_string())
}

/// A new inbound call.
#[derive(Debug, Clone, PartialEq)]
pub struct Ringing {
    /// The phone system's id of the call.
    pub call_id: String,
    /// The caller's number as sent (`anonymous` when withheld).
    pub from: String,
    /// The number called.
    pub to: Option<String>,
    /// What it is about (a queue or IVR choice), when known.
    pub topic: Option<String>,
    /// The caller's name, when the phone system has one.
    pub caller_name: Option<String>,
    /// The field that carries the caller's number in this format, for errors.
    pub from_field: &'static str,
}

/// A call event as a format's decoder reads it from a request body, before anything is
/// done with it. Decoding touches neither the core nor the network, so a body can be
/// checked on its own (the fuzz targets feed the decoders directly).
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A call rings.
    Ringing(Ringing),
    /// The call was answered, at this extension when the phone system says.
    Answered {
        /// The phone system's id of the call.
        call_id: String,
        /// The extension (or user) that answered.
        extension: Option<String>,
    },
    /// The call moved to another extension.
    Transferred {
        /// The phone system's id of the call.
        call_id: String,
        /// Where it went, trimmed and never empty.
        to_extension: String,
    },
    /// The call ended.
    Ended {
        /// The phone system's id of the call.
        call_id: String,
        /// The phone system's cause.
        cause: String,
        /// How long it lasted, when said.
        duration_secs: Option<u64>,
        /// The call as a ringing event would describe it, when the hang-up names the
        /// caller: a hang-up that overtook its ringing event still makes the call known.
        ringing: Option<Ringing>,
    },
    /// The caller left a voicemail.
    Voicemail {
        /// The phone system's id of the call.
        call_id: String,
        /// Its length, when said.
        duration_secs: Option<u64>,
        /// Where the recording is.
        recording_url: Option<String>,
    },
    /// The caller in the queue (or hearing the closed message) asked to be called back.
    CallbackRequested {
        /// The phone system's id of the call.
        call_id: String,
        /// The number to call, when not the caller's own.
        number: Option<String>,
    },
    /// How a callback's dial went.
    CallbackResult {
        /// The callback (its interaction's id, as the command named it).
        callback_id: String,
        /// `answered`, `no_answer`, `busy` or `failed`.
        result: String,
    },
    /// The caller scored the call in the phone system's survey (1 to 5).
    Satisfaction {
        /// The phone system's id of the call.
        call_id: String,
        /// The score.
        score: u8,
        /// What they said, when recorded as text.
        comment: Option<String>,
    },
    /// Nothing to do: an agent's own outbound call, or a status that changes nothing.
    Ignored {
        /// The phone system's id of the call.
        call_id: String,
    },
}

impl CallEvent {
    /// The call the event is about.
    pub fn call_id(&self) -> &str {
        match self {
            CallEvent::Ringing(r) => &r.call_id,
            CallEvent::Answered { call_id, .. }
            | CallEvent::Transferred { call_id, .. }
            | CallEvent::Ended { call_id, .. }
            | CallEvent::Voicemail { call_id, .. }
            | CallEvent::CallbackRequested { call_id, .. }
            | CallEvent::Satisfaction { call_id, .. }
            | CallEvent::Ignored { call_id } => call_id,
            CallEvent::CallbackResult { callback_id, .. } => callback_id,
        }
    }
}

/// What the phone system is told to do with a new call.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Connect the caller to this agent's extension now.
    Dial {
        /// The interaction.
        interaction_id: String,
        /// The agent.
        agent_id: String,
        /// The agent's extension.
        extension: String,
    },
    /// Keep the caller waiting; Switchboard says which agent later.
    Queue {
        /// The interaction.
        interaction_id: String,
        /// Where it stands.
        position: Option<Position>,
    },
    /// Refuse the call (a blocked number).
    Reject,
    /// The call has ended already (its hang-up came first): nothing to connect.
    Over {
        /// The interaction.
        interaction_id: String,
    },
    /// The phone system reported the call answered before it reported it ringing: it is
    /// connected already, and nothing is to be done with it.
    Connected {
        /// The interaction.
        interaction_id: String,
    },
    /// Switchboard is past its capacity and did not take the call (nothing of it was
    /// stored): the phone system gives the caller its busy treatment, and the caller may
    /// call again after `retry_after_secs`.
    Busy {
        /// When to try again.
        retry_after_secs: u32,
    },
    /// The call came while its calendar is closed: play the closed message, then offer
    /// a callback, take a voicemail or end, as `info.closed_call` says. It waits for the
    /// opening (and ends, missed, if the caller hangs up).
    Closed {
        /// The interaction.
        interaction_id: String,
        /// The hours, the opening and the message.
        info: ServiceInfo,
    },
}

/// The result names a callback's dial may have.
pub const CALLBACK_RESULTS: [&str; 4] = ["answered", "no_answer", "busy", "failed"];

/// Checks a satisfaction score.
pub(crate) fn score(field: &str, value: Option<&str>) -> Result<u8, PhoneError> {
    value
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| PhoneError::invalid(field, "is required: a score from 1 to 5"))
}

/// Checks a callback result.
pub(crate) fn callback_result(field: &str, value: Option<&str>) -> Result<String, PhoneError> {
    let v = value.map(str::trim).unwrap_or_default();
    if CALLBACK_RESULTS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(PhoneError::invalid(
            field,
            "is required: answered, no_answer, busy or failed",
        ))
    }
}

fn core_error(e: IntakeError, from_field: &str) -> PhoneError {
    match e {
        IntakeError::Invalid { field, message } => {
            let field = if field.starts_with("customer") {
                from_field.to_string()
            } else {
                field
            };
            PhoneError::Invalid { field, message }
        }
        IntakeError::KeyReused => PhoneError::invalid(
            "call_id",
            "this call id was already used for a call from another number",
        ),
        IntakeError::Unavailable(m) => {
            PhoneError::Unavailable(format!("{m}; nothing was accepted, retry"))
        }
        IntakeError::Overloaded { retry_after_secs } => PhoneError::Unavailable(format!(
            "too many calls at once; nothing was accepted, retry in {retry_after_secs} s"
        )),
        IntakeError::ShuttingDown => PhoneError::Unavailable(
            "the server is shutting down; nothing was accepted, retry".into(),
        ),
    }
}

/// A number as PBXs speaking Zammad's format send it: international without the `+`
/// (`493055571600`) or with `00`, made E.164; a national number (leading `0`) is left
/// for the default region.
pub(crate) fn international(number: &str) -> String {
    let n = number.trim();
    if let Some(rest) = n.strip_prefix("00") {
        if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
            return format!("+{rest}");
        }
    }
    if n.len() >= 8 && !n.starts_with('0') && n.chars().all(|c| c.is_ascii_digit()) {
        return format!("+{n}");
    }
    n.to_string()
}

fn withheld(number: &str) -> bool {
    let n = number.trim().to_ascii_lowercase();
    n.is_empty()
        || [
            "anonymous",
            "unknown",
            "restricted",
            "private",
            "unavailable",
        ]
        .contains(&n.as_str())
}

/// The prefix of dial commands' ids.
pub(crate) const DIAL: &str = "dial:";

/// What the phone system's word that a call is connected came to, for its history
/// event and metrics.
fn outcome(c: &Connected) -> &'static str {
    match c {
        Connected::Assigned { from: None, .. } => "assigned",
        Connected::Assigned { from: Some(_), .. } => "moved",
        Connected::Outside { .. } => "answered_outside",
        Connected::AlreadyHeld { .. } => "already_held",
        Connected::Ended { .. } => "already_ended",
        Connected::Unknown => "unknown_call",
    }
}

/// The dial command of a call the phone system connected itself, stored as carried out
/// so it is never sent (its payload says why). Its id is the one [`dial_command`] gives.
fn connected_dial() -> CommandFor {
    CommandFor {
        prefix: DIAL.into(),
        channel: ChannelKind::Phone,
        payload: json!({ "action": "dial", "connected_by_phone_system": true }),
    }
}

/// The id of the command that connects an interaction's call to an agent: one per
/// interaction and agent, whoever sends it (the answer to the ringing event, or a
/// callback); a call moved to another agent gets a command of its own.
fn dial_command_id(interaction_id: &str, agent_id: &str) -> String {
    format!("{DIAL}{interaction_id}:{agent_id}")
}

/// The dial command for an assignment of a call of `format`.
pub(crate) fn dial_command(
    format: Format,
    call_id: &str,
    interaction_id: &str,
    agent_id: &str,
    extension: Option<&str>,
) -> Command {
    let id = dial_command_id(interaction_id, agent_id);
    Command {
        payload: json!({
            "command_id": id, "action": "dial", "format": format.as_str(), "call_id": call_id,
            "interaction_id": interaction_id, "agent_id": agent_id, "extension": extension,
        }),
        id,
        channel: ChannelKind::Phone,
    }
}

/// A call's answer window, open while it lives (closed on every way out).
struct Window<'a> {
    phone: &'a Phone,
    key: String,
}

impl<'a> Window<'a> {
    fn open(phone: &'a Phone, key: String) -> Window<'a> {
        phone.ringing_set().insert(key.clone());
        Window { phone, key }
    }
}

impl Drop for Window<'_> {
    fn drop(&mut self) {
        self.phone.ringing_set().remove(&self.key);
    }
}

impl Phone {
    fn blocked(&self, number: &str) -> bool {
        let digits = |s: &str| -> String { s.chars().filter(|c| c.is_ascii_digit()).collect() };
        let n = digits(number);
        !n.is_empty() && self.settings.blocked_numbers.iter().any(|b| digits(b) == n)
    }

    /// A call rings: it becomes an interaction (once, however often the event is sent)
    /// and is offered to an agent; the answer says whether an agent took it within the
    /// answer window.
    pub(crate) async fn ringing(&self, format: Format, r: Ringing) -> Result<Route, PhoneError> {
        if self.blocked(&r.from) {
            metrics::counter!("switchboard_phone_calls_total", "format" => format.as_str(), "outcome" => "rejected").increment(1);
            return Ok(Route::Reject);
        }
        let key = format.key(&r.call_id);
        // Listen before submitting, so an agent taking it at once is not missed.
        let mut assignments = self.core.assignments();
        let customer = if withheld(&r.from) {
            CustomerHint {
                visitor_id: Some(format!("withheld-number:{key}")),
                name: Some(
                    r.caller_name
                        .clone()
                        .unwrap_or_else(|| "Withheld number".into()),
                ),
                ..CustomerHint::default()
            }
        } else {
            CustomerHint {
                phone: Some(r.from.trim().to_string()),
                name: r.caller_name.clone(),
                ..CustomerHint::default()
            }
        };
        // The window is open from before the submission: an agent taking the call at once
        // is this answer's to tell, not a callback's.
        let window_open = Window::open(self, key.clone());
        let accepted = self
            .core
            .submit(NewInteraction {
                channel: ChannelKind::Phone,
                idempotency_key: key.clone(),
                customer,
                topic: r.topic.clone(),
                subject: Some("Inbound call".into()),
                body: None,
                preferred_agent: None,
                not_before_ms: None,
                waits_for_first_message: false,
                // The ringing is recorded in the call's own commit.
                first_event: Some(FirstEvent {
                    event_key: format!("{key}:ringing"),
                    kind: "call_ringing".into(),
                    data: ringing_data(format, &r),
                    fingerprint: None,
                    files: Vec::new(),
                }),
            })
            .await;
        let accepted = match accepted {
            Ok(a) => a,
            Err(IntakeError::Overloaded { retry_after_secs }) => {
                metrics::counter!("switchboard_phone_calls_total", "format" => format.as_str(), "outcome" => "busy").increment(1);
                return Ok(Route::Busy { retry_after_secs });
            }
            Err(e) => return Err(core_error(e, r.from_field)),
        };
        let recorded = match accepted.first_event {
            Some(recorded) => recorded,
            // An intake that records no first events: recorded on its own.
            None => {
                self.record(
                    format,
                    &r.call_id,
                    "ringing",
                    "call_ringing",
                    ringing_data(format, &r),
                )
                .await?
            }
        };
        let interaction_id = accepted.interaction_id;
        if let Recorded::New { state, .. } = &recorded {
            if matches!(state.as_str(), "abandoned" | "completed") {
                return Ok(Route::Over { interaction_id });
            }
        }
        if accepted.opens_at_ms.is_some() {
            drop(window_open);
            metrics::counter!("switchboard_phone_calls_total", "format" => format.as_str(), "outcome" => "closed").increment(1);
            let info = self
                .core
                .service(ChannelKind::Phone, Some(&accepted.tier))
                .await;
            return Ok(Route::Closed {
                interaction_id,
                info,
            });
        }
        if accepted.created {
            metrics::counter!("switchboard_phone_calls_total", "format" => format.as_str(), "outcome" => "accepted").increment(1);
            // An answer that overtook this ringing event was kept aside: the call is
            // connected already, and must not wait in the queue.
            if let Some(early) = self.answered_early(&key).await? {
                let agent = early["agent_id"].as_str();
                self.connect(format, &r.call_id, agent).await?;
                return Ok(Route::Connected { interaction_id });
            }
        }
        if format == Format::Zammad {
            // Zammad's protocol takes no routing answer: its phone system routes the call.
            return Ok(Route::Queue {
                interaction_id,
                position: None,
            });
        }
        let window = Duration::from_millis(self.settings.answer_window_ms);
        let mut taken = tokio::time::timeout(window, async {
            loop {
                match assignments.recv().await {
                    Ok(a) if a.interaction_id == interaction_id => return Some(a),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        drop(window_open);
        // An assignment announced as the window closed is this answer's to carry: the
        // background delivery passed it over while the window was open.
        while taken.is_none() {
            match assignments.try_recv() {
                Ok(a) if a.interaction_id == interaction_id => taken = Some(a),
                Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        if let Some(a) = taken.map(std::sync::Arc::unwrap_or_clone) {
            // Whoever stores the dial command first sends it: this answer, or the
            // callback.
            let cmd = dial_command(
                format,
                &r.call_id,
                &interaction_id,
                &a.agent_id,
                a.extension.as_deref(),
            );
            let delivered_here = a.extension.is_some();
            let stored = match self.core.command(cmd, delivered_here).await {
                Ok(stored) => stored,
                // The agent has the call, but the dial could not be stored: the caller
                // waits, and the channel's catch-up sends the dial by callback within
                // seconds (the call is held with no dial command).
                Err(e) => {
                    tracing::warn!(error = %e, "Could not store a call's dial; it follows by callback");
                    false
                }
            };
            match a.extension {
                Some(extension) if stored => {
                    return Ok(Route::Dial {
                        interaction_id,
                        agent_id: a.agent_id,
                        extension,
                    })
                }
                // No extension to dial: the phone system learns the agent by callback.
                None if stored => self.wake.notify_one(),
                _ => {}
            }
        }
        // The caller is answered at once: a router too busy to say where the call stands
        // within a moment leaves the position out rather than keeping the phone system
        // waiting for it.
        let position = tokio::time::timeout(POSITION_WITHIN, self.core.position(&interaction_id))
            .await
            .unwrap_or(None);
        Ok(Route::Queue {
            interaction_id,
            position,
        })
    }

    /// The answer of a call recorded before its ringing event, if there was one.
    async fn answered_early(&self, key: &str) -> Result<Option<Value>, PhoneError> {
        let early = self
            .core
            .events_of(ChannelKind::Phone, key, "call_answered")
            .await
            .map_err(|e| core_error(e, "call_id"))?;
        Ok(early.into_iter().next())
    }

    /// Records an event of a call in its history, once per (call, event).
    async fn record(
        &self,
        format: Format,
        call_id: &str,
        event: &str,
        kind: &str,
        data: Value,
    ) -> Result<Recorded, PhoneError> {
        let key = format.key(call_id);
        self.core
            .record(ChannelEvent {
                channel: ChannelKind::Phone,
                event_key: format!("{key}:{event}"),
                contact_key: key,
                kind: kind.into(),
                data,
                files: Vec::new(),
            })
            .await
            .map_err(|e| core_error(e, "from"))
    }

    /// The call was answered, at `extension` when the phone system says. The phone
    /// system is the authority on its calls: a call still waiting is assigned there and
    /// then to the agent of that extension, or, at an extension of no agent, recorded as
    /// answered outside Switchboard; either way it is never offered again, and its
    /// hang-up is a completed call, not a missed one. A call another agent held moves to
    /// the one who answered. With no extension said (a Twilio status), the call is
    /// answered where Switchboard sent it, or outside when it was still waiting.
    pub(crate) async fn answered(
        &self,
        format: Format,
        call_id: &str,
        extension: Option<&str>,
    ) -> Result<Recorded, PhoneError> {
        let extension = extension.map(str::trim).filter(|e| !e.is_empty());
        let agent = self.agent_at(extension, "extension").await?;
        let connected = self.connect(format, call_id, agent.as_deref()).await?;
        let recorded = self
            .record(
                format,
                call_id,
                "answered",
                "call_answered",
                json!({ "extension": extension, "agent_id": agent, "outcome": outcome(&connected) }),
            )
            .await?;
        // The agent's desktop shows the call connected.
        if let Recorded::New { interaction_id, .. } = &recorded {
            self.core
                .tell_agent(
                    interaction_id,
                    json!({ "type": "call_state", "interaction_id": interaction_id, "state": "connected" }),
                )
                .await;
        }
        Ok(recorded)
    }

    /// The active agent at an extension, when one is named.
    async fn agent_at(
        &self,
        extension: Option<&str>,
        field: &str,
    ) -> Result<Option<String>, PhoneError> {
        match extension {
            Some(e) => self
                .core
                .find_agent(e)
                .await
                .map_err(|e| core_error(e, field)),
            None => Ok(None),
        }
    }

    /// Carries out the phone system's word that the call is connected to `agent` (or to
    /// someone Switchboard does not know). The dial command Switchboard would have sent
    /// for that agent is stored as carried out with it: the call is there already.
    async fn connect(
        &self,
        format: Format,
        call_id: &str,
        agent: Option<&str>,
    ) -> Result<Connected, PhoneError> {
        let key = format.key(call_id);
        let connected = self
            .core
            .connected(ChannelKind::Phone, &key, agent, Some(connected_dial()))
            .await
            .map_err(|e| core_error(e, "call_id"))?;
        let outcome = outcome(&connected);
        metrics::counter!("switchboard_phone_connected_total", "format" => format.as_str(), "outcome" => outcome).increment(1);
        Ok(connected)
    }

    /// The call was transferred to another extension: the interaction follows it to that
    /// extension's agent, as it follows an answer.
    pub(crate) async fn transferred(
        &self,
        format: Format,
        call_id: &str,
        to_extension: &str,
    ) -> Result<Recorded, PhoneError> {
        let agent = self.agent_at(Some(to_extension), "to_extension").await?;
        let connected = match &agent {
            Some(a) => Some(self.connect(format, call_id, Some(a)).await?),
            // Transferred to someone Switchboard does not know: the last agent stays
            // responsible for the interaction.
            None => None,
        };
        // Each transfer is its own event: a call may be transferred more than once.
        self.record(
            format,
            call_id,
            &format!("transferred:{to_extension}"),
            "call_transferred",
            json!({ "to_extension": to_extension, "agent_id": agent, "outcome": connected.as_ref().map(outcome) }),
        )
        .await
    }

    /// The call ended: a call still waiting is abandoned (a missed call, marked for
    /// follow-up with its wait); one held by an agent is the agent's to complete.
    /// `ringing` lets a hang-up that arrives before its ringing event still log the
    /// missed call.
    pub(crate) async fn ended(
        &self,
        format: Format,
        call_id: &str,
        cause: &str,
        duration_secs: Option<u64>,
        ringing: Option<Ringing>,
    ) -> Result<Recorded, PhoneError> {
        let key = format.key(call_id);
        let mut ending = self
            .core
            .end(
                ChannelKind::Phone,
                &key,
                &format!("caller hung up ({cause})"),
            )
            .await
            .map_err(|e| core_error(e, "call_id"))?;
        if ending == Ending::Unknown {
            // The hang-up came before the ringing (or the ringing was lost): the call is
            // still a contact, logged as missed.
            if let Some(r) = ringing.filter(|r| !r.from.trim().is_empty()) {
                self.core
                    .submit(NewInteraction {
                        channel: ChannelKind::Phone,
                        idempotency_key: key.clone(),
                        customer: if withheld(&r.from) {
                            CustomerHint {
                                visitor_id: Some(format!("withheld-number:{key}")),
                                ..CustomerHint::default()
                            }
                        } else {
                            CustomerHint {
                                phone: Some(r.from.trim().to_string()),
                                ..CustomerHint::default()
                            }
                        },
                        topic: r.topic,
                        subject: Some("Inbound call".into()),
                        body: None,
                        preferred_agent: None,
                        not_before_ms: None,
                        waits_for_first_message: false,
                        first_event: None,
                    })
                    .await
                    .map_err(|e| core_error(e, r.from_field))?;
                ending = self
                    .core
                    .end(
                        ChannelKind::Phone,
                        &key,
                        "caller hung up before the call was reported ringing",
                    )
                    .await
                    .map_err(|e| core_error(e, "call_id"))?;
            }
        }
        let (missed, waited_secs, agent_id) = match &ending {
            Ending::Abandoned { waited_secs, .. } => (true, Some(*waited_secs), None),
            Ending::WhileHeld { agent_id, .. } => (false, None, agent_id.clone()),
            Ending::Already { .. }
            | Ending::Unknown
            | Ending::CallbackKept { .. }
            | Ending::Left { .. } => (false, None, None),
        };
        let kept = matches!(ending, Ending::CallbackKept { .. });
        let mut callback = None;
        if missed {
            metrics::counter!("switchboard_phone_calls_total", "format" => format.as_str(), "outcome" => "missed").increment(1);
            if let Ending::Abandoned { interaction_id, .. } = &ending {
                callback = self.call_back(&key, interaction_id, "missed", None).await?;
            }
        }
        self.record(
            format,
            call_id,
            "ended",
            "call_ended",
            json!({
                "cause": cause, "duration_secs": duration_secs, "missed": missed,
                "waited_secs": waited_secs, "agent_id": agent_id,
                "follow_up": missed || kept, "callback_kept": kept, "callback": callback,
            }),
        )
        .await
    }

    /// The caller left a voicemail: logged for follow-up; a call still waiting ends.
    pub(crate) async fn voicemail(
        &self,
        format: Format,
        call_id: &str,
        duration_secs: Option<u64>,
        recording_url: Option<&str>,
    ) -> Result<Recorded, PhoneError> {
        let key = format.key(call_id);
        let ending = self
            .core
            .end(ChannelKind::Phone, &key, "caller left a voicemail")
            .await
            .map_err(|e| core_error(e, "call_id"))?;
        let (waited_secs, callback) = match &ending {
            Ending::Abandoned {
                waited_secs,
                interaction_id,
            } => {
                let note = recording_url.map(|u| format!("Voicemail: {u}"));
                (
                    Some(*waited_secs),
                    self.call_back(&key, interaction_id, "voicemail", note)
                        .await?,
                )
            }
            _ => (None, None),
        };
        self.record(
            format,
            call_id,
            "voicemail",
            "voicemail",
            json!({ "duration_secs": duration_secs, "recording_url": recording_url, "waited_secs": waited_secs, "follow_up": true, "callback": callback }),
        )
        .await
    }

    /// Books a callback for the caller of a call that was missed or left a voicemail
    /// (as the rules say for its tier); answers its interaction. A withheld number has
    /// none to call.
    async fn call_back(
        &self,
        key: &str,
        missed: &str,
        source: &str,
        note: Option<String>,
    ) -> Result<Option<String>, PhoneError> {
        let booked = self
            .core
            .book_callback(NewCallback {
                key: key.to_string(),
                number: String::new(),
                customer: CustomerHint::default(),
                topic: None,
                source: source.into(),
                note,
                not_before_ms: None,
                attempts: 0,
                follows: Some(missed.to_string()),
            })
            .await;
        match booked {
            Ok(id) => Ok(id),
            // No number to call (withheld): the missed call stays marked for follow-up.
            Err(IntakeError::Invalid { .. }) => Ok(None),
            Err(e) => Err(core_error(e, "call_id")),
        }
    }

    /// The caller asked to be called back: the call keeps its place, and is called back
    /// when its turn comes.
    pub(crate) async fn callback_requested(
        &self,
        format: Format,
        call_id: &str,
        number: Option<&str>,
    ) -> Result<Recorded, PhoneError> {
        let key = format.key(call_id);
        let kept = self
            .core
            .request_callback(ChannelKind::Phone, &key, number.unwrap_or_default())
            .await
            .map_err(|e| core_error(e, "number"))?;
        if !kept {
            return Ok(Recorded::UnknownContact);
        }
        Ok(Recorded::New {
            interaction_id: String::new(),
            state: "queued".into(),
            agent_id: None,
        })
    }

    /// The caller scored the call in the phone system's survey.
    pub(crate) async fn satisfaction(
        &self,
        format: Format,
        call_id: &str,
        score: u8,
        comment: Option<&str>,
    ) -> Result<switchboard_contract::Rated, PhoneError> {
        let key = format.key(call_id);
        self.core
            .rate(ChannelKind::Phone, &key, score, comment)
            .await
            .map_err(|e| core_error(e, "score"))
    }

    /// How a callback's dial went: recorded, the agent told (with the next attempt).
    pub(crate) async fn callback_done(
        &self,
        callback_id: &str,
        result: &str,
    ) -> Result<Option<String>, PhoneError> {
        let next = self
            .core
            .callback_result(callback_id, result)
            .await
            .map_err(|e| core_error(e, "callback_id"))?;
        self.core
            .tell_agent(
                callback_id,
                json!({ "type": "callback_result", "result": result, "next_attempt": next }),
            )
            .await;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_format() {
        let key = Format::Twilio.key("CA:1");
        assert_eq!(key, "twilio:CA:1");
        assert_eq!(Format::split(&key), Some((Format::Twilio, "CA:1")));
        assert_eq!(Format::split("email:x"), None);
    }

    #[test]
    fn call_ids_are_required_and_bounded() {
        assert_eq!(call_id("call_id", Some(" c1 ")), Ok("c1".into()));
        assert!(
            matches!(call_id("callId", None), Err(PhoneError::Invalid { field, .. }) if field == "callId")
        );
        assert!(call_id("call_id", Some(&"x".repeat(251))).is_err());
        assert!(call_id("call_id", Some("a\nb")).is_err());
    }

    #[test]
    fn zammad_style_numbers_become_international() {
        assert_eq!(international("493055571600"), "+493055571600");
        assert_eq!(international("00493055571600"), "+493055571600");
        assert_eq!(international("02214710334"), "02214710334");
        assert_eq!(international("+4930555"), "+4930555");
        assert_eq!(international("anonymous"), "anonymous");
    }

    #[test]
    fn withheld_numbers_are_recognised() {
        for n in ["anonymous", "Unknown", "", " restricted "] {
            assert!(withheld(n), "{n}");
        }
        assert!(!withheld("+4930123456"));
    }
}
