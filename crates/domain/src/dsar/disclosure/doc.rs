//! A small plain-text layout engine: headings, word-wrapped paragraphs and list items at a
//! fixed width, keeping glued words (URLs, ids) whole.

use super::*;

/// A plain-text document with word-wrapped paragraphs and list items.
pub(crate) struct Doc {
    out: String,
}

impl Doc {
    pub(crate) fn new() -> Self {
        Self { out: String::new() }
    }

    /// A title underlined with `rule` (plain text) followed by a blank line.
    pub(crate) fn heading(&mut self, title: &str, rule: char) {
        self.out.push_str(title);
        self.out.push('\n');
        self.out
            .extend(std::iter::repeat_n(rule, title.chars().count().min(WIDTH)));
        self.out.push_str("\n\n");
    }

    pub(crate) fn para(&mut self, text: &str) {
        self.wrapped(text, "", "");
        self.blank();
    }

    /// One unwrapped-looking line (wrapped only if too long), no blank line after.
    pub(crate) fn line(&mut self, text: &str) {
        self.wrapped(text, "", "");
    }

    pub(crate) fn item(&mut self, text: &str) {
        self.wrapped(text, "- ", "  ");
    }

    pub(crate) fn sub_item(&mut self, text: &str) {
        self.wrapped(text, "  - ", "    ");
    }

    pub(crate) fn blank(&mut self) {
        self.out.push('\n');
    }

    pub(crate) fn wrapped(&mut self, text: &str, first: &str, rest: &str) {
        let mut line = String::from(first);
        let mut len = first.chars().count();
        let mut has_word = false;
        for word in glued_words(text) {
            let word = word.as_str();
            let word_len = word.chars().count();
            if has_word && len + 1 + word_len > WIDTH {
                self.out.push_str(line.trim_end());
                self.out.push('\n');
                line = String::from(rest);
                len = rest.chars().count();
                has_word = false;
            }
            if has_word {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += word_len;
            has_word = true;
        }
        self.out.push_str(line.trim_end());
        self.out.push('\n');
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// The words of `text`, with references and numbers kept together with what follows them
/// ("§ 257", "Art. 6 Abs. 1 lit. b", "7 Tage"), so wrapping never splits them.
pub(crate) fn glued_words(text: &str) -> Vec<String> {
    const GLUE: [&str; 5] = ["§", "Art.", "Abs.", "lit.", "Nr."];
    let mut units = Vec::new();
    let mut open: Option<String> = None;
    for word in text.split_whitespace() {
        let mut unit = match open.take() {
            Some(mut unit) => {
                unit.push(' ');
                unit.push_str(word);
                unit
            }
            None => word.to_owned(),
        };
        if GLUE.iter().any(|g| word.ends_with(g)) || word.chars().all(|c| c.is_ascii_digit()) {
            open = Some(std::mem::take(&mut unit));
        } else {
            units.push(unit);
        }
    }
    units.extend(open);
    units
}
