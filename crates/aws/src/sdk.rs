//! The AWS SDK configuration every function uses: one HTTPS client (rustls with ring)
//! shared by all service clients, region and credentials from the Lambda environment,
//! `AWS_ENDPOINT_URL` honoured by the SDK itself (the local stack sets it), and timeouts
//! (see [`timeouts`]), so a hung AWS call fails and is retried instead of holding the
//! function until Lambda kills it.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Connecting to a service endpoint (in-region: milliseconds).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call, up to the answer's headers: DynamoDB, KMS, SES and Secrets
/// Manager answer in milliseconds, the largest request body is one 8 MiB upload part.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call with all its retries (the SDK's standard mode: three attempts with backoff).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// The timeouts of every AWS call. A streamed body (a `GetObject` read on) is not covered
/// past its headers; its reader sets its own limits.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// A config loader with the project's HTTPS client and [`timeouts`]; add overrides, then
/// `load()`.
pub fn loader() -> ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts())
}

/// Loads the SDK configuration from the environment.
pub async fn load() -> SdkConfig {
    loader().load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hung call ends: every timeout is set, and one attempt fits into the operation
    /// several times (retries have room).
    #[tokio::test]
    async fn every_call_has_connect_attempt_and_operation_timeouts() {
        let config = loader()
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "a", "b", None, None, "test",
            ))
            .load()
            .await;
        let t = config.timeout_config().expect("a timeout config");
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert!(OPERATION_TIMEOUT >= ATTEMPT_TIMEOUT * 3);
    }
}
