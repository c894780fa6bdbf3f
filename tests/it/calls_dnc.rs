//! The do-not-call list end to end (R7.1, R7.4): against the emulator and the provider
//! simulator, through the real sign-up, telephony webhook and worker, DSAR worker and
//! staff handlers. An objection survives the subject's erasure and a stranger's sign-up
//! with the number; the simulator's `objection` and `never-signed-up` calls send their
//! tool calls mid-call; hostile tool calls change nothing; staff list and lift.

use crate::common;

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::events::ApiRequest;
use harness::simulator::scenario::{CallParams, CallScript, Scenario};
use harness::simulator::webhook::WebhookEvent;
use lambda_http::Body;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::domain::LeadId;
use shared::retell::signature::sign;
use shared::Clock;

/// A tool call or event body, signed now, through the real webhook handler.
async fn post_signed(w: &World, body: &[u8]) -> (u16, Value) {
    let sig = sign(body, &SecretString::from(API_KEY.to_owned()), w.now_ms());
    let req =
        ApiRequest::post_json("/v1/telephony/retell", body).header("x-retell-signature", &sig);
    let resp = telephony::handle(&w.webhook, req.build()).await;
    let status = resp.status().as_u16();
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The worker places the lead's requested call at the simulator; `scenario` is scripted
/// for that very call (its id, numbers and metadata as the simulator created them).
async fn placed_call(w: &World, lead: &LeadId, seq: u64, scenario: Scenario) -> CallScript {
    assert_eq!(w.pump_lead(lead, seq).await, 0);
    let call_id = w.signup.lead_item(lead).await["last_call_id"]
        .as_s()
        .expect("a call was placed")
        .clone();
    let call = w.sim.call(&call_id).expect("the simulator holds the call");
    w.sim.script(
        scenario,
        CallParams::from_call(w.sim.base_url(), &call, w.sim.now_ms()),
    )
}

/// The do-not-call items; each must hold nothing but its key, kind, dates and sources.
async fn dnc_items(w: &World) -> Vec<Item> {
    let items = w.signup.items_of_kind("do_not_call").await;
    for item in &items {
        let allowed: BTreeSet<&str> = [
            "pk",
            "sk",
            "kind",
            "listed_at",
            "sources",
            "lifted_at",
            "lifted_by",
        ]
        .into();
        for name in item.keys() {
            assert!(
                allowed.contains(name.as_str()),
                "unexpected attribute {name}"
            );
        }
        assert!(item["pk"].as_s().unwrap().starts_with("DNC#"));
        assert!(!item.contains_key("ttl") && !item.contains_key("expires_at"));
    }
    items
}

fn sources(item: &Item) -> Vec<String> {
    let mut s = item["sources"].as_ss().unwrap().clone();
    s.sort();
    s
}

/// The `DNC#` key of a number (E.164), as the system computes it.
async fn dnc_pk(w: &World, e164: &str) -> String {
    use shared::ports::{IdentifierKind, KeyService};
    let keys = shared::adapters::kms::KmsKeyService::new(
        aws_sdk_kms::Client::new(&w.signup.stack.aws),
        w.signup.stack.signup_config().unwrap().data_key_id,
        w.signup.stack.signup_config().unwrap().blind_index_key_id,
    );
    let index = keys.blind_index(IdentifierKind::Phone, e164).await.unwrap();
    format!("DNC#{}", index.as_str())
}

/// No stored item holds the number in clear.
async fn assert_number_nowhere(w: &World) {
    for item in w.signup.scan().await {
        let mut values = Vec::new();
        for v in item.values() {
            flatten(v, &mut values);
        }
        for v in &values {
            for needle in [PHONE_E164, "1709876543"] {
                assert!(!contains_ci(v, needle), "the number in clear: {item:?}");
            }
        }
    }
}

/// Hands every queued request record (the system's, from tool calls) to the DSAR worker.
async fn pump_requests(w: &World, seq: u64) -> Vec<Item> {
    let requests = w.signup.items_of_kind("dsar_request").await;
    for (i, r) in requests.iter().enumerate() {
        let id = r["request_id"].as_s().unwrap();
        assert_eq!(w.pump(id, seq + i as u64).await, 0);
    }
    requests
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn status_headers_body(resp: &lambda_http::Response<Body>) -> Answer {
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = match resp.body() {
        Body::Text(t) => t.clone().into_bytes(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    (resp.status().as_u16(), headers, body)
}

/// R7.1, R4.8, R4.5: an objection lists the subject's number (blind index, date, source
/// `objection`, nothing else); the subject's erasure keeps the entry; a stranger then
/// signing up with that number gets exactly the answer (status, headers, body) someone
/// with an unlisted number gets, and only the unlisted number is called (the listed one's
/// request suppressed as `call.suppressed_do_not_call`).
#[tokio::test]
async fn an_objection_outlives_erasure_and_a_strangers_signup_places_no_call() {
    let w = World::on_mail_emulator().await;
    let lead = w.signup.subject().await;
    let (objection, _) = w.verified("objection", EMAIL).await;
    assert_eq!(w.pump(&objection, 1).await, 0);
    let (erasure, _) = w.verified("erasure", EMAIL).await;
    assert_eq!(w.pump(&erasure, 2).await, 0);
    assert_eq!(
        w.request_item(&erasure).await["outcome"].as_s().unwrap(),
        "erased"
    );
    assert!(w.signup.items_of_kind("lead").await.is_empty());

    let dnc = dnc_items(&w).await;
    assert_eq!(dnc.len(), 1, "the listing outlives the erasure");
    assert_eq!(dnc[0]["pk"].as_s().unwrap(), &dnc_pk(&w, PHONE_E164).await);
    assert_eq!(sources(&dnc[0]), ["objection"]);
    assert!(w
        .signup
        .audit_actions()
        .await
        .contains(&"dnc.listed_objection".to_owned()));
    assert_number_nowhere(&w).await;

    // A stranger types the listed number into the form; someone else signs up with a
    // number nobody listed.
    let mut listed = form();
    listed["email"] = json!("erwin.fremder@example.org");
    listed["first_name"] = json!("Erwin");
    let mut unlisted = form();
    unlisted["email"] = json!("berta.anders@example.org");
    unlisted["phone"] = json!("0171 2345678");
    let mut answers = Vec::new();
    for f in [&listed, &unlisted] {
        let bytes = serde_json::to_vec(f).unwrap();
        let resp = signup::handle(
            &w.signup.app,
            ApiRequest::post_json("/v1/signups", &bytes).build(),
        )
        .await;
        let (status, headers, body) = status_headers_body(&resp);
        // The body's `reference` is a fresh random id per sign-up; its shape is compared.
        let mut body: Value = serde_json::from_slice(&body).unwrap();
        let reference = body["reference"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(reference).is_ok(), "{reference}");
        body["reference"] = json!("<uuid>");
        answers.push((status, headers, body));
    }
    assert_eq!(answers[0].0, 201);
    assert_eq!(answers[0], answers[1], "no oracle: the same answer");

    let stranger = w.signup.lead_of("erwin.fremder@example.org").await;
    let other = w.signup.lead_of("berta.anders@example.org").await;
    assert_ne!(stranger, lead);
    assert_eq!(w.pump_lead(&stranger, 3).await, 0);
    assert_eq!(w.pump_lead(&other, 4).await, 0);
    let created = w.sim.created_calls();
    assert_eq!(created.len(), 1, "only the unlisted number is called");
    assert_eq!(created[0]["to_number"], "+491712345678");
    assert_eq!(
        w.signup.lead_item(&stranger).await["call_state"]
            .as_s()
            .unwrap(),
        "suppressed"
    );
    assert!(w
        .signup
        .audit_actions()
        .await
        .contains(&"call.suppressed_do_not_call".to_owned()));
}

/// R7.1, R7.4, R4.8: the simulator's `objection` call: mid-call the agent's
/// `record_objection` is answered 200 with a result telling the agent to end the call; the
/// number is listed (`call_objection`), the lead objects at once, the queued objection
/// request is carried out by the DSAR worker; the person's later sign-up places no call
/// (`call.suppressed_do_not_call`).
#[tokio::test]
async fn the_objection_scenario_lists_the_number_and_ends_the_call() {
    let w = World::start().await;
    let lead = w.signup.subject().await;
    let script = placed_call(&w, &lead, 1, Scenario::Objection).await;
    w.deliver(&script, "call_started").await;
    let tools = script.tool_call_bodies();
    assert_eq!(tools.len(), 2, "record_consent, then record_objection");
    let mut last = Value::Null;
    for body in &tools {
        let (status, answer) = post_signed(&w, body).await;
        assert_eq!(status, 200, "{answer}");
        last = answer;
    }
    assert!(
        last["result"].as_str().unwrap().contains("end the call"),
        "{last}"
    );
    for event in ["call_ended", "call_analyzed"] {
        w.deliver(&script, event).await;
    }

    let item = w.signup.lead_item(&lead).await;
    assert_eq!(item["objected"], AttributeValue::Bool(true));
    let dnc = dnc_items(&w).await;
    assert_eq!(dnc.len(), 1);
    assert_eq!(dnc[0]["pk"].as_s().unwrap(), &dnc_pk(&w, PHONE_E164).await);
    assert_eq!(sources(&dnc[0]), ["call_objection"]);
    let requests = pump_requests(&w, 10).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["request_type"].as_s().unwrap(), "objection");
    let id = requests[0]["request_id"].as_s().unwrap();
    assert_eq!(
        w.request_item(id).await["outcome"].as_s().unwrap(),
        "objection_recorded"
    );
    let actions = w.signup.audit_actions().await;
    for a in ["call.objection_recorded", "dnc.listed_call_objection"] {
        assert!(actions.contains(&a.to_owned()), "{a}");
    }

    // The person signs up again a day later: answered as always, no call.
    w.signup
        .clock
        .set(w.signup.clock.now() + chrono::Duration::hours(25));
    assert_eq!(w.signup.sign_up(&form()).await.0, 201);
    assert_eq!(w.pump_lead(&lead, 20).await, 0);
    assert_eq!(w.sim.created_calls().len(), 1);
    assert!(w
        .signup
        .audit_actions()
        .await
        .contains(&"call.suppressed_do_not_call".to_owned()));
}

/// R7.4, R7.1, R2.9: the simulator's `never-signed-up` call (recording consent given,
/// then "no" to the sign-up question), with the live tool call before `call_ended` and
/// after it (`call_ended` applies the "no" from its tool invocations, the late tool call
/// changes nothing more): no recording object and no transcript remain, the
/// lead is erased by the queued request, the call is deleted at the provider, the number
/// is listed (`never_signed_up`, nothing else), and a stranger's later sign-up with the
/// number places no call.
#[tokio::test]
async fn the_never_signed_up_scenario_keeps_nothing_erases_the_lead_and_lists_the_number() {
    for tool_first in [true, false] {
        let w = World::start().await;
        let lead = w.signup.subject().await;
        let script = placed_call(&w, &lead, 1, Scenario::NeverSignedUp).await;
        w.deliver(&script, "call_started").await;
        let tools = script.tool_call_bodies();
        assert_eq!(tools.len(), 2, "record_consent, then confirm_signup");
        let play_tools = || async {
            for body in &tools {
                let (status, answer) = post_signed(&w, body).await;
                assert_eq!(status, 200, "{answer}");
            }
        };
        if tool_first {
            play_tools().await;
            w.deliver(&script, "call_ended").await;
        } else {
            // `call_ended` first: it carries the "no" among its tool invocations and
            // applies it itself; the late live tool calls change nothing more.
            w.deliver(&script, "call_ended").await;
            let call = w
                .signup
                .item(
                    shared::adapters::calls::call_pk(script.call_id()),
                    shared::adapters::calls::CALL_SK,
                )
                .await
                .unwrap();
            assert!(call.contains_key("signup_denied_at"));
            assert_eq!(call["recording_state"].as_s().unwrap(), "not_kept");
            play_tools().await;
        }
        w.deliver(&script, "call_analyzed").await;
        assert_eq!(w.pump_call(script.call_id(), 2).await, 0);
        // Nothing of the call's content is kept, even before the erasure runs.
        assert_eq!(
            w.signup.versions("RecordingsBucket", "transcripts/").await,
            0,
            "tool_first={tool_first}"
        );

        let requests = pump_requests(&w, 10).await;
        assert_eq!(requests.len(), 1, "tool_first={tool_first}");
        assert_eq!(requests[0]["request_type"].as_s().unwrap(), "erasure");
        assert!(w.signup.items_of_kind("lead").await.is_empty());
        assert!(w.signup.items_of_kind("call").await.is_empty());
        for prefix in ["recordings/", "transcripts/"] {
            assert_eq!(
                w.signup.versions("RecordingsBucket", prefix).await,
                0,
                "{prefix} tool_first={tool_first}"
            );
        }
        assert!(
            w.sim.deleted_calls().contains(&script.call_id().to_owned()),
            "the call is deleted at the provider"
        );
        let dnc = dnc_items(&w).await;
        assert_eq!(dnc.len(), 1);
        assert_eq!(sources(&dnc[0]), ["never_signed_up"]);
        assert_number_nowhere(&w).await;

        let mut stranger = form();
        stranger["email"] = json!("erwin.fremder@example.org");
        assert_eq!(w.signup.sign_up(&stranger).await.0, 201);
        let stranger = w.signup.lead_of("erwin.fremder@example.org").await;
        assert_eq!(w.pump_lead(&stranger, 30).await, 0);
        // The first call was deleted at the provider; no second one was asked for.
        assert_eq!(w.sim.create_requests().len(), 1, "tool_first={tool_first}");
        assert!(w
            .signup
            .audit_actions()
            .await
            .contains(&"call.suppressed_do_not_call".to_owned()));
    }
}

/// R7.1: hostile tool calls store nothing (every item compared before and after): an
/// unknown call (404), a call whose body names another subject (409), malformed
/// arguments or no call id (400), an unsigned one (401). A replayed `record_objection`
/// lists once, audits once and queues one request.
#[tokio::test]
async fn hostile_tool_calls_change_nothing_and_a_replay_changes_nothing_more() {
    let w = World::start().await;
    let lead = w.signup.subject().await;
    let script = placed_call(&w, &lead, 1, Scenario::Objection).await;
    w.deliver(&script, "call_started").await;
    let call_id = script.call_id();
    let before = w.signup.by_key().await;

    let cases = [
        (
            json!({"name": "record_objection", "call": {"call_id": "call_0123456789abcdef0123456789abcdef", "metadata": {"lead_id": lead.to_string()}}, "args": {}}),
            404,
        ),
        (
            json!({"name": "confirm_signup", "call": {"call_id": call_id, "metadata": {"lead_id": LeadId::new().to_string()}}, "args": {"confirmed": false}}),
            409,
        ),
        (
            json!({"name": "record_objection", "call": {"call_id": call_id, "metadata": {"lead_id": LeadId::new().to_string()}}, "args": {}}),
            409,
        ),
        (
            json!({"name": "record_objection", "call": {"call_id": call_id}, "args": "stop"}),
            400,
        ),
        (
            json!({"name": "confirm_signup", "call": {"call_id": call_id}, "args": {"confirmed": "nein"}}),
            400,
        ),
        (
            json!({"name": "confirm_signup", "call": {}, "args": {"confirmed": false}}),
            400,
        ),
    ];
    for (body, expected) in cases {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, answer) = post_signed(&w, &bytes).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let objection = serde_json::to_vec(
        &json!({"name": "record_objection", "call": {"call_id": call_id}, "args": {}}),
    )
    .unwrap();
    let req = ApiRequest::post_json("/v1/telephony/retell", &objection)
        .header("x-retell-signature", "v=1,d=00");
    assert_eq!(
        telephony::handle(&w.webhook, req.build()).await.status(),
        401
    );
    assert_eq!(w.signup.by_key().await, before, "nothing was written");

    for _ in 0..3 {
        assert_eq!(post_signed(&w, &objection).await.0, 200);
    }
    assert_eq!(dnc_items(&w).await.len(), 1);
    assert_eq!(w.signup.items_of_kind("dsar_request").await.len(), 1);
    let listed = w
        .signup
        .audit_actions()
        .await
        .into_iter()
        .filter(|a| a == "dnc.listed_call_objection")
        .count();
    assert_eq!(listed, 1);
}

/// R7.1, R4.10: staff list a number and lift the listing through the IAM-authorised
/// staff route: blind-indexed (the number nowhere in clear), idempotent, audited with
/// the staff principal as actor; a caller outside the allow-list is refused and lists
/// nothing; an invalid number is refused.
#[tokio::test]
async fn staff_list_and_lift_a_number() {
    let w = World::start().await;
    let phone = json!({"phone": PHONE});
    let (status, body) = w
        .call(
            ApiRequest::post_json(
                "/v1/admin/do-not-call",
                &serde_json::to_vec(&phone).unwrap(),
            )
            .as_staff("arn:aws:sts::123456789012:assumed-role/intern/eve"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(dnc_items(&w).await.is_empty());
    let (status, _) = w
        .staff_post("/v1/admin/do-not-call", &json!({"phone": "keine Nummer"}))
        .await;
    assert!(status == 400 || status == 422, "{status}");

    let (status, body) = w.staff_post("/v1/admin/do-not-call", &phone).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    let (_, again) = w.staff_post("/v1/admin/do-not-call", &phone).await;
    assert_eq!(again["changed"], false);
    let dnc = dnc_items(&w).await;
    assert_eq!(dnc.len(), 1);
    assert_eq!(dnc[0]["pk"].as_s().unwrap(), &dnc_pk(&w, PHONE_E164).await);
    assert_eq!(sources(&dnc[0]), ["staff"]);

    let (status, body) = w.staff_post("/v1/admin/do-not-call/lift", &phone).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    let dnc = dnc_items(&w).await;
    assert_eq!(dnc[0]["lifted_by"].as_s().unwrap(), "staff");
    assert_eq!(sources(&dnc[0]), ["staff"], "the source is kept");

    let audits = w.signup.items_of_kind("audit").await;
    for action in ["dnc.listed_staff", "dnc.lifted_staff"] {
        let mine: Vec<_> = audits
            .iter()
            .filter(|a| a["action"].as_s().unwrap() == action)
            .collect();
        assert_eq!(mine.len(), 1, "{action}");
        assert_eq!(mine[0]["actor"].as_s().unwrap(), common::dsar::STAFF);
    }
    assert_number_nowhere(&w).await;
}

/// R7.1: fresh consent proven from the number: in an INBOUND call from the listed number
/// the person confirms the sign-up (`confirm_signup` true) and the listing is lifted
/// (audited, its source kept); the same confirmation in an outbound call lifts nothing.
#[tokio::test]
async fn an_inbound_confirmation_from_the_listed_number_lifts_the_listing() {
    let w = World::start().await;
    let lead = w.signup.subject().await;
    let script = placed_call(&w, &lead, 1, Scenario::Objection).await;
    w.deliver(&script, "call_started").await;
    let objection = serde_json::to_vec(
        &json!({"name": "record_objection", "call": {"call_id": script.call_id()}, "args": {}}),
    )
    .unwrap();
    assert_eq!(post_signed(&w, &objection).await.0, 200);
    let confirm = |call_id: &str| {
        serde_json::to_vec(&json!({"name": "confirm_signup", "call": {"call_id": call_id, "agent_version": 3}, "args": {"confirmed": true}}))
            .unwrap()
    };
    // Outbound: we placed it; it proves nothing about the number.
    assert_eq!(post_signed(&w, &confirm(script.call_id())).await.0, 200);
    let dnc = dnc_items(&w).await;
    assert!(!dnc[0].contains_key("lifted_at"));
    let call = w
        .signup
        .item(
            shared::adapters::calls::call_pk(script.call_id()),
            shared::adapters::calls::CALL_SK,
        )
        .await
        .unwrap();
    let evidence = call["signup_confirmed"].as_m().unwrap();
    assert_eq!(evidence["agent_version"].as_s().unwrap(), "3");

    // The person calls us from that number.
    let inbound_id = "call_feedbeeffeedbeeffeedbeeffeedbeef";
    let inbound = json!({
        "call_id": inbound_id, "call_type": "phone_call", "agent_id": "agent_polly",
        "agent_version": 3, "call_status": "ongoing", "direction": "inbound",
        "from_number": PHONE_E164, "to_number": "+4930000000",
        "start_timestamp": w.now_ms() - 30_000,
    });
    let started = WebhookEvent::new("call_started", &inbound).unwrap();
    assert_eq!(post_signed(&w, &started.body).await.0, 204);
    let (status, answer) = post_signed(&w, &confirm(inbound_id)).await;
    assert_eq!(status, 200, "{answer}");
    let dnc = dnc_items(&w).await;
    assert_eq!(dnc[0]["lifted_by"].as_s().unwrap(), "inbound_confirmation");
    assert_eq!(sources(&dnc[0]), ["call_objection"]);
    assert!(w
        .signup
        .audit_actions()
        .await
        .contains(&"dnc.lifted_inbound_confirmation".to_owned()));
}

/// R7.1: the retention sweep, run when the subject's data is long due, erases the
/// subject and leaves the do-not-call entry of its number exactly as it was (the entry has
/// no TTL and is in no expiry index).
#[tokio::test]
async fn the_retention_sweep_erases_the_subject_but_keeps_the_listing() {
    let w = World::start().await;
    let lead = w.signup.subject().await;
    let script = placed_call(&w, &lead, 1, Scenario::Objection).await;
    w.deliver(&script, "call_started").await;
    let objection = serde_json::to_vec(
        &json!({"name": "record_objection", "call": {"call_id": script.call_id()}, "args": {}}),
    )
    .unwrap();
    assert_eq!(post_signed(&w, &objection).await.0, 200);
    let before = dnc_items(&w).await;
    assert_eq!(before.len(), 1);

    let app = &w.signup;
    let config = app.stack.config_for("TelephonyWorkerFunction").unwrap();
    let sweeper = shared::sweep::Sweeper::new(
        aws_sdk_dynamodb::Client::new(&app.stack.aws),
        app.stack.table.clone(),
        app.stack.key_table.clone(),
        shared::adapters::s3::BlobStore::new(
            harness::s3_client(&app.stack.aws),
            config.recordings_bucket.unwrap(),
            config.data_key_arn,
        ),
    );
    let later = app.clock.now() + chrono::Duration::days(4 * 366);
    let report = sweeper
        .run(
            shared::sweep::SweepRequest {
                dry_run: false,
                now: later,
            },
            std::time::Duration::from_secs(600),
        )
        .await
        .unwrap();
    assert!(report.complete);
    assert!(w.signup.items_of_kind("lead").await.is_empty(), "swept");
    assert_eq!(dnc_items(&w).await, before, "the listing is untouched");
}

/// R5.5: the do-not-call flows with known personal data (the never-signed-up call with
/// its tool calls, the erasure it queues, a hostile tool call, a staff listing with the
/// number in the body, a suppressed call request) log none of it, while they were logged.
#[tokio::test]
async fn the_do_not_call_flows_log_no_personal_data() {
    let (logs, _guard) = harness::logs::LogCapture::start();
    let w = World::start().await;
    let lead = w.signup.subject().await;
    let script = placed_call(&w, &lead, 1, Scenario::NeverSignedUp).await;
    w.deliver(&script, "call_started").await;
    for body in script.tool_call_bodies() {
        assert_eq!(post_signed(&w, &body).await.0, 200);
    }
    let other = json!({"name": "record_objection", "call": {"call_id": script.call_id(), "to_number": PHONE_E164, "metadata": {"lead_id": LeadId::new().to_string()}}, "args": {}});
    assert_eq!(
        post_signed(&w, &serde_json::to_vec(&other).unwrap())
            .await
            .0,
        409
    );
    pump_requests(&w, 10).await;
    assert_eq!(
        w.staff_post("/v1/admin/do-not-call", &json!({"phone": PHONE}))
            .await
            .0,
        200
    );
    let mut stranger = form();
    stranger["email"] = json!("erwin.fremder@example.org");
    assert_eq!(w.signup.sign_up(&stranger).await.0, 201);
    let stranger = w.signup.lead_of("erwin.fremder@example.org").await;
    assert_eq!(w.pump_lead(&stranger, 30).await, 0);

    let text = logs.text();
    for line in [
        "number listed as do-not-call",
        "request queued for the DSAR worker",
        "tool call naming another subject than the call refused",
        "number on the do-not-call list; no call",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    logs.assert_free_of(&[
        FIRST,
        LAST,
        EMAIL,
        "erwin.fremder",
        PHONE,
        PHONE_E164,
        "1709876543",
    ]);
}

/// R7.4, R7.1: the `never-signed-up` call whose live tool calls never reached us: the
/// `call_ended` webhook applies the "no" from the call's tool invocations: no transcript
/// kept, the number listed (`never_signed_up`), the erasure request queued.
#[tokio::test]
async fn a_lost_never_signed_up_tool_call_is_applied_from_the_transcript() {
    let w = World::start().await;
    let lead = w.signup.subject().await;
    let script = placed_call(&w, &lead, 1, Scenario::NeverSignedUp).await;
    for event in ["call_started", "call_ended", "call_analyzed"] {
        w.deliver(&script, event).await;
    }
    assert_eq!(
        w.signup.versions("RecordingsBucket", "transcripts/").await,
        0
    );
    let call = w
        .signup
        .item(
            shared::adapters::calls::call_pk(script.call_id()),
            shared::adapters::calls::CALL_SK,
        )
        .await
        .unwrap();
    assert!(!call.contains_key("transcript_key") && !call.contains_key("sealed_recording_url"));
    assert_eq!(call["recording_state"].as_s().unwrap(), "not_kept");
    let dnc = dnc_items(&w).await;
    assert_eq!(sources(&dnc[0]), ["never_signed_up"]);
    let requests = w.signup.items_of_kind("dsar_request").await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["request_type"].as_s().unwrap(), "erasure");
}
