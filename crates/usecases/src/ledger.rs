//! The consent ledger's use cases (R7.6): append an event to the chain (concurrent
//! appenders never fork it), sign the day's head, verify the chain and its signatures,
//! and answer for a subject or a number who consented to what, when, how and under which
//! text. The chain and its checks are in `domain::ledger`; the store and the signer are
//! ports.
//!
//! A failed append fails the request, which is retried. The recording consent, the
//! withdrawal and the objection are appended before the write that acts on them; the
//! sign-up consent right after the lead is stored (before that the subject has no id
//! that a retry would keep), and a retried sign-up of the same person appends it then.
//! An append whose entry is already the chain's head (same fields: a retry whose first
//! answer was lost) is not repeated; a retry at a later time is a second, true entry.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::clock::Clock;
use domain::ledger::{
    self, HeadVerifier, How, LedgerEntry, LedgerEvent, LedgerFault, LedgerRecord, ProofLine,
    SignedHead, Verified,
};
use domain::LeadId;

use crate::ports::{KeyError, Retry, StoreError};

/// Where the chain and the signed heads are kept.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// The last entry (consistent read); `None` for an empty ledger.
    async fn last(&self) -> Result<Option<LedgerEntry>, StoreError>;
    /// Writes `entry` at its sequence number only if that number is free; `false` when
    /// another appender took it (nothing written).
    async fn put_next(&self, entry: &LedgerEntry) -> Result<bool, StoreError>;
    /// Every entry, in sequence order.
    async fn entries(&self) -> Result<Vec<LedgerEntry>, StoreError>;
    /// Stores a day's signed head unless that day has one; `false` then.
    async fn put_head(&self, head: &SignedHead) -> Result<bool, StoreError>;
    /// The signed head of `date`, if any.
    async fn head(&self, date: NaiveDate) -> Result<Option<SignedHead>, StoreError>;
    /// Every signed head.
    async fn heads(&self) -> Result<Vec<SignedHead>, StoreError>;
}

/// The asymmetric key that signs the daily heads (KMS, ECC_NIST_P256).
#[async_trait]
pub trait HeadSigner: Send + Sync {
    /// ECDSA P-256 / SHA-256 signature (DER) of `message`.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// The public key as DER SubjectPublicKeyInfo.
    async fn public_key(&self) -> Result<Vec<u8>, KeyError>;
    /// The key's id (stored with each head).
    fn key_id(&self) -> &str;
}

/// The ledger with its signing key (the head job signs with it; staff read its public
/// half).
pub type SignedLedger = (Arc<dyn LedgerStore>, Arc<dyn HeadSigner>);

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger store failed")]
    Store(#[from] StoreError),
    #[error("signing key failed")]
    Key(#[from] KeyError),
    #[error("the append kept losing the race to concurrent appenders")]
    Contention,
    #[error("the public key is not an ECDSA P-256 key")]
    BadPublicKey,
}

impl LedgerError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Key(e) => e.retry,
            Self::Contention => Retry::Transient,
            Self::BadPublicKey => Retry::Permanent,
        }
    }

    /// As a store failure, for callers whose errors know only stores (the append is a
    /// store write); the retry hint is kept.
    pub fn into_store(self) -> StoreError {
        match self {
            Self::Store(s) => s,
            other => StoreError {
                operation: "ledger_append",
                retry: other.retry(),
                source: Some(Box::new(other)),
            },
        }
    }
}

/// How often an append re-reads the head after losing the race.
const APPEND_ATTEMPTS: u32 = 50;

/// Appends to the ledger.
pub struct ConsentLedger {
    store: Arc<dyn LedgerStore>,
    actor: String,
}

impl ConsentLedger {
    /// `actor` names the writing part of the system (`signup`, `telephony-webhook`,
    /// `dsar-worker`, ...), never a person.
    pub fn new(store: Arc<dyn LedgerStore>, actor: impl Into<String>) -> Self {
        Self {
            store,
            actor: actor.into(),
        }
    }

    /// Appends one event. The entry takes the next sequence number with a conditional
    /// write; losing the race to another appender re-reads the head and chains after
    /// it, so concurrent appends form one chain.
    pub async fn append(
        &self,
        subject: Option<LeadId>,
        number: Option<String>,
        at: DateTime<Utc>,
        how: How,
        event: LedgerEvent,
    ) -> Result<LedgerEntry, LedgerError> {
        let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        let record = LedgerRecord {
            subject,
            number,
            at,
            how,
            actor: self.actor.clone(),
            event,
        };
        let fields = record.to_fields();
        for attempt in 0..APPEND_ATTEMPTS {
            let last = self.store.last().await?;
            // A retried request whose append went through (the answer lost) finds its
            // own entry at the head: the same event is not appended twice.
            if let Some(last) = last.as_ref().filter(|l| l.fields == fields) {
                return Ok(last.clone());
            }
            let entry = LedgerEntry::chain(last.as_ref(), &record);
            if self.store.put_next(&entry).await? {
                tracing::info!(
                    seq = entry.seq,
                    kind = record.event.kind(),
                    "ledger entry appended"
                );
                return Ok(entry);
            }
            // Spread competing appenders apart a little (no randomness needed: they
            // retry at once, only one wins each number).
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt % 8) * 3)).await;
        }
        Err(LedgerError::Contention)
    }
}

/// Signs the current head for `date` (the job's day in Europe/Berlin). Idempotent: a day
/// that has a head keeps it. An empty ledger's head signs sequence 0 (the genesis).
pub async fn sign_head(
    store: &dyn LedgerStore,
    signer: &dyn HeadSigner,
    date: NaiveDate,
) -> Result<SignedHead, LedgerError> {
    if let Some(head) = store.head(date).await? {
        return Ok(head);
    }
    let (seq, hash) = match store.last().await? {
        Some(e) => (e.seq, e.hash),
        None => (0, ledger::GENESIS),
    };
    let signature = signer.sign(&ledger::head_message(date, seq, &hash)).await?;
    let head = SignedHead {
        date,
        seq,
        hash,
        key_id: signer.key_id().to_owned(),
        signature,
    };
    if store.put_head(&head).await? {
        tracing::info!(seq, "ledger head signed");
        Ok(head)
    } else {
        // A concurrent run signed the day first.
        Ok(store.head(date).await?.unwrap_or(head))
    }
}

/// The ledger as read and checked.
#[derive(Debug)]
pub struct Checked {
    pub entries: Vec<LedgerEntry>,
    /// The verification result: the summary, or the first fault.
    pub result: Result<Verified, LedgerFault>,
}

/// Reads the whole ledger and verifies the chain and every signed head with `key`.
pub async fn check(
    store: &dyn LedgerStore,
    key: &dyn HeadVerifier,
) -> Result<Checked, LedgerError> {
    let (entries, heads) = tokio::try_join!(store.entries(), store.heads())?;
    let result = ledger::verify(&entries, &heads, key);
    Ok(Checked { entries, result })
}

/// The answer for a subject (or a number): the verification result and the history.
#[derive(Debug, serde::Serialize)]
pub struct ConsentHistory {
    /// `true` when the whole chain and every signature verified.
    pub verified: bool,
    /// The first fault, when not verified (its sequence number and what is wrong).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_seq: Option<u64>,
    pub entries_checked: u64,
    pub signed_through: u64,
    pub events: Vec<ProofLine>,
    /// The §7a UWG proof of the number (the one asked for, else the number of the
    /// subject's latest sign-up consent): granted when, under which text, last used, and
    /// kept until five years after that use (R3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_consent: Option<PhoneConsent>,
}

/// The §7a proof as answered.
#[derive(Debug, serde::Serialize)]
pub struct PhoneConsent {
    #[serde(flatten)]
    pub proof: ledger::PhoneConsentProof,
    pub keep_until: Option<DateTime<Utc>>,
}

/// Verifies the ledger and answers who consented to what, when, how and under which
/// text, for `subject` or `number` (a phone blind index). A ledger that fails
/// verification still answers (marked unverified, with the first bad entry), so staff
/// see both the claim and that it cannot be relied on.
pub async fn history(
    store: &dyn LedgerStore,
    key: &dyn HeadVerifier,
    subject: Option<&LeadId>,
    number: Option<&str>,
) -> Result<ConsentHistory, LedgerError> {
    let checked = check(store, key).await?;
    let (verified, fault, summary) = match &checked.result {
        Ok(v) => (true, None, v.clone()),
        Err(f) => (
            false,
            Some(f.clone()),
            Verified {
                entries: checked.entries.len() as u64,
                heads: 0,
                signed_through: 0,
                unsigned: checked.entries.len() as u64,
            },
        ),
    };
    let events = ledger::proof_for(&checked.entries, &summary, subject, number);
    let proof_number = number.map(str::to_owned).or_else(|| {
        events
            .iter()
            .rev()
            .find(|l| l.event == "signup_consent")
            .and_then(|l| l.number.clone())
    });
    let phone_consent = proof_number
        .and_then(|n| ledger::phone_consent_proof(&events, &n))
        .map(|proof| PhoneConsent {
            keep_until: proof.keep_until(),
            proof,
        });
    Ok(ConsentHistory {
        phone_consent,
        verified,
        fault_seq: fault.as_ref().map(LedgerFault::seq),
        fault: fault.map(|f| f.to_string()),
        entries_checked: summary.entries,
        signed_through: summary.signed_through,
        events,
    })
}

/// A verifier over the signer's public key (for callers that hold a [`HeadSigner`]).
pub async fn public_key_of(signer: &dyn HeadSigner) -> Result<ledger::P256PublicKey, LedgerError> {
    ledger::P256PublicKey::from_spki_der(&signer.public_key().await?)
        .ok_or(LedgerError::BadPublicKey)
}

/// The day a head is signed for: the date in Europe/Berlin at `now`.
pub fn head_date(now: DateTime<Utc>) -> NaiveDate {
    domain::retention::berlin_date(now)
}

/// The clock-bound daily job: signs today's head.
pub async fn sign_today(
    store: &dyn LedgerStore,
    signer: &dyn HeadSigner,
    clock: &dyn Clock,
) -> Result<SignedHead, LedgerError> {
    sign_head(store, signer, head_date(clock.now())).await
}
