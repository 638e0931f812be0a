//! Customers by any part of their name or identities, or the beginning of one for a
//! query too short for the trigram index.

use std::collections::HashSet;

use sqlx::Row;

use super::{contains, escape_like, fts_query, Backend, Conn, Scope, Terms, CUSTOMER_EXAMINE};

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
    // An agent's customers: of an interaction it held, or merged into one that is.
    let visible = if agent {
        " AND (EXISTS (SELECT 1 FROM interaction_holders x WHERE x.agent_id = $2 AND x.customer_id = c.id) \
           OR EXISTS (SELECT 1 FROM interaction_holders x WHERE x.agent_id = $2 \
                      AND x.customer_id IN (SELECT k.id FROM customers k WHERE k.merged_into = c.id)))"
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
