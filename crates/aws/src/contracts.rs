//! Contracts as data (R3.4) in DynamoDB: a subject's contract (start, end, kind of
//! records) keeps the contract class for its statutory period and puts the subject on
//! legal hold. The staff route records them through `DsarService::record_contract` with
//! the caller as actor.

use chrono::{DateTime, Utc};

use crate::dynamo::{failure, lead_pk, to_item, ts};
use domain::retention::Retention;
use domain::{LeadId, RetentionClass};
use usecases::ports::StoreError;

pub use domain::retention::Contract;

/// A contract as stored: the subject's partition, the contract class's expiry in the
/// expiry index (`exp_bucket`, `exp_at`) and the TTL backstop.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContractItem {
    pk: String,
    sk: String,
    kind: String,
    lead_id: LeadId,
    contract_start: String,
    contract_end: String,
    records: domain::retention::ContractRecords,
    expires_at: String,
    exp_bucket: String,
    exp_at: i64,
    ttl: i64,
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
    let r = Retention::of(class, contract.end);
    let id = uuid::Uuid::now_v7().simple().to_string();
    let item = ContractItem {
        pk: lead_pk(lead),
        sk: format!("CONTRACT#{id}"),
        kind: "contract".into(),
        lead_id: *lead,
        contract_start: ts(contract.start),
        contract_end: ts(contract.end),
        records: contract.records,
        expires_at: ts(r.expires_at),
        exp_bucket: r.bucket,
        exp_at: r.expires_at.timestamp(),
        ttl: r.ttl,
    };
    ddb.put_item()
        .table_name(table)
        .set_item(Some(to_item("record_contract", &item)?))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| failure("record_contract", e))?;
    crate::dynamo::put_audit(ddb, table, actor, "contract.recorded", Some(lead), None, at).await?;
    Ok(id)
}
