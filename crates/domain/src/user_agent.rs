/// User-Agent strings longer than this are not parsed: no browser needs more, and the
/// parser's work should not grow with what an attacker sends.
const MAX_USER_AGENT_BYTES: usize = 512;

/// The User-Agent reduced to what the privacy policy names (§3.1 technical data): device
/// category, operating system and browser, each with its version. The raw header is never
/// stored.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientSoftware {
    pub device: String,
    pub os: String,
    pub os_version: String,
    pub browser: String,
    pub browser_version: String,
}

impl ClientSoftware {
    /// Reduces a User-Agent header; `None` when it is absent, oversized or unrecognisable.
    pub fn from_user_agent(user_agent: &str) -> Option<Self> {
        if user_agent.is_empty() || user_agent.len() > MAX_USER_AGENT_BYTES {
            return None;
        }
        let parsed = woothee::parser::Parser::new().parse(user_agent)?;
        let clean = |s: &str| -> String {
            // The parser copies version strings from the header: keep only what a version
            // looks like, so nothing else of the header survives the reduction.
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-'))
                .take(32)
                .collect()
        };
        Some(Self {
            device: clean(parsed.category),
            os: clean(parsed.os),
            os_version: clean(&parsed.os_version),
            browser: clean(parsed.name),
            browser_version: clean(parsed.version),
        })
    }
}

impl std::fmt::Debug for ClientSoftware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSoftware(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R1.3: a desktop User-Agent is reduced to device, OS, browser family and version.
    #[test]
    fn reduces_a_desktop_firefox() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let c = ClientSoftware::from_user_agent(ua).unwrap();
        assert_eq!(c.device, "pc");
        assert_eq!(c.os, "Windows 10");
        assert_eq!(c.browser, "Firefox");
        assert_eq!(c.browser_version, "128.0");
    }

    /// R1.3: a mobile User-Agent is reduced to device, OS and browser family.
    #[test]
    fn reduces_a_mobile_safari() {
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
        let c = ClientSoftware::from_user_agent(ua).unwrap();
        assert_eq!(c.device, "smartphone");
        assert_eq!(c.os, "iPhone");
        assert_eq!(c.browser, "Safari");
    }

    #[test]
    fn ignores_oversized_or_empty_headers() {
        assert!(ClientSoftware::from_user_agent("").is_none());
        let huge = format!("Mozilla/5.0 {}", "x".repeat(600));
        assert!(ClientSoftware::from_user_agent(&huge).is_none());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = ClientSoftware::from_user_agent(&s);
        }
    }
}
