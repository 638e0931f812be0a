//! Who is asking, and what they may do. Every `/api` request carries a bearer token:
//! the configured admin token, or an agent's own token, whose role (agent, supervisor,
//! admin) decides what it may do. Each handler names the least role it needs in its
//! signature ([`Admin`], [`Supervisor`], [`Anyone`]), so no endpoint goes unchecked.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::agents::token_digest;
use super::error::ApiError;
use super::AppState;
use crate::store::agents::{self, Role};

/// The person behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// How the audit trail names them: `admin` for the configured token, else the agent's id.
    pub actor: String,
    /// What they may do.
    pub role: Role,
    /// Their agent id, when they are an agent.
    pub agent_id: Option<String>,
}

/// Resolves the bearer token to a [`Principal`] for the handlers; 401 without a valid one.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let Some(given) = given else {
        return Err(ApiError::Unauthorized(
            "send a token as Authorization: Bearer <token>".into(),
        ));
    };
    let principal = principal(&state, &given).await?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// Who a token belongs to.
pub async fn principal(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    // Comparing digests keeps the comparison's time independent of the token's content.
    if Sha256::digest(token.as_bytes()).as_slice() == state.admin_token_sha256 {
        return Ok(Principal {
            actor: "admin".into(),
            role: Role::Admin,
            agent_id: None,
        });
    }
    let mut conn = state.store.pool().acquire().await?;
    match agents::by_token(&mut conn, &token_digest(token)).await? {
        Some(a) => Ok(Principal {
            actor: a.id.clone(),
            role: a.role,
            agent_id: Some(a.id),
        }),
        None => Err(ApiError::Unauthorized(
            "the bearer token is not valid".into(),
        )),
    }
}

fn from_parts(parts: &Parts, least: Role) -> Result<Principal, ApiError> {
    let p = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| {
            ApiError::Unauthorized("send a token as Authorization: Bearer <token>".into())
        })?;
    if p.role < least {
        return Err(ApiError::Forbidden(format!(
            "this needs the {} role",
            least.as_str()
        )));
    }
    Ok(p)
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $name(pub Principal);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                from_parts(parts, $role).map($name)
            }
        }
    };
}

role_extractor!(
    Anyone,
    Role::Agent,
    "Any authenticated person (an agent sees only its own work)."
);
role_extractor!(Supervisor, Role::Supervisor, "A supervisor or an admin.");
role_extractor!(Admin, Role::Admin, "An admin.");
