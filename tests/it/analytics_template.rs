//! trace-level: template
//!
//! What `infra/template.yaml` promises about the analytics export (R6, R5.4): the staff
//! role no longer scans the table or writes analytics files; the analytics worker has a
//! role of its own that writes only job items and only under `analytics/`; the stream
//! hands it exactly the records its code carries on, and retries a record longer than the
//! job's own failure limit.

use std::collections::HashMap;

use ::dsar::analytics::job::{JobStatus, JOB_KIND, MAX_FAILURES};
use aws_sdk_dynamodb::types::AttributeValue;
use harness::template::Template;
use serde_json::{json, Value};

fn template() -> Template {
    Template::load().expect("infra/template.yaml parses")
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn allows(statement: &Value, action: &str) -> bool {
    statement["Effect"] == "Allow"
        && actions(statement).iter().any(|p| {
            let (p, a) = (p.to_ascii_lowercase(), action.to_ascii_lowercase());
            p.strip_suffix('*')
                .map_or(p == a, |prefix| a.starts_with(prefix))
        })
}

/// EventBridge-style pattern match, as Lambda's filter criteria (objects nest, arrays
/// list allowed values).
fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(k, p)| matches(p, event.get(k).unwrap_or(&Value::Null))),
        Value::Array(allowed) => allowed.iter().any(|a| a == event),
        other => other == event,
    }
}

/// R6, R5.4: the staff role can neither scan the table nor write or read analytics files
/// (it only starts and shows jobs); the analytics worker's role writes only `ANALYTICS#`
/// items (no update, delete or batch write), touches only objects under `analytics/`,
/// decrypts only under a subject context, through S3/SQS or its own environment, and its
/// function runs the `analytics-worker` binary with a log group of its own.
#[test]
fn the_analytics_worker_alone_reads_the_calls_and_writes_the_files() {
    let t = template();
    let staff = t.role_statements(&t.function_role("DsarStaffFunction").unwrap());
    for action in [
        "dynamodb:Scan",
        "s3:PutObject",
        "s3:GetObject",
        "s3:AbortMultipartUpload",
    ] {
        assert!(
            !staff.iter().any(|st| allows(st, action)),
            "the staff role allows {action}"
        );
    }

    let role = t.function_role("AnalyticsWorkerFunction").expect("a role");
    assert_eq!(role, "AnalyticsWorkerFunctionRole");
    assert_eq!(
        t.function_binary("AnalyticsWorkerFunction").as_deref(),
        Some("analytics-worker")
    );
    assert_eq!(
        t.function_log_group("AnalyticsWorkerFunction").as_deref(),
        Some("AnalyticsWorkerLogGroup")
    );
    let statements = t.role_statements(&role);
    for action in [
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "kms:Encrypt",
        "ses:SendEmail",
    ] {
        assert!(
            !statements.iter().any(|st| allows(st, action)),
            "the analytics worker may {action}"
        );
    }
    let puts: Vec<&Value> = statements
        .iter()
        .filter(|st| allows(st, "dynamodb:PutItem"))
        .collect();
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert_eq!(
        puts[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        json!(["ANALYTICS#*"])
    );
    for st in statements
        .iter()
        .filter(|st| actions(st).iter().any(|a| a.starts_with("s3:")))
    {
        assert_eq!(
            st["Resource"].to_string(),
            json!({"!Sub": "${ExportsBucket.Arn}/analytics/*"}).to_string(),
            "{st:#}"
        );
    }
    for st in statements.iter().filter(|st| allows(st, "kms:Decrypt")) {
        let condition = st["Condition"].to_string();
        assert!(
            condition.contains("kms:EncryptionContext:subject")
                || condition.contains("kms:ViaService")
                || condition.contains("kms:EncryptionContext:LambdaFunctionName"),
            "unbounded decryption: {st:#}"
        );
    }
}

/// R6: the stream's filter hands the worker exactly the job items its code carries on
/// (inserted or modified while `running`; not `done`, `failed`, removed, or another
/// kind), retries a failing record more often than the job's own failure limit (so the
/// job is given up, upload aborted, before its record is), and sends what is left to the
/// dead-letter queue `make redrive` reads.
#[test]
fn the_stream_feeds_the_worker_the_running_jobs_only() {
    let t = template();
    let events = serde_json::to_value(&t.properties("AnalyticsWorkerFunction")["Events"]).unwrap();
    let stream = &events["TableStream"]["Properties"];
    let filters = stream["FilterCriteria"]["Filters"].as_array().unwrap();
    assert_eq!(filters.len(), 1);
    let pattern: Value = serde_json::from_str(filters[0]["Pattern"].as_str().unwrap()).unwrap();
    for (name, kind, status) in [
        ("INSERT", JOB_KIND, JobStatus::Running.as_str()),
        ("MODIFY", JOB_KIND, JobStatus::Running.as_str()),
        ("MODIFY", JOB_KIND, JobStatus::Done.as_str()),
        ("MODIFY", JOB_KIND, JobStatus::Failed.as_str()),
        ("REMOVE", JOB_KIND, JobStatus::Running.as_str()),
        ("MODIFY", "dsar_request", JobStatus::Running.as_str()),
        ("INSERT", "call", JobStatus::Running.as_str()),
    ] {
        let event = json!({"eventName": name, "dynamodb": {"NewImage": {
            "kind": {"S": kind}, "status": {"S": status}, "export_id": {"S": "x"}}}});
        let image: HashMap<String, AttributeValue> =
            [("kind", kind), ("status", status), ("export_id", "x")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
                .collect();
        assert_eq!(
            matches(&pattern, &event),
            ::dsar::analytics::work_for(name, &image).is_some(),
            "{name} {kind} {status}"
        );
    }
    assert!(matches(
        &pattern,
        &json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {
            "kind": {"S": JOB_KIND}, "status": {"S": "running"}}}})
    ));
    let retries = stream["MaximumRetryAttempts"].as_u64().unwrap();
    assert!(retries + 1 > u64::from(MAX_FAILURES), "{retries}");
    assert_eq!(stream["BatchSize"], 1);
    assert!(stream["DestinationConfig"]["OnFailure"]["Destination"]
        .to_string()
        .contains("DsarDeadLetterQueue"));
    let timeout = t.properties("AnalyticsWorkerFunction")["Timeout"]
        .as_u64()
        .unwrap();
    assert!(timeout > 2 * ::dsar::analytics::DEADLINE_MARGIN.as_secs());
}
