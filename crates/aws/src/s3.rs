//! Objects in the recordings bucket: always written with SSE-KMS under the customer key
//! (the bucket policy refuses anything else), deleted with every version.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, ServerSideEncryption};

use usecases::ports::{Retry, StoreError};

#[derive(Debug, Clone)]
pub struct BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    kms_key_id: String,
}

fn failure<E, R>(operation: &'static str, err: aws_sdk_s3::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::store_failure("s3", operation, err)
}

impl BlobStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, kms_key_id: String) -> Self {
        Self {
            client,
            bucket,
            kms_key_id,
        }
    }

    /// Stores already-sealed bytes under `key` (no personal data in keys).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .content_type("application/octet-stream")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .send()
            .await
            .map_err(|e| failure("put_object", e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| StoreError {
                    operation: "get_object",
                    retry: Retry::Transient,
                    source: Some(Box::new(e)),
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(failure("get_object", e)),
        }
    }

    /// Deletes every version and delete marker of `key`; returns how many went.
    pub async fn delete_all_versions(&self, key: &str) -> Result<usize, StoreError> {
        self.delete_versions(key, true, false).await
    }

    /// Deletes every version of `key` but the current one, and its delete markers.
    pub async fn delete_noncurrent_versions(&self, key: &str) -> Result<usize, StoreError> {
        self.delete_versions(key, true, true).await
    }

    /// Deletes every version and delete marker of every object under `prefix`.
    pub async fn delete_all_versions_under(&self, prefix: &str) -> Result<usize, StoreError> {
        self.delete_versions(prefix, false, false).await
    }

    /// The key of every version and delete marker under `prefix` (one entry each).
    pub async fn version_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| failure("list_object_versions", e))?;
            keys.extend(
                out.versions()
                    .iter()
                    .filter_map(|v| v.key().map(str::to_owned)),
            );
            keys.extend(
                out.delete_markers()
                    .iter()
                    .filter_map(|m| m.key().map(str::to_owned)),
            );
            if out.is_truncated() != Some(true) {
                return Ok(keys);
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            version_marker = out.next_version_id_marker().map(str::to_owned);
        }
    }

    /// Lists object versions under `prefix` (only `prefix` itself when `exact`).
    pub async fn count_versions(&self, prefix: &str, exact: bool) -> Result<usize, StoreError> {
        let out = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(|e| failure("list_object_versions", e))?;
        let keep = |k: Option<&str>| !exact || k == Some(prefix);
        Ok(out.versions().iter().filter(|v| keep(v.key())).count()
            + out
                .delete_markers()
                .iter()
                .filter(|m| keep(m.key()))
                .count())
    }

    /// Deletes the given object versions (at most [`DELETE_OBJECTS_LIMIT`]) in one
    /// DeleteObjects request; any per-key error fails the batch (transient: the caller
    /// lists and deletes again).
    async fn delete_batch(&self, ids: &[(String, Option<String>)]) -> Result<(), StoreError> {
        let objects = ids
            .iter()
            .map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .set_version_id(v.clone())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError {
                operation: "delete_objects",
                retry: Retry::Permanent,
                source: Some(Box::new(e)),
            })?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StoreError {
                operation: "delete_objects",
                retry: Retry::Permanent,
                source: Some(Box::new(e)),
            })?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| failure("delete_objects", e))?;
        if !out.errors().is_empty() {
            return Err(StoreError {
                operation: "delete_objects",
                retry: Retry::Transient,
                source: None,
            });
        }
        Ok(())
    }

    async fn delete_versions(
        &self,
        key: &str,
        exact: bool,
        keep_current: bool,
    ) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .send()
                .await
                .map_err(|e| failure("list_object_versions", e))?;
            let mut ids = Vec::new();
            for v in out.versions() {
                if keep_current && v.is_latest() == Some(true) {
                    continue;
                }
                if !exact || v.key() == Some(key) {
                    ids.push((
                        v.key().unwrap_or_default().to_owned(),
                        v.version_id().map(str::to_owned),
                    ));
                }
            }
            for m in out.delete_markers() {
                if !exact || m.key() == Some(key) {
                    ids.push((
                        m.key().unwrap_or_default().to_owned(),
                        m.version_id().map(str::to_owned),
                    ));
                }
            }
            if ids.is_empty() {
                return Ok(deleted);
            }
            let count = ids.len().min(DELETE_OBJECTS_LIMIT);
            self.delete_batch(&ids[..count]).await?;
            deleted += count;
        }
    }
}

/// An object read as a stream.
pub struct ObjectStream {
    pub body: ByteStream,
    pub content_type: Option<String>,
    pub length: Option<i64>,
}

impl BlobStore {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Opens an object for streaming; `None` when it does not exist.
    pub async fn open(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectStream {
                content_type: out.content_type().map(str::to_owned),
                length: out.content_length(),
                body: out.body,
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(failure("get_object", e)),
        }
    }

    /// Starts a multipart upload to `key` with SSE-KMS under the customer key.
    pub async fn start_upload(&self, key: &str, content_type: &str) -> Result<Upload, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .send()
            .await
            .map_err(|e| failure("create_multipart_upload", e))?;
        let upload_id = out.upload_id().unwrap_or_default().to_owned();
        self.abort_other_uploads(key, &upload_id).await?;
        Ok(Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            parts: Vec::new(),
            bytes: 0,
            open: true,
        })
    }

    /// Aborts every incomplete upload to exactly `key` but `keep`: one an earlier attempt
    /// left, or the twin of `keep` that a retried `CreateMultipartUpload` opened when the
    /// first answer was lost (S3 applies each create; nothing else would ever abort it).
    async fn abort_other_uploads(&self, key: &str, keep: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| failure("list_multipart_uploads", e))?;
        for upload in out.uploads() {
            let Some(id) = upload.upload_id() else {
                continue;
            };
            if upload.key() != Some(key) || id == keep {
                continue;
            }
            match self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => {}
                Err(e) => return Err(failure("abort_multipart_upload", e)),
            }
        }
        Ok(())
    }

    /// A presigned GET of `key`, valid for `expires` (callers keep it ≤ 15 minutes),
    /// downloaded as `filename`.
    pub async fn presign_get(
        &self,
        key: &str,
        expires: std::time::Duration,
        filename: &str,
    ) -> Result<String, StoreError> {
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(expires).map_err(|e| {
                StoreError {
                    operation: "presign",
                    retry: Retry::Permanent,
                    source: Some(Box::new(e)),
                }
            })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(format!("attachment; filename=\"{filename}\""))
            .presigned(config)
            .await
            .map_err(|e| failure("presign_get", e))?;
        Ok(req.uri().to_owned())
    }
}

/// A multipart upload in progress. Parts are sent as the caller fills them (S3 needs
/// at least 5 MiB for every part but the last); dropping it unfinished leaves an
/// incomplete upload that the caller aborts, or the bucket's lifecycle rule removes.
pub struct Upload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    bytes: u64,
    open: bool,
}

impl Upload {
    /// Sends the next part.
    pub async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        self.bytes += bytes.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failure("upload_part", e))?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub async fn complete(mut self) -> Result<u64, StoreError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failure("complete_multipart_upload", e))?;
        self.open = false;
        Ok(self.bytes)
    }

    pub async fn abort(mut self) {
        self.open = false;
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
        {
            failure("abort_multipart_upload", e);
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.open {
            tracing::warn!(
                operation = "multipart_upload",
                "upload dropped unfinished; the lifecycle rule removes its parts"
            );
        }
    }
}

struct S3Body(ByteStream);

#[async_trait::async_trait]
impl usecases::ports::ObjectBody for S3Body {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0.try_next().await {
            Ok(chunk) => Ok(chunk.map(|b| b.to_vec())),
            Err(e) => Err(StoreError {
                operation: "get_object_body",
                retry: Retry::Transient,
                source: Some(Box::new(e)),
            }),
        }
    }
}

#[async_trait::async_trait]
impl usecases::ports::ObjectUpload for Upload {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        Upload::part(self, bytes).await
    }
    fn bytes(&self) -> u64 {
        Upload::bytes(self)
    }
    async fn complete(self: Box<Self>) -> Result<u64, StoreError> {
        Upload::complete(*self).await
    }
    async fn abort(self: Box<Self>) {
        Upload::abort(*self).await
    }
}

#[async_trait::async_trait]
impl usecases::ports::Objects for BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        BlobStore::put(self, key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        BlobStore::get(self, key).await
    }
    async fn delete_all_versions(&self, key: &str) -> Result<usize, StoreError> {
        BlobStore::delete_all_versions(self, key).await
    }
    async fn delete_all_versions_under(&self, prefix: &str) -> Result<usize, StoreError> {
        BlobStore::delete_all_versions_under(self, prefix).await
    }
    async fn delete_noncurrent_versions(&self, key: &str) -> Result<usize, StoreError> {
        BlobStore::delete_noncurrent_versions(self, key).await
    }
    async fn version_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        BlobStore::version_keys(self, prefix).await
    }
    async fn count_versions(&self, prefix: &str, exact: bool) -> Result<usize, StoreError> {
        BlobStore::count_versions(self, prefix, exact).await
    }
    async fn open(&self, key: &str) -> Result<Option<usecases::ports::ObjectReader>, StoreError> {
        Ok(BlobStore::open(self, key)
            .await?
            .map(|s| usecases::ports::ObjectReader {
                content_type: s.content_type,
                length: s.length,
                body: Box::new(S3Body(s.body)),
            }))
    }
    async fn start_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<Box<dyn usecases::ports::ObjectUpload>, StoreError> {
        Ok(Box::new(
            BlobStore::start_upload(self, key, content_type).await?,
        ))
    }
    async fn presign_get(
        &self,
        key: &str,
        expires: std::time::Duration,
        filename: &str,
    ) -> Result<String, StoreError> {
        BlobStore::presign_get(self, key, expires, filename).await
    }
    async fn delete_all_versions_under_each(
        &self,
        prefixes: &[String],
    ) -> Result<usize, StoreError> {
        BlobStore::delete_all_versions_under_each(self, prefixes).await
    }
}

impl BlobStore {
    /// Every version and delete marker under each of `prefixes`: listed per prefix, then
    /// deleted across prefixes in DeleteObjects requests of up to 1 000 (the retention
    /// sweep erases many subjects at once); how many went.
    pub async fn delete_all_versions_under_each(
        &self,
        prefixes: &[String],
    ) -> Result<usize, StoreError> {
        let mut ids: Vec<(String, Option<String>)> = Vec::new();
        for prefix in prefixes {
            let (mut key_marker, mut version_marker) = (None, None);
            loop {
                let out = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker)
                    .set_version_id_marker(version_marker)
                    .send()
                    .await
                    .map_err(|e| failure("list_object_versions", e))?;
                for v in out.versions() {
                    ids.push((
                        v.key().unwrap_or_default().to_owned(),
                        v.version_id().map(str::to_owned),
                    ));
                }
                for m in out.delete_markers() {
                    ids.push((
                        m.key().unwrap_or_default().to_owned(),
                        m.version_id().map(str::to_owned),
                    ));
                }
                if out.is_truncated() != Some(true) {
                    break;
                }
                key_marker = out.next_key_marker().map(str::to_owned);
                version_marker = out.next_version_id_marker().map(str::to_owned);
            }
        }
        let mut deleted = 0;
        for chunk in ids.chunks(DELETE_OBJECTS_LIMIT) {
            self.delete_batch(chunk).await?;
            deleted += chunk.len();
        }
        Ok(deleted)
    }
}

/// S3's limit of keys (versions) in one DeleteObjects request.
pub const DELETE_OBJECTS_LIMIT: usize = 1000;
