//! Test harness and dev-only tooling for the Polly backend.
//!
//! - [`template`] reads `infra/template.yaml` into plain specifications of the data layer.
//! - [`stack`] creates those resources in the local AWS emulator (moto) and reads them
//!   back, so the local stack and every test run on what the template declares.
//! - [`emulator`] starts private emulators for the tests that must not share one.
//! - [`logs`] captures the functions' JSON logs for personal-data scans.
//! - [`events`] builds API Gateway events the way AWS delivers them.
//! - [`gateway`] is the local stand-in for API Gateway's IAM authoriser: it verifies
//!   SigV4-signed staff requests and hands them to the staff function.
//! - [`faults`] is a proxy that fails the N-th request to the emulator or the provider once.
//! - [`requests`] counts AWS requests by operation on a client (SDK interceptor).
//! - [`host`] runs every function in process behind the router's routes and the Lambda
//!   Invoke API (the drop-in for `cargo lambda watch`).
//! - [`pump`] plays the table's stream and the template's schedules into the workers.
//! - [`localstack`] is the whole local system on free ports: [`localstack::LocalStack`].
//!
//! Nothing here ships in a Lambda.

pub mod analytics;
pub mod crm_sim;
pub mod emulator;
pub mod events;
pub mod faults;
pub mod gateway;
pub mod host;
pub mod localstack;
pub mod logs;
pub mod pump;
pub mod requests;
pub mod simulator;
pub mod stack;
pub mod template;

use aws_config::{Region, SdkConfig};

/// Emulator endpoint: `AWS_ENDPOINT_URL`, else moto's default port on loopback.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

/// An SDK configuration for the shared emulator: fixed test credentials, Frankfurt.
pub async fn aws_config() -> SdkConfig {
    aws_config_for(&endpoint()).await
}

/// An SDK configuration for the emulator at `endpoint`: fixed test credentials, Frankfurt.
pub async fn aws_config_for(endpoint: &str) -> SdkConfig {
    shared::aws::loader()
        .region(Region::new("eu-central-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "polly-tests",
        ))
        .load()
        .await
}

/// An S3 client for the emulator: path-style addressing (no bucket subdomains on 127.0.0.1).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Path of the SAM template, from any working directory inside the workspace.
pub fn template_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
}

/// An SDK configuration for the emulator at `endpoint` with `timeouts` instead of the
/// functions' own ([`shared::aws::timeouts`]): the fault matrix shortens the attempt
/// timeout so that a hung answer costs seconds, not the production limit.
pub async fn aws_config_with_timeouts(
    endpoint: &str,
    timeouts: aws_config::timeout::TimeoutConfig,
) -> SdkConfig {
    shared::aws::loader()
        .timeout_config(timeouts)
        .region(Region::new("eu-central-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "polly-tests",
        ))
        .load()
        .await
}
