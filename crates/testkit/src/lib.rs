//! In-memory fakes of the use cases' ports, for tests that need no emulator. Each fake
//! keeps the promise its AWS adapter keeps (conditions, versions, the 25-item batch limit,
//! keys bound to their subject) and can be told to fail, so a test shows what a use case
//! does under a fault. The moto-backed integration tests stay for the AWS floor itself.

pub mod dnc;
pub mod dsar;
pub mod fault;
pub mod keys;
pub mod leads;
pub mod ledger;
pub mod mail;
pub mod objects;
pub mod outbox;
pub mod retell;
pub mod retention;
pub mod telephony;
pub mod world;

pub use dnc::MemoryDoNotCall;
pub use domain::{Clock, FixedClock};
pub use dsar::{
    MemoryCallDeleter, MemoryDeadLetters, MemoryRequests, MemorySubjects, PlainArchives,
};
pub use fault::FaultSwitch;
pub use keys::FakeKeyService;
pub use leads::MemoryLeadStore;
pub use ledger::{MemoryLedgerStore, MemorySigner};
pub use mail::MemoryMailer;
pub use objects::MemoryObjects;
pub use outbox::MemoryOutbox;
pub use retention::MemoryRetentionStore;
pub use telephony::{
    MemoryAuditTrail, MemoryCallRequests, MemoryCallStore, MemoryMetrics, MemoryProvider,
    MemoryRecordingCopier,
};
pub use world::World;

/// Fakes of the analytics export job's ports (R6).
pub mod analytics;
