//! The frame of every page: document head (viewport, `noindex`, the one stylesheet and
//! the one deferred script, both same-origin), skip link, header with the language switch,
//! `<main id="main">`, footer links.

use crate::html::escape;
use crate::text::{t, Key};
use crate::Lang;

/// One page. `path` is the page's language-neutral path (with its query, if the page
/// depends on it), used for the language switch; `body_html` is the content of `<main>`
/// (trusted markup built by this crate's helpers, every foreign value escaped).
#[derive(Clone, Debug)]
pub struct Page {
    pub lang: Lang,
    pub title: String,
    pub path: String,
    pub body_html: String,
}

impl Page {
    pub fn new(lang: Lang, title: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            lang,
            title: title.into(),
            path: path.into(),
            body_html: String::new(),
        }
    }

    /// The full HTML document.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let other = lang.other();
        let p = |path: &str| escape(&lang.path(path));
        let mut out = String::with_capacity(self.body_html.len() + 2048);
        out.push_str("<!doctype html>\n<html lang=\"");
        out.push_str(lang.code());
        out.push_str("\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str(
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"robots\" content=\"noindex, nofollow\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n",
        );
        out.push_str(&format!(
            "<title>{} – {}</title>\n",
            escape(&self.title),
            t(lang, Key::SiteName)
        ));
        out.push_str(
            "<link rel=\"stylesheet\" href=\"/assets/site.css\">\n\
             <script src=\"/assets/site.js\" defer></script>\n</head>\n<body>\n",
        );
        out.push_str(&format!(
            "<a class=\"skip-link\" href=\"#main\">{}</a>\n",
            t(lang, Key::SkipLink)
        ));
        out.push_str(&format!(
            "<header class=\"site-header\"><div class=\"wrap\"><a class=\"brand\" href=\"{}\">{}</a>\
             <nav aria-label=\"{}\"><a href=\"{}\" hreflang=\"{}\" lang=\"{}\">{}</a></nav></div></header>\n",
            p("/signup"),
            t(lang, Key::SiteName),
            t(lang, Key::LangSwitchLabel),
            escape(&other.path(&self.path)),
            other.code(),
            other.code(),
            t(lang, Key::LangSwitch),
        ));
        out.push_str("<main id=\"main\" class=\"wrap\" tabindex=\"-1\">\n");
        out.push_str(&self.body_html);
        out.push_str("\n</main>\n");
        out.push_str(&format!(
            "<footer class=\"site-footer\"><div class=\"wrap\"><nav aria-label=\"{}\"><ul>\
             <li><a href=\"{}\">{}</a></li><li><a href=\"{}\">{}</a></li><li><a href=\"{}\">{}</a></li>\
             </ul></nav></div></footer>\n</body>\n</html>\n",
            t(lang, Key::FooterNavLabel),
            p("/privacy-policy"),
            t(lang, Key::FooterPrivacyPolicy),
            p("/privacy"),
            t(lang, Key::FooterPrivacyCenter),
            p("/signup"),
            t(lang, Key::FooterSignup),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_carries_language_meta_assets_and_navigation() {
        let mut page = Page::new(Lang::En, "Sign <up>", "/signup");
        page.body_html = "<h1>Hi</h1>".into();
        let html = page.render();
        assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
        for needle in [
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"robots\" content=\"noindex, nofollow\">",
            "<link rel=\"stylesheet\" href=\"/assets/site.css\">",
            "<script src=\"/assets/site.js\" defer></script>",
            "<title>Sign &lt;up&gt; – Polly KI</title>",
            "<a class=\"skip-link\" href=\"#main\">Skip to content</a>",
            "<main id=\"main\"",
            "<h1>Hi</h1>",
            // The switch leads to the same page in German.
            "<a href=\"/signup\" hreflang=\"de\" lang=\"de\">Deutsch</a>",
            "<a href=\"/en/privacy-policy\">Privacy policy</a>",
            "<a href=\"/en/privacy\">",
            "<a href=\"/en/signup\">Sign up</a>",
        ] {
            assert!(html.contains(needle), "missing {needle} in {html}");
        }
        // No inline script or style: every <script> has a src, no style attribute.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(!html.contains("<style") && !html.contains("style="));
        let de = Page::new(Lang::De, "Anmeldung", "/signup").render();
        assert!(de.contains("<html lang=\"de\">"));
        assert!(de.contains("<a href=\"/en/signup\" hreflang=\"en\" lang=\"en\">English</a>"));
    }
}
