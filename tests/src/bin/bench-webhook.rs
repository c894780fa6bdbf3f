//! `make bench`: CPU cost of one `call_ended` webhook of a 60-minute call (dev-only).
//!
//! Measures, single-threaded and without I/O, the work the webhook function does on the
//! payload before and around its storage calls: signature verification over the raw
//! bytes, parsing, the consent and disclosure decisions, serialising and sealing the
//! transcript and the call content (AES-256-GCM). Storage round trips are excluded here;
//! the end-to-end latency against the emulator is measured afterwards for context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use harness::events::ApiRequest;
use harness::simulator::scenario::{CallParams, CallScript, Scenario};
use harness::stack::Stack;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::crypto::DataKey;
use shared::retell::compliance::{discloses, recording_consent, DisclosurePatterns};
use shared::retell::model::{parse_delivery, Delivery};
use shared::retell::signature::{sign, verify};
use shared::Clock;

const ITERATIONS: u32 = 200;

fn cpu_time() -> Duration {
    // utime + stime of this process from /proc (clock ticks of 10 ms; summed over many
    // iterations, fine enough).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn process(
    body: &[u8],
    header: &str,
    key: &SecretString,
    now_ms: u64,
    data_key: &DataKey,
) -> Result<usize> {
    verify(body, Some(header), &[key], now_ms).map_err(|e| anyhow!("{e}"))?;
    let Delivery::Call(e) = parse_delivery(body).map_err(|e| anyhow!("{e}"))? else {
        return Err(anyhow!("not a call event"));
    };
    let consent = recording_consent(&e.call);
    let disclosed = discloses(&e.call, &DisclosurePatterns::default());
    let field = |n: &str| e.call.get(n).cloned().unwrap_or(Value::Null);
    let content = json!({"from_number": field("from_number"), "to_number": field("to_number"), "call_analysis": field("call_analysis")});
    let mut sealed = data_key
        .seal(b"aad:content", &serde_json::to_vec(&content)?)
        .map_err(|e| anyhow!("{e}"))?
        .len();
    if consent.granted && disclosed {
        let transcript = e.transcripts.to_json();
        sealed += data_key
            .seal(b"aad:transcript", transcript.as_bytes())
            .map_err(|e| anyhow!("{e}"))?
            .len();
    }
    Ok(sealed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let key = SecretString::from("local-test-key".to_owned());
    let data_key = DataKey::from_bytes(&[7u8; 32]).map_err(|e| anyhow!("{e}"))?;
    let start_ms = 1_795_860_000_000u64;
    let params = CallParams::new(
        "http://127.0.0.1:9",
        &shared::domain::LeadId::new().to_string(),
        start_ms,
    );
    let script = CallScript::new(Scenario::LongCall { minutes: 60 }, params);
    let ended = script
        .event("call_ended")?
        .ok_or_else(|| anyhow!("no call_ended"))?;
    let body = ended.body;
    let now_ms = script.end_ms() + 1_000;
    let header = sign(&body, &key, now_ms);
    println!(
        "== webhook benchmark: call_ended of a 60-minute call, {:.2} MiB body",
        body.len() as f64 / 1_048_576.0
    );

    // Warm up, then measure.
    for _ in 0..10 {
        process(&body, &header, &key, now_ms, &data_key)?;
    }
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let mut sealed = 0;
    for _ in 0..ITERATIONS {
        sealed = process(&body, &header, &key, now_ms, &data_key)?;
    }
    let cpu = (cpu_time() - cpu0) / ITERATIONS;
    let wall = wall0.elapsed() / ITERATIONS;
    println!("verify + parse + decide + seal (CPU, no I/O)   {cpu:>8.2?} CPU  {wall:>8.2?} wall per webhook  ({} bytes sealed)", sealed);
    // Where the time goes.
    let step = |name: &str, f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..50 {
            f();
        }
        println!("  {name:<44} {:>8.2?}", t.elapsed() / 50);
    };
    step("signature (HMAC-SHA256 over the body)", &|| {
        let _ = verify(&body, Some(&header), &[&key], now_ms);
    });
    step("parse (small fields; turns without word timings)", &|| {
        let _ = parse_delivery(&body);
    });
    let Ok(Delivery::Call(parsed)) = parse_delivery(&body) else {
        return Err(anyhow!("parse"));
    };
    step("consent + disclosure decisions", &|| {
        let _ = recording_consent(&parsed.call);
        let _ = discloses(&parsed.call, &DisclosurePatterns::default());
    });
    step("join the verbatim transcript fields", &|| {
        let _ = parsed.transcripts.to_json();
    });
    step("AES-256-GCM over 1 MiB", &|| {
        let _ = data_key.seal(b"a", &body);
    });

    // End to end through the handler against the emulator (I/O included), for context.
    let stack = Stack::isolated().await?;
    let signup_config = stack.signup_config()?;
    let clock = shared::FixedClock::at(
        chrono::DateTime::from_timestamp_millis(now_ms as i64).unwrap_or_default(),
    );
    let signup = signup::App::from_aws(signup_config, &stack.aws, Arc::new(clock.clone()));
    let form = serde_json::to_vec(
        &json!({"first_name": "Bench", "last_name": "Mark", "email": "bench@example.org", "phone": "+49 170 5550001",
        "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"}}),
    )?;
    let resp = signup::handle(&signup, ApiRequest::post_json("/v1/signups", &form).build()).await;
    if resp.status() != 201 {
        return Err(anyhow!("sign-up failed"));
    }
    let lead_id = stack
        .lead_of("bench@example.org", clock.now())
        .await?
        .ok_or_else(|| anyhow!("no subject holds the email"))?
        .to_string();
    let config = stack.config_for("TelephonyWebhookFunction")?;
    let app =
        telephony::App::from_aws(&config, &stack.aws, Arc::new(clock)).map_err(|e| anyhow!(e))?;
    let mut samples = Vec::new();
    for i in 0..20 {
        let params = CallParams::new("http://127.0.0.1:9", &lead_id, start_ms);
        let script = CallScript::new(Scenario::LongCall { minutes: 60 }, params);
        let body = script
            .event("call_ended")?
            .ok_or_else(|| anyhow!("no call_ended"))?
            .body;
        let header = sign(&body, &key, now_ms);
        let req = ApiRequest::post_json("/v1/telephony/retell", &body)
            .header("x-retell-signature", &header)
            .build();
        let t0 = Instant::now();
        let resp = telephony::handle(&app, req).await;
        if i > 1 {
            samples.push(t0.elapsed());
        }
        if resp.status() != 204 {
            return Err(anyhow!("webhook answered {}", resp.status()));
        }
    }
    samples.sort();
    println!(
        "end to end via the handler against moto            p50 {:>8.2?}  max {:>8.2?}  (n={}; 1 KMS Decrypt, 1 GenerateMac, 2 GetItem, S3 put, transaction)",
        samples[samples.len() / 2],
        samples[samples.len() - 1],
        samples.len()
    );
    Ok(())
}
