//! The agent websocket protocol (`/agent/ws`): the messages both ways, and decoding a
//! client's frame into a message or a precise error. Pure: no I/O. The protocol is
//! documented message by message in `docs/agent-protocol.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest frame an agent may send, in bytes, but a reply.
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// The largest reply frame: a mail reply's text and HTML (at most 256 KiB together, as the
/// router checks) written as JSON, whose escaping can double them.
pub const MAX_REPLY_FRAME: usize = 2 * 256 * 1024 + 4 * 1024;
/// The most the transport reads of one frame: a frame past the protocol's limits but
/// within this is answered `too_large`; past this it is not read at all.
pub const MAX_TRANSPORT_FRAME: usize = MAX_REPLY_FRAME + 4 * MAX_CLIENT_FRAME;

/// What an agent's desktop sends. It serializes externally tagged (`{"accept": {…}}`);
/// the frame on the wire carries the tag as `"type"` instead.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: who the agent is, and where to resume from.
    Login {
        /// The agent's token.
        token: String,
        /// Resume an earlier session: events after `last_seq` are sent again.
        #[serde(default)]
        resume: Option<Resume>,
    },
    /// Ready for work, or not.
    Presence {
        /// `available` or `away`.
        status: PresenceRequest,
        /// Why, for supervisors (`break`, `training`…).
        #[serde(default)]
        reason: Option<String>,
    },
    /// "Still here"; answered with `heartbeat_ack`.
    Heartbeat {},
    /// Take the offered interaction.
    Accept {
        /// The offer's id.
        offer_id: String,
    },
    /// Pass the offered interaction to someone else.
    Decline {
        /// The offer's id.
        offer_id: String,
        /// Why, for the history.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Done with an assigned interaction.
    Complete {
        /// The interaction.
        interaction_id: String,
        /// The outcome (`resolved`, `callback`, `escalated`…).
        disposition: String,
        /// Notes for the history.
        #[serde(default)]
        notes: Option<String>,
    },
    /// The agent is typing an answer (shown to a chat visitor).
    Typing {
        /// The interaction.
        interaction_id: String,
    },
    /// Answer the customer of an assigned interaction on its channel (an email reply).
    Reply {
        /// The interaction.
        interaction_id: String,
        /// The text of the reply.
        body: String,
        /// The same reply as HTML, for an email written as rich text: sent beside the
        /// text as its alternative, never alone.
        #[serde(default)]
        html: Option<String>,
        /// The desktop's own id for this reply: sending it again (after a reconnect) does
        /// not send the reply twice.
        #[serde(default)]
        reply_id: Option<String>,
        /// A mail's recipients, when not the customer alone (at most 20).
        #[serde(default)]
        to: Option<Vec<String>>,
        /// A mail's copies (at most 20).
        #[serde(default)]
        cc: Option<Vec<String>>,
        /// Files the agent uploaded to the interaction, by id, sent with a mail (at most 10).
        #[serde(default)]
        attachments: Option<Vec<String>>,
    },
    /// Hand an assigned interaction to a named agent, to the agents of a skill or team,
    /// or back to the queue (neither named), with a note for whoever takes it.
    Transfer {
        /// The interaction.
        interaction_id: String,
        /// The agent to offer it to first.
        #[serde(default)]
        to_agent: Option<String>,
        /// The skill or team to offer it to first.
        #[serde(default)]
        to_skill: Option<String>,
        /// For whoever takes it (never sent to the customer).
        #[serde(default)]
        note: Option<String>,
    },
    /// An internal note on an interaction the agent holds: kept in its history, shown to
    /// agents and supervisors, never sent to the customer; `@name` tells that agent.
    Note {
        /// The interaction.
        interaction_id: String,
        /// The note.
        text: String,
    },
}

/// Where a reconnecting desktop left off.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The session id from `welcome`.
    pub session: String,
    /// The last `seq` the desktop processed.
    pub last_seq: u64,
    /// The presence the desktop had: a session the server no longer knows (its node
    /// restarted, or another node took over the routing) starts again in it rather than
    /// away.
    #[serde(default)]
    pub presence: Option<PresenceRequest>,
}

/// Presence an agent can ask for (offline is leaving).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceRequest {
    /// Ready for work.
    Available,
    /// Not taking work.
    Away,
}

/// A frame that is not a valid message: the connection stays open, and the desktop is
/// told what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// A short code: `not_json`, `unknown_type`, `bad_field`, `too_large`, `binary`.
    pub code: &'static str,
    /// A sentence.
    pub message: String,
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
    let too_large = || DecodeError {
        code: "too_large",
        message: format!("frames are at most {MAX_CLIENT_FRAME} bytes, replies {MAX_REPLY_FRAME}"),
    };
    if text.len() > MAX_REPLY_FRAME {
        return Err(too_large());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError {
        code: "not_json",
        message: format!("the frame is not JSON: {e}"),
    })?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string);
    if text.len() > MAX_CLIENT_FRAME && kind.as_deref() != Some("reply") {
        return Err(too_large());
    }
    const KNOWN: [&str; 10] = [
        "login",
        "presence",
        "heartbeat",
        "accept",
        "decline",
        "complete",
        "reply",
        "typing",
        "transfer",
        "note",
    ];
    match kind.as_deref() {
        None => {
            return Err(DecodeError {
                code: "bad_field",
                message: "type: every message needs a \"type\"".into(),
            })
        }
        Some(k) if !KNOWN.contains(&k) => {
            return Err(DecodeError {
                code: "unknown_type",
                message: format!("type: '{k}' is not one of {}", KNOWN.join(", ")),
            })
        }
        _ => {}
    }
    // Decode the body as the variant its type names, so an error names the exact field.
    let mut body = value;
    if let Some(map) = body.as_object_mut() {
        map.remove("type");
    }
    let wrapped = serde_json::json!({ kind.as_deref().unwrap_or_default(): body });
    serde_path_to_error::deserialize::<_, ClientMessage>(wrapped).map_err(|e| {
        let path = e.path().to_string();
        // The path starts with the variant's name; the desktop knows its fields by theirs.
        let path = path
            .split_once('.')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
        let inner = e.into_inner();
        let message = if path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        DecodeError {
            code: "bad_field",
            message,
        }
    })
}

/// An error frame (not sequenced: it answers the frame just sent).
pub fn error_frame(code: &str, message: &str) -> String {
    serde_json::json!({ "type": "error", "code": code, "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_decodes() {
        assert_eq!(
            decode(r#"{"type":"login","token":"t"}"#),
            Ok(ClientMessage::Login {
                token: "t".into(),
                resume: None
            })
        );
        assert_eq!(
            decode(r#"{"type":"login","token":"t","resume":{"session":"s","last_seq":7}}"#),
            Ok(ClientMessage::Login {
                token: "t".into(),
                resume: Some(Resume {
                    session: "s".into(),
                    last_seq: 7,
                    presence: None,
                })
            })
        );
        assert_eq!(
            decode(r#"{"type":"presence","status":"away","reason":"break"}"#),
            Ok(ClientMessage::Presence {
                status: PresenceRequest::Away,
                reason: Some("break".into())
            })
        );
        assert_eq!(
            decode(r#"{"type":"heartbeat"}"#),
            Ok(ClientMessage::Heartbeat {})
        );
        assert_eq!(
            decode(r#"{"type":"accept","offer_id":"o"}"#),
            Ok(ClientMessage::Accept {
                offer_id: "o".into()
            })
        );
        assert_eq!(
            decode(r#"{"type":"complete","interaction_id":"i","disposition":"resolved"}"#),
            Ok(ClientMessage::Complete {
                interaction_id: "i".into(),
                disposition: "resolved".into(),
                notes: None
            })
        );
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        let cases = [
            ("hello", "not_json"),
            (r#"{"token":"t"}"#, "bad_field"),
            (r#"{"type":"dance"}"#, "unknown_type"),
            (r#"{"type":"accept"}"#, "bad_field"),
            (r#"{"type":"accept","offer_id":5}"#, "bad_field"),
            (r#"{"type":"presence","status":"sleeping"}"#, "bad_field"),
            (r#"{"type":"heartbeat","extra":1}"#, "bad_field"),
        ];
        for (frame, code) in cases {
            let e = decode(frame).unwrap_err();
            assert_eq!(e.code, code, "{frame}: {}", e.message);
        }
        assert!(decode(r#"{"type":"accept","offer_id":5}"#)
            .unwrap_err()
            .message
            .contains("offer_id"));
        assert_eq!(
            decode(&"x".repeat(MAX_REPLY_FRAME + 1)).unwrap_err().code,
            "too_large"
        );
        // A reply may carry a long mail; nothing else may be long.
        let pad = "x".repeat(MAX_CLIENT_FRAME);
        let long = format!(r#"{{"type":"heartbeat","pad":"{pad}"}}"#);
        assert_eq!(decode(&long).unwrap_err().code, "too_large");
        let body = "\\\"".repeat(200 * 1024);
        let reply =
            format!(r#"{{"type":"reply","interaction_id":"i","body":"{body}","reply_id":"r"}}"#);
        assert!(reply.len() > 2 * 200 * 1024);
        assert!(
            matches!(decode(&reply), Ok(ClientMessage::Reply { body, .. }) if body.len() == 200 * 1024)
        );
    }
}
