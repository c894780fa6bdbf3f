//! Data-subject requests (R4): intake and verification (`service`), the export worker
//! (`export`), the other rights (`rights`), the staff side (`staff`) and the streaming ZIP
//! writer (`zip`). The request types, deadlines and texts live in `domain::dsar`.
//!
//! A request never carries personal data in a key or index attribute: it is addressed by
//! an opaque id, the identifiers it names are stored as blind indexes plus a sealed copy
//! that goes away when the request is closed (R3: request records keep no content).

pub mod export;
pub mod rights;
pub mod service;
pub mod staff;
pub mod zip;

pub use domain::dsar::*;
