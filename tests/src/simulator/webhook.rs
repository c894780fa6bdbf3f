//! Signed webhook delivery, the way RetellAI sends it.
//!
//! `X-Retell-Signature: v=<unix ms>,d=<hex HMAC-SHA256(api key, body ‖ decimal v)>`, the
//! body as exact bytes, `Content-Type: application/json`. Deliveries can be duplicated,
//! re-ordered, thinned out, delayed and retried like the provider's "in order but not
//! blocking" delivery does, so receivers can be tested against all of it.

use std::time::Duration;

use anyhow::{Context, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::http;

/// Per-attempt timeout RetellAI applies by default (`webhook_timeout_ms`).
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries RetellAI makes after an attempt without a 2xx answer.
pub const PROVIDER_RETRIES: u32 = 3;

/// Hex HMAC-SHA256 digest of `body` followed by the decimal digits of `timestamp_ms`,
/// keyed with the API key as UTF-8 (the `d=` part of the header).
pub fn digest(body: &[u8], key: &str, timestamp_ms: u64) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The full `X-Retell-Signature` header value: `v=<timestamp_ms>,d=<digest>`.
pub fn sign(body: &[u8], key: &str, timestamp_ms: u64) -> String {
    format!("v={timestamp_ms},d={}", digest(body, key, timestamp_ms))
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// One webhook as it goes over the wire: the event name and the exact body bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `call_started`, `call_ended`, `call_analyzed`, …
    pub event: String,
    /// The call the event is about.
    pub call_id: String,
    /// The serialised `{"event": …, "call": {…}}` body, sent byte for byte.
    pub body: Vec<u8>,
}

impl WebhookEvent {
    /// Wraps a call object into the provider's envelope.
    pub fn new(event: &str, call: &serde_json::Value) -> Result<Self> {
        let call_id = call
            .get("call_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let body = serde_json::to_vec(&serde_json::json!({ "event": event, "call": call }))
            .context("serialising a webhook body")?;
        Ok(Self {
            event: event.to_owned(),
            call_id,
            body,
        })
    }

    /// The body parsed back (for assertions).
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("webhook body is not JSON")
    }
}

/// Only the event name, call id and size: bodies carry personal data.
impl std::fmt::Debug for WebhookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEvent")
            .field("event", &self.event)
            .field("call_id", &self.call_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What the receiver answered to one POST.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// HTTP status code.
    pub status: u16,
    /// Response body bytes.
    pub body: Vec<u8>,
}

impl Delivered {
    /// Whether the provider would count this as delivered (any 2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Where and how to sign webhooks.
#[derive(Clone)]
pub struct Webhook {
    /// Receiver URL (`http://` only).
    pub url: String,
    /// The API key the signature is made with.
    pub api_key: String,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How a batch of events is delivered (see [`Webhook::deliver_all`]).
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// Send every event twice in a row (a retry whose first answer got lost).
    pub duplicate: bool,
    /// Send the events in reverse order.
    pub reverse: bool,
    /// Pause before every attempt after the first.
    pub delay: Duration,
    /// Event names not to send at all (a lost `call_started`, …).
    pub omit: Vec<String>,
    /// Retries after an attempt without a 2xx answer (the provider makes up to 3).
    pub retries: u32,
    /// Signature timestamp to use instead of the clock (stale or future signatures).
    pub timestamp_ms: Option<u64>,
}

/// The outcome of one POST made by [`Webhook::deliver_all`].
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Event name.
    pub event: String,
    /// Call id of the event.
    pub call_id: String,
    /// 1 for the first try of this event, 2 for its first retry, …
    pub attempt: u32,
    /// The answer, or why there was none (connection refused, timeout).
    pub outcome: std::result::Result<Delivered, String>,
}

impl Webhook {
    /// A webhook target with the provider's default timeout.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: api_key.into(),
            timeout: PROVIDER_TIMEOUT,
        }
    }

    /// POSTs one event signed with the current time.
    pub async fn deliver(&self, event: &WebhookEvent) -> Result<Delivered> {
        self.deliver_at(event, now_ms()).await
    }

    /// POSTs one event signed with the given timestamp.
    pub async fn deliver_at(&self, event: &WebhookEvent, timestamp_ms: u64) -> Result<Delivered> {
        let signature = sign(&event.body, &self.api_key, timestamp_ms);
        self.deliver_signed(&event.body, &signature).await
    }

    /// POSTs arbitrary bytes with an arbitrary signature header (for tampering tests).
    pub async fn deliver_signed(&self, body: &[u8], signature: &str) -> Result<Delivered> {
        let headers = [
            ("Content-Type", "application/json"),
            ("X-Retell-Signature", signature),
        ];
        let response =
            tokio::time::timeout(self.timeout, http::send("POST", &self.url, &headers, body))
                .await
                .with_context(|| format!("webhook not answered within {:?}", self.timeout))?
                .context("delivering a webhook")?;
        Ok(Delivered {
            status: response.status,
            body: response.body,
        })
    }

    /// Delivers a batch as `delivery` says; every attempt is reported, none is an error.
    pub async fn deliver_all(&self, events: &[WebhookEvent], delivery: &Delivery) -> Vec<Attempt> {
        let mut queue: Vec<&WebhookEvent> = events
            .iter()
            .filter(|e| !delivery.omit.iter().any(|o| o == &e.event))
            .collect();
        if delivery.reverse {
            queue.reverse();
        }
        if delivery.duplicate {
            queue = queue.into_iter().flat_map(|e| [e, e]).collect();
        }
        let mut attempts = Vec::new();
        for event in queue {
            for attempt in 1..=delivery.retries.saturating_add(1) {
                if !attempts.is_empty() && !delivery.delay.is_zero() {
                    tokio::time::sleep(delivery.delay).await;
                }
                let ts = delivery.timestamp_ms.unwrap_or_else(now_ms);
                let outcome = self
                    .deliver_at(event, ts)
                    .await
                    .map_err(|e| format!("{e:#}"));
                let success = matches!(&outcome, Ok(d) if d.is_success());
                tracing::debug!(
                    event = %event.event,
                    call_id = %event.call_id,
                    attempt,
                    status = outcome.as_ref().map(|d| d.status).unwrap_or(0),
                    "webhook attempt"
                );
                attempts.push(Attempt {
                    event: event.event.clone(),
                    call_id: event.call_id.clone(),
                    attempt,
                    outcome,
                });
                if success {
                    break;
                }
            }
        }
        attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_the_sdk_test_vector() {
        assert_eq!(
            sign(
                br#"{"event":"call_ended"}"#,
                "test-api-key",
                1_700_000_000_000
            ),
            "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
        );
    }
}
