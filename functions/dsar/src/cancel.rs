//! The erasure cancel link (`usecases::dsar::erasure_window`):
//!
//! - `GET /v1/dsar/{id}/cancel?t=<token>`: a small German confirmation page. It reads
//!   nothing and changes nothing (mail scanners prefetch links); its button POSTs.
//! - `POST /v1/dsar/{id}/cancel`: the token as a form field `t` (the page's button; the
//!   answer is a page) or as JSON `{"token"}` (the answer is JSON, problem+json on
//!   errors). Unknown ids, malformed ids and wrong tokens get one and the same answer.
//!
//! Every answer is `Cache-Control: no-store`, `Referrer-Policy: no-referrer` (the token
//! is in the page's URL), and the pages allow no scripts, frames or foreign assets.

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::domain::dsar::cancel_page::{answer_page, confirm_page, CancelAnswer};
use shared::domain::RequestId;
use shared::dsar::service::DsarError;
use shared::http::{body_within, json_response, parse_json_object, FieldProblem, Problem};
use shared::ports::Retry;
use usecases::dsar::erasure_window::MAX_TOKEN_CHARS;

use super::{App, MAX_BODY_BYTES};

/// The page's policy: inline styles only, the form posts to this origin, no framing.
const PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn guarded(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut r = Response::new(Body::Text(page));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    guarded(r)
}

/// A token as our links carry it: base64url, bounded. Anything else can match no stored
/// hash and is answered like a wrong token.
fn token_shape(t: &str) -> Option<&str> {
    (!t.is_empty()
        && t.len() <= MAX_TOKEN_CHARS
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(t)
}

/// The value of `name` in a query string or form body (`a=1&b=2`). Our tokens need no
/// percent-encoding; an encoded value is not ours.
fn field<'a>(pairs: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for pair in pairs.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                // Duplicated: ambiguous, refused.
                return None;
            }
            found = Some(v);
        }
    }
    found
}

/// `GET /v1/dsar/{id}/cancel?t=…`: the confirmation page. Nothing is read or written.
pub fn confirm(req: &Request, id: &str) -> Response<Body> {
    let query = req.uri().query().unwrap_or_default();
    match (
        RequestId::parse(id),
        field(query, "t").and_then(token_shape),
    ) {
        (Ok(id), Some(token)) => html(
            StatusCode::OK,
            confirm_page(&format!("/v1/dsar/{id}/cancel"), token),
        ),
        _ => html(StatusCode::NOT_FOUND, answer_page(CancelAnswer::Invalid)),
    }
}

fn invalid_json() -> Response<Body> {
    Problem::simple(
        StatusCode::NOT_FOUND,
        "https://polly-ki.de/problems/invalid-cancel-link",
        "Unknown request or wrong link",
        "There is no erasure to cancel with this link.",
    )
    .into_response()
}

/// How the caller sent the token, which decides how it is answered.
enum Form {
    Page,
    Json,
}

/// `POST /v1/dsar/{id}/cancel`.
#[tracing::instrument(name = "dsar_cancel", skip_all)]
pub async fn cancel(app: &App, req: &Request, id: &str) -> Response<Body> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let form = match content_type.as_str() {
        "application/x-www-form-urlencoded" => Form::Page,
        "application/json" => Form::Json,
        _ => return guarded(Problem::unsupported_media_type().into_response()),
    };
    let bytes = match body_within(req.body(), MAX_BODY_BYTES) {
        Ok(b) => b,
        Err(p) => return guarded(p.into_response()),
    };
    let token = match form {
        Form::Page => std::str::from_utf8(bytes)
            .ok()
            .and_then(|b| field(b.trim(), "t"))
            .map(str::to_owned),
        Form::Json => match parse_json_object(bytes, &["token"]) {
            Ok(body) => match body.get("token") {
                Some(Value::String(t)) => Some(t.clone()),
                _ => {
                    return guarded(
                        Problem::validation(vec![FieldProblem::new(
                            "token",
                            "required",
                            "the token from the link in the mail is required",
                        )])
                        .into_response(),
                    )
                }
            },
            Err(p) => return guarded(p.into_response()),
        },
    };
    let outcome = match (RequestId::parse(id), token.as_deref().and_then(token_shape)) {
        (Ok(id), Some(token)) => app.service.cancel_erasure(&id, token).await,
        _ => Err(DsarError::NotAuthorised),
    };
    let answer = match &outcome {
        Ok(()) => CancelAnswer::Cancelled,
        Err(DsarError::NotAuthorised) => CancelAnswer::Invalid,
        Err(DsarError::TooLateToCancel) => CancelAnswer::TooLate,
        Err(other) => {
            tracing::error!(error = %other, retry = ?other.retry(), "cancel failed");
            return guarded(match other.retry() {
                Retry::Transient => Problem::unavailable().into_response(),
                Retry::Permanent => Problem::internal().into_response(),
            });
        }
    };
    let status = match answer {
        CancelAnswer::Cancelled => StatusCode::OK,
        CancelAnswer::TooLate => StatusCode::CONFLICT,
        CancelAnswer::Invalid => StatusCode::NOT_FOUND,
    };
    tracing::info!(status = status.as_u16(), "cancel answered");
    match form {
        Form::Page => html(status, answer_page(answer)),
        Form::Json => guarded(match answer {
            CancelAnswer::Cancelled => json_response(
                StatusCode::OK,
                &json!({"request_id": id, "status": "cancelled"}),
            ),
            CancelAnswer::TooLate => Problem::simple(
                StatusCode::CONFLICT,
                "https://polly-ki.de/problems/erasure-started",
                "Too late to cancel",
                "The erasure has started or is done; it can no longer be cancelled.",
            )
            .into_response(),
            CancelAnswer::Invalid => invalid_json(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_plain_token_is_taken_from_a_query_or_form() {
        assert_eq!(field("t=abc_-1", "t").and_then(token_shape), Some("abc_-1"));
        assert_eq!(field("x=1&t=abc", "t"), Some("abc"));
        assert_eq!(field("t=a&t=b", "t"), None, "duplicated");
        assert_eq!(field("t=a%2Bb", "t").and_then(token_shape), None);
        assert_eq!(field("t=", "t").and_then(token_shape), None);
        let long = format!("t={}", "a".repeat(MAX_TOKEN_CHARS + 1));
        assert_eq!(field(&long, "t").and_then(token_shape), None);
        assert_eq!(field("", "t"), None);
    }
}
