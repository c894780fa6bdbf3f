//! Retention (R3): the daily sweep over the expiry index, and what each class's disposal
//! does (`sweep`), over the ports in `ports`.

pub mod ports;
pub mod sweep;

pub use sweep::{ClassCount, SweepReport, SweepRequest, Sweeper, BATCH_WRITE_LIMIT};
