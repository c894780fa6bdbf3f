//! The stream worker places the outbound call for a requested lead (R1.5, R2.12) against
//! the emulator and the provider simulator: payload, idempotency under redelivery, the
//! per-number attempt limit (R1.6), provider outages (retried through the stream; a
//! dead-lettered request replayed by `make redrive`'s code) and refusals.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use harness::events::stream_event;
use harness::simulator::Operation;
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;

/// Signs up `email` / `phone`, then hands the lead's INSERT record to the worker.
async fn sign_up_and_deliver(w: &World, email: &str, phone: &str) -> (LeadId, usize) {
    let mut f = form();
    f["email"] = serde_json::json!(email);
    f["phone"] = serde_json::json!(phone);
    let (status, _) = w.signup.sign_up(&f).await;
    assert_eq!(status, 201);
    let id = w.signup.lead_of(email).await;
    (id, w.pump_lead(&id, 1).await)
}

/// R1.5, R2.12: a stored lead gets one call: `create-phone-call` with the configured
/// `from_number` and agent, the lead's number in E.164, `metadata.lead_id`, the first name
/// as a dynamic variable and `data_storage_setting` = `basic_attributes_only`; a
/// redelivered or unrelated stream record places no second call.
#[tokio::test]
async fn a_requested_lead_gets_one_call_with_the_documented_payload() {
    let s = World::start().await;
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 0);

    let created = s.sim.create_requests();
    assert_eq!(created.len(), 1);
    let body = &created[0].body;
    assert_eq!(body["to_number"], PHONE_E164);
    assert_eq!(body["from_number"], "+4930000000");
    assert_eq!(body["override_agent_id"], "agent-not-configured");
    assert_eq!(body["metadata"]["lead_id"], id.to_string());
    assert_eq!(body["retell_llm_dynamic_variables"]["first_name"], FIRST);
    assert_eq!(
        body["agent_override"]["data_storage_setting"],
        "basic_attributes_only"
    );
    let item = s.signup.lead_item(&id).await;
    assert_eq!(item["call_state"].as_s().unwrap(), "placed");
    assert!(item.contains_key("last_call_id"));

    // The stream redelivers the same record: no second call.
    let resp = telephony::worker::handle(
        &s.worker,
        stream_event("INSERT", item.clone(), Default::default(), 1),
    )
    .await;
    assert!(resp.batch_item_failures.is_empty());
    // A change that is not a new request (the worker's own update) places nothing.
    let mut older = item.clone();
    older.insert("call_state".into(), AttributeValue::S("requested".into()));
    telephony::worker::handle(&s.worker, stream_event("MODIFY", item, older, 2)).await;
    assert_eq!(s.sim.created_calls().len(), 1);
}

/// R3 (phone-consent proof, §7a UWG): the call placed joins the consent proof (its call
/// id) and the proof lives 5 years from that use, not from the grant (before the fix the
/// proof recorded no call and kept its sign-up date).
#[tokio::test]
async fn the_placed_call_joins_the_consent_proof_and_moves_its_date_to_five_years_after_it() {
    use shared::Clock;
    let s = World::start().await;
    let given = s.signup.clock.now();
    let mut f = form();
    f["email"] = serde_json::json!(EMAIL);
    f["phone"] = serde_json::json!(PHONE);
    assert_eq!(s.signup.sign_up(&f).await.0, 201);
    let id = s.signup.lead_of(EMAIL).await;
    let used = given + chrono::Duration::hours(5);
    s.signup.clock.set(used);
    assert_eq!(s.pump_lead(&id, 1).await, 0);

    let call_id = s.signup.lead_item(&id).await["last_call_id"]
        .as_s()
        .unwrap()
        .clone();
    let proofs = s.signup.items_of_kind("phone_consent").await;
    assert_eq!(proofs.len(), 1);
    let proof = &proofs[0];
    assert_eq!(proof["call_ids"], AttributeValue::Ss(vec![call_id]));
    let due = shared::domain::RetentionClass::PhoneConsentProof
        .due_at(used)
        .unwrap();
    assert_eq!(
        proof["exp_at"],
        AttributeValue::N(due.timestamp().to_string())
    );
    assert_eq!(
        proof["ttl"],
        AttributeValue::N(
            (due + shared::domain::retention::TTL_GRACE)
                .timestamp()
                .to_string()
        )
    );
    assert_eq!(
        proof["exp_bucket"].as_s().unwrap(),
        &shared::domain::retention::expiry_bucket(
            shared::domain::RetentionClass::PhoneConsentProof,
            due
        )
    );
}

/// R1.5: a provider outage (503) fails the stream record, so Lambda retries it; the retry
/// places exactly one call and the lead's call state goes from `requested` to `placed`.
#[tokio::test]
async fn a_provider_outage_is_retried_through_the_stream_and_the_retry_places_one_call() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 1, 503);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 1, "the record comes back for a retry");
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "requested"
    );

    // Lambda retries the record.
    assert_eq!(s.pump_lead(&id, 1).await, 0);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
    assert_eq!(s.sim.created_calls().len(), 1);
}

/// R1.5: a permanent refusal (400) is not retried; the request is recorded as `failed`,
/// not silently dropped.
#[tokio::test]
async fn a_refusal_by_the_provider_marks_the_request_failed() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 1, 400);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 0, "a permanent refusal is not retried");
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "failed"
    );
}

/// Delivers call request `n` of the lead as the stream would after a sign-up asked for it
/// (the lead item with `call_request_count = n` and `call_state = requested`, its old image
/// with `n - 1`), bypassing the sign-up's 24-hour cooldown so that the worker's own limit
/// per number is what decides. Returns the batch failures.
async fn request_call(w: &World, id: &LeadId, n: u32, seq: u64) -> usize {
    aws_sdk_dynamodb::Client::new(&w.signup.stack.aws)
        .update_item()
        .table_name(&w.signup.stack.table)
        .key("pk", AttributeValue::S(lead_pk(id)))
        .key("sk", AttributeValue::S(LEAD_SK.into()))
        .update_expression("SET call_request_count = :n, call_state = :r")
        .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
        .expression_attribute_values(":r", AttributeValue::S("requested".into()))
        .send()
        .await
        .unwrap();
    let item = w.signup.lead_item(id).await;
    let mut before = item.clone();
    before.insert(
        "call_request_count".into(),
        AttributeValue::N((n - 1).to_string()),
    );
    let resp =
        telephony::worker::handle(&w.worker, stream_event("MODIFY", item, before, seq)).await;
    resp.batch_item_failures.len()
}

/// The number's attempts that count against its limit (not taken back).
async fn counted_attempts(w: &World) -> usize {
    w.signup
        .items_of_kind("call_attempt")
        .await
        .iter()
        .filter(|i| !i.contains_key("released_at"))
        .count()
}

/// R1.6: attempts that may have rung count per number over a sliding 24 h: three call
/// requests whose create call's answer was lost (500: the call may exist) use up the
/// number's day, a fourth request is not sent but ends `suppressed`, audited
/// `call.suppressed_rate_limit`; a request a day later is placed again.
#[tokio::test]
async fn at_most_three_attempts_per_number_in_24_hours() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 3, 500);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 1, "a lost answer fails the record");
    assert_eq!(request_call(&s, &id, 2, 10).await, 1);
    assert_eq!(request_call(&s, &id, 3, 11).await, 1);
    assert_eq!(s.sim.create_requests().len(), 3);
    assert_eq!(counted_attempts(&s).await, 3);

    assert_eq!(
        request_call(&s, &id, 4, 12).await,
        0,
        "suppressed, not retried"
    );
    assert_eq!(s.sim.create_requests().len(), 3, "no fourth attempt");
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "suppressed"
    );
    let audits = s.signup.audit_actions().await;
    assert_eq!(
        audits
            .iter()
            .filter(|a| *a == "call.suppressed_rate_limit")
            .count(),
        1,
        "{audits:?}"
    );

    // Two days later (Monday: no calls on Sundays, R7.2) the attempts are older than
    // 24 h: the next request is placed.
    s.signup
        .clock
        .advance(chrono::Duration::hours(48) + chrono::Duration::minutes(1));
    assert_eq!(request_call(&s, &id, 5, 13).await, 0);
    assert_eq!(s.sim.create_requests().len(), 4);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
}

/// R1.5, R1.6: an outage longer than the number's three attempts loses no call: each
/// create call the provider refused (503: nothing rang) takes its attempt back, so the
/// stream's retries go on (six refused deliveries here) and the seventh places the call,
/// with exactly one attempt counted against the number.
#[tokio::test]
async fn an_outage_longer_than_three_attempts_loses_no_call() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 6, 503);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 1);
    for seq in 2..7 {
        assert_eq!(
            s.pump_lead(&id, seq).await,
            1,
            "delivery {seq} fails for a retry"
        );
        assert_eq!(
            counted_attempts(&s).await,
            0,
            "a refused attempt is taken back"
        );
    }
    assert_eq!(s.pump_lead(&id, 7).await, 0);
    assert_eq!(s.sim.create_requests().len(), 7);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
    assert_eq!(counted_attempts(&s).await, 1);
    let attempts = s.signup.items_of_kind("call_attempt").await;
    assert!(
        attempts.iter().all(|i| i.contains_key("ttl")),
        "a taken-back attempt keeps its TTL"
    );
}

/// R2.10, R4.7, R4.8: a restricted or objecting subject's call request places no call at
/// the provider; the request ends `suppressed`.
#[tokio::test]
async fn restricted_or_objecting_subjects_get_no_call() {
    for flag in ["restricted", "objected"] {
        let s = World::start().await;
        let mut f = form();
        f["email"] = serde_json::json!(EMAIL);
        s.signup.sign_up(&f).await;
        let id = s.signup.lead_of(EMAIL).await;
        // What the data-subject-rights functions write (R4.7, R4.8).
        aws_sdk_dynamodb::Client::new(&s.signup.stack.aws)
            .update_item()
            .table_name(&s.signup.stack.table)
            .key("pk", AttributeValue::S(lead_pk(&id)))
            .key("sk", AttributeValue::S(LEAD_SK.into()))
            .update_expression("SET #f = :t")
            .expression_attribute_names("#f", flag)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .unwrap();
        assert_eq!(s.pump_lead(&id, 1).await, 0);
        assert!(s.sim.create_requests().is_empty(), "{flag}: no call placed");
        assert_eq!(
            s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
            "suppressed",
            "{flag}"
        );
    }
}

/// R1.5: a call request whose stream record failed every delivery reaches the telephony
/// dead-letter queue as Lambda's on-failure record; `make redrive`'s replay (the real
/// `Redrive` over the emulator's stream) touches the lead, the stream delivers it again
/// and exactly one call is placed. Until the replay the request stays `requested`.
#[tokio::test]
async fn a_dead_lettered_call_request_is_placed_once_by_the_redrive() {
    let s = World::start().await;
    s.sim.fail_next(Operation::CreateCall, 1, 503);
    let (id, failures) = sign_up_and_deliver(&s, EMAIL, PHONE).await;
    assert_eq!(failures, 1);
    // The stream gave up on the record: Lambda sends its pointer to the queue.
    let (stream_arn, shard, sequence) = s.signup.stream_pointer(&lead_pk(&id), LEAD_SK).await;
    let stack = &s.signup.stack;
    let queue = stack.queues["TelephonyDeadLetterQueue"].0.clone();
    let pointer = serde_json::json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": shard, "startSequenceNumber": sequence, "endSequenceNumber": sequence,
            "batchSize": 1, "streamArn": stream_arn
        }
    });
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    sqs.send_message()
        .queue_url(&queue)
        .message_body(pointer.to_string())
        .send()
        .await
        .unwrap();
    let before = s.signup.lead_item(&id).await;
    assert_eq!(before["call_state"].as_s().unwrap(), "requested");
    assert!(s.sim.created_calls().is_empty());

    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let report = shared::adapters::deadletter::Redrive {
        sqs: sqs.clone(),
        ddb: ddb.clone(),
        streams: aws_sdk_dynamodbstreams::Client::new(&stack.aws),
        table: stack.table.clone(),
        requests: std::sync::Arc::new(shared::adapters::dsar::DsarStore::new(
            ddb,
            stack.table.clone(),
            stack.key_table.clone(),
        )),
        actor: "operator-redrive".into(),
    }
    .run(&queue)
    .await;
    assert_eq!(
        (report.replayed, report.items_touched, report.failed),
        (1, 1, 0),
        "{report:?}"
    );

    // The touch is a MODIFY of the lead: the worker places the call, once.
    let touched = s.signup.lead_item(&id).await;
    assert!(touched.contains_key("redriven_at"));
    let event = stream_event("MODIFY", touched, before, 9);
    let resp = telephony::worker::handle(&s.worker, event.clone()).await;
    assert!(resp.batch_item_failures.is_empty());
    telephony::worker::handle(&s.worker, event).await;
    assert_eq!(s.sim.created_calls().len(), 1);
    assert_eq!(
        s.signup.lead_item(&id).await["call_state"].as_s().unwrap(),
        "placed"
    );
    let left = sqs
        .receive_message()
        .queue_url(&queue)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert!(
        left.messages().is_empty(),
        "the replayed message is deleted"
    );
}
