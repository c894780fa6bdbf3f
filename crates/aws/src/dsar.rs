//! Data-subject request items in the table.
//!
//! `DSAR#<request id>` holds the request record (`REQUEST`: type, status, dates, no
//! content), the one-time code (`CODE`: a keyed hash, 15 minutes), the sealed contact
//! (`CONTACT`: the address to answer to and what the subject wrote, under a data key bound
//! to the request; deleted when the request closes) and the export (`EXPORT`: 7 days).
//! `DSAR_OPEN` / `<due date>#<id>` lists open requests by due date for staff, and
//! `LEAD#<id>` / `REQUEST#<id>` links a request to the subject it concerns (its history).
//! The audit items about a request (`AUDIT#<day>`, each naming its `request_id`) are
//! read back, oldest first, through the index [`REQUEST_INDEX`] (staff timeline).
//!
//! Every change of a request rewrites the record on its read `version` inside one
//! transaction with the items that change with it and an audit item, so concurrent
//! actions (a code entered twice, staff and worker at once) cannot both win.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dynamo::{audit_item, failed_conditions, failure, lead_pk, n, s, Item};
use domain::{LeadId, RequestId};
use usecases::dsar::ports::RequestStore;
use usecases::dsar::records::Change;
use usecases::ports::StoreError;

// The records are the use cases' types; these items store them as they are, with the
// keys and kind below added (`keyed`).
pub use usecases::dsar::records::{
    close, new_record, Channel, CodeRecord, Commit, ContactRecord, Counter, Expiry, ExportRecord,
    OpenRecord, RequestRecord, SubjectRequestRecord, TimelineEntry, CONTACT_MONTHS,
    MAX_CODE_ATTEMPTS,
};

/// The index of every item naming a `request_id` (the request's own items, its list
/// entry and link, and the audit items about it), sorted by `sk`: an audit item's sort
/// key is its time and a UUIDv7, so a request's audit items read oldest first. Projects
/// only the keys and `kind`, `action`, `actor`, `at`, `channel`.
pub const REQUEST_INDEX: &str = "by-request";

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

/// Sort key of an open request in the staff list: due date first, so the list reads in order.
pub fn open_sk(open: &OpenRecord) -> String {
    format!("{}#{}", open.due_date, open.request_id)
}

fn corrupt(
    operation: &'static str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    super::dynamo::corrupt(operation, err)
}

/// A record stored as an item: its keys and kind, then its own attributes.
#[derive(Serialize)]
struct Keyed<'a, T: Serialize> {
    pk: String,
    sk: String,
    kind: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

fn keyed<T: Serialize>(
    operation: &'static str,
    pk: String,
    sk: impl Into<String>,
    kind: &'static str,
    record: &T,
) -> Result<Item, StoreError> {
    super::dynamo::to_item(
        operation,
        &Keyed {
            pk,
            sk: sk.into(),
            kind,
            record,
        },
    )
}

fn request_item(record: &RequestRecord) -> Result<Item, StoreError> {
    keyed(
        "dsar_commit",
        request_pk(&record.request_id),
        REQUEST_SK,
        "dsar_request",
        record,
    )
}

fn open_item(open: &OpenRecord) -> Result<Item, StoreError> {
    keyed("dsar_put", OPEN_PK.into(), open_sk(open), "dsar_open", open)
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

/// One write of a request change, as items.
enum Write {
    Put(Item),
    /// A put on condition that the item does not exist.
    Create(Item),
    Delete(String, String),
    /// A put into the key table.
    PutKey(Item),
    /// A delete from the key table.
    DeleteKey(String, String),
}

/// The items a change of request `id` writes, in order (a contact's key before the
/// contact).
fn writes(id: &RequestId, change: Change, at: DateTime<Utc>) -> Result<Vec<Write>, StoreError> {
    let pk = request_pk(id);
    Ok(match change {
        Change::List(mut open) => {
            open.changed_at = Some(at);
            vec![Write::Put(open_item(&open)?)]
        }
        Change::Unlist(open) => vec![Write::Delete(OPEN_PK.into(), open_sk(&open))],
        Change::CreateCode(code) => vec![Write::Create(keyed(
            "dsar_put",
            pk,
            CODE_SK,
            "dsar_code",
            &code,
        )?)],
        Change::DeleteCode => vec![Write::Delete(pk, CODE_SK.into())],
        Change::PutContact { contact, create } => {
            let mut out = Vec::with_capacity(2);
            if let Some(wrapped) = contact.wrapped_key.clone() {
                let key = RequestKeyRecord::new(*id, wrapped, &contact.expiry);
                out.push(Write::PutKey(super::dynamo::to_item("dsar_put_key", &key)?));
            }
            let item = keyed("dsar_put", pk, CONTACT_SK, "dsar_contact", &contact)?;
            out.push(if create {
                Write::Create(item)
            } else {
                Write::Put(item)
            });
            out
        }
        // The key first, in the same transaction.
        Change::DeleteContact => vec![
            Write::DeleteKey(pk.clone(), REQUEST_KEY_SK.into()),
            Write::Delete(pk, CONTACT_SK.into()),
        ],
        Change::PutExport(export) => vec![Write::Put(keyed(
            "dsar_put",
            pk,
            EXPORT_SK,
            "dsar_export",
            &export,
        )?)],
        Change::Link(link) => vec![Write::Put(keyed(
            "dsar_put",
            lead_pk(&link.lead_id),
            format!("REQUEST#{}", link.request_id),
            "dsar_link",
            &link,
        )?)],
        Change::Crm(event) => vec![Write::Create(super::crm::item(&event))],
    })
}

/// The keys of a request counter.
fn counter_key(counter: &Counter) -> (String, String) {
    match counter {
        Counter::Source { source, day } => {
            (format!("DSARSRC#{}", source.as_str()), day.to_string())
        }
        Counter::IdentifierFromSource {
            identifier,
            source,
            day,
        } => (counter_pk(identifier), format!("{day}#{}", source.as_str())),
        Counter::Identifier { identifier, day } => (counter_pk(identifier), day.to_string()),
    }
}

/// The partition of an identifier's request counters.
pub fn counter_pk(identifier: &domain::crypto::BlindIndex) -> String {
    format!("DSARLIMIT#{}", identifier.as_str())
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
        counter: &Counter,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = counter_key(counter);
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
        changes: Vec<Change>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<Commit, StoreError> {
        let mut writes = Vec::with_capacity(changes.len() + 1);
        for change in changes {
            writes.extend(self::writes(&record.request_id, change, at)?);
        }
        let mut items = Vec::with_capacity(writes.len() + 2);
        let mut stamped = record.clone();
        stamped.changed_at = Some(at);
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(request_item(&stamped)?));
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
        if expected_version.is_none() && record.channel != Channel::Online {
            audit.insert("channel".into(), s(record.channel.code()));
        }
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
            Ok(_) => {
                // Per-type accountability metrics: once per committed change.
                usecases::dsar::figures::committed(record, expected_version.is_none(), action, at);
                Ok(Commit::Done)
            }
            Err(e) => match failed_conditions(&e) {
                Some(failed) if failed.contains(&0) => Ok(Commit::Conflict),
                _ => Err(failure("dsar_commit", e)),
            },
        }
    }

    /// Writes an audit item about a request that changes nothing else. The item's key is
    /// fresh (time and a UUIDv7), so a failed condition means it is there already: the
    /// SDK retried a put whose answer was lost, and the step is audited once.
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
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(failure("dsar_audit", e)),
        }
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

    /// The audit items about request `id`, oldest first, through [`REQUEST_INDEX`]
    /// (eventually consistent: an item written a moment ago may be missing).
    pub async fn timeline(&self, id: &RequestId) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(REQUEST_INDEX)
                .key_condition_expression("request_id = :id")
                .filter_expression("kind = :audit")
                .expression_attribute_values(":id", s(id.to_string()))
                .expression_attribute_values(":audit", s("audit"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("dsar_timeline", e))?;
            for item in page.items() {
                let entry: TimelineItem = serde_dynamo::from_item(item.clone())
                    .map_err(|e| corrupt("dsar_timeline", e))?;
                out.push(TimelineEntry {
                    at: entry.at,
                    action: entry.action,
                    actor: entry.actor,
                    channel: entry.channel,
                });
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

/// An audit item as the request index projects it.
#[derive(Deserialize)]
struct TimelineItem {
    at: DateTime<Utc>,
    action: String,
    actor: String,
    #[serde(default)]
    channel: Option<Channel>,
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

/// Removes the link from a request record to its subject (gone is fine).
async fn unlink(store: &DsarStore, id: &RequestId) -> Result<(), StoreError> {
    let result = store
        .client
        .update_item()
        .table_name(&store.table)
        .key("pk", s(request_pk(id)))
        .key("sk", s(REQUEST_SK))
        .update_expression("REMOVE lead_id")
        .condition_expression("attribute_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_conditional(&e) => Ok(()),
        Err(e) => Err(failure("unlink_request", e)),
    }
}

#[async_trait]
impl RequestStore for DsarStore {
    async fn request(&self, id: &RequestId) -> Result<Option<RequestRecord>, StoreError> {
        DsarStore::request(self, id).await
    }
    async fn code(&self, id: &RequestId) -> Result<Option<CodeRecord>, StoreError> {
        DsarStore::code(self, id).await
    }
    async fn contact(&self, id: &RequestId) -> Result<Option<ContactRecord>, StoreError> {
        DsarStore::contact(self, id).await
    }
    async fn export(&self, id: &RequestId) -> Result<Option<ExportRecord>, StoreError> {
        DsarStore::export(self, id).await
    }
    async fn count_request(
        &self,
        counter: &Counter,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        DsarStore::count_request(self, counter, limit, now).await
    }
    async fn take_code_attempt(&self, id: &RequestId) -> Result<Option<u32>, StoreError> {
        DsarStore::take_code_attempt(self, id).await
    }
    async fn commit(
        &self,
        record: &RequestRecord,
        expected_version: Option<u64>,
        changes: Vec<Change>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<Commit, StoreError> {
        DsarStore::commit(self, record, expected_version, changes, actor, action, at).await
    }
    async fn audit(
        &self,
        id: &RequestId,
        lead: Option<&LeadId>,
        actor: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        DsarStore::audit(self, id, lead, actor, action, at).await
    }
    async fn open_requests(&self) -> Result<Vec<OpenRecord>, StoreError> {
        DsarStore::open_requests(self).await
    }
    async fn timeline(&self, id: &RequestId) -> Result<Vec<TimelineEntry>, StoreError> {
        DsarStore::timeline(self, id).await
    }
    async fn subject_requests(&self, lead: &LeadId) -> Result<Vec<RequestRecord>, StoreError> {
        DsarStore::subject_requests(self, lead).await
    }
    async fn unlink_subject(&self, id: &RequestId) -> Result<(), StoreError> {
        unlink(self, id).await
    }
    async fn due_erasures(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RequestId>, StoreError> {
        due_erasures(self, now, limit).await
    }
    async fn crm_event(
        &self,
        event_id: &str,
    ) -> Result<Option<usecases::crm::CrmEvent>, StoreError> {
        use usecases::crm::CrmOutbox;
        super::crm::DynamoCrmOutbox::new(self.client.clone(), self.table.clone())
            .event(event_id)
            .await
    }
}

/// Erasures whose cancel window has ended, through the sparse `by-due` index (their own
/// `due_kind`), earliest first: a query, never a scan.
async fn due_erasures(
    store: &DsarStore,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<RequestId>, StoreError> {
    let mut due = Vec::new();
    let mut start = None;
    loop {
        let out = store
            .client
            .query()
            .table_name(&store.table)
            .index_name(super::calls::DUE_INDEX)
            .key_condition_expression("due_kind = :k AND due_at <= :now")
            .expression_attribute_values(":k", s(usecases::dsar::records::ERASURE_DUE_KIND))
            .expression_attribute_values(":now", s(domain::retention::stored_instant(now)))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| failure("due_erasures", e))?;
        for item in out.items() {
            let id = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix("DSAR#"))
                .and_then(|id| RequestId::parse(id).ok());
            match id {
                Some(id) => due.push(id),
                None => tracing::error!("malformed due erasure skipped"),
            }
            if due.len() >= limit {
                return Ok(due);
            }
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::dsar::{RequestStatus, RequestType};

    #[test]
    fn records_round_trip_through_items_without_nulls() {
        let now = Utc::now();
        let r = new_record(
            RequestId::new(),
            RequestType::Access,
            RequestStatus::AwaitingVerification,
            now,
        );
        let item: Item = request_item(&r).unwrap();
        assert_eq!(item["pk"], s(request_pk(&r.request_id)));
        assert_eq!(item["sk"], s(REQUEST_SK));
        assert_eq!(item["kind"], s("dsar_request"));
        assert_eq!(item["version"], n(1));
        assert!(!item.values().any(|v| matches!(v, AttributeValue::Null(_))));
        assert!(item.contains_key("exp_bucket") && item.contains_key("ttl"));
        let back: RequestRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.request_id, r.request_id);
        assert_eq!(back.due_date, r.due_date);
        assert_eq!(back.status, RequestStatus::AwaitingVerification);
    }

    /// A waiting erasure carries the sparse due index's attributes (`due_kind`, `due_at`)
    /// on its record item, and a record without one carries neither.
    #[test]
    fn a_waiting_erasure_is_in_the_due_index_and_back() {
        let now = Utc::now();
        let mut r = new_record(
            RequestId::new(),
            RequestType::Erasure,
            RequestStatus::InProgress,
            now,
        );
        let item = request_item(&r).unwrap();
        assert!(!item.contains_key("due_kind") && !item.contains_key("due_at"));
        let back: RequestRecord = serde_dynamo::from_item(item).unwrap();
        assert!(back.erasure_due.is_none());
        r.has_email = true;
        usecases::dsar::erasure_window::schedule(&mut r, chrono::Duration::hours(48), now).unwrap();
        let item = request_item(&r).unwrap();
        assert_eq!(item["due_kind"], s("dsar_erasure"));
        assert_eq!(
            item["due_at"],
            s(domain::retention::stored_instant(
                now + chrono::Duration::hours(48)
            ))
        );
        let back: RequestRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.erasure_due, r.erasure_due);
        assert_eq!(back.erasure_scheduled_at, r.erasure_scheduled_at);
    }
}
