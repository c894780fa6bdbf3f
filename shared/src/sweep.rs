//! The retention sweep (R3): finds due items through the expiry index, one partition per
//! class and month, and does what the registry says for each class.
//!
//! Classes: `recording` (every S3 version of the recording and the transcript deleted,
//! the call's metadata kept), `lead` (the subject erased: the data key first, then items
//! and objects), the contract classes (held subjects restricted, then erased),
//! `phone_consent_proof`, `verification` (one-time codes and unverified requests' sealed
//! contacts; a request whose code expired unused ends and loses its blind indexes),
//! `export` (every version of the package, then its item) and `request` (request records). A dry run reports exactly what a
//! real run would delete. The run stops cleanly when its time budget runs out; the next
//! run continues, since the index still holds what was not done.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, Utc};

use crate::adapters::calls::{call_pk, calls_by_phone, CALL_SK};
use crate::adapters::dsar::REQUEST_KEY_SK;
use crate::adapters::dynamo::{
    batch_delete, failure, lead_pk, n, query_partition, s, schema, ts, CLAIM_SK,
};
use crate::adapters::s3::BlobStore;
use crate::domain::{LeadId, RetentionClass};
use crate::ports::{Retry, StoreError};

pub use crate::adapters::dynamo::BATCH_WRITE_LIMIT;

/// The first month that can hold due items (the policy dates from April 2024).
const FIRST_MONTH: (i32, u32) = (2024, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRequest {
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClassCount {
    /// Items found due.
    pub due: usize,
    /// Items deleted (or, in a dry run, that would be).
    pub deleted: usize,
    /// Objects (all versions) deleted (or that would be).
    pub objects: usize,
    /// Subjects kept under legal hold (restricted) instead of erased.
    pub held: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    pub now: String,
    pub classes: BTreeMap<&'static str, ClassCount>,
    /// False when the run stopped for its time budget; the next run continues.
    pub complete: bool,
}

type Item = HashMap<String, AttributeValue>;

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// Months from [`FIRST_MONTH`] to the month of `now`, as `YYYY-MM`.
fn months_until(now: DateTime<Utc>) -> Vec<String> {
    let (mut y, mut m) = FIRST_MONTH;
    let mut out = Vec::new();
    while (y, m) <= (now.year(), now.month()) {
        out.push(format!("{y:04}-{m:02}"));
        if m == 12 {
            y += 1;
            m = 1;
        } else {
            m += 1;
        }
    }
    out
}

pub struct Sweeper {
    leads: Arc<dyn crate::ports::LeadStore>,
    lead_store: crate::adapters::dynamo::DynamoLeadStore,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    /// The key table: a request's contact key goes with its contact.
    key_table: String,
    blobs: BlobStore,
    /// The exports bucket (data-subject export packages, 7 days).
    exports: Option<BlobStore>,
    /// Counts BatchWriteItem requests and their sizes (tests check the 25 limit).
    pub batch_sizes: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Sweeper {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: String,
        key_table: String,
        blobs: BlobStore,
    ) -> Self {
        let lead_store = crate::adapters::dynamo::DynamoLeadStore::new(
            ddb.clone(),
            table.clone(),
            key_table.clone(),
        );
        Self {
            leads: Arc::new(lead_store.clone()),
            lead_store,
            ddb,
            table,
            key_table,
            blobs,
            exports: None,
            batch_sizes: Arc::default(),
        }
    }

    /// Sweeps the exports bucket too (the `export` class).
    pub fn with_exports(mut self, exports: BlobStore) -> Self {
        self.exports = Some(exports);
        self
    }

    /// An export package past its 7 days: every version of the object, then its item.
    async fn sweep_export(
        &self,
        item: &Item,
        req: SweepRequest,
        count: &mut ClassCount,
    ) -> Result<(), StoreError> {
        let (Some(pk), Some(sk)) = (text(item, "pk"), text(item, "sk")) else {
            return Ok(());
        };
        let Some(id) = pk.strip_prefix("DSAR#") else {
            return Ok(());
        };
        let object = format!("exports/{id}.zip");
        let Some(exports) = &self.exports else {
            return Err(StoreError {
                operation: "sweep_export",
                retry: Retry::Permanent,
                source: None,
            });
        };
        if req.dry_run {
            count.objects += exports.version_keys(&object).await?.len();
            count.deleted += 1;
            return Ok(());
        }
        count.objects += exports.delete_all_versions(&object).await?;
        count.deleted += self
            .delete_keys(vec![(pk.to_owned(), sk.to_owned())])
            .await?;
        self.audit("retention.export_deleted", None, None, req.now)
            .await
    }

    /// A request whose code expired unused ends: its blind indexes go with the code.
    async fn end_unverified(&self, due: &[Item], now: DateTime<Utc>) -> Result<(), StoreError> {
        for item in due {
            if text(item, "kind") != Some("dsar_code") {
                continue;
            }
            let Some(pk) = text(item, "pk") else { continue };
            let result = self
                .ddb
                .update_item()
                .table_name(&self.table)
                .key(schema::PK, s(pk))
                .key(schema::SK, s("REQUEST"))
                .update_expression(
                    "SET #s = :failed, outcome = :expired, closed_at = :now ADD version :one \
                     REMOVE subject_email_bidx, subject_phone_bidx, correction_email_bidx, \
                     correction_phone_bidx",
                )
                .condition_expression("#s = :waiting")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":failed", s("verification_failed"))
                .expression_attribute_values(":waiting", s("awaiting_verification"))
                .expression_attribute_values(":expired", s("code_expired"))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .expression_attribute_values(":one", n(1))
                .send()
                .await;
            if let Err(e) = result {
                let conditional = e
                    .as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception());
                if !conditional {
                    return Err(failure("end_unverified", e));
                }
            }
        }
        Ok(())
    }

    /// Due items of a class, oldest first.
    async fn due(
        &self,
        class: RetentionClass,
        now: DateTime<Utc>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for month in months_until(now) {
            let mut start = None;
            loop {
                let out = self
                    .ddb
                    .query()
                    .table_name(&self.table)
                    .index_name(schema::EXPIRY_INDEX)
                    .key_condition_expression("#b = :b AND #e <= :now")
                    .expression_attribute_names("#b", schema::EXPIRY_PARTITION_ATTR)
                    .expression_attribute_names("#e", schema::EXPIRY_SORT_ATTR)
                    .expression_attribute_values(":b", s(format!("{}#{month}", class.code())))
                    .expression_attribute_values(":now", n(now.timestamp()))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| failure("query_expiry", e))?;
                items.extend(out.items().iter().cloned());
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(items)
    }

    /// Deletes keys in batches of at most 25, retrying unprocessed parts.
    async fn delete_keys(&self, keys: Vec<(String, String)>) -> Result<usize, StoreError> {
        batch_delete(&self.ddb, &self.table, keys, Some(&self.batch_sizes)).await
    }

    async fn audit(
        &self,
        action: &str,
        lead: Option<&LeadId>,
        call_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::adapters::dynamo::put_audit(
            &self.ddb,
            &self.table,
            "retention-sweep",
            action,
            lead,
            call_id,
            at,
        )
        .await
    }

    /// A due recording: every version of the audio and the transcript, then the
    /// recording item; the call keeps its metadata and says the recording is gone.
    async fn sweep_recording(
        &self,
        indexed: &Item,
        req: SweepRequest,
        count: &mut ClassCount,
        counted: &mut HashSet<String>,
    ) -> Result<(), StoreError> {
        // The expiry index projects keys and a few attributes; read the whole item.
        let Some(item) = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(
                [schema::PK, schema::SK]
                    .iter()
                    .filter_map(|k| indexed.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect(),
            ))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_recording", e))?
            .item
        else {
            return Ok(());
        };
        let item = &item;
        let call_id = text(item, "call_id").unwrap_or_default().to_owned();
        let objects: Vec<String> = ["object_key", "transcript_key"]
            .iter()
            .filter_map(|k| text(item, k).map(str::to_owned))
            .collect();
        if req.dry_run {
            for o in &objects {
                count.objects += self.blobs.count_versions(o, true).await?;
                counted.insert(o.clone());
            }
            count.deleted += 1;
            return Ok(());
        }
        for o in &objects {
            count.objects += self.blobs.delete_all_versions(o).await?;
        }
        let marked = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(call_pk(&call_id)))
            .key(schema::SK, s(CALL_SK))
            .update_expression("SET recording_state = :gone, recording_deleted_at = :now REMOVE transcript_key, sealed_recording_url, recording_key")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":gone", s("deleted"))
            .expression_attribute_values(":now", s(ts(req.now)))
            .send()
            .await;
        match marked {
            // The call itself was erased already: nothing to mark.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(failure("mark_recording_deleted", e)),
            Ok(_) => {}
        }
        count.deleted += self
            .delete_keys(vec![(call_pk(&call_id), "RECORDING".to_owned())])
            .await?;
        let lead = text(item, "lead_id").and_then(|l| LeadId::parse(l).ok());
        self.audit(
            "retention.recording_deleted",
            lead.as_ref(),
            Some(&call_id),
            req.now,
        )
        .await
    }

    /// A subject past its lead retention: erased. The data key goes first, so from that
    /// moment every copy of its ciphertext (backups included) is unreadable; then its
    /// items, its calls, its identifier claims and its objects. The §7a UWG consent proofs
    /// (own 5-year class) and the audit trail stay.
    async fn erase_subject(
        &self,
        item: &Item,
        req: SweepRequest,
        count: &mut ClassCount,
        counted: &HashSet<String>,
    ) -> Result<(), StoreError> {
        let Some(lead) = text(item, "lead_id").and_then(|l| LeadId::parse(l).ok()) else {
            return Ok(());
        };
        let pk = lead_pk(&lead);
        // A live contract bars erasure (§257 HGB, §147 AO): the subject is restricted
        // instead and comes due again when its last contract period ends (R3.4).
        let hold = self.contract_hold(&pk, req.now).await?;
        if let Some(until) = hold {
            count.held += 1;
            if !req.dry_run {
                self.leads.hold_until(&lead, until, req.now).await?;
            }
            return Ok(());
        }
        // Everything in the subject's partition but the consent proofs.
        let partition = query_partition(&self.ddb, &self.table, &pk).await?;
        let mut keys: Vec<(String, String)> = partition
            .iter()
            .filter(|i| text(i, "kind") != Some("phone_consent"))
            .map(|i| (pk.clone(), text(i, "sk").unwrap_or_default().to_owned()))
            .collect();
        // The subject's identifier claims and calls, from the lead item just read.
        let full = partition
            .iter()
            .find(|i| text(i, "kind") == Some("lead"))
            .cloned()
            .unwrap_or_default();
        if let Some(email) = text(&full, schema::EMAIL_INDEX_ATTR) {
            keys.push((format!("EMAIL#{email}"), CLAIM_SK.to_owned()));
        }
        if let Some(phone) = text(&full, schema::PHONE_INDEX_ATTR) {
            keys.push((format!("PHONE#{phone}"), CLAIM_SK.to_owned()));
            for call in calls_by_phone(&self.ddb, &self.table, phone).await? {
                keys.push((call_pk(&call), CALL_SK.to_owned()));
                keys.push((call_pk(&call), "RECORDING".to_owned()));
            }
        }
        let prefixes = [
            format!("recordings/{lead}/"),
            format!("transcripts/{lead}/"),
        ];
        if req.dry_run {
            // Objects an earlier class of this run would already have deleted don't count
            // twice: the report must equal what a real run then does.
            for p in &prefixes {
                count.objects += self
                    .blobs
                    .version_keys(p)
                    .await?
                    .iter()
                    .filter(|k| !counted.contains(*k))
                    .count();
            }
            count.deleted += keys.len();
            return Ok(());
        }
        // Crypto-shredding first.
        self.lead_store.shred_key(&lead).await?;
        count.deleted += self.delete_keys(keys).await?;
        for p in &prefixes {
            count.objects += self.blobs.delete_all_versions_under(p).await?;
        }
        self.audit("retention.subject_erased", Some(&lead), None, req.now)
            .await
    }

    /// The end of the latest live contract period of a subject, if any.
    async fn contract_hold(
        &self,
        pk: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":c", s("CONTRACT#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("query_contracts", e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| text(i, "expires_at"))
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now)
            .max())
    }

    /// Classes whose due items are simply deleted (contract records, phone-consent proofs):
    /// in batches of 25, the budget checked between batches.
    async fn sweep_plain(
        &self,
        due: &[Item],
        req: SweepRequest,
        count: &mut ClassCount,
        started: Instant,
        budget: StdDuration,
    ) -> Result<bool, StoreError> {
        let items: Vec<(String, String, bool)> = due
            .iter()
            .filter_map(|i| {
                Some((
                    text(i, "pk")?.to_owned(),
                    text(i, "sk")?.to_owned(),
                    text(i, "kind") == Some("dsar_contact"),
                ))
            })
            .collect();
        for chunk in items.chunks(BATCH_WRITE_LIMIT) {
            if started.elapsed() >= budget {
                return Ok(false);
            }
            if req.dry_run {
                count.deleted += chunk.len();
                continue;
            }
            // A request's sealed contact: its key in the key table goes first, so the
            // contact is unreadable in every backup before it is deleted here.
            let contact_keys: Vec<(String, String)> = chunk
                .iter()
                .filter(|(_, _, contact)| *contact)
                .map(|(pk, _, _)| (pk.clone(), REQUEST_KEY_SK.to_owned()))
                .collect();
            if !contact_keys.is_empty() {
                batch_delete(
                    &self.ddb,
                    &self.key_table,
                    contact_keys,
                    Some(&self.batch_sizes),
                )
                .await?;
            }
            count.deleted += self
                .delete_keys(
                    chunk
                        .iter()
                        .map(|(pk, sk, _)| (pk.clone(), sk.clone()))
                        .collect(),
                )
                .await?;
        }
        Ok(true)
    }

    /// One run. Items not reached before `budget` runs out stay due for the next run.
    pub async fn run(
        &self,
        req: SweepRequest,
        budget: StdDuration,
    ) -> Result<SweepReport, StoreError> {
        let started = Instant::now();
        let mut report = SweepReport {
            dry_run: req.dry_run,
            now: ts(req.now),
            complete: true,
            ..Default::default()
        };
        let mut first_error = None;
        let mut counted = HashSet::new();
        use crate::domain::retention::ContractRecords::{BookingVouchers, Books, BusinessLetters};
        let classes = [
            RetentionClass::Recording,
            RetentionClass::Contract(BusinessLetters),
            RetentionClass::Contract(BookingVouchers),
            RetentionClass::Contract(Books),
            RetentionClass::PhoneConsentProof,
            RetentionClass::Verification,
            RetentionClass::Export,
            RetentionClass::Request,
            RetentionClass::Lead,
        ];
        'classes: for class in classes {
            let due = self.due(class, req.now).await?;
            let count = report.classes.entry(class.code()).or_default();
            count.due += due.len();
            if matches!(
                class,
                RetentionClass::Contract(_)
                    | RetentionClass::PhoneConsentProof
                    | RetentionClass::Verification
                    | RetentionClass::Request
            ) {
                let swept = self.sweep_plain(&due, req, count, started, budget).await;
                let swept = match swept {
                    Ok(true) if class == RetentionClass::Verification && !req.dry_run => {
                        self.end_unverified(&due, req.now).await.map(|()| true)
                    }
                    other => other,
                };
                match swept {
                    Ok(true) => continue,
                    Ok(false) => {
                        report.complete = false;
                        break 'classes;
                    }
                    Err(e) => {
                        count.failed += 1;
                        tracing::error!(class = class.code(), error = %e, "sweep batch failed; continuing");
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            for item in &due {
                if started.elapsed() >= budget {
                    report.complete = false;
                    break 'classes;
                }
                let result = match class {
                    RetentionClass::Recording => {
                        self.sweep_recording(item, req, count, &mut counted).await
                    }
                    RetentionClass::Export => self.sweep_export(item, req, count).await,
                    _ => self.erase_subject(item, req, count, &counted).await,
                };
                if let Err(e) = result {
                    count.failed += 1;
                    tracing::error!(class = class.code(), error = %e, "sweep item failed; continuing");
                    first_error.get_or_insert(e);
                }
            }
        }
        if !req.dry_run {
            let counts = serde_json::to_string(&report.classes).unwrap_or_default();
            let item = crate::adapters::dynamo::audit_item(
                "retention-sweep",
                "retention.run",
                None,
                None,
                req.now,
            );
            self.ddb
                .put_item()
                .table_name(&self.table)
                .set_item(Some(crate::adapters::dynamo::to_item("audit", &item)?))
                .item("counts", s(counts))
                .item("complete", AttributeValue::Bool(report.complete))
                .send()
                .await
                .map_err(|e| failure("audit", e))?;
        }
        for (class, c) in &report.classes {
            crate::telemetry::metric(&format!("Swept_{class}"), c.deleted as f64);
        }
        tracing::info!(
            dry_run = req.dry_run,
            complete = report.complete,
            "retention sweep finished"
        );
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_run_from_the_first_month_to_now() {
        let now = DateTime::parse_from_rfc3339("2024-03-15T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(months_until(now), ["2024-01", "2024-02", "2024-03"]);
    }
}
