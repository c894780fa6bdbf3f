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
/// every delivery order (duplicates and gaps included), the stored call ends the same as
/// the in-order delivery, and the recordings bucket holds the transcript exactly when the
/// call references it. Before the fix, `call_ended` after an analysis-only yes deleted
/// the transcript the stored call still referenced.
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
            match &reference {
                None => reference = Some(state),
                Some(r) => assert_eq!(&state, r, "{consent:?}: order {order:?} converges"),
            }
        }
    }
}

#[tokio::test]
async fn a_call_without_call_started_converges_too() {
    let t = Telephony::start().await;
    let a = call_object("call_gap_a", &t.lead, Consent::ToolYes, true);
    let b = call_object("call_gap_b", &t.lead, Consent::ToolYes, true);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        t.deliver(&event(kind, &a)).await;
    }
    for kind in ["call_analyzed", "call_ended"] {
        t.deliver(&event(kind, &b)).await;
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

/// Every delivery of a call, duplicates and stale ones mixed in, leaves the complete call.
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

#[tokio::test]
async fn consent_and_disclosure_decide_what_is_kept() {
    let t = Telephony::start().await;
    let cases = [
        ("call_yes", Consent::ToolYes, true, true),
        ("call_analysis_yes", Consent::AnalysisYes, true, true),
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
                state["transcript"]["transcript_object"][2]["content"],
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

#[tokio::test]
async fn a_later_analysis_with_consent_after_an_ended_without_it_keeps_the_transcript() {
    let t = Telephony::start().await;
    let call = call_object("call_late_consent", &t.lead, Consent::AnalysisYes, true);
    t.deliver(&event("call_ended", &call)).await;
    assert_eq!(
        t.normalised("call_late_consent").await["recording_state"],
        json!("not_kept")
    );
    t.deliver(&event("call_analyzed", &call)).await;
    let state = t.normalised("call_late_consent").await;
    assert_eq!(state["recording_state"], json!("pending"));
    assert!(state.contains_key("transcript"));
}

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

#[tokio::test]
async fn a_restricted_subjects_call_keeps_metadata_only() {
    let t = Telephony::start().await;
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
        .update_expression("SET restricted = :t")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let call = call_object("call_restricted", &t.lead, Consent::ToolYes, true);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        assert_eq!(t.deliver(&event(kind, &call)).await, 204);
    }
    let item = t.call_item("call_restricted").await.unwrap();
    assert!(
        !item
            .keys()
            .any(|k| k.starts_with("sealed_") || k == "transcript_key"),
        "no content kept"
    );
    assert_eq!(item["recording_state"].as_s().unwrap(), "not_kept");
    assert_eq!(item["processing_restricted"], AttributeValue::Bool(true));
    assert_eq!(
        item["duration_ms"].as_n().unwrap(),
        "300000",
        "metadata kept"
    );
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
