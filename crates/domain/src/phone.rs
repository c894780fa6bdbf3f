use phonenumber::{country, Mode};

/// Longest raw input we hand to the phone parser. Real numbers, even written with spaces
/// and punctuation, stay well below this; longer input is rejected before parsing.
pub const MAX_PHONE_INPUT_CHARS: usize = 32;

/// A dialable phone number in E.164 form (`+491701234567`). Input without a country
/// code is read as German (R1.2).
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("must not be empty")]
    Empty,
    #[error("is too long")]
    TooLong,
    #[error("contains characters a phone number cannot have")]
    ForbiddenCharacter,
    #[error("is not a valid, dialable phone number")]
    Invalid,
}

impl PhoneError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::ForbiddenCharacter => "forbidden_character",
            Self::Invalid => "invalid_number",
        }
    }
}

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.chars().count() > MAX_PHONE_INPUT_CHARS {
            return Err(PhoneError::TooLong);
        }
        // Digits and the punctuation people write numbers with; no letters (vanity
        // numbers), no extensions, nothing for the parser to trip over.
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '/' | '.' | '(' | ')'))
        {
            return Err(PhoneError::ForbiddenCharacter);
        }
        if trimmed.chars().filter(|c| *c == '+').count() > 1
            || (trimmed.contains('+') && !trimmed.starts_with('+'))
        {
            return Err(PhoneError::Invalid);
        }
        let parsed =
            phonenumber::parse(Some(country::Id::DE), trimmed).map_err(|_| PhoneError::Invalid)?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(parsed.format().mode(Mode::E164).to_string()))
    }

    /// Rebuilds a number that was validated before (read back from encrypted storage).
    pub fn from_trusted_e164(e164: String) -> Self {
        Self(e164)
    }

    /// E.164 form, used for dialling and, prefixed, for the blind index.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R1.2, R1.4: `0170 1234567`, `+49 170 1234567` and six other spellings parse to the same
    /// E.164 number, Germany being the default region.
    #[test]
    fn german_formats_are_the_same_number() {
        let table = [
            "0170 1234567",
            "+49 170 1234567",
            "+491701234567",
            "0049 170 1234567",
            "0170/1234567",
            "(0170) 123-4567",
            "0170.123.4567",
            " 01701234567 ",
        ];
        for input in table {
            let n = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(n.expose(), "+491701234567", "{input:?}");
        }
    }

    /// R1.2: German landlines and foreign numbers with their country code parse to E.164.
    #[test]
    fn landlines_and_international_numbers_are_accepted() {
        let table = [
            ("030 12345678", "+493012345678"),
            ("0221 1234567", "+492211234567"),
            ("+43 664 1234567", "+436641234567"),
            ("+41 44 668 18 00", "+41446681800"),
            ("+1 650 253 0000", "+16502530000"),
            ("+44 20 7946 0958", "+442079460958"),
        ];
        for (input, e164) in table {
            let n = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(n.expose(), e164, "{input:?}");
        }
    }

    /// R1.2: too short, too long, lettered, extension-suffixed, misplaced-plus, unknown-country
    /// and all-zero numbers are refused with the rule that failed.
    #[test]
    fn rejects_undialable_or_hostile_input() {
        let table: &[(&str, PhoneError)] = &[
            ("", PhoneError::Empty),
            ("   ", PhoneError::Empty),
            ("12", PhoneError::Invalid),
            ("0170", PhoneError::Invalid),
            ("+49 170 1234567 999 999 999 999 9", PhoneError::TooLong),
            ("0170 CALLME", PhoneError::ForbiddenCharacter),
            ("0170 1234567;ext=1", PhoneError::ForbiddenCharacter),
            ("0170\u{0000}1234567", PhoneError::ForbiddenCharacter),
            ("+49 170 +1234567", PhoneError::Invalid),
            ("0170+1234567", PhoneError::Invalid),
            ("+999 1234567", PhoneError::Invalid),
            ("0000 0000000", PhoneError::Invalid),
        ];
        for (input, expected) in table {
            assert_eq!(PhoneNumber::parse(input), Err(*expected), "{input:?}");
        }
    }

    /// R5.3: a phone number's `Debug` form is `PhoneNumber(<redacted>)`.
    #[test]
    fn debug_is_redacted() {
        let n = PhoneNumber::parse("0170 1234567").unwrap();
        assert_eq!(format!("{n:?}"), "PhoneNumber(<redacted>)");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = PhoneNumber::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_number_like_input(s in "[0-9+ ()./\\-]{0,32}") {
            if let Ok(n) = PhoneNumber::parse(&s) {
                prop_assert!(n.expose().starts_with('+'));
                prop_assert!(n.expose()[1..].chars().all(|c| c.is_ascii_digit()));
            }
        }
    }
}
