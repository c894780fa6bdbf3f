//! `make bench` for the sign-up function (dev-only).
//!
//! Runs the real release binary against a local Lambda Runtime API served here, with the
//! data layer in the emulator, and measures:
//! - binary size of the arm64 Lambda build (`bootstrap`) and of the native build;
//! - init time: from process spawn to the binary's first `GET …/invocation/next`, the
//!   moment it is ready for its first event (native build: this machine cannot execute
//!   arm64 code);
//! - warm handler latency per sign-up: from handing out the event to receiving the
//!   response, against the emulator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use harness::events::ApiRequest;
use harness::stack::Stack;
use tokio::sync::{mpsc, oneshot, Mutex};

const COLD_STARTS: usize = 20;
/// Warm runs happen in batches, each on a fresh stack and process: moto's
/// TransactWriteItems deep-copies the whole table (with its stream) once per item, so on a
/// growing moto table latency grows with the table; DynamoDB's does not.
const BATCHES: usize = 8;
const NEW_PER_BATCH: usize = 25;
const REPEATS_PER_BATCH: usize = 12;

struct Runtime {
    /// Events waiting to be handed out, with the channel for their response.
    queue: Mutex<mpsc::Receiver<(String, oneshot::Sender<String>)>>,
    pending: Mutex<std::collections::HashMap<String, oneshot::Sender<String>>>,
    /// Signalled on each `next` call (the first one marks readiness).
    next_calls: mpsc::UnboundedSender<Instant>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> (StatusCode, HeaderMap, String) {
    let _ = rt.next_calls.send(Instant::now());
    let item = rt.queue.lock().await.recv().await;
    let Some((event, reply)) = item else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let id = uuid::Uuid::now_v7().to_string();
    rt.pending.lock().await.insert(id.clone(), reply);
    let mut headers = HeaderMap::new();
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(10))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let h = |v: String| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
    headers.insert("lambda-runtime-aws-request-id", h(id));
    headers.insert("lambda-runtime-deadline-ms", h(deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-central-1:123456789012:function:bench-signup"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
    );
    (StatusCode::OK, headers, event)
}

async fn response(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    if let Some(reply) = rt.pending.lock().await.remove(&id) {
        let _ = reply.send(body);
    }
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, Path(id): Path<String>, body: String) -> StatusCode {
    if let Some(reply) = rt.pending.lock().await.remove(&id) {
        let _ = reply.send(format!("ERROR {body}"));
    }
    StatusCode::ACCEPTED
}

async fn init_error(body: String) -> StatusCode {
    eprintln!("init error: {body}");
    StatusCode::ACCEPTED
}

struct Server {
    addr: SocketAddr,
    events: mpsc::Sender<(String, oneshot::Sender<String>)>,
    next_calls: mpsc::UnboundedReceiver<Instant>,
}

async fn serve_runtime_api() -> Result<Server> {
    let (events, queue) = mpsc::channel(1);
    let (next_tx, next_calls) = mpsc::unbounded_channel();
    let rt = Arc::new(Runtime {
        queue: Mutex::new(queue),
        pending: Mutex::new(Default::default()),
        next_calls: next_tx,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server {
        addr,
        events,
        next_calls,
    })
}

fn spawn_function(
    binary: &str,
    stack: &Stack,
    runtime: SocketAddr,
) -> Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env_clear()
        .envs(stack.function_env("SignupFunction")?)
        .env("RUST_LOG", "warn")
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench-signup")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "eu-central-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", harness::endpoint())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {binary}"))
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<38} n={:<4} min {:>8.2?}  p50 {:>8.2?}  p95 {:>8.2?}  max {:>8.2?}  mean {:>8.2?}",
        samples.len(),
        samples[0],
        pct(0.5),
        pct(0.95),
        samples[samples.len() - 1],
        mean
    );
}

/// Sends events one after another; returns each invocation's latency.
async fn invoke_all(server: &Server, events: Vec<Vec<u8>>) -> Result<Vec<Duration>> {
    let mut samples = Vec::new();
    for body in events {
        let event = ApiRequest::post_json("/v1/signups", &body)
            .event()
            .to_string();
        let (tx, rx) = oneshot::channel();
        let start = Instant::now();
        server
            .events
            .send((event, tx))
            .await
            .map_err(|_| anyhow!("runtime gone"))?;
        let resp = rx.await?;
        samples.push(start.elapsed());
        let status = serde_json::from_str::<serde_json::Value>(&resp)
            .ok()
            .and_then(|v| v["statusCode"].as_u64());
        if status != Some(201) {
            return Err(anyhow!("unexpected response: {resp}"));
        }
    }
    Ok(samples)
}

fn form(i: usize, repeat: bool) -> Vec<u8> {
    let email = if repeat {
        "bench.repeat@example.org".to_owned()
    } else {
        format!("bench.{i}@example.org")
    };
    let phone = if repeat {
        "+49 170 5550000".to_owned()
    } else {
        format!("+49 170 {:07}", 1_000_000 + i)
    };
    serde_json::to_vec(&serde_json::json!({
        "first_name": "Bench", "last_name": "Mark", "email": email, "phone": phone,
        "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"}
    }))
    .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let binary =
        arg("--binary").ok_or_else(|| anyhow!("--binary <native release build> is required"))?;

    println!("== sign-up function benchmark");
    for (label, path) in [
        ("arm64 Lambda bootstrap", arg("--arm64-binary")),
        ("native release binary", Some(binary.clone())),
    ] {
        if let Some(path) = path {
            let len = std::fs::metadata(&path)
                .with_context(|| path.clone())?
                .len();
            println!(
                "{label:<38} {:.2} MiB ({len} bytes)  {path}",
                len as f64 / 1_048_576.0
            );
        }
    }

    let stack = Stack::isolated().await?;
    let mut server = serve_runtime_api().await?;

    // Init: spawn → first `next`.
    let mut inits = Vec::new();
    for _ in 0..COLD_STARTS {
        let start = Instant::now();
        let mut child = spawn_function(&binary, &stack, server.addr)?;
        let ready = tokio::time::timeout(Duration::from_secs(10), server.next_calls.recv())
            .await
            .context("the function never asked for an event")?
            .ok_or_else(|| anyhow!("runtime API closed"))?;
        inits.push(ready - start);
        child.kill().await?;
        let _ = child.wait().await;
    }
    stats("init (spawn → ready for first event)", inits);

    // Warm invocations.
    let mut new = Vec::new();
    let mut repeat = Vec::new();
    for batch in 0..BATCHES {
        let stack = Stack::isolated().await?;
        let mut server = serve_runtime_api().await?;
        let mut child = spawn_function(&binary, &stack, server.addr)?;
        server.next_calls.recv().await;
        // A few untimed requests open the connections.
        invoke_all(&server, (0..3).map(|i| form(100_000 + i, false)).collect()).await?;
        let base = batch * NEW_PER_BATCH;
        let events = (base..base + NEW_PER_BATCH)
            .map(|i| form(i, false))
            .collect();
        new.extend(invoke_all(&server, events).await?);
        let events = (0..REPEATS_PER_BATCH).map(|i| form(i, true)).collect();
        repeat.extend(invoke_all(&server, events).await?);
        child.kill().await?;
    }
    stats("warm sign-up, new subject", new);
    stats("warm sign-up, known subject (< 24 h)", repeat);
    println!(
        "(latencies include moto, a single-threaded Python emulator, for 6 AWS calls per sign-up)"
    );
    Ok(())
}
