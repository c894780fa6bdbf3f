//! Dev-only: every function in one process ([`harness::host`]), the drop-in for
//! `cargo lambda watch` in `make run` when cargo-lambda is not installed.
//!
//! `local-functions --port 9001 --env-file .local/functions.env` serves the router's
//! HTTP routes (root `Cargo.toml`) and the Lambda Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`) on 127.0.0.1, with every function
//! built from the env file as its bin builds it from its environment.
//!
//! `--call-anytime`: the telephony worker's clock is moved into the calling hours when
//! started outside them ([`harness::host::calling_hours_clock`]), so a sign-up is called
//! at once at any hour; without it, a sign-up outside the calling hours is scheduled for
//! the next slot, as in AWS.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(port), Some(env_file)) = (flag("--port"), flag("--env-file")) else {
        bail!("usage: local-functions --port PORT --env-file PATH [--call-anytime]");
    };
    let port: u16 = port.parse().context("--port")?;
    let env = harness::host::read_env_file(std::path::Path::new(&env_file))?;
    let clock: Arc<dyn shared::Clock> = Arc::new(shared::SystemClock);
    let mut clocks = std::collections::HashMap::new();
    if args.iter().any(|a| a == "--call-anytime") {
        clocks.insert(
            "telephony-worker".to_owned(),
            harness::host::calling_hours_clock(clock.clone()),
        );
    }
    let functions = harness::host::Functions::from_env_with_clocks(&env, clock, &clocks).await?;
    let host = harness::host::start_with(([127, 0, 0, 1], port).into(), functions).await?;
    tracing::info!(url = host.base_url(), "local functions listening");
    tokio::select! {
        r = host.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
