//! `polly-admin` against the local stack, signed, through the local gateway
//! (`harness::gateway`) wired as `make run` wires it: the local keys, the staff function
//! admitting `LOCAL_STAFF_ROLE` (what `polly-local provision` configures). The CLI runs
//! in-process over real HTTP; the assertions read the store with the AWS SDK.
//!
//! Also the refusals: unsigned, wrongly signed (bad secret, body changed after signing,
//! stale date) requests never reach the staff function; a validly signed principal outside
//! the allow-list is refused by it and audited.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use common::dsar::*;
use common::*;
use harness::gateway::{
    local_keys, Gateway, LocalKey, RunningGateway, StaffBackend, LOCAL_INTRUDER_PRINCIPAL,
    LOCAL_STAFF_PRINCIPAL, LOCAL_STAFF_ROLE,
};
use serde_json::{json, Value};
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;

type Item = HashMap<String, AttributeValue>;

/// A world (own mail emulator), its staff function admitting the local staff role, and
/// the gateway in front of it.
struct Desk {
    d: World,
    gw: RunningGateway,
}

impl Desk {
    async fn start() -> Self {
        let d = World::on_mail_emulator().await;
        let mut config = d.signup.stack.config_for("DsarStaffFunction").unwrap();
        config.staff_principal_arns = vec![LOCAL_STAFF_ROLE.to_owned()];
        let staff = ::dsar::staff::StaffApp::from_aws(
            config,
            &d.signup.stack.aws,
            Arc::new(d.signup.clock.clone()),
        )
        .unwrap();
        let gw = Gateway::new(local_keys(), StaffBackend::InProcess(Arc::new(staff)), None)
            .start(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        Self { d, gw }
    }

    /// `polly-admin <line>` signed with `key`.
    async fn admin_as(&self, key: &LocalKey, args: &[&str]) -> admin::Outcome {
        admin::run(&strings(args), settings(self.gw.base_url(), key)).await
    }

    /// `polly-admin <args>` signed with the local staff key; must succeed.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.admin_as(&local_keys()[0], args).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        out.stdout
    }

    /// `polly-admin --json <args>`; must succeed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    async fn audit_of(&self, actor: &str) -> Vec<String> {
        self.d
            .signup
            .items_of_kind("audit")
            .await
            .iter()
            .filter(|a| {
                a.get("actor")
                    .and_then(|x| x.as_s().ok())
                    .map(String::as_str)
                    == Some(actor)
            })
            .filter_map(|a| a.get("action")?.as_s().ok().cloned())
            .collect()
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn settings(url: &str, key: &LocalKey) -> admin::Settings {
    admin::Settings {
        api_url: Some(url.to_owned()),
        credentials: Some(key.credentials()),
        region: None,
        poll_interval: Duration::from_millis(50),
        wait_limit: Duration::from_secs(30),
    }
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or("")
}

/// Sets `restricted` on a subject directly (the request flow is tested in dsar_rights).
async fn restrict(d: &World, lead: &LeadId) {
    aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .update_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(lead_pk(lead)))
        .key("sk", AttributeValue::S(LEAD_SK.into()))
        .update_expression("SET restricted = :t ADD version :one")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
}

/// R4.10, R4.11: the request commands of `polly-admin` (list, extend, verify-identity,
/// deny), signed with the local staff key through the local gateway, change the stored
/// requests, print what changed without the requester's address or number, and are
/// audited with the principal the signature names.
#[tokio::test]
async fn request_commands_signed_through_the_gateway_change_the_requests() {
    let desk = Desk::start().await;
    let d = &desk.d;
    let email = unique_email();
    let (id, token) = d.verified("access", &email).await;
    let (_, phone_only) = d
        .submit(&json!({"type": "access", "phone": "0171 2345678"}))
        .await;
    let phone_id = phone_only["request_id"].as_str().unwrap().to_owned();

    // list: both requests, no contact data; --json is the route's JSON.
    let text = desk.ok(&["list"]).await;
    assert!(text.contains(&id) && text.contains(&phone_id), "{text}");
    assert!(text.contains("awaiting_identity_check"), "{text}");
    assert!(
        !text.contains(&email) && !text.contains("2345678"),
        "{text}"
    );
    let list = desk.json(&["list"]).await;
    let listed: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    assert!(listed.contains(&id.as_str()) && listed.contains(&phone_id.as_str()));

    // extend: the stored deadline moves and the request is marked extended.
    let before = d.request_item(&id).await;
    let text = desk
        .ok(&[
            "extend",
            &id,
            "--months",
            "1",
            "--reason",
            "Sehr umfangreiche Daten",
        ])
        .await;
    let after = d.request_item(&id).await;
    assert_eq!(after["extended"].as_bool().unwrap(), &true);
    assert_ne!(s(&after, "due_date"), s(&before, "due_date"));
    assert!(
        text.contains(&format!("now due {}.", s(&after, "due_date"))),
        "{text}"
    );
    // Extending twice is refused by the route; the CLI says why and exits 1.
    let again = desk
        .admin_as(
            &local_keys()[0],
            &["extend", &id, "--months", "1", "--reason", "x"],
        )
        .await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.starts_with("error: HTTP 4"), "{again:?}");

    // verify-identity: the phone-only request goes to work; the printed token opens it.
    let text = desk.ok(&["verify-identity", &phone_id]).await;
    assert_eq!(s(&d.request_item(&phone_id).await, "status"), "in_progress");
    let phone_token = text
        .lines()
        .find_map(|l| l.strip_prefix("Request token for the subject's status page: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(d.status(&phone_id, Some(phone_token)).await.0, 200);

    // deny: with reasons (repeatable), the request is closed.
    desk.ok(&[
        "deny",
        &id,
        "--reason",
        "Offenkundig unbegründet",
        "--reason",
        "Art. 12 Abs. 5 DSGVO",
    ])
    .await;
    assert_eq!(s(&d.request_item(&id).await, "status"), "denied");
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "denied");

    let mut actions = desk.audit_of(LOCAL_STAFF_PRINCIPAL).await;
    actions.sort();
    actions.dedup();
    assert_eq!(
        actions,
        [
            "dsar.denied",
            "dsar.extended",
            "dsar.identity_verified",
            "dsar.listed"
        ]
    );
}

/// Removes (or restores) the exports bucket, so the worker's export fails.
async fn exports_bucket(d: &World, restore: bool) {
    let s3 = harness::s3_client(&d.signup.stack.aws);
    let bucket = d.signup.stack.bucket("ExportsBucket");
    if restore {
        s3.create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuCentral1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    } else {
        s3.delete_bucket().bucket(bucket).send().await.unwrap();
    }
}

/// R4.10: a request the worker could not finish is marked FAILED (with its reason) in
/// `polly-admin list`, listed before requests in time, and `polly-admin retry` hands it
/// back to the worker (stored `in_progress`, reason gone, audited).
#[tokio::test]
async fn a_failed_request_is_marked_in_the_list_and_retried() {
    let desk = Desk::start().await;
    let d = &desk.d;
    let (fine, _) = d.verified("restriction", &unique_email()).await;
    let (id, _) = d.verified("access", &unique_email()).await;
    exports_bucket(d, false).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    let reason = s(&d.request_item(&id).await, "failure_reason").to_owned();
    assert!(reason.starts_with("export_"), "{reason}");
    exports_bucket(d, true).await;

    let text = desk.ok(&["list"]).await;
    let row_of = |rid: &str| text.lines().position(|l| l.starts_with(rid)).unwrap();
    assert!(row_of(&id) < row_of(&fine), "{text}");
    let failed_row = text.lines().nth(row_of(&id)).unwrap();
    assert!(failed_row.contains(&format!("FAILED ({reason})")), "{text}");

    let text = desk.ok(&["retry", &id]).await;
    assert!(text.contains("back with the worker"), "{text}");
    let item = d.request_item(&id).await;
    assert_eq!(s(&item, "status"), "in_progress");
    assert!(!item.contains_key("failure_reason"));
    assert!(desk
        .audit_of(LOCAL_STAFF_PRINCIPAL)
        .await
        .contains(&"dsar.retried".to_owned()));
    // Retrying what is no longer failed: the route's refusal, exit 1.
    let again = desk.admin_as(&local_keys()[0], &["retry", &id]).await;
    assert_eq!(again.code, 1, "{again:?}");
}

/// R4.10, R4.11: the subject commands of `polly-admin`: view a subject (prints the
/// record, audited), its consents, record and end a contract (the stored hold follows the
/// end), lift a restriction (stored unrestricted), the do-not-call list and lift (stored
/// entry; the number itself is never printed); every action audited with the principal
/// the signature names.
#[tokio::test]
async fn subject_commands_signed_through_the_gateway_change_the_subjects() {
    let desk = Desk::start().await;
    let d = &desk.d;
    d.signup.sign_up(&form()).await;
    let lead_id = d.signup.lead_of(EMAIL).await;
    let lead = lead_id.to_string();

    // subject: the command is about the person, so it prints them; audited.
    let text = desk.ok(&["subject", &lead]).await;
    assert!(text.contains(EMAIL) && text.contains(FIRST), "{text}");
    assert_eq!(desk.json(&["subject", &lead]).await["email"], EMAIL);
    let text = desk.ok(&["consents", &lead]).await;
    assert!(text.contains("verified"), "{text}");

    // record-contract / end-contract: the hold runs to the end of 2037 in Berlin.
    let text = desk
        .ok(&[
            "record-contract",
            &lead,
            "--start",
            "2026-12-01T00:00:00Z",
            "--end",
            "2027-12-31T00:00:00Z",
            "--records",
            "books",
        ])
        .await;
    let contract = text
        .strip_prefix("Contract ")
        .and_then(|t| t.strip_suffix(" recorded.\n"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert!(d
        .signup
        .item(lead_pk(&lead_id), &format!("CONTRACT#{contract}"))
        .await
        .is_some());
    desk.ok(&[
        "end-contract",
        &lead,
        &contract,
        "--end",
        "2027-03-15T00:00:00Z",
        "--records",
        "books",
    ])
    .await;
    let item = d
        .signup
        .item(lead_pk(&lead_id), &format!("CONTRACT#{contract}"))
        .await
        .unwrap();
    assert_eq!(s(&item, "expires_at"), "2037-12-31T23:00:00.000Z");

    // lift-restriction: refused (409) when there is none; else stored unrestricted.
    let none = desk
        .admin_as(&local_keys()[0], &["lift-restriction", &lead])
        .await;
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("409"), "{none:?}");
    restrict(d, &lead_id).await;
    let restricted =
        |item: &Item| matches!(item.get("restricted"), Some(AttributeValue::Bool(true)));
    let stored = d.signup.item(lead_pk(&lead_id), LEAD_SK).await.unwrap();
    assert!(restricted(&stored));
    desk.ok(&["lift-restriction", &lead]).await;
    let stored = d.signup.item(lead_pk(&lead_id), LEAD_SK).await.unwrap();
    assert!(!restricted(&stored), "{stored:?}");

    // do-not-call: listed once, then already listed; lifted once, then not listed.
    let number = "0170 1234567";
    let dnc = || async { d.signup.items_of_kind("do_not_call").await };
    assert!(desk.ok(&["dnc-add", number]).await.contains("now on the"));
    assert_eq!(dnc().await.len(), 1);
    assert!(desk.ok(&["dnc-add", number]).await.contains("already"));
    let lifted = desk.ok(&["dnc-lift", number]).await;
    assert!(lifted.contains("is lifted"), "{lifted}");
    assert_eq!(s(&dnc().await[0], "lifted_by"), "staff");
    assert!(desk
        .ok(&["dnc-lift", number])
        .await
        .contains("was not on the"));
    assert!(!lifted.contains("1234567"));
    // An invalid number: the route's field error, exit 1.
    let bad = desk
        .admin_as(&local_keys()[0], &["dnc-add", "keine Nummer"])
        .await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("phone: A valid phone number is required."),
        "{bad:?}"
    );

    let mut actions = desk.audit_of(LOCAL_STAFF_PRINCIPAL).await;
    actions.sort();
    actions.dedup();
    for expected in [
        "contract.ended",
        "contract.recorded",
        "subject.consents_viewed",
        "subject.restriction_lifted",
        "subject.viewed",
    ] {
        assert!(
            actions.contains(&expected.to_owned()),
            "{expected}: {actions:?}"
        );
    }
}

/// R6: `polly-admin analytics-export --no-wait` starts the asynchronous export
/// (audited with the signing principal); once the analytics worker has carried it out,
/// `analytics-status` prints it done with its counts and its file, which exists.
#[tokio::test]
async fn the_analytics_export_command_starts_the_export_and_reads_its_file() {
    let desk = Desk::start().await;
    let d = &desk.d;
    let (_lead, _) = d.recorded_call().await;
    let started = desk.json(&["analytics-export", "--no-wait"]).await;
    assert_eq!(started["status"], "running", "{started}");
    let id = started["export_id"].as_str().unwrap().to_owned();
    let exports = d.analytics_worker_on(&d.signup.stack.aws);
    d.pump_analytics(&exports, &id, Default::default()).await;
    let out = desk.json(&["analytics-status", &id]).await;
    assert_eq!(out["status"], "done", "{out}");
    assert!(out["calls"].as_u64().unwrap() >= 1, "{out}");
    let key = out["object_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!d.signup.object("ExportsBucket", key).await.is_empty());
    let text = desk.ok(&["analytics-status", &id]).await;
    assert!(
        text.contains(&format!("calls exported  {}\n", out["calls"])),
        "{text}"
    );
    assert!(desk
        .audit_of(LOCAL_STAFF_PRINCIPAL)
        .await
        .contains(&"analytics.exported".to_owned()));
}

/// Every byte of every item: for "did anything change".
async fn snapshot(d: &World) -> Vec<String> {
    let mut items: Vec<String> = d
        .signup
        .scan()
        .await
        .into_iter()
        .filter(|i| s(i, "kind") != "audit")
        .map(|i| {
            let mut pairs: Vec<String> = i.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            pairs.sort();
            pairs.join(";")
        })
        .collect();
    items.sort();
    items
}

/// A request to the gateway with the CLI's signing, and then `tamper`ed.
async fn send_signed(
    base: &str,
    key: &LocalKey,
    path: &str,
    body: &[u8],
    time: SystemTime,
    sent_body: &[u8],
) -> (u16, Value) {
    let url = format!("{base}{path}");
    let headers = admin::sign::signing_headers(
        "POST",
        &url,
        &[("content-type", "application/json")],
        body,
        &key.credentials(),
        "eu-central-1",
        time,
    )
    .unwrap();
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(sent_body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// R5.4, R4.11: at the local gateway an unsigned request, one signed with a wrong secret
/// or an unknown key, one whose body changed after signing and one signed 20 minutes ago
/// are refused with 403 before the staff function (not invoked, nothing audited, nothing
/// changed); a validly signed principal outside the allow-list reaches the function and is
/// refused there (403, `staff.refused` audited with its ARN, nothing changed).
#[tokio::test]
async fn unsigned_wrongly_signed_and_outsider_requests_are_refused() {
    let desk = Desk::start().await;
    let d = &desk.d;
    let (id, token) = d.verified("access", &unique_email()).await;
    let base = desk.gw.base_url().to_owned();
    let path = format!("/v1/admin/dsar/{id}/deny");
    let body = serde_json::to_vec(&json!({"reasons": ["Offenkundig unbegründet"]})).unwrap();
    let before = snapshot(d).await;
    let staff = &local_keys()[0];
    let now = SystemTime::now();

    // Unsigned.
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["message"], "Forbidden");
    // The right key id, a guessed secret.
    let forged = LocalKey::new("testing", "not-the-secret", LOCAL_STAFF_PRINCIPAL);
    let (status, answer) = send_signed(&base, &forged, &path, &body, now, &body).await;
    assert_eq!(status, 403);
    assert!(
        answer["message"].as_str().unwrap().contains("signature"),
        "{answer}"
    );
    // A key the gateway does not know.
    let unknown = LocalKey::new("AKIAUNKNOWN", "x", LOCAL_STAFF_PRINCIPAL);
    assert_eq!(
        send_signed(&base, &unknown, &path, &body, now, &body)
            .await
            .0,
        403
    );
    // Signed for one body, sent with another.
    let other = serde_json::to_vec(&json!({"reasons": ["ganz andere Gründe"]})).unwrap();
    assert_eq!(
        send_signed(&base, staff, &path, &body, now, &other).await.0,
        403
    );
    // Signed 20 minutes ago (a replayed capture).
    let stale = now - Duration::from_secs(20 * 60);
    let (status, answer) = send_signed(&base, staff, &path, &body, stale, &body).await;
    assert_eq!(status, 403);
    assert!(
        answer["message"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
    // polly-admin with a wrong secret: exit 1, the signature problem explained.
    let out = desk
        .admin_as(&forged, &["deny", &id, "--reason", "x"])
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not signed with valid credentials"),
        "{out:?}"
    );

    assert_eq!(
        desk.gw.staff_invocations(),
        0,
        "the staff function was not invoked"
    );
    assert!(d
        .signup
        .items_of_kind("audit")
        .await
        .iter()
        .all(|a| !s(a, "action").starts_with("staff.")));
    assert_eq!(snapshot(d).await, before, "nothing changed");

    // A valid signature of a principal outside the allow-list.
    let intruder = &local_keys()[1];
    assert_eq!(intruder.principal_arn, LOCAL_INTRUDER_PRINCIPAL);
    let out = desk
        .admin_as(intruder, &["deny", &id, "--reason", "x"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("StaffPrincipalArns"), "{out:?}");
    let out = desk.admin_as(intruder, &["list"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(desk.gw.staff_invocations(), 2);
    assert_eq!(
        desk.audit_of(LOCAL_INTRUDER_PRINCIPAL).await,
        ["staff.refused", "staff.refused"]
    );
    assert_eq!(snapshot(d).await, before, "nothing changed");
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "in_progress");
    // The same request signed by the staff key goes through.
    assert_eq!(
        send_signed(&base, staff, &path, &body, now, &body).await.0,
        200
    );
    assert_eq!(s(&d.request_item(&id).await, "status"), "denied");
}

/// The CLI's own errors: a usage error exits 2 without a request, an unreachable API
/// exits 3 naming the URL, an unknown request id prints the route's problem (exit 1),
/// a missing API URL says how to give one.
#[tokio::test]
async fn cli_errors_are_clear_and_exit_non_zero() {
    let desk = Desk::start().await;
    let key = &local_keys()[0];
    let out = desk
        .admin_as(key, &["extend", "x", "--months", "one", "--reason", "r"])
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--months"), "{out:?}");
    let out = desk.admin_as(key, &["frobnicate"]).await;
    assert_eq!(out.code, 2);
    let out = desk.admin_as(key, &["deny", "x"]).await;
    assert_eq!(
        (out.code, out.stderr.contains("--reason is required")),
        (2, true)
    );
    assert_eq!(desk.gw.staff_invocations(), 0);

    let out = desk
        .admin_as(key, &["retry", "00000000-0000-7000-8000-000000000000"])
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: HTTP 404"), "{out:?}");

    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = admin::run(&strings(&["list"]), settings(&url, key)).await;
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains(&url), "{out:?}");

    let mut none = settings(&url, key);
    none.api_url = None;
    let out = admin::run(&strings(&["list"]), none).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("POLLY_API_URL"), "{out:?}");
    let help = admin::run(&strings(&["--help"]), settings(&url, key)).await;
    assert_eq!(help.code, 0);
    for command in [
        "list",
        "show",
        "verify-identity",
        "extend",
        "deny",
        "retry",
        "enter",
        "subject",
        "consents",
        "record-contract",
        "end-contract",
        "lift-restriction",
        "dnc-add",
        "dnc-lift",
        "analytics-export",
        "analytics-status",
        "stats",
    ] {
        assert!(help.stdout.contains(&format!("\n  {command}")), "{command}");
    }
}

/// A stand-in for `cargo lambda watch` on one port, as `make run` has it: the Lambda
/// Invoke API runs the real staff handler on the event (answering in API Gateway v2's
/// response format, as the runtime does), every other path answers who it reached.
struct Watch {
    base_url: String,
    invocations: Arc<std::sync::atomic::AtomicUsize>,
}

async fn watch_stand_in(staff: Arc<::dsar::staff::StaffApp>) -> Watch {
    let invocations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&invocations);
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let staff = Arc::clone(&staff);
        let count = Arc::clone(&count);
        async move {
            let path = req.uri().path().to_owned();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            if path == "/2015-03-31/functions/dsar-staff/invocations" {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let event = std::str::from_utf8(&body).unwrap();
                let request = lambda_http::request::from_str(event).unwrap();
                let resp = ::dsar::staff::handle(&staff, request).await;
                let headers: serde_json::Map<String, Value> = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
                    .collect();
                let text = match resp.body() {
                    lambda_http::Body::Text(t) => t.clone(),
                    lambda_http::Body::Binary(b) => String::from_utf8(b.clone()).unwrap(),
                    _ => String::new(),
                };
                let answer = json!({"statusCode": resp.status().as_u16(), "headers": headers,
                    "multiValueHeaders": {}, "body": text, "isBase64Encoded": false, "cookies": []});
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    answer.to_string(),
                )
                    .into_response()
            } else {
                (
                    http::StatusCode::IM_A_TEAPOT,
                    [("x-upstream", "watch")],
                    format!("upstream saw {path}"),
                )
                    .into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Watch {
        base_url,
        invocations,
    }
}

use axum::response::IntoResponse;

/// `make run`'s wiring: the `local-gateway` binary as run-local.sh starts
/// it (local keys, Lambda Invoke backend, upstream = cargo lambda watch) hands a signed staff request to
/// the function through the Invoke API with the principal set; unsigned ones never reach
/// it; the Invoke API itself is not reachable through the gateway (a forged authoriser
/// context goes nowhere); public paths are forwarded unchanged.
#[tokio::test]
async fn make_run_wiring_signed_requests_reach_the_staff_function_through_invoke() {
    let d = World::on_mail_emulator().await;
    let mut config = d.signup.stack.config_for("DsarStaffFunction").unwrap();
    config.staff_principal_arns = vec![LOCAL_STAFF_ROLE.to_owned()];
    let staff = ::dsar::staff::StaffApp::from_aws(
        config,
        &d.signup.stack.aws,
        Arc::new(d.signup.clock.clone()),
    )
    .unwrap();
    let watch = watch_stand_in(Arc::new(staff)).await;
    // The gateway binary as run-local.sh starts it (killed with its handle on drop).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gateway = tokio::process::Command::new(env!("CARGO_BIN_EXE_local-gateway"))
        .args(["--port", &port.to_string(), "--upstream", &watch.base_url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (id, _) = d.verified("access", &unique_email()).await;
    let invoked = || watch.invocations.load(std::sync::atomic::Ordering::SeqCst);

    let out = admin::run(&strings(&["list"]), settings(&base, &local_keys()[0])).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&id), "{out:?}");
    assert_eq!(invoked(), 1);
    let audit = d.signup.items_of_kind("audit").await;
    assert!(audit
        .iter()
        .any(|a| s(a, "action") == "dsar.listed" && s(a, "actor") == LOCAL_STAFF_PRINCIPAL));

    let http = reqwest::Client::new();
    let unsigned = http
        .get(format!("{base}/v1/admin/dsar?status=open"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    // A forged event straight at the Invoke API, through the gateway.
    let forged = harness::events::ApiRequest::get("/v1/admin/dsar")
        .as_staff(LOCAL_STAFF_PRINCIPAL)
        .event();
    let resp = http
        .post(format!(
            "{base}/2015-03-31/functions/dsar-staff/invocations"
        ))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(invoked(), 1, "neither reached the staff function");
    // A public path: forwarded with its query, the upstream's answer returned as is.
    let resp = http
        .get(format!("{base}/v1/dsar/{id}?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.headers()["x-upstream"], "watch");
    assert_eq!(
        resp.text().await.unwrap(),
        format!("upstream saw /v1/dsar/{id}")
    );
    gateway.kill().await.unwrap();
}

/// `polly-admin analytics-export` waits for an asynchronous export: it polls the status
/// route until the export is done and prints the result (here against a scripted
/// function behind the gateway: running, running, done); `--no-wait` returns at once; a
/// failed export exits 1.
#[tokio::test]
async fn analytics_export_polls_until_the_export_is_done() {
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&polls);
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = Arc::clone(&seen);
        let started = Arc::clone(&posts);
        async move {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            let event: Value = serde_json::from_slice(&body).unwrap();
            let route = format!(
                "{} {}",
                event["requestContext"]["http"]["method"].as_str().unwrap(),
                event["rawPath"].as_str().unwrap()
            );
            let (status, answer) = match route.as_str() {
                "POST /v1/admin/analytics-exports" => {
                    let n = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let id = if n < 2 { "exp-1" } else { "exp-2" };
                    (202, json!({"export_id": id, "status": "running"}))
                }
                "GET /v1/admin/analytics-exports/exp-2" => (
                    200,
                    json!({"export_id": "exp-2", "status": "failed", "calls": 0, "omitted": 0}),
                ),
                "GET /v1/admin/analytics-exports/exp-1" => {
                    let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n < 2 {
                        (200, json!({"export_id": "exp-1", "status": "running", "calls": n * 10, "omitted": 0}))
                    } else {
                        (200, json!({"export_id": "exp-1", "status": "done", "calls": 25, "omitted": 3, "object_key": "analytics/exp-1.jsonl"}))
                    }
                }
                _ => (404, json!({"title": "Not found", "detail": route})),
            };
            json!({"statusCode": status, "headers": {"content-type": "application/json"},
                "body": answer.to_string(), "isBase64Encoded": false})
            .to_string()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = Gateway::new(
        local_keys(),
        StaffBackend::Invoke {
            base_url: fake,
            function: "dsar-staff".into(),
        },
        None,
    )
    .start(([127, 0, 0, 1], 0).into())
    .await
    .unwrap();
    let key = &local_keys()[0];

    let out = admin::run(
        &strings(&["analytics-export"]),
        settings(gw.base_url(), key),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(out.stdout.contains("Export exp-1 is done."), "{out:?}");
    assert!(out.stdout.contains("calls exported  25"), "{out:?}");
    assert!(out.stdout.contains("analytics/exp-1.jsonl"), "{out:?}");

    let out = admin::run(
        &strings(&["--json", "analytics-export", "--no-wait"]),
        settings(gw.base_url(), key),
    )
    .await;
    assert_eq!(out.code, 0);
    assert_eq!(
        polls.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "no poll"
    );
    let answer: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(answer, json!({"export_id": "exp-1", "status": "running"}));

    // An export that fails for good: said so, exit 1.
    let out = admin::run(
        &strings(&["analytics-export"]),
        settings(gw.base_url(), key),
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "Export exp-2 failed.\n");
    gw.shutdown().await.unwrap();
}

// The routes of the parts built at the same time (show one, enter offline, stats, the
// asynchronous analytics export): the CLI side is built to the contract; these tests run
// once the routes are merged.

/// R4.11: `polly-admin show` prints one request with its deadline and its
/// timeline, oldest first, the latest entry by the signing principal.
#[tokio::test]
async fn show_prints_one_request_with_its_timeline() {
    let desk = Desk::start().await;
    let d = &desk.d;
    let (id, _) = d.verified("access", &unique_email()).await;
    desk.ok(&["extend", &id, "--months", "1", "--reason", "Umfang"])
        .await;
    let view = desk.json(&["show", &id]).await;
    assert_eq!(view["request_id"], id.as_str());
    assert_eq!(view["type"], "access");
    assert_eq!(view["extended"], true);
    assert_eq!(view["due_at"], s(&d.request_item(&id).await, "due_date"));
    let timeline = view["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 2, "{view}");
    let times: Vec<&str> = timeline.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");
    assert_eq!(timeline.last().unwrap()["actor"], LOCAL_STAFF_PRINCIPAL);
    let text = desk.ok(&["show", &id]).await;
    assert!(
        text.contains("Timeline:") && text.contains(LOCAL_STAFF_PRINCIPAL),
        "{text}"
    );
    let unknown = desk
        .admin_as(
            &local_keys()[0],
            &["show", "00000000-0000-7000-8000-000000000000"],
        )
        .await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("error: HTTP 404"), "{unknown:?}");
}

/// R4.3: `polly-admin enter` records a request received by letter with its real
/// receipt date: the deadline counts from that date, not from entry; a bad channel or
/// date is refused before any request.
#[tokio::test]
async fn enter_records_an_offline_request_with_its_receipt_date() {
    let desk = Desk::start().await;
    let d = &desk.d;
    let email = unique_email();
    let answer = desk
        .json(&[
            "enter",
            "--type",
            "access",
            "--channel",
            "letter",
            "--received-at",
            "2026-11-10",
            "--email",
            &email,
            "--identity-verified",
        ])
        .await;
    let id = answer["request_id"].as_str().unwrap();
    let received = chrono::DateTime::parse_from_rfc3339("2026-11-10T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let due = shared::domain::dsar::due_date(received).to_string();
    assert_eq!(answer["due_at"], due.as_str());
    let item = d.request_item(id).await;
    assert_eq!(s(&item, "due_date"), due);
    assert!(
        s(&item, "received_at").starts_with("2026-11-10"),
        "{item:?}"
    );
    for bad in [
        vec![
            "enter",
            "--type",
            "access",
            "--channel",
            "fax",
            "--received-at",
            "2026-11-10",
        ],
        vec![
            "enter",
            "--type",
            "access",
            "--channel",
            "letter",
            "--received-at",
            "10.11.2026",
        ],
        vec!["enter", "--type", "access", "--channel", "letter"],
    ] {
        let out = desk.admin_as(&local_keys()[0], &bad).await;
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
    }
}

/// `polly-admin stats` prints the per-type figures of a period.
#[tokio::test]
async fn stats_prints_the_figures_of_a_period() {
    let desk = Desk::start().await;
    let d = &desk.d;
    d.verified("access", &unique_email()).await;
    let stats = desk
        .json(&["stats", "--from", "2026-11-01", "--to", "2026-11-30"])
        .await;
    assert_eq!(stats["from"], "2026-11-01");
    assert_eq!(stats["to"], "2026-11-30");
    let access = &stats["types"]["access"];
    assert!(access["received"].as_u64().unwrap() >= 1, "{stats}");
    assert!(access["verified"].as_u64().unwrap() >= 1, "{stats}");
    let text = desk
        .ok(&["stats", "--from", "2026-11-01", "--to", "2026-11-30"])
        .await;
    assert!(
        text.contains("MEDIAN DAYS") && text.lines().any(|l| l.starts_with("access ")),
        "{text}"
    );
    let bad = desk
        .admin_as(
            &local_keys()[0],
            &["stats", "--from", "2026-12-01", "--to", "2026-11-01"],
        )
        .await;
    assert_eq!(bad.code, 2);
}

/// `polly-local provision` (what `make run` runs) gives the functions a staff
/// allow-list that admits the local staff session the gateway names for the emulator's
/// key, and not the local intruder.
#[tokio::test]
async fn polly_local_admits_the_local_staff_session_and_no_one_else() {
    let dir = std::env::temp_dir().join(format!("polly-admin-{}", uuid::Uuid::now_v7()));
    let env_file = dir.join("functions.env");
    let name = format!("adm{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_polly-local"))
        .args(["provision", "--name", &name, "--env-file"])
        .arg(&env_file)
        .env("AWS_ENDPOINT_URL", harness::endpoint())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&env_file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let arns: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("STAFF_PRINCIPAL_ARNS="))
        .collect();
    assert_eq!(arns, [LOCAL_STAFF_ROLE]);
    let allowed = shared::dsar::staff::StaffPrincipals::parse(&arns).unwrap();
    assert!(allowed.admits(LOCAL_STAFF_PRINCIPAL));
    assert!(!allowed.admits(harness::gateway::LOCAL_INTRUDER_PRINCIPAL));
}
