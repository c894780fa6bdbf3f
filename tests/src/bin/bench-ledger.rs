//! `make bench`: the consent ledger's verification time (R7.6, dev-only).
//!
//! 1. In memory: 100 000 entries chained, one head a day signed (ECDSA P-256 by the
//!    emulator's KMS key), then the whole chain and every signature verified.
//! 2. Through the store: the same entries written to the emulator's table (batch writes),
//!    then read back and verified as `make verify-ledger` does (`LEDGER_STORE_EVENTS`,
//!    default 100 000; 0 skips it).

use std::time::Instant;

use anyhow::{anyhow, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::{Duration, NaiveDate};
use harness::stack::Stack;
use shared::adapters::ledger::{entry_item, DynamoLedgerStore, KmsHeadSigner};
use shared::domain::ledger::{self, How, LedgerEntry, LedgerEvent, LedgerRecord, SignedHead};
use shared::domain::LeadId;
use shared::ledger::{check, public_key_of, HeadSigner, LedgerStore};

const EVENTS: usize = 100_000;
/// Entries per signed head: 100 000 events over a year.
const PER_DAY: usize = 274;

fn record(i: usize) -> LedgerRecord {
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-01T08:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
        + Duration::seconds(i as i64 * 315);
    let event = match i % 4 {
        0 => LedgerEvent::signup_consent("2024-04-08"),
        1 => LedgerEvent::RecordingConsent {
            granted: i % 3 != 0,
            call_id: format!("call_{i:08}"),
            agent_version: Some("7".into()),
        },
        2 => LedgerEvent::OptinConfirmedOnLine {
            call_id: format!("call_{i:08}"),
        },
        _ => LedgerEvent::Objection,
    };
    LedgerRecord {
        subject: Some(LeadId::new()),
        number: Some(format!("{i:064x}")),
        at,
        how: How::WebForm,
        actor: "bench".into(),
        event,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let stack = Stack::isolated().await?;
    let signer = KmsHeadSigner::from_sdk(&stack.aws, stack.key_id("LedgerKey")?.to_owned());
    let key = public_key_of(&signer)
        .await
        .map_err(|e| anyhow!("public key: {e}"))?;

    let started = Instant::now();
    let mut entries: Vec<LedgerEntry> = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let e = LedgerEntry::chain(entries.last(), &record(i));
        entries.push(e);
    }
    let chained = started.elapsed();
    let mut heads = Vec::new();
    let first_day = NaiveDate::from_ymd_opt(2026, 1, 1).ok_or_else(|| anyhow!("date"))?;
    for (day, chunk_end) in (PER_DAY..=EVENTS).step_by(PER_DAY).enumerate() {
        let e = &entries[chunk_end - 1];
        let date = first_day + Duration::days(day as i64);
        let signature = signer
            .sign(&ledger::head_message(date, e.seq, &e.hash))
            .await
            .map_err(|e| anyhow!("sign: {e}"))?;
        heads.push(SignedHead {
            date,
            seq: e.seq,
            hash: e.hash,
            key_id: signer.key_id().to_owned(),
            signature,
        });
    }
    let started = Instant::now();
    let verified = ledger::verify(&entries, &heads, &key).map_err(|f| anyhow!("{f}"))?;
    let in_memory = started.elapsed();
    println!(
        "ledger in memory: {} entries chained in {:.2} s; {} entries and {} signed heads verified in {:.3} s ({:.1} µs per entry)",
        EVENTS,
        chained.as_secs_f64(),
        verified.entries,
        verified.heads,
        in_memory.as_secs_f64(),
        in_memory.as_secs_f64() * 1e6 / EVENTS as f64
    );

    let stored: usize = std::env::var("LEDGER_STORE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVENTS)
        .min(EVENTS);
    if stored == 0 {
        return Ok(());
    }
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let started = Instant::now();
    for chunk in entries[..stored].chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|e| {
                PutRequest::builder()
                    .set_item(Some(entry_item(e)))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<_, _>>()?;
        while !requests.is_empty() {
            let out = ddb
                .batch_write_item()
                .request_items(&stack.table, requests)
                .send()
                .await?;
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&stack.table))
                .unwrap_or_default();
        }
    }
    let written = started.elapsed();
    let store = DynamoLedgerStore::from_sdk(&stack.aws, stack.table.clone());
    for h in heads.iter().filter(|h| h.seq as usize <= stored) {
        store.put_head(h).await?;
    }
    let started = Instant::now();
    let checked = check(&store, &key).await.map_err(|e| anyhow!("{e}"))?;
    let through_store = started.elapsed();
    let v = checked.result.map_err(|f| anyhow!("{f}"))?;
    println!(
        "ledger through the store (emulator): {} entries written in {:.1} s; read and verified with {} heads in {:.2} s",
        v.entries,
        written.as_secs_f64(),
        v.heads,
        through_store.as_secs_f64()
    );
    Ok(())
}
