//! Finds the tests of the workspace and the requirement ids their doc comments name.
//!
//! A test names the ids it proves in the first paragraph of its doc comment:
//! `/// R1.4, R5.3: a stranger … changes nothing.` (ids, an optional parenthetical, a colon,
//! the claim). A range `R4.5–R4.9` names every id between. A test without ids proves none.

use crate::requirements::ReqId;
use std::path::{Path, PathBuf};

/// How close to the deployed system a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// A function's handler (or the whole stack) against the emulator and the simulator.
    EndToEnd,
    /// Reads `infra/template.yaml`: what AWS is told to build.
    Template,
    /// One adapter against the emulator or the simulator, without a function's handler.
    Component,
    /// Use cases or handlers on the in-memory fakes.
    Fakes,
    /// A unit test beside the code.
    Unit,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::EndToEnd,
        Level::Template,
        Level::Component,
        Level::Fakes,
        Level::Unit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::EndToEnd => "end-to-end",
            Level::Template => "template",
            Level::Component => "component",
            Level::Fakes => "fakes",
            Level::Unit => "unit",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }
}

/// A compiled test target: a library's or binary's unit tests, or an integration test.
#[derive(Clone, Debug)]
pub struct Target {
    pub package: String,
    pub name: String,
    /// `lib`, `bin`, `test`, …
    pub kind: String,
    pub src_path: PathBuf,
}

#[derive(Clone, Debug)]
pub struct TestFn {
    /// The file, relative to the workspace root.
    pub file: PathBuf,
    pub line: usize,
    pub name: String,
    /// Module path of the file inside its target (`signup`, `dsar::mail`; empty for the root).
    pub module: String,
    /// Index into the targets.
    pub target: usize,
    pub level: Level,
    pub ids: Vec<ReqId>,
    pub claim: String,
}

impl TestFn {
    /// `package::target::module::name`, for people.
    pub fn display(&self, targets: &[Target]) -> String {
        let t = &targets[self.target];
        let mut s = format!("{}:{}", t.package, t.name);
        if !self.module.is_empty() {
            s.push_str("::");
            s.push_str(&self.module);
        }
        s.push_str("::");
        s.push_str(&self.name);
        s
    }
}

/// A doc comment that starts like an annotation but cannot be read as one.
#[derive(Debug)]
pub struct Malformed {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

/// Parses the first paragraph of a doc comment. `Ok(None)`: no annotation (the paragraph
/// does not start with an id). `Err`: it starts with an id but is not a valid annotation.
pub fn parse_annotation(paragraph: &str) -> Result<Option<(Vec<ReqId>, String)>, String> {
    let text = paragraph.trim();
    let starts_with_id = text
        .strip_prefix('R')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if !starts_with_id {
        return Ok(None);
    }
    let Some((head, claim)) = text.split_once(':') else {
        return Err("ids without a colon and a claim".into());
    };
    let claim = claim.trim();
    if claim.is_empty() {
        return Err("ids without a claim after the colon".into());
    }
    // Drop parentheticals: `R3.3, R4.5 (issue 12, item 2)`.
    let mut ids_part = String::new();
    let mut depth = 0usize;
    for c in head.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => ids_part.push(c),
            _ => {}
        }
    }
    let mut ids = Vec::new();
    for token in ids_part.split(',').map(str::trim) {
        if token.is_empty() {
            return Err(format!("empty id in `{}`", head.trim()));
        }
        let ends: Vec<&str> = token.split(['–', '-']).map(str::trim).collect();
        match ends.as_slice() {
            [one] => ids
                .push(ReqId::parse(one).ok_or_else(|| format!("`{one}` is not a requirement id"))?),
            [from, to] => {
                let a = ReqId::parse(from)
                    .ok_or_else(|| format!("`{from}` is not a requirement id"))?;
                let b =
                    ReqId::parse(to).ok_or_else(|| format!("`{to}` is not a requirement id"))?;
                match (a.item, b.item) {
                    (Some(x), Some(y)) if a.section == b.section && x < y => {
                        ids.extend((x..=y).map(|item| ReqId {
                            section: a.section,
                            item: Some(item),
                        }))
                    }
                    _ => return Err(format!("`{token}` is not a range within one section")),
                }
            }
            _ => return Err(format!("`{token}` is not an id or a range")),
        }
    }
    ids.sort();
    ids.dedup();
    Ok(Some((ids, squash(claim))))
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_test_attribute(line: &str) -> bool {
    let l = line.trim();
    l == "#[test]" || l.starts_with("#[tokio::test]") || l.starts_with("#[tokio::test(")
}

fn fn_name(line: &str) -> Option<String> {
    let mut rest = line;
    while let Some(i) = rest.find("fn ") {
        let before_ok = i == 0 || rest[..i].ends_with(|c: char| c.is_whitespace());
        let after = &rest[i + 3..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if before_ok && !name.is_empty() {
            return Some(name);
        }
        rest = after;
    }
    None
}

fn doc_text(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with("////") {
        return None;
    }
    t.strip_prefix("///")
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
}

/// The level a file declares in its module docs (`//! trace-level: component`).
fn declared_level(text: &str) -> Result<Option<Level>, String> {
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("//!") {
            if let Some(level) = rest.trim().strip_prefix("trace-level:") {
                return Level::parse(level.trim())
                    .map(Some)
                    .ok_or_else(|| format!("unknown trace-level `{}`", level.trim()));
            }
        }
    }
    Ok(None)
}

/// The tests of one file.
pub fn scan_file(
    text: &str,
    file: &Path,
    module: &str,
    target: usize,
    level: Level,
) -> (Vec<TestFn>, Vec<Malformed>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut tests = Vec::new();
    let mut malformed = Vec::new();
    let level = match declared_level(text) {
        Ok(found) => found.unwrap_or(level),
        Err(reason) => {
            malformed.push(Malformed {
                file: file.to_path_buf(),
                line: 1,
                reason,
            });
            level
        }
    };
    for (i, line) in lines.iter().enumerate() {
        if !is_test_attribute(line) {
            continue;
        }
        // The attribute block: doc lines, attributes and plain comments above …
        let mut start = i;
        while start > 0 {
            let prev = lines[start - 1].trim();
            if prev.starts_with("///") || prev.starts_with("#[") || prev.starts_with("//") {
                start -= 1;
            } else {
                break;
            }
        }
        // … and below, up to the fn.
        let mut end = i + 1;
        let mut name = None;
        while end < lines.len() && end < i + 20 {
            if let Some(n) = fn_name(lines[end]) {
                name = Some(n);
                break;
            }
            end += 1;
        }
        let Some(name) = name else { continue };
        let docs: Vec<&str> = lines[start..end]
            .iter()
            .filter_map(|l| doc_text(l))
            .collect();
        let paragraph: Vec<&str> = docs
            .iter()
            .copied()
            .take_while(|d| !d.trim().is_empty())
            .collect();
        let (ids, claim) = match parse_annotation(&paragraph.join(" ")) {
            Ok(Some(found)) => found,
            Ok(None) => (Vec::new(), String::new()),
            Err(reason) => {
                malformed.push(Malformed {
                    file: file.to_path_buf(),
                    line: i + 1,
                    reason,
                });
                (Vec::new(), String::new())
            }
        };
        tests.push(TestFn {
            file: file.to_path_buf(),
            line: end + 1,
            name,
            module: module.to_string(),
            target,
            level,
            ids,
            claim,
        });
    }
    (tests, malformed)
}

/// Which target a file belongs to, and its module path there.
pub fn place(file: &Path, targets: &[Target]) -> Option<(usize, String)> {
    if let Some(t) = targets.iter().position(|t| t.src_path == file) {
        return Some((t, String::new()));
    }
    // Otherwise the module-root target (lib.rs, main.rs, mod.rs of an integration test)
    // whose directory is the longest prefix of the file.
    let mut best: Option<(usize, &Path)> = None;
    for (i, t) in targets.iter().enumerate() {
        let is_root = matches!(
            t.src_path.file_name().and_then(|n| n.to_str()),
            Some("lib.rs" | "main.rs")
        );
        let Some(dir) = t.src_path.parent() else {
            continue;
        };
        if !is_root || !file.starts_with(dir) {
            continue;
        }
        // A binary's main.rs in src/ does not own src/bin/* or files of the library.
        if t.kind == "bin"
            && targets
                .iter()
                .any(|o| o.kind == "lib" && o.src_path.parent() == Some(dir))
        {
            continue;
        }
        if best.is_none_or(|(_, d)| dir.components().count() > d.components().count()) {
            best = Some((i, dir));
        }
    }
    let (i, dir) = best?;
    let rel = file.strip_prefix(dir).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some((i, parts.join("::")))
}

/// The default level of a target's tests.
pub fn default_level(target: &Target) -> Level {
    match (target.kind.as_str(), target.package.as_str()) {
        ("test", "polly-tests") => Level::EndToEnd,
        ("test", _) => Level::Fakes,
        _ => Level::Unit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &str) -> Vec<String> {
        parse_annotation(s)
            .unwrap()
            .unwrap()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn annotations_list_ids_ranges_and_a_claim() {
        assert_eq!(
            ids("R1.4, R5.3: a stranger changes nothing."),
            ["R1.4", "R5.3"]
        );
        assert_eq!(
            ids("R3.3, R4.5 (issue 12, item 2): every item carries a TTL"),
            ["R3.3", "R4.5"]
        );
        assert_eq!(ids("R4.1, R4.5–R4.7: x"), ["R4.1", "R4.5", "R4.6", "R4.7"]);
        assert_eq!(ids("R6: the summary is redacted"), ["R6"]);
        let (_, claim) = parse_annotation("R6:  the   summary\n is redacted")
            .unwrap()
            .unwrap();
        assert_eq!(claim, "the summary is redacted");
    }

    #[test]
    fn prose_is_not_an_annotation_and_broken_ones_are_refused() {
        assert!(parse_annotation("Sign-up (R1.2) refuses bad bodies.")
            .unwrap()
            .is_none());
        assert!(parse_annotation("Returns the subject").unwrap().is_none());
        assert!(parse_annotation("R1.4 a stranger changes nothing").is_err());
        assert!(parse_annotation("R1.4:").is_err());
        assert!(parse_annotation("R1.4, R5.x: claim").is_err());
        assert!(parse_annotation("R4.7–R4.5: claim").is_err());
        assert!(parse_annotation("R4.5–R5.1: claim").is_err());
    }

    #[test]
    fn finds_tests_with_docs_between_and_above_attributes() {
        let src = "use x;\n\n/// R1.2: bad bodies are refused\n/// with problem+json.\n///\n/// Details.\n\
            #[tokio::test]\nasync fn refuses_bad_bodies() {}\n\n#[test]\n/// R2.1, R5.7: the key\nfn key() {}\n\n\
            #[test]\nfn plain() {}\n\n/// Helper, not a test.\nfn helper() {}\n";
        let (tests, malformed) = scan_file(src, Path::new("a.rs"), "m", 0, Level::Unit);
        assert!(malformed.is_empty());
        let got: Vec<(String, Vec<String>, String)> = tests
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.ids.iter().map(ToString::to_string).collect(),
                    t.claim.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "refuses_bad_bodies".into(),
                    vec!["R1.2".to_string()],
                    "bad bodies are refused with problem+json.".into()
                ),
                (
                    "key".into(),
                    vec!["R2.1".into(), "R5.7".into()],
                    "the key".into()
                ),
                ("plain".into(), vec![], String::new()),
            ]
        );
    }

    #[test]
    fn a_file_may_declare_its_level() {
        let src = "//! The copier against the emulator.\n//! trace-level: component\n\n#[test]\nfn t() {}\n";
        let (tests, _) = scan_file(src, Path::new("a.rs"), "", 0, Level::EndToEnd);
        assert_eq!(tests[0].level, Level::Component);
        let (_, malformed) = scan_file(
            "//! trace-level: e2e\n",
            Path::new("a.rs"),
            "",
            0,
            Level::EndToEnd,
        );
        assert_eq!(malformed.len(), 1);
    }

    #[test]
    fn files_are_placed_in_their_target_and_module() {
        let t = |package: &str, name: &str, kind: &str, path: &str| Target {
            package: package.into(),
            name: name.into(),
            kind: kind.into(),
            src_path: PathBuf::from(path),
        };
        let targets = [
            t("polly-domain", "domain", "lib", "crates/domain/src/lib.rs"),
            t("polly-tests", "harness", "lib", "tests/src/lib.rs"),
            t(
                "polly-tests",
                "retell-sim",
                "bin",
                "tests/src/bin/retell-sim.rs",
            ),
            t("polly-tests", "it", "test", "tests/it/main.rs"),
            t("signup", "signup", "lib", "functions/signup/src/lib.rs"),
            t("signup", "signup", "bin", "functions/signup/src/main.rs"),
            t(
                "signup",
                "on_fakes",
                "test",
                "functions/signup/tests/on_fakes.rs",
            ),
        ];
        let at = |p: &str| {
            place(Path::new(p), &targets)
                .map(|(i, m)| (targets[i].name.clone(), targets[i].kind.clone(), m))
        };
        assert_eq!(
            at("crates/domain/src/dsar/mail.rs"),
            Some(("domain".into(), "lib".into(), "dsar::mail".into()))
        );
        assert_eq!(
            at("crates/domain/src/dsar/mod.rs"),
            Some(("domain".into(), "lib".into(), "dsar".into()))
        );
        assert_eq!(
            at("tests/it/signup.rs"),
            Some(("it".into(), "test".into(), "signup".into()))
        );
        assert_eq!(
            at("tests/src/simulator/http.rs"),
            Some(("harness".into(), "lib".into(), "simulator::http".into()))
        );
        assert_eq!(
            at("tests/src/bin/retell-sim.rs"),
            Some(("retell-sim".into(), "bin".into(), String::new()))
        );
        assert_eq!(
            at("functions/signup/src/handler.rs"),
            Some(("signup".into(), "lib".into(), "handler".into()))
        );
        assert_eq!(
            at("functions/signup/tests/on_fakes.rs"),
            Some(("on_fakes".into(), "test".into(), String::new()))
        );
    }
}
