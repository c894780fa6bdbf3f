//! The retention sweep's store in memory: a small table of items with their expiry-index
//! entries, a key table, and a log of operations in order (so a test can show that a key
//! went before the data it protects). Deletes come in batches of at most 25, as
//! DynamoDB's BatchWriteItem allows; a larger batch fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::retention::Retention;
use domain::{LeadId, RetentionClass};
use usecases::ports::{Retry, StoreError};
use usecases::retention::ports::{
    DueItem, DueRecording, ErasurePlan, ItemKey, RetentionStore, SweepAudit, SweepCursor,
};

/// One stored item, with what the sweep may ask of it.
#[derive(Debug, Clone, Default)]
pub struct MemItem {
    pub kind: String,
    pub lead: Option<LeadId>,
    /// Expiry-index entry: partition (`<class>#<YYYY-MM>`) and due time.
    pub expiry: Option<(String, DateTime<Utc>)>,
    /// Recordings: the call and its objects.
    pub call_id: Option<String>,
    pub objects: Vec<String>,
    /// Leads and calls: blind indexes.
    pub email_bidx: Option<String>,
    pub phone_bidx: Option<String>,
    /// Requests: status; calls: recording state.
    pub status: Option<String>,
}

impl MemItem {
    pub fn kind(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            ..Self::default()
        }
    }

    /// Due as data of `class` whose clock started at `start`.
    pub fn retained(mut self, class: RetentionClass, start: DateTime<Utc>) -> Self {
        let r = Retention::of(class, start);
        self.expiry = Some((r.bucket, r.expires_at));
        self
    }

    pub fn of(mut self, lead: LeadId) -> Self {
        self.lead = Some(lead);
        self
    }
}

pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> ItemKey {
    ItemKey {
        pk: pk.into(),
        sk: sk.into(),
    }
}

#[derive(Default)]
struct State {
    items: BTreeMap<ItemKey, MemItem>,
    /// The key table: `LEAD#<id>` and `DSAR#<id>` partitions that hold a wrapped key.
    keys: BTreeSet<String>,
    ops: Vec<String>,
    audit: Vec<String>,
    runs: Vec<(String, bool)>,
    batch_sizes: Vec<usize>,
    fail: Option<(String, Retry)>,
    /// Leads whose retention moved after the expiry index was read (the index still
    /// names the old due time: it is eventually consistent).
    moved: std::collections::HashMap<LeadId, DateTime<Utc>>,
    /// The sweep's cursors by class code.
    cursors: BTreeMap<String, SweepCursor>,
    /// Expiry partitions read, in order (`due` calls).
    reads: Vec<String>,
    /// Proofs copied out of erased subjects' partitions (`CONSENT#<id>`).
    detached: Vec<ItemKey>,
}

/// The sweep's store in memory; clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryRetentionStore {
    state: Arc<Mutex<State>>,
}

impl MemoryRetentionStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&self, key: ItemKey, item: MemItem) {
        self.state.lock().unwrap().items.insert(key, item);
    }

    pub fn put_key(&self, partition: impl Into<String>) {
        self.state.lock().unwrap().keys.insert(partition.into());
    }

    /// The lead's retention moves to `expires_at` (a sign-up again, a call), while the
    /// index still says what it said.
    pub fn move_lead(&self, lead: LeadId, expires_at: DateTime<Utc>) {
        self.state.lock().unwrap().moved.insert(lead, expires_at);
    }

    pub fn item(&self, key: &ItemKey) -> Option<MemItem> {
        self.state.lock().unwrap().items.get(key).cloned()
    }

    pub fn keys(&self) -> Vec<ItemKey> {
        self.state.lock().unwrap().items.keys().cloned().collect()
    }

    pub fn has_key(&self, partition: &str) -> bool {
        self.state.lock().unwrap().keys.contains(partition)
    }

    /// What was written, in order (`shred LEAD#..`, `delete <pk>/<sk>`, ...).
    pub fn ops(&self) -> Vec<String> {
        self.state.lock().unwrap().ops.clone()
    }

    pub fn audit(&self) -> Vec<String> {
        self.state.lock().unwrap().audit.clone()
    }

    pub fn runs(&self) -> Vec<(String, bool)> {
        self.state.lock().unwrap().runs.clone()
    }

    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state.lock().unwrap().batch_sizes.clone()
    }

    /// The expiry partitions the sweep read, in order.
    pub fn reads(&self) -> Vec<String> {
        self.state.lock().unwrap().reads.clone()
    }

    /// Forgets the partitions read so far.
    pub fn clear_reads(&self) {
        self.state.lock().unwrap().reads.clear();
    }

    pub fn cursors(&self) -> BTreeMap<String, SweepCursor> {
        self.state.lock().unwrap().cursors.clone()
    }

    /// Calls of `operation` fail with `retry` until [`Self::heal`].
    pub fn fail_on(&self, operation: &str, retry: Retry) {
        self.state.lock().unwrap().fail = Some((operation.to_owned(), retry));
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().fail = None;
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        match &self.state.lock().unwrap().fail {
            Some((op, retry)) if op == operation => Err(StoreError {
                operation,
                retry: *retry,
                source: None,
            }),
            _ => Ok(()),
        }
    }
}

const BATCH_LIMIT: usize = 25;

/// The lead's retention end as stored now (moved or as written).
fn lead_expiry(s: &State, lead: &LeadId) -> Option<DateTime<Utc>> {
    let stored = s
        .items
        .get(&key(format!("LEAD#{lead}"), "PROFILE"))
        .and_then(|p| p.expiry.as_ref())
        .map(|(_, at)| *at)?;
    Some(s.moved.get(lead).copied().unwrap_or(stored))
}

/// The erasure tombstone's sort key and kind, as the adapter writes them.
pub const TOMBSTONE_SK: &str = "ERASED";
pub const TOMBSTONE_KIND: &str = "erasure_tombstone";

#[async_trait]
impl RetentionStore for MemoryRetentionStore {
    async fn due(&self, bucket: &str, now: DateTime<Utc>) -> Result<Vec<DueItem>, StoreError> {
        self.check("due")?;
        let mut s = self.state.lock().unwrap();
        s.reads.push(bucket.to_owned());
        let mut due: Vec<(DateTime<Utc>, DueItem)> = s
            .items
            .iter()
            .filter_map(|(k, i)| {
                let (b, at) = i.expiry.as_ref()?;
                (b == bucket && *at <= now).then(|| {
                    (
                        *at,
                        DueItem {
                            key: k.clone(),
                            kind: Some(i.kind.clone()),
                            lead: i.lead,
                        },
                    )
                })
            })
            .collect();
        due.sort_by_key(|(at, _)| *at);
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }

    async fn recording(&self, key: &ItemKey) -> Result<Option<DueRecording>, StoreError> {
        self.check("recording")?;
        let s = self.state.lock().unwrap();
        Ok(s.items.get(key).map(|i| DueRecording {
            call_id: i.call_id.clone().unwrap_or_default(),
            lead: i.lead,
            objects: i.objects.clone(),
        }))
    }

    async fn mark_recording_deleted(
        &self,
        call_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check("mark_recording_deleted")?;
        let mut s = self.state.lock().unwrap();
        if let Some(call) = s.items.get_mut(&key(format!("CALL#{call_id}"), "CALL")) {
            call.status = Some("deleted".into());
            call.objects.clear();
            s.ops.push(format!("mark CALL#{call_id}"));
        }
        Ok(())
    }

    fn recording_key(&self, call_id: &str) -> ItemKey {
        key(format!("CALL#{call_id}"), "RECORDING")
    }

    fn call_of(&self, k: &ItemKey) -> Option<String> {
        (k.sk == "CALL").then(|| k.pk.strip_prefix("CALL#").map(str::to_owned))?
    }

    async fn delete(&self, keys: Vec<ItemKey>) -> Result<usize, StoreError> {
        self.check("delete")?;
        let mut s = self.state.lock().unwrap();
        let mut deleted = 0;
        for chunk in keys.chunks(BATCH_LIMIT) {
            s.batch_sizes.push(chunk.len());
            for k in chunk {
                s.ops.push(format!("delete {}/{}", k.pk, k.sk));
                // BatchWriteItem counts a delete of a missing key as done.
                s.items.remove(k);
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn delete_request_keys(&self, request_ids: Vec<String>) -> Result<usize, StoreError> {
        self.check("delete_request_keys")?;
        let mut s = self.state.lock().unwrap();
        for chunk in request_ids.chunks(BATCH_LIMIT) {
            s.batch_sizes.push(chunk.len());
        }
        for id in &request_ids {
            let partition = format!("DSAR#{id}");
            s.ops.push(format!("shred {partition}"));
            s.keys.remove(&partition);
        }
        Ok(request_ids.len())
    }

    async fn end_unverified(
        &self,
        request_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check("end_unverified")?;
        let mut s = self.state.lock().unwrap();
        if let Some(r) = s
            .items
            .get_mut(&key(format!("DSAR#{request_id}"), "REQUEST"))
        {
            if r.status.as_deref() == Some("awaiting_verification") {
                r.status = Some("verification_failed".into());
                r.email_bidx = None;
                r.phone_bidx = None;
            }
        }
        Ok(())
    }

    async fn contract_hold(
        &self,
        lead: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.check("contract_hold")?;
        let s = self.state.lock().unwrap();
        let pk = format!("LEAD#{lead}");
        Ok(s.items
            .iter()
            .filter(|(k, _)| k.pk == pk && k.sk.starts_with("CONTRACT#"))
            .filter_map(|(_, i)| i.expiry.as_ref().map(|(_, at)| *at))
            .filter(|at| *at > now)
            .max())
    }

    async fn lead_expiry(&self, lead: &LeadId) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.check("lead_expiry")?;
        let s = self.state.lock().unwrap();
        Ok(lead_expiry(&s, lead))
    }

    async fn bury(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.check("bury")?;
        let mut s = self.state.lock().unwrap();
        let pk = format!("LEAD#{lead}");
        let due = lead_expiry(&s, lead).is_some_and(|at| at <= now);
        if !due {
            return Ok(false);
        }
        s.ops.push(format!("bury {pk}"));
        s.items
            .entry(key(pk, TOMBSTONE_SK))
            .or_insert_with(|| MemItem::kind(TOMBSTONE_KIND).of(*lead));
        Ok(true)
    }

    async fn erasure_keys(&self, lead: &LeadId) -> Result<Vec<ItemKey>, StoreError> {
        self.check("erasure_keys")?;
        let s = self.state.lock().unwrap();
        let pk = format!("LEAD#{lead}");
        let mut keys: Vec<ItemKey> = s
            .items
            .iter()
            .filter(|(k, i)| k.pk == pk && i.kind != "phone_consent" && i.kind != TOMBSTONE_KIND)
            .map(|(k, _)| k.clone())
            .collect();
        let profile = s.items.get(&key(pk.clone(), "PROFILE"));
        if let Some(email) = profile.and_then(|p| p.email_bidx.clone()) {
            keys.push(key(format!("EMAIL#{email}"), "CLAIM"));
        }
        if let Some(phone) = profile.and_then(|p| p.phone_bidx.clone()) {
            keys.push(key(format!("PHONE#{phone}"), "CLAIM"));
        }
        // The subject's calls (linked to it, whatever number they were made to) and the
        // call-attempt counters it left.
        let calls: BTreeSet<String> = s
            .items
            .iter()
            .filter(|(k, i)| k.sk == "CALL" && i.lead == Some(*lead))
            .map(|(k, _)| k.pk.clone())
            .collect();
        for call in calls {
            keys.push(key(call.clone(), "CALL"));
            keys.push(key(call, "RECORDING"));
        }
        keys.extend(
            s.items
                .iter()
                .filter(|(k, i)| k.sk.starts_with("ATTEMPT#") && i.lead == Some(*lead))
                .map(|(k, _)| k.clone()),
        );
        Ok(keys)
    }

    async fn shred_key(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.check("shred_key")?;
        let mut s = self.state.lock().unwrap();
        let partition = format!("LEAD#{lead}");
        s.ops.push(format!("shred {partition}"));
        s.keys.remove(&partition);
        Ok(())
    }

    async fn audit(&self, event: SweepAudit<'_>) -> Result<(), StoreError> {
        self.check("audit")?;
        self.state
            .lock()
            .unwrap()
            .audit
            .push(event.action.to_owned());
        Ok(())
    }

    async fn record_run(
        &self,
        counts: &str,
        complete: bool,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check("record_run")?;
        self.state
            .lock()
            .unwrap()
            .runs
            .push((counts.to_owned(), complete));
        Ok(())
    }

    async fn erasure_plans(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<ErasurePlan>, StoreError> {
        let mut plans = Vec::new();
        for lead in leads {
            let keys = self.erasure_keys(lead).await?;
            let hold = self.contract_hold(lead, now).await?;
            let expires_at = self.lead_expiry(lead).await?;
            let s = self.state.lock().unwrap();
            let pk = format!("LEAD#{lead}");
            let proofs = s
                .items
                .iter()
                .filter(|(k, i)| k.pk == pk && i.kind == "phone_consent")
                .map(|(k, _)| k.clone())
                .collect();
            let calls = keys
                .iter()
                .filter(|k| k.sk == "CALL")
                .filter_map(|k| k.pk.strip_prefix("CALL#").map(str::to_owned))
                .collect();
            plans.push(ErasurePlan {
                lead: *lead,
                expires_at,
                hold,
                keys,
                proofs,
                calls,
            });
        }
        Ok(plans)
    }

    async fn bury_all(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadId>, StoreError> {
        let mut buried = Vec::new();
        for lead in leads {
            if self.bury(lead, now).await? {
                buried.push(*lead);
            }
        }
        Ok(buried)
    }

    async fn shred_keys(&self, leads: &[LeadId]) -> Result<(), StoreError> {
        self.check("shred_key")?;
        let mut s = self.state.lock().unwrap();
        for chunk in leads.chunks(BATCH_LIMIT) {
            s.batch_sizes.push(chunk.len());
            for lead in chunk {
                let partition = format!("LEAD#{lead}");
                s.ops.push(format!("shred {partition}"));
                s.keys.remove(&partition);
            }
        }
        Ok(())
    }

    async fn detach_proofs(&self, proofs: &[ItemKey]) -> Result<usize, StoreError> {
        self.check("detach_proofs")?;
        let mut s = self.state.lock().unwrap();
        for chunk in proofs.chunks(BATCH_LIMIT) {
            s.batch_sizes.push(chunk.len());
        }
        for k in proofs {
            let Some(mut copy) = s.items.get(k).cloned() else {
                continue;
            };
            copy.lead = None;
            let id = k.sk.rsplit('#').next().unwrap_or_default().to_owned();
            let kept = key(format!("CONSENT#{id}"), "PROOF");
            s.ops.push(format!("detach {}/{}", k.pk, k.sk));
            s.detached.push(kept.clone());
            s.items.insert(kept, copy);
        }
        Ok(proofs.len())
    }

    async fn audit_all(&self, events: &[SweepAudit<'_>]) -> Result<(), StoreError> {
        self.check("audit")?;
        let mut s = self.state.lock().unwrap();
        for chunk in events.chunks(BATCH_LIMIT) {
            s.batch_sizes.push(chunk.len());
        }
        s.audit.extend(events.iter().map(|e| e.action.to_owned()));
        Ok(())
    }

    async fn cursors(&self) -> Result<BTreeMap<String, SweepCursor>, StoreError> {
        self.check("cursors")?;
        Ok(self.state.lock().unwrap().cursors.clone())
    }

    async fn set_cursors(&self, cursors: &[(&str, SweepCursor)]) -> Result<(), StoreError> {
        self.check("set_cursors")?;
        let mut s = self.state.lock().unwrap();
        for (class, c) in cursors {
            s.cursors.insert((*class).to_owned(), *c);
        }
        Ok(())
    }
}
