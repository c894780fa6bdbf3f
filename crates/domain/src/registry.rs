//! The processing registry: one table, in code, of what we process, why, on which legal
//! basis, who receives it, where it goes and how long it stays. It is the single source
//! for the retention sweep, the Art. 15 information in data-subject exports and the
//! Art. 30 record of processing activities.

use super::retention::{ContractRecords, RetentionClass};

/// A recipient (or category of recipients) of personal data (§6.2 of the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    pub name: &'static str,
    pub role: &'static str,
    pub country: &'static str,
    /// Safeguard for a transfer outside the EU/EEA (Art. 46), if any.
    pub transfer_safeguard: Option<&'static str>,
}

pub const RETELL_AI: Recipient = Recipient {
    name: "RetellAI, Inc.",
    role: "processor: telephony and voice agent platform",
    country: "USA",
    transfer_safeguard: Some("standard contractual clauses, Art. 46(2)(c) GDPR"),
};
pub const ELEVENLABS: Recipient = Recipient {
    name: "ElevenLabs",
    role: "sub-processor: speech synthesis",
    country: "USA",
    transfer_safeguard: Some("standard contractual clauses, Art. 46(2)(c) GDPR"),
};
pub const OPENAI: Recipient = Recipient {
    name: "OpenAI, L.L.C.",
    role: "sub-processor: conversation processing",
    country: "USA",
    transfer_safeguard: Some("standard contractual clauses, Art. 46(2)(c) GDPR"),
};
pub const AWS: Recipient = Recipient {
    name: "Amazon Web Services EMEA SARL",
    role: "processor: hosting in Frankfurt (eu-central-1)",
    country: "Germany (EU)",
    transfer_safeguard: None,
};

/// The CRM the follow-up records go to (issue 17), when `CRM_WEBHOOK_URL` is configured:
/// sales, the internal recipient the policy names (6.1), through the CRM it works in.
/// Not in the static categories below: the Art. 15 information and the Art. 30 record
/// name it only when it is configured.
pub const CRM: Recipient = Recipient {
    name: "CRM (sales follow-up)",
    role: "internal recipient: sales follow-up of analysed calls (policy 6.1), by signed webhook",
    country: "Germany (EU)",
    transfer_safeguard: None,
};

/// A category of personal data (REQUIREMENTS.md, "Data the system holds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCategory {
    pub code: &'static str,
    pub fields: &'static str,
    pub legal_basis: &'static str,
    pub retention: Option<RetentionClass>,
    pub recipients: &'static [Recipient],
}

pub const CATEGORIES: &[DataCategory] = &[
    DataCategory {
        code: "signup",
        fields: "first name, last name, email, phone, sign-up time, notes",
        legal_basis: "Art. 6(1)(b) GDPR",
        retention: Some(RetentionClass::Lead),
        recipients: &[AWS, RETELL_AI],
    },
    DataCategory {
        code: "technical",
        fields: "source IP, access time, device / OS / browser family and version",
        legal_basis: "Art. 6(1)(b), (f) GDPR",
        retention: Some(RetentionClass::Lead),
        recipients: &[AWS],
    },
    DataCategory {
        code: "call_metadata",
        fields: "call id, start, end, duration, direction, numbers, disconnection reason, agent id and version",
        legal_basis: "Art. 6(1)(b) GDPR",
        retention: Some(RetentionClass::Lead),
        recipients: &[AWS, RETELL_AI],
    },
    DataCategory {
        code: "call_content",
        fields: "call analysis: summary, answers the person gave",
        legal_basis: "Art. 6(1)(b) GDPR",
        retention: Some(RetentionClass::Lead),
        recipients: &[AWS, RETELL_AI, OPENAI],
    },
    DataCategory {
        code: "recording",
        fields: "audio recording, verbatim transcript",
        legal_basis: "Art. 6(1)(a) GDPR (consent given in the call)",
        retention: Some(RetentionClass::Recording),
        recipients: &[AWS, RETELL_AI, ELEVENLABS, OPENAI],
    },
    DataCategory {
        code: "consent_evidence",
        fields: "what was consented to (text version), when, how, IP address or call id",
        legal_basis: "Art. 6(1)(c), Art. 7(1) GDPR; §7a UWG",
        retention: Some(RetentionClass::PhoneConsentProof),
        recipients: &[AWS],
    },
    DataCategory {
        code: "contract",
        fields: "contract start, end, reference",
        legal_basis: "Art. 6(1)(b), (c) GDPR; §257 HGB, §147 AO",
        retention: Some(RetentionClass::Contract(ContractRecords::Books)),
        recipients: &[AWS],
    },
    DataCategory {
        code: "data_subject_requests",
        fields: "type, status, dates, outcome",
        legal_basis: "Art. 6(1)(c) GDPR",
        retention: Some(RetentionClass::Request),
        recipients: &[AWS],
    },
    // R7.1: kept for as long as the objection must be honoured, also after an erasure of
    // everything else (no retention class: the sweep and erasure never touch it).
    DataCategory {
        code: DO_NOT_CALL,
        fields: "phone number as a keyed blind index only, date first listed, sources \
                 (objection, objection in a call, never signed up, staff), date and reason \
                 of a lift",
        legal_basis: "Art. 6(1)(c), Art. 17(3)(b), Art. 21(3) GDPR; §7 UWG",
        retention: None,
        recipients: &[AWS],
    },
];

/// The do-not-call list's category (R7.1): not erased with the subject's other data.
pub const DO_NOT_CALL: &str = "do_not_call";

/// The categories an erasure removes: all but the do-not-call listing, which outlives it.
pub fn erased_categories() -> impl Iterator<Item = &'static DataCategory> {
    CATEGORIES.iter().filter(|c| c.code != DO_NOT_CALL)
}

/// A processing activity (Art. 30(1)(b)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose {
    pub code: &'static str,
    pub description: &'static str,
    pub categories: &'static [&'static str],
}

pub const PURPOSES: &[Purpose] = &[
    Purpose {
        code: "callback",
        description:
            "Calling people who asked for a call on the sign-up form and following up with offers",
        categories: &[
            "signup",
            "technical",
            "call_metadata",
            "call_content",
            "consent_evidence",
        ],
    },
    Purpose {
        code: "call_recording",
        description:
            "Recording and transcribing calls where the person consented, for quality and follow-up",
        categories: &["recording"],
    },
    Purpose {
        code: "contract_records",
        description: "Keeping records of concluded contracts as commercial and tax law requires",
        categories: &["contract"],
    },
    Purpose {
        code: "data_subject_rights",
        description:
            "Handling requests under Art. 15 to 21 GDPR and proving that they were handled",
        categories: &["data_subject_requests", DO_NOT_CALL],
    },
];

/// The category record for a code.
pub fn category(code: &str) -> Option<&'static DataCategory> {
    CATEGORIES.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purpose_names_known_categories() {
        for p in PURPOSES {
            for c in p.categories {
                assert!(
                    category(c).is_some(),
                    "{} names unknown category {c}",
                    p.code
                );
            }
        }
    }

    #[test]
    fn every_us_recipient_has_a_transfer_safeguard() {
        for c in CATEGORIES {
            for r in c.recipients {
                if r.country == "USA" {
                    assert!(r.transfer_safeguard.is_some(), "{}", r.name);
                }
            }
        }
    }

    #[test]
    fn signup_data_follows_the_lead_class() {
        assert_eq!(
            category("signup").unwrap().retention,
            Some(RetentionClass::Lead)
        );
    }
}
