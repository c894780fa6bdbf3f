//! The request life cycle (R4.1–R4.3, R4.10): intake with a one-time code, verification
//! into a request token, status and download, and the staff actions (list, extend, deny,
//! verify identity). Every change is one transaction with its audit item
//! (`ports::RequestStore::commit`).
//!
//! What a stranger can learn is nothing: intake answers the same for a known and an
//! unknown subject, unknown ids and wrong tokens get the same answer, and the code is
//! checked against a keyed hash with a constant-time comparison.

use std::collections::BTreeMap;
use std::sync::Arc;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use domain::crypto::{BlindIndex, CryptoError};
use domain::dsar::identity::Binding;
use domain::dsar::mail::{self, Mail};
use domain::dsar::{RequestStatus, RequestType};
use domain::retention::{add_period, Period};
use domain::{Clock, Email, PhoneNumber, RequestId, RetentionClass};

use super::common::{binding, ContactError, ContactMail};
pub use super::common::{contact_aad, ContactV1};
use super::ports::{ClaimLookup, RequestStore};
use super::records::{
    close, new_record, Change, CodeRecord, Commit, ContactRecord, Counter, Expiry, OpenRecord,
    RequestRecord, CONTACT_MONTHS, MAX_CODE_ATTEMPTS,
};
use crate::ports::{IdentifierKind, KeyError, KeyService, Mailer, Objects, Retry, StoreError};

/// How long a one-time code is valid (R3 "verification" class).
pub const CODE_MINUTES: u32 = 15;
/// Digits of a one-time code.
pub const CODE_DIGITS: u32 = 8;
/// Lifetime of a download link (R4.4: at most 15 minutes).
pub const DOWNLOAD_LINK_SECONDS: u64 = 15 * 60;

/// A request as submitted, parsed.
#[derive(Clone)]
pub struct Intake {
    pub request_type: RequestType,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub message: Option<String>,
    pub corrections: Option<BTreeMap<String, String>>,
    /// The caller's address as API Gateway saw it, for the per-source limits; only its
    /// keyed hash is stored, for two days.
    pub source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("request_type", &self.request_type)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DsarError {
    #[error("too many requests for this identifier today")]
    RateLimited,
    #[error("too many requests from this source today")]
    SourceRateLimited,
    #[error("the identifiers belong to different subjects")]
    AmbiguousSubject,
    #[error("unknown request or wrong token")]
    NotAuthorised,
    #[error("unknown request")]
    NotFound,
    #[error("the request is already verified")]
    AlreadyVerified,
    #[error("the request has ended")]
    Ended,
    #[error("the code has expired; the request has ended")]
    CodeExpired,
    #[error("wrong code")]
    WrongCode { remaining: u32 },
    #[error("the code was entered wrongly too often; the request has ended")]
    TooManyAttempts,
    #[error("the request is not open")]
    NotOpen,
    #[error("the request is not waiting for an identity check")]
    NoIdentityCheck,
    #[error("receipt date refused: {0}")]
    Receipt(#[from] super::requests::ReceiptError),
    #[error("extension refused: {0}")]
    Extension(#[from] domain::dsar::ExtensionError),
    #[error("the request changed concurrently")]
    Conflict,
    #[error("the erasure can no longer be cancelled")]
    TooLateToCancel,
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("sealed data does not open")]
    Crypto(#[from] CryptoError),
}

impl From<ContactError> for DsarError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Keys(k) => Self::Keys(k),
            ContactError::Crypto(c) => Self::Crypto(c),
            ContactError::Mail(s) => Self::Store(s),
        }
    }
}

impl DsarError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Keys(e) => e.retry,
            Self::Conflict => Retry::Transient,
            _ => Retry::Permanent,
        }
    }
}

/// The answer to a successful verification.
pub struct Verified {
    /// The request token; `None` when the request had one already (the requester got
    /// it when their code was verified; staff checks do not replace it).
    pub token: Option<String>,
    pub status: RequestStatus,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("token", &"<redacted>")
            .field("status", &self.status)
            .finish()
    }
}

/// What the status route shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub request_id: String,
    #[serde(rename = "type")]
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: DateTime<Utc>,
    pub due_at: NaiveDate,
    pub days_left: i64,
    pub extended: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Erasure: the categories erased, and what a legal hold keeps (restricted) until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased_categories: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_categories: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_expires_at: Option<DateTime<Utc>>,
    /// An erasure waiting in its cancel window: when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure_scheduled_at: Option<DateTime<Utc>>,
}

/// An open request in the staff list.
#[derive(Debug, Clone, Serialize)]
pub struct OpenView {
    pub request_id: String,
    #[serde(rename = "type")]
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: DateTime<Utc>,
    pub due_at: NaiveDate,
    pub days_left: i64,
    pub overdue: bool,
    pub extended: bool,
    /// A failed request's reason code (it is listed first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// How it reached us (`online`, or the channel staff entered it from).
    pub channel: super::records::Channel,
    /// In progress without a change for [`super::records::STUCK_AFTER_MINUTES`]: listed
    /// right after the failed ones, and staff can retry it.
    pub stuck: bool,
    /// An erasure waiting in its cancel window: when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure_scheduled_at: Option<DateTime<Utc>>,
}

pub struct DsarService {
    pub store: Arc<dyn RequestStore>,
    /// Who holds an identifier (the live claims), to bind a request to its subject.
    pub claims: Arc<dyn ClaimLookup>,
    pub keys: Arc<dyn KeyService>,
    pub mailer: Arc<dyn Mailer>,
    pub exports: Arc<dyn Objects>,
    pub clock: Arc<dyn Clock>,
    /// Requests per identifier, source and day (R4.1's abuse limit, on top of API
    /// throttling): a stranger's requests do not use up the subject's own.
    pub daily_limit: u32,
    /// Requests per source address and day, whatever they name.
    pub source_daily_limit: u32,
    /// Requests (so code mails) per identifier and day from all sources together: a cap
    /// on what reaches one mailbox.
    pub identifier_daily_limit: u32,
    /// Base URL of the public API, for links in emails.
    pub public_api_base_url: String,
    /// How long a verified erasure waits, cancellable, before the worker erases
    /// (`erasure_window`; zero: at once).
    pub erasure_cancel_window: Duration,
}

/// A uniformly random code of [`CODE_DIGITS`] digits from the OS CSPRNG.
pub fn new_code() -> String {
    let modulus = 10u32.pow(CODE_DIGITS);
    // Rejection sampling: no modulo bias.
    let limit = u32::MAX - (u32::MAX % modulus);
    loop {
        let v = OsRng.next_u32();
        if v < limit {
            return format!("{:0width$}", v % modulus, width = CODE_DIGITS as usize);
        }
    }
}

/// A request token (256 random bits, base64url) and the hash that is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn code_input(id: &RequestId, code: &str) -> String {
    format!("{id}:{code}")
}

/// The latest instant the sealed contact of a request received at `received` may live.
fn contact_expiry(received: DateTime<Utc>) -> Expiry {
    let due = add_period(received, Period::Months(CONTACT_MONTHS)).unwrap_or(received);
    Expiry::at(RetentionClass::Request, due)
}

impl DsarService {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Takes a request (R4.1). The answer is the same whether or not we hold data: no
    /// subject is looked up here, so nothing is linked to or changed for anyone before
    /// the identifiers are proven (`identity`).
    #[tracing::instrument(skip_all, fields(request_id = tracing::field::Empty, request_type = intake.request_type.code()))]
    pub async fn submit(&self, intake: Intake) -> Result<RequestId, DsarError> {
        let now = self.now();
        let email_index = self
            .index_of(
                IdentifierKind::Email,
                intake.email.as_ref().map(Email::lookup_key),
            )
            .await?;
        let phone_index = self
            .index_of(
                IdentifierKind::Phone,
                intake.phone.as_ref().map(|p| p.expose().to_owned()),
            )
            .await?;
        let corrected = |name: &str| intake.corrections.as_ref().and_then(|c| c.get(name));
        let correction_email = self
            .index_of(
                IdentifierKind::Email,
                corrected("email")
                    .and_then(|e| Email::parse(e).ok())
                    .map(|e| e.lookup_key()),
            )
            .await?;
        let correction_phone = self
            .index_of(IdentifierKind::Phone, corrected("phone").cloned())
            .await?;
        self.count_limits(&intake, [&email_index, &phone_index], now)
            .await?;
        let id = RequestId::new();
        tracing::Span::current().record("request_id", tracing::field::display(id));
        let status = if intake.email.is_some() {
            RequestStatus::AwaitingVerification
        } else {
            RequestStatus::AwaitingIdentityCheck
        };
        let mut record = new_record(id, intake.request_type, status, now);
        record.subject_email_bidx = email_index.as_ref().map(|i| i.as_str().to_owned());
        record.subject_phone_bidx = phone_index.as_ref().map(|i| i.as_str().to_owned());
        record.correction_email_bidx = correction_email.map(|i| i.as_str().to_owned());
        record.correction_phone_bidx = correction_phone.map(|i| i.as_str().to_owned());
        record.has_email = intake.email.is_some();

        let (key, wrapped) = self.keys.generate_request_key(&id).await?;
        let contact = ContactV1 {
            email: intake.email.as_ref().map(|e| e.expose().to_owned()),
            phone: intake.phone.as_ref().map(|p| p.expose().to_owned()),
            message: intake.message.clone(),
            corrections: intake.corrections.clone(),
        };
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&contact).unwrap_or_default());
        // Until verified, the contact lives as long as the code; then until the request
        // closes (at the latest four months after receipt).
        let contact_expiry = if intake.email.is_some() {
            Expiry::of(RetentionClass::Verification, now)
        } else {
            contact_expiry(now)
        };
        let mut changes = vec![Change::PutContact {
            contact: ContactRecord {
                request_id: id,
                sealed: key.seal(&contact_aad(&id), &plaintext)?,
                expiry: contact_expiry,
                wrapped_key: Some(wrapped.0),
            },
            create: true,
        }];
        let code = new_code();
        if intake.email.is_some() {
            let hash = self
                .keys
                .blind_index(IdentifierKind::RequestCode, &code_input(&id, &code))
                .await?;
            changes.push(Change::CreateCode(CodeRecord {
                request_id: id,
                code_hash: hash.as_str().to_owned(),
                attempts: 0,
                expiry: Expiry::of(RetentionClass::Verification, now),
            }));
        } else {
            changes.push(Change::List(OpenRecord::of(&record)));
        }
        match self
            .store
            .commit(&record, None, changes, "dsar", "dsar.received", now)
            .await?
        {
            Commit::Done => {}
            Commit::Conflict => return Err(DsarError::Conflict),
        }
        if let Some(email) = &intake.email {
            self.mailer
                .send(
                    email,
                    &mail::code_mail(&code, &id.to_string(), intake.request_type, CODE_MINUTES),
                )
                .await?;
            self.audit_step(&id, "dsar.code_sent", now).await;
        }
        tracing::info!(status = status.code(), "request received");
        Ok(id)
    }

    async fn index_of(
        &self,
        kind: IdentifierKind,
        normalised: Option<String>,
    ) -> Result<Option<BlindIndex>, DsarError> {
        match normalised {
            Some(v) => Ok(Some(self.keys.blind_index(kind, &v).await?)),
            None => Ok(None),
        }
    }

    /// The abuse limits of R4.1, by keyed hashes only: requests per source, per
    /// identifier and source (so a stranger cannot use up the subject's own requests),
    /// and per identifier from everywhere (so nobody can flood a mailbox).
    async fn count_limits(
        &self,
        intake: &Intake,
        identifiers: [&Option<BlindIndex>; 2],
        now: DateTime<Utc>,
    ) -> Result<(), DsarError> {
        let day = now.date_naive();
        let source = intake
            .source
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let source = self
            .keys
            .blind_index(IdentifierKind::Source, &source)
            .await?;
        if !self
            .store
            .count_request(
                &Counter::Source {
                    source: source.clone(),
                    day,
                },
                self.source_daily_limit,
                now,
            )
            .await?
        {
            return Err(DsarError::SourceRateLimited);
        }
        for index in identifiers.into_iter().flatten() {
            let per_source = Counter::IdentifierFromSource {
                identifier: index.clone(),
                source: source.clone(),
                day,
            };
            let everywhere = Counter::Identifier {
                identifier: index.clone(),
                day,
            };
            if !self
                .store
                .count_request(&per_source, self.daily_limit, now)
                .await?
                || !self
                    .store
                    .count_request(&everywhere, self.identifier_daily_limit, now)
                    .await?
            {
                return Err(DsarError::RateLimited);
            }
        }
        Ok(())
    }

    /// Checks a one-time code (R4.2).
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn verify(&self, id: &RequestId, code: &str) -> Result<Verified, DsarError> {
        let now = self.now();
        let Some(record) = self.store.request(id).await? else {
            return Err(DsarError::NotFound);
        };
        match record.status {
            RequestStatus::AwaitingVerification => {}
            RequestStatus::VerificationFailed => return Err(DsarError::Ended),
            _ => return Err(DsarError::AlreadyVerified),
        }
        let stored = self.store.code(id).await?;
        let Some(stored) = stored.filter(|c| c.expiry.exp_at > now.timestamp()) else {
            self.end_verification(record, now, "code_expired").await?;
            return Err(DsarError::CodeExpired);
        };
        // The try is taken before the comparison: however many guesses arrive at once,
        // at most MAX_CODE_ATTEMPTS of them are ever compared.
        let Some(attempts) = self.store.take_code_attempt(id).await? else {
            self.end_verification(record, now, "too_many_attempts")
                .await?;
            return Err(DsarError::TooManyAttempts);
        };
        let hash = self
            .keys
            .blind_index(IdentifierKind::RequestCode, &code_input(id, code))
            .await?;
        if !same(hash.as_str(), &stored.code_hash) {
            return if attempts < MAX_CODE_ATTEMPTS {
                tracing::info!(attempts, "wrong code");
                self.audit_step(id, "dsar.code_rejected", now).await;
                Err(DsarError::WrongCode {
                    remaining: MAX_CODE_ATTEMPTS - attempts,
                })
            } else {
                self.end_verification(record, now, "too_many_attempts")
                    .await?;
                Err(DsarError::TooManyAttempts)
            };
        }
        let contact = self.store.contact(id).await?;
        let (token, hash) = new_token();
        let old_version = record.version;
        let mut updated = record;
        updated.email_proven = true;
        // Whom the request may act on: a phone or a correction that the code did not
        // prove sends it to the staff identity check, and nothing happens until then.
        updated.status = match binding(self.claims.as_ref(), &updated, now).await? {
            Binding::Subject(_) | Binding::NoData => RequestStatus::InProgress,
            Binding::NeedsIdentityCheck | Binding::Ambiguous => {
                RequestStatus::AwaitingIdentityCheck
            }
        };
        updated.token_hash = Some(hash);
        updated.verified_at = Some(now);
        updated.version += 1;
        let cancel_token =
            super::erasure_window::schedule(&mut updated, self.erasure_cancel_window, now);
        let mut changes = vec![Change::DeleteCode, Change::List(OpenRecord::of(&updated))];
        if let Some(mut c) = contact.clone() {
            c.expiry = contact_expiry(updated.received_at);
            changes.push(Change::PutContact {
                contact: c,
                create: false,
            });
        }
        match self
            .store
            .commit(
                &updated,
                Some(old_version),
                changes,
                "dsar",
                "dsar.verified",
                now,
            )
            .await?
        {
            Commit::Done => {}
            Commit::Conflict => return Err(DsarError::AlreadyVerified),
        }
        if cancel_token.is_some() {
            crate::telemetry::metric("ErasureScheduled", 1.0);
        }
        if let Some(c) = contact {
            let mail = super::erasure_window::receipt(
                &self.public_api_base_url,
                &updated,
                cancel_token.as_deref(),
            );
            self.mail_contact(id, &c, &mail).await;
        }
        tracing::info!(status = updated.status.code(), "request verified");
        Ok(Verified {
            token: Some(token),
            status: updated.status,
        })
    }

    /// Ends a request whose code expired or was guessed too often: nothing is done, the
    /// code and the sealed contact go.
    async fn end_verification(
        &self,
        mut record: RequestRecord,
        now: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), DsarError> {
        let old = record.version;
        close(&mut record, RequestStatus::VerificationFailed, outcome, now);
        let changes = vec![Change::DeleteCode, Change::DeleteContact];
        self.store
            .commit(
                &record,
                Some(old),
                changes,
                "dsar",
                "dsar.verification_failed",
                now,
            )
            .await?;
        tracing::info!(outcome, "request ended unverified");
        Ok(())
    }

    /// The request's status for the holder of its token; a fresh download link once the
    /// export is ready. Unknown ids and wrong tokens get the same error.
    pub async fn status(&self, id: &RequestId, token: &str) -> Result<StatusView, DsarError> {
        let now = self.now();
        let record = self
            .store
            .request(id)
            .await?
            // A record past its retention that the sweep has not removed yet is not
            // read (R3.3): as if it were gone.
            .filter(|r| r.expiry.due().is_none_or(|due| due > now))
            .filter(|r| {
                r.token_hash
                    .as_deref()
                    .is_some_and(|h| same(h, &token_hash(token)))
            })
            .ok_or(DsarError::NotAuthorised)?;
        let mut view = StatusView {
            request_id: id.to_string(),
            request_type: record.request_type,
            status: record.status,
            received_at: record.received_at,
            due_at: record.due_date,
            days_left: domain::dsar::days_left(record.due_date, now),
            extended: record.extended,
            outcome: record.outcome.clone(),
            erased_categories: record.categories.clone(),
            held_categories: record.held_categories.clone(),
            held_until: record.held_until,
            recipients: record.recipients.clone(),
            download_url: None,
            download_expires_at: None,
            erasure_scheduled_at: record
                .erasure_scheduled_at
                .filter(|_| super::erasure_window::waiting(&record, now)),
        };
        // Art. 19: the CRM as a recipient told of the request's outcome, with the
        // delivery state (told / pending / failed, with its time), when one was queued.
        if record.status == RequestStatus::Completed
            && matches!(
                record.request_type,
                RequestType::Rectification
                    | RequestType::Restriction
                    | RequestType::Objection
                    | RequestType::Erasure
            )
        {
            if let Some(event) = self.store.crm_event(&id.to_string()).await? {
                let state = event.state().to_json();
                view.recipients.get_or_insert_with(Default::default).insert(
                    domain::registry::CRM.name.to_owned(),
                    format!(
                        "{} ({})",
                        state["state"].as_str().unwrap_or_default(),
                        state["at"].as_str().unwrap_or_default()
                    ),
                );
            }
        }
        let live = record.export_expires_at.is_some_and(|t| t > now);
        if let (RequestStatus::Completed, Some(key), true) =
            (record.status, &record.export_key, live)
        {
            // The export item goes with the sweep; a package past its 7 days is not
            // offered even if the object is still there.
            if self.store.export(id).await?.is_some() {
                // No download link without its audit item (R4.11): a failed write fails
                // the answer, and the requester asks again.
                self.store
                    .audit(id, None, "dsar", "dsar.download_issued", now)
                    .await?;
                let url = self
                    .exports
                    .presign_get(
                        key,
                        std::time::Duration::from_secs(DOWNLOAD_LINK_SECONDS),
                        &format!("polly-ki-auskunft-{id}.zip"),
                    )
                    .await?;
                view.download_url = Some(url);
                view.download_expires_at =
                    Some(now + Duration::seconds(DOWNLOAD_LINK_SECONDS as i64));
            }
        }
        Ok(view)
    }

    /// Open requests: failed ones first (they need staff), then stuck ones, then overdue
    /// first (R4.10).
    pub async fn open_requests(&self) -> Result<Vec<OpenView>, DsarError> {
        let now = self.now();
        let open = self.store.open_requests().await?;
        let mut open: Vec<(bool, OpenRecord)> = open
            .into_iter()
            .map(|o| {
                let stuck = super::records::is_stuck(
                    o.status,
                    o.changed_at,
                    o.received_at,
                    o.erasure_scheduled_at,
                    now,
                );
                (stuck, o)
            })
            .collect();
        // Stable: within each group the store's order (earliest due date first) stays.
        open.sort_by_key(|(stuck, o)| (o.status != RequestStatus::Failed, !*stuck));
        Ok(open
            .into_iter()
            .map(|(stuck, o)| {
                let days_left = domain::dsar::days_left(o.due_date, now);
                OpenView {
                    request_id: o.request_id.to_string(),
                    request_type: o.request_type,
                    status: o.status,
                    received_at: o.received_at,
                    due_at: o.due_date,
                    days_left,
                    overdue: days_left < 0,
                    extended: o.extended,
                    failure_reason: o.failure_reason,
                    channel: o.channel,
                    stuck,
                    erasure_scheduled_at: o.erasure_scheduled_at.filter(|at| *at > now),
                }
            })
            .collect())
    }

    async fn open_record(&self, id: &RequestId) -> Result<RequestRecord, DsarError> {
        let record = self.store.request(id).await?.ok_or(DsarError::NotFound)?;
        match record.status {
            RequestStatus::InProgress
            | RequestStatus::AwaitingIdentityCheck
            | RequestStatus::Failed => Ok(record),
            _ => Err(DsarError::NotOpen),
        }
    }

    /// Staff retry a failed or stuck request: it goes back in progress (the stream hands
    /// it to the worker again) with its failure count reset, audited as `dsar.retried` by
    /// `actor`. A stuck one (`records::is_stuck`) is first marked failed (`stuck`,
    /// `dsar.failed` by `actor`): the worker takes only a request that *becomes* in
    /// progress. Any other request cannot be retried.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn retry(&self, id: &RequestId, actor: &str) -> Result<(), DsarError> {
        let now = self.now();
        let mut record = self.store.request(id).await?.ok_or(DsarError::NotFound)?;
        let stuck = super::records::is_stuck(
            record.status,
            record.changed_at,
            record.received_at,
            record
                .erasure_scheduled_at
                .filter(|_| record.erasure_started_at.is_none()),
            now,
        );
        if stuck {
            let old = record.version;
            record.status = RequestStatus::Failed;
            record.failure_reason = Some("stuck".into());
            record.version += 1;
            let changes = vec![Change::List(OpenRecord::of(&record))];
            if self
                .store
                .commit(&record, Some(old), changes, actor, "dsar.failed", now)
                .await?
                == Commit::Conflict
            {
                return Err(DsarError::Conflict);
            }
        }
        if record.status != RequestStatus::Failed {
            return Err(DsarError::NotOpen);
        }
        if super::worker::requeue(self.store.as_ref(), record, actor, "dsar.retried", now).await?
            == Commit::Conflict
        {
            return Err(DsarError::Conflict);
        }
        tracing::info!("failed request retried");
        Ok(())
    }

    /// Extends the deadline (R4.3) and tells the subject why.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn extend(
        &self,
        id: &RequestId,
        months: u32,
        reason: &str,
        actor: &str,
    ) -> Result<NaiveDate, DsarError> {
        let now = self.now();
        let record = self.open_record(id).await?;
        let due = domain::dsar::extended_due_date(
            record.received_at,
            now,
            months,
            record.extended,
            reason,
        )?;
        let old = record.version;
        let old_open = OpenRecord::of(&record);
        let mut updated = record;
        updated.due_date = due;
        updated.extended = true;
        updated.version += 1;
        let changes = vec![
            Change::Unlist(old_open),
            Change::List(OpenRecord::of(&updated)),
        ];
        if self
            .store
            .commit(&updated, Some(old), changes, actor, "dsar.extended", now)
            .await?
            == Commit::Conflict
        {
            return Err(DsarError::Conflict);
        }
        if let Some(c) = self.store.contact(id).await? {
            let mail =
                mail::extension_mail(&id.to_string(), updated.request_type, due, reason.trim());
            self.mail_contact(id, &c, &mail).await;
        }
        tracing::info!(months, "deadline extended");
        Ok(due)
    }

    /// Denies a request with reasons (Art. 12(4)): the subject is told why and where to
    /// complain; the request closes.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn deny(
        &self,
        id: &RequestId,
        reasons: &[String],
        actor: &str,
    ) -> Result<(), DsarError> {
        let now = self.now();
        let record = self.open_record(id).await?;
        let contact = self.store.contact(id).await?;
        let old = record.version;
        let open = OpenRecord::of(&record);
        let mut updated = record;
        close(&mut updated, RequestStatus::Denied, "denied", now);
        let changes = vec![Change::Unlist(open), Change::DeleteContact];
        if self
            .store
            .commit(&updated, Some(old), changes, actor, "dsar.denied", now)
            .await?
            == Commit::Conflict
        {
            return Err(DsarError::Conflict);
        }
        if let Some(c) = contact {
            let mail = mail::denial_mail(&id.to_string(), updated.request_type, reasons);
            self.mail_contact(id, &c, &mail).await;
        }
        tracing::info!("request denied");
        Ok(())
    }

    /// Staff checked the requester's identity (R4.1): every identifier the request names,
    /// its corrections included, counts as proven and the request proceeds. A phone-only
    /// request gets its first token here, for staff to hand to the subject; a request
    /// whose code was verified keeps the token its requester already has. Identifiers of
    /// two different subjects cannot proceed: staff deny with reasons (one request per
    /// subject).
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn verify_identity(
        &self,
        id: &RequestId,
        actor: &str,
    ) -> Result<Verified, DsarError> {
        let now = self.now();
        let record = self.store.request(id).await?.ok_or(DsarError::NotFound)?;
        if record.status != RequestStatus::AwaitingIdentityCheck {
            return Err(DsarError::NoIdentityCheck);
        }
        let old = record.version;
        let mut updated = record;
        updated.identity_checked = true;
        if binding(self.claims.as_ref(), &updated, now).await? == Binding::Ambiguous {
            self.store
                .audit(id, None, actor, "dsar.identity_ambiguous", now)
                .await?;
            return Err(DsarError::AmbiguousSubject);
        }
        let token = match updated.token_hash {
            Some(_) => None,
            None => {
                let (token, hash) = new_token();
                updated.token_hash = Some(hash);
                Some(token)
            }
        };
        updated.status = RequestStatus::InProgress;
        updated.verified_at = Some(now);
        updated.version += 1;
        let cancel_token =
            super::erasure_window::schedule(&mut updated, self.erasure_cancel_window, now);
        let changes = vec![Change::List(OpenRecord::of(&updated))];
        if self
            .store
            .commit(
                &updated,
                Some(old),
                changes,
                actor,
                "dsar.identity_verified",
                now,
            )
            .await?
            == Commit::Conflict
        {
            return Err(DsarError::Conflict);
        }
        if let Some(token) = &cancel_token {
            crate::telemetry::metric("ErasureScheduled", 1.0);
            // The cancel link goes to the request's email (only requests naming one
            // wait, `erasure_window::schedule`).
            // The request is verified already: a failed read loses the mail, not the
            // step (the status route shows the scheduled time).
            if let Ok(Some(c)) = self.store.contact(id).await {
                let mail = super::erasure_window::receipt(
                    &self.public_api_base_url,
                    &updated,
                    Some(token),
                );
                self.mail_contact(id, &c, &mail).await;
            }
        }
        tracing::info!("identity verified by staff");
        Ok(Verified {
            token,
            status: updated.status,
        })
    }

    /// Audits a step that changes no stored state (R4.11: the code mailed, a wrong code).
    /// The step has happened either way, so a failed write is logged and counted
    /// (`DsarAuditFailed`), not turned into a failed answer.
    async fn audit_step(&self, id: &RequestId, action: &'static str, now: DateTime<Utc>) {
        if let Err(e) = self.store.audit(id, None, "dsar", action, now).await {
            tracing::error!(error = %e, action, "audit item not written");
            crate::telemetry::metric("DsarAuditFailed", 1.0);
        }
    }

    /// Sends a mail to the request's email, if it has one. A failed mail is logged and
    /// audited, not fatal: the subject can always look at the status route.
    async fn mail_contact(&self, id: &RequestId, c: &ContactRecord, mail: &Mail) {
        ContactMail {
            keys: self.keys.as_ref(),
            mailer: self.mailer.as_ref(),
            store: self.store.as_ref(),
        }
        .send(id, c, mail, self.now())
        .await
    }
}
