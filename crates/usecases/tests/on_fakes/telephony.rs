//! Telephony on fakes: the webhook's consent and disclosure decisions, merge idempotency
//! under duplicates and re-ordering, the sealed transcript in the bucket; the worker's
//! ingestion (copied only when consented, retried then failed, the call deleted at the
//! provider, a failing deletion handed to the outbox, the last contact moved); outbound
//! placement (no call for restricted or objecting subjects, at most three attempts per
//! number in 24 hours, no second call on redelivery). The moto versions of these
//! assertions are in `tests/it/telephony_*.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};

use domain::{
    Clock, Email, FixedClock, LeadId, LeadProfile, PersonName, PhoneNumber, RetentionClass,
};
use testkit::retell::{
    call_object, delivery_orders, event, Consent, PHONE, RECORDING_URL, USER_SECRET,
};
use testkit::telephony::MemoryCall;
use testkit::{
    FakeKeyService, MemoryAuditTrail, MemoryCallRequests, MemoryCallStore, MemoryLeadStore,
    MemoryMetrics, MemoryObjects, MemoryProvider, MemoryRecordingCopier,
};
use usecases::ports::{
    CallState, IdentifierKind, KeyService, LeadStore, Objects, Retry, StoredLead,
};
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};
use usecases::telephony::ingest::{recording_key, Ingest, IngestOutcome, MAX_COPY_ATTEMPTS};
use usecases::telephony::outbound::{
    CallRequest, Outbound, OutboundSettings, PlaceOutcome, MAX_ATTEMPTS_PER_NUMBER,
};
use usecases::telephony::ports::CallStore;
use usecases::telephony::retell::compliance::DisclosurePatterns;
use usecases::telephony::retell::model::{parse_delivery, CallId, Delivery};
use usecases::telephony::webhook::{transcript_key, CallService, MergeOutcome};

/// Every fake the telephony use cases need, and one signed-up lead.
struct World {
    clock: FixedClock,
    keys: Arc<FakeKeyService>,
    leads: MemoryLeadStore,
    calls: MemoryCallStore,
    bucket: MemoryObjects,
    metrics: MemoryMetrics,
    provider: MemoryProvider,
    copier: MemoryRecordingCopier,
    requests: MemoryCallRequests,
    audit: MemoryAuditTrail,
    lead: LeadId,
}

impl World {
    async fn new() -> Self {
        let clock = FixedClock::at(Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap());
        let keys = Arc::new(FakeKeyService::new());
        let leads = MemoryLeadStore::new();
        let bucket = MemoryObjects::new();
        // Both respect the erasure tombstones of the lead store, as the adapter does.
        let calls = MemoryCallStore::new().watching(leads.clone());
        let audit = calls.audit_trail();
        let requests = MemoryCallRequests::new().watching(leads.clone());
        let mut w = Self {
            copier: MemoryRecordingCopier::new(bucket.clone()),
            clock,
            keys,
            leads: leads.clone(),
            calls,
            bucket,
            metrics: MemoryMetrics::new(),
            provider: MemoryProvider::new(),
            requests,
            audit,
            lead: LeadId::default(),
        };
        w.lead = w.sign_up().await;
        w
    }

    fn stored_lead(&self, id: &LeadId) -> StoredLead {
        self.leads.lead(id).expect("lead").lead
    }

    fn lead_service(&self) -> LeadService {
        LeadService::new(
            Arc::new(self.leads.clone()),
            self.keys.clone(),
            Arc::new(self.clock.clone()),
        )
    }

    async fn sign_up(&self) -> LeadId {
        let profile = LeadProfile {
            first_name: PersonName::parse("Erika").unwrap(),
            last_name: PersonName::parse("Mustermann").unwrap(),
            email: Email::parse("erika@example.org").unwrap(),
            phone: PhoneNumber::parse(PHONE).unwrap(),
            notes: None,
        };
        let outcome = self
            .lead_service()
            .sign_up(SignupRequest {
                profile,
                source_ip: None,
                client: None,
                policy_version: "2026-01".into(),
                call_window: None,
            })
            .await
            .unwrap();
        let SignupOutcome::Created { id } = outcome else {
            panic!("a new lead");
        };
        self.requests.request_call(id, 1);
        id
    }

    fn webhook(&self) -> CallService {
        CallService::new(
            Arc::new(self.calls.clone()),
            Arc::new(self.bucket.clone()),
            Arc::new(self.leads.clone()),
            self.keys.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(self.metrics.clone()),
            // The configuration's default (German) phrases.
            DisclosurePatterns::default(),
        )
    }

    fn ingest(&self, delete_at_provider: bool) -> Ingest {
        Ingest::new(
            Arc::new(self.calls.clone()),
            Arc::new(self.audit.clone()),
            Arc::new(self.leads.clone()),
            self.keys.clone(),
            Arc::new(self.copier.clone()),
            Arc::new(self.provider.clone()),
            Arc::new(self.clock.clone()),
            delete_at_provider,
        )
    }

    fn outbound(&self) -> Outbound {
        Outbound::new(
            Arc::new(self.leads.clone()),
            Arc::new(self.requests.clone()),
            Arc::new(self.audit.clone()),
            self.lead_service(),
            Arc::new(self.provider.clone()),
            Arc::new(self.clock.clone()),
            OutboundSettings {
                from_number: "+4930000000".into(),
                agent_id: "agent_polly".into(),
                data_storage_setting: "basic_attributes_only".into(),
                ring_duration_ms: 30_000,
                calling_rules: Default::default(),
            },
        )
    }

    async fn deliver(&self, body: &[u8]) -> MergeOutcome {
        let Ok(Delivery::Call(event)) = parse_delivery(body) else {
            panic!("a lifecycle event");
        };
        self.webhook().record(&event).await.unwrap()
    }

    async fn phone_index(&self) -> String {
        self.keys
            .blind_index(IdentifierKind::Phone, PHONE)
            .await
            .unwrap()
            .as_str()
            .to_owned()
    }

    /// What the webhook kept of a call, opened: the sealed attributes decrypted, the
    /// transcript read from the bucket; the bookkeeping (version, times) left out.
    async fn opened(&self, call_id: &str) -> BTreeMap<String, Value> {
        let call = self.calls.call(call_id).expect("call stored");
        let stored = self.stored_lead(&self.lead);
        let key = self
            .keys
            .unwrap_data_key(&self.lead, &stored.wrapped_key)
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for (name, sealed) in &call.sealed {
            let plain = CallService::open(&key, call_id, name, sealed).expect("decrypts");
            let value = serde_json::from_slice(&plain)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&plain).into_owned()));
            out.insert(name.clone(), value);
        }
        if let Some(object) = call.transcript_key() {
            let sealed = self.bucket.latest(object).expect("transcript object");
            let plain = CallService::open(&key, call_id, "transcript", &sealed).expect("decrypts");
            out.insert("transcript".into(), serde_json::from_slice(&plain).unwrap());
        }
        let facts = call.facts.clone().expect("facts");
        out.insert("events".into(), json!(call.events));
        out.insert("completeness".into(), json!(call.completeness));
        out.insert("last_event".into(), json!(call.last_event));
        out.insert("lead_id".into(), json!(call.lead_id.map(|l| l.to_string())));
        out.insert("recording_state".into(), json!(call.recording_state));
        out.insert("call_status".into(), json!(facts.call_status));
        out.insert("duration_ms".into(), json!(facts.duration_ms));
        out.insert("end_at".into(), json!(facts.end_at));
        out.insert("linked".into(), json!(facts.linked));
        out.insert("restricted".into(), json!(facts.processing_restricted));
        out.insert(
            "consent".into(),
            json!(facts
                .consent
                .as_ref()
                .map(|c| (c.granted, c.source_code(), c.disclosure_ok))),
        );
        out.insert("expires_at".into(), json!(facts.retention.expires_at));
        out
    }
}

// ---------------------------------------------------------------- webhook

/// R2.3, R2.4: every order of the three events, with duplicates, converges to the same
/// stored call (events, completeness, status, recording pending, sealed URL and
/// transcript), linked to its lead through `metadata.lead_id`.
#[tokio::test]
async fn all_orders_with_duplicates_converge_to_the_same_call() {
    let w = World::new().await;
    let orders = delivery_orders();
    let mut reference: Option<BTreeMap<String, Value>> = None;
    for (i, order) in orders.iter().enumerate() {
        let call_id = format!("call_order_{i}");
        let call = call_object(&call_id, &w.lead, Consent::ToolYes, true);
        for kind in order {
            w.deliver(&event(kind, &call)).await;
        }
        let state = w.opened(&call_id).await;
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
    assert_eq!(r["completeness"], json!(3));
    assert_eq!(r["last_event"], json!("call_analyzed"));
    assert_eq!(r["call_status"], json!("ended"));
    assert_eq!(r["recording_state"], json!("pending"));
    assert_eq!(r["lead_id"], json!(w.lead.to_string()));
    assert_eq!(r["sealed_recording_url"], json!(RECORDING_URL));
    // The kept transcript begins at the consent answer (R7.5): the answer, then the secret.
    assert_eq!(
        r["transcript"]["transcript_object"][1]["content"],
        json!(USER_SECRET)
    );
}

/// R2.3, R2.6: for every consent path (tool call yes/no, analysis only yes/no, none) and
/// every delivery order (duplicates and gaps included), the stored call ends the same as
/// the in-order delivery, and the bucket holds the transcript exactly when the call
/// references it. Before the fix, `call_ended` after an analysis-only yes deleted the
/// transcript the stored call still referenced.
#[tokio::test]
async fn every_consent_path_converges_in_every_delivery_order() {
    let w = World::new().await;
    for (p, (consent, kept)) in Consent::ALL.into_iter().enumerate() {
        let mut reference: Option<BTreeMap<String, Value>> = None;
        for (i, order) in delivery_orders().iter().enumerate() {
            let call_id = format!("call_path_{p}_order_{i}");
            let call = call_object(&call_id, &w.lead, consent, true);
            for kind in order {
                w.deliver(&event(kind, &call)).await;
            }
            let object = transcript_key(&w.lead, &call_id);
            assert_eq!(
                w.bucket.latest(&object).is_some(),
                kept,
                "{consent:?} {order:?}: transcript object"
            );
            let state = w.opened(&call_id).await;
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

/// R2.3: six deliveries of one call at once, on worker threads, lose no update: the store
/// applies each merge atomically (as DynamoDB applies a conditional update). The moto
/// server cannot show this: it runs requests on threads without making a conditional
/// update atomic, so `tests/` delivers the same events one after another instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_lose_no_update() {
    let w = Arc::new(World::new().await);
    let call = call_object("call_concurrent", &w.lead, Consent::ToolYes, true);
    let handles: Vec<_> = [
        "call_started",
        "call_ended",
        "call_analyzed",
        "call_ended",
        "call_analyzed",
        "call_started",
    ]
    .iter()
    .map(|kind| {
        let (w, body) = (w.clone(), event(kind, &call));
        tokio::spawn(async move { w.deliver(&body).await })
    })
    .collect();
    for h in handles {
        h.await.unwrap();
    }
    let state = w.opened("call_concurrent").await;
    assert_eq!(
        state["events"],
        json!(["call_analyzed", "call_ended", "call_started"])
    );
    assert_eq!(state["completeness"], json!(3));
    assert!(state.contains_key("transcript"));
}

/// R2.3: a `call_started` after `call_analyzed` is only noted in the event list: the call
/// does not go back to ongoing, nothing else changes, nothing is audited.
#[tokio::test]
async fn a_less_complete_event_after_a_more_complete_one_is_only_noted() {
    let w = World::new().await;
    let call = call_object("call_late_start", &w.lead, Consent::ToolYes, true);
    assert_eq!(
        w.deliver(&event("call_analyzed", &call)).await,
        MergeOutcome::Applied
    );
    let before = w.opened("call_late_start").await;
    assert_eq!(
        w.deliver(&event("call_started", &call)).await,
        MergeOutcome::Superseded
    );
    let after = w.opened("call_late_start").await;
    assert_eq!(after["call_status"], json!("ended"), "not back to ongoing");
    assert_eq!(after["events"], json!(["call_analyzed", "call_started"]));
    let mut without_events = after.clone();
    without_events.insert("events".into(), before["events"].clone());
    assert_eq!(without_events, before, "nothing else changed");
    // Audits are written only for events that applied.
    let started = w
        .audit
        .entries()
        .into_iter()
        .filter(|e| e.action == "call.started")
        .count();
    assert_eq!(started, 0);
}

/// R2.6, R2.7, R2.8, R7.5: a tool-call yes keeps the sealed recording URL and the
/// transcript; an analysis-only yes (no answer to cut at), a no, no answer, or a call
/// without the AI disclosure keeps neither, only metadata and call content; the missing
/// disclosure is audited and counted.
#[tokio::test]
async fn consent_and_disclosure_decide_what_is_kept() {
    let w = World::new().await;
    let cases = [
        ("call_yes", Consent::ToolYes, true, true),
        ("call_analysis_yes", Consent::AnalysisYes, true, false),
        ("call_no", Consent::ToolNo, true, false),
        ("call_never", Consent::Never, true, false),
        ("call_no_disclosure", Consent::ToolYes, false, false),
    ];
    for (call_id, consent, disclosure, kept) in cases {
        let call = call_object(call_id, &w.lead, consent, disclosure);
        for kind in ["call_ended", "call_analyzed"] {
            w.deliver(&event(kind, &call)).await;
        }
        let state = w.opened(call_id).await;
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
        assert_eq!(state["consent"][2], json!(disclosure), "{call_id}");
        // Metadata and call content are kept either way.
        assert_eq!(state["duration_ms"], json!(300_000));
        assert_eq!(
            state["sealed_call"]["call_analysis"]["call_summary"],
            json!("Interessent möchte ein Angebot.")
        );
        let object = transcript_key(&w.lead, call_id);
        assert_eq!(
            w.bucket.latest(&object).is_some(),
            kept,
            "{call_id}: transcript object"
        );
    }
    assert_eq!(
        w.opened("call_analysis_yes").await["consent"],
        json!([true, "call_analysis", true])
    );
    assert_eq!(
        w.opened("call_no").await["consent"],
        json!([false, "tool_call", true])
    );
    // Without disclosure the incident is audited and counted.
    assert!(w
        .audit
        .entries()
        .iter()
        .any(|a| a.action == "call.disclosure_missing"
            && a.call_id.as_deref() == Some("call_no_disclosure")));
    assert_eq!(w.metrics.count_of("DisclosureMissing"), 2.0, "two events");
}

/// R2.6, R7.5: an analysis-only yes that arrives after `call_ended` keeps the call
/// `not_kept` with no transcript: it has no consent answer to cut at; the call is audited
/// `call.recording_no_cut_point` and counted.
#[tokio::test]
async fn a_later_analysis_with_consent_after_an_ended_without_it_keeps_nothing() {
    let w = World::new().await;
    let call = call_object("call_late_consent", &w.lead, Consent::AnalysisYes, true);
    w.deliver(&event("call_ended", &call)).await;
    assert_eq!(
        w.opened("call_late_consent").await["recording_state"],
        json!("not_kept")
    );
    w.deliver(&event("call_analyzed", &call)).await;
    let state = w.opened("call_late_consent").await;
    assert_eq!(state["recording_state"], json!("not_kept"));
    assert!(!state.contains_key("transcript"));
    assert!(!state.contains_key("sealed_recording_url"));
    assert!(w
        .audit
        .entries()
        .iter()
        .any(|a| a.action == "call.recording_no_cut_point"
            && a.call_id.as_deref() == Some("call_late_consent")));
    assert_eq!(w.metrics.count_of("RecordingNoCutPoint"), 1.0);
}

/// R4.9: after the subject withdrew consent, a call's "yes" keeps nothing: the transcript
/// already stored goes (no version left), the recording is `not_kept`.
#[tokio::test]
async fn a_withdrawn_consent_outweighs_the_call_and_deletes_a_kept_transcript() {
    let w = World::new().await;
    let call = call_object("call_withdrawn", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    let object = transcript_key(&w.lead, "call_withdrawn");
    assert!(w.bucket.latest(&object).is_some());
    w.leads.set_flags(&w.lead, false, false, true);
    w.deliver(&event("call_analyzed", &call)).await;
    let state = w.opened("call_withdrawn").await;
    assert_eq!(state["recording_state"], json!("not_kept"));
    assert!(!state.contains_key("transcript"));
    assert!(!state.contains_key("sealed_recording_url"));
    assert_eq!(w.bucket.count_versions(&object, true).await.unwrap(), 0);
}

/// R2.10, R4.7: the call of a restricted subject keeps metadata only: nothing sealed, no
/// transcript, no object in the bucket, the recording `not_kept`.
#[tokio::test]
async fn a_restricted_subjects_call_keeps_metadata_only() {
    let w = World::new().await;
    w.leads.set_flags(&w.lead, true, false, false);
    let call = call_object("call_restricted", &w.lead, Consent::ToolYes, true);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        w.deliver(&event(kind, &call)).await;
    }
    let stored = w.calls.call("call_restricted").unwrap();
    assert!(stored.sealed.is_empty(), "no content kept");
    assert_eq!(stored.transcript_key(), None);
    assert_eq!(stored.recording_state.as_deref(), Some("not_kept"));
    let facts = stored.facts.unwrap();
    assert!(facts.processing_restricted);
    assert_eq!(facts.duration_ms, Some(300_000), "metadata kept");
    assert!(w.bucket.keys().is_empty());
}

/// R2.4: a call without `metadata.lead_id` is kept unlinked with metadata only, and is
/// found by the number's blind index.
#[tokio::test]
async fn an_unlinked_call_keeps_metadata_and_the_numbers_blind_index() {
    let w = World::new().await;
    let mut call = call_object("call_unlinked", &w.lead, Consent::ToolYes, true);
    call["metadata"] = json!({});
    w.deliver(&event("call_analyzed", &call)).await;
    let stored = w.calls.call("call_unlinked").unwrap();
    assert!(stored.sealed.is_empty());
    assert_eq!(stored.lead_id, None);
    let facts = stored.facts.unwrap();
    assert!(!facts.linked);
    assert_eq!(
        facts.phone_index.as_ref().map(|i| i.as_str().to_owned()),
        Some(w.phone_index().await)
    );
    use usecases::telephony::ports::CallStore;
    assert_eq!(
        w.calls
            .calls_of_phone(&w.phone_index().await)
            .await
            .unwrap(),
        vec!["call_unlinked".to_owned()]
    );
}

/// R3 (lead class): call data expires 3 years after the later of the call's end and now.
#[tokio::test]
async fn call_data_is_kept_three_years_from_the_call_or_from_now() {
    let w = World::new().await;
    let call = call_object("call_dates", &w.lead, Consent::Never, true);
    w.deliver(&event("call_ended", &call)).await;
    let facts = w.calls.call("call_dates").unwrap().facts.unwrap();
    let end = DateTime::from_timestamp_millis(1_795_860_300_000).unwrap();
    let anchor = end.max(w.clock.now());
    assert_eq!(
        facts.retention.expires_at,
        RetentionClass::Lead.due_at(anchor).unwrap()
    );
    assert!(facts.retention.ttl > facts.retention.expires_at.timestamp());
}

/// R2.6, R4.11: the live `record_consent` answer is stored with its time and audited.
#[tokio::test]
async fn the_live_consent_answer_is_recorded_and_audited() {
    let w = World::new().await;
    let call_id = CallId::parse("call_live").unwrap();
    w.webhook()
        .record_live_consent(&call_id, true)
        .await
        .unwrap();
    let stored = w.calls.call("call_live").unwrap();
    assert_eq!(stored.live_consent, Some((true, w.clock.now())));
    assert!(w
        .audit
        .actions()
        .contains(&"call.live_consent_recorded".to_owned()));
}

#[tokio::test]
async fn a_store_outage_is_retryable_and_keeps_nothing() {
    let w = World::new().await;
    w.calls.fail_with(Retry::Transient);
    let call = call_object("call_outage", &w.lead, Consent::ToolYes, true);
    let body = event("call_ended", &call);
    let Ok(Delivery::Call(e)) = parse_delivery(&body) else {
        panic!("a lifecycle event");
    };
    let err = w.webhook().record(&e).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Transient);
    w.calls.heal();
    assert!(w.calls.call("call_outage").is_none());
}

// ---------------------------------------------------------------- ingestion

const KEY: &str = "provider-key";

fn api_key() -> SecretString {
    SecretString::from(KEY)
}

/// R2.7, R2.9, R3 (recording class): a consented recording is copied under an opaque key,
/// once; its record expires 6 months after the call's end; the call is deleted at the
/// provider only after the analysis, once, audited.
#[tokio::test]
async fn a_consented_recording_is_copied_and_the_call_deleted_at_the_provider() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF-wav-bytes".to_vec());
    let call = call_object("call_rec", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    let ingest = w.ingest(true);

    assert_eq!(
        ingest.ingest("call_rec").await.unwrap(),
        IngestOutcome::Stored { bytes: 14 }
    );
    let object = recording_key(&w.lead, "call_rec");
    assert!(!object.contains("+49"), "opaque object key");
    assert_eq!(
        w.bucket.latest(&object).as_deref(),
        Some(&b"RIFF-wav-bytes"[..])
    );
    let stored = w.calls.call("call_rec").unwrap();
    assert_eq!(stored.recording_state.as_deref(), Some("stored"));
    assert_eq!(stored.recording_key.as_deref(), Some(object.as_str()));
    let record = w.calls.recording("call_rec").unwrap();
    let end = DateTime::from_timestamp_millis(1_795_860_300_000).unwrap();
    assert_eq!(
        record.retention.expires_at,
        RetentionClass::Recording.due_at(end).unwrap()
    );
    assert!(record.retention.bucket.starts_with("recording#"));
    assert_eq!(
        record.transcript_key,
        Some(transcript_key(&w.lead, "call_rec"))
    );

    // Not deleted at the provider before the analysis arrived…
    assert!(!ingest
        .delete_at_provider("call_rec", &api_key())
        .await
        .unwrap());
    assert!(w.provider.deleted().is_empty());
    // …but once it has; and only once.
    w.deliver(&event("call_analyzed", &call)).await;
    assert_eq!(
        w.calls.call("call_rec").unwrap().recording_state.as_deref(),
        Some("stored"),
        "the webhook leaves the worker's state alone"
    );
    assert!(ingest
        .delete_at_provider("call_rec", &api_key())
        .await
        .unwrap());
    assert!(!ingest
        .delete_at_provider("call_rec", &api_key())
        .await
        .unwrap());
    assert_eq!(w.provider.deleted(), vec!["call_rec".to_owned()]);
    // A redelivered ingestion copies nothing again.
    assert_eq!(
        ingest.ingest("call_rec").await.unwrap(),
        IngestOutcome::NotPending
    );
    assert_eq!(w.copier.copies().len(), 1);
    for action in ["call.recording_stored", "call.deleted_at_provider"] {
        assert!(
            w.audit.actions().iter().any(|a| a == action),
            "{action} audited"
        );
    }
}

/// R2.7, R2.9: without consent nothing is downloaded or recorded, and the call is still
/// deleted at the provider.
#[tokio::test]
async fn without_consent_nothing_is_copied_and_the_call_is_still_deleted_at_the_provider() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF".to_vec());
    let call = call_object("call_no_rec", &w.lead, Consent::ToolNo, true);
    w.deliver(&event("call_ended", &call)).await;
    w.deliver(&event("call_analyzed", &call)).await;
    let ingest = w.ingest(true);
    assert_eq!(
        ingest.ingest("call_no_rec").await.unwrap(),
        IngestOutcome::NotPending
    );
    assert!(w.copier.copies().is_empty(), "not even downloaded");
    assert!(w.calls.recording("call_no_rec").is_none());
    assert!(ingest
        .delete_at_provider("call_no_rec", &api_key())
        .await
        .unwrap());
    assert_eq!(w.provider.deleted(), vec!["call_no_rec".to_owned()]);
}

/// R2.5, R2.7: a failing recording URL is retried (transient, state `pending`) until the
/// third attempt records it `failed` (audited); a 404 fails at once.
#[tokio::test]
async fn a_failing_recording_url_is_retried_then_recorded_as_failed() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF".to_vec());
    for _ in 0..MAX_COPY_ATTEMPTS {
        w.copier.fail_next(503);
    }
    let call = call_object("call_flaky", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    let ingest = w.ingest(true);
    for _ in 1..MAX_COPY_ATTEMPTS {
        let err = ingest.ingest("call_flaky").await.unwrap_err();
        assert_eq!(err.retry(), Retry::Transient, "retried through the stream");
        assert_eq!(
            w.calls
                .call("call_flaky")
                .unwrap()
                .recording_state
                .as_deref(),
            Some("pending")
        );
    }
    assert_eq!(
        ingest.ingest("call_flaky").await.unwrap(),
        IngestOutcome::Failed,
        "the last failure settles it"
    );
    let stored = w.calls.call("call_flaky").unwrap();
    assert_eq!(stored.recording_state.as_deref(), Some("failed"));
    assert!(stored.transcript_key().is_some());
    assert!(w.calls.recording("call_flaky").is_none());
    assert!(w.audit.actions().contains(&"call.recording_failed".into()));

    // A 404 is not retried at all.
    let call = call_object("call_gone", &w.lead, Consent::ToolYes, true);
    w.copier.fail_next(404);
    w.deliver(&event("call_ended", &call)).await;
    assert_eq!(
        ingest.ingest("call_gone").await.unwrap(),
        IngestOutcome::Failed
    );
}

/// R2.9: with the setting off, no delete reaches the provider.
#[tokio::test]
async fn provider_deletion_can_be_turned_off() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF".to_vec());
    let call = call_object("call_keep", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    w.deliver(&event("call_analyzed", &call)).await;
    let ingest = w.ingest(false);
    ingest.ingest("call_keep").await.unwrap();
    assert!(!ingest
        .delete_at_provider("call_keep", &api_key())
        .await
        .unwrap());
    assert!(w.provider.deleted().is_empty());
}

#[tokio::test]
async fn a_pending_recording_whose_lead_is_gone_is_recorded_as_failed() {
    let w = World::new().await;
    w.calls.insert(
        "call_orphan",
        MemoryCall {
            lead_id: Some(LeadId::new()),
            recording_state: Some("pending".into()),
            ..MemoryCall::default()
        },
    );
    assert_eq!(
        w.ingest(true).ingest("call_orphan").await.unwrap(),
        IngestOutcome::Failed
    );
    assert_eq!(
        w.calls
            .call("call_orphan")
            .unwrap()
            .recording_state
            .as_deref(),
        Some("failed")
    );
    assert!(w.copier.copies().is_empty());
}

/// R2.11: a call's end becomes the lead's `last_contact_at`; an earlier end does not move
/// it back; a gone lead is not touched.
#[tokio::test]
async fn the_end_of_a_call_moves_the_last_contact_forward_only() {
    let w = World::new().await;
    let signed_up = w.stored_lead(&w.lead).last_contact_at;
    let ingest = w.ingest(true);
    let end = signed_up + Duration::days(2);
    assert!(ingest.record_contact(&w.lead, end).await.unwrap());
    assert_eq!(w.stored_lead(&w.lead).last_contact_at, end);
    assert!(ingest
        .record_contact(&w.lead, end - Duration::days(1))
        .await
        .unwrap());
    assert_eq!(w.stored_lead(&w.lead).last_contact_at, end, "never back");
    assert!(!ingest.record_contact(&LeadId::new(), end).await.unwrap());
}

// ---------------------------------------------------------------- outbound

fn request(w: &World, phone_index: &str, request: u32) -> CallRequest {
    CallRequest {
        lead_id: w.lead,
        request,
        phone_index: phone_index.to_owned(),
    }
}

/// R1.5, R2.12: one call per request with `from_number`, agent, `to_number`,
/// `metadata.lead_id`, the first name and `basic_attributes_only`; a redelivery places no
/// second call and counts no second attempt.
#[tokio::test]
async fn a_requested_lead_gets_one_call_with_the_documented_payload() {
    let w = World::new().await;
    let index = w.phone_index().await;
    let outbound = w.outbound();
    let req = request(&w, &index, 1);

    let outcome = outbound.place(&req, &api_key()).await.unwrap();
    let PlaceOutcome::Placed { call_id } = outcome else {
        panic!("placed: {outcome:?}");
    };
    let placed = w.provider.placed();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].to_number, PHONE);
    assert_eq!(placed[0].from_number, "+4930000000");
    assert_eq!(placed[0].agent_id, "agent_polly");
    assert_eq!(placed[0].lead_id, w.lead.to_string());
    assert_eq!(placed[0].first_name, "Erika");
    assert_eq!(placed[0].data_storage_setting, "basic_attributes_only");
    let lead = w.requests.lead(&w.lead).unwrap();
    assert_eq!(lead.call_state, CallState::Placed);
    assert_eq!(lead.last_call_id, Some(call_id));
    assert!(w.audit.actions().contains(&"call.placed".into()));

    // The stream redelivers the same request: no second call.
    assert_eq!(
        outbound.place(&req, &api_key()).await.unwrap(),
        PlaceOutcome::AlreadyPlaced
    );
    assert_eq!(w.provider.placed().len(), 1);
    assert_eq!(w.requests.attempts(&index).len(), 1);
}

/// R3 (phone-consent proof, §7a UWG): every call placed under the consent joins its proof,
/// and the proof lives 5 years from the last call, not from the grant (before the fix it
/// recorded no call and expired 5 years after the sign-up).
#[tokio::test]
async fn each_call_placed_joins_the_consent_proof_and_keeps_it_five_years_from_that_use() {
    let w = World::new().await;
    let index = w.phone_index().await;
    let given = w.clock.now();
    let first = w
        .outbound()
        .place(&request(&w, &index, 1), &api_key())
        .await
        .unwrap();
    let PlaceOutcome::Placed { call_id: first } = first else {
        panic!("placed: {first:?}");
    };
    let later = given + Duration::days(400);
    w.clock.set(later);
    w.requests.request_call(w.lead, 2);
    let second = w
        .outbound()
        .place(&request(&w, &index, 2), &api_key())
        .await
        .unwrap();
    let PlaceOutcome::Placed { call_id: second } = second else {
        panic!("placed: {second:?}");
    };
    let proofs = w.leads.consents();
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].calls, vec![first, second]);
    assert_eq!(proofs[0].last_used_at, Some(later));
    assert_eq!(
        proofs[0].expires_at,
        RetentionClass::PhoneConsentProof.due_at(later).unwrap()
    );
    assert!(proofs[0].expires_at > RetentionClass::PhoneConsentProof.due_at(given).unwrap());
}

/// R1.5: a provider outage (503) is a transient error with the request back at
/// `requested`; the retry places exactly one call.
#[tokio::test]
async fn a_provider_outage_is_retryable_and_the_retry_places_one_call() {
    let w = World::new().await;
    let index = w.phone_index().await;
    w.provider.fail_next_create(503);
    let req = request(&w, &index, 1);
    let err = w.outbound().place(&req, &api_key()).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Transient);
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Requested
    );
    assert!(matches!(
        w.outbound().place(&req, &api_key()).await.unwrap(),
        PlaceOutcome::Placed { .. }
    ));
    assert_eq!(w.provider.placed().len(), 1);
}

/// R1.5, R1.6: an outage longer than the number's three attempts loses no call: a create
/// call the provider refused (503, 429: nothing rang) takes its attempt back, so after six
/// refused deliveries the seventh places the call, with one attempt counted.
#[tokio::test]
async fn refused_create_calls_do_not_use_up_the_numbers_attempts() {
    let w = World::new().await;
    let index = w.phone_index().await;
    let req = request(&w, &index, 1);
    for status in [503, 429, 503, 429, 503, 503] {
        w.provider.fail_next_create(status);
        let err = w.outbound().place(&req, &api_key()).await.unwrap_err();
        assert_eq!(err.retry(), Retry::Transient, "{status}");
        assert!(
            w.requests.attempts(&index).is_empty(),
            "a refused attempt is taken back ({status})"
        );
    }
    assert!(matches!(
        w.outbound().place(&req, &api_key()).await.unwrap(),
        PlaceOutcome::Placed { .. }
    ));
    assert_eq!(w.provider.placed().len(), 1);
    assert_eq!(w.requests.attempts(&index).len(), 1);
}

/// R1.5, R1.6: the provider placed the call but its answer was lost (a 500 after the
/// call was created): the redelivered request does not place a second call, and the
/// request is visibly `unconfirmed` (audited as an unknown outcome).
#[tokio::test]
async fn a_lost_answer_of_the_provider_never_places_a_second_call() {
    for status in [500, 502, 504] {
        let w = World::new().await;
        let index = w.phone_index().await;
        w.provider.lose_next_create_answer(status);
        let req = request(&w, &index, 1);
        let err = w.outbound().place(&req, &api_key()).await.unwrap_err();
        assert_eq!(err.retry(), Retry::Transient, "the stream redelivers");
        assert_eq!(
            w.outbound().place(&req, &api_key()).await.unwrap(),
            PlaceOutcome::Unconfirmed
        );
        assert_eq!(w.provider.placed().len(), 1, "one call, not two ({status})");
        assert_eq!(
            w.requests.lead(&w.lead).unwrap().call_state,
            CallState::Unconfirmed
        );
        // Any later redelivery changes nothing.
        assert_eq!(
            w.outbound().place(&req, &api_key()).await.unwrap(),
            PlaceOutcome::Unconfirmed
        );
        assert_eq!(w.provider.placed().len(), 1);
        assert_eq!(w.requests.attempts(&index).len(), 1);
    }
}

/// R1.5: a permanent refusal (400) marks the request `failed`.
#[tokio::test]
async fn a_refusal_by_the_provider_marks_the_request_failed() {
    let w = World::new().await;
    let index = w.phone_index().await;
    w.provider.fail_next_create(400);
    assert_eq!(
        w.outbound()
            .place(&request(&w, &index, 1), &api_key())
            .await
            .unwrap(),
        PlaceOutcome::Refused
    );
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Failed
    );
}

/// R1.6: three attempts that may have rung (the answer lost: the call may exist) per
/// number in 24 h; the fourth request is suppressed (audited), and a request 24 h later is
/// placed.
#[tokio::test]
async fn at_most_three_attempts_per_number_in_24_hours() {
    let w = World::new().await;
    let index = w.phone_index().await;
    let outbound = w.outbound();
    for n in 1..=MAX_ATTEMPTS_PER_NUMBER as u32 {
        w.provider.lose_next_create_answer(500);
        w.requests.request_call(w.lead, n);
        assert!(outbound
            .place(&request(&w, &index, n), &api_key())
            .await
            .is_err());
        w.clock.advance(Duration::minutes(10));
    }
    w.requests.request_call(w.lead, 4);
    assert_eq!(
        outbound
            .place(&request(&w, &index, 4), &api_key())
            .await
            .unwrap(),
        PlaceOutcome::RateLimited,
        "no fourth attempt"
    );
    assert_eq!(w.provider.placed().len(), MAX_ATTEMPTS_PER_NUMBER);
    assert_eq!(w.requests.attempts(&index).len(), MAX_ATTEMPTS_PER_NUMBER);
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Suppressed
    );
    assert!(w
        .audit
        .actions()
        .contains(&"call.suppressed_rate_limit".into()));

    // A day after the first attempt a new request of the same number is placed.
    w.clock.advance(Duration::hours(24));
    w.requests.request_call(w.lead, 5);
    assert!(matches!(
        outbound
            .place(&request(&w, &index, 5), &api_key())
            .await
            .unwrap(),
        PlaceOutcome::Placed { .. }
    ));
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Placed
    );
}

/// R2.10, R4.7, R4.8: a restricted or objecting subject gets no call and no attempt is
/// counted; the request is `suppressed`.
#[tokio::test]
async fn restricted_or_objecting_subjects_get_no_call() {
    for flag in ["restricted", "objected"] {
        let w = World::new().await;
        w.leads
            .set_flags(&w.lead, flag == "restricted", flag == "objected", false);
        let index = w.phone_index().await;
        assert_eq!(
            w.outbound()
                .place(&request(&w, &index, 1), &api_key())
                .await
                .unwrap(),
            PlaceOutcome::NotPermitted,
            "{flag}"
        );
        assert!(w.provider.placed().is_empty(), "{flag}: no call placed");
        assert!(w.requests.attempts(&index).is_empty(), "{flag}: no attempt");
        assert_eq!(
            w.requests.lead(&w.lead).unwrap().call_state,
            CallState::Suppressed,
            "{flag}"
        );
    }
}

#[tokio::test]
async fn a_result_of_an_older_request_leaves_the_newer_request_alone() {
    let w = World::new().await;
    let index = w.phone_index().await;
    // The subject signed up again meanwhile: request 2 replaced request 1.
    w.requests.request_call(w.lead, 2);
    assert!(matches!(
        w.outbound()
            .place(&request(&w, &index, 1), &api_key())
            .await
            .unwrap(),
        PlaceOutcome::Placed { .. }
    ));
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Requested
    );
    assert_eq!(
        w.requests.marker(&w.lead, 1).unwrap().state,
        CallState::Placed
    );
}

/// R1.5: a request whose lead is gone places no call.
#[tokio::test]
async fn a_gone_lead_gets_no_call() {
    let w = World::new().await;
    let index = w.phone_index().await;
    let req = CallRequest {
        lead_id: LeadId::new(),
        request: 1,
        phone_index: index,
    };
    assert_eq!(
        w.outbound().place(&req, &api_key()).await.unwrap(),
        PlaceOutcome::LeadGone
    );
    assert!(w.provider.placed().is_empty());
}

// ---------------------------------------------------------------- no resurrection

/// R4.5, R2.4 (issue 12, item 2): a late event of an erased subject's call stores
/// nothing, not even as an unlinked call (before: kept with the number's blind index).
#[tokio::test]
async fn a_late_event_of_an_erased_subjects_call_stores_nothing() {
    let w = World::new().await;
    let now = w.clock.now();
    w.leads.bury(&w.lead, now, false).await.unwrap();
    w.leads.shred_key(&w.lead);
    let call = call_object("call_late", &w.lead, Consent::ToolYes, true);

    let out = w.deliver(&event("call_ended", &call)).await;
    assert_eq!(out, MergeOutcome::SubjectErased);
    assert!(w.calls.call("call_late").is_none());
    assert!(w.bucket.keys().is_empty());
}

/// R4.5 (issue 12, item 2): erased (tombstone written, key not yet gone) while the
/// recording was copied: the copy goes again and no recording record is written
/// (before: stored).
#[tokio::test]
async fn a_copy_that_ran_while_the_subject_was_erased_goes_again() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF-wav-bytes".to_vec());
    let call = call_object("call_race", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    w.leads.bury(&w.lead, w.clock.now(), false).await.unwrap();

    let out = w.ingest(false).ingest("call_race").await.unwrap();
    assert_eq!(out, IngestOutcome::Discarded);
    assert!(w
        .bucket
        .latest(&recording_key(&w.lead, "call_race"))
        .is_none());
    assert!(w.calls.recording("call_race").is_none());
}

/// R4.9 (issue 12, item 2): consent withdrawn while the recording was copied: the
/// withdrawal's flag is read after the copy, and the copy goes (before: stored).
#[tokio::test]
async fn a_copy_that_ran_while_the_subject_withdrew_consent_goes_again() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF-wav-bytes".to_vec());
    let call = call_object("call_withdrawn", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    w.leads.set_flags(&w.lead, false, false, true);

    let out = w.ingest(false).ingest("call_withdrawn").await.unwrap();
    assert_eq!(out, IngestOutcome::Discarded);
    assert!(w
        .bucket
        .latest(&recording_key(&w.lead, "call_withdrawn"))
        .is_none());
    assert!(w.calls.recording("call_withdrawn").is_none());
}

/// R4.5, R1.6 (issue 12, items 2 and 8): a call request of a subject erased meanwhile
/// places no call and leaves no attempt counter or marker (before: placed).
#[tokio::test]
async fn a_call_request_of_an_erased_subject_places_nothing() {
    let w = World::new().await;
    let index = w.phone_index().await;
    w.leads.bury(&w.lead, w.clock.now(), false).await.unwrap();

    let out = w
        .outbound()
        .place(&request(&w, &index, 1), &api_key())
        .await
        .unwrap();
    assert_eq!(out, PlaceOutcome::LeadGone);
    assert!(w.provider.placed().is_empty());
    assert!(w.requests.attempts(&index).is_empty());
    assert!(w.requests.marker(&w.lead, 1).is_none());
}

/// R4.5: a copy attempt or a provider deletion counted for a call that is
/// gone (erased meanwhile) does not create the call again.
#[tokio::test]
async fn counting_an_attempt_or_a_provider_deletion_of_a_gone_call_creates_nothing() {
    let w = World::new().await;
    let attempts = w.calls.count_recording_attempt("call_gone").await.unwrap();
    assert_eq!(attempts, usecases::telephony::ingest::MAX_COPY_ATTEMPTS);
    w.calls
        .mark_provider_deleted("call_gone", w.clock.now())
        .await
        .unwrap();
    assert!(w.calls.call("call_gone").is_none());
}

/// R3.3, R4.5 (issue 12, item 1): a call naming a lead that is past its retention but not
/// yet swept is linked to it (the lead's partition points at it, so the sweep's erasure
/// takes it along) and keeps metadata only: nothing sealed, no transcript. Before: stored
/// unlinked, without a pointer, and missed by the sweep. A lead that is gone entirely
/// gets no link.
#[tokio::test]
async fn a_call_of_a_lead_past_its_retention_is_linked_to_it_and_keeps_metadata_only() {
    let w = World::new().await;
    w.leads
        .set_expiry(&w.lead, w.clock.now() - Duration::seconds(1));
    let call = call_object("call_due_lead", &w.lead, Consent::ToolYes, true);
    for kind in ["call_started", "call_ended", "call_analyzed"] {
        w.deliver(&event(kind, &call)).await;
    }
    let stored = w.calls.call("call_due_lead").unwrap();
    assert_eq!(stored.lead_id, Some(w.lead), "linked to the due lead");
    assert!(stored.sealed.is_empty(), "nothing sealed past retention");
    assert_eq!(stored.transcript_key(), None);
    assert_eq!(stored.recording_state.as_deref(), Some("not_kept"));
    let facts = stored.facts.unwrap();
    assert!(facts.linked);
    assert_eq!(facts.duration_ms, Some(300_000), "metadata kept");
    assert!(w.bucket.keys().is_empty());
    // The call's end does not bring the due lead back (its retention stays where it was).
    let before = w.stored_lead(&w.lead);
    let ingest = w.ingest(true);
    assert!(!ingest
        .record_contact(&w.lead, w.clock.now() + Duration::minutes(5))
        .await
        .unwrap());
    let after = w.stored_lead(&w.lead);
    assert_eq!(after.expires_at, before.expires_at, "still due");
    assert_eq!(after.last_contact_at, before.last_contact_at);

    // A lead that is gone (swept, tombstone expired) links nothing.
    let gone = LeadId::new();
    let call = call_object("call_gone_lead", &gone, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    let stored = w.calls.call("call_gone_lead").unwrap();
    assert_eq!(stored.lead_id, None);
    assert!(!stored.facts.unwrap().linked);
}

/// R2.9: a provider deletion that keeps failing is counted in the outbox from the first
/// failure; the stream retries it (transient errors) until the third failure hands it to
/// the outbox (audited `call.provider_deletion_queued`, no error); a later success removes
/// the entry, marks the call and audits `call.deleted_at_provider`.
#[tokio::test]
async fn a_failing_provider_deletion_is_handed_to_the_outbox_after_three_tries() {
    use usecases::telephony::ingest::DELETE_STREAM_ATTEMPTS;
    let w = World::new().await;
    let outbox = testkit::MemoryOutbox::new();
    let call = call_object("call_del", &w.lead, Consent::ToolNo, true);
    w.deliver(&event("call_ended", &call)).await;
    w.deliver(&event("call_analyzed", &call)).await;
    let ingest = w.ingest(true).with_outbox(Arc::new(outbox.clone()));
    for _ in 0..DELETE_STREAM_ATTEMPTS {
        w.provider.fail_next_delete(500);
    }
    for n in 1..DELETE_STREAM_ATTEMPTS {
        let err = ingest
            .delete_at_provider("call_del", &api_key())
            .await
            .unwrap_err();
        assert_eq!(err.retry(), Retry::Transient);
        assert_eq!(outbox.entries()[0].attempts, n);
    }
    assert!(!ingest
        .delete_at_provider("call_del", &api_key())
        .await
        .unwrap());
    let entries = outbox.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].call_id, "call_del");
    assert_eq!(entries[0].attempts, DELETE_STREAM_ATTEMPTS);
    assert!(w.provider.deleted().is_empty());
    assert!(w
        .calls
        .call("call_del")
        .unwrap()
        .provider_deletion_queued_at
        .is_some());
    assert_eq!(
        w.audit
            .actions()
            .iter()
            .filter(|a| *a == "call.provider_deletion_queued")
            .count(),
        1
    );
    // The provider answers again.
    assert!(ingest
        .delete_at_provider("call_del", &api_key())
        .await
        .unwrap());
    assert_eq!(w.provider.deleted(), vec!["call_del".to_owned()]);
    assert!(outbox.entries().is_empty());
    assert!(w
        .calls
        .call("call_del")
        .unwrap()
        .provider_deleted_at
        .is_some());
    assert!(w
        .audit
        .actions()
        .contains(&"call.deleted_at_provider".into()));
}

/// R2.9: a permanent refusal of the deletion (403) goes to the outbox at once (audited),
/// not to the stream; without an outbox the error is returned as before.
#[tokio::test]
async fn a_refused_provider_deletion_goes_to_the_outbox_at_once() {
    let w = World::new().await;
    let outbox = testkit::MemoryOutbox::new();
    let call = call_object("call_ref", &w.lead, Consent::ToolNo, true);
    w.deliver(&event("call_ended", &call)).await;
    w.deliver(&event("call_analyzed", &call)).await;
    w.provider.fail_next_delete(403);
    let err = w
        .ingest(true)
        .delete_at_provider("call_ref", &api_key())
        .await
        .unwrap_err();
    assert_eq!(err.retry(), Retry::Permanent);
    w.provider.fail_next_delete(403);
    let ingest = w.ingest(true).with_outbox(Arc::new(outbox.clone()));
    assert!(!ingest
        .delete_at_provider("call_ref", &api_key())
        .await
        .unwrap());
    assert_eq!(outbox.entries().len(), 1);
    assert!(w
        .audit
        .actions()
        .contains(&"call.provider_deletion_queued".into()));
}

// ---------------------------------------------------------------- no audio before consent

/// The sealed transcript of a call, opened.
async fn kept_transcript(w: &World, call_id: &str) -> Value {
    w.opened(call_id).await["transcript"].clone()
}

/// R7.5: a tool-call yes stores the cut point (the start of the consent answer, 9.5 s)
/// with the consent record; the sealed transcript begins at the answer in all three fields
/// (the opening is gone, the text rebuilt from the kept turns); the worker asks the copier
/// for the recording from exactly that cut point.
#[tokio::test]
async fn the_cut_point_is_stored_with_the_consent_and_the_worker_copies_from_it() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF-wav-bytes".to_vec());
    let call = call_object("call_cut", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    let stored = w.calls.call("call_cut").unwrap();
    let consent = stored.facts.unwrap().consent.unwrap();
    assert_eq!(consent.cut_ms, Some(testkit::retell::CUT_MS));
    let t = kept_transcript(&w, "call_cut").await;
    let text = t["transcript"].as_str().unwrap();
    assert_eq!(
        text,
        format!("User: Ja, das ist in Ordnung.\nUser: {USER_SECRET}\n")
    );
    assert!(!t.to_string().contains("Polly"), "the opening is not kept");
    assert_eq!(
        t["transcript_with_tool_calls"][0]["content"],
        json!("Ja, das ist in Ordnung.")
    );
    assert_eq!(
        t["transcript_with_tool_calls"][1]["name"],
        json!("record_consent")
    );
    assert_eq!(
        t["transcript_object"][0]["content"],
        json!("Ja, das ist in Ordnung.")
    );
    w.ingest(false).ingest("call_cut").await.unwrap();
    assert_eq!(w.copier.cuts(), vec![testkit::retell::CUT_MS]);
}

/// R7.5, R2.7: a consented, disclosed call without a safe cut point (no timings on the
/// answer, a negative start, words running backwards, a word ending after the call)
/// keeps no transcript and no recording URL, stores its consent without a cut point, is
/// audited `call.recording_no_cut_point` and counted; the worker copies nothing.
#[tokio::test]
async fn without_a_safe_cut_point_nothing_verbatim_is_kept() {
    let w = World::new().await;
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let base = |id: &str| call_object(id, &w.lead, Consent::ToolYes, true);
    let mut c = base("call_no_timings");
    c["transcript_with_tool_calls"][1]["words"] = json!([]);
    cases.push(("call_no_timings", c));
    let mut c = base("call_negative");
    c["transcript_with_tool_calls"][1]["words"][0]["start"] = json!(-1.0);
    cases.push(("call_negative", c));
    let mut c = base("call_backwards");
    c["transcript_with_tool_calls"][1]["words"][3]["start"] = json!(9.0);
    cases.push(("call_backwards", c));
    let mut c = base("call_too_long");
    c["duration_ms"] = json!(15_000);
    cases.push(("call_too_long", c));
    for (n, (call_id, call)) in cases.iter().enumerate() {
        w.deliver(&event("call_ended", call)).await;
        let state = w.opened(call_id).await;
        assert_eq!(state["recording_state"], json!("not_kept"), "{call_id}");
        assert!(!state.contains_key("transcript"), "{call_id}");
        assert!(!state.contains_key("sealed_recording_url"), "{call_id}");
        assert!(w.bucket.latest(&transcript_key(&w.lead, call_id)).is_none());
        let consent = w
            .calls
            .call(call_id)
            .unwrap()
            .facts
            .unwrap()
            .consent
            .unwrap();
        assert!(consent.granted && consent.cut_ms.is_none(), "{call_id}");
        assert!(w
            .audit
            .entries()
            .iter()
            .any(|a| a.action == "call.recording_no_cut_point"
                && a.call_id.as_deref() == Some(*call_id)));
        assert_eq!(w.metrics.count_of("RecordingNoCutPoint"), (n + 1) as f64);
        assert_eq!(
            w.ingest(false).ingest(call_id).await.unwrap(),
            IngestOutcome::NotPending
        );
    }
    assert!(w.copier.copies().is_empty());
}

/// R7.5: a pending recording whose call has no cut point stored (written before cut points
/// existed) is not copied: the worker settles it `not_kept` and audits it.
#[tokio::test]
async fn a_pending_recording_without_a_stored_cut_point_is_not_copied() {
    let w = World::new().await;
    w.copier.serve(RECORDING_URL, b"RIFF-wav-bytes".to_vec());
    let call = call_object("call_legacy", &w.lead, Consent::ToolYes, true);
    w.deliver(&event("call_ended", &call)).await;
    let mut stored = w.calls.call("call_legacy").unwrap();
    if let Some(consent) = stored.facts.as_mut().and_then(|f| f.consent.as_mut()) {
        consent.cut_ms = None;
    }
    w.calls.insert("call_legacy", stored);
    assert_eq!(
        w.ingest(false).ingest("call_legacy").await.unwrap(),
        IngestOutcome::NotKept
    );
    assert!(w.copier.copies().is_empty());
    let stored = w.calls.call("call_legacy").unwrap();
    assert_eq!(stored.recording_state.as_deref(), Some("not_kept"));
    assert!(w
        .audit
        .entries()
        .iter()
        .any(|a| a.action == "call.recording_no_cut_point"
            && a.call_id.as_deref() == Some("call_legacy")));
}
