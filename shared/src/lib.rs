//! Shared library of the Polly backend: validated domain types, the retention and
//! processing registry, ports (small traits for the outside world) and their AWS adapters,
//! configuration, telemetry and HTTP helpers.
//!
//! The one rule every module here keeps: personal data never reaches a log line, span
//! field, metric, error message, object key or index key. Types that hold personal data
//! have a hand-written `Debug` that prints `<redacted>` and no `Display`.

pub mod config;
pub mod dsar;
pub mod http;
pub mod sweep;
pub mod telemetry;

pub use domain::{clock, crypto, Clock, FixedClock, SystemClock};
// The domain crate under its old path, so `shared::domain::...` keeps naming the same types.
pub extern crate domain;
pub use ::aws::contracts;
pub use config::Config;
// The AWS floor under its old paths.
pub use ::aws as adapters;
pub use ::aws::sdk as aws;
pub use usecases::telephony::retell;
// The telephony use cases under their old paths.
pub use usecases::telephony::{ingest, outbound, webhook as calls};
pub use usecases::{ledger, outbox, ports, signup as leads};
