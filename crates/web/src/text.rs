//! The shared texts of every page, in German and English. Page-specific texts live with
//! their page (e.g. [`crate::signup`]); texts that reach data subjects are German first.

use crate::Lang;

/// A text shared by every page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    SiteName,
    SkipLink,
    /// The language switch's link text (names the OTHER language, in that language).
    LangSwitch,
    /// The language switch's accessible label.
    LangSwitchLabel,
    FooterNavLabel,
    FooterPrivacyPolicy,
    FooterPrivacyCenter,
    FooterSignup,
    ErrorSummaryTitle,
    Required,
}

/// The text of `key` in `lang`.
pub fn t(lang: Lang, key: Key) -> &'static str {
    use Key::*;
    match (lang, key) {
        (_, SiteName) => "Polly KI",
        (Lang::De, SkipLink) => "Zum Inhalt springen",
        (Lang::En, SkipLink) => "Skip to content",
        (Lang::De, LangSwitch) => "English",
        (Lang::En, LangSwitch) => "Deutsch",
        (Lang::De, LangSwitchLabel) => "Sprache wählen",
        (Lang::En, LangSwitchLabel) => "Choose language",
        (Lang::De, FooterNavLabel) => "Rechtliches und Service",
        (Lang::En, FooterNavLabel) => "Legal and service",
        (Lang::De, FooterPrivacyPolicy) => "Datenschutzerklärung",
        (Lang::En, FooterPrivacyPolicy) => "Privacy policy",
        (Lang::De, FooterPrivacyCenter) => "Datenschutz-Center: Ihre Rechte",
        (Lang::En, FooterPrivacyCenter) => "Privacy center: your rights",
        (Lang::De, FooterSignup) => "Anmeldung",
        (Lang::En, FooterSignup) => "Sign up",
        (Lang::De, ErrorSummaryTitle) => "Bitte prüfen Sie Ihre Angaben",
        (Lang::En, ErrorSummaryTitle) => "Please check your entries",
        (Lang::De, Required) => "Pflichtfeld",
        (Lang::En, Required) => "required",
    }
}
