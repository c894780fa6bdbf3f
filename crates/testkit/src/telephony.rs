//! The telephony ports in memory: the call store (merge with the adapter's version and
//! completeness rules, worker states kept, recording settled only from `pending`), the
//! call requests of leads (markers, the lead's call state only for its current request,
//! attempts per number), the audit trail, a recording copier over a [`MemoryObjects`]
//! bucket, a provider that records what it was asked and can fail, and metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use domain::LeadId;
use usecases::ports::{CallState, Objects, Retry, StoreError};
use usecases::telephony::ports::{
    AuditTrail, CallFacts, CallProjection, CallRequestResult, CallRequests, CallStore, Claim,
    CopyFailure, CopyReport, DueRequest, MergeOutcome, Metrics, OutboundCall, Provider,
    ProviderError, RecordingCopier, RecordingRecord, RecordingSettlement, ScheduledRequest,
    StoredCall, WORKER_STATES,
};

use crate::{FaultSwitch, MemoryLeadStore, MemoryObjects};

/// One audit event as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub lead_id: Option<LeadId>,
    pub call_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// An append-only audit trail in memory; clones share the entries.
#[derive(Clone, Default)]
pub struct MemoryAuditTrail {
    entries: Arc<Mutex<Vec<AuditEntry>>>,
}

impl MemoryAuditTrail {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entries(&self) -> Vec<AuditEntry> {
        self.entries.lock().unwrap().clone()
    }

    /// The actions written, in order.
    pub fn actions(&self) -> Vec<String> {
        self.entries().into_iter().map(|e| e.action).collect()
    }

    fn push(
        &self,
        actor: &str,
        action: &str,
        lead: Option<&LeadId>,
        call_id: Option<&str>,
        at: DateTime<Utc>,
    ) {
        self.entries.lock().unwrap().push(AuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            lead_id: lead.copied(),
            call_id: call_id.map(str::to_owned),
            at,
        });
    }
}

#[async_trait]
impl AuditTrail for MemoryAuditTrail {
    async fn record(
        &self,
        actor: &'static str,
        action: &str,
        lead: Option<&LeadId>,
        call_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.push(actor, action, lead, call_id, at);
        Ok(())
    }
}

/// A call as the fake keeps it: what the table's call item holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryCall {
    pub version: u64,
    pub completeness: u8,
    pub events: BTreeSet<String>,
    pub last_event: Option<String>,
    pub lead_id: Option<LeadId>,
    /// The plain facts, merged attribute by attribute (`None` until an event applied).
    pub facts: Option<CallFacts>,
    pub sealed: BTreeMap<String, Vec<u8>>,
    pub recording_state: Option<String>,
    pub recording_state_at: Option<DateTime<Utc>>,
    pub recording_attempts: i64,
    pub recording_key: Option<String>,
    pub recording_bytes: Option<u64>,
    pub live_consent: Option<(bool, DateTime<Utc>)>,
    pub provider_deleted_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The provider deletion was handed to the outbox (R2.9).
    pub provider_deletion_queued_at: Option<DateTime<Utc>>,
    /// The person said they never signed up (R7.4): merges keep no content.
    pub signup_denied_at: Option<DateTime<Utc>>,
    /// The opt-in confirmed on the line: when, and the agent version.
    pub signup_confirmed: Option<(DateTime<Utc>, Option<String>)>,
}

impl MemoryCall {
    /// The transcript object the call names, if any.
    pub fn transcript_key(&self) -> Option<&str> {
        self.facts.as_ref()?.transcript_key.as_deref()
    }
}

/// Sets what the event states, keeps what it does not (DynamoDB `SET` of the present
/// attributes only); `processing_restricted` is only ever set.
fn merge_facts(stored: &mut CallFacts, new: &CallFacts) {
    fn take<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            old.clone_from(new);
        }
    }
    take(&mut stored.call_type, &new.call_type);
    take(&mut stored.call_status, &new.call_status);
    take(&mut stored.direction, &new.direction);
    take(&mut stored.agent_id, &new.agent_id);
    take(&mut stored.agent_version, &new.agent_version);
    take(&mut stored.disconnection_reason, &new.disconnection_reason);
    take(&mut stored.start_at, &new.start_at);
    take(&mut stored.end_at, &new.end_at);
    take(&mut stored.duration_ms, &new.duration_ms);
    stored.linked = new.linked;
    stored.processing_restricted |= new.processing_restricted;
    take(&mut stored.phone_index, &new.phone_index);
    stored.retention = new.retention.clone();
    take(&mut stored.consent, &new.consent);
    take(&mut stored.transcript_key, &new.transcript_key);
}

#[derive(Default)]
struct CallsState {
    calls: BTreeMap<String, MemoryCall>,
    recordings: BTreeMap<String, RecordingRecord>,
}

/// The call store in memory; clones share the calls. Merges, live consent answers and
/// audits are atomic, as the adapter's transactions are.
#[derive(Clone, Default)]
pub struct MemoryCallStore {
    state: Arc<Mutex<CallsState>>,
    audit: MemoryAuditTrail,
    fault: FaultSwitch,
    /// The lead store whose erasure tombstones writes respect, as the adapter's
    /// conditions do (none: nobody is ever erased).
    leads: Option<MemoryLeadStore>,
}

impl MemoryCallStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes respect the erasure tombstones of `leads`.
    pub fn watching(mut self, leads: MemoryLeadStore) -> Self {
        self.leads = Some(leads);
        self
    }

    fn erased(&self, lead: Option<&LeadId>) -> bool {
        match (&self.leads, lead) {
            (Some(leads), Some(l)) => leads.tombstone(l).is_some(),
            _ => false,
        }
    }

    /// The audit trail the store writes its merge audits to (share it with the worker).
    pub fn audit_trail(&self) -> MemoryAuditTrail {
        self.audit.clone()
    }

    pub fn call(&self, call_id: &str) -> Option<MemoryCall> {
        self.state.lock().unwrap().calls.get(call_id).cloned()
    }

    pub fn recording(&self, call_id: &str) -> Option<RecordingRecord> {
        self.state.lock().unwrap().recordings.get(call_id).cloned()
    }

    /// Stores a call as it is (to arrange a state the webhook would have left).
    pub fn insert(&self, call_id: &str, call: MemoryCall) {
        self.state
            .lock()
            .unwrap()
            .calls
            .insert(call_id.to_owned(), call);
    }

    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }

    fn lock(
        &self,
        operation: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, CallsState>, StoreError> {
        self.fault.check(operation)?;
        Ok(self.state.lock().unwrap())
    }
}

fn stored_call(c: &MemoryCall) -> StoredCall {
    let mut events: Vec<String> = c.events.iter().cloned().collect();
    events.sort();
    StoredCall {
        lead_id: c.lead_id,
        recording_state: c.recording_state.clone(),
        sealed_recording_url: c.sealed.get("sealed_recording_url").cloned(),
        end_at: c.facts.as_ref().and_then(|f| f.end_at),
        transcript_key: c.transcript_key().map(str::to_owned),
        events,
        provider_deleted: c.provider_deleted_at.is_some(),
        consent_cut_ms: c
            .facts
            .as_ref()
            .and_then(|f| f.consent.as_ref())
            .and_then(|r| r.cut_ms),
        signup_denied: c.signup_denied_at.is_some(),
        sealed_call: c.sealed.get("sealed_call").cloned(),
        recording_consent: c
            .facts
            .as_ref()
            .and_then(|f| f.consent.as_ref())
            .map(|r| r.granted),
        start_at: c.facts.as_ref().and_then(|f| f.start_at),
    }
}

#[async_trait]
impl CallStore for MemoryCallStore {
    async fn get_call(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        Ok(self.lock("get_call")?.calls.get(call_id).map(stored_call))
    }

    async fn merge(&self, p: &CallProjection) -> Result<MergeOutcome, StoreError> {
        if self.erased(p.named_lead.as_ref()) {
            return Ok(MergeOutcome::SubjectErased);
        }
        let mut state = self.lock("merge_call")?;
        let call = state.calls.entry(p.call_id.clone()).or_default();
        let applies = p.completeness >= call.completeness;
        call.version += 1;
        call.events.insert(p.event.to_owned());
        call.updated_at = Some(p.at);
        if applies {
            call.completeness = p.completeness;
            call.last_event = Some(p.event.to_owned());
            if let Some(lead) = p.lead_id {
                call.lead_id = Some(lead);
            }
            match &mut call.facts {
                Some(stored) => merge_facts(stored, &p.facts),
                None => call.facts = Some(p.facts.clone()),
            }
            for (name, bytes) in &p.sealed {
                call.sealed.insert((*name).to_owned(), bytes.clone());
            }
            // As the adapter: a call marked "never signed up" keeps no content (R7.4).
            if call.signup_denied_at.is_some() {
                call.sealed.remove("sealed_recording_url");
                if let Some(f) = &mut call.facts {
                    f.transcript_key = None;
                }
            }
            for name in &p.remove {
                call.sealed.remove(*name);
                if *name == "transcript_key" {
                    if let Some(f) = &mut call.facts {
                        f.transcript_key = None;
                    }
                }
                if *name == "recording_key" {
                    call.recording_key = None;
                }
            }
            let next_state = p.recording_state.map(|s| {
                if call.signup_denied_at.is_some() {
                    "not_kept"
                } else {
                    s
                }
            });
            if let Some(next) = next_state {
                let owned_by_worker = call
                    .recording_state
                    .as_deref()
                    .is_some_and(|c| WORKER_STATES.contains(&c));
                if !owned_by_worker {
                    call.recording_state = Some(next.to_owned());
                }
            }
        }
        drop(state);
        if applies {
            for action in &p.audit {
                self.audit.push(
                    "telephony",
                    action,
                    p.lead_id.as_ref(),
                    Some(&p.call_id),
                    p.at,
                );
            }
        }
        Ok(if applies {
            MergeOutcome::Applied
        } else {
            MergeOutcome::Superseded
        })
    }

    async fn record_live_consent(
        &self,
        call_id: &str,
        granted: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock("live_consent")?;
        let lead = state.calls.get(call_id).and_then(|c| c.lead_id);
        if self.erased(lead.as_ref()) {
            return Ok(());
        }
        let call = state.calls.entry(call_id.to_owned()).or_default();
        call.version += 1;
        call.live_consent = Some((granted, at));
        drop(state);
        self.audit.push(
            "telephony",
            "call.live_consent_recorded",
            None,
            Some(call_id),
            at,
        );
        Ok(())
    }

    async fn count_recording_attempt(&self, call_id: &str) -> Result<i64, StoreError> {
        let mut state = self.lock("count_copy_attempt")?;
        // A call that is gone is not created again: it is out of attempts.
        let Some(call) = state.calls.get_mut(call_id) else {
            return Ok(usecases::telephony::ingest::MAX_COPY_ATTEMPTS);
        };
        call.recording_attempts += 1;
        Ok(call.recording_attempts)
    }

    async fn settle_recording(
        &self,
        call_id: &str,
        settlement: &RecordingSettlement,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock("set_recording_state")?;
        let Some(call) = state.calls.get_mut(call_id) else {
            return Ok(());
        };
        if call.recording_state.as_deref() != Some("pending") {
            return Ok(());
        }
        call.recording_state = Some(settlement.state().to_owned());
        call.recording_state_at = Some(at);
        if let RecordingSettlement::Stored { object_key, bytes } = settlement {
            call.recording_key = Some(object_key.clone());
            call.recording_bytes = Some(*bytes);
        }
        Ok(())
    }

    async fn put_recording(&self, record: &RecordingRecord) -> Result<bool, StoreError> {
        let erased = self.erased(Some(&record.lead_id));
        let mut state = self.lock("put_recording")?;
        let pending = state
            .calls
            .get(&record.call_id)
            .is_some_and(|c| c.recording_state.as_deref() == Some("pending"));
        if erased || !pending {
            return Ok(false);
        }
        state
            .recordings
            .insert(record.call_id.clone(), record.clone());
        Ok(true)
    }

    async fn mark_provider_deleted(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock("mark_provider_deleted")?;
        if let Some(call) = state.calls.get_mut(call_id) {
            call.provider_deleted_at = Some(at);
        }
        Ok(())
    }

    async fn mark_provider_deletion_queued(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock("mark_provider_deletion_queued")?;
        if let Some(call) = state.calls.get_mut(call_id) {
            call.provider_deletion_queued_at = Some(at);
        }
        Ok(())
    }

    async fn calls_of_phone(&self, phone_index: &str) -> Result<Vec<String>, StoreError> {
        let state = self.lock("query_calls")?;
        Ok(state
            .calls
            .iter()
            .filter(|(_, c)| {
                c.facts
                    .as_ref()
                    .and_then(|f| f.phone_index.as_ref())
                    .is_some_and(|i| i.as_str() == phone_index)
            })
            .map(|(id, _)| id.clone())
            .collect())
    }
}

/// The call-related state of a lead item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadCallState {
    pub call_request_count: u32,
    pub call_state: CallState,
    pub call_state_at: Option<DateTime<Utc>>,
    pub last_call_id: Option<String>,
}

/// A call request's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub state: CallState,
    pub call_id: Option<String>,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// One attempt to call a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The name `record_attempt` answered with.
    pub name: String,
    pub lead_id: LeadId,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Default)]
struct RequestsState {
    leads: HashMap<LeadId, LeadCallState>,
    markers: HashMap<(LeadId, u32), Marker>,
    attempts: BTreeMap<String, Vec<Attempt>>,
    /// Attempts counted per lead over its life (R7.3).
    lead_attempts: HashMap<LeadId, u32>,
    /// Scheduled requests (R7.2): the due index.
    due: HashMap<(LeadId, u32), (String, DateTime<Utc>)>,
}

/// The call requests in memory; clones share them. The lead's call state changes only
/// for its current request (`call_request_count`), as the adapter's condition has it.
#[derive(Clone, Default)]
pub struct MemoryCallRequests {
    state: Arc<Mutex<RequestsState>>,
    fault: FaultSwitch,
    /// The lead store whose erasure tombstones writes respect.
    leads: Option<MemoryLeadStore>,
}

impl MemoryCallRequests {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes respect the erasure tombstones of `leads`.
    pub fn watching(mut self, leads: MemoryLeadStore) -> Self {
        self.leads = Some(leads);
        self
    }

    fn erased(&self, lead: &LeadId) -> bool {
        self.leads
            .as_ref()
            .is_some_and(|l| l.tombstone(lead).is_some())
    }

    /// Deletes what an erasure deletes of a subject here: its markers, its schedules and
    /// its attempt count (the lead's partition); the attempts on numbers stay (see
    /// [`Self::forget_attempts_of`]).
    pub fn erase_partition_of(&self, lead: &LeadId) {
        let mut s = self.state.lock().unwrap();
        s.markers.retain(|(l, _), _| l != lead);
        s.due.retain(|(l, _), _| l != lead);
        s.lead_attempts.remove(lead);
        s.leads.remove(lead);
    }

    /// The scheduled requests, as the due index holds them.
    pub fn scheduled(&self) -> Vec<(LeadId, u32, DateTime<Utc>)> {
        let mut v: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .due
            .iter()
            .map(|((l, r), (_, at))| (*l, *r, *at))
            .collect();
        v.sort_by_key(|(_, _, at)| *at);
        v
    }

    /// Sets the lead's attempt count (a lead that was called `n` times before).
    pub fn set_lead_attempts(&self, lead: &LeadId, n: u32) {
        self.state.lock().unwrap().lead_attempts.insert(*lead, n);
    }

    /// Deletes the attempts a subject left (what an erasure does with them).
    pub fn forget_attempts_of(&self, lead: &LeadId) {
        for attempts in self.state.lock().unwrap().attempts.values_mut() {
            attempts.retain(|a| a.lead_id != *lead);
        }
    }

    /// A lead asks for call `request` (what a sign-up writes on the lead item).
    pub fn request_call(&self, lead: LeadId, request: u32) {
        self.state.lock().unwrap().leads.insert(
            lead,
            LeadCallState {
                call_request_count: request,
                call_state: CallState::Requested,
                call_state_at: None,
                last_call_id: None,
            },
        );
    }

    pub fn lead(&self, lead: &LeadId) -> Option<LeadCallState> {
        self.state.lock().unwrap().leads.get(lead).cloned()
    }

    pub fn marker(&self, lead: &LeadId, request: u32) -> Option<Marker> {
        self.state
            .lock()
            .unwrap()
            .markers
            .get(&(*lead, request))
            .cloned()
    }

    pub fn attempts(&self, phone_index: &str) -> Vec<Attempt> {
        self.state
            .lock()
            .unwrap()
            .attempts
            .get(phone_index)
            .cloned()
            .unwrap_or_default()
    }

    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }

    fn lock(
        &self,
        operation: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, RequestsState>, StoreError> {
        self.fault.check(operation)?;
        Ok(self.state.lock().unwrap())
    }
}

#[async_trait]
impl CallRequests for MemoryCallRequests {
    async fn request_state(
        &self,
        lead: &LeadId,
        request: u32,
    ) -> Result<Option<CallState>, StoreError> {
        Ok(self
            .lock("get_call_request")?
            .markers
            .get(&(*lead, request))
            .map(|m| m.state))
    }

    async fn attempts_since(
        &self,
        phone_index: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(self
            .lock("count_attempts")?
            .attempts
            .get(phone_index)
            .map_or(0, |a| a.iter().filter(|a| a.at >= since).count()))
    }

    async fn record_attempt(
        &self,
        phone_index: &str,
        lead: &LeadId,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        if self.erased(lead) {
            return Ok(None);
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ATTEMPT#{}#{n}", at.timestamp_millis());
        let mut state = self.lock("record_attempt")?;
        state
            .attempts
            .entry(phone_index.to_owned())
            .or_default()
            .push(Attempt {
                name: name.clone(),
                lead_id: *lead,
                at,
                until,
            });
        *state.lead_attempts.entry(*lead).or_default() += 1;
        Ok(Some(name))
    }

    async fn release_attempt(
        &self,
        phone_index: &str,
        attempt: &str,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock("release_attempt")?;
        let mut released = None;
        if let Some(attempts) = state.attempts.get_mut(phone_index) {
            if let Some(i) = attempts.iter().position(|a| a.name == attempt) {
                released = Some(attempts.remove(i).lead_id);
            }
        }
        if let Some(lead) = released {
            if let Some(n) = state.lead_attempts.get_mut(&lead) {
                *n = n.saturating_sub(1);
            }
        }
        Ok(())
    }

    async fn lead_attempts(&self, lead: &LeadId) -> Result<u32, StoreError> {
        Ok(self
            .lock("lead_attempts")?
            .lead_attempts
            .get(lead)
            .copied()
            .unwrap_or(0))
    }

    async fn schedule_request(&self, r: &ScheduledRequest) -> Result<Claim, StoreError> {
        if self.erased(&r.lead_id) {
            return Ok(Claim::Erased);
        }
        let mut state = self.lock("schedule_call_request")?;
        let key = (r.lead_id, r.request);
        if !claimable(state.markers.get(&key)) {
            return Ok(Claim::Taken);
        }
        if let Some(lead) = state.leads.get_mut(&r.lead_id) {
            if lead.call_request_count == r.request {
                lead.call_state = CallState::Scheduled;
                lead.call_state_at = Some(r.at);
            }
        }
        state.markers.insert(
            key,
            Marker {
                state: CallState::Scheduled,
                call_id: None,
                at: r.at,
                until: r.marker_until,
            },
        );
        state.due.insert(key, (r.phone_index.clone(), r.due_at));
        Ok(Claim::Done)
    }

    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueRequest>, StoreError> {
        let state = self.lock("due_call_requests")?;
        let mut due: Vec<DueRequest> = state
            .due
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|((lead, request), (phone, at))| DueRequest {
                lead_id: *lead,
                request: *request,
                phone_index: phone.clone(),
                due_at: *at,
            })
            .collect();
        due.sort_by_key(|d| d.due_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn claim_request(&self, r: &CallRequestResult) -> Result<Claim, StoreError> {
        if self.erased(&r.lead_id) {
            return Ok(Claim::Erased);
        }
        let mut state = self.lock("claim_call_request")?;
        let key = (r.lead_id, r.request);
        if !claimable(state.markers.get(&key)) {
            return Ok(Claim::Taken);
        }
        state.due.remove(&key);
        if let Some(lead) = state.leads.get_mut(&r.lead_id) {
            if lead.call_request_count == r.request {
                lead.call_state = r.state;
                lead.call_state_at = Some(r.at);
            }
        }
        state.markers.insert(
            key,
            Marker {
                state: r.state,
                call_id: None,
                at: r.at,
                until: r.marker_until,
            },
        );
        Ok(Claim::Done)
    }

    async fn finish_request(&self, r: &CallRequestResult) -> Result<bool, StoreError> {
        if self.erased(&r.lead_id) {
            return Ok(false);
        }
        let mut state = self.lock("finish_call_request")?;
        // The marker is replaced: a scheduled request it settles is no longer due.
        state.due.remove(&(r.lead_id, r.request));
        if let Some(lead) = state.leads.get_mut(&r.lead_id) {
            if lead.call_request_count == r.request {
                lead.call_state = r.state;
                lead.call_state_at = Some(r.at);
                if let Some(id) = &r.call_id {
                    lead.last_call_id = Some(id.clone());
                }
            }
        }
        state.markers.insert(
            (r.lead_id, r.request),
            Marker {
                state: r.state,
                call_id: r.call_id.clone(),
                at: r.at,
                until: r.marker_until,
            },
        );
        Ok(true)
    }
}

/// Whether a marker may move to `placing` or `scheduled`: none yet, or in a state that
/// placed nothing that may ring.
fn claimable(marker: Option<&Marker>) -> bool {
    marker.is_none_or(|m| {
        !matches!(
            m.state,
            CallState::Placing | CallState::Placed | CallState::Unconfirmed
        )
    })
}

/// An outbound call as the fake provider received it (the number is the test's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    pub call_id: String,
    pub from_number: String,
    pub to_number: String,
    pub agent_id: String,
    pub lead_id: String,
    pub first_name: String,
    pub data_storage_setting: String,
    pub ring_duration_ms: u32,
}

#[derive(Default)]
struct ProviderState {
    placed: Vec<PlacedCall>,
    deleted: Vec<String>,
    /// HTTP statuses the next create calls answer, in order.
    create_failures: VecDeque<u16>,
    /// HTTP statuses the next delete calls answer, in order.
    delete_failures: VecDeque<u16>,
    /// HTTP statuses the next create calls answer after placing the call.
    lost_answers: VecDeque<u16>,
}

/// The provider in memory: places calls (ids `call_1`, `call_2`, …), deletes them, and
/// answers queued HTTP failures first. Clones share the state.
#[derive(Clone, Default)]
pub struct MemoryProvider {
    state: Arc<Mutex<ProviderState>>,
}

impl MemoryProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next create call answers `status` (429 and 5xx are transient).
    pub fn fail_next_create(&self, status: u16) {
        self.state.lock().unwrap().create_failures.push_back(status);
    }

    /// The next create call places the call but answers `status` (the answer is lost).
    pub fn lose_next_create_answer(&self, status: u16) {
        self.state.lock().unwrap().lost_answers.push_back(status);
    }

    /// The next delete call answers `status`.
    pub fn fail_next_delete(&self, status: u16) {
        self.state.lock().unwrap().delete_failures.push_back(status);
    }

    pub fn placed(&self) -> Vec<PlacedCall> {
        self.state.lock().unwrap().placed.clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        self.state.lock().unwrap().deleted.clone()
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    async fn create_phone_call(
        &self,
        _key: &SecretString,
        call: &OutboundCall<'_>,
    ) -> Result<String, ProviderError> {
        let mut state = self.state.lock().unwrap();
        if let Some(status) = state.create_failures.pop_front() {
            return Err(ProviderError::Status { status });
        }
        let call_id = format!("call_{}", state.placed.len() + 1);
        let lost = state.lost_answers.pop_front();
        state.placed.push(PlacedCall {
            call_id: call_id.clone(),
            from_number: call.from_number.to_owned(),
            to_number: call.to_number.to_owned(),
            agent_id: call.agent_id.to_owned(),
            lead_id: call.lead_id.to_owned(),
            first_name: call.first_name.to_owned(),
            data_storage_setting: call.data_storage_setting.to_owned(),
            ring_duration_ms: call.ring_duration_ms,
        });
        if let Some(status) = lost {
            return Err(ProviderError::Status { status });
        }
        Ok(call_id)
    }

    async fn delete_call(&self, _key: &SecretString, call_id: &str) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap();
        if let Some(status) = state.delete_failures.pop_front() {
            if status != 404 {
                return Err(ProviderError::Status { status });
            }
        }
        state.deleted.push(call_id.to_owned());
        Ok(())
    }
}

/// Why the fake copier failed (fixed text and numbers only, as the real one).
#[derive(Debug, thiserror::Error)]
#[error("recording source answered HTTP {0}")]
pub struct CopyHttpError(pub u16);

#[derive(Default)]
struct CopierState {
    sources: BTreeMap<String, Vec<u8>>,
    failures: VecDeque<u16>,
    copies: Vec<(String, String)>,
    /// The cut point (ms) each copy was asked to trim at (R7.5); the fake copies the
    /// bytes as they are: trimming is the adapter's, tested against real WAV files.
    cuts: Vec<u64>,
}

/// Copies recordings from URLs it was given into a [`MemoryObjects`] bucket. An unknown
/// URL answers 404 (permanent); queued failures answer their status first (408, 429 and
/// 5xx transient, as the real copier classifies them).
#[derive(Clone)]
pub struct MemoryRecordingCopier {
    bucket: MemoryObjects,
    state: Arc<Mutex<CopierState>>,
}

impl MemoryRecordingCopier {
    pub fn new(bucket: MemoryObjects) -> Self {
        Self {
            bucket,
            state: Arc::default(),
        }
    }

    /// The provider serves `bytes` at `url`.
    pub fn serve(&self, url: &str, bytes: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .sources
            .insert(url.to_owned(), bytes);
    }

    /// The next copy fails with HTTP `status`.
    pub fn fail_next(&self, status: u16) {
        self.state.lock().unwrap().failures.push_back(status);
    }

    /// The copies tried, as (url, object key).
    pub fn copies(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().copies.clone()
    }

    /// The cut points the copies were asked for, in order.
    pub fn cuts(&self) -> Vec<u64> {
        self.state.lock().unwrap().cuts.clone()
    }
}

fn http_failure(status: u16) -> CopyFailure {
    let retry = match status {
        408 | 425 | 429 | 500..=599 => Retry::Transient,
        _ => Retry::Permanent,
    };
    CopyFailure {
        retry,
        cause: Box::new(CopyHttpError(status)),
    }
}

#[async_trait]
impl RecordingCopier for MemoryRecordingCopier {
    async fn copy(
        &self,
        url: &str,
        object_key: &str,
        cut_ms: u64,
    ) -> Result<CopyReport, CopyFailure> {
        let bytes = {
            let mut state = self.state.lock().unwrap();
            state.copies.push((url.to_owned(), object_key.to_owned()));
            state.cuts.push(cut_ms);
            if let Some(status) = state.failures.pop_front() {
                return Err(http_failure(status));
            }
            match state.sources.get(url) {
                Some(b) => b.clone(),
                None => return Err(http_failure(404)),
            }
        };
        let sha256_hex = hex_of(&Sha256::digest(&bytes));
        let len = bytes.len() as u64;
        self.bucket
            .put(object_key, bytes)
            .await
            .map_err(|e| CopyFailure {
                retry: e.retry,
                cause: Box::new(e),
            })?;
        Ok(CopyReport {
            bytes: len,
            sha256_hex,
            parts: 1,
            content_type: None,
            version_id: None,
        })
    }

    async fn discard(&self, object_key: &str) -> Result<usize, StoreError> {
        self.bucket.delete_all_versions(object_key).await
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Metrics in memory: the counts by name.
#[derive(Clone, Default)]
pub struct MemoryMetrics {
    counts: Arc<Mutex<BTreeMap<&'static str, f64>>>,
}

impl MemoryMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn count_of(&self, name: &str) -> f64 {
        self.counts
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0.0)
    }
}

impl Metrics for MemoryMetrics {
    fn count(&self, name: &'static str, value: f64) {
        *self.counts.lock().unwrap().entry(name).or_insert(0.0) += value;
    }
}

/// The tool calls' side of the call items (R7.1, R7.4), with the adapter's rules.
#[async_trait]
impl usecases::telephony::tools::CallLines for MemoryCallStore {
    async fn line_call(
        &self,
        call_id: &str,
    ) -> Result<Option<usecases::telephony::tools::LineCall>, StoreError> {
        let state = self.lock("line_call")?;
        Ok(state
            .calls
            .get(call_id)
            .map(|c| usecases::telephony::tools::LineCall {
                lead_id: c.lead_id,
                phone_index: c.facts.as_ref().and_then(|f| f.phone_index.clone()),
                inbound: c
                    .facts
                    .as_ref()
                    .is_some_and(|f| f.direction.as_deref() == Some("inbound")),
            }))
    }

    async fn deny_signup(&self, call_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut state = self.lock("deny_signup")?;
        let Some(call) = state.calls.get_mut(call_id) else {
            return Ok(false);
        };
        if call.signup_denied_at.is_some() {
            return Ok(false);
        }
        call.version += 1;
        call.signup_denied_at = Some(at);
        call.sealed.remove("sealed_recording_url");
        if let Some(f) = &mut call.facts {
            f.transcript_key = None;
        }
        let owned_by_worker = call
            .recording_state
            .as_deref()
            .is_some_and(|c| WORKER_STATES.contains(&c));
        if !owned_by_worker {
            call.recording_state = Some("not_kept".to_owned());
        }
        Ok(true)
    }

    async fn confirm_signup(
        &self,
        call_id: &str,
        agent_version: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock("confirm_signup")?;
        match state.calls.get_mut(call_id) {
            Some(call) if call.signup_confirmed.is_none() => {
                call.signup_confirmed = Some((at, agent_version.map(str::to_owned)));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn object(&self, lead: &LeadId, _at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.fault.check("object")?;
        let Some(leads) = &self.leads else {
            return Ok(false);
        };
        match leads.lead(lead) {
            Some(l) if !l.lead.objected => {
                leads.set_flags(lead, l.lead.restricted, true, l.lead.consent_withdrawn);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
