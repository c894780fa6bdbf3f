//! The analytics export as an asynchronous, resumable job (R6), end to end against the
//! emulator: the staff routes start it (202) and show it, the analytics worker carries it
//! out slice by slice from the table stream's records of the job item, the file goes up
//! in real 5 MiB parts (the emulator refuses smaller ones but the last) and is completed
//! from the checkpointed part list. Interrupted by its time budget, by a throttle between
//! a part's upload and its checkpoint, or by a lost answer to a checkpoint, it yields
//! each row exactly once.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use ::dsar::analytics::job::{AnalyticsExports, Budget, MIN_PART_BYTES};
use aws_sdk_dynamodb::types::AttributeValue;
use common::dsar::*;
use common::*;
use harness::analytics::{self as seed, FIRST_NAME, LAST_NAME};
use harness::events::ApiRequest;
use harness::faults::{Fault, Proxy, Upstream};
use serde_json::{json, Value};
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;

/// A session of a role that is not in the allow-list.
const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/polly-developer/eve";
/// Calls of the large population: four subjects in turn, one of them restricted.
const CALLS: usize = 1_800;
/// Characters of each summary (long ones keep the test short): with them, about 630 rows
/// fill a 5 MiB part, so the 1 350 exported rows take two full parts and a last one.
const SUMMARY: usize = 8_000;
/// Calls per page read by the worker in these tests.
const PAGE: usize = 250;

async fn world() -> World {
    World::start_on(&harness::emulator::private("analytics")).await
}

/// Marks a subject restricted, as a restriction request does (arranged directly; the
/// flow is tested in dsar_rights.rs).
async fn restrict(d: &World, lead: &LeadId) {
    aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .update_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(lead_pk(lead)))
        .key("sk", AttributeValue::S(LEAD_SK.into()))
        .update_expression("SET restricted = :t ADD version :one")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
}

/// Seeds `subjects` subjects (the first restricted when `restricted`) and `calls` calls.
async fn population(
    d: &World,
    tag: &str,
    subjects: usize,
    calls: usize,
    summary: usize,
    restricted: bool,
) {
    let leads = seed::lead_service(&d.signup.stack).unwrap();
    let ids = seed::subjects(&leads, tag, subjects).await.unwrap();
    seed::calls(&d.signup.stack, &leads, &ids, tag, calls, summary)
        .await
        .unwrap();
    if restricted {
        restrict(d, &ids[0]).await;
    }
}

/// Starts an export through the staff route, as staff; its id.
async fn start(d: &World) -> String {
    let (status, body) = d
        .staff_post("/v1/admin/analytics-exports", &json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    body["export_id"].as_str().unwrap().to_owned()
}

async fn status_of(d: &World, id: &str, who: &str) -> (u16, Value) {
    let path = format!("/v1/admin/analytics-exports/{id}");
    d.call(ApiRequest::get(&path).as_staff(who)).await
}

/// The worker with the test page size, its clients on `aws`.
fn worker(d: &World, aws: &aws_config::SdkConfig) -> AnalyticsExports {
    let mut w = d.analytics_worker_on(aws);
    w.page_size = PAGE;
    w.part_bytes = MIN_PART_BYTES;
    w
}

/// The export's status (done) and its file's lines, sorted.
async fn finished(d: &World, id: &str) -> (Value, Vec<String>) {
    let (status, view) = status_of(d, id, STAFF).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "done", "{view}");
    let key = view["object_key"].as_str().unwrap();
    let body = d.signup.object("ExportsBucket", key).await;
    let mut lines: Vec<String> = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    (view, lines)
}

/// Lines, and distinct call pseudonyms among them.
fn counted(lines: &[String]) -> (usize, usize) {
    let calls: HashSet<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["call"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    (lines.len(), calls.len())
}

/// The job item's parts.
async fn parts(d: &World, id: &str) -> usize {
    let item = d.analytics_job_item(id).await;
    serde_json::from_str::<Vec<Value>>(item["parts"].as_s().unwrap())
        .unwrap()
        .len()
}

/// R6: 1 800 calls, 450 of them of a restricted subject, exported by the worker in real
/// 5 MiB parts: uninterrupted; then again with a time budget spent after two thirds of
/// the pages (the next slice resumes from the checkpoint); again with a throttle exactly between the first
/// part's upload and its checkpoint (not written; the part is produced and uploaded
/// again); and again with the answer to the second part's checkpoint lost (written; the
/// retry finds the job moved on). Every run: status `done`, 1 350 calls and 450 omitted,
/// as many lines as calls and as many distinct call pseudonyms, three or more parts, the
/// same rows as the uninterrupted run, SSE-KMS under the data key, nobody named.
#[tokio::test]
async fn an_interrupted_export_resumes_and_yields_each_row_once() {
    let d = world().await;
    population(&d, "big", 4, CALLS, SUMMARY, true).await;
    let proxy = Proxy::start(
        &d.signup.stack.endpoint,
        Upstream::Aws,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let through_proxy = harness::aws_config_for(proxy.url()).await;

    // Uninterrupted, every request counted.
    let clean = start(&d).await;
    proxy.record();
    let slices = d
        .pump_analytics(&worker(&d, &through_proxy), &clean, Budget::default())
        .await;
    let seen = proxy.stop();
    assert_eq!(slices, 1);
    let (view, reference) = finished(&d, &clean).await;
    assert_eq!(
        (&view["calls"], &view["omitted"]),
        (&json!(1_350), &json!(450)),
        "{view}"
    );
    assert_eq!(counted(&reference), (1_350, 1_350));
    assert!(parts(&d, &clean).await >= 3);
    let key = view["object_key"].as_str().unwrap();
    let text = reference.join("\n");
    for secret in [FIRST_NAME, LAST_NAME, "0172 5550", "big_0"] {
        assert!(!text.contains(secret), "{secret} in the analytics file");
    }
    let subjects: HashSet<String> = reference
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["subject"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(subjects.len(), 3, "the restricted subject is left out");
    let head = harness::s3_client(&d.signup.stack.aws)
        .head_object()
        .bucket(&d.signup.stack.buckets["ExportsBucket"])
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("aws:kms")
    );
    let data_key = &d.signup.stack.keys["DataKey"];
    let used = head.ssekms_key_id().unwrap_or_default();
    assert!(used.contains(&data_key.0) || used == data_key.1, "{used}");
    // The checkpoints: upload started, then one after each part.
    let puts: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, l)| l.as_str() == "dynamodb:PutItem")
        .map(|(i, _)| i + 1)
        .collect();
    assert!(puts.len() >= 4, "{puts:?}");

    // A time budget of two thirds of the pages the uninterrupted run read (the
    // emulator, like DynamoDB, cuts a scan page at 1 MB): the first slice uploads a part
    // or two and is cut off in the middle of the next; the second goes on from its
    // checkpoint.
    let scans = seen
        .iter()
        .filter(|l| l.as_str() == "dynamodb:Scan")
        .count();
    let sliced = start(&d).await;
    let budget = Budget {
        deadline: None,
        pages: Some(scans * 2 / 3),
    };
    let slices = d
        .pump_analytics(&worker(&d, &d.signup.stack.aws), &sliced, budget)
        .await;
    assert!(slices >= 2, "{slices} slices");
    let (_, lines) = finished(&d, &sliced).await;
    assert_eq!(counted(&lines), (1_350, 1_350));
    assert_eq!(lines, reference);

    // Throttled between the first part's upload and its checkpoint, no SDK retry: the
    // checkpoint is not written.
    let throttled = start(&d).await;
    let no_retry = through_proxy
        .to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    proxy.arm(puts[1], Fault::Throttle);
    d.pump_analytics(&worker(&d, &no_retry), &throttled, Budget::default())
        .await;
    assert_eq!(proxy.injected().as_deref(), Some("dynamodb:PutItem"));
    proxy.stop();
    let item = d.analytics_job_item(&throttled).await;
    assert_eq!(
        item["failures"].as_n().unwrap(),
        "1",
        "the failed slice was counted"
    );
    let (view, lines) = finished(&d, &throttled).await;
    assert_eq!(
        (&view["calls"], &view["omitted"]),
        (&json!(1_350), &json!(450))
    );
    assert_eq!(lines, reference);

    // The answer to the second part's checkpoint lost (applied, connection reset): the
    // SDK's retry finds the version moved on; the next record carries on from there.
    let reset = start(&d).await;
    proxy.arm(puts[2], Fault::Reset);
    d.pump_analytics(&worker(&d, &through_proxy), &reset, Budget::default())
        .await;
    assert_eq!(proxy.injected().as_deref(), Some("dynamodb:PutItem"));
    proxy.stop();
    let (_, lines) = finished(&d, &reset).await;
    assert_eq!(lines, reference);
    d.shutdown().await.unwrap();
}

/// R6: two jobs carried out at the same time, slices interleaved, don't mix: each file
/// holds every call once, under its own key.
#[tokio::test]
async fn two_concurrent_jobs_do_not_mix() {
    let d = world().await;
    population(&d, "pair", 2, 40, 100, false).await;
    let (a, b) = (start(&d).await, start(&d).await);
    assert_ne!(a, b);
    let mut w = worker(&d, &d.signup.stack.aws);
    w.page_size = 5;
    let (na, nb) = tokio::join!(
        d.pump_analytics(&w, &a, Budget::default()),
        d.pump_analytics(&w, &b, Budget::default())
    );
    assert_eq!((na, nb), (1, 1));
    let (va, la) = finished(&d, &a).await;
    let (vb, lb) = finished(&d, &b).await;
    assert_ne!(va["object_key"], vb["object_key"]);
    assert_eq!(counted(&la), (40, 40));
    assert_eq!(la, lb);
    d.shutdown().await.unwrap();
}

/// R6, R4.10, R4.11, R5.4: the routes: a start is audited with the staff principal and
/// answers 202 at once (the job `running`, nothing exported yet); the status shows the
/// contract's fields only (no cursor, no upload id), the file once done; unknown and
/// malformed ids are 404; a principal outside the allow-list, or none, is refused (403,
/// audited) on both routes and starts nothing; a body with fields, malformed JSON or an
/// oversized body is refused without a job; two starts are two jobs.
#[tokio::test]
async fn the_routes_start_and_show_jobs_for_staff_only() {
    let d = world().await;
    population(&d, "routes", 1, 3, 100, false).await;
    let jobs = || async { d.signup.items_of_kind("analytics_export").await.len() };

    for who in [Some(OUTSIDER), None] {
        let mut req = ApiRequest::post_json("/v1/admin/analytics-exports", b"{}");
        req.iam_user_arn = who;
        assert_eq!(d.call(req).await.0, 403);
    }
    assert_eq!(jobs().await, 0);
    let refused: Vec<String> = d
        .signup
        .items_of_kind("audit")
        .await
        .iter()
        .filter(|a| a["action"].as_s().unwrap() == "staff.refused")
        .map(|a| a["actor"].as_s().unwrap().clone())
        .collect();
    assert!(refused.contains(&OUTSIDER.to_owned()), "{refused:?}");

    let big = vec![b' '; 20 * 1024];
    for (body, expected) in [
        (&b"{\"scope\": \"all\"}"[..], 422),
        (&b"{\"scope\": "[..], 400),
        (&b"[]"[..], 400),
        (&big[..], 413),
    ] {
        let (status, problem) = d
            .call(ApiRequest::post_json("/v1/admin/analytics-exports", body).as_staff(STAFF))
            .await;
        assert_eq!(status, expected, "{problem}");
        assert!(problem["type"].is_string(), "problem+json: {problem}");
    }
    assert_eq!(jobs().await, 0, "no job from a refused request");

    let id = start(&d).await;
    let other = start(&d).await;
    assert_ne!(id, other);
    assert_eq!(jobs().await, 2);
    let started: Vec<String> = d
        .signup
        .items_of_kind("audit")
        .await
        .iter()
        .filter(|a| a["action"].as_s().unwrap() == "analytics.exported")
        .map(|a| a["actor"].as_s().unwrap().clone())
        .collect();
    assert_eq!(started, [STAFF, STAFF]);

    let (status, view) = status_of(&d, &id, STAFF).await;
    assert_eq!(status, 200);
    assert_eq!(
        view,
        json!({"export_id": id, "status": "running", "calls": 0, "omitted": 0})
    );
    assert_eq!(status_of(&d, &id, OUTSIDER).await.0, 403);
    for unknown in [
        uuid::Uuid::now_v7().to_string(),
        "not-an-id".to_owned(),
        id.to_uppercase(),
        format!("{id}/x"),
    ] {
        assert_eq!(status_of(&d, &unknown, STAFF).await.0, 404, "{unknown}");
    }
    assert_eq!(
        d.call(ApiRequest::get("/v1/admin/analytics-exports").as_staff(STAFF))
            .await
            .0,
        404
    );

    let w = worker(&d, &d.signup.stack.aws);
    d.pump_analytics(&w, &id, Budget::default()).await;
    let (status, view) = status_of(&d, &id, STAFF).await;
    assert_eq!(status, 200);
    let fields: HashSet<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["export_id", "status", "calls", "omitted", "object_key"])
    );
    assert_eq!(
        (&view["status"], &view["calls"]),
        (&json!("done"), &json!(3))
    );
    assert!(view["object_key"]
        .as_str()
        .unwrap()
        .starts_with("analytics/"));
    d.shutdown().await.unwrap();
}
