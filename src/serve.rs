//! Serving HTTP connections, with bounds an open port on the internet needs. Every
//! connection must send a request's headers within `header_read_timeout` — from its
//! accept, and again while it idles between requests — or it is closed, so half-open
//! connections that send part of their headers and then nothing cannot pile up. The
//! connections open at once are capped below the process's file limit; at the cap, the
//! connection idle longest (waiting for headers, or between requests) is closed to make
//! room, and when none is idle the new one is refused with a clear 503. Connections at
//! work — a request in flight, a websocket — are never closed for room. So `/healthz`,
//! agents and customers are served however many idle connections an attacker opens.
//!
//! Each request carries the peer's address ([`axum::extract::ConnectInfo`]) and the
//! client's ([`ClientAddr`]: behind a trusted proxy, the address it forwarded).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_contract::ClientAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The bounds of the HTTP server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a connection may take to send a request's headers, and idle between
    /// requests.
    pub header_read_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[Network]>,
    /// The cluster's secret: another node relaying a client presents it, and its
    /// `X-Forwarded-For` is believed too.
    pub cluster_secret: Option<Arc<str>>,
}

/// Serves `app` on `listener` until `stop`, then stops accepting and waits for the
/// requests in flight (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let tracker = Arc::new(Tracker {
        max: limits.max_connections.max(1),
        state: Mutex::default(),
    });
    // Every connection's task, so a shutdown can wait for the requests in flight.
    let tasks = tokio_util::task::TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or another passing error): make room by
                    // closing the connection idle longest, and try again shortly.
                    if tracker.evict_idlest() {
                        metrics::counter!("switchboard_http_connections_total", "event" => "evicted").increment(1);
                    }
                    tracing::warn!(error = %e, "Could not accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Some(conn) = tracker.admit() else {
            metrics::counter!("switchboard_http_connections_total", "event" => "refused")
                .increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        metrics::counter!("switchboard_http_connections_total", "event" => "accepted").increment(1);
        metrics::gauge!("switchboard_http_connections").set(tracker.open() as f64);
        let evicted = conn.evict.clone();
        let io = TokioIo::new(Tracked {
            stream,
            _slot: Slot {
                tracker: tracker.clone(),
                conn: conn.clone(),
            },
        });
        let service = hyper::service::service_fn({
            let (app, tracker, trusted) =
                (app.clone(), tracker.clone(), limits.trusted_proxies.clone());
            let secret = limits.cluster_secret.clone();
            move |mut req: hyper::Request<Incoming>| {
                let (app, tracker, conn) = (app.clone(), tracker.clone(), conn.clone());
                let from_node = secret.as_deref().is_some_and(|s| {
                    req.headers()
                        .get(crate::cluster::rpc::SECRET_HEADER)
                        .is_some_and(|v| {
                            bool::from(subtle::ConstantTimeEq::ct_eq(v.as_bytes(), s.as_bytes()))
                        })
                });
                let client = if from_node {
                    client_addr(&req, peer.ip(), &[Network::host(peer.ip())])
                } else {
                    client_addr(&req, peer.ip(), &trusted)
                };
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(client);
                tracker.busy(&conn);
                async move {
                    let resp = app
                        .oneshot(req.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|never: Infallible| match never {});
                    // A websocket is at work for as long as it lives; any other
                    // connection idles once its answer has been sent whole.
                    if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                        return Ok::<_, Infallible>(resp);
                    }
                    let sent = IdleWhenSent { tracker, conn };
                    Ok(resp.map(|body| axum::body::Body::new(Answer { body, _sent: sent })))
                }
            }
        });
        let connection = builder.serve_connection(io, service).with_upgrades();
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        // A client that went away or took too long: nothing to tell anyone.
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "An HTTP connection ended in error");
                        }
                        return;
                    }
                    () = evicted.cancelled() => {
                        metrics::counter!("switchboard_http_connections_total", "event" => "evicted").increment(1);
                        return;
                    }
                    // Shutting down: the request in flight is finished, no other is read.
                    () = stop.cancelled(), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Refuses a connection over the cap with a 503 the client can read, then closes it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":"unavailable","message":"the server has as many connections open as it takes; retry shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    // Best effort, bounded: a client that does not read its refusal is dropped anyway.
    let written = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::debug!("A refused HTTP connection did not take its 503");
    }
}

/// Addresses of proxies: one address, or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// One address.
    pub fn host(addr: IpAddr) -> Network {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Network { addr, prefix }
    }

    /// Whether `a` is in it.
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or network such as 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': a network's prefix is 0 to {max}"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }
}

/// The client a request came from: the peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not one of them.
pub fn client_addr<B>(req: &hyper::Request<B>, peer: IpAddr, trusted: &[Network]) -> ClientAddr {
    let trusts = |a: &IpAddr| trusted.iter().any(|n| n.contains(*a));
    if !trusts(&peer) {
        return ClientAddr(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let client = forwarded
        .iter()
        .rev()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|a| !trusts(a));
    ClientAddr(client.unwrap_or(peer))
}

/// The connections open, and those idle (closable for room) in the order they became
/// idle.
struct Tracker {
    max: usize,
    state: Mutex<TrackerState>,
}

#[derive(Default)]
struct TrackerState {
    open: usize,
    /// Idle connections by when they became idle (a counter: the smallest is idlest).
    idle: BTreeMap<u64, Arc<Conn>>,
    next: u64,
}

/// One connection's place in the tracker.
struct Conn {
    /// Its key in the idle map, while it is idle.
    idle_key: Mutex<Option<u64>>,
    /// Closes it.
    evict: CancellationToken,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) -> usize {
        self.lock().open
    }

    /// A place for a new connection (idle until its first request's headers are in),
    /// closing the idlest one at the cap; `None` when every connection is at work.
    fn admit(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let mut s = self.lock();
        if s.open >= self.max && !Self::evict_in(&mut s) {
            return None;
        }
        s.open += 1;
        let conn = Arc::new(Conn {
            idle_key: Mutex::new(None),
            evict: CancellationToken::new(),
        });
        Self::idle_in(&mut s, &conn);
        Some(conn)
    }

    /// Closes the connection idle longest; false when none is idle.
    fn evict_idlest(&self) -> bool {
        Self::evict_in(&mut self.lock())
    }

    fn evict_in(s: &mut TrackerState) -> bool {
        let Some((_, conn)) = s.idle.pop_first() else {
            return false;
        };
        *conn.idle_key.lock().unwrap_or_else(|p| p.into_inner()) = None;
        conn.evict.cancel();
        true
    }

    fn idle(&self, conn: &Arc<Conn>) {
        Self::idle_in(&mut self.lock(), conn);
    }

    fn idle_in(s: &mut TrackerState, conn: &Arc<Conn>) {
        if conn.evict.is_cancelled() {
            return;
        }
        let key = s.next;
        s.next += 1;
        let mut idle_key = conn.idle_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = idle_key.replace(key) {
            s.idle.remove(&old);
        }
        s.idle.insert(key, conn.clone());
    }

    fn busy(&self, conn: &Conn) {
        let mut s = self.lock();
        if let Some(key) = conn
            .idle_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            s.idle.remove(&key);
        }
    }

    fn close(&self, conn: &Conn) {
        // Closed: never idle again (an answer dropped after its socket must not put it
        // back among the idle).
        conn.evict.cancel();
        self.busy(conn);
        let mut s = self.lock();
        s.open = s.open.saturating_sub(1);
        metrics::gauge!("switchboard_http_connections").set(s.open as f64);
    }
}

/// An answer's body, which marks its connection idle once it is sent (or dropped).
struct Answer {
    body: axum::body::Body,
    _sent: IdleWhenSent,
}

impl http_body::Body for Answer {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

struct IdleWhenSent {
    tracker: Arc<Tracker>,
    conn: Arc<Conn>,
}

impl Drop for IdleWhenSent {
    fn drop(&mut self) {
        self.tracker.idle(&self.conn);
    }
}

/// A connection's place, given back when its socket closes (after a websocket upgrade,
/// the socket lives in the websocket, and so does this).
struct Slot {
    tracker: Arc<Tracker>,
    conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.close(&self.conn);
    }
}

/// A socket that holds its connection's place.
struct Tracked {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The most connections to allow: the file limit less what the store, the SMTP listener
/// and files need.
pub fn connection_cap(configured: usize, store_connections: u32) -> usize {
    if configured > 0 {
        return configured;
    }
    let reserve = 128 + 2 * store_connections as usize;
    file_limit().saturating_sub(reserve).max(64)
}

/// Raises the process's open-file limit to its hard limit (systemd's `LimitNOFILE`
/// sets that), and answers the limit in force.
pub fn file_limit() -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return 1024;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(xff: &[&str]) -> hyper::Request<()> {
        let mut b = hyper::Request::builder();
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let trusted = [Network::host(proxy)];
        // Not a proxy: its X-Forwarded-For is the client's own word, not believed.
        assert_eq!(
            client_addr(&req(&["1.2.3.4"]), peer, &trusted),
            ClientAddr(peer)
        );
        // A trusted proxy: the nearest address it did not add itself.
        assert_eq!(
            client_addr(&req(&["1.2.3.4, 198.51.100.7"]), proxy, &trusted).0,
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_addr(&req(&["198.51.100.7", "10.0.0.1"]), proxy, &trusted).0,
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_addr(&req(&["junk"]), proxy, &trusted),
            ClientAddr(proxy)
        );
    }

    #[test]
    fn proxies_are_addresses_or_networks() {
        let n: Network = "172.16.0.0/12".parse().unwrap();
        assert!(n.contains("172.20.1.9".parse().unwrap()));
        assert!(!n.contains("172.32.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let one: Network = "10.0.0.1".parse().unwrap();
        assert!(
            one.contains("10.0.0.1".parse().unwrap()) && !one.contains("10.0.0.2".parse().unwrap())
        );
        assert!("fd00::/8"
            .parse::<Network>()
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("proxy".parse::<Network>().is_err());
    }

    #[test]
    fn at_the_cap_the_idlest_connection_makes_room_and_busy_ones_never_do() {
        let t = Arc::new(Tracker {
            max: 2,
            state: Mutex::default(),
        });
        let a = t.admit().unwrap();
        let b = t.admit().unwrap();
        t.busy(&b);
        let c = t.admit().unwrap();
        assert!(a.evict.is_cancelled(), "the idlest went");
        assert!(!b.evict.is_cancelled());
        t.busy(&c);
        assert!(t.admit().is_none(), "every connection at work: refused");
        t.idle(&b);
        assert!(t.admit().is_some());
        assert!(b.evict.is_cancelled());
    }
}
