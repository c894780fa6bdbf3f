//! Reads the output of `cargo test` (as `make test` keeps it): which test binary ran, and
//! each test's result.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Worst first, so the minimum over several runs is the one to report.
    Failed,
    Ignored,
    Passed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Failed => "FAILED",
            Outcome::Ignored => "ignored",
            Outcome::Passed => "ok",
        }
    }
}

/// One test binary's run: `Running tests/it/main.rs (target/debug/deps/it-0123…)`.
#[derive(Debug, Default)]
pub struct Run {
    /// The source the binary was built from, relative to its package (`src/lib.rs`).
    pub source: String,
    /// The executable's crate name (`it`, `polly_domain`).
    pub crate_name: String,
    pub tests: BTreeMap<String, Outcome>,
}

pub fn parse(output: &str) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for line in output.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
            let (source, exe) = match rest.rsplit_once(" (") {
                Some((s, e)) => (s.trim(), e.trim_end_matches(')')),
                None => continue,
            };
            let file = exe.rsplit(['/', '\\']).next().unwrap_or(exe);
            let file = file.strip_suffix(".exe").unwrap_or(file);
            let crate_name = match file.rsplit_once('-') {
                Some((name, hash))
                    if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    name
                }
                _ => file,
            };
            runs.push(Run {
                source: source.to_string(),
                crate_name: crate_name.to_string(),
                tests: BTreeMap::new(),
            });
            continue;
        }
        if t.starts_with("Doc-tests ") {
            // Doc tests are not traced; stop attributing lines to the last binary.
            runs.push(Run::default());
            continue;
        }
        let Some(rest) = t.strip_prefix("test ") else {
            continue;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let outcome = match result.split([' ', ',']).next() {
            Some("ok") => Outcome::Passed,
            Some("FAILED") => Outcome::Failed,
            Some("ignored") => Outcome::Ignored,
            _ => continue,
        };
        if let Some(run) = runs.last_mut() {
            let entry = run.tests.entry(name.trim().to_string()).or_insert(outcome);
            *entry = (*entry).min(outcome);
        }
    }
    runs.retain(|r| !r.crate_name.is_empty());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_binaries_and_results() {
        let out = "   Compiling x\n     Running unittests src/lib.rs (target/debug/deps/polly_domain-0123456789abcdef)\n\
            running 2 tests\ntest email::tests::lower_cases ... ok\ntest dsar::mail::tests::code ... FAILED\n\
            \n     Running tests/it/main.rs (target/debug/deps/it-fedcba9876543210)\n\
            test signup::refuses ... ignored, needs moto\ntest signup::stores ... ok\n   Doc-tests polly_domain\n\
            test crates/domain/src/lib.rs - x (line 3) ... ok\n";
        let runs = parse(out);
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].source.as_str(), runs[0].crate_name.as_str()),
            ("src/lib.rs", "polly_domain")
        );
        assert_eq!(runs[0].tests["dsar::mail::tests::code"], Outcome::Failed);
        assert_eq!(runs[0].tests["email::tests::lower_cases"], Outcome::Passed);
        assert_eq!(
            (runs[1].source.as_str(), runs[1].crate_name.as_str()),
            ("tests/it/main.rs", "it")
        );
        assert_eq!(runs[1].tests["signup::refuses"], Outcome::Ignored);
        assert_eq!(runs[1].tests.len(), 2);
    }
}
