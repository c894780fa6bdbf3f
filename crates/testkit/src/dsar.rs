//! Fakes of the data-subject request ports (`usecases::dsar::ports`): the request records
//! with the conditions the table enforces (a new request only once, every change on its
//! read version, a code and a contact created once, tries taken atomically, counters up
//! to their limit, one staff-list entry per request), the subjects' records over the
//! lead fake, the provider's call deletion and a plain archive format the tests can read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::crypto::BlindIndex;
use domain::{LeadId, RequestId};
use serde_json::{json, Map, Value};
use usecases::dsar::ports::{
    Archive, ArchiveError, ArchiveFormat, CallProvider, CallRecord, ClaimLookup, Doomed, Flag,
    HeldRecord, ProviderError, RequestStore, SubjectData, SubjectRecords, SubjectRights,
};
use usecases::dsar::records::{
    Change, Channel, CodeRecord, Commit, ContactRecord, Counter, ExportRecord, OpenRecord,
    RequestRecord, SubjectRequestRecord, TimelineEntry, MAX_CODE_ATTEMPTS,
};
use usecases::ports::{IdentifierKind, Retry, StoreError};

use crate::fault::FaultSwitch;
use crate::leads::MemoryLeadStore;

/// The adapter's batch limit (DynamoDB's BatchWriteItem).
pub const BATCH_LIMIT: usize = 25;

/// An audit item about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAudit {
    pub request: RequestId,
    pub lead: Option<LeadId>,
    pub actor: String,
    pub action: String,
}

#[derive(Default)]
struct Requests {
    records: HashMap<RequestId, RequestRecord>,
    codes: HashMap<RequestId, CodeRecord>,
    contacts: HashMap<RequestId, ContactRecord>,
    contact_keys: HashMap<RequestId, Vec<u8>>,
    exports: HashMap<RequestId, ExportRecord>,
    open: Vec<((NaiveDate, RequestId), OpenRecord)>,
    links: Vec<SubjectRequestRecord>,
    counters: Vec<(Counter, u32)>,
    audit: Vec<RequestAudit>,
    /// The audit items as the staff timeline reads them, in the order written.
    timeline: Vec<(RequestId, TimelineEntry)>,
    /// The CRM events queued with request changes (`Change::Crm`).
    crm: Vec<usecases::crm::CrmEvent>,
}

/// The request records in memory; clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryRequests {
    state: Arc<Mutex<Requests>>,
    fault: FaultSwitch,
}

fn refused(operation: &'static str) -> StoreError {
    StoreError {
        operation,
        retry: Retry::Permanent,
        source: None,
    }
}

impl MemoryRequests {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }
    pub fn heal(&self) {
        self.fault.heal();
    }
    pub fn record(&self, id: &RequestId) -> Option<RequestRecord> {
        self.state.lock().unwrap().records.get(id).cloned()
    }
    pub fn has_code(&self, id: &RequestId) -> bool {
        self.state.lock().unwrap().codes.contains_key(id)
    }
    /// Whether the sealed contact / its key are still held.
    pub fn has_contact(&self, id: &RequestId) -> (bool, bool) {
        let s = self.state.lock().unwrap();
        (s.contacts.contains_key(id), s.contact_keys.contains_key(id))
    }
    /// The staff list as stored, earliest due first.
    pub fn open_list(&self) -> Vec<OpenRecord> {
        let mut open = self.state.lock().unwrap().open.clone();
        open.sort_by_key(|((due, id), _)| (*due, id.to_string()));
        open.into_iter().map(|(_, o)| o).collect()
    }
    pub fn audit(&self) -> Vec<RequestAudit> {
        self.state.lock().unwrap().audit.clone()
    }
    /// The CRM events queued with request changes, in order.
    pub fn crm_events(&self) -> Vec<usecases::crm::CrmEvent> {
        self.state.lock().unwrap().crm.clone()
    }
    /// Moves a code's expiry (a test's way of letting 15 minutes pass for one code).
    pub fn expire_code(&self, id: &RequestId, at: DateTime<Utc>) {
        if let Some(c) = self.state.lock().unwrap().codes.get_mut(id) {
            c.expiry.exp_at = at.timestamp();
        }
    }
}

impl Requests {
    fn apply(&mut self, id: RequestId, change: Change) {
        match change {
            Change::List(open) => {
                let key = (open.due_date, open.request_id);
                self.open.retain(|(k, _)| *k != key);
                self.open.push((key, open));
            }
            Change::Unlist(open) => {
                let key = (open.due_date, open.request_id);
                self.open.retain(|(k, _)| *k != key);
            }
            Change::CreateCode(code) => {
                self.codes.insert(id, code);
            }
            Change::DeleteCode => {
                self.codes.remove(&id);
            }
            Change::PutContact { mut contact, .. } => {
                if let Some(key) = contact.wrapped_key.take() {
                    self.contact_keys.insert(id, key);
                }
                self.contacts.insert(id, contact);
            }
            Change::DeleteContact => {
                self.contact_keys.remove(&id);
                self.contacts.remove(&id);
            }
            Change::PutExport(export) => {
                self.exports.insert(id, export);
            }
            Change::Link(link) => {
                self.links
                    .retain(|l| !(l.lead_id == link.lead_id && l.request_id == link.request_id));
                self.links.push(link);
            }
            Change::Crm(event) => {
                if !self.crm.iter().any(|e| e.event_id == event.event_id) {
                    self.crm.push(event);
                }
            }
        }
    }
}

#[async_trait]
impl RequestStore for MemoryRequests {
    async fn request(&self, id: &RequestId) -> Result<Option<RequestRecord>, StoreError> {
        self.fault.check("dsar_get")?;
        Ok(self.record(id))
    }
    async fn code(&self, id: &RequestId) -> Result<Option<CodeRecord>, StoreError> {
        self.fault.check("dsar_get")?;
        Ok(self.state.lock().unwrap().codes.get(id).cloned())
    }
    async fn contact(&self, id: &RequestId) -> Result<Option<ContactRecord>, StoreError> {
        self.fault.check("dsar_get")?;
        let s = self.state.lock().unwrap();
        Ok(s.contacts.get(id).cloned().map(|mut c| {
            c.wrapped_key = s.contact_keys.get(id).cloned();
            c
        }))
    }
    async fn export(&self, id: &RequestId) -> Result<Option<ExportRecord>, StoreError> {
        self.fault.check("dsar_get")?;
        Ok(self.state.lock().unwrap().exports.get(id).cloned())
    }
    async fn count_request(
        &self,
        counter: &Counter,
        limit: u32,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.fault.check("dsar_limit")?;
        let mut s = self.state.lock().unwrap();
        match s.counters.iter_mut().find(|(c, _)| c == counter) {
            Some((_, n)) if *n >= limit => Ok(false),
            Some((_, n)) => {
                *n += 1;
                Ok(true)
            }
            None if limit == 0 => Ok(false),
            None => {
                s.counters.push((counter.clone(), 1));
                Ok(true)
            }
        }
    }
    async fn take_code_attempt(&self, id: &RequestId) -> Result<Option<u32>, StoreError> {
        self.fault.check("dsar_code_attempt")?;
        let mut s = self.state.lock().unwrap();
        Ok(match s.codes.get_mut(id) {
            Some(c) if c.attempts < MAX_CODE_ATTEMPTS => {
                c.attempts += 1;
                Some(c.attempts)
            }
            _ => None,
        })
    }
    async fn commit(
        &self,
        record: &RequestRecord,
        expected_version: Option<u64>,
        changes: Vec<Change>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<Commit, StoreError> {
        self.fault.check("dsar_commit")?;
        let mut s = self.state.lock().unwrap();
        let id = record.request_id;
        let current = s.records.get(&id).map(|r| r.version);
        let holds = match expected_version {
            None => current.is_none(),
            Some(v) => current == Some(v),
        };
        if !holds {
            return Ok(Commit::Conflict);
        }
        // The other conditions of the transaction: nothing is written when one fails.
        for change in &changes {
            match change {
                Change::CreateCode(_) if s.codes.contains_key(&id) => {
                    return Err(refused("dsar_commit"))
                }
                Change::PutContact { create: true, .. } if s.contacts.contains_key(&id) => {
                    return Err(refused("dsar_commit"))
                }
                _ => {}
            }
        }
        let mut stored = record.clone();
        stored.changed_at = Some(at);
        s.records.insert(id, stored);
        for change in changes {
            let change = match change {
                Change::List(mut open) => {
                    open.changed_at = Some(at);
                    Change::List(open)
                }
                other => other,
            };
            s.apply(id, change);
        }
        s.audit.push(RequestAudit {
            request: id,
            lead: record.lead_id,
            actor: actor.to_owned(),
            action: action.to_owned(),
        });
        let channel = (expected_version.is_none() && record.channel != Channel::Online)
            .then_some(record.channel);
        s.timeline.push((
            id,
            TimelineEntry {
                at,
                action: action.to_owned(),
                actor: actor.to_owned(),
                channel,
            },
        ));
        drop(s);
        // As the DynamoDB store does: the per-type metrics of a committed change.
        usecases::dsar::figures::committed(record, expected_version.is_none(), action, at);
        Ok(Commit::Done)
    }
    async fn audit(
        &self,
        id: &RequestId,
        lead: Option<&LeadId>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.fault.check("dsar_audit")?;
        let mut s = self.state.lock().unwrap();
        s.audit.push(RequestAudit {
            request: *id,
            lead: lead.copied(),
            actor: actor.to_owned(),
            action: action.to_owned(),
        });
        s.timeline.push((
            *id,
            TimelineEntry {
                at,
                action: action.to_owned(),
                actor: actor.to_owned(),
                channel: None,
            },
        ));
        Ok(())
    }
    async fn open_requests(&self) -> Result<Vec<OpenRecord>, StoreError> {
        self.fault.check("dsar_open")?;
        Ok(self.open_list())
    }
    async fn timeline(&self, id: &RequestId) -> Result<Vec<TimelineEntry>, StoreError> {
        self.fault.check("dsar_timeline")?;
        let mut entries: Vec<TimelineEntry> = self
            .state
            .lock()
            .unwrap()
            .timeline
            .iter()
            .filter(|(r, _)| r == id)
            .map(|(_, e)| e.clone())
            .collect();
        // Oldest first, as the index's sort key (time, then a UUIDv7) orders them.
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }
    async fn subject_requests(&self, lead: &LeadId) -> Result<Vec<RequestRecord>, StoreError> {
        self.fault.check("dsar_history")?;
        let s = self.state.lock().unwrap();
        Ok(s.links
            .iter()
            .filter(|l| l.lead_id == *lead)
            .filter_map(|l| s.records.get(&l.request_id).cloned())
            .collect())
    }
    async fn unlink_subject(&self, id: &RequestId) -> Result<(), StoreError> {
        self.fault.check("unlink_request")?;
        if let Some(r) = self.state.lock().unwrap().records.get_mut(id) {
            r.lead_id = None;
        }
        Ok(())
    }
    async fn due_erasures(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RequestId>, StoreError> {
        self.fault.check("due_erasures")?;
        // As the sparse index: only records carrying the marker, by due instant.
        let now = domain::retention::stored_instant(now);
        let mut due: Vec<(String, RequestId)> = self
            .state
            .lock()
            .unwrap()
            .records
            .values()
            .filter_map(|r| r.erasure_due.as_ref().map(|d| (d, r.request_id)))
            .filter(|(d, _)| {
                d.due_kind == usecases::dsar::records::ERASURE_DUE_KIND && d.due_at <= now
            })
            .map(|(d, id)| (d.due_at.clone(), id))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

/// A call held for a subject's number.
#[derive(Clone, Debug)]
struct HeldCall {
    /// The subject the call is linked to (its pointer in the subject's partition);
    /// `None` for an unlinked call.
    lead: Option<LeadId>,
    phone_index: BlindIndex,
    call: CallRecord,
}

#[derive(Default)]
struct Subjects {
    /// Records besides the lead and its consent proofs (contracts, …), by subject.
    records: HashMap<LeadId, Vec<HeldRecord>>,
    calls: Vec<HeldCall>,
    /// Records deleted (`(lead, key)`), claims released, counters gone.
    deleted: Vec<(LeadId, String)>,
    released: Vec<(IdentifierKind, BlindIndex)>,
    attempts_deleted: Vec<LeadId>,
    /// Every write in order (`shred_key`, `delete`, `set_flag`, …).
    log: Vec<String>,
    /// The size of every batch sent.
    batches: Vec<usize>,
}

/// What is held about subjects, over the lead fake: the lead, its consent proofs, records
/// added by a test (contracts) and calls by number. Clones share the same data.
#[derive(Clone)]
pub struct MemorySubjects {
    pub leads: MemoryLeadStore,
    state: Arc<Mutex<Subjects>>,
    fault: FaultSwitch,
}

impl MemorySubjects {
    pub fn new(leads: MemoryLeadStore) -> Self {
        Self {
            leads,
            state: Arc::default(),
            fault: FaultSwitch::default(),
        }
    }
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }
    pub fn heal(&self) {
        self.fault.heal();
    }
    /// Adds a record under a subject (`kind`, plain fields).
    pub fn add_record(&self, lead: LeadId, key: &str, kind: &str, fields: Value) {
        let fields = fields.as_object().cloned().unwrap_or_default();
        self.state
            .lock()
            .unwrap()
            .records
            .entry(lead)
            .or_default()
            .push(HeldRecord {
                key: key.to_owned(),
                kind: kind.to_owned(),
                fields,
                sealed: None,
            });
    }
    /// Adds an unlinked call with a number (its blind index).
    pub fn add_call(&self, phone_index: BlindIndex, call: CallRecord) {
        self.state.lock().unwrap().calls.push(HeldCall {
            lead: None,
            phone_index,
            call,
        });
    }
    /// Adds a call of a subject, made to a number (its blind index).
    pub fn add_call_of(&self, lead: LeadId, phone_index: BlindIndex, call: CallRecord) {
        self.state.lock().unwrap().calls.push(HeldCall {
            lead: Some(lead),
            phone_index,
            call,
        });
    }
    /// The subjects whose call-attempt counters were deleted.
    pub fn attempts_deleted(&self) -> Vec<LeadId> {
        self.state.lock().unwrap().attempts_deleted.clone()
    }
    pub fn call_ids(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.calls.iter().map(|c| c.call.id.clone()).collect()
    }
    pub fn held_call(&self, id: &str) -> Option<CallRecord> {
        let s = self.state.lock().unwrap();
        s.calls
            .iter()
            .find(|c| c.call.id == id)
            .map(|c| c.call.clone())
    }
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
    pub fn batches(&self) -> Vec<usize> {
        self.state.lock().unwrap().batches.clone()
    }
    pub fn deleted(&self) -> Vec<(LeadId, String)> {
        self.state.lock().unwrap().deleted.clone()
    }
    pub fn released(&self) -> Vec<(IdentifierKind, BlindIndex)> {
        self.state.lock().unwrap().released.clone()
    }
}

#[async_trait]
impl SubjectData for MemorySubjects {
    async fn subject(&self, lead: &LeadId) -> Result<Option<SubjectRecords>, StoreError> {
        self.fault.check("query_partition")?;
        let Some(held) = self.leads.lead(lead) else {
            return Ok(None);
        };
        let s = self.state.lock().unwrap();
        let gone = |key: &str| s.deleted.iter().any(|(l, k)| l == lead && k == key);
        if gone("PROFILE") {
            return Ok(None);
        }
        let mut records = vec![HeldRecord {
            key: "PROFILE".into(),
            kind: "lead".into(),
            fields: Map::new(),
            sealed: None,
        }];
        for (i, c) in self
            .leads
            .consents()
            .into_iter()
            .filter(|c| c.lead == Some(*lead))
            .enumerate()
        {
            records.push(HeldRecord {
                key: format!("CONSENT#{i}"),
                kind: "phone_consent".into(),
                fields: json!({
                    "given_at": c.evidence.given_at.to_rfc3339(),
                    "policy_version": c.evidence.policy_version,
                    "method": c.evidence.method,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
                sealed: None,
            });
        }
        records.extend(s.records.get(lead).cloned().unwrap_or_default());
        records.retain(|r| !gone(&r.key));
        let mut calls: Vec<String> = s
            .calls
            .iter()
            .filter(|c| c.lead == Some(*lead))
            .map(|c| c.call.id.clone())
            .collect();
        calls.sort();
        calls.dedup();
        Ok(Some(SubjectRecords {
            lead: *lead,
            email_index: Some(held.email_index),
            phone_index: Some(held.phone_index),
            records,
            calls,
        }))
    }

    async fn call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.fault.check("get_call")?;
        Ok(self.held_call(call_id))
    }

    async fn unlinked_calls(
        &self,
        phone_index: &BlindIndex,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.fault.check("query_calls")?;
        let s = self.state.lock().unwrap();
        let mut calls: Vec<CallRecord> = s
            .calls
            .iter()
            .filter(|c| c.lead.is_none() && c.phone_index == *phone_index)
            .map(|c| c.call.clone())
            .collect();
        calls.sort_by(|a, b| a.id.cmp(&b.id));
        calls.dedup_by(|a, b| a.id == b.id);
        Ok(calls)
    }
}

#[async_trait]
impl SubjectRights for MemorySubjects {
    async fn delete(&self, doomed: Vec<Doomed>) -> Result<usize, StoreError> {
        self.fault.check("batch_delete")?;
        let mut s = self.state.lock().unwrap();
        let mut count = 0;
        for d in doomed {
            match d {
                Doomed::Call(id) => {
                    let before = s.calls.len();
                    s.calls.retain(|c| c.call.id != id);
                    count += 1 + usize::from(before != s.calls.len());
                }
                Doomed::UnlinkedCall(id) => {
                    let before = s.calls.len();
                    s.calls.retain(|c| c.call.id != id || c.lead.is_some());
                    count += 2 * usize::from(before != s.calls.len());
                }
                Doomed::Recording(id) => {
                    if let Some(c) = s.calls.iter_mut().find(|c| c.call.id == id) {
                        c.call.recording = None;
                    }
                    count += 1;
                }
                Doomed::Held(lead, key) => {
                    s.deleted.push((lead, key));
                    count += 1;
                }
                Doomed::Export(_) => count += 1,
                Doomed::Claim(kind, index) => {
                    s.released.push((kind, index));
                    count += 1;
                }
                Doomed::Counters(_) => {}
                Doomed::Attempts(lead) => s.attempts_deleted.push(lead),
            }
        }
        let mut left = count;
        while left > 0 {
            let batch = left.min(BATCH_LIMIT);
            s.batches.push(batch);
            left -= batch;
        }
        s.log.push("delete".into());
        Ok(count)
    }

    async fn shred_key(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.fault.check("shred_key")?;
        self.leads.shred_key(lead);
        self.state.lock().unwrap().log.push("shred_key".into());
        Ok(())
    }

    async fn set_flag(&self, lead: &LeadId, flag: Flag) -> Result<(), StoreError> {
        self.fault.check("set_flag")?;
        if let Some(l) = self.leads.lead(lead) {
            let l = l.lead;
            let (mut r, mut o, mut w) = (l.restricted, l.objected, l.consent_withdrawn);
            match flag {
                Flag::Restricted => r = true,
                Flag::Objected => o = true,
                Flag::ConsentWithdrawn => w = true,
                Flag::ErasurePending => self.leads.set_erasure_pending(lead, true),
            }
            self.leads.set_flags(lead, r, o, w);
        }
        self.state
            .lock()
            .unwrap()
            .log
            .push(format!("set_flag:{}", flag.attribute()));
        Ok(())
    }

    async fn remove_followup(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.fault.check("remove_followup")?;
        self.state
            .lock()
            .unwrap()
            .log
            .push(format!("remove_followup:{lead}"));
        Ok(())
    }

    async fn lift_restriction(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.fault.check("lift_restriction")?;
        let l = self
            .leads
            .lead(lead)
            .ok_or(refused("lift_restriction"))?
            .lead;
        self.leads
            .set_flags(lead, false, l.objected, l.consent_withdrawn);
        Ok(())
    }

    async fn lift_erasure_pending(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.fault.check("lift_erasure_pending")?;
        self.leads.set_erasure_pending(lead, false);
        self.state
            .lock()
            .unwrap()
            .log
            .push("lift_erasure_pending".into());
        Ok(())
    }

    async fn withdraw_recording(&self, call_id: &str) -> Result<(), StoreError> {
        self.fault.check("withdraw_call")?;
        let mut s = self.state.lock().unwrap();
        if let Some(c) = s.calls.iter_mut().find(|c| c.call.id == call_id) {
            c.call.transcript_key = None;
            c.call
                .fields
                .insert("recording_state".into(), json!("withdrawn"));
        }
        Ok(())
    }

    async fn rectify(
        &self,
        _lead: &LeadId,
        _sealed_profile: Vec<u8>,
        _email: Option<(&BlindIndex, &BlindIndex)>,
        _phone: Option<(&BlindIndex, &BlindIndex)>,
        _at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Moving claims is the lead store's transaction; the emulator tests cover it.
        Err(refused("rectify_not_modelled"))
    }
}

#[async_trait]
impl ClaimLookup for MemorySubjects {
    async fn claim_holder(
        &self,
        kind: IdentifierKind,
        index: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<Option<LeadId>, StoreError> {
        self.fault.check("claim_holder")?;
        let released = self
            .state
            .lock()
            .unwrap()
            .released
            .iter()
            .any(|(k, i)| *k == kind && i == index);
        if released {
            return Ok(None);
        }
        Ok(self
            .leads
            .claim_holder(kind == IdentifierKind::Phone, index, now))
    }
}

/// The provider's call deletion: which calls it was asked to delete.
#[derive(Clone, Default)]
pub struct MemoryCallDeleter {
    deleted: Arc<Mutex<Vec<String>>>,
    fault: FaultSwitch,
}

impl MemoryCallDeleter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }
    pub fn heal(&self) {
        self.fault.heal();
    }
    pub fn deleted(&self) -> Vec<String> {
        self.deleted.lock().unwrap().clone()
    }
}

#[async_trait]
impl CallProvider for MemoryCallDeleter {
    async fn delete_calls(&self, call_ids: &[String]) -> Result<usize, ProviderError> {
        self.fault.check("delete_call_at_provider")?;
        self.deleted
            .lock()
            .unwrap()
            .extend(call_ids.iter().cloned());
        Ok(call_ids.len())
    }
}

/// A plain archive: each file as a line `=== <name>` followed by its bytes and a newline.
/// Readable by [`read_plain_archive`].
#[derive(Clone, Copy, Default)]
pub struct PlainArchives;

struct PlainArchive {
    buffer: Vec<u8>,
    open: bool,
}

impl Archive for PlainArchive {
    fn start_file(&mut self, name: &str, _modified: DateTime<Utc>) -> Result<(), ArchiveError> {
        if self.open {
            self.buffer.push(b'\n');
        }
        self.buffer
            .extend_from_slice(format!("=== {name}\n").as_bytes());
        self.open = true;
        Ok(())
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        if !self.open {
            return Err(ArchiveError("no file started"));
        }
        self.buffer.extend_from_slice(data);
        Ok(())
    }
    fn buffered(&mut self) -> usize {
        self.buffer.len()
    }
    fn take(&mut self, capacity: usize) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, Vec::with_capacity(capacity))
    }
    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, ArchiveError> {
        if self.open {
            self.buffer.push(b'\n');
        }
        Ok(std::mem::take(&mut self.buffer))
    }
}

impl ArchiveFormat for PlainArchives {
    fn start(&self, capacity: usize) -> Box<dyn Archive> {
        Box::new(PlainArchive {
            buffer: Vec::with_capacity(capacity),
            open: false,
        })
    }
}

/// The files of a [`PlainArchives`] package, by name.
pub fn read_plain_archive(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    let mut files = HashMap::new();
    for part in text.split("=== ").filter(|p| !p.is_empty()) {
        if let Some((name, body)) = part.split_once('\n') {
            let body = body.strip_suffix('\n').unwrap_or(body);
            files.insert(name.to_owned(), body.as_bytes().to_vec());
        }
    }
    files
}

/// A dead-letter queue in memory: the requests given up, with their reason codes.
#[derive(Clone, Default)]
pub struct MemoryDeadLetters {
    given_up: Arc<Mutex<Vec<(RequestId, String)>>>,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn given_up(&self) -> Vec<(RequestId, String)> {
        self.given_up.lock().unwrap().clone()
    }
}

#[async_trait]
impl usecases::dsar::ports::DeadLetters for MemoryDeadLetters {
    async fn give_up(&self, id: &RequestId, reason: &str) -> Result<(), StoreError> {
        self.given_up.lock().unwrap().push((*id, reason.to_owned()));
        Ok(())
    }
}

#[async_trait]
impl usecases::dsar::figures::RequestHistory for MemoryRequests {
    async fn received_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        self.fault.check("dsar_scan")?;
        let s = self.state.lock().unwrap();
        let mut out: Vec<RequestRecord> = s
            .records
            .values()
            .filter(|r| {
                let day = domain::retention::berlin_date(r.received_at);
                day >= from && day <= to
            })
            .cloned()
            .collect();
        out.sort_by_key(|r| r.received_at);
        Ok(out)
    }
}
