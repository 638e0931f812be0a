//! The contacts one by one, as the interaction export and a report's drill-down list
//! them: a page at a time in arrival order, with their times and outcome.

use sqlx::Row;

use super::super::Conn;

/// The columns of the interaction export, in order.
pub const INTERACTION_COLUMNS: [&str; 10] = [
    "id",
    "channel",
    "tier",
    "topic",
    "agent",
    "created",
    "answered",
    "completed",
    "wait_secs",
    "outcome",
];

/// One contact as the reports list it.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionLine {
    /// Its id.
    pub id: String,
    /// Its channel.
    pub channel: String,
    /// Its tier at entry.
    pub tier: String,
    /// Its topic, if any.
    pub topic: Option<String>,
    /// The agent who holds or last held it, if any.
    pub agent: Option<String>,
    /// When it arrived (ms).
    pub created_at: i64,
    /// When it was first answered (ms), if it was.
    pub answered_at: Option<i64>,
    /// When it was completed or abandoned (ms), if it was.
    pub ended_at: Option<i64>,
    /// Its state now: `completed`, `abandoned`, `assigned`, `queued`…
    pub outcome: String,
}

impl InteractionLine {
    /// How long the customer waited (ms): to the first answer, or to giving up; none
    /// while still waiting.
    pub fn wait_ms(&self) -> Option<i64> {
        match (self.answered_at, self.outcome.as_str()) {
            (Some(a), _) => Some(a - self.created_at),
            (None, "abandoned") => self.ended_at.map(|e| e - self.created_at),
            _ => None,
        }
    }

    /// Its cells for the export, in [`INTERACTION_COLUMNS`] order (times RFC 3339 UTC).
    pub fn cells(&self) -> [String; 10] {
        let time = |t: Option<i64>| t.map(super::super::rfc3339).unwrap_or_default();
        [
            self.id.clone(),
            self.channel.clone(),
            self.tier.clone(),
            self.topic.clone().unwrap_or_default(),
            self.agent.clone().unwrap_or_default(),
            super::super::rfc3339(self.created_at),
            time(self.answered_at),
            time(self.ended_at.filter(|_| self.outcome == "completed")),
            self.wait_ms()
                .map(|w| format!("{:.3}", w as f64 / 1000.0))
                .unwrap_or_default(),
            self.outcome.clone(),
        ]
    }
}

/// Which contacts a listing keeps.
#[derive(Debug, Clone, Copy)]
pub enum Only<'a> {
    /// Every one.
    All,
    /// Those whose slice (`tier`, `channel`, `topic` or `agent`, checked by the caller)
    /// has the value ('' for none).
    Is(&'a str, &'a str),
    /// Those held (or last held) by one of these agents, and with `none` those no agent
    /// holds.
    AgentIn(&'a [String], bool),
}

/// Up to `limit` contacts that arrived after `after` (arrival ms, id) and before `to`,
/// in arrival order, of those `only` keeps. A chat whose visitor never wrote (`opened`,
/// `left`) is no contact, and is not listed.
pub async fn interactions_page(
    conn: &mut Conn,
    after: (i64, &str),
    to: i64,
    limit: i64,
    only: Only<'_>,
) -> Result<Vec<InteractionLine>, sqlx::Error> {
    let filter = match only {
        Only::All => String::new(),
        Only::Is(slice, _) => {
            let column = match slice {
                "tier" => "i.tier",
                "channel" => "i.channel",
                "topic" => "i.topic",
                _ => "i.agent_id",
            };
            format!("AND COALESCE({column}, '') = $5")
        }
        Only::AgentIn(agents, none) => {
            let mut or = Vec::new();
            if !agents.is_empty() {
                let list = (0..agents.len())
                    .map(|k| format!("${}", k + 5))
                    .collect::<Vec<_>>()
                    .join(", ");
                or.push(format!("i.agent_id IN ({list})"));
            }
            if none {
                or.push("i.agent_id IS NULL".into());
            }
            if or.is_empty() {
                return Ok(Vec::new());
            }
            format!("AND ({})", or.join(" OR "))
        }
    };
    let sql = format!(
        "SELECT i.id, i.channel, i.tier, i.topic, i.agent_id, i.created_at, i.state, \
         (SELECT MIN(h.occurred_at) FROM history h WHERE h.interaction_id = i.id \
          AND h.kind = 'assigned') AS answered_at, \
         (SELECT MAX(h.occurred_at) FROM history h WHERE h.interaction_id = i.id \
          AND h.kind IN ('completed', 'abandoned')) AS ended_at \
         FROM interactions i \
         WHERE (i.created_at > $1 OR (i.created_at = $1 AND i.id > $2)) AND i.created_at < $3 \
         AND i.state NOT IN ('opened', 'left') {filter} ORDER BY i.created_at, i.id LIMIT $4",
    );
    let rows = sqlx::query(&sql)
        .bind(after.0)
        .bind(after.1)
        .bind(to)
        .bind(limit);
    let rows = match only {
        Only::All => rows,
        Only::Is(_, value) => rows.bind(value),
        Only::AgentIn(agents, _) => agents.iter().fold(rows, |q, a| q.bind(a.as_str())),
    }
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InteractionLine {
                id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                tier: r.try_get("tier")?,
                topic: r.try_get("topic")?,
                agent: r.try_get("agent_id")?,
                created_at: r.try_get("created_at")?,
                answered_at: r.try_get("answered_at")?,
                ended_at: r.try_get("ended_at")?,
                outcome: r.try_get("state")?,
            })
        })
        .collect()
}
