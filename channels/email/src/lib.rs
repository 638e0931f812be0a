//! Switchboard's email channel. Mail arrives over SMTP (Switchboard listens, default
//! port 2525) or is polled from existing mailboxes over IMAP; each new message becomes an
//! interaction routed by the sender's tier, a reply becomes a message on the interaction
//! it answers, and noise (auto-replies, bounces, Switchboard's own mail) is recorded but
//! never routed. Agents' replies go out over SMTP as proper replies in the customer's
//! thread.
//!
//! - [`parse`]: a message read with mail-parser;
//! - [`headers`]: its header block put right first (a missing blank line, charsets);
//! - [`charset`]: text in whatever charset it declares, or is really in;
//! - [`smtp`]: the SMTP listener;
//! - [`inbound`]: what a message means (new, threaded, noise, unreadable);
//! - [`kept`]: mail kept aside (no conversation, no usable sender), and contacts made of it;
//! - [`outbound`]: agents' replies, stored first and sent with retries.
//!
//! The adapter reaches the core only through [`switchboard_contract::Core`].

pub mod charset;
pub mod headers;
pub mod imap;
pub mod inbound;
pub mod kept;
pub mod outbound;
pub mod parse;
pub mod smtp;

use std::sync::Arc;

use serde::Deserialize;
use switchboard_contract::Core;

/// The email channel's settings (`[email]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Where the SMTP listener binds; empty runs none.
    pub smtp_addr: String,
    /// The name Switchboard gives itself in SMTP and in the Message-IDs it writes.
    pub hostname: String,
    /// Domains mail is accepted for; with `addresses` both empty, any recipient.
    pub domains: Vec<String>,
    /// Addresses mail is accepted for, besides whole domains.
    pub addresses: Vec<String>,
    /// The largest message accepted, in bytes (advertised as SIZE).
    pub max_message_bytes: usize,
    /// The largest attachment kept, in bytes (a larger one is listed, not kept).
    pub max_attachment_bytes: usize,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// Most header fields in one message (with every part's).
    pub max_headers: usize,
    /// Seconds an SMTP session may stay silent.
    pub session_timeout_secs: u64,
    /// The listener's certificate chain (PEM) for STARTTLS; empty offers none.
    pub tls_cert_file: String,
    /// Its private key (PEM).
    pub tls_key_file: String,
    /// A reply to a closed conversation: `reopen` it, or start a `new` one linked to it.
    /// Either way it goes to the agent who handled it first.
    pub reply_to_closed: String,
    /// Where replies are sent: `smtp://host:port` (STARTTLS when offered),
    /// `smtp://host:port?tls=required`, or `smtps://host:port`; empty sends none.
    pub relay_url: String,
    /// The relay's user name, if it wants one.
    pub relay_username: String,
    /// The relay's password.
    pub relay_password: String,
    /// The address replies come from when the customer did not write to one of ours.
    pub from_address: String,
    /// Attempts at sending a reply before giving up.
    pub send_max_attempts: u32,
    /// Mailboxes polled over IMAP.
    #[serde(default)]
    pub imap: Vec<imap::ImapMailbox>,
}

/// The running channel.
pub struct Email {
    settings: EmailSettings,
    core: Arc<dyn Core>,
    limits: parse::Limits,
    /// STARTTLS, when a certificate is configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Replies the relay took whose sending could not yet be recorded, by command id:
    /// only the record is tried again, never the sending.
    sent: std::sync::Mutex<std::collections::HashMap<String, outbound::Sent>>,
}

/// The listener's TLS from its PEM files.
fn acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("email.tls_cert_file: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("email.tls_cert_file: {e}"))?;
    if chain.is_empty() {
        return Err("email.tls_cert_file: no certificate in it".into());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("email.tls_key_file: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("email.tls_cert_file and tls_key_file: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Email {
    /// The channel over `core`; fails when its TLS files cannot be used.
    pub fn new(settings: EmailSettings, core: Arc<dyn Core>) -> Result<Arc<Email>, String> {
        let tls = match (
            settings.tls_cert_file.as_str(),
            settings.tls_key_file.as_str(),
        ) {
            ("", "") => None,
            (cert, key) => Some(acceptor(cert, key)?),
        };
        let mut own_addresses = settings.addresses.clone();
        if !settings.from_address.is_empty() {
            own_addresses.push(settings.from_address.clone());
        }
        let limits = parse::Limits {
            max_headers: settings.max_headers,
            hostname: settings.hostname.clone(),
            own_addresses,
        };
        Ok(Arc::new(Email {
            settings,
            core,
            limits,
            tls,
            sent: std::sync::Mutex::default(),
        }))
    }

    /// Whether mail for `address` is accepted here.
    pub fn accepts(&self, address: &str) -> bool {
        let s = &self.settings;
        if s.domains.is_empty() && s.addresses.is_empty() {
            return true;
        }
        let address = address.trim().to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        s.addresses.iter().any(|a| a.eq_ignore_ascii_case(&address))
            || s.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}
