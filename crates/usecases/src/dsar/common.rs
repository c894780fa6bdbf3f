//! What intake, the export and the other rights share: opening a request's sealed
//! contact and mailing it, whom a request binds to (`identity`), and sending a request
//! back to the staff identity check. Neither `export` nor `rights` imports the other;
//! both build on this module.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use domain::crypto::{BlindIndex, CryptoError, DataKey, WrappedKey};
use domain::dsar::identity::{self, Binding, Named};
use domain::dsar::mail::Mail;
use domain::dsar::RequestStatus;
use domain::{Email, LeadId, RequestId};

use super::ports::{ClaimLookup, RequestStore};
use super::records::{Change, ContactRecord, OpenRecord, RequestRecord};
use crate::ports::{IdentifierKind, KeyError, KeyService, Mailer, StoreError};

/// Associated data of a request's sealed contact.
pub fn contact_aad(id: &RequestId) -> Vec<u8> {
    format!("polly:dsar:{id}:contact").into_bytes()
}

/// What a request carries besides its type, sealed under the request's data key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContactV1 {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
    /// Field → corrected value, validated like the sign-up (R4.6).
    pub corrections: Option<BTreeMap<String, String>>,
}

/// A contact that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("sealed data does not open")]
    Crypto(#[from] CryptoError),
    #[error("mail failed")]
    Mail(#[from] StoreError),
}

/// Opens a request's sealed contact with its request-bound data key (kept in the key
/// table; once that is gone, the contact is unreadable everywhere).
pub async fn open_contact(
    keys: &dyn KeyService,
    id: &RequestId,
    c: &ContactRecord,
) -> Result<ContactV1, ContactError> {
    let wrapped = c.wrapped_key.clone().ok_or(CryptoError::Open)?;
    let key: DataKey = keys.unwrap_request_key(id, &WrappedKey(wrapped)).await?;
    let plain = key.open(&contact_aad(id), &c.sealed)?;
    serde_json::from_slice(&plain).map_err(|_| ContactError::Crypto(CryptoError::Open))
}

/// What a use case needs to mail a request's contact.
pub struct ContactMail<'a> {
    pub keys: &'a dyn KeyService,
    pub mailer: &'a dyn Mailer,
    pub store: &'a dyn RequestStore,
}

impl ContactMail<'_> {
    /// Mails the request's email address, if it has one. A failure is logged, counted
    /// and audited, not fatal: the subject can always look at the status route.
    pub async fn send(&self, id: &RequestId, c: &ContactRecord, mail: &Mail, now: DateTime<Utc>) {
        let result = async {
            let contact = open_contact(self.keys, id, c).await?;
            let Some(email) = contact.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
                return Ok(false);
            };
            self.mailer.send(&email, mail).await?;
            Ok::<_, ContactError>(true)
        }
        .await;
        match result {
            Ok(sent) => tracing::info!(sent, "mail to the subject"),
            Err(e) => {
                tracing::error!(error = %e, "mail to the subject failed");
                crate::telemetry::metric("DsarMailFailed", 1.0);
                let _ = self
                    .store
                    .audit(id, None, "dsar", "dsar.mail_failed", now)
                    .await;
            }
        }
    }
}

/// Whom an open request may act on now (R4.1, R4.2): the claims its identifiers point
/// at, and which of them the requester proved (`identity`).
pub async fn binding(
    claims: &dyn ClaimLookup,
    record: &RequestRecord,
    now: DateTime<Utc>,
) -> Result<Binding, StoreError> {
    let email_proven = record.email_proven || record.identity_checked;
    let named = |kind, index: &Option<String>, proven| {
        let index = index.clone().map(BlindIndex::from_stored);
        async move {
            match index {
                Some(i) => Ok::<_, StoreError>(Some(Named {
                    subject: claims.claim_holder(kind, &i, now).await?,
                    proven,
                })),
                None => Ok(None),
            }
        }
    };
    let given: Vec<Named> = [
        named(
            IdentifierKind::Email,
            &record.subject_email_bidx,
            email_proven,
        )
        .await?,
        named(
            IdentifierKind::Phone,
            &record.subject_phone_bidx,
            record.identity_checked,
        )
        .await?,
    ]
    .into_iter()
    .flatten()
    .collect();
    let corrections: Vec<Named> = [
        named(
            IdentifierKind::Email,
            &record.correction_email_bidx,
            record.identity_checked,
        )
        .await?,
        named(
            IdentifierKind::Phone,
            &record.correction_phone_bidx,
            record.identity_checked,
        )
        .await?,
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(identity::bind(&given, &corrections))
}

/// Sends a verified request back to the staff identity check because its identifiers no
/// longer bind it to one subject (someone signed up or changed since): nothing is done,
/// and the open list shows it again.
pub async fn await_identity_check(
    store: &dyn RequestStore,
    record: RequestRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let old = record.version;
    let mut updated = record;
    updated.status = RequestStatus::AwaitingIdentityCheck;
    updated.identity_checked = false;
    updated.version += 1;
    let changes = vec![Change::List(OpenRecord::of(&updated))];
    store
        .commit(
            &updated,
            Some(old),
            changes,
            "dsar-worker",
            "dsar.identity_check_required",
            now,
        )
        .await?;
    tracing::info!("request waits for the staff identity check");
    Ok(())
}

/// The phone number (its blind index) a request proved through the staff identity check,
/// if any. A request that resolves to no subject acts on the unlinked calls with this
/// number (calls stored without a lead; R4.4, R4.5): nobody else holds them, and only
/// the staff check proves that the requester is the person on that line. An unproven
/// number reaches nothing; a subject's request reaches its calls through its lead only
/// (a number can have changed hands, so the calls on it are not the subject's by
/// default).
pub fn proven_phone(record: &RequestRecord) -> Option<BlindIndex> {
    record
        .subject_phone_bidx
        .clone()
        .filter(|_| record.identity_checked)
        .map(BlindIndex::from_stored)
}

/// Whom a verified request acts on, as the worker finds it.
pub enum Resolved {
    Subject(LeadId),
    NoData,
    /// Sent back to the staff identity check; nothing done.
    Waiting,
}

/// Whom the request may act on, decided afresh from its proven identifiers
/// (`identity`); a request that no longer binds to one subject goes back to the staff
/// identity check and nothing is done.
pub async fn resolve_subject(
    claims: &dyn ClaimLookup,
    store: &dyn RequestStore,
    record: &RequestRecord,
    now: DateTime<Utc>,
) -> Result<Resolved, StoreError> {
    Ok(match binding(claims, record, now).await? {
        Binding::Subject(lead) => Resolved::Subject(lead),
        Binding::NoData => Resolved::NoData,
        Binding::NeedsIdentityCheck | Binding::Ambiguous => {
            await_identity_check(store, record.clone(), now).await?;
            Resolved::Waiting
        }
    })
}
