//! Interactions by the words of their messages: the page's plan (which reads, in which
//! order, per database and searcher), the reads themselves, and what is shown of each.

use std::collections::HashSet;

use sqlx::Row;

use super::{contains, fts_query, Backend, Conn, Scope, Terms};
use super::{AGENT_EXAMINE, EXAMINE, FIRST_SCAN, INDEX_MS, RECENT};

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
    let mut page = Paging {
        cursor: before.unwrap_or(i64::MAX),
        limit,
        picked: Vec::new(),
        seen: HashSet::new(),
        next: None,
    };
    let first = (limit as i64 * 4).max(80);
    let r = Reader {
        backend,
        terms,
        scope,
    };
    let exhausted = match (backend, scope) {
        _ if !terms.indexed() => r.read(conn, &mut page, Read::Scan, first, RECENT).await?,
        // FTS5 reads its matches newest first, however many there are: a supervisor's
        // page is full after the first few.
        (Backend::Sqlite, Scope::All) => {
            r.read(conn, &mut page, Read::Index, first, EXAMINE).await?
        }
        // An agent's too, unless the word is in many messages, most of them other
        // agents': then the agent's own messages are read instead.
        (Backend::Sqlite, Scope::Agent(_)) => {
            r.read(conn, &mut page, Read::Index, first, AGENT_EXAMINE)
                .await?
                || page.next.is_some()
                || r.read(conn, &mut page, Read::Scan, first, RECENT).await?
        }
        // pg_trgm's index finds every match at once, then they are sorted: quick for a
        // rare word, not for a common one, which the newest messages (the searcher's
        // own, for an agent) answer first.
        // An index that takes too long — a rare word whose trigrams are in a great many
        // messages, each read to check — gives way to the next newest messages.
        (Backend::Postgres, _) => {
            r.read(conn, &mut page, Read::Scan, first, FIRST_SCAN)
                .await?
                || page.next.is_some()
                || match r.index_within(conn, &mut page).await? {
                    Some(exhausted) => exhausted,
                    None => r.read(conn, &mut page, Read::Scan, first, RECENT).await?,
                }
        }
    };
    let next_before = match page.next {
        Some(at) => Some(at),
        None if exhausted => None,
        None => Some(page.cursor),
    };
    let found = details(conn, &page.picked).await?;
    Ok(Page { found, next_before })
}

/// Where a page stands: the matches picked, and where reading goes on from.
struct Paging {
    /// Older than this is still to be read.
    cursor: i64,
    limit: usize,
    /// (seq of the match, interaction), newest first, each interaction once.
    picked: Vec<(i64, String)>,
    seen: HashSet<String>,
    /// Full: the next page begins here.
    next: Option<i64>,
}

/// How candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// In the trigram index, by the long terms (the short ones checked on each).
    Index,
    /// The newest documents the scope may see, every term checked on each.
    Scan,
}

/// What a search reads with: the database, the terms and who asks.
struct Reader<'a> {
    backend: Backend,
    terms: &'a Terms,
    scope: Scope<'a>,
}

impl Reader<'_> {
    /// PostgreSQL's index, for every match older than the page's cursor, given at most
    /// [`INDEX_MS`]: `None` when it took longer (and was stopped, nothing read).
    async fn index_within(
        &self,
        conn: &mut Conn,
        page: &mut Paging,
    ) -> Result<Option<bool>, sqlx::Error> {
        // Enough interactions to fill the page past those it has.
        let n = (page.limit + page.seen.len()) as i64 + 1;
        // A savepoint in the search's read: a statement stopped undoes only itself. Only
        // bitmaps: an agent's candidates (the word's index ANDed with its interactions')
        // are the only messages read, never the table in index order.
        let mut tried = sqlx::Connection::begin(&mut *conn).await?;
        for set in [
            format!("SET LOCAL statement_timeout = {INDEX_MS}"),
            "SET LOCAL enable_indexscan = off".into(),
        ] {
            sqlx::query(&set).execute(&mut *tried).await?;
        }
        match self.read(&mut tried, page, Read::Index, n, n).await {
            Ok(exhausted) => {
                for reset in ["statement_timeout", "enable_indexscan"] {
                    sqlx::query(&format!("SET LOCAL {reset} TO DEFAULT"))
                        .execute(&mut *tried)
                        .await?;
                }
                tried.commit().await?;
                Ok(Some(exhausted))
            }
            // query_canceled: the time was up.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
                tried.rollback().await?;
                crate::telemetry::search_index_gave_way();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads candidates older than the page's cursor, newest first, at most `budget` of
    /// them — `first` (a supervisor's page is often full after them), then the rest in
    /// one — until the page is full. Answers whether nothing older is left to read.
    async fn read(
        &self,
        conn: &mut Conn,
        page: &mut Paging,
        how: Read,
        first: i64,
        budget: i64,
    ) -> Result<bool, sqlx::Error> {
        let sql = self.sql(how);
        let first = first.min(budget);
        for n in [first, budget - first] {
            if n <= 0 {
                return Ok(false);
            }
            let rows = self
                .bind(sqlx::query(&sql), how, page.cursor, n)
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            for r in &rows {
                let seq: i64 = r.try_get(0)?;
                page.cursor = seq;
                // No interaction: not one the scope may see, or without every term.
                let Some(id) = r.try_get::<Option<String>, _>(1)? else {
                    continue;
                };
                if page.seen.contains(&id) {
                    continue;
                }
                if page.picked.len() == page.limit {
                    // One more than the page holds: the next page starts with it.
                    page.next = Some(seq + 1);
                    return Ok(false);
                }
                page.seen.insert(id.clone());
                page.picked.push((seq, id));
            }
            if (rows.len() as i64) < n {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Reader<'_> {
    /// The SQL of one chunk of candidates, newest first: (seq, interaction), the interaction
    /// NULL unless the scope may see it and every term to check is in it. Parameters: $1 the
    /// cursor (older than), $2 how many, $3 the agent (for an agent), then for
    /// [`Read::Index`] the index query (one on SQLite, each long term on PostgreSQL) and each
    /// short term, for [`Read::Scan`] each term.
    fn sql(&self, how: Read) -> String {
        let (backend, terms, scope) = (self.backend, self.terms, self.scope);
        let agent = matches!(scope, Scope::Agent(_));
        let mut n = if agent { 4 } else { 3 };
        let mut next = || {
            let p = format!("${n}");
            n += 1;
            p
        };
        // SQLite's LIKE has no escape character unless told; PostgreSQL's is the backslash
        // (and a pattern left a plain parameter keeps pg_trgm's index usable).
        let (like, esc) = match backend {
            Backend::Sqlite => ("LIKE", " ESCAPE '\\'"),
            Backend::Postgres => ("ILIKE", ""),
        };
        // The interaction of a candidate (`c.seq`) kept, else NULL.
        let interaction = |keep: String| {
            format!(
                "CASE WHEN 1 = 1{keep} THEN (SELECT h.interaction_id FROM history h WHERE h.seq = c.seq) END"
            )
        };
        match (backend, how) {
            (Backend::Sqlite, Read::Index) => {
                let index = next();
                let mut keep: String = terms
                    .short
                    .iter()
                    .map(|_| {
                        format!(
                            " AND (SELECT d.text FROM search_documents d WHERE d.seq = c.seq) LIKE {}{esc}",
                            next()
                        )
                    })
                    .collect();
                if agent {
                    keep = format!(
                        " AND EXISTS (SELECT 1 FROM search_held a WHERE a.agent_id = $3 AND a.seq = c.seq){keep}"
                    );
                }
                format!(
                    "SELECT c.seq, {} FROM (SELECT rowid AS seq FROM search_index \
                     WHERE search_index MATCH {index} AND rowid < $1 ORDER BY rowid DESC LIMIT $2) c \
                     ORDER BY c.seq DESC",
                    interaction(keep)
                )
            }
            // Every match older than the cursor (the searcher's own only, for an agent), each
            // interaction once by its newest: the index finds them all at once, however many.
            (Backend::Postgres, Read::Index) => {
                let all: String = terms
                    .all()
                    .map(|_| format!(" AND c.text ILIKE {}", next()))
                    .collect();
                let own = if agent {
                    " AND c.interaction_id = ANY(ARRAY(SELECT interaction_id FROM interaction_holders \
                     WHERE agent_id = $3))"
                } else {
                    ""
                };
                format!(
                    "SELECT MAX(c.seq), c.interaction_id FROM search_index c WHERE c.seq < $1{all}{own} \
                     GROUP BY c.interaction_id ORDER BY MAX(c.seq) DESC LIMIT $2"
                )
            }
            (_, Read::Scan) => {
                // The newest documents (an agent's own); SQLite reads their words from the
                // history, PostgreSQL from its copy beside the index.
                let (documents, text) = match (backend, agent) {
                    (Backend::Sqlite, false) => (
                        "SELECT seq FROM search_documents WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                        "(SELECT d.text FROM search_documents d WHERE d.seq = c.seq)",
                    ),
                    (Backend::Sqlite, true) => (
                        "SELECT seq FROM search_held WHERE agent_id = $3 AND seq < $1 ORDER BY seq DESC LIMIT $2",
                        "(SELECT d.text FROM search_documents d WHERE d.seq = c.seq)",
                    ),
                    (Backend::Postgres, false) => (
                        "SELECT seq, interaction_id, text FROM search_index WHERE seq < $1 \
                         ORDER BY seq DESC LIMIT $2",
                        "c.text",
                    ),
                    (Backend::Postgres, true) => (
                        "SELECT a.seq, s.interaction_id, s.text FROM search_held a \
                         JOIN search_index s ON s.seq = a.seq \
                         WHERE a.agent_id = $3 AND a.seq < $1 ORDER BY a.seq DESC LIMIT $2",
                        "c.text",
                    ),
                };
                let keep: String = terms
                    .all()
                    .map(|_| format!(" AND {text} {like} {}{esc}", next()))
                    .collect();
                let found = match backend {
                    Backend::Sqlite => interaction(keep),
                    Backend::Postgres => format!("CASE WHEN 1 = 1{keep} THEN c.interaction_id END"),
                };
                format!("SELECT c.seq, {found} FROM ({documents}) c ORDER BY c.seq DESC")
            }
        }
    }

    /// Binds [`Reader::sql`]'s parameters.
    fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        how: Read,
        cursor: i64,
        n: i64,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let (backend, terms, scope) = (self.backend, self.terms, self.scope);
        let mut q = q.bind(cursor).bind(n);
        if let Scope::Agent(a) = scope {
            q = q.bind(a.to_string());
        }
        match (how, backend) {
            (Read::Index, Backend::Sqlite) => {
                q = q.bind(fts_query(&terms.long));
                for t in &terms.short {
                    q = q.bind(contains(t));
                }
            }
            (Read::Index, Backend::Postgres) | (Read::Scan, _) => {
                for t in terms.all() {
                    q = q.bind(contains(t));
                }
            }
        }
        q
    }
}

/// What the page shows of each interaction picked: (seq of its match, id).
async fn details(conn: &mut Conn, picked: &[(i64, String)]) -> Result<Vec<Found>, sqlx::Error> {
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let list = crate::store::bulk::list(1, picked.len());
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
