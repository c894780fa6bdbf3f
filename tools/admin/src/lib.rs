//! `polly-admin`: the staff CLI. Every staff route (`/v1/admin/...`, `AWS_IAM` in API
//! Gateway) behind one command, each request SigV4-signed for `execute-api` with the
//! normal AWS credential chain (environment, profile, IMDS/container role).
//!
//! Human-readable output by default, `--json` prints the route's JSON as it is. Errors:
//! the problem+json title and detail (and field errors), a 403 explained, a connection
//! error naming the URL; the exit code is 0 on success, 1 when the route refused or
//! failed, 2 for a usage error, 3 when the API or the credentials could not be reached.
//!
//! The library entry point [`run`] takes the arguments and [`Settings`] and returns what
//! would be printed, so the tests drive it in-process against the local gateway.

pub mod args;
mod render;
pub mod sign;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use serde_json::{json, Value};

/// Region when the credential chain names none (the stack's region).
pub const DEFAULT_REGION: &str = "eu-central-1";

/// Where requests go and who signs them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API base URL when `--api-url` is not given (`POLLY_API_URL`).
    pub api_url: Option<String>,
    /// `None`: the AWS credential chain (and its region).
    pub credentials: Option<Credentials>,
    /// The signing region when `--region` is not given; `None`: the chain's, else
    /// [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// How often `analytics-export` asks for the export's status.
    pub poll_interval: Duration,
    /// How long `analytics-export` waits for the export to end.
    pub wait_limit: Duration,
}

impl Settings {
    /// From the process environment: `POLLY_API_URL`, credentials from the chain.
    pub fn from_env() -> Self {
        Self {
            api_url: std::env::var("POLLY_API_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            credentials: None,
            region: None,
            poll_interval: Duration::from_secs(2),
            wait_limit: Duration::from_secs(15 * 60),
        }
    }
}

/// What a run printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One command: its name, arguments, what it does, its options.
struct Spec {
    name: &'static str,
    usage: &'static str,
    about: &'static str,
    values: &'static [&'static str],
    switches: &'static [&'static str],
}

const COMMANDS: &[Spec] = &[
    Spec {
        name: "list",
        usage: "list",
        about: "open requests, overdue first, with days left; failed and stuck ones marked",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "show",
        usage: "show <request-id>",
        about: "one request with its deadline and timeline",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "verify-identity",
        usage: "verify-identity <request-id>",
        about: "confirm the requester's identity (checked outside the system)",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "extend",
        usage: "extend <request-id> --months <1|2> --reason <text>",
        about: "extend the deadline (Art. 12(3) GDPR); the subject is told the reason",
        values: &["months", "reason"],
        switches: &[],
    },
    Spec {
        name: "deny",
        usage: "deny <request-id> --reason <text> [--reason <text>...]",
        about: "deny a request with its reasons (Art. 12(4) GDPR)",
        values: &["reason"],
        switches: &[],
    },
    Spec {
        name: "retry",
        usage: "retry <request-id>",
        about: "hand a failed or stuck request back to the worker",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "enter",
        usage: "enter --type <type> --channel <letter|phone|email> --received-at <YYYY-MM-DD|RFC 3339> [--email <addr>] [--phone <number>] [--message <text>] [--identity-verified]",
        about: "enter a request received by letter, phone or mail (datenschutz@pollyki.de); the deadline counts from its receipt",
        values: &["type", "channel", "received-at", "email", "phone", "message"],
        switches: &["identity-verified"],
    },
    Spec {
        name: "subject",
        usage: "subject <lead-id>",
        about: "a subject's stored data (prints personal data; the view is audited)",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "consents",
        usage: "consents <lead-id>",
        about: "a subject's consent history from the verified ledger (audited)",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "record-contract",
        usage: "record-contract <lead-id> --start <RFC 3339> --end <RFC 3339> --records <business_letters|booking_vouchers|books>",
        about: "record a contract with the subject (its records are kept for their statutory period)",
        values: &["start", "end", "records"],
        switches: &[],
    },
    Spec {
        name: "end-contract",
        usage: "end-contract <lead-id> <contract-id> --end <RFC 3339> --records <kind>",
        about: "end a contract; its statutory period runs from the end",
        values: &["end", "records"],
        switches: &[],
    },
    Spec {
        name: "lift-restriction",
        usage: "lift-restriction <lead-id>",
        about: "lift a restriction of processing (the subject is told first)",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "dnc-add",
        usage: "dnc-add <phone>",
        about: "put a number on the do-not-call list",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "dnc-lift",
        usage: "dnc-lift <phone>",
        about: "lift a number's do-not-call listing",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "analytics-export",
        usage: "analytics-export [--no-wait]",
        about: "start the pseudonymised analytics export and wait until it is done",
        values: &[],
        switches: &["no-wait"],
    },
    Spec {
        name: "analytics-status",
        usage: "analytics-status <export-id>",
        about: "the status of an analytics export",
        values: &[],
        switches: &[],
    },
    Spec {
        name: "stats",
        usage: "stats --from <YYYY-MM-DD> --to <YYYY-MM-DD>",
        about: "requests per type in a period: received, verified, denied, extended, completed (on time), median days (Art. 5(2) GDPR)",
        values: &["from", "to"],
        switches: &[],
    },
    Spec {
        name: "sales",
        usage: "sales queue | sales show <lead-id> | sales done <lead-id>",
        about: "the sales follow-up queue, a lead's follow-up record (prints personal data; audited), marking it done; needs a principal in SalesPrincipalArns",
        values: &[],
        switches: &[],
    },
];

fn spec(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.name == name)
}

/// The `--help` text.
pub fn usage() -> String {
    let mut s = String::from(
        "polly-admin: the Polly staff routes, signed with your AWS credentials (SigV4, execute-api)\n\n\
         usage: polly-admin [--api-url <url>] [--region <region>] [--json] <command> [args]\n\n\
         --api-url   the API base URL (default: $POLLY_API_URL)\n\
         --region    the signing region (default: the credential chain's, else eu-central-1)\n\
         --json      print the route's JSON as it is\n\n\
         Credentials come from the AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/\n\
         AWS_SESSION_TOKEN, AWS_PROFILE (~/.aws), or the instance/container role. For an SSO\n\
         profile: eval \"$(aws configure export-credentials --profile <p> --format env)\".\n\
         Your principal must be in the stack's StaffPrincipalArns.\n\ncommands:\n",
    );
    for c in COMMANDS {
        s.push_str(&format!("  {}\n      {}\n", c.usage, c.about));
    }
    s
}

/// Why a run failed.
#[derive(Debug)]
enum Failure {
    Usage(String),
    /// The route answered with an error status.
    Refused {
        status: u16,
        body: Value,
    },
    /// The API, or the credentials, could not be reached.
    Unreachable(String),
}

impl Failure {
    fn code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Refused { .. } => 1,
            Failure::Unreachable(_) => 3,
        }
    }
}

/// Runs `polly-admin` with `args` (without the program name).
pub async fn run(args: &[String], settings: Settings) -> Outcome {
    let mut out = Outcome::default();
    let parsed = args::parse(
        args,
        |c, o| spec(c).is_some_and(|s| s.values.contains(&o)),
        |c, o| spec(c).is_some_and(|s| s.switches.contains(&o)),
    );
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return usage_error(out, &e),
    };
    let Some(command) = parsed.command.clone() else {
        out.stdout = usage();
        out.code = if parsed.global.help { 0 } else { 2 };
        return out;
    };
    if command == "help" || parsed.global.help {
        out.stdout = match spec(&command) {
            Some(s) => format!("usage: polly-admin {}\n\n{}\n", s.usage, s.about),
            None => usage(),
        };
        return out;
    }
    let json_mode = parsed.global.json;
    match execute(&command, &parsed, &settings, &mut out).await {
        Ok(()) => out,
        Err(Failure::Usage(e)) => usage_error(out, &e),
        Err(f) => {
            out.code = f.code();
            match f {
                Failure::Refused { status, body } => {
                    if json_mode {
                        out.stdout.push_str(&pretty(&body));
                    }
                    out.stderr.push_str(&render::refusal(status, &body));
                }
                Failure::Unreachable(e) => out.stderr.push_str(&format!("error: {e}\n")),
                Failure::Usage(_) => unreachable!("handled above"),
            }
            out
        }
    }
}

fn usage_error(mut out: Outcome, e: &str) -> Outcome {
    out.code = 2;
    out.stderr = format!("error: {e}\nsee polly-admin --help\n");
    out
}

fn pretty(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    )
}

/// Exactly `n` positional arguments.
fn positionals<'a>(p: &'a args::Parsed, n: usize, usage: &str) -> Result<Vec<&'a str>, Failure> {
    if p.positionals.len() != n {
        return Err(Failure::Usage(format!("usage: polly-admin {usage}")));
    }
    // A URL client resolves `.` and `..` segments (also encoded): an id never is one.
    if let Some(bad) = p
        .positionals
        .iter()
        .find(|a| a.trim().is_empty() || a.as_str() == "." || a.as_str() == "..")
    {
        return Err(Failure::Usage(format!("{bad:?} is not an id")));
    }
    Ok(p.positionals.iter().map(String::as_str).collect())
}

fn required<'a>(p: &'a args::Parsed, name: &str) -> Result<&'a str, Failure> {
    p.opt(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Failure::Usage(format!("--{name} is required")))
}

/// A path segment, percent-encoded (an id can never add a segment or a query).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYY-MM-DD` as a date, or an RFC 3339 time; a date alone is noon UTC of that day (the
/// same calendar day in Germany, whatever the season).
fn receipt_time(s: &str) -> Result<String, Failure> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_rfc3339());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| format!("{d}T12:00:00Z"))
        .map_err(|_| {
            Failure::Usage(format!(
                "--received-at: {s:?} is neither YYYY-MM-DD nor RFC 3339"
            ))
        })
}

fn date(p: &args::Parsed, name: &str) -> Result<String, Failure> {
    let v = required(p, name)?;
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| d.to_string())
        .map_err(|_| Failure::Usage(format!("--{name}: {v:?} is not a date (YYYY-MM-DD)")))
}

async fn execute(
    command: &str,
    p: &args::Parsed,
    settings: &Settings,
    out: &mut Outcome,
) -> Result<(), Failure> {
    let Some(spec) = spec(command) else {
        return Err(Failure::Usage(format!("unknown command {command:?}")));
    };
    let usage = spec.usage;
    // What to send: method, path (with query), body.
    let (method, path, body): (&str, String, Option<Value>) = match command {
        "list" => {
            positionals(p, 0, usage)?;
            ("GET", "/v1/admin/dsar?status=open".into(), None)
        }
        "show" => {
            let a = positionals(p, 1, usage)?;
            ("GET", format!("/v1/admin/dsar/{}", seg(a[0])), None)
        }
        "verify-identity" | "retry" => {
            let a = positionals(p, 1, usage)?;
            (
                "POST",
                format!("/v1/admin/dsar/{}/{command}", seg(a[0])),
                Some(json!({})),
            )
        }
        "extend" => {
            let a = positionals(p, 1, usage)?;
            let months_text = required(p, "months")?;
            let months: u64 = months_text.parse().map_err(|_| {
                Failure::Usage(format!("--months: {months_text:?} is not a number"))
            })?;
            let reason = required(p, "reason")?;
            (
                "POST",
                format!("/v1/admin/dsar/{}/extend", seg(a[0])),
                Some(json!({"months": months, "reason": reason})),
            )
        }
        "deny" => {
            let a = positionals(p, 1, usage)?;
            let reasons = p.all("reason");
            if reasons.iter().all(|r| r.trim().is_empty()) {
                return Err(Failure::Usage(
                    "--reason is required (one or more; the subject is told them)".into(),
                ));
            }
            (
                "POST",
                format!("/v1/admin/dsar/{}/deny", seg(a[0])),
                Some(json!({ "reasons": reasons })),
            )
        }
        "enter" => {
            positionals(p, 0, usage)?;
            let channel = required(p, "channel")?;
            if !["letter", "phone", "email"].contains(&channel) {
                return Err(Failure::Usage(format!(
                    "--channel: {channel:?} is not one of letter, phone, email"
                )));
            }
            let mut body = json!({
                "type": required(p, "type")?,
                "channel": channel,
                "received_at": receipt_time(required(p, "received-at")?)?,
                "identity_verified": p.switch("identity-verified"),
            });
            for (flag, field) in [
                ("email", "email"),
                ("phone", "phone"),
                ("message", "message"),
            ] {
                if let Some(v) = p.opt(flag) {
                    body[field] = json!(v);
                }
            }
            ("POST", "/v1/admin/dsar".into(), Some(body))
        }
        "subject" => {
            let a = positionals(p, 1, usage)?;
            ("GET", format!("/v1/admin/subjects/{}", seg(a[0])), None)
        }
        "consents" => {
            let a = positionals(p, 1, usage)?;
            (
                "GET",
                format!("/v1/admin/subjects/{}/consents", seg(a[0])),
                None,
            )
        }
        "record-contract" => {
            let a = positionals(p, 1, usage)?;
            (
                "POST",
                format!("/v1/admin/subjects/{}/contracts", seg(a[0])),
                Some(json!({
                    "start": required(p, "start")?,
                    "end": required(p, "end")?,
                    "records": required(p, "records")?,
                })),
            )
        }
        "end-contract" => {
            let a = positionals(p, 2, usage)?;
            (
                "POST",
                format!(
                    "/v1/admin/subjects/{}/contracts/{}/end",
                    seg(a[0]),
                    seg(a[1])
                ),
                Some(json!({"end": required(p, "end")?, "records": required(p, "records")?})),
            )
        }
        "lift-restriction" => {
            let a = positionals(p, 1, usage)?;
            (
                "POST",
                format!("/v1/admin/subjects/{}/lift-restriction", seg(a[0])),
                Some(json!({})),
            )
        }
        "dnc-add" | "dnc-lift" => {
            let a = positionals(p, 1, usage)?;
            let path = if command == "dnc-add" {
                "/v1/admin/do-not-call"
            } else {
                "/v1/admin/do-not-call/lift"
            };
            ("POST", path.into(), Some(json!({"phone": a[0]})))
        }
        "analytics-export" => {
            positionals(p, 0, usage)?;
            (
                "POST",
                "/v1/admin/analytics-exports".into(),
                Some(json!({})),
            )
        }
        "analytics-status" => {
            let a = positionals(p, 1, usage)?;
            (
                "GET",
                format!("/v1/admin/analytics-exports/{}", seg(a[0])),
                None,
            )
        }
        "stats" => {
            positionals(p, 0, usage)?;
            let (from, to) = (date(p, "from")?, date(p, "to")?);
            if to < from {
                return Err(Failure::Usage("--to is before --from".into()));
            }
            ("GET", format!("/v1/admin/stats?from={from}&to={to}"), None)
        }
        "sales" => match p.positionals.first().map(String::as_str) {
            Some("queue") if p.positionals.len() == 1 => {
                ("GET", "/v1/sales/follow-ups".into(), None)
            }
            Some("show") | Some("done") if p.positionals.len() == 2 => {
                let lead = p.positionals[1].as_str();
                if lead.trim().is_empty() || lead == "." || lead == ".." {
                    return Err(Failure::Usage(format!("{lead:?} is not an id")));
                }
                if p.positionals[0] == "show" {
                    ("GET", format!("/v1/sales/follow-ups/{}", seg(lead)), None)
                } else {
                    (
                        "POST",
                        format!("/v1/sales/follow-ups/{}/done", seg(lead)),
                        Some(json!({})),
                    )
                }
            }
            _ => return Err(Failure::Usage(format!("usage: polly-admin {usage}"))),
        },
        other => unreachable!("command {other} has a spec but no request"),
    };
    let client = Client::new(p, settings).await?;
    let mut answer = client.call(method, &path, body.as_ref()).await?;
    if command == "analytics-export" && !p.switch("no-wait") {
        answer = client.wait_for_export(answer, settings, out).await?;
    }
    if p.global.json {
        out.stdout.push_str(&pretty(&answer));
    } else if command == "sales" {
        out.stdout
            .push_str(&render::sales(p.positionals[0].as_str(), &answer));
    } else {
        out.stdout.push_str(&render::success(command, &answer));
    }
    if command == "analytics-export" && answer["status"] == "failed" {
        out.code = 1;
    }
    Ok(())
}

/// Signed HTTP to the API.
struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    region: String,
}

impl Client {
    async fn new(p: &args::Parsed, settings: &Settings) -> Result<Self, Failure> {
        let base = p
            .global
            .api_url
            .clone()
            .or_else(|| settings.api_url.clone())
            .ok_or_else(|| {
                Failure::Usage("no API URL: pass --api-url or set POLLY_API_URL".into())
            })?;
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Failure::Usage(format!(
                "--api-url {base:?} is not an http(s) URL"
            )));
        }
        let (credentials, chain_region) = match &settings.credentials {
            Some(c) => (c.clone(), None),
            None => chain_credentials().await?,
        };
        let region = p
            .global
            .region
            .clone()
            .or_else(|| settings.region.clone())
            .or(chain_region)
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::Unreachable(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            credentials,
            region,
        })
    }

    /// One signed request; the route's status and JSON on success.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{}", self.base, path);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let signed: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let headers = sign::signing_headers(
            method,
            &url,
            signed,
            &bytes,
            &self.credentials,
            &self.region,
            SystemTime::now(),
        )
        .map_err(Failure::Usage)?;
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("a known method"),
            &url,
        );
        for (k, v) in signed.iter().copied() {
            req = req.header(k, v);
        }
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if body.is_some() {
            req = req.body(bytes);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::Unreachable(format!(
                "cannot reach the API at {}: {}",
                self.base,
                error_chain(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| {
            Failure::Unreachable(format!("reading the answer from {}: {e}", self.base))
        })?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(Failure::Refused {
                status,
                body: value,
            })
        }
    }

    /// Polls the export started with `started` until it is no longer running.
    async fn wait_for_export(
        &self,
        started: Value,
        settings: &Settings,
        out: &mut Outcome,
    ) -> Result<Value, Failure> {
        let Some(id) = started["export_id"].as_str().map(str::to_owned) else {
            // A route that answers with the finished export at once.
            return Ok(started);
        };
        let deadline = tokio::time::Instant::now() + settings.wait_limit;
        let mut current = started;
        while current["status"] == "running" {
            if tokio::time::Instant::now() >= deadline {
                out.stderr.push_str(&format!(
                    "export {id} still running; check it with: polly-admin analytics-status {id}\n"
                ));
                break;
            }
            tokio::time::sleep(settings.poll_interval).await;
            current = self
                .call(
                    "GET",
                    &format!("/v1/admin/analytics-exports/{}", seg(&id)),
                    None,
                )
                .await?;
        }
        Ok(current)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Credentials and region from the AWS chain.
async fn chain_credentials() -> Result<(Credentials, Option<String>), Failure> {
    use aws_credential_types::provider::ProvideCredentials;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| Failure::Unreachable("no AWS credential provider is configured".into()))?;
    let credentials = provider.provide_credentials().await.map_err(|e| {
        Failure::Unreachable(format!(
            "no AWS credentials (environment, profile, instance role): {}",
            error_chain(&e)
        ))
    })?;
    Ok((credentials, config.region().map(|r| r.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id stays one path segment: separators, queries and spaces are encoded.
    #[test]
    fn ids_are_one_encoded_path_segment() {
        assert_eq!(seg("a/../b?x=1#f"), "a%2F..%2Fb%3Fx%3D1%23f");
        assert_eq!(seg("0193-abc_x.y~"), "0193-abc_x.y~");
        assert_eq!(seg("ä b"), "%C3%A4%20b");
    }

    /// Usage errors exit 2 before any request (no API URL needed to find them).
    #[tokio::test]
    async fn usage_errors_exit_2_before_any_request() {
        let settings = Settings {
            api_url: Some("http://127.0.0.1:9".into()),
            credentials: Some(Credentials::new("a", "b", None, None, "t")),
            region: None,
            poll_interval: Duration::from_millis(1),
            wait_limit: Duration::from_millis(1),
        };
        for line in [
            vec!["show", ".."],
            vec!["show"],
            vec!["show", "a", "b"],
            vec!["extend", "x", "--reason", "r"],
            vec![
                "enter",
                "--type",
                "access",
                "--channel",
                "fax",
                "--received-at",
                "2026-11-01",
            ],
            vec![
                "enter",
                "--type",
                "access",
                "--channel",
                "letter",
                "--received-at",
                "1.11.2026",
            ],
            vec!["stats", "--from", "2026-12-01", "--to", "2026-11-01"],
            vec!["stats", "--from", "2026-12-01"],
            vec!["nonsense"],
        ] {
            let args: Vec<String> = line.iter().map(|s| (*s).to_owned()).collect();
            let out = run(&args, settings.clone()).await;
            assert_eq!(out.code, 2, "{line:?}: {out:?}");
            assert!(out.stderr.starts_with("error: "), "{line:?}: {out:?}");
        }
    }

    #[test]
    fn a_receipt_date_alone_is_noon_utc_of_that_day() {
        assert_eq!(receipt_time("2026-11-10").unwrap(), "2026-11-10T12:00:00Z");
        assert_eq!(
            receipt_time("2026-11-10T08:30:00+01:00").unwrap(),
            "2026-11-10T08:30:00+01:00"
        );
    }
}
