//! Multi-row statements: one INSERT carries many rows, and one SELECT looks up many
//! keys. The intake writer relies on these so that a group of contacts costs a handful
//! of statements, not a handful per contact.

use super::Conn;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text, or NULL.
    Text(Option<String>),
    /// An integer, or NULL.
    Int(Option<i64>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(Some(s.to_string()))
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(Some(s))
    }
}
impl From<Option<String>> for Arg {
    fn from(s: Option<String>) -> Self {
        Arg::Text(s)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

/// Rows per statement: well inside SQLite's and PostgreSQL's limits on bound values.
const ROWS_PER_STATEMENT: usize = 400;

/// Runs `head VALUES (…), (…) tail` for every row of `columns` values in `args`;
/// answers how many rows were written (fewer than given when `tail` skips conflicts).
pub async fn insert(
    conn: &mut Conn,
    head: &str,
    columns: usize,
    args: Vec<Arg>,
    tail: &str,
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for (sql, chunk) in statements(conn, head, columns, args, tail) {
        written += bind_all(sqlx::query(&sql), chunk)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(written)
}

/// As [`insert`], with a `tail` that ends in `RETURNING …`: answers the rows returned.
pub async fn insert_returning(
    conn: &mut Conn,
    head: &str,
    columns: usize,
    args: Vec<Arg>,
    tail: &str,
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut returned = Vec::new();
    for (sql, chunk) in statements(conn, head, columns, args, tail) {
        returned.extend(
            bind_all(sqlx::query(&sql), chunk)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(returned)
}

/// The statements that write `args`, rows of `columns` values, each with its values.
fn statements(
    conn: &Conn,
    head: &str,
    columns: usize,
    args: Vec<Arg>,
    tail: &str,
) -> Vec<(String, Vec<Arg>)> {
    debug_assert_eq!(args.len() % columns, 0);
    // SQLite binds anonymous `?` parameters by position; numbered ones it must look up by
    // name, one at a time, which costs more than the insert itself in a 5,000-value statement.
    let anonymous = conn.backend_name() == "SQLite";
    let mut args = args.into_iter().peekable();
    let mut out = Vec::new();
    while args.peek().is_some() {
        let chunk: Vec<Arg> = args.by_ref().take(columns * ROWS_PER_STATEMENT).collect();
        let rows = chunk.len() / columns;
        let values = if anonymous {
            anonymous_placeholders(rows, columns)
        } else {
            placeholders(rows, columns)
        };
        out.push((format!("{head} VALUES {values} {tail}"), chunk));
    }
    out
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values.
pub fn placeholders(rows: usize, columns: usize) -> String {
    let mut s = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..columns {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(r * columns + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

/// `(?, ?), (?, ?)` for `rows` rows of `columns` values (SQLite only).
fn anonymous_placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// `$first, $first+1, …` for an `IN (…)` list of `n` values.
pub fn list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the query `sql(list)` once per chunk of `values`, where `list` is the chunk's
/// placeholders for an `IN (…)`, numbered after the `leading` values bound before each
/// chunk's; answers every row. Lookups of many keys cost one statement per 400 keys.
pub async fn fetch_in(
    conn: &mut Conn,
    leading: &[Arg],
    values: &[impl AsRef<str>],
    sql: impl Fn(&str) -> String,
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for chunk in values.chunks(ROWS_PER_STATEMENT) {
        let sql = sql(&list(leading.len() + 1, chunk.len()));
        let args = leading
            .iter()
            .cloned()
            .chain(chunk.iter().map(|v| Arg::from(v.as_ref())))
            .collect();
        rows.extend(
            bind_all(sqlx::query(&sql), args)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(rows)
}

/// Binds every value in order.
pub fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
        };
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list(3, 2), "$3, $4");
        assert_eq!(anonymous_placeholders(2, 2), "(?, ?), (?, ?)");
    }
}
