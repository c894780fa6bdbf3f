//! Helpers of the data-subject-request tests: the dsar API, staff and worker functions on
//! an isolated stack, codes read from the emulator's sent mail, a subject with a recorded
//! call.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use harness::events::{stream_event, ApiRequest};
use harness::simulator::scenario::Scenario;
use harness::simulator::{SimConfig, Simulator};
use harness::stack::sent_mail;
use lambda_http::Body;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::adapters::dsar::REQUEST_SK;
use shared::domain::LeadId;
use shared::dsar::export::Exporter;
use shared::retell::signature::sign;
use shared::Clock;

use super::{form, TestApp};

/// The staff role the tests' staff function admits (`STAFF_PRINCIPAL_ARNS`).
pub const STAFF_ROLE: &str = "arn:aws:iam::123456789012:role/polly-staff";
/// A staff member as API Gateway names them: a session of [`STAFF_ROLE`].
pub const STAFF: &str = "arn:aws:sts::123456789012:assumed-role/polly-staff/anna";

pub struct Dsar {
    pub signup: TestApp,
    pub api: dsar::App,
    /// The staff routes' function, admitting [`STAFF_ROLE`].
    pub staff: dsar::staff::StaffApp,
    pub exporter: Exporter,
}

pub fn unique_email() -> String {
    format!("dsar-{}@example.org", uuid::Uuid::now_v7().simple())
}

impl Dsar {
    pub async fn spawn() -> Self {
        let signup = TestApp::spawn().await;
        Self::on(signup)
    }

    /// Like [`Dsar::on`], with the worker talking to the provider simulator at `sim`.
    pub fn with_provider(signup: TestApp, sim: &str) -> Self {
        let mut d = Self::on(signup);
        let mut config = d.signup.stack.config_for("DsarWorkerFunction").unwrap();
        config.retell_api_base_url = sim.to_owned();
        d.exporter = dsar::worker::exporter_from_aws(
            &config,
            &d.signup.stack.aws,
            Arc::new(d.signup.clock.clone()),
        )
        .unwrap();
        d
    }

    pub fn on(signup: TestApp) -> Self {
        let clock = Arc::new(signup.clock.clone());
        let api = dsar::App::from_aws(
            signup.stack.config_for("DsarApiFunction").unwrap(),
            &signup.stack.aws,
            clock.clone(),
        )
        .unwrap();
        let mut staff_config = signup.stack.config_for("DsarStaffFunction").unwrap();
        staff_config.staff_principal_arns = vec![STAFF_ROLE.to_owned()];
        let staff = dsar::staff::StaffApp::from_aws(staff_config, &signup.stack.aws, clock.clone())
            .unwrap();
        let exporter = dsar::worker::exporter_from_aws(
            &signup.stack.config_for("DsarWorkerFunction").unwrap(),
            &signup.stack.aws,
            clock,
        )
        .unwrap();
        Self {
            signup,
            api,
            staff,
            exporter,
        }
    }

    /// Sends a request where API Gateway would: `/v1/admin/…` to the staff function,
    /// everything else to the public one.
    pub async fn call(&self, req: ApiRequest<'_>) -> (u16, Value) {
        if req.path.starts_with("/v1/admin") {
            self.call_staff(req).await
        } else {
            self.call_public(req).await
        }
    }

    /// Sends a request to the public function, whatever its path.
    pub async fn call_public(&self, req: ApiRequest<'_>) -> (u16, Value) {
        answer(dsar::handle(&self.api, req.build()).await)
    }

    /// Sends a request to the staff function, whatever its path.
    pub async fn call_staff(&self, req: ApiRequest<'_>) -> (u16, Value) {
        answer(dsar::staff::handle(&self.staff, req.build()).await)
    }

    pub async fn submit(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.call(ApiRequest::post_json("/v1/dsar", &bytes)).await
    }

    pub async fn verify(&self, id: &str, code: &str) -> (u16, Value) {
        let path = format!("/v1/dsar/{id}/verify");
        let bytes = serde_json::to_vec(&json!({ "code": code })).unwrap();
        self.call(ApiRequest::post_json(&path, &bytes)).await
    }

    pub async fn status(&self, id: &str, token: Option<&str>) -> (u16, Value) {
        let path = format!("/v1/dsar/{id}");
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut req = ApiRequest::get(&path);
        if let Some(a) = auth.as_deref() {
            req = req.header("authorization", a);
        }
        self.call(req).await
    }

    pub async fn staff_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.call(ApiRequest::post_json(path, &bytes).as_staff(STAFF))
            .await
    }

    pub async fn request_item(&self, id: &str) -> HashMap<String, AttributeValue> {
        aws_sdk_dynamodb::Client::new(&self.signup.stack.aws)
            .get_item()
            .table_name(&self.signup.stack.table)
            .key("pk", AttributeValue::S(format!("DSAR#{id}")))
            .key("sk", AttributeValue::S(REQUEST_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default()
    }

    /// Hands the request record to the worker as the stream would.
    pub async fn pump(&self, id: &str, seq: u64) -> usize {
        let item = self.request_item(id).await;
        let mut old = item.clone();
        old.insert(
            "status".into(),
            AttributeValue::S("awaiting_verification".into()),
        );
        dsar::worker::handle(&self.exporter, stream_event("MODIFY", item, old, seq))
            .await
            .batch_item_failures
            .len()
    }

    /// Submits a request for `email` and verifies it with the code from the mail.
    pub async fn verified(&self, kind: &str, email: &str) -> (String, String) {
        let (status, body) = self.submit(&json!({"type": kind, "email": email})).await;
        assert_eq!(status, 202, "{body}");
        let id = body["request_id"].as_str().unwrap().to_owned();
        let code = latest_code(email, &id).await;
        let (status, body) = self.verify(&id, &code).await;
        assert_eq!(status, 200, "{body}");
        (id, body["request_token"].as_str().unwrap().to_owned())
    }

    pub async fn download(&self, url: &str) -> Vec<u8> {
        // The presigned URL names the emulator's host; fetch it as a browser would.
        reqwest::get(url)
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }
}

fn answer(resp: lambda_http::Response<Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The one-time code mailed to `email` for request `id` (tests share the emulator and
/// some share an address, so the request id picks the mail).
pub async fn latest_code(email: &str, id: &str) -> String {
    code_in(&sent_mail(email).await.unwrap(), id)
}

/// The code for request `id` among `mails` (one dump of the emulator serves many).
pub fn code_in(mails: &[harness::stack::SentMail], id: &str) -> String {
    let mail = mails
        .iter()
        .rev()
        .find(|m| m.body.contains(id) && m.body.contains("letter-spacing"))
        .expect("a code mail for the request was sent");
    let after = mail
        .body
        .split("letter-spacing: 4px;\">")
        .nth(1)
        .unwrap_or_default();
    let code: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    assert_eq!(code.len(), 8, "an 8-digit code: {}", mail.body);
    code
}

pub fn unzip(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = HashMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        out.insert(f.name().to_owned(), data);
    }
    out
}

/// A signed-up subject with one consented, recorded call (webhooks through the real
/// handler, the recording copied by the real worker from the simulator).
pub async fn recorded_call(signup: &TestApp) -> (LeadId, String, Simulator) {
    signup.sign_up(&form()).await;
    let lead = signup.lead_of(super::EMAIL).await;
    let sim = Simulator::start(SimConfig::new("local-test-key"))
        .await
        .unwrap();
    let webhook = telephony::App::from_aws(
        &signup.stack.config_for("TelephonyWebhookFunction").unwrap(),
        &signup.stack.aws,
        Arc::new(signup.clock.clone()),
    )
    .unwrap();
    let mut wconfig = signup.stack.config_for("TelephonyWorkerFunction").unwrap();
    wconfig.retell_api_base_url = sim.base_url().to_owned();
    wconfig.recordings_allow_loopback = true;
    let tworker =
        telephony::worker_from_aws(&wconfig, &signup.stack.aws, Arc::new(signup.clock.clone()))
            .unwrap();
    let script = sim.script(
        Scenario::ConsentYes,
        sim.params(&lead.to_string(), sim.now_ms() - 120_000),
    );
    let call_id = script.call_id().to_owned();
    for event in ["call_ended", "call_analyzed"] {
        let body = script.event(event).unwrap().unwrap().body;
        let sig = sign(
            &body,
            &SecretString::from("local-test-key".to_owned()),
            signup.clock.now().timestamp_millis() as u64,
        );
        let req =
            ApiRequest::post_json("/v1/telephony/retell", &body).header("x-retell-signature", &sig);
        assert_eq!(telephony::handle(&webhook, req.build()).await.status(), 204);
    }
    let call = aws_sdk_dynamodb::Client::new(&signup.stack.aws)
        .get_item()
        .table_name(&signup.stack.table)
        .key("pk", AttributeValue::S(call_pk(&call_id)))
        .key("sk", AttributeValue::S(CALL_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let failures = telephony::worker::handle(
        &tworker,
        stream_event("MODIFY", call, Default::default(), 1),
    )
    .await
    .batch_item_failures
    .len();
    assert_eq!(failures, 0);
    (lead, call_id, sim)
}
