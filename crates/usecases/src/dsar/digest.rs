//! The daily digest to the privacy team (R4: deadlines nobody can miss): what is due in
//! 7 days, in 3, what is overdue, what failed or is stuck, and the deletions still
//! pending at the provider, incidents first.
//!
//! [`digest`] is pure (open requests, pending deletions and `now` in, the digest out);
//! [`DigestJob`] reads the stores, sends the mail to the team's address and emits
//! `DsarRequestsOverdue` (a gauge, every run) and `DsarDigestSent` (1 per run whose mail
//! went out; its absence for a day raises an alarm).
//!
//! The mail goes out every day, also when there is nothing to report ("all clear"): a
//! silent day would look the same as a job that stopped running. It is staff-facing
//! (English) and names requests by id, type, status, due date and days left, deletions
//! by the provider's call id: nothing of a data subject.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use domain::dsar::mail::Mail;
use domain::dsar::{days_left, RequestStatus, RequestType};
use domain::{Clock, Email};

use super::ports::RequestStore;
use super::records::RequestRecord;
use crate::outbox::{PendingDeletion, ProviderOutbox};
use crate::ports::{Mailer, StoreError};
use crate::telemetry::metric;

/// A request `in_progress` without a change for this long is stuck (the staff list's
/// rule, [`super::records::is_stuck`]).
pub use super::records::STUCK_AFTER_MINUTES;

/// One request as the digest names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DigestEntry {
    pub request_id: String,
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub due_at: NaiveDate,
    pub days_left: i64,
    pub extended: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// What the digest reports. A request can be in more than one list (failed and
/// overdue); each list is ordered by due date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest {
    pub date: Option<NaiveDate>,
    /// Past the due date and still open.
    pub overdue: Vec<DigestEntry>,
    /// Due in 0 to 3 days.
    pub due_in_3: Vec<DigestEntry>,
    /// Due in 4 to 7 days.
    pub due_in_7: Vec<DigestEntry>,
    /// Failed (the worker gave up; staff retry after fixing the cause).
    pub failed: Vec<DigestEntry>,
    /// In progress for more than [`STUCK_AFTER_MINUTES`].
    pub stuck: Vec<DigestEntry>,
    /// Deletions still pending at the provider, incidents first.
    pub provider_deletions: Vec<PendingDeletion>,
}

impl Digest {
    /// Nothing needs anyone's attention.
    pub fn all_clear(&self) -> bool {
        self.overdue.is_empty()
            && self.due_in_3.is_empty()
            && self.due_in_7.is_empty()
            && self.failed.is_empty()
            && self.stuck.is_empty()
            && self.provider_deletions.is_empty()
    }

    pub fn incidents(&self) -> usize {
        self.provider_deletions
            .iter()
            .filter(|p| p.incident)
            .count()
    }
}

/// Stuck by the staff list's rule: in progress without a change for an hour, an
/// erasure waiting in its cancel window counted from the time it is scheduled to run.
fn stuck(r: &RequestRecord, now: DateTime<Utc>) -> bool {
    super::records::is_stuck(
        r.status,
        r.changed_at.or(r.verified_at),
        r.received_at,
        r.erasure_scheduled_at
            .filter(|_| r.erasure_started_at.is_none()),
        now,
    )
}

/// The digest of the `requests` (closed ones are ignored) and the pending provider
/// deletions at `now`.
pub fn digest(
    requests: &[RequestRecord],
    pending: &[PendingDeletion],
    now: DateTime<Utc>,
) -> Digest {
    let mut open: Vec<&RequestRecord> = requests.iter().filter(|r| r.status.is_open()).collect();
    open.sort_by_key(|r| (r.due_date, r.received_at));
    let mut d = Digest {
        date: Some(domain::retention::berlin_date(now)),
        ..Digest::default()
    };
    for r in open {
        let left = days_left(r.due_date, now);
        let entry = DigestEntry {
            request_id: r.request_id.to_string(),
            request_type: r.request_type,
            status: r.status,
            due_at: r.due_date,
            days_left: left,
            extended: r.extended,
            failure_reason: r.failure_reason.clone(),
        };
        match left {
            l if l < 0 => d.overdue.push(entry.clone()),
            0..=3 => d.due_in_3.push(entry.clone()),
            4..=7 => d.due_in_7.push(entry.clone()),
            _ => {}
        }
        if r.status == RequestStatus::Failed {
            d.failed.push(entry.clone());
        }
        if stuck(r, now) {
            d.stuck.push(entry);
        }
    }
    let mut pending = pending.to_vec();
    pending.sort_by(|a, b| {
        (!a.incident, a.queued_at, &a.call_id).cmp(&(!b.incident, b.queued_at, &b.call_id))
    });
    d.provider_deletions = pending;
    d
}

fn section(out: &mut String, title: &str, entries: &[DigestEntry]) {
    let _ = writeln!(out, "{title}: {}", entries.len());
    for e in entries {
        let _ = write!(
            out,
            "  - {} {} ({}) due {} ({} days left)",
            e.request_id,
            e.request_type.code(),
            e.status.code(),
            e.due_at,
            e.days_left
        );
        if e.extended {
            out.push_str(", extended");
        }
        if let Some(reason) = &e.failure_reason {
            let _ = write!(out, ", reason {reason}");
        }
        out.push('\n');
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The mail to the privacy team (English, staff-facing; ids, codes and dates only).
pub fn digest_mail(d: &Digest) -> Mail {
    let date = d.date.map(|d| d.to_string()).unwrap_or_default();
    let subject = if d.all_clear() {
        format!("Polly DSAR digest {date}: all clear")
    } else {
        format!(
            "Polly DSAR digest {date}: {} overdue, {} due in 3 days, {} due in 7 days, {} failed, {} stuck, {} provider deletions pending ({} incidents)",
            d.overdue.len(),
            d.due_in_3.len(),
            d.due_in_7.len(),
            d.failed.len(),
            d.stuck.len(),
            d.provider_deletions.len(),
            d.incidents()
        )
    };
    let mut text = format!("Data-subject requests on {date} (Europe/Berlin).\n\n");
    if d.all_clear() {
        text.push_str("All clear: nothing is due within 7 days, overdue, failed or stuck, and no deletion is pending at the provider.\n\n");
    }
    section(&mut text, "Overdue", &d.overdue);
    section(&mut text, "Due in 3 days or less", &d.due_in_3);
    section(&mut text, "Due in 4 to 7 days", &d.due_in_7);
    section(
        &mut text,
        "Failed (retry after fixing the cause)",
        &d.failed,
    );
    section(
        &mut text,
        &format!("Stuck (in progress for over {STUCK_AFTER_MINUTES} minutes)"),
        &d.stuck,
    );
    let _ = writeln!(
        text,
        "Deletions pending at the provider: {} ({} incidents)",
        d.provider_deletions.len(),
        d.incidents()
    );
    for p in &d.provider_deletions {
        let _ = writeln!(
            text,
            "  - {}{} queued {} attempts {} next {}",
            if p.incident { "INCIDENT " } else { "" },
            p.call_id,
            p.queued_at.format("%Y-%m-%d %H:%M UTC"),
            p.attempts,
            p.next_attempt_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    text.push_str("\nDetails: polly-admin list (GET /v1/admin/dsar?status=open).\n");
    let html = format!(
        "<html><body><pre style=\"font-family: monospace\">{}</pre></body></html>",
        escape(&text)
    );
    Mail {
        subject,
        text,
        html,
    }
}

/// The daily digest job.
pub struct DigestJob {
    pub requests: Arc<dyn RequestStore>,
    pub outbox: Arc<dyn ProviderOutbox>,
    pub mailer: Arc<dyn Mailer>,
    /// The privacy team's address (`PRIVACY_TEAM_EMAIL`).
    pub team: Email,
    pub clock: Arc<dyn Clock>,
}

impl DigestJob {
    /// Builds the digest and mails it; `DsarRequestsOverdue` is emitted before the mail
    /// so a mail failure does not hide the count.
    pub async fn run(&self) -> Result<Digest, StoreError> {
        let now = self.clock.now();
        let open = self.requests.open_requests().await?;
        let mut records = Vec::with_capacity(open.len());
        for o in &open {
            // The open list has no verification time; the record has (stuck).
            if let Some(r) = self.requests.request(&o.request_id).await? {
                records.push(r);
            }
        }
        let pending = self.outbox.pending().await?;
        let d = digest(&records, &pending, now);
        metric("DsarRequestsOverdue", d.overdue.len() as f64);
        self.mailer.send(&self.team, &digest_mail(&d)).await?;
        metric("DsarDigestSent", 1.0);
        tracing::info!(
            overdue = d.overdue.len(),
            due_in_3 = d.due_in_3.len(),
            due_in_7 = d.due_in_7.len(),
            failed = d.failed.len(),
            stuck = d.stuck.len(),
            provider_deletions = d.provider_deletions.len(),
            "digest sent"
        );
        Ok(d)
    }
}
