//! The provider-deletion outbox in the main table: one item per call, `OUTBOX` /
//! `CALL#<call id>`, holding only the provider's call id, the attempts, the next attempt
//! and the TTL (no subject id, no personal data). One partition: the outbox is small (it
//! holds only what the provider failed to delete) and is read whole by the drain and
//! the staff list.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use usecases::outbox::{PendingDeletion, ProviderOutbox};
use usecases::ports::StoreError;

use crate::dynamo::{failure, n, query_partition, s, text, Item};

/// The outbox partition.
pub const OUTBOX_PK: &str = "OUTBOX";

fn sk(call_id: &str) -> String {
    format!("CALL#{call_id}")
}

fn item(e: &PendingDeletion) -> Item {
    let ts = domain::retention::stored_instant;
    Item::from([
        ("pk".to_owned(), s(OUTBOX_PK)),
        ("sk".to_owned(), s(sk(&e.call_id))),
        ("kind".to_owned(), s("provider_deletion")),
        ("call_id".to_owned(), s(e.call_id.clone())),
        ("attempts".to_owned(), n(e.attempts)),
        ("queued_at".to_owned(), s(ts(e.queued_at))),
        ("next_attempt_at".to_owned(), s(ts(e.next_attempt_at))),
        ("incident".to_owned(), AttributeValue::Bool(e.incident)),
        ("ttl".to_owned(), n(e.expires_at().timestamp())),
    ])
}

fn time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(item, name)?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn entry(item: &Item) -> Option<PendingDeletion> {
    Some(PendingDeletion {
        call_id: text(item, "call_id")?.to_owned(),
        attempts: item.get("attempts")?.as_n().ok()?.parse().ok()?,
        queued_at: time(item, "queued_at")?,
        next_attempt_at: time(item, "next_attempt_at")?,
        incident: item
            .get("incident")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    })
}

pub struct DynamoOutbox {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoOutbox {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { ddb, table }
    }
}

#[async_trait]
impl ProviderOutbox for DynamoOutbox {
    async fn enqueue(&self, entries: &[PendingDeletion]) -> Result<(), StoreError> {
        for e in entries {
            let put = self
                .ddb
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item(e)))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => {}
                // Already queued: it keeps its attempts and backoff.
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(failure("outbox_enqueue", err)),
            }
        }
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<PendingDeletion>, StoreError> {
        let items = query_partition(&self.ddb, &self.table, OUTBOX_PK).await?;
        let now = Utc::now().timestamp();
        Ok(items
            .iter()
            // Past its TTL but not yet removed: gone (R3.3).
            .filter(|i| {
                i.get("ttl")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_none_or(|ttl| ttl > now)
            })
            .filter_map(entry)
            .collect())
    }

    async fn update(&self, e: &PendingDeletion) -> Result<(), StoreError> {
        // Only while it is still queued: a concurrent success removed it for good.
        let put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(e)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(failure("outbox_update", err)),
        }
    }

    /// Removes the entry. A call the telephony worker handed over (R2.9: marked
    /// `provider_deletion_queued_at`) and still held here first records its deletion at the
    /// provider, audited `call.deleted_at_provider` as when the worker deleted it; the entry
    /// goes last, so a failure leaves it for the next drain (the provider answers a deleted
    /// call with 404, which counts as done). Calls of erased subjects are not marked.
    async fn remove(&self, call_id: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        let marked = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(crate::calls::call_pk(call_id)))
            .key("sk", s(crate::calls::CALL_SK))
            .update_expression("SET provider_deleted_at = :now")
            .condition_expression(
                "attribute_exists(provider_deletion_queued_at) AND attribute_not_exists(provider_deleted_at)",
            )
            .expression_attribute_values(":now", s(domain::retention::stored_instant(now)))
            .send()
            .await;
        if crate::dynamo::update_applied("outbox_mark_call", marked)? {
            crate::dynamo::put_audit(
                &self.ddb,
                &self.table,
                "provider-outbox",
                "call.deleted_at_provider",
                None,
                Some(call_id),
                now,
            )
            .await?;
        }
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(OUTBOX_PK))
            .key("sk", s(sk(call_id)))
            .send()
            .await
            .map_err(|e| failure("outbox_remove", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_stored_with_its_ttl_and_read_back_the_same() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = PendingDeletion::new("call_a", now).failed(now);
        let i = item(&e);
        assert_eq!(entry(&i), Some(e.clone()));
        assert_eq!(
            i["ttl"].as_n().unwrap(),
            &e.expires_at().timestamp().to_string()
        );
        assert!(i.keys().all(|k| !k.contains("lead")), "no subject: {i:?}");
    }
}
