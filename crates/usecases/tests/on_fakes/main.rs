//! The use cases on in-memory fakes (crate `testkit`): no emulator, no network. One module
//! per capability; the moto-backed tests in `tests/` keep covering the AWS floor and the
//! end-to-end flows.

mod analytics_job;
mod calling_hours;
mod dnc;
mod dsar;
mod fakes;
mod ledger;
mod retention;
mod signup;
mod telephony;
