//! The ports of the telephony use cases: the call store (what the webhook and the worker
//! keep of a call), the call requests of leads (outbound placement, attempt limits), the
//! audit trail, the recording copier, the telephony provider and metrics.
//!
//! Types here carry no storage format: the `aws` crate maps them to table items (and keeps
//! the item formats, conditions and TTLs), `testkit` keeps them in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use domain::crypto::BlindIndex;
use domain::retention::Retention;
use domain::LeadId;

use crate::ports::{CallState, Retry, StoreError};
use crate::telephony::retell::compliance::ConsentSource;

/// The consent and disclosure decision taken when a call ended (R2.6, R2.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub granted: bool,
    pub source: ConsentSource,
    pub decided_at: DateTime<Utc>,
    pub disclosure_ok: bool,
    /// Where the kept recording and transcript begin: the start of the consent answer, in
    /// milliseconds from the call's start (R7.5, see `retell::cut`). `None`: no safe cut
    /// point, so nothing verbatim is kept.
    pub cut_ms: Option<u64>,
}

impl ConsentRecord {
    /// How the source is stored (`consent_source`).
    pub fn source_code(&self) -> &'static str {
        match self.source {
            ConsentSource::ToolCall => "tool_call",
            ConsentSource::CallAnalysis => "call_analysis",
            ConsentSource::None => "none",
        }
    }
}

/// The plain (non-personal or pseudonymous) facts one event states about a call. `None`
/// means "this event says nothing about it": the stored value stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub call_type: Option<String>,
    pub call_status: Option<String>,
    pub direction: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<String>,
    pub disconnection_reason: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// Whether the call is linked to a lead (a live one, or one past its retention not
    /// yet swept; see [`CallProjection::lead_id`]).
    pub linked: bool,
    /// Set (never cleared) when the subject restricted processing or objected (R2.10).
    pub processing_restricted: bool,
    /// Blind index of the person's number (R2.4: a request by phone finds the call).
    pub phone_index: Option<BlindIndex>,
    /// Call data is lead-class data: when it is due, and the TTL backstop. The call item
    /// carries no expiry-index partition (`bucket` is not stored): it goes with its lead.
    pub retention: Retention,
    /// Set from `call_ended` on.
    pub consent: Option<ConsentRecord>,
    /// The object holding the sealed transcript, when one was kept.
    pub transcript_key: Option<String>,
}

/// What one event contributes to the call.
#[derive(Debug, Clone)]
pub struct CallProjection {
    pub call_id: String,
    pub event: &'static str,
    pub completeness: u8,
    /// The lead the call is linked to (live, or due and not yet swept; a due lead's call
    /// keeps metadata only): the call item carries it and the lead's
    /// partition gets a pointer to the call (how access, erasure, the sweep and
    /// rectification find a subject's calls, whatever its number is now).
    pub lead_id: Option<LeadId>,
    /// The lead the event names (`metadata.lead_id`), live or not: when that subject was
    /// erased, nothing is stored (its tombstone is checked in the same write).
    pub named_lead: Option<LeadId>,
    /// Plain, non-personal attributes (status, times, agent, reason …).
    pub facts: CallFacts,
    /// Sealed attributes (numbers, call content, recording URL).
    pub sealed: Vec<(&'static str, Vec<u8>)>,
    /// Attributes this event decided must not exist (e.g. transcript without consent).
    pub remove: Vec<&'static str>,
    /// The recording state this event asks for (`pending`, `not_available`, `not_kept`),
    /// if it decides. States the worker reached (see [`WORKER_STATES`]) are kept.
    pub recording_state: Option<&'static str>,
    /// Audit actions, written with the merge and only when the event's view applies.
    pub audit: Vec<&'static str>,
    pub at: DateTime<Utc>,
}

/// Recording states that belong to the worker once reached: a webhook never overwrites them.
pub const WORKER_STATES: &[&str] = &["ingesting", "stored", "failed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The event's view is now the call's view.
    Applied,
    /// A more complete event was stored before; only the event was noted.
    Superseded,
    /// The subject the event names was erased: nothing was stored.
    SubjectErased,
}

/// A call as the worker reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredCall {
    pub lead_id: Option<LeadId>,
    pub recording_state: Option<String>,
    pub sealed_recording_url: Option<Vec<u8>>,
    pub end_at: Option<DateTime<Utc>>,
    pub transcript_key: Option<String>,
    /// The lifecycle events seen (`call_started`, `call_ended`, `call_analyzed`).
    pub events: Vec<String>,
    /// Whether the call was deleted at the provider.
    pub provider_deleted: bool,
    /// The cut point stored with the consent record (R7.5); the worker trims there.
    pub consent_cut_ms: Option<u64>,
    /// The person said on the line that they never signed up (`confirm_signup` false,
    /// R7.4): nothing of the call's content is kept.
    pub signup_denied: bool,
    /// The sealed call content (`sealed_call`: numbers and the provider's analysis), when
    /// the subject's key was open for it; the sales handoff reads the analysis from it.
    pub sealed_call: Option<Vec<u8>>,
    /// The recording-consent answer decided when the call ended (R2.6), if it ended.
    pub recording_consent: Option<bool>,
    /// When the call started.
    pub start_at: Option<DateTime<Utc>>,
}

impl StoredCall {
    pub fn analysed(&self) -> bool {
        self.events.iter().any(|e| e == "call_analyzed")
    }
}

/// How the worker settles a pending recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingSettlement {
    Stored {
        object_key: String,
        bytes: u64,
    },
    Failed,
    /// Nothing may be kept: the call has no safe cut point (R7.5).
    NotKept,
}

impl RecordingSettlement {
    pub fn state(&self) -> &'static str {
        match self {
            Self::Stored { .. } => "stored",
            Self::Failed => "failed",
            Self::NotKept => "not_kept",
        }
    }
}

/// The record of a stored recording; it has its own retention (6 calendar months from
/// call end) and is found through the expiry index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRecord {
    pub call_id: String,
    pub lead_id: LeadId,
    pub object_key: String,
    pub transcript_key: Option<String>,
    pub bytes: u64,
    pub sha256_hex: String,
    pub retention: Retention,
}

/// What the webhook and the worker keep of calls.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Reads a call (consistently); `None` when no event of it was stored.
    async fn get_call(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError>;

    /// Merges one event into the call with an optimistic version check, so duplicated,
    /// re-ordered and concurrent deliveries converge (R2.3): the most complete event's
    /// view wins, the set of events seen is a union, the live consent answer and the
    /// worker's recording states are left alone. The projection's audit actions are
    /// written atomically with it, only when it applies.
    async fn merge(&self, projection: &CallProjection) -> Result<MergeOutcome, StoreError>;

    /// Records the live answer of the agent's `record_consent` tool call, with an audit
    /// event, whether or not the call was stored before.
    async fn record_live_consent(
        &self,
        call_id: &str,
        granted: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Counts one copy attempt of the call's recording; the attempts so far. A call
    /// that is gone is not created again: it counts as out of attempts.
    async fn count_recording_attempt(&self, call_id: &str) -> Result<i64, StoreError>;

    /// Settles a recording, only from `pending` (a settled call stays as it is).
    async fn settle_recording(
        &self,
        call_id: &str,
        settlement: &RecordingSettlement,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stores the record of a copied recording (overwrites a record of the same call),
    /// only while the call still exists with its recording `pending` and its subject is
    /// not erased; `false` otherwise (the copy must then go).
    async fn put_recording(&self, record: &RecordingRecord) -> Result<bool, StoreError>;

    /// Notes that the call was deleted at the provider (a call that is gone stays gone).
    async fn mark_provider_deleted(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Notes that the call's deletion at the provider was handed to the outbox (R2.9):
    /// the worker leaves it alone from now on, and the outbox marks it deleted.
    async fn mark_provider_deletion_queued(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The ids of the calls with a number, found through its blind index, linked or not;
    /// each once, sorted.
    async fn calls_of_phone(&self, phone_index: &str) -> Result<Vec<String>, StoreError>;
}

/// The result of one call request of a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequestResult {
    pub lead_id: LeadId,
    /// The lead's `call_request_count` this result belongs to.
    pub request: u32,
    pub state: CallState,
    pub call_id: Option<String>,
    pub at: DateTime<Utc>,
    /// How long the request's marker is kept.
    pub marker_until: DateTime<Utc>,
}

/// The call requests of leads (R1.5, R1.6, R2.12).
#[async_trait]
pub trait CallRequests: Send + Sync {
    /// The recorded state of request `request` of a lead (its marker), if any.
    async fn request_state(
        &self,
        lead: &LeadId,
        request: u32,
    ) -> Result<Option<CallState>, StoreError>;

    /// Attempts to call the number with this blind index since `since`.
    async fn attempts_since(
        &self,
        phone_index: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, StoreError>;

    /// Counts an attempt to call the number, kept until `until`; the attempt's opaque
    /// name (for [`CallRequests::release_attempt`]), or `None` (nothing written) when the
    /// subject was erased.
    async fn record_attempt(
        &self,
        phone_index: &str,
        lead: &LeadId,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Takes back the attempt `attempt` (as [`CallRequests::record_attempt`] named it) at
    /// `at`: the create call certainly placed nothing (refused with 429 or 503, or never
    /// sent), so no phone rang and the attempt must not use up the number's three a day
    /// (R1.6); otherwise an outage longer than three stream retries would end the request
    /// as suppressed and lose the call (R1.5).
    async fn release_attempt(
        &self,
        phone_index: &str,
        attempt: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Sets the lead's call state (unless a newer request replaced this one) and marks the
    /// request with its result; `false` (nothing written) when the subject was erased.
    async fn finish_request(&self, result: &CallRequestResult) -> Result<bool, StoreError>;

    /// The attempts counted for the lead over its whole life (R7.3), released ones not.
    /// [`CallRequests::record_attempt`] counts them, the count goes with the subject.
    async fn lead_attempts(&self, lead: &LeadId) -> Result<u32, StoreError>;

    /// Marks the request `scheduled` for `due_at` (R7.2) and sets the lead's call state,
    /// durably, where [`CallRequests::due_requests`] finds it. Only from a marker that
    /// placed nothing that may ring (none, `requested`, `scheduled`, `suppressed`,
    /// `failed`; a later slot replaces an earlier one).
    async fn schedule_request(&self, schedule: &ScheduledRequest) -> Result<Claim, StoreError>;

    /// The scheduled requests due at `now` (`due_at <= now`), earliest first, at most
    /// `limit`.
    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueRequest>, StoreError>;

    /// Takes the request for placing: its marker goes to `placing` (and out of the due
    /// requests) only from a marker that placed nothing that may ring (not `placing`,
    /// `placed`, `unconfirmed`), in one conditional
    /// write, so of two workers (two dispatcher runs, a dispatcher and a stream
    /// redelivery) one places the call and the other learns [`Claim::Taken`].
    async fn claim_request(&self, claim: &CallRequestResult) -> Result<Claim, StoreError>;
}

/// A call request moved to a later slot (R7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRequest {
    pub lead_id: LeadId,
    pub request: u32,
    /// The number's blind index, to place the request without its stream record.
    pub phone_index: String,
    pub due_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub marker_until: DateTime<Utc>,
}

/// A scheduled request whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRequest {
    pub lead_id: LeadId,
    pub request: u32,
    pub phone_index: String,
    pub due_at: DateTime<Utc>,
}

/// The answer to a conditional marker transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Written.
    Done,
    /// The marker is in another state (another worker took it, or it was placed).
    Taken,
    /// The subject was erased: nothing written.
    Erased,
}

/// The append-only audit trail.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    async fn record(
        &self,
        actor: &'static str,
        action: &str,
        lead: Option<&LeadId>,
        call_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// What a finished copy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Bytes stored (the stored length was read back and matched): the trimmed file.
    pub bytes: u64,
    /// Hex SHA-256 of the bytes as stored, for integrity records.
    pub sha256_hex: String,
    /// S3 parts written: 1 for a single `PutObject`.
    pub parts: usize,
    /// The source's media type (`audio/wav`), when it sent a well-formed one.
    pub content_type: Option<String>,
    /// Version of the new object (the bucket is versioned), for exact deletion later.
    pub version_id: Option<String>,
}

/// A failed copy: whether a retry can help, and the cause (whose message is fixed text
/// and numbers, never a URL, key or body). Displays as its cause.
#[derive(Debug)]
pub struct CopyFailure {
    pub retry: Retry,
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for CopyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cause.fmt(f)
    }
}

impl std::error::Error for CopyFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

/// Copies a recording from the provider's short-lived URL into the recordings bucket.
#[async_trait]
pub trait RecordingCopier: Send + Sync {
    /// Copies the recording from `cut_ms` (milliseconds from the call's start) on: what
    /// was said before the consent answer is never stored (R7.5).
    async fn copy(
        &self,
        url: &str,
        object_key: &str,
        cut_ms: u64,
    ) -> Result<CopyReport, CopyFailure>;
    /// Deletes every version of a copy that must not stay (its subject was erased or
    /// withdrew consent while it ran); how many versions went.
    async fn discard(&self, object_key: &str) -> Result<usize, StoreError>;
}

/// A failure of the provider's API. Carries the status code only: provider error bodies
/// may quote request data.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider answered {status}")]
    Status { status: u16 },
    #[error("provider unreachable or too slow")]
    Network(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No connection to the provider: the request was never sent.
    #[error("provider unreachable")]
    Unsent(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("provider answer malformed")]
    Malformed,
}

impl ProviderError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Status { status } if *status == 429 || *status >= 500 => Retry::Transient,
            Self::Status { .. } | Self::Malformed => Retry::Permanent,
            Self::Network(_) | Self::Unsent(_) => Retry::Transient,
        }
    }

    /// Whether the provider may have carried out the request although it failed: an
    /// answer lost after the request was sent, or a server error. Not for a request never
    /// sent, a rate limit (429) or an unavailable service (503), which are refused before
    /// anything is done.
    pub fn may_have_applied(&self) -> bool {
        match self {
            Self::Status { status } => *status >= 500 && *status != 503,
            Self::Network(_) | Self::Malformed => true,
            Self::Unsent(_) => false,
        }
    }
}

/// What an outbound call needs (R2.12).
pub struct OutboundCall<'a> {
    pub from_number: &'a str,
    pub to_number: &'a str,
    pub agent_id: &'a str,
    pub lead_id: &'a str,
    pub first_name: &'a str,
    pub data_storage_setting: &'a str,
    /// How long the phone rings before the provider gives up (R7.3), in ms.
    pub ring_duration_ms: u32,
}

/// The telephony provider's API.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Places an outbound call; the provider's call id.
    async fn create_phone_call(
        &self,
        key: &SecretString,
        call: &OutboundCall<'_>,
    ) -> Result<String, ProviderError>;

    /// Deletes a call at the provider; a call already gone counts as deleted.
    async fn delete_call(&self, key: &SecretString, call_id: &str) -> Result<(), ProviderError>;
}

/// Operational metrics (counts only, never personal data).
pub trait Metrics: Send + Sync {
    fn count(&self, name: &'static str, value: f64);
}
