//! The whole system on this machine, in one process, on free loopback ports: what
//! `make run` runs, for tests (the browser tests, schemathesis) and the bin `local-stack`.
//!
//! [`LocalStack::start`] provisions a fresh, uniquely named copy of the template's data
//! layer in an emulator (by default one private to the test process, started from
//! `.venv/bin/moto_server`, because the shared one of `scripts/with-moto.sh` cannot be
//! relied on for reading sent mail; [`Options::emulator`] names another), and starts,
//! all on 127.0.0.1:
//! - the provider simulator ([`crate::simulator`]), playing every created call and sending
//!   its signed webhooks to the gateway;
//! - the functions host ([`crate::host`]): every function, built from the environment
//!   `polly-local provision` writes ([`local_env`]) plus the local provider, loopback
//!   recordings and `PUBLIC_API_BASE_URL` = the gateway (mail links point at it);
//! - the local gateway ([`crate::gateway`]) in front: SigV4 for `/v1/admin/*` (invoking
//!   `dsar-staff` through the host's Invoke API), everything else forwarded to the host;
//! - the event pump ([`crate::pump`]): the table's stream and the template's schedules into
//!   the workers through the host's Invoke API, polling every 100 ms.
//!
//! [`LocalStack::stop`] (or dropping it) stops all of them; the data stays in the
//! emulator under the stack's name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use shared::Clock;

use crate::gateway::{local_keys, Gateway, RunningGateway, StaffBackend};
use crate::host::RunningHost;
use crate::simulator::{AutoPlay, Delivery, Scenario, SimConfig, Simulator, Webhook};
use crate::stack::Stack;

/// The provider API key of a local stack.
pub const LOCAL_PROVIDER_KEY: &str = "local-test-key";

/// The environment the template gives its functions (every function's, in one map, as
/// `cargo lambda watch --env-file` gives it to all), resolved for `stack`, plus what the
/// local stack adds: the local staff role in `STAFF_PRINCIPAL_ARNS`, the emulator's
/// endpoint and keys. What `polly-local provision --env-file` writes.
pub fn local_env(stack: &Stack) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for function in crate::template::Template::load()?.functions() {
        env.extend(stack.function_env(&function)?);
    }
    // The staff routes admit the local staff role; the local gateway signs the
    // emulator's key in as a session of it (harness::gateway).
    env.insert(
        "STAFF_PRINCIPAL_ARNS".into(),
        crate::gateway::LOCAL_STAFF_ROLE.into(),
    );
    // The sales routes admit the local sales role (key `local-sales`, issue 17).
    env.insert(
        "SALES_PRINCIPAL_ARNS".into(),
        crate::gateway::LOCAL_SALES_ROLE.into(),
    );
    env.insert("AWS_ENDPOINT_URL".into(), stack.endpoint.clone());
    env.insert("AWS_REGION".into(), crate::stack::REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    env.insert(
        "PROVIDER_API_KEY_SECRET_ARN".into(),
        stack.provider_secret_arn.clone(),
    );
    Ok(env)
}

/// What `make run` appends to the env file for a local provider at `simulator_url` and
/// a public base URL (the gateway) at `public_url`.
pub fn run_env(simulator_url: &str, public_url: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        // The local provider is the simulator; recordings come from it over loopback.
        ("RETELL_API_BASE_URL".into(), simulator_url.to_owned()),
        ("RECORDINGS_ALLOW_LOOPBACK".into(), "true".into()),
        // Links in mails to data subjects point at the local API.
        ("PUBLIC_API_BASE_URL".into(), public_url.to_owned()),
        // The local sweep may run with a moved clock; a deployed one refuses (R3.1).
        (
            shared::config::SWEEP_ALLOW_CLOCK_OVERRIDE.into(),
            "true".into(),
        ),
    ])
}

/// Options of a local stack; [`LocalStack::start`] takes the defaults.
#[derive(Clone)]
pub struct Options {
    /// The functions' clock.
    pub clock: Arc<dyn Clock>,
    /// How every simulated call goes.
    pub scenario: Scenario,
    /// From the create request to the call being answered.
    pub ring: Duration,
    /// The event pump's pause between two reads of the stream.
    pub poll: Duration,
    /// Whether a sign-up leads to a call at any hour: the telephony worker gets
    /// [`crate::host::calling_hours_clock`] (moved into the calling hours when the stack
    /// starts outside them). Off: the worker keeps `clock`, and a sign-up outside the
    /// calling hours is scheduled for the next slot, as in AWS.
    pub call_anytime: bool,
    /// The emulator; `None`: this process's private one ([`crate::emulator::private`]),
    /// so that reading the sent mail from `/moto-api/data.json` does not depend on what
    /// the rest of the suite left in the shared one (it answers 404 once an aborted
    /// multipart upload is in it).
    pub emulator: Option<String>,
    /// Variables set over the functions' environment (e.g. `DSAR_SOURCE_DAILY_LIMIT` for
    /// a run that sends more requests from 127.0.0.1 than a person would).
    pub env: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(shared::SystemClock),
            scenario: Scenario::ConsentYes,
            ring: Duration::from_millis(200),
            poll: Duration::from_millis(100),
            call_anytime: true,
            emulator: None,
            env: BTreeMap::new(),
        }
    }
}

/// A running local system; see the module docs.
pub struct LocalStack {
    base_url: String,
    moto_url: String,
    stack: Stack,
    env: HashMap<String, String>,
    simulator: Option<Simulator>,
    host: Option<RunningHost>,
    gateway: Option<RunningGateway>,
    pump: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl LocalStack {
    /// Moto (this test process's private emulator, see [`Options::emulator`]; the bin
    /// `local-stack` takes `AWS_ENDPOINT_URL`); provisions a fresh, uniquely named stack
    /// from the template; starts, all on 127.0.0.1 with free ports: the provider
    /// simulator, the functions host (every HTTP function behind its routes + the Lambda
    /// Invoke API for the workers), the local gateway in front, and the event pump
    /// (stream + schedules).
    pub async fn start() -> Result<LocalStack> {
        Self::start_with(Options::default()).await
    }

    /// [`LocalStack::start`] with other options.
    pub async fn start_with(options: Options) -> Result<LocalStack> {
        let moto_url = match options.emulator.clone() {
            Some(url) => url,
            None => tokio::task::spawn_blocking(|| crate::emulator::private("localstack"))
                .await
                .context("starting the private emulator")?,
        };
        let stack = Stack::isolated_on(&moto_url)
            .await
            .context("provisioning the stack (is the emulator running? scripts/with-moto.sh)")?;
        // The gateway's port first: the simulator's webhooks and the mail links name it.
        let gateway_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the gateway")?;
        let base_url = format!("http://{}", gateway_listener.local_addr()?);
        let mut sim = SimConfig::new(LOCAL_PROVIDER_KEY);
        sim.auto_play = Some(AutoPlay {
            webhook: Webhook::new(
                format!("{base_url}/v1/telephony/retell"),
                LOCAL_PROVIDER_KEY,
            ),
            scenario: options.scenario,
            delivery: Delivery::default(),
            ring: options.ring,
        });
        let simulator = Simulator::start(sim).await?;
        let mut env: HashMap<String, String> = local_env(&stack)?.into_iter().collect();
        env.extend(run_env(simulator.base_url(), &base_url));
        env.extend(options.env.clone());
        let mut clocks = HashMap::new();
        if options.call_anytime {
            clocks.insert(
                "telephony-worker".to_owned(),
                crate::host::calling_hours_clock(options.clock.clone()),
            );
        }
        let functions =
            crate::host::Functions::from_env_with_clocks(&env, options.clock, &clocks).await?;
        let host = crate::host::start_with(([127, 0, 0, 1], 0).into(), functions).await?;
        let gateway = Gateway::new(
            local_keys(),
            StaffBackend::Invoke {
                base_url: host.base_url().to_owned(),
                function: "dsar-staff".to_owned(),
            },
            Some(host.base_url().to_owned()),
        )
        .serve(gateway_listener)?;
        let pump_config = crate::pump::PumpConfig {
            table: stack.table.clone(),
            invoke_url: host.base_url().to_owned(),
            endpoint: moto_url.clone(),
            poll: options.poll,
        };
        let pump = tokio::spawn(async move { crate::pump::run(&pump_config).await });
        Ok(LocalStack {
            base_url,
            moto_url,
            stack,
            env,
            simulator: Some(simulator),
            host: Some(host),
            gateway: Some(gateway),
            pump: Some(pump),
        })
    }

    /// The gateway: pages, public API, staff API (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The emulator (moto).
    pub fn moto_url(&self) -> &str {
        &self.moto_url
    }

    /// The stack's name (its table is `<name>-table`).
    pub fn stack_name(&self) -> &str {
        &self.stack.name
    }

    /// The provisioned stack (table, buckets, keys, an SDK configuration).
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The functions' environment.
    pub fn env(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// The functions host (its Lambda Invoke API is at this base URL).
    pub fn functions_url(&self) -> &str {
        self.host.as_ref().map_or("", |h| h.base_url())
    }

    /// The provider simulator (calls created, webhooks sent).
    pub fn simulator(&self) -> &Simulator {
        self.simulator
            .as_ref()
            .expect("the simulator runs until stop")
    }

    /// Stops the pump, the gateway, the host and the simulator.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pump) = self.pump.take() {
            pump.abort();
            // A pump that failed before being stopped is a failure of the stack.
            if let Ok(Err(e)) = pump.await {
                return Err(e.context("the event pump had stopped"));
            }
        }
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await?;
        }
        if let Some(host) = self.host.take() {
            host.shutdown().await?;
        }
        if let Some(sim) = self.simulator.take() {
            sim.shutdown().await?;
        }
        Ok(())
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
        // The gateway, host and simulator stop when dropped.
    }
}
