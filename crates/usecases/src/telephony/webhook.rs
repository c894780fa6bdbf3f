//! The call service: turns a verified provider event into what we keep of a call.
//!
//! Linked calls (`metadata.lead_id` names a live lead) are sealed under the subject's data
//! key; a call naming a lead that is past its retention but not yet swept is linked to it
//! (so the sweep takes it along) and keeps metadata only. The consent (R2.6) and
//! disclosure (R2.8) decisions are taken here, before anything is kept: without both, no
//! transcript and no recording URL are stored, only metadata and call content (R2.7). With
//! both, what is kept begins at the consent answer: the cut point (`retell::cut`) is
//! stored with the consent record, the transcript is cut there and the worker trims the
//! recording there; a call without a safe cut point keeps neither (R7.5). A
//! call without a stored lead keeps only its metadata and the blind index of the person's
//! number, so a request whose number staff proved still finds it (R2.4).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use domain::crypto::{CryptoError, DataKey};
use domain::retention::Retention;
use domain::{Clock, LeadId, PhoneNumber, RetentionClass};

use crate::ports::{IdentifierKind, KeyError, KeyService, LeadStore, Objects, Retry, StoreError};
use crate::telephony::ports::{CallFacts, ConsentRecord, Metrics};
use crate::telephony::retell::compliance::{
    discloses, recording_consent, ConsentSource, DisclosurePatterns,
};
use crate::telephony::retell::cut::{consent_cut_ms, trim_transcript, NoCutPoint};
use crate::telephony::retell::model::{CallEvent, CallId, LifecycleEvent};

pub use crate::telephony::ports::{CallProjection, CallStore, MergeOutcome};

/// Associated data of a sealed call attribute.
pub fn call_aad(call_id: &str, attribute: &str) -> Vec<u8> {
    format!("polly:call:{call_id}:{attribute}").into_bytes()
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("sealing failed")]
    Crypto(#[from] CryptoError),
}

impl CallError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Keys(e) => e.retry,
            Self::Store(e) => e.retry,
            Self::Crypto(_) => Retry::Permanent,
        }
    }
}

/// Object key of a call's sealed transcript (opaque ids only).
pub fn transcript_key(lead: &LeadId, call_id: &str) -> String {
    format!("transcripts/{lead}/{call_id}.json.sealed")
}

pub struct CallService {
    store: Arc<dyn CallStore>,
    transcripts: Arc<dyn Objects>,
    leads: Arc<dyn LeadStore>,
    keys: Arc<dyn KeyService>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    patterns: DisclosurePatterns,
    /// The consent ledger (R7.6), set by the webhook function ([`Self::with_ledger`]).
    ledger: Option<Arc<crate::ledger::ConsentLedger>>,
}

fn lead_id_of(lead: &Option<crate::ports::StoredLead>) -> LeadId {
    lead.as_ref().map(|l| l.id).unwrap_or_default()
}

fn ms_to_time(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

impl CallService {
    /// `transcripts` is the recordings bucket (sealed transcripts live beside recordings).
    pub fn new(
        store: Arc<dyn CallStore>,
        transcripts: Arc<dyn Objects>,
        leads: Arc<dyn LeadStore>,
        keys: Arc<dyn KeyService>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
        patterns: DisclosurePatterns,
    ) -> Self {
        Self {
            store,
            transcripts,
            leads,
            keys,
            clock,
            metrics,
            patterns,
            ledger: None,
        }
    }

    /// Appends every recording-consent decision to the consent ledger before it is
    /// stored (R7.6): a failed append fails the event, which the provider redelivers.
    pub fn with_ledger(mut self, ledger: Arc<crate::ledger::ConsentLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    async fn to_ledger(
        &self,
        subject: Option<LeadId>,
        number: Option<String>,
        how: domain::ledger::How,
        event: domain::ledger::LedgerEvent,
    ) -> Result<(), CallError> {
        if let Some(ledger) = &self.ledger {
            ledger
                .append(subject, number, self.clock.now(), how, event)
                .await
                .map_err(crate::ledger::LedgerError::into_store)?;
        }
        Ok(())
    }

    /// The call store behind this service.
    pub fn store(&self) -> &Arc<dyn CallStore> {
        &self.store
    }

    /// Records one lifecycle event. Idempotent; safe under duplicates, re-ordering and
    /// concurrency.
    #[tracing::instrument(skip_all, fields(call_id = %e.call_id, event = e.event.code()))]
    pub async fn record(&self, e: &CallEvent<'_>) -> Result<MergeOutcome, CallError> {
        let now = self.clock.now();
        // A late event of an erased subject's call brings nothing back, not even as an
        // unlinked call (the merge checks the tombstone again, atomically).
        if let Some(id) = &e.lead_id {
            if self.leads.erased(id).await? {
                tracing::info!("call event of an erased subject ignored");
                return Ok(MergeOutcome::SubjectErased);
            }
        }
        let lead = match &e.lead_id {
            Some(id) => self.leads.get_lead(id, now).await?,
            None => None,
        };
        // A lead past its retention but not yet swept: the call is linked to it (its
        // pointer in the lead's partition), so the sweep's erasure takes it along; as for
        // a restricted subject, nothing is processed: no key, metadata only.
        let due_lead = match (&e.lead_id, &lead) {
            (Some(id), None) if self.leads.lead_exists(id).await? => Some(*id),
            _ => None,
        };
        let linked_to = lead.as_ref().map(|l| l.id).or(due_lead);
        // A restricted or objecting subject's calls keep metadata only (R2.10): no key is
        // opened, so nothing is sealed, no transcript and no recording kept.
        let permitted = lead.as_ref().is_none_or(|l| l.may_process());
        let key = match &lead {
            Some(l) if permitted => Some(self.keys.unwrap_data_key(&l.id, &l.wrapped_key).await?),
            _ => None,
        };
        let call_id = e.call_id.as_str();

        // Call data is lead-class data: kept 3 years from the call (or from now).
        let anchor = e.end_ms.or(e.start_ms).and_then(ms_to_time).unwrap_or(now);
        let mut facts = CallFacts {
            call_type: e.call_type.clone(),
            call_status: e.call_status.clone(),
            direction: e.direction.clone(),
            agent_id: e.agent_id.clone(),
            agent_version: e.agent_version.clone(),
            disconnection_reason: e.disconnection_reason.clone(),
            start_at: e.start_ms.and_then(ms_to_time),
            end_at: e.end_ms.and_then(ms_to_time),
            duration_ms: e.duration_ms,
            linked: linked_to.is_some(),
            processing_restricted: !permitted,
            phone_index: None,
            retention: Retention::of(RetentionClass::Lead, anchor.max(now)),
            consent: None,
            transcript_key: None,
        };

        // The person's number: the one we called, or the one that called us.
        let inbound = e.direction.as_deref() == Some("inbound");
        let person = e
            .call
            .get(if inbound { "from_number" } else { "to_number" })
            .and_then(Value::as_str)
            .and_then(|n| PhoneNumber::parse(n).ok());
        if let Some(phone) = &person {
            facts.phone_index = Some(
                self.keys
                    .blind_index(IdentifierKind::Phone, phone.expose())
                    .await?,
            );
        }

        let mut sealed = Vec::new();
        let mut remove = Vec::new();
        let mut audit = vec![match e.event {
            LifecycleEvent::CallStarted => "call.started",
            LifecycleEvent::CallEnded => "call.ended",
            LifecycleEvent::CallAnalyzed => "call.analyzed",
        }];
        let mut recording_state = None;

        if let Some(key) = &key {
            let seal = |attr: &str, value: &Value| -> Result<Vec<u8>, CryptoError> {
                let bytes = zeroize::Zeroizing::new(serde_json::to_vec(value).unwrap_or_default());
                key.seal(&call_aad(call_id, attr), &bytes)
            };
            let field = |name: &str| e.call.get(name).cloned().unwrap_or(Value::Null);
            let content = json!({
                "from_number": field("from_number"),
                "to_number": field("to_number"),
                "call_analysis": field("call_analysis"),
                "collected_dynamic_variables": field("collected_dynamic_variables"),
            });
            sealed.push(("sealed_call", seal("sealed_call", &content)?));
        }

        if e.event >= LifecycleEvent::CallEnded {
            let consent = recording_consent(&e.call);
            let has_transcript = e.transcripts.any();
            let disclosed = discloses(&e.call, &self.patterns);
            // R7.5: nothing before the consent answer is kept; without a safe cut point
            // (consent from the analysis only, timings missing or inconsistent) nothing
            // verbatim is kept at all.
            let duration = e
                .duration_ms
                .or(e.end_ms.zip(e.start_ms).map(|(a, b)| a - b));
            let cut = if consent.granted {
                consent_cut_ms(&e.transcripts, duration)
            } else {
                Err(NoCutPoint::NoConsentToolCall)
            };
            facts.consent = Some(ConsentRecord {
                granted: consent.granted,
                source: consent.source,
                decided_at: now,
                disclosure_ok: disclosed,
                cut_ms: cut.ok(),
            });
            let how = match consent.source {
                ConsentSource::ToolCall => Some(domain::ledger::How::ToolCall),
                ConsentSource::CallAnalysis => Some(domain::ledger::How::Analysis),
                ConsentSource::None => None,
            };
            if let Some(how) = how {
                let event = domain::ledger::LedgerEvent::RecordingConsent {
                    granted: consent.granted,
                    call_id: call_id.to_owned(),
                    agent_version: e.agent_version.clone(),
                };
                let number = facts.phone_index.as_ref().map(|p| p.as_str().to_owned());
                self.to_ledger(linked_to, number, how, event).await?;
            }
            if has_transcript && !disclosed {
                audit.push("call.disclosure_missing");
                self.metrics.count("DisclosureMissing", 1.0);
                tracing::warn!(
                    "compliance incident: the agent's opening lacks the AI or recording disclosure"
                );
            }
            // A withdrawn consent outweighs whatever the call says (R4.9).
            let withdrawn = lead.as_ref().is_some_and(|l| l.consent_withdrawn);
            // R7.4: the person said on the line that they never signed up (the
            // `confirm_signup` tool call came first): nothing of the call is kept.
            let denied = self
                .store
                .get_call(call_id)
                .await?
                .is_some_and(|c| c.signup_denied);
            let consented = consent.granted && disclosed && key.is_some() && !withdrawn && !denied;
            if let (true, Err(why)) = (consented, cut) {
                audit.push("call.recording_no_cut_point");
                self.metrics.count("RecordingNoCutPoint", 1.0);
                tracing::warn!(
                    reason = why.code(),
                    "no safe cut point at the consent answer: no recording or transcript kept"
                );
            }
            let recording_url = e.call.get("recording_url").and_then(Value::as_str);
            match (&key, consented.then_some(cut.ok()).flatten()) {
                (Some(key), Some(cut_ms)) => {
                    let transcript = trim_transcript(&e.transcripts, cut_ms);
                    // Transcripts of long calls exceed DynamoDB's 400 KB item limit: the
                    // sealed transcript goes to the recordings bucket (SSE-KMS on top).
                    let bytes = zeroize::Zeroizing::new(transcript.into_bytes());
                    let sealed_transcript = key.seal(&call_aad(call_id, "transcript"), &bytes)?;
                    let object = transcript_key(&lead_id_of(&lead), call_id);
                    self.transcripts.put(&object, sealed_transcript).await?;
                    facts.transcript_key = Some(object);
                    if let Some(url) = recording_url {
                        sealed.push((
                            "sealed_recording_url",
                            key.seal(&call_aad(call_id, "sealed_recording_url"), url.as_bytes())?,
                        ));
                        recording_state = Some("pending");
                    } else {
                        remove.push("sealed_recording_url");
                        recording_state = Some("not_available");
                    }
                    audit.push("call.recording_consented");
                }
                _ => {
                    remove.push("transcript_key");
                    remove.push("sealed_recording_url");
                    recording_state = Some("not_kept");
                }
            }
        }

        let projection = CallProjection {
            call_id: call_id.to_owned(),
            event: e.event.code(),
            completeness: e.event.completeness(),
            lead_id: linked_to,
            named_lead: e.lead_id,
            facts,
            sealed,
            remove,
            recording_state,
            audit,
            at: now,
        };
        let outcome = self.store.merge(&projection).await?;
        if outcome == MergeOutcome::SubjectErased {
            // Erased while this event was worked on: the transcript written above goes.
            if let Some(object) = &projection.facts.transcript_key {
                self.transcripts.delete_all_versions(object).await?;
            }
            tracing::info!("call event of an erased subject not stored");
            return Ok(outcome);
        }
        // The bucket follows the stored view, not this event's: a superseded event (say
        // `call_ended` without the analysis-only consent, after `call_analyzed` with it)
        // must not delete the transcript the call keeps, and a superseded event that put
        // one must not leave it behind when the call keeps none (R2.3). Deleting after the
        // merge also means no stored call ever references a deleted transcript.
        // A "never signed up" mark set between our decision and the merge strips the
        // pointer in the merge (R7.4): the stored view is read then too.
        let decided = e.event >= LifecycleEvent::CallEnded;
        if decided {
            if let Some(lead) = &linked_to {
                let stored = self.store.get_call(call_id).await?;
                if stored.is_none_or(|c| c.transcript_key.is_none()) {
                    let object = transcript_key(lead, call_id);
                    self.transcripts.delete_all_versions(&object).await?;
                }
            }
        }
        tracing::info!(linked = key.is_some(), ?outcome, "call event recorded");
        Ok(outcome)
    }

    /// Records the live answer of the agent's `record_consent` tool call.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn record_live_consent(
        &self,
        call_id: &CallId,
        granted: bool,
    ) -> Result<(), CallError> {
        // The live answer knows only the call; the call's decision entry names the subject.
        let event = domain::ledger::LedgerEvent::RecordingConsent {
            granted,
            call_id: call_id.as_str().to_owned(),
            agent_version: None,
        };
        self.to_ledger(None, None, domain::ledger::How::ToolCall, event)
            .await?;
        self.store
            .record_live_consent(call_id.as_str(), granted, self.clock.now())
            .await?;
        tracing::info!(granted, "live consent answer recorded");
        Ok(())
    }

    /// Reads a call's sealed transcript object, if one is stored.
    pub async fn sealed_transcript(&self, object: &str) -> Result<Option<Vec<u8>>, CallError> {
        Ok(self.transcripts.get(object).await?)
    }

    /// Opens a sealed attribute of a call (for the worker, exports and tests).
    pub fn open(
        key: &DataKey,
        call_id: &str,
        attribute: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        key.open(&call_aad(call_id, attribute), sealed)
    }
}
