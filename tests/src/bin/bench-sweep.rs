//! `make bench`: the retention sweep's cost (dev-only).
//!
//! 1. AWS requests per erased subject, counted by an SDK interceptor on the sweeper's
//!    clients, against the lower bound the batch limits allow.
//! 2. Items swept per second for 10 000 due items (phone-consent proofs), against moto.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use chrono::{DateTime, Utc};
use harness::stack::Stack;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::s3::BlobStore;
use shared::domain::{Email, LeadProfile, PersonName, PhoneNumber, RetentionClass};
use shared::leads::{LeadService, SignupRequest};
use shared::sweep::{SweepRequest, Sweeper, BATCH_WRITE_LIMIT};
use shared::FixedClock;

const SUBJECTS: usize = 50;
const ITEMS: usize = 10_000;

/// Counts operations (not retries) sent through a client.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "bench-request-counter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        Ok(())
    }
}

fn counted_sweeper(stack: &Stack, counter: &Counter) -> Result<Sweeper> {
    let config = stack.config_for("RetentionSweepFunction")?;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.aws)
            .force_path_style(true)
            .interceptor(counter.clone())
            .build(),
    );
    Ok(Sweeper::new(
        ddb,
        stack.table.clone(),
        stack.key_table.clone(),
        BlobStore::new(
            s3,
            config.recordings_bucket.unwrap_or_default(),
            config.data_key_arn,
        ),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    println!("== retention sweep benchmark");
    // 1. Requests per erased subject.
    let stack = Stack::isolated().await?;
    let t0 = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")?.with_timezone(&Utc);
    let clock = FixedClock::at(t0);
    let config = stack.signup_config()?;
    let leads = LeadService::new(
        Arc::new(DynamoLeadStore::new(
            aws_sdk_dynamodb::Client::new(&stack.aws),
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
        Arc::new(KmsKeyService::new(
            aws_sdk_kms::Client::new(&stack.aws),
            config.data_key_id,
            config.blind_index_key_id,
        )),
        Arc::new(clock.clone()),
    );
    for i in 0..SUBJECTS {
        let profile = LeadProfile {
            first_name: PersonName::parse("Bench")?,
            last_name: PersonName::parse("Subject")?,
            email: Email::parse(&format!("subject{i}@example.org"))?,
            phone: PhoneNumber::parse(&format!("+49 170 {:07}", 2_000_000 + i))?,
            notes: None,
        };
        leads
            .sign_up(SignupRequest {
                profile,
                source_ip: None,
                client: None,
                policy_version: "2024-04-08".into(),
                call_window: None,
            })
            .await?;
    }
    let counter = Counter::default();
    let sweeper = counted_sweeper(&stack, &counter)?;
    let now = RetentionClass::Lead.due_at(t0).unwrap_or(t0) + chrono::Duration::days(1);
    let report = sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now,
            },
            Duration::from_secs(600),
        )
        .await?;
    let erased = report.classes.get("lead").map(|c| c.deleted).unwrap_or(0);
    let requests = counter.0.load(Ordering::Relaxed);
    // What a run costs with nothing due (index queries per class and month, the run
    // record): measured with a second run at the same time.
    let empty = Counter::default();
    counted_sweeper(&stack, &empty)?
        .run(
            SweepRequest {
                dry_run: false,
                now,
            },
            Duration::from_secs(600),
        )
        .await?;
    let fixed = empty.0.load(Ordering::Relaxed);
    let per_subject = (requests.saturating_sub(fixed)) as f64 / SUBJECTS as f64;
    // Each subject holds 4 deletable items here (lead, key, two claims); the lower bound is
    // one BatchWriteItem per 25 of them across subjects, plus reading what to delete.
    let lower = (SUBJECTS * 4).div_ceil(BATCH_WRITE_LIMIT) as f64 / SUBJECTS as f64;
    println!(
        "erased {SUBJECTS} subjects ({erased} items): {requests} AWS requests, {per_subject:.1} per subject \
         beyond the {fixed} fixed ones; batch-limit lower bound {lower:.2} writes per subject"
    );

    // 2. Throughput for 10 000 due items.
    let stack = Stack::isolated().await?;
    let due = DateTime::parse_from_rfc3339("2031-11-28T10:00:00Z")?.with_timezone(&Utc);
    stack.seed_due_consent_proofs(ITEMS, due).await?;
    let counter = Counter::default();
    let sweeper = counted_sweeper(&stack, &counter)?;
    let started = Instant::now();
    let report = sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: due + chrono::Duration::days(1),
            },
            Duration::from_secs(600),
        )
        .await?;
    let elapsed = started.elapsed();
    let swept = report
        .classes
        .get("phone_consent")
        .map(|c| c.deleted)
        .unwrap_or(0);
    println!(
        "swept {swept} items in {elapsed:.2?}: {:.0} items/s against moto, {} AWS requests",
        swept as f64 / elapsed.as_secs_f64(),
        counter.0.load(Ordering::Relaxed)
    );
    Ok(())
}
