//! Character rules shared by the free-text fields.

/// Characters that change how text is displayed without being visible: bidirectional
/// overrides and isolates, zero-width characters, the byte-order mark. They are the raw
/// material of spoofed names in a staff console, and no real name needs them.
pub(crate) fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Unicode noncharacters (U+FDD0..U+FDEF and the last two code points of every plane).
pub(crate) fn is_noncharacter(c: char) -> bool {
    let cp = c as u32;
    (0xFDD0..=0xFDEF).contains(&cp) || (cp & 0xFFFE) == 0xFFFE
}

/// A character that has no place in a single-line field.
pub(crate) fn is_forbidden_inline(c: char) -> bool {
    c.is_control() || is_invisible_format(c) || is_noncharacter(c)
}

/// A character that has no place in multi-line free text (line breaks and tabs allowed).
pub(crate) fn is_forbidden_multiline(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        || is_invisible_format(c)
        || is_noncharacter(c)
}
