//! The pages people work in: the agent desktop (`/desktop`) and the supervisors' and
//! admins' console (`/console`). Plain HTML, CSS and JavaScript from `ui/`, built into
//! the binary, with no build step: they use only the public API and websockets, logging
//! in with the same tokens any other client uses.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Each asset: its name under `/ui/`, its type and its content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", include_str!("../../ui/app.css")),
    (
        "common.js",
        "text/javascript",
        include_str!("../../ui/common.js"),
    ),
    (
        "desktop.js",
        "text/javascript",
        include_str!("../../ui/desktop.js"),
    ),
    (
        "console.js",
        "text/javascript",
        include_str!("../../ui/console.js"),
    ),
    (
        "kept-aside.js",
        "text/javascript",
        include_str!("../../ui/kept-aside.js"),
    ),
    (
        "canned.js",
        "text/javascript",
        include_str!("../../ui/canned.js"),
    ),
    (
        "work.js",
        "text/javascript",
        include_str!("../../ui/work.js"),
    ),
    (
        "search.js",
        "text/javascript",
        include_str!("../../ui/search.js"),
    ),
    (
        "service.js",
        "text/javascript",
        include_str!("../../ui/service.js"),
    ),
    (
        "retention.js",
        "text/javascript",
        include_str!("../../ui/retention.js"),
    ),
    (
        "reports.js",
        "text/javascript",
        include_str!("../../ui/reports.js"),
    ),
];

const DESKTOP: &str = include_str!("../../ui/desktop.html");
const CONSOLE: &str = include_str!("../../ui/console.html");

/// What the pages may load: only their own scripts and the server they came from. An
/// email's HTML is shown in a sandboxed frame that runs no script and loads nothing.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; frame-src 'self' about:; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'none'";

/// `/desktop`, `/console` and `/ui/{asset}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/desktop", get(|| async { page(DESKTOP) }))
        .route("/console", get(|| async { page(CONSOLE) }))
        .route("/ui/{asset}", get(asset))
}

fn page(html: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
                // Revalidated each load: a new binary's pages never mix with old scripts.
                (header::CACHE_CONTROL, "no-cache".to_string()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such asset",
        )
            .into_response(),
    }
}
