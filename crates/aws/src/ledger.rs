//! The consent ledger over DynamoDB and KMS (R7.6).
//!
//! Entries live in the main table under their own partition key, `LEDGER`, one item per
//! sequence number (`sk = SEQ#<20 digits>`); the signed daily heads under `LEDGER_HEAD`
//! (`sk = DAY#<date>`). Neither carries a TTL or an expiry-index attribute, and neither
//! is under a subject's partition: the sweep (which finds work through the expiry index)
//! and erasure (which works on a subject's partition and claims) never reach them. The
//! table's stream filters pass only leads, calls and requests to the workers.
//!
//! An entry is written with `attribute_not_exists(pk)` on its sequence number: two
//! appenders cannot both take a number, so the chain never forks. The writer roles may
//! not update or delete ledger items (an IAM deny on the leading keys, see the
//! template); an overwrite through `PutItem` is what the hash chain and the signed heads
//! detect.
//!
//! The heads are signed with a KMS asymmetric key (`ECC_NIST_P256`, `ECDSA_SHA_256`); a
//! verifier needs only its public key (`GetPublicKey`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use chrono::NaiveDate;
use domain::ledger::{Hash, LedgerEntry, SignedHead};
use usecases::ledger::{HeadSigner, LedgerStore};
use usecases::ports::{KeyError, Retry, StoreError};

use crate::store_failure;

/// Partition of the chain's entries.
pub const LEDGER_PK: &str = "LEDGER";
/// Partition of the signed daily heads.
pub const HEAD_PK: &str = "LEDGER_HEAD";
/// Attributes of an entry item that are not among the hashed fields.
const RESERVED: &[&str] = &["pk", "sk", "kind", "seq", "prev_hash", "hash"];

/// The sort key of entry `seq`.
pub fn entry_sk(seq: u64) -> String {
    format!("SEQ#{seq:020}")
}

/// The sort key of the head of `date`.
pub fn head_sk(date: NaiveDate) -> String {
    format!("DAY#{}", date.format("%Y-%m-%d"))
}

#[derive(Debug, Clone)]
pub struct DynamoLedgerStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedgerStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    /// Over a DynamoDB client built from `aws`.
    pub fn from_sdk(aws: &aws_config::SdkConfig, table: String) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(aws), table)
    }
}

fn malformed(operation: &'static str) -> StoreError {
    StoreError {
        operation,
        retry: Retry::Permanent,
        source: None,
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn hash_of(item: &HashMap<String, AttributeValue>, name: &str) -> Option<Hash> {
    let text = item.get(name)?.as_s().ok()?;
    hex::decode(text).ok()?.try_into().ok()
}

fn seq_of(item: &HashMap<String, AttributeValue>) -> Option<u64> {
    item.get("seq")?.as_n().ok()?.parse().ok()
}

/// An entry item as read. A field stored as anything but a string (an insider's edit)
/// is kept as a value no append writes, so the entry's hash no longer matches.
fn entry_from_item(item: &HashMap<String, AttributeValue>) -> Result<LedgerEntry, StoreError> {
    let bad = || malformed("ledger_read");
    let mut fields = BTreeMap::new();
    for (k, v) in item {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        let value = match v.as_s() {
            Ok(text) => text.clone(),
            Err(_) => format!("\u{0}non-string:{v:?}"),
        };
        fields.insert(k.clone(), value);
    }
    Ok(LedgerEntry {
        seq: seq_of(item).ok_or_else(bad)?,
        prev_hash: hash_of(item, "prev_hash").ok_or_else(bad)?,
        fields,
        hash: hash_of(item, "hash").ok_or_else(bad)?,
    })
}

/// The item an entry is stored as (also written in bulk by the benchmark).
pub fn entry_item(entry: &LedgerEntry) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = entry
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect();
    item.insert("pk".into(), s(LEDGER_PK));
    item.insert("sk".into(), s(&entry_sk(entry.seq)));
    item.insert("kind".into(), s("ledger_entry"));
    item.insert("seq".into(), AttributeValue::N(entry.seq.to_string()));
    item.insert("prev_hash".into(), s(&hex::encode(entry.prev_hash)));
    item.insert("hash".into(), s(&hex::encode(entry.hash)));
    item
}

fn head_from_item(item: &HashMap<String, AttributeValue>) -> Result<SignedHead, StoreError> {
    let bad = || malformed("ledger_read_head");
    let date = item
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .and_then(|sk| sk.strip_prefix("DAY#"))
        .and_then(|d| d.parse().ok())
        .ok_or_else(bad)?;
    Ok(SignedHead {
        date,
        seq: seq_of(item).ok_or_else(bad)?,
        hash: hash_of(item, "hash").ok_or_else(bad)?,
        key_id: item
            .get("key_id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(bad)?,
        signature: item
            .get("signature")
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(bad)?,
    })
}

impl DynamoLedgerStore {
    async fn query_all(
        &self,
        pk: &str,
        operation: &'static str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_failure("dynamodb", operation, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn put_if_absent(
        &self,
        item: HashMap<String, AttributeValue>,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_failure("dynamodb", operation, e)),
        }
    }
}

#[async_trait]
impl LedgerStore for DynamoLedgerStore {
    async fn last(&self) -> Result<Option<LedgerEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(LEDGER_PK))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_failure("dynamodb", "ledger_last", e))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(entry_from_item)
            .transpose()
    }

    async fn put_next(&self, entry: &LedgerEntry) -> Result<bool, StoreError> {
        self.put_if_absent(entry_item(entry), "ledger_append").await
    }

    async fn entries(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        self.query_all(LEDGER_PK, "ledger_entries")
            .await?
            .iter()
            .map(entry_from_item)
            .collect()
    }

    async fn put_head(&self, head: &SignedHead) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(HEAD_PK)),
            ("sk".to_owned(), s(&head_sk(head.date))),
            ("kind".to_owned(), s("ledger_head")),
            ("seq".to_owned(), AttributeValue::N(head.seq.to_string())),
            ("hash".to_owned(), s(&hex::encode(head.hash))),
            ("key_id".to_owned(), s(&head.key_id)),
            (
                "signature".to_owned(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                    head.signature.clone(),
                )),
            ),
        ]);
        self.put_if_absent(item, "ledger_put_head").await
    }

    async fn head(&self, date: NaiveDate) -> Result<Option<SignedHead>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(HEAD_PK))
            .key("sk", s(&head_sk(date)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_failure("dynamodb", "ledger_head", e))?;
        out.item.as_ref().map(head_from_item).transpose()
    }

    async fn heads(&self) -> Result<Vec<SignedHead>, StoreError> {
        self.query_all(HEAD_PK, "ledger_heads")
            .await?
            .iter()
            .map(head_from_item)
            .collect()
    }
}

/// The signing key of the daily heads in KMS.
#[derive(Debug, Clone)]
pub struct KmsHeadSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsHeadSigner {
    pub fn new(client: aws_sdk_kms::Client, key_id: String) -> Self {
        Self { client, key_id }
    }

    /// Over a KMS client built from `aws`.
    pub fn from_sdk(aws: &aws_config::SdkConfig, key_id: String) -> Self {
        Self::new(aws_sdk_kms::Client::new(aws), key_id)
    }
}

#[async_trait]
impl HeadSigner for KmsHeadSigner {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message.to_vec()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| crate::kms::sdk_failure("sign", e))?;
        out.signature.map(|b| b.into_inner()).ok_or(KeyError {
            operation: "sign",
            retry: Retry::Permanent,
            source: None,
        })
    }

    async fn public_key(&self) -> Result<Vec<u8>, KeyError> {
        let out = self
            .client
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| crate::kms::sdk_failure("get_public_key", e))?;
        out.public_key.map(|b| b.into_inner()).ok_or(KeyError {
            operation: "get_public_key",
            retry: Retry::Permanent,
            source: None,
        })
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }
}
