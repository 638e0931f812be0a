//! Mail in the charsets and shapes real senders write, over the real SMTP listener:
//! legacy charset aliases (from Python's codec registry and the IANA registry) in
//! subjects, names and bodies; 8-bit text with no label or a wrong one; and a header
//! block with no blank line after it.

use encoding_rs::Encoding;
use lettre::AsyncTransport;

use super::{app, interactions_of, mailer, qp};
use crate::both_backends;
use crate::helpers::{event, Backend, TestApp};

/// Sends `raw` over SMTP from `from` to support@shop.test; answers the SMTP reply code.
async fn deliver(app: &TestApp, from: &str, raw: &[u8]) -> String {
    let envelope = lettre::address::Envelope::new(
        Some(from.parse().unwrap()),
        vec!["support@shop.test".parse().unwrap()],
    )
    .unwrap();
    let answer = mailer(app).send_raw(&envelope, raw).await.unwrap();
    answer.code().to_string()
}

/// A message whose name, subject and body are in `encoding`, labelled `label`: the
/// header text as Q encoded words, the body quoted-printable.
fn legacy(from: &str, encoding: &'static Encoding, label: &str, name: &str, text: &str) -> Vec<u8> {
    let bytes = |s: &str| {
        let (b, _, unmappable) = encoding.encode(s);
        assert!(!unmappable, "{} cannot write {s}", encoding.name());
        b.into_owned()
    };
    format!(
        "From: =?{label}?Q?{}?= <{from}>\r\nTo: support@shop.test\r\nSubject: =?{label}?Q?{}?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"{label}\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
        qp(&bytes(name)),
        qp(&bytes(text)),
        qp(&bytes(text)),
    )
    .into_bytes()
}

async fn legacy_charset_aliases_decode_in_names_subjects_and_bodies(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let chinese = "您好，我的订单还没有到，请帮忙查询。";
    let traditional = "請問我的訂單何時出貨？";
    let japanese = "注文がまだ届きません。確認してください。";
    let korean = "주문이 아직 도착하지 않았습니다.";
    let russian = "Мой заказ ещё не пришёл.";
    let polish = "Zamówienie jeszcze nie dotarło.";
    let cases: &[(&'static Encoding, &str, &str, &str)] = &[
        (encoding_rs::GBK, "euc_cn", "王小明", chinese),
        (encoding_rs::GBK, "EUC-CN", "王小明", chinese),
        (encoding_rs::GBK, "cp936", "王小明", chinese),
        (encoding_rs::GBK, "ms936", "王小明", chinese),
        (encoding_rs::GBK, "csGB2312", "王小明", chinese),
        (encoding_rs::GBK, "GB_2312-80", "王小明", chinese),
        (encoding_rs::GBK, "x-gbk", "王小明", chinese),
        (encoding_rs::GBK, "iso-ir-58", "王小明", chinese),
        (encoding_rs::GBK, "chinese", "王小明", chinese),
        (encoding_rs::GBK, "eucgb2312_cn", "王小明", chinese),
        (encoding_rs::GB18030, "gb18030_2000", "王小明", chinese),
        (encoding_rs::BIG5, "cp950", "陳大文", traditional),
        (encoding_rs::BIG5, "big5hkscs", "陳大文", traditional),
        (encoding_rs::BIG5, "big5_tw", "陳大文", traditional),
        (encoding_rs::SHIFT_JIS, "sjis", "山田太郎", japanese),
        (encoding_rs::SHIFT_JIS, "cp932", "山田太郎", japanese),
        (
            encoding_rs::SHIFT_JIS,
            "shift_jis_2004",
            "山田太郎",
            japanese,
        ),
        (encoding_rs::EUC_JP, "ujis", "山田太郎", japanese),
        (encoding_rs::EUC_JP, "euc_jis_2004", "山田太郎", japanese),
        (
            encoding_rs::ISO_2022_JP,
            "iso2022_jp_2",
            "山田太郎",
            japanese,
        ),
        (encoding_rs::EUC_KR, "cp949", "김민수", korean),
        (encoding_rs::EUC_KR, "uhc", "김민수", korean),
        (encoding_rs::KOI8_R, "cskoi8r", "Иван Петров", russian),
        (encoding_rs::WINDOWS_1251, "1251", "Иван Петров", russian),
        (
            encoding_rs::ISO_8859_2,
            "iso_8859_2_1987",
            "Łukasz Żak",
            polish,
        ),
        (
            encoding_rs::WINDOWS_1250,
            "cswindows1250",
            "Łukasz Żak",
            polish,
        ),
    ];
    for (i, (encoding, label, name, text)) in cases.iter().enumerate() {
        let from = format!("legacy{i}@example.cn");
        let raw = legacy(&from, encoding, label, name, text);
        assert_eq!(deliver(&app, &from, &raw).await, "250", "{label}");
        let found = interactions_of(&app, &from).await;
        assert_eq!(found.len(), 1, "{label}");
        let got = &found[0];
        assert_eq!(got["subject"], *text, "{label} subject");
        assert_eq!(got["body"], *text, "{label} body");
        assert_eq!(
            event(got, "email_received")["data"]["from_name"],
            *name,
            "{label} name"
        );
    }
    app.stop().await;
}

async fn eight_bit_text_with_no_label_or_a_wrong_one_is_detected(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let text = "您好，我的订单还没有到，请帮忙查询一下物流信息。谢谢！";
    let gbk = encoding_rs::GBK.encode(text).0.into_owned();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Raw 8-bit GBK in the subject and the body, with no charset anywhere.
    let mut raw = b"From: a1@example.cn\r\nTo: support@shop.test\r\nSubject: ".to_vec();
    raw.extend_from_slice(&gbk);
    raw.extend_from_slice(b"\r\n\r\n");
    raw.extend_from_slice(&gbk);
    raw.extend_from_slice(b"\r\n");
    cases.push(("a1@example.cn", raw));
    // Labelled UTF-8, written in GBK: subject word and body.
    let raw = format!(
        "From: a2@example.cn\r\nTo: support@shop.test\r\nSubject: =?utf-8?Q?{}?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
        qp(&gbk),
        qp(&gbk)
    );
    cases.push(("a2@example.cn", raw.into_bytes()));
    // Labelled US-ASCII over 8-bit bytes, base64.
    use base64::Engine;
    let raw = format!(
        "From: a3@example.cn\r\nTo: support@shop.test\r\nSubject: =?us-ascii?B?{}?=\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64::engine::general_purpose::STANDARD.encode(&gbk),
        base64::engine::general_purpose::STANDARD.encode(&gbk)
    );
    cases.push(("a3@example.cn", raw.into_bytes()));
    // A label no registry knows.
    let raw = format!(
        "From: a4@example.cn\r\nTo: support@shop.test\r\nSubject: =?x-unheard-of?Q?{}?=\r\nContent-Type: text/plain; charset=x-unheard-of\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
        qp(&gbk),
        qp(&gbk)
    );
    cases.push(("a4@example.cn", raw.into_bytes()));
    for (from, raw) in cases {
        assert_eq!(deliver(&app, from, &raw).await, "250", "{from}");
        let found = interactions_of(&app, from).await;
        assert_eq!(found.len(), 1, "{from}");
        assert_eq!(found[0]["subject"], text, "{from} subject");
        assert_eq!(found[0]["body"], text, "{from} body");
    }
    // A Japanese message in Shift_JIS with no label at all.
    let japanese = "ご注文の商品はまだ届いておりません。確認をお願いいたします。";
    let mut raw =
        b"From: b1@example.jp\r\nTo: support@shop.test\r\nSubject: order\r\n\r\n".to_vec();
    raw.extend_from_slice(&encoding_rs::SHIFT_JIS.encode(japanese).0);
    raw.extend_from_slice(b"\r\n");
    assert_eq!(deliver(&app, "b1@example.jp", &raw).await, "250");
    assert_eq!(
        interactions_of(&app, "b1@example.jp").await[0]["body"],
        japanese
    );
    app.stop().await;
}

async fn a_header_block_with_no_blank_line_after_it_keeps_its_body(backend: Backend) {
    let (app, _dir) = app(backend, 1, |_| {}).await;
    let raw = "From: Nadia <nadia@example.org>\r\nTo: support@shop.test\r\nSubject: Where is\r\n my parcel?\r\nMessage-ID: <no-gap-1@example.org>\r\nHello, my parcel has not arrived.\r\nOrder: 4711\r\n";
    assert_eq!(
        deliver(&app, "nadia@example.org", raw.as_bytes()).await,
        "250"
    );
    let found = interactions_of(&app, "nadia@example.org").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["subject"], "Where is my parcel?");
    assert_eq!(
        found[0]["body"],
        "Hello, my parcel has not arrived.\r\nOrder: 4711"
    );
    app.stop().await;
}

both_backends!(
    legacy_charset_aliases_decode_in_names_subjects_and_bodies,
    eight_bit_text_with_no_label_or_a_wrong_one_is_detected,
    a_header_block_with_no_blank_line_after_it_keeps_its_body,
);
