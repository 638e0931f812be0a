//! The IMAP poller: existing support mailboxes, read as mail arrives. Each configured
//! mailbox is watched with IDLE where the server supports it (otherwise polled every
//! `poll_secs`); each new message is taken like one that came over SMTP, and only once it
//! is committed is it marked `\Seen` and its UID saved as the mailbox's cursor. After a
//! restart the poller goes on from the saved UID (under the same UIDVALIDITY): nothing is
//! taken twice, nothing skipped. A message taken twice anyway (a crash between the commit
//! and the cursor) is recognised by its Message-ID and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use switchboard_contract::ChannelKind;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::inbound::Refused;
use crate::Email;

/// One mailbox to poll (`[[email.imap]]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapMailbox {
    /// `imaps://host:993` (TLS) or `imap://host:143` (plain, for loopback only).
    pub url: String,
    /// The login.
    pub username: String,
    /// The password.
    pub password: String,
    /// The folder to read.
    #[serde(default = "inbox")]
    pub folder: String,
    /// Seconds between polls, and the longest an IDLE waits before checking anyway.
    #[serde(default = "thirty")]
    pub poll_secs: u64,
}

fn inbox() -> String {
    "INBOX".into()
}

fn thirty() -> u64 {
    30
}

/// Messages fetched per round.
const BATCH: usize = 50;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}

type Session = async_imap::Session<Box<dyn Stream>>;

impl ImapMailbox {
    /// Where it is, for logs (no credentials).
    fn name(&self) -> String {
        let host = self
            .url
            .split("://")
            .nth(1)
            .unwrap_or(&self.url)
            .trim_end_matches('/');
        format!("{host}/{}", self.folder)
    }

    /// The cursor's name in the store.
    fn cursor(&self) -> String {
        format!("imap:{}@{}", self.username, self.name())
    }

    async fn connect(&self) -> Result<Session, String> {
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = self.url.strip_prefix("imap://") {
            (false, r)
        } else {
            return Err(format!(
                "{}: use imaps://host:port or imap://host:port",
                self.name()
            ));
        };
        let authority = rest.trim_end_matches('/');
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string();
        let addr = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 993 } else { 143 })
        };
        let tcp = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("{addr}: no answer"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        let stream: Box<dyn Stream> = if tls {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{addr}: TLS: {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut client = async_imap::Client::new(stream);
        client
            .read_response()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the server closed the connection")?;
        client
            .login(&self.username, &self.password)
            .await
            .map_err(|(e, _)| format!("login refused: {e}"))
    }
}

/// Polls `mailbox` until `shutdown`, reconnecting with backoff after any failure.
pub async fn run(email: Arc<Email>, mailbox: ImapMailbox, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(2);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = watch(&email, &mailbox, &shutdown) => r,
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(mailbox = %mailbox.name(), error = %e, "The IMAP mailbox could not be read; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(120));
            }
        }
    }
}

/// One connection's life: take what is new, then wait for more.
async fn watch(
    email: &Email,
    mailbox: &ImapMailbox,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let mut session = mailbox.connect().await?;
    let idle = session
        .capabilities()
        .await
        .map_err(|e| e.to_string())?
        .has_str("IDLE");
    let selected = session
        .select(&mailbox.folder)
        .await
        .map_err(|e| e.to_string())?;
    let validity = selected.uid_validity.unwrap_or(0);
    let wait = Duration::from_secs(mailbox.poll_secs.max(1));
    loop {
        take_new(email, mailbox, &mut session, validity).await?;
        if idle {
            let mut handle = session.idle();
            handle.init().await.map_err(|e| e.to_string())?;
            let (waiting, _stop) = handle.wait_with_timeout(wait);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = waiting => { r.map_err(|e| e.to_string())?; }
            }
            session = handle.done().await.map_err(|e| e.to_string())?;
        } else {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
            session.noop().await.map_err(|e| e.to_string())?;
        }
    }
}

/// Takes every message after the saved UID, in order, saving the cursor after each.
async fn take_new(
    email: &Email,
    mailbox: &ImapMailbox,
    session: &mut Session,
    validity: u32,
) -> Result<(), String> {
    let name = mailbox.cursor();
    let saved = email
        .core
        .cursor(ChannelKind::Email, &name)
        .await
        .map_err(|e| e.to_string())?;
    // "UIDVALIDITY:LAST-UID"; a new UIDVALIDITY starts over (Message-IDs keep it exact).
    let last: u32 = saved
        .as_deref()
        .and_then(|s| s.split_once(':'))
        .filter(|(v, _)| v.parse::<u32>().ok() == Some(validity))
        .and_then(|(_, u)| u.parse().ok())
        .unwrap_or(0);
    let mut uids: Vec<u32> = session
        .uid_search(format!("UID {}:*", last + 1))
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|u| *u > last)
        .collect();
    uids.sort_unstable();
    for uid in uids.into_iter().take(BATCH) {
        let raw = {
            let mut fetched = session
                .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                .await
                .map_err(|e| e.to_string())?;
            let mut raw = None;
            while let Some(f) = fetched.next().await {
                let f = f.map_err(|e| e.to_string())?;
                if f.uid == Some(uid) {
                    raw = f.body().map(<[u8]>::to_vec);
                }
            }
            raw
        };
        let Some(raw) = raw else {
            continue;
        };
        if raw.len() > email.settings.max_message_bytes {
            tracing::warn!(mailbox = %mailbox.name(), uid, size = raw.len(), "A message over the size limit was passed over");
        } else {
            match email.take(&raw, None, &[]).await {
                Ok(_) => {}
                // Not taken: the cursor stays, and the next round tries again.
                Err(Refused::Temporary(why)) => return Err(why),
                Err(Refused::Busy(secs)) => {
                    return Err(format!("the server is past its capacity; the next round in {secs} s or sooner tries again"))
                }
            }
        }
        {
            let mut stored = session
                .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
                .await
                .map_err(|e| e.to_string())?;
            while stored.next().await.is_some() {}
        }
        email
            .core
            .set_cursor(ChannelKind::Email, &name, &format!("{validity}:{uid}"))
            .await
            .map_err(|e| e.to_string())?;
        metrics::counter!("switchboard_imap_messages_total").increment(1);
    }
    Ok(())
}
