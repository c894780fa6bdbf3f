//! A dev-only RetellAI simulator: the provider's REST API, recording files, and signed
//! webhooks for scripted calls. Never deployed; used by tests and by `retell-sim` in the
//! local stack.
//!
//! - [`Simulator::start`] serves on `127.0.0.1` (port 0 picks a free one):
//!   `POST /v2/create-phone-call`, `GET /v2/get-call/{id}`, `DELETE /v2/delete-call/{id}`,
//!   `PATCH /v2/update-call/{id}` (Bearer API key, 401 otherwise), per-call recordings at
//!   `/recordings/{call_id}/recording.wav` and `…/recording_multichannel.wav`, synthetic
//!   files at `/recordings/synthetic/{bytes}`, pattern WAVs at
//!   `/recordings/pattern/{channels}/{frames}/{canonical|extensible|unknown-size}`, and public logs at `/logs/{call_id}/public.log`.
//!   Every request is recorded for assertions; failures can be injected per operation
//!   ([`Simulator::fail_next`]) and per recording URL ([`Simulator::set_fault`]).
//! - [`scenario`] scripts calls ([`CallScript`]) into realistic webhook payloads.
//! - [`webhook`] signs (`X-Retell-Signature`) and delivers them, duplicated, re-ordered,
//!   delayed or retried on demand.
//! - [`recordings`] makes the audio and synthetic files.
//! - [`http`] is the tiny HTTP/1.1 client the simulator and its tests use.
//! - [`agents`] is the agent API `make agent` publishes to (LLMs, agents, versions).
//!
//! The simulator has its own clock (system time plus an offset) so tests can let signed
//! recording URLs expire without waiting. Logs carry ids, event names and status codes only.

pub mod agents;
pub mod http;
pub mod recordings;
pub mod scenario;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use recordings::Fault;
pub use scenario::{CallParams, CallScript, RecordingContent, Scenario};
pub use webhook::{sign, Attempt, Delivered, Delivery, Webhook, WebhookEvent};

use recordings::{Content, PatternWav, WavLayout};

/// How long recording URLs stay reachable after the call when the provider stores nothing.
pub const UNSTORED_RECORDING_TTL: Duration = Duration::from_secs(10 * 60);

/// Settings of a simulator instance.
#[derive(Clone)]
pub struct SimConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The API key requests must carry and webhooks are signed with.
    pub api_key: String,
    /// Agent of created calls when the request has no `override_agent_id`.
    pub agent_id: String,
    /// Agent version of created calls.
    pub agent_version: u64,
    /// When set, every created call is played out and its webhooks sent.
    pub auto_play: Option<AutoPlay>,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("port", &self.port)
            .field("api_key", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .field("agent_version", &self.agent_version)
            .field("auto_play", &self.auto_play)
            .finish()
    }
}

impl SimConfig {
    /// An ephemeral port, the given API key, a fixed fake agent, no auto-play.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            port: 0,
            api_key: api_key.into(),
            agent_id: "agent_00000000000000000000000000sim".to_owned(),
            agent_version: 1,
            auto_play: None,
        }
    }
}

/// Plays every created call: after `ring`, the scenario's webhooks go to `webhook`.
#[derive(Debug, Clone)]
pub struct AutoPlay {
    /// Where the webhooks go.
    pub webhook: Webhook,
    /// How the calls go.
    pub scenario: Scenario,
    /// How the events are delivered.
    pub delivery: Delivery,
    /// Time between the create request and the call being answered.
    pub ring: Duration,
}

/// REST operations that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `POST /v2/create-phone-call`
    CreateCall,
    /// `GET /v2/get-call/{id}`
    GetCall,
    /// `DELETE /v2/delete-call/{id}`
    DeleteCall,
    /// `PATCH /v2/update-call/{id}`
    UpdateCall,
}

/// One `create-phone-call` request as received (also the failed ones).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The whole request body (`Null` if it was not JSON).
    pub body: Value,
    /// What the simulator answered.
    pub status: u16,
    /// The call created, when it answered 201.
    pub call_id: Option<String>,
}

/// One accepted `update-call` request.
#[derive(Debug, Clone)]
pub struct Patch {
    /// The call patched.
    pub call_id: String,
    /// The whole request body.
    pub body: Value,
}

/// Everything the simulator knows and has seen.
#[derive(Default)]
struct Inner {
    api_key: String,
    agent_id: String,
    agent_version: u64,
    base_url: String,
    auto_play: Option<AutoPlay>,
    clock_offset_ms: i64,
    calls: BTreeMap<String, Value>,
    /// What each call's recording URLs serve, and the call's length (ms).
    recordings: HashMap<String, (RecordingContent, u64)>,
    create_requests: Vec<CreateRequest>,
    deleted: Vec<String>,
    patches: Vec<Patch>,
    attempts: BTreeMap<Operation, u64>,
    unauthorized: u64,
    failures: HashMap<Operation, (u32, u16)>,
    faults: HashMap<String, Fault>,
    downloads: BTreeMap<String, u64>,
    chunks: BTreeMap<String, u64>,
    agents: agents::Registry,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        let now = webhook::now_ms() as i64 + self.clock_offset_ms;
        u64::try_from(now).unwrap_or(0)
    }

    /// Counts the attempt and answers an injected failure if one is pending.
    fn injected_failure(&mut self, op: Operation) -> Option<u16> {
        *self.attempts.entry(op).or_default() += 1;
        let (left, status) = self.failures.get_mut(&op)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(*status)
    }
}

/// The simulator's state, shared by its handlers and the [`Simulator`] handle.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    /// A poisoned lock only means a handler panicked; the data is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    base_url: String,
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "status": status.as_u16(), "message": message }).to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn injected(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_error(status, "injected failure");
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

async fn require_api_key(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", shared.lock().api_key);
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        next.run(request).await
    } else {
        shared.lock().unauthorized += 1;
        tracing::debug!("rejected a request without the API key");
        json_error(StatusCode::UNAUTHORIZED, "Unauthorized: invalid API key")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Checks a create request; the message never echoes the input.
fn validate_create(body: &Value) -> std::result::Result<(), &'static str> {
    let object = body.as_object().ok_or("body must be a JSON object")?;
    for field in ["from_number", "to_number"] {
        match object.get(field).and_then(Value::as_str) {
            Some(n) if is_e164(n) => {}
            Some(_) => return Err("from_number and to_number must be E.164 numbers"),
            None => return Err("from_number and to_number are required"),
        }
    }
    for field in ["metadata", "retell_llm_dynamic_variables", "agent_override"] {
        if object.get(field).is_some_and(|v| !v.is_object()) {
            return Err(
                "metadata, retell_llm_dynamic_variables and agent_override must be objects",
            );
        }
    }
    if let Some(vars) = object
        .get("retell_llm_dynamic_variables")
        .and_then(Value::as_object)
    {
        if vars.values().any(|v| !v.is_string()) {
            return Err("retell_llm_dynamic_variables values must be strings");
        }
    }
    if object
        .get("override_agent_id")
        .is_some_and(|v| !v.is_string())
    {
        return Err("override_agent_id must be a string");
    }
    // The provider's bounds for the agent's ring time.
    if let Some(ring) = body.pointer("/agent_override/ring_duration_ms") {
        if !ring
            .as_u64()
            .is_some_and(|ms| (5_000..=300_000).contains(&ms))
        {
            return Err("ring_duration_ms must be an integer from 5000 to 300000");
        }
    }
    Ok(())
}

async fn create_call(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let mut inner = shared.lock();
    let record = parsed.clone().unwrap_or(Value::Null);
    if let Some(status) = inner.injected_failure(Operation::CreateCall) {
        inner.create_requests.push(CreateRequest {
            body: record,
            status,
            call_id: None,
        });
        tracing::debug!(status, "create-phone-call: injected failure");
        return injected(status);
    }
    let checked = match &parsed {
        Some(value) => validate_create(value),
        None => Err("body must be JSON"),
    };
    if let Err(message) = checked {
        inner.create_requests.push(CreateRequest {
            body: record,
            status: 400,
            call_id: None,
        });
        return json_error(StatusCode::BAD_REQUEST, message);
    }
    let request = record.clone();
    let call_id = scenario::new_call_id();
    let agent_id = request
        .get("override_agent_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| inner.agent_id.clone());
    let mut call = json!({
        "call_id": call_id,
        "call_type": "phone_call",
        "agent_id": agent_id,
        "agent_version": inner.agent_version,
        "call_status": "registered",
        "direction": "outbound",
        "from_number": request["from_number"],
        "to_number": request["to_number"],
        "data_storage_setting": request
            .pointer("/agent_override/data_storage_setting")
            .or_else(|| request.pointer("/agent_override/agent/data_storage_setting"))
            .cloned()
            .unwrap_or_else(|| json!("everything")),
        "opt_in_signed_url": false,
        // The agent's default ring time unless the request overrides it.
        "ring_duration_ms": request
            .pointer("/agent_override/ring_duration_ms")
            .cloned()
            .unwrap_or_else(|| json!(30_000)),
    });
    for field in ["metadata", "retell_llm_dynamic_variables"] {
        if let Some(value) = request.get(field) {
            call[field] = value.clone();
        }
    }
    inner.calls.insert(call_id.clone(), call.clone());
    inner.create_requests.push(CreateRequest {
        body: record,
        status: 201,
        call_id: Some(call_id.clone()),
    });
    tracing::info!(call_id = %call_id, "create-phone-call: registered");
    if let Some(auto) = inner.auto_play.clone() {
        let shared = shared.clone();
        let call = call.clone();
        tokio::spawn(async move { auto_play(shared, call, auto).await });
    }
    json_response(StatusCode::CREATED, &call)
}

async fn auto_play(shared: Shared, call: Value, auto: AutoPlay) {
    tokio::time::sleep(auto.ring).await;
    let (base_url, now) = {
        let inner = shared.lock();
        (inner.base_url.clone(), inner.now_ms())
    };
    let script = CallScript::new(auto.scenario, CallParams::from_call(&base_url, &call, now));
    if !shared.lock().calls.contains_key(script.call_id()) {
        return; // deleted before it was answered
    }
    register(&shared, &script);
    match script.events() {
        Ok(events) => {
            for attempt in auto.webhook.deliver_all(&events, &auto.delivery).await {
                match &attempt.outcome {
                    Ok(d) => tracing::info!(call_id = %attempt.call_id, event = %attempt.event,
                        attempt = attempt.attempt, status = d.status, "webhook delivered"),
                    Err(e) => tracing::warn!(call_id = %attempt.call_id, event = %attempt.event,
                        attempt = attempt.attempt, error = %e, "webhook not delivered"),
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "could not build webhook events"),
    }
}

fn register(shared: &Shared, script: &CallScript) {
    let mut inner = shared.lock();
    let id = script.call_id().to_owned();
    inner.calls.insert(id.clone(), script.final_call());
    if !script.scenario.connects() {
        inner.recordings.remove(&id);
        return;
    }
    inner
        .recordings
        .insert(id.clone(), (script.params.recording, script.duration_ms()));
    if script.params.data_storage_setting == "basic_attributes_only" {
        let at_ms = script.end_ms() + UNSTORED_RECORDING_TTL.as_millis() as u64;
        for file in ["recording.wav", "recording_multichannel.wav"] {
            inner
                .faults
                .entry(format!("/recordings/{id}/{file}"))
                .or_insert(Fault::ExpiresAt { at_ms, status: 403 });
        }
    }
}

async fn get_call(State(shared): State<Shared>, Path(call_id): Path<String>) -> Response {
    let mut inner = shared.lock();
    if let Some(status) = inner.injected_failure(Operation::GetCall) {
        return injected(status);
    }
    match inner.calls.get(&call_id) {
        Some(call) => json_response(StatusCode::OK, call),
        None => json_error(StatusCode::NOT_FOUND, "Call not found"),
    }
}

async fn delete_call(State(shared): State<Shared>, Path(call_id): Path<String>) -> Response {
    let mut inner = shared.lock();
    if let Some(status) = inner.injected_failure(Operation::DeleteCall) {
        tracing::debug!(call_id = %call_id, status, "delete-call: injected failure");
        return injected(status);
    }
    if inner.calls.remove(&call_id).is_none() {
        return json_error(StatusCode::NOT_FOUND, "Call not found");
    }
    // The provider deletes the recordings with the call.
    inner.recordings.remove(&call_id);
    inner.deleted.push(call_id.clone());
    tracing::info!(call_id = %call_id, "delete-call: deleted");
    StatusCode::NO_CONTENT.into_response()
}

async fn update_call(
    State(shared): State<Shared>,
    Path(call_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut inner = shared.lock();
    if let Some(status) = inner.injected_failure(Operation::UpdateCall) {
        return injected(status);
    }
    let Some(Value::Object(fields)) = serde_json::from_slice::<Value>(&body).ok() else {
        return json_error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    if fields
        .get("data_storage_setting")
        .is_some_and(|v| !v.is_string())
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "data_storage_setting must be a string",
        );
    }
    let Some(call) = inner.calls.get_mut(&call_id) else {
        return json_error(StatusCode::NOT_FOUND, "Call not found");
    };
    for (key, value) in &fields {
        call[key.as_str()] = value.clone();
    }
    let call = call.clone();
    inner.patches.push(Patch {
        call_id: call_id.clone(),
        body: Value::Object(fields),
    });
    tracing::info!(call_id = %call_id, "update-call: patched");
    json_response(StatusCode::OK, &call)
}

async fn call_recording(
    State(shared): State<Shared>,
    Path((call_id, file)): Path<(String, String)>,
) -> Response {
    let path = format!("/recordings/{call_id}/{file}");
    let stored = shared.lock().recordings.get(&call_id).copied();
    let channels = match file.as_str() {
        "recording.wav" => 1,
        "recording_multichannel.wav" => 2,
        _ => 0,
    };
    // The call's recordings span the call, so its word timings point into them.
    let content = match stored {
        _ if channels == 0 => None,
        Some((RecordingContent::Wav, ms)) => {
            Some(Content::Pattern(PatternWav::of_ms(channels, ms)))
        }
        Some((RecordingContent::WavLayout(layout), ms)) => Some(Content::Pattern(
            PatternWav::of_ms(channels, ms).with_layout(layout),
        )),
        Some((RecordingContent::Synthetic(n), _)) => Some(Content::Synthetic(n)),
        None => None,
    };
    recordings::serve(shared, path, content).await
}

async fn pattern_recording(
    State(shared): State<Shared>,
    Path((channels, frames, layout)): Path<(u16, u64, String)>,
) -> Response {
    let path = format!("/recordings/pattern/{channels}/{frames}/{layout}");
    let layout = match layout.as_str() {
        "canonical" => Some(WavLayout::Canonical),
        "extensible" => Some(WavLayout::ExtensibleWithList),
        "unknown-size" => Some(WavLayout::UnknownSize),
        _ => None,
    };
    let content = layout
        .filter(|_| (1..=8).contains(&channels))
        .map(|layout| {
            Content::Pattern(PatternWav {
                channels,
                sample_rate: recordings::CALL_SAMPLE_RATE,
                frames,
                layout,
            })
        });
    recordings::serve(shared, path, content).await
}

async fn synthetic_recording(State(shared): State<Shared>, Path(bytes): Path<String>) -> Response {
    let path = format!("/recordings/synthetic/{bytes}");
    let content = bytes.parse::<u64>().ok().map(Content::Synthetic);
    recordings::serve(shared, path, content).await
}

async fn public_log(State(shared): State<Shared>, Path(call_id): Path<String>) -> Response {
    if shared.lock().calls.contains_key(&call_id) {
        (
            [(header::CONTENT_TYPE, "text/plain")],
            format!("simulated public log of {call_id}\n"),
        )
            .into_response()
    } else {
        json_error(StatusCode::NOT_FOUND, "not found")
    }
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such route")
}

fn router(shared: Shared) -> Router {
    let api = Router::new()
        .route("/v2/create-phone-call", post(create_call))
        .route("/v2/get-call/{call_id}", get(get_call))
        .route("/v2/delete-call/{call_id}", delete(delete_call))
        .route("/v2/update-call/{call_id}", patch(update_call))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_api_key,
        ));
    Router::new()
        .merge(api)
        .merge(agents::router(shared.clone()))
        .route("/recordings/synthetic/{bytes}", get(synthetic_recording))
        .route(
            "/recordings/pattern/{channels}/{frames}/{layout}",
            get(pattern_recording),
        )
        .route("/recordings/{call_id}/{file}", get(call_recording))
        .route("/logs/{call_id}/public.log", get(public_log))
        .fallback(not_found)
        .with_state(shared)
}

/// The path part of a URL (or the path itself), without the query.
fn path_of(url_or_path: &str) -> String {
    let rest = url_or_path
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(url_or_path);
    rest.split(['?', '#']).next().unwrap_or(rest).to_owned()
}

impl Simulator {
    /// Binds 127.0.0.1:`config.port` and serves until dropped or shut down.
    pub async fn start(config: SimConfig) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let base_url = format!("http://{addr}");
        let shared = Shared::default();
        {
            let mut inner = shared.lock();
            inner.api_key = config.api_key;
            inner.agent_id = config.agent_id;
            inner.agent_version = config.agent_version;
            inner.base_url = base_url.clone();
            inner.auto_play = config.auto_play;
        }
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(%addr, "retell simulator listening");
        Ok(Self {
            base_url,
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`, the base URL to configure as the provider's.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key requests must carry (and webhooks are signed with).
    pub fn api_key(&self) -> String {
        self.shared.lock().api_key.clone()
    }

    /// A webhook target signed with this simulator's API key.
    pub fn webhook(&self, url: &str) -> Webhook {
        Webhook::new(url, self.api_key())
    }

    /// Call parameters whose recording URLs point at this simulator.
    pub fn params(&self, lead_id: &str, start_ms: u64) -> CallParams {
        CallParams::new(&self.base_url, lead_id, start_ms)
    }

    /// Scripts a call against this simulator and registers it (see [`Self::register`]).
    pub fn script(&self, scenario: Scenario, params: CallParams) -> CallScript {
        let script = CallScript::new(scenario, params);
        self.register(&script);
        script
    }

    /// Makes a scripted call known: `get-call` returns its final object and its recording
    /// URLs serve. With `basic_attributes_only` the recordings expire
    /// [`UNSTORED_RECORDING_TTL`] after the call ended (403), as at the provider.
    pub fn register(&self, script: &CallScript) {
        register(&self.shared, script);
    }

    /// Plays a created call (by id) with `scenario` now and delivers its webhooks.
    pub async fn play(
        &self,
        call_id: &str,
        scenario: Scenario,
        webhook: &Webhook,
        delivery: &Delivery,
    ) -> Result<(CallScript, Vec<Attempt>)> {
        let (call, now) = {
            let inner = self.shared.lock();
            let call = inner
                .calls
                .get(call_id)
                .cloned()
                .with_context(|| format!("no call {call_id} at the simulator"))?;
            (call, inner.now_ms())
        };
        let script = self.script(scenario, CallParams::from_call(&self.base_url, &call, now));
        let attempts = webhook.deliver_all(&script.events()?, delivery).await;
        Ok((script, attempts))
    }

    /// The next `times` requests of `op` answer `status` (500, 429, 503, …).
    pub fn fail_next(&self, op: Operation, times: u32, status: u16) {
        self.shared.lock().failures.insert(op, (times, status));
    }

    /// Requests of `op` received with the right API key (including failed ones).
    pub fn attempts(&self, op: Operation) -> u64 {
        self.shared.lock().attempts.get(&op).copied().unwrap_or(0)
    }

    /// Requests rejected for a missing or wrong API key.
    pub fn unauthorized_count(&self) -> u64 {
        self.shared.lock().unauthorized
    }

    /// Every `create-phone-call` request with an accepted key, in arrival order.
    pub fn create_requests(&self) -> Vec<CreateRequest> {
        self.shared.lock().create_requests.clone()
    }

    /// The call objects returned by successful creates, in order.
    pub fn created_calls(&self) -> Vec<Value> {
        let inner = self.shared.lock();
        inner
            .create_requests
            .iter()
            .filter_map(|r| r.call_id.as_ref())
            .filter_map(|id| inner.calls.get(id).cloned())
            .collect()
    }

    /// The current object of a call, if the simulator knows it (and it was not deleted).
    pub fn call(&self, call_id: &str) -> Option<Value> {
        self.shared.lock().calls.get(call_id).cloned()
    }

    /// Ids of deleted calls, in order.
    pub fn deleted_calls(&self) -> Vec<String> {
        self.shared.lock().deleted.clone()
    }

    /// Accepted `update-call` requests, in order.
    pub fn patches(&self) -> Vec<Patch> {
        self.shared.lock().patches.clone()
    }

    /// Makes the recording URL (or path) misbehave; replaces an earlier fault.
    pub fn set_fault(&self, url_or_path: &str, fault: Fault) {
        self.shared
            .lock()
            .faults
            .insert(path_of(url_or_path), fault);
    }

    /// Makes the URL (or path) behave again.
    pub fn clear_fault(&self, url_or_path: &str) {
        self.shared.lock().faults.remove(&path_of(url_or_path));
    }

    /// Lets both recording URLs of `script` expire `after` the call ended, answering `status`.
    pub fn expire_recordings(&self, script: &CallScript, after: Duration, status: u16) {
        let at_ms = script.end_ms() + after.as_millis() as u64;
        for url in [script.recording_url(), script.recording_multi_channel_url()]
            .into_iter()
            .flatten()
        {
            self.set_fault(&url, Fault::ExpiresAt { at_ms, status });
        }
    }

    /// `GET` requests received for the URL (or path), whatever they were answered.
    pub fn downloads(&self, url_or_path: &str) -> u64 {
        self.shared
            .lock()
            .downloads
            .get(&path_of(url_or_path))
            .copied()
            .unwrap_or(0)
    }

    /// Body chunks generated for the URL (or path) so far.
    pub fn chunks_served(&self, url_or_path: &str) -> u64 {
        self.shared
            .lock()
            .chunks
            .get(&path_of(url_or_path))
            .copied()
            .unwrap_or(0)
    }

    /// URL of a pattern WAV file (its sample rate is [`recordings::CALL_SAMPLE_RATE`]).
    pub fn pattern_url(&self, wav: &PatternWav) -> String {
        let layout = match wav.layout {
            WavLayout::Canonical => "canonical",
            WavLayout::ExtensibleWithList => "extensible",
            WavLayout::UnknownSize => "unknown-size",
        };
        format!(
            "{}/recordings/pattern/{}/{}/{layout}",
            self.base_url, wav.channels, wav.frames
        )
    }

    /// URL of a synthetic file of `bytes` bytes.
    pub fn synthetic_url(&self, bytes: u64) -> String {
        format!("{}/recordings/synthetic/{bytes}", self.base_url)
    }

    /// The simulator's clock (ms since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.shared.lock().now_ms()
    }

    /// Sets the simulator's clock; it keeps running from there.
    pub fn set_clock_ms(&self, now_ms: u64) {
        let offset = now_ms as i64 - webhook::now_ms() as i64;
        self.shared.lock().clock_offset_ms = offset;
    }

    /// Moves the simulator's clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset_ms += by.as_millis() as i64;
    }

    /// Stops accepting connections and gives open ones up to 5 s to finish (a hanging
    /// fault would otherwise keep it waiting forever).
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                Ok(joined) => joined
                    .context("simulator task panicked")?
                    .context("simulator server failed")?,
                Err(_) => task.abort(),
            }
        }
        Ok(())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Connections stuck in a fault (a hanging body) would keep a graceful shutdown
        // waiting: a dropped simulator stops at once.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_of_strips_scheme_host_and_query() {
        assert_eq!(
            path_of("http://127.0.0.1:9/recordings/a/b.wav?x=1"),
            "/recordings/a/b.wav"
        );
        assert_eq!(path_of("/recordings/a/b.wav"), "/recordings/a/b.wav");
        assert_eq!(path_of("http://127.0.0.1:9"), "/");
    }

    #[test]
    fn e164_check() {
        assert!(is_e164("+491709876543"));
        assert!(!is_e164("01709876543"));
        assert!(!is_e164("+49 170"));
    }
}
