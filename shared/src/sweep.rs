//! The retention sweep wired to AWS: the use case (`usecases::retention`) over the
//! DynamoDB retention store, the lead store and the S3 buckets.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws::retention::DynamoRetentionStore;
use aws::s3::BlobStore;
use usecases::ports::StoreError;
pub use usecases::retention::{ClassCount, SweepReport, SweepRequest, BATCH_WRITE_LIMIT};

pub struct Sweeper {
    inner: usecases::retention::Sweeper,
    /// The size of every BatchWriteItem request sent (tests check the 25 limit).
    pub batch_sizes: Arc<Mutex<Vec<usize>>>,
}

impl Sweeper {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: String,
        key_table: String,
        blobs: BlobStore,
    ) -> Self {
        let store = DynamoRetentionStore::new(ddb, table, key_table);
        let batch_sizes = store.batch_sizes.clone();
        let leads = Arc::new(store.lead_store());
        Self {
            inner: usecases::retention::Sweeper::new(Arc::new(store), leads, Arc::new(blobs)),
            batch_sizes,
        }
    }

    /// Sweeps the exports bucket too (the `export` class).
    pub fn with_exports(mut self, exports: BlobStore) -> Self {
        self.inner = self.inner.with_exports(Arc::new(exports));
        self
    }

    /// One run. Items not reached before `budget` runs out stay due for the next run.
    pub async fn run(
        &self,
        req: SweepRequest,
        budget: StdDuration,
    ) -> Result<SweepReport, StoreError> {
        self.inner.run(req, budget).await
    }
}
