//! The dsar worker's use cases side by side: the export (access, portability) and the
//! other rights (erasure, restriction, objection, withdrawal, rectification). Two
//! independent services; this module only holds them together for the function that
//! receives the request records from the table's stream.

use std::sync::Arc;

use domain::RequestId;

use super::export::{ExportError, ExportOutcome, Exporter};
use super::rights::{Rights, RightsError, RightsOutcome};
use crate::signup::LeadService;

pub struct RequestWorker {
    pub exporter: Exporter,
    pub rights: Rights,
    /// The subjects' records, decrypted (the same service both use).
    pub leads: Arc<LeadService>,
}

impl RequestWorker {
    /// Builds the export of an open access or portability request, then closes it.
    pub async fn run(&self, id: &RequestId) -> Result<ExportOutcome, ExportError> {
        self.exporter.run(id).await
    }

    /// Carries out an open erasure, restriction, objection, withdrawal or rectification.
    pub async fn carry_out(&self, id: &RequestId) -> Result<RightsOutcome, RightsError> {
        self.rights.carry_out(id).await
    }
}
