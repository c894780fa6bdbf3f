//! The analytics export job over AWS (R6): the job items (`ANALYTICS#<export_id>` /
//! `JOB`, checkpointed on their version), the calls a scan page at a time (the cursor is
//! the page's last evaluated key: table keys only, no personal data), and the file as a
//! multipart upload addressed by its id, so the next invocation can continue it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use chrono::{DateTime, Utc};

use super::dynamo::{failure, n, put_audit, s, schema, ts, Item};
use domain::LeadId;
use usecases::dsar::analytics_job::{
    CallPage, CallSource, ExportJob, ExportJobs, JobStatus, Part, PartUploads, JOB_KIND,
};
use usecases::dsar::ports::AnalyticsCall;
use usecases::ports::{Retry, StoreError};

/// The sort key of a job item.
pub const JOB_SK: &str = "JOB";

pub fn job_pk(export_id: &str) -> String {
    format!("ANALYTICS#{export_id}")
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn corrupt(operation: &'static str) -> StoreError {
    StoreError {
        operation,
        retry: Retry::Permanent,
        source: None,
    }
}

/// The job items and the calls, in the table.
#[derive(Debug, Clone)]
pub struct DynamoAnalytics {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAnalytics {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

fn job_item(job: &ExportJob) -> Result<Item, StoreError> {
    let mut item: Item = HashMap::new();
    item.insert(schema::PK.into(), s(job_pk(&job.export_id)));
    item.insert(schema::SK.into(), s(JOB_SK));
    item.insert("kind".into(), s(JOB_KIND));
    item.insert("export_id".into(), s(job.export_id.clone()));
    item.insert("status".into(), s(job.status.as_str()));
    item.insert("object_key".into(), s(job.object_key.clone()));
    item.insert("created_at".into(), s(ts(job.created_at)));
    item.insert("scanned".into(), AttributeValue::Bool(job.scanned));
    let parts = serde_json::to_string(&job.parts).map_err(|_| corrupt("analytics_job_parts"))?;
    item.insert("parts".into(), s(parts));
    item.insert("calls".into(), n(job.calls));
    item.insert("omitted".into(), n(job.omitted));
    item.insert("failures".into(), n(job.failures));
    item.insert("stalled".into(), n(job.stalled));
    item.insert("version".into(), n(job.version));
    item.insert(schema::TTL.into(), n(job.expires_at().timestamp()));
    if let Some(id) = &job.upload_id {
        item.insert("upload_id".into(), s(id.clone()));
    }
    if let Some(c) = &job.cursor {
        item.insert("cursor".into(), s(c.clone()));
    }
    if let Some(r) = &job.failure_reason {
        item.insert("failure_reason".into(), s(r.clone()));
    }
    Ok(item)
}

fn job_of(item: &Item) -> Result<ExportJob, StoreError> {
    let bad = || corrupt("analytics_job");
    Ok(ExportJob {
        export_id: text(item, "export_id").ok_or_else(bad)?,
        status: text(item, "status")
            .as_deref()
            .and_then(JobStatus::parse)
            .ok_or_else(bad)?,
        object_key: text(item, "object_key").ok_or_else(bad)?,
        created_at: text(item, "created_at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)?,
        upload_id: text(item, "upload_id"),
        cursor: text(item, "cursor"),
        scanned: item
            .get("scanned")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        parts: text(item, "parts")
            .map(|p| serde_json::from_str::<Vec<Part>>(&p))
            .transpose()
            .map_err(|_| bad())?
            .unwrap_or_default(),
        calls: number(item, "calls").unwrap_or(0),
        omitted: number(item, "omitted").unwrap_or(0),
        failures: number(item, "failures")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        stalled: number(item, "stalled")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        failure_reason: text(item, "failure_reason"),
        version: number(item, "version").ok_or_else(bad)?,
    })
}

/// A table key (`pk`, `sk`, both strings) as the cursor text, and back.
fn cursor_text(key: &Item) -> Result<String, StoreError> {
    let mut out = serde_json::Map::new();
    for (k, v) in key {
        let v = v.as_s().map_err(|_| corrupt("scan_cursor"))?;
        out.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    Ok(serde_json::Value::Object(out).to_string())
}

fn cursor_key(text: &str) -> Result<Item, StoreError> {
    let map: HashMap<String, String> =
        serde_json::from_str(text).map_err(|_| corrupt("scan_cursor"))?;
    if map.len() != 2 || !map.contains_key(schema::PK) || !map.contains_key(schema::SK) {
        return Err(corrupt("scan_cursor"));
    }
    Ok(map.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// A call item as the export reads it.
pub fn analytics_call(call: &Item) -> Option<AnalyticsCall> {
    let call_id = text(call, "call_id")?;
    Some(AnalyticsCall {
        call_id,
        lead_id: text(call, "lead_id").and_then(|l| LeadId::parse(&l).ok()),
        start_at: text(call, "start_at"),
        duration_ms: call
            .get("duration_ms")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok()),
        call_status: text(call, "call_status"),
        disconnection_reason: text(call, "disconnection_reason"),
        consent_granted: call
            .get("consent_granted")
            .and_then(|v| v.as_bool().ok())
            .copied(),
        sealed_call: match call.get("sealed_call") {
            Some(AttributeValue::B(b)) => Some(b.as_ref().to_vec()),
            _ => None,
        },
    })
}

#[async_trait]
impl ExportJobs for DynamoAnalytics {
    async fn create(&self, job: &ExportJob, actor: &str) -> Result<(), StoreError> {
        // The audit item first: a job never exists unaudited (a failure between the two
        // leaves an audited request and no job; the caller got an error). Not one
        // transaction: the emulator copies the whole table for each transaction, which
        // with 100 000 calls outlasts the SDK's timeout.
        put_audit(
            &self.client,
            &self.table,
            actor,
            "analytics.exported",
            None,
            None,
            job.created_at,
        )
        .await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_item(job)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| failure("create_analytics_job", e))?;
        Ok(())
    }

    async fn job(&self, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(job_pk(export_id)))
            .key(schema::SK, s(JOB_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("get_analytics_job", e))?;
        out.item().map(job_of).transpose()
    }

    async fn checkpoint(&self, job: &ExportJob) -> Result<bool, StoreError> {
        let mut next = job.clone();
        next.version += 1;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_item(&next)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(job.version))
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
            Err(e) => Err(failure("checkpoint_analytics_job", e)),
        }
    }
}

#[async_trait]
impl CallSource for DynamoAnalytics {
    async fn page(&self, cursor: Option<&str>, limit: usize) -> Result<CallPage, StoreError> {
        let start = cursor.map(cursor_key).transpose()?;
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("kind = :call")
            .expression_attribute_values(":call", s("call"))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| failure("scan_calls", e))?;
        Ok(CallPage {
            calls: page.items().iter().filter_map(analytics_call).collect(),
            next: page.last_evaluated_key().map(cursor_text).transpose()?,
        })
    }
}

/// The analytics files' multipart uploads in the exports bucket (SSE-KMS under the data
/// key, like every export).
#[derive(Debug, Clone)]
pub struct S3PartUploads {
    client: aws_sdk_s3::Client,
    bucket: String,
    kms_key_id: String,
}

impl S3PartUploads {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, kms_key_id: String) -> Self {
        Self {
            client,
            bucket,
            kms_key_id,
        }
    }
}

fn s3_failure<E, R>(operation: &'static str, err: aws_sdk_s3::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::store_failure("s3", operation, err)
}

#[async_trait]
impl PartUploads for S3PartUploads {
    async fn start(&self, key: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .send()
            .await
            .map_err(|e| s3_failure("create_multipart_upload", e))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| corrupt("create_multipart_upload"))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(number).unwrap_or(i32::MAX))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_failure("upload_part", e))?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| corrupt("upload_part"))
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<bool, StoreError> {
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(i32::try_from(p.number).unwrap_or(i32::MAX))
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                    == Some("NoSuchUpload") =>
            {
                // Completed by an earlier attempt whose checkpoint was lost, or gone.
                match self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
                    Err(e) => Err(s3_failure("head_object", e)),
                }
            }
            Err(e) => Err(s3_failure("complete_multipart_upload", e)),
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
            Err(e) => Err(s3_failure("abort_multipart_upload", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_only_a_table_key_is_one() {
        let key: Item = [("pk", "CALL#c1"), ("sk", "CALL")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), s(v)))
            .collect();
        assert_eq!(cursor_key(&cursor_text(&key).unwrap()).unwrap(), key);
        for bad in [
            "",
            "[]",
            "{\"pk\":\"a\"}",
            "{\"pk\":\"a\",\"sk\":1}",
            "{\"pk\":\"a\",\"sk\":\"b\",\"x\":\"c\"}",
        ] {
            assert!(cursor_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_job_item_reads_back_as_the_job() {
        let now = Utc::now();
        let mut job = ExportJob::new(now);
        job.upload_id = Some("u1".into());
        job.cursor = Some("{\"pk\":\"CALL#c\",\"sk\":\"CALL\"}".into());
        job.parts = vec![Part {
            number: 1,
            etag: "\"e1\"".into(),
        }];
        job.calls = 7;
        job.omitted = 2;
        job.version = 3;
        let mut back = job_of(&job_item(&job).unwrap()).unwrap();
        // Stored to the second.
        back.created_at = job.created_at;
        assert_eq!(back, job);
    }
}
