//! What the worker does with a call once the webhook has decided (R2.7, R2.9): copy a
//! consented recording into the recordings bucket from the cut point stored with the
//! consent record on (R7.5: the copier trims what was said before the answer), record the
//! result (a failed ingestion after a few attempts), and delete the call at the provider
//! once our copy is safe or we decided to keep nothing.
//!
//! A deletion the provider fails is counted in the provider-deletion outbox
//! (`crate::outbox`) from the first failure: the stream retries it at once a few times
//! ([`DELETE_STREAM_ATTEMPTS`]), then the outbox takes it over (audited
//! `call.provider_deletion_queued`) and the sweep function's hourly drain retries it with
//! its backoff, long after the stream's retries (and its dead-letter queue) would have
//! given up (R2.9).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use domain::retention::Retention;
use domain::{Clock, LeadId, RetentionClass};

use crate::outbox::{PendingDeletion, ProviderOutbox};
use crate::ports::{KeyError, KeyService, LeadStore, Retry, StoreError};
use crate::telephony::ports::{
    AuditTrail, CallStore, CopyFailure, Provider, ProviderError, RecordingCopier, RecordingRecord,
    RecordingSettlement,
};
use crate::telephony::webhook::CallService;

/// Copy attempts before an ingestion is recorded as failed (the URL lives ~10 minutes).
pub const MAX_COPY_ATTEMPTS: i64 = 3;

/// Failed provider deletions the stream retries before the outbox takes the deletion over
/// (fewer than the stream's 1 + `MaximumRetryAttempts` deliveries, so it never reaches the
/// dead-letter queue).
pub const DELETE_STREAM_ATTEMPTS: u32 = 3;

/// Recording states after which nothing more will be stored for the call.
pub const SETTLED_STATES: &[&str] = &["stored", "not_kept", "not_available", "failed"];

/// The actor of the worker's audit events.
const ACTOR: &str = "telephony-worker";

/// Object key of a call's recording (opaque ids only).
pub fn recording_key(lead: &LeadId, call_id: &str) -> String {
    format!("recordings/{lead}/{call_id}.audio")
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("copy failed")]
    Copy(#[from] CopyFailure),
    #[error("provider failed")]
    Provider(#[from] ProviderError),
    #[error("sealed recording URL does not open")]
    Sealed,
}

impl IngestError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Keys(e) => e.retry,
            Self::Copy(e) => e.retry,
            Self::Provider(e) => e.retry(),
            Self::Sealed => Retry::Permanent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored {
        bytes: u64,
    },
    Failed,
    NotPending,
    /// The copy went again: the subject was erased, withdrew its consent or restricted
    /// processing while it ran.
    Discarded,
    /// No cut point was stored with the consent: nothing copied (R7.5).
    NotKept,
}

pub struct Ingest {
    calls: Arc<dyn CallStore>,
    audit: Arc<dyn AuditTrail>,
    leads: Arc<dyn LeadStore>,
    keys: Arc<dyn KeyService>,
    copier: Arc<dyn RecordingCopier>,
    provider: Arc<dyn Provider>,
    clock: Arc<dyn Clock>,
    pub delete_at_provider: bool,
    /// Where failed provider deletions are queued; without it they are only retried by
    /// the stream.
    outbox: Option<Arc<dyn ProviderOutbox>>,
}

impl Ingest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        calls: Arc<dyn CallStore>,
        audit: Arc<dyn AuditTrail>,
        leads: Arc<dyn LeadStore>,
        keys: Arc<dyn KeyService>,
        copier: Arc<dyn RecordingCopier>,
        provider: Arc<dyn Provider>,
        clock: Arc<dyn Clock>,
        delete_at_provider: bool,
    ) -> Self {
        Self {
            calls,
            audit,
            leads,
            keys,
            copier,
            provider,
            clock,
            delete_at_provider,
            outbox: None,
        }
    }

    /// Failed provider deletions go to `outbox` (see the module doc).
    pub fn with_outbox(mut self, outbox: Arc<dyn ProviderOutbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    async fn audit(
        &self,
        action: &str,
        call_id: &str,
        lead: Option<&LeadId>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.audit
            .record(ACTOR, action, lead, Some(call_id), at)
            .await
    }

    async fn settle(
        &self,
        call_id: &str,
        settlement: RecordingSettlement,
    ) -> Result<(), StoreError> {
        self.calls
            .settle_recording(call_id, &settlement, self.clock.now())
            .await
    }

    /// Copies a pending recording into the bucket (at most once: only from `pending`).
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn ingest(&self, call_id: &str) -> Result<IngestOutcome, IngestError> {
        let Some(call) = self.calls.get_call(call_id).await? else {
            return Ok(IngestOutcome::NotPending);
        };
        if call.recording_state.as_deref() != Some("pending") {
            return Ok(IngestOutcome::NotPending);
        }
        let now = self.clock.now();
        let lead = match &call.lead_id {
            Some(id) => self.leads.get_lead(id, now).await?,
            None => None,
        };
        let (Some(lead), Some(sealed)) = (lead, call.sealed_recording_url.as_deref()) else {
            self.settle(call_id, RecordingSettlement::Failed).await?;
            self.audit("call.recording_failed", call_id, call.lead_id.as_ref(), now)
                .await?;
            return Ok(IngestOutcome::Failed);
        };
        // R7.5: the recording is kept from the cut point stored with the consent record
        // on; a pending call without one (written before cut points existed) keeps none.
        let Some(cut_ms) = call.consent_cut_ms else {
            self.settle(call_id, RecordingSettlement::NotKept).await?;
            self.audit(
                "call.recording_no_cut_point",
                call_id,
                call.lead_id.as_ref(),
                now,
            )
            .await?;
            tracing::warn!("pending recording without a cut point: not kept");
            return Ok(IngestOutcome::NotKept);
        };
        let key = self
            .keys
            .unwrap_data_key(&lead.id, &lead.wrapped_key)
            .await?;
        let url = CallService::open(&key, call_id, "sealed_recording_url", sealed)
            .map_err(|_| IngestError::Sealed)?;
        let url = String::from_utf8(url.to_vec()).map_err(|_| IngestError::Sealed)?;
        let object = recording_key(&lead.id, call_id);
        match self.copier.copy(&url, &object, cut_ms).await {
            Ok(report) => {
                // The copy ran while the subject may have been erased or withdrawn its
                // consent: decided afresh now. The withdrawal's flag is set before its
                // objects go, and the record below is written only while the call is
                // pending and no tombstone exists, so a copy never outlives either.
                let fresh = self.leads.get_lead(&lead.id, self.clock.now()).await?;
                let keep = fresh.is_some_and(|l| !l.consent_withdrawn && l.may_process());
                let end = call.end_at.unwrap_or(now);
                // The recording has its own retention (6 calendar months from call end):
                // a record of its own carries it in the expiry index.
                let recorded = keep
                    && self
                        .calls
                        .put_recording(&RecordingRecord {
                            call_id: call_id.to_owned(),
                            lead_id: lead.id,
                            object_key: object.clone(),
                            transcript_key: call.transcript_key.clone(),
                            bytes: report.bytes,
                            sha256_hex: report.sha256_hex.clone(),
                            retention: Retention::of(RetentionClass::Recording, end),
                        })
                        .await?;
                if !recorded {
                    self.copier.discard(&object).await?;
                    self.audit("call.recording_discarded", call_id, Some(&lead.id), now)
                        .await?;
                    tracing::info!("recording copy discarded: subject erased or withdrew");
                    return Ok(IngestOutcome::Discarded);
                }
                self.settle(
                    call_id,
                    RecordingSettlement::Stored {
                        object_key: object,
                        bytes: report.bytes,
                    },
                )
                .await?;
                self.audit("call.recording_stored", call_id, Some(&lead.id), now)
                    .await?;
                tracing::info!(
                    bytes = report.bytes,
                    parts = report.parts,
                    "recording stored"
                );
                Ok(IngestOutcome::Stored {
                    bytes: report.bytes,
                })
            }
            Err(e) => {
                let attempts = self.calls.count_recording_attempt(call_id).await?;
                if e.retry == Retry::Permanent || attempts >= MAX_COPY_ATTEMPTS {
                    self.settle(call_id, RecordingSettlement::Failed).await?;
                    self.audit("call.recording_failed", call_id, Some(&lead.id), now)
                        .await?;
                    tracing::error!(error = %e, attempts, "recording ingestion failed for good");
                    Ok(IngestOutcome::Failed)
                } else {
                    tracing::warn!(error = %e, attempts, "recording copy failed; retrying");
                    Err(e.into())
                }
            }
        }
    }

    /// Records that a call of the lead ended at `end`: its last contact (R2.11), never
    /// moved backwards. `false` when the lead is gone, or past its retention: a call
    /// linked to a lead the sweep has yet to erase goes with it and brings it back to
    /// nothing (R3.3).
    #[tracing::instrument(skip_all, fields(lead_id = %lead))]
    pub async fn record_contact(
        &self,
        lead: &LeadId,
        end: DateTime<Utc>,
    ) -> Result<bool, IngestError> {
        if self.leads.get_lead(lead, self.clock.now()).await?.is_none() {
            tracing::info!("lead gone or past its retention; last contact not moved");
            return Ok(false);
        }
        let moved = self.leads.record_contact(lead, end).await?;
        tracing::info!(moved, "last contact recorded");
        Ok(moved)
    }

    /// Deletes the call at the provider once it is analysed and its recording settled.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn delete_at_provider(
        &self,
        call_id: &str,
        api_key: &secrecy::SecretString,
    ) -> Result<bool, IngestError> {
        if !self.delete_at_provider {
            return Ok(false);
        }
        let Some(call) = self.calls.get_call(call_id).await? else {
            return Ok(false);
        };
        let settled = call
            .recording_state
            .as_deref()
            .is_some_and(|st| SETTLED_STATES.contains(&st));
        if !call.analysed() || !settled || call.provider_deleted {
            return Ok(false);
        }
        if let Err(e) = self.provider.delete_call(api_key, call_id).await {
            return self
                .deletion_failed(call_id, call.lead_id.as_ref(), e)
                .await;
        }
        let now = self.clock.now();
        self.calls.mark_provider_deleted(call_id, now).await?;
        self.audit(
            "call.deleted_at_provider",
            call_id,
            call.lead_id.as_ref(),
            now,
        )
        .await?;
        if let Some(outbox) = &self.outbox {
            // An earlier failure may have queued it: done now. Last, so a failure here
            // leaves a marked, audited call (a stale entry the drain clears: 404 is done).
            outbox.remove(call_id).await?;
        }
        tracing::info!("call deleted at the provider");
        Ok(true)
    }

    /// A failed deletion: counted in the outbox; the stream retries it until
    /// [`DELETE_STREAM_ATTEMPTS`] (a permanent refusal at once), then the outbox has it.
    async fn deletion_failed(
        &self,
        call_id: &str,
        lead: Option<&LeadId>,
        e: ProviderError,
    ) -> Result<bool, IngestError> {
        let Some(outbox) = &self.outbox else {
            return Err(e.into());
        };
        let now = self.clock.now();
        let queued = outbox
            .pending()
            .await?
            .into_iter()
            .find(|p| p.call_id == call_id);
        let entry = match queued {
            Some(p) => {
                let next = p.failed(now);
                outbox.update(&next).await?;
                next
            }
            None => {
                let next = PendingDeletion::new(call_id, now).failed(now);
                outbox.enqueue(std::slice::from_ref(&next)).await?;
                next
            }
        };
        let handed_over = e.retry() == Retry::Permanent || entry.attempts >= DELETE_STREAM_ATTEMPTS;
        if !handed_over {
            tracing::warn!(error = %e, attempts = entry.attempts, "deletion at the provider failed; retrying");
            return Err(e.into());
        }
        if entry.attempts == DELETE_STREAM_ATTEMPTS || e.retry() == Retry::Permanent {
            self.audit("call.provider_deletion_queued", call_id, lead, now)
                .await?;
        }
        self.calls
            .mark_provider_deletion_queued(call_id, now)
            .await?;
        tracing::warn!(
            error = %e,
            attempts = entry.attempts,
            "deletion at the provider failed; the outbox retries it"
        );
        Ok(false)
    }
}
