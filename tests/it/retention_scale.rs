//! 10 000 due items are swept completely, and no BatchWriteItem carries more than 25
//! requests (moto does not enforce the limit, so the sweeper's own requests are counted).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use harness::stack::Stack;
use shared::adapters::s3::BlobStore;
use shared::sweep::{SweepRequest, Sweeper, BATCH_WRITE_LIMIT};

const ITEMS: usize = 10_000;

/// R3.2: 10 000 due consent proofs are all deleted in 400 BatchWriteItem requests of at
/// most 25 items (the lower bound), and a dry run beforehand reports the same count.
#[tokio::test]
async fn ten_thousand_due_items_are_swept_in_batches_of_at_most_25() {
    let stack = Stack::isolated().await.expect("provision");
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let due = DateTime::parse_from_rfc3339("2031-11-28T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    stack.seed_due_consent_proofs(ITEMS, due).await.unwrap();

    let config = stack.config_for("RetentionSweepFunction").unwrap();
    let sweeper = Sweeper::new(
        ddb.clone(),
        stack.table.clone(),
        stack.key_table.clone(),
        BlobStore::new(
            harness::s3_client(&stack.aws),
            config.recordings_bucket.unwrap(),
            config.data_key_arn,
        ),
    );
    let now = due + chrono::Duration::days(1);
    let dry = sweeper
        .run(
            SweepRequest { dry_run: true, now },
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    assert_eq!(dry.classes["phone_consent"].deleted, ITEMS);
    let started = Instant::now();
    let report = sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now,
            },
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(report.complete);
    assert_eq!(
        report.classes["phone_consent"].deleted, ITEMS,
        "the dry run said the same"
    );

    let sizes = sweeper.batch_sizes.lock().unwrap().clone();
    assert!(
        sizes.iter().all(|n| *n <= BATCH_WRITE_LIMIT),
        "a batch over 25"
    );
    assert_eq!(
        sizes.len(),
        ITEMS.div_ceil(BATCH_WRITE_LIMIT) + 1,
        "the lower bound of requests (and one for the 9 classes' cursors)"
    );
    let left = ddb
        .scan()
        .table_name(&stack.table)
        .filter_expression("kind <> :cursor")
        .expression_attribute_values(
            ":cursor",
            aws_sdk_dynamodb::types::AttributeValue::S("sweep_cursor".into()),
        )
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(
        left, 1,
        "only the run's audit record remains (and the cursors)"
    );
    println!(
        "swept {ITEMS} items in {elapsed:.2?} ({:.0} items/s) with {} BatchWriteItem requests",
        ITEMS as f64 / elapsed.as_secs_f64(),
        sizes.len()
    );
}
