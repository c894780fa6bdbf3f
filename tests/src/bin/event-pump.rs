//! Dev-only event pump for the local stack: what AWS's event source mapping does for the
//! table stream. Reads the emulator's DynamoDB stream, keeps the records that match the
//! worker's `FilterCriteria` in `infra/template.yaml`, and invokes the worker through
//! `cargo lambda watch`'s Lambda invoke API; records the worker reports as failed are
//! delivered again (up to the template's `MaximumRetryAttempts`). It also plays the
//! telephony worker's `DispatchDue` schedule (R7.2): the template's input at the
//! template's rate, so calls scheduled for a later slot are placed when it comes, and
//! the dsar worker's `ErasuresDue` schedule the same way, so an erasure runs when its
//! cancel window ends. The daily schedules run at start and then every 24 hours: the
//! consent ledger's head (`LedgerHeadDaily`) and the privacy team's digest
//! (`DigestDaily`, `dsar-digest`).
//!
//! `event-pump --table polly-local-table --invoke-url http://127.0.0.1:9000`

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use harness::template::Template;
use serde_json::{json, Value};

/// Stream consumers of the template: logical id and binary.
const WORKERS: &[(&str, &str)] = &[
    ("TelephonyWorkerFunction", "telephony-worker"),
    ("DsarWorkerFunction", "dsar-worker"),
    ("AnalyticsWorkerFunction", "analytics-worker"),
];

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

fn filter_patterns(template: &Template, worker: &str) -> Result<Vec<Value>> {
    let events = &template.properties(worker)["Events"];
    let mut patterns = Vec::new();
    for (_, event) in events
        .as_mapping()
        .ok_or_else(|| anyhow!("{worker} has no events"))?
    {
        for f in event["Properties"]["FilterCriteria"]["Filters"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let text = f["Pattern"]
                .as_str()
                .ok_or_else(|| anyhow!("pattern is not a string"))?;
            patterns.push(serde_json::from_str(text).context("filter pattern")?);
        }
    }
    Ok(patterns)
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

/// The telephony worker's dispatcher schedule in the template: its input and period.
fn dispatch_schedule(template: &Template) -> Result<(Value, Duration)> {
    let event =
        &template.properties("TelephonyWorkerFunction")["Events"]["DispatchDue"]["Properties"];
    let input: Value = serde_json::from_str(
        event["Input"]
            .as_str()
            .ok_or_else(|| anyhow!("DispatchDue has no input"))?,
    )
    .context("DispatchDue input")?;
    let expression = event["ScheduleExpression"].as_str().unwrap_or_default();
    let minutes: u64 = expression
        .strip_prefix("rate(")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("DispatchDue is not a rate in minutes: {expression}"))?;
    Ok((input, Duration::from_secs(minutes * 60)))
}

/// The dsar worker's `ErasuresDue` schedule in the template: its input and period.
fn erasures_due_schedule(template: &Template) -> Result<(Value, Duration)> {
    let event = &template.properties("DsarWorkerFunction")["Events"]["ErasuresDue"]["Properties"];
    let input: Value = serde_json::from_str(
        event["Input"]
            .as_str()
            .ok_or_else(|| anyhow!("ErasuresDue has no input"))?,
    )
    .context("ErasuresDue input")?;
    let expression = event["ScheduleExpression"].as_str().unwrap_or_default();
    let minutes: u64 = expression
        .strip_prefix("rate(")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("ErasuresDue is not a rate in minutes: {expression}"))?;
    Ok((input, Duration::from_secs(minutes * 60)))
}

/// Invokes the dsar worker's scheduled run once; its report or failure goes to the log.
async fn erasures_due(http: &reqwest::Client, invoke_url: &str, input: &Value) {
    let resp = http
        .post(format!(
            "{invoke_url}/2015-03-31/functions/dsar-worker/invocations"
        ))
        .json(input)
        .send()
        .await;
    match resp {
        Ok(r) => println!(
            "event pump: erasures-due run: {}",
            r.text().await.unwrap_or_default()
        ),
        Err(e) => println!("event pump: erasures-due run failed: {e}"),
    }
}

/// Invokes the dispatcher once; its report or failure goes to the log.
async fn dispatch(http: &reqwest::Client, invoke_url: &str, input: &Value) {
    let resp = http
        .post(format!(
            "{invoke_url}/2015-03-31/functions/telephony-worker/invocations"
        ))
        .json(input)
        .send()
        .await;
    match resp {
        Ok(r) => println!(
            "event pump: dispatcher run: {}",
            r.text().await.unwrap_or_default()
        ),
        Err(e) => println!("event pump: dispatcher run failed: {e}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let table =
        arg("--table").ok_or_else(|| anyhow!("usage: event-pump --table NAME --invoke-url URL"))?;
    let invoke_url = arg("--invoke-url").unwrap_or_else(|| "http://127.0.0.1:9000".to_owned());
    let template = Template::load()?;
    let mut workers = Vec::new();
    for (logical, function) in WORKERS {
        let max_retries = template.properties(logical)["Events"]["TableStream"]["Properties"]
            ["MaximumRetryAttempts"]
            .as_u64()
            .unwrap_or(3);
        workers.push((*function, filter_patterns(&template, logical)?, max_retries));
    }

    let (dispatch_input, dispatch_every) = dispatch_schedule(&template)?;
    let mut next_dispatch = tokio::time::Instant::now() + dispatch_every;
    let (erasures_input, erasures_every) = erasures_due_schedule(&template)?;
    let mut next_erasures = tokio::time::Instant::now() + erasures_every;

    let aws = harness::aws_config().await;
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
        "event pump: {} shard(s) of {table} → {}",
        iterators.len(),
        WORKERS.iter().map(|w| w.1).collect::<Vec<_>>().join(", ")
    );
    // The template's `LedgerHeadDaily` schedule: the consent ledger's head signed at
    // start and then once a day (R7.6).
    let mut head_signed: Option<std::time::Instant> = None;
    // The template's `DigestDaily` schedule: the privacy team's digest at start and then
    // once a day (`make digest` sends one at any time).
    let mut digest_sent: Option<std::time::Instant> = None;
    loop {
        if digest_sent.is_none_or(|t| t.elapsed() >= Duration::from_secs(24 * 3600)) {
            let resp = http
                .post(format!(
                    "{invoke_url}/2015-03-31/functions/dsar-digest/invocations"
                ))
                .json(&json!({}))
                .send()
                .await;
            println!(
                "event pump: digest schedule → dsar-digest{}",
                if resp.is_ok_and(|r| r.status().is_success()) {
                    ""
                } else {
                    ", failed (retried in a day)"
                }
            );
            digest_sent = Some(std::time::Instant::now());
        }
        if head_signed.is_none_or(|t| t.elapsed() >= Duration::from_secs(24 * 3600)) {
            let resp = http
                .post(format!(
                    "{invoke_url}/2015-03-31/functions/retention-sweep/invocations"
                ))
                .json(&json!({"ledger_head": true}))
                .send()
                .await;
            println!(
                "event pump: ledger head schedule → retention-sweep{}",
                if resp.is_ok_and(|r| r.status().is_success()) {
                    ""
                } else {
                    ", failed (retried in a day)"
                }
            );
            head_signed = Some(std::time::Instant::now());
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
                for (function, patterns, max_retries) in &workers {
                    if !patterns.iter().any(|p| matches(p, &record)) {
                        continue;
                    }
                    deliver(&http, &invoke_url, function, &record, *max_retries).await;
                }
            }
        }
        if tokio::time::Instant::now() >= next_dispatch {
            dispatch(&http, &invoke_url, &dispatch_input).await;
            next_dispatch += dispatch_every;
        }
        if tokio::time::Instant::now() >= next_erasures {
            erasures_due(&http, &invoke_url, &erasures_input).await;
            next_erasures += erasures_every;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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

    /// The pump plays the template's dispatcher schedule: its input is a dispatcher run
    /// for the worker, every 5 minutes.
    #[test]
    fn the_pump_plays_the_templates_dispatch_schedule() {
        let (input, every) = dispatch_schedule(&Template::load().unwrap()).unwrap();
        assert!(telephony::worker::is_dispatch(&input), "{input}");
        assert_eq!(every, Duration::from_secs(300));
    }

    /// The pump plays the template's `ErasuresDue` schedule: a scheduled run of the dsar
    /// worker every 15 minutes.
    #[test]
    fn the_pump_plays_the_templates_erasures_due_schedule() {
        let (input, every) = erasures_due_schedule(&Template::load().unwrap()).unwrap();
        assert!(dsar::worker::is_erasures_due(&input), "{input}");
        assert_eq!(every, Duration::from_secs(900));
    }
}
