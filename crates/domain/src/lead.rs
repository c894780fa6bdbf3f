use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::{ClientSoftware, Email, Notes, PersonName, PhoneNumber};

/// What a person told us on the sign-up form (R3 category "sign-up").
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeadProfile {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub email: Email,
    pub phone: PhoneNumber,
    pub notes: Option<Notes>,
}

/// Technical data of the sign-up request (R3 category "technical").
#[derive(Clone, PartialEq, Eq)]
pub struct TechnicalData {
    pub source_ip: Option<IpAddr>,
    pub accessed_at: DateTime<Utc>,
    pub client: Option<ClientSoftware>,
}

impl std::fmt::Debug for TechnicalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TechnicalData")
            .field("source_ip", &"<redacted>")
            .field("accessed_at", &self.accessed_at)
            .field("client", &self.client)
            .finish()
    }
}

/// How a consent was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    /// The sign-up form's "contact me by phone" checkbox.
    WebForm,
}

/// Evidence of the consent to be called (Art. 7(1) GDPR, §7a UWG): what text version the
/// person agreed to, when and how. The source IP belongs to it too; it is stored encrypted
/// with the technical data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEvidence {
    pub contact_by_phone: bool,
    pub policy_version: String,
    pub given_at: DateTime<Utc>,
    pub method: ConsentMethod,
}

/// No second call to the same subject within this time of the last request (R1.4).
pub const CALL_COOLDOWN: chrono::Duration = chrono::Duration::hours(24);
