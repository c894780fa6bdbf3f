//! Data-subject requests (R4): the request types, their life cycle and deadlines, who a
//! request binds to (`identity`), and the texts that answer it: the Art. 15 information
//! and the German read-me (`disclosure`) and the emails (`mail`).

pub mod cancel_page;
pub mod disclosure;
pub mod identity;
pub mod mail;

use crate::retention::berlin_date;
use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The seven request types of R4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    Access,
    Portability,
    Erasure,
    Rectification,
    Restriction,
    Objection,
    WithdrawConsent,
}

impl RequestType {
    pub const ALL: [Self; 7] = [
        Self::Access,
        Self::Portability,
        Self::Erasure,
        Self::Rectification,
        Self::Restriction,
        Self::Objection,
        Self::WithdrawConsent,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Portability => "portability",
            Self::Erasure => "erasure",
            Self::Rectification => "rectification",
            Self::Restriction => "restriction",
            Self::Objection => "objection",
            Self::WithdrawConsent => "withdraw_consent",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The GDPR article the request exercises.
    pub fn article(self) -> &'static str {
        match self {
            Self::Access => "Art. 15 DSGVO",
            Self::Portability => "Art. 20 DSGVO",
            Self::Erasure => "Art. 17 DSGVO",
            Self::Rectification => "Art. 16 DSGVO",
            Self::Restriction => "Art. 18 DSGVO",
            Self::Objection => "Art. 21 DSGVO",
            Self::WithdrawConsent => "Art. 7 Abs. 3 DSGVO",
        }
    }

    /// Whether the answer is an export package built by the worker (R4.4).
    pub fn builds_export(self) -> bool {
        matches!(self, Self::Access | Self::Portability)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for the one-time code sent to the email given.
    AwaitingVerification,
    /// Phone-only request: staff check the identity (R4.1).
    AwaitingIdentityCheck,
    /// Identity confirmed; the request is being carried out.
    InProgress,
    /// Done; for access and portability the export can be downloaded.
    Completed,
    /// Refused by staff with reasons (Art. 12(4)).
    Denied,
    /// The code expired or was entered wrongly too often; nothing was done.
    VerificationFailed,
    /// The worker could not finish it (a permanent error, or its retries ran out): open,
    /// listed first for staff with a fixed reason code, and retried by staff.
    Failed,
    /// An erasure the subject cancelled inside its cancel window: nothing was erased.
    Cancelled,
}

impl RequestStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::AwaitingVerification => "awaiting_verification",
            Self::AwaitingIdentityCheck => "awaiting_identity_check",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Denied => "denied",
            Self::VerificationFailed => "verification_failed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Open requests count against the deadline and appear in the staff list.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::AwaitingIdentityCheck
                | Self::InProgress
                | Self::AwaitingVerification
                | Self::Failed
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Denied | Self::VerificationFailed | Self::Cancelled
        )
    }
}

/// Longest extension of the deadline (Art. 12(3): "by two further months").
pub const MAX_EXTENSION_MONTHS: u32 = 2;

/// The answer is due one calendar month after receipt, clamped to the end of a shorter
/// month (31 Jan → 28/29 Feb, 15 Mar → 15 Apr). Dates are calendar dates in
/// Europe/Berlin: a request received at 23:30 UTC on 31 January arrived on 1 February.
pub fn due_date(received: DateTime<Utc>) -> NaiveDate {
    add_months(berlin_date(received), 1)
}

/// `date` plus `months` calendar months, clamped to month end.
pub fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// Why an extension is refused (R4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("the deadline can be extended only once")]
    AlreadyExtended,
    #[error("the deadline can be extended only within the first month after receipt")]
    TooLate,
    #[error("the deadline can be extended by one or two months")]
    InvalidLength,
    #[error("an extension needs a reason, which is sent to the subject")]
    ReasonMissing,
    #[error("only open requests can be extended")]
    NotOpen,
}

/// The new due date after extending a request received at `received` by `months`, asked
/// for `now` (R4.3: once, within the first month, at most two months, with a reason).
/// Art. 12(3) extends the period "by two further months": they run from the original due
/// date (received 31 Jan, due 28 Feb, extended by two months: due 28 Apr), not from the
/// receipt (30 Apr) nor from the day of the extension.
pub fn extended_due_date(
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    months: u32,
    already_extended: bool,
    reason: &str,
) -> Result<NaiveDate, ExtensionError> {
    if already_extended {
        return Err(ExtensionError::AlreadyExtended);
    }
    if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
        return Err(ExtensionError::InvalidLength);
    }
    if reason.trim().is_empty() {
        return Err(ExtensionError::ReasonMissing);
    }
    let original = due_date(received);
    if berlin_date(now) > original {
        return Err(ExtensionError::TooLate);
    }
    Ok(add_months(original, months))
}

/// Whole days from `now` to the end of `due` (negative when overdue, 0 on the due date),
/// counted in Berlin days.
pub fn days_left(due: NaiveDate, now: DateTime<Utc>) -> i64 {
    (due - berlin_date(now)).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// R4.3: the days of a deadline are Berlin days: a request received late on 31 January
    /// UTC arrived on 1 February in Berlin, and the due date counts from there.
    #[test]
    fn deadlines_run_in_berlin_days() {
        assert_eq!(due_date(t("2027-01-31T22:59:59Z")), d("2027-02-28"));
        assert_eq!(due_date(t("2027-01-31T23:00:00Z")), d("2027-03-01"));
        // Summer time: midnight in Berlin is 22:00 UTC.
        assert_eq!(due_date(t("2027-06-30T21:59:59Z")), d("2027-07-30"));
        assert_eq!(due_date(t("2027-06-30T22:00:00Z")), d("2027-08-01"));
        let due = d("2027-03-01");
        assert_eq!(days_left(due, t("2027-02-28T22:59:59Z")), 1);
        assert_eq!(days_left(due, t("2027-02-28T23:00:00Z")), 0);
        assert_eq!(days_left(due, t("2027-03-01T23:00:00Z")), -1);
        // The last day to extend is the original due date, in Berlin.
        let received = t("2027-01-31T23:30:00Z");
        assert_eq!(
            extended_due_date(received, t("2027-03-01T22:59:00Z"), 2, false, "Umfang"),
            Ok(d("2027-05-01"))
        );
        assert_eq!(
            extended_due_date(received, t("2027-03-01T23:00:00Z"), 2, false, "Umfang"),
            Err(ExtensionError::TooLate)
        );
    }

    /// R4.3: due one calendar month after receipt, clamped to the month's end (31 January
    /// → 28 February, 29 in a leap year), counted in Berlin days.
    #[test]
    fn due_one_calendar_month_after_receipt_clamped_to_month_end() {
        let table = [
            ("2027-01-31T10:00:00Z", "2027-02-28"),
            ("2028-01-31T10:00:00Z", "2028-02-29"),
            ("2027-03-15T00:00:00Z", "2027-04-15"),
            ("2027-03-31T21:59:59Z", "2027-04-30"),
            // 1 April in Berlin (summer time).
            ("2027-03-31T23:59:59Z", "2027-05-01"),
            ("2027-12-31T12:00:00Z", "2028-01-31"),
        ];
        for (received, due) in table {
            assert_eq!(due_date(t(received)), d(due), "{received}");
        }
    }

    /// R4.3: the extension runs from the original due date (31 Jan → 28 Feb → 28 Apr;
    /// before the fix it ran from the receipt, 30 Apr, past the Art. 12(3) limit), and it
    /// does not depend on the day staff extend.
    #[test]
    fn extension_within_the_first_month_counts_from_the_original_due_date() {
        let received = t("2027-01-31T10:00:00Z");
        assert_eq!(
            extended_due_date(received, t("2027-02-28T22:00:00Z"), 2, false, "Umfang"),
            Ok(d("2027-04-28"))
        );
        assert_eq!(
            extended_due_date(received, t("2027-02-10T00:00:00Z"), 1, false, "Umfang"),
            Ok(d("2027-03-28"))
        );
        assert_eq!(
            extended_due_date(received, t("2027-02-01T00:00:00Z"), 2, false, "Umfang"),
            Ok(d("2027-04-28")),
            "the day of the extension does not matter"
        );
        let received = t("2027-03-15T10:00:00Z");
        assert_eq!(
            extended_due_date(received, t("2027-04-15T20:00:00Z"), 2, false, "Umfang"),
            Ok(d("2027-06-15"))
        );
    }

    /// R4.3: an extension is refused after the first month, beyond two months, a second
    /// time, and without a reason.
    #[test]
    fn extension_refused_after_the_first_month_beyond_two_months_twice_or_without_reason() {
        let received = t("2027-03-15T10:00:00Z");
        let within = t("2027-04-01T00:00:00Z");
        assert_eq!(
            extended_due_date(received, t("2027-04-16T00:00:00Z"), 1, false, "x"),
            Err(ExtensionError::TooLate)
        );
        assert_eq!(
            extended_due_date(received, within, 3, false, "x"),
            Err(ExtensionError::InvalidLength)
        );
        assert_eq!(
            extended_due_date(received, within, 0, false, "x"),
            Err(ExtensionError::InvalidLength)
        );
        assert_eq!(
            extended_due_date(received, within, 1, true, "x"),
            Err(ExtensionError::AlreadyExtended)
        );
        assert_eq!(
            extended_due_date(received, within, 1, false, "  "),
            Err(ExtensionError::ReasonMissing)
        );
    }

    /// R4.10: the days left that staff see are Berlin calendar days, 0 on the due date and
    /// negative once it is past.
    #[test]
    fn days_left_counts_calendar_days_and_goes_negative_when_overdue() {
        assert_eq!(days_left(d("2027-04-15"), t("2027-04-15T21:00:00Z")), 0);
        // 01:00 on 16 April in Berlin.
        assert_eq!(days_left(d("2027-04-15"), t("2027-04-15T23:00:00Z")), -1);
        assert_eq!(days_left(d("2027-04-15"), t("2027-03-15T01:00:00Z")), 31);
        assert_eq!(days_left(d("2027-04-15"), t("2027-04-17T00:00:00Z")), -2);
    }

    #[test]
    fn request_types_round_trip_through_their_codes() {
        for t in RequestType::ALL {
            assert_eq!(RequestType::parse(t.code()), Some(t));
        }
        assert_eq!(RequestType::parse("delete_everything"), None);
    }
}
