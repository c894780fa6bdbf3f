//! Seeding for the analytics export tests and benchmark (R6): subjects signed up through
//! the real lead service (KMS data keys, sealed profiles), and their calls written
//! directly as call items with batch writes, each with a summary sealed under its
//! subject's data key (what the webhook would have stored), so many thousands of calls
//! cost seconds instead of a webhook round trip each.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures_util::{stream, TryStreamExt};
use shared::domain::{Email, LeadId, LeadProfile, Notes, PersonName, PhoneNumber};
use shared::leads::{LeadService, SignupOutcome, SignupRequest};

use crate::stack::Stack;

/// The first name every seeded subject has: it must never appear in an analytics file.
pub const FIRST_NAME: &str = "Wilhelmine";
pub const LAST_NAME: &str = "Zwetschgenbaum";

/// The lead service of `stack` (the sign-up function's configuration), on a system clock.
pub fn lead_service(stack: &Stack) -> Result<LeadService> {
    let config = stack.config_for("SignupFunction")?;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    Ok(LeadService::new(
        Arc::new(shared::adapters::dynamo::DynamoLeadStore::new(
            ddb,
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
        Arc::new(shared::adapters::kms::KmsKeyService::new(
            aws_sdk_kms::Client::new(&stack.aws),
            config.data_key_id.clone(),
            config.blind_index_key_id.clone(),
        )),
        Arc::new(shared::SystemClock),
    ))
}

/// Signs up `count` subjects (distinct addresses and numbers under `tag`).
pub async fn subjects(leads: &LeadService, tag: &str, count: usize) -> Result<Vec<LeadId>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let request = SignupRequest {
            profile: LeadProfile {
                first_name: PersonName::parse(FIRST_NAME).map_err(|_| anyhow!("name"))?,
                last_name: PersonName::parse(LAST_NAME).map_err(|_| anyhow!("name"))?,
                email: Email::parse(&format!("analytics-{tag}-{i}@example.org"))
                    .map_err(|_| anyhow!("email"))?,
                phone: PhoneNumber::parse(&format!("+49172{:07}", seed_number(tag, i)))
                    .map_err(|_| anyhow!("phone"))?,
                notes: Notes::parse("").map_err(|_| anyhow!("notes"))?,
            },
            source_ip: None,
            client: None,
            policy_version: "2026-11".into(),
            call_window: None,
        };
        match leads.sign_up(request).await.context("sign-up")? {
            SignupOutcome::Created { id } => out.push(id),
            other => return Err(anyhow!("sign-up: {other:?}")),
        }
    }
    Ok(out)
}

/// A phone number suffix unique per tag and index.
fn seed_number(tag: &str, i: usize) -> u64 {
    let h = tag
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % 1000) * 10_000 + i as u64 % 10_000
}

/// Writes `count` calls named `<tag>_<n>`, spread over `leads` in turn, each with a
/// summary of about `summary_chars` characters that names the subject (name and
/// number); 25 items a batch, `parallel` batches at once.
pub async fn calls(
    stack: &Stack,
    leads: &LeadService,
    subjects: &[LeadId],
    tag: &str,
    count: usize,
    summary_chars: usize,
) -> Result<()> {
    let mut keys = Vec::with_capacity(subjects.len());
    for lead in subjects {
        let (_, key) = leads
            .read_with_key(lead)
            .await
            .map_err(|e| anyhow!("read subject: {e}"))?
            .ok_or_else(|| anyhow!("subject gone"))?;
        keys.push(key);
    }
    let filler = "Der Kunde fragt nach Tarifen und Zeiten. ".repeat(summary_chars / 40 + 1);
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let ttl = (chrono::Utc::now() + chrono::Duration::days(400)).timestamp();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let batches: Vec<Vec<WriteRequest>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&n| {
                    let who = n % subjects.len();
                    let call_id = format!("{tag}_{n:07}");
                    let summary = format!(
                        "{FIRST_NAME} {LAST_NAME} (Tel. 0172 5550{who:03}) ruft an: {}",
                        &filler[..summary_chars.min(filler.len())]
                    );
                    let plain = serde_json::to_vec(
                        &serde_json::json!({"call_analysis": {"call_summary": summary}}),
                    )
                    .unwrap_or_default();
                    let sealed = keys[who]
                        .seal(&shared::calls::call_aad(&call_id, "sealed_call"), &plain)
                        .unwrap_or_default();
                    let item = [
                        ("pk", s(&format!("CALL#{call_id}"))),
                        ("sk", s("CALL")),
                        ("kind", s("call")),
                        ("call_id", s(&call_id)),
                        ("lead_id", s(&subjects[who].to_string())),
                        ("start_at", s("2026-11-27T10:00:00Z")),
                        ("duration_ms", AttributeValue::N((60_000 + n).to_string())),
                        ("call_status", s("ended")),
                        ("disconnection_reason", s("user_hangup")),
                        ("consent_granted", AttributeValue::Bool(true)),
                        ("sealed_call", AttributeValue::B(sealed.into())),
                        ("ttl", AttributeValue::N(ttl.to_string())),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item))
                                .build()
                                .expect("item"),
                        )
                        .build()
                })
                .collect()
        })
        .collect();
    stream::iter(batches.into_iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(8, |batch| {
            let ddb = ddb.clone();
            async move {
                let mut pending = batch;
                while !pending.is_empty() {
                    let out = ddb
                        .batch_write_item()
                        .request_items(&stack.table, pending)
                        .send()
                        .await
                        .context("batch write")?;
                    pending = out
                        .unprocessed_items()
                        .and_then(|u| u.get(&stack.table).cloned())
                        .unwrap_or_default();
                }
                Ok(())
            }
        })
        .await
}

/// The rows of an analytics file, parsed.
pub fn rows(body: &[u8]) -> Result<Vec<serde_json::Value>> {
    std::str::from_utf8(body)?
        .lines()
        .map(|l| serde_json::from_str(l).context("a row"))
        .collect()
}
