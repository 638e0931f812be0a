//! Search over conversations and customers, through the trigram indexes of migration
//! 0016 (FTS5's `trigram` tokenizer on SQLite, `pg_trgm` GIN indexes on PostgreSQL).
//!
//! A query is split at whitespace into terms, each matched as a part of a word, case
//! ignored (SQLite folds only ASCII in the terms of one or two characters), and every
//! term must be in the same message. A trigram index can look up only terms of three
//! characters or more, so:
//! - a query with such a term is looked up in the index, newest match first; its short
//!   terms are checked on each match;
//! - a query of short terms only (a two-character Chinese word, `li`) reads the newest
//!   documents the searcher may see — [`RECENT`] of them per page — and checks each. A
//!   bigram index would find them anywhere, at about the size of the trigram index again
//!   on both databases, for queries that mostly want recent conversations; the page's
//!   `next_before` reads further back.
//!
//! Every page examines at most [`EXAMINE`] matches (or [`RECENT`] documents): a word
//! found in most messages costs no more than a rare one, an agent's search among other
//! agents' matches stops there too, and the page says where to go on from. Customers
//! are found by any part of three characters or more of their name or an identity, or by
//! the beginning of one for a shorter query.
//!
//! Agents find only the interactions they have held ([`held`]) and those interactions'
//! customers; supervisors and admins find everything.

use std::collections::HashSet;

use sqlx::Row;

use super::{Backend, Conn};

/// Terms shorter than this are not in the trigram indexes.
pub const TRIGRAM: usize = 3;
/// Matches examined at most per page of an indexed search.
pub const EXAMINE: i64 = 5_000;
/// Documents read at most per page of a search of short terms only.
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

/// An interaction found, with the message that matched (its newest match).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The interaction.
    pub id: String,
    /// Its channel.
    pub channel: String,
    /// Its subject.
    pub subject: Option<String>,
    /// Its state.
    pub state: String,
    /// Its customer (the surviving one, if merged).
    pub customer_id: String,
    /// The customer's name.
    pub customer_name: Option<String>,
    /// The matching history event's seq.
    pub seq: i64,
    /// The matching event's kind (`email_received`, `chat`, `note`…).
    pub kind: String,
    /// When it was written (ms).
    pub at: i64,
    /// Its words (up to 20,000 characters), for a snippet.
    pub text: String,
}

/// A page of interactions found, newest match first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The interactions, each once.
    pub found: Vec<Found>,
    /// Where the next page begins (`before`), when more may match.
    pub next_before: Option<i64>,
}

/// A customer found.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
}

/// The customers found (by name, then id), and whether more matched than were examined.
#[derive(Debug, Clone, PartialEq)]
pub struct Customers {
    /// The customers.
    pub found: Vec<Customer>,
    /// More terms matched than [`CUSTOMER_EXAMINE`]: a longer query finds the rest.
    pub more: bool,
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

/// The interactions matching `terms` that `scope` may see, newest match first: at most
/// `limit`, from matches older than `before` (a seq).
pub async fn conversations(
    conn: &mut Conn,
    backend: Backend,
    terms: &Terms,
    scope: Scope<'_>,
    before: Option<i64>,
    limit: usize,
) -> Result<Page, sqlx::Error> {
    let budget = if terms.indexed() { EXAMINE } else { RECENT };
    let sql = candidates_sql(backend, terms, scope);
    let mut cursor = before.unwrap_or(i64::MAX);
    let mut examined = 0i64;
    let mut chunk = (limit as i64 * 4).max(80);
    let mut picked: Vec<(i64, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let next_before = loop {
        let n = chunk.min(budget - examined);
        let rows = bind_candidates(sqlx::query(&sql), backend, terms, scope, cursor, n)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        examined += rows.len() as i64;
        let mut full = None;
        for r in &rows {
            let seq: i64 = r.try_get(0)?;
            cursor = seq;
            let keep: i64 = r.try_get(2)?;
            if keep == 0 {
                continue;
            }
            let id: String = r.try_get(1)?;
            if seen.contains(&id) {
                continue;
            }
            if picked.len() == limit {
                // One more than the page holds: the next page starts with it.
                full = Some(seq + 1);
                break;
            }
            seen.insert(id.clone());
            picked.push((seq, id));
        }
        if let Some(at) = full {
            break Some(at);
        }
        if (rows.len() as i64) < n {
            break None; // nothing older matches
        }
        if examined >= budget {
            break Some(cursor); // examined enough for one page; older ones next time
        }
        chunk *= 4;
    };
    let found = details(conn, &picked).await?;
    Ok(Page { found, next_before })
}

/// The SQL of one chunk of candidates, newest first: (seq, interaction_id, keep), where
/// `keep` is 1 for one the scope may see with every short term in it. Parameters: $1
/// the cursor (older than), $2 how many, $3 the agent (for an agent), then the index
/// query (one term on SQLite, each long term on PostgreSQL), then each short term.
fn candidates_sql(backend: Backend, terms: &Terms, scope: Scope<'_>) -> String {
    let agent = matches!(scope, Scope::Agent(_));
    let mut n = if agent { 4 } else { 3 };
    let mut next = || {
        let p = format!("${n}");
        n += 1;
        p
    };
    let visible = |id: &str| {
        if agent {
            format!(
                "EXISTS (SELECT 1 FROM interaction_holders x WHERE x.agent_id = $3 AND x.interaction_id = {id})"
            )
        } else {
            "1 = 1".to_string()
        }
    };
    // SQLite's LIKE has no escape character unless told; PostgreSQL's is the backslash
    // (and a pattern left a plain parameter keeps pg_trgm's index usable).
    let like = match backend {
        Backend::Sqlite => "LIKE",
        Backend::Postgres => "ILIKE",
    };
    let esc = match backend {
        Backend::Sqlite => " ESCAPE '\\'",
        Backend::Postgres => "",
    };
    match (backend, terms.indexed()) {
        (Backend::Sqlite, true) => {
            let q = next();
            let short: Vec<String> = terms
                .short
                .iter()
                .map(|_| format!(" AND d.text LIKE {} ESCAPE '\\'", next()))
                .collect();
            format!(
                "SELECT c.seq, d.interaction_id, CAST(CASE WHEN {}{} THEN 1 ELSE 0 END AS BIGINT) \
                 FROM (SELECT rowid AS seq FROM search_index WHERE search_index MATCH {q} \
                       AND rowid < $1 ORDER BY rowid DESC LIMIT $2) c \
                 JOIN search_documents d ON d.seq = c.seq ORDER BY c.seq DESC",
                visible("d.interaction_id"),
                short.concat()
            )
        }
        (Backend::Postgres, true) => {
            let index: Vec<String> = terms
                .long
                .iter()
                .map(|_| format!("text ILIKE {} AND ", next()))
                .collect();
            let short: Vec<String> = terms
                .short
                .iter()
                .map(|_| format!(" AND c.text ILIKE {}", next()))
                .collect();
            format!(
                "SELECT c.seq, h.interaction_id, CAST(CASE WHEN {}{} THEN 1 ELSE 0 END AS BIGINT) \
                 FROM (SELECT seq, text FROM search_index WHERE {}seq < $1 \
                       ORDER BY seq DESC LIMIT $2) c \
                 JOIN history h ON h.seq = c.seq ORDER BY c.seq DESC",
                visible("h.interaction_id"),
                short.concat(),
                index.concat()
            )
        }
        (_, false) => {
            let short: Vec<String> = terms
                .short
                .iter()
                .map(|_| format!(" AND d.text {like} {}{esc}", next()))
                .collect();
            // SQLite reads the words from the history; PostgreSQL from its copy beside
            // the index.
            let documents = match backend {
                Backend::Sqlite => "search_documents d",
                Backend::Postgres => {
                    "(SELECT s.seq, s.text, h.interaction_id FROM search_index s \
                     JOIN history h ON h.seq = s.seq) d"
                }
            };
            // An agent reads its own interactions' documents; everyone else the newest.
            let whose = if agent {
                "d.interaction_id IN (SELECT interaction_id FROM interaction_holders WHERE agent_id = $3) AND "
            } else {
                ""
            };
            format!(
                "SELECT d.seq, d.interaction_id, CAST(CASE WHEN 1 = 1{} THEN 1 ELSE 0 END AS BIGINT) \
                 FROM {documents} WHERE {whose}d.seq < $1 ORDER BY d.seq DESC LIMIT $2",
                short.concat()
            )
        }
    }
}

/// Binds [`candidates_sql`]'s parameters.
fn bind_candidates<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    backend: Backend,
    terms: &Terms,
    scope: Scope<'_>,
    cursor: i64,
    n: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = q.bind(cursor).bind(n);
    if let Scope::Agent(a) = scope {
        q = q.bind(a.to_string());
    }
    if terms.indexed() {
        match backend {
            Backend::Sqlite => q = q.bind(fts_query(&terms.long)),
            Backend::Postgres => {
                for t in &terms.long {
                    q = q.bind(contains(t));
                }
            }
        }
    }
    for t in &terms.short {
        q = q.bind(contains(t));
    }
    q
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

/// What the page shows of each interaction picked: (seq of its match, id).
async fn details(conn: &mut Conn, picked: &[(i64, String)]) -> Result<Vec<Found>, sqlx::Error> {
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let list = super::bulk::list(1, picked.len());
    let sql = format!(
        "SELECT d.seq, d.kind, d.occurred_at, d.text, i.id, i.channel, i.subject, i.state, \
         COALESCE(c.merged_into, c.id) AS customer_id, COALESCE(s.name, c.name) AS customer_name \
         FROM search_documents d JOIN interactions i ON i.id = d.interaction_id \
         JOIN customers c ON c.id = i.customer_id LEFT JOIN customers s ON s.id = c.merged_into \
         WHERE d.seq IN ({list})"
    );
    let mut q = sqlx::query(&sql);
    for (seq, _) in picked {
        q = q.bind(*seq);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut found = Vec::with_capacity(rows.len());
    for r in &rows {
        found.push(Found {
            seq: r.try_get("seq")?,
            kind: r.try_get("kind")?,
            at: r.try_get("occurred_at")?,
            text: r.try_get::<Option<String>, _>("text")?.unwrap_or_default(),
            id: r.try_get("id")?,
            channel: r.try_get("channel")?,
            subject: r.try_get("subject")?,
            state: r.try_get("state")?,
            customer_id: r.try_get("customer_id")?,
            customer_name: r.try_get("customer_name")?,
        });
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.seq));
    Ok(found)
}

/// The customers matching `terms` that `scope` may see, by name: at most `limit`.
pub async fn customers(
    conn: &mut Conn,
    backend: Backend,
    terms: &Terms,
    scope: Scope<'_>,
    limit: usize,
) -> Result<Customers, sqlx::Error> {
    let agent = matches!(scope, Scope::Agent(_));
    let mut n = if agent { 3 } else { 2 };
    let mut next = || {
        let p = format!("${n}");
        n += 1;
        p
    };
    // The customer terms matching, at most $1 of them: (customer id).
    let matching = match (backend, terms.indexed()) {
        (Backend::Sqlite, true) => {
            let q = next();
            let short: String = terms
                .short
                .iter()
                .map(|_| format!(" AND t.text LIKE {} ESCAPE '\\'", next()))
                .collect();
            format!(
                "SELECT t.customer_id FROM search_customers f \
                 JOIN search_customer_terms t ON t.id = f.rowid \
                 WHERE search_customers MATCH {q}{short} ORDER BY f.rowid DESC LIMIT $1"
            )
        }
        (Backend::Sqlite, false) => {
            let (lo, hi) = (next(), next());
            format!(
                "SELECT customer_id FROM search_customer_terms WHERE text >= {lo} AND text < {hi} LIMIT $1"
            )
        }
        (Backend::Postgres, indexed) => {
            let patterns: Vec<String> = if indexed {
                terms.all().map(|_| next()).collect()
            } else {
                vec![next()]
            };
            let all = |col: &str| {
                patterns
                    .iter()
                    .map(|p| format!("{col} ILIKE {p}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            format!(
                "(SELECT id AS customer_id FROM customers WHERE {} LIMIT $1) UNION ALL \
                 (SELECT customer_id FROM customer_identities WHERE kind <> 'visitor_id' AND {} LIMIT $1)",
                all("name"),
                all("value")
            )
        }
    };
    let visible = if agent {
        " AND EXISTS (SELECT 1 FROM interactions i JOIN interaction_holders x \
           ON x.interaction_id = i.id AND x.agent_id = $2 \
           WHERE i.customer_id IN (SELECT k.id FROM customers k WHERE k.id = c.id OR k.merged_into = c.id))"
    } else {
        ""
    };
    let sql = format!(
        "SELECT m.customer_id AS matched, c.id, c.name FROM ({matching}) m \
         JOIN customers k ON k.id = m.customer_id \
         JOIN customers c ON c.id = COALESCE(k.merged_into, k.id) WHERE 1 = 1{visible}"
    );
    let mut q = sqlx::query(&sql).bind(CUSTOMER_EXAMINE);
    if let Scope::Agent(a) = scope {
        q = q.bind(a.to_string());
    }
    match (backend, terms.indexed()) {
        (Backend::Sqlite, true) => {
            q = q.bind(fts_query(&terms.long));
            for t in &terms.short {
                q = q.bind(contains(t));
            }
        }
        (Backend::Sqlite, false) => {
            // The NOCASE index folds ASCII letters; so must the bounds.
            let lo = terms.whole.to_ascii_lowercase();
            q = q.bind(lo.clone()).bind(format!("{lo}\u{10FFFF}"));
        }
        (Backend::Postgres, true) => {
            for t in terms.all() {
                q = q.bind(contains(t));
            }
        }
        (Backend::Postgres, false) => {
            q = q.bind(format!("{}%", escape_like(&terms.whole)));
        }
    }
    let rows = q.persistent(false).fetch_all(&mut *conn).await?;
    let mut matched = 0i64;
    let mut ids = HashSet::new();
    let mut found = Vec::new();
    for r in &rows {
        matched += 1;
        let id: String = r.try_get("id")?;
        if ids.insert(id.clone()) {
            found.push(Customer {
                id,
                name: r.try_get("name")?,
            });
        }
    }
    let more = matched >= CUSTOMER_EXAMINE || found.len() > limit;
    found.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    found.truncate(limit);
    Ok(Customers { found, more })
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
