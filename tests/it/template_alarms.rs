//! trace-level: template
//!
//! Alarms, their topic and the operations dashboard, read from `infra/template.yaml`:
//! each alarm watches its metric with the threshold, period, comparison and missing-data
//! treatment that make it fire when (and only when) its promise breaks, and notifies the
//! one encrypted topic; every function and every dead-letter queue is watched (both
//! enumerated from the template, so a function or queue added later fails here until it
//! has its alarms); the dashboard shows every alarm's metric; the digest job runs every
//! Berlin morning with a role that may mail the privacy team only.

use std::collections::BTreeSet;

use harness::template::{raw_json, Template};
use serde_json::{json, Value};

fn template() -> Template {
    Template::load().expect("infra/template.yaml parses")
}

/// Every alarm: logical id and properties as JSON.
fn alarms(t: &Template) -> Vec<(String, Value)> {
    t.resources_of("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|a| {
            let p = raw_json(t.properties(&a));
            (a, p)
        })
        .collect()
}

/// The one alarm on metric `namespace/name`, optionally the one naming `needle`.
fn alarm_on(t: &Template, namespace: &str, name: &str, needle: &str) -> (String, Value) {
    let found: Vec<(String, Value)> = alarms(t)
        .into_iter()
        .filter(|(_, p)| p["Namespace"] == namespace && p["MetricName"] == name)
        .filter(|(_, p)| p["Dimensions"].to_string().contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "{namespace}/{name} {needle}: {found:#?}");
    found.into_iter().next().unwrap()
}

/// The settings that decide when an alarm fires.
fn shape(p: &Value) -> Value {
    json!({
        "stat": p["Statistic"],
        "period": p["Period"],
        "evaluations": p["EvaluationPeriods"],
        "datapoints": p["DatapointsToAlarm"],
        "threshold": p["Threshold"],
        "comparison": p["ComparisonOperator"],
        "missing": p["TreatMissingData"],
    })
}

/// Fires on any occurrence within five minutes; quiet without data.
fn any_in_5_minutes(stat: &str) -> Value {
    json!({"stat": stat, "period": 300, "evaluations": 1, "datapoints": null,
           "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
           "missing": "notBreaching"})
}

fn topic_ref() -> Value {
    json!([{"!Ref": "AlarmTopic"}])
}

/// Nothing stalls silently: every alarm notifies the alarm topic when
/// it fires and when it clears, and its evaluation window is one CloudWatch accepts
/// (at most a day under one-hour periods, at most seven days otherwise).
#[test]
fn every_alarm_notifies_the_topic_and_has_a_window_cloudwatch_accepts() {
    let t = template();
    let all = alarms(&t);
    assert!(all.len() >= 20, "{}", all.len());
    for (name, p) in &all {
        assert_eq!(p["AlarmActions"], topic_ref(), "{name}");
        assert_eq!(p["OKActions"], topic_ref(), "{name}");
        let period = p["Period"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: Period"));
        let evaluations = p["EvaluationPeriods"].as_u64().unwrap();
        assert!(period % 60 == 0, "{name}: {period}");
        let limit = if period < 3600 { 86_400 } else { 604_800 };
        assert!(
            period * evaluations <= limit,
            "{name}: {period} x {evaluations}"
        );
        if let Some(m) = p["DatapointsToAlarm"].as_u64() {
            assert!((1..=evaluations).contains(&m), "{name}");
        }
        assert!(
            ["notBreaching", "breaching"].contains(&p["TreatMissingData"].as_str().unwrap_or("")),
            "{name}: missing data must be decided, not left to the default"
        );
    }
}

/// Every function (enumerated from the template) has an errors and a throttles alarm on
/// its own name: any failed or throttled invocation within five minutes fires it.
#[test]
fn every_function_has_an_errors_and_a_throttles_alarm() {
    let t = template();
    let functions = t.functions();
    assert!(functions.len() >= 8, "{functions:?}");
    for f in &functions {
        for metric in ["Errors", "Throttles"] {
            let needle = json!({"!Ref": f}).to_string();
            let (name, p) = alarm_on(&t, "AWS/Lambda", metric, &needle);
            assert_eq!(
                p["Dimensions"],
                json!([{"Name": "FunctionName", "Value": {"!Ref": f}}]),
                "{name}"
            );
            assert_eq!(shape(&p), any_in_5_minutes("Sum"), "{name}");
        }
    }
}

/// Every dead-letter queue (every queue of the template) has an alarm on its visible
/// messages: one message is enough.
#[test]
fn every_dead_letter_queue_has_a_depth_alarm() {
    let t = template();
    let queues = t.resources_of("AWS::SQS::Queue");
    assert!(queues.len() >= 2, "{queues:?}");
    for q in &queues {
        let needle = json!({"!GetAtt": format!("{q}.QueueName")}).to_string();
        let (name, p) = alarm_on(&t, "AWS/SQS", "ApproximateNumberOfMessagesVisible", &needle);
        assert_eq!(shape(&p), any_in_5_minutes("Maximum"), "{name}");
    }
}

/// R3.5: the sweep's failed deletions fire at once; an incomplete real run fires only
/// when the next daily run is incomplete too (two data points within 47 hours, which
/// hold two daily runs and never three).
#[test]
fn the_sweep_alarms_fire_on_a_failure_and_on_two_incomplete_runs_in_a_row() {
    let t = template();
    let (_, failed) = alarm_on(&t, "Polly", "SweepFailed", "");
    assert_eq!(
        shape(&failed),
        json!({"stat": "Sum", "period": 3600, "evaluations": 1, "datapoints": null,
               "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
               "missing": "notBreaching"})
    );
    let (_, incomplete) = alarm_on(&t, "Polly", "SweepIncomplete", "");
    assert_eq!(
        shape(&incomplete),
        json!({"stat": "Maximum", "period": 3600, "evaluations": 47, "datapoints": 2,
               "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
               "missing": "notBreaching"})
    );
}

/// R4.3: one overdue request in the daily count fires the overdue alarm, which stays on
/// for 25 hours (to the next daily count, DST days included); a digest that did not go
/// out for 26 hours (failed, or the schedule stopped: no data counts as missing) fires
/// its own alarm.
#[test]
fn an_overdue_request_and_a_missing_digest_raise_alarms() {
    let t = template();
    let (_, overdue) = alarm_on(&t, "Polly", "DsarRequestsOverdue", "");
    assert_eq!(
        shape(&overdue),
        json!({"stat": "Maximum", "period": 3600, "evaluations": 25, "datapoints": 1,
               "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
               "missing": "notBreaching"})
    );
    let (_, missed) = alarm_on(&t, "Polly", "DsarDigestSent", "");
    assert_eq!(
        shape(&missed),
        json!({"stat": "Sum", "period": 3600, "evaluations": 26, "datapoints": 26,
               "threshold": 1, "comparison": "LessThanThreshold",
               "missing": "breaching"})
    );
}

/// R4.5 (Art. 19): an incident (a provider deletion that kept failing) fires at once; a
/// backlog above the configurable threshold (default 20) fires when it lasts 3 hours.
#[test]
fn provider_deletion_incidents_and_a_lasting_backlog_raise_alarms() {
    let t = template();
    let (_, incidents) = alarm_on(&t, "Polly", "ProviderDeletionIncidentsOpen", "");
    assert_eq!(
        shape(&incidents),
        json!({"stat": "Maximum", "period": 3600, "evaluations": 1, "datapoints": null,
               "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
               "missing": "notBreaching"})
    );
    let (_, backlog) = alarm_on(&t, "Polly", "ProviderDeletionsPending", "");
    assert_eq!(
        shape(&backlog),
        json!({"stat": "Maximum", "period": 3600, "evaluations": 3, "datapoints": 3,
               "threshold": {"!Ref": "ProviderDeletionBacklogThreshold"},
               "comparison": "GreaterThanThreshold", "missing": "notBreaching"})
    );
    assert!(t.parameter_defaults().contains(&(
        "ProviderDeletionBacklogThreshold".to_owned(),
        "20".to_owned()
    )));
}

/// Any KMS or SES failure the adapters meet fires within five minutes; so does a
/// request the worker gave up, and an analytics export job that failed for good.
#[test]
fn kms_ses_and_failed_request_alarms_fire_on_one_failure() {
    let t = template();
    for metric in [
        "KmsFailed",
        "MailFailed",
        "DsarRequestFailed",
        "AnalyticsExportFailed",
    ] {
        let (name, p) = alarm_on(&t, "Polly", metric, "");
        assert_eq!(shape(&p), any_in_5_minutes("Sum"), "{name}");
    }
}

/// R5.2: the alarm topic is encrypted with a rotating key of its own, whose policy lets
/// CloudWatch (of this account only) publish with it and no one else but the account;
/// the email subscription exists only when `AlarmEmail` is given.
#[test]
fn the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() {
    let t = template();
    let topics = t.resources_of("AWS::SNS::Topic");
    assert_eq!(topics, vec!["AlarmTopic".to_owned()]);
    let topic = raw_json(t.properties("AlarmTopic"));
    assert_eq!(topic["KmsMasterKeyId"], json!({"!Ref": "AlarmTopicKey"}));
    assert_eq!(
        raw_json(t.properties("AlarmTopicKey"))["EnableKeyRotation"],
        true
    );
    let statements = t.key_policy_statements("AlarmTopicKey");
    let cloudwatch: Vec<&Value> = statements
        .iter()
        .filter(|st| st["Principal"] == json!({"Service": "cloudwatch.amazonaws.com"}))
        .collect();
    assert_eq!(cloudwatch.len(), 1, "{statements:#?}");
    assert_eq!(
        cloudwatch[0]["Action"],
        json!(["kms:Decrypt", "kms:GenerateDataKey"])
    );
    assert_eq!(
        cloudwatch[0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        json!({"!Ref": "AWS::AccountId"})
    );
    for st in &statements {
        let principal = st["Principal"].to_string();
        assert!(
            principal.contains("cloudwatch.amazonaws.com") || principal.contains(":root"),
            "{st:#}"
        );
    }
    let doc = t.json();
    let sub = &doc["Resources"]["AlarmEmailSubscription"];
    assert_eq!(sub["Condition"], "HasAlarmEmail");
    assert_eq!(sub["Properties"]["Endpoint"], json!({"!Ref": "AlarmEmail"}));
    assert_eq!(t.parameter_default("AlarmEmail").as_deref(), Some(""));
}

/// The dashboard shows the state of every alarm and a graph of every alarm's metric.
#[test]
fn the_dashboard_shows_every_alarm_and_its_metric() {
    let t = template();
    let doc = t.json();
    let body = doc["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["!Sub"]
        .as_str()
        .expect("DashboardBody: !Sub");
    let dashboard: Value = serde_json::from_str(body).expect("the body is JSON");
    let widgets = dashboard["widgets"].as_array().unwrap();
    let listed: BTreeSet<String> = widgets
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| {
            w["properties"]["alarms"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let graphs: Vec<String> = widgets
        .iter()
        .filter(|w| w["type"] == "metric")
        .map(|w| w["properties"]["metrics"].to_string())
        .collect();
    for (name, p) in alarms(&t) {
        assert!(
            listed.contains(&format!("${{{name}.Arn}}")),
            "{name} not listed"
        );
        let namespace = p["Namespace"].as_str().unwrap();
        let metric = p["MetricName"].as_str().unwrap();
        let dimension = match &p["Dimensions"][0]["Value"] {
            Value::Null => None,
            v if v["!Ref"].is_string() => Some(format!("${{{}}}", v["!Ref"].as_str().unwrap())),
            v => Some(format!("${{{}}}", v["!GetAtt"].as_str().unwrap())),
        };
        let shown = graphs.iter().any(|g| {
            g.contains(&format!("\"{namespace}\",\"{metric}\""))
                && dimension.as_ref().is_none_or(|d| g.contains(d.as_str()))
        });
        assert!(
            shown,
            "{name}: {namespace}/{metric} {dimension:?} not graphed"
        );
    }
    // The per-type figures (Art. 5(2)) are on the dashboard too.
    for metric in [
        "DsarReceived",
        "DsarCompleted",
        "DsarCompletedLate",
        "DsarDaysToComplete",
    ] {
        assert!(
            graphs
                .iter()
                .any(|g| g.contains(&format!("MetricName=\\\"{metric}\\\""))),
            "{metric}"
        );
    }
}

/// R4.3, R5.4: the digest runs every morning in Berlin; its role reads only the open
/// list, request records and the outbox (no scan, no write), and may send mail only from
/// the usual sender to the privacy team's address (default datenschutz@pollyki.de).
#[test]
fn the_digest_runs_every_berlin_morning_and_may_mail_only_the_team() {
    let t = template();
    let doc = t.json();
    let events = &doc["Resources"]["DsarDigestFunction"]["Properties"]["Events"];
    let schedules: Vec<&Value> = events
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["Type"] == "ScheduleV2")
        .collect();
    assert_eq!(schedules.len(), 1);
    let p = &schedules[0]["Properties"];
    assert_eq!(p["ScheduleExpressionTimezone"], "Europe/Berlin");
    let cron = p["ScheduleExpression"].as_str().unwrap();
    let hour: u32 = cron.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        cron.ends_with("* * ? *)") && (6..=9).contains(&hour),
        "{cron}"
    );
    assert_eq!(
        t.parameter_default("PrivacyTeamEmail").as_deref(),
        Some("datenschutz@pollyki.de")
    );
    let env = &doc["Resources"]["DsarDigestFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["PRIVACY_TEAM_EMAIL"],
        json!({"!Ref": "PrivacyTeamEmail"})
    );

    let role = t.function_role("DsarDigestFunction").unwrap();
    let statements = t.role_statements(&role);
    let actions: BTreeSet<String> = statements
        .iter()
        .flat_map(|st| match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        })
        .collect();
    let expected: BTreeSet<String> = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "kms:Decrypt",
        "ses:SendEmail",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(actions, expected);
    let reads = statements
        .iter()
        .find(|st| st["Sid"] == "RequestRecords")
        .unwrap();
    assert_eq!(
        reads["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        json!(["DSAR_OPEN", "OUTBOX", "DSAR#*"])
    );
    let mail = statements
        .iter()
        .find(|st| st["Action"] == "ses:SendEmail")
        .unwrap();
    assert_eq!(
        mail["Condition"]["ForAllValues:StringEquals"]["ses:Recipients"],
        json!([{"!Ref": "PrivacyTeamEmail"}])
    );
    assert_eq!(mail["Condition"]["Null"]["ses:Recipients"], "false");
    assert_eq!(
        mail["Condition"]["StringEquals"]["ses:FromAddress"],
        json!({"!Ref": "MailFrom"})
    );
}
