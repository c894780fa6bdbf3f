//! Cutting a WAV recording at the consent answer while it streams (R7.5, §201 StGB).
//!
//! A [`WavTrimmer`] is fed the source file piece by piece, in pieces of any size, and
//! writes a new WAV file: a fresh header (`RIFF`/`WAVE`, the source's `fmt ` chunk, a
//! `fact` chunk for non-PCM formats, `data`) whose sizes describe what follows, then the
//! source's sample frames from the cut on. It holds the header only (at most
//! [`MAX_HEADER_BYTES`]); samples pass straight through, so memory stays flat whatever the
//! size of the recording.
//!
//! The rules, chosen so that nothing said before the cut can survive:
//! - Formats: PCM (8/16/24/32 bit), IEEE float (32/64 bit), A-law and µ-law (8 bit), and
//!   `WAVE_FORMAT_EXTENSIBLE` with one of those as its sub-format, any number of
//!   channels. A frame (one sample of every channel) is `block_align` bytes, which must be
//!   exactly `channels × bits / 8`: the cut skips `cut_ms × sample_rate / 1000` whole
//!   frames (rounded down), so it never splits a frame or a channel. Compressed formats
//!   (ADPCM, MP3 in WAV, …) are refused: their bytes are not frames.
//! - Chunks other than `fmt ` and `data` (`LIST`, `JUNK`, `fact`, …) are dropped, before
//!   and after the samples (a `LIST` chunk may carry titles or names); odd-sized chunks
//!   are skipped with their pad byte.
//! - The data size: a trailing partial frame is dropped. A size of `0` or `0xFFFFFFFF`
//!   (written by a recorder that streamed and never went back) means "unknown": the
//!   samples are then the rest of the body, which needs the body's length
//!   (`Content-Length`); without it the file is refused ([`WavError::UnknownLength`]),
//!   as the new header must be written before the samples.
//! - A declared data size beyond the body's length, a body that ends before its samples
//!   do, a cut beyond the last frame, a header larger than [`MAX_HEADER_BYTES`] or not a
//!   RIFF/WAVE file at all: refused, nothing is emitted past the point of failure (and
//!   the caller stores nothing).

/// The most bytes before the first sample (header and chunks before `data`) we hold.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// `WAVE_FORMAT_PCM`.
pub const FORMAT_PCM: u16 = 1;
/// `WAVE_FORMAT_IEEE_FLOAT`.
pub const FORMAT_FLOAT: u16 = 3;
/// `WAVE_FORMAT_ALAW`.
pub const FORMAT_ALAW: u16 = 6;
/// `WAVE_FORMAT_MULAW`.
pub const FORMAT_MULAW: u16 = 7;
/// `WAVE_FORMAT_EXTENSIBLE`.
pub const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// The tail (bytes 2..16) of the sub-format GUID of `WAVE_FORMAT_EXTENSIBLE` for the
/// standard formats (`KSDATAFORMAT_SUBTYPE_PCM` etc. differ in their first two bytes).
const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Why a WAV file cannot be trimmed. Fixed text: never a byte of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The body does not start with `RIFF….WAVE`.
    #[error("not a RIFF/WAVE file")]
    NotWav,
    /// More than [`MAX_HEADER_BYTES`] before the samples.
    #[error("WAV header too large")]
    HeaderTooLarge,
    /// The body ended inside the header or before the declared samples did.
    #[error("WAV file truncated")]
    Truncated,
    /// `data` before `fmt `, a second `fmt `, or a `fmt ` chunk too short.
    #[error("WAV chunks malformed")]
    Malformed,
    /// A format we cannot cut at frame boundaries (compressed, odd bit depth).
    #[error("WAV sample format not supported")]
    UnsupportedFormat,
    /// The format's fields contradict each other (block align, byte rate, zero rate or
    /// channels).
    #[error("WAV format fields inconsistent")]
    Inconsistent,
    /// The declared data size runs past the end of the body.
    #[error("WAV data size beyond the body")]
    DataBeyondBody,
    /// The data size is unknown and so is the body's length.
    #[error("WAV data size unknown")]
    UnknownLength,
    /// The cut lies beyond the last sample frame: audio and word timings disagree.
    #[error("cut point beyond the end of the audio")]
    CutBeyondAudio,
    /// The trimmed file would not fit a RIFF size field.
    #[error("WAV file too large")]
    TooLarge,
}

/// The sample format of a WAV file, as its `fmt ` chunk states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavFormat {
    /// The format tag of the chunk (`0xFFFE` for extensible).
    pub format_tag: u16,
    /// The format the samples are in (the sub-format of an extensible file).
    pub sample_format: u16,
    pub channels: u16,
    pub sample_rate: u32,
    /// Bytes per frame (one sample of every channel).
    pub block_align: u16,
    /// Bits per sample (the container size).
    pub bits_per_sample: u16,
    /// The chunk's body as received (copied into the new header).
    fmt_body: Vec<u8>,
}

impl WavFormat {
    /// Frames skipped for a cut at `cut_ms` (rounded down: never a frame of the answer lost
    /// to rounding up, never a partial frame).
    pub fn frames_before(&self, cut_ms: u64) -> u64 {
        let frames = u128::from(cut_ms) * u128::from(self.sample_rate) / 1000;
        u64::try_from(frames).unwrap_or(u64::MAX)
    }

    fn parse(body: &[u8]) -> Result<Self, WavError> {
        if body.len() < 16 {
            return Err(WavError::Malformed);
        }
        let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let format_tag = u16_at(0);
        let channels = u16_at(2);
        let sample_rate = u32_at(4);
        let byte_rate = u32_at(8);
        let block_align = u16_at(12);
        let bits = u16_at(14);
        let sample_format = if format_tag == FORMAT_EXTENSIBLE {
            // cbSize (22), valid bits, channel mask, sub-format GUID.
            if body.len() < 40 || u16_at(16) < 22 || body[26..40] != GUID_TAIL[..] {
                return Err(WavError::UnsupportedFormat);
            }
            let valid_bits = u16_at(18);
            if valid_bits > bits {
                return Err(WavError::Inconsistent);
            }
            u16::from_le_bytes([body[24], body[25]])
        } else {
            format_tag
        };
        let bits_ok = match sample_format {
            FORMAT_PCM => matches!(bits, 8 | 16 | 24 | 32),
            FORMAT_FLOAT => matches!(bits, 32 | 64),
            FORMAT_ALAW | FORMAT_MULAW => bits == 8,
            _ => return Err(WavError::UnsupportedFormat),
        };
        if !bits_ok {
            return Err(WavError::UnsupportedFormat);
        }
        let frame = u32::from(channels) * u32::from(bits / 8);
        if channels == 0
            || sample_rate == 0
            || u32::from(block_align) != frame
            || u64::from(byte_rate) != u64::from(sample_rate) * u64::from(block_align)
        {
            return Err(WavError::Inconsistent);
        }
        Ok(Self {
            format_tag,
            sample_format,
            channels,
            sample_rate,
            block_align,
            bits_per_sample: bits,
            fmt_body: body.to_vec(),
        })
    }
}

/// What the header of the source said, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimPlan {
    pub format: WavFormat,
    /// Offset of the first sample byte in the source.
    pub data_offset: u64,
    /// Whole frames in the source.
    pub source_frames: u64,
    /// Frames dropped before the cut.
    pub skipped_frames: u64,
    /// Frames kept (from the cut to the end).
    pub kept_frames: u64,
    /// Length of the new header.
    pub header_len: u64,
}

impl TrimPlan {
    /// Bytes of the trimmed file: header, kept samples and their pad byte.
    pub fn output_len(&self) -> u64 {
        let data = self.kept_frames * u64::from(self.format.block_align);
        self.header_len + data + (data & 1)
    }
}

enum State {
    /// Collecting the header (everything before the first sample).
    Header(Vec<u8>),
    /// Passing samples: `pos` bytes of the data region seen so far.
    Data { pos: u64 },
    /// Failed: nothing more is emitted.
    Failed(WavError),
}

/// Trims a WAV file at a cut point while it streams (see the module docs).
pub struct WavTrimmer {
    cut_ms: u64,
    body_len: Option<u64>,
    state: State,
    plan: Option<TrimPlan>,
}

impl WavTrimmer {
    /// A trimmer dropping the first `cut_ms` milliseconds of a body of `body_len` bytes
    /// (the `Content-Length`, when announced).
    pub fn new(cut_ms: u64, body_len: Option<u64>) -> Self {
        Self {
            cut_ms,
            body_len,
            state: State::Header(Vec::new()),
            plan: None,
        }
    }

    /// The plan, once the header has been read.
    pub fn plan(&self) -> Option<&TrimPlan> {
        self.plan.as_ref()
    }

    /// Feeds the next piece of the source; appends what the trimmed file gains to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), WavError> {
        let result = self.step(input, out);
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }

    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), WavError> {
        match &mut self.state {
            State::Failed(e) => Err(*e),
            State::Header(buf) => {
                buf.extend_from_slice(input);
                let Some((format, data_offset, declared)) = read_header(buf)? else {
                    if buf.len() > MAX_HEADER_BYTES {
                        return Err(WavError::HeaderTooLarge);
                    }
                    return Ok(());
                };
                let rest = buf.split_off(usize::try_from(data_offset).unwrap_or(usize::MAX));
                let plan = self.plan_for(format, data_offset, declared)?;
                write_header(&plan, out)?;
                self.plan = Some(plan);
                self.state = State::Data { pos: 0 };
                self.pass(&rest, out);
                Ok(())
            }
            State::Data { .. } => {
                self.pass(input, out);
                Ok(())
            }
        }
    }

    fn plan_for(
        &self,
        format: WavFormat,
        data_offset: u64,
        declared: u32,
    ) -> Result<TrimPlan, WavError> {
        let data_bytes = if declared == 0 || declared == u32::MAX {
            let body = self.body_len.ok_or(WavError::UnknownLength)?;
            body.checked_sub(data_offset).ok_or(WavError::Truncated)?
        } else {
            let declared = u64::from(declared);
            if self
                .body_len
                .is_some_and(|body| data_offset + declared > body)
            {
                return Err(WavError::DataBeyondBody);
            }
            declared
        };
        let source_frames = data_bytes / u64::from(format.block_align);
        let skipped_frames = format.frames_before(self.cut_ms);
        if skipped_frames > source_frames {
            return Err(WavError::CutBeyondAudio);
        }
        let fmt_len = format.fmt_body.len() as u64;
        let fact = if format.sample_format == FORMAT_PCM {
            0
        } else {
            12
        };
        Ok(TrimPlan {
            header_len: 12 + 8 + fmt_len + (fmt_len & 1) + fact + 8,
            format,
            data_offset,
            source_frames,
            skipped_frames,
            kept_frames: source_frames - skipped_frames,
        })
    }

    /// Emits the part of `input` (the next bytes of the data region) that lies between the
    /// cut and the end of the kept frames.
    fn pass(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let (State::Data { pos }, Some(plan)) = (&mut self.state, &self.plan) else {
            return;
        };
        let align = u64::from(plan.format.block_align);
        let from = plan.skipped_frames * align;
        let to = plan.source_frames * align;
        let start = *pos;
        let end = start + input.len() as u64;
        let lo = from.max(start).min(end);
        let hi = to.min(end).max(lo);
        if hi > lo {
            let a = usize::try_from(lo - start).unwrap_or(usize::MAX);
            let b = usize::try_from(hi - start).unwrap_or(usize::MAX);
            out.extend_from_slice(&input[a..b]);
        }
        *pos = end;
    }

    /// The source ended: checks that every kept frame arrived and appends the pad byte.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), WavError> {
        let result = match (&self.state, &self.plan) {
            (State::Failed(e), _) => Err(*e),
            (State::Header(buf), _) => match read_header(buf) {
                Err(e) => Err(e),
                Ok(_) => Err(if buf.len() < 12 || buf.starts_with(b"RIFF") {
                    WavError::Truncated
                } else {
                    WavError::NotWav
                }),
            },
            (State::Data { pos }, Some(plan)) => {
                let data = plan.kept_frames * u64::from(plan.format.block_align);
                if *pos < plan.source_frames * u64::from(plan.format.block_align) {
                    Err(WavError::Truncated)
                } else {
                    if data & 1 == 1 {
                        out.push(0);
                    }
                    Ok(())
                }
            }
            (State::Data { .. }, None) => Err(WavError::Malformed),
        };
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }
}

/// Reads the header in `buf`: the format, the offset of the first sample and the declared
/// data size; `None` while more bytes are needed.
fn read_header(buf: &[u8]) -> Result<Option<(WavFormat, u64, u32)>, WavError> {
    if buf.len() >= 4 && &buf[..4] != b"RIFF" {
        return Err(WavError::NotWav);
    }
    if buf.len() >= 12 && &buf[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut pos: usize = 12;
    let mut format = None;
    loop {
        let Some(head) = buf.get(pos..pos + 8) else {
            return Ok(None);
        };
        let id = &head[..4];
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let body = pos + 8;
        if id == b"data" {
            let format = format.ok_or(WavError::Malformed)?;
            return Ok(Some((format, body as u64, size)));
        }
        let size = usize::try_from(size).map_err(|_| WavError::HeaderTooLarge)?;
        let next = body
            .checked_add(size)
            .and_then(|n| n.checked_add(size & 1))
            .ok_or(WavError::HeaderTooLarge)?;
        if next > MAX_HEADER_BYTES + 8 {
            return Err(WavError::HeaderTooLarge);
        }
        if id == b"fmt " {
            if format.is_some() {
                return Err(WavError::Malformed);
            }
            let Some(fmt) = buf.get(body..body + size) else {
                return Ok(None);
            };
            format = Some(WavFormat::parse(fmt)?);
        }
        pos = next;
    }
}

/// Writes the new header: `RIFF`, `WAVE`, `fmt ` as received, `fact` for non-PCM, `data`.
fn write_header(plan: &TrimPlan, out: &mut Vec<u8>) -> Result<(), WavError> {
    let data = plan.kept_frames * u64::from(plan.format.block_align);
    let riff = plan.output_len() - 8;
    let riff = u32::try_from(riff).map_err(|_| WavError::TooLarge)?;
    let data32 = u32::try_from(data).map_err(|_| WavError::TooLarge)?;
    let fmt = &plan.format.fmt_body;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(fmt);
    if fmt.len() & 1 == 1 {
        out.push(0);
    }
    if plan.format.sample_format != FORMAT_PCM {
        let frames = u32::try_from(plan.kept_frames).map_err(|_| WavError::TooLarge)?;
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&frames.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data32.to_le_bytes());
    Ok(())
}

/// Trims a whole file held in memory (tests and small files); the same rules.
pub fn trim(source: &[u8], cut_ms: u64) -> Result<Vec<u8>, WavError> {
    let mut trimmer = WavTrimmer::new(cut_ms, Some(source.len() as u64));
    let mut out = Vec::new();
    trimmer.push(source, &mut out)?;
    trimmer.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A sample of frame `i`, channel `c` (16-bit): distinct per frame and channel.
    fn sample(i: u64, c: u16) -> i16 {
        ((i.wrapping_mul(7919) + u64::from(c) * 1000) % 65_536) as u16 as i16
    }

    struct Spec {
        tag: u16,
        channels: u16,
        rate: u32,
        bits: u16,
        frames: u64,
        list_before: usize,
        list_after: usize,
        declared: Option<u32>,
    }

    fn pcm16(channels: u16, rate: u32, frames: u64) -> Spec {
        Spec {
            tag: FORMAT_PCM,
            channels,
            rate,
            bits: 16,
            frames,
            list_before: 0,
            list_after: 0,
            declared: None,
        }
    }

    fn build(s: &Spec) -> Vec<u8> {
        let block = s.channels * s.bits / 8;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&s.tag.to_le_bytes());
        fmt.extend_from_slice(&s.channels.to_le_bytes());
        fmt.extend_from_slice(&s.rate.to_le_bytes());
        fmt.extend_from_slice(&(s.rate * u32::from(block)).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&s.bits.to_le_bytes());
        if s.tag == FORMAT_EXTENSIBLE {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&s.bits.to_le_bytes());
            fmt.extend_from_slice(&3u32.to_le_bytes());
            fmt.extend_from_slice(&FORMAT_PCM.to_le_bytes());
            fmt.extend_from_slice(&GUID_TAIL);
        }
        let mut data = Vec::new();
        for i in 0..s.frames {
            for c in 0..s.channels {
                let v = i64::from(sample(i, c)).to_le_bytes();
                data.extend_from_slice(&v[..usize::from(s.bits / 8)]);
            }
        }
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&0u32.to_le_bytes());
        w.extend_from_slice(b"WAVE");
        let chunk = |w: &mut Vec<u8>, id: &[u8], body: &[u8]| {
            w.extend_from_slice(id);
            w.extend_from_slice(&(body.len() as u32).to_le_bytes());
            w.extend_from_slice(body);
            if body.len() % 2 == 1 {
                w.push(0);
            }
        };
        if s.list_before > 0 {
            chunk(&mut w, b"JUNK", &[7u8; 3]);
        }
        chunk(&mut w, b"fmt ", &fmt);
        if s.list_before > 0 {
            chunk(&mut w, b"LIST", &vec![b'x'; s.list_before]);
        }
        w.extend_from_slice(b"data");
        w.extend_from_slice(&s.declared.unwrap_or(data.len() as u32).to_le_bytes());
        w.extend_from_slice(&data);
        if s.list_after > 0 {
            chunk(&mut w, b"LIST", &vec![b'y'; s.list_after]);
        }
        let riff = (w.len() - 8) as u32;
        w[4..8].copy_from_slice(&riff.to_le_bytes());
        w
    }

    /// An independent reading of a canonical trimmed file: format fields and the samples.
    fn read(w: &[u8]) -> (u16, u32, u16, Vec<u8>) {
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(w[4..8].try_into().unwrap()) as usize,
            w.len() - 8,
            "RIFF size"
        );
        assert_eq!(&w[8..16], b"WAVEfmt ");
        let fmt_len = u32::from_le_bytes(w[16..20].try_into().unwrap()) as usize;
        let channels = u16::from_le_bytes(w[22..24].try_into().unwrap());
        let rate = u32::from_le_bytes(w[24..28].try_into().unwrap());
        let bits = u16::from_le_bytes(w[34..36].try_into().unwrap());
        let mut p = 20 + fmt_len + (fmt_len & 1);
        if &w[p..p + 4] == b"fact" {
            p += 12;
        }
        assert_eq!(&w[p..p + 4], b"data");
        let n = u32::from_le_bytes(w[p + 4..p + 8].try_into().unwrap()) as usize;
        let data = w[p + 8..p + 8 + n].to_vec();
        assert!(
            w.len() == p + 8 + n || w.len() == p + 9 + n,
            "nothing after data"
        );
        (channels, rate, bits, data)
    }

    fn expect_samples(data: &[u8], channels: u16, first_frame: u64, frames: u64) {
        assert_eq!(data.len() as u64, frames * u64::from(channels) * 2);
        for (k, frame) in data.chunks(usize::from(channels) * 2).enumerate() {
            for c in 0..channels {
                let at = usize::from(c) * 2;
                let got = i16::from_le_bytes([frame[at], frame[at + 1]]);
                assert_eq!(
                    got,
                    sample(first_frame + k as u64, c),
                    "frame {k} channel {c}"
                );
            }
        }
    }

    /// R7.5: a mono 16-bit file cut at 250 ms keeps exactly the frames from 2000 on (8 kHz)
    /// with a header whose sizes describe them; the frame before the cut is gone.
    #[test]
    fn mono_cut_keeps_the_frames_from_the_cut_on() {
        let src = build(&pcm16(1, 8000, 8000));
        let out = trim(&src, 250).unwrap();
        let (ch, rate, bits, data) = read(&out);
        assert_eq!((ch, rate, bits), (1, 8000, 16));
        expect_samples(&data, 1, 2000, 6000);
        let before = sample(1999, 0).to_le_bytes();
        assert_ne!(
            &data[..2],
            &before[..],
            "first kept frame is not the one before"
        );
    }

    /// R7.5: stereo, extensible, LIST/JUNK chunks before and after the data, odd chunk
    /// sizes: the cut is frame- and channel-aligned and the extra chunks are gone.
    #[test]
    fn stereo_extensible_with_extra_chunks_is_cut_on_frame_boundaries() {
        let mut spec = pcm16(2, 16_000, 3000);
        spec.tag = FORMAT_EXTENSIBLE;
        spec.list_before = 33;
        spec.list_after = 17;
        let src = build(&spec);
        let out = trim(&src, 101).unwrap(); // 1616 frames
        assert!(!out.windows(4).any(|w| w == b"LIST" || w == b"JUNK"));
        let (ch, rate, _, data) = read(&out);
        assert_eq!((ch, rate), (2, 16_000));
        expect_samples(&data, 2, 1616, 3000 - 1616);
        // The extensible fmt chunk is kept as it was (40 bytes).
        assert_eq!(u32::from_le_bytes(out[16..20].try_into().unwrap()), 40);
    }

    /// R7.5: a cut at 0 of a canonical PCM file gives back the very same bytes; a cut at
    /// the end leaves a valid file with no samples; a cut past the end is refused.
    #[test]
    fn cut_at_the_edges() {
        let src = build(&pcm16(1, 8000, 800));
        assert_eq!(trim(&src, 0).unwrap(), src);
        let (_, _, _, data) = read(&trim(&src, 100).unwrap());
        assert!(data.is_empty());
        assert_eq!(trim(&src, 101), Err(WavError::CutBeyondAudio));
    }

    /// R7.5: 8-bit mono with an odd number of kept bytes gets its pad byte (RIFF size
    /// includes it); 24-bit stereo frames (6 bytes) are never split.
    #[test]
    fn odd_data_sizes_are_padded_and_wide_frames_kept_whole() {
        let mut s8 = pcm16(1, 8000, 11);
        s8.bits = 8;
        let out = trim(&build(&s8), 1).unwrap(); // 8 frames skipped, 3 kept
        assert_eq!(out.len(), 44 + 3 + 1);
        assert_eq!(u32::from_le_bytes(out[40..44].try_into().unwrap()), 3);
        let mut s24 = pcm16(2, 1000, 10);
        s24.bits = 24;
        let out = trim(&build(&s24), 3).unwrap();
        assert_eq!(u32::from_le_bytes(out[40..44].try_into().unwrap()), 7 * 6);
        assert_eq!(&out[44..50], &build(&s24)[44 + 18..44 + 24]);
    }

    /// R7.5: an unknown data size (0xFFFFFFFF or 0) is the rest of the body when its length
    /// is known (a trailing partial frame dropped) and refused when it is not.
    #[test]
    fn unknown_data_size_needs_the_body_length() {
        for declared in [u32::MAX, 0] {
            let mut spec = pcm16(2, 8000, 100);
            spec.declared = Some(declared);
            let mut src = build(&spec);
            src.push(0x55); // half a sample more
            let (_, _, _, data) = read(&trim(&src, 5).unwrap());
            expect_samples(&data, 2, 40, 60);
            let mut t = WavTrimmer::new(5, None);
            assert_eq!(t.push(&src, &mut Vec::new()), Err(WavError::UnknownLength));
        }
    }

    /// R7.5: hostile files are refused and emit nothing but what preceded the failure:
    /// not RIFF, not WAVE, truncated header, data beyond the body, a body ending early,
    /// data before fmt, compressed or inconsistent formats, a runaway header.
    #[test]
    fn hostile_files_are_refused() {
        let good = build(&pcm16(1, 8000, 100));
        let mut cases: Vec<(Vec<u8>, WavError)> = vec![
            (b"ID3\x04mp3 data here".to_vec(), WavError::NotWav),
            (
                [&b"RIFF\0\0\0\0AVI "[..], &good[12..]].concat(),
                WavError::NotWav,
            ),
            (good[..30].to_vec(), WavError::Truncated),
            (Vec::new(), WavError::Truncated),
        ];
        let mut beyond = good.clone();
        beyond[40..44].copy_from_slice(&10_000u32.to_le_bytes());
        cases.push((beyond, WavError::DataBeyondBody));
        let mut no_fmt = b"RIFF\0\0\0\0WAVEdata\x04\0\0\0abcd".to_vec();
        no_fmt.extend_from_slice(&[0; 4]);
        cases.push((no_fmt, WavError::Malformed));
        let mut adpcm = good.clone();
        adpcm[20..22].copy_from_slice(&2u16.to_le_bytes());
        cases.push((adpcm, WavError::UnsupportedFormat));
        let mut align = good.clone();
        align[32..34].copy_from_slice(&3u16.to_le_bytes());
        cases.push((align, WavError::Inconsistent));
        let mut rate = good.clone();
        rate[28..32].copy_from_slice(&1u32.to_le_bytes());
        cases.push((rate, WavError::Inconsistent));
        let mut huge = b"RIFF\0\0\0\0WAVE".to_vec();
        huge.extend_from_slice(b"LIST");
        huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
        cases.push((huge, WavError::HeaderTooLarge));
        for (i, (src, want)) in cases.into_iter().enumerate() {
            assert_eq!(trim(&src, 0), Err(want), "case {i}");
        }
        // A body that ends before its samples (length unknown up front).
        let mut t = WavTrimmer::new(0, None);
        let mut out = Vec::new();
        t.push(&good[..100], &mut out).unwrap();
        assert_eq!(t.finish(&mut out), Err(WavError::Truncated));
        // After a failure nothing more is emitted.
        let mut t = WavTrimmer::new(0, None);
        let mut out = Vec::new();
        assert!(t.push(b"RIFX", &mut out).is_err());
        assert!(t.push(&good, &mut out).is_err());
        assert!(out.is_empty());
    }

    /// R7.5: the A-law and float formats get a `fact` chunk with the kept frame count.
    #[test]
    fn non_pcm_formats_get_a_fact_chunk() {
        let mut spec = pcm16(1, 8000, 80);
        spec.tag = FORMAT_ALAW;
        spec.bits = 8;
        let out = trim(&build(&spec), 5).unwrap();
        assert_eq!(&out[36..40], b"fact");
        assert_eq!(u32::from_le_bytes(out[44..48].try_into().unwrap()), 40);
        let (_, _, _, data) = read(&out);
        assert_eq!(data.len(), 40);
    }

    proptest! {
        /// R7.5: however the source is split into pieces, the trimmed file is the same as
        /// trimming it whole, and it holds exactly the frames from the cut on.
        #[test]
        fn piecewise_equals_whole(
            channels in 1u16..4,
            frames in 0u64..600,
            cut in 0u64..80,
            list in 0usize..9,
            splits in proptest::collection::vec(1usize..97, 1..40),
        ) {
            let mut spec = pcm16(channels, 8000, frames);
            spec.list_before = list;
            spec.list_after = list;
            let src = build(&spec);
            let whole = trim(&src, cut);
            let mut t = WavTrimmer::new(cut, Some(src.len() as u64));
            let mut out = Vec::new();
            let mut at = 0;
            let mut piecewise = Ok(());
            for n in splits.iter().cycle() {
                if at >= src.len() { break; }
                let end = (at + n).min(src.len());
                piecewise = t.push(&src[at..end], &mut out);
                if piecewise.is_err() { break; }
                at = end;
            }
            let piecewise = piecewise.and_then(|()| t.finish(&mut out)).map(|()| out);
            prop_assert_eq!(&piecewise, &whole);
            let skipped = cut * 8;
            if skipped <= frames {
                let (_, _, _, data) = read(&whole.unwrap());
                expect_samples(&data, channels, skipped, frames - skipped);
            } else {
                prop_assert_eq!(whole, Err(WavError::CutBeyondAudio));
            }
        }

        /// Arbitrary bytes never panic the trimmer.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), cut in 0u64..10) {
            let _ = trim(&body, cut);
            let mut with_header = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
            with_header.extend_from_slice(&body);
            let _ = trim(&with_header, cut);
        }
    }
}
