//! The ports of the data-subject request use cases: what they need from the stores, the
//! telephony provider and the archive writer. The AWS implementations live
//! in `aws::dsar` / `aws::dsar_subjects`, in-memory ones in `testkit::dsar`. Each port
//! speaks in typed records; item shapes, keys and conditions belong to the
//! implementations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use domain::crypto::BlindIndex;
use domain::{LeadId, RequestId};

use super::records::{
    Change, CodeRecord, Commit, ContactRecord, Counter, ExportRecord, OpenRecord, RequestRecord,
    TimelineEntry,
};
use crate::ports::{IdentifierKind, KeyError, StoreError};

/// The request records (`DSAR#<id>`), the staff list, the counters and the audit trail.
#[async_trait]
pub trait RequestStore: Send + Sync {
    async fn request(&self, id: &RequestId) -> Result<Option<RequestRecord>, StoreError>;
    async fn code(&self, id: &RequestId) -> Result<Option<CodeRecord>, StoreError>;
    /// The sealed contact of a request, with its wrapped key when that still exists.
    async fn contact(&self, id: &RequestId) -> Result<Option<ContactRecord>, StoreError>;
    async fn export(&self, id: &RequestId) -> Result<Option<ExportRecord>, StoreError>;
    /// Counts one request in `counter`; `false` once `limit` were counted. A counter
    /// lives two days.
    async fn count_request(
        &self,
        counter: &Counter,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Takes one of the code's tries, atomically and before the code is compared, so
    /// concurrent guesses can never compare more than `MAX_CODE_ATTEMPTS` codes; the tries
    /// taken so far, or `None` when the code is gone or its tries are used up.
    async fn take_code_attempt(&self, id: &RequestId) -> Result<Option<u32>, StoreError>;
    /// Writes a request change at once: the record on its read version
    /// (`expected_version`; `None` for a new request), the `changes`, and an audit item
    /// (`actor`, `action`). `Conflict` when the record changed since it was read. The
    /// record and every entry it lists (`Change::List`) are stored with `changed_at = at`;
    /// the audit item of a request's creation names its channel when it is not `online`.
    async fn commit(
        &self,
        record: &RequestRecord,
        expected_version: Option<u64>,
        changes: Vec<Change>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<Commit, StoreError>;
    /// An audit item about a request that changes nothing else.
    async fn audit(
        &self,
        id: &RequestId,
        lead: Option<&LeadId>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Open requests, earliest due date (so the overdue ones) first.
    async fn open_requests(&self) -> Result<Vec<OpenRecord>, StoreError>;
    /// The audit items about a request (written by `commit` and `audit`), oldest first.
    async fn timeline(&self, id: &RequestId) -> Result<Vec<TimelineEntry>, StoreError>;
    /// The requests linked to a subject, oldest first.
    async fn subject_requests(&self, lead: &LeadId) -> Result<Vec<RequestRecord>, StoreError>;
    /// Removes the link from a request record to its subject (the record stays; gone is
    /// fine).
    async fn unlink_subject(&self, id: &RequestId) -> Result<(), StoreError>;
    /// Erasures whose cancel window ended at or before `now` (the sparse due index,
    /// earliest first), at most `limit`.
    async fn due_erasures(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RequestId>, StoreError>;
    /// The CRM event a closed request queued (`crate::crm`; its id is the request id),
    /// for the delivery state the status route shows. None without a CRM.
    async fn crm_event(&self, _event_id: &str) -> Result<Option<crate::crm::CrmEvent>, StoreError> {
        Ok(None)
    }
}

/// Who holds an identifier now (the live claims).
#[async_trait]
pub trait ClaimLookup: Send + Sync {
    async fn claim_holder(
        &self,
        kind: IdentifierKind,
        index: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<Option<LeadId>, StoreError>;
}

/// One record held under a subject (consent proof, contract, request link, …) as the
/// subject may see it: its plain attributes, storage mechanics and sealed values left
/// out; a record sealed whole (the follow-up record sales reads) brings its ciphertext,
/// for the export to open.
#[derive(Debug, Clone)]
pub struct HeldRecord {
    /// Which record of the subject it is (opaque; names it for deletion).
    pub key: String,
    pub kind: String,
    pub fields: Map<String, Value>,
    /// The record's `sealed` attribute, under the subject's data key, when it has one.
    pub sealed: Option<Vec<u8>>,
}

impl HeldRecord {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// Everything held under a subject, as found now.
#[derive(Debug, Clone)]
pub struct SubjectRecords {
    pub lead: LeadId,
    pub email_index: Option<BlindIndex>,
    pub phone_index: Option<BlindIndex>,
    /// Every record of the subject, the lead itself included (`kind = lead`).
    pub records: Vec<HeldRecord>,
    /// The subject's calls, found through the subject (the calls linked to it and the
    /// calls its call requests placed), not through its number today; each once, sorted.
    pub calls: Vec<String>,
}

/// A call as held: plain attributes, the sealed ones still sealed.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub id: String,
    pub fields: Map<String, Value>,
    /// `(field, ciphertext)` of each sealed attribute (`sealed_<field>`; the AAD names the
    /// attribute).
    pub sealed: Vec<(String, Vec<u8>)>,
    pub transcript_key: Option<String>,
    /// The provider confirmed the call deleted there.
    pub provider_deleted: bool,
    pub recording: Option<RecordingRecord>,
}

/// A stored recording's metadata.
#[derive(Debug, Clone, Default)]
pub struct RecordingRecord {
    pub object_key: Option<String>,
    pub fields: Map<String, Value>,
}

/// What we hold about a subject, for exports and the other rights.
#[async_trait]
pub trait SubjectData: Send + Sync {
    /// `None` when the subject has no lead record. Read consistently, so a call stored
    /// before the subject's tombstone is among its calls.
    async fn subject(&self, lead: &LeadId) -> Result<Option<SubjectRecords>, StoreError>;
    async fn call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError>;
    /// The calls with this number (its blind index) that no subject holds: stored without
    /// a lead (no `lead_id`, no pointer), each once, sorted by id. A call linked to
    /// anyone is never among them.
    async fn unlinked_calls(&self, phone_index: &BlindIndex)
        -> Result<Vec<CallRecord>, StoreError>;
}

/// Something to delete when a subject's rights are carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doomed {
    /// A call and its recording's record.
    Call(String),
    /// A call stored without a subject, and its recording's record, only while it is
    /// still unlinked (a call linked to someone since stays).
    UnlinkedCall(String),
    /// A recording's record only.
    Recording(String),
    /// A record of the subject ([`HeldRecord::key`]).
    Held(LeadId, String),
    /// The export record of a request.
    Export(RequestId),
    /// The claim of an email or phone.
    Claim(IdentifierKind, BlindIndex),
    /// Every request counter of an identifier (two days at most).
    Counters(BlindIndex),
    /// The call-attempt counters the subject left on its numbers (R1.6, two days at
    /// most).
    Attempts(LeadId),
}

/// A processing flag of a subject (R4.7–R4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Restricted,
    Objected,
    ConsentWithdrawn,
    /// An erasure waits in its cancel window: nothing new happens to the data (as under
    /// a restriction), and a cancellation lifts exactly this flag, never `restricted`.
    ErasurePending,
}

impl Flag {
    pub fn attribute(self) -> &'static str {
        match self {
            Self::Restricted => "restricted",
            Self::Objected => "objected",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::ErasurePending => "erasure_pending",
        }
    }
}

/// The writes of erasure, restriction, objection, withdrawal and rectification.
#[async_trait]
pub trait SubjectRights: Send + Sync {
    /// Deletes what is named (batches of at most 25); how many records went.
    async fn delete(&self, doomed: Vec<Doomed>) -> Result<usize, StoreError>;
    /// Crypto-shredding: deletes the subject's wrapped data key.
    async fn shred_key(&self, lead: &LeadId) -> Result<(), StoreError>;
    /// Sets a flag on the lead (a lead that is gone is fine).
    async fn set_flag(&self, lead: &LeadId, flag: Flag) -> Result<(), StoreError>;
    /// Removes the subject's follow-up record from the sales queue (issue 17), for a
    /// number listed do-not-call after the record was written (a record that is gone, or
    /// a lead, is fine).
    async fn remove_followup(&self, lead: &LeadId) -> Result<(), StoreError>;
    /// Removes the restriction flag (the lead must exist).
    async fn lift_restriction(&self, lead: &LeadId) -> Result<(), StoreError>;
    /// Removes the cancel window's flag ([`Flag::ErasurePending`]) and nothing else (a
    /// lead that is gone is fine).
    async fn lift_erasure_pending(&self, lead: &LeadId) -> Result<(), StoreError>;
    /// Marks a call's recording withdrawn and forgets its objects (a call that is gone
    /// is fine).
    async fn withdraw_recording(&self, call_id: &str) -> Result<(), StoreError>;
    /// Replaces the sealed profile and moves changed identifiers' claims (old → new),
    /// at once; `false` when the lead is gone or a new identifier is someone else's.
    async fn rectify(
        &self,
        lead: &LeadId,
        sealed_profile: Vec<u8>,
        email: Option<(&BlindIndex, &BlindIndex)>,
        phone: Option<(&BlindIndex, &BlindIndex)>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// A failure to delete at the provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider key unavailable")]
    Keys(#[from] KeyError),
    #[error("provider call failed")]
    Provider(#[from] StoreError),
}

/// The telephony provider, where the subject's calls are deleted (Art. 19).
#[async_trait]
pub trait CallProvider: Send + Sync {
    /// Deletes the calls at the provider, in order (a call already gone counts as
    /// deleted); the key is fetched first, even for no calls. How many were deleted.
    async fn delete_calls(&self, call_ids: &[String]) -> Result<usize, ProviderError>;
}

/// Where the worker puts a request it gave up (`failed`), for operators to replay
/// (`make redrive`): the request id and the reason code, nothing else.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn give_up(&self, id: &RequestId, reason: &str) -> Result<(), StoreError>;
}

/// A failure of the archive writer (its message is fixed).
#[derive(Debug, thiserror::Error)]
#[error("archive: {0}")]
pub struct ArchiveError(pub &'static str);

/// A streaming archive (ZIP) writing into a buffer the caller drains.
pub trait Archive: Send {
    fn start_file(&mut self, name: &str, modified: DateTime<Utc>) -> Result<(), ArchiveError>;
    fn write_all(&mut self, data: &[u8]) -> Result<(), ArchiveError>;
    /// How many bytes were written and not yet taken.
    fn buffered(&mut self) -> usize;
    /// Takes the bytes written so far; the archive goes on into a fresh buffer of
    /// `capacity`.
    fn take(&mut self, capacity: usize) -> Vec<u8>;
    /// Ends the archive; the bytes not yet taken.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, ArchiveError>;
}

/// Makes archives.
pub trait ArchiveFormat: Send + Sync {
    fn start(&self, capacity: usize) -> Box<dyn Archive>;
}

/// A call as the pseudonymised analytics export sees it (R6): no number, the analysis
/// still sealed.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsCall {
    pub call_id: String,
    pub lead_id: Option<LeadId>,
    pub start_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub call_status: Option<String>,
    pub disconnection_reason: Option<String>,
    pub consent_granted: Option<bool>,
    /// The sealed call content (`sealed_call`).
    pub sealed_call: Option<Vec<u8>>,
}

/// What the staff routes read and write besides requests (R4.10, R6).
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// An audit item of a staff action (append-only).
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        lead: Option<&LeadId>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Ends a contract at `end`: its statutory period (and the hold) now runs from
    /// there. `false` when there is no such contract of that kind of records.
    async fn end_contract(
        &self,
        lead: &LeadId,
        contract_id: &str,
        records: domain::retention::ContractRecords,
        end: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Records contracts (the retention use cases own the contract records).
#[async_trait]
pub trait ContractLedger: Send + Sync {
    /// Records a contract of `lead`, audited by `actor`; the contract's id.
    async fn record(
        &self,
        lead: &LeadId,
        contract: domain::retention::Contract,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError>;
}
