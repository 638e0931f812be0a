//! The email channel's reading of a raw message, as SMTP or IMAP delivered it: MIME
//! parsing with every charset, the sender and recipients, the ids it answers
//! (In-Reply-To, References), the token in its subject, noise (auto-replies, bounces,
//! Switchboard's own mail), and the keys its conversation is looked up by.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_email::inbound::thread_keys;
use switchboard_email::parse::{read, token_in, Limits};

fuzz_target!(|raw: &[u8]| {
    let limits = Limits {
        max_headers: 500,
        hostname: "switchboard.test".into(),
        own_addresses: vec!["support@shop.test".into()],
    };
    // The token is read from any text, not only from well-formed subjects.
    if raw.len() <= 4096 {
        check_token(&String::from_utf8_lossy(raw));
    }
    let Ok(mail) = read(raw, &limits) else {
        return;
    };
    // The same bytes always read the same way: a redelivered message has the same key.
    assert_eq!(read(raw, &limits).as_ref(), Ok(&mail));
    match &mail.message_id {
        Some(id) => assert!(!id.is_empty() && mail.key == *id),
        None => assert!(mail.key.starts_with("sha256:") && mail.key.len() == 7 + 64),
    }
    assert!(mail.answers.iter().all(|a| !a.is_empty()));
    assert!(mail.answers.windows(2).all(|w| w[0] != w[1]));
    if let Some(from) = &mail.from {
        assert!(from.contains('@'));
        assert_eq!(*from, from.to_ascii_lowercase());
        assert_eq!(from, from.trim());
    }
    assert!(mail.to.iter().all(|a| *a == a.to_ascii_lowercase()));
    if let Some(subject) = &mail.subject {
        assert_eq!(subject, subject.trim());
        assert_eq!(mail.token, token_in(subject));
    } else {
        assert_eq!(mail.token, None);
    }
    assert_eq!(mail.text, mail.text.trim());
    for f in &mail.files {
        assert_eq!(f.content_type, f.content_type.to_ascii_lowercase());
    }
    // Every id it answers is looked up as a message and as a conversation, then the token.
    let keys = thread_keys(&mail);
    assert_eq!(
        keys.len(),
        2 * mail.answers.len() + usize::from(mail.token.is_some())
    );
    if let Some(t) = &mail.token {
        assert_eq!(keys.last(), Some(&format!("token:{t}")));
    }
});

fn check_token(text: &str) {
    if let Some(t) = token_in(text) {
        assert!(!t.is_empty() && t.len() <= 32);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert!(text.to_ascii_lowercase().contains(&format!("[#{t}]")));
    }
}
