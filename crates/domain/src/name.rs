use super::text::is_forbidden_inline;

/// Longest accepted name, in characters after trimming (R1.2).
pub const MAX_NAME_CHARS: usize = 100;

/// A first or last name as the person typed it, trimmed.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName(String);

/// Why a name was rejected. Never carries the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 100 characters")]
    TooLong,
    #[error("must not contain control or invisible formatting characters")]
    ForbiddenCharacter,
}

impl NameError {
    /// Stable machine-readable code for problem+json.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::ForbiddenCharacter => "forbidden_character",
        }
    }
}

impl PersonName {
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if trimmed.chars().any(is_forbidden_inline) {
            return Err(NameError::ForbiddenCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name itself. Call only where the plaintext is needed (encryption, email text).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PersonName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonName(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R1.2: real names (accents, apostrophes, CJK, one letter) are accepted and trimmed; 100
    /// characters are accepted, counted as characters, not bytes.
    #[test]
    fn accepts_real_names() {
        for ok in [
            "Anna",
            "  Jürgen ",
            "Zoë-Marie",
            "O'Brien",
            "李",
            "Ñúñez de la Peña",
            "X",
        ] {
            assert!(PersonName::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
        assert_eq!(PersonName::parse("  Jürgen ").unwrap().expose(), "Jürgen");
        assert!(PersonName::parse(&"a".repeat(100)).is_ok());
        assert!(
            PersonName::parse(&"ä".repeat(100)).is_ok(),
            "limit counts characters"
        );
    }

    /// R1.2: empty, blank, 101-character names and names with control, bidi, zero-width or
    /// non-characters are refused with the rule that failed.
    #[test]
    fn rejects_bad_names_with_the_rule_that_failed() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("   \t ", NameError::Empty),
            (&"a".repeat(101), NameError::TooLong),
            ("Anna\u{0000}", NameError::ForbiddenCharacter),
            ("An\nna", NameError::ForbiddenCharacter),
            ("Anna\u{202E}nnA", NameError::ForbiddenCharacter),
            ("An\u{200B}na", NameError::ForbiddenCharacter),
            ("Anna\u{FFFF}", NameError::ForbiddenCharacter),
        ];
        for (input, expected) in cases {
            assert_eq!(PersonName::parse(input), Err(*expected), "{input:?}");
        }
    }

    /// R5.3: a name's `Debug` form is `PersonName(<redacted>)`.
    #[test]
    fn debug_does_not_show_the_name() {
        let name = PersonName::parse("Geheimname").unwrap();
        assert_eq!(format!("{name:?}"), "PersonName(<redacted>)");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = PersonName::parse(&s);
        }

        #[test]
        fn accepted_names_are_trimmed_and_bounded(s in "\\PC{0,120}") {
            if let Ok(name) = PersonName::parse(&s) {
                prop_assert_eq!(name.expose(), name.expose().trim());
                prop_assert!(name.expose().chars().count() <= MAX_NAME_CHARS);
            }
        }
    }
}
