//! The provider-deletion outbox in memory: one entry per call id, as the DynamoDB
//! adapter keeps it (an entry already queued keeps its attempts).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use usecases::outbox::{PendingDeletion, ProviderOutbox};
use usecases::ports::{Retry, StoreError};

use crate::fault::FaultSwitch;

#[derive(Clone, Default)]
pub struct MemoryOutbox {
    entries: Arc<Mutex<BTreeMap<String, PendingDeletion>>>,
    fault: FaultSwitch,
}

impl MemoryOutbox {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }
    pub fn heal(&self) {
        self.fault.heal();
    }
    /// The entries held now, by call id.
    pub fn entries(&self) -> Vec<PendingDeletion> {
        self.entries.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl ProviderOutbox for MemoryOutbox {
    async fn enqueue(&self, entries: &[PendingDeletion]) -> Result<(), StoreError> {
        self.fault.check("outbox_enqueue")?;
        let mut held = self.entries.lock().unwrap();
        for e in entries {
            held.entry(e.call_id.clone()).or_insert_with(|| e.clone());
        }
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<PendingDeletion>, StoreError> {
        self.fault.check("outbox_pending")?;
        Ok(self.entries())
    }

    async fn update(&self, entry: &PendingDeletion) -> Result<(), StoreError> {
        self.fault.check("outbox_update")?;
        self.entries
            .lock()
            .unwrap()
            .insert(entry.call_id.clone(), entry.clone());
        Ok(())
    }

    async fn remove(&self, call_id: &str) -> Result<(), StoreError> {
        self.fault.check("outbox_remove")?;
        self.entries.lock().unwrap().remove(call_id);
        Ok(())
    }
}
