//! Carrying out data-subject requests (R4.5–R4.9) against the emulator and the provider
//! simulator: erasure (also under a contract's legal hold), restriction, objection,
//! consent withdrawal and rectification.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::dsar::*;
use common::*;
use harness::events::{stream_event, ApiRequest};
use harness::logs::LogCapture;
use harness::simulator::scenario::{CallScript, Scenario};
use secrecy::SecretString;
use serde_json::json;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::adapters::dynamo::{lead_pk, DynamoLeadStore, KEY_SK, LEAD_SK};
use shared::adapters::kms::KmsKeyService;
use shared::domain::retention::ContractRecords;
use shared::domain::{Email, LeadId};
use shared::ports::{IdentifierKind, KeyService};
use shared::retell::signature::sign;
use shared::Clock;

fn keys(d: &World) -> KmsKeyService {
    let c = d.signup.stack.signup_config().unwrap();
    KmsKeyService::new(
        aws_sdk_kms::Client::new(&d.signup.stack.aws),
        c.data_key_id,
        c.blind_index_key_id,
    )
}

/// Signs up another person than [`form`]'s (same name, its own email and number).
async fn another_subject(d: &World, email: &str, phone: &str) -> LeadId {
    let mut f = form();
    f["email"] = json!(email);
    f["phone"] = json!(phone);
    let (status, body) = d.signup.sign_up(&f).await;
    assert_eq!(status, 201, "{body}");
    d.signup.lead_of(email).await
}

/// Delivers `script`'s `call_ended`, then its `call_analyzed` with the provider's summary
/// replaced by `summary`, signed as the provider signs, through the real webhook handler.
async fn deliver_with_summary(d: &World, script: &CallScript, summary: &str) {
    d.deliver(script, "call_ended").await;
    let event = script.event("call_analyzed").unwrap().unwrap();
    let mut body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
    body["call"]["call_analysis"]["call_summary"] = json!(summary);
    let body = serde_json::to_vec(&body).unwrap();
    let sig = sign(&body, &SecretString::from(API_KEY.to_owned()), d.now_ms());
    let req =
        ApiRequest::post_json("/v1/telephony/retell", &body).header("x-retell-signature", &sig);
    assert_eq!(
        telephony::handle(&d.webhook, req.build()).await.status(),
        204
    );
}

/// Every object version and delete marker in every bucket of the stack, as
/// `<logical bucket>/<key>`.
async fn every_object_version(d: &World) -> Vec<String> {
    let s3 = harness::s3_client(&d.signup.stack.aws);
    let mut out = Vec::new();
    for (logical, bucket) in &d.signup.stack.buckets {
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = s3
                .list_object_versions()
                .bucket(bucket)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .unwrap();
            for v in page.versions() {
                out.push(format!("{logical}/{}", v.key().unwrap_or_default()));
            }
            for m in page.delete_markers() {
                out.push(format!(
                    "{logical}/{} (marker)",
                    m.key().unwrap_or_default()
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }
    out
}

/// Every string and binary of `item`, flattened ([`flatten`]).
fn values_of(item: &Item) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    for (name, v) in item {
        values.push(name.as_bytes().to_vec());
        flatten(v, &mut values);
    }
    values
}

/// Submits, verifies and carries out a request; returns the status view.
async fn carry_out(d: &World, kind: &str, seq: u64) -> (String, serde_json::Value) {
    carry_out_for(d, kind, EMAIL, seq).await
}

/// [`carry_out`] for the subject holding `email`.
async fn carry_out_for(
    d: &World,
    kind: &str,
    email: &str,
    seq: u64,
) -> (String, serde_json::Value) {
    let (id, token) = d.verified(kind, email).await;
    assert_eq!(d.pump(&id, seq).await, 0);
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "completed", "{view}");
    (id, view)
}

/// R4.5, R2.9, R5.3, R4.11: the erasure of a subject with two recorded calls (one already
/// deleted at the provider, one still held there), transcripts and an earlier export
/// leaves, by a raw scan of both tables, nothing of the subject but the proof of erasure
/// (no personal data, no lead id, no blind index), the §7a UWG consent proof and the
/// audit trail's opaque ids; no object version or delete marker of it in any bucket; the
/// call still at the provider deleted there; the data key nowhere, so a backup of the
/// profile no longer opens. The step is audited (`dsar.erased`); a rerun converges; no
/// personal value in the logs.
#[tokio::test]
async fn erasure_leaves_nothing_of_the_subject_but_the_proof_and_deletes_calls_at_the_provider() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();
    // The worker's next look at the settled call deletes it at the provider (R2.9).
    assert_eq!(d.pump_call(&call_id, 3).await, 0);
    // A second call, recorded but not yet analysed: the provider still holds it.
    let held = d.script(Scenario::ConsentYes, &lead);
    let held_id = held.call_id().to_owned();
    d.deliver(&held, "call_ended").await;
    assert_eq!(d.pump_call(&held_id, 2).await, 0);
    assert!(d.sim.deleted_calls().contains(&call_id));
    assert!(!d.sim.deleted_calls().contains(&held_id));
    let lead_text = lead.to_string();
    let objects = every_object_version(&d).await;
    for (prefix, at_least) in [("recordings", 2), ("transcripts", 1)] {
        let of_subject = format!("RecordingsBucket/{prefix}/{lead_text}/");
        assert!(
            objects
                .iter()
                .filter(|k| k.starts_with(&of_subject))
                .count()
                >= at_least,
            "{prefix}: {objects:?}"
        );
    }
    // An earlier access request left an export.
    let (access, _) = carry_out(&d, "access", 1).await;
    assert_eq!(
        d.signup
            .versions("ExportsBucket", &format!("exports/{access}"))
            .await,
        1
    );
    let raw_profile = d.signup.item(lead_pk(&lead), LEAD_SK).await.unwrap();
    let email_index = raw_profile["email_bidx"].as_s().unwrap().clone();
    let phone_index = raw_profile["phone_bidx"].as_s().unwrap().clone();
    let wrapped_key = d.signup.item(lead_pk(&lead), KEY_SK).await.unwrap()["wrapped_key"]
        .as_b()
        .unwrap()
        .as_ref()
        .to_vec();

    let (id, view) = carry_out(&d, "erasure", 2).await;
    assert_eq!(view["outcome"], "erased");
    assert!(view["erased_categories"].as_array().unwrap().len() >= 5);
    assert!(view.get("held_until").is_none());
    assert!(d
        .signup
        .audit_actions()
        .await
        .contains(&"dsar.erased".to_owned()));

    // Art. 19: the call the provider still held got its delete now.
    assert!(d.sim.deleted_calls().contains(&held_id));
    // A raw scan of both tables finds nothing of the subject but the proof of erasure
    // (and the audit trail, which names only opaque ids: the subject's and its calls').
    let scan = d.signup.scan().await;
    for it in &scan {
        let kind = it
            .get("kind")
            .and_then(|k| k.as_s().ok())
            .cloned()
            .unwrap_or_default();
        // The §7a UWG consent proof stays (Art. 17(3)(e), its own 5 years from the last
        // call, R3): the number's blind index, no plain personal data, no opaque id.
        let proof = kind == "phone_consent";
        // The consent ledger (R7.6) outlives erasure too, as the proof of who consented
        // to what: it names the subject by lead id, the number by blind index and the
        // calls by id (no plain personal data, checked above), like the audit trail.
        let ledger = kind == "ledger_entry";
        for v in &values_of(it) {
            for secret in PERSONAL.iter().copied().chain([email_index.as_str()]) {
                assert!(
                    !contains_ci(v, secret),
                    "{kind} item still holds a value of the subject"
                );
            }
            assert!(
                !v.windows(wrapped_key.len()).any(|w| w == wrapped_key),
                "{kind} item holds the subject's wrapped data key"
            );
            if !proof && !ledger && contains_ci(v, &phone_index) {
                panic!("{kind} item still holds the number's blind index");
            }
            if contains_ci(v, &lead_text) || contains_ci(v, &call_id) || contains_ci(v, &held_id) {
                // The tombstone names the lead id only (with when and its TTL), so later
                // events for the subject bring nothing back. The kept consent proof is
                // detached (item 8): neither id, so no kept record joins the audit trail.
                assert!(
                    kind == "audit"
                        || ledger
                        || (kind == "erasure_tombstone"
                            && !contains_ci(v, &call_id)
                            && !contains_ci(v, &held_id)),
                    "only audit items and the tombstone name the erased subject's opaque ids ({kind})"
                );
            }
        }
        if proof {
            assert_eq!(it["phone_bidx"].as_s().unwrap(), &phone_index);
            assert!(it["pk"].as_s().unwrap().starts_with("CONSENT#"), "{it:?}");
            assert_eq!(it["sk"].as_s().unwrap(), "PROOF");
            assert!(it.contains_key("uses") && it.contains_key("ttl"));
            assert!(
                it.contains_key("exp_bucket"),
                "the sweep still finds it when due"
            );
        }
    }
    let kinds: Vec<&str> = scan
        .iter()
        .filter_map(|i| i.get("kind").and_then(|k| k.as_s().ok()))
        .map(String::as_str)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "phone_consent").count(),
        1,
        "the consent proof is kept, as the sweep keeps it"
    );
    for gone in [
        "lead",
        "data_key",
        "claim",
        "call",
        "call_link",
        "recording",
        "call_attempt",
    ] {
        assert!(!kinds.contains(&gone), "a {gone} item is left: {kinds:?}");
    }
    // The proof of erasure: request id, dates, categories; whom it was about, nowhere.
    let proof = d.request_item(&id).await;
    assert_eq!(proof["outcome"].as_s().unwrap(), "erased");
    assert!(!proof.contains_key("lead_id"));
    assert!(proof["categories"].as_l().unwrap().len() >= 5);
    for v in &values_of(&proof) {
        for secret in PERSONAL.iter().copied().chain([
            email_index.as_str(),
            phone_index.as_str(),
            lead_text.as_str(),
            call_id.as_str(),
            held_id.as_str(),
        ]) {
            assert!(
                !contains_ci(v, secret),
                "the proof of erasure names the subject"
            );
        }
    }
    // No object of the subject in any bucket: no version, no delete marker.
    let objects = every_object_version(&d).await;
    for name in [&lead_text, &call_id, &held_id, &access] {
        assert!(
            objects.iter().all(|k| !k.contains(name.as_str())),
            "{objects:?}"
        );
    }
    // The key is gone (crypto-shredding): a backup of the profile, put back, no longer
    // opens, because no table holds the wrapped key any more.
    assert!(d.signup.item(lead_pk(&lead), KEY_SK).await.is_none());
    let ddb = aws_sdk_dynamodb::Client::new(&d.signup.stack.aws);
    ddb.put_item()
        .table_name(&d.signup.stack.table)
        .set_item(Some(raw_profile.clone()))
        .send()
        .await
        .unwrap();
    assert!(!matches!(d.exporter.leads.read(&lead).await, Ok(Some(_))));
    ddb.delete_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(lead_pk(&lead)))
        .key("sk", AttributeValue::S(LEAD_SK.into()))
        .send()
        .await
        .unwrap();

    // Re-running converges: nothing more to do, nothing fails.
    let mut reopened = d.request_item(&id).await;
    reopened.insert("status".into(), AttributeValue::S("in_progress".into()));
    let failures = ::dsar::worker::handle(
        &d.exporter,
        stream_event("MODIFY", reopened, Default::default(), 9),
    )
    .await
    .batch_item_failures
    .len();
    assert_eq!(failures, 0);
    d.shutdown().await.unwrap();
    logs.assert_free_of(&[FIRST, LAST, EMAIL, PHONE_E164, NOTES]);
}

/// R4.5, R3.4: an erasure under a live contract keeps the profile, its key and the
/// contract, restricted, and the answer names the hold until the end of 2033 in Berlin;
/// the calls, recordings and transcripts go, and the call the provider still held is
/// deleted there.
#[tokio::test]
async fn erasure_under_a_contract_keeps_the_contract_restricted_and_names_the_hold() {
    let d = World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();
    let held = d.script(Scenario::ConsentYes, &lead);
    d.deliver(&held, "call_ended").await;
    assert_eq!(d.pump_call(held.call_id(), 2).await, 0);
    assert!(!d.sim.deleted_calls().contains(&held.call_id().to_owned()));
    let ddb = aws_sdk_dynamodb::Client::new(&d.signup.stack.aws);
    shared::contracts::record_contract(
        &ddb,
        &d.signup.stack.table,
        &lead,
        shared::contracts::Contract {
            start: t("2026-11-01T00:00:00Z"),
            end: t("2027-03-15T00:00:00Z"),
            records: ContractRecords::BusinessLetters,
        },
        d.signup.clock.now(),
    )
    .await
    .unwrap();

    let (_, view) = carry_out(&d, "erasure", 1).await;
    assert_eq!(view["outcome"], "restricted_under_legal_hold");
    // The end of 2033 in Berlin (R3: the policy's calendar year).
    assert_eq!(view["held_until"], "2033-12-31T23:00:00Z");
    assert_eq!(
        view["held_categories"],
        serde_json::json!(["signup", "contract"])
    );
    // The contract and the data it needs stay, restricted; everything else is gone.
    let profile = d.signup.item(lead_pk(&lead), LEAD_SK).await.unwrap();
    assert_eq!(profile["restricted"], AttributeValue::Bool(true));
    assert!(d.signup.item(lead_pk(&lead), KEY_SK).await.is_some());
    let partition: Vec<String> = d
        .signup
        .scan()
        .await
        .iter()
        .filter(|i| i["pk"].as_s().unwrap() == &lead_pk(&lead))
        .map(|i| i["kind"].as_s().unwrap().clone())
        .collect();
    assert!(
        partition
            .iter()
            .all(|k| ["lead", "data_key", "contract", "phone_consent"].contains(&k.as_str())),
        "{partition:?}"
    );
    assert!(partition.contains(&"contract".to_owned()));
    // The §7a UWG consent proof stays, under a hold as without one (R3, Art. 17(3)(e)).
    assert!(partition.contains(&"phone_consent".to_owned()));
    assert!(d.signup.item(call_pk(&call_id), CALL_SK).await.is_none());
    assert!(d
        .signup
        .item(call_pk(held.call_id()), CALL_SK)
        .await
        .is_none());
    for prefix in ["recordings", "transcripts"] {
        assert_eq!(
            d.signup
                .versions("RecordingsBucket", &format!("{prefix}/{lead}/"))
                .await,
            0
        );
    }
    assert!(d.sim.deleted_calls().contains(&held.call_id().to_owned()));
    d.shutdown().await.unwrap();
}

/// R4.7, R4.8, R2.10, R6: a restricted and an objecting subject get no call (the worker
/// places none and audits the suppression, while it calls an unrestricted subject), and
/// their calls leave the analytics files: their rows go from a file written before (no
/// earlier version keeps them) and the next export leaves them out; the unrestricted
/// subject's call is in both files.
#[tokio::test]
async fn restricted_and_objecting_subjects_get_no_calls_and_no_analytics_rows() {
    let d = World::on_mail_emulator().await;
    let kept = d.signup.subject().await;
    let restricted_email = "ottilie.eingeschraenkt@example.org";
    let objecting_email = "kunigunde.widerspruch@example.org";
    let restricted = another_subject(&d, restricted_email, "0171 5550101").await;
    let objecting = another_subject(&d, objecting_email, "0172 5550102").await;
    for (lead, day) in [
        (kept, "Montag"),
        (restricted, "Mittwoch"),
        (objecting, "Freitag"),
    ] {
        let script = d.script(Scenario::ConsentYes, &lead);
        deliver_with_summary(&d, &script, &format!("Rückruf gewünscht am {day}.")).await;
    }
    let (first, text) = analytics_export(&d).await;
    assert_eq!(first["calls"], 3, "{first}");
    assert_eq!(
        summaries(&text),
        [
            "Rückruf gewünscht am Freitag.",
            "Rückruf gewünscht am Mittwoch.",
            "Rückruf gewünscht am Montag."
        ]
    );

    let (_, view) = carry_out_for(&d, "restriction", restricted_email, 1).await;
    assert_eq!(view["outcome"], "restricted");
    let (_, view) = carry_out_for(&d, "objection", objecting_email, 2).await;
    assert_eq!(view["outcome"], "objection_recorded");
    let read = |lead: LeadId| {
        let d = &d;
        async move { d.exporter.leads.read(&lead).await.unwrap().unwrap().stored }
    };
    assert!(read(restricted).await.restricted && !read(restricted).await.objected);
    assert!(read(objecting).await.objected && !read(objecting).await.restricted);
    let actions = d.signup.audit_actions().await;
    assert!(actions.contains(&"dsar.restricted".to_owned()));
    assert!(actions.contains(&"dsar.objection_recorded".to_owned()));

    // The file written before lost their rows, and no earlier version keeps them.
    let key = first["object_key"].as_str().unwrap();
    let text = String::from_utf8(d.signup.object("ExportsBucket", key).await).unwrap();
    assert_eq!(summaries(&text), ["Rückruf gewünscht am Montag."]);
    assert_eq!(d.signup.versions("ExportsBucket", key).await, 1);
    // The next export leaves them out.
    let (second, text) = analytics_export(&d).await;
    assert_eq!(
        (&second["calls"], &second["omitted"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(summaries(&text), ["Rückruf gewünscht am Montag."]);

    // No calls: the worker, handed each subject's call request, calls only the
    // unrestricted subject.
    for (seq, lead) in [kept, restricted, objecting].iter().enumerate() {
        assert_eq!(d.pump_lead(lead, 10 + seq as u64).await, 0);
    }
    let called: Vec<String> = d
        .sim
        .create_requests()
        .iter()
        .map(|r| {
            r.body["metadata"]["lead_id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(called, [kept.to_string()]);
    let actions = d.signup.audit_actions().await;
    let suppressed = |why: &str| actions.iter().filter(|a| *a == why).count();
    assert_eq!(suppressed("call.suppressed_restricted"), 1);
    // The objection listed the subject's number (R7.1): the list stops the call first.
    assert_eq!(suppressed("call.suppressed_do_not_call"), 1);
    d.shutdown().await.unwrap();
}

/// R4.9, R4.11: a consent withdrawal (audited) deletes every version of the subject's
/// recordings and transcripts at once (each object got a second version first) and marks
/// the call `withdrawn`; a later call where the person says "yes", delivered in full and
/// handed to the worker, stores no recording and no transcript.
#[tokio::test]
async fn withdrawal_deletes_recordings_at_once_and_later_calls_keep_none() {
    let d = World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();
    // Every object gets a second version (as a repeated copy would leave).
    let s3 = harness::s3_client(&d.signup.stack.aws);
    let bucket = d.signup.stack.bucket("RecordingsBucket");
    for prefix in ["recordings", "transcripts"] {
        let prefix = format!("{prefix}/{lead}/");
        let listed = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .send()
            .await
            .unwrap();
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        assert!(!keys.is_empty(), "{prefix}");
        let before = d.signup.versions("RecordingsBucket", &prefix).await;
        for key in &keys {
            let bytes = d.signup.object("RecordingsBucket", key).await;
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(bytes.into())
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .send()
                .await
                .unwrap();
        }
        assert_eq!(
            d.signup.versions("RecordingsBucket", &prefix).await,
            before + keys.len()
        );
    }
    let (_, view) = carry_out(&d, "withdraw_consent", 1).await;
    assert_eq!(view["outcome"], "recordings_deleted");
    assert!(d
        .signup
        .audit_actions()
        .await
        .contains(&"dsar.recordings_deleted".to_owned()));
    assert_eq!(
        d.signup
            .versions("RecordingsBucket", &format!("recordings/{lead}/"))
            .await,
        0
    );
    assert_eq!(
        d.signup
            .versions("RecordingsBucket", &format!("transcripts/{lead}/"))
            .await,
        0
    );
    assert!(d
        .signup
        .item(call_pk(&call_id), "RECORDING")
        .await
        .is_none());
    let call = d.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_eq!(call["recording_state"].as_s().unwrap(), "withdrawn");
    assert!(!call.contains_key("transcript_key"));

    // A later call where the person says "yes" keeps no recording and no transcript.
    let script = d.sim.script(
        Scenario::ConsentYes,
        d.sim.params(&lead.to_string(), d.sim.now_ms() - 60_000),
    );
    for event in ["call_ended", "call_analyzed"] {
        d.deliver(&script, event).await;
    }
    assert_eq!(d.pump_call(script.call_id(), 2).await, 0);
    let later = d
        .signup
        .item(call_pk(script.call_id()), CALL_SK)
        .await
        .unwrap();
    assert_eq!(later["recording_state"].as_s().unwrap(), "not_kept");
    assert!(!later.contains_key("transcript_key"));
    assert!(d
        .signup
        .item(call_pk(script.call_id()), "RECORDING")
        .await
        .is_none());
    for prefix in ["recordings", "transcripts"] {
        assert_eq!(
            d.signup
                .versions("RecordingsBucket", &format!("{prefix}/{lead}/"))
                .await,
            0
        );
    }
    d.shutdown().await.unwrap();
}

/// A rectification of the last name of [`EMAIL`]'s subject, carried out; its status view.
async fn rectify_last_name(d: &World, last_name: &str, seq: u64) -> serde_json::Value {
    let (status, b) = d
        .submit(&json!({
            "type": "rectification",
            "email": EMAIL,
            "corrections": {"last_name": last_name}
        }))
        .await;
    assert_eq!(status, 202, "{b}");
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(EMAIL, &id).await;
    let (_, v) = d.verify(&id, &code).await;
    assert_eq!(v["status"], "in_progress", "{v}");
    let token = v["request_token"].as_str().unwrap().to_owned();
    assert_eq!(d.pump(&id, seq).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "rectified", "{view}");
    view
}

/// R4.6, R4.11: a rectification (audited) informs the recipients that hold the data: of a
/// subject's two calls, the one the provider still holds is deleted there (the one
/// already deleted is not asked for again), the provider and its sub-processors are
/// recorded `not_holding` and AWS `updated`; when the provider's deletion fails they are
/// recorded `to_inform` and the call waits in the outbox. The corrected name is stored.
#[tokio::test]
async fn rectification_deletes_the_calls_the_provider_still_holds_and_records_each_recipient() {
    use harness::simulator::Operation;
    use shared::domain::registry::{AWS, ELEVENLABS, OPENAI, RETELL_AI};
    let d = World::on_mail_emulator().await;
    let (lead, done) = d.recorded_call().await;
    assert_eq!(d.pump_call(done.call_id(), 2).await, 0);
    let at_provider = d.script(Scenario::ConsentYes, &lead);
    d.deliver(&at_provider, "call_ended").await;
    let held_id = at_provider.call_id().to_owned();
    assert_eq!(d.sim.deleted_calls(), [done.call_id().to_owned()]);
    let deletes = d.sim.attempts(Operation::DeleteCall);
    let recipients = |view: &serde_json::Value| {
        let map = view["recipients"].as_object().unwrap().clone();
        assert_eq!(map.len(), 4, "{view}");
        let outcome = |name: &str| {
            let o = map[name].as_str().unwrap();
            o.split(' ').next().unwrap().to_owned()
        };
        assert_eq!(outcome(AWS.name), "updated");
        let third: Vec<String> = [RETELL_AI, OPENAI, ELEVENLABS]
            .iter()
            .map(|r| outcome(r.name))
            .collect();
        assert!(third.iter().all(|o| *o == third[0]), "{view}");
        third[0].clone()
    };

    let view = rectify_last_name(&d, "Pflaumenbaum", 1).await;
    assert_eq!(recipients(&view), "not_holding");
    assert!(d
        .signup
        .audit_actions()
        .await
        .contains(&"dsar.rectified".to_owned()));
    assert_eq!(
        d.sim.deleted_calls(),
        [done.call_id().to_owned(), held_id.clone()]
    );
    assert_eq!(d.sim.attempts(Operation::DeleteCall), deletes + 1);
    let read = d.exporter.leads.read(&lead).await.unwrap().unwrap();
    assert_eq!(read.profile.last_name.expose(), "Pflaumenbaum");

    // Another call still held there, and the provider failing: to be informed.
    let pending = d.script(Scenario::ConsentYes, &lead);
    d.deliver(&pending, "call_ended").await;
    // (The call deleted by the first rectification is asked for again: the outbox
    // does not mark the call item; the provider answers 404, which counts as deleted.
    // Both attempts fail here, whichever comes first.)
    d.sim.fail_next(Operation::DeleteCall, 2, 503);
    let view = rectify_last_name(&d, "Mirabellenbaum", 2).await;
    assert_eq!(recipients(&view), "to_inform");
    assert!(!d
        .sim
        .deleted_calls()
        .contains(&pending.call_id().to_owned()));
    let outbox = d.signup.items_of_kind("provider_deletion").await;
    assert!(
        outbox
            .iter()
            .any(|e| e["call_id"].as_s().unwrap() == pending.call_id()),
        "{outbox:?}"
    );
    let read = d.exporter.leads.read(&lead).await.unwrap().unwrap();
    assert_eq!(read.profile.last_name.expose(), "Mirabellenbaum");
    d.shutdown().await.unwrap();
}

/// R4.6, R4.1: a rectification that moves the email waits for the staff identity check
/// (the code went to the old address) and changes nothing until then; afterwards the
/// subject is found by the new email's blind index, not by the old one, and the stored
/// profile holds the new email and last name.
#[tokio::test]
async fn a_rectified_email_finds_the_subject_by_the_new_email_not_the_old_one() {
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let lead = d.signup.lead_of(EMAIL).await;
    let new_email = "wilhelmine.neu@example.org";
    let (status, b) = d
        .submit(&serde_json::json!({
            "type": "rectification",
            "email": EMAIL,
            "corrections": {"email": new_email, "last_name": "Pflaumenbaum"}
        }))
        .await;
    assert_eq!(status, 202, "{b}");
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(EMAIL, &id).await;
    let (_, v) = d.verify(&id, &code).await;
    let token = v["request_token"].as_str().unwrap().to_owned();
    // The new email is not proven by the code to the old one: staff check it first
    // (R4.1, R4.6), and until then nothing changes.
    assert_eq!(v["status"], "awaiting_identity_check", "{v}");
    assert_eq!(d.pump(&id, 1).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "awaiting_identity_check", "{view}");
    assert_eq!(d.signup.lead_of(EMAIL).await, lead);
    let (status, checked) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/verify-identity"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    assert!(
        checked["request_token"].is_null(),
        "the requester keeps their token"
    );
    assert_eq!(d.pump(&id, 2).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "rectified", "{view}");

    let keys = keys(&d);
    let store = DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&d.signup.stack.aws),
        d.signup.stack.table.clone(),
        d.signup.stack.key_table.clone(),
    );
    let index = |e: &str| {
        let e = Email::parse(e).unwrap().lookup_key();
        let keys = &keys;
        async move { keys.blind_index(IdentifierKind::Email, &e).await.unwrap() }
    };
    let now = d.signup.clock.now();
    let new_index = index(new_email).await;
    let old_index = index(EMAIL).await;
    assert_eq!(
        store
            .claim_holder(IdentifierKind::Email, &new_index, now)
            .await
            .unwrap(),
        Some(lead)
    );
    assert_eq!(
        store
            .claim_holder(IdentifierKind::Email, &old_index, now)
            .await
            .unwrap(),
        None
    );
    let read = d.exporter.leads.read(&lead).await.unwrap().unwrap();
    assert_eq!(read.profile.email.expose(), new_email);
    assert_eq!(read.profile.last_name.expose(), "Pflaumenbaum");
    assert_eq!(read.profile.first_name.expose(), FIRST);
}

async fn staff_call(
    d: &World,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut req = ApiRequest::post_json(path, &bytes).as_staff(STAFF);
    req.method = method;
    d.call(req).await
}

/// R4.10, R4.7, R4.11, R3: through the staff function (403 without IAM), staff view a
/// subject's record (audited `subject.viewed`), record a contract and end it, its hold
/// then running to the end of 2037 in Berlin (books: 10 years from the end of the year
/// it ended), and lift a restriction only after the subject was mailed (409 when there
/// is none); no personal value reaches the logs.
#[tokio::test]
async fn staff_view_a_subject_record_contracts_and_lift_a_restriction_after_telling_the_subject() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let lead = d.signup.lead_of(EMAIL).await.to_string();
    let path = format!("/v1/admin/subjects/{lead}");
    // Without IAM: forbidden; with: the record, and an audit item.
    assert_eq!(d.call(ApiRequest::get(&path)).await.0, 403);
    let (status, view) = d.call(ApiRequest::get(&path).as_staff(STAFF)).await;
    assert_eq!(status, 200);
    assert_eq!(view["email"], EMAIL);
    let actions: Vec<String> = d.signup.audit_actions().await;
    assert!(actions.contains(&"subject.viewed".to_owned()));

    // Contracts: recorded, then ended; the hold follows the end.
    let (status, c) = staff_call(
        &d,
        "POST",
        &format!("{path}/contracts"),
        &serde_json::json!({"start": "2026-12-01T00:00:00Z", "end": "2027-12-31T00:00:00Z", "records": "books"}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let contract = c["contract_id"].as_str().unwrap();
    let (status, _) = staff_call(
        &d,
        "POST",
        &format!("{path}/contracts/{contract}/end"),
        &serde_json::json!({"end": "2027-03-15T00:00:00Z", "records": "books"}),
    )
    .await;
    assert_eq!(status, 200);
    let lead_id = LeadId::parse(&lead).unwrap();
    let item = d
        .signup
        .item(lead_pk(&lead_id), &format!("CONTRACT#{contract}"))
        .await
        .unwrap();
    // The end of 2037 in Berlin (R3: the policy's calendar year).
    assert_eq!(
        item["expires_at"].as_s().unwrap(),
        "2037-12-31T23:00:00.000Z"
    );
    let bad = staff_call(
        &d,
        "POST",
        &format!("{path}/contracts"),
        &serde_json::json!({"start": "x", "end": "y", "records": "books"}),
    )
    .await;
    assert_eq!(bad.0, 422);

    // Lifting a restriction: refused when there is none; else mail first, then lifted.
    assert_eq!(
        staff_call(
            &d,
            "POST",
            &format!("{path}/lift-restriction"),
            &serde_json::json!({})
        )
        .await
        .0,
        409
    );
    carry_out(&d, "restriction", 1).await;
    let before = d.signup.stack.sent_mail(EMAIL).await.unwrap().len();
    let (status, body) = staff_call(
        &d,
        "POST",
        &format!("{path}/lift-restriction"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mails = d.signup.stack.sent_mail(EMAIL).await.unwrap();
    assert!(mails.len() > before);
    // Other tests of this binary mail the same address concurrently: look at every
    // mail sent since, not only the last one.
    assert!(mails[before..]
        .iter()
        .any(|m| m.subject.contains("aufgehoben")));
    assert!(d
        .exporter
        .leads
        .read(&lead_id)
        .await
        .unwrap()
        .unwrap()
        .stored
        .may_process());
    logs.assert_free_of(&[FIRST, LAST, EMAIL, PHONE_E164, NOTES]);
}

/// The analytics export through the staff routes (as staff, carried out by the analytics
/// worker), and the file it wrote.
async fn analytics_export(d: &World) -> (serde_json::Value, String) {
    let export = d.analytics_export_done().await;
    assert_eq!(export["status"], "done", "{export}");
    let key = export["object_key"].as_str().unwrap();
    let text = String::from_utf8(d.signup.object("ExportsBucket", key).await).unwrap();
    (export, text)
}

/// The summaries of an analytics file's rows, sorted.
fn summaries(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|row| row["summary"].as_str().unwrap_or("").to_owned())
        .collect();
    out.sort();
    out
}

/// R6: the analytics export is pseudonymised: a summary naming the subject (first and
/// last name, email, number in E.164 and in national writing) and another person's email
/// and number comes out with none of them and the rest of the text word for word; the
/// row names the subject and the call by keyed hashes only, never the lead id, call id
/// or number. Without IAM the route is refused.
#[tokio::test]
async fn the_analytics_export_redacts_the_subjects_name_number_and_email_from_summaries() {
    let d = World::on_mail_emulator().await;
    let lead = d.signup.subject().await;
    let script = d.script(Scenario::ConsentYes, &lead);
    let call_id = script.call_id().to_owned();
    let summary = format!(
        "{FIRST} {LAST} ({EMAIL}, Telefon {PHONE} bzw. {PHONE_E164}) wünscht einen \
         Beratungstermin am Dienstag nach 17 Uhr; Frau {LAST} ist auch unter \
         0171 5550123 oder ottokar.nachbar@example.net erreichbar."
    );
    deliver_with_summary(&d, &script, &summary).await;
    assert_eq!(
        d.call(ApiRequest::post_json("/v1/admin/analytics-exports", b"{}"))
            .await
            .0,
        403
    );

    let (export, text) = analytics_export(&d).await;
    assert_eq!(export["calls"], 1, "{export}");
    let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["summary"],
        "[NAME] [NAME] ([NAME], Telefon [NUMMER] bzw. [NAME]) wünscht einen Beratungstermin \
         am Dienstag nach 17 Uhr; Frau [NAME] ist auch unter [NUMMER] oder [E-MAIL] \
         erreichbar.",
        "{row}"
    );
    let phone_index = d.signup.lead_item(&lead).await["phone_bidx"]
        .as_s()
        .unwrap()
        .clone();
    let lead_text = lead.to_string();
    for secret in PERSONAL.iter().copied().chain([
        "9876543",
        "5550123",
        "example.net",
        "ottokar",
        lead_text.as_str(),
        call_id.as_str(),
        phone_index.as_str(),
    ]) {
        assert!(
            !contains_ci(text.as_bytes(), secret),
            "the analytics file holds an identifying value"
        );
    }
    for opaque in ["subject", "call"] {
        let id = row[opaque].as_str().unwrap();
        assert_eq!(id.len(), 32, "{row}");
    }
    assert!(row["duration_ms"].as_u64().unwrap() > 0);
    d.shutdown().await.unwrap();
}

/// Every item must carry its retention TTL (R3.3); the audit trail is the documented
/// exception (its retention is its own, issue 12 item 8), and so is the consent ledger
/// (R7.6: a TTL would cut entries out of the hash chain; README "Known limits").
async fn assert_every_item_has_a_ttl(d: &World) {
    for it in d.signup.scan().await {
        let kind = it
            .get("kind")
            .and_then(|k| k.as_s().ok())
            .cloned()
            .unwrap_or_default();
        if kind == "audit" || kind == "ledger_entry" || kind == "ledger_head" {
            continue;
        }
        assert!(
            it.contains_key("ttl"),
            "{kind} item {:?}/{:?} has no ttl",
            it.get("pk"),
            it.get("sk")
        );
    }
}

/// R4.5, R4.6, R3.3 (issue 12, items 1 and 2): calls belong to their subject, not to its
/// number today. After a phone rectification (waiting for the staff check of the new
/// number) the subject's earlier call is still its own and goes with its erasure; a late
/// webhook of that call afterwards brings nothing back; every item written on the way
/// carries a TTL.
#[tokio::test]
async fn after_a_phone_rectification_the_old_call_is_still_the_subjects_and_goes_with_its_erasure()
{
    let d = World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();
    let (status, b) = d
        .submit(&serde_json::json!({
            "type": "rectification",
            "email": EMAIL,
            "corrections": {"phone": "0171 5550123"}
        }))
        .await;
    assert_eq!(status, 202, "{b}");
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(EMAIL, &id).await;
    let (_, v) = d.verify(&id, &code).await;
    let token = v["request_token"].as_str().unwrap().to_owned();
    // The new number is not proven by the code: staff check it first.
    assert_eq!(v["status"], "awaiting_identity_check", "{v}");
    let (status, checked) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/verify-identity"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(d.pump(&id, 1).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "rectified", "{view}");
    let profile = d.signup.item(lead_pk(&lead), LEAD_SK).await.unwrap();
    let call = d.signup.item(call_pk(&call_id), CALL_SK).await.unwrap();
    assert_ne!(
        profile["phone_bidx"], call["phone_bidx"],
        "the subject's number changed since the call"
    );

    // Still the subject's call: access finds it.
    let held = d
        .exporter
        .exporter
        .subjects
        .subject(&lead)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.calls, vec![call_id.clone()]);
    assert_every_item_has_a_ttl(&d).await;

    let (_, view) = carry_out(&d, "erasure", 2).await;
    assert_eq!(view["outcome"], "erased");
    assert!(
        d.signup.item(call_pk(&call_id), CALL_SK).await.is_none(),
        "the call went with its subject"
    );
    assert!(d
        .signup
        .item(call_pk(&call_id), "RECORDING")
        .await
        .is_none());
    let tombstone = d.signup.item(lead_pk(&lead), "ERASED").await.unwrap();
    assert!(tombstone.contains_key("ttl"));

    // A late delivery of the erased subject's call stores nothing, not even unlinked.
    d.deliver(&script, "call_analyzed").await;
    assert!(d.signup.item(call_pk(&call_id), CALL_SK).await.is_none());
    assert_eq!(
        d.signup
            .versions("RecordingsBucket", &format!("transcripts/{lead}/"))
            .await,
        0
    );
    assert_every_item_has_a_ttl(&d).await;
    d.shutdown().await.unwrap();
}

/// R4.5, R2.9 (Art. 19): a provider outage does not block an erasure: the subject is
/// erased here (key first) and the request completes; the call waits in the outbox,
/// an item holding only the provider's call id, with its backoff and a TTL; the staff
/// list shows it; once due, the outbox drain deletes it at the provider and the entry
/// goes.
#[tokio::test]
async fn erasure_completes_while_the_provider_fails_and_the_outbox_deletes_the_call_later() {
    use harness::simulator::Operation;
    use std::sync::Arc;
    let d = World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();
    d.sim.fail_next(Operation::DeleteCall, 1, 503);
    let before = d.sim.attempts(Operation::DeleteCall);

    let (_, view) = carry_out(&d, "erasure", 1).await;

    assert_eq!(view["outcome"], "erased");
    assert_eq!(
        d.sim.attempts(Operation::DeleteCall),
        before + 1,
        "tried once"
    );
    assert!(
        d.signup.item(lead_pk(&lead), KEY_SK).await.is_none(),
        "key gone"
    );
    let outbox = d.signup.items_of_kind("provider_deletion").await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let entry = &outbox[0];
    assert_eq!(entry["pk"].as_s().unwrap(), "OUTBOX");
    assert_eq!(entry["call_id"].as_s().unwrap(), &call_id);
    assert_eq!(entry["attempts"].as_n().unwrap(), "1");
    assert!(entry.contains_key("ttl"));
    let lead_text = lead.to_string();
    assert!(
        entry
            .values()
            .all(|v| !format!("{v:?}").contains(&lead_text)),
        "no subject in the outbox"
    );
    let (status, list) = d
        .call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["provider_deletions"][0]["call_id"], call_id.as_str());
    assert_eq!(list["provider_deletions"][0]["incident"], false);

    // The sweep function's hourly drain (`{"outbox": true}`), at the erasure's time: not
    // due yet; two hours on, it deletes the call at the provider.
    let mut sweep_config = d.signup.stack.config_for("RetentionSweepFunction").unwrap();
    sweep_config.retell_api_base_url = d.sim.base_url().to_owned();
    let drain = |at: chrono::DateTime<chrono::Utc>| {
        let sweep = retention_sweep::App::from_aws_at(
            &sweep_config,
            &d.signup.stack.aws,
            Arc::new(shared::FixedClock::at(at)),
        )
        .unwrap();
        async move {
            sweep
                .handle_event(
                    &serde_json::json!({"outbox": true}),
                    &shared::FixedClock::at(at),
                    std::time::Duration::from_secs(60),
                )
                .await
                .unwrap()
        }
    };
    let now = d.signup.clock.now();
    let early = drain(now).await;
    assert_eq!(early["outbox"]["due"], 0, "{early}");
    assert_eq!(early["outbox"]["pending"], 1, "{early}");
    let later = drain(now + chrono::Duration::hours(2)).await;
    assert_eq!(later["outbox"]["deleted"], 1, "{later}");
    assert_eq!(later["outbox"]["pending"], 0, "{later}");
    assert_eq!(d.sim.attempts(Operation::DeleteCall), before + 2);
    assert!(d.sim.deleted_calls().contains(&call_id));
    assert!(d.signup.items_of_kind("provider_deletion").await.is_empty());
    d.shutdown().await.unwrap();
}

/// A phone-only request of `kind` for `phone`; its id.
async fn phone_only(d: &World, kind: &str, phone: &str) -> String {
    let (status, body) = d.submit(&json!({"type": kind, "phone": phone})).await;
    assert_eq!(status, 202, "{body}");
    body["request_id"].as_str().unwrap().to_owned()
}

/// The staff identity check of a request; the token staff hand over.
async fn check_identity(d: &World, id: &str) -> String {
    let (status, body) = d
        .staff_post(&format!("/v1/admin/dsar/{id}/verify-identity"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["request_token"].as_str().unwrap().to_owned()
}

/// R4.4, R4.5, R4.1, R2.4, R5.5 (issue 12, item 1): a person without a lead reaches the
/// calls stored without a lead with their number once staff proved it: the export holds
/// their metadata, the erasure deletes them at the provider and here. Until the staff
/// check nothing is done; a subject's call made to that number and calls with other
/// numbers are never reached this way; the logs hold neither number nor name.
#[tokio::test]
async fn a_proven_phone_without_a_subject_exports_and_erases_the_unlinked_calls_with_it() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator().await;
    let lead = d.signup.subject().await;
    let stranger = "+491735550199";
    // Calls the provider knows: one without a lead with the stranger's number, one
    // without a lead with another number, and one of the subject made to that number.
    let script = |lead_id: Option<&LeadId>, to: &str| {
        let mut params = d.sim.params(
            &lead_id.map(LeadId::to_string).unwrap_or_default(),
            d.sim.now_ms() - 120_000,
        );
        if lead_id.is_none() {
            params.metadata = serde_json::Value::Null;
        }
        params.to_number = to.to_owned();
        d.sim.script(Scenario::ConsentYes, params)
    };
    let unlinked = script(None, stranger);
    let elsewhere = script(None, "+491745550123");
    let subjects = script(Some(&lead), stranger);
    for call in [&unlinked, &elsewhere, &subjects] {
        d.deliver(call, "call_ended").await;
    }
    let (unlinked, elsewhere, subjects) = (
        unlinked.call_id().to_owned(),
        elsewhere.call_id().to_owned(),
        subjects.call_id().to_owned(),
    );
    let stored = |id: &str| {
        let d = &d;
        let id = id.to_owned();
        async move { d.signup.item(call_pk(&id), CALL_SK).await }
    };
    assert!(!stored(&unlinked).await.unwrap().contains_key("lead_id"));
    assert!(stored(&subjects).await.unwrap().contains_key("lead_id"));

    // Access: the unlinked call's metadata, nothing of the subject's.
    let id = phone_only(&d, "access", stranger).await;
    let token = check_identity(&d, &id).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["outcome"], "export_ready", "{view}");
    let zip = d.download(view["download_url"].as_str().unwrap()).await;
    let files = unzip(&zip);
    let data: serde_json::Value = serde_json::from_slice(&files["data.json"]).unwrap();
    assert_eq!(data["holds_data"], true);
    assert_eq!(data["subject"], serde_json::Value::Null);
    let calls = data["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["call_id"], unlinked.as_str());
    assert!(calls[0].get("phone_bidx").is_none());
    let all = String::from_utf8_lossy(&zip).into_owned();
    for other in [&subjects, &elsewhere, &lead.to_string()] {
        assert!(!all.contains(other), "{other} in the export");
    }
    let readme = String::from_utf8(files["LIESMICH.txt"].clone()).unwrap();
    assert!(readme
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .contains("Gespeichert sind 1 Telefonat(e) mit Ihrer Telefonnummer"));

    // Erasure: nothing until staff prove the number.
    let id = phone_only(&d, "erasure", stranger).await;
    assert_eq!(d.pump(&id, 2).await, 0);
    assert_eq!(
        d.request_item(&id).await["status"].as_s().unwrap(),
        "awaiting_identity_check"
    );
    assert!(stored(&unlinked).await.is_some());
    let token = check_identity(&d, &id).await;
    assert_eq!(d.pump(&id, 3).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "erased", "{view}");
    assert_eq!(view["erased_categories"], json!(["call_metadata"]));
    let deleted = d.sim.deleted_calls();
    assert_eq!(
        deleted,
        vec![unlinked.clone()],
        "only the unlinked call at the provider"
    );
    assert!(stored(&unlinked).await.is_none(), "erased here");
    assert!(stored(&subjects).await.is_some());
    assert!(stored(&elsewhere).await.is_some());
    assert!(d.signup.item(lead_pk(&lead), LEAD_SK).await.is_some());
    assert!(d
        .signup
        .item(lead_pk(&lead), &call_pk(&subjects))
        .await
        .is_some());
    d.shutdown().await.unwrap();
    logs.assert_free_of(&[stranger, FIRST, LAST, EMAIL, PHONE_E164]);
}
