//! The daily digest to the privacy team (function `dsar-digest`, schedule `DigestDaily`):
//! what is due in 7 and in 3 days, overdue, failed or stuck, and the deletions pending at
//! the provider (`usecases::dsar::digest`). Its own role reads the request records and
//! the outbox and may mail only the team's address.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::adapters::dsar::DsarStore;
use shared::adapters::mail::SesMailer;
use shared::adapters::outbox::DynamoOutbox;
use shared::domain::Email;
use shared::{Clock, Config};
use usecases::dsar::digest::DigestJob;

/// The metric records a run emits, for the tests (`DsarRequestsOverdue`, `DsarDigestSent`).
pub use usecases::telemetry::capture::MetricCapture;

/// The digest job over AWS, mailing `PRIVACY_TEAM_EMAIL` from `MAIL_FROM`.
pub fn digest_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<DigestJob, &'static str> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let team = Email::parse(&config.privacy_team_email)
        .map_err(|_| "PRIVACY_TEAM_EMAIL must be an email address")?;
    Ok(DigestJob {
        requests: Arc::new(DsarStore::new(
            ddb.clone(),
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
        outbox: Arc::new(DynamoOutbox::new(ddb, config.table_name.clone())),
        mailer: Arc::new(SesMailer::new(
            aws_sdk_sesv2::Client::new(aws),
            config.mail_from.clone().ok_or("MAIL_FROM is required")?,
        )),
        team,
        clock,
    })
}

/// One run (the scheduled event's payload is not read): the counts of each list, or an
/// error when the stores or the mail failed (the invocation fails: the function's error
/// alarm, and no `DsarDigestSent` that day).
#[tracing::instrument(name = "dsar_digest", skip_all)]
pub async fn handle(job: &DigestJob) -> Result<Value, usecases::ports::StoreError> {
    let d = job.run().await.inspect_err(|e| {
        tracing::error!(error = %e, "digest not sent");
    })?;
    Ok(json!({
        "overdue": d.overdue.len(),
        "due_in_3": d.due_in_3.len(),
        "due_in_7": d.due_in_7.len(),
        "failed": d.failed.len(),
        "stuck": d.stuck.len(),
        "provider_deletions": d.provider_deletions.len(),
        "incidents": d.incidents(),
    }))
}
