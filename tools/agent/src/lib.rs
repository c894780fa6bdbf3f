//! `make agent`: the agent's configuration as code (R7.4).
//!
//! The configuration lives in `infra/agent/` as the provider's request bodies
//! ([`config`]). Before anything is sent it is checked ([`check`]): against the
//! provider's limits, and against what the backend's compliance checks expect (the
//! opening discloses the AI and the recording with the webhook's disclosure patterns;
//! each tool's schema matches the backend's parser; storage minimised; a bounded ring
//! time). Then [`publish`] creates or updates the LLM and the agent and optionally
//! publishes the agent's version.
//!
//! The API key comes from `RETELL_API_KEY`, or from the Secrets Manager secret
//! `PROVIDER_API_KEY_SECRET_ARN` (its `current` key, as the functions read it); never
//! from the command line, and it is never printed.

pub mod check;
pub mod config;
pub mod publish;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use secrecy::SecretString;
use serde_json::Value;
use usecases::telephony::retell::compliance::DisclosurePatterns;

use config::AgentConfig;
use publish::{Api, Ids, Mode, Outcome};

/// Usage text; `--help` prints it.
pub const USAGE: &str = "\
usage: polly-agent [--dir infra/agent] [--webhook-url URL] [--llm-id ID] [--agent-id ID]
                   [--base-url URL] [--dry-run] [--publish] [--check]

  --webhook-url  the API's /v1/telephony/retell URL (env POLLY_WEBHOOK_URL)
  --llm-id, --agent-id  the provider's ids (env RETELL_LLM_ID, RETELL_AGENT_ID); without
                 them the agent is found by its agent_name, or created
  --base-url     the provider's API (env RETELL_API_BASE_URL, default https://api.retellai.com)
  --dry-run      read the provider, print what would be sent, change nothing
  --publish      publish the agent's draft version after the update
  --check        only check the configuration; needs no key and no network
The API key: env RETELL_API_KEY, or env PROVIDER_API_KEY_SECRET_ARN (Secrets Manager).
Disclosure patterns: env DISCLOSURE_AI_PATTERNS, DISCLOSURE_RECORDING_PATTERNS (as the
webhook reads them; German defaults).";

/// The command line and environment, read.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub webhook_url: String,
    pub base_url: String,
    pub ids: Ids,
    pub mode: Mode,
    pub check_only: bool,
    pub patterns: DisclosurePatterns,
}

fn list(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Options {
    /// Reads `args` (without the program name) and the environment `env`.
    pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut dir = PathBuf::from("infra/agent");
        let mut webhook_url = env(config::WEBHOOK_URL);
        let mut base_url = env("RETELL_API_BASE_URL");
        let mut ids = Ids {
            llm_id: env("RETELL_LLM_ID"),
            agent_id: env("RETELL_AGENT_ID"),
        };
        let mut mode = Mode::default();
        let mut check_only = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .filter(|v| !v.starts_with("--"))
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--dir" => dir = PathBuf::from(value("--dir")?),
                "--webhook-url" => webhook_url = Some(value("--webhook-url")?),
                "--base-url" => base_url = Some(value("--base-url")?),
                "--llm-id" => ids.llm_id = Some(value("--llm-id")?),
                "--agent-id" => ids.agent_id = Some(value("--agent-id")?),
                "--dry-run" => mode.dry_run = true,
                "--publish" => mode.publish = true,
                "--check" => check_only = true,
                a if a.starts_with("--api-key") || a.starts_with("--key") => {
                    bail!("the API key is never a command-line argument (it would be in the shell history and the process list); set RETELL_API_KEY or PROVIDER_API_KEY_SECRET_ARN")
                }
                _ => bail!("unknown argument {arg:?}\n{USAGE}"),
            }
        }
        let webhook_url = webhook_url.with_context(|| {
            format!("the webhook URL is required: --webhook-url or POLLY_WEBHOOK_URL\n{USAGE}")
        })?;
        if !webhook_url.ends_with(check::WEBHOOK_PATH)
            || !(webhook_url.starts_with("https://")
                || webhook_url.starts_with("http://127.0.0.1:"))
        {
            bail!(
                "the webhook URL must be https://…{} (http://127.0.0.1:… locally)",
                check::WEBHOOK_PATH
            );
        }
        let defaults = DisclosurePatterns::default();
        let or_default = |v: Vec<String>, d: Vec<String>| if v.is_empty() { d } else { v };
        Ok(Self {
            dir,
            webhook_url,
            base_url: base_url.unwrap_or_else(|| "https://api.retellai.com".to_owned()),
            ids,
            mode,
            check_only,
            patterns: DisclosurePatterns {
                ai: or_default(list(env("DISCLOSURE_AI_PATTERNS")), defaults.ai),
                recording: or_default(
                    list(env("DISCLOSURE_RECORDING_PATTERNS")),
                    defaults.recording,
                ),
            },
        })
    }
}

/// The configuration with its placeholders filled: the LLM, and the agent for `llm_id`.
pub fn filled(config: &AgentConfig, webhook_url: &str, llm_id: &str) -> Result<(Value, Value)> {
    let vars = BTreeMap::from([
        (config::WEBHOOK_URL, webhook_url.to_owned()),
        (config::LLM_ID, llm_id.to_owned()),
    ]);
    Ok((
        config::fill(&config.llm, &vars)?,
        config::fill(&config.agent, &vars)?,
    ))
}

/// Loads and checks the configuration; every finding is listed in the error.
pub fn load_checked(options: &Options) -> Result<AgentConfig> {
    let config = AgentConfig::load(&options.dir)?;
    // The LLM id is not known yet; any id stands for it in the check.
    let (llm, agent) = filled(&config, &options.webhook_url, "llm_to_be_assigned")?;
    let findings = check::all(&llm, &agent, &options.webhook_url, &options.patterns);
    if !findings.is_empty() {
        bail!(
            "the agent configuration in {} is refused, nothing was sent:\n  - {}",
            options.dir.display(),
            findings.join("\n  - ")
        );
    }
    Ok(config)
}

/// The provider API key: `RETELL_API_KEY`, else the secret's `current` key.
pub async fn api_key(env: &dyn Fn(&str) -> Option<String>) -> Result<SecretString> {
    if let Some(key) = env("RETELL_API_KEY").filter(|k| !k.is_empty()) {
        return Ok(SecretString::from(key));
    }
    let Some(secret) = env("PROVIDER_API_KEY_SECRET_ARN").filter(|k| !k.is_empty()) else {
        bail!("no API key: set RETELL_API_KEY or PROVIDER_API_KEY_SECRET_ARN");
    };
    let sdk = aws::sdk::load().await;
    let keys =
        aws::secrets::ProviderKeySource::new(aws_sdk_secretsmanager::Client::new(&sdk), secret)
            .keys()
            .await
            .context("reading the provider key from Secrets Manager")?;
    Ok(keys.current)
}

/// What a run did, in lines for the operator (no key, no personal data).
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Option<Outcome>,
    pub lines: Vec<String>,
}

/// The whole program: options, check, key, publish.
pub async fn run(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Report> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Report {
            outcome: None,
            lines: vec![USAGE.to_owned()],
        });
    }
    let options = Options::parse(args, env)?;
    let config = load_checked(&options)?;
    let mut lines = vec![format!(
        "configuration in {} passes the checks",
        options.dir.display()
    )];
    if options.check_only {
        return Ok(Report {
            outcome: None,
            lines,
        });
    }
    let api = Api::new(&options.base_url, api_key(env).await?)?;
    let (llm, _) = filled(&config, &options.webhook_url, "")?;
    let fill_agent = |llm_id: &str| Ok(filled(&config, &options.webhook_url, llm_id)?.1);
    let outcome = publish::apply(
        &api,
        &llm,
        config.agent_name(),
        &fill_agent,
        options.ids.clone(),
        options.mode,
    )
    .await?;
    let id = |v: &Option<String>| v.clone().unwrap_or_else(|| "(new)".to_owned());
    lines.push(format!("LLM {}: {}", id(&outcome.llm_id), outcome.llm));
    lines.push(format!(
        "agent {}: {}",
        id(&outcome.agent_id),
        outcome.agent
    ));
    if let Some(v) = outcome.published_version {
        lines.push(format!("agent version {v} published"));
    }
    for (request, body) in &outcome.would_send {
        lines.push(format!(
            "{request}\n{}",
            serde_json::to_string_pretty(body).unwrap_or_default()
        ));
    }
    if let Some(agent_id) = &outcome.agent_id {
        lines.push(format!(
            "the telephony worker's RETELL_AGENT_ID (template parameter RetellAgentId): {agent_id}"
        ));
    }
    Ok(Report {
        outcome: Some(outcome),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Options> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Options::parse(&args, &|name| env.get(name).cloned())
    }

    #[test]
    fn the_webhook_url_must_be_our_route_over_https_or_loopback() {
        for bad in [
            "http://api.polly-ki.de/v1/telephony/retell",
            "https://api.polly-ki.de/v1/signups",
            "https://api.polly-ki.de/v1/telephony/retell/extra",
        ] {
            assert!(parse(&["--webhook-url", bad], &[]).is_err(), "{bad}");
        }
        let ok = parse(
            &["--dry-run"],
            &[(
                "POLLY_WEBHOOK_URL",
                "https://api.polly-ki.de/v1/telephony/retell",
            )],
        )
        .unwrap();
        assert!(ok.mode.dry_run && !ok.mode.publish);
        assert!(parse(
            &["--webhook-url", "http://127.0.0.1:9000/v1/telephony/retell"],
            &[]
        )
        .is_ok());
    }

    #[test]
    fn arguments_override_the_environment_and_patterns_follow_the_webhooks_variables() {
        let o = parse(
            &[
                "--agent-id",
                "agent_b",
                "--webhook-url",
                "https://x.example/v1/telephony/retell",
            ],
            &[
                ("RETELL_AGENT_ID", "agent_a"),
                ("RETELL_LLM_ID", "llm_a"),
                ("DISCLOSURE_AI_PATTERNS", "Roboter, KI"),
            ],
        )
        .unwrap();
        assert_eq!(o.ids.agent_id.as_deref(), Some("agent_b"));
        assert_eq!(o.ids.llm_id.as_deref(), Some("llm_a"));
        assert_eq!(o.patterns.ai, vec!["Roboter", "KI"]);
        assert_eq!(
            o.patterns.recording,
            DisclosurePatterns::default().recording
        );
        assert!(parse(&["--agent-id"], &[]).is_err());
        assert!(parse(&["--frobnicate"], &[]).is_err());
    }
}
