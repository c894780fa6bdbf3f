//! Call items in the table: `CALL#<provider call id>` / `CALL`.
//!
//! Each webhook is merged into the item with an optimistic version check, so duplicated,
//! re-ordered and concurrent deliveries converge (R2.3): the most complete event's view
//! (`call_analyzed` ⊇ `call_ended` ⊇ `call_started`) wins, the set of events seen is a
//! union, and attributes other writers own (the live consent answer, the worker's
//! recording state) are left alone.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::dynamo::{
    audit_item, backoff, failure, lead_pk, n, not_erased, put, put_audit, s, schema, to_item, ts,
    update, Item, LEAD_SK,
};
use domain::retention::Retention;
use domain::LeadId;
use domain::RetentionClass;
use usecases::ports::{CallState, Retry, StoreError};
use usecases::telephony::ingest::MAX_COPY_ATTEMPTS;
use usecases::telephony::ports::{
    AuditTrail, CallFacts, CallStore, DueRequest, RecordingRecord, RecordingSettlement, StoredCall,
    WORKER_STATES,
};
pub use usecases::telephony::ports::{
    CallProjection, CallRequestResult, CallRequests, Claim, MergeOutcome, ScheduledRequest,
};

pub fn call_pk(call_id: &str) -> String {
    format!("CALL#{call_id}")
}
pub const CALL_SK: &str = "CALL";

/// Attempts of the optimistic merge before giving up (the provider then retries).
const MAX_ATTEMPTS: u32 = 8;

/// Set on a call whose person said they never signed up (`usecases::telephony::tools`):
/// a merge then keeps no transcript pointer and no recording URL.
pub const SIGNUP_DENIED_ATTR: &str = "signup_denied_at";

/// The kind of a call's pointer in its subject's partition (`LEAD#<id>` / `CALL#<call>`).
pub const CALL_LINK_KIND: &str = "call_link";

/// A call's pointer in its subject's partition: how a subject's calls are found (not
/// through today's number). Lives as long as the call item.
#[derive(Serialize)]
struct CallLinkItem<'a> {
    pk: String,
    sk: String,
    kind: &'static str,
    lead_id: String,
    call_id: &'a str,
    expires_at: String,
    /// `schema::TTL`
    ttl: i64,
}

/// The calls a subject's partition points at: call pointers, the calls its call
/// requests placed (`CALLREQ#…` markers) and the lead's last call; each once, sorted.
pub fn calls_in_partition(partition: &[Item]) -> Vec<String> {
    let mut ids: Vec<String> = partition
        .iter()
        .filter_map(|i| match text(i, "kind") {
            Some(CALL_LINK_KIND) | Some("call_request") => text(i, "call_id"),
            Some("lead") => text(i, "last_call_id"),
            _ => None,
        })
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The plain attributes an event sets on the call item (`None`: not set by this event).
#[derive(Serialize)]
struct PlainAttributes<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    call_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnection_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<i64>,
    linked: bool,
    /// Written only when restricted: a later event never clears it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    processing_restricted: bool,
    /// `schema::PHONE_INDEX_ATTR`
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_bidx: Option<&'a str>,
    expires_at: String,
    /// `schema::EXPIRY_SORT_ATTR`
    exp_at: i64,
    /// `schema::TTL`
    ttl: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_granted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disclosure_ok: Option<bool>,
    /// R7.5: where the kept recording begins (ms from the call's start).
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_cut_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript_key: Option<&'a str>,
}

impl<'a> PlainAttributes<'a> {
    fn of(f: &'a CallFacts) -> Self {
        Self {
            call_type: f.call_type.as_deref(),
            call_status: f.call_status.as_deref(),
            direction: f.direction.as_deref(),
            agent_id: f.agent_id.as_deref(),
            agent_version: f.agent_version.as_deref(),
            disconnection_reason: f.disconnection_reason.as_deref(),
            start_at: f.start_at.map(ts),
            end_at: f.end_at.map(ts),
            duration_ms: f.duration_ms,
            linked: f.linked,
            processing_restricted: f.processing_restricted,
            phone_bidx: f.phone_index.as_ref().map(|i| i.as_str()),
            expires_at: ts(f.retention.expires_at),
            exp_at: f.retention.expires_at.timestamp(),
            ttl: f.retention.ttl,
            consent_granted: f.consent.as_ref().map(|c| c.granted),
            consent_source: f.consent.as_ref().map(|c| c.source_code()),
            consent_decided_at: f.consent.as_ref().map(|c| ts(c.decided_at)),
            disclosure_ok: f.consent.as_ref().map(|c| c.disclosure_ok),
            consent_cut_ms: f.consent.as_ref().and_then(|c| c.cut_ms),
            transcript_key: f.transcript_key.as_deref(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoCallStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl DynamoCallStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    pub async fn get(&self, call_id: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_call", e))?;
        Ok(out.item)
    }

    /// Merges one event into the call item.
    pub async fn merge(&self, p: &CallProjection) -> Result<MergeOutcome, StoreError> {
        let plain = to_item("merge_call", &PlainAttributes::of(&p.facts))?;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let existing = self.get(&p.call_id).await?;
            let version = existing.as_ref().and_then(|i| get_n(i, "version"));
            let stored_completeness = existing
                .as_ref()
                .and_then(|i| get_n(i, "completeness"))
                .unwrap_or(0);
            let applies = i64::from(p.completeness) >= stored_completeness;
            // R7.4: a call marked "never signed up" keeps no content, whatever the event
            // decided before the mark was set (the mark bumps the version, so a merge that
            // raced it reads it here on its retry).
            let denied = existing
                .as_ref()
                .is_some_and(|i| i.contains_key(SIGNUP_DENIED_ATTR));
            let kept_content =
                |name: &str| denied && matches!(name, "transcript_key" | "sealed_recording_url");
            let condition = match version {
                Some(_) => "version = :v",
                None => "attribute_not_exists(version)",
            };
            let mut cond_values = vec![
                (":one", n(1)),
                (":event", AttributeValue::Ss(vec![p.event.to_owned()])),
            ];
            if let Some(v) = version {
                cond_values.push((":v", n(v)));
            }
            let mut set: Vec<(&str, AttributeValue)> = vec![
                ("kind", s("call")),
                ("call_id", s(p.call_id.clone())),
                ("updated_at", s(super::dynamo::ts(p.at))),
            ];
            let mut remove = Vec::new();
            if applies {
                set.push(("completeness", n(p.completeness)));
                set.push(("last_event", s(p.event)));
                if let Some(lead) = &p.lead_id {
                    set.push(("lead_id", s(lead.to_string())));
                }
                set.extend(
                    plain
                        .iter()
                        .filter(|(k, _)| !kept_content(k))
                        .map(|(k, v)| (k.as_str(), v.clone())),
                );
                set.extend(
                    p.sealed
                        .iter()
                        .filter(|(k, _)| !kept_content(k))
                        .map(|(k, v)| (*k, AttributeValue::B(v.clone().into()))),
                );
                remove.extend(p.remove.iter().copied());
                if denied {
                    for name in ["transcript_key", "sealed_recording_url"] {
                        if !remove.contains(&name) {
                            remove.push(name);
                        }
                    }
                }
                let current_state = existing
                    .as_ref()
                    .and_then(|i| i.get("recording_state"))
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str);
                let state = p
                    .recording_state
                    .map(|s| if denied { "not_kept" } else { s });
                if let Some(state) = state {
                    if !current_state.is_some_and(|c| WORKER_STATES.contains(&c)) {
                        set.push(("recording_state", s(state)));
                    }
                }
            }
            let mut extra = vec!["ADD events :event, version :one"];
            let remove_clause;
            if !remove.is_empty() {
                remove_clause = format!("REMOVE {}", remove.join(", "));
                extra.push(&remove_clause);
            }
            let mut items = vec![update_with_clauses(
                &self.table,
                call_pk(&p.call_id),
                CALL_SK,
                &set,
                &extra,
                condition,
                &cond_values,
            )?];
            // Index 1: the named subject was not erased (checked with the write, so an
            // erasure that started after our read wins).
            let erased_check = match &p.named_lead {
                Some(named) => {
                    items.push(not_erased(&self.table, named)?);
                    Some(1)
                }
                None => None,
            };
            if applies {
                if let Some(lead) = &p.lead_id {
                    // The call's pointer in its subject's partition, in the same write:
                    // an erasure (tombstone first, then a consistent read of the
                    // partition) finds every call stored before it, whatever the
                    // subject's number is now.
                    let link = CallLinkItem {
                        pk: lead_pk(lead),
                        sk: call_pk(&p.call_id),
                        kind: CALL_LINK_KIND,
                        lead_id: lead.to_string(),
                        call_id: &p.call_id,
                        expires_at: ts(p.facts.retention.expires_at),
                        ttl: p.facts.retention.ttl,
                    };
                    items.push(put(&self.table, to_item("merge_call", &link)?, None, &[])?);
                }
                for action in &p.audit {
                    let audit = audit_item(
                        "telephony",
                        action,
                        p.lead_id.as_ref(),
                        Some(&p.call_id),
                        p.at,
                    );
                    items.push(put(
                        &self.table,
                        to_item("merge_call", &audit)?,
                        Some("attribute_not_exists(pk)"),
                        &[],
                    )?);
                }
            }
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => {
                    return Ok(if applies {
                        MergeOutcome::Applied
                    } else {
                        MergeOutcome::Superseded
                    })
                }
                Err(err) => match super::dynamo::failed_conditions(&err) {
                    None => return Err(failure("merge_call", err)),
                    Some(failed) if erased_check.is_some_and(|i| failed.contains(&i)) => {
                        return Ok(MergeOutcome::SubjectErased)
                    }
                    Some(_) => {}
                },
            }
        }
        Err(StoreError {
            operation: "merge_call",
            retry: Retry::Transient,
            source: None,
        })
    }

    /// Records the live answer of the agent's `record_consent` tool call.
    pub async fn record_live_consent(
        &self,
        call_id: &str,
        granted: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut consent = HashMap::new();
        consent.insert("granted".to_owned(), AttributeValue::Bool(granted));
        consent.insert("at".to_owned(), s(super::dynamo::ts(at)));
        // The answer may come before any webhook: then it creates the call item, which
        // carries the lead-class TTL from the start (a later merge sets the call's own).
        let r = Retention::of(RetentionClass::Lead, at);
        let set = [
            ("kind", s("call")),
            ("call_id", s(call_id)),
            ("live_consent", AttributeValue::M(consent)),
        ];
        let mut item = update_with_clauses(
            &self.table,
            call_pk(call_id),
            CALL_SK,
            &set,
            &[
                ", #ttl = if_not_exists(#ttl, :ttl), expires_at = if_not_exists(expires_at, :exp)",
                "ADD version :one",
            ],
            "attribute_not_exists(pk) OR attribute_exists(pk)",
            &[
                (":one", n(1)),
                (":ttl", n(r.ttl)),
                (":exp", s(ts(r.expires_at))),
            ],
        )?;
        if let Some(u) = item.update.as_mut() {
            u.expression_attribute_names
                .get_or_insert_with(Default::default)
                .insert("#ttl".to_owned(), schema::TTL.to_owned());
        }
        // An erased subject's call is not brought back by a late answer.
        let stored_lead = self
            .get(call_id)
            .await?
            .as_ref()
            .and_then(|i| text(i, "lead_id"))
            .and_then(|l| LeadId::parse(l).ok());
        let audit = audit_item(
            "telephony",
            "call.live_consent_recorded",
            None,
            Some(call_id),
            at,
        );
        let audit = put(
            &self.table,
            to_item("live_consent", &audit)?,
            Some("attribute_not_exists(pk)"),
            &[],
        )?;
        let mut items = vec![item, audit];
        if let Some(lead) = &stored_lead {
            items.push(not_erased(&self.table, lead)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if super::dynamo::failed_conditions(&e).is_some_and(|f| f.contains(&2)) => {
                Ok(())
            }
            Err(e) => Err(failure("live_consent", e)),
        }
    }
}

/// Like `dynamo::update`, but the extra clauses may be whole `ADD` / `REMOVE` clauses.
fn update_with_clauses(
    table: &str,
    pk: String,
    sk: &str,
    set: &[(&str, AttributeValue)],
    clauses: &[&str],
    condition: &str,
    values: &[(&str, AttributeValue)],
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    update(table, pk, sk, set, &[], condition, values).and_then(|item| {
        let Some(mut upd) = item.update else {
            return Err(StoreError {
                operation: "build_update",
                retry: Retry::Permanent,
                source: None,
            });
        };
        let expression = format!("{} {}", upd.update_expression, clauses.join(" "));
        upd.update_expression = expression;
        Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .update(upd)
            .build())
    })
}

/// The ids of the calls with a number, found through its blind index (`by-phone`),
/// linked or not; each once, sorted.
pub async fn calls_by_phone(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    phone_index: &str,
) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::new();
    let mut start = None;
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .index_name(schema::PHONE_INDEX)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", schema::PHONE_INDEX_ATTR)
            .expression_attribute_values(":p", s(phone_index))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| failure("query_calls", e))?;
        ids.extend(out.items().iter().filter_map(|i| {
            i.get(schema::PK)?
                .as_s()
                .ok()?
                .strip_prefix("CALL#")
                .map(str::to_owned)
        }));
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The call-attempt counters (`PHONE#<index>` / `ATTEMPT#…`, R1.6) a subject left on
/// the numbers its partition names (the lead's and its consent proofs'): they go with
/// the subject's erasure, though they would expire within two days.
pub async fn attempt_keys(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lead: &LeadId,
    partition: &[Item],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut numbers: Vec<&str> = partition
        .iter()
        .filter_map(|i| text(i, schema::PHONE_INDEX_ATTR))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let lead = lead.to_string();
    let mut keys = Vec::new();
    for number in numbers {
        let pk = format!("PHONE#{number}");
        let mut start = None;
        loop {
            let out = ddb
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :a)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":a", s(ATTEMPT_SK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("query_attempts", e))?;
            keys.extend(
                out.items()
                    .iter()
                    .filter(|i| text(i, "lead_id") == Some(lead.as_str()))
                    .filter_map(|i| text(i, schema::SK))
                    .map(|sk| (pk.clone(), sk.to_owned())),
            );
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    Ok(keys)
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// The worker's view of a call item. Lenient, attribute by attribute: an attribute of an
/// unexpected type reads as absent, as it always did.
fn stored_call(item: &Item) -> StoredCall {
    StoredCall {
        lead_id: text(item, "lead_id").and_then(|l| LeadId::parse(l).ok()),
        recording_state: text(item, "recording_state").map(str::to_owned),
        sealed_recording_url: item
            .get("sealed_recording_url")
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec()),
        end_at: text(item, "end_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        transcript_key: text(item, "transcript_key").map(str::to_owned),
        events: item
            .get("events")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default(),
        provider_deleted: item.contains_key("provider_deleted_at"),
        consent_cut_ms: get_n(item, "consent_cut_ms").and_then(|n| u64::try_from(n).ok()),
        signup_denied: item.contains_key(SIGNUP_DENIED_ATTR),
        sealed_call: item
            .get("sealed_call")
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec()),
        recording_consent: item
            .get("consent_granted")
            .and_then(|v| v.as_bool().ok())
            .copied(),
        start_at: text(item, "start_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// The record of a stored recording: `CALL#<id>` / `RECORDING`, in the expiry index.
#[derive(Serialize)]
struct RecordingItem<'a> {
    pk: String,
    sk: &'static str,
    kind: &'static str,
    call_id: &'a str,
    lead_id: String,
    object_key: &'a str,
    /// The call's transcript object, or null (deleted with the recording when due).
    transcript_key: Option<&'a str>,
    bytes: u64,
    sha256: &'a str,
    expires_at: String,
    /// `schema::EXPIRY_PARTITION_ATTR`
    exp_bucket: &'a str,
    /// `schema::EXPIRY_SORT_ATTR`
    exp_at: i64,
    /// `schema::TTL`
    ttl: i64,
}

impl<'a> RecordingItem<'a> {
    fn of(r: &'a RecordingRecord) -> Self {
        Self {
            pk: call_pk(&r.call_id),
            sk: "RECORDING",
            kind: "recording",
            call_id: &r.call_id,
            lead_id: r.lead_id.to_string(),
            object_key: &r.object_key,
            transcript_key: r.transcript_key.as_deref(),
            bytes: r.bytes,
            sha256: &r.sha256_hex,
            expires_at: ts(r.retention.expires_at),
            exp_bucket: &r.retention.bucket,
            exp_at: r.retention.expires_at.timestamp(),
            ttl: r.retention.ttl,
        }
    }
}

#[async_trait]
impl CallStore for DynamoCallStore {
    async fn get_call(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        Ok(self.get(call_id).await?.as_ref().map(stored_call))
    }

    async fn merge(&self, projection: &CallProjection) -> Result<MergeOutcome, StoreError> {
        DynamoCallStore::merge(self, projection).await
    }

    async fn record_live_consent(
        &self,
        call_id: &str,
        granted: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        DynamoCallStore::record_live_consent(self, call_id, granted, at).await
    }

    async fn count_recording_attempt(&self, call_id: &str) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression("ADD recording_attempts :one")
            // `ADD` would create a call that is gone (erased meanwhile) without a TTL.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                return Ok(MAX_COPY_ATTEMPTS)
            }
            Err(e) => return Err(failure("count_copy_attempt", e)),
        };
        Ok(out
            .attributes()
            .and_then(|a| get_n(a, "recording_attempts"))
            .unwrap_or(MAX_COPY_ATTEMPTS))
    }

    async fn settle_recording(
        &self,
        call_id: &str,
        settlement: &RecordingSettlement,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let extra: Vec<(&str, AttributeValue)> = match settlement {
            RecordingSettlement::Stored { object_key, bytes } => vec![
                ("recording_key", s(object_key.clone())),
                ("recording_bytes", n(bytes)),
            ],
            RecordingSettlement::Failed | RecordingSettlement::NotKept => Vec::new(),
        };
        let mut expr = "SET recording_state = :state, recording_state_at = :now".to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .expression_attribute_values(":state", s(settlement.state()))
            .expression_attribute_values(":now", s(ts(at)))
            .expression_attribute_values(":pending", s("pending"))
            .condition_expression("recording_state = :pending");
        for (i, (name, value)) in extra.into_iter().enumerate() {
            expr.push_str(&format!(", #e{i} = :e{i}"));
            update = update
                .expression_attribute_names(format!("#e{i}"), name)
                .expression_attribute_values(format!(":e{i}"), value);
        }
        match update.update_expression(expr).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(failure("set_recording_state", e)),
        }
    }

    async fn put_recording(&self, record: &RecordingRecord) -> Result<bool, StoreError> {
        // Only while the call is pending (a withdrawal or an erasure moved it on or
        // deleted it) and its subject has no tombstone.
        let pending = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(&record.call_id)))
            .key(schema::SK, s(CALL_SK))
            .condition_expression("recording_state = :pending")
            .expression_attribute_values(":pending", s("pending"))
            .build()
            .map_err(|e| super::dynamo::corrupt("put_recording", e))?;
        let items = vec![
            put(
                &self.table,
                to_item("put_recording", &RecordingItem::of(record))?,
                None,
                &[],
            )?,
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .condition_check(pending)
                .build(),
            not_erased(&self.table, &record.lead_id)?,
        ];
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if super::dynamo::failed_conditions(&e).is_some_and(|f| !f.is_empty()) => {
                Ok(false)
            }
            Err(e) => Err(failure("put_recording", e)),
        }
    }

    async fn mark_provider_deleted(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A call erased meanwhile stays gone (an update would create it, TTL-less).
        mark_if(
            &self.client,
            &self.table,
            "mark_provider_deleted",
            (call_pk(call_id), CALL_SK.to_owned()),
            "provider_deleted_at",
            "attribute_exists(pk)",
            at,
        )
        .await
    }

    async fn mark_provider_deletion_queued(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Once (a rewrite would be a stream record again), and never for a call erased
        // meanwhile.
        mark_if(
            &self.client,
            &self.table,
            "mark_provider_deletion_queued",
            (call_pk(call_id), CALL_SK.to_owned()),
            "provider_deletion_queued_at",
            "attribute_exists(pk) AND attribute_not_exists(provider_deletion_queued_at)",
            at,
        )
        .await
    }

    async fn calls_of_phone(&self, phone_index: &str) -> Result<Vec<String>, StoreError> {
        calls_by_phone(&self.client, &self.table, phone_index).await
    }
}

/// Sort keys of the attempt items in a number's partition (`ATTEMPT#<at>#<uuid>`).
const ATTEMPT_SK_PREFIX: &str = "ATTEMPT#";

/// Sets `attribute` to `at` on the item `key` while `condition` holds; a failed condition
/// (the item gone, or already marked) is an answer, not an error.
async fn mark_if(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    (pk, sk): (String, String),
    attribute: &str,
    condition: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let out = client
        .update_item()
        .table_name(table)
        .key(schema::PK, s(pk))
        .key(schema::SK, s(sk))
        .update_expression(format!("SET {attribute} = :at"))
        .condition_expression(condition)
        .expression_attribute_values(":at", s(ts(at)))
        .send()
        .await;
    crate::dynamo::update_applied(operation, out)?;
    Ok(())
}

/// The call requests of leads in the table: a marker per request in the lead's partition
/// (`LEAD#<id>` / `CALLREQ#<request>`), the lead's `call_state`, and one attempt item per
/// call in the number's claim partition (`PHONE#<index>` / `ATTEMPT#<at>#<uuid>`).
#[derive(Debug, Clone)]
pub struct DynamoCallRequests {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCallRequests {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

fn marker_sk(request: u32) -> String {
    format!("CALLREQ#{request:06}")
}

/// One attempt to call a number (R1.6), counted for 24 hours.
#[derive(Serialize)]
struct AttemptItem {
    pk: String,
    sk: String,
    kind: &'static str,
    lead_id: String,
    at: String,
    ttl: i64,
}

/// The result of one call request of a lead.
#[derive(Serialize)]
struct MarkerItem<'a> {
    pk: String,
    sk: String,
    kind: &'static str,
    state: CallState,
    at: String,
    ttl: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    /// Set only while `scheduled` (R7.2): the due index's partition ([`DUE_KIND`]), sort
    /// key (the due instant), and what the dispatcher needs to place the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    due_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lead_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<u32>,
}

/// The due index (R7.2): scheduled call requests by due instant. Sparse: only a marker in
/// state `scheduled` carries its keys; any later write of the marker drops them.
pub const DUE_INDEX: &str = "by-due";
/// The due index's one partition.
pub const DUE_KIND: &str = "call";

/// A lead's attempt count over its life (R7.3), in its partition: erased with it.
const LEAD_ATTEMPTS_SK: &str = "CALLATTEMPTS";
/// How long the count is kept after its last attempt: as long as a marker.
const LEAD_ATTEMPTS_KEPT: chrono::Duration = chrono::Duration::days(3 * 366);

/// The condition under which a marker may become `placing` or `scheduled`: none yet, or
/// in a state that placed nothing that may ring (not `placing`, `placed`, `unconfirmed`).
const CLAIMABLE: &str =
    "attribute_not_exists(pk) OR NOT (#state IN (:placing, :placed, :unconfirmed))";

impl DynamoCallRequests {
    /// Writes a marker while it is [`CLAIMABLE`] and the subject is not erased, then the
    /// lead's call state (unless a newer request replaced this one).
    async fn transition(
        &self,
        operation: &'static str,
        marker: &MarkerItem<'_>,
        lead: &LeadId,
        request: u32,
    ) -> Result<Claim, StoreError> {
        let item = to_item(operation, marker)?;
        let state_value = item
            .get("state")
            .cloned()
            .unwrap_or_else(|| AttributeValue::Null(true));
        let write = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIMABLE)
            .expression_attribute_names("#state", "state");
        let write = write
            .expression_attribute_values(":placing", s("placing"))
            .expression_attribute_values(":placed", s("placed"))
            .expression_attribute_values(":unconfirmed", s("unconfirmed"))
            .build()
            .map_err(|e| super::dynamo::corrupt("build_put", e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(write)
                    .build(),
            )
            .transact_items(not_erased(&self.table, lead)?)
            .send()
            .await;
        match out {
            Ok(_) => {}
            Err(e) => match super::dynamo::failed_conditions(&e) {
                Some(f) if f.contains(&1) => return Ok(Claim::Erased),
                Some(f) if f.contains(&0) => return Ok(Claim::Taken),
                _ => return Err(failure(operation, e)),
            },
        }
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("SET call_state = :state, call_state_at = :now")
            .condition_expression("call_request_count = :request")
            .expression_attribute_values(":state", state_value)
            .expression_attribute_values(":now", s(marker.at.clone()))
            .expression_attribute_values(":request", n(request))
            .send()
            .await;
        crate::dynamo::update_applied(operation, update)?;
        Ok(Claim::Done)
    }
}

#[async_trait]
impl CallRequests for DynamoCallRequests {
    async fn request_state(
        &self,
        lead: &LeadId,
        request: u32,
    ) -> Result<Option<CallState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(marker_sk(request)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_call_request", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| text(i, "state"))
            .and_then(|state| {
                serde_json::from_value(serde_json::Value::String(state.to_owned())).ok()
            }))
    }

    async fn attempts_since(
        &self,
        phone_index: &str,
        since: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            // The partition also holds the number's claim item: bound the range to attempts.
            .key_condition_expression("pk = :pk AND sk BETWEEN :since AND :until")
            // An attempt taken back (nothing rang) does not count.
            .filter_expression("attribute_not_exists(released_at)")
            .expression_attribute_values(":pk", s(format!("PHONE#{phone_index}")))
            .expression_attribute_values(":since", s(format!("{ATTEMPT_SK_PREFIX}{}", ts(since))))
            .expression_attribute_values(":until", s(format!("{ATTEMPT_SK_PREFIX}~")))
            .consistent_read(true)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|e| failure("count_attempts", e))?;
        Ok(out.count().max(0) as usize)
    }

    async fn record_attempt(
        &self,
        phone_index: &str,
        lead: &LeadId,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let item = AttemptItem {
            pk: format!("PHONE#{phone_index}"),
            sk: format!(
                "{ATTEMPT_SK_PREFIX}{}#{}",
                ts(at),
                uuid::Uuid::now_v7().simple()
            ),
            kind: "call_attempt",
            lead_id: lead.to_string(),
            at: ts(at),
            ttl: until.timestamp(),
        };
        let write = put(&self.table, to_item("record_attempt", &item)?, None, &[])?;
        // The lead's count over its life (R7.3), in the same write.
        let count = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_ATTEMPTS_SK))
            .update_expression(
                "SET kind = :kind, lead_id = :lead, #ttl = :ttl ADD attempt_count :one",
            )
            .expression_attribute_names("#ttl", schema::TTL)
            .expression_attribute_values(":kind", s("call_attempt_count"))
            .expression_attribute_values(":lead", s(lead.to_string()))
            .expression_attribute_values(":ttl", n((at + LEAD_ATTEMPTS_KEPT).timestamp()))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| super::dynamo::corrupt("build_update", e))?;
        let count = aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .update(count)
            .build();
        let out = self
            .client
            .transact_write_items()
            .set_transact_items(Some(vec![write, count, not_erased(&self.table, lead)?]))
            .send()
            .await;
        match out {
            // The attempt's name is its sort key (time and a random id, nothing personal).
            Ok(_) => Ok(Some(item.sk)),
            Err(e) if super::dynamo::failed_conditions(&e).is_some_and(|f| f.contains(&2)) => {
                Ok(None)
            }
            Err(e) => Err(failure("record_attempt", e)),
        }
    }

    async fn release_attempt(
        &self,
        phone_index: &str,
        attempt: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Only attempt items: the number's partition also holds its identifier claim.
        if !attempt.starts_with(ATTEMPT_SK_PREFIX) {
            return Err(StoreError {
                operation: "release_attempt",
                retry: Retry::Permanent,
                source: None,
            });
        }
        // Marked, not deleted: the worker's role may not delete in the number's
        // partition. The item keeps its TTL; a gone item stays gone.
        let pk = format!("PHONE#{phone_index}");
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(pk.clone()))
            .key(schema::SK, s(attempt))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("release_attempt", e))?
            .item;
        let Some(lead) = item.as_ref().and_then(|i| text(i, "lead_id")) else {
            return Ok(());
        };
        // The attempt and the lead's count together, once (R7.3).
        let mark = update(
            &self.table,
            pk,
            attempt,
            &[("released_at", s(ts(at)))],
            &[],
            "attribute_exists(pk) AND attribute_not_exists(released_at)",
            &[],
        )?;
        let count = update(
            &self.table,
            format!("LEAD#{lead}"),
            LEAD_ATTEMPTS_SK,
            &[],
            &["attempt_count = attempt_count - :one"],
            "attempt_count > :zero",
            &[(":zero", n(0)), (":one", n(1))],
        )?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(vec![mark, count]))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Released before, or the count gone with the subject: only the attempt.
            Err(e) if super::dynamo::failed_conditions(&e).is_some_and(|f| !f.is_empty()) => {
                mark_if(
                    &self.client,
                    &self.table,
                    "release_attempt",
                    (format!("PHONE#{phone_index}"), attempt.to_owned()),
                    "released_at",
                    "attribute_exists(pk) AND attribute_not_exists(released_at)",
                    at,
                )
                .await
            }
            Err(e) => Err(failure("release_attempt", e)),
        }
    }

    async fn finish_request(&self, r: &CallRequestResult) -> Result<bool, StoreError> {
        let state = MarkerItem {
            pk: lead_pk(&r.lead_id),
            sk: marker_sk(r.request),
            kind: "call_request",
            state: r.state,
            at: ts(r.at),
            ttl: r.marker_until.timestamp(),
            call_id: r.call_id.as_deref(),
            due_kind: None,
            due_at: None,
            due_phone: None,
            lead_id: None,
            request: None,
        };
        let marker = to_item("mark_call_request", &state)?;
        let state_value = marker
            .get("state")
            .cloned()
            .unwrap_or_else(|| AttributeValue::Null(true));
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(&r.lead_id)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("SET call_state = :state, call_state_at = :now")
            .condition_expression("call_request_count = :request")
            .expression_attribute_values(":state", state_value)
            .expression_attribute_values(":now", s(ts(r.at)))
            .expression_attribute_values(":request", n(r.request));
        if let Some(id) = &r.call_id {
            update = update
                .update_expression(
                    "SET call_state = :state, call_state_at = :now, last_call_id = :call",
                )
                .expression_attribute_values(":call", s(id));
        }
        match update.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(failure("finish_call_request", e)),
        }
        // The marker goes into the subject's partition: never after its erasure.
        let write = put(&self.table, marker, None, &[])?;
        put_unless_erased(
            &self.client,
            &self.table,
            "mark_call_request",
            write,
            &r.lead_id,
        )
        .await
    }

    async fn lead_attempts(&self, lead: &LeadId) -> Result<u32, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_ATTEMPTS_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("lead_attempts", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| get_n(i, "attempt_count"))
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0))
    }

    async fn schedule_request(&self, r: &ScheduledRequest) -> Result<Claim, StoreError> {
        let marker = MarkerItem {
            pk: lead_pk(&r.lead_id),
            sk: marker_sk(r.request),
            kind: "call_request",
            state: CallState::Scheduled,
            at: ts(r.at),
            ttl: r.marker_until.timestamp(),
            call_id: None,
            due_kind: Some(DUE_KIND),
            due_at: Some(ts(r.due_at)),
            due_phone: Some(&r.phone_index),
            lead_id: Some(r.lead_id.to_string()),
            request: Some(r.request),
        };
        self.transition("schedule_call_request", &marker, &r.lead_id, r.request)
            .await
    }

    async fn due_requests(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueRequest>, StoreError> {
        let mut due = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_kind = :k AND due_at <= :now")
                .expression_attribute_values(":k", s(DUE_KIND))
                .expression_attribute_values(":now", s(ts(now)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("due_call_requests", e))?;
            for item in out.items() {
                let parsed = (
                    text(item, "lead_id").and_then(|l| LeadId::parse(l).ok()),
                    get_n(item, "request").and_then(|r| u32::try_from(r).ok()),
                    text(item, "due_phone"),
                    text(item, "due_at").and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
                );
                if let (Some(lead_id), Some(request), Some(phone), Some(at)) = parsed {
                    due.push(DueRequest {
                        lead_id,
                        request,
                        phone_index: phone.to_owned(),
                        due_at: at.with_timezone(&Utc),
                    });
                } else {
                    tracing::error!("malformed due call request skipped");
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

    async fn claim_request(&self, r: &CallRequestResult) -> Result<Claim, StoreError> {
        let marker = MarkerItem {
            pk: lead_pk(&r.lead_id),
            sk: marker_sk(r.request),
            kind: "call_request",
            state: r.state,
            at: ts(r.at),
            ttl: r.marker_until.timestamp(),
            call_id: r.call_id.as_deref(),
            due_kind: None,
            due_at: None,
            due_phone: None,
            lead_id: None,
            request: None,
        };
        self.transition("claim_call_request", &marker, &r.lead_id, r.request)
            .await
    }
}

/// Writes `put` together with the check that `lead` has no tombstone ([`not_erased`]):
/// `false` when the subject was erased, and nothing was written.
async fn put_unless_erased(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    put: aws_sdk_dynamodb::types::TransactWriteItem,
    lead: &LeadId,
) -> Result<bool, StoreError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(vec![put, not_erased(table, lead)?]))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if super::dynamo::failed_conditions(&e).is_some_and(|f| f.contains(&1)) => Ok(false),
        Err(e) => Err(failure(operation, e)),
    }
}

/// The audit trail in the table (`AUDIT#<day>` partitions, append-only).
#[derive(Debug, Clone)]
pub struct DynamoAuditTrail {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAuditTrail {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

#[async_trait]
impl AuditTrail for DynamoAuditTrail {
    async fn record(
        &self,
        actor: &'static str,
        action: &str,
        lead: Option<&LeadId>,
        call_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        put_audit(&self.client, &self.table, actor, action, lead, call_id, at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::crypto::BlindIndex;
    use domain::retention::Retention;
    use domain::RetentionClass;
    use usecases::telephony::ports::ConsentRecord;
    use usecases::telephony::retell::compliance::ConsentSource;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn plain_attributes_keep_the_item_format_of_the_call() {
        let facts = CallFacts {
            call_type: Some("phone_call".into()),
            call_status: None,
            direction: Some("outbound".into()),
            agent_id: None,
            agent_version: None,
            disconnection_reason: None,
            start_at: Some(at("2026-03-01T10:00:00Z")),
            end_at: None,
            duration_ms: Some(61_000),
            linked: true,
            processing_restricted: false,
            phone_index: Some(BlindIndex::from_stored("ab12".into())),
            retention: Retention::of(RetentionClass::Lead, at("2026-03-01T10:00:00Z")),
            consent: Some(ConsentRecord {
                granted: true,
                source: ConsentSource::ToolCall,
                decided_at: at("2026-03-01T10:05:00Z"),
                disclosure_ok: false,
                cut_ms: Some(4200),
            }),
            transcript_key: None,
        };
        let item = to_item("test", &PlainAttributes::of(&facts)).unwrap();
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "call_type",
                "consent_cut_ms",
                "consent_decided_at",
                "consent_granted",
                "consent_source",
                "direction",
                "disclosure_ok",
                "duration_ms",
                schema::EXPIRY_SORT_ATTR,
                "expires_at",
                "linked",
                schema::PHONE_INDEX_ATTR,
                "start_at",
                schema::TTL,
            ]
        );
        assert_eq!(item["start_at"], s("2026-03-01T10:00:00.000Z"));
        assert_eq!(item["duration_ms"], n(61_000));
        assert_eq!(item["linked"], AttributeValue::Bool(true));
        assert_eq!(item["consent_source"], s("tool_call"));
        assert_eq!(item["disclosure_ok"], AttributeValue::Bool(false));
        assert_eq!(item["consent_cut_ms"], n(4200));
        assert_eq!(item[schema::PHONE_INDEX_ATTR], s("ab12"));
        assert_eq!(
            item[schema::EXPIRY_SORT_ATTR],
            n(facts.retention.expires_at.timestamp())
        );
        assert_eq!(item[schema::TTL], n(facts.retention.ttl));

        let restricted = CallFacts {
            processing_restricted: true,
            ..facts
        };
        let item = to_item("test", &PlainAttributes::of(&restricted)).unwrap();
        assert_eq!(item["processing_restricted"], AttributeValue::Bool(true));
    }

    #[test]
    fn a_recording_record_without_transcript_stores_a_null_and_sits_in_the_expiry_index() {
        let record = RecordingRecord {
            call_id: "call_1".into(),
            lead_id: LeadId::new(),
            object_key: "recordings/x/call_1.audio".into(),
            transcript_key: None,
            bytes: 42,
            sha256_hex: "00".into(),
            retention: Retention::of(RetentionClass::Recording, at("2026-08-31T10:00:00Z")),
        };
        let item = to_item("test", &RecordingItem::of(&record)).unwrap();
        assert_eq!(item["transcript_key"], AttributeValue::Null(true));
        assert_eq!(item[schema::PK], s("CALL#call_1"));
        assert_eq!(item[schema::SK], s("RECORDING"));
        assert_eq!(item["bytes"], n(42));
        assert_eq!(
            item[schema::EXPIRY_PARTITION_ATTR],
            s(record.retention.bucket.clone())
        );
        assert_eq!(item[schema::TTL], n(record.retention.ttl));
        assert_eq!(item.len(), 13);
    }

    #[test]
    fn a_marker_stores_the_state_as_the_lead_does() {
        let marker = MarkerItem {
            pk: "LEAD#x".into(),
            sk: marker_sk(7),
            kind: "call_request",
            state: CallState::Suppressed,
            at: ts(at("2026-03-01T10:00:00Z")),
            ttl: 1,
            call_id: None,
            due_kind: None,
            due_at: None,
            due_phone: None,
            lead_id: None,
            request: None,
        };
        let item = to_item("test", &marker).unwrap();
        assert_eq!(item[schema::SK], s("CALLREQ#000007"));
        assert_eq!(item["state"], s("suppressed"));
        assert!(!item.contains_key("call_id"));
    }
}
