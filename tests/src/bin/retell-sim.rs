//! Dev-only RetellAI simulator for the local stack (never deployed).
//!
//! `retell-sim [serve] --port 9100 --api-key local-test-key [--webhook-url URL]` serves
//! the provider's REST API and recordings on 127.0.0.1; with `--webhook-url`, every call
//! created through the API is played out (`--scenario`, default `consent-yes`) and its
//! signed webhooks are sent there.
//!
//! `retell-sim send --scenario consent-yes --webhook-url URL --api-key KEY --lead-id ID`
//! sends one scripted call's webhooks; its recording URLs point at `--sim-url` (a running
//! `retell-sim serve`, default `http://127.0.0.1:9100`).
//!
//! Output and logs carry ids, event names and status codes only: never numbers, names or
//! transcript text.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use harness::simulator::{
    AutoPlay, CallParams, CallScript, Delivery, Scenario, SimConfig, Simulator, Webhook,
};

const USAGE: &str = "usage: retell-sim [serve] --port PORT --api-key KEY [--webhook-url URL] [--scenario NAME] [--ring-ms MS]
       retell-sim send --scenario NAME --webhook-url URL --api-key KEY [--lead-id ID] [--sim-url URL] [--duplicate] [--reverse] [--delay-ms MS] [--omit EVENT] [--retries N]
scenarios: consent-yes, consent-no, consent-never-asked, consent-only-in-analysis, disclosure-missing, dial-no-answer, long-call[-MINUTES]";

/// Parsed command line.
struct Args {
    command: String,
    values: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Args {
    fn parse(raw: Vec<String>) -> Result<Self> {
        const SWITCHES: &[&str] = &["--duplicate", "--reverse"];
        const VALUES: &[&str] = &[
            "--port",
            "--api-key",
            "--webhook-url",
            "--scenario",
            "--ring-ms",
            "--lead-id",
            "--sim-url",
            "--delay-ms",
            "--omit",
            "--retries",
        ];
        let mut iter = raw.into_iter().peekable();
        let command = match iter.peek().map(String::as_str) {
            Some("serve") | Some("send") => iter.next().unwrap_or_default(),
            _ => "serve".to_owned(),
        };
        let mut args = Self {
            command,
            values: Vec::new(),
            switches: Vec::new(),
        };
        while let Some(arg) = iter.next() {
            if SWITCHES.contains(&arg.as_str()) {
                args.switches.push(arg);
            } else if VALUES.contains(&arg.as_str()) {
                let Some(value) = iter.next() else {
                    bail!("{arg} needs a value");
                };
                args.values.push((arg, value));
            } else {
                bail!("unknown argument {arg:?}");
            }
        }
        Ok(args)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn values(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.value(name)
            .with_context(|| format!("{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.value(name) {
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} must be a number")),
            None => Ok(default),
        }
    }

    fn scenario(&self) -> Result<Scenario> {
        self.value("--scenario").unwrap_or("consent-yes").parse()
    }

    fn delivery(&self) -> Result<Delivery> {
        Ok(Delivery {
            duplicate: self.switches.iter().any(|s| s == "--duplicate"),
            reverse: self.switches.iter().any(|s| s == "--reverse"),
            delay: Duration::from_millis(self.number("--delay-ms", 0)?),
            omit: self.values("--omit"),
            retries: self.number("--retries", 0)?,
            timestamp_ms: None,
        })
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match Args::parse(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("retell-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("retell-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.command.as_str() {
            "send" => send(&args).await,
            _ => serve(&args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("retell-sim: {e:#}");
            if e.chain().any(|c| c.is::<UsageError>()) {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// Marks errors caused by the command line, so `main` prints the usage.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| anyhow::Error::new(UsageError(format!("{e:#}"))))
}

async fn serve(args: &Args) -> Result<ExitCode> {
    let port: u16 = usage(args.number("--port", 9100))?;
    let api_key = usage(args.required("--api-key"))?.to_owned();
    let scenario = usage(args.scenario())?;
    let delivery = usage(args.delivery())?;
    let ring = Duration::from_millis(usage(args.number("--ring-ms", 500))?);
    let mut config = SimConfig::new(api_key.clone());
    config.port = port;
    config.auto_play = args.value("--webhook-url").map(|url| AutoPlay {
        webhook: Webhook::new(url, api_key.clone()),
        scenario,
        delivery,
        ring,
    });
    let sim = Simulator::start(config).await?;
    println!("retell-sim listening on {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

async fn send(args: &Args) -> Result<ExitCode> {
    let scenario = usage(args.scenario())?;
    let url = usage(args.required("--webhook-url"))?;
    let api_key = usage(args.required("--api-key"))?;
    let delivery = usage(args.delivery())?;
    let sim_url = args.value("--sim-url").unwrap_or("http://127.0.0.1:9100");
    let lead_id = args
        .value("--lead-id")
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let start_ms = harness::simulator::webhook::now_ms().saturating_sub(5 * 60 * 1000);
    let script = CallScript::new(scenario, CallParams::new(sim_url, &lead_id, start_ms));
    let events = script.events()?;
    let webhook = Webhook::new(url, api_key);
    let mut all_ok = true;
    for attempt in webhook.deliver_all(&events, &delivery).await {
        match &attempt.outcome {
            Ok(d) => {
                all_ok &= d.is_success();
                println!(
                    "{} {} attempt {}: {} ({} bytes)",
                    attempt.call_id,
                    attempt.event,
                    attempt.attempt,
                    d.status,
                    d.body.len()
                );
            }
            Err(e) => {
                all_ok = false;
                println!(
                    "{} {} attempt {}: not delivered: {e}",
                    attempt.call_id, attempt.event, attempt.attempt
                );
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
