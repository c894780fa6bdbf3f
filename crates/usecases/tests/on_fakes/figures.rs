//! The accountability figures of a period (`GET /v1/admin/stats`), computed from request
//! records: which requests a period counts (Berlin receipt days), on time or late, the
//! median, open and overdue, and the period checks.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::dsar::{RequestStatus, RequestType};
use domain::RequestId;
use usecases::dsar::figures::{period, stats, PeriodError, RequestHistory};
use usecases::dsar::ports::RequestStore;
use usecases::dsar::records::{close, new_record, RequestRecord};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn received(kind: RequestType, at: &str) -> RequestRecord {
    new_record(
        RequestId::new(),
        kind,
        RequestStatus::AwaitingVerification,
        t(at),
    )
}

fn completed(kind: RequestType, at: &str, after_days: i64) -> RequestRecord {
    let mut r = received(kind, at);
    r.verified_at = Some(r.received_at);
    let closed = r.received_at + Duration::days(after_days);
    close(&mut r, RequestStatus::Completed, "export_ready", closed);
    r
}

/// R4.3 (Art. 5(2) accountability): per type, the figures count the requests received in
/// the period by Berlin day (received, verified, denied, extended, completed, completed
/// on time, still open past the due date) and the median days to completion; requests
/// received outside the period and other types do not count.
#[test]
fn the_figures_count_each_request_received_in_the_period_by_its_type() {
    let mut records = vec![
        completed(RequestType::Access, "2027-01-10T09:00:00Z", 3),
        completed(RequestType::Access, "2027-01-11T09:00:00Z", 10),
        // Due 2027-02-12, completed 2027-02-15: late.
        completed(RequestType::Access, "2027-01-12T09:00:00Z", 34),
        completed(RequestType::Access, "2027-01-13T09:00:00Z", 20),
        // Due 2027-02-14 and completed that day: on time.
        completed(RequestType::Access, "2027-01-14T09:00:00Z", 31),
        // 31 Jan 23:30 UTC is 1 Feb in Berlin: outside the period.
        completed(RequestType::Access, "2027-01-31T23:30:00Z", 1),
        // 31 Dec 23:30 UTC is 1 Jan in Berlin: inside.
        received(RequestType::Erasure, "2026-12-31T23:30:00Z"),
    ];
    let mut denied = received(RequestType::Erasure, "2027-01-20T09:00:00Z");
    denied.verified_at = Some(denied.received_at);
    close(
        &mut denied,
        RequestStatus::Denied,
        "denied",
        t("2027-01-25T09:00:00Z"),
    );
    records.push(denied);
    let mut extended = received(RequestType::Erasure, "2027-01-05T09:00:00Z");
    extended.status = RequestStatus::InProgress;
    extended.verified_at = Some(extended.received_at);
    extended.extended = true;
    extended.due_date = d("2027-04-05");
    records.push(extended);

    let s = stats(
        &records,
        d("2027-01-01"),
        d("2027-01-31"),
        t("2027-03-01T12:00:00Z"),
    );

    let access = &s.types["access"];
    assert_eq!(
        (
            access.received,
            access.verified,
            access.completed,
            access.completed_on_time
        ),
        (5, 5, 5, 4)
    );
    assert_eq!(
        access.median_days,
        Some(20.0),
        "median of 3, 10, 20, 31, 34"
    );
    let erasure = &s.types["erasure"];
    assert_eq!(
        (
            erasure.received,
            erasure.verified,
            erasure.denied,
            erasure.extended
        ),
        (3, 2, 1, 1)
    );
    assert_eq!(erasure.completed, 0);
    assert_eq!(erasure.median_days, None, "nothing completed");
    assert_eq!(
        erasure.overdue_open, 1,
        "received 1 Jan, due 1 Feb, still open on 1 Mar; the extended one is not overdue"
    );
    assert_eq!(
        s.types.len(),
        RequestType::ALL.len(),
        "every type, zeros included"
    );
    assert_eq!(s.types["objection"].received, 0);
}

/// The median of an even count is the mean of the middle two.
#[test]
fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
    let records = vec![
        completed(RequestType::Restriction, "2027-01-10T09:00:00Z", 2),
        completed(RequestType::Restriction, "2027-01-10T09:00:00Z", 30),
        completed(RequestType::Restriction, "2027-01-10T09:00:00Z", 5),
        completed(RequestType::Restriction, "2027-01-10T09:00:00Z", 6),
    ];
    let s = stats(
        &records,
        d("2027-01-10"),
        d("2027-01-10"),
        t("2027-03-01T12:00:00Z"),
    );
    assert_eq!(s.types["restriction"].median_days, Some(5.5));
}

/// A period runs forwards and spans at most 366 days.
#[test]
fn a_period_runs_forwards_and_spans_at_most_366_days() {
    assert!(
        period(d("2024-01-01"), d("2024-12-31")).is_ok(),
        "a leap year"
    );
    assert!(period(d("2027-01-01"), d("2027-01-01")).is_ok());
    assert_eq!(
        period(d("2024-01-01"), d("2025-01-01")),
        Err(PeriodError::TooWide)
    );
    assert_eq!(
        period(d("2027-01-02"), d("2027-01-01")),
        Err(PeriodError::Reversed)
    );
}

/// The in-memory history returns exactly the Berlin receipt days asked for.
#[tokio::test]
async fn the_history_returns_the_requests_received_on_the_days_asked_for() {
    let store = testkit::MemoryRequests::new();
    let inside = received(RequestType::Access, "2026-12-31T23:30:00Z");
    let outside = received(RequestType::Access, "2026-12-31T22:30:00Z");
    for r in [&inside, &outside] {
        store
            .commit(r, None, vec![], "test", "dsar.received", r.received_at)
            .await
            .unwrap();
    }
    let got = store
        .received_between(d("2027-01-01"), d("2027-01-31"))
        .await
        .unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.request_id).collect();
    assert_eq!(ids, vec![inside.request_id]);
}
