//! The HTTP interface: the admin and integration API under `/api`, and the operational
//! endpoints (`/healthz`, `/readyz`, `/metrics`).

mod agent_ws;
mod agents;
mod audit;
pub mod auth;
mod canned;
mod customers;
mod erase;
pub mod error;
mod export;
mod import;
mod interactions;
mod kept_aside;
pub mod openapi;
mod ops;
mod pages;
mod pull;
mod reports;
mod retention;
mod rules;
mod search;
mod service;
mod service_level;
mod simulate;
mod supervisor_ws;
mod survey;
mod views;
mod work;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::customers::identity::IdentityParser;
use crate::intake::IntakeService;
use crate::queue::Queue;
use crate::store::Store;
use crate::telemetry;
use error::ApiError;
use openapi::{Access, Op, Routes};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The settings the server started with.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Store,
    /// Where new contacts go.
    pub intake: Arc<IntakeService>,
    /// The waiting interactions.
    pub queue: Arc<Queue>,
    /// Reads identities given to the customer API.
    pub parser: IdentityParser,
    /// The admin token's SHA-256 (the token itself is not kept).
    pub admin_token_sha256: [u8; 32],
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Held while the routing rules change, so changes apply one at a time.
    pub rules_lock: Arc<tokio::sync::Mutex<()>>,
    /// The router.
    pub router: crate::routing::router::RouterHandle,
    /// One permit: simulations run one at a time.
    pub simulations: Arc<tokio::sync::Semaphore>,
    /// The phone channel.
    pub phone: Arc<switchboard_phone::Phone>,
    /// The web chat channel.
    pub chat: Arc<switchboard_chat::Chat>,
    /// The email channel (mail kept aside is made a contact through it).
    pub email: Arc<switchboard_email::Email>,
    /// This node in its cluster (PostgreSQL); `None` for a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The service commitments in force (hours, targets, callbacks, surveys).
    pub services: Arc<crate::service::Services>,
    /// The core as channels see it (callbacks, scores).
    pub core: Arc<crate::channels::CoreService>,
}

/// The whole HTTP router. Every route is added with its entry in the OpenAPI document
/// (see [`openapi`]), which `GET /api/openapi.json` serves.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let auth_state = state.clone();
    let api = api_routes()
        .map(|r| r.layer(DefaultBodyLimit::max(settings.api.max_body_bytes)))
        .merge(
            import_routes().map(|r| r.layer(DefaultBodyLimit::max(settings.api.max_import_bytes))),
        )
        .merge(
            upload_routes()
                .map(|r| r.layer(DefaultBodyLimit::max(settings.email.max_attachment_bytes))),
        )
        .map(|r| {
            r.route_layer(middleware::from_fn_with_state(
                auth_state,
                auth::authenticate,
            ))
        })
        .serving_document("/api/openapi.json");
    let timeout = Duration::from_secs(settings.server.request_timeout_secs);
    let cluster = state.cluster.clone();
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // Between a cluster's nodes: the leader's router answers the others.
        .route(
            crate::cluster::rpc::PATH,
            axum::routing::post(crate::cluster::rpc::serve),
        )
        .route("/agent/ws", get(agent_ws::upgrade))
        .route("/supervisor/ws", get(supervisor_ws::upgrade))
        .merge(switchboard_phone::routes(state.phone.clone()))
        .merge(switchboard_chat::routes(state.chat.clone()))
        .merge(pages::routes())
        .route("/survey/{token}", get(survey::page).post(survey::answer))
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // On a cluster's follower, the websockets that live on the leader go there.
        .layer(middleware::from_fn_with_state(
            cluster,
            crate::cluster::proxy::relay_to_leader,
        ))
        .layer(middleware::from_fn(move |req, next| {
            observe(req, next, timeout)
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The span names the route template, never the concrete path: paths carry
            // customer ids and identities.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .with_state(state)
}

/// The customer import, with its own body limit.
fn import_routes() -> Routes {
    Routes::default().add(
        Op::post(
            "/api/customers/import",
            "bulk import customers (CSV or JSON): all rows or none",
        )
        .import()
        .responses(&[
            (200, "the customers created and updated"),
            (422, "bad rows, every one listed; nothing written"),
        ]),
        import::import,
    )
}

/// Files an agent attaches to a reply: bodies up to the largest attachment kept.
fn upload_routes() -> Routes {
    use openapi::Access::Anyone;
    Routes::default().add(
        Op::post(
            "/api/interactions/{id}/files",
            "a file the agent holding the interaction attaches to its next mail reply (?name=, the body is the file)",
        )
        .access(Anyone)
        .responses(&[
            (201, "the file's id, for the reply's attachments"),
            (404, "no such interaction held by the caller"),
            (413, "larger than the largest attachment kept"),
        ]),
        work::upload,
    )
}

/// Everything else under `/api`, each with who may call it.
fn api_routes() -> Routes {
    use Access::{Anyone, Supervisor};
    Routes::default()
        .add(
            Op::post("/api/interactions", "a new contact from the API channel")
                .json::<interactions::CreateInteraction>()
                .responses(&[(201, "committed and queued: the interaction, its customer, tier and reason"), (200, "its idempotency key was seen: the same interaction"), (409, "the idempotency key was used for a different contact")]),
            interactions::create,
        )
        .add(
            Op::get("/api/interactions", "the interaction a channel created under a key")
                .access(Supervisor)
                .query::<interactions::KeyQuery>()
                .responses(&[(200, "the interaction with its history"), (404, "no interaction has that key")]),
            interactions::by_key,
        )
        .add(
            Op::get("/api/me/work", "the caller's open conversations, most urgent first, and those it completed in the last seven days")
                .access(Anyone)
                .responses(&[(200, "open and recent"), (400, "the admin token has no work of its own")]),
            work::mine,
        )
        .add(
            Op::get("/api/canned", "the shared canned answers and the caller's own, with the variables they may use")
                .access(Anyone)
                .responses(&[(200, "the answers")]),
            canned::list,
        )
        .add(
            Op::post("/api/canned", "a new canned answer: shared (admins) or the caller's own (personal)")
                .access(Anyone)
                .json::<canned::CannedBody>()
                .responses(&[(201, "the answer"), (400, "a field is wrong")]),
            canned::create,
        )
        .add(
            Op::put("/api/canned/{id}", "replace a canned answer (its owner; admins for shared ones)")
                .access(Anyone)
                .json::<canned::CannedBody>()
                .responses(&[(200, "the answer"), (403, "a shared answer, and not an admin"), (404, "no such answer")]),
            canned::replace,
        )
        .add(
            Op::delete("/api/canned/{id}", "remove a canned answer (its owner; admins for shared ones)")
                .access(Anyone)
                .responses(&[(204, "removed"), (403, "a shared answer, and not an admin"), (404, "no such answer")]),
            canned::remove,
        )
        .add(
            Op::get("/api/me/signature", "the caller's mail signature")
                .access(Anyone)
                .responses(&[(200, "the signature")]),
            work::signature,
        )
        .add(
            Op::put("/api/me/signature", "set the caller's mail signature")
                .access(Anyone)
                .json::<work::Signature>()
                .responses(&[(200, "the signature")]),
            work::set_signature,
        )
        .add(
            Op::get("/api/search", "conversations and customers by any part of their words, name or identities (agents: those they have held)")
                .access(Anyone)
                .query::<search::SearchQuery>()
                .responses(&[(200, "the interactions, newest match first, with snippets; the customers; next_before for the next page"), (400, "no query, one over 200 characters or 10 words, or a limit out of 1 to 50")]),
            search::search,
        )
        .add(
            Op::get("/api/me/team-queue", "the channels agents may take themselves ([pull] in the rules) and the caller's team's waiting contacts of them, oldest first")
                .access(Anyone)
                .responses(&[(200, "channels and waiting"), (400, "the admin token has no team of its own")]),
            pull::team_queue,
        )
        .add(
            Op::post("/api/interactions/{id}/take", "the caller takes a waiting contact of its team's queue: exactly one of several agents taking it at once gets it")
                .access(Anyone)
                .responses(&[(200, "it is the caller's: the interaction"), (409, "not taken, and why: a colleague took it first, it is on offer, the rules keep its channel push-only, not the caller's team, no room"), (404, "no such interaction")]),
            pull::take,
        )
        .add(
            Op::get("/api/colleagues", "the active agents work can be handed to: id, name, skills, level")
                .access(Anyone)
                .responses(&[(200, "the agents")]),
            work::colleagues,
        )
        .add(
            Op::get("/api/interactions/{id}", "an interaction with its history (agents: only their own)")
                .access(Anyone)
                .responses(&[(200, "the interaction"), (404, "no such interaction")]),
            interactions::get,
        )
        .add(
            Op::get("/api/interactions/{id}/attachments/{file}", "a file that came with the interaction, as a download (agents: only their own)")
                .access(Anyone)
                .responses(&[(200, "the file"), (404, "no such file, or it was over the size limit and not kept")]),
            interactions::attachment,
        )
        .add(
            Op::post("/api/interactions/{id}/end", "the contact ended on the customer's side")
                .json::<interactions::EndInteraction>()
                .responses(&[(200, "abandoned if it waited, or its agent told"), (404, "no such interaction")]),
            interactions::end,
        )
        .add(
            Op::post("/api/interactions/{id}/move", "offer a waiting interaction to an agent, or hand over an assigned one")
                .access(Supervisor)
                .json::<interactions::MoveInteraction>()
                .responses(&[(200, "moved"), (404, "no such interaction"), (409, "it cannot go to that agent now")]),
            interactions::move_to,
        )
        .add(
            Op::get("/api/service", "the service commitments in force: calendars (open now?), hours, closed answers, policies, complaints, callbacks, survey")
                .access(Supervisor)
                .responses(&[(200, "the commitments")]),
            service::get,
        )
        .add(
            Op::put("/api/service/calendars/{name}", "add or replace a calendar (a new version of the rules)")
                .json::<service::CalendarEdit>()
                .responses(&[(200, "the new version"), (422, "the rules would not be valid: every error named")]),
            service::put_calendar,
        )
        .add(
            Op::delete("/api/service/calendars/{name}", "remove a calendar no rule names (a new version of the rules)")
                .responses(&[(200, "the new version"), (404, "no such calendar"), (422, "a rule still names it")]),
            service::delete_calendar,
        )
        .add(
            Op::put("/api/service/hours", "replace which calendar serves which contacts (a new version of the rules)")
                .json::<service::HoursEdit>()
                .responses(&[(200, "the new version"), (422, "the rules would not be valid")]),
            service::put_hours,
        )
        .add(
            Op::put("/api/service/policies", "replace the service policies (a new version of the rules)")
                .json::<service::PoliciesEdit>()
                .responses(&[(200, "the new version"), (422, "the rules would not be valid")]),
            service::put_policies,
        )
        .add(
            Op::get("/api/service/breaches", "service targets breached or warned of, and complaints late or near their deadline")
                .access(Supervisor)
                .query::<service::BreachQuery>()
                .responses(&[(200, "the targets and complaints")]),
            service::breaches,
        )
        .add(
            Op::get("/api/complaints", "complaints with their owners and deadlines")
                .access(Supervisor)
                .query::<service::ComplaintQuery>()
                .responses(&[(200, "the complaints")]),
            service::complaints,
        )
        .add(
            Op::post("/api/complaints/{id}/owner", "name a complaint's owner")
                .access(Supervisor)
                .json::<service::OwnerBody>()
                .responses(&[(200, "the complaint"), (404, "no such complaint"), (409, "it is resolved")]),
            service::set_owner,
        )
        .add(
            Op::post("/api/complaints/{id}/resolve", "the complaint is resolved (its owner, or a supervisor)")
                .access(Anyone)
                .responses(&[(200, "the complaint"), (404, "no such complaint (or not the agent's)"), (409, "resolved already")]),
            service::resolve,
        )
        .add(
            Op::post("/api/callbacks", "book a callback: routed like a call when its time comes, dialled when an agent takes it")
                .access(Supervisor)
                .json::<service::BookCallback>()
                .responses(&[(201, "booked (or booked before under that key)"), (400, "a number that cannot be parsed, or is blocked")]),
            service::book_callback,
        )
        .add(
            Op::post("/api/interactions/{id}/satisfaction", "a customer's score (1 to 5) of a completed contact, from another system")
                .json::<service::Score>()
                .responses(&[(200, "recorded (and a follow-up opened for a low score)"), (404, "no completed interaction"), (409, "scored before")]),
            service::satisfaction,
        )
        .add(
            Op::get("/api/reports/satisfaction", "scores by agent, tier, topic or channel over a range")
                .access(Supervisor)
                .query::<service::SatisfactionQuery>()
                .responses(&[(200, "the groups: answers, average, each score's count")]),
            service::satisfaction_report,
        )
        .add(
            Op::put("/api/agents/{id}/absence", "an agent away until a time, with a substitute for their customers and complaints")
                .access(Supervisor)
                .json::<service::Absence>()
                .responses(&[(200, "set"), (404, "no such agent")]),
            service::set_absence,
        )
        .add(
            Op::delete("/api/agents/{id}/absence", "the agent is back")
                .access(Supervisor)
                .responses(&[(204, "cleared"), (404, "no such agent")]),
            service::clear_absence,
        )
        .add(
            Op::post("/api/test/clock", "move the server's clock forward: only with service.test_clock, for tests")
                .json::<service::ClockBody>()
                .responses(&[(200, "the server's time now"), (404, "the test clock is off")]),
            service::clock,
        )
        .add(
            Op::post("/api/customers", "a new customer")
                .json::<customers::CreateCustomer>()
                .responses(&[(201, "the customer"), (409, "an identity belongs to another customer")]),
            customers::create,
        )
        .add(
            Op::get("/api/customers", "the customer owning an identity")
                .access(Supervisor)
                .params(&[("email", "an email address"), ("phone", "a phone number"), ("visitor_id", "a chat visitor id"), ("external_id", "the CRM's id")])
                .responses(&[(200, "the customer"), (404, "nobody owns it")]),
            customers::lookup,
        )
        .add(
            Op::get("/api/customers/search", "customers by part of their name or the start of any identity")
                .access(Supervisor)
                .params(&[("q", "part of a name, or the start of an identity (1 to 100 characters, case ignored)"), ("limit", "at most this many, 1 to 50 (default 20)")])
                .responses(&[(200, "{customers: [{id, name, identities}]}, by name")]),
            customers::search,
        )
        .add(
            Op::get("/api/customers/{id}", "a customer: identities, tier and why, value figures (agents: only those they serve)")
                .access(Anyone)
                .responses(&[(200, "the customer"), (404, "no such customer")]),
            customers::get,
        )
        .add(
            Op::put("/api/customers/{id}", "change a customer: a field left out stays, null clears it")
                .json::<customers::UpdateCustomer>()
                .responses(&[(200, "the customer"), (404, "no such customer"), (409, "an identity belongs to another customer")]),
            customers::update,
        )
        .add(
            Op::delete("/api/customers/{id}/identities/{kind}/{value}", "take an identity away from a customer")
                .responses(&[(200, "the customer"), (404, "no such customer or identity")]),
            customers::remove_identity,
        )
        .add(
            Op::put("/api/customers/{id}/purchases/{purchase_ref}", "record a purchase under the CRM's reference")
                .json::<customers::PurchaseIn>()
                .responses(&[(201, "recorded"), (200, "replaced the purchase with that reference"), (404, "no such customer")]),
            customers::put_purchase,
        )
        .add(
            Op::post("/api/customers/{id}/merge", "fold another customer into this one")
                .json::<customers::MergeIn>()
                .responses(&[(200, "the survivor"), (404, "no such customer")]),
            customers::merge,
        )
        .add(
            Op::post("/api/customers/{id}/erase", "erase a customer for good: identities, name, what they and the agents wrote, files, numbers, mail kept aside; interactions stay, anonymous, for the counts")
                .query::<erase::EraseQuery>()
                .responses(&[(200, "erased: what was removed, counted"), (404, "no such customer"), (409, "contacts in progress, listed (end them, or ?end_open=true)"), (410, "erased already")]),
            erase::erase,
        )
        .add(
            Op::get("/api/customers/{id}/export", "everything held about a customer, as one JSON document (streamed; files in base64)")
                .responses(&[(200, "the document"), (404, "no such customer"), (410, "erased")]),
            export::export,
        )
        .add(
            Op::get("/api/customers/{id}/history", "the customer's history across every channel, newest first")
                .access(Anyone)
                .query::<customers::HistoryQuery>()
                .responses(&[(200, "a page of events and next_before"), (404, "no such customer")]),
            customers::history,
        )
        .add(
            Op::post("/api/agents", "a new agent, with its login token (shown only now)")
                .json::<agents::CreateAgent>()
                .responses(&[(201, "the agent and its token"), (409, "the extension is taken")]),
            agents::create,
        )
        .add(
            Op::get("/api/agents", "every agent (never their tokens)")
                .access(Supervisor)
                .responses(&[(200, "the agents")]),
            agents::list,
        )
        .add(
            Op::get("/api/agents/{id}", "an agent")
                .access(Supervisor)
                .responses(&[(200, "the agent"), (404, "no such agent")]),
            agents::get,
        )
        .add(
            Op::put("/api/agents/{id}", "change an agent: a field left out stays")
                .json::<agents::UpdateAgent>()
                .responses(&[(200, "the agent"), (404, "no such agent"), (409, "the extension is taken")]),
            agents::update,
        )
        .add(
            Op::delete("/api/agents/{id}", "remove an agent: no more logins or offers; the record stays")
                .responses(&[(204, "removed"), (404, "no such agent")]),
            agents::remove,
        )
        .add(
            Op::post("/api/agents/{id}/token", "a new login token; the old one stops working")
                .responses(&[(200, "the new token (shown only now)"), (404, "no such agent")]),
            agents::reset_token,
        )
        .add(
            Op::post("/api/agents/{id}/away", "set a logged-in agent away")
                .access(Supervisor)
                .json::<agents::SetAway>()
                .responses(&[(200, "set away"), (404, "no such agent"), (409, "the agent is not logged in")]),
            agents::set_away,
        )
        .add(
            Op::get("/api/queue", "the live queue: waiting by tier, channel and topic, agents, service level, agent time idle while contacts waited")
                .access(Supervisor)
                .responses(&[(200, "the live queue")]),
            queue,
        )
        .add(
            Op::get("/api/queue/service-level", "the service level per tier, hour by hour, over the last hours (24 by default)")
                .access(Supervisor)
                .query::<service_level::Window>()
                .responses(&[(200, "per tier: target, and per hour answered, within target, abandoned and share")]),
            service_level::by_hour,
        )
        .add(
            Op::get("/api/reports", "the centre's figures over a date range, per hour, day or week (in the centre's time zone or tz) and per tier, channel, topic, team or agent, from the hourly rollups")
                .access(Supervisor)
                .query::<reports::ReportQuery>()
                .responses(&[(200, "per bucket and slice: received, answered, abandoned, service level, speed of answer, handling and wrap-up, transfers, callbacks, SLA attainment, CSAT; by agent or team also time per presence state and occupancy"), (400, "a bad range, by, slice or tz, named")]),
            reports::get,
        )
        .add(
            Op::get("/api/reports.csv", "the report as CSV, one row per bucket and slice")
                .access(Supervisor)
                .query::<reports::ReportQuery>()
                .responses(&[(200, "text/csv"), (400, "a bad range, by, slice or tz, named")]),
            reports::csv,
        )
        .add(
            Op::get("/api/reports/interactions.csv", "one CSV row per contact that arrived in the range (times, tier, agent, outcome), streamed")
                .access(Supervisor)
                .query::<reports::InteractionsQuery>()
                .responses(&[(200, "text/csv"), (400, "a bad range, named")]),
            reports::interactions_csv,
        )
        .add(
            Op::get("/api/reports/interactions", "the contacts behind one bar of a report: those that arrived in the range with the slice's value, as JSON")
                .access(Supervisor)
                .query::<reports::DrillQuery>()
                .responses(&[(200, "the contacts, and whether there are more"), (400, "a bad range, slice, value or limit, named")]),
            reports::interactions,
        )
        .add(
            Op::get("/api/email/kept-aside", "mail kept aside (auto-replies and bounces that answer no conversation, mail with no usable sender, unreadable mail), newest first, with why")
                .access(Supervisor)
                .query::<kept_aside::KeptQuery>()
                .responses(&[(200, "a page of messages (id, reason, detail, from, subject, preview, size, received_at, contact) and next_before")]),
            kept_aside::list,
        )
        .add(
            Op::post("/api/email/kept-aside/{id}/contact", "make a contact of a message kept aside: an interaction queued and routed like any new mail, once")
                .access(Supervisor)
                .json::<kept_aside::MakeContact>()
                .responses(&[(201, "the interaction made and the message"), (400, "the message names no usable sender: give `email`"), (404, "no such message"), (409, "a contact was made of it already")]),
            kept_aside::contact,
        )
        .add(
            Op::get("/api/retention", "how long each channel's content is kept, and how far old content has been removed")
                .access(Supervisor)
                .responses(&[(200, "per channel: days, removed_before, last run, contacts deferred")]),
            retention::get,
        )
        .add(
            Op::post("/api/retention/run", "remove content past its retention now, on this node")
                .responses(&[(200, "per channel: what was removed, counted")]),
            retention::run,
        )
        .add(
            Op::get("/api/audit", "the audit trail, newest first")
                .access(Supervisor)
                .query::<audit::AuditQuery>()
                .responses(&[(200, "a page of entries and next_before")]),
            audit::list,
        )
        .add(
            Op::get("/api/routing/rules", "the active routing rules")
                .access(Supervisor)
                .responses(&[(200, "version, actor, comment, created_at and the TOML document")]),
            rules::get,
        )
        .add(
            Op::put("/api/routing/rules", "a rules document becomes the next version, applied at once")
                .toml()
                .query::<rules::Comment>()
                .responses(&[(200, "the new version and warnings"), (422, "the rules do not validate: every error listed; nothing changed")]),
            rules::put,
        )
        .add(
            Op::post("/api/routing/rules/validate", "check a rules document; nothing changes")
                .access(Supervisor)
                .toml()
                .responses(&[(200, "valid, errors (each locating its cause) and warnings")]),
            rules::validate,
        )
        .add(
            Op::get("/api/routing/rules/versions", "every version of the rules, newest first")
                .access(Supervisor)
                .responses(&[(200, "the versions")]),
            rules::versions,
        )
        .add(
            Op::post("/api/routing/rules/rollback", "an earlier version becomes the next version")
                .json::<rules::Rollback>()
                .responses(&[(200, "the new version")]),
            rules::rollback,
        )
        .add(
            Op::post("/api/routing/rules/reload", "read the rules file again, as SIGHUP does")
                .responses(&[(200, "the version, and whether it changed"), (422, "the file does not validate")]),
            rules::reload,
        )
        .add(
            Op::post("/api/routing/simulate", "replay a window of recorded history under the active rules and a candidate")
                .access(Supervisor)
                .json::<simulate::SimulateIn>()
                .responses(&[(200, "per tier and topic: service level, waits, abandonment, occupancy, agent time idle while contacts waited — recorded, active, candidate and first come first served"), (422, "the candidate does not validate, or the window is empty or too long"), (429, "a simulation is already running")]),
            simulate::simulate,
        )
}

/// `GET /api/queue`: waiting interactions by tier, channel and topic, agents and their
/// states, and the service level per tier over the last 15 minutes.
async fn queue(
    State(state): State<AppState>,
    _: auth::Supervisor,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    state
        .router
        .snapshot()
        .await
        .map(|v| axum::Json(with_nodes(&state, v)))
        .ok_or_else(|| ApiError::Unavailable("the router is restarting".into()))
}

/// The live view with the cluster's nodes, when there is a cluster: each node's role, and
/// when it was last heard from.
pub(crate) fn with_nodes(state: &AppState, mut view: serde_json::Value) -> serde_json::Value {
    // This node's admission control: whether it is refusing new contacts, and why.
    view["admission"] = state.intake.admission().view();
    if let Some(c) = &state.cluster {
        view["cluster"] = c.describe();
    }
    view
}

/// Bounds the request's time and counts its answer by route.
async fn observe(req: Request, next: Next, timeout: Duration) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    };
    telemetry::http_answered(
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
    );
    response
}
