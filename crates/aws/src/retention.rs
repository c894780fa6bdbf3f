//! The retention sweep's store over DynamoDB: the expiry index (`by-expiry`, one
//! partition per class and month), the main table and the key table.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::calls::{attempt_keys, call_pk, calls_in_partition, CALL_SK};
use crate::dsar::REQUEST_KEY_SK;
use crate::dynamo::{
    audit_item, batch_delete, failure, lead_pk, n, query_partition, s, schema, text, to_item, ts,
    DynamoLeadStore, CLAIM_SK, TOMBSTONE_KIND,
};
use domain::LeadId;
use usecases::ports::StoreError;
use usecases::retention::ports::{DueItem, DueRecording, ItemKey, RetentionStore, SweepAudit};

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
}
