//! The bare stack the load is compared with: the same libraries as Switchboard (tokio,
//! axum and its websockets, sqlx on SQLite in WAL mode with `synchronous=FULL`), doing
//! only the least a durable channel must, with the same group commit Switchboard uses:
//! each contact is one row, handed to one writer task that commits whatever has gathered
//! while the last commit was on disk in one transaction (one multi-row INSERT), and each
//! answer comes after its commit.
//! - A webhook reads the JSON body, inserts its row and answers.
//! - An SMTP listener takes a message, inserts its row and answers 250.
//! - A chat websocket inserts a row for a chat's `start` and answers `started`, and one
//!   for each `message` and answers its `ack`.
//!
//! No customers, no tiers, no history, no routing: what the machine does at best on the
//! same paths. The load generator serves it from its own process (`--serve-bare`); the
//! chat benchmark (`benches/chat.rs`) uses it in process.

use std::path::Path;
use std::str::FromStr;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// The most rows one commit takes (two parameters each, far below SQLite's limit).
const MAX_GROUP: usize = 512;

/// A row on its way to the writer, and who waits for its commit.
struct Row {
    channel: &'static str,
    body: String,
    committed: oneshot::Sender<bool>,
}

/// The bare store: a handle on its one writer task.
#[derive(Clone)]
pub struct Store(mpsc::Sender<Row>);

impl Store {
    /// Opens `dir/bare.db` (created, with its one table) and starts the writer.
    pub async fn open(dir: &Path) -> Store {
        let options =
            SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("bare.db").display()))
                .unwrap()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("the bare store opens");
        sqlx::query(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, body TEXT NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(writer(conn, rx));
        Store(tx)
    }

    /// Inserts one row; answers whether it is committed.
    pub async fn insert(&self, channel: &'static str, body: String) -> bool {
        let (committed, answer) = oneshot::channel();
        let row = Row {
            channel,
            body,
            committed,
        };
        self.0.send(row).await.is_ok() && answer.await.unwrap_or(false)
    }
}

/// The one writer: takes every row that has gathered (at least one), commits them in
/// one transaction, answers each, and goes again. It ends when every handle is dropped.
async fn writer(mut conn: SqliteConnection, mut rows: mpsc::Receiver<Row>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rows.recv_many(&mut group, MAX_GROUP).await > 0 {
        let ok = commit(&mut conn, &group).await;
        for row in group.drain(..) {
            // A caller that went away no longer needs its answer.
            let _ = row.committed.send(ok);
        }
    }
}

async fn commit(conn: &mut SqliteConnection, group: &[Row]) -> bool {
    let Ok(mut tx) = conn.begin().await else {
        return false;
    };
    let mut insert = sqlx::QueryBuilder::new("INSERT INTO contacts (channel, body) ");
    insert.push_values(group, |mut b, row| {
        b.push_bind(row.channel).push_bind(row.body.as_str());
    });
    insert.build().execute(&mut *tx).await.is_ok() && tx.commit().await.is_ok()
}

/// The bare HTTP endpoints: the phone webhook and the chat websocket, on `store`.
pub fn app(store: Store) -> Router {
    Router::new()
        .route("/channels/phone/events", post(webhook))
        .route("/channels/chat/ws", get(chat))
        .with_state(store)
}

/// Serves the bare endpoints on `BARE_HTTP` and `BARE_SMTP`, keeping rows in `dir`.
pub async fn serve(dir: &str) {
    let store = Store::open(Path::new(dir)).await;
    let http = std::env::var("BARE_HTTP").expect("BARE_HTTP");
    let smtp = std::env::var("BARE_SMTP").expect("BARE_SMTP");
    let web = tokio::net::TcpListener::bind(&http).await.unwrap();
    let mail = tokio::net::TcpListener::bind(&smtp).await.unwrap();
    println!("The bare stack listening on http://{http}");
    let sessions = store.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = mail.accept().await {
            tokio::spawn(smtp_session(sock, sessions.clone()));
        }
    });
    axum::serve(web, app(store)).await.unwrap();
}

async fn webhook(State(store): State<Store>, body: String) -> (StatusCode, Json<Value>) {
    let Ok(event) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "not JSON" })),
        );
    };
    if store.insert("phone", event.to_string()).await {
        (StatusCode::OK, Json(json!({ "recorded": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "recorded": false })),
        )
    }
}

async fn chat(State(store): State<Store>, ws: WebSocketUpgrade) -> axum::response::Response {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let mut seq = 0u64;
        while let Some(Ok(frame)) = socket.recv().await {
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            let kind = v["type"].as_str().unwrap_or_default();
            if kind != "start" && kind != "message" {
                continue;
            }
            let answer = if !store.insert("chat", t.to_string()).await {
                json!({ "type": "error", "code": "unavailable" })
            } else if kind == "start" {
                let visitor = v["visitor_id"].as_str().unwrap_or("?");
                json!({ "type": "started", "chat_id": format!("bare-{visitor}"), "seq": seq })
            } else {
                seq += 1;
                json!({ "type": "ack", "id": v["id"], "seq": seq })
            };
            if socket
                .send(Message::Text(answer.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

async fn smtp_session(sock: tokio::net::TcpStream, store: Store) {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    // A client gone before the greeting finds out at its first read.
    let _ = w.write_all(b"220 bare ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 bare\r\n",
            "QUIT" => {
                // The session ends either way.
                let _ = w.write_all(b"221 bye\r\n").await;
                return;
            }
            "DATA" => {
                if w.write_all(b"354 go on\r\n").await.is_err() {
                    return;
                }
                let mut message = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    message.push_str(&l);
                    message.push('\n');
                }
                if store.insert("email", message).await {
                    b"250 2.0.0 kept\r\n"
                } else {
                    b"451 4.3.0 not kept\r\n"
                }
            }
            _ => b"250 ok\r\n",
        };
        if w.write_all(answer).await.is_err() {
            return;
        }
    }
}
