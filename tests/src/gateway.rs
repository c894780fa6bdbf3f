//! A local stand-in for API Gateway's `AWS_IAM` authoriser, so `make run` and the tests
//! accept the signed requests `polly-admin` sends in AWS.
//!
//! An HTTP server on loopback. For `/v1/admin` and everything under it, it verifies the
//! SigV4 `Authorization` header (service `execute-api`) against the local credentials
//! ([`local_keys`]): the signature is recomputed with `aws-sigv4` from the request's
//! method, path, query, signed headers and body with the key's secret and compared in
//! constant time; `X-Amz-Date` must be within 15 minutes of now. A missing or malformed
//! header, an unknown key, a stale date or a wrong signature get 403 with API Gateway's
//! `{"message": "..."}` and the staff function is not invoked. A verified request becomes
//! the HTTP API (payload 2.0) event with `requestContext.authorizer.iam` naming the key's
//! principal, handed to the staff function ([`StaffBackend`]); `/v1/sales/...` is checked
//! the same way and handed to the sales function ([`SalesBackend`], issue 17). Every other path is
//! forwarded unchanged to the upstream (`cargo lambda watch`).
//!
//! Nothing here ships; in AWS, API Gateway does all of this.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// The account of the local principals (moto's default account).
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// The staff role of the local stack: `polly-local provision` puts it into
/// `STAFF_PRINCIPAL_ARNS`.
pub const LOCAL_STAFF_ROLE: &str = "arn:aws:iam::123456789012:role/polly-local-staff";
/// Who the local default key (`testing`/`testing`, the emulator's) signs as: a session of
/// [`LOCAL_STAFF_ROLE`].
pub const LOCAL_STAFF_PRINCIPAL: &str =
    "arn:aws:sts::123456789012:assumed-role/polly-local-staff/local";
/// The second local key, `local-intruder`: a valid signer whose role is not staff.
pub const LOCAL_INTRUDER_KEY: &str = "local-intruder";
pub const LOCAL_INTRUDER_PRINCIPAL: &str =
    "arn:aws:sts::123456789012:assumed-role/polly-local-developer/intruder";
/// The sales role of the local stack (issue 17): `polly-local provision` puts it into
/// `SALES_PRINCIPAL_ARNS`.
pub const LOCAL_SALES_ROLE: &str = "arn:aws:iam::000000000000:role/polly-local-sales";
/// The third local key, `local-sales`/`local-sales`: a session of [`LOCAL_SALES_ROLE`].
pub const LOCAL_SALES_KEY: &str = "local-sales";
pub const LOCAL_SALES_PRINCIPAL: &str =
    "arn:aws:sts::000000000000:assumed-role/polly-local-sales/local";
/// How far `X-Amz-Date` may be from now (API Gateway's limit).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// API Gateway's payload limit.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// The region the signatures must be made for.
pub const REGION: &str = "eu-central-1";

/// One local access key and the principal it authenticates as.
#[derive(Clone, Debug)]
pub struct LocalKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// What API Gateway would put into `requestContext.authorizer.iam.userArn`.
    pub principal_arn: String,
}

impl LocalKey {
    pub fn new(access_key_id: &str, secret_access_key: &str, principal_arn: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            principal_arn: principal_arn.to_owned(),
        }
    }

    /// The key as SDK credentials (what a signer holds).
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "polly-local",
        )
    }

    /// `callerId`/`userId`: the role's id and the session name for a session.
    fn caller_id(&self) -> String {
        match self.principal_arn.rsplit_once('/') {
            Some((_, session)) if self.principal_arn.contains(":assumed-role/") => {
                format!("AROALOCAL{}:{session}", self.access_key_id.len())
            }
            _ => format!("AIDALOCAL{}", self.access_key_id.len()),
        }
    }
}

/// The local credentials: the emulator's `testing`/`testing` (what `make run` exports)
/// signs as the local staff session, `local-intruder`/`local-intruder` as a principal
/// outside the allow-list.
pub fn local_keys() -> Vec<LocalKey> {
    vec![
        LocalKey::new("testing", "testing", LOCAL_STAFF_PRINCIPAL),
        LocalKey::new(
            LOCAL_INTRUDER_KEY,
            LOCAL_INTRUDER_KEY,
            LOCAL_INTRUDER_PRINCIPAL,
        ),
        LocalKey::new(LOCAL_SALES_KEY, LOCAL_SALES_KEY, LOCAL_SALES_PRINCIPAL),
    ]
}

/// Why a request was refused before reaching the staff function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header (or no `X-Amz-Date`).
    Missing,
    /// Not a SigV4 `Authorization` header.
    Malformed,
    UnknownKey,
    /// `X-Amz-Date` more than [`MAX_SKEW`] from now.
    Expired,
    /// The recomputed signature differs.
    Mismatch,
}

impl Refusal {
    /// API Gateway's words for it.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "Forbidden",
            Refusal::Malformed => "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
            Refusal::UnknownKey => "The security token included in the request is invalid.",
            Refusal::Expired => "Signature expired: the request's X-Amz-Date is more than 15 minutes from now.",
            Refusal::Mismatch => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        }
    }
}

/// Verifies the SigV4 signature of a request; the key it was signed with.
pub fn verify<'k>(
    keys: &'k [LocalKey],
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<&'k LocalKey, Refusal> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(auth), Some(date)) = (text("authorization"), text("x-amz-date")) else {
        return Err(Refusal::Missing);
    };
    let params = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(Refusal::Malformed)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in params.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(Refusal::Malformed),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(Refusal::Malformed);
    };
    let access_key = credential.split('/').next().unwrap_or_default();
    let key = keys
        .iter()
        .find(|k| k.access_key_id == access_key)
        .ok_or(Refusal::UnknownKey)?;
    let signed_at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| Refusal::Malformed)?
        .and_utc();
    let now_utc = chrono::DateTime::<chrono::Utc>::from(now);
    let skew = (now_utc - signed_at).abs();
    if skew > chrono::Duration::from_std(MAX_SKEW).unwrap_or_default() {
        return Err(Refusal::Expired);
    }
    // The headers the signer says it signed, as received (several values of one name
    // each count). A signed header that is missing fails the comparison below.
    let mut signable: Vec<(&str, &str)> = Vec::new();
    for name in signed_headers.split(';') {
        for value in headers.get_all(name) {
            signable.push((name, value.to_str().map_err(|_| Refusal::Malformed)?));
        }
    }
    let host = text("host").unwrap_or("unsigned.invalid");
    let uri = format!("http://{host}{path_and_query}");
    let request =
        SignableRequest::new(method, uri, signable.into_iter(), SignableBody::Bytes(body))
            .map_err(|_| Refusal::Malformed)?;
    // Sign exactly what the caller listed: no header of theirs is dropped.
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    let identity = key.credentials().into();
    let signing: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("execute-api")
        .time(SystemTime::from(signed_at))
        .settings(settings)
        .build()
        .map_err(|_| Refusal::Malformed)?
        .into();
    // The signature covers the signed-header list and the scope (day, region, service),
    // so comparing it alone (in constant time) decides.
    let (_, expected) = sign(request, &signing)
        .map_err(|_| Refusal::Malformed)?
        .into_parts();
    if bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        Ok(key)
    } else {
        Err(Refusal::Mismatch)
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
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

/// The HTTP API (payload 2.0) event API Gateway would hand the staff function for a
/// request verified as signed by `key`.
pub fn staff_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    key: &LocalKey,
) -> Value {
    let mut header_map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        header_map.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let mut params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match params.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k, Value::String(v));
            }
        }
    }
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now();
    let caller_id = key.caller_id();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "queryStringParameters": params,
        "headers": header_map,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT,
            "apiId": "local",
            "authorizer": {"iam": {
                "accessKey": key.access_key_id,
                "accountId": LOCAL_ACCOUNT,
                "callerId": caller_id,
                "principalOrgId": null,
                "userArn": key.principal_arn,
                "userId": caller_id,
            }},
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": uuid::Uuid::now_v7().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true,
    })
}

/// Where verified staff requests go.
#[derive(Clone)]
pub enum StaffBackend {
    /// The staff function's handler in this process (the tests).
    InProcess(Arc<dsar::staff::StaffApp>),
    /// The Lambda Invoke API of `cargo lambda watch` (`make run`): `POST
    /// {base_url}/2015-03-31/functions/{function}/invocations` with the event.
    Invoke { base_url: String, function: String },
}

/// Where verified sales requests (`/v1/sales/...`, issue 17) go.
#[derive(Clone)]
pub enum SalesBackend {
    /// The sales function's handler in this process (the tests).
    InProcess(Arc<sales::App>),
    /// The Lambda Invoke API, as for [`StaffBackend::Invoke`].
    Invoke { base_url: String, function: String },
}

struct Inner {
    keys: Vec<LocalKey>,
    staff: StaffBackend,
    /// Without one, sales paths go to `sales-api` at the staff backend's Invoke API, or
    /// are answered 404 when the staff function runs in process.
    sales: Option<SalesBackend>,
    /// Base URL every non-staff path is forwarded to.
    upstream: Option<String>,
    http: reqwest::Client,
    staff_invocations: AtomicUsize,
}

/// The gateway's configuration; [`Gateway::start`] serves it.
pub struct Gateway {
    inner: Inner,
}

/// A running gateway.
pub struct RunningGateway {
    base_url: String,
    inner: Arc<Inner>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

type HttpResponse = http::Response<axum::body::Body>;

fn message(status: StatusCode, text: &str) -> HttpResponse {
    let mut resp = http::Response::new(axum::body::Body::from(
        json!({ "message": text }).to_string(),
    ));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static("ForbiddenException"),
    );
    resp
}

impl Gateway {
    pub fn new(keys: Vec<LocalKey>, staff: StaffBackend, upstream: Option<String>) -> Self {
        Self {
            inner: Inner {
                keys,
                staff,
                sales: None,
                upstream: upstream.map(|u| u.trim_end_matches('/').to_owned()),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("an HTTP client"),
                staff_invocations: AtomicUsize::new(0),
            },
        }
    }

    /// Sends verified sales requests to `sales` (issue 17).
    pub fn with_sales(mut self, sales: SalesBackend) -> Self {
        self.inner.sales = Some(sales);
        self
    }

    /// Serves on `addr` (port 0: any free port).
    pub async fn start(self, addr: SocketAddr) -> Result<RunningGateway> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        self.serve(listener)
    }

    /// Serves on a bound listener (its port may be named before the gateway starts).
    pub fn serve(self, listener: tokio::net::TcpListener) -> Result<RunningGateway> {
        let bound = listener.local_addr()?;
        let inner = Arc::new(self.inner);
        let state = Arc::clone(&inner);
        let app = axum::Router::new().fallback(
            move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
                  req: axum::extract::Request| {
                let state = Arc::clone(&state);
                async move { handle(&state, peer, req).await }
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
        Ok(RunningGateway {
            base_url: format!("http://{bound}"),
            inner,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

impl RunningGateway {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How many requests reached the staff function.
    pub fn staff_invocations(&self) -> usize {
        self.inner.staff_invocations.load(Ordering::SeqCst)
    }

    /// Stops serving and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// Serves until the process is told to stop.
    pub async fn wait(mut self) -> Result<()> {
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

/// Whether `path` is a staff route (`AWS_IAM` in the template).
pub fn is_staff_path(path: &str) -> bool {
    path == "/v1/admin" || path.starts_with("/v1/admin/")
}

/// Whether `path` is a sales route (`AWS_IAM` in the template, issue 17).
pub fn is_sales_path(path: &str) -> bool {
    path == "/v1/sales" || path.starts_with("/v1/sales/")
}

async fn handle(inner: &Inner, peer: SocketAddr, req: axum::extract::Request) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let sales = is_sales_path(&path);
    if !is_staff_path(&path) && !sales {
        return forward(inner, peer, &parts, &path_and_query, body).await;
    }
    let method = parts.method.as_str();
    let key = match verify(
        &inner.keys,
        method,
        &path_and_query,
        &parts.headers,
        &body,
        SystemTime::now(),
    ) {
        Ok(key) => key,
        Err(refusal) => {
            tracing::warn!(?refusal, "staff request refused at the local gateway");
            return message(StatusCode::FORBIDDEN, refusal.message());
        }
    };
    let event = staff_event(method, &path, &query, &parts.headers, &body, key);
    if sales {
        return to_sales(inner, &event).await;
    }
    inner.staff_invocations.fetch_add(1, Ordering::SeqCst);
    match &inner.staff {
        StaffBackend::InProcess(app) => {
            let request = match lambda_http::request::from_str(&event.to_string()) {
                Ok(r) => r,
                Err(_) => return message(StatusCode::BAD_REQUEST, "Bad Request"),
            };
            let resp = dsar::staff::handle(app, request).await;
            let (parts, body) = resp.into_parts();
            let bytes = match body {
                lambda_http::Body::Empty => Vec::new(),
                lambda_http::Body::Text(t) => t.into_bytes(),
                lambda_http::Body::Binary(b) => b,
                _ => Vec::new(),
            };
            http::Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        StaffBackend::Invoke { base_url, function } => {
            invoke(inner, base_url, function, &event).await
        }
    }
}

/// A verified sales request, to the sales function.
async fn to_sales(inner: &Inner, event: &Value) -> HttpResponse {
    let backend = match (&inner.sales, &inner.staff) {
        (Some(b), _) => b.clone(),
        (None, StaffBackend::Invoke { base_url, .. }) => SalesBackend::Invoke {
            base_url: base_url.clone(),
            function: "sales-api".into(),
        },
        (None, StaffBackend::InProcess(_)) => {
            return message(StatusCode::NOT_FOUND, "Not Found");
        }
    };
    match backend {
        SalesBackend::InProcess(app) => {
            let request = match lambda_http::request::from_str(&event.to_string()) {
                Ok(r) => r,
                Err(_) => return message(StatusCode::BAD_REQUEST, "Bad Request"),
            };
            let resp = sales::handle(&app, request).await;
            let (parts, body) = resp.into_parts();
            let bytes = match body {
                lambda_http::Body::Empty => Vec::new(),
                lambda_http::Body::Text(t) => t.into_bytes(),
                lambda_http::Body::Binary(b) => b,
                _ => Vec::new(),
            };
            http::Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        SalesBackend::Invoke { base_url, function } => {
            invoke(inner, &base_url, &function, event).await
        }
    }
}

/// Invokes the function through the Lambda Invoke API and turns its API Gateway v2
/// response into HTTP.
async fn invoke(inner: &Inner, base_url: &str, function: &str, event: &Value) -> HttpResponse {
    let url = format!("{base_url}/2015-03-31/functions/{function}/invocations");
    let answer = match inner.http.post(&url).json(event).send().await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
        Ok(r) => {
            tracing::error!(
                status = r.status().as_u16(),
                "staff function invocation failed"
            );
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "staff function not reachable");
            None
        }
    };
    let Some(answer) = answer else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    v2_response(&answer)
}

/// An API Gateway v2 (payload 2.0) function response as HTTP.
pub fn v2_response(answer: &Value) -> HttpResponse {
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok());
    let Some(status) = status else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let text = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"] == true {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut resp = http::Response::new(axum::body::Body::from(body));
    *resp.status_mut() = status;
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    };
    if let Some(headers) = answer["headers"].as_object() {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                add(k, v);
            }
        }
    }
    if let Some(headers) = answer["multiValueHeaders"].as_object() {
        for (k, values) in headers {
            if answer["headers"].get(k).is_some() {
                continue;
            }
            for v in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                add(k, v);
            }
        }
    }
    if let Some(cookies) = answer["cookies"].as_array() {
        for c in cookies.iter().filter_map(Value::as_str) {
            add("set-cookie", c);
        }
    }
    resp
}

/// The Lambda Invoke API's path prefix (never forwarded).
const INVOKE_API: &str = "/2015-03-31/";

/// Hop-by-hop headers, not forwarded.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
    "host",
];

/// A non-staff request, forwarded unchanged to the upstream.
async fn forward(
    inner: &Inner,
    peer: SocketAddr,
    parts: &http::request::Parts,
    path_and_query: &str,
    body: axum::body::Bytes,
) -> HttpResponse {
    // API Gateway has no route to the Lambda Invoke API: a caller of the gateway must not
    // reach `cargo lambda watch`'s invoke endpoint (and forge an authoriser context).
    let Some(upstream) = inner
        .upstream
        .as_ref()
        .filter(|_| !parts.uri.path().starts_with(INVOKE_API))
    else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut req = inner
        .http
        .request(parts.method.clone(), format!("{upstream}{path_and_query}"));
    for (name, value) in &parts.headers {
        if !HOP.contains(&name.as_str()) {
            req = req.header(name, value);
        }
    }
    // Like API Gateway, the caller's address is appended to `X-Forwarded-For`: the last
    // entry is the one this hop vouches for (the functions host reads it).
    req = req.header("x-forwarded-for", peer.ip().to_string());
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "upstream not reachable");
            return message(StatusCode::BAD_GATEWAY, "Bad Gateway");
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut out = http::Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = status;
    for (name, value) in &headers {
        if !HOP.contains(&name.as_str()) {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(
        key: &LocalKey,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        time: SystemTime,
    ) -> HeaderMap {
        let url = format!("http://127.0.0.1:9000{path_and_query}");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        for (k, v) in admin::sign::signing_headers(
            method,
            &url,
            &[("content-type", "application/json")],
            body,
            &key.credentials(),
            REGION,
            time,
        )
        .unwrap()
        {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        headers
    }

    /// A request signed by the CLI verifies as its key; every change to what was signed,
    /// a wrong secret, an unknown key or a stale date does not.
    #[test]
    fn verifies_what_the_cli_signs_and_nothing_else() {
        let keys = local_keys();
        let now = SystemTime::now();
        let body = br#"{"months":2,"reason":"x"}"#;
        let path = "/v1/admin/dsar/abc/extend?x=1";
        let h = signed(&keys[0], "POST", path, body, now);
        let ok = verify(&keys, "POST", path, &h, body, now).unwrap();
        assert_eq!(ok.principal_arn, LOCAL_STAFF_PRINCIPAL);
        let v = |m: &str, p: &str, h: &HeaderMap, b: &[u8], t: SystemTime| {
            verify(&keys, m, p, h, b, t).unwrap_err()
        };
        assert_eq!(v("POST", path, &h, b"{}", now), Refusal::Mismatch, "body");
        assert_eq!(v("GET", path, &h, body, now), Refusal::Mismatch, "method");
        assert_eq!(
            v("POST", "/v1/admin/dsar/abd/extend?x=1", &h, body, now),
            Refusal::Mismatch,
            "path"
        );
        assert_eq!(
            v("POST", "/v1/admin/dsar/abc/extend?x=2", &h, body, now),
            Refusal::Mismatch,
            "query"
        );
        let mut other_host = h.clone();
        other_host.insert("host", HeaderValue::from_static("127.0.0.1:9001"));
        assert_eq!(v("POST", path, &other_host, body, now), Refusal::Mismatch);
        let mut other_type = h.clone();
        other_type.insert("content-type", HeaderValue::from_static("text/plain"));
        assert_eq!(v("POST", path, &other_type, body, now), Refusal::Mismatch);
        // The right key id with the wrong secret.
        let forged = LocalKey::new("testing", "guessed", LOCAL_STAFF_PRINCIPAL);
        let h2 = signed(&forged, "POST", path, body, now);
        assert_eq!(v("POST", path, &h2, body, now), Refusal::Mismatch);
        // A key the gateway does not know.
        let stranger = LocalKey::new("AKIASTRANGER", "s", LOCAL_STAFF_PRINCIPAL);
        let h3 = signed(&stranger, "POST", path, body, now);
        assert_eq!(v("POST", path, &h3, body, now), Refusal::UnknownKey);
        // Signed 16 minutes ago, or 16 minutes ahead.
        for t in [
            now - MAX_SKEW - Duration::from_secs(60),
            now + MAX_SKEW + Duration::from_secs(60),
        ] {
            let h4 = signed(&keys[0], "POST", path, body, t);
            assert_eq!(v("POST", path, &h4, body, now), Refusal::Expired);
        }
        // 14 minutes old is still fine.
        let h5 = signed(
            &keys[0],
            "POST",
            path,
            body,
            now - Duration::from_secs(14 * 60),
        );
        assert!(verify(&keys, "POST", path, &h5, body, now).is_ok());
        // No header; a header that is not SigV4.
        assert_eq!(
            v("POST", path, &HeaderMap::new(), body, now),
            Refusal::Missing
        );
        let mut basic = h.clone();
        basic.insert(
            "authorization",
            HeaderValue::from_static("Basic dGVzdGluZzp0ZXN0aW5n"),
        );
        assert_eq!(v("POST", path, &basic, body, now), Refusal::Malformed);
    }

    /// A signature whose SignedHeaders leave out the body's content type, or host, does
    /// not verify when the header is swapped: what was listed is what is compared.
    #[test]
    fn an_unsigned_header_cannot_be_smuggled_into_the_signed_list() {
        let keys = local_keys();
        let now = SystemTime::now();
        let path = "/v1/admin/dsar";
        let h = signed(&keys[0], "GET", path, b"", now);
        let auth = h["authorization"].to_str().unwrap().to_owned();
        let mut tampered = h.clone();
        tampered.insert(
            "authorization",
            HeaderValue::from_str(&auth.replace("content-type;host;x-amz-date", "host;x-amz-date"))
                .unwrap(),
        );
        assert_eq!(
            verify(&keys, "GET", path, &tampered, b"", now).unwrap_err(),
            Refusal::Mismatch
        );
    }

    #[test]
    fn query_components_are_decoded() {
        assert_eq!(decode("a%20b+c%2Fd%zz%"), "a b c/d%zz%");
    }

    /// The event names the key's principal where API Gateway's IAM authoriser does.
    #[test]
    fn the_event_carries_the_principal_of_the_key() {
        let keys = local_keys();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let e = staff_event(
            "GET",
            "/v1/admin/dsar",
            "status=open",
            &headers,
            b"",
            &keys[1],
        );
        assert_eq!(
            e["requestContext"]["authorizer"]["iam"]["userArn"],
            LOCAL_INTRUDER_PRINCIPAL
        );
        assert_eq!(
            e["requestContext"]["authorizer"]["iam"]["accessKey"],
            LOCAL_INTRUDER_KEY
        );
        assert_eq!(e["queryStringParameters"]["status"], "open");
        let req = lambda_http::request::from_str(&e.to_string()).unwrap();
        assert_eq!(req.uri().path(), "/v1/admin/dsar");
    }
}
