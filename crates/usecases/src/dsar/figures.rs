//! Accountability figures (Art. 5(2) GDPR): what happened to the data-subject requests,
//! per request type.
//!
//! Two views of the same facts:
//! - **metrics** at every state change ([`committed`]), emitted as EMF with a
//!   `RequestType` dimension (a type code, never anything of the subject), for the
//!   dashboard and alarms. Every request store calls [`committed`] after a successful
//!   `commit`, so no transition can forget it and none is counted twice (a conflicting
//!   commit counts nothing).
//! - **stats** for a period ([`stats`]), computed from the stored request records, the
//!   source of truth: they work where nothing turns EMF into metrics (locally) and do
//!   not depend on a metric having been emitted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use domain::dsar::{days_left, RequestStatus, RequestType};
use domain::retention::berlin_date;

use super::records::RequestRecord;
use crate::ports::StoreError;
use crate::telemetry::metric_with;

/// The dimension every per-type metric carries.
pub const TYPE_DIMENSION: &str = "RequestType";

/// The longest period the stats route answers for (a year, leap day included).
pub const MAX_STATS_DAYS: i64 = 366;

/// Emits the per-type metrics of one committed change of `record` (its state after the
/// commit), audited as `action` at `at`; `created` for a new request.
///
/// - `DsarReceived` for a new request, and `DsarVerified` too when it arrives verified
///   (entered by staff, or queued from a call);
/// - `DsarVerified` when a code or a staff check verifies it (`dsar.verified`,
///   `dsar.identity_verified`);
/// - `DsarExtended`, `DsarDenied`, `DsarFailed` on those actions;
/// - `DsarCompleted` when it is closed as completed, with `DsarCompletedLate` (1 late,
///   0 on time) and `DsarDaysToComplete` (Berlin calendar days from receipt).
pub fn committed(record: &RequestRecord, created: bool, action: &str, at: DateTime<Utc>) {
    let dims = [(TYPE_DIMENSION, record.request_type.code())];
    let count = |name: &str| metric_with(name, 1.0, &dims);
    if created {
        count("DsarReceived");
        if record.verified_at.is_some() {
            count("DsarVerified");
        }
        return;
    }
    match action {
        "dsar.verified" | "dsar.identity_verified" => count("DsarVerified"),
        "dsar.extended" => count("DsarExtended"),
        "dsar.denied" => count("DsarDenied"),
        "dsar.failed" => count("DsarFailed"),
        _ => {}
    }
    if record.status == RequestStatus::Completed && record.closed_at == Some(at) {
        count("DsarCompleted");
        let late = berlin_date(at) > record.due_date;
        metric_with("DsarCompletedLate", if late { 1.0 } else { 0.0 }, &dims);
        metric_with(
            "DsarDaysToComplete",
            days_to_close(record, at) as f64,
            &dims,
        );
    }
}

/// Berlin calendar days from receipt to `closed`.
fn days_to_close(record: &RequestRecord, closed: DateTime<Utc>) -> i64 {
    (berlin_date(closed) - berlin_date(record.received_at)).num_days()
}

/// The request records received in a period, whatever their state.
#[async_trait]
pub trait RequestHistory: Send + Sync {
    /// Every request record whose receipt falls on a Berlin day in `[from, to]`.
    async fn received_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RequestRecord>, StoreError>;
}

/// The figures of one request type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeFigures {
    pub received: u64,
    /// Reached verification (by code, by a staff check, or entered verified).
    pub verified: u64,
    pub denied: u64,
    pub extended: u64,
    pub completed: u64,
    /// Completed on or before the due date (extended due date included).
    pub completed_on_time: u64,
    /// Still open and past the due date now.
    pub overdue_open: u64,
    /// Median Berlin days from receipt to completion; `None` when none completed.
    pub median_days: Option<f64>,
}

/// The figures of a period, per type code (every type, zeros included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub types: BTreeMap<&'static str, TypeFigures>,
}

/// Why a period is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("from must not be after to")]
    Reversed,
    #[error("the period may span at most 366 days")]
    TooWide,
}

/// Checks a period `[from, to]`: in order, at most [`MAX_STATS_DAYS`] days.
pub fn period(from: NaiveDate, to: NaiveDate) -> Result<(NaiveDate, NaiveDate), PeriodError> {
    if from > to {
        return Err(PeriodError::Reversed);
    }
    if (to - from).num_days() + 1 > MAX_STATS_DAYS {
        return Err(PeriodError::TooWide);
    }
    Ok((from, to))
}

/// The figures of the requests received in `[from, to]` (Berlin days), as they stand at
/// `now`. Records received outside the period are ignored, whatever the source returned.
pub fn stats(
    records: &[RequestRecord],
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Stats {
    let mut types: BTreeMap<&'static str, TypeFigures> = RequestType::ALL
        .iter()
        .map(|t| (t.code(), TypeFigures::default()))
        .collect();
    let mut days: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
    for r in records {
        let received = berlin_date(r.received_at);
        if received < from || received > to {
            continue;
        }
        let f = types.entry(r.request_type.code()).or_default();
        f.received += 1;
        f.verified += u64::from(r.verified_at.is_some());
        f.denied += u64::from(r.status == RequestStatus::Denied);
        f.extended += u64::from(r.extended);
        if r.status == RequestStatus::Completed {
            f.completed += 1;
            if let Some(closed) = r.closed_at {
                f.completed_on_time += u64::from(berlin_date(closed) <= r.due_date);
                days.entry(r.request_type.code())
                    .or_default()
                    .push(days_to_close(r, closed));
            }
        }
        f.overdue_open += u64::from(r.status.is_open() && days_left(r.due_date, now) < 0);
    }
    for (code, mut d) in days {
        d.sort_unstable();
        let n = d.len();
        let median = if n % 2 == 1 {
            d[n / 2] as f64
        } else {
            (d[n / 2 - 1] + d[n / 2]) as f64 / 2.0
        };
        if let Some(f) = types.get_mut(code) {
            f.median_days = Some(median);
        }
    }
    Stats { from, to, types }
}
