use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is not a valid id")]
    Invalid,
}

/// An opaque id we issue: a UUIDv7 (time-ordered, random in its low bits, no personal data).
macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses an id from its hyphenated form. Only version-7 UUIDs are ids we issued.
            pub fn parse(input: &str) -> Result<Self, IdError> {
                let uuid = Uuid::try_parse(input).map_err(|_| IdError::Invalid)?;
                if uuid.get_version_num() != 7 || input.len() != 36 {
                    return Err(IdError::Invalid);
                }
                Ok(Self(uuid))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

opaque_id!(
    /// The opaque id of a lead, which is also the data subject's id.
    LeadId
);
opaque_id!(
    /// The opaque id of a data-subject request (R4).
    RequestId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R1.3: a new lead id is an opaque UUID v7: it parses back, and parsing refuses a v4, a
    /// non-UUID and the unhyphenated form.
    #[test]
    fn round_trips_and_rejects_other_uuids() {
        let id = LeadId::new();
        assert_eq!(LeadId::parse(&id.to_string()), Ok(id));
        assert!(
            LeadId::parse("6f9619ff-8b86-4d11-b42d-00c04fc964ff").is_err(),
            "v4"
        );
        assert!(LeadId::parse("not-an-id").is_err());
        assert!(LeadId::parse(&id.to_string().replace('-', "")).is_err());
    }

    #[test]
    fn ids_are_unique_and_ordered_by_time() {
        let a = LeadId::new();
        let b = LeadId::new();
        assert_ne!(a, b);
        assert!(a.to_string() < b.to_string());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = LeadId::parse(&s);
        }
    }
}
