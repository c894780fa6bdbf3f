//! Sign-up (R1) on fakes: the same promises `tests/` checks against the emulator.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::{Clock, Email, FixedClock, LeadId, LeadProfile, Notes, PersonName, PhoneNumber};
use testkit::{FakeKeyService, MemoryLeadStore};
use usecases::ports::{CallState, IdentifierKind, KeyService, Retry};
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    store: MemoryLeadStore,
    keys: Arc<FakeKeyService>,
    clock: FixedClock,
    service: LeadService,
}

fn world() -> World {
    let w = testkit::World::new();
    World {
        service: w.signup(),
        store: w.leads,
        keys: w.keys,
        clock: w.clock,
    }
}

fn request(email: &str, phone: &str) -> SignupRequest {
    SignupRequest {
        profile: LeadProfile {
            first_name: PersonName::parse("Wilhelmine").unwrap(),
            last_name: PersonName::parse("Zwetschgenbaum").unwrap(),
            email: Email::parse(email).unwrap(),
            phone: PhoneNumber::parse(phone).unwrap(),
            notes: Notes::parse("Bitte nach 17 Uhr anrufen.").unwrap(),
        },
        source_ip: Some("203.0.113.7".parse().unwrap()),
        client: None,
        policy_version: "2026-11".into(),
        call_window: None,
    }
}

const EMAIL: &str = "wilhelmine@example.org";
const PHONE: &str = "0170 9876543";

/// R1.3, R1.5, R5.3: a new sign-up stores one subject whose profile is sealed (no name or
/// email in its bytes), whose phone claim is held under the number's blind index, with a
/// §7a UWG proof for that number kept 5 years, expiry 3 years on, and a call requested.
#[tokio::test]
async fn a_new_person_becomes_one_sealed_subject_with_claims_consent_proof_and_a_call_request() {
    let w = world();
    let out = w.service.sign_up(request(EMAIL, PHONE)).await.unwrap();
    let SignupOutcome::Created { id } = out else {
        panic!("{out:?}");
    };
    let held = w.store.lead(&id).unwrap();
    assert_eq!(held.lead.call_state, CallState::Requested);
    assert_eq!(
        held.lead.expires_at,
        t("2029-11-28T10:00:00Z"),
        "R3: 3 years"
    );
    // Nothing readable at rest: the profile is sealed, identifiers are blind indexes.
    let sealed = String::from_utf8_lossy(&held.lead.sealed_profile);
    assert!(!sealed.contains("Wilhelmine") && !sealed.contains("example.org"));
    let phone_index = w
        .keys
        .blind_index(IdentifierKind::Phone, "+491709876543")
        .await
        .unwrap();
    assert_eq!(held.phone_index, phone_index);
    assert_eq!(
        w.store.claim_holder(true, &phone_index, w.clock.now()),
        Some(id)
    );
    // §7a UWG proof for that number, kept 5 years.
    let proofs = w.store.consents();
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].phone_index, phone_index);
    assert_eq!(proofs[0].evidence.policy_version, "2026-11");
    assert_eq!(proofs[0].expires_at, t("2031-11-28T10:00:00Z"));
    // Reads back through the subject's own key.
    let lead = w.service.read(&id).await.unwrap().unwrap();
    assert_eq!(lead.profile.email.expose(), EMAIL);
    assert_eq!(
        lead.technical.source_ip,
        Some("203.0.113.7".parse().unwrap())
    );
}

/// R1.4: the same person again after 2 h moves `last_contact_at` and the expiry, requests
/// no call; after another 23 h (25 h in all) a second call is requested; one lead, every
/// sign-up evidenced as a consent proof.
#[tokio::test]
async fn the_same_person_again_moves_the_dates_and_is_called_again_only_after_24_hours() {
    let w = world();
    let id = w
        .service
        .sign_up(request(EMAIL, PHONE))
        .await
        .unwrap()
        .lead_id()
        .unwrap();

    w.clock.advance(Duration::hours(2));
    let again = w.service.sign_up(request(EMAIL, PHONE)).await.unwrap();
    assert_eq!(
        again,
        SignupOutcome::Existing {
            id,
            call_requested: false
        }
    );
    let held = w.store.lead(&id).unwrap().lead;
    assert_eq!(held.last_contact_at, t("2026-11-28T12:00:00Z"));
    assert_eq!(
        held.expires_at,
        t("2029-11-28T12:00:00Z"),
        "R2.11: dates follow contact"
    );
    assert_eq!(held.call_request_count, 1);

    w.clock.advance(Duration::hours(23));
    let later = w.service.sign_up(request(EMAIL, PHONE)).await.unwrap();
    assert_eq!(
        later,
        SignupOutcome::Existing {
            id,
            call_requested: true
        }
    );
    assert_eq!(w.store.lead(&id).unwrap().lead.call_request_count, 2);
    assert_eq!(w.store.consents().len(), 3, "each sign-up is evidenced");
    assert_eq!(w.store.leads().len(), 1);
}

/// R1.4: a submission with the subject's email and another phone, or their phone and
/// another email, is a mismatch: no date moves, no call, no lead, no consent proof is
/// added; each is audited as `lead.resubmission_mismatch`.
#[tokio::test]
async fn knowing_one_identifier_of_someone_changes_nothing_of_them_and_creates_nothing() {
    let w = world();
    let id = w
        .service
        .sign_up(request(EMAIL, PHONE))
        .await
        .unwrap()
        .lead_id()
        .unwrap();
    let before = w.store.lead(&id).unwrap();
    w.clock.advance(Duration::days(2));

    for (email, phone) in [(EMAIL, "0170 1111111"), ("stranger@example.org", PHONE)] {
        let out = w.service.sign_up(request(email, phone)).await.unwrap();
        assert!(matches!(out, SignupOutcome::Mismatch { .. }), "{out:?}");
        assert!(!out.call_requested());
    }
    let after = w.store.lead(&id).unwrap();
    assert_eq!(after.lead.last_contact_at, before.lead.last_contact_at);
    assert_eq!(after.lead.call_request_count, 1);
    assert_eq!(w.store.leads().len(), 1);
    assert_eq!(
        w.store.consents().len(),
        1,
        "no consent for someone else's number"
    );
    let mismatches = w
        .store
        .audit()
        .into_iter()
        .filter(|a| a.action == "lead.resubmission_mismatch")
        .count();
    assert_eq!(mismatches, 2);
}

/// R3.3: a subject past its expiry reads as gone, and its email and phone are free: signing
/// up again creates a new subject.
#[tokio::test]
async fn an_expired_subject_frees_its_identifiers_for_a_new_one() {
    let w = world();
    let old = w
        .service
        .sign_up(request(EMAIL, PHONE))
        .await
        .unwrap()
        .lead_id()
        .unwrap();
    w.clock.set(t("2029-11-28T10:00:01Z"));
    assert!(
        w.service.read(&old).await.unwrap().is_none(),
        "R3.3: due reads as gone"
    );
    let out = w.service.sign_up(request(EMAIL, PHONE)).await.unwrap();
    let SignupOutcome::Created { id } = out else {
        panic!("{out:?}");
    };
    assert_ne!(id, old);
}

/// Without its data key (shredded) a lead reads as gone, like an unknown id. (The memory
/// store hides a lead without a key itself, so this shows the read path, not the
/// cryptography: crypto-shredding is proven against the emulator in `dsar_rights.rs`.)
#[tokio::test]
async fn a_shredded_key_makes_the_subject_unreadable() {
    let w = world();
    let id = w
        .service
        .sign_up(request(EMAIL, PHONE))
        .await
        .unwrap()
        .lead_id()
        .unwrap();
    w.store.shred_key(&id);
    assert!(w.service.read(&id).await.unwrap().is_none());
    let other: LeadId = LeadId::new();
    assert!(w.service.read(&other).await.unwrap().is_none());
}

/// A failing key service or store stores nothing (no lead, consent or audit) and says
/// whether a retry helps.
#[tokio::test]
async fn a_failing_key_service_or_store_stores_nothing_and_says_whether_a_retry_helps() {
    let w = world();
    w.keys.fail_with(Retry::Transient);
    let err = w.service.sign_up(request(EMAIL, PHONE)).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Transient);
    w.keys.heal();

    w.store.fail_with(Retry::Permanent);
    let err = w.service.sign_up(request(EMAIL, PHONE)).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Permanent);
    w.store.heal();
    assert!(w.store.leads().is_empty() && w.store.consents().is_empty());
    assert!(w.store.audit().is_empty());
}

/// R1.4: Six sign-ups of one person at once, on worker threads: the store's transaction is
/// atomic (as DynamoDB's is), so the race ends in one subject and one key, and every
/// sign-up succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_signups_of_one_person_create_one_subject() {
    let w = world();
    let service = Arc::new(w.service);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.sign_up(request(EMAIL, PHONE)).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let outcome = h.await.unwrap().expect("every sign-up succeeds");
        ids.insert(outcome.lead_id().expect("the subject"));
    }
    assert_eq!(ids.len(), 1, "one subject: {ids:?}");
    assert_eq!(w.store.leads().len(), 1);
}
