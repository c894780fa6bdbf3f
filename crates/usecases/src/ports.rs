//! Ports: the small traits through which domain logic reaches the outside world. Handlers
//! depend on these; `adapters` implements them over AWS; tests may substitute faults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use domain::crypto::{BlindIndex, DataKey, WrappedKey};
use domain::{ConsentEvidence, LeadId, RequestId};

/// Whether retrying the same operation could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Transient,
    Permanent,
}

/// A failure of the key service. The message is fixed; the SDK error stays as `source`.
#[derive(Debug, thiserror::Error)]
#[error("key service {operation} failed ({retry:?})")]
pub struct KeyError {
    pub operation: &'static str,
    pub retry: Retry,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Which identifier a blind index is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    Email,
    Phone,
    /// A data-subject request's one-time code, keyed with its request id (R4.1: codes
    /// are stored only as a keyed hash).
    RequestCode,
    /// Pseudonyms of subjects and calls in the analytics export (R6).
    Analytics,
    /// The source address of a public request, for per-source rate limits (never stored
    /// in plaintext).
    Source,
}

impl IdentifierKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::RequestCode => "dsar_code",
            Self::Analytics => "analytics",
            Self::Source => "source",
        }
    }
}

#[async_trait]
pub trait KeyService: Send + Sync {
    /// A fresh data key for `subject`: the plaintext to use now and the wrapped form to store.
    async fn generate_data_key(&self, subject: &LeadId) -> Result<(DataKey, WrappedKey), KeyError>;
    /// Unwraps a stored data key; fails when it was made for another subject.
    async fn unwrap_data_key(
        &self,
        subject: &LeadId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError>;
    /// A fresh data key for what a data-subject request carries (the address to answer
    /// to, the message, corrections), bound to the request id; it dies with the request.
    async fn generate_request_key(
        &self,
        request: &RequestId,
    ) -> Result<(DataKey, WrappedKey), KeyError>;
    /// Unwraps a request's data key; fails when it was made for another request.
    async fn unwrap_request_key(
        &self,
        request: &RequestId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError>;
    /// The keyed blind index of a normalised identifier.
    async fn blind_index(
        &self,
        kind: IdentifierKind,
        normalised: &str,
    ) -> Result<BlindIndex, KeyError>;
}

/// A failure of the lead store. The message is fixed; the SDK error stays as `source`.
#[derive(Debug, thiserror::Error)]
#[error("lead store {operation} failed ({retry:?})")]
pub struct StoreError {
    pub operation: &'static str,
    pub retry: Retry,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Everything stored for a new lead, already encrypted.
#[derive(Debug, Clone)]
pub struct NewLead {
    pub id: LeadId,
    pub wrapped_key: WrappedKey,
    /// The sealed profile and technical data (see `leads::PROFILE_AAD`).
    pub sealed_profile: Vec<u8>,
    pub email_index: BlindIndex,
    pub phone_index: BlindIndex,
    pub consent: ConsentEvidence,
    pub signed_up_at: DateTime<Utc>,
    /// The person's preferred call window (R7.2), a plain attribute.
    pub call_window: Option<domain::calling_hours::CallWindow>,
}

/// Which subjects hold a submission's identifiers (live claims only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentifierHolders {
    pub by_email: Option<LeadId>,
    pub by_phone: Option<LeadId>,
}

impl IdentifierHolders {
    /// The subject both identifiers point at: only then is a submission the same person
    /// signing up again (R1.4). Knowing one identifier of someone proves nothing.
    pub fn same_subject(&self) -> Option<LeadId> {
        match (self.by_email, self.by_phone) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        }
    }

    /// Neither identifier is held: the submission may create a new subject.
    pub fn is_free(&self) -> bool {
        self.by_email.is_none() && self.by_phone.is_none()
    }
}

/// A repeated sign-up of a known subject (R1.4): both its email and its phone point at
/// that subject.
#[derive(Debug, Clone)]
pub struct Resubmission {
    pub id: LeadId,
    /// Blind index of the phone number given this time (the consent is for that number;
    /// it is the subject's own, since the phone's claim points at the subject).
    pub phone_index: BlindIndex,
    pub consent: ConsentEvidence,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// Another lead holds the email or phone (a concurrent sign-up won the race).
    IdentifierTaken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResubmitOutcome {
    /// Contact time moved and a new call was requested (the last was over 24 h ago).
    CallRequested,
    /// Contact time moved; a call was requested within the last 24 h, so none now.
    CallNotDue,
    /// The lead is gone (erased or expired) since it was looked up.
    Gone,
}

/// Call-request state carried by the lead item; the telephony worker acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Requested,
    /// The create call is on its way to the provider (the request's marker only): a
    /// redelivery that finds it does not know whether the call was placed.
    Placing,
    /// The provider may have placed the call, but its answer was lost: not placed again
    /// (a second call would be a duplicate); its webhooks still link the call if it runs.
    Unconfirmed,
    Placed,
    Completed,
    Failed,
    Suppressed,
    /// Outside the calling hours or the person's window: waits for its slot (R7.2).
    Scheduled,
}

/// A lead as stored, personal fields still sealed.
#[derive(Debug, Clone)]
pub struct StoredLead {
    pub id: LeadId,
    pub wrapped_key: WrappedKey,
    pub sealed_profile: Vec<u8>,
    pub signed_up_at: DateTime<Utc>,
    pub last_contact_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consent_policy_version: String,
    pub call_state: CallState,
    pub call_requested_at: DateTime<Utc>,
    pub call_request_count: u32,
    /// Processing restricted (Art. 18, R4.7): stored, not processed.
    pub restricted: bool,
    /// The subject objected (Art. 21, R4.8).
    pub objected: bool,
    /// The subject withdrew the recording consent (Art. 7(3), R4.9).
    pub consent_withdrawn: bool,
    /// The person's preferred call window (R7.2).
    pub call_window: Option<domain::calling_hours::CallWindow>,
    /// An erasure of the subject waits in its cancel window: processed like a restricted
    /// subject (no calls, no analytics), lifted only by cancelling that erasure.
    pub erasure_pending: bool,
}

impl StoredLead {
    /// Whether the subject may be called and have call content kept (R2.10).
    pub fn may_process(&self) -> bool {
        !self.restricted && !self.objected && !self.erasure_pending
    }
}

#[async_trait]
pub trait LeadStore: Send + Sync {
    /// The subjects holding this email and this phone, ignoring expired claims.
    async fn find_holders(
        &self,
        email: &BlindIndex,
        phone: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<IdentifierHolders, StoreError>;

    /// Stores a new lead in one atomic write (lead, wrapped key, identifier claims,
    /// consent proof, audit). The lead's `call_state = requested` is what the telephony
    /// worker reacts to through the table's stream: there is no second write elsewhere.
    async fn create_lead(&self, lead: &NewLead) -> Result<CreateOutcome, StoreError>;

    /// Records a repeated sign-up: moves `last_contact_at` and every retention date that
    /// depends on it, stores the new consent proof and requests a call again only when
    /// the last request is more than 24 h old.
    async fn resubmit(&self, resubmission: &Resubmission) -> Result<ResubmitOutcome, StoreError>;

    /// Records that a sign-up named an identifier held by `subjects` without being the same
    /// person (the other identifier unknown or another subject's): an audit event per
    /// subject, carrying no personal data and changing nothing of the subject (R1.4, R1.6).
    async fn record_mismatch(
        &self,
        subjects: &[LeadId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Moves `last_contact_at` (and every retention date that depends on it) forward to
    /// `at` after a call (R2.11); never backwards. `false` when the lead is gone.
    async fn record_contact(&self, id: &LeadId, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Puts the subject on legal hold until `until` (R3.4): processing restricted, and its
    /// retention dates (expiry index and TTL of the lead, key and claims) moved to `until`.
    async fn hold_until(
        &self,
        id: &LeadId,
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a call placed under the subject's phone-consent proof for `phone_index`
    /// (§7a UWG; the latest proof for that number): the call id joins the proof's calls,
    /// and the proof is kept 5 years from its last use, never less than before (R3).
    /// Idempotent. `false` when the subject holds no proof for the number.
    async fn record_consent_use(
        &self,
        id: &LeadId,
        phone_index: &BlindIndex,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Reads a lead; `None` when absent or past its retention (R3.3: reads ignore items
    /// that are due but not yet removed).
    async fn get_lead(
        &self,
        id: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredLead>, StoreError>;

    /// Leaves the erasure tombstone of a subject (no personal data: the lead id, when,
    /// and a TTL of [`TOMBSTONE_KEPT`]) before anything of it is deleted. Writes that
    /// could bring an item of the subject back (a late webhook, the worker's recording
    /// copy, an outbound call's marker) are conditional on its absence. With `if_due`,
    /// only when the lead is still due at `at` (its retention did not move since the
    /// index said so); `false` then when it is not due or gone.
    async fn bury(&self, id: &LeadId, at: DateTime<Utc>, if_due: bool) -> Result<bool, StoreError>;

    /// Whether the subject was erased (its tombstone exists; consistent read).
    async fn erased(&self, id: &LeadId) -> Result<bool, StoreError>;

    /// After an erasure: moves the subject's §7a UWG consent proofs out of its records,
    /// without the lead id and the call ids (the count of calls stays), so what is kept
    /// of an erased person cannot be joined to its audit events. How many moved;
    /// idempotent.
    async fn detach_consent_proofs(&self, id: &LeadId) -> Result<usize, StoreError>;

    /// Whether the lead is still stored, past its retention or not (a lead that is due
    /// but not yet swept exists; consistent read).
    async fn lead_exists(&self, id: &LeadId) -> Result<bool, StoreError>;
}

/// How long an erased subject's tombstone is kept: longer than any late delivery can
/// come (provider webhook retries, the 24 h stream, a 14-day dead-letter queue redrive).
pub const TOMBSTONE_KEPT: chrono::Duration = chrono::Duration::days(30);

/// An object read as a stream of chunks.
pub struct ObjectReader {
    pub content_type: Option<String>,
    pub length: Option<i64>,
    pub body: Box<dyn ObjectBody>,
}

/// The body of an object being read.
#[async_trait]
pub trait ObjectBody: Send {
    /// The next chunk; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A multipart upload in progress: parts as the caller fills them (every part but the
/// last at least 5 MiB at S3), then completed or aborted.
#[async_trait]
pub trait ObjectUpload: Send {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// Bytes sent so far.
    fn bytes(&self) -> u64;
    /// Completes the upload; the object's size.
    async fn complete(self: Box<Self>) -> Result<u64, StoreError>;
    /// Aborts the upload; nothing of it stays.
    async fn abort(self: Box<Self>);
}

/// A bucket of objects (recordings, transcripts, exports), encrypted at rest with the
/// customer key and versioned: deleting an object means deleting every version of it.
#[async_trait]
pub trait Objects: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes every version and delete marker of `key`; how many went.
    async fn delete_all_versions(&self, key: &str) -> Result<usize, StoreError>;
    /// Deletes every version and delete marker of every object under `prefix`.
    async fn delete_all_versions_under(&self, prefix: &str) -> Result<usize, StoreError>;
    /// Deletes every version of `key` but the current one (and any delete marker), so a
    /// rewritten object keeps no earlier content; how many went.
    async fn delete_noncurrent_versions(&self, key: &str) -> Result<usize, StoreError>;
    /// The keys of every version held under `prefix` (one entry per version).
    async fn version_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// How many versions are held under `prefix` (`exact`: of exactly that key).
    async fn count_versions(&self, prefix: &str, exact: bool) -> Result<usize, StoreError>;
    /// Opens an object for streaming; `None` when it does not exist.
    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError>;
    async fn start_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<Box<dyn ObjectUpload>, StoreError>;
    /// A link that downloads `key` as `filename` for `expires`.
    async fn presign_get(
        &self,
        key: &str,
        expires: std::time::Duration,
        filename: &str,
    ) -> Result<String, StoreError>;
    /// Deletes every version and delete marker under each of `prefixes`, in as few
    /// requests as the store allows across prefixes; how many went.
    async fn delete_all_versions_under_each(
        &self,
        prefixes: &[String],
    ) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for p in prefixes {
            deleted += self.delete_all_versions_under(p).await?;
        }
        Ok(deleted)
    }
}

/// Sends an email to a data subject (codes, receipts, outcomes).
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(
        &self,
        to: &domain::Email,
        mail: &domain::dsar::mail::Mail,
    ) -> Result<(), StoreError>;
}
