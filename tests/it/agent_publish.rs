//! trace-level: component
//!
//! `make agent` (`polly-agent`, through the same `agent::run` its `main` calls) against the
//! provider simulator's agent API: create, then update without duplicates, publish; a
//! wrong key; a configuration outside the provider's ranges refused before anything is
//! sent; a dry run that changes nothing; the key read from Secrets Manager (the emulator).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent::publish::Action;
use harness::simulator::{SimConfig, Simulator};
use harness::stack::Stack;
use serde_json::{json, Value};

const KEY: &str = "local-test-key";

async fn simulator() -> Simulator {
    Simulator::start(SimConfig::new(KEY))
        .await
        .expect("simulator")
}

/// The environment `make agent` would see: the simulator as the provider.
fn env_for(sim: &Simulator, key: Option<&str>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("RETELL_API_BASE_URL".to_owned(), sim.base_url().to_owned()),
        (
            "POLLY_WEBHOOK_URL".to_owned(),
            "http://127.0.0.1:9000/v1/telephony/retell".to_owned(),
        ),
    ]);
    if let Some(key) = key {
        env.insert("RETELL_API_KEY".to_owned(), key.to_owned());
    }
    env
}

async fn run(args: &[&str], env: &BTreeMap<String, String>) -> anyhow::Result<agent::Report> {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    // The tests run in `tests/`; `make agent` runs at the root with the default.
    if !args.iter().any(|a| a == "--dir") {
        args.extend(["--dir".to_owned(), repo_config().display().to_string()]);
    }
    agent::run(&args, &|name| env.get(name).cloned()).await
}

fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/agent")
}

/// A copy of the repository's configuration with `edit` applied to (llm, agent).
fn edited_config(edit: impl FnOnce(&mut Value, &mut Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polly-agent-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(repo_config().join(name)).expect("read"))
            .expect("json")
    };
    let (mut llm, mut agent) = (read("llm.json"), read("agent.json"));
    edit(&mut llm, &mut agent);
    std::fs::write(dir.join("llm.json"), llm.to_string()).expect("write");
    std::fs::write(dir.join("agent.json"), agent.to_string()).expect("write");
    dir
}

fn routes(sim: &Simulator) -> Vec<String> {
    sim.agent_api_requests()
        .into_iter()
        .map(|r| {
            format!(
                "{} {}",
                r.route.split('/').take(2).collect::<Vec<_>>().join("/"),
                r.status
            )
        })
        .collect()
}

fn count(sim: &Simulator, prefix: &str) -> usize {
    sim.agent_api_requests()
        .iter()
        .filter(|r| r.route.starts_with(prefix))
        .count()
}

/// R7.4: `make agent --publish` against the provider creates one LLM and one agent from
/// `infra/agent` (webhook URL and LLM id filled in) and publishes it; a second run finds
/// them by name and changes nothing (no create, no update, no second publication); a
/// changed begin message updates only the LLM, in place, and `--publish` publishes the
/// agent's new version, which then opens with it.
#[tokio::test]
async fn make_agent_creates_then_updates_without_duplicates() {
    let sim = simulator().await;
    let env = env_for(&sim, Some(KEY));

    let first = run(&["--publish"], &env).await.expect("first run");
    let outcome = first.outcome.expect("outcome");
    assert_eq!(
        (outcome.llm.clone(), outcome.agent.clone()),
        (Action::Created, Action::Created)
    );
    let (llm_id, agent_id) = (outcome.llm_id.unwrap(), outcome.agent_id.unwrap());
    assert_eq!(sim.llms().len(), 1);
    assert_eq!(sim.agents().len(), 1);
    let llm = &sim.llms()[&llm_id];
    let repo_llm: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_config().join("llm.json")).unwrap())
            .unwrap();
    assert_eq!(llm["begin_message"], repo_llm["begin_message"]);
    for t in llm["general_tools"].as_array().unwrap() {
        if t["type"] == "custom" {
            assert_eq!(t["url"], "http://127.0.0.1:9000/v1/telephony/retell");
        }
    }
    let agent = &sim.agents()[&agent_id];
    assert_eq!(agent["response_engine"]["llm_id"], llm_id.as_str());
    assert_eq!(
        agent["webhook_url"],
        "http://127.0.0.1:9000/v1/telephony/retell"
    );
    assert_eq!(agent["data_storage_setting"], "basic_attributes_only");
    let published = sim.published_agent(&agent_id).expect("published");
    assert_eq!(published.version, 0);
    assert_eq!(published.llm["begin_message"], repo_llm["begin_message"]);
    assert!(first.lines.iter().any(|l| l.contains(&agent_id)));

    let before = sim.agent_api_requests().len();
    let second = run(&["--publish"], &env).await.expect("second run");
    let outcome = second.outcome.expect("outcome");
    assert_eq!(
        (outcome.llm.clone(), outcome.agent.clone()),
        (Action::Unchanged, Action::Unchanged)
    );
    assert_eq!(outcome.published_version, None);
    assert_eq!(
        (outcome.llm_id.unwrap(), outcome.agent_id.unwrap()),
        (llm_id.clone(), agent_id.clone())
    );
    let later: Vec<_> = sim.agent_api_requests()[before..]
        .iter()
        .map(|r| r.route.clone())
        .collect();
    assert!(
        later
            .iter()
            .all(|r| r.starts_with("GET ") || r == "POST /v2/list-agents"),
        "{later:?}"
    );
    assert_eq!((sim.llms().len(), sim.agents().len()), (1, 1));
    assert_eq!(count(&sim, "POST /create-"), 2, "{:?}", routes(&sim));

    let new_opening = "Guten Tag {{first_name}}, hier ist Polly, eine KI. Das Gespräch wird nur mit Ihrer Zustimmung aufgezeichnet. Sie hatten sich auf unserer Website angemeldet — ist das richtig?";
    let dir = edited_config(|llm, _| llm["begin_message"] = json!(new_opening));
    let third = run(&["--publish", "--dir", dir.to_str().unwrap()], &env)
        .await
        .expect("third run");
    let outcome = third.outcome.expect("outcome");
    assert_eq!(
        outcome.llm,
        Action::Updated(vec!["begin_message".to_owned()])
    );
    assert_eq!(outcome.agent, Action::Unchanged);
    assert_eq!((sim.llms().len(), sim.agents().len()), (1, 1));
    let patch = sim
        .agent_api_requests()
        .into_iter()
        .find(|r| r.route.starts_with("PATCH /update-retell-llm/"))
        .expect("LLM patched");
    assert_eq!(patch.body, json!({"begin_message": new_opening}));
    assert_eq!(sim.llms()[&llm_id]["begin_message"], new_opening);
    // The agent's settings did not change, but its new draft (new LLM) is published, and
    // the published version opens with the new begin message.
    assert_eq!(count(&sim, "PATCH /update-agent/"), 0);
    assert_eq!(outcome.published_version, Some(1));
    assert_eq!(count(&sim, "POST /publish-agent-version/"), 2);
    let published = sim.published_agent(&agent_id).expect("published");
    assert_eq!(published.version, 1);
    assert_eq!(published.llm["begin_message"], new_opening);
    std::fs::remove_dir_all(dir).ok();
}

/// R7.4: a changed agent setting is sent as an update of that field only, makes a new
/// draft version at the provider, and `--publish` publishes exactly that version.
#[tokio::test]
async fn an_agent_change_is_patched_and_its_new_version_published() {
    let sim = simulator().await;
    let env = env_for(&sim, Some(KEY));
    let first = run(&["--publish"], &env)
        .await
        .expect("create")
        .outcome
        .unwrap();
    let agent_id = first.agent_id.unwrap();
    let dir = edited_config(|_, agent| agent["ring_duration_ms"] = json!(20_000));
    let args = [
        "--publish",
        "--dir",
        dir.to_str().unwrap(),
        "--agent-id",
        agent_id.as_str(),
    ];
    let second = run(&args, &env).await.expect("update").outcome.unwrap();
    assert_eq!(
        second.agent,
        Action::Updated(vec!["ring_duration_ms".to_owned()])
    );
    assert_eq!(second.published_version, Some(1));
    let patch = sim
        .agent_api_requests()
        .into_iter()
        .find(|r| r.route == format!("PATCH /update-agent/{agent_id}"))
        .expect("agent patched");
    assert_eq!(patch.body, json!({"ring_duration_ms": 20_000}));
    let published = sim.published_agent(&agent_id).expect("published");
    assert_eq!(
        (
            published.version,
            published.agent["ring_duration_ms"].clone()
        ),
        (1, json!(20_000))
    );
    assert_eq!(sim.agents().len(), 1);
    std::fs::remove_dir_all(dir).ok();
}

/// R7.4: with a wrong API key the provider answers 401, the run fails saying so, nothing
/// is created, and the key appears in no output.
#[tokio::test]
async fn a_wrong_key_is_refused() {
    let sim = simulator().await;
    let wrong = "wrong-key-4711";
    let env = env_for(&sim, Some(wrong));
    let error = run(&[], &env).await.expect_err("refused").to_string();
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains(wrong) && !error.contains(KEY), "{error}");
    assert!(sim.unauthorized_count() >= 1);
    assert!(sim.llms().is_empty() && sim.agents().is_empty());
    assert!(sim.agent_api_requests().is_empty());
    // And none at all: no key is no request.
    let error = run(&[], &env_for(&sim, None))
        .await
        .expect_err("no key")
        .to_string();
    assert!(error.contains("RETELL_API_KEY"), "{error}");
    // A key on the command line is refused outright.
    let error = run(&["--api-key", KEY], &env_for(&sim, None))
        .await
        .expect_err("argv key")
        .to_string();
    assert!(error.contains("never a command-line argument"), "{error}");
}

/// R7.4: a configuration outside the provider's ranges (ring time 400 000 ms) or
/// breaking a compliance check (no AI disclosure) is refused by our own checks before any
/// request reaches the provider; the provider would have refused the first as well.
#[tokio::test]
async fn a_configuration_outside_the_ranges_is_refused_before_sending() {
    let sim = simulator().await;
    let env = env_for(&sim, Some(KEY));
    let out_of_range = edited_config(|_, agent| agent["ring_duration_ms"] = json!(400_000));
    let error = run(&["--dir", out_of_range.to_str().unwrap()], &env)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("ring_duration_ms") && error.contains("nothing was sent"),
        "{error}"
    );
    let no_ai = edited_config(|llm, _| {
        llm["begin_message"] = json!("Guten Tag, dieses Gespräch wird aufgezeichnet. Sie hatten sich auf unserer Website angemeldet — ist das richtig?");
    });
    let error = run(&["--dir", no_ai.to_str().unwrap()], &env)
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("disclosure"), "{error}");
    assert!(sim.agent_api_requests().is_empty());
    assert_eq!(sim.unauthorized_count(), 0);

    // The simulator, like the provider, refuses the range itself (so our check is not
    // the only guard, and agrees with the provider's).
    run(&[], &env).await.expect("valid configuration published");
    let agent_id = sim.agents().keys().next().cloned().unwrap();
    let response = harness::simulator::http::send(
        "PATCH",
        &format!("{}/update-agent/{agent_id}", sim.base_url()),
        &[
            ("authorization", &format!("Bearer {KEY}")),
            ("content-type", "application/json"),
        ],
        json!({"ring_duration_ms": 400_000}).to_string().as_bytes(),
    )
    .await
    .expect("sent");
    assert_eq!(response.status, 400);
    assert_ne!(sim.agents()[&agent_id]["ring_duration_ms"], 400_000);
    std::fs::remove_dir_all(out_of_range).ok();
    std::fs::remove_dir_all(no_ai).ok();
}

/// R7.4: `--dry-run` reads the provider and prints the bodies it would send, with the
/// webhook URL filled in, but creates and changes nothing.
#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let sim = simulator().await;
    let env = env_for(&sim, Some(KEY));
    let report = run(&["--dry-run", "--publish"], &env)
        .await
        .expect("dry run");
    let outcome = report.outcome.expect("outcome");
    assert_eq!(
        (outcome.llm, outcome.agent),
        (Action::WouldCreate, Action::WouldCreate)
    );
    assert!(sim.llms().is_empty() && sim.agents().is_empty());
    assert!(sim
        .agent_api_requests()
        .iter()
        .all(|r| r.route == "POST /v2/list-agents"));
    let text = report.lines.join("\n");
    assert!(text.contains("POST /create-retell-llm") && text.contains("POST /create-agent"));
    assert!(text.contains("http://127.0.0.1:9000/v1/telephony/retell"));
    assert!(!text.contains("${POLLY_WEBHOOK_URL}") && !text.contains(KEY));
}

/// R7.4: without `RETELL_API_KEY` the key is read from the provider secret in Secrets
/// Manager (the functions' `PROVIDER_API_KEY_SECRET_ARN`), and the run publishes with it.
#[tokio::test]
async fn the_key_comes_from_secrets_manager() {
    let stack = Stack::isolated().await.expect("stack");
    let sim = simulator().await;
    let mut env = env_for(&sim, None);
    env.insert(
        "PROVIDER_API_KEY_SECRET_ARN".to_owned(),
        stack.provider_secret_arn.clone(),
    );
    let report = run(&[], &env)
        .await
        .expect("published with the secret's key");
    assert_eq!(report.outcome.unwrap().agent, Action::Created);
    assert_eq!(sim.unauthorized_count(), 0);
    assert_eq!(sim.agents().len(), 1);
}
