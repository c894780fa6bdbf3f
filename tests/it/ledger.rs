//! The consent ledger against the emulator (R7.6): entries written by the real sign-up
//! handler, appended concurrently through DynamoDB's conditional put, heads signed by the
//! sweep function with the template's KMS signing key, and every kind of tampering done
//! with the AWS SDK on the stored items, as an insider with table access would.

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use shared::adapters::ledger::{
    entry_sk, head_sk, DynamoLedgerStore, KmsHeadSigner, HEAD_PK, LEDGER_PK,
};
use shared::domain::ledger::{self, How, LedgerEntry, LedgerEvent, LedgerFault, P256PublicKey};
use shared::domain::LeadId;
use shared::ledger::{check, public_key_of, sign_head, ConsentLedger, HeadSigner, LedgerStore};

use serde_json::Value;

use crate::common::{contains_ci, flatten, form, t, Item, TestApp, EMAIL, PERSONAL, PHONE_E164};

/// Tests that read the emulator's mail run on an emulator of their own.
fn mail_emulator() -> String {
    harness::emulator::private("ledger")
}

fn store(app: &TestApp) -> DynamoLedgerStore {
    DynamoLedgerStore::from_sdk(&app.stack.aws, app.stack.table.clone())
}

fn signer(app: &TestApp) -> KmsHeadSigner {
    KmsHeadSigner::from_sdk(
        &app.stack.aws,
        app.stack.key_id("LedgerKey").unwrap().to_owned(),
    )
}

async fn public_key(app: &TestApp) -> P256PublicKey {
    public_key_of(&signer(app)).await.unwrap()
}

fn ddb(app: &TestApp) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&app.stack.aws)
}

async fn get(app: &TestApp, pk: &str, sk: &str) -> Item {
    ddb(app)
        .get_item()
        .table_name(&app.stack.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item exists")
}

async fn put(app: &TestApp, item: Item) {
    ddb(app)
        .put_item()
        .table_name(&app.stack.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Every item of a partition, raw.
async fn partition(app: &TestApp, pk: &str) -> Vec<Item> {
    ddb(app)
        .query()
        .table_name(&app.stack.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

async fn verdict(app: &TestApp) -> Result<ledger::Verified, LedgerFault> {
    check(&store(app), &public_key(app).await)
        .await
        .unwrap()
        .result
}

/// Five entries of two subjects and a head signed after the fourth.
async fn seeded(app: &TestApp) -> (LeadId, LeadId) {
    let ledger = ConsentLedger::new(Arc::new(store(app)), "test");
    let (a, b) = (LeadId::new(), LeadId::new());
    let events = [
        (a, How::WebForm, LedgerEvent::signup_consent("2024-04-08")),
        (b, How::WebForm, LedgerEvent::signup_consent("2024-04-08")),
        (
            a,
            How::ToolCall,
            LedgerEvent::RecordingConsent {
                granted: true,
                call_id: "call_a1".into(),
                agent_version: Some("7".into()),
            },
        ),
        (b, How::Dsar, LedgerEvent::Objection),
        (a, How::Dsar, LedgerEvent::ConsentWithdrawn),
    ];
    for (i, (subject, how, event)) in events.into_iter().enumerate() {
        ledger
            .append(
                Some(subject),
                Some(format!("{:064x}", i % 2)),
                t("2026-11-28T10:00:00Z") + chrono::Duration::minutes(i as i64),
                how,
                event,
            )
            .await
            .unwrap();
        if i == 3 {
            sign_head(&store(app), &signer(app), day("2026-11-28"))
                .await
                .unwrap();
        }
    }
    (a, b)
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// R7.6: the sign-up handler appends the consent to the ledger (subject, phone
/// blind index, text version and the hash of the exact text; no plaintext personal data
/// in the ledger items) and mails one receipt; the same person again within 24 h adds an
/// entry but gets no second receipt, and the answers to both submissions are alike.
#[tokio::test]
async fn signup_appends_to_the_ledger_and_mails_one_receipt_a_day() {
    let app = TestApp::spawn_on(&mail_emulator()).await;
    let (status, first) = app.sign_up(&form()).await;
    assert_eq!(status, 201);
    let lead = app.lead_of(EMAIL).await;

    let entries = store(&app).entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    let r = entries[0].record().unwrap();
    assert_eq!(r.subject, Some(lead));
    assert_eq!(r.how, How::WebForm);
    assert_eq!(r.event, LedgerEvent::signup_consent("2024-04-08"));
    let config = app.stack.signup_config().unwrap();
    let keys = shared::adapters::kms::KmsKeyService::new(
        aws_sdk_kms::Client::new(&app.stack.aws),
        config.data_key_id,
        config.blind_index_key_id,
    );
    let phone_index = shared::ports::KeyService::blind_index(
        &keys,
        shared::ports::IdentifierKind::Phone,
        PHONE_E164,
    )
    .await
    .unwrap();
    assert_eq!(r.number.as_deref(), Some(phone_index.as_str()));
    let mut bytes = Vec::new();
    for item in partition(&app, LEDGER_PK).await {
        for v in item.values() {
            flatten(v, &mut bytes);
        }
    }
    for personal in PERSONAL {
        assert!(
            !contains_ci(&bytes.concat(), personal),
            "{personal} in the ledger"
        );
    }

    let mails = app.stack.sent_mail(EMAIL).await.unwrap();
    assert_eq!(mails.len(), 1, "one receipt");
    assert!(mails[0].subject.contains("Bestätigung Ihrer Einwilligung"));
    assert!(mails[0]
        .body
        .contains("Fassung des Einwilligungstextes: 2024-04-08"));

    app.clock.advance(chrono::Duration::hours(2));
    let (status, second) = app.sign_up(&form()).await;
    assert_eq!(status, 201);
    assert_eq!(first["status"], second["status"]);
    assert_eq!(store(&app).entries().await.unwrap().len(), 2);
    assert_eq!(
        app.stack.sent_mail(EMAIL).await.unwrap().len(),
        1,
        "no second receipt"
    );
}

/// R7.6: 24 appenders racing on the DynamoDB table (each with its own client) form one
/// chain: 24 entries, sequence numbers 1..=24, each linked to the one before.
#[tokio::test]
async fn concurrent_appends_against_dynamodb_form_one_chain() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let ledger = ConsentLedger::new(
            Arc::new(DynamoLedgerStore::new(ddb(&app), app.stack.table.clone())),
            format!("appender-{i}"),
        );
        tasks.push(tokio::spawn(async move {
            ledger
                .append(
                    Some(LeadId::new()),
                    None,
                    t("2026-11-28T10:00:00Z"),
                    How::Dsar,
                    LedgerEvent::Objection,
                )
                .await
                .unwrap()
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=24).collect::<Vec<u64>>());
    let v = verdict(&app).await.unwrap();
    assert_eq!(v.entries, 24);
    let actors: std::collections::BTreeSet<String> = store(&app)
        .entries()
        .await
        .unwrap()
        .iter()
        .map(|e| e.fields["actor"].clone())
        .collect();
    assert_eq!(actors.len(), 24);
}

/// R7.6: each change an insider can make with the SDK is detected, naming the first bad
/// sequence number: an altered field, an added attribute, a field's type changed, an
/// altered hash or link, a deleted entry, two entries swapped, the tail cut below the
/// signed head, a chain rewritten consistently from entry 3 on, an altered signature and
/// a head re-pointed at the rewritten chain. Restoring each item makes it verify again.
#[tokio::test]
async fn tampering_with_stored_items_is_detected() {
    let app = TestApp::spawn().await;
    seeded(&app).await;
    assert_eq!(verdict(&app).await.unwrap().signed_through, 4);

    let entry = |seq: u64| entry_sk(seq);
    // Field edits on every entry.
    for seq in 1..=5u64 {
        let original = get(&app, LEDGER_PK, &entry(seq)).await;
        let mut edits: Vec<Item> = Vec::new();
        for field in ["subject", "number", "at", "how", "actor", "event"] {
            let mut bad = original.clone();
            let value = bad[field].as_s().unwrap().clone();
            bad.insert(field.into(), AttributeValue::S(format!("{value}0")));
            edits.push(bad);
        }
        let mut added = original.clone();
        added.insert("granted".into(), AttributeValue::S("false".into()));
        edits.push(added);
        let mut retyped = original.clone();
        let at = retyped["at"].as_s().unwrap().clone();
        retyped.insert("at".into(), AttributeValue::Ss(vec![at]));
        edits.push(retyped);
        let mut rehashed = original.clone();
        let mut hash = rehashed["hash"].as_s().unwrap().clone();
        hash.replace_range(0..1, if hash.starts_with('0') { "1" } else { "0" });
        rehashed.insert("hash".into(), AttributeValue::S(hash));
        edits.push(rehashed);
        let mut relinked = original.clone();
        relinked.insert("prev_hash".into(), AttributeValue::S("ab".repeat(32)));
        edits.push(relinked);
        for bad in edits {
            put(&app, bad).await;
            let fault = verdict(&app).await.unwrap_err();
            assert_eq!(fault.seq(), seq, "{fault}");
            put(&app, original.clone()).await;
        }
    }
    assert!(verdict(&app).await.is_ok());

    // A deleted entry.
    let third = get(&app, LEDGER_PK, &entry(3)).await;
    ddb(&app)
        .delete_item()
        .table_name(&app.stack.table)
        .key("pk", AttributeValue::S(LEDGER_PK.into()))
        .key("sk", AttributeValue::S(entry(3)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        verdict(&app).await,
        Err(LedgerFault::Gap {
            expected: 3,
            found: 4
        })
    );
    put(&app, third.clone()).await;

    // Two entries swapped (their contents moved to each other's sequence number).
    let second = get(&app, LEDGER_PK, &entry(2)).await;
    let moved = |item: &Item, seq: u64| {
        let mut m = item.clone();
        m.insert("sk".into(), AttributeValue::S(entry(seq)));
        m.insert("seq".into(), AttributeValue::N(seq.to_string()));
        m
    };
    put(&app, moved(&third, 2)).await;
    put(&app, moved(&second, 3)).await;
    assert_eq!(verdict(&app).await, Err(LedgerFault::BrokenLink { seq: 2 }));
    put(&app, second.clone()).await;
    put(&app, third.clone()).await;

    // The tail cut below the signed head (entries 4 and 5 gone).
    let (fourth, fifth) = (
        get(&app, LEDGER_PK, &entry(4)).await,
        get(&app, LEDGER_PK, &entry(5)).await,
    );
    for seq in [4, 5] {
        ddb(&app)
            .delete_item()
            .table_name(&app.stack.table)
            .key("pk", AttributeValue::S(LEDGER_PK.into()))
            .key("sk", AttributeValue::S(entry(seq)))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        verdict(&app).await,
        Err(LedgerFault::HeadBeyondChain {
            date: day("2026-11-28"),
            seq: 4
        })
    );
    put(&app, fourth.clone()).await;
    put(&app, fifth.clone()).await;
    assert!(verdict(&app).await.is_ok());

    // A consistent rewrite from entry 3 on: the recording consent turned into a refusal,
    // every later hash recomputed. The chain is whole; the signed head is not.
    let entries = store(&app).entries().await.unwrap();
    let mut forged: Vec<LedgerEntry> = entries[..2].to_vec();
    for e in &entries[2..] {
        let mut record = e.record().unwrap();
        if let LedgerEvent::RecordingConsent { granted, .. } = &mut record.event {
            *granted = false;
        }
        let next = LedgerEntry::chain(forged.last(), &record);
        forged.push(next);
    }
    for e in &forged[2..] {
        put(&app, forged_item(e)).await;
    }
    assert_eq!(
        verdict(&app).await,
        Err(LedgerFault::HeadMismatch {
            date: day("2026-11-28"),
            seq: 4
        })
    );
    // The head re-pointed at the forged chain: its signature no longer holds.
    let head = get(&app, HEAD_PK, &head_sk(day("2026-11-28"))).await;
    let mut repointed = head.clone();
    repointed.insert(
        "hash".into(),
        AttributeValue::S(hex::encode(forged[3].hash)),
    );
    put(&app, repointed).await;
    assert_eq!(
        verdict(&app).await,
        Err(LedgerFault::BadSignature {
            date: day("2026-11-28"),
            seq: 4
        })
    );
    for seq in 3..=5u64 {
        put(
            &app,
            match seq {
                3 => third.clone(),
                4 => fourth.clone(),
                _ => fifth.clone(),
            },
        )
        .await;
    }
    put(&app, head.clone()).await;
    assert!(verdict(&app).await.is_ok());

    // An altered signature, and a head moved to another day.
    let mut resigned = head.clone();
    let mut sig = resigned["signature"].as_b().unwrap().as_ref().to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    resigned.insert("signature".into(), AttributeValue::B(Blob::new(sig)));
    put(&app, resigned).await;
    assert!(matches!(
        verdict(&app).await,
        Err(LedgerFault::BadSignature { seq: 4, .. })
    ));
    put(&app, head.clone()).await;
    let mut moved_head = head.clone();
    moved_head.insert("sk".into(), AttributeValue::S(head_sk(day("2026-11-27"))));
    put(&app, moved_head).await;
    assert!(matches!(
        verdict(&app).await,
        Err(LedgerFault::BadSignature { seq: 4, .. })
    ));
}

/// The item an insider would write for a forged entry (the store's own layout).
fn forged_item(e: &LedgerEntry) -> Item {
    let mut item: Item = e
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
        .collect();
    item.insert("pk".into(), AttributeValue::S(LEDGER_PK.into()));
    item.insert("sk".into(), AttributeValue::S(entry_sk(e.seq)));
    item.insert("kind".into(), AttributeValue::S("ledger_entry".into()));
    item.insert("seq".into(), AttributeValue::N(e.seq.to_string()));
    item.insert(
        "prev_hash".into(),
        AttributeValue::S(hex::encode(e.prev_hash)),
    );
    item.insert("hash".into(), AttributeValue::S(hex::encode(e.hash)));
    item
}

/// R7.6: the proof of a subject's consent is reproducible from the ledger items and
/// the public key alone: with every other item of the subject deleted, an independent
/// reading of the raw `LEDGER` and `LEDGER_HEAD` items verifies against the DER public
/// key and shows the sign-up consent (text version, exact text), the later events, and
/// the §7a proof of the number.
#[tokio::test]
async fn a_subjects_proof_is_reproducible_from_the_ledger_and_the_public_key_alone() {
    let app = TestApp::spawn().await;
    let (a, _) = seeded(&app).await;
    let der = signer(&app).public_key().await.unwrap();

    // Everything but the ledger goes (the subject is long erased).
    for item in app.scan().await {
        let pk = item["pk"].as_s().unwrap();
        if pk != LEDGER_PK && pk != HEAD_PK {
            ddb(&app)
                .delete_item()
                .table_name(&app.stack.table)
                .key("pk", item["pk"].clone())
                .key("sk", item["sk"].clone())
                .send()
                .await
                .unwrap();
        }
    }

    // Read back without the store adapter: raw items to entries and heads.
    let string = |item: &Item, k: &str| item[k].as_s().unwrap().clone();
    let hash = |item: &Item, k: &str| -> [u8; 32] {
        hex::decode(string(item, k)).unwrap().try_into().unwrap()
    };
    let mut entries: Vec<LedgerEntry> = partition(&app, LEDGER_PK)
        .await
        .iter()
        .map(|item| LedgerEntry {
            seq: item["seq"].as_n().unwrap().parse().unwrap(),
            prev_hash: hash(item, "prev_hash"),
            hash: hash(item, "hash"),
            fields: item
                .iter()
                .filter(|(k, _)| {
                    !["pk", "sk", "kind", "seq", "prev_hash", "hash"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.as_s().unwrap().clone()))
                .collect(),
        })
        .collect();
    entries.sort_by_key(|e| e.seq);
    let heads: Vec<ledger::SignedHead> = partition(&app, HEAD_PK)
        .await
        .iter()
        .map(|item| ledger::SignedHead {
            date: string(item, "sk")
                .trim_start_matches("DAY#")
                .parse()
                .unwrap(),
            seq: item["seq"].as_n().unwrap().parse().unwrap(),
            hash: hash(item, "hash"),
            key_id: string(item, "key_id"),
            signature: item["signature"].as_b().unwrap().as_ref().to_vec(),
        })
        .collect();
    let key = P256PublicKey::from_spki_der(&der).unwrap();
    let verified = ledger::verify(&entries, &heads, &key).unwrap();
    assert_eq!((verified.entries, verified.signed_through), (5, 4));

    let lines = ledger::proof_for(&entries, &verified, Some(&a), None);
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.event, l.how, l.signed))
            .collect::<Vec<_>>(),
        [
            ("signup_consent", "web_form", true),
            ("recording_consent", "tool_call", true),
            ("consent_withdrawn", "dsar", false),
        ]
    );
    assert_eq!(lines[0].at, t("2026-11-28T10:00:00Z"));
    assert_eq!(lines[0].text_version.as_deref(), Some("2024-04-08"));
    assert_eq!(lines[0].text, ledger::consent_text("2024-04-08"));
    assert_eq!(lines[1].call_id.as_deref(), Some("call_a1"));
    let number = format!("{:064x}", 0);
    let proof = ledger::phone_consent_proof(&lines, &number).unwrap();
    assert_eq!(proof.granted_at, t("2026-11-28T10:00:00Z"));
    assert_eq!(proof.last_use, t("2026-11-28T10:02:00Z"));
}

/// R7.6: the sweep function, invoked as the `LedgerHeadDaily` schedule invokes it
/// (`{"ledger_head": true}`), signs the day's head with the template's KMS key; a second
/// run that day keeps the first head; the chain then verifies as signed through its end.
#[tokio::test]
async fn the_daily_schedule_signs_the_head_through_the_sweep_function() {
    let app = TestApp::spawn().await;
    seeded(&app).await;
    let config = app.stack.config_for("RetentionSweepFunction").unwrap();
    assert!(
        config.ledger_key_id.is_some(),
        "the template sets LEDGER_KEY_ID"
    );
    let sweep = retention_sweep::App::from_aws(&config, &app.stack.aws).unwrap();
    let clock = shared::FixedClock::at(t("2026-11-29T22:55:00Z"));
    let out = sweep
        .handle_event(
            &serde_json::json!({"ledger_head": true}),
            &clock,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(out["ledger_head"]["date"], "2026-11-29");
    assert_eq!(out["ledger_head"]["seq"], 5);
    let again = sweep
        .handle_event(
            &serde_json::json!({"ledger_head": true}),
            &clock,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(again, out);
    let v = verdict(&app).await.unwrap();
    assert_eq!((v.heads, v.signed_through, v.unsigned), (2, 5, 0));
    // Nothing of the sweep touched the ledger.
    assert_eq!(partition(&app, LEDGER_PK).await.len(), 5);
}

/// R7.6: end to end, a subject's consents reach the ledger from each place
/// they are given: the sign-up, the recording consent decided from the call (webhook,
/// naming the subject, the number's blind index and the call) and an objection carried
/// out by the request worker, with the do-not-call listing it causes (R7.1); the staff
/// route answers the verified history with the
/// exact consent text, and the answer is audited.
#[tokio::test]
async fn the_staff_route_answers_the_consents_given_at_signup_in_the_call_and_by_request() {
    use crate::common::dsar::STAFF;
    use harness::events::ApiRequest;
    let d = crate::common::World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;
    let (id, _) = d.verified("objection", EMAIL).await;
    assert_eq!(d.pump(&id, 2).await, 0);

    let path = format!("/v1/admin/subjects/{lead}/consents");
    let mut req = ApiRequest::get(&path);
    req.iam_user_arn = Some(STAFF);
    let (status, history) = d.call_staff(req).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["verified"], true, "{history}");
    let events: Vec<(String, String)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["how"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events.first().unwrap(),
        &("signup_consent".to_owned(), "web_form".to_owned())
    );
    // The objection, then the do-not-call listing it causes (R7.1), both from the request.
    assert_eq!(
        events[events.len() - 2..],
        [
            ("objection".to_owned(), "dsar".to_owned()),
            ("dnc_listed".to_owned(), "dsar".to_owned())
        ]
    );
    let consent: Vec<&Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "recording_consent")
        .collect();
    assert!(!consent.is_empty(), "{history}");
    for c in &consent {
        assert_eq!(c["granted"], true);
        assert_eq!(c["call_id"], script.call_id());
    }
    assert_eq!(
        history["events"][0]["text"].as_str(),
        ledger::consent_text("2024-04-08")
    );
    assert!(d
        .signup
        .audit_actions()
        .await
        .contains(&"subject.consents_viewed".to_owned()));
}
