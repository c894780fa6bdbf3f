//! Fakes of the analytics export job's ports: the job items (versioned, conditional
//! checkpoints), the calls in pages (cursor = the last call id of a page, in key order,
//! as a scan's last evaluated key), and multipart uploads that keep S3's rules (a part
//! number uploaded again replaces the earlier part; completion takes exactly the listed
//! parts with their ETags; every part but the last at least `min_part`).
//!
//! Faults: every fake has a [`FaultSwitch`]; the checkpoints can also be failed once
//! after `n` more successful ones ([`MemoryExportJobs::fail_checkpoint_after`]), which
//! puts a fault exactly between "part uploaded" and "checkpoint written".

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use usecases::dsar::analytics_job::{
    CallPage, CallSource, ExportJob, ExportJobs, Part, PartUploads,
};
use usecases::dsar::ports::AnalyticsCall;
use usecases::ports::{Retry, StoreError};

use crate::FaultSwitch;

fn error(operation: &'static str, retry: Retry) -> StoreError {
    StoreError {
        operation,
        retry,
        source: None,
    }
}

#[derive(Default)]
struct JobsState {
    jobs: HashMap<String, ExportJob>,
    audits: Vec<(String, String)>,
    checkpoints: usize,
    /// Fail the checkpoint once `Some(0)` is reached (counted down per checkpoint).
    fail_after: Option<usize>,
}

#[derive(Clone, Default)]
pub struct MemoryExportJobs {
    state: Arc<Mutex<JobsState>>,
    pub faults: FaultSwitch,
}

impl MemoryExportJobs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next checkpoint after `n` successful ones fails (transiently), once.
    pub fn fail_checkpoint_after(&self, n: usize) {
        self.state.lock().unwrap().fail_after = Some(n);
    }

    /// The audit items written with new jobs: `(actor, action)`.
    pub fn audits(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().audits.clone()
    }

    /// Checkpoints written so far.
    pub fn checkpoints(&self) -> usize {
        self.state.lock().unwrap().checkpoints
    }

    pub fn stored(&self, export_id: &str) -> Option<ExportJob> {
        self.state.lock().unwrap().jobs.get(export_id).cloned()
    }
}

#[async_trait]
impl ExportJobs for MemoryExportJobs {
    async fn create(&self, job: &ExportJob, actor: &str) -> Result<(), StoreError> {
        self.faults.check("create_analytics_job")?;
        let mut s = self.state.lock().unwrap();
        if s.jobs.contains_key(&job.export_id) {
            return Err(error("create_analytics_job", Retry::Permanent));
        }
        s.jobs.insert(job.export_id.clone(), job.clone());
        s.audits
            .push((actor.to_owned(), "analytics.exported".to_owned()));
        Ok(())
    }

    async fn job(&self, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
        self.faults.check("get_analytics_job")?;
        Ok(self.state.lock().unwrap().jobs.get(export_id).cloned())
    }

    async fn checkpoint(&self, job: &ExportJob) -> Result<bool, StoreError> {
        self.faults.check("checkpoint_analytics_job")?;
        let mut s = self.state.lock().unwrap();
        match s.fail_after {
            Some(0) => {
                s.fail_after = None;
                return Err(error("checkpoint_analytics_job", Retry::Transient));
            }
            Some(n) => s.fail_after = Some(n - 1),
            None => {}
        }
        let Some(stored) = s.jobs.get(&job.export_id) else {
            return Ok(false);
        };
        if stored.version != job.version {
            return Ok(false);
        }
        let mut next = job.clone();
        next.version += 1;
        s.jobs.insert(job.export_id.clone(), next);
        s.checkpoints += 1;
        Ok(true)
    }
}

/// The calls, in call-id order, a page at a time.
#[derive(Clone, Default)]
pub struct MemoryAnalyticsCalls {
    calls: Arc<Mutex<BTreeMap<String, AnalyticsCall>>>,
    pages: Arc<Mutex<usize>>,
    pub faults: FaultSwitch,
}

impl MemoryAnalyticsCalls {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, call: AnalyticsCall) {
        self.calls
            .lock()
            .unwrap()
            .insert(call.call_id.clone(), call);
    }

    /// Pages read so far.
    pub fn pages_read(&self) -> usize {
        *self.pages.lock().unwrap()
    }
}

#[async_trait]
impl CallSource for MemoryAnalyticsCalls {
    async fn page(&self, cursor: Option<&str>, limit: usize) -> Result<CallPage, StoreError> {
        self.faults.check("scan_calls")?;
        *self.pages.lock().unwrap() += 1;
        let calls = self.calls.lock().unwrap();
        let page: Vec<AnalyticsCall> = calls
            .iter()
            .filter(|(id, _)| cursor.is_none_or(|c| id.as_str() > c))
            .take(limit.max(1))
            .map(|(_, c)| c.clone())
            .collect();
        // Like a scan: a full page has a cursor, even when nothing follows it.
        let next = (page.len() == limit.max(1)).then(|| page.last().map(|c| c.call_id.clone()));
        Ok(CallPage {
            calls: page,
            next: next.flatten(),
        })
    }
}

#[derive(Default)]
struct Upload {
    key: String,
    parts: BTreeMap<u32, (String, Vec<u8>)>,
}

#[derive(Default)]
struct UploadsState {
    open: HashMap<String, Upload>,
    objects: HashMap<String, Vec<u8>>,
    aborted: Vec<String>,
    part_uploads: usize,
    etags: usize,
    /// Largest part buffer handed over.
    largest_part: usize,
}

/// Multipart uploads as S3 keeps them.
#[derive(Clone)]
pub struct MemoryPartUploads {
    state: Arc<Mutex<UploadsState>>,
    /// S3's lower bound for every part but the last.
    pub min_part: usize,
    pub faults: FaultSwitch,
}

impl MemoryPartUploads {
    pub fn new(min_part: usize) -> Self {
        Self {
            state: Arc::default(),
            min_part,
            faults: FaultSwitch::default(),
        }
    }

    /// A completed object's bytes.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.state.lock().unwrap().objects.get(key).cloned()
    }

    /// Uploads still open.
    pub fn open_uploads(&self) -> usize {
        self.state.lock().unwrap().open.len()
    }

    pub fn aborted(&self) -> Vec<String> {
        self.state.lock().unwrap().aborted.clone()
    }

    /// UploadPart calls so far.
    pub fn part_uploads(&self) -> usize {
        self.state.lock().unwrap().part_uploads
    }

    pub fn largest_part(&self) -> usize {
        self.state.lock().unwrap().largest_part
    }
}

#[async_trait]
impl PartUploads for MemoryPartUploads {
    async fn start(&self, key: &str) -> Result<String, StoreError> {
        self.faults.check("create_multipart_upload")?;
        let mut s = self.state.lock().unwrap();
        s.etags += 1;
        let id = format!("upload-{}", s.etags);
        s.open.insert(
            id.clone(),
            Upload {
                key: key.to_owned(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        self.faults.check("upload_part")?;
        let mut s = self.state.lock().unwrap();
        s.etags += 1;
        s.part_uploads += 1;
        s.largest_part = s.largest_part.max(bytes.len());
        let etag = format!("\"etag-{}\"", s.etags);
        let upload = s
            .open
            .get_mut(upload_id)
            .filter(|u| u.key == key)
            .ok_or_else(|| error("upload_part", Retry::Permanent))?;
        upload.parts.insert(number, (etag.clone(), bytes));
        Ok(etag)
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<bool, StoreError> {
        self.faults.check("complete_multipart_upload")?;
        let mut s = self.state.lock().unwrap();
        let Some(upload) = s.open.get(upload_id).filter(|u| u.key == key) else {
            return Ok(s.objects.contains_key(key));
        };
        let mut body = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let (etag, bytes) = upload
                .parts
                .get(&p.number)
                .ok_or_else(|| error("complete_multipart_upload", Retry::Permanent))?;
            let ascending = i == 0 || parts[i - 1].number < p.number;
            let last = i + 1 == parts.len();
            if *etag != p.etag || !ascending || (!last && bytes.len() < self.min_part) {
                return Err(error("complete_multipart_upload", Retry::Permanent));
            }
            body.extend_from_slice(bytes);
        }
        s.open.remove(upload_id);
        s.objects.insert(key.to_owned(), body);
        Ok(true)
    }

    async fn abort(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.faults.check("abort_multipart_upload")?;
        let mut s = self.state.lock().unwrap();
        s.open.remove(upload_id);
        s.aborted.push(upload_id.to_owned());
        Ok(())
    }
}
