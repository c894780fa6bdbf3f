//! The dsar worker's use cases side by side: the export (access, portability) and the
//! other rights (erasure, restriction, objection, withdrawal, rectification). Two
//! independent services; this module only holds them together for the function that
//! receives the request records from the table's stream.

use std::sync::Arc;

use domain::dsar::RequestStatus;
use domain::RequestId;

use super::export::{ExportError, ExportOutcome, Exporter};
use super::ports::{DeadLetters, RequestStore};
use super::records::{Change, Commit, OpenRecord, RequestRecord};
use super::rights::{Rights, RightsError, RightsOutcome};
use crate::ports::{Retry, StoreError};
use crate::signup::LeadService;

pub struct RequestWorker {
    pub exporter: Exporter,
    pub rights: Rights,
    /// The subjects' records, decrypted (the same service both use).
    pub leads: Arc<LeadService>,
    /// Where a request the worker gives up is announced for replay, if anywhere.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl RequestWorker {
    /// Builds the export of an open access or portability request, then closes it.
    pub async fn run(&self, id: &RequestId) -> Result<ExportOutcome, ExportError> {
        self.exporter.run(id).await
    }

    /// Carries out an open erasure, restriction, objection, withdrawal or rectification.
    pub async fn carry_out(&self, id: &RequestId) -> Result<RightsOutcome, RightsError> {
        self.rights.carry_out(id).await
    }

    /// Audits that the worker starts an attempt on request `id` (R4.11:
    /// `dsar.worker_started` by `dsar-worker`), before any of its work: each attempt is
    /// one entry, so a retried request shows every start.
    pub async fn started(&self, id: &RequestId) -> Result<(), StoreError> {
        let now = self.rights.clock.now();
        self.rights
            .store
            .audit(id, None, "dsar-worker", "dsar.worker_started", now)
            .await
    }
}

/// Worker attempts per request: the first delivery and the stream's
/// `MaximumRetryAttempts` (3) in `infra/template.yaml` (a test keeps the two equal).
pub const MAX_WORKER_ATTEMPTS: u32 = 4;

/// What the worker recorded about a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureRecorded {
    /// Counted; the stream retries the request.
    Retrying { failures: u32 },
    /// The request is now `failed` with this reason code: listed first for staff, who
    /// can retry it; no stream retry is needed.
    Failed { reason: String },
    /// The request is no longer in progress (closed, or failed already): nothing to do.
    NotInProgress,
}

impl RequestWorker {
    /// Records a failed attempt on request `id` (R4: nothing stalls silently). A
    /// permanent error, or the last attempt ([`MAX_WORKER_ATTEMPTS`]), marks the request
    /// `failed` with the reason code `<stage>_permanent_error` /
    /// `<stage>_retries_exhausted` (`stage` is `export` or `rights`): a fixed code, never
    /// content. Audited as `dsar.failed` by the worker.
    pub async fn record_failure(
        &self,
        id: &RequestId,
        stage: &'static str,
        retry: Retry,
    ) -> Result<FailureRecorded, StoreError> {
        let store = &self.rights.store;
        let now = self.rights.clock.now();
        let Some(record) = store.request(id).await? else {
            return Ok(FailureRecorded::NotInProgress);
        };
        if record.status != RequestStatus::InProgress {
            return Ok(FailureRecorded::NotInProgress);
        }
        let old = record.version;
        let failures = record.worker_failures.saturating_add(1);
        let mut updated = record;
        updated.worker_failures = failures;
        updated.version += 1;
        let reason = match retry {
            Retry::Permanent => Some(format!("{stage}_permanent_error")),
            Retry::Transient if failures >= MAX_WORKER_ATTEMPTS => {
                Some(format!("{stage}_retries_exhausted"))
            }
            Retry::Transient => None,
        };
        let (changes, action) = match &reason {
            Some(r) => {
                updated.status = RequestStatus::Failed;
                updated.failure_reason = Some(r.clone());
                // Same due date, so the same staff-list entry: rewritten in place.
                (vec![Change::List(OpenRecord::of(&updated))], "dsar.failed")
            }
            None => (Vec::new(), "dsar.attempt_failed"),
        };
        if store
            .commit(&updated, Some(old), changes, "dsar-worker", action, now)
            .await?
            == Commit::Conflict
        {
            // Another attempt or a staff action moved it on; the stream retry (or the
            // new state) decides.
            return Ok(FailureRecorded::Retrying { failures });
        }
        Ok(match reason {
            Some(reason) => {
                tracing::error!(reason, "request failed; listed for staff");
                crate::telemetry::metric("DsarRequestFailed", 1.0);
                // The failed state is durable already; the message is for the operators'
                // redrive and the queue's alarm. Losing it loses no request.
                if let Some(d) = &self.dead_letters {
                    if let Err(e) = d.give_up(id, &reason).await {
                        tracing::error!(error = %e, "replay message not sent");
                        crate::telemetry::metric("DsarReplayMessageLost", 1.0);
                    }
                }
                FailureRecorded::Failed { reason }
            }
            None => FailureRecorded::Retrying { failures },
        })
    }
}

/// What a redrive did with a dead-lettered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redriven {
    /// Back in progress: the stream hands it to the worker again.
    Requeued,
    /// Closed (or waiting for its requester) meanwhile: nothing to replay.
    NothingToDo,
}

/// Puts a failed request back in progress (failure count and reason cleared), audited as
/// `action` by `actor`; `Conflict` when it changed since it was read.
pub(crate) async fn requeue(
    store: &dyn RequestStore,
    record: RequestRecord,
    actor: &str,
    action: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Commit, StoreError> {
    let old = record.version;
    let mut updated = record;
    updated.status = RequestStatus::InProgress;
    updated.failure_reason = None;
    updated.worker_failures = 0;
    updated.version += 1;
    // Same due date, so the same staff-list entry: rewritten in place.
    let changes = vec![Change::List(OpenRecord::of(&updated))];
    store
        .commit(&updated, Some(old), changes, actor, action, now)
        .await
}

/// Replays a dead-lettered request (`make redrive`): a failed request goes back in
/// progress; one still in progress (its worker could not even record the failure) is
/// marked failed (`dead_lettered`) and then put back, so the stream sees it become
/// `in_progress` again. Audited as `dsar.redriven` by `actor`. Idempotent.
pub async fn redrive_request(
    store: &dyn RequestStore,
    id: &RequestId,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Redriven, StoreError> {
    let Some(mut record) = store.request(id).await? else {
        return Ok(Redriven::NothingToDo);
    };
    if record.status == RequestStatus::InProgress {
        let old = record.version;
        record.status = RequestStatus::Failed;
        record.failure_reason = Some("dead_lettered".into());
        record.version += 1;
        let changes = vec![Change::List(OpenRecord::of(&record))];
        if store
            .commit(&record, Some(old), changes, actor, "dsar.failed", now)
            .await?
            == Commit::Conflict
        {
            return Err(conflict());
        }
    }
    if record.status != RequestStatus::Failed {
        return Ok(Redriven::NothingToDo);
    }
    match requeue(store, record, actor, "dsar.redriven", now).await? {
        Commit::Done => Ok(Redriven::Requeued),
        Commit::Conflict => Err(conflict()),
    }
}

/// The request moved on while it was redriven: try again (the message stays queued).
fn conflict() -> StoreError {
    StoreError {
        operation: "dsar_redrive",
        retry: Retry::Transient,
        source: None,
    }
}
