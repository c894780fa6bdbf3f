//! The agent's custom tools: their names and the arguments the backend accepts (R7.4).
//!
//! The names are the ones the agent configuration in `infra/agent/llm.json` declares and
//! the webhook dispatches on; they are defined here once. [`AgentToolCall::parse`] reads a
//! tool call's `args` strictly: exactly the fields the tool's JSON schema declares, of
//! the declared types, nothing else. The objection carries no free text (a reason is one
//! of a closed set), so nothing the person says reaches the backend through a tool call.

use serde_json::Value;

/// Recording consent (R2.6): `{"granted": bool}`.
pub const RECORD_CONSENT: &str = "record_consent";
/// "Keine Anrufe mehr" (R7.1): `{}` or `{"reason": <ObjectionReason>}`.
pub const RECORD_OBJECTION: &str = "record_objection";
/// "Sie hatten sich auf unserer Website angemeldet — ist das richtig?" (R7.1, R7.4):
/// `{"confirmed": bool}`.
pub const CONFIRM_SIGNUP: &str = "confirm_signup";

/// Every custom tool the webhook answers, in the order of the conversation.
pub const CUSTOM_TOOLS: [&str; 3] = [CONFIRM_SIGNUP, RECORD_CONSENT, RECORD_OBJECTION];

/// Why the person objects; a closed set, no free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectionReason {
    /// The person wants no more calls.
    NoMoreCalls,
    /// The person objects to any use of their data for contact.
    NoContact,
}

impl ObjectionReason {
    /// Every reason, as the schema's `enum` lists them.
    pub const ALL: [ObjectionReason; 2] =
        [ObjectionReason::NoMoreCalls, ObjectionReason::NoContact];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectionReason::NoMoreCalls => "no_more_calls",
            ObjectionReason::NoContact => "no_contact",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A tool call the backend understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentToolCall {
    /// The answer to the recording-consent question.
    RecordConsent { granted: bool },
    /// The person wants no more calls.
    RecordObjection { reason: Option<ObjectionReason> },
    /// The answer to "Sie hatten sich … angemeldet — ist das richtig?".
    ConfirmSignup { confirmed: bool },
}

/// Why a tool call was refused; no value of the arguments is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ToolArgsError {
    #[error("unknown tool")]
    UnknownTool,
    #[error("arguments must be a JSON object")]
    NotAnObject,
    #[error("a required argument is missing or has the wrong type")]
    MissingOrWrongType,
    #[error("an argument the tool does not declare")]
    UnexpectedArgument,
}

impl AgentToolCall {
    /// Reads the call of tool `name` with `args` (the `args` object of the request).
    pub fn parse(name: &str, args: &Value) -> Result<Self, ToolArgsError> {
        let declared: &[&str] = match name {
            RECORD_CONSENT => &["granted"],
            RECORD_OBJECTION => &["reason"],
            CONFIRM_SIGNUP => &["confirmed"],
            _ => return Err(ToolArgsError::UnknownTool),
        };
        let fields = args.as_object().ok_or(ToolArgsError::NotAnObject)?;
        if fields.keys().any(|k| !declared.contains(&k.as_str())) {
            return Err(ToolArgsError::UnexpectedArgument);
        }
        let flag = |key: &str| {
            fields
                .get(key)
                .and_then(Value::as_bool)
                .ok_or(ToolArgsError::MissingOrWrongType)
        };
        Ok(match name {
            RECORD_CONSENT => AgentToolCall::RecordConsent {
                granted: flag("granted")?,
            },
            CONFIRM_SIGNUP => AgentToolCall::ConfirmSignup {
                confirmed: flag("confirmed")?,
            },
            _ => AgentToolCall::RecordObjection {
                reason: match fields.get("reason") {
                    None => None,
                    Some(v) => Some(
                        v.as_str()
                            .and_then(ObjectionReason::parse)
                            .ok_or(ToolArgsError::MissingOrWrongType)?,
                    ),
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_tool_reads_its_own_arguments() {
        assert_eq!(
            AgentToolCall::parse(RECORD_CONSENT, &json!({"granted": false})),
            Ok(AgentToolCall::RecordConsent { granted: false })
        );
        assert_eq!(
            AgentToolCall::parse(CONFIRM_SIGNUP, &json!({"confirmed": true})),
            Ok(AgentToolCall::ConfirmSignup { confirmed: true })
        );
        assert_eq!(
            AgentToolCall::parse(RECORD_OBJECTION, &json!({})),
            Ok(AgentToolCall::RecordObjection { reason: None })
        );
        assert_eq!(
            AgentToolCall::parse(RECORD_OBJECTION, &json!({"reason": "no_contact"})),
            Ok(AgentToolCall::RecordObjection {
                reason: Some(ObjectionReason::NoContact)
            })
        );
    }

    #[test]
    fn free_text_wrong_types_and_other_tools_are_refused() {
        use ToolArgsError::*;
        for (name, args, error) in [
            ("end_call", json!({}), UnknownTool),
            (RECORD_CONSENT, json!("granted"), NotAnObject),
            (RECORD_CONSENT, json!({}), MissingOrWrongType),
            (
                RECORD_CONSENT,
                json!({"granted": "true"}),
                MissingOrWrongType,
            ),
            (CONFIRM_SIGNUP, json!({"granted": true}), UnexpectedArgument),
            (
                RECORD_OBJECTION,
                json!({"reason": "Ich will nicht"}),
                MissingOrWrongType,
            ),
            (RECORD_OBJECTION, json!({"note": "x"}), UnexpectedArgument),
        ] {
            assert_eq!(
                AgentToolCall::parse(name, &args),
                Err(error),
                "{name} {args}"
            );
        }
    }
}
