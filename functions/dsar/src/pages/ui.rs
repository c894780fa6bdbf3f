//! The privacy center's use of the shared page crate (`web`): language, the document
//! frame, the security headers, form bodies and the request cookie.

use http::{header, HeaderName, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

pub use web::html::escape;
pub use web::Lang;

/// Texts written inline, German first.
pub trait Pick {
    fn t(self, de: &'static str, en: &'static str) -> &'static str;
}

impl Pick for Lang {
    fn t(self, de: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::De => de,
            Lang::En => en,
        }
    }
}

/// A full document. `path` is the page's language-neutral path (with its query, which
/// never holds anything secret): the language switch links to it.
pub fn document(lang: Lang, path: &str, title: &str, body_html: &str) -> String {
    let mut page = web::page::Page::new(lang, title, path);
    page.body_html = body_html.to_owned();
    page.render()
}

/// An HTML answer with the page headers.
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut r = Response::new(Body::Text(page));
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (name, value) in web::headers::page_headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    r
}

/// `303 See Other` to a path of ours, with the page headers.
pub fn see_other(location: &str) -> Response<Body> {
    let mut r = html(StatusCode::SEE_OTHER, String::new());
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Why a form body was refused as a whole.
#[derive(Debug, PartialEq, Eq)]
pub enum FormError {
    TooLarge,
    WrongContentType,
    Malformed,
    /// A field named twice: parsers disagree on which one wins, so neither does.
    Duplicated,
}

/// Whether the request declares a form body.
pub fn is_form(req: &lambda_http::Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The urlencoded form of a request: the content type declared, at most `max` bytes,
/// no field twice.
pub fn form(req: &lambda_http::Request, max: usize) -> Result<Vec<(String, String)>, FormError> {
    if !is_form(req) {
        return Err(FormError::WrongContentType);
    }
    let pairs = web::form::parse_urlencoded(req.body().as_ref(), max).map_err(|e| match e {
        web::form::FormError::TooLarge => FormError::TooLarge,
        web::form::FormError::Malformed => FormError::Malformed,
    })?;
    if web::form::duplicate(&pairs).is_some() {
        return Err(FormError::Duplicated);
    }
    Ok(pairs)
}

/// The request cookie lives a day: the token itself lives as long as the request record,
/// so the cookie never outlives it.
pub const COOKIE_MAX_AGE: u64 = 24 * 60 * 60;

pub fn set_cookie(id: &str, token: &str) -> String {
    web::cookie::set_request_cookie(id, token, COOKIE_MAX_AGE)
}

/// The `(id, token)` of the request cookie, if the request carries exactly one.
pub fn read_cookie(req: &lambda_http::Request) -> Option<(String, String)> {
    let mut found = None;
    for value in req.headers().get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        if value.contains(web::cookie::REQUEST_COOKIE) {
            if found.is_some() {
                return None;
            }
            found = Some(web::cookie::read_request_cookie(value)?);
        }
    }
    found.map(|(i, t)| (i.to_owned(), t.to_owned()))
}
