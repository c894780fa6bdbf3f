//! HTML escaping. Every value that did not come from this crate's own texts goes through
//! [`escape`] before it reaches a page, in text and in attribute values alike.

/// Escapes `&`, `<`, `>`, `"` and `'`: safe in element content and in quoted attribute
/// values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert('x')</script>"&"#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
        assert_eq!(escape("Jürgen Müller"), "Jürgen Müller");
        assert_eq!(escape(""), "");
    }
}
