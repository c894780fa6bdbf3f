//! trace-level: component
//!
//! The OpenAPI description (`spec/openapi.json`, compiled into `dsar-api` and served at
//! `GET /v1/openapi.json`) held to the code, so it cannot drift:
//!
//! - its operations are exactly the template's `/v1/` routes and the local router's
//!   (`{proxy+}` and `{action}` routes are described by their sub-resources);
//! - its request schemas list exactly the members the handlers read (their `FIELDS`
//!   constants), require what the handlers require, refuse unknown members where the
//!   handlers do, and state the domain's length limits;
//! - every response the real handlers give here, against the emulator, is documented for
//!   its operation (status code, media type) and validates against the documented schema
//!   (`tests/openapi/check.py`, JSON Schema 2020-12 from the pinned `jsonschema`; the
//!   document itself is checked with the pinned `openapi-spec-validator`).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use harness::events::ApiRequest;
use harness::template::Template;
use lambda_http::{Body, Response};
use serde_json::{json, Map, Value};

fn doc() -> Value {
    serde_json::from_str(::dsar::openapi::DOCUMENT).expect("the document is JSON")
}

fn schema(doc: &Value, name: &str) -> Value {
    doc["components"]["schemas"][name].clone()
}

/// Every (METHOD, path) the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// Whether a route path (template `{proxy+}`, router `{*rest}`, `{param}`) serves a
/// described path: literals equal, a parameter takes one segment, a greedy one the rest.
fn route_serves(route: &str, path: &str) -> bool {
    let route: Vec<&str> = route.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    for (i, r) in route.iter().enumerate() {
        let greedy = r.starts_with("{*") || r.ends_with("+}");
        if greedy {
            return path.len() > i;
        }
        match path.get(i) {
            None => return false,
            Some(p) if r.starts_with('{') => {
                if p.is_empty() {
                    return false;
                }
            }
            Some(p) if p != r => return false,
            Some(_) => {}
        }
    }
    route.len() == path.len()
}

/// Routes as (METHOD or ANY, path): the template's `/v1/` HTTP API events (the HTML pages
/// live outside `/v1/` and are not part of the API description).
fn template_routes() -> Vec<(String, String)> {
    Template::load()
        .unwrap()
        .http_routes()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .map(|r| (r.method.to_uppercase(), r.path))
        .collect()
}

/// The `cargo lambda watch` router's `/v1/` routes, `*` for every method; CORS preflights
/// (`OPTIONS`, answered by API Gateway in AWS) are no operations of the API.
fn router_routes() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let manifest: toml_edit::DocumentMut = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table_like()
        .unwrap();
    let mut out = Vec::new();
    for (path, routes) in router.iter() {
        if !path.starts_with("/v1/") {
            continue;
        }
        if routes.as_str().is_some() {
            out.push(("ANY".to_owned(), path.to_owned()));
            continue;
        }
        for route in routes.as_array().unwrap().iter() {
            let method = route
                .as_inline_table()
                .and_then(|t| t.get("method"))
                .and_then(|m| m.as_str())
                .unwrap();
            if method != "OPTIONS" {
                out.push((method.to_owned(), path.to_owned()));
            }
        }
    }
    out
}

fn assert_same_routes(source: &str, routes: &[(String, String)], ops: &BTreeSet<(String, String)>) {
    assert!(!routes.is_empty(), "{source}: no routes");
    for (method, path) in ops {
        let serving: Vec<_> = routes
            .iter()
            .filter(|(m, r)| (m == method || m == "ANY") && route_serves(r, path))
            .collect();
        assert_eq!(
            serving.len(),
            1,
            "{method} {path} is described; {source} routes it {serving:?}"
        );
    }
    for (method, route) in routes {
        assert!(
            ops.iter()
                .any(|(m, p)| (m == method || method == "ANY") && route_serves(route, p)),
            "{method} {route} is routed by the {source} but not described"
        );
    }
}

/// The set of operations in the document is the set of the template's API routes and of
/// the local router's: every route described, nothing described that is not routed.
#[test]
fn the_document_describes_exactly_the_routed_operations() {
    let doc = doc();
    let ops = operations(&doc);
    for public in [
        "POST /v1/signups",
        "POST /v1/telephony/retell",
        "POST /v1/dsar",
        "GET /v1/dsar/{id}",
        "POST /v1/dsar/{id}/verify",
        "GET /v1/dsar/{id}/cancel",
        "POST /v1/dsar/{id}/cancel",
        "GET /v1/openapi.json",
    ] {
        let (m, p) = public.split_once(' ').unwrap();
        assert!(ops.contains(&(m.to_owned(), p.to_owned())), "{public}");
    }
    assert_same_routes("template", &template_routes(), &ops);
    assert_same_routes("router", &router_routes(), &ops);
    // And the matcher is not vacuous: a path nobody routes is caught.
    let mut extra = ops.clone();
    extra.insert(("GET".to_owned(), "/v1/nothing".to_owned()));
    assert!(std::panic::catch_unwind(|| assert_same_routes(
        "template",
        &template_routes(),
        &extra
    ))
    .is_err());
}

/// Every staff operation carries the SigV4 security requirement and answers 403; the
/// public ones need none but the status route's bearer token.
#[test]
fn staff_operations_are_sigv4_and_public_ones_are_open() {
    let doc = doc();
    let scheme = &doc["components"]["securitySchemes"]["awsSigv4"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["x-amazon-apigateway-authtype"], "awsSigv4");
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let security = op["security"]
            .as_array()
            .expect("security stated per operation");
        if path.starts_with("/v1/admin/") || path.starts_with("/v1/sales/") {
            assert_eq!(security, &vec![json!({"awsSigv4": []})], "{method} {path}");
            assert!(op["responses"]["403"].is_object(), "{method} {path}");
        } else if path == "/v1/dsar/{id}" {
            assert_eq!(security, &vec![json!({"requestToken": []})]);
        } else {
            assert!(security.is_empty(), "{method} {path}");
        }
    }
}

/// The dotted member paths a request schema describes (`consent.contact_by_phone`).
fn members(doc: &Value, schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap().clone(),
        None => schema.clone(),
    };
    for (name, sub) in schema["properties"].as_object().into_iter().flatten() {
        let path = format!("{prefix}{name}");
        out.insert(path.clone());
        members(doc, sub, &format!("{path}."), out);
    }
}

fn member_set(doc: &Value, name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    members(doc, &schema(doc, name), "", &mut out);
    out
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The fields a parser reports as `required`.
fn required_errors(errors: &[shared::http::FieldProblem]) -> BTreeSet<String> {
    errors
        .iter()
        .filter(|e| e.code == "required")
        .map(|e| e.field.clone())
        .collect()
}

fn versions() -> Vec<String> {
    vec![Template::load()
        .unwrap()
        .parameter_default("PrivacyPolicyVersions")
        .unwrap()]
}

/// The sign-up body's schema is the handler's: the members it reads (`FIELDS`), the
/// ones it requires (at each level), unknown members ignored (so not refused by the
/// schema), the domain's length limits, the day codes; its example is accepted.
#[test]
fn the_signup_schema_is_the_handlers() {
    let doc = doc();
    let s = schema(&doc, "SignupRequest");
    assert_eq!(member_set(&doc, "SignupRequest"), set(signup::FIELDS));

    let errors = signup::parse_form(&Map::new(), &versions()).unwrap_err();
    assert_eq!(required_errors(&errors), required(&s));
    let errors = signup::parse_form(&obj(json!({"consent": {}, "call_window": {}})), &versions())
        .unwrap_err();
    let nested: BTreeSet<String> = ["consent", "call_window"]
        .iter()
        .flat_map(|p| {
            required(&s["properties"][p])
                .into_iter()
                .map(move |f| format!("{p}.{f}"))
        })
        .collect();
    let reported: BTreeSet<String> = required_errors(&errors)
        .into_iter()
        .filter(|f| f.contains('.'))
        .collect();
    assert_eq!(reported, nested);

    // Unknown members: ignored by the handler, allowed by the schema.
    let example = &doc["paths"]["/v1/signups"]["post"]["requestBody"]["content"]
        ["application/json"]["examples"]["example"]["value"];
    signup::parse_form(&obj(example.clone()), &versions()).expect("the example is accepted");
    let mut extra = obj(example.clone());
    extra.insert("unknown_member".into(), json!("x"));
    assert!(signup::parse_form(&extra, &versions()).is_ok());
    assert_eq!(s["additionalProperties"], true);

    let p = &s["properties"];
    use shared::domain::{MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_NOTES_CHARS, MAX_PHONE_INPUT_CHARS};
    for (field, max) in [
        ("first_name", MAX_NAME_CHARS),
        ("last_name", MAX_NAME_CHARS),
        ("email", MAX_EMAIL_CHARS),
        ("phone", MAX_PHONE_INPUT_CHARS),
        ("notes", MAX_NOTES_CHARS),
    ] {
        assert_eq!(p[field]["maxLength"], json!(max), "{field}");
    }
    // The limits bite where the document says: at the limit accepted, one more refused.
    for (field, max) in [("first_name", MAX_NAME_CHARS), ("notes", MAX_NOTES_CHARS)] {
        let mut at = obj(example.clone());
        at.insert(field.into(), json!("a".repeat(max)));
        assert!(signup::parse_form(&at, &versions()).is_ok(), "{field}");
        at.insert(field.into(), json!("a".repeat(max + 1)));
        let errors = signup::parse_form(&at, &versions()).unwrap_err();
        assert_eq!(errors[0].field, field);
    }
    assert_eq!(
        p["call_window"]["properties"]["days"]["items"]["enum"],
        json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    );
    for day in p["call_window"]["properties"]["days"]["items"]["enum"]
        .as_array()
        .unwrap()
    {
        let mut w = obj(example.clone());
        w.insert(
            "call_window".into(),
            json!({"from": "09:00", "to": "17:00", "days": [day]}),
        );
        if day != "sun" {
            assert!(signup::parse_form(&w, &versions()).is_ok(), "{day}");
        }
    }
}

/// The data-subject request's schema is the handler's: its members are
/// `SUBMIT_FIELDS`, `type` is required and one of the request types, email or phone is
/// required, unknown members are refused (at the top and in `corrections`), the domain's
/// length limits; the staff entry adds exactly `ENTRY_FIELDS`, all required.
#[test]
fn the_dsar_schemas_are_the_handlers() {
    let doc = doc();
    let s = schema(&doc, "DsarRequest");
    assert_eq!(member_set(&doc, "DsarRequest"), set(::dsar::SUBMIT_FIELDS));
    assert_eq!(required(&s), set(&["type"]));
    let errors = ::dsar::parse_intake(&Map::new()).unwrap_err();
    assert_eq!(required_errors(&errors), set(&["type", "email"]));
    assert_eq!(
        s["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(required)
            .collect::<Vec<_>>(),
        vec![set(&["email"]), set(&["phone"])]
    );
    assert!(
        ::dsar::parse_intake(&obj(json!({"type": "access", "phone": "+49 170 1234567"}))).is_ok()
    );
    let types: Vec<&str> = shared::dsar::RequestType::ALL
        .iter()
        .map(|t| t.code())
        .collect();
    assert_eq!(s["properties"]["type"]["enum"], json!(types));

    let example = &doc["paths"]["/v1/dsar"]["post"]["requestBody"]["content"]["application/json"]
        ["examples"]["example"]["value"];
    ::dsar::parse_intake(&obj(example.clone())).expect("the example is accepted");
    assert_eq!(s["additionalProperties"], false);
    let mut extra = obj(example.clone());
    extra.insert("unknown_member".into(), json!("x"));
    let errors = ::dsar::parse_intake(&extra).unwrap_err();
    assert_eq!(errors[0].code, "unknown_field");
    let corrections = &s["properties"]["corrections"];
    assert_eq!(corrections["additionalProperties"], false);
    let errors = ::dsar::parse_intake(&obj(
        json!({"type": "rectification", "email": "a@example.org", "corrections": {"shoe_size": "44"}}),
    ))
    .unwrap_err();
    assert_eq!(errors[0].code, "unknown_field");

    use shared::domain::{MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_NOTES_CHARS, MAX_PHONE_INPUT_CHARS};
    assert_eq!(
        s["properties"]["email"]["maxLength"],
        json!(MAX_EMAIL_CHARS)
    );
    assert_eq!(
        s["properties"]["phone"]["maxLength"],
        json!(MAX_PHONE_INPUT_CHARS)
    );
    assert_eq!(
        s["properties"]["message"]["maxLength"],
        json!(::dsar::MAX_TEXT_CHARS)
    );
    assert_eq!(::dsar::MAX_TEXT_CHARS, MAX_NOTES_CHARS);
    for (f, max) in [
        ("first_name", MAX_NAME_CHARS),
        ("last_name", MAX_NAME_CHARS),
        ("email", MAX_EMAIL_CHARS),
        ("phone", MAX_PHONE_INPUT_CHARS),
        ("notes", MAX_NOTES_CHARS),
    ] {
        assert_eq!(corrections["properties"][f]["maxLength"], json!(max), "{f}");
    }
    let mut long = obj(example.clone());
    long.insert("message".into(), json!("a".repeat(::dsar::MAX_TEXT_CHARS)));
    assert!(::dsar::parse_intake(&long).is_ok());
    long.insert(
        "message".into(),
        json!("a".repeat(::dsar::MAX_TEXT_CHARS + 1)),
    );
    assert_eq!(::dsar::parse_intake(&long).unwrap_err()[0].field, "message");

    // The staff entry: the public fields plus ENTRY_FIELDS, which are all required.
    let entry = schema(&doc, "StaffEntry");
    let mut fields = set(::dsar::SUBMIT_FIELDS);
    fields.extend(set(::dsar::staff::ENTRY_FIELDS));
    assert_eq!(member_set(&doc, "StaffEntry"), fields);
    let mut req = set(::dsar::staff::ENTRY_FIELDS);
    req.insert("type".into());
    assert_eq!(required(&entry), req);
    let errors = ::dsar::staff::parse_entry(&Map::new()).unwrap_err();
    let reported: BTreeSet<String> = errors.iter().map(|e| e.field.clone()).collect();
    assert!(
        set(::dsar::staff::ENTRY_FIELDS).is_subset(&reported),
        "{reported:?}"
    );
    let example = &doc["paths"]["/v1/admin/dsar"]["post"]["requestBody"]["content"]
        ["application/json"]["examples"]["example"]["value"];
    ::dsar::staff::parse_entry(&obj(example.clone())).expect("the staff example is accepted");

    // The cancel token and the extension.
    let token = &schema(&doc, "CancelJson")["properties"]["token"];
    assert_eq!(
        token["maxLength"],
        json!(::dsar::openapi::MAX_CANCEL_TOKEN_CHARS)
    );
    let extend = &schema(&doc, "Extend")["properties"];
    assert_eq!(
        extend["months"]["maximum"],
        json!(shared::dsar::MAX_EXTENSION_MONTHS)
    );
    assert_eq!(extend["reason"]["maxLength"], json!(::dsar::MAX_TEXT_CHARS));
}

/// The webhook documents its signature header (required, the provider's format) and its
/// refusals: 401 for a bad signature, 403 outside the provider's networks, 413.
#[test]
fn the_webhook_documents_its_signature_and_refusals() {
    let doc = doc();
    let op = &doc["paths"]["/v1/telephony/retell"]["post"];
    let header = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == "header")
        .unwrap();
    assert_eq!(header["name"], shared::retell::signature::SIGNATURE_HEADER);
    assert_eq!(header["required"], true);
    for status in ["401", "403", "413"] {
        assert!(
            op["responses"][status]["content"]["application/problem+json"].is_object(),
            "{status}"
        );
    }
}

/// One real response, as `check.py` reads it.
struct Samples(Vec<Value>);

impl Samples {
    fn add(&mut self, label: &str, method: &str, path: &str, resp: &Response<Body>) -> Value {
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = match resp.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        let json_like = content_type.as_deref().is_some_and(|c| c.contains("json"));
        let body = if text.is_empty() {
            Value::Null
        } else if json_like {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{label}: not JSON: {e}"))
        } else {
            Value::String(text)
        };
        self.0.push(json!({
            "label": label, "method": method, "path": path,
            "status": resp.status().as_u16(), "content_type": content_type, "body": body,
        }));
        body
    }

    fn statuses(&self) -> BTreeMap<String, BTreeSet<u64>> {
        let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for s in &self.0 {
            out.entry(format!(
                "{} {}",
                s["method"].as_str().unwrap(),
                s["path"].as_str().unwrap()
            ))
            .or_default()
            .insert(s["status"].as_u64().unwrap());
        }
        out
    }

    /// Runs `check.py` over the document and these responses; panics with its findings.
    fn check(&self) {
        // No answer echoes a submitted personal value.
        for sample in &self.0 {
            let text = sample["body"].to_string().to_lowercase();
            for value in PERSONAL {
                assert!(
                    !text.contains(&value.to_lowercase()),
                    "{}: echoes a submitted value",
                    sample["label"]
                );
            }
        }
        let dir = std::env::temp_dir().join(format!("polly-openapi-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples = dir.join("samples.json");
        std::fs::write(&samples, serde_json::to_vec(&self.0).unwrap()).unwrap();
        let out = check_py(&[samples.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.0, "responses that break the document:\n{}", out.1);
    }
}

/// `check.py SPEC [SAMPLES]` with the venv's Python: (passed, output).
fn check_py(extra: &[&str]) -> (bool, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(root.join("tests/openapi/check.py"))
        .arg(root.join("spec/openapi.json"))
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("run {} (make setup): {e}", python.display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The checked-in document is valid OpenAPI 3.1 (pinned `openapi-spec-validator`) and
/// every request example validates against its schema; and the checker is not vacuous: a
/// document whose example breaks its schema, or a response it does not document, fails.
#[test]
fn the_document_is_valid_openapi_3_1_and_the_checker_bites() {
    let (ok, out) = check_py(&[]);
    assert!(ok, "{out}");

    let bad = vec![
        json!({"label": "undocumented status", "method": "POST", "path": "/v1/dsar", "status": 418,
               "content_type": "application/json", "body": {}}),
        json!({"label": "wrong shape", "method": "POST", "path": "/v1/dsar", "status": 202,
               "content_type": "application/json", "body": {"request_id": "x"}}),
        json!({"label": "undocumented media", "method": "POST", "path": "/v1/signups", "status": 201,
               "content_type": "text/plain", "body": "ok"}),
        json!({"label": "problem with an extra member", "method": "POST", "path": "/v1/signups", "status": 422,
               "content_type": "application/problem+json",
               "body": {"type": "https://polly-ki.de/problems/validation", "title": "t", "status": 422, "detail": "d", "value": "erika@example.org"}}),
    ];
    let dir = std::env::temp_dir().join(format!("polly-openapi-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let samples = dir.join("bad.json");
    std::fs::write(&samples, serde_json::to_vec(&bad).unwrap()).unwrap();
    let (ok, out) = check_py(&[samples.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok);
    for sample in &bad {
        let label = sample["label"].as_str().unwrap();
        assert!(
            out.contains(&format!("{label}: ")),
            "{label} not caught:\n{out}"
        );
    }
}

/// `GET /v1/openapi.json` on the real `dsar-api` handler: 200, `application/json`,
/// cacheable for five minutes, byte for byte the checked-in document, which names no
/// person (its examples use the reserved `example.org` and a made-up name).
#[tokio::test]
async fn the_description_is_served_by_dsar_api() {
    let w = World::start().await;
    let resp = ::dsar::handle(&w.api, ApiRequest::get("/v1/openapi.json").build()).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["cache-control"], "public, max-age=300");
    let Body::Text(text) = resp.body() else {
        panic!("a text body")
    };
    let on_disk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/openapi.json"),
    )
    .unwrap();
    assert_eq!(text.as_str(), on_disk.as_str(), "served = checked in");
    // No personal data: every address is at a reserved example domain, every number a
    // fictitious one.
    for email in text
        .split(|c: char| c == '"' || c.is_whitespace())
        .filter(|t| t.contains('@') && t.contains('.'))
    {
        assert!(email.ends_with("@example.org"), "{email}");
    }
    // Other methods are not served.
    let resp = ::dsar::handle(
        &w.api,
        ApiRequest::post_json("/v1/openapi.json", b"{}").build(),
    )
    .await;
    assert_eq!(resp.status(), 404);
    w.shutdown().await.unwrap();
}

/// R1.2, R4.1, R4.2: every answer the real handlers give on the public routes, against
/// the emulator (success, 400, 401, 404, 409, 410, 413, 415, 422, 429 and the refusals of
/// the webhook), is documented for its operation and validates against the document.
#[tokio::test]
async fn real_responses_of_the_public_routes_match_the_document() {
    let w = World::on_mail_emulator_named("openapi").await;
    let mut s = Samples(Vec::new());

    // Sign-up.
    let form_bytes = serde_json::to_vec(&form()).unwrap();
    let post = |body: &'static [u8]| ApiRequest::post_json("/v1/signups", body);
    let r = signup::handle(
        &w.signup.app,
        ApiRequest::post_json("/v1/signups", &form_bytes).build(),
    )
    .await;
    assert_eq!(r.status(), 201);
    s.add("signup ok", "POST", "/v1/signups", &r);
    for case in bad_cases() {
        let mut req =
            ApiRequest::post_json("/v1/signups", &case.body).without_header("content-type");
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        let r = signup::handle(&w.signup.app, req.build()).await;
        assert_eq!(r.status().as_u16(), case.status, "{}", case.name);
        s.add(case.name, "POST", "/v1/signups", &r);
    }
    for (label, req) in [
        ("signup malformed", post(b"{\"first_name\":")),
        (
            "signup text/plain",
            post(b"{}").header("content-type", "text/plain"),
        ),
    ] {
        let r = signup::handle(&w.signup.app, req.build()).await;
        s.add(label, "POST", "/v1/signups", &r);
    }

    // Data-subject requests: submit, verify, status, and their refusals.
    let email = EMAIL.to_owned();
    let submit_body = serde_json::to_vec(&json!({"type": "access", "email": email})).unwrap();
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json("/v1/dsar", &submit_body).build(),
    )
    .await;
    let body = s.add("dsar submit", "POST", "/v1/dsar", &r);
    assert_eq!(r.status(), 202);
    let id = body["request_id"].as_str().unwrap().to_owned();
    for (label, bytes, ct) in [
        ("dsar malformed", b"{".to_vec(), "application/json"),
        (
            "dsar duplicate",
            br#"{"type":"access","type":"erasure","email":"a@example.org"}"#.to_vec(),
            "application/json",
        ),
        (
            "dsar too large",
            vec![b' '; ::dsar::MAX_BODY_BYTES + 1],
            "application/json",
        ),
        (
            "dsar form body",
            b"type=access".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            "dsar invalid",
            br#"{"type":"nope","email":"not-an-email","unknown":1}"#.to_vec(),
            "application/json",
        ),
        (
            "dsar no identifier",
            br#"{"type":"access"}"#.to_vec(),
            "application/json",
        ),
    ] {
        let r = ::dsar::handle(
            &w.api,
            ApiRequest::post_json("/v1/dsar", &bytes)
                .header("content-type", ct)
                .build(),
        )
        .await;
        s.add(label, "POST", "/v1/dsar", &r);
    }
    let verify_path = format!("/v1/dsar/{id}/verify");
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&verify_path, br#"{"code":"00000000"}"#).build(),
    )
    .await;
    assert_eq!(r.status(), 422);
    s.add("verify wrong code", "POST", "/v1/dsar/{id}/verify", &r);
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&verify_path, br#"{"code":7}"#).build(),
    )
    .await;
    s.add(
        "verify code of wrong type",
        "POST",
        "/v1/dsar/{id}/verify",
        &r,
    );
    let r = ::dsar::handle(&w.api, ApiRequest::post_json(&verify_path, b"{}").build()).await;
    s.add("verify without code", "POST", "/v1/dsar/{id}/verify", &r);
    let unknown = "/v1/dsar/00000000-0000-7000-8000-000000000000/verify";
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(unknown, br#"{"code":"12345678"}"#).build(),
    )
    .await;
    s.add("verify unknown id", "POST", "/v1/dsar/{id}/verify", &r);
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json("/v1/dsar/not-an-id/verify", br#"{"code":"12345678"}"#).build(),
    )
    .await;
    s.add("verify malformed id", "POST", "/v1/dsar/{id}/verify", &r);
    let code = w.latest_code(&email, &id).await;
    let code_body = serde_json::to_vec(&json!({"code": code})).unwrap();
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&verify_path, &code_body).build(),
    )
    .await;
    let verified = s.add("verify ok", "POST", "/v1/dsar/{id}/verify", &r);
    assert_eq!(r.status(), 200);
    let token = verified["request_token"].as_str().unwrap().to_owned();
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&verify_path, &code_body).build(),
    )
    .await;
    assert_eq!(r.status(), 409);
    s.add("verify again", "POST", "/v1/dsar/{id}/verify", &r);

    let status_path = format!("/v1/dsar/{id}");
    let bearer = format!("Bearer {token}");
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::get(&status_path)
            .header("authorization", &bearer)
            .build(),
    )
    .await;
    assert_eq!(r.status(), 200);
    s.add("status ok", "GET", "/v1/dsar/{id}", &r);
    let r = ::dsar::handle(&w.api, ApiRequest::get(&status_path).build()).await;
    s.add("status without token", "GET", "/v1/dsar/{id}", &r);
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::get(&status_path)
            .header("authorization", "Bearer wrong")
            .build(),
    )
    .await;
    s.add("status wrong token", "GET", "/v1/dsar/{id}", &r);

    // The export is built, then the status carries the download link.
    w.pump(&id, 1).await;
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::get(&status_path)
            .header("authorization", &bearer)
            .build(),
    )
    .await;
    let done = s.add("status completed", "GET", "/v1/dsar/{id}", &r);
    assert!(done["download_url"].is_string(), "{done}");

    // The erasure cancel link: unknown id and wrong token, as page and as JSON.
    let cancel = format!("/v1/dsar/{id}/cancel");
    let r = ::dsar::handle(&w.api, ApiRequest::get(&cancel).query("t=abc").build()).await;
    s.add("cancel page", "GET", "/v1/dsar/{id}/cancel", &r);
    let r = ::dsar::handle(&w.api, ApiRequest::get(&cancel).query("t=%%").build()).await;
    s.add("cancel page malformed", "GET", "/v1/dsar/{id}/cancel", &r);
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&cancel, br#"{"token":"abc"}"#).build(),
    )
    .await;
    s.add(
        "cancel json wrong token",
        "POST",
        "/v1/dsar/{id}/cancel",
        &r,
    );
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&cancel, b"t=abc")
            .header("content-type", "application/x-www-form-urlencoded")
            .build(),
    )
    .await;
    s.add(
        "cancel form wrong token",
        "POST",
        "/v1/dsar/{id}/cancel",
        &r,
    );
    let r = ::dsar::handle(&w.api, ApiRequest::post_json(&cancel, b"{}").build()).await;
    s.add(
        "cancel json without token",
        "POST",
        "/v1/dsar/{id}/cancel",
        &r,
    );
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&cancel, b"x")
            .header("content-type", "text/plain")
            .build(),
    )
    .await;
    s.add("cancel text", "POST", "/v1/dsar/{id}/cancel", &r);

    // The webhook: unsigned, badly signed, from outside the networks, unreadable, signed.
    let hook = "/v1/telephony/retell";
    let r = telephony::handle(&w.webhook, ApiRequest::post_json(hook, b"{}").build()).await;
    assert_eq!(r.status(), 401);
    s.add("webhook unsigned", "POST", hook, &r);
    let r = telephony::handle(
        &w.webhook,
        ApiRequest::post_json(hook, b"{}")
            .header("x-retell-signature", "v=1,d=00")
            .build(),
    )
    .await;
    s.add("webhook malformed signature", "POST", hook, &r);
    let fenced = w.webhook_with(|c| {
        c.webhook_source_cidrs = vec![shared::config::Cidr::parse("10.0.0.0/8").unwrap()]
    });
    let r = telephony::handle(&fenced, ApiRequest::post_json(hook, b"{}").build()).await;
    assert_eq!(r.status(), 403);
    s.add("webhook outside networks", "POST", hook, &r);
    let signed = |body: &[u8]| harness::simulator::webhook::sign(body, common::API_KEY, w.now_ms());
    for (label, body) in [
        ("webhook unreadable", b"[1]".to_vec()),
        (
            "webhook ignored event",
            br#"{"event":"something_new"}"#.to_vec(),
        ),
        (
            "webhook unknown tool",
            br#"{"name":"nope","call":{"call_id":"call_x"},"args":{}}"#.to_vec(),
        ),
    ] {
        let sig = signed(&body);
        let r = telephony::handle(
            &w.webhook,
            ApiRequest::post_json(hook, &body)
                .header("x-retell-signature", &sig)
                .build(),
        )
        .await;
        s.add(label, "POST", hook, &r);
    }

    // The per-source daily limit (429), and a code entered after 15 minutes (410).
    let mut config = w.signup.stack.config_for("DsarApiFunction").unwrap();
    config.dsar_source_daily_limit = 1;
    let limited = ::dsar::App::from_aws(
        config,
        &w.signup.stack.aws,
        std::sync::Arc::new(w.signup.clock.clone()),
    )
    .unwrap();
    let late =
        serde_json::to_vec(&json!({"type": "erasure", "email": common::dsar::unique_email()}))
            .unwrap();
    let r = ::dsar::handle(&limited, ApiRequest::post_json("/v1/dsar", &late).build()).await;
    assert_eq!(r.status(), 429);
    s.add("dsar over the source limit", "POST", "/v1/dsar", &r);
    let r = ::dsar::handle(&w.api, ApiRequest::post_json("/v1/dsar", &late).build()).await;
    let body = s.add("dsar submit erasure", "POST", "/v1/dsar", &r);
    let late_path = format!("/v1/dsar/{}/verify", body["request_id"].as_str().unwrap());
    w.signup.clock.advance(chrono::Duration::minutes(16));
    let r = ::dsar::handle(
        &w.api,
        ApiRequest::post_json(&late_path, br#"{"code":"12345678"}"#).build(),
    )
    .await;
    assert_eq!(r.status(), 410);
    s.add("verify expired", "POST", "/v1/dsar/{id}/verify", &r);

    // The description itself.
    let r = ::dsar::handle(&w.api, ApiRequest::get("/v1/openapi.json").build()).await;
    s.add("openapi", "GET", "/v1/openapi.json", &r);

    s.check();
    // The answers above cover these status codes (so a handler that stopped giving them,
    // or one whose code the document lost, is seen).
    let seen = s.statuses();
    assert_eq!(seen["POST /v1/signups"], [201, 400, 413, 415, 422].into());
    assert_eq!(seen["POST /v1/dsar"], [202, 400, 413, 415, 422, 429].into());
    assert_eq!(
        seen["POST /v1/dsar/{id}/verify"],
        [200, 404, 409, 410, 422].into()
    );
    assert_eq!(seen["GET /v1/dsar/{id}"], [200, 401].into());
    w.shutdown().await.unwrap();
}

/// R4.10: the staff routes' answers (list, entry, one request, stats, analytics export,
/// do-not-call, refusal of an unlisted principal) are documented and validate.
#[tokio::test]
async fn real_responses_of_the_staff_routes_match_the_document() {
    let w = World::start().await;
    let mut s = Samples(Vec::new());
    let staff = |req: ApiRequest<'_>| {
        let req = req.as_staff(common::dsar::STAFF);
        ::dsar::staff::handle(&w.staff, req.build())
    };
    let r = staff(ApiRequest::get("/v1/admin/dsar")).await;
    s.add("list", "GET", "/v1/admin/dsar", &r);
    let entry = serde_json::to_vec(
        &json!({"type": "access", "phone": "+49 170 1234567", "channel": "letter",
        "received_at": "2026-11-27T09:30:00+01:00", "identity_verified": true}),
    )
    .unwrap();
    let r = staff(ApiRequest::post_json("/v1/admin/dsar", &entry)).await;
    let body = s.add("enter", "POST", "/v1/admin/dsar", &r);
    assert_eq!(r.status(), 201, "{body}");
    let id = body["request_id"].as_str().unwrap().to_owned();
    let r = staff(ApiRequest::post_json("/v1/admin/dsar", b"{}")).await;
    s.add("enter invalid", "POST", "/v1/admin/dsar", &r);
    let one = format!("/v1/admin/dsar/{id}");
    let r = staff(ApiRequest::get(&one)).await;
    s.add("one", "GET", "/v1/admin/dsar/{id}", &r);
    let extend = format!("/v1/admin/dsar/{id}/extend");
    let r = staff(ApiRequest::post_json(
        &extend,
        br#"{"months":2,"reason":"Viele Gespr\u00e4che."}"#,
    ))
    .await;
    s.add("extend", "POST", "/v1/admin/dsar/{id}/extend", &r);
    let deny = format!("/v1/admin/dsar/{id}/deny");
    let r = staff(ApiRequest::post_json(&deny, br#"{"reasons":[]}"#)).await;
    s.add(
        "deny without reasons",
        "POST",
        "/v1/admin/dsar/{id}/deny",
        &r,
    );
    let r = staff(ApiRequest::get("/v1/admin/stats").query("from=2026-11-01&to=2026-11-30")).await;
    s.add("stats", "GET", "/v1/admin/stats", &r);
    let r = staff(ApiRequest::get("/v1/admin/stats").query("from=2026-11-30&to=2026-11-01")).await;
    s.add("stats reversed", "GET", "/v1/admin/stats", &r);
    let r = staff(ApiRequest::post_json(
        "/v1/admin/do-not-call",
        br#"{"phone":"+49 170 7654321"}"#,
    ))
    .await;
    s.add("dnc", "POST", "/v1/admin/do-not-call", &r);
    let r = staff(ApiRequest::post_json(
        "/v1/admin/do-not-call/lift",
        br#"{"phone":"+49 170 7654321"}"#,
    ))
    .await;
    s.add("dnc lift", "POST", "/v1/admin/do-not-call/lift", &r);
    let r = staff(ApiRequest::post_json("/v1/admin/analytics-exports", b"{}")).await;
    let job = s.add("export", "POST", "/v1/admin/analytics-exports", &r);
    if let Some(export) = job["export_id"].as_str() {
        let path = format!("/v1/admin/analytics-exports/{export}");
        let r = staff(ApiRequest::get(&path)).await;
        s.add(
            "export state",
            "GET",
            "/v1/admin/analytics-exports/{export_id}",
            &r,
        );
    }
    let lead = shared::domain::LeadId::new().to_string();
    let subject = format!("/v1/admin/subjects/{lead}");
    let r = staff(ApiRequest::get(&subject)).await;
    s.add("unknown subject", "GET", "/v1/admin/subjects/{lead_id}", &r);
    let r = ::dsar::staff::handle(
        &w.staff,
        ApiRequest::get("/v1/admin/dsar")
            .as_staff("arn:aws:sts::123456789012:assumed-role/polly-developer/eve")
            .build(),
    )
    .await;
    assert_eq!(r.status(), 403);
    s.add("outsider", "GET", "/v1/admin/dsar", &r);
    s.check();
    w.shutdown().await.unwrap();
}
