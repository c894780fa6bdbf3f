//! Identity binding of data-subject requests (issue 10): a request acts on a subject only
//! through identifiers whose possession was proven; strangers can neither use up a
//! subject's requests nor guess codes faster than the attempt limit allows.

use crate::common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use harness::events::ApiRequest;
use serde_json::{json, Value};
use shared::domain::{LeadId, PhoneNumber};
use shared::dsar::RequestType;
use shared::ports::IdentifierKind;

use common::dsar::{unique_email, unzip};
use common::{TestApp, World};

/// A world on this module's own emulator. The matrix creates some hundred subjects and
/// requests; on a shared emulator they would slow every other test that reads mail
/// (moto's mail dump, which tests read codes from, walks every object it ever held).
async fn spawn() -> World {
    World::start_on(&emulator()).await
}

fn emulator() -> String {
    harness::emulator::private("dsar-identity")
}

/// A signed-up person.
struct Person {
    email: String,
    phone: String,
    lead: LeadId,
}

fn unique_phone() -> String {
    let n = uuid::Uuid::now_v7().as_u128() % 10_000_000;
    format!("+49170{n:07}")
}

async fn person(d: &World) -> Person {
    let email = unique_email();
    let phone = unique_phone();
    let mut form = common::form();
    form["email"] = json!(email);
    form["phone"] = json!(phone);
    let (status, body) = d.signup.sign_up(&form).await;
    assert_eq!(status, 201, "{body}");
    let lead = d.signup.lead_of(&email).await;
    Person { email, phone, lead }
}

/// Every stored item that belongs to `lead` (its partition, key, claims, links, calls),
/// rendered so that two snapshots compare equal exactly when nothing changed.
async fn snapshot(app: &TestApp, lead: &LeadId) -> Vec<String> {
    let id = lead.to_string();
    let mut items: Vec<String> = app
        .scan()
        .await
        .into_iter()
        .filter(|i| {
            i.values()
                .any(|v| v.as_s().is_ok_and(|s| s.contains(id.as_str())))
        })
        .map(|i| {
            let sorted: std::collections::BTreeMap<_, _> = i.into_iter().collect();
            format!("{sorted:?}")
        })
        .collect();
    items.sort();
    items
}

/// Which identifiers a request names.
#[derive(Debug, Clone, Copy)]
enum Id {
    /// The requester's own email, of their own subject A (proven by the code).
    OwnEmail,
    /// An email we hold nothing on (the requester's, proven by the code).
    UnknownEmail,
    /// Subject A's phone number.
    OwnPhone,
    /// Subject B's phone number: somebody else.
    OtherPhone,
    /// A phone number we hold nothing on.
    UnknownPhone,
}

/// What must happen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Carried out on the requester's own subject A.
    ActsOnOwn,
    /// Completed: we hold nothing (proven identifiers only, none known).
    NoData,
    /// Waits for the staff identity check; nothing disclosed or changed.
    Waits,
}

/// One row: the identifiers, an optional correction that would move an identifier onto
/// the subject, and the outcome.
struct Row {
    ids: &'static [Id],
    correct_phone: Option<Id>,
    expect: Expect,
}

const ROWS: &[Row] = &[
    Row {
        ids: &[Id::OwnEmail],
        correct_phone: None,
        expect: Expect::ActsOnOwn,
    },
    Row {
        ids: &[Id::UnknownEmail],
        correct_phone: None,
        expect: Expect::NoData,
    },
    Row {
        ids: &[Id::OwnPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::OtherPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::UnknownPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::OwnEmail, Id::OwnPhone],
        correct_phone: None,
        expect: Expect::ActsOnOwn,
    },
    Row {
        ids: &[Id::OwnEmail, Id::OtherPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::OwnEmail, Id::UnknownPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::UnknownEmail, Id::OtherPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::UnknownEmail, Id::UnknownPhone],
        correct_phone: None,
        expect: Expect::Waits,
    },
];

/// Rectifications that would move a phone number onto the requester's subject.
const CORRECTION_ROWS: &[Row] = &[
    Row {
        ids: &[Id::OwnEmail],
        correct_phone: Some(Id::OtherPhone),
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::OwnEmail],
        correct_phone: Some(Id::UnknownPhone),
        expect: Expect::Waits,
    },
    Row {
        ids: &[Id::OwnEmail],
        correct_phone: Some(Id::OwnPhone),
        expect: Expect::ActsOnOwn,
    },
];

struct CaseResult {
    label: String,
    /// Something of B changed, or B's data reached the requester.
    breach: bool,
    /// B's email, checked against every sent mail at the end (one emulator dump).
    other_email: String,
}

/// A submitted case, waiting for its code.
struct Submitted {
    label: String,
    row: &'static Row,
    kind: RequestType,
    own: Person,
    other: Person,
    before: Vec<String>,
    id: String,
    email: Option<String>,
}

async fn submit_case(d: &World, row: &'static Row, kind: RequestType) -> Submitted {
    let own = person(d).await;
    let other = person(d).await;
    let unknown_email = unique_email();
    let unknown_phone = unique_phone();
    let value = |id: Id| match id {
        Id::OwnEmail => own.email.clone(),
        Id::UnknownEmail => unknown_email.clone(),
        Id::OwnPhone => own.phone.clone(),
        Id::OtherPhone => other.phone.clone(),
        Id::UnknownPhone => unknown_phone.clone(),
    };
    let label = format!(
        "{} {:?} correct_phone={:?}",
        kind.code(),
        row.ids,
        row.correct_phone
    );
    let before = snapshot(&d.signup, &other.lead).await;

    let mut body = json!({"type": kind.code()});
    let mut email = None;
    for id in row.ids {
        match id {
            Id::OwnEmail | Id::UnknownEmail => {
                email = Some(value(*id));
                body["email"] = json!(value(*id));
            }
            _ => body["phone"] = json!(value(*id)),
        }
    }
    if kind == RequestType::Rectification {
        body["corrections"] = match row.correct_phone {
            Some(id) => json!({"phone": value(id)}),
            None => json!({"last_name": "Neumann"}),
        };
    }
    let (status, answer) = d.submit(&body).await;
    assert_eq!(status, 202, "{label}: {answer}");
    assert_eq!(answer["status"], "received", "{label}");
    let id = answer["request_id"].as_str().unwrap().to_owned();
    Submitted {
        label,
        row,
        kind,
        own,
        other,
        before,
        id,
        email,
    }
}

/// Gives the request a code the test knows: the stored keyed hash is replaced by that of
/// a fresh code, computed with the same KMS key. (Reading each code from the emulator's
/// mail dump costs seconds per case; the code mail itself is tested in `dsar.rs`.)
async fn known_code(d: &World, id: &str) -> String {
    let code = shared::dsar::service::new_code();
    let hash = d
        .api
        .service
        .keys
        .blind_index(IdentifierKind::RequestCode, &format!("{id}:{code}"))
        .await
        .unwrap();
    aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .update_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(format!("DSAR#{id}")))
        .key("sk", AttributeValue::S("CODE".into()))
        .update_expression("SET code_hash = :h")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":h", AttributeValue::S(hash.as_str().to_owned()))
        .send()
        .await
        .unwrap();
    code
}

async fn finish_case(d: &World, case: Submitted, n: usize) -> CaseResult {
    let Submitted {
        label,
        row,
        kind,
        own,
        other,
        before,
        id,
        email,
    } = case;
    let mut token = None;
    if email.is_some() {
        let code = known_code(d, &id).await;
        let (status, verified) = d.verify(&id, &code).await;
        assert_eq!(status, 200, "{label}: {verified}");
        token = verified["request_token"].as_str().map(str::to_owned);
    }
    // The stream redelivers a failed record; under a loaded machine one attempt may run
    // out of time, and a redelivery must then finish the case (the worker is idempotent).
    let mut failures = d.pump(&id, n as u64).await;
    for _ in 0..2 {
        if failures == 0 {
            break;
        }
        failures = d.pump(&id, n as u64).await;
    }
    assert_eq!(failures, 0, "{label}");

    let record = d.request_item(&id).await;
    let text = |name: &str| record.get(name).and_then(|v| v.as_s().ok()).cloned();
    let status = text("status").unwrap_or_default();
    let outcome = text("outcome");
    match row.expect {
        Expect::Waits => {
            assert_eq!(status, "awaiting_identity_check", "{label}");
            assert_eq!(outcome, None, "{label}");
        }
        Expect::NoData => {
            assert_eq!(status, "completed", "{label}");
            let outcome = outcome.unwrap_or_default();
            assert!(matches!(outcome.as_str(), "no_data"), "{label}: {outcome}");
        }
        Expect::ActsOnOwn => {
            assert_eq!(status, "completed", "{label}");
            let outcome = outcome.unwrap_or_default();
            assert!(
                !matches!(outcome.as_str(), "no_data" | "rectification_refused"),
                "{label}: {outcome}"
            );
            assert_eq!(
                text("lead_id").is_some(),
                kind != RequestType::Erasure,
                "{label}"
            );
        }
    }
    // What the requester can see: the status route with their token.
    let mut disclosed = String::new();
    if let Some(t) = &token {
        let (code, view) = d.status(&id, Some(t)).await;
        assert_eq!(code, 200, "{label}");
        if row.expect == Expect::Waits {
            assert!(view.get("download_url").is_none(), "{label}");
            assert!(view.get("outcome").is_none(), "{label}");
        }
        disclosed.push_str(&view.to_string());
        if let Some(url) = view["download_url"].as_str() {
            let files = unzip(&d.download(url).await);
            for (_, bytes) in files {
                disclosed.push_str(&String::from_utf8_lossy(&bytes));
            }
            if row.expect == Expect::ActsOnOwn {
                assert!(disclosed.contains(&own.email), "{label}: own data exported");
            }
        }
    }
    let after = snapshot(&d.signup, &other.lead).await;
    let other_phone_e164 = PhoneNumber::parse(&other.phone).unwrap();
    let breach = before != after
        || disclosed.contains(&other.email)
        || disclosed.contains(other_phone_e164.expose());
    assert_eq!(before, after, "{label}: the other subject changed");
    assert!(!breach, "{label}: the other subject's data was disclosed");
    CaseResult {
        label,
        breach,
        other_email: other.email,
    }
}

/// R4.1, R4.2: every identifier combination (email only, phone only, both; own, unknown,
/// somebody else's) × every request type: the request acts only on the subject its proven
/// identifiers point at; in every mismatch it waits for the staff identity check, and the
/// other subject is neither changed, mailed nor disclosed.
#[tokio::test]
async fn every_identifier_combination_and_type_acts_only_on_the_proven_subject() {
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    let mut total = 0;
    // One isolated stack per request type: the emulator's transactions copy whole
    // tables, so small tables keep the matrix fast.
    for kind in RequestType::ALL {
        let mut d = spawn().await;
        // Every case comes from the same test source address.
        d.api.service.source_daily_limit = 10_000;
        let rows: Vec<&'static Row> = ROWS
            .iter()
            .chain(
                CORRECTION_ROWS
                    .iter()
                    .filter(|_| kind == RequestType::Rectification),
            )
            .collect();
        total += rows.len();
        // Sign-ups and submissions one after the other (the emulator's transactions are
        // not built for concurrent writers), then verification and the worker side by
        // side.
        let mut submitted = Vec::new();
        for row in rows {
            submitted.push(submit_case(&d, row, kind).await);
        }
        let runs = submitted
            .into_iter()
            .enumerate()
            .map(|(j, case)| finish_case(&d, case, j + 1));
        results.extend(join_all(runs).await);
        eprintln!(
            "identity binding: {} cases done after {:?}",
            results.len(),
            started.elapsed()
        );
    }
    // Nobody but the requester was mailed: no mail went to any other subject (but the
    // receipt of their own sign-up consent, R7.6, which the sign-up sent).
    let receipt = shared::domain::ledger::receipt_mail("2024-04-08", chrono::Utc::now()).subject;
    let mails = harness::stack::all_sent_mail_at(&emulator()).await.unwrap();
    for r in &mut results {
        if mails
            .iter()
            .any(|m| m.to.contains(&r.other_email) && m.subject != receipt)
        {
            r.breach = true;
        }
    }
    let breaches: Vec<&str> = results
        .iter()
        .filter(|r| r.breach)
        .map(|r| r.label.as_str())
        .collect();
    println!(
        "identity binding: {total} combinations, {} disclose or change anything without proof",
        breaches.len()
    );
    assert_eq!(total, 7 * ROWS.len() + CORRECTION_ROWS.len());
    assert!(breaches.is_empty(), "{breaches:?}");
}

/// R4.1, R4.10: the staff identity check proves the phone: a phone-only request then
/// acts on that subject; a request whose email and phone belong to different subjects
/// cannot be verified into acting on either (staff deny it), and nothing changes.
#[tokio::test]
async fn the_staff_check_proves_a_phone_and_refuses_identifiers_of_two_subjects() {
    let d = spawn().await;
    let own = person(&d).await;
    let other = person(&d).await;
    let before = snapshot(&d.signup, &other.lead).await;

    let (_, answer) = d
        .submit(&json!({"type": "restriction", "email": own.email, "phone": other.phone}))
        .await;
    let mixed = answer["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&own.email, &mixed).await;
    let (status, verified) = d.verify(&mixed, &code).await;
    assert_eq!(status, 200);
    assert_eq!(verified["status"], "awaiting_identity_check");
    let mixed_id = shared::domain::RequestId::parse(&mixed).unwrap();
    let refused = d
        .api
        .service
        .verify_identity(&mixed_id, "staff:test")
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        shared::dsar::service::DsarError::AmbiguousSubject
    ));
    assert_eq!(d.pump(&mixed, 1).await, 0);
    assert_eq!(
        d.request_item(&mixed).await["status"].as_s().unwrap(),
        "awaiting_identity_check"
    );
    assert_eq!(before, snapshot(&d.signup, &other.lead).await);

    // Phone only: after the staff check it acts on the phone's subject.
    let (_, answer) = d
        .submit(&json!({"type": "restriction", "phone": other.phone}))
        .await;
    let phone_only = answer["request_id"].as_str().unwrap().to_owned();
    let id = shared::domain::RequestId::parse(&phone_only).unwrap();
    let checked = d
        .api
        .service
        .verify_identity(&id, "staff:test")
        .await
        .unwrap();
    assert!(checked.token.is_some());
    assert_eq!(d.pump(&phone_only, 2).await, 0);
    let record = d.request_item(&phone_only).await;
    assert_eq!(record["outcome"].as_s().unwrap(), "restricted");
    assert_eq!(record["lead_id"].as_s().unwrap(), &other.lead.to_string());
}

/// R4.1: the code's tries are taken before the comparison: once five are taken (here by
/// concurrent wrong guesses), even the right code is refused, and however many guesses
/// arrive at once, no more than five are ever compared.
#[tokio::test]
async fn concurrent_wrong_codes_never_exceed_the_attempt_limit() {
    let d = spawn().await;
    let email = unique_email();
    let (_, answer) = d.submit(&json!({"type": "access", "email": email})).await;
    let id = answer["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let guesses = join_all((0..20).map(|_| d.verify(&id, wrong))).await;
    let compared = guesses.iter().filter(|(s, _)| *s == 422).count();
    assert!(compared <= 4, "at most four wrong-code answers: {compared}");
    assert!(guesses.iter().all(|(s, _)| matches!(s, 422 | 410 | 409)));
    let attempts = aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .get_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(format!("DSAR#{id}")))
        .key("sk", AttributeValue::S("CODE".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .and_then(|i| i.get("attempts").and_then(|v| v.as_n().ok()).cloned())
        .map_or(5, |n| n.parse::<u32>().unwrap());
    assert!(attempts <= 5, "{attempts}");
    // The right code now finds no try left.
    let (status, _) = d.verify(&id, &code).await;
    assert_eq!(status, 410);
    assert_eq!(
        d.request_item(&id).await["status"].as_s().unwrap(),
        "verification_failed"
    );
}

/// R4.1: the right code is refused once its five tries are taken, even if all five
/// are still in flight (the try is taken before the comparison).
#[tokio::test]
async fn the_right_code_is_refused_once_the_tries_are_taken() {
    let d = spawn().await;
    let email = unique_email();
    let (_, answer) = d.submit(&json!({"type": "access", "email": email})).await;
    let id = answer["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;
    aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .update_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(format!("DSAR#{id}")))
        .key("sk", AttributeValue::S("CODE".into()))
        .update_expression("SET attempts = :five")
        .expression_attribute_values(":five", AttributeValue::N("5".into()))
        .send()
        .await
        .unwrap();
    let (status, body) = d.verify(&id, &code).await;
    assert_eq!(status, 410, "{body}");
    assert!(body.get("request_token").is_none());
}

/// R5.3: the per-source request limits count by keyed hashes: a stranger's requests
/// count against their own source, one source is capped at its daily number whatever it
/// names, and no stored counter holds the source address or the email in clear.
#[tokio::test]
async fn a_stranger_cannot_use_up_a_subjects_requests_and_a_source_is_capped() {
    let d = spawn().await;
    let email = unique_email();
    let body = serde_json::to_vec(&json!({"type": "access", "email": email})).unwrap();
    let from = |ip: &'static str| ApiRequest {
        source_ip: ip,
        ..ApiRequest::post_json("/v1/dsar", &body)
    };
    for _ in 0..3 {
        assert_eq!(d.call(from("198.51.100.66")).await.0, 202);
    }
    assert_eq!(d.call(from("198.51.100.66")).await.0, 429);
    // The subject, from their own network, still gets through.
    assert_eq!(d.call(from("203.0.113.10")).await.0, 202);

    // One source, many identifiers: capped at the source limit (10 by default).
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let b = serde_json::to_vec(&json!({"type": "access", "email": unique_email()})).unwrap();
        let req = ApiRequest {
            source_ip: "192.0.2.44",
            ..ApiRequest::post_json("/v1/dsar", &b)
        };
        statuses.push(d.call(req).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 10);
    assert_eq!(statuses.last(), Some(&429));
    // No counter names the address or the email in plaintext.
    for item in d.signup.scan().await {
        let rendered = format!("{item:?}");
        assert!(!rendered.contains("198.51.100.66") && !rendered.contains(&email));
    }
}

/// R5.2: a request's sealed contact has its own data key, kept in the key table (no
/// backups), not beside the sealed contact; closing the request deletes both.
#[tokio::test]
async fn request_contact_keys_live_in_the_key_table_and_go_when_the_request_closes() {
    let d = spawn().await;
    let email = unique_email();
    let (id, _) = d.verified("restriction", &email).await;
    let items: Vec<HashMap<String, AttributeValue>> = d.signup.scan().await;
    let of_request = |items: &[HashMap<String, AttributeValue>], sk: &str| {
        items
            .iter()
            .filter(|i| {
                i.get("pk").and_then(|v| v.as_s().ok()) == Some(&format!("DSAR#{id}"))
                    && i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(sk)
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let contact = of_request(&items, "CONTACT");
    assert_eq!(contact.len(), 1);
    assert!(!contact[0].contains_key("wrapped_key"));
    let key = of_request(&items, "KEY");
    assert_eq!(key.len(), 1);
    assert!(key[0].contains_key("wrapped_key") && key[0].contains_key("ttl"));
    let in_key_table = aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .get_item()
        .table_name(&d.signup.stack.key_table)
        .key("pk", AttributeValue::S(format!("DSAR#{id}")))
        .key("sk", AttributeValue::S("KEY".into()))
        .send()
        .await
        .unwrap()
        .item;
    assert!(in_key_table.is_some());
    assert_eq!(d.pump(&id, 1).await, 0);
    let items = d.signup.scan().await;
    assert!(of_request(&items, "CONTACT").is_empty());
    assert!(of_request(&items, "KEY").is_empty());
    let _ = Value::Null;
}
