//! Schemathesis (pinned in `requirements/dev.lock.txt`, `.venv/bin/schemathesis`) against
//! a `LocalStack`: every public operation of the OpenAPI document the stack serves at
//! `/v1/openapi.json`, generated from the schema (examples, coverage, fuzzing) and
//! chained along the document's links (stateful phase).
//!
//! Checks: no 5xx (`not_a_server_error`), bodies that match the documented schema
//! (`response_schema_conformance`), only documented status codes
//! (`status_code_conformance`) and content types (`content_type_conformance`), and
//! `no_echo` (`tests/schemathesis/hooks.py`): no response repeats a string of six or
//! more characters from the request's body or query.
//!
//! The staff routes (`/v1/admin/*`) and the sales routes (`/v1/sales/*`) are in the
//! document but need a SigV4 signature, which schemathesis cannot make: they are left
//! out of this run (their malformed, oversized and hostile inputs are tested in
//! `dsar_staff*::` through the local gateway). `POLLY_SCHEMATHESIS` names another
//! schemathesis binary; without one the test fails (run `make setup`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::localstack::{LocalStack, Options};

/// Examples per operation and phase: the whole run stays well under three minutes here.
const MAX_EXAMPLES: u32 = 25;
/// A run that takes longer is stopped and fails.
const TIME_LIMIT: Duration = Duration::from_secs(240);
/// The routes that need a SigV4 signature.
const SIGNED_ROUTES: &str = "^/v1/(admin|sales)/";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schemathesis() -> PathBuf {
    std::env::var_os("POLLY_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/schemathesis"))
}

/// Every public route of the OpenAPI document: no server error, no response outside the
/// documented schema, status codes and content types, no echo of a submitted value.
#[tokio::test]
async fn schemathesis_finds_no_server_error_no_schema_break_and_no_echo() {
    let bin = schemathesis();
    assert!(
        bin.exists(),
        "{} is missing: `make setup` installs the pinned schemathesis",
        bin.display()
    );
    // Every request comes from 127.0.0.1: the per-source and per-identifier limits are
    // raised so that the run reaches the handlers' validation rather than 429s (the
    // limits have their own tests in dsar::).
    let limits = [
        "DSAR_DAILY_LIMIT",
        "DSAR_SOURCE_DAILY_LIMIT",
        "DSAR_IDENTIFIER_DAILY_LIMIT",
    ]
    .map(|k| (k.to_owned(), "100000".to_owned()));
    let stack = LocalStack::start_with(Options {
        env: limits.into_iter().collect(),
        ..Options::default()
    })
    .await
    .unwrap();
    let base = stack.base_url().to_owned();
    let spec = format!("{base}/v1/openapi.json");
    let report_dir = workspace().join("target/schemathesis");
    std::fs::create_dir_all(&report_dir).unwrap();
    let mut command = tokio::process::Command::new(&bin);
    command
        .arg("run")
        .arg(&spec)
        .args(["--url", &base])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,no_echo",
        ])
        .args(["--exclude-path-regex", SIGNED_ROUTES])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--generation-database", "none"])
        .args(["--max-redirects", "0"])
        .arg("--no-color")
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&report_dir)
        .env(
            "SCHEMATHESIS_HOOKS",
            workspace().join("tests/schemathesis/hooks.py"),
        )
        .env("POLLY_OPENAPI_URL", &spec)
        // Its caches (`.hypothesis`, `.schemathesis`) go there too, not into the tree.
        .current_dir(&report_dir)
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(TIME_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {TIME_LIMIT:?}"))
        .expect("schemathesis runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("schemathesis took {elapsed:?}\n{stdout}\n{stderr}");
    stack.stop().await.unwrap();
    assert!(
        output.status.success(),
        "schemathesis found failures (report in target/schemathesis):\n{stdout}\n{stderr}"
    );
}
