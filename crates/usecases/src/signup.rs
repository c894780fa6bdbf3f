//! The lead service: sign-up and read-back of a lead, composing the key service (blind
//! indexes, data keys) and the lead store. HTTP parsing lives in the sign-up function;
//! this module takes only domain types.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::{
    CreateOutcome, IdentifierKind, KeyError, KeyService, LeadStore, NewLead, Resubmission,
    ResubmitOutcome, Retry, StoreError, StoredLead,
};
use domain::clock::Clock;
use domain::crypto::CryptoError;
use domain::{
    ClientSoftware, ConsentEvidence, ConsentMethod, Email, LeadId, LeadProfile, Notes, PersonName,
    PhoneNumber, TechnicalData,
};

/// Associated data of a lead's sealed profile: binds the ciphertext to its subject.
pub fn profile_aad(id: &LeadId) -> Vec<u8> {
    format!("polly:lead:{id}:profile").into_bytes()
}

/// The plaintext inside a lead's sealed profile (format version 1).
#[derive(Serialize, Deserialize)]
struct SealedProfileV1 {
    v: u8,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<ClientSoftware>,
    accessed_at: DateTime<Utc>,
}

/// What the sign-up form delivered, parsed.
#[derive(Debug, Clone)]
pub struct SignupRequest {
    pub profile: LeadProfile,
    pub source_ip: Option<IpAddr>,
    pub client: Option<ClientSoftware>,
    pub policy_version: String,
    /// The preferred call window (R7.2), stored as a plain attribute of a new lead. A
    /// repeated sign-up (R1.4) keeps the window stored first.
    pub call_window: Option<domain::calling_hours::CallWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A new subject; a call is requested.
    Created { id: LeadId },
    /// The same person signed up again: email and phone both belong to this subject
    /// (R1.4). Contact time moved, a new consent proof stored, a call requested when due.
    Existing { id: LeadId, call_requested: bool },
    /// One identifier belongs to a subject and the other does not (unknown, or another
    /// subject's): nothing of any subject changed and no lead was created; the attempt
    /// is audited. The answer is the same as for the others (R1.6).
    Mismatch {
        by_email: Option<LeadId>,
        by_phone: Option<LeadId>,
    },
}

impl SignupOutcome {
    /// The subject the submission concerned: created, signed up again, or (mismatch) the
    /// holder of the email, else of the phone. For internal logs only.
    pub fn lead_id(&self) -> Option<LeadId> {
        match self {
            Self::Created { id } | Self::Existing { id, .. } => Some(*id),
            Self::Mismatch { by_email, by_phone } => by_email.or(*by_phone),
        }
    }

    /// On a mismatch naming two subjects, the phone's holder (the email's is [`Self::lead_id`]).
    pub fn other_lead_id(&self) -> Option<LeadId> {
        match self {
            Self::Mismatch {
                by_email: Some(a),
                by_phone: Some(b),
            } if a != b => Some(*b),
            _ => None,
        }
    }

    /// Short name for logs: `created`, `existing` or `mismatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Existing { .. } => "existing",
            Self::Mismatch { .. } => "mismatch",
        }
    }

    /// Whether this submission requested a call.
    pub fn call_requested(&self) -> bool {
        match self {
            Self::Created { .. } => true,
            Self::Existing { call_requested, .. } => *call_requested,
            Self::Mismatch { .. } => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("lead store failed")]
    Store(#[from] StoreError),
    #[error("sealing the profile failed")]
    Crypto(#[from] CryptoError),
    #[error("the sign-up kept colliding with concurrent changes")]
    Contention,
    #[error("consent ledger failed")]
    Ledger(#[from] crate::ledger::LedgerError),
}

impl SignupError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Keys(e) => e.retry,
            Self::Store(e) => e.retry,
            Self::Crypto(_) => Retry::Permanent,
            Self::Contention => Retry::Transient,
            Self::Ledger(e) => e.retry(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("lead store failed")]
    Store(#[from] StoreError),
    #[error("the stored profile does not decrypt")]
    Crypto(#[from] CryptoError),
    #[error("the stored profile is malformed")]
    Malformed,
}

/// A lead read back and decrypted.
#[derive(Debug, Clone)]
pub struct Lead {
    pub stored: StoredLead,
    pub profile: LeadProfile,
    pub technical: TechnicalData,
}

/// The consent ledger and, when mail is configured, the mailer of the receipts.
type ConsentRecording = (
    Arc<crate::ledger::ConsentLedger>,
    Option<Arc<dyn crate::ports::Mailer>>,
);

/// How many times a sign-up re-reads after losing a race to a concurrent one.
const MAX_ATTEMPTS: usize = 4;

pub struct LeadService {
    store: Arc<dyn LeadStore>,
    keys: Arc<dyn KeyService>,
    clock: Arc<dyn Clock>,
    /// The consent ledger (R7.6) and the mailer of the consent receipt; the sign-up
    /// function sets both ([`Self::with_ledger`]), other users of the service sign no one up.
    ledger: Option<ConsentRecording>,
}

impl LeadService {
    pub fn new(
        store: Arc<dyn LeadStore>,
        keys: Arc<dyn KeyService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            ledger: None,
        }
    }

    /// Appends every sign-up consent to the consent ledger before it is acted on, and
    /// mails the subject a receipt (R7.6).
    pub fn with_ledger(
        mut self,
        ledger: Arc<crate::ledger::ConsentLedger>,
        receipts: Option<Arc<dyn crate::ports::Mailer>>,
    ) -> Self {
        self.ledger = Some((ledger, receipts));
        self
    }

    /// The consent goes to the ledger right after the lead is stored: a failed append
    /// fails the sign-up (retryable), and the retry (the same person again) appends it.
    async fn append_consent(
        &self,
        id: LeadId,
        phone_index: &domain::crypto::BlindIndex,
        consent: &ConsentEvidence,
    ) -> Result<(), SignupError> {
        if let Some((ledger, _)) = &self.ledger {
            ledger
                .append(
                    Some(id),
                    Some(phone_index.as_str().to_owned()),
                    consent.given_at,
                    domain::ledger::How::WebForm,
                    domain::ledger::LedgerEvent::signup_consent(&consent.policy_version),
                )
                .await?;
        }
        Ok(())
    }

    /// The receipt of the consent, at most once per subject per 24 h: only with a call
    /// request (a new subject, or the same person again after the R1.4 cooldown), so the
    /// form cannot be used to flood someone's inbox. The answer to the form does not
    /// depend on it (R1.6); a failed mail is logged, the ledger holds the proof.
    async fn send_receipt(&self, req: &SignupRequest, consent: &ConsentEvidence) {
        if let Some((_, Some(mailer))) = &self.ledger {
            let mail = domain::ledger::receipt_mail(&consent.policy_version, consent.given_at);
            if let Err(e) = mailer.send(&req.profile.email, &mail).await {
                tracing::warn!(error = %e, "consent receipt not sent");
            }
        }
    }

    /// Signs a person up. A submission whose email and phone both belong to one subject
    /// is that subject signing up again (R1.4): its contact time moves, the consent is
    /// evidenced, a call is requested when the last is over 24 h old. A submission whose
    /// identifiers are both unknown creates a new subject with its own data key and a
    /// call request. Anything else (one identifier known, the other unknown or another
    /// subject's) changes nothing of anyone and creates nothing: knowing someone's email
    /// or number must not let a stranger move their dates, add consent for another
    /// number, or have them called; it is only audited. The profile of a known subject
    /// is never rewritten by a sign-up.
    #[tracing::instrument(skip_all, fields(lead_id = tracing::field::Empty, outcome = tracing::field::Empty))]
    pub async fn sign_up(&self, req: SignupRequest) -> Result<SignupOutcome, SignupError> {
        let now = self.clock.now();
        let email_key = req.profile.email.lookup_key();
        let (email_index, phone_index) = tokio::try_join!(
            self.keys.blind_index(IdentifierKind::Email, &email_key),
            self.keys
                .blind_index(IdentifierKind::Phone, req.profile.phone.expose()),
        )?;
        let consent = ConsentEvidence {
            contact_by_phone: true,
            policy_version: req.policy_version.clone(),
            given_at: now,
            method: ConsentMethod::WebForm,
        };
        let span = tracing::Span::current();
        for _ in 0..MAX_ATTEMPTS {
            let holders = self
                .store
                .find_holders(&email_index, &phone_index, now)
                .await?;
            if let Some(id) = holders.same_subject() {
                span.record("lead_id", tracing::field::display(id));
                let resubmission = Resubmission {
                    id,
                    phone_index: phone_index.clone(),
                    consent: consent.clone(),
                    at: now,
                };
                match self.store.resubmit(&resubmission).await? {
                    ResubmitOutcome::Gone => continue,
                    outcome => {
                        self.append_consent(id, &phone_index, &consent).await?;
                        let call_requested = outcome == ResubmitOutcome::CallRequested;
                        if call_requested {
                            self.send_receipt(&req, &consent).await;
                        }
                        span.record("outcome", "existing");
                        return Ok(SignupOutcome::Existing { id, call_requested });
                    }
                }
            }
            if !holders.is_free() {
                if let Some(id) = holders.by_email.or(holders.by_phone) {
                    span.record("lead_id", tracing::field::display(id));
                }
                let mut subjects: Vec<LeadId> = holders
                    .by_email
                    .into_iter()
                    .chain(holders.by_phone)
                    .collect();
                subjects.dedup();
                self.store.record_mismatch(&subjects, now).await?;
                span.record("outcome", "mismatch");
                return Ok(SignupOutcome::Mismatch {
                    by_email: holders.by_email,
                    by_phone: holders.by_phone,
                });
            }
            let id = LeadId::new();
            span.record("lead_id", tracing::field::display(id));
            let (data_key, wrapped_key) = self.keys.generate_data_key(&id).await?;
            let sealed_profile = data_key.seal(&profile_aad(&id), &seal_profile(&req, now))?;
            let lead = NewLead {
                id,
                wrapped_key,
                sealed_profile,
                email_index: email_index.clone(),
                phone_index: phone_index.clone(),
                consent: consent.clone(),
                signed_up_at: now,
                call_window: req.call_window,
            };
            match self.store.create_lead(&lead).await? {
                CreateOutcome::Created => {
                    self.append_consent(id, &phone_index, &consent).await?;
                    self.send_receipt(&req, &consent).await;
                    span.record("outcome", "created");
                    return Ok(SignupOutcome::Created { id });
                }
                // A concurrent sign-up took an identifier: look again.
                CreateOutcome::IdentifierTaken => continue,
            }
        }
        Err(SignupError::Contention)
    }

    /// Reads and decrypts a lead; `None` when it does not exist or is past retention.
    pub async fn read(&self, id: &LeadId) -> Result<Option<Lead>, ReadError> {
        Ok(self.read_with_key(id).await?.map(|(lead, _)| lead))
    }

    /// Like [`Self::read`], also returning the subject's data key (for exports, which
    /// open the subject's other sealed data).
    pub async fn read_with_key(
        &self,
        id: &LeadId,
    ) -> Result<Option<(Lead, domain::crypto::DataKey)>, ReadError> {
        let Some(stored) = self.store.get_lead(id, self.clock.now()).await? else {
            return Ok(None);
        };
        let key = self.keys.unwrap_data_key(id, &stored.wrapped_key).await?;
        let plaintext = key.open(&profile_aad(id), &stored.sealed_profile)?;
        let p: SealedProfileV1 =
            serde_json::from_slice(&plaintext).map_err(|_| ReadError::Malformed)?;
        let name = |s: &str| PersonName::parse(s).map_err(|_| ReadError::Malformed);
        let profile = LeadProfile {
            first_name: name(&p.first_name)?,
            last_name: name(&p.last_name)?,
            email: Email::parse(&p.email).map_err(|_| ReadError::Malformed)?,
            phone: PhoneNumber::from_trusted_e164(p.phone),
            notes: match p.notes {
                Some(n) => Notes::parse(&n).map_err(|_| ReadError::Malformed)?,
                None => None,
            },
        };
        let technical = TechnicalData {
            source_ip: p.source_ip,
            accessed_at: p.accessed_at,
            client: p.client,
        };
        Ok(Some((
            Lead {
                stored,
                profile,
                technical,
            },
            key,
        )))
    }
}

fn seal_profile(req: &SignupRequest, now: DateTime<Utc>) -> zeroize::Zeroizing<Vec<u8>> {
    let p = SealedProfileV1 {
        v: 1,
        first_name: req.profile.first_name.expose().to_owned(),
        last_name: req.profile.last_name.expose().to_owned(),
        email: req.profile.email.expose().to_owned(),
        phone: req.profile.phone.expose().to_owned(),
        notes: req.profile.notes.as_ref().map(|n| n.expose().to_owned()),
        source_ip: req.source_ip,
        client: req.client.clone(),
        accessed_at: now,
    };
    // A struct of strings serialises without error.
    zeroize::Zeroizing::new(serde_json::to_vec(&p).unwrap_or_default())
}

/// Why corrections cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CorrectionError {
    #[error("a corrected value is not valid for its field")]
    Invalid,
    #[error("the field cannot be corrected")]
    UnknownField,
}

/// The subject's profile with `corrections` applied (validated like the sign-up, R4.6),
/// sealed under the subject's key; the technical data stays as recorded.
pub fn reseal_corrected(
    lead: &Lead,
    key: &domain::crypto::DataKey,
    corrections: &std::collections::BTreeMap<String, String>,
) -> Result<(LeadProfile, Vec<u8>), CorrectionError> {
    let mut profile = lead.profile.clone();
    for (field, value) in corrections {
        match field.as_str() {
            "first_name" => {
                profile.first_name =
                    PersonName::parse(value).map_err(|_| CorrectionError::Invalid)?
            }
            "last_name" => {
                profile.last_name =
                    PersonName::parse(value).map_err(|_| CorrectionError::Invalid)?
            }
            "email" => profile.email = Email::parse(value).map_err(|_| CorrectionError::Invalid)?,
            "phone" => {
                profile.phone = PhoneNumber::parse(value).map_err(|_| CorrectionError::Invalid)?
            }
            "notes" => profile.notes = Notes::parse(value).map_err(|_| CorrectionError::Invalid)?,
            _ => return Err(CorrectionError::UnknownField),
        }
    }
    let p = SealedProfileV1 {
        v: 1,
        first_name: profile.first_name.expose().to_owned(),
        last_name: profile.last_name.expose().to_owned(),
        email: profile.email.expose().to_owned(),
        phone: profile.phone.expose().to_owned(),
        notes: profile.notes.as_ref().map(|n| n.expose().to_owned()),
        source_ip: lead.technical.source_ip,
        client: lead.technical.client.clone(),
        accessed_at: lead.technical.accessed_at,
    };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&p).unwrap_or_default());
    let sealed = key
        .seal(&profile_aad(&lead.stored.id), &plain)
        .map_err(|_| CorrectionError::Invalid)?;
    Ok((profile, sealed))
}
