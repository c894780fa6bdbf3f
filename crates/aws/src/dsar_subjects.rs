//! What the data-subject request use cases read and change of a subject, over the table:
//! the subject's partition and calls as typed records (`SubjectData`), the writes of the
//! rights (`SubjectRights`), the claims (`ClaimLookup`), and the provider's call deletion
//! (`CallProvider`). Item shapes stay here: a record's plain attributes become JSON with
//! the storage mechanics (keys, indexes, TTL, wrapped keys) left out; sealed attributes
//! are handed over sealed.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::calls::{attempt_keys, call_pk, calls_by_phone, calls_in_partition, CALL_SK};
use super::dsar::{counter_pk, request_pk, EXPORT_SK};
use super::dynamo::{
    batch_delete, failure, lead_pk, query_partition, s, schema, DynamoLeadStore, Item, CLAIM_SK,
    LEAD_SK, TOMBSTONE_KIND,
};
use super::retell::RetellClient;
use super::secrets::ProviderKeySource;
use domain::crypto::BlindIndex;
use domain::LeadId;
use usecases::dsar::ports::{
    CallProvider, CallRecord, ClaimLookup, Doomed, Flag, HeldRecord, ProviderError,
    RecordingRecord, SubjectData, SubjectRecords, SubjectRights,
};
use usecases::ports::{IdentifierKind, StoreError};

/// Sort key of a call's recording item.
const RECORDING_SK: &str = "RECORDING";

/// Attributes that are storage mechanics, not data about the subject.
const INTERNAL: &[&str] = &[
    "pk",
    "sk",
    "version",
    "completeness",
    schema::EXPIRY_PARTITION_ATTR,
    schema::EXPIRY_SORT_ATTR,
    schema::TTL,
    schema::EMAIL_INDEX_ATTR,
    schema::PHONE_INDEX_ATTR,
    "wrapped_key",
    "sealed_profile",
    // A scheduled call request's due-index keys (R7.2); the blind index as `phone_bidx`.
    "due_kind",
    "due_phone",
];

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// An attribute value as JSON.
fn attr_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Ss(v) => json!(v),
        AttributeValue::Ns(v) => json!(v),
        AttributeValue::L(l) => Value::Array(l.iter().map(attr_json).collect()),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), attr_json(v)))
                .collect::<Map<_, _>>(),
        ),
        _ => Value::Null,
    }
}

/// The plain attributes of an item as a JSON object, storage mechanics and sealed
/// (binary) values left out.
fn plain(item: &Item) -> Map<String, Value> {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    keys.into_iter()
        .filter(|k| !INTERNAL.contains(&k.as_str()) && !k.starts_with("sealed_"))
        .filter(|k| !matches!(item[*k], AttributeValue::B(_)))
        .map(|k| (k.clone(), attr_json(&item[k])))
        .collect()
}

/// The subjects in the table: partitions, calls, claims.
#[derive(Debug, Clone)]
pub struct DynamoSubjects {
    client: aws_sdk_dynamodb::Client,
    table: String,
    leads: DynamoLeadStore,
}

impl DynamoSubjects {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, key_table: String) -> Self {
        Self {
            leads: DynamoLeadStore::new(client.clone(), table.clone(), key_table),
            client,
            table,
        }
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, AttributeValue::S(pk))
            .key(schema::SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_call", e))?
            .item)
    }

    /// Deletes a call and its recording's record while the call is unlinked, at once;
    /// `false` when it was linked to a subject since (nothing deleted). Gone is fine.
    async fn delete_unlinked_call(&self, call_id: &str) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
        let delete = |sk: &str, condition: Option<&str>| {
            Delete::builder()
                .table_name(&self.table)
                .key(schema::PK, AttributeValue::S(call_pk(call_id)))
                .key(schema::SK, AttributeValue::S(sk.to_owned()))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(|e| super::dynamo::corrupt("delete_unlinked_call", e))
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(delete(CALL_SK, Some("attribute_not_exists(lead_id)"))?)
            .transact_items(delete(RECORDING_SK, None)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if super::dynamo::failed_conditions(&e).is_some_and(|f| f.contains(&0)) => {
                tracing::warn!("a call linked since was left alone");
                Ok(false)
            }
            Err(e) => Err(failure("delete_unlinked_call", e)),
        }
    }

    /// An update of an item that may be gone already: gone is fine.
    async fn update_unless_missing(
        &self,
        operation: &'static str,
        request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<(), StoreError> {
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(failure(operation, e)),
        }
    }
}

#[async_trait]
impl SubjectData for DynamoSubjects {
    async fn subject(&self, lead: &LeadId) -> Result<Option<SubjectRecords>, StoreError> {
        let partition = query_partition(&self.client, &self.table, &lead_pk(lead)).await?;
        let Some(profile) = partition.iter().find(|i| text(i, "kind") == Some("lead")) else {
            return Ok(None);
        };
        let email_index = text(profile, schema::EMAIL_INDEX_ATTR).map(str::to_owned);
        let phone_index = text(profile, schema::PHONE_INDEX_ATTR).map(str::to_owned);
        // The subject's calls through its partition (pointers and call requests), not
        // through today's number: a number rectified since, or given to someone else,
        // changes nothing about whose calls they are.
        let calls = calls_in_partition(&partition);
        let records = partition
            .iter()
            // The erasure tombstone is storage mechanics, and stays when the rest goes.
            .filter(|i| text(i, "kind") != Some(TOMBSTONE_KIND))
            .map(|i| HeldRecord {
                key: text(i, schema::SK).unwrap_or_default().to_owned(),
                kind: text(i, "kind").unwrap_or("other").to_owned(),
                fields: plain(i),
                sealed: i
                    .get("sealed")
                    .and_then(|v| v.as_b().ok())
                    .map(|b| b.as_ref().to_vec()),
            })
            .collect();
        Ok(Some(SubjectRecords {
            lead: *lead,
            email_index: email_index.map(BlindIndex::from_stored),
            phone_index: phone_index.map(BlindIndex::from_stored),
            records,
            calls,
        }))
    }

    async fn call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(item) = self.get(call_pk(call_id), CALL_SK).await? else {
            return Ok(None);
        };
        let mut sealed: Vec<(String, Vec<u8>)> = item
            .iter()
            .filter_map(
                |(name, value)| match (name.strip_prefix("sealed_"), value) {
                    (Some(field), AttributeValue::B(b)) => {
                        Some((field.to_owned(), b.as_ref().to_vec()))
                    }
                    _ => None,
                },
            )
            .collect();
        sealed.sort_by(|a, b| a.0.cmp(&b.0));
        let recording = self
            .get(call_pk(call_id), RECORDING_SK)
            .await?
            .map(|r| RecordingRecord {
                object_key: text(&r, "object_key").map(str::to_owned),
                fields: plain(&r),
            });
        Ok(Some(CallRecord {
            id: call_id.to_owned(),
            fields: plain(&item),
            sealed,
            transcript_key: text(&item, "transcript_key").map(str::to_owned),
            provider_deleted: item.contains_key("provider_deleted_at"),
            recording,
        }))
    }

    async fn unlinked_calls(
        &self,
        phone_index: &BlindIndex,
    ) -> Result<Vec<CallRecord>, StoreError> {
        // The index is keys-only: each call is read (consistently) to see whether anyone
        // holds it.
        let mut calls = Vec::new();
        for id in calls_by_phone(&self.client, &self.table, phone_index.as_str()).await? {
            if let Some(call) = self.call(&id).await? {
                if !call.fields.contains_key("lead_id") {
                    calls.push(call);
                }
            }
        }
        Ok(calls)
    }
}

#[async_trait]
impl SubjectRights for DynamoSubjects {
    async fn delete(&self, doomed: Vec<Doomed>) -> Result<usize, StoreError> {
        let mut keys = Vec::new();
        let mut unlinked = 0;
        for d in doomed {
            match d {
                Doomed::Call(call) => {
                    keys.push((call_pk(&call), CALL_SK.to_owned()));
                    keys.push((call_pk(&call), RECORDING_SK.to_owned()));
                }
                Doomed::Recording(call) => keys.push((call_pk(&call), RECORDING_SK.to_owned())),
                Doomed::UnlinkedCall(call) => {
                    if self.delete_unlinked_call(&call).await? {
                        unlinked += 2;
                    }
                }
                Doomed::Held(lead, key) => keys.push((lead_pk(&lead), key)),
                Doomed::Export(id) => keys.push((request_pk(&id), EXPORT_SK.to_owned())),
                Doomed::Claim(kind, index) => {
                    let prefix = match kind {
                        IdentifierKind::Phone => "PHONE#",
                        _ => "EMAIL#",
                    };
                    keys.push((format!("{prefix}{}", index.as_str()), CLAIM_SK.to_owned()));
                }
                Doomed::Attempts(lead) => {
                    let partition =
                        query_partition(&self.client, &self.table, &lead_pk(&lead)).await?;
                    keys.extend(attempt_keys(&self.client, &self.table, &lead, &partition).await?);
                }
                Doomed::Counters(index) => {
                    let pk = counter_pk(&index);
                    for c in query_partition(&self.client, &self.table, &pk).await? {
                        keys.push((
                            pk.clone(),
                            text(&c, schema::SK).unwrap_or_default().to_owned(),
                        ));
                    }
                }
            }
        }
        Ok(unlinked + batch_delete(&self.client, &self.table, keys, None).await?)
    }

    async fn shred_key(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.leads.shred_key(lead).await
    }

    async fn set_flag(&self, lead: &LeadId, flag: Flag) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("SET #f = :t ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#f", flag.attribute())
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        self.update_unless_missing("set_flag", request).await?;
        // Issue 17: a restricted, objecting or erasure-pending subject leaves the sales
        // follow-up queue (R4.7, R4.8); after the flag, so a retry finds it set.
        if flag != Flag::ConsentWithdrawn {
            crate::sales::remove_followup(&self.client, &self.table, lead).await?;
        }
        Ok(())
    }

    async fn remove_followup(&self, lead: &LeadId) -> Result<(), StoreError> {
        crate::sales::remove_followup(&self.client, &self.table, lead).await
    }

    async fn lift_restriction(&self, lead: &LeadId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("REMOVE restricted ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(|e| failure("lift_restriction", e))?;
        Ok(())
    }

    async fn lift_erasure_pending(&self, lead: &LeadId) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("REMOVE erasure_pending ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        self.update_unless_missing("lift_erasure_pending", request)
            .await
    }

    async fn withdraw_recording(&self, call_id: &str) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression(
                "SET recording_state = :w REMOVE transcript_key, sealed_recording_url, recording_key",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":w", s("withdrawn"));
        self.update_unless_missing("withdraw_call", request).await
    }

    async fn rectify(
        &self,
        lead: &LeadId,
        sealed_profile: Vec<u8>,
        email: Option<(&BlindIndex, &BlindIndex)>,
        phone: Option<(&BlindIndex, &BlindIndex)>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.leads
            .rectify(lead, sealed_profile, email, phone, at)
            .await
    }
}

#[async_trait]
impl ClaimLookup for DynamoSubjects {
    async fn claim_holder(
        &self,
        kind: IdentifierKind,
        index: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<Option<LeadId>, StoreError> {
        self.leads.claim_holder(kind, index, now).await
    }
}

#[async_trait]
impl ClaimLookup for DynamoLeadStore {
    async fn claim_holder(
        &self,
        kind: IdentifierKind,
        index: &BlindIndex,
        now: DateTime<Utc>,
    ) -> Result<Option<LeadId>, StoreError> {
        DynamoLeadStore::claim_holder(self, kind, index, now).await
    }
}

/// The telephony provider's call deletion (Art. 19) with the current API key.
pub struct RetellCallProvider {
    pub client: RetellClient,
    pub keys: ProviderKeySource,
}

impl RetellCallProvider {
    /// The provider at `base_url` with the API key from the secret `secret_arn`.
    pub fn from_sdk(
        aws: &aws_config::SdkConfig,
        base_url: &str,
        secret_arn: String,
    ) -> Result<Self, &'static str> {
        Ok(Self {
            client: crate::retell::RetellClient::new(base_url)
                .map_err(|_| "the provider HTTP client cannot be built")?,
            keys: crate::secrets::ProviderKeySource::new(
                aws_sdk_secretsmanager::Client::new(aws),
                secret_arn,
            ),
        })
    }
}

#[async_trait]
impl CallProvider for RetellCallProvider {
    async fn delete_calls(&self, call_ids: &[String]) -> Result<usize, ProviderError> {
        let keys = self.keys.keys().await?;
        for call in call_ids {
            self.client
                .delete_call(&keys.current, call)
                .await
                .map_err(|e| {
                    let retry = e.retry();
                    tracing::warn!(?retry, "provider call failed");
                    StoreError {
                        operation: "delete_call_at_provider",
                        retry,
                        source: Some(Box::new(e)),
                    }
                })?;
        }
        Ok(call_ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_leaves_out_storage_mechanics_and_sealed_values() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("CALL#x".into()));
        item.insert("ttl".into(), AttributeValue::N("1".into()));
        item.insert("phone_bidx".into(), AttributeValue::S("ab".into()));
        item.insert("sealed_call".into(), AttributeValue::B(vec![1].into()));
        item.insert("duration_ms".into(), AttributeValue::N("61000".into()));
        let p = plain(&item);
        assert_eq!(p.len(), 1);
        assert_eq!(p["duration_ms"], json!(61000));
    }
}
