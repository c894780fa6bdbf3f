//! The local CRM receiver (`harness::crm_sim`): `crm-sim [--port N] [--secret S]`;
//! prints its webhook URL and runs until Ctrl-C. `make run` starts it and points
//! `CRM_WEBHOOK_URL` at it.

use anyhow::Result;
use harness::crm_sim::{CrmReceiver, LOCAL_SECRET};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port: u16 = arg("--port").map(|p| p.parse()).transpose()?.unwrap_or(0);
    let secret = arg("--secret").unwrap_or_else(|| LOCAL_SECRET.to_owned());
    let receiver = CrmReceiver::start(([127, 0, 0, 1], port).into(), &secret).await?;
    println!(
        "crm-sim: webhook {} (GET {}/received)",
        receiver.webhook_url(),
        receiver.url()
    );
    tokio::signal::ctrl_c().await?;
    receiver.stop().await;
    Ok(())
}
