//! The outbound CRM webhook (issue 17): the events it receives and their signature.
//!
//! A delivery is `POST <CRM_WEBHOOK_URL>` with a JSON body
//! `{"event_id","type","lead_id","occurred_at","record"?}` and the header
//! `X-Polly-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the
//! provider's scheme turned around. `record` (the follow-up record) goes only with
//! `followup` and `rectified`; the Art. 19 notices `restricted`, `objected` and `erased`
//! name only the lead. The receiver dedupes on `event_id`.

use chrono::{DateTime, SecondsFormat, Utc};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Polly-Signature";

/// What happened to the lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrmEventType {
    /// The lead is ready for follow-up by sales (its record goes along).
    Followup,
    /// The subject's data was rectified (Art. 16, 19): the corrected record goes along.
    Rectified,
    /// Processing is restricted (Art. 18, 19): stop using the lead.
    Restricted,
    /// The subject objected (Art. 21, 19): no more contact.
    Objected,
    /// The subject's data was erased (Art. 17, 19): erase the lead.
    Erased,
}

impl CrmEventType {
    pub const ALL: [CrmEventType; 5] = [
        Self::Followup,
        Self::Rectified,
        Self::Restricted,
        Self::Objected,
        Self::Erased,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Followup => "followup",
            Self::Rectified => "rectified",
            Self::Restricted => "restricted",
            Self::Objected => "objected",
            Self::Erased => "erased",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Whether the follow-up record goes along.
    pub fn carries_record(self) -> bool {
        matches!(self, Self::Followup | Self::Rectified)
    }
}

/// The JSON body of one delivery. `record` is dropped for the notices that carry none,
/// whatever is passed.
pub fn body(
    event_id: &str,
    kind: CrmEventType,
    lead_id: &str,
    occurred_at: DateTime<Utc>,
    record: Option<&serde_json::Value>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "event_id": event_id,
        "type": kind.code(),
        "lead_id": lead_id,
        "occurred_at": occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    if let (true, Some(r)) = (kind.carries_record(), record) {
        v["record"] = r.clone();
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at unix time `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Checks a [`SIGNATURE_HEADER`] value against `body` (constant time), with the
/// timestamp at most `tolerance_secs` away from `now`. For receivers (the local one).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut msg = t.to_string().into_bytes();
    msg.push(b'.');
    msg.extend_from_slice(body);
    ring::hmac::verify(&key, &msg, &v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The signature is HMAC-SHA256 over "<t>.<body>", hex, after `t=<t>,v1=`; a changed
    /// body, another secret or a stale timestamp fails verification.
    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // HMAC-SHA256("key", "1.x") computed independently (Python's hmac module).
        let h = signature(b"key", 1, b"x");
        assert_eq!(
            h,
            "t=1,v1=fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec"
        );
        assert!(verify(b"key", &h, b"x", 1, 300));
        assert!(!verify(b"key", &h, b"y", 1, 300));
        assert!(!verify(b"other", &h, b"x", 1, 300));
        assert!(!verify(b"key", &h, b"x", 1000, 300), "stale timestamp");
        assert!(!verify(b"key", "t=1", b"x", 1, 300));
        assert!(!verify(b"key", "garbage", b"x", 1, 300));
    }

    /// Notices carry no record; follow-ups and rectifications do.
    #[test]
    fn only_followup_and_rectified_carry_the_record() {
        let r = serde_json::json!({"first_name": "Anna"});
        for kind in CrmEventType::ALL {
            let b: serde_json::Value =
                serde_json::from_slice(&body("e1", kind, "lead", at(), Some(&r))).unwrap();
            assert_eq!(b["type"], kind.code());
            assert_eq!(b["event_id"], "e1");
            assert_eq!(b["lead_id"], "lead");
            assert_eq!(b["occurred_at"], "2026-11-30T10:00:00Z");
            assert_eq!(b.get("record").is_some(), kind.carries_record(), "{kind:?}");
            assert_eq!(CrmEventType::parse(kind.code()), Some(kind));
        }
    }
}
