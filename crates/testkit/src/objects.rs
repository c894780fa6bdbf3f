//! A versioned bucket in memory: every put adds a version, deleting an object removes
//! every version of it (as the S3 adapter does with versions and delete markers),
//! uploads become visible only when completed, and a failed part leaves nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::fault::FaultSwitch;
use async_trait::async_trait;
use usecases::ports::{ObjectBody, ObjectReader, ObjectUpload, Objects, Retry, StoreError};

#[derive(Clone, Debug)]
struct Version {
    bytes: Vec<u8>,
    content_type: Option<String>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Vec<Version>>,
    /// Uploads started and not yet completed or aborted.
    open_uploads: usize,
}

/// A bucket in memory; clones share the same objects.
#[derive(Clone, Default)]
pub struct MemoryObjects {
    state: Arc<Mutex<State>>,
    fault: FaultSwitch,
}

impl MemoryObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }

    /// The keys that hold at least one version.
    pub fn keys(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }

    /// The newest version of `key`.
    pub fn latest(&self, key: &str) -> Option<Vec<u8>> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(key)
            .and_then(|v| v.last())
            .map(|v| v.bytes.clone())
    }

    /// Uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.lock().unwrap().open_uploads
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        self.fault.check(operation)
    }

    fn insert(&self, key: &str, bytes: Vec<u8>, content_type: Option<String>) {
        self.state
            .lock()
            .unwrap()
            .objects
            .entry(key.to_owned())
            .or_default()
            .push(Version {
                bytes,
                content_type,
            });
    }
}

struct MemoryBody(Option<Vec<u8>>);

#[async_trait]
impl ObjectBody for MemoryBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.take())
    }
}

struct MemoryUpload {
    bucket: MemoryObjects,
    key: String,
    content_type: String,
    bytes: Vec<u8>,
}

#[async_trait]
impl ObjectUpload for MemoryUpload {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.bucket.check("upload_part")?;
        self.bytes.extend_from_slice(&bytes);
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn complete(self: Box<Self>) -> Result<u64, StoreError> {
        self.bucket.check("complete_multipart_upload")?;
        let size = self.bytes.len() as u64;
        self.bucket.state.lock().unwrap().open_uploads -= 1;
        self.bucket
            .insert(&self.key, self.bytes, Some(self.content_type));
        Ok(size)
    }

    async fn abort(self: Box<Self>) {
        self.bucket.state.lock().unwrap().open_uploads -= 1;
    }
}

#[async_trait]
impl Objects for MemoryObjects {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.check("put_object")?;
        self.insert(key, bytes, None);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check("get_object")?;
        Ok(self.latest(key))
    }

    async fn delete_all_versions(&self, key: &str) -> Result<usize, StoreError> {
        self.check("delete_objects")?;
        let removed = self.state.lock().unwrap().objects.remove(key);
        Ok(removed.map_or(0, |v| v.len()))
    }

    async fn delete_noncurrent_versions(&self, key: &str) -> Result<usize, StoreError> {
        self.check("delete_objects")?;
        let mut s = self.state.lock().unwrap();
        let Some(versions) = s.objects.get_mut(key) else {
            return Ok(0);
        };
        let noncurrent = versions.len().saturating_sub(1);
        versions.drain(..noncurrent);
        Ok(noncurrent)
    }

    async fn delete_all_versions_under(&self, prefix: &str) -> Result<usize, StoreError> {
        self.check("delete_objects")?;
        let mut s = self.state.lock().unwrap();
        let keys: Vec<String> = s
            .objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        Ok(keys
            .iter()
            .filter_map(|k| s.objects.remove(k))
            .map(|v| v.len())
            .sum())
    }

    async fn version_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.check("list_object_versions")?;
        let s = self.state.lock().unwrap();
        Ok(s.objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .flat_map(|(k, v)| std::iter::repeat_n(k.clone(), v.len()))
            .collect())
    }

    async fn count_versions(&self, prefix: &str, exact: bool) -> Result<usize, StoreError> {
        self.check("list_object_versions")?;
        let s = self.state.lock().unwrap();
        Ok(s.objects
            .iter()
            .filter(|(k, _)| {
                if exact {
                    *k == prefix
                } else {
                    k.starts_with(prefix)
                }
            })
            .map(|(_, v)| v.len())
            .sum())
    }

    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        self.check("get_object")?;
        let s = self.state.lock().unwrap();
        Ok(s.objects
            .get(key)
            .and_then(|v| v.last())
            .map(|v| ObjectReader {
                content_type: v.content_type.clone(),
                length: Some(v.bytes.len() as i64),
                body: Box::new(MemoryBody(Some(v.bytes.clone()))),
            }))
    }

    async fn start_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<Box<dyn ObjectUpload>, StoreError> {
        self.check("create_multipart_upload")?;
        self.state.lock().unwrap().open_uploads += 1;
        Ok(Box::new(MemoryUpload {
            bucket: self.clone(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            bytes: Vec::new(),
        }))
    }

    async fn presign_get(
        &self,
        key: &str,
        expires: std::time::Duration,
        _filename: &str,
    ) -> Result<String, StoreError> {
        self.check("presign_get")?;
        Ok(format!("memory://{key}?expires={}", expires.as_secs()))
    }
}
