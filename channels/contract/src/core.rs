//! What the core offers an adapter after a contact is accepted: the interaction's life.
//! A channel whose own protocol carries the contact's state (a phone system reporting a
//! call answered, transferred, hung up) records those events in the history, ends the
//! interaction when the customer does, learns which agent took it, and hands the core
//! commands to deliver to the channel's system durably (an outbox), so nothing a
//! channel must be told is lost to a crash.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{BoxFuture, ChannelKind, Intake, IntakeError};

/// An event of a contact's life, reported by its channel, for the customer's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelEvent {
    /// The channel.
    pub channel: ChannelKind,
    /// The contact, by the idempotency key it was submitted with (a call's id).
    pub contact_key: String,
    /// Unique per event within the channel: the same key twice is recorded once (a
    /// retried webhook changes nothing).
    pub event_key: String,
    /// The history event's kind (`call_answered`).
    pub kind: String,
    /// Its details (never logged). A member named `private` is kept with the event for
    /// the channel's own checks (a resume secret's digest) and read back by
    /// [`Core::events_of`], but never written to the history: nobody else sees it.
    pub data: serde_json::Value,
    /// Files that came with it, stored with its interaction in the same commit (each
    /// once: their ids derive from the interaction and the event key).
    #[serde(skip)]
    pub files: Vec<Attachment>,
}

/// A message a channel keeps aside instead of making a contact of it (an auto-reply
/// that answers no conversation, mail with no usable sender, mail that cannot be read):
/// kept whole, once per key, for supervisors to see and to turn into a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAside {
    /// The channel.
    pub channel: ChannelKind,
    /// Unique per message in the channel: the same key twice is kept once.
    pub key: String,
    /// A digest of what the message says: the same key with another digest is another
    /// message (a reused Message-ID), kept too.
    pub fingerprint: String,
    /// Why, as a short fixed label (`auto_reply`, `bounce`, `no_sender`…).
    pub reason: String,
    /// Why, as a sentence.
    pub detail: String,
    /// Who sent it, when that is known.
    pub sender: Option<String>,
    /// Its subject.
    pub subject: Option<String>,
    /// The start of its text.
    pub preview: Option<String>,
    /// The message as it came.
    pub raw: Vec<u8>,
}

/// What recording an event came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recorded {
    /// Recorded in the interaction's history.
    New {
        /// The interaction.
        interaction_id: String,
        /// Its state when the event was recorded (`queued`, `offered`, `assigned`…).
        state: String,
        /// The agent holding it, if any.
        agent_id: Option<String>,
    },
    /// Its event key was recorded before: nothing changed.
    Duplicate,
    /// No contact has that key: the event is kept aside (an event out of order), and
    /// nothing else changed.
    UnknownContact,
}

/// What ending a contact on the customer's side came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// It was waiting: now abandoned, after this wait.
    Abandoned {
        /// The interaction.
        interaction_id: String,
        /// Seconds it waited.
        waited_secs: f64,
    },
    /// It had been answered: the agent holding it was told (and completes it as
    /// usual); one answered outside Switchboard (no agent) is completed with it.
    WhileHeld {
        /// The interaction.
        interaction_id: String,
        /// The agent, or `None` when it was answered outside Switchboard.
        agent_id: Option<String>,
    },
    /// It had ended already.
    Already {
        /// The interaction.
        interaction_id: String,
    },
    /// The caller asked to be called back: it keeps its place, waiting for an agent who
    /// calls back.
    CallbackKept {
        /// The interaction.
        interaction_id: String,
    },
    /// It waited for the customer's first message, which never came (a web chat the
    /// visitor opened and left without writing): closed as left, no contact was made and
    /// none was abandoned.
    Left {
        /// The interaction.
        interaction_id: String,
    },
    /// No contact has that key.
    Unknown,
}

/// What a channel's report that its own system connected a contact came to (a phone
/// system saying a call was answered at an extension, or moved to another).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Connected {
    /// It is now this agent's: it was waiting (and is never offered again), or another
    /// agent held it. It counts against the agent's capacity and shows on their desktop.
    Assigned {
        /// The interaction.
        interaction_id: String,
        /// The agent who has it now.
        agent_id: String,
        /// The agent who held it before, when it was held.
        from: Option<String>,
    },
    /// It was waiting and was answered by someone Switchboard does not know (an
    /// extension of no agent): it is never offered again, and ends with the call.
    Outside {
        /// The interaction.
        interaction_id: String,
    },
    /// The agent (or nobody named) held it already: nothing changed.
    AlreadyHeld {
        /// The interaction.
        interaction_id: String,
    },
    /// It had ended already: nothing changed.
    Ended {
        /// The interaction.
        interaction_id: String,
    },
    /// No contact has that key.
    Unknown,
}

/// An interaction taken by an agent (announced after the assignment is committed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The interaction.
    pub interaction_id: String,
    /// The key its channel submitted it under (a call's id).
    pub contact_key: String,
    /// Its channel.
    pub channel: ChannelKind,
    /// The agent.
    pub agent_id: String,
    /// The agent's name, as customers may be told it.
    pub agent_name: String,
    /// The agent's phone extension, if it has one.
    pub extension: Option<String>,
    /// When the contact arrived (ms since the epoch, by the database's clock): a call
    /// that arrived within its answer window may still be ringing on another node, whose
    /// answer carries the dial.
    #[serde(default)]
    pub arrived_at_ms: i64,
}

/// An interaction an agent completed (announced after it is committed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    /// The interaction.
    pub interaction_id: String,
    /// The key its channel submitted it under.
    pub contact_key: String,
    /// Its channel.
    pub channel: ChannelKind,
}

/// Where a waiting interaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// 1 for the next to be offered on its channel.
    pub position: u32,
    /// An estimate from the recent rate of answers, when there is one.
    pub estimated_wait_secs: Option<u32>,
}

/// A command for a channel's external system, delivered by the channel's adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique and stable: the same command is stored once, and the receiver can use it
    /// to ignore a retry.
    pub id: String,
    /// The channel that delivers it.
    pub channel: ChannelKind,
    /// What to deliver.
    pub payload: serde_json::Value,
}

/// A command for an interaction and agent a channel does not know yet (the core fills
/// them in when it decides them): its id is `{prefix}{interaction id}:{agent id}`, and
/// its payload `payload` with both added. Plain data, so it crosses to the router of
/// another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandFor {
    /// The id's prefix (`dial:`).
    pub prefix: String,
    /// The channel the command is for.
    pub channel: ChannelKind,
    /// What the command says besides the interaction and agent.
    pub payload: serde_json::Value,
}

impl CommandFor {
    /// The command for `interaction_id` and `agent_id`.
    pub fn command(&self, interaction_id: &str, agent_id: &str) -> Command {
        let mut payload = self.payload.clone();
        let id = format!("{}{interaction_id}:{agent_id}", self.prefix);
        if let Some(o) = payload.as_object_mut() {
            o.insert("command_id".into(), id.clone().into());
            o.insert("interaction_id".into(), interaction_id.into());
            o.insert("agent_id".into(), agent_id.into());
        }
        Command {
            id,
            channel: self.channel,
            payload,
        }
    }
}

/// A command due for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Due {
    /// The command.
    pub command: Command,
    /// Attempts made so far.
    pub attempts: u32,
}

/// A contact found by one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The key it was submitted under.
    pub contact_key: String,
    /// Its interaction.
    pub interaction_id: String,
    /// The interaction's state (`queued`, `offered`, `assigned`, `completed`, `abandoned`).
    pub state: String,
    /// The agent holding it, or who held it last.
    pub agent_id: Option<String>,
    /// That agent's name, as customers may be told it.
    pub agent_name: Option<String>,
}

/// A file that came with a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its file name.
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its content; `None` when it was over the size limit (listed, not kept).
    pub data: Option<Vec<u8>>,
}

/// What a channel tells a customer of the service it is offered: whether it is open, when
/// it opens, the hours, and what to say while closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Open now (a contact is served at once).
    pub open_now: bool,
    /// The next opening, while closed (ms since the epoch).
    pub opens_at_ms: Option<i64>,
    /// The same, as RFC 3339.
    pub opens_at: Option<String>,
    /// That opening as the calendar's readers write it (`Mon 2026-12-07 08:00
    /// (Europe/Berlin)`).
    pub opens_at_local: Option<String>,
    /// The opening hours, a line a day (`Monday 08:00-18:00`), with the time zone; empty
    /// when served around the clock.
    pub hours: Vec<String>,
    /// What to say while closed, on this channel.
    pub closed_message: String,
    /// A call while closed: `callback`, `voicemail` or `message`.
    pub closed_call: String,
    /// When mail is acknowledged: `closed`, `always` or `never`.
    pub email_acknowledge: String,
    /// The acknowledgement's subject template (`{subject}`).
    pub email_subject: String,
    /// Its text template (`{due}`, `{opens}`).
    pub email_text: String,
    /// Seconds a caller waits before being offered a callback.
    pub callback_offer_after_secs: u32,
    /// The satisfaction question, when this channel asks it.
    pub survey_question: Option<String>,
}

/// A callback to book: a customer to call back, when their turn comes (or at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCallback {
    /// Unique per callback: booking it again changes nothing.
    pub key: String,
    /// The number to call.
    pub number: String,
    /// Who it is (the number itself, or more).
    pub customer: crate::CustomerHint,
    /// What it is about.
    pub topic: Option<String>,
    /// Why (`missed`: a missed call; `voicemail`; `api`; `retry`).
    pub source: String,
    /// A note for the agent (never logged).
    pub note: Option<String>,
    /// Not before this moment (ms since the epoch).
    pub not_before_ms: Option<i64>,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The contact it follows (the missed call, the voicemail, the attempt before).
    pub follows: Option<String>,
}

/// What a customer's satisfaction answer came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rated {
    /// Recorded; a low score opened a follow-up (its interaction).
    Recorded {
        /// The interaction scored.
        interaction_id: String,
        /// The follow-up opened for its owner, for a low score.
        follow_up: Option<String>,
    },
    /// The contact was scored before: nothing changed.
    AlreadyAnswered,
    /// No contact has that key, or it is not completed.
    Unknown,
}

/// A callback an agent was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackTask {
    /// The interaction.
    pub interaction_id: String,
    /// The number to call.
    pub number: String,
    /// Why it was booked.
    pub source: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// A stored file: its name, content type and bytes.
pub type StoredFile = (String, String, Vec<u8>);

/// The core's side for channels that follow their contacts' lives.
pub trait Core: Intake {
    /// The contact a key names: the key it was submitted under, or the event key of any
    /// event recorded for it. The first of `keys` found wins.
    fn find_contact<'a>(
        &'a self,
        channel: ChannelKind,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Option<Contact>, IntakeError>>;

    /// Puts an ended interaction back in the queue (the customer wrote again), offered
    /// first to `preferred_agent`. False when it had not ended.
    fn reopen<'a>(
        &'a self,
        interaction_id: &'a str,
        preferred_agent: Option<&'a str>,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, IntakeError>>;

    /// The data of every event of `kind` recorded for a contact, oldest first.
    fn events_of<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        kind: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, IntakeError>>;

    /// A channel's saved position in an external source (an IMAP mailbox's last UID).
    fn cursor<'a>(
        &'a self,
        channel: ChannelKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, IntakeError>>;

    /// Saves a channel's position in an external source.
    fn set_cursor<'a>(
        &'a self,
        channel: ChannelKind,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), IntakeError>>;

    /// A file an agent attached to a reply on an interaction (uploaded before the reply
    /// named it): its name, content type and bytes; `None` when there is no such file.
    fn file<'a>(
        &'a self,
        interaction_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredFile>, IntakeError>>;

    /// Tells the agent holding an interaction something about it (a reply delivered or
    /// not), as a numbered event on the agent's desktop.
    fn tell_agent<'a>(
        &'a self,
        interaction_id: &'a str,
        event: serde_json::Value,
    ) -> BoxFuture<'a, ()>;

    /// Records `event` in its contact's history, once per event key.
    fn record(&self, event: ChannelEvent) -> BoxFuture<'_, Result<Recorded, IntakeError>>;

    /// The channel's own system connected a contact to `agent_id` (an agent's id, as
    /// [`Core::find_agent`] answers it), or to someone Switchboard does not know (`None`).
    /// The channel's system is the authority on its contacts: a waiting contact is
    /// assigned there and then (its offer, if any, withdrawn), one held by another agent
    /// moves. `done` names commands the channel's system needs no longer (the dial of a
    /// call already connected), by the interaction and agent they would be for; they are
    /// stored as carried out in the same commit. Nothing is announced as an assignment:
    /// the channel knows already.
    fn connected<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        agent_id: Option<&'a str>,
        done: Option<CommandFor>,
    ) -> BoxFuture<'a, Result<Connected, IntakeError>>;

    /// Records an event that carries a message (an email), once per event key and
    /// content: the same key with the same `fingerprint` again is a duplicate; with
    /// another fingerprint it is answered [`IntakeError::KeyReused`] and nothing changes.
    fn record_message(
        &self,
        event: ChannelEvent,
        fingerprint: String,
    ) -> BoxFuture<'_, Result<Recorded, IntakeError>>;

    /// Keeps a message aside, once per key (and content): answers false when it was kept
    /// before.
    fn keep_aside(&self, kept: KeptAside) -> BoxFuture<'_, Result<bool, IntakeError>>;

    /// The customer ended the contact: abandoned if it waited, its agent told if held.
    fn end<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<Ending, IntakeError>>;

    /// The customer wrote first in a contact that waited for it (a web chat the visitor
    /// opened, [`crate::NewInteraction::waits_for_first_message`]): it is queued and
    /// offered from now with `text` as its content, and its wait counts from now. False
    /// when it was not waiting for a first message (queued already, or ended).
    fn first_message<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<bool, IntakeError>>;

    /// Where each of these waiting interactions stands (those not waiting are left out).
    fn positions<'a>(
        &'a self,
        interaction_ids: Vec<String>,
    ) -> BoxFuture<'a, std::collections::HashMap<String, Position>>;

    /// Where a waiting interaction stands; `None` when it is not waiting.
    fn position<'a>(&'a self, interaction_id: &'a str) -> BoxFuture<'a, Option<Position>> {
        Box::pin(async move {
            self.positions(vec![interaction_id.to_string()])
                .await
                .remove(interaction_id)
        })
    }

    /// The active agent a phone system names: by extension, else email, else id.
    fn find_agent<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, IntakeError>>;

    /// Every assignment from now on, once committed.
    fn assignments(&self) -> broadcast::Receiver<std::sync::Arc<Assignment>>;

    /// Every completion from now on, once committed.
    fn completions(&self) -> broadcast::Receiver<Completed>;

    /// The channel of every command stored from now on (an agent's reply), so its
    /// adapter delivers it at once rather than at its next poll.
    fn commands_stored(&self) -> broadcast::Receiver<ChannelKind>;

    /// Commands stored already claimed for this node's adapter, from now on, once
    /// committed (an agent's chat reply): delivered as they come, with no claim of their
    /// own. One missed (the adapter behind) is due again when its claim runs out.
    fn commands_handed(&self) -> broadcast::Receiver<std::sync::Arc<Vec<Due>>>;

    /// The interactions whose agent is typing an answer, from now on (not kept).
    fn agents_typing(&self) -> broadcast::Receiver<String>;

    /// Interactions of `channel` held by an agent with no command stored for them under
    /// `{command_prefix}{interaction id}:{agent id}`, and no event of kind `over_kind`
    /// (the contact has ended): the assignments a channel may have missed (announced while it was behind,
    /// or before a crash), to catch up on.
    fn unanswered_assignments<'a>(
        &'a self,
        channel: ChannelKind,
        command_prefix: &'a str,
        over_kind: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Assignment>, IntakeError>>;

    /// The keys of the channel's contacts not yet ended (waiting, offered or held), oldest
    /// first, at most `limit`: what a channel that keeps its conversations in memory takes
    /// up again after a restart.
    fn open_contacts(
        &self,
        channel: ChannelKind,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, IntakeError>>;

    /// What the service offers a customer of `tier` (its default when `None`) on
    /// `channel` now.
    fn service(&self, channel: ChannelKind, tier: Option<&str>) -> BoxFuture<'_, ServiceInfo>;

    /// The caller of a waiting call asked to be called back at `number`: the contact
    /// keeps its place, and an agent is given it as a callback when its turn comes.
    /// Answers false when it was not waiting.
    fn request_callback<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, Result<bool, IntakeError>>;

    /// Books a callback as a contact of its own (a missed call, a voicemail, the next
    /// attempt, one asked for over the API), once per key; answers its interaction, or
    /// `None` when the tier's rules call no missed calls back.
    fn book_callback(
        &self,
        callback: NewCallback,
    ) -> BoxFuture<'_, Result<Option<String>, IntakeError>>;

    /// The callback an interaction is, when it is one.
    fn callback<'a>(
        &'a self,
        interaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallbackTask>, IntakeError>>;

    /// How a callback's dial went (`answered`, `no_answer`, `busy`, `failed`): recorded;
    /// one not answered is booked again after the rules' pause while attempts are left.
    /// Answers the next attempt's interaction when one was booked.
    fn callback_result<'a>(
        &'a self,
        interaction_id: &'a str,
        result: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, IntakeError>>;

    /// The acknowledgement a new message of interaction `interaction_id` gets, as the
    /// rules say (`closed[email_acknowledge]`): its subject and text, with when an answer
    /// is due; `None` when it gets none.
    fn acknowledgement<'a>(
        &'a self,
        interaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, IntakeError>>;

    /// The survey mail of a completed interaction: its subject and text, with a signed
    /// link to a one-question page; `None` when its channel is not asked (or there is no
    /// public address for the link).
    fn survey<'a>(
        &'a self,
        interaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, IntakeError>>;

    /// The customer scored a completed contact (1 to 5), by its channel's key; once.
    fn rate<'a>(
        &'a self,
        channel: ChannelKind,
        contact_key: &'a str,
        score: u8,
        comment: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Rated, IntakeError>>;

    /// Stores a command once (by its id): answers false when it was stored before. One
    /// already carried out another way (`delivered`) is kept only so it is not repeated.
    fn command(
        &self,
        command: Command,
        delivered: bool,
    ) -> BoxFuture<'_, Result<bool, IntakeError>>;

    /// Commands of `channel` due for delivery now, oldest first.
    fn due(&self, channel: ChannelKind, limit: u32)
        -> BoxFuture<'_, Result<Vec<Due>, IntakeError>>;

    /// A command was delivered.
    fn delivered<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), IntakeError>>;

    /// A delivery failed: try again after `retry_in_ms`, or give up (`None`) with `error`.
    fn failed<'a>(
        &'a self,
        id: &'a str,
        retry_in_ms: Option<u64>,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), IntakeError>>;
}
