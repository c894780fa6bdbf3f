//! The provider API keys from Secrets Manager, cached per container.
//!
//! The secret holds `{"current": "...", "previous": "..."}`; both verify signatures, so a
//! key can be rotated without dropping webhooks. The cache is refreshed after five minutes
//! so a rotation reaches warm containers.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::Mutex;

use super::{classify, error_code};
use usecases::ports::{KeyError, Retry};

const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// The API keys in force.
#[derive(Clone)]
pub struct ProviderKeys {
    pub current: SecretString,
    pub previous: Option<SecretString>,
}

impl ProviderKeys {
    /// The keys a signature may be made with, current first.
    pub fn all(&self) -> Vec<&SecretString> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .collect()
    }
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKeys(<redacted>)")
    }
}

#[derive(serde::Deserialize)]
struct SecretValue {
    current: String,
    #[serde(default)]
    previous: Option<String>,
}

pub struct ProviderKeySource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    cache: Mutex<Option<(Instant, ProviderKeys)>>,
}

fn failure(retry: Retry, source: Option<Box<dyn std::error::Error + Send + Sync>>) -> KeyError {
    KeyError {
        operation: "get_provider_key",
        retry,
        source,
    }
}

impl ProviderKeySource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String) -> Self {
        Self {
            client,
            secret_id,
            cache: Mutex::new(None),
        }
    }

    /// The cached keys, fetched when absent or older than five minutes.
    pub async fn keys(&self) -> Result<ProviderKeys, KeyError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, keys)) = cache.as_ref() {
            if at.elapsed() < REFRESH_AFTER {
                return Ok(keys.clone());
            }
        }
        let keys = self.fetch().await?;
        *cache = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    async fn fetch(&self) -> Result<ProviderKeys, KeyError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                let retry = classify(&e);
                tracing::warn!(
                    code = error_code(&e),
                    ?retry,
                    "reading the provider key failed"
                );
                failure(retry, Some(Box::new(e)))
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| failure(Retry::Permanent, None))?;
        let value: SecretValue =
            serde_json::from_str(text).map_err(|_| failure(Retry::Permanent, None))?;
        if value.current.is_empty() {
            return Err(failure(Retry::Permanent, None));
        }
        Ok(ProviderKeys {
            current: SecretString::from(value.current),
            previous: value
                .previous
                .filter(|p| !p.is_empty())
                .map(SecretString::from),
        })
    }
}
