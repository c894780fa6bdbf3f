//! `POST /v1/telephony/retell` against the emulator: signatures (our vector, the official
//! Python SDK as an independent signer), convergence of re-ordered, duplicated and
//! concurrent deliveries, the consent and disclosure decisions, hostile input.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::events::ApiRequest;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::calls::CallService;
use shared::domain::LeadId;
use shared::ports::{KeyService, LeadStore};
use shared::retell::signature::sign;
use std::collections::BTreeMap;
use testkit::retell::{call_object, delivery_orders, event, Consent, USER_SECRET};

/// A world with a signed-up subject whose calls arrive.
type Telephony = Subject;

impl Telephony {
    async fn deliver_signed(&self, body: &[u8], signature: Option<&str>) -> (u16, String) {
        let mut req =
            ApiRequest::post_json("/v1/telephony/retell", body).without_header("user-agent");
        if let Some(sig) = signature {
            req = req.header("x-retell-signature", sig);
        }
        let resp = telephony::handle(&self.webhook, req.build()).await;
        let text = match resp.body() {
            lambda_http::Body::Text(t) => t.clone(),
            lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        (resp.status().as_u16(), text)
    }

    async fn deliver(&self, body: &[u8]) -> u16 {
        let sig = sign(body, &SecretString::from(API_KEY.to_owned()), self.now_ms());
        self.deliver_signed(body, Some(&sig)).await.0
    }

    async fn call_item(&self, call_id: &str) -> Option<Item> {
        self.signup.item(call_pk(call_id), CALL_SK).await
    }

    /// The call item with sealed attributes decrypted and volatile ones dropped.
    async fn normalised(&self, call_id: &str) -> BTreeMap<String, Value> {
        let item = self.call_item(call_id).await.expect("call stored");
        let config = self
            .signup
            .stack
            .config_for("TelephonyWebhookFunction")
            .unwrap();
        let keys = KmsKeyService::new(
            aws_sdk_kms::Client::new(&self.signup.stack.aws),
            config.data_key_id,
            config.blind_index_key_id,
        );
        let store = DynamoLeadStore::new(
            aws_sdk_dynamodb::Client::new(&self.signup.stack.aws),
            config.table_name,
            config.key_table_name,
        );
        use shared::Clock;
        let lead = store
            .get_lead(&self.lead, self.signup.clock.now())
            .await
            .unwrap()
            .unwrap();
        let key = keys
            .unwrap_data_key(&self.lead, &lead.wrapped_key)
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for (name, value) in item {
            if matches!(name.as_str(), "updated_at" | "version") {
                continue;
            }
            if name == "transcript_key" {
                let object = value.as_s().unwrap().clone();
                let bucket = self.signup.stack.bucket("RecordingsBucket").to_owned();
                let s3 = harness::s3_client(&self.signup.stack.aws);
                let head = s3
                    .head_object()
                    .bucket(&bucket)
                    .key(&object)
                    .send()
                    .await
                    .expect("transcript object");
                assert_eq!(
                    head.server_side_encryption().map(|e| e.as_str()),
                    Some("aws:kms")
                );
                let got = s3
                    .get_object()
                    .bucket(&bucket)
                    .key(&object)
                    .send()
                    .await
                    .unwrap();
                let sealed = got.body.collect().await.unwrap().into_bytes();
                let plain =
                    CallService::open(&key, call_id, "transcript", &sealed).expect("decrypts");
                out.insert("transcript".into(), serde_json::from_slice(&plain).unwrap());
                continue;
            }
            let v = match value {
                AttributeValue::B(b) => {
                    let plain =
                        CallService::open(&key, call_id, &name, b.as_ref()).expect("decrypts");
                    serde_json::from_slice(&plain).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&plain).into_owned())
                    })
                }
                AttributeValue::S(s) => Value::String(s),
                AttributeValue::N(n) => Value::String(n),
                AttributeValue::Bool(b) => Value::Bool(b),
                AttributeValue::Ss(mut v) => {
                    v.sort();
                    json!(v)
                }
                AttributeValue::M(m) => json!(m.keys().collect::<Vec<_>>()),
                other => Value::String(format!("{other:?}")),
            };
            out.insert(name, v);
        }
        out
    }
}

/// R2.3: a consented call's three events in all six orders, with duplicates and with
/// `call_started` missing, leave the same stored call (every attribute, sealed ones
/// decrypted, the transcript object opened): all three events seen, ended, recording pending.
#[tokio::test]
async fn all_orders_with_duplicates_and_gaps_converge_to_the_same_call() {
    let t = Telephony::start().await;
    let orders = delivery_orders();
    let mut reference: Option<BTreeMap<String, Value>> = None;
    for (i, order) in orders.iter().enumerate() {
        let call_id = format!("call_order_{i}");
        let call = call_object(&call_id, &t.lead, Consent::ToolYes, true);
        for kind in order {
            assert_eq!(t.deliver(&event(kind, &call)).await, 204, "{order:?}");
        }
        let mut state = t.normalised(&call_id).await;
        state.remove("pk");
        state.remove("call_id");
        match &reference {
            None => reference = Some(state),
            Some(r) => assert_eq!(&state, r, "order {order:?} converges"),
        }
    }
    let r = reference.unwrap();
    assert_eq!(
        r["events"],
        json!(["call_analyzed", "call_ended", "call_started"])
    );
    assert_eq!(r["completeness"], json!("3"));
    assert_eq!(r["call_status"], json!("ended"));
    assert_eq!(r["recording_state"], json!("pending"));
    assert!(r.contains_key("transcript"));
}

/// R2.3, R2.6: for every consent path (tool call yes/no, analysis only yes/no, none) and
/// every delivery order (all six, duplicates, a missing `call_started`), the stored call
/// ends the same as the in-order delivery, with the consent answer and source of that
/// path, and the recordings bucket holds the transcript exactly when the call references
/// it. Before the fix, `call_ended` after an analysis-only yes deleted the transcript the
/// stored call still referenced.
#[tokio::test]
async fn every_consent_path_converges_in_every_delivery_order() {
    let t = Telephony::start().await;
    let bucket = t.signup.stack.bucket("RecordingsBucket").to_owned();
    let s3 = harness::s3_client(&t.signup.stack.aws);
    for (p, (consent, kept)) in Consent::ALL.into_iter().enumerate() {
        let mut reference: Option<BTreeMap<String, Value>> = None;
        for (i, order) in delivery_orders().iter().enumerate() {
            let call_id = format!("call_path_{p}_order_{i}");
            let call = call_object(&call_id, &t.lead, consent, true);
            for kind in order {
                assert_eq!(t.deliver(&event(kind, &call)).await, 204, "{order:?}");
            }
            let versions = s3
                .list_object_versions()
                .bucket(&bucket)
                .prefix(shared::calls::transcript_key(&t.lead, &call_id))
                .send()
                .await
                .unwrap();
            assert_eq!(
                !versions.versions().is_empty(),
                kept,
                "{consent:?} {order:?}: transcript object"
            );
            // `normalised` opens the referenced transcript: a dangling reference fails.
            let mut state = t.normalised(&call_id).await;
            state.remove("pk");
            state.remove("call_id");
            assert_eq!(
                state["recording_state"],
                json!(if kept { "pending" } else { "not_kept" }),
                "{consent:?} {order:?}"
            );
            // The end state is the right one, not only the same in every order.
            let source = match consent {
                Consent::ToolYes | Consent::ToolNo => "tool_call",
                Consent::AnalysisYes | Consent::AnalysisNo => "call_analysis",
                Consent::Never => "none",
            };
            assert_eq!(
                state["consent_source"],
                json!(source),
                "{consent:?} {order:?}"
            );
            assert_eq!(
                state["consent_granted"],
                json!(matches!(consent, Consent::ToolYes | Consent::AnalysisYes)),
                "{consent:?} {order:?}"
            );
            assert_eq!(state["completeness"], json!("3"), "{consent:?} {order:?}");
            assert_eq!(state["agent_version"], json!("7"), "{consent:?} {order:?}");
            match &reference {
                None => reference = Some(state),
                Some(r) => assert_eq!(&state, r, "{consent:?}: order {order:?} converges"),
            }
        }
    }
}

/// R2.3: a call whose `call_started` never arrives ends stored like the same call delivered
/// with it (but for the events seen).
#[tokio::test]
async fn a_call_without_call_started_converges_too() {
    let t = Telephony::start().await;
    let a = call_object("call_gap_a", &t.lead, Consent::ToolYes, true);
    let b = call_object("call_gap_b", &t.lead, Consent::ToolYes, true);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        assert_eq!(t.deliver(&event(kind, &a)).await, 204);
    }
    for kind in ["call_analyzed", "call_ended"] {
        assert_eq!(t.deliver(&event(kind, &b)).await, 204);
    }
    let (mut sa, mut sb) = (
        t.normalised("call_gap_a").await,
        t.normalised("call_gap_b").await,
    );
    for s in [&mut sa, &mut sb] {
        for k in ["pk", "call_id", "events"] {
            s.remove(k);
        }
    }
    assert_eq!(sa, sb);
}

/// R2.3: each event delivered twice, stale ones after newer ones, leaves the complete call
/// (all three events, completeness 3, the transcript).
///
/// Concurrency itself is shown on the in-memory store
/// (`crates/usecases/tests/on_fakes/telephony.rs`): moto runs requests on threads without
/// making a conditional update atomic, so concurrent deliveries here would test moto.
#[tokio::test]
async fn redelivered_and_reordered_events_lose_no_update() {
    let t = Telephony::start().await;
    let call = call_object("call_concurrent", &t.lead, Consent::ToolYes, true);
    for kind in [
        "call_started",
        "call_ended",
        "call_analyzed",
        "call_ended",
        "call_analyzed",
        "call_started",
    ] {
        assert_eq!(t.deliver(&event(kind, &call)).await, 204, "{kind}");
    }
    let state = t.normalised("call_concurrent").await;
    assert_eq!(
        state["events"],
        json!(["call_analyzed", "call_ended", "call_started"])
    );
    assert_eq!(state["completeness"], json!("3"));
    assert!(state.contains_key("transcript"));
}

/// R2.6, R2.7, R2.8, R7.5: with the disclosure, a tool-call yes keeps the sealed transcript
/// (from the consent answer on) and recording URL; an analysis-only yes (no answer to cut
/// at), a no, no answer at all, or a yes without the disclosure keeps neither, only
/// metadata and call content; the missing disclosure is audited as
/// `call.disclosure_missing`.
#[tokio::test]
async fn consent_and_disclosure_decide_what_is_kept() {
    let t = Telephony::start().await;
    let cases = [
        ("call_yes", Consent::ToolYes, true, true),
        ("call_analysis_yes", Consent::AnalysisYes, true, false),
        ("call_no", Consent::ToolNo, true, false),
        ("call_never", Consent::Never, true, false),
        ("call_no_disclosure", Consent::ToolYes, false, false),
    ];
    for (call_id, consent, disclosure, kept) in cases {
        let call = call_object(call_id, &t.lead, consent, disclosure);
        for kind in ["call_ended", "call_analyzed"] {
            assert_eq!(t.deliver(&event(kind, &call)).await, 204);
        }
        let state = t.normalised(call_id).await;
        assert_eq!(
            state.contains_key("transcript"),
            kept,
            "{call_id}: transcript"
        );
        assert_eq!(
            state.contains_key("sealed_recording_url"),
            kept,
            "{call_id}: recording url"
        );
        assert_eq!(
            state["recording_state"],
            json!(if kept { "pending" } else { "not_kept" }),
            "{call_id}"
        );
        assert_eq!(state["disclosure_ok"], json!(disclosure), "{call_id}");
        // Metadata and call content are kept either way.
        assert_eq!(state["duration_ms"], json!("300000"));
        assert_eq!(
            state["sealed_call"]["call_analysis"]["call_summary"],
            json!("Interessent möchte ein Angebot.")
        );
        if kept {
            assert_eq!(
                state["transcript"]["transcript_object"][1]["content"],
                json!(USER_SECRET)
            );
        }
    }
    // Without disclosure the incident is audited.
    let audits = t.signup.items_of_kind("audit").await;
    assert!(audits
        .iter()
        .any(|a| a["action"].as_s().unwrap() == "call.disclosure_missing"
            && a["call_id"].as_s().unwrap() == "call_no_disclosure"));
}

/// R2.3, R2.6, R7.5: `call_ended` without consent decides `not_kept`; the later
/// `call_analyzed` with the analysis' yes keeps it so (no consent answer to cut at): no
/// transcript, no recording.
#[tokio::test]
async fn a_later_analysis_with_consent_after_an_ended_without_it_keeps_nothing() {
    let t = Telephony::start().await;
    let call = call_object("call_late_consent", &t.lead, Consent::AnalysisYes, true);
    t.deliver(&event("call_ended", &call)).await;
    assert_eq!(
        t.normalised("call_late_consent").await["recording_state"],
        json!("not_kept")
    );
    t.deliver(&event("call_analyzed", &call)).await;
    let state = t.normalised("call_late_consent").await;
    assert_eq!(state["recording_state"], json!("not_kept"));
    assert_eq!(state["consent_granted"], json!(true));
    assert!(!state.contains_key("transcript"));
    assert!(!state.contains_key("sealed_recording_url"));
}

/// R2.1: a signature made by the provider's official Python SDK (`retell-sdk`) over the raw
/// body is accepted and the event stored.
#[tokio::test]
async fn the_official_python_sdk_signature_is_accepted() {
    let t = Telephony::start().await;
    let body = event(
        "call_started",
        &call_object("call_sdk", &t.lead, Consent::Never, true),
    );
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys; from retell.lib.webhook_auth import symmetric; print(symmetric['sign'](sys.stdin.read(), sys.argv[1], int(sys.argv[2])))",
            API_KEY,
            &t.now_ms().to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&body)?;
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("run {} (make setup installs retell-sdk): {e}", python.display()));
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let signature = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(t.deliver_signed(&body, Some(&signature)).await.0, 204);
    assert!(t.call_item("call_sdk").await.is_some());
}

/// R2.1: a tampered body, another key, a signature 5 minutes and 1 ms too old or in the
/// future, a malformed or upper-cased signature and none at all each get 401, with no body
/// value in the answer, and no call is stored.
#[tokio::test]
async fn bad_signatures_get_401_and_store_nothing() {
    let t = Telephony::start().await;
    let body = event(
        "call_ended",
        &call_object("call_bad_sig", &t.lead, Consent::ToolYes, true),
    );
    let key = SecretString::from(API_KEY.to_owned());
    let now = t.now_ms();
    let good = sign(&body, &key, now);
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'7').unwrap();
    tampered[pos] = b'8';
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("tampered body", tampered, Some(good.clone())),
        (
            "wrong key",
            body.clone(),
            Some(sign(
                &body,
                &SecretString::from("other-key".to_owned()),
                now,
            )),
        ),
        (
            "too old",
            body.clone(),
            Some(sign(&body, &key, now - 300_001)),
        ),
        (
            "from the future",
            body.clone(),
            Some(sign(&body, &key, now + 300_001)),
        ),
        ("malformed", body.clone(), Some(good.replace(",d=", ";d="))),
        (
            "upper-case digest",
            body.clone(),
            Some(
                good.to_uppercase()
                    .replace("V=", "v=")
                    .replace(",D=", ",d="),
            ),
        ),
        ("missing", body.clone(), None),
    ];
    for (name, b, sig) in cases {
        let (status, text) = t.deliver_signed(&b, sig.as_deref()).await;
        assert_eq!(status, 401, "{name}");
        assert!(!text.contains("Zwetschge"), "{name}");
    }
    assert!(
        t.call_item("call_bad_sig").await.is_none(),
        "nothing stored"
    );
}

/// R2.2: other event types are acknowledged (204) and store nothing; a call with nothing but
/// its id (consent source `none`), and one with unknown fields (a field from the future) and
/// a 1 MB transcript, are processed; non-JSON, a missing or key-unsafe call id get 400, a
/// body over the limit 413.
#[tokio::test]
async fn hostile_and_odd_payloads_get_clear_answers() {
    let t = Telephony::start().await;
    // Unknown event types are acknowledged and ignored.
    assert_eq!(
        t.deliver(br#"{"event":"transcript_updated","call":{"call_id":"call_x"}}"#)
            .await,
        204
    );
    assert_eq!(
        t.deliver(br#"{"event":"chat_ended","chat":{"chat_id":"c"}}"#)
            .await,
        204
    );
    assert!(t.call_item("call_x").await.is_none());
    // A call that carries nothing but its id: every optional field missing is tolerated.
    assert_eq!(
        t.deliver(br#"{"event":"call_ended","call":{"call_id":"call_minimal"}}"#)
            .await,
        204
    );
    let minimal = t.call_item("call_minimal").await.expect("stored");
    assert_eq!(minimal["linked"], AttributeValue::Bool(false));
    assert_eq!(minimal["consent_source"].as_s().unwrap(), "none");
    // Not JSON, no call id, a call id that is not key-safe.
    for body in [
        &b"not json"[..],
        br#"{"event":"call_ended"}"#,
        br#"{"event":"call_ended","call":{"call_id":"a#b"}}"#,
    ] {
        assert_eq!(t.deliver(body).await, 400);
    }
    // Over the size limit (checked before the signature).
    let huge = vec![b' '; telephony::MAX_BODY_BYTES + 1];
    assert_eq!(t.deliver_signed(&huge, None).await.0, 413);
    // A 1 MB transcript is fine.
    let mut call = call_object("call_big", &t.lead, Consent::ToolYes, true);
    call["transcript"] = json!("Wort ".repeat(210_000));
    assert_eq!(t.deliver(&event("call_ended", &call)).await, 204);
    // A call whose lead we do not know is kept unlinked, metadata only, findable by phone.
    let stranger = LeadId::new();
    t.deliver(&event(
        "call_analyzed",
        &call_object("call_unlinked", &stranger, Consent::ToolYes, true),
    ))
    .await;
    let item = t.call_item("call_unlinked").await.unwrap();
    assert_eq!(item["linked"], AttributeValue::Bool(false));
    assert!(item.contains_key("phone_bidx"));
    assert!(!item.keys().any(|k| k.starts_with("sealed_")));
}

/// R2.6: the agent's `record_consent` tool call is answered 200 and its answer stored on the
/// call; the lifecycle events that follow keep it; unknown tools and non-boolean answers get
/// 400.
#[tokio::test]
async fn the_consent_tool_call_is_answered_and_recorded() {
    let t = Telephony::start().await;
    let body = serde_json::to_vec(&json!({
        "name": "record_consent",
        "call": {"call_id": "call_live", "metadata": {"lead_id": t.lead.to_string()}},
        "args": {"granted": true}
    }))
    .unwrap();
    let sig = sign(&body, &SecretString::from(API_KEY.to_owned()), t.now_ms());
    let (status, text) = t.deliver_signed(&body, Some(&sig)).await;
    assert_eq!(status, 200, "{text}");
    let item = t.call_item("call_live").await.unwrap();
    let live = item["live_consent"].as_m().unwrap();
    assert_eq!(live["granted"], AttributeValue::Bool(true));
    // The lifecycle events that follow leave the live answer in place.
    t.deliver(&event(
        "call_ended",
        &call_object("call_live", &t.lead, Consent::ToolYes, true),
    ))
    .await;
    assert!(t
        .call_item("call_live")
        .await
        .unwrap()
        .contains_key("live_consent"));
    // Unknown tools and bad arguments are refused.
    for bad in [
        json!({"name": "transfer_money", "call": {"call_id": "call_live"}, "args": {}}),
        json!({"name": "record_consent", "call": {"call_id": "call_live"}, "args": {"granted": "yes"}}),
    ] {
        let body = serde_json::to_vec(&bad).unwrap();
        let sig = sign(&body, &SecretString::from(API_KEY.to_owned()), t.now_ms());
        assert_eq!(t.deliver_signed(&body, Some(&sig)).await.0, 400);
    }
}

/// R2.10: all three events of a consented call of a restricted subject, and of an
/// objecting one, store metadata only: nothing sealed, no transcript object, recording
/// `not_kept`, the call marked restricted; the same call of a subject without the flag
/// keeps its transcript.
#[tokio::test]
async fn a_restricted_subjects_call_keeps_metadata_only() {
    for flag in ["restricted", "objected", "none"] {
        let t = Telephony::start().await;
        if flag != "none" {
            aws_sdk_dynamodb::Client::new(&t.signup.stack.aws)
                .update_item()
                .table_name(&t.signup.stack.table)
                .key(
                    "pk",
                    AttributeValue::S(shared::adapters::dynamo::lead_pk(&t.lead)),
                )
                .key(
                    "sk",
                    AttributeValue::S(shared::adapters::dynamo::LEAD_SK.into()),
                )
                .update_expression(format!("SET {flag} = :t"))
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .send()
                .await
                .unwrap();
        }
        let call_id = format!("call_{flag}");
        let call = call_object(&call_id, &t.lead, Consent::ToolYes, true);
        for kind in ["call_started", "call_ended", "call_analyzed"] {
            assert_eq!(t.deliver(&event(kind, &call)).await, 204, "{flag}");
        }
        let item = t.call_item(&call_id).await.unwrap();
        assert_eq!(
            item["duration_ms"].as_n().unwrap(),
            "300000",
            "{flag}: metadata kept"
        );
        if flag == "none" {
            assert!(item.contains_key("transcript_key"), "the control keeps it");
            assert_ne!(
                t.signup
                    .versions(
                        "RecordingsBucket",
                        &shared::calls::transcript_key(&t.lead, &call_id)
                    )
                    .await,
                0
            );
            continue;
        }
        assert!(
            !item
                .keys()
                .any(|k| k.starts_with("sealed_") || k == "transcript_key"),
            "{flag}: no content kept"
        );
        assert_eq!(
            t.signup
                .versions(
                    "RecordingsBucket",
                    &shared::calls::transcript_key(&t.lead, &call_id)
                )
                .await,
            0,
            "{flag}"
        );
        assert_eq!(
            item["recording_state"].as_s().unwrap(),
            "not_kept",
            "{flag}"
        );
        assert_eq!(
            item["processing_restricted"],
            AttributeValue::Bool(true),
            "{flag}"
        );
    }
}

/// R3.3, R4.5 (issue 12, item 2): no write of the call store creates an item without its
/// TTL. A live consent answer before any webhook creates the call with the lead-class
/// TTL (before: no TTL); counting a copy attempt or noting the provider's deletion for a
/// call that is gone (erased meanwhile) creates nothing (before: a TTL-less item).
#[tokio::test]
async fn call_writes_never_create_an_item_without_its_ttl() {
    use shared::adapters::calls::DynamoCallStore;
    use shared::calls::CallStore;
    use shared::ingest::MAX_COPY_ATTEMPTS;
    use shared::Clock;
    let w = Telephony::start().await;
    let store = DynamoCallStore::new(
        aws_sdk_dynamodb::Client::new(&w.signup.stack.aws),
        w.signup.stack.table.clone(),
    );
    let now = w.signup.clock.now();

    CallStore::record_live_consent(&store, "call_answer_first", true, now)
        .await
        .unwrap();
    let item = w
        .signup
        .item(call_pk("call_answer_first"), CALL_SK)
        .await
        .unwrap();
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert!(ttl > now.timestamp());

    assert_eq!(
        store.count_recording_attempt("call_gone").await.unwrap(),
        MAX_COPY_ATTEMPTS
    );
    store.mark_provider_deleted("call_gone", now).await.unwrap();
    assert!(w.signup.item(call_pk("call_gone"), CALL_SK).await.is_none());
    w.world.shutdown().await.unwrap();
}

/// R2.6: for each consent path, the call item read back raw holds the consent record: the
/// call id, when it was decided (the time the call's end was processed), the answer, its
/// source (`tool_call`, `call_analysis` or `none`; a tool call's "no" outweighs the
/// analysis' "yes"), the disclosure result and the agent id and version; a live
/// `record_consent` answer is kept beside it with its own time.
#[tokio::test]
async fn the_consent_record_of_every_path_is_stored_with_source_time_and_agent_version() {
    use chrono::{DateTime, Duration, Utc};
    use shared::Clock;
    let t = Telephony::start().await;
    let time = |item: &Item, name: &str| -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(item[name].as_s().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .with_timezone(&Utc)
    };
    let mut conflicting = call_object("call_rec_conflict", &t.lead, Consent::ToolNo, true);
    conflicting["call_analysis"]["custom_analysis_data"] = json!({"recording_consent": true});
    let cases = [
        (
            call_object("call_rec_tool_yes", &t.lead, Consent::ToolYes, true),
            true,
            "tool_call",
        ),
        (
            call_object("call_rec_tool_no", &t.lead, Consent::ToolNo, true),
            false,
            "tool_call",
        ),
        (
            call_object("call_rec_analysis_yes", &t.lead, Consent::AnalysisYes, true),
            true,
            "call_analysis",
        ),
        (
            call_object("call_rec_analysis_no", &t.lead, Consent::AnalysisNo, true),
            false,
            "call_analysis",
        ),
        (
            call_object("call_rec_none", &t.lead, Consent::Never, true),
            false,
            "none",
        ),
        (conflicting, false, "tool_call"),
    ];
    for (i, (mut call, granted, source)) in cases.into_iter().enumerate() {
        let call_id = call["call_id"].as_str().unwrap().to_owned();
        // A version of its own per call: a value left from another call would show.
        let version = 20 + i;
        call["agent_version"] = json!(version);
        t.signup.clock.advance(Duration::minutes(7));
        let decided = t.signup.clock.now();
        for kind in ["call_started", "call_ended", "call_analyzed"] {
            assert_eq!(t.deliver(&event(kind, &call)).await, 204, "{call_id}");
        }

        let item = t.call_item(&call_id).await.expect("the call item");
        assert_eq!(item["call_id"].as_s().unwrap(), &call_id);
        assert_eq!(
            item["consent_granted"],
            AttributeValue::Bool(granted),
            "{call_id}"
        );
        assert_eq!(item["consent_source"].as_s().unwrap(), source, "{call_id}");
        assert_eq!(time(&item, "consent_decided_at"), decided, "{call_id}");
        assert_eq!(
            item["disclosure_ok"],
            AttributeValue::Bool(true),
            "{call_id}"
        );
        assert_eq!(item["agent_id"].as_s().unwrap(), "agent_polly", "{call_id}");
        assert_eq!(
            item["agent_version"].as_s().unwrap(),
            &version.to_string(),
            "{call_id}"
        );
        // R7.5: only a tool-call yes has an answer to cut the transcript at.
        assert_eq!(
            item.contains_key("transcript_key"),
            granted && source == "tool_call",
            "{call_id}"
        );
    }

    // The live answer of the tool call, before the call ends, and the record after it.
    t.signup.clock.advance(Duration::minutes(1));
    let answered = t.signup.clock.now();
    let body = serde_json::to_vec(&json!({
        "name": "record_consent",
        "call": {"call_id": "call_rec_live", "metadata": {"lead_id": t.lead.to_string()}},
        "args": {"granted": true}
    }))
    .unwrap();
    let sig = sign(&body, &SecretString::from(API_KEY.to_owned()), t.now_ms());
    assert_eq!(t.deliver_signed(&body, Some(&sig)).await.0, 200);
    t.signup.clock.advance(Duration::minutes(4));
    let ended = t.signup.clock.now();
    let call = call_object("call_rec_live", &t.lead, Consent::ToolYes, true);
    assert_eq!(t.deliver(&event("call_ended", &call)).await, 204);
    let item = t.call_item("call_rec_live").await.unwrap();
    let live = item["live_consent"].as_m().unwrap();
    assert_eq!(live["granted"], AttributeValue::Bool(true));
    assert_eq!(
        DateTime::parse_from_rfc3339(live["at"].as_s().unwrap()).unwrap(),
        answered
    );
    assert_eq!(item["consent_source"].as_s().unwrap(), "tool_call");
    assert_eq!(time(&item, "consent_decided_at"), ended);
    assert_eq!(item["agent_version"].as_s().unwrap(), "7");
}

/// R2.4: a call whose `metadata.lead_id` names no stored lead is kept unlinked: its
/// metadata and the blind index of the person's number (equal to the KMS MAC of that
/// number), nothing sealed, no transcript, no lead id and no pointer in any subject's
/// partition; a query of the by-phone index with that blind index finds exactly it.
#[tokio::test]
async fn an_unlinked_call_is_kept_with_metadata_only_and_found_by_the_numbers_blind_index() {
    use shared::adapters::calls::DynamoCallStore;
    use shared::calls::CallStore;
    use shared::ports::IdentifierKind;
    let t = Telephony::start().await;
    let stranger_number = "+4915112345678";
    let mut call = call_object("call_unlinked_r24", &LeadId::new(), Consent::ToolYes, true);
    call["to_number"] = json!(stranger_number);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        assert_eq!(t.deliver(&event(kind, &call)).await, 204, "{kind}");
    }
    // A linked call of the subject's number, which the stranger's index must not find.
    let linked = call_object("call_linked_r24", &t.lead, Consent::ToolYes, true);
    assert_eq!(t.deliver(&event("call_ended", &linked)).await, 204);

    let item = t.call_item("call_unlinked_r24").await.expect("kept");
    assert_eq!(item["linked"], AttributeValue::Bool(false));
    assert_eq!(
        item["duration_ms"].as_n().unwrap(),
        "300000",
        "metadata kept"
    );
    assert_eq!(item["disconnection_reason"].as_s().unwrap(), "user_hangup");
    assert!(!item.contains_key("lead_id"));
    assert!(!item.contains_key("transcript_key"));
    assert!(
        !item.keys().any(|k| k.starts_with("sealed_")),
        "nothing sealed: {:?}",
        item.keys().collect::<Vec<_>>()
    );
    assert_eq!(item["recording_state"].as_s().unwrap(), "not_kept");
    let pointers = t
        .signup
        .scan()
        .await
        .into_iter()
        .filter(|i| {
            i["pk"].as_s().unwrap().starts_with("LEAD#")
                && i["sk"].as_s().unwrap() == &call_pk("call_unlinked_r24")
        })
        .count();
    assert_eq!(pointers, 0, "linked to no subject");

    let config = t
        .signup
        .stack
        .config_for("TelephonyWebhookFunction")
        .unwrap();
    let keys = KmsKeyService::new(
        aws_sdk_kms::Client::new(&t.signup.stack.aws),
        config.data_key_id,
        config.blind_index_key_id,
    );
    let index = keys
        .blind_index(IdentifierKind::Phone, stranger_number)
        .await
        .unwrap();
    assert_eq!(item["phone_bidx"].as_s().unwrap(), index.as_str());
    let store = DynamoCallStore::new(
        aws_sdk_dynamodb::Client::new(&t.signup.stack.aws),
        t.signup.stack.table.clone(),
    );
    assert_eq!(
        store.calls_of_phone(index.as_str()).await.unwrap(),
        vec!["call_unlinked_r24".to_owned()]
    );
}

/// R5.3: after a sign-up, a consented linked call played by the simulator (webhooks, the
/// recording copied and the call deleted at the provider by the worker), a linked call
/// with a transcript, a declined call, a live consent answer and an unlinked call from
/// another number, no stored item's attribute name or value (keys, GSI keys, index
/// attributes, nested maps, binaries) and no object key holds the name, email, notes, the
/// numbers in E.164 or national form or the person's words, neither plain (any case) nor
/// base64- or hex-encoded.
#[tokio::test]
async fn a_raw_scan_after_calls_finds_no_personal_value_in_any_encoding() {
    use harness::simulator::scenario::Scenario;
    use testkit::retell::OPENING_OK;
    let t = Telephony::start().await;
    // The simulator's consented call, to the end: the recording stored, the call deleted.
    let script = t.new_call(Scenario::ConsentYes);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        t.world.deliver(&script, kind).await;
    }
    assert_eq!(t.pump_call(script.call_id(), 1).await, 0);
    let stored = t.call_item(script.call_id()).await.unwrap();
    assert_eq!(stored["recording_state"].as_s().unwrap(), "stored");
    // A linked call whose transcript is kept, a declined one, a live answer.
    for (id, consent) in [
        ("call_scan_yes", Consent::ToolYes),
        ("call_scan_no", Consent::ToolNo),
    ] {
        let call = call_object(id, &t.lead, consent, true);
        for kind in ["call_started", "call_ended", "call_analyzed"] {
            assert_eq!(t.deliver(&event(kind, &call)).await, 204);
        }
    }
    let body = serde_json::to_vec(&json!({
        "name": "record_consent",
        "call": {"call_id": "call_scan_yes", "metadata": {"lead_id": t.lead.to_string()}},
        "args": {"granted": true}
    }))
    .unwrap();
    let sig = sign(&body, &SecretString::from(API_KEY.to_owned()), t.now_ms());
    assert_eq!(t.deliver_signed(&body, Some(&sig)).await.0, 200);
    // An unlinked call from another person's number, inbound.
    let mut unlinked = call_object("call_scan_unlinked", &LeadId::new(), Consent::ToolYes, true);
    unlinked["direction"] = json!("inbound");
    unlinked["from_number"] = json!("+4915112345678");
    for kind in ["call_ended", "call_analyzed"] {
        assert_eq!(t.deliver(&event(kind, &unlinked)).await, 204);
    }
    assert!(t.call_item("call_scan_unlinked").await.is_some());

    let user_words: Vec<String> = script
        .analyzed_call()
        .get("transcript_object")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter(|turn| turn["role"] == "user")
        .map(|turn| turn["content"].as_str().unwrap().to_owned())
        .collect();
    assert!(!user_words.is_empty());
    let mut secrets: Vec<String> = [
        FIRST,
        LAST,
        EMAIL,
        PHONE,
        PHONE_E164,
        "1709876543",
        "01709876543",
        NOTES,
        "Pflaumenkuchen",
        "+4915112345678",
        "15112345678",
        testkit::retell::USER_SECRET,
        "Zwetschge-4711",
        "Interessent möchte ein Angebot",
        "Beratungstermin am Dienstag",
        OPENING_OK,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    secrets.extend(user_words);

    let mut strings: Vec<(String, Vec<u8>)> = Vec::new();
    for item in t.signup.scan().await {
        let at = format!(
            "{} / {}",
            item["pk"].as_s().unwrap(),
            item["sk"].as_s().unwrap()
        );
        for (name, value) in &item {
            strings.push((at.clone(), name.as_bytes().to_vec()));
            let mut values = Vec::new();
            flatten(value, &mut values);
            strings.extend(values.into_iter().map(|v| (format!("{at} {name}"), v)));
        }
    }
    let s3 = harness::s3_client(&t.signup.stack.aws);
    let mut object_keys = 0;
    for bucket in ["RecordingsBucket", "ExportsBucket"] {
        let out = s3
            .list_object_versions()
            .bucket(t.signup.stack.bucket(bucket))
            .send()
            .await
            .unwrap();
        for v in out.versions() {
            object_keys += 1;
            strings.push((bucket.to_owned(), v.key().unwrap().as_bytes().to_vec()));
        }
    }
    assert!(
        object_keys >= 3,
        "the recording and two transcripts were stored"
    );
    assert!(strings.len() > 100, "the scan saw the items");
    for secret in &secrets {
        for encoded in encodings(secret) {
            for (at, s) in &strings {
                assert!(
                    !contains_ci(s, &encoded),
                    "{at}: holds a personal value ({} chars) plainly or encoded",
                    secret.chars().count()
                );
            }
        }
    }
}

/// `call` with its opening moved: the agent greets and asks for the consent without
/// disclosing anything, the person answers, and only then the agent says that it is an AI
/// and that the call is recorded (before the `record_consent` tool call).
fn with_late_disclosure(mut call: Value) -> Value {
    const GREETING: &str =
        "Guten Tag, hier ist Polly von der Beispiel GmbH. Ist es in Ordnung, wenn wir sprechen?";
    const LATE: &str = "Ich bin übrigens eine KI, und dieses Gespräch wird aufgezeichnet.";
    for list in ["transcript_object", "transcript_with_tool_calls"] {
        let turns = call[list].as_array_mut().unwrap();
        assert_eq!(turns[0]["role"], "agent");
        let opening = turns[0]["content"].as_str().unwrap().to_owned();
        turns[0]["content"] = json!(GREETING);
        assert_eq!(turns[1]["role"], "user", "the person answers second");
        turns.insert(2, json!({"role": "agent", "content": LATE, "words": []}));
        let transcript = call["transcript"].as_str().unwrap().to_owned();
        call["transcript"] = json!(transcript.replacen(&opening, GREETING, 1));
    }
    call
}

/// R2.8: a call whose agent says it is an AI and records only after the person's first
/// answer (still before the consent tool call says yes) has no disclosure: through the
/// webhook and the worker it is audited as `call.disclosure_missing`, stored with
/// `disclosure_ok = false`, and neither its transcript nor its recording is kept (nothing
/// downloaded, no object, no recording item), although the person consented; the same
/// call with the disclosure in the opening is recorded.
#[tokio::test]
async fn a_disclosure_after_the_first_answer_is_an_incident_and_nothing_is_recorded() {
    use harness::simulator::scenario::Scenario;
    let t = Telephony::start().await;
    let bucket = t.signup.stack.bucket("RecordingsBucket").to_owned();

    // The control: the same scenario, disclosed in the opening, is recorded.
    let control = t.new_call(Scenario::ConsentYes);
    for kind in ["call_ended", "call_analyzed"] {
        t.world.deliver(&control, kind).await;
    }
    assert_eq!(t.pump_call(control.call_id(), 1).await, 0);
    let item = t.call_item(control.call_id()).await.unwrap();
    assert_eq!(item["recording_state"].as_s().unwrap(), "stored");
    assert_eq!(item["disclosure_ok"], AttributeValue::Bool(true));
    let objects_before = t.signup.versions("RecordingsBucket", "").await;

    let script = t.new_call(Scenario::ConsentYes);
    let call_id = script.call_id().to_owned();
    for (kind, call) in [
        ("call_ended", script.ended_call()),
        ("call_analyzed", script.analyzed_call()),
    ] {
        let late = with_late_disclosure(call);
        assert_eq!(t.deliver(&event(kind, &late)).await, 204, "{kind}");
    }
    assert_eq!(t.pump_call(&call_id, 2).await, 0);

    let item = t.call_item(&call_id).await.unwrap();
    assert_eq!(item["disclosure_ok"], AttributeValue::Bool(false));
    assert_eq!(item["consent_granted"], AttributeValue::Bool(true));
    assert_eq!(item["consent_source"].as_s().unwrap(), "tool_call");
    assert_eq!(item["recording_state"].as_s().unwrap(), "not_kept");
    assert!(!item.contains_key("transcript_key"));
    assert!(!item.contains_key("sealed_recording_url"));
    let recording_url = script.recording_url().unwrap();
    assert_eq!(t.sim.downloads(&recording_url), 0, "nothing downloaded");
    assert!(t
        .signup
        .item(call_pk(&call_id), "RECORDING")
        .await
        .is_none());
    assert_eq!(
        t.signup.versions("RecordingsBucket", "").await,
        objects_before,
        "no object of this call"
    );
    let s3 = harness::s3_client(&t.signup.stack.aws);
    let listed = s3
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        !listed
            .versions()
            .iter()
            .any(|v| v.key().unwrap().contains(&call_id)),
        "no object of this call"
    );
    let incidents: std::collections::BTreeSet<_> = t
        .signup
        .items_of_kind("audit")
        .await
        .into_iter()
        .filter(|a| a["action"].as_s().unwrap() == "call.disclosure_missing")
        .map(|a| a["call_id"].as_s().unwrap().clone())
        .collect();
    assert_eq!(
        incidents,
        [call_id.clone()].into(),
        "an incident of this call only"
    );
}
