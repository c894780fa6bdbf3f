//! The daily digest to the privacy team on fakes: which request lands in which list at
//! moved clocks (T-7, T-3, overdue), extended, failed and stuck ones, closed ones absent,
//! the mail's recipient and content, and the overdue gauge.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::dsar::{RequestStatus, RequestType};
use domain::{Email, FixedClock, RequestId};
use testkit::{MemoryMailer, MemoryOutbox, MemoryRequests};
use usecases::dsar::digest::{digest, digest_mail, Digest, DigestJob};
use usecases::dsar::ports::RequestStore;
use usecases::dsar::records::{close, new_record, Change, OpenRecord, RequestRecord};
use usecases::outbox::{PendingDeletion, ProviderOutbox};
use usecases::telemetry::capture::MetricCapture;

const TEAM: &str = "datenschutz@pollyki.de";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Received 2027-03-01 10:00 UTC, so due 2027-04-01 (Berlin days).
fn received() -> DateTime<Utc> {
    t("2027-03-01T10:00:00Z")
}

fn request(kind: RequestType, status: RequestStatus) -> RequestRecord {
    let mut r = new_record(RequestId::new(), kind, status, received());
    if status == RequestStatus::InProgress || status == RequestStatus::Failed {
        r.verified_at = Some(received() + Duration::minutes(5));
    }
    r
}

fn ids(list: &[usecases::dsar::digest::DigestEntry]) -> Vec<String> {
    list.iter().map(|e| e.request_id.clone()).collect()
}

fn lists(d: &Digest, id: &RequestId) -> Vec<&'static str> {
    let id = id.to_string();
    let mut out = Vec::new();
    for (name, list) in [
        ("overdue", &d.overdue),
        ("due_in_3", &d.due_in_3),
        ("due_in_7", &d.due_in_7),
        ("failed", &d.failed),
        ("stuck", &d.stuck),
    ] {
        if list.iter().any(|e| e.request_id == id) {
            out.push(name);
        }
    }
    out
}

/// R4.3: a request due 2027-04-01 is in "due in 7" at T-7 (and T-4), in "due in 3" at
/// T-3 and on the due date, overdue the day after; an extended one is not overdue then.
#[test]
fn an_open_request_moves_from_due_in_7_to_due_in_3_to_overdue_as_the_clock_moves() {
    let mut open = request(RequestType::Access, RequestStatus::AwaitingIdentityCheck);
    let mut extended = request(RequestType::Erasure, RequestStatus::AwaitingIdentityCheck);
    extended.extended = true;
    extended.due_date = NaiveDate::from_ymd_opt(2027, 6, 1).unwrap();
    open.due_date = NaiveDate::from_ymd_opt(2027, 4, 1).unwrap();
    let records = vec![open.clone(), extended.clone()];
    let at = |s: &str| digest(&records, &[], t(s));
    let id = open.request_id;

    // Berlin is UTC+1 until 28 March, UTC+2 after: 08:00 UTC is the same Berlin day.
    assert_eq!(
        lists(&at("2027-03-24T08:00:00Z"), &id),
        Vec::<&str>::new(),
        "T-8"
    );
    assert_eq!(
        lists(&at("2027-03-25T08:00:00Z"), &id),
        vec!["due_in_7"],
        "T-7"
    );
    assert_eq!(
        lists(&at("2027-03-28T08:00:00Z"), &id),
        vec!["due_in_7"],
        "T-4"
    );
    assert_eq!(
        lists(&at("2027-03-29T08:00:00Z"), &id),
        vec!["due_in_3"],
        "T-3"
    );
    assert_eq!(
        lists(&at("2027-04-01T21:59:00Z"), &id),
        vec!["due_in_3"],
        "due today"
    );
    let late = at("2027-04-01T22:00:00Z");
    assert_eq!(lists(&late, &id), vec!["overdue"], "the next Berlin day");
    assert_eq!(late.overdue[0].days_left, -1);
    assert!(
        lists(&late, &extended.request_id).is_empty(),
        "extended to 2027-06-01: not due yet"
    );
    assert_eq!(
        lists(&at("2027-05-25T08:00:00Z"), &extended.request_id),
        vec!["due_in_7"],
        "the extended due date counts"
    );
}

/// R4.10: failed requests and requests in progress for over an hour are named (failed
/// with its reason code); closed ones never appear, whatever their dates.
#[test]
fn failed_and_stuck_requests_are_named_and_closed_ones_are_absent() {
    let mut failed = request(RequestType::Rectification, RequestStatus::Failed);
    failed.failure_reason = Some("rights_retries_exhausted".into());
    let stuck = request(RequestType::Access, RequestStatus::InProgress);
    let mut fresh = request(RequestType::Portability, RequestStatus::InProgress);
    fresh.verified_at = Some(received() + Duration::hours(2));
    let mut completed = request(RequestType::Access, RequestStatus::InProgress);
    close(
        &mut completed,
        RequestStatus::Completed,
        "export_ready",
        received(),
    );
    let mut denied = request(RequestType::Erasure, RequestStatus::AwaitingIdentityCheck);
    close(&mut denied, RequestStatus::Denied, "denied", received());
    let records = vec![
        failed.clone(),
        stuck.clone(),
        fresh.clone(),
        completed.clone(),
        denied.clone(),
    ];

    // 2 h 30 after receipt: `stuck` went in progress 2 h 25 ago, `fresh` 30 minutes ago.
    let d = digest(&records, &[], received() + Duration::minutes(150));
    assert_eq!(ids(&d.failed), vec![failed.request_id.to_string()]);
    assert_eq!(
        d.failed[0].failure_reason.as_deref(),
        Some("rights_retries_exhausted")
    );
    assert_eq!(ids(&d.stuck), vec![stuck.request_id.to_string()]);

    // Long after the due date: the closed ones are still absent, the open ones overdue.
    let d = digest(&records, &[], t("2027-06-01T08:00:00Z"));
    let overdue = ids(&d.overdue);
    assert_eq!(overdue.len(), 3, "{overdue:?}");
    for closed in [&completed, &denied] {
        assert!(lists(&d, &closed.request_id).is_empty());
    }
    assert!(!d.all_clear());
    assert!(digest(&[completed, denied], &[], received()).all_clear());
}

fn pending(call: &str, incident: bool, queued: DateTime<Utc>) -> PendingDeletion {
    let mut p = PendingDeletion::new(call, queued);
    p.incident = incident;
    p.attempts = if incident { 5 } else { 1 };
    p
}

/// The job mails the team (only the team) the lists with ids, types, due dates and days
/// left, no subject's data; the provider deletions with incidents first; and emits the
/// overdue count as `DsarRequestsOverdue`.
#[tokio::test]
async fn the_job_mails_the_team_the_digest_and_emits_the_overdue_count() {
    let requests = MemoryRequests::new();
    let outbox = MemoryOutbox::new();
    let mailer = MemoryMailer::new();
    let clock = FixedClock::at(t("2027-04-03T07:00:00Z"));
    let mut overdue = request(RequestType::Erasure, RequestStatus::AwaitingIdentityCheck);
    overdue.has_email = true;
    overdue.subject_email_bidx = Some("bidx-of-someone".into());
    let mut soon = request(RequestType::Access, RequestStatus::AwaitingIdentityCheck);
    soon.received_at = t("2027-03-08T10:00:00Z");
    soon.due_date = NaiveDate::from_ymd_opt(2027, 4, 8).unwrap();
    let mut done = request(RequestType::Access, RequestStatus::InProgress);
    close(
        &mut done,
        RequestStatus::Completed,
        "export_ready",
        received(),
    );
    for r in [&overdue, &soon] {
        requests
            .commit(
                r,
                None,
                vec![Change::List(OpenRecord::of(r))],
                "test",
                "dsar.received",
                received(),
            )
            .await
            .unwrap();
    }
    requests
        .commit(&done, None, vec![], "test", "dsar.received", received())
        .await
        .unwrap();
    outbox
        .enqueue(&[pending("call_plain", false, received())])
        .await
        .unwrap();
    outbox
        .enqueue(&[pending(
            "call_incident",
            true,
            received() + Duration::days(1),
        )])
        .await
        .unwrap();
    let job = DigestJob {
        requests: Arc::new(requests.clone()),
        outbox: Arc::new(outbox.clone()),
        mailer: Arc::new(mailer.clone()),
        team: Email::parse(TEAM).unwrap(),
        clock: Arc::new(clock),
    };

    let capture = MetricCapture::start();
    let d = job.run().await.unwrap();

    assert_eq!(capture.values("DsarRequestsOverdue"), vec![1.0]);
    assert_eq!(capture.values("DsarDigestSent"), vec![1.0]);
    assert_eq!(ids(&d.overdue), vec![overdue.request_id.to_string()]);
    assert_eq!(ids(&d.due_in_7), vec![soon.request_id.to_string()]);
    let sent = mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, TEAM);
    let mail = &sent[0];
    assert!(mail.subject.contains("1 overdue"), "{}", mail.subject);
    assert!(mail.subject.contains("1 incidents"), "{}", mail.subject);
    let line = mail
        .text
        .lines()
        .find(|l| l.contains(&overdue.request_id.to_string()))
        .expect("the overdue request is named");
    assert!(
        line.contains("erasure") && line.contains("2027-04-01") && line.contains("-2 days left"),
        "{line}"
    );
    assert!(
        !mail.text.contains(&done.request_id.to_string()),
        "closed: absent"
    );
    assert!(!mail.text.contains("bidx-of-someone"));
    let incident = mail.text.find("INCIDENT call_incident").expect("incident");
    let plain = mail.text.find("call_plain").expect("pending deletion");
    assert!(incident < plain, "incidents first");
}

/// A day with nothing to report still sends a mail ("all clear"): its absence means the
/// job did not run.
#[tokio::test]
async fn a_quiet_day_sends_an_all_clear_and_a_mail_failure_is_an_error() {
    let mailer = MemoryMailer::new();
    let job = DigestJob {
        requests: Arc::new(MemoryRequests::new()),
        outbox: Arc::new(MemoryOutbox::new()),
        mailer: Arc::new(mailer.clone()),
        team: Email::parse(TEAM).unwrap(),
        clock: Arc::new(FixedClock::at(received())),
    };
    let capture = MetricCapture::start();
    job.run().await.unwrap();
    assert_eq!(capture.values("DsarRequestsOverdue"), vec![0.0]);
    let sent = mailer.sent_to(TEAM);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].subject.ends_with("all clear"),
        "{}",
        sent[0].subject
    );
    assert_eq!(
        digest_mail(&digest(&[], &[], received())).subject,
        sent[0].subject
    );

    mailer.fail_with(usecases::ports::Retry::Transient);
    assert!(job.run().await.is_err());
    assert_eq!(
        capture.values("DsarDigestSent"),
        vec![1.0],
        "no DsarDigestSent for the failed run: its alarm fires"
    );
}
