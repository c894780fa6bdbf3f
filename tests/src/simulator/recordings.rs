//! Recording files: a real WAV tone, synthetic files of any size, pattern WAV files whose
//! every sample a test can recompute, and faults.
//!
//! Pattern WAVs ([`PatternWav`]) are what a call's recording URLs serve: 16-bit PCM, the
//! call's length, mono at `recording_url` and stereo at `recording_multi_channel_url`, so
//! the word timings of the call's transcript point into them. Sample `c` of frame `i` is
//! [`pattern_sample`]`(i, c)`; a test compares a trimmed copy frame by frame around the
//! cut. They stream like synthetic files (any size, one chunk at a time), optionally as
//! `WAVE_FORMAT_EXTENSIBLE` with `LIST` chunks before and after the samples, or with the
//! data size left unknown (`0xFFFFFFFF`) as a streaming recorder writes it.
//!
//! Synthetic files are generated chunk by chunk while they stream (a 5 GB file costs one
//! 64 KiB buffer), from a counter-based generator a test can recompute: byte `i` is byte
//! `i % 8` (little endian) of `splitmix64(i / 8)`. Faults make a URL answer 404, hang
//! before or inside the body, expire like a stale signed URL, or redirect elsewhere.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::Shared;

/// Size of the pieces a streamed body is generated and sent in.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Sample rate of [`wav_tone`].
pub const WAV_SAMPLE_RATE: u32 = 8_000;

/// A ~1 s, 440 Hz sine tone as PCM WAV: RIFF header, 8 kHz, 16-bit, `channels` channels.
pub fn wav_tone(channels: u16) -> Vec<u8> {
    let channels = channels.max(1);
    let samples = WAV_SAMPLE_RATE; // one second
    let block_align = channels * 2;
    let data_len = samples * u32::from(block_align);
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVE");
    wav.extend_from_slice(b"fmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&WAV_SAMPLE_RATE.to_le_bytes());
    wav.extend_from_slice(&(WAV_SAMPLE_RATE * u32::from(block_align)).to_le_bytes()); // byte rate
    wav.extend_from_slice(&block_align.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let t = f64::from(n) / f64::from(WAV_SAMPLE_RATE);
        // Fade in and out over 20 ms so the tone does not click.
        let fade = (t / 0.02).min((1.0 - t) / 0.02).clamp(0.0, 1.0);
        let value = (f64::sin(2.0 * std::f64::consts::PI * 440.0 * t) * 0.4 * fade * 32767.0)
            .round() as i16;
        for channel in 0..channels {
            // The second channel (the user's side) is a quieter copy.
            let v = if channel == 0 { value } else { value / 2 };
            wav.extend_from_slice(&v.to_le_bytes());
        }
    }
    wav
}

/// Sample rate of the pattern WAVs served for calls.
pub const CALL_SAMPLE_RATE: u32 = 8_000;

/// Sample `channel` of frame `frame` of every [`PatternWav`]: pseudo-random, so a copy
/// shifted by even one frame or one channel differs everywhere.
pub fn pattern_sample(frame: u64, channel: u16) -> i16 {
    splitmix64(frame.wrapping_mul(8).wrapping_add(u64::from(channel))) as u16 as i16
}

/// How a [`PatternWav`] lays out its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavLayout {
    /// `RIFF`, `fmt ` (16 bytes, PCM), `data`: 44 bytes of header.
    Canonical,
    /// `WAVE_FORMAT_EXTENSIBLE` (40-byte `fmt `), an odd-sized `LIST` chunk before the
    /// samples and another after them.
    ExtensibleWithList,
    /// Canonical, but the RIFF and data sizes say `0xFFFFFFFF` (unknown).
    UnknownSize,
}

/// A 16-bit PCM WAV file of [`pattern_sample`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternWav {
    pub channels: u16,
    pub sample_rate: u32,
    pub frames: u64,
    pub layout: WavLayout,
}

/// The `LIST` chunk bodies of [`WavLayout::ExtensibleWithList`] (odd lengths: padded).
const LIST_BEFORE: &[u8] = b"INFOINAM\x0b\0\0\0Testanruf!\0";
const LIST_AFTER: &[u8] = b"INFOICMT\x05\0\0\0Ende\0\0x";

impl PatternWav {
    /// A canonical file of `ms` milliseconds.
    pub fn of_ms(channels: u16, ms: u64) -> Self {
        Self {
            channels,
            sample_rate: CALL_SAMPLE_RATE,
            frames: ms * u64::from(CALL_SAMPLE_RATE) / 1000,
            layout: WavLayout::Canonical,
        }
    }

    /// A canonical file of about `bytes` bytes (whole frames).
    pub fn of_bytes(channels: u16, bytes: u64) -> Self {
        let frames = bytes.saturating_sub(44) / (2 * u64::from(channels.max(1)));
        Self {
            channels,
            sample_rate: CALL_SAMPLE_RATE,
            frames,
            layout: WavLayout::Canonical,
        }
    }

    /// With another layout.
    pub fn with_layout(mut self, layout: WavLayout) -> Self {
        self.layout = layout;
        self
    }

    fn block_align(&self) -> u16 {
        self.channels * 2
    }

    /// Bytes of sample data.
    pub fn data_len(&self) -> u64 {
        self.frames * u64::from(self.block_align())
    }

    /// The header: everything before the first sample.
    pub fn header(&self) -> Vec<u8> {
        let extensible = self.layout == WavLayout::ExtensibleWithList;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&(if extensible { 0xFFFEu16 } else { 1 }).to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.sample_rate.to_le_bytes());
        fmt.extend_from_slice(&(self.sample_rate * u32::from(self.block_align())).to_le_bytes());
        fmt.extend_from_slice(&self.block_align().to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        if extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&16u16.to_le_bytes());
            let mask: u32 = if self.channels == 2 { 3 } else { 4 };
            fmt.extend_from_slice(&mask.to_le_bytes());
            // KSDATAFORMAT_SUBTYPE_PCM
            fmt.extend_from_slice(&[
                1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
            ]);
        }
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        h.extend_from_slice(&fmt);
        if extensible {
            h.extend_from_slice(b"LIST");
            h.extend_from_slice(&(LIST_BEFORE.len() as u32).to_le_bytes());
            h.extend_from_slice(LIST_BEFORE);
            if LIST_BEFORE.len() % 2 == 1 {
                h.push(0); // the pad byte of an odd-sized chunk
            }
        }
        let data = u32::try_from(self.data_len()).unwrap_or(u32::MAX);
        h.extend_from_slice(b"data");
        let unknown = self.layout == WavLayout::UnknownSize;
        h.extend_from_slice(&(if unknown { u32::MAX } else { data }).to_le_bytes());
        let total = h.len() as u64 + self.data_len() + self.trailer().len() as u64;
        let riff = if unknown {
            u32::MAX
        } else {
            u32::try_from(total - 8).unwrap_or(u32::MAX)
        };
        h[4..8].copy_from_slice(&riff.to_le_bytes());
        h
    }

    /// What follows the samples.
    fn trailer(&self) -> Vec<u8> {
        if self.layout != WavLayout::ExtensibleWithList {
            return Vec::new();
        }
        let mut t = Vec::new();
        if self.data_len() % 2 == 1 {
            t.push(0);
        }
        t.extend_from_slice(b"LIST");
        t.extend_from_slice(&(LIST_AFTER.len() as u32).to_le_bytes());
        t.extend_from_slice(LIST_AFTER);
        if LIST_AFTER.len() % 2 == 1 {
            t.push(0);
        }
        t
    }

    /// Length of the whole file.
    pub fn len(&self) -> u64 {
        self.header().len() as u64 + self.data_len() + self.trailer().len() as u64
    }

    /// Whether the file holds no byte (never: it has a header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Fills `buf` with the file's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let header = self.header();
        let trailer = self.trailer();
        let h = header.len() as u64;
        let d = self.data_len();
        let channels = u64::from(self.channels);
        for (i, byte) in buf.iter_mut().enumerate() {
            let pos = offset + i as u64;
            *byte = if pos < h {
                header[pos as usize]
            } else if pos < h + d {
                let at = pos - h;
                let sample = at / 2;
                let value = pattern_sample(sample / channels, (sample % channels) as u16);
                value.to_le_bytes()[(at % 2) as usize]
            } else {
                trailer.get((pos - h - d) as usize).copied().unwrap_or(0)
            };
        }
    }

    /// The whole file in memory (small files only).
    pub fn bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; usize::try_from(self.len()).unwrap_or(0)];
        self.fill(0, &mut buf);
        buf
    }

    /// Frames before a cut at `cut_ms` (rounded down).
    pub fn frames_before(&self, cut_ms: u64) -> u64 {
        cut_ms * u64::from(self.sample_rate) / 1000
    }

    /// Hex SHA-256 of the file a correct trim at `cut_ms` stores: a canonical 44-byte
    /// header (for the extensible layout: its 40-byte `fmt `) and the frames from the cut
    /// on, computed here from the pattern in chunks, without any trimming code.
    pub fn trimmed_sha256(&self, cut_ms: u64) -> (String, u64) {
        use sha2::{Digest, Sha256};
        let skip = self.frames_before(cut_ms).min(self.frames);
        let kept = PatternWav {
            frames: self.frames - skip,
            layout: match self.layout {
                WavLayout::ExtensibleWithList => WavLayout::ExtensibleWithList,
                _ => WavLayout::Canonical,
            },
            ..*self
        };
        let mut header = kept.header();
        if self.layout == WavLayout::ExtensibleWithList {
            // The trimmed file has no LIST chunks: drop the one in the header.
            let list = header
                .windows(4)
                .position(|w| w == b"LIST")
                .unwrap_or(header.len());
            let data_at = header.len() - 8;
            header.drain(list..data_at);
            let riff = (header.len() as u64 + kept.data_len() - 8) as u32;
            header[4..8].copy_from_slice(&riff.to_le_bytes());
        }
        let mut hasher = Sha256::new();
        hasher.update(&header);
        let channels = u64::from(self.channels);
        let mut buf = Vec::with_capacity(CHUNK_BYTES);
        for frame in skip..self.frames {
            for c in 0..channels {
                buf.extend_from_slice(&pattern_sample(frame, c as u16).to_le_bytes());
            }
            if buf.len() >= CHUNK_BYTES {
                hasher.update(&buf);
                buf.clear();
            }
        }
        hasher.update(&buf);
        (
            hex::encode(hasher.finalize()),
            header.len() as u64 + kept.data_len(),
        )
    }
}

/// SplitMix64: the generator behind synthetic files.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the synthetic file's bytes starting at `offset`.
pub fn synthetic_fill(offset: u64, buf: &mut [u8]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        *byte = splitmix64(pos / 8).to_le_bytes()[(pos % 8) as usize];
    }
}

/// Hex SHA-256 of a synthetic file of `len` bytes, computed in chunks.
pub fn synthetic_sha256(len: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut offset = 0;
    while offset < len {
        let n = usize::try_from((len - offset).min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
        let piece = &mut buf[..n];
        synthetic_fill(offset, piece);
        hasher.update(&*piece);
        offset += n as u64;
    }
    hex::encode(hasher.finalize())
}

/// A misbehaviour of one recording URL (see [`super::Simulator::set_fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer 404 (object gone).
    NotFound,
    /// Answer this status with a short JSON error body (500, 503, …).
    Status(u16),
    /// Wait this long before sending anything (a hanging server).
    DelayBeforeHeaders(Duration),
    /// Send `after_bytes` of the body, then pause for `pause` before the rest.
    StallBody {
        /// Bytes sent before the pause.
        after_bytes: u64,
        /// Length of the pause.
        pause: Duration,
    },
    /// Like a signed URL: fine until `at_ms` on the simulator's clock, then `status`
    /// (403 like S3/CloudFront, or 404).
    ExpiresAt {
        /// First millisecond (since the epoch) at which the URL is stale.
        at_ms: u64,
        /// Status answered once stale.
        status: u16,
    },
    /// Redirect (`status` 301/302/307/308) to `location`, e.g. another host.
    Redirect {
        /// The `Location` header.
        location: String,
        /// The redirect status.
        status: u16,
    },
}

impl Fault {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NotFound => "not_found",
            Fault::Status(_) => "status",
            Fault::DelayBeforeHeaders(_) => "delay",
            Fault::StallBody { .. } => "stall",
            Fault::ExpiresAt { .. } => "expires",
            Fault::Redirect { .. } => "redirect",
        }
    }
}

/// What a recording path serves when it behaves.
#[derive(Debug, Clone, Copy)]
pub(super) enum Content {
    Pattern(PatternWav),
    Synthetic(u64),
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "status": status.as_u16(), "message": message }).to_string(),
    )
        .into_response()
}

/// Serves `content` at `path`, applying the path's fault and counting the download.
pub(super) async fn serve(shared: Shared, path: String, content: Option<Content>) -> Response {
    let (fault, now_ms) = {
        let mut inner = shared.lock();
        *inner.downloads.entry(path.clone()).or_default() += 1;
        (inner.faults.get(&path).cloned(), inner.now_ms())
    };
    tracing::debug!(
        path = %path,
        fault = fault.as_ref().map_or("none", Fault::kind),
        "recording request"
    );
    let mut stall = None;
    match fault {
        Some(Fault::NotFound) => return error(StatusCode::NOT_FOUND, "not found"),
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, "injected failure");
        }
        Some(Fault::DelayBeforeHeaders(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::StallBody { after_bytes, pause }) => stall = Some((after_bytes, pause)),
        Some(Fault::ExpiresAt { at_ms, status }) if now_ms >= at_ms => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            return error(status, "Request has expired");
        }
        Some(Fault::ExpiresAt { .. }) => {}
        Some(Fault::Redirect { location, status }) => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(StatusCode::is_redirection)
                .unwrap_or(StatusCode::FOUND);
            return match HeaderValue::from_str(&location) {
                Ok(location) => (status, [(header::LOCATION, location)]).into_response(),
                Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect location"),
            };
        }
        None => {}
    }
    let Some(content) = content else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let (source, len, content_type) = match content {
        Content::Pattern(wav) => (Source::Pattern(wav), wav.len(), "audio/wav"),
        Content::Synthetic(len) => (Source::Synthetic, len, "application/octet-stream"),
    };
    let body = stream_body(shared, path, source, len, stall);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        body,
    )
        .into_response()
}

/// Where streamed bytes come from.
enum Source {
    Pattern(PatternWav),
    Synthetic,
}

impl Source {
    fn chunk(&self, offset: u64, len: usize) -> Bytes {
        match self {
            Source::Pattern(wav) => {
                let mut buf = vec![0u8; len];
                wav.fill(offset, &mut buf);
                Bytes::from(buf)
            }
            Source::Synthetic => {
                let mut buf = vec![0u8; len];
                synthetic_fill(offset, &mut buf);
                Bytes::from(buf)
            }
        }
    }
}

struct StreamState {
    shared: Shared,
    path: String,
    source: Source,
    offset: u64,
    len: u64,
    stall: Option<(u64, Duration)>,
}

/// A body generated one chunk at a time; each chunk is counted in the shared state.
fn stream_body(
    shared: Shared,
    path: String,
    source: Source,
    len: u64,
    stall: Option<(u64, Duration)>,
) -> Body {
    let state = StreamState {
        shared,
        path,
        source,
        offset: 0,
        len,
        stall,
    };
    Body::from_stream(stream::unfold(state, |mut s| async move {
        if s.offset >= s.len {
            return None;
        }
        if let Some((after, pause)) = s.stall {
            if s.offset >= after {
                tokio::time::sleep(pause).await;
                s.stall = None;
            }
        }
        let mut n = (s.len - s.offset).min(CHUNK_BYTES as u64);
        if let Some((after, _)) = s.stall {
            // End this chunk where the pause begins.
            n = n.min(after - s.offset);
        }
        let n = usize::try_from(n).unwrap_or(CHUNK_BYTES);
        let chunk = s.source.chunk(s.offset, n);
        s.offset += n as u64;
        *s.shared.lock().chunks.entry(s.path.clone()).or_default() += 1;
        Some((Ok::<_, std::io::Error>(chunk), s))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_describes_the_data() {
        let wav = wav_tone(1);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + 16_000);
        assert_eq!(
            u32::from_le_bytes(wav[4..8].try_into().unwrap()),
            36 + 16_000
        );
    }

    #[test]
    fn synthetic_fill_is_offset_independent() {
        let mut whole = vec![0u8; 100];
        synthetic_fill(0, &mut whole);
        let mut tail = vec![0u8; 37];
        synthetic_fill(63, &mut tail);
        assert_eq!(&whole[63..], &tail[..]);
    }
}
