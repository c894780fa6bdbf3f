//! The do-not-call list (R7.1, §7 UWG): numbers that are never called again.
//!
//! A number is listed by its blind index only (the keyed HMAC the leads' phone lookup
//! uses), with the date it was first listed and the sources that listed it, nothing
//! else: no lead id, no call id, no name. Sources: the subject's objection (R4.8, through
//! the data-subject request route), the person's objection during a call (the agent's
//! `record_objection` tool), a "no" on the line to "did you sign up?" (`confirm_signup`),
//! and staff.
//!
//! Listing is idempotent and keeps the first date; a later source is added to the entry
//! (each source is a reason the number stays listed, and the proof of why we did not
//! call). A lift keeps the entry and its sources and records when and why it was lifted;
//! listing it again clears the lift. The entry belongs to no subject: erasure (DSAR and
//! the retention sweep) leaves it in place, it carries no TTL and no expiry, because the
//! objection must be honoured for as long as the number may be called (Art. 21(3) GDPR,
//! §7 UWG); keeping it is a legal obligation (Art. 6(1)(c), Art. 17(3)(b) GDPR). The
//! Art. 15 information and the erasure outcome say so.
//!
//! Only fresh consent proven from the number itself lifts a listing (see
//! `telephony::tools`): an inbound call from the listed number, in which the person
//! confirms the sign-up on the line. A stranger typing the number into the form is no
//! proof; staff may lift on written proof.
//!
//! Every listing and lift is audited (`dnc.listed_<source>`, `dnc.lifted_<reason>`)
//! without the number, the lead or the call: the audit trail cannot be joined to an
//! entry. [`DoNotCallList::list`] and [`DoNotCallList::lift`] are the only places where
//! a listing changes (the consent ledger appends its events there).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use domain::crypto::BlindIndex;
use domain::Clock;

use crate::ports::StoreError;
use crate::telephony::ports::AuditTrail;

/// Why a number was listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DncSource {
    /// The subject's objection through the data-subject request route (R4.8).
    Objection,
    /// The person objected during a call (`record_objection`).
    CallObjection,
    /// The person said on the line that they never signed up (`confirm_signup` false).
    NeverSignedUp,
    /// Staff listed it.
    Staff,
}

impl DncSource {
    pub const ALL: [DncSource; 4] = [
        Self::Objection,
        Self::CallObjection,
        Self::NeverSignedUp,
        Self::Staff,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Objection => "objection",
            Self::CallObjection => "call_objection",
            Self::NeverSignedUp => "never_signed_up",
            Self::Staff => "staff",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    fn audit_action(self) -> &'static str {
        match self {
            Self::Objection => "dnc.listed_objection",
            Self::CallObjection => "dnc.listed_call_objection",
            Self::NeverSignedUp => "dnc.listed_never_signed_up",
            Self::Staff => "dnc.listed_staff",
        }
    }
}

/// Why a listing was lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiftReason {
    /// The person confirmed the sign-up in an inbound call from the listed number.
    InboundConfirmation,
    /// Staff lifted it (on written proof of fresh consent).
    Staff,
}

impl LiftReason {
    pub fn code(self) -> &'static str {
        match self {
            Self::InboundConfirmation => "inbound_confirmation",
            Self::Staff => "staff",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [Self::InboundConfirmation, Self::Staff]
            .into_iter()
            .find(|s| s.code() == code)
    }

    fn audit_action(self) -> &'static str {
        match self {
            Self::InboundConfirmation => "dnc.lifted_inbound_confirmation",
            Self::Staff => "dnc.lifted_staff",
        }
    }
}

/// One entry of the list: dates and sources, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncEntry {
    /// When the number was first listed (kept through later listings and lifts).
    pub listed_at: DateTime<Utc>,
    /// Every source that listed it.
    pub sources: BTreeSet<DncSource>,
    /// When and why the listing was lifted; `None` while listed.
    pub lifted: Option<(DateTime<Utc>, LiftReason)>,
}

impl DncEntry {
    /// Whether the number must not be called.
    pub fn listed(&self) -> bool {
        self.lifted.is_none()
    }
}

/// The list's store, keyed by the number's blind index.
#[async_trait]
pub trait DoNotCall: Send + Sync {
    async fn entry(&self, phone: &BlindIndex) -> Result<Option<DncEntry>, StoreError>;
    /// Lists `phone` for `source`: creates the entry (first date `at`), adds a new source,
    /// or lists a lifted entry again (the lift cleared, first date kept). `false` when
    /// nothing changed (already listed for this source).
    async fn list(
        &self,
        phone: &BlindIndex,
        source: DncSource,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Lifts a listed entry (kept, with the lift's date and reason); `false` when it is
    /// not listed.
    async fn lift(
        &self,
        phone: &BlindIndex,
        reason: LiftReason,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The list as the use cases use it: each change audited.
#[derive(Clone)]
pub struct DoNotCallList {
    store: Arc<dyn DoNotCall>,
    audit: Arc<dyn AuditTrail>,
    clock: Arc<dyn Clock>,
}

impl DoNotCallList {
    pub fn new(
        store: Arc<dyn DoNotCall>,
        audit: Arc<dyn AuditTrail>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            audit,
            clock,
        }
    }

    /// Whether `phone` is listed now.
    pub async fn is_listed(&self, phone: &BlindIndex) -> Result<bool, StoreError> {
        Ok(self.store.entry(phone).await?.is_some_and(|e| e.listed()))
    }

    /// The entry of `phone`, listed or lifted.
    pub async fn entry(&self, phone: &BlindIndex) -> Result<Option<DncEntry>, StoreError> {
        self.store.entry(phone).await
    }

    /// Lists `phone` (idempotent); audited when something changed. `actor` names the
    /// function or staff role acting; neither the number nor the subject is audited.
    pub async fn list(
        &self,
        phone: &BlindIndex,
        source: DncSource,
        actor: &'static str,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let changed = self.store.list(phone, source, now).await?;
        if changed {
            self.audit
                .record(actor, source.audit_action(), None, None, now)
                .await?;
            tracing::info!(source = source.code(), "number listed as do-not-call");
        }
        Ok(changed)
    }

    /// Lifts the listing of `phone`, if listed; audited.
    pub async fn lift(
        &self,
        phone: &BlindIndex,
        reason: LiftReason,
        actor: &'static str,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let changed = self.store.lift(phone, reason, now).await?;
        if changed {
            self.audit
                .record(actor, reason.audit_action(), None, None, now)
                .await?;
            tracing::info!(reason = reason.code(), "do-not-call listing lifted");
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in DncSource::ALL {
            assert_eq!(DncSource::parse(s.code()), Some(s));
        }
        for r in [LiftReason::InboundConfirmation, LiftReason::Staff] {
            assert_eq!(LiftReason::parse(r.code()), Some(r));
        }
        assert_eq!(DncSource::parse("stranger"), None);
    }
}
