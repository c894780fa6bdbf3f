//! Verification of `X-Retell-Signature`, exactly as the provider's SDK does it
//! (`retell/lib/webhook_auth.py`): the header must fully match
//! `v=<digits>,d=<64 lowercase hex>`; the time `v` (ms) must lie within ±5 minutes of now;
//! the digest is HMAC-SHA256 keyed with the API key over the raw body followed by the
//! decimal digits of `v` as an integer (so leading zeros in the header do not count).
//! The comparison is constant time. Webhooks and the agent's custom tool calls are signed
//! the same way.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Header name (API Gateway delivers header names in lower case).
pub const SIGNATURE_HEADER: &str = "x-retell-signature";

/// Accepted clock difference in either direction, in milliseconds.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature header malformed")]
    Malformed,
    #[error("signature time outside the accepted window")]
    OutsideWindow,
    #[error("signature does not match")]
    Mismatch,
}

/// The parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub timestamp_ms: u64,
    digest: [u8; 32],
}

impl Signature {
    /// Parses `v=<digits>,d=<64 lowercase hex>`; anything else (extra fields, other order,
    /// upper case, short digest, sign) is malformed.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let rest = header.strip_prefix("v=").ok_or(SignatureError::Malformed)?;
        let (v, d) = rest.split_once(",d=").ok_or(SignatureError::Malformed)?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::Malformed);
        }
        if d.len() != 64 || !d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(SignatureError::Malformed);
        }
        // Digits beyond u64 are a time far outside any window.
        let timestamp_ms = v
            .parse::<u64>()
            .map_err(|_| SignatureError::OutsideWindow)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(d, &mut digest).map_err(|_| SignatureError::Malformed)?;
        Ok(Self {
            timestamp_ms,
            digest,
        })
    }
}

/// Verifies `header` over the exact `body` bytes against any of `keys` (the current API
/// key and, during a rotation, the previous one).
pub fn verify(
    body: &[u8],
    header: Option<&str>,
    keys: &[&SecretString],
    now_ms: u64,
) -> Result<Signature, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let sig = Signature::parse(header)?;
    if now_ms.abs_diff(sig.timestamp_ms) > WINDOW_MS {
        return Err(SignatureError::OutsideWindow);
    }
    let stamp = sig.timestamp_ms.to_string();
    for key in keys.iter().filter(|k| !k.expose_secret().is_empty()) {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
            .map_err(|_| SignatureError::Mismatch)?;
        mac.update(body);
        mac.update(stamp.as_bytes());
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&sig.digest).is_ok() {
            return Ok(sig);
        }
    }
    Err(SignatureError::Mismatch)
}

/// Signs like the provider (for the local stack's tools and tests).
pub fn sign(body: &[u8], key: &SecretString, timestamp_ms: u64) -> String {
    let stamp = timestamp_ms.to_string();
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    mac.update(stamp.as_bytes());
    format!("v={stamp},d={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTOR_BODY: &[u8] = br#"{"event":"call_ended"}"#;
    const VECTOR_V: u64 = 1_700_000_000_000;
    const VECTOR_D: &str = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";

    fn key(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// R2.1: the provider SDK's test vector verifies, and signing reproduces its header.
    #[test]
    fn the_sdk_test_vector_verifies() {
        let header = format!("v={VECTOR_V},d={VECTOR_D}");
        let k = key("test-api-key");
        assert!(verify(VECTOR_BODY, Some(&header), &[&k], VECTOR_V).is_ok());
        assert_eq!(sign(VECTOR_BODY, &k, VECTOR_V), header);
    }

    /// R2.1: a changed body, another key, a timestamp just outside ±5 minutes and a missing
    /// header are rejected; the window's edges are accepted.
    #[test]
    fn tampering_wrong_key_and_time_are_rejected() {
        let k = key("test-api-key");
        let header = format!("v={VECTOR_V},d={VECTOR_D}");
        let tampered = br#"{"event":"call_ended" }"#;
        assert_eq!(
            verify(tampered, Some(&header), &[&k], VECTOR_V),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(VECTOR_BODY, Some(&header), &[&key("other")], VECTOR_V),
            Err(SignatureError::Mismatch)
        );
        for now in [VECTOR_V + WINDOW_MS + 1, VECTOR_V - WINDOW_MS - 1] {
            assert_eq!(
                verify(VECTOR_BODY, Some(&header), &[&k], now),
                Err(SignatureError::OutsideWindow)
            );
        }
        for now in [VECTOR_V + WINDOW_MS, VECTOR_V - WINDOW_MS] {
            assert!(
                verify(VECTOR_BODY, Some(&header), &[&k], now).is_ok(),
                "edge of window"
            );
        }
        assert_eq!(
            verify(VECTOR_BODY, None, &[&k], VECTOR_V),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn the_previous_key_is_accepted_during_rotation() {
        let header = format!("v={VECTOR_V},d={VECTOR_D}");
        let (new, old) = (key("new-key"), key("test-api-key"));
        assert!(verify(VECTOR_BODY, Some(&header), &[&new, &old], VECTOR_V).is_ok());
        let empty = key("");
        assert_eq!(
            verify(VECTOR_BODY, Some(&header), &[&new, &empty], VECTOR_V),
            Err(SignatureError::Mismatch)
        );
    }

    /// R2.1: the timestamp is signed as the integer the SDK reads (leading zeros ignored).
    #[test]
    fn leading_zeros_in_v_are_signed_as_the_integer() {
        let k = key("test-api-key");
        let header = format!("v=000{VECTOR_V},d={VECTOR_D}");
        assert!(verify(VECTOR_BODY, Some(&header), &[&k], VECTOR_V).is_ok());
    }

    /// R2.1: malformed signature headers (empty, reordered, extra fields, short or upper-case
    /// digest, ...) are rejected.
    #[test]
    fn malformed_headers_are_rejected() {
        let d = VECTOR_D;
        let cases = [
            String::new(),
            format!("d={d},v={VECTOR_V}"),
            format!("v={VECTOR_V},d={d},x=1"),
            format!("v={VECTOR_V},d={}", &d[..63]),
            format!("v={VECTOR_V},d={}", d.to_uppercase()),
            format!("v=-{VECTOR_V},d={d}"),
            format!("v=,d={d}"),
            format!("v={VECTOR_V}, d={d}"),
            format!(" v={VECTOR_V},d={d}"),
            format!("v={VECTOR_V},d={d} "),
            format!("v=１７,d={d}"),
            format!("v={VECTOR_V};d={d}"),
        ];
        for header in cases {
            assert_eq!(
                Signature::parse(&header),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
        let huge = format!("v={},d={d}", "9".repeat(40));
        assert_eq!(
            verify(VECTOR_BODY, Some(&huge), &[&key("k")], VECTOR_V),
            Err(SignatureError::OutsideWindow)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Signature::parse(&s);
        }

        #[test]
        fn sign_then_verify_round_trips(body in proptest::collection::vec(any::<u8>(), 0..256), t in 0u64..4_000_000_000_000) {
            let k = key("round-trip");
            let header = sign(&body, &k, t);
            prop_assert!(verify(&body, Some(&header), &[&k], t).is_ok());
        }
    }
}
