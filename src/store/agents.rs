//! Agents in the store.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::Conn;

/// An agent's own capacity per channel, where it differs from the routing rules'.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct CapacityOverride {
    /// Calls at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<u32>,
    /// Chats at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<u32>,
    /// Emails at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<u32>,
    /// API contacts at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<u32>,
}

impl CapacityOverride {
    /// The capacity this makes of the rules' own.
    pub fn over(&self, base: crate::routing::rules::Capacity) -> crate::routing::rules::Capacity {
        crate::routing::rules::Capacity {
            phone: self.phone.unwrap_or(base.phone),
            chat: self.chat.unwrap_or(base.chat),
            email: self.email.unwrap_or(base.email),
            api: self.api.unwrap_or(base.api),
            calls_block_other_work: base.calls_block_other_work,
        }
    }
}

/// What a person may do; each role may do all the roles before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works the contacts offered to it; sees its own work and the customers it serves.
    #[default]
    Agent,
    /// Also watches the live queue and every agent, moves work, sets agents away.
    Supervisor,
    /// Also changes rules, agents, customers and tiers.
    Admin,
}

impl Role {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// Reads [`Role::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Agent, Role::Supervisor, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// An agent as stored (without the token digest).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Work email.
    pub email: Option<String>,
    /// Phone extension, for the phone system to ring.
    pub extension: Option<String>,
    /// Seniority, 1 (new) to 10.
    pub level: u8,
    /// Skills and teams.
    pub skills: Vec<String>,
    /// Capacity where it differs from the rules'.
    pub capacity: CapacityOverride,
    /// What it may do.
    pub role: Role,
    /// False once removed: kept for the history that names it.
    pub active: bool,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, name, email, extension, level, skills, capacity, active, created_at, updated_at, role";

fn agent_row(row: &AnyRow) -> Result<AgentRow, sqlx::Error> {
    let skills: String = row.try_get("skills")?;
    let capacity: Option<String> = row.try_get("capacity")?;
    Ok(AgentRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        extension: row.try_get("extension")?,
        level: row.try_get::<i64, _>("level")?.clamp(0, 255) as u8,
        skills: serde_json::from_str(&skills).unwrap_or_default(),
        capacity: capacity
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default(),
        role: Role::parse(&row.try_get::<String, _>("role")?).unwrap_or_default(),
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn capacity_json(c: &CapacityOverride) -> Option<String> {
    (*c != CapacityOverride::default()).then(|| serde_json::to_string(c).unwrap_or_default())
}

/// Writes a new agent with the digest of its token.
pub async fn insert(conn: &mut Conn, a: &AgentRow, token_sha256: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO agents ({COLUMNS}, token_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(a.id.as_str())
    .bind(a.name.as_str())
    .bind(a.email.as_deref())
    .bind(a.extension.as_deref())
    .bind(i64::from(a.level))
    .bind(serde_json::to_string(&a.skills).unwrap_or_default())
    .bind(capacity_json(&a.capacity))
    .bind(i64::from(a.active))
    .bind(a.created_at)
    .bind(a.updated_at)
    .bind(a.role.as_str())
    .bind(token_sha256)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an agent's fields as given.
pub async fn update(conn: &mut Conn, a: &AgentRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE agents SET name = $2, email = $3, extension = $4, level = $5, skills = $6, capacity = $7, \
         active = $8, updated_at = $9, role = $10 WHERE id = $1",
    )
    .bind(a.id.as_str())
    .bind(a.name.as_str())
    .bind(a.email.as_deref())
    .bind(a.extension.as_deref())
    .bind(i64::from(a.level))
    .bind(serde_json::to_string(&a.skills).unwrap_or_default())
    .bind(capacity_json(&a.capacity))
    .bind(i64::from(a.active))
    .bind(a.updated_at)
    .bind(a.role.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the agent's token digest (the old token stops working).
pub async fn set_token(
    conn: &mut Conn,
    id: &str,
    token_sha256: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE agents SET token_sha256 = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(token_sha256)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One agent by id.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<AgentRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM agents WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(agent_row).transpose()
}

/// The active agent whose token has this digest (how an agent logs in).
pub async fn by_token(
    conn: &mut Conn,
    token_sha256: &str,
) -> Result<Option<AgentRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM agents WHERE token_sha256 = $1 AND active = 1"
    ))
    .bind(token_sha256)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(agent_row).transpose()
}

/// The active agent a phone system names: by extension, else by email, else by id.
pub async fn by_reference(conn: &mut Conn, reference: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM agents WHERE active = 1 AND (extension = $1 OR lower(email) = lower($1) OR id = $1) \
         ORDER BY CASE WHEN extension = $1 THEN 0 WHEN lower(email) = lower($1) THEN 1 ELSE 2 END LIMIT 1",
    )
    .bind(reference)
    .fetch_optional(&mut *conn)
    .await
}

/// Every agent, active first, by name.
pub async fn list(conn: &mut Conn) -> Result<Vec<AgentRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM agents ORDER BY active DESC, name, id"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(agent_row).collect()
}

/// The active agent with this extension, other than `except`.
pub async fn extension_taken(
    conn: &mut Conn,
    extension: &str,
    except: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM agents WHERE extension = $1 AND active = 1 AND id <> $2")
        .bind(extension)
        .bind(except)
        .fetch_optional(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn an_agent_is_found_by_its_token_digest_and_the_token_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(
            &format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display()),
            1,
        )
        .await
        .unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let a = AgentRow {
            id: "a1".into(),
            name: "Ana".into(),
            email: None,
            extension: Some("201".into()),
            level: 3,
            skills: vec!["billing".into()],
            capacity: CapacityOverride {
                chat: Some(5),
                ..Default::default()
            },
            role: Role::Agent,
            active: true,
            created_at: 1,
            updated_at: 1,
        };
        insert(&mut conn, &a, "digest-of-secret").await.unwrap();
        assert_eq!(
            by_token(&mut conn, "digest-of-secret").await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(by_token(&mut conn, "secret").await.unwrap(), None);
        let stored: String = sqlx::query_scalar("SELECT token_sha256 FROM agents")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(stored, "digest-of-secret");
        let inactive = AgentRow { active: false, ..a };
        update(&mut conn, &inactive).await.unwrap();
        assert_eq!(
            by_token(&mut conn, "digest-of-secret").await.unwrap(),
            None,
            "a removed agent cannot log in"
        );
    }
}
