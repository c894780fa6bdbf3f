//! Placing the outbound call for a lead that requested one (R1.5, R2.12), driven by the
//! table's stream through the telephony worker.
//!
//! At least once, never twice on purpose: each call request of a lead (its
//! `call_request_count`) gets a marker item; a request whose marker says `placed` is not
//! placed again when the stream redelivers it. Every attempt is counted per phone number
//! (blind index) and at most three attempts per number run in 24 hours (R1.6), so the
//! form cannot be used to harass someone else's number.

use std::sync::Arc;

use chrono::Duration;
use secrecy::SecretString;

use crate::adapters::dynamo::{failure, lead_pk, n, s, schema, ts, LEAD_SK};
use crate::adapters::retell::{OutboundCall, ProviderError, RetellClient};
use crate::clock::Clock;
use crate::domain::LeadId;
use crate::leads::{LeadService, ReadError};
use crate::ports::{Retry, StoreError};

/// Attempts per phone number within [`ATTEMPT_WINDOW`] (R1.6).
pub const MAX_ATTEMPTS_PER_NUMBER: usize = 3;
pub const ATTEMPT_WINDOW: Duration = Duration::hours(24);

/// Outbound call settings from the configuration.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub from_number: String,
    pub agent_id: String,
    pub data_storage_setting: String,
}

/// A lead's call request as the stream shows it.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub lead_id: LeadId,
    pub request: u32,
    pub phone_index: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed {
        call_id: String,
    },
    AlreadyPlaced,
    RateLimited,
    /// The lead is gone or past retention.
    LeadGone,
    /// The provider refused for good; the lead's call state says `failed`.
    Refused,
    /// The subject restricted processing or objected (R2.10): no call.
    NotPermitted,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("reading the lead failed")]
    Read(#[from] ReadError),
    #[error("provider failed")]
    Provider(#[from] ProviderError),
    #[error("provider key unavailable")]
    Key(#[from] crate::ports::KeyError),
}

impl PlaceError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Provider(e) => e.retry(),
            Self::Key(e) => e.retry,
            Self::Read(_) => Retry::Transient,
        }
    }
}

pub struct Outbound {
    lead_store: Arc<dyn crate::ports::LeadStore>,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    leads: LeadService,
    provider: RetellClient,
    clock: Arc<dyn Clock>,
    settings: OutboundSettings,
}

impl Outbound {
    pub fn new(
        lead_store: Arc<dyn crate::ports::LeadStore>,
        ddb: aws_sdk_dynamodb::Client,
        table: String,
        leads: LeadService,
        provider: RetellClient,
        clock: Arc<dyn Clock>,
        settings: OutboundSettings,
    ) -> Self {
        Self {
            lead_store,
            ddb,
            table,
            leads,
            provider,
            clock,
            settings,
        }
    }

    /// The lead store behind this service.
    pub fn leads(&self) -> &Arc<dyn crate::ports::LeadStore> {
        &self.lead_store
    }

    fn marker_sk(request: u32) -> String {
        format!("CALLREQ#{request:06}")
    }

    async fn marker_state(&self, req: &CallRequest) -> Result<Option<String>, StoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(&req.lead_id)))
            .key(schema::SK, s(Self::marker_sk(req.request)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_call_request", e))?;
        Ok(out
            .item
            .and_then(|i| i.get("state").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn recent_attempts(&self, phone_index: &str) -> Result<usize, StoreError> {
        let since = self.clock.now() - ATTEMPT_WINDOW;
        let out = self
            .ddb
            .query()
            .table_name(&self.table)
            // The partition also holds the number's claim item: bound the range to attempts.
            .key_condition_expression("pk = :pk AND sk BETWEEN :since AND :until")
            .expression_attribute_values(":pk", s(format!("PHONE#{phone_index}")))
            .expression_attribute_values(":since", s(format!("ATTEMPT#{}", ts(since))))
            .expression_attribute_values(":until", s("ATTEMPT#~"))
            .consistent_read(true)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|e| failure("count_attempts", e))?;
        Ok(out.count().max(0) as usize)
    }

    async fn record_attempt(&self, req: &CallRequest) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.ddb
            .put_item()
            .table_name(&self.table)
            .item(schema::PK, s(format!("PHONE#{}", req.phone_index)))
            .item(
                schema::SK,
                s(format!(
                    "ATTEMPT#{}#{}",
                    ts(now),
                    uuid::Uuid::now_v7().simple()
                )),
            )
            .item("kind", s("call_attempt"))
            .item("lead_id", s(req.lead_id.to_string()))
            .item("at", s(ts(now)))
            .item(
                schema::TTL,
                n((now + ATTEMPT_WINDOW + Duration::days(1)).timestamp()),
            )
            .send()
            .await
            .map_err(|e| failure("record_attempt", e))?;
        Ok(())
    }

    /// Sets the lead's call state, unless a newer call request replaced this one.
    async fn finish(
        &self,
        req: &CallRequest,
        state: &str,
        call_id: Option<&str>,
        action: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut update = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(&req.lead_id)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("SET call_state = :state, call_state_at = :now")
            .condition_expression("call_request_count = :request")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":now", s(ts(now)))
            .expression_attribute_values(":request", n(req.request));
        if let Some(id) = call_id {
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
        let mut marker = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item(schema::PK, s(lead_pk(&req.lead_id)))
            .item(schema::SK, s(Self::marker_sk(req.request)))
            .item("kind", s("call_request"))
            .item("state", s(state))
            .item("at", s(ts(now)))
            .item(schema::TTL, n((now + Duration::days(3 * 366)).timestamp()));
        if let Some(id) = call_id {
            marker = marker.item("call_id", s(id));
        }
        marker
            .send()
            .await
            .map_err(|e| failure("mark_call_request", e))?;
        crate::adapters::dynamo::put_audit(
            &self.ddb,
            &self.table,
            "telephony-worker",
            action,
            Some(&req.lead_id),
            None,
            now,
        )
        .await?;
        Ok(())
    }

    /// Places the call for one request, at most once.
    #[tracing::instrument(skip_all, fields(lead_id = %req.lead_id, request = req.request))]
    pub async fn place(
        &self,
        req: &CallRequest,
        key: &SecretString,
    ) -> Result<PlaceOutcome, PlaceError> {
        if self.marker_state(req).await?.as_deref() == Some("placed") {
            tracing::info!("call already placed for this request");
            return Ok(PlaceOutcome::AlreadyPlaced);
        }
        if self.recent_attempts(&req.phone_index).await? >= MAX_ATTEMPTS_PER_NUMBER {
            self.finish(req, "suppressed", None, "call.suppressed_rate_limit")
                .await?;
            tracing::warn!("call suppressed: attempt limit per number reached");
            return Ok(PlaceOutcome::RateLimited);
        }
        let Some(lead) = self.leads.read(&req.lead_id).await? else {
            tracing::info!("lead gone; no call");
            return Ok(PlaceOutcome::LeadGone);
        };
        if !lead.stored.may_process() {
            self.finish(req, "suppressed", None, "call.suppressed_restricted")
                .await?;
            tracing::info!("subject restricted or objected; no call");
            return Ok(PlaceOutcome::NotPermitted);
        }
        self.record_attempt(req).await?;
        let lead_id = req.lead_id.to_string();
        let call = OutboundCall {
            from_number: &self.settings.from_number,
            to_number: lead.profile.phone.expose(),
            agent_id: &self.settings.agent_id,
            lead_id: &lead_id,
            first_name: lead.profile.first_name.expose(),
            data_storage_setting: &self.settings.data_storage_setting,
        };
        match self.provider.create_phone_call(key, &call).await {
            Ok(call_id) => {
                self.finish(req, "placed", Some(&call_id), "call.placed")
                    .await?;
                tracing::info!(call_id = %call_id, "call placed");
                Ok(PlaceOutcome::Placed { call_id })
            }
            Err(e) if e.retry() == Retry::Permanent => {
                self.finish(req, "failed", None, "call.refused_by_provider")
                    .await?;
                tracing::error!(error = %e, "provider refused the call");
                Ok(PlaceOutcome::Refused)
            }
            Err(e) => {
                tracing::warn!(error = %e, "placing the call failed; the stream will retry");
                Err(e.into())
            }
        }
    }
}
