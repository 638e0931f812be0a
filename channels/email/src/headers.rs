//! The top-level header block put right before mail-parser reads it, for what real mail
//! gets wrong:
//!
//! - **no blank line after the headers**: the first line that is neither a header field
//!   nor a continuation ends the block and starts the body, as robust parsers read it
//!   (Python's `email` package does the same); [`complete`] inserts the blank line;
//! - **text fields in charsets mail-parser cannot name, or mislabelled** (Subject, From,
//!   To, Cc, Reply-To, Sender): [`transcode`] rewrites the encoded words it would decode
//!   wrongly (a label it does not know, bytes not valid in their label, a character split
//!   across two words) as UTF-8 encoded words, and 8-bit text written raw in a header as
//!   UTF-8, each decoded by [`crate::charset`]. Everything else is left as it came.

use std::borrow::Cow;

use base64::Engine;

use crate::charset::{self, Charset};

/// The fields whose text Switchboard reads.
const TEXT_FIELDS: [&str; 6] = ["subject", "from", "to", "cc", "reply-to", "sender"];

/// One line of the header block: where it starts, where its content ends (before its
/// line end) and where the next line starts.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    next: usize,
}

fn line_at(raw: &[u8], start: usize) -> Line {
    let nl = raw[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| start + i);
    let (end, next) = match nl {
        Some(nl) if nl > start && raw[nl - 1] == b'\r' => (nl - 1, nl + 1),
        Some(nl) => (nl, nl + 1),
        None => (raw.len(), raw.len()),
    };
    Line { start, end, next }
}

/// The name of the field a line starts, when it starts one: printable ASCII up to a
/// colon (as Python's `email.feedparser` reads a header line).
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    line[..colon]
        .iter()
        .all(|b| (33..=126).contains(b))
        .then(|| &line[..colon])
}

/// The message with a blank line where its header block ends without one.
pub fn complete(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut pos = 0;
    let mut fields = 0;
    while pos < raw.len() {
        let line = line_at(raw, pos);
        let text = &raw[line.start..line.end];
        if text.is_empty() {
            return Cow::Borrowed(raw);
        }
        let continues = fields > 0 && matches!(text[0], b' ' | b'\t');
        let mbox = pos == 0 && text.starts_with(b"From ");
        if !continues && !mbox && field_name(text).is_none() {
            if fields == 0 {
                // Not a header block at all: nothing to complete.
                return Cow::Borrowed(raw);
            }
            let eol: &[u8] = if raw[..pos].ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            let mut fixed = Vec::with_capacity(raw.len() + 2);
            fixed.extend_from_slice(&raw[..pos]);
            fixed.extend_from_slice(eol);
            fixed.extend_from_slice(&raw[pos..]);
            return Cow::Owned(fixed);
        }
        fields += 1;
        pos = line.next;
    }
    Cow::Borrowed(raw)
}

/// The message with its text fields rewritten where mail-parser would misread them;
/// `None` when none needs it. `hint` is the charset the body declares (what a header's
/// raw 8-bit text is most likely in), `tld` the sender's top-level domain.
pub fn transcode(raw: &[u8], hint: Option<&str>, tld: Option<&str>) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    let mut pos = 0;
    while pos < raw.len() {
        let first = line_at(raw, pos);
        if first.end == first.start {
            break;
        }
        // The field: its first line and every continuation.
        let mut last = first;
        while last.next < raw.len() && matches!(raw[last.next], b' ' | b'\t') {
            last = line_at(raw, last.next);
        }
        let name = field_name(&raw[first.start..first.end]);
        let readable = name.is_some_and(|n| {
            TEXT_FIELDS
                .iter()
                .any(|f| f.as_bytes().eq_ignore_ascii_case(n))
        });
        if let (true, Some(name)) = (readable, name) {
            let value_start = first.start + name.len() + 1;
            if let Some(value) = fix(&raw[value_start..last.end], hint, tld) {
                out.extend_from_slice(&raw[copied..value_start]);
                out.extend_from_slice(&value);
                copied = last.end;
            }
        }
        pos = last.next;
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&raw[copied..]);
    Some(out)
}

/// One encoded word: `=?label?B|Q?payload?=`, at `start..end` of the value.
struct Word<'a> {
    start: usize,
    end: usize,
    label: &'a str,
    bytes: Vec<u8>,
}

/// The encoded word starting at `i`, if one does. The search for its end stops at the
/// first `?` (a payload holds none), so each byte is looked at a bounded number of times
/// however many starts a value has.
fn word_at(v: &[u8], i: usize) -> Option<Word<'_>> {
    let rest = v.get(i..)?.strip_prefix(b"=?")?;
    let q1 = rest.iter().take(65).position(|&b| b == b'?')?;
    let label = std::str::from_utf8(&rest[..q1]).ok()?;
    if label.is_empty() || label.bytes().any(|b| b <= b' ') {
        return None;
    }
    let encoding = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let payload_start = q1 + 3;
    let len = rest[payload_start..]
        .iter()
        .position(|&b| matches!(b, b'?' | b'\r' | b'\n'))?;
    if rest.get(payload_start + len + 1) != Some(&b'=') || rest[payload_start + len] != b'?' {
        return None;
    }
    let payload = &rest[payload_start..payload_start + len];
    let bytes = match encoding {
        b'B' | b'b' => b_decode(payload)?,
        b'Q' | b'q' => q_decode(payload),
        _ => return None,
    };
    // The label without its RFC 2231 language (`utf-8*en`).
    let label = label.split('*').next().unwrap_or(label);
    Some(Word {
        start: i,
        end: i + 2 + payload_start + len + 2,
        label,
        bytes,
    })
}

/// Every encoded word of a field's value.
fn words(value: &[u8]) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < value.len() {
        match word_at(value, i) {
            Some(w) => {
                i = w.end;
                words.push(w);
            }
            None => i += 1,
        }
    }
    words
}

/// RFC 2047's Q encoding: `_` is a space, `=XX` a byte.
fn q_decode(payload: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(payload.len());
    let mut i = 0;
    while i < payload.len() {
        match payload[i] {
            b'_' => out.push(b' '),
            b'=' => match (
                payload.get(i + 1).and_then(|&b| hex(b)),
                payload.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'='),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// RFC 2047's B encoding: base64, padded or not.
fn b_decode(payload: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose::GeneralPurposeConfig, DecodePaddingMode, GeneralPurpose,
    };
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let clean: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT.decode(clean).ok()
}

/// Whether mail-parser reads `bytes` in `label` as they are.
fn reads_right(label: &str, bytes: &[u8]) -> bool {
    if !charset::mail_parser_names(label) {
        return false;
    }
    match charset::charset(label) {
        Some(Charset::Ascii) => bytes.is_ascii(),
        Some(Charset::Encoding(e)) => e
            .decode_without_bom_handling_and_without_replacement(bytes)
            .is_some(),
        // Only mail-parser knows it (UTF-7…): its reading is the one there is.
        None => true,
    }
}

/// A field's value rewritten, or `None` when mail-parser reads it right as it is.
fn fix(value: &[u8], hint: Option<&str>, tld: Option<&str>) -> Option<Vec<u8>> {
    let mut changed = false;
    // Raw 8-bit text that is not UTF-8: in the body's charset if it fits, else detected.
    let value: Cow<'_, [u8]> = if std::str::from_utf8(value).is_err() {
        changed = true;
        Cow::Owned(charset::decode(value, hint, tld).into_bytes())
    } else {
        Cow::Borrowed(value)
    };
    let words = words(&value);
    // Runs of adjacent words (only white space between them) in one charset: a
    // character may be split across two of them.
    let mut runs: Vec<Vec<Word<'_>>> = Vec::new();
    for w in words {
        let joins = runs.last().and_then(|r| r.last()).is_some_and(|prev| {
            prev.label.eq_ignore_ascii_case(w.label)
                && value[prev.end..w.start].iter().all(u8::is_ascii_whitespace)
        });
        match runs.last_mut() {
            Some(run) if joins => run.push(w),
            _ => runs.push(vec![w]),
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    let mut copied = 0;
    for run in &runs {
        let bytes: Vec<u8> = run.iter().flat_map(|w| w.bytes.iter().copied()).collect();
        let label = run[0].label;
        let split = run.len() > 1 && run.iter().any(|w| !reads_right(label, &w.bytes));
        if reads_right(label, &bytes) && !split {
            continue;
        }
        let text = charset::decode(&bytes, Some(label), tld);
        let (start, end) = (run[0].start, run[run.len() - 1].end);
        out.extend_from_slice(&value[copied..start]);
        out.extend_from_slice(b"=?utf-8?b?");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(text.as_bytes())
                .as_bytes(),
        );
        out.extend_from_slice(b"?=");
        copied = end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&value[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_block_without_its_blank_line_ends_at_the_first_line_that_is_no_header() {
        let raw = b"From: a@example.com\r\nSubject: Hi\r\n  there\r\nThe body starts here.\r\nSecond line: still body\r\n";
        assert_eq!(
            &complete(raw)[..],
            &b"From: a@example.com\r\nSubject: Hi\r\n  there\r\n\r\nThe body starts here.\r\nSecond line: still body\r\n"[..]
        );
        let lf = b"From: a@example.com\nHello\n";
        assert_eq!(&complete(lf)[..], &b"From: a@example.com\n\nHello\n"[..]);
        for whole in [
            &b"From: a@example.com\r\n\r\nBody\r\n"[..],
            b"From: a@example.com\r\nSubject: only headers",
            b"not a message at all\r\nFrom: x\r\n",
            b"From sender@example.com Mon Jan  1 00:00:00 2024\r\nFrom: a@b\r\n\r\nx",
            b"",
        ] {
            assert_eq!(
                &complete(whole)[..],
                whole,
                "{}",
                String::from_utf8_lossy(whole)
            );
        }
    }

    #[test]
    fn words_mail_parser_misreads_are_rewritten_and_the_rest_left_alone() {
        let gbk = encoding_rs::GBK.encode("订单还没有到").0;
        let q: String = gbk.iter().map(|b| format!("={b:02X}")).collect();
        // An alias mail-parser does not know.
        let raw = format!("Subject: =?euc_cn?Q?{q}?=\r\nTo: s@shop.test\r\n\r\nx");
        let fixed = transcode(raw.as_bytes(), None, None).expect("rewritten");
        let text = String::from_utf8(fixed).unwrap();
        assert!(text.starts_with("Subject: =?utf-8?b?"), "{text}");
        assert!(text.ends_with("\r\nTo: s@shop.test\r\n\r\nx"), "{text}");
        // Labels it knows, with bytes valid in them, are left alone.
        let fine = format!("Subject: =?gb2312?Q?{q}?= and =?utf-8?Q?caf=C3=A9?=\r\n\r\nx");
        assert_eq!(transcode(fine.as_bytes(), None, None), None);
        // A character split across two words of one charset.
        let (a, b) = gbk.split_at(3);
        let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
        let split = format!(
            "Subject: =?gbk?B?{}?=\r\n =?gbk?B?{}?=\r\n\r\nx",
            b64(a),
            b64(b)
        );
        assert!(transcode(split.as_bytes(), None, None).is_some());
        // Raw 8-bit text in the body's charset.
        let mut raw8 = b"From: ".to_vec();
        raw8.extend_from_slice(&encoding_rs::GBK.encode("王小明").0);
        raw8.extend_from_slice(b" <w@example.cn>\r\n\r\nx");
        let fixed = transcode(&raw8, Some("gbk"), Some("cn")).expect("rewritten");
        assert_eq!(
            String::from_utf8(fixed).unwrap(),
            "From: 王小明 <w@example.cn>\r\n\r\nx"
        );
        // Starts that never end cost one pass, not one per start.
        let endless = format!(
            "Subject: {}{}\r\n\r\n",
            "=?gbk?Q?x".repeat(100_000),
            "x".repeat(1_000_000)
        );
        let started = std::time::Instant::now();
        assert_eq!(transcode(endless.as_bytes(), None, None), None);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let later = format!("Subject: =?x?Q?a =?utf-8?Q?caf=C3=A9?= =?euc_cn?Q?{q}?=\r\n\r\n");
        let fixed = String::from_utf8(transcode(later.as_bytes(), None, None).unwrap()).unwrap();
        assert!(fixed.contains("=?utf-8?Q?caf=C3=A9?="), "{fixed}");
        assert!(
            fixed.contains("=?utf-8?b?"),
            "a word after an unended start: {fixed}"
        );
        // Broken words are no words.
        for junk in [
            "=?",
            "=?x?",
            "=?utf-8?Z?abc?=",
            "=??Q?x?=",
            "=?utf-8?B?!!!?=",
        ] {
            let raw = format!("Subject: {junk}\r\n\r\n");
            assert_eq!(transcode(raw.as_bytes(), None, None), None, "{junk}");
        }
    }
}
