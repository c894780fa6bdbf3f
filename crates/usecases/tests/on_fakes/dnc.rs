//! The do-not-call list (R7.1) and the agent's `record_objection` / `confirm_signup`
//! tool calls (R7.4) on fakes: the outbound worker never calls a listed number; the list
//! keeps its first date and adds sources; the tool calls act on our stored call, never on
//! what the body names; "never signed up" keeps no transcript or recording whichever way
//! the events and the tool call are ordered. The moto versions are in
//! `tests/it/calls_dnc.rs`.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};

use domain::crypto::BlindIndex;
use domain::dsar::{RequestStatus, RequestType};
use domain::{Clock, Email, FixedClock, LeadId, LeadProfile, Notes, PersonName, PhoneNumber};
use testkit::retell::{call_object, event, Consent, PHONE};
use testkit::{
    FakeKeyService, MemoryAuditTrail, MemoryCallRequests, MemoryCallStore, MemoryDoNotCall,
    MemoryLeadStore, MemoryMetrics, MemoryObjects, MemoryProvider, MemoryRequests,
};
use usecases::dnc::{DncSource, DoNotCallList, LiftReason};
use usecases::dsar::ports::RequestStore;
use usecases::ports::{CallState, IdentifierKind, KeyService, Objects};
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};
use usecases::telephony::outbound::{CallRequest, Outbound, OutboundSettings, PlaceOutcome};
use usecases::telephony::retell::compliance::DisclosurePatterns;
use usecases::telephony::retell::model::{parse_delivery, Delivery};
use usecases::telephony::tools::{
    CallTools, ToolCallFacts, ToolOutcome, CONFIRMED_RESULT, DENIED_RESULT, OBJECTION_RESULT,
};
use usecases::telephony::webhook::{transcript_key, CallService};

/// A consent-ledger entry as (event, subject, number, call id).
type LedgerRow = (String, Option<String>, Option<String>, Option<String>);

struct World {
    clock: FixedClock,
    keys: Arc<FakeKeyService>,
    leads: MemoryLeadStore,
    calls: MemoryCallStore,
    bucket: MemoryObjects,
    requests: MemoryCallRequests,
    provider: MemoryProvider,
    audit: MemoryAuditTrail,
    dnc: MemoryDoNotCall,
    dsar: MemoryRequests,
    ledger: testkit::MemoryLedgerStore,
    lead: LeadId,
    phone: BlindIndex,
}

impl World {
    async fn new() -> Self {
        let clock = FixedClock::at(Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap());
        let leads = MemoryLeadStore::new();
        let calls = MemoryCallStore::new().watching(leads.clone());
        let audit = calls.audit_trail();
        let keys = Arc::new(FakeKeyService::new());
        let phone = keys
            .blind_index(IdentifierKind::Phone, PHONE)
            .await
            .unwrap();
        let mut w = Self {
            clock,
            keys,
            leads: leads.clone(),
            calls,
            bucket: MemoryObjects::new(),
            requests: MemoryCallRequests::new().watching(leads),
            provider: MemoryProvider::new(),
            audit,
            dnc: MemoryDoNotCall::new(),
            dsar: MemoryRequests::new(),
            ledger: testkit::MemoryLedgerStore::new(),
            lead: LeadId::default(),
            phone,
        };
        w.lead = w.sign_up().await;
        w
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
            notes: Notes::parse("").unwrap(),
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

    fn list(&self) -> DoNotCallList {
        DoNotCallList::new(
            Arc::new(self.dnc.clone()),
            Arc::new(self.audit.clone()),
            Arc::new(self.clock.clone()),
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
        .with_do_not_call(self.list())
    }

    fn webhook(&self) -> CallService {
        CallService::new(
            Arc::new(self.calls.clone()),
            Arc::new(self.bucket.clone()),
            Arc::new(self.leads.clone()),
            self.keys.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(MemoryMetrics::new()),
            DisclosurePatterns::default(),
        )
    }

    fn tools(&self) -> CallTools {
        CallTools {
            lines: Arc::new(self.calls.clone()),
            do_not_call: self.list(),
            requests: Arc::new(self.dsar.clone()),
            transcripts: Arc::new(self.bucket.clone()),
            audit: Arc::new(self.audit.clone()),
            clock: Arc::new(self.clock.clone()),
            ledger: Some(Arc::new(usecases::ledger::ConsentLedger::new(
                Arc::new(self.ledger.clone()),
                "telephony",
            ))),
        }
    }

    /// The consent ledger's entries as (event, subject, number, call id).
    fn ledger_events(&self) -> Vec<LedgerRow> {
        self.ledger
            .all()
            .into_iter()
            .map(|e| {
                let f = |k: &str| e.fields.get(k).cloned();
                (
                    f("event").unwrap_or_default(),
                    f("subject"),
                    f("number"),
                    f("call_id"),
                )
            })
            .collect()
    }

    async fn deliver(&self, kind: &str, call: &Value) {
        let body = event(kind, call);
        let Ok(Delivery::Call(e)) = parse_delivery(&body) else {
            panic!("a lifecycle event");
        };
        self.webhook().record(&e).await.unwrap();
    }

    async fn place(&self) -> PlaceOutcome {
        let req = CallRequest {
            lead_id: self.lead,
            request: 1,
            phone_index: self.phone.as_str().to_owned(),
        };
        self.outbound()
            .place(&req, &SecretString::from("key_test"))
            .await
            .unwrap()
    }

    /// The facts of a tool-call body for `call` (its metadata and agent version).
    fn facts(call: &Value) -> ToolCallFacts {
        ToolCallFacts::of(
            &serde_json::to_vec(&json!({"name": "x", "call": call, "args": {}})).unwrap(),
        )
    }

    async fn open_requests(&self) -> Vec<usecases::dsar::records::OpenRecord> {
        self.dsar.open_requests().await.unwrap()
    }
}

fn consented_call(w: &World, call_id: &str) -> Value {
    call_object(call_id, &w.lead, Consent::ToolYes, true)
}

/// R7.1: a listed number is never called: the request is suppressed and audited
/// (`call.suppressed_do_not_call`) before anything is counted or placed; the same request
/// of an unlisted number is placed.
#[tokio::test]
async fn a_listed_number_is_never_called_and_nothing_is_counted() {
    let w = World::new().await;
    w.list()
        .list(&w.phone, DncSource::Staff, "staff")
        .await
        .unwrap();

    assert_eq!(w.place().await, PlaceOutcome::DoNotCall);
    assert!(w.provider.placed().is_empty());
    assert!(w.requests.attempts(w.phone.as_str()).is_empty());
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Suppressed
    );
    assert!(w
        .audit
        .actions()
        .contains(&"call.suppressed_do_not_call".to_owned()));

    // The same request, the listing lifted: placed.
    w.list()
        .lift(&w.phone, LiftReason::Staff, "staff")
        .await
        .unwrap();
    w.requests.request_call(w.lead, 2);
    let req = CallRequest {
        lead_id: w.lead,
        request: 2,
        phone_index: w.phone.as_str().to_owned(),
    };
    let placed = w
        .outbound()
        .place(&req, &SecretString::from("key_test"))
        .await
        .unwrap();
    assert!(matches!(placed, PlaceOutcome::Placed { .. }), "{placed:?}");
    assert_eq!(w.provider.placed().len(), 1);
}

/// R7.1: listing is idempotent and keeps the first date; a new source is added and
/// audited, a repeated one changes and audits nothing; a lift keeps the entry and its
/// sources, and listing again clears the lift but keeps the first date.
#[tokio::test]
async fn listing_keeps_the_first_date_adds_sources_and_audits_only_changes() {
    let w = World::new().await;
    let first = w.clock.now();
    let list = w.list();
    assert!(list
        .list(&w.phone, DncSource::CallObjection, "telephony")
        .await
        .unwrap());
    w.clock.advance(Duration::days(2));
    assert!(!list
        .list(&w.phone, DncSource::CallObjection, "telephony")
        .await
        .unwrap());
    assert!(list
        .list(&w.phone, DncSource::Staff, "staff")
        .await
        .unwrap());
    let entry = w.dnc.get(w.phone.as_str()).unwrap();
    assert_eq!(entry.listed_at, first);
    assert_eq!(
        entry.sources.iter().copied().collect::<Vec<_>>(),
        [DncSource::CallObjection, DncSource::Staff]
    );
    assert_eq!(
        w.audit.actions(),
        ["dnc.listed_call_objection", "dnc.listed_staff"]
    );

    assert!(list
        .lift(&w.phone, LiftReason::InboundConfirmation, "telephony")
        .await
        .unwrap());
    assert!(!list.is_listed(&w.phone).await.unwrap());
    assert!(!list
        .lift(&w.phone, LiftReason::Staff, "staff")
        .await
        .unwrap());
    let lifted = w.dnc.get(w.phone.as_str()).unwrap();
    assert_eq!(lifted.sources.len(), 2, "the sources stay");
    assert_eq!(
        lifted.lifted,
        Some((w.clock.now(), LiftReason::InboundConfirmation))
    );

    w.clock.advance(Duration::days(1));
    assert!(list
        .list(&w.phone, DncSource::CallObjection, "telephony")
        .await
        .unwrap());
    let again = w.dnc.get(w.phone.as_str()).unwrap();
    assert!(again.listed());
    assert_eq!(again.listed_at, first);
}

/// R7.1, R7.4, R4.8, R7.6: `record_objection` lists the call's number (`call_objection`),
/// sets the lead's objection at once, queues one objection request for the DSAR worker and
/// tells the agent to end the call; the listing is one `dnc_listed` ledger entry (the
/// number's blind index, no subject); a replay changes nothing more, and the lead's next
/// call request is not placed.
#[tokio::test]
async fn record_objection_lists_the_number_objects_and_ends_the_call() {
    let w = World::new().await;
    let call = consented_call(&w, "call_obj");
    w.deliver("call_started", &call).await;

    let tools = w.tools();
    for _ in 0..2 {
        let out = tools
            .record_objection("call_obj", &World::facts(&call), &json!({}))
            .await
            .unwrap();
        assert_eq!(out, ToolOutcome::Done(OBJECTION_RESULT));
    }
    assert!(OBJECTION_RESULT.contains("end the call"));
    let entry = w.dnc.get(w.phone.as_str()).expect("listed");
    assert_eq!(
        entry.sources.into_iter().collect::<Vec<_>>(),
        [DncSource::CallObjection]
    );
    assert!(w.leads.lead(&w.lead).unwrap().lead.objected);
    let open = w.open_requests().await;
    assert_eq!(open.len(), 1, "one request, not one per replay");
    assert_eq!(open[0].request_type, RequestType::Objection);
    let record = w.dsar.record(&open[0].request_id).unwrap();
    assert_eq!(record.status, RequestStatus::InProgress);
    assert_eq!(record.subject_phone_bidx.as_deref(), Some(w.phone.as_str()));
    let actions = w.audit.actions();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "dnc.listed_call_objection")
            .count(),
        1
    );
    assert_eq!(
        w.ledger_events(),
        [(
            "dnc_listed".to_owned(),
            None,
            Some(w.phone.as_str().to_owned()),
            None
        )],
        "one ledger entry, not one per replay"
    );

    assert_eq!(w.place().await, PlaceOutcome::DoNotCall);
    assert!(w.provider.placed().is_empty());
}

/// R7.1: hostile tool calls change nothing: an unknown call, a body naming another
/// subject than the stored call's, and malformed arguments are refused; no number is
/// listed, no lead flagged, no request queued.
#[tokio::test]
async fn hostile_tool_calls_change_nothing() {
    let w = World::new().await;
    let call = consented_call(&w, "call_a");
    w.deliver("call_started", &call).await;
    let tools = w.tools();

    let unknown =
        json!({"call_id": "call_never_seen", "metadata": {"lead_id": w.lead.to_string()}});
    assert_eq!(
        tools
            .record_objection("call_never_seen", &World::facts(&unknown), &json!({}))
            .await
            .unwrap(),
        ToolOutcome::UnknownCall
    );
    assert_eq!(
        tools
            .confirm_signup(
                "call_never_seen",
                &World::facts(&unknown),
                &json!({"confirmed": false})
            )
            .await
            .unwrap(),
        ToolOutcome::UnknownCall
    );
    let mut other = call.clone();
    other["metadata"]["lead_id"] = json!(LeadId::new().to_string());
    for outcome in [
        tools
            .record_objection("call_a", &World::facts(&other), &json!({}))
            .await
            .unwrap(),
        tools
            .confirm_signup(
                "call_a",
                &World::facts(&other),
                &json!({"confirmed": false}),
            )
            .await
            .unwrap(),
    ] {
        assert_eq!(outcome, ToolOutcome::OtherSubject);
    }
    for (objection, args) in [
        (true, json!("stop")),
        (true, json!(null)),
        (false, json!({"confirmed": "nein"})),
        (false, json!({})),
    ] {
        let out = if objection {
            tools
                .record_objection("call_a", &World::facts(&call), &args)
                .await
        } else {
            tools
                .confirm_signup("call_a", &World::facts(&call), &args)
                .await
        };
        assert_eq!(out.unwrap(), ToolOutcome::BadArguments, "{args}");
    }
    assert!(w.dnc.is_empty());
    assert!(!w.leads.lead(&w.lead).unwrap().lead.objected);
    assert!(w.open_requests().await.is_empty());
    assert!(w.calls.call("call_a").unwrap().signup_denied_at.is_none());
}

/// R7.4, R7.1: "never signed up" keeps no transcript and no recording of the call even
/// though recording consent was given, whether the tool call comes before `call_ended`
/// or after it (and before `call_analyzed`); the number is listed `never_signed_up` and
/// one erasure request for it is queued.
#[tokio::test]
async fn never_signed_up_keeps_nothing_of_the_call_in_either_order() {
    for tool_first in [true, false] {
        let w = World::new().await;
        let call = consented_call(&w, "call_deny");
        w.deliver("call_started", &call).await;
        let deny = || async {
            let out = w
                .tools()
                .confirm_signup(
                    "call_deny",
                    &World::facts(&call),
                    &json!({"confirmed": false}),
                )
                .await
                .unwrap();
            assert_eq!(out, ToolOutcome::Done(DENIED_RESULT));
        };
        if tool_first {
            deny().await;
            w.deliver("call_ended", &call).await;
        } else {
            w.deliver("call_ended", &call).await;
            // The consented call's transcript is stored until the "no" arrives.
            assert!(w
                .calls
                .call("call_deny")
                .unwrap()
                .transcript_key()
                .is_some());
            deny().await;
        }
        w.deliver("call_analyzed", &call).await;
        deny().await; // a replay

        let stored = w.calls.call("call_deny").unwrap();
        assert!(stored.transcript_key().is_none(), "tool_first={tool_first}");
        assert!(!stored.sealed.contains_key("sealed_recording_url"));
        assert_eq!(stored.recording_state.as_deref(), Some("not_kept"));
        assert!(stored.signup_denied_at.is_some());
        assert!(w
            .bucket
            .get(&transcript_key(&w.lead, "call_deny"))
            .await
            .unwrap()
            .is_none());
        let entry = w.dnc.get(w.phone.as_str()).expect("listed");
        assert_eq!(
            entry.sources.into_iter().collect::<Vec<_>>(),
            [DncSource::NeverSignedUp]
        );
        let open = w.open_requests().await;
        assert_eq!(open.len(), 1, "tool_first={tool_first}");
        assert_eq!(open[0].request_type, RequestType::Erasure);
        let record = w.dsar.record(&open[0].request_id).unwrap();
        assert!(record.identity_checked);
        assert_eq!(record.subject_phone_bidx.as_deref(), Some(w.phone.as_str()));
        assert_eq!(w.place().await, PlaceOutcome::DoNotCall);
    }
}

/// R7.1, R2.6, R7.6: `confirm_signup` true keeps the opt-in confirmed on the line (time,
/// agent version) on the call and in the consent ledger; in an outbound call it lifts
/// nothing, in an inbound call from the listed number it lifts the listing (audited,
/// sources kept, a `dnc_lifted` ledger entry).
#[tokio::test]
async fn a_confirmation_is_kept_and_only_an_inbound_one_lifts_a_listing() {
    let w = World::new().await;
    w.list()
        .list(&w.phone, DncSource::CallObjection, "telephony")
        .await
        .unwrap();
    let outbound = consented_call(&w, "call_out");
    w.deliver("call_started", &outbound).await;
    let out = w
        .tools()
        .confirm_signup(
            "call_out",
            &World::facts(&outbound),
            &json!({"confirmed": true}),
        )
        .await
        .unwrap();
    assert_eq!(out, ToolOutcome::Done(CONFIRMED_RESULT));
    assert_eq!(
        w.calls.call("call_out").unwrap().signup_confirmed,
        Some((w.clock.now(), Some("7".to_owned())))
    );
    assert!(
        w.dnc.get(w.phone.as_str()).unwrap().listed(),
        "outbound lifts nothing"
    );

    // The person calls us from the listed number and confirms.
    let mut inbound = consented_call(&w, "call_in");
    inbound["direction"] = json!("inbound");
    inbound["from_number"] = json!(PHONE);
    inbound["to_number"] = json!("+4930901820");
    inbound.as_object_mut().unwrap().remove("metadata");
    w.deliver("call_started", &inbound).await;
    let out = w
        .tools()
        .confirm_signup(
            "call_in",
            &World::facts(&inbound),
            &json!({"confirmed": true}),
        )
        .await
        .unwrap();
    assert_eq!(out, ToolOutcome::Done(CONFIRMED_RESULT));
    let entry = w.dnc.get(w.phone.as_str()).unwrap();
    assert!(!entry.listed());
    assert_eq!(
        entry.lifted,
        Some((w.clock.now(), LiftReason::InboundConfirmation))
    );
    assert_eq!(entry.sources.len(), 1);
    assert!(w
        .audit
        .actions()
        .contains(&"dnc.lifted_inbound_confirmation".to_owned()));
    let number = Some(w.phone.as_str().to_owned());
    assert_eq!(
        w.ledger_events(),
        [
            (
                "optin_confirmed_on_line".to_owned(),
                Some(w.lead.to_string()),
                number.clone(),
                Some("call_out".to_owned())
            ),
            (
                "optin_confirmed_on_line".to_owned(),
                None,
                number.clone(),
                Some("call_in".to_owned())
            ),
            ("dnc_lifted".to_owned(), None, number, None),
        ]
    );
}

/// R7.1, R7.4: when the live tool calls were lost, `call_ended` applies the objection and
/// the "never signed up" from the call's tool invocations: the number listed with both
/// sources, the lead objecting, the transcript stored by that very event removed; a second
/// event (`call_analyzed`) changes nothing more.
#[tokio::test]
async fn lost_tool_calls_are_applied_from_the_transcript() {
    let w = World::new().await;
    let mut call = consented_call(&w, "call_lost");
    w.deliver("call_started", &call).await;
    let turns = call["transcript_with_tool_calls"].as_array_mut().unwrap();
    turns.push(json!({"role": "tool_call_invocation", "tool_call_id": "t2", "name": "record_objection", "arguments": "{}"}));
    turns.push(json!({"role": "tool_call_invocation", "tool_call_id": "t3", "name": "confirm_signup", "arguments": "{\"confirmed\": false}"}));
    for kind in ["call_ended", "call_analyzed"] {
        let body = event(kind, &call);
        let Ok(Delivery::Call(e)) = parse_delivery(&body) else {
            panic!("a lifecycle event");
        };
        w.webhook().record(&e).await.unwrap();
        w.tools().apply_from_transcript(&e).await.unwrap();
    }
    let entry = w.dnc.get(w.phone.as_str()).expect("listed");
    assert_eq!(
        entry.sources.into_iter().collect::<Vec<_>>(),
        [DncSource::CallObjection, DncSource::NeverSignedUp]
    );
    assert!(w.leads.lead(&w.lead).unwrap().lead.objected);
    let stored = w.calls.call("call_lost").unwrap();
    assert!(stored.transcript_key().is_none());
    assert!(w
        .bucket
        .get(&transcript_key(&w.lead, "call_lost"))
        .await
        .unwrap()
        .is_none());
    let kinds: Vec<RequestType> = w
        .open_requests()
        .await
        .iter()
        .map(|r| r.request_type)
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&RequestType::Objection) && kinds.contains(&RequestType::Erasure));
}
