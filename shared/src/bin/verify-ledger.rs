//! Verifies the consent ledger (`make verify-ledger`, R7.6): reads every entry and every
//! signed daily head from the table, checks the hash chain and each head's ECDSA
//! signature locally against the signing key's public key, and prints a JSON summary.
//! With `--subject <lead id>` or `--phone <number>` it also answers who consented to
//! what, when, how and under which text, for that person. Exits non-zero when anything
//! does not verify (naming the first bad sequence number).
//!
//! `verify-ledger --table <table> (--key-id <ledger key id/ARN/alias> | --public-key <DER file>)
//!   [--subject <lead id>] [--phone <number> --blind-index-key-id <id/ARN/alias>]`
//!
//! AWS credentials and region come from the environment, like the AWS CLI. The verifier
//! needs `dynamodb:Query` on the ledger partitions and, without `--public-key`,
//! `kms:GetPublicKey` on the signing key; the blind index of `--phone` is computed with
//! `kms:GenerateMac` like the application does (the number never leaves this process
//! otherwise).

use std::process::ExitCode;

use shared::adapters::kms::KmsKeyService;
use shared::adapters::ledger::{DynamoLedgerStore, KmsHeadSigner};
use shared::domain::ledger::P256PublicKey;
use shared::domain::{LeadId, PhoneNumber};
use shared::ledger::{history, HeadSigner};
use shared::ports::{IdentifierKind, KeyService};

const USAGE: &str =
    "usage: verify-ledger --table <table> (--key-id <key> | --public-key <file.der>) \
[--subject <lead id>] [--phone <number> --blind-index-key-id <key>]";

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Option<String> {
        args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
    };
    let Some(table) = value("--table") else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let aws = shared::aws::load().await;
    let der = match (value("--public-key"), value("--key-id")) {
        (Some(path), _) => match std::fs::read(&path) {
            Ok(der) => der,
            Err(_) => {
                eprintln!("the public key file cannot be read");
                return ExitCode::from(2);
            }
        },
        (None, Some(key)) => match KmsHeadSigner::from_sdk(&aws, key).public_key().await {
            Ok(der) => der,
            Err(e) => {
                eprintln!("reading the signing key's public key failed: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, None) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(key) = P256PublicKey::from_spki_der(&der) else {
        eprintln!("the public key is not an ECDSA P-256 key");
        return ExitCode::FAILURE;
    };
    let subject = match value("--subject").map(|s| LeadId::parse(&s)) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            eprintln!("--subject is not a lead id");
            return ExitCode::from(2);
        }
    };
    let number = match value("--phone") {
        None => None,
        Some(phone) => {
            let (Ok(phone), Some(mac_key)) =
                (PhoneNumber::parse(&phone), value("--blind-index-key-id"))
            else {
                eprintln!("--phone needs a valid number and --blind-index-key-id");
                return ExitCode::from(2);
            };
            let keys = KmsKeyService::new(aws_sdk_kms::Client::new(&aws), String::new(), mac_key);
            match keys
                .blind_index(IdentifierKind::Phone, phone.expose())
                .await
            {
                Ok(index) => Some(index.as_str().to_owned()),
                Err(e) => {
                    eprintln!("computing the number's blind index failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let store = DynamoLedgerStore::from_sdk(&aws, table);
    let started = std::time::Instant::now();
    let answer = match history(&store, &key, subject.as_ref(), number.as_deref()).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("reading the ledger failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = serde_json::json!({
        "verified": answer.verified,
        "entries": answer.entries_checked,
        "signed_through": answer.signed_through,
        "unsigned": answer.entries_checked.saturating_sub(answer.signed_through),
        "seconds": started.elapsed().as_secs_f64(),
    });
    if let Some(fault) = &answer.fault {
        out["fault"] = serde_json::json!(fault);
        out["first_bad_seq"] = serde_json::json!(answer.fault_seq);
    }
    if subject.is_some() || number.is_some() {
        out["events"] = serde_json::json!(answer.events);
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    if answer.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
