//! Dev-only helper for the local stack (never deployed).
//!
//! `polly-local provision --name polly-local --env-file .local/functions.env` creates the
//! template's data layer in the emulator and writes the environment the functions get
//! from the template, resolved for the local resources.

use std::io::Write;

use anyhow::{bail, Context, Result};
use harness::stack::Stack;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        bail!(
            "usage: polly-local provision [--name NAME] [--provider-api-key KEY] [--crm-webhook-url URL] [--env-file PATH]"
        );
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match command.as_str() {
        "provision" => {
            let name = flag("--name").unwrap_or_else(|| "polly-local".to_owned());
            let api_key = flag("--provider-api-key").unwrap_or_else(|| "local-test-key".to_owned());
            let stack = Stack::provision(&name, &api_key)
                .await
                .context("provisioning the local stack (is the emulator running?)")?;
            // The template's environment of every function, the local staff role, the
            // emulator (harness::localstack::local_env).
            let mut env = harness::localstack::local_env(&stack)?;
            // The local CRM receiver (crm-sim), when `make run` starts one.
            if let Some(url) = flag("--crm-webhook-url") {
                env.insert("CRM_WEBHOOK_URL".into(), url);
                env.insert(
                    "CRM_WEBHOOK_SECRET_ARN".into(),
                    stack.crm_secret_arn.clone(),
                );
            }
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            match flag("--env-file") {
                Some(path) => {
                    if let Some(dir) = std::path::Path::new(&path).parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::File::create(&path)?.write_all(text.as_bytes())?;
                }
                None => print!("{text}"),
            }
            println!(
                "provisioned stack {name}: table {}, buckets {:?}",
                stack.table,
                stack.buckets.values()
            );
            Ok(())
        }
        other => bail!("unknown command {other}"),
    }
}
