//! Decisions taken from a call's content, before anything of it is kept.
//!
//! Recording consent (R2.6, §201 StGB): the answer comes from the agent's `record_consent`
//! tool call in `transcript_with_tool_calls` (`arguments` = `{"granted": true|false}`, the
//! last call wins), else from `call_analysis.custom_analysis_data.recording_consent`; if
//! neither says yes, consent is not given.
//!
//! AI disclosure (R2.8): the agent's opening, its turns before the person answers the
//! consent question, must say that it is an AI and that the call is recorded. The opening
//! ends at the person's first answer (their first non-empty turn after the agent has
//! spoken) or at the `record_consent` call, whichever comes first: a disclosure after the
//! person said yes does not count, even when the tool call follows it. What the person
//! says before the agent's first word (picking up with "Hallo?") answers nothing.

use serde_json::{Map, Value};

/// Name of the agent's consent tool.
pub const CONSENT_TOOL: &str = super::tools::RECORD_CONSENT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    ToolCall,
    CallAnalysis,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentDecision {
    pub granted: bool,
    pub source: ConsentSource,
}

fn consent_from_arguments(arguments: &Value) -> Option<bool> {
    // `arguments` is a JSON string; tolerate an object too.
    let parsed = match arguments {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        other => other.clone(),
    };
    parsed.get("granted")?.as_bool()
}

fn turns(call: &Map<String, Value>) -> &[Value] {
    call.get("transcript_with_tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn is_consent_invocation(turn: &Value) -> bool {
    turn.get("role").and_then(Value::as_str) == Some("tool_call_invocation")
        && turn.get("name").and_then(Value::as_str) == Some(CONSENT_TOOL)
}

/// The consent decision for a call object.
pub fn recording_consent(call: &Map<String, Value>) -> ConsentDecision {
    let from_tool = turns(call)
        .iter()
        .rev()
        .filter(|t| is_consent_invocation(t))
        .find_map(|t| t.get("arguments").and_then(consent_from_arguments));
    if let Some(granted) = from_tool {
        return ConsentDecision {
            granted,
            source: ConsentSource::ToolCall,
        };
    }
    let from_analysis = call
        .get("call_analysis")
        .and_then(|a| a.get("custom_analysis_data"))
        .and_then(|d| d.get("recording_consent"))
        .and_then(Value::as_bool);
    match from_analysis {
        Some(granted) => ConsentDecision {
            granted,
            source: ConsentSource::CallAnalysis,
        },
        None => ConsentDecision {
            granted: false,
            source: ConsentSource::None,
        },
    }
}

/// Phrases that make up the disclosure; each group needs one match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosurePatterns {
    /// "this is an AI": matched case-insensitively, except all-capital patterns of up
    /// to three letters (`KI`), which must appear as a whole word in capitals.
    pub ai: Vec<String>,
    /// "the call is recorded".
    pub recording: Vec<String>,
}

impl Default for DisclosurePatterns {
    fn default() -> Self {
        Self {
            ai: vec![
                "KI".into(),
                "künstliche Intelligenz".into(),
                "digitale Assistentin".into(),
            ],
            recording: vec!["aufgezeichnet".into(), "Aufzeichnung".into()],
        }
    }
}

fn matches(text: &str, pattern: &str) -> bool {
    let is_acronym = pattern.len() <= 3 && pattern.chars().all(|c| c.is_uppercase());
    if is_acronym {
        text.split(|c: char| !c.is_alphanumeric())
            .any(|w| w == pattern)
    } else {
        text.to_lowercase().contains(&pattern.to_lowercase())
    }
}

/// The agent's opening: its turns before the consent answer (see module docs).
pub fn opening(call: &Map<String, Value>) -> String {
    let with_tools = turns(call);
    let source: &[Value] = if with_tools.is_empty() {
        call.get("transcript_object")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    } else {
        with_tools
    };
    let mut text = String::new();
    let mut agent_spoke = false;
    for turn in source {
        if is_consent_invocation(turn) {
            break;
        }
        let content = turn
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match turn.get("role").and_then(Value::as_str) {
            Some("agent") => {
                agent_spoke |= !content.trim().is_empty();
                text.push_str(content);
                text.push('\n');
            }
            Some("user") if agent_spoke && !content.trim().is_empty() => break,
            _ => {}
        }
    }
    text
}

/// Whether the opening discloses both that the caller is an AI and that it records.
pub fn discloses(call: &Map<String, Value>, patterns: &DisclosurePatterns) -> bool {
    let text = opening(call);
    patterns.ai.iter().any(|p| matches(&text, p))
        && patterns.recording.iter().any(|p| matches(&text, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    const OPENING: &str = "Hallo, hier ist Polly, eine digitale Assistentin mit künstlicher Intelligenz (KI). Dieses Gespräch wird aufgezeichnet. Sind Sie einverstanden?";

    fn with_tool(granted: &str) -> Value {
        json!({"transcript_with_tool_calls": [
            {"role": "agent", "content": OPENING},
            {"role": "user", "content": "Ja."},
            {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "record_consent", "arguments": granted},
            {"role": "tool_call_result", "tool_call_id": "t1", "content": "ok"},
            {"role": "agent", "content": "Danke."}
        ]})
    }

    /// R2.6: the `record_consent` tool call decides (source `tool_call`), and its "no"
    /// outweighs a "yes" in the call analysis.
    #[test]
    fn consent_comes_from_the_tool_call_first() {
        let c = call(with_tool(r#"{"granted": true}"#));
        assert_eq!(
            recording_consent(&c),
            ConsentDecision {
                granted: true,
                source: ConsentSource::ToolCall
            }
        );
        let mut c = call(with_tool(r#"{"granted": false}"#));
        c.insert(
            "call_analysis".into(),
            json!({"custom_analysis_data": {"recording_consent": true}}),
        );
        assert_eq!(
            recording_consent(&c),
            ConsentDecision {
                granted: false,
                source: ConsentSource::ToolCall
            }
        );
    }

    /// R2.6: of several `record_consent` calls the last answer counts.
    #[test]
    fn the_last_tool_call_wins() {
        let mut v = with_tool(r#"{"granted": true}"#);
        v["transcript_with_tool_calls"].as_array_mut().unwrap().push(
            json!({"role": "tool_call_invocation", "tool_call_id": "t2", "name": "record_consent", "arguments": "{\"granted\": false}"}),
        );
        assert!(!recording_consent(&call(v)).granted);
    }

    /// R2.6: without a tool call the analysis' `recording_consent` decides (source
    /// `call_analysis`); no answer, a non-boolean, unparsable arguments or another tool mean no.
    #[test]
    fn analysis_is_the_fallback_and_nothing_means_no() {
        let c =
            call(json!({"call_analysis": {"custom_analysis_data": {"recording_consent": true}}}));
        assert_eq!(
            recording_consent(&c),
            ConsentDecision {
                granted: true,
                source: ConsentSource::CallAnalysis
            }
        );
        for v in [
            json!({}),
            json!({"call_analysis": {"custom_analysis_data": {"recording_consent": "yes"}}}),
            json!({"transcript_with_tool_calls": [{"role": "tool_call_invocation", "name": "record_consent", "arguments": "not json"}]}),
            json!({"transcript_with_tool_calls": [{"role": "tool_call_invocation", "name": "other_tool", "arguments": "{\"granted\": true}"}]}),
        ] {
            assert!(!recording_consent(&call(v.clone())).granted, "{v}");
        }
    }

    /// R2.8: the German default patterns find the AI and recording disclosure in the agent's
    /// opening, with or without tool calls in the transcript.
    #[test]
    fn disclosure_in_the_opening_is_found() {
        assert!(discloses(
            &call(with_tool(r#"{"granted": true}"#)),
            &DisclosurePatterns::default()
        ));
        let transcript_only = json!({"transcript_object": [
            {"role": "agent", "content": "Guten Tag, ich bin eine KI. Das Gespräch wird zur Qualitätssicherung aufgezeichnet."},
            {"role": "user", "content": "Okay."}
        ]});
        assert!(discloses(
            &call(transcript_only),
            &DisclosurePatterns::default()
        ));
    }

    /// R2.8: a disclosure after the person's first answer is a missing disclosure, even
    /// when the consent tool call comes after it (before the fix this counted).
    #[test]
    fn disclosure_after_the_persons_yes_is_missing_even_before_the_tool_call() {
        let late = json!({"transcript_with_tool_calls": [
            {"role": "agent", "content": "Guten Tag, hier ist Polly. Darf ich das Gespräch aufnehmen?"},
            {"role": "user", "content": "Ja."},
            {"role": "agent", "content": "Ich bin eine KI, das Gespräch wird aufgezeichnet."},
            {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "record_consent", "arguments": "{\"granted\": true}"}
        ]});
        assert!(!discloses(&call(late), &DisclosurePatterns::default()));
    }

    /// R2.8: the person picking up ("Hallo?") before the agent's first word answers
    /// nothing; silent turns are no answer either.
    #[test]
    fn a_greeting_before_the_agent_speaks_and_silence_are_no_answer() {
        let v = json!({"transcript_with_tool_calls": [
            {"role": "user", "content": "Hallo?"},
            {"role": "agent", "content": "Hier ist Polly, eine KI."},
            {"role": "user", "content": "  "},
            {"role": "agent", "content": "Das Gespräch wird aufgezeichnet. Einverstanden?"},
            {"role": "user", "content": "Ja."},
            {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "record_consent", "arguments": "{\"granted\": true}"}
        ]});
        assert!(discloses(&call(v), &DisclosurePatterns::default()));
    }

    /// R2.8: a disclosure after the person's first answer, one naming only the AI, and "KI"
    /// inside another word do not count; an empty call has none.
    #[test]
    fn disclosure_after_the_answer_or_half_of_it_does_not_count() {
        let late = json!({"transcript_object": [
            {"role": "agent", "content": "Guten Tag, hier ist Polly."},
            {"role": "user", "content": "Hallo?"},
            {"role": "agent", "content": "Ich bin eine KI, das Gespräch wird aufgezeichnet."}
        ]});
        assert!(!discloses(&call(late), &DisclosurePatterns::default()));
        let only_ai =
            json!({"transcript_object": [{"role": "agent", "content": "Ich bin eine KI."}]});
        assert!(!discloses(&call(only_ai), &DisclosurePatterns::default()));
        let kinder = json!({"transcript_object": [{"role": "agent", "content": "Für Kinder wird nichts aufgezeichnet."}]});
        assert!(
            !discloses(&call(kinder), &DisclosurePatterns::default()),
            "KI only as a word"
        );
        assert!(!discloses(&call(json!({})), &DisclosurePatterns::default()));
    }
}
