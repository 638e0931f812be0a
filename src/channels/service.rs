//! The service commitments as the channels see them: what to tell a customer of the
//! hours, callbacks a caller asks for or a missed call leaves, and how a callback's
//! dial went.

use serde_json::json;
use switchboard_contract::{
    CallbackTask, ChannelKind, IntakeError, NewCallback, NewInteraction, Rated, ServiceInfo,
};

use super::{unavailable, CoreService};
use crate::service::calendar::CalendarDoc;
use crate::store::{self, history, interactions, now_ms};

/// A calendar's week as lines for customers: `Monday 08:00-18:00`, closed days left out,
/// then the time zone.
pub fn week(doc: &CalendarDoc) -> Vec<String> {
    if doc.always_open {
        return vec!["Open around the clock".into()];
    }
    let days = [
        ("Monday", &doc.monday),
        ("Tuesday", &doc.tuesday),
        ("Wednesday", &doc.wednesday),
        ("Thursday", &doc.thursday),
        ("Friday", &doc.friday),
        ("Saturday", &doc.saturday),
        ("Sunday", &doc.sunday),
    ];
    let mut lines: Vec<String> = days
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(d, p)| format!("{d} {}", p.join(", ")))
        .collect();
    lines.push(format!("Times in {}", doc.time_zone));
    lines
}

/// Callbacks in the store.
const CALLBACK_KEY: &str = "callback:";

fn no_number() -> IntakeError {
    IntakeError::Invalid {
        field: "number".into(),
        message: "there is no number to call back: the caller's number is withheld".into(),
    }
}

impl CoreService {
    /// See [`switchboard_contract::Core::service`].
    pub(super) fn service_info(&self, channel: ChannelKind, tier: Option<&str>) -> ServiceInfo {
        let s = self.services.get();
        let rules = s.rules();
        let tier = tier.unwrap_or(&self.default_tier);
        let now = store::service_now();
        let calendar = s.calendar_for(tier, channel);
        let (open_now, opens_at_ms) = match calendar {
            None => (true, None),
            Some((_, c)) if c.is_open(now) => (true, None),
            Some((_, c)) => (false, Some(c.next_open(now).unwrap_or(i64::MAX))),
        };
        ServiceInfo {
            open_now,
            opens_at_ms,
            opens_at: opens_at_ms.filter(|at| *at < i64::MAX).map(store::rfc3339),
            opens_at_local: opens_at_ms
                .zip(calendar)
                .filter(|(at, _)| *at < i64::MAX)
                .map(|(at, (_, c))| c.local(at)),
            hours: calendar
                .and_then(|(n, _)| rules.calendars.get(n))
                .map(week)
                .unwrap_or_default(),
            closed_message: match channel {
                ChannelKind::Phone => rules.closed.phone_message.clone(),
                ChannelKind::Chat => rules.closed.chat_message.clone(),
                _ => String::new(),
            },
            closed_call: rules.closed.phone.as_str().into(),
            email_acknowledge: rules.closed.email_acknowledge.as_str().into(),
            email_subject: rules.closed.email_subject.clone(),
            email_text: rules.closed.email_text.clone(),
            callback_offer_after_secs: rules.callbacks.offer_after_secs,
            survey_question: rules
                .satisfaction
                .channels
                .iter()
                .any(|c| c == channel.as_str())
                .then(|| rules.satisfaction.question.clone()),
        }
    }

    /// A number to call, as E.164.
    fn phone_number(&self, given: &str) -> Result<String, IntakeError> {
        use crate::customers::identity::IdentityKind;
        self.parser
            .parse(IdentityKind::Phone, given, "number")
            .map(|i| i.value)
            .map_err(|e| IntakeError::Invalid {
                field: "number".into(),
                message: e.message,
            })
    }

    /// See [`switchboard_contract::Core::request_callback`].
    pub(super) async fn keep_for_callback(
        &self,
        channel: ChannelKind,
        contact_key: &str,
        number: &str,
    ) -> Result<bool, IntakeError> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await.map_err(unavailable)?;
        let Some(row) = interactions::by_key(&mut tx, channel.as_str(), contact_key)
            .await
            .map_err(unavailable)?
        else {
            return Ok(false);
        };
        if !matches!(row.state.as_str(), "queued" | "offered") {
            return Ok(false);
        }
        let number = match number.trim() {
            "" => store::service::phone_of(&mut tx, &row.id)
                .await
                .map_err(unavailable)?
                .ok_or_else(no_number)?,
            given => self.phone_number(given)?,
        };
        let added = store::service::add_callback(&mut tx, &row.id, &number, "requested", 0, now)
            .await
            .map_err(unavailable)?;
        if added {
            let event = history::NewEvent {
                customer_id: row.customer_id.clone(),
                interaction_id: Some(row.id.clone()),
                kind: "callback_requested",
                actor: "customer".into(),
                data: json!({ "source": "requested", "keeps_place": true }),
            };
            history::append(&mut tx, [&event], now)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        if added {
            metrics::counter!("switchboard_callbacks_total", "source" => "requested").increment(1);
        }
        Ok(true)
    }

    /// See [`switchboard_contract::Core::book_callback`].
    pub async fn book(&self, mut cb: NewCallback) -> Result<Option<String>, IntakeError> {
        cb.number = match (cb.number.trim(), &cb.follows) {
            ("", Some(follows)) => {
                let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
                store::service::phone_of(&mut conn, follows)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(no_number)?
            }
            ("", None) => return Err(no_number()),
            (given, _) => self.phone_number(given)?,
        };
        if cb.customer.is_anonymous() {
            cb.customer.phone = Some(cb.number.clone());
        }
        if cb.source == "missed" || cb.source == "voicemail" {
            // A tier whose missed calls are not called back: the tier the missed call
            // was given.
            let tier = match &cb.follows {
                Some(id) => {
                    let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
                    store::service::tier_of(&mut conn, id)
                        .await
                        .map_err(unavailable)?
                }
                None => None,
            }
            .unwrap_or_else(|| self.default_tier.clone());
            let rules = self.services.get();
            if !rules
                .rules()
                .callbacks
                .missed_calls
                .get(&tier)
                .copied()
                .unwrap_or(true)
            {
                return Ok(None);
            }
        }
        let key = format!("{CALLBACK_KEY}{}", cb.key);
        let accepted = self
            .intake
            .submit_full(NewInteraction {
                channel: ChannelKind::Phone,
                idempotency_key: key,
                customer: cb.customer.clone(),
                topic: cb.topic.clone(),
                subject: Some(match cb.source.as_str() {
                    "missed" => "Call back: a missed call".to_string(),
                    "voicemail" => "Call back: a voicemail".to_string(),
                    "retry" => format!("Call back: attempt {}", cb.attempts + 1),
                    _ => "Call back".to_string(),
                }),
                body: cb.note.clone(),
                preferred_agent: None,
                not_before_ms: cb.not_before_ms,
                waits_for_first_message: false,
                first_event: None,
            })
            .await?;
        let id = accepted.interaction.id.clone();
        let now = now_ms();
        let mut tx = self.store.begin_write().await.map_err(unavailable)?;
        let added =
            store::service::add_callback(&mut tx, &id, &cb.number, &cb.source, cb.attempts, now)
                .await
                .map_err(unavailable)?;
        if added {
            let event = history::NewEvent {
                customer_id: accepted.interaction.customer_id.clone(),
                interaction_id: Some(id.clone()),
                kind: "callback_booked",
                actor: "system".into(),
                data: json!({
                    "source": cb.source, "attempt": cb.attempts + 1,
                    "not_before": cb.not_before_ms.map(store::rfc3339),
                }),
            };
            history::append(&mut tx, [&event], now)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        if added {
            metrics::counter!("switchboard_callbacks_total", "source" => cb.source.clone())
                .increment(1);
        }
        Ok(Some(id))
    }

    /// See [`switchboard_contract::Core::acknowledgement`].
    pub(super) async fn acknowledgement_of(
        &self,
        interaction_id: &str,
    ) -> Result<Option<(String, String)>, IntakeError> {
        use crate::service::rules::Acknowledge;
        let (row, deadlines) = {
            let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
            let Some(row) = interactions::get(&mut conn, interaction_id)
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            let d = store::service::deadlines_of(&mut conn, std::slice::from_ref(&row.id))
                .await
                .map_err(unavailable)?;
            (row, d)
        };
        let s = self.services.get();
        let rules = &s.rules().closed;
        let channel = ChannelKind::parse(&row.channel).unwrap_or(ChannelKind::Email);
        let calendar = s.calendar_for(&row.tier, channel);
        let now = store::service_now();
        let closed = calendar.is_some_and(|(_, c)| !c.is_open(now));
        let send = match rules.email_acknowledge {
            Acknowledge::Never => false,
            Acknowledge::Always => true,
            Acknowledge::Closed => closed,
        };
        if !send {
            return Ok(None);
        }
        let local = |at: i64| match calendar {
            Some((_, c)) => c.local(at),
            None => format!("{} (UTC)", store::rfc3339(at)),
        };
        let opens = calendar
            .and_then(|(_, c)| c.next_open(now))
            .map(local)
            .unwrap_or_else(|| "now".into());
        // The next answer due: a next response, else the first.
        let due = ["next_response", "first_response"]
            .iter()
            .find_map(|t| {
                deadlines
                    .iter()
                    .find(|d| d.target == *t && matches!(d.state.as_str(), "pending" | "warned"))
                    .and_then(|d| d.due_at)
            })
            .filter(|t| *t < i64::MAX)
            .map(local)
            .unwrap_or_else(|| opens.clone());
        let fill = |t: &str| {
            t.replace("{due}", &due).replace("{opens}", &opens).replace(
                "{subject}",
                row.subject.as_deref().unwrap_or("your message"),
            )
        };
        Ok(Some((fill(&rules.email_subject), fill(&rules.email_text))))
    }

    /// See [`switchboard_contract::Core::callback`].
    pub(super) async fn callback_of(
        &self,
        interaction_id: &str,
    ) -> Result<Option<CallbackTask>, IntakeError> {
        let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
        store::service::callback(&mut conn, interaction_id)
            .await
            .map_err(unavailable)
    }

    /// See [`switchboard_contract::Core::callback_result`].
    pub(super) async fn record_callback_result(
        &self,
        interaction_id: &str,
        result: &str,
    ) -> Result<Option<String>, IntakeError> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await.map_err(unavailable)?;
        let Some(task) = store::service::callback(&mut tx, interaction_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let Some(row) = interactions::get(&mut tx, interaction_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let answered = result == "answered";
        let attempts = task.attempts + 1;
        let rules = self.services.get().rules().callbacks.clone();
        let again = !answered && attempts < rules.attempts;
        let state = if answered {
            "done"
        } else if again {
            "retrying"
        } else {
            "failed"
        };
        let moved = store::service::finish_callback(&mut tx, interaction_id, state, result, now)
            .await
            .map_err(unavailable)?;
        if !moved {
            // Its result was recorded before (a retried webhook).
            return Ok(None);
        }
        let event = history::NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(row.id.clone()),
            kind: "callback_result",
            actor: "system".into(),
            data: json!({ "result": result, "attempt": attempts, "of": rules.attempts, "again": again }),
        };
        history::append(&mut tx, [&event], now)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        metrics::counter!("switchboard_callbacks_total", "source" => "result", "result" => result.to_string()).increment(1);
        if !again {
            return Ok(None);
        }
        let customer = switchboard_contract::CustomerHint {
            phone: Some(task.number.clone()),
            ..Default::default()
        };
        let root = row
            .idempotency_key
            .strip_prefix(CALLBACK_KEY)
            .unwrap_or(&row.idempotency_key)
            .split("#attempt")
            .next()
            .unwrap_or_default()
            .to_string();
        self.book(NewCallback {
            key: format!("{root}#attempt{}", attempts + 1),
            number: task.number,
            customer,
            topic: row.topic,
            source: "retry".into(),
            note: None,
            not_before_ms: Some(store::service_now() + i64::from(rules.retry_after_mins) * 60_000),
            attempts,
            follows: Some(row.id.clone()),
        })
        .await
    }
}

impl CoreService {
    /// Records a customer's score of a completed interaction (once), in its history, and
    /// opens a follow-up for its owner when the score is low.
    pub async fn rate_interaction(
        &self,
        interaction_id: &str,
        answered_by: &str,
        score: u8,
        comment: Option<&str>,
    ) -> Result<Rated, IntakeError> {
        if !(1..=5).contains(&score) {
            return Err(IntakeError::Invalid {
                field: "score".into(),
                message: "a score is 1 to 5".into(),
            });
        }
        let comment = comment
            .map(|c| {
                c.trim()
                    .chars()
                    .filter(|c| *c != '\0')
                    .take(2000)
                    .collect::<String>()
            })
            .filter(|c| !c.is_empty());
        let now = now_ms();
        let mut tx = self.store.begin_write().await.map_err(unavailable)?;
        let Some(row) = interactions::get(&mut tx, interaction_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(Rated::Unknown);
        };
        if row.state != "completed" {
            return Ok(Rated::Unknown);
        }
        let added = store::service::add_satisfaction(
            &mut tx,
            &row,
            answered_by,
            score,
            comment.as_deref(),
            now,
        )
        .await
        .map_err(unavailable)?;
        if !added {
            return Ok(Rated::AlreadyAnswered);
        }
        let event = history::NewEvent {
            customer_id: row.customer_id.clone(),
            interaction_id: Some(row.id.clone()),
            kind: "satisfaction",
            actor: "customer".into(),
            data: json!({ "score": score, "comment": comment, "answered_by": answered_by }),
        };
        history::append(&mut tx, [&event], now)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        metrics::counter!("switchboard_satisfaction_total", "channel" => row.channel.clone(), "score" => score.to_string()).increment(1);
        let threshold = self
            .services
            .get()
            .rules()
            .satisfaction
            .follow_up_at_or_below;
        let follow_up = if score <= threshold {
            let (owner, customer) = {
                let mut conn = self.store.pool().acquire().await.map_err(unavailable)?;
                let owner = store::service::owner_of(&mut conn, &row.id)
                    .await
                    .map_err(unavailable)?;
                let customer = store::service::hint_for(&mut conn, &row.customer_id)
                    .await
                    .map_err(unavailable)?;
                (owner, customer)
            };
            let c = self
                .intake
                .submit_full(NewInteraction {
                    channel: ChannelKind::Api,
                    idempotency_key: format!("follow-up:{}", row.id),
                    customer,
                    topic: Some("follow_up".into()),
                    subject: Some(format!("Follow up: scored {score} of 5")),
                    body: comment.clone(),
                    preferred_agent: owner,
                    not_before_ms: None,
                    waits_for_first_message: false,
                    first_event: None,
                })
                .await?;
            Some(c.interaction.id)
        } else {
            None
        };
        Ok(Rated::Recorded {
            interaction_id: row.id,
            follow_up,
        })
    }
}

/// A survey link's token: `{interaction id}.{expiry (Unix seconds)}.{signature}`.
pub fn survey_token(key: &str, interaction_id: &str, expires: i64) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{interaction_id}.{expires}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{interaction_id}.{expires}.{sig}")
}

/// What a survey token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurveyToken {
    /// Signed by this centre, still valid: the interaction it asks about.
    Valid(String),
    /// Signed, but past its expiry.
    Expired,
    /// Not one this centre signed.
    Forged,
}

/// Checks a survey token against `key` at `now` (Unix seconds).
pub fn check_survey_token(key: &str, token: &str, now: i64) -> SurveyToken {
    use subtle::ConstantTimeEq;
    let mut parts = token.rsplitn(3, '.');
    let (Some(_), Some(expires), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return SurveyToken::Forged;
    };
    let Ok(exp) = expires.parse::<i64>() else {
        return SurveyToken::Forged;
    };
    if id.is_empty() || id.len() > 64 {
        return SurveyToken::Forged;
    }
    let expected = survey_token(key, id, exp);
    if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
        return SurveyToken::Forged;
    }
    if now > exp {
        return SurveyToken::Expired;
    }
    SurveyToken::Valid(id.to_string())
}

impl CoreService {
    /// See [`switchboard_contract::Core::survey`].
    pub(super) fn survey_mail(&self, interaction_id: &str) -> Option<(String, String)> {
        let s = self.services.get();
        let rules = &s.rules().satisfaction;
        if self.public_url.is_empty() || !rules.channels.iter().any(|c| c == "email") {
            return None;
        }
        let expires = store::service_now() / 1000 + i64::from(rules.link_valid_days) * 86_400;
        let link = format!(
            "{}/survey/{}",
            self.public_url.trim_end_matches('/'),
            survey_token(&self.survey_key, interaction_id, expires)
        );
        Some((
            "How did we do?".to_string(),
            format!(
                "{}\n\nAnswer with one click (no login), within {} days:\n{link}\n\nThank you.",
                rules.question, rules.link_valid_days
            ),
        ))
    }

    /// Checks a survey link's token now.
    pub fn check_survey(&self, token: &str) -> SurveyToken {
        check_survey_token(&self.survey_key, token, store::service_now() / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survey_tokens_are_checked_for_forgery_and_expiry() {
        let t = survey_token("k", "0193-abc", 1000);
        assert_eq!(
            check_survey_token("k", &t, 999),
            SurveyToken::Valid("0193-abc".into())
        );
        assert_eq!(check_survey_token("k", &t, 1001), SurveyToken::Expired);
        assert_eq!(check_survey_token("other", &t, 999), SurveyToken::Forged);
        let longer = t.replace(".1000.", ".99999.");
        assert_eq!(check_survey_token("k", &longer, 999), SurveyToken::Forged);
        for junk in ["", "a", "a.b", "a.b.c", "..", "x.1.zz"] {
            assert_eq!(
                check_survey_token("k", junk, 0),
                SurveyToken::Forged,
                "{junk}"
            );
        }
    }
}
