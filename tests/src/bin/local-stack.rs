//! Dev-only: the whole system in one process on free loopback ports
//! ([`harness::localstack::LocalStack`]), against the emulator at `AWS_ENDPOINT_URL`.
//!
//! `AWS_ENDPOINT_URL=http://127.0.0.1:5000 local-stack` prints the base URL (pages,
//! public API, staff API) and runs until Ctrl-C.

use anyhow::Result;
use harness::localstack::{LocalStack, Options};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let stack = LocalStack::start_with(Options {
        emulator: Some(harness::endpoint()),
        ..Options::default()
    })
    .await?;
    println!("base URL:  {}", stack.base_url());
    println!(
        "emulator:  {} (stack {})",
        stack.moto_url(),
        stack.stack_name()
    );
    println!("functions: {} (Lambda Invoke API)", stack.functions_url());
    println!("simulator: {}", stack.simulator().base_url());
    println!(
        "sign-up:   {}/signup   privacy center: {}/privacy",
        stack.base_url(),
        stack.base_url()
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    stack.stop().await
}
