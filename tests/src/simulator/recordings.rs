//! Recording files: a real WAV tone, synthetic files of any size, and faults.
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
    Wav { channels: u16 },
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
        Content::Wav { channels } => {
            let wav = Bytes::from(wav_tone(channels));
            let len = wav.len() as u64;
            (Source::Bytes(wav), len, "audio/wav")
        }
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
    Bytes(Bytes),
    Synthetic,
}

impl Source {
    fn chunk(&self, offset: u64, len: usize) -> Bytes {
        match self {
            Source::Bytes(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(len).min(bytes.len());
                bytes.slice(start..end)
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
