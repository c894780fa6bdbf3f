//! What a data-subject request is made of, as the use cases reason about it: the request
//! record (type, status, dates, no content), the one-time code, the sealed contact, the
//! export, the staff-list entry and the link to the subject. Plain serde types: the `aws`
//! crate stores each as one item (adding its keys and kind), the fakes keep them as they
//! are. A change of a request is the record on its read version plus typed [`Change`]s,
//! committed together with an audit item (`ports::RequestStore::commit`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use domain::crypto::BlindIndex;
use domain::dsar::{RequestStatus, RequestType};
use domain::retention::Retention;
use domain::{LeadId, RequestId, RetentionClass};

/// Wrong codes after which a request ends (R4.1).
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// How long the sealed contact of an open request may live at most: the longest
/// deadline (one month plus a two-month extension) and a month for staff to close it.
pub const CONTACT_MONTHS: u32 = 4;

use domain::retention::stored_instant as ts;

/// Retention attributes carried by an item (`expires_at`, expiry index, TTL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expiry {
    pub expires_at: String,
    pub exp_bucket: String,
    pub exp_at: i64,
    pub ttl: i64,
}

impl Expiry {
    /// Due when `class`'s period, started at `start`, ends.
    pub fn of(class: RetentionClass, start: DateTime<Utc>) -> Self {
        Self::from(Retention::of(class, start))
    }

    /// Due at `due` under `class`'s partition of the expiry index.
    pub fn at(class: RetentionClass, due: DateTime<Utc>) -> Self {
        Self::from(Retention::until(class, due))
    }

    /// The due instant.
    pub fn due(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.expires_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The stored form of the domain's retention decision.
impl From<Retention> for Expiry {
    fn from(r: Retention) -> Self {
        Self {
            expires_at: ts(r.expires_at),
            exp_bucket: r.bucket,
            exp_at: r.expires_at.timestamp(),
            ttl: r.ttl,
        }
    }
}

/// The request record: what was asked, where it stands, when it is due. No content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: DateTime<Utc>,
    pub due_date: NaiveDate,
    #[serde(default)]
    pub extended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<LeadId>,
    /// Blind indexes of the identifiers named, while the request is open (the worker
    /// finds the subject with them); removed when it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_email_bidx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_phone_bidx: Option<String>,
    pub has_email: bool,
    /// Blind indexes of the email and phone a rectification would move onto the subject
    /// (R4.6): they must be proven too (`dsar::identity`); removed when it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction_email_bidx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction_phone_bidx: Option<String>,
    /// The email was proven by its one-time code.
    #[serde(default)]
    pub email_proven: bool,
    /// Staff checked the requester's identity: every identifier the request names, its
    /// corrections included, is proven.
    #[serde(default)]
    pub identity_checked: bool,
    /// SHA-256 of the request token (a 256-bit random value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// `export_ready`, `no_data`, `denied`, … (a code, never content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_expires_at: Option<DateTime<Utc>>,
    /// Erasure: the data categories erased (the proof of erasure names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Erasure under a legal hold: the categories kept (restricted) and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<DateTime<Utc>>,
    /// Rectification (Art. 19): each recipient of the data and whether it was informed
    /// or does not hold the old value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<BTreeMap<String, String>>,
    /// Why the worker could not finish it (`RequestStatus::Failed`): a fixed code such as
    /// `export_retries_exhausted`, never content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Failed worker attempts since the request went in progress (R4: nothing stalls
    /// silently; the last one marks it failed).
    #[serde(default)]
    pub worker_failures: u32,
    /// How the request reached us (`online` unless staff entered it).
    #[serde(default)]
    pub channel: Channel,
    /// When the record last changed: stamped by the store on every commit
    /// (`ports::RequestStore::commit`); `None` on records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// An erasure waiting in its cancel window: when it runs (see `erasure_window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_scheduled_at: Option<DateTime<Utc>>,
    /// When the worker began the scheduled erasure; from then on it cannot be cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_started_at: Option<DateTime<Utc>>,
    /// SHA-256 of the cancel token mailed with the receipt (it only cancels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_token_hash: Option<String>,
    /// The worker restricted the subject for the window (`erasure_pending` on the lead),
    /// so a cancellation lifts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub window_restricted: bool,
    /// The sparse due index (`by-due`: `due_kind` → `due_at`) while an erasure waits,
    /// so the schedule finds the due ones without a scan.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub erasure_due: Option<DueMarker>,
    #[serde(flatten)]
    pub expiry: Expiry,
    pub version: u64,
}

/// The `by-due` index attributes of a waiting erasure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DueMarker {
    pub due_kind: String,
    pub due_at: String,
}

/// The `due_kind` of an erasure waiting in its cancel window.
pub const ERASURE_DUE_KIND: &str = "dsar_erasure";

impl DueMarker {
    pub fn erasure(at: DateTime<Utc>) -> Self {
        Self {
            due_kind: ERASURE_DUE_KIND.to_owned(),
            due_at: ts(at),
        }
    }
}

/// The one-time code: only its keyed hash, valid 15 minutes, at most five tries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    pub request_id: RequestId,
    pub code_hash: String,
    pub attempts: u32,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// The sealed contact of an open request. Its key is kept apart (the key table), so
/// deleting the key crypto-shreds every backed-up copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactRecord {
    pub request_id: RequestId,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    #[serde(flatten)]
    pub expiry: Expiry,
    /// The wrapped key, read together with the contact and written before it (never
    /// stored with it), so a contact read before its request closes can still be
    /// opened for the closing mail.
    #[serde(skip)]
    pub wrapped_key: Option<Vec<u8>>,
}

/// An export package in the exports bucket (7 days, R3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    pub request_id: RequestId,
    pub object_key: String,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// An entry of the staff list of open requests (listed by due date).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenRecord {
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: DateTime<Utc>,
    pub due_date: NaiveDate,
    #[serde(default)]
    pub extended: bool,
    /// A failed request's reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub channel: Channel,
    /// When the entry was last written (stamped by the store like the record's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// An erasure waiting in its cancel window: when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_scheduled_at: Option<DateTime<Utc>>,
}

impl OpenRecord {
    pub fn of(r: &RequestRecord) -> Self {
        Self {
            request_id: r.request_id,
            request_type: r.request_type,
            status: r.status,
            received_at: r.received_at,
            due_date: r.due_date,
            extended: r.extended,
            failure_reason: r.failure_reason.clone(),
            channel: r.channel,
            changed_at: r.changed_at,
            erasure_scheduled_at: r
                .erasure_scheduled_at
                .filter(|_| r.erasure_started_at.is_none()),
        }
    }
}

/// How a request reached us: the public route (`online`), or a letter, a call or a mail
/// to the privacy address that staff entered with its real receipt date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Online,
    Letter,
    Phone,
    Email,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Letter => "letter",
            Self::Phone => "phone",
            Self::Email => "email",
        }
    }

    /// The channels staff enter a request from (`online` is the public route's own).
    pub fn parse_offline(code: &str) -> Option<Self> {
        match code {
            "letter" => Some(Self::Letter),
            "phone" => Some(Self::Phone),
            "email" => Some(Self::Email),
            _ => None,
        }
    }
}

/// How long a request may stay `in_progress` without a change before it counts as stuck.
/// The worker starts within seconds of the change (the table's stream) and gives up after
/// `worker::MAX_WORKER_ATTEMPTS` (4) attempts of at most 5 minutes each (the function's
/// timeout) plus the stream's retry delays, marking the request `failed`: well under an
/// hour. A request still `in_progress` an hour after its last change was never picked
/// up or lost its worker (stream records expired, a dead-lettered batch nobody redrove),
/// and only staff can tell: it is listed as stuck and can be retried.
pub const STUCK_AFTER_MINUTES: i64 = 60;

/// Whether a request in `status`, last changed at `changed_at`, is stuck at `now`
/// ([`STUCK_AFTER_MINUTES`]). A record without a change time (written before it was
/// kept) counts from its receipt. An erasure waiting in its cancel window
/// (`scheduled_at`, not yet started) is in progress on purpose: it counts from the time
/// it is scheduled to run, not from its last change.
pub fn is_stuck(
    status: RequestStatus,
    changed_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    scheduled_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let since = changed_at
        .unwrap_or(received_at)
        .max(scheduled_at.unwrap_or(received_at));
    status == RequestStatus::InProgress
        && now - since >= chrono::Duration::minutes(STUCK_AFTER_MINUTES)
}

/// One audit item about a request, as the staff timeline shows it: when, what, who (the
/// principal ARN for staff, `dsar` / `dsar-worker` for the system). The item that
/// created a request staff entered names its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

/// The link from a subject to a request about it (the subject's request history).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectRequestRecord {
    pub lead_id: LeadId,
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub received_at: DateTime<Utc>,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// One write that goes with a change of the request record, in the same transaction.
#[derive(Debug, Clone)]
pub enum Change {
    /// Lists the request for staff under its (current) due date.
    List(OpenRecord),
    /// Removes the staff-list entry it was listed under.
    Unlist(OpenRecord),
    /// Stores the code, on condition that the request has none.
    CreateCode(CodeRecord),
    DeleteCode,
    /// Stores the sealed contact (`create`: on condition that there is none) and, before
    /// it, its wrapped key when the record carries it.
    PutContact {
        contact: ContactRecord,
        create: bool,
    },
    /// Deletes the sealed contact and, first, its key.
    DeleteContact,
    PutExport(ExportRecord),
    /// Links the request to the subject it was carried out on.
    Link(SubjectRequestRecord),
    /// Queues an event for the CRM (`crate::crm`), on condition that it is not queued.
    Crm(crate::crm::CrmEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// The request changed since it was read (another action won).
    Conflict,
}

/// A counter of the abuse limits of R4.1: keyed hashes and a day, never an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// Requests from one source address on a day.
    Source { source: BlindIndex, day: NaiveDate },
    /// Requests naming one identifier from one source on a day.
    IdentifierFromSource {
        identifier: BlindIndex,
        source: BlindIndex,
        day: NaiveDate,
    },
    /// Requests naming one identifier from everywhere on a day.
    Identifier {
        identifier: BlindIndex,
        day: NaiveDate,
    },
}

/// A new request record for `id`, received `now`.
pub fn new_record(
    id: RequestId,
    request_type: RequestType,
    status: RequestStatus,
    now: DateTime<Utc>,
) -> RequestRecord {
    RequestRecord {
        request_id: id,
        request_type,
        status,
        received_at: now,
        due_date: domain::dsar::due_date(now),
        extended: false,
        lead_id: None,
        subject_email_bidx: None,
        subject_phone_bidx: None,
        has_email: false,
        correction_email_bidx: None,
        correction_phone_bidx: None,
        email_proven: false,
        identity_checked: false,
        token_hash: None,
        verified_at: None,
        closed_at: None,
        outcome: None,
        export_key: None,
        export_expires_at: None,
        categories: None,
        held_categories: None,
        held_until: None,
        recipients: None,
        failure_reason: None,
        worker_failures: 0,
        channel: Channel::Online,
        changed_at: None,
        erasure_scheduled_at: None,
        erasure_started_at: None,
        cancel_token_hash: None,
        window_restricted: false,
        erasure_due: None,
        // Kept 3 years; the clock restarts when the request closes.
        expiry: Expiry::of(RetentionClass::Request, now),
        version: 1,
    }
}

/// Marks a request closed at `now` with `outcome`: the blind indexes go, the record is
/// kept 3 years from now (R3 "request" class).
pub fn close(record: &mut RequestRecord, status: RequestStatus, outcome: &str, now: DateTime<Utc>) {
    record.status = status;
    record.outcome = Some(outcome.to_owned());
    record.closed_at = Some(now);
    record.subject_email_bidx = None;
    record.subject_phone_bidx = None;
    record.correction_email_bidx = None;
    record.correction_phone_bidx = None;
    // A cancel token stays (its hash only): it answers "too late" or "cancelled".
    record.erasure_due = None;
    record.expiry = Expiry::of(RetentionClass::Request, now);
    record.version += 1;
}

/// The link from the subject a request was carried out on to the request.
pub fn subject_link(record: &RequestRecord, lead: LeadId) -> Change {
    Change::Link(SubjectRequestRecord {
        lead_id: lead,
        request_id: record.request_id,
        request_type: record.request_type,
        received_at: record.received_at,
        expiry: Expiry::of(RetentionClass::Request, record.received_at),
    })
}
