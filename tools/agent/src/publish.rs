//! Creates or updates the LLM and the agent at the provider, idempotently.
//!
//! Ids come from the caller (`--llm-id`, `--agent-id` or the environment); without an
//! agent id the agent is found by its `agent_name` (`POST /v2/list-agents`), and without
//! an LLM id the agent's LLM is used. Only fields that differ from what the provider holds
//! are sent (`PATCH`), so a second run changes nothing and creates nothing.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

/// What happened (or, in a dry run, would happen) to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated(Vec<String>),
    Unchanged,
    WouldCreate,
    WouldUpdate(Vec<String>),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Created => f.write_str("created"),
            Action::Updated(fields) => write!(f, "updated ({})", fields.join(", ")),
            Action::Unchanged => f.write_str("unchanged"),
            Action::WouldCreate => f.write_str("would be created"),
            Action::WouldUpdate(fields) => write!(f, "would be updated ({})", fields.join(", ")),
        }
    }
}

/// The provider's API with one key. The key is sent as a bearer token and never
/// printed; error messages carry the method, the path, the status and the provider's
/// message only.
pub struct Api {
    http: reqwest::Client,
    base_url: String,
    key: SecretString,
}

impl Api {
    /// `base_url` must be `https://`, or `http://` on loopback (the local simulator).
    pub fn new(base_url: &str, key: SecretString) -> Result<Self> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| base_url.starts_with(p));
        if !base_url.starts_with("https://") && !loopback {
            bail!("RETELL_API_BASE_URL must be https:// (or http:// on loopback)");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base_url,
            key,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url))
            .bearer_auth(self.key.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            anyhow!(
                "{method} {path}: no answer from the provider ({})",
                e.without_url()
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            let message: String = message.chars().take(200).collect();
            bail!("{method} {path}: the provider answered {status}: {message}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: the answer is not JSON"))
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
}

/// Whether `have` holds everything `want` says: objects field by field (the provider adds
/// defaults, which are not a difference), arrays element by element, the rest equal.
fn holds(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| holds(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| holds(a, b))
        }
        (w, h) => w == h,
    }
}

/// The top-level fields of `want` that `have` does not hold, by name.
pub fn changed_fields(want: &Value, have: &Value) -> Vec<String> {
    want.as_object()
        .map(|w| {
            w.iter()
                .filter(|(k, v)| !have.get(k.as_str()).is_some_and(|h| holds(v, h)))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn only(want: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = want.get(f) {
            out.insert(f.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn id_of(v: &Value, field: &str) -> Result<String> {
    v.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the provider's answer has no {field}"))
}

/// The agent named `name`, if exactly one has that name.
pub async fn find_agent(api: &Api, name: &str) -> Result<Option<String>> {
    let mut found = Vec::new();
    let mut pagination_key: Option<String> = None;
    loop {
        let path = match &pagination_key {
            Some(k) => format!("/v2/list-agents?limit=1000&pagination_key={k}"),
            None => "/v2/list-agents?limit=1000".to_owned(),
        };
        let page = api
            .post(&path, &json!({"filter_criteria": {"query": name}}))
            .await?;
        for item in page
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if item.get("agent_name").and_then(Value::as_str) == Some(name) {
                found.push(id_of(item, "agent_id")?);
            }
        }
        pagination_key = page
            .get("pagination_key")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if page.get("has_more") != Some(&json!(true)) || pagination_key.is_none() {
            break;
        }
    }
    found.dedup();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => bail!("{n} agents are named like the configuration; pass --agent-id"),
    }
}

/// The ids the caller knows (from arguments or the environment).
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub llm_id: Option<String>,
    pub agent_id: Option<String>,
}

/// How to run: `dry_run` sends nothing that changes the provider (reads only);
/// `publish` publishes the agent's draft version afterwards.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    pub dry_run: bool,
    pub publish: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub llm_id: Option<String>,
    pub agent_id: Option<String>,
    pub llm: Action,
    pub agent: Action,
    /// The version published, when one was.
    pub published_version: Option<i64>,
    /// What would be sent (dry run): the bodies of the creates and updates.
    pub would_send: Vec<(String, Value)>,
}

/// Brings the provider to the configuration. `llm` has its placeholders filled; `agent`
/// is filled by `fill_agent` once the LLM id is known.
pub async fn apply(
    api: &Api,
    llm: &Value,
    agent_name: Option<&str>,
    fill_agent: &dyn Fn(&str) -> Result<Value>,
    ids: Ids,
    mode: Mode,
) -> Result<Outcome> {
    let Ids {
        mut llm_id,
        mut agent_id,
    } = ids;
    let Mode { dry_run, publish } = mode;
    let mut would_send = Vec::new();
    if agent_id.is_none() {
        if let Some(name) = agent_name {
            agent_id = find_agent(api, name).await?;
        }
    }
    let current_agent = match &agent_id {
        Some(id) => Some(api.get(&format!("/get-agent/{id}")).await?),
        None => None,
    };
    if llm_id.is_none() {
        llm_id = current_agent
            .as_ref()
            .filter(|a| {
                a.pointer("/response_engine/type").and_then(Value::as_str) == Some("retell-llm")
            })
            .and_then(|a| a.pointer("/response_engine/llm_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }

    let llm_action = match &llm_id {
        Some(id) => {
            let have = api.get(&format!("/get-retell-llm/{id}")).await?;
            let changed = changed_fields(llm, &have);
            if changed.is_empty() {
                Action::Unchanged
            } else if dry_run {
                would_send.push((
                    format!("PATCH /update-retell-llm/{id}"),
                    only(llm, &changed),
                ));
                Action::WouldUpdate(changed)
            } else {
                api.patch(&format!("/update-retell-llm/{id}"), &only(llm, &changed))
                    .await?;
                Action::Updated(changed)
            }
        }
        None if dry_run => {
            would_send.push(("POST /create-retell-llm".to_owned(), llm.clone()));
            Action::WouldCreate
        }
        None => {
            let created = api.post("/create-retell-llm", llm).await?;
            llm_id = Some(id_of(&created, "llm_id")?);
            Action::Created
        }
    };

    let agent = fill_agent(llm_id.as_deref().unwrap_or("<the new LLM>"))?;
    let agent_action = match (&agent_id, &current_agent) {
        (Some(id), Some(have)) => {
            let changed = changed_fields(&agent, have);
            if changed.is_empty() {
                Action::Unchanged
            } else if dry_run {
                would_send.push((format!("PATCH /update-agent/{id}"), only(&agent, &changed)));
                Action::WouldUpdate(changed)
            } else {
                api.patch(&format!("/update-agent/{id}"), &only(&agent, &changed))
                    .await?;
                Action::Updated(changed)
            }
        }
        _ if dry_run => {
            would_send.push(("POST /create-agent".to_owned(), agent.clone()));
            Action::WouldCreate
        }
        _ => {
            let created = api.post("/create-agent", &agent).await?;
            agent_id = Some(id_of(&created, "agent_id")?);
            Action::Created
        }
    };

    let mut published_version = None;
    if publish && !dry_run {
        if let Some(id) = &agent_id {
            let now = api.get(&format!("/get-agent/{id}")).await?;
            if now.get("is_published") != Some(&json!(true)) {
                let version = now
                    .get("version")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| anyhow!("the provider's agent has no version"))?;
                api.post(
                    &format!("/publish-agent-version/{id}"),
                    &json!({"version": version}),
                )
                .await?;
                published_version = Some(version);
            }
        }
    }
    Ok(Outcome {
        llm_id,
        agent_id,
        llm: llm_action,
        agent: agent_action,
        published_version,
        would_send,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_defaults_are_no_difference_but_a_changed_value_is() {
        let want = json!({"a": 1, "tools": [{"name": "x"}], "o": {"k": "v"}});
        let have = json!({"a": 1, "tools": [{"name": "x", "default": true}], "o": {"k": "v", "d": 0}, "extra": 2});
        assert!(changed_fields(&want, &have).is_empty());
        let have = json!({"a": 2, "tools": [{"name": "y"}], "o": {"k": "v"}});
        assert_eq!(changed_fields(&want, &have), vec!["a", "tools"]);
        let have = json!({"a": 1, "tools": [{"name": "x"}, {"name": "z"}], "o": {}});
        assert_eq!(changed_fields(&want, &have), vec!["o", "tools"]);
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let key = || SecretString::from("k".to_owned());
        assert!(Api::new("http://api.retellai.com", key()).is_err());
        assert!(Api::new("http://127.0.0.1:9100", key()).is_ok());
        assert!(Api::new("https://api.retellai.com/", key()).is_ok());
    }
}
