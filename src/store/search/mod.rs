//! Search over conversations and customers, through the trigram indexes of migration
//! 0016: FTS5's `trigram` tokenizer on SQLite, `pg_trgm` GIN indexes on PostgreSQL.
//! Both index every run of three characters, so a word is found inside any text,
//! Chinese included, with nothing split at spaces.
//!
//! # Layout
//! - this file: the query ([`Terms`]), who asks ([`Scope`]), the read a search makes
//!   ([`begin`]), and the bounds every page keeps to;
//! - `conversations.rs`: interactions by the words of their messages, page by page;
//! - `customers.rs`: customers by their name and identities.
//!
//! # What a query matches
//! A query is split at whitespace into terms; each is found as a part of a longer word,
//! case ignored (on SQLite, terms of one or two characters fold only ASCII letters), and
//! every term must be in the same message. Agents find only the interactions they have
//! held (`interaction_holders`, [`held`]) and those interactions' customers; supervisors
//! and admins find everything.
//!
//! # How a page is read, and why it stays quick
//! A trigram index cannot look up a term shorter than three characters, and knows
//! nothing of whose a message is. So each page reads, newest first, at most:
//! - for a query with a term of three characters or more: on SQLite, [`EXAMINE`] matches
//!   from the index (FTS5 walks them newest first, so a word in every message costs no
//!   more than a rare one); for an agent, [`AGENT_EXAMINE`] of them, then its own
//!   messages (`search_held`, newest first) if others' matches are too many; on
//!   PostgreSQL, whose index hands over every match at once, first the newest
//!   [`FIRST_SCAN`] messages (the agent's own, for an agent), which answer a common word,
//!   then the index for older matches of a rarer one. pg_trgm's index hands over every
//!   message holding all of a word's trigrams, each read again to check; for a short
//!   word whose trigrams are everywhere (`kind`: `kin` and `ind`) that is a great many,
//!   so it is given [`INDEX_MS`], then the next [`RECENT`] newest messages are read
//!   instead and the page says where to go on;
//! - for a query of shorter terms only (a two-character Chinese word, `li`): the newest
//!   [`RECENT`] messages (an agent's own) the searcher may see, each checked. A bigram
//!   index would find them anywhere, at about the size of the trigram index again on
//!   both databases; these queries mostly want recent conversations, and the page's
//!   `next_before` goes on further back.
//!
//! Customers are found by any part of three characters or more of their name or of an
//! identity, or by the beginning of one for a shorter query (a two-character name).

mod conversations;
mod customers;

use std::collections::HashSet;

use super::{Backend, Conn};

pub use conversations::{conversations, Found, Page};
pub use customers::{customers, Customer, Customers};

/// Terms shorter than this are not in the trigram indexes.
pub const TRIGRAM: usize = 3;
/// Matches examined at most per page of a supervisor's indexed search on SQLite.
pub const EXAMINE: i64 = 5_000;
/// Matches examined at most per page of an agent's indexed search on SQLite, before it
/// reads the agent's own messages instead.
pub const AGENT_EXAMINE: i64 = 2_000;
/// Documents read at most per page on PostgreSQL, newest first, before its index is
/// asked for older matches.
pub const FIRST_SCAN: i64 = 2_000;
/// How long PostgreSQL's index is given per page (ms) before the newest messages are
/// read instead.
pub const INDEX_MS: u64 = 50;
/// Documents read at most per page of a search of short terms only (and on PostgreSQL,
/// after an index that took too long).
pub const RECENT: i64 = 5_000;
/// Customer terms (names, identities) examined at most per search.
pub const CUSTOMER_EXAMINE: i64 = 1_000;

/// Who is searching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A supervisor or an admin: everything.
    All,
    /// An agent: the interactions it has held, and their customers.
    Agent(&'a str),
}

/// A query split into terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Terms of [`TRIGRAM`] characters or more.
    pub long: Vec<String>,
    /// Shorter terms.
    pub short: Vec<String>,
    /// The whole query, trimmed, its whitespace runs made one space.
    pub whole: String,
}

impl Terms {
    /// The terms of `q` (split at any whitespace, the ideographic space included),
    /// each once.
    pub fn new(q: &str) -> Terms {
        let mut seen = HashSet::new();
        let (mut long, mut short) = (Vec::new(), Vec::new());
        for t in q.split_whitespace() {
            if !seen.insert(t.to_lowercase()) {
                continue;
            }
            if t.chars().count() >= TRIGRAM {
                long.push(t.to_string());
            } else {
                short.push(t.to_string());
            }
        }
        Terms {
            long,
            short,
            whole: q.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    /// Every term, long ones first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.long.iter().chain(&self.short).map(String::as_str)
    }

    /// Whether the index answers this query (it has a term of three characters or more).
    pub fn indexed(&self) -> bool {
        !self.long.is_empty()
    }
}
/// Begins the read a search makes: one snapshot for all its queries. On PostgreSQL,
/// without JIT compilation, which takes longer to compile a search's plan (a quarter of
/// a second, seen at a million messages) than the search takes to run; and with whole
/// tables read only when nothing else can answer, so that a misjudged word's frequency
/// (the planner guesses it from a sample) cannot make a search read every message.
pub async fn begin(
    store: &super::Store,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    if store.backend() == Backend::Postgres {
        for setting in ["SET LOCAL jit = off", "SET LOCAL enable_seqscan = off"] {
            sqlx::query(setting).execute(&mut *tx).await?;
        }
    }
    Ok(tx)
}

/// Whether `agent` has held interaction `id`.
pub async fn held(conn: &mut Conn, agent: &str, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM interaction_holders WHERE agent_id = $1 AND interaction_id = $2",
    )
    .bind(agent)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}
/// The FTS5 query that finds every term (each a quoted string: a substring to the
/// trigram tokenizer).
fn fts_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `t` with LIKE's wildcards escaped (by `\`).
fn escape_like(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A LIKE pattern: `t` anywhere.
fn contains(t: &str) -> String {
    format!("%{}%", escape_like(t))
}
/// Takes the events of `interaction_id` that happened before `before` (ms; all of them
/// when `None`) out of the search index, before their words go (erasure, retention):
/// nothing of an erased or expired message stays findable. Called while their text is
/// still there, since SQLite's contentless index is told the very words to forget.
pub async fn forget(
    conn: &mut Conn,
    interaction_id: &str,
    before: Option<i64>,
) -> Result<(), sqlx::Error> {
    let before = before.unwrap_or(i64::MAX);
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");
    let index = if postgres {
        "DELETE FROM search_index WHERE interaction_id = $1 AND seq IN \
         (SELECT seq FROM history WHERE interaction_id = $1 AND occurred_at < $2)"
    } else {
        "INSERT INTO search_index (search_index, rowid, text) \
         SELECT 'delete', seq, text FROM search_documents \
         WHERE interaction_id = $1 AND occurred_at < $2 AND text <> ''"
    };
    sqlx::query(index)
        .bind(interaction_id)
        .bind(before)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM search_held WHERE seq IN \
         (SELECT seq FROM history WHERE interaction_id = $1 AND occurred_at < $2)",
    )
    .bind(interaction_id)
    .bind(before)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Merges SQLite's full-text indexes into one segment each, so terms deleted from them
/// (an erasure's) are gone from the file, not only marked deleted; nothing on PostgreSQL,
/// whose indexes drop deleted rows' entries themselves.
pub async fn compact(conn: &mut Conn) -> Result<(), sqlx::Error> {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        return Ok(());
    }
    for sql in [
        "INSERT INTO search_index (search_index) VALUES ('optimize')",
        "INSERT INTO search_customers (search_customers) VALUES ('optimize')",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_split_into_long_and_short_terms_at_any_whitespace() {
        let t = Terms::new("  退款 refund\u{3000}li  Refund 王伟明 ");
        assert_eq!(t.long, ["refund", "王伟明"]);
        assert_eq!(t.short, ["退款", "li"]);
        assert_eq!(t.whole, "退款 refund li Refund 王伟明");
        assert!(t.indexed());
        assert!(!Terms::new("退款").indexed());
    }

    #[test]
    fn fts_terms_are_quoted_and_like_wildcards_escaped() {
        assert_eq!(
            fts_query(&["say \"hi\"".into(), "退款处".into()]),
            "\"say \"\"hi\"\"\" AND \"退款处\""
        );
        assert_eq!(contains("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
