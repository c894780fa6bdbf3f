//! The provider-deletion outbox (R4.5, R3 lead class, Art. 19): deleting a subject's calls
//! at the telephony provider never blocks the erasure here.
//!
//! Before anything of the subject goes, each call id is written to a durable outbox
//! (one item per call, only the provider's call id, attempt count, next attempt, a TTL:
//! no personal data, no subject id). Then the deletion is tried at once; a success
//! removes the entry, a failure leaves it with an exponential backoff (capped). The
//! retention sweep function drains the outbox on its own schedule (hourly, and after
//! each daily run): a schedule can wait, a stream retry cannot, and the sweep already
//! holds the provider key's permission. An entry that keeps failing
//! ([`INCIDENT_AFTER_ATTEMPTS`]) becomes an incident: an audited metric
//! (`ProviderDeletionIncident`, alarmed in the template) and an entry at the top of the
//! staff list.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::dsar::ports::{CallProvider, ProviderError};
use crate::ports::StoreError;
use domain::Clock;

/// Attempts after which a pending deletion is an incident (about 15 hours of failures
/// with the backoff below).
pub const INCIDENT_AFTER_ATTEMPTS: u32 = 5;

/// The first retry waits this long; each further one twice as long…
pub const BACKOFF_BASE_MINUTES: i64 = 60;

/// …but never longer than a day.
pub const BACKOFF_CAP_MINUTES: i64 = 24 * 60;

/// How long an entry lives at most (its TTL, from when it was queued): long after the
/// incident was raised; the entry holds only a provider call id.
pub const OUTBOX_DAYS: i64 = 90;

/// A deletion at the provider still to be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeletion {
    /// The provider's call id (no personal data).
    pub call_id: String,
    /// Failed attempts so far.
    pub attempts: u32,
    pub queued_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    /// Raised once attempts reached [`INCIDENT_AFTER_ATTEMPTS`].
    pub incident: bool,
}

impl PendingDeletion {
    /// A new entry, due at once.
    pub fn new(call_id: &str, now: DateTime<Utc>) -> Self {
        Self {
            call_id: call_id.to_owned(),
            attempts: 0,
            queued_at: now,
            next_attempt_at: now,
            incident: false,
        }
    }

    /// When the entry goes at the latest (its TTL).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.queued_at + Duration::days(OUTBOX_DAYS)
    }

    /// The entry after one more failed attempt at `now`.
    pub fn failed(&self, now: DateTime<Utc>) -> Self {
        let attempts = self.attempts.saturating_add(1);
        Self {
            attempts,
            next_attempt_at: now + backoff(attempts),
            incident: self.incident || attempts >= INCIDENT_AFTER_ATTEMPTS,
            ..self.clone()
        }
    }
}

/// The wait after the `attempts`-th failure: base · 2^(attempts−1), capped.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    let minutes = BACKOFF_BASE_MINUTES.saturating_mul(1_i64 << exp);
    Duration::minutes(minutes.min(BACKOFF_CAP_MINUTES))
}

/// The durable outbox of provider deletions.
#[async_trait]
pub trait ProviderOutbox: Send + Sync {
    /// Queues each call (an entry already queued keeps its attempts and backoff).
    async fn enqueue(&self, entries: &[PendingDeletion]) -> Result<(), StoreError>;
    /// Every pending entry.
    async fn pending(&self) -> Result<Vec<PendingDeletion>, StoreError>;
    /// Stores the entry as given (after a failed attempt).
    async fn update(&self, entry: &PendingDeletion) -> Result<(), StoreError>;
    /// Removes the entry (the call is deleted at the provider; gone is fine).
    async fn remove(&self, call_id: &str) -> Result<(), StoreError>;
}

/// What one drain of the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrainReport {
    /// Entries whose next attempt was due.
    pub due: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Entries that are incidents after this drain (all of them, not only the due ones).
    pub incidents: usize,
    /// Entries still pending after this drain.
    pub pending: usize,
}

/// Deletion at the provider through the outbox. As a [`CallProvider`] it never fails for
/// the provider's sake: the calls are queued durably first, tried once, and what failed
/// stays queued; only a failure of the outbox itself is an error.
pub struct ProviderDeletions {
    pub outbox: Arc<dyn ProviderOutbox>,
    pub provider: Arc<dyn CallProvider>,
    pub clock: Arc<dyn Clock>,
}

impl ProviderDeletions {
    /// Tries one entry; `true` when the call is deleted (and the entry removed).
    async fn attempt(&self, entry: &PendingDeletion) -> Result<bool, StoreError> {
        match self
            .provider
            .delete_calls(std::slice::from_ref(&entry.call_id))
            .await
        {
            Ok(_) => {
                self.outbox.remove(&entry.call_id).await?;
                Ok(true)
            }
            Err(e) => {
                let now = self.clock.now();
                let next = entry.failed(now);
                let retry = match &e {
                    ProviderError::Keys(k) => k.retry,
                    ProviderError::Provider(s) => s.retry,
                };
                tracing::warn!(
                    attempts = next.attempts,
                    ?retry,
                    "deletion at the provider failed; kept in the outbox"
                );
                if next.incident && !entry.incident {
                    tracing::error!(
                        attempts = next.attempts,
                        "deletion at the provider keeps failing: incident"
                    );
                    crate::telemetry::metric("ProviderDeletionIncident", 1.0);
                }
                self.outbox.update(&next).await?;
                Ok(false)
            }
        }
    }

    /// Retries every entry that is due at `now` (within `budget`), oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn drain(&self, budget: std::time::Duration) -> Result<DrainReport, StoreError> {
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let mut pending = self.outbox.pending().await?;
        pending.sort_by_key(|a| a.next_attempt_at);
        let mut report = DrainReport::default();
        let mut left = Vec::new();
        for entry in pending {
            if entry.next_attempt_at > now || started.elapsed() >= budget {
                left.push(entry.incident);
                continue;
            }
            report.due += 1;
            if self.attempt(&entry).await? {
                report.deleted += 1;
            } else {
                report.failed += 1;
                left.push(entry.failed(now).incident);
            }
        }
        report.pending = left.len();
        report.incidents = left.iter().filter(|i| **i).count();
        // A gauge for the alarm: the incidents still open after this drain.
        crate::telemetry::metric("ProviderDeletionIncidentsOpen", report.incidents as f64);
        crate::telemetry::metric("ProviderDeletionsPending", report.pending as f64);
        tracing::info!(
            due = report.due,
            deleted = report.deleted,
            failed = report.failed,
            pending = report.pending,
            incidents = report.incidents,
            "provider-deletion outbox drained"
        );
        Ok(report)
    }
}

#[async_trait]
impl CallProvider for ProviderDeletions {
    /// Queues the calls, then tries each once; how many are deleted now (the rest stay
    /// queued). Fails only when the outbox cannot be written.
    async fn delete_calls(&self, call_ids: &[String]) -> Result<usize, ProviderError> {
        let now = self.clock.now();
        let entries: Vec<PendingDeletion> = call_ids
            .iter()
            .map(|c| PendingDeletion::new(c, now))
            .collect();
        self.outbox.enqueue(&entries).await?;
        let mut deleted = 0;
        for entry in self.outbox.pending().await? {
            if call_ids.contains(&entry.call_id) && self.attempt(&entry).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R2.9: a failed deletion at the provider is retried after 1, 2, 4, 8 and 16 hours,
    /// then daily.
    #[test]
    fn the_backoff_doubles_from_an_hour_and_stops_at_a_day() {
        let minutes: Vec<i64> = (1..=8).map(|a| backoff(a).num_minutes()).collect();
        assert_eq!(minutes, [60, 120, 240, 480, 960, 1440, 1440, 1440]);
        assert_eq!(backoff(u32::MAX).num_minutes(), 1440);
    }

    /// R2.9: a deletion still failing after five attempts becomes an incident, and its
    /// entry lives 90 days.
    #[test]
    fn an_entry_becomes_an_incident_after_five_failed_attempts() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut e = PendingDeletion::new("call_a", now);
        for n in 1..=INCIDENT_AFTER_ATTEMPTS {
            e = e.failed(now);
            assert_eq!(e.attempts, n);
            assert_eq!(e.incident, n >= INCIDENT_AFTER_ATTEMPTS);
        }
        assert_eq!(e.next_attempt_at, now + Duration::minutes(960));
        assert_eq!(e.expires_at(), now + Duration::days(90));
    }
}
