//! The API's errors and its JSON extractor: every failure, whoever finds it (a handler,
//! the body limit, the JSON parser, the router), is answered with a status and a JSON
//! body `{"error": code, "message": sentence, "field": path?}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use switchboard_contract::IntakeError;

/// One bad row of an import.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowError {
    /// The row, counting from 1 (for CSV, the first row after the header).
    pub row: usize,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Everything the API answers with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong; `field` names the part at fault.
    #[error("{message}")]
    BadRequest {
        /// The field, as a path (`customer.email`).
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// 401: no or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the person is known but their role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// 408: the request took too long.
    #[error("the request took too long and was abandoned; it may still complete: retry with the same idempotency key to learn its outcome without creating it twice")]
    Timeout,
    /// 409: the request conflicts with what is stored.
    #[error("{message}")]
    Conflict {
        /// The field at fault.
        field: Option<String>,
        /// What conflicts.
        message: String,
    },
    /// 409: the customer has contacts in progress, listed, which must end first.
    #[error("{message}")]
    InProgress {
        /// What to do.
        message: String,
        /// The contacts in progress.
        open: Vec<serde_json::Value>,
    },
    /// 410: the thing named existed and was removed for good (an erased customer).
    #[error("{0}")]
    Gone(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the body is not of a type this endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a whole import refused, with every bad row.
    #[error("{message}")]
    Rows {
        /// A summary.
        message: String,
        /// Every bad row.
        errors: Vec<RowError>,
    },
    /// 422: routing rules refused whole, with every error (each naming where) and warning.
    #[error("the rules have {} error(s); nothing was changed", .errors.len())]
    InvalidRules {
        /// Every error.
        errors: Vec<String>,
        /// Every warning.
        warnings: Vec<String>,
    },
    /// 422: the request is well formed but cannot be carried out, and why.
    #[error("{message}")]
    Unprocessable {
        /// The field at fault, if one is.
        field: Option<String>,
        /// Why.
        message: String,
    },
    /// 429: the server is already doing this for someone; retry later.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: the store or intake cannot take this now; nothing was accepted, retry.
    #[error("{0}")]
    Unavailable(String),
    /// 503: past its capacity, the server refuses new contacts for a while (admission
    /// control); nothing was accepted, retry after the seconds given.
    #[error("too many contacts at once; nothing was accepted, retry in {0} s")]
    Overloaded(u32),
    /// 500: a fault of ours; logged, and said only in general terms.
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::InProgress { .. } => (StatusCode::CONFLICT, "in_progress"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Rows { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows"),
            ApiError::InvalidRules { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules"),
            ApiError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Unexpected(e) = &self {
            tracing::error!(error = format!("{e:#}"), "A request failed unexpectedly");
        }
        let mut body = json!({ "error": code, "message": self.to_string() });
        match &self {
            ApiError::BadRequest { field: Some(f), .. }
            | ApiError::Conflict { field: Some(f), .. }
            | ApiError::Unprocessable { field: Some(f), .. } => {
                body["field"] = json!(f);
            }
            ApiError::Rows { errors, .. } => body["errors"] = json!(errors),
            ApiError::InProgress { open, .. } => body["open"] = json!(open),
            ApiError::InvalidRules { errors, warnings } => {
                body["errors"] = json!(errors);
                body["warnings"] = json!(warnings);
            }
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) | ApiError::TooManyRequests(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Overloaded(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&e) {
            tracing::warn!(error = %e, "The store is unavailable");
            ApiError::Unavailable(
                "the store is unavailable or busy; nothing was changed, retry shortly".into(),
            )
        } else {
            ApiError::Unexpected(anyhow::Error::new(e))
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Invalid { field, message } => ApiError::BadRequest {
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            IntakeError::KeyReused => ApiError::Conflict {
                field: Some("idempotency_key".into()),
                message: "this idempotency key was already used for a different contact".into(),
            },
            IntakeError::Unavailable(m) => {
                ApiError::Unavailable(format!("{m}; nothing was accepted, retry"))
            }
            IntakeError::ShuttingDown => ApiError::Unavailable(
                "the server is shutting down; nothing was accepted, retry".into(),
            ),
            IntakeError::Overloaded { retry_after_secs } => ApiError::Overloaded(retry_after_secs),
        }
    }
}

/// Path parameters, with a malformed path answered in JSON like every other error.
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::BadRequest {
                field: Some("path".into()),
                message: e.body_text(),
            })
    }
}

/// Query parameters, with a malformed query answered in JSON like every other error.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest {
                field: Some("query".into()),
                message: e.body_text(),
            })
    }
}

/// Ids are UUIDs: anything else names nothing (and never reaches the database).
pub fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    match uuid::Uuid::try_parse(id) {
        Ok(_) => Ok(()),
        Err(_) => Err(ApiError::NotFound(format!("no {what} has that id"))),
    }
}

/// A JSON body: the content type checked, the size bounded, and a parse failure
/// answered with the path of the field at fault.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON, with Content-Type: application/json".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Reads a whole body within the route's limit.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge("the body is larger than this endpoint accepts".into())
            } else {
                ApiError::BadRequest {
                    field: None,
                    message: format!("the body could not be read: {e}"),
                }
            }
        })
}

/// Parses JSON, naming the path of the field at fault on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let message = match (&field, inner.classify()) {
            (_, serde_json::error::Category::Syntax | serde_json::error::Category::Eof) => {
                format!("the body is not valid JSON: {inner}")
            }
            (Some(f), _) => format!("{f}: {inner}"),
            (None, _) => inner.to_string(),
        };
        ApiError::BadRequest { field, message }
    })
}

/// `Option<Option<T>>` for update bodies: absent leaves a field as it is, `null` clears it.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        customer: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        email: Option<String>,
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        match parse_json::<Outer>(br#"{"customer": {"emial": "a@b.c"}}"#) {
            Err(ApiError::BadRequest { field, message }) => {
                assert_eq!(field.as_deref(), Some("customer.emial"));
                assert!(message.contains("unknown field `emial`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_types_are_named_with_their_path() {
        match parse_json::<Outer>(br#"{"customer": {"email": 5}}"#) {
            Err(ApiError::BadRequest { field, .. }) => {
                assert_eq!(field.as_deref(), Some("customer.email"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_json_says_so() {
        match parse_json::<Outer>(br#"{"customer": "#) {
            Err(ApiError::BadRequest { message, .. }) => assert!(
                message.starts_with("the body is not valid JSON"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
