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
//!
//! A second run measures the trimming copy (R7.5): stereo 16-bit pattern WAVs of 50 and
//! 200 MB cut one minute in, each checked against the SHA-256 of the expected trimmed file
//! computed from the pattern.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use harness::simulator::recordings::{synthetic_sha256, PatternWav};
use harness::simulator::{SimConfig, Simulator};
use harness::stack::Stack;
use serde_json::{json, Value};
use shared::adapters::recordings::{FetchPolicy, RecordingCopier};

/// Recording sizes copied, in bytes (decimal megabytes).
const SIZES: [u64; 3] = [50_000_000, 100_000_000, 200_000_000];
const PART_SIZE: usize = 8 * 1024 * 1024;
/// The goal for the largest size.
const PEAK_TARGET_MB: f64 = 64.0;
/// WAV sizes of the trimming run, in bytes (decimal megabytes).
const TRIM_SIZES: [u64; 2] = [50_000_000, 200_000_000];
/// Where the trimming run cuts (ms from the start).
const TRIM_CUT_MS: u64 = 60_000;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") => child(&args[2..]).await,
        None => parent(false).await,
        Some("--trim-only") => parent(true).await,
        Some(_) => bail!("usage: bench-recording [--trim-only] (run under scripts/with-moto.sh)"),
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

/// Both runs, or (`trim_only`) the trimming run alone.
async fn parent(trim_only: bool) -> Result<()> {
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
    let sizes: &[u64] = if trim_only { &[] } else { &SIZES };
    for &size in sizes {
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
    if !trim_only {
        println!(
            "peak RSS spread across sizes: {spread:.1} MB; at 200 MB: {largest:.1} MB (target <= {PEAK_TARGET_MB} MB): {}",
            if largest <= PEAK_TARGET_MB { "met" } else { "NOT met" }
        );
    }

    println!(
        "\ntrimming copy (R7.5): stereo 16-bit 8 kHz WAV cut at {} s, simulator -> moto S3",
        TRIM_CUT_MS / 1000
    );
    println!(
        "{:>8}  {:>10}  {:>6}  {:>8}  {:>14}  {:>12}",
        "size MB", "stored MB", "parts", "wall s", "peak before MB", "peak after MB"
    );
    let mut trim_peaks = Vec::new();
    for size in TRIM_SIZES {
        let wav = PatternWav::of_bytes(2, size);
        let url = sim.pattern_url(&wav);
        let key = format!("recordings/bench/{size}-trimmed.wav");
        let out = Command::new(&exe)
            .args([
                "--child",
                &url,
                &bucket,
                &key_arn,
                &key,
                &TRIM_CUT_MS.to_string(),
            ])
            .output()
            .context("running the child")?;
        if !out.status.success() {
            bail!(
                "trimming child for {size} bytes failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let report: Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).context("child")?;
        let (want_sha, want_len) = wav.trimmed_sha256(TRIM_CUT_MS);
        if report["bytes"].as_u64() != Some(want_len)
            || report["sha256"].as_str() != Some(want_sha.as_str())
        {
            bail!("trimmed copy of {size} bytes is not the expected file: {report}");
        }
        let field = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
        let after = field("peak_after_kib") / 1024.0;
        println!(
            "{:>8.0}  {:>10.1}  {:>6}  {:>8.2}  {:>14.1}  {:>12.1}",
            wav.len() as f64 / 1e6,
            want_len as f64 / 1e6,
            report["parts"].as_u64().unwrap_or(0),
            field("secs"),
            field("peak_before_kib") / 1024.0,
            after
        );
        trim_peaks.push(after);
    }
    let largest = trim_peaks.last().copied().unwrap_or(f64::NAN);
    println!(
        "trimming copy peak RSS at 50 MB: {:.1} MB, at 200 MB: {largest:.1} MB (target <= {PEAK_TARGET_MB} MB): {}",
        trim_peaks.first().copied().unwrap_or(f64::NAN),
        if largest <= PEAK_TARGET_MB { "met" } else { "NOT met" }
    );
    sim.shutdown().await?;
    Ok(())
}

/// One copy in a fresh process; prints one JSON line.
async fn child(args: &[String]) -> Result<()> {
    let (url, bucket, key_arn, key, cut_ms) = match args {
        [url, bucket, key_arn, key] => (url, bucket, key_arn, key, None),
        [url, bucket, key_arn, key, cut] => (url, bucket, key_arn, key, Some(cut.parse::<u64>()?)),
        _ => bail!("--child <url> <bucket> <key arn> <object key> [<cut ms>]"),
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
    let report = match cut_ms {
        Some(cut_ms) => copier.copy_trimmed(url, key, cut_ms).await?,
        None => copier.copy(url, key).await?,
    };
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
