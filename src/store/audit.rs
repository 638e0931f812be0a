//! The audit trail in the store: who changed what, when, from what to what.

use serde_json::Value;
use sqlx::Row;

use super::bulk::{self, Arg};
use super::Conn;

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change {
    /// Who (`admin`, an agent's id, `file`).
    pub actor: String,
    /// What was done (`customer.update`, `agent.create`, `rules.apply`, `agent.login`…).
    pub action: &'static str,
    /// The kind of thing changed (`customer`, `agent`, `rules`).
    pub target_kind: &'static str,
    /// Which one.
    pub target_id: Option<String>,
    /// The record before, when there was one.
    pub before: Option<Value>,
    /// The record after, when there is one.
    pub after: Option<Value>,
}

impl Change {
    /// A change by `actor`.
    pub fn by(
        actor: &str,
        action: &'static str,
        target_kind: &'static str,
        target_id: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Change {
        Change {
            actor: actor.to_string(),
            action,
            target_kind,
            target_id: Some(target_id.to_string()),
            before,
            after,
        }
    }
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its position: later entries have larger numbers.
    pub seq: i64,
    /// When (ms).
    pub occurred_at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The kind of thing changed.
    pub target_kind: String,
    /// Which one.
    pub target_id: Option<String>,
    /// Before.
    pub before: Option<Value>,
    /// After.
    pub after: Option<Value>,
}

/// Records `changes`, all at `now`, in the caller's transaction.
pub async fn record(conn: &mut Conn, changes: &[Change], now: i64) -> Result<(), sqlx::Error> {
    let args = changes
        .iter()
        .flat_map(|c| {
            [
                Arg::from(now),
                Arg::from(c.actor.as_str()),
                Arg::from(c.action),
                Arg::from(c.target_kind),
                Arg::from(c.target_id.clone()),
                Arg::from(c.before.as_ref().map(Value::to_string)),
                Arg::from(c.after.as_ref().map(Value::to_string)),
            ]
        })
        .collect();
    bulk::insert(
        conn,
        "INSERT INTO audit (occurred_at, actor, action, target_kind, target_id, before, after)",
        7,
        args,
        "",
    )
    .await?;
    Ok(())
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only by this actor.
    pub actor: Option<String>,
    /// Only this action, or actions starting with it when it ends in `.` (`customer.`).
    pub action: Option<String>,
    /// Only this kind of target.
    pub target_kind: Option<String>,
    /// Only this target.
    pub target_id: Option<String>,
    /// Only at or after this time (ms).
    pub since: Option<i64>,
    /// Only before this time (ms).
    pub until: Option<i64>,
}

/// A page of entries, newest first, older than `before` when given.
pub async fn page(
    conn: &mut Conn,
    f: &Filter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    // Each condition is a SQL fragment ending where its one value goes.
    let mut conditions: Vec<(String, Arg)> = Vec::new();
    if let Some(a) = &f.actor {
        conditions.push(("actor = ".into(), Arg::from(a.as_str())));
    }
    match &f.action {
        // A family (`agent.`): compared as a prefix, case and wildcards taken literally,
        // the same on SQLite and PostgreSQL (LIKE is not).
        Some(a) if a.ends_with('.') => conditions.push((
            format!("SUBSTR(action, 1, {}) = ", a.chars().count()),
            Arg::from(a.as_str()),
        )),
        Some(a) => conditions.push(("action = ".into(), Arg::from(a.as_str()))),
        None => {}
    }
    if let Some(k) = &f.target_kind {
        conditions.push(("target_kind = ".into(), Arg::from(k.as_str())));
    }
    if let Some(t) = &f.target_id {
        conditions.push(("target_id = ".into(), Arg::from(t.as_str())));
    }
    if let Some(t) = f.since {
        conditions.push(("occurred_at >= ".into(), Arg::from(t)));
    }
    if let Some(t) = f.until {
        conditions.push(("occurred_at < ".into(), Arg::from(t)));
    }
    let mut sql = String::from(
        "SELECT seq, occurred_at, actor, action, target_kind, target_id, before, after FROM audit WHERE seq < $1",
    );
    let mut args: Vec<Arg> = vec![Arg::from(before.unwrap_or(i64::MAX))];
    for (clause, arg) in conditions {
        args.push(arg);
        sql.push_str(&format!(" AND {clause}${}", args.len()));
    }
    args.push(Arg::from(limit));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
    let rows = bulk::bind_all(sqlx::query(&sql), args)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let json = |col: &str| -> Result<Option<Value>, sqlx::Error> {
                let text: Option<String> = row.try_get(col)?;
                Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
            };
            Ok(Entry {
                seq: row.try_get("seq")?,
                occurred_at: row.try_get("occurred_at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target_kind: row.try_get("target_kind")?,
                target_id: row.try_get("target_id")?,
                before: json("before")?,
                after: json("after")?,
            })
        })
        .collect()
}
