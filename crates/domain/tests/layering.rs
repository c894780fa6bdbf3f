//! The layering rule, enforced: the domain and the use cases depend on no cloud SDK and no
//! Lambda runtime, directly or through another crate. Only the `aws` crate and the
//! functions may. Reads the resolved dependency graph from `cargo metadata`.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that must stay free of the cloud: the inner floors of the house.
const INNER: &[&str] = &["polly-domain", "polly-usecases", "polly-web"];

/// A package name that belongs to the AWS SDK or the Lambda runtime.
fn is_cloud(name: &str) -> bool {
    name.starts_with("aws-") || name.starts_with("aws_") || name.starts_with("lambda_")
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON")
}

/// Every package reachable from `root` through normal (non-dev, non-build) dependencies.
fn normal_closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("{root} is not in the workspace"));
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[pkg].to_string()) {
                todo.push(pkg);
            }
        }
    }
    seen
}

#[test]
fn inner_crates_depend_on_no_cloud_sdk_and_no_lambda_runtime() {
    let meta = metadata();
    for root in INNER {
        let closure = normal_closure(&meta, root);
        assert!(
            closure.len() > 3,
            "{root}: the dependency walk found nothing"
        );
        let cloud: Vec<_> = closure.iter().filter(|n| is_cloud(n)).collect();
        assert!(cloud.is_empty(), "{root} depends on {cloud:?}");
    }
}

#[test]
fn the_check_would_see_a_cloud_dependency() {
    // The AWS layer is reachable from the shared crate: the walk finds it there, so an
    // empty result above means something.
    let closure = normal_closure(&metadata(), "polly-shared");
    assert!(closure.contains("aws-sdk-dynamodb"));
    assert!(is_cloud("lambda_http") && is_cloud("aws-config") && !is_cloud("chrono"));
}

#[test]
fn the_page_crate_builds_on_the_domain_only_without_http_types() {
    // `web` renders strings and header pairs; the functions turn them into responses.
    let closure = normal_closure(&metadata(), "polly-web");
    assert!(closure.contains("polly-domain"));
    for banned in [
        "polly-usecases",
        "polly-shared",
        "http",
        "hyper",
        "lambda_http",
    ] {
        assert!(!closure.contains(banned), "polly-web depends on {banned}");
    }
}
