//! The CRM outbox (issue 17, Art. 19): every event for the CRM is an item written in the
//! same transaction as the state change that causes it (a request closed as rectified,
//! restricted, objected or erased; a lead ready for follow-up), and delivered by the
//! `crm-worker` until the CRM answers 2xx.
//!
//! Why a stream and a schedule: the table stream hands each new item to the worker at
//! once (seconds from the change to the CRM); the schedule (every minute) retries what
//! failed, with a backoff per item, because a stream retry cannot wait minutes. An item
//! holds the event id, the type, the lead id, the time and, for the dsar notices, the
//! request id: no personal data, so an erasure notice outlives the erased subject and is
//! delivered after the subject's items are gone. The follow-up record of `followup` and
//! `rectified` is read from the subject's partition when the delivery is made, so it is
//! never copied out of the subject's (erasable, sealed) items.
//!
//! Exactly once at the receiver: the event id is stable across retries (the receiver
//! dedupes on it), and the outbox records at most one successful delivery (a conditional
//! write): a 2xx whose answer was lost is sent again, deduped there, and recorded once
//! here. A delivered item loses its lead id and keeps only its delivery state (for the
//! status route) until its TTL.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::ports::StoreError;
use domain::crm::CrmEventType;
use domain::{Clock, LeadId, RequestId};

/// Attempts after which an undelivered event is a failure (alarmed): about 2 hours of
/// failures with the backoff below.
pub const FAILED_AFTER_ATTEMPTS: u32 = 8;
/// The first retry waits this long; each further one twice as long…
pub const BACKOFF_BASE_SECONDS: i64 = 60;
/// …but never longer than an hour.
pub const BACKOFF_CAP_SECONDS: i64 = 3600;
/// How long an item lives (its TTL): delivery state for the status route, and the
/// retries of an event that keeps failing. Holds no personal data.
pub const OUTBOX_DAYS: i64 = 90;

/// One event for the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmEvent {
    /// Stable across retries: the receiver dedupes on it. A dsar notice uses its request
    /// id, so a retried request close cannot make two.
    pub event_id: String,
    pub kind: CrmEventType,
    /// `None` once delivered (the item keeps only its delivery state).
    pub lead_id: Option<LeadId>,
    pub occurred_at: DateTime<Utc>,
    /// The data-subject request that caused a notice.
    pub request_id: Option<RequestId>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last failure (an HTTP status or `unreachable`), never a body.
    pub last_error: Option<String>,
}

impl CrmEvent {
    /// A new event, due at once.
    pub fn new(
        event_id: String,
        kind: CrmEventType,
        lead: LeadId,
        request: Option<RequestId>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            event_id,
            kind,
            lead_id: Some(lead),
            occurred_at: now,
            request_id: request,
            attempts: 0,
            next_attempt_at: now,
            delivered_at: None,
            last_error: None,
        }
    }

    /// The Art. 19 notice of a closed request.
    pub fn notice(
        kind: CrmEventType,
        lead: LeadId,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Self {
        Self::new(request.to_string(), kind, lead, Some(request), now)
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.occurred_at + Duration::days(OUTBOX_DAYS)
    }

    /// The event after one more failed attempt at `now`.
    pub fn failed(&self, now: DateTime<Utc>, error: &str) -> Self {
        let attempts = self.attempts.saturating_add(1);
        Self {
            attempts,
            next_attempt_at: now + backoff(attempts),
            last_error: Some(error.to_owned()),
            ..self.clone()
        }
    }

    /// The delivery state the status route and the Art. 15 information show.
    pub fn state(&self) -> DeliveryState {
        match (self.delivered_at, self.attempts >= FAILED_AFTER_ATTEMPTS) {
            (Some(at), _) => DeliveryState::Told { at },
            (None, true) => DeliveryState::Failed {
                attempts: self.attempts,
                next_attempt_at: self.next_attempt_at,
            },
            (None, false) => DeliveryState::Pending {
                attempts: self.attempts,
                since: self.occurred_at,
            },
        }
    }
}

/// Whether the CRM was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    Told {
        at: DateTime<Utc>,
    },
    /// Not yet; still retried.
    Pending {
        attempts: u32,
        since: DateTime<Utc>,
    },
    /// Failing for [`FAILED_AFTER_ATTEMPTS`] attempts (alarmed); still retried.
    Failed {
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
    },
}

impl DeliveryState {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Told { .. } => "told",
            Self::Pending { .. } => "pending",
            Self::Failed { .. } => "failed",
        }
    }

    /// `{"state","at"}` for the status route.
    pub fn to_json(&self) -> serde_json::Value {
        let at = match self {
            Self::Told { at } => *at,
            Self::Pending { since, .. } => *since,
            Self::Failed {
                next_attempt_at, ..
            } => *next_attempt_at,
        };
        serde_json::json!({
            "state": self.code(),
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }
}

/// The wait after the `attempts`-th failure: base · 2^(attempts−1), capped.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    Duration::seconds(
        BACKOFF_BASE_SECONDS
            .saturating_mul(1_i64 << exp)
            .min(BACKOFF_CAP_SECONDS),
    )
}

/// The outbox items.
#[async_trait]
pub trait CrmOutbox: Send + Sync {
    /// Every undelivered event.
    async fn pending(&self) -> Result<Vec<CrmEvent>, StoreError>;
    /// Records the one successful delivery and drops the lead id; `false` when it was
    /// already recorded (nothing changes then).
    async fn delivered(&self, event_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Stores a failed attempt (only while the event is undelivered).
    async fn failed(&self, event: &CrmEvent) -> Result<(), StoreError>;
    /// One event, delivered or not (the status route).
    async fn event(&self, event_id: &str) -> Result<Option<CrmEvent>, StoreError>;
}

/// The follow-up record a `followup` or `rectified` event sends, read when it is sent;
/// `None` when the subject has none (any more).
#[async_trait]
pub trait FollowUpRecords: Send + Sync {
    async fn record(&self, lead: &LeadId) -> Result<Option<serde_json::Value>, StoreError>;
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The CRM answered, not 2xx.
    #[error("the CRM answered {0}")]
    Status(u16),
    /// No answer (connection, timeout).
    #[error("the CRM is unreachable")]
    Unreachable,
    /// The secret could not be read.
    #[error("the webhook secret is unavailable")]
    Secret,
}

impl SendError {
    pub fn code(&self) -> String {
        match self {
            Self::Status(s) => format!("status_{s}"),
            Self::Unreachable => "unreachable".to_owned(),
            Self::Secret => "secret_unavailable".to_owned(),
        }
    }
}

/// The CRM's webhook: signs and posts one body.
#[async_trait]
pub trait CrmEndpoint: Send + Sync {
    async fn post(&self, body: &[u8]) -> Result<(), SendError>;
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrainReport {
    pub due: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Undelivered after this drain.
    pub pending: usize,
    /// Undelivered for [`FAILED_AFTER_ATTEMPTS`] attempts or more.
    pub failing: usize,
}

/// Delivers the outbox to the CRM.
pub struct CrmDelivery {
    pub outbox: Arc<dyn CrmOutbox>,
    pub endpoint: Arc<dyn CrmEndpoint>,
    pub records: Arc<dyn FollowUpRecords>,
    pub clock: Arc<dyn Clock>,
}

impl CrmDelivery {
    /// Sends every due event (oldest first, within `budget`).
    #[tracing::instrument(name = "crm_drain", skip_all)]
    pub async fn drain(&self, budget: std::time::Duration) -> Result<DrainReport, StoreError> {
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let mut pending = self.outbox.pending().await?;
        pending.sort_by_key(|e| (e.next_attempt_at, e.occurred_at));
        let mut report = DrainReport::default();
        let mut failing = 0;
        let mut left = 0;
        for event in pending {
            if event.next_attempt_at > now || started.elapsed() >= budget {
                left += 1;
                failing += usize::from(event.attempts >= FAILED_AFTER_ATTEMPTS);
                continue;
            }
            report.due += 1;
            match self.send(&event).await? {
                Ok(()) => {
                    if self
                        .outbox
                        .delivered(&event.event_id, self.clock.now())
                        .await?
                    {
                        report.delivered += 1;
                        crate::telemetry::metric("CrmEventsDelivered", 1.0);
                    }
                }
                Err(e) => {
                    let next = event.failed(self.clock.now(), &e.code());
                    report.failed += 1;
                    left += 1;
                    tracing::warn!(
                        kind = event.kind.code(),
                        attempts = next.attempts,
                        error = %e,
                        "delivery to the CRM failed; kept in the outbox"
                    );
                    if next.attempts == FAILED_AFTER_ATTEMPTS {
                        tracing::error!(
                            kind = event.kind.code(),
                            "delivery to the CRM keeps failing"
                        );
                    }
                    failing += usize::from(next.attempts >= FAILED_AFTER_ATTEMPTS);
                    self.outbox.failed(&next).await?;
                }
            }
        }
        report.pending = left;
        report.failing = failing;
        // Gauges for the alarms: the backlog and the events failing for hours.
        crate::telemetry::metric("CrmEventsPending", report.pending as f64);
        crate::telemetry::metric("CrmEventsFailing", report.failing as f64);
        tracing::info!(
            due = report.due,
            delivered = report.delivered,
            failed = report.failed,
            pending = report.pending,
            failing = report.failing,
            "CRM outbox drained"
        );
        Ok(report)
    }

    /// One attempt; the outer error is the store's (retried by the caller), the inner the
    /// CRM's.
    async fn send(&self, event: &CrmEvent) -> Result<Result<(), SendError>, StoreError> {
        let Some(lead) = event.lead_id else {
            // Delivered meanwhile (a concurrent drain): nothing to send.
            return Ok(Ok(()));
        };
        let record = if event.kind.carries_record() {
            self.records.record(&lead).await?
        } else {
            None
        };
        let body = domain::crm::body(
            &event.event_id,
            event.kind,
            &lead.to_string(),
            event.occurred_at,
            record.as_ref(),
        );
        Ok(self.endpoint.post(&body).await)
    }
}

/// The follow-up records as sales holds them (`crate::sales`), opened with the subject's
/// key, with the subject's current name and contact details (so a `rectified` event
/// carries the corrected values). `None` when the subject has no follow-up item, or may
/// no longer be processed (restricted, objecting, erasure pending, erased).
pub struct SealedFollowUps {
    pub store: Arc<dyn FollowUpItems>,
    pub leads: Arc<crate::signup::LeadService>,
}

#[async_trait]
impl FollowUpRecords for SealedFollowUps {
    async fn record(&self, lead: &LeadId) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(item) = self.store.get(lead).await? else {
            return Ok(None);
        };
        let Some((current, key)) = self.leads.read_with_key(lead).await.map_err(read_error)? else {
            return Ok(None);
        };
        if !current.stored.may_process() {
            return Ok(None);
        }
        let malformed = || StoreError {
            operation: "crm_followup_record",
            retry: crate::ports::Retry::Permanent,
            source: None,
        };
        let plain = key
            .open(&domain::sales::followup_aad(lead), &item.sealed)
            .map_err(|_| malformed())?;
        let mut record: domain::sales::FollowUpRecord =
            serde_json::from_slice(&plain).map_err(|_| malformed())?;
        if record.lead_id != *lead {
            return Err(malformed());
        }
        let p = &current.profile;
        record.first_name = p.first_name.expose().to_owned();
        record.last_name = p.last_name.expose().to_owned();
        record.email = p.email.expose().to_owned();
        record.phone = p.phone.expose().to_owned();
        record.done_at = item.done_at;
        serde_json::to_value(&record)
            .map(Some)
            .map_err(|_| malformed())
    }
}

fn read_error(e: crate::signup::ReadError) -> StoreError {
    match e {
        crate::signup::ReadError::Store(s) => s,
        other => StoreError {
            operation: "crm_followup_lead",
            retry: match other {
                crate::signup::ReadError::Keys(k) => k.retry,
                _ => crate::ports::Retry::Permanent,
            },
            source: None,
        },
    }
}

/// The `followup` event of a lead's follow-up item built from `call_id`: one per item
/// (a redelivered stream record or a `done` mark makes no second).
pub fn followup_event(lead: LeadId, call_id: &str, now: DateTime<Utc>) -> CrmEvent {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(format!("{lead}/{call_id}").as_bytes()));
    CrmEvent::new(
        format!("followup-{}", &digest[..32]),
        CrmEventType::Followup,
        lead,
        None,
        now,
    )
}

/// The follow-up items (sales' item format, `crate::sales::ports`), read by lead.
#[async_trait]
pub trait FollowUpItems: Send + Sync {
    async fn get(
        &self,
        lead: &LeadId,
    ) -> Result<Option<crate::sales::ports::FollowUpItem>, StoreError>;
}

/// Queues events (the crm worker, for the follow-up items the table stream shows it).
#[async_trait]
pub trait CrmQueue: Send + Sync {
    /// Creates the event unless one with its id exists; `true` when created.
    async fn enqueue(&self, event: &CrmEvent) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed CRM delivery is retried after 1, 2, 4, … minutes, at most hourly, and
    /// counts as failed (alarmed) from the eighth attempt.
    #[test]
    fn the_backoff_doubles_from_a_minute_and_failure_comes_after_eight_attempts() {
        let secs: Vec<i64> = (1..=8).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        let now = Utc::now();
        let mut e = CrmEvent::new("e".into(), CrmEventType::Erased, LeadId::new(), None, now);
        for n in 1..FAILED_AFTER_ATTEMPTS {
            e = e.failed(now, "status_500");
            assert_eq!(e.state().code(), "pending", "{n}");
        }
        e = e.failed(now, "status_500");
        assert_eq!(e.state().code(), "failed");
        assert_eq!(e.expires_at(), now + Duration::days(90));
    }
}
