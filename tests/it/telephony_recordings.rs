//! From a verified `call_ended` / `call_analyzed` to the recording in the bucket (R2.7),
//! the lead's last contact (R2.11) and the call deleted at the provider (R2.9; a failing
//! deletion through the outbox and the sweep function's drain), through the webhook and
//! the stream worker, against the emulator and the provider simulator.

use crate::common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use common::*;
use harness::simulator::recordings::{pattern_sample, Fault, PatternWav};
use harness::simulator::scenario::Scenario;
use harness::simulator::Operation;
use sha2::Digest;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::domain::retention::{stored_instant, Retention};
use shared::domain::RetentionClass;
use shared::Clock;

/// A world with a signed-up subject, its worker deleting calls at the provider or not.
async fn setup(delete_calls: bool) -> Subject {
    let mut world = World::start().await;
    world.worker = world.worker_with(|c| c.provider_delete_calls = delete_calls);
    Subject::of(world).await
}

fn state(item: &Item) -> String {
    item["recording_state"].as_s().unwrap().clone()
}

/// R2.5, R2.7, R2.9, R5.2, R5.3: the webhook stores the call without downloading; the
/// worker copies the consented recording (from the consent answer on) under an opaque key, SSE-KMS with
/// our customer key (HeadObject), its size recorded; no table item, object key or the
/// sealed transcript holds a transcript word or the subject's name, email or number in
/// clear; the call is deleted at the provider only once analysed, once, audited.
#[tokio::test]
async fn a_consented_recording_lands_encrypted_and_the_call_is_deleted_at_the_provider() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    // The webhook only stored: the recording waits for the worker.
    let url = script.recording_url().unwrap();
    assert_eq!(s.sim.downloads(&url), 0);
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(state(&call), "pending");

    assert_eq!(s.pump_call(&call_id, 1).await, 0);
    assert_eq!(s.sim.downloads(&url), 1);
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
    // R7.5: the provider's samples from the consent answer on, under a fresh header.
    let served = PatternWav::of_ms(1, script.duration_ms());
    let (want_sha, want_len) = served.trimmed_sha256(script.consent_cut_ms().unwrap());
    assert_eq!(bytes.len() as u64, want_len);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        want_sha,
        "the provider's samples from the cut on"
    );
    let recording = s.signup.item(call_pk(&call_id), "RECORDING").await.unwrap();
    assert!(recording["exp_bucket"]
        .as_s()
        .unwrap()
        .starts_with("recording#"));
    assert_eq!(
        recording["bytes"].as_n().unwrap(),
        &want_len.to_string(),
        "the size checked and recorded"
    );
    // The transcript: stored, under our key, sealed (no word of it readable).
    let transcript_key = call["transcript_key"].as_s().unwrap().clone();
    let head = s.signup.head("RecordingsBucket", &transcript_key).await;
    assert_eq!(
        head.ssekms_key_id(),
        Some(s.signup.stack.keys["DataKey"].1.as_str())
    );
    let sealed = s.signup.object("RecordingsBucket", &transcript_key).await;
    let words: Vec<String> = script
        .transcript()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 6)
        .map(str::to_owned)
        .collect();
    assert!(
        words.len() >= 5,
        "the script has words to look for: {words:?}"
    );
    // The simulated call carries the subject's own name and number (see `form`).
    let delivered = script.ended_call().to_string();
    for value in [FIRST, LAST, PHONE_E164] {
        assert!(delivered.contains(value), "the call carries {value:?}");
    }
    let mut stored = vec![sealed];
    for item in s.signup.scan().await {
        for value in item.values() {
            flatten(value, &mut stored);
        }
    }
    let listed = harness::s3_client(&s.signup.stack.aws)
        .list_object_versions()
        .bucket(s.signup.stack.bucket("RecordingsBucket"))
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .versions()
        .iter()
        .filter_map(|v| v.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 2, "recording and transcript: {keys:?}");
    stored.extend(keys.into_iter().map(String::into_bytes));
    for word in words.iter().map(String::as_str).chain(PERSONAL) {
        assert!(
            !stored.iter().any(|b| contains_ci(b, word)),
            "{word:?} stored in the clear"
        );
    }

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

/// R2.7, R2.9: without consent no recording is downloaded or stored (no recording item,
/// state `not_kept`), and the call is still deleted at the provider.
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
    let keys = s.signup.versions("RecordingsBucket", "").await;
    assert_eq!(keys, 0, "no object of the call in the recordings bucket");
}

/// R2.5, R2.7: a recording URL that fails (503) is retried through the stream, then
/// recorded as failed after the third attempt with the call's metadata and consent kept;
/// a 404 is recorded as failed at once.
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

/// R2.9: with the setting off, no delete reaches the provider, nothing is queued for the
/// outbox, and the sweep's outbox drain sends none either.
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
    assert!(s.signup.items_of_kind("provider_deletion").await.is_empty());
    let report = drain_outbox(&s, s.signup.clock.now() + Duration::hours(2)).await;
    assert_eq!(report["outbox"]["due"], 0, "{report}");
    assert_eq!(s.sim.attempts(Operation::DeleteCall), 0);
}

/// The sweep function's hourly provider-deletion drain (`{"outbox": true}`) at `at`, with
/// the simulator as the provider; its report.
async fn drain_outbox(s: &Subject, at: DateTime<Utc>) -> serde_json::Value {
    let stack = &s.signup.stack;
    let mut config = stack.config_for("RetentionSweepFunction").unwrap();
    config.retell_api_base_url = s.sim.base_url().to_owned();
    let clock = shared::FixedClock::at(at);
    retention_sweep::App::from_aws_at(&config, &stack.aws, Arc::new(clock.clone()))
        .unwrap()
        .handle_event(
            &serde_json::json!({"outbox": true}),
            &clock,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
}

/// R2.9: a provider deletion that fails (500) is retried by the stream, then handed to the
/// outbox (audited `call.provider_deletion_queued`, the call marked, no dead letter, later
/// deliveries leave it alone); the sweep function's outbox drain retries it, and once the
/// provider answers deletes the call, marks it and audits `call.deleted_at_provider`.
#[tokio::test]
async fn a_failing_provider_deletion_is_retried_through_the_outbox_until_the_call_is_deleted() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    s.sim.fail_next(Operation::DeleteCall, 1000, 500);
    // The first delivery copies the recording; its settlement is delivered next.
    assert_eq!(s.pump_call(&call_id, 1).await, 0);
    assert_eq!(s.sim.attempts(Operation::DeleteCall), 0);

    assert_eq!(s.pump_call(&call_id, 2).await, 1, "the stream retries it");
    assert_eq!(s.pump_call(&call_id, 3).await, 1);
    assert_eq!(
        s.pump_call(&call_id, 4).await,
        0,
        "the third failure hands it to the outbox, before the dead-letter queue"
    );
    assert_eq!(s.sim.attempts(Operation::DeleteCall), 3);
    assert!(s.sim.deleted_calls().is_empty());
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(state(&call), "stored");
    assert!(!call.contains_key("provider_deleted_at"));
    assert!(call.contains_key("provider_deletion_queued_at"));
    // A later delivery leaves it to the outbox: no fourth attempt from the stream.
    assert_eq!(s.pump_call(&call_id, 5).await, 0);
    assert_eq!(s.sim.attempts(Operation::DeleteCall), 3);
    let queued = s.signup.items_of_kind("provider_deletion").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["call_id"].as_s().unwrap(), &call_id);
    assert_eq!(queued[0]["attempts"].as_n().unwrap(), "3");
    let audits = s.signup.audit_actions().await;
    assert_eq!(
        audits
            .iter()
            .filter(|a| *a == "call.provider_deletion_queued")
            .count(),
        1,
        "{audits:?}"
    );
    assert!(!audits.iter().any(|a| a == "call.deleted_at_provider"));

    // The provider is still down at the first drain: the entry stays, one more attempt.
    let now = s.signup.clock.now();
    let report = drain_outbox(&s, now + Duration::hours(5)).await;
    assert_eq!(
        (
            report["outbox"]["failed"].as_u64(),
            report["outbox"]["pending"].as_u64()
        ),
        (Some(1), Some(1)),
        "{report}"
    );
    assert!(s.sim.deleted_calls().is_empty());

    // The provider answers again: the next drain deletes the call.
    s.sim.fail_next(Operation::DeleteCall, 0, 500);
    let report = drain_outbox(&s, now + Duration::hours(24)).await;
    assert_eq!(report["outbox"]["deleted"], 1, "{report}");
    assert_eq!(s.sim.deleted_calls(), vec![call_id.clone()]);
    assert!(s.signup.items_of_kind("provider_deletion").await.is_empty());
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert!(call.contains_key("provider_deleted_at"));
    let audits = s.signup.audit_actions().await;
    assert!(
        audits.iter().any(|a| a == "call.deleted_at_provider"),
        "{audits:?}"
    );
    // A later delivery of the call deletes nothing again.
    assert_eq!(s.pump_call(&call_id, 6).await, 0);
    assert_eq!(s.sim.deleted_calls().len(), 1);
    assert_eq!(s.sim.attempts(Operation::DeleteCall), 5);
}

/// R2.9: one failed deletion that the stream's retry then completes leaves no outbox
/// entry and no `queued` audit: the call is deleted once and marked.
#[tokio::test]
async fn a_provider_deletion_failing_once_is_completed_by_the_streams_retry() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentNo);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    s.sim.fail_next(Operation::DeleteCall, 1, 503);
    assert_eq!(s.pump_call(&call_id, 1).await, 1);
    assert_eq!(s.signup.items_of_kind("provider_deletion").await.len(), 1);
    assert_eq!(s.pump_call(&call_id, 2).await, 0);
    assert_eq!(s.sim.deleted_calls(), vec![call_id.clone()]);
    assert!(s.signup.items_of_kind("provider_deletion").await.is_empty());
    let audits = s.signup.audit_actions().await;
    assert!(!audits.iter().any(|a| a == "call.provider_deletion_queued"));
    assert_eq!(
        audits
            .iter()
            .filter(|a| *a == "call.deleted_at_provider")
            .count(),
        1,
        "{audits:?}"
    );
}

/// The lead's last contact and lead-class retention dates, read from the raw lead item.
async fn contact_of(s: &Subject) -> (DateTime<Utc>, Item) {
    let item = s.signup.lead_item(&s.lead).await;
    let at = DateTime::parse_from_rfc3339(item["last_contact_at"].as_s().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    (at, item)
}

/// A linked call of the subject that started at `start` (its end: `start` + duration).
fn call_at(s: &Subject, start: DateTime<Utc>) -> harness::simulator::scenario::CallScript {
    s.sim.script(
        Scenario::ConsentNo,
        s.sim
            .params(&s.lead.to_string(), start.timestamp_millis() as u64),
    )
}

/// R2.11, R3 (lead class): a call's end becomes the lead's `last_contact_at` in the raw
/// lead item, and its expiry date, expiry index and TTL become 3 years from that end; a
/// call that ended before the current last contact does not move it back.
#[tokio::test]
async fn the_end_of_a_call_becomes_the_leads_last_contact_and_moves_its_retention() {
    let s = setup(false).await;
    let (signed_up, _) = contact_of(&s).await;
    s.signup.clock.advance(Duration::hours(3));
    let script = call_at(&s, signed_up + Duration::hours(2));
    let end = DateTime::from_timestamp_millis(script.end_ms() as i64).unwrap();
    assert!(end > signed_up + Duration::hours(2));
    s.deliver(&script, "call_ended").await;
    assert_eq!(s.pump_call(script.call_id(), 1).await, 0);

    let (contact, lead) = contact_of(&s).await;
    assert_eq!(
        contact, end,
        "the call's end, not the time it was processed"
    );
    let due = Retention::of(RetentionClass::Lead, end);
    assert_eq!(
        lead["expires_at"].as_s().unwrap(),
        &stored_instant(due.expires_at)
    );
    assert_eq!(
        lead["exp_at"],
        AttributeValue::N(due.expires_at.timestamp().to_string())
    );
    assert_eq!(lead["exp_bucket"].as_s().unwrap(), &due.bucket);
    assert_eq!(lead["ttl"], AttributeValue::N(due.ttl.to_string()));
    assert!(s
        .signup
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "lead.contacted"));

    // An earlier call, reported late, does not move the contact back.
    let earlier = call_at(&s, signed_up + Duration::minutes(30));
    assert!(earlier.end_ms() < script.end_ms());
    s.deliver(&earlier, "call_ended").await;
    assert_eq!(s.pump_call(earlier.call_id(), 2).await, 0);
    let (after, lead_after) = contact_of(&s).await;
    assert_eq!(after, end);
    assert_eq!(lead_after["exp_at"], lead["exp_at"]);
}

/// R2.10, R4.7, R4.8, R4.9: a consented, disclosed call of a restricted or objecting
/// subject stores call metadata only (no sealed attribute); one of a subject who withdrew
/// the recording consent keeps its call content but no recording URL and no transcript.
/// In all three nothing is downloaded, the recordings bucket stays empty, and the call is
/// still deleted at the provider.
#[tokio::test]
async fn calls_of_restricted_objecting_or_withdrawn_subjects_keep_no_recording() {
    for (flag, metadata_only) in [
        ("restricted", true),
        ("objected", true),
        ("consent_withdrawn", false),
    ] {
        let s = setup(true).await;
        // What the data-subject-rights functions write (R4.7, R4.8, R4.9).
        aws_sdk_dynamodb::Client::new(&s.signup.stack.aws)
            .update_item()
            .table_name(&s.signup.stack.table)
            .key(
                "pk",
                AttributeValue::S(shared::adapters::dynamo::lead_pk(&s.lead)),
            )
            .key(
                "sk",
                AttributeValue::S(shared::adapters::dynamo::LEAD_SK.into()),
            )
            .update_expression("SET #f = :t")
            .expression_attribute_names("#f", flag)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .unwrap();
        let script = s.new_call(Scenario::ConsentYes);
        let call_id = script.call_id().to_owned();
        s.deliver(&script, "call_ended").await;
        s.deliver(&script, "call_analyzed").await;
        assert_eq!(s.pump_call(&call_id, 1).await, 0, "{flag}");

        let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
        assert_eq!(state(&call), "not_kept", "{flag}");
        assert!(call.contains_key("end_at"), "{flag}: metadata kept");
        assert!(!call.contains_key("sealed_recording_url"), "{flag}");
        assert!(
            call.get("transcript_key").is_none_or(|v| v.is_null()),
            "{flag}: {:?}",
            call.get("transcript_key")
        );
        let sealed: Vec<&String> = call
            .iter()
            .filter(|(_, v)| v.is_b())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            sealed.is_empty(),
            metadata_only,
            "{flag}: sealed {sealed:?}"
        );
        assert_eq!(s.sim.downloads(&script.recording_url().unwrap()), 0);
        assert_eq!(s.signup.versions("RecordingsBucket", "").await, 0, "{flag}");
        assert!(s
            .signup
            .item(call_pk(&call_id), "RECORDING")
            .await
            .is_none());
        assert_eq!(s.sim.deleted_calls(), vec![call_id], "{flag}");
    }
}

// ---------------------------------------------------------------- no audio before consent

/// The call's sealed transcript, opened with the subject's data key (KMS) as the worker
/// and the exports open it.
async fn opened_transcript(s: &Subject, call_id: &str, object: &str) -> serde_json::Value {
    use shared::ports::{KeyService, LeadStore};
    let config = s
        .signup
        .stack
        .config_for("TelephonyWebhookFunction")
        .unwrap();
    let keys = shared::adapters::kms::KmsKeyService::new(
        aws_sdk_kms::Client::new(&s.signup.stack.aws),
        config.data_key_id,
        config.blind_index_key_id,
    );
    let store = shared::adapters::dynamo::DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&s.signup.stack.aws),
        config.table_name,
        config.key_table_name,
    );
    let lead = store
        .get_lead(&s.lead, s.signup.clock.now())
        .await
        .unwrap()
        .unwrap();
    let key = keys
        .unwrap_data_key(&s.lead, &lead.wrapped_key)
        .await
        .unwrap();
    let sealed = s.signup.object("RecordingsBucket", object).await;
    let plain = shared::calls::CallService::open(&key, call_id, "transcript", &sealed).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// R7.5, R2.7: through the webhook and the worker, a consented call's stored recording
/// begins at the person's "Ja": the call item holds the cut point (the start of the
/// answer's first word, from the provider's word timings), and the WAV downloaded from
/// the bucket, parsed by hand, is 8 kHz mono 16-bit holding exactly the provider's frames
/// from that instant on (every sample compared; the frame before the cut is not the
/// first); its size is recorded. The sealed transcript begins at the same answer: no word
/// of the agent's opening in any field, the `transcript` text rebuilt from the kept turns.
#[tokio::test]
async fn a_consented_calls_recording_and_transcript_begin_at_the_consent_answer() {
    let s = setup(false).await;
    let script = s.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    let cut_ms = script
        .consent_cut_ms()
        .expect("the script has a consent answer");
    assert!(cut_ms > 5_000, "the opening takes seconds: {cut_ms}");
    s.deliver(&script, "call_ended").await;
    assert_eq!(s.pump_call(&call_id, 1).await, 0);
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(state(&call), "stored");
    assert_eq!(call["consent_cut_ms"].as_n().unwrap(), &cut_ms.to_string());

    let key = call["recording_key"].as_s().unwrap().clone();
    let wav = s.signup.object("RecordingsBucket", &key).await;
    let source = PatternWav::of_ms(1, script.duration_ms());
    let cut_frames = cut_ms * 8; // 8 kHz
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(
        u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize,
        wav.len() - 8
    );
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1, "mono");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8_000);
    assert_eq!(u16::from_le_bytes([wav[34], wav[35]]), 16);
    assert_eq!(&wav[36..40], b"data");
    let data = &wav[44..];
    assert_eq!(
        u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize,
        data.len()
    );
    assert_eq!(data.len() as u64, (source.frames - cut_frames) * 2);
    for (k, sample) in data.chunks(2).enumerate() {
        assert_eq!(
            i16::from_le_bytes([sample[0], sample[1]]),
            pattern_sample(cut_frames + k as u64, 0),
            "frame {}",
            cut_frames + k as u64
        );
    }
    assert_ne!(
        &data[..2],
        &pattern_sample(cut_frames - 1, 0).to_le_bytes()[..],
        "nothing from before the cut"
    );
    let record = s.signup.item(call_pk(&call_id), "RECORDING").await.unwrap();
    assert_eq!(record["bytes"].as_n().unwrap(), &wav.len().to_string());

    let transcript_key = call["transcript_key"].as_s().unwrap().clone();
    let t = opened_transcript(&s, &call_id, &transcript_key).await;
    let text = t["transcript"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "User: {}\n",
            harness::simulator::scenario::USER_YES
        )),
        "{text}"
    );
    let all = t.to_string();
    for opening_word in ["Polly", "Intelligenz", "aufgezeichnet"] {
        assert!(!all.contains(opening_word), "{opening_word} kept");
    }
    assert_eq!(
        t["transcript_with_tool_calls"][0]["content"],
        serde_json::json!(harness::simulator::scenario::USER_YES)
    );
    assert_eq!(
        t["transcript_with_tool_calls"][1]["name"],
        serde_json::json!("record_consent")
    );
    for turn in t["transcript_object"].as_array().unwrap() {
        for word in turn["words"].as_array().unwrap() {
            assert!(word["start"].as_f64().unwrap() * 1000.0 >= cut_ms as f64);
        }
    }
}

/// R7.5, R2.6: a yes found only in the call analysis has no consent answer to cut at: the
/// call keeps no transcript and no recording (nothing downloaded, no object, no recording
/// item), it is audited `call.recording_no_cut_point`, and the call is still deleted at
/// the provider.
#[tokio::test]
async fn a_consent_only_in_the_analysis_keeps_no_audio_and_no_transcript() {
    let s = setup(true).await;
    let script = s.new_call(Scenario::ConsentOnlyInAnalysis);
    let call_id = script.call_id().to_owned();
    s.deliver(&script, "call_ended").await;
    s.deliver(&script, "call_analyzed").await;
    assert_eq!(s.pump_call(&call_id, 1).await, 0);
    let call = s.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(state(&call), "not_kept");
    assert_eq!(call["consent_granted"], AttributeValue::Bool(true));
    assert!(!call.contains_key("consent_cut_ms"));
    assert!(!call.contains_key("transcript_key"));
    assert!(!call.contains_key("sealed_recording_url"));
    assert_eq!(s.sim.downloads(&script.recording_url().unwrap()), 0);
    assert_eq!(s.signup.versions("RecordingsBucket", "").await, 0);
    assert!(s
        .signup
        .item(call_pk(&call_id), "RECORDING")
        .await
        .is_none());
    assert!(s
        .signup
        .audit_actions()
        .await
        .contains(&"call.recording_no_cut_point".to_owned()));
    assert_eq!(s.sim.deleted_calls(), vec![call_id]);
}
