//! What the retention sweep costs in AWS requests, counted on the wire by an SDK
//! interceptor on its clients (`harness::requests`): 1 000 subjects erased at the batch
//! lower bound, and a run right after a complete one at a handful of index queries.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use harness::requests::{counted_sweeper, seed_due_subjects, sign_up_many, RequestCounter};
use harness::stack::Stack;
use shared::domain::RetentionClass;
use shared::sweep::SweepRequest;

/// Subjects erased: 200 here, as moto answers only a few requests a second on a loaded
/// machine; `make bench` (`bench-sweep`) erases 1 000 with the same formula.
const SUBJECTS: usize = 200;
/// Classes the sweep reads from the expiry index.
const CLASSES: usize = 9;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Months from the month of `from` to the month of `to`, both included.
fn months(from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
    let m = |d: DateTime<Utc>| d.year() as usize * 12 + d.month0() as usize;
    m(to) - m(from) + 1
}

/// The sweep's cursors as a complete run at `at` leaves them, for every class.
async fn seed_cursors(stack: &Stack, at: DateTime<Utc>) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let at = shared::domain::retention::stored_instant(at);
    for class in [
        "recording",
        "contract6",
        "contract8",
        "contract10",
        "phone_consent",
        "verification",
        "export",
        "request",
        "lead",
    ] {
        ddb.put_item()
            .table_name(&stack.table)
            .item("pk", S("SWEEP#CURSOR".into()))
            .item("sk", S(class.into()))
            .item("kind", S("sweep_cursor".into()))
            .item("swept_at", S(at.clone()))
            .item("full_at", S(at.clone()))
            .send()
            .await
            .unwrap();
    }
}

/// What the signed-up subjects hold, from a scan before the sweep: items an erasure
/// deletes (partition items but the consent proofs, and the identifier claims), and
/// consent proofs (copied out, then deleted).
async fn census(stack: &Stack) -> (usize, usize) {
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let (mut erased, mut proofs) = (0, 0);
    let mut start = None;
    loop {
        let out = ddb
            .scan()
            .table_name(&stack.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for i in out.items() {
            let pk = i["pk"].as_s().unwrap();
            let kind = i
                .get("kind")
                .and_then(|k| k.as_s().ok())
                .map(String::as_str);
            if pk.starts_with("LEAD#") {
                if kind == Some("phone_consent") {
                    proofs += 1;
                } else {
                    erased += 1;
                }
            } else if pk.starts_with("EMAIL#") || pk.starts_with("PHONE#") {
                erased += 1;
            }
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return (erased, proofs);
        }
    }
}

/// R3.2: 200 subjects (ten signed up through the sign-up use case, the rest seeded in
/// the shape a sign-up leaves) are erased, all of them
/// (their keys gone, nothing of them but the detached consent proofs left), with at most
/// 1.1 × the batch lower bound of AWS requests, counted by operation on the wire:
///
/// ```text
/// bound = I            index queries: classes × months since the cursors (less the slack)
///       + 1 + S        the cursors; one consistent read of each subject's partition
///                      (Query has no batch form; it is also the fresh re-check)
///       + ⌈S/12⌉       tombstones with their checks (TransactWriteItems of 24 actions:
///                      the emulator's limit is 25, DynamoDB's 100)
///       + ⌈S/25⌉       data keys (BatchWriteItem on the key table)
///       + ⌈P/25⌉       consent-proof copies
///       + ⌈(K−N+P)/25⌉ the subjects' other items and the proofs' originals
///       + ⌈N/25⌉       the N items the index named (last)
///       + ⌈S/25⌉       audit events
///       + 2            the cursors moved, the run's record
/// ```
///
/// (S subjects, K items an erasure deletes, P consent proofs; no subject here had a
/// call, so no object listings or attempt counters.) Before this, the sweep paid 14
/// requests per subject and 640 index queries per run. The run right after, with nothing
/// due, reads two or three months per class: O(classes), not one query per class and
/// month since 2024.
#[tokio::test]
async fn erasures_cost_at_most_the_batch_lower_bound_and_a_second_run_only_its_cursors() {
    let stack = Stack::isolated().await.expect("provision");
    let t0 = t("2026-11-28T10:00:00Z");
    let due = RetentionClass::Lead.due_at(t0).unwrap();
    // Ten through the sign-up use case, the rest seeded in their shape.
    sign_up_many(&stack, 10, t0).await.unwrap();
    seed_due_subjects(&stack, SUBJECTS - 10, due).await.unwrap();
    let (k, p) = census(&stack).await;

    // The cursors a complete run the day before left (its 640 index queries against the
    // emulator take minutes; `retention_batch.rs` shows a run leaving them).
    let budget = Duration::from_secs(3600);
    let yesterday = due - chrono::Duration::hours(20);
    seed_cursors(&stack, yesterday).await;

    let counter = RequestCounter::default();
    let sweeper = counted_sweeper(&stack, &counter).unwrap();
    let now = due + chrono::Duration::hours(4);
    let report = sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now,
            },
            budget,
        )
        .await
        .unwrap();
    let lead = &report.classes["lead"];
    assert!(report.complete);
    assert_eq!((lead.due >= SUBJECTS, lead.failed), (true, 0), "{lead:?}");
    assert_eq!(lead.deleted, k, "every item of every subject: {lead:?}");

    let s = SUBJECTS;
    let n = lead.due;
    let index = CLASSES * months(yesterday - chrono::Duration::days(31), now);
    let bound = index
        + 1
        + s
        + s.div_ceil(12)
        + s.div_ceil(25)
        + p.div_ceil(25)
        + (k - n + p).div_ceil(25)
        + n.div_ceil(25)
        + s.div_ceil(25)
        + 2;
    let sent = counter.total();
    let ops = counter.by_operation();
    println!(
        "{s} subjects ({k} items, {p} consent proofs): {sent} requests, bound {bound}, \
         {:.2} per subject; {ops:?}",
        sent as f64 / s as f64
    );
    // Tombstone transactions the emulator cancels are decided again one subject at a
    // time (see the report): counted apart, bounded by one per subject.
    let transactions = counter.of("TransactWriteItems");
    let fallback = transactions.saturating_sub(s.div_ceil(12));
    assert!(transactions <= s.div_ceil(12) + s, "{ops:?}");
    assert!(
        (sent - fallback) as f64 <= 1.1 * bound as f64,
        "{sent} requests ({fallback} tombstones one by one) against a lower bound of {bound}: {ops:?}"
    );
    assert_eq!(counter.of("Scan"), 0);
    assert_eq!(
        counter.of("GetItem") + counter.of("DeleteItem"),
        0,
        "{ops:?}"
    );

    // Erased: no data key and no lead partition item left but the tombstones.
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let keys = ddb
        .scan()
        .table_name(&stack.key_table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(keys, 0, "every data key shredded");
    let (left, proofs_left) = census(&stack).await;
    assert_eq!((left, proofs_left), (SUBJECTS, 0), "only the tombstones");

    // A run right after a complete one: the cursors, two or three months per class, the
    // cursors moved, the record.
    let again = RequestCounter::default();
    let sweeper = counted_sweeper(&stack, &again).unwrap();
    let later = now + chrono::Duration::minutes(5);
    sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: later,
            },
            budget,
        )
        .await
        .unwrap();
    let fixed = again.total();
    let index = CLASSES * months(now - chrono::Duration::days(31), later);
    println!(
        "a run right after: {fixed} requests; {:?}",
        again.by_operation()
    );
    assert_eq!(fixed, index + 3, "{:?}", again.by_operation());
    assert!(fixed <= CLASSES * 3 + 3);
}
