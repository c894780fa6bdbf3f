//! From a verified `call_ended` / `call_analyzed` to the recording in the bucket (R2.7)
//! and the call deleted at the provider (R2.9), through the stream worker, against the
//! emulator and the provider simulator.

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::events::{stream_event, ApiRequest};
use harness::simulator::recordings::{wav_tone, Fault};
use harness::simulator::scenario::{CallScript, Scenario};
use harness::simulator::{SimConfig, Simulator};
use secrecy::SecretString;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::domain::LeadId;
use shared::retell::signature::sign;
use shared::Clock;

struct Setup {
    signup: TestApp,
    sim: Simulator,
    webhook: telephony::App,
    worker: telephony::worker::Worker,
    lead: LeadId,
}

impl Setup {
    async fn spawn(delete_calls: bool) -> Self {
        let signup = TestApp::spawn().await;
        signup.sign_up(&form()).await;
        let lead = signup.lead_of(EMAIL).await;
        let sim = Simulator::start(SimConfig::new("local-test-key"))
            .await
            .unwrap();
        let hook_config = signup.stack.config_for("TelephonyWebhookFunction").unwrap();
        let webhook = telephony::App::from_aws(
            &hook_config,
            &signup.stack.aws,
            Arc::new(signup.clock.clone()),
        )
        .unwrap();
        let mut config = signup.stack.config_for("TelephonyWorkerFunction").unwrap();
        config.retell_api_base_url = sim.base_url().to_owned();
        config.recordings_allow_loopback = true;
        config.provider_delete_calls = delete_calls;
        let worker =
            telephony::worker_from_aws(&config, &signup.stack.aws, Arc::new(signup.clock.clone()))
                .unwrap();
        Self {
            signup,
            sim,
            webhook,
            worker,
            lead,
        }
    }

    fn script(&self, scenario: Scenario) -> CallScript {
        let start = self.sim.now_ms() - 120_000;
        self.sim
            .script(scenario, self.sim.params(&self.lead.to_string(), start))
    }

    async fn deliver(&self, script: &CallScript, event: &str) {
        let body = script.event(event).unwrap().unwrap().body;
        let sig = sign(
            &body,
            &SecretString::from("local-test-key".to_owned()),
            self.signup.clock.now().timestamp_millis() as u64,
        );
        let req =
            ApiRequest::post_json("/v1/telephony/retell", &body).header("x-retell-signature", &sig);
        assert_eq!(
            telephony::handle(&self.webhook, req.build()).await.status(),
            204
        );
    }

    async fn item(
        &self,
        pk: String,
        sk: &str,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.signup.stack.aws)
            .get_item()
            .table_name(&self.signup.stack.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// Hands the call item's current state to the worker as a stream record.
    async fn pump(&self, call_id: &str, seq: u64) -> usize {
        let item = self.item(call_pk(call_id), CALL_SK).await.unwrap();
        telephony::worker::handle(
            &self.worker,
            stream_event("MODIFY", item, Default::default(), seq),
        )
        .await
        .batch_item_failures
        .len()
    }

    fn state(item: &std::collections::HashMap<String, AttributeValue>) -> String {
        item["recording_state"].as_s().unwrap().clone()
    }
}

#[tokio::test]
async fn a_consented_recording_lands_encrypted_and_the_call_is_deleted_at_the_provider() {
    let s = Setup::spawn(true).await;
    let script = s.script(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;

    assert_eq!(s.pump(&call_id, 1).await, 0);
    let call = s.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(Setup::state(&call), "stored");
    let key = call["recording_key"].as_s().unwrap().clone();
    assert!(
        key.starts_with("recordings/") && !key.contains("+49"),
        "opaque object key"
    );
    let s3 = harness::s3_client(&s.signup.stack.aws);
    let bucket = s.signup.stack.bucket("RecordingsBucket").to_owned();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("aws:kms")
    );
    assert_eq!(
        head.ssekms_key_id(),
        Some(s.signup.stack.keys["DataKey"].1.as_str())
    );
    let bytes = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(
        bytes.as_ref(),
        wav_tone(1).as_slice(),
        "the very bytes the provider served"
    );
    let recording = s.item(call_pk(&call_id), "RECORDING").await.unwrap();
    assert!(recording["exp_bucket"]
        .as_s()
        .unwrap()
        .starts_with("recording#"));

    // Not deleted at the provider before the analysis arrived…
    assert_eq!(s.pump(&call_id, 2).await, 0);
    assert!(s.sim.deleted_calls().is_empty());
    // …but once it has.
    s.deliver(&script, "call_analyzed").await;
    assert_eq!(s.pump(&call_id, 3).await, 0);
    assert_eq!(s.sim.deleted_calls(), vec![call_id.clone()]);
    assert!(s
        .item(call_pk(&call_id), CALL_SK)
        .await
        .unwrap()
        .contains_key("provider_deleted_at"));
    // Redelivery neither copies nor deletes again.
    s.pump(&call_id, 4).await;
    assert_eq!(s.sim.deleted_calls().len(), 1);
    let audits: Vec<String> = s
        .signup
        .items_of_kind("audit")
        .await
        .iter()
        .map(|a| a["action"].as_s().unwrap().clone())
        .collect();
    for action in ["call.recording_stored", "call.deleted_at_provider"] {
        assert!(
            audits.iter().any(|a| a == action),
            "{action} audited: {audits:?}"
        );
    }
}

#[tokio::test]
async fn without_consent_nothing_is_copied_and_the_call_is_still_deleted_at_the_provider() {
    let s = Setup::spawn(true).await;
    let script = s.script(Scenario::ConsentNo);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    assert_eq!(s.pump(&call_id, 1).await, 0);
    assert_eq!(
        Setup::state(&s.item(call_pk(&call_id), CALL_SK).await.unwrap()),
        "not_kept"
    );
    assert!(s.item(call_pk(&call_id), "RECORDING").await.is_none());
    assert_eq!(
        s.sim.downloads(&script.recording_url().unwrap()),
        0,
        "not even downloaded"
    );
    assert_eq!(s.sim.deleted_calls(), vec![call_id]);
}

#[tokio::test]
async fn a_failing_recording_url_is_retried_then_recorded_as_failed() {
    let s = Setup::spawn(true).await;
    let script = s.script(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.sim
        .set_fault(&script.recording_url().unwrap(), Fault::Status(503));
    s.deliver(&script, "call_ended").await;
    assert_eq!(s.pump(&call_id, 1).await, 1, "retried through the stream");
    assert_eq!(s.pump(&call_id, 2).await, 1);
    assert_eq!(
        Setup::state(&s.item(call_pk(&call_id), CALL_SK).await.unwrap()),
        "pending"
    );
    assert_eq!(s.pump(&call_id, 3).await, 0, "the third failure settles it");
    let call = s.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(Setup::state(&call), "failed");
    // The call record stays consistent: metadata, consent, transcript reference intact.
    assert_eq!(call["consent_granted"], AttributeValue::Bool(true));
    assert!(call.contains_key("transcript_key"));
    assert!(s.item(call_pk(&call_id), "RECORDING").await.is_none());

    // A 404 is not retried at all.
    let script = s.script(Scenario::ConsentYes);
    s.sim
        .set_fault(&script.recording_url().unwrap(), Fault::NotFound);
    s.deliver(&script, "call_ended").await;
    assert_eq!(s.pump(script.call_id(), 4).await, 0);
    assert_eq!(
        Setup::state(&s.item(call_pk(script.call_id()), CALL_SK).await.unwrap()),
        "failed"
    );
}

#[tokio::test]
async fn provider_deletion_can_be_turned_off() {
    let s = Setup::spawn(false).await;
    let script = s.script(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    s.pump(&call_id, 1).await;
    s.pump(&call_id, 2).await;
    assert_eq!(
        Setup::state(&s.item(call_pk(&call_id), CALL_SK).await.unwrap()),
        "stored"
    );
    assert!(s.sim.deleted_calls().is_empty());
}
