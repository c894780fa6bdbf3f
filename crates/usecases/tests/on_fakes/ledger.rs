//! The consent ledger on fakes (R7.6): appends at sign-up, receipts, the failure rule,
//! concurrent appenders, the daily head and the history.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::ledger::{self, How, LedgerEvent, LedgerFault};
use domain::{Email, LeadProfile, PersonName, PhoneNumber};
use testkit::{MemoryLedgerStore, MemorySigner, World};
use usecases::ledger::{check, history, public_key_of, sign_head, ConsentLedger};
use usecases::ports::Retry;
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn request(email: &str, phone: &str) -> SignupRequest {
    SignupRequest {
        profile: LeadProfile {
            first_name: PersonName::parse("Erika").unwrap(),
            last_name: PersonName::parse("Mustermann").unwrap(),
            email: Email::parse(email).unwrap(),
            phone: PhoneNumber::parse(phone).unwrap(),
            notes: None,
        },
        source_ip: None,
        client: None,
        policy_version: "2024-04-08".into(),
        call_window: None,
    }
}

fn service(w: &World, store: &MemoryLedgerStore) -> LeadService {
    w.signup().with_ledger(
        Arc::new(ConsentLedger::new(Arc::new(store.clone()), "signup")),
        Some(Arc::new(w.mailer.clone())),
    )
}

/// R7.6: a sign-up appends one `signup_consent` entry naming the new subject, the phone
/// blind index, the text version and the SHA-256 of the exact text shown, and no plaintext
/// personal data; the subject receives one receipt mail.
#[tokio::test]
async fn signup_appends_its_consent_and_mails_a_receipt() {
    let w = World::new();
    let store = MemoryLedgerStore::new();
    let out = service(&w, &store)
        .sign_up(request("erika@example.org", "+49 211 1234567"))
        .await
        .unwrap();
    let SignupOutcome::Created { id } = out else {
        panic!("{out:?}")
    };

    let entries = store.all();
    assert_eq!(entries.len(), 1);
    let r = entries[0].record().unwrap();
    assert_eq!(r.subject, Some(id));
    assert_eq!(r.how, How::WebForm);
    assert_eq!(r.actor, "signup");
    let text = ledger::consent_text("2024-04-08").unwrap();
    assert_eq!(
        r.event,
        LedgerEvent::SignupConsent {
            text_version: "2024-04-08".into(),
            text_sha256: Some(ledger::text_sha256(text)),
        }
    );
    let phone_index = usecases::ports::KeyService::blind_index(
        w.keys.as_ref(),
        usecases::ports::IdentifierKind::Phone,
        "+492111234567",
    )
    .await
    .unwrap();
    assert_eq!(r.number.as_deref(), Some(phone_index.as_str()));
    let stored = format!("{:?}", entries[0].fields);
    for personal in ["erika", "Erika", "Mustermann", "1234567"] {
        assert!(!stored.contains(personal), "{personal} in {stored}");
    }
    let mails = w.mailer.sent_to("erika@example.org");
    assert_eq!(mails.len(), 1);
    assert!(mails[0]
        .text
        .contains("Fassung des Einwilligungstextes: 2024-04-08"));
}

/// R7.6: the same person signing up again within 24 h gets a ledger entry for the
/// new consent but no second receipt; after 24 h one more; a stranger naming the email
/// with another number gets no entry and no mail (at most one receipt per subject a day).
#[tokio::test]
async fn receipts_are_capped_at_one_a_day_and_strangers_send_none() {
    let w = World::new();
    let store = MemoryLedgerStore::new();
    let svc = service(&w, &store);
    svc.sign_up(request("erika@example.org", "+49 211 1234567"))
        .await
        .unwrap();
    w.clock.advance(Duration::hours(1));
    svc.sign_up(request("erika@example.org", "+49 211 1234567"))
        .await
        .unwrap();
    let stranger = svc
        .sign_up(request("erika@example.org", "+49 211 7654321"))
        .await
        .unwrap();
    assert!(matches!(stranger, SignupOutcome::Mismatch { .. }));
    assert_eq!(store.all().len(), 2);
    assert_eq!(w.mailer.sent_to("erika@example.org").len(), 1);

    w.clock.advance(Duration::hours(24));
    svc.sign_up(request("erika@example.org", "+49 211 1234567"))
        .await
        .unwrap();
    assert_eq!(store.all().len(), 3);
    assert_eq!(w.mailer.sent_to("erika@example.org").len(), 2);
}

/// R7.6: when the ledger append fails the sign-up fails (retryable) and sends no
/// receipt; the retry (the same person again) appends the consent of the stored lead,
/// once even when retried again at the same instant; a failed receipt mail does not fail
/// a sign-up.
#[tokio::test]
async fn a_failed_append_fails_the_signup_and_the_retry_appends_it_once() {
    let w = World::new();
    let store = MemoryLedgerStore::new();
    store.fault.fail_with(Retry::Transient);
    let err = service(&w, &store)
        .sign_up(request("erika@example.org", "+49 211 1234567"))
        .await
        .unwrap_err();
    assert_eq!(err.retry(), Retry::Transient);
    assert!(w.mailer.sent().is_empty());
    assert!(store.all().is_empty());

    store.fault.heal();
    w.mailer.fail_with(Retry::Transient);
    for _ in 0..2 {
        let out = service(&w, &store)
            .sign_up(request("erika@example.org", "+49 211 1234567"))
            .await
            .unwrap();
        assert!(matches!(out, SignupOutcome::Existing { .. }));
    }
    assert_eq!(w.leads.leads().len(), 1);
    let entries = store.all();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].record().unwrap().subject,
        Some(w.leads.leads()[0].lead.id)
    );
}

/// R7.6: 40 concurrent appenders form one chain: 40 entries, sequence 1..=40, each
/// linked to the one before, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_form_one_chain() {
    let store = MemoryLedgerStore::new();
    let ledger = Arc::new(ConsentLedger::new(Arc::new(store.clone()), "test"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            ledger
                .append(
                    Some(domain::LeadId::new()),
                    Some(format!("n{i}")),
                    t("2026-11-28T10:00:00Z"),
                    How::Dsar,
                    LedgerEvent::Objection,
                )
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let signer = MemorySigner::new();
    let key = public_key_of(&signer).await.unwrap();
    let checked = check(&store, &key).await.unwrap();
    assert_eq!(checked.result.unwrap().entries, 40);
    let mut numbers: Vec<String> = checked
        .entries
        .iter()
        .map(|e| e.fields["number"].clone())
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 40);
}

/// R7.6, R3: the daily head is signed once per day (a second run returns the same head),
/// it covers the entries so far, and a subject's history marks signed entries and carries
/// the §7a proof of the number (kept 5 years from its last use); an entry
/// overwritten after signing makes the history unverified, naming its sequence number.
#[tokio::test]
async fn the_daily_head_signs_the_chain_and_the_history_reports_tampering() {
    let store = MemoryLedgerStore::new();
    let ledger = ConsentLedger::new(Arc::new(store.clone()), "test");
    let a = domain::LeadId::new();
    ledger
        .append(
            Some(a),
            Some("bidx-a".into()),
            t("2026-11-28T10:00:00Z"),
            How::WebForm,
            LedgerEvent::signup_consent("2024-04-08"),
        )
        .await
        .unwrap();
    let signer = MemorySigner::new();
    let day = "2026-11-28".parse().unwrap();
    let head = sign_head(&store, &signer, day).await.unwrap();
    ledger
        .append(
            Some(a),
            Some("bidx-a".into()),
            t("2026-11-28T11:00:00Z"),
            How::Dsar,
            LedgerEvent::Objection,
        )
        .await
        .unwrap();
    assert_eq!(sign_head(&store, &signer, day).await.unwrap(), head);
    assert_eq!(head.seq, 1);

    let key = public_key_of(&signer).await.unwrap();
    let h = history(&store, &key, Some(&a), None).await.unwrap();
    assert!(h.verified);
    assert_eq!(h.signed_through, 1);
    assert_eq!(
        h.events
            .iter()
            .map(|e| (e.event, e.signed))
            .collect::<Vec<_>>(),
        [("signup_consent", true), ("objection", false)]
    );
    assert_eq!(h.events[0].text, ledger::consent_text("2024-04-08"));
    let proof = h.phone_consent.as_ref().expect("the §7a proof of bidx-a");
    assert_eq!(proof.proof.granted_at, t("2026-11-28T10:00:00Z"));
    assert!(proof.proof.ended, "the objection ended it");
    assert_eq!(proof.keep_until, Some(t("2031-11-28T10:00:00Z")));

    let mut forged = store.all()[0].clone();
    forged
        .fields
        .insert("at".into(), "2026-11-27T10:00:00.000Z".into());
    store.overwrite(forged);
    let h = history(&store, &key, Some(&a), None).await.unwrap();
    assert!(!h.verified);
    assert_eq!(h.fault_seq, Some(1));
    let checked = check(&store, &key).await.unwrap();
    assert_eq!(checked.result, Err(LedgerFault::BadHash { seq: 1 }));
}
