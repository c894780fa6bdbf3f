//! What a configuration must satisfy before it is sent: the provider's own limits (so a
//! bad value is refused here, with a clear message, not half-applied there) and the
//! promises the backend relies on (R2.8, R2.12, R7.3, R7.4).
//!
//! The compliance part uses the backend's own code: the begin message is run through
//! [`compliance::discloses`] as the opening of a call, with the disclosure patterns the
//! webhook is configured with; every tool's JSON schema is turned into sample arguments
//! that go through [`AgentToolCall::parse`], the parser of the tool calls.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use usecases::telephony::retell::compliance::{self, DisclosurePatterns};
use usecases::telephony::retell::tools::{
    AgentToolCall, CONFIRM_SIGNUP, CUSTOM_TOOLS, RECORD_CONSENT,
};

/// The path of the provider webhook and the agent's tool calls.
pub const WEBHOOK_PATH: &str = "/v1/telephony/retell";
/// The question that confirms the sign-up on the line (R7.4), word for word.
pub const SIGNUP_QUESTION: &str =
    "Sie hatten sich auf unserer Website angemeldet — ist das richtig?";
/// The word that opens the part of the conversation about the person's matter in the
/// prompt; the consent question must come before it.
pub const MATTER_MARKER: &str = "Anliegen";
/// Our bound on the outbound ring time (R7.3), inside the provider's 5 000–300 000 ms:
/// long enough to reach the phone, short enough not to pester.
pub const RING_DURATION_MS: (i64, i64) = (15_000, 60_000);
/// Provider-side storage (R2.12): no transcript, recording or log kept at the provider.
pub const DATA_STORAGE: &str = "basic_attributes_only";

/// One problem, in words; never a value of the configuration beyond names and numbers.
pub type Finding = String;

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn in_range(out: &mut Vec<Finding>, v: &Value, key: &str, lo: i64, hi: i64, required: bool) {
    match v.get(key) {
        None if !required => {}
        None => out.push(format!("{key} is required")),
        Some(_) => match int(v, key) {
            Some(n) if (lo..=hi).contains(&n) => {}
            _ => out.push(format!("{key} must be an integer in {lo}..={hi}")),
        },
    }
}

/// The provider's limits (retell-sdk 6.2.13 documents them): what it would refuse.
pub fn provider_limits(llm: &Value, agent: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    if !llm.is_object() || !agent.is_object() {
        out.push("the LLM and the agent must be JSON objects".to_owned());
        return out;
    }
    if !matches!(
        llm.get("start_speaker").and_then(Value::as_str),
        None | Some("agent" | "user")
    ) {
        out.push("start_speaker must be agent or user".to_owned());
    }
    let tools = llm
        .get("general_tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut names = BTreeSet::new();
    for tool in &tools {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            out.push("a tool name must be 1-64 of a-z, A-Z, 0-9, _ and -".to_owned());
        } else if !names.insert(name) {
            out.push(format!("tool {name} is declared twice"));
        }
        if tool.get("type").and_then(Value::as_str) == Some("custom") {
            if tool.get("url").and_then(Value::as_str).is_none() {
                out.push(format!("tool {name}: url is required"));
            }
            in_range(&mut out, tool, "timeout_ms", 1_000, 600_000, false);
            in_range(&mut out, tool, "max_retry", 0, 5, false);
            if let Some(p) = tool.get("parameters") {
                let props = p.get("properties").and_then(Value::as_object);
                if p.get("type").and_then(Value::as_str) != Some("object") || props.is_none() {
                    out.push(format!(
                        "tool {name}: parameters must be an object schema with properties"
                    ));
                }
                let required = p.get("required").and_then(Value::as_array);
                if required.into_iter().flatten().any(|r| {
                    r.as_str()
                        .is_none_or(|r| props.is_none_or(|p| !p.contains_key(r)))
                }) {
                    out.push(format!(
                        "tool {name}: every required parameter must be a property"
                    ));
                }
            }
        }
    }
    match agent.get("response_engine") {
        Some(e)
            if e.get("type").and_then(Value::as_str) == Some("retell-llm")
                && e.get("llm_id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()) => {}
        _ => out.push("response_engine must be a retell-llm with an llm_id".to_owned()),
    }
    if agent
        .get("voice_id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        out.push("voice_id is required".to_owned());
    }
    in_range(&mut out, agent, "ring_duration_ms", 5_000, 300_000, false);
    in_range(
        &mut out,
        agent,
        "max_call_duration_ms",
        60_000,
        7_200_000,
        false,
    );
    in_range(
        &mut out,
        agent,
        "end_call_after_silence_ms",
        10_000,
        i64::MAX,
        false,
    );
    in_range(&mut out, agent, "begin_message_delay_ms", 0, 5_000, false);
    if !matches!(
        agent.get("data_storage_setting").and_then(Value::as_str),
        None | Some("everything" | "everything_except_pii" | "basic_attributes_only")
    ) {
        out.push("data_storage_setting must be everything, everything_except_pii or basic_attributes_only".to_owned());
    }
    out
}

/// A call whose transcript is the begin message followed by the person's first answer:
/// the opening the backend judges (R2.8).
fn opening_call(begin_message: &str) -> Map<String, Value> {
    let call = json!({"transcript_object": [
        {"role": "agent", "content": begin_message},
        {"role": "user", "content": "Ja."},
    ]});
    match call {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Sample arguments for a tool's schema: every combination of the values of its
/// properties (booleans both ways, every enum value), optional ones also absent. `None`
/// when a property has a type the backend does not parse.
fn samples(parameters: &Value) -> Option<Vec<Value>> {
    let props = parameters.get("properties")?.as_object()?;
    let required: BTreeSet<&str> = parameters
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = vec![Map::new()];
    for (key, schema) in props {
        let mut values: Vec<Option<Value>> = match schema.get("type").and_then(Value::as_str) {
            Some("boolean") => vec![Some(json!(true)), Some(json!(false))],
            Some("string") => schema
                .get("enum")?
                .as_array()?
                .iter()
                .map(|v| Some(v.clone()))
                .collect(),
            _ => return None,
        };
        if !required.contains(key.as_str()) {
            values.push(None);
        }
        out = out
            .into_iter()
            .flat_map(|m| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    if let Some(v) = v {
                        m.insert(key.clone(), v.clone());
                    }
                    m
                })
            })
            .collect();
    }
    Some(out.into_iter().map(Value::Object).collect())
}

/// The arguments a parsed call stands for, to compare with what was sent.
fn args_of(call: AgentToolCall) -> Value {
    match call {
        AgentToolCall::RecordConsent { granted } => json!({"granted": granted}),
        AgentToolCall::ConfirmSignup { confirmed } => json!({"confirmed": confirmed}),
        AgentToolCall::RecordObjection { reason: None } => json!({}),
        AgentToolCall::RecordObjection { reason: Some(r) } => json!({"reason": r.as_str()}),
    }
}

/// Whether the tool's schema and the backend's parser agree: every sample is read back
/// as sent; without a required argument, with an argument of the wrong type, or with an
/// undeclared one, the parser refuses (and the schema forbids undeclared ones).
fn tool_schema_matches_parser(out: &mut Vec<Finding>, name: &str, tool: &Value) {
    let parameters = tool
        .get("parameters")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let Some(samples) = samples(&parameters) else {
        out.push(format!(
            "tool {name}: a parameter has a type the backend does not parse"
        ));
        return;
    };
    for sample in &samples {
        match AgentToolCall::parse(name, sample) {
            Ok(call) if args_of(call) == *sample => {}
            Ok(_) => out.push(format!(
                "tool {name}: the backend reads a sample differently from the schema"
            )),
            Err(e) => out.push(format!(
                "tool {name}: the backend refuses arguments the schema allows ({e})"
            )),
        }
    }
    let required: Vec<&str> = parameters
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for sample in samples.iter().filter_map(Value::as_object) {
        for key in sample.keys() {
            let mut broken = sample.clone();
            if required.contains(&key.as_str()) {
                broken.remove(key);
                if AgentToolCall::parse(name, &Value::Object(broken.clone())).is_ok() {
                    out.push(format!("tool {name}: the backend accepts a call without {key}, which the schema requires"));
                }
            }
            broken.insert(key.clone(), json!(7));
            if AgentToolCall::parse(name, &Value::Object(broken)).is_ok() {
                out.push(format!(
                    "tool {name}: the backend accepts {key} of another type"
                ));
            }
        }
        let mut extra = sample.clone();
        extra.insert("free_text".into(), json!("x"));
        if AgentToolCall::parse(name, &Value::Object(extra)).is_ok() {
            out.push(format!(
                "tool {name}: the backend accepts an undeclared argument"
            ));
        }
    }
    if parameters.get("additionalProperties") != Some(&json!(false)) {
        out.push(format!(
            "tool {name}: parameters must set additionalProperties: false (no free text)"
        ));
    }
}

/// Our promises (R2.8, R2.12, R7.3, R7.4), checked on the configuration as it will be
/// sent (placeholders filled in).
pub fn compliance(
    llm: &Value,
    agent: &Value,
    webhook_url: &str,
    patterns: &DisclosurePatterns,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };

    // The opening (R2.8, R7.4): the agent speaks first, and its first sentence discloses
    // the AI and the recording and asks whether the person signed up.
    if text(llm, "start_speaker") != "agent" {
        out.push(
            "start_speaker must be agent: the disclosure comes before anything the person says"
                .to_owned(),
        );
    }
    let begin = text(llm, "begin_message");
    if !compliance::discloses(&opening_call(&begin), patterns) {
        out.push("begin_message fails the AI and recording disclosure check".to_owned());
    }
    if !begin.contains(SIGNUP_QUESTION) {
        out.push("begin_message must ask the sign-up question word for word".to_owned());
    }

    // The consent question, asked before anything about the person's matter.
    let prompt = text(llm, "general_prompt");
    let consent_question = llm
        .pointer("/default_dynamic_variables/consent_question")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let recording_named = patterns
        .recording
        .iter()
        .any(|p| consent_question.to_lowercase().contains(&p.to_lowercase()));
    if !recording_named || !consent_question.trim_end().ends_with(['?', '.']) {
        out.push(
            "default_dynamic_variables.consent_question must ask about the recording".to_owned(),
        );
    }
    let position = |needle: &str| prompt.find(needle);
    match (
        position(CONFIRM_SIGNUP),
        position("{{consent_question}}"),
        position(RECORD_CONSENT),
        position(MATTER_MARKER),
    ) {
        (Some(confirm), Some(question), Some(consent), Some(matter))
            if confirm < question && question < consent && consent < matter => {}
        _ => out.push(format!(
            "general_prompt must confirm the sign-up, then ask {{{{consent_question}}}} and call record_consent, all before the person's {MATTER_MARKER}"
        )),
    }

    // The tools: exactly the backend's custom tools, at our webhook, plus end_call.
    let tools = llm
        .get("general_tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut custom = BTreeSet::new();
    let mut end_call = false;
    for tool in &tools {
        let name = text(tool, "name");
        match tool.get("type").and_then(Value::as_str) {
            Some("end_call") => end_call = true,
            Some("custom") => {
                custom.insert(name.clone());
                if !CUSTOM_TOOLS.contains(&name.as_str()) {
                    out.push(format!("tool {name} is not one the backend answers"));
                    continue;
                }
                if text(tool, "url") != webhook_url {
                    out.push(format!("tool {name} must call the webhook URL"));
                }
                if tool.get("speak_during_execution") != Some(&json!(false)) {
                    out.push(format!("tool {name}: speak_during_execution must be false"));
                }
                if tool.get("args_at_root") == Some(&json!(true)) {
                    out.push(format!(
                        "tool {name}: the backend reads the arguments under args"
                    ));
                }
                if int(tool, "timeout_ms").is_none_or(|t| t > 10_000) {
                    out.push(format!(
                        "tool {name}: timeout_ms must be set, at most 10 000"
                    ));
                }
                if int(tool, "max_retry").is_none() {
                    out.push(format!("tool {name}: max_retry must be set"));
                }
                tool_schema_matches_parser(&mut out, &name, tool);
            }
            _ => out.push(format!(
                "tool {name}: only custom and end_call tools are expected"
            )),
        }
    }
    for name in CUSTOM_TOOLS {
        if !custom.contains(name) {
            out.push(format!("tool {name} is missing"));
        }
    }
    if !end_call {
        out.push("an end_call tool is missing".to_owned());
    }

    // The agent: events to our webhook, nothing kept at the provider, German, a bounded
    // ring, no message left on a voicemail box (it would be a recording nobody consented to).
    if text(agent, "webhook_url") != webhook_url {
        out.push("webhook_url must be the webhook URL".to_owned());
    }
    if text(agent, "data_storage_setting") != DATA_STORAGE {
        out.push(format!("data_storage_setting must be {DATA_STORAGE}"));
    }
    if text(agent, "language") != "de-DE" {
        out.push("language must be de-DE".to_owned());
    }
    let (lo, hi) = RING_DURATION_MS;
    if int(agent, "ring_duration_ms").is_none_or(|r| !(lo..=hi).contains(&r)) {
        out.push(format!("ring_duration_ms must be set, in {lo}..={hi}"));
    }
    if int(agent, "max_call_duration_ms").is_none()
        || int(agent, "end_call_after_silence_ms").is_none()
    {
        out.push("max_call_duration_ms and end_call_after_silence_ms must be set".to_owned());
    }
    if agent
        .pointer("/voicemail_option/action/type")
        .and_then(Value::as_str)
        != Some("hangup")
    {
        out.push("voicemail_option must hang up".to_owned());
    }
    out
}

/// Both: the provider's limits first, then ours.
pub fn all(
    llm: &Value,
    agent: &Value,
    webhook_url: &str,
    patterns: &DisclosurePatterns,
) -> Vec<Finding> {
    let mut out = provider_limits(llm, agent);
    out.extend(compliance(llm, agent, webhook_url, patterns));
    out
}
