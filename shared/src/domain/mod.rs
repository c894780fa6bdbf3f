//! Validated domain types. Untrusted input becomes one of these at the edge through
//! `parse`; inner code only ever sees the parsed type.
//!
//! Parse errors name the rule that failed, never the input: they end up in problem+json
//! responses and logs.

mod email;
mod ids;
mod lead;
mod name;
mod notes;
mod phone;
pub mod registry;
pub mod retention;
mod text;
mod user_agent;

pub use email::{Email, EmailError};
pub use ids::{IdError, LeadId, RequestId};
pub use lead::{ConsentEvidence, ConsentMethod, LeadProfile, TechnicalData};
pub use name::{NameError, PersonName};
pub use notes::{Notes, NotesError};
pub use phone::{PhoneError, PhoneNumber};
pub use retention::RetentionClass;
pub use user_agent::ClientSoftware;
