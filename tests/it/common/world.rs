//! One wiring of the whole system for a test: on one isolated stack and one clock, the
//! sign-up app, the telephony webhook and worker, the provider simulator the worker talks
//! to, and the data-subject-request API, staff function and worker.

use std::ops::Deref;
use std::sync::Arc;

use harness::events::{stream_event, ApiRequest};
use harness::simulator::scenario::{CallScript, Scenario};
use harness::simulator::{SimConfig, Simulator};
use secrecy::SecretString;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::domain::LeadId;
use shared::dsar::export::Exporter;
use shared::retell::signature::sign;
use shared::Clock;

use super::TestApp;

/// The provider API key of every test stack (the secret `Stack::isolated` stores).
pub const API_KEY: &str = "local-test-key";

/// The staff role the world's staff function admits (`STAFF_PRINCIPAL_ARNS`).
pub const STAFF_ROLE: &str = "arn:aws:iam::123456789012:role/polly-staff";

pub struct World {
    /// The stack, the clock and the sign-up app.
    pub signup: TestApp,
    pub sim: Simulator,
    /// The telephony webhook as the template configures it.
    pub webhook: telephony::App,
    /// The telephony worker, placing calls at and copying recordings from [`Self::sim`].
    pub worker: telephony::worker::Worker,
    /// The public data-subject-request function.
    pub api: dsar::App,
    /// The staff routes' function, admitting [`STAFF_ROLE`].
    pub staff: dsar::staff::StaffApp,
    /// The data-subject-request worker, talking to [`Self::sim`] as the provider.
    pub exporter: Exporter,
}

impl World {
    /// On a stack of its own in the shared emulator.
    pub async fn start() -> Self {
        Self::on(TestApp::spawn().await).await
    }

    /// On a stack of its own in the emulator at `endpoint` ([`harness::emulator`]).
    pub async fn start_on(endpoint: &str) -> Self {
        Self::on(TestApp::spawn_on(endpoint).await).await
    }

    /// Everything else wired to `signup`'s stack and clock.
    pub async fn on(signup: TestApp) -> Self {
        let sim = Simulator::start(SimConfig::new(API_KEY))
            .await
            .expect("start the simulator");
        let stack = &signup.stack;
        let clock = Arc::new(signup.clock.clone());
        let webhook = telephony::App::from_aws(
            &stack.config_for("TelephonyWebhookFunction").unwrap(),
            &stack.aws,
            clock.clone(),
        )
        .unwrap();
        let worker = telephony::worker_from_aws(
            &Self::worker_config(&signup, &sim),
            &stack.aws,
            clock.clone(),
        )
        .unwrap();
        // The erasure mechanics are tested without the cancel window (0 hours: at once);
        // `dsar_erasure_cancel.rs` tests the window with the template's value.
        let mut api_config = stack.config_for("DsarApiFunction").unwrap();
        api_config.erasure_cancel_hours = 0;
        let api = dsar::App::from_aws(api_config, &stack.aws, clock.clone()).unwrap();
        let mut staff_config = stack.config_for("DsarStaffFunction").unwrap();
        staff_config.staff_principal_arns = vec![STAFF_ROLE.to_owned()];
        staff_config.erasure_cancel_hours = 0;
        let staff =
            dsar::staff::StaffApp::from_aws(staff_config, &stack.aws, clock.clone()).unwrap();
        let mut dsar_config = stack.config_for("DsarWorkerFunction").unwrap();
        dsar_config.retell_api_base_url = sim.base_url().to_owned();
        let exporter = dsar::worker::exporter_from_aws(&dsar_config, &stack.aws, clock).unwrap();
        Self {
            signup,
            sim,
            webhook,
            worker,
            api,
            staff,
            exporter,
        }
    }

    /// The telephony worker's configuration: the template's, with the simulator as the
    /// provider and its loopback recording URLs allowed.
    fn worker_config(signup: &TestApp, sim: &Simulator) -> shared::Config {
        let mut config = signup.stack.config_for("TelephonyWorkerFunction").unwrap();
        config.retell_api_base_url = sim.base_url().to_owned();
        config.recordings_allow_loopback = true;
        config
    }

    /// A telephony webhook on this world with its configuration changed by `edit`.
    pub fn webhook_with(&self, edit: impl FnOnce(&mut shared::Config)) -> telephony::App {
        let mut config = self
            .signup
            .stack
            .config_for("TelephonyWebhookFunction")
            .unwrap();
        edit(&mut config);
        telephony::App::from_aws(
            &config,
            &self.signup.stack.aws,
            Arc::new(self.signup.clock.clone()),
        )
        .unwrap()
    }

    /// A telephony worker on this world with its configuration changed by `edit`.
    pub fn worker_with(&self, edit: impl FnOnce(&mut shared::Config)) -> telephony::worker::Worker {
        let mut config = Self::worker_config(&self.signup, &self.sim);
        edit(&mut config);
        telephony::worker_from_aws(
            &config,
            &self.signup.stack.aws,
            Arc::new(self.signup.clock.clone()),
        )
        .unwrap()
    }

    /// The test clock's now, in milliseconds (what webhook signatures are made at).
    pub fn now_ms(&self) -> u64 {
        self.signup.clock.now().timestamp_millis() as u64
    }

    /// A call of `scenario` with `lead`, begun two minutes ago on the simulator's clock.
    pub fn script(&self, scenario: Scenario, lead: &LeadId) -> CallScript {
        let start = self.sim.now_ms() - 120_000;
        self.sim
            .script(scenario, self.sim.params(&lead.to_string(), start))
    }

    /// Delivers `event` of `script` to the webhook, signed now; it must be accepted.
    pub async fn deliver(&self, script: &CallScript, event: &str) {
        let body = script.event(event).unwrap().unwrap().body;
        let sig = sign(
            &body,
            &SecretString::from(API_KEY.to_owned()),
            self.now_ms(),
        );
        let req =
            ApiRequest::post_json("/v1/telephony/retell", &body).header("x-retell-signature", &sig);
        assert_eq!(
            telephony::handle(&self.webhook, req.build()).await.status(),
            204
        );
    }

    /// Hands the lead item of `lead` to the worker as the stream's INSERT record (a new
    /// call request); returns the number of failed records.
    pub async fn pump_lead(&self, lead: &LeadId, seq: u64) -> usize {
        let item = self.signup.lead_item(lead).await;
        telephony::worker::handle(
            &self.worker,
            stream_event("INSERT", item, Default::default(), seq),
        )
        .await
        .batch_item_failures
        .len()
    }

    /// Hands the call item's current state to `worker` as a stream record; returns the
    /// number of failed records.
    pub async fn pump_call_to(
        &self,
        worker: &telephony::worker::Worker,
        call_id: &str,
        seq: u64,
    ) -> usize {
        let item = self
            .signup
            .item(call_pk(call_id), CALL_SK)
            .await
            .expect("the call item");
        telephony::worker::handle(
            worker,
            stream_event("MODIFY", item, Default::default(), seq),
        )
        .await
        .batch_item_failures
        .len()
    }

    /// [`Self::pump_call_to`] the world's worker.
    pub async fn pump_call(&self, call_id: &str, seq: u64) -> usize {
        self.pump_call_to(&self.worker, call_id, seq).await
    }

    /// A signed-up subject ([`super::form`]) with one consented, recorded, analysed call:
    /// webhooks through the real handler, the recording copied by the real worker from the
    /// simulator.
    pub async fn recorded_call(&self) -> (LeadId, CallScript) {
        let lead = self.signup.subject().await;
        let script = self.script(Scenario::ConsentYes, &lead);
        for event in ["call_ended", "call_analyzed"] {
            self.deliver(&script, event).await;
        }
        assert_eq!(self.pump_call(script.call_id(), 1).await, 0);
        let call = self
            .signup
            .item(call_pk(script.call_id()), CALL_SK)
            .await
            .unwrap();
        assert_eq!(call["recording_state"].as_s().unwrap(), "stored");
        (lead, script)
    }

    /// Stops the simulator.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.sim.shutdown().await
    }
}

/// A world with a signed-up subject ([`super::form`]), whose calls tests play.
pub struct Subject {
    pub world: World,
    pub lead: LeadId,
}

impl Deref for Subject {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl Subject {
    /// In a world of its own on the shared emulator.
    pub async fn start() -> Self {
        Self::of(World::start().await).await
    }

    /// Signs up the subject in `world`.
    pub async fn of(world: World) -> Self {
        let lead = world.signup.subject().await;
        Self { world, lead }
    }

    /// A call of `scenario` with the subject ([`World::script`]).
    pub fn new_call(&self, scenario: Scenario) -> CallScript {
        self.world.script(scenario, &self.lead)
    }
}
