//! The do-not-call list in the table: one item per listed number,
//! `DNC#<phone blind index>` / `DNC`, holding `listed_at` (first listing), `sources` (a
//! string set), and `lifted_at` / `lifted_by` while lifted; nothing else (R7.1).
//!
//! The item belongs to no subject: it is outside every `LEAD#` partition, carries no
//! `ttl`, no `expires_at` and no expiry-index attributes, so neither an erasure (which
//! deletes a subject's partition, claims, counters and attempts) nor the retention sweep
//! (which works from the expiry index) nor DynamoDB's TTL ever removes it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::calls::{call_pk, CALL_SK, SIGNUP_DENIED_ATTR};
use super::dynamo::{failure, lead_pk, s, schema, text, ts, update_applied, LEAD_SK};
use domain::crypto::BlindIndex;
use domain::LeadId;
use usecases::dnc::{DncEntry, DncSource, DoNotCall, LiftReason};
use usecases::dsar::ports::Flag;
use usecases::ports::StoreError;
use usecases::telephony::ports::WORKER_STATES;
use usecases::telephony::tools::{CallLines, LineCall};

/// Partition key prefix of the list's items.
pub const DNC_PREFIX: &str = "DNC#";
/// Sort key of a list item.
pub const DNC_SK: &str = "DNC";
/// The `kind` of a list item.
pub const DNC_KIND: &str = "do_not_call";

pub fn dnc_pk(phone: &BlindIndex) -> String {
    format!("{DNC_PREFIX}{}", phone.as_str())
}

#[derive(Clone)]
pub struct DynamoDoNotCall {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDoNotCall {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

fn parse_time(v: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[async_trait]
impl DoNotCall for DynamoDoNotCall {
    async fn entry(&self, phone: &BlindIndex) -> Result<Option<DncEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(dnc_pk(phone)))
            .key(schema::SK, s(DNC_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("dnc_entry", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        // An entry whose date cannot be read still lists the number: never call on doubt.
        let listed_at = parse_time(text(&item, "listed_at")).unwrap_or(DateTime::UNIX_EPOCH);
        let sources = item
            .get("sources")
            .and_then(|v| v.as_ss().ok())
            .map(|ss| ss.iter().filter_map(|c| DncSource::parse(c)).collect())
            .unwrap_or_default();
        let lifted = match (
            parse_time(text(&item, "lifted_at")),
            text(&item, "lifted_by").and_then(LiftReason::parse),
        ) {
            (Some(at), Some(reason)) => Some((at, reason)),
            _ => None,
        };
        Ok(Some(DncEntry {
            listed_at,
            sources,
            lifted,
        }))
    }

    async fn list(
        &self,
        phone: &BlindIndex,
        source: DncSource,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Written only when it changes something: a new entry, a new source, or a lifted
        // entry listed again (a replay writes nothing and is not audited twice).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(dnc_pk(phone)))
            .key(schema::SK, s(DNC_SK))
            .update_expression(
                "SET kind = :kind, listed_at = if_not_exists(listed_at, :at) \
                 ADD sources :src REMOVE lifted_at, lifted_by",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR NOT contains(sources, :one) \
                 OR attribute_exists(lifted_at)",
            )
            .expression_attribute_values(":kind", s(DNC_KIND))
            .expression_attribute_values(":at", s(ts(at)))
            .expression_attribute_values(":src", AttributeValue::Ss(vec![source.code().to_owned()]))
            .expression_attribute_values(":one", s(source.code()))
            .send()
            .await;
        update_applied("dnc_list", result)
    }

    async fn lift(
        &self,
        phone: &BlindIndex,
        reason: LiftReason,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(dnc_pk(phone)))
            .key(schema::SK, s(DNC_SK))
            .update_expression("SET lifted_at = :at, lifted_by = :by")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(lifted_at)")
            .expression_attribute_values(":at", s(ts(at)))
            .expression_attribute_values(":by", s(reason.code()))
            .send()
            .await;
        update_applied("dnc_lift", result)
    }
}

/// The call items' side of the agent's tool calls (`usecases::telephony::tools`): reads
/// the stored call, marks it "never signed up" or confirmed, and sets the lead's
/// objection flag. Only `GetItem` and `UpdateItem`: the telephony webhook's role.
#[derive(Clone)]
pub struct DynamoCallLines {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCallLines {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    async fn call_item(&self, call_id: &str) -> Result<Option<super::dynamo::Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("line_call", e))?;
        Ok(out.item)
    }
}

/// Attempts of the conditional mark before giving up (the provider retries the tool).
const MARK_ATTEMPTS: u32 = 5;

#[async_trait]
impl CallLines for DynamoCallLines {
    async fn line_call(&self, call_id: &str) -> Result<Option<LineCall>, StoreError> {
        let Some(item) = self.call_item(call_id).await? else {
            return Ok(None);
        };
        Ok(Some(LineCall {
            lead_id: text(&item, "lead_id").and_then(|l| LeadId::parse(l).ok()),
            phone_index: text(&item, schema::PHONE_INDEX_ATTR)
                .map(|p| BlindIndex::from_stored(p.to_owned())),
            inbound: text(&item, "direction") == Some("inbound"),
        }))
    }

    async fn deny_signup(&self, call_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        for attempt in 0..MARK_ATTEMPTS {
            if attempt > 0 {
                super::dynamo::backoff(attempt).await;
            }
            let Some(item) = self.call_item(call_id).await? else {
                return Ok(false);
            };
            if item.contains_key(SIGNUP_DENIED_ATTR) {
                return Ok(false);
            }
            // The recording state the worker reached stays (the erasure takes what it
            // stored); any other becomes `not_kept`, on condition that it did not change.
            let state = text(&item, "recording_state").map(str::to_owned);
            let owned_by_worker = state.as_deref().is_some_and(|c| WORKER_STATES.contains(&c));
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(schema::PK, s(call_pk(call_id)))
                .key(schema::SK, s(CALL_SK))
                .expression_attribute_names("#d", SIGNUP_DENIED_ATTR)
                .expression_attribute_values(":at", s(ts(at)))
                .expression_attribute_values(":one", AttributeValue::N("1".into()));
            let mut condition = "attribute_exists(pk) AND attribute_not_exists(#d)".to_owned();
            if owned_by_worker {
                request = request.update_expression(
                    "SET #d = :at REMOVE transcript_key, sealed_recording_url ADD version :one",
                );
            } else {
                request = request
                    .update_expression(
                        "SET #d = :at, recording_state = :nk \
                         REMOVE transcript_key, sealed_recording_url ADD version :one",
                    )
                    .expression_attribute_values(":nk", s("not_kept"));
                match state {
                    Some(current) => {
                        condition.push_str(" AND recording_state = :cur");
                        request = request.expression_attribute_values(":cur", s(current));
                    }
                    None => condition.push_str(" AND attribute_not_exists(recording_state)"),
                }
            }
            let result = request.condition_expression(condition).send().await;
            if update_applied("deny_signup", result)? {
                return Ok(true);
            }
        }
        Err(StoreError {
            operation: "deny_signup",
            retry: usecases::ports::Retry::Transient,
            source: None,
        })
    }

    async fn confirm_signup(
        &self,
        call_id: &str,
        agent_version: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut evidence = std::collections::HashMap::new();
        evidence.insert("at".to_owned(), s(ts(at)));
        if let Some(v) = agent_version {
            evidence.insert("agent_version".to_owned(), s(v));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression("SET signup_confirmed = :e")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(signup_confirmed)")
            .expression_attribute_values(":e", AttributeValue::M(evidence))
            .send()
            .await;
        update_applied("confirm_signup", result)
    }

    async fn object(&self, lead: &LeadId, _at: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("SET #f = :t ADD version :one")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#f) OR #f = :f)")
            .expression_attribute_names("#f", Flag::Objected.attribute())
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        update_applied("object", result)
    }
}
