//! The lead store in memory, with the promises of the DynamoDB adapter: a lead, its key,
//! both identifier claims and the consent proof appear together or not at all; a claim is
//! free again only once it expired; contact times only move forward and carry every
//! retention date with them; a lead past its retention or without its key reads as gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::crypto::{BlindIndex, WrappedKey};
use domain::retention::Retention;

use crate::fault::FaultSwitch;
use domain::{ConsentEvidence, LeadId, RetentionClass, CALL_COOLDOWN};
use usecases::ports::{
    CallState, CreateOutcome, IdentifierHolders, LeadStore, NewLead, Resubmission, ResubmitOutcome,
    Retry, StoreError, StoredLead,
};

/// A lead as the fake holds it.
#[derive(Clone, Debug)]
pub struct MemoryLead {
    pub lead: StoredLead,
    pub email_index: BlindIndex,
    pub phone_index: BlindIndex,
    pub hold_until: Option<DateTime<Utc>>,
}

/// One consent proof (§7a UWG): which number, when, under which policy.
#[derive(Clone, Debug)]
pub struct ConsentProof {
    /// The subject it belongs to; `None` once detached after the subject's erasure.
    pub lead: Option<LeadId>,
    pub phone_index: BlindIndex,
    pub evidence: ConsentEvidence,
    pub expires_at: DateTime<Utc>,
    /// The calls placed under the proof (§7a UWG), in order, each once.
    pub calls: Vec<String>,
    /// The last call placed under it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// How many calls were placed under it (kept when a detached proof loses its call ids).
    pub uses: usize,
}

/// One audit event: action, the subject it concerns, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub action: String,
    pub lead: Option<LeadId>,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug)]
struct Claim {
    lead: LeadId,
    expires_at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    leads: HashMap<LeadId, MemoryLead>,
    keys: HashMap<LeadId, WrappedKey>,
    claims: HashMap<(char, BlindIndex), Claim>,
    consents: Vec<ConsentProof>,
    audit: Vec<AuditEvent>,
    /// Erasure tombstones: subject → when it was erased.
    tombstones: HashMap<LeadId, DateTime<Utc>>,
}

/// The lead store in memory; clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryLeadStore {
    state: Arc<Mutex<State>>,
    fault: FaultSwitch,
}

impl MemoryLeadStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }

    /// Every lead held, whatever its retention.
    pub fn leads(&self) -> Vec<MemoryLead> {
        self.state.lock().unwrap().leads.values().cloned().collect()
    }

    pub fn lead(&self, id: &LeadId) -> Option<MemoryLead> {
        self.state.lock().unwrap().leads.get(id).cloned()
    }

    pub fn consents(&self) -> Vec<ConsentProof> {
        self.state.lock().unwrap().consents.clone()
    }

    pub fn audit(&self) -> Vec<AuditEvent> {
        self.state.lock().unwrap().audit.clone()
    }

    /// The subject holding a live claim on an identifier at `now`.
    pub fn claim_holder(
        &self,
        phone: bool,
        index: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Option<LeadId> {
        let kind = if phone { 'p' } else { 'e' };
        let s = self.state.lock().unwrap();
        live(&s, kind, index, now)
    }

    /// When the subject was erased (its tombstone), if it was.
    pub fn tombstone(&self, id: &LeadId) -> Option<DateTime<Utc>> {
        self.state.lock().unwrap().tombstones.get(id).copied()
    }

    /// Removes the lead record itself (what an erasure's deletion does to it).
    pub fn remove_lead(&self, id: &LeadId) {
        self.state.lock().unwrap().leads.remove(id);
    }

    /// Moves a lead's retention end (as a sign-up or a call would, without the rest).
    pub fn set_expiry(&self, id: &LeadId, expires_at: DateTime<Utc>) {
        if let Some(l) = self.state.lock().unwrap().leads.get_mut(id) {
            l.lead.expires_at = expires_at;
        }
    }

    /// Deletes the subject's data key (crypto-shredding): the lead reads as gone.
    pub fn shred_key(&self, id: &LeadId) {
        self.state.lock().unwrap().keys.remove(id);
    }

    /// Marks the subject restricted / objected / consent withdrawn, as the rights do.
    pub fn set_flags(&self, id: &LeadId, restricted: bool, objected: bool, withdrawn: bool) {
        if let Some(l) = self.state.lock().unwrap().leads.get_mut(id) {
            l.lead.restricted = restricted;
            l.lead.objected = objected;
            l.lead.consent_withdrawn = withdrawn;
        }
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        self.fault.check(operation)
    }
}

fn live(s: &State, kind: char, index: &BlindIndex, now: DateTime<Utc>) -> Option<LeadId> {
    s.claims
        .get(&(kind, index.clone()))
        .filter(|c| c.expires_at > now)
        .map(|c| c.lead)
}

/// Moves a lead's retention (and that of its claims it still holds) to `r`.
fn move_dates(s: &mut State, id: &LeadId, r: &Retention) {
    let Some(lead) = s.leads.get_mut(id) else {
        return;
    };
    lead.lead.expires_at = r.expires_at;
    let indexes = [
        ('e', lead.email_index.clone()),
        ('p', lead.phone_index.clone()),
    ];
    for key in indexes {
        if let Some(c) = s.claims.get_mut(&key) {
            if c.lead == *id {
                c.expires_at = r.expires_at;
            }
        }
    }
}

fn audit(s: &mut State, action: &str, lead: Option<LeadId>, at: DateTime<Utc>) {
    s.audit.push(AuditEvent {
        action: action.to_owned(),
        lead,
        at,
    });
}

fn consent(s: &mut State, lead: LeadId, phone_index: &BlindIndex, evidence: &ConsentEvidence) {
    let r = Retention::of(RetentionClass::PhoneConsentProof, evidence.given_at);
    s.consents.push(ConsentProof {
        lead: Some(lead),
        phone_index: phone_index.clone(),
        evidence: evidence.clone(),
        expires_at: r.expires_at,
        calls: Vec::new(),
        last_used_at: None,
        uses: 0,
    });
}

#[async_trait]
impl LeadStore for MemoryLeadStore {
    async fn find_holders(
        &self,
        email: &BlindIndex,
        phone: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<IdentifierHolders, StoreError> {
        self.check("find_holders")?;
        let s = self.state.lock().unwrap();
        Ok(IdentifierHolders {
            by_email: live(&s, 'e', email, now),
            by_phone: live(&s, 'p', phone, now),
        })
    }

    async fn create_lead(&self, new: &NewLead) -> Result<CreateOutcome, StoreError> {
        self.check("create_lead")?;
        let at = new.signed_up_at;
        let mut s = self.state.lock().unwrap();
        // The transaction's conditions: a new lead and key, both claims free or expired.
        if s.leads.contains_key(&new.id)
            || s.keys.contains_key(&new.id)
            || live(&s, 'e', &new.email_index, at).is_some()
            || live(&s, 'p', &new.phone_index, at).is_some()
        {
            return Ok(CreateOutcome::IdentifierTaken);
        }
        let r = Retention::of(RetentionClass::Lead, at);
        s.leads.insert(
            new.id,
            MemoryLead {
                lead: StoredLead {
                    id: new.id,
                    wrapped_key: new.wrapped_key.clone(),
                    sealed_profile: new.sealed_profile.clone(),
                    signed_up_at: at,
                    last_contact_at: at,
                    expires_at: r.expires_at,
                    consent_policy_version: new.consent.policy_version.clone(),
                    call_state: CallState::Requested,
                    call_requested_at: at,
                    call_request_count: 1,
                    restricted: false,
                    objected: false,
                    consent_withdrawn: false,
                    call_window: new.call_window,
                    erasure_pending: false,
                },
                email_index: new.email_index.clone(),
                phone_index: new.phone_index.clone(),
                hold_until: None,
            },
        );
        s.keys.insert(new.id, new.wrapped_key.clone());
        for (kind, index) in [('e', &new.email_index), ('p', &new.phone_index)] {
            s.claims.insert(
                (kind, index.clone()),
                Claim {
                    lead: new.id,
                    expires_at: r.expires_at,
                },
            );
        }
        consent(&mut s, new.id, &new.phone_index, &new.consent);
        audit(&mut s, "lead.created", Some(new.id), at);
        Ok(CreateOutcome::Created)
    }

    async fn resubmit(&self, sub: &Resubmission) -> Result<ResubmitOutcome, StoreError> {
        self.check("resubmit")?;
        let mut s = self.state.lock().unwrap();
        let Some(lead) = s.leads.get_mut(&sub.id) else {
            return Ok(ResubmitOutcome::Gone);
        };
        if lead.lead.expires_at <= sub.at {
            return Ok(ResubmitOutcome::Gone);
        }
        let contact = lead.lead.last_contact_at.max(sub.at);
        let call_due = sub.at - lead.lead.call_requested_at >= CALL_COOLDOWN;
        if call_due {
            lead.lead.call_state = CallState::Requested;
            lead.lead.call_requested_at = sub.at;
            lead.lead.call_request_count += 1;
        }
        lead.lead.last_contact_at = contact;
        move_dates(
            &mut s,
            &sub.id,
            &Retention::of(RetentionClass::Lead, contact),
        );
        consent(&mut s, sub.id, &sub.phone_index, &sub.consent);
        audit(&mut s, "lead.resubmitted", Some(sub.id), sub.at);
        Ok(if call_due {
            ResubmitOutcome::CallRequested
        } else {
            ResubmitOutcome::CallNotDue
        })
    }

    async fn record_mismatch(
        &self,
        subjects: &[LeadId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check("record_mismatch")?;
        let mut s = self.state.lock().unwrap();
        for id in subjects {
            audit(&mut s, "lead.resubmission_mismatch", Some(*id), at);
        }
        Ok(())
    }

    async fn record_contact(&self, id: &LeadId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.check("record_contact")?;
        let mut s = self.state.lock().unwrap();
        let Some(lead) = s.leads.get_mut(id) else {
            return Ok(false);
        };
        if lead.lead.last_contact_at >= at {
            return Ok(true);
        }
        lead.lead.last_contact_at = at;
        move_dates(&mut s, id, &Retention::of(RetentionClass::Lead, at));
        audit(&mut s, "lead.contacted", Some(*id), at);
        Ok(true)
    }

    async fn hold_until(
        &self,
        id: &LeadId,
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check("hold_until")?;
        let mut s = self.state.lock().unwrap();
        let Some(lead) = s.leads.get_mut(id) else {
            return Ok(false);
        };
        lead.lead.restricted = true;
        lead.hold_until = Some(until);
        move_dates(&mut s, id, &Retention::until(RetentionClass::Lead, until));
        audit(&mut s, "lead.legal_hold", Some(*id), at);
        Ok(true)
    }

    async fn record_consent_use(
        &self,
        id: &LeadId,
        phone_index: &BlindIndex,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check("record_consent_use")?;
        let mut s = self.state.lock().unwrap();
        let Some(proof) = s
            .consents
            .iter_mut()
            .filter(|c| c.lead == Some(*id) && c.phone_index == *phone_index)
            .max_by_key(|c| c.evidence.given_at)
        else {
            return Ok(false);
        };
        if !proof.calls.iter().any(|c| c == call_id) {
            proof.calls.push(call_id.to_owned());
            proof.uses += 1;
        }
        if proof.last_used_at.is_none_or(|last| last < at) {
            proof.last_used_at = Some(at);
            let due = Retention::of(RetentionClass::PhoneConsentProof, at).expires_at;
            proof.expires_at = proof.expires_at.max(due);
        }
        Ok(true)
    }

    async fn get_lead(
        &self,
        id: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredLead>, StoreError> {
        self.check("get_lead")?;
        let s = self.state.lock().unwrap();
        let (Some(lead), Some(key)) = (s.leads.get(id), s.keys.get(id)) else {
            return Ok(None);
        };
        if lead.lead.expires_at <= now {
            return Ok(None);
        }
        let mut stored = lead.lead.clone();
        stored.wrapped_key = key.clone();
        Ok(Some(stored))
    }

    async fn bury(&self, id: &LeadId, at: DateTime<Utc>, if_due: bool) -> Result<bool, StoreError> {
        self.check("bury")?;
        let mut s = self.state.lock().unwrap();
        if if_due && s.leads.get(id).is_none_or(|l| l.lead.expires_at > at) {
            return Ok(false);
        }
        s.tombstones.entry(*id).or_insert(at);
        Ok(true)
    }

    async fn erased(&self, id: &LeadId) -> Result<bool, StoreError> {
        self.check("erased")?;
        Ok(self.state.lock().unwrap().tombstones.contains_key(id))
    }

    async fn detach_consent_proofs(&self, id: &LeadId) -> Result<usize, StoreError> {
        self.check("detach_consent_proofs")?;
        let mut s = self.state.lock().unwrap();
        let mut moved = 0;
        for proof in s.consents.iter_mut().filter(|c| c.lead == Some(*id)) {
            proof.lead = None;
            proof.calls.clear();
            moved += 1;
        }
        Ok(moved)
    }

    async fn lead_exists(&self, id: &LeadId) -> Result<bool, StoreError> {
        self.check("get_lead")?;
        Ok(self.state.lock().unwrap().leads.contains_key(id))
    }
}

impl MemoryLeadStore {
    /// Sets or lifts the cancel window's flag (`erasure_pending`) of a lead, as the dsar
    /// worker does.
    pub fn set_erasure_pending(&self, id: &LeadId, pending: bool) {
        if let Some(l) = self.state.lock().unwrap().leads.get_mut(id) {
            l.lead.erasure_pending = pending;
        }
    }
}
