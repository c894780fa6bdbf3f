//! The domain of the Polly backend, free of any cloud SDK (a test keeps it so): validated
//! types for what people give us, ids, consent, retention classes and their dates, the
//! processing registry (and the Art. 30 record built from it), data-subject request types
//! and deadlines, the texts that reach data subjects, the envelope-encryption primitives
//! and the clock.
//!
//! Untrusted input becomes one of these types at the edge through `parse`; inner code
//! only ever sees the parsed type.
//!
//! Parse errors name the rule that failed, never the input: they end up in problem+json
//! responses and logs.

pub mod calling_hours;
pub mod clock;
pub mod crm;
pub mod crypto;
pub mod dsar;
mod email;
mod ids;
mod lead;
pub mod ledger;
mod name;
mod notes;
mod phone;
pub mod registry;
pub mod retention;
pub mod sales;
mod text;
mod user_agent;
pub mod wav;

/// The input limits the validators enforce (the OpenAPI description states them too).
pub use email::MAX_EMAIL_CHARS;
pub use email::{Email, EmailError};
pub use ids::{IdError, LeadId, RequestId};
pub use lead::{ConsentEvidence, ConsentMethod, LeadProfile, TechnicalData, CALL_COOLDOWN};
pub use name::MAX_NAME_CHARS;
pub use name::{NameError, PersonName};
pub use notes::MAX_NOTES_CHARS;
pub use notes::{Notes, NotesError};
pub use phone::MAX_PHONE_INPUT_CHARS;
pub use phone::{PhoneError, PhoneNumber};
pub use retention::RetentionClass;
pub use user_agent::ClientSoftware;

pub use clock::{Clock, FixedClock, SystemClock};
