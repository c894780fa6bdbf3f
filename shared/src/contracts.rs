//! Contracts as data (R3.4): a subject's contract (start, end, kind of records) keeps the
//! contract class for its statutory period and puts the subject on legal hold. The staff
//! route records them through `DsarService::record_contract` with the caller as actor.

use chrono::{DateTime, Utc};

use crate::adapters::dynamo::{failure, lead_pk, n, s, schema, ts, TTL_GRACE};
use crate::domain::retention::{expiry_bucket, ContractRecords};
use crate::domain::{LeadId, RetentionClass};
use crate::ports::StoreError;

/// A contract of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub records: ContractRecords,
}

/// Records a contract without a named actor (fixtures, migrations; audited as
/// `contracts`); see [`record_contract_by`].
pub async fn record_contract(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lead: &LeadId,
    contract: Contract,
    at: DateTime<Utc>,
) -> Result<String, StoreError> {
    record_contract_by(ddb, table, lead, contract, "contracts", at).await
}

/// Records a contract; returns its id. The item carries the contract class's expiry
/// (end of the contract's calendar year plus 6, 8 or 10 years) in the expiry index; the
/// audit item names `actor` (R4.11).
pub async fn record_contract_by(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lead: &LeadId,
    contract: Contract,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<String, StoreError> {
    let class = RetentionClass::Contract(contract.records);
    let due = class
        .due_at(contract.end)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let id = uuid::Uuid::now_v7().simple().to_string();
    let records = serde_json::to_value(contract.records)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    ddb.put_item()
        .table_name(table)
        .item(schema::PK, s(lead_pk(lead)))
        .item(schema::SK, s(format!("CONTRACT#{id}")))
        .item("kind", s("contract"))
        .item("lead_id", s(lead.to_string()))
        .item("contract_start", s(ts(contract.start)))
        .item("contract_end", s(ts(contract.end)))
        .item("records", s(records))
        .item("expires_at", s(ts(due)))
        .item(schema::EXPIRY_PARTITION_ATTR, s(expiry_bucket(class, due)))
        .item(schema::EXPIRY_SORT_ATTR, n(due.timestamp()))
        .item(schema::TTL, n((due + TTL_GRACE).timestamp()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| failure("record_contract", e))?;
    crate::adapters::dynamo::put_audit(
        ddb,
        table,
        actor,
        "contract.recorded",
        Some(lead),
        None,
        at,
    )
    .await?;
    Ok(id)
}
