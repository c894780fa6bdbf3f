//! The stream worker places the outbound call for a requested lead (R1.5, R2.12) against
//! the emulator and the provider simulator: payload, idempotency under redelivery, the
//! per-number attempt limit (R1.6), provider outages (retried through the stream) and
//! refusals.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::events::stream_event;
use harness::simulator::Operation;
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;

/// Signs up `email` / `phone`, then hands the lead's INSERT record to the worker.
async fn sign_up_and_deliver(w: &World, email: &str, phone: &str) -> (LeadId, usize) {
    let mut f = form();
    f["email"] = serde_json::json!(email);
    f["phone"] = serde_json::json!(phone);
    let (status, _) = w.signup.sign_up(&f).await;
    assert_eq!(status, 201);
    let id = w.signup.lead_of(email).await;
    (id, w.pump_lead(&id, 1).await)
}

#[tokio::test]
async fn a_requested_lead_gets_one_call_with_the_documented_payload() {
    let s = World::start().await;
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 0);

    let created = s.sim.create_requests();
    assert_eq!(created.len(), 1);
    let body = &created[0].body;
    assert_eq!(body["to_number"], PHONE_E164);
    assert_eq!(body["from_number"], "+4930000000");
    assert_eq!(body["override_agent_id"], "agent-not-configured");
    assert_eq!(body["metadata"]["lead_id"], id.to_string());
    assert_eq!(body["retell_llm_dynamic_variables"]["first_name"], FIRST);
    assert_eq!(
        body["agent_override"]["data_storage_setting"],
        "basic_attributes_only"
    );
    let item = s.signup.lead_item(&id).await;
    assert_eq!(item["call_state"].as_s().unwrap(), "placed");
    assert!(item.contains_key("last_call_id"));

    // The stream redelivers the same record: no second call.
    let resp = telephony::worker::handle(
        &s.worker,
        stream_event("INSERT", item.clone(), Default::default(), 1),
    )
    .await;
    assert!(resp.batch_item_failures.is_empty());
    // A change that is not a new request (the worker's own update) places nothing.
    let mut older = item.clone();
    older.insert("call_state".into(), AttributeValue::S("requested".into()));
    telephony::worker::handle(&s.worker, stream_event("MODIFY", item, older, 2)).await;
    assert_eq!(s.sim.created_calls().len(), 1);
}

/// R3 (phone-consent proof), §7a UWG: the call placed joins the consent proof (its call
/// id) and the proof lives 5 years from that use, not from the grant (before the fix the
/// proof recorded no call and kept its sign-up date).
#[tokio::test]
async fn the_placed_call_joins_the_consent_proof_and_moves_its_date_to_five_years_after_it() {
    use shared::Clock;
    let s = World::start().await;
    let given = s.signup.clock.now();
    let mut f = form();
    f["email"] = serde_json::json!(EMAIL);
    f["phone"] = serde_json::json!(PHONE);
    assert_eq!(s.signup.sign_up(&f).await.0, 201);
    let id = s.signup.lead_of(EMAIL).await;
    let used = given + chrono::Duration::hours(5);
    s.signup.clock.set(used);
    assert_eq!(s.pump_lead(&id, 1).await, 0);

    let call_id = s.signup.lead_item(&id).await["last_call_id"]
        .as_s()
        .unwrap()
        .clone();
    let proofs = s.signup.items_of_kind("phone_consent").await;
    assert_eq!(proofs.len(), 1);
    let proof = &proofs[0];
    assert_eq!(proof["call_ids"], AttributeValue::Ss(vec![call_id]));
    let due = shared::domain::RetentionClass::PhoneConsentProof
        .due_at(used)
        .unwrap();
    assert_eq!(
        proof["exp_at"],
        AttributeValue::N(due.timestamp().to_string())
    );
    assert_eq!(
        proof["ttl"],
        AttributeValue::N(
            (due + shared::domain::retention::TTL_GRACE)
                .timestamp()
                .to_string()
        )
    );
    assert_eq!(
        proof["exp_bucket"].as_s().unwrap(),
        &shared::domain::retention::expiry_bucket(
            shared::domain::RetentionClass::PhoneConsentProof,
            due
        )
    );
}

#[tokio::test]
async fn a_provider_outage_is_retried_through_the_stream_and_nothing_is_lost() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 1, 503);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 1, "the record comes back for a retry");
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "requested"
    );

    // Lambda retries the record.
    assert_eq!(s.pump_lead(&id, 1).await, 0);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
    assert_eq!(s.sim.created_calls().len(), 1);
}

#[tokio::test]
async fn a_refusal_by_the_provider_marks_the_request_failed() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 1, 400);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 0, "a permanent refusal is not retried");
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "failed"
    );
}

#[tokio::test]
async fn at_most_three_attempts_per_number_in_24_hours() {
    let s = World::start().await;
    // One subject keeps its number; the cooldown lets a new request through every 25 h,
    // but outages make each request use several attempts.
    s.sim.fail_next(Operation::CreateCall, 2, 503);
    let (id, _) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    for seq in 2..4 {
        s.pump_lead(&id, seq).await;
    }
    assert_eq!(s.sim.create_requests().len(), 3);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );

    // A day later the person signs up again: a new call request.
    s.signup
        .clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::minutes(1));
    let mut attempts_anchor = form();
    attempts_anchor["email"] = serde_json::json!(EMAIL);
    s.signup.sign_up(&attempts_anchor).await;
    let item = s.signup.lead_item(&id).await;
    assert_eq!(item["call_request_count"].as_n().unwrap(), "2");
    // The earlier attempts are now older than 24 h, so the new request is placed.
    let mut before = item.clone();
    before.insert("call_request_count".into(), AttributeValue::N("1".into()));
    let resp = telephony::worker::handle(&s.worker, stream_event("MODIFY", item, before, 5)).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(s.sim.create_requests().len(), 4);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
}

#[tokio::test]
async fn a_fourth_attempt_within_24_hours_is_suppressed() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 3, 503);
    let (id, _) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    for seq in 2..4 {
        s.pump_lead(&id, seq).await;
    }
    assert_eq!(s.sim.create_requests().len(), 3, "three failed attempts");
    assert_eq!(s.pump_lead(&id, 4).await, 0);
    assert_eq!(s.sim.create_requests().len(), 3, "no fourth attempt");
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "suppressed"
    );
}

#[tokio::test]
async fn restricted_or_objecting_subjects_get_no_call() {
    for flag in ["restricted", "objected"] {
        let s = World::start().await;
        let mut f = form();
        f["email"] = serde_json::json!(EMAIL);
        s.signup.sign_up(&f).await;
        let id = s.signup.lead_of(EMAIL).await;
        // What the data-subject-rights functions write (R4.7, R4.8).
        aws_sdk_dynamodb::Client::new(&s.signup.stack.aws)
            .update_item()
            .table_name(&s.signup.stack.table)
            .key("pk", AttributeValue::S(lead_pk(&id)))
            .key("sk", AttributeValue::S(LEAD_SK.into()))
            .update_expression("SET #f = :t")
            .expression_attribute_names("#f", flag)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .unwrap();
        assert_eq!(s.pump_lead(&id, 1).await, 0);
        assert!(s.sim.create_requests().is_empty(), "{flag}: no call placed");
        assert_eq!(
            s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
            "suppressed",
            "{flag}"
        );
    }
}
