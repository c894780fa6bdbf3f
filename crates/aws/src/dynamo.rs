//! The lead store over one DynamoDB table.
//!
//! Keys are opaque: `LEAD#<id>` partitions hold a subject's items, `EMAIL#<index>` and
//! `PHONE#<index>` hold identifier claims (keyed by blind index, never by the value),
//! `AUDIT#<day>` holds audit events. Claims make "one subject per email and per phone"
//! hold under concurrent sign-ups: they are written in the same transaction as the lead,
//! on condition that no live claim exists. The GSIs `by-email` / `by-phone` find every
//! item of a subject by blind index; `by-expiry` lets the retention sweep query due items
//! per class and month instead of scanning.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use domain::crypto::{BlindIndex, WrappedKey};
use domain::{ConsentEvidence, ConsentMethod, LeadId, RetentionClass};
use usecases::ports::{
    CallState, CreateOutcome, IdentifierHolders, LeadStore, NewLead, Resubmission, ResubmitOutcome,
    Retry, StoreError, StoredLead,
};

/// Table layout. The template (`infra/template.yaml`) must declare the same names; a test
/// compares them.
pub mod schema {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    /// DynamoDB TTL attribute (epoch seconds): the backstop behind the retention sweep.
    pub const TTL: &str = "ttl";
    pub const EMAIL_INDEX_ATTR: &str = "email_bidx";
    pub const PHONE_INDEX_ATTR: &str = "phone_bidx";
    pub const EXPIRY_PARTITION_ATTR: &str = "exp_bucket";
    pub const EXPIRY_SORT_ATTR: &str = "exp_at";
    pub const EMAIL_INDEX: &str = "by-email";
    pub const PHONE_INDEX: &str = "by-phone";
    pub const EXPIRY_INDEX: &str = "by-expiry";
}

pub use domain::retention::{Retention, TTL_GRACE};

pub use domain::CALL_COOLDOWN;

/// Attempts of an optimistic read-modify-write before giving up as contention.
const MAX_ATTEMPTS: u32 = 8;

/// Waits before retry `attempt` (1-based): exponential from 5 ms with full jitter, so
/// concurrent writers of one item spread out instead of colliding again.
pub async fn backoff(attempt: u32) {
    let cap_ms = 5u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(nanos % (cap_ms + 1))).await;
}

/// A string attribute of an item, if it holds one: the one item reader of the crate.
pub fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

pub fn lead_pk(id: &LeadId) -> String {
    format!("LEAD#{id}")
}
pub const LEAD_SK: &str = "PROFILE";
pub const KEY_SK: &str = "KEY";
pub const CLAIM_SK: &str = "CLAIM";
/// Sort key of an erased subject's tombstone in its (otherwise emptied) partition.
pub const TOMBSTONE_SK: &str = "ERASED";
/// The kind of the tombstone item; erasures leave it out of what they delete.
pub const TOMBSTONE_KIND: &str = "erasure_tombstone";

/// A condition, inside a transaction, that the subject has not been erased: writes that
/// could bring back an item of an erased subject carry it.
pub fn not_erased(table: &str, lead: &LeadId) -> Result<TransactWriteItem, StoreError> {
    let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
        .table_name(table)
        .key(schema::PK, s(lead_pk(lead)))
        .key(schema::SK, s(TOMBSTONE_SK))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| corrupt("build_condition", e))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// What remains of an erased subject for [`usecases::ports::TOMBSTONE_KEPT`]: its opaque
/// id and when; no personal data.
#[derive(Debug, Serialize)]
struct TombstoneItem {
    pk: String,
    sk: &'static str,
    kind: &'static str,
    lead_id: LeadId,
    erased_at: String,
    ttl: i64,
}

pub fn email_claim_pk(index: &BlindIndex) -> String {
    format!("EMAIL#{}", index.as_str())
}
pub fn phone_claim_pk(index: &BlindIndex) -> String {
    format!("PHONE#{}", index.as_str())
}

pub use domain::retention::stored_instant as ts;

#[derive(Debug, Serialize, Deserialize)]
struct LeadItem {
    pk: String,
    sk: String,
    kind: String,
    lead_id: LeadId,
    #[serde(with = "serde_bytes")]
    sealed_profile: Vec<u8>,
    email_bidx: String,
    phone_bidx: String,
    signed_up_at: String,
    last_contact_at: String,
    consent_policy_version: String,
    consent_given_at: String,
    call_state: CallState,
    call_requested_at: String,
    call_request_count: u32,
    expires_at: String,
    exp_bucket: String,
    exp_at: i64,
    ttl: i64,
    version: u64,
    /// Set by the data-subject-rights functions (R4.7, R4.8); absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    restricted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    objected: bool,
    /// The subject withdrew the recording consent (R4.9): later calls keep no recording.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    consent_withdrawn: bool,
    /// An erasure of the subject waits in its cancel window (set and lifted by the dsar
    /// worker): processed like a restricted subject.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    erasure_pending: bool,
    /// The preferred call window (R7.2) in its stored form (`mon,fri@10:00-12:30`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_window: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyItem {
    pk: String,
    sk: String,
    kind: String,
    lead_id: LeadId,
    #[serde(with = "serde_bytes")]
    wrapped_key: Vec<u8>,
    created_at: String,
    expires_at: String,
    ttl: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimItem {
    pk: String,
    sk: String,
    kind: String,
    lead_id: LeadId,
    expires_at: String,
    exp_at: i64,
    ttl: i64,
}

/// Proof of a phone-contact consent (§7a UWG): blind index of the number, time, text
/// version, method. Kept 5 years from the grant and from each use, independently of the
/// lead: every call placed under it joins `call_ids` and moves the dates to 5 years after
/// `last_used_at` (see `record_consent_use`).
#[derive(Debug, Serialize, Deserialize)]
struct ConsentItem {
    pk: String,
    sk: String,
    kind: String,
    lead_id: LeadId,
    phone_bidx: String,
    policy_version: String,
    given_at: String,
    method: ConsentMethod,
    expires_at: String,
    exp_bucket: String,
    exp_at: i64,
    ttl: i64,
}

/// An audit event: who did what to which opaque id, when. No personal data.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditItem {
    pk: String,
    sk: String,
    kind: String,
    action: String,
    actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lead_id: Option<LeadId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<String>,
    at: String,
    /// The audit class's retention (3 years): DynamoDB's TTL deletes the event; no
    /// sweep is needed for an item that names nobody by itself.
    ttl: i64,
}

/// Retention attributes of an item of `class` whose clock starts at `start` (the domain
/// decides; see [`Retention::of`]).
pub fn retention(class: RetentionClass, start: DateTime<Utc>) -> Retention {
    Retention::of(class, start)
}

fn consent_item(id: &LeadId, phone: &BlindIndex, consent: &ConsentEvidence) -> ConsentItem {
    let r = retention(RetentionClass::PhoneConsentProof, consent.given_at);
    ConsentItem {
        pk: lead_pk(id),
        sk: format!(
            "CONSENT#{}#{}",
            ts(consent.given_at),
            uuid::Uuid::now_v7().simple()
        ),
        kind: "phone_consent".into(),
        lead_id: *id,
        phone_bidx: phone.as_str().to_owned(),
        policy_version: consent.policy_version.clone(),
        given_at: ts(consent.given_at),
        method: consent.method,
        expires_at: ts(r.expires_at),
        exp_bucket: r.bucket,
        exp_at: r.expires_at.timestamp(),
        ttl: r.ttl,
    }
}

/// Writes one audit event (append-only: never overwrites).
pub async fn put_audit(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    actor: &str,
    action: &str,
    lead_id: Option<&LeadId>,
    call_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let item = audit_item(actor, action, lead_id, call_id, at);
    ddb.put_item()
        .table_name(table)
        .set_item(Some(to_item("audit", &item)?))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| failure("audit", e))?;
    Ok(())
}

pub fn audit_item(
    actor: &str,
    action: &str,
    lead_id: Option<&LeadId>,
    call_id: Option<&str>,
    at: DateTime<Utc>,
) -> AuditItem {
    AuditItem {
        pk: format!("AUDIT#{}", at.format("%Y-%m-%d")),
        sk: format!("{}#{}", ts(at), uuid::Uuid::now_v7().simple()),
        kind: "audit".into(),
        action: action.into(),
        actor: actor.into(),
        lead_id: lead_id.copied(),
        call_id: call_id.map(str::to_owned),
        at: ts(at),
        ttl: retention(RetentionClass::Audit, at).ttl,
    }
}

#[derive(Debug, Clone)]
pub struct DynamoLeadStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Wrapped subject keys live apart, in a table without backups (crypto-shredding).
    key_table: String,
}

pub fn failure<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::store_failure("dynamodb", operation, err)
}

/// The result of a conditional `UpdateItem` whose failed condition is an answer, not an
/// error ("the item is gone", "already marked"): `Ok(false)` then.
pub fn update_applied<T, R>(
    operation: &'static str,
    result: Result<T, SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>>,
) -> Result<bool, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(failure(operation, e)),
    }
}

pub fn corrupt(
    operation: &'static str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    tracing::error!(operation, "stored item does not have the expected shape");
    StoreError {
        operation,
        retry: Retry::Permanent,
        source: Some(Box::new(err)),
    }
}

pub type Item = HashMap<String, AttributeValue>;

pub fn to_item<T: Serialize>(operation: &'static str, value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| corrupt(operation, e))
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A conditional Put inside a transaction.
pub fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: &[(&str, AttributeValue)],
) -> Result<TransactWriteItem, StoreError> {
    let mut b = Put::builder().table_name(table).set_item(Some(item));
    if let Some(c) = condition {
        b = b.condition_expression(c);
    }
    for (k, v) in values {
        b = b.expression_attribute_values(*k, v.clone());
    }
    let put = b.build().map_err(|e| corrupt("build_put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A `SET` update of the given attributes inside a transaction. Names go through
/// placeholders, so reserved words (`ttl`) need no special care.
pub fn update(
    table: &str,
    pk: String,
    sk: &str,
    set: &[(&str, AttributeValue)],
    extra_set: &[&str],
    condition: &str,
    condition_values: &[(&str, AttributeValue)],
) -> Result<TransactWriteItem, StoreError> {
    let mut b = Update::builder()
        .table_name(table)
        .key(schema::PK, s(pk))
        .key(schema::SK, s(sk));
    let mut parts = Vec::new();
    for (i, (name, value)) in set.iter().enumerate() {
        parts.push(format!("#u{i} = :u{i}"));
        b = b
            .expression_attribute_names(format!("#u{i}"), *name)
            .expression_attribute_values(format!(":u{i}"), value.clone());
    }
    parts.extend(extra_set.iter().map(|p| (*p).to_owned()));
    b = b.update_expression(format!("SET {}", parts.join(", ")));
    b = b.condition_expression(condition);
    for (k, v) in condition_values {
        b = b.expression_attribute_values(*k, v.clone());
    }
    let update = b.build().map_err(|e| corrupt("build_update", e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Indexes of the transaction items whose condition failed; `None` if the failure was
/// something else.
pub fn failed_conditions(
    err: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Vec<usize>> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(tc) = se.err() else {
        return None;
    };
    let failed: Vec<usize> = tc
        .cancellation_reasons()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
        .map(|(i, _)| i)
        .collect();
    Some(failed)
}

impl DynamoLeadStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, key_table: String) -> Self {
        Self {
            client,
            table,
            key_table,
        }
    }

    /// Crypto-shredding: deletes the subject's wrapped data key. From then on no copy of
    /// the subject's ciphertext can be opened; the key table has no backups to restore.
    pub async fn shred_key(&self, id: &LeadId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.key_table)
            .key(schema::PK, s(lead_pk(id)))
            .key(schema::SK, s(KEY_SK))
            .send()
            .await
            .map_err(|e| failure("shred_key", e))?;
        Ok(())
    }

    /// The lead's retention end as stored now (consistent read); `None` when gone.
    pub async fn expiry(&self, id: &LeadId) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .lead_item(id)
            .await?
            .and_then(|l| DateTime::from_timestamp(l.exp_at, 0)))
    }

    /// Whether the subject's wrapped key still exists.
    pub async fn has_key(&self, id: &LeadId) -> Result<bool, StoreError> {
        Ok(self
            .get_in(&self.key_table, "get_key", lead_pk(id), KEY_SK)
            .await?
            .is_some())
    }

    async fn get(
        &self,
        operation: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        self.get_in(&self.table, operation, pk, sk).await
    }

    async fn get_in(
        &self,
        table: &str,
        operation: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(schema::PK, s(pk))
            .key(schema::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(operation, e))?;
        Ok(out.item)
    }

    /// Rectification (R4.6): the re-sealed profile replaces the old one and, where an
    /// identifier changed, its blind index moves: the new claim is taken (refused when
    /// another live subject holds it) and the old one released, in one transaction.
    /// `Ok(false)` when the lead is gone or a new identifier belongs to someone else.
    pub async fn rectify(
        &self,
        id: &LeadId,
        sealed_profile: Vec<u8>,
        email: Option<(&BlindIndex, &BlindIndex)>,
        phone: Option<(&BlindIndex, &BlindIndex)>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(lead) = self.lead_item(id).await? else {
            return Ok(false);
        };
        let mut set = vec![
            ("sealed_profile", AttributeValue::B(sealed_profile.into())),
            ("version", n(lead.version + 1)),
        ];
        let mut items = Vec::new();
        let claim = |pk: String| ClaimItem {
            pk,
            sk: CLAIM_SK.into(),
            kind: "claim".into(),
            lead_id: *id,
            expires_at: lead.expires_at.clone(),
            exp_at: lead.exp_at,
            ttl: lead.ttl,
        };
        for (pair, attr, pk_of) in [
            (
                email,
                schema::EMAIL_INDEX_ATTR,
                email_claim_pk as fn(&BlindIndex) -> String,
            ),
            (phone, schema::PHONE_INDEX_ATTR, phone_claim_pk),
        ] {
            let Some((old, new)) = pair else { continue };
            if old.as_str() == new.as_str() {
                continue;
            }
            set.push((attr, s(new.as_str())));
            items.push(put(
                &self.table,
                to_item("rectify", &claim(pk_of(new)))?,
                Some("attribute_not_exists(pk) OR exp_at < :now"),
                &[(":now", n(at.timestamp()))],
            )?);
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .key(schema::PK, s(pk_of(old)))
                .key(schema::SK, s(CLAIM_SK))
                .build()
                .map_err(|e| corrupt("rectify", e))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        items.insert(
            0,
            update(
                &self.table,
                lead_pk(id),
                LEAD_SK,
                &set,
                &[],
                "version = :v",
                &[(":v", n(lead.version))],
            )?,
        );
        items.push(put(
            &self.table,
            to_item(
                "rectify",
                &audit_item("dsar", "lead.rectified", Some(id), None, at),
            )?,
            Some("attribute_not_exists(pk)"),
            &[],
        )?);
        Ok(self.transact(items).await?.is_ok())
    }

    /// The subject an email or phone claim points at now, if any.
    pub async fn claim_holder(
        &self,
        kind: usecases::ports::IdentifierKind,
        index: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<Option<LeadId>, StoreError> {
        let pk = match kind {
            usecases::ports::IdentifierKind::Email => email_claim_pk(index),
            usecases::ports::IdentifierKind::Phone => phone_claim_pk(index),
            _ => return Ok(None),
        };
        self.live_claim(pk, now).await
    }

    async fn live_claim(
        &self,
        pk: String,
        now: DateTime<Utc>,
    ) -> Result<Option<LeadId>, StoreError> {
        let Some(item) = self.get("get_claim", pk, CLAIM_SK).await? else {
            return Ok(None);
        };
        let claim: ClaimItem =
            serde_dynamo::from_item(item).map_err(|e| corrupt("get_claim", e))?;
        Ok((claim.exp_at > now.timestamp()).then_some(claim.lead_id))
    }

    async fn lead_item(&self, id: &LeadId) -> Result<Option<LeadItem>, StoreError> {
        match self.get("get_lead", lead_pk(id), LEAD_SK).await? {
            Some(item) => serde_dynamo::from_item(item)
                .map(Some)
                .map_err(|e| corrupt("get_lead", e)),
            None => Ok(None),
        }
    }

    /// The writes that move a subject's contact time to `contact`: the lead's dates (with
    /// `set`/`clauses` for the caller's own attributes, on the read `version`), the key
    /// item's and, when `claims`, both identifier claims' TTLs, in this order.
    #[allow(clippy::too_many_arguments)]
    fn contact_writes(
        &self,
        lead: &LeadItem,
        id: &LeadId,
        contact: DateTime<Utc>,
        mut set: Vec<(&'static str, AttributeValue)>,
        clauses: &[&str],
        values: Vec<(&'static str, AttributeValue)>,
        claims: bool,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let r = retention(RetentionClass::Lead, contact);
        set.push(("last_contact_at", s(ts(contact))));
        self.date_writes(lead, id, r, set, clauses, values, claims)
    }

    /// The writes that set a subject's retention dates to `r`.
    #[allow(clippy::too_many_arguments)]
    fn date_writes(
        &self,
        lead: &LeadItem,
        id: &LeadId,
        r: Retention,
        mut set: Vec<(&'static str, AttributeValue)>,
        clauses: &[&str],
        mut values: Vec<(&'static str, AttributeValue)>,
        claims: bool,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        set.extend([
            ("expires_at", s(ts(r.expires_at))),
            (schema::EXPIRY_PARTITION_ATTR, s(r.bucket.clone())),
            (schema::EXPIRY_SORT_ATTR, n(r.expires_at.timestamp())),
            (schema::TTL, n(r.ttl)),
            ("version", n(lead.version + 1)),
        ]);
        values.push((":v", n(lead.version)));
        let key_dates = [("expires_at", s(ts(r.expires_at))), (schema::TTL, n(r.ttl))];
        let mut items = vec![
            update(
                &self.table,
                lead_pk(id),
                LEAD_SK,
                &set,
                clauses,
                "version = :v",
                &values,
            )?,
            update(
                &self.key_table,
                lead_pk(id),
                KEY_SK,
                &key_dates,
                &[],
                "attribute_exists(pk)",
                &[],
            )?,
        ];
        if claims {
            let claim_dates = [
                ("expires_at", s(ts(r.expires_at))),
                (schema::EXPIRY_SORT_ATTR, n(r.expires_at.timestamp())),
                (schema::TTL, n(r.ttl)),
            ];
            let mine = [(":id", s(id.to_string()))];
            for pk in [
                email_claim_pk(&BlindIndex::from_stored(lead.email_bidx.clone())),
                phone_claim_pk(&BlindIndex::from_stored(lead.phone_bidx.clone())),
            ] {
                items.push(update(
                    &self.table,
                    pk,
                    CLAIM_SK,
                    &claim_dates,
                    &[],
                    "lead_id = :id",
                    &mine,
                )?);
            }
        }
        Ok(items)
    }

    /// Optimistic read-modify-write of a lead: `writes` builds the transaction from the
    /// lead as read (`None`: nothing to change); an audit event joins it. Retried with
    /// backoff when the lead changed in between. `false` when the lead is gone.
    async fn rewrite_lead(
        &self,
        operation: &'static str,
        id: &LeadId,
        (actor, action): (&str, &str),
        at: DateTime<Utc>,
        writes: impl Fn(&LeadItem) -> Result<Option<Vec<TransactWriteItem>>, StoreError>,
    ) -> Result<bool, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(lead) = self.lead_item(id).await? else {
                return Ok(false);
            };
            let Some(mut items) = writes(&lead)? else {
                return Ok(true);
            };
            items.push(put(
                &self.table,
                to_item(operation, &audit_item(actor, action, Some(id), None, at))?,
                Some("attribute_not_exists(pk)"),
                &[],
            )?);
            if self.transact(items).await?.is_ok() {
                return Ok(true);
            }
        }
        Err(StoreError {
            operation,
            retry: Retry::Transient,
            source: None,
        })
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<usize>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(err) => match failed_conditions(&err) {
                Some(failed) => Ok(Err(failed)),
                None => Err(failure("transact_write_items", err)),
            },
        }
    }
}

#[async_trait]
impl LeadStore for DynamoLeadStore {
    async fn find_holders(
        &self,
        email: &BlindIndex,
        phone: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<IdentifierHolders, StoreError> {
        let (by_email, by_phone) = tokio::try_join!(
            self.live_claim(email_claim_pk(email), now),
            self.live_claim(phone_claim_pk(phone), now),
        )?;
        Ok(IdentifierHolders { by_email, by_phone })
    }

    async fn create_lead(&self, lead: &NewLead) -> Result<CreateOutcome, StoreError> {
        let at = lead.signed_up_at;
        let r = retention(RetentionClass::Lead, at);
        let lead_item = LeadItem {
            pk: lead_pk(&lead.id),
            sk: LEAD_SK.into(),
            kind: "lead".into(),
            lead_id: lead.id,
            sealed_profile: lead.sealed_profile.clone(),
            email_bidx: lead.email_index.as_str().to_owned(),
            phone_bidx: lead.phone_index.as_str().to_owned(),
            signed_up_at: ts(at),
            last_contact_at: ts(at),
            consent_policy_version: lead.consent.policy_version.clone(),
            consent_given_at: ts(lead.consent.given_at),
            call_state: CallState::Requested,
            call_requested_at: ts(at),
            call_request_count: 1,
            expires_at: ts(r.expires_at),
            exp_bucket: r.bucket.clone(),
            exp_at: r.expires_at.timestamp(),
            ttl: r.ttl,
            version: 1,
            restricted: false,
            objected: false,
            consent_withdrawn: false,
            erasure_pending: false,
            call_window: lead.call_window.map(|w| w.stored()),
        };
        let key_item = KeyItem {
            pk: lead_pk(&lead.id),
            sk: KEY_SK.into(),
            kind: "data_key".into(),
            lead_id: lead.id,
            wrapped_key: lead.wrapped_key.0.clone(),
            created_at: ts(at),
            expires_at: ts(r.expires_at),
            ttl: r.ttl,
        };
        let claim = |pk: String| ClaimItem {
            pk,
            sk: CLAIM_SK.into(),
            kind: "claim".into(),
            lead_id: lead.id,
            expires_at: ts(r.expires_at),
            exp_at: r.expires_at.timestamp(),
            ttl: r.ttl,
        };
        let new = "attribute_not_exists(pk)";
        let free_claim = "attribute_not_exists(pk) OR exp_at < :now";
        let now = [(":now", n(at.timestamp()))];
        let items = vec![
            put(
                &self.table,
                to_item("create_lead", &lead_item)?,
                Some(new),
                &[],
            )?,
            put(
                &self.key_table,
                to_item("create_lead", &key_item)?,
                Some(new),
                &[],
            )?,
            put(
                &self.table,
                to_item("create_lead", &claim(email_claim_pk(&lead.email_index)))?,
                Some(free_claim),
                &now,
            )?,
            put(
                &self.table,
                to_item("create_lead", &claim(phone_claim_pk(&lead.phone_index)))?,
                Some(free_claim),
                &now,
            )?,
            put(
                &self.table,
                to_item(
                    "create_lead",
                    &consent_item(&lead.id, &lead.phone_index, &lead.consent),
                )?,
                Some(new),
                &[],
            )?,
            put(
                &self.table,
                to_item(
                    "create_lead",
                    &audit_item("signup", "lead.created", Some(&lead.id), None, at),
                )?,
                Some(new),
                &[],
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(CreateOutcome::Created),
            Err(_) => Ok(CreateOutcome::IdentifierTaken),
        }
    }

    async fn resubmit(&self, sub: &Resubmission) -> Result<ResubmitOutcome, StoreError> {
        let mut include_claims = true;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(lead) = self.lead_item(&sub.id).await? else {
                return Ok(ResubmitOutcome::Gone);
            };
            if lead.exp_at <= sub.at.timestamp() {
                return Ok(ResubmitOutcome::Gone);
            }
            let previous_contact = DateTime::parse_from_rfc3339(&lead.last_contact_at)
                .map_err(|e| corrupt("resubmit", e))?
                .with_timezone(&Utc);
            let last_requested = DateTime::parse_from_rfc3339(&lead.call_requested_at)
                .map_err(|e| corrupt("resubmit", e))?
                .with_timezone(&Utc);
            let contact = previous_contact.max(sub.at);
            let call_due = sub.at - last_requested >= CALL_COOLDOWN;
            let (set, clauses, values) = if call_due {
                (
                    vec![
                        ("call_state", s("requested")),
                        ("call_requested_at", s(ts(sub.at))),
                    ],
                    vec!["call_request_count = call_request_count + :one"],
                    vec![(":one", n(1))],
                )
            } else {
                (Vec::new(), Vec::new(), Vec::new())
            };
            let mut items = self.contact_writes(
                &lead,
                &sub.id,
                contact,
                set,
                &clauses,
                values,
                include_claims,
            )?;
            items.push(put(
                &self.table,
                to_item(
                    "resubmit",
                    &consent_item(&sub.id, &sub.phone_index, &sub.consent),
                )?,
                Some("attribute_not_exists(pk)"),
                &[],
            )?);
            items.push(put(
                &self.table,
                to_item(
                    "resubmit",
                    &audit_item("signup", "lead.resubmitted", Some(&sub.id), None, sub.at),
                )?,
                Some("attribute_not_exists(pk)"),
                &[],
            )?);
            match self.transact(items).await? {
                Ok(()) => {
                    return Ok(if call_due {
                        ResubmitOutcome::CallRequested
                    } else {
                        ResubmitOutcome::CallNotDue
                    })
                }
                // A claim now belongs to another subject (ours expired and was taken):
                // move our own dates without it.
                Err(failed)
                    if include_claims
                        && failed.iter().any(|i| *i == 2 || *i == 3)
                        && !failed.contains(&0) =>
                {
                    include_claims = false;
                }
                // The lead changed since we read it (or the key item is gone): re-read.
                Err(_) => {}
            }
        }
        Err(StoreError {
            operation: "resubmit",
            retry: Retry::Transient,
            source: None,
        })
    }

    async fn record_mismatch(
        &self,
        subjects: &[LeadId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Only the opaque lead id and the time: not the submitted identifiers' blind
        // indexes, which would tie the subject to someone else's email or phone.
        for id in subjects {
            put_audit(
                &self.client,
                &self.table,
                "signup",
                "lead.resubmission_mismatch",
                Some(id),
                None,
                at,
            )
            .await?;
        }
        Ok(())
    }

    async fn record_contact(&self, id: &LeadId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let audit = ("telephony-worker", "lead.contacted");
        self.rewrite_lead("record_contact", id, audit, at, |lead| {
            let previous = DateTime::parse_from_rfc3339(&lead.last_contact_at)
                .map_err(|e| corrupt("record_contact", e))?
                .with_timezone(&Utc);
            if previous >= at {
                return Ok(None);
            }
            self.contact_writes(lead, id, at, Vec::new(), &[], Vec::new(), true)
                .map(Some)
        })
        .await
    }

    async fn hold_until(
        &self,
        id: &LeadId,
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let audit = ("retention-sweep", "lead.legal_hold");
        self.rewrite_lead("hold_until", id, audit, at, |lead| {
            let r = Retention::until(RetentionClass::Lead, until);
            let set = vec![
                ("restricted", AttributeValue::Bool(true)),
                ("hold_until", s(ts(until))),
            ];
            self.date_writes(lead, id, r, set, &[], Vec::new(), true)
                .map(Some)
        })
        .await
    }

    async fn record_consent_use(
        &self,
        id: &LeadId,
        phone_index: &BlindIndex,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "record_consent_use";
        let proofs = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :consent)")
            .expression_attribute_values(":pk", s(lead_pk(id)))
            .expression_attribute_values(":consent", s("CONSENT#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(OP, e))?;
        // The latest proof for the number (sort keys start with the grant time).
        let Some(sk) = proofs
            .items()
            .iter()
            .filter(|i| text(i, schema::PHONE_INDEX_ATTR) == Some(phone_index.as_str()))
            .filter_map(|i| text(i, schema::SK))
            .max()
            .map(str::to_owned)
        else {
            return Ok(false);
        };
        let r = retention(RetentionClass::PhoneConsentProof, at);
        let update = |with_dates: bool| {
            let mut u = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(schema::PK, s(lead_pk(id)))
                .key(schema::SK, s(sk.clone()))
                .expression_attribute_values(":call", AttributeValue::Ss(vec![call_id.to_owned()]))
                .condition_expression("attribute_exists(pk)");
            if with_dates {
                // Only a later use moves the dates (uses may arrive out of order).
                u = u
                    .update_expression(
                        "SET last_used_at = :at, expires_at = :exp, #b = :b, #e = :e, #t = :t \
                         ADD call_ids :call",
                    )
                    .condition_expression(
                        "attribute_exists(pk) AND (attribute_not_exists(last_used_at) \
                         OR last_used_at < :at)",
                    )
                    .expression_attribute_names("#b", schema::EXPIRY_PARTITION_ATTR)
                    .expression_attribute_names("#e", schema::EXPIRY_SORT_ATTR)
                    .expression_attribute_names("#t", schema::TTL)
                    .expression_attribute_values(":at", s(ts(at)))
                    .expression_attribute_values(":exp", s(ts(r.expires_at)))
                    .expression_attribute_values(":b", s(r.bucket.clone()))
                    .expression_attribute_values(":e", n(r.expires_at.timestamp()))
                    .expression_attribute_values(":t", n(r.ttl));
            } else {
                u = u.update_expression("ADD call_ids :call");
            }
            u
        };
        for with_dates in [true, false] {
            match update(with_dates).send().await {
                Ok(_) => return Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(failure(OP, e)),
            }
        }
        // The proof went between the read and the write (erased by its own due date).
        Ok(false)
    }

    async fn get_lead(
        &self,
        id: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredLead>, StoreError> {
        let (lead, key) = tokio::try_join!(
            self.lead_item(id),
            self.get_in(&self.key_table, "get_key", lead_pk(id), KEY_SK)
        )?;
        let (Some(lead), Some(key)) = (lead, key) else {
            return Ok(None);
        };
        if lead.exp_at <= now.timestamp() {
            return Ok(None);
        }
        let key: KeyItem = serde_dynamo::from_item(key).map_err(|e| corrupt("get_key", e))?;
        let parse = |v: &str| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt("get_lead", e))
        };
        Ok(Some(StoredLead {
            id: *id,
            wrapped_key: WrappedKey(key.wrapped_key),
            sealed_profile: lead.sealed_profile,
            signed_up_at: parse(&lead.signed_up_at)?,
            last_contact_at: parse(&lead.last_contact_at)?,
            expires_at: parse(&lead.expires_at)?,
            consent_policy_version: lead.consent_policy_version,
            call_state: lead.call_state,
            call_requested_at: parse(&lead.call_requested_at)?,
            call_request_count: lead.call_request_count,
            restricted: lead.restricted,
            objected: lead.objected,
            consent_withdrawn: lead.consent_withdrawn,
            erasure_pending: lead.erasure_pending,
            call_window: lead
                .call_window
                .as_deref()
                .and_then(domain::calling_hours::CallWindow::from_stored),
        }))
    }

    async fn bury(&self, id: &LeadId, at: DateTime<Utc>, if_due: bool) -> Result<bool, StoreError> {
        let tombstone = TombstoneItem {
            pk: lead_pk(id),
            sk: TOMBSTONE_SK,
            kind: TOMBSTONE_KIND,
            lead_id: *id,
            erased_at: ts(at),
            ttl: (at + usecases::ports::TOMBSTONE_KEPT).timestamp(),
        };
        let mut items = Vec::new();
        if if_due {
            // Decided on the lead as it is now, atomically with the tombstone: a contact
            // that moved its retention since the index was read keeps it alive.
            let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .key(schema::PK, s(lead_pk(id)))
                .key(schema::SK, s(LEAD_SK))
                .condition_expression("exp_at <= :now")
                .expression_attribute_values(":now", n(at.timestamp()))
                .build()
                .map_err(|e| corrupt("bury", e))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        // A repeated erasure keeps the first tombstone's time.
        items.push(put(
            &self.table,
            to_item("bury", &tombstone)?,
            Some("attribute_not_exists(pk)"),
            &[],
        )?);
        let tombstone_at = items.len() - 1;
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(failed) if if_due && failed.contains(&0) => Ok(false),
            // The tombstone is there already: the subject is buried.
            Err(failed) if failed.contains(&tombstone_at) => Ok(true),
            // Cancelled for another reason (a conflicting concurrent write): nothing was
            // written, so the erasure must not go on as if the tombstone stood.
            Err(_) => Err(StoreError {
                operation: "bury",
                retry: Retry::Transient,
                source: None,
            }),
        }
    }

    async fn erased(&self, id: &LeadId) -> Result<bool, StoreError> {
        Ok(self
            .get("get_tombstone", lead_pk(id), TOMBSTONE_SK)
            .await?
            .is_some())
    }

    async fn lead_exists(&self, id: &LeadId) -> Result<bool, StoreError> {
        Ok(self.get("get_lead", lead_pk(id), LEAD_SK).await?.is_some())
    }

    async fn detach_consent_proofs(&self, id: &LeadId) -> Result<usize, StoreError> {
        detach_consent_proofs(&self.client, &self.table, id).await
    }
}

/// Partition of a consent proof kept after its subject's erasure.
pub const DETACHED_PROOF_PREFIX: &str = "CONSENT#";

/// Moves the §7a UWG consent proofs of an erased subject out of its partition
/// (`LEAD#<id>` / `CONSENT#<time>#<uuid>` → `CONSENT#<uuid>` / `PROOF`) without the lead id
/// and the call ids; the number of calls made under a proof stays (`uses`), as do its
/// times, version, method, the number's blind index and its retention. What remains of
/// the subject (its audit events, keyed by lead and call ids) then joins no kept record.
/// Idempotent: a copy already made is kept, the original then deleted.
pub async fn detach_consent_proofs(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &LeadId,
) -> Result<usize, StoreError> {
    const OP: &str = "detach_consent_proof";
    let mut moved = 0;
    for proof in query_partition(ddb, table, &lead_pk(id))
        .await?
        .into_iter()
        .filter(|i| text(i, "kind") == Some("phone_consent"))
    {
        let Some(sk) = text(&proof, schema::SK).map(str::to_owned) else {
            continue;
        };
        let proof_id = sk.rsplit('#').next().unwrap_or_default().to_owned();
        let uses = match proof.get("call_ids") {
            Some(AttributeValue::Ss(calls)) => calls.len(),
            _ => 0,
        };
        let mut kept = proof.clone();
        kept.remove("lead_id");
        kept.remove("call_ids");
        kept.insert(
            schema::PK.into(),
            s(format!("{DETACHED_PROOF_PREFIX}{proof_id}")),
        );
        kept.insert(schema::SK.into(), s("PROOF"));
        kept.insert("uses".into(), n(uses));
        match ddb
            .put_item()
            .table_name(table)
            .set_item(Some(kept))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(failure(OP, e)),
        }
        ddb.delete_item()
            .table_name(table)
            .key(schema::PK, s(lead_pk(id)))
            .key(schema::SK, s(sk))
            .send()
            .await
            .map_err(|e| failure(OP, e))?;
        moved += 1;
    }
    Ok(moved)
}

/// DynamoDB's limit of requests in one BatchWriteItem.
pub const BATCH_WRITE_LIMIT: usize = 25;

/// Every item of a partition, consistently read.
pub async fn query_partition(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| failure("query_partition", e))?;
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Deletes items by key in batches of at most 25, retrying unprocessed parts with
/// backoff; `sizes`, when given, records the size of every request sent.
pub async fn batch_delete(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<(String, String)>,
    sizes: Option<&std::sync::Mutex<Vec<usize>>>,
) -> Result<usize, StoreError> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    let mut deleted = 0;
    for chunk in keys.chunks(BATCH_WRITE_LIMIT) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|(pk, sk)| {
                DeleteRequest::builder()
                    .key(schema::PK, s(pk.clone()))
                    .key(schema::SK, s(sk.clone()))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("batch_delete", e))?;
        for attempt in 0..8u32 {
            if requests.is_empty() {
                break;
            }
            if attempt > 0 {
                backoff(attempt).await;
            }
            if let Some(Ok(mut s)) = sizes.map(|m| m.lock()) {
                s.push(requests.len());
            }
            let out = ddb
                .batch_write_item()
                .request_items(table, requests.clone())
                .send()
                .await
                .map_err(|e| failure("batch_delete", e))?;
            let unprocessed = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            deleted += requests.len() - unprocessed.len();
            requests = unprocessed;
        }
        if !requests.is_empty() {
            return Err(StoreError {
                operation: "batch_delete",
                retry: Retry::Transient,
                source: None,
            });
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// R3.3: an audit event carries a TTL backstop, the audit class's (3 years and the
    /// grace).
    #[test]
    fn an_audit_event_expires_with_the_audit_class() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
        let item = audit_item("dsar-worker", "dsar.erased", None, None, at);
        assert_eq!(item.ttl, retention(RetentionClass::Audit, at).ttl);
        let three_years = Utc.with_ymd_and_hms(2029, 11, 30, 8, 0, 0).unwrap();
        assert!(item.ttl > three_years.timestamp());
        assert!(item.ttl < (three_years + chrono::Duration::days(8)).timestamp());
    }
}
