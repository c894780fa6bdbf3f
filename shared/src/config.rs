//! Typed configuration, read once per cold start from the environment the template sets.
//! Tests build it from a map. There is no "local mode": the local stack differs only in
//! the values (and in `AWS_ENDPOINT_URL`, which the AWS SDK reads itself).

use std::collections::HashMap;
use std::net::IpAddr;

/// The privacy policy version in force (the policy's date).
pub const CURRENT_PRIVACY_POLICY_VERSION: &str = "2024-04-08";

/// Lets a real (non-dry) sweep run with a moved clock. Only the local stack sets it
/// (`scripts/run-local.sh`, the test harness); the template never does, and a test
/// proves it (R3.1).
pub const SWEEP_ALLOW_CLOCK_OVERRIDE: &str = "SWEEP_ALLOW_CLOCK_OVERRIDE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The main DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// The table of wrapped subject keys, kept without backups so that deleting a key
    /// is crypto-shredding (`KEY_TABLE_NAME`).
    pub key_table_name: String,
    /// Customer managed KMS key that wraps the per-subject data keys (`DATA_KEY_ID`).
    pub data_key_id: String,
    /// KMS HMAC key for blind indexes (`BLIND_INDEX_KEY_ID`).
    pub blind_index_key_id: String,
    /// Origins allowed to call the public API from a browser (`ALLOWED_ORIGINS`,
    /// comma-separated; empty allows none).
    pub allowed_origins: Vec<String>,
    /// Privacy policy versions a consent may refer to (`PRIVACY_POLICY_VERSIONS`,
    /// comma-separated; default: the current version).
    pub privacy_policy_versions: Vec<String>,
    /// ARN of the data key, for SSE-KMS headers (`DATA_KEY_ARN`; bucket policies compare
    /// the ARN). Defaults to `DATA_KEY_ID`.
    pub data_key_arn: String,
    /// The recordings bucket (`RECORDINGS_BUCKET`; telephony functions).
    pub recordings_bucket: Option<String>,
    /// Secrets Manager secret holding the provider API key(s)
    /// (`PROVIDER_API_KEY_SECRET_ARN`; required by the telephony functions).
    pub provider_api_key_secret_arn: Option<String>,
    /// The worker's dead-letter queue (`DEAD_LETTER_QUEUE_URL`; dsar worker), where it
    /// announces a request it gave up for operators to replay (`make redrive`).
    pub dead_letter_queue_url: Option<String>,
    /// Provider API base URL (`RETELL_API_BASE_URL`, default `https://api.retellai.com`).
    pub retell_api_base_url: String,
    /// Number outbound calls come from (`RETELL_FROM_NUMBER`, E.164; telephony worker).
    pub retell_from_number: Option<String>,
    /// Agent that places outbound calls (`RETELL_AGENT_ID`; telephony worker).
    pub retell_agent_id: Option<String>,
    /// Provider-side storage of a call (`RETELL_DATA_STORAGE_SETTING`, default
    /// `basic_attributes_only`: the provider keeps no transcript or recording).
    pub retell_data_storage_setting: String,
    /// Whose public holidays the calling hours keep (`CALLING_STATE`, a Bundesland code,
    /// default `NW`; R7.2).
    pub calling_state: domain::calling_hours::Bundesland,
    /// How long an outbound call rings (`RING_DURATION_MS`, default 30 000, clamped to the
    /// provider's 5 000–300 000; R7.3).
    pub ring_duration_ms: u32,
    /// Whether calls are deleted at the provider once handled (`PROVIDER_DELETE_CALLS`,
    /// default true; R2.9).
    pub provider_delete_calls: bool,
    /// Hosts recordings may be downloaded from (`RECORDING_HOSTS`, comma-separated; exact
    /// or `*.suffix`).
    pub recording_hosts: Vec<String>,
    /// Also allow `http://127.0.0.1:<port>` recording URLs (`RECORDINGS_ALLOW_LOOPBACK`;
    /// the local stack's simulator only).
    pub recordings_allow_loopback: bool,
    /// AI-disclosure phrases (`DISCLOSURE_AI_PATTERNS`, comma-separated; default German).
    pub disclosure_ai_patterns: Vec<String>,
    /// Recording-disclosure phrases (`DISCLOSURE_RECORDING_PATTERNS`; default German).
    pub disclosure_recording_patterns: Vec<String>,
    /// The exports bucket (`EXPORTS_BUCKET`; data-subject-request functions and sweep).
    pub exports_bucket: Option<String>,
    /// Sender of mails to data subjects (`MAIL_FROM`; an SES-verified identity).
    pub mail_from: Option<String>,
    /// The privacy team's address, where the daily digest goes (`PRIVACY_TEAM_EMAIL`,
    /// default datenschutz@pollyki.de, the address the policy names).
    pub privacy_team_email: String,
    /// Public base URL of the API, for links in mails (`PUBLIC_API_BASE_URL`).
    pub public_api_base_url: Option<String>,
    /// Data-subject requests per identifier, source and day (`DSAR_DAILY_LIMIT`,
    /// default 3).
    pub dsar_daily_limit: u32,
    /// Data-subject requests per source address and day (`DSAR_SOURCE_DAILY_LIMIT`,
    /// default 10).
    pub dsar_source_daily_limit: u32,
    /// Data-subject requests (code mails) per identifier and day from all sources
    /// (`DSAR_IDENTIFIER_DAILY_LIMIT`, default 10).
    pub dsar_identifier_daily_limit: u32,
    /// Whether a real sweep may be given `now` (`SWEEP_ALLOW_CLOCK_OVERRIDE`, default
    /// false). Deployed, a moved clock is for dry runs only: a real run with one would
    /// delete data before it is due (R3.1).
    pub sweep_allow_clock_override: bool,
    /// IAM role or user ARNs whose callers may use the staff routes
    /// (`STAFF_PRINCIPAL_ARNS`, comma-separated; empty admits nobody; R4.10, R5.4).
    pub staff_principal_arns: Vec<String>,
    /// IAM role or user ARNs whose callers may use the sales routes
    /// (`SALES_PRINCIPAL_ARNS`, comma-separated; empty admits nobody; issue 17). Apart
    /// from the privacy team's `STAFF_PRINCIPAL_ARNS`: neither admits the other.
    pub sales_principal_arns: Vec<String>,
    /// Networks the provider's webhooks may come from (`WEBHOOK_SOURCE_CIDRS`,
    /// comma-separated CIDRs or addresses; empty: no restriction; R2.1).
    pub webhook_source_cidrs: Vec<Cidr>,
    /// The consent ledger's signing key (`LEDGER_KEY_ID`; the daily head job signs with
    /// it, the staff function reads its public key; R7.6).
    pub ledger_key_id: Option<String>,
    /// How long a verified erasure waits, cancellable and with the subject restricted,
    /// before it runs (`ERASURE_CANCEL_HOURS`, default 48; 0 to 168, the template allows
    /// 1 to 168; 0, no window, is for the erasure mechanics' tests).
    pub erasure_cancel_hours: u32,
    /// The CRM's webhook (`CRM_WEBHOOK_URL`; empty: no CRM, nothing is queued for one).
    /// `https://`, or `http://127.0.0.1` for the local receiver.
    pub crm_webhook_url: Option<String>,
    /// Secrets Manager secret holding the webhook's signing secret
    /// (`CRM_WEBHOOK_SECRET_ARN`, `{"current": "..."}`; the crm worker).
    pub crm_webhook_secret_arn: Option<String>,
}

/// An IPv4 or IPv6 network (`100.20.5.228/32`, `2001:db8::/32`; a bare address is a
/// single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address[/prefix]`; host bits must be zero, so a typo cannot silently
    /// widen or shift the network.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        if prefix > max {
            return None;
        }
        let cidr = Self { network, prefix };
        // Host bits set (`10.0.0.1/8`) are refused rather than read as `10.0.0.0/8`.
        (cidr.masked(network)? == bits(network)).then_some(cidr)
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses are compared as
    /// IPv4; an IPv4 address never matches an IPv6 network and vice versa).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.masked(ip) == Some(bits(self.network))
    }

    fn masked(&self, ip: IpAddr) -> Option<u128> {
        let width = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 32,
            (IpAddr::V6(_), IpAddr::V6(_)) => 128,
            _ => return None,
        };
        let host_bits = u32::from(width - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        Some(bits(ip) & mask)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0} has an invalid value")]
    Invalid(&'static str),
}

/// The privacy team's address named in the privacy policy.
pub const DEFAULT_PRIVACY_TEAM_EMAIL: &str = "datenschutz@pollyki.de";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads configuration from a map of variable names to values.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| -> Result<String, ConfigError> {
            match vars.get(name).map(|v| v.trim()) {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => Err(ConfigError::Missing(name)),
            }
        };
        let list = |name: &'static str| -> Vec<String> {
            vars.get(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let allowed_origins = list("ALLOWED_ORIGINS");
        if allowed_origins
            .iter()
            .any(|o| o == "*" || !(o.starts_with("https://") || o.starts_with("http://")))
        {
            return Err(ConfigError::Invalid("ALLOWED_ORIGINS"));
        }
        let mut privacy_policy_versions = list("PRIVACY_POLICY_VERSIONS");
        if privacy_policy_versions.is_empty() {
            privacy_policy_versions.push(CURRENT_PRIVACY_POLICY_VERSION.to_owned());
        }
        let defaults = crate::retell::compliance::DisclosurePatterns::default();
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match vars.get(name).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(default),
                Some(v) if v.is_empty() => Ok(default),
                Some(v) if v == "true" || v == "1" => Ok(true),
                Some(v) if v == "false" || v == "0" => Ok(false),
                Some(_) => Err(ConfigError::Invalid(name)),
            }
        };
        let or_default = |v: Vec<String>, d: Vec<String>| if v.is_empty() { d } else { v };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            key_table_name: required("KEY_TABLE_NAME")?,
            data_key_id: required("DATA_KEY_ID")?,
            blind_index_key_id: required("BLIND_INDEX_KEY_ID")?,
            allowed_origins,
            privacy_policy_versions,
            provider_api_key_secret_arn: required("PROVIDER_API_KEY_SECRET_ARN").ok(),
            dead_letter_queue_url: required("DEAD_LETTER_QUEUE_URL").ok(),
            recordings_bucket: required("RECORDINGS_BUCKET").ok(),
            data_key_arn: required("DATA_KEY_ARN").or_else(|_| required("DATA_KEY_ID"))?,
            retell_api_base_url: required("RETELL_API_BASE_URL")
                .unwrap_or_else(|_| "https://api.retellai.com".to_owned()),
            retell_from_number: required("RETELL_FROM_NUMBER").ok(),
            retell_agent_id: required("RETELL_AGENT_ID").ok(),
            retell_data_storage_setting: required("RETELL_DATA_STORAGE_SETTING")
                .unwrap_or_else(|_| "basic_attributes_only".to_owned()),
            calling_state: match required("CALLING_STATE") {
                Ok(code) => domain::calling_hours::Bundesland::parse(&code)
                    .ok_or(ConfigError::Invalid("CALLING_STATE"))?,
                Err(_) => domain::calling_hours::Bundesland::NW,
            },
            ring_duration_ms: usecases::telephony::outbound::ring_duration_ms(
                match required("RING_DURATION_MS") {
                    Ok(v) => Some(
                        v.parse()
                            .map_err(|_| ConfigError::Invalid("RING_DURATION_MS"))?,
                    ),
                    Err(_) => None,
                },
            ),
            provider_delete_calls: flag("PROVIDER_DELETE_CALLS", true)?,
            recording_hosts: or_default(
                list("RECORDING_HOSTS"),
                vec![
                    "*.retellai.com".to_owned(),
                    "dxc03zgurdly9.cloudfront.net".to_owned(),
                ],
            ),
            recordings_allow_loopback: flag("RECORDINGS_ALLOW_LOOPBACK", false)?,
            disclosure_ai_patterns: or_default(list("DISCLOSURE_AI_PATTERNS"), defaults.ai),
            disclosure_recording_patterns: or_default(
                list("DISCLOSURE_RECORDING_PATTERNS"),
                defaults.recording,
            ),
            exports_bucket: required("EXPORTS_BUCKET").ok(),
            mail_from: required("MAIL_FROM").ok(),
            privacy_team_email: required("PRIVACY_TEAM_EMAIL")
                .unwrap_or_else(|_| DEFAULT_PRIVACY_TEAM_EMAIL.to_owned()),
            public_api_base_url: required("PUBLIC_API_BASE_URL")
                .ok()
                .map(|u| u.trim_end_matches('/').to_owned()),
            dsar_daily_limit: positive(&required, "DSAR_DAILY_LIMIT", 3)?,
            dsar_source_daily_limit: positive(&required, "DSAR_SOURCE_DAILY_LIMIT", 10)?,
            dsar_identifier_daily_limit: positive(&required, "DSAR_IDENTIFIER_DAILY_LIMIT", 10)?,
            sweep_allow_clock_override: flag(SWEEP_ALLOW_CLOCK_OVERRIDE, false)?,
            staff_principal_arns: list("STAFF_PRINCIPAL_ARNS"),
            sales_principal_arns: list("SALES_PRINCIPAL_ARNS"),
            webhook_source_cidrs: list("WEBHOOK_SOURCE_CIDRS")
                .iter()
                .map(|c| Cidr::parse(c))
                .collect::<Option<Vec<_>>>()
                .ok_or(ConfigError::Invalid("WEBHOOK_SOURCE_CIDRS"))?,
            ledger_key_id: required("LEDGER_KEY_ID").ok(),
            erasure_cancel_hours: match required("ERASURE_CANCEL_HOURS") {
                Ok(v) => v
                    .parse()
                    .ok()
                    .filter(|h| usecases::dsar::erasure_window::cancel_window(*h).is_some())
                    .ok_or(ConfigError::Invalid("ERASURE_CANCEL_HOURS"))?,
                Err(_) => usecases::dsar::erasure_window::DEFAULT_CANCEL_HOURS,
            },
            crm_webhook_url: match required("CRM_WEBHOOK_URL") {
                Ok(u) if u.starts_with("https://") || u.starts_with("http://127.0.0.1:") => Some(u),
                Ok(_) => return Err(ConfigError::Invalid("CRM_WEBHOOK_URL")),
                Err(_) => None,
            },
            crm_webhook_secret_arn: required("CRM_WEBHOOK_SECRET_ARN").ok(),
        })
    }
}

/// A positive count from the environment, or `default` when unset.
fn positive<E>(
    required: &impl Fn(&'static str) -> Result<String, E>,
    name: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    match required(name) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ConfigError::Invalid(name)),
        Err(_) => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_all_settings() {
        let c = Config::from_map(&vars(&[
            ("TABLE_NAME", "t"),
            ("KEY_TABLE_NAME", "kt"),
            ("DATA_KEY_ID", "k"),
            ("BLIND_INDEX_KEY_ID", "h"),
            (
                "ALLOWED_ORIGINS",
                "https://polly.example, https://www.polly.example",
            ),
        ]))
        .unwrap();
        assert_eq!(c.table_name, "t");
        assert_eq!(
            c.allowed_origins,
            ["https://polly.example", "https://www.polly.example"]
        );
        assert_eq!(c.privacy_policy_versions, [CURRENT_PRIVACY_POLICY_VERSION]);
        assert!(!c.sweep_allow_clock_override, "off unless set");
    }

    #[test]
    fn the_sweep_clock_override_is_read_as_a_flag() {
        let base = [
            ("TABLE_NAME", "t"),
            ("KEY_TABLE_NAME", "kt"),
            ("DATA_KEY_ID", "k"),
            ("BLIND_INDEX_KEY_ID", "h"),
        ];
        let with = |v: &'static str| {
            let mut pairs = base.to_vec();
            pairs.push((SWEEP_ALLOW_CLOCK_OVERRIDE, v));
            Config::from_map(&vars(&pairs))
        };
        assert!(with("true").unwrap().sweep_allow_clock_override);
        assert!(!with("false").unwrap().sweep_allow_clock_override);
        assert_eq!(
            with("yes-please"),
            Err(ConfigError::Invalid(SWEEP_ALLOW_CLOCK_OVERRIDE))
        );
    }

    #[test]
    fn names_the_missing_variable() {
        let err = Config::from_map(&vars(&[
            ("TABLE_NAME", "t"),
            ("KEY_TABLE_NAME", "kt"),
            ("DATA_KEY_ID", "k"),
        ]));
        assert_eq!(err, Err(ConfigError::Missing("BLIND_INDEX_KEY_ID")));
    }

    /// R1.6: a `*` in `ALLOWED_ORIGINS` is refused at start-up, so CORS stays limited to named
    /// origins.
    #[test]
    fn refuses_a_wildcard_origin() {
        let err = Config::from_map(&vars(&[
            ("TABLE_NAME", "t"),
            ("KEY_TABLE_NAME", "kt"),
            ("DATA_KEY_ID", "k"),
            ("BLIND_INDEX_KEY_ID", "h"),
            ("ALLOWED_ORIGINS", "*"),
        ]));
        assert_eq!(err, Err(ConfigError::Invalid("ALLOWED_ORIGINS")));
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("TABLE_NAME", "t"),
            ("KEY_TABLE_NAME", "kt"),
            ("DATA_KEY_ID", "k"),
            ("BLIND_INDEX_KEY_ID", "h"),
        ]
    }

    #[test]
    fn staff_and_webhook_allow_lists_default_to_empty() {
        let c = Config::from_map(&vars(&base())).unwrap();
        assert!(
            c.staff_principal_arns.is_empty(),
            "nobody is staff by default"
        );
        assert!(c.webhook_source_cidrs.is_empty());
        let mut v = base();
        v.push(("STAFF_PRINCIPAL_ARNS", ""));
        v.push(("WEBHOOK_SOURCE_CIDRS", " "));
        let c = Config::from_map(&vars(&v)).unwrap();
        assert!(c.staff_principal_arns.is_empty() && c.webhook_source_cidrs.is_empty());
    }

    #[test]
    fn reads_the_allow_lists() {
        let mut v = base();
        v.push((
            "STAFF_PRINCIPAL_ARNS",
            "arn:aws:iam::123456789012:role/dpo, arn:aws:iam::123456789012:user/anna",
        ));
        v.push((
            "WEBHOOK_SOURCE_CIDRS",
            "100.20.5.228/32, 2001:db8::/32,198.51.100.7",
        ));
        let c = Config::from_map(&vars(&v)).unwrap();
        assert_eq!(c.staff_principal_arns.len(), 2);
        assert_eq!(c.webhook_source_cidrs.len(), 3);
    }

    #[test]
    fn refuses_a_malformed_cidr() {
        for bad in [
            "100.20.5.0/33",
            "10.0.0.1/8",
            "example.org",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            let mut v = base();
            v.push(("WEBHOOK_SOURCE_CIDRS", bad));
            assert_eq!(
                Config::from_map(&vars(&v)),
                Err(ConfigError::Invalid("WEBHOOK_SOURCE_CIDRS")),
                "{bad}"
            );
        }
    }

    #[test]
    fn cidr_membership() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let host = Cidr::parse("100.20.5.228").unwrap();
        assert!(host.contains(ip("100.20.5.228")));
        assert!(!host.contains(ip("100.20.5.229")));
        assert!(host.contains(ip("::ffff:100.20.5.228")), "IPv4-mapped");
        let net = Cidr::parse("198.51.100.0/24").unwrap();
        assert!(net.contains(ip("198.51.100.255")));
        assert!(!net.contains(ip("198.51.101.0")));
        assert!(!net.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("198.51.100.1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("203.0.113.7")));
    }

    /// R7.2, R7.3: the calling-hours state defaults to NW and an unknown code stops the
    /// start; the ring time defaults to 30 s and is clamped to the provider's bounds.
    #[test]
    fn calling_state_and_ring_time() {
        let base = [
            ("TABLE_NAME", "t"),
            ("KEY_TABLE_NAME", "kt"),
            ("DATA_KEY_ID", "k"),
            ("BLIND_INDEX_KEY_ID", "h"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            Config::from_map(&vars(&pairs))
        };
        let c = with(&[]).unwrap();
        assert_eq!(c.calling_state, domain::calling_hours::Bundesland::NW);
        assert_eq!(c.ring_duration_ms, 30_000);
        let c = with(&[("CALLING_STATE", "by"), ("RING_DURATION_MS", "999999")]).unwrap();
        assert_eq!(c.calling_state, domain::calling_hours::Bundesland::BY);
        assert_eq!(c.ring_duration_ms, 300_000);
        assert_eq!(
            with(&[("RING_DURATION_MS", "10")])
                .unwrap()
                .ring_duration_ms,
            5_000
        );
        assert!(matches!(
            with(&[("CALLING_STATE", "XX")]),
            Err(ConfigError::Invalid("CALLING_STATE"))
        ));
        assert!(matches!(
            with(&[("RING_DURATION_MS", "soon")]),
            Err(ConfigError::Invalid("RING_DURATION_MS"))
        ));
    }

    /// The erasure cancel window defaults to 48 hours; 0 (no window) to 168 are accepted,
    /// anything longer or not a number stops the start.
    #[test]
    fn erasure_cancel_hours_are_validated_at_start() {
        let with = |hours: Option<&str>| {
            let mut pairs = vec![
                ("TABLE_NAME", "t"),
                ("KEY_TABLE_NAME", "kt"),
                ("DATA_KEY_ID", "k"),
                ("BLIND_INDEX_KEY_ID", "h"),
            ];
            if let Some(h) = hours {
                pairs.push(("ERASURE_CANCEL_HOURS", h));
            }
            Config::from_map(&vars(&pairs))
        };
        assert_eq!(with(None).unwrap().erasure_cancel_hours, 48);
        assert_eq!(with(Some("0")).unwrap().erasure_cancel_hours, 0);
        assert_eq!(with(Some("168")).unwrap().erasure_cancel_hours, 168);
        for bad in ["169", "-1", "48h", "1e3"] {
            assert_eq!(
                with(Some(bad)),
                Err(ConfigError::Invalid("ERASURE_CANCEL_HOURS")),
                "{bad}"
            );
        }
    }
}
