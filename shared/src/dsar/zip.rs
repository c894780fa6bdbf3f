//! The streaming ZIP writer for export packages (R4.4): the `zip` crate's stream writer
//! behind the checks an export needs.
//!
//! The export worker streams an archive straight into an S3 multipart upload: it writes
//! entries into a [`ZipWriter`] whose sink is a `Vec<u8>` and uploads and empties that
//! buffer as a part whenever it has grown past the part size. Recordings run to hundreds of
//! MB and arrive chunk by chunk from S3, so the writer can neither seek back into bytes
//! that are already uploaded nor hold an entry in memory. That decides the format, which
//! [`zip::ZipWriter::new_stream`] writes:
//!
//! - **Stored** entries (method 0, no compression): recordings are already compressed and
//!   the JSON files are small, so compressing buys little and would cost CPU time in the
//!   Lambda (and the crate's compression features would add to every binary).
//! - **Data descriptors** (general-purpose flag bit 3): the local header is written before
//!   the data with CRC and sizes zero, and the real values follow the data in a descriptor,
//!   so nothing has to be patched afterwards. Non-ASCII names carry flag bit 11 (UTF-8).
//! - The **central directory** at the end repeats CRC, sizes and offsets; every desktop
//!   tool (Windows Explorer, macOS Archive Utility, `unzip`, 7-Zip, Python's `zipfile`)
//!   reads from it. Only pure streaming readers (Java's `ZipInputStream`) cannot find the
//!   end of a stored entry with a descriptor; subjects do not use those.
//!
//! What stays ours, because the crate does not do it:
//!
//! - **Entry names** are checked to extract inside the target folder on every common
//!   system ([`ZipError::InvalidName`]); the crate writes any name it is given.
//! - **File/folder clashes** (`a` and `a/b`) are refused ([`ZipError::DuplicateName`]); the
//!   crate refuses only exact duplicates.
//! - **Limits are checked before writing.** Archives are classic ZIP, without ZIP64: the
//!   export of one subject (a few JSON files and their recordings) is far below 4 GiB. The
//!   crate can write ZIP64, but on a stream it must be told per entry, before the entry's
//!   size is known (`large_file(true)`, which puts a ZIP64 field into every such header);
//!   without it, it notices an entry past 4 GiB only after the bytes went to the sink, and
//!   cannot take them back. So the writer refuses ([`ZipError::TooLarge`],
//!   [`ZipError::TooManyEntries`]) before writing anything that would not fit the 32-bit
//!   and 16-bit fields, one below the all-ones values that mean "see ZIP64".
//! - **Draining the sink between writes.** The crate's writer owns its sink and offers no
//!   access to it until [`finish`](ZipWriter::finish); the sink is shared with this
//!   wrapper ([`ZipWriter::get_mut`]) so the caller can upload and empty it as it goes.
//! - **DOS times clamped** to 1980–2107 (the crate refuses times outside that range).
//!
//! Memory stays bounded: per finished entry the crate keeps its metadata and this wrapper
//! the name, never entry data. What the crate writes goes straight to the sink.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::ops::DerefMut;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Datelike, Timelike, Utc};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::CompressionMethod;

/// Largest value written to a 32-bit size or offset field (`0xFFFF_FFFF` means "see ZIP64").
pub const MAX_SIZE: u64 = 0xFFFF_FFFE;
/// Most entries in one archive (a count of `0xFFFF` means "see ZIP64").
pub const MAX_ENTRIES: usize = 0xFFFE;
/// Longest entry name in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// A local header without its name and extra field (none is written).
const LOCAL_HEADER_LEN: u64 = 30;
/// A classic data descriptor, with its signature.
const DATA_DESCRIPTOR_LEN: u64 = 16;

/// Why an archive could not be written. Messages never contain entry names.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// The sink failed; the archive is incomplete and the writer unusable.
    #[error("writing to the archive sink failed")]
    Io(#[from] std::io::Error),
    /// The `zip` crate refused an operation the checks here let through; the writer is
    /// unusable. Its message is left out: it may quote an entry name.
    #[error("the zip writer failed")]
    Writer,
    /// The name is empty, too long, absolute, has `.`/`..`/empty segments, a backslash, a
    /// colon or a control character.
    #[error("the entry name is not a safe relative path")]
    InvalidName,
    /// The name is already in the archive, or one of the two names would need to be a
    /// folder while the other is a file there (`a` and `a/b`).
    #[error("the entry name is already used in the archive")]
    DuplicateName,
    /// An entry or an offset would not fit a 32-bit field (the archive would need ZIP64).
    #[error("the archive would exceed the 4 GiB limit of classic ZIP")]
    TooLarge,
    /// More than [`MAX_ENTRIES`] entries.
    #[error("the archive would exceed the entry limit of classic ZIP")]
    TooManyEntries,
    /// Data was written before any entry was started.
    #[error("no entry has been started")]
    NoEntry,
    /// An earlier write to the sink failed, so what it holds is unknown.
    #[error("an earlier write to the archive sink failed")]
    Poisoned,
}

impl From<zip::result::ZipError> for ZipError {
    fn from(e: zip::result::ZipError) -> Self {
        match e {
            zip::result::ZipError::Io(e) => Self::Io(e),
            _ => Self::Writer,
        }
    }
}

/// Writes a ZIP archive front to back into `W`, never seeking and never holding entry data.
///
/// Write to the sink only through the writer: [`ZipWriter::get_mut`] is there to drain
/// it, and bytes added behind the writer's back would shift every offset. After an
/// [`ZipError::Io`] or [`ZipError::Writer`] error the writer refuses further work
/// ([`ZipError::Poisoned`]); validation errors (`InvalidName`, `DuplicateName`,
/// `TooLarge`, `TooManyEntries`, `NoEntry`) write nothing and leave the writer usable.
pub struct ZipWriter<W: Write> {
    /// Declared before `inner` so it is dropped first: a writer dropped unfinished (an
    /// export that failed half-way) must not have the crate write a central directory into
    /// a sink that may be uploaded.
    _discard_on_drop: DiscardOnDrop<W>,
    inner: zip::ZipWriter<StreamWriter<SharedSink<W>>>,
    /// The same sink, for the caller to drain and for the byte count.
    sink: Arc<Mutex<Sink<W>>>,
    /// Whether an entry is open.
    open: bool,
    /// Every name started so far, including the open entry's.
    names: BTreeSet<String>,
    /// Set when the crate failed: what it has written is unknown.
    poisoned: bool,
    /// Upper bound for sizes and offsets; [`MAX_SIZE`] except in tests of the limit.
    limit: u64,
}

/// Makes the sink swallow what the crate's writer writes when it is dropped unfinished.
struct DiscardOnDrop<W>(Arc<Mutex<Sink<W>>>);

impl<W> Drop for DiscardOnDrop<W> {
    fn drop(&mut self) {
        lock(&self.0).discard = true;
    }
}

/// The sink and how many bytes it has taken.
struct Sink<W> {
    inner: W,
    written: u64,
    /// A write failed: part of it may have reached `inner`.
    failed: bool,
    /// Dropped without finishing: take nothing more.
    discard: bool,
}

/// The crate's handle on the sink.
struct SharedSink<W>(Arc<Mutex<Sink<W>>>);

impl<W: Write> Write for SharedSink<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut sink = lock(&self.0);
        if sink.discard {
            return Ok(buf.len());
        }
        if sink.failed {
            return Err(std::io::Error::other("an earlier write failed"));
        }
        match sink.inner.write(buf) {
            Ok(n) => {
                sink.written += n as u64;
                Ok(n)
            }
            Err(e) => {
                sink.failed = true;
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut sink = lock(&self.0);
        if sink.discard {
            return Ok(());
        }
        sink.inner.flush()
    }
}

/// The sink behind its lock. A panic while it was held leaves nothing half-done in the
/// `Sink` itself (the byte count follows the inner writer's answer), so the lock is taken
/// over rather than propagating the panic.
fn lock<W>(sink: &Mutex<Sink<W>>) -> MutexGuard<'_, Sink<W>> {
    sink.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The caller's view of the sink: the writer's `W` while the lock is held.
pub struct SinkGuard<'a, W>(MutexGuard<'a, Sink<W>>);

impl<W> std::ops::Deref for SinkGuard<'_, W> {
    type Target = W;
    fn deref(&self) -> &W {
        &self.0.inner
    }
}

impl<W> DerefMut for SinkGuard<'_, W> {
    fn deref_mut(&mut self) -> &mut W {
        &mut self.0.inner
    }
}

impl<W: Write> ZipWriter<W> {
    /// A writer into `inner`, which should start empty: offsets count from the first byte
    /// the writer writes.
    pub fn new(inner: W) -> Self {
        let sink = Arc::new(Mutex::new(Sink {
            inner,
            written: 0,
            failed: false,
            discard: false,
        }));
        Self {
            _discard_on_drop: DiscardOnDrop(Arc::clone(&sink)),
            inner: zip::ZipWriter::new_stream(SharedSink(Arc::clone(&sink))),
            sink,
            open: false,
            names: BTreeSet::new(),
            poisoned: false,
            limit: MAX_SIZE,
        }
    }

    /// Starts an entry (finishing the previous one) named `name`, a relative `/`-separated
    /// path such as `recordings/<uuid>.wav`, last modified at `modified` (stored as DOS
    /// date and time in UTC, clamped to 1980–2107).
    pub fn start_file(&mut self, name: &str, modified: DateTime<Utc>) -> Result<(), ZipError> {
        self.check()?;
        validate_name(name)?;
        if self.clashes(name) {
            return Err(ZipError::DuplicateName);
        }
        if self.names.len() >= MAX_ENTRIES {
            return Err(ZipError::TooManyEntries);
        }
        // Check the new header and its (eventual) descriptor fit before writing anything,
        // so a refusal leaves the writer as it was.
        let previous_descriptor = if self.open { DATA_DESCRIPTOR_LEN } else { 0 };
        let header_offset = self.bytes_written() + previous_descriptor;
        let header_len = LOCAL_HEADER_LEN + name.len() as u64;
        if header_offset + header_len + DATA_DESCRIPTOR_LEN > self.limit {
            return Err(ZipError::TooLarge);
        }

        let time = DosTime::from_utc(modified);
        let time =
            zip::DateTime::try_from_msdos(time.date, time.time).map_err(|_| ZipError::Writer)?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(time)
            .large_file(false);
        self.names.insert(name.to_owned());
        self.open = true;
        let result = self.inner.start_file(name, options);
        self.poison_on_error(result)
    }

    /// Appends `data` to the current entry.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), ZipError> {
        self.check()?;
        if !self.open {
            return Err(ZipError::NoEntry);
        }
        // The entry's size is below the archive offset, so this bounds both; the
        // descriptor is counted so that the central directory's offset fits as well.
        if self.bytes_written() + data.len() as u64 + DATA_DESCRIPTOR_LEN > self.limit {
            return Err(ZipError::TooLarge);
        }
        let result = self.inner.write_all(data);
        self.poison_on_error(result)
    }

    /// A convenience for small entries: [`start_file`](Self::start_file) then
    /// [`write_all`](Self::write_all).
    pub fn add_file(
        &mut self,
        name: &str,
        modified: DateTime<Utc>,
        data: &[u8],
    ) -> Result<(), ZipError> {
        self.start_file(name, modified)?;
        self.write_all(data)
    }

    /// The sink, so the caller can drain it between writes. Do not write to it, and let
    /// the guard go before the next call on the writer.
    pub fn get_mut(&mut self) -> SinkGuard<'_, W> {
        SinkGuard(lock(&self.sink))
    }

    /// Bytes written to the sink so far: the current archive offset.
    pub fn bytes_written(&self) -> u64 {
        lock(&self.sink).written
    }

    /// Finishes the last entry, writes the central directory and the end record, flushes
    /// and returns the sink.
    pub fn finish(self) -> Result<W, ZipError> {
        self.check()?;
        let Self {
            _discard_on_drop,
            inner,
            sink,
            ..
        } = self;
        // The stream wrapper the crate returns and the drop guard hold the other handles
        // on the sink; once they are gone, this is the only one.
        drop(inner.finish()?);
        drop(_discard_on_drop);
        let sink = Arc::try_unwrap(sink).map_err(|_| ZipError::Writer)?;
        let sink = sink.into_inner().unwrap_or_else(PoisonError::into_inner);
        if sink.failed {
            return Err(ZipError::Poisoned);
        }
        Ok(sink.inner)
    }

    fn check(&self) -> Result<(), ZipError> {
        if self.poisoned || lock(&self.sink).failed {
            Err(ZipError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison_on_error<E: Into<ZipError>>(
        &mut self,
        result: Result<(), E>,
    ) -> Result<(), ZipError> {
        result.map_err(|e| {
            self.poisoned = true;
            e.into()
        })
    }

    /// Whether `name` is taken, or would make a file of a folder another entry needs (or
    /// the other way round); extracting such an archive fails.
    fn clashes(&self, name: &str) -> bool {
        if self.names.contains(name) {
            return true;
        }
        let parent_is_file = name
            .match_indices('/')
            .any(|(i, _)| self.names.contains(&name[..i]));
        let folder = format!("{name}/");
        let is_a_folder = self
            .names
            .range::<str, _>((
                std::ops::Bound::Included(folder.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|next| next.starts_with(&folder));
        parent_is_file || is_a_folder
    }

    /// A writer refusing sizes and offsets above `limit`, to test the 4 GiB checks without
    /// writing 4 GiB.
    #[cfg(test)]
    fn with_limit(inner: W, limit: u64) -> Self {
        Self {
            limit,
            ..Self::new(inner)
        }
    }
}

/// Entry names stay out of `Debug`: they may carry identifiers.
impl<W: Write> fmt::Debug for ZipWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipWriter")
            .field("entries", &self.names.len())
            .field("entry_open", &self.open)
            .field("bytes_written", &self.bytes_written())
            .field("poisoned", &self.check().is_err())
            .finish_non_exhaustive()
    }
}

/// Accepts only names that extract inside the target folder on every common system.
fn validate_name(name: &str) -> Result<(), ZipError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ZipError::InvalidName);
    }
    // A backslash separates and a colon names a drive or stream on Windows.
    if name
        .chars()
        .any(|c| c.is_control() || c == '\\' || c == ':')
    {
        return Err(ZipError::InvalidName);
    }
    // Catches a leading `/`, a trailing `/` (a folder entry), `//`, `.` and `..`.
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(ZipError::InvalidName);
    }
    Ok(())
}

/// MS-DOS date and time fields (two-second resolution, years 1980–2107).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DosTime {
    date: u16,
    time: u16,
}

impl DosTime {
    /// 1980-01-01 00:00:00, the earliest DOS time.
    const MIN: Self = Self {
        date: (1 << 5) | 1,
        time: 0,
    };
    /// 2107-12-31 23:59:58, the latest DOS time.
    const MAX: Self = Self {
        date: (127 << 9) | (12 << 5) | 31,
        time: (23 << 11) | (59 << 5) | 29,
    };

    /// The UTC wall-clock time (readers show DOS times as they are, without a zone).
    fn from_utc(t: DateTime<Utc>) -> Self {
        let year = t.year();
        if year < 1980 {
            return Self::MIN;
        }
        if year > 2107 {
            return Self::MAX;
        }
        // Each value is within its field's range, so the casts cannot truncate.
        let date = (((year - 1980) as u16) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
        let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() / 2) as u16;
        Self { date, time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::io::{Cursor, Read};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn read_back(bytes: Vec<u8>) -> ::zip::ZipArchive<Cursor<Vec<u8>>> {
        ::zip::ZipArchive::new(Cursor::new(bytes)).unwrap()
    }

    /// Name, contents and CRC of every entry, as the `zip` crate reads them; reading to
    /// the end also makes it check the CRC.
    fn entries(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let mut archive = read_back(bytes);
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).unwrap();
                let mut contents = Vec::new();
                file.read_to_end(&mut contents).unwrap();
                assert_eq!(file.crc32(), crc32fast::hash(&contents));
                assert_eq!(file.size(), contents.len() as u64);
                assert_eq!(file.compressed_size(), contents.len() as u64);
                assert_eq!(file.compression(), ::zip::CompressionMethod::Stored);
                (file.name().to_owned(), contents)
            })
            .collect()
    }

    const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
    const DATA_DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;
    const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
    const END_OF_CENTRAL_DIRECTORY_SIGNATURE: u32 = 0x0605_4b50;
    const END_OF_CENTRAL_DIRECTORY_LEN: usize = 22;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    /// A sink that takes `capacity` bytes, then fails.
    struct FailingSink {
        capacity: usize,
        taken: Vec<u8>,
    }

    impl Write for FailingSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let room = self.capacity - self.taken.len();
            if room == 0 {
                return Err(std::io::Error::other("sink full"));
            }
            let n = room.min(buf.len());
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn entries_read_back_with_names_contents_crc_and_sizes() {
        let modified = t("2027-03-15T10:20:31Z");
        let mut w = ZipWriter::new(Vec::new());
        w.add_file("LIESMICH.txt", modified, b"Hallo").unwrap();
        w.start_file("data/lead.json", modified).unwrap();
        w.write_all(b"{\"a\":").unwrap();
        w.write_all(b"1}").unwrap();
        w.add_file("recordings/3f1c.wav", modified, &[0, 255, 7, 0])
            .unwrap();
        let bytes = w.finish().unwrap();

        assert_eq!(
            entries(bytes.clone()),
            vec![
                ("LIESMICH.txt".to_owned(), b"Hallo".to_vec()),
                ("data/lead.json".to_owned(), b"{\"a\":1}".to_vec()),
                ("recordings/3f1c.wav".to_owned(), vec![0, 255, 7, 0]),
            ]
        );
        let mut archive = read_back(bytes);
        for i in 0..archive.len() {
            let file = archive.by_index(i).unwrap();
            assert!(file.is_file());
            assert_eq!(file.unix_mode(), Some(0o100_644));
            assert!(file.enclosed_name().is_some());
        }
    }

    #[test]
    fn headers_carry_the_streaming_flags_and_the_unix_origin() {
        let mut w = ZipWriter::new(Vec::new());
        w.add_file("a.json", t("2027-03-15T10:20:31Z"), b"{}")
            .unwrap();
        w.add_file("ä.json", t("2027-03-15T10:20:31Z"), b"[]")
            .unwrap();
        let bytes = w.finish().unwrap();

        // Local header: data-descriptor flag, stored, CRC and sizes left to the descriptor;
        // an ASCII name without the UTF-8 flag (the same bytes in CP437), no extra field.
        assert_eq!(u32_at(&bytes, 0), LOCAL_HEADER_SIGNATURE);
        assert_eq!(u16_at(&bytes, 6), 0x0008);
        assert_eq!(u16_at(&bytes, 8), 0);
        assert_eq!(&bytes[14..26], &[0; 12]);
        assert_eq!(u16_at(&bytes, 28), 0);
        // Data descriptor right after name and data.
        let descriptor = 30 + "a.json".len() + 2;
        assert_eq!(u32_at(&bytes, descriptor), DATA_DESCRIPTOR_SIGNATURE);
        assert_eq!(u32_at(&bytes, descriptor + 4), crc32fast::hash(b"{}"));
        assert_eq!(u32_at(&bytes, descriptor + 8), 2);
        assert_eq!(u32_at(&bytes, descriptor + 12), 2);
        // The second entry's header follows; its non-ASCII name carries the UTF-8 flag.
        let second = descriptor + 16;
        assert_eq!(u32_at(&bytes, second), LOCAL_HEADER_SIGNATURE);
        assert_eq!(u16_at(&bytes, second + 6), 0x0808);
        // Central directory: made on Unix, same flags, rw-r--r-- file at offset 0.
        let end = bytes.len() - END_OF_CENTRAL_DIRECTORY_LEN;
        assert_eq!(u32_at(&bytes, end), END_OF_CENTRAL_DIRECTORY_SIGNATURE);
        let central = u32_at(&bytes, end + 16) as usize;
        assert_eq!(central, second + 30 + "ä.json".len() + 2 + 16);
        assert_eq!(u32_at(&bytes, central), CENTRAL_HEADER_SIGNATURE);
        assert_eq!(u16_at(&bytes, central + 4) >> 8, 3);
        assert_eq!(u16_at(&bytes, central + 8), 0x0008);
        assert_eq!(u16_at(&bytes, central + 10), 0);
        assert_eq!(u32_at(&bytes, central + 38), 0o100_644 << 16);
        assert_eq!(u32_at(&bytes, central + 42), 0);
    }

    #[test]
    fn empty_entries_read_back_empty() {
        let mut w = ZipWriter::new(Vec::new());
        w.start_file("empty.json", Utc::now()).unwrap();
        w.add_file("also-empty.txt", Utc::now(), b"").unwrap();
        let bytes = w.finish().unwrap();

        assert_eq!(
            entries(bytes),
            vec![
                ("empty.json".to_owned(), Vec::new()),
                ("also-empty.txt".to_owned(), Vec::new()),
            ]
        );
    }

    #[test]
    fn archive_without_entries_is_a_valid_empty_archive() {
        let w = ZipWriter::new(Vec::new());
        let bytes = w.finish().unwrap();

        assert_eq!(bytes.len(), END_OF_CENTRAL_DIRECTORY_LEN);
        assert_eq!(read_back(bytes).len(), 0);
    }

    #[test]
    fn utf8_names_round_trip() {
        let mut w = ZipWriter::new(Vec::new());
        w.add_file("LIESMICH.txt", Utc::now(), b"1").unwrap();
        w.add_file("ä.txt", Utc::now(), b"2").unwrap();
        w.add_file("Aufzeichnungen/Gespräch über Öl – 1.wav", Utc::now(), b"3")
            .unwrap();
        let bytes = w.finish().unwrap();

        let names: Vec<String> = entries(bytes).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "LIESMICH.txt",
                "ä.txt",
                "Aufzeichnungen/Gespräch über Öl – 1.wav"
            ]
        );
    }

    /// R4.4: the package is built streaming: a 20 MiB entry written in 64 KiB chunks
    /// never leaves more than one chunk plus headers in the sink drained between writes,
    /// and the drained parts reassemble into an archive with the same bytes.
    #[test]
    fn large_entry_streams_through_a_drained_sink_in_bounded_memory() {
        const CHUNK: usize = 64 * 1024;
        const TOTAL: usize = 20 * 1024 * 1024;
        let name = "recordings/7d0c2a64-0d4e-4a37-9a57-3c1f3c0e8f11.wav";
        let chunk_at = |offset: usize| -> Vec<u8> {
            (offset..offset + CHUNK)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect()
        };
        let mut uploaded = Vec::new();
        let mut largest_buffer = 0;
        let mut w = ZipWriter::new(Vec::new());
        let mut drain = |w: &mut ZipWriter<Vec<u8>>, uploaded: &mut Vec<u8>| {
            largest_buffer = largest_buffer.max(w.get_mut().len());
            uploaded.append(&mut w.get_mut());
        };

        w.add_file("LIESMICH.txt", Utc::now(), b"Ihre Daten")
            .unwrap();
        drain(&mut w, &mut uploaded);
        w.start_file(name, Utc::now()).unwrap();
        drain(&mut w, &mut uploaded);
        for offset in (0..TOTAL).step_by(CHUNK) {
            w.write_all(&chunk_at(offset)).unwrap();
            // The whole chunk reached the sink at once: the writer holds none of it back.
            assert_eq!(w.get_mut().len(), CHUNK);
            drain(&mut w, &mut uploaded);
            assert_eq!(w.bytes_written(), uploaded.len() as u64);
        }
        w.add_file("data/lead.json", Utc::now(), b"{}").unwrap();
        drain(&mut w, &mut uploaded);
        let mut sink = w.finish().unwrap();
        largest_buffer = largest_buffer.max(sink.len());
        uploaded.append(&mut sink);

        // The sink never held more than one chunk plus headers, and the parts reassemble
        // into a readable archive.
        assert!(
            largest_buffer <= CHUNK + 30 + name.len() + 16,
            "{largest_buffer}"
        );
        let mut archive = read_back(uploaded);
        assert_eq!(archive.len(), 3);
        let mut file = archive.by_name(name).unwrap();
        assert_eq!(file.size(), TOTAL as u64);
        let mut contents = Vec::with_capacity(TOTAL);
        file.read_to_end(&mut contents).unwrap();
        for (i, chunk) in contents.chunks(CHUNK).enumerate() {
            assert!(chunk == chunk_at(i * CHUNK).as_slice(), "chunk {i} differs");
        }
    }

    #[test]
    fn modification_time_is_stored_as_dos_time_clamped_to_its_range() {
        let table = [
            ("2027-03-15T10:20:31Z", (2027, 3, 15, 10, 20, 30)),
            ("1980-01-01T00:00:00Z", (1980, 1, 1, 0, 0, 0)),
            ("1970-01-01T00:00:00Z", (1980, 1, 1, 0, 0, 0)),
            ("1979-12-31T23:59:59Z", (1980, 1, 1, 0, 0, 0)),
            ("2107-12-31T23:59:59Z", (2107, 12, 31, 23, 59, 58)),
            ("2200-06-01T12:00:00Z", (2107, 12, 31, 23, 59, 58)),
        ];
        for (modified, expected) in table {
            let mut w = ZipWriter::new(Vec::new());
            w.add_file("a.txt", t(modified), b"").unwrap();
            let mut archive = read_back(w.finish().unwrap());
            let stored = archive.by_index(0).unwrap().last_modified().unwrap();
            let got = (
                stored.year(),
                stored.month(),
                stored.day(),
                stored.hour(),
                stored.minute(),
                stored.second(),
            );
            assert_eq!(got, expected, "{modified}");
        }
    }

    #[test]
    fn unsafe_names_are_refused_and_nothing_is_written() {
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        let longest = "a".repeat(MAX_NAME_LEN);
        let refused = [
            "",
            "/etc/passwd",
            "../up.txt",
            "a/../../up.txt",
            "a/..",
            "./a.txt",
            "a//b.txt",
            "folder/",
            "a\\b.txt",
            "C:evil.txt",
            "a\0b",
            "a\nb.txt",
            "tab\t.txt",
            "del\u{7f}.txt",
            "c1\u{85}.txt",
            too_long.as_str(),
        ];
        let mut w = ZipWriter::new(Vec::new());
        for name in refused {
            assert!(
                matches!(w.start_file(name, Utc::now()), Err(ZipError::InvalidName)),
                "{name:?}"
            );
        }
        assert_eq!(w.bytes_written(), 0);
        assert!(w.get_mut().is_empty());

        w.add_file(&longest, Utc::now(), b"x").unwrap();
        w.add_file("..dots..txt", Utc::now(), b"y").unwrap();
        assert_eq!(entries(w.finish().unwrap()).len(), 2);
    }

    #[test]
    fn duplicate_names_and_file_folder_clashes_are_refused() {
        let mut w = ZipWriter::new(Vec::new());
        w.add_file("a.json", Utc::now(), b"1").unwrap();
        w.add_file("calls/1.json", Utc::now(), b"2").unwrap();
        let written = w.bytes_written();

        for name in ["a.json", "calls/1.json", "calls", "a.json/x.txt"] {
            assert!(
                matches!(w.start_file(name, Utc::now()), Err(ZipError::DuplicateName)),
                "{name}"
            );
        }
        assert_eq!(w.bytes_written(), written);
        // The open entry is untouched by the refusals.
        w.write_all(b"3").unwrap();
        w.add_file("A.json", Utc::now(), b"4").unwrap();
        w.add_file("calls.json", Utc::now(), b"5").unwrap();
        w.add_file("calls/2.json", Utc::now(), b"6").unwrap();

        let got = entries(w.finish().unwrap());
        assert_eq!(got[1], ("calls/1.json".to_owned(), b"23".to_vec()));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn writing_before_an_entry_is_started_is_refused() {
        let mut w = ZipWriter::new(Vec::new());
        assert!(matches!(w.write_all(b"x"), Err(ZipError::NoEntry)));
        assert!(matches!(w.write_all(b""), Err(ZipError::NoEntry)));
        assert_eq!(w.bytes_written(), 0);
        assert_eq!(read_back(w.finish().unwrap()).len(), 0);
    }

    #[test]
    fn data_beyond_the_32_bit_limit_is_refused_before_it_is_written() {
        let limit = 1_000;
        let mut w = ZipWriter::with_limit(Vec::new(), limit);
        w.start_file("big.wav", Utc::now()).unwrap();
        let header = 30 + "big.wav".len() as u64;
        let room = (limit - header - DATA_DESCRIPTOR_LEN) as usize;
        w.write_all(&vec![1; room]).unwrap();
        let written = w.bytes_written();

        assert!(matches!(w.write_all(b"x"), Err(ZipError::TooLarge)));
        assert_eq!(w.bytes_written(), written);
        assert!(matches!(
            w.start_file("next.json", Utc::now()),
            Err(ZipError::TooLarge)
        ));
        // What was accepted still makes a valid archive.
        let got = entries(w.finish().unwrap());
        assert_eq!(got, vec![("big.wav".to_owned(), vec![1; room])]);
    }

    #[test]
    fn entry_whose_header_would_start_beyond_the_32_bit_limit_is_refused() {
        let mut w = ZipWriter::with_limit(Vec::new(), 200);
        w.add_file("a.txt", Utc::now(), &[0; 100]).unwrap();
        let written = w.bytes_written();

        // 135 bytes so far + 16 descriptor + 30 + 20-byte name + 16 > 200.
        let name = "b".repeat(20);
        assert!(matches!(
            w.start_file(&name, Utc::now()),
            Err(ZipError::TooLarge)
        ));
        assert_eq!(w.bytes_written(), written);
        w.add_file("c", Utc::now(), b"").unwrap();
        assert_eq!(entries(w.finish().unwrap()).len(), 2);
    }

    #[test]
    fn at_most_65534_entries_are_accepted() {
        let mut w = ZipWriter::new(Vec::new());
        let modified = t("2027-03-15T10:20:31Z");
        for i in 0..MAX_ENTRIES {
            w.start_file(&format!("{i}"), modified).unwrap();
        }
        let written = w.bytes_written();

        assert!(matches!(
            w.start_file("one-too-many", modified),
            Err(ZipError::TooManyEntries)
        ));
        assert_eq!(w.bytes_written(), written);
        let archive = read_back(w.finish().unwrap());
        assert_eq!(archive.len(), MAX_ENTRIES);
    }

    #[test]
    fn a_failed_sink_poisons_the_writer() {
        let sink = FailingSink {
            capacity: 40,
            taken: Vec::new(),
        };
        let mut w = ZipWriter::new(sink);
        w.start_file("a.txt", Utc::now()).unwrap();

        assert!(matches!(w.write_all(&[0; 10]), Err(ZipError::Io(_))));
        assert!(matches!(w.write_all(b"x"), Err(ZipError::Poisoned)));
        assert!(matches!(
            w.start_file("b.txt", Utc::now()),
            Err(ZipError::Poisoned)
        ));
        assert!(matches!(w.finish(), Err(ZipError::Poisoned)));
    }

    #[test]
    fn debug_output_leaves_names_out() {
        let mut w = ZipWriter::new(Vec::new());
        w.add_file("max.mustermann@example.org.json", Utc::now(), b"{}")
            .unwrap();
        let debug = format!("{w:?}");
        assert!(!debug.contains("mustermann"), "{debug}");
        assert!(debug.contains("entries: 1"), "{debug}");
    }

    /// Not a check on its own: writes `$TMPDIR/polly-dsar-sample.zip` for other readers
    /// (`python3 -c "import zipfile; print(zipfile.ZipFile(p).testzip())"`, `unzip -t`).
    /// Run with `cargo test -p polly-shared --lib dsar::zip -- --ignored`.
    #[test]
    #[ignore]
    fn writes_a_sample_archive_for_other_readers() {
        let path = std::env::temp_dir().join("polly-dsar-sample.zip");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = ZipWriter::new(std::io::BufWriter::new(file));
        let modified = t("2027-03-15T10:20:31Z");
        w.add_file(
            "LIESMICH.txt",
            modified,
            "Ihre Daten nach Art. 15 DSGVO\n".as_bytes(),
        )
        .unwrap();
        w.add_file("ä.txt", modified, "Umlaute: äöüß\n".as_bytes())
            .unwrap();
        w.add_file("leer.json", modified, b"").unwrap();
        w.start_file("recordings/7d0c2a64.wav", modified).unwrap();
        for i in 0..64u32 {
            w.write_all(&[i as u8; 64 * 1024]).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(entries(std::fs::read(&path).unwrap()).len(), 4);
        println!("{}", path.display());
    }

    fn entry_name() -> impl Strategy<Value = String> {
        // Folders have no dot and files always do, so no file can clash with a folder.
        (
            "([a-z0-9_äö-]{1,8}/){0,2}[a-zA-Z0-9_ü-]{1,12}",
            "(json|txt|wav)",
        )
            .prop_map(|(stem, ext)| format!("{stem}.{ext}"))
    }

    proptest! {
           #[test]
           fn random_entry_sets_round_trip(
               files in prop::collection::btree_map(
                   entry_name(),
                   prop::collection::vec(any::<u8>(), 0..3_000),
                   0..16,
               ),
               chunk in 1usize..700,
               seconds in 0i64..4_500_000_000,
           ) {
               let modified = Utc.timestamp_opt(seconds, 0).unwrap();
               let mut uploaded = Vec::new();
               let mut w = ZipWriter::new(Vec::new());
               for (name, contents) in &files {
                   w.start_file(name, modified).unwrap();
                   for part in contents.chunks(chunk) {
                       w.write_all(part).unwrap();
                       uploaded.append(&mut w.get_mut());
                   }
               }
               uploaded.append(&mut w.finish().unwrap());

               let expected: Vec<(String, Vec<u8>)> = files.into_iter().collect();
               prop_assert_eq!(entries(uploaded.clone()), expected);
               let mut archive = read_back(uploaded);
               if !archive.is_empty() {
    let first = archive.by_index(0).unwrap();
                   let stored = first.last_modified().unwrap();
                   let dos = DosTime::from_utc(modified);
                   prop_assert_eq!((stored.datepart(), stored.timepart()), (dos.date, dos.time));
                   if (1980..=2107).contains(&modified.year()) {
                       prop_assert_eq!(
                           (stored.year() as i32, stored.month() as u32, stored.day() as u32),
                           (modified.year(), modified.month(), modified.day())
                       );
                       prop_assert_eq!(
                           (stored.hour() as u32, stored.minute() as u32, stored.second() as u32),
                           (modified.hour(), modified.minute(), modified.second() / 2 * 2)
                       );
                   }
               }
           }
       }
}
