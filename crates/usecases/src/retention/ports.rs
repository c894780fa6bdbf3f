//! What the retention sweep needs from the store: due items by expiry bucket, the few
//! reads and writes each class's disposal takes, and the audit trail. The AWS floor keeps
//! the layout (keys, index names, attribute names); the sweep sees typed items only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::LeadId;

use crate::ports::StoreError;

/// The key of a stored item, opaque to the use case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

/// What the expiry index says about a due item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    pub key: ItemKey,
    /// The item's kind (`lead`, `recording`, `dsar_code`, `dsar_contact`, ...).
    pub kind: Option<String>,
    /// The subject, for items that belong to one.
    pub lead: Option<LeadId>,
}

impl DueItem {
    /// The id of the data-subject request this item belongs to (`DSAR#<id>` keys).
    pub fn request_id(&self) -> Option<&str> {
        self.key.pk.strip_prefix("DSAR#")
    }
}

/// A due recording, read whole (the index projects only a few attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRecording {
    pub call_id: String,
    pub lead: Option<LeadId>,
    /// The audio and the transcript objects, where present.
    pub objects: Vec<String>,
}

/// What the erasure of one subject needs, read afresh (consistently) from its partition
/// in one go: whether it is still due, whether a contract holds it, and what goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasurePlan {
    pub lead: LeadId,
    /// The lead's retention end as stored now (not the index); `None` when it is gone.
    pub expires_at: Option<DateTime<Utc>>,
    /// The end of the latest contract period still running at `now` (a legal hold).
    pub hold: Option<DateTime<Utc>>,
    /// Every item the erasure deletes (see [`RetentionStore::erasure_keys`]), the
    /// originals of the consent proofs included (they go after their copies).
    pub keys: Vec<ItemKey>,
    /// The subject's §7a UWG consent proofs, kept detached (see
    /// [`RetentionStore::detach_proofs`]).
    pub proofs: Vec<ItemKey>,
    /// The provider's call ids of the subject's calls.
    pub calls: Vec<String>,
}

/// Where a class's last complete pass left the expiry index (`SWEEP#CURSOR`/`<class>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCursor {
    /// The `now` of the last complete pass of the class.
    pub swept_at: DateTime<Utc>,
    /// The `now` of the last complete pass that read every month from the first one.
    pub full_at: DateTime<Utc>,
}

/// One audit event of the sweep (actor `retention-sweep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepAudit<'a> {
    pub action: &'a str,
    pub lead: Option<&'a LeadId>,
    pub call_id: Option<&'a str>,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Items of the expiry partition `bucket` (`<class>#<YYYY-MM>`) due at `now`.
    async fn due(&self, bucket: &str, now: DateTime<Utc>) -> Result<Vec<DueItem>, StoreError>;

    /// The recording behind a due index entry (consistent read); `None` when gone.
    async fn recording(&self, key: &ItemKey) -> Result<Option<DueRecording>, StoreError>;

    /// Marks a call's recording as deleted and drops its object references; nothing when
    /// the call itself is gone.
    async fn mark_recording_deleted(
        &self,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The recording item of a call.
    fn recording_key(&self, call_id: &str) -> ItemKey;

    /// The provider's call id when `key` is a call item (from [`Self::erasure_keys`]).
    fn call_of(&self, key: &ItemKey) -> Option<String>;

    /// Deletes items of the main table in batches the store allows; how many went.
    async fn delete(&self, keys: Vec<ItemKey>) -> Result<usize, StoreError>;

    /// Deletes the contact keys (key table) of these data-subject requests.
    async fn delete_request_keys(&self, request_ids: Vec<String>) -> Result<usize, StoreError>;

    /// Ends a request still waiting for its code: `verification_failed`, blind indexes
    /// removed. Nothing when it moved on meanwhile.
    async fn end_unverified(&self, request_id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// The end of the latest contract period of `lead` still running at `now`.
    async fn contract_hold(
        &self,
        lead: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The lead's retention end as stored now (consistent read, not the index);
    /// `None` when the lead is gone.
    async fn lead_expiry(&self, lead: &LeadId) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Leaves the subject's erasure tombstone, only if the lead is still due at `now`
    /// (atomically); `false` when it is not (or gone). See `LeadStore::bury`.
    async fn bury(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Every item an erasure of `lead` deletes: its partition but the consent proofs
    /// (and the tombstone), its identifier claims, its calls (found through the subject,
    /// not its number) and their recording items, and its call-attempt counters.
    async fn erasure_keys(&self, lead: &LeadId) -> Result<Vec<ItemKey>, StoreError>;

    /// Deletes the subject's data key (crypto-shredding).
    async fn shred_key(&self, lead: &LeadId) -> Result<(), StoreError>;

    async fn audit(&self, event: SweepAudit<'_>) -> Result<(), StoreError>;

    /// Records a finished run: counts per class (JSON) and whether it completed.
    async fn record_run(
        &self,
        counts: &str,
        complete: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The erasure plans of `leads` (one consistent read of each partition, plus the
    /// call-attempt counters where the subject has any), in the order given.
    async fn erasure_plans(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<ErasurePlan>, StoreError>;

    /// Leaves the erasure tombstones of `leads`, each only if its lead is still due at
    /// `now` (atomically with its check; transactions of many subjects); the buried ones.
    async fn bury_all(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadId>, StoreError>;

    /// Deletes the data keys of `leads` (crypto-shredding), in batches the store allows.
    async fn shred_keys(&self, leads: &[LeadId]) -> Result<(), StoreError>;

    /// Copies the consent proofs (read by [`Self::erasure_plans`]) out of their subjects'
    /// partitions, without lead and call ids (see `LeadStore::detach_consent_proofs`);
    /// the originals are left for the caller to delete. How many were copied.
    async fn detach_proofs(&self, proofs: &[ItemKey]) -> Result<usize, StoreError>;

    /// Writes audit events in batches the store allows.
    async fn audit_all(&self, events: &[SweepAudit<'_>]) -> Result<(), StoreError>;

    /// The cursor of every class that has one, by class code.
    async fn cursors(&self) -> Result<std::collections::BTreeMap<String, SweepCursor>, StoreError>;

    /// Moves the cursors of the classes whose pass completed.
    async fn set_cursors(&self, cursors: &[(&str, SweepCursor)]) -> Result<(), StoreError>;
}
