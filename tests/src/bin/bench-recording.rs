//! Benchmark of the recording copy (dev-only): peak memory must stay flat as recordings
//! grow, because the copier holds one S3 part at a time (R2.7).
//!
//! Run under `scripts/with-moto.sh` (it sets `AWS_ENDPOINT_URL`). The parent provisions an
//! isolated stack and serves synthetic recordings from the provider simulator; each size is
//! copied by a fresh child process of this binary, so each peak (`VmHWM` from
//! `/proc/self/status`) belongs to one copy alone and nothing the parent or the simulator
//! allocates is counted. The child reads its peak once before the copy (clients built,
//! runtime running) and once after. The parent checks every copy's SHA-256 and prints
//! size, wall time, throughput and both peaks.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use harness::simulator::recordings::synthetic_sha256;
use harness::simulator::{SimConfig, Simulator};
use harness::stack::Stack;
use serde_json::{json, Value};
use shared::adapters::recordings::{FetchPolicy, RecordingCopier};

/// Recording sizes copied, in bytes (decimal megabytes).
const SIZES: [u64; 3] = [50_000_000, 100_000_000, 200_000_000];
const PART_SIZE: usize = 8 * 1024 * 1024;
/// The goal for the largest size.
const PEAK_TARGET_MB: f64 = 64.0;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") => child(&args[2..]).await,
        None => parent().await,
        Some(_) => bail!("usage: bench-recording (run under scripts/with-moto.sh)"),
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

async fn parent() -> Result<()> {
    let stack = Stack::isolated()
        .await
        .context("provisioning a stack (is moto running? use scripts/with-moto.sh)")?;
    let sim = Simulator::start(SimConfig::new("bench-key")).await?;
    let bucket = stack.bucket("RecordingsBucket").to_owned();
    let key_arn = stack.keys["DataKey"].1.clone();
    let exe = std::env::current_exe()?;

    println!(
        "recording copy: simulator (HTTP, 127.0.0.1) -> moto S3, SSE-KMS, part size {} MiB",
        PART_SIZE / (1024 * 1024)
    );
    println!(
        "{:>8}  {:>6}  {:>8}  {:>8}  {:>14}  {:>12}",
        "size MB", "parts", "wall s", "MB/s", "peak before MB", "peak after MB"
    );
    let mut peaks = Vec::new();
    for size in SIZES {
        let url = sim.synthetic_url(size);
        let key = format!("recordings/bench/{size}.bin");
        let out = Command::new(&exe)
            .args(["--child", &url, &bucket, &key_arn, &key])
            .output()
            .context("running the child")?;
        if !out.status.success() {
            bail!(
                "child for {size} bytes failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(line.trim()).context("child output")?;
        let field = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
        if report["bytes"].as_u64() != Some(size)
            || report["sha256"].as_str() != Some(synthetic_sha256(size).as_str())
        {
            bail!("copy of {size} bytes is not intact: {report}");
        }
        let secs = field("secs");
        let (before, after) = (
            field("peak_before_kib") / 1024.0,
            field("peak_after_kib") / 1024.0,
        );
        println!(
            "{:>8.0}  {:>6}  {:>8.2}  {:>8.1}  {:>14.1}  {:>12.1}",
            size as f64 / 1e6,
            report["parts"].as_u64().unwrap_or(0),
            secs,
            size as f64 / 1e6 / secs,
            before,
            after
        );
        peaks.push(after);
    }
    let spread = peaks.iter().cloned().fold(f64::MIN, f64::max)
        - peaks.iter().cloned().fold(f64::MAX, f64::min);
    let largest = peaks.last().copied().unwrap_or(f64::NAN);
    println!(
        "peak RSS spread across sizes: {spread:.1} MB; at 200 MB: {largest:.1} MB (target <= {PEAK_TARGET_MB} MB): {}",
        if largest <= PEAK_TARGET_MB { "met" } else { "NOT met" }
    );
    sim.shutdown().await?;
    Ok(())
}

/// One copy in a fresh process; prints one JSON line.
async fn child(args: &[String]) -> Result<()> {
    let [url, bucket, key_arn, key] = args else {
        bail!("--child <url> <bucket> <key arn> <object key>");
    };
    let aws = harness::aws_config().await;
    let policy = FetchPolicy {
        allow_loopback_http: true,
        total_timeout: Duration::from_secs(30 * 60),
        ..FetchPolicy::new(Vec::new())
    };
    let copier = RecordingCopier::new(
        policy,
        harness::s3_client(&aws),
        bucket.clone(),
        key_arn.clone(),
    )?
    .with_part_size(PART_SIZE);
    let peak_before = peak_rss_kib()?;
    let started = Instant::now();
    let report = copier.copy(url, key).await?;
    let secs = started.elapsed().as_secs_f64();
    let peak_after = peak_rss_kib()?;
    println!(
        "{}",
        json!({
            "bytes": report.bytes,
            "parts": report.parts,
            "sha256": report.sha256_hex,
            "secs": secs,
            "peak_before_kib": peak_before,
            "peak_after_kib": peak_after,
        })
    );
    Ok(())
}
