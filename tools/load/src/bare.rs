//! The bare stack the load is compared with: the same libraries as Switchboard (tokio,
//! axum and its websockets, sqlx on SQLite in WAL mode with `synchronous=FULL`), doing
//! only the least a durable channel must. A webhook reads the JSON body, inserts one row
//! and answers; an SMTP listener takes a message, inserts one row and answers 250; a
//! websocket answers a chat's start and echoes the rest. No customers, no tiers, no
//! history, no routing: what the machine does at best on the same paths.

use std::str::FromStr;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Serves the bare endpoints on `BARE_HTTP` and `BARE_SMTP`, keeping rows in `dir`.
pub async fn serve(dir: &str) {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{dir}/bare.db"))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("the bare store opens");
    sqlx::query(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, body TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let http = std::env::var("BARE_HTTP").expect("BARE_HTTP");
    let smtp = std::env::var("BARE_SMTP").expect("BARE_SMTP");
    let app = Router::new()
        .route("/channels/phone/events", post(webhook))
        .route("/channels/chat/ws", get(echo))
        .with_state(pool.clone());
    let web = tokio::net::TcpListener::bind(&http).await.unwrap();
    let mail = tokio::net::TcpListener::bind(&smtp).await.unwrap();
    println!("The bare stack listening on http://{http}");
    tokio::spawn(async move {
        while let Ok((sock, _)) = mail.accept().await {
            tokio::spawn(smtp_session(sock, pool.clone()));
        }
    });
    axum::serve(web, app).await.unwrap();
}

async fn insert(pool: &SqlitePool, channel: &str, body: &str) -> bool {
    sqlx::query("INSERT INTO contacts (channel, body) VALUES ($1, $2)")
        .bind(channel)
        .bind(body)
        .execute(pool)
        .await
        .is_ok()
}

async fn webhook(State(pool): State<SqlitePool>, body: String) -> (StatusCode, Json<Value>) {
    let Ok(event) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "not JSON" })),
        );
    };
    if insert(&pool, "phone", &event.to_string()).await {
        (StatusCode::OK, Json(json!({ "recorded": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "recorded": false })),
        )
    }
}

async fn echo(ws: WebSocketUpgrade) -> axum::response::Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        let mut n = 0u64;
        while let Some(Ok(frame)) = socket.recv().await {
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            n += 1;
            let answer = if v["type"] == "start" {
                json!({ "type": "started", "chat_id": format!("bare-{}", v["visitor_id"].as_str().unwrap_or("?")), "seq": n })
            } else {
                v
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

async fn smtp_session(sock: tokio::net::TcpStream, pool: SqlitePool) {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    let _ = w.write_all(b"220 bare ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 bare\r\n",
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n").await;
                return;
            }
            "DATA" => {
                let _ = w.write_all(b"354 go on\r\n").await;
                let mut message = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    message.push_str(&l);
                    message.push('\n');
                }
                if insert(&pool, "email", &message).await {
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
