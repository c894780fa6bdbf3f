//! The retention sweep (R3): finds due items through the expiry index, one partition per
//! class and month, and does what the registry says for each class. A class reads only
//! the months since its last complete pass (its cursor, see [`first_month`]), and due
//! subjects are erased together, in batches across subjects (see `erase_subjects`).
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

use super::ports::{DueItem, ErasurePlan, ItemKey, RetentionStore, SweepAudit, SweepCursor};
use crate::dsar::ports::{CallProvider, ProviderError};
use crate::outbox::{DrainReport, ProviderDeletions};
use crate::ports::{LeadStore, Objects, Retry, StoreError};

/// DynamoDB's limit of requests in one BatchWriteItem; the sweep deletes plain classes
/// in chunks of this size and checks its time budget between them.
pub const BATCH_WRITE_LIMIT: usize = 25;

/// The first month that can hold due items (the policy dates from April 2024).
const FIRST_MONTH: (i32, u32) = (2024, 1);

/// Subjects erased together: their keys go first (batches of 25), then their objects and
/// items in full batches across them; the time budget is checked between rounds.
pub const ERASURE_ROUND: usize = 100;

/// How far before its cursor a class's next pass starts reading: items written with a
/// due time a little in the past (the index is eventually consistent; a writer's clock
/// or a due date computed from an earlier event) still fall into what it reads.
pub const CURSOR_SLACK: chrono::Duration = chrono::Duration::days(31);

/// A class is read from the first month again when its last such full pass is older
/// than this: what a writer put into an already-swept month (a contract or request
/// entered with a historic date) waits at most this long.
pub const FULL_PASS_EVERY: chrono::Duration = chrono::Duration::days(30);

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
#[cfg(test)]
fn months_until(now: DateTime<Utc>) -> Vec<String> {
    months_between(FIRST_MONTH, now)
}

/// Months from `first` to the month of `now`, as `YYYY-MM`.
fn months_between(first: (i32, u32), now: DateTime<Utc>) -> Vec<String> {
    let (mut y, mut m) = first.max(FIRST_MONTH);
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

/// Where a class's pass starts reading, and whether that is a full pass (from the first
/// month). Without a cursor, with one whose full pass is [`FULL_PASS_EVERY`] old, or
/// with a clock before it (a moved clock): full. Otherwise from the month of the earlier
/// of the cursor and `now`, less [`CURSOR_SLACK`]. What can be due and was not swept by
/// the cursor's pass is in these months: every month before the cursor's held only items
/// due before it, which that complete pass removed (or moved: held, kept).
pub fn first_month(cursor: Option<SweepCursor>, now: DateTime<Utc>) -> ((i32, u32), bool) {
    match cursor {
        Some(c) if c.full_at <= now && now - c.full_at < FULL_PASS_EVERY => {
            let from = c.swept_at.min(now) - CURSOR_SLACK;
            ((from.year(), from.month()), false)
        }
        _ => (FIRST_MONTH, true),
    }
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

    /// Due items of a class from month `first` on, oldest month first.
    async fn due(
        &self,
        class: RetentionClass,
        first: (i32, u32),
        now: DateTime<Utc>,
    ) -> Result<Vec<DueItem>, StoreError> {
        let mut items = Vec::new();
        for month in months_between(first, now) {
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

    /// Subjects past their lead retention: erased, [`ERASURE_ROUND`] at a time. Each
    /// round reads every subject's partition afresh (the index is eventually consistent
    /// and the run may be old: a subject whose contact moved since is kept, one a live
    /// contract holds is restricted instead, R3.4), leaves the tombstones of the rest
    /// (atomically with the same check; later writes for them then store nothing), queues
    /// their calls for deletion at the provider, and then, for all of them together: the
    /// data keys first (batches of 25; from then on every copy of their ciphertext is
    /// unreadable, whatever fails next), their objects (the audio is under the bucket key
    /// only), their items, and last the items the index named, so a run that fails
    /// part-way leaves them due and the next run finishes the subjects (R3.2). The §7a UWG
    /// consent proofs stay, detached from the subject; the audit events go in batches.
    #[allow(clippy::too_many_arguments)]
    async fn erase_subjects(
        &self,
        due: &[DueItem],
        req: SweepRequest,
        count: &mut ClassCount,
        counted: &HashSet<String>,
        started: Instant,
        budget: StdDuration,
        first_error: &mut Option<StoreError>,
    ) -> bool {
        // The subjects in index order, each with the keys the index named.
        let mut subjects: Vec<(domain::LeadId, Vec<ItemKey>)> = Vec::new();
        for item in due {
            let Some(lead) = item.lead else { continue };
            match subjects.iter_mut().find(|(l, _)| *l == lead) {
                Some((_, keys)) => keys.push(item.key.clone()),
                None => subjects.push((lead, vec![item.key.clone()])),
            }
        }
        for round in subjects.chunks(ERASURE_ROUND) {
            if started.elapsed() >= budget {
                return false;
            }
            if let Err(e) = self.erase_round(round, req, count, counted).await {
                count.failed += 1;
                tracing::error!(class = "lead", error = %e, "erasure round failed; continuing");
                first_error.get_or_insert(e);
            }
        }
        true
    }

    async fn erase_round(
        &self,
        round: &[(domain::LeadId, Vec<ItemKey>)],
        req: SweepRequest,
        count: &mut ClassCount,
        counted: &HashSet<String>,
    ) -> Result<(), StoreError> {
        let leads: Vec<domain::LeadId> = round.iter().map(|(l, _)| *l).collect();
        let plans = self.store.erasure_plans(&leads, req.now).await?;
        let mut due_now = Vec::new();
        for plan in &plans {
            if let Some(until) = plan.hold {
                count.held += 1;
                if !req.dry_run {
                    self.leads.hold_until(&plan.lead, until, req.now).await?;
                }
            } else if plan.expires_at.is_some_and(|at| at <= req.now) {
                due_now.push(plan.lead);
            } else {
                count.skipped += 1;
            }
        }
        let buried = if req.dry_run || due_now.is_empty() {
            due_now.clone()
        } else {
            self.store.bury_all(&due_now, req.now).await?
        };
        count.skipped += due_now.len() - buried.len();
        let plans: Vec<&ErasurePlan> = plans.iter().filter(|p| buried.contains(&p.lead)).collect();
        if plans.is_empty() {
            return Ok(());
        }
        // Objects live under the subject's prefixes only when it had calls (a recording
        // is found through its call; an upload that never reached its call item is
        // removed by the bucket's lifecycle backstop).
        let prefixes: Vec<String> = plans
            .iter()
            .filter(|p| !p.calls.is_empty())
            .flat_map(|p| {
                [
                    format!("recordings/{}/", p.lead),
                    format!("transcripts/{}/", p.lead),
                ]
            })
            .collect();
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
            count.deleted += plans.iter().map(|p| p.keys.len()).sum::<usize>();
            return Ok(());
        }
        // The calls go to the provider-deletion outbox before anything here is gone
        // (their ids go with the call items); a provider failure keeps them queued and
        // never blocks the sweep (R3 lead class: R4.5 mechanics, Art. 19).
        let calls: Vec<String> = plans.iter().flat_map(|p| p.calls.clone()).collect();
        if let (Some(p), false) = (&self.provider, calls.is_empty()) {
            p.delete_calls(&calls).await.map_err(|e| match e {
                ProviderError::Provider(s) => s,
                ProviderError::Keys(k) => StoreError {
                    operation: "provider_key",
                    retry: k.retry,
                    source: Some(Box::new(k)),
                },
            })?;
        }
        let erased: Vec<domain::LeadId> = plans.iter().map(|p| p.lead).collect();
        self.store.shred_keys(&erased).await?;
        if !prefixes.is_empty() {
            count.objects += self.blobs.delete_all_versions_under_each(&prefixes).await?;
        }
        // The consent proofs stay, detached from the subject (no lead or call ids): what
        // is kept of an erased person joins none of its audit events. Their originals go
        // with the subject's other items.
        let proofs: Vec<ItemKey> = plans.iter().flat_map(|p| p.proofs.clone()).collect();
        if !proofs.is_empty() {
            self.store.detach_proofs(&proofs).await?;
        }
        let named: HashSet<&ItemKey> = round.iter().flat_map(|(_, keys)| keys).collect();
        let (indexed, mut rest): (Vec<ItemKey>, Vec<ItemKey>) = plans
            .iter()
            .flat_map(|p| p.keys.iter().cloned())
            .partition(|k| named.contains(k));
        let originals = proofs.len();
        rest.extend(proofs);
        count.deleted += self.store.delete(rest).await?.saturating_sub(originals);
        count.deleted += self.store.delete(indexed).await?;
        let events: Vec<SweepAudit<'_>> = plans
            .iter()
            .map(|p| SweepAudit {
                action: "retention.subject_erased",
                lead: Some(&p.lead),
                call_id: None,
                at: req.now,
            })
            .collect();
        self.store.audit_all(&events).await
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
        // Each class reads only the months that can hold what came due since its last
        // complete pass; without cursors (or when they cannot be read) every month.
        let cursors = self.store.cursors().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "sweep cursors not read; reading every month");
            BTreeMap::new()
        });
        let mut moved: Vec<(&'static str, SweepCursor)> = Vec::new();
        'classes: for class in classes {
            let count = report.classes.entry(class.code()).or_default();
            let cursor = cursors.get(class.code()).copied();
            let (first, full) = first_month(cursor, req.now);
            let done = SweepCursor {
                swept_at: req.now,
                full_at: match (full, cursor) {
                    (false, Some(c)) => c.full_at,
                    _ => req.now,
                },
            };
            // A class whose index cannot be read fails alone; the others still run, and
            // the run's record and metrics say so (R3.5).
            let due = match self.due(class, first, req.now).await {
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
                    Ok(true) => {
                        moved.push((class.code(), done));
                        continue;
                    }
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
            if class == RetentionClass::Lead {
                let failed = count.failed;
                let finished = self
                    .erase_subjects(
                        &due,
                        req,
                        count,
                        &counted,
                        started,
                        budget,
                        &mut first_error,
                    )
                    .await;
                if !finished {
                    report.complete = false;
                    break 'classes;
                }
                if count.failed == failed {
                    moved.push((class.code(), done));
                }
                continue;
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
                    _ => self.sweep_export(item, req, count).await,
                };
                if let Err(e) = result {
                    count.failed += 1;
                    tracing::error!(class = class.code(), error = %e, "sweep item failed; continuing");
                    first_error.get_or_insert(e);
                }
            }
            if count.failed == 0 {
                moved.push((class.code(), done));
            }
        }
        // A dry run never moves a cursor; a real run moves those of the classes it passed
        // completely (no failure, not cut off), so the next run starts there.
        let mut cursor_failed = 0;
        if !req.dry_run && !moved.is_empty() {
            if let Err(e) = self.store.set_cursors(&moved).await {
                tracing::error!(error = %e, "sweep cursors not moved; the next run reads more");
                cursor_failed = 1;
                first_error.get_or_insert(e);
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
        let failed: usize = report.classes.values().map(|c| c.failed).sum::<usize>()
            + outbox_failed
            + cursor_failed;
        crate::telemetry::metric("SweepFailed", failed as f64);
        // A real run cut off by its budget: the next run continues, but a sweep that never
        // completes falls behind (the alarm watches this, next to `SweepFailed`).
        if !req.dry_run {
            let incomplete = if report.complete { 0.0 } else { 1.0 };
            crate::telemetry::metric("SweepIncomplete", incomplete);
        }
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
