//! Staff work on single requests on fakes: a request received by letter, phone or mail
//! entered with its receipt time, one request with its timeline, and stuck requests.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::dsar::{RequestStatus, RequestType};
use domain::{Clock, Email, FixedClock, LeadProfile, Notes, PersonName, PhoneNumber, RequestId};
use testkit::{MemoryMailer, MemoryRequests, MemorySubjects};
use usecases::dsar::intake::{DsarError, DsarService, Intake};
use usecases::dsar::records::{Channel, STUCK_AFTER_MINUTES};
use usecases::dsar::requests::{Entry, ReceiptError};
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};

const STAFF: &str = "arn:aws:sts::123456789012:assumed-role/polly-staff/anna";
const OTHER_STAFF: &str = "arn:aws:sts::123456789012:assumed-role/polly-staff/bernd";
const A_EMAIL: &str = "wilhelmine@example.org";
const A_PHONE: &str = "0170 9876543";
const B_EMAIL: &str = "ottokar@example.org";

struct World {
    clock: FixedClock,
    requests: MemoryRequests,
    mailer: MemoryMailer,
    leads: Arc<LeadService>,
    service: DsarService,
}

fn world() -> World {
    let w = testkit::World::new();
    let requests = MemoryRequests::new();
    let subjects = MemorySubjects::new(w.leads.clone());
    let clock: Arc<dyn Clock> = Arc::new(w.clock.clone());
    let service = DsarService {
        store: Arc::new(requests.clone()),
        claims: Arc::new(subjects),
        keys: w.keys.clone(),
        mailer: Arc::new(w.mailer.clone()),
        exports: Arc::new(w.exports.clone()),
        clock,
        daily_limit: 3,
        source_daily_limit: 10,
        identifier_daily_limit: 10,
        public_api_base_url: "https://api.example".into(),
        // No cancel window here (the erasure window has its own tests).
        erasure_cancel_window: chrono::Duration::zero(),
    };
    World {
        leads: Arc::new(w.signup()),
        clock: w.clock,
        requests,
        mailer: w.mailer,
        service,
    }
}

impl World {
    fn entry(&self, kind: RequestType, received: DateTime<Utc>, verified: bool) -> Entry {
        Entry {
            request_type: kind,
            channel: Channel::Letter,
            received_at: received,
            email: Some(Email::parse(A_EMAIL).unwrap()),
            phone: None,
            message: Some("Bitte alles löschen.".into()),
            corrections: None,
            identity_verified: verified,
        }
    }

    async fn sign_up(&self, email: &str, phone: &str) {
        let request = SignupRequest {
            profile: LeadProfile {
                first_name: PersonName::parse("Wilhelmine").unwrap(),
                last_name: PersonName::parse("Zwetschgenbaum").unwrap(),
                email: Email::parse(email).unwrap(),
                phone: PhoneNumber::parse(phone).unwrap(),
                notes: Notes::parse("").unwrap(),
            },
            source_ip: None,
            client: None,
            policy_version: "2026-11".into(),
            call_window: None,
        };
        assert!(matches!(
            self.leads.sign_up(request).await.unwrap(),
            SignupOutcome::Created { .. }
        ));
    }

    /// The (action, actor) of each audit item about `id`, in the order written.
    fn steps(&self, id: &RequestId) -> Vec<(String, String)> {
        self.requests
            .audit()
            .into_iter()
            .filter(|a| a.request == *id)
            .map(|a| (a.action, a.actor))
            .collect()
    }

    /// A verified public request of `email` (code from the mail).
    async fn verified(&self, email: &str) -> RequestId {
        let id = self
            .service
            .submit(Intake {
                request_type: RequestType::Access,
                email: Some(Email::parse(email).unwrap()),
                phone: None,
                message: None,
                corrections: None,
                source: None,
            })
            .await
            .unwrap();
        let mail = self.mailer.sent_to(email).pop().unwrap();
        let chars: Vec<char> = mail.text.chars().collect();
        let code: String = chars
            .windows(8)
            .find(|w| w.iter().all(char::is_ascii_digit))
            .unwrap()
            .iter()
            .collect();
        self.service.verify(&id, &code).await.unwrap();
        id
    }
}

fn s(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// R4.3, R4.1, R4.11: a request staff enter from a letter received 20 days ago is due one
/// month after that receipt, not after the entry; with the identity checked it goes in
/// progress at once, its token goes to staff, the subject gets the receipt mail (no code
/// mail), and the entry and the check are audited with the staff principal.
#[tokio::test]
async fn an_entered_request_is_due_a_month_after_its_receipt_and_verified_by_the_enterer() {
    let w = world();
    let now = w.clock.now();
    let received = now - Duration::days(20);

    let entered = w
        .service
        .enter(w.entry(RequestType::Access, received, true), STAFF)
        .await
        .unwrap();

    assert_eq!(entered.due_date, domain::dsar::due_date(received));
    assert_eq!(entered.days_left, 10, "a month from receipt, 20 days gone");
    assert_eq!(entered.status, RequestStatus::InProgress);
    assert!(entered.token.is_some());
    let record = w.requests.record(&entered.request_id).unwrap();
    assert_eq!(record.received_at, received);
    assert_eq!(record.channel, Channel::Letter);
    assert!(record.identity_checked && record.token_hash.is_some());
    assert_eq!(
        w.steps(&entered.request_id),
        s(&[("dsar.entered", STAFF), ("dsar.identity_verified", STAFF)])
    );
    let mails = w.mailer.sent_to(A_EMAIL);
    assert_eq!(mails.len(), 1, "the receipt only, no code");
    assert!(mails[0].subject.contains("Eingangsbestätigung"));
    assert!(mails[0].text.contains(&entered.request_id.to_string()));
    let listed = w.service.open_requests().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].channel, Channel::Letter);
    assert_eq!(listed[0].due_at, entered.due_date);
}

/// R4.1, R4.10: without the identity check an entered request waits for it (no token, no
/// mail, nothing for the worker); `verify-identity` ends the wait and hands staff the
/// token. A receipt older than the deadline is accepted and overdue at once.
#[tokio::test]
async fn an_unverified_entry_waits_for_the_identity_check_and_an_old_one_is_overdue() {
    let w = world();
    let received = w.clock.now() - Duration::days(45);

    let entered = w
        .service
        .enter(w.entry(RequestType::Erasure, received, false), STAFF)
        .await
        .unwrap();

    assert_eq!(entered.status, RequestStatus::AwaitingIdentityCheck);
    assert!(entered.token.is_none());
    assert!(w.mailer.sent().is_empty());
    assert!(entered.days_left < 0);
    let listed = w.service.open_requests().await.unwrap();
    assert!(listed[0].overdue, "{listed:?}");
    assert_eq!(listed[0].status, RequestStatus::AwaitingIdentityCheck);

    let v = w
        .service
        .verify_identity(&entered.request_id, OTHER_STAFF)
        .await
        .unwrap();
    assert!(v.token.is_some());
    assert_eq!(v.status, RequestStatus::InProgress);
    assert_eq!(
        w.steps(&entered.request_id),
        s(&[
            ("dsar.entered", STAFF),
            ("dsar.identity_verified", OTHER_STAFF)
        ])
    );
}

/// R4.1, R4.11: a receipt time in the future or more than a year back is refused and
/// nothing is stored or audited.
#[tokio::test]
async fn a_receipt_in_the_future_or_too_far_back_stores_nothing() {
    let w = world();
    let now = w.clock.now();
    for (received, expected) in [
        (now + Duration::days(1), ReceiptError::InFuture),
        (now + Duration::minutes(6), ReceiptError::InFuture),
        (now - Duration::days(366), ReceiptError::TooOld),
    ] {
        let err = w
            .service
            .enter(w.entry(RequestType::Access, received, true), STAFF)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DsarError::Receipt(e) if e == expected),
            "{err:?}"
        );
    }
    assert!(w.requests.audit().is_empty());
    assert!(w.requests.open_list().is_empty());
    assert!(w.mailer.sent().is_empty());
}

/// R4.1: an entry whose email and phone belong to two different subjects does not go to
/// the worker even with the identity checked: it waits, audited as ambiguous, for staff
/// to deny it.
#[tokio::test]
async fn an_entry_naming_two_subjects_waits_for_staff() {
    let w = world();
    w.sign_up(A_EMAIL, "0171 1111111").await;
    w.sign_up(B_EMAIL, A_PHONE).await;
    let mut entry = w.entry(RequestType::Erasure, w.clock.now(), true);
    entry.phone = Some(PhoneNumber::parse(A_PHONE).unwrap());

    let entered = w.service.enter(entry, STAFF).await.unwrap();

    assert_eq!(entered.status, RequestStatus::AwaitingIdentityCheck);
    assert!(entered.token.is_none());
    assert_eq!(
        w.steps(&entered.request_id),
        s(&[("dsar.entered", STAFF), ("dsar.identity_ambiguous", STAFF)])
    );
    assert!(w.mailer.sent_to(A_EMAIL).is_empty());
}

/// R4.10, R4.11: one request for staff shows its facts and every audit item about it,
/// oldest first, with who acted (the system's steps and the staff principal); each view
/// is audited with the viewer and appears in the next view, not in its own. An unknown
/// id is not found and audits nothing.
#[tokio::test]
async fn the_request_view_shows_the_timeline_in_order_and_is_audited() {
    let w = world();
    let id = w.verified(A_EMAIL).await;
    w.clock.advance(Duration::minutes(5));
    w.service
        .extend(&id, 1, "Viele Anfragen", STAFF)
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(5));

    let view = w.service.request_view(&id, OTHER_STAFF).await.unwrap();

    let steps: Vec<(&str, &str)> = view
        .timeline
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("dsar.received", "dsar"),
            ("dsar.code_sent", "dsar"),
            ("dsar.verified", "dsar"),
            ("dsar.extended", STAFF),
        ]
    );
    assert!(view.timeline.windows(2).all(|p| p[0].at <= p[1].at));
    assert_eq!(view.status, RequestStatus::InProgress);
    assert_eq!(view.channel, Channel::Online);
    assert!(view.extended);
    let json = serde_json::to_string(&view).unwrap();
    assert!(!json.contains(A_EMAIL) && !json.contains("Viele Anfragen"));

    let again = w.service.request_view(&id, STAFF).await.unwrap();
    let last = again.timeline.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("dsar.viewed", OTHER_STAFF)
    );
    assert_eq!(again.timeline.len(), 5);

    let before = w.requests.audit().len();
    assert!(matches!(
        w.service.request_view(&RequestId::new(), STAFF).await,
        Err(DsarError::NotFound)
    ));
    assert_eq!(w.requests.audit().len(), before);
}

/// R4.10: a request in progress without a change for the stuck threshold is listed as
/// stuck, before the other open requests (even one due earlier); staff retry it (marked failed as
/// `stuck`, then back in progress, both by the principal), which starts its clock again.
/// A request in progress that is not yet stuck cannot be retried.
#[tokio::test]
async fn a_stuck_request_is_listed_before_the_waiting_ones_and_can_be_retried() {
    let w = world();
    let stuck = w.verified(A_EMAIL).await;
    // Due earlier than the stuck one, so listed before it but for being stuck.
    let mut letter = w.entry(
        RequestType::Access,
        w.clock.now() - Duration::days(10),
        false,
    );
    letter.email = None;
    letter.phone = Some(PhoneNumber::parse(A_PHONE).unwrap());
    let older = w.service.enter(letter, STAFF).await.unwrap().request_id;
    w.clock
        .advance(Duration::minutes(STUCK_AFTER_MINUTES) - Duration::seconds(1));
    let fresh = w.verified(B_EMAIL).await;
    assert!(
        w.service
            .open_requests()
            .await
            .unwrap()
            .iter()
            .all(|o| !o.stuck),
        "one second before the threshold"
    );
    assert!(matches!(
        w.service.retry(&stuck, STAFF).await,
        Err(DsarError::NotOpen)
    ));
    w.clock.advance(Duration::seconds(1));

    let listed = w.service.open_requests().await.unwrap();
    let order: Vec<(String, bool)> = listed
        .iter()
        .map(|o| (o.request_id.clone(), o.stuck))
        .collect();
    assert_eq!(
        order,
        [
            (stuck.to_string(), true),
            (older.to_string(), false),
            (fresh.to_string(), false)
        ]
    );
    assert!(matches!(
        w.service.retry(&fresh, STAFF).await,
        Err(DsarError::NotOpen)
    ));

    w.service.retry(&stuck, STAFF).await.unwrap();

    let record = w.requests.record(&stuck).unwrap();
    assert_eq!(record.status, RequestStatus::InProgress);
    assert_eq!(record.failure_reason, None);
    let steps = w.steps(&stuck);
    assert_eq!(
        steps[steps.len() - 2..],
        s(&[("dsar.failed", STAFF), ("dsar.retried", STAFF)])[..]
    );
    assert!(w
        .service
        .open_requests()
        .await
        .unwrap()
        .iter()
        .all(|o| !o.stuck));
}
