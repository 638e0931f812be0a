//! A test agent desktop: a real websocket client speaking the agent protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

/// One agent's desktop.
pub struct Desktop {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The session id from `welcome`.
    pub session: String,
    /// The last sequenced event seen.
    pub last_seq: u64,
    /// The `welcome` frame.
    pub welcome: Value,
}

/// Creates an agent over the admin API; answers (id, token).
pub async fn create_agent(app: &TestApp, body: Value) -> (String, String) {
    let (status, a) = app.post("/api/agents", &body).await;
    assert_eq!(status, 201, "{a}");
    (
        a["id"].as_str().unwrap().to_string(),
        a["token"].as_str().unwrap().to_string(),
    )
}

impl Desktop {
    /// Connects and logs in; `resume` continues an earlier session.
    pub async fn login(base: &str, token: &str, resume: Option<(&str, u64)>) -> Desktop {
        let url = format!("{}/agent/ws", base.replacen("http://", "ws://", 1));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        let mut d = Desktop {
            ws,
            session: String::new(),
            last_seq: 0,
            welcome: Value::Null,
        };
        let mut login = json!({ "type": "login", "token": token });
        if let Some((session, last_seq)) = resume {
            login["resume"] = json!({ "session": session, "last_seq": last_seq });
        }
        d.send(login).await;
        let welcome = d.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        d.session = welcome["session"].as_str().unwrap().to_string();
        d.last_seq = welcome["seq"].as_u64().unwrap();
        d.welcome = welcome;
        d
    }

    /// Connects and logs in, answering `None` (rather than failing the test) when the
    /// server cannot be reached or closes instead of welcoming.
    pub async fn try_login(
        base: &str,
        token: &str,
        resume: Option<(&str, u64)>,
    ) -> Option<Desktop> {
        let url = format!("{}/agent/ws", base.replacen("http://", "ws://", 1));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        let mut d = Desktop {
            ws,
            session: String::new(),
            last_seq: 0,
            welcome: Value::Null,
        };
        let mut login = json!({ "type": "login", "token": token });
        if let Some((session, last_seq)) = resume {
            login["resume"] =
                json!({ "session": session, "last_seq": last_seq, "presence": "available" });
        }
        d.ws.send(Message::Text(login.to_string().into()))
            .await
            .ok()?;
        let welcome = d.next_within(Duration::from_secs(5)).await?;
        if welcome["type"] != "welcome" {
            return None;
        }
        d.session = welcome["session"].as_str()?.to_string();
        d.last_seq = welcome["seq"].as_u64()?;
        d.welcome = welcome;
        Some(d)
    }

    /// Logs in and says it is available.
    pub async fn available(base: &str, token: &str) -> Desktop {
        let mut d = Desktop::login(base, token, None).await;
        d.send(json!({ "type": "presence", "status": "available" }))
            .await;
        let p = d.expect("presence").await;
        assert_eq!(p["status"], "available");
        d
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends `text` up to `n` times and reads nothing, as a desktop that has stopped
    /// reading its frames; answers how many were sent when the server cut the connection,
    /// or `None` when it never did (or stopped reading without closing). A send may wait
    /// 30 s: longer than the server gives a desktop to take a frame (10 s).
    pub async fn flood_without_reading(&mut self, text: &str, n: usize) -> Option<usize> {
        let wait = Duration::from_secs(30);
        for i in 0..n {
            let frame = Message::Text(text.to_string().into());
            let sent = if i % 1000 == 999 {
                tokio::time::timeout(wait, self.ws.send(frame)).await
            } else {
                tokio::time::timeout(wait, self.ws.feed(frame)).await
            };
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Some(i),
                Err(_) => return None,
            }
        }
        None
    }

    /// The next frame as JSON (fails the test after 10 s or on close).
    pub async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a frame within 10 s")
    }

    /// The next frame within `wait`, or `None`. A close frame answers `{"type":"closed"}`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON frames");
                    // `welcome` states the session's position; every other frame with a
                    // `seq` is an event, which must follow the last one seen.
                    if let (Some(seq), false) = (v["seq"].as_u64(), v["type"] == "welcome") {
                        assert_eq!(
                            seq,
                            self.last_seq + 1,
                            "events arrive in order without gaps: {v}"
                        );
                        self.last_seq = seq;
                    }
                    return Some(v);
                }
                Some(Ok(Message::Close(c))) => {
                    let (code, reason) = c
                        .map(|c| (u16::from(c.code), c.reason.to_string()))
                        .unwrap_or((0, String::new()));
                    return Some(json!({ "type": "closed", "code": code, "reason": reason }));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(json!({ "type": "closed", "code": 0 })),
            }
        }
    }

    /// The text frames that come until none has for `wait`, as JSON, in order, without
    /// checking that their numbers follow the last seen (a resume that is not complete
    /// starts past a gap); the last number seen is the last of them.
    pub async fn frames_until_quiet(&mut self, wait: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(wait, self.ws.next()).await {
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).expect("JSON frames");
                if let (Some(seq), false) = (v["seq"].as_u64(), v["type"] == "welcome") {
                    self.last_seq = seq;
                }
                frames.push(v);
            }
        }
        frames
    }

    /// Skips frames until one of `kind`; fails the test if none comes.
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "closed", "closed while waiting for {kind}");
        }
    }

    /// Waits for an offer and accepts it; answers the interaction id.
    pub async fn take_offer(&mut self) -> String {
        let offer = self.expect("offer").await;
        self.accept(&offer).await
    }

    /// Accepts `offer` and waits for the assignment; answers the interaction id.
    pub async fn accept(&mut self, offer: &Value) -> String {
        let id = offer["interaction"]["id"].as_str().unwrap().to_string();
        self.send(json!({ "type": "accept", "offer_id": offer["offer_id"] }))
            .await;
        let assigned = self.expect("assigned").await;
        assert_eq!(assigned["interaction_id"], id.as_str());
        id
    }

    /// Drops the connection without a goodbye, as a crashed browser does.
    pub async fn vanish(self) {
        drop(self.ws);
    }
}
