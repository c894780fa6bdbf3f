//! The erasure cancel window (R4.5, Art. 17 with Art. 18 in between): a verified
//! erasure request waits `ERASURE_CANCEL_HOURS` (default 48, at most 7 days, so always
//! well inside the one-month deadline) before the worker erases.
//!
//! - Scheduling ([`schedule`]): when an erasure request is verified (code or staff
//!   check) it gets `erasure_scheduled_at`, a cancel token (256 random bits; only its
//!   SHA-256 is stored) and a marker in the sparse `by-due` index. The receipt mail
//!   carries the link `/v1/dsar/{id}/cancel?t=<token>`.
//! - Meanwhile the worker (on the stream) sets the subject's `erasure_pending` flag:
//!   processed like a restricted subject (no calls, left out of analytics). It is a flag
//!   of its own, so a cancellation lifts exactly it, never a restriction the subject
//!   asked for separately (`restricted`).
//! - Cancelling ([`DsarService::cancel_erasure`]) is allowed while the window is open and
//!   the erasure has not started: the request ends `cancelled` (audited, metric
//!   `ErasureCancelled`, a mail confirms it) and the worker lifts the flag when the
//!   stream shows it the cancelled record. A replay with the right token answers
//!   "cancelled" again and changes nothing; unknown ids and wrong tokens get one and the
//!   same answer; too late is only told to the token's holder.
//! - After the window the schedule (`ErasuresDue`, every 15 minutes) hands each due
//!   erasure to the worker, which first marks it started (on the record's version, so a
//!   cancel and the start cannot both win) and then erases exactly as without a window.
//!
//! Which erasures skip the window: the system erasure queued when a person says on the
//! line that they never signed up (`telephony::tools`): it is created in progress and
//! never verified here, so it runs at once (the person denies any relation to us; there
//! is nobody to send a cancel link to); and an erasure that names no email (phone-only,
//! verified by staff): no link could reach its requester. Every erasure with an email,
//! verified by code or by the staff identity check, waits, staff-entered ones included.

use chrono::{DateTime, Duration, Utc};

use domain::dsar::{mail, RequestStatus, RequestType};
use domain::RequestId;

use super::common::ContactMail;
use super::intake::{new_token, token_hash, DsarError, DsarService};
use super::records::{close, Change, Commit, DueMarker, OpenRecord, RequestRecord};

/// Default cancel window in hours (`ERASURE_CANCEL_HOURS`).
pub const DEFAULT_CANCEL_HOURS: u32 = 48;
/// Longest cancel window: a week, so the erasure still runs more than three weeks before
/// the one-month deadline (Art. 12(3)).
pub const MAX_CANCEL_HOURS: u32 = 7 * 24;
/// Longest token accepted from a link (ours are 43 characters).
pub const MAX_TOKEN_CHARS: usize = 128;

/// The cancel window for `hours`, or `None` when it is longer than [`MAX_CANCEL_HOURS`].
/// Zero means no window (the erasure runs at once; the template allows 1 to 168).
pub fn cancel_window(hours: u32) -> Option<Duration> {
    (hours <= MAX_CANCEL_HOURS).then(|| Duration::hours(i64::from(hours)))
}

/// Schedules an erasure that just went in progress: it runs at `now + window`. Returns the
/// cancel token for the receipt mail; `None` (and nothing changed) for any other request,
/// one scheduled already, one without an email (no link can reach its requester), or no
/// window.
pub fn schedule(
    record: &mut RequestRecord,
    window: Duration,
    now: DateTime<Utc>,
) -> Option<String> {
    if record.request_type != RequestType::Erasure
        || !record.has_email
        || record.status != RequestStatus::InProgress
        || record.erasure_scheduled_at.is_some()
        || window <= Duration::zero()
    {
        return None;
    }
    let at = now + window;
    let (token, hash) = new_token();
    record.erasure_scheduled_at = Some(at);
    record.erasure_due = Some(DueMarker::erasure(at));
    record.cancel_token_hash = Some(hash);
    Some(token)
}

/// Whether the erasure of `record` still waits in its window at `now`.
pub fn waiting(record: &RequestRecord, now: DateTime<Utc>) -> bool {
    record.erasure_started_at.is_none()
        && record.erasure_scheduled_at.is_some_and(|at| at > now)
        && matches!(
            record.status,
            RequestStatus::InProgress | RequestStatus::Failed
        )
}

/// What a cancel attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelDecision {
    /// Inside the window: cancel now.
    Cancel,
    /// Cancelled before: the same answer, nothing written.
    AlreadyCancelled,
    /// The window has passed, the erasure started or the request ended otherwise.
    TooLate,
    /// Unknown request, a request without a cancel token, or a wrong token.
    Invalid,
}

/// The cancel rules, pure: the token must match the stored hash (constant time) before
/// anything about the request is told.
pub fn decide(record: Option<&RequestRecord>, token: &str, now: DateTime<Utc>) -> CancelDecision {
    let Some(record) = record else {
        return CancelDecision::Invalid;
    };
    let matches = record.cancel_token_hash.as_deref().is_some_and(|h| {
        use subtle::ConstantTimeEq;
        bool::from(h.as_bytes().ct_eq(token_hash(token).as_bytes()))
    });
    if !matches || token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return CancelDecision::Invalid;
    }
    if record.status == RequestStatus::Cancelled {
        CancelDecision::AlreadyCancelled
    } else if waiting(record, now) {
        CancelDecision::Cancel
    } else {
        CancelDecision::TooLate
    }
}

/// The link of the receipt mail.
pub fn cancel_url(base: &str, id: &RequestId, token: &str) -> String {
    format!("{base}/v1/dsar/{id}/cancel?t={token}")
}

/// The receipt mail of a request just verified: with the cancel link when its erasure
/// was scheduled.
pub fn receipt(base: &str, record: &RequestRecord, cancel_token: Option<&str>) -> mail::Mail {
    let id = record.request_id.to_string();
    match (cancel_token, record.erasure_scheduled_at) {
        (Some(token), Some(at)) => mail::erasure_receipt_mail(
            &id,
            record.received_at,
            record.due_date,
            at,
            &cancel_url(base, &record.request_id, token),
        ),
        _ => mail::receipt_mail(
            &id,
            record.request_type,
            record.received_at,
            record.due_date,
        ),
    }
}

/// Attempts of a cancel against concurrent changes of the request (the worker marking
/// the subject restricted, staff extending): each re-reads and decides again.
const CANCEL_ATTEMPTS: usize = 3;

impl DsarService {
    /// Cancels a waiting erasure for the holder of its cancel token (the link in the
    /// receipt mail). `NotAuthorised` for an unknown id or a wrong token alike,
    /// `TooLateToCancel` once the window is over or the erasure started. Cancelling twice
    /// answers `Ok` twice and writes once.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn cancel_erasure(&self, id: &RequestId, token: &str) -> Result<(), DsarError> {
        for _ in 0..CANCEL_ATTEMPTS {
            let now = self.clock.now();
            let record = self
                .store
                .request(id)
                .await?
                .filter(|r| r.expiry.due().is_none_or(|due| due > now));
            match decide(record.as_ref(), token, now) {
                CancelDecision::Invalid => return Err(DsarError::NotAuthorised),
                CancelDecision::TooLate => return Err(DsarError::TooLateToCancel),
                CancelDecision::AlreadyCancelled => return Ok(()),
                CancelDecision::Cancel => {}
            }
            let Some(record) = record else {
                return Err(DsarError::NotAuthorised);
            };
            let contact = self.store.contact(id).await?;
            let old = record.version;
            let open = OpenRecord::of(&record);
            let mut updated = record;
            // The token's hash stays (`close` keeps it): a replay answers "cancelled".
            close(&mut updated, RequestStatus::Cancelled, "cancelled", now);
            let changes = vec![Change::Unlist(open), Change::DeleteContact];
            match self
                .store
                .commit(
                    &updated,
                    Some(old),
                    changes,
                    "dsar",
                    "dsar.erasure_cancelled",
                    now,
                )
                .await?
            {
                Commit::Conflict => continue,
                Commit::Done => {}
            }
            crate::telemetry::metric("ErasureCancelled", 1.0);
            tracing::info!("erasure cancelled inside its window");
            if let Some(c) = contact {
                ContactMail {
                    keys: self.keys.as_ref(),
                    mailer: self.mailer.as_ref(),
                    store: self.store.as_ref(),
                }
                .send(id, &c, &mail::erasure_cancelled_mail(&id.to_string()), now)
                .await;
            }
            return Ok(());
        }
        Err(DsarError::Conflict)
    }
}
