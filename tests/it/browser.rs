//! The pages in a real browser: Playwright + axe-core (`tests/browser`, pinned in its
//! `package-lock.json`) drive Debian's Chromium (`/usr/bin/chromium`) against a
//! [`LocalStack`]. The specs live in `tests/browser/specs`; this test starts the stack, runs
//! `npm --prefix tests/browser test` with `POLLY_BASE_URL`, `POLLY_MOTO_URL`,
//! `POLLY_STACK_NAME` and `POLLY_SCREENSHOT_DIR` (`target/screenshots`), streams its output
//! and fails unless it exits 0. A machine without Chromium or without the node modules
//! fails here with the command that installs them; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use harness::localstack::LocalStack;

/// Debian's Chromium, installed by `.ci/run` (package `chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run: about four minutes on an idle machine; the limit leaves room
/// for a loaded one.
const LIMIT: Duration = Duration::from_secs(15 * 60);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

/// What the browser run needs on this machine, each with the way to get it.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "{CHROMIUM} is missing: install Debian's chromium (.ci/run does: apt-get install chromium)"
        ));
    }
    if !browser_dir()
        .join("node_modules/@playwright/test/package.json")
        .exists()
        || !browser_dir()
            .join("node_modules/axe-core/package.json")
            .exists()
    {
        missing.push(
            "tests/browser/node_modules is missing: run `make setup` (npm ci in tests/browser)"
                .to_owned(),
        );
    }
    if std::process::Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        missing.push("npm is missing: the browser tests need Node.js 20 or later with npm".into());
    }
    missing
}

/// R4.1, R4.2, R4.4: through the pages in Chromium (JavaScript on and off), a sign-up leads
/// to the simulated call, and an access request verified with the mailed code ends on its
/// status page with a download of a ZIP holding `LIESMICH.txt`, `information.json`,
/// `data.json` and the call's transcript and recording; an erasure and a consent
/// withdrawal (opened from the mail's link) end on their status pages; every form error
/// is tied to its field and matches the JSON API's; axe-core finds 0 WCAG 2.2 AA violations
/// on every page in German and English; every page sends the exact CSP, no-referrer and
/// noindex; the only cookie is `polly_request` (HttpOnly, Secure, SameSite=Strict, Path=/);
/// the request token is in no URL and no Referer, and no request leaves the stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_chromium() {
    let missing = missing_prerequisites();
    assert!(
        missing.is_empty(),
        "the browser tests cannot run:\n{}",
        missing.join("\n")
    );
    let shots = screenshot_dir();
    // Only this run's screenshots and metrics are left in the directory.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("create target/screenshots");

    let stack = LocalStack::start().await.expect("start the local stack");
    let mut child = tokio::process::Command::new("npm")
        .arg("--prefix")
        .arg(browser_dir())
        .arg("test")
        .env("POLLY_BASE_URL", stack.base_url())
        .env("POLLY_MOTO_URL", stack.moto_url())
        .env("POLLY_STACK_NAME", stack.stack_name())
        .env("POLLY_SCREENSHOT_DIR", &shots)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("CI", "1")
        // The test's output is the browser run's, as it happens.
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run npm --prefix tests/browser test");
    let status = match tokio::time::timeout(LIMIT, child.wait()).await {
        Ok(status) => status.expect("wait for the browser run"),
        Err(_) => {
            let _ = child.kill().await;
            panic!("the browser run took longer than {LIMIT:?}");
        }
    };
    stack.stop().await.expect("stop the local stack");
    assert!(
        status.success(),
        "the browser tests failed ({status}); screenshots and metrics in {}",
        shots.display()
    );
    let metrics = std::fs::read_to_string(shots.join("metrics.json"))
        .expect("the browser run writes target/screenshots/metrics.json");
    let metrics: serde_json::Value = serde_json::from_str(&metrics).expect("metrics.json is JSON");
    assert!(
        metrics["pages"].as_array().is_some_and(|p| !p.is_empty()),
        "metrics.json lists the pages"
    );
}
