//! The staff routes in their own function (R4.10, R4.11, R5.4): only principals in the
//! configured allow-list are admitted, a refusal is audited with the caller's principal,
//! every staff action is audited with the principal ARN, and the public function does not
//! serve the staff paths at all.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::dsar::*;
use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;
use serde_json::{json, Value};
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;

type Item = HashMap<String, AttributeValue>;

/// A session of a role that is not in the allow-list.
const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/polly-developer/eve";

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

async fn audit(d: &World) -> Vec<Item> {
    d.signup.items_of_kind("audit").await
}

/// The actions audited with `actor`.
async fn actions_of(d: &World, actor: &str) -> Vec<String> {
    audit(d)
        .await
        .iter()
        .filter(|a| s(a, "actor") == Some(actor))
        .filter_map(|a| s(a, "action").map(str::to_owned))
        .collect()
}

/// Every byte of every item, for "is this value stored anywhere".
async fn stored_bytes(d: &World) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for item in d.signup.scan().await {
        for (k, v) in item {
            out.push(k.into_bytes());
            flatten(&v, &mut out);
        }
    }
    out
}

/// A staff function admitting only `allowed`, on the same stack.
fn staff_admitting(d: &World, allowed: &[&str]) -> ::dsar::staff::StaffApp {
    let mut config = d.signup.stack.config_for("DsarStaffFunction").unwrap();
    config.staff_principal_arns = allowed.iter().map(|a| (*a).to_owned()).collect();
    ::dsar::staff::StaffApp::from_aws(
        config,
        &d.signup.stack.aws,
        Arc::new(d.signup.clock.clone()),
    )
    .unwrap()
}

/// R4.10, R4.11, R5.4: a caller outside the allow-list gets 403 problem+json, nothing
/// happens, and the refusal is audited with that caller's principal ARN and nothing of the
/// request's body.
#[tokio::test]
async fn a_principal_outside_the_allow_list_is_refused_and_the_refusal_audited() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator().await;
    let (id, token) = d.verified("erasure", &unique_email()).await;
    let marker = "Begruendung-Zwetschge-7731";
    let body = serde_json::to_vec(&json!({ "reasons": [marker] })).unwrap();
    let path = format!("/v1/admin/dsar/{id}/deny");

    let resp = ::dsar::staff::handle(
        &d.staff,
        ApiRequest::post_json(&path, &body)
            .as_staff(OUTSIDER)
            .build(),
    )
    .await;

    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["content-type"],
        shared::http::PROBLEM_JSON,
        "problem+json"
    );
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "in_progress", "the denial did not happen");
    assert_eq!(actions_of(&d, OUTSIDER).await, ["staff.refused"]);
    assert!(
        !stored_bytes(&d)
            .await
            .iter()
            .any(|b| contains_ci(b, marker)),
        "nothing of the refused request's body is stored"
    );
    // The same role name in another account, and a caller API Gateway named no one: also
    // refused, also audited.
    let foreign = "arn:aws:sts::210987654321:assumed-role/polly-staff/anna";
    assert_eq!(
        d.call(ApiRequest::get("/v1/admin/dsar").as_staff(foreign))
            .await
            .0,
        403
    );
    assert_eq!(d.call(ApiRequest::get("/v1/admin/dsar")).await.0, 403);
    assert_eq!(actions_of(&d, foreign).await, ["staff.refused"]);
    assert_eq!(
        actions_of(&d, ::dsar::staff::UNAUTHENTICATED).await,
        ["staff.refused"]
    );
    // The principal goes to the audit trail, not to the logs.
    logs.assert_free_of(&["polly-developer/eve", marker]);
}

/// R4.10, R5.4: an allow-listed role admits any session of it (API Gateway names the
/// caller `arn:aws:sts::<account>:assumed-role/<role>/<session>`, also for a role with a
/// path), and an allow-listed user exactly that user; the actions are audited with the
/// caller's ARN.
#[tokio::test]
async fn an_assumed_role_session_of_an_allowed_role_is_admitted() {
    let d = World::on_mail_emulator().await;
    let role_with_path = "arn:aws:iam::123456789012:role/privacy/polly-dpo";
    let user = "arn:aws:iam::123456789012:user/anna";
    let staff = staff_admitting(&d, &[role_with_path, user]);
    let session = "arn:aws:sts::123456789012:assumed-role/polly-dpo/anna.schmidt";

    let list = |caller: &'static str| {
        ::dsar::staff::handle(
            &staff,
            ApiRequest::get("/v1/admin/dsar").as_staff(caller).build(),
        )
    };
    assert_eq!(list(session).await.status(), 200);
    assert_eq!(list(user).await.status(), 200);
    // The tests' default staff role is not in this list.
    assert_eq!(list(STAFF).await.status(), 403);
    assert_eq!(
        list("arn:aws:iam::123456789012:role/privacy/polly-dpo")
            .await
            .status(),
        403,
        "API Gateway never names a role itself as the caller"
    );

    assert_eq!(actions_of(&d, session).await, ["dsar.listed"]);
    assert_eq!(actions_of(&d, user).await, ["dsar.listed"]);
    assert_eq!(actions_of(&d, STAFF).await, ["staff.refused"]);
}

/// R4.10, R5.4: the public function does not serve the staff paths: 404 for every one,
/// even with an IAM principal, and nothing happens.
#[tokio::test]
async fn the_public_function_answers_404_for_admin_paths() {
    let d = World::on_mail_emulator().await;
    let (id, token) = d.verified("access", &unique_email()).await;
    d.signup.sign_up(&form()).await;
    let lead = d.signup.lead_of(EMAIL).await.to_string();
    let deny = serde_json::to_vec(&json!({"reasons": ["x"]})).unwrap();
    let deny_path = format!("/v1/admin/dsar/{id}/deny");
    let subject_path = format!("/v1/admin/subjects/{lead}");
    let contracts_path = format!("/v1/admin/subjects/{lead}/contracts");
    let mut requests = vec![
        ApiRequest::get("/v1/admin/dsar").query("status=open"),
        ApiRequest::post_json(&deny_path, &deny),
        ApiRequest::get(&subject_path),
        ApiRequest::post_json(&contracts_path, b"{}"),
        ApiRequest::post_json("/v1/admin/analytics-exports", b"{}"),
    ];
    requests
        .iter_mut()
        .for_each(|r| r.iam_user_arn = Some(STAFF));

    for req in requests {
        let path = req.path;
        let (status, problem) = d.call_public(req).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }

    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "in_progress");
    assert!(
        actions_of(&d, STAFF).await.is_empty(),
        "no staff action happened"
    );
}

/// R4.11, R4.10: every staff action leaves an audit item whose actor is the caller's
/// principal ARN: listing, extending, verifying an identity, denying, viewing a subject,
/// recording and ending a contract, lifting a restriction, the analytics export.
#[tokio::test]
async fn every_staff_action_is_audited_with_the_principal_arn() {
    let d = World::on_mail_emulator().await;
    let (id, _) = d.verified("access", &unique_email()).await;
    let phone_only = d
        .submit(&json!({"type": "access", "phone": "0171 2345678"}))
        .await;
    let phone_id = phone_only.1["request_id"].as_str().unwrap().to_owned();
    d.signup.sign_up(&form()).await;
    let lead = d.signup.lead_of(EMAIL).await.to_string();
    let subject = format!("/v1/admin/subjects/{lead}");
    // The subject restricted processing (arranged directly; the request flow is tested in
    // dsar_rights.rs).
    aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .update_item()
        .table_name(&d.signup.stack.table)
        .key(
            "pk",
            AttributeValue::S(lead_pk(&LeadId::parse(&lead).unwrap())),
        )
        .key("sk", AttributeValue::S(LEAD_SK.into()))
        .update_expression("SET restricted = :t ADD version :one")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();

    let ok = |r: (u16, Value), what: &str| assert!(r.0 < 300, "{what}: {} {}", r.0, r.1);
    ok(
        d.call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
            .await,
        "list",
    );
    ok(
        d.staff_post(
            &format!("/v1/admin/dsar/{id}/extend"),
            &json!({"months": 1, "reason": "Umfang"}),
        )
        .await,
        "extend",
    );
    ok(
        d.staff_post(
            &format!("/v1/admin/dsar/{phone_id}/verify-identity"),
            &json!({}),
        )
        .await,
        "verify identity",
    );
    ok(
        d.staff_post(
            &format!("/v1/admin/dsar/{id}/deny"),
            &json!({"reasons": ["Offenkundig unbegründet"]}),
        )
        .await,
        "deny",
    );
    ok(
        d.call(ApiRequest::get(&subject).as_staff(STAFF)).await,
        "view",
    );
    let contract = d
        .staff_post(
            &format!("{subject}/contracts"),
            &json!({"start": "2026-12-01T00:00:00Z", "end": "2027-12-31T00:00:00Z", "records": "books"}),
        )
        .await;
    ok(contract.clone(), "record contract");
    let contract_id = contract.1["contract_id"].as_str().unwrap();
    ok(
        d.staff_post(
            &format!("{subject}/contracts/{contract_id}/end"),
            &json!({"end": "2027-03-15T00:00:00Z", "records": "books"}),
        )
        .await,
        "end contract",
    );
    ok(
        d.staff_post(&format!("{subject}/lift-restriction"), &json!({}))
            .await,
        "lift restriction",
    );
    ok(
        d.staff_post("/v1/admin/analytics-exports", &json!({}))
            .await,
        "analytics export",
    );

    let mut actions = actions_of(&d, STAFF).await;
    actions.sort();
    assert_eq!(
        actions,
        [
            "analytics.exported",
            "contract.ended",
            "contract.recorded",
            "dsar.denied",
            "dsar.extended",
            "dsar.identity_verified",
            "dsar.listed",
            "subject.restriction_lifted",
            "subject.viewed",
        ]
    );
    // No staff action is audited under a generic actor.
    let generic: Vec<String> = audit(&d)
        .await
        .iter()
        .filter_map(|a| s(a, "actor").map(str::to_owned))
        .filter(|actor| actor.starts_with("staff"))
        .collect();
    assert!(generic.is_empty(), "{generic:?}");
}
