//! Benchmark of the access export (dev-only): one subject with 20 recorded calls, exported
//! by the dsar worker's `Exporter` against the emulator. Wall time, and peak memory of the
//! worker, which must stay at or below 96 MB and flat when the recordings double in size
//! (10, 20 and 40 MB per recording), because the exporter holds about two upload parts
//! whatever it copies (R4.4).
//!
//! Run under `scripts/with-moto.sh` (it sets `AWS_ENDPOINT_URL`). For each recording size
//! the parent provisions an isolated stack, signs a subject up, submits and verifies an
//! access request with the code from the mail, and seeds the subject's calls (call and
//! recording items, and the recordings as SSE-KMS objects of pseudo-random bytes). None of that is
//! timed, and none of it runs in the measured process: the export is built by a fresh
//! child process of this binary, configured from the worker's template environment and
//! built with `exporter_from_aws` as the Lambda does, so its peak (`VmHWM` from
//! `/proc/self/status`, read once before and once after `Exporter::run`) is the worker's
//! alone. The parent then downloads the package and checks every recording byte for byte.

use std::collections::HashMap;
use std::io::Read;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, TryStreamExt};
use harness::events::ApiRequest;
use harness::simulator::recordings::synthetic_fill;
use harness::stack::{sent_mail, Stack};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared::adapters::s3::BlobStore;
use shared::domain::RequestId;
use shared::dsar::export::ExportOutcome;
use shared::SystemClock;

/// Calls of the subject, each with one recording.
const CALLS: u64 = 20;
/// Bytes per recording (decimal megabytes), one child each.
const SIZES: [u64; 3] = [10_000_000, 20_000_000, 40_000_000];
/// Bytes per part when seeding the recordings.
const SEED_PART: u64 = 8 * 1024 * 1024;
/// The goal for the worker's peak.
const PEAK_TARGET_MB: f64 = 96.0;
/// Largest growth of the peak between two sizes still called flat (one upload part: the
/// allocator may or may not reuse a freed part buffer, whatever the recording size).
const FLAT_MB: f64 = 8.0;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") => child(&args[2..]).await,
        None => parent().await,
        Some(_) => bail!("usage: bench-export (run under scripts/with-moto.sh)"),
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

/// Status and JSON body of a function's response.
fn answer(resp: Response<Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

/// The one-time code of the latest mail to `email`: the only run of eight digits in it.
async fn latest_code(email: &str) -> Result<String> {
    let mails = sent_mail(email).await.context("reading moto's sent mail")?;
    let mail = mails
        .last()
        .ok_or_else(|| anyhow!("no code mail was sent"))?;
    let mut run = String::new();
    for c in mail.body.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run.push(c);
        } else if run.len() == 8 {
            return Ok(run);
        } else {
            run.clear();
        }
    }
    bail!("no code in the mail")
}

/// Where call `n`'s recording starts in the synthetic byte stream, so that every
/// recording of a run holds different bytes.
fn offset_of(n: u64, size: u64) -> u64 {
    n * size
}

/// A subject with an access request in progress, in its own stack; calls come later.
struct Prepared {
    stack: Stack,
    lead_id: String,
    request_id: String,
}

async fn prepare() -> Result<Prepared> {
    let stack = Stack::isolated()
        .await
        .context("provisioning a stack (is moto running? use scripts/with-moto.sh)")?;
    let clock = Arc::new(SystemClock);
    let email = format!("export-{}@example.org", uuid::Uuid::now_v7().simple());

    let signup = signup::App::from_aws(stack.signup_config()?, &stack.aws, clock.clone());
    let form = serde_json::to_vec(&json!({
        "first_name": "Bench",
        "last_name": "Subject",
        "email": email,
        "phone": "0170 9876543",
        "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"}
    }))?;
    let (status, body) =
        answer(signup::handle(&signup, ApiRequest::post_json("/v1/signups", &form).build()).await);
    ensure!(status == 201, "sign-up answered {status}: {body}");
    let lead_id = stack
        .lead_of(&email, chrono::Utc::now())
        .await?
        .ok_or_else(|| anyhow!("no subject holds the email"))?
        .to_string();

    let api = dsar::App::from_aws(stack.config_for("DsarApiFunction")?, &stack.aws, clock)
        .map_err(anyhow::Error::msg)?;
    let submit = serde_json::to_vec(&json!({"type": "access", "email": email}))?;
    let (status, body) =
        answer(dsar::handle(&api, ApiRequest::post_json("/v1/dsar", &submit).build()).await);
    ensure!(status == 202, "submit answered {status}: {body}");
    let request_id = body["request_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no request_id in the answer"))?
        .to_owned();
    let path = format!("/v1/dsar/{request_id}/verify");
    let code = serde_json::to_vec(&json!({"code": latest_code(&email).await?}))?;
    let (status, body) =
        answer(dsar::handle(&api, ApiRequest::post_json(&path, &code).build()).await);
    ensure!(status == 200, "verify answered {status}: {body}");
    Ok(Prepared {
        stack,
        lead_id,
        request_id,
    })
}

/// Writes `CALLS` calls of the lead with one recording of `size` bytes each: the call and
/// recording items straight into the table, the objects into the recordings bucket.
async fn seed_calls(stack: &Stack, lead_id: &str, size: u64) -> Result<()> {
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let lead = ddb
        .get_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(format!("LEAD#{lead_id}")))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .ok_or_else(|| anyhow!("the lead item is missing"))?;
    let phone_bidx = lead
        .get("phone_bidx")
        .cloned()
        .ok_or_else(|| anyhow!("the lead item has no phone_bidx"))?;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    for i in 0..CALLS {
        let call_id = format!("bench-{i:02}");
        let pk = s(&format!("CALL#{call_id}"));
        let start = chrono::Utc::now() - chrono::Duration::hours(i64::try_from(CALLS - i)?);
        let end = start + chrono::Duration::minutes(10);
        ddb.put_item()
            .table_name(&stack.table)
            .item("pk", pk.clone())
            .item("sk", s("CALL"))
            .item("kind", s("call"))
            .item("call_id", s(&call_id))
            .item("lead_id", s(lead_id))
            .item("phone_bidx", phone_bidx.clone())
            .item("start_at", s(&start.to_rfc3339()))
            .item("end_at", s(&end.to_rfc3339()))
            .item("duration_ms", n(600_000))
            .send()
            .await?;
        ddb.put_item()
            .table_name(&stack.table)
            .item("pk", pk)
            .item("sk", s("RECORDING"))
            .item("kind", s("recording"))
            .item("call_id", s(&call_id))
            .item("lead_id", s(lead_id))
            .item(
                "object_key",
                s(&format!("recordings/{lead_id}/{call_id}.audio")),
            )
            .item("bytes", n(size))
            .send()
            .await?;
    }
    let blobs = BlobStore::new(
        harness::s3_client(&stack.aws),
        stack.bucket("RecordingsBucket").to_owned(),
        stack.keys["DataKey"].1.clone(),
    );
    futures_util::stream::iter(0..CALLS)
        .map(|i| {
            let blobs = blobs.clone();
            let key = format!("recordings/{lead_id}/bench-{i:02}.audio");
            async move {
                let mut upload = blobs.start_upload(&key, "audio/wav").await?;
                let mut done = 0;
                while done < size {
                    let len = (size - done).min(SEED_PART);
                    let mut part = vec![0u8; usize::try_from(len)?];
                    synthetic_fill(offset_of(i, size) + done, &mut part);
                    upload.part(part).await?;
                    done += len;
                }
                upload.complete().await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// What a child reports.
struct Run {
    bytes: u64,
    secs: f64,
    peak_before_mb: f64,
    peak_after_mb: f64,
}

async fn parent() -> Result<()> {
    let exe = std::env::current_exe()?;
    println!(
        "access export: {CALLS} calls with one recording each, moto S3 -> ZIP -> moto S3 \
         (SSE-KMS), {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Every request is verified before anything is uploaded: after these multipart
    // uploads moto's `/moto-api/data.json`, where the code mail is read, answers 404 for
    // good (moto 5.1: an upload part's leftover `FakeKey` has no bucket name, and reading
    // its `status` raises NoSuchBucket while the dump is built).
    let mut subjects = Vec::new();
    for size in SIZES {
        subjects.push((size, prepare().await?));
    }
    let mut runs = Vec::new();
    for (size, prepared) in subjects {
        seed_calls(&prepared.stack, &prepared.lead_id, size).await?;
        let env = prepared.stack.function_env("DsarWorkerFunction")?;
        let out = Command::new(&exe)
            .args(["--child", &prepared.request_id])
            .envs(&env)
            .output()
            .context("running the child")?;
        if !out.status.success() {
            bail!(
                "export with {size}-byte recordings failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let report: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("child output: {}", String::from_utf8_lossy(&out.stdout)))?;
        let field = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
        let run = Run {
            bytes: report["bytes"].as_u64().unwrap_or(0),
            secs: field("secs"),
            peak_before_mb: field("peak_before_kib") / 1024.0,
            peak_after_mb: field("peak_after_kib") / 1024.0,
        };
        check_export(&prepared, size, run.bytes).await?;
        runs.push((size, run));
    }

    println!(
        "{:>8}  {:>9}  {:>9}  {:>7}  {:>6}  {:>14}  {:>13}",
        "rec MB", "total MB", "export MB", "wall s", "MB/s", "peak before MB", "peak after MB"
    );
    for (size, run) in &runs {
        let total = (CALLS * size) as f64 / 1e6;
        println!(
            "{:>8.0}  {:>9.0}  {:>9.1}  {:>7.2}  {:>6.1}  {:>14.1}  {:>13.1}",
            *size as f64 / 1e6,
            total,
            run.bytes as f64 / 1e6,
            run.secs,
            total / run.secs,
            run.peak_before_mb,
            run.peak_after_mb
        );
    }
    let peaks: Vec<f64> = runs.iter().map(|(_, r)| r.peak_after_mb).collect();
    let highest = peaks.iter().copied().fold(f64::MIN, f64::max);
    for (pair, sizes) in peaks.windows(2).zip(SIZES.windows(2)) {
        let growth = pair[1] - pair[0];
        println!(
            "peak RSS growth from {} to {} MB recordings: {growth:+.1} MB (flat if < {FLAT_MB} MB): {}",
            sizes[0] / 1_000_000,
            sizes[1] / 1_000_000,
            if growth < FLAT_MB { "flat" } else { "NOT flat" }
        );
    }
    println!(
        "highest peak: {highest:.1} MB (target <= {PEAK_TARGET_MB} MB): {}",
        if highest <= PEAK_TARGET_MB {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// Downloads the package and checks it: `CALLS` calls in `data.json`, and every recording
/// present with exactly the seeded bytes (the reader also checks each entry's CRC).
async fn check_export(prepared: &Prepared, size: u64, reported: u64) -> Result<()> {
    let s3 = harness::s3_client(&prepared.stack.aws);
    let key = format!("exports/{}.zip", prepared.request_id);
    let mut object = s3
        .get_object()
        .bucket(prepared.stack.bucket("ExportsBucket"))
        .key(&key)
        .send()
        .await
        .context("downloading the export")?;
    ensure!(
        object.content_length() == Some(i64::try_from(reported)?),
        "the export object has {:?} bytes, the exporter reported {reported}",
        object.content_length()
    );
    let path = std::env::temp_dir().join(format!("bench-export-{}.zip", prepared.request_id));
    let mut file = std::fs::File::create(&path)?;
    while let Some(chunk) = object.body.try_next().await? {
        std::io::Write::write_all(&mut file, &chunk)?;
    }
    drop(file);
    let checked = read_export(&path, size);
    std::fs::remove_file(&path)?;
    checked
}

fn read_export(path: &std::path::Path, size: u64) -> Result<()> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    let mut recordings = HashMap::new();
    let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        let name = entry.name().to_owned();
        if name == "data.json" {
            let mut text = Vec::new();
            entry.read_to_end(&mut text)?;
            let data: Value = serde_json::from_slice(&text)?;
            let calls = data["calls"].as_array().map_or(0, Vec::len);
            ensure!(calls as u64 == CALLS, "data.json lists {calls} calls");
            continue;
        }
        let Some(call) = name
            .strip_prefix("recordings/bench-")
            .and_then(|n| n.strip_suffix(".wav"))
        else {
            continue;
        };
        let n: u64 = call.parse()?;
        ensure!(entry.size() == size, "{name} has {} bytes", entry.size());
        let mut at = 0;
        loop {
            let len = entry.read(&mut got)?;
            if len == 0 {
                break;
            }
            synthetic_fill(offset_of(n, size) + at, &mut want[..len]);
            ensure!(got[..len] == want[..len], "{name} differs at byte {at}");
            at += len as u64;
        }
        ensure!(at == size, "{name}: read {at} bytes");
        recordings.insert(n, at);
    }
    ensure!(
        recordings.len() as u64 == CALLS,
        "{} recordings in the export, {CALLS} expected",
        recordings.len()
    );
    Ok(())
}

/// One export in a fresh process, set up as the worker Lambda is; prints one JSON line.
async fn child(args: &[String]) -> Result<()> {
    let [id] = args else {
        bail!("--child <request id>");
    };
    let id = RequestId::parse(id).map_err(|_| anyhow!("not a request id"))?;
    let config = shared::Config::from_env()?;
    let aws = shared::aws::load().await;
    let exporter = dsar::worker::exporter_from_aws(&config, &aws, Arc::new(SystemClock))
        .map_err(anyhow::Error::msg)?;
    let peak_before = peak_rss_kib()?;
    let started = Instant::now();
    let outcome = Box::pin(exporter.run(&id)).await?;
    let secs = started.elapsed().as_secs_f64();
    let peak_after = peak_rss_kib()?;
    let ExportOutcome::Built {
        bytes,
        holds_data: true,
    } = outcome
    else {
        bail!("the export was not built from the subject's data: {outcome:?}");
    };
    println!(
        "{}",
        json!({
            "bytes": bytes,
            "secs": secs,
            "peak_before_kib": peak_before,
            "peak_after_kib": peak_after,
        })
    );
    Ok(())
}
