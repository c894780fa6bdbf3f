//! Data-subject requests (R4). The use cases live in `usecases::dsar` (intake and
//! verification, the export, the other rights, the staff actions); they are re-exported
//! here under their old paths. What stays here: the streaming ZIP writer (`zip`) and the
//! implementation of the use cases' archive port over it. The request types, deadlines
//! and texts live in `domain::dsar`.
//!
//! A request never carries personal data in a key or index attribute: it is addressed by
//! an opaque id, the identifiers it names are stored as blind indexes plus a sealed copy
//! that goes away when the request is closed (R3: request records keep no content).

pub mod zip;

pub use domain::dsar::*;
pub use usecases::dsar::{intake as service, rights, staff, worker};

/// The export use case under its old path. `Exporter` names the dsar worker (export and
/// the other rights side by side), as the old exporter did both.
pub mod export {
    pub use usecases::dsar::export::*;
    pub use usecases::dsar::worker::RequestWorker as Exporter;
}

use chrono::{DateTime, Utc};

use usecases::dsar::ports::{Archive, ArchiveError, ArchiveFormat};

/// ZIP archives ([`zip::ZipWriter`]) for the export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZipArchives;

struct ZipArchive(zip::ZipWriter<Vec<u8>>);

fn archive_error(e: zip::ZipError) -> ArchiveError {
    tracing::warn!(error = %e, "archive write failed");
    ArchiveError("zip")
}

impl Archive for ZipArchive {
    fn start_file(&mut self, name: &str, modified: DateTime<Utc>) -> Result<(), ArchiveError> {
        self.0.start_file(name, modified).map_err(archive_error)
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        self.0.write_all(data).map_err(archive_error)
    }
    fn buffered(&mut self) -> usize {
        self.0.get_mut().len()
    }
    fn take(&mut self, capacity: usize) -> Vec<u8> {
        std::mem::replace(&mut *self.0.get_mut(), Vec::with_capacity(capacity))
    }
    fn finish(self: Box<Self>) -> Result<Vec<u8>, ArchiveError> {
        self.0.finish().map_err(archive_error)
    }
}

impl ArchiveFormat for ZipArchives {
    fn start(&self, capacity: usize) -> Box<dyn Archive> {
        Box::new(ZipArchive(zip::ZipWriter::new(Vec::with_capacity(
            capacity,
        ))))
    }
}
