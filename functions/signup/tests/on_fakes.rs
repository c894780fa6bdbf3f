//! The sign-up handler over in-memory fakes: the HTTP edge (problem+json, no oracle, no
//! half-stored lead, failures that say whether to retry) without the emulator. The same
//! promises are shown against moto by `tests/`.

use std::collections::HashMap;

use lambda_http::{Body, Request};
use serde_json::{json, Value};
use shared::Config;
use testkit::World;
use usecases::ports::Retry;

fn config() -> Config {
    let vars: HashMap<String, String> = [
        ("TABLE_NAME", "t"),
        ("KEY_TABLE_NAME", "k"),
        ("DATA_KEY_ID", "alias/data"),
        ("BLIND_INDEX_KEY_ID", "alias/bidx"),
        ("ALLOWED_ORIGINS", "https://pollyki.de"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Config::from_map(&vars).expect("a sign-up configuration")
}

/// An API Gateway (HTTP API, payload 2.0) POST as the runtime hands it over.
fn post(body: &[u8], content_type: &str) -> Request {
    use base64::Engine;
    let event = json!({
        "version": "2.0",
        "routeKey": "POST /v1/signups",
        "rawPath": "/v1/signups",
        "rawQueryString": "",
        "headers": {"content-type": content_type, "user-agent": "Mozilla/5.0 Firefox/128.0"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "local",
            "domainPrefix": "local", "requestId": "r", "routeKey": "POST /v1/signups",
            "stage": "$default", "time": "28/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_860_000_000_i64,
            "http": {"method": "POST", "path": "/v1/signups", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0 Firefox/128.0"}
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    });
    lambda_http::request::from_str(&event.to_string()).expect("a well-formed event")
}

fn form(email: &str, phone: &str) -> Value {
    json!({
        "first_name": "Wilhelmine",
        "last_name": "Zwetschgenbaum",
        "email": email,
        "phone": phone,
        "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"}
    })
}

async fn send(app: &signup::App, req: Request) -> (u16, String, String) {
    let resp = signup::handle(app, req).await;
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (resp.status().as_u16(), content_type, body)
}

fn app(w: &World) -> signup::App {
    signup::App::new(config(), w.signup())
}

const EMAIL: &str = "wilhelmine@example.org";
const PHONE: &str = "0170 9876543";

/// R1.1, R1.6: a valid form through the handler is answered 201 with only `reference` and
/// `status` (no lead id), and stores one lead and one consent proof.
#[tokio::test]
async fn a_valid_form_is_stored_once_and_answered_with_a_reference_only() {
    let w = World::new();
    let body = serde_json::to_vec(&form(EMAIL, PHONE)).unwrap();
    let (status, _, answer) = send(&app(&w), post(&body, "application/json")).await;
    assert_eq!(status, 201, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(
        answer.as_object().unwrap().len(),
        2,
        "no lead id, no outcome: {answer}"
    );
    assert_eq!(w.leads.leads().len(), 1);
    assert_eq!(w.leads.consents().len(), 1);
}

/// R1.2: bad bodies through the handler (not JSON, an array, a duplicate member, form
/// encoding, no consent, a 500-letter name, a bad email, 64 KiB) each get their 4xx as
/// problem+json naming the field, echo no submitted value, and store nothing.
#[tokio::test]
async fn hostile_bodies_get_a_problem_naming_the_field_and_nothing_is_stored() {
    let w = World::new();
    let app = app(&w);
    let valid = form(EMAIL, PHONE);
    let mut no_consent = valid.clone();
    no_consent["consent"]["contact_by_phone"] = json!(false);
    let mut long_name = valid.clone();
    long_name["first_name"] = json!("W".repeat(500));
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "not json",
            b"{\"first_name\": ".to_vec(),
            "application/json",
            400,
            "body",
        ),
        ("an array", b"[]".to_vec(), "application/json", 400, "body"),
        (
            "duplicate member",
            br#"{"email": "a@example.org", "email": "b@example.org"}"#.to_vec(),
            "application/json",
            400,
            "email",
        ),
        (
            "form encoded",
            b"first_name=W".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "content-type",
        ),
        (
            "no consent",
            serde_json::to_vec(&no_consent).unwrap(),
            "application/json",
            422,
            "consent.contact_by_phone",
        ),
        (
            "long name",
            serde_json::to_vec(&long_name).unwrap(),
            "application/json",
            422,
            "first_name",
        ),
        (
            "bad email",
            serde_json::to_vec(&form("wilhelmine@", PHONE)).unwrap(),
            "application/json",
            422,
            "email",
        ),
        (
            "oversized",
            vec![b' '; 64 * 1024],
            "application/json",
            413,
            "body",
        ),
    ];
    for (name, body, content_type, expected, field) in cases {
        let (status, problem_type, answer) = send(&app, post(&body, content_type)).await;
        assert_eq!(status, expected, "{name}: {answer}");
        assert_eq!(problem_type, "application/problem+json", "{name}");
        let problem: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(problem["status"], expected, "{name}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no errors in {answer}"))
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{name}: fields {fields:?}");
        let lower = answer.to_lowercase();
        for submitted in ["wilhelmine", "example.org", "www"] {
            assert!(!lower.contains(submitted), "{name}: echoes {submitted}");
        }
    }
    assert!(w.leads.leads().is_empty() && w.leads.consents().is_empty());
}

/// R1.4, R1.6: a new person, the same person again and a submission with a known email and
/// another phone get the same status and body but for the reference; the half-known one
/// creates no lead.
#[tokio::test]
async fn new_known_and_half_known_people_get_the_same_answer() {
    let w = World::new();
    let app = app(&w);
    let mut shapes = Vec::new();
    for (email, phone) in [(EMAIL, PHONE), (EMAIL, PHONE), (EMAIL, "0170 1111111")] {
        let body = serde_json::to_vec(&form(email, phone)).unwrap();
        let (status, _, answer) = send(&app, post(&body, "application/json")).await;
        let mut answer: Value = serde_json::from_str(&answer).unwrap();
        answer["reference"] = json!("<fresh>");
        shapes.push((status, answer));
    }
    assert!(shapes.windows(2).all(|p| p[0] == p[1]), "{shapes:?}");
    assert_eq!(
        w.leads.leads().len(),
        1,
        "the half-known submission created nothing"
    );
}

/// A store outage is a retryable problem (503, problem+json) and stores nothing.
#[tokio::test]
async fn a_store_outage_is_a_retryable_problem_and_stores_nothing() {
    let w = World::new();
    w.leads.fail_with(Retry::Transient);
    let body = serde_json::to_vec(&form(EMAIL, PHONE)).unwrap();
    let (status, content_type, answer) = send(&app(&w), post(&body, "application/json")).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(content_type, "application/problem+json");
    w.leads.heal();
    assert!(w.leads.leads().is_empty());
}
