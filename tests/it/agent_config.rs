//! trace-level: template
//!
//! The agent's configuration in `infra/agent/` against the backend's compliance checks
//! (R7.4): the begin message is judged by `compliance::discloses` with the disclosure
//! patterns the deployed webhook reads (its template environment through `Config`, as the
//! function reads it); a whole opening, built from the configuration, goes through the
//! consent decision; every tool's schema yields sample arguments that the backend's tool
//! parser reads back as sent. Then the configuration is broken on purpose, one promise at a
//! time, and the checks `make agent` runs before sending must name each break.

use std::collections::HashMap;

use agent::check::{self, SIGNUP_QUESTION, WEBHOOK_PATH};
use agent::config::AgentConfig;
use harness::template::Template;
use serde_json::{json, Map, Value};
use shared::retell::compliance::{self, ConsentSource, DisclosurePatterns};
use shared::retell::tools::{AgentToolCall, CONFIRM_SIGNUP, CUSTOM_TOOLS, RECORD_CONSENT};

const WEBHOOK: &str = "https://api.polly-ki.de/v1/telephony/retell";

fn agent_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/agent")
}

/// The repository's configuration with its placeholders filled.
fn configured() -> (Value, Value) {
    let config = AgentConfig::load(&agent_dir()).expect("infra/agent loads");
    agent::filled(&config, WEBHOOK, "llm_0123456789abcdef").expect("placeholders filled")
}

/// The disclosure patterns of the deployed webhook: its template environment, read by
/// the function's own `Config` (the template's defaults when it sets none).
fn deployed_patterns() -> DisclosurePatterns {
    let template = Template::load().expect("template");
    let vars = &template.properties("TelephonyWebhookFunction")["Environment"]["Variables"];
    let mut env: HashMap<String, String> = [
        "TABLE_NAME",
        "KEY_TABLE_NAME",
        "DATA_KEY_ID",
        "BLIND_INDEX_KEY_ID",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), "placeholder".to_owned()))
    .collect();
    for name in ["DISCLOSURE_AI_PATTERNS", "DISCLOSURE_RECORDING_PATTERNS"] {
        let value = &vars[name];
        let text = match (value.as_str(), value) {
            (Some(s), _) => Some(s.to_owned()),
            (None, serde_norway::Value::Null) => None,
            (None, other) => {
                // A parameter reference: its default is what a deployment gets.
                let param = serde_norway::to_string(other).expect("yaml");
                let param = param.trim().trim_start_matches("!Ref").trim();
                Some(
                    template
                        .parameter_default(param)
                        .unwrap_or_else(|| panic!("{name}: only literals and !Ref are read")),
                )
            }
        };
        if let Some(text) = text {
            env.insert(name.to_owned(), text);
        }
    }
    let config = shared::Config::from_map(&env).expect("the webhook's configuration");
    DisclosurePatterns {
        ai: config.disclosure_ai_patterns,
        recording: config.disclosure_recording_patterns,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn tool<'a>(llm: &'a Value, name: &str) -> &'a Value {
    llm["general_tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("tool {name} configured"))
}

/// The conversation the prompt prescribes, as the provider reports it: the begin
/// message, a "Ja", `confirm_signup`, the consent question, a "Ja", `record_consent`.
fn prescribed_call(llm: &Value, consent: bool) -> Map<String, Value> {
    let question = llm["default_dynamic_variables"]["consent_question"]
        .as_str()
        .expect("consent question");
    object(json!({"transcript_with_tool_calls": [
        {"role": "agent", "content": llm["begin_message"]},
        {"role": "user", "content": "Ja, das stimmt."},
        {"role": "tool_call_invocation", "tool_call_id": "t1", "name": CONFIRM_SIGNUP, "arguments": "{\"confirmed\":true}"},
        {"role": "tool_call_result", "tool_call_id": "t1", "content": "ok"},
        {"role": "agent", "content": question},
        {"role": "user", "content": if consent { "Ja." } else { "Nein." }},
        {"role": "tool_call_invocation", "tool_call_id": "t2", "name": RECORD_CONSENT, "arguments": json!({"granted": consent}).to_string()},
        {"role": "tool_call_result", "tool_call_id": "t2", "content": "ok"},
        {"role": "agent", "content": "Worum geht es Ihnen?"}
    ]}))
}

/// R7.4, R2.8: the configured begin message alone, followed by the person's first answer,
/// passes the backend's disclosure check with the deployed webhook's patterns, and asks the
/// sign-up question word for word; in the prescribed conversation the `record_consent`
/// answer decides the consent (source `tool_call`), yes and no.
#[test]
fn the_configured_opening_passes_the_backends_disclosure_and_consent_checks() {
    let (llm, _) = configured();
    let patterns = deployed_patterns();
    assert_eq!(llm["start_speaker"], "agent");
    let begin = llm["begin_message"].as_str().expect("begin message");
    assert!(begin.contains(SIGNUP_QUESTION), "{begin}");
    let first_answer = object(json!({"transcript_object": [
        {"role": "agent", "content": begin},
        {"role": "user", "content": "Ja."},
        {"role": "agent", "content": "Ich bin übrigens eine KI und zeichne auf."}
    ]}));
    assert!(compliance::discloses(&first_answer, &patterns));
    for consent in [true, false] {
        let call = prescribed_call(&llm, consent);
        assert!(compliance::discloses(&call, &patterns));
        let decision = compliance::recording_consent(&call);
        assert_eq!(
            (decision.granted, decision.source),
            (consent, ConsentSource::ToolCall)
        );
    }
}

/// R7.4: every custom tool the configuration declares is one of the backend's tools, all
/// of them are declared, at the webhook URL, silent while running, with a bounded timeout
/// and retry; every argument combination its schema allows is read back as sent by the
/// backend's tool parser, and a missing required or undeclared argument is refused.
#[test]
fn each_tools_schema_accepts_exactly_what_the_backend_parses() {
    let (llm, _) = configured();
    let mut declared: Vec<&str> = llm["general_tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter(|t| t["type"] == "custom")
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    declared.sort_unstable();
    let mut expected = CUSTOM_TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(declared, expected);
    assert!(llm["general_tools"]
        .as_array()
        .expect("tools")
        .iter()
        .any(|t| t["type"] == "end_call"));
    for name in CUSTOM_TOOLS {
        let t = tool(&llm, name);
        assert_eq!(t["url"], WEBHOOK, "{name}");
        assert!(WEBHOOK.ends_with(WEBHOOK_PATH));
        assert_eq!(t["speak_during_execution"], false, "{name}");
        assert_eq!(t["args_at_root"], false, "{name}");
        assert!(
            t["timeout_ms"].as_i64().is_some_and(|ms| ms <= 10_000),
            "{name}"
        );
        assert!(
            t["max_retry"]
                .as_i64()
                .is_some_and(|n| (0..=5).contains(&n)),
            "{name}"
        );
        let params = &t["parameters"];
        assert_eq!(params["additionalProperties"], false, "{name}");
        let required: Vec<&str> = params["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // Written out here rather than generated, so this test does not share the
        // generator with `check`: the values each schema allows.
        let samples: Vec<Value> = match name {
            RECORD_CONSENT => vec![json!({"granted": true}), json!({"granted": false})],
            CONFIRM_SIGNUP => vec![json!({"confirmed": true}), json!({"confirmed": false})],
            _ => {
                let reasons = params["properties"]["reason"]["enum"]
                    .as_array()
                    .expect("reason enum");
                assert!(!reasons.is_empty() && !required.contains(&"reason"));
                std::iter::once(json!({}))
                    .chain(reasons.iter().map(|r| json!({"reason": r})))
                    .collect()
            }
        };
        for sample in &samples {
            let parsed = AgentToolCall::parse(name, sample)
                .unwrap_or_else(|e| panic!("{name} {sample}: {e}"));
            let back = match parsed {
                AgentToolCall::RecordConsent { granted } => json!({"granted": granted}),
                AgentToolCall::ConfirmSignup { confirmed } => json!({"confirmed": confirmed}),
                AgentToolCall::RecordObjection { reason } => match reason {
                    None => json!({}),
                    Some(r) => json!({"reason": r.as_str()}),
                },
            };
            assert_eq!(&back, sample, "{name}");
            for key in sample.as_object().expect("object").keys() {
                let property = &params["properties"][key];
                assert!(property.is_object(), "{name}: {key} is declared");
                if required.contains(&key.as_str()) {
                    let mut without = sample.clone();
                    without.as_object_mut().expect("object").remove(key);
                    assert!(
                        AgentToolCall::parse(name, &without).is_err(),
                        "{name} without {key}"
                    );
                }
            }
            let mut extra = sample.clone();
            extra["note"] = json!("Bitte nie wieder anrufen, Herr Muster");
            assert!(
                AgentToolCall::parse(name, &extra).is_err(),
                "{name}: free text"
            );
        }
        // And the check `make agent` runs agrees.
    }
    assert_eq!(
        check::compliance(&llm, &configured().1, WEBHOOK, &deployed_patterns()),
        Vec::<String>::new()
    );
}

/// R7.4: the repository's configuration passes every check `make agent` runs before
/// sending: the provider's limits, provider-side storage `basic_attributes_only`, German,
/// a ring time within our bound, voicemail hung up, events to our webhook; and in the prompt
/// the sign-up is confirmed, then the consent question asked and `record_consent` called,
/// before anything about the person's matter.
#[test]
fn the_repository_configuration_passes_every_check() {
    let (llm, agent) = configured();
    assert_eq!(
        check::all(&llm, &agent, WEBHOOK, &deployed_patterns()),
        Vec::<String>::new()
    );
    assert_eq!(agent["data_storage_setting"], "basic_attributes_only");
    assert_eq!(agent["voicemail_option"]["action"]["type"], "hangup");
    let ring = agent["ring_duration_ms"].as_i64().expect("ring time set");
    assert!((check::RING_DURATION_MS.0..=check::RING_DURATION_MS.1).contains(&ring));
    let prompt = llm["general_prompt"].as_str().expect("prompt");
    let at = |s: &str| {
        prompt
            .find(s)
            .unwrap_or_else(|| panic!("{s} in the prompt"))
    };
    assert!(at(CONFIRM_SIGNUP) < at("{{consent_question}}"));
    assert!(at("{{consent_question}}") < at(RECORD_CONSENT));
    assert!(at(RECORD_CONSENT) < at(check::MATTER_MARKER));
    // No secret and no deployment's literal id in the files.
    let raw = format!(
        "{}{}",
        std::fs::read_to_string(agent_dir().join("llm.json")).expect("llm.json"),
        std::fs::read_to_string(agent_dir().join("agent.json")).expect("agent.json")
    );
    assert!(raw.contains("${POLLY_WEBHOOK_URL}") && raw.contains("${RETELL_LLM_ID}"));
    for word in [
        "key_", "api_key", "secret", "Bearer", "llm_0", "agent_0", "https://",
    ] {
        assert!(!raw.contains(word), "{word} in infra/agent");
    }
}

/// Applies `edit` to the configured LLM and agent and returns what the checks say.
fn findings_after(edit: impl FnOnce(&mut Value, &mut Value)) -> Vec<String> {
    let (mut llm, mut agent) = configured();
    edit(&mut llm, &mut agent);
    check::all(&llm, &agent, WEBHOOK, &deployed_patterns())
}

fn assert_named(findings: &[String], needle: &str) {
    assert!(
        findings.iter().any(|f| f.contains(needle)),
        "expected a finding about {needle:?}, got {findings:?}"
    );
}

/// R7.4, R2.8: a begin message without the AI disclosure (every AI phrase removed), without
/// the recording notice, or without the sign-up question, and an agent that lets the person
/// speak first, are refused before anything is sent.
#[test]
fn a_broken_opening_is_refused() {
    let patterns = deployed_patterns();
    // Every phrase out, whatever its case, also the inflected "künstlicher Intelligenz".
    let strip = |text: &str, phrases: &[String]| {
        let mut out = text.to_owned();
        for p in phrases {
            for variant in [p.clone(), p.replace("liche ", "licher ")] {
                let needle = variant.to_lowercase();
                while let Some(at) = out.to_lowercase().find(&needle) {
                    out.replace_range(at..at + needle.len(), "Assistenz");
                }
            }
        }
        out
    };
    let no_ai = findings_after(|llm, _| {
        llm["begin_message"] = json!(strip(llm["begin_message"].as_str().unwrap(), &patterns.ai));
    });
    assert_named(&no_ai, "disclosure");
    let no_recording = findings_after(|llm, _| {
        llm["begin_message"] = json!(strip(
            llm["begin_message"].as_str().unwrap(),
            &patterns.recording
        ));
    });
    assert_named(&no_recording, "disclosure");
    let no_question = findings_after(|llm, _| {
        llm["begin_message"] = json!(llm["begin_message"]
            .as_str()
            .unwrap()
            .replace(SIGNUP_QUESTION, "Haben Sie kurz Zeit?"));
    });
    assert_named(&no_question, "sign-up question");
    let user_first = findings_after(|llm, _| llm["start_speaker"] = json!("user"));
    assert_named(&user_first, "start_speaker");
}

/// R7.4: a prompt without the consent question, or one that asks about the person's matter
/// before it, and a consent question that does not name the recording, are refused.
#[test]
fn a_missing_or_late_consent_question_is_refused() {
    let dropped = findings_after(|llm, _| {
        llm["general_prompt"] = json!(llm["general_prompt"]
            .as_str()
            .unwrap()
            .replace("{{consent_question}}", ""));
    });
    assert_named(&dropped, "consent_question");
    let late = findings_after(|llm, _| {
        let prompt = llm["general_prompt"].as_str().unwrap();
        llm["general_prompt"] = json!(format!(
            "Frage zuerst nach dem {} der Person. {prompt}",
            check::MATTER_MARKER
        ));
    });
    assert_named(&late, "before the person's");
    let vague = findings_after(|llm, _| {
        llm["default_dynamic_variables"]["consent_question"] = json!("Ist das in Ordnung?");
    });
    assert_named(&vague, "consent_question must ask about the recording");
}

/// R7.4: a renamed or missing tool, a tool elsewhere than our webhook, one that speaks while
/// it runs, one whose schema lets free text through or makes a required answer optional,
/// and a missing `end_call` are refused.
#[test]
fn broken_tools_are_refused() {
    let renamed = findings_after(|llm, _| {
        for t in llm["general_tools"].as_array_mut().unwrap() {
            if t["name"] == RECORD_CONSENT {
                t["name"] = json!("recording_consent");
            }
        }
    });
    assert_named(&renamed, "recording_consent is not one the backend answers");
    assert_named(&renamed, "tool record_consent is missing");
    let edit_tool = |name: &'static str, f: fn(&mut Value)| {
        findings_after(move |llm, _| {
            for t in llm["general_tools"].as_array_mut().unwrap() {
                if t["name"] == name {
                    f(t);
                }
            }
        })
    };
    assert_named(
        &edit_tool(CONFIRM_SIGNUP, |t| {
            t["url"] = json!("https://elsewhere.example/hook")
        }),
        "must call the webhook URL",
    );
    assert_named(
        &edit_tool(RECORD_CONSENT, |t| {
            t["speak_during_execution"] = json!(true)
        }),
        "speak_during_execution",
    );
    assert_named(
        &edit_tool("record_objection", |t| {
            t["parameters"]["properties"]["reason"] = json!({"type": "string"});
        }),
        "type the backend does not parse",
    );
    assert_named(
        &edit_tool("record_objection", |t| {
            t["parameters"]["properties"]["note"] = json!({"type": "boolean"});
        }),
        "the backend refuses arguments the schema allows",
    );
    assert_named(
        &edit_tool(CONFIRM_SIGNUP, |t| t["parameters"]["required"] = json!([])),
        "the backend refuses arguments the schema allows",
    );
    assert_named(
        &edit_tool(RECORD_CONSENT, |t| {
            t["parameters"]
                .as_object_mut()
                .unwrap()
                .remove("additionalProperties");
        }),
        "additionalProperties",
    );
    let no_end_call = findings_after(|llm, _| {
        llm["general_tools"]
            .as_array_mut()
            .unwrap()
            .retain(|t| t["type"] != "end_call");
    });
    assert_named(&no_end_call, "end_call");
}

/// R7.4: provider-side storage other than `basic_attributes_only`, a ring time
/// outside our bound or the provider's range, a voicemail message, another language or
/// another webhook are refused.
#[test]
fn a_broken_agent_is_refused() {
    for storage in ["everything", "everything_except_pii"] {
        let f = findings_after(|_, agent| agent["data_storage_setting"] = json!(storage));
        assert_named(&f, "data_storage_setting must be basic_attributes_only");
    }
    let f = findings_after(|_, agent| agent["ring_duration_ms"] = json!(120_000));
    assert_named(&f, "ring_duration_ms must be set, in");
    let f = findings_after(|_, agent| agent["ring_duration_ms"] = json!(400_000));
    assert_named(&f, "ring_duration_ms must be an integer in 5000..=300000");
    let f = findings_after(|_, agent| {
        agent.as_object_mut().unwrap().remove("ring_duration_ms");
    });
    assert_named(&f, "ring_duration_ms must be set");
    let f = findings_after(|_, agent| {
        agent["voicemail_option"] =
            json!({"action": {"type": "static_text", "text": "Bitte rufen Sie zurück."}});
    });
    assert_named(&f, "voicemail_option must hang up");
    let f = findings_after(|_, agent| agent["language"] = json!("en-US"));
    assert_named(&f, "language must be de-DE");
    let f = findings_after(|_, agent| agent["webhook_url"] = json!("https://x.example/hook"));
    assert_named(&f, "webhook_url");
}
