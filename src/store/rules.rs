//! Versions of the routing rules in the store.

use sqlx::Row;

use super::Conn;

/// One stored version of the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesVersion {
    /// Its number, from 1.
    pub version: i64,
    /// The rules as TOML, as written.
    pub document: String,
    /// Who made it (`file`, `admin`…).
    pub actor: String,
    /// Why, when given.
    pub comment: Option<String>,
    /// When (ms).
    pub created_at: i64,
}

fn version_row(row: &sqlx::any::AnyRow) -> Result<RulesVersion, sqlx::Error> {
    Ok(RulesVersion {
        version: row.try_get("version")?,
        document: row.try_get("document")?,
        actor: row.try_get("actor")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The newest version, if any.
pub async fn latest(conn: &mut Conn) -> Result<Option<RulesVersion>, sqlx::Error> {
    let row = sqlx::query("SELECT version, document, actor, comment, created_at FROM routing_rules ORDER BY version DESC LIMIT 1")
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(version_row).transpose()
}

/// One version.
pub async fn get(conn: &mut Conn, version: i64) -> Result<Option<RulesVersion>, sqlx::Error> {
    let row = sqlx::query("SELECT version, document, actor, comment, created_at FROM routing_rules WHERE version = $1")
        .bind(version)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(version_row).transpose()
}

/// Every version, newest first.
pub async fn all(conn: &mut Conn) -> Result<Vec<RulesVersion>, sqlx::Error> {
    let rows = sqlx::query("SELECT version, document, actor, comment, created_at FROM routing_rules ORDER BY version DESC")
        .fetch_all(conn)
        .await?;
    rows.iter().map(version_row).collect()
}

/// Stores `document` as the next version; answers its number.
pub async fn add(
    conn: &mut Conn,
    document: &str,
    actor: &str,
    comment: Option<&str>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    // Two servers sharing a PostgreSQL database must not both take the same number; on
    // SQLite the write transaction (BEGIN IMMEDIATE) already excludes every other writer.
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("LOCK TABLE routing_rules IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await?;
    }
    let next: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM routing_rules",
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO routing_rules (version, document, actor, comment, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(next)
        .bind(document)
        .bind(actor)
        .bind(comment)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(next)
}

/// The newest version read from the rules file (not made over the API).
pub async fn latest_from_file(conn: &mut Conn) -> Result<Option<RulesVersion>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT version, document, actor, comment, created_at FROM routing_rules WHERE actor = 'file' ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(version_row).transpose()
}
