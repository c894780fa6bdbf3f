//! What the worker does with a call once the webhook has decided (R2.7, R2.9): copy a
//! consented recording into the recordings bucket, record the result (a failed ingestion
//! after a few attempts), and delete the call at the provider once our copy is safe or we
//! decided to keep nothing.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::adapters::calls::{call_pk, CALL_SK};
use crate::adapters::dynamo::{failure, n, retention, s, schema, ts};
use crate::adapters::recordings::{CopyError, RecordingCopier};
use crate::adapters::retell::{ProviderError, RetellClient};
use crate::calls::CallService;
use crate::clock::Clock;
use crate::domain::{LeadId, RetentionClass};
use crate::ports::{KeyError, KeyService, LeadStore, Retry, StoreError};

/// Copy attempts before an ingestion is recorded as failed (the URL lives ~10 minutes).
pub const MAX_COPY_ATTEMPTS: i64 = 3;

/// Recording states after which nothing more will be stored for the call.
pub const SETTLED_STATES: &[&str] = &["stored", "not_kept", "not_available", "failed"];

/// Object key of a call's recording (opaque ids only).
pub fn recording_key(lead: &LeadId, call_id: &str) -> String {
    format!("recordings/{lead}/{call_id}.audio")
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("copy failed")]
    Copy(#[from] CopyError),
    #[error("provider failed")]
    Provider(#[from] ProviderError),
    #[error("sealed recording URL does not open")]
    Sealed,
}

impl IngestError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Keys(e) => e.retry,
            Self::Copy(e) => e.retry(),
            Self::Provider(e) => e.retry(),
            Self::Sealed => Retry::Permanent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored { bytes: u64 },
    Failed,
    NotPending,
}

pub struct Ingest {
    calls: crate::adapters::calls::DynamoCallStore,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    leads: Arc<dyn LeadStore>,
    keys: Arc<dyn KeyService>,
    copier: RecordingCopier,
    provider: RetellClient,
    clock: Arc<dyn Clock>,
    pub delete_at_provider: bool,
}

type Item = HashMap<String, AttributeValue>;

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

impl Ingest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: String,
        leads: Arc<dyn LeadStore>,
        keys: Arc<dyn KeyService>,
        copier: RecordingCopier,
        provider: RetellClient,
        clock: Arc<dyn Clock>,
        delete_at_provider: bool,
    ) -> Self {
        Self {
            calls: crate::adapters::calls::DynamoCallStore::new(ddb.clone(), table.clone()),
            ddb,
            table,
            leads,
            keys,
            copier,
            provider,
            clock,
            delete_at_provider,
        }
    }

    async fn call_item(&self, call_id: &str) -> Result<Option<Item>, StoreError> {
        self.calls.get(call_id).await
    }

    async fn audit(
        &self,
        action: &str,
        call_id: &str,
        lead: Option<&LeadId>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::adapters::dynamo::put_audit(
            &self.ddb,
            &self.table,
            "telephony-worker",
            action,
            lead,
            Some(call_id),
            at,
        )
        .await
    }

    async fn set_state(
        &self,
        call_id: &str,
        state: &str,
        extra: &[(&str, AttributeValue)],
    ) -> Result<(), StoreError> {
        let mut expr = "SET recording_state = :state, recording_state_at = :now".to_owned();
        let mut update = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":now", s(ts(self.clock.now())))
            .expression_attribute_values(":pending", s("pending"))
            .condition_expression("recording_state = :pending");
        for (i, (name, value)) in extra.iter().enumerate() {
            expr.push_str(&format!(", #e{i} = :e{i}"));
            update = update
                .expression_attribute_names(format!("#e{i}"), *name)
                .expression_attribute_values(format!(":e{i}"), value.clone());
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

    /// Copies a pending recording into the bucket (at most once: only from `pending`).
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn ingest(&self, call_id: &str) -> Result<IngestOutcome, IngestError> {
        let Some(item) = self.call_item(call_id).await? else {
            return Ok(IngestOutcome::NotPending);
        };
        if text(&item, "recording_state") != Some("pending") {
            return Ok(IngestOutcome::NotPending);
        }
        let now = self.clock.now();
        let lead_id = text(&item, "lead_id").and_then(|l| LeadId::parse(l).ok());
        let lead = match &lead_id {
            Some(id) => self.leads.get_lead(id, now).await?,
            None => None,
        };
        let (Some(lead), Some(sealed)) = (
            lead,
            item.get("sealed_recording_url").and_then(|v| v.as_b().ok()),
        ) else {
            self.set_state(call_id, "failed", &[]).await?;
            self.audit("call.recording_failed", call_id, lead_id.as_ref(), now)
                .await?;
            return Ok(IngestOutcome::Failed);
        };
        let key = self
            .keys
            .unwrap_data_key(&lead.id, &lead.wrapped_key)
            .await?;
        let url = CallService::open(&key, call_id, "sealed_recording_url", sealed.as_ref())
            .map_err(|_| IngestError::Sealed)?;
        let url = String::from_utf8(url.to_vec()).map_err(|_| IngestError::Sealed)?;
        let object = recording_key(&lead.id, call_id);
        match self.copier.copy(&url, &object).await {
            Ok(report) => {
                let end = text(&item, "end_at")
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(now);
                // The recording has its own retention (6 calendar months from call end):
                // an item of its own carries it in the expiry index.
                let r = retention(RetentionClass::Recording, end);
                self.ddb
                    .put_item()
                    .table_name(&self.table)
                    .item(schema::PK, s(call_pk(call_id)))
                    .item(schema::SK, s("RECORDING"))
                    .item("kind", s("recording"))
                    .item("call_id", s(call_id))
                    .item("lead_id", s(lead.id.to_string()))
                    .item("object_key", s(object.clone()))
                    .item(
                        "transcript_key",
                        item.get("transcript_key")
                            .cloned()
                            .unwrap_or(AttributeValue::Null(true)),
                    )
                    .item("bytes", n(report.bytes))
                    .item("sha256", s(report.sha256_hex.clone()))
                    .item("expires_at", s(ts(r.expires_at)))
                    .item(schema::EXPIRY_PARTITION_ATTR, s(r.bucket))
                    .item(schema::EXPIRY_SORT_ATTR, n(r.expires_at.timestamp()))
                    .item(schema::TTL, n(r.ttl))
                    .send()
                    .await
                    .map_err(|e| failure("put_recording", e))?;
                self.set_state(
                    call_id,
                    "stored",
                    &[
                        ("recording_key", s(object)),
                        ("recording_bytes", n(report.bytes)),
                    ],
                )
                .await?;
                self.audit("call.recording_stored", call_id, Some(&lead.id), now)
                    .await?;
                tracing::info!(
                    bytes = report.bytes,
                    parts = report.parts,
                    "recording stored"
                );
                Ok(IngestOutcome::Stored {
                    bytes: report.bytes,
                })
            }
            Err(e) => {
                let attempts = self.count_attempt(call_id).await?;
                if e.retry() == Retry::Permanent || attempts >= MAX_COPY_ATTEMPTS {
                    self.set_state(call_id, "failed", &[]).await?;
                    self.audit("call.recording_failed", call_id, Some(&lead.id), now)
                        .await?;
                    tracing::error!(error = %e, attempts, "recording ingestion failed for good");
                    Ok(IngestOutcome::Failed)
                } else {
                    tracing::warn!(error = %e, attempts, "recording copy failed; retrying");
                    Err(e.into())
                }
            }
        }
    }

    async fn count_attempt(&self, call_id: &str) -> Result<i64, StoreError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression("ADD recording_attempts :one")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| failure("count_copy_attempt", e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get("recording_attempts"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_COPY_ATTEMPTS))
    }

    /// Deletes the call at the provider once it is analysed and its recording settled.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn delete_at_provider(
        &self,
        call_id: &str,
        api_key: &secrecy::SecretString,
    ) -> Result<bool, IngestError> {
        if !self.delete_at_provider {
            return Ok(false);
        }
        let Some(item) = self.call_item(call_id).await? else {
            return Ok(false);
        };
        let analysed = item
            .get("events")
            .and_then(|v| v.as_ss().ok())
            .is_some_and(|e| e.iter().any(|x| x == "call_analyzed"));
        let settled = text(&item, "recording_state").is_some_and(|st| SETTLED_STATES.contains(&st));
        if !analysed || !settled || item.contains_key("provider_deleted_at") {
            return Ok(false);
        }
        self.provider.delete_call(api_key, call_id).await?;
        let now = self.clock.now();
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression("SET provider_deleted_at = :now")
            .expression_attribute_values(":now", s(ts(now)))
            .send()
            .await
            .map_err(|e| failure("mark_provider_deleted", e))?;
        let lead = text(&item, "lead_id").and_then(|l| LeadId::parse(l).ok());
        self.audit("call.deleted_at_provider", call_id, lead.as_ref(), now)
            .await?;
        tracing::info!("call deleted at the provider");
        Ok(true)
    }
}
