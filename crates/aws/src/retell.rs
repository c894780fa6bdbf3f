//! The provider's REST API (reqwest with rustls): place an outbound call, delete a call.
//! The base URL is configuration, so the local stack and tests point it at the simulator.
//! Errors carry the status code only: provider error bodies may quote request data.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use async_trait::async_trait;

use usecases::telephony::ports::Provider;
pub use usecases::telephony::ports::{OutboundCall, ProviderError};

#[derive(Clone)]
pub struct RetellClient {
    http: reqwest::Client,
    base_url: String,
}

impl RetellClient {
    pub fn new(base_url: &str) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(network)?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST /v2/create-phone-call`; returns the provider's call id.
    pub async fn create_phone_call(
        &self,
        key: &SecretString,
        call: &OutboundCall<'_>,
    ) -> Result<String, ProviderError> {
        let body = json!({
            "from_number": call.from_number,
            "to_number": call.to_number,
            "override_agent_id": call.agent_id,
            "metadata": {"lead_id": call.lead_id},
            "retell_llm_dynamic_variables": {"first_name": call.first_name},
            // Agent fields for this call only: storage at the provider minimised (R2.12) and a
            // bounded ring time (R7.3).
            "agent_override": {
                "data_storage_setting": call.data_storage_setting,
                "ring_duration_ms": call.ring_duration_ms,
            },
        });
        let resp = self
            .http
            .post(format!("{}/v2/create-phone-call", self.base_url))
            .bearer_auth(key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(network)?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(ProviderError::Status { status });
        }
        let value: Value = resp.json().await.map_err(|_| ProviderError::Malformed)?;
        value
            .get("call_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ProviderError::Malformed)
    }

    /// `DELETE /v2/delete-call/{call_id}`; a call already gone counts as deleted.
    pub async fn delete_call(
        &self,
        key: &SecretString,
        call_id: &str,
    ) -> Result<(), ProviderError> {
        let resp = self
            .http
            .delete(format!("{}/v2/delete-call/{call_id}", self.base_url))
            .bearer_auth(key.expose_secret())
            .send()
            .await
            .map_err(network)?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            status => Err(ProviderError::Status { status }),
        }
    }
}

#[async_trait]
impl Provider for RetellClient {
    async fn create_phone_call(
        &self,
        key: &SecretString,
        call: &OutboundCall<'_>,
    ) -> Result<String, ProviderError> {
        RetellClient::create_phone_call(self, key, call).await
    }

    async fn delete_call(&self, key: &SecretString, call_id: &str) -> Result<(), ProviderError> {
        RetellClient::delete_call(self, key, call_id).await
    }
}

/// A transport failure: [`ProviderError::Unsent`] when no connection was made (the
/// request never left), otherwise [`ProviderError::Network`] (it may have arrived).
fn network(e: reqwest::Error) -> ProviderError {
    if e.is_connect() {
        ProviderError::Unsent(Box::new(e))
    } else {
        ProviderError::Network(Box::new(e))
    }
}
