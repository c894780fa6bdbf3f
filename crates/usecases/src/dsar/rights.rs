//! Carrying out verified requests other than exports (R4.5, R4.7–R4.9): erasure,
//! restriction, objection and consent withdrawal, by the dsar worker.
//!
//! Every step is idempotent, so a retried or repeated request converges: deleting what
//! is gone is a no-op, flags are set, and the request closes once (on its version).
//!
//! Erasure destroys the subject's data key first (crypto-shredding: every copy of its
//! ciphertext, backups included, becomes unreadable). The subject's calls are deleted at
//! the provider (Art. 19) through the durable outbox (`crate::outbox`): queued before
//! anything here goes, tried at once, retried with backoff when the provider fails, so a
//! provider outage never blocks the erasure here. What a live contract needs (§257 HGB, §147 AO) is kept
//! and restricted instead (§35(3) BDSG), and the answer names the hold and its end. What
//! remains of an erasure is the request record: id, dates, categories, no personal data.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use domain::crypto::BlindIndex;

use domain::dsar::{mail, RequestStatus, RequestType};
use domain::registry::erased_categories;
use domain::{Clock, LeadId, RequestId};

use super::analytics::{forget_subject, ForgetError};
use super::common::{open_contact, proven_phone, resolve_subject, ContactMail, Resolved};
use super::ports::{
    CallProvider, ClaimLookup, Doomed, Flag, ProviderError, RequestStore, SubjectData,
    SubjectRecords, SubjectRights,
};
use super::records::{close, subject_link, Change, Commit, OpenRecord, RequestRecord};
use crate::ports::{
    IdentifierKind, KeyError, KeyService, LeadStore, Mailer, Objects, Retry, StoreError,
};
use crate::signup::{LeadService, ReadError};

/// The record kind of a §7a UWG phone-consent proof, which an erasure keeps (see `erase`).
const PHONE_CONSENT_PROOF: &str = "phone_consent";

#[derive(Debug, thiserror::Error)]
pub enum RightsError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("reading the subject failed")]
    Read(#[from] ReadError),
    #[error("a sealed value of the subject does not open")]
    Sealed,
}

impl RightsError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Keys(e) => e.retry,
            Self::Read(ReadError::Store(e)) => e.retry,
            Self::Read(ReadError::Keys(e)) => e.retry,
            Self::Sealed | Self::Read(_) => Retry::Permanent,
        }
    }
}

impl From<ForgetError> for RightsError {
    fn from(e: ForgetError) -> Self {
        match e {
            ForgetError::Store(s) => Self::Store(s),
            ForgetError::Keys(k) => Self::Keys(k),
        }
    }
}

impl From<crate::ledger::LedgerError> for RightsError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        Self::Store(e.into_store())
    }
}

impl From<ProviderError> for RightsError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Keys(k) => Self::Keys(k),
            ProviderError::Provider(s) => Self::Store(s),
        }
    }
}

/// Carries out erasure, restriction, objection, withdrawal and rectification requests.
pub struct Rights {
    pub store: Arc<dyn RequestStore>,
    pub claims: Arc<dyn ClaimLookup>,
    pub subjects: Arc<dyn SubjectData>,
    pub writes: Arc<dyn SubjectRights>,
    /// The lead store, for the legal hold (R3.4).
    pub lead_store: Arc<dyn LeadStore>,
    pub leads: Arc<LeadService>,
    pub keys: Arc<dyn KeyService>,
    pub recordings: Arc<dyn Objects>,
    pub exports: Arc<dyn Objects>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub public_api_base_url: String,
    /// The telephony provider, where erasure deletes the subject's calls (Art. 19).
    pub provider: Option<Arc<dyn CallProvider>>,
    /// The consent ledger (R7.6): objections and withdrawals are appended before they
    /// are applied, so a failed append fails the request, which is retried.
    pub ledger: Option<Arc<crate::ledger::ConsentLedger>>,
    /// The do-not-call list an objection puts the subject's number on (R7.1); erasure
    /// leaves it alone.
    pub do_not_call: crate::dnc::DoNotCallList,
    /// A CRM webhook is configured (`CRM_WEBHOOK_URL`): a rectification, restriction,
    /// objection or erasure of a subject queues its Art. 19 notice in the commit that
    /// closes the request (`crate::crm`).
    pub crm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsOutcome {
    Erased {
        calls_deleted_at_provider: usize,
    },
    /// A live contract bars erasure: the subject is restricted until `until`.
    Held {
        until: DateTime<Utc>,
    },
    Restricted,
    Objected,
    RecordingsDeleted {
        objects: usize,
    },
    /// Corrections applied; each recipient recorded as informed or not holding the data.
    Rectified {
        recipients: std::collections::BTreeMap<String, String>,
    },
    /// The corrections cannot be applied (invalid now, or the new email or phone
    /// belongs to another subject).
    RectificationRefused,
    NoData,
    /// Not an open request this module carries out.
    Skipped,
    /// An erasure waiting in its cancel window (`erasure_window`): the subject is
    /// restricted (`erasure_pending`) until `at`, when the schedule hands it back.
    Scheduled {
        at: DateTime<Utc>,
    },
    /// A cancelled erasure: the restriction its window set is lifted.
    WindowLifted,
}

type Subject = SubjectRecords;

impl Rights {
    /// Carries out an open erasure, restriction, objection or withdrawal request.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn carry_out(&self, id: &RequestId) -> Result<RightsOutcome, RightsError> {
        let provider = self.provider.as_deref();
        let now = self.clock.now();
        let Some(mut record) = self.store.request(id).await? else {
            return Ok(RightsOutcome::Skipped);
        };
        if record.status == RequestStatus::Cancelled {
            return self.lift_window(&record, now).await;
        }
        if record.status != RequestStatus::InProgress {
            return Ok(RightsOutcome::Skipped);
        }
        let resolved =
            resolve_subject(self.claims.as_ref(), self.store.as_ref(), &record, now).await?;
        let no_subject = matches!(resolved, Resolved::NoData);
        // The cancel window (`erasure_window`): restrict while it is open; once it is
        // over, mark the erasure started (so it can no longer be cancelled) and go on.
        if let (RequestType::Erasure, Some(at), None) = (
            record.request_type,
            record.erasure_scheduled_at,
            record.erasure_started_at,
        ) {
            let lead = match &resolved {
                Resolved::Subject(lead) => Some(*lead),
                _ => None,
            };
            if at > now {
                return self.restrict_for_window(record, lead, at, now).await;
            }
            match self.start_erasure(record, now).await? {
                Some(started) => record = started,
                None => return Ok(RightsOutcome::Skipped),
            }
        }
        let subject = match resolved {
            Resolved::Waiting => return Ok(RightsOutcome::Skipped),
            Resolved::NoData => None,
            Resolved::Subject(lead) => self.subjects.subject(&lead).await?,
        };
        let outcome = match (record.request_type, &subject) {
            (RequestType::Access | RequestType::Portability, _) => {
                return Ok(RightsOutcome::Skipped)
            }
            // No subject, but a number proven by the staff identity check: the calls
            // stored without a lead with that number are the requester's to erase. The
            // other rights have nothing to act on without a lead (`no_data`).
            (RequestType::Erasure, None) if no_subject => match proven_phone(&record) {
                Some(phone) => self.erase_unlinked(&phone, provider).await?,
                None => RightsOutcome::NoData,
            },
            (_, None) => RightsOutcome::NoData,
            (RequestType::Erasure, Some(s)) => self.erase(s, provider, now).await?,
            (RequestType::Restriction, Some(s)) => {
                self.writes.set_flag(&s.lead, Flag::Restricted).await?;
                RightsOutcome::Restricted
            }
            (RequestType::Objection, Some(s)) => {
                self.to_ledger(s, domain::ledger::LedgerEvent::Objection, now)
                    .await?;
                self.writes.set_flag(&s.lead, Flag::Objected).await?;
                self.list_objection(s).await?;
                RightsOutcome::Objected
            }
            (RequestType::WithdrawConsent, Some(s)) => {
                self.to_ledger(s, domain::ledger::LedgerEvent::ConsentWithdrawn, now)
                    .await?;
                self.withdraw(s).await?
            }
            (RequestType::Rectification, Some(s)) => {
                self.rectify(&record, s, provider, now).await?
            }
        };
        // Derived data goes too: the analytics files lose the subject's rows once it is
        // erased, held, restricted or objects (R6).
        if let (
            Some(s),
            RightsOutcome::Erased { .. }
            | RightsOutcome::Held { .. }
            | RightsOutcome::Restricted
            | RightsOutcome::Objected,
        ) = (&subject, &outcome)
        {
            forget_subject(self.exports.as_ref(), self.keys.as_ref(), &s.lead).await?;
        }
        // A legal hold keeps the lead (restricted by the hold): the window's flag goes.
        if let (Some(s), RightsOutcome::Held { .. }, true) =
            (&subject, &outcome, record.window_restricted)
        {
            self.writes.lift_erasure_pending(&s.lead).await?;
            // As without a window, the proof names nobody.
            record.lead_id = None;
        }
        self.close_request(record, subject.as_ref().map(|s| s.lead), &outcome, now)
            .await?;
        tracing::info!(?outcome, "request carried out");
        Ok(outcome)
    }

    /// The cancel window is open: the subject is restricted (`erasure_pending`, not
    /// `restricted`), and the record notes it and whom, so a cancellation lifts exactly
    /// this. When a cancellation won meanwhile (the record changed), the flag is lifted
    /// again here; any other change is retried.
    async fn restrict_for_window(
        &self,
        record: RequestRecord,
        lead: Option<LeadId>,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RightsOutcome, RightsError> {
        let Some(lead) = lead else {
            // Nobody to restrict (no subject, or it waits for the staff check): the
            // schedule brings it back when the window ends.
            return Ok(RightsOutcome::Scheduled { at });
        };
        if record.window_restricted && record.lead_id == Some(lead) {
            return Ok(RightsOutcome::Scheduled { at });
        }
        self.writes.set_flag(&lead, Flag::ErasurePending).await?;
        let old = record.version;
        let mut updated = record;
        updated.window_restricted = true;
        updated.lead_id = Some(lead);
        updated.version += 1;
        if self
            .store
            .commit(
                &updated,
                Some(old),
                Vec::new(),
                "dsar-worker",
                "dsar.erasure_window_restricted",
                now,
            )
            .await?
            == Commit::Conflict
        {
            let now_cancelled = self
                .store
                .request(&updated.request_id)
                .await?
                .is_none_or(|r| r.status == RequestStatus::Cancelled);
            if now_cancelled {
                self.writes.lift_erasure_pending(&lead).await?;
                return Ok(RightsOutcome::WindowLifted);
            }
            return Err(RightsError::Store(StoreError {
                operation: "erasure_window",
                retry: Retry::Transient,
                source: None,
            }));
        }
        tracing::info!(%at, "erasure waits in its cancel window; subject restricted");
        Ok(RightsOutcome::Scheduled { at })
    }

    /// The window is over: the erasure is marked started on the record's version, so a
    /// cancellation and the start cannot both win. `None` when the record changed (a
    /// cancellation, a staff action): the next run decides again.
    async fn start_erasure(
        &self,
        record: RequestRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, RightsError> {
        let old = record.version;
        let mut updated = record;
        updated.erasure_started_at = Some(now);
        updated.erasure_due = None;
        updated.version += 1;
        // Same due date, so the same staff-list entry, now without the scheduled time.
        let changes = vec![Change::List(OpenRecord::of(&updated))];
        match self
            .store
            .commit(
                &updated,
                Some(old),
                changes,
                "dsar-worker",
                "dsar.erasure_started",
                now,
            )
            .await?
        {
            Commit::Done => Ok(Some(updated)),
            Commit::Conflict => Ok(None),
        }
    }

    /// A cancelled erasure: lifts the flag its window set (idempotent), and only that.
    async fn lift_window(
        &self,
        record: &RequestRecord,
        now: DateTime<Utc>,
    ) -> Result<RightsOutcome, RightsError> {
        let (true, Some(lead)) = (record.window_restricted, record.lead_id) else {
            return Ok(RightsOutcome::Skipped);
        };
        self.writes.lift_erasure_pending(&lead).await?;
        self.store
            .audit(
                &record.request_id,
                None,
                "dsar-worker",
                "dsar.erasure_window_lifted",
                now,
            )
            .await?;
        Ok(RightsOutcome::WindowLifted)
    }

    /// R7.1: an objection puts the subject's number on the do-not-call list, which
    /// outlives an erasure of the subject (idempotent: a repeated request changes nothing).
    async fn list_objection(&self, subject: &Subject) -> Result<(), RightsError> {
        if let Some(phone) = &subject.phone_index {
            // R7.6: the listing goes to the consent ledger first.
            if !self.do_not_call.is_listed(phone).await? {
                self.to_ledger(
                    subject,
                    domain::ledger::LedgerEvent::DncListed,
                    self.clock.now(),
                )
                .await?;
            }
            self.do_not_call
                .list(phone, crate::dnc::DncSource::Objection, "dsar-worker")
                .await?;
        }
        Ok(())
    }

    async fn erase(
        &self,
        subject: &Subject,
        provider: Option<&dyn CallProvider>,
        now: DateTime<Utc>,
    ) -> Result<RightsOutcome, RightsError> {
        let hold = subject
            .records
            .iter()
            .filter(|r| r.kind == "contract")
            .filter_map(|r| r.text("expires_at"))
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now)
            .max();
        // The tombstone first, then the subject read afresh: every call a webhook or the
        // worker stored before it is found now, and every later write for the subject
        // checks it and stores nothing (no resurrection).
        let fresh;
        let subject = if hold.is_none() {
            self.lead_store.bury(&subject.lead, now, false).await?;
            fresh = self.subjects.subject(&subject.lead).await?;
            fresh.as_ref().unwrap_or(subject)
        } else {
            subject
        };
        // Art. 19: the subject's calls (as read after the tombstone) are queued for
        // deletion at the provider before anything here is gone (their ids are lost with
        // the call items). The production provider is `outbox::ProviderDeletions`: a
        // provider failure keeps the call queued and the erasure goes on; only a failure
        // to queue stops it (retried).
        let mut at_provider = 0;
        if let Some(p) = provider {
            at_provider = p.delete_calls(&subject.calls).await?;
        }

        // What goes in both cases: calls, request links, everything under the subject's
        // prefixes and the subject's earlier exports. The §7a UWG phone-consent proofs
        // stay, as the sweep keeps them: they defend against a claim that a call was
        // unsolicited (Art. 17(3)(e) GDPR) and go by their own date, 5 years after their
        // last use (R3). They hold no plain personal data (the number's blind index, times,
        // text version, call ids) and are not used for anything else.
        let mut doomed: Vec<Doomed> = subject.calls.iter().cloned().map(Doomed::Call).collect();
        let kept_under_hold = |kind: &str| matches!(kind, "lead" | "contract");
        for r in &subject.records {
            if r.kind == PHONE_CONSENT_PROOF || (hold.is_some() && kept_under_hold(&r.kind)) {
                continue;
            }
            doomed.push(Doomed::Held(subject.lead, r.key.clone()));
        }
        let history = self.store.subject_requests(&subject.lead).await?;
        for r in &history {
            if self.store.export(&r.request_id).await?.is_some() {
                self.exports
                    .delete_all_versions(&format!("exports/{}.zip", r.request_id))
                    .await?;
                doomed.push(Doomed::Export(r.request_id));
            }
        }
        if let Some(until) = hold {
            self.writes.delete(doomed).await?;
            for prefix in prefixes(&subject.lead) {
                self.recordings.delete_all_versions_under(&prefix).await?;
            }
            self.lead_store
                .hold_until(&subject.lead, until, now)
                .await?;
            return Ok(RightsOutcome::Held { until });
        }
        // Crypto-shredding first, then everything else.
        self.writes.shred_key(&subject.lead).await?;
        for (index, kind) in [
            (&subject.email_index, IdentifierKind::Email),
            (&subject.phone_index, IdentifierKind::Phone),
        ] {
            if let Some(i) = index {
                doomed.push(Doomed::Claim(kind, i.clone()));
                // The per-identifier request counters (two days at most).
                doomed.push(Doomed::Counters(i.clone()));
            }
        }
        // The call-attempt counters it left on its numbers (R1.6).
        doomed.push(Doomed::Attempts(subject.lead));
        self.writes.delete(doomed).await?;
        // The kept consent proofs leave the erased subject's records, without its lead and
        // call ids: no kept record then joins its audit events (R4.5, Art. 17(3)(e)).
        self.lead_store.detach_consent_proofs(&subject.lead).await?;
        for prefix in prefixes(&subject.lead) {
            self.recordings.delete_all_versions_under(&prefix).await?;
        }
        // Earlier requests of the subject keep their records, no longer linked to it.
        for r in &history {
            self.store.unlink_subject(&r.request_id).await?;
        }
        Ok(RightsOutcome::Erased {
            calls_deleted_at_provider: at_provider,
        })
    }

    /// Erasure for a proven number without a subject (R4.5): the calls stored without a
    /// lead with that number go at the provider first (Art. 19), then here; a call
    /// linked to a subject meanwhile stays. Such calls hold metadata only (no key, no
    /// transcript, no recording), so there is nothing to shred. `no_data` when there are
    /// none.
    async fn erase_unlinked(
        &self,
        phone: &BlindIndex,
        provider: Option<&dyn CallProvider>,
    ) -> Result<RightsOutcome, RightsError> {
        let calls: Vec<String> = self
            .subjects
            .unlinked_calls(phone)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        if calls.is_empty() {
            return Ok(RightsOutcome::NoData);
        }
        let mut at_provider = 0;
        if let Some(p) = provider {
            at_provider = p.delete_calls(&calls).await?;
        }
        self.writes
            .delete(calls.into_iter().map(Doomed::UnlinkedCall).collect())
            .await?;
        Ok(RightsOutcome::Erased {
            calls_deleted_at_provider: at_provider,
        })
    }

    /// Rectification (R4.6): the corrections from the request, validated like the
    /// sign-up, re-sealed; changed identifiers move their blind indexes and claims.
    /// The provider (and its sub-processors) got the number and first name for calls;
    /// calls still held there are deleted, so it holds no old value (Art. 19).
    async fn rectify(
        &self,
        record: &RequestRecord,
        subject: &Subject,
        provider: Option<&dyn CallProvider>,
        now: DateTime<Utc>,
    ) -> Result<RightsOutcome, RightsError> {
        let id = record.request_id;
        let Some(contact) = self.store.contact(&id).await? else {
            return Ok(RightsOutcome::RectificationRefused);
        };
        let contact = open_contact(self.keys.as_ref(), &id, &contact)
            .await
            .map_err(|_| RightsError::Sealed)?;
        let corrections = contact.corrections.unwrap_or_default();
        let Some((lead, key)) = self.leads.read_with_key(&subject.lead).await? else {
            return Ok(RightsOutcome::NoData);
        };
        let Ok((profile, sealed)) = crate::signup::reseal_corrected(&lead, &key, &corrections)
        else {
            return Ok(RightsOutcome::RectificationRefused);
        };
        let new_email = self
            .keys
            .blind_index(IdentifierKind::Email, &profile.email.lookup_key())
            .await?;
        let new_phone = self
            .keys
            .blind_index(IdentifierKind::Phone, profile.phone.expose())
            .await?;
        let applied = self
            .writes
            .rectify(
                &subject.lead,
                sealed,
                subject.email_index.as_ref().map(|o| (o, &new_email)),
                subject.phone_index.as_ref().map(|o| (o, &new_phone)),
                now,
            )
            .await?;
        if !applied {
            return Ok(RightsOutcome::RectificationRefused);
        }
        let mut provider_holds = false;
        for call in &subject.calls {
            let deleted_there = self
                .subjects
                .call(call)
                .await?
                .is_some_and(|c| c.provider_deleted);
            if deleted_there {
                continue;
            }
            match provider {
                // Zero deleted: still queued in the outbox, so the provider holds it.
                Some(p) => {
                    if p.delete_calls(std::slice::from_ref(call)).await? == 0 {
                        provider_holds = true;
                    }
                }
                None => provider_holds = true,
            }
        }
        let mut recipients = std::collections::BTreeMap::new();
        recipients.insert(
            domain::registry::AWS.name.to_owned(),
            "updated (our processor; holds only the corrected value)".to_owned(),
        );
        for r in [
            domain::registry::RETELL_AI,
            domain::registry::OPENAI,
            domain::registry::ELEVENLABS,
        ] {
            recipients.insert(
                r.name.to_owned(),
                if provider_holds {
                    "to_inform (calls still held at the provider)".to_owned()
                } else {
                    "not_holding (calls deleted at the provider)".to_owned()
                },
            );
        }
        Ok(RightsOutcome::Rectified { recipients })
    }

    /// Appends the subject's objection or withdrawal to the consent ledger (R7.6).
    async fn to_ledger(
        &self,
        subject: &Subject,
        event: domain::ledger::LedgerEvent,
        now: DateTime<Utc>,
    ) -> Result<(), RightsError> {
        if let Some(ledger) = &self.ledger {
            let number = subject.phone_index.as_ref().map(|p| p.as_str().to_owned());
            ledger
                .append(
                    Some(subject.lead),
                    number,
                    now,
                    domain::ledger::How::Dsar,
                    event,
                )
                .await?;
        }
        Ok(())
    }

    /// Consent withdrawn (R4.9): every recording and transcript version goes now; the
    /// flag makes later calls keep none, whatever they say.
    async fn withdraw(&self, subject: &Subject) -> Result<RightsOutcome, RightsError> {
        self.writes
            .set_flag(&subject.lead, Flag::ConsentWithdrawn)
            .await?;
        let mut objects = 0;
        for prefix in prefixes(&subject.lead) {
            objects += self.recordings.delete_all_versions_under(&prefix).await?;
        }
        let mut doomed = Vec::new();
        for call in &subject.calls {
            doomed.push(Doomed::Recording(call.clone()));
            self.writes.withdraw_recording(call).await?;
        }
        self.writes.delete(doomed).await?;
        Ok(RightsOutcome::RecordingsDeleted { objects })
    }

    async fn close_request(
        &self,
        record: RequestRecord,
        subject: Option<LeadId>,
        outcome: &RightsOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), RightsError> {
        let id = record.request_id;
        let contact = self.store.contact(&id).await?;
        let old = record.version;
        let open = OpenRecord::of(&record);
        let mut updated = record;
        let code = match outcome {
            RightsOutcome::Erased { .. } => "erased",
            RightsOutcome::Held { .. } => "restricted_under_legal_hold",
            RightsOutcome::Restricted => "restricted",
            RightsOutcome::Objected => "objection_recorded",
            RightsOutcome::RecordingsDeleted { .. } => "recordings_deleted",
            RightsOutcome::Rectified { .. } => "rectified",
            RightsOutcome::RectificationRefused => "rectification_refused",
            RightsOutcome::NoData => "no_data",
            RightsOutcome::Skipped
            | RightsOutcome::Scheduled { .. }
            | RightsOutcome::WindowLifted => return Ok(()),
        };
        close(&mut updated, RequestStatus::Completed, code, now);
        match outcome {
            RightsOutcome::Erased { .. } if subject.is_none() => {
                // Calls without a subject: their metadata is all there was.
                updated.lead_id = None;
                updated.categories = Some(vec!["call_metadata".to_owned()]);
            }
            RightsOutcome::Erased { .. } => {
                // The proof of erasure: id, dates, categories; not whom it was about.
                updated.lead_id = None;
                // The do-not-call listing outlives the erasure (R7.1): not named as erased.
                updated.categories = Some(erased_categories().map(|c| c.code.to_owned()).collect());
            }
            RightsOutcome::Rectified { recipients } => {
                updated.recipients = Some(recipients.clone());
            }
            RightsOutcome::Held { until } => {
                updated.held_until = Some(*until);
                updated.categories = Some(
                    erased_categories()
                        .map(|c| c.code)
                        .filter(|c| !matches!(*c, "signup" | "contract"))
                        .map(str::to_owned)
                        .collect(),
                );
                updated.held_categories = Some(vec!["signup".into(), "contract".into()]);
            }
            _ => {}
        }
        let mut changes = vec![Change::Unlist(open), Change::DeleteContact];
        // The subject's request history; an erasure leaves none (under a legal hold
        // only the contract and what it needs stay).
        let erasure = matches!(
            outcome,
            RightsOutcome::Erased { .. } | RightsOutcome::Held { .. }
        );
        if let (Some(lead), false) = (subject, erasure) {
            updated.lead_id = Some(lead);
            changes.push(subject_link(&updated, lead));
        }
        // Art. 19: the CRM's notice, in the same transaction as the close. Only the lead
        // id and the event: it outlives an erased subject and goes out after it is gone.
        // A legal hold keeps our contract records, not the CRM's copy (sales has no use
        // for it under the hold): the CRM erases.
        let notice = match outcome {
            RightsOutcome::Rectified { .. } => Some(domain::crm::CrmEventType::Rectified),
            RightsOutcome::Restricted => Some(domain::crm::CrmEventType::Restricted),
            RightsOutcome::Objected => Some(domain::crm::CrmEventType::Objected),
            RightsOutcome::Erased { .. } | RightsOutcome::Held { .. } => {
                Some(domain::crm::CrmEventType::Erased)
            }
            _ => None,
        };
        if let (true, Some(kind), Some(lead)) = (self.crm, notice, subject) {
            changes.push(Change::Crm(crate::crm::CrmEvent::notice(
                kind, lead, id, now,
            )));
        }
        let action = format!("dsar.{code}");
        if self
            .store
            .commit(&updated, Some(old), changes, "dsar-worker", &action, now)
            .await?
            == Commit::Conflict
        {
            return Ok(());
        }
        if let Some(c) = contact {
            let url = format!("{}/v1/dsar/{id}", self.public_api_base_url);
            let mail = mail::completion_mail(&id.to_string(), updated.request_type, &url);
            ContactMail {
                keys: self.keys.as_ref(),
                mailer: self.mailer.as_ref(),
                store: self.store.as_ref(),
            }
            .send(&id, &c, &mail, now)
            .await;
        }
        Ok(())
    }
}

/// Where a subject's recordings and transcripts live in the recordings bucket.
fn prefixes(lead: &LeadId) -> [String; 2] {
    [
        format!("recordings/{lead}/"),
        format!("transcripts/{lead}/"),
    ]
}
