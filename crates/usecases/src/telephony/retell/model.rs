//! Webhook payloads, read leniently: every enum is open-ended, unknown fields are ignored,
//! optional fields may be missing or of an unexpected type. Only `event` and
//! `call.call_id` are required; without them a delivery is malformed.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use domain::LeadId;

/// Longest provider call id we accept (they are ~36 characters).
const MAX_CALL_ID: usize = 128;

/// A provider call id, checked to be safe inside a table key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CallId(String);

impl CallId {
    pub fn parse(input: &str) -> Option<Self> {
        let ok = !input.is_empty()
            && input.len() <= MAX_CALL_ID
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lifecycle events we process; anything else is acknowledged and ignored (R2.2).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleEvent {
    CallStarted,
    CallEnded,
    CallAnalyzed,
}

impl LifecycleEvent {
    pub fn parse(event: &str) -> Option<Self> {
        match event {
            "call_started" => Some(Self::CallStarted),
            "call_ended" => Some(Self::CallEnded),
            "call_analyzed" => Some(Self::CallAnalyzed),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::CallStarted => "call_started",
            Self::CallEnded => "call_ended",
            Self::CallAnalyzed => "call_analyzed",
        }
    }

    /// How complete the event's call object is: `call_analyzed` carries everything
    /// `call_ended` does plus the analysis; `call_ended` everything `call_started` does.
    pub fn completeness(self) -> u8 {
        match self {
            Self::CallStarted => 1,
            Self::CallEnded => 2,
            Self::CallAnalyzed => 3,
        }
    }
}

/// A parsed delivery, borrowing the large parts from the body.
pub enum Delivery<'a> {
    /// A lifecycle event of a call.
    Call(Box<CallEvent<'a>>),
    /// The agent's custom tool call (`{"name", "call", "args"}`).
    ToolCall {
        name: String,
        call_id: Option<CallId>,
        args: Value,
    },
    /// Another event type (`transcript_updated`, `transfer_*`, `chat_*`, new ones).
    Ignored,
}

/// The verbatim transcript fields, as the exact JSON text received: they are sealed as
/// they are, never parsed into a tree (a 60-minute call carries a megabyte of them).
#[derive(Default, Clone, Copy)]
pub struct RawTranscripts<'a> {
    pub transcript: Option<&'a RawValue>,
    pub transcript_object: Option<&'a RawValue>,
    pub transcript_with_tool_calls: Option<&'a RawValue>,
}

impl RawTranscripts<'_> {
    pub fn any(&self) -> bool {
        self.transcript.is_some()
            || self.transcript_object.is_some()
            || self.transcript_with_tool_calls.is_some()
    }

    /// `{"transcript": …, "transcript_object": …, "transcript_with_tool_calls": …}` built
    /// from the received text, absent fields as `null`.
    pub fn to_json(&self) -> String {
        fn part(v: Option<&RawValue>) -> &str {
            v.map(RawValue::get).unwrap_or("null")
        }
        let (a, b, c) = (
            part(self.transcript),
            part(self.transcript_object),
            part(self.transcript_with_tool_calls),
        );
        let mut out = String::with_capacity(a.len() + b.len() + c.len() + 80);
        out.push_str("{\"transcript\":");
        out.push_str(a);
        out.push_str(",\"transcript_object\":");
        out.push_str(b);
        out.push_str(",\"transcript_with_tool_calls\":");
        out.push_str(c);
        out.push('}');
        out
    }
}

/// A transcript turn without its per-word timings: what the decisions read.
#[derive(serde::Deserialize, serde::Serialize)]
struct Turn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Value>,
}

fn reduced_turns(raw: &RawValue) -> Value {
    match serde_json::from_str::<Vec<Turn>>(raw.get()) {
        Ok(turns) => serde_json::to_value(turns).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Why a delivery could not be read. Never carries payload content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("event is missing or not a string")]
    MissingEvent,
    #[error("call object or call id is missing or invalid")]
    MissingCall,
}

/// One lifecycle event of a call, with the fields we use.
pub struct CallEvent<'a> {
    pub event: LifecycleEvent,
    pub call_id: CallId,
    /// `metadata.lead_id`, set by us when we place the call.
    pub lead_id: Option<LeadId>,
    pub call_type: Option<String>,
    pub call_status: Option<String>,
    pub direction: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub disconnection_reason: Option<String>,
    /// The call object as delivered, except that the transcript turns carry no per-word
    /// timings and the plain `transcript` text is left out (see `transcripts`). Holds
    /// personal data: numbers, turn texts, the analysis.
    pub call: Map<String, Value>,
    /// The verbatim transcript fields, borrowed from the body.
    pub transcripts: RawTranscripts<'a>,
}

impl std::fmt::Debug for CallEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallEvent")
            .field("event", &self.event)
            .field("call_id", &self.call_id)
            .field("lead_id", &self.lead_id)
            .field("call_status", &self.call_status)
            .finish_non_exhaustive()
    }
}

/// A short label from the provider (status, reason, agent id): printable ASCII only and
/// bounded, so an open enum can be stored and reported without surprises.
fn label(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(s)
}

fn millis(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

/// Reads a webhook body (already verified). Only the small fields are parsed into
/// values; the transcript fields stay the received text.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery<'_>, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotAnObject)?;
    let root: HashMap<&str, &RawValue> =
        serde_json::from_str(text).map_err(|_| PayloadError::NotAnObject)?;
    let small =
        |raw: Option<&&RawValue>| raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok());
    if let Some(Value::String(name)) = small(root.get("name")) {
        let call_id = root
            .get("call")
            .and_then(|c| serde_json::from_str::<HashMap<&str, &RawValue>>(c.get()).ok())
            .and_then(|c| small(c.get("call_id")))
            .and_then(|v| v.as_str().and_then(CallId::parse));
        return Ok(Delivery::ToolCall {
            name,
            call_id,
            args: small(root.get("args")).unwrap_or(Value::Null),
        });
    }
    let Some(Value::String(event)) = small(root.get("event")) else {
        return Err(PayloadError::MissingEvent);
    };
    let Some(event) = LifecycleEvent::parse(&event) else {
        return Ok(Delivery::Ignored);
    };
    let raw_call: HashMap<&str, &RawValue> = root
        .get("call")
        .and_then(|c| serde_json::from_str(c.get()).ok())
        .ok_or(PayloadError::MissingCall)?;
    let mut transcripts = RawTranscripts::default();
    let mut call = Map::new();
    for (name, raw) in raw_call {
        match name {
            "transcript" => transcripts.transcript = Some(raw),
            "transcript_object" => transcripts.transcript_object = Some(raw),
            "transcript_with_tool_calls" => transcripts.transcript_with_tool_calls = Some(raw),
            _ => {
                if let Ok(v) = serde_json::from_str::<Value>(raw.get()) {
                    call.insert(name.to_owned(), v);
                }
            }
        }
    }
    // The decisions read the turns without word timings: the tool-call turns always, the
    // plain turns only when there is no consent tool call to delimit the opening.
    let with_tools = transcripts.transcript_with_tool_calls.map(reduced_turns);
    let has_consent_call = with_tools
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|turns| {
            turns.iter().any(|t| {
                t.get("name").and_then(Value::as_str)
                    == Some(crate::telephony::retell::compliance::CONSENT_TOOL)
            })
        });
    if let Some(turns) = with_tools {
        call.insert("transcript_with_tool_calls".to_owned(), turns);
    }
    if !has_consent_call {
        if let Some(raw) = transcripts.transcript_object {
            call.insert("transcript_object".to_owned(), reduced_turns(raw));
        }
    }
    let call_id = call
        .get("call_id")
        .and_then(Value::as_str)
        .and_then(CallId::parse)
        .ok_or(PayloadError::MissingCall)?;
    let lead_id = call
        .get("metadata")
        .and_then(|m| m.get("lead_id"))
        .and_then(Value::as_str)
        .and_then(|s| LeadId::parse(s).ok());
    Ok(Delivery::Call(Box::new(CallEvent {
        event,
        call_id,
        lead_id,
        call_type: label(call.get("call_type")),
        call_status: label(call.get("call_status")),
        direction: label(call.get("direction")),
        agent_id: label(call.get("agent_id")),
        agent_version: label(call.get("agent_version")),
        start_ms: millis(call.get("start_timestamp")),
        end_ms: millis(call.get("end_timestamp")),
        duration_ms: millis(call.get("duration_ms")),
        disconnection_reason: label(call.get("disconnection_reason")),
        call,
        transcripts,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R2.2, R2.4: a `call_ended` with unknown fields is read: event, call id, the lead id
    /// from `metadata.lead_id`, agent version, duration; its Debug hides the numbers.
    #[test]
    fn reads_a_call_event_and_ignores_unknown_fields() {
        let id = LeadId::new();
        let body = serde_json::json!({
            "event": "call_ended",
            "call": {
                "call_id": "call_0123abcd", "call_type": "phone_call", "agent_id": "agent_1",
                "agent_version": 3, "call_status": "ended", "direction": "outbound",
                "from_number": "+4930123", "to_number": "+49170", "metadata": {"lead_id": id.to_string()},
                "start_timestamp": 1_700_000_000_000_i64, "end_timestamp": 1_700_000_060_000_i64,
                "duration_ms": 60000, "disconnection_reason": "user_hangup",
                "brand_new_field": {"x": [1, 2]}
            },
            "another_new_field": true
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let Delivery::Call(e) = parse_delivery(&bytes).unwrap() else {
            panic!("a call event")
        };
        assert_eq!(e.event, LifecycleEvent::CallEnded);
        assert_eq!(e.call_id.as_str(), "call_0123abcd");
        assert_eq!(e.lead_id, Some(id));
        assert_eq!(e.agent_version.as_deref(), Some("3"));
        assert_eq!(e.duration_ms, Some(60000));
        assert!(!format!("{e:?}").contains("+49170"), "Debug hides numbers");
    }

    /// R2.2: events other than the three lifecycle ones are recognised as ignorable; bodies
    /// that are not a JSON object, lack the event or lack a valid call are rejected.
    #[test]
    fn other_events_are_ignored_and_broken_ones_rejected() {
        for event in [
            "transcript_updated",
            "transfer_started",
            "chat_ended",
            "something_new",
        ] {
            let body = format!(r#"{{"event":"{event}","chat":{{}}}}"#);
            assert!(matches!(
                parse_delivery(body.as_bytes()),
                Ok(Delivery::Ignored)
            ));
        }
        assert_eq!(parse_delivery(b"[]").err(), Some(PayloadError::NotAnObject));
        assert_eq!(
            parse_delivery(b"not json").err(),
            Some(PayloadError::NotAnObject)
        );
        assert_eq!(
            parse_delivery(br#"{"call":{}}"#).err(),
            Some(PayloadError::MissingEvent)
        );
        assert_eq!(
            parse_delivery(br#"{"event":"call_ended"}"#).err(),
            Some(PayloadError::MissingCall)
        );
        assert_eq!(
            parse_delivery(br#"{"event":"call_ended","call":{"call_id":"../../x"}}"#).err(),
            Some(PayloadError::MissingCall)
        );
    }

    /// R2.2: missing optional fields and odd types of optional fields are tolerated (read as
    /// absent).
    #[test]
    fn missing_optional_fields_and_odd_types_are_tolerated() {
        let body = br#"{"event":"call_started","call":{"call_id":"c1","agent_version":{"odd":1},"metadata":{"lead_id":"not-a-uuid"},"start_timestamp":"soon"}}"#;
        let Delivery::Call(e) = parse_delivery(body).unwrap() else {
            panic!()
        };
        assert_eq!(e.agent_version, None);
        assert_eq!(e.lead_id, None);
        assert_eq!(e.start_ms, None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_delivery(&body);
        }
    }
}
