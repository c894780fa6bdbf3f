//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of every public and staff route.
//!
//! The document is checked in (`spec/openapi.json`) and compiled in. It cannot drift from
//! the code because the tests hold it to it (`tests/it/openapi.rs`): its routes equal the
//! template's and the local router's, its request schemas equal the handlers' field lists
//! and the domain's limits, and every response the real handlers give in those tests
//! validates against it.

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

/// The longest erasure cancel token (the description states it; its tests compare).
pub use usecases::dsar::erasure_window::MAX_TOKEN_CHARS as MAX_CANCEL_TOKEN_CHARS;

/// The description, as served.
pub const DOCUMENT: &str = include_str!("../../../spec/openapi.json");

/// The answer to `GET /v1/openapi.json`: public, cacheable for five minutes.
pub fn serve() -> Response<Body> {
    let mut r = Response::new(Body::Text(DOCUMENT.to_owned()));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in document is one JSON object declaring OpenAPI 3.1.
    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }
}
