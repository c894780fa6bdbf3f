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

    /// As [`Self::on_mail_emulator`], on the private emulator called `name`: an area whose
    /// tests read mail and build exports keeps them off the `dsar` modules' emulator, whose
    /// state dump (where mail is read) grows slower with every object it ever held.
    pub async fn on_mail_emulator_named(name: &'static str) -> Self {
        Self::start_on(&harness::emulator::private(name)).await
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

/// Every mail the emulator of `d` recorded whose body names `needle` (a request id),
/// oldest first, raw as moto keeps it: `destinations` (`ToAddresses`, `CcAddresses`,
/// `BccAddresses`), `subject`, `body` (the HTML part).
pub async fn raw_mails_naming(d: &World, needle: &str) -> Vec<Value> {
    let url = format!("{}/moto-api/data.json", d.signup.stack.endpoint);
    // moto builds the dump while other tests change its models: try again on a torn one.
    for _ in 0..10 {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if let Ok(data) = serde_json::from_str::<Value>(&text) {
            return data["ses"]["Message"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m["body"].as_str().is_some_and(|b| b.contains(needle)))
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the emulator's mail dump does not parse");
}

/// Asserts that `mail` (from [`raw_mails_naming`]) went to `to` and to nobody else: no
/// other recipient, no copy, no blind copy.
pub fn assert_only_to(mail: &Value, to: &str) {
    let d = &mail["destinations"];
    assert_eq!(d["ToAddresses"], json!([to]), "{d}");
    for field in ["CcAddresses", "BccAddresses"] {
        assert!(
            d[field].is_null() || d[field] == json!([]),
            "{field}: {}",
            d[field]
        );
    }
}

/// The audit items about request `id` (`request_id`), in the order they were written
/// (their sort key is the time and a UUIDv7), as (action, actor, item).
pub async fn request_audit(d: &World, id: &str) -> Vec<(String, String, super::Item)> {
    let mut items: Vec<super::Item> = d
        .signup
        .items_of_kind("audit")
        .await
        .into_iter()
        .filter(|a| {
            a.get("request_id")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some(id)
        })
        .collect();
    items.sort_by(|a, b| {
        let key = |i: &super::Item| {
            (
                i["at"].as_s().unwrap().clone(),
                i["sk"].as_s().unwrap().clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    items
        .into_iter()
        .map(|i| {
            (
                i["action"].as_s().unwrap().clone(),
                i["actor"].as_s().unwrap().clone(),
                i,
            )
        })
        .collect()
}

/// Asserts that the stored state of `d` holds none of `values` in clear (nor base64- or
/// hex-encoded): every attribute name and value of every item of both tables, every
/// object key, version and metadata value of every bucket.
pub async fn assert_stored_state_free_of(d: &World, values: &[&str]) {
    use base64::Engine;
    let mut needles: Vec<String> = Vec::new();
    for v in values {
        needles.push((*v).to_owned());
        needles.push(base64::engine::general_purpose::STANDARD.encode(v));
        needles.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v));
        needles.push(hex::encode(v));
    }
    let check = |what: &str, bytes: &[u8]| {
        for n in &needles {
            assert!(!super::contains_ci(bytes, n), "{what} holds {n:?}");
        }
    };
    let items = d.signup.scan().await;
    assert!(!items.is_empty());
    for item in &items {
        let at = format!(
            "item {} {}",
            item["pk"].as_s().unwrap(),
            item["sk"].as_s().unwrap()
        );
        for (name, value) in item {
            check(&at, name.as_bytes());
            let mut out = Vec::new();
            super::flatten(value, &mut out);
            for bytes in out {
                check(&format!("{at} {name}"), &bytes);
            }
        }
    }
    let s3 = harness::s3_client(&d.signup.stack.aws);
    for bucket in d.signup.stack.buckets.values() {
        let listed = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        for v in listed.versions() {
            let key = v.key().unwrap();
            check("an object key", key.as_bytes());
            let head = s3
                .head_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(v.version_id().map(str::to_owned))
                .send()
                .await
                .unwrap();
            for (k, value) in head.metadata().into_iter().flatten() {
                check(&format!("metadata of {key}"), k.as_bytes());
                check(&format!("metadata of {key}"), value.as_bytes());
            }
            for value in [
                head.content_type(),
                head.content_disposition(),
                head.content_encoding(),
            ]
            .into_iter()
            .flatten()
            {
                check(&format!("headers of {key}"), value.as_bytes());
            }
        }
        for m in listed.delete_markers() {
            check(
                "a delete marker's key",
                m.key().unwrap_or_default().as_bytes(),
            );
        }
    }
}

/// `code` with its last digit changed: a wrong code that differs in one place.
pub fn one_off(code: &str) -> String {
    let mut digits: Vec<char> = code.chars().collect();
    let last = digits.last_mut().unwrap();
    *last = if *last == '9' {
        '0'
    } else {
        (*last as u8 + 1) as char
    };
    digits.into_iter().collect()
}

impl World {
    /// The analytics worker (R6) of this world's stack, configured from the template's
    /// environment of `AnalyticsWorkerFunction`, its clients on `aws` (the stack's own, or
    /// one through a fault proxy).
    pub fn analytics_worker_on(
        &self,
        aws: &aws_config::SdkConfig,
    ) -> dsar::analytics::job::AnalyticsExports {
        let config = self
            .signup
            .stack
            .config_for("AnalyticsWorkerFunction")
            .unwrap();
        dsar::analytics::exports_from_aws(
            &config,
            aws,
            std::sync::Arc::new(self.signup.clock.clone()),
        )
        .unwrap()
    }

    /// The job item of an analytics export.
    pub async fn analytics_job_item(&self, export_id: &str) -> HashMap<String, AttributeValue> {
        self.signup
            .item(format!("ANALYTICS#{export_id}"), "JOB")
            .await
            .expect("the job item")
    }

    /// Plays the table stream for an analytics job as Lambda would: the job item's
    /// current image to the worker, each slice within `budget`, until the job is no
    /// longer `running`; how many invocations it took.
    pub async fn pump_analytics(
        &self,
        exports: &dsar::analytics::job::AnalyticsExports,
        export_id: &str,
        budget: dsar::analytics::job::Budget,
    ) -> usize {
        for n in 1..=300u64 {
            let item = self.analytics_job_item(export_id).await;
            if item["status"].as_s().unwrap() != "running" {
                return (n - 1) as usize;
            }
            dsar::analytics::handle(
                exports,
                stream_event("MODIFY", item, HashMap::new(), n),
                budget,
            )
            .await;
        }
        panic!("the analytics job never ended");
    }

    /// The analytics export through the staff routes, as staff: started (202), carried
    /// out by the worker, then its status (200) once it ended.
    pub async fn analytics_export_done(&self) -> Value {
        let (status, started) = self
            .staff_post("/v1/admin/analytics-exports", &json!({}))
            .await;
        assert_eq!(status, 202, "{started}");
        let id = started["export_id"].as_str().unwrap().to_owned();
        let exports = self.analytics_worker_on(&self.signup.stack.aws);
        self.pump_analytics(&exports, &id, Default::default()).await;
        let path = format!("/v1/admin/analytics-exports/{id}");
        let (status, view) = self.call(ApiRequest::get(&path).as_staff(STAFF)).await;
        assert_eq!(status, 200, "{view}");
        view
    }
}
