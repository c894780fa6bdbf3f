//! The AWS SDK configuration every function uses: one HTTPS client (rustls with ring)
//! shared by all service clients, region and credentials from the Lambda environment,
//! `AWS_ENDPOINT_URL` honoured by the SDK itself (the local stack sets it).

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// A config loader with the project's HTTPS client; add overrides, then `load()`.
pub fn loader() -> ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// Loads the SDK configuration from the environment.
pub async fn load() -> SdkConfig {
    loader().load().await
}
