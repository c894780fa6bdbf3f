//! `make trace`: the table requirement id → the tests that prove it → their last result.
//!
//! Each test names the ids it proves in its doc comment (`/// R1.4, R5.3: claim`, see
//! `sources.rs`). This program reads `spec/REQUIREMENTS.md`, every test of the workspace
//! and, when given, the output of the last `cargo test`. It fails when an id has no test,
//! when a test names an id that does not exist, when an annotation is malformed, when the
//! generated documents (`TRACEABILITY.md`, the README's requirement section) are stale,
//! and, with results, when a proving test failed or an id has no passing test.
//!
//! Usage: `trace [--results FILE] [--require-results] [--write]` in the workspace.

mod requirements;
mod results;
mod sources;

use requirements::{ReqId, Requirement};
use results::{Outcome, Run};
use sources::{Level, Target, TestFn};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const REQUIREMENTS: &str = "spec/REQUIREMENTS.md";
const TRACEABILITY: &str = "TRACEABILITY.md";
const README: &str = "README.md";
const BEGIN: &str = "<!-- trace:begin -->";
const END: &str = "<!-- trace:end -->";

struct Args {
    results: Option<PathBuf>,
    require_results: bool,
    write: bool,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        results: None,
        require_results: false,
        write: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--results" => out.results = Some(it.next().ok_or("--results needs a file")?.into()),
            "--require-results" => out.require_results = true,
            "--write" => out.write = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("trace: {e}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root, its packages (name, directory) and their test targets.
type Workspace = (PathBuf, Vec<(String, PathBuf)>, Vec<Target>);

/// The workspace's packages and test targets, from `cargo metadata`.
fn workspace() -> Result<Workspace, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let root = PathBuf::from(meta["workspace_root"].as_str().ok_or("no workspace_root")?);
    let mut packages = Vec::new();
    let mut targets = Vec::new();
    for p in meta["packages"].as_array().ok_or("no packages")? {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest
            .parent()
            .unwrap_or(&root)
            .strip_prefix(&root)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        packages.push((name.clone(), dir));
        for t in p["targets"].as_array().into_iter().flatten() {
            let kind = t["kind"][0].as_str().unwrap_or_default();
            if !matches!(kind, "lib" | "bin" | "test") {
                continue;
            }
            let src = PathBuf::from(t["src_path"].as_str().unwrap_or_default());
            targets.push(Target {
                package: name.clone(),
                name: t["name"].as_str().unwrap_or_default().to_string(),
                kind: kind.to_string(),
                src_path: src.strip_prefix(&root).unwrap_or(&src).to_path_buf(),
            });
        }
    }
    Ok((root, packages, targets))
}

fn rust_files(root: &Path, dir: &Path, package_dirs: &BTreeSet<PathBuf>, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = dir.join(e.file_name());
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            // Another package's directory is walked as that package.
            if name == "target" || name.starts_with('.') || package_dirs.contains(&rel) {
                continue;
            }
            rust_files(root, &rel, package_dirs, out);
        } else if name.ends_with(".rs") {
            out.push(rel);
        }
    }
}

fn normal(name: &str) -> String {
    name.replace('-', "_")
}

/// The outcome of one test in the last results; `None` when it did not run.
fn outcome(
    test: &TestFn,
    targets: &[Target],
    packages: &BTreeMap<String, PathBuf>,
    runs: &[Run],
) -> Option<Outcome> {
    let target = &targets[test.target];
    let package_dir = packages.get(&target.package)?;
    let source = target
        .src_path
        .strip_prefix(package_dir)
        .unwrap_or(&target.src_path);
    let mut found: Option<Outcome> = None;
    for run in runs {
        if normal(&run.crate_name) != normal(&target.name) || Path::new(&run.source) != source {
            continue;
        }
        for (name, result) in &run.tests {
            let (prefix, last) = match name.rsplit_once("::") {
                Some((p, l)) => (p, l),
                None => ("", name.as_str()),
            };
            let in_module = test.module.is_empty()
                || prefix == test.module
                || prefix.starts_with(&format!("{}::", test.module));
            if last == test.name && in_module {
                found = Some(found.map_or(*result, |f| f.min(*result)));
            }
        }
    }
    found
}

fn run() -> Result<bool, String> {
    let args = args()?;
    let (root, package_list, targets) = workspace()?;
    let packages: BTreeMap<String, PathBuf> = package_list.iter().cloned().collect();
    let spec = std::fs::read_to_string(root.join(REQUIREMENTS))
        .map_err(|e| format!("{REQUIREMENTS}: {e}"))?;
    let reqs = requirements::parse(&spec).map_err(|e| format!("{REQUIREMENTS}: {e}"))?;
    let known: BTreeSet<ReqId> = reqs.iter().map(|r| r.id).collect();

    // Every test of the workspace.
    let package_dirs: BTreeSet<PathBuf> = package_list
        .iter()
        .map(|(_, d)| d.clone())
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    let mut tests: Vec<TestFn> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for (_, dir) in &package_list {
        let mut files = Vec::new();
        rust_files(&root, dir, &package_dirs, &mut files);
        for file in files {
            let text = std::fs::read_to_string(root.join(&file))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            if !text.contains("#[test]") && !text.contains("#[tokio::test") {
                continue;
            }
            let Some((target, module)) = sources::place(&file, &targets) else {
                problems.push(format!(
                    "{}: tests in a file that belongs to no target",
                    file.display()
                ));
                continue;
            };
            let (found, malformed) = sources::scan_file(
                &text,
                &file,
                &module,
                target,
                sources::default_level(&targets[target]),
            );
            tests.extend(found);
            problems.extend(malformed.into_iter().map(|m| {
                format!(
                    "{}:{}: malformed annotation: {}",
                    m.file.display(),
                    m.line,
                    m.reason
                )
            }));
        }
    }
    for t in &tests {
        for id in t.ids.iter().filter(|id| !known.contains(id)) {
            problems.push(format!(
                "{}:{}: `{}` names {id}, which {REQUIREMENTS} does not define",
                t.file.display(),
                t.line,
                t.name
            ));
        }
    }

    // The last results.
    let runs = match &args.results {
        Some(path) if path.exists() => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(results::parse(&text))
        }
        Some(path) if args.require_results => {
            return Err(format!("{}: no test output", path.display()))
        }
        _ => None,
    };
    let outcomes: Vec<Option<Outcome>> = tests
        .iter()
        .map(|t| {
            runs.as_ref()
                .and_then(|r| outcome(t, &targets, &packages, r))
        })
        .collect();

    // The table.
    let mut by_id: BTreeMap<ReqId, Vec<usize>> = BTreeMap::new();
    for (i, t) in tests.iter().enumerate() {
        for id in &t.ids {
            by_id.entry(*id).or_default().push(i);
        }
    }
    let mut end_to_end = 0;
    for req in &reqs {
        let proving = by_id.get(&req.id).map(Vec::as_slice).unwrap_or(&[]);
        println!("{:<6} {}", req.id.to_string(), req.title(100));
        if proving.is_empty() {
            problems.push(format!("{} has no test that names it", req.id));
            println!("       (no test)");
        }
        let mut sorted = proving.to_vec();
        sorted.sort_by_key(|&i| (tests[i].level, tests[i].file.clone(), tests[i].line));
        for &i in &sorted {
            let t = &tests[i];
            let result = match (&runs, outcomes[i]) {
                (None, _) => "-",
                (Some(_), None) => "not run",
                (Some(_), Some(o)) => o.name(),
            };
            println!(
                "       {:<8} {:<10} {}",
                result,
                t.level.name(),
                t.display(&targets)
            );
            if outcomes[i] == Some(Outcome::Failed) {
                problems.push(format!("{}: {} failed", req.id, t.display(&targets)));
            }
        }
        if runs.is_some()
            && !proving.is_empty()
            && !proving
                .iter()
                .any(|&i| outcomes[i] == Some(Outcome::Passed))
        {
            problems.push(format!(
                "{}: none of its tests passed in the last run",
                req.id
            ));
        }
        if proving.iter().any(|&i| tests[i].level == Level::EndToEnd) {
            end_to_end += 1;
        }
    }
    if args.require_results {
        for (i, t) in tests.iter().enumerate() {
            if !t.ids.is_empty() && outcomes[i].is_none() {
                problems.push(format!(
                    "{}:{}: `{}` is not in the test output (renamed, or the tool cannot place it)",
                    t.file.display(),
                    t.line,
                    t.name
                ));
            }
        }
    }

    // The generated documents.
    let annotated = tests.iter().filter(|t| !t.ids.is_empty()).count();
    let traceability = traceability_md(&reqs, &tests, &by_id);
    let readme_path = root.join(README);
    let readme = std::fs::read_to_string(&readme_path).map_err(|e| format!("{README}: {e}"))?;
    let section = readme_section(&reqs, &tests, &by_id, annotated);
    let new_readme = replace_section(&readme, &section)
        .ok_or(format!("{README} has no {BEGIN} … {END} section"))?;
    let current_trace = std::fs::read_to_string(root.join(TRACEABILITY)).unwrap_or_default();
    if args.write {
        std::fs::write(root.join(TRACEABILITY), &traceability).map_err(|e| e.to_string())?;
        std::fs::write(&readme_path, &new_readme).map_err(|e| e.to_string())?;
    } else {
        if current_trace != traceability {
            problems.push(format!("{TRACEABILITY} is stale: run `make trace-docs`"));
        }
        if readme != new_readme {
            problems.push(format!(
                "{README}'s requirement section is stale: run `make trace-docs`"
            ));
        }
    }

    println!();
    let proven = reqs.iter().filter(|r| by_id.contains_key(&r.id)).count();
    println!(
        "{} requirements: {proven} with a test, {end_to_end} of them proven end to end, {} only below that (template, component, fakes, unit)",
        reqs.len(),
        proven - end_to_end
    );
    println!(
        "{} tests, {annotated} of them name the requirements they prove",
        tests.len()
    );
    if let Some(runs) = &runs {
        let count = |o: Outcome| {
            outcomes
                .iter()
                .zip(&tests)
                .filter(|(r, t)| !t.ids.is_empty() && **r == Some(o))
                .count()
        };
        println!(
            "last run ({} binaries): {} proving tests passed, {} failed, {} ignored, {} not run",
            runs.len(),
            count(Outcome::Passed),
            count(Outcome::Failed),
            count(Outcome::Ignored),
            annotated - count(Outcome::Passed) - count(Outcome::Failed) - count(Outcome::Ignored)
        );
    } else {
        println!("no test results given (make test keeps them in target/trace/test-output.txt)");
    }
    if problems.is_empty() {
        println!("trace: ok");
        Ok(true)
    } else {
        for p in &problems {
            eprintln!("trace: {p}");
        }
        eprintln!("trace: {} problem(s)", problems.len());
        Ok(false)
    }
}

fn level_counts(ids: &[usize], tests: &[TestFn]) -> BTreeMap<Level, usize> {
    let mut m = BTreeMap::new();
    for &i in ids {
        *m.entry(tests[i].level).or_insert(0) += 1;
    }
    m
}

fn traceability_md(
    reqs: &[Requirement],
    tests: &[TestFn],
    by_id: &BTreeMap<ReqId, Vec<usize>>,
) -> String {
    let mut s = String::new();
    s.push_str("# Traceability: every requirement, the tests that prove it\n\n");
    s.push_str(
        "Generated by `make trace-docs` from the tests' doc comments; do not edit. A test names\n",
    );
    s.push_str("the requirement ids it proves in the first line of its doc comment\n");
    s.push_str(
        "(`/// R1.4, R5.3: what it shows`), and names an id only if it fails when that promise\n",
    );
    s.push_str(
        "breaks. `make test` fails when a requirement of `spec/REQUIREMENTS.md` has no test, a\n",
    );
    s.push_str(
        "test names an id that does not exist, a proving test fails, or this file is stale.\n",
    );
    s.push_str("`make trace` prints the same table with each test's last result.\n\n");
    s.push_str(
        "Levels: **end-to-end** drives a function's handler (or the whole stack) with the real\n",
    );
    s.push_str("AWS SDK against the emulator and the provider simulator; **template** reads\n");
    s.push_str("`infra/template.yaml`, what AWS is told to build; **component** runs one adapter against\n");
    s.push_str(
        "the emulator or the simulator; **fakes** runs use cases or handlers on the in-memory\n",
    );
    s.push_str("fakes; **unit** is a test beside the code.\n");
    for req in reqs {
        s.push_str(&format!("\n## {}\n\n{}\n\n", req.id, req.text));
        let Some(ids) = by_id.get(&req.id) else {
            s.push_str("No test.\n");
            continue;
        };
        let mut sorted = ids.clone();
        sorted.sort_by_key(|&i| (tests[i].level, tests[i].file.clone(), tests[i].line));
        for i in sorted {
            let t = &tests[i];
            let module = if t.module.is_empty() {
                String::new()
            } else {
                format!("{}::", t.module)
            };
            s.push_str(&format!(
                "- {} `{}` `{}{}`: {}\n",
                t.level.name(),
                t.file.display(),
                module,
                t.name,
                t.claim
            ));
        }
    }
    s
}

fn readme_section(
    reqs: &[Requirement],
    tests: &[TestFn],
    by_id: &BTreeMap<ReqId, Vec<usize>>,
    annotated: usize,
) -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n\nGenerated by `make trace-docs` from the tests' doc comments, so it cannot claim more than\n");
    s.push_str(
        "the tests show; `make test` fails when it is stale. Each number counts the tests that\n",
    );
    s.push_str("name the requirement, by level; every test and what it shows: [TRACEABILITY.md](TRACEABILITY.md).\n\n");
    s.push_str("| ID | requirement | end-to-end | template | component | fakes | unit |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for req in reqs {
        let counts = level_counts(by_id.get(&req.id).map(Vec::as_slice).unwrap_or(&[]), tests);
        s.push_str(&format!(
            "| {} | {} |",
            req.id,
            req.title(90).replace('|', "\\|")
        ));
        for level in Level::ALL {
            let n = counts.get(&level).copied().unwrap_or(0);
            if n == 0 {
                s.push_str(" · |");
            } else {
                s.push_str(&format!(" {n} |"));
            }
        }
        s.push('\n');
    }
    let e2e = reqs
        .iter()
        .filter(|r| {
            by_id
                .get(&r.id)
                .is_some_and(|ids| ids.iter().any(|&i| tests[i].level == Level::EndToEnd))
        })
        .count();
    s.push_str(&format!(
        "\n{} requirements, {} proven end to end; {} of {} tests name what they prove.\n\n",
        reqs.len(),
        e2e,
        annotated,
        tests.len()
    ));
    s.push_str(END);
    s
}

fn replace_section(text: &str, section: &str) -> Option<String> {
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    Some(format!("{}{}{}", &text[..start], section, &text[end..]))
}
