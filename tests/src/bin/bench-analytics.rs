//! Benchmark of the analytics export (dev-only, R6): 100 000 calls of 500 subjects, each
//! with a summary of about 300 characters, exported by the analytics worker against the
//! emulator. Wall time, and the worker's peak memory, which must stay bounded by about a
//! part and a page (not grow with the number of calls).
//!
//! Run under `scripts/with-moto.sh` (it sets `AWS_ENDPOINT_URL`). The parent provisions an
//! isolated stack, signs the subjects up and writes the calls with batch writes (not
//! timed), and starts the job as the staff route does. The job is then carried out by a
//! fresh child process of this binary, configured from the worker's template
//! environment and built with `exports_from_aws` as the Lambda does, its slices run one
//! after another as the stream would hand them over, so its peak (`VmHWM` from
//! `/proc/self/status`) is the worker's alone. The parent downloads the file and checks
//! it: one line per call, each call pseudonym once.
//!
//! `bench-analytics [CALLS]` (default 100 000).

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use dsar::analytics::job::SliceOutcome;
use harness::analytics as seed;
use harness::stack::Stack;
use serde_json::{json, Value};
use shared::SystemClock;

const DEFAULT_CALLS: usize = 100_000;
const SUBJECTS: usize = 500;
const SUMMARY: usize = 300;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") => child(&args[2..]).await,
        None => parent(DEFAULT_CALLS).await,
        Some(n) => match n.parse() {
            Ok(calls) => parent(calls).await,
            Err(_) => bail!("usage: bench-analytics [CALLS] (run under scripts/with-moto.sh)"),
        },
    }
}

/// Peak resident set size of this process so far, in KiB.
fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/self/status"))
}

async fn parent(calls: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    println!(
        "analytics export: {calls} calls of {SUBJECTS} subjects (~{SUMMARY}-character summaries), \
         moto DynamoDB/KMS -> JSON Lines -> moto S3 multipart (SSE-KMS), {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let stack = Stack::isolated().await?;
    let seeding = Instant::now();
    let leads = seed::lead_service(&stack)?;
    let subjects = seed::subjects(&leads, "bench", SUBJECTS).await?;
    seed::calls(&stack, &leads, &subjects, "bench", calls, SUMMARY).await?;
    println!(
        "seeded in {:.1} s (not timed below)",
        seeding.elapsed().as_secs_f64()
    );
    let config = stack.config_for("AnalyticsWorkerFunction")?;
    let exports = dsar::analytics::exports_from_aws(&config, &stack.aws, Arc::new(SystemClock))
        .map_err(anyhow::Error::msg)?;
    let job = dsar::analytics::job::start_export(
        exports.jobs.as_ref(),
        chrono::Utc::now(),
        "arn:aws:sts::123456789012:assumed-role/polly-staff/bench",
    )
    .await?;

    let env = stack.function_env("AnalyticsWorkerFunction")?;
    let out = Command::new(&exe)
        .args(["--child", &job.export_id])
        .envs(&env)
        .output()
        .context("running the child")?;
    if !out.status.success() {
        bail!(
            "the export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("child output: {}", String::from_utf8_lossy(&out.stdout)))?;
    let done = exports
        .jobs
        .job(&job.export_id)
        .await?
        .ok_or_else(|| anyhow!("the job is gone"))?;
    let body = shared::adapters::s3::BlobStore::new(
        aws_sdk_s3::Client::new(&stack.aws),
        stack.buckets["ExportsBucket"].clone(),
        config.data_key_arn.clone(),
    )
    .get(&done.object_key)
    .await?
    .ok_or_else(|| anyhow!("no file"))?;
    let rows = seed::rows(&body)?;
    let distinct: HashSet<&str> = rows.iter().filter_map(|r| r["call"].as_str()).collect();
    if rows.len() != calls || distinct.len() != calls || done.calls as usize != calls {
        bail!(
            "expected {calls} rows once each: {} lines, {} distinct, {} counted",
            rows.len(),
            distinct.len(),
            done.calls
        );
    }
    let secs = report["secs"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:>8}  {:>8}  {:>6}  {:>7}  {:>8}  {:>14}  {:>13}",
        "calls", "file MB", "parts", "wall s", "calls/s", "peak before MB", "peak after MB"
    );
    println!(
        "{:>8}  {:>8.1}  {:>6}  {:>7.1}  {:>8.0}  {:>14.1}  {:>13.1}",
        calls,
        body.len() as f64 / 1e6,
        done.parts.len(),
        secs,
        calls as f64 / secs,
        report["peak_before_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
        report["peak_after_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
    );
    println!(
        "checked: {} lines, each call pseudonym once; {} slices",
        rows.len(),
        report["slices"]
    );
    Ok(())
}

/// Carries the job out, slice after slice as the stream would hand them over, and reports
/// wall time and peak memory.
async fn child(args: &[String]) -> Result<()> {
    let [id] = args else {
        bail!("--child <export id>");
    };
    let config = shared::Config::from_env()?;
    let aws = shared::aws::load().await;
    let exports = dsar::analytics::exports_from_aws(&config, &aws, Arc::new(SystemClock))
        .map_err(anyhow::Error::msg)?;
    let peak_before = peak_rss_kib()?;
    let started = Instant::now();
    let mut slices = 0;
    loop {
        slices += 1;
        match exports.run_slice(id, Default::default()).await {
            Ok(SliceOutcome::Done(_)) => break,
            Ok(SliceOutcome::Paused(_)) => {}
            Ok(other) => bail!("the job did not finish: {other:?}"),
            Err(e) => {
                exports.record_failure(id, e.retry).await?;
            }
        }
        if slices > 100 {
            bail!("no end after 100 slices");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak_after = peak_rss_kib()?;
    println!(
        "{}",
        json!({
            "secs": secs,
            "slices": slices,
            "peak_before_kib": peak_before,
            "peak_after_kib": peak_after,
        })
    );
    Ok(())
}
