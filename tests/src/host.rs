//! The in-process functions host: a drop-in for `cargo lambda watch` that needs no
//! cargo-lambda and no build per function.
//!
//! One axum server on loopback that
//! - serves every HTTP route of the local router (`[workspace.metadata.lambda.watch.router]`
//!   in the root `Cargo.toml`, which the `drift::` test keeps equal to the template's API
//!   routes): the request becomes the API Gateway HTTP API (payload 2.0) event AWS would
//!   build (route key, path parameters, raw query, cookies, source IP), goes through
//!   `lambda_http`'s own event parser to the function's real handler, and the handler's
//!   answer goes through the payload 2.0 response API Gateway reads (`cookies` for
//!   `Set-Cookie`, base64 for binary bodies) back to HTTP;
//! - serves the Lambda Invoke API, `POST /2015-03-31/functions/{name}/invocations`, for
//!   every function ([`REGISTRY`]): the workers, the sweep, the digest, the analytics
//!   worker, and the HTTP functions (the local gateway's staff invoke). A function error
//!   is answered as Lambda answers it: 200 with `X-Amz-Function-Error: Unhandled` and
//!   `{"errorType", "errorMessage"}`; a run past the template's `Timeout` is such an error.
//!
//! Each function's app is built once, from one environment map (the env file
//! `polly-local provision --env-file` writes), the way its bin builds it from the process
//! environment: [`shared::Config::from_map`] and an SDK configuration with the map's
//! region, endpoint and keys. A function's handler runs in its own task, so a panic is
//! a failed invocation (500 at an HTTP route, as API Gateway answers a failed Lambda),
//! not a dead host.
//!
//! Adding a function is one line in [`REGISTRY`] (and its router lines, for HTTP).
//! Nothing here ships.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::{Region, SdkConfig};
use axum::extract::ConnectInfo;
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::{Clock, Config};
use tokio::sync::oneshot;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type HttpHandler = Arc<dyn Fn(Request) -> BoxFuture<Response<Body>> + Send + Sync>;
/// An event function: the payload and the time left, to its result or its error.
type EventHandler =
    Arc<dyn Fn(Value, Duration) -> BoxFuture<std::result::Result<Value, String>> + Send + Sync>;

/// A function's handler, built.
#[derive(Clone)]
pub enum Handler {
    /// Behind API Gateway (payload 2.0 events).
    Http(HttpHandler),
    /// Invoked with a JSON event (stream batches, schedules).
    Event(EventHandler),
}

/// What a builder gets: the configuration, the SDK configuration and the clock.
pub struct BuildContext<'a> {
    pub config: &'a Config,
    pub aws: &'a SdkConfig,
    pub clock: Arc<dyn Clock>,
}

/// Builds one function's handler the way its bin does.
pub type Build = fn(&BuildContext<'_>) -> std::result::Result<Handler, String>;

fn http<A, F, Fut>(app: A, handle: F) -> Handler
where
    A: Send + Sync + 'static,
    F: Fn(Arc<A>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let app = Arc::new(app);
    Handler::Http(Arc::new(move |req| Box::pin(handle(Arc::clone(&app), req))))
}

fn event<A, F, Fut>(app: A, handle: F) -> Handler
where
    A: Send + Sync + 'static,
    F: Fn(Arc<A>, Value, Duration) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Value, String>> + Send + 'static,
{
    let app = Arc::new(app);
    Handler::Event(Arc::new(move |payload, left| {
        Box::pin(handle(Arc::clone(&app), payload, left))
    }))
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Every function of the template the host runs: its name (the Invoke API's and the
/// router's), its logical id (for the `Timeout`), and how its bin builds it. A
/// function whose crate is not in this tree (issue 17's `sales-api`) gets its line
/// when it is.
pub const REGISTRY: &[(&str, &str, Build)] = &[
    ("signup", "SignupFunction", |c| {
        let app = signup::App::from_aws(c.config.clone(), c.aws, c.clock.clone());
        Ok(http(app, |a, r| async move { signup::handle(&a, r).await }))
    }),
    ("telephony-webhook", "TelephonyWebhookFunction", |c| {
        let app = telephony::App::from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(http(
            app,
            |a, r| async move { telephony::handle(&a, r).await },
        ))
    }),
    ("dsar-api", "DsarApiFunction", |c| {
        let app = dsar::App::from_aws(c.config.clone(), c.aws, c.clock.clone())?;
        Ok(http(app, |a, r| async move { dsar::handle(&a, r).await }))
    }),
    ("dsar-staff", "DsarStaffFunction", |c| {
        let app = dsar::staff::StaffApp::from_aws(c.config.clone(), c.aws, c.clock.clone())?;
        Ok(http(
            app,
            |a, r| async move { dsar::staff::handle(&a, r).await },
        ))
    }),
    ("sales-api", "SalesApiFunction", |c| {
        let app = sales::App::from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(http(app, |a, r| async move { sales::handle(&a, r).await }))
    }),
    ("crm-worker", "CrmWorkerFunction", |c| {
        let worker = dsar::crm::worker_from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(event(worker, |w, payload, left| async move {
            let budget = left.saturating_sub(dsar::crm::DEADLINE_MARGIN.min(left / 4));
            dsar::crm::handle(&w, payload, budget).await.map_err(text)
        }))
    }),
    ("telephony-worker", "TelephonyWorkerFunction", |c| {
        let worker = telephony::worker_from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(event(worker, |w, payload, _| async move {
            // Two event sources: the stream and the dispatcher's schedule (as the bin).
            if telephony::worker::is_dispatch(&payload) {
                let report = telephony::worker::dispatch(&w).await.map_err(text)?;
                return serde_json::to_value(report).map_err(text);
            }
            let batch = serde_json::from_value(payload).map_err(text)?;
            serde_json::to_value(telephony::worker::handle(&w, batch).await).map_err(text)
        }))
    }),
    ("dsar-worker", "DsarWorkerFunction", |c| {
        let exporter = dsar::worker::exporter_from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(event(exporter, |x, payload, left| async move {
            if dsar::worker::is_erasures_due(&payload) {
                return Ok(dsar::worker::erasures_due(&x).await?.to_json());
            }
            let deadline =
                tokio::time::Instant::now() + left.saturating_sub(dsar::worker::DEADLINE_MARGIN);
            let batch = serde_json::from_value(payload).map_err(text)?;
            let response = dsar::worker::handle_until(&x, batch, Some(deadline)).await;
            serde_json::to_value(response).map_err(text)
        }))
    }),
    ("analytics-worker", "AnalyticsWorkerFunction", |c| {
        let exports = dsar::analytics::exports_from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(event(exports, |x, payload, left| async move {
            let left = left.saturating_sub(dsar::analytics::DEADLINE_MARGIN.min(left / 4));
            let budget = dsar::analytics::job::Budget::until(std::time::Instant::now() + left);
            let batch = serde_json::from_value(payload).map_err(text)?;
            serde_json::to_value(dsar::analytics::handle(&x, batch, budget).await).map_err(text)
        }))
    }),
    ("dsar-digest", "DsarDigestFunction", |c| {
        let job = dsar::digest::digest_from_aws(c.config, c.aws, c.clock.clone())?;
        Ok(event(job, |j, _, _| async move {
            dsar::digest::handle(&j).await.map_err(text)
        }))
    }),
    ("retention-sweep", "RetentionSweepFunction", |c| {
        let clock = c.clock.clone();
        let app = retention_sweep::App::from_aws_at(c.config, c.aws, clock.clone())?;
        Ok(event((app, clock), |a, payload, left| async move {
            let budget = retention_sweep::budget(left);
            a.0.handle_event(&payload, a.1.as_ref(), budget)
                .await
                .map_err(text)
        }))
    }),
];

/// Globals.Function.Timeout of the template, for a function that names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One built function.
#[derive(Clone)]
struct Function {
    handler: Handler,
    /// The template's `Timeout`.
    timeout: Duration,
}

/// The SDK configuration a bin gets from its environment, from `env`.
pub async fn aws_from_env(env: &HashMap<String, String>) -> SdkConfig {
    let mut loader = shared::aws::loader();
    if let Some(region) = env.get("AWS_REGION") {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = env.get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            id,
            secret,
            env.get("AWS_SESSION_TOKEN").cloned(),
            None,
            "polly-local-env",
        ));
    }
    loader.load().await
}

/// Reads an env file (`KEY=value` lines; `#` comments and blank lines skipped; a later
/// line wins, as in `cargo lambda watch --env-file`).
pub fn read_env_file(path: &std::path::Path) -> Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// Every function of [`REGISTRY`], built from one environment.
#[derive(Clone)]
pub struct Functions {
    by_name: Arc<BTreeMap<String, Function>>,
}

impl Functions {
    /// Builds every function of [`REGISTRY`] from `env` with `clock`; the first that
    /// cannot be built (a missing variable) is the error, as its bin would stop.
    pub async fn from_env(env: &HashMap<String, String>, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::from_env_with_clocks(env, clock, &HashMap::new()).await
    }

    /// [`Functions::from_env`], with other clocks for the functions named in `clocks`.
    pub async fn from_env_with_clocks(
        env: &HashMap<String, String>,
        clock: Arc<dyn Clock>,
        clocks: &HashMap<String, Arc<dyn Clock>>,
    ) -> Result<Self> {
        let config = Config::from_map(env).context("the functions' configuration")?;
        let aws = aws_from_env(env).await;
        let template = crate::template::Template::load()?;
        let mut by_name = BTreeMap::new();
        for (name, logical, build) in REGISTRY {
            let context = BuildContext {
                config: &config,
                aws: &aws,
                clock: clocks.get(*name).cloned().unwrap_or_else(|| clock.clone()),
            };
            let handler = build(&context).map_err(|e| anyhow!("building {name}: {e}"))?;
            let timeout = template.properties(logical)["Timeout"]
                .as_u64()
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TIMEOUT);
            by_name.insert((*name).to_owned(), Function { handler, timeout });
        }
        Ok(Self {
            by_name: Arc::new(by_name),
        })
    }

    /// The names of the functions served.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

/// One route of the local router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `None`: every method (`ANY`).
    pub method: Option<String>,
    /// As in the router: `/v1/dsar/{id}`, `/v1/admin/subjects/{*rest}`.
    pub path: String,
    pub function: String,
}

/// The route table of the root `Cargo.toml` (`[workspace.metadata.lambda.watch.router]`).
pub fn router_routes() -> Result<Vec<Route>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let text = std::fs::read_to_string(&path).context("reading the workspace Cargo.toml")?;
    parse_router(&text)
}

/// Parses the router table out of a workspace manifest.
pub fn parse_router(manifest: &str) -> Result<Vec<Route>> {
    let doc: toml_edit::DocumentMut = manifest.parse().context("parsing Cargo.toml")?;
    let router = doc
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("lambda"))
        .and_then(|l| l.get("watch"))
        .and_then(|w| w.get("router"))
        .and_then(|r| r.as_table_like())
        .ok_or_else(|| anyhow!("no [workspace.metadata.lambda.watch.router]"))?;
    let mut routes = Vec::new();
    for (path, entry) in router.iter() {
        if let Some(function) = entry.as_str() {
            routes.push(Route {
                method: None,
                path: path.to_owned(),
                function: function.to_owned(),
            });
            continue;
        }
        let Some(list) = entry.as_array() else {
            bail!("router entry {path} is neither a function nor a list");
        };
        for item in list.iter() {
            let table = item
                .as_inline_table()
                .ok_or_else(|| anyhow!("router entry {path}: not a table"))?;
            let field = |k: &str| {
                table
                    .get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("router entry {path}: no {k}"))
            };
            routes.push(Route {
                method: Some(field("method")?.to_ascii_uppercase()),
                path: path.to_owned(),
                function: field("function")?,
            });
        }
    }
    Ok(routes)
}

impl Route {
    /// The path parameters when `path` matches this route's path.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let pattern: Vec<&str> = self.path.split('/').collect();
        let actual: Vec<&str> = path.split('/').collect();
        let mut params = Vec::new();
        for (i, p) in pattern.iter().enumerate() {
            if let Some(name) = p.strip_prefix("{*").and_then(|n| n.strip_suffix('}')) {
                let rest = actual.get(i..).unwrap_or_default().join("/");
                if rest.is_empty() {
                    return None;
                }
                params.push((name.to_owned(), rest));
                return Some(params);
            }
            let a = actual.get(i)?;
            match p.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                Some(name) if !a.is_empty() => params.push((name.to_owned(), (*a).to_owned())),
                Some(_) => return None,
                None if p == a => {}
                None => return None,
            }
        }
        (pattern.len() == actual.len()).then_some(params)
    }

    /// API Gateway's route key: `POST /v1/dsar/{id}`, `ANY /v1/admin/subjects/{rest+}`.
    pub fn route_key(&self) -> String {
        let path = self
            .path
            .split('/')
            .map(
                |s| match s.strip_prefix("{*").and_then(|n| n.strip_suffix('}')) {
                    Some(name) => format!("{{{name}+}}"),
                    None => s.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        format!("{} {path}", self.method.as_deref().unwrap_or("ANY"))
    }
}

/// The route for a request: method and path. Several router paths may match one path
/// (`/v1/dsar/{id}` and a literal); a literal segment beats a parameter, as in API Gateway.
pub fn find_route<'r>(
    routes: &'r [Route],
    method: &str,
    path: &str,
) -> Option<(&'r Route, Vec<(String, String)>)> {
    routes
        .iter()
        .filter(|r| r.method.as_deref().is_none_or(|m| m == method))
        .filter_map(|r| r.matches(path).map(|p| (r, p)))
        .max_by_key(|(r, _)| {
            let literal = r.path.split('/').filter(|s| !s.starts_with('{')).count();
            (literal, r.method.is_some(), usize::MAX - r.path.len())
        })
}

/// Whether API Gateway passes a body of this content type as text (else base64).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || ct == "application/xml"
        || ct == "application/javascript"
}

/// The HTTP API (payload 2.0) event for a request on `route`.
pub fn http_event(
    route: &Route,
    params: &[(String, String)],
    parts: &http::request::Parts,
    body: &[u8],
    source_ip: IpAddr,
) -> Value {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == http::header::COOKIE {
            // API Gateway hands cookies over in `cookies`, not as a header.
            for v in &values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.to_owned())),
                );
            }
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    headers.insert(
        "x-forwarded-for".to_owned(),
        Value::String(source_ip.to_string()),
    );
    headers.insert("x-forwarded-proto".to_owned(), json!("http"));
    let mut query_params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match query_params.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query_params.insert(k, Value::String(v));
            }
        }
    }
    let path_params: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(decode_path(v))))
        .collect();
    let user_agent = parts
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now();
    let route_key = route.route_key();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::gateway::LOCAL_ACCOUNT,
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip.to_string(),
                "userAgent": user_agent,
            },
            "requestId": uuid::Uuid::now_v7().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !query_params.is_empty() {
        event["queryStringParameters"] = Value::Object(query_params);
    }
    if !path_params.is_empty() {
        event["pathParameters"] = Value::Object(path_params);
    }
    if !body.is_empty() {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match std::str::from_utf8(body) {
            Ok(text) if is_text(content_type) => event["body"] = json!(text),
            _ => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    percent_decode(s, true)
}

/// Percent-decoding of a path segment (`+` stays).
fn decode_path(s: &str) -> String {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A handler's response as the payload 2.0 response the Lambda runtime sends API
/// Gateway (`lambda_http`'s conversion): `Set-Cookie` moves to `cookies`, repeated
/// headers are joined with commas, binary bodies are base64.
pub fn v2_json(resp: Response<Body>) -> Value {
    let (parts, body) = resp.into_parts();
    let (is_base64, body) = match body {
        Body::Empty => (false, None),
        Body::Text(t) => (false, Some(t)),
        Body::Binary(b) => (
            true,
            Some(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        _ => (false, None),
    };
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == http::header::SET_COOKIE {
            cookies.extend(values.into_iter().map(Value::String));
        } else {
            headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
        }
    }
    let mut out = json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "multiValueHeaders": {},
        "isBase64Encoded": is_base64,
        "cookies": cookies,
    });
    if let Some(body) = body {
        out["body"] = Value::String(body);
    }
    out
}

/// The outcome of one invocation.
enum Outcome {
    Ok(Value),
    /// The function failed (error, panic, timeout): Lambda's `Unhandled`.
    Failed {
        kind: &'static str,
        message: String,
    },
}

/// Runs one invocation of `function` with `payload` (an event; for an HTTP function an
/// API Gateway event) in its own task, within its timeout.
async fn invoke(function: &Function, payload: Value) -> Outcome {
    let timeout = function.timeout;
    let task = match function.handler.clone() {
        Handler::Http(handle) => tokio::spawn(async move {
            let request = lambda_http::request::from_str(&payload.to_string())
                .map_err(|e| format!("not an API Gateway event: {e}"))?;
            Ok(v2_json(handle(request).await))
        }),
        Handler::Event(handle) => tokio::spawn(async move { handle(payload, timeout).await }),
    };
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(Ok(value))) => Outcome::Ok(value),
        Ok(Ok(Err(message))) => Outcome::Failed {
            kind: "Error",
            message,
        },
        Ok(Err(join)) => Outcome::Failed {
            kind: "Panic",
            message: if join.is_panic() {
                "the handler panicked".to_owned()
            } else {
                "the handler was cancelled".to_owned()
            },
        },
        Err(_) => Outcome::Failed {
            kind: "Sandbox.Timedout",
            message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
        },
    }
}

/// The host's state.
struct State {
    functions: Functions,
    routes: Vec<Route>,
}

type HttpResponse = http::Response<axum::body::Body>;

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut resp = http::Response::new(axum::body::Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// API Gateway's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;
/// The Lambda Invoke API's limit for a synchronous payload.
const MAX_INVOKE: usize = 6 * 1024 * 1024;

/// The source address API Gateway would name: the peer, or, when the peer is on loopback
/// (the local gateway in front), the last `X-Forwarded-For` entry, the one that gateway
/// appended for its own peer.
fn source_ip(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if !peer.ip().is_loopback() {
        return peer.ip();
    }
    // The last entry only: an earlier one is whatever the client claimed.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer.ip())
}

async fn serve_request(
    state: &State,
    peer: SocketAddr,
    req: axum::extract::Request,
) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if let Some(name) = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
    {
        if parts.method != http::Method::POST {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"message": "Method Not Allowed"}),
            );
        }
        let Ok(body) = axum::body::to_bytes(body, MAX_INVOKE).await else {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"Type": "User", "message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}),
            );
        };
        return invoke_api(state, name, &body).await;
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"message": "Request Entity Too Large"}),
        );
    };
    let Some((route, params)) = find_route(&state.routes, parts.method.as_str(), &path) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found"}));
    };
    let Some(function) = state.functions.by_name.get(&route.function) else {
        tracing::error!(function = %route.function, "the router names a function the host does not run");
        return json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found"}));
    };
    let event = http_event(
        route,
        &params,
        &parts,
        &body,
        source_ip(peer, &parts.headers),
    );
    match invoke(function, event).await {
        Outcome::Ok(answer) => crate::gateway::v2_response(&answer),
        Outcome::Failed { kind, message } => {
            tracing::error!(function = %route.function, kind, %message, "function failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"message": "Internal Server Error"}),
            )
        }
    }
}

async fn invoke_api(state: &State, name: &str, body: &[u8]) -> HttpResponse {
    let Some(function) = state.functions.by_name.get(name) else {
        let mut resp = json_response(
            StatusCode::NOT_FOUND,
            &json!({"Type": "User", "message": format!("Function not found: {name}")}),
        );
        resp.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ResourceNotFoundException"),
        );
        return resp;
    };
    let payload: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let mut resp = json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"Type": "User", "message": "Could not parse request body into json"}),
                );
                resp.headers_mut().insert(
                    "x-amzn-errortype",
                    HeaderValue::from_static("InvalidRequestContentException"),
                );
                return resp;
            }
        }
    };
    match invoke(function, payload).await {
        Outcome::Ok(value) => json_response(StatusCode::OK, &value),
        Outcome::Failed { kind, message } => {
            tracing::error!(function = name, kind, %message, "function failed");
            let mut resp = json_response(
                StatusCode::OK,
                &json!({"errorType": kind, "errorMessage": message}),
            );
            resp.headers_mut().insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            resp
        }
    }
}

/// A running host.
pub struct RunningHost {
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Serves `functions` behind the router's routes and the Invoke API on `listener`.
pub fn serve(listener: tokio::net::TcpListener, functions: Functions) -> Result<RunningHost> {
    let bound = listener.local_addr()?;
    let state = Arc::new(State {
        functions,
        routes: router_routes()?,
    });
    let app = axum::Router::new().fallback(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: axum::extract::Request| {
            let state = Arc::clone(&state);
            async move { serve_request(&state, peer, req).await }
        },
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await
    });
    Ok(RunningHost {
        base_url: format!("http://{bound}"),
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// A clock `offset` ahead of another.
pub struct OffsetClock {
    pub inner: Arc<dyn Clock>,
    pub offset: chrono::Duration,
}

impl Clock for OffsetClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.now() + self.offset
    }
}

/// The telephony worker's clock for a local stack that calls at any hour: `clock`
/// itself inside the calling hours (R7.2, `CALLING_STATE` NW), else moved forward to the
/// next calling hours' start, running on from there. Only the worker gets it, so only
/// the calling-hours decision moves; the rule itself is proven on fixed clocks
/// (`calling_hours::`).
pub fn calling_hours_clock(clock: Arc<dyn Clock>) -> Arc<dyn Clock> {
    let rules = shared::domain::calling_hours::CallingRules::default();
    let now = clock.now();
    let offset = rules
        .next_allowed(now, None)
        .map(|t| t - now)
        .unwrap_or_default();
    Arc::new(OffsetClock {
        inner: clock,
        offset,
    })
}

/// Builds the functions from `env` and serves them on `addr` (port 0: any free port).
pub async fn start(
    addr: SocketAddr,
    env: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
) -> Result<RunningHost> {
    start_with(addr, Functions::from_env(env, clock).await?).await
}

/// Serves built functions on `addr`.
pub async fn start_with(addr: SocketAddr, functions: Functions) -> Result<RunningHost> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    serve(listener, functions)
}

impl RunningHost {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops serving and waits for the server to end (at most 5 seconds).
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                Ok(joined) => joined??,
                Err(_) => task.abort(),
            }
        }
        Ok(())
    }

    /// Serves until the server ends.
    pub async fn wait(mut self) -> Result<()> {
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        router_routes().unwrap()
    }

    /// Every route of the router is found by its own method and a concrete path, and
    /// names a function the host runs.
    #[test]
    fn every_router_route_reaches_a_registered_function() {
        let names: Vec<&str> = REGISTRY.iter().map(|r| r.0).collect();
        let all = routes();
        for route in all.clone() {
            let concrete = route
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { "x1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = route.method.clone().unwrap_or_else(|| "DELETE".to_owned());
            let (found, _) = find_route(&all, &method, &concrete)
                .unwrap_or_else(|| panic!("{method} {concrete} not routed"));
            assert_eq!(found.function, route.function, "{concrete}");
            assert!(
                names.contains(&route.function.as_str()),
                "{} is not in the registry",
                route.function
            );
        }
    }

    /// Path parameters, the catch-all, methods and unknown paths, as API Gateway routes.
    #[test]
    fn routing_matches_api_gateway() {
        let r = routes();
        let (route, params) = find_route(&r, "GET", "/v1/dsar/abc").unwrap();
        assert_eq!(route.function, "dsar-api");
        assert_eq!(params, vec![("id".to_owned(), "abc".to_owned())]);
        assert_eq!(route.route_key(), "GET /v1/dsar/{id}");
        let (route, _) = find_route(&r, "POST", "/v1/dsar/abc/verify").unwrap();
        assert_eq!(route.path, "/v1/dsar/{id}/verify");
        let (route, params) = find_route(&r, "DELETE", "/v1/admin/subjects/a/b").unwrap();
        assert_eq!(route.function, "dsar-staff");
        assert_eq!(params, vec![("rest".to_owned(), "a/b".to_owned())]);
        assert_eq!(route.route_key(), "ANY /v1/admin/subjects/{rest+}");
        assert!(find_route(&r, "GET", "/v1/signups").is_none());
        assert!(find_route(&r, "POST", "/v1/signups/").is_none());
        assert!(find_route(&r, "GET", "/v1/dsar/").is_none());
        assert!(find_route(&r, "GET", "/v1/dsar/a/b/c/d").is_none());
        assert!(find_route(&r, "POST", "/nothing").is_none());
    }

    /// The event carries what a handler reads: cookies (not as a header), the query,
    /// path parameters, the source address, and a form body in base64 as API Gateway
    /// sends it; `lambda_http` parses it back into the same request.
    #[test]
    fn the_event_is_what_api_gateway_sends() {
        let r = routes();
        let (route, params) = find_route(&r, "GET", "/v1/dsar/abc").unwrap();
        let req = http::Request::builder()
            .method("GET")
            .uri("/v1/dsar/abc?token=a%20b&x=1&x=2")
            .header("cookie", "polly_request=id.tok; other=1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let event = http_event(
            route,
            &params,
            &parts,
            b"a=1&b=%C3%A4",
            "10.1.2.3".parse().unwrap(),
        );
        assert_eq!(event["cookies"], json!(["polly_request=id.tok", "other=1"]));
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["queryStringParameters"]["token"], "a b");
        assert_eq!(event["queryStringParameters"]["x"], "1,2");
        assert_eq!(event["pathParameters"]["id"], "abc");
        assert_eq!(event["requestContext"]["http"]["sourceIp"], "10.1.2.3");
        assert_eq!(event["isBase64Encoded"], true);
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(request.uri().path(), "/v1/dsar/abc");
        assert_eq!(
            request.headers().get("cookie").unwrap(),
            "polly_request=id.tok; other=1"
        );
        assert_eq!(request.body().as_ref(), b"a=1&b=%C3%A4");
        assert_eq!(
            shared::http::source_ip(&request),
            Some("10.1.2.3".parse().unwrap())
        );
    }

    /// `Set-Cookie` leaves the headers for `cookies` and comes back as one header per
    /// cookie; a binary body survives the base64 round trip.
    #[test]
    fn the_response_round_trips_like_api_gateway() {
        let resp = http::Response::builder()
            .status(303)
            .header("location", "/privacy")
            .header("set-cookie", "a=1; HttpOnly")
            .header("set-cookie", "b=2; Secure")
            .body(Body::Binary(vec![0, 159, 146, 150]))
            .unwrap();
        let json = v2_json(resp);
        assert_eq!(json["cookies"], json!(["a=1; HttpOnly", "b=2; Secure"]));
        assert!(json["headers"].get("set-cookie").is_none());
        let back = crate::gateway::v2_response(&json);
        assert_eq!(back.status(), 303);
        let cookies: Vec<_> = back.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies.len(), 2);
        assert_eq!(back.headers()["location"], "/privacy");
    }

    /// The timeout the worker bins fall back to under a local runtime is the template's.
    #[test]
    fn the_workers_fallback_timeout_is_the_templates() {
        let template = crate::template::Template::load().unwrap();
        for logical in ["DsarWorkerFunction", "AnalyticsWorkerFunction"] {
            assert_eq!(
                template.properties(logical)["Timeout"].as_u64(),
                Some(dsar::worker::TIMEOUT.as_secs()),
                "{logical}"
            );
        }
    }

    /// Only the loopback peer's `X-Forwarded-For` counts, and only its last entry.
    #[test]
    fn the_source_is_the_last_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        let loopback: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let remote: SocketAddr = "9.9.9.9:1".parse().unwrap();
        assert_eq!(
            source_ip(loopback, &h),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(source_ip(remote, &h), "9.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!(
            source_ip(loopback, &HeaderMap::new()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
