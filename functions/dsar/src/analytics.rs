//! The analytics export worker (R6), binary `analytics-worker`, driven by the table's
//! stream (filtered in the template to job items `kind = analytics_export` that are
//! `running`, inserted or modified). Every checkpoint modifies the job item, so the
//! stream hands the job back after each part and after a slice that ran out of time: the
//! job goes on in slices, each within one invocation's time budget, without a queue or a
//! schedule of its own. Records of one item reach the worker in order, one batch at a
//! time, and every slice reads the job's current checkpoint (records of a job that moved
//! on are no-ops); the checkpoint's version condition keeps two workers from both
//! writing.
//!
//! A slice that fails transiently is counted on the job and reported for the stream's
//! retry; a permanent failure, or the job's `MAX_FAILURES`th, gives the job up (`failed`,
//! upload aborted, `AnalyticsExportFailed`). Only when even that cannot be recorded does
//! the record go to the stream's on-failure destination.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::adapters::analytics::{DynamoAnalytics, S3PartUploads};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::leads::LeadService;
use shared::{Clock, Config};
pub use usecases::dsar::analytics_job as job;
use usecases::dsar::analytics_job::{
    AnalyticsExports, Budget, SliceOutcome, CONCURRENCY, JOB_KIND, PAGE_SIZE, PART_BYTES,
    SUBJECT_CACHE,
};

type Image = HashMap<String, AttributeValue>;

/// Time kept back before the invocation's deadline: enough for the part in flight and
/// its checkpoint.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The job a stream record asks to carry on, if any: a job item that is `running`.
/// Pure, so the template's filter and this decision are tested together.
pub fn work_for(event_name: &str, new: &Image) -> Option<String> {
    let text = |name: &str| new.get(name)?.as_s().ok().map(String::as_str);
    if event_name == "REMOVE" || text("kind") != Some(JOB_KIND) || text("status") != Some("running")
    {
        return None;
    }
    text("export_id").map(str::to_owned)
}

/// The export jobs over AWS.
pub fn exports_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<AnalyticsExports, &'static str> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
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
    let table = Arc::new(DynamoAnalytics::new(ddb, config.table_name.clone()));
    Ok(AnalyticsExports {
        jobs: table.clone(),
        calls: table,
        uploads: Arc::new(S3PartUploads::new(
            aws_sdk_s3::Client::new(aws),
            config
                .exports_bucket
                .clone()
                .ok_or("EXPORTS_BUCKET is required")?,
            config.data_key_arn.clone(),
        )),
        leads: Arc::new(LeadService::new(
            lead_store,
            keys.clone(),
            Arc::clone(&clock),
        )),
        keys,
        clock,
        page_size: PAGE_SIZE,
        part_bytes: PART_BYTES,
        subject_cache: SUBJECT_CACHE,
        concurrency: CONCURRENCY,
    })
}

/// Handles one batch: each job named is carried on within `budget`.
#[tracing::instrument(name = "analytics_worker", skip_all, fields(records = event.records.len()))]
pub async fn handle(
    exports: &AnalyticsExports,
    event: Event,
    budget: Budget,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in event.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let new: Image = record.change.new_image.into();
        let Some(id) = work_for(&record.event_name, &new) else {
            continue;
        };
        match exports.run_slice(&id, budget).await {
            Ok(SliceOutcome::Done(job)) => {
                tracing::info!(
                    calls = job.calls,
                    omitted = job.omitted,
                    "analytics export done"
                );
            }
            Ok(SliceOutcome::Paused(job)) => {
                tracing::info!(parts = job.parts.len(), "analytics export continues");
            }
            Ok(SliceOutcome::Failed(job)) => {
                tracing::error!(reason = ?job.failure_reason, "analytics export given up");
            }
            Ok(SliceOutcome::Idle) => {}
            Err(e) => {
                tracing::error!(error = %e, "analytics export slice failed");
                let again = match exports.record_failure(&id, e.retry).await {
                    Ok(Some(job)) => {
                        job.status == usecases::dsar::analytics_job::JobStatus::Running
                    }
                    Ok(None) => false,
                    Err(e) => {
                        tracing::error!(error = %e, "failed slice not recorded");
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

    fn img(kind: &str, status: &str) -> Image {
        [
            ("kind", kind),
            ("status", status),
            ("export_id", "01a2235f-2d5a-7731-9aab-eea22f1bd4c3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect()
    }

    #[test]
    fn only_a_running_job_is_carried_on() {
        assert!(work_for("INSERT", &img(JOB_KIND, "running")).is_some());
        assert!(work_for("MODIFY", &img(JOB_KIND, "running")).is_some());
        assert!(work_for("MODIFY", &img(JOB_KIND, "done")).is_none());
        assert!(work_for("MODIFY", &img(JOB_KIND, "failed")).is_none());
        assert!(work_for("REMOVE", &img(JOB_KIND, "running")).is_none());
        assert!(work_for("INSERT", &img("dsar_request", "running")).is_none());
    }
}
