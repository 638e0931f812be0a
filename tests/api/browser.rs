//! The chat widget in a real browser: Debian's Chromium, headless, driven over the
//! DevTools protocol from this test. The demo page loads, the visitor opens the chat and
//! sends a message, an agent (a real agent websocket) answers, and the answer appears on
//! the page; after a reload the widget resumes the same chat and shows what follows.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::agent_client::{create_agent, Desktop};
use crate::helpers::{spawn_app, Backend};

/// The browser: Chromium where Debian puts it. The test that needs it is ignored unless
/// asked for; asked for without it, it fails.
fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (bash .ci/run installs it)")
}

struct Browser {
    child: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A page driven over the DevTools protocol.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(Message::Text(
                json!({ "id": id, "method": method, "params": params })
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("the browser answers")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    return v;
                }
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        r["result"]["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    async fn until(&mut self, expression: &str, what: &str) {
        for _ in 0..150 {
            if self.eval(expression).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self
            .eval("document.body ? document.body.innerText : ''")
            .await;
        panic!("{what}: not within 15 s; the page shows: {log}");
    }
}

async fn open(binary: &str, dir: &Path, url: &str) -> (Browser, Page) {
    let child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg("--remote-debugging-port=0")
        .arg(format!("--user-data-dir={}", dir.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Chromium starts");
    let browser = Browser { child };
    let port_file = dir.join("DevToolsActivePort");
    let mut port = None;
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            if let Some(p) = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u16>().ok())
            {
                port = Some(p);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = port.expect("Chromium opens its DevTools port");
    let target: Value = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/json/new?{url}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_url = target["webSocketDebuggerUrl"]
        .as_str()
        .expect("a page to drive")
        .to_string();
    let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    (browser, Page { ws, next_id: 0 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: bash .ci/run installs it"]
async fn the_widget_chats_in_a_real_browser() {
    let binary = chromium();
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = create_agent(&app, json!({ "name": "Lin Wu" })).await;
    let mut lin = Desktop::available(&app.base, &token).await;
    let profile = tempfile::tempdir().unwrap();
    let (_browser, mut page) =
        open(binary, profile.path(), &format!("{}/chat/demo", app.base)).await;

    page.until(
        "!!document.querySelector('#sb-toggle')",
        "the widget appears",
    )
    .await;
    page.eval("document.querySelector('#sb-toggle').click()")
        .await;
    page.until(
        "!!localStorage.getItem('switchboard.chat')",
        "the chat starts",
    )
    .await;
    page.eval("document.querySelector('#sb-text').value = 'Hello from the browser'; document.querySelector('#sb-form').requestSubmit(); true").await;

    let interaction = lin.take_offer().await;
    let said = lin.expect("message").await;
    assert_eq!(said["text"], "Hello from the browser");
    lin.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Hi, Lin here. How can I help?" })).await;
    page.until(
        "document.querySelector('#sb-log').innerText.includes('Hi, Lin here. How can I help?')",
        "the agent's answer shows",
    )
    .await;
    page.until(
        "document.querySelector('#sb-log').innerText.includes('Lin joined the chat')",
        "the agent joining shows",
    )
    .await;

    // The page reloads: the widget resumes the same chat and receives what follows.
    page.eval("location.reload(); true").await;
    page.until(
        "document.readyState === 'complete' && !!document.querySelector('#sb-panel.open')",
        "the chat reopens after the reload",
    )
    .await;
    lin.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Still there after the reload?" })).await;
    page.until(
        "document.querySelector('#sb-log').innerText.includes('Still there after the reload?')",
        "a message after the reload shows",
    )
    .await;
    page.eval("document.querySelector('#sb-text').value = 'Yes!'; document.querySelector('#sb-form').requestSubmit(); true").await;
    let said = lin.expect("message").await;
    assert_eq!(said["text"], "Yes!");
    assert_eq!(
        said["interaction_id"],
        interaction.as_str(),
        "the same chat"
    );
    app.stop().await;
}
