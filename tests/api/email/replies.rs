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

    // A long mail written in a rich editor (a table of 150 KiB of HTML, its attributes
    // quoted, so its frame is larger still): sent whole.
    let rows: String = (0..2000)
        .map(|i| {
            format!(
                "<tr class=\"row\"><td style=\"padding:2px\">订单 {i:05}</td><td>已退款</td></tr>"
            )
        })
        .collect();
    let long = format!("<table>{rows}</table>");
    assert!(long.len() > 120 * 1024, "{}", long.len());
    li.send(json!({
        "type": "reply", "interaction_id": interaction, "reply_id": "long-1",
        "body": "您好，退款明细见下表。", "html": long,
    }))
    .await;
    li.expect("reply_sent").await;
    let data = sink.lock().unwrap()[2].2.clone();
    let read = python_reads(&data);
    assert_eq!(read["html"]["content"].as_str().unwrap().trim_end(), long);
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
    // A chat is offered once its visitor has written.
    visitor
        .send(tokio_tungstenite::tungstenite::Message::Text(
            json!({ "type": "message", "id": "m1", "text": "Hello" })
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

both_backends!(a_reply_goes_to_its_recipients_and_copies_with_the_agents_files);

/// The composer's mail: recipients and copies the agent chose, and files it uploaded,
/// as a mail client reads them; the agent's signature kept for it.
async fn a_reply_goes_to_its_recipients_and_copies_with_the_agents_files(backend: Backend) {
    let (relay, sink) = smtp_sink().await;
    let (app, _dir) = app(backend, relay, |_| {}).await;
    let (_, token) = create_agent(&app, json!({ "name": "Li Na" })).await;
    let mut li = Desktop::available(&app.base, &token).await;
    let client = reqwest::Client::new();
    let first = Message::builder()
        .from("Ola Berg <ola@example.no>".parse().unwrap())
        .to("support@shop.test".parse().unwrap())
        .subject("Invoice copy")
        .body("Please send me the invoice, with my accountant in copy.".to_string())
        .unwrap();
    mailer(&app).send(first).await.unwrap();
    let interaction = li.take_offer().await;

    // The signature is the agent's own.
    let (status, s) = crate::helpers::send(
        client
            .put(format!("{}/api/me/signature", app.base))
            .bearer_auth(&token)
            .json(&json!({ "signature": "Li Na\nShop support" })),
    )
    .await;
    assert_eq!(
        (status, s["signature"].as_str()),
        (200, Some("Li Na\nShop support"))
    );
    let (status, _) = app.get("/api/me/signature").await;
    assert_eq!(status, 400, "the admin token has no signature");

    // Two files: a PDF and a text in Chinese, uploaded to the interaction.
    let pdf = b"%PDF-1.4\n% invoice 42\n".repeat(200);
    let upload = |name: &str, content_type: &str, body: Vec<u8>, bearer: &str| {
        client
            .post(format!("{}/api/interactions/{interaction}/files", app.base))
            .query(&[("name", name)])
            .header("content-type", content_type)
            .bearer_auth(bearer)
            .body(body)
    };
    let (status, a) = crate::helpers::send(upload(
        "invoice-42.pdf",
        "application/pdf",
        pdf.clone(),
        &token,
    ))
    .await;
    assert_eq!(status, 201, "{a}");
    let (status, b) = crate::helpers::send(upload(
        "说明.txt",
        "text/plain; charset=utf-8",
        "发票已附上。".as_bytes().to_vec(),
        &token,
    ))
    .await;
    assert_eq!(status, 201, "{b}");
    // Not the holder: no such interaction to attach to.
    let (_, other) = create_agent(&app, json!({ "name": "Mo" })).await;
    let (status, _) =
        crate::helpers::send(upload("x.txt", "text/plain", b"x".to_vec(), &other)).await;
    assert_eq!(status, 404);

    // Bad recipients and unknown files are refused; nothing is sent.
    li.send(json!({ "type": "reply", "interaction_id": interaction, "body": "x", "cc": ["not an address"] }))
        .await;
    assert_eq!(li.expect("error").await["code"], "bad_field");
    li.send(json!({ "type": "reply", "interaction_id": interaction, "body": "x", "attachments": ["out-nope"] }))
        .await;
    assert_eq!(li.expect("error").await["code"], "bad_field");

    li.send(json!({
        "type": "reply", "interaction_id": interaction, "reply_id": "files-1",
        "body": "Here is your invoice.\n\n-- \nLi Na",
        "to": ["ola@example.no"], "cc": ["accountant@example.no"],
        "attachments": [a["id"], b["id"]],
    }))
    .await;
    li.expect("reply_sent").await;
    let (_, recipients, data) = sink.lock().unwrap()[0].clone();
    assert_eq!(
        recipients,
        vec![
            "<ola@example.no>".to_string(),
            "<accountant@example.no>".to_string()
        ]
    );
    let read = python_reads(&data);
    assert_eq!(read["defects"], json!([]), "{read}");
    assert_eq!(read["cc"], json!(["accountant@example.no"]), "{read}");
    assert_eq!(
        read["plain"]["content"]
            .as_str()
            .unwrap()
            .trim_end()
            .replace("\r\n", "\n"),
        "Here is your invoice.\n\n-- \nLi Na"
    );
    let files = read["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{read}");
    assert_eq!(files[0]["filename"], "invoice-42.pdf");
    assert_eq!(files[0]["content_type"], "application/pdf");
    assert_eq!(files[0]["size"], pdf.len());
    assert_eq!(files[1]["filename"], "说明.txt");
    assert_eq!(
        files[1]["content"].as_str().unwrap().trim_end(),
        "发票已附上。"
    );
    app.stop().await;
}
