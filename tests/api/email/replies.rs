//! Agents' replies as mail clients read them: each one parsed by Python's standard
//! `email` package, not by Switchboard's own parser.

use lettre::{AsyncTransport, Message};
use serde_json::json;

use super::{app, mailer, python_reads, smtp_sink};
use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::Backend;

async fn a_reply_is_mime_that_a_standard_parser_reads_in_chinese_and_as_rich_text(
    backend: Backend,
) {
    let (relay, sink) = smtp_sink().await;
    let (app, _dir) = app(backend, relay, |_| {}).await;
    let (_, token) = create_agent(&app, json!({ "name": "Li Na" })).await;
    let mut li = Desktop::available(&app.base, &token).await;
    let first = Message::builder()
        .from("王芳 <wang.fang@example.cn>".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("订单还没有到")
        .body("我的订单还没有到，请帮忙查询。".to_string())
        .unwrap();
    mailer(&app).send(first).await.unwrap();
    let interaction = li.take_offer().await;

    // A reply in Chinese: the same Chinese text, subject included, with its charset.
    let text = "您好，您的订单已于今天发出，预计三天内送达。\n\n客服 李娜";
    li.send(
        json!({ "type": "reply", "interaction_id": interaction, "body": text, "reply_id": "zh-1" }),
    )
    .await;
    li.expect("reply_sent").await;
    let data = sink.lock().unwrap()[0].2.clone();
    let read = python_reads(&data);
    assert_eq!(read["mime_version"], "1.0", "{read}\n{data}");
    assert_eq!(read["content_type"], "text/plain", "{read}");
    assert_eq!(read["plain"]["charset"], "utf-8", "{read}");
    let encoding = read["plain"]["transfer_encoding"].as_str().unwrap_or("");
    assert!(["base64", "quoted-printable"].contains(&encoding), "{read}");
    // Text travels with CRLF line ends (MIME's canonical form); the reader sees lines.
    assert_eq!(
        read["plain"]["content"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        text,
        "{read}"
    );
    let subject = read["subject"].as_str().unwrap();
    assert!(subject.starts_with("Re: 订单还没有到 [#"), "{read}");
    let written = read["subject_as_written"].as_str().unwrap();
    assert!(
        written.is_ascii() && written.to_ascii_lowercase().contains("=?utf-8?"),
        "the subject is written as encoded words: {written}"
    );
    assert_eq!(read["defects"], json!([]), "{read}");

    // Rich text: the HTML and its text, as alternatives.
    let html = "<p>您好，退款<b>今天</b>到账。</p>";
    li.send(json!({
        "type": "reply", "interaction_id": interaction, "reply_id": "rich-1",
        "body": "您好，退款今天到账。", "html": html,
    }))
    .await;
    li.expect("reply_sent").await;
    let data = sink.lock().unwrap()[1].2.clone();
    let read = python_reads(&data);
    assert_eq!(read["mime_version"], "1.0", "{read}");
    assert_eq!(read["content_type"], "multipart/alternative", "{read}");
    assert_eq!(
        read["plain"]["content"].as_str().unwrap().trim_end(),
        "您好，退款今天到账。"
    );
    assert_eq!(read["html"]["charset"], "utf-8", "{read}");
    assert_eq!(read["html"]["content"].as_str().unwrap().trim_end(), html);
    assert_eq!(read["defects"], json!([]), "{read}");

    // HTML never goes alone: a reply needs its text.
    li.send(json!({ "type": "reply", "interaction_id": interaction, "body": " ", "html": html }))
        .await;
    assert_eq!(li.expect("error").await["code"], "bad_field");
    app.stop().await;
}

/// Rich text is for email: a chat reply carrying HTML is refused, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_on_a_chat_reply_is_refused() {
    use futures_util::{SinkExt, StreamExt};
    let (app, _dir) = app(Backend::Sqlite, 1, |_| {}).await;
    let (_, token) = create_agent(&app, json!({ "name": "Li Na" })).await;
    let mut li = Desktop::available(&app.base, &token).await;
    let url = format!(
        "{}/channels/chat/ws",
        app.base.replacen("http://", "ws://", 1)
    );
    let (mut visitor, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    visitor
        .send(tokio_tungstenite::tungstenite::Message::Text(
            json!({ "type": "start", "visitor_id": "html-visitor" })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let interaction = li.take_offer().await;
    li.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Hi", "html": "<b>Hi</b>", "reply_id": "h1" }))
        .await;
    let error = li.expect("error").await;
    assert_eq!(error["code"], "bad_field", "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with("html:"),
        "{error}"
    );
    // Nothing of it was sent: the next reply queued, and the first the visitor reads, is
    // the plain one after it.
    li.send(json!({ "type": "reply", "interaction_id": interaction, "body": "Plain hi", "reply_id": "p1" }))
        .await;
    assert_eq!(li.expect("reply_queued").await["reply_id"], "p1");
    let first = loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), visitor.next())
            .await
            .expect("a frame within 10 s");
        if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = frame {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "message" && v["from"] == "agent" {
                break v;
            }
        }
    };
    assert_eq!(first["text"], "Plain hi", "{first}");
    app.stop().await;
}

both_backends!(a_reply_is_mime_that_a_standard_parser_reads_in_chinese_and_as_rich_text);
