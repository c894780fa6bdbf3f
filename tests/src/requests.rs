//! AWS requests counted on the wire, by operation: an SDK interceptor put on a client
//! (`Intercept`, per client), and the retention sweep over clients that carry it. The
//! sweep's request-count test and `make bench` (`bench-sweep`) measure with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

use crate::stack::Stack;

/// Requests sent through the clients that carry it, by operation (`BatchWriteItem`,
/// `Query`, ..., `s3:ListObjectVersions`, `s3:DeleteObjects`). Every transmission
/// counts: a retry is a request too.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl RequestCounter {
    /// Requests so far, by operation.
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.by_operation().values().sum()
    }

    pub fn of(&self, operation: &str) -> usize {
        self.by_operation().get(operation).copied().unwrap_or(0)
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let req = context.request();
        // DynamoDB names its operation in a header; S3 in the method and the query.
        let operation = match req.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or_default().to_owned(),
            None => {
                let uri = req.uri();
                let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let name = match req.method() {
                    "GET" if query.contains("versions") => "ListObjectVersions",
                    "POST" if query.contains("delete") => "DeleteObjects",
                    "GET" => "GetObject",
                    "PUT" => "PutObject",
                    "DELETE" => "DeleteObject",
                    _ => "other",
                };
                format!("s3:{name}")
            }
        };
        if let Ok(mut m) = self.0.lock() {
            *m.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

/// The sweep of `stack` as the function builds it (recordings and exports buckets),
/// over DynamoDB and S3 clients that carry `counter`.
pub fn counted_sweeper(stack: &Stack, counter: &RequestCounter) -> Result<shared::sweep::Sweeper> {
    let config = stack.config_for("RetentionSweepFunction")?;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.aws)
            .force_path_style(true)
            .interceptor(counter.clone())
            .build(),
    );
    let blobs = |bucket: Option<String>| {
        shared::adapters::s3::BlobStore::new(
            s3.clone(),
            bucket.unwrap_or_default(),
            config.data_key_arn.clone(),
        )
    };
    Ok(shared::sweep::Sweeper::new(
        ddb,
        stack.table.clone(),
        stack.key_table.clone(),
        blobs(config.recordings_bucket.clone()),
    )
    .with_exports(blobs(config.exports_bucket.clone())))
}

/// Signs up `count` subjects at `at` through the sign-up use case over the stack's
/// tables and keys, one after the other (moto's transactions are not safe to run
/// concurrently); their emails and numbers are synthetic.
pub async fn sign_up_many(
    stack: &Stack,
    count: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    use shared::domain::{Email, LeadProfile, PersonName, PhoneNumber};
    use shared::leads::{LeadService, SignupRequest};
    let config = stack.signup_config()?;
    let leads = LeadService::new(
        Arc::new(shared::adapters::dynamo::DynamoLeadStore::new(
            aws_sdk_dynamodb::Client::new(&stack.aws),
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
        Arc::new(shared::adapters::kms::KmsKeyService::new(
            aws_sdk_kms::Client::new(&stack.aws),
            config.data_key_id,
            config.blind_index_key_id,
        )),
        Arc::new(shared::FixedClock::at(at)),
    );
    for i in 0..count {
        let profile = LeadProfile {
            first_name: PersonName::parse("Bench")?,
            last_name: PersonName::parse("Subject")?,
            email: Email::parse(&format!("subject{i}@example.org"))?,
            phone: PhoneNumber::parse(&format!("+49 170 {:07}", 2_000_000 + i))?,
            notes: None,
        };
        leads
            .sign_up(SignupRequest {
                profile,
                source_ip: None,
                client: None,
                policy_version: "2024-04-08".into(),
                call_window: None,
            })
            .await?;
    }
    Ok(())
}

/// Seeds `count` subjects shaped as a sign-up leaves them, all due at `due` (their last
/// contact three years before): the lead (with its blind indexes and its lead-class
/// expiry), a §7a consent proof (due years later), the two identifier claims and the
/// wrapped data key in the key table; written in batches (seeding 1 000 sign-ups through
/// moto's transactions takes minutes). Returns their lead ids.
pub async fn seed_due_subjects(
    stack: &Stack,
    count: usize,
    due: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    use shared::domain::retention::expiry_bucket;
    use shared::domain::RetentionClass;
    let s = |v: String| AttributeValue::S(v);
    let n = |v: i64| AttributeValue::N(v.to_string());
    let proof_due = due + chrono::Duration::days(2 * 365);
    let mut main = Vec::new();
    let mut keys = Vec::new();
    let mut leads = Vec::new();
    for i in 0..count {
        let lead = uuid::Uuid::now_v7().to_string();
        let (email, phone) = (
            format!("e{i:04}{}", &lead[..8]),
            format!("p{i:04}{}", &lead[..8]),
        );
        let pk = format!("LEAD#{lead}");
        let item = |pairs: Vec<(&str, AttributeValue)>| -> std::collections::HashMap<String, AttributeValue> {
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        main.push(item(vec![
            ("pk", s(pk.clone())),
            ("sk", s("PROFILE".into())),
            ("kind", s("lead".into())),
            ("lead_id", s(lead.clone())),
            ("email_bidx", s(email.clone())),
            ("phone_bidx", s(phone.clone())),
            ("exp_bucket", s(expiry_bucket(RetentionClass::Lead, due))),
            ("exp_at", n(due.timestamp())),
            ("ttl", n(due.timestamp() + 7 * 86_400)),
        ]));
        main.push(item(vec![
            ("pk", s(pk.clone())),
            (
                "sk",
                s(format!(
                    "CONSENT#2026-11-28T10:00:00.000Z#{}",
                    uuid::Uuid::now_v7().simple()
                )),
            ),
            ("kind", s("phone_consent".into())),
            ("lead_id", s(lead.clone())),
            ("phone_bidx", s(phone.clone())),
            (
                "exp_bucket",
                s(expiry_bucket(RetentionClass::PhoneConsentProof, proof_due)),
            ),
            ("exp_at", n(proof_due.timestamp())),
            ("ttl", n(proof_due.timestamp() + 7 * 86_400)),
        ]));
        for claim in [format!("EMAIL#{email}"), format!("PHONE#{phone}")] {
            main.push(item(vec![
                ("pk", s(claim)),
                ("sk", s("CLAIM".into())),
                ("kind", s("claim".into())),
                ("lead_id", s(lead.clone())),
                ("ttl", n(due.timestamp() + 7 * 86_400)),
            ]));
        }
        keys.push(item(vec![
            ("pk", s(pk)),
            ("sk", s("KEY".into())),
            ("kind", s("data_key".into())),
        ]));
        leads.push(lead);
    }
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    for (table, items) in [(&stack.table, main), (&stack.key_table, keys)] {
        let writes = items
            .into_iter()
            .map(|i| {
                PutRequest::builder()
                    .set_item(Some(i))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in writes.chunks(25) {
            ddb.batch_write_item()
                .request_items(table.as_str(), chunk.to_vec())
                .send()
                .await?;
        }
    }
    Ok(leads)
}
