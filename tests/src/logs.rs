//! Captures the JSON logs a test produces, through the same subscriber the functions use,
//! so tests can scan them for personal data. `TEST_LOG=1` also prints them.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Starts capturing on this thread (use a current-thread runtime: `#[tokio::test]`).
    /// Captures at debug level for our crates; the library caps stay as in production.
    pub fn start() -> (Self, DefaultGuard) {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = shared::telemetry::subscriber(move || writer.clone(), "debug");
        (capture, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Asserts that none of `secrets` appears in the logs, also not in a few common
    /// encodings (lower case, base64, JSON-escaped).
    pub fn assert_free_of(&self, secrets: &[&str]) {
        use base64::Engine;
        let text = self.text();
        assert!(
            !text.is_empty(),
            "no logs were captured: the scan would prove nothing"
        );
        let lower = text.to_lowercase();
        for secret in secrets.iter().filter(|s| s.len() >= 4) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
            let json = serde_json::to_string(secret).unwrap_or_default();
            let json = json.trim_matches('"');
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "logs contain a personal value"
            );
            assert!(
                !text.contains(b64.trim_end_matches('=')),
                "logs contain a personal value (base64)"
            );
            assert!(
                !text.contains(json),
                "logs contain a personal value (JSON-escaped)"
            );
        }
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stdout().write_all(buf);
        }
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
