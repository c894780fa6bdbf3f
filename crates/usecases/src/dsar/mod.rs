//! Data-subject requests (R4): intake and verification (`intake`), the export worker
//! (`export`), the other rights (`rights`), the staff actions (`staff`: identity checks,
//! extensions, denials, subjects, contracts, the analytics export), the analytics files as
//! derived data (`analytics`), and what they share
//! (`common`, the typed
//! `records` and the `ports`). The request types, deadlines and texts live in
//! `domain::dsar`; the AWS implementations of the ports in `aws::dsar*`.
//!
//! A request never carries personal data in a key or index attribute: it is addressed by
//! an opaque id, the identifiers it names are stored as blind indexes plus a sealed copy
//! that goes away when the request is closed (R3: request records keep no content).

pub mod analytics;
pub mod analytics_job;
pub mod common;
pub mod digest;
pub mod erasure_window;
pub mod export;
pub mod figures;
pub mod intake;
pub mod ports;
pub mod records;
pub mod requests;
pub mod rights;
pub mod staff;
pub mod worker;
