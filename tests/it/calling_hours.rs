//! Calling hours, durable scheduling and caps end to end (R7.2, R7.3): the real sign-up
//! handler, the real telephony worker on its stream records and on the dispatcher's
//! schedule input, against the emulator (the due index built from the template) and the
//! provider simulator, with the test clock moved. The matrix of cases runs on fakes
//! (`crates/usecases/tests/on_fakes/calling_hours.rs`).

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::events::stream_event;
use harness::simulator::Operation;
use serde_json::json;
use shared::adapters::calls::{DynamoCallRequests, DUE_INDEX};
use shared::domain::LeadId;

/// Signs up [`form`] (with `window` as its `call_window`) at `at`, and hands the lead's
/// INSERT record to the worker.
async fn sign_up_at(w: &World, at: &str, window: Option<serde_json::Value>) -> LeadId {
    w.signup.clock.set(t(at));
    let mut f = form();
    if let Some(window) = window {
        f["call_window"] = window;
    }
    let (status, body) = w.signup.sign_up(&f).await;
    assert_eq!(status, 201, "{body}");
    let id = w.signup.lead_of(EMAIL).await;
    assert_eq!(w.pump_lead(&id, 1).await, 0);
    id
}

/// The due index's entries, read from the emulator: (lead id, due instant).
async fn due_index(w: &World) -> Vec<(String, String)> {
    let out = aws_sdk_dynamodb::Client::new(&w.signup.stack.aws)
        .query()
        .table_name(&w.signup.stack.table)
        .index_name(DUE_INDEX)
        .key_condition_expression("due_kind = :k")
        .expression_attribute_values(":k", AttributeValue::S("call".into()))
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| {
            (
                i["lead_id"].as_s().unwrap().clone(),
                i["due_at"].as_s().unwrap().clone(),
            )
        })
        .collect()
}

/// One run of the dispatcher as the schedule invokes it (the template's input).
async fn dispatch(w: &World) -> usize {
    assert!(telephony::worker::is_dispatch(
        &json!({"job": "dispatch-due"})
    ));
    telephony::worker::dispatch(&w.worker).await.unwrap().placed
}

fn count(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

/// R7.2, R7.3: a sign-up on Wednesday 23:40 (Berlin) is not called then: the request is
/// stored `scheduled` in the due index for Thursday 08:00, audited `call.scheduled`
/// (nothing personal); the dispatcher a millisecond early places nothing; at 08:00 two
/// dispatcher runs and a stream redelivery place exactly one call, which carries the
/// configured ring time (30 000 ms) to the provider, and the request leaves the index.
#[tokio::test]
async fn a_late_sign_up_is_called_at_eight_the_next_morning_exactly_once() {
    let w = World::start().await;
    let id = sign_up_at(&w, "2026-11-25T22:40:00Z", None).await;
    assert!(w.sim.create_requests().is_empty(), "no call at 23:40");
    let lead = w.signup.lead_item(&id).await;
    assert_eq!(lead["call_state"].as_s().unwrap(), "scheduled");
    assert_eq!(
        due_index(&w).await,
        vec![(id.to_string(), "2026-11-26T07:00:00.000Z".to_owned())]
    );
    let actions = w.signup.audit_actions().await;
    assert_eq!(count(&actions, "call.scheduled"), 1, "{actions:?}");

    w.signup.clock.set(t("2026-11-26T06:59:59.999Z"));
    assert_eq!(dispatch(&w).await, 0);
    assert!(w.sim.create_requests().is_empty());

    w.signup.clock.set(t("2026-11-26T07:00:00Z"));
    assert_eq!(dispatch(&w).await, 1);
    assert_eq!(dispatch(&w).await, 0);
    let item = w.signup.lead_item(&id).await;
    let redelivered = telephony::worker::handle(
        &w.worker,
        stream_event("INSERT", item, Default::default(), 2),
    )
    .await;
    assert!(redelivered.batch_item_failures.is_empty());

    let created = w.sim.create_requests();
    assert_eq!(created.len(), 1, "exactly one call");
    assert_eq!(created[0].status, 201);
    assert_eq!(created[0].body["metadata"]["lead_id"], id.to_string());
    assert_eq!(
        created[0].body["agent_override"]["ring_duration_ms"],
        30_000
    );
    assert_eq!(
        w.sim.created_calls()[0]["ring_duration_ms"],
        30_000,
        "the simulator took the ring time as the provider does"
    );
    assert_eq!(
        w.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
    assert!(due_index(&w).await.is_empty());
    let actions = w.signup.audit_actions().await;
    assert_eq!(count(&actions, "call.placed"), 1, "{actions:?}");
}

/// R7.2: the preferred window from the sign-up form is stored as a plain attribute and
/// narrows the slot: a sign-up on Monday 10:00 with a Tuesday–Thursday 17:00–19:00 window
/// is called on Tuesday at 17:00, not before.
#[tokio::test]
async fn the_preferred_window_from_the_form_decides_the_slot() {
    let w = World::start().await;
    let window = json!({"from": "17:00", "to": "19:00", "days": ["tue", "wed", "thu"]});
    let id = sign_up_at(&w, "2026-11-30T09:00:00Z", Some(window)).await;
    assert!(w.sim.create_requests().is_empty());
    assert_eq!(
        w.signup.lead_item(&id).await["call_window"].as_s().unwrap(),
        "tue,wed,thu@17:00-19:00"
    );
    assert_eq!(
        due_index(&w).await,
        vec![(id.to_string(), "2026-12-01T16:00:00.000Z".to_owned())]
    );
    w.signup.clock.set(t("2026-12-01T15:59:00Z"));
    assert_eq!(dispatch(&w).await, 0);
    w.signup.clock.set(t("2026-12-01T16:00:30Z"));
    assert_eq!(dispatch(&w).await, 1);
    assert_eq!(w.sim.create_requests().len(), 1);
}

/// R7.2, R4.5: a subject erased between scheduling and the slot is not called: the
/// erasure takes the schedule with the subject's partition, and the dispatcher at the
/// slot places nothing.
#[tokio::test]
async fn erasure_before_the_slot_cancels_the_scheduled_call() {
    let d = World::on_mail_emulator().await;
    sign_up_at(&d, "2026-11-28T17:30:00Z", None).await;
    assert_eq!(due_index(&d).await.len(), 1);
    let (id, token) = d.verified("erasure", EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    assert_eq!(d.status(&id, Some(&token)).await.1["status"], "completed");
    assert!(
        due_index(&d).await.is_empty(),
        "the schedule went with the subject"
    );
    d.signup.clock.set(t("2026-11-30T07:00:00Z"));
    assert_eq!(dispatch(&d).await, 0);
    assert!(d.sim.create_requests().is_empty());
}

/// R7.2, R2.10, R7.1: an objection between scheduling and the slot: the dispatcher finds
/// the number on the do-not-call list the objection put it on, places no call, suppresses
/// the request (audited) and takes it out of the due index.
#[tokio::test]
async fn an_objection_before_the_slot_cancels_the_scheduled_call() {
    let d = World::on_mail_emulator().await;
    let lead = sign_up_at(&d, "2026-11-28T17:30:00Z", None).await;
    let (id, _) = d.verified("objection", EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    d.signup.clock.set(t("2026-11-30T07:00:00Z"));
    assert_eq!(dispatch(&d).await, 0);
    assert!(d.sim.create_requests().is_empty());
    assert!(due_index(&d).await.is_empty());
    assert_eq!(
        d.signup.lead_item(&lead).await["call_state"]
            .as_s()
            .unwrap(),
        "suppressed"
    );
    let actions = d.signup.audit_actions().await;
    assert_eq!(
        count(&actions, "call.suppressed_do_not_call"),
        1,
        "{actions:?}"
    );
}

/// R7.3: every attempt counts towards the lead's total in its partition (the count item
/// carries a TTL and goes with the subject); an attempt the provider refused before
/// anything rang (503) is given back, to the number and to the lead; attempt items live
/// past the 7-day window they count in.
#[tokio::test]
async fn attempts_count_towards_the_lead_total_and_a_refused_one_is_given_back() {
    let w = World::start().await;
    w.sim.fail_next(Operation::CreateCall, 1, 503);
    w.signup.clock.set(t("2026-11-30T09:00:00Z"));
    let (status, _) = w.signup.sign_up(&form()).await;
    assert_eq!(status, 201);
    let id = w.signup.lead_of(EMAIL).await;
    assert_eq!(w.pump_lead(&id, 1).await, 1, "the outage fails the record");
    let counts = w.signup.items_of_kind("call_attempt_count").await;
    assert_eq!(counts.len(), 1);
    assert_eq!(
        counts[0]["attempt_count"].as_n().unwrap(),
        "0",
        "given back"
    );
    assert_eq!(w.pump_lead(&id, 2).await, 0);
    let counts = w.signup.items_of_kind("call_attempt_count").await;
    assert_eq!(counts[0]["attempt_count"].as_n().unwrap(), "1");
    assert_eq!(
        counts[0]["pk"].as_s().unwrap(),
        &format!("LEAD#{id}"),
        "in the subject's partition"
    );
    assert!(ttl(&counts[0]) > t("2029-01-01T00:00:00Z").timestamp());
    let attempts = w.signup.items_of_kind("call_attempt").await;
    let counted: Vec<_> = attempts
        .iter()
        .filter(|a| !a.contains_key("released_at"))
        .collect();
    assert_eq!(counted.len(), 1);
    assert_eq!(
        ttl(counted[0]),
        (t("2026-11-30T09:00:00Z") + chrono::Duration::days(8)).timestamp(),
        "kept a day beyond the week it counts in"
    );
    assert_eq!(w.sim.create_requests().len(), 2);
}

/// R7.3: the lead total ends at 30 attempts: with 30 counted, a further request is not
/// sent, ends `suppressed` and is audited `call.suppressed_lead_cap`.
#[tokio::test]
async fn the_thirty_first_attempt_of_a_lead_is_not_made() {
    let w = World::start().await;
    w.signup.clock.set(t("2026-11-30T09:00:00Z"));
    let (status, _) = w.signup.sign_up(&form()).await;
    assert_eq!(status, 201);
    let id = w.signup.lead_of(EMAIL).await;
    // 29 attempts before (earlier weeks): the count says so.
    aws_sdk_dynamodb::Client::new(&w.signup.stack.aws)
        .put_item()
        .table_name(&w.signup.stack.table)
        .item("pk", AttributeValue::S(format!("LEAD#{id}")))
        .item("sk", AttributeValue::S("CALLATTEMPTS".into()))
        .item("kind", AttributeValue::S("call_attempt_count".into()))
        .item("attempt_count", AttributeValue::N("29".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(w.pump_lead(&id, 1).await, 0);
    assert_eq!(w.sim.create_requests().len(), 1, "the 30th is made");
    // Another request of the lead, 25 hours later.
    w.signup.clock.advance(chrono::Duration::hours(25));
    let item = w.signup.lead_item(&id).await;
    let mut next = item.clone();
    next.insert("call_request_count".into(), AttributeValue::N("2".into()));
    next.insert("call_state".into(), AttributeValue::S("requested".into()));
    aws_sdk_dynamodb::Client::new(&w.signup.stack.aws)
        .put_item()
        .table_name(&w.signup.stack.table)
        .set_item(Some(next.clone()))
        .send()
        .await
        .unwrap();
    let resp = telephony::worker::handle(&w.worker, stream_event("MODIFY", next, item, 2)).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(w.sim.create_requests().len(), 1, "no 31st attempt");
    assert_eq!(
        w.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "suppressed"
    );
    let actions = w.signup.audit_actions().await;
    assert_eq!(
        count(&actions, "call.suppressed_lead_cap"),
        1,
        "{actions:?}"
    );
}

/// R1.2, R7.2: a preferred window is validated like every field: a malformed time names
/// `call_window.from`, a window that never meets the calling hours (Sundays only) is a 422
/// naming `call_window`; neither echoes the value, and nothing is stored.
#[tokio::test]
async fn a_window_outside_the_calling_hours_is_refused_naming_the_field() {
    let w = World::start().await;
    for (window, field, code) in [
        (
            json!({"from": "7:3x", "to": "12:00"}),
            "call_window.from",
            "invalid_time",
        ),
        (
            json!({"from": "10:00", "to": "12:00", "days": ["sun"]}),
            "call_window",
            "outside_calling_hours",
        ),
        (
            json!({"from": "20:00", "to": "23:30"}),
            "call_window",
            "outside_calling_hours",
        ),
        (
            json!({"from": "10:00", "to": "12:00", "days": ["someday"]}),
            "call_window.days",
            "invalid_days",
        ),
        (json!("mornings"), "call_window", "wrong_type"),
    ] {
        let mut f = form();
        f["call_window"] = window.clone();
        let (status, body) = w.signup.sign_up(&f).await;
        assert_eq!(status, 422, "{window}");
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body}");
        assert_eq!(errors[0]["field"], field, "{body}");
        assert_eq!(errors[0]["code"], code, "{body}");
        let text = body.to_string();
        for value in ["7:3x", "someday", "mornings", "23:30"] {
            assert!(!text.contains(value), "{value} echoed: {text}");
        }
    }
    assert!(w.signup.items_of_kind("lead").await.is_empty());
}

/// R1.6, R7.2: the sign-up answer with a window is the answer without one (same members,
/// same status): the window changes nothing a stranger could read.
#[tokio::test]
async fn the_sign_up_answer_is_the_same_with_a_window() {
    let w = World::start().await;
    let (status, plain) = w.signup.sign_up(&form()).await;
    let mut f = form();
    f["email"] = json!("zweite.person@example.org");
    f["phone"] = json!("0171 5550199");
    f["call_window"] = json!({"from": "10:00", "to": "12:00"});
    let (status2, windowed) = w.signup.sign_up(&f).await;
    assert_eq!((status, status2), (201, 201));
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&plain), keys(&windowed));
    assert_eq!(plain["status"], windowed["status"]);
}

/// R7.2: a stream redelivery of a request that is waiting for its slot leaves it waiting
/// (no call, no second schedule audit), also when redelivered after the clock passed the
/// slot: only the dispatcher takes a scheduled request.
#[tokio::test]
async fn a_redelivered_scheduled_request_is_left_to_the_dispatcher() {
    let w = World::start().await;
    let id = sign_up_at(&w, "2026-11-29T11:00:00Z", None).await;
    w.signup.clock.set(t("2026-11-30T07:30:00Z"));
    assert_eq!(w.pump_lead(&id, 2).await, 0);
    assert!(w.sim.create_requests().is_empty());
    let actions = w.signup.audit_actions().await;
    assert_eq!(count(&actions, "call.scheduled"), 1);
    assert_eq!(dispatch(&w).await, 1);
    assert_eq!(w.sim.create_requests().len(), 1);
}

/// R7.2, R4.5: the call store's transitions against the emulator: a scheduled request
/// is claimed once (a second claim is `Taken`, and scheduling it again too), and nothing
/// is written for an erased subject (`Erased`).
#[tokio::test]
async fn a_scheduled_request_is_claimed_once_and_never_after_erasure() {
    use shared::adapters::calls::{CallRequestResult, CallRequests, Claim, ScheduledRequest};
    use shared::ports::{CallState, LeadStore};
    let w = World::start().await;
    let lead = sign_up_at(&w, "2026-11-25T22:40:00Z", None).await;
    let ddb = aws_sdk_dynamodb::Client::new(&w.signup.stack.aws);
    let requests = DynamoCallRequests::new(ddb.clone(), w.signup.stack.table.clone());
    let now = t("2026-11-26T07:00:00Z");
    let claim = CallRequestResult {
        lead_id: lead,
        request: 1,
        state: CallState::Placing,
        call_id: None,
        at: now,
        marker_until: now + chrono::Duration::days(30),
    };
    assert_eq!(requests.claim_request(&claim).await.unwrap(), Claim::Done);
    assert_eq!(requests.claim_request(&claim).await.unwrap(), Claim::Taken);
    let again = ScheduledRequest {
        lead_id: lead,
        request: 1,
        phone_index: "x".into(),
        due_at: now,
        at: now,
        marker_until: now + chrono::Duration::days(30),
    };
    assert_eq!(
        requests.schedule_request(&again).await.unwrap(),
        Claim::Taken
    );
    assert!(
        due_index(&w).await.is_empty(),
        "claimed: out of the due index"
    );

    // Erased: a fresh request of the subject is neither scheduled nor claimed.
    let store = shared::adapters::dynamo::DynamoLeadStore::new(
        ddb,
        w.signup.stack.table.clone(),
        w.signup.stack.key_table.clone(),
    );
    assert!(store.bury(&lead, now, false).await.unwrap());
    let fresh = ScheduledRequest {
        request: 2,
        ..again
    };
    assert_eq!(
        requests.schedule_request(&fresh).await.unwrap(),
        Claim::Erased
    );
    assert_eq!(
        requests
            .claim_request(&CallRequestResult {
                request: 2,
                ..claim
            })
            .await
            .unwrap(),
        Claim::Erased
    );
    assert!(due_index(&w).await.is_empty());
}

/// R4.4: the preferred window is part of the subject's Art. 15 export: `data.json`
/// shows it with the sign-up data as the form took it.
#[tokio::test]
async fn the_preferred_window_is_in_the_access_export() {
    let d = World::on_mail_emulator().await;
    let window = json!({"from": "17:00", "to": "19:00", "days": ["tue", "wed", "thu"]});
    sign_up_at(&d, "2026-11-30T09:00:00Z", Some(window.clone())).await;
    let (id, token) = d.verified("access", EMAIL).await;
    assert_eq!(d.pump(&id, 2).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "export_ready", "{view}");
    let files = common::dsar::unzip(&d.download(view["download_url"].as_str().unwrap()).await);
    let data: serde_json::Value = serde_json::from_slice(&files["data.json"]).unwrap();
    assert_eq!(data["subject"]["sign_up"]["call_window"], window, "{data}");
}

/// R4.4: the preferred window is part of the portable copy (`portable.json`).
#[tokio::test]
async fn the_preferred_window_is_in_the_portable_copy() {
    let d = World::on_mail_emulator().await;
    let window = json!({"from": "10:00", "to": "12:30", "days": ["mon", "fri"]});
    sign_up_at(&d, "2026-11-30T09:00:00Z", Some(window.clone())).await;
    let (id, token) = d.verified("portability", EMAIL).await;
    assert_eq!(d.pump(&id, 2).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "export_ready", "{view}");
    let files = common::dsar::unzip(&d.download(view["download_url"].as_str().unwrap()).await);
    let portable: serde_json::Value = serde_json::from_slice(&files["portable.json"]).unwrap();
    assert_eq!(portable["sign_up"]["call_window"], window, "{portable}");
}
