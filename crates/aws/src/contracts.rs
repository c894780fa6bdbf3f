//! Contracts as data (R3.4) in DynamoDB: a subject's contract (start, end, kind of
//! records) keeps the contract class for its statutory period and puts the subject on
//! legal hold. The staff route records them through `DsarService::record_contract` with
//! the caller as actor.

use chrono::{DateTime, Utc};

use crate::dynamo::{failure, lead_pk, n, s, schema, ts};
use domain::retention::Retention;
use domain::{LeadId, RetentionClass};
use usecases::ports::StoreError;

pub use domain::retention::Contract;

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
    let r = Retention::of(class, contract.end);
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
        .item("expires_at", s(ts(r.expires_at)))
        .item(schema::EXPIRY_PARTITION_ATTR, s(r.bucket))
        .item(schema::EXPIRY_SORT_ATTR, n(r.expires_at.timestamp()))
        .item(schema::TTL, n(r.ttl))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| failure("record_contract", e))?;
    crate::dynamo::put_audit(ddb, table, actor, "contract.recorded", Some(lead), None, at).await?;
    Ok(id)
}
