//! Tests of the RetellAI simulator itself: signatures (against the provider's own Python
//! SDK), the REST API and its recorded requests, recording files and their faults,
//! scripted payloads, webhook delivery, and the `retell-sim` binary. No AWS emulator needed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use harness::simulator::http;
use harness::simulator::recordings::{synthetic_sha256, CHUNK_BYTES};
use harness::simulator::scenario::{
    long_transcript, CALL_ANALYZED, CALL_ENDED, CALL_STARTED, FAKE_FIRST_NAME, FAKE_LAST_NAME,
    FAKE_TO_NUMBER, OPENING_WITH_DISCLOSURE, USER_YES,
};
use harness::simulator::webhook::digest;
use harness::simulator::{
    sign, AutoPlay, CallParams, CallScript, Delivery, Fault, Operation, Scenario, SimConfig,
    Simulator, Webhook, WebhookEvent,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const KEY: &str = "sim-test-key";
const LEAD: &str = "0192f3a4-0000-7000-8000-00000000beef";
/// 2026-11-28T10:00:00Z
const T0: u64 = 1_795_860_000_000;

async fn sim() -> Simulator {
    Simulator::start(SimConfig::new(KEY))
        .await
        .expect("start the simulator")
}

fn auth() -> String {
    format!("Bearer {KEY}")
}

async fn api(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> http::Response {
    let url = format!("{}{path}", sim.base_url());
    let auth = auth();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http::send(
        method,
        &url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await
    .expect("request to the simulator")
}

fn create_body() -> Value {
    json!({
        "from_number": "+493012345678",
        "to_number": FAKE_TO_NUMBER,
        "override_agent_id": "agent_override_for_test",
        "metadata": { "lead_id": LEAD },
        "retell_llm_dynamic_variables": { "first_name": FAKE_FIRST_NAME },
        "agent_override": { "data_storage_setting": "basic_attributes_only" }
    })
}

// ---------------------------------------------------------------- signatures

#[test]
fn sign_reproduces_the_retell_test_vector() {
    let header = sign(
        br#"{"event":"call_ended"}"#,
        "test-api-key",
        1_700_000_000_000,
    );
    assert_eq!(
        header,
        "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
    );
}

fn python() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run `make setup` to install the pinned retell-sdk; the signature \
         cross-check against the provider's SDK cannot be skipped",
        path.display()
    );
    path
}

fn sdk(code: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run the venv's python");
    assert!(
        output.status.success(),
        "python failed (is retell-sdk installed in .venv?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

const SDK_VERIFY: &str = "from retell.lib.webhook_auth import symmetric; import sys; \
    print(symmetric['verify'](sys.argv[1], sys.argv[2], sys.argv[3], {'timestamp': int(sys.argv[4])}))";
const SDK_SIGN: &str = "from retell.lib.webhook_auth import symmetric; import sys; \
    print(symmetric['sign'](sys.argv[1], sys.argv[2], int(sys.argv[3])))";

#[test]
fn python_sdk_accepts_simulator_signatures_and_rejects_tampered_ones() {
    // A real payload: German umlauts exercise the UTF-8 encoding on both sides.
    let script = CallScript::new(
        Scenario::ConsentYes,
        CallParams::new("http://127.0.0.1:9", LEAD, T0),
    );
    let event = script.event(CALL_ANALYZED).unwrap().unwrap();
    let body = String::from_utf8(event.body.clone()).unwrap();
    assert!(body.contains("künstlicher") && body.len() < 100_000);
    let ts = T0 + 600_000;
    let signature = sign(body.as_bytes(), KEY, ts);

    let now = (ts + 1_000).to_string();
    assert_eq!(sdk(SDK_VERIFY, &[&body, KEY, &signature, &now]), "True");

    let tampered = body.replacen("true", "false", 1);
    assert_eq!(
        sdk(SDK_VERIFY, &[&tampered, KEY, &signature, &now]),
        "False"
    );
    assert_eq!(
        sdk(SDK_VERIFY, &[&body, "other-key", &signature, &now]),
        "False"
    );
    let too_late = (ts + 300_001).to_string();
    assert_eq!(
        sdk(SDK_VERIFY, &[&body, KEY, &signature, &too_late]),
        "False"
    );
}

#[test]
fn python_sdk_signatures_equal_rust_signatures() {
    let bodies = [
        r#"{"event":"call_ended"}"#.to_owned(),
        r#"{"event":"call_started","call":{"call_id":"call_x","note":"Grüße aus Köln ✓"}}"#
            .to_owned(),
    ];
    for body in &bodies {
        for ts in [1_700_000_000_000u64, T0] {
            let from_sdk = sdk(SDK_SIGN, &[body, KEY, &ts.to_string()]);
            assert_eq!(from_sdk, sign(body.as_bytes(), KEY, ts));
        }
    }
}

// ---------------------------------------------------------------- REST API

#[tokio::test]
async fn create_get_patch_delete_are_recorded() {
    let sim = sim().await;

    let created = api(&sim, "POST", "/v2/create-phone-call", Some(create_body())).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let call = created.json().unwrap();
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    let hex = call_id.strip_prefix("call_").unwrap();
    assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(call["call_type"], "phone_call");
    assert_eq!(call["call_status"], "registered");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["agent_id"], "agent_override_for_test");
    assert_eq!(call["agent_version"], 1);
    assert_eq!(call["to_number"], FAKE_TO_NUMBER);
    assert_eq!(call["metadata"], json!({ "lead_id": LEAD }));
    assert_eq!(call["data_storage_setting"], "basic_attributes_only");

    let requests = sim.create_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, create_body());
    assert_eq!(requests[0].call_id.as_deref(), Some(call_id.as_str()));
    assert_eq!(sim.created_calls(), vec![call.clone()]);

    let got = api(&sim, "GET", &format!("/v2/get-call/{call_id}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json().unwrap(), call);

    let patch = json!({ "data_storage_setting": "basic_attributes_only" });
    let patched = api(
        &sim,
        "PATCH",
        &format!("/v2/update-call/{call_id}"),
        Some(patch.clone()),
    )
    .await;
    assert_eq!(patched.status, 200);
    let patches = sim.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        (patches[0].call_id.as_str(), &patches[0].body),
        (call_id.as_str(), &patch)
    );

    let deleted = api(&sim, "DELETE", &format!("/v2/delete-call/{call_id}"), None).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert_eq!(sim.deleted_calls(), vec![call_id.clone()]);

    let gone = api(&sim, "GET", &format!("/v2/get-call/{call_id}"), None).await;
    assert_eq!(gone.status, 404);
    let again = api(&sim, "DELETE", &format!("/v2/delete-call/{call_id}"), None).await;
    assert_eq!(again.status, 404);
    let unknown = api(&sim, "PATCH", "/v2/update-call/call_unknown", Some(patch)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(sim.deleted_calls().len(), 1);
}

#[tokio::test]
async fn wrong_or_missing_api_key_gets_401_json() {
    let sim = sim().await;
    let url = format!("{}/v2/create-phone-call", sim.base_url());
    let body = create_body().to_string();
    for headers in [
        vec![("Authorization", "Bearer wrong-key")],
        vec![("Authorization", KEY)],
        vec![],
    ] {
        let response = http::send("POST", &url, &headers, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert!(response.json().unwrap()["message"].is_string());
    }
    let get = http::send(
        "GET",
        &format!("{}/v2/get-call/call_x", sim.base_url()),
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(get.status, 401);
    assert_eq!(sim.unauthorized_count(), 4);
    assert!(sim.create_requests().is_empty());
}

#[tokio::test]
async fn create_rejects_numbers_that_are_not_e164() {
    let sim = sim().await;
    let mut body = create_body();
    body["to_number"] = json!("0170 9876543");
    let response = api(&sim, "POST", "/v2/create-phone-call", Some(body)).await;
    assert_eq!(response.status, 400);
    assert!(
        !response.text().contains("9876543"),
        "errors never echo input"
    );
    assert!(sim.created_calls().is_empty());
}

#[tokio::test]
async fn injected_create_failures_happen_exactly_n_times() {
    let sim = sim().await;
    sim.fail_next(Operation::CreateCall, 2, 500);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            api(&sim, "POST", "/v2/create-phone-call", Some(create_body()))
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![500, 500, 201]);
    assert_eq!(sim.attempts(Operation::CreateCall), 3);
    assert_eq!(
        sim.create_requests().len(),
        3,
        "failed attempts are recorded too"
    );
    assert_eq!(sim.created_calls().len(), 1);

    sim.fail_next(Operation::CreateCall, 1, 429);
    let limited = api(&sim, "POST", "/v2/create-phone-call", Some(create_body())).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    let ok = api(&sim, "POST", "/v2/create-phone-call", Some(create_body())).await;
    assert_eq!(ok.status, 201);
}

#[tokio::test]
async fn injected_delete_failures_happen_exactly_n_times() {
    let sim = sim().await;
    let call = api(&sim, "POST", "/v2/create-phone-call", Some(create_body()))
        .await
        .json()
        .unwrap();
    let path = format!("/v2/delete-call/{}", call["call_id"].as_str().unwrap());
    sim.fail_next(Operation::DeleteCall, 3, 500);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api(&sim, "DELETE", &path, None).await.status);
    }
    assert_eq!(statuses, vec![500, 500, 500, 204]);
    assert_eq!(sim.attempts(Operation::DeleteCall), 4);
    assert_eq!(sim.deleted_calls().len(), 1);
}

// ---------------------------------------------------------------- recordings

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

#[tokio::test]
async fn call_recording_is_a_valid_riff_wave_file() {
    let sim = sim().await;
    let script = sim.script(Scenario::ConsentYes, sim.params(LEAD, T0));
    let url = script.recording_url().unwrap();

    let response = http::send("GET", &url, &[], b"").await.unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("audio/wav"));
    let wav = &response.body;
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(le_u32(wav, 4) as usize, wav.len() - 8);
    assert_eq!(&wav[8..12], b"WAVE");
    assert_eq!(&wav[12..16], b"fmt ");
    assert_eq!(le_u32(wav, 16), 16);
    assert_eq!(le_u16(wav, 20), 1, "PCM");
    assert_eq!(le_u16(wav, 22), 1, "mono");
    assert_eq!(le_u32(wav, 24), 8_000, "8 kHz");
    assert_eq!(le_u32(wav, 28), 16_000, "byte rate");
    assert_eq!(le_u16(wav, 32), 2, "block align");
    assert_eq!(le_u16(wav, 34), 16, "16-bit");
    assert_eq!(&wav[36..40], b"data");
    let data_len = le_u32(wav, 40) as usize;
    assert_eq!(data_len, wav.len() - 44);
    assert_eq!(
        data_len as u64 / 2,
        script.duration_ms() * 8,
        "samples for the whole call (8 kHz)"
    );
    let peak = wav[44..]
        .chunks(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
        .max()
        .unwrap();
    assert!(peak > 5_000, "a signal, not silence");

    let multi = http::send(
        "GET",
        &script.recording_multi_channel_url().unwrap(),
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(le_u16(&multi.body, 22), 2, "stereo");
    assert_eq!(sim.downloads(&url), 1);
}

/// Independent re-implementation of the documented generator.
fn expected_synthetic_sha256(len: u64) -> String {
    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    let mut hasher = Sha256::new();
    let mut block = Vec::with_capacity(1 << 16);
    let mut i = 0u64;
    while i < len {
        block.clear();
        while block.len() < (1 << 16) - 8 && i < len {
            let bytes = splitmix(i / 8).to_le_bytes();
            let take = (len - i).min(8) as usize;
            block.extend_from_slice(&bytes[..take]);
            i += take as u64;
        }
        hasher.update(&block);
    }
    hex::encode(hasher.finalize())
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_50_mb_download_streams_with_right_length_and_sha256() {
    // The process's memory is measured: alone, not beside the other tests.
    if !crate::common::in_own_process(
        "simulator::synthetic_50_mb_download_streams_with_right_length_and_sha256",
    ) {
        return;
    }
    const LEN: u64 = 50_000_000;
    let sim = sim().await;
    let url = sim.synthetic_url(LEN);
    let expected = expected_synthetic_sha256(LEN);
    assert_eq!(expected, synthetic_sha256(LEN));
    let rss_before = rss_kib();

    let mut response = http::open("GET", &url, &[], b"").await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("50000000"));
    assert!(response.header("transfer-encoding").is_none());
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut rss_peak = 0;
    let mut pieces = 0u64;
    while let Some(chunk) = response.next_chunk().await.unwrap() {
        received += chunk.len() as u64;
        hasher.update(&chunk);
        pieces += 1;
        if pieces % 64 == 0 {
            rss_peak = rss_peak.max(rss_kib().unwrap_or(0));
        }
    }

    assert_eq!(received, LEN);
    assert_eq!(hex::encode(hasher.finalize()), expected);
    let chunks = sim.chunks_served(&url);
    assert_eq!(
        chunks,
        LEN.div_ceil(CHUNK_BYTES as u64),
        "generated in 64 KiB chunks"
    );
    // Linux only (as the whole suite): without /proc the check must not pass silently.
    let before = rss_before.expect("VmRSS from /proc/self/status");
    assert!(rss_peak > 0, "RSS sampled while streaming");
    let grew_kib = rss_peak.saturating_sub(before);
    assert!(
        grew_kib < 25 * 1024,
        "RSS grew by {grew_kib} KiB while streaming 50 MB: the body is being buffered"
    );
}

#[tokio::test]
async fn recording_expires_like_a_signed_url_after_the_call_ended() {
    let sim = sim().await;
    let script = sim.script(Scenario::ConsentYes, sim.params(LEAD, T0));
    let url = script.recording_url().unwrap();
    sim.expire_recordings(&script, Duration::from_secs(10 * 60), 403);

    sim.set_clock_ms(script.end_ms() + 9 * 60 * 1000);
    let fresh = http::send("GET", &url, &[], b"").await.unwrap();
    sim.advance_clock(Duration::from_secs(2 * 60));
    let stale = http::send("GET", &url, &[], b"").await.unwrap();

    assert_eq!(fresh.status, 200);
    assert_eq!(stale.status, 403);
    assert_eq!(sim.downloads(&url), 2);
}

#[tokio::test]
async fn unstored_calls_recordings_expire_ten_minutes_after_the_end() {
    let sim = sim().await;
    let mut params = sim.params(LEAD, T0);
    params.data_storage_setting = "basic_attributes_only".into();
    let script = sim.script(Scenario::ConsentYes, params);
    let url = script.recording_url().unwrap();

    sim.set_clock_ms(script.end_ms() + 9 * 60 * 1000);
    assert_eq!(http::send("GET", &url, &[], b"").await.unwrap().status, 200);
    sim.set_clock_ms(script.end_ms() + 10 * 60 * 1000);
    assert_eq!(http::send("GET", &url, &[], b"").await.unwrap().status, 403);
}

#[tokio::test]
async fn not_found_fault_and_deleted_calls_answer_404() {
    let sim = sim().await;
    let script = sim.script(Scenario::ConsentYes, sim.params(LEAD, T0));
    let url = script.recording_url().unwrap();
    sim.set_fault(&url, Fault::NotFound);
    assert_eq!(http::send("GET", &url, &[], b"").await.unwrap().status, 404);
    sim.set_fault(&url, Fault::Status(503));
    assert_eq!(http::send("GET", &url, &[], b"").await.unwrap().status, 503);
    sim.clear_fault(&url);
    assert_eq!(http::send("GET", &url, &[], b"").await.unwrap().status, 200);

    let path = format!("/v2/delete-call/{}", script.call_id());
    assert_eq!(api(&sim, "DELETE", &path, None).await.status, 204);
    assert_eq!(http::send("GET", &url, &[], b"").await.unwrap().status, 404);

    let never = format!(
        "{}/recordings/call_00000000000000000000000000000000/recording.wav",
        sim.base_url()
    );
    assert_eq!(
        http::send("GET", &never, &[], b"").await.unwrap().status,
        404
    );
}

#[tokio::test]
async fn redirect_fault_points_off_host_and_is_not_followed() {
    let sim = sim().await;
    let script = sim.script(Scenario::ConsentYes, sim.params(LEAD, T0));
    let url = script.recording_url().unwrap();
    let elsewhere = format!(
        "http://localhost:{}/recordings/synthetic/10",
        sim.addr().port()
    );
    sim.set_fault(
        &url,
        Fault::Redirect {
            location: "http://169.254.169.254/latest/meta-data/".into(),
            status: 302,
        },
    );

    let response = http::send("GET", &url, &[], b"").await.unwrap();

    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("http://169.254.169.254/latest/meta-data/")
    );
    sim.set_fault(
        &url,
        Fault::Redirect {
            location: elsewhere.clone(),
            status: 307,
        },
    );
    let response = http::send("GET", &url, &[], b"").await.unwrap();
    assert_eq!(response.status, 307);
    assert_eq!(response.header("location"), Some(elsewhere.as_str()));
    assert_eq!(sim.downloads(&elsewhere), 0, "the client did not follow");
}

#[tokio::test]
async fn slow_recordings_trigger_client_timeouts() {
    let sim = sim().await;
    let hanging = sim.synthetic_url(1_000);
    sim.set_fault(
        &hanging,
        Fault::DelayBeforeHeaders(Duration::from_secs(3600)),
    );
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_millis(300),
        http::send("GET", &hanging, &[], b""),
    )
    .await;
    assert!(result.is_err(), "no answer within the client's timeout");
    assert!(started.elapsed() < Duration::from_secs(2));

    let stalling = sim.synthetic_url(200_000);
    sim.set_fault(
        &stalling,
        Fault::StallBody {
            after_bytes: 1_000,
            pause: Duration::from_secs(3600),
        },
    );
    let mut response = http::open("GET", &stalling, &[], b"").await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("200000"));
    let first = response.next_chunk().await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() <= 1_000);
    let mut got = first.len();
    let stalled = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(chunk) = response.next_chunk().await.unwrap() {
            got += chunk.len();
        }
    })
    .await;
    assert!(stalled.is_err(), "the body stalls mid-way");
    assert_eq!(got, 1_000);

    // A short delay only slows the answer down.
    let slow = sim.synthetic_url(10);
    sim.set_fault(&slow, Fault::DelayBeforeHeaders(Duration::from_millis(200)));
    let started = Instant::now();
    let response = http::send("GET", &slow, &[], b"").await.unwrap();
    assert_eq!(response.body.len(), 10);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

// ---------------------------------------------------------------- payloads

fn params() -> CallParams {
    CallParams::new("http://127.0.0.1:9100", LEAD, T0)
}

fn call_of(event: &WebhookEvent) -> Value {
    let body = event.json().unwrap();
    assert_eq!(body["event"], event.event.as_str());
    body["call"].clone()
}

fn tool_calls(call: &Value) -> Vec<Value> {
    call["transcript_with_tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "tool_call_invocation")
        .cloned()
        .collect()
}

#[test]
fn consent_yes_events_carry_the_whole_call_and_the_tool_call() {
    let mut params = params();
    params.agent_id = "agent_custom".into();
    params.agent_version = 7;
    let script = CallScript::new(Scenario::ConsentYes, params);
    let events = script.events().unwrap();
    let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, [CALL_STARTED, CALL_ENDED, CALL_ANALYZED]);

    let started = call_of(&events[0]);
    assert_eq!(started["call_status"], "ongoing");
    assert_eq!(started["start_timestamp"], T0);
    assert!(started.get("transcript").is_none());

    let ended = call_of(&events[1]);
    assert!(
        ended.get("call_analysis").is_none(),
        "call_ended has no analysis"
    );
    for field in [
        "call_id",
        "call_type",
        "agent_id",
        "agent_version",
        "call_status",
        "direction",
        "from_number",
        "to_number",
        "metadata",
        "retell_llm_dynamic_variables",
        "start_timestamp",
        "end_timestamp",
        "duration_ms",
        "disconnection_reason",
        "transcript",
        "transcript_object",
        "transcript_with_tool_calls",
        "recording_url",
        "recording_multi_channel_url",
        "public_log_url",
        "data_storage_setting",
        "opt_in_signed_url",
        "call_cost",
        "latency",
    ] {
        assert!(ended.get(field).is_some(), "call_ended lacks {field}");
    }
    assert_eq!(ended["call_id"], script.call_id());
    assert_eq!(ended["agent_id"], "agent_custom");
    assert_eq!(ended["agent_version"], 7);
    assert_eq!(ended["call_status"], "ended");
    assert_eq!(ended["metadata"], json!({ "lead_id": LEAD }));
    assert_eq!(ended["to_number"], FAKE_TO_NUMBER);
    let duration = ended["duration_ms"].as_u64().unwrap();
    assert_eq!(ended["end_timestamp"].as_u64().unwrap(), T0 + duration);
    assert!(duration > 10_000);
    assert!(ended["recording_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:9100/recordings/call_"));
    assert!(
        ended.get("x_sim_future_field").is_some(),
        "unknown fields included"
    );

    let transcript = ended["transcript"].as_str().unwrap();
    assert!(transcript.starts_with(&format!(
        "Agent: {OPENING_WITH_DISCLOSURE}\nUser: {USER_YES}\n"
    )));
    assert!(transcript.contains(FAKE_LAST_NAME));
    let first_turn = &ended["transcript_object"][0];
    assert_eq!(first_turn["role"], "agent");
    let word = &first_turn["words"][0];
    assert_eq!(word["word"], "Hallo,");
    assert!(word["end"].as_f64().unwrap() > word["start"].as_f64().unwrap());

    let tools = tool_calls(&ended);
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "record_consent");
    let arguments = tools[0]["arguments"]
        .as_str()
        .expect("arguments is a JSON string");
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({ "granted": true })
    );
    let result = ended["transcript_with_tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["role"] == "tool_call_result")
        .unwrap();
    assert_eq!(result["tool_call_id"], tools[0]["tool_call_id"]);
    assert!(ended["transcript_object"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["role"] == "agent" || t["role"] == "user"));

    let analyzed = call_of(&events[2]);
    let analysis = &analyzed["call_analysis"];
    assert_eq!(analysis["custom_analysis_data"]["recording_consent"], true);
    for field in [
        "call_summary",
        "user_sentiment",
        "in_voicemail",
        "call_successful",
    ] {
        assert!(analysis.get(field).is_some(), "call_analysis lacks {field}");
    }
    let mut without = analyzed.clone();
    without.as_object_mut().unwrap().remove("call_analysis");
    assert_eq!(without, ended, "call_analyzed = call_ended + call_analysis");
}

#[test]
fn consent_variants_differ_only_where_they_should() {
    let consent = |s: Scenario| {
        let script = CallScript::new(s, params());
        let call = script.analyzed_call();
        let tool = tool_calls(&call)
            .first()
            .map(|t| serde_json::from_str::<Value>(t["arguments"].as_str().unwrap()).unwrap());
        let analysis = call["call_analysis"]["custom_analysis_data"]["recording_consent"].clone();
        let opening = call["transcript_object"][0]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        (tool, analysis, opening)
    };
    let (tool, analysis, opening) = consent(Scenario::ConsentNo);
    assert_eq!(tool, Some(json!({ "granted": false })));
    assert_eq!(analysis, false);
    assert_eq!(opening, OPENING_WITH_DISCLOSURE);

    let (tool, analysis, opening) = consent(Scenario::ConsentNeverAsked);
    assert_eq!(tool, None);
    assert_eq!(analysis, Value::Null);
    assert!(!opening.contains("aufgezeichnet"));

    let (tool, analysis, _) = consent(Scenario::ConsentOnlyInAnalysis);
    assert_eq!(tool, None);
    assert_eq!(analysis, true);

    let (tool, analysis, opening) = consent(Scenario::DisclosureMissing);
    assert_eq!(tool, Some(json!({ "granted": true })));
    assert_eq!(analysis, true);
    assert!(!opening.contains("KI") && !opening.contains("aufgezeichnet"));
}

#[test]
fn dial_no_answer_has_no_call_started_transcript_or_recording() {
    let script = CallScript::new(Scenario::DialNoAnswer, params());
    let events = script.events().unwrap();
    let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, [CALL_ENDED, CALL_ANALYZED]);
    let ended = call_of(&events[0]);
    assert_eq!(ended["call_status"], "not_connected");
    assert_eq!(ended["disconnection_reason"], "dial_no_answer");
    for absent in [
        "start_timestamp",
        "transcript",
        "transcript_object",
        "recording_url",
        "recording_multi_channel_url",
        "call_analysis",
    ] {
        assert!(ended.get(absent).is_none(), "{absent} must be absent");
    }
    assert!(call_of(&events[1]).get("call_analysis").is_some());
    assert!(script.recording_url().is_none());
}

#[test]
fn long_call_transcript_reaches_the_megabyte_range() {
    let script = CallScript::new(Scenario::LongCall { minutes: 60 }, params());
    let call = script.ended_call();
    let duration = call["duration_ms"].as_u64().unwrap();
    assert!(duration >= 60 * 60 * 1000, "{duration} ms");
    let transcript_bytes = call["transcript"].as_str().unwrap().len()
        + call["transcript_object"].to_string().len()
        + call["transcript_with_tool_calls"].to_string().len();
    assert!(transcript_bytes >= 1_000_000, "{transcript_bytes} bytes");
    let last_word_end = call["transcript_object"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["words"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["end"]
        .as_f64()
        .unwrap();
    assert!(last_word_end * 1000.0 < duration as f64);

    let plain = long_transcript(1 << 20);
    assert!(plain.len() >= 1 << 20);
    assert!(plain
        .lines()
        .all(|l| l.starts_with("Agent: ") || l.starts_with("User: ")));
}

#[test]
fn scenarios_parse_from_their_cli_names() {
    assert_eq!(
        "consent-yes".parse::<Scenario>().unwrap(),
        Scenario::ConsentYes
    );
    assert_eq!(
        "long-call-90".parse::<Scenario>().unwrap(),
        Scenario::LongCall { minutes: 90 }
    );
    assert!("consent-perhaps".parse::<Scenario>().is_err());
}

// ---------------------------------------------------------------- delivery

/// A webhook receiver that records what arrives and answers from a script of statuses.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>) -> (Self, String) {
        let receiver = Self {
            received: Default::default(),
            statuses: Arc::new(Mutex::new(statuses.into_iter().rev().collect())),
        };
        async fn handle(
            State(r): State<Receiver>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            r.received.lock().unwrap().push((headers, body));
            let status = r.statuses.lock().unwrap().pop().unwrap_or(204);
            let status = StatusCode::from_u16(status).unwrap();
            (status, format!("answer {}", status.as_u16())).into_response()
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(handle))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn events(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| {
                serde_json::from_slice::<Value>(body).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

fn verify(headers: &HeaderMap, body: &[u8], key: &str) -> bool {
    let header = headers["x-retell-signature"].to_str().unwrap();
    let (v, d) = header
        .strip_prefix("v=")
        .and_then(|rest| rest.split_once(",d="))
        .unwrap();
    d == digest(body, key, v.parse().unwrap())
}

#[tokio::test]
async fn delivered_webhooks_carry_exact_bytes_and_a_valid_signature() {
    let (receiver, url) = Receiver::start(vec![200]).await;
    let script = CallScript::new(Scenario::ConsentYes, params());
    let event = script.event(CALL_ENDED).unwrap().unwrap();

    let delivered = Webhook::new(&url, KEY).deliver(&event).await.unwrap();

    assert_eq!(delivered.status, 200);
    assert_eq!(delivered.body, b"answer 200");
    let received = receiver.received.lock().unwrap();
    let (headers, body) = &received[0];
    assert_eq!(body.as_ref(), event.body.as_slice());
    assert_eq!(headers["content-type"], "application/json");
    assert!(verify(headers, body, KEY));
    assert!(!verify(headers, body, "another-key"));
    let v: u64 = headers["x-retell-signature"].to_str().unwrap()[2..15]
        .parse()
        .unwrap();
    assert!(v.abs_diff(harness::simulator::webhook::now_ms()) < 60_000);
}

#[tokio::test]
async fn deliver_returns_the_receivers_status_and_body() {
    let (_receiver, url) = Receiver::start(vec![401]).await;
    let event = CallScript::new(Scenario::ConsentNo, params())
        .event(CALL_ANALYZED)
        .unwrap()
        .unwrap();
    let delivered = Webhook::new(&url, KEY)
        .deliver_at(&event, T0)
        .await
        .unwrap();
    assert_eq!(
        (delivered.status, delivered.body.as_slice()),
        (401, &b"answer 401"[..])
    );
    assert!(!delivered.is_success());
}

#[tokio::test]
async fn deliver_all_duplicates_and_reverses_as_asked() {
    let (receiver, url) = Receiver::start(vec![]).await;
    let events = CallScript::new(Scenario::ConsentYes, params())
        .events()
        .unwrap();
    let delivery = Delivery {
        duplicate: true,
        reverse: true,
        delay: Duration::from_millis(20),
        ..Delivery::default()
    };
    let started = Instant::now();

    let attempts = Webhook::new(&url, KEY)
        .deliver_all(&events, &delivery)
        .await;

    assert_eq!(
        receiver.events(),
        [
            CALL_ANALYZED,
            CALL_ANALYZED,
            CALL_ENDED,
            CALL_ENDED,
            CALL_STARTED,
            CALL_STARTED
        ]
    );
    assert!(
        started.elapsed() >= Duration::from_millis(5 * 20),
        "delayed between sends"
    );
    assert_eq!(attempts.len(), 6);
    assert!(attempts
        .iter()
        .all(|a| a.outcome.as_ref().unwrap().status == 204));
    let received = receiver.received.lock().unwrap();
    assert_eq!(
        received[0].1, received[1].1,
        "duplicates are byte-identical"
    );
    assert_eq!(received[0].1.as_ref(), events[2].body.as_slice());
}

#[tokio::test]
async fn deliver_all_retries_failures_and_omits_events() {
    let (receiver, url) = Receiver::start(vec![500, 503]).await;
    let events = CallScript::new(Scenario::ConsentYes, params())
        .events()
        .unwrap();
    let delivery = Delivery {
        omit: vec![CALL_STARTED.to_owned()],
        retries: 3,
        timestamp_ms: Some(T0),
        ..Delivery::default()
    };

    let attempts = Webhook::new(&url, KEY)
        .deliver_all(&events, &delivery)
        .await;

    assert_eq!(
        receiver.events(),
        [CALL_ENDED, CALL_ENDED, CALL_ENDED, CALL_ANALYZED]
    );
    let numbers: Vec<_> = attempts
        .iter()
        .map(|a| (a.event.as_str(), a.attempt))
        .collect();
    assert_eq!(
        numbers,
        [
            (CALL_ENDED, 1),
            (CALL_ENDED, 2),
            (CALL_ENDED, 3),
            (CALL_ANALYZED, 1)
        ]
    );
    let received = receiver.received.lock().unwrap();
    assert!(received.iter().all(|(h, _)| h["x-retell-signature"]
        .to_str()
        .unwrap()
        .starts_with(&format!("v={T0},"))));
}

#[tokio::test]
async fn unreachable_receiver_is_reported_not_panicked() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let events = CallScript::new(Scenario::DialNoAnswer, params())
        .events()
        .unwrap();
    let attempts = Webhook::new(&url, KEY)
        .deliver_all(&events, &Delivery::default())
        .await;
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a.outcome.is_err()));
}

#[tokio::test]
async fn created_calls_are_played_to_the_webhook_when_auto_play_is_on() {
    let (receiver, url) = Receiver::start(vec![]).await;
    let mut config = SimConfig::new(KEY);
    config.auto_play = Some(AutoPlay {
        webhook: Webhook::new(&url, KEY),
        scenario: Scenario::ConsentYes,
        delivery: Delivery::default(),
        ring: Duration::from_millis(10),
    });
    let sim = Simulator::start(config).await.unwrap();

    let call = api(&sim, "POST", "/v2/create-phone-call", Some(create_body()))
        .await
        .json()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.events().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(receiver.events(), [CALL_STARTED, CALL_ENDED, CALL_ANALYZED]);
    let received = receiver.received.lock().unwrap().clone();
    let (headers, body) = &received[2];
    assert!(verify(headers, body, KEY));
    let played: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(played["call"]["call_id"], call["call_id"]);
    assert_eq!(played["call"]["metadata"], json!({ "lead_id": LEAD }));
    assert_eq!(played["call"]["agent_id"], "agent_override_for_test");
    assert_eq!(
        played["call"]["data_storage_setting"],
        "basic_attributes_only"
    );
    let recording = played["call"]["recording_url"].as_str().unwrap();
    assert!(recording.starts_with(sim.base_url()));
    let got = api(
        &sim,
        "GET",
        &format!("/v2/get-call/{}", call["call_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(got.json().unwrap()["call_status"], "ended");
}

#[tokio::test]
async fn http_client_decodes_chunked_responses() {
    // A streamed body without a length goes out chunked.
    async fn chunked() -> axum::body::Body {
        let pieces =
            ["Hallo ", "aus ", "dem ", "Stream"].map(|p| Ok::<_, std::io::Error>(Bytes::from(p)));
        axum::body::Body::from_stream(futures_util::stream::iter(pieces))
    }
    let app = axum::Router::new().route("/", axum::routing::get(chunked));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let response = http::send("GET", &url, &[], b"").await.unwrap();

    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.text(), "Hallo aus dem Stream");
}

// ---------------------------------------------------------------- binary

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retell-sim"))
}

#[test]
fn retell_sim_prints_usage_on_bad_arguments() {
    for args in [
        vec!["--bogus"],
        vec!["--port"],
        vec![
            "send",
            "--scenario",
            "consent-perhaps",
            "--webhook-url",
            "http://127.0.0.1:1/",
            "--api-key",
            "k",
        ],
        vec!["--port", "9100"],
    ] {
        let output = bin().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("usage: retell-sim"), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retell_sim_send_delivers_a_scripted_call_without_logging_personal_data() {
    let (receiver, url) = Receiver::start(vec![]).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_retell-sim"))
        .args([
            "send",
            "--scenario",
            "consent-yes",
            "--webhook-url",
            &url,
            "--api-key",
            KEY,
            "--lead-id",
            LEAD,
            "--duplicate",
        ])
        .output()
        .await
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        receiver.events(),
        [
            CALL_STARTED,
            CALL_STARTED,
            CALL_ENDED,
            CALL_ENDED,
            CALL_ANALYZED,
            CALL_ANALYZED
        ]
    );
    let received = receiver.received.lock().unwrap();
    for (headers, body) in received.iter() {
        assert!(verify(headers, body, KEY));
        let call = &serde_json::from_slice::<Value>(body).unwrap()["call"];
        assert_eq!(call["metadata"]["lead_id"], LEAD);
    }
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("call_ended"));
    for secret in [
        FAKE_FIRST_NAME,
        FAKE_LAST_NAME,
        FAKE_TO_NUMBER,
        "+493012345678",
        "Pflaumen",
        KEY,
    ] {
        assert!(!printed.contains(secret), "output leaks {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retell_sim_serve_answers_the_api_on_loopback() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_retell-sim"))
        .args(["--port", "0", "--api-key", KEY])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = line.rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    let auth = auth();
    let body = create_body().to_string();
    let created = http::send(
        "POST",
        &format!("{base}/v2/create-phone-call"),
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await
    .unwrap();
    let unauthorized = http::send("GET", &format!("{base}/v2/get-call/x"), &[], b"")
        .await
        .unwrap();
    child.kill().await.unwrap();

    assert_eq!(created.status, 201);
    assert_eq!(unauthorized.status, 401);
}
