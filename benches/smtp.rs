//! Mail accepted per second over SMTP: 4 KB multipart messages (a text part and a small
//! attachment) sent by several concurrent sessions, each sending message after message
//! over its connection (MAIL, RCPT, DATA, as a relaying mail server does), every `250`
//! after the message is committed. Beside it, in the same run: how fast mail-parser
//! alone reads the same message on one core, and the store's raw durable insert rate
//! (one interaction row per transaction).
//!
//!     cargo bench --bench smtp                       # 10 s, 8 sessions
//!     BENCH_SECS=30 BENCH_SESSIONS=32 cargo bench --bench smtp
//!
//! The rate counts the messages answered `250`; every message refused or unanswered is
//! counted, is in the percentiles as a failure, and makes the run one that did not keep
//! up.

#[path = "common/latency.rs"]
mod latency;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/server.rs"]
mod server;

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use latency::Latencies;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A 4 KB multipart message from one of 5,000 customers.
fn message(session: usize, n: u64) -> String {
    let customer = (session as u64 * 7919 + n) % 5000;
    let text = "Hello, the order I placed three weeks ago has still not arrived, and the tracking page has not changed for ten days. Could you find out where it is, and send a replacement if it is lost? ".repeat(10);
    let attachment = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\r\n".repeat(14);
    format!(
        "From: Customer {customer} <customer{customer}@example.com>\r\nTo: support@shop.test\r\nSubject: Order {n} has not arrived\r\nMessage-ID: <bench-{session}-{n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--b\r\nContent-Type: image/png; name=\"photo.png\"\r\nContent-Disposition: attachment; filename=\"photo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{attachment}--b--\r\n"
    )
}

fn main() {
    let secs = env("BENCH_SECS", 10);
    let sessions = env("BENCH_SESSIONS", 8) as usize;
    let duration = Duration::from_secs(secs);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Baseline: mail-parser alone, on this thread.
    let sample = message(0, 0);
    let limits = switchboard_email::parse::Limits {
        max_headers: 1000,
        hostname: "bench.test".into(),
        own_addresses: Vec::new(),
    };
    let start = Instant::now();
    let mut parsed = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        black_box(switchboard_email::parse::read(sample.as_bytes(), &limits).unwrap());
        parsed += 1;
    }
    let parse_rate = parsed as f64 / start.elapsed().as_secs_f64();
    // Baseline: raw durable inserts.
    let raw_rate = server_rt.block_on(raw::raw_inserts(duration, 1, false));

    let server = server::start("bench-token", |_, _| {});
    let smtp = server.smtp.unwrap();
    let (lat, errors, elapsed) = server::load(async move {
        run(smtp, sessions, Duration::from_secs(2), "warm").await;
        run(smtp, sessions, duration, "run").await
    });
    server.stop();
    let rate = lat.len() as f64 / elapsed.as_secs_f64();
    let accepted = lat.len();
    let lat = Latencies::new(lat.iter().map(|us| *us as f64 / 1000.0).collect(), errors);
    println!(
        "# SMTP intake benchmark ({secs} s, {sessions} sessions, {} byte messages)\n",
        sample.len()
    );
    println!(
        "| path | messages/s | p50 | p99 | ratio to mail-parser alone | ratio to raw 1 row/txn |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| mail-parser alone, one core | {parse_rate:.0} | | | 1.000 | {:.2} |",
        parse_rate / raw_rate
    );
    println!(
        "| raw SQLite INSERT, 1 row per transaction | {raw_rate:.0} | | | {:.3} | 1.00 |",
        raw_rate / parse_rate
    );
    println!(
        "| **SMTP, durable, {sessions} sessions** | **{rate:.0}** | {} | {} | {:.3} | {:.2} |",
        lat.show(0.5, "failed"),
        lat.show(0.99, "failed"),
        rate / parse_rate,
        rate / raw_rate
    );
    println!(
        "\n{} messages sent: {accepted} accepted, {errors} failed (in the percentiles as failures; the rate counts the accepted).",
        accepted + errors
    );
    if errors == 0 {
        println!("Kept up: every message sent was accepted.");
    } else {
        println!(
            "Did not keep up: {errors} of {} messages failed.",
            accepted + errors
        );
    }
}

async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut full = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
            return full;
        }
        full.push_str(&l);
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return full;
        }
    }
}

/// `sessions` connections sending messages for `duration`: latencies (µs) from MAIL to
/// the `250` after DATA, errors, elapsed.
async fn run(
    addr: std::net::SocketAddr,
    sessions: usize,
    duration: Duration,
    phase: &'static str,
) -> (Vec<u32>, usize, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            read_reply(&mut r).await;
            w.write_all(b"EHLO bench.test\r\n").await.unwrap();
            read_reply(&mut r).await;
            let (mut lat, mut errors, mut n) = (Vec::new(), 0usize, 0u64);
            while start.elapsed() < duration {
                n += 1;
                let body = message(s + if phase == "warm" { 1000 } else { 0 }, n);
                let t = Instant::now();
                w.write_all(b"MAIL FROM:<sender@example.com>\r\n")
                    .await
                    .unwrap();
                let a = read_reply(&mut r).await;
                w.write_all(b"RCPT TO:<support@shop.test>\r\n")
                    .await
                    .unwrap();
                let b = read_reply(&mut r).await;
                w.write_all(b"DATA\r\n").await.unwrap();
                let c = read_reply(&mut r).await;
                w.write_all(format!("{body}.\r\n").as_bytes())
                    .await
                    .unwrap();
                let d = read_reply(&mut r).await;
                if a.starts_with("250")
                    && b.starts_with("250")
                    && c.starts_with("354")
                    && d.starts_with("250")
                {
                    lat.push(t.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            let _ = w.write_all(b"QUIT\r\n").await;
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    (lat, errors, start.elapsed())
}
