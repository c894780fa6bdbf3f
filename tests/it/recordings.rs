//! `RecordingCopier` against the emulator and the provider simulator: single and multipart
//! writes under SSE-KMS, the fetch policy (scheme, hosts, redirects), status codes, slow
//! and stalled sources, size limits, short streams, and clean-up of everything a failed
//! copy started. A few tests use a raw TCP server for responses the simulator cannot
//! produce (a body that breaks off, chunked bodies without a length, error bodies).
//!
//! trace-level: component

use std::time::{Duration, Instant};

use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::types::ServerSideEncryption;
use harness::logs::LogCapture;
use harness::simulator::recordings::{synthetic_fill, synthetic_sha256, PatternWav};
use harness::simulator::{Fault, Scenario, SimConfig, Simulator};
use harness::stack::Stack;
use sha2::{Digest, Sha256};
use shared::adapters::recordings::{
    CopyError, FetchPolicy, RecordingCopier, TimeoutKind, MIN_PART_SIZE,
};
use shared::ports::Retry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_KEY: &str = "recordings-test-key";
const LEAD: &str = "0192f3a4-0000-7000-8000-00000000beef";
/// 2026-11-28T10:00:00Z
const T0: u64 = 1_795_860_000_000;
const MIB: u64 = 1024 * 1024;
const PART: usize = 8 * 1024 * 1024;

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
        let sim = Simulator::start(SimConfig::new(API_KEY))
            .await
            .expect("start the simulator");
        let s3 = harness::s3_client(&stack.aws);
        Self { stack, sim, s3 }
    }

    fn bucket(&self) -> &str {
        self.stack.bucket("RecordingsBucket")
    }

    fn key_arn(&self) -> &str {
        &self.stack.keys["DataKey"].1
    }

    fn copier(&self, policy: FetchPolicy) -> RecordingCopier {
        RecordingCopier::new(
            policy,
            self.s3.clone(),
            self.bucket().to_owned(),
            self.key_arn().to_owned(),
        )
        .expect("build the copier")
    }

    /// Object versions and delete markers in the bucket.
    async fn versions(&self) -> usize {
        let out = self
            .s3
            .list_object_versions()
            .bucket(self.bucket())
            .send()
            .await
            .unwrap();
        out.versions().len() + out.delete_markers().len()
    }

    /// Multipart uploads still open in the bucket.
    async fn open_uploads(&self) -> usize {
        let out = self
            .s3
            .list_multipart_uploads()
            .bucket(self.bucket())
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }

    async fn assert_nothing_stored(&self) {
        assert_eq!(self.versions().await, 0, "no object version may stay");
        assert_eq!(self.open_uploads().await, 0, "no multipart upload may stay");
    }

    /// SHA-256 and length of the stored object, read back as a stream. The SDK's own
    /// response checksum check is off for this read: moto reports a multipart object's
    /// composite CRC32 without the `-<parts>` suffix S3 adds, so the SDK would take it for
    /// a whole-object checksum and fail; the SHA-256 compared here is the stronger check.
    async fn stored_sha256(&self, key: &str) -> (String, u64) {
        let conf = aws_sdk_s3::config::Builder::from(&self.stack.aws)
            .force_path_style(true)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let mut body = aws_sdk_s3::Client::from_conf(conf)
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .unwrap()
            .body;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            len += chunk.len() as u64;
            hasher.update(&chunk);
        }
        (hex::encode(hasher.finalize()), len)
    }
}

/// The production host list, plus loopback for the simulator; short timeouts for tests.
fn policy() -> FetchPolicy {
    FetchPolicy {
        allow_loopback_http: true,
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(120),
        ..FetchPolicy::new(vec![
            "*.retellai.com".to_owned(),
            "dxc03zgurdly9.cloudfront.net".to_owned(),
        ])
    }
}

fn key(name: &str) -> String {
    format!("recordings/{LEAD}/{name}.wav")
}

// ------------------------------------------------------------------- copies that work

/// R2.7, R5.2: a small recording is stored with one PutObject, SSE-KMS under the
/// customer key (as GetObject reports it), byte for byte, its size and SHA-256 reported,
/// no user metadata.
#[tokio::test]
async fn small_wav_is_stored_with_a_single_put_under_the_data_key() {
    let f = Fixture::start().await;
    let script = f.sim.script(Scenario::ConsentYes, f.sim.params(LEAD, T0));
    let url = script.recording_url().unwrap();
    let wav = PatternWav::of_ms(1, script.duration_ms()).bytes();

    let report = f.copier(policy()).copy(&url, &key("wav")).await.unwrap();

    assert_eq!(report.bytes, wav.len() as u64);
    assert_eq!(report.parts, 1);
    assert_eq!(report.sha256_hex, hex::encode(Sha256::digest(&wav)));
    assert_eq!(report.content_type.as_deref(), Some("audio/wav"));
    let stored =
        f.s3.get_object()
            .bucket(f.bucket())
            .key(key("wav"))
            .send()
            .await
            .unwrap();
    assert_eq!(
        stored.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(stored.ssekms_key_id(), Some(f.key_arn()));
    assert_eq!(stored.content_type(), Some("audio/wav"));
    assert!(
        stored.metadata().is_none_or(|m| m.is_empty()),
        "no user metadata on recordings"
    );
    assert_eq!(stored.version_id(), report.version_id.as_deref());
    let bytes = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], &wav[..]);
    assert_eq!(f.open_uploads().await, 0);
}

/// R2.7, R5.2: a 40 MB recording is downloaded once and written in 8 MiB multipart parts,
/// SSE-KMS under the customer key (HeadObject), and reads back with the same length and
/// SHA-256; no multipart upload is left open.
#[tokio::test]
async fn forty_megabytes_stream_in_parts_and_read_back_intact() {
    let f = Fixture::start().await;
    let len = 40_000_000u64;
    let url = f.sim.synthetic_url(len);

    let report = f
        .copier(policy())
        .with_part_size(PART)
        .copy(&url, &key("big"))
        .await
        .unwrap();

    assert_eq!(report.bytes, len);
    assert_eq!(report.parts, len.div_ceil(PART as u64) as usize); // 5
    assert_eq!(report.sha256_hex, synthetic_sha256(len));
    let head =
        f.s3.head_object()
            .bucket(f.bucket())
            .key(key("big"))
            .send()
            .await
            .unwrap();
    assert_eq!(head.content_length(), Some(len as i64));
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(f.key_arn()));
    assert_eq!(
        f.stored_sha256(&key("big")).await,
        (synthetic_sha256(len), len)
    );
    assert_eq!(f.sim.downloads(&url), 1);
    assert_eq!(f.open_uploads().await, 0);
}

#[tokio::test]
async fn part_boundaries_decide_between_single_put_and_multipart() {
    let f = Fixture::start().await;
    let part = MIN_PART_SIZE as u64;
    let copier = f.copier(policy()).with_part_size(MIN_PART_SIZE);
    for (len, parts) in [(part - 1, 1), (part, 1), (part + 1, 2), (2 * part, 2)] {
        let name = format!("boundary-{len}");
        let report = copier
            .copy(&f.sim.synthetic_url(len), &key(&name))
            .await
            .unwrap();
        assert_eq!((report.bytes, report.parts), (len, parts), "{len} bytes");
        assert_eq!(
            f.stored_sha256(&key(&name)).await,
            (synthetic_sha256(len), len)
        );
    }
}

#[tokio::test]
async fn a_chunked_body_without_length_is_cut_into_parts() {
    let f = Fixture::start().await;
    let len = 12 * MIB;
    let url = raw_server(Reply::Chunked { sent: len }).await;

    let report = f
        .copier(policy())
        .with_part_size(MIN_PART_SIZE)
        .copy(&url, &key("chunked"))
        .await
        .unwrap();

    assert_eq!((report.bytes, report.parts), (len, 3));
    assert_eq!(report.sha256_hex, synthetic_sha256(len));
    assert_eq!(report.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(
        f.stored_sha256(&key("chunked")).await,
        (synthetic_sha256(len), len)
    );
}

#[tokio::test]
async fn a_redirect_within_the_allow_list_is_followed_up_to_three_hops() {
    let f = Fixture::start().await;
    let hops: Vec<String> = (1001..=1004).map(|n| f.sim.synthetic_url(n)).collect();
    for pair in hops.windows(2) {
        f.sim.set_fault(
            &pair[0],
            Fault::Redirect {
                location: pair[1].clone(),
                status: 302,
            },
        );
    }

    let report = f
        .copier(policy())
        .copy(&hops[0], &key("hops"))
        .await
        .unwrap();

    assert_eq!(report.bytes, 1004);
    assert_eq!(report.sha256_hex, synthetic_sha256(1004));
}

// ------------------------------------------------------------------- the fetch policy

#[tokio::test]
async fn plain_http_is_refused_unless_loopback_is_allowed() {
    let f = Fixture::start().await;
    let url = f.sim.synthetic_url(4096);
    let strict = FetchPolicy {
        allow_loopback_http: false,
        ..policy()
    };

    let err = f.copier(strict).copy(&url, &key("http")).await.unwrap_err();

    assert!(matches!(err, CopyError::NotAllowed), "{err:?}");
    assert_eq!(err.retry(), Retry::Permanent);
    assert_eq!(f.sim.downloads(&url), 0, "no request may reach the source");
    f.assert_nothing_stored().await;
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_refused_without_a_request() {
    let f = Fixture::start().await;
    let port = f.sim.addr().port();
    let copier = f.copier(policy());
    for url in [
        // Resolves to the simulator, but the name is not on the list.
        format!("http://localhost:{port}/recordings/synthetic/4096"),
        format!("https://localhost:{port}/recordings/synthetic/4096"),
        "https://recordings.evil.example/recordings/synthetic/4096".to_owned(),
        "https://retellai.com.evil.example/recordings/synthetic/4096".to_owned(),
        format!("http://user:pw@127.0.0.1:{port}/recordings/synthetic/4096"),
    ] {
        let err = copier.copy(&url, &key("host")).await.unwrap_err();
        assert!(matches!(err, CopyError::NotAllowed), "{err:?}");
    }
    assert_eq!(f.sim.downloads("/recordings/synthetic/4096"), 0);
    f.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_redirect_to_a_host_off_the_list_is_refused_before_it_is_followed() {
    let f = Fixture::start().await;
    let port = f.sim.addr().port();
    let start = f.sim.synthetic_url(2001);
    let copier = f.copier(policy());
    for (target, status) in [
        (
            format!("http://localhost:{port}/recordings/synthetic/2002"),
            302,
        ),
        (
            format!("http://localhost:{port}/recordings/synthetic/2002"),
            307,
        ),
        ("https://recordings.evil.example/x.wav".to_owned(), 301),
    ] {
        f.sim.set_fault(
            &start,
            Fault::Redirect {
                location: target,
                status,
            },
        );
        let err = copier.copy(&start, &key("redirect")).await.unwrap_err();
        assert!(matches!(err, CopyError::NotAllowed), "{err:?}");
        assert_eq!(err.retry(), Retry::Permanent);
    }
    assert_eq!(f.sim.downloads(&start), 3);
    assert_eq!(f.sim.downloads("/recordings/synthetic/2002"), 0);
    f.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_fourth_redirect_is_refused() {
    let f = Fixture::start().await;
    let hops: Vec<String> = (3001..=3005).map(|n| f.sim.synthetic_url(n)).collect();
    for pair in hops.windows(2) {
        f.sim.set_fault(
            &pair[0],
            Fault::Redirect {
                location: pair[1].clone(),
                status: 301,
            },
        );
    }

    let err = f
        .copier(policy())
        .copy(&hops[0], &key("loop"))
        .await
        .unwrap_err();

    assert!(matches!(err, CopyError::TooManyRedirects), "{err:?}");
    assert_eq!(err.retry(), Retry::Permanent);
    assert_eq!(f.sim.downloads(&hops[4]), 0);
    f.assert_nothing_stored().await;
}

// ------------------------------------------------------------------- status codes

#[tokio::test]
async fn gone_and_forbidden_sources_are_permanent_failures() {
    let f = Fixture::start().await;
    let copier = f.copier(policy());
    let cases = [
        (Fault::NotFound, 404),
        (Fault::Status(403), 403),
        (Fault::Status(410), 410),
        (
            Fault::ExpiresAt {
                at_ms: f.sim.now_ms() - 1,
                status: 403,
            },
            403,
        ),
    ];
    for (i, (fault, status)) in cases.into_iter().enumerate() {
        let url = f.sim.synthetic_url(5000 + i as u64);
        f.sim.set_fault(&url, fault);
        let err = copier.copy(&url, &key("gone")).await.unwrap_err();
        assert!(matches!(err, CopyError::Http(s) if s == status), "{err:?}");
        assert_eq!(err.retry(), Retry::Permanent, "{status}");
    }
    f.assert_nothing_stored().await;
}

#[tokio::test]
async fn server_errors_and_throttling_are_transient() {
    let f = Fixture::start().await;
    let copier = f.copier(policy());
    for status in [500, 503, 429] {
        let url = f.sim.synthetic_url(6000 + status);
        f.sim.set_fault(&url, Fault::Status(status as u16));
        let err = copier.copy(&url, &key("flaky")).await.unwrap_err();
        assert!(
            matches!(err, CopyError::Http(s) if u64::from(s) == status),
            "{err:?}"
        );
        assert_eq!(err.retry(), Retry::Transient);
    }
    f.assert_nothing_stored().await;
}

// ------------------------------------------------------------------- timeouts

#[tokio::test]
async fn headers_that_never_come_time_out() {
    let f = Fixture::start().await;
    let url = f.sim.synthetic_url(4096);
    f.sim
        .set_fault(&url, Fault::DelayBeforeHeaders(Duration::from_secs(5)));
    let quick = FetchPolicy {
        idle_timeout: Duration::from_millis(500),
        ..policy()
    };

    let started = Instant::now();
    let err = f.copier(quick).copy(&url, &key("slow")).await.unwrap_err();

    assert!(
        matches!(err, CopyError::Timeout(TimeoutKind::Headers)),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Transient);
    assert!(started.elapsed() < Duration::from_secs(3));
    f.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_stalled_body_times_out_and_the_multipart_upload_is_aborted() {
    let f = Fixture::start().await;
    let len = 40_000_000u64;
    let url = f.sim.synthetic_url(len);
    // Two parts are written before the source stops sending. The pause is far longer
    // than the idle timeout, and than writing the parts takes on a loaded machine (the
    // other tests of this binary run beside it): only the idle timeout can end the copy
    // before the source resumes.
    let pause = Duration::from_secs(15);
    f.sim.set_fault(
        &url,
        Fault::StallBody {
            after_bytes: 20_000_000,
            pause,
        },
    );
    let quick = FetchPolicy {
        idle_timeout: Duration::from_secs(1),
        ..policy()
    };

    let started = Instant::now();
    let err = f
        .copier(quick)
        .with_part_size(PART)
        .copy(&url, &key("stall"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, CopyError::Timeout(TimeoutKind::Idle)),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Transient);
    assert!(
        started.elapsed() < pause,
        "ended by the idle timeout, not by the source resuming"
    );
    f.assert_nothing_stored().await;
}

#[tokio::test]
async fn the_total_time_limit_ends_a_slow_copy() {
    let f = Fixture::start().await;
    let url = f.sim.synthetic_url(2 * MIB);
    f.sim.set_fault(
        &url,
        Fault::StallBody {
            after_bytes: MIB,
            pause: Duration::from_secs(5),
        },
    );
    let limited = FetchPolicy {
        idle_timeout: Duration::from_secs(30),
        total_timeout: Duration::from_millis(1500),
        ..policy()
    };

    let started = Instant::now();
    let err = f
        .copier(limited)
        .copy(&url, &key("total"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, CopyError::Timeout(TimeoutKind::Total)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    f.assert_nothing_stored().await;
}

// ------------------------------------------------------------------- sizes

/// R2.7: a Content-Length over the size limit is refused for good before the body is
/// read (under 16 MiB of a 1 GiB source generated), and nothing is stored.
#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_before_the_body_is_read() {
    let f = Fixture::start().await;
    let url = f.sim.synthetic_url(1024 * MIB);
    let small = FetchPolicy {
        max_bytes: 64 * MIB,
        ..policy()
    };

    let err = f.copier(small).copy(&url, &key("huge")).await.unwrap_err();

    assert!(
        matches!(err, CopyError::TooLarge { limit } if limit == 64 * MIB),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Permanent);
    // Only what socket buffers took before the connection was dropped (64 KiB chunks):
    // far below the limit, which reading until the limit was passed would have exceeded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = f.sim.chunks_served(&url) * 64 * 1024;
    assert!(served < 16 * MIB, "{served} bytes were generated");
    f.assert_nothing_stored().await;
}

/// R2.7: a body without a length is stopped once it passes the size limit, and nothing
/// (no object, no open upload) is stored.
#[tokio::test]
async fn a_body_without_length_is_stopped_past_the_limit() {
    let f = Fixture::start().await;
    let url = raw_server(Reply::Chunked { sent: 12 * MIB }).await;
    let small = FetchPolicy {
        max_bytes: 7 * MIB,
        ..policy()
    };

    let err = f
        .copier(small)
        .with_part_size(MIN_PART_SIZE)
        .copy(&url, &key("unbounded"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, CopyError::TooLarge { limit } if limit == 7 * MIB),
        "{err:?}"
    );
    f.assert_nothing_stored().await;
}

/// R2.7: a body shorter than its Content-Length (below one part, and after two parts)
/// is a size mismatch, retryable, and nothing is kept.
#[tokio::test]
async fn a_stream_that_ends_early_is_a_size_mismatch_and_nothing_is_kept() {
    let f = Fixture::start().await;
    let copier = f.copier(policy()).with_part_size(MIN_PART_SIZE);
    // Below one part (the single put never happens), and after two parts were written.
    for (announced, sent) in [(100_000, 50_000), (20 * MIB, 12 * MIB)] {
        let url = raw_server(Reply::Length { announced, sent }).await;
        let err = copier.copy(&url, &key("short")).await.unwrap_err();
        assert!(
            matches!(err, CopyError::SizeMismatch { expected, received }
                if (expected, received) == (announced, sent)),
            "{err:?}"
        );
        assert_eq!(err.retry(), Retry::Transient);
        f.assert_nothing_stored().await;
    }
}

/// R2.7: the copy streams, never buffering the recording whole: while S3 holds the first
/// part's upload (a proxy in front of the emulator delays its answer), the copier has read
/// less than a third of a 100 MiB source (one 5 MiB part plus socket buffers); the copy
/// then ends without an open upload.
#[tokio::test]
async fn while_a_part_upload_hangs_the_source_is_not_read_ahead() {
    use harness::faults::{Fault as ProxyFault, Proxy, Upstream};
    let f = Fixture::start().await;
    let proxy = Proxy::start(&harness::endpoint(), Upstream::Aws, Duration::from_secs(6))
        .await
        .unwrap();
    let conf = aws_sdk_s3::config::Builder::from(&f.stack.aws)
        .endpoint_url(proxy.url())
        .force_path_style(true)
        .build();
    let copier = RecordingCopier::new(
        policy(),
        aws_sdk_s3::Client::from_conf(conf),
        f.bucket().to_owned(),
        f.key_arn().to_owned(),
    )
    .unwrap()
    .with_part_size(MIN_PART_SIZE);
    let len = 100 * MIB;
    let url = f.sim.synthetic_url(len);
    // 1: CreateMultipartUpload, 2: the first UploadPart, held for 6 s.
    proxy.arm(2, ProxyFault::Timeout);
    let source = url.clone();
    let copy = tokio::spawn(async move { copier.copy(&source, &key("bounded")).await });
    let started = Instant::now();
    while proxy.injected().is_none() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let injected = proxy.injected();
    assert!(
        injected.as_deref().is_some_and(|l| l.starts_with("s3:")),
        "the part upload is held: {injected:?}"
    );
    // Time for any read-ahead to happen while the upload hangs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let read = f.sim.chunks_served(&url) * 64 * 1024;
    assert!(
        read >= MIN_PART_SIZE as u64,
        "the first part was read: {read}"
    );
    assert!(
        read < len / 3,
        "{read} of {len} bytes read while the upload hung"
    );
    // The held upload is retried after the hang (or the copy fails and aborts it).
    let _ = copy.await.unwrap();
    assert_eq!(f.open_uploads().await, 0);
}

// ------------------------------------------------------------------- logs and errors

/// The simulator runs on its own runtime (other threads), so only the copier's logs are
/// captured: the simulator logs request paths, which is fine for a dev tool.
#[test]
fn logs_and_errors_carry_no_url_query_key_or_body() {
    let sim_runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = sim_runtime
        .block_on(Simulator::start(SimConfig::new(API_KEY)))
        .unwrap();
    let raw_runtime = tokio::runtime::Runtime::new().unwrap();
    let error_page = raw_runtime.block_on(raw_server(Reply::Error {
        status: 500,
        body: "Interner Fehler bei Wilhelmine Zwetschgenbaum",
    }));
    let (logs, _guard) = LogCapture::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let errors = runtime.block_on(async {
        let stack = Stack::isolated().await.unwrap();
        let copier = RecordingCopier::new(
            policy(),
            harness::s3_client(&stack.aws),
            stack.bucket("RecordingsBucket").to_owned(),
            stack.keys["DataKey"].1.clone(),
        )
        .unwrap();
        let signed = "?X-Amz-Signature=Geheimsignatur4711&X-Amz-Credential=Zugangsdaten0815";
        let key = "recordings/lead-geheimeid/call-geheimeid.wav";
        let ok = format!("{}{signed}", sim.synthetic_url(6 * MIB));
        copier
            .clone()
            .with_part_size(MIN_PART_SIZE)
            .copy(&ok, key)
            .await
            .unwrap();
        let gone = format!("{}{signed}", sim.synthetic_url(4242));
        sim.set_fault(&gone, Fault::NotFound);
        let redirected = format!("{}{signed}", sim.synthetic_url(4343));
        sim.set_fault(
            &redirected,
            Fault::Redirect {
                location: "https://umleitungsziel.example/Umleitungsgeheimnis".to_owned(),
                status: 302,
            },
        );
        let mut errors = Vec::new();
        for url in [
            gone,
            redirected,
            format!("https://fremder-host.example/pfad{signed}"),
            error_page,
        ] {
            errors.push(copier.copy(&url, key).await.unwrap_err());
        }
        errors
    });
    drop(sim);

    let secrets = [
        "Geheimsignatur4711",
        "Zugangsdaten0815",
        "geheimeid",
        "/recordings/synthetic",
        "Umleitungsgeheimnis",
        "umleitungsziel",
        "fremder-host",
        "Wilhelmine",
        "Zwetschgenbaum",
        "127.0.0.1",
    ];
    logs.assert_free_of(&secrets);
    for err in &errors {
        let mut text = format!("{err} {err:?}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        for secret in secrets {
            assert!(!text.contains(secret), "an error mentions {secret}: {text}");
        }
    }
    assert!(logs.text().contains("recording copied"));
}

// ------------------------------------------------------------------- a raw HTTP source

/// What the raw server answers.
#[derive(Clone, Copy)]
enum Reply {
    /// `Content-Length: announced`, then only `sent` bytes, then the connection closes.
    Length { announced: u64, sent: u64 },
    /// A chunked body of `sent` bytes, properly terminated, with no length.
    Chunked { sent: u64 },
    /// An error status with a text body.
    Error { status: u16, body: &'static str },
}

/// Serves `reply` (synthetic bytes) to every connection on 127.0.0.1; returns its URL.
async fn raw_server(reply: Reply) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(answer(socket, reply));
        }
    });
    format!("http://{addr}/recording.wav")
}

async fn answer(mut socket: tokio::net::TcpStream, reply: Reply) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    const CHUNK: u64 = 64 * 1024;
    match reply {
        Reply::Error { status, body } => {
            let head = format!(
                "HTTP/1.1 {status} Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(body.as_bytes()).await?;
        }
        Reply::Length { announced, sent } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
            );
            socket.write_all(head.as_bytes()).await?;
            let mut offset = 0;
            while offset < sent {
                let mut piece = vec![0u8; (sent - offset).min(CHUNK) as usize];
                synthetic_fill(offset, &mut piece);
                socket.write_all(&piece).await?;
                offset += piece.len() as u64;
            }
        }
        Reply::Chunked { sent } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            socket.write_all(head.as_bytes()).await?;
            let mut offset = 0;
            while offset < sent {
                let mut piece = vec![0u8; (sent - offset).min(CHUNK) as usize];
                synthetic_fill(offset, &mut piece);
                socket
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                socket.write_all(&piece).await?;
                socket.write_all(b"\r\n").await?;
                offset += piece.len() as u64;
            }
            socket.write_all(b"0\r\n\r\n").await?;
        }
    }
    socket.shutdown().await
}
