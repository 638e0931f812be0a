//! `GET /api/queue/service-level`: the service level per tier, hour by hour, over the
//! last hours (24 by default) — the day's curve a supervisor watches, read from the
//! recorded history, so it survives restarts and agrees with what the simulator replays.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Supervisor;
use super::error::{ApiError, ApiQuery};
use super::AppState;
use crate::simulation::Active;
use crate::store::{now_ms, rfc3339};

const HOUR_MS: i64 = 3_600_000;

/// The window asked for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Hours back from now, 1 to 168 (24 by default).
    hours: Option<i64>,
}

/// Counts per tier and hour slot from `since`: [answered, answered within the tier's
/// target, abandoned]; a tier not in `targets` has none, and nothing is within it. A wait
/// the event does not state is the time from the contact's arrival to its answer, never
/// taken as within the target for want of a figure.
fn tally(
    rows: Vec<(String, String, i64, String, i64)>,
    since: i64,
    buckets: usize,
    targets: &BTreeMap<String, f64>,
) -> BTreeMap<String, Vec<[u64; 3]>> {
    let mut per: BTreeMap<String, Vec<[u64; 3]>> = BTreeMap::new();
    for (tier, kind, at, data, created_at) in rows {
        let slot = ((at - since) / HOUR_MS) as usize;
        if at < since || slot >= buckets {
            continue;
        }
        let row = per
            .entry(tier.clone())
            .or_insert_with(|| vec![[0; 3]; buckets]);
        if kind == "abandoned" {
            row[slot][2] += 1;
            continue;
        }
        let waited = serde_json::from_str::<Value>(&data)
            .ok()
            .and_then(|d| d["waited_secs"].as_f64())
            .unwrap_or((at - created_at).max(0) as f64 / 1000.0);
        row[slot][0] += 1;
        row[slot][1] += u64::from(targets.get(&tier).is_some_and(|t| waited <= *t));
    }
    per
}

/// Per tier and hour: contacts answered, answered within the tier's target under the
/// active rules (its maximum wait under the head-start order), and abandoned while
/// waiting.
pub async fn by_hour(
    State(state): State<AppState>,
    _: Supervisor,
    ApiQuery(q): ApiQuery<Window>,
) -> Result<Json<Value>, ApiError> {
    let hours = q.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::field("hours", "must be from 1 to 168"));
    }
    let now = now_ms();
    // Whole hours, so a bucket means the same thing on every refresh.
    let end = (now / HOUR_MS + 1) * HOUR_MS;
    let since = end - hours * HOUR_MS;
    let active = Active::latest(&state.store, &state.settings.tiers.order).await?;
    let mut conn = state.store.pool().acquire().await?;
    let rows: Vec<(String, String, i64, String, i64)> = sqlx::query_as(
        "SELECT i.tier, h.kind, h.occurred_at, h.data, i.created_at FROM history h \
         JOIN interactions i ON i.id = h.interaction_id \
         WHERE h.kind IN ('assigned', 'abandoned') AND h.occurred_at >= $1 AND i.created_at >= $2",
    )
    .bind(since)
    // An interaction answered in the window entered at most a few hours before it.
    .bind(since - 7 * 24 * HOUR_MS)
    .fetch_all(&mut *conn)
    .await?;
    // A tier without a target has no service level: nothing counts as within it.
    let targets: BTreeMap<String, f64> = active
        .rules
        .tiers
        .keys()
        .filter_map(|t| Some((t.clone(), active.rules.service_target_secs(t)? as f64)))
        .collect();
    let per = tally(rows, since, hours as usize, &targets);
    let hours_out: Vec<String> = (0..hours).map(|h| rfc3339(since + h * HOUR_MS)).collect();
    let tiers: serde_json::Map<String, Value> = per
        .into_iter()
        .map(|(tier, slots)| {
            let target = active.rules.service_target_secs(&tier);
            let points: Vec<Value> = slots
                .iter()
                .map(|[n, within, abandoned]| {
                    let offered = n + abandoned;
                    json!({
                        "answered": n, "within_target": within, "abandoned": abandoned,
                        "share": (offered > 0 && target.is_some()).then(|| *within as f64 / offered as f64),
                    })
                })
                .collect();
            (tier, json!({ "target_secs": target, "hours": points }))
        })
        .collect();
    Ok(Json(
        json!({ "hours": hours_out, "tiers": tiers, "rules_version": active.version }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_the_event_does_not_state_is_taken_from_the_arrival_not_as_none() {
        let targets = BTreeMap::from([("high".to_string(), 20.0)]);
        let at = 10 * HOUR_MS + 5_000;
        let rows = vec![
            // Stated: 5 s, within 20.
            (
                "high".into(),
                "assigned".into(),
                at,
                r#"{"waited_secs": 5.0}"#.into(),
                at - 5_000,
            ),
            // Not stated, arrived 90 s before its answer: not within.
            (
                "high".into(),
                "assigned".into(),
                at,
                "{}".into(),
                at - 90_000,
            ),
            // Unreadable data, arrived 3 s before: within.
            (
                "high".into(),
                "assigned".into(),
                at,
                "not json".into(),
                at - 3_000,
            ),
            (
                "high".into(),
                "abandoned".into(),
                at,
                "{}".into(),
                at - 1_000,
            ),
        ];
        let per = tally(rows, 10 * HOUR_MS, 1, &targets);
        assert_eq!(per["high"], vec![[3, 2, 1]]);
    }

    #[test]
    fn a_tier_without_a_target_counts_its_answers_and_none_within() {
        let targets = BTreeMap::from([("high".to_string(), 20.0)]);
        let at = 10 * HOUR_MS + 5_000;
        let rows = vec![(
            "low".into(),
            "assigned".into(),
            at,
            r#"{"waited_secs": 1.0}"#.into(),
            at - 1_000,
        )];
        let per = tally(rows, 10 * HOUR_MS, 1, &targets);
        assert_eq!(per["low"], vec![[1, 0, 0]]);
    }
}
