//! Which version of the routing rules is active. Every change — a PUT over the API, a
//! roll-back, an edit of the rules file picked up at start-up or on SIGHUP — is stored as
//! a new version with who made it, and handed to the router, which applies it at once to
//! every interaction already waiting.

use std::path::Path;

use super::rules::{Report, Rules};
use crate::store::{self, now_ms, Store};

/// The rules in force and their version.
#[derive(Debug, Clone)]
pub struct Active {
    /// The version's number.
    pub version: i64,
    /// The rules.
    pub rules: Rules,
    /// Their warnings.
    pub report: Report,
}

/// Why the rules file was not made the active version.
#[derive(Debug)]
pub enum FileError {
    /// The file cannot be read or has errors: every one, each naming where.
    Invalid(Vec<String>),
    /// The store failed; the file was not looked at further.
    Store(sqlx::Error),
}

impl From<sqlx::Error> for FileError {
    fn from(e: sqlx::Error) -> Self {
        FileError::Store(e)
    }
}

impl FileError {
    /// One line per problem, for logs and the command line.
    pub fn lines(&self) -> Vec<String> {
        match self {
            FileError::Invalid(errors) => errors.clone(),
            FileError::Store(e) => vec![format!("the store could not be used: {e}")],
        }
    }
}

/// What reading the rules file came to.
#[derive(Debug)]
pub enum FromFile {
    /// The file changed since it was last read and is now the active version.
    Changed(Active),
    /// The file is as it was last read: the active version stays (it may be one made
    /// over the API since).
    Unchanged(Active),
}

/// Reads the rules file and makes it the active version if it changed since it was last
/// read. A file with errors is refused whole; `Err` lists them.
pub async fn from_file(
    store: &Store,
    path: Option<&Path>,
    tiers: &[String],
) -> Result<FromFile, FileError> {
    let (text, source) = Rules::read_source(path).map_err(|r| FileError::Invalid(r.errors))?;
    let mut conn = store.begin_write().await?;
    let last_read = store::rules::latest_from_file(&mut conn).await?;
    if last_read.as_ref().is_some_and(|v| v.document == text) {
        let latest = store::rules::latest(&mut conn)
            .await?
            .expect("a version read from the file exists");
        let (rules, report) = Rules::check(
            &latest.document,
            &format!("rules version {}", latest.version),
            tiers,
        )
        .map_err(|r| FileError::Invalid(r.errors))?;
        return Ok(FromFile::Unchanged(Active {
            version: latest.version,
            rules,
            report,
        }));
    }
    let (rules, report) =
        Rules::check(&text, &source, tiers).map_err(|r| FileError::Invalid(r.errors))?;
    let version = store::rules::add(&mut conn, &text, "file", Some(&source), now_ms()).await?;
    let change = store::audit::Change {
        actor: "file".into(),
        action: "rules.apply",
        target_kind: "rules",
        target_id: Some(version.to_string()),
        before: None,
        after: Some(serde_json::json!({ "version": version, "source": source })),
    };
    store::audit::record(&mut conn, &[change], now_ms()).await?;
    conn.commit().await?;
    Ok(FromFile::Changed(Active {
        version,
        rules,
        report,
    }))
}

/// Reads the rules file again and, if it changed, makes it the active version and hands
/// it to the router: what SIGHUP, `switchboard reload` and `POST
/// /api/routing/rules/reload` do. Answers the active version and whether it changed.
pub async fn reload(
    store: &Store,
    path: Option<&Path>,
    tiers: &[String],
    router: &super::router::RouterHandle,
    services: &crate::service::Services,
    lock: &tokio::sync::Mutex<()>,
) -> Result<(i64, bool), FileError> {
    let _one_at_a_time = lock.lock().await;
    match from_file(store, path, tiers).await? {
        FromFile::Changed(a) => {
            let rules = std::sync::Arc::new(a.rules);
            services.set(a.version, rules.clone());
            router.set_rules(rules, a.version);
            Ok((a.version, true))
        }
        FromFile::Unchanged(a) => Ok((a.version, false)),
    }
}
