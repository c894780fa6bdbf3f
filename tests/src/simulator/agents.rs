//! The provider's agent API, as `make agent` uses it (R7.4): Retell LLMs
//! (`POST /create-retell-llm`, `GET /get-retell-llm/{id}`, `PATCH /update-retell-llm/{id}`),
//! agents (`POST /create-agent`, `GET /get-agent/{id}`, `PATCH /update-agent/{id}`,
//! `POST /publish-agent-version/{id}`, `POST /v2/list-agents`), behind the same API key.
//!
//! Requests are checked the way the provider documents them (retell-sdk 6.2.13): required
//! fields, enumerations and ranges (`ring_duration_ms` 5 000–300 000,
//! `max_call_duration_ms` 60 000–7 200 000, `end_call_after_silence_ms` ≥ 10 000, a tool's
//! `timeout_ms` 1 000–600 000 and `max_retry` 0–5, unique tool names), and an agent's LLM
//! must exist. This is written from the provider's documentation, independently of the
//! checks in `polly-agent`, so the two can catch each other. Every request is recorded
//! with its answer; a published version is kept with its LLM as it was at publication (a
//! change of the LLM or the agent makes a new draft), so a test can see what the agent
//! would say first.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;
use serde_json::{json, Value};

use super::{json_error, json_response, require_api_key, Shared, Simulator};

/// One request to the agent API with an accepted key, and the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentApiRequest {
    /// `POST /create-agent`, `PATCH /update-retell-llm/{id}`, … (ids as sent).
    pub route: String,
    /// The body (`Null` when there was none or it was not JSON).
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

/// A published agent version: the agent and the LLM it answered with at publication.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedAgent {
    pub version: i64,
    pub agent: Value,
    pub llm: Value,
}

/// The agent API's state.
#[derive(Debug, Default)]
pub(super) struct Registry {
    llms: BTreeMap<String, Value>,
    agents: BTreeMap<String, Value>,
    published: BTreeMap<String, PublishedAgent>,
    requests: Vec<AgentApiRequest>,
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn check_int(obj: &Value, key: &str, lo: i64, hi: i64) -> Result<(), String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(format!("{key} must be an integer between {lo} and {hi}")),
        },
    }
}

fn check_enum(obj: &Value, key: &str, allowed: &[&str]) -> Result<(), String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_str().is_some_and(|s| allowed.contains(&s)) => Ok(()),
        Some(_) => Err(format!("{key} must be one of {}", allowed.join(", "))),
    }
}

/// A Retell LLM as the provider would accept it.
fn validate_llm(llm: &Value) -> Result<(), String> {
    if !llm.is_object() {
        return Err("body must be a JSON object".into());
    }
    check_enum(llm, "start_speaker", &["agent", "user"])?;
    for key in ["begin_message", "general_prompt"] {
        if llm.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(format!("{key} must be a string"));
        }
    }
    let tools = match llm.get("general_tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err("general_tools must be an array".into()),
    };
    let mut names = BTreeSet::new();
    for tool in tools {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("tool name must be 1-64 characters of a-z, A-Z, 0-9, _ or -".into());
        }
        if !names.insert(name) {
            return Err("tool names must be unique".into());
        }
        match tool.get("type").and_then(Value::as_str) {
            Some("end_call") => {}
            Some("custom") => {
                if !tool
                    .get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
                {
                    return Err("custom tool url is required".into());
                }
                check_int(tool, "timeout_ms", 1_000, 600_000)?;
                check_int(tool, "max_retry", 0, 5)?;
                if let Some(p) = tool.get("parameters") {
                    let props = p.get("properties").and_then(Value::as_object);
                    if p.get("type").and_then(Value::as_str) != Some("object") || props.is_none() {
                        return Err("parameters must have type object and properties".into());
                    }
                    for r in p
                        .get("required")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if !r
                            .as_str()
                            .is_some_and(|r| props.is_some_and(|p| p.contains_key(r)))
                        {
                            return Err("required parameters must exist in properties".into());
                        }
                    }
                }
            }
            _ => return Err("tool type must be custom or end_call".into()),
        }
    }
    Ok(())
}

/// An agent as the provider would accept it (its LLM must exist).
fn validate_agent(agent: &Value, llms: &BTreeMap<String, Value>) -> Result<(), String> {
    if !agent.is_object() {
        return Err("body must be a JSON object".into());
    }
    let engine = agent
        .get("response_engine")
        .ok_or("response_engine is required")?;
    if engine.get("type").and_then(Value::as_str) != Some("retell-llm") {
        return Err("response_engine.type must be retell-llm".into());
    }
    let llm_id = engine
        .get("llm_id")
        .and_then(Value::as_str)
        .ok_or("response_engine.llm_id is required")?;
    if !llms.contains_key(llm_id) {
        return Err("response_engine.llm_id: LLM not found".into());
    }
    if agent
        .get("voice_id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("voice_id is required".into());
    }
    check_int(agent, "ring_duration_ms", 5_000, 300_000)?;
    check_int(agent, "max_call_duration_ms", 60_000, 7_200_000)?;
    check_int(agent, "end_call_after_silence_ms", 10_000, i64::MAX)?;
    check_int(agent, "begin_message_delay_ms", 0, 5_000)?;
    check_enum(
        agent,
        "data_storage_setting",
        &[
            "everything",
            "everything_except_pii",
            "basic_attributes_only",
        ],
    )?;
    if let Some(v) = agent.get("voicemail_option").filter(|v| !v.is_null()) {
        check_enum(
            v.get("action").unwrap_or(&Value::Null),
            "type",
            &["prompt", "static_text", "hangup", "bridge_transfer"],
        )?;
        if v.pointer("/action/type").is_none() {
            return Err("voicemail_option.action.type is required".into());
        }
    }
    Ok(())
}

fn parse_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn merge(into: &mut Value, fields: &Value) {
    if let (Some(into), Some(fields)) = (into.as_object_mut(), fields.as_object()) {
        for (k, v) in fields {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Records the request, answers it.
fn answer(
    shared: &Shared,
    route: String,
    body: Value,
    result: Result<(StatusCode, Value), (StatusCode, String)>,
) -> Response {
    let (status, response) = match result {
        Ok((status, value)) => (status, json_response(status, &value)),
        Err((status, message)) => (status, json_error(status, &message)),
    };
    tracing::info!(route = %route, status = status.as_u16(), "agent api");
    shared.lock().agents.requests.push(AgentApiRequest {
        route,
        body,
        status: status.as_u16(),
    });
    response
}

fn bad(message: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message)
}

fn not_found(what: &str) -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, format!("{what} not found"))
}

async fn create_llm(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let body = parse_body(&body);
    let result = (|| {
        validate_llm(&body).map_err(bad)?;
        let mut inner = shared.lock();
        let now = inner.now_ms();
        let id = new_id("llm");
        let mut llm = body.clone();
        merge(
            &mut llm,
            &json!({"llm_id": id, "version": 0, "is_published": false, "last_modification_timestamp": now}),
        );
        inner.agents.llms.insert(id, llm.clone());
        Ok((StatusCode::CREATED, llm))
    })();
    answer(&shared, "POST /create-retell-llm".into(), body, result)
}

async fn get_llm(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let found = shared.lock().agents.llms.get(&id).cloned();
    let result = found
        .map(|l| (StatusCode::OK, l))
        .ok_or_else(|| not_found("LLM"));
    answer(
        &shared,
        format!("GET /get-retell-llm/{id}"),
        Value::Null,
        result,
    )
}

async fn update_llm(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body = parse_body(&body);
    let result = (|| {
        if !body.is_object() {
            return Err(bad("body must be a JSON object".into()));
        }
        let mut inner = shared.lock();
        let now = inner.now_ms();
        let mut llm = inner
            .agents
            .llms
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("LLM"))?;
        merge(&mut llm, &body);
        validate_llm(&llm).map_err(bad)?;
        llm["last_modification_timestamp"] = json!(now);
        inner.agents.llms.insert(id.clone(), llm.clone());
        // A published version keeps the LLM it was published with: an agent on this LLM
        // gets a new draft, live only once it is published.
        for agent in inner.agents.agents.values_mut() {
            if agent
                .pointer("/response_engine/llm_id")
                .and_then(Value::as_str)
                == Some(&id)
                && agent["is_published"] == json!(true)
            {
                agent["version"] = json!(agent["version"].as_i64().unwrap_or(0) + 1);
                agent["is_published"] = json!(false);
            }
        }
        Ok((StatusCode::OK, llm))
    })();
    answer(
        &shared,
        format!("PATCH /update-retell-llm/{id}"),
        body,
        result,
    )
}

async fn create_agent(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let body = parse_body(&body);
    let result = (|| {
        let mut inner = shared.lock();
        validate_agent(&body, &inner.agents.llms).map_err(bad)?;
        let now = inner.now_ms();
        let id = new_id("agent");
        let mut agent = body.clone();
        merge(
            &mut agent,
            &json!({"agent_id": id, "version": 0, "is_published": false, "last_modification_timestamp": now}),
        );
        inner.agents.agents.insert(id, agent.clone());
        Ok((StatusCode::CREATED, agent))
    })();
    answer(&shared, "POST /create-agent".into(), body, result)
}

async fn get_agent(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let found = shared.lock().agents.agents.get(&id).cloned();
    let result = found
        .map(|a| (StatusCode::OK, a))
        .ok_or_else(|| not_found("Agent"));
    answer(&shared, format!("GET /get-agent/{id}"), Value::Null, result)
}

async fn update_agent(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body = parse_body(&body);
    let result = (|| {
        if !body.is_object() {
            return Err(bad("body must be a JSON object".into()));
        }
        let mut inner = shared.lock();
        let now = inner.now_ms();
        let mut agent = inner
            .agents
            .agents
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("Agent"))?;
        merge(&mut agent, &body);
        validate_agent(&agent, &inner.agents.llms).map_err(bad)?;
        // Changing a published version starts a new draft.
        if agent["is_published"] == json!(true) {
            agent["version"] = json!(agent["version"].as_i64().unwrap_or(0) + 1);
            agent["is_published"] = json!(false);
        }
        agent["last_modification_timestamp"] = json!(now);
        inner.agents.agents.insert(id.clone(), agent.clone());
        Ok((StatusCode::OK, agent))
    })();
    answer(&shared, format!("PATCH /update-agent/{id}"), body, result)
}

async fn publish_agent(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body = parse_body(&body);
    let result = (|| {
        let mut inner = shared.lock();
        let agent = inner
            .agents
            .agents
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("Agent"))?;
        let version = body
            .get("version")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("version is required".into()))?;
        if Some(version) != agent["version"].as_i64() {
            return Err(not_found("Agent version"));
        }
        let llm_id = agent
            .pointer("/response_engine/llm_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let llm = inner
            .agents
            .llms
            .get(llm_id)
            .cloned()
            .unwrap_or(Value::Null);
        let mut published = agent.clone();
        published["is_published"] = json!(true);
        inner.agents.agents.insert(id.clone(), published.clone());
        inner.agents.published.insert(
            id.clone(),
            PublishedAgent {
                version,
                agent: published,
                llm,
            },
        );
        Ok((StatusCode::OK, Value::Null))
    })();
    answer(
        &shared,
        format!("POST /publish-agent-version/{id}"),
        body,
        result,
    )
}

async fn list_agents(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let body = parse_body(&body);
    let query = body
        .pointer("/filter_criteria/query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let items: Vec<Value> = shared
        .lock()
        .agents
        .agents
        .values()
        .filter(|a| {
            let name = a["agent_name"].as_str().unwrap_or_default().to_lowercase();
            let id = a["agent_id"].as_str().unwrap_or_default();
            name.contains(&query) || id.contains(&query)
        })
        .map(|a| {
            json!({
                "agent_id": a["agent_id"],
                "agent_name": a["agent_name"],
                "channel": "voice",
                "is_suspended": false,
                "tags": {},
                "user_modified_timestamp": a["last_modification_timestamp"],
            })
        })
        .collect();
    let result = Ok((StatusCode::OK, json!({"has_more": false, "items": items})));
    answer(&shared, "POST /v2/list-agents".into(), body, result)
}

/// The agent API's routes, behind the API key.
pub(super) fn router(shared: Shared) -> Router<Shared> {
    Router::new()
        .route("/create-retell-llm", post(create_llm))
        .route("/get-retell-llm/{id}", get(get_llm))
        .route("/update-retell-llm/{id}", patch(update_llm))
        .route("/create-agent", post(create_agent))
        .route("/get-agent/{id}", get(get_agent))
        .route("/update-agent/{id}", patch(update_agent))
        .route("/publish-agent-version/{id}", post(publish_agent))
        .route("/v2/list-agents", post(list_agents))
        .route_layer(middleware::from_fn_with_state(shared, require_api_key))
}

impl Simulator {
    /// Requests to the agent API with an accepted key, in arrival order.
    pub fn agent_api_requests(&self) -> Vec<AgentApiRequest> {
        self.shared.lock().agents.requests.clone()
    }

    /// Every Retell LLM, by id.
    pub fn llms(&self) -> BTreeMap<String, Value> {
        self.shared.lock().agents.llms.clone()
    }

    /// Every agent (its current draft or published state), by id.
    pub fn agents(&self) -> BTreeMap<String, Value> {
        self.shared.lock().agents.agents.clone()
    }

    /// The version of the agent last published, with its LLM.
    pub fn published_agent(&self, agent_id: &str) -> Option<PublishedAgent> {
        self.shared.lock().agents.published.get(agent_id).cloned()
    }
}
