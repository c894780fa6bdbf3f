//! The follow-up items of the sales handoff (issue 17) in the table; the format is
//! described at `usecases::sales::ports`. The sales function's role may read these
//! items, query the `by-due` index under [`DUE_KIND`] and update `done_at`; nothing else
//! of a subject's partition is written here.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};
use serde::Serialize;

use domain::LeadId;
use usecases::ports::StoreError;
use usecases::sales::ports::{FollowUpItem, FollowUpStore, PutOutcome, QueueEntry};

use crate::dynamo::{
    corrupt, failed_conditions, failure, lead_pk, not_erased, put, put_audit, s, schema, text,
    to_item, ts, update_applied, Item,
};

/// Sort key of the follow-up item in the subject's partition.
pub const FOLLOWUP_SK: &str = "FOLLOWUP";
/// The item's kind.
pub const FOLLOWUP_KIND: &str = domain::sales::FOLLOWUP_KIND;
/// The `by-due` index partition of open follow-ups.
pub const DUE_KIND: &str = "followup";

#[derive(Serialize)]
struct FollowUpRow<'a> {
    pk: String,
    sk: &'static str,
    kind: &'static str,
    lead_id: String,
    call_id: &'a str,
    ready_at: String,
    #[serde(with = "serde_bytes")]
    sealed: &'a [u8],
    /// The sparse due index's keys while open.
    due_kind: &'static str,
    due_at: String,
    ttl: i64,
}

#[derive(Debug, Clone)]
pub struct DynamoFollowUps {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoFollowUps {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

fn parse_time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    text(item, name)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn read_item(item: &Item) -> Result<FollowUpItem, StoreError> {
    #[derive(Debug, thiserror::Error)]
    #[error("follow-up item malformed")]
    struct Malformed;
    let lead_id = text(item, "lead_id").and_then(|l| LeadId::parse(l).ok());
    let call_id = text(item, "call_id");
    let ready_at = parse_time(item, "ready_at");
    let sealed = item.get("sealed").and_then(|v| v.as_b().ok());
    let ttl = item
        .get("ttl")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0));
    match (lead_id, call_id, ready_at, sealed, ttl) {
        (Some(lead_id), Some(call_id), Some(ready_at), Some(sealed), Some(expires_at)) => {
            Ok(FollowUpItem {
                lead_id,
                call_id: call_id.to_owned(),
                ready_at,
                done_at: parse_time(item, "done_at"),
                sealed: sealed.as_ref().to_vec(),
                expires_at,
            })
        }
        _ => Err(corrupt("followup_read", Malformed)),
    }
}

#[async_trait]
impl FollowUpStore for DynamoFollowUps {
    async fn put(&self, item: &FollowUpItem) -> Result<PutOutcome, StoreError> {
        let row = FollowUpRow {
            pk: lead_pk(&item.lead_id),
            sk: FOLLOWUP_SK,
            kind: FOLLOWUP_KIND,
            lead_id: item.lead_id.to_string(),
            call_id: &item.call_id,
            ready_at: ts(item.ready_at),
            sealed: &item.sealed,
            due_kind: DUE_KIND,
            due_at: ts(item.ready_at),
            ttl: item.expires_at.timestamp(),
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(not_erased(&self.table, &item.lead_id)?)
            .transact_items(put(
                &self.table,
                to_item("followup_put", &row)?,
                // One per lead: a later call replaces it; the same call (a redelivery)
                // leaves it, with its `done_at`, as it is.
                Some("attribute_not_exists(pk) OR call_id <> :c"),
                &[(":c", s(item.call_id.as_str()))],
            )?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e) => match failed_conditions(&e).as_deref() {
                Some([0, ..]) => Ok(PutOutcome::Erased),
                Some([1]) => Ok(PutOutcome::Unchanged),
                _ => Err(failure("followup_put", e)),
            },
        }
    }

    async fn get(&self, lead: &LeadId) -> Result<Option<FollowUpItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(FOLLOWUP_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("followup_get", e))?;
        out.item().map(read_item).transpose()
    }

    async fn open(&self, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        let mut open = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(crate::calls::DUE_INDEX)
                .key_condition_expression("due_kind = :k")
                .expression_attribute_values(":k", s(DUE_KIND))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("followup_queue", e))?;
            for item in out.items() {
                match (
                    text(item, "lead_id").and_then(|l| LeadId::parse(l).ok()),
                    parse_time(item, "due_at"),
                ) {
                    (Some(lead_id), Some(ready_at)) => open.push(QueueEntry { lead_id, ready_at }),
                    _ => tracing::error!("malformed follow-up index entry skipped"),
                }
                if open.len() >= limit {
                    return Ok(open);
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(open);
            }
        }
    }

    async fn mark_done(&self, lead: &LeadId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(FOLLOWUP_SK))
            .update_expression("SET done_at = if_not_exists(done_at, :at) REMOVE due_kind, due_at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(ts(at)))
            .return_values(ReturnValue::None)
            .send()
            .await;
        update_applied("followup_done", result)
    }

    async fn remove(&self, lead: &LeadId) -> Result<(), StoreError> {
        remove_followup(&self.client, &self.table, lead).await
    }

    async fn audit(
        &self,
        actor: &str,
        action: &str,
        lead: Option<&LeadId>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        put_audit(&self.client, &self.table, actor, action, lead, None, at).await
    }
}

/// Deletes a subject's follow-up item, for the writers of the flags that exclude it
/// (restriction, objection, erasure pending).
pub async fn remove_followup(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    lead: &LeadId,
) -> Result<(), StoreError> {
    client
        .delete_item()
        .table_name(table)
        .key(schema::PK, s(lead_pk(lead)))
        .key(schema::SK, s(FOLLOWUP_SK))
        .send()
        .await
        .map_err(|e| failure("followup_remove", e))?;
    Ok(())
}
