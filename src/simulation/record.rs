//! A window of recorded history, read from the store into a [`Scenario`]: the contacts
//! that arrived in it (and those already waiting or held when it opened), what became
//! of each live, the agents and their presence.

use std::collections::HashMap;

use sqlx::Row;
use switchboard_contract::ChannelKind;

use super::engine::{Arrival, Held, Outcome, PresenceChange, Scenario, SimAgent};
use crate::routing::policy::Presence;
use crate::store::{agents, presence, Conn};

/// How far before the window a contact may have arrived and still be waiting or held
/// when it opens.
const LOOKBACK_MS: i64 = 24 * 3600 * 1000;

/// The interactions that take part: arrived in the window, or arrived within the
/// lookback and still open when it began (`$1` lookback start, `$2` window end, `$3`
/// window start). A chat the visitor never wrote in was never queued (state `opened`,
/// or `left`): it takes no part; one written in arrived at its first message.
const TAKING_PART: &str = "i.created_at >= $1 AND i.created_at < $2 AND i.state NOT IN ('opened', 'left') \
     AND (i.created_at >= $3 OR i.updated_at >= $3 OR i.state IN ('queued', 'offered', 'assigned'))";

/// What the store held for a window.
#[derive(Debug)]
pub enum Loaded {
    /// The scenario to replay.
    Scenario(Scenario),
    /// More contacts than the limit took part.
    TooMany,
}

struct Live {
    offered: Vec<i64>,
    assigned: Option<(i64, String)>,
    completed: Option<i64>,
    abandoned: Option<i64>,
}

/// Reads the window `[from, to)`, replayed until `horizon`, with at most `max_contacts`
/// contacts taking part.
pub async fn load(
    conn: &mut Conn,
    from: i64,
    to: i64,
    horizon: i64,
    max_contacts: usize,
) -> Result<Loaded, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT i.id, i.tier, i.channel, i.topic, i.created_at, i.opens_at, i.idempotency_key, \
         c.owner_agent_id \
         FROM interactions i JOIN customers c ON c.id = i.customer_id \
         WHERE {TAKING_PART} ORDER BY i.created_at, i.id LIMIT $4"
    ))
    .bind(from - LOOKBACK_MS)
    .bind(to)
    .bind(from)
    .bind(max_contacts as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() > max_contacts {
        return Ok(Loaded::TooMany);
    }
    let mut live: HashMap<String, Live> = HashMap::new();
    let events = sqlx::query(&format!(
        "SELECT h.interaction_id, h.kind, h.occurred_at, h.actor FROM history h \
         JOIN interactions i ON i.id = h.interaction_id \
         WHERE {TAKING_PART} AND h.occurred_at < $4 \
         AND h.kind IN ('offered', 'assigned', 'completed', 'abandoned') ORDER BY h.seq"
    ))
    .bind(from - LOOKBACK_MS)
    .bind(to)
    .bind(from)
    .bind(horizon)
    .fetch_all(&mut *conn)
    .await?;
    for e in &events {
        let id: String = e.try_get("interaction_id")?;
        let kind: String = e.try_get("kind")?;
        let at: i64 = e.try_get("occurred_at")?;
        let l = live.entry(id).or_insert(Live {
            offered: Vec::new(),
            assigned: None,
            completed: None,
            abandoned: None,
        });
        match kind.as_str() {
            "offered" if l.assigned.is_none() => l.offered.push(at),
            "assigned" if l.assigned.is_none() => l.assigned = Some((at, e.try_get("actor")?)),
            "completed" if l.completed.is_none() => l.completed = Some(at),
            "abandoned" if l.abandoned.is_none() => l.abandoned = Some(at),
            _ => {}
        }
    }

    let all_agents = agents::list(conn).await?;
    let mut scenario = Scenario {
        from_ms: from,
        to_ms: to,
        horizon_ms: horizon,
        agents: all_agents
            .iter()
            .map(|a| SimAgent {
                id: a.id.clone(),
                level: a.level,
                skills: a.skills.clone(),
                capacity: a.capacity,
            })
            .collect(),
        ..Scenario::default()
    };
    let agent_index: HashMap<String, usize> = all_agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.clone(), i))
        .collect();
    let on_duty = presence::on_duty_at(conn, from).await?;
    let changes = presence::between(conn, from, horizon).await?;
    for p in on_duty.iter().chain(&changes) {
        if let (Some(&agent), Some(presence)) =
            (agent_index.get(&p.agent_id), Presence::parse(&p.status))
        {
            scenario.presence.push(PresenceChange {
                at_ms: p.at.max(from),
                agent,
                presence,
            });
        }
    }

    // Delays and handling times of contacts nobody took live: the window's medians.
    let accept_delays: Vec<i64> = live.values().filter_map(accept_delay).collect();
    let median_accept = median(accept_delays).unwrap_or(0);
    let mut handling: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &rows {
        let id: String = r.try_get("id")?;
        if let Some(h) = live.get(&id).and_then(handled_for) {
            handling.entry(r.try_get("channel")?).or_default().push(h);
        }
    }
    let all_handling = median(handling.values().flatten().copied().collect());
    let handling: HashMap<String, i64> = handling
        .into_iter()
        .filter_map(|(c, v)| Some((c, median(v)?)))
        .collect();

    for r in &rows {
        let id: String = r.try_get("id")?;
        let channel_name: String = r.try_get("channel")?;
        let created: i64 = r.try_get("created_at")?;
        let l = live.get(&id);
        let assigned = l.and_then(|l| l.assigned.clone());
        let completed = l.and_then(|l| l.completed);
        let abandoned = l.and_then(|l| l.abandoned);
        let channel = ChannelKind::parse(&channel_name).unwrap_or(ChannelKind::Api);
        if created < from {
            match &assigned {
                // Held when the window opened: it occupies its agent until released.
                Some((at, agent)) if *at < from => {
                    if completed.is_none_or(|c| c >= from) {
                        if let Some(&agent) = agent_index.get(agent) {
                            scenario.held.push(Held {
                                agent,
                                channel,
                                until_ms: completed,
                            });
                        }
                    }
                    continue;
                }
                // Gave up before the window: takes no part.
                _ if abandoned.is_some_and(|a| a < from) => continue,
                // Still waiting when the window opened: it takes part, uncounted.
                _ => {}
            }
        }
        // Live, a contact held for an opening or a booked time waited from then.
        let opens_at: Option<i64> = r.try_get("opens_at")?;
        let key: String = r.try_get("idempotency_key")?;
        let live_ready = opens_at.unwrap_or(created).max(created);
        let recorded = match (&assigned, abandoned) {
            (Some((at, _)), _) => Outcome::Answered((at - live_ready).max(0)),
            (None, Some(at)) => Outcome::Abandoned((at - live_ready).max(0)),
            (None, None) => Outcome::Unanswered((horizon - live_ready).max(0)),
        };
        let handling_ms = match (&assigned, completed) {
            (Some(_), _) => l.and_then(handled_for),
            (None, _) => handling.get(&channel_name).copied().or(all_handling),
        };
        scenario.arrivals.push(Arrival {
            id,
            tier: r.try_get("tier")?,
            channel,
            topic: r.try_get("topic")?,
            owner: r.try_get("owner_agent_id")?,
            at_ms: created,
            // A callback booked for a time keeps it under any rules; a wait for an
            // opening is the rules' own, worked out again in the replay.
            not_before_ms: opens_at.filter(|_| key.starts_with("callback:")),
            counted: created >= from,
            handling_ms,
            accept_ms: l.and_then(accept_delay).unwrap_or(median_accept),
            // When the customer gave up, from their arrival.
            patience_ms: abandoned.map(|at| (at - created).max(0)),
            recorded,
        });
    }
    Ok(Loaded::Scenario(scenario))
}

/// From the offer that was accepted to its acceptance.
fn accept_delay(l: &Live) -> Option<i64> {
    let (assigned, _) = l.assigned.as_ref()?;
    let offered = l.offered.iter().rev().find(|o| *o <= assigned)?;
    Some(assigned - offered)
}

/// From acceptance to completion.
fn handled_for(l: &Live) -> Option<i64> {
    Some(l.completed? - l.assigned.as_ref()?.0)
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}
