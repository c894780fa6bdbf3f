//! The do-not-call list in memory, with the adapter's rules: first date kept, sources
//! added, a lift kept with its date and reason and cleared by a new listing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use domain::crypto::BlindIndex;
use usecases::dnc::{DncEntry, DncSource, DoNotCall, LiftReason};
use usecases::ports::{Retry, StoreError};

use crate::FaultSwitch;

/// Entries by blind index; clones share them.
#[derive(Clone, Default)]
pub struct MemoryDoNotCall {
    entries: Arc<Mutex<HashMap<String, DncEntry>>>,
    fault: FaultSwitch,
}

impl MemoryDoNotCall {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of a blind index, as stored.
    pub fn get(&self, phone: &str) -> Option<DncEntry> {
        self.entries.lock().unwrap().get(phone).cloned()
    }

    /// Number of entries (listed or lifted).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }
}

#[async_trait]
impl DoNotCall for MemoryDoNotCall {
    async fn entry(&self, phone: &BlindIndex) -> Result<Option<DncEntry>, StoreError> {
        self.fault.check("dnc_entry")?;
        Ok(self.get(phone.as_str()))
    }

    async fn list(
        &self,
        phone: &BlindIndex,
        source: DncSource,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.fault.check("dnc_list")?;
        let mut entries = self.entries.lock().unwrap();
        match entries.get_mut(phone.as_str()) {
            None => {
                entries.insert(
                    phone.as_str().to_owned(),
                    DncEntry {
                        listed_at: at,
                        sources: BTreeSet::from([source]),
                        lifted: None,
                    },
                );
                Ok(true)
            }
            Some(e) => {
                let changed = e.lifted.is_some() || !e.sources.contains(&source);
                e.sources.insert(source);
                e.lifted = None;
                Ok(changed)
            }
        }
    }

    async fn lift(
        &self,
        phone: &BlindIndex,
        reason: LiftReason,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.fault.check("dnc_lift")?;
        let mut entries = self.entries.lock().unwrap();
        match entries.get_mut(phone.as_str()) {
            Some(e) if e.lifted.is_none() => {
                e.lifted = Some((at, reason));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
