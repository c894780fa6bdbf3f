//! The analytics export job (R6) on fakes: paging, parts, checkpoints, resumption after a
//! spent budget and after a fault between a part's upload and its checkpoint, failure,
//! and two jobs side by side.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::Duration;
use domain::{Clock, Email, LeadId, LeadProfile, Notes, PersonName, PhoneNumber};
use serde_json::{json, Value};
use testkit::analytics::{MemoryAnalyticsCalls, MemoryExportJobs, MemoryPartUploads};
use testkit::World;
use usecases::dsar::analytics_job::{
    AnalyticsExports, Budget, ExportJob, JobStatus, SliceOutcome, MAX_STALLED,
};
use usecases::dsar::ports::AnalyticsCall;
use usecases::ports::Retry;
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};
use usecases::telemetry::capture::MetricCapture;

const STAFF: &str = "arn:aws:sts::123456789012:assumed-role/polly-staff/anna";
/// Part size of these tests (the fake upload enforces it for every part but the last).
const PART: usize = 4_000;
const PAGE: usize = 7;

struct Fixture {
    world: World,
    leads: Arc<LeadService>,
    jobs: MemoryExportJobs,
    calls: MemoryAnalyticsCalls,
    uploads: MemoryPartUploads,
    exports: AnalyticsExports,
}

impl Fixture {
    fn new() -> Self {
        let world = World::new();
        let leads = Arc::new(world.signup());
        let jobs = MemoryExportJobs::new();
        let calls = MemoryAnalyticsCalls::new();
        let uploads = MemoryPartUploads::new(PART);
        let exports = AnalyticsExports {
            jobs: Arc::new(jobs.clone()),
            calls: Arc::new(calls.clone()),
            uploads: Arc::new(uploads.clone()),
            leads: leads.clone(),
            keys: world.keys.clone(),
            clock: Arc::new(world.clock.clone()),
            page_size: PAGE,
            part_bytes: PART,
            subject_cache: 3,
            concurrency: 4,
        };
        Self {
            world,
            leads,
            jobs,
            calls,
            uploads,
            exports,
        }
    }

    async fn subject(&self, n: usize) -> LeadId {
        let request = SignupRequest {
            profile: LeadProfile {
                first_name: PersonName::parse("Wilhelmine").unwrap(),
                last_name: PersonName::parse("Zwetschgenbaum").unwrap(),
                email: Email::parse(&format!("w{n}@example.org")).unwrap(),
                phone: PhoneNumber::parse(&format!("0171 55501{n:02}")).unwrap(),
                notes: Notes::parse("Bitte nach 17 Uhr anrufen.").unwrap(),
            },
            source_ip: Some("203.0.113.7".parse().unwrap()),
            client: None,
            policy_version: "2026-11".into(),
            call_window: None,
        };
        match self.leads.sign_up(request).await.unwrap() {
            SignupOutcome::Created { id } => id,
            other => panic!("{other:?}"),
        }
    }

    /// `count` calls of `lead`, each with a summary naming the subject.
    async fn calls_of(&self, lead: LeadId, from: usize, count: usize) {
        let (_, key) = self.leads.read_with_key(&lead).await.unwrap().unwrap();
        for i in from..from + count {
            let call_id = format!("call_{i:05}");
            let summary = format!(
                "Wilhelmine Zwetschgenbaum möchte Termin Nummer {i}, Rückruf unter 0171 5550123."
            );
            let plain =
                serde_json::to_vec(&json!({"call_analysis": {"call_summary": summary}})).unwrap();
            let sealed = key
                .seal(
                    &usecases::telephony::webhook::call_aad(&call_id, "sealed_call"),
                    &plain,
                )
                .unwrap();
            self.calls.insert(AnalyticsCall {
                call_id,
                lead_id: Some(lead),
                start_at: Some("2026-11-27T10:00:00Z".into()),
                duration_ms: Some(60_000 + i as i64),
                call_status: Some("ended".into()),
                disconnection_reason: Some("user_hangup".into()),
                consent_granted: Some(true),
                sealed_call: Some(sealed),
            });
        }
    }

    /// Five subjects with 20 calls each (call ids interleaved across subjects by number),
    /// one of them restricted, one whose retention ends before the file would: 60 calls
    /// to export, 40 to leave out.
    async fn population(&self) {
        for n in 0..5 {
            let lead = self.subject(n).await;
            self.calls_of(lead, n * 20, 20).await;
            match n {
                1 => self.world.leads.set_flags(&lead, true, false, false),
                3 => self
                    .world
                    .leads
                    .set_expiry(&lead, self.world.clock.now() + Duration::days(30)),
                _ => {}
            }
        }
    }

    /// Runs slices of `export_id` within `budget` until the job ends; the slices taken.
    async fn run_to_end(&self, export_id: &str, budget: Budget) -> (ExportJob, usize) {
        for slice in 1..=500 {
            match self.exports.run_slice(export_id, budget).await {
                Ok(SliceOutcome::Done(job)) | Ok(SliceOutcome::Failed(job)) => return (job, slice),
                Ok(SliceOutcome::Paused(_)) => {}
                Ok(SliceOutcome::Idle) => panic!("idle while running"),
                Err(e) => {
                    self.exports
                        .record_failure(export_id, e.retry)
                        .await
                        .unwrap();
                }
            }
        }
        panic!("the job never ended")
    }

    /// The file's rows, parsed.
    fn rows(&self, job: &ExportJob) -> Vec<Value> {
        let body = self.uploads.object(&job.object_key).expect("the file");
        String::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Each call pseudonym once, and how many rows there were.
fn distinct_calls(rows: &[Value]) -> (usize, usize) {
    let names: HashSet<&str> = rows.iter().map(|r| r["call"].as_str().unwrap()).collect();
    (rows.len(), names.len())
}

/// R6: a job read a page at a time writes the file in several parts, each (but the last)
/// at least the part size and at most a part plus one page; every exportable call once,
/// the restricted subject's and the short-retention subject's calls left out and
/// counted, summaries redacted, nobody named in clear; the upload ends completed.
#[tokio::test]
async fn a_paged_export_writes_each_call_once_in_parts() {
    let f = Fixture::new();
    f.population().await;
    let job = f.exports.start(STAFF).await.unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(
        f.jobs.audits(),
        [(STAFF.to_owned(), "analytics.exported".to_owned())]
    );

    let (done, slices) = f.run_to_end(&job.export_id, Budget::default()).await;
    assert_eq!(slices, 1);
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!((done.calls, done.omitted), (60, 40));
    let rows = f.rows(&done);
    assert_eq!(distinct_calls(&rows), (60, 60));
    assert!(done.parts.len() >= 3, "{} parts", done.parts.len());
    // One part at most holds a part and a page (~200 bytes a row).
    assert!(f.uploads.largest_part() < PART + PAGE * 400);
    assert_eq!(f.uploads.open_uploads(), 0);
    let subjects: HashSet<&str> = rows
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 3);
    let text = String::from_utf8(f.uploads.object(&done.object_key).unwrap()).unwrap();
    for secret in [
        "Wilhelmine",
        "Zwetschgenbaum",
        "5550123",
        "example.org",
        "call_0",
    ] {
        assert!(!text.contains(secret), "{secret} in the file");
    }
    assert!(rows[0]["summary"]
        .as_str()
        .unwrap()
        .starts_with("[NAME] [NAME] möchte Termin Nummer"));
    assert_eq!(
        f.jobs.stored(&job.export_id).unwrap().status,
        JobStatus::Done
    );
}

/// R6: an export whose time budget runs out every few pages goes on from its checkpoint
/// in the next slice and yields exactly the file of an uninterrupted export: each row
/// once, none lost, none twice.
#[tokio::test]
async fn an_export_paused_by_its_budget_resumes_with_each_row_once() {
    let f = Fixture::new();
    f.population().await;
    let whole = f.exports.start(STAFF).await.unwrap();
    let (whole, _) = f.run_to_end(&whole.export_id, Budget::default()).await;
    let sliced = f.exports.start(STAFF).await.unwrap();
    let budget = Budget {
        deadline: None,
        pages: Some(6),
    };
    let (sliced, slices) = f.run_to_end(&sliced.export_id, budget).await;
    assert_eq!(sliced.status, JobStatus::Done);
    assert!(slices >= 3, "{slices} slices");
    let lines = |job: &ExportJob| {
        let mut l: Vec<String> = f.rows(job).iter().map(Value::to_string).collect();
        l.sort();
        l
    };
    assert_eq!(lines(&sliced), lines(&whole));
    assert_eq!(distinct_calls(&f.rows(&sliced)), (60, 60));
    assert_eq!((sliced.calls, sliced.omitted), (60, 40));
}

/// R6: a fault between "part uploaded" and "checkpoint written" (the checkpoint fails)
/// loses nothing and duplicates nothing: the next slice produces the rows after the last
/// checkpoint again and uploads them under the same part number, replacing the orphan.
#[tokio::test]
async fn a_fault_between_part_and_checkpoint_yields_each_row_once() {
    for after in [1, 2, 3] {
        let f = Fixture::new();
        f.population().await;
        let job = f.exports.start(STAFF).await.unwrap();
        // Checkpoint 1 records the upload id, 2.. the parts.
        f.jobs.fail_checkpoint_after(after);
        let first = f.exports.run_slice(&job.export_id, Budget::default()).await;
        let err = first.expect_err("the checkpoint fails");
        assert_eq!(err.retry, Retry::Transient);
        let counted = f
            .exports
            .record_failure(&job.export_id, err.retry)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((counted.status, counted.failures), (JobStatus::Running, 1));
        let (done, _) = f.run_to_end(&job.export_id, Budget::default()).await;
        assert_eq!(done.status, JobStatus::Done, "fault after {after}");
        assert_eq!(
            distinct_calls(&f.rows(&done)),
            (60, 60),
            "fault after {after}"
        );
        assert_eq!((done.calls, done.omitted), (60, 40));
        assert!(
            f.uploads.part_uploads() > done.parts.len(),
            "a part was uploaded again"
        );
    }
}

/// R6: a job whose slices never get a part done is given up after `MAX_STALLED` slices
/// instead of looping: `failed`, its upload aborted, `AnalyticsExportFailed` emitted.
#[tokio::test]
async fn a_job_that_makes_no_progress_is_given_up() {
    let f = Fixture::new();
    f.population().await;
    let metrics = MetricCapture::start();
    let job = f.exports.start(STAFF).await.unwrap();
    let one_page = Budget {
        deadline: None,
        pages: Some(1),
    };
    let (failed, slices) = f.run_to_end(&job.export_id, one_page).await;
    assert_eq!(slices as u32, MAX_STALLED);
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("no_progress"));
    assert_eq!(f.uploads.aborted(), [failed.upload_id.clone().unwrap()]);
    assert_eq!(f.uploads.open_uploads(), 0);
    assert!(f.uploads.object(&failed.object_key).is_none());
    assert_eq!(metrics.values("AnalyticsExportFailed"), [1.0]);
    // A failed job stays failed: another slice does nothing.
    assert_eq!(
        f.exports
            .run_slice(&job.export_id, Budget::default())
            .await
            .unwrap(),
        SliceOutcome::Idle
    );
    assert_eq!(
        f.exports.job(&job.export_id).await.unwrap().unwrap().view()["status"],
        "failed"
    );
}

/// R6: a permanent failure gives the job up at once; transient ones only at the fifth.
#[tokio::test]
async fn failures_give_the_job_up_permanent_at_once_transient_at_the_limit() {
    let f = Fixture::new();
    f.population().await;
    let metrics = MetricCapture::start();
    let transient = f.exports.start(STAFF).await.unwrap();
    f.calls.faults.fail_with(Retry::Transient);
    for attempt in 1..=5u32 {
        let err = f
            .exports
            .run_slice(&transient.export_id, Budget::default())
            .await
            .unwrap_err();
        let job = f
            .exports
            .record_failure(&transient.export_id, err.retry)
            .await
            .unwrap()
            .unwrap();
        let expected = if attempt < 5 {
            JobStatus::Running
        } else {
            JobStatus::Failed
        };
        assert_eq!(job.status, expected, "attempt {attempt}");
    }
    f.calls.faults.heal();
    let permanent = f.exports.start(STAFF).await.unwrap();
    let job = f
        .exports
        .record_failure(&permanent.export_id, Retry::Permanent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(metrics.values("AnalyticsExportFailed"), [1.0, 1.0]);
    assert_eq!(f.uploads.open_uploads(), 0);
}

/// R6: two jobs carried on in turns, slice by slice, don't mix: each file holds every
/// exportable call once, under its own key.
#[tokio::test]
async fn two_jobs_side_by_side_do_not_mix() {
    let f = Fixture::new();
    f.population().await;
    let a = f.exports.start(STAFF).await.unwrap();
    let b = f.exports.start(STAFF).await.unwrap();
    assert_ne!(a.object_key, b.object_key);
    let budget = Budget {
        deadline: None,
        pages: Some(6),
    };
    let mut ended: BTreeMap<String, ExportJob> = BTreeMap::new();
    for _ in 0..100 {
        for id in [&a.export_id, &b.export_id] {
            if ended.contains_key(id) {
                continue;
            }
            if let SliceOutcome::Done(job) = f.exports.run_slice(id, budget).await.unwrap() {
                ended.insert(id.clone(), job);
            }
        }
    }
    assert_eq!(ended.len(), 2);
    let rows_a = f.rows(&ended[&a.export_id]);
    let rows_b = f.rows(&ended[&b.export_id]);
    assert_eq!(distinct_calls(&rows_a), (60, 60));
    assert_eq!(distinct_calls(&rows_b), (60, 60));
    let mut la: Vec<String> = rows_a.iter().map(Value::to_string).collect();
    let mut lb: Vec<String> = rows_b.iter().map(Value::to_string).collect();
    la.sort();
    lb.sort();
    assert_eq!(la, lb);
}

/// R6: a slice whose deadline has passed reads nothing and only checkpoints (which hands
/// the job to the next slice); a stale record for a job that moved on does nothing.
#[tokio::test]
async fn a_spent_deadline_reads_nothing_and_a_finished_job_is_left_alone() {
    let f = Fixture::new();
    f.population().await;
    let job = f.exports.start(STAFF).await.unwrap();
    let spent = Budget::until(std::time::Instant::now());
    let before = f.jobs.checkpoints();
    assert!(matches!(
        f.exports.run_slice(&job.export_id, spent).await.unwrap(),
        SliceOutcome::Paused(_)
    ));
    assert_eq!(f.calls.pages_read(), 0);
    // The upload's start and the pause.
    assert_eq!(f.jobs.checkpoints(), before + 2);
    let (done, _) = f.run_to_end(&job.export_id, Budget::default()).await;
    assert_eq!(done.status, JobStatus::Done);
    let pages = f.calls.pages_read();
    assert_eq!(
        f.exports
            .run_slice(&job.export_id, Budget::default())
            .await
            .unwrap(),
        SliceOutcome::Idle
    );
    assert_eq!(f.calls.pages_read(), pages);
    assert!(f.exports.job("not-an-id").await.unwrap().is_none());
}

/// R6: no calls at all still make a (empty) file and a `done` job.
#[tokio::test]
async fn an_export_of_no_calls_is_an_empty_file() {
    let f = Fixture::new();
    let job = f.exports.start(STAFF).await.unwrap();
    let (done, _) = f.run_to_end(&job.export_id, Budget::default()).await;
    assert_eq!(
        (done.status, done.calls, done.omitted),
        (JobStatus::Done, 0, 0)
    );
    assert_eq!(f.uploads.object(&done.object_key).unwrap(), b"");
}
