//! A message as Switchboard reads it, with mail-parser: who sent it, what it answers
//! (Message-ID, In-Reply-To, References, a reference token in the subject), its text
//! (HTML reduced to text), its attachments, and whether it is noise — an auto-reply, a
//! bounce, or Switchboard's own mail come back — that is recorded but never routed.
//!
//! Before mail-parser reads it, the header block is put right ([`crate::headers`]: a
//! missing blank line, text fields in charsets it cannot name). A text body whose charset
//! mail-parser could not read (a label it does not know, bytes not valid in their label,
//! 8-bit text with none) is decoded again from its bytes by [`crate::charset`]. NUL
//! characters, which no database stores, are taken out of the text.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::{charset, headers};

/// One file that came with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its name (or `attachment-N` when it has none).
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its decoded content.
    pub data: Vec<u8>,
}

/// Why a message is recorded but never routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noise {
    /// An automatic reply (out of office, list mail…), and what said so.
    AutoReply(String),
    /// A delivery report (a bounce).
    Bounce,
    /// Switchboard's own mail come back.
    Loop,
}

impl Noise {
    /// Why it is kept aside when it answers no conversation, as a fixed label.
    pub fn reason(&self) -> &'static str {
        match self {
            Noise::AutoReply(_) => "auto_reply",
            Noise::Bounce => "bounce",
            Noise::Loop => "loop",
        }
    }

    /// The history event's kind for it.
    pub fn kind(&self) -> &'static str {
        match self {
            Noise::AutoReply(_) => "email_auto_reply",
            Noise::Bounce => "email_bounce",
            Noise::Loop => "email_loop",
        }
    }
}

/// A message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Its key: its Message-ID, or a digest of the whole message when it has none.
    pub key: String,
    /// A digest of what it says (sender, date, subject, text, files): the same message
    /// delivered again has the same one, another message reusing its Message-ID does not.
    pub fingerprint: String,
    /// Its Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The messages it answers, most recent first (In-Reply-To, then References from the
    /// last).
    pub answers: Vec<String>,
    /// The reference token in its subject (`[#…]`), if any.
    pub token: Option<String>,
    /// The sender's address, lowercased.
    pub from: Option<String>,
    /// The sender's display name.
    pub from_name: Option<String>,
    /// The recipients (To and Cc), lowercased.
    pub to: Vec<String>,
    /// Its subject.
    pub subject: Option<String>,
    /// Its text (an HTML-only message reduced to text).
    pub text: String,
    /// It had an HTML body.
    pub html: bool,
    /// Its attachments.
    pub files: Vec<File>,
    /// Why it must not be routed, if it must not.
    pub noise: Option<Noise>,
}

/// Why a message cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Not a message.
    NotMime,
    /// More header fields than allowed.
    TooManyHeaders(usize),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotMime => f.write_str("not a MIME message"),
            Unreadable::TooManyHeaders(n) => write!(f, "{n} header fields is more than allowed"),
        }
    }
}

/// Limits on what is read.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most header fields in a message.
    pub max_headers: usize,
    /// Switchboard's host name: a Message-ID under it is Switchboard's own.
    pub hostname: String,
    /// Switchboard's own addresses: mail from them is its own.
    pub own_addresses: Vec<String>,
}

/// The header Switchboard puts on the mail it sends, so it knows it again.
pub const LOOP_HEADER: &str = "X-Switchboard-Loop";

/// A Message-ID as a key: trimmed, without angle brackets or control characters.
pub fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Text without NUL characters, which no database stores and no reader misses.
fn no_nul(text: &str) -> String {
    text.replace('\0', "")
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token in a subject: `[#` then letters and digits then `]`.
pub fn token_in(subject: &str) -> Option<String> {
    let start = subject.find("[#")? + 2;
    let rest = &subject[start..];
    let end = rest.find(']')?;
    let token = &rest[..end];
    (!token.is_empty() && token.len() <= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| token.to_ascii_lowercase())
}

fn header_text(message: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    message.header_raw(name).map(|v| v.trim().to_string())
}

/// The message ids a header lists, without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![clean_id(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    }
}

/// Reads a raw message.
pub fn read(raw: &[u8], limits: &Limits) -> Result<Mail, Unreadable> {
    read_with(raw, limits, limits.max_headers)
}

/// Reads a raw message allowing `max_headers` header fields.
pub fn read_with(raw: &[u8], limits: &Limits, max_headers: usize) -> Result<Mail, Unreadable> {
    let completed = headers::complete(raw);
    let first = MessageParser::new()
        .parse(&completed[..])
        .ok_or(Unreadable::NotMime)?;
    let headers: usize = first.parts.iter().map(|p| p.headers.len()).sum();
    if headers > max_headers {
        return Err(Unreadable::TooManyHeaders(headers));
    }
    if headers == 0 {
        return Err(Unreadable::NotMime);
    }
    // The sender's domain and the body's charset: what 8-bit header text is most likely in.
    let tld = first
        .from()
        .and_then(|f| f.first())
        .and_then(|m| m.address())
        .and_then(charset::tld);
    let hint = first
        .text_part(0)
        .and_then(|p| p.content_type())
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_string);
    match headers::transcode(&completed, hint.as_deref(), tld.as_deref()) {
        None => Ok(mail(&first, raw, limits, tld.as_deref())),
        Some(fixed) => {
            let message = MessageParser::new()
                .parse(&fixed[..])
                .ok_or(Unreadable::NotMime)?;
            Ok(mail(&message, raw, limits, tld.as_deref()))
        }
    }
}

/// The message's text: mail-parser's reading, or, when it could not read the charset,
/// the part's bytes decoded again by [`charset::decode`].
fn body_text(message: &mail_parser::Message<'_>, tld: Option<&str>) -> String {
    let read = message.body_text(0).unwrap_or_default().into_owned();
    let Some(part) = message.text_part(0) else {
        return read;
    };
    let html = match &part.body {
        PartType::Text(_) => false,
        PartType::Html(_) => true,
        _ => return read,
    };
    let label = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let named = label.is_none_or(charset::mail_parser_names);
    // mail-parser reads US-ASCII as windows-1252: 8-bit text under it is mislabelled.
    let mislabelled_ascii = !read.is_ascii()
        && label.is_some_and(|l| charset::charset(l) == Some(charset::Charset::Ascii));
    if named && !mislabelled_ascii && !read.contains('\u{FFFD}') {
        return read;
    }
    let Some(encoded) = message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
    else {
        return read;
    };
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
    let bytes = match part.encoding {
        mail_parser::Encoding::Base64 => base64_decode(encoded),
        mail_parser::Encoding::QuotedPrintable => quoted_printable_decode(encoded),
        mail_parser::Encoding::None => Some(encoded.to_vec()),
    };
    let Some(bytes) = bytes else {
        return read;
    };
    let text = charset::decode(&bytes, label, tld);
    if html {
        mail_parser::decoders::html::html_to_text(&text)
    } else {
        text
    }
}

/// A parsed message as Switchboard reads it; `raw` is the message as it came.
fn mail(
    message: &mail_parser::Message<'_>,
    raw: &[u8],
    limits: &Limits,
    tld: Option<&str>,
) -> Mail {
    let message_id = message.message_id().map(clean_id).filter(|m| !m.is_empty());
    let key = message_id
        .clone()
        .unwrap_or_else(|| format!("sha256:{}", hex(&Sha256::digest(raw))));
    let mut answers: Vec<String> = ids(message.in_reply_to());
    answers.extend(ids(message.references()).into_iter().rev());
    answers.retain(|a| !a.is_empty());
    answers.dedup();
    let sender = message.from().and_then(|f| f.first());
    let from = sender
        .as_ref()
        .and_then(|m| m.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'));
    let from_name = sender
        .as_ref()
        .and_then(|m| m.name())
        .map(|n| no_nul(n).trim().to_string())
        .filter(|n| !n.is_empty());
    let mut to: Vec<String> = Vec::new();
    for list in [message.to(), message.cc()].into_iter().flatten() {
        for m in list.iter() {
            if let Some(a) = m.address() {
                to.push(a.trim().to_ascii_lowercase());
            }
        }
    }
    let subject = message.subject().map(|s| no_nul(s).trim().to_string());
    let text = no_nul(&body_text(message, tld)).trim().to_string();
    let html = message
        .html_bodies()
        .any(|p| p.is_content_type("text", "html"));
    let files: Vec<File> = message
        .attachments()
        .enumerate()
        .map(|(i, part)| File {
            name: part
                .attachment_name()
                .map(no_nul)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("attachment-{}", i + 1)),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            data: part.contents().to_vec(),
        })
        .collect();
    let noise = noise(message, from.as_deref(), message_id.as_deref(), limits);
    let fingerprint = {
        let mut d = Sha256::new();
        for field in [
            from.as_deref().unwrap_or_default(),
            header_text(message, "Date").as_deref().unwrap_or_default(),
            subject.as_deref().unwrap_or_default(),
            &text,
        ] {
            d.update(field.as_bytes());
            d.update([0]);
        }
        for f in &files {
            d.update(f.name.as_bytes());
            d.update([0]);
            d.update(Sha256::digest(&f.data));
        }
        hex(&d.finalize())
    };
    Mail {
        key,
        fingerprint,
        token: subject.as_deref().and_then(token_in),
        message_id,
        answers,
        from,
        from_name,
        to,
        subject,
        text,
        html,
        files,
        noise,
    }
}

fn noise(
    message: &mail_parser::Message<'_>,
    from: Option<&str>,
    message_id: Option<&str>,
    limits: &Limits,
) -> Option<Noise> {
    let own_id = message_id.is_some_and(|m| {
        m.rsplit_once('@')
            .is_some_and(|(_, host)| host.eq_ignore_ascii_case(&limits.hostname))
    });
    let own_from = from.is_some_and(|f| {
        limits
            .own_addresses
            .iter()
            .any(|o| o.eq_ignore_ascii_case(f))
    });
    if message.header_raw(LOOP_HEADER).is_some() || own_id || own_from {
        return Some(Noise::Loop);
    }
    if message.is_content_type("multipart", "report")
        || from.is_some_and(|f| {
            let local = f.split('@').next().unwrap_or_default();
            local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
        })
    {
        return Some(Noise::Bounce);
    }
    if let Some(v) = header_text(message, "Auto-Submitted") {
        if !v.trim().eq_ignore_ascii_case("no") {
            return Some(Noise::AutoReply(format!("Auto-Submitted: {}", v.trim())));
        }
    }
    for h in ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"] {
        if h != "X-Auto-Response-Suppress" && message.header_raw(h).is_some() {
            return Some(Noise::AutoReply(format!("{h} header")));
        }
    }
    if let Some(p) = header_text(message, "Precedence") {
        let p = p.trim().to_ascii_lowercase();
        if ["bulk", "junk", "list", "auto_reply"].contains(&p.as_str()) {
            return Some(Noise::AutoReply(format!("Precedence: {p}")));
        }
    }
    None
}

#[cfg(test)]
mod tests;
