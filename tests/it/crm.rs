//! The CRM webhook (issue 17): Art. 19 notices queued in the request's closing commit,
//! delivered by the real crm worker over real HTTP to the local receiver
//! (`harness::crm_sim`), signed, retried, exactly once; against the emulator.

use crate::common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::dsar::*;
use common::*;
use serde_json::{json, Value};
use shared::domain::LeadId;

use harness::crm_sim::{CrmReceiver, LOCAL_SECRET};

/// Numbers nobody else in this module uses (one per subject).
const PHONES: [&str; 4] = [
    "0170 5550101",
    "0170 5550102",
    "0170 5550103",
    "0170 5550104",
];

/// A world whose dsar worker knows a CRM at `receiver`, and that CRM's worker.
async fn with_crm(receiver: &CrmReceiver) -> (World, ::dsar::crm::CrmWorker) {
    let mut d = World::on_mail_emulator_named("crm").await;
    let stack = &d.signup.stack;
    let clock = Arc::new(d.signup.clock.clone());
    let mut dsar_config = stack.config_for("DsarWorkerFunction").unwrap();
    dsar_config.retell_api_base_url = d.sim.base_url().to_owned();
    dsar_config.crm_webhook_url = Some(receiver.webhook_url());
    d.exporter =
        ::dsar::worker::exporter_from_aws(&dsar_config, &stack.aws, clock.clone()).unwrap();
    let mut crm_config = stack.config_for("CrmWorkerFunction").unwrap();
    crm_config.crm_webhook_url = Some(receiver.webhook_url());
    assert_eq!(
        crm_config.crm_webhook_secret_arn.as_deref(),
        Some(stack.crm_secret_arn.as_str()),
        "the template hands the worker its secret"
    );
    let worker = ::dsar::crm::worker_from_aws(&crm_config, &stack.aws, clock).unwrap();
    (d, worker)
}

async fn subject(d: &World, email: &str, phone: &str) -> LeadId {
    let mut f = form();
    f["email"] = json!(email);
    f["phone"] = json!(phone);
    let (status, body) = d.signup.sign_up(&f).await;
    assert_eq!(status, 201, "{body}");
    d.signup.lead_of(email).await
}

/// Submits, verifies and carries out `body`'s request; its id and token.
async fn carried_out(d: &World, body: Value, seq: u64) -> (String, String) {
    let email = body["email"].as_str().unwrap().to_owned();
    let (status, b) = d.submit(&body).await;
    assert_eq!(status, 202, "{b}");
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;
    let (status, v) = d.verify(&id, &code).await;
    assert_eq!(status, 200, "{v}");
    let token = v["request_token"].as_str().unwrap().to_owned();
    assert_eq!(d.pump(&id, seq).await, 0);
    (id, token)
}

async fn received(receiver: &CrmReceiver) -> Value {
    reqwest::get(format!("{}/received", receiver.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn control(receiver: &CrmReceiver, path: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", receiver.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// The CRM's row of the status view's recipients (state and time).
async fn crm_recipient(d: &World, id: &str, token: &str) -> Option<String> {
    let (status, view) = d.status(id, Some(token)).await;
    assert_eq!(status, 200, "{view}");
    view["recipients"][shared::domain::registry::CRM.name]
        .as_str()
        .map(str::to_owned)
}

/// Checks `signature` over `body` with Python's own hmac module (not our code): the
/// header's v1 must equal HMAC-SHA256(secret, "<t>.<body>").
fn python_verifies(secret: &str, signature: &str, body: &str) -> bool {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import hmac,hashlib,sys\n\
             s,h,b=sys.argv[1:4]\n\
             p=dict(x.split('=',1) for x in h.split(','))\n\
             m=hmac.new(s.encode(),(p['t']+'.'+b).encode(),hashlib.sha256).hexdigest()\n\
             print('ok' if hmac.compare_digest(m,p['v1']) else 'bad')",
            secret,
            signature,
            body,
        ])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

/// Every item of the main table whose partition is `pk`.
async fn partition(d: &World, pk: &str) -> Vec<Item> {
    d.signup
        .scan()
        .await
        .into_iter()
        .filter(|i| matches!(i.get("pk"), Some(AttributeValue::S(p)) if p == pk))
        .collect()
}

/// R4.5, R4.6 (Art. 19 to the CRM): a restriction, an objection, a rectification and an
/// erasure each reach the CRM with their type and the subject's lead id, signed as verified by
/// Python's hmac module; while the CRM is down the status routes show the notice
/// `pending`, and once it is back every notice arrives exactly once, even when the CRM's
/// 2xx answer is lost (it dedupes on the event id, the outbox records one delivery);
/// then the status routes show `told`. The erasure notice is delivered after the subject's
/// items are gone, and its outbox item keeps no lead id once delivered. No personal value
/// reaches the logs.
#[tokio::test]
async fn every_notice_reaches_the_crm_signed_once_after_an_outage() {
    let (logs, _guard) = harness::logs::LogCapture::start();
    let receiver = CrmReceiver::start(([127, 0, 0, 1], 0).into(), LOCAL_SECRET)
        .await
        .unwrap();
    let (d, worker) = with_crm(&receiver).await;
    let delivery = worker.delivery.as_ref().expect("a CRM is configured");
    let emails: Vec<String> = (0..4).map(|_| unique_email()).collect();
    let mut leads = Vec::new();
    for (e, p) in emails.iter().zip(PHONES) {
        leads.push(subject(&d, e, p).await);
    }
    control(&receiver, "/down").await;

    let cases = [
        (
            "restricted",
            json!({"type": "restriction", "email": emails[0]}),
        ),
        ("objected", json!({"type": "objection", "email": emails[1]})),
        (
            "rectified",
            json!({"type": "rectification", "email": emails[2], "corrections": {"last_name": "Pflaumbaum"}}),
        ),
        ("erased", json!({"type": "erasure", "email": emails[3]})),
    ];
    let mut requests = Vec::new();
    for (n, (kind, body)) in cases.iter().enumerate() {
        let (id, token) = carried_out(&d, body.clone(), 10 + n as u64).await;
        requests.push((*kind, id, token));
    }
    // The erased subject is gone (nothing in its partition but the tombstone that bars
    // its resurrection), its notice queued.
    let left = partition(&d, &format!("LEAD#{}", leads[3])).await;
    assert!(
        left.iter().all(|i| i.get("sk")
            == Some(&AttributeValue::S(
                shared::adapters::dynamo::TOMBSTONE_SK.into()
            ))),
        "{left:?}"
    );
    let queued = d.signup.items_of_kind("crm_event").await;
    assert_eq!(queued.len(), 4, "{queued:?}");

    let report = delivery
        .drain(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((report.due, report.delivered, report.failed), (4, 0, 4));
    assert_eq!(received(&receiver).await["events"], json!([]));
    for (_, id, token) in &requests {
        let crm = crm_recipient(&d, id, token)
            .await
            .expect("the CRM is listed");
        assert!(crm.starts_with("pending ("), "{crm}");
    }
    // Not due again before the backoff: nothing is sent.
    let report = delivery
        .drain(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((report.due, report.pending), (0, 4));

    // Back, but the first answer is lost on the way.
    control(&receiver, "/up").await;
    control(&receiver, "/lose?count=1").await;
    d.signup.clock.advance(chrono::Duration::minutes(2));
    let report = delivery
        .drain(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed, report.pending), (3, 1, 1));
    d.signup.clock.advance(chrono::Duration::minutes(5));
    let report = delivery
        .drain(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed, report.pending), (1, 0, 0));
    // Nothing left: a further drain sends nothing.
    let report = delivery
        .drain(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.due, 0);

    let got = received(&receiver).await;
    assert_eq!(
        got["duplicates"], 1,
        "the lost answer's event came twice: {got}"
    );
    assert_eq!(got["rejected"], 0);
    let events = got["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{got}");
    for ((kind, id, token), lead) in requests.iter().zip(&leads) {
        let e = events
            .iter()
            .find(|e| e["event_id"] == json!(id))
            .unwrap_or_else(|| panic!("{kind} not received: {got}"));
        assert_eq!(e["type"], *kind);
        assert_eq!(e["lead_id"], lead.to_string());
        // Notices carry no record (no follow-up record exists for these subjects).
        assert!(e.get("record").is_none(), "{e}");
        let body = e["body"].as_str().unwrap();
        let signature = e["signature"].as_str().unwrap();
        assert!(python_verifies(LOCAL_SECRET, signature, body), "{kind}");
        assert!(!python_verifies("another-secret", signature, body));
        let tampered = body.replace(&lead.to_string(), &LeadId::new().to_string());
        assert!(!python_verifies(LOCAL_SECRET, signature, &tampered));
        let crm = crm_recipient(&d, id, token).await.unwrap();
        assert!(crm.starts_with("told ("), "{crm}");
        // One delivery recorded; the item keeps no lead id and leaves the due index.
        let item = partition(&d, &format!("CRM#{id}")).await.remove(0);
        assert!(item.contains_key("delivered_at"), "{item:?}");
        for gone in ["lead_id", "due_kind", "due_at"] {
            assert!(!item.contains_key(gone), "{gone} stays: {item:?}");
        }
        assert!(!values_of(&item)
            .iter()
            .any(|v| contains_ci(v, &lead.to_string())));
    }
    let mut personal: Vec<&str> = emails.iter().map(String::as_str).collect();
    personal.extend([FIRST, LAST, "Pflaumbaum", NOTES]);
    logs.assert_free_of(&personal);
    receiver.stop().await;
    d.shutdown().await.unwrap();
}

/// Every string and binary of `item`.
fn values_of(item: &Item) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    for v in item.values() {
        flatten(v, &mut values);
    }
    values
}

/// Without a CRM (the template's default) a restriction queues no CRM event and the
/// status route names no CRM among the recipients.
#[tokio::test]
async fn without_a_crm_nothing_is_queued_and_no_crm_is_named() {
    let d = World::on_mail_emulator_named("crm").await;
    let email = unique_email();
    subject(&d, &email, PHONES[0]).await;
    let (id, token) = carried_out(&d, json!({"type": "restriction", "email": email}), 1).await;
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["outcome"], "restricted", "{view}");
    assert!(d.signup.items_of_kind("crm_event").await.is_empty());
    assert!(
        !view
            .to_string()
            .contains(shared::domain::registry::CRM.name),
        "{view}"
    );
    d.shutdown().await.unwrap();
}

/// The follow-up item sales' handoff wrote for `lead`, as the stream hands it on.
async fn followup_stream_event(d: &World, lead: &LeadId) -> Option<Value> {
    let item = d
        .signup
        .item(shared::adapters::dynamo::lead_pk(lead), "FOLLOWUP")
        .await?;
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some(
        json!({"Records": [{"eventName": "INSERT", "dynamodb": {"NewImage": {
            "kind": {"S": s("kind")?},
            "lead_id": {"S": s("lead_id")?},
            "call_id": {"S": s("call_id")?},
        }}}]}),
    )
}

/// Plays a consented call of `lead` through the real webhook and telephony worker until
/// its follow-up item is written; the instant `call_analyzed` was delivered.
async fn analysed_call(d: &World, lead: &LeadId, seq: u64) -> (std::time::Instant, Value, String) {
    let script = d.script(harness::simulator::scenario::Scenario::ConsentYes, lead);
    d.deliver(&script, "call_ended").await;
    let at = std::time::Instant::now();
    d.deliver(&script, "call_analyzed").await;
    for n in 0..4 {
        if let Some(e) = followup_stream_event(d, lead).await {
            return (at, e, script.call_id().to_owned());
        }
        assert_eq!(d.pump_call(script.call_id(), seq * 10 + n).await, 0);
    }
    panic!("no follow-up item for the analysed call");
}

/// A lead whose call is analysed and settled reaches the CRM (issue 17) as a `followup`
/// with its record (name, contact details, the agent's summary and analysis, consent,
/// call date; no transcript), signed as Python's hmac module verifies; the stream's
/// redelivery of the follow-up item queues no second event; the lead's later erasure
/// reaches the CRM as `erased` after the subject's items are gone. Measures the time
/// from `call_analyzed` to the record at the receiver (p50 over 20 calls, in process,
/// the stream played by the test) and the AWS requests of the crm worker per record.
#[tokio::test]
async fn a_followup_record_reaches_the_crm_and_the_erasure_follows() {
    let receiver = CrmReceiver::start(([127, 0, 0, 1], 0).into(), LOCAL_SECRET)
        .await
        .unwrap();
    let d = World::on_mail_emulator_named("crm").await;
    let stack = &d.signup.stack;
    let mut dsar_config = stack.config_for("DsarWorkerFunction").unwrap();
    dsar_config.retell_api_base_url = d.sim.base_url().to_owned();
    dsar_config.crm_webhook_url = Some(receiver.webhook_url());
    let mut d = d;
    d.exporter = ::dsar::worker::exporter_from_aws(
        &dsar_config,
        &d.signup.stack.aws,
        Arc::new(d.signup.clock.clone()),
    )
    .unwrap();
    let stack = &d.signup.stack;
    let mut crm_config = stack.config_for("CrmWorkerFunction").unwrap();
    crm_config.crm_webhook_url = Some(receiver.webhook_url());
    let counter = harness::requests::RequestCounter::default();
    let clients = ::dsar::crm::Clients {
        ddb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&stack.aws)
                .interceptor(counter.clone())
                .build(),
        ),
        kms: aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&stack.aws)
                .interceptor(counter.clone())
                .build(),
        ),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&stack.aws)
                .interceptor(counter.clone())
                .build(),
        ),
    };
    let worker =
        ::dsar::crm::worker_from(&crm_config, &clients, Arc::new(d.signup.clock.clone())).unwrap();
    let budget = std::time::Duration::from_secs(30);

    // The first lead: every field of its record, then its erasure.
    let email = unique_email();
    let lead = subject(&d, &email, PHONES[0]).await;
    let (_, event, call_id) = analysed_call(&d, &lead, 1).await;
    ::dsar::crm::handle(&worker, event.clone(), budget)
        .await
        .unwrap();
    // The stream redelivers the item (and a `done` mark modifies it): no second event.
    let r = ::dsar::crm::handle(&worker, event, budget).await.unwrap();
    assert_eq!(r["queued"], 0, "{r}");
    let got = received(&receiver).await;
    let events = got["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{got}");
    let e = &events[0];
    assert_eq!(e["type"], "followup");
    assert_eq!(e["lead_id"], lead.to_string());
    assert!(python_verifies(
        LOCAL_SECRET,
        e["signature"].as_str().unwrap(),
        e["body"].as_str().unwrap()
    ));
    let record = &e["record"];
    assert_eq!(record["lead_id"], lead.to_string());
    assert_eq!(record["first_name"], FIRST);
    assert_eq!(record["last_name"], LAST);
    assert_eq!(record["email"], email.as_str());
    assert_eq!(record["phone"], "+491705550101");
    assert_eq!(record["consent"]["contact_by_phone"], true, "{record}");
    for field in ["call_date", "summary", "analysis", "ready_at"] {
        assert!(record.get(field).is_some(), "{field} missing: {record}");
    }
    assert!(!e["body"].as_str().unwrap().contains("transcript"), "{e}");
    assert!(
        !e["body"].as_str().unwrap().contains(&call_id),
        "no call id: {e}"
    );

    let (_, _) = carried_out(&d, json!({"type": "erasure", "email": email}), 100).await;
    let left = partition(&d, &format!("LEAD#{lead}")).await;
    assert!(
        left.iter().all(|i| i.get("sk")
            == Some(&AttributeValue::S(
                shared::adapters::dynamo::TOMBSTONE_SK.into()
            ))),
        "{left:?}"
    );
    ::dsar::crm::handle(&worker, json!({"job": "crm-retry"}), budget)
        .await
        .unwrap();
    let got = received(&receiver).await;
    let erased: Vec<&Value> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "erased")
        .collect();
    assert_eq!(erased.len(), 1, "{got}");
    assert_eq!(erased[0]["lead_id"], lead.to_string());

    // The measurement: 20 more calls, each from call_analyzed to the receiver.
    let mut millis = Vec::new();
    let mut requests = Vec::new();
    for n in 0..20u64 {
        let email = unique_email();
        let phone = format!("0170 55503{n:02}");
        let lead = subject(&d, &email, &phone).await;
        let (at, event, _) = analysed_call(&d, &lead, 200 + n).await;
        counter.reset();
        ::dsar::crm::handle(&worker, event, budget).await.unwrap();
        millis.push(at.elapsed().as_millis());
        requests.push(counter.total());
        let got = received(&receiver).await;
        assert!(
            got["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["lead_id"] == lead.to_string()),
            "{got}"
        );
    }
    millis.sort();
    requests.sort();
    println!(
        "crm: call_analyzed → record at the receiver: p50 {} ms, max {} ms (20 calls, in process); \
         AWS requests of the crm worker per record: p50 {}, max {} ({:?})",
        millis[10],
        millis[19],
        requests[10],
        requests[19],
        counter.by_operation()
    );
    receiver.stop().await;
    d.shutdown().await.unwrap();
}
