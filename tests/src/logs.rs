//! Captures the JSON logs a test produces, through the same subscriber the functions use,
//! so tests can scan them for personal data. `TEST_LOG=1` also prints them.
//!
//! One global subscriber per test binary writes into the buffer of the capture active on
//! the writing thread (tests run their runtime on their own thread). A global subscriber,
//! unlike per-thread defaults, cannot lose events to tracing's per-callsite interest
//! cache when other tests run in parallel without a capture.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

thread_local! {
    static ACTIVE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Writes to the capture active on the current thread, if any.
#[derive(Clone, Copy, Default)]
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        ACTIVE.with(|active| {
            if let Some(buffer) = active.borrow().as_ref() {
                if std::env::var_os("TEST_LOG").is_some() {
                    let _ = std::io::stdout().write_all(buf);
                }
                buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

/// Ends the capture when dropped.
pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        ACTIVE.with(|active| *active.borrow_mut() = None);
    }
}

impl LogCapture {
    /// Starts capturing what this thread logs (use a current-thread runtime:
    /// `#[tokio::test]`). Our crates log at debug level; the library caps stay as in
    /// production.
    pub fn start() -> (Self, CaptureGuard) {
        INSTALL.call_once(|| {
            let subscriber = shared::telemetry::subscriber(|| ThreadWriter, "debug");
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let capture = Self::default();
        ACTIVE.with(|active| *active.borrow_mut() = Some(Arc::clone(&capture.0)));
        (capture, CaptureGuard)
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
        for (i, secret) in secrets.iter().enumerate().filter(|(_, s)| s.len() >= 4) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
            let json = serde_json::to_string(secret).unwrap_or_default();
            let json = json.trim_matches('"');
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "logs contain personal value #{i} of the list"
            );
            assert!(
                !text.contains(b64.trim_end_matches('=')),
                "logs contain personal value #{i} of the list (base64)"
            );
            assert!(
                !text.contains(json),
                "logs contain personal value #{i} of the list (JSON-escaped)"
            );
        }
    }
}
