//! `RecordingCopier::copy_trimmed` against the emulator and the provider simulator (R7.5):
//! pattern WAV files (mono, stereo, extensible with `LIST` chunks, unknown data size) cut
//! at a consent answer while they stream, read back with the AWS SDK and parsed here by
//! hand (and by Python's `wave` module) independently of the trimmer; hostile files that
//! must store nothing. A raw TCP server serves what the simulator does not (other content
//! types, chunked bodies, broken headers).
//!
//! trace-level: component

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::ResponseChecksumValidation;
use harness::simulator::recordings::{pattern_sample, PatternWav, WavLayout, CALL_SAMPLE_RATE};
use harness::simulator::{SimConfig, Simulator};
use harness::stack::Stack;
use sha2::{Digest, Sha256};
use shared::adapters::recordings::{CopyError, FetchPolicy, RecordingCopier};
use shared::domain::wav::WavError;
use shared::ports::Retry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PART: usize = 5 * 1024 * 1024;

struct Fixture {
    stack: Stack,
    sim: Simulator,
    s3: aws_sdk_s3::Client,
}

impl Fixture {
    async fn start() -> Self {
        let stack = Stack::isolated()
            .await
            .expect("provision a stack (is moto running?)");
        let sim = Simulator::start(SimConfig::new("trim-test-key"))
            .await
            .expect("start the simulator");
        let s3 = harness::s3_client(&stack.aws);
        Self { stack, sim, s3 }
    }

    fn copier(&self) -> RecordingCopier {
        let policy = FetchPolicy {
            allow_loopback_http: true,
            idle_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(300),
            ..FetchPolicy::new(Vec::new())
        };
        RecordingCopier::new(
            policy,
            self.s3.clone(),
            self.stack.bucket("RecordingsBucket").to_owned(),
            self.stack.keys["DataKey"].1.clone(),
        )
        .expect("build the copier")
        .with_part_size(PART)
    }

    /// The stored object, downloaded with the SDK (response checksums off: moto reports a
    /// multipart object's composite CRC32 without S3's `-<parts>` suffix).
    async fn download(&self, key: &str) -> Vec<u8> {
        let conf = aws_sdk_s3::config::Builder::from(&self.stack.aws)
            .force_path_style(true)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
            .get_object()
            .bucket(self.stack.bucket("RecordingsBucket"))
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    async fn assert_nothing_stored(&self) {
        let bucket = self.stack.bucket("RecordingsBucket");
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.versions().len() + out.delete_markers().len(),
            0,
            "no object version may stay"
        );
        let uploads = self
            .s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(uploads.uploads().len(), 0, "no multipart upload may stay");
    }
}

/// A WAV file read by hand: the `fmt ` fields and the sample bytes, every chunk walked.
#[derive(Debug)]
struct Parsed {
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    byte_rate: u32,
    block_align: u16,
    bits: u16,
    chunk_ids: Vec<String>,
    data: Vec<u8>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_wav(w: &[u8]) -> Parsed {
    assert_eq!(&w[..4], b"RIFF");
    assert_eq!(le32(w, 4) as usize, w.len() - 8, "RIFF size is the file's");
    assert_eq!(&w[8..12], b"WAVE");
    let mut at = 12;
    let mut p = Parsed {
        format_tag: 0,
        channels: 0,
        sample_rate: 0,
        byte_rate: 0,
        block_align: 0,
        bits: 0,
        chunk_ids: Vec::new(),
        data: Vec::new(),
    };
    while at < w.len() {
        let id = String::from_utf8_lossy(&w[at..at + 4]).into_owned();
        let size = le32(w, at + 4) as usize;
        let body = &w[at + 8..at + 8 + size];
        match id.as_str() {
            "fmt " => {
                p.format_tag = le16(body, 0);
                p.channels = le16(body, 2);
                p.sample_rate = le32(body, 4);
                p.byte_rate = le32(body, 8);
                p.block_align = le16(body, 12);
                p.bits = le16(body, 14);
            }
            "data" => p.data = body.to_vec(),
            _ => {}
        }
        p.chunk_ids.push(id);
        at += 8 + size + (size & 1);
    }
    assert_eq!(at, w.len(), "chunks fill the file exactly");
    p
}

/// Asserts the stored samples are the source's from frame `first` on, frame by frame, and
/// that the frame just before the cut is not among them at the start.
fn assert_frames_from(p: &Parsed, source: &PatternWav, first: u64) {
    let channels = u64::from(source.channels);
    let frame_bytes = 2 * channels as usize;
    assert_eq!(
        p.data.len() as u64,
        (source.frames - first) * 2 * channels,
        "exactly the frames from the cut to the end"
    );
    for (k, frame) in p.data.chunks(frame_bytes).enumerate() {
        for c in 0..source.channels {
            let at = 2 * usize::from(c);
            let got = i16::from_le_bytes([frame[at], frame[at + 1]]);
            let want = pattern_sample(first + k as u64, c);
            assert_eq!(got, want, "frame {} channel {c}", first + k as u64);
        }
    }
    if first > 0 {
        let before: Vec<u8> = (0..source.channels)
            .flat_map(|c| pattern_sample(first - 1, c).to_le_bytes())
            .collect();
        assert_ne!(
            &p.data[..frame_bytes],
            &before[..],
            "the frame before the cut"
        );
    }
}

/// Reads `wav` with Python's `wave` module: channels, width, rate, frames and the first
/// frame's bytes (hex).
fn python_wave(wav: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("trim-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stored.wav");
    std::fs::write(&path, wav).unwrap();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, wave\nw = wave.open(sys.argv[1], 'rb')\nprint(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes(), w.readframes(1).hex())",
        ])
        .arg(&path)
        .output()
        .expect("run python");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn frame_hex(frame: u64, channels: u16) -> String {
    (0..channels)
        .flat_map(|c| pattern_sample(frame, c).to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// R7.5: mono and stereo recordings, canonical, `WAVE_FORMAT_EXTENSIBLE` with odd-sized
/// `LIST` chunks before and after the samples, or with an unknown (0xFFFFFFFF) data size,
/// are stored from the cut on: the stored file, downloaded with the SDK and parsed by hand,
/// holds exactly the source's frames from `cut_ms × rate / 1000` on (every sample compared,
/// the frame before the cut absent), no `LIST` chunk, and header fields (format, channels,
/// rate, byte rate, block align, bits, sizes) that describe it; Python's `wave` module
/// reads the canonical ones with the same frame count and first frame. Size and SHA-256
/// reported are those of the stored file.
#[tokio::test]
async fn mono_and_stereo_wavs_are_stored_from_the_cut_on_frame_exact() {
    let f = Fixture::start().await;
    let copier = f.copier();
    let cut_ms = 4_321;
    let cut_frames = cut_ms * u64::from(CALL_SAMPLE_RATE) / 1000; // 34_568
    for channels in [1u16, 2] {
        for layout in [
            WavLayout::Canonical,
            WavLayout::ExtensibleWithList,
            WavLayout::UnknownSize,
        ] {
            let source = PatternWav::of_ms(channels, 12_000).with_layout(layout);
            let key = format!("recordings/trim/{channels}-{layout:?}.audio");
            let report = copier
                .copy_trimmed(&f.sim.pattern_url(&source), &key, cut_ms)
                .await
                .unwrap_or_else(|e| panic!("{channels} {layout:?}: {e}"));
            let stored = f.download(&key).await;
            assert_eq!(report.bytes, stored.len() as u64);
            assert_eq!(report.sha256_hex, hex::encode(Sha256::digest(&stored)));
            assert_eq!(report.content_type.as_deref(), Some("audio/wav"));
            let p = parse_wav(&stored);
            let extensible = layout == WavLayout::ExtensibleWithList;
            assert_eq!(p.format_tag, if extensible { 0xFFFE } else { 1 });
            assert_eq!(p.channels, channels);
            assert_eq!(p.sample_rate, CALL_SAMPLE_RATE);
            assert_eq!(p.block_align, 2 * channels);
            assert_eq!(p.byte_rate, CALL_SAMPLE_RATE * 2 * u32::from(channels));
            assert_eq!(p.bits, 16);
            assert_eq!(p.chunk_ids, ["fmt ", "data"], "{layout:?}: no LIST chunk");
            assert_frames_from(&p, &source, cut_frames);
            if !extensible {
                assert_eq!(
                    python_wave(&stored),
                    format!(
                        "{channels} 2 8000 {} {}",
                        source.frames - cut_frames,
                        frame_hex(cut_frames, channels)
                    )
                );
            }
        }
    }
}

/// R7.5, R2.7: a 60 MB stereo recording cut at one minute streams through the trimmer in
/// 5 MiB parts (multipart upload, none left open): the stored file's length and SHA-256
/// equal those of the expected file built from the pattern (a canonical header and the
/// frames from the cut on), and its first frames are those at the cut.
#[tokio::test]
async fn a_large_stereo_recording_is_trimmed_while_it_streams_in_parts() {
    let f = Fixture::start().await;
    let source = PatternWav::of_bytes(2, 60_000_000);
    let cut_ms = 60_000;
    let key = "recordings/trim/large.audio";
    let report = f
        .copier()
        .copy_trimmed(&f.sim.pattern_url(&source), key, cut_ms)
        .await
        .unwrap();
    let (want_sha, want_len) = source.trimmed_sha256(cut_ms);
    assert_eq!(
        (report.sha256_hex.clone(), report.bytes),
        (want_sha, want_len)
    );
    assert!(report.parts > 1, "multipart: {} parts", report.parts);
    let stored = f.download(key).await;
    assert_eq!(hex::encode(Sha256::digest(&stored)), report.sha256_hex);
    let cut_frames = source.frames_before(cut_ms);
    assert_eq!(le32(&stored, 40) as u64, (source.frames - cut_frames) * 4);
    for k in 0..100u64 {
        let at = 44 + 4 * k as usize;
        assert_eq!(
            i16::from_le_bytes([stored[at], stored[at + 1]]),
            pattern_sample(cut_frames + k, 0)
        );
        assert_eq!(
            i16::from_le_bytes([stored[at + 2], stored[at + 3]]),
            pattern_sample(cut_frames + k, 1)
        );
    }
    f.assert_nothing_stored_but(key).await;
}

impl Fixture {
    /// Only `key` is stored (one version), and no multipart upload is open.
    async fn assert_nothing_stored_but(&self, key: &str) {
        let bucket = self.stack.bucket("RecordingsBucket");
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = out.versions().iter().filter_map(|v| v.key()).collect();
        assert_eq!(keys, [key]);
        let uploads = self
            .s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(uploads.uploads().len(), 0);
    }
}

/// Whether a copy failed the expected way.
type Expected = fn(&CopyError) -> bool;

/// Generates body bytes from an offset.
type Body = Arc<dyn Fn(u64, &mut [u8]) + Send + Sync>;

/// What the raw server answers: `len` bytes of `body` as `content_type`, with a
/// `Content-Length` or chunked.
#[derive(Clone)]
struct Source {
    content_type: &'static str,
    chunked: bool,
    len: u64,
    body: Body,
}

async fn raw_server(source: Source) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(answer(socket, source.clone()));
        }
    });
    format!("http://{addr}/recording.wav")
}

async fn answer(mut socket: tokio::net::TcpStream, s: Source) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let framing = if s.chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", s.len)
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\n{framing}\r\nConnection: close\r\n\r\n",
        s.content_type
    );
    socket.write_all(head.as_bytes()).await?;
    let mut offset = 0;
    while offset < s.len {
        let mut piece = vec![0u8; (s.len - offset).min(64 * 1024) as usize];
        (s.body)(offset, &mut piece);
        if s.chunked {
            socket
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
        }
        socket.write_all(&piece).await?;
        if s.chunked {
            socket.write_all(b"\r\n").await?;
        }
        offset += piece.len() as u64;
    }
    if s.chunked {
        socket.write_all(b"0\r\n\r\n").await?;
    }
    socket.shutdown().await
}

/// `wav`'s bytes, with `edit` applied to its header (the first 44 bytes).
fn edited(wav: PatternWav, edit: impl Fn(&mut [u8]) + Send + Sync + 'static) -> Body {
    Arc::new(move |offset, buf| {
        wav.fill(offset, buf);
        let mut header = [0u8; 44];
        wav.fill(0, &mut header);
        edit(&mut header);
        for (i, b) in buf.iter_mut().enumerate() {
            let pos = offset + i as u64;
            if pos < 44 {
                *b = header[pos as usize];
            }
        }
    })
}

/// R7.5: hostile or unusable recordings store nothing (no object version, no open
/// multipart upload) and fail for good, without a retry: a non-WAV content type, bytes
/// that are not RIFF/WAVE, a truncated header, a data size beyond the body, a compressed
/// (ADPCM) format, a block align that splits frames, an unknown data size without a
/// length, a body that ends (chunked, after several parts) before its declared samples,
/// and a cut beyond the end of the audio.
#[tokio::test]
async fn hostile_wavs_store_nothing_and_fail_for_good() {
    let f = Fixture::start().await;
    let copier = f.copier();
    let small = PatternWav::of_ms(1, 2_000);
    let pattern = |wav: PatternWav| -> Body { Arc::new(move |o, b| wav.fill(o, b)) };
    let junk: Body = Arc::new(|o, b| {
        for (i, x) in b.iter_mut().enumerate() {
            *x = ((o + i as u64) * 7) as u8;
        }
    });
    let source = |content_type, chunked, len, body| Source {
        content_type,
        chunked,
        len,
        body,
    };
    let cases: Vec<(&str, Source, Expected)> = vec![
        (
            "mp3 content type",
            source("audio/mpeg", false, small.len(), pattern(small)),
            |e| matches!(e, CopyError::NotWav),
        ),
        (
            "not RIFF",
            source("application/octet-stream", false, 4096, junk.clone()),
            |e| matches!(e, CopyError::Wav(WavError::NotWav)),
        ),
        (
            "truncated header",
            source("audio/wav", false, 30, pattern(small)),
            |e| matches!(e, CopyError::Wav(WavError::Truncated)),
        ),
        (
            "data size beyond the body",
            source(
                "audio/wav",
                false,
                small.len(),
                edited(small, |h| {
                    h[40..44].copy_from_slice(&9_000_000u32.to_le_bytes())
                }),
            ),
            |e| matches!(e, CopyError::Wav(WavError::DataBeyondBody)),
        ),
        (
            "adpcm",
            source(
                "audio/wav",
                false,
                small.len(),
                edited(small, |h| h[20..22].copy_from_slice(&2u16.to_le_bytes())),
            ),
            |e| matches!(e, CopyError::Wav(WavError::UnsupportedFormat)),
        ),
        (
            "block align splits frames",
            source(
                "audio/wav",
                false,
                small.len(),
                edited(small, |h| h[32..34].copy_from_slice(&3u16.to_le_bytes())),
            ),
            |e| matches!(e, CopyError::Wav(WavError::Inconsistent)),
        ),
        (
            "unknown size, no length",
            source(
                "audio/wav",
                true,
                small.len(),
                pattern(small.with_layout(WavLayout::UnknownSize)),
            ),
            |e| matches!(e, CopyError::Wav(WavError::UnknownLength)),
        ),
        (
            "ends before its samples, after several parts",
            source(
                "audio/wav",
                true,
                12_000_000,
                pattern(PatternWav::of_bytes(1, 16_000_000)),
            ),
            |e| matches!(e, CopyError::Wav(WavError::Truncated)),
        ),
    ];
    for (name, source, expected) in cases {
        let url = raw_server(source).await;
        let err = copier
            .copy_trimmed(&url, &format!("recordings/hostile/{name}"), 1_000)
            .await
            .expect_err(name);
        assert!(expected(&err), "{name}: {err:?}");
        assert_eq!(err.retry(), Retry::Permanent, "{name}");
        f.assert_nothing_stored().await;
    }
    // A cut beyond the end of the audio (the simulator's pattern file of 2 s, cut at 3 s).
    let err = copier
        .copy_trimmed(&f.sim.pattern_url(&small), "recordings/hostile/late", 3_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CopyError::Wav(WavError::CutBeyondAudio)),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Permanent);
    f.assert_nothing_stored().await;
}
