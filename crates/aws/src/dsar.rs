//! Data-subject request items in the table.
//!
//! `DSAR#<request id>` holds the request record (`REQUEST`: type, status, dates, no
//! content), the one-time code (`CODE`: a keyed hash, 15 minutes), the sealed contact
//! (`CONTACT`: the address to answer to and what the subject wrote, under a data key bound
//! to the request; deleted when the request closes) and the export (`EXPORT`: 7 days).
//! `DSAR_OPEN` / `<due date>#<id>` lists open requests by due date for staff, and
//! `LEAD#<id>` / `REQUEST#<id>` links a request to the subject it concerns (its history).
//!
//! Every change of a request rewrites the record on its read `version` inside one
//! transaction with the items that change with it and an audit item, so concurrent
//! actions (a code entered twice, staff and worker at once) cannot both win.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::dynamo::{audit_item, failed_conditions, failure, lead_pk, n, retention, s, ts, Item};
use domain::dsar::{RequestStatus, RequestType};
use domain::{LeadId, RequestId, RetentionClass};
use usecases::ports::StoreError;

pub fn request_pk(id: &RequestId) -> String {
    format!("DSAR#{id}")
}
pub const REQUEST_SK: &str = "REQUEST";
pub const CODE_SK: &str = "CODE";
pub const CONTACT_SK: &str = "CONTACT";
pub const EXPORT_SK: &str = "EXPORT";
/// Sort key of a request's wrapped contact key in the key table.
pub const REQUEST_KEY_SK: &str = "KEY";
/// Partition listing open requests by due date (a handful at any time; staff read it).
pub const OPEN_PK: &str = "DSAR_OPEN";

/// Wrong codes after which a request ends (R4.1).
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// How long the sealed contact of an open request may live at most: the longest
/// deadline (one month plus a two-month extension) and a month for staff to close it.
pub const CONTACT_MONTHS: u32 = 4;

fn corrupt(
    operation: &'static str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    super::dynamo::corrupt(operation, err)
}

/// Retention attributes carried by an item (`expires_at`, expiry index, TTL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expiry {
    pub expires_at: String,
    pub exp_bucket: String,
    pub exp_at: i64,
    pub ttl: i64,
}

impl Expiry {
    pub fn of(class: RetentionClass, start: DateTime<Utc>) -> Self {
        let r = retention(class, start);
        Self {
            expires_at: ts(r.expires_at),
            exp_bucket: r.bucket,
            exp_at: r.expires_at.timestamp(),
            ttl: r.ttl,
        }
    }

    /// Due at `due` under `class`'s partition of the expiry index.
    pub fn at(class: RetentionClass, due: DateTime<Utc>) -> Self {
        Self {
            expires_at: ts(due),
            exp_bucket: domain::retention::expiry_bucket(class, due),
            exp_at: due.timestamp(),
            ttl: (due + super::dynamo::TTL_GRACE).timestamp(),
        }
    }
}

/// The request record: what was asked, where it stands, when it is due. No content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: DateTime<Utc>,
    pub due_date: NaiveDate,
    #[serde(default)]
    pub extended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<LeadId>,
    /// Blind indexes of the identifiers named, while the request is open (the worker
    /// finds the subject with them); removed when it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_email_bidx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_phone_bidx: Option<String>,
    pub has_email: bool,
    /// Blind indexes of the email and phone a rectification would move onto the subject
    /// (R4.6): they must be proven too (`dsar::identity`); removed when it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction_email_bidx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction_phone_bidx: Option<String>,
    /// The email was proven by its one-time code.
    #[serde(default)]
    pub email_proven: bool,
    /// Staff checked the requester's identity: every identifier the request names, its
    /// corrections included, is proven.
    #[serde(default)]
    pub identity_checked: bool,
    /// SHA-256 of the request token (a 256-bit random value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// `export_ready`, `no_data`, `denied`, … (a code, never content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_expires_at: Option<DateTime<Utc>>,
    /// Erasure: the data categories erased (the proof of erasure names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Erasure under a legal hold: the categories kept (restricted) and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<DateTime<Utc>>,
    /// Rectification (Art. 19): each recipient of the data and whether it was informed
    /// or does not hold the old value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<std::collections::BTreeMap<String, String>>,
    #[serde(flatten)]
    pub expiry: Expiry,
    pub version: u64,
}

/// The one-time code: only its keyed hash, valid 15 minutes, at most five tries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub request_id: RequestId,
    pub code_hash: String,
    pub attempts: u32,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// The sealed contact of an open request. Its key lives in the key table
/// ([`RequestKeyRecord`]), so deleting the key there crypto-shreds every backed-up copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub request_id: RequestId,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    #[serde(flatten)]
    pub expiry: Expiry,
    /// The wrapped key, read from the key table together with the contact (never
    /// written with it), so a contact read before its request closes can still be
    /// opened for the closing mail.
    #[serde(skip)]
    pub wrapped_key: Option<Vec<u8>>,
}

/// The KMS-wrapped data key of a request's sealed contact, in the key table (no backups,
/// no stream), like subject keys. It lives as long as the contact (TTL backstop).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestKeyRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub request_id: RequestId,
    #[serde(with = "serde_bytes")]
    pub wrapped_key: Vec<u8>,
    pub ttl: i64,
}

impl RequestKeyRecord {
    pub fn new(id: RequestId, wrapped_key: Vec<u8>, expiry: &Expiry) -> Self {
        Self {
            pk: request_pk(&id),
            sk: REQUEST_KEY_SK.into(),
            kind: "dsar_key".into(),
            request_id: id,
            wrapped_key,
            ttl: expiry.ttl,
        }
    }
}

/// An export package in the exports bucket (7 days, R3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub request_id: RequestId,
    pub object_key: String,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// An entry of the staff list of open requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: DateTime<Utc>,
    pub due_date: NaiveDate,
    #[serde(default)]
    pub extended: bool,
}

impl OpenRecord {
    pub fn of(r: &RequestRecord) -> Self {
        Self {
            pk: OPEN_PK.into(),
            sk: format!("{}#{}", r.due_date, r.request_id),
            kind: "dsar_open".into(),
            request_id: r.request_id,
            request_type: r.request_type,
            status: r.status,
            received_at: r.received_at,
            due_date: r.due_date,
            extended: r.extended,
        }
    }
}

/// The link from a subject to a request about it (the subject's request history).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectRequestRecord {
    pub pk: String,
    pub sk: String,
    pub kind: String,
    pub lead_id: LeadId,
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub received_at: DateTime<Utc>,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// One write of a request change.
pub enum Write {
    Put(Item),
    /// A put on condition that the item does not exist.
    Create(Item),
    Delete(String, String),
    /// A put into the key table.
    PutKey(Item),
    /// A delete from the key table.
    DeleteKey(String, String),
}

impl Write {
    pub fn put<T: Serialize>(value: &T) -> Result<Self, StoreError> {
        Ok(Self::Put(super::dynamo::to_item("dsar_put", value)?))
    }
    pub fn create<T: Serialize>(value: &T) -> Result<Self, StoreError> {
        Ok(Self::Create(super::dynamo::to_item("dsar_put", value)?))
    }
    pub fn delete(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self::Delete(pk.into(), sk.into())
    }
    pub fn put_key(record: &RequestKeyRecord) -> Result<Self, StoreError> {
        Ok(Self::PutKey(super::dynamo::to_item(
            "dsar_put_key",
            record,
        )?))
    }
    /// Deletes a request's sealed contact and, first in the same transaction, its key.
    pub fn delete_contact(id: &RequestId) -> [Self; 2] {
        [
            Self::DeleteKey(request_pk(id), REQUEST_KEY_SK.into()),
            Self::Delete(request_pk(id), CONTACT_SK.into()),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// The request changed since it was read (another action won).
    Conflict,
}

#[derive(Debug, Clone)]
pub struct DsarStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key_table: String,
}

impl DsarStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, key_table: String) -> Self {
        Self {
            client,
            table,
            key_table,
        }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("dsar_get", e))?;
        Ok(out.item)
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        id: &RequestId,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get_item(request_pk(id), sk).await? {
            Some(item) => serde_dynamo::from_item(item)
                .map(Some)
                .map_err(|e| corrupt("dsar_get", e)),
            None => Ok(None),
        }
    }

    pub async fn request(&self, id: &RequestId) -> Result<Option<RequestRecord>, StoreError> {
        self.get(id, REQUEST_SK).await
    }
    pub async fn code(&self, id: &RequestId) -> Result<Option<CodeRecord>, StoreError> {
        self.get(id, CODE_SK).await
    }
    /// The sealed contact of a request with its wrapped key from the key table.
    pub async fn contact(&self, id: &RequestId) -> Result<Option<ContactRecord>, StoreError> {
        let Some(mut contact) = self.get::<ContactRecord>(id, CONTACT_SK).await? else {
            return Ok(None);
        };
        contact.wrapped_key = self.request_key(id).await?;
        Ok(Some(contact))
    }
    pub async fn export(&self, id: &RequestId) -> Result<Option<ExportRecord>, StoreError> {
        self.get(id, EXPORT_SK).await
    }
    /// The wrapped key of a request's contact, from the key table.
    pub async fn request_key(&self, id: &RequestId) -> Result<Option<Vec<u8>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.key_table)
            .key("pk", s(request_pk(id)))
            .key("sk", s(REQUEST_KEY_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("dsar_get_key", e))?;
        match out.item {
            Some(item) => serde_dynamo::from_item::<_, RequestKeyRecord>(item)
                .map(|k| Some(k.wrapped_key))
                .map_err(|e| corrupt("dsar_get_key", e)),
            None => Ok(None),
        }
    }

    /// Counts one request in the counter `pk`/`sk` (a blind index and a day); `false`
    /// once `limit` were counted. The counter lives two days (TTL).
    pub async fn count_request(
        &self,
        pk: &str,
        sk: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("ADD #c :one SET #k = :kind, #t = :ttl")
            .condition_expression("attribute_not_exists(#c) OR #c < :limit")
            .expression_attribute_names("#c", "requests")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":kind", s("dsar_limit"))
            .expression_attribute_values(":ttl", n((now + chrono::Duration::days(2)).timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(failure("dsar_limit", e)),
        }
    }

    /// Takes one of the code's tries, atomically and before the code is compared, so
    /// concurrent guesses can never compare more than [`MAX_CODE_ATTEMPTS`] codes; returns
    /// the tries taken so far, or `None` when the code is gone or its tries are used up.
    pub async fn take_code_attempt(&self, id: &RequestId) -> Result<Option<u32>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(request_pk(id)))
            .key("sk", s(CODE_SK))
            .update_expression("ADD attempts :one")
            .condition_expression("attribute_exists(pk) AND attempts < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_CODE_ATTEMPTS))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .attributes()
                .and_then(|a| a.get("attempts"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())),
            Err(e) if is_conditional(&e) => Ok(None),
            Err(e) => Err(failure("dsar_code_attempt", e)),
        }
    }

    /// Writes a request change in one transaction: the record on its read version
    /// (`expected_version`; `None` for a new request), the other writes, and an audit item.
    pub async fn commit(
        &self,
        record: &RequestRecord,
        expected_version: Option<u64>,
        writes: Vec<Write>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<Commit, StoreError> {
        let mut items = Vec::with_capacity(writes.len() + 2);
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(super::dynamo::to_item("dsar_commit", record)?));
        put = match expected_version {
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        items.push(tx_put(put)?);
        for w in writes {
            items.push(match w {
                Write::Put(item) => {
                    tx_put(Put::builder().table_name(&self.table).set_item(Some(item)))?
                }
                Write::Create(item) => tx_put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)"),
                )?,
                Write::PutKey(item) => tx_put(
                    Put::builder()
                        .table_name(&self.key_table)
                        .set_item(Some(item)),
                )?,
                Write::Delete(pk, sk) => tx_delete(&self.table, pk, sk)?,
                Write::DeleteKey(pk, sk) => tx_delete(&self.key_table, pk, sk)?,
            });
        }
        let mut audit = super::dynamo::to_item(
            "dsar_commit",
            &audit_item(actor, action, record.lead_id.as_ref(), None, at),
        )?;
        audit.insert("request_id".into(), s(record.request_id.to_string()));
        items.push(tx_put(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(audit))
                .condition_expression("attribute_not_exists(pk)"),
        )?);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Commit::Done),
            Err(e) => match failed_conditions(&e) {
                Some(failed) if failed.contains(&0) => Ok(Commit::Conflict),
                _ => Err(failure("dsar_commit", e)),
            },
        }
    }

    /// Writes an audit item about a request that changes nothing else.
    pub async fn audit(
        &self,
        id: &RequestId,
        lead: Option<&LeadId>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item =
            super::dynamo::to_item("dsar_audit", &audit_item(actor, action, lead, None, at))?;
        item.insert("request_id".into(), s(id.to_string()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| failure("dsar_audit", e))?;
        Ok(())
    }

    /// Open requests, earliest due date (so the overdue ones) first.
    pub async fn open_requests(&self) -> Result<Vec<OpenRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(OPEN_PK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("dsar_open", e))?;
            for item in page.items() {
                out.push(
                    serde_dynamo::from_item(item.clone()).map_err(|e| corrupt("dsar_open", e))?,
                );
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// The requests linked to a subject, oldest first.
    pub async fn subject_requests(&self, lead: &LeadId) -> Result<Vec<RequestRecord>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :r)")
            .expression_attribute_values(":pk", s(lead_pk(lead)))
            .expression_attribute_values(":r", s("REQUEST#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("dsar_history", e))?;
        let mut out = Vec::new();
        for item in page.items() {
            let link: SubjectRequestRecord =
                serde_dynamo::from_item(item.clone()).map_err(|e| corrupt("dsar_history", e))?;
            if let Some(r) = self.request(&link.request_id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

fn tx_put(
    b: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    let put = b.build().map_err(|e| corrupt("dsar_commit", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn tx_delete(table: &str, pk: String, sk: String) -> Result<TransactWriteItem, StoreError> {
    let d = Delete::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .map_err(|e| corrupt("dsar_commit", e))?;
    Ok(TransactWriteItem::builder().delete(d).build())
}

fn is_conditional<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(err, aws_sdk_dynamodb::error::SdkError::ServiceError(se)
        if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// A new request record for `id`, received `now`.
pub fn new_record(
    id: RequestId,
    request_type: RequestType,
    status: RequestStatus,
    now: DateTime<Utc>,
) -> RequestRecord {
    RequestRecord {
        pk: request_pk(&id),
        sk: REQUEST_SK.into(),
        kind: "dsar_request".into(),
        request_id: id,
        request_type,
        status,
        received_at: now,
        due_date: domain::dsar::due_date(now),
        extended: false,
        lead_id: None,
        subject_email_bidx: None,
        subject_phone_bidx: None,
        has_email: false,
        correction_email_bidx: None,
        correction_phone_bidx: None,
        email_proven: false,
        identity_checked: false,
        token_hash: None,
        verified_at: None,
        closed_at: None,
        outcome: None,
        export_key: None,
        export_expires_at: None,
        categories: None,
        held_categories: None,
        held_until: None,
        recipients: None,
        // Kept 3 years; the clock restarts when the request closes.
        expiry: Expiry::of(RetentionClass::Request, now),
        version: 1,
    }
}

/// Marks a request closed at `now` with `outcome`: the blind indexes go, the record is
/// kept 3 years from now (R3 "request" class).
pub fn close(record: &mut RequestRecord, status: RequestStatus, outcome: &str, now: DateTime<Utc>) {
    record.status = status;
    record.outcome = Some(outcome.to_owned());
    record.closed_at = Some(now);
    record.subject_email_bidx = None;
    record.subject_phone_bidx = None;
    record.correction_email_bidx = None;
    record.correction_phone_bidx = None;
    record.expiry = Expiry::of(RetentionClass::Request, now);
    record.version += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_items_without_nulls() {
        let now = Utc::now();
        let r = new_record(
            RequestId::new(),
            RequestType::Access,
            RequestStatus::AwaitingVerification,
            now,
        );
        let item: Item = serde_dynamo::to_item(&r).unwrap();
        assert!(!item.values().any(|v| matches!(v, AttributeValue::Null(_))));
        assert!(item.contains_key("exp_bucket") && item.contains_key("ttl"));
        let back: RequestRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.request_id, r.request_id);
        assert_eq!(back.due_date, r.due_date);
        assert_eq!(back.status, RequestStatus::AwaitingVerification);
    }
}
