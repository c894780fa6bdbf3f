//! The CRM outbox's delivery (`usecases::crm`) on fakes: backoff, the failing gauge, at
//! most one delivery recorded, records only with `followup` and `rectified`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::crm::CrmEventType;
use domain::{FixedClock, LeadId, RequestId};
use usecases::crm::{
    CrmDelivery, CrmEndpoint, CrmEvent, CrmOutbox, FollowUpRecords, SendError,
    FAILED_AFTER_ATTEMPTS,
};
use usecases::ports::StoreError;
use usecases::telemetry::capture::MetricCapture;

#[derive(Clone, Default)]
struct Outbox(Arc<Mutex<HashMap<String, CrmEvent>>>);

#[async_trait]
impl CrmOutbox for Outbox {
    async fn pending(&self) -> Result<Vec<CrmEvent>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.delivered_at.is_none())
            .cloned()
            .collect())
    }
    async fn delivered(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut m = self.0.lock().unwrap();
        match m.get_mut(id) {
            Some(e) if e.delivered_at.is_none() => {
                e.delivered_at = Some(at);
                e.lead_id = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn failed(&self, e: &CrmEvent) -> Result<(), StoreError> {
        let mut m = self.0.lock().unwrap();
        if m.get(&e.event_id).is_some_and(|x| x.delivered_at.is_none()) {
            m.insert(e.event_id.clone(), e.clone());
        }
        Ok(())
    }
    async fn event(&self, id: &str) -> Result<Option<CrmEvent>, StoreError> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
}

/// Answers `fail` for the next posts, then 2xx; keeps every body posted.
#[derive(Clone, Default)]
struct Endpoint {
    fail: Arc<Mutex<usize>>,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

#[async_trait]
impl CrmEndpoint for Endpoint {
    async fn post(&self, body: &[u8]) -> Result<(), SendError> {
        self.bodies
            .lock()
            .unwrap()
            .push(serde_json::from_slice(body).unwrap());
        let mut f = self.fail.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            return Err(SendError::Status(503));
        }
        Ok(())
    }
}

struct Records;

#[async_trait]
impl FollowUpRecords for Records {
    async fn record(&self, _lead: &LeadId) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(Some(serde_json::json!({"first_name": "Wilhelmine"})))
    }
}

fn setup() -> (CrmDelivery, Outbox, Endpoint, FixedClock) {
    let clock = FixedClock::at(
        DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    let (outbox, endpoint) = (Outbox::default(), Endpoint::default());
    let d = CrmDelivery {
        outbox: Arc::new(outbox.clone()),
        endpoint: Arc::new(endpoint.clone()),
        records: Arc::new(Records),
        clock: Arc::new(clock.clone()),
    };
    (d, outbox, endpoint, clock)
}

fn queue(outbox: &Outbox, kind: CrmEventType, now: DateTime<Utc>) -> CrmEvent {
    let e = CrmEvent::notice(kind, LeadId::new(), RequestId::new(), now);
    outbox
        .0
        .lock()
        .unwrap()
        .insert(e.event_id.clone(), e.clone());
    e
}

const BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// A failing CRM (issue 17) is retried only when each event's backoff is over; after
/// eight failed attempts the `CrmEventsFailing` gauge counts the event (alarmed) and
/// the status shows `failed`; once the CRM answers 2xx the event is delivered and
/// recorded once, and is never sent again.
#[tokio::test]
async fn a_failing_crm_is_retried_on_backoff_then_told_once() {
    let metrics = MetricCapture::start();
    let (d, outbox, endpoint, clock) = setup();
    let e = queue(&outbox, CrmEventType::Erased, clock_now(&clock));
    *endpoint.fail.lock().unwrap() = FAILED_AFTER_ATTEMPTS as usize;
    for n in 1..=FAILED_AFTER_ATTEMPTS {
        let r = d.drain(BUDGET).await.unwrap();
        assert_eq!((r.due, r.failed), (1, 1), "attempt {n}");
        // Not due again at once.
        assert_eq!(d.drain(BUDGET).await.unwrap().due, 0);
        let stored = outbox.event(&e.event_id).await.unwrap().unwrap();
        assert_eq!(stored.attempts, n);
        assert_eq!(
            stored.state().code(),
            if n >= FAILED_AFTER_ATTEMPTS {
                "failed"
            } else {
                "pending"
            }
        );
        clock.advance(usecases::crm::backoff(n));
    }
    assert_eq!(metrics.values("CrmEventsFailing").last(), Some(&1.0));
    let r = d.drain(BUDGET).await.unwrap();
    assert_eq!((r.delivered, r.pending, r.failing), (1, 0, 0));
    assert_eq!(metrics.values("CrmEventsFailing").last(), Some(&0.0));
    let stored = outbox.event(&e.event_id).await.unwrap().unwrap();
    assert_eq!(stored.state().code(), "told");
    assert_eq!(stored.lead_id, None, "a delivered event keeps no lead id");
    clock.advance(Duration::hours(2));
    assert_eq!(d.drain(BUDGET).await.unwrap().due, 0);
    let posted = endpoint.bodies.lock().unwrap().clone();
    assert_eq!(posted.len(), FAILED_AFTER_ATTEMPTS as usize + 1);
    assert!(posted.iter().all(|b| b["event_id"] == e.event_id.as_str()));
}

/// The follow-up record goes with `followup` and `rectified` events only (issue 17); the
/// notices `restricted`, `objected` and `erased` carry the lead id and nothing else of
/// the subject.
#[tokio::test]
async fn only_followup_and_rectified_carry_the_record() {
    let (d, outbox, endpoint, clock) = setup();
    for kind in CrmEventType::ALL {
        queue(&outbox, kind, clock_now(&clock));
    }
    assert_eq!(d.drain(BUDGET).await.unwrap().delivered, 5);
    for b in endpoint.bodies.lock().unwrap().iter() {
        let kind = CrmEventType::parse(b["type"].as_str().unwrap()).unwrap();
        assert_eq!(b.get("record").is_some(), kind.carries_record(), "{b}");
        let mut keys: Vec<&String> = b.as_object().unwrap().keys().collect();
        keys.sort();
        if !kind.carries_record() {
            assert_eq!(keys, ["event_id", "lead_id", "occurred_at", "type"], "{b}");
        }
    }
}

fn clock_now(c: &FixedClock) -> DateTime<Utc> {
    use domain::Clock;
    c.now()
}
