//! The erasure cancel window on fakes (`usecases::dsar::erasure_window`): its arithmetic,
//! the cancel rules, the restriction it sets and lifts, and the restriction it leaves
//! alone. `tests/it/dsar_erasure_cancel.rs` checks the same against the emulator.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::dsar::{RequestStatus, RequestType};
use domain::Clock;
use usecases::dsar::erasure_window::{self, cancel_window, decide, CancelDecision};
use usecases::dsar::intake::{token_hash, DsarError, DsarService};
use usecases::dsar::records::{new_record, ERASURE_DUE_KIND};
use usecases::dsar::rights::RightsOutcome;
use usecases::telemetry::capture::MetricCapture;

use super::{World, A_EMAIL, A_PHONE, B_EMAIL, B_PHONE};

const WINDOW_HOURS: i64 = 48;

impl World {
    /// The request service with the template's default window.
    fn windowed(&self) -> DsarService {
        DsarService {
            store: Arc::new(self.requests.clone()),
            claims: Arc::new(self.subjects.clone()),
            keys: self.keys.clone(),
            mailer: Arc::new(self.mailer.clone()),
            exports: Arc::new(self.exports.clone()),
            clock: Arc::new(self.clock.clone()),
            daily_limit: 3,
            source_daily_limit: 10,
            identifier_daily_limit: 10,
            public_api_base_url: "https://api.example".into(),
            erasure_cancel_window: Duration::hours(WINDOW_HOURS),
        }
    }

    /// A verified erasure of `email` under the window; its cancel token from the mail.
    async fn windowed_erasure(&self, email: &str) -> (domain::RequestId, String) {
        let service = self.windowed();
        let id = self.submit(RequestType::Erasure, Some(email), None).await;
        service.verify(&id, &self.code(email)).await.unwrap();
        let receipt = self.mailer.sent_to(email).pop().expect("the receipt");
        let link = format!("https://api.example/v1/dsar/{id}/cancel?t=");
        let start = receipt.text.find(&link).expect("the cancel link") + link.len();
        let token: String = receipt.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (id, token)
    }

    fn pending(&self, lead: &domain::LeadId) -> (bool, bool) {
        let l = self.leads.lead(lead).expect("the lead").lead;
        (l.erasure_pending, l.restricted)
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// R4.5: the window is 0–168 hours; a verified erasure with an email is scheduled at
/// verification + window, with a due-index marker and only the hash of its cancel token;
/// other types, phone-only erasures, a zero window and a second scheduling change nothing.
#[test]
fn an_erasure_is_scheduled_at_verification_plus_the_window() {
    assert_eq!(cancel_window(0), Some(Duration::zero()));
    assert_eq!(cancel_window(168), Some(Duration::hours(168)));
    assert_eq!(cancel_window(169), None);

    let now = at("2027-03-01T10:00:00Z");
    let window = Duration::hours(48);
    let mut r = new_record(
        domain::RequestId::new(),
        RequestType::Erasure,
        RequestStatus::InProgress,
        now,
    );
    r.has_email = true;
    let mut phone_only = r.clone();
    phone_only.has_email = false;
    let mut access = r.clone();
    access.request_type = RequestType::Access;
    let mut unverified = r.clone();
    unverified.status = RequestStatus::AwaitingIdentityCheck;
    let mut zero = r.clone();

    let token = erasure_window::schedule(&mut r, window, now).expect("scheduled");
    assert_eq!(r.erasure_scheduled_at, Some(at("2027-03-03T10:00:00Z")));
    let due = r.erasure_due.clone().expect("a due marker");
    assert_eq!(due.due_kind, ERASURE_DUE_KIND);
    assert_eq!(due.due_at, "2027-03-03T10:00:00.000Z");
    assert_eq!(
        r.cancel_token_hash.as_deref(),
        Some(token_hash(&token).as_str())
    );
    assert!(token.len() >= 43, "256 random bits");
    assert!(
        erasure_window::schedule(&mut r, window, now).is_none(),
        "once"
    );
    assert_eq!(r.erasure_scheduled_at, Some(at("2027-03-03T10:00:00Z")));

    for (what, mut other, w) in [
        ("phone only", phone_only, window),
        ("access", access, window),
        ("not verified", unverified, window),
        ("no window", zero.clone(), Duration::zero()),
    ] {
        assert!(
            erasure_window::schedule(&mut other, w, now).is_none(),
            "{what}"
        );
        assert!(
            other.erasure_scheduled_at.is_none() && other.erasure_due.is_none(),
            "{what}"
        );
    }
    zero.has_email = true;
}

/// R4.5: the cancel rules: a wrong token, an unknown request or a request without a
/// cancel token are all `Invalid`; the right token cancels strictly before the scheduled
/// time and not once the erasure started; a cancelled request answers `AlreadyCancelled`.
#[test]
fn cancel_is_decided_by_token_window_and_start() {
    let now = at("2027-03-01T10:00:00Z");
    let mut r = new_record(
        domain::RequestId::new(),
        RequestType::Erasure,
        RequestStatus::InProgress,
        now,
    );
    r.has_email = true;
    assert_eq!(decide(Some(&r), "anything", now), CancelDecision::Invalid);
    let token = erasure_window::schedule(&mut r, Duration::hours(48), now).unwrap();
    let end = at("2027-03-03T10:00:00Z");
    assert_eq!(decide(None, &token, now), CancelDecision::Invalid);
    assert_eq!(decide(Some(&r), "wrong", now), CancelDecision::Invalid);
    assert_eq!(decide(Some(&r), "", now), CancelDecision::Invalid);
    assert_eq!(decide(Some(&r), &token, now), CancelDecision::Cancel);
    assert_eq!(
        decide(Some(&r), &token, end - Duration::seconds(1)),
        CancelDecision::Cancel
    );
    assert_eq!(decide(Some(&r), &token, end), CancelDecision::TooLate);
    let mut started = r.clone();
    started.erasure_started_at = Some(now);
    assert_eq!(decide(Some(&started), &token, now), CancelDecision::TooLate);
    let mut done = r.clone();
    done.status = RequestStatus::Completed;
    assert_eq!(decide(Some(&done), &token, now), CancelDecision::TooLate);
    let mut cancelled = r.clone();
    cancelled.status = RequestStatus::Cancelled;
    assert_eq!(
        decide(Some(&cancelled), &token, end + Duration::days(9)),
        CancelDecision::AlreadyCancelled
    );
    assert_eq!(
        decide(Some(&cancelled), "wrong", now),
        CancelDecision::Invalid
    );
}

/// R4.5, R4.7, R4.11: a verified erasure waits its window with the subject restricted
/// (no processing) and its lead intact; cancelled inside it, the request ends
/// `cancelled` (audited, `ErasureCancelled`, a confirmation mail, contact gone), the
/// window's flag is lifted, nothing was erased and the schedule never finds it; a replay
/// answers the same and writes nothing.
#[tokio::test]
async fn an_erasure_cancelled_inside_its_window_keeps_everything() {
    let metrics = MetricCapture::start();
    let w = super::world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    w.call_of(a, "call_a", "Termin").await;
    let (id, token) = w.windowed_erasure(A_EMAIL).await;
    assert_eq!(metrics.values("ErasureScheduled"), vec![1.0]);
    let receipt = w.mailer.sent_to(A_EMAIL).pop().unwrap();
    assert!(receipt.text.contains("widerrufen"), "{}", receipt.text);
    let recordings_before = w.recordings.keys();

    let scheduled = w.clock.now() + Duration::hours(WINDOW_HOURS);
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Scheduled { at: scheduled }
    );
    assert_eq!(
        w.pending(&a),
        (true, false),
        "restricted by the window only"
    );
    assert!(!w.leads.lead(&a).unwrap().lead.may_process());
    let view = w
        .windowed()
        .open_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.request_id == id.to_string())
        .unwrap();
    assert_eq!(view.erasure_scheduled_at, Some(scheduled));

    w.clock.advance(Duration::hours(47));
    w.windowed().cancel_erasure(&id, &token).await.unwrap();
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::Cancelled);
    assert_eq!(record.outcome.as_deref(), Some("cancelled"));
    assert!(record.erasure_due.is_none());
    assert_eq!(w.requests.has_contact(&id), (false, false));
    assert!(w.requests.open_list().is_empty());
    assert_eq!(metrics.values("ErasureCancelled"), vec![1.0]);
    let confirmation = w.mailer.sent_to(A_EMAIL).pop().unwrap();
    assert!(
        confirmation.subject.contains("widerrufen"),
        "{}",
        confirmation.subject
    );

    // The stream shows the worker the cancelled record: the window's flag goes.
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::WindowLifted
    );
    assert_eq!(w.pending(&a), (false, false));
    assert!(w.leads.lead(&a).unwrap().lead.may_process());
    assert!(
        w.lead_service.read(&a).await.unwrap().is_some(),
        "not erased"
    );
    assert_eq!(w.recordings.keys(), recordings_before);
    assert_eq!(w.subjects.call_ids(), vec!["call_a".to_owned()]);
    assert!(w.provider.deleted().is_empty());

    w.clock.advance(Duration::days(3));
    let due = usecases::dsar::ports::RequestStore::due_erasures(&w.requests, w.clock.now(), 10)
        .await
        .unwrap();
    assert!(due.is_empty(), "a cancelled erasure is never due");
    let audits = w.requests.audit().len();
    w.windowed().cancel_erasure(&id, &token).await.unwrap();
    assert_eq!(w.requests.audit().len(), audits, "a replay writes nothing");
    assert_eq!(metrics.values("ErasureCancelled"), vec![1.0]);
    let actions: Vec<String> = w
        .requests
        .audit()
        .into_iter()
        .filter(|a| a.request == id)
        .map(|a| a.action)
        .collect();
    for action in [
        "dsar.verified",
        "dsar.erasure_window_restricted",
        "dsar.erasure_cancelled",
        "dsar.erasure_window_lifted",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

/// R4.5, R4.7: a restriction the subject asked for separately stays when an erasure is
/// cancelled: the cancellation lifts only the window's own flag.
#[tokio::test]
async fn a_separate_restriction_survives_a_cancelled_erasure() {
    let w = super::world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let restriction = w.verified(RequestType::Restriction, A_EMAIL, None).await;
    assert_eq!(
        w.rights().carry_out(&restriction).await.unwrap(),
        RightsOutcome::Restricted
    );
    let (id, token) = w.windowed_erasure(A_EMAIL).await;
    assert!(matches!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Scheduled { .. }
    ));
    assert_eq!(w.pending(&a), (true, true));
    w.windowed().cancel_erasure(&id, &token).await.unwrap();
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::WindowLifted
    );
    assert_eq!(
        w.pending(&a),
        (false, true),
        "the subject's own restriction stays"
    );
    assert!(!w.leads.lead(&a).unwrap().lead.may_process());
}

/// R4.5: after the window the schedule finds the erasure through the due index and the
/// worker erases exactly as without a window; the start is recorded first, so from then
/// on the right token is told "too late"; a wrong token, another request's token and an
/// unknown id get one and the same refusal throughout.
#[tokio::test]
async fn after_the_window_the_schedule_erases_and_cancel_is_too_late() {
    let w = super::world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let b = w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;
    w.call_of(a, "call_a", "Termin").await;
    let (id, token) = w.windowed_erasure(A_EMAIL).await;
    let (other, other_token) = w.windowed_erasure(B_EMAIL).await;
    assert!(matches!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Scheduled { .. }
    ));
    let service = w.windowed();
    let refused = |r: Result<(), DsarError>| matches!(r, Err(DsarError::NotAuthorised));
    assert!(refused(service.cancel_erasure(&id, "wrong").await));
    assert!(refused(service.cancel_erasure(&id, &other_token).await));
    assert!(refused(
        service
            .cancel_erasure(&domain::RequestId::new(), &token)
            .await
    ));
    let store = |now| {
        let r = w.requests.clone();
        async move {
            usecases::dsar::ports::RequestStore::due_erasures(&r, now, 10)
                .await
                .unwrap()
        }
    };
    assert!(store(w.clock.now() + Duration::hours(47)).await.is_empty());

    w.clock.advance(Duration::hours(WINDOW_HOURS));
    let mut due = store(w.clock.now()).await;
    due.sort_by_key(|d| d.to_string());
    let mut both = vec![id, other];
    both.sort_by_key(|d| d.to_string());
    assert_eq!(due, both);
    assert!(matches!(
        service.cancel_erasure(&id, &token).await,
        Err(DsarError::TooLateToCancel)
    ));
    assert!(matches!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Erased { .. }
    ));
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::Completed);
    assert_eq!(record.erasure_started_at, Some(w.clock.now()));
    assert!(record.lead_id.is_none(), "the proof names nobody");
    assert!(w.lead_service.read(&a).await.unwrap().is_none(), "erased");
    assert_eq!(w.provider.deleted(), vec!["call_a".to_owned()]);
    assert_eq!(store(w.clock.now()).await, vec![other]);
    assert!(matches!(
        service.cancel_erasure(&id, &token).await,
        Err(DsarError::TooLateToCancel)
    ));
    assert!(refused(service.cancel_erasure(&id, "wrong").await));
    assert!(w.lead_service.read(&b).await.unwrap().is_some());
}

/// R4.5: an erasure cancelled before the worker ever saw it leaves the subject
/// unflagged; the worker then changes nothing.
#[tokio::test]
async fn a_cancel_before_the_worker_ran_never_restricts() {
    let w = super::world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let (id, token) = w.windowed_erasure(A_EMAIL).await;
    w.windowed().cancel_erasure(&id, &token).await.unwrap();
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Skipped
    );
    assert_eq!(w.pending(&a), (false, false));
    assert!(w.lead_service.read(&a).await.unwrap().is_some());
}

/// R4.5: erasures without an email skip the window and run at once: the phone-only one
/// staff verified (no link could reach its requester) and the system erasure the
/// telephony webhook queues for a "never signed up" (created in progress, never
/// verified here).
#[tokio::test]
async fn erasures_without_a_link_to_send_run_at_once() {
    let w = super::world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let metrics = MetricCapture::start();
    let id = w.submit(RequestType::Erasure, None, Some(A_PHONE)).await;
    w.windowed().verify_identity(&id, "staff").await.unwrap();
    assert!(w
        .requests
        .record(&id)
        .unwrap()
        .erasure_scheduled_at
        .is_none());
    assert!(matches!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Erased { .. }
    ));
    assert!(w.lead_service.read(&a).await.unwrap().is_none());
    assert!(metrics.values("ErasureScheduled").is_empty());

    let b = w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;
    let phone = w.leads.lead(&b).unwrap().phone_index;
    let mut system = new_record(
        domain::RequestId::new(),
        RequestType::Erasure,
        RequestStatus::InProgress,
        w.clock.now(),
    );
    system.subject_phone_bidx = Some(phone.as_str().to_owned());
    system.identity_checked = true;
    usecases::dsar::ports::RequestStore::commit(
        &w.requests,
        &system,
        None,
        Vec::new(),
        "telephony-webhook",
        "dsar.system_erasure_requested",
        w.clock.now(),
    )
    .await
    .unwrap();
    assert!(matches!(
        w.rights().carry_out(&system.request_id).await.unwrap(),
        RightsOutcome::Erased { .. }
    ));
    assert!(w.lead_service.read(&b).await.unwrap().is_none());
}

/// R4.10: an erasure waiting in its cancel window is in progress on purpose: the staff
/// list shows when it runs and does not call it stuck, however long the window; only an
/// hour after its scheduled time, with nobody having started it, is it stuck.
#[tokio::test]
async fn a_waiting_erasure_is_not_stuck_until_an_hour_after_its_window() {
    let w = super::world();
    w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let (id, _token) = w.windowed_erasure(A_EMAIL).await;
    let service = w.windowed();
    let listed = |list: Vec<usecases::dsar::intake::OpenView>| {
        list.into_iter()
            .find(|o| o.request_id == id.to_string())
            .expect("listed")
    };

    w.clock.advance(Duration::hours(WINDOW_HOURS - 1));
    let open = listed(service.open_requests().await.unwrap());
    assert_eq!(open.status, RequestStatus::InProgress);
    assert!(!open.stuck, "47 hours into a 48-hour window is not stuck");
    assert!(open.erasure_scheduled_at.is_some());

    w.clock.advance(Duration::minutes(30 + 60));
    let open = listed(service.open_requests().await.unwrap());
    assert!(
        !open.stuck,
        "30 minutes after the window: the schedule may still come"
    );

    w.clock.advance(Duration::minutes(31));
    let open = listed(service.open_requests().await.unwrap());
    assert!(open.stuck, "an hour past its time and never started");
}
