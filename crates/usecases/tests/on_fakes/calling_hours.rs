//! Calling hours, durable scheduling and caps on fakes (R7.2, R7.3), with a moved clock:
//! a request outside the slot is scheduled, the dispatcher places it at its instant
//! exactly once, re-checking erasure, restriction and objection; the caps at their
//! boundaries. The moto versions of the main paths are in `tests/it/calling_hours.rs`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use domain::calling_hours::{Bundesland, CallWindow, CallingRules};
use domain::{Clock, Email, FixedClock, LeadId, LeadProfile, PersonName, PhoneNumber};
use testkit::retell::PHONE;
use testkit::{
    FakeKeyService, MemoryAuditTrail, MemoryCallRequests, MemoryCallStore, MemoryLeadStore,
    MemoryProvider,
};
use usecases::ports::{CallState, IdentifierKind, KeyService, LeadStore};
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};
use usecases::telephony::outbound::{
    CallRequest, Outbound, OutboundSettings, PlaceOutcome, Trigger, MAX_ATTEMPTS_PER_LEAD,
    MAX_ATTEMPTS_PER_NUMBER, MAX_ATTEMPTS_PER_NUMBER_WEEK,
};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn key() -> SecretString {
    SecretString::from("key_test")
}

struct World {
    clock: FixedClock,
    keys: Arc<FakeKeyService>,
    leads: MemoryLeadStore,
    requests: MemoryCallRequests,
    provider: MemoryProvider,
    audit: MemoryAuditTrail,
    state: Bundesland,
    lead: LeadId,
}

impl World {
    /// A lead signed up at `now` (Berlin rules of `state`, an optional window).
    async fn at(now: &str, state: Bundesland, window: Option<CallWindow>) -> Self {
        let leads = MemoryLeadStore::new();
        let calls = MemoryCallStore::new().watching(leads.clone());
        let mut w = Self {
            clock: FixedClock::at(t(now)),
            keys: Arc::new(FakeKeyService::new()),
            requests: MemoryCallRequests::new().watching(leads.clone()),
            leads,
            provider: MemoryProvider::new(),
            audit: calls.audit_trail(),
            state,
            lead: LeadId::default(),
        };
        let outcome = w
            .lead_service()
            .sign_up(SignupRequest {
                profile: LeadProfile {
                    first_name: PersonName::parse("Erika").unwrap(),
                    last_name: PersonName::parse("Mustermann").unwrap(),
                    email: Email::parse("erika@example.org").unwrap(),
                    phone: PhoneNumber::parse(PHONE).unwrap(),
                    notes: None,
                },
                source_ip: None,
                client: None,
                policy_version: "2026-11".into(),
                call_window: window,
            })
            .await
            .unwrap();
        let SignupOutcome::Created { id } = outcome else {
            panic!("a new lead");
        };
        w.requests.request_call(id, 1);
        w.lead = id;
        w
    }

    fn lead_service(&self) -> LeadService {
        LeadService::new(
            Arc::new(self.leads.clone()),
            self.keys.clone(),
            Arc::new(self.clock.clone()),
        )
    }

    fn outbound(&self) -> Outbound {
        Outbound::new(
            Arc::new(self.leads.clone()),
            Arc::new(self.requests.clone()),
            Arc::new(self.audit.clone()),
            self.lead_service(),
            Arc::new(self.provider.clone()),
            Arc::new(self.clock.clone()),
            OutboundSettings {
                from_number: "+4930000000".into(),
                agent_id: "agent_polly".into(),
                data_storage_setting: "basic_attributes_only".into(),
                ring_duration_ms: 45_000,
                calling_rules: CallingRules { state: self.state },
            },
        )
    }

    async fn phone_index(&self) -> String {
        self.keys
            .blind_index(IdentifierKind::Phone, PHONE)
            .await
            .unwrap()
            .as_str()
            .to_owned()
    }

    async fn request(&self, n: u32) -> CallRequest {
        CallRequest {
            lead_id: self.lead,
            request: n,
            phone_index: self.phone_index().await,
        }
    }

    /// The stream delivers request 1.
    async fn stream(&self) -> PlaceOutcome {
        self.outbound()
            .place(&self.request(1).await, &key())
            .await
            .unwrap()
    }

    /// One dispatcher run at the clock's time; how many calls it placed.
    async fn dispatch(&self) -> usize {
        self.outbound().dispatch_due(&key()).await.unwrap().placed
    }

    /// Moves the clock to `at`, runs the dispatcher twice there and redelivers the stream
    /// record; the calls placed so far.
    async fn dispatch_at(&self, at: DateTime<Utc>) -> usize {
        self.clock.set(at);
        self.dispatch().await;
        self.dispatch().await;
        let _ = self.stream().await;
        self.provider.placed().len()
    }

    fn count(&self, action: &str) -> usize {
        self.audit.actions().iter().filter(|a| *a == action).count()
    }
}

/// The cases: (asked, state, window, the instant the call is placed).
async fn placed_at(asked: &str, state: Bundesland, window: Option<CallWindow>, due: &str) {
    let w = World::at(asked, state, window).await;
    let due = t(due);
    let first = w.stream().await;
    if due == t(asked) {
        assert!(
            matches!(first, PlaceOutcome::Placed { .. }),
            "{asked}: {first:?}"
        );
        assert_eq!(w.dispatch_at(due + Duration::hours(1)).await, 1, "{asked}");
        return;
    }
    assert_eq!(first, PlaceOutcome::Scheduled { due_at: due }, "{asked}");
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Scheduled
    );
    assert_eq!(w.count("call.scheduled"), 1, "{asked}");
    // Redelivered before its time: still waiting, nothing placed.
    assert_eq!(w.stream().await, PlaceOutcome::AlreadyPlaced);
    // A millisecond early: not yet.
    assert_eq!(
        w.dispatch_at(due - Duration::milliseconds(1)).await,
        0,
        "{asked}"
    );
    // At its instant, by two dispatcher runs and a redelivery: exactly once.
    assert_eq!(w.dispatch_at(due).await, 1, "{asked}");
    assert_eq!(w.dispatch_at(due + Duration::hours(2)).await, 1, "{asked}");
    assert_eq!(
        w.requests.lead(&w.lead).unwrap().call_state,
        CallState::Placed
    );
    assert!(w.requests.scheduled().is_empty(), "out of the due index");
    assert_eq!(w.count("call.placed"), 1);
}

/// R7.2: Friday 19:59 (CET) is placed at once; Wednesday 23:40 at 08:00 the next
/// morning; Saturday 18:30 and a Sunday on Monday 08:00; Christmas Eve 20:30 on Monday
/// 28 December (past both holidays and the Sunday); each by the dispatcher at its instant,
/// not a millisecond before, once despite two runs and a stream redelivery.
#[tokio::test]
async fn requests_outside_the_hours_are_placed_at_the_next_slot_exactly_once() {
    let nw = Bundesland::NW;
    placed_at("2026-11-27T18:59:00Z", nw, None, "2026-11-27T18:59:00Z").await;
    placed_at("2026-11-25T22:40:00Z", nw, None, "2026-11-26T07:00:00Z").await;
    placed_at("2026-11-28T17:30:00Z", nw, None, "2026-11-30T07:00:00Z").await;
    placed_at("2026-11-29T11:00:00Z", nw, None, "2026-11-30T07:00:00Z").await;
    placed_at("2026-12-24T19:30:00Z", nw, None, "2026-12-28T07:00:00Z").await;
}

/// R7.2: 20:00:00 Friday is too late (the end is exclusive) and waits for Saturday 09:00;
/// 19:59:59.999 is placed at once.
#[tokio::test]
async fn the_end_of_the_day_is_exclusive() {
    let nw = Bundesland::NW;
    placed_at("2026-11-27T19:00:00Z", nw, None, "2026-11-28T08:00:00Z").await;
    placed_at(
        "2026-11-27T18:59:59.999Z",
        nw,
        None,
        "2026-11-27T18:59:59.999Z",
    )
    .await;
}

/// R7.2: Fronleichnam (4 June 2026) is a holiday in NW, not in BE: a request at 10:00 that
/// day waits for Friday in NW and is placed at once in BE.
#[tokio::test]
async fn a_state_holiday_holds_only_in_its_state() {
    placed_at(
        "2026-06-04T08:00:00Z",
        Bundesland::NW,
        None,
        "2026-06-05T06:00:00Z",
    )
    .await;
    placed_at(
        "2026-06-04T08:00:00Z",
        Bundesland::BE,
        None,
        "2026-06-04T08:00:00Z",
    )
    .await;
}

/// R7.2: inside the preferred window the call goes at once; outside it waits for the
/// window's next opening (Tuesday–Thursday 17:00–19:00: Monday 10:00 becomes Tuesday
/// 17:00, Thursday 19:00 becomes next Tuesday 17:00).
#[tokio::test]
async fn the_preferred_window_narrows_the_slot() {
    let w = || CallWindow::parse("17:00", "19:00", Some(&["tue", "wed", "thu"])).ok();
    let nw = Bundesland::NW;
    placed_at("2026-12-02T16:30:00Z", nw, w(), "2026-12-02T16:30:00Z").await;
    placed_at("2026-11-30T09:00:00Z", nw, w(), "2026-12-01T16:00:00Z").await;
    placed_at("2026-12-03T18:00:00Z", nw, w(), "2026-12-08T16:00:00Z").await;
}

/// R7.2, R4.5: erased before the slot: the erasure takes the schedule with the lead's
/// partition; the dispatcher finds nothing and places nothing.
#[tokio::test]
async fn erasure_before_the_slot_removes_the_schedule() {
    let w = World::at("2026-11-25T22:40:00Z", Bundesland::NW, None).await;
    assert!(matches!(w.stream().await, PlaceOutcome::Scheduled { .. }));
    w.leads.bury(&w.lead, w.clock.now(), false).await.unwrap();
    w.leads.remove_lead(&w.lead);
    w.requests.erase_partition_of(&w.lead);
    assert_eq!(w.dispatch_at(t("2026-11-26T07:00:00Z")).await, 0);
    assert!(w.requests.scheduled().is_empty());
}

/// R7.2: erased while the dispatcher already holds the due request (the schedule still
/// read): the dispatcher finds the subject erased and places nothing, writing nothing
/// into the erased partition.
#[tokio::test]
async fn erasure_after_the_due_read_places_nothing() {
    let w = World::at("2026-11-25T22:40:00Z", Bundesland::NW, None).await;
    assert!(matches!(w.stream().await, PlaceOutcome::Scheduled { .. }));
    // Tombstone and lead gone, the schedule not yet deleted.
    w.leads.bury(&w.lead, w.clock.now(), false).await.unwrap();
    w.leads.remove_lead(&w.lead);
    w.clock.set(t("2026-11-26T07:00:00Z"));
    let report = w.outbound().dispatch_due(&key()).await.unwrap();
    assert_eq!((report.due, report.placed), (1, 0));
    assert!(w.provider.placed().is_empty());
    assert!(w.requests.attempts(&w.phone_index().await).is_empty());
}

/// R7.2, R2.10: an objection or a restriction between scheduling and the slot: no call,
/// the request suppressed (audited) and out of the due index.
#[tokio::test]
async fn objection_or_restriction_before_the_slot_cancels_the_call() {
    for (restricted, objected) in [(false, true), (true, false)] {
        let w = World::at("2026-11-28T17:30:00Z", Bundesland::NW, None).await;
        assert!(matches!(w.stream().await, PlaceOutcome::Scheduled { .. }));
        w.leads.set_flags(&w.lead, restricted, objected, false);
        assert_eq!(w.dispatch_at(t("2026-11-30T07:00:00Z")).await, 0);
        assert!(w.provider.placed().is_empty());
        assert!(w.count("call.suppressed_restricted") >= 1);
        assert!(w.requests.scheduled().is_empty());
        assert_eq!(
            w.requests.lead(&w.lead).unwrap().call_state,
            CallState::Suppressed
        );
    }
}

/// R7.2: a dispatcher run that comes late (after the slot closed) places nothing and
/// schedules the request again for the next slot.
#[tokio::test]
async fn a_late_dispatch_schedules_again() {
    let w = World::at("2026-11-27T19:30:00Z", Bundesland::NW, None).await;
    assert_eq!(
        w.stream().await,
        PlaceOutcome::Scheduled {
            due_at: t("2026-11-28T08:00:00Z")
        }
    );
    // Saturday 18:05: the slot ended at 18:00.
    assert_eq!(w.dispatch_at(t("2026-11-28T17:05:00Z")).await, 0);
    assert_eq!(
        w.requests.scheduled(),
        vec![(w.lead, 1, t("2026-11-30T07:00:00Z"))]
    );
    assert_eq!(w.dispatch_at(t("2026-11-30T07:00:00Z")).await, 1);
}

/// R7.2: a provider outage at the slot (nothing rang) keeps the request due: the next run
/// places it; the failed attempt is given back.
#[tokio::test]
async fn a_transient_provider_failure_at_the_slot_stays_due() {
    let w = World::at("2026-11-25T22:40:00Z", Bundesland::NW, None).await;
    assert!(matches!(w.stream().await, PlaceOutcome::Scheduled { .. }));
    w.clock.set(t("2026-11-26T07:00:00Z"));
    w.provider.fail_next_create(503);
    let report = w.outbound().dispatch_due(&key()).await.unwrap();
    assert_eq!((report.placed, report.failed), (0, 1));
    assert_eq!(w.requests.scheduled().len(), 1, "still due");
    assert!(w.requests.attempts(&w.phone_index().await).is_empty());
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.dispatch().await, 1);
}

/// R7.3: three attempts per number in 24 hours: the third is placed, the fourth not
/// (suppressed, audited); an attempt counts for 24 hours including the boundary: a request
/// exactly 24 h after the first is suppressed, one a second later placed.
#[tokio::test]
async fn the_daily_cap_allows_the_third_and_stops_the_fourth() {
    let w = World::at("2026-11-30T09:00:00Z", Bundesland::NW, None).await;
    let outbound = w.outbound();
    for n in 1..=MAX_ATTEMPTS_PER_NUMBER as u32 {
        w.requests.request_call(w.lead, n);
        let outcome = outbound.place(&w.request(n).await, &key()).await.unwrap();
        assert!(matches!(outcome, PlaceOutcome::Placed { .. }), "{n}");
        w.clock.advance(Duration::hours(1));
    }
    w.requests.request_call(w.lead, 4);
    assert_eq!(
        outbound.place(&w.request(4).await, &key()).await.unwrap(),
        PlaceOutcome::RateLimited
    );
    assert_eq!(w.count("call.suppressed_rate_limit"), 1);
    // Exactly 24 h after the first attempt it still counts; a second later it does not.
    w.clock.set(t("2026-12-01T09:00:00Z"));
    w.requests.request_call(w.lead, 5);
    assert_eq!(
        outbound.place(&w.request(5).await, &key()).await.unwrap(),
        PlaceOutcome::RateLimited
    );
    w.clock.set(t("2026-12-01T09:00:01Z"));
    let outcome = outbound.place(&w.request(5).await, &key()).await.unwrap();
    assert!(
        matches!(outcome, PlaceOutcome::Placed { .. }),
        "{outcome:?}"
    );
}

/// R7.3: fifteen attempts per number in 7 days: with three a day, Monday to Friday
/// fill the week; Saturday's request is suppressed although the number has an attempt
/// left for the day, and on the Monday after, the first attempts have left the 7 days.
#[tokio::test]
async fn the_weekly_cap_stops_the_sixteenth_attempt() {
    let w = World::at("2026-11-30T08:00:00Z", Bundesland::NW, None).await;
    let outbound = w.outbound();
    let mut n = 0;
    for day in 0..5 {
        for hour in [0, 1, 2] {
            n += 1;
            // A minute later each day, so the day before has left the 24 hours.
            w.clock.set(
                t("2026-11-30T08:00:00Z")
                    + Duration::days(day)
                    + Duration::minutes(day)
                    + Duration::hours(hour),
            );
            w.requests.request_call(w.lead, n);
            let outcome = outbound.place(&w.request(n).await, &key()).await.unwrap();
            assert!(matches!(outcome, PlaceOutcome::Placed { .. }), "{n}");
        }
    }
    assert_eq!(n as usize, MAX_ATTEMPTS_PER_NUMBER_WEEK);
    // Saturday 10:00: the day is free, the week is not.
    w.clock.set(t("2026-12-05T09:00:00Z"));
    w.requests.request_call(w.lead, 16);
    assert_eq!(
        outbound.place(&w.request(16).await, &key()).await.unwrap(),
        PlaceOutcome::RateLimited
    );
    // Monday a week after the first: the first three left the window.
    w.clock.set(t("2026-12-07T09:00:00Z"));
    w.requests.request_call(w.lead, 17);
    assert!(matches!(
        outbound.place(&w.request(17).await, &key()).await.unwrap(),
        PlaceOutcome::Placed { .. }
    ));
}

/// R7.3: thirty attempts per lead in total: the 30th is placed, the 31st is suppressed
/// (audited) whatever the number's caps say; a released attempt does not count.
#[tokio::test]
async fn the_lead_total_stops_the_thirty_first_attempt() {
    let w = World::at("2026-11-30T09:00:00Z", Bundesland::NW, None).await;
    let outbound = w.outbound();
    w.requests
        .set_lead_attempts(&w.lead, MAX_ATTEMPTS_PER_LEAD - 1);
    // A failure that rang nothing gives its attempt back.
    w.provider.fail_next_create(429);
    assert!(outbound.place(&w.request(1).await, &key()).await.is_err());
    assert!(matches!(
        outbound.place(&w.request(1).await, &key()).await.unwrap(),
        PlaceOutcome::Placed { .. }
    ));
    w.clock.advance(Duration::hours(1));
    w.requests.request_call(w.lead, 2);
    assert_eq!(
        outbound.place(&w.request(2).await, &key()).await.unwrap(),
        PlaceOutcome::LeadCapReached
    );
    assert_eq!(w.count("call.suppressed_lead_cap"), 1);
    assert_eq!(w.provider.placed().len(), 1);
}

/// R7.3: the configured ring time reaches the provider with the call.
#[tokio::test]
async fn the_ring_time_is_passed_to_the_provider() {
    let w = World::at("2026-11-30T09:00:00Z", Bundesland::NW, None).await;
    assert!(matches!(w.stream().await, PlaceOutcome::Placed { .. }));
    assert_eq!(w.provider.placed()[0].ring_duration_ms, 45_000);
}

/// R7.2: a scheduled request the lead replaced by a newer one (a repeated sign-up) is not
/// placed by the dispatcher: the newer request gets the call.
#[tokio::test]
async fn a_superseded_scheduled_request_is_not_placed() {
    let w = World::at("2026-11-28T17:30:00Z", Bundesland::NW, None).await;
    assert!(matches!(w.stream().await, PlaceOutcome::Scheduled { .. }));
    // A repeated sign-up a day later asks for call 2.
    w.clock.set(t("2026-11-29T18:00:00Z"));
    w.lead_service()
        .sign_up(SignupRequest {
            profile: LeadProfile {
                first_name: PersonName::parse("Erika").unwrap(),
                last_name: PersonName::parse("Mustermann").unwrap(),
                email: Email::parse("erika@example.org").unwrap(),
                phone: PhoneNumber::parse(PHONE).unwrap(),
                notes: None,
            },
            source_ip: None,
            client: None,
            policy_version: "2026-11".into(),
            call_window: None,
        })
        .await
        .unwrap();
    assert_eq!(
        w.leads.lead(&w.lead).unwrap().lead.call_request_count,
        2,
        "the fixture asks for a second call"
    );
    w.clock.set(t("2026-11-30T07:00:00Z"));
    assert_eq!(w.dispatch().await, 0);
    assert_eq!(w.count("call.superseded"), 1);
    let placed = w
        .outbound()
        .place_from(&w.request(2).await, &key(), Trigger::Stream)
        .await
        .unwrap();
    assert!(matches!(placed, PlaceOutcome::Placed { .. }));
    assert_eq!(w.provider.placed().len(), 1);
}

/// The call requests of `inner`, with another worker taking a scheduled request between
/// this worker's read of its state and its claim (the race two dispatcher runs, or a run
/// and a redelivery, can have).
struct Racing {
    inner: MemoryCallRequests,
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl usecases::telephony::ports::CallRequests for Racing {
    async fn request_state(
        &self,
        lead: &LeadId,
        request: u32,
    ) -> Result<Option<CallState>, usecases::ports::StoreError> {
        self.inner.request_state(lead, request).await
    }
    async fn attempts_since(
        &self,
        phone_index: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, usecases::ports::StoreError> {
        self.inner.attempts_since(phone_index, since).await
    }
    async fn record_attempt(
        &self,
        phone_index: &str,
        lead: &LeadId,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, usecases::ports::StoreError> {
        self.inner
            .record_attempt(phone_index, lead, at, until)
            .await
    }
    async fn release_attempt(
        &self,
        phone_index: &str,
        attempt: &str,
        at: DateTime<Utc>,
    ) -> Result<(), usecases::ports::StoreError> {
        self.inner.release_attempt(phone_index, attempt, at).await
    }
    async fn finish_request(
        &self,
        result: &usecases::telephony::ports::CallRequestResult,
    ) -> Result<bool, usecases::ports::StoreError> {
        self.inner.finish_request(result).await
    }
    async fn lead_attempts(&self, lead: &LeadId) -> Result<u32, usecases::ports::StoreError> {
        self.inner.lead_attempts(lead).await
    }
    async fn schedule_request(
        &self,
        schedule: &usecases::telephony::ports::ScheduledRequest,
    ) -> Result<usecases::telephony::ports::Claim, usecases::ports::StoreError> {
        self.inner.schedule_request(schedule).await
    }
    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<usecases::telephony::ports::DueRequest>, usecases::ports::StoreError> {
        self.inner.due_requests(now, limit).await
    }
    async fn claim_request(
        &self,
        claim: &usecases::telephony::ports::CallRequestResult,
    ) -> Result<usecases::telephony::ports::Claim, usecases::ports::StoreError> {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // The other worker's claim lands first.
            self.inner.claim_request(claim).await?;
        }
        self.inner.claim_request(claim).await
    }
}

/// R7.2: when another worker takes a due request between this run's read and its claim,
/// the conditional claim answers `Taken`: this run places no call and gives its attempt
/// back (the other worker places the one call).
#[tokio::test]
async fn a_run_that_loses_the_claim_places_nothing_and_gives_its_attempt_back() {
    let w = World::at("2026-11-25T22:40:00Z", Bundesland::NW, None).await;
    assert!(matches!(w.stream().await, PlaceOutcome::Scheduled { .. }));
    w.clock.set(t("2026-11-26T07:00:00Z"));
    let racing = Racing {
        inner: w.requests.clone(),
        raced: std::sync::atomic::AtomicBool::new(false),
    };
    let outbound = Outbound::new(
        Arc::new(w.leads.clone()),
        Arc::new(racing),
        Arc::new(w.audit.clone()),
        w.lead_service(),
        Arc::new(w.provider.clone()),
        Arc::new(w.clock.clone()),
        OutboundSettings {
            from_number: "+4930000000".into(),
            agent_id: "agent_polly".into(),
            data_storage_setting: "basic_attributes_only".into(),
            ring_duration_ms: 30_000,
            calling_rules: CallingRules::default(),
        },
    );
    let report = outbound.dispatch_due(&key()).await.unwrap();
    assert_eq!((report.due, report.placed), (1, 0));
    assert!(w.provider.placed().is_empty(), "the loser places nothing");
    assert!(
        w.requests.attempts(&w.phone_index().await).is_empty(),
        "its attempt given back"
    );
    assert_eq!(
        w.requests.marker(&w.lead, 1).unwrap().state,
        CallState::Placing,
        "the winner's claim stands"
    );
}
