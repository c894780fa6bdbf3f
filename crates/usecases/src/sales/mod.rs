//! The sales handoff (issue 17): once a call is analysed and its recording settled, the
//! lead's follow-up record is written for sales ([`FollowUpHandoff`], run by the
//! telephony worker); sales reads the queue and a lead's record and marks it done
//! ([`SalesService`], the `sales-api` function), every read audited with the principal.
//!
//! Who never appears (R4.7, R4.8, R7.1): a restricted, objecting or erasure-pending
//! subject, an erased one, and a number on the do-not-call list. Checked when the record
//! is written, again at every read (`may_process()`), and a restriction, objection or
//! erasure that arrives later deletes the item (the dsar worker's flag writes; erasure
//! deletes the partition).

pub mod ports;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use domain::clock::Clock;
use domain::crypto::{CryptoError, DataKey};
use domain::sales::{
    followup_aad, FollowUpAnalysis, FollowUpConsent, FollowUpRecord, FollowUpWindow, QueueLine,
};
use domain::LeadId;

use crate::dnc::DoNotCallList;
use crate::ports::{IdentifierKind, KeyError, KeyService, LeadStore, Retry, StoreError};
use crate::signup::{LeadService, ReadError};
use crate::telephony::ingest::SETTLED_STATES;
use crate::telephony::ports::CallStore;
use crate::telephony::webhook::CallService;
use ports::{FollowUpItem, FollowUpStore, PutOutcome};

/// The actor of the handoff's audit events.
const ACTOR: &str = "telephony-worker";

/// Longest queue returned at once.
pub const QUEUE_LIMIT: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum SalesError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("sealed data does not open")]
    Crypto(#[from] CryptoError),
    #[error("stored data is malformed")]
    Malformed,
}

impl SalesError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Keys(e) => e.retry,
            Self::Crypto(_) | Self::Malformed => Retry::Permanent,
        }
    }
}

impl From<ReadError> for SalesError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Keys(e) => Self::Keys(e),
            ReadError::Store(e) => Self::Store(e),
            ReadError::Crypto(e) => Self::Crypto(e),
            ReadError::Malformed => Self::Malformed,
        }
    }
}

/// What the handoff did with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// The follow-up record was written (or replaced an earlier call's).
    Ready,
    /// Already written from this call (a redelivery).
    Unchanged,
    /// Not analysed or its recording not settled yet.
    NotReady,
    /// Nobody to follow up: an unlinked call, a lead gone, or the person said on the line
    /// they never signed up.
    NoLead,
    /// The subject may not be processed (restricted, objecting, erasure pending) or the
    /// number is on the do-not-call list: no record, an earlier one deleted.
    Excluded,
}

/// Writes a lead's follow-up record once its call is analysed and settled.
pub struct FollowUpHandoff {
    calls: Arc<dyn CallStore>,
    leads: LeadService,
    keys: Arc<dyn KeyService>,
    dnc: DoNotCallList,
    store: Arc<dyn FollowUpStore>,
    clock: Arc<dyn Clock>,
}

impl FollowUpHandoff {
    pub fn new(
        calls: Arc<dyn CallStore>,
        leads: Arc<dyn LeadStore>,
        keys: Arc<dyn KeyService>,
        dnc: DoNotCallList,
        store: Arc<dyn FollowUpStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            calls,
            leads: LeadService::new(leads, keys.clone(), clock.clone()),
            keys,
            dnc,
            store,
            clock,
        }
    }

    /// Builds and writes the follow-up record of the call's lead, if the call is ready
    /// and the subject may be followed up. Idempotent: a redelivery writes nothing.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn handoff(&self, call_id: &str) -> Result<HandoffOutcome, SalesError> {
        let Some(call) = self.calls.get_call(call_id).await? else {
            return Ok(HandoffOutcome::NotReady);
        };
        if !call.analysed()
            || !call
                .recording_state
                .as_deref()
                .is_some_and(|s| SETTLED_STATES.contains(&s))
        {
            return Ok(HandoffOutcome::NotReady);
        }
        let Some(lead_id) = call.lead_id else {
            return Ok(HandoffOutcome::NoLead);
        };
        if call.signup_denied {
            return Ok(HandoffOutcome::NoLead);
        }
        let Some((lead, key)) = self.leads.read_with_key(&lead_id).await? else {
            return Ok(HandoffOutcome::NoLead);
        };
        let phone = self
            .keys
            .blind_index(IdentifierKind::Phone, lead.profile.phone.expose())
            .await?;
        if !lead.stored.may_process() || self.dnc.is_listed(&phone).await? {
            self.store.remove(&lead_id).await?;
            tracing::info!("subject excluded from follow-up");
            return Ok(HandoffOutcome::Excluded);
        }
        let analysis = match &call.sealed_call {
            Some(sealed) => {
                let plain = CallService::open(&key, call_id, "sealed_call", sealed)?;
                let content: serde_json::Value =
                    serde_json::from_slice(&plain).map_err(|_| SalesError::Malformed)?;
                content
                    .get("call_analysis")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null)
            }
            None => serde_json::Value::Null,
        };
        let now = self.clock.now();
        let record = FollowUpRecord {
            lead_id,
            first_name: lead.profile.first_name.expose().to_owned(),
            last_name: lead.profile.last_name.expose().to_owned(),
            email: lead.profile.email.expose().to_owned(),
            phone: lead.profile.phone.expose().to_owned(),
            call_window: lead.stored.call_window.as_ref().map(FollowUpWindow::from),
            call_date: call.end_at.or(call.start_at).unwrap_or(now),
            summary: FollowUpAnalysis::summary_of(&analysis),
            analysis: FollowUpAnalysis::from_call_analysis(&analysis),
            consent: FollowUpConsent {
                // A stored lead exists only with this consent (R1.1).
                contact_by_phone: true,
                recording: call.recording_consent == Some(true) && !lead.stored.consent_withdrawn,
                policy_version: lead.stored.consent_policy_version.clone(),
            },
            ready_at: now,
            done_at: None,
        };
        let item = FollowUpItem {
            lead_id,
            call_id: call_id.to_owned(),
            ready_at: now,
            done_at: None,
            sealed: seal(&key, &record)?,
            expires_at: lead.stored.expires_at,
        };
        match self.store.put(&item).await? {
            PutOutcome::Written => {
                self.store
                    .audit(ACTOR, "sales.followup_ready", Some(&lead_id), now)
                    .await?;
                tracing::info!("follow-up record written");
                Ok(HandoffOutcome::Ready)
            }
            PutOutcome::Unchanged => Ok(HandoffOutcome::Unchanged),
            PutOutcome::Erased => Ok(HandoffOutcome::NoLead),
        }
    }
}

fn seal(key: &DataKey, record: &FollowUpRecord) -> Result<Vec<u8>, SalesError> {
    let bytes =
        zeroize::Zeroizing::new(serde_json::to_vec(record).map_err(|_| SalesError::Malformed)?);
    Ok(key.seal(&followup_aad(&record.lead_id), &bytes)?)
}

/// What sales may do: the queue, a lead's record, marking it done; each audited with the
/// caller's principal. Admission (the configured sales principals) is the function's job.
pub struct SalesService {
    store: Arc<dyn FollowUpStore>,
    leads: Arc<dyn LeadStore>,
    keys: Arc<dyn KeyService>,
    clock: Arc<dyn Clock>,
}

impl SalesService {
    pub fn new(
        store: Arc<dyn FollowUpStore>,
        leads: Arc<dyn LeadStore>,
        keys: Arc<dyn KeyService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            leads,
            keys,
            clock,
        }
    }

    /// The lead's record, if it has one and the subject may still be processed (a
    /// restriction, objection or erasure that came after the write hides it at once).
    async fn record(
        &self,
        lead: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<FollowUpRecord>, SalesError> {
        let Some(item) = self.store.get(lead).await? else {
            return Ok(None);
        };
        let Some(stored) = self.leads.get_lead(lead, now).await? else {
            return Ok(None);
        };
        if !stored.may_process() {
            return Ok(None);
        }
        let key = self.keys.unwrap_data_key(lead, &stored.wrapped_key).await?;
        let plain = key.open(&followup_aad(lead), &item.sealed)?;
        let mut record: FollowUpRecord =
            serde_json::from_slice(&plain).map_err(|_| SalesError::Malformed)?;
        if record.lead_id != *lead {
            return Err(SalesError::Malformed);
        }
        record.done_at = item.done_at;
        Ok(Some(record))
    }

    /// The open follow-ups, earliest ready first; audited `sales.queue_viewed`.
    pub async fn queue(&self, actor: &str) -> Result<Vec<QueueLine>, SalesError> {
        let now = self.clock.now();
        let mut lines = Vec::new();
        for entry in self.store.open(QUEUE_LIMIT).await? {
            if let Some(r) = self.record(&entry.lead_id, now).await? {
                if r.done_at.is_none() {
                    lines.push(QueueLine::from(&r));
                }
            }
        }
        self.store
            .audit(actor, "sales.queue_viewed", None, now)
            .await?;
        Ok(lines)
    }

    /// A lead's full record; audited `sales.followup_viewed` (also when there is none).
    pub async fn show(
        &self,
        actor: &str,
        lead: &LeadId,
    ) -> Result<Option<FollowUpRecord>, SalesError> {
        let now = self.clock.now();
        let record = self.record(lead, now).await?;
        self.store
            .audit(actor, "sales.followup_viewed", Some(lead), now)
            .await?;
        Ok(record)
    }

    /// Marks a lead's follow-up done; `false` when it has no (visible) record. Audited
    /// `sales.followup_done` when marked.
    pub async fn done(&self, actor: &str, lead: &LeadId) -> Result<bool, SalesError> {
        let now = self.clock.now();
        if self.record(lead, now).await?.is_none() {
            return Ok(false);
        }
        let marked = self.store.mark_done(lead, now).await?;
        if marked {
            self.store
                .audit(actor, "sales.followup_done", Some(lead), now)
                .await?;
        }
        Ok(marked)
    }

    /// Records that a caller was refused at the sales routes (`sales.refused`).
    pub async fn record_refusal(&self, actor: &str) -> Result<(), SalesError> {
        self.store
            .audit(actor, "sales.refused", None, self.clock.now())
            .await?;
        Ok(())
    }
}
