//! The configuration files (`infra/agent/llm.json`, `infra/agent/agent.json`) and their
//! placeholders.
//!
//! The files are the request bodies the provider receives, with `${NAME}` placeholders for
//! what differs per environment: `${POLLY_WEBHOOK_URL}` (the API's
//! `/v1/telephony/retell`) and `${RETELL_LLM_ID}` (known once the LLM exists). The
//! provider's own `{{variable}}` syntax (dynamic variables) is left alone.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The webhook URL placeholder.
pub const WEBHOOK_URL: &str = "POLLY_WEBHOOK_URL";
/// The LLM id placeholder.
pub const LLM_ID: &str = "RETELL_LLM_ID";

/// The two request bodies, as stored (placeholders not filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The Retell LLM: prompt, begin message, tools.
    pub llm: Value,
    /// The agent: voice, webhook, storage, ring time.
    pub agent: Value,
}

impl AgentConfig {
    /// Reads `llm.json` and `agent.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<Value> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
        };
        Ok(Self {
            llm: read("llm.json")?,
            agent: read("agent.json")?,
        })
    }

    /// The agent's name, which finds it at the provider when no id is given.
    pub fn agent_name(&self) -> Option<&str> {
        self.agent.get("agent_name").and_then(Value::as_str)
    }
}

/// Replaces every `${NAME}` in every string of `value` with `vars[NAME]`; a placeholder
/// without a value is an error (nothing half-filled is ever sent).
pub fn fill(value: &Value, vars: &BTreeMap<&str, String>) -> Result<Value> {
    Ok(match value {
        Value::String(s) => Value::String(fill_str(s, vars)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill(v, vars)).collect::<Result<_>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, vars)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

fn fill_str(s: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("an unterminated ${{ placeholder");
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => bail!("placeholder ${{{name}}} has no value"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_everywhere_and_dynamic_variables_left_alone() {
        let vars = BTreeMap::from([(
            WEBHOOK_URL,
            "https://api.example/v1/telephony/retell".to_owned(),
        )]);
        let v = json!({"a": ["${POLLY_WEBHOOK_URL}", {"b": "x ${POLLY_WEBHOOK_URL} y"}], "c": "{{first_name}}", "n": 3});
        assert_eq!(
            fill(&v, &vars).unwrap(),
            json!({"a": ["https://api.example/v1/telephony/retell", {"b": "x https://api.example/v1/telephony/retell y"}], "c": "{{first_name}}", "n": 3})
        );
    }

    #[test]
    fn a_placeholder_without_value_is_an_error() {
        let e = fill(&json!({"a": "${RETELL_LLM_ID}"}), &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("RETELL_LLM_ID"), "{e}");
        assert!(fill(&json!("${OPEN"), &BTreeMap::new()).is_err());
    }
}
