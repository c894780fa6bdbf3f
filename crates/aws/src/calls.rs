//! Call items in the table: `CALL#<provider call id>` / `CALL`.
//!
//! Each webhook is merged into the item with an optimistic version check, so duplicated,
//! re-ordered and concurrent deliveries converge (R2.3): the most complete event's view
//! (`call_analyzed` ⊇ `call_ended` ⊇ `call_started`) wins, the set of events seen is a
//! union, and attributes other writers own (the live consent answer, the worker's
//! recording state) are left alone.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::dynamo::{audit_item, backoff, failure, n, put, s, schema, to_item, update, Item};
use domain::LeadId;
use usecases::ports::{Retry, StoreError};

pub fn call_pk(call_id: &str) -> String {
    format!("CALL#{call_id}")
}
pub const CALL_SK: &str = "CALL";

/// Attempts of the optimistic merge before giving up (the provider then retries).
const MAX_ATTEMPTS: u32 = 8;

/// Recording states that belong to the worker once reached.
const WORKER_STATES: &[&str] = &["ingesting", "stored", "failed"];

/// What one event contributes to the call item.
#[derive(Debug, Clone)]
pub struct CallProjection {
    pub call_id: String,
    pub event: &'static str,
    pub completeness: u8,
    pub lead_id: Option<LeadId>,
    /// Plain, non-personal attributes (status, times, agent, reason …).
    pub plain: Vec<(&'static str, AttributeValue)>,
    /// Sealed attributes (numbers, call content, transcript, recording URL).
    pub sealed: Vec<(&'static str, Vec<u8>)>,
    /// Sealed attributes this event decided must not exist (e.g. transcript without consent).
    pub remove: Vec<&'static str>,
    /// The recording state this event asks for (`pending` or `not_kept`), if it decides.
    pub recording_state: Option<&'static str>,
    pub audit: Vec<&'static str>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The event's view is now the item's view.
    Applied,
    /// A more complete event was stored before; only the event was noted.
    Superseded,
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
                set.extend(p.plain.iter().map(|(k, v)| (*k, v.clone())));
                set.extend(
                    p.sealed
                        .iter()
                        .map(|(k, v)| (*k, AttributeValue::B(v.clone().into()))),
                );
                remove.extend(p.remove.iter().copied());
                let current_state = existing
                    .as_ref()
                    .and_then(|i| i.get("recording_state"))
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str);
                if let Some(state) = p.recording_state {
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
            if applies {
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
                Err(err) => {
                    if super::dynamo::failed_conditions(&err).is_none() {
                        return Err(failure("merge_call", err));
                    }
                }
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
        let set = [
            ("kind", s("call")),
            ("call_id", s(call_id)),
            ("live_consent", AttributeValue::M(consent)),
        ];
        let item = update_with_clauses(
            &self.table,
            call_pk(call_id),
            CALL_SK,
            &set,
            &["ADD version :one"],
            "attribute_not_exists(pk) OR attribute_exists(pk)",
            &[(":one", n(1))],
        )?;
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
        self.client
            .transact_write_items()
            .transact_items(item)
            .transact_items(audit)
            .send()
            .await
            .map_err(|e| failure("live_consent", e))?;
        Ok(())
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
