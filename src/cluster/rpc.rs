//! Calls to the leader's router from the other nodes: `POST /internal/router` with a
//! [`Call`], answered with a [`Reply`]. A follower's API (a supervisor moving a contact,
//! `GET /api/queue`) and channels (a call answered at the phone system, a hang-up) reach
//! the router this way. Calls carry the cluster's secret; a node that does not lead
//! answers 409, and the caller asks again whoever leads now.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use switchboard_contract::BoxFuture;

use super::{Cluster, Role};
use crate::api::AppState;
use crate::routing::router::{Call, Remote, Reply};
use crate::simulation::Active;

/// The header that carries the cluster's secret on calls between nodes.
pub const SECRET_HEADER: &str = "x-switchboard-cluster";
/// The path of the leader's router.
pub const PATH: &str = "/internal/router";

/// Attempts at reaching a leader, over about the time a failover takes.
const ATTEMPTS: u32 = 12;

/// A follower's way to the leader's router.
pub struct LeaderRouter {
    cluster: Arc<Cluster>,
}

impl LeaderRouter {
    /// The leader's router, for `cluster`'s node.
    pub fn new(cluster: Arc<Cluster>) -> Arc<LeaderRouter> {
        Arc::new(LeaderRouter { cluster })
    }

    async fn once(&self, url: &str, call: &Call) -> Result<Reply, String> {
        let resp = self
            .cluster
            .http
            .post(format!("{url}{PATH}"))
            .header(SECRET_HEADER, self.cluster.secret())
            .json(call)
            .send()
            .await
            .map_err(|e| format!("the leader could not be reached: {e}"))?;
        match resp.status() {
            s if s.is_success() => resp
                .json::<Reply>()
                .await
                .map_err(|e| format!("the leader's answer could not be read: {e}")),
            s => Err(format!("the leader answered {s}")),
        }
    }
}

impl Remote for LeaderRouter {
    fn call(&self, call: Call) -> BoxFuture<'_, Result<Reply, String>> {
        Box::pin(async move {
            let mut last = "no node leads".to_string();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt.min(4))))
                        .await;
                }
                let leader = match self.cluster.role() {
                    Role::Follower { leader: Some(l) } => Some(l.url),
                    // This node leads now: its own router answers (through its handle).
                    Role::Leader { .. } | Role::Single => {
                        return Err("this node leads now; ask again".into())
                    }
                    Role::Follower { leader: None } => None,
                };
                let url = match leader {
                    Some(url) => url,
                    None => match self.cluster.leader().await {
                        Ok(Some(l)) => l.url,
                        Ok(None) => continue,
                        Err(e) => {
                            last = e.to_string();
                            continue;
                        }
                    },
                };
                match self.once(&url, &call).await {
                    Ok(reply) => return Ok(reply),
                    Err(e) => {
                        last = e;
                        // Perhaps another node leads by now.
                        self.cluster.follow().await;
                    }
                }
            }
            metrics::counter!("switchboard_cluster_call_failures_total").increment(1);
            Err(last)
        })
    }
}

/// `POST /internal/router`: a call from another node, answered by this node's router
/// when it leads.
pub async fn serve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(call): Json<Call>,
) -> Response {
    let Some(cluster) = &state.cluster else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not_found", "message": "this node is no cluster's" })),
        )
            .into_response();
    };
    let presented = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    if !cluster.trusts(presented) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "unauthorized", "message": "calls between nodes carry the cluster's secret" })),
        )
            .into_response();
    }
    if !cluster.leads() || !state.router.is_local() {
        return (
            StatusCode::CONFLICT,
            Json(json!({ "error": "not_leader", "message": "this node does not lead", "role": cluster.role() })),
        )
            .into_response();
    }
    match answer(&state, call).await {
        Some(reply) => Json(reply).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "unavailable", "message": "the router is stopping; ask again" })),
        )
            .into_response(),
    }
}

/// What this node's router answers to `call`.
async fn answer(state: &AppState, call: Call) -> Option<Reply> {
    let router = &state.router;
    let unavailable = |e: sqlx::Error| Reply::Unavailable {
        message: e.to_string(),
    };
    Some(match call {
        Call::Snapshot => Reply::Snapshot {
            view: router.snapshot().await?,
        },
        Call::End {
            interaction_id,
            reason,
            close,
        } => match if close {
            router.close(&interaction_id, &reason).await?
        } else {
            router.end(&interaction_id, &reason).await?
        } {
            Ok(ended) => Reply::Ended { ended },
            Err(e) => unavailable(e),
        },
        Call::Move {
            interaction_id,
            to,
            by,
        } => match router.move_to(&interaction_id, &to, &by).await? {
            Ok(moved) => Reply::Moved { moved },
            Err(e) => unavailable(e),
        },
        Call::Take {
            interaction_id,
            agent_id,
        } => match router.take(&interaction_id, &agent_id).await? {
            Ok(taken) => Reply::Taken { taken },
            Err(e) => unavailable(e),
        },
        Call::SetAway { agent_id, reason } => Reply::Away {
            done: router.set_away(&agent_id, reason).await?,
        },
        Call::Positions { ids } => Reply::Positions {
            positions: router.positions(ids).await,
        },
        Call::Tell {
            interaction_id,
            event,
        } => {
            router.tell_holder(&interaction_id, event);
            Reply::Done
        }
        Call::TellAgent { agent_id, event } => {
            router.tell_agent(&agent_id, event);
            Reply::Done
        }
        Call::Connected {
            interaction_id,
            agent_id,
            channel,
            done,
        } => match router
            .connected(&interaction_id, agent_id.as_deref(), channel, done)
            .await?
        {
            Ok(connected) => Reply::Connected { connected },
            Err(e) => unavailable(e),
        },
        Call::AgentChanged { agent_id, log_out } => {
            let row = async {
                let mut conn = state.store.pool().acquire().await?;
                crate::store::agents::get(&mut conn, &agent_id).await
            }
            .await;
            match row {
                Ok(Some(agent)) => {
                    router.agent_changed(agent, log_out);
                    Reply::Done
                }
                Ok(None) => Reply::Done,
                Err(e) => unavailable(e),
            }
        }
        Call::CustomersChanged { ids } => {
            router.customers_changed(ids);
            Reply::Done
        }
        Call::RulesChanged => {
            match Active::latest(&state.store, &state.settings.tiers.order).await {
                Ok(active) => {
                    let rules = Arc::new(active.rules);
                    state.services.set(active.version, rules.clone());
                    router.set_rules(rules, active.version);
                    Reply::Done
                }
                Err(e) => Reply::Unavailable {
                    message: e.to_string(),
                },
            }
        }
    })
}
