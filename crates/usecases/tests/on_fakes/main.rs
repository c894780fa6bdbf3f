//! The use cases on in-memory fakes (crate `testkit`): no emulator, no network. One module
//! per capability; the moto-backed tests in `tests/` keep covering the AWS floor and the
//! end-to-end flows.

mod analytics_job;
mod calling_hours;
mod crm;
mod digest;
mod dnc;
mod dsar;
mod dsar_requests;
mod fakes;
mod figures;
mod ledger;
mod retention;
mod retention_batch;
mod signup;
mod telephony;
