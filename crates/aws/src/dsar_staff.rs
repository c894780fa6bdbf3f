//! The staff side's store over the table (R4.10): audit items of staff actions and
//! ending contracts (their expiry moves with the end); contracts recorded through
//! `contracts`. The analytics export's calls are read by its worker (`analytics`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::dynamo::{failure, lead_pk, n, put_audit, s, schema, ts, TTL_GRACE};
use domain::retention::{expiry_bucket, ContractRecords};
use domain::{LeadId, RetentionClass};
use usecases::dsar::ports::{ContractLedger, StaffStore};
use usecases::ports::StoreError;

#[derive(Debug, Clone)]
pub struct DynamoStaff {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStaff {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

#[async_trait]
impl StaffStore for DynamoStaff {
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        lead: Option<&LeadId>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        put_audit(&self.client, &self.table, actor, action, lead, None, at).await
    }

    async fn end_contract(
        &self,
        lead: &LeadId,
        contract_id: &str,
        records: ContractRecords,
        end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let class = RetentionClass::Contract(records);
        let due = class.due_at(end).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(format!("CONTRACT#{contract_id}")))
            .update_expression(
                "SET contract_end = :end, expires_at = :exp, #b = :b, #e = :e, #t = :t",
            )
            .condition_expression("attribute_exists(pk) AND #r = :r")
            .expression_attribute_names("#b", schema::EXPIRY_PARTITION_ATTR)
            .expression_attribute_names("#e", schema::EXPIRY_SORT_ATTR)
            .expression_attribute_names("#t", schema::TTL)
            .expression_attribute_names("#r", "records")
            .expression_attribute_values(":end", s(ts(end)))
            .expression_attribute_values(":exp", s(ts(due)))
            .expression_attribute_values(":b", s(expiry_bucket(class, due)))
            .expression_attribute_values(":e", n(due.timestamp()))
            .expression_attribute_values(":t", n((due + TTL_GRACE).timestamp()))
            .expression_attribute_values(
                ":r",
                s(serde_json::to_value(records)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure("end_contract", e)),
        }
    }
}

#[async_trait]
impl ContractLedger for DynamoStaff {
    async fn record(
        &self,
        lead: &LeadId,
        contract: domain::retention::Contract,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        super::contracts::record_contract_by(&self.client, &self.table, lead, contract, actor, at)
            .await
    }
}
