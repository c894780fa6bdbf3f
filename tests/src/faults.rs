//! Faults at the wire: an HTTP proxy in front of the emulator (or the provider simulator)
//! that counts the requests it forwards and fails the N-th one once.
//!
//! Point an SDK configuration (or the provider base URL) at [`Proxy::url`]; the proxy
//! forwards every request to its upstream, one connection per request, and labels it with
//! the service and operation (`dynamodb:PutItem`, `s3:PUT object`, `provider:POST
//! /v2/create-phone-call`) for reporting. Nothing of our code is mocked: the SDK sees a
//! throttle, a 500, a dropped connection or a hung answer exactly as it would from AWS.
//!
//! - [`Fault::Throttle`]: answered by the proxy, not forwarded: the service's throttling
//!   error (DynamoDB `ThrottlingException`, S3 503 `SlowDown`, KMS and Secrets Manager
//!   `ThrottlingException`, SES 429, the provider 429).
//! - [`Fault::ServerError`]: forwarded and applied by the upstream, then answered 500: the
//!   client retries a request that already took effect.
//! - [`Fault::Reset`]: forwarded and applied, then the connection is reset without an answer.
//! - [`Fault::Timeout`]: forwarded and applied, then no answer until [`Proxy::hang`] has
//!   passed (longer than the client's attempt timeout), then the connection is dropped.
//!
//! The emulator's own API (`/moto-api/…`, where tests read sent mail) is forwarded but
//! neither counted nor failed.
//!
//! One guarantee of AWS that the emulator lacks is kept by the proxy: DynamoDB treats a
//! `TransactWriteItems` with a `ClientRequestToken` it saw within ten minutes as a repeat
//! and answers it as the first time without applying it again. The SDK sets a token on
//! every transaction and keeps it on its retries, so without this a fault after the
//! transaction was applied would show a divergence that AWS would not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One fault, injected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Throttle,
    ServerError,
    Reset,
    Timeout,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Reset,
        Fault::Timeout,
    ];
}

/// What the proxy stands in front of: decides the shape of a throttling answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// The AWS emulator (every service on one endpoint).
    Aws,
    /// The telephony provider (simulator).
    Provider,
}

#[derive(Default)]
struct State {
    /// Labels of the requests seen since the last [`Proxy::arm`] / [`Proxy::record`].
    seen: Vec<String>,
    recording: bool,
    armed: Option<(usize, Fault)>,
    /// The label of the request the fault hit, once it did.
    injected: Option<String>,
    /// DynamoDB's idempotency window, which the emulator lacks: the successful answer
    /// to each `TransactWriteItems` by its `ClientRequestToken` (with the request body).
    tokens: HashMap<String, (Vec<u8>, Vec<u8>)>,
}

/// A fault-injecting proxy on loopback. It serves until dropped.
pub struct Proxy {
    url: String,
    state: Arc<Mutex<State>>,
    hang: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port`); a [`Fault::Timeout`] holds its
    /// connection for `hang` (make it longer than the client's attempt timeout).
    pub async fn start(upstream: &str, kind: Upstream, hang: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let state = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &upstream, kind, hang, state).await;
                });
            }
        });
        Ok(Self {
            url,
            state,
            hang,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long a [`Fault::Timeout`] holds the connection.
    pub fn hang(&self) -> Duration {
        self.hang
    }

    /// Counts from now, without a fault.
    pub fn record(&self) {
        let mut s = self.state.lock().unwrap();
        *s = State {
            recording: true,
            tokens: std::mem::take(&mut s.tokens),
            ..State::default()
        };
    }

    /// Counts from now and fails the `n`-th request (1-based) once with `fault`.
    pub fn arm(&self, n: usize, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        *s = State {
            recording: true,
            armed: Some((n, fault)),
            tokens: std::mem::take(&mut s.tokens),
            ..State::default()
        };
    }

    /// Stops counting (and drops a fault not yet injected); returns the labels seen.
    pub fn stop(&self) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        s.recording = false;
        s.armed = None;
        std::mem::take(&mut s.seen)
    }

    /// The label of the request the armed fault hit, if it was reached.
    pub fn injected(&self) -> Option<String> {
        self.state.lock().unwrap().injected.clone()
    }
}

/// A request read off the client connection.
struct Request {
    method: String,
    path: String,
    /// The header lines, as sent (without the request line), minus `Connection`.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(b"connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

async fn serve(
    conn: TcpStream,
    upstream: &str,
    kind: Upstream,
    hang: Duration,
    state: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    loop {
        let Some(request) = read_request(&mut reader).await? else {
            return Ok(());
        };
        let label = label(&request, kind);
        let fault = {
            let mut s = state.lock().unwrap();
            let counted = s.recording && !request.path.starts_with("/moto-api");
            let mut fault = None;
            if counted {
                s.seen.push(label.clone());
                if let Some((n, f)) = s.armed {
                    if s.seen.len() == n {
                        fault = Some(f);
                        s.injected = Some(label.clone());
                    }
                }
            }
            fault
        };
        if fault == Some(Fault::Throttle) {
            let answer = throttle(&request, kind);
            reader.get_mut().write_all(&answer).await?;
            continue;
        }
        let token = idempotency_token(&request);
        let replay = token.as_ref().and_then(|t| {
            let s = state.lock().unwrap();
            s.tokens
                .get(t)
                .filter(|(body, _)| *body == request.body)
                .map(|(_, response)| response.clone())
        });
        let response = match replay {
            // DynamoDB answers a retried transaction within its idempotency window with
            // the first answer, without applying it again.
            Some(response) => response,
            None => {
                let response = forward(upstream, &request).await?;
                if let Some(t) = token {
                    if response.starts_with(b"HTTP/1.1 200")
                        || response.starts_with(b"HTTP/1.0 200")
                    {
                        state
                            .lock()
                            .unwrap()
                            .tokens
                            .insert(t, (request.body.clone(), response.clone()));
                    }
                }
                response
            }
        };
        match fault {
            None => {
                reader.get_mut().write_all(&response).await?;
                // The upstream closed its connection after the answer; so do we (the
                // answer says `Connection: close` or is read to its end by the client).
                if !keeps_alive(&response) {
                    return Ok(());
                }
            }
            Some(Fault::ServerError) => {
                reader
                    .get_mut()
                    .write_all(&server_error(&request, kind))
                    .await?;
            }
            Some(Fault::Reset) => {
                let conn = reader.into_inner();
                conn.set_zero_linger()?;
                drop(conn);
                return Ok(());
            }
            Some(Fault::Timeout) => {
                tokio::time::sleep(hang).await;
                return Ok(());
            }
            Some(Fault::Throttle) => unreachable!(),
        }
    }
}

/// The `ClientRequestToken` of a DynamoDB `TransactWriteItems` (the SDK sets one per
/// call, the same on every retry of it).
fn idempotency_token(request: &Request) -> Option<String> {
    if request.header("x-amz-target") != Some("DynamoDB_20120810.TransactWriteItems") {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
    body.get("ClientRequestToken")?.as_str().map(str::to_owned)
}

/// Whether a forwarded answer leaves the client connection open: only when it is framed
/// by a length and does not say `close` (the upstream's own connection always closes).
fn keeps_alive(response: &[u8]) -> bool {
    let head_end = find(response, b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    head.contains("content-length:") && !head.contains("connection: close")
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t).await? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).await?;
        }
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        reader.read_exact(&mut body).await?;
    }
    headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("connection")
            && !k.eq_ignore_ascii_case("content-length")
            && !k.eq_ignore_ascii_case("transfer-encoding")
            && !k.eq_ignore_ascii_case("expect")
    });
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

/// Sends `request` upstream on a connection of its own and returns the whole answer.
async fn forward(upstream: &str, request: &Request) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(upstream).await?;
    conn.write_all(&request.to_bytes()).await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The AWS service a request is for.
fn service(request: &Request) -> &'static str {
    match request.header("x-amz-target") {
        Some(t) if t.starts_with("DynamoDB") => "dynamodb",
        Some(t) if t.starts_with("TrentService") => "kms",
        Some(t) if t.starts_with("secretsmanager") => "secretsmanager",
        Some(_) => "other",
        None if request.path.starts_with("/v2/email") => "ses",
        None => "s3",
    }
}

/// `service:Operation` for reporting; no key, id or value of the request.
pub fn label_of(method: &str, path: &str, target: Option<&str>, kind: Upstream) -> String {
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: target
            .map(|t| vec![("x-amz-target".to_owned(), t.to_owned())])
            .unwrap_or_default(),
        body: Vec::new(),
    };
    label(&request, kind)
}

fn label(request: &Request, kind: Upstream) -> String {
    if kind == Upstream::Provider {
        let path = request.path.split('?').next().unwrap_or_default();
        let shape: Vec<&str> = path
            .split('/')
            .map(|seg| {
                if seg.len() > 24 || seg.chars().any(|c| c.is_ascii_digit()) && seg.len() > 3 {
                    "{id}"
                } else {
                    seg
                }
            })
            .collect();
        return format!("provider:{} {}", request.method, shape.join("/"));
    }
    let service = service(request);
    match service {
        "dynamodb" | "kms" | "secretsmanager" | "other" => {
            let target = request.header("x-amz-target").unwrap_or_default();
            let op = target.rsplit('.').next().unwrap_or(target);
            format!("{service}:{op}")
        }
        "ses" => format!("ses:{} {}", request.method, {
            let path = request.path.split('?').next().unwrap_or_default();
            path.split('/').take(4).collect::<Vec<_>>().join("/")
        }),
        _ => {
            let (path, query) = request
                .path
                .split_once('?')
                .unwrap_or((request.path.as_str(), ""));
            let what = if path.trim_matches('/').contains('/') {
                "object"
            } else {
                "bucket"
            };
            let sub = query
                .split('&')
                .map(|p| p.split('=').next().unwrap_or_default())
                .find(|p| {
                    [
                        "uploads",
                        "uploadId",
                        "versions",
                        "delete",
                        "list-type",
                        "versionId",
                        "tagging",
                        "x-id",
                    ]
                    .contains(p)
                })
                .map(|p| format!(" ?{p}"))
                .unwrap_or_default();
            format!("s3:{} {what}{sub}", request.method)
        }
    }
}

fn answer(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nx-amzn-requestid: injected-fault\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

fn throttle(request: &Request, kind: Upstream) -> Vec<u8> {
    if kind == Upstream::Provider {
        return answer(
            "429 Too Many Requests",
            &[("content-type", "application/json")],
            r#"{"error":"rate limit exceeded"}"#,
        );
    }
    match service(request) {
        "dynamodb" => answer(
            "400 Bad Request",
            &[("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ),
        "ses" => answer(
            "429 Too Many Requests",
            &[
                ("content-type", "application/json"),
                ("x-amzn-errortype", "TooManyRequestsException"),
            ],
            r#"{"message":"Too many requests"}"#,
        ),
        "s3" => answer(
            "503 Slow Down",
            &[("content-type", "application/xml")],
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        ),
        _ => answer(
            "400 Bad Request",
            &[("content-type", "application/x-amz-json-1.1")],
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
    }
}

fn server_error(request: &Request, kind: Upstream) -> Vec<u8> {
    if kind == Upstream::Provider {
        return answer(
            "500 Internal Server Error",
            &[("content-type", "application/json")],
            r#"{"error":"internal error"}"#,
        );
    }
    match service(request) {
        "dynamodb" => answer(
            "500 Internal Server Error",
            &[("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#,
        ),
        "ses" => answer(
            "500 Internal Server Error",
            &[
                ("content-type", "application/json"),
                ("x-amzn-errortype", "InternalFailure"),
            ],
            r#"{"message":"Internal failure"}"#,
        ),
        "s3" => answer(
            "500 Internal Server Error",
            &[("content-type", "application/xml")],
            "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>",
        ),
        "kms" => answer(
            "500 Internal Server Error",
            &[("content-type", "application/x-amz-json-1.1")],
            r#"{"__type":"KMSInternalException","message":"Internal error"}"#,
        ),
        _ => answer(
            "500 Internal Server Error",
            &[("content-type", "application/x-amz-json-1.1")],
            r#"{"__type":"InternalServiceError","message":"Internal error"}"#,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_operation_and_nothing_of_the_request() {
        assert_eq!(
            label_of(
                "POST",
                "/",
                Some("DynamoDB_20120810.PutItem"),
                Upstream::Aws
            ),
            "dynamodb:PutItem"
        );
        assert_eq!(
            label_of("POST", "/", Some("TrentService.Decrypt"), Upstream::Aws),
            "kms:Decrypt"
        );
        assert_eq!(
            label_of(
                "PUT",
                "/b/rec/call_1.wav?x-id=PutObject",
                None,
                Upstream::Aws
            ),
            "s3:PUT object ?x-id"
        );
        assert_eq!(
            label_of("POST", "/b?delete", None, Upstream::Aws),
            "s3:POST bucket ?delete"
        );
        assert_eq!(
            label_of(
                "DELETE",
                "/v2/delete-call/call_0193ab12cd",
                None,
                Upstream::Provider
            ),
            "provider:DELETE /v2/delete-call/{id}"
        );
    }
}
