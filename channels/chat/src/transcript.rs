//! A chat's transcript by mail, at the visitor's request: once per chat, to the address
//! the visitor gives, as a mail the email channel sends (stored as its command, so a
//! passing fault delays it, never loses it).

use axum::extract::ws::Message;
use serde_json::json;
use switchboard_contract::{ChannelKind, Command};

use crate::Chat;

/// The history kind of a chat's events.
const CHAT_KIND: &str = "chat";

/// Queues the transcript of chat `key` (interaction `interaction_id`) for `email`;
/// answers the frame to send back.
pub async fn request(chat: &Chat, key: &str, interaction_id: &str, email: &str) -> Message {
    let email = email.trim();
    if email.len() > 254 || email.parse::<email_address::EmailAddress>().is_err() {
        return crate::ws::error_frame("bad_field", "email: not an email address");
    }
    let events = match chat.core.events_of(ChannelKind::Chat, key, CHAT_KIND).await {
        Ok(e) => e,
        Err(e) => return crate::ws::error_frame("unavailable", &format!("{e}; send it again")),
    };
    let lines: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| {
            let who = if e["from"] == "agent" { "Agent" } else { "You" };
            format!("{who}: {}", e["text"].as_str().unwrap_or_default())
        })
        .collect();
    if lines.is_empty() {
        return crate::ws::error_frame("bad_field", "the chat has no messages yet");
    }
    let command = Command {
        // One per chat: asked again, it is the same command, stored once.
        id: format!("transcript:{key}"),
        channel: ChannelKind::Email,
        payload: json!({
            // Named, so that erasure and retention find it with the customer's contact.
            "action": "transcript", "to": [email], "chat": key, "interaction_id": interaction_id,
            "subject": "Your chat transcript",
            "body": format!("The transcript of your chat with us:\n\n{}\n", lines.join("\n")),
        }),
    };
    match chat.core.command(command, false).await {
        Ok(true) => {
            metrics::counter!("switchboard_chat_transcripts_total").increment(1);
            Message::Text(json!({ "type": "transcript_queued" }).to_string().into())
        }
        Ok(false) => crate::ws::error_frame(
            "already_sent",
            "the transcript of this chat was sent before",
        ),
        Err(e) => crate::ws::error_frame("unavailable", &format!("{e}; send it again")),
    }
}
