//! `GET /api/search`: an agent finds the conversations it has held and their customers,
//! a supervisor or an admin every conversation and customer, by any part of the words
//! of a message, a subject or a note, or of a customer's name or identities. How the
//! indexes are read is in [`crate::store::search`].

use std::time::Instant;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Anyone;
use super::error::{ApiError, ApiQuery};
use super::AppState;
use crate::store::agents::Role;
use crate::store::rfc3339;
use crate::store::search::{self, Scope, Terms};

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// The most words in a query.
pub const MAX_TERMS: usize = 10;
/// About how many characters of a message a snippet shows.
const SNIPPET_CHARS: usize = 120;
/// Of which at most this many come before the match.
const SNIPPET_BEFORE: usize = 30;

/// The query of `GET /api/search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// What to find: 1 to 200 characters, up to 10 words (split at spaces); each word is
    /// found as part of a longer one, case ignored, and every word must be in the same
    /// message. Words of one or two characters only are looked for in recent messages.
    q: Option<String>,
    /// At most this many interactions, and this many customers: 1 to 50 (default 20).
    limit: Option<i64>,
    /// The previous page's `next_before`: matches older than that.
    before: Option<i64>,
}

/// `GET /api/search?q=…&limit=20&before=…`: the interactions whose words match, newest
/// match first, each once with a snippet of its newest matching message; and (on the
/// first page) the customers whose name or identities match.
pub async fn search(
    State(state): State<AppState>,
    Anyone(by): Anyone,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let text = q.q.as_deref().unwrap_or_default().trim();
    if text.is_empty() {
        return Err(ApiError::field(
            "q",
            "say what to find: 1 to 200 characters",
        ));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::field("q", "at most 200 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::field("q", "no control characters"));
    }
    let terms = Terms::new(text);
    if terms.all().count() > MAX_TERMS {
        return Err(ApiError::field("q", "at most 10 words"));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::field("limit", "1 to 50"));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::field(
            "before",
            "a page's next_before: a positive number",
        ));
    }
    let scope = match (&by.role, by.agent_id.as_deref()) {
        (Role::Agent, Some(agent)) => Scope::Agent(agent),
        (Role::Agent, None) => return Err(ApiError::Forbidden("an agent without an id".into())),
        _ => Scope::All,
    };
    let began = Instant::now();
    let backend = state.store.backend();
    let mut tx = search::begin(&state.store).await?;
    let page =
        search::conversations(&mut tx, backend, &terms, scope, q.before, limit as usize).await?;
    let customers = if q.before.is_none() {
        Some(search::customers(&mut tx, backend, &terms, scope, limit as usize).await?)
    } else {
        None
    };
    // It only read: nothing to keep or lose in its end.
    tx.rollback().await?;
    crate::telemetry::searched(terms.indexed(), began.elapsed());
    let interactions: Vec<Value> = page
        .found
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "channel": f.channel, "subject": f.subject, "state": f.state,
                "customer_id": f.customer_id, "customer_name": f.customer_name,
                "at": rfc3339(f.at), "matched": f.kind, "snippet": snippet(&f.text, &terms),
            })
        })
        .collect();
    let (found_customers, more) = match &customers {
        Some(c) => (
            c.found
                .iter()
                .map(|c| json!({ "id": c.id, "name": c.name }))
                .collect(),
            c.more,
        ),
        None => (Vec::new(), false),
    };
    Ok(Json(json!({
        "interactions": interactions,
        "customers": found_customers,
        "customers_more": more,
        "next_before": page.next_before,
        "indexed": terms.indexed(),
    })))
}

/// About [`SNIPPET_CHARS`] characters of `text` around its first match of a term, its
/// whitespace made single spaces, with `…` where it was cut.
pub fn snippet(text: &str, terms: &Terms) -> String {
    let chars: Vec<char> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    let folded: Vec<char> = chars.iter().map(|&c| fold(c)).collect();
    let at = terms
        .all()
        .filter_map(|t| {
            let t: Vec<char> = t.chars().map(fold).collect();
            folded.windows(t.len()).position(|w| w == t.as_slice())
        })
        .min()
        .unwrap_or(0);
    let start = at
        .saturating_sub(SNIPPET_BEFORE)
        .min(chars.len().saturating_sub(SNIPPET_CHARS));
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_shows_the_match_with_what_comes_before_and_after() {
        let long = format!(
            "{} the refund was sent {}",
            "a ".repeat(100),
            "b ".repeat(100)
        );
        let s = snippet(&long, &Terms::new("REFUND"));
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("the refund was sent"), "{s}");
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 2);
        assert_eq!(
            snippet("我想\n\n申请退款，谢谢", &Terms::new("退款")),
            "我想 申请退款，谢谢"
        );
        // A match near the end shows as much as fits before it.
        let s = snippet(&format!("{}退款", "字".repeat(300)), &Terms::new("退款"));
        assert!(s.starts_with('…') && s.ends_with("退款"), "{s}");
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
    }
}
