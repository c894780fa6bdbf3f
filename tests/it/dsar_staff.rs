//! The staff routes in their own function (R4.10, R4.11, R5.4): only principals in the
//! configured allow-list are admitted, a refusal is audited with the caller's principal,
//! every staff action is audited with the principal ARN, and the public function does not
//! serve the staff paths at all.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::dsar::*;
use common::*;
use harness::events::{stream_event, ApiRequest};
use harness::logs::LogCapture;
use serde_json::{json, Value};
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;

type Item = HashMap<String, AttributeValue>;

/// A session of a role that is not in the allow-list.
const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/polly-developer/eve";

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

async fn audit(d: &World) -> Vec<Item> {
    d.signup.items_of_kind("audit").await
}

/// The actions audited with `actor`.
async fn actions_of(d: &World, actor: &str) -> Vec<String> {
    audit(d)
        .await
        .iter()
        .filter(|a| s(a, "actor") == Some(actor))
        .filter_map(|a| s(a, "action").map(str::to_owned))
        .collect()
}

/// Every byte of every item, for "is this value stored anywhere".
async fn stored_bytes(d: &World) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for item in d.signup.scan().await {
        for (k, v) in item {
            out.push(k.into_bytes());
            flatten(&v, &mut out);
        }
    }
    out
}

/// A staff function admitting only `allowed`, on the same stack.
fn staff_admitting(d: &World, allowed: &[&str]) -> ::dsar::staff::StaffApp {
    let mut config = d.signup.stack.config_for("DsarStaffFunction").unwrap();
    config.staff_principal_arns = allowed.iter().map(|a| (*a).to_owned()).collect();
    ::dsar::staff::StaffApp::from_aws(
        config,
        &d.signup.stack.aws,
        Arc::new(d.signup.clock.clone()),
    )
    .unwrap()
}

/// R4.10, R4.11, R5.4: a caller outside the allow-list gets 403 problem+json, nothing
/// happens, and the refusal is audited with that caller's principal ARN and nothing of the
/// request's body.
#[tokio::test]
async fn a_principal_outside_the_allow_list_is_refused_and_the_refusal_audited() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator().await;
    let (id, token) = d.verified("erasure", &unique_email()).await;
    let marker = "Begruendung-Zwetschge-7731";
    let body = serde_json::to_vec(&json!({ "reasons": [marker] })).unwrap();
    let path = format!("/v1/admin/dsar/{id}/deny");

    let resp = ::dsar::staff::handle(
        &d.staff,
        ApiRequest::post_json(&path, &body)
            .as_staff(OUTSIDER)
            .build(),
    )
    .await;

    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["content-type"],
        shared::http::PROBLEM_JSON,
        "problem+json"
    );
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "in_progress", "the denial did not happen");
    assert_eq!(actions_of(&d, OUTSIDER).await, ["staff.refused"]);
    assert!(
        !stored_bytes(&d)
            .await
            .iter()
            .any(|b| contains_ci(b, marker)),
        "nothing of the refused request's body is stored"
    );
    // The same role name in another account, and a caller API Gateway named no one: also
    // refused, also audited.
    let foreign = "arn:aws:sts::210987654321:assumed-role/polly-staff/anna";
    assert_eq!(
        d.call(ApiRequest::get("/v1/admin/dsar").as_staff(foreign))
            .await
            .0,
        403
    );
    assert_eq!(d.call(ApiRequest::get("/v1/admin/dsar")).await.0, 403);
    assert_eq!(actions_of(&d, foreign).await, ["staff.refused"]);
    assert_eq!(
        actions_of(&d, ::dsar::staff::UNAUTHENTICATED).await,
        ["staff.refused"]
    );
    // The principal goes to the audit trail, not to the logs.
    logs.assert_free_of(&["polly-developer/eve", marker]);
}

/// R4.10, R5.4: an allow-listed role admits any session of it (API Gateway names the
/// caller `arn:aws:sts::<account>:assumed-role/<role>/<session>`, also for a role with a
/// path), and an allow-listed user exactly that user; the actions are audited with the
/// caller's ARN.
#[tokio::test]
async fn an_assumed_role_session_of_an_allowed_role_is_admitted() {
    let d = World::on_mail_emulator().await;
    let role_with_path = "arn:aws:iam::123456789012:role/privacy/polly-dpo";
    let user = "arn:aws:iam::123456789012:user/anna";
    let staff = staff_admitting(&d, &[role_with_path, user]);
    let session = "arn:aws:sts::123456789012:assumed-role/polly-dpo/anna.schmidt";

    let list = |caller: &'static str| {
        ::dsar::staff::handle(
            &staff,
            ApiRequest::get("/v1/admin/dsar").as_staff(caller).build(),
        )
    };
    assert_eq!(list(session).await.status(), 200);
    assert_eq!(list(user).await.status(), 200);
    // The tests' default staff role is not in this list.
    assert_eq!(list(STAFF).await.status(), 403);
    assert_eq!(
        list("arn:aws:iam::123456789012:role/privacy/polly-dpo")
            .await
            .status(),
        403,
        "API Gateway never names a role itself as the caller"
    );

    assert_eq!(actions_of(&d, session).await, ["dsar.listed"]);
    assert_eq!(actions_of(&d, user).await, ["dsar.listed"]);
    assert_eq!(actions_of(&d, STAFF).await, ["staff.refused"]);
}

/// R4.10, R5.4: the public function does not serve the staff paths: 404 for every one,
/// even with an IAM principal, and nothing happens.
#[tokio::test]
async fn the_public_function_answers_404_for_admin_paths() {
    let d = World::on_mail_emulator().await;
    let (id, token) = d.verified("access", &unique_email()).await;
    d.signup.sign_up(&form()).await;
    let lead = d.signup.lead_of(EMAIL).await.to_string();
    let deny = serde_json::to_vec(&json!({"reasons": ["x"]})).unwrap();
    let deny_path = format!("/v1/admin/dsar/{id}/deny");
    let subject_path = format!("/v1/admin/subjects/{lead}");
    let contracts_path = format!("/v1/admin/subjects/{lead}/contracts");
    let mut requests = vec![
        ApiRequest::get("/v1/admin/dsar").query("status=open"),
        ApiRequest::post_json(&deny_path, &deny),
        ApiRequest::get(&subject_path),
        ApiRequest::post_json(&contracts_path, b"{}"),
        ApiRequest::post_json("/v1/admin/analytics-exports", b"{}"),
    ];
    requests
        .iter_mut()
        .for_each(|r| r.iam_user_arn = Some(STAFF));

    for req in requests {
        let path = req.path;
        let (status, problem) = d.call_public(req).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }

    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "in_progress");
    assert!(
        actions_of(&d, STAFF).await.is_empty(),
        "no staff action happened"
    );
}

/// R4.11, R4.10: every staff action leaves an audit item whose actor is the caller's
/// principal ARN: listing, extending, verifying an identity, denying, viewing a subject,
/// recording and ending a contract, lifting a restriction, the analytics export.
#[tokio::test]
async fn every_staff_action_is_audited_with_the_principal_arn() {
    let d = World::on_mail_emulator().await;
    let (id, _) = d.verified("access", &unique_email()).await;
    let phone_only = d
        .submit(&json!({"type": "access", "phone": "0171 2345678"}))
        .await;
    let phone_id = phone_only.1["request_id"].as_str().unwrap().to_owned();
    d.signup.sign_up(&form()).await;
    let lead = d.signup.lead_of(EMAIL).await.to_string();
    let subject = format!("/v1/admin/subjects/{lead}");
    // The subject restricted processing (arranged directly; the request flow is tested in
    // dsar_rights.rs).
    aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .update_item()
        .table_name(&d.signup.stack.table)
        .key(
            "pk",
            AttributeValue::S(lead_pk(&LeadId::parse(&lead).unwrap())),
        )
        .key("sk", AttributeValue::S(LEAD_SK.into()))
        .update_expression("SET restricted = :t ADD version :one")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();

    let ok = |r: (u16, Value), what: &str| assert!(r.0 < 300, "{what}: {} {}", r.0, r.1);
    ok(
        d.call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
            .await,
        "list",
    );
    ok(
        d.staff_post(
            &format!("/v1/admin/dsar/{id}/extend"),
            &json!({"months": 1, "reason": "Umfang"}),
        )
        .await,
        "extend",
    );
    ok(
        d.staff_post(
            &format!("/v1/admin/dsar/{phone_id}/verify-identity"),
            &json!({}),
        )
        .await,
        "verify identity",
    );
    ok(
        d.staff_post(
            &format!("/v1/admin/dsar/{id}/deny"),
            &json!({"reasons": ["Offenkundig unbegründet"]}),
        )
        .await,
        "deny",
    );
    ok(
        d.call(ApiRequest::get(&subject).as_staff(STAFF)).await,
        "view",
    );
    let contract = d
        .staff_post(
            &format!("{subject}/contracts"),
            &json!({"start": "2026-12-01T00:00:00Z", "end": "2027-12-31T00:00:00Z", "records": "books"}),
        )
        .await;
    ok(contract.clone(), "record contract");
    let contract_id = contract.1["contract_id"].as_str().unwrap();
    ok(
        d.staff_post(
            &format!("{subject}/contracts/{contract_id}/end"),
            &json!({"end": "2027-03-15T00:00:00Z", "records": "books"}),
        )
        .await,
        "end contract",
    );
    ok(
        d.staff_post(&format!("{subject}/lift-restriction"), &json!({}))
            .await,
        "lift restriction",
    );
    ok(
        d.staff_post("/v1/admin/analytics-exports", &json!({}))
            .await,
        "analytics export",
    );

    let mut actions = actions_of(&d, STAFF).await;
    actions.sort();
    assert_eq!(
        actions,
        [
            "analytics.exported",
            "contract.ended",
            "contract.recorded",
            "dsar.denied",
            "dsar.extended",
            "dsar.identity_verified",
            "dsar.listed",
            "subject.restriction_lifted",
            "subject.viewed",
        ]
    );
    // No staff action is audited under a generic actor.
    let generic: Vec<String> = audit(&d)
        .await
        .iter()
        .filter_map(|a| s(a, "actor").map(str::to_owned))
        .filter(|actor| actor.starts_with("staff"))
        .collect();
    assert!(generic.is_empty(), "{generic:?}");
}

/// The messages waiting in the dsar worker's dead-letter queue (received and left there).
/// Puts `message` into the dsar worker's dead-letter queue, as Lambda would.
async fn dead_letter(d: &World, message: &serde_json::Value) {
    aws_sdk_sqs::Client::new(&d.signup.stack.aws)
        .send_message()
        .queue_url(&d.signup.stack.queues["DsarDeadLetterQueue"].0)
        .message_body(message.to_string())
        .send()
        .await
        .unwrap();
}

async fn dead_letters(d: &World) -> Vec<serde_json::Value> {
    let url = d.signup.stack.queues["DsarDeadLetterQueue"].0.clone();
    let out = aws_sdk_sqs::Client::new(&d.signup.stack.aws)
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

/// The redrive `make redrive` runs, over this world's table and the dsar queue.
async fn redrive(d: &World) -> shared::adapters::deadletter::RedriveReport {
    let stack = &d.signup.stack;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    shared::adapters::deadletter::Redrive {
        sqs: aws_sdk_sqs::Client::new(&stack.aws),
        ddb: ddb.clone(),
        streams: aws_sdk_dynamodbstreams::Client::new(&stack.aws),
        table: stack.table.clone(),
        requests: Arc::new(shared::adapters::dsar::DsarStore::new(
            ddb,
            stack.table.clone(),
            stack.key_table.clone(),
        )),
        actor: "operator-redrive".into(),
    }
    .run(&stack.queues["DsarDeadLetterQueue"].0)
    .await
}

/// Removes the (empty) exports bucket, so every export fails; `restore` brings it back.
async fn exports_bucket(d: &World, restore: bool) {
    let s3 = harness::s3_client(&d.signup.stack.aws);
    let bucket = d.signup.stack.bucket("ExportsBucket");
    if restore {
        s3.create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuCentral1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    } else {
        s3.delete_bucket().bucket(bucket).send().await.unwrap();
    }
}

/// R4.10, R4.11: an export that cannot be built does not stall silently: the
/// worker leaves the request `failed` with a fixed reason code and a replay message in
/// its dead-letter queue (request id and reason only); the staff list shows it first;
/// staff retry it (audited with their principal) and the worker then completes it.
#[tokio::test]
async fn a_request_the_worker_cannot_finish_is_failed_listed_first_and_retried_by_staff() {
    let d = World::on_mail_emulator().await;
    let (older, _) = d.verified("restriction", &unique_email()).await;
    let (id, token) = d.verified("access", &unique_email()).await;
    exports_bucket(&d, false).await;

    let failures = d.pump(&id, 1).await;

    assert_eq!(failures, 0, "given up: no stream retry");
    let item = d.request_item(&id).await;
    assert_eq!(item["status"].as_s().unwrap(), "failed");
    let reason = item["failure_reason"].as_s().unwrap().clone();
    assert!(reason.starts_with("export_"), "{reason}");
    assert_eq!(
        dead_letters(&d).await,
        vec![json!({"replay": "dsar_request", "request_id": id, "reason": reason})]
    );
    let (status, list) = d
        .call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
        .await;
    assert_eq!(status, 200, "{list}");
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests[0]["request_id"], id.as_str(), "{list}");
    assert_eq!(requests[0]["status"], "failed");
    assert_eq!(requests[0]["failure_reason"], reason.as_str());
    assert!(requests.iter().any(|r| r["request_id"] == older.as_str()));
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "failed", "{view}");

    exports_bucket(&d, true).await;
    let (status, body) = d
        .staff_post(&format!("/v1/admin/dsar/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let audit = d.signup.items_of_kind("audit").await;
    assert!(audit
        .iter()
        .any(|a| a["action"].as_s().unwrap() == "dsar.retried"
            && a.get("actor")
                .and_then(|x| x.as_s().ok())
                .map(String::as_str)
                == Some(STAFF)));
    let item = d.request_item(&id).await;
    assert_eq!(item["status"].as_s().unwrap(), "in_progress");
    assert!(!item.contains_key("failure_reason"));
    let mut old = item.clone();
    old.insert("status".into(), AttributeValue::S("failed".into()));
    let failures = ::dsar::worker::handle(&d.exporter, stream_event("MODIFY", item, old, 2))
        .await
        .batch_item_failures
        .len();
    assert_eq!(failures, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "completed", "{view}");
    // A retry of what is no longer failed is refused.
    let (status, _) = d
        .staff_post(&format!("/v1/admin/dsar/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 409);
    // The replay message is now moot: the redrive finds nothing to do and deletes it.
    let report = redrive(&d).await;
    assert_eq!(
        (report.replayed, report.requests_requeued),
        (1, 0),
        "{report:?}"
    );
    assert!(dead_letters(&d).await.is_empty());
}

/// `make redrive` replays both kinds of dead letter: the worker's own replay
/// message, and Lambda's on-failure record of a stream batch (pointers only), whose
/// records it reads from the table's stream to find the request. A replayed request is
/// back in progress (audited), and its message is deleted.
#[tokio::test]
async fn the_redrive_replays_a_given_up_request_and_a_lambda_stream_failure_record() {
    let d = World::on_mail_emulator().await;
    let (given_up, _) = d.verified("access", &unique_email()).await;
    exports_bucket(&d, false).await;
    assert_eq!(d.pump(&given_up, 1).await, 0);
    exports_bucket(&d, true).await;
    // A request whose worker never recorded anything (e.g. timed out every attempt):
    // Lambda's own record names only the stream batch.
    let (stuck, _) = d.verified("access", &unique_email()).await;
    let (stream_arn, shard, sequence) = d
        .signup
        .stream_pointer(&format!("DSAR#{stuck}"), "REQUEST")
        .await;
    let pointer = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": shard, "startSequenceNumber": sequence, "endSequenceNumber": sequence,
            "batchSize": 1, "streamArn": stream_arn
        }
    });
    dead_letter(&d, &pointer).await;
    assert_eq!(dead_letters(&d).await.len(), 2);

    let report = redrive(&d).await;

    assert_eq!(
        (
            report.received,
            report.replayed,
            report.requests_requeued,
            report.failed
        ),
        (2, 2, 2, 0),
        "{report:?}"
    );
    assert!(dead_letters(&d).await.is_empty());
    for id in [&given_up, &stuck] {
        let item = d.request_item(id).await;
        assert_eq!(item["status"].as_s().unwrap(), "in_progress", "{id}");
    }
    let actions = d.signup.audit_actions().await;
    assert_eq!(
        actions.iter().filter(|a| *a == "dsar.redriven").count(),
        2,
        "{actions:?}"
    );
    // Put back in progress, the worker builds both.
    assert_eq!(d.pump(&stuck, 7).await, 0);
    assert_eq!(
        d.request_item(&stuck).await["status"].as_s().unwrap(),
        "completed"
    );
}

/// A stream pointer whose records are gone (older than the stream's 24 hours) is
/// not deleted: the redrive reports it and leaves it for the operator.
#[tokio::test]
async fn the_redrive_keeps_a_stream_pointer_whose_records_are_gone() {
    let d = World::on_mail_emulator().await;
    let stack = &d.signup.stack;
    let (stream_arn, shard) = d.signup.stream_shard().await;
    // A range of the shard that holds no record any more (moto cannot trim a stream; in
    // AWS an expired pointer answers TrimmedDataAccessException, handled the same way).
    let gone = "9".repeat(30);
    let pointer = json!({
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": gone, "endSequenceNumber": gone,
            "batchSize": 1, "streamArn": stream_arn
        }
    });
    dead_letter(&d, &pointer).await;

    let report = redrive(&d).await;

    assert_eq!((report.received, report.replayed), (1, 0), "{report:?}");
    assert_eq!(report.expired, 1, "{report:?}");
    // Kept: in flight for the redrive's visibility timeout, then visible again.
    let attributes = aws_sdk_sqs::Client::new(&stack.aws)
        .get_queue_attributes()
        .queue_url(&stack.queues["DsarDeadLetterQueue"].0)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| -> u32 {
        attributes.attributes().unwrap()[&name].parse().unwrap()
    };
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        1,
        "kept"
    );
}

/// Issue 12 item 4: an attempt that would time out is cut off short of the invocation's
/// deadline and counted, so a request too slow for any invocation ends `failed` after the
/// stream's attempts, listed for staff with its reason, instead of timing out silently on
/// every attempt (a timed-out invocation records nothing; before, it stayed `in_progress`).
#[tokio::test]
async fn an_attempt_that_runs_out_of_time_is_counted_and_the_last_one_fails_the_request() {
    let d = World::on_mail_emulator().await;
    let (id, _) = d.verified("access", &unique_email()).await;
    let deliver = |seq: u64| {
        let d = &d;
        let id = id.clone();
        async move {
            let item = d.request_item(&id).await;
            let mut old = item.clone();
            old.insert(
                "status".into(),
                AttributeValue::S("awaiting_verification".into()),
            );
            // The deadline has passed already: the work is cut off at once.
            ::dsar::worker::handle_until(
                &d.exporter,
                stream_event("MODIFY", item, old, seq),
                Some(tokio::time::Instant::now()),
            )
            .await
            .batch_item_failures
            .len()
        }
    };
    let attempts = shared::dsar::worker::MAX_WORKER_ATTEMPTS;
    for seq in 1..attempts {
        assert_eq!(deliver(u64::from(seq)).await, 1, "retried by the stream");
        let item = d.request_item(&id).await;
        assert_eq!(item["status"].as_s().unwrap(), "in_progress");
        assert_eq!(item["worker_failures"].as_n().unwrap(), &seq.to_string());
    }
    assert_eq!(deliver(u64::from(attempts)).await, 0, "given up");
    let item = d.request_item(&id).await;
    assert_eq!(item["status"].as_s().unwrap(), "failed");
    assert_eq!(
        item["failure_reason"].as_s().unwrap(),
        "export_retries_exhausted"
    );
    assert_eq!(
        d.signup
            .versions("ExportsBucket", &format!("exports/{id}"))
            .await,
        0,
        "no half-written package is left behind"
    );
    d.shutdown().await.unwrap();
}
