//! The SMTP listener (RFC 5321): EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY, HELP,
//! QUIT, with SIZE, PIPELINING, 8BITMIME and ENHANCEDSTATUSCODES advertised, and
//! STARTTLS (RFC 3207) when a certificate is configured. A message
//! is answered `250` only after [`Email::take`] has committed it; `451` when the store
//! cannot take it now (the sender retries); `552` for a message over the size limit —
//! refused on `MAIL … SIZE=` when declared, else at the end of `DATA`, before any of it
//! is stored. Past capacity (admission control) a message is refused with `451 4.3.2`:
//! at `MAIL` when every mail would be refused whatever its sender, before the message is
//! sent, else at the end of `DATA` by its sender's tier. Lines, recipients, errors and
//! silence are all bounded.

use std::sync::Arc;
use std::time::Duration;

use switchboard_contract::ChannelKind;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::inbound::{Outcome, Refused};
use crate::Email;

/// The longest command line (RFC 5321 allows 512 octets; a little slack).
const MAX_COMMAND: usize = 1024;
/// Errors in one session before it is closed.
const MAX_ERRORS: u32 = 10;

/// Accepts SMTP sessions on `listener` until `shutdown`; each session runs as its own task.
pub async fn serve(email: Arc<Email>, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "Could not accept an SMTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Only latency is at stake: replies are flushed either way.
        let _ = stream.set_nodelay(true);
        let (email, shutdown) = (email.clone(), shutdown.clone());
        tokio::spawn(async move {
            session(&email, Box::new(stream), shutdown, false).await;
        });
    }
}

/// Where a session is in its dialogue.
#[derive(Debug, Default)]
struct Envelope {
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
}

/// A line as read: complete, too long (and skipped to its end), or the end of input.
enum Line {
    Text(Vec<u8>),
    TooLong,
    Closed,
}

/// Reads one line of at most `max` bytes (the rest of a longer one is skipped).
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(max as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Line::Closed);
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() < max {
            return Ok(Line::Closed);
        }
        // Skip to the end of the overlong line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = (&mut *r)
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)
                .await?;
            if n == 0 {
                return Ok(Line::Closed);
            }
            if rest.last() == Some(&b'\n') {
                return Ok(Line::TooLong);
            }
        }
    }
    Ok(Line::Text(buf))
}

/// The address in `FROM:<a@b> …` / `TO:<a@b>`, and the parameters after it.
fn path(arg: &str, prefix: &str) -> Option<(String, String)> {
    let rest = arg
        .get(..prefix.len())?
        .eq_ignore_ascii_case(prefix)
        .then(|| &arg[prefix.len()..])?;
    let rest = rest.trim_start();
    let (addr, params) = if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        (&inner[..end], &inner[end + 1..])
    } else {
        rest.split_once(' ').unwrap_or((rest, ""))
    };
    // A source route (@a,@b:user@c) is ignored, as RFC 5321 allows.
    let addr = addr.rsplit(':').next().unwrap_or(addr).trim();
    if addr.len() > 254 || addr.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    Some((addr.to_string(), params.trim().to_string()))
}

fn size_param(params: &str) -> Option<u64> {
    params.split_whitespace().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case("SIZE").then(|| v.parse().ok())?
    })
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// A connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP session; `secured` after STARTTLS (the dialogue starts over, without a
/// greeting, as RFC 3207 says).
pub fn session<'a>(
    email: &'a Email,
    stream: Box<dyn Io>,
    shutdown: CancellationToken,
    secured: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let (read, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(read);
        let host = email.settings.hostname.clone();
        if !secured {
            if reply(&mut w, &format!("220 {host} ESMTP Switchboard ready"))
                .await
                .is_err()
            {
                return;
            }
            metrics::counter!("switchboard_smtp_sessions_total").increment(1);
        }
        if let Some(tls) = dialogue(email, &mut r, &mut w, &shutdown, secured).await {
            // STARTTLS: nothing may follow it unencrypted.
            if !r.buffer().is_empty() {
                // Best effort: the session ends either way, and nothing was accepted.
                let _ = reply(
                    &mut w,
                    "503 5.5.1 nothing may follow STARTTLS before the handshake",
                )
                .await;
                return;
            }
            let stream = r.into_inner().unsplit(w);
            match tokio::time::timeout(Duration::from_secs(30), tls.accept(stream)).await {
                Ok(Ok(secure)) => session(email, Box::new(secure), shutdown, true).await,
                _ => tracing::debug!("A STARTTLS handshake failed"),
            }
        }
    })
}

/// The dialogue until QUIT, a closed connection, or STARTTLS (answered with the
/// acceptor to hand the connection to).
async fn dialogue<R, W>(
    email: &Email,
    mut r: &mut R,
    mut w: &mut W,
    shutdown: &CancellationToken,
    secured: bool,
) -> Option<tokio_rustls::TlsAcceptor>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let host = email.settings.hostname.clone();
    let max = email.settings.max_message_bytes;
    let timeout = Duration::from_secs(email.settings.session_timeout_secs.max(1));
    let offer_tls = !secured && email.tls.is_some();
    let mut env = Envelope::default();
    let mut errors = 0u32;
    loop {
        let line = tokio::select! {
            () = shutdown.cancelled() => {
                // Best effort: the session ends either way, and nothing was accepted.
                let _ = reply(&mut w, "421 4.3.2 shutting down; try again shortly").await;
                return None;
            }
            l = tokio::time::timeout(timeout, read_line(&mut r, MAX_COMMAND)) => l,
        };
        let line = match line {
            Err(_) => {
                // Best effort: the session ends either way, and nothing was accepted.
                let _ = reply(&mut w, "421 4.4.2 idle too long; closing").await;
                return None;
            }
            Ok(Err(_)) | Ok(Ok(Line::Closed)) => return None,
            Ok(Ok(Line::TooLong)) => {
                errors += 1;
                if reply(&mut w, "500 5.5.2 line too long").await.is_err() {
                    return None;
                }
                if errors >= MAX_ERRORS {
                    // Best effort: the session ends either way, and nothing was accepted.
                    let _ = reply(&mut w, "421 4.7.0 too many errors; closing").await;
                    return None;
                }
                continue;
            }
            Ok(Ok(Line::Text(t))) => t,
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let verb = verb.to_ascii_uppercase();
        let arg = arg.trim();
        let answer: String = match verb.as_str() {
            "EHLO" | "HELO" if arg.is_empty() => "501 5.5.4 say who you are: EHLO <domain>".into(),
            "EHLO" => {
                env = Envelope {
                    greeted: true,
                    ..Envelope::default()
                };
                format!("250-{host} greets {arg}\r\n250-SIZE {max}\r\n250-PIPELINING\r\n250-8BITMIME\r\n{}250 ENHANCEDSTATUSCODES", if offer_tls { "250-STARTTLS\r\n" } else { "" })
            }
            "HELO" => {
                env = Envelope {
                    greeted: true,
                    ..Envelope::default()
                };
                format!("250 {host}")
            }
            "MAIL" if !env.greeted => "503 5.5.1 say EHLO first".into(),
            "MAIL" if env.from.is_some() => {
                "503 5.5.1 a sender is already given; RSET first".into()
            }
            "MAIL" => match path(arg, "FROM:") {
                None => "501 5.5.4 syntax: MAIL FROM:<address>".into(),
                Some((_, params)) if size_param(&params).is_some_and(|s| s > max as u64) => {
                    format!("552 5.3.4 message too big: the limit is {max} bytes")
                }
                Some((addr, _)) => match email.core.refuses_every(ChannelKind::Email) {
                    // Past capacity, when every mail would be refused whatever its sender,
                    // it is refused before it is sent: the sending server keeps it and
                    // retries, and neither side spends the transfer and the reading.
                    Some(secs) => {
                        metrics::counter!("switchboard_smtp_messages_total", "outcome" => "busy")
                            .increment(1);
                        busy(secs)
                    }
                    None => {
                        env.from = Some(addr);
                        "250 2.1.0 sender ok".into()
                    }
                },
            },
            "RCPT" if env.from.is_none() => "503 5.5.1 say MAIL first".into(),
            "RCPT" => match path(arg, "TO:") {
                None => "501 5.5.4 syntax: RCPT TO:<address>".into(),
                Some((addr, _)) if !addr.contains('@') => "501 5.1.3 not an address".into(),
                Some(_) if env.to.len() >= email.settings.max_recipients => {
                    "452 4.5.3 too many recipients".into()
                }
                Some((addr, _)) if !email.accepts(&addr) => "550 5.1.1 no such mailbox here".into(),
                Some((addr, _)) => {
                    env.to.push(addr.to_ascii_lowercase());
                    "250 2.1.5 recipient ok".into()
                }
            },
            "DATA" if !arg.is_empty() => "501 5.5.4 DATA takes nothing after it".into(),
            "DATA" if env.to.is_empty() => "503 5.5.1 say RCPT first".into(),
            "DATA" => {
                if reply(&mut w, "354 go ahead; end with <CRLF>.<CRLF>")
                    .await
                    .is_err()
                {
                    return None;
                }
                let body = match tokio::time::timeout(timeout, read_data(&mut r, max)).await {
                    Err(_) | Ok(Err(_)) => return None,
                    Ok(Ok(None)) => return None,
                    Ok(Ok(Some(b))) => b,
                };
                let from = env.from.take();
                let to = std::mem::take(&mut env.to);
                match body {
                    Data::TooBig(n) => {
                        metrics::counter!("switchboard_smtp_messages_total", "outcome" => "too_big").increment(1);
                        format!("552 5.3.4 message too big: {n} bytes, the limit is {max}; nothing was kept")
                    }
                    Data::Message(raw) => match email.take(&raw, from.as_deref(), &to).await {
                        Ok(outcome) => {
                            metrics::counter!("switchboard_smtp_messages_total", "outcome" => "accepted").increment(1);
                            match outcome {
                                Outcome::New { interaction_id }
                                | Outcome::Threaded { interaction_id, .. } => {
                                    format!("250 2.0.0 accepted as {interaction_id}")
                                }
                                Outcome::Recorded(why) => {
                                    format!("250 2.0.0 recorded ({why}); not routed")
                                }
                                Outcome::Duplicate => {
                                    "250 2.0.0 accepted before; nothing changed".into()
                                }
                            }
                        }
                        // Counted by admission control; one log line per refusal would
                        // be thousands a second past capacity.
                        Err(Refused::Busy(secs)) => {
                            metrics::counter!("switchboard_smtp_messages_total", "outcome" => "busy").increment(1);
                            busy(secs)
                        }
                        Err(Refused::Temporary(why)) => {
                            metrics::counter!("switchboard_smtp_messages_total", "outcome" => "deferred").increment(1);
                            tracing::warn!(error = %why, "A message could not be taken now; the sender will retry");
                            "451 4.3.0 cannot take it now; nothing was kept, try again later".into()
                        }
                    },
                }
            }
            "RSET" => {
                env = Envelope {
                    greeted: env.greeted,
                    ..Envelope::default()
                };
                "250 2.0.0 reset".into()
            }
            "NOOP" => "250 2.0.0 ok".into(),
            "VRFY" => "252 2.5.0 cannot verify, but will take the message".into(),
            "HELP" => "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT".into(),
            "QUIT" => {
                // Best effort: the session ends either way, and nothing was accepted.
                let _ = reply(&mut w, "221 2.0.0 bye").await;
                return None;
            }
            "STARTTLS" if !arg.is_empty() => "501 5.5.4 STARTTLS takes nothing after it".into(),
            "STARTTLS" if secured => "503 5.5.1 TLS is already on".into(),
            "STARTTLS" => match &email.tls {
                None => "502 5.5.1 TLS is not configured here".into(),
                Some(tls) => {
                    if reply(&mut w, "220 2.0.0 ready to start TLS").await.is_err() {
                        return None;
                    }
                    return Some(tls.clone());
                }
            },
            _ => "500 5.5.1 unknown command".into(),
        };
        if answer.starts_with('5') {
            errors += 1;
        }
        if reply(&mut w, &answer).await.is_err() {
            return None;
        }
        if errors >= MAX_ERRORS {
            // Best effort: the session ends either way, and nothing was accepted.
            let _ = reply(&mut w, "421 4.7.0 too many errors; closing").await;
            return None;
        }
    }
}

enum Data {
    Message(Vec<u8>),
    TooBig(usize),
}

/// The answer to a message refused past capacity: nothing was kept, retry later.
fn busy(retry_after_secs: u32) -> String {
    format!(
        "451 4.3.2 too many messages at once; nothing was kept, try again in {retry_after_secs} s"
    )
}

/// Reads DATA to its end (a line holding only `.`), undoing dot-stuffing. Past `max`
/// bytes nothing more is kept, but the data is read to its end so the session can go on.
async fn read_data<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Data>> {
    let mut out = Vec::new();
    let mut size = 0usize;
    loop {
        let mut line = Vec::new();
        let n = (&mut *r).take(1 << 20).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let content: &[u8] = if line.first() == Some(&b'.') {
            &line[1..]
        } else {
            &line
        };
        size += content.len();
        if size <= max {
            out.extend_from_slice(content);
        }
    }
    Ok(Some(if size > max {
        Data::TooBig(size)
    } else {
        Data::Message(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sizes_are_read_from_mail_and_rcpt() {
        assert_eq!(
            path("FROM:<a@b.c> SIZE=100", "FROM:"),
            Some(("a@b.c".into(), "SIZE=100".into()))
        );
        assert_eq!(
            path("from: <>", "FROM:"),
            Some((String::new(), String::new()))
        );
        assert_eq!(
            path("TO:<@relay:u@d.e>", "TO:"),
            Some(("u@d.e".into(), String::new()))
        );
        assert_eq!(
            path("TO:u@d.e", "TO:"),
            Some(("u@d.e".into(), String::new()))
        );
        assert_eq!(path("TO:<unclosed", "TO:"), None);
        assert_eq!(path("FROM<a@b>", "FROM:"), None);
        assert_eq!(size_param("BODY=8BITMIME SIZE=2048"), Some(2048));
        assert_eq!(size_param("SIZE=lots"), None);
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_bounded() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\nline\r\n.\r\nNOOP\r\n";
        let mut r = BufReader::new(&input[..]);
        match read_data(&mut r, 1000).await.unwrap() {
            Some(Data::Message(m)) => assert_eq!(m, b"Subject: x\r\n\r\n.leading dot\r\nline\r\n"),
            _ => panic!("a message"),
        }
        let mut rest = String::new();
        r.read_line(&mut rest).await.unwrap();
        assert_eq!(rest, "NOOP\r\n", "the session goes on after the data");
        let mut r = BufReader::new(&input[..]);
        assert!(matches!(
            read_data(&mut r, 10).await.unwrap(),
            Some(Data::TooBig(_))
        ));
    }
}
