//! Helpers of the data-subject-request tests: the [`World`]'s dsar API, staff and worker
//! functions driven as API Gateway and the stream would, codes read from the emulator's
//! sent mail, export packages unpacked.

use std::collections::HashMap;
use std::io::Read;

use aws_sdk_dynamodb::types::AttributeValue;
use harness::events::{stream_event, ApiRequest};
use lambda_http::Body;
use serde_json::{json, Value};
use shared::adapters::dsar::REQUEST_SK;

use super::World;

/// A staff member as API Gateway names them: a session of
/// [`STAFF_ROLE`](super::world::STAFF_ROLE).
pub const STAFF: &str = "arn:aws:sts::123456789012:assumed-role/polly-staff/anna";

/// An address nobody else uses.
pub fn unique_email() -> String {
    format!("dsar-{}@example.org", uuid::Uuid::now_v7().simple())
}

impl World {
    /// On a stack of its own in the emulator of the tests that read sent mail: a private
    /// one, which moto's bulk from the rest of the suite (uploads aborted by the recording
    /// tests, thousands of swept items) can neither break nor slow
    /// ([`harness::emulator`]).
    pub async fn on_mail_emulator() -> Self {
        Self::start_on(&harness::emulator::private("dsar")).await
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
        let code = self.latest_code(email, &id).await;
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

    /// The one-time code mailed to `email` for request `id` (tests share the emulator and
    /// some share an address, so the request id picks the mail).
    pub async fn latest_code(&self, email: &str, id: &str) -> String {
        code_in(&self.signup.stack.sent_mail(email).await.unwrap(), id)
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
