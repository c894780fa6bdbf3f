//! The pseudonymised analytics export (R6) as an asynchronous, resumable job.
//!
//! Staff start a job ([`AnalyticsExports::start`]: an `ANALYTICS#<export_id>` item,
//! `running`, audited with their principal); a worker carries it out in slices
//! ([`AnalyticsExports::run_slice`]), each as long as the invocation's time budget allows:
//! - the calls are read a page at a time (a scan page, [`CallSource`]), each page turned
//!   into JSON Lines in a part buffer; the subjects they name are read through a bounded
//!   cache. Memory holds one part and one page, never the whole file;
//! - a full part (at least [`MIN_PART_BYTES`], S3's lower bound for every part but the
//!   last) goes to the multipart upload under the part number after the checkpointed ones,
//!   and then the job item is checkpointed atomically (conditional on its version): the
//!   cursor after the part's last page, the part list (number + ETag) and the counters;
//! - on resume (next slice, after a timeout, a crash or a throttle) the worker continues
//!   from the checkpoint. Rows produced after it are produced again and uploaded under the
//!   same part number, which replaces whatever a crashed attempt uploaded there, and only
//!   the checkpointed part list is completed: each row is in the file exactly once;
//! - at the end the upload is completed and the job is `done`; a permanent failure (or
//!   [`MAX_FAILURES`] transient ones, or [`MAX_STALLED`] slices without a part) aborts the
//!   upload, leaves the job `failed` and emits `AnalyticsExportFailed`.
//!
//! The privacy rules are those of the synchronous export it replaces: calls of restricted
//! or objecting subjects, and of subjects whose retention ends before the file expires,
//! are left out; summaries are redacted; subjects and calls are named by keyed hashes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::analytics::{may_name, ANALYTICS_PREFIX};
use super::ports::AnalyticsCall;
use super::staff::redact;
use crate::ports::{KeyError, KeyService, Retry, StoreError};
use crate::signup::{Lead, LeadService, ReadError};
use crate::telephony::webhook::CallService;
use domain::clock::Clock;
use domain::LeadId;

/// The `kind` of a job item.
pub const JOB_KIND: &str = "analytics_export";
/// S3's lower bound for every part of a multipart upload but the last.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// Transient failures of one job before it is given up.
pub const MAX_FAILURES: u32 = 5;
/// Slices in a row that ended without uploading a part before the job is given up (a
/// part that cannot be built within one time budget would otherwise loop forever).
pub const MAX_STALLED: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// An uploaded part: its number and the ETag S3 answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    pub number: u32,
    pub etag: String,
}

/// An analytics export job as stored (`ANALYTICS#<export_id>`). Holds no personal data:
/// the cursor is a table key (opaque ids), the counters are counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    pub export_id: String,
    pub status: JobStatus,
    pub object_key: String,
    pub created_at: DateTime<Utc>,
    /// The multipart upload, once started.
    pub upload_id: Option<String>,
    /// Where the calls not yet in an uploaded part start (`None`: at the beginning).
    pub cursor: Option<String>,
    /// Every call is in an uploaded part (the last part is in `parts`).
    pub scanned: bool,
    pub parts: Vec<Part>,
    /// Rows in the uploaded parts.
    pub calls: u64,
    /// Calls left out of the uploaded parts (restricted, objecting, short retention).
    pub omitted: u64,
    pub failures: u32,
    /// Slices in a row that ended without a part.
    pub stalled: u32,
    pub failure_reason: Option<String>,
    /// The stored version; every checkpoint writes `version + 1` on condition.
    pub version: u64,
}

impl ExportJob {
    /// A new job started at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        let id = uuid::Uuid::now_v7();
        Self {
            export_id: id.to_string(),
            status: JobStatus::Running,
            object_key: format!(
                "{ANALYTICS_PREFIX}{}-{}.jsonl",
                now.format("%Y%m%dT%H%M%SZ"),
                id.simple()
            ),
            created_at: now,
            upload_id: None,
            cursor: None,
            scanned: false,
            parts: Vec::new(),
            calls: 0,
            omitted: 0,
            failures: 0,
            stalled: 0,
            failure_reason: None,
            version: 0,
        }
    }

    /// What the status route shows: the counters always, the file once it is done.
    pub fn view(&self) -> Value {
        let mut v = json!({
            "export_id": self.export_id,
            "status": self.status.as_str(),
            "calls": self.calls,
            "omitted": self.omitted,
        });
        if self.status == JobStatus::Done {
            v["object_key"] = json!(self.object_key);
        }
        if let Some(reason) = &self.failure_reason {
            v["failure_reason"] = json!(reason);
        }
        v
    }

    /// When the job item may go: with the file it describes (its lifetime plus a day).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.created_at + Duration::days(i64::from(domain::retention::ANALYTICS_FILE_DAYS) + 1)
    }
}

/// Whether an export id is well-formed (a UUID), before any lookup.
pub fn valid_export_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

/// Starts a job at `now` for `actor`: stored `running` with its audit item
/// (`analytics.exported`, naming `actor`). Storing it starts the worker.
pub async fn start_export(
    jobs: &dyn ExportJobs,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<ExportJob, StoreError> {
    let job = ExportJob::new(now);
    jobs.create(&job, actor).await?;
    tracing::info!(export_id = %job.export_id, "analytics export started");
    Ok(job)
}

/// The job `export_id`; `None` when there is none or the id is malformed.
pub async fn find_export(
    jobs: &dyn ExportJobs,
    export_id: &str,
) -> Result<Option<ExportJob>, StoreError> {
    if !valid_export_id(export_id) {
        return Ok(None);
    }
    jobs.job(export_id).await
}

/// The job items.
#[async_trait]
pub trait ExportJobs: Send + Sync {
    /// Stores the audit item naming `actor` (`analytics.exported`), then the new job.
    async fn create(&self, job: &ExportJob, actor: &str) -> Result<(), StoreError>;
    async fn job(&self, export_id: &str) -> Result<Option<ExportJob>, StoreError>;
    /// Writes `job` as version `job.version + 1`, on condition that the stored version
    /// is still `job.version`; `false` when it is not (another worker moved the job on).
    async fn checkpoint(&self, job: &ExportJob) -> Result<bool, StoreError>;
}

/// One page of calls and the cursor after it (`None`: the last page).
#[derive(Debug, Clone, Default)]
pub struct CallPage {
    pub calls: Vec<AnalyticsCall>,
    pub next: Option<String>,
}

/// The calls, a page at a time from an opaque cursor.
#[async_trait]
pub trait CallSource: Send + Sync {
    async fn page(&self, cursor: Option<&str>, limit: usize) -> Result<CallPage, StoreError>;
}

/// A multipart upload addressed by its id, so it can be continued by another process.
#[async_trait]
pub trait PartUploads: Send + Sync {
    /// Starts an upload (SSE-KMS under the data key); its id.
    async fn start(&self, key: &str) -> Result<String, StoreError>;
    /// Uploads part `number` (replacing an earlier upload of that number); its ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError>;
    /// Completes the upload from exactly `parts`. When the upload is gone, `Ok(true)` if
    /// the object exists (an earlier attempt completed it), else `Ok(false)`.
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<bool, StoreError>;
    /// Aborts the upload (gone is fine).
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;
}

/// What limits one slice: the invocation's deadline, and (tests, benchmarks) a number of
/// pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub deadline: Option<Instant>,
    pub pages: Option<usize>,
}

impl Budget {
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            pages: None,
        }
    }

    fn spent(&self, pages: usize) -> bool {
        self.pages.is_some_and(|max| pages >= max)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// How a slice ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SliceOutcome {
    /// The file is complete.
    Done(ExportJob),
    /// The budget ran out; the job was checkpointed (which starts the next slice).
    Paused(ExportJob),
    /// The job was given up.
    Failed(ExportJob),
    /// Nothing to do: unknown, not running, or another worker moved it on.
    Idle,
}

/// A failure of a slice; `retry` says whether another attempt can help.
#[derive(Debug, thiserror::Error)]
#[error("analytics export {operation} failed ({retry:?})")]
pub struct SliceError {
    pub operation: &'static str,
    pub retry: Retry,
}

impl From<StoreError> for SliceError {
    fn from(e: StoreError) -> Self {
        Self {
            operation: e.operation,
            retry: e.retry,
        }
    }
}

impl From<KeyError> for SliceError {
    fn from(e: KeyError) -> Self {
        Self {
            operation: e.operation,
            retry: e.retry,
        }
    }
}

impl From<ReadError> for SliceError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Keys(k) => k.into(),
            ReadError::Store(s) => s.into(),
            ReadError::Crypto(_) | ReadError::Malformed => Self {
                operation: "read_subject",
                retry: Retry::Permanent,
            },
        }
    }
}

/// A subject as the export needs it: whether it may be named, its pseudonym, and the
/// lead (for the summary's key and the values redacted from it) when it may.
struct Subject {
    pseudonym: String,
    /// `None`: the lead is gone (the call is kept, named, without summary).
    lead: Option<(Lead, domain::crypto::DataKey)>,
}

/// The analytics export jobs.
pub struct AnalyticsExports {
    pub jobs: Arc<dyn ExportJobs>,
    pub calls: Arc<dyn CallSource>,
    pub uploads: Arc<dyn PartUploads>,
    pub leads: Arc<LeadService>,
    pub keys: Arc<dyn KeyService>,
    pub clock: Arc<dyn Clock>,
    /// Calls per page read.
    pub page_size: usize,
    /// A part is uploaded once its buffer holds this many bytes (at least
    /// [`MIN_PART_BYTES`] against S3).
    pub part_bytes: usize,
    /// Subjects held at most (at least a page's worth are admitted).
    pub subject_cache: usize,
    /// Key-service calls in flight at once.
    pub concurrency: usize,
}

/// Defaults for AWS: 500 calls a page, 8 MiB parts, 2 000 subjects cached, 16 pseudonyms
/// in flight.
pub const PAGE_SIZE: usize = 500;
pub const PART_BYTES: usize = 8 * 1024 * 1024;
pub const SUBJECT_CACHE: usize = 2_000;
pub const CONCURRENCY: usize = 16;

impl AnalyticsExports {
    /// Starts a job for `actor` ([`start_export`]).
    pub async fn start(&self, actor: &str) -> Result<ExportJob, StoreError> {
        start_export(self.jobs.as_ref(), self.clock.now(), actor).await
    }

    /// The job `export_id` ([`find_export`]).
    pub async fn job(&self, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
        find_export(self.jobs.as_ref(), export_id).await
    }

    /// Carries the job on from its checkpoint until it is done or `budget` is spent.
    pub async fn run_slice(
        &self,
        export_id: &str,
        budget: Budget,
    ) -> Result<SliceOutcome, SliceError> {
        let Some(mut job) = self.jobs.job(export_id).await? else {
            return Ok(SliceOutcome::Idle);
        };
        if job.status != JobStatus::Running {
            return Ok(SliceOutcome::Idle);
        }
        let upload_id = match job.upload_id.clone() {
            Some(id) => id,
            None => {
                let id = self.uploads.start(&job.object_key).await?;
                job.upload_id = Some(id.clone());
                if !self.save(&mut job).await? {
                    // Another worker started its own upload; this one goes.
                    self.uploads.abort(&job.object_key, &id).await?;
                    return Ok(SliceOutcome::Idle);
                }
                id
            }
        };
        if job.scanned {
            return self.finish(job, &upload_id).await;
        }
        let now = self.clock.now();
        let mut cache: HashMap<LeadId, Subject> = HashMap::new();
        let mut buffer: Vec<u8> = Vec::with_capacity(self.part_bytes.min(PART_BYTES) + 1024);
        let (mut rows, mut left_out) = (0u64, 0u64);
        let mut cursor = job.cursor.clone();
        let mut pages = 0usize;
        loop {
            if budget.spent(pages) {
                // The rows in the buffer are dropped: the next slice produces them again
                // from the checkpoint. The checkpoint starts that slice.
                job.stalled += 1;
                if job.stalled >= MAX_STALLED {
                    return self
                        .fail(job, "no_progress")
                        .await
                        .map(SliceOutcome::Failed);
                }
                return if self.save(&mut job).await? {
                    tracing::info!(pages, parts = job.parts.len(), "analytics export paused");
                    Ok(SliceOutcome::Paused(job))
                } else {
                    Ok(SliceOutcome::Idle)
                };
            }
            let page = self.calls.page(cursor.as_deref(), self.page_size).await?;
            pages += 1;
            self.subjects(&page.calls, &mut cache).await?;
            let names = self.call_pseudonyms(&page.calls, &cache, now).await?;
            for (call, name) in page.calls.iter().zip(names) {
                match name {
                    Some(name) => {
                        let row = row(call, &name, &cache);
                        serde_json::to_writer(&mut buffer, &row).map_err(|_| SliceError {
                            operation: "serialize_row",
                            retry: Retry::Permanent,
                        })?;
                        buffer.push(b'\n');
                        rows += 1;
                    }
                    None => left_out += 1,
                }
            }
            cursor = page.next;
            let end = cursor.is_none();
            if buffer.len() >= self.part_bytes || end {
                let number = u32::try_from(job.parts.len() + 1).unwrap_or(u32::MAX);
                let bytes = std::mem::replace(
                    &mut buffer,
                    Vec::with_capacity(self.part_bytes.min(PART_BYTES) + 1024),
                );
                let etag = self
                    .uploads
                    .upload_part(&job.object_key, &upload_id, number, bytes)
                    .await?;
                job.parts.push(Part { number, etag });
                job.cursor = cursor.clone();
                job.calls += rows;
                job.omitted += left_out;
                job.scanned = end;
                job.stalled = 0;
                (rows, left_out) = (0, 0);
                if !self.save(&mut job).await? {
                    return Ok(SliceOutcome::Idle);
                }
                if end {
                    return self.finish(job, &upload_id).await;
                }
            }
        }
    }

    /// Completes the upload from the checkpointed parts; the job is `done`.
    async fn finish(
        &self,
        mut job: ExportJob,
        upload_id: &str,
    ) -> Result<SliceOutcome, SliceError> {
        if !self
            .uploads
            .complete(&job.object_key, upload_id, &job.parts)
            .await?
        {
            return self
                .fail(job, "upload_lost")
                .await
                .map(SliceOutcome::Failed);
        }
        job.status = JobStatus::Done;
        if !self.save(&mut job).await? {
            return Ok(SliceOutcome::Idle);
        }
        tracing::info!(
            calls = job.calls,
            omitted = job.omitted,
            parts = job.parts.len(),
            "analytics export written"
        );
        Ok(SliceOutcome::Done(job))
    }

    /// Counts a failed slice of `export_id`; a permanent failure, or the
    /// [`MAX_FAILURES`]th, gives the job up. `None` when the job is not running.
    pub async fn record_failure(
        &self,
        export_id: &str,
        retry: Retry,
    ) -> Result<Option<ExportJob>, StoreError> {
        for _ in 0..8 {
            let Some(mut job) = self.jobs.job(export_id).await? else {
                return Ok(None);
            };
            if job.status != JobStatus::Running {
                return Ok(None);
            }
            job.failures += 1;
            if retry == Retry::Permanent || job.failures >= MAX_FAILURES {
                let reason = if retry == Retry::Permanent {
                    "permanent_error"
                } else {
                    "too_many_failures"
                };
                match self.fail(job, reason).await {
                    Ok(job) => return Ok(Some(job)),
                    Err(SliceError { operation, retry }) => {
                        return Err(StoreError {
                            operation,
                            retry,
                            source: None,
                        })
                    }
                }
            }
            if self.save(&mut job).await.map_err(|e| StoreError {
                operation: e.operation,
                retry: e.retry,
                source: None,
            })? {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Aborts the upload and leaves the job `failed` with `reason`.
    async fn fail(&self, mut job: ExportJob, reason: &str) -> Result<ExportJob, SliceError> {
        if let Some(upload_id) = &job.upload_id {
            self.uploads.abort(&job.object_key, upload_id).await?;
        }
        job.status = JobStatus::Failed;
        job.failure_reason = Some(reason.to_owned());
        if self.save(&mut job).await? {
            crate::telemetry::metric("AnalyticsExportFailed", 1.0);
            tracing::error!(reason, "analytics export failed");
        }
        Ok(job)
    }

    /// Checkpoints `job` (its version moves on when it was written).
    async fn save(&self, job: &mut ExportJob) -> Result<bool, SliceError> {
        if self.jobs.checkpoint(job).await? {
            job.version += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads the page's subjects that are not cached yet, `concurrency` at a time. The
    /// cache is emptied first when they would not fit.
    async fn subjects(
        &self,
        calls: &[AnalyticsCall],
        cache: &mut HashMap<LeadId, Subject>,
    ) -> Result<(), SliceError> {
        let mut missing: Vec<LeadId> = calls
            .iter()
            .filter_map(|c| c.lead_id)
            .filter(|l| !cache.contains_key(l))
            .collect();
        missing.sort_by_key(|l| l.to_string());
        missing.dedup();
        if cache.len() + missing.len() > self.subject_cache.max(self.page_size) {
            cache.clear();
            missing = calls.iter().filter_map(|c| c.lead_id).collect();
            missing.sort_by_key(|l| l.to_string());
            missing.dedup();
        }
        for chunk in missing.chunks(self.concurrency.max(1)) {
            let mut set = tokio::task::JoinSet::new();
            for lead in chunk.iter().copied() {
                let leads = Arc::clone(&self.leads);
                let keys = Arc::clone(&self.keys);
                set.spawn(async move {
                    let read = leads.read_with_key(&lead).await?;
                    let pseudonym =
                        super::analytics::pseudonym(keys.as_ref(), "subject", &lead.to_string())
                            .await?;
                    Ok::<_, SliceError>((
                        lead,
                        Subject {
                            pseudonym,
                            lead: read,
                        },
                    ))
                });
            }
            while let Some(done) = set.join_next().await {
                let (lead, subject) = done.map_err(|_| SliceError {
                    operation: "read_subject",
                    retry: Retry::Transient,
                })??;
                cache.insert(lead, subject);
            }
        }
        Ok(())
    }

    /// The call pseudonym of each call to export, in order; `None` for a call left out.
    async fn call_pseudonyms(
        &self,
        calls: &[AnalyticsCall],
        cache: &HashMap<LeadId, Subject>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<String>>, SliceError> {
        let mut out: Vec<Option<String>> = vec![None; calls.len()];
        let wanted: Vec<usize> = (0..calls.len())
            .filter(|i| !left_out(&calls[*i], cache, now))
            .collect();
        for chunk in wanted.chunks(self.concurrency.max(1)) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let keys = Arc::clone(&self.keys);
                let id = calls[i].call_id.clone();
                set.spawn(async move {
                    let name = super::analytics::pseudonym(keys.as_ref(), "call", &id).await?;
                    Ok::<_, KeyError>((i, name))
                });
            }
            while let Some(done) = set.join_next().await {
                let (i, name) = done.map_err(|_| SliceError {
                    operation: "pseudonym",
                    retry: Retry::Transient,
                })??;
                out[i] = Some(name);
            }
        }
        Ok(out)
    }
}

/// Whether a call stays out of the file: its subject restricted processing or objected
/// (R4.7, R4.8), or its retention ends before the file would expire.
fn left_out(call: &AnalyticsCall, cache: &HashMap<LeadId, Subject>, now: DateTime<Utc>) -> bool {
    call.lead_id
        .and_then(|l| cache.get(&l))
        .and_then(|s| s.lead.as_ref())
        .is_some_and(|(l, _)| !l.stored.may_process() || !may_name(l.stored.expires_at, now))
}

/// One row: opaque subject and call, duration, outcome, the summary redacted.
fn row(call: &AnalyticsCall, call_name: &str, cache: &HashMap<LeadId, Subject>) -> Value {
    let subject = call.lead_id.and_then(|l| cache.get(&l));
    let summary = match (subject.and_then(|s| s.lead.as_ref()), &call.sealed_call) {
        (Some((l, key)), Some(sealed)) => {
            CallService::open(key, &call.call_id, "sealed_call", sealed)
                .ok()
                .and_then(|plain| serde_json::from_slice::<Value>(&plain).ok())
                .and_then(|v| {
                    v["call_analysis"]["call_summary"].as_str().map(|t| {
                        let p = &l.profile;
                        redact(
                            t,
                            &[
                                p.first_name.expose(),
                                p.last_name.expose(),
                                p.email.expose(),
                                p.phone.expose(),
                            ],
                        )
                    })
                })
        }
        _ => None,
    };
    json!({
        "call": call_name,
        "subject": subject.map(|s| s.pseudonym.as_str()),
        "started_at": call.start_at,
        "duration_ms": call.duration_ms,
        "status": call.call_status,
        "disconnection_reason": call.disconnection_reason,
        "recording_consent": call.consent_granted,
        "summary": summary,
    })
}
