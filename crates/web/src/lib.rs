//! The server-rendered pages of the Polly backend (issue 16): the sign-up pages in the
//! `signup` function, the privacy center in `dsar-api`. This crate holds what both share:
//! the language of a page ([`Lang`]), HTML escaping ([`html`]), the page frame
//! ([`page::Page`]), the security headers of every page ([`headers`]), urlencoded form
//! parsing and the field/error markup ([`form`]), the request cookie ([`cookie`]) and the
//! static assets ([`assets`]).
//!
//! It depends on the domain only: no SDK, no HTTP types. The functions turn what it
//! returns (strings, header pairs) into responses. No inline script or style anywhere:
//! the Content-Security-Policy forbids both.

pub mod assets;
pub mod cookie;
pub mod form;
pub mod headers;
pub mod html;
pub mod page;
pub mod policy;
pub mod signup;
pub mod text;

pub use text::{t, Key};

/// The language of a page: German at the path, English under `/en`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    /// Splits the language prefix off a request path: `/en/signup` is English `/signup`,
    /// `/en` alone is English `/`; everything else is German and keeps its path.
    pub fn from_path(path: &str) -> (Lang, &str) {
        match path.strip_prefix("/en") {
            Some("") => (Lang::En, "/"),
            Some(rest) if rest.starts_with('/') => (Lang::En, rest),
            _ => (Lang::De, path),
        }
    }

    /// The path prefix of this language: `""` or `"/en"`.
    pub fn prefix(self) -> &'static str {
        match self {
            Lang::De => "",
            Lang::En => "/en",
        }
    }

    /// The `lang` attribute value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The other language (for the language switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::De => Lang::En,
            Lang::En => Lang::De,
        }
    }

    /// `path` (language-neutral, starting with `/`) in this language.
    pub fn path(self, path: &str) -> String {
        format!("{}{}", self.prefix(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_path_prefix_only() {
        assert_eq!(Lang::from_path("/signup"), (Lang::De, "/signup"));
        assert_eq!(Lang::from_path("/en/signup"), (Lang::En, "/signup"));
        assert_eq!(Lang::from_path("/en"), (Lang::En, "/"));
        assert_eq!(Lang::from_path("/en/"), (Lang::En, "/"));
        // A path that merely starts with the letters is German.
        assert_eq!(Lang::from_path("/english"), (Lang::De, "/english"));
        assert_eq!(Lang::En.path("/signup"), "/en/signup");
        assert_eq!(Lang::De.path("/signup"), "/signup");
        assert_eq!(Lang::De.other(), Lang::En);
    }
}
