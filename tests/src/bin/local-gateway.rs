//! Dev-only: the local API Gateway stand-in of `make run` ([`harness::gateway`]).
//!
//! `local-gateway --port 9000 --upstream http://127.0.0.1:9001` listens on the API port:
//! `/v1/admin/...` must be SigV4-signed with a local key (`testing`/`testing` signs as
//! the local staff session, `local-intruder`/`local-intruder` as a principal outside the
//! allow-list) and then goes to the `dsar-staff` function through the Lambda Invoke API
//! of `cargo lambda watch` at the upstream (`/v1/sales/...` likewise to `sales-api`, signed
//! with `local-sales`/`local-sales`); every other path is forwarded to the
//! upstream unchanged.

use anyhow::{bail, Context, Result};
use harness::gateway::{local_keys, Gateway, SalesBackend, StaffBackend};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(port), Some(upstream)) = (flag("--port"), flag("--upstream")) else {
        bail!("usage: local-gateway --port PORT --upstream URL [--function dsar-staff]");
    };
    let port: u16 = port.parse().context("--port")?;
    let function = flag("--function").unwrap_or_else(|| "dsar-staff".to_owned());
    let gateway = Gateway::new(
        local_keys(),
        StaffBackend::Invoke {
            base_url: upstream.clone(),
            function,
        },
        Some(upstream.clone()),
    )
    .with_sales(SalesBackend::Invoke {
        base_url: upstream,
        function: "sales-api".into(),
    })
    .start(([127, 0, 0, 1], port).into())
    .await?;
    tracing::info!(url = gateway.base_url(), "local gateway listening");
    tokio::select! {
        r = gateway.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
