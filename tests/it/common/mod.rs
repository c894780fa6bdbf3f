//! Shared helpers of the integration tests: the sign-up app wired to an isolated stack
//! ([`TestApp`]), everything else wired to the same stack and clock ([`World`]), the form,
//! the table of bad inputs.
#![allow(dead_code)]

pub mod dsar;
pub mod world;

pub use world::{Subject, World, API_KEY};

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use harness::events::ApiRequest;
use harness::stack::Stack;
use lambda_http::Body;
use serde_json::{json, Value};
use shared::adapters::dynamo::{lead_pk, KEY_SK, LEAD_SK};
use shared::adapters::{dynamo::DynamoLeadStore, kms::KmsKeyService};
use shared::domain::LeadId;
use shared::leads::LeadService;
use shared::{Clock, FixedClock};

pub const FIRST: &str = "Wilhelmine";
pub const LAST: &str = "Zwetschgenbaum";
pub const EMAIL: &str = "wilhelmine.zwetschgenbaum@example.org";
pub const PHONE: &str = "0170 9876543";
pub const PHONE_E164: &str = "+491709876543";
pub const NOTES: &str = "Bitte nach 17 Uhr anrufen, Stichwort Pflaumenkuchen.";
/// The personal values a sign-up of [`form`] submits (the source address is the one
/// `ApiRequest` sends from), as they must appear nowhere in clear.
pub const PERSONAL: [&str; 9] = [
    FIRST,
    LAST,
    EMAIL,
    PHONE,
    PHONE_E164,
    "1709876543",
    NOTES,
    "Pflaumenkuchen",
    "203.0.113.7",
];

/// A stored item, as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

pub struct TestApp {
    pub stack: Stack,
    pub clock: FixedClock,
    pub app: signup::App,
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

impl TestApp {
    /// On a stack of its own in the shared emulator.
    pub async fn spawn() -> Self {
        Self::spawn_on(&harness::endpoint()).await
    }

    /// On a stack of its own in the emulator at `endpoint` ([`harness::emulator`]).
    pub async fn spawn_on(endpoint: &str) -> Self {
        let stack = Stack::isolated_on(endpoint)
            .await
            .expect("provision a stack (is moto running?)");
        let clock = FixedClock::at(t("2026-11-28T10:00:00Z"));
        let app = signup::App::from_aws(
            stack.signup_config().unwrap(),
            &stack.aws,
            Arc::new(clock.clone()),
        );
        Self { stack, clock, app }
    }

    pub fn service(&self) -> LeadService {
        let config = self.stack.signup_config().unwrap();
        LeadService::new(
            Arc::new(DynamoLeadStore::new(
                aws_sdk_dynamodb::Client::new(&self.stack.aws),
                config.table_name,
                config.key_table_name,
            )),
            Arc::new(KmsKeyService::new(
                aws_sdk_kms::Client::new(&self.stack.aws),
                config.data_key_id,
                config.blind_index_key_id,
            )),
            Arc::new(self.clock.clone()),
        )
    }

    pub async fn post(&self, request: ApiRequest<'_>) -> (u16, String, Option<String>) {
        let resp = signup::handle(&self.app, request.build()).await;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = match resp.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            Body::Empty => String::new(),
            _ => String::new(),
        };
        (status, body, content_type)
    }

    pub async fn sign_up(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let (status, text, _) = self
            .post(ApiRequest::post_json("/v1/signups", &bytes))
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The subject holding `email` now (the sign-up answer names no lead, R1.6): looked
    /// up by blind index and claim, as the system does.
    pub async fn lead_of(&self, email: &str) -> LeadId {
        self.stack
            .lead_of(email, self.clock.now())
            .await
            .unwrap()
            .expect("a subject holds the email")
    }

    /// The item under `pk` / `sk`, read consistently (wrapped keys from the key table).
    pub async fn item(&self, pk: String, sk: &str) -> Option<Item> {
        let table = if sk == KEY_SK {
            &self.stack.key_table
        } else {
            &self.stack.table
        };
        aws_sdk_dynamodb::Client::new(&self.stack.aws)
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// The lead item of `id`, which must exist.
    pub async fn lead_item(&self, id: &LeadId) -> Item {
        self.item(lead_pk(id), LEAD_SK)
            .await
            .expect("the lead item")
    }

    /// Signs up [`form`] and returns the subject (the answer names none, R1.6).
    pub async fn subject(&self) -> LeadId {
        let (status, body) = self.sign_up(&form()).await;
        assert_eq!(status, 201, "{body}");
        self.lead_of(EMAIL).await
    }

    /// Object versions and delete markers under `prefix` in the bucket `logical`.
    pub async fn versions(&self, logical: &str, prefix: &str) -> usize {
        let out = harness::s3_client(&self.stack.aws)
            .list_object_versions()
            .bucket(self.stack.bucket(logical))
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        out.versions().len() + out.delete_markers().len()
    }

    /// The bytes of `key` in the bucket `logical`, which must exist.
    pub async fn object(&self, logical: &str, key: &str) -> Vec<u8> {
        harness::s3_client(&self.stack.aws)
            .get_object()
            .bucket(self.stack.bucket(logical))
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .to_vec()
    }

    /// Every item we store, raw: the main table and the key table.
    pub async fn scan(&self) -> Vec<HashMap<String, AttributeValue>> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.stack.aws);
        let mut items = Vec::new();
        for table in [&self.stack.table, &self.stack.key_table] {
            let mut start = None;
            loop {
                let out = ddb
                    .scan()
                    .table_name(table)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .unwrap();
                items.extend(out.items().iter().cloned());
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        items
    }

    /// Every item we store, by table key (`pk`, `sk`): two snapshots compare equal exactly
    /// when nothing was written.
    pub async fn by_key(&self) -> std::collections::BTreeMap<(String, String), Item> {
        self.scan()
            .await
            .into_iter()
            .map(|i| {
                let key = (
                    i["pk"].as_s().unwrap().clone(),
                    i["sk"].as_s().unwrap().clone(),
                );
                (key, i)
            })
            .collect()
    }

    /// The actions of every audit item, in no particular order.
    pub async fn audit_actions(&self) -> Vec<String> {
        self.items_of_kind("audit")
            .await
            .iter()
            .map(|a| a["action"].as_s().unwrap().clone())
            .collect()
    }

    /// The metadata of `key` in the bucket `logical`, which must exist.
    pub async fn head(
        &self,
        logical: &str,
        key: &str,
    ) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        harness::s3_client(&self.stack.aws)
            .head_object()
            .bucket(self.stack.bucket(logical))
            .key(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn items_of_kind(&self, kind: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.scan()
            .await
            .into_iter()
            .filter(|i| {
                i.get("kind")
                    .and_then(|k| k.as_s().ok())
                    .map(String::as_str)
                    == Some(kind)
            })
            .collect()
    }
}

pub fn form() -> Value {
    json!({
        "first_name": FIRST,
        "last_name": LAST,
        "email": EMAIL,
        "phone": PHONE,
        "notes": NOTES,
        "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"}
    })
}

/// The TTL backstop of `item` (epoch seconds), which it must carry.
pub fn ttl(item: &Item) -> i64 {
    let kind = item["kind"].as_s().unwrap();
    item.get("ttl")
        .unwrap_or_else(|| panic!("{kind} has no ttl"))
        .as_n()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every string inside an attribute value, and the bytes of every binary.
pub fn flatten(value: &AttributeValue, out: &mut Vec<Vec<u8>>) {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.as_bytes().to_vec()),
        AttributeValue::B(b) => out.push(b.as_ref().to_vec()),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => {
            out.extend(v.iter().map(|s| s.as_bytes().to_vec()))
        }
        AttributeValue::Bs(v) => out.extend(v.iter().map(|b| b.as_ref().to_vec())),
        AttributeValue::L(l) => l.iter().for_each(|v| flatten(v, out)),
        AttributeValue::M(m) => m.iter().for_each(|(k, v)| {
            out.push(k.as_bytes().to_vec());
            flatten(v, out)
        }),
        _ => {}
    }
}

pub fn contains_ci(haystack: &[u8], needle: &str) -> bool {
    let h = String::from_utf8_lossy(haystack).to_lowercase();
    h.contains(&needle.to_lowercase())
}

pub struct BadCase {
    pub name: &'static str,
    pub body: Vec<u8>,
    pub content_type: Option<&'static str>,
    pub status: u16,
    pub field: &'static str,
    /// Values that were submitted and must not come back.
    pub submitted: Vec<&'static str>,
}

pub fn with(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = form();
    mutate(&mut v);
    serde_json::to_vec(&v).unwrap()
}

pub fn bad_cases() -> Vec<BadCase> {
    let case = |name, body, status, field, submitted: Vec<&'static str>| BadCase {
        name,
        body,
        content_type: Some("application/json"),
        status,
        field,
        submitted,
    };
    let mut oversized = form();
    oversized["notes"] = json!("x".repeat(17 * 1024));
    vec![
        case(
            "missing first name",
            with(|v| {
                v.as_object_mut().unwrap().remove("first_name");
            }),
            422,
            "first_name",
            vec![],
        ),
        case(
            "missing email",
            with(|v| {
                v.as_object_mut().unwrap().remove("email");
            }),
            422,
            "email",
            vec![],
        ),
        case(
            "missing consent",
            with(|v| {
                v.as_object_mut().unwrap().remove("consent");
            }),
            422,
            "consent",
            vec![],
        ),
        case(
            "name of wrong type",
            with(|v| v["first_name"] = json!(42)),
            422,
            "first_name",
            vec![],
        ),
        case(
            "phone of wrong type",
            with(|v| v["phone"] = json!(["0170", "9876543"])),
            422,
            "phone",
            vec![],
        ),
        case(
            "invalid email",
            with(|v| v["email"] = json!("wilhelmine.at.example.org")),
            422,
            "email",
            vec!["wilhelmine.at.example.org"],
        ),
        case(
            "email without dotted domain",
            with(|v| v["email"] = json!("wilhelmine@localhost")),
            422,
            "email",
            vec!["wilhelmine@localhost"],
        ),
        case(
            "invalid phone",
            with(|v| v["phone"] = json!("0170 98")),
            422,
            "phone",
            vec!["0170 98"],
        ),
        case(
            "phone with letters",
            with(|v| v["phone"] = json!("0170 PFLAUME")),
            422,
            "phone",
            vec!["PFLAUME"],
        ),
        case(
            "consent false",
            with(|v| v["consent"]["contact_by_phone"] = json!(false)),
            422,
            "consent.contact_by_phone",
            vec![],
        ),
        case(
            "consent as a string",
            with(|v| v["consent"]["contact_by_phone"] = json!("yes")),
            422,
            "consent.contact_by_phone",
            vec![],
        ),
        case(
            "unknown policy version",
            with(|v| v["consent"]["privacy_policy_version"] = json!("1999-01-01-geheim")),
            422,
            "consent.privacy_policy_version",
            vec!["1999-01-01-geheim"],
        ),
        case(
            "control character in name",
            with(|v| v["first_name"] = json!("Wilhel\u{0007}mine")),
            422,
            "first_name",
            vec!["Wilhel"],
        ),
        case(
            "bidi override in name",
            with(|v| v["last_name"] = json!("Zwetschgen\u{202E}baum")),
            422,
            "last_name",
            vec!["Zwetschgen"],
        ),
        case(
            "name too long",
            with(|v| v["first_name"] = json!("Wilhelmine".repeat(11))),
            422,
            "first_name",
            vec![],
        ),
        case(
            "notes too long",
            with(|v| v["notes"] = json!("Pflaumenkuchen ".repeat(150))),
            422,
            "notes",
            vec!["Pflaumenkuchen"],
        ),
        case(
            "notes of wrong type",
            with(|v| v["notes"] = json!({"a": 1})),
            422,
            "notes",
            vec![],
        ),
        case(
            "body over 16 KiB",
            serde_json::to_vec(&oversized).unwrap(),
            413,
            "body",
            vec![],
        ),
        case(
            "not JSON",
            b"first_name=Wilhelmine&email=x".to_vec(),
            400,
            "body",
            vec!["Wilhelmine"],
        ),
        case("JSON array", b"[1,2,3]".to_vec(), 400, "body", vec![]),
        case(
            "truncated JSON",
            br#"{"first_name":"Wilhelmine","#.to_vec(),
            400,
            "body",
            vec!["Wilhelmine"],
        ),
        case(
            "duplicate member",
            br#"{"email":"a@example.org","email":"wilhelmine@example.org"}"#.to_vec(),
            400,
            "email",
            vec!["wilhelmine@example.org"],
        ),
        case(
            "invalid UTF-8",
            b"{\"first_name\":\"\xff\xfe\"}".to_vec(),
            400,
            "body",
            vec![],
        ),
        case("empty body", Vec::new(), 400, "body", vec![]),
        BadCase {
            name: "wrong content type",
            body: with(|_| {}),
            content_type: Some("text/plain"),
            status: 415,
            field: "content-type",
            submitted: vec![],
        },
        BadCase {
            name: "missing content type",
            body: with(|_| {}),
            content_type: None,
            status: 415,
            field: "content-type",
            submitted: vec![],
        },
    ]
}

/// For a test that measures the whole process (its memory), which the tests running
/// beside it in this binary would disturb: runs the test named `test` (its full name,
/// `module::function`) alone in a fresh process of this binary and returns false, or, in
/// that process, returns true, and the test's body runs there.
pub fn in_own_process(test: &str) -> bool {
    const ALONE: &str = "POLLY_TEST_ALONE";
    if std::env::var(ALONE).as_deref() == Ok(test) {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in its own process:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

/// Polls all futures on this thread (the tests run on a current-thread runtime, which is
/// also what keeps log capture per test).
pub async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

/// Every way `secret` could sit in a stored string: as is (any case), base64 (standard
/// and URL-safe, at each of the three alignments inside a longer value) and hex.
pub fn encodings(secret: &str) -> Vec<String> {
    use base64::Engine;
    let mut out = vec![secret.to_lowercase()];
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3 {
            let mut bytes = vec![0u8; shift];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = engine.encode(&bytes);
            // The characters made of the secret's own bits only: character j holds bits
            // 6j..6j+6, the secret bits 8 * shift..8 * (shift + len).
            let first = (8 * shift).div_ceil(6);
            let end = (8 * bytes.len() - 6) / 6 + 1;
            if end >= first + 8 {
                out.push(encoded[first..end].to_owned());
            }
        }
    }
    out.push(hex::encode(secret.as_bytes()));
    out.push(hex::encode_upper(secret.as_bytes()));
    out
}

impl TestApp {
    /// The table's stream and its (only, in the emulator) shard.
    pub async fn stream_shard(&self) -> (String, String) {
        let stack = &self.stack;
        let stream_arn = aws_sdk_dynamodb::Client::new(&stack.aws)
            .describe_table()
            .table_name(&stack.table)
            .send()
            .await
            .unwrap()
            .table()
            .unwrap()
            .latest_stream_arn()
            .unwrap()
            .to_owned();
        let shard = aws_sdk_dynamodbstreams::Client::new(&stack.aws)
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .unwrap()
            .stream_description()
            .unwrap()
            .shards()[0]
            .shard_id()
            .unwrap()
            .to_owned();
        (stream_arn, shard)
    }

    /// The stream, shard and sequence number of the last stream record of the item `pk` /
    /// `sk` in the stack's table stream (what Lambda's on-failure record points at).
    pub async fn stream_pointer(&self, pk: &str, sk: &str) -> (String, String, String) {
        let (stream_arn, shard) = self.stream_shard().await;
        let streams = aws_sdk_dynamodbstreams::Client::new(&self.stack.aws);
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(&shard)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        let mut sequence = None;
        while let Some(it) = iterator.take() {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            for r in out.records() {
                let change = r.dynamodb().unwrap();
                let keys = change.keys().unwrap();
                if keys["pk"].as_s().unwrap() == pk && keys["sk"].as_s().unwrap() == sk {
                    sequence = change.sequence_number().map(str::to_owned);
                }
            }
            if out.records().is_empty() {
                break;
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
        (
            stream_arn,
            shard,
            sequence.expect("the item's stream record"),
        )
    }
}
