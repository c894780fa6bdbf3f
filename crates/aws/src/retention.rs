//! The retention sweep's store over DynamoDB: the expiry index (`by-expiry`, one
//! partition per class and month), the main table and the key table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::calls::{attempt_keys, call_pk, calls_in_partition, CALL_SK};
use crate::dsar::REQUEST_KEY_SK;
use crate::dynamo::{
    audit_item, backoff, batch_delete, corrupt, failed_conditions, failure, lead_pk, n,
    query_partition, s, schema, text, to_item, ts, DynamoLeadStore, Item, BATCH_WRITE_LIMIT,
    CLAIM_SK, DETACHED_PROOF_PREFIX, KEY_SK, LEAD_SK, TOMBSTONE_KIND, TOMBSTONE_SK,
};
use domain::LeadId;
use usecases::ports::StoreError;
use usecases::retention::ports::{
    DueItem, DueRecording, ErasurePlan, ItemKey, RetentionStore, SweepAudit, SweepCursor,
};

/// Partition of the sweep's per-class cursors (sort key: the class code).
pub const CURSOR_PK: &str = "SWEEP#CURSOR";

/// Subjects whose tombstones go in one TransactWriteItems (a check and a put each):
/// 24 actions, inside the emulator's limit of 25 (DynamoDB allows 100).
pub const BURY_BATCH: usize = 12;

/// Kind of the lead's lifetime call-attempt count: written with every attempt counter
/// on a number, so a partition without it left no counters on any number.
const ATTEMPT_COUNT_KIND: &str = "call_attempt_count";

fn is_conditional<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

#[derive(Clone)]
pub struct DynamoRetentionStore {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    key_table: String,
    leads: DynamoLeadStore,
    /// The size of every BatchWriteItem request sent (tests check the 25 limit).
    pub batch_sizes: Arc<Mutex<Vec<usize>>>,
    /// The consent proofs read by the last erasure plans, for their detached copies.
    proofs: Arc<Mutex<HashMap<ItemKey, Item>>>,
}

impl DynamoRetentionStore {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: String, key_table: String) -> Self {
        let leads = DynamoLeadStore::new(ddb.clone(), table.clone(), key_table.clone());
        Self {
            ddb,
            table,
            key_table,
            leads,
            batch_sizes: Arc::default(),
            proofs: Arc::default(),
        }
    }

    /// Puts items in BatchWriteItem requests of at most 25, retrying unprocessed parts
    /// with backoff.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in items.chunks(BATCH_WRITE_LIMIT) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    PutRequest::builder()
                        .set_item(Some(i.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                })
                .collect::<Result<_, _>>()
                .map_err(|e| corrupt("batch_put", e))?;
            for attempt in 0..8u32 {
                if requests.is_empty() {
                    break;
                }
                if attempt > 0 {
                    backoff(attempt).await;
                }
                if let Ok(mut sizes) = self.batch_sizes.lock() {
                    sizes.push(requests.len());
                }
                let out = self
                    .ddb
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                    .map_err(|e| failure("batch_put", e))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
            }
            if !requests.is_empty() {
                return Err(StoreError {
                    operation: "batch_put",
                    retry: usecases::ports::Retry::Transient,
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// The erasure plan of one subject from its partition (read consistently).
    async fn plan(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<ErasurePlan, StoreError> {
        let pk = lead_pk(lead);
        let partition = query_partition(&self.ddb, &self.table, &pk).await?;
        let profile = partition
            .iter()
            .find(|i| text(i, schema::SK) == Some(LEAD_SK));
        let expires_at = profile
            .and_then(|p| p.get("exp_at"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|t| DateTime::from_timestamp(t, 0));
        let hold = partition
            .iter()
            .filter(|i| text(i, schema::SK).is_some_and(|sk| sk.starts_with("CONTRACT#")))
            .filter_map(|i| text(i, "expires_at"))
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now)
            .max();
        let key = |pk: String, sk: &str| ItemKey {
            pk,
            sk: sk.to_owned(),
        };
        let mut keys = Vec::new();
        let mut proofs = Vec::new();
        for i in &partition {
            let k = key(pk.clone(), text(i, schema::SK).unwrap_or_default());
            match text(i, "kind") {
                Some("phone_consent") => {
                    self.proofs
                        .lock()
                        .map_err(|_| poisoned())?
                        .insert(k.clone(), i.clone());
                    proofs.push(k);
                }
                Some(TOMBSTONE_KIND) => {}
                _ => keys.push(k),
            }
        }
        if let Some(email) = profile.and_then(|p| text(p, schema::EMAIL_INDEX_ATTR)) {
            keys.push(key(format!("EMAIL#{email}"), CLAIM_SK));
        }
        if let Some(phone) = profile.and_then(|p| text(p, schema::PHONE_INDEX_ATTR)) {
            keys.push(key(format!("PHONE#{phone}"), CLAIM_SK));
        }
        let calls = calls_in_partition(&partition);
        for call in &calls {
            keys.push(key(call_pk(call), CALL_SK));
            keys.push(key(call_pk(call), "RECORDING"));
        }
        // The counters on its numbers: only a subject that ever had an attempt counted
        // left any (each counter is written with the lead's own count).
        if partition
            .iter()
            .any(|i| text(i, "kind") == Some(ATTEMPT_COUNT_KIND))
        {
            for (pk, sk) in attempt_keys(&self.ddb, &self.table, lead, &partition).await? {
                keys.push(ItemKey { pk, sk });
            }
        }
        Ok(ErasurePlan {
            lead: *lead,
            expires_at,
            hold,
            keys,
            proofs,
            calls,
        })
    }

    /// One transaction of tombstones; `Err(failed)` names the actions whose condition
    /// failed when it was cancelled for them.
    async fn bury_batch(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Result<(), Vec<usize>>, StoreError> {
        use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};
        let mut actions = Vec::new();
        for lead in leads {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key(schema::PK, s(lead_pk(lead)))
                .key(schema::SK, s(LEAD_SK))
                .condition_expression("exp_at <= :now")
                .expression_attribute_values(":now", n(now.timestamp()))
                .build()
                .map_err(|e| corrupt("bury", e))?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
            let tombstone: Item = [
                (schema::PK.to_owned(), s(lead_pk(lead))),
                (schema::SK.to_owned(), s(TOMBSTONE_SK)),
                ("kind".to_owned(), s(TOMBSTONE_KIND)),
                ("lead_id".to_owned(), s(lead.to_string())),
                ("erased_at".to_owned(), s(ts(now))),
                (
                    schema::TTL.to_owned(),
                    n((now + usecases::ports::TOMBSTONE_KEPT).timestamp()),
                ),
            ]
            .into_iter()
            .collect();
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(tombstone))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| corrupt("bury", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        match self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(err) => match failed_conditions(&err) {
                Some(failed) if !failed.is_empty() => Ok(Err(failed)),
                _ => Err(failure("bury_all", err)),
            },
        }
    }

    /// The lead store over the same tables (the sweep puts held subjects on hold with it).
    pub fn lead_store(&self) -> DynamoLeadStore {
        self.leads.clone()
    }
}

#[async_trait]
impl RetentionStore for DynamoRetentionStore {
    async fn due(&self, bucket: &str, now: DateTime<Utc>) -> Result<Vec<DueItem>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .ddb
                .query()
                .table_name(&self.table)
                .index_name(schema::EXPIRY_INDEX)
                .key_condition_expression("#b = :b AND #e <= :now")
                .expression_attribute_names("#b", schema::EXPIRY_PARTITION_ATTR)
                .expression_attribute_names("#e", schema::EXPIRY_SORT_ATTR)
                .expression_attribute_values(":b", s(bucket))
                .expression_attribute_values(":now", n(now.timestamp()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("query_expiry", e))?;
            items.extend(out.items().iter().filter_map(|i| {
                Some(DueItem {
                    key: ItemKey {
                        pk: text(i, schema::PK)?.to_owned(),
                        sk: text(i, schema::SK)?.to_owned(),
                    },
                    kind: text(i, "kind").map(str::to_owned),
                    lead: text(i, "lead_id").and_then(|l| LeadId::parse(l).ok()),
                })
            }));
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(items)
    }

    async fn recording(&self, key: &ItemKey) -> Result<Option<DueRecording>, StoreError> {
        let Some(item) = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(key.pk.clone()))
            .key(schema::SK, s(key.sk.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_recording", e))?
            .item
        else {
            return Ok(None);
        };
        Ok(Some(DueRecording {
            call_id: text(&item, "call_id").unwrap_or_default().to_owned(),
            lead: text(&item, "lead_id").and_then(|l| LeadId::parse(l).ok()),
            objects: ["object_key", "transcript_key"]
                .iter()
                .filter_map(|k| text(&item, k).map(str::to_owned))
                .collect(),
        }))
    }

    async fn mark_recording_deleted(
        &self,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let marked = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression(
                "SET recording_state = :gone, recording_deleted_at = :now \
                 REMOVE transcript_key, sealed_recording_url, recording_key",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":gone", s("deleted"))
            .expression_attribute_values(":now", s(ts(now)))
            .send()
            .await;
        match marked {
            // The call itself was erased already: nothing to mark.
            Err(e) if is_conditional(&e) => Ok(()),
            Err(e) => Err(failure("mark_recording_deleted", e)),
            Ok(_) => Ok(()),
        }
    }

    fn recording_key(&self, call_id: &str) -> ItemKey {
        ItemKey {
            pk: call_pk(call_id),
            sk: "RECORDING".to_owned(),
        }
    }

    fn call_of(&self, key: &ItemKey) -> Option<String> {
        (key.sk == CALL_SK).then(|| key.pk.strip_prefix("CALL#").map(str::to_owned))?
    }

    async fn delete(&self, keys: Vec<ItemKey>) -> Result<usize, StoreError> {
        let keys = keys.into_iter().map(|k| (k.pk, k.sk)).collect();
        batch_delete(&self.ddb, &self.table, keys, Some(&self.batch_sizes)).await
    }

    async fn delete_request_keys(&self, request_ids: Vec<String>) -> Result<usize, StoreError> {
        let keys = request_ids
            .into_iter()
            .map(|id| (format!("DSAR#{id}"), REQUEST_KEY_SK.to_owned()))
            .collect();
        batch_delete(&self.ddb, &self.key_table, keys, Some(&self.batch_sizes)).await
    }

    async fn end_unverified(&self, request_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(format!("DSAR#{request_id}")))
            .key(schema::SK, s("REQUEST"))
            .update_expression(
                "SET #s = :failed, outcome = :expired, closed_at = :now ADD version :one \
                 REMOVE subject_email_bidx, subject_phone_bidx, correction_email_bidx, \
                 correction_phone_bidx",
            )
            .condition_expression("#s = :waiting")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":failed", s("verification_failed"))
            .expression_attribute_values(":waiting", s("awaiting_verification"))
            .expression_attribute_values(":expired", s("code_expired"))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Err(e) if is_conditional(&e) => Ok(()),
            Err(e) => Err(failure("end_unverified", e)),
            Ok(_) => Ok(()),
        }
    }

    async fn contract_hold(
        &self,
        lead: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
            .expression_attribute_values(":pk", s(lead_pk(lead)))
            .expression_attribute_values(":c", s("CONTRACT#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("query_contracts", e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| text(i, "expires_at"))
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now)
            .max())
    }

    async fn lead_expiry(&self, lead: &LeadId) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.leads.expiry(lead).await
    }

    async fn bury(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        usecases::ports::LeadStore::bury(&self.leads, lead, now, true).await
    }

    async fn erasure_keys(&self, lead: &LeadId) -> Result<Vec<ItemKey>, StoreError> {
        let pk = lead_pk(lead);
        // Everything in the subject's partition but the consent proofs.
        let partition = query_partition(&self.ddb, &self.table, &pk).await?;
        let key = |pk: String, sk: &str| ItemKey {
            pk,
            sk: sk.to_owned(),
        };
        let mut keys: Vec<ItemKey> = partition
            .iter()
            .filter(|i| !matches!(text(i, "kind"), Some("phone_consent" | TOMBSTONE_KIND)))
            .map(|i| key(pk.clone(), text(i, "sk").unwrap_or_default()))
            .collect();
        // The subject's identifier claims and calls, from the lead item just read.
        let full = partition
            .iter()
            .find(|i| text(i, "kind") == Some("lead"))
            .cloned()
            .unwrap_or_default();
        if let Some(email) = text(&full, schema::EMAIL_INDEX_ATTR) {
            keys.push(key(format!("EMAIL#{email}"), CLAIM_SK));
        }
        if let Some(phone) = text(&full, schema::PHONE_INDEX_ATTR) {
            keys.push(key(format!("PHONE#{phone}"), CLAIM_SK));
        }
        // Its calls through the partition (pointers, call requests), not through the
        // number it has today; and the attempt counters it left on its numbers.
        for call in calls_in_partition(&partition) {
            keys.push(key(call_pk(&call), CALL_SK));
            keys.push(key(call_pk(&call), "RECORDING"));
        }
        for (pk, sk) in attempt_keys(&self.ddb, &self.table, lead, &partition).await? {
            keys.push(ItemKey { pk, sk });
        }
        Ok(keys)
    }

    async fn shred_key(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.leads.shred_key(lead).await
    }

    async fn audit(&self, e: SweepAudit<'_>) -> Result<(), StoreError> {
        crate::dynamo::put_audit(
            &self.ddb,
            &self.table,
            "retention-sweep",
            e.action,
            e.lead,
            e.call_id,
            e.at,
        )
        .await
    }

    async fn record_run(
        &self,
        counts: &str,
        complete: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = audit_item("retention-sweep", "retention.run", None, None, at);
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("audit", &item)?))
            .item("counts", s(counts))
            .item("complete", AttributeValue::Bool(complete))
            .send()
            .await
            .map_err(|e| failure("audit", e))?;
        Ok(())
    }

    async fn erasure_plans(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<ErasurePlan>, StoreError> {
        self.proofs.lock().map_err(|_| poisoned())?.clear();
        let mut plans = Vec::with_capacity(leads.len());
        for lead in leads {
            plans.push(self.plan(lead, now).await?);
        }
        Ok(plans)
    }

    async fn bury_all(
        &self,
        leads: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadId>, StoreError> {
        let mut buried = Vec::new();
        for chunk in leads.chunks(BURY_BATCH) {
            let mut pending: Vec<LeadId> = chunk.to_vec();
            while !pending.is_empty() {
                match self.bury_batch(&pending, now).await {
                    Ok(Ok(())) => {
                        buried.append(&mut pending);
                    }
                    Ok(Err(failed)) => {
                        // Cancelled: decided one by one on the proven per-subject path
                        // (a subject no longer due is skipped there, one buried before
                        // counts as buried); the cancellation's reasons are not trusted
                        // to name the right subject.
                        tracing::warn!(
                            failed = failed.len(),
                            "tombstones cancelled together; one by one"
                        );
                        for lead in pending.drain(..) {
                            if self.bury(&lead, now).await? {
                                buried.push(lead);
                            }
                        }
                    }
                    Err(e) => {
                        // Cancelled for another reason (a conflicting write): one by one.
                        tracing::warn!(error = %e, "tombstones not written together; one by one");
                        for lead in pending.drain(..) {
                            if self.bury(&lead, now).await? {
                                buried.push(lead);
                            }
                        }
                    }
                }
            }
        }
        Ok(buried)
    }

    async fn shred_keys(&self, leads: &[LeadId]) -> Result<(), StoreError> {
        let keys = leads
            .iter()
            .map(|l| (lead_pk(l), KEY_SK.to_owned()))
            .collect();
        batch_delete(&self.ddb, &self.key_table, keys, Some(&self.batch_sizes)).await?;
        Ok(())
    }

    async fn detach_proofs(&self, proofs: &[ItemKey]) -> Result<usize, StoreError> {
        let mut copies = Vec::new();
        for k in proofs {
            let cached = self.proofs.lock().map_err(|_| poisoned())?.get(k).cloned();
            let Some(proof) = cached else {
                return Err(StoreError {
                    operation: "detach_proofs",
                    retry: usecases::ports::Retry::Permanent,
                    source: None,
                });
            };
            // As `dynamo::detach_consent_proofs`: no lead or call ids, the number of
            // calls made under it, its own key.
            let proof_id = k.sk.rsplit('#').next().unwrap_or_default().to_owned();
            let uses = match proof.get("call_ids") {
                Some(AttributeValue::Ss(calls)) => calls.len(),
                _ => 0,
            };
            let mut kept = proof;
            kept.remove("lead_id");
            kept.remove("call_ids");
            kept.insert(
                schema::PK.into(),
                s(format!("{DETACHED_PROOF_PREFIX}{proof_id}")),
            );
            kept.insert(schema::SK.into(), s("PROOF"));
            kept.insert("uses".into(), n(uses));
            copies.push(kept);
        }
        let copied = copies.len();
        self.batch_put(copies).await?;
        Ok(copied)
    }

    async fn audit_all(&self, events: &[SweepAudit<'_>]) -> Result<(), StoreError> {
        let items = events
            .iter()
            .map(|e| {
                to_item(
                    "audit",
                    &audit_item("retention-sweep", e.action, e.lead, e.call_id, e.at),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put(items).await
    }

    async fn cursors(&self) -> Result<BTreeMap<String, SweepCursor>, StoreError> {
        let items = query_partition(&self.ddb, &self.table, CURSOR_PK).await?;
        let at = |i: &Item, name: &str| {
            text(i, name)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(items
            .iter()
            .filter_map(|i| {
                Some((
                    text(i, schema::SK)?.to_owned(),
                    SweepCursor {
                        swept_at: at(i, "swept_at")?,
                        full_at: at(i, "full_at")?,
                    },
                ))
            })
            .collect())
    }

    async fn set_cursors(&self, cursors: &[(&str, SweepCursor)]) -> Result<(), StoreError> {
        let items = cursors
            .iter()
            .map(|(class, c)| {
                [
                    (schema::PK.to_owned(), s(CURSOR_PK)),
                    (schema::SK.to_owned(), s(*class)),
                    ("kind".to_owned(), s("sweep_cursor")),
                    ("swept_at".to_owned(), s(ts(c.swept_at))),
                    ("full_at".to_owned(), s(ts(c.full_at))),
                    // A lost cursor costs one full pass, nothing else.
                    (
                        schema::TTL.to_owned(),
                        n((c.swept_at + chrono::Duration::days(90)).timestamp()),
                    ),
                ]
                .into_iter()
                .collect()
            })
            .collect();
        self.batch_put(items).await
    }
}

fn poisoned() -> StoreError {
    StoreError {
        operation: "retention_store_lock",
        retry: usecases::ports::Retry::Transient,
        source: None,
    }
}
