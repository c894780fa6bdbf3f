//! The fault matrix: every flow, with one request failed at the wire, converges to the
//! state the flow reaches without a fault (issue 12).
//!
//! For each flow the matrix first runs it fault-free on a fresh stack, counting the AWS
//! requests (through a [`Proxy`] in front of the emulator) and the provider requests
//! (through one in front of the simulator, recording downloads included), and takes a
//! normalised snapshot of the end state: both tables (ids, blind indexes, ciphertexts,
//! timestamps and version counters normalised), the keys of every bucket (live, only
//! old versions, incomplete uploads) and the calls the provider created and deleted.
//! Then, for each fault point (target, request N, fault kind), on a fresh stack: the
//! same flow with request N failed once, redelivered as Lambda and the callers would
//! (an API call retried by the client on 5xx up to [`API_ATTEMPTS`] times, a webhook
//! by the provider up to [`WEBHOOK_ATTEMPTS`], a stream record until it succeeds or the
//! event source mapping's `MaximumRetryAttempts` is used up, a sweep run again on the
//! next schedule), and its snapshot must equal the fault-free one. A data-subject
//! request that ends in a visible failed state, or a call request left `unconfirmed` by
//! a lost provider answer, counts as converged to a visible state (reported apart) as
//! long as the provider did exactly what it did without the fault.
//!
//! `make test` runs a deterministic sample of the points ([`sample`]); `make faults`
//! (`POLLY_FAULTS=all`) runs every point with every fault kind. Each flow writes its
//! numbers to `faults-<flow>.txt` in the test target directory and prints them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use harness::events::{stream_event, ApiRequest};
use harness::faults::{Fault, Proxy, Upstream};
use harness::simulator::scenario::{CallParams, CallScript, Scenario};
use harness::stack::Stack;
use secrecy::SecretString;
use serde_json::json;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::domain::{LeadId, RetentionClass};
use shared::retell::signature::sign;
use shared::Clock;

use crate::common::{form, t, TestApp, World, API_KEY, EMAIL};

/// Attempts of a client whose API call answered 5xx (the form retries, a person clicks
/// again): the first and two more.
const API_ATTEMPTS: usize = 3;
/// The provider delivers a webhook and retries it up to 3 times (retell.md).
const WEBHOOK_ATTEMPTS: usize = 4;
/// The telephony worker's stream: the first delivery and `MaximumRetryAttempts: 5`.
const TELEPHONY_STREAM_ATTEMPTS: usize = 6;
/// The dsar worker's stream: the first delivery and `MaximumRetryAttempts: 3`.
const DSAR_STREAM_ATTEMPTS: usize = 4;
/// The sweep's schedule: a run, the scheduler's `MaximumRetryAttempts: 2`, and the next
/// day's run.
const SWEEP_RUNS: usize = 4;

/// The attempt timeout of the stacks under test (the functions' own is
/// `shared::aws::ATTEMPT_TIMEOUT`): a [`Fault::Timeout`] holds its answer for
/// [`HANG`], longer than this, so the SDK gives up on the attempt and retries.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const HANG: Duration = Duration::from_secs(5);

/// Fault points known to diverge, in areas other work of issue 12 is changing: (flow,
/// fault, the operation the fault hits, why). The matrix still runs them and reports
/// them as known; only an unknown divergence fails the test. Keep this list short and
/// each entry precise; remove an entry when its fix lands.
const KNOWN: &[(&str, Fault, &str, &str)] = &[
    (
        "outbound",
        Fault::Throttle,
        "provider:POST /v2/create-phone-call",
        REFUSED_ATTEMPT_RELEASED,
    ),
    (
        "rectification",
        Fault::Throttle,
        "provider:DELETE /v2/delete-call/{id}",
        RECIPIENTS_TO_INFORM,
    ),
    (
        "rectification",
        Fault::ServerError,
        "provider:DELETE /v2/delete-call/{id}",
        RECIPIENTS_TO_INFORM,
    ),
    (
        "rectification",
        Fault::Reset,
        "provider:DELETE /v2/delete-call/{id}",
        RECIPIENTS_TO_INFORM,
    ),
    (
        "rectification",
        Fault::Timeout,
        "provider:DELETE /v2/delete-call/{id}",
        RECIPIENTS_TO_INFORM,
    ),
];

/// By design: the provider refused the create call (429), so nothing was dialled; the
/// attempt item stays, marked `released_at` (the worker's role may not delete in the
/// number's partition, which holds its claim), and no longer counts against the number's
/// limit (R1.6) nor stops the stream's retry (R1.5); it goes with its TTL.
const REFUSED_ATTEMPT_RELEASED: &str =
    "a refused (429) create call leaves its attempt item, released: it does not count";
/// Not a defect, by design since the provider-deletion outbox: the provider deletion of
/// the rectified subject's call failed (refused, or its answer lost), so the call was still
/// queued when the rectification closed, and the request record truthfully names the
/// provider and its sub-processors `to_inform` where the fault-free run says
/// `not_holding`; the outbox deletes the call on its next drain (the matrix drains it).
/// The rectification itself is applied once.
const RECIPIENTS_TO_INFORM: &str =
    "recipients recorded as to_inform: the provider deletion was still queued at closing";

/// Attributes left out of the comparison: version counters, and the count of failed
/// recording downloads, which rightly counts a download the fault failed.
const IGNORED: &[&str] = &["pk", "sk", "version", "recording_attempts"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    SignUp,
    Webhook,
    Ingest,
    Outbound,
    SweepRecording,
    SweepSubject,
    Export,
    Erasure,
    Rectification,
    Withdrawal,
}

impl Flow {
    fn name(self) -> &'static str {
        match self {
            Flow::SignUp => "signup",
            Flow::Webhook => "webhook",
            Flow::Ingest => "ingest",
            Flow::Outbound => "outbound",
            Flow::SweepRecording => "sweep_recording",
            Flow::SweepSubject => "sweep_subject",
            Flow::Export => "export",
            Flow::Erasure => "erasure",
            Flow::Rectification => "rectification",
            Flow::Withdrawal => "withdrawal",
        }
    }

    /// Whether the flow reads the emulator's sent mail (a request's code): such flows
    /// get an emulator of their own, whose mail dump stays small.
    fn reads_mail(self) -> bool {
        matches!(
            self,
            Flow::Export | Flow::Erasure | Flow::Rectification | Flow::Withdrawal
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Aws,
    Provider,
}

/// One fault point: request `n` (1-based, counted from the start of the flow's step)
/// to `target` fails once with `fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    target: Target,
    n: usize,
    fault: Fault,
}

/// One fresh stack with both proxies, the world wired through them.
struct Run {
    world: World,
    aws: Proxy,
    provider: Proxy,
    /// The provider as every function of the run reaches it (through its proxy).
    provider_url: String,
    point: Option<Point>,
}

impl Run {
    async fn start(emulator: &str, point: Option<Point>) -> Self {
        let aws = Proxy::start(emulator, Upstream::Aws, HANG).await.unwrap();
        let mut stack = Stack::isolated_on(aws.url())
            .await
            .expect("provision a stack");
        stack.aws = harness::aws_config_with_timeouts(
            aws.url(),
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .await;
        let clock = shared::FixedClock::at(t("2026-11-28T10:00:00Z"));
        let app = signup::App::from_aws(
            stack.signup_config().unwrap(),
            &stack.aws,
            Arc::new(clock.clone()),
        );
        let mut world = World::on(TestApp { stack, clock, app }).await;
        let provider = Proxy::start(world.sim.base_url(), Upstream::Provider, HANG)
            .await
            .unwrap();
        let provider_url = provider.url().to_owned();
        world.worker = world.worker_with(|c| c.retell_api_base_url = provider_url.clone());
        let mut dsar_config = world.signup.stack.config_for("DsarWorkerFunction").unwrap();
        dsar_config.retell_api_base_url = provider_url.clone();
        world.exporter = dsar::worker::exporter_from_aws(
            &dsar_config,
            &world.signup.stack.aws,
            Arc::new(world.signup.clock.clone()),
        )
        .unwrap();
        Self {
            world,
            aws,
            provider,
            provider_url,
            point,
        }
    }

    /// The flow's step begins: count from here, and arm the fault of this run.
    fn begin(&self) {
        self.aws.record();
        self.provider.record();
        if let Some(p) = self.point {
            match p.target {
                Target::Aws => self.aws.arm(p.n, p.fault),
                Target::Provider => self.provider.arm(p.n, p.fault),
            }
        }
    }

    /// The step ended: the requests each proxy saw, and where the fault hit.
    fn end(&self) -> (Vec<String>, Vec<String>, Option<String>) {
        let injected = self.aws.injected().or_else(|| self.provider.injected());
        (self.aws.stop(), self.provider.stop(), injected)
    }

    /// A call of `scenario` with `lead` whose recording URLs go through the provider proxy.
    fn script(&self, scenario: Scenario, lead: &LeadId) -> CallScript {
        let start = self.world.sim.now_ms() - 120_000;
        let params = CallParams::new(self.provider.url(), &lead.to_string(), start);
        self.world.sim.script(scenario, params)
    }

    /// Delivers `event` of `script` as the provider does: signed, retried on non-2xx.
    async fn deliver(&self, script: &CallScript, event: &str) -> Result<(), String> {
        let body = script.event(event).unwrap().unwrap().body;
        let mut last = 0;
        for _ in 0..WEBHOOK_ATTEMPTS {
            let sig = sign(
                &body,
                &SecretString::from(API_KEY.to_owned()),
                self.world.now_ms(),
            );
            let req = ApiRequest::post_json("/v1/telephony/retell", &body)
                .header("x-retell-signature", &sig);
            last = telephony::handle(&self.world.webhook, req.build())
                .await
                .status()
                .as_u16();
            if (200..300).contains(&last) {
                return Ok(());
            }
        }
        Err(format!(
            "webhook {event} answered {last} {WEBHOOK_ATTEMPTS} times: the provider gives up"
        ))
    }

    /// A signed-up subject with one consented, recorded, analysed call (set up fault-free).
    async fn recorded_call(&self) -> (LeadId, CallScript) {
        let lead = self.world.signup.subject().await;
        let script = self.script(Scenario::ConsentYes, &lead);
        for event in ["call_ended", "call_analyzed"] {
            self.deliver(&script, event).await.unwrap();
        }
        let event = self.call_event(script.call_id()).await;
        telephony_stream(&self.world.worker, &event).await.unwrap();
        (lead, script)
    }

    /// The call item's current state as the stream's MODIFY record.
    async fn call_event(&self, call_id: &str) -> StreamEvent {
        let item = self
            .world
            .signup
            .item(call_pk(call_id), CALL_SK)
            .await
            .expect("the call item");
        stream_event("MODIFY", item, Default::default(), 1)
    }

    /// A verified request of `kind` by the subject of [`form`], and its stream record.
    async fn verified_request(&self, body: serde_json::Value) -> StreamEvent {
        let w = &self.world;
        let (status, b) = w.submit(&body).await;
        assert_eq!(status, 202, "{b}");
        let id = b["request_id"].as_str().unwrap().to_owned();
        let code = w.latest_code(EMAIL, &id).await;
        let (status, v) = w.verify(&id, &code).await;
        assert_eq!(status, 200, "{v}");
        let item = w.request_item(&id).await;
        let mut old = item.clone();
        old.insert(
            "status".into(),
            AttributeValue::S("awaiting_verification".into()),
        );
        stream_event("MODIFY", item, old, 1)
    }

    /// Runs the retention sweep at `now` as its schedule does: again while a run fails
    /// or reports failures.
    async fn sweep(&self, now: DateTime<Utc>) -> Result<(), String> {
        let stack = &self.world.signup.stack;
        let mut config = stack.config_for("RetentionSweepFunction").unwrap();
        config.retell_api_base_url = self.provider_url.clone();
        let app = retention_sweep::App::from_aws_at(
            &config,
            &stack.aws,
            Arc::new(shared::FixedClock::at(now)),
        )
        .unwrap();
        let mut last = String::new();
        for _ in 0..SWEEP_RUNS {
            match app
                .handle(
                    &json!({"dry_run": false, "now": now.to_rfc3339()}),
                    &self.world.signup.clock,
                    Duration::from_secs(120),
                )
                .await
            {
                Ok(report) if report.complete && report.classes.values().all(|c| c.failed == 0) => {
                    return Ok(())
                }
                Ok(report) => last = format!("{report:?}"),
                Err(e) => last = format!("{e:?}"),
            }
        }
        Err(format!(
            "the sweep did not finish in {SWEEP_RUNS} runs: {last}"
        ))
    }
}

impl Run {
    /// The sweep function's hourly outbox drain (`{"outbox": true}`), as its schedule runs
    /// it after `from`: hours apart, past every backoff, until no provider deletion is
    /// pending (R4.5: a provider fault delays the deletion there, it never loses it).
    async fn drain_outbox(&self, from: DateTime<Utc>) -> Result<(), String> {
        let stack = &self.world.signup.stack;
        let mut config = stack.config_for("RetentionSweepFunction").unwrap();
        config.retell_api_base_url = self.provider_url.clone();
        let mut last = serde_json::Value::Null;
        for hours in [2, 6, 14, 30, 62] {
            let at = from + chrono::Duration::hours(hours);
            let app = retention_sweep::App::from_aws_at(
                &config,
                &stack.aws,
                Arc::new(shared::FixedClock::at(at)),
            )
            .unwrap();
            match app
                .handle_event(
                    &json!({"outbox": true}),
                    &shared::FixedClock::at(at),
                    Duration::from_secs(60),
                )
                .await
            {
                Ok(report) if report["outbox"]["pending"] == 0 => return Ok(()),
                Ok(report) => last = report,
                Err(e) => last = json!(format!("{e:?}")),
            }
        }
        Err(format!("provider deletions still pending: {last}"))
    }
}

/// Hands `event` to the telephony worker until it reports no failure, as the event
/// source mapping does.
async fn telephony_stream(
    worker: &telephony::worker::Worker,
    event: &StreamEvent,
) -> Result<(), String> {
    for _ in 0..TELEPHONY_STREAM_ATTEMPTS {
        let out = telephony::worker::handle(worker, event.clone()).await;
        if out.batch_item_failures.is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "the telephony stream record failed {TELEPHONY_STREAM_ATTEMPTS} times and is discarded"
    ))
}

/// Hands `event` to the dsar worker until it reports no failure.
async fn dsar_stream(
    exporter: &shared::dsar::export::Exporter,
    event: &StreamEvent,
) -> Result<(), String> {
    for _ in 0..DSAR_STREAM_ATTEMPTS {
        let out = dsar::worker::handle(exporter, event.clone()).await;
        if out.batch_item_failures.is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "the dsar stream record failed {DSAR_STREAM_ATTEMPTS} times and is discarded"
    ))
}

/// Sets up `flow` fault-free, then runs its step between [`Run::begin`] and the end,
/// redelivering as the callers would; an error says the step did not converge.
async fn act(flow: Flow, run: &Run) -> Result<(), String> {
    let w = &run.world;
    match flow {
        Flow::SignUp => {
            run.begin();
            let mut last = 0;
            for _ in 0..API_ATTEMPTS {
                let (status, _) = w.signup.sign_up(&form()).await;
                last = status;
                if status < 500 {
                    break;
                }
            }
            if last == 201 {
                Ok(())
            } else {
                Err(format!("the sign-up answered {last}"))
            }
        }
        Flow::Outbound => {
            let lead = w.signup.subject().await;
            let item = w.signup.lead_item(&lead).await;
            let event = stream_event("INSERT", item, Default::default(), 1);
            run.begin();
            telephony_stream(&w.worker, &event).await
        }
        Flow::Webhook => {
            let lead = w.signup.subject().await;
            let script = run.script(Scenario::ConsentYes, &lead);
            run.begin();
            for event in ["call_started", "call_ended", "call_analyzed"] {
                run.deliver(&script, event).await?;
            }
            Ok(())
        }
        Flow::Ingest => {
            let lead = w.signup.subject().await;
            let script = run.script(Scenario::ConsentYes, &lead);
            for event in ["call_ended", "call_analyzed"] {
                run.deliver(&script, event).await.unwrap();
            }
            let event = run.call_event(script.call_id()).await;
            run.begin();
            telephony_stream(&w.worker, &event).await
        }
        Flow::SweepRecording | Flow::SweepSubject => {
            let (_, script) = run.recorded_call().await;
            let end = DateTime::from_timestamp_millis(script.end_ms() as i64).unwrap();
            let class = if flow == Flow::SweepRecording {
                RetentionClass::Recording
            } else {
                RetentionClass::Lead
            };
            let now = class.due_at(end).unwrap() + chrono::Duration::days(1);
            run.begin();
            run.sweep(now).await?;
            run.drain_outbox(now).await
        }
        Flow::Export | Flow::Erasure | Flow::Withdrawal => {
            run.recorded_call().await;
            let kind = match flow {
                Flow::Export => "access",
                Flow::Erasure => "erasure",
                _ => "withdraw_consent",
            };
            let event = run
                .verified_request(json!({"type": kind, "email": EMAIL}))
                .await;
            run.begin();
            dsar_stream(&w.exporter, &event).await?;
            run.drain_outbox(w.signup.clock.now()).await
        }
        Flow::Rectification => {
            run.recorded_call().await;
            let event = run
                .verified_request(json!({
                    "type": "rectification",
                    "email": EMAIL,
                    "corrections": {"last_name": "Pflaumenbaum"}
                }))
                .await;
            run.begin();
            dsar_stream(&w.exporter, &event).await?;
            run.drain_outbox(w.signup.clock.now()).await
        }
    }
}

/// What one run of a flow ended with.
struct Outcome {
    aws: Vec<String>,
    provider: Vec<String>,
    injected: Option<String>,
    error: Option<String>,
    snapshot: BTreeMap<String, usize>,
}

async fn run_once(flow: Flow, emulator: &str, point: Option<Point>) -> Outcome {
    let run = Run::start(emulator, point).await;
    let result = act(flow, &run).await;
    let (aws, provider, injected) = run.end();
    let snapshot = snapshot(&run).await;
    run.world.shutdown().await.ok();
    Outcome {
        aws,
        provider,
        injected,
        error: result.err(),
        snapshot,
    }
}

/// The normalised end state: a multiset of lines.
async fn snapshot(run: &Run) -> BTreeMap<String, usize> {
    let mut lines = Vec::new();
    for item in run.world.signup.scan().await {
        let pk = norm(item["pk"].as_s().unwrap());
        let sk = norm(item["sk"].as_s().unwrap());
        let attrs: Vec<String> = item
            .iter()
            .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", value(v)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        lines.push(format!("item {pk}|{sk} {}", attrs.join(" ")));
    }
    let stack = &run.world.signup.stack;
    let s3 = harness::s3_client(&stack.aws);
    for (logical, bucket) in &stack.buckets {
        let mut keys: BTreeMap<String, (usize, usize, bool)> = BTreeMap::new();
        let out = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        for v in out.versions() {
            let e = keys
                .entry(v.key().unwrap_or_default().to_owned())
                .or_default();
            e.0 += 1;
            e.2 |= v.is_latest() == Some(true);
        }
        for m in out.delete_markers() {
            keys.entry(m.key().unwrap_or_default().to_owned())
                .or_default()
                .1 += 1;
        }
        for (key, (_, _, live)) in keys {
            let state = if live { "live" } else { "old versions only" };
            lines.push(format!("object {logical} {} {state}", norm(&key)));
        }
        let uploads = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        if !uploads.uploads().is_empty() {
            lines.push(format!(
                "object {logical} {} incomplete uploads",
                uploads.uploads().len()
            ));
        }
    }
    let sim = &run.world.sim;
    let deleted: BTreeSet<String> = sim.deleted_calls().into_iter().collect();
    lines.push(format!(
        "provider created {} calls, {} create requests, deleted {} calls",
        sim.created_calls().len(),
        sim.create_requests().len(),
        deleted.len()
    ));
    let mut out = BTreeMap::new();
    for l in lines {
        *out.entry(l).or_insert(0) += 1;
    }
    out
}

fn value(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => {
            // A ciphertext, a blind index or an encoded blob as one opaque token.
            if s.len() >= 24
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c))
            {
                "<opaque>".to_owned()
            } else {
                norm(s)
            }
        }
        AttributeValue::N(n) => norm(n),
        AttributeValue::B(_) => "<bytes>".to_owned(),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "null".to_owned(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => {
            let set: BTreeSet<String> = v.iter().map(|s| norm(s)).collect();
            format!("{set:?}")
        }
        AttributeValue::Bs(v) => format!("<{} bytes>", v.len()),
        AttributeValue::L(l) => format!("[{}]", l.iter().map(value).collect::<Vec<_>>().join(",")),
        AttributeValue::M(m) => {
            let set: BTreeSet<String> = m
                .iter()
                .filter(|(k, _)| k.as_str() != "version")
                .map(|(k, v)| format!("{k}:{}", value(v)))
                .collect();
            format!("{{{}}}", set.into_iter().collect::<Vec<_>>().join(","))
        }
        _ => "?".to_owned(),
    }
}

/// Replaces what differs between two runs of the same flow on two stacks: timestamps,
/// generated ids, keyed hashes, epoch numbers.
fn norm(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let is_ts = |i: usize| {
        let d = |k: usize| c.get(i + k).is_some_and(|x| x.is_ascii_digit());
        (0..4).all(d) && c.get(i + 4) == Some(&'-') && d(5) && d(6) && c.get(i + 7) == Some(&'-')
    };
    let tok = |x: char| x.is_ascii_alphanumeric() || x == '-' || x == '_';
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if is_ts(i) {
            while i < c.len() && (c[i].is_ascii_digit() || "-:.TZ+".contains(c[i])) {
                i += 1;
            }
            out.push_str("<ts>");
        } else if tok(c[i]) {
            let j = (i..c.len()).find(|&j| !tok(c[j])).unwrap_or(c.len());
            let word: String = c[i..j].iter().collect();
            let digits = word.chars().filter(char::is_ascii_digit).count();
            if word.len() >= 16 && digits > 0 {
                out.push_str("<id>");
            } else if digits == word.len() && word.len() >= 9 {
                out.push_str("<n>");
            } else {
                out.push_str(&word);
            }
            i = j;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Requests of a long flow (the sweeps) the full matrix fails, each with every fault kind.
const LONG_FLOW_POINTS: usize = 24;

/// The fault points of `flow`: all of them, or the sample `make test` runs.
fn points(flow: Flow, aws: usize, provider: usize, all: bool) -> Vec<Point> {
    let mut out = BTreeSet::new();
    for (target, count) in [(Target::Aws, aws), (Target::Provider, provider)] {
        if all {
            // Every request of every flow, except the sweeps' long walks over the expiry
            // index (hundreds of near-identical month-partition queries at ~15 s a point):
            // for those a deterministic spread of LONG_FLOW_POINTS requests, first and last
            // included, each with every fault kind.
            let requests = if count > 100 {
                sample(flow.name(), count, LONG_FLOW_POINTS)
            } else {
                (1..=count).collect()
            };
            for n in requests {
                for fault in Fault::ALL {
                    out.insert(Point { target, n, fault });
                }
            }
        } else {
            // A long flow (the sweep walks every month's expiry partition) costs seconds
            // per point: fewer points for it.
            let long = count > 100;
            let size = if long { 3 } else { 5 };
            for (i, n) in sample(flow.name(), count, size).into_iter().enumerate() {
                // Every sampled request gets the case that matters most (applied, then
                // a 500); the other kinds rotate over the sample.
                out.insert(Point {
                    target,
                    n,
                    fault: Fault::ServerError,
                });
                let other = [Fault::Reset, Fault::Throttle, Fault::Timeout][i % 3];
                if (!long || i == 0) && (other != Fault::Timeout || i < 3) {
                    out.insert(Point {
                        target,
                        n,
                        fault: other,
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

/// A deterministic sample of 1..=count: the first and the last request and every k-th
/// from an offset seeded by the flow's name, at most `size` (at least 3).
fn sample(seed: &str, count: usize, size: usize) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let k = count.div_ceil(size.max(3) - 2).max(1);
    let offset = seed
        .bytes()
        .fold(7usize, |h, b| h.wrapping_mul(31) + b as usize)
        % k;
    let mut out: BTreeSet<usize> = (1 + offset..=count).step_by(k).collect();
    out.insert(1);
    out.insert(count);
    out.into_iter().collect()
}

/// What happened at one fault point.
enum Verdict {
    Converged,
    /// A visible state with its reason (see [`judge`]).
    Visible(String),
    Diverged(String),
}

fn judge(base: &Outcome, o: &Outcome) -> Verdict {
    let mut diff = Vec::new();
    for (line, n) in &base.snapshot {
        let m = o.snapshot.get(line).copied().unwrap_or(0);
        if m < *n {
            diff.push(format!("  - {line}"));
        }
    }
    for (line, n) in &o.snapshot {
        let m = base.snapshot.get(line).copied().unwrap_or(0);
        if m < *n {
            diff.push(format!("  + {line}"));
        }
    }
    if o.error.is_none() && diff.is_empty() {
        return Verdict::Converged;
    }
    // A visible state with its reason instead of the fault-free end: a data-subject
    // request that failed (staff see and retry it), or a call request whose outcome the
    // provider's lost answer left unknown (not placed twice). Either only while the
    // provider did exactly what it did without the fault.
    let provider_same = o
        .snapshot
        .keys()
        .filter(|l| l.starts_with("provider "))
        .eq(base.snapshot.keys().filter(|l| l.starts_with("provider ")));
    let visible = o.snapshot.keys().find(|l| {
        (l.starts_with("item DSAR#") && l.contains("status=failed"))
            || (l.starts_with("item LEAD#") && l.contains("call_state=unconfirmed"))
    });
    if let (Some(state), true) = (visible, provider_same) {
        return Verdict::Visible(state.clone());
    }
    let mut text = o.error.clone().unwrap_or_default();
    if !diff.is_empty() {
        text.push_str("\n  end state differs (- fault-free, + with the fault):\n");
        text.push_str(&diff.join("\n"));
    }
    Verdict::Diverged(text)
}

/// The emulator of the `run`-th run of `flow`. A flow that reads sent mail moves to a
/// fresh emulator every [`RUNS_PER_MAIL_EMULATOR`] runs: moto's mail dump walks every
/// stack it ever held, so reading a code would get slower with every run.
fn emulator(flow: Flow, run: usize) -> String {
    if !flow.reads_mail() {
        return harness::emulator::private("faults");
    }
    let name = format!("faults-{}-{}", flow.name(), run / RUNS_PER_MAIL_EMULATOR);
    static NAMES: std::sync::Mutex<BTreeSet<&'static str>> = std::sync::Mutex::new(BTreeSet::new());
    let name: &'static str = {
        let mut names = NAMES.lock().unwrap();
        match names.get(name.as_str()) {
            Some(n) => n,
            None => {
                let leaked: &'static str = Box::leak(name.into_boxed_str());
                names.insert(leaked);
                leaked
            }
        }
    };
    harness::emulator::private(name)
}

const RUNS_PER_MAIL_EMULATOR: usize = 20;

/// Runs the matrix of `flow` and fails on an unknown divergence.
async fn matrix(flow: Flow) {
    let all = std::env::var("POLLY_FAULTS").as_deref() == Ok("all");
    let started = std::time::Instant::now();
    let base = run_once(flow, &emulator(flow, 0), None).await;
    assert!(
        base.error.is_none(),
        "{}: the fault-free run failed: {:?}",
        flow.name(),
        base.error
    );
    let points = points(flow, base.aws.len(), base.provider.len(), all);
    let mut converged = 0;
    let mut visible = Vec::new();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let o = run_once(flow, &emulator(flow, i + 1), Some(*p)).await;
        let op = o.injected.clone().unwrap_or_else(|| "(not reached)".into());
        let at = format!("{:?} request {} ({op}) {:?}", p.target, p.n, p.fault);
        match judge(&base, &o) {
            Verdict::Converged => converged += 1,
            Verdict::Visible(state) => visible.push(format!("{at}: {state}")),
            Verdict::Diverged(why) => {
                let entry = KNOWN
                    .iter()
                    .find(|(f, k, label, _)| *f == flow.name() && *k == p.fault && op == *label);
                match entry {
                    Some((_, _, _, reason)) => known.push(format!("{at}: {reason}\n{why}")),
                    None => unknown.push(format!("{at}: {why}")),
                }
            }
        }
    }
    let report = format!(
        "fault matrix {} ({}): {} AWS and {} provider requests fault-free; {} fault points \
         exercised: {} converged, {} visible states, {} known divergences, {} unknown \
         ({} s)\n\
         AWS requests: {:?}\nprovider requests: {:?}\n{}{}{}",
        flow.name(),
        if all { "all" } else { "sample" },
        base.aws.len(),
        base.provider.len(),
        points.len(),
        converged,
        visible.len(),
        known.len(),
        unknown.len(),
        started.elapsed().as_secs(),
        base.aws,
        base.provider,
        section("visible states", &visible),
        section("known divergences", &known),
        section("DIVERGENCES", &unknown),
    );
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("faults-{}.txt", flow.name()));
    std::fs::write(&file, &report).ok();
    eprintln!("{report}");
    assert!(unknown.is_empty(), "{report}");
}

fn section(title: &str, entries: &[String]) -> String {
    if entries.is_empty() {
        String::new()
    } else {
        format!("{title}:\n{}\n", entries.join("\n"))
    }
}

/// R1.3, R1.4: a sign-up with any one request failed (and retried as API Gateway's client
/// would) stores the subject exactly once, with the same items as without a fault.
#[tokio::test]
async fn signup_converges_under_every_fault() {
    matrix(Flow::SignUp).await;
}

/// R2.3: the provider's webhooks, with any request failed and the delivery retried as the
/// provider does, record the call exactly as without a fault.
#[tokio::test]
async fn webhook_delivery_converges_under_every_fault() {
    matrix(Flow::Webhook).await;
}

/// R2.7, R2.9: the worker's recording copy, with any request failed (the provider's
/// recording download and deletion included), stores the recording once and leaves no
/// object or upload behind.
#[tokio::test]
async fn worker_ingest_converges_under_every_fault() {
    matrix(Flow::Ingest).await;
}

/// R1.5: placing the outbound call, with any request failed and the stream record retried,
/// places exactly one call, or leaves the request visibly `unconfirmed` without a second.
#[tokio::test]
async fn outbound_call_converges_under_every_fault() {
    matrix(Flow::Outbound).await;
}

/// R3, R3.2: a due recording goes with every version whatever request fails; the next run
/// finishes what a failed one left.
#[tokio::test]
async fn sweep_of_a_due_recording_converges_under_every_fault() {
    matrix(Flow::SweepRecording).await;
}

/// R3.2, R4.5: a due subject is erased completely whatever request fails; the next run
/// finishes what a failed one left, and the provider deletion is not lost.
#[tokio::test]
async fn sweep_of_a_due_subject_converges_under_every_fault() {
    matrix(Flow::SweepSubject).await;
}

/// R4.4: an access request ends with exactly one export package whatever request fails.
#[tokio::test]
async fn export_converges_under_every_fault() {
    matrix(Flow::Export).await;
}

/// R4.5: an erasure leaves no subject half-erased whatever request fails.
#[tokio::test]
async fn erasure_converges_under_every_fault() {
    matrix(Flow::Erasure).await;
}

/// R4.6: a rectification is applied once whatever request fails.
#[tokio::test]
async fn rectification_converges_under_every_fault() {
    matrix(Flow::Rectification).await;
}

/// R4.9: a consent withdrawal deletes the recordings whatever request fails.
#[tokio::test]
async fn withdrawal_converges_under_every_fault() {
    matrix(Flow::Withdrawal).await;
}

#[test]
fn normalising_keeps_structure_and_drops_what_differs_between_stacks() {
    assert_eq!(
        norm("LEAD#0193ab12-cd34-7ef0-8123-456789abcdef"),
        "LEAD#<id>"
    );
    assert_eq!(norm("2026-11-28T10:00:00.123Z"), "<ts>");
    assert_eq!(norm("1795000000"), "<n>");
    assert_eq!(norm("3"), "3");
    assert_eq!(
        norm("recordings/0193ab12cd347ef08123456789abcdef/call_0193ab12cd347ef0.wav"),
        "recordings/<id>/<id>.wav"
    );
    for (count, size) in [(20, 5), (667, 3), (6, 5), (1, 5)] {
        let s = sample("x", count, size);
        assert_eq!(s.first().copied(), Some(1), "the first request");
        assert_eq!(s.last().copied(), Some(count), "the last request");
        assert!(s.len() <= size, "{s:?}");
        assert_eq!(s, sample("x", count, size), "deterministic");
    }
}
