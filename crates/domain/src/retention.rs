//! Retention classes (R3) and the date arithmetic that turns "kept 6 calendar months from
//! call end" into an instant.
//!
//! All instants are UTC. Months are calendar months with the day clamped to the end of a
//! shorter month (31 Aug + 6 months = 28/29 Feb). Statutory periods under §257(5) HGB and
//! §147(4) AO start at the end of the calendar year in which the triggering event falls,
//! and that year is the policy's: the calendar year in Europe/Berlin (a contract ending at
//! 2027-12-31T23:30Z ends on 1 January 2028 in Berlin, so its period starts at the end of
//! 2028).

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate, TimeZone, Utc, Weekday,
};

/// Kind of records a contract produced, which decides its statutory period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractRecords {
    /// Business letters received and sent: 6 years (§257(1) Nr. 2, 3 and (4) HGB).
    BusinessLetters,
    /// Booking vouchers: 8 years (§257(4) HGB, §147(3) AO as amended 2025).
    BookingVouchers,
    /// Books, inventories, annual accounts: 10 years (§257(4) HGB, §147(3) AO).
    Books,
}

/// A retention class from R3's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionClass {
    Recording,
    Lead,
    Contract(ContractRecords),
    PhoneConsentProof,
    Export,
    Verification,
    Request,
    Logs,
    /// The audit trail: who did what to which opaque id, when (Art. 5(2)).
    Audit,
}

/// Length of a retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Minutes(u32),
    Days(u32),
    Months(u32),
    Years(u32),
}

/// Where counting starts, relative to the triggering event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// At the event itself.
    Event,
    /// At the end of the calendar year in which the event falls (§257(5) HGB, §147(4) AO).
    EndOfCalendarYear,
}

/// What happens when the period ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposal {
    /// Every S3 version of the object and its transcript are deleted.
    DeleteRecording,
    /// The whole subject is erased with the R4.5 mechanics (key destroyed first).
    EraseSubject,
    /// The items (and objects) of the class are deleted.
    Delete,
    /// The log group's retention setting deletes the log events.
    LogGroupRetention,
}

impl RetentionClass {
    /// Every class, in R3's order.
    pub const ALL: [RetentionClass; 11] = [
        Self::Recording,
        Self::Lead,
        Self::Contract(ContractRecords::BusinessLetters),
        Self::Contract(ContractRecords::BookingVouchers),
        Self::Contract(ContractRecords::Books),
        Self::PhoneConsentProof,
        Self::Export,
        Self::Verification,
        Self::Request,
        Self::Logs,
        Self::Audit,
    ];

    /// Stable code used in index keys and reports (never personal data).
    pub fn code(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Lead => "lead",
            Self::Contract(ContractRecords::BusinessLetters) => "contract6",
            Self::Contract(ContractRecords::BookingVouchers) => "contract8",
            Self::Contract(ContractRecords::Books) => "contract10",
            Self::PhoneConsentProof => "phone_consent",
            Self::Export => "export",
            Self::Verification => "verification",
            Self::Request => "request",
            Self::Logs => "logs",
            Self::Audit => "audit",
        }
    }

    pub fn period(self) -> Period {
        match self {
            Self::Recording => Period::Months(6),
            Self::Lead => Period::Years(3),
            Self::Contract(ContractRecords::BusinessLetters) => Period::Years(6),
            Self::Contract(ContractRecords::BookingVouchers) => Period::Years(8),
            Self::Contract(ContractRecords::Books) => Period::Years(10),
            Self::PhoneConsentProof => Period::Years(5),
            Self::Export => Period::Days(7),
            Self::Verification => Period::Minutes(15),
            Self::Request => Period::Years(3),
            Self::Logs => Period::Days(30),
            // The regular limitation period (§195 BGB), within which a data subject can
            // claim (Art. 82) and we must show how a request or a call was handled.
            Self::Audit => Period::Years(3),
        }
    }

    pub fn anchor(self) -> Anchor {
        match self {
            Self::Contract(_) => Anchor::EndOfCalendarYear,
            _ => Anchor::Event,
        }
    }

    pub fn disposal(self) -> Disposal {
        match self {
            Self::Recording => Disposal::DeleteRecording,
            Self::Lead | Self::Contract(_) => Disposal::EraseSubject,
            Self::Logs => Disposal::LogGroupRetention,
            _ => Disposal::Delete,
        }
    }

    /// The instant at which data of this class, whose clock started at `event`, is due
    /// for deletion. `None` only for instants beyond chrono's range (year 262143).
    pub fn due_at(self, event: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = match self.anchor() {
            Anchor::Event => event,
            Anchor::EndOfCalendarYear => end_of_calendar_year(event)?,
        };
        add_period(start, self.period())
    }
}

const fn offset(seconds: i32) -> FixedOffset {
    match FixedOffset::east_opt(seconds) {
        Some(o) => o,
        None => panic!("offset out of range"),
    }
}

/// Central European Time (winter): UTC+1.
const CET: FixedOffset = offset(3600);
/// Central European Summer Time: UTC+2.
const CEST: FixedOffset = offset(7200);

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    let last = first_of_next.pred_opt()?;
    let back = last.weekday().num_days_from_sunday();
    last.checked_sub_days(chrono::Days::new(u64::from(back)))
        .filter(|d| d.weekday() == Weekday::Sun)
}

/// Europe/Berlin's offset from UTC at `t`, by the EU rule in force since 1996 (Directive
/// 2000/84/EC): summer time (UTC+2) from 01:00 UTC on the last Sunday of March to
/// 01:00 UTC on the last Sunday of October, UTC+1 otherwise. Computed here rather than
/// from a time-zone database: the rule is one line of law and needs no data updates.
pub fn berlin_offset(t: DateTime<Utc>) -> FixedOffset {
    let year = t.year();
    let switch = |month| {
        last_sunday(year, month)
            .and_then(|d| d.and_hms_opt(1, 0, 0))
            .map(|n| n.and_utc())
    };
    let summer = match (switch(3), switch(10)) {
        (Some(start), Some(end)) => t >= start && t < end,
        _ => false,
    };
    if summer {
        CEST
    } else {
        CET
    }
}

/// The calendar day `t` falls on, in Europe/Berlin (the controller's and the subject's
/// day: deadlines under Art. 12(3) run in days of the place of business).
pub fn berlin_date(t: DateTime<Utc>) -> chrono::NaiveDate {
    t.with_timezone(&berlin_offset(t)).date_naive()
}

/// `t` as Berlin wall-clock time, for texts.
pub fn berlin_time(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&berlin_offset(t))
}

/// The calendar year `t` falls in, in Europe/Berlin.
pub fn berlin_year(t: DateTime<Utc>) -> i32 {
    t.with_timezone(&berlin_offset(t)).year()
}

/// The first instant after the calendar year of `t` in Europe/Berlin: 1 January of the
/// next year, 00:00 in Berlin (always winter time), that is 31 December 23:00 UTC.
pub fn end_of_calendar_year(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    CET.with_ymd_and_hms(berlin_year(t).checked_add(1)?, 1, 1, 0, 0, 0)
        .single()
        .map(|d| d.with_timezone(&Utc))
}

/// Adds a period with calendar semantics: months and years clamp the day to the end of a
/// shorter month (29 Feb + 1 year = 28 Feb).
pub fn add_period(t: DateTime<Utc>, period: Period) -> Option<DateTime<Utc>> {
    match period {
        Period::Minutes(n) => t.checked_add_signed(Duration::minutes(i64::from(n))),
        Period::Days(n) => t.checked_add_signed(Duration::days(i64::from(n))),
        Period::Months(n) => t.checked_add_months(Months::new(n)),
        Period::Years(n) => t.checked_add_months(Months::new(n.checked_mul(12)?)),
    }
}

/// Partition of the expiry index for data of `class` due at `due`: one partition per
/// class and calendar month, so the sweep queries a handful of partitions by due time
/// instead of scanning the table.
pub fn expiry_bucket(class: RetentionClass, due: DateTime<Utc>) -> String {
    format!("{}#{}", class.code(), due.format("%Y-%m"))
}

/// A contract of a subject (R3.4): its period and the kind of records it produced, which
/// decides how long they are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub records: ContractRecords,
}

/// An instant as every stored item and report writes it: RFC 3339, milliseconds, `Z`.
pub fn stored_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How long a pseudonymised analytics file (R6) lives in the exports bucket: the bucket's
/// lifecycle rule (`analytics-backstop` in `infra/template.yaml`) expires it after this
/// many days. An export leaves out subjects whose own retention ends within this time
/// (plus a day for the lifecycle to act), so no file outlives a subject it names.
pub const ANALYTICS_FILE_DAYS: u32 = 90;

/// Time between an item's retention due date and its TTL: the sweep deletes on the due
/// date; TTL only catches what the sweep missed.
pub const TTL_GRACE: Duration = Duration::days(7);

/// The retention attributes every stored item carries: when it is due, the expiry-index
/// partition the sweep finds it in, and the TTL (due date plus [`TTL_GRACE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub expires_at: DateTime<Utc>,
    pub bucket: String,
    pub ttl: i64,
}

impl Retention {
    /// Data of `class` whose clock starts at `start`.
    pub fn of(class: RetentionClass, start: DateTime<Utc>) -> Self {
        // Beyond chrono's range only for years past 262000: clamp rather than fail.
        Self::until(
            class,
            class.due_at(start).unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Data of `class` kept until `due` (a legal hold, an explicit end).
    pub fn until(class: RetentionClass, due: DateTime<Utc>) -> Self {
        Self {
            expires_at: due,
            bucket: expiry_bucket(class, due),
            ttl: (due + TTL_GRACE).timestamp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// R3: a recording is due six calendar months after the call's end, clamped to the
    /// month's end (31 Aug → 28 Feb, or 29 Feb in a leap year).
    #[test]
    fn recordings_are_kept_six_calendar_months_clamped_to_month_end() {
        let table = [
            ("2026-08-31T10:00:00Z", "2027-02-28T10:00:00Z"),
            ("2027-08-31T10:00:00Z", "2028-02-29T10:00:00Z"),
            ("2026-03-15T23:59:59Z", "2026-09-15T23:59:59Z"),
            ("2026-12-31T00:00:00Z", "2027-06-30T00:00:00Z"),
        ];
        for (call_end, due) in table {
            assert_eq!(
                RetentionClass::Recording.due_at(t(call_end)),
                Some(t(due)),
                "{call_end}"
            );
        }
    }

    /// R3: a lead is due three years after the last contact (29 Feb → 28 Feb).
    #[test]
    fn leads_are_kept_three_years_from_last_contact_leap_day_included() {
        assert_eq!(
            RetentionClass::Lead.due_at(t("2028-02-29T12:00:00Z")),
            Some(t("2031-02-28T12:00:00Z"))
        );
        assert_eq!(
            RetentionClass::Lead.due_at(t("2026-11-28T08:30:00Z")),
            Some(t("2029-11-28T08:30:00Z"))
        );
    }

    /// R3, R3.4: a contract ending in March 2027 holds for 6, 8 and 10 years from the end
    /// of 2027 (business letters, booking vouchers, books).
    #[test]
    fn contract_periods_start_at_the_end_of_the_calendar_year() {
        let contract_end = t("2027-03-15T00:00:00Z");
        let table = [
            (ContractRecords::BusinessLetters, "2033-12-31T23:00:00Z"),
            (ContractRecords::BookingVouchers, "2035-12-31T23:00:00Z"),
            (ContractRecords::Books, "2037-12-31T23:00:00Z"),
        ];
        for (kind, due) in table {
            assert_eq!(
                RetentionClass::Contract(kind).due_at(contract_end),
                Some(t(due))
            );
        }
    }

    /// R3 (contract class): the calendar year is Berlin's. A contract ending at
    /// 2027-12-31T23:30Z ends in 2028 in Berlin (before the fix: 2027, due a year early);
    /// one ending a second before Berlin's midnight still counts from 2027's end.
    #[test]
    fn contract_years_end_on_31_december_in_berlin_not_utc() {
        let six = RetentionClass::Contract(ContractRecords::BusinessLetters);
        let table = [
            ("2027-12-31T22:59:59Z", "2033-12-31T23:00:00Z"),
            ("2027-12-31T23:00:00Z", "2034-12-31T23:00:00Z"),
            ("2027-12-31T23:30:00Z", "2034-12-31T23:00:00Z"),
            ("2028-01-01T00:00:00Z", "2034-12-31T23:00:00Z"),
            ("2027-01-01T00:00:00Z", "2033-12-31T23:00:00Z"),
            ("2026-12-31T23:00:00Z", "2033-12-31T23:00:00Z"),
        ];
        for (end, due) in table {
            assert_eq!(six.due_at(t(end)), Some(t(due)), "{end}");
        }
        assert_eq!(
            end_of_calendar_year(t("2027-12-31T23:30:00Z")),
            Some(t("2028-12-31T23:00:00Z"))
        );
    }

    /// Berlin's offset at the summer-time switches and around New Year, checked against
    /// Python's `zoneinfo` (the IANA database) as an independent implementation.
    #[test]
    fn berlin_offset_matches_the_tz_database_at_dst_switches_and_new_year() {
        let table = [
            ("2027-03-28T00:59:59Z", 1, 2027),
            ("2027-03-28T01:00:00Z", 2, 2027),
            ("2027-10-31T00:59:59Z", 2, 2027),
            ("2027-10-31T01:00:00Z", 1, 2027),
            ("2026-03-29T00:59:59Z", 1, 2026),
            ("2026-03-29T01:00:00Z", 2, 2026),
            ("2026-10-25T00:59:59Z", 2, 2026),
            ("2026-10-25T01:00:00Z", 1, 2026),
            ("2027-12-31T22:59:59Z", 1, 2027),
            ("2027-12-31T23:00:00Z", 1, 2028),
            ("2028-06-30T22:30:00Z", 2, 2028),
            ("2030-03-31T01:00:00Z", 2, 2030),
            ("2030-10-27T00:59:59Z", 2, 2030),
        ];
        for (at, hours, year) in table {
            assert_eq!(berlin_offset(t(at)).local_minus_utc(), hours * 3600, "{at}");
            assert_eq!(berlin_year(t(at)), year, "{at}");
        }
    }

    /// R3: a code is due 15 minutes after its creation, an export 7 days, a phone-consent
    /// proof 5 years.
    #[test]
    fn short_classes() {
        let now = t("2026-11-28T18:00:00Z");
        assert_eq!(
            RetentionClass::Verification.due_at(now),
            Some(t("2026-11-28T18:15:00Z"))
        );
        assert_eq!(
            RetentionClass::Export.due_at(now),
            Some(t("2026-12-05T18:00:00Z"))
        );
        assert_eq!(
            RetentionClass::PhoneConsentProof.due_at(now),
            Some(t("2031-11-28T18:00:00Z"))
        );
    }

    #[test]
    fn expiry_bucket_is_class_and_month() {
        assert_eq!(
            expiry_bucket(RetentionClass::Lead, t("2029-11-28T08:30:00Z")),
            "lead#2029-11"
        );
    }

    #[test]
    fn every_class_has_a_distinct_code() {
        let mut codes: Vec<_> = RetentionClass::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RetentionClass::ALL.len());
    }

    proptest! {
        #[test]
        fn due_dates_never_precede_the_event(secs in 0i64..4_000_000_000, class in 0usize..10) {
            let event = DateTime::from_timestamp(secs, 0).unwrap();
            let due = RetentionClass::ALL[class].due_at(event).unwrap();
            prop_assert!(due > event);
        }

        /// Only the last hour of the UTC year belongs to the next Berlin year; summer
        /// time never reaches New Year, so no instant is assigned to a year twice.
        #[test]
        fn the_berlin_year_differs_from_utcs_only_in_the_last_hour(secs in 0i64..4_000_000_000) {
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            let last_hour = at.month() == 12 && at.day() == 31 && at.hour() == 23;
            prop_assert_eq!(berlin_year(at), at.year() + i32::from(last_hour));
            let end = end_of_calendar_year(at).unwrap();
            prop_assert!(end > at);
            prop_assert_eq!(berlin_year(end), berlin_year(at) + 1);
            prop_assert_eq!(berlin_year(end - Duration::seconds(1)), berlin_year(at));
        }

        #[test]
        fn month_arithmetic_lands_on_a_valid_day_no_later_than_the_source_day(
            secs in 0i64..4_000_000_000, months in 1u32..240
        ) {
            let event = DateTime::from_timestamp(secs, 0).unwrap();
            let due = add_period(event, Period::Months(months)).unwrap();
            prop_assert!(due.day() <= event.day());
            let month_index = |d: DateTime<Utc>| d.year() as i64 * 12 + d.month0() as i64;
            prop_assert_eq!(month_index(due) - month_index(event), months as i64);
        }
    }
}
