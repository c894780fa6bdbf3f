//! Sign-up end to end against the emulator: the handler is called with API Gateway events,
//! the real adapters talk to moto over HTTP, and what was stored is read back raw.

mod common;

use chrono::Duration;
use common::*;
use harness::events::ApiRequest;
use serde_json::{json, Value};
use shared::ports::CallState;

#[tokio::test]
async fn signup_returns_201_and_stores_an_encrypted_lead_that_requests_a_call() {
    let app = TestApp::spawn().await;

    let (status, body) = app.sign_up(&form()).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "accepted");
    let id = lead_id(&body);
    let lead = app
        .service()
        .read(&id)
        .await
        .unwrap()
        .expect("lead readable");
    assert_eq!(lead.profile.first_name.expose(), FIRST);
    assert_eq!(lead.profile.last_name.expose(), LAST);
    assert_eq!(lead.profile.email.expose(), EMAIL);
    assert_eq!(lead.profile.phone.expose(), PHONE_E164);
    assert_eq!(lead.profile.notes.as_ref().unwrap().expose(), NOTES);
    assert_eq!(lead.technical.source_ip.unwrap().to_string(), "203.0.113.7");
    let client = lead.technical.client.as_ref().expect("user agent reduced");
    assert_eq!(
        (
            client.browser.as_str(),
            client.os.as_str(),
            client.device.as_str()
        ),
        ("Firefox", "Windows 10", "pc")
    );
    assert_eq!(lead.stored.call_state, CallState::Requested);
    assert_eq!(lead.stored.call_request_count, 1);
    assert_eq!(lead.stored.consent_policy_version, "2024-04-08");
    assert_eq!(lead.stored.signed_up_at, t("2026-11-28T10:00:00Z"));
    assert_eq!(lead.stored.last_contact_at, t("2026-11-28T10:00:00Z"));
    assert_eq!(
        lead.stored.expires_at,
        t("2029-11-28T10:00:00Z"),
        "3 years after last contact"
    );
}

#[tokio::test]
async fn the_raw_items_hold_no_personal_value_in_plaintext_anywhere() {
    let app = TestApp::spawn().await;
    let (status, _) = app.sign_up(&form()).await;
    assert_eq!(status, 201);

    let items = app.scan().await;
    let kinds: Vec<String> = items
        .iter()
        .filter_map(|i| i.get("kind").and_then(|k| k.as_s().ok()).cloned())
        .collect();
    for kind in ["lead", "data_key", "claim", "phone_consent", "audit"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "a {kind} item was stored: {kinds:?}"
        );
    }
    let secrets = [
        FIRST,
        LAST,
        EMAIL,
        PHONE,
        PHONE_E164,
        "1709876543",
        NOTES,
        "Pflaumenkuchen",
        "203.0.113.7",
        "Firefox",
    ];
    for item in &items {
        let mut strings = Vec::new();
        for (name, value) in item {
            strings.push(name.as_bytes().to_vec());
            flatten(value, &mut strings);
        }
        for s in &strings {
            for secret in secrets {
                assert!(
                    !contains_ci(s, secret),
                    "an item contains a personal value in plaintext"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_stored_item_carries_the_ttl_backstop() {
    let app = TestApp::spawn().await;
    app.sign_up(&form()).await;
    for item in app.scan().await {
        let kind = item["kind"].as_s().unwrap().clone();
        if kind == "audit" {
            continue; // audit events have no finite retention in R3
        }
        let ttl: i64 = item
            .get("ttl")
            .unwrap_or_else(|| panic!("{kind} has no ttl"))
            .as_n()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            ttl > t("2029-11-28T10:00:00Z").timestamp(),
            "{kind}: ttl lies after the due date"
        );
    }
}

#[tokio::test]
async fn the_same_email_signing_up_again_is_the_same_lead_and_moves_last_contact() {
    let app = TestApp::spawn().await;
    let (_, first) = app.sign_up(&form()).await;

    app.clock.advance(Duration::hours(2));
    let mut again = form();
    again["email"] = json!("Wilhelmine.Zwetschgenbaum@EXAMPLE.org");
    again["phone"] = json!("+49 30 12345678");
    let (status, second) = app.sign_up(&again).await;

    assert_eq!(status, 201);
    assert_eq!(second, first, "same answer, same lead");
    assert_eq!(app.items_of_kind("lead").await.len(), 1);
    let lead = app.service().read(&lead_id(&first)).await.unwrap().unwrap();
    assert_eq!(lead.stored.last_contact_at, t("2026-11-28T12:00:00Z"));
    assert_eq!(lead.stored.expires_at, t("2029-11-28T12:00:00Z"));
    assert_eq!(
        lead.stored.call_request_count, 1,
        "no second call within 24 h"
    );
    assert_eq!(
        app.items_of_kind("phone_consent").await.len(),
        2,
        "each consent is evidenced"
    );
}

#[tokio::test]
async fn the_same_phone_written_differently_is_the_same_lead() {
    let app = TestApp::spawn().await;
    let (_, first) = app.sign_up(&form()).await;

    for written in ["+49 170 9876543", "0049 (170) 987-6543", "01709876543"] {
        let mut again = form();
        again["email"] = json!("someone.else@example.net");
        again["phone"] = json!(written);
        let (status, body) = app.sign_up(&again).await;
        assert_eq!(status, 201);
        assert_eq!(body["lead_id"], first["lead_id"], "{written}");
    }
    assert_eq!(app.items_of_kind("lead").await.len(), 1);
}

#[tokio::test]
async fn a_repeat_after_24_hours_requests_a_new_call_and_within_24_hours_does_not() {
    let app = TestApp::spawn().await;
    let (_, body) = app.sign_up(&form()).await;
    let id = lead_id(&body);

    app.clock.advance(Duration::hours(23));
    app.sign_up(&form()).await;
    assert_eq!(
        app.service()
            .read(&id)
            .await
            .unwrap()
            .unwrap()
            .stored
            .call_request_count,
        1
    );

    app.clock.advance(Duration::hours(2));
    app.sign_up(&form()).await;
    let lead = app.service().read(&id).await.unwrap().unwrap();
    assert_eq!(lead.stored.call_request_count, 2);
    assert_eq!(lead.stored.call_requested_at, t("2026-11-29T11:00:00Z"));
}

#[tokio::test]
async fn concurrent_signups_of_one_person_create_one_lead() {
    let app = TestApp::spawn().await;
    let bodies: Vec<Vec<u8>> = (0..6)
        .map(|_| serde_json::to_vec(&form()).unwrap())
        .collect();

    let results = futures_join_all(
        bodies
            .iter()
            .map(|b| app.post(ApiRequest::post_json("/v1/signups", b))),
    )
    .await;

    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|(status, body, _)| {
            assert_eq!(*status, 201, "{body}");
            serde_json::from_str::<Value>(body).unwrap()["lead_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "all answers name the same lead");
    assert_eq!(app.items_of_kind("lead").await.len(), 1);
    assert_eq!(app.items_of_kind("data_key").await.len(), 1);
}

#[tokio::test]
async fn after_retention_the_old_lead_is_not_read_and_a_new_signup_is_a_new_subject() {
    let app = TestApp::spawn().await;
    let (_, first) = app.sign_up(&form()).await;

    app.clock.set(t("2029-11-28T10:00:01Z"));

    assert!(
        app.service()
            .read(&lead_id(&first))
            .await
            .unwrap()
            .is_none(),
        "R3.3: past expiry is not read"
    );
    let (status, second) = app.sign_up(&form()).await;
    assert_eq!(status, 201);
    assert_ne!(second["lead_id"], first["lead_id"]);
}

#[tokio::test]
async fn each_bad_input_gets_a_problem_naming_the_field_without_the_value_and_stores_nothing() {
    let app = TestApp::spawn().await;
    for case in bad_cases() {
        let mut request = ApiRequest::post_json("/v1/signups", &case.body);
        request = match case.content_type {
            Some(ct) => request.header("content-type", ct),
            None => request.without_header("content-type"),
        };
        let (status, body, content_type) = app.post(request).await;

        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            case.name
        );
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], case.status, "{}", case.name);
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&case.field),
            "{}: fields {fields:?}",
            case.name
        );
        for value in case.submitted.iter().chain([&FIRST, &LAST, &EMAIL, &NOTES]) {
            assert!(
                !body.contains(value),
                "{}: the answer echoes a submitted value",
                case.name
            );
        }
    }
    assert!(app.scan().await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn all_field_errors_are_reported_at_once() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .sign_up(&json!({"first_name": "", "email": "x", "phone": "1", "consent": {"contact_by_phone": false}}))
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "first_name",
        "last_name",
        "email",
        "phone",
        "consent.contact_by_phone",
        "consent.privacy_policy_version",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_never_stored() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .sign_up(&{
            let mut v = form();
            v["favourite_cake"] = json!("Zwetschgendatschi-geheim");
            v
        })
        .await;
    assert_eq!(status, 201);
    for item in app.scan().await {
        let mut strings = Vec::new();
        item.values().for_each(|v| flatten(v, &mut strings));
        assert!(strings.iter().all(|s| !contains_ci(s, "Zwetschgendatschi")));
        assert!(!item.contains_key("favourite_cake"));
    }
}

#[tokio::test]
async fn cors_headers_only_for_configured_origins_and_other_methods_are_refused() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&form()).unwrap();
    let resp = signup::handle(
        &app.app,
        ApiRequest::post_json("/v1/signups", &body)
            .header("origin", "http://127.0.0.1:8080")
            .build(),
    )
    .await;
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://127.0.0.1:8080"
    );
    let resp = signup::handle(
        &app.app,
        ApiRequest::post_json("/v1/signups", &body)
            .header("origin", "https://evil.example")
            .build(),
    )
    .await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let mut get = ApiRequest::post_json("/v1/signups", b"");
    get.method = "GET";
    assert_eq!(signup::handle(&app.app, get.build()).await.status(), 405);
}
