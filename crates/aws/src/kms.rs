//! The key service over AWS KMS: per-subject data keys (GenerateDataKey / Decrypt with
//! the subject id as encryption context) and blind indexes (GenerateMac, HMAC-SHA-256).

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, MacAlgorithmSpec};

use super::{classify, error_code};
use domain::crypto::{blind_index_message, BlindIndex, DataKey, WrappedKey};
use domain::{LeadId, RequestId};
use usecases::ports::{IdentifierKind, KeyError, KeyService, Retry};

/// Encryption-context key that binds a data key to its subject.
pub const SUBJECT_CONTEXT_KEY: &str = "subject";
/// Encryption-context key that binds a data key to a data-subject request.
pub const REQUEST_CONTEXT_KEY: &str = "dsar_request";

#[derive(Debug, Clone)]
pub struct KmsKeyService {
    client: aws_sdk_kms::Client,
    data_key_id: String,
    blind_index_key_id: String,
}

impl KmsKeyService {
    pub fn new(
        client: aws_sdk_kms::Client,
        data_key_id: String,
        blind_index_key_id: String,
    ) -> Self {
        Self {
            client,
            data_key_id,
            blind_index_key_id,
        }
    }
}

pub(crate) fn sdk_failure<E, R>(
    operation: &'static str,
    err: aws_sdk_kms::error::SdkError<E, R>,
) -> KeyError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retry = classify(&err);
    tracing::warn!(
        operation,
        code = error_code(&err),
        ?retry,
        "kms call failed"
    );
    // Every KMS failure, whatever the caller makes of it (`KmsFailedAlarm`): a key that
    // is disabled or a grant gone stops sign-ups, requests and sweeps alike.
    usecases::telemetry::metric("KmsFailed", 1.0);
    KeyError {
        operation,
        retry,
        source: Some(Box::new(err)),
    }
}

fn missing(operation: &'static str) -> KeyError {
    KeyError {
        operation,
        retry: Retry::Permanent,
        source: None,
    }
}

impl KmsKeyService {
    /// A data key under the customer key, bound to `{context_key: id}`.
    async fn generate(
        &self,
        context_key: &'static str,
        id: String,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.data_key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(context_key, id)
            .send()
            .await
            .map_err(|e| sdk_failure("generate_data_key", e))?;
        let plaintext = out
            .plaintext()
            .ok_or_else(|| missing("generate_data_key"))?;
        let wrapped = out
            .ciphertext_blob()
            .ok_or_else(|| missing("generate_data_key"))?;
        let key =
            DataKey::from_bytes(plaintext.as_ref()).map_err(|_| missing("generate_data_key"))?;
        Ok((key, WrappedKey(wrapped.as_ref().to_vec())))
    }

    async fn unwrap(
        &self,
        context_key: &'static str,
        id: String,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.data_key_id)
            .ciphertext_blob(Blob::new(wrapped.0.clone()))
            .encryption_context(context_key, id)
            .send()
            .await
            .map_err(|e| sdk_failure("decrypt", e))?;
        let plaintext = out.plaintext().ok_or_else(|| missing("decrypt"))?;
        DataKey::from_bytes(plaintext.as_ref()).map_err(|_| missing("decrypt"))
    }
}

#[async_trait]
impl KeyService for KmsKeyService {
    async fn generate_data_key(&self, subject: &LeadId) -> Result<(DataKey, WrappedKey), KeyError> {
        self.generate(SUBJECT_CONTEXT_KEY, subject.to_string())
            .await
    }

    async fn unwrap_data_key(
        &self,
        subject: &LeadId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        self.unwrap(SUBJECT_CONTEXT_KEY, subject.to_string(), wrapped)
            .await
    }

    async fn generate_request_key(
        &self,
        request: &RequestId,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        self.generate(REQUEST_CONTEXT_KEY, request.to_string())
            .await
    }

    async fn unwrap_request_key(
        &self,
        request: &RequestId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        self.unwrap(REQUEST_CONTEXT_KEY, request.to_string(), wrapped)
            .await
    }

    async fn blind_index(
        &self,
        kind: IdentifierKind,
        normalised: &str,
    ) -> Result<BlindIndex, KeyError> {
        let out = self
            .client
            .generate_mac()
            .key_id(&self.blind_index_key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(blind_index_message(kind.code(), normalised)))
            .send()
            .await
            .map_err(|e| sdk_failure("generate_mac", e))?;
        let mac = out.mac().ok_or_else(|| missing("generate_mac"))?;
        Ok(BlindIndex::from_mac(mac.as_ref()))
    }
}
