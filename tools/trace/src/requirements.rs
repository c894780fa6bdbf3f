//! The requirement ids of `spec/REQUIREMENTS.md`: `- R1.2 text` bullets under `## R1 …`
//! headings; a section without bullets (`## R6 …`) is a requirement of its own.

use std::fmt;

/// A requirement id: section and, except for a section that is one requirement, item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqId {
    pub section: u32,
    pub item: Option<u32>,
}

impl fmt::Display for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(item) => write!(f, "R{}.{}", self.section, item),
            None => write!(f, "R{}", self.section),
        }
    }
}

impl ReqId {
    /// `R1.2` or `R6`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix('R')?;
        let (section, item) = match rest.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (rest, None),
        };
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(section) || item.is_some_and(|i| !digits(i)) {
            return None;
        }
        Some(ReqId {
            section: section.parse().ok()?,
            item: item.map(|i| i.parse()).transpose().ok()?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Requirement {
    pub id: ReqId,
    /// The requirement's text, joined into one line.
    pub text: String,
}

impl Requirement {
    /// The first sentence, at most `max` characters (cut at a word).
    pub fn title(&self, max: usize) -> String {
        let mut first = self.text.as_str();
        for (i, _) in self.text.match_indices(". ") {
            // "e.g. ", "Art. 16" and the like are not sentence ends.
            let before = &self.text[..i];
            if !["e.g", "i.e", "Art", "Abs", "Nr", "cf"]
                .iter()
                .any(|a| before.ends_with(a))
            {
                first = &self.text[..i];
                break;
            }
        }
        shorten(first.trim_end_matches('.'), max)
    }
}

/// A table row as `first cell: other cells, …`; empty for the header and the rule.
fn table_row(line: &str) -> Option<String> {
    let cells: Vec<&str> = line
        .strip_prefix('|')?
        .trim_end()
        .trim_end_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    if cells
        .iter()
        .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        || cells.first() == Some(&"class")
    {
        return Some(String::new());
    }
    Some(format!("{}: {}", cells[0], cells[1..].join(", ")))
}

pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => &cut,
    };
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ']))
}

/// Parses the requirements file. Ids must be unique and in order.
pub fn parse(markdown: &str) -> Result<Vec<Requirement>, String> {
    let mut out: Vec<Requirement> = Vec::new();
    // A section heading `## R6 Title`, its paragraph, and whether bullets followed.
    let mut section: Option<(ReqId, String, bool)> = None;
    let mut current: Option<Requirement> = None;
    let mut tables: Vec<(ReqId, String)> = Vec::new();
    let close_section = |section: &mut Option<(ReqId, String, bool)>,
                         out: &mut Vec<Requirement>| {
        if let Some((id, text, false)) = section.take() {
            out.push(Requirement {
                id,
                text: text.trim().to_string(),
            });
        }
    };
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some(req) = current.take() {
                out.push(req);
            }
            close_section(&mut section, &mut out);
            let word = heading.split_whitespace().next().unwrap_or("");
            if let Some(id) = ReqId::parse(word).filter(|id| id.item.is_none()) {
                let title = heading[word.len()..].trim().to_string();
                section = Some((id, format!("{title}: "), false));
            }
            continue;
        }
        let Some((sid, ref mut text, ref mut has_items)) = section else {
            continue;
        };
        if let Some(bullet) = line.strip_prefix("- ") {
            if let Some(req) = current.take() {
                out.push(req);
            }
            let word = bullet.split_whitespace().next().unwrap_or("");
            if let Some(id) = ReqId::parse(word).filter(|id| id.item.is_some()) {
                if id.section != sid.section {
                    return Err(format!("{id} is listed under section R{}", sid.section));
                }
                *has_items = true;
                current = Some(Requirement {
                    id,
                    text: bullet[word.len()..].trim().to_string(),
                });
            }
        } else if let Some(req) = current.as_mut() {
            if line.starts_with("  ") && !line.trim().is_empty() {
                req.text.push(' ');
                req.text.push_str(line.trim());
            } else if line.trim().is_empty() {
                out.push(current.take().expect("checked above"));
            }
        } else if let Some(row) = table_row(line) {
            // A section's table (R3's retention classes) is a requirement of its own,
            // named by the section id: `R3`.
            if !row.is_empty() {
                tables.push((sid, row));
            }
        } else if !*has_items && !line.trim().is_empty() {
            text.push_str(line.trim());
            text.push(' ');
        }
    }
    if let Some(req) = current.take() {
        out.push(req);
    }
    close_section(&mut section, &mut out);
    let mut table_ids: Vec<ReqId> = tables.iter().map(|(id, _)| *id).collect();
    table_ids.dedup();
    for id in table_ids {
        let rows: Vec<&str> = tables
            .iter()
            .filter(|(t, _)| *t == id)
            .map(|(_, r)| r.as_str())
            .collect();
        if out.iter().any(|r| r.id == id) {
            return Err(format!("{id} is both a section requirement and a table"));
        }
        out.push(Requirement {
            id,
            text: format!("the table: {}", rows.join("; ")),
        });
    }
    out.sort_by_key(|r| r.id);
    for pair in out.windows(2) {
        if pair[0].id >= pair[1].id {
            return Err(format!(
                "{} follows {}: ids must be unique and ascending",
                pair[1].id, pair[0].id
            ));
        }
    }
    if out.is_empty() {
        return Err("no requirement ids found".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Title\n\n## Data\n- R9.9 not in a section\n\n## R1 Sign-up (§3)\n\
        - R1.1 `POST /v1/signups`, JSON: a,\n  b. More text.\n- R1.2 Validation.\n\n\
        \n## R3 Retention\n| class | kept | from |\n|---|---|---|\n| recording | 6 months | call end |\n\
        | lead | 3 years | last contact |\n\n- R3.1 Daily.\n\n## R6 Pseudonymised analytics (§4.2)\nAn export holds only\n\
        pseudonymised data.\n";

    #[test]
    fn parses_items_and_a_section_without_items() {
        let reqs = parse(SAMPLE).unwrap();
        let ids: Vec<String> = reqs.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, ["R1.1", "R1.2", "R3", "R3.1", "R6"]);
        assert_eq!(reqs[0].text, "`POST /v1/signups`, JSON: a, b. More text.");
        assert_eq!(reqs[0].title(200), "`POST /v1/signups`, JSON: a, b");
        let art = Requirement {
            id: reqs[0].id,
            text: "Erasure (Art. 17): every item. More.".into(),
        };
        assert_eq!(art.title(200), "Erasure (Art. 17): every item");
        assert_eq!(
            reqs[2].text,
            "the table: recording: 6 months, call end; lead: 3 years, last contact"
        );
        assert_eq!(
            reqs[4].text,
            "Pseudonymised analytics (§4.2): An export holds only pseudonymised data."
        );
    }

    #[test]
    fn refuses_duplicates_and_misplaced_ids() {
        assert!(parse("## R1 A\n- R1.1 a\n- R1.1 b\n").is_err());
        assert!(parse("## R1 A\n- R2.1 a\n").is_err());
    }

    #[test]
    fn ids_parse_strictly() {
        assert_eq!(ReqId::parse("R4.10").unwrap().to_string(), "R4.10");
        assert_eq!(ReqId::parse("R6").unwrap().to_string(), "R6");
        for bad in ["R", "R1.", "R.1", "r1.1", "R1.1a", "R1.2.3", "X1.1"] {
            assert!(ReqId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_repository_copy_parses_every_id_and_the_retention_table() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/REQUIREMENTS.md"
        ))
        .unwrap();
        let reqs = parse(&text).unwrap();
        // R1–R6 (42 ids), the retention table R3 and issue 14's R7.1–R7.6.
        assert_eq!(reqs.len(), 49);
        assert!(reqs.iter().any(|r| r.id.to_string() == "R3"
            && r.text
                .contains("export: data-subject export packages, 7 days")));
        assert_eq!(reqs.last().unwrap().id.to_string(), "R7.6");
    }
}
