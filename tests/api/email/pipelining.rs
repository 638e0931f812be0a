//! SMTP pipelining (RFC 2920), as clients that use it send: commands written in groups,
//! each group in one write, the replies read afterwards and matched to the commands in
//! order. A group ends with DATA (or QUIT); the message itself starts the next group.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{app, interactions_of};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

/// An SMTP client that pipelines.
struct Pipeliner {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Pipeliner {
    async fn connect(app: &TestApp) -> (Pipeliner, String) {
        let stream = TcpStream::connect(app.smtp.unwrap()).await.unwrap();
        let (r, w) = stream.into_split();
        let mut client = Pipeliner {
            r: BufReader::new(r),
            w,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// One reply, with its continuation lines.
    async fn reply(&mut self) -> String {
        let mut full = String::new();
        loop {
            let mut l = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut l))
                .await
                .expect("a reply within 10 s")
                .unwrap();
            assert!(n > 0, "the server closed the session after: {full:?}");
            full.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return full.trim_end().to_string();
            }
        }
    }

    /// Writes `commands` in one write, then reads one reply for each, in order.
    async fn group(&mut self, commands: &[&str]) -> Vec<String> {
        let text: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
        self.w.write_all(text.as_bytes()).await.unwrap();
        let mut replies = Vec::new();
        for _ in commands {
            replies.push(self.reply().await);
        }
        replies
    }
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|r| &r[..3]).collect()
}

/// A message to pipeline after a 354: its text and the end of data, as one "command".
fn message(from: &str, subject: &str, body: &str) -> String {
    format!("From: {from}\r\nTo: support@shop.test\r\nSubject: {subject}\r\n\r\n{body}\r\n.")
}

async fn pipelined_commands_are_answered_in_order_and_every_message_is_kept(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let (mut c, greeting) = Pipeliner::connect(&app).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    let ehlo = c.group(&["EHLO client.test"]).await;
    assert!(ehlo[0].contains("250-PIPELINING"), "{ehlo:?}");

    // The envelope in one write: a recipient refused in the middle costs the others
    // nothing.
    let r = c
        .group(&[
            "MAIL FROM:<ines@example.com>",
            "RCPT TO:<support@shop.test>",
            "RCPT TO:<someone@elsewhere.test>",
            "RCPT TO:<sales@shop.test>",
            "DATA",
        ])
        .await;
    assert_eq!(codes(&r), ["250", "250", "550", "250", "354"], "{r:?}");

    // The message, its end, and the next transaction's envelope in one write.
    let first = message("ines@example.com", "First", "The first message.");
    let r = c
        .group(&[
            &first,
            "MAIL FROM:<ines@example.com>",
            "RCPT TO:<support@shop.test>",
            "DATA",
        ])
        .await;
    assert_eq!(codes(&r), ["250", "250", "250", "354"], "{r:?}");
    assert!(r[0].contains("accepted as"), "{r:?}");

    // A message with a line that starts with a dot, then RSET and an envelope whose only
    // recipient is refused: DATA is refused too, and the client sends no message.
    let second = message(
        "ines@example.com",
        "Second",
        "..a line that starts with a dot",
    );
    let r = c
        .group(&[
            &second,
            "RSET",
            "MAIL FROM:<ines@example.com>",
            "RCPT TO:<nobody@elsewhere.test>",
            "DATA",
        ])
        .await;
    assert_eq!(codes(&r), ["250", "250", "250", "550", "503"], "{r:?}");

    // Over the size limit declared in MAIL: refused at once, the rest of the group
    // answered as a transaction that has no sender.
    let r = c
        .group(&[
            "RSET",
            "MAIL FROM:<ines@example.com> SIZE=999999999",
            "RCPT TO:<support@shop.test>",
            "NOOP",
            "QUIT",
        ])
        .await;
    assert_eq!(codes(&r), ["250", "552", "503", "250", "221"], "{r:?}");

    // Each message became its own interaction, whole, and nothing else did.
    let mut taken = interactions_of(&app, "ines@example.com").await;
    taken.reverse();
    let got: Vec<(&str, &str)> = taken
        .iter()
        .map(|i| (i["subject"].as_str().unwrap(), i["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("First", "The first message."),
            ("Second", ".a line that starts with a dot")
        ]
    );
    app.stop().await;
}

both_backends!(pipelined_commands_are_answered_in_order_and_every_message_is_kept);

/// swaks, a real SMTP client, pipelines the envelope when the server offers it; its
/// transcript shows the commands sent before any reply was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs swaks: bash .ci/run installs it"]
async fn swaks_pipelines_its_envelope_and_the_message_is_taken() {
    let (app, _dir) = app(Backend::Sqlite, 1, |_| {}).await;
    let port = app.smtp.unwrap().port().to_string();
    let out = std::process::Command::new("swaks")
        .args(["--pipeline", "--server", "127.0.0.1", "--port", &port])
        .args(["--from", "pia@example.com"])
        .args(["--to", "support@shop.test,sales@shop.test"])
        .args(["--header", "Subject: Pipelined", "--body", "Sent in groups"])
        .output()
        .expect("swaks runs (bash .ci/run installs it)");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    let lines: Vec<&str> = transcript.lines().collect();
    let mail = lines
        .iter()
        .position(|l| l.starts_with(" -> MAIL FROM:"))
        .unwrap_or_else(|| panic!("{transcript}"));
    assert_eq!(
        lines[mail..mail + 8]
            .iter()
            .map(|l| &l[..8.min(l.len())])
            .collect::<Vec<_>>(),
        [
            " -> MAIL", " -> RCPT", " -> RCPT", " -> DATA", "<-  250 ", "<-  250 ", "<-  250 ",
            "<-  354 "
        ],
        "the envelope went in one group:\n{transcript}"
    );
    assert!(
        transcript.contains("<-  250 2.0.0 accepted as"),
        "{transcript}"
    );
    let taken = interactions_of(&app, "pia@example.com").await;
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0]["subject"].as_str(), taken[0]["body"].as_str()),
        (Some("Pipelined"), Some("Sent in groups"))
    );
    app.stop().await;
}
