//! The agent's configured tools against the real webhook (R7.4): every argument
//! combination a configured tool's schema allows, signed like the provider signs tool
//! calls, is answered 200 by the telephony webhook and stored as sent; arguments the schema
//! forbids (an undeclared free-text field, a wrong type, a missing required answer) are
//! refused with 400 and change nothing.

use crate::common::*;

use harness::events::ApiRequest;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::retell::signature::sign;
use shared::retell::tools::RECORD_CONSENT;

/// The tool whose stored answer this test reads back. `record_objection` and
/// `confirm_signup` go through the same parser (`AgentToolCall::parse`, checked against
/// their schemas by `agent_config`) and are tested end to end in `calls_dnc`.
const HANDLED: &[&str] = &[RECORD_CONSENT];

/// The repository's LLM configuration (placeholders filled).
fn configured_llm() -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/agent");
    let config = agent::config::AgentConfig::load(&dir).expect("infra/agent");
    agent::filled(
        &config,
        "https://api.polly-ki.de/v1/telephony/retell",
        "llm_x",
    )
    .expect("filled")
    .0
}

/// Every combination of a schema's property values (booleans both ways, each enum value;
/// optional ones also absent).
fn samples(parameters: &Value) -> Vec<Value> {
    let required: Vec<&str> = parameters["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = vec![json!({})];
    for (key, schema) in parameters["properties"].as_object().expect("properties") {
        let mut values: Vec<Option<Value>> = match schema["type"].as_str() {
            Some("boolean") => vec![Some(json!(true)), Some(json!(false))],
            Some("string") => schema["enum"]
                .as_array()
                .expect("string properties are enums")
                .iter()
                .cloned()
                .map(Some)
                .collect(),
            other => panic!("{key}: type {other:?} has no samples"),
        };
        if !required.contains(&key.as_str()) {
            values.push(None);
        }
        out = out
            .into_iter()
            .flat_map(|m| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    if let Some(v) = v {
                        m[key.as_str()] = v.clone();
                    }
                    m
                })
            })
            .collect();
    }
    out
}

async fn tool_call(s: &Subject, name: &str, call_id: &str, args: &Value) -> (u16, String) {
    let body = serde_json::to_vec(&json!({
        "name": name,
        "call": {"call_id": call_id, "metadata": {"lead_id": s.lead.to_string()}},
        "args": args,
    }))
    .expect("json");
    let sig = sign(&body, &SecretString::from(API_KEY.to_owned()), s.now_ms());
    let req = ApiRequest::post_json("/v1/telephony/retell", &body)
        .header("x-retell-signature", &sig)
        .build();
    let resp = telephony::handle(&s.webhook, req).await;
    let text = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (resp.status().as_u16(), text)
}

/// R7.4: each argument combination the configured `record_consent` schema allows is
/// answered 200 by the real webhook and stored as the call's live answer; an undeclared
/// free-text argument, a wrong type or a missing answer is refused with 400 and stores
/// nothing.
#[tokio::test]
async fn the_webhook_accepts_exactly_what_the_configured_schemas_allow() {
    let s = Subject::start().await;
    let llm = configured_llm();
    let mut n = 0;
    for t in llm["general_tools"].as_array().expect("tools") {
        let name = t["name"].as_str().expect("name");
        if t["type"] != "custom" || !HANDLED.contains(&name) {
            continue;
        }
        for (i, args) in samples(&t["parameters"]).iter().enumerate() {
            let call_id = format!("call_{name}_{i}");
            let (status, text) = tool_call(&s, name, &call_id, args).await;
            assert_eq!(status, 200, "{name} {args}: {text}");
            let item = s
                .signup
                .item(call_pk(&call_id), CALL_SK)
                .await
                .expect("call stored");
            let live = item["live_consent"].as_m().expect("live answer");
            assert_eq!(
                live["granted"].as_bool().ok(),
                args["granted"].as_bool().as_ref(),
                "{name} {args}"
            );
            n += 1;

            let refused_id = format!("call_{name}_{i}_refused");
            let mut free_text = args.clone();
            free_text["note"] = json!("Herr Muster will nicht");
            let mut missing = args.clone();
            let mut wrong = args.clone();
            for key in t["parameters"]["required"].as_array().into_iter().flatten() {
                let key = key.as_str().expect("name");
                missing.as_object_mut().expect("object").remove(key);
                wrong[key] = json!("ja");
            }
            for bad in [free_text, missing, wrong] {
                let (status, _) = tool_call(&s, name, &refused_id, &bad).await;
                assert_eq!(status, 400, "{name} {bad}");
            }
            assert!(s.signup.item(call_pk(&refused_id), CALL_SK).await.is_none());
        }
    }
    assert_eq!(n, 2, "both answers of record_consent were sent");
}
