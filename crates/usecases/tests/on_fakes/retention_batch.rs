//! The retention sweep's batches across subjects and its per-class cursor (R3.2), on
//! fakes: which partitions a run reads, the order of keys, objects and items across many
//! subjects, the batch sizes, the dry run against the real run, and `SweepIncomplete`.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use domain::{LeadId, RetentionClass};
use proptest::prelude::*;
use testkit::retention::{key, MemItem};
use testkit::{MemoryObjects, MemoryRetentionStore};
use usecases::ports::{Objects, Retry};
use usecases::retention::sweep::{first_month, CURSOR_SLACK, FULL_PASS_EVERY};
use usecases::retention::{SweepReport, SweepRequest, Sweeper};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const HOUR: StdDuration = StdDuration::from_secs(3600);

/// Expiry-index classes the sweep reads (9 of them).
const CLASSES: usize = 9;

struct World {
    store: MemoryRetentionStore,
    blobs: MemoryObjects,
    sweeper: Sweeper,
}

fn world() -> World {
    let w = testkit::World::new();
    World {
        sweeper: w.sweeper(),
        store: w.retention,
        blobs: w.recordings,
    }
}

async fn run(w: &World, now: DateTime<Utc>, dry_run: bool) -> SweepReport {
    w.sweeper
        .run(SweepRequest { dry_run, now }, HOUR)
        .await
        .unwrap()
}

/// A subject whose last contact was `at`: lead, consent proof, two claims; with
/// `call`, a call, its recording item and two object versions under its prefixes.
async fn subject(w: &World, at: DateTime<Utc>, call: bool) -> LeadId {
    let lead = LeadId::new();
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
        key(pk.clone(), format!("CONSENT#{lead}")),
        MemItem::kind("phone_consent")
            .of(lead)
            .retained(RetentionClass::PhoneConsentProof, at + Duration::days(3650)),
    );
    for claim in [format!("EMAIL#e-{lead}"), format!("PHONE#p-{lead}")] {
        w.store
            .put(key(claim, "CLAIM"), MemItem::kind("claim").of(lead));
    }
    if call {
        let c = format!("c-{lead}");
        w.store.put(
            key(format!("CALL#{c}"), "CALL"),
            MemItem::kind("call").of(lead),
        );
        let audio = format!("recordings/{lead}/{c}.audio");
        w.store.put(
            key(format!("CALL#{c}"), "RECORDING"),
            MemItem {
                call_id: Some(c.clone()),
                objects: vec![audio.clone()],
                ..MemItem::kind("recording").of(lead)
            },
        );
        w.blobs.put(&audio, b"v1".to_vec()).await.unwrap();
        w.blobs
            .put(
                &format!("transcripts/{lead}/{c}.json.sealed"),
                b"s".to_vec(),
            )
            .await
            .unwrap();
    }
    lead
}

/// R3.2, R3.5: 60 due subjects are erased together: every key is shredded before any item
/// of any subject is deleted, in key batches of 25, 25 and 10; the items go in full
/// batches across subjects (never more than 25), the items the index named last; every
/// object version goes; the audit events come in batches too (60 events, 3 requests);
/// the consent proofs stay, detached. The dry run before reported the same counts.
#[tokio::test]
async fn sixty_subjects_are_erased_keys_first_then_items_in_full_batches_across_subjects() {
    let w = world();
    let contact = t("2026-11-28T10:00:00Z");
    let mut leads = Vec::new();
    for i in 0..60 {
        leads.push(subject(&w, contact, i % 3 == 0).await);
    }
    let now = t("2029-11-29T00:00:00Z");
    let dry = run(&w, now, true).await;
    assert!(w.store.ops().is_empty(), "a dry run writes nothing");
    let real = run(&w, now, false).await;
    assert_eq!(dry.classes, real.classes, "the dry run tells the same");
    let c = &real.classes["lead"];
    // 4 items each (profile, 2 claims) + 20 calls with their recording items.
    assert_eq!((c.due, c.deleted, c.objects), (60, 60 * 3 + 20 * 2, 40));

    let ops = w.store.ops();
    let last_shred = ops.iter().rposition(|o| o.starts_with("shred ")).unwrap();
    let first_delete = ops.iter().position(|o| o.starts_with("delete ")).unwrap();
    assert!(
        last_shred < first_delete,
        "every key before any item: {ops:?}"
    );
    let first_profile = ops.iter().position(|o| o.ends_with("/PROFILE")).unwrap();
    assert!(
        ops[first_profile..]
            .iter()
            .all(|o| o.starts_with("delete LEAD#") && o.ends_with("/PROFILE")),
        "the indexed items go last: {ops:?}"
    );
    assert!(
        ops[..first_profile]
            .iter()
            .any(|o| o.starts_with("delete CALL#")),
        "the other items before them: {ops:?}"
    );
    let sizes = w.store.batch_sizes();
    assert!(sizes.iter().all(|n| *n <= 25), "{sizes:?}");
    // Keys 25+25+10, proof copies 25+25+10, items (240 incl. proofs' originals → 180
    // + 60) in full batches, profiles (60) 25+25+10, audits 25+25+10.
    let items: usize = 60 * 2 + 20 * 2 + 60; // claims, call items, proofs' originals
    let expected = [25, 25, 10].len() * 4 + items.div_ceil(25);
    assert_eq!(sizes.len(), expected, "{sizes:?}");
    assert_eq!(
        w.store
            .audit()
            .iter()
            .filter(|a| *a == "retention.subject_erased")
            .count(),
        60
    );
    assert!(w.blobs.keys().is_empty(), "every object version");
    for lead in &leads {
        assert!(!w.store.has_key(&format!("LEAD#{lead}")));
        let kept = w
            .store
            .item(&key(format!("CONSENT#{lead}"), "PROOF"))
            .expect("the consent proof stays");
        assert_eq!(kept.lead, None, "detached");
    }
}

/// R3.2: the first run reads every month since 2024-01 for each class; the run right
/// after it reads at most three months per class (its cursor less the slack), and a dry
/// run neither moves a cursor nor reads differently from the real run after it.
#[tokio::test]
async fn a_run_after_a_complete_one_reads_only_the_months_since_its_cursor() {
    let w = world();
    let now = t("2029-11-29T00:00:00Z");
    let dry = run(&w, now, true).await;
    assert!(w.store.cursors().is_empty(), "a dry run moves no cursor");
    let dry_reads = w.store.reads();
    w.store.clear_reads();
    let first = run(&w, now, false).await;
    assert!(first.complete);
    assert_eq!(dry.classes, first.classes);
    assert_eq!(
        w.store.reads(),
        dry_reads,
        "the dry run reads what the real run reads"
    );
    // 2024-01 .. 2029-11: 71 months.
    assert_eq!(w.store.reads().len(), CLASSES * 71);
    assert_eq!(w.store.cursors().len(), CLASSES);

    w.store.clear_reads();
    run(&w, now + Duration::days(1), false).await;
    let reads = w.store.reads();
    assert_eq!(
        reads.len(),
        CLASSES * 2,
        "October and November of each class: {reads:?}"
    );
    assert!(reads
        .iter()
        .all(|b| b.ends_with("#2029-10") || b.ends_with("#2029-11")));
}

/// R3.2: what a writer makes due after a run, earlier than the run's cursor, is still
/// found: a lead whose retention was cut short to a date a few days before the last run
/// (inside the slack) by the next daily run; one moved years back (a historic date) by
/// the full pass that every class makes again within 30 days; and a clock moved back
/// before a cursor reads every month again.
#[tokio::test]
async fn items_moved_earlier_than_the_cursor_are_found() {
    let w = world();
    let now = t("2029-12-02T00:00:00Z");
    run(&w, now, false).await;

    // Due a few days before the last run (the month before its cursor), written after it.
    let recent = subject(&w, t("2026-11-28T00:00:00Z"), false).await;
    let next = run(&w, now + Duration::days(1), false).await;
    assert_eq!(next.classes["lead"].due, 1);
    assert!(!w.store.has_key(&format!("LEAD#{recent}")), "erased");

    // Due in 2025 (long before the cursor), written now.
    let historic = subject(&w, t("2022-03-01T00:00:00Z"), false).await;
    let mut day = now + Duration::days(2);
    let mut found_after = None;
    while day < now + FULL_PASS_EVERY + Duration::days(2) {
        if run(&w, day, false).await.classes["lead"].due == 1 {
            found_after = Some(day - now);
            break;
        }
        day += Duration::days(1);
    }
    let waited = found_after.expect("found by a full pass");
    assert!(waited <= FULL_PASS_EVERY, "{waited}");
    assert!(!w.store.has_key(&format!("LEAD#{historic}")));

    // A clock moved back before the cursors: every month again.
    w.store.clear_reads();
    run(&w, t("2027-01-15T00:00:00Z"), true).await;
    assert_eq!(w.store.reads().len(), CLASSES * 37, "2024-01 .. 2027-01");
}

/// R3.2, R3.5: a class whose pass failed keeps its cursor (its months are read again
/// next time); the others move.
#[tokio::test]
async fn a_failed_class_keeps_its_cursor() {
    let w = world();
    let now = t("2029-11-29T00:00:00Z");
    subject(&w, t("2026-11-28T10:00:00Z"), false).await;
    w.store.fail_on("shred_key", Retry::Transient);
    assert!(w
        .sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now
            },
            HOUR
        )
        .await
        .is_err());
    let cursors = w.store.cursors();
    assert!(!cursors.contains_key("lead"), "{cursors:?}");
    assert_eq!(cursors.len(), CLASSES - 1);
    w.store.heal();
    w.store.clear_reads();
    let again = run(&w, now, false).await;
    assert_eq!(again.classes["lead"].deleted, 3);
    assert_eq!(
        w.store
            .reads()
            .iter()
            .filter(|b| b.starts_with("lead#"))
            .count(),
        71,
        "the lead class read every month again"
    );
}

/// R3.2, R3.5: `SweepIncomplete` is 1 for a real run cut off by its budget and 0 for a
/// complete one; a dry run emits none. The cut-off run moves no cursor of a class it
/// did not finish.
#[tokio::test]
async fn sweep_incomplete_says_whether_a_real_run_finished() {
    let w = world();
    let now = t("2029-11-29T00:00:00Z");
    subject(&w, t("2026-11-28T10:00:00Z"), false).await;
    let metrics = usecases::telemetry::capture::MetricCapture::start();
    let cut = w
        .sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now,
            },
            StdDuration::ZERO,
        )
        .await
        .unwrap();
    assert!(!cut.complete);
    assert!(!w.store.cursors().contains_key("lead"));
    run(&w, now, true).await;
    run(&w, now, false).await;
    assert_eq!(metrics.values("SweepIncomplete"), vec![1.0, 0.0]);
}

/// R3.2: the window a class reads: no cursor, an old full pass, or a clock before the
/// full pass read from 2024-01; otherwise from the month of the earlier of cursor and
/// now, less the slack.
#[test]
fn the_first_month_follows_the_cursor() {
    use usecases::retention::ports::SweepCursor;
    let now = t("2029-11-29T00:00:00Z");
    assert_eq!(first_month(None, now), ((2024, 1), true));
    let c = SweepCursor {
        swept_at: now - Duration::days(1),
        full_at: now - Duration::days(10),
    };
    assert_eq!(first_month(Some(c), now), ((2029, 10), false));
    let later = SweepCursor {
        swept_at: now + Duration::days(100),
        full_at: now - Duration::days(10),
    };
    let from = now - CURSOR_SLACK;
    assert_eq!(
        first_month(Some(later), now),
        ((2029, 10), false),
        "a cursor after now counts from now ({from})"
    );
    let stale = SweepCursor {
        full_at: now - FULL_PASS_EVERY,
        ..c
    };
    assert_eq!(first_month(Some(stale), now), ((2024, 1), true));
    let future = SweepCursor {
        full_at: now + Duration::days(1),
        ..c
    };
    assert_eq!(first_month(Some(future), now), ((2024, 1), true));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// R3.1, R3.2: for any mix of due and not-yet-due subjects (with and without calls),
    /// runs on consecutive days, a dry run reports exactly what the real run right after
    /// it does, with the cursors in place.
    #[test]
    fn the_dry_run_equals_the_real_run_across_batches_and_cursors(
        subjects in proptest::collection::vec((0i64..1500, any::<bool>()), 1..140),
        days in 1usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let w = world();
            let base = t("2026-11-01T00:00:00Z");
            for (offset, call) in &subjects {
                subject(&w, base + Duration::days(*offset), *call).await;
            }
            let mut now = t("2029-11-29T00:00:00Z");
            let mut erased = 0;
            for _ in 0..days {
                let dry = run(&w, now, true).await;
                let real = run(&w, now, false).await;
                prop_assert_eq!(&dry.classes, &real.classes);
                erased += real.classes["lead"].due;
                now += Duration::days(200);
            }
            let due = subjects
                .iter()
                .filter(|(o, _)| {
                    RetentionClass::Lead.due_at(base + Duration::days(*o)).unwrap()
                        <= now - Duration::days(200)
                })
                .count();
            prop_assert_eq!(erased, due);
            Ok::<(), TestCaseError>(())
        })?;
    }
}
