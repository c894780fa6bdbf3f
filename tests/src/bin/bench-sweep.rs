//! `make bench`: the retention sweep's cost (dev-only), counted on the wire by an SDK
//! interceptor on the sweeper's clients (`harness::requests`).
//!
//! 1. AWS requests per erased subject: 1 000 subjects (ten signed up through the sign-up
//!    use case, the rest seeded in their shape), erased by one run (cursors in place from a run the day before), against the
//!    batch lower bound (the formula of `tests/it/retention_requests.rs`).
//! 2. Fixed requests per daily run: a run right after a complete one, nothing due.
//! 3. Items swept per second for 10 000 due items (phone-consent proofs), against moto.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use harness::requests::{counted_sweeper, seed_due_subjects, sign_up_many, RequestCounter};
use harness::stack::Stack;
use shared::domain::RetentionClass;
use shared::sweep::SweepRequest;

const SUBJECTS: usize = 1000;
const ITEMS: usize = 10_000;

async fn run(
    stack: &Stack,
    counter: &RequestCounter,
    now: DateTime<Utc>,
) -> Result<shared::sweep::SweepReport> {
    Ok(counted_sweeper(stack, counter)?
        .run(
            SweepRequest {
                dry_run: false,
                now,
            },
            Duration::from_secs(3600),
        )
        .await?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    println!("== retention sweep benchmark");
    // 1. Requests per erased subject.
    let stack = Stack::isolated().await?;
    let t0 = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")?.with_timezone(&Utc);
    let due = RetentionClass::Lead.due_at(t0).unwrap_or(t0);
    sign_up_many(&stack, 10, t0).await?;
    seed_due_subjects(&stack, SUBJECTS - 10, due).await?;
    // The first run ever reads every month since 2024-01 (no cursors yet).
    let first = RequestCounter::default();
    run(&stack, &first, due - chrono::Duration::hours(20)).await?;
    let counter = RequestCounter::default();
    let now = due + chrono::Duration::hours(4);
    let started = Instant::now();
    let report = run(&stack, &counter, now).await?;
    let took = started.elapsed();
    let lead = report.classes.get("lead").cloned().unwrap_or_default();
    let requests = counter.total();
    // 2. Fixed requests of a daily run: right after a complete one.
    let again = RequestCounter::default();
    run(&stack, &again, now + chrono::Duration::minutes(5)).await?;
    let fixed = again.total();
    println!(
        "erased {SUBJECTS} subjects ({} items) in {took:.2?}: {requests} AWS requests, {:.2} per \
         subject ({:.2} beyond the {fixed} fixed ones); by operation {:?}",
        lead.deleted,
        requests as f64 / SUBJECTS as f64,
        requests.saturating_sub(fixed) as f64 / SUBJECTS as f64,
        counter.by_operation()
    );
    println!(
        "fixed requests per daily run: {fixed} (a run right after a complete one); the first \
         run without cursors: {}",
        first.total()
    );

    // 3. Throughput for 10 000 due items.
    let stack = Stack::isolated().await?;
    let due = DateTime::parse_from_rfc3339("2031-11-28T10:00:00Z")?.with_timezone(&Utc);
    stack.seed_due_consent_proofs(ITEMS, due).await?;
    let counter = RequestCounter::default();
    let started = Instant::now();
    let report = run(&stack, &counter, due + chrono::Duration::days(1)).await?;
    let elapsed = started.elapsed();
    let swept = report
        .classes
        .get("phone_consent")
        .map(|c| c.deleted)
        .unwrap_or(0);
    println!(
        "swept {swept} items in {elapsed:.2?}: {:.0} items/s against moto, {} AWS requests",
        swept as f64 / elapsed.as_secs_f64(),
        counter.total()
    );
    Ok(())
}
