//! Service commitments, end to end, with the server's service clock moved forward by
//! the test (`service.test_clock`, `POST /api/test/clock`) instead of waiting: each test
//! runs its own server process, since the clock is the process's.

mod deadlines;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::helpers::{send, start_process_with, Backend, ServerProcess, TestApp, TOKEN};

/// The shipped rules without their service sections, with no wrap-up.
fn routing_rules() -> String {
    let shipped = include_str!("../../../config/routing.toml");
    let cut = shipped
        .find("# ----")
        .expect("the shipped rules have a service part");
    shipped[..cut].replace("wrap_up_secs = 30", "wrap_up_secs = 0")
}

/// Posts received by a test webhook: (headers, body).
pub type Posts = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A receiver of escalation webhooks on loopback; answers its URL.
async fn webhook() -> (String, Posts) {
    let posts: Posts = Arc::default();
    let kept = posts.clone();
    let app = axum::Router::new().route(
        "/escalations",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/escalations", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, posts)
}

/// A server process with the test clock, `service` as the rules' service sections, the
/// escalation webhook and a mail relay at `relay_port`.
pub struct Centre {
    /// The server.
    pub process: ServerProcess,
    /// A client for it.
    pub app: TestApp,
    /// The escalation webhook's posts.
    pub posts: Posts,
    /// Its SMTP listener.
    pub smtp: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

pub const WEBHOOK_SECRET: &str = "escalation-secret";
pub const PHONE_SECRET: &str = "service-phone-secret";

impl Centre {
    /// Starts it on a fresh database of `backend`.
    pub async fn start(backend: Backend, service: &str, relay_port: u16) -> Centre {
        let dir = tempfile::tempdir().unwrap();
        let db = backend.fresh_database(dir.path()).await;
        let rules = dir.path().join("routing.toml");
        std::fs::write(&rules, format!("{}\n{service}", routing_rules())).unwrap();
        let (url, posts) = webhook().await;
        let relay = format!("smtp://127.0.0.1:{relay_port}");
        let process = start_process_with(
            &db,
            dir.path(),
            &[
                ("SWITCHBOARD__SERVICE__TEST_CLOCK", "true"),
                ("SWITCHBOARD__SERVICE__ESCALATION_WEBHOOK_URL", url.as_str()),
                (
                    "SWITCHBOARD__SERVICE__ESCALATION_WEBHOOK_SECRET",
                    WEBHOOK_SECRET,
                ),
                ("SWITCHBOARD__ROUTING__RULES_FILE", rules.to_str().unwrap()),
                ("SWITCHBOARD__PHONE__SECRET", PHONE_SECRET),
                ("SWITCHBOARD__EMAIL__DOMAINS", "[\"shop.test\"]"),
                ("SWITCHBOARD__EMAIL__HOSTNAME", "switchboard.test"),
                ("SWITCHBOARD__EMAIL__FROM_ADDRESS", "support@shop.test"),
                ("SWITCHBOARD__EMAIL__RELAY_URL", relay.as_str()),
            ],
        );
        let smtp = process
            .until_logged("SMTP listening on ")
            .await
            .split("SMTP listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let app = crate::helpers::remote_app(&process.base);
        Centre {
            process,
            app,
            posts,
            smtp,
            _dir: dir,
        }
    }

    /// Moves the service clock forward by `secs`; answers the service time then (ms).
    pub async fn advance(&self, secs: u64) -> i64 {
        let (status, v) = send(
            reqwest::Client::new()
                .post(format!("{}/api/test/clock", self.process.base))
                .bearer_auth(TOKEN)
                .json(&json!({ "advance_secs": secs })),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        at(&v["now"])
    }

    /// The service time now (ms).
    pub async fn now(&self) -> i64 {
        self.advance(0).await
    }

    /// Moves the service clock forward to `at` (ms), which must not be behind it.
    pub async fn advance_to(&self, at: i64) {
        let now = self.now().await;
        assert!(at >= now, "the clock only moves forward");
        self.advance(((at - now) as u64).div_ceil(1000)).await;
    }
}

/// An RFC 3339 time as ms.
pub fn at(v: &Value) -> i64 {
    crate::helpers::at_ms(v)
}
