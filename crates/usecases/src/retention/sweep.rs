//! The retention sweep (R3): finds due items through the expiry index, one partition per
//! class and month, and does what the registry says for each class.
//!
//! Classes: `recording` (every S3 version of the recording and the transcript deleted,
//! the call's metadata kept), `lead` (the subject erased: the data key first, then items
//! and objects), the contract classes (held subjects restricted, then erased),
//! `phone_consent_proof`, `verification` (one-time codes and unverified requests' sealed
//! contacts; a request whose code expired unused ends and loses its blind indexes),
//! `export` (every version of the package, then its item) and `request` (request records). A dry run reports exactly what a
//! real run would delete. The run stops cleanly when its time budget runs out; the next
//! run continues, since the index still holds what was not done.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Datelike, Utc};
use domain::retention::ContractRecords::{BookingVouchers, Books, BusinessLetters};
use domain::RetentionClass;

use super::ports::{DueItem, RetentionStore, SweepAudit};
use crate::dsar::ports::{CallProvider, ProviderError};
use crate::outbox::{DrainReport, ProviderDeletions};
use crate::ports::{LeadStore, Objects, Retry, StoreError};

/// DynamoDB's limit of requests in one BatchWriteItem; the sweep deletes plain classes
/// in chunks of this size and checks its time budget between them.
pub const BATCH_WRITE_LIMIT: usize = 25;

/// The first month that can hold due items (the policy dates from April 2024).
const FIRST_MONTH: (i32, u32) = (2024, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRequest {
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClassCount {
    /// Items found due.
    pub due: usize,
    /// Items deleted (or, in a dry run, that would be).
    pub deleted: usize,
    /// Objects (all versions) deleted (or that would be).
    pub objects: usize,
    /// Subjects kept under legal hold (restricted) instead of erased.
    pub held: usize,
    /// Subjects the index named due whose retention moved since (read afresh): kept.
    pub skipped: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    pub now: String,
    pub classes: BTreeMap<&'static str, ClassCount>,
    /// False when the run stopped for its time budget; the next run continues.
    pub complete: bool,
}

/// Months from [`FIRST_MONTH`] to the month of `now`, as `YYYY-MM`.
fn months_until(now: DateTime<Utc>) -> Vec<String> {
    let (mut y, mut m) = FIRST_MONTH;
    let mut out = Vec::new();
    while (y, m) <= (now.year(), now.month()) {
        out.push(format!("{y:04}-{m:02}"));
        if m == 12 {
            y += 1;
            m = 1;
        } else {
            m += 1;
        }
    }
    out
}

use domain::retention::stored_instant as ts;

pub struct Sweeper {
    store: Arc<dyn RetentionStore>,
    leads: Arc<dyn LeadStore>,
    /// The recordings bucket (audio and sealed transcripts).
    blobs: Arc<dyn Objects>,
    /// The exports bucket (data-subject export packages, 7 days).
    exports: Option<Arc<dyn Objects>>,
    /// Deletion at the provider through the outbox (R3 lead class: R4.5 mechanics).
    provider: Option<Arc<ProviderDeletions>>,
}

impl Sweeper {
    pub fn new(
        store: Arc<dyn RetentionStore>,
        leads: Arc<dyn LeadStore>,
        blobs: Arc<dyn Objects>,
    ) -> Self {
        Self {
            store,
            leads,
            blobs,
            exports: None,
            provider: None,
        }
    }

    /// Erased subjects' calls are deleted at the provider too, through the outbox, and
    /// real runs drain the outbox.
    pub fn with_provider_deletions(mut self, provider: Arc<ProviderDeletions>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Retries the provider deletions that are due (the hourly schedule and the end of
    /// each real run); `None` without a provider.
    pub async fn drain_outbox(
        &self,
        budget: StdDuration,
    ) -> Result<Option<DrainReport>, StoreError> {
        match &self.provider {
            Some(p) => p.drain(budget).await.map(Some),
            None => Ok(None),
        }
    }

    /// Sweeps the exports bucket too (the `export` class).
    pub fn with_exports(mut self, exports: Arc<dyn Objects>) -> Self {
        self.exports = Some(exports);
        self
    }

    /// An export package past its 7 days: every version of the object, then its item.
    async fn sweep_export(
        &self,
        item: &DueItem,
        req: SweepRequest,
        count: &mut ClassCount,
    ) -> Result<(), StoreError> {
        let Some(id) = item.request_id() else {
            return Ok(());
        };
        let object = format!("exports/{id}.zip");
        let Some(exports) = &self.exports else {
            return Err(StoreError {
                operation: "sweep_export",
                retry: Retry::Permanent,
                source: None,
            });
        };
        if req.dry_run {
            count.objects += exports.version_keys(&object).await?.len();
            count.deleted += 1;
            return Ok(());
        }
        count.objects += exports.delete_all_versions(&object).await?;
        count.deleted += self.store.delete(vec![item.key.clone()]).await?;
        self.audit("retention.export_deleted", None, None, req.now)
            .await
    }

    /// A request whose code expired unused ends: its blind indexes go with the code.
    async fn end_unverified(&self, due: &[DueItem], now: DateTime<Utc>) -> Result<(), StoreError> {
        for item in due {
            if item.kind.as_deref() != Some("dsar_code") {
                continue;
            }
            let Some(id) = item.request_id() else {
                continue;
            };
            self.store.end_unverified(id, now).await?;
        }
        Ok(())
    }

    /// Due items of a class, oldest month first.
    async fn due(
        &self,
        class: RetentionClass,
        now: DateTime<Utc>,
    ) -> Result<Vec<DueItem>, StoreError> {
        let mut items = Vec::new();
        for month in months_until(now) {
            let bucket = format!("{}#{month}", class.code());
            items.extend(self.store.due(&bucket, now).await?);
        }
        Ok(items)
    }

    async fn audit(
        &self,
        action: &str,
        lead: Option<&domain::LeadId>,
        call_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.store
            .audit(SweepAudit {
                action,
                lead,
                call_id,
                at,
            })
            .await
    }

    /// A due recording: every version of the audio and the transcript, then the
    /// recording item; the call keeps its metadata and says the recording is gone.
    async fn sweep_recording(
        &self,
        indexed: &DueItem,
        req: SweepRequest,
        count: &mut ClassCount,
        counted: &mut HashSet<String>,
    ) -> Result<(), StoreError> {
        let Some(rec) = self.store.recording(&indexed.key).await? else {
            return Ok(());
        };
        if req.dry_run {
            for o in &rec.objects {
                count.objects += self.blobs.count_versions(o, true).await?;
                counted.insert(o.clone());
            }
            count.deleted += 1;
            return Ok(());
        }
        for o in &rec.objects {
            count.objects += self.blobs.delete_all_versions(o).await?;
        }
        self.store
            .mark_recording_deleted(&rec.call_id, req.now)
            .await?;
        count.deleted += self
            .store
            .delete(vec![self.store.recording_key(&rec.call_id)])
            .await?;
        self.audit(
            "retention.recording_deleted",
            rec.lead.as_ref(),
            Some(&rec.call_id),
            req.now,
        )
        .await
    }

    /// A subject past its lead retention: erased. The data key goes first, so from that
    /// moment every copy of its ciphertext (backups included) is unreadable; then its
    /// items, its calls, its identifier claims and its objects. The §7a UWG consent proofs
    /// (own 5-year class) and the audit trail stay.
    async fn erase_subject(
        &self,
        item: &DueItem,
        req: SweepRequest,
        count: &mut ClassCount,
        counted: &HashSet<String>,
    ) -> Result<(), StoreError> {
        let Some(lead) = item.lead else {
            return Ok(());
        };
        // A live contract bars erasure (§257 HGB, §147 AO): the subject is restricted
        // instead and comes due again when its last contract period ends (R3.4).
        if let Some(until) = self.store.contract_hold(&lead, req.now).await? {
            count.held += 1;
            if !req.dry_run {
                self.leads.hold_until(&lead, until, req.now).await?;
            }
            return Ok(());
        }
        // Decided on fresh data: the index is eventually consistent and the run may be
        // old, so a subject whose contact moved (a sign-up again, a call, a legal hold)
        // since is not erased. A real run checks again atomically with the tombstone,
        // which goes first: later writes for the subject then store nothing.
        let still_due = self
            .store
            .lead_expiry(&lead)
            .await?
            .is_some_and(|expires_at| expires_at <= req.now);
        let buried = still_due && (req.dry_run || self.store.bury(&lead, req.now).await?);
        if !buried {
            count.skipped += 1;
            return Ok(());
        }
        let keys = self.store.erasure_keys(&lead).await?;
        let calls: Vec<String> = keys.iter().filter_map(|k| self.store.call_of(k)).collect();
        let prefixes = [
            format!("recordings/{lead}/"),
            format!("transcripts/{lead}/"),
        ];
        if req.dry_run {
            // Objects an earlier class of this run would already have deleted don't count
            // twice: the report must equal what a real run then does.
            for p in &prefixes {
                count.objects += self
                    .blobs
                    .version_keys(p)
                    .await?
                    .iter()
                    .filter(|k| !counted.contains(*k))
                    .count();
            }
            count.deleted += keys.len();
            return Ok(());
        }
        // The calls go to the provider-deletion outbox before anything here is gone
        // (their ids go with the call items); a provider failure keeps them queued and
        // never blocks the sweep (R3 lead class: R4.5 mechanics, Art. 19).
        if let Some(p) = &self.provider {
            p.delete_calls(&calls).await.map_err(|e| match e {
                ProviderError::Provider(s) => s,
                ProviderError::Keys(k) => StoreError {
                    operation: "provider_key",
                    retry: k.retry,
                    source: Some(Box::new(k)),
                },
            })?;
        }
        // Crypto-shredding first: from here on every copy of the subject's ciphertext
        // is unreadable, whatever fails next.
        self.store.shred_key(&lead).await?;
        // Then what the key does not protect: the objects (the audio is under the bucket
        // key only). They go before the items, and the item the expiry index named goes
        // last: a run that fails (or a Lambda that dies) part-way leaves that item due, so
        // the next run finds the subject again and finishes it (R3.2). Deleting the items
        // first left the objects of a failed run with nothing pointing at them.
        for p in &prefixes {
            count.objects += self.blobs.delete_all_versions_under(p).await?;
        }
        // The consent proofs stay, detached from the subject (no lead or call ids): what
        // is kept of an erased person joins none of its audit events.
        self.leads.detach_consent_proofs(&lead).await?;
        let (indexed, rest): (Vec<_>, Vec<_>) = keys.into_iter().partition(|k| *k == item.key);
        count.deleted += self.store.delete(rest).await?;
        count.deleted += self.store.delete(indexed).await?;
        self.audit("retention.subject_erased", Some(&lead), None, req.now)
            .await
    }

    /// Classes whose due items are simply deleted (contract records, phone-consent proofs,
    /// codes and contacts, request records): in batches of 25, the budget checked between
    /// batches.
    async fn sweep_plain(
        &self,
        due: &[DueItem],
        req: SweepRequest,
        count: &mut ClassCount,
        started: Instant,
        budget: StdDuration,
    ) -> Result<bool, StoreError> {
        for chunk in due.chunks(BATCH_WRITE_LIMIT) {
            if started.elapsed() >= budget {
                return Ok(false);
            }
            if req.dry_run {
                count.deleted += chunk.len();
                continue;
            }
            // A request's sealed contact: its key in the key table goes first, so the
            // contact is unreadable in every backup before it is deleted here.
            let contact_keys: Vec<String> = chunk
                .iter()
                .filter(|i| i.kind.as_deref() == Some("dsar_contact"))
                .filter_map(|i| i.request_id().map(str::to_owned))
                .collect();
            if !contact_keys.is_empty() {
                self.store.delete_request_keys(contact_keys).await?;
            }
            count.deleted += self
                .store
                .delete(chunk.iter().map(|i| i.key.clone()).collect())
                .await?;
        }
        Ok(true)
    }

    /// One run. Items not reached before `budget` runs out stay due for the next run.
    pub async fn run(
        &self,
        req: SweepRequest,
        budget: StdDuration,
    ) -> Result<SweepReport, StoreError> {
        let started = Instant::now();
        let mut report = SweepReport {
            dry_run: req.dry_run,
            now: ts(req.now),
            complete: true,
            ..Default::default()
        };
        let mut first_error = None;
        let mut outbox_failed = 0;
        let mut counted = HashSet::new();
        let classes = [
            RetentionClass::Recording,
            RetentionClass::Contract(BusinessLetters),
            RetentionClass::Contract(BookingVouchers),
            RetentionClass::Contract(Books),
            RetentionClass::PhoneConsentProof,
            RetentionClass::Verification,
            RetentionClass::Export,
            RetentionClass::Request,
            RetentionClass::Lead,
        ];
        'classes: for class in classes {
            let count = report.classes.entry(class.code()).or_default();
            // A class whose index cannot be read fails alone; the others still run, and
            // the run's record and metrics say so (R3.5).
            let due = match self.due(class, req.now).await {
                Ok(due) => due,
                Err(e) => {
                    count.failed += 1;
                    tracing::error!(class = class.code(), error = %e, "expiry index not read; continuing");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            count.due += due.len();
            if matches!(
                class,
                RetentionClass::Contract(_)
                    | RetentionClass::PhoneConsentProof
                    | RetentionClass::Verification
                    | RetentionClass::Request
            ) {
                let swept = self.sweep_plain(&due, req, count, started, budget).await;
                let swept = match swept {
                    Ok(true) if class == RetentionClass::Verification && !req.dry_run => {
                        self.end_unverified(&due, req.now).await.map(|()| true)
                    }
                    other => other,
                };
                match swept {
                    Ok(true) => continue,
                    Ok(false) => {
                        report.complete = false;
                        break 'classes;
                    }
                    Err(e) => {
                        count.failed += 1;
                        tracing::error!(class = class.code(), error = %e, "sweep batch failed; continuing");
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            for item in &due {
                if started.elapsed() >= budget {
                    report.complete = false;
                    break 'classes;
                }
                let result = match class {
                    RetentionClass::Recording => {
                        self.sweep_recording(item, req, count, &mut counted).await
                    }
                    RetentionClass::Export => self.sweep_export(item, req, count).await,
                    _ => self.erase_subject(item, req, count, &counted).await,
                };
                if let Err(e) = result {
                    count.failed += 1;
                    tracing::error!(class = class.code(), error = %e, "sweep item failed; continuing");
                    first_error.get_or_insert(e);
                }
            }
        }
        if !req.dry_run && report.complete {
            let left = budget.saturating_sub(started.elapsed());
            if let Err(e) = self.drain_outbox(left).await {
                tracing::error!(error = %e, "provider-deletion outbox not drained");
                outbox_failed = 1;
                first_error.get_or_insert(e);
            }
        }
        // Metrics before the run's record, so a failing record still shows: `SweepFailed`
        // (items, batches and index reads that failed, every run, zero included) is what
        // the alarm watches (R3.5).
        for (class, c) in &report.classes {
            crate::telemetry::metric(&format!("Swept_{class}"), c.deleted as f64);
        }
        let failed: usize =
            report.classes.values().map(|c| c.failed).sum::<usize>() + outbox_failed;
        crate::telemetry::metric("SweepFailed", failed as f64);
        if !req.dry_run {
            let counts = serde_json::to_string(&report.classes).unwrap_or_default();
            self.store
                .record_run(&counts, report.complete, req.now)
                .await?;
        }
        tracing::info!(
            dry_run = req.dry_run,
            complete = report.complete,
            "retention sweep finished"
        );
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_run_from_the_first_month_to_now() {
        let now = DateTime::parse_from_rfc3339("2024-03-15T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(months_until(now), ["2024-01", "2024-02", "2024-03"]);
    }
}
