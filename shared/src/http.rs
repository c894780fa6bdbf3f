//! HTTP edge helpers: problem+json (RFC 9457) responses with fixed texts, request-body
//! limits, content-type checks, strict JSON parsing and CORS.
//!
//! Every outcome of an HTTP handler is a response, never an `Err`. Problem details name
//! the field and the rule that failed; they never contain the submitted value.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One failed field, addressed both by dotted name and by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub pointer: String,
    pub code: &'static str,
    pub detail: &'static str,
}

impl FieldProblem {
    /// `field` is a dotted path (`consent.contact_by_phone`); the pointer is derived.
    pub fn new(field: &str, code: &'static str, detail: &'static str) -> Self {
        let pointer = if field.is_empty() || field == "body" {
            "#".to_owned()
        } else {
            format!("#/{}", field.replace('.', "/"))
        };
        Self {
            field: field.to_owned(),
            pointer,
            code,
            detail,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

impl Problem {
    /// A problem without field errors.
    pub fn simple(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: &'static str,
    ) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail,
            errors: Vec::new(),
        }
    }

    pub fn validation(errors: Vec<FieldProblem>) -> Self {
        Self {
            kind: "https://polly-ki.de/problems/validation",
            title: "The request is not valid",
            status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            detail: "One or more fields are missing or invalid; see errors.",
            errors,
        }
    }

    pub fn malformed_json() -> Self {
        Self {
            kind: "https://polly-ki.de/problems/malformed-json",
            title: "The body is not valid JSON",
            status: StatusCode::BAD_REQUEST.as_u16(),
            detail: "The request body must be a single JSON object.",
            errors: vec![FieldProblem::new(
                "body",
                "malformed_json",
                "not a JSON object",
            )],
        }
    }

    pub fn duplicate_member(field: &str) -> Self {
        Self {
            kind: "https://polly-ki.de/problems/malformed-json",
            title: "The body is not valid JSON",
            status: StatusCode::BAD_REQUEST.as_u16(),
            detail: "A member appears more than once in a JSON object.",
            errors: vec![FieldProblem::new(
                field,
                "duplicate_member",
                "given more than once",
            )],
        }
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        let _ = limit_bytes;
        Self {
            kind: "https://polly-ki.de/problems/payload-too-large",
            title: "The body is too large",
            status: StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
            detail: "The request body exceeds the size limit of this endpoint.",
            errors: vec![FieldProblem::new(
                "body",
                "too_large",
                "exceeds the size limit",
            )],
        }
    }

    pub fn unsupported_media_type() -> Self {
        Self {
            kind: "https://polly-ki.de/problems/unsupported-media-type",
            title: "Unsupported content type",
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE.as_u16(),
            detail: "Send the body as application/json (UTF-8).",
            errors: vec![FieldProblem {
                field: "content-type".to_owned(),
                pointer: "#".to_owned(),
                code: "unsupported",
                detail: "must be application/json",
            }],
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            kind: "https://polly-ki.de/problems/method-not-allowed",
            title: "Method not allowed",
            status: StatusCode::METHOD_NOT_ALLOWED.as_u16(),
            detail: "This endpoint does not support the request method.",
            errors: Vec::new(),
        }
    }

    pub fn internal() -> Self {
        Self {
            kind: "https://polly-ki.de/problems/internal",
            title: "Internal error",
            status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
            detail: "The request could not be processed; nothing was stored. Please try again.",
            errors: Vec::new(),
        }
    }

    pub fn unavailable() -> Self {
        Self {
            kind: "https://polly-ki.de/problems/unavailable",
            title: "Service temporarily unavailable",
            status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            detail: "The request could not be processed right now; nothing was stored. Please try again shortly.",
            errors: Vec::new(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Serialising a struct of strings and numbers cannot fail.
        let body = serde_json::to_string(&self).unwrap_or_default();
        response(status, PROBLEM_JSON, body)
    }
}

/// A JSON response.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(body) => response(status, "application/json", body),
        Err(_) => Problem::internal().into_response(),
    }
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Accepts `application/json`, optionally with `charset=utf-8`; anything else is 415.
pub fn require_json_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(Problem::unsupported_media_type)?;
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Problem::unsupported_media_type());
    }
    for param in parts {
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        let val = val.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !val.eq_ignore_ascii_case("utf-8") {
            return Err(Problem::unsupported_media_type());
        }
    }
    Ok(())
}

/// The raw request body, refused (413) beyond `limit` bytes. API Gateway has already
/// decoded a base64 body into bytes.
pub fn body_within(body: &Body, limit: usize) -> Result<&[u8], Problem> {
    let bytes: &[u8] = body.as_ref();
    if bytes.len() > limit {
        return Err(Problem::payload_too_large(limit));
    }
    Ok(bytes)
}

/// The caller's IP as API Gateway saw it (`requestContext.http.sourceIp`), never a
/// client-supplied header such as `X-Forwarded-For`.
pub fn source_ip(req: &lambda_http::Request) -> Option<std::net::IpAddr> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The IAM principal API Gateway authenticated (`requestContext.authorizer.iam.userArn`):
/// who called a staff or sales route. Only what API Gateway set counts, never a header.
pub fn iam_principal(req: &lambda_http::Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()?
            .iam
            .as_ref()?
            .user_arn
            .clone()
            .filter(|s| !s.is_empty()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Parses a body that must be one JSON object, refusing duplicate member names at any
/// depth: parsers disagree on which duplicate wins, and that disagreement is a classic way
/// to smuggle a value past a check. The problem names the duplicate by its dotted path
/// when that path is one of `known_fields`; member names are client input, so any other
/// duplicate is reported as `body`.
pub fn parse_json_object(
    bytes: &[u8],
    known_fields: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|_| Problem::malformed_json())?;
    if let Err(path) = strict::check(text) {
        return Err(match path {
            Some(field) if known_fields.contains(&field.as_str()) => {
                Problem::duplicate_member(&field)
            }
            Some(_) => Problem::duplicate_member("body"),
            None => Problem::malformed_json(),
        });
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(Problem::malformed_json()),
    }
}

mod strict {
    //! A validating pass over JSON that fails on duplicate object members.

    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    use std::collections::HashSet;
    use std::fmt;

    /// `Ok` when the text is JSON without duplicate members; `Err(Some(path))` names the
    /// first duplicate; `Err(None)` means the text is not JSON.
    pub fn check(text: &str) -> Result<(), Option<String>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut duplicate = None;
        let result = Walk {
            path: String::new(),
            duplicate: &mut duplicate,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match (result, duplicate) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(path)) => Err(Some(path)),
            (Err(_), None) => Err(None),
        }
    }

    struct Walk<'a> {
        path: String,
        duplicate: &'a mut Option<String>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0usize;
            loop {
                let path = format!(
                    "{}{}{}",
                    self.path,
                    if self.path.is_empty() { "" } else { "." },
                    index
                );
                let seed = Walk {
                    path,
                    duplicate: &mut *self.duplicate,
                };
                if seq.next_element_seed(seed)?.is_none() {
                    return Ok(());
                }
                index += 1;
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{}", self.path, key)
                };
                if !seen.insert(key) {
                    *self.duplicate = Some(path);
                    return Err(A::Error::custom("duplicate member"));
                }
                map.next_value_seed(Walk {
                    path,
                    duplicate: &mut *self.duplicate,
                })?;
            }
            Ok(())
        }
    }
}

/// CORS headers for a request from `origin`, when it is one of `allowed`. API Gateway's
/// own CORS configuration does the same in AWS; this keeps the local stack faithful.
pub fn apply_cors(resp: &mut Response<Body>, origin: Option<&str>, allowed: &[String]) {
    let Some(origin) = origin else { return };
    if !allowed.iter().any(|a| a == origin) {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(origin) {
        let headers = resp.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    /// R1.2: only `application/json` (optionally UTF-8) is accepted; other media types and none
    /// are refused.
    #[test]
    fn content_type_rules() {
        assert!(require_json_content_type(&headers("application/json")).is_ok());
        assert!(require_json_content_type(&headers("Application/JSON; charset=UTF-8")).is_ok());
        assert!(require_json_content_type(&headers("application/json; charset=latin1")).is_err());
        assert!(require_json_content_type(&headers("text/plain")).is_err());
        assert!(require_json_content_type(&headers("application/x-www-form-urlencoded")).is_err());
        assert!(require_json_content_type(&HeaderMap::new()).is_err());
    }

    /// R1.2: a duplicate member at any depth is refused and named by its dotted path when it is
    /// a known field; an unknown member name is not echoed (reported as `body`).
    #[test]
    fn strict_json_rejects_duplicates_at_any_depth_and_names_them() {
        let known = ["email", "consent.contact_by_phone"];
        assert!(parse_json_object(br#"{"a":1,"b":{"c":[1,{"d":2}]}}"#, &known).is_ok());
        let p = parse_json_object(br#"{"email":"x","email":"y"}"#, &known).unwrap_err();
        assert_eq!(p.errors[0].field, "email");
        let body = br#"{"consent":{"contact_by_phone":true,"contact_by_phone":false}}"#;
        let p = parse_json_object(body, &known).unwrap_err();
        assert_eq!(p.errors[0].field, "consent.contact_by_phone");
        assert_eq!(p.errors[0].pointer, "#/consent/contact_by_phone");
        let body = br#"{"x":{"anna.secret":1,"anna.secret":2}}"#;
        let p = parse_json_object(body, &known).unwrap_err();
        assert_eq!(
            p.errors[0].field, "body",
            "unknown member names are not echoed"
        );
    }

    /// R1.2: arrays, strings, `null`, truncated, concatenated, non-UTF-8 and empty bodies are
    /// refused with 400.
    #[test]
    fn strict_json_rejects_non_objects_and_garbage() {
        for body in [
            &b"[]"[..],
            b"\"x\"",
            b"{",
            b"{}{}",
            b"\xff\xfe",
            b"",
            b"null",
        ] {
            assert_eq!(
                parse_json_object(body, &[]).unwrap_err().status,
                400,
                "{body:?}"
            );
        }
    }

    #[test]
    fn problem_response_has_the_media_type_and_no_input() {
        let resp = Problem::validation(vec![FieldProblem::new("email", "invalid_format", "x")])
            .into_response();
        assert_eq!(resp.status(), 422);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    /// R1.6: CORS headers are set only for a configured origin.
    #[test]
    fn cors_only_for_allowed_origins() {
        let allowed = vec!["https://polly-ki.de".to_owned()];
        let mut resp = json_response(StatusCode::OK, &serde_json::json!({}));
        apply_cors(&mut resp, Some("https://evil.example"), &allowed);
        assert!(resp
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
        apply_cors(&mut resp, Some("https://polly-ki.de"), &allowed);
        assert_eq!(
            resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://polly-ki.de"
        );
    }
}
