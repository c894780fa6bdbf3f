//! A local CRM receiver (issue 17): what `CRM_WEBHOOK_URL` points at in `make run` and
//! the tests (bin `crm-sim`).
//!
//! - `POST /webhook`: verifies `X-Polly-Signature` (HMAC-SHA256 over `<t>.<body>`, five
//!   minutes' tolerance), dedupes on `event_id`, stores the event with its raw body and
//!   signature header; 401 on a bad signature, 400 on a body that is not an event.
//! - `GET /received`: `{"events":[{"event_id","type","lead_id","occurred_at","record"?,
//!   "body","signature","received_at_ms"}], "attempts", "duplicates", "rejected"}`.
//! - `POST /fail?count=n`: the next n deliveries get 503 (not stored).
//! - `POST /lose?count=n`: the next n deliveries are stored, then answered 503 (a 2xx
//!   lost on the way: the sender retries, the receiver dedupes).
//! - `POST /down`, `POST /up`: every delivery gets 503 while down.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The secret `make run` and the tests sign with (local only).
pub const LOCAL_SECRET: &str = "local-crm-webhook-secret";

#[derive(Default)]
struct Inner {
    events: Vec<Value>,
    seen: HashSet<String>,
    attempts: usize,
    duplicates: usize,
    rejected: usize,
    fail: usize,
    lose: usize,
    down: bool,
}

#[derive(Clone)]
struct Shared {
    secret: Arc<Vec<u8>>,
    inner: Arc<Mutex<Inner>>,
}

/// A running receiver.
pub struct CrmReceiver {
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl CrmReceiver {
    /// Serves on `addr` (port 0: any free port), verifying with `secret`.
    pub async fn start(addr: SocketAddr, secret: &str) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr()?;
        let state = Shared {
            secret: Arc::new(secret.as_bytes().to_vec()),
            inner: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/webhook", post(webhook))
            .route("/received", get(received))
            .route("/fail", post(fail))
            .route("/lose", post(lose))
            .route("/down", post(down))
            .route("/up", post(up))
            .with_state(state);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Self {
            url: format!("http://{bound}"),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the webhook goes: `<url>/webhook`.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhook", self.url)
    }

    /// Waits until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for CrmReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn unavailable() -> (StatusCode, Json) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "unavailable"})),
    )
}

async fn webhook(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json) {
    let now = chrono::Utc::now();
    let mut inner = s.inner.lock().unwrap();
    inner.attempts += 1;
    if inner.down {
        return unavailable();
    }
    if inner.fail > 0 {
        inner.fail -= 1;
        return unavailable();
    }
    let signature = headers
        .get(shared::domain::crm::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !shared::domain::crm::verify(&s.secret, &signature, &body, now.timestamp(), 300) {
        inner.rejected += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad signature"})),
        );
    }
    let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(&body) else {
        inner.rejected += 1;
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "not JSON"})));
    };
    let Some(id) = event
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        inner.rejected += 1;
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "no event_id"})),
        );
    };
    if inner.seen.insert(id) {
        event.insert(
            "body".into(),
            Value::String(String::from_utf8_lossy(&body).into_owned()),
        );
        event.insert("signature".into(), Value::String(signature));
        event.insert("received_at_ms".into(), json!(now.timestamp_millis()));
        inner.events.push(Value::Object(event));
    } else {
        inner.duplicates += 1;
    }
    if inner.lose > 0 {
        inner.lose -= 1;
        return unavailable();
    }
    (StatusCode::OK, Json(json!({"ok": true})))
}

async fn received(State(s): State<Shared>) -> Json {
    let inner = s.inner.lock().unwrap();
    Json(json!({
        "events": inner.events,
        "attempts": inner.attempts,
        "duplicates": inner.duplicates,
        "rejected": inner.rejected,
    }))
}

/// `?count=n` (default 1).
fn count(uri: &axum::http::Uri) -> usize {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("count="))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// A JSON answer (axum's `Json` is not compiled in here).
struct Json(Value);

impl axum::response::IntoResponse for Json {
    fn into_response(self) -> axum::response::Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

async fn fail(State(s): State<Shared>, uri: axum::http::Uri) -> StatusCode {
    s.inner.lock().unwrap().fail = count(&uri);
    StatusCode::NO_CONTENT
}

async fn lose(State(s): State<Shared>, uri: axum::http::Uri) -> StatusCode {
    s.inner.lock().unwrap().lose = count(&uri);
    StatusCode::NO_CONTENT
}

async fn down(State(s): State<Shared>) -> StatusCode {
    s.inner.lock().unwrap().down = true;
    StatusCode::NO_CONTENT
}

async fn up(State(s): State<Shared>) -> StatusCode {
    s.inner.lock().unwrap().down = false;
    StatusCode::NO_CONTENT
}
