//! The privacy center: server-rendered pages (German at the path, English under `/en`)
//! over the same use cases as the JSON routes, called in process, so the per-source limits
//! see the visitor's own address.
//!
//! - `GET /privacy`: every right in one or two plain sentences, each linking its form.
//! - `GET /privacy/request?type=…`, `GET /privacy/withdraw`, `GET /privacy/no-calls`: the
//!   request form (the last two preset to `withdraw_consent` / `objection`; every mail we
//!   send links them).
//! - `POST /privacy/request`: the form, parsed by the same code as `POST /v1/dsar`
//!   (`parse_intake`) → 303 to the code page (an email was named) or the status page.
//! - `GET` / `POST /privacy/requests/{id}/code`: the one-time code, checked by the same use
//!   case as `POST /v1/dsar/{id}/verify`; on success the token goes into the
//!   `polly_request` cookie (HttpOnly, Secure, SameSite=Strict), never into a URL.
//! - `GET /privacy/requests/{id}`: the status, for the holder of the cookie only; without
//!   it (or with another request's) the one "enter your code" page, alike for any id.
//!
//! No form needs a cookie: the request form creates nothing a stranger could not create
//! through the JSON route, and the code form is bound to the request id and its code. The
//! cookie is read by the status page (a GET) only.

mod texts;
pub mod ui;

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use shared::domain::RequestId;
use shared::dsar::service::{DsarError, Intake};
use shared::dsar::RequestType;
use shared::http::FieldProblem;
use shared::ports::Retry;

use texts::*;
use ui::{escape, html, Lang};

use super::{App, MAX_BODY_BYTES};

/// Whether `path` is one of the privacy center's pages (either language).
pub fn is_page(path: &str) -> bool {
    let (_, rest) = Lang::from_path(path);
    rest == "/privacy" || rest.starts_with("/privacy/")
}

/// Serves one page request.
pub async fn handle(app: &App, req: &Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let (lang, rest) = Lang::from_path(&path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method() == http::Method::GET || req.method() == http::Method::HEAD;
    let post = req.method() == http::Method::POST;
    match segments.as_slice() {
        ["privacy"] if get => html(StatusCode::OK, rights_page(lang)),
        ["privacy", "request"] if get => {
            let preset = query_type(req.uri().query().unwrap_or_default());
            let form = RequestForm {
                request_type: preset.map(|t| t.code().to_owned()),
                ..RequestForm::default()
            };
            html(
                StatusCode::OK,
                request_page(lang, "/privacy/request", &form, &[]),
            )
        }
        ["privacy", "withdraw"] if get => html(
            StatusCode::OK,
            request_page(
                lang,
                "/privacy/withdraw",
                &RequestForm::preset(RequestType::WithdrawConsent),
                &[],
            ),
        ),
        ["privacy", "no-calls"] if get => html(
            StatusCode::OK,
            request_page(
                lang,
                "/privacy/no-calls",
                &RequestForm::preset(RequestType::Objection),
                &[],
            ),
        ),
        ["privacy", "request"] if post => submit(app, req, lang).await,
        ["privacy", "requests", id, "code"] if get => match RequestId::parse(id) {
            Ok(id) => html(StatusCode::OK, code_page(lang, &id, None, false)),
            Err(_) => message(lang, StatusCode::NOT_FOUND, Notice::NotFound),
        },
        ["privacy", "requests", id, "code"] if post => verify(app, req, lang, id).await,
        ["privacy", "requests", id] if get => status(app, req, lang, id).await,
        ["privacy"]
        | ["privacy", "request"]
        | ["privacy", "withdraw"]
        | ["privacy", "no-calls"]
        | ["privacy", "requests", _, "code"]
        | ["privacy", "requests", _] => {
            let mut r = message(lang, StatusCode::METHOD_NOT_ALLOWED, Notice::Method);
            let allow = if segments.len() == 4 || segments == ["privacy", "request"] {
                "GET, POST"
            } else {
                "GET"
            };
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            r
        }
        _ => message(lang, StatusCode::NOT_FOUND, Notice::NotFound),
    }
}

fn query_type(query: &str) -> Option<RequestType> {
    let mut found = None;
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("type=") {
            if found.is_some() {
                return None;
            }
            found = RequestType::parse(v);
        }
    }
    found
}

/// What the visitor typed, to show the form again.
#[derive(Default)]
pub(crate) struct RequestForm {
    pub request_type: Option<String>,
    pub values: Vec<(String, String)>,
}

impl RequestForm {
    fn preset(t: RequestType) -> Self {
        Self {
            request_type: Some(t.code().to_owned()),
            values: Vec::new(),
        }
    }

    pub fn value(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// The form's fields as the JSON body of `POST /v1/dsar`: blank fields are absent (a
/// browser sends every field), `corrections.*` nest under `corrections`.
pub fn form_to_body(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut body = Map::new();
    let mut corrections = Map::new();
    for (name, value) in pairs {
        if value.trim().is_empty() {
            continue;
        }
        match name.strip_prefix("corrections.") {
            Some(field) => {
                corrections.insert(field.to_owned(), Value::String(value.clone()));
            }
            None => {
                body.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    if !corrections.is_empty() {
        body.insert("corrections".to_owned(), Value::Object(corrections));
    }
    body
}

fn refused_body(lang: Lang, e: ui::FormError) -> Response<Body> {
    let (status, notice) = match e {
        ui::FormError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Notice::TooLarge),
        ui::FormError::WrongContentType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, Notice::WrongContentType)
        }
        ui::FormError::Malformed | ui::FormError::Duplicated => {
            (StatusCode::BAD_REQUEST, Notice::Malformed)
        }
    };
    tracing::info!(status = status.as_u16(), "page form refused");
    message(lang, status, notice)
}

fn form_body(req: &Request) -> Result<Vec<(String, String)>, ui::FormError> {
    ui::form(req, MAX_BODY_BYTES)
}

#[tracing::instrument(name = "page_submit", skip_all)]
async fn submit(app: &App, req: &Request, lang: Lang) -> Response<Body> {
    let pairs = match form_body(req) {
        Ok(p) => p,
        Err(e) => return refused_body(lang, e),
    };
    let form = RequestForm {
        request_type: pairs
            .iter()
            .find(|(n, _)| n == "type")
            .map(|(_, v)| v.clone()),
        values: pairs.clone(),
    };
    let body = form_to_body(&pairs);
    let intake = match super::parse_intake(&body) {
        Ok(i) => Intake {
            source: shared::http::source_ip(req),
            ..i
        },
        Err(errors) => {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            tracing::info!(status = 422, ?fields, "page form rejected");
            return html(
                StatusCode::UNPROCESSABLE_ENTITY,
                request_page(lang, "/privacy/request", &form, &errors),
            );
        }
    };
    let has_email = intake.email.is_some();
    match app.service.submit(intake).await {
        Ok(id) if has_email => {
            ui::see_other(&format!("{}/privacy/requests/{id}/code", lang.prefix()))
        }
        Ok(id) => ui::see_other(&format!("{}/privacy/requests/{id}", lang.prefix())),
        Err(e) => failure(lang, &e),
    }
}

#[tracing::instrument(name = "page_verify", skip_all)]
async fn verify(app: &App, req: &Request, lang: Lang, id: &str) -> Response<Body> {
    let Ok(id) = RequestId::parse(id) else {
        return message(lang, StatusCode::NOT_FOUND, Notice::NotFound);
    };
    let pairs = match form_body(req) {
        Ok(p) => p,
        Err(e) => return refused_body(lang, e),
    };
    if pairs.iter().any(|(n, _)| n != "code") {
        return message(lang, StatusCode::BAD_REQUEST, Notice::Malformed);
    }
    let code = pairs
        .iter()
        .find(|(n, _)| n == "code")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    // The same bounds as the JSON route.
    if code.is_empty() || code.len() > 32 {
        tracing::info!(status = 422, "page code rejected");
        return html(
            StatusCode::UNPROCESSABLE_ENTITY,
            code_page(lang, &id, Some(CodeError::Required), false),
        );
    }
    match app.service.verify(&id, &code).await {
        Ok(v) => {
            let Some(token) = v.token else {
                return message(lang, StatusCode::CONFLICT, Notice::AlreadyVerified);
            };
            let mut r = ui::see_other(&format!("{}/privacy/requests/{id}", lang.prefix()));
            if let Ok(c) = HeaderValue::from_str(&ui::set_cookie(&id.to_string(), &token)) {
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            r
        }
        Err(DsarError::WrongCode { remaining }) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            code_page(lang, &id, Some(CodeError::Wrong(remaining)), false),
        ),
        Err(e) => failure(lang, &e),
    }
}

#[tracing::instrument(name = "page_status", skip_all)]
async fn status(app: &App, req: &Request, lang: Lang, id: &str) -> Response<Body> {
    let Ok(id) = RequestId::parse(id) else {
        return message(lang, StatusCode::NOT_FOUND, Notice::NotFound);
    };
    // The token only from the cookie, and only for the request it names.
    let view = match ui::read_cookie(req) {
        Some((cookie_id, token)) if cookie_id == id.to_string() => {
            app.service.status(&id, &token).await
        }
        _ => Err(DsarError::NotAuthorised),
    };
    match view {
        Ok(view) => html(StatusCode::OK, status_page(lang, &view)),
        // Unknown id, no cookie, another request's cookie, a wrong token: one page.
        Err(DsarError::NotAuthorised) | Err(DsarError::NotFound) => {
            html(StatusCode::OK, code_page(lang, &id, None, true))
        }
        Err(e) => failure(lang, &e),
    }
}

/// A use-case refusal as a page, with the JSON route's status code.
fn failure(lang: Lang, err: &DsarError) -> Response<Body> {
    let (status, notice) = match err {
        DsarError::RateLimited | DsarError::SourceRateLimited => {
            (StatusCode::TOO_MANY_REQUESTS, Notice::RateLimited)
        }
        DsarError::AmbiguousSubject => (StatusCode::CONFLICT, Notice::Ambiguous),
        DsarError::NotFound | DsarError::NotAuthorised => (StatusCode::NOT_FOUND, Notice::NotFound),
        DsarError::AlreadyVerified => (StatusCode::CONFLICT, Notice::AlreadyVerified),
        DsarError::Ended | DsarError::CodeExpired | DsarError::TooManyAttempts => {
            (StatusCode::GONE, Notice::Ended)
        }
        other => {
            tracing::error!(error = %other, retry = ?other.retry(), "page request failed");
            match other.retry() {
                Retry::Transient => (StatusCode::SERVICE_UNAVAILABLE, Notice::Unavailable),
                Retry::Permanent => (StatusCode::INTERNAL_SERVER_ERROR, Notice::Internal),
            }
        }
    };
    message(lang, status, notice)
}

fn message(lang: Lang, status: StatusCode, notice: Notice) -> Response<Body> {
    html(status, notice_page(lang, notice))
}

/// A field error of the form: where it shows and what it says.
pub(crate) fn field_id(name: &str) -> String {
    name.replace('.', "-")
}

pub(crate) fn error_for<'a>(errors: &'a [FieldProblem], name: &str) -> Option<&'a FieldProblem> {
    errors.iter().find(|e| e.field == name)
}

pub(crate) fn esc(s: &str) -> String {
    escape(s)
}
