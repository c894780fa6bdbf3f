//! A fault switch every fake carries: set it and the fake's calls fail with the given
//! retry class until healed, as an AWS service under throttling or outage would.

use std::sync::{Arc, Mutex};

use usecases::ports::{Retry, StoreError};

#[derive(Clone, Default)]
pub struct FaultSwitch(Arc<Mutex<Option<Retry>>>);

impl FaultSwitch {
    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        *self.0.lock().unwrap() = Some(retry);
    }

    pub fn heal(&self) {
        *self.0.lock().unwrap() = None;
    }

    /// The fault set, if any.
    pub fn current(&self) -> Option<Retry> {
        *self.0.lock().unwrap()
    }

    /// A store error for `operation` while the switch is set.
    pub fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        match self.current() {
            Some(retry) => Err(StoreError {
                operation,
                retry,
                source: None,
            }),
            None => Ok(()),
        }
    }
}
