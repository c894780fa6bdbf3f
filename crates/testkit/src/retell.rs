//! Provider (RetellAI) call objects and webhook bodies for tests: one call as the provider
//! sends it, with or without the AI disclosure and the recording consent, and its
//! lifecycle events (`call_started` carries less than `call_ended`, which carries less
//! than `call_analyzed`). Shared by the moto-backed tests and the tests on fakes.

use domain::LeadId;
use serde_json::{json, Value};

/// An opening that discloses the AI and asks for the recording consent.
pub const OPENING_OK: &str = "Hallo, hier ist Polly, eine digitale Assistentin mit künstlicher Intelligenz (KI). Dieses Gespräch wird aufgezeichnet. Sind Sie damit einverstanden?";
/// An opening without the disclosure.
pub const OPENING_NO_DISCLOSURE: &str = "Hallo, hier ist Polly von der Firma. Haben Sie kurz Zeit?";
/// Something personal the person says; it must never reach a log or a plain attribute.
pub const USER_SECRET: &str = "Meine Kundennummer ist Zwetschge-4711.";
/// The number called (E.164).
pub const PHONE: &str = "+491709876543";
pub const FIRST_NAME: &str = "Wilhelmine";
pub const RECORDING_URL: &str = "https://recordings.example/r/4f2a.wav";

/// How the person consented to the recording in the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// The agent's `record_consent` tool call says yes.
    ToolYes,
    /// The agent's `record_consent` tool call says no.
    ToolNo,
    /// No tool call; `call_analyzed`'s custom analysis data says yes.
    AnalysisYes,
    /// No tool call; `call_analyzed`'s custom analysis data says no.
    AnalysisNo,
    /// Neither says anything.
    Never,
}

impl Consent {
    /// Every consent path, and whether it ends in a kept recording (with disclosure). An
    /// analysis-only yes keeps nothing: it has no consent answer to cut at (R7.5).
    pub const ALL: [(Consent, bool); 5] = [
        (Consent::ToolYes, true),
        (Consent::ToolNo, false),
        (Consent::AnalysisYes, false),
        (Consent::AnalysisNo, false),
        (Consent::Never, false),
    ];
}

/// A finished call to `lead`'s number as the provider reports it in `call_analyzed`.
pub fn call_object(call_id: &str, lead: &LeadId, consent: Consent, disclosure: bool) -> Value {
    let opening = if disclosure {
        OPENING_OK
    } else {
        OPENING_NO_DISCLOSURE
    };
    let mut turns = vec![
        json!({"role": "agent", "content": opening, "words": [{"word": "Hallo", "start": 0.1, "end": 0.4}]}),
        json!({"role": "user", "content": "Ja, das ist in Ordnung.", "words": [
            {"word": "Ja,", "start": 9.5, "end": 9.8}, {"word": "das", "start": 9.9, "end": 10.1},
            {"word": "ist", "start": 10.2, "end": 10.4}, {"word": "in", "start": 10.5, "end": 10.6},
            {"word": "Ordnung.", "start": 10.7, "end": 11.2}]}),
    ];
    let mut with_tools = turns.clone();
    if matches!(consent, Consent::ToolYes | Consent::ToolNo) {
        let args = if consent == Consent::ToolYes {
            r#"{"granted": true}"#
        } else {
            r#"{"granted": false}"#
        };
        with_tools.push(json!({"role": "tool_call_invocation", "tool_call_id": "tc1", "name": "record_consent", "arguments": args}));
        with_tools
            .push(json!({"role": "tool_call_result", "tool_call_id": "tc1", "content": "ok"}));
    }
    // Said after the consent answer (R7.5: kept from the cut point at 9.5 s on).
    let secret_words = json!([{"word": USER_SECRET, "start": 14.0, "end": 16.5}]);
    turns.push(json!({"role": "user", "content": USER_SECRET, "words": secret_words}));
    with_tools.push(json!({"role": "user", "content": USER_SECRET, "words": secret_words}));
    let custom = match consent {
        Consent::AnalysisYes => json!({"recording_consent": true}),
        Consent::AnalysisNo => json!({"recording_consent": false}),
        _ => json!({}),
    };
    json!({
        "call_id": call_id,
        "call_type": "phone_call",
        "agent_id": "agent_polly",
        "agent_version": 7,
        "call_status": "ended",
        "direction": "outbound",
        "from_number": "+4930901820",
        "to_number": PHONE,
        "metadata": {"lead_id": lead.to_string()},
        "retell_llm_dynamic_variables": {"first_name": FIRST_NAME},
        "start_timestamp": 1_795_860_000_000_i64,
        "end_timestamp": 1_795_860_300_000_i64,
        "duration_ms": 300_000,
        "disconnection_reason": "user_hangup",
        "transcript": format!("Agent: {opening}\nUser: Ja, das ist in Ordnung.\nUser: {USER_SECRET}"),
        "transcript_object": turns,
        "transcript_with_tool_calls": with_tools,
        "recording_url": RECORDING_URL,
        "data_storage_setting": "basic_attributes_only",
        "call_analysis": {"call_summary": "Interessent möchte ein Angebot.", "user_sentiment": "Positive", "call_successful": true, "custom_analysis_data": custom},
        "call_cost": {"combined_cost": 12},
        "a_field_from_the_future": {"nested": [1, 2, 3]}
    })
}

/// The webhook body of a lifecycle event of `call`, with what that event carries.
pub fn event(kind: &str, call: &Value) -> Vec<u8> {
    let mut call = call.clone();
    let obj = call.as_object_mut().unwrap();
    match kind {
        "call_started" => {
            for f in [
                "end_timestamp",
                "duration_ms",
                "disconnection_reason",
                "transcript",
                "transcript_object",
                "transcript_with_tool_calls",
                "recording_url",
                "call_analysis",
            ] {
                obj.remove(f);
            }
            obj.insert("call_status".into(), json!("ongoing"));
        }
        "call_ended" => {
            obj.remove("call_analysis");
        }
        _ => {}
    }
    serde_json::to_vec(&json!({"event": kind, "call": call})).unwrap()
}

/// Orders in which the provider may deliver a call's events: every permutation, with
/// duplicates and with gaps. Each must converge to the same stored call.
pub fn delivery_orders() -> Vec<Vec<&'static str>> {
    vec![
        vec!["call_started", "call_ended", "call_analyzed"],
        vec!["call_started", "call_analyzed", "call_ended"],
        vec!["call_ended", "call_started", "call_analyzed"],
        vec!["call_ended", "call_analyzed", "call_started"],
        vec!["call_analyzed", "call_started", "call_ended"],
        vec!["call_analyzed", "call_ended", "call_started"],
        vec![
            "call_started",
            "call_started",
            "call_ended",
            "call_ended",
            "call_analyzed",
            "call_analyzed",
        ],
        vec![
            "call_analyzed",
            "call_ended",
            "call_analyzed",
            "call_started",
            "call_ended",
        ],
    ]
}

/// The start of the person's consent answer in [`call_object`], in ms (R7.5).
pub const CUT_MS: u64 = 9_500;
