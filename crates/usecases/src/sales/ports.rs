//! The port of the sales handoff (issue 17): the follow-up items.
//!
//! Item format (the `aws` crate keeps it; the crm part reads it): in the subject's
//! partition `LEAD#<id>` / `FOLLOWUP`, `kind = "followup"`, `lead_id`, `call_id`,
//! `ready_at` (RFC 3339), `done_at` once done, `sealed` (binary: the
//! [`domain::sales::FollowUpRecord`] as JSON, sealed under the subject's data key with
//! [`domain::sales::followup_aad`]), `ttl` (the lead's expiry: the item never outlives
//! its subject). While open it carries the sparse `by-due` index's keys
//! `due_kind = "followup"`, `due_at = ready_at`: the queue is a query, never a scan, and
//! marking it done drops it from the queue. Erasure and the sweep delete the whole
//! partition, so the item goes with its subject.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use domain::LeadId;

use crate::ports::StoreError;

/// A follow-up item as stored: the record still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpItem {
    pub lead_id: LeadId,
    /// The call the record was built from (a redelivery of the same call writes nothing).
    pub call_id: String,
    pub ready_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub sealed: Vec<u8>,
    /// Removed by TTL at the latest then (the lead's own expiry).
    pub expires_at: DateTime<Utc>,
}

/// What writing a follow-up item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The lead's item is already built from this call: left as it is (stream redelivery;
    /// a `done` mark survives it).
    Unchanged,
    /// The subject was erased: nothing written.
    Erased,
}

/// One open entry of the queue (from the index; the record is read on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry {
    pub lead_id: LeadId,
    pub ready_at: DateTime<Utc>,
}

/// The follow-up items and the sales audit.
#[async_trait]
pub trait FollowUpStore: Send + Sync {
    /// Writes the lead's item (one per lead: a later call's record replaces the earlier
    /// one, open again), unless it is already built from `item.call_id` or the subject
    /// was erased (its tombstone checked in the same write).
    async fn put(&self, item: &FollowUpItem) -> Result<PutOutcome, StoreError>;

    /// The lead's item, if any (consistent read).
    async fn get(&self, lead: &LeadId) -> Result<Option<FollowUpItem>, StoreError>;

    /// The open items, earliest ready first, at most `limit`.
    async fn open(&self, limit: usize) -> Result<Vec<QueueEntry>, StoreError>;

    /// Marks the item done at `at` (it leaves the queue); `false` when there is none.
    /// Marking it again keeps the first time.
    async fn mark_done(&self, lead: &LeadId, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Deletes the lead's item (a restriction, objection or erasure arrived).
    async fn remove(&self, lead: &LeadId) -> Result<(), StoreError>;

    /// An audit item: `actor` (a principal ARN or a function), `action`, the opaque lead
    /// id. No personal data.
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        lead: Option<&LeadId>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}
