//! Copies a call recording from the provider's URL into the recordings bucket (R2.7).
//!
//! Why it looks the way it does:
//! - The recording URL is a capability (often a signed URL) that lives about ten minutes
//!   after the call, so the copy streams at once and never buffers the whole file: at
//!   most one S3 part (default 8 MiB) plus one network chunk is held in memory, whatever
//!   the size of the recording.
//! - The URL comes from outside, so it must pass a [`FetchPolicy`]: HTTPS only, hosts on
//!   an allow-list, no user info. Every redirect hop is checked the same way (at most
//!   three), no `Referer` is sent (it would hand the signed URL to the next host), no
//!   proxy is used, and host names that resolve to private, loopback or link-local
//!   addresses are refused, so an allowed name cannot be pointed at the inside.
//! - The object is written with SSE-KMS under the customer key and a bucket key (the
//!   bucket policy refuses anything else), with CRC32 checksums on every part; no
//!   metadata. Below one part it is a single `PutObject`, otherwise a multipart upload
//!   that is aborted on any failure, so no half object stays behind (and the bucket's
//!   lifecycle rule aborts uploads abandoned by a killed process after a day).
//! - Sizes are checked three times: a `Content-Length` above the limit is refused before
//!   the body is read, the bytes are counted while they stream (stopping past the limit
//!   and, when a length was announced, requiring exactly that many), and after the write
//!   `HeadObject` must report the same length and `aws:kms`; otherwise the new object
//!   version is deleted.
//! - Errors and log lines carry sizes, part counts, status codes and durations only: never
//!   the URL, its query string, the response body or the object key.
//! - The call's recording is stored from the consent answer on (R7.5, §201 StGB):
//!   [`RecordingCopier::copy_trimmed`] passes the body through a [`WavTrimmer`], which
//!   writes a new WAV header and the sample frames from the cut on while the body streams
//!   (memory stays one part plus one chunk). A source that is not a WAV file we can cut
//!   (another content type, a malformed or truncated header, a data size beyond the body,
//!   a compressed format) stores nothing and fails for good. The size and SHA-256 reported
//!   are those of the stored (trimmed) file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use domain::wav::{WavError, WavTrimmer};
use sha2::{Digest, Sha256};
use tokio::time::Instant as Deadline;

use usecases::ports::{Retry, StoreError};

/// Largest recording accepted by [`FetchPolicy::new`]: hours of audio, far below S3's limits.
pub const DEFAULT_MAX_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Default size of one S3 part, and so of the one buffer the copy holds.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3 refuses smaller parts (except the last one).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part [`RecordingCopier::with_part_size`] accepts: a part lives in memory.
pub const MAX_PART_SIZE: usize = 512 * 1024 * 1024;
/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 3;
/// S3's limit on the parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Time granted to clean-up calls (abort, delete), which run after the copy's own deadline.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Stored when the source names no usable content type.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// The content type of a trimmed recording.
const WAV_CONTENT_TYPE: &str = "audio/wav";
/// Source content types a trimmed copy accepts (besides none and `application/octet-stream`,
/// where the RIFF header decides).
const WAV_TYPES: &[&str] = &["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"];

/// Where recordings may be fetched from, and how long and how large a fetch may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Hosts recordings may come from, exact (`dxc03zgurdly9.cloudfront.net`) or a
    /// subdomain wildcard (`*.retellai.com`, which does not match `retellai.com` itself).
    pub allowed_hosts: Vec<String>,
    /// Also allow `http://127.0.0.1:<any port>` (local stack and tests only; set from
    /// configuration, never on in AWS).
    pub allow_loopback_http: bool,
    /// Recordings larger than this are refused (by `Content-Length` before the download,
    /// by counting during it).
    pub max_bytes: u64,
    /// Limit for establishing the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// A fetch that receives no byte for this long (headers or body) is abandoned.
    pub idle_timeout: Duration,
    /// Limit for the whole copy, upload included: the URL expires anyway.
    pub total_timeout: Duration,
}

impl FetchPolicy {
    /// A policy for `allowed_hosts` with the defaults: 2 GiB, 5 s to connect, 30 s idle,
    /// 10 min in total, no loopback.
    pub fn new(allowed_hosts: Vec<String>) -> Self {
        Self {
            allowed_hosts,
            allow_loopback_http: false,
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(10 * 60),
        }
    }

    /// Parses `url` and accepts it only when it may be fetched: `https` (or `http` to
    /// 127.0.0.1 when loopback is allowed), a host on the list, no user info. Any port.
    /// The refusal says nothing about the URL.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, CopyError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| CopyError::NotAllowed)?;
        if self.allows(&parsed) {
            Ok(parsed)
        } else {
            Err(CopyError::NotAllowed)
        }
    }

    /// Whether an already parsed URL (a first request or a redirect target) may be fetched.
    fn allows(&self, url: &reqwest::Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let loopback = self.allow_loopback_http && url.host_str() == Some("127.0.0.1");
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return false,
        }
        if loopback {
            return true;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        // `domain()` is `None` for IP literals: a wildcard never matches an address.
        let domain = url.domain();
        self.allowed_hosts.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => domain.is_some_and(|d| matches_suffix(d, suffix)),
                None => !pattern.is_empty() && host == pattern,
            }
        })
    }
}

/// `host` is a proper subdomain of `suffix`; a suffix of one label (`*.com`) matches nothing.
fn matches_suffix(host: &str, suffix: &str) -> bool {
    let valid = suffix.contains('.') && !suffix.starts_with('.') && !suffix.ends_with('.');
    valid
        && host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// What a finished copy wrote (the use cases' type).
pub use usecases::telephony::ports::CopyReport;

/// What a transfer was waiting for when its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// No connection within the connect timeout.
    Connect,
    /// The response headers did not arrive within the idle timeout.
    Headers,
    /// The body paused longer than the idle timeout.
    Idle,
    /// The whole copy took longer than the total timeout.
    Total,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "a connection",
            TimeoutKind::Headers => "response headers",
            TimeoutKind::Idle => "body data",
            TimeoutKind::Total => "the total time limit",
        })
    }
}

/// Which read-back check of the stored object failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// `HeadObject` reported another length (or none).
    Length,
    /// `HeadObject` did not report `aws:kms` under our key.
    Encryption,
}

/// Why a copy failed. Messages are fixed text and numbers: never a URL, key or body.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The URL, or a redirect target, is not allowed by the [`FetchPolicy`] (or its host
    /// resolves to a private address).
    #[error("recording URL not allowed by the fetch policy")]
    NotAllowed,
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("recording URL redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    /// The source answered something other than 200.
    #[error("recording source answered HTTP {0}")]
    Http(u16),
    /// Nothing arrived in time.
    #[error("recording transfer timed out waiting for {0}")]
    Timeout(TimeoutKind),
    /// Larger than [`FetchPolicy::max_bytes`] (or than S3's part limit allows).
    #[error("recording exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The body did not carry the announced `Content-Length` (ended early, or ran over).
    #[error("recording size mismatch: {received} bytes received, {expected} announced")]
    SizeMismatch {
        /// The announced length.
        expected: u64,
        /// Bytes received before the transfer stopped.
        received: u64,
    },
    /// Connecting or reading failed (the error carries no URL).
    #[error("recording download failed")]
    Network(#[source] reqwest::Error),
    /// An S3 call failed.
    #[error("recording storage failed")]
    Storage(#[from] StoreError),
    /// The stored object did not read back as written; it was deleted.
    #[error("stored recording failed verification ({0:?})")]
    Verification(Mismatch),
    /// The HTTP client could not be built (configuration, at start-up).
    #[error("recording HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    /// The source announced a content type that is not WAV: nothing was read.
    #[error("recording is not a WAV file (content type)")]
    NotWav,
    /// The body is not a WAV file we can cut at the consent answer (R7.5).
    #[error("recording cannot be trimmed: {0}")]
    Wav(#[from] WavError),
}

impl CopyError {
    /// Whether trying the same copy again could succeed: a gone or refused source, or a
    /// policy refusal, will not change; timeouts, network trouble, short streams, 429 and
    /// 5xx may.
    pub fn retry(&self) -> Retry {
        match self {
            CopyError::NotAllowed
            | CopyError::TooManyRedirects
            | CopyError::TooLarge { .. }
            | CopyError::Client(_)
            | CopyError::NotWav
            | CopyError::Wav(_)
            | CopyError::Verification(Mismatch::Encryption) => Retry::Permanent,
            CopyError::Http(status) => match status {
                408 | 425 | 429 | 500..=599 => Retry::Transient,
                _ => Retry::Permanent,
            },
            CopyError::Timeout(_)
            | CopyError::SizeMismatch { .. }
            | CopyError::Network(_)
            | CopyError::Verification(Mismatch::Length) => Retry::Transient,
            CopyError::Storage(e) => e.retry,
        }
    }
}

/// Why the redirect policy or the resolver stopped a request; found again in the error's
/// source chain to tell a refusal from a network failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotAllowed,
    TooManyRedirects,
    PrivateAddress,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NotAllowed => "redirect target not allowed",
            Refusal::TooManyRedirects => "too many redirects",
            Refusal::PrivateAddress => "host resolves to a non-public address",
        })
    }
}

impl std::error::Error for Refusal {}

/// Maps a request error: refusals by our redirect policy or resolver, the connect timeout,
/// else a network error with the URL stripped.
fn request_error(err: reqwest::Error) -> CopyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return match refusal {
                Refusal::TooManyRedirects => CopyError::TooManyRedirects,
                Refusal::NotAllowed | Refusal::PrivateAddress => CopyError::NotAllowed,
            };
        }
        source = e.source();
    }
    if err.is_connect() && err.is_timeout() {
        return CopyError::Timeout(TimeoutKind::Connect);
    }
    CopyError::Network(err.without_url())
}

/// Resolves host names with the system resolver and keeps public addresses only: an
/// allowed name must not lead to the function's own network (metadata services, VPC
/// hosts, the Lambda runtime API on loopback). IP literals do not pass through here; the
/// policy admits only those listed exactly, and 127.0.0.1 when loopback is allowed.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refusal::PrivateAddress) as Box<_>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is globally routable (not private, loopback, link-local, shared,
/// documentation, multicast or reserved).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds an IPv4 address)
                || v6 == Ipv6Addr::from(0u128))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Keeps a media type's essence when it is well formed (`audio/wav`), else nothing: the
/// header is stored on the object and must not carry arbitrary text.
fn media_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 64
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    (token(kind) && token(subtype)).then_some(essence)
}

/// Turns an S3 SDK failure into a [`StoreError`], logging only the operation and the code.
fn failure<E, R>(operation: &'static str, err: aws_sdk_s3::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::store_failure("s3", operation, err)
}

/// Runs an S3 call within the copy's deadline.
async fn within<T, E, R>(
    deadline: Deadline,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, aws_sdk_s3::error::SdkError<E, R>>>,
) -> Result<T, CopyError>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(failure(operation, e).into()),
        Err(_) => Err(CopyError::Timeout(TimeoutKind::Total)),
    }
}

/// Copies recordings from allowed URLs into one bucket under one KMS key. Cheap to clone;
/// build it once per cold start (it holds the connection pools).
#[derive(Clone)]
pub struct RecordingCopier {
    http: reqwest::Client,
    policy: Arc<FetchPolicy>,
    s3: aws_sdk_s3::Client,
    bucket: String,
    kms_key_arn: String,
    part_size: usize,
}

impl std::fmt::Debug for RecordingCopier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingCopier")
            .field("policy", &self.policy)
            .field("bucket", &self.bucket)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl RecordingCopier {
    /// A copier fetching under `policy` and writing to `bucket` with SSE-KMS under
    /// `kms_key_arn` (the bucket policy requires that exact key). Fails only when the HTTP
    /// client cannot be built.
    pub fn new(
        policy: FetchPolicy,
        s3: aws_sdk_s3::Client,
        bucket: String,
        kms_key_arn: String,
    ) -> Result<Self, CopyError> {
        let policy = Arc::new(policy);
        let hops = Arc::clone(&policy);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` holds the original URL and every target followed so far.
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(Refusal::TooManyRedirects)
            } else if hops.allows(attempt.url()) {
                attempt.follow()
            } else {
                attempt.error(Refusal::NotAllowed)
            }
        });
        let http = reqwest::Client::builder()
            .redirect(redirects)
            // The Referer would carry the signed URL (query included) to the next host.
            .referer(false)
            // The allow-list must be the only way out, and no proxy should see the URL.
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnlyResolver))
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("polly-recordings/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CopyError::Client)?;
        Ok(Self {
            http,
            policy,
            s3,
            bucket,
            kms_key_arn,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Sets the S3 part size, which is also the memory one copy holds; kept between
    /// [`MIN_PART_SIZE`] (S3's minimum for all but the last part) and [`MAX_PART_SIZE`].
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        self
    }

    /// The policy URLs are checked against.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Streams `url` into `key` (no personal data in keys) and reads the result back.
    /// Never holds more than one part (plus one network chunk) in memory. On failure
    /// nothing stays in the bucket: multipart uploads are aborted, single writes happen
    /// only after the whole body arrived intact, and objects that fail the read-back are
    /// deleted.
    #[tracing::instrument(name = "recording_copy", skip_all)]
    pub async fn copy(&self, url: &str, key: &str) -> Result<CopyReport, CopyError> {
        self.copy_with(url, key, None).await
    }

    /// Like [`RecordingCopier::copy`], but stores the WAV file from `cut_ms` (milliseconds
    /// from the recording's start) on, trimmed while it streams (R7.5, see the module
    /// docs). A source that is not a WAV file we can cut stores nothing.
    #[tracing::instrument(name = "recording_copy_trimmed", skip_all)]
    pub async fn copy_trimmed(
        &self,
        url: &str,
        key: &str,
        cut_ms: u64,
    ) -> Result<CopyReport, CopyError> {
        self.copy_with(url, key, Some(cut_ms)).await
    }

    async fn copy_with(
        &self,
        url: &str,
        key: &str,
        cut_ms: Option<u64>,
    ) -> Result<CopyReport, CopyError> {
        let started = Instant::now();
        let deadline = Deadline::now() + self.policy.total_timeout;
        let result = self.copy_within(url, key, deadline, cut_ms).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(report) => tracing::info!(
                bytes = report.bytes,
                parts = report.parts,
                elapsed_ms,
                "recording copied"
            ),
            Err(e) => {
                tracing::warn!(error = %e, retry = ?e.retry(), elapsed_ms, "recording copy failed")
            }
        }
        result
    }

    async fn copy_within(
        &self,
        url: &str,
        key: &str,
        deadline: Deadline,
        cut_ms: Option<u64>,
    ) -> Result<CopyReport, CopyError> {
        let url = self.policy.check(url)?;
        let (limit, kind) = next_wait(self.policy.idle_timeout, deadline, TimeoutKind::Headers);
        let response = match tokio::time::timeout_at(limit, self.http.get(url).send()).await {
            Err(_) => return Err(CopyError::Timeout(kind)),
            Ok(Err(e)) => return Err(request_error(e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if status != 200 {
            // The body (an error page) is dropped unread.
            return Err(CopyError::Http(status));
        }
        let expected = response.content_length();
        let max_bytes = self.policy.max_bytes.min(MAX_PARTS * self.part_size as u64);
        if expected.is_some_and(|n| n > max_bytes) {
            return Err(CopyError::TooLarge { limit: max_bytes });
        }
        let mut content_type = media_type(response.headers());
        if cut_ms.is_some() {
            let wav_or_unknown = content_type
                .as_deref()
                .is_none_or(|t| t == DEFAULT_CONTENT_TYPE || WAV_TYPES.contains(&t));
            if !wav_or_unknown {
                return Err(CopyError::NotWav);
            }
            content_type = Some(WAV_CONTENT_TYPE.to_owned());
        }
        tracing::debug!(status, announced = expected, "recording response received");

        let mut download = Download {
            response,
            pending: Vec::new(),
            received: 0,
            written: 0,
            ended: false,
            expected,
            max_bytes,
            hasher: Sha256::new(),
            trimmer: cut_ms.map(|cut| WavTrimmer::new(cut, expected)),
            idle: self.policy.idle_timeout,
            deadline,
        };
        let first_capacity = expected.map_or(self.part_size, |n| {
            usize::try_from(n).map_or(self.part_size, |n| n.min(self.part_size))
        });
        let mut first = Vec::with_capacity(first_capacity);
        let more = download.fill(&mut first, self.part_size).await?;
        let stored_type = content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
        let (parts, version_id) = if more {
            self.upload_multipart(&mut download, first, key, stored_type, deadline)
                .await?
        } else {
            (1, self.put_single(first, key, stored_type, deadline).await?)
        };
        let bytes = download.written;
        if let Some(plan) = download.trimmer.as_ref().and_then(WavTrimmer::plan) {
            tracing::info!(
                channels = plan.format.channels,
                sample_rate = plan.format.sample_rate,
                skipped_frames = plan.skipped_frames,
                kept_frames = plan.kept_frames,
                source_bytes = download.received,
                "recording trimmed at the consent answer"
            );
        }
        self.verify(key, version_id.as_deref(), bytes, deadline)
            .await?;
        Ok(CopyReport {
            bytes,
            sha256_hex: hex::encode(download.hasher.finalize()),
            parts,
            content_type,
            version_id,
        })
    }

    async fn put_single(
        &self,
        body: Vec<u8>,
        key: &str,
        content_type: &str,
        deadline: Deadline,
    ) -> Result<Option<String>, CopyError> {
        let len = body.len() as i64;
        let out = within(
            deadline,
            "put_object",
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(body))
                .content_length(len)
                .content_type(content_type)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(&self.kms_key_arn)
                .bucket_key_enabled(true)
                .send(),
        )
        .await?;
        Ok(out.version_id().map(str::to_owned))
    }

    /// Creates a multipart upload, streams the parts, completes it; aborts on any failure.
    async fn upload_multipart(
        &self,
        download: &mut Download,
        first: Vec<u8>,
        key: &str,
        content_type: &str,
        deadline: Deadline,
    ) -> Result<(usize, Option<String>), CopyError> {
        let created = within(
            deadline,
            "create_multipart_upload",
            self.s3
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(&self.kms_key_arn)
                .bucket_key_enabled(true)
                .send(),
        )
        .await?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(StoreError {
                operation: "create_multipart_upload",
                retry: Retry::Transient,
                source: None,
            }
            .into());
        };
        let mut pending = PendingUpload {
            s3: self.s3.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            armed: true,
        };
        match self.stream_parts(download, first, &pending, deadline).await {
            Ok(done) => {
                pending.armed = false;
                Ok(done)
            }
            Err(e) => {
                pending.abort().await;
                Err(e)
            }
        }
    }

    async fn stream_parts(
        &self,
        download: &mut Download,
        first: Vec<u8>,
        pending: &PendingUpload,
        deadline: Deadline,
    ) -> Result<(usize, Option<String>), CopyError> {
        let mut completed = Vec::new();
        let mut part = first;
        let mut more = true;
        loop {
            let number = i32::try_from(completed.len() + 1).unwrap_or(i32::MAX);
            let len = part.len();
            let out = within(
                deadline,
                "upload_part",
                self.s3
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&pending.key)
                    .upload_id(&pending.upload_id)
                    .part_number(number)
                    .body(ByteStream::from(part))
                    .content_length(len as i64)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .send(),
            )
            .await?;
            tracing::debug!(part = number, bytes = len, "recording part uploaded");
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                    .build(),
            );
            if !more {
                break;
            }
            // The previous part is gone (moved into the request): this is the only buffer.
            part = Vec::with_capacity(self.part_size);
            more = download.fill(&mut part, self.part_size).await?;
        }
        let parts = completed.len();
        let out = within(
            deadline,
            "complete_multipart_upload",
            self.s3
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&pending.key)
                .upload_id(&pending.upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(completed))
                        .build(),
                )
                .send(),
        )
        .await?;
        Ok((parts, out.version_id().map(str::to_owned)))
    }

    /// Reads the new object back; deletes it (that version) when it is not what was sent.
    async fn verify(
        &self,
        key: &str,
        version_id: Option<&str>,
        bytes: u64,
        deadline: Deadline,
    ) -> Result<(), CopyError> {
        let head = within(
            deadline,
            "head_object",
            self.s3
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_owned))
                .send(),
        )
        .await;
        let outcome = match head {
            Err(e) => Err(e),
            Ok(head) => {
                let length_ok =
                    head.content_length().and_then(|n| u64::try_from(n).ok()) == Some(bytes);
                let sse_ok = head.server_side_encryption() == Some(&ServerSideEncryption::AwsKms)
                    && head
                        .ssekms_key_id()
                        .is_none_or(|k| same_key(k, &self.kms_key_arn));
                if !length_ok {
                    Err(CopyError::Verification(Mismatch::Length))
                } else if !sse_ok {
                    Err(CopyError::Verification(Mismatch::Encryption))
                } else {
                    Ok(())
                }
            }
        };
        if outcome.is_err() {
            self.delete_version(key, version_id).await;
        }
        outcome
    }

    /// Best-effort removal of an object version that must not stay.
    async fn delete_version(&self, key: &str, version_id: Option<&str>) {
        let call = self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send();
        match tokio::time::timeout(CLEANUP_TIMEOUT, call).await {
            Ok(Ok(_)) => tracing::info!("unverified recording deleted"),
            Ok(Err(e)) => {
                failure("delete_object", e);
            }
            Err(_) => tracing::warn!(operation = "delete_object", "s3 cleanup timed out"),
        }
    }
}

/// The nearer of "idle timeout from now" and the total deadline, and which one it is.
fn next_wait(
    idle: Duration,
    deadline: Deadline,
    idle_kind: TimeoutKind,
) -> (Deadline, TimeoutKind) {
    let idle_end = Deadline::now() + idle;
    if idle_end < deadline {
        (idle_end, idle_kind)
    } else {
        (deadline, TimeoutKind::Total)
    }
}

/// Whether a key id reported by S3 (an ARN or a bare id) names the configured key ARN.
fn same_key(reported: &str, arn: &str) -> bool {
    reported == arn
        || arn
            .rsplit_once('/')
            .is_some_and(|(_, id)| !id.is_empty() && reported == id)
}

/// A multipart upload that must not outlive a failed copy. Aborted explicitly on errors;
/// if the copy future is dropped midway (a caller's timeout), `Drop` still sends the abort
/// on the current runtime. The bucket's lifecycle rule is the last resort.
struct PendingUpload {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl PendingUpload {
    fn abort_request(
        &self,
    ) -> aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder
    {
        self.s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
    }

    async fn abort(&mut self) {
        self.armed = false;
        match tokio::time::timeout(CLEANUP_TIMEOUT, self.abort_request().send()).await {
            Ok(Ok(_)) => tracing::info!("multipart upload aborted"),
            Ok(Err(e)) => {
                failure("abort_multipart_upload", e);
            }
            Err(_) => tracing::warn!(operation = "abort_multipart_upload", "s3 cleanup timed out"),
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let request = self.abort_request();
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLEANUP_TIMEOUT, request.send()).await;
            });
        }
    }
}

/// The response body being read: counted and checked against the limits as it arrives,
/// trimmed when asked (R7.5), hashed as stored, cut into parts without holding more than
/// one.
struct Download {
    response: reqwest::Response,
    /// Bytes to store that did not fit into the previous part (the tail of one network
    /// chunk, or of what the trimmer made of it).
    pending: Vec<u8>,
    /// Bytes of the body received.
    received: u64,
    /// Bytes handed to parts (what is stored).
    written: u64,
    /// The body has ended (and the trimmer finished).
    ended: bool,
    expected: Option<u64>,
    max_bytes: u64,
    /// Over the stored bytes.
    hasher: Sha256,
    /// Cuts a WAV body at the consent answer; `None` copies the body as it is.
    trimmer: Option<WavTrimmer>,
    idle: Duration,
    deadline: Deadline,
}

impl Download {
    /// Fills `part` up to `part_size` bytes; returns whether more data follows (so the
    /// caller knows whether this part is the last one, even without a `Content-Length`).
    async fn fill(&mut self, part: &mut Vec<u8>, part_size: usize) -> Result<bool, CopyError> {
        loop {
            if !self.pending.is_empty() {
                let take = (part_size - part.len()).min(self.pending.len());
                part.extend_from_slice(&self.pending[..take]);
                self.hasher.update(&self.pending[..take]);
                self.written += take as u64;
                self.pending.drain(..take);
            }
            if part.len() == part_size && !self.pending.is_empty() {
                return Ok(true);
            }
            if self.ended {
                return Ok(false);
            }
            // Either the part has room, or it is full and we must learn whether it is last.
            match self.next_chunk().await? {
                None => {
                    self.ended = true;
                    if let Some(trimmer) = &mut self.trimmer {
                        trimmer.finish(&mut self.pending)?;
                    }
                }
                Some(chunk) => match &mut self.trimmer {
                    Some(trimmer) => trimmer.push(&chunk, &mut self.pending)?,
                    None => self.pending.extend_from_slice(&chunk),
                },
            }
        }
    }

    /// The next piece of the body, or `None` at its end (which must match the announced
    /// length).
    async fn next_chunk(
        &mut self,
    ) -> Result<Option<impl std::ops::Deref<Target = [u8]>>, CopyError> {
        let (limit, kind) = next_wait(self.idle, self.deadline, TimeoutKind::Idle);
        let chunk = match tokio::time::timeout_at(limit, self.response.chunk()).await {
            Err(_) => return Err(CopyError::Timeout(kind)),
            Ok(Err(e)) => {
                // A body that breaks off before its announced length is a short stream.
                return Err(match self.expected {
                    Some(expected) if self.received < expected => CopyError::SizeMismatch {
                        expected,
                        received: self.received,
                    },
                    _ => CopyError::Network(e.without_url()),
                });
            }
            Ok(Ok(None)) => {
                return match self.expected {
                    Some(expected) if expected != self.received => Err(CopyError::SizeMismatch {
                        expected,
                        received: self.received,
                    }),
                    _ => Ok(None),
                };
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        self.received += chunk.len() as u64;
        if self.received > self.max_bytes {
            return Err(CopyError::TooLarge {
                limit: self.max_bytes,
            });
        }
        if let Some(expected) = self.expected.filter(|e| self.received > *e) {
            return Err(CopyError::SizeMismatch {
                expected,
                received: self.received,
            });
        }
        Ok(Some(chunk))
    }
}

/// The use cases' copier port: the copy as above, its error kept as the cause.
#[async_trait::async_trait]
impl usecases::telephony::ports::RecordingCopier for RecordingCopier {
    async fn copy(
        &self,
        url: &str,
        object_key: &str,
        cut_ms: u64,
    ) -> Result<CopyReport, usecases::telephony::ports::CopyFailure> {
        RecordingCopier::copy_trimmed(self, url, object_key, cut_ms)
            .await
            .map_err(|e| usecases::telephony::ports::CopyFailure {
                retry: e.retry(),
                cause: Box::new(e),
            })
    }

    async fn discard(&self, object_key: &str) -> Result<usize, StoreError> {
        crate::s3::BlobStore::new(
            self.s3.clone(),
            self.bucket.clone(),
            self.kms_key_arn.clone(),
        )
        .delete_all_versions(object_key)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FetchPolicy {
        FetchPolicy::new(vec![
            "*.retellai.com".to_owned(),
            "dxc03zgurdly9.cloudfront.net".to_owned(),
        ])
    }

    #[test]
    fn check_accepts_https_on_listed_hosts_with_any_port() {
        let p = policy();
        for url in [
            "https://dxc03zgurdly9.cloudfront.net/abc/recording.wav",
            "https://DXC03ZGURDLY9.cloudfront.net:443/a.wav?Signature=x&Expires=1",
            "https://recordings.retellai.com:8443/a.wav",
            "https://a.b.retellai.com/a.wav",
        ] {
            assert!(p.check(url).is_ok(), "{url} should pass");
        }
    }

    #[test]
    fn check_refuses_other_schemes_hosts_and_userinfo() {
        let p = policy();
        for url in [
            "http://dxc03zgurdly9.cloudfront.net/a.wav",
            "ftp://recordings.retellai.com/a.wav",
            "https://retellai.com/a.wav",
            "https://evilretellai.com/a.wav",
            "https://recordings.retellai.com.evil.example/a.wav",
            "https://cloudfront.net/a.wav",
            "https://other.cloudfront.net/a.wav",
            "https://user@recordings.retellai.com/a.wav",
            "https://user:pw@recordings.retellai.com/a.wav",
            "https://:pw@recordings.retellai.com/a.wav",
            "https://127.0.0.1/a.wav",
            "http://127.0.0.1:8080/a.wav",
            "https://[::1]/a.wav",
            "file:///etc/passwd",
            "not a url",
            "",
        ] {
            assert!(
                matches!(p.check(url), Err(CopyError::NotAllowed)),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn loopback_http_only_when_allowed_and_only_127_0_0_1() {
        let mut p = policy();
        p.allow_loopback_http = true;
        assert!(p.check("http://127.0.0.1:4321/recordings/a.wav").is_ok());
        assert!(p.check("https://127.0.0.1:4321/recordings/a.wav").is_ok());
        assert!(p.check("http://localhost:4321/a.wav").is_err());
        assert!(p.check("http://127.0.0.2:4321/a.wav").is_err());
        assert!(p.check("http://[::1]:4321/a.wav").is_err());
        assert!(p.check("http://u@127.0.0.1:4321/a.wav").is_err());
    }

    #[test]
    fn wildcards_need_two_labels_and_never_match_addresses() {
        let p = FetchPolicy::new(vec!["*.com".to_owned(), "*.0.1".to_owned(), "*".to_owned()]);
        assert!(p.check("https://example.com/a").is_err());
        assert!(p.check("https://127.0.0.1/a").is_err());
        assert!(p.check("https://anything.example/a").is_err());
        let listed = FetchPolicy::new(vec!["203.0.113.9".to_owned()]);
        assert!(listed.check("https://203.0.113.9/a").is_ok());
    }

    #[test]
    fn refusals_do_not_echo_the_url() {
        let url = "https://evil.example/secret-path.wav?X-Amz-Signature=geheim";
        let err = policy().check(url).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("evil") && !text.contains("geheim") && !text.contains("secret"));
    }

    #[test]
    fn only_public_addresses_pass_the_resolver_filter() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private} must be refused");
        }
        for public in ["52.95.110.1", "1.1.1.1", "2600:9000::1", "::ffff:8.8.8.8"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} must pass");
        }
    }

    #[test]
    fn media_type_keeps_only_a_well_formed_essence() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(media_type(&h), None);
        h.insert("content-type", "Audio/WAV; codec=1".parse().unwrap());
        assert_eq!(media_type(&h).as_deref(), Some("audio/wav"));
        h.insert("content-type", "audio".parse().unwrap());
        assert_eq!(media_type(&h), None);
        h.insert("content-type", "audio/wav x".parse().unwrap());
        assert_eq!(media_type(&h), None);
    }

    #[test]
    fn retry_classification() {
        assert_eq!(CopyError::Http(404).retry(), Retry::Permanent);
        assert_eq!(CopyError::Http(403).retry(), Retry::Permanent);
        assert_eq!(CopyError::Http(410).retry(), Retry::Permanent);
        assert_eq!(CopyError::Http(429).retry(), Retry::Transient);
        assert_eq!(CopyError::Http(503).retry(), Retry::Transient);
        assert_eq!(CopyError::NotAllowed.retry(), Retry::Permanent);
        assert_eq!(CopyError::TooManyRedirects.retry(), Retry::Permanent);
        assert_eq!(CopyError::TooLarge { limit: 1 }.retry(), Retry::Permanent);
        // R7.5: a recording we cannot cut never becomes cuttable by trying again.
        assert_eq!(CopyError::NotWav.retry(), Retry::Permanent);
        assert_eq!(
            CopyError::Wav(WavError::DataBeyondBody).retry(),
            Retry::Permanent
        );
        assert_eq!(
            CopyError::Timeout(TimeoutKind::Idle).retry(),
            Retry::Transient
        );
        assert_eq!(
            CopyError::SizeMismatch {
                expected: 2,
                received: 1
            }
            .retry(),
            Retry::Transient
        );
    }

    #[test]
    fn same_key_accepts_the_arn_or_its_id() {
        let arn = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd";
        assert!(same_key(arn, arn));
        assert!(same_key("1234abcd", arn));
        assert!(!same_key("ffff", arn));
        assert!(!same_key(
            "arn:aws:kms:eu-central-1:123456789012:key/ffff",
            arn
        ));
    }

    #[test]
    fn part_size_is_kept_within_s3_and_memory_limits() {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        );
        let copier =
            RecordingCopier::new(policy(), s3, "bucket".to_owned(), "arn".to_owned()).unwrap();
        assert_eq!(copier.part_size, DEFAULT_PART_SIZE);
        assert_eq!(copier.clone().with_part_size(1).part_size, MIN_PART_SIZE);
        assert_eq!(
            copier.clone().with_part_size(usize::MAX).part_size,
            MAX_PART_SIZE
        );
        assert_eq!(
            copier.with_part_size(6 * 1024 * 1024).part_size,
            6 * 1024 * 1024
        );
    }
}
