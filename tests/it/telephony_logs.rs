//! The personal-data scan of the telephony webhook's logs: accepted, refused, ignored and
//! failing deliveries with known personal data in them.

mod common;

use std::sync::Arc;

use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;
use secrecy::SecretString;
use serde_json::json;
use shared::retell::signature::sign;
use shared::Clock;

#[tokio::test]
async fn webhook_logs_contain_no_personal_data() {
    let (logs, _guard) = LogCapture::start();
    let signup = TestApp::spawn().await;
    signup.sign_up(&form()).await;
    let lead = signup.lead_of(EMAIL).await.to_string();
    let config = signup.stack.config_for("TelephonyWebhookFunction").unwrap();
    let app = telephony::App::from_aws(&config, &signup.stack.aws, Arc::new(signup.clock.clone()))
        .unwrap();
    let key = SecretString::from("local-test-key".to_owned());
    let now = signup.clock.now().timestamp_millis() as u64;

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
        telephony::handle(&app, req.build()).await;
        // The same body with a broken signature.
        let req = ApiRequest::post_json("/v1/telephony/retell", body)
            .header("x-retell-signature", "v=1,d=00");
        assert_eq!(telephony::handle(&app, req.build()).await.status(), 401);
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

#[tokio::test]
async fn worker_logs_contain_no_personal_data() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use harness::events::stream_event;
    use harness::simulator::scenario::Scenario;
    use harness::simulator::{Operation, SimConfig, Simulator};
    use shared::adapters::calls::{call_pk, CALL_SK};
    use shared::adapters::dynamo::{lead_pk, LEAD_SK};

    let (logs, _guard) = LogCapture::start();
    let signup = TestApp::spawn().await;
    signup.sign_up(&form()).await;
    let lead = signup.lead_of(EMAIL).await.to_string();
    let sim = Simulator::start(SimConfig::new("local-test-key"))
        .await
        .unwrap();
    let mut config = signup.stack.config_for("TelephonyWorkerFunction").unwrap();
    config.retell_api_base_url = sim.base_url().to_owned();
    config.recordings_allow_loopback = true;
    let worker =
        telephony::worker_from_aws(&config, &signup.stack.aws, Arc::new(signup.clock.clone()))
            .unwrap();
    let hook_config = signup.stack.config_for("TelephonyWebhookFunction").unwrap();
    let hook = telephony::App::from_aws(
        &hook_config,
        &signup.stack.aws,
        Arc::new(signup.clock.clone()),
    )
    .unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&signup.stack.aws);
    let get = |pk: String, sk: &'static str| {
        let ddb = ddb.clone();
        let table = signup.stack.table.clone();
        async move {
            ddb.get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk.into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };

    // Place the call (once after an outage), then play it and handle the recording.
    sim.fail_next(Operation::CreateCall, 1, 503);
    let id = shared::domain::LeadId::parse(&lead).unwrap();
    for seq in 1..3 {
        let item = get(lead_pk(&id), LEAD_SK).await;
        telephony::worker::handle(
            &worker,
            stream_event("INSERT", item, Default::default(), seq),
        )
        .await;
    }
    let script = sim.script(
        Scenario::ConsentYes,
        sim.params(&lead, sim.now_ms() - 120_000),
    );
    let key = SecretString::from("local-test-key".to_owned());
    for event in ["call_ended", "call_analyzed"] {
        let body = script.event(event).unwrap().unwrap().body;
        let sig = sign(&body, &key, signup.clock.now().timestamp_millis() as u64);
        telephony::handle(
            &hook,
            ApiRequest::post_json("/v1/telephony/retell", &body)
                .header("x-retell-signature", &sig)
                .build(),
        )
        .await;
    }
    for seq in 3..5 {
        let item = get(call_pk(script.call_id()), CALL_SK).await;
        telephony::worker::handle(
            &worker,
            stream_event("MODIFY", item, Default::default(), seq),
        )
        .await;
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
