use super::text::is_forbidden_multiline;

/// Longest accepted notes, in characters (R1.2).
pub const MAX_NOTES_CHARS: usize = 2000;

/// Free-text notes from the sign-up form. Multi-line; may hold anything the person chose
/// to tell us, so it is treated as personal data throughout.
#[derive(Clone, PartialEq, Eq)]
pub struct Notes(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotesError {
    #[error("must be at most 2000 characters")]
    TooLong,
    #[error("must not contain control or invisible formatting characters")]
    ForbiddenCharacter,
}

impl NotesError {
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::ForbiddenCharacter => "forbidden_character",
        }
    }
}

impl Notes {
    /// Parses optional notes: blank input means "no notes" (`Ok(None)`).
    pub fn parse(input: &str) -> Result<Option<Self>, NotesError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_NOTES_CHARS {
            return Err(NotesError::TooLong);
        }
        if trimmed.chars().any(is_forbidden_multiline) {
            return Err(NotesError::ForbiddenCharacter);
        }
        Ok(Some(Self(trimmed.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notes(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R1.2: notes are optional (blank is none), keep line breaks and tabs, and 2000 characters
    /// are accepted.
    #[test]
    fn accepts_multiline_notes_and_treats_blank_as_none() {
        assert_eq!(Notes::parse("").unwrap(), None);
        assert_eq!(Notes::parse("  \n ").unwrap(), None);
        let n = Notes::parse("Bitte nachmittags anrufen.\nDanke!\tGruß")
            .unwrap()
            .unwrap();
        assert_eq!(n.expose(), "Bitte nachmittags anrufen.\nDanke!\tGruß");
        assert!(Notes::parse(&"ü".repeat(2000)).unwrap().is_some());
    }

    /// R1.2: notes of 2001 characters and notes with control or bidi characters are refused.
    #[test]
    fn rejects_long_or_hostile_notes() {
        assert_eq!(Notes::parse(&"x".repeat(2001)), Err(NotesError::TooLong));
        assert_eq!(
            Notes::parse("a\u{0007}b"),
            Err(NotesError::ForbiddenCharacter)
        );
        assert_eq!(
            Notes::parse("a\u{001B}[31mb"),
            Err(NotesError::ForbiddenCharacter)
        );
        assert_eq!(
            Notes::parse("a\u{2066}b"),
            Err(NotesError::ForbiddenCharacter)
        );
    }

    /// R5.3: notes' `Debug` form is `Notes(<redacted>)`.
    #[test]
    fn debug_is_redacted() {
        let n = Notes::parse("geheim").unwrap().unwrap();
        assert_eq!(format!("{n:?}"), "Notes(<redacted>)");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Notes::parse(&s);
        }
    }
}
