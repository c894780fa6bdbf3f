//! A world of fakes wired to one clock: every port the use cases need, in memory, and
//! the use cases built over them. Tests start from `World::new()` and look at the fakes
//! afterwards.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::FixedClock;
use usecases::retention::Sweeper;
use usecases::signup::LeadService;

use crate::{FakeKeyService, MemoryLeadStore, MemoryMailer, MemoryObjects, MemoryRetentionStore};

/// The instant every world starts at, unless told otherwise.
pub const START: &str = "2026-11-28T10:00:00Z";

pub struct World {
    pub clock: FixedClock,
    pub keys: Arc<FakeKeyService>,
    pub leads: MemoryLeadStore,
    /// The recordings bucket (audio, sealed transcripts).
    pub recordings: MemoryObjects,
    /// The exports bucket (data-subject export packages).
    pub exports: MemoryObjects,
    pub mailer: MemoryMailer,
    pub retention: MemoryRetentionStore,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        Self::at(
            DateTime::parse_from_rfc3339(START)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            clock: FixedClock::at(now),
            keys: Arc::new(FakeKeyService::new()),
            leads: MemoryLeadStore::new(),
            recordings: MemoryObjects::new(),
            exports: MemoryObjects::new(),
            mailer: MemoryMailer::new(),
            retention: MemoryRetentionStore::new(),
        }
    }

    /// The sign-up use case (R1) over this world.
    pub fn signup(&self) -> LeadService {
        LeadService::new(
            Arc::new(self.leads.clone()),
            self.keys.clone(),
            Arc::new(self.clock.clone()),
        )
    }

    /// The retention sweep (R3) over this world, exports bucket included.
    pub fn sweeper(&self) -> Sweeper {
        Sweeper::new(
            Arc::new(self.retention.clone()),
            Arc::new(self.leads.clone()),
            Arc::new(self.recordings.clone()),
        )
        .with_exports(Arc::new(self.exports.clone()))
    }
}
