//! The privacy policy page, rendered from the policy text in the repository
//! (`spec/datenschutzerklaerung-polly-ki.txt`, the binding German text). Its first line is
//! the title, `Stand: DD.MM.YYYY` its date; `N. Title` lines are sections, `N.M Title`
//! subsections, `- ` lines list items, everything else a paragraph.

use crate::html::escape;
use crate::page::Page;
use crate::Lang;

/// The policy text, compiled in.
pub const POLICY_TEXT: &str = include_str!("../../../spec/datenschutzerklaerung-polly-ki.txt");

/// The policy's date as an ISO date (`Stand: 08.04.2024` → `2024-04-08`): the version a
/// consent refers to.
pub fn policy_version() -> Option<String> {
    let line = POLICY_TEXT
        .lines()
        .find_map(|l| l.trim().strip_prefix("Stand:"))?;
    let mut parts = line.trim().split('.');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    (ok(d, 2) && ok(m, 2) && ok(y, 4) && parts.next().is_none()).then(|| format!("{y}-{m}-{d}"))
}

/// `2024-04-08` → `08.04.2024` (German) or `8 April 2024` (English); anything else as is.
pub fn format_version(lang: Lang, version: &str) -> String {
    let mut it = version.split('-');
    let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return version.to_owned();
    };
    match lang {
        Lang::De => format!("{d}.{m}.{y}"),
        Lang::En => {
            const MONTHS: [&str; 12] = [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ];
            match (m.parse::<usize>(), d.parse::<u32>()) {
                (Ok(mi @ 1..=12), Ok(di)) => format!("{di} {} {y}", MONTHS[mi - 1]),
                _ => version.to_owned(),
            }
        }
    }
}

enum Block<'a> {
    Section(&'a str),
    Subsection(&'a str),
    Item(&'a str),
    Para(&'a str),
}

fn classify(line: &str) -> Block<'_> {
    if let Some(item) = line.strip_prefix("- ") {
        return Block::Item(item);
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((num, rest)) = line.split_once(' ') {
        if !rest.trim().is_empty() {
            if let Some(n) = num.strip_suffix('.') {
                if digits(n) {
                    return Block::Section(line);
                }
            } else if let Some((a, b)) = num.split_once('.') {
                if digits(a) && digits(b) {
                    return Block::Subsection(line);
                }
            }
        }
    }
    Block::Para(line)
}

/// A stable anchor for a section heading (`1. Verantwortliche Stelle` → `s-1`).
fn anchor(heading: &str) -> String {
    let num = heading.split(' ').next().unwrap_or_default();
    format!("s-{}", num.trim_end_matches('.').replace('.', "-"))
}

/// The policy as HTML (inside `<main>`): title, version, the English note on the English
/// page, the sections.
pub fn policy_body(lang: Lang, consent_version: &str) -> String {
    let mut lines = POLICY_TEXT.lines().map(str::trim).filter(|l| !l.is_empty());
    let title = lines.next().unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!("<h1>{}</h1>\n", escape(title)));
    let version = format_version(lang, consent_version);
    out.push_str(&match lang {
        Lang::De => format!(
            "<p class=\"meta\">Stand: {v}. Die Einwilligung im Anmeldeformular bezieht sich auf diese Fassung (Version {raw}).</p>\n",
            v = escape(&version),
            raw = escape(consent_version)
        ),
        Lang::En => format!(
            "<p class=\"meta\">Version of {v}. The consent on the sign-up form refers to this version ({raw}).</p>\n\
             <p class=\"note\" lang=\"en\">This privacy policy is published in German. The German text below is the binding version; this page does not translate it.</p>\n",
            v = escape(&version),
            raw = escape(consent_version)
        ),
    });
    // The rest of the document is German, also on the English page.
    out.push_str("<div class=\"policy\" lang=\"de\">\n");
    let mut in_list = false;
    for line in lines {
        if line.starts_with("Stand:") {
            continue;
        }
        let block = classify(line);
        if in_list && !matches!(block, Block::Item(_)) {
            out.push_str("</ul>\n");
            in_list = false;
        }
        match block {
            Block::Item(text) => {
                if !in_list {
                    out.push_str("<ul>\n");
                    in_list = true;
                }
                out.push_str(&format!("<li>{}</li>\n", escape(text)));
            }
            Block::Section(h) => {
                out.push_str(&format!("<h2 id=\"{}\">{}</h2>\n", anchor(h), escape(h)));
            }
            Block::Subsection(h) => out.push_str(&format!("<h3>{}</h3>\n", escape(h))),
            Block::Para(p) if p == "Inhaltsverzeichnis" => {
                out.push_str(&format!("<h2>{}</h2>\n", escape(p)));
            }
            Block::Para(p) => out.push_str(&format!("<p>{}</p>\n", escape(p))),
        }
    }
    if in_list {
        out.push_str("</ul>\n");
    }
    out.push_str("</div>");
    out
}

/// The policy page.
pub fn policy_page(lang: Lang, consent_version: &str) -> Page {
    let title = match lang {
        Lang::De => "Datenschutzerklärung",
        Lang::En => "Privacy policy",
    };
    let mut page = Page::new(lang, title, "/privacy-policy");
    page.body_html = policy_body(lang, consent_version);
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_policy_date() {
        assert_eq!(policy_version().as_deref(), Some("2024-04-08"));
        assert_eq!(format_version(Lang::De, "2024-04-08"), "08.04.2024");
        assert_eq!(format_version(Lang::En, "2024-04-08"), "8 April 2024");
        assert_eq!(format_version(Lang::En, "x"), "x");
    }

    #[test]
    fn headings_lists_and_paragraphs_are_recognised() {
        let html = policy_body(Lang::De, "2024-04-08");
        assert_eq!(html.matches("<h1>").count(), 1);
        assert!(html.contains("<h1>Datenschutzerklärung Polly KI</h1>"));
        assert!(html.contains("<h2 id=\"s-1\">1. Verantwortliche Stelle</h2>"));
        assert!(html.contains("<h2 id=\"s-12\">12. Kontakt</h2>"));
        assert!(
            html.contains("<h3>10.7 Widerrufsrecht bei Einwilligungen (Art. 7 Abs. 3 DSGVO)</h3>")
        );
        assert!(html.contains("<li>RetellAI: Bereitstellung der KI-Telefonie-Funktionen</li>"));
        // Postal codes are no headings.
        assert!(html.contains("<p>45899 Gelsenkirchen</p>"));
        assert!(html.contains("Stand: 08.04.2024"));
        assert!(html.contains("(Version 2024-04-08)"));
        assert_eq!(html.matches("<h2").count(), 13, "12 sections + contents");
        assert_eq!(html.matches("<ul>").count(), html.matches("</ul>").count());
    }

    #[test]
    fn the_english_page_says_the_german_text_binds() {
        let html = policy_body(Lang::En, "2024-04-08");
        assert!(html.contains("The German text below is the binding version"));
        assert!(html.contains("8 April 2024"));
        assert!(html.contains("<div class=\"policy\" lang=\"de\">"));
    }
}
