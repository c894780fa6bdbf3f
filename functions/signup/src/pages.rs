//! The sign-up pages (issue 16), served by the sign-up function itself: same role, same
//! use case, same source-address limits as `POST /v1/signups`. German at the path, English
//! under `/en`:
//!
//! - `GET /signup`: the form; `POST /signup` (urlencoded): 303 to `/signup/thanks`, or 422
//!   with the form re-rendered (values kept, escaped; each error at its field);
//! - `GET /signup/thanks`, `GET /privacy-policy`;
//! - `GET /assets/site.css`, `GET /assets/site.js`.
//!
//! The form is turned into the JSON route's body shape and checked by the same
//! [`crate::parse_form`]; a stored sign-up goes through the same [`crate::store`]. Every
//! response carries the pages' security headers; none sets a cookie.

use http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use shared::http::{FieldProblem, Problem};
use web::form::{self, FieldError, FormError};
use web::signup::{self as pages, Refusal};
use web::Lang;

/// The page paths (language-neutral).
const PATHS: &[&str] = &[
    "/signup",
    "/signup/thanks",
    "/privacy-policy",
    "/assets/site.css",
    "/assets/site.js",
];

/// Whether `path` is one of the sign-up pages or assets (in either language).
pub fn is_page(path: &str) -> bool {
    PATHS.contains(&Lang::from_path(path).1)
}

/// The privacy policy version the form shows and sends back: the date of the policy text
/// in the repository.
pub fn current_policy_version() -> String {
    web::policy::policy_version()
        .unwrap_or_else(|| shared::config::CURRENT_PRIVACY_POLICY_VERSION.to_owned())
}

/// Answers a page request.
pub async fn handle(app: &crate::App, req: &Request) -> Response<Body> {
    let (lang, path) = Lang::from_path(req.uri().path());
    let method = req.method();
    match (path, method) {
        ("/signup", &Method::GET) => html(
            StatusCode::OK,
            pages::form_page(lang, &[], &[], &current_policy_version()).render(),
        ),
        ("/signup", &Method::POST) => submit(app, req, lang).await,
        ("/signup/thanks", &Method::GET) => html(StatusCode::OK, pages::thanks_page(lang).render()),
        ("/privacy-policy", &Method::GET) => html(
            StatusCode::OK,
            web::policy::policy_page(lang, &current_policy_version()).render(),
        ),
        (asset, &Method::GET) if asset.starts_with("/assets/") => {
            match web::assets::asset(&asset["/assets/".len()..]) {
                Some((content_type, body)) => {
                    let mut resp = Response::new(Body::Text(body.to_owned()));
                    set_headers(&mut resp, web::headers::asset_headers(content_type));
                    resp
                }
                None => refuse(lang, Refusal::NotFound),
            }
        }
        (p, _) => {
            let mut resp = refuse(lang, Refusal::MethodNotAllowed);
            let allow = if p == "/signup" { "GET, POST" } else { "GET" };
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            resp
        }
    }
}

#[tracing::instrument(name = "signup_page", skip_all)]
async fn submit(app: &crate::App, req: &Request, lang: Lang) -> Response<Body> {
    if !is_form_content_type(req.headers()) {
        crate::log_rejected(&Problem::unsupported_media_type());
        return refuse(lang, Refusal::UnsupportedMediaType);
    }
    let pairs = match form::parse_urlencoded(req.body().as_ref(), crate::MAX_BODY_BYTES) {
        Ok(p) => p,
        Err(FormError::TooLarge) => {
            crate::log_rejected(&Problem::payload_too_large(crate::MAX_BODY_BYTES));
            return refuse(lang, Refusal::TooLarge);
        }
        Err(FormError::Malformed) => {
            crate::log_rejected(&Problem::malformed_json());
            return refuse(lang, Refusal::Malformed);
        }
    };
    // A field given twice is refused like a duplicate JSON member: which one wins is
    // where parsers disagree. The window's days are a list and may repeat (the parser
    // refuses a day named twice).
    if let Some(name) = form::duplicate(&pairs).filter(|n| *n != "call_window.days") {
        let field = if SINGLE_FIELDS.contains(&name) {
            name
        } else {
            "body"
        };
        crate::log_rejected(&Problem::duplicate_member(field));
        return refuse(lang, Refusal::Malformed);
    }
    let body = to_api_body(&pairs);
    match crate::parse_form(&body, &app.config.privacy_policy_versions) {
        Ok((profile, version, window)) => {
            match crate::store(app, req, profile, version, window).await {
                Ok(_reference) => see_other(&lang.path("/signup/thanks")),
                Err(problem) if problem.status == 503 => refuse(lang, Refusal::Unavailable),
                Err(_) => refuse(lang, Refusal::Internal),
            }
        }
        Err(errors) => {
            crate::log_rejected(&Problem::validation(errors.clone()));
            let errors = field_errors(lang, &errors);
            // The version field is the form's own: a stale one is replaced by the current.
            let values: Vec<(String, String)> = pairs
                .into_iter()
                .filter(|(n, _)| n != "consent.privacy_policy_version")
                .collect();
            html(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::form_page(lang, &values, &errors, &current_policy_version()).render(),
            )
        }
    }
}

/// The single-valued form fields (as the JSON route's dotted names).
const SINGLE_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "notes",
    "call_window.from",
    "call_window.to",
    "consent.contact_by_phone",
    "consent.privacy_policy_version",
];

/// The form's pairs in the JSON route's body shape, so that one parser checks both.
/// Unknown names are dropped (the JSON route ignores unknown members). An unticked
/// checkbox sends nothing: consent absent is `false` ("we only call people who agree");
/// any value but `true` stays a string and fails as the wrong type. The window is absent
/// when all its fields are empty; an empty time is a missing one.
pub fn to_api_body(pairs: &[(String, String)]) -> Map<String, Value> {
    let get = |name: &str| form::value(pairs, name);
    let mut body = Map::new();
    for name in ["first_name", "last_name", "email", "phone", "notes"] {
        if let Some(v) = get(name) {
            body.insert(name.to_owned(), Value::String(v.to_owned()));
        }
    }
    let mut consent = Map::new();
    consent.insert(
        "contact_by_phone".to_owned(),
        match get("consent.contact_by_phone") {
            None => Value::Bool(false),
            Some("true") => Value::Bool(true),
            Some(other) => Value::String(other.to_owned()),
        },
    );
    if let Some(v) = get("consent.privacy_policy_version") {
        consent.insert(
            "privacy_policy_version".to_owned(),
            Value::String(v.to_owned()),
        );
    }
    body.insert("consent".to_owned(), Value::Object(consent));
    let from = get("call_window.from").filter(|v| !v.trim().is_empty());
    let to = get("call_window.to").filter(|v| !v.trim().is_empty());
    let days: Vec<Value> = pairs
        .iter()
        .filter(|(n, _)| n == "call_window.days")
        .map(|(_, v)| Value::String(v.clone()))
        .collect();
    if from.is_some() || to.is_some() || !days.is_empty() {
        let mut window = Map::new();
        if let Some(f) = from {
            window.insert("from".to_owned(), Value::String(f.to_owned()));
        }
        if let Some(t) = to {
            window.insert("to".to_owned(), Value::String(t.to_owned()));
        }
        if !days.is_empty() {
            window.insert("days".to_owned(), Value::Array(days));
        }
        body.insert("call_window".to_owned(), Value::Object(window));
    }
    body
}

/// The API's field problems as messages at the form's fields, one per field.
fn field_errors(lang: Lang, problems: &[FieldProblem]) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::new();
    for p in problems {
        let field = pages::display_field(&p.field);
        if out.iter().any(|e| e.field == field) {
            continue;
        }
        out.push(FieldError {
            field: field.to_owned(),
            message: pages::field_message(lang, &p.field, p.code).to_owned(),
        });
    }
    out
}

/// `application/x-www-form-urlencoded`, optionally with `charset=utf-8`.
fn is_form_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    if !parts
        .next()
        .unwrap_or_default()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return false;
    }
    parts.all(|param| {
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        !name.trim().eq_ignore_ascii_case("charset")
            || val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    })
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    set_headers(&mut resp, web::headers::page_headers());
    resp
}

fn see_other(location: &str) -> Response<Body> {
    let mut resp = html(StatusCode::SEE_OTHER, String::new());
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn refuse(lang: Lang, refusal: Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    html(status, pages::error_page(lang, refusal).render())
}

fn set_headers(resp: &mut Response<Body>, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_page_policy_version_is_the_configured_current_one() {
        assert_eq!(
            current_policy_version(),
            shared::config::CURRENT_PRIVACY_POLICY_VERSION
        );
    }

    #[test]
    fn the_form_becomes_the_json_routes_body() {
        let body = to_api_body(&pairs(&[
            ("first_name", "A"),
            ("email", "a@b.de"),
            ("consent.contact_by_phone", "true"),
            ("consent.privacy_policy_version", "2024-04-08"),
            ("call_window.from", "10:00"),
            ("call_window.to", ""),
            ("call_window.days", "mon"),
            ("call_window.days", "tue"),
            ("favourite_cake", "x"),
        ]));
        assert_eq!(
            Value::Object(body),
            serde_json::json!({
                "first_name": "A",
                "email": "a@b.de",
                "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"},
                "call_window": {"from": "10:00", "days": ["mon", "tue"]}
            })
        );
        let empty = to_api_body(&pairs(&[
            ("call_window.from", " "),
            ("call_window.to", ""),
            ("consent.contact_by_phone", "yes"),
        ]));
        assert_eq!(
            Value::Object(empty),
            serde_json::json!({"consent": {"contact_by_phone": "yes"}})
        );
        assert_eq!(
            Value::Object(to_api_body(&[])),
            serde_json::json!({"consent": {"contact_by_phone": false}})
        );
    }

    #[test]
    fn only_urlencoded_utf8_is_a_form() {
        let ok = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            is_form_content_type(&h)
        };
        assert!(ok("application/x-www-form-urlencoded"));
        assert!(ok("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
        assert!(!ok("application/x-www-form-urlencoded; charset=latin1"));
        assert!(!ok("multipart/form-data; boundary=x"));
        assert!(!ok("application/json"));
        assert!(!is_form_content_type(&http::HeaderMap::new()));
    }

    #[test]
    fn every_page_path_exists_in_both_languages_and_nothing_else() {
        for p in PATHS {
            assert!(is_page(p) && is_page(&format!("/en{p}")), "{p}");
        }
        for p in [
            "/v1/signups",
            "/signup/",
            "/en/v1/signups",
            "/assets/x.css",
            "/privacy",
            "/de/signup",
        ] {
            assert!(!is_page(p), "{p}");
        }
    }
}
