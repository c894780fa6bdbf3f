//! JSON logs that cannot carry personal data.
//!
//! What keeps personal data out: the domain types that hold it print `<redacted>` in
//! `Debug` and have no `Display`; errors carry fixed messages; and the libraries that
//! would log request or response bodies at debug/trace level (the AWS SDK, hyper, the
//! Lambda runtime, which logs raw events at trace) are capped here whatever `RUST_LOG`
//! asks for. Set `RUST_LOG` for our own crates' level; `TEST_LOG=1` shows logs in tests.

use tracing::{Level, Metadata};
use tracing_subscriber::{
    filter::{filter_fn, EnvFilter},
    fmt::MakeWriter,
    layer::SubscriberExt,
    Layer, Registry,
};

/// Library targets that may log payloads below the level given.
const CAPPED_TARGETS: &[(&str, Level)] = &[
    ("aws_", Level::WARN),
    ("hyper", Level::WARN),
    ("h2", Level::WARN),
    ("rustls", Level::WARN),
    ("reqwest", Level::WARN),
    ("lambda_runtime", Level::INFO),
    ("lambda_http", Level::INFO),
];

fn within_caps(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    CAPPED_TARGETS
        .iter()
        .find(|(prefix, _)| target.starts_with(prefix))
        .is_none_or(|(_, cap)| meta.level() <= cap)
}

/// A subscriber writing JSON lines to `writer`, with the payload caps applied.
pub fn subscriber<W>(writer: W, default_filter: &str) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let env_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_writer(writer)
        .with_filter(filter_fn(within_caps))
        .with_filter(env_filter);
    Registry::default().with(layer)
}

pub use usecases::telemetry::metric;

/// Installs the JSON subscriber on stdout (CloudWatch picks it up). Call once in `main`.
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout, "info"));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// R5.5: every log line is JSON, and the SDK's and runtime's payload logs are dropped even
    /// when `trace` is asked for, while our own debug lines and library warnings stay.
    #[test]
    fn library_payload_logs_are_dropped_even_when_trace_is_asked_for() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let sub = subscriber(move || writer.clone(), "trace");
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "aws_smithy_runtime::client", "payload-aws");
            tracing::trace!(target: "lambda_runtime::layers", "payload-runtime");
            tracing::warn!(target: "aws_config", "kept-warning");
            tracing::debug!(target: "signup", "kept-own-debug");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("payload-aws"), "{out}");
        assert!(!out.contains("payload-runtime"), "{out}");
        assert!(out.contains("kept-warning"), "{out}");
        assert!(out.contains("kept-own-debug"), "{out}");
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
        }
    }
}
