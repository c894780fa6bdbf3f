//! The retention sweep (R3) on fakes: what `tests/` shows against the emulator, here
//! without it, plus faults the emulator cannot produce.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use domain::crypto::BlindIndex;
use domain::retention::ContractRecords;
use domain::{Clock, ConsentEvidence, ConsentMethod, LeadId, RetentionClass};
use testkit::retention::{key, MemItem};
use testkit::{MemoryLeadStore, MemoryObjects, MemoryRetentionStore};
use usecases::ports::{LeadStore, NewLead, Objects, Retry};
use usecases::retention::{SweepReport, SweepRequest, Sweeper};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const HOUR: StdDuration = StdDuration::from_secs(3600);

struct World {
    store: MemoryRetentionStore,
    leads: MemoryLeadStore,
    blobs: MemoryObjects,
    exports: MemoryObjects,
    sweeper: Sweeper,
}

fn world() -> World {
    let w = testkit::World::new();
    World {
        sweeper: w.sweeper(),
        store: w.retention,
        leads: w.leads,
        blobs: w.recordings,
        exports: w.exports,
    }
}

async fn run(w: &World, now: &str, dry_run: bool) -> SweepReport {
    w.sweeper
        .run(
            SweepRequest {
                dry_run,
                now: t(now),
            },
            HOUR,
        )
        .await
        .unwrap()
}

/// A subject who signed up at `at`: lead, consent proof, claims, one call with a
/// recording and its objects (two versions of the audio).
async fn subject(w: &World, at: &str) -> LeadId {
    let lead = LeadId::new();
    let at = t(at);
    let pk = format!("LEAD#{lead}");
    w.store.put_key(pk.clone());
    w.store.put(
        key(pk.clone(), "PROFILE"),
        MemItem {
            email_bidx: Some(format!("e-{lead}")),
            phone_bidx: Some(format!("p-{lead}")),
            ..MemItem::kind("lead")
                .of(lead)
                .retained(RetentionClass::Lead, at)
        },
    );
    w.store.put(
        key(pk.clone(), "CONSENT#1"),
        MemItem::kind("phone_consent")
            .of(lead)
            .retained(RetentionClass::PhoneConsentProof, at),
    );
    w.store.put(
        key(format!("EMAIL#e-{lead}"), "CLAIM"),
        MemItem::kind("claim").of(lead),
    );
    w.store.put(
        key(format!("PHONE#p-{lead}"), "CLAIM"),
        MemItem::kind("claim").of(lead),
    );
    let call = format!("c-{lead}");
    w.store.put(
        key(format!("CALL#{call}"), "CALL"),
        MemItem {
            phone_bidx: Some(format!("p-{lead}")),
            ..MemItem::kind("call").of(lead)
        },
    );
    let audio = format!("recordings/{lead}/{call}.audio");
    let transcript = format!("transcripts/{lead}/{call}.json.sealed");
    w.store.put(
        key(format!("CALL#{call}"), "RECORDING"),
        MemItem {
            call_id: Some(call.clone()),
            objects: vec![audio.clone(), transcript.clone()],
            ..MemItem::kind("recording")
                .of(lead)
                .retained(RetentionClass::Recording, at)
        },
    );
    w.blobs.put(&audio, b"v1".to_vec()).await.unwrap();
    w.blobs.put(&audio, b"v2".to_vec()).await.unwrap();
    w.blobs.put(&transcript, b"sealed".to_vec()).await.unwrap();
    lead
}

/// R3, R3.2: a recording of a call on 31 Aug is kept through 28 Feb 09:59:59 and due at
/// 10:00 (six calendar months); then every version of the audio and the transcript goes,
/// with the recording item, while the call's metadata stays, marked deleted.
#[tokio::test]
async fn recordings_go_at_six_calendar_months_with_every_version_and_the_call_metadata_stays() {
    let w = world();
    let lead = subject(&w, "2026-08-31T10:00:00Z").await;
    let call = format!("CALL#c-{lead}");

    let early = run(&w, "2027-02-28T09:59:59Z", false).await;
    assert_eq!(
        early.classes["recording"].due, 0,
        "31 Aug + 6 months = 28 Feb"
    );
    assert_eq!(w.blobs.keys().len(), 2);

    let due = run(&w, "2027-02-28T10:00:00Z", false).await;
    let c = &due.classes["recording"];
    assert_eq!(
        (c.due, c.deleted, c.objects),
        (1, 1, 3),
        "every version of both objects"
    );
    assert!(w.blobs.keys().is_empty());
    assert!(w.store.item(&key(call.clone(), "RECORDING")).is_none());
    let kept = w
        .store
        .item(&key(call, "CALL"))
        .expect("call metadata stays");
    assert_eq!(kept.status.as_deref(), Some("deleted"));
    assert!(w
        .store
        .audit()
        .contains(&"retention.recording_deleted".to_owned()));
    assert!(
        w.store.has_key(&format!("LEAD#{lead}")),
        "the subject is not due yet"
    );
}

/// R3, R3.1, R3.2, R4.5 (mechanics of the lead class): three years after the last contact
/// the subject is erased: tombstone, then key, then every item but the §7a consent proof
/// and every object version; a dry run beforehand writes nothing and reports the same
/// counts.
#[tokio::test]
async fn a_subject_is_erased_key_first_consent_proofs_stay_and_a_dry_run_tells_the_same() {
    let w = world();
    let lead = subject(&w, "2026-11-28T10:00:00Z").await;
    let pk = format!("LEAD#{lead}");
    let now = "2029-11-28T10:00:00Z";

    let dry = run(&w, now, true).await;
    assert!(w.store.ops().is_empty(), "a dry run writes nothing");
    assert_eq!(w.blobs.keys().len(), 2);
    let real = run(&w, now, false).await;
    assert_eq!(
        dry.classes, real.classes,
        "the dry run reports what the real run does"
    );

    let ops = w.store.ops();
    let shred = ops
        .iter()
        .position(|o| *o == format!("shred {pk}"))
        .unwrap();
    // The recording class ran first (6 months are long past); then the subject: its key
    // before any item of its own.
    let first_delete = ops
        .iter()
        .position(|o| o.starts_with("delete ") && !o.ends_with("/RECORDING"))
        .unwrap();
    assert!(shred < first_delete, "the key goes first: {ops:?}");
    assert!(!w.store.has_key(&pk));
    // Partition, claims, calls and recordings gone; the §7a proof stays (own class),
    // and the tombstone (no personal data) that later events respect, written first.
    let left = w.store.keys();
    assert_eq!(
        left,
        vec![key("CONSENT#1", "PROOF"), key(pk.clone(), "ERASED")],
        "{left:?}"
    );
    let kept = w.store.item(&key("CONSENT#1", "PROOF")).unwrap();
    assert_eq!(
        (kept.kind.as_str(), kept.lead),
        ("phone_consent", None),
        "the proof is kept detached from the subject"
    );
    let bury = ops.iter().position(|o| *o == format!("bury {pk}")).unwrap();
    assert!(bury < shred, "the tombstone goes first: {ops:?}");
    assert!(w.blobs.keys().is_empty());
    // Profile, both claims, the call and its recording item.
    assert_eq!(real.classes["lead"].deleted, 5);
    let audit = w.store.audit();
    assert!(
        audit.contains(&"retention.subject_erased".to_owned()),
        "{audit:?}"
    );
    assert_eq!(w.store.runs().len(), 1, "only the real run is recorded");
}

/// R3, R3.4: a subject whose contract (business letters) ended in June 2027 is not erased
/// three years after the last contact but restricted and held until the end of 2033 in
/// Berlin; its key is not shredded.
#[tokio::test]
async fn a_live_contract_holds_the_subject_until_its_statutory_period_ends() {
    let w = world();
    let lead = LeadId::new();
    let signed_up = t("2026-11-28T10:00:00Z");
    w.leads
        .create_lead(&NewLead {
            id: lead,
            wrapped_key: domain::crypto::WrappedKey(vec![1]),
            sealed_profile: vec![2],
            email_index: BlindIndex::from_stored(format!("e-{lead}")),
            phone_index: BlindIndex::from_stored(format!("p-{lead}")),
            consent: ConsentEvidence {
                contact_by_phone: true,
                policy_version: "v".into(),
                given_at: signed_up,
                method: ConsentMethod::WebForm,
            },
            signed_up_at: signed_up,
            call_window: None,
        })
        .await
        .unwrap();
    w.store.put(
        key(format!("LEAD#{lead}"), "PROFILE"),
        MemItem::kind("lead")
            .of(lead)
            .retained(RetentionClass::Lead, signed_up),
    );
    let class = RetentionClass::Contract(ContractRecords::BusinessLetters);
    w.store.put(
        key(format!("LEAD#{lead}"), "CONTRACT#1"),
        MemItem::kind("contract")
            .of(lead)
            .retained(class, t("2027-06-30T00:00:00Z")),
    );

    let report = run(&w, "2029-11-28T10:00:00Z", false).await;
    assert_eq!(report.classes["lead"].held, 1);
    assert_eq!(report.classes["lead"].deleted, 0);
    let held = w.leads.lead(&lead).unwrap();
    assert!(held.lead.restricted, "R3.4: restricted while held");
    assert_eq!(
        held.hold_until,
        Some(t("2033-12-31T23:00:00Z")),
        "end of 2027 in Berlin + 6 years"
    );
    assert!(w.store.ops().iter().all(|o| !o.starts_with("shred")));
}

/// R3.2: 60 due consent proofs go in batches of 25, 25 and 10, and none is left.
#[tokio::test]
async fn plain_classes_are_deleted_in_batches_of_at_most_25() {
    let w = world();
    for i in 0..60 {
        w.store.put(
            key(format!("LEAD#x{i}"), format!("CONSENT#{i}")),
            MemItem::kind("phone_consent")
                .retained(RetentionClass::PhoneConsentProof, t("2025-01-01T00:00:00Z")),
        );
    }
    let report = run(&w, "2030-01-02T00:00:00Z", false).await;
    assert_eq!(report.classes["phone_consent"].deleted, 60);
    assert_eq!(w.store.batch_sizes(), vec![25, 25, 10]);
    assert!(w.store.keys().is_empty());
}

/// R3.2: an unused code past its 15 minutes ends its request (`verification_failed`, blind
/// indexes removed), and the request's contact key is deleted before the contact.
#[tokio::test]
async fn an_expired_code_ends_its_request_and_the_contact_key_goes_before_the_contact() {
    let w = world();
    let at = t("2026-11-28T10:00:00Z");
    w.store.put(
        key("DSAR#r1", "REQUEST"),
        MemItem {
            status: Some("awaiting_verification".into()),
            email_bidx: Some("e".into()),
            ..MemItem::kind("dsar_request")
        },
    );
    w.store.put(
        key("DSAR#r1", "CODE"),
        MemItem::kind("dsar_code").retained(RetentionClass::Verification, at),
    );
    w.store.put(
        key("DSAR#r1", "CONTACT"),
        MemItem::kind("dsar_contact").retained(RetentionClass::Verification, at),
    );
    w.store.put_key("DSAR#r1");

    run(&w, "2026-11-29T10:00:00Z", false).await;
    let request = w.store.item(&key("DSAR#r1", "REQUEST")).unwrap();
    assert_eq!(request.status.as_deref(), Some("verification_failed"));
    assert!(
        request.email_bidx.is_none(),
        "its blind indexes go with the code"
    );
    let ops = w.store.ops();
    let shred = ops.iter().position(|o| o == "shred DSAR#r1").unwrap();
    let contact = ops
        .iter()
        .position(|o| o == "delete DSAR#r1/CONTACT")
        .unwrap();
    assert!(shred < contact, "{ops:?}");
}

/// R3, R4.4: an export package is kept one hour short of 7 days and goes at 7 days, every
/// version of the object with its item.
#[tokio::test]
async fn an_export_goes_with_every_version_after_seven_days() {
    let w = world();
    w.store.put(
        key("DSAR#r2", "EXPORT"),
        MemItem::kind("dsar_export").retained(RetentionClass::Export, t("2026-11-28T10:00:00Z")),
    );
    w.exports
        .put("exports/r2.zip", b"zip".to_vec())
        .await
        .unwrap();
    w.exports
        .put("exports/r2.zip", b"zip2".to_vec())
        .await
        .unwrap();
    let early = run(&w, "2026-12-05T09:00:00Z", false).await;
    assert_eq!(early.classes["export"].due, 0);
    let report = run(&w, "2026-12-05T10:00:00Z", false).await;
    assert_eq!(report.classes["export"].objects, 2);
    assert!(w.exports.keys().is_empty() && w.store.keys().is_empty());
}

/// R3.2, R3.5: a run whose budget is spent stops before touching anything and records
/// itself as incomplete with its counts; the next run erases the subject.
#[tokio::test]
async fn a_run_out_of_time_stops_cleanly_and_the_next_run_finishes() {
    let w = world();
    subject(&w, "2026-08-31T10:00:00Z").await;
    let req = SweepRequest {
        dry_run: false,
        now: t("2030-01-01T00:00:00Z"),
    };
    let cut = w.sweeper.run(req, StdDuration::ZERO).await.unwrap();
    assert!(!cut.complete);
    assert!(w.store.ops().is_empty(), "nothing half-done");
    assert_eq!(
        w.store.runs(),
        vec![(serde_json::to_string(&cut.classes).unwrap(), false)]
    );
    let next = w.sweeper.run(req, HOUR).await.unwrap();
    assert!(next.complete);
    assert_eq!(next.classes["lead"].deleted, 5);
}

/// R3.5: a recording whose read fails does not stop the lead class (the subject is still
/// erased); the run ends in an error, its record counts the failure, and `SweepFailed`
/// is emitted with 1.
#[tokio::test]
async fn a_failing_item_does_not_stop_the_other_classes_and_the_run_reports_the_failure() {
    let w = world();
    let lead = subject(&w, "2026-08-31T10:00:00Z").await;
    w.store.fail_on("recording", Retry::Transient);
    let metrics = usecases::telemetry::capture::MetricCapture::start();
    let err = w
        .sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: t("2030-01-01T00:00:00Z"),
            },
            HOUR,
        )
        .await
        .unwrap_err();
    assert_eq!(err.retry, Retry::Transient);
    // The subject class still ran: erased, key first.
    assert!(!w.store.has_key(&format!("LEAD#{lead}")));
    assert!(w.blobs.keys().is_empty());
    // The run's record holds the numbers per class, the failure among them.
    let runs = w.store.runs();
    assert_eq!(runs.len(), 1);
    let counts: serde_json::Value = serde_json::from_str(&runs[0].0).unwrap();
    assert_eq!(counts["recording"]["due"], 1);
    assert_eq!(counts["recording"]["failed"], 1);
    assert_eq!(counts["recording"]["deleted"], 0);
    assert_eq!(counts["lead"]["due"], 1);
    assert_eq!(counts["lead"]["deleted"], 5);
    assert_eq!(counts["lead"]["failed"], 0);
    assert_eq!(metrics.values("SweepFailed"), vec![1.0]);
    assert_eq!(metrics.values("Swept_lead"), vec![5.0]);
}

/// R3, R3.2 (issue 12, item 3): the sweep decides on the lead as it is now, not on the
/// (eventually consistent) expiry index: a subject whose contact moved since is kept,
/// in a dry run as in a real one; before, it was erased.
#[tokio::test]
async fn a_subject_whose_contact_moved_after_the_index_said_due_is_kept() {
    let w = world();
    let lead = subject(&w, "2026-11-28T10:00:00Z").await;
    let pk = format!("LEAD#{lead}");
    w.store.move_lead(lead, t("2032-11-28T10:00:00Z"));
    let now = "2029-11-28T10:00:00Z";

    let dry = run(&w, now, true).await;
    assert_eq!(dry.classes["lead"].due, 1);
    assert_eq!(dry.classes["lead"].skipped, 1);
    assert_eq!(dry.classes["lead"].deleted, 0);
    let real = run(&w, now, false).await;
    assert_eq!(dry.classes, real.classes);
    assert!(w.store.has_key(&pk), "the key stays");
    assert!(w.store.item(&key(pk.clone(), "PROFILE")).is_some());
    assert!(w.store.item(&key(pk, "ERASED")).is_none(), "no tombstone");
    assert!(!w.store.ops().iter().any(|o| o.starts_with("shred")));
}

/// The sweep over `w` that deletes erased subjects' calls at `provider` through `outbox`,
/// on a clock at `now`.
fn sweeper_with_provider(
    w: &World,
    provider: &testkit::MemoryCallDeleter,
    outbox: &testkit::MemoryOutbox,
    clock: &domain::FixedClock,
) -> Sweeper {
    Sweeper::new(
        std::sync::Arc::new(w.store.clone()),
        std::sync::Arc::new(w.leads.clone()),
        std::sync::Arc::new(w.blobs.clone()),
    )
    .with_exports(std::sync::Arc::new(w.exports.clone()))
    .with_provider_deletions(std::sync::Arc::new(usecases::outbox::ProviderDeletions {
        outbox: std::sync::Arc::new(outbox.clone()),
        provider: std::sync::Arc::new(provider.clone()),
        clock: std::sync::Arc::new(clock.clone()),
    }))
}

/// R3 (lead class: R4.5 mechanics), R4.5: a subject the sweep erases loses its calls at
/// the provider too, like an erasure request does; a dry run deletes none.
#[tokio::test]
async fn the_sweep_deletes_an_erased_subjects_calls_at_the_provider() {
    let w = world();
    let lead = subject(&w, "2026-11-28T10:00:00Z").await;
    let now = "2029-11-28T10:00:00Z";
    let clock = domain::FixedClock::at(t(now));
    let (provider, outbox) = (
        testkit::MemoryCallDeleter::new(),
        testkit::MemoryOutbox::new(),
    );
    let sweeper = sweeper_with_provider(&w, &provider, &outbox, &clock);

    let dry = sweeper
        .run(
            SweepRequest {
                dry_run: true,
                now: t(now),
            },
            HOUR,
        )
        .await
        .unwrap();
    assert!(
        provider.deleted().is_empty(),
        "a dry run deletes nothing: {dry:?}"
    );
    sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: t(now),
            },
            HOUR,
        )
        .await
        .unwrap();

    assert_eq!(provider.deleted(), vec![format!("c-{lead}")]);
    assert!(outbox.entries().is_empty(), "nothing left to retry");
}

/// R2.9, R3, R4.5: a provider outage does not block the sweep: the subject is erased here (key
/// first), the call waits in the outbox with its backoff, and a later drain deletes it.
#[tokio::test]
async fn a_provider_outage_does_not_block_the_sweep_and_the_outbox_deletes_later() {
    let w = world();
    let lead = subject(&w, "2026-11-28T10:00:00Z").await;
    let pk = format!("LEAD#{lead}");
    let now = "2029-11-28T10:00:00Z";
    let clock = domain::FixedClock::at(t(now));
    let (provider, outbox) = (
        testkit::MemoryCallDeleter::new(),
        testkit::MemoryOutbox::new(),
    );
    provider.fail_with(Retry::Transient);
    let sweeper = sweeper_with_provider(&w, &provider, &outbox, &clock);

    let report = sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: t(now),
            },
            HOUR,
        )
        .await
        .unwrap();

    assert_eq!(report.classes["lead"].failed, 0);
    assert!(!w.store.has_key(&pk), "erased here, key first");
    let entries = outbox.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].call_id, format!("c-{lead}"));
    assert_eq!(entries[0].attempts, 1);
    assert_eq!(
        entries[0].next_attempt_at,
        t(now) + chrono::Duration::hours(1)
    );

    // Not due yet: the drain leaves it alone.
    provider.heal();
    let early = sweeper.drain_outbox(HOUR).await.unwrap().unwrap();
    assert_eq!((early.due, early.pending), (0, 1));
    clock.advance(chrono::Duration::minutes(61));
    let drained = sweeper.drain_outbox(HOUR).await.unwrap().unwrap();
    assert_eq!((drained.deleted, drained.pending), (1, 0));
    assert_eq!(provider.deleted(), vec![format!("c-{lead}")]);
    assert!(outbox.entries().is_empty());
}

/// R2.9, R4.5: a deletion that keeps failing becomes an incident after five attempts, each
/// retry waiting twice as long (capped at a day).
#[tokio::test]
async fn a_provider_deletion_that_keeps_failing_becomes_an_incident() {
    let w = world();
    subject(&w, "2026-11-28T10:00:00Z").await;
    let now = "2029-11-28T10:00:00Z";
    let clock = domain::FixedClock::at(t(now));
    let (provider, outbox) = (
        testkit::MemoryCallDeleter::new(),
        testkit::MemoryOutbox::new(),
    );
    provider.fail_with(Retry::Transient);
    let sweeper = sweeper_with_provider(&w, &provider, &outbox, &clock);
    sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: t(now),
            },
            HOUR,
        )
        .await
        .unwrap();

    let mut waits = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let e = outbox.entries().pop().unwrap();
        waits.push((e.next_attempt_at - clock.now()).num_minutes());
        clock.set(e.next_attempt_at);
        last = sweeper.drain_outbox(HOUR).await.unwrap();
    }
    assert_eq!(waits, [60, 120, 240, 480, 960]);
    let e = outbox.entries().pop().unwrap();
    assert_eq!(e.attempts, 6);
    assert!(e.incident);
    assert_eq!(last.unwrap().incidents, 1);
}

/// R3.2, R3.5: a failure part-way through a subject's erasure, after its key went (the
/// objects' or the items' deletion refused), leaves the key gone, the run an error with
/// the failure in its record and in `SweepFailed`, and the subject still findable: the
/// next run finishes it (every object version, every item but the consent proof).
/// Before, the items went before the objects, so a failed object deletion left audio
/// and transcripts that no later run would find.
#[tokio::test]
async fn a_failure_mid_erasure_leaves_the_key_gone_and_the_next_run_finishes_the_subject() {
    for fault in ["objects", "items"] {
        let w = world();
        let lead = subject(&w, "2026-11-28T10:00:00Z").await;
        let pk = format!("LEAD#{lead}");
        match fault {
            "objects" => w.blobs.fail_with(Retry::Transient),
            _ => w.store.fail_on("delete", Retry::Transient),
        }
        let metrics = usecases::telemetry::capture::MetricCapture::start();
        let req = SweepRequest {
            dry_run: false,
            now: t("2029-11-28T10:00:00Z"),
        };

        let err = w.sweeper.run(req, HOUR).await.unwrap_err();
        assert_eq!(err.retry, Retry::Transient, "{fault}");
        assert!(!w.store.has_key(&pk), "{fault}: the key went first");
        assert!(
            w.store.item(&key(pk.clone(), "PROFILE")).is_some(),
            "{fault}: the indexed item stays until the end, so the subject is found again"
        );
        let counts: serde_json::Value = serde_json::from_str(&w.store.runs()[0].0).unwrap();
        assert_eq!(counts["lead"]["failed"], 1, "{fault}: {counts}");
        // The recording class failed too (same objects, same items).
        assert_eq!(counts["recording"]["failed"], 1, "{fault}: {counts}");
        assert_eq!(metrics.values("SweepFailed"), vec![2.0], "{fault}");
        drop(metrics);

        w.blobs.heal();
        w.store.heal();
        let next = w.sweeper.run(req, HOUR).await.unwrap();
        assert_eq!(next.classes["lead"].failed, 0, "{fault}");
        assert!(w.blobs.keys().is_empty(), "{fault}: every object version");
        assert_eq!(
            w.store.keys(),
            vec![key("CONSENT#1", "PROOF"), key(pk.clone(), "ERASED")],
            "{fault}: everything else of the subject (the proof kept, detached)"
        );
        assert!(
            w.store
                .audit()
                .contains(&"retention.subject_erased".to_owned()),
            "{fault}"
        );
    }
}
