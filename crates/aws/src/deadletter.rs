//! Dead letters that can be replayed (R4: nothing stalls silently).
//!
//! Two kinds of message reach a worker's dead-letter queue:
//! - the worker's own [`ReplayMessage`], sent when it gives a request up (its last
//!   attempt, or a permanent error): it names the request, which stays `failed` in the
//!   table, so it can be replayed at any time;
//! - Lambda's on-failure record of a stream batch (`DDBStreamBatchInfo`): only stream
//!   pointers, readable for 24 hours. The redrive reads the batch's records from the
//!   stream while they exist and replays their items by key; an expired pointer stays in
//!   the queue and is reported (the table's state, e.g. a `failed` request in the staff
//!   list, is what is left to act on).
//!
//! Replaying an item: a request record is put back in progress (failed first if its
//! worker could not record the failure); any other item is touched (`redriven_at`), so
//! the stream delivers it again and its worker decides from its state, as on any
//! delivery. A message is deleted only once its replay succeeded.

use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use domain::RequestId;
use usecases::dsar::ports::RequestStore;
use usecases::dsar::worker::{redrive_request, Redriven};
use usecases::ports::{Retry, StoreError};

use crate::dsar::REQUEST_SK;
use crate::dynamo::{failure, s};

/// What a worker puts into its dead-letter queue itself: ids, a reason code, nothing
/// personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "replay", rename_all = "snake_case")]
pub enum ReplayMessage {
    DsarRequest { request_id: String, reason: String },
}

/// A worker's dead-letter queue.
pub struct DeadLetterQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl DeadLetterQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: String) -> Self {
        Self { sqs, url }
    }

    /// A queue client from the shared SDK configuration.
    pub fn from_sdk(aws: &aws_config::SdkConfig, url: String) -> Self {
        Self::new(aws_sdk_sqs::Client::new(aws), url)
    }

    pub async fn send(&self, message: &ReplayMessage) -> Result<(), StoreError> {
        let body = serde_json::to_string(message).map_err(|e| StoreError {
            operation: "dlq_send",
            retry: Retry::Permanent,
            source: Some(Box::new(e)),
        })?;
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| crate::store_failure("sqs", "dlq_send", e))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl usecases::dsar::ports::DeadLetters for DeadLetterQueue {
    async fn give_up(&self, id: &RequestId, reason: &str) -> Result<(), StoreError> {
        self.send(&ReplayMessage::DsarRequest {
            request_id: id.to_string(),
            reason: reason.to_owned(),
        })
        .await
    }
}

/// Lambda's on-failure record of a DynamoDB stream batch (the part the redrive reads).
#[derive(Debug, Deserialize)]
struct StreamFailure {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

/// What one redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    pub received: usize,
    /// Messages whose items were replayed (and which were deleted).
    pub replayed: usize,
    /// Requests put back in progress / other items touched.
    pub requests_requeued: usize,
    pub items_touched: usize,
    /// Stream pointers whose records are gone (older than 24 hours): kept in the queue.
    pub expired: usize,
    /// Messages not understood or whose replay failed: kept in the queue.
    pub failed: usize,
}

/// Reads a dead-letter queue and replays each message (`make redrive`).
pub struct Redrive {
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub table: String,
    pub requests: Arc<dyn RequestStore>,
    /// Who the audit items name (`operator-redrive`).
    pub actor: String,
}

enum Outcome {
    Replayed,
    Expired,
}

impl Redrive {
    /// Over the shared SDK configuration, for the table `table` (and its key table).
    pub fn from_sdk(
        aws: &aws_config::SdkConfig,
        table: String,
        key_table: String,
        actor: String,
    ) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        Self {
            sqs: aws_sdk_sqs::Client::new(aws),
            streams: aws_sdk_dynamodbstreams::Client::new(aws),
            requests: Arc::new(crate::dsar::DsarStore::new(
                ddb.clone(),
                table.clone(),
                key_table,
            )),
            ddb,
            table,
            actor,
        }
    }

    /// Drains `queue_url` until it answers with no message.
    pub async fn run(&self, queue_url: &str) -> RedriveReport {
        let mut report = RedriveReport::default();
        loop {
            let received = match self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                // Long enough to replay a batch; a failed one comes back after it.
                .visibility_timeout(120)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(code = crate::error_code(&e), "dead-letter queue unreadable");
                    report.failed += 1;
                    return report;
                }
            };
            let messages = received.messages();
            if messages.is_empty() {
                return report;
            }
            let mut progressed = false;
            for m in messages {
                report.received += 1;
                let body = m.body().unwrap_or_default();
                match self.replay(body, &mut report).await {
                    Ok(Outcome::Replayed) => {
                        let deleted = self
                            .sqs
                            .delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .send()
                            .await;
                        match deleted {
                            Ok(_) => {
                                report.replayed += 1;
                                progressed = true;
                            }
                            Err(e) => {
                                tracing::error!(
                                    code = crate::error_code(&e),
                                    "dead letter not deleted"
                                );
                                report.failed += 1;
                            }
                        }
                    }
                    Ok(Outcome::Expired) => report.expired += 1,
                    Err(e) => {
                        tracing::error!(error = %e, "dead letter not replayed; kept");
                        report.failed += 1;
                    }
                }
            }
            // What stays is invisible for the visibility timeout; stop rather than spin
            // once a whole receive brought no progress.
            if !progressed {
                return report;
            }
        }
    }

    async fn replay(&self, body: &str, report: &mut RedriveReport) -> Result<Outcome, StoreError> {
        if let Ok(ReplayMessage::DsarRequest { request_id, .. }) = serde_json::from_str(body) {
            let id = RequestId::parse(&request_id).map_err(|_| not_understood())?;
            if self.request(&id).await? == Redriven::Requeued {
                report.requests_requeued += 1;
            }
            return Ok(Outcome::Replayed);
        }
        let failure: StreamFailure = serde_json::from_str(body).map_err(|_| not_understood())?;
        let Some(keys) = self.stream_keys(&failure.batch).await? else {
            return Ok(Outcome::Expired);
        };
        for (pk, sk) in keys {
            match (pk.strip_prefix("DSAR#"), sk.as_str()) {
                (Some(id), REQUEST_SK) => {
                    let id = RequestId::parse(id).map_err(|_| not_understood())?;
                    if self.request(&id).await? == Redriven::Requeued {
                        report.requests_requeued += 1;
                    }
                }
                _ => {
                    if self.touch(&pk, &sk, Utc::now()).await? {
                        report.items_touched += 1;
                    }
                }
            }
        }
        Ok(Outcome::Replayed)
    }

    async fn request(&self, id: &RequestId) -> Result<Redriven, StoreError> {
        redrive_request(self.requests.as_ref(), id, &self.actor, Utc::now()).await
    }

    /// The item keys of the batch's records, in order; `None` when the stream no longer
    /// holds them.
    async fn stream_keys(
        &self,
        b: &BatchInfo,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&b.stream_arn)
            .shard_id(&b.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&b.start_sequence_number)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(out) => out.shard_iterator().map(str::to_owned),
            Err(e) if is_gone(e.as_service_error()) => return Ok(None),
            Err(e) => {
                return Err(crate::store_failure(
                    "dynamodbstreams",
                    "stream_iterator",
                    e,
                ))
            }
        };
        let end = sequence(&b.end_sequence_number);
        let mut keys = Vec::new();
        // A batch is at most a few records; a bounded number of pages is plenty.
        for _ in 0..100 {
            let Some(it) = iterator.take() else { break };
            let out = self
                .streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .map_err(|e| crate::store_failure("dynamodbstreams", "stream_records", e))?;
            let mut past_end = false;
            for r in out.records() {
                let Some(change) = r.dynamodb() else { continue };
                if change.sequence_number().map(sequence) > Some(end) {
                    past_end = true;
                    break;
                }
                let key = |name: &str| {
                    change
                        .keys()
                        .and_then(|k| k.get(name))
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                };
                if let (Some(pk), Some(sk)) = (key("pk"), key("sk")) {
                    if !keys.contains(&(pk.clone(), sk.clone())) {
                        keys.push((pk, sk));
                    }
                }
            }
            if past_end || out.records().is_empty() {
                break;
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
        if keys.is_empty() {
            // Nothing readable in the range: the records are gone.
            return Ok(None);
        }
        Ok(Some(keys))
    }

    /// Touches an item so the stream delivers it again; `false` when it is gone (then
    /// there is nothing to replay: an erasure or the sweep removed it).
    async fn touch(&self, pk: &str, sk: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET redriven_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(domain::retention::stored_instant(now)))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure("redrive_touch", e)),
        }
    }
}

/// Stream sequence numbers are decimal strings of up to 40 digits.
fn sequence(n: &str) -> u128 {
    n.parse().unwrap_or(u128::MAX)
}

fn is_gone(
    e: Option<&aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError>,
) -> bool {
    e.is_some_and(|e| e.is_trimmed_data_access_exception() || e.is_resource_not_found_exception())
}

fn not_understood() -> StoreError {
    StoreError {
        operation: "dlq_message",
        retry: Retry::Permanent,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_message_names_the_request_and_a_reason_code_only() {
        let m = ReplayMessage::DsarRequest {
            request_id: "01a2235f-2d5a-7731-9aab-eea22f1bd4c3".into(),
            reason: "export_retries_exhausted".into(),
        };
        let body = serde_json::to_value(&m).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"replay": "dsar_request", "request_id": "01a2235f-2d5a-7731-9aab-eea22f1bd4c3", "reason": "export_retries_exhausted"})
        );
    }

    #[test]
    fn lambdas_stream_failure_record_is_read_for_its_pointers() {
        let body = r#"{"requestContext":{"requestId":"x","functionArn":"arn","condition":"RetryAttemptsExhausted","approximateInvokeCount":4},"responseContext":{"statusCode":200},"version":"1.0","timestamp":"2026-11-28T10:00:00.000Z","DDBStreamBatchInfo":{"shardId":"shardId-1","startSequenceNumber":"100","endSequenceNumber":"105","approximateArrivalOfFirstRecord":"2026-11-28T10:00:00Z","approximateArrivalOfLastRecord":"2026-11-28T10:00:00Z","batchSize":1,"streamArn":"arn:aws:dynamodb:eu-central-1:123456789012:table/t/stream/2026"}}"#;
        let f: StreamFailure = serde_json::from_str(body).unwrap();
        assert_eq!(f.batch.shard_id, "shardId-1");
        assert_eq!(sequence(&f.batch.end_sequence_number), 105);
    }
}
