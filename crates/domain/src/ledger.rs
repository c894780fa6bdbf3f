//! The consent ledger (R7.6): every consent event appended to a hash chain, each day's
//! head signed with an asymmetric key, so the proof of who consented to what, when, how
//! and under which text can be checked by anyone holding the entries and the public key.
//!
//! Entries hold no plaintext personal data: they outlive the subject's erasure as the
//! §7a UWG proof (R3 "phone-consent proof"), so they name the subject by its opaque lead
//! id and the number by its blind index only.
//!
//! An entry is a flat map of field names to strings (what the store keeps, attribute for
//! attribute). Its canonical encoding is the sorted fields, each length-prefixed, after a
//! format tag, the sequence number and the previous hash; its hash is
//! `SHA-256(prev_hash || canonical)`. Any change of a field, a hash, the order or a
//! removed entry breaks the chain at the first bad sequence number; a chain rewritten
//! from some entry on (hashes recomputed) no longer matches the signed daily heads.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::LeadId;

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first entry.
pub const GENESIS: Hash = [0; 32];

/// Tag of the entry encoding; a new encoding gets a new tag.
const ENTRY_FORMAT: &[u8] = b"polly-consent-ledger/entry/v1";
/// Tag of the signed head encoding.
const HEAD_FORMAT: &[u8] = b"polly-consent-ledger/head/v1";

/// The consent texts shown to people, by version (the sign-up form's checkbox text, under
/// `texts/de/consent/<version>.txt`). A ledger entry names the version and the SHA-256 of
/// the exact text, so the proof can show the text and show that it was not changed.
const CONSENT_TEXTS: &[(&str, &str)] = &[(
    "2024-04-08",
    include_str!("../texts/de/consent/2024-04-08.txt"),
)];

/// The consent text of `version`, as shown on the form.
pub fn consent_text(version: &str) -> Option<&'static str> {
    CONSENT_TEXTS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, t)| *t)
}

/// Hex SHA-256 of a consent text.
pub fn text_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The consent text whose hash is `sha256_hex`, with its version.
pub fn consent_text_by_hash(sha256_hex: &str) -> Option<(&'static str, &'static str)> {
    CONSENT_TEXTS
        .iter()
        .find(|(_, t)| text_sha256(t) == sha256_hex)
        .copied()
}

/// How an event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The sign-up form.
    WebForm,
    /// A tool call of the agent during the call (`record_consent`, ...).
    ToolCall,
    /// The provider's post-call analysis.
    Analysis,
    /// A data-subject request (R4).
    Dsar,
    /// A staff action.
    Staff,
}

impl How {
    pub fn code(self) -> &'static str {
        match self {
            Self::WebForm => "web_form",
            Self::ToolCall => "tool_call",
            Self::Analysis => "analysis",
            Self::Dsar => "dsar",
            Self::Staff => "staff",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::WebForm,
            Self::ToolCall,
            Self::Analysis,
            Self::Dsar,
            Self::Staff,
        ]
        .into_iter()
        .find(|h| h.code() == s)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEvent {
    /// Consent to be called, given on the sign-up form, under `text_version`; the hash
    /// of the exact text shown (`None` when the repository holds no text of the version).
    SignupConsent {
        text_version: String,
        text_sha256: Option<String>,
    },
    /// The person confirmed on the line that they signed up (the opt-in for the number).
    OptinConfirmedOnLine { call_id: String },
    /// The recording consent asked at the start of a call: granted or refused.
    RecordingConsent {
        granted: bool,
        call_id: String,
        agent_version: Option<String>,
    },
    /// The recording consent withdrawn (Art. 7(3), R4.9).
    ConsentWithdrawn,
    /// An objection to the processing (Art. 21, R4.8).
    Objection,
    /// The number put on the do-not-call list (R7.1).
    DncListed,
    /// The number taken off the do-not-call list after fresh consent from it (R7.1).
    DncLifted,
}

impl LedgerEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SignupConsent { .. } => "signup_consent",
            Self::OptinConfirmedOnLine { .. } => "optin_confirmed_on_line",
            Self::RecordingConsent { .. } => "recording_consent",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::Objection => "objection",
            Self::DncListed => "dnc_listed",
            Self::DncLifted => "dnc_lifted",
        }
    }

    /// The sign-up consent event for the text version shown, with the text's hash.
    pub fn signup_consent(text_version: &str) -> Self {
        Self::SignupConsent {
            text_version: text_version.to_owned(),
            text_sha256: consent_text(text_version).map(text_sha256),
        }
    }

    /// The call the event happened in, if any.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::OptinConfirmedOnLine { call_id } | Self::RecordingConsent { call_id, .. } => {
                Some(call_id)
            }
            _ => None,
        }
    }
}

/// One consent event as appended (before it is chained).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// The subject (opaque lead id), when the event concerns one.
    pub subject: Option<LeadId>,
    /// The phone number's blind index, when the event concerns a number.
    pub number: Option<String>,
    /// When it happened (kept to the millisecond).
    pub at: DateTime<Utc>,
    pub how: How,
    /// Which part of the system (or which staff role) wrote it: no person's name.
    pub actor: String,
    pub event: LedgerEvent,
}

/// Why stored fields are not a ledger record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger field {0} is missing or malformed")]
pub struct FieldError(pub &'static str);

impl LedgerRecord {
    /// The record as the flat fields the store keeps and the hash covers.
    pub fn to_fields(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            f.insert(k.to_owned(), v);
        };
        if let Some(s) = &self.subject {
            put("subject", s.to_string());
        }
        if let Some(n) = &self.number {
            put("number", n.clone());
        }
        put("at", self.at.to_rfc3339_opts(SecondsFormat::Millis, true));
        put("how", self.how.code().to_owned());
        put("actor", self.actor.clone());
        put("event", self.event.kind().to_owned());
        match &self.event {
            LedgerEvent::SignupConsent {
                text_version,
                text_sha256,
            } => {
                put("text_version", text_version.clone());
                if let Some(h) = text_sha256 {
                    put("text_sha256", h.clone());
                }
            }
            LedgerEvent::OptinConfirmedOnLine { call_id } => put("call_id", call_id.clone()),
            LedgerEvent::RecordingConsent {
                granted,
                call_id,
                agent_version,
            } => {
                put("granted", granted.to_string());
                put("call_id", call_id.clone());
                if let Some(v) = agent_version {
                    put("agent_version", v.clone());
                }
            }
            LedgerEvent::ConsentWithdrawn
            | LedgerEvent::Objection
            | LedgerEvent::DncListed
            | LedgerEvent::DncLifted => {}
        }
        f
    }

    /// Parses stored fields back.
    pub fn from_fields(f: &BTreeMap<String, String>) -> Result<Self, FieldError> {
        let get = |k: &'static str| f.get(k).ok_or(FieldError(k));
        let subject = match f.get("subject") {
            Some(s) => Some(LeadId::parse(s).map_err(|_| FieldError("subject"))?),
            None => None,
        };
        let at = DateTime::parse_from_rfc3339(get("at")?)
            .map_err(|_| FieldError("at"))?
            .with_timezone(&Utc);
        let how = How::parse(get("how")?).ok_or(FieldError("how"))?;
        let call_id = || get("call_id").cloned();
        let event = match get("event")?.as_str() {
            "signup_consent" => LedgerEvent::SignupConsent {
                text_version: get("text_version")?.clone(),
                text_sha256: f.get("text_sha256").cloned(),
            },
            "optin_confirmed_on_line" => LedgerEvent::OptinConfirmedOnLine {
                call_id: call_id()?,
            },
            "recording_consent" => LedgerEvent::RecordingConsent {
                granted: match get("granted")?.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(FieldError("granted")),
                },
                call_id: call_id()?,
                agent_version: f.get("agent_version").cloned(),
            },
            "consent_withdrawn" => LedgerEvent::ConsentWithdrawn,
            "objection" => LedgerEvent::Objection,
            "dnc_listed" => LedgerEvent::DncListed,
            "dnc_lifted" => LedgerEvent::DncLifted,
            _ => return Err(FieldError("event")),
        };
        Ok(Self {
            subject,
            number: f.get("number").cloned(),
            at,
            how,
            actor: get("actor")?.clone(),
            event,
        })
    }
}

/// One chained entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: u64,
    pub prev_hash: Hash,
    pub fields: BTreeMap<String, String>,
    pub hash: Hash,
}

impl LedgerEntry {
    /// Chains `record` after the entry with `prev` (`None`: the first entry, seq 1).
    pub fn chain(prev: Option<&LedgerEntry>, record: &LedgerRecord) -> Self {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash),
            None => (1, GENESIS),
        };
        let fields = record.to_fields();
        let hash = entry_hash(seq, &prev_hash, &fields);
        Self {
            seq,
            prev_hash,
            fields,
            hash,
        }
    }

    /// The record the entry holds.
    pub fn record(&self) -> Result<LedgerRecord, FieldError> {
        LedgerRecord::from_fields(&self.fields)
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The canonical bytes of an entry's content: format tag, sequence number, then every
/// field in key order, keys and values length-prefixed (no two different entries share an
/// encoding).
pub fn canonical(seq: u64, fields: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    push_bytes(&mut out, ENTRY_FORMAT);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(fields.len() as u64).to_be_bytes());
    for (k, v) in fields {
        push_bytes(&mut out, k.as_bytes());
        push_bytes(&mut out, v.as_bytes());
    }
    out
}

/// `SHA-256(prev_hash || canonical)`.
pub fn entry_hash(seq: u64, prev_hash: &Hash, fields: &BTreeMap<String, String>) -> Hash {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical(seq, fields));
    h.finalize().into()
}

/// A day's head: the last entry of the chain at signing time, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// The day (Europe/Berlin) the head was signed for.
    pub date: NaiveDate,
    pub seq: u64,
    pub hash: Hash,
    /// The signing key (its id or ARN), so a verifier knows which public key to use.
    pub key_id: String,
    /// ECDSA P-256 / SHA-256 signature (DER) over [`head_message`].
    pub signature: Vec<u8>,
}

/// The bytes a head's signature covers.
pub fn head_message(date: NaiveDate, seq: u64, hash: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    push_bytes(&mut out, HEAD_FORMAT);
    push_bytes(&mut out, date.format("%Y-%m-%d").to_string().as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash);
    out
}

/// What is wrong with a ledger, at the first sequence number where it shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerFault {
    #[error("entry {expected} is missing (found {found} next)")]
    Gap { expected: u64, found: u64 },
    #[error("entry {seq} does not follow the previous entry's hash")]
    BrokenLink { seq: u64 },
    #[error("entry {seq}'s hash does not match its content")]
    BadHash { seq: u64 },
    #[error("entry {seq} is malformed ({field})")]
    Malformed { seq: u64, field: &'static str },
    #[error("the head signed for {date} names entry {seq}, which the chain does not hold")]
    HeadBeyondChain { date: NaiveDate, seq: u64 },
    #[error("the head signed for {date} does not match entry {seq}")]
    HeadMismatch { date: NaiveDate, seq: u64 },
    #[error("the signature of the head of {date} (entry {seq}) is not valid")]
    BadSignature { date: NaiveDate, seq: u64 },
}

impl LedgerFault {
    /// The sequence number where the fault shows.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Gap { expected, .. } => *expected,
            Self::BrokenLink { seq }
            | Self::BadHash { seq }
            | Self::Malformed { seq, .. }
            | Self::HeadBeyondChain { seq, .. }
            | Self::HeadMismatch { seq, .. }
            | Self::BadSignature { seq, .. } => *seq,
        }
    }
}

/// Checks a head signature; implemented over the public key ([`P256PublicKey`]).
pub trait HeadVerifier: Send + Sync {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// An ECDSA P-256 public key, from the DER SubjectPublicKeyInfo that KMS `GetPublicKey`
/// returns: a verifier needs no KMS permission beyond reading the public key, or none at
/// all when it is given the key file.
pub struct P256PublicKey {
    point: Vec<u8>,
}

/// The fixed DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

impl P256PublicKey {
    /// Parses a DER SubjectPublicKeyInfo of a P-256 key; `None` for anything else.
    pub fn from_spki_der(der: &[u8]) -> Option<Self> {
        if der.len() != P256_SPKI_PREFIX.len() + 64 || !der.starts_with(&P256_SPKI_PREFIX) {
            return None;
        }
        Some(Self {
            point: der[P256_SPKI_PREFIX.len() - 1..].to_vec(),
        })
    }
}

impl HeadVerifier for P256PublicKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(message, signature)
        .is_ok()
    }
}

/// What a verified ledger holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub heads: usize,
    /// The last entry covered by a valid signed head (0: none).
    pub signed_through: u64,
    /// Entries after the last signed head: chained, not yet signed (they are protected
    /// by the next day's head; until then a rewrite of them alone cannot be detected).
    pub unsigned: u64,
}

/// Verifies a chain (entries in sequence order, from 1) and its signed heads. Returns the
/// first fault found, the lowest sequence number first.
pub fn verify(
    entries: &[LedgerEntry],
    heads: &[SignedHead],
    key: &dyn HeadVerifier,
) -> Result<Verified, LedgerFault> {
    let mut prev = GENESIS;
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        if e.seq != expected {
            return Err(LedgerFault::Gap {
                expected,
                found: e.seq,
            });
        }
        if e.prev_hash != prev {
            return Err(LedgerFault::BrokenLink { seq: e.seq });
        }
        if entry_hash(e.seq, &e.prev_hash, &e.fields) != e.hash {
            return Err(LedgerFault::BadHash { seq: e.seq });
        }
        if let Err(FieldError(field)) = e.record() {
            return Err(LedgerFault::Malformed { seq: e.seq, field });
        }
        prev = e.hash;
    }
    let mut heads: Vec<&SignedHead> = heads.iter().collect();
    heads.sort_by_key(|h| (h.seq, h.date));
    let mut signed_through = 0;
    for h in &heads {
        if !key.verify(&head_message(h.date, h.seq, &h.hash), &h.signature) {
            return Err(LedgerFault::BadSignature {
                date: h.date,
                seq: h.seq,
            });
        }
        // A head of an empty ledger (seq 0) signs the genesis.
        let at = match h.seq {
            0 => GENESIS,
            s => match entries.get(s as usize - 1) {
                Some(e) => e.hash,
                None => {
                    return Err(LedgerFault::HeadBeyondChain {
                        date: h.date,
                        seq: h.seq,
                    })
                }
            },
        };
        if at != h.hash {
            return Err(LedgerFault::HeadMismatch {
                date: h.date,
                seq: h.seq,
            });
        }
        signed_through = signed_through.max(h.seq);
    }
    let total = entries.len() as u64;
    Ok(Verified {
        entries: total,
        heads: heads.len(),
        signed_through,
        unsigned: total - signed_through,
    })
}

/// One line of a subject's consent history: what, when, how, under which text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProofLine {
    pub seq: u64,
    pub event: &'static str,
    pub at: DateTime<Utc>,
    pub how: &'static str,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_sha256: Option<String>,
    /// The exact consent text, when the repository holds the text with that hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'static str>,
    /// Whether a valid signed head covers this entry.
    pub signed: bool,
}

/// A subject's (or a number's) consent history from a verified ledger: every entry that
/// names the subject, or the number, or a call of theirs (the live `record_consent` tool
/// call knows only the call), in chain order.
pub fn proof_for(
    entries: &[LedgerEntry],
    verified: &Verified,
    subject: Option<&LeadId>,
    number: Option<&str>,
) -> Vec<ProofLine> {
    let names = |r: &LedgerRecord| {
        subject.is_some_and(|s| r.subject.as_ref() == Some(s))
            || number.is_some_and(|n| r.number.as_deref() == Some(n))
    };
    let calls: std::collections::BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.record().ok())
        .filter(|r| names(r))
        .filter_map(|r| r.event.call_id().map(str::to_owned))
        .collect();
    entries
        .iter()
        .filter_map(|e| {
            let r = e.record().ok()?;
            let hit = names(&r) || r.event.call_id().is_some_and(|c| calls.contains(c));
            if !hit {
                return None;
            }
            let (text_version, text_sha256, text) = match &r.event {
                LedgerEvent::SignupConsent {
                    text_version,
                    text_sha256,
                } => (
                    Some(text_version.clone()),
                    text_sha256.clone(),
                    text_sha256
                        .as_deref()
                        .and_then(consent_text_by_hash)
                        .map(|(_, t)| t),
                ),
                _ => (None, None, None),
            };
            Some(ProofLine {
                seq: e.seq,
                event: r.event.kind(),
                at: r.at,
                how: r.how.code(),
                actor: r.actor.clone(),
                number: r.number.clone(),
                call_id: r.event.call_id().map(str::to_owned),
                granted: match r.event {
                    LedgerEvent::RecordingConsent { granted, .. } => Some(granted),
                    _ => None,
                },
                text_version,
                text_sha256,
                text,
                signed: e.seq <= verified.signed_through,
            })
        })
        .collect()
}

/// The §7a UWG proof of a number's consent to be called: the latest sign-up consent for
/// it, and the last time it was used (the latest call event under it). The proof is kept
/// five years from its last use (R3 "phone-consent proof").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PhoneConsentProof {
    pub granted_at: DateTime<Utc>,
    pub text_version: String,
    pub last_use: DateTime<Utc>,
    /// Whether the consent ended since (withdrawal, objection or do-not-call listing).
    pub ended: bool,
}

impl PhoneConsentProof {
    /// Until when the proof must be kept: five years from its last use (R3).
    pub fn keep_until(&self) -> Option<DateTime<Utc>> {
        crate::retention::add_period(
            self.last_use,
            crate::RetentionClass::PhoneConsentProof.period(),
        )
    }
}

/// The §7a proof for `number` read from the ledger, `None` when it holds no sign-up
/// consent for the number.
pub fn phone_consent_proof(lines: &[ProofLine], number: &str) -> Option<PhoneConsentProof> {
    let mut proof: Option<PhoneConsentProof> = None;
    for l in lines {
        match l.event {
            "signup_consent" if l.number.as_deref() == Some(number) => {
                proof = Some(PhoneConsentProof {
                    granted_at: l.at,
                    text_version: l.text_version.clone().unwrap_or_default(),
                    last_use: l.at,
                    ended: false,
                });
            }
            "optin_confirmed_on_line" | "recording_consent" => {
                if let Some(p) = proof.as_mut() {
                    p.last_use = p.last_use.max(l.at);
                }
            }
            "consent_withdrawn" | "objection" | "dnc_listed" => {
                if let Some(p) = proof.as_mut() {
                    p.ended = true;
                }
            }
            _ => {}
        }
    }
    proof
}

/// How to withdraw, in the receipt (reviewed text, `texts/de/consent_receipt.txt`).
const RECEIPT_WITHDRAWAL: &str = include_str!("../texts/de/consent_receipt.txt");

/// The receipt of a sign-up consent (R7.6), in German: what the person consented to (the
/// exact text of `text_version`), when, under which version, and how to withdraw. It
/// names no person and no number (the mail goes to the address given on the form).
pub fn receipt_mail(text_version: &str, given_at: DateTime<Utc>) -> crate::dsar::mail::Mail {
    use crate::dsar::mail::{date_de, escape_html};
    let when = crate::retention::berlin_time(given_at);
    let stamp = format!(
        "{} um {} Uhr",
        date_de(when.date_naive()),
        when.format("%H:%M")
    );
    let text = consent_text(text_version).map(str::trim);
    let mut paras = vec![
        "Guten Tag,".to_owned(),
        format!(
            "Sie haben am {stamp} über das Anmeldeformular auf unserer Website eingewilligt, \
             dass Polly KI Sie telefonisch kontaktiert. Diese E-Mail bestätigt Ihre \
             Einwilligung."
        ),
        format!("Fassung des Einwilligungstextes: {text_version}"),
    ];
    if let Some(t) = text {
        paras.push(format!("Ihr Einwilligungstext im Wortlaut:\n„{t}“"));
    }
    paras.push(RECEIPT_WITHDRAWAL.trim().to_owned());
    let c = crate::dsar::disclosure::CONTROLLER;
    paras.push(format!(
        "{}\n{}\n{}\nE-Mail: {}",
        c.name, c.street, c.postal_code_city, c.privacy_email
    ));
    let html = paras
        .iter()
        .map(|p| format!("<p>{}</p>", escape_html(p).replace('\n', "<br>")))
        .collect::<String>();
    crate::dsar::mail::Mail {
        subject: "Bestätigung Ihrer Einwilligung in Anrufe von Polly KI".to_owned(),
        text: paras.join("\n\n") + "\n",
        html: format!("<!DOCTYPE html><html lang=\"de\"><body>{html}</body></html>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    struct Signer {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl Signer {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self { pair, rng }
        }
        fn spki(&self) -> Vec<u8> {
            let mut der = P256_SPKI_PREFIX[..26].to_vec();
            der.extend_from_slice(self.pair.public_key().as_ref());
            der
        }
        fn head(&self, entries: &[LedgerEntry], date: &str) -> SignedHead {
            let last = entries.last().unwrap();
            let date: NaiveDate = date.parse().unwrap();
            let sig = self
                .pair
                .sign(&self.rng, &head_message(date, last.seq, &last.hash))
                .unwrap();
            SignedHead {
                date,
                seq: last.seq,
                hash: last.hash,
                key_id: "k".into(),
                signature: sig.as_ref().to_vec(),
            }
        }
    }

    fn records() -> Vec<LedgerRecord> {
        let a = LeadId::new();
        let b = LeadId::new();
        let rec = |subject: LeadId, at: &str, how: How, event: LedgerEvent| LedgerRecord {
            subject: Some(subject),
            number: Some(format!("bidx-{subject}")),
            at: t(at),
            how,
            actor: "test".into(),
            event,
        };
        vec![
            rec(
                a,
                "2026-11-28T10:00:00Z",
                How::WebForm,
                LedgerEvent::signup_consent("2024-04-08"),
            ),
            rec(
                b,
                "2026-11-28T10:01:00Z",
                How::WebForm,
                LedgerEvent::signup_consent("2024-04-08"),
            ),
            rec(
                a,
                "2026-11-28T10:05:00Z",
                How::ToolCall,
                LedgerEvent::RecordingConsent {
                    granted: true,
                    call_id: "call_1".into(),
                    agent_version: Some("3".into()),
                },
            ),
            rec(b, "2026-11-29T09:00:00Z", How::Dsar, LedgerEvent::Objection),
            rec(
                a,
                "2026-11-30T09:00:00Z",
                How::Dsar,
                LedgerEvent::ConsentWithdrawn,
            ),
        ]
    }

    fn chain(records: &[LedgerRecord]) -> Vec<LedgerEntry> {
        let mut out: Vec<LedgerEntry> = Vec::new();
        for r in records {
            let e = LedgerEntry::chain(out.last(), r);
            out.push(e);
        }
        out
    }

    fn setup() -> (Signer, P256PublicKey, Vec<LedgerEntry>, Vec<SignedHead>) {
        let signer = Signer::new();
        let key = P256PublicKey::from_spki_der(&signer.spki()).unwrap();
        let entries = chain(&records());
        let heads = vec![
            signer.head(&entries[..3], "2026-11-28"),
            signer.head(&entries[..4], "2026-11-29"),
        ];
        (signer, key, entries, heads)
    }

    /// R7.6: an untouched chain with two signed heads verifies; the fifth entry is
    /// reported as not yet signed.
    #[test]
    fn an_untouched_chain_verifies() {
        let (_, key, entries, heads) = setup();
        let v = verify(&entries, &heads, &key).unwrap();
        assert_eq!(
            v,
            Verified {
                entries: 5,
                heads: 2,
                signed_through: 4,
                unsigned: 1
            }
        );
        for (e, r) in entries.iter().zip(records()) {
            assert_eq!(e.record().unwrap().event, r.event);
        }
    }

    /// R7.6: changing any field of any entry (or adding or removing one) is detected at
    /// that entry's sequence number.
    #[test]
    fn an_altered_field_is_detected_at_its_entry() {
        let (_, key, entries, heads) = setup();
        for i in 0..entries.len() {
            let names: Vec<String> = entries[i].fields.keys().cloned().collect();
            for name in names {
                let mut bad = entries.clone();
                bad[i].fields.get_mut(&name).unwrap().push('x');
                assert_eq!(
                    verify(&bad, &heads, &key),
                    Err(LedgerFault::BadHash { seq: i as u64 + 1 }),
                    "{name} of entry {}",
                    i + 1
                );
                let mut gone = entries.clone();
                gone[i].fields.remove(&name);
                assert_eq!(verify(&gone, &heads, &key).unwrap_err().seq(), i as u64 + 1);
            }
            let mut added = entries.clone();
            added[i].fields.insert("granted".into(), "true".into());
            added[i].fields.insert("zz".into(), String::new());
            assert_eq!(
                verify(&added, &heads, &key).unwrap_err().seq(),
                i as u64 + 1
            );
        }
    }

    /// R7.6: an altered entry hash, an altered link, a removed entry and two swapped
    /// entries are each detected, naming the first bad sequence number.
    #[test]
    fn altered_hashes_removals_and_reordering_are_detected() {
        let (_, key, entries, heads) = setup();
        let mut bad = entries.clone();
        bad[1].hash[0] ^= 1;
        assert_eq!(
            verify(&bad, &heads, &key),
            Err(LedgerFault::BadHash { seq: 2 })
        );
        let mut bad = entries.clone();
        bad[2].prev_hash[31] ^= 1;
        assert_eq!(
            verify(&bad, &heads, &key),
            Err(LedgerFault::BrokenLink { seq: 3 })
        );
        let mut bad = entries.clone();
        bad.remove(1);
        assert_eq!(
            verify(&bad, &heads, &key),
            Err(LedgerFault::Gap {
                expected: 2,
                found: 3
            })
        );
        // Swapped contents keep the sequence numbers in place.
        let mut bad = entries.clone();
        let (x, y) = (bad[1].clone(), bad[2].clone());
        bad[1] = LedgerEntry { seq: 2, ..y };
        bad[2] = LedgerEntry { seq: 3, ..x };
        assert_eq!(
            verify(&bad, &heads, &key),
            Err(LedgerFault::BrokenLink { seq: 2 })
        );
        // The tail cut below a signed head.
        assert_eq!(
            verify(&entries[..2], &heads, &key),
            Err(LedgerFault::HeadBeyondChain {
                date: "2026-11-28".parse().unwrap(),
                seq: 3
            })
        );
    }

    /// R7.6: a chain rewritten from an entry on with every hash recomputed (a consistent
    /// forgery) no longer matches the signed head; a head re-pointed at the forged hash
    /// fails its signature, and a head signed with another key is rejected.
    #[test]
    fn a_rewritten_chain_and_a_forged_head_are_detected() {
        let (_, key, entries, heads) = setup();
        let mut recs = records();
        recs[2].event = LedgerEvent::RecordingConsent {
            granted: false,
            call_id: "call_1".into(),
            agent_version: Some("3".into()),
        };
        let forged = chain(&recs);
        assert_eq!(
            verify(&forged, &heads, &key),
            Err(LedgerFault::HeadMismatch {
                date: "2026-11-28".parse().unwrap(),
                seq: 3
            })
        );
        let mut forged_heads = heads.clone();
        forged_heads[0].hash = forged[2].hash;
        forged_heads[1].hash = forged[3].hash;
        assert_eq!(
            verify(&forged, &forged_heads, &key),
            Err(LedgerFault::BadSignature {
                date: "2026-11-28".parse().unwrap(),
                seq: 3
            })
        );
        let mut bad = heads.clone();
        bad[1].signature[10] ^= 1;
        assert_eq!(verify(&entries, &bad, &key).unwrap_err().seq(), 4);
        let mut bad = heads.clone();
        bad[0].date = "2026-11-27".parse().unwrap();
        assert!(matches!(
            verify(&entries, &bad, &key),
            Err(LedgerFault::BadSignature { .. })
        ));
        let other = Signer::new();
        let foreign = vec![other.head(&entries, "2026-11-30")];
        assert!(matches!(
            verify(&entries, &foreign, &key),
            Err(LedgerFault::BadSignature { .. })
        ));
    }

    /// R7.6: a subject's history names the exact consent text by version and hash, and
    /// the §7a proof of the number is read from it (granted, last use, ended).
    #[test]
    fn a_subjects_proof_shows_the_text_and_the_7a_proof() {
        let (_, key, entries, heads) = setup();
        let v = verify(&entries, &heads, &key).unwrap();
        let a = entries[0].record().unwrap().subject.unwrap();
        let lines = proof_for(&entries, &v, Some(&a), None);
        assert_eq!(
            lines.iter().map(|l| l.event).collect::<Vec<_>>(),
            ["signup_consent", "recording_consent", "consent_withdrawn"]
        );
        let text = consent_text("2024-04-08").unwrap();
        assert_eq!(lines[0].text, Some(text));
        assert_eq!(
            lines[0].text_sha256.as_deref(),
            Some(text_sha256(text).as_str())
        );
        assert_eq!(lines[1].granted, Some(true));
        assert!(lines[1].signed && !lines[2].signed);
        let number = format!("bidx-{a}");
        let proof = phone_consent_proof(&lines, &number).unwrap();
        assert_eq!(proof.granted_at, t("2026-11-28T10:00:00Z"));
        assert_eq!(proof.last_use, t("2026-11-28T10:05:00Z"));
        assert_eq!(proof.text_version, "2024-04-08");
        assert!(proof.ended);
        assert_eq!(proof.keep_until(), Some(t("2031-11-28T10:05:00Z")));
        assert_eq!(phone_consent_proof(&lines, "another"), None);
    }

    /// The public key parser takes exactly a P-256 SubjectPublicKeyInfo.
    #[test]
    fn only_a_p256_spki_is_a_key() {
        let signer = Signer::new();
        let der = signer.spki();
        assert!(P256PublicKey::from_spki_der(&der).is_some());
        assert!(P256PublicKey::from_spki_der(&der[..90]).is_none());
        let mut other_curve = der.clone();
        other_curve[22] = 0x08;
        assert!(P256PublicKey::from_spki_der(&other_curve).is_none());
    }

    /// R7.6: the receipt states when (Berlin time), the text version, the exact consent
    /// text and how to withdraw, in both parts of the mail.
    #[test]
    fn the_receipt_states_text_time_version_and_withdrawal() {
        let mail = receipt_mail("2024-04-08", t("2026-11-28T22:40:00Z"));
        let text = consent_text("2024-04-08").unwrap().trim();
        for body in [&mail.text, &mail.html] {
            assert!(body.contains("28.11.2026 um 23:40 Uhr"), "{body}");
            assert!(body.contains("Fassung des Einwilligungstextes: 2024-04-08"));
            assert!(body.contains("jederzeit mit Wirkung für die Zukunft widerrufen"));
        }
        assert!(mail.text.contains(text));
        assert!(mail.html.contains(&crate::dsar::mail::escape_html(text)));
        let unknown = receipt_mail("1999-01-01", t("2026-11-28T10:00:00Z"));
        assert!(!unknown.text.contains("Wortlaut"));
    }
}
