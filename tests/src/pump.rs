//! Dev-only event pump for the local stack: what AWS's event source mapping and
//! EventBridge Scheduler do, read from `infra/template.yaml`, so a function added to the
//! template with a stream or a schedule is driven without a change here.
//!
//! - Every function with a `DynamoDB` event (the table stream): reads the emulator's
//!   stream, keeps the records that match that function's `FilterCriteria`, and invokes
//!   the function through a Lambda Invoke API (`cargo lambda watch` or [`crate::host`]);
//!   records the function reports as failed are delivered again (up to the event's
//!   `MaximumRetryAttempts`).
//! - Every `ScheduleV2` event: its `Input` (`{}` when it has none) at its rate
//!   (`rate(N minutes|hours|days)`, first run one period after start: the telephony
//!   worker's `DispatchDue` (R7.2) places calls scheduled for a later slot, the dsar
//!   worker's `ErasuresDue` runs an erasure when its cancel window ends, the sweep's
//!   `OutboxHourly` retries provider deletions); a `cron(...)` schedule runs at start and
//!   then every 24 hours (the consent ledger's head, `LedgerHeadDaily`; the privacy
//!   team's digest, `DigestDaily`; the sweep's `Daily` run).
//!
//! The bin `event-pump` runs it for `make run`
//! (`event-pump --table polly-local-table --invoke-url http://127.0.0.1:9000`);
//! [`crate::localstack::LocalStack`] runs it in process with a short poll interval.

use std::time::Duration;

use crate::template::Template;
use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{json, Value};

/// EventBridge-style pattern match, the subset Lambda filter criteria use here: objects
/// nest, arrays list allowed literal values.
fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(k, p)| matches(p, event.get(k).unwrap_or(&Value::Null))),
        Value::Array(allowed) => allowed.iter().any(|a| a == event),
        other => other == event,
    }
}

fn record_json(r: &aws_sdk_dynamodbstreams::types::Record) -> Value {
    let image = |m: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >| {
        m.map(|m| {
            let item: serde_dynamo::Item = m.clone().into();
            serde_json::to_value(item).unwrap_or_default()
        })
    };
    let d = r.dynamodb();
    let mut change = json!({
        "SequenceNumber": d.and_then(|d| d.sequence_number()).unwrap_or_default(),
        "SizeBytes": d.and_then(|d| d.size_bytes()).unwrap_or_default(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": d.and_then(|d| d.approximate_creation_date_time()).map(|t| t.secs()).unwrap_or_default(),
    });
    if let Some(keys) = image(d.and_then(|d| d.keys.as_ref())) {
        change["Keys"] = keys;
    }
    if let Some(new) = image(d.and_then(|d| d.new_image.as_ref())) {
        change["NewImage"] = new;
    }
    if let Some(old) = image(d.and_then(|d| d.old_image.as_ref())) {
        change["OldImage"] = old;
    }
    json!({
        "eventID": r.event_id().unwrap_or_default(),
        "eventName": r.event_name().map(|e| e.as_str()).unwrap_or_default(),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-central-1",
        "dynamodb": change,
    })
}

/// A stream consumer of the template.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// The function's name (its binary, `Metadata.BuildProperties.Binary`).
    pub function: String,
    /// Its filter patterns (a record matching any is delivered).
    pub patterns: Vec<Value>,
    pub max_retries: u64,
}

/// A schedule of the template.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The function's name.
    pub function: String,
    /// The event's name in the template (`DispatchDue`).
    pub event: String,
    /// What the function is invoked with.
    pub input: Value,
    /// The period: the rate, or a day for a cron expression.
    pub every: Duration,
    /// A cron schedule runs at start too (a local run is shorter than its day).
    pub at_start: bool,
}

fn events_of<'t>(
    template: &'t Template,
    logical: &str,
    kind: &str,
) -> Vec<(String, &'t serde_norway::Value)> {
    template.properties(logical)["Events"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, e)| e["Type"].as_str() == Some(kind))
        .filter_map(|(name, e)| Some((name.as_str()?.to_owned(), &e["Properties"])))
        .collect()
}

fn function_name(template: &Template, logical: &str) -> Result<String> {
    template
        .function_binary(logical)
        .ok_or_else(|| anyhow!("{logical} names no binary"))
}

/// Every function of the template with a table-stream event.
pub fn consumers(template: &Template) -> Result<Vec<Consumer>> {
    let mut out = Vec::new();
    for logical in template.functions() {
        let events = events_of(template, &logical, "DynamoDB");
        if events.is_empty() {
            continue;
        }
        let mut patterns = Vec::new();
        let mut max_retries = 3;
        for (_, props) in events {
            for f in props["FilterCriteria"]["Filters"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                let text = f["Pattern"]
                    .as_str()
                    .ok_or_else(|| anyhow!("pattern is not a string"))?;
                patterns.push(serde_json::from_str(text).context("filter pattern")?);
            }
            max_retries = props["MaximumRetryAttempts"].as_u64().unwrap_or(3);
        }
        out.push(Consumer {
            function: function_name(template, &logical)?,
            patterns,
            max_retries,
        });
    }
    Ok(out)
}

/// The period of `rate(N unit)`.
fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * secs))
}

/// Every `ScheduleV2` event of the template.
pub fn schedules(template: &Template) -> Result<Vec<Schedule>> {
    let mut out = Vec::new();
    for logical in template.functions() {
        for (event, props) in events_of(template, &logical, "ScheduleV2") {
            let input: Value = match props["Input"].as_str() {
                Some(text) => serde_json::from_str(text)
                    .with_context(|| format!("{logical}.{event}: input"))?,
                None => json!({}),
            };
            let expression = props["ScheduleExpression"].as_str().unwrap_or_default();
            let (every, at_start) = if expression.starts_with("cron(") {
                (Duration::from_secs(86_400), true)
            } else {
                let every = rate(expression).ok_or_else(|| {
                    anyhow!("{logical}.{event}: unsupported schedule {expression}")
                })?;
                (every, false)
            };
            out.push(Schedule {
                function: function_name(template, &logical)?,
                event,
                input,
                every,
                at_start,
            });
        }
    }
    Ok(out)
}

/// Invokes a schedule's function once; its answer or failure goes to the log.
async fn run_schedule(http: &reqwest::Client, invoke_url: &str, schedule: &Schedule) {
    let resp = http
        .post(format!(
            "{invoke_url}/2015-03-31/functions/{}/invocations",
            schedule.function
        ))
        .json(&schedule.input)
        .send()
        .await;
    let outcome = match resp {
        Ok(r) if r.status().is_success() && r.headers().get("x-amz-function-error").is_none() => {
            "done".to_owned()
        }
        Ok(r) => format!("failed ({})", r.status()),
        Err(e) => format!("failed: {e}"),
    };
    println!(
        "event pump: schedule {} → {}: {outcome}",
        schedule.event, schedule.function
    );
}

/// What the pump reads and where it delivers.
#[derive(Debug, Clone)]
pub struct PumpConfig {
    /// The table whose stream is played.
    pub table: String,
    /// Base URL of a Lambda Invoke API (`cargo lambda watch` or [`crate::host`]).
    pub invoke_url: String,
    /// The emulator.
    pub endpoint: String,
    /// How long to wait between two reads of the stream (Lambda polls about every
    /// second when the stream is idle).
    pub poll: Duration,
}

/// Plays the stream and the schedules until the task is dropped (or an emulator call
/// fails).
pub async fn run(config: &PumpConfig) -> Result<()> {
    let table = config.table.clone();
    let invoke_url = config.invoke_url.trim_end_matches('/').to_owned();
    let template = Template::load()?;
    let consumers = consumers(&template)?;
    let start = tokio::time::Instant::now();
    let mut schedules: Vec<(Schedule, tokio::time::Instant)> = schedules(&template)?
        .into_iter()
        .map(|s| {
            let first = if s.at_start { start } else { start + s.every };
            (s, first)
        })
        .collect();

    let aws = crate::aws_config_for(&config.endpoint).await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let streams = aws_sdk_dynamodbstreams::Client::new(&aws);
    let http = reqwest::Client::new();
    let stream_arn = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await?
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| anyhow!("table {table} has no stream"))?
        .to_owned();
    let shards = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await?;
    let mut iterators = Vec::new();
    for shard in shards
        .stream_description()
        .map(|d| d.shards())
        .unwrap_or_default()
    {
        let it = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard.shard_id().unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?;
        if let Some(i) = it.shard_iterator() {
            iterators.push(i.to_owned());
        }
    }
    println!(
        "event pump: {} shard(s) of {table} → {}; schedules: {}",
        iterators.len(),
        consumers
            .iter()
            .map(|c| c.function.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        schedules
            .iter()
            .map(|(s, _)| format!("{} → {}", s.event, s.function))
            .collect::<Vec<_>>()
            .join(", ")
    );
    loop {
        for (schedule, next) in schedules.iter_mut() {
            if tokio::time::Instant::now() >= *next {
                run_schedule(&http, &invoke_url, schedule).await;
                *next += schedule.every;
            }
        }
        for iterator in iterators.iter_mut() {
            let out = streams
                .get_records()
                .shard_iterator(iterator.as_str())
                .send()
                .await?;
            if let Some(next) = out.next_shard_iterator() {
                *iterator = next.to_owned();
            }
            let records: Vec<Value> = out.records().iter().map(record_json).collect();
            for record in records {
                for consumer in &consumers {
                    if !consumer.patterns.iter().any(|p| matches(p, &record)) {
                        continue;
                    }
                    deliver(
                        &http,
                        &invoke_url,
                        &consumer.function,
                        &record,
                        consumer.max_retries,
                    )
                    .await;
                }
            }
        }
        tokio::time::sleep(config.poll).await;
    }
}

/// Invokes `function` with one record, retrying reported failures like Lambda does.
async fn deliver(
    http: &reqwest::Client,
    invoke_url: &str,
    function: &str,
    record: &Value,
    max_retries: u64,
) {
    let event = json!({"Records": [record]});
    for attempt in 0..=max_retries {
        let resp = http
            .post(format!(
                "{invoke_url}/2015-03-31/functions/{function}/invocations"
            ))
            .json(&event)
            .send()
            .await;
        let failed = match resp {
            Ok(r) => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                body["batchItemFailures"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            }
            Err(_) => true,
        };
        println!(
            "event pump: delivered {} to {function} (attempt {}){}",
            record["eventName"],
            attempt + 1,
            if failed { ", failed" } else { "" }
        );
        if !failed {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(event: &str) -> Schedule {
        schedules(&Template::load().unwrap())
            .unwrap()
            .into_iter()
            .find(|s| s.event == event)
            .unwrap_or_else(|| panic!("no schedule {event}"))
    }

    /// The pump plays the template's dispatcher schedule: its input is a dispatcher run
    /// for the worker, every 5 minutes.
    #[test]
    fn the_pump_plays_the_templates_dispatch_schedule() {
        let s = schedule("DispatchDue");
        assert_eq!(s.function, "telephony-worker");
        assert!(telephony::worker::is_dispatch(&s.input), "{}", s.input);
        assert_eq!(s.every, Duration::from_secs(300));
        assert!(!s.at_start);
    }

    /// The pump plays the template's `ErasuresDue` schedule: a scheduled run of the dsar
    /// worker every 15 minutes.
    #[test]
    fn the_pump_plays_the_templates_erasures_due_schedule() {
        let s = schedule("ErasuresDue");
        assert_eq!(s.function, "dsar-worker");
        assert!(dsar::worker::is_erasures_due(&s.input), "{}", s.input);
        assert_eq!(s.every, Duration::from_secs(900));
    }

    /// Every schedule and every stream consumer of the template is played, with the
    /// daily ones at start; each names a function the in-process host runs.
    #[test]
    fn the_pump_plays_every_event_source_of_the_template() {
        let template = Template::load().unwrap();
        let all = schedules(&template).unwrap();
        let declared: usize = template
            .functions()
            .iter()
            .map(|f| events_of(&template, f, "ScheduleV2").len())
            .sum();
        assert_eq!(all.len(), declared);
        let head = schedule("LedgerHeadDaily");
        assert_eq!(head.function, "retention-sweep");
        assert_eq!(head.input, json!({"ledger_head": true}));
        assert!(head.at_start);
        assert_eq!(schedule("DigestDaily").function, "dsar-digest");
        assert_eq!(schedule("OutboxHourly").every, Duration::from_secs(3600));
        let consumers: Vec<String> = consumers(&template)
            .unwrap()
            .into_iter()
            .map(|c| c.function)
            .collect();
        for f in ["telephony-worker", "dsar-worker", "analytics-worker"] {
            assert!(consumers.iter().any(|c| c == f), "{f}: {consumers:?}");
        }
        let hosted: Vec<&str> = crate::host::REGISTRY.iter().map(|r| r.0).collect();
        for f in all
            .iter()
            .map(|s| s.function.as_str())
            .chain(consumers.iter().map(String::as_str))
        {
            assert!(hosted.contains(&f), "{f} is not in the host's registry");
        }
    }

    /// Rates in the template's units; anything else is refused.
    #[test]
    fn rates_parse() {
        assert_eq!(rate("rate(5 minutes)"), Some(Duration::from_secs(300)));
        assert_eq!(rate("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(rate("rate(2 days)"), Some(Duration::from_secs(172_800)));
        assert_eq!(rate("rate(0 minutes)"), None);
        assert_eq!(rate("rate(5 fortnights)"), None);
        assert_eq!(rate("cron(0 7 * * ? *)"), None);
    }
}
