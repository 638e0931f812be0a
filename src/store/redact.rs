//! Redaction: the one controlled exception to the append-only history and audit trail.
//!
//! The database refuses every update and delete of both (migrations 0001, 0005, 0012),
//! except, since 0015, a *redaction* made while the writing transaction has opened one
//! ([`allow`]): a history event may then only lose members of its data, which is marked
//! `{"redacted": "erasure" | "retention"}` (every other column and every member kept stays
//! as it was), and an audit entry may only have its record before and after replaced by
//! the erasure marker. On SQLite the transaction holds a row of the `redacting` table,
//! inserted and deleted within it (SQLite has one writer, and the row never outlives the
//! transaction); on PostgreSQL it sets `switchboard.redacting` with `SET LOCAL` semantics.
//! Only erasure ([`super::erasure`]) and retention ([`super::retention`]) open one.
//!
//! What each removes from an event's data is decided here, as pure functions: erasure
//! keeps only what cannot name the customer (numbers, flags, the centre's own labels and
//! ids), retention removes only what was said (bodies, subjects, texts, files' names,
//! recordings).

use serde_json::{Map, Value};

use super::{Backend, Conn};

/// Why a redaction is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A customer erased: everything that could name them goes.
    Erasure,
    /// Content older than the retention period goes; the contact's metadata stays.
    Retention,
}

impl Purpose {
    /// The marker written into redacted data, and the flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Erasure => "erasure",
            Purpose::Retention => "retention",
        }
    }
}

/// The audit trail's record of a change made to an erased customer, as erasure leaves it.
pub const AUDIT_MARKER: &str = r#"{"redacted":"erasure"}"#;

/// Opens a redaction for `purpose` in the caller's transaction: until [`close`] (or the
/// transaction's end), history events may be redacted, and for erasure audit entries too.
pub async fn allow(conn: &mut Conn, backend: Backend, purpose: Purpose) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            sqlx::query("INSERT INTO redacting (purpose) VALUES ($1)")
                .bind(purpose.as_str())
                .execute(conn)
                .await?;
        }
        Backend::Postgres => {
            sqlx::query("SELECT set_config('switchboard.redacting', $1, true)")
                .bind(purpose.as_str())
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Closes the redaction [`allow`] opened, before the transaction goes on to other writes.
pub async fn close(conn: &mut Conn, backend: Backend, purpose: Purpose) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            sqlx::query("DELETE FROM redacting WHERE purpose = $1")
                .bind(purpose.as_str())
                .execute(conn)
                .await?;
        }
        Backend::Postgres => {
            sqlx::query("SELECT set_config('switchboard.redacting', '', true)")
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Members erasure keeps when their value is text: the centre's own vocabulary (tiers,
/// states, outcomes, channels, topics, dispositions) and its own ids (agents,
/// complaints) — what the counts and reports are made of, never the customer's words,
/// names, addresses or numbers.
const ERASURE_KEEPS_TEXT: &[&str] = &[
    "tier",
    "source",
    "agent_id",
    "owner_agent_id",
    "to_extension",
    "extension",
    "state",
    "channel",
    "topic",
    "target",
    "outcome",
    "result",
    "disposition",
    "type",
    "format",
    "cause",
    "complaint_id",
    "order",
    "standing",
];

/// Members erasure keeps whatever their value: the router's decision (tiers, rings,
/// agents considered and why), which names no customer.
const ERASURE_KEEPS_ANY: &[&str] = &["decision"];

/// Members retention removes: what was said and sent — subjects, texts and HTML, notes,
/// comments, files (their names), recordings, previews.
const CONTENT: &[&str] = &[
    "subject",
    "text",
    "html",
    "body",
    "notes",
    "note",
    "comment",
    "attachments",
    "recording_url",
    "preview",
];

/// An event's data as erasure leaves it, or `None` when it holds nothing to remove:
/// numbers, flags and nulls stay (waits, durations, scores), text only under the members
/// of [`ERASURE_KEEPS_TEXT`], anything under [`ERASURE_KEEPS_ANY`].
pub fn for_erasure(data: &Value) -> Option<Value> {
    let object = data.as_object()?;
    let kept: Map<String, Value> = object
        .iter()
        .filter(|(k, v)| match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => true,
            Value::String(_) => ERASURE_KEEPS_TEXT.contains(&k.as_str()),
            _ => ERASURE_KEEPS_ANY.contains(&k.as_str()),
        })
        .filter(|(k, _)| k.as_str() != "redacted")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    marked(object, kept, Purpose::Erasure)
}

/// An event's data as retention leaves it, or `None` when it holds no content: every
/// member but those of [`CONTENT`] stays.
pub fn for_retention(data: &Value) -> Option<Value> {
    let object = data.as_object()?;
    let kept: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !CONTENT.contains(&k.as_str()) && k.as_str() != "redacted")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    marked(object, kept, Purpose::Retention)
}

/// `kept` marked as redacted for `purpose`, unless it is all of `object` already.
fn marked(
    object: &Map<String, Value>,
    mut kept: Map<String, Value>,
    purpose: Purpose,
) -> Option<Value> {
    let unchanged = kept.len() == object.len()
        || (kept.len() + 1 == object.len() && object.contains_key("redacted"));
    if unchanged {
        return None;
    }
    kept.insert("redacted".into(), Value::String(purpose.as_str().into()));
    Some(Value::Object(kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn erasure_keeps_numbers_flags_and_the_centres_labels_only() {
        let mail = json!({
            "message_id": "<a1@example.com>", "from": "mei@example.com", "from_name": "Mei Chen",
            "to": ["help@centre.example"], "subject": "Broken vase", "text": "It arrived broken.",
            "attachments": [{"name": "vase.jpg", "size": 3}], "waited_secs": 2.5,
            "follow_up": true, "agent_id": "a-1", "channel": "email", "reply_id": null,
        });
        assert_eq!(
            for_erasure(&mail),
            Some(
                json!({ "waited_secs": 2.5, "follow_up": true, "agent_id": "a-1",
                         "channel": "email", "reply_id": null, "redacted": "erasure" })
            )
        );
        let offered =
            json!({ "rule_version": 3, "decision": { "tier": "high", "considered": [] } });
        assert_eq!(for_erasure(&offered), None, "nothing to remove");
        let duplicate =
            json!({ "kind": "email", "value": "mei@example.com", "other_customer_id": "c-2" });
        assert_eq!(
            for_erasure(&duplicate),
            Some(json!({ "redacted": "erasure" }))
        );
    }

    #[test]
    fn retention_removes_what_was_said_and_keeps_the_rest() {
        let chat = json!({ "type": "message", "from": "visitor", "id": "m1", "text": "my order 42", "seq": 4 });
        assert_eq!(
            for_retention(&chat),
            Some(
                json!({ "type": "message", "from": "visitor", "id": "m1", "seq": 4, "redacted": "retention" })
            )
        );
        let voicemail = json!({ "duration_secs": 31, "recording_url": "https://pbx.example/r/1", "follow_up": true });
        assert_eq!(
            for_retention(&voicemail),
            Some(json!({ "duration_secs": 31, "follow_up": true, "redacted": "retention" }))
        );
        assert_eq!(for_retention(&json!({ "tier": "low" })), None);
    }

    #[test]
    fn redacted_data_is_redacted_again_only_when_something_is_left_to_remove() {
        let once = for_retention(&json!({ "text": "hello", "from": "a@example.com" })).unwrap();
        assert_eq!(for_retention(&once), None);
        assert_eq!(
            for_erasure(&once),
            Some(json!({ "redacted": "erasure" })),
            "erasure removes the address retention kept"
        );
        let erased = for_erasure(&once).unwrap();
        assert_eq!(for_erasure(&erased), None);
        assert_eq!(for_retention(&erased), None);
        assert_eq!(for_erasure(&json!("not an object")), None);
    }
}
