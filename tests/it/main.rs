//! The integration tests, one binary: each module holds what used to be a test binary of
//! its own, so the AWS SDK and the functions are linked once. `cargo test -p polly-tests
//! --test it signup::` runs the sign-up tests.
//!
//! Tests run in parallel in this one process. Each provisions its own stack; the tests
//! that read the emulator's sent mail run on emulators of their own
//! (`harness::emulator`); log capture is per test thread (`harness::logs`). Nothing here
//! sets process environment variables.

mod calls_dnc;
mod common;
mod crm;

mod admin_cli;
mod agent_config;
mod agent_publish;
mod agent_tools;
mod analytics_export;
mod analytics_template;
mod browser;
mod calling_hours;
mod calling_hours_template;
mod drift;
mod dsar;
mod dsar_digest;
mod dsar_erasure_cancel;
mod dsar_identity;
mod dsar_rights;
mod dsar_staff;
mod dsar_staff_requests;
mod dsar_stats;
mod faults;
mod ledger;
mod ledger_template;
mod localstack;
mod openapi;
mod ops_metrics;
mod privacy_center;
mod recordings;
mod recordings_trim;
mod retention;
mod retention_requests;
mod retention_scale;
mod sales;
mod schemathesis;
mod signup;
mod signup_logs;
mod signup_pages;
mod simulator;
mod telephony_logs;
mod telephony_recordings;
mod telephony_webhook;
mod telephony_webhook_guards;
mod telephony_worker;
mod template_alarms;
mod template_facts;
mod template_policies;
