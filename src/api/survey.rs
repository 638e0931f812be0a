//! The satisfaction survey's page (`/survey/{token}`), linked from the mail sent when a
//! mail contact is completed: one question, a score of 1 to 5 and a comment, no login.
//! A forged, expired or already answered link gets a clear page, and nothing recorded.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::AppState;
use crate::channels::service::SurveyToken;
use switchboard_contract::Rated;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page_of(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         fieldset{{border:0;padding:0}}label.score{{display:inline-block;margin:.25rem;padding:.5rem .9rem;border:1px solid #888;border-radius:6px}}\
         textarea{{width:100%;min-height:6rem}}button{{margin-top:1rem;padding:.5rem 1.2rem}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut r = (status, Html(html)).into_response();
    // The link is the customer's own: nothing of it is kept in caches or referrers.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    r
}

fn refused(token: &SurveyToken) -> Option<Response> {
    match token {
        SurveyToken::Valid(_) => None,
        SurveyToken::Expired => Some(page_of(
            StatusCode::GONE,
            "This survey has closed",
            "<p>The link has expired. Thank you all the same.</p>",
        )),
        SurveyToken::Forged => Some(page_of(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "<p>Please use the link exactly as it came in our mail.</p>",
        )),
    }
}

/// `GET /survey/{token}`: the question.
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let checked = state.core.check_survey(&token);
    if let Some(r) = refused(&checked) {
        return r;
    }
    let question = state.services.get().rules().satisfaction.question.clone();
    let scores: String = (1..=5)
        .map(|n| {
            format!("<label class=\"score\"><input type=\"radio\" name=\"score\" value=\"{n}\" required> {n}</label>")
        })
        .collect();
    page_of(
        StatusCode::OK,
        "How did we do?",
        &format!(
            "<form method=\"post\"><fieldset><legend>{}</legend><p>1 = not at all satisfied, 5 = very satisfied</p>{scores}</fieldset>\
             <p><label for=\"comment\">Anything you want to tell us (optional)</label><br><textarea id=\"comment\" name=\"comment\" maxlength=\"2000\"></textarea></p>\
             <button type=\"submit\">Send</button></form>",
            esc(&question)
        ),
    )
}

/// The form's fields.
#[derive(Debug, Deserialize)]
pub struct Answer {
    score: Option<String>,
    comment: Option<String>,
}

/// `POST /survey/{token}`: the answer, recorded once.
pub async fn answer(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(a): Form<Answer>,
) -> Response {
    let checked = state.core.check_survey(&token);
    if let Some(r) = refused(&checked) {
        return r;
    }
    let SurveyToken::Valid(id) = checked else {
        return page_of(StatusCode::BAD_REQUEST, "This link is not valid", "");
    };
    let Some(score) = a
        .score
        .as_deref()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .filter(|s| (1..=5).contains(s))
    else {
        return page_of(
            StatusCode::BAD_REQUEST,
            "Please choose a score",
            "<p>Choose a score from 1 to 5, then send. <a href=\"\">Back to the question</a></p>",
        );
    };
    match state
        .core
        .rate_interaction(&id, "email", score, a.comment.as_deref())
        .await
    {
        Ok(Rated::Recorded { .. }) => page_of(
            StatusCode::OK,
            "Thank you",
            "<p>Your answer is recorded. Thank you for taking the time.</p>",
        ),
        Ok(Rated::AlreadyAnswered) => page_of(
            StatusCode::CONFLICT,
            "Already answered",
            "<p>This survey was answered before; the first answer stands. Thank you.</p>",
        ),
        Ok(Rated::Unknown) => page_of(
            StatusCode::NOT_FOUND,
            "Nothing to answer",
            "<p>There is nothing to answer for this link.</p>",
        ),
        Err(_) => page_of(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "<p>Your answer could not be recorded just now. Please send it again in a moment.</p>",
        ),
    }
}
