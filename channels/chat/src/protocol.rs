//! The customer websocket's frames: JSON text, one per frame, each with a `type`.

use serde::{Deserialize, Serialize};

/// What a visitor's page sends. It serializes to the frame it was read from, so a
/// decoded frame can be written again (the fuzz target checks both ways).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Open a chat.
    Start {
        /// The page's own id for the visitor (kept in its storage).
        visitor_id: String,
        /// A customer token signed by the business's site.
        #[serde(default)]
        customer_token: Option<String>,
        /// The email of a pre-chat form.
        #[serde(default)]
        email: Option<String>,
        /// The visitor's name, from a pre-chat form.
        #[serde(default)]
        name: Option<String>,
        /// What it is about.
        #[serde(default)]
        topic: Option<String>,
    },
    /// Take up a chat again after a reload or a drop.
    Resume {
        /// The chat.
        chat_id: String,
        /// The secret `started` gave.
        resume_token: String,
        /// The last event seen.
        last_seq: u64,
    },
    /// A message from the visitor.
    Message {
        /// The page's own id for it: sending it again does not repeat it.
        id: String,
        /// Its text.
        text: String,
    },
    /// The visitor is typing.
    Typing {},
    /// The visitor ends the chat.
    Close {},
    /// Keeps the connection alive; answered with `pong`.
    Ping {},
    /// The visitor's answer to the survey of a chat its agent completed: a score of 1
    /// to 5, and what they want to say.
    Rating {
        /// 1 to 5.
        score: u8,
        /// A comment.
        #[serde(default)]
        comment: Option<String>,
    },
}

/// Decodes one text frame from a visitor's page, or says why it is not a chat frame.
pub fn decode(text: &str) -> Result<ClientFrame, String> {
    serde_json::from_str(text).map_err(|e| format!("not a chat frame: {e}"))
}
