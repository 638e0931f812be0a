//! Telling the phone system which agent took a call after the answer window: each
//! assignment of a queued call becomes a dial command, stored in the core's outbox first
//! and then delivered — a signed callback for native calls, an update of the live call
//! through Twilio's REST API for Twilio calls — retried with backoff until the phone
//! system accepts it. The command's id is stable, so a phone system that receives it
//! twice can tell.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchboard_contract::{CallbackTask, ChannelKind, Due};
use tokio::sync::broadcast::error::RecvError;

use crate::calls::{dial_command, Format, DIAL};
use crate::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::{twilio, unix_now, Phone};

/// Commands handled per pass.
const BATCH: u32 = 32;

/// How often the store is asked for calls taken without a dial command. An assignment
/// can pass the channel by — announced while it was behind, while a ringing event's
/// answer was carrying it and then could not store it, before a restart — and is found
/// here within this time.
const CATCH_UP_EVERY: Duration = Duration::from_secs(5);

/// Runs the channel's background work until `shutdown` completes: turning assignments
/// of waiting calls into dial commands, and delivering them.
pub async fn run(phone: Arc<Phone>, shutdown: impl Future<Output = ()> + Send) {
    let mut assignments = phone.core.assignments();
    // Calls taken while the channel was not listening (before a restart) still get
    // their dial command.
    phone.catch_up().await;
    let mut catch_up = tokio::time::interval(CATCH_UP_EVERY);
    catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            a = assignments.recv() => match a {
                Ok(a) if a.channel == ChannelKind::Phone => {
                    // A call that may still be ringing on another node: that node's answer
                    // carries the dial if it can; the callback waits out its window.
                    let left = phone.window_left_elsewhere(&a);
                    if left.is_zero() {
                        phone.assigned(std::sync::Arc::unwrap_or_clone(a)).await;
                    } else {
                        let phone = phone.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(left).await;
                            phone.assigned(std::sync::Arc::unwrap_or_clone(a)).await;
                        });
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "The phone channel fell behind the assignments; catching up from the store");
                    phone.catch_up().await;
                }
                Err(RecvError::Closed) => return,
            },
            _ = catch_up.tick() => phone.catch_up().await,
            () = phone.wake.notified() => phone.deliver_due().await,
            () = tokio::time::sleep(Duration::from_secs(1)) => phone.deliver_due().await,
        }
    }
}

impl Phone {
    /// How long a call assigned now may still be ringing on another node (nothing on a
    /// single node, whose own ringing calls are known here).
    fn window_left_elsewhere(&self, a: &switchboard_contract::Assignment) -> Duration {
        if !self.clustered.load(std::sync::atomic::Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let until = a.arrived_at_ms + self.settings.answer_window_ms as i64 + 250;
        Duration::from_millis((until - now).max(0) as u64)
    }

    /// Stores the dial commands of calls held by an agent that have none and have not
    /// ended: assignments announced while nobody listened.
    async fn catch_up(&self) {
        match self
            .core
            .unanswered_assignments(ChannelKind::Phone, crate::calls::DIAL, "call_ended")
            .await
        {
            Ok(missed) => {
                for a in missed {
                    self.assigned(a).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not look for calls taken without a dial command")
            }
        }
    }

    /// A call was taken by an agent: unless the answer to its ringing event carries the
    /// dial already, a dial command is stored for delivery.
    async fn assigned(&self, a: switchboard_contract::Assignment) {
        // Asked first, as the assignment arrives: the ringing call's answer, still open,
        // carries the dial (it takes every assignment announced before it closes). Asked
        // after reading the store, it found the answer just closed, having taken this
        // very assignment, and the two raced to store the dial: the caller heard the
        // queue, then was moved by callback.
        if self.within_window(&a.contact_key) {
            return;
        }
        // A callback: the phone system calls the customer and connects the agent.
        match self.core.callback(&a.interaction_id).await {
            Ok(Some(task)) => return self.dial_out(a, task).await,
            Ok(None) => {}
            Err(e) => {
                // The catch-up comes back to it within seconds.
                tracing::warn!(error = %e, "Could not read whether a call is a callback");
                return;
            }
        }
        let Some((format, call_id)) = Format::split(&a.contact_key) else {
            return;
        };
        let deliverable = match format {
            Format::Native => !self.settings.callback_url.is_empty(),
            Format::Twilio => !self.settings.twilio_account_sid.is_empty(),
            // Zammad's protocol has no commands: its phone system routes by itself.
            Format::Zammad => false,
        };
        if !deliverable {
            return;
        }
        let cmd = dial_command(
            format,
            call_id,
            &a.interaction_id,
            &a.agent_id,
            a.extension.as_deref(),
        );
        match self.core.command(cmd, false).await {
            Ok(true) => self.wake.notify_one(),
            Ok(false) => {}
            // Not stored: the next catch-up finds the call still without its command.
            Err(e) => {
                tracing::warn!(error = %e, "Could not store a dial command; it is stored at the next catch-up")
            }
        }
    }

    /// An agent took a callback: the command that has the phone system call the customer
    /// and connect the agent is stored for delivery (Twilio's REST API, or the native
    /// command URL); with neither, the agent dials (the desktop shows the number).
    async fn dial_out(&self, a: switchboard_contract::Assignment, task: CallbackTask) {
        let s = &self.settings;
        let format = if !s.twilio_account_sid.is_empty() && !s.twilio_caller_id.is_empty() {
            Format::Twilio
        } else if !s.callback_url.is_empty() {
            Format::Native
        } else {
            return;
        };
        let id = format!("{DIAL}{}:{}", a.interaction_id, a.agent_id);
        let cmd = switchboard_contract::Command {
            payload: serde_json::json!({
                "command_id": id, "action": "callback", "format": format.as_str(),
                "callback_id": a.interaction_id, "number": task.number,
                "attempt": task.attempts + 1, "interaction_id": a.interaction_id,
                "agent_id": a.agent_id, "extension": a.extension,
            }),
            id,
            channel: ChannelKind::Phone,
        };
        match self.core.command(cmd, false).await {
            Ok(true) => self.wake.notify_one(),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Could not store a callback command; it is stored at the next catch-up")
            }
        }
    }

    /// Delivers the commands due now.
    async fn deliver_due(&self) {
        let due = match self.core.due(ChannelKind::Phone, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the phone commands due");
                return;
            }
        };
        let full = due.len() as u32 == BATCH;
        for d in due {
            let outcome = self.deliver(&d).await;
            let id = &d.command.id;
            let result = match outcome {
                Ok(()) => {
                    metrics::counter!("switchboard_phone_commands_total", "outcome" => "delivered")
                        .increment(1);
                    self.core.delivered(id).await
                }
                Err(error) => {
                    let attempts = d.attempts + 1;
                    let retry = (attempts < self.settings.callback_max_attempts)
                        .then(|| (500u64 << attempts.min(7)).min(60_000));
                    if retry.is_none() {
                        metrics::counter!("switchboard_phone_commands_total", "outcome" => "given_up").increment(1);
                        tracing::error!(command = %id, attempts, error = %error, "Gave up delivering a dial command");
                    } else {
                        metrics::counter!("switchboard_phone_commands_total", "outcome" => "retried").increment(1);
                        tracing::warn!(command = %id, attempts, error = %error, "A dial command was not delivered; retrying");
                    }
                    self.core.failed(id, retry, &error).await
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "Could not record a dial command's delivery");
            }
        }
        if full {
            self.wake.notify_one();
        }
    }

    /// One delivery attempt.
    async fn deliver(&self, due: &Due) -> Result<(), String> {
        let p = &due.command.payload;
        let format = p["format"].as_str().unwrap_or_default();
        if format == Format::Twilio.as_str() && p["action"] == "callback" {
            let s = &self.settings;
            let extension = p["extension"]
                .as_str()
                .ok_or("the agent has no extension to connect the callback to")?;
            let (path, body) = twilio::callback_call(
                s,
                p["number"].as_str().unwrap_or_default(),
                extension,
                p["callback_id"].as_str().unwrap_or_default(),
            );
            let resp = self
                .http
                .post(format!("{}{path}", s.twilio_api_url.trim_end_matches('/')))
                .basic_auth(&s.twilio_account_sid, Some(&s.twilio_auth_token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("Twilio could not be reached: {e}"))?;
            return match resp.status() {
                s if s.is_success() => Ok(()),
                s => Err(format!("Twilio answered {s}")),
            };
        }
        if format == Format::Twilio.as_str() {
            let s = &self.settings;
            let extension = p["extension"]
                .as_str()
                .ok_or("the agent has no extension to dial")?;
            let call = p["call_id"].as_str().unwrap_or_default();
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Calls/{}.json",
                s.twilio_api_url.trim_end_matches('/'),
                s.twilio_account_sid,
                call
            );
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair(
                    "Twiml",
                    &twilio::dial(&s.twilio_dial, extension, twilio::status_url(s).as_deref()),
                )
                .finish();
            let resp = self
                .http
                .post(url)
                .basic_auth(&s.twilio_account_sid, Some(&s.twilio_auth_token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("Twilio could not be reached: {e}"))?;
            return match resp.status() {
                s if s.is_success() => Ok(()),
                s => Err(format!("Twilio answered {s}")),
            };
        }
        let body = serde_json::to_vec(p).map_err(|e| e.to_string())?;
        let now = unix_now();
        let resp = self
            .http
            .post(&self.settings.callback_url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(
                SIGNATURE_HEADER,
                signature::native_sign(&self.settings.secret, now, &body),
            )
            .header("x-switchboard-command-id", &due.command.id)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the phone system could not be reached: {e}"))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("the phone system answered {s}")),
        }
    }
}
