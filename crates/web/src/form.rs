//! `application/x-www-form-urlencoded` bodies and the markup of form fields and their
//! errors.
//!
//! Markup contract (the privacy center and the browser tests rely on it): an input named
//! `N` has `id="f-<N with '.' replaced by '-'>"`; its error is
//! `<p class="field-error" id="e-<same>">…</p>`, and the input then carries
//! `aria-invalid="true"` and `aria-describedby="e-<same>"`. A form with errors starts with
//! [`error_summary`], which links to each failed field.

use crate::html::escape;
use crate::Lang;

/// Why a form body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    /// The body is longer than the limit (413).
    TooLarge,
    /// Not valid urlencoding or not UTF-8 after decoding (400).
    Malformed,
}

/// Parses an urlencoded body into its `(name, value)` pairs, in order, duplicates kept
/// (see [`duplicate`]). `+` is a space; `%XX` must be two hex digits; names and values must
/// be UTF-8 after decoding. Empty segments (`a=1&&b=2`) are skipped; a segment without
/// `=` is a name with an empty value.
pub fn parse_urlencoded(bytes: &[u8], max: usize) -> Result<Vec<(String, String)>, FormError> {
    if bytes.len() > max {
        return Err(FormError::TooLarge);
    }
    let mut pairs = Vec::new();
    for segment in bytes.split(|b| *b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (name, value) = match segment.iter().position(|b| *b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &[][..]),
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(FormError::Malformed)?;
                let hi = hex_val(hex[0]).ok_or(FormError::Malformed)?;
                let lo = hex_val(hex[1]).ok_or(FormError::Malformed)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::Malformed)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The first name given more than once, if any.
pub fn duplicate(pairs: &[(String, String)]) -> Option<&str> {
    pairs.iter().enumerate().find_map(|(i, (name, _))| {
        pairs[..i]
            .iter()
            .any(|(n, _)| n == name)
            .then_some(name.as_str())
    })
}

/// The value of `name` (the first one), if given.
pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The `id` of the input named `name`: `f-` + the name with `.` replaced by `-`.
pub fn field_id(name: &str) -> String {
    format!("f-{}", name.replace('.', "-"))
}

/// The `id` of the error message of the input named `name`.
pub fn error_id(name: &str) -> String {
    format!("e-{}", name.replace('.', "-"))
}

/// One failed field with its rendered message (already in the page's language).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The message for `field` among `errors`, if it failed.
pub fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.as_str())
}

/// The error summary that starts a form with errors (empty string without errors): a
/// focusable alert with a heading and one link per failed field, to the field's input.
/// `anchor_for` maps a field name to the input that should receive the link (for errors
/// on a group, such as a whole fieldset, pass the group's first input).
pub fn error_summary(lang: Lang, errors: &[FieldError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\" id=\"error-summary\">",
    );
    out.push_str("<h2>");
    out.push_str(crate::t(lang, crate::Key::ErrorSummaryTitle));
    out.push_str("</h2><ul>");
    for e in errors {
        out.push_str(&format!(
            "<li><a href=\"#{}\">{}</a></li>",
            escape(&field_id(&e.field)),
            escape(&e.message)
        ));
    }
    out.push_str("</ul></div>");
    out
}

/// The error paragraph of a field (empty string without error).
pub fn field_error(name: &str, message: Option<&str>) -> String {
    match message {
        Some(m) => format!(
            "<p class=\"field-error\" id=\"{}\">{}</p>",
            escape(&error_id(name)),
            escape(m)
        ),
        None => String::new(),
    }
}

/// The attributes an input gets when its field failed (with a leading space), or "".
pub fn invalid_attrs(name: &str, message: Option<&str>) -> String {
    match message {
        Some(_) => format!(
            " aria-invalid=\"true\" aria-describedby=\"{}\"",
            escape(&error_id(name))
        ),
        None => String::new(),
    }
}

/// A labelled single-line input.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub name: &'a str,
    pub label: &'a str,
    /// `text`, `email`, `tel`, `time`, …
    pub kind: &'a str,
    pub value: &'a str,
    pub autocomplete: Option<&'a str>,
    pub required: bool,
    /// A hint below the label (plain text).
    pub hint: Option<&'a str>,
    pub maxlength: Option<usize>,
    pub error: Option<&'a str>,
}

impl<'a> Input<'a> {
    pub fn new(name: &'a str, label: &'a str) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value: "",
            autocomplete: None,
            required: false,
            hint: None,
            maxlength: None,
            error: None,
        }
    }

    pub fn render(&self) -> String {
        let id = escape(&field_id(self.name));
        let mut out = format!(
            "<div class=\"field\"><label for=\"{id}\">{}",
            escape(self.label)
        );
        if !self.required {
            out.push_str(" <span class=\"optional\">");
            out.push_str(OPTIONAL_MARK);
            out.push_str("</span>");
        }
        out.push_str("</label>");
        let hint_id = format!("h-{}", self.name.replace('.', "-"));
        if let Some(hint) = self.hint {
            out.push_str(&format!(
                "<p class=\"hint\" id=\"{}\">{}</p>",
                escape(&hint_id),
                escape(hint)
            ));
        }
        out.push_str(&field_error(self.name, self.error));
        out.push_str(&format!(
            "<input id=\"{id}\" name=\"{}\" type=\"{}\" value=\"{}\"",
            escape(self.name),
            escape(self.kind),
            escape(self.value)
        ));
        if let Some(a) = self.autocomplete {
            out.push_str(&format!(" autocomplete=\"{}\"", escape(a)));
        }
        if let Some(m) = self.maxlength {
            out.push_str(&format!(" maxlength=\"{m}\""));
        }
        if self.required {
            out.push_str(" required");
        }
        out.push_str(&described_by(
            self.name,
            self.hint.map(|_| hint_id.as_str()),
            self.error,
        ));
        out.push_str("></div>");
        out
    }
}

/// A labelled multi-line input.
pub fn textarea(
    name: &str,
    label: &str,
    value: &str,
    maxlength: usize,
    error: Option<&str>,
) -> String {
    let id = escape(&field_id(name));
    format!(
        "<div class=\"field\"><label for=\"{id}\">{} <span class=\"optional\">{OPTIONAL_MARK}</span></label>{}<textarea id=\"{id}\" name=\"{}\" rows=\"4\" maxlength=\"{maxlength}\"{}>{}</textarea></div>",
        escape(label),
        field_error(name, error),
        escape(name),
        invalid_attrs(name, error),
        escape(value)
    )
}

/// A labelled checkbox with `value="true"`, checked when `checked`; `label_html` is
/// trusted markup from this crate's texts (it may hold a link).
pub fn checkbox(
    name: &str,
    label_html: &str,
    checked: bool,
    required: bool,
    error: Option<&str>,
) -> String {
    let id = escape(&field_id(name));
    format!(
        "<div class=\"field checkbox\">{}<input id=\"{id}\" name=\"{}\" type=\"checkbox\" value=\"true\"{}{}{}><label for=\"{id}\">{label_html}</label></div>",
        field_error(name, error),
        escape(name),
        if checked { " checked" } else { "" },
        if required { " required" } else { "" },
        invalid_attrs(name, error),
    )
}

/// A hidden input.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

/// The marker of an optional field (language-neutral, the label's language says the rest).
const OPTIONAL_MARK: &str = "(optional)";

fn described_by(name: &str, hint_id: Option<&str>, error: Option<&str>) -> String {
    let mut ids = Vec::new();
    if error.is_some() {
        ids.push(error_id(name));
    }
    if let Some(h) = hint_id {
        ids.push(h.to_owned());
    }
    let mut out = String::new();
    if error.is_some() {
        out.push_str(" aria-invalid=\"true\"");
    }
    if !ids.is_empty() {
        out.push_str(&format!(" aria-describedby=\"{}\"", escape(&ids.join(" "))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &str) -> Vec<(String, String)> {
        parse_urlencoded(body.as_bytes(), 1024).unwrap()
    }

    #[test]
    fn urlencoding_is_decoded_in_order_with_duplicates_kept() {
        let p = pairs("first_name=J%C3%BCrgen+M&email=a%40b.de&&flag&consent.x=true&email=c");
        assert_eq!(
            p,
            [
                ("first_name".into(), "Jürgen M".into()),
                ("email".into(), "a@b.de".into()),
                ("flag".into(), String::new()),
                ("consent.x".into(), "true".into()),
                ("email".into(), "c".into()),
            ]
        );
        assert_eq!(duplicate(&p), Some("email"));
        assert_eq!(value(&p, "email"), Some("a@b.de"));
        assert_eq!(duplicate(&pairs("a=1&b=2")), None);
        assert_eq!(pairs(""), []);
        // A literal plus arrives encoded.
        assert_eq!(value(&pairs("phone=%2B49"), "phone"), Some("+49"));
    }

    #[test]
    fn bad_encoding_and_oversized_bodies_are_refused() {
        assert_eq!(parse_urlencoded(b"a=%zz", 100), Err(FormError::Malformed));
        assert_eq!(parse_urlencoded(b"a=%4", 100), Err(FormError::Malformed));
        assert_eq!(parse_urlencoded(b"a=%ff", 100), Err(FormError::Malformed));
        assert_eq!(parse_urlencoded(b"a=\xff", 100), Err(FormError::Malformed));
        assert_eq!(
            parse_urlencoded(&[b'a'; 101], 100),
            Err(FormError::TooLarge)
        );
        assert!(parse_urlencoded(&[b'a'; 100], 100).is_ok());
    }

    #[test]
    fn a_failed_input_is_marked_and_described_by_its_error() {
        let html = Input {
            kind: "email",
            value: "\"><script>x</script>",
            required: true,
            error: Some("Bitte <prüfen>"),
            ..Input::new("consent.email", "E-Mail")
        }
        .render();
        assert!(
            html.contains("<label for=\"f-consent-email\">E-Mail</label>"),
            "{html}"
        );
        assert!(html
            .contains("<p class=\"field-error\" id=\"e-consent-email\">Bitte &lt;prüfen&gt;</p>"));
        assert!(html.contains("id=\"f-consent-email\" name=\"consent.email\" type=\"email\""));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(html.contains(" aria-invalid=\"true\" aria-describedby=\"e-consent-email\""));
        assert!(!html.contains("<script>"));
        let ok = Input::new("first_name", "Vorname").render();
        assert!(
            !ok.contains("aria-invalid") && !ok.contains("field-error"),
            "{ok}"
        );
    }

    #[test]
    fn the_summary_links_every_failed_field() {
        let errors = [
            FieldError {
                field: "email".into(),
                message: "E-Mail fehlt".into(),
            },
            FieldError {
                field: "consent.contact_by_phone".into(),
                message: "Einwilligung fehlt".into(),
            },
        ];
        let s = error_summary(Lang::De, &errors);
        assert!(s.starts_with("<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\""));
        assert!(s.contains("<a href=\"#f-email\">E-Mail fehlt</a>"));
        assert!(s.contains("<a href=\"#f-consent-contact_by_phone\">Einwilligung fehlt</a>"));
        assert_eq!(error_summary(Lang::De, &[]), "");
        assert_eq!(error_for(&errors, "email"), Some("E-Mail fehlt"));
        assert_eq!(error_for(&errors, "phone"), None);
    }

    #[test]
    fn textarea_and_checkbox_follow_the_same_contract() {
        let t = textarea(
            "notes",
            "Anmerkungen",
            "</textarea><b>",
            2000,
            Some("zu lang"),
        );
        assert!(t.contains("id=\"f-notes\""));
        assert!(t.contains("&lt;/textarea&gt;&lt;b&gt;</textarea>"));
        assert!(t.contains("aria-describedby=\"e-notes\""));
        let c = checkbox("consent.contact_by_phone", "Ja", false, true, None);
        assert!(c.contains("id=\"f-consent-contact_by_phone\" name=\"consent.contact_by_phone\" type=\"checkbox\" value=\"true\" required"));
        assert!(!c.contains("checked"));
        assert!(hidden("a", "\"x").contains("value=\"&quot;x\""));
    }
}
