//! The CRM outbox in the main table and the webhook client (issue 17).
//!
//! One item per event, `CRM#<event id>` / `EVENT`: event id, type, lead id (removed on
//! delivery), request id, times, attempts, the last error code and a TTL; no personal
//! data. Undelivered events carry `due_kind = "crm"` and `due_at` (the next attempt), so
//! the worker finds them through the sparse `by-due` index (which projects only keys:
//! each due event is then read by its key); a delivery removes both.

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use domain::crm::CrmEventType;
use domain::{LeadId, RequestId};
use usecases::crm::{CrmEndpoint, CrmEvent, CrmOutbox, SendError};
use usecases::ports::StoreError;

use crate::dynamo::{failure, n, s, text, Item};

/// The sparse index's kind for undelivered CRM events.
pub const DUE_KIND: &str = "crm";
pub const SK: &str = "EVENT";

pub fn pk(event_id: &str) -> String {
    format!("CRM#{event_id}")
}

fn ts(t: DateTime<Utc>) -> String {
    domain::retention::stored_instant(t)
}

/// The item of an event (as created, or after a failed attempt).
pub fn item(e: &CrmEvent) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), s(pk(&e.event_id))),
        ("sk".to_owned(), s(SK)),
        ("kind".to_owned(), s("crm_event")),
        ("event_id".to_owned(), s(e.event_id.clone())),
        ("event_type".to_owned(), s(e.kind.code())),
        ("occurred_at".to_owned(), s(ts(e.occurred_at))),
        ("attempts".to_owned(), n(e.attempts)),
        ("next_attempt_at".to_owned(), s(ts(e.next_attempt_at))),
        ("ttl".to_owned(), n(e.expires_at().timestamp())),
    ]);
    if let Some(lead) = e.lead_id {
        item.insert("lead_id".into(), s(lead.to_string()));
    }
    if let Some(r) = e.request_id {
        item.insert("request_id".into(), s(r.to_string()));
    }
    if let Some(err) = &e.last_error {
        item.insert("last_error".into(), s(err.clone()));
    }
    match e.delivered_at {
        Some(at) => {
            item.insert("delivered_at".into(), s(ts(at)));
        }
        None => {
            item.insert("due_kind".into(), s(DUE_KIND));
            item.insert("due_at".into(), s(ts(e.next_attempt_at)));
        }
    }
    item
}

fn time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(item, name)?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn event(item: &Item) -> Option<CrmEvent> {
    Some(CrmEvent {
        event_id: text(item, "event_id")?.to_owned(),
        kind: CrmEventType::parse(text(item, "event_type")?)?,
        lead_id: text(item, "lead_id").and_then(|l| LeadId::parse(l).ok()),
        occurred_at: time(item, "occurred_at")?,
        request_id: text(item, "request_id").and_then(|r| RequestId::parse(r).ok()),
        attempts: item.get("attempts")?.as_n().ok()?.parse().ok()?,
        next_attempt_at: time(item, "next_attempt_at")?,
        delivered_at: time(item, "delivered_at"),
        last_error: text(item, "last_error").map(str::to_owned),
    })
}

pub struct DynamoCrmOutbox {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCrmOutbox {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { ddb, table }
    }
}

fn conditional<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl CrmOutbox for DynamoCrmOutbox {
    async fn pending(&self) -> Result<Vec<CrmEvent>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.table)
                .index_name(crate::calls::DUE_INDEX)
                .key_condition_expression("due_kind = :k")
                .expression_attribute_values(":k", s(DUE_KIND))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("crm_pending", e))?;
            // The index projects only its keys and a few attributes: each event is read
            // whole by its key (consistently, so a delivery just recorded is seen).
            for i in page.items() {
                let Some(id) = text(i, "pk").and_then(|p| p.strip_prefix("CRM#")) else {
                    continue;
                };
                if let Some(e) = self.event(id).await? {
                    if e.delivered_at.is_none() {
                        out.push(e);
                    }
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn delivered(&self, event_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(event_id)))
            .key("sk", s(SK))
            .update_expression("SET delivered_at = :at REMOVE lead_id, due_kind, due_at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(delivered_at)")
            .expression_attribute_values(":at", s(ts(at)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional) => Ok(false),
            Err(e) => Err(failure("crm_delivered", e)),
        }
    }

    async fn failed(&self, e: &CrmEvent) -> Result<(), StoreError> {
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(&e.event_id)))
            .key("sk", s(SK))
            .update_expression(
                "SET attempts = :a, next_attempt_at = :next, due_at = :next, last_error = :err",
            )
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(delivered_at)")
            .expression_attribute_values(":a", n(e.attempts))
            .expression_attribute_values(":next", s(ts(e.next_attempt_at)))
            .expression_attribute_values(
                ":err",
                s(e.last_error.clone().unwrap_or_else(|| "unknown".into())),
            )
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            // Delivered meanwhile: that stays.
            Err(err) if err.as_service_error().is_some_and(conditional) => Ok(()),
            Err(err) => Err(failure("crm_failed", err)),
        }
    }

    async fn event(&self, event_id: &str) -> Result<Option<CrmEvent>, StoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(event_id)))
            .key("sk", s(SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("crm_event", e))?;
        Ok(out.item().and_then(event))
    }
}

/// Posts signed bodies to `CRM_WEBHOOK_URL` with the secret from Secrets Manager
/// (`{"current": "..."}`, cached like the provider keys).
pub struct HttpCrmEndpoint {
    http: reqwest::Client,
    url: String,
    secret: crate::secrets::ProviderKeySource,
}

impl HttpCrmEndpoint {
    pub fn new(
        url: String,
        secret: crate::secrets::ProviderKeySource,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(StdDuration::from_secs(5))
            .timeout(StdDuration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, url, secret })
    }
}

#[async_trait]
impl CrmEndpoint for HttpCrmEndpoint {
    async fn post(&self, body: &[u8]) -> Result<(), SendError> {
        use secrecy::ExposeSecret;
        let keys = self.secret.keys().await.map_err(|_| SendError::Secret)?;
        let header = domain::crm::signature(
            keys.current.expose_secret().as_bytes(),
            Utc::now().timestamp(),
            body,
        );
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(domain::crm::SIGNATURE_HEADER, header)
            .body(body.to_vec())
            .send()
            .await
            // The error may name the URL: not logged.
            .map_err(|_| SendError::Unreachable)?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Status(status.as_u16()))
        }
    }
}

#[async_trait]
impl usecases::crm::CrmQueue for DynamoCrmOutbox {
    async fn enqueue(&self, e: &CrmEvent) -> Result<bool, StoreError> {
        let r = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(e)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(conditional) => Ok(false),
            Err(err) => Err(failure("crm_enqueue", err)),
        }
    }
}

/// The follow-up items (`LEAD#<id>` / `FOLLOWUP`, sales' format), read by lead.
pub struct DynamoFollowUpItems {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoFollowUpItems {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { ddb, table }
    }
}

#[async_trait]
impl usecases::crm::FollowUpItems for DynamoFollowUpItems {
    async fn get(
        &self,
        lead: &LeadId,
    ) -> Result<Option<usecases::sales::ports::FollowUpItem>, StoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(crate::dynamo::lead_pk(lead)))
            .key("sk", s("FOLLOWUP"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("crm_followup_item", e))?;
        let Some(i) = out.item() else {
            return Ok(None);
        };
        let parsed = (|| {
            Some(usecases::sales::ports::FollowUpItem {
                lead_id: LeadId::parse(text(i, "lead_id")?).ok()?,
                call_id: text(i, "call_id")?.to_owned(),
                ready_at: time(i, "ready_at")?,
                done_at: time(i, "done_at"),
                sealed: i.get("sealed")?.as_b().ok()?.as_ref().to_vec(),
                expires_at: i
                    .get("ttl")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(|t| DateTime::from_timestamp(t, 0))
                    .unwrap_or_else(Utc::now),
            })
        })();
        parsed.map(Some).ok_or_else(|| StoreError {
            operation: "crm_followup_item",
            retry: usecases::ports::Retry::Permanent,
            source: None,
        })
    }
}
