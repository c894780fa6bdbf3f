//! In-memory fakes of the use cases' ports, for tests that need no emulator. Each fake
//! keeps the promise its AWS adapter keeps (conditions, versions, the 25-item batch limit,
//! keys bound to their subject) and can be told to fail, so a test shows what a use case
//! does under a fault. The moto-backed integration tests stay for the AWS floor itself.

pub mod keys;
pub mod mail;
pub mod objects;
pub mod telephony;

pub use domain::{Clock, FixedClock};
pub use keys::FakeKeyService;
pub use mail::MemoryMailer;
pub use objects::MemoryObjects;
pub use telephony::{
    MemoryAuditTrail, MemoryCallRequests, MemoryCallStore, MemoryMetrics, MemoryProvider,
    MemoryRecordingCopier,
};
