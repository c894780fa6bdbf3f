//! The retention sweep's Lambda handler: a daily EventBridge schedule (a real run, now)
//! or a manual invocation `{"dry_run": true, "now": "<RFC 3339>"}`; an hourly schedule
//! sends `{"outbox": true}`, which only retries the provider deletions that are due
//! (`usecases::outbox`: erased subjects' calls the provider failed to delete).
//!
//! A moved clock is for reports: a real run that names `now` is refused unless the
//! configuration allows it (`SWEEP_ALLOW_CLOCK_OVERRIDE`, set only by the local stack),
//! so no payload can make a deployed sweep delete anything before it is due (R3.1).
//!
//! The run's time budget is the Lambda deadline minus a safety margin, so it stops
//! cleanly and the next run continues. A failed item makes the result an error after the
//! rest is done (the run's audit record is written either way).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

use shared::adapters::dsar_subjects::RetellCallProvider;
use shared::adapters::outbox::DynamoOutbox;
use shared::adapters::retention::DynamoRetentionStore;
use shared::adapters::s3::BlobStore;
use shared::{Clock, Config};
use usecases::outbox::ProviderDeletions;
use usecases::retention::{SweepReport, SweepRequest, Sweeper};

/// The metric records (EMF) a run emits, captured on the test's thread.
pub use usecases::telemetry::capture::MetricCapture;

/// Time kept back from the Lambda deadline for the audit record and the answer.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(15);

/// The part of the remaining invocation time the sweep may spend: all but the safety
/// margin, and never more than four fifths of it (short local timeouts).
pub fn budget(remaining: Duration) -> Duration {
    let margin = SAFETY_MARGIN.min(remaining / 5);
    remaining.saturating_sub(margin)
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the request is not valid: {0}")]
    BadRequest(&'static str),
    #[error(
        "a real run with a moved clock is refused: name \"now\" only with \"dry_run\": true \
         (a real run always uses the current time)"
    )]
    ClockOverrideRefused,
    #[error("the sweep failed for some items; see the audit record and logs")]
    Failed(#[from] shared::ports::StoreError),
}

/// Reads the invocation: a manual request, or anything else (the schedule) as a real run now.
/// A real run that names `now` is refused unless `allow_clock_override`.
pub fn request_from(
    payload: &Value,
    now: DateTime<Utc>,
    allow_clock_override: bool,
) -> Result<SweepRequest, SweepError> {
    let manual = payload.get("dry_run").is_some() || payload.get("now").is_some();
    if !manual {
        return Ok(SweepRequest {
            dry_run: false,
            now,
        });
    }
    let dry_run = match payload.get("dry_run") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(SweepError::BadRequest("dry_run must be a boolean")),
    };
    let now = match payload.get("now") {
        None => now,
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map_err(|_| SweepError::BadRequest("now must be an RFC 3339 time"))?
            .with_timezone(&Utc),
        Some(_) => return Err(SweepError::BadRequest("now must be an RFC 3339 time")),
    };
    if !dry_run && payload.get("now").is_some() && !allow_clock_override {
        return Err(SweepError::ClockOverrideRefused);
    }
    Ok(SweepRequest { dry_run, now })
}

pub struct App {
    sweeper: Sweeper,
    /// `Config::sweep_allow_clock_override`: only the local stack sets it.
    allow_clock_override: bool,
    /// The consent ledger and its signing key, for `{"ledger_head": true}` (R7.6).
    ledger_head: Option<usecases::ledger::SignedLedger>,
}

impl App {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Result<Self, &'static str> {
        Self::from_aws_at(config, aws, Arc::new(shared::SystemClock))
    }

    /// As [`Self::from_aws`], with `clock` timing the provider-deletion outbox's backoff.
    pub fn from_aws_at(
        config: &Config,
        aws: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, &'static str> {
        Self::from_aws_with(config, aws, aws_sdk_dynamodb::Client::new(aws), clock)
    }

    /// As [`Self::from_aws_at`], with the DynamoDB client given (tests put an interceptor
    /// on the wire to answer what the emulator cannot, e.g. unprocessed batch items).
    pub fn from_aws_with(
        config: &Config,
        aws: &aws_config::SdkConfig,
        ddb: aws_sdk_dynamodb::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, &'static str> {
        let bucket = config
            .recordings_bucket
            .clone()
            .ok_or("RECORDINGS_BUCKET is required")?;
        let blobs = BlobStore::new(
            aws_sdk_s3::Client::new(aws),
            bucket,
            config.data_key_arn.clone(),
        );
        let exports = BlobStore::new(
            aws_sdk_s3::Client::new(aws),
            config
                .exports_bucket
                .clone()
                .ok_or("EXPORTS_BUCKET is required")?,
            config.data_key_arn.clone(),
        );
        let store = DynamoRetentionStore::new(
            ddb.clone(),
            config.table_name.clone(),
            config.key_table_name.clone(),
        );
        let leads = Arc::new(store.lead_store());
        let mut sweeper =
            Sweeper::new(Arc::new(store), leads, Arc::new(blobs)).with_exports(Arc::new(exports));
        // R3's lead class erases like a request (R4.5): the calls go at the provider too,
        // through the outbox.
        if let Some(secret) = &config.provider_api_key_secret_arn {
            sweeper = sweeper.with_provider_deletions(Arc::new(ProviderDeletions {
                outbox: Arc::new(DynamoOutbox::new(ddb, config.table_name.clone())),
                provider: Arc::new(RetellCallProvider::from_sdk(
                    aws,
                    &config.retell_api_base_url,
                    secret.clone(),
                )?),
                clock,
            }));
        }
        let app = Self::new(sweeper, config.sweep_allow_clock_override);
        Ok(match &config.ledger_key_id {
            Some(key) => app.with_ledger_head(
                Arc::new(shared::adapters::ledger::DynamoLedgerStore::from_sdk(
                    aws,
                    config.table_name.clone(),
                )),
                Arc::new(shared::adapters::ledger::KmsHeadSigner::from_sdk(
                    aws,
                    key.clone(),
                )),
            ),
            None => app,
        })
    }

    /// Signs the consent ledger's head when invoked with `{"ledger_head": true}` (the
    /// daily schedule `LedgerHeadDaily`, R7.6).
    pub fn with_ledger_head(
        mut self,
        store: Arc<dyn usecases::ledger::LedgerStore>,
        signer: Arc<dyn usecases::ledger::HeadSigner>,
    ) -> Self {
        self.ledger_head = Some((store, signer));
        self
    }

    /// The function over any sweeper (tests build one over in-memory fakes).
    pub fn new(sweeper: Sweeper, allow_clock_override: bool) -> Self {
        Self {
            sweeper,
            allow_clock_override,
            ledger_head: None,
        }
    }

    pub async fn handle(
        &self,
        payload: &Value,
        clock: &dyn Clock,
        budget: Duration,
    ) -> Result<SweepReport, SweepError> {
        let request = match request_from(payload, clock.now(), self.allow_clock_override) {
            Ok(r) => r,
            Err(err) => {
                // The payload is not logged: only which rule refused it.
                tracing::error!(error = %err, "sweep request refused; nothing deleted");
                return Err(err);
            }
        };
        Ok(self.sweeper.run(request, budget).await?)
    }

    /// Any invocation: `{"outbox": true}` (the hourly schedule) drains the
    /// provider-deletion outbox only; everything else is [`Self::handle`].
    pub async fn handle_event(
        &self,
        payload: &Value,
        clock: &dyn Clock,
        budget: Duration,
    ) -> Result<Value, SweepError> {
        if payload.get("ledger_head").and_then(Value::as_bool) == Some(true) {
            let Some((store, signer)) = &self.ledger_head else {
                return Err(SweepError::BadRequest("no ledger signing key configured"));
            };
            let head = usecases::ledger::sign_today(store.as_ref(), signer.as_ref(), clock)
                .await
                .map_err(|e| SweepError::Failed(e.into_store()))?;
            tracing::info!(seq = head.seq, "consent ledger head signed");
            return Ok(serde_json::json!({
                "ledger_head": {"date": head.date.to_string(), "seq": head.seq}
            }));
        }
        if payload.get("outbox").and_then(Value::as_bool) == Some(true) {
            let report = self.sweeper.drain_outbox(budget).await?;
            return Ok(serde_json::json!({ "outbox": report }));
        }
        let report = self.handle(payload, clock, budget).await?;
        serde_json::to_value(report).map_err(|_| SweepError::BadRequest("report not serialisable"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_budget_keeps_a_margin_before_the_deadline() {
        assert_eq!(budget(Duration::from_secs(900)), Duration::from_secs(885));
        assert_eq!(budget(Duration::from_secs(30)), Duration::from_secs(24));
        assert_eq!(budget(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_schedule_is_a_real_run_now_and_manual_requests_are_checked() {
        let now = t("2027-06-01T02:15:00Z");
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "time": "2027-06-01T02:15:00Z"});
        assert_eq!(
            request_from(&scheduled, now, false).unwrap(),
            SweepRequest {
                dry_run: false,
                now
            }
        );
        let manual = json!({"dry_run": true, "now": "2030-01-01T00:00:00Z"});
        assert_eq!(
            request_from(&manual, now, false).unwrap(),
            SweepRequest {
                dry_run: true,
                now: t("2030-01-01T00:00:00Z")
            }
        );
        for bad in [
            json!({"dry_run": "yes"}),
            json!({"now": "tomorrow"}),
            json!({"now": 5}),
        ] {
            assert!(request_from(&bad, now, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_real_run_with_a_moved_clock_needs_the_override_and_a_dry_run_does_not() {
        let now = t("2027-06-01T02:15:00Z");
        let moved = t("2030-01-01T00:00:00Z");
        for real in [
            json!({"dry_run": false, "now": "2030-01-01T00:00:00Z"}),
            json!({"now": "2030-01-01T00:00:00Z"}),
        ] {
            assert!(
                matches!(
                    request_from(&real, now, false),
                    Err(SweepError::ClockOverrideRefused)
                ),
                "{real}"
            );
            assert_eq!(
                request_from(&real, now, true).unwrap(),
                SweepRequest {
                    dry_run: false,
                    now: moved
                },
                "{real}"
            );
        }
        assert_eq!(
            request_from(&json!({"dry_run": false}), now, false).unwrap(),
            SweepRequest {
                dry_run: false,
                now
            },
            "a manual real run at the current time is fine"
        );
        assert_eq!(
            request_from(
                &json!({"dry_run": true, "now": "2030-01-01T00:00:00Z"}),
                now,
                false
            )
            .unwrap(),
            SweepRequest {
                dry_run: true,
                now: moved
            }
        );
    }
}
