use email_address::{EmailAddress, Options};

use super::text::is_forbidden_inline;

/// Longest accepted address (RFC 5321 path limit, R1.2).
pub const MAX_EMAIL_CHARS: usize = 254;

/// An email address: syntactically valid, with a dotted domain, the domain lower-cased.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 254 characters")]
    TooLong,
    #[error("is not a valid email address")]
    Invalid,
}

impl EmailError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::Invalid => "invalid_format",
        }
    }
}

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_EMAIL_CHARS {
            return Err(EmailError::TooLong);
        }
        if trimmed
            .chars()
            .any(|c| is_forbidden_inline(c) || c.is_whitespace())
        {
            return Err(EmailError::Invalid);
        }
        // `email_address` alone accepts `a@b`; a dotted domain is required for mail to be
        // deliverable, and display text or domain literals have no place in a form field.
        let options = Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
            allow_long_local_parts: false,
        };
        let parsed =
            EmailAddress::parse_with_options(trimmed, options).map_err(|_| EmailError::Invalid)?;
        let domain = parsed.domain();
        if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(EmailError::Invalid);
        }
        Ok(Self(format!(
            "{}@{}",
            parsed.local_part(),
            domain.to_lowercase()
        )))
    }

    /// The address as stored and used for sending mail (domain lower-cased).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The form used for the blind index: the whole address lower-cased, so that
    /// `Anna@Example.org` and `anna@example.org` are the same subject (R1.4).
    pub fn lookup_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R1.2: valid addresses are accepted trimmed, with the domain lower-cased and the local part
    /// as written; a 254-character address is accepted.
    #[test]
    fn accepts_valid_addresses_and_lowercases_the_domain() {
        let table = [
            ("anna@example.org", "anna@example.org"),
            (" Anna.Muster@Example.DE ", "Anna.Muster@example.de"),
            ("a+tag@mail.example.co.uk", "a+tag@mail.example.co.uk"),
            (
                "x_y-z@sub-domain.example.com",
                "x_y-z@sub-domain.example.com",
            ),
        ];
        for (input, stored) in table {
            let email = Email::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(email.expose(), stored);
        }
        let at_limit = long_address(254);
        assert_eq!(at_limit.len(), 254);
        assert_eq!(Email::parse(&at_limit).unwrap().expose(), at_limit);
    }

    /// R1.4: `Anna@Example.org` and `anna@example.ORG` have the same lookup key, so they are the
    /// same subject.
    /// A well-formed address of `len` characters (local part 64, labels at most 63).
    fn long_address(len: usize) -> String {
        let tail = len - 64 - 1 - 64 - 64 - ".org".len();
        format!(
            "{}@{}.{}.{}.org",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(tail)
        )
    }

    #[test]
    fn lookup_key_ignores_case_everywhere() {
        let a = Email::parse("Anna@Example.org").unwrap();
        let b = Email::parse("anna@example.ORG").unwrap();
        assert_eq!(a.lookup_key(), b.lookup_key());
    }

    /// R1.2: empty, malformed, undotted-domain, header-injecting and 255-character addresses are
    /// refused with the rule that failed.
    #[test]
    fn rejects_invalid_addresses() {
        let long = long_address(255);
        let table: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("anna", EmailError::Invalid),
            ("anna@", EmailError::Invalid),
            ("@example.org", EmailError::Invalid),
            ("a@b", EmailError::Invalid),
            ("anna@localhost", EmailError::Invalid),
            ("anna@@example.org", EmailError::Invalid),
            ("an na@example.org", EmailError::Invalid),
            ("anna@example..org", EmailError::Invalid),
            ("anna@[127.0.0.1]", EmailError::Invalid),
            ("Anna <anna@example.org>", EmailError::Invalid),
            (
                "anna@example.org\r\nBcc: x@example.org",
                EmailError::Invalid,
            ),
            ("anna\u{0000}@example.org", EmailError::Invalid),
            (&long, EmailError::TooLong),
        ];
        for (input, expected) in table {
            assert_eq!(Email::parse(input), Err(*expected), "{input:?}");
        }
    }

    /// R5.3: an email's `Debug` form is `Email(<redacted>)`, so `{:?}` cannot put it into a log
    /// line or an error message.
    #[test]
    fn debug_is_redacted() {
        let e = Email::parse("geheim@example.org").unwrap();
        assert_eq!(format!("{e:?}"), "Email(<redacted>)");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Email::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_address_like_input(s in "[a-zA-Z0-9.@+\\-_\"\\[\\]() ]{0,80}") {
            let _ = Email::parse(&s);
        }
    }
}
