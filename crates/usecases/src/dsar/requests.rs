//! Staff work on single requests (R4.1, R4.10, R4.11): one request with its timeline
//! (its facts and its audit items, no content), and a request received by letter, phone
//! or mail to the privacy address, entered by staff with its real receipt date
//! (Art. 12(3): the month runs from receipt).
//!
//! An entered request is a request like any other: its identifiers are kept as blind
//! indexes and a sealed contact, it is listed for staff, and it binds to its subject the
//! way a verified public request does (`common::binding`). What differs: no one-time
//! code (staff check the identity, or leave it to `verify-identity`), no abuse limits
//! (staff are named and audited), and the deadline counts from the receipt date.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use domain::dsar::mail;
use domain::dsar::{RequestStatus, RequestType};
use domain::retention::{add_period, Period};
use domain::{Email, PhoneNumber, RequestId, RetentionClass};

use super::common::{contact_aad, ContactMail, ContactV1};
use super::intake::{DsarError, DsarService};
use super::records::{
    is_stuck, new_record, Change, Channel, Commit, ContactRecord, Expiry, OpenRecord,
    TimelineEntry, CONTACT_MONTHS,
};
use crate::ports::IdentifierKind;

/// How far a receipt time may lie ahead of our clock (a staff member's clock a little
/// ahead); anything later is in the future and refused.
pub const RECEIPT_CLOCK_SKEW_MINUTES: i64 = 5;

/// The oldest receipt date staff may enter, in days. A request's deadline is at most
/// three months (one plus an extension of two); a request older than a year was not
/// "received" and forgotten but is a mistake in the date (and its record, kept three
/// years from receipt, would soon be due for deletion). An older date is refused, so the
/// entry is made with the right one. A date older than the deadline is accepted: the
/// request is overdue from the start and listed so.
pub const MAX_RECEIPT_AGE_DAYS: i64 = 365;

/// Why a receipt date is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the receipt date lies in the future")]
    InFuture,
    #[error("the receipt date is more than a year ago")]
    TooOld,
}

/// Checks a receipt time entered by staff against `now`.
pub fn check_receipt(received: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ReceiptError> {
    if received > now + Duration::minutes(RECEIPT_CLOCK_SKEW_MINUTES) {
        return Err(ReceiptError::InFuture);
    }
    if now - received > Duration::days(MAX_RECEIPT_AGE_DAYS) {
        return Err(ReceiptError::TooOld);
    }
    Ok(())
}

/// A request received outside the public route, as staff enter it (validated like the
/// public intake).
#[derive(Clone)]
pub struct Entry {
    pub request_type: RequestType,
    pub channel: Channel,
    pub received_at: DateTime<Utc>,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub message: Option<String>,
    pub corrections: Option<std::collections::BTreeMap<String, String>>,
    /// Staff checked the requester's identity (audited with their principal).
    pub identity_verified: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("request_type", &self.request_type)
            .field("channel", &self.channel)
            .field("identity_verified", &self.identity_verified)
            .finish_non_exhaustive()
    }
}

/// The answer to an entry.
pub struct Entered {
    pub request_id: RequestId,
    pub status: RequestStatus,
    pub due_date: NaiveDate,
    pub days_left: i64,
    /// The request token, when staff verified the identity: staff hand it to the subject
    /// (by letter, or in their reply) with the status address; it is not stored.
    pub token: Option<String>,
}

impl std::fmt::Debug for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entered")
            .field("request_id", &self.request_id)
            .field("status", &self.status)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// One request as staff see it: facts and timeline, no personal data (no email, phone,
/// message).
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub request_id: String,
    #[serde(rename = "type")]
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub channel: Channel,
    pub received_at: DateTime<Utc>,
    pub due_at: NaiveDate,
    pub days_left: i64,
    pub overdue: bool,
    pub extended: bool,
    pub stuck: bool,
    /// An erasure waiting in its cancel window: when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure_scheduled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// A closed request's outcome code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The request's audit items, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

impl DsarService {
    /// One request with its timeline for staff (R4.10), audited as `dsar.viewed` by
    /// `actor` (after the timeline was read, so a view lists the earlier views, not
    /// itself). A record past its retention counts as gone (R3.3): `NotFound`.
    pub async fn request_view(
        &self,
        id: &RequestId,
        actor: &str,
    ) -> Result<RequestView, DsarError> {
        let now = self.clock.now();
        let record = self
            .store
            .request(id)
            .await?
            .filter(|r| r.expiry.due().is_none_or(|due| due > now))
            .ok_or(DsarError::NotFound)?;
        let timeline = self.store.timeline(id).await?;
        self.store
            .audit(id, record.lead_id.as_ref(), actor, "dsar.viewed", now)
            .await?;
        let days_left = domain::dsar::days_left(record.due_date, now);
        let open = record.status.is_open();
        Ok(RequestView {
            request_id: id.to_string(),
            request_type: record.request_type,
            status: record.status,
            channel: record.channel,
            received_at: record.received_at,
            due_at: record.due_date,
            days_left,
            overdue: open && days_left < 0,
            extended: record.extended,
            stuck: is_stuck(
                record.status,
                record.changed_at,
                record.received_at,
                record
                    .erasure_scheduled_at
                    .filter(|_| record.erasure_started_at.is_none()),
                now,
            ),
            erasure_scheduled_at: super::erasure_window::waiting(&record, now)
                .then_some(record.erasure_scheduled_at)
                .flatten(),
            failure_reason: record.failure_reason,
            outcome: record.outcome,
            timeline,
        })
    }

    /// Enters a request received by letter, phone or mail (R4.1) with its real receipt
    /// time: the deadline counts from there (a receipt older than the deadline makes it
    /// overdue at once). Stored and listed awaiting the identity check, audited as
    /// `dsar.entered` by `actor` (the audit item names the channel); with
    /// `identity_verified`, `actor`'s identity check follows at once
    /// (`dsar.identity_verified` by `actor`, as `verify-identity` does) and the request
    /// goes to the worker, and the subject is mailed the receipt when an email is given.
    /// Identifiers of two different subjects leave it waiting for the check
    /// (`dsar.identity_ambiguous`): staff deny it with reasons.
    #[tracing::instrument(skip_all, fields(request_id = tracing::field::Empty, request_type = entry.request_type.code(), channel = entry.channel.code()))]
    pub async fn enter(&self, entry: Entry, actor: &str) -> Result<Entered, DsarError> {
        let now = self.clock.now();
        check_receipt(entry.received_at, now)?;
        let index = |kind, value: Option<String>| async move {
            match value {
                Some(v) => Ok::<_, DsarError>(Some(self.keys.blind_index(kind, &v).await?)),
                None => Ok(None),
            }
        };
        let email_index = index(
            IdentifierKind::Email,
            entry.email.as_ref().map(Email::lookup_key),
        )
        .await?;
        let phone_index = index(
            IdentifierKind::Phone,
            entry.phone.as_ref().map(|p| p.expose().to_owned()),
        )
        .await?;
        let corrected = |name: &str| entry.corrections.as_ref().and_then(|c| c.get(name));
        let correction_email = index(
            IdentifierKind::Email,
            corrected("email")
                .and_then(|e| Email::parse(e).ok())
                .map(|e| e.lookup_key()),
        )
        .await?;
        let correction_phone = index(IdentifierKind::Phone, corrected("phone").cloned()).await?;

        let id = RequestId::new();
        tracing::Span::current().record("request_id", tracing::field::display(id));
        let mut record = new_record(
            id,
            entry.request_type,
            RequestStatus::AwaitingIdentityCheck,
            entry.received_at,
        );
        record.channel = entry.channel;
        record.subject_email_bidx = email_index.map(|i| i.as_str().to_owned());
        record.subject_phone_bidx = phone_index.map(|i| i.as_str().to_owned());
        record.correction_email_bidx = correction_email.map(|i| i.as_str().to_owned());
        record.correction_phone_bidx = correction_phone.map(|i| i.as_str().to_owned());
        record.has_email = entry.email.is_some();

        let (key, wrapped) = self.keys.generate_request_key(&id).await?;
        let contact = ContactV1 {
            email: entry.email.as_ref().map(|e| e.expose().to_owned()),
            phone: entry.phone.as_ref().map(|p| p.expose().to_owned()),
            message: entry.message.clone(),
            corrections: entry.corrections.clone(),
        };
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&contact).unwrap_or_default());
        let contact = ContactRecord {
            request_id: id,
            sealed: key.seal(&contact_aad(&id), &plaintext)?,
            expiry: entered_contact_expiry(entry.received_at, now),
            wrapped_key: Some(wrapped.0),
        };
        let changes = vec![
            Change::PutContact {
                contact: contact.clone(),
                create: true,
            },
            Change::List(OpenRecord::of(&record)),
        ];
        if self
            .store
            .commit(&record, None, changes, actor, "dsar.entered", now)
            .await?
            == Commit::Conflict
        {
            return Err(DsarError::Conflict);
        }
        tracing::info!("request entered by staff");

        let mut status = RequestStatus::AwaitingIdentityCheck;
        let mut token = None;
        if entry.identity_verified {
            match self.verify_identity(&id, actor).await {
                Ok(v) => {
                    status = v.status;
                    token = v.token;
                    let receipt = mail::receipt_mail(
                        &id.to_string(),
                        record.request_type,
                        record.received_at,
                        record.due_date,
                    );
                    ContactMail {
                        keys: self.keys.as_ref(),
                        mailer: self.mailer.as_ref(),
                        store: self.store.as_ref(),
                    }
                    .send(&id, &contact, &receipt, now)
                    .await;
                }
                // Audited (`dsar.identity_ambiguous`); it waits for staff to deny it.
                Err(DsarError::AmbiguousSubject) => {}
                // Entered, and listed: the check can be repeated with `verify-identity`;
                // the answer says where it stands.
                Err(e) => tracing::error!(error = %e, "identity check after entry failed"),
            }
        }
        Ok(Entered {
            request_id: id,
            status,
            due_date: record.due_date,
            days_left: domain::dsar::days_left(record.due_date, now),
            token,
        })
    }
}

/// How long an entered request's sealed contact may live: as a public request's (four
/// months from receipt), but at least a month from entry, so a late entry can still be
/// answered.
fn entered_contact_expiry(received: DateTime<Utc>, now: DateTime<Utc>) -> Expiry {
    let from_receipt = add_period(received, Period::Months(CONTACT_MONTHS)).unwrap_or(received);
    let from_entry = add_period(now, Period::Months(1)).unwrap_or(now);
    Expiry::at(RetentionClass::Request, from_receipt.max(from_entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// R4.1: a receipt time may be a few minutes ahead of our clock, not more, and at
    /// most a year back.
    #[test]
    fn receipt_dates_in_the_future_or_over_a_year_back_are_refused() {
        let now = t("2026-11-30T12:00:00Z");
        assert_eq!(check_receipt(now, now), Ok(()));
        assert_eq!(check_receipt(t("2026-11-30T12:05:00Z"), now), Ok(()));
        assert_eq!(
            check_receipt(t("2026-11-30T12:05:01Z"), now),
            Err(ReceiptError::InFuture)
        );
        assert_eq!(
            check_receipt(t("2026-12-01T00:00:00Z"), now),
            Err(ReceiptError::InFuture)
        );
        assert_eq!(check_receipt(t("2025-11-30T12:00:00Z"), now), Ok(()));
        assert_eq!(
            check_receipt(t("2025-11-30T11:59:59Z"), now),
            Err(ReceiptError::TooOld)
        );
    }

    /// An entered request's contact lives four months from receipt, but at least a month
    /// from entry.
    #[test]
    fn an_entered_contact_lives_at_least_a_month_from_entry() {
        let now = t("2026-11-30T12:00:00Z");
        let recent = entered_contact_expiry(t("2026-11-10T12:00:00Z"), now);
        assert_eq!(recent.due(), Some(t("2027-03-10T12:00:00Z")));
        let late = entered_contact_expiry(t("2026-06-01T12:00:00Z"), now);
        assert_eq!(late.due(), Some(t("2026-12-30T12:00:00Z")));
    }
}
