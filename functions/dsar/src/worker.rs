//! The export worker, driven by the table's stream (filtered in the template to request
//! records that became `in_progress`). It builds access and portability exports and
//! carries out erasure, restriction, objection and consent withdrawal.
//!
//! Nothing stalls silently: a failed attempt is counted on the request. A retryable
//! failure is reported as a batch item failure, so Lambda retries it; a permanent error,
//! or the last attempt (`MAX_WORKER_ATTEMPTS`, the stream's retries plus one), leaves
//! the request `failed` with a reason code (listed first for staff, who can retry it)
//! and puts a replay message naming the request into the dead-letter queue (`make
//! redrive`); then the batch succeeds. Only when even that cannot be recorded does
//! Lambda's own on-failure record (stream pointers) go to the queue. Building an export
//! again is safe: the request closes only once, and a losing copy is deleted.
//!
//! Deletion at the provider goes through the outbox (`usecases::outbox`): a provider
//! outage never blocks an erasure.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::adapters::deadletter::DeadLetterQueue;
use shared::adapters::dsar::DsarStore;
use shared::adapters::dsar_subjects::{DynamoSubjects, RetellCallProvider};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::mail::SesMailer;
use shared::adapters::outbox::DynamoOutbox;
use shared::adapters::s3::BlobStore;
use shared::domain::RequestId;
use shared::dsar::export::Exporter;
use shared::dsar::rights::Rights;
use shared::leads::LeadService;
use shared::{Clock, Config};
use usecases::dsar::ports::{CallProvider, DeadLetters};
use usecases::dsar::worker::FailureRecorded;
use usecases::outbox::ProviderDeletions;
use usecases::ports::Retry;

/// Bytes per part of an export upload.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

type Image = HashMap<String, AttributeValue>;

fn text<'a>(image: &'a Image, name: &str) -> Option<&'a str> {
    image.get(name)?.as_s().ok().map(String::as_str)
}

/// The request a stream record asks to carry out, if any: a request record that just
/// became `in_progress`, or an erasure that just became `cancelled` (its cancel window's
/// restriction is lifted). Pure, so the template's filter and this decision are tested
/// together.
pub fn work_for(event_name: &str, new: &Image, old: &Image) -> Option<RequestId> {
    let status = text(new, "status");
    let cancelled = status == Some("cancelled") && text(new, "request_type") == Some("erasure");
    if event_name == "REMOVE"
        || text(new, "kind") != Some("dsar_request")
        || !(status == Some("in_progress") || cancelled)
        || text(old, "status") == status
    {
        return None;
    }
    RequestId::parse(text(new, "request_id")?).ok()
}

/// What the `ErasuresDue` schedule sends the worker (the template's event input).
pub const ERASURES_DUE_JOB: &str = "erasures-due";

/// Whether an invocation is the `ErasuresDue` schedule (else it is a stream batch).
pub fn is_erasures_due(payload: &serde_json::Value) -> bool {
    payload.get("job").and_then(serde_json::Value::as_str) == Some(ERASURES_DUE_JOB)
}

/// Erasures handed over per scheduled run; the rest wait for the next run (15 minutes).
pub const ERASURES_PER_RUN: usize = 50;

/// What a scheduled run did (the invocation's result; ids only).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ErasuresDueReport {
    pub due: usize,
    pub carried_out: usize,
    pub failed: usize,
}

impl ErasuresDueReport {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "due": self.due,
            "carried_out": self.carried_out,
            "failed": self.failed,
        })
    }
}

/// The `ErasuresDue` schedule: every erasure whose cancel window has ended (the sparse
/// due index) is carried out now, each attempt audited; a failed one is counted on its
/// request like a stream attempt (failed for staff after the last), and the index keeps
/// it due for the next run meanwhile.
#[tracing::instrument(name = "dsar_erasures_due", skip_all)]
pub async fn erasures_due(exporter: &Exporter) -> Result<ErasuresDueReport, String> {
    let store = &exporter.rights.store;
    let now = exporter.rights.clock.now();
    let due = store
        .due_erasures(now, ERASURES_PER_RUN)
        .await
        .map_err(|e| e.to_string())?;
    let mut report = ErasuresDueReport {
        due: due.len(),
        ..Default::default()
    };
    for id in due {
        let work = async {
            exporter
                .started(&id)
                .await
                .map_err(|e| (e.retry, e.to_string()))?;
            Box::pin(exporter.carry_out(&id))
                .await
                .map_err(|e| (e.retry(), e.to_string()))
        };
        match work.await {
            Ok(outcome) => {
                tracing::info!(?outcome, "due erasure handled");
                report.carried_out += 1;
            }
            Err((retry, error)) => {
                tracing::error!(error, ?retry, "due erasure failed");
                shared::telemetry::metric("DsarExportFailed", 1.0);
                report.failed += 1;
                if let Err(e) = exporter.record_failure(&id, "rights", retry).await {
                    tracing::error!(error = %e, "failed attempt not recorded");
                }
            }
        }
    }
    Ok(report)
}

/// The worker's use cases (export and the other rights) over AWS: the composition root,
/// every adapter built once and handed to both as a port.
pub fn exporter_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<Exporter, &'static str> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let s3 = aws_sdk_s3::Client::new(aws);
    let keys = Arc::new(KmsKeyService::new(
        aws_sdk_kms::Client::new(aws),
        config.data_key_id.clone(),
        config.blind_index_key_id.clone(),
    ));
    let lead_store = Arc::new(DynamoLeadStore::new(
        ddb.clone(),
        config.table_name.clone(),
        config.key_table_name.clone(),
    ));
    let store = Arc::new(DsarStore::new(
        ddb.clone(),
        config.table_name.clone(),
        config.key_table_name.clone(),
    ));
    let subjects = Arc::new(DynamoSubjects::new(
        ddb.clone(),
        config.table_name.clone(),
        config.key_table_name.clone(),
    ));
    let leads = Arc::new(LeadService::new(
        lead_store.clone(),
        keys.clone(),
        Arc::clone(&clock),
    ));
    let recordings = Arc::new(BlobStore::new(
        s3.clone(),
        config
            .recordings_bucket
            .clone()
            .ok_or("RECORDINGS_BUCKET is required")?,
        config.data_key_arn.clone(),
    ));
    let exports = Arc::new(BlobStore::new(
        s3,
        config
            .exports_bucket
            .clone()
            .ok_or("EXPORTS_BUCKET is required")?,
        config.data_key_arn.clone(),
    ));
    let mailer = Arc::new(
        SesMailer::new(
            aws_sdk_sesv2::Client::new(aws),
            config.mail_from.clone().ok_or("MAIL_FROM is required")?,
        )
        .with_privacy_links(config.public_api_base_url.clone()),
    );
    let public_api_base_url = config
        .public_api_base_url
        .clone()
        .ok_or("PUBLIC_API_BASE_URL is required")?;
    let provider: Option<Arc<dyn CallProvider>> = match &config.provider_api_key_secret_arn {
        Some(secret) => Some(Arc::new(ProviderDeletions {
            outbox: Arc::new(DynamoOutbox::new(ddb.clone(), config.table_name.clone())),
            provider: Arc::new(RetellCallProvider {
                client: shared::adapters::retell::RetellClient::new(&config.retell_api_base_url)
                    .map_err(|_| "the provider HTTP client cannot be built")?,
                keys: shared::adapters::secrets::ProviderKeySource::new(
                    aws_sdk_secretsmanager::Client::new(aws),
                    secret.clone(),
                ),
            }),
            clock: Arc::clone(&clock),
        })),
        None => None,
    };
    // R7.1: an objection lists the subject's number.
    let do_not_call = usecases::dnc::DoNotCallList::new(
        Arc::new(shared::adapters::dnc::DynamoDoNotCall::new(
            ddb.clone(),
            config.table_name.clone(),
        )),
        Arc::new(shared::adapters::calls::DynamoAuditTrail::new(
            ddb.clone(),
            config.table_name.clone(),
        )),
        Arc::clone(&clock),
    );
    let dead_letters: Option<Arc<dyn DeadLetters>> = config
        .dead_letter_queue_url
        .clone()
        .map(|url| Arc::new(DeadLetterQueue::from_sdk(aws, url)) as Arc<dyn DeadLetters>);
    Ok(Exporter {
        exporter: usecases::dsar::export::Exporter {
            store: store.clone(),
            claims: subjects.clone(),
            subjects: subjects.clone(),
            leads: leads.clone(),
            keys: keys.clone(),
            recordings: recordings.clone(),
            exports: exports.clone(),
            mailer: mailer.clone(),
            archives: Arc::new(shared::dsar::ZipArchives),
            clock: Arc::clone(&clock),
            public_api_base_url: public_api_base_url.clone(),
            part_size: PART_SIZE,
            crm: config.crm_webhook_url.is_some(),
        },
        rights: Rights {
            store,
            claims: subjects.clone(),
            subjects: subjects.clone(),
            writes: subjects,
            lead_store,
            leads: leads.clone(),
            keys,
            recordings,
            exports,
            mailer,
            clock,
            public_api_base_url,
            provider,
            // Objections and withdrawals go to the consent ledger first (R7.6).
            ledger: Some(Arc::new(shared::ledger::ConsentLedger::new(
                Arc::new(shared::adapters::ledger::DynamoLedgerStore::from_sdk(
                    aws,
                    config.table_name.clone(),
                )),
                "dsar-worker",
            ))),
            do_not_call,
            crm: config.crm_webhook_url.is_some(),
        },
        leads,
        dead_letters,
    })
}

/// Time kept back before the invocation's deadline: enough to record a failed attempt
/// (two table writes and a queue message) before Lambda would end the invocation.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(20);

/// The template's `Timeout` of the dsar worker (and of the analytics worker).
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The time an invocation has, from its deadline: in AWS, Lambda's deadline (the
/// function's `Timeout` from the start). A local runtime (`cargo lambda watch`) may send
/// no deadline or one that is already inside `margin`, which would cut off every attempt
/// at once: then the function's `timeout` applies, as in AWS.
pub fn invocation_time(
    deadline: std::time::SystemTime,
    now: std::time::SystemTime,
    timeout: std::time::Duration,
    margin: std::time::Duration,
) -> std::time::Duration {
    match deadline.duration_since(now) {
        Ok(left) if left > margin => left,
        _ => timeout,
    }
}

/// Handles one batch without a deadline (tests, local runs); see [`handle_until`].
pub async fn handle(exporter: &Exporter, event: Event) -> DynamoDbEventResponse {
    handle_until(exporter, event, None).await
}

/// Handles one batch; retryable failures are reported for retry. The work on a request is
/// cut off at `deadline` (the invocation's, less [`DEADLINE_MARGIN`]) and counted as a
/// failed attempt: a request too large or too slow for one invocation then ends `failed`
/// with a reason after the stream's retries, listed for staff, instead of timing out
/// silently on every attempt (a timed-out invocation records nothing). Records after
/// one cut off are left to the stream's retry, uncounted.
#[tracing::instrument(name = "dsar_worker", skip_all, fields(records = event.records.len()))]
pub async fn handle_until(
    exporter: &Exporter,
    event: Event,
    deadline: Option<tokio::time::Instant>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    let mut out_of_time = false;
    for record in event.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let new: Image = record.change.new_image.into();
        let old: Image = record.change.old_image.into();
        let Some(id) = work_for(&record.event_name, &new, &old) else {
            continue;
        };
        if out_of_time {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            response.batch_item_failures.push(failure);
            continue;
        }
        let export = matches!(text(&new, "request_type"), Some("access" | "portability"));
        let cancelled = text(&new, "status") == Some("cancelled");
        let stage = if export { "export" } else { "rights" };
        // Boxed: the export future is large (it holds the archive state across awaits).
        // Failures as (retry, fixed message): both use cases' errors say whether a retry
        // can help and never carry request data.
        let work = async {
            exporter
                .started(&id)
                .await
                .map_err(|e| (e.retry, e.to_string()))?;
            if export {
                Box::pin(exporter.run(&id))
                    .await
                    .map(|o| format!("{o:?}"))
                    .map_err(|e| (e.retry(), e.to_string()))
            } else {
                Box::pin(exporter.carry_out(&id))
                    .await
                    .map(|o| format!("{o:?}"))
                    .map_err(|e| (e.retry(), e.to_string()))
            }
        };
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at, work).await {
                Ok(r) => r,
                Err(_) => {
                    out_of_time = true;
                    shared::telemetry::metric("DsarAttemptOutOfTime", 1.0);
                    Err((Retry::Transient, "attempt ran out of time".to_owned()))
                }
            },
            None => work.await,
        };
        match result {
            Ok(outcome) => tracing::info!(outcome, "request handled"),
            Err((retry, error)) => {
                tracing::error!(error, ?retry, stage, "request attempt failed");
                shared::telemetry::metric("DsarExportFailed", 1.0);
                // Retried by the stream only while the request counts as retrying; a
                // failed request waits for staff (or `make redrive`), and a failure to
                // record any of it leaves the stream retry (then Lambda's own dead letter).
                // A cancelled erasure is not in progress: lifting its window's flag is
                // retried by the stream while a retry can help.
                let counted = if cancelled {
                    Ok(match retry {
                        Retry::Transient => FailureRecorded::Retrying { failures: 0 },
                        Retry::Permanent => FailureRecorded::NotInProgress,
                    })
                } else {
                    exporter.record_failure(&id, stage, retry).await
                };
                let again = match counted {
                    Ok(FailureRecorded::Retrying { failures }) => {
                        tracing::warn!(failures, "request attempt counted; the stream retries");
                        true
                    }
                    Ok(FailureRecorded::Failed { reason }) => {
                        tracing::error!(reason, "request given up: failed, listed for staff");
                        false
                    }
                    Ok(FailureRecorded::NotInProgress) => false,
                    Err(e) => {
                        tracing::error!(error = %e, "failed attempt not recorded");
                        true
                    }
                };
                if again {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(sequence);
                    response.batch_item_failures.push(failure);
                }
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(status: &str, kind: &str, t: &str) -> Image {
        [
            ("kind", kind),
            ("status", status),
            ("request_type", t),
            ("request_id", "01a2235f-2d5a-7731-9aab-eea22f1bd4c3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect()
    }

    #[test]
    fn a_request_that_became_in_progress_is_carried_out_once() {
        let new = img("in_progress", "dsar_request", "access");
        assert!(work_for(
            "MODIFY",
            &new,
            &img("awaiting_verification", "dsar_request", "access")
        )
        .is_some());
        assert!(
            work_for("MODIFY", &new, &new).is_none(),
            "already in progress"
        );
        assert!(work_for("REMOVE", &new, &Image::new()).is_none());
        let erasure = img("in_progress", "dsar_request", "erasure");
        assert!(work_for("MODIFY", &erasure, &Image::new()).is_some());
        let open = img("in_progress", "dsar_open", "access");
        assert!(work_for("INSERT", &open, &Image::new()).is_none());
    }

    /// R4.5: a cancelled erasure goes to the worker once (its window's flag is lifted);
    /// no other cancelled record does.
    #[test]
    fn a_cancelled_erasure_is_handed_over_once() {
        let cancelled = img("cancelled", "dsar_request", "erasure");
        let waiting = img("in_progress", "dsar_request", "erasure");
        assert!(work_for("MODIFY", &cancelled, &waiting).is_some());
        assert!(work_for("MODIFY", &cancelled, &cancelled).is_none(), "once");
        let other = img("cancelled", "dsar_request", "access");
        assert!(work_for("MODIFY", &other, &Image::new()).is_none());
        assert!(is_erasures_due(&serde_json::json!({"job": "erasures-due"})));
        assert!(!is_erasures_due(&serde_json::json!({"Records": []})));
    }

    /// An invocation has until Lambda's deadline; a local runtime's missing or already
    /// expiring deadline gives the function's timeout instead of an instant cut-off.
    #[test]
    fn invocation_time_is_the_deadline_or_the_timeout() {
        use std::time::{Duration, SystemTime};
        let now = SystemTime::now();
        let t = |deadline| invocation_time(deadline, now, TIMEOUT, DEADLINE_MARGIN);
        assert_eq!(t(now + Duration::from_secs(299)), Duration::from_secs(299));
        assert_eq!(t(now + Duration::from_secs(21)), Duration::from_secs(21));
        assert_eq!(t(now + Duration::from_secs(20)), TIMEOUT);
        assert_eq!(t(now), TIMEOUT);
        assert_eq!(t(SystemTime::UNIX_EPOCH), TIMEOUT);
    }
}
