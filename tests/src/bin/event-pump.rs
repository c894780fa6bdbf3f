//! Dev-only event pump for `make run` ([`harness::pump`]): plays the table's stream and
//! the template's schedules into the workers through a Lambda Invoke API.
//!
//! `event-pump --table polly-local-table --invoke-url http://127.0.0.1:9000`

use std::time::Duration;

use anyhow::{anyhow, Result};
use harness::pump::{run, PumpConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let table =
        arg("--table").ok_or_else(|| anyhow!("usage: event-pump --table NAME --invoke-url URL"))?;
    let invoke_url = arg("--invoke-url").unwrap_or_else(|| "http://127.0.0.1:9000".to_owned());
    run(&PumpConfig {
        table,
        invoke_url,
        endpoint: harness::endpoint(),
        poll: Duration::from_millis(500),
    })
    .await
}
