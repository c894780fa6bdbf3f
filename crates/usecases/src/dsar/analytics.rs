//! The pseudonymised analytics files (R6) as derived data of the subjects they name.
//!
//! A file names a subject only by a keyed hash of its lead id (the analytics blind index),
//! so a subject's rows can be found again with the key, and only with it. Two rules keep
//! the files from outliving what they were derived from:
//! - an export leaves out every subject whose own retention ends within the files' lifetime
//!   ([`domain::retention::ANALYTICS_FILE_DAYS`] plus a day for the lifecycle rule to act), so
//!   the retention sweep never has to touch a file;
//! - an erasure, a restriction or an objection rewrites every file holding rows of the
//!   subject without them and deletes the files' earlier versions ([`forget_subject`]).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use domain::retention::ANALYTICS_FILE_DAYS;
use domain::LeadId;

use crate::ports::{IdentifierKind, KeyError, KeyService, Objects, StoreError};

/// Where the analytics files live in the exports bucket.
pub const ANALYTICS_PREFIX: &str = "analytics/";

/// A keyed hash of an id (`kind` names what it is: `subject`, `call`): stable across
/// exports, not reversible without the key.
pub async fn pseudonym(keys: &dyn KeyService, kind: &str, id: &str) -> Result<String, KeyError> {
    let mac = keys
        .blind_index(IdentifierKind::Analytics, &format!("{kind}:{id}"))
        .await?;
    Ok(mac.as_str().chars().take(32).collect())
}

/// Whether an export made `now` may name a subject whose retention ends at `expires_at`:
/// only when the file expires before the subject does.
pub fn may_name(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at > now + Duration::days(i64::from(ANALYTICS_FILE_DAYS) + 1)
}

#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
}

/// Rewrites every analytics file holding rows of `lead` without them, and deletes every
/// earlier version of a rewritten file; how many rows went. Idempotent: a retry after a
/// failure between the rewrite and the version cleanup finishes the cleanup.
pub async fn forget_subject(
    exports: &dyn Objects,
    keys: &dyn KeyService,
    lead: &LeadId,
) -> Result<usize, ForgetError> {
    let mut files = exports.version_keys(ANALYTICS_PREFIX).await?;
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Ok(0);
    }
    let subject = Value::String(pseudonym(keys, "subject", &lead.to_string()).await?);
    let mut removed = 0;
    for file in files {
        if let Some(body) = exports.get(&file).await? {
            let (kept, dropped) = without_subject(&body, &subject);
            if dropped > 0 {
                exports.put(&file, kept).await?;
                removed += dropped;
            }
        }
        if exports.count_versions(&file, true).await? > 1 {
            exports.delete_noncurrent_versions(&file).await?;
        }
    }
    Ok(removed)
}

/// The JSON Lines of `body` without the rows naming `subject`, and how many went. A line
/// that is not JSON is kept as it is (a file is only ever rewritten, never lost).
fn without_subject(body: &[u8], subject: &Value) -> (Vec<u8>, usize) {
    let mut kept = Vec::with_capacity(body.len());
    let mut dropped = 0;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let names = serde_json::from_slice::<Value>(line)
            .ok()
            .is_some_and(|row| row.get("subject") == Some(subject));
        if names {
            dropped += 1;
        } else {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rows_of_the_subject_go_and_the_rest_stays_byte_for_byte() {
        let body = b"{\"call\":\"a\",\"subject\":\"s1\"}\n{\"call\":\"b\",\"subject\":\"s2\"}\n{\"call\":\"c\",\"subject\":null}\nnot json\n";
        let (kept, dropped) = without_subject(body, &Value::String("s1".into()));
        assert_eq!(dropped, 1);
        assert_eq!(
            kept,
            b"{\"call\":\"b\",\"subject\":\"s2\"}\n{\"call\":\"c\",\"subject\":null}\nnot json\n"
        );
        let (same, none) = without_subject(&kept, &Value::String("s1".into()));
        assert_eq!((same, none), (kept.clone(), 0));
    }

    #[test]
    fn a_subject_is_named_only_when_it_outlives_the_file() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let days = i64::from(ANALYTICS_FILE_DAYS);
        assert!(!may_name(now + Duration::days(days), now));
        assert!(!may_name(now + Duration::days(days + 1), now));
        assert!(may_name(
            now + Duration::days(days + 1) + Duration::seconds(1),
            now
        ));
    }
}
