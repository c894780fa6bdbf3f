//! From a verified `call_ended` / `call_analyzed` to the recording in the bucket (R2.7)
//! and the call deleted at the provider (R2.9), through the stream worker, against the
//! emulator and the provider simulator.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::simulator::recordings::{wav_tone, Fault};
use harness::simulator::scenario::Scenario;
use shared::adapters::calls::{call_pk, CALL_SK};

/// A world with a signed-up subject, its worker deleting calls at the provider or not.
async fn setup(delete_calls: bool) -> Subject {
    let mut world = World::start().await;
    world.worker = world.worker_with(|c| c.provider_delete_calls = delete_calls);
    Subject::of(world).await
}

fn state(item: &Item) -> String {
    item["recording_state"].as_s().unwrap().clone()
}

#[tokio::test]
async fn a_consented_recording_lands_encrypted_and_the_call_is_deleted_at_the_provider() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;

    assert_eq!(s.pump_call(&call_id, 1).await, 0);
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(state(&call), "stored");
    let key = call["recording_key"].as_s().unwrap().clone();
    assert!(
        key.starts_with("recordings/") && !key.contains("+49"),
        "opaque object key"
    );
    let head = s.signup.head("RecordingsBucket", &key).await;
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("aws:kms")
    );
    assert_eq!(
        head.ssekms_key_id(),
        Some(s.signup.stack.keys["DataKey"].1.as_str())
    );
    let bytes = s.signup.object("RecordingsBucket", &key).await;
    assert_eq!(bytes, wav_tone(1), "the very bytes the provider served");
    let recording = s.signup.item(call_pk(&call_id), "RECORDING").await.unwrap();
    assert!(recording["exp_bucket"]
        .as_s()
        .unwrap()
        .starts_with("recording#"));

    // Not deleted at the provider before the analysis arrived…
    assert_eq!(s.pump_call(&call_id, 2).await, 0);
    assert!(s.sim.deleted_calls().is_empty());
    // …but once it has.
    s.deliver(&script, "call_analyzed").await;
    assert_eq!(s.pump_call(&call_id, 3).await, 0);
    assert_eq!(s.sim.deleted_calls(), vec![call_id.clone()]);
    assert!(s
        .signup
        .item(call_pk(&call_id), CALL_SK)
        .await
        .unwrap()
        .contains_key("provider_deleted_at"));
    // Redelivery neither copies nor deletes again.
    s.pump_call(&call_id, 4).await;
    assert_eq!(s.sim.deleted_calls().len(), 1);
    let audits: Vec<String> = s.signup.audit_actions().await;
    for action in ["call.recording_stored", "call.deleted_at_provider"] {
        assert!(
            audits.iter().any(|a| a == action),
            "{action} audited: {audits:?}"
        );
    }
}

#[tokio::test]
async fn without_consent_nothing_is_copied_and_the_call_is_still_deleted_at_the_provider() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentNo);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    assert_eq!(s.pump_call(&call_id, 1).await, 0);
    assert_eq!(
        state(&s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap()),
        "not_kept"
    );
    assert!(s
        .signup
        .item(call_pk(&call_id), "RECORDING")
        .await
        .is_none());
    assert_eq!(
        s.sim.downloads(&script.recording_url().unwrap()),
        0,
        "not even downloaded"
    );
    assert_eq!(s.sim.deleted_calls(), vec![call_id]);
}

#[tokio::test]
async fn a_failing_recording_url_is_retried_then_recorded_as_failed() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.sim
        .set_fault(&script.recording_url().unwrap(), Fault::Status(503));
    s.deliver(&script, "call_ended").await;
    assert_eq!(
        s.pump_call(&call_id, 1).await,
        1,
        "retried through the stream"
    );
    assert_eq!(s.pump_call(&call_id, 2).await, 1);
    assert_eq!(
        state(&s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap()),
        "pending"
    );
    assert_eq!(
        s.pump_call(&call_id, 3).await,
        0,
        "the third failure settles it"
    );
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(state(&call), "failed");
    // The call record stays consistent: metadata, consent, transcript reference intact.
    assert_eq!(call["consent_granted"], AttributeValue::Bool(true));
    assert!(call.contains_key("transcript_key"));
    assert!(s
        .signup
        .item(call_pk(&call_id), "RECORDING")
        .await
        .is_none());

    // A 404 is not retried at all.
    let script = s.new_call(Scenario::ConsentYes);
    s.sim
        .set_fault(&script.recording_url().unwrap(), Fault::NotFound);
    s.deliver(&script, "call_ended").await;
    assert_eq!(s.pump_call(script.call_id(), 4).await, 0);
    assert_eq!(
        state(
            &s.signup
                .item(call_pk(script.call_id()), CALL_SK)
                .await
                .unwrap()
        ),
        "failed"
    );
}

#[tokio::test]
async fn provider_deletion_can_be_turned_off() {
    let s = setup(false).await;
    let script = s.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    s.pump_call(&call_id, 1).await;
    s.pump_call(&call_id, 2).await;
    assert_eq!(
        state(&s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap()),
        "stored"
    );
    assert!(s.sim.deleted_calls().is_empty());
}
