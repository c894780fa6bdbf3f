//! The personal-data scan of the telephony webhook's logs: accepted, refused, ignored and
//! failing deliveries with known personal data in them.

use crate::common;

use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;
use secrecy::SecretString;
use serde_json::json;
use shared::retell::signature::sign;

/// R5.5: accepted, ignored, malformed and badly signed webhook deliveries carrying a name,
/// numbers, the person's words, a summary and a recording URL log none of them (also not
/// base64- or JSON-encoded), while the flows were logged (an incident among them).
#[tokio::test]
async fn webhook_logs_contain_no_personal_data() {
    let (logs, _guard) = LogCapture::start();
    let w = World::start().await;
    let lead = w.signup.subject().await.to_string();
    let app = &w.webhook;
    let key = SecretString::from(API_KEY.to_owned());
    let now = w.now_ms();

    let secret_line = "Ich heisse Wilhelmine und wohne in der Pflaumenallee 7.";
    let call = |event: &str, opening: &str| {
        serde_json::to_vec(&json!({"event": event, "call": {
            "call_id": "call_logs", "call_type": "phone_call", "agent_id": "a", "agent_version": 1,
            "call_status": "ended", "direction": "outbound",
            "from_number": "+4930901820", "to_number": "+491709876543",
            "metadata": {"lead_id": lead}, "retell_llm_dynamic_variables": {"first_name": FIRST},
            "transcript": format!("Agent: {opening}\nUser: {secret_line}"),
            "transcript_object": [{"role": "agent", "content": opening}, {"role": "user", "content": secret_line}],
            "recording_url": "https://recordings.example/geheim-pfad.wav",
            "call_analysis": {"call_summary": format!("Zusammenfassung: {secret_line}"), "custom_analysis_data": {"recording_consent": true}}
        }}))
        .unwrap()
    };
    let deliveries = vec![
        call(
            "call_ended",
            "Ich bin eine KI, das Gespräch wird aufgezeichnet.",
        ),
        call("call_analyzed", "Guten Tag, hier spricht Polly."),
        br#"{"event":"transcript_updated","call":{"call_id":"call_logs"}}"#.to_vec(),
        b"kein json mit Wilhelmine".to_vec(),
    ];
    for body in &deliveries {
        let sig = sign(body, &key, now);
        let req =
            ApiRequest::post_json("/v1/telephony/retell", body).header("x-retell-signature", &sig);
        telephony::handle(app, req.build()).await;
        // The same body with a broken signature.
        let req = ApiRequest::post_json("/v1/telephony/retell", body)
            .header("x-retell-signature", "v=1,d=00");
        assert_eq!(telephony::handle(app, req.build()).await.status(), 401);
    }
    let text = logs.text();
    assert!(text.contains("call event recorded"), "{text}");
    assert!(text.contains("compliance incident"));
    assert!(text.contains("webhook signature rejected"));
    logs.assert_free_of(&[
        FIRST,
        "+491709876543",
        "1709876543",
        "+4930901820",
        secret_line,
        "Pflaumenallee",
        "geheim-pfad",
        "Zusammenfassung",
    ]);
}

/// R5.5: the worker's logs of placing a call (after a provider outage), copying the
/// recording and deleting the call hold no name, email, number or recording URL.
#[tokio::test]
async fn worker_logs_contain_no_personal_data() {
    use harness::simulator::scenario::Scenario;
    use harness::simulator::Operation;

    let (logs, _guard) = LogCapture::start();
    let w = World::start().await;
    let id = w.signup.subject().await;
    let sim = &w.sim;

    // Place the call (once after an outage), then play it and handle the recording.
    sim.fail_next(Operation::CreateCall, 1, 503);
    for seq in 1..3 {
        w.pump_lead(&id, seq).await;
    }
    let script = w.script(Scenario::ConsentYes, &id);
    for event in ["call_ended", "call_analyzed"] {
        w.deliver(&script, event).await;
    }
    for seq in 3..5 {
        w.pump_call(script.call_id(), seq).await;
    }
    assert_eq!(sim.deleted_calls().len(), 1, "the whole path ran");

    let text = logs.text();
    assert!(
        text.contains("call placed") && text.contains("recording stored"),
        "{text}"
    );
    let recording_url = script.recording_url().unwrap();
    // The recording URL is a capability (signed in production): never logged.
    logs.assert_free_of(&[FIRST, LAST, EMAIL, PHONE_E164, "1709876543", &recording_url]);
}
