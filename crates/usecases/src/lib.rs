//! The use cases of the Polly backend, one module per capability, each over ports (the
//! traits in `ports`) for everything outside: stores, objects, mail, the telephony
//! provider, the key service, the clock. No cloud SDK here (a test keeps it so): the AWS
//! implementations of the ports live in the `aws` crate, in-memory ones in `testkit`.
//!
//! The one rule every module here keeps: personal data never reaches a log line, span
//! field, metric, error message, object key or index key.

pub mod crm;
pub mod dnc;
pub mod dsar;
pub mod ledger;
pub mod outbox;
pub mod ports;
pub mod retention;
pub mod sales;
pub mod signup;
pub mod telemetry;
pub mod telephony;
