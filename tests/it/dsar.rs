//! Data-subject requests (R4.1–R4.4, R4.10) against the emulator: intake, the one-time
//! code read from the emulator's record of sent mail, verification, the export worker,
//! the download, deadlines and the staff routes.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use common::dsar::*;
use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;
use harness::simulator::recordings::PatternWav;
use serde_json::{json, Value};
use sha2::Digest;
use shared::adapters::dsar::request_pk;
use shared::ports::IdentifierKind;
use shared::Clock;

/// R4.1, R4.2, R4.4, R4.11, R5.3, R5.5: the whole access flow through the handlers: a
/// wrong code refused, the mailed code verifies, the receipt goes to the address only, the
/// worker's package holds every stored value decrypted, the recording byte for byte and
/// every Art. 15 item, behind a presigned link of at most 15 minutes; every step leaves its
/// audit item in order (received, code sent, code rejected, verified, extended, worker
/// started, export completed, download issued) holding no personal data; afterwards
/// neither the tables (every item and attribute) nor the buckets (keys, metadata) nor the
/// logs hold any of the subject's personal values.
#[tokio::test]
async fn access_request_end_to_end_exports_everything_decrypted() {
    let (logs, _guard) = LogCapture::start();
    // A subject with a consented, recorded call.
    let d = World::on_mail_emulator().await;
    let (_lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();

    // The access request; a wrong code first, then the code from the mail. The clock
    // moves a second between steps, so the audit trail's order is the steps' order.
    let lead = d.signup.lead_of(EMAIL).await.to_string();
    let (status, body) = d.submit(&json!({"type": "access", "email": EMAIL})).await;
    assert_eq!(status, 202, "{body}");
    let id = body["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(EMAIL, &id).await;
    let step = || d.signup.clock.advance(Duration::seconds(1));
    step();
    assert_eq!(d.verify(&id, &one_off(&code)).await.0, 422);
    step();
    let (status, verified) = d.verify(&id, &code).await;
    assert_eq!(status, 200, "{verified}");
    let token = verified["request_token"].as_str().unwrap().to_owned();
    // The receipt: one mail, to the address given only, with the request and its due date.
    let mails = raw_mails_naming(&d, &id).await;
    let receipts: Vec<&Value> = mails
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("Eingangsbestätigung")
        })
        .collect();
    assert_eq!(receipts.len(), 1, "{mails:?}");
    assert_only_to(receipts[0], EMAIL);
    let receipt = receipts[0]["body"].as_str().unwrap();
    assert!(
        receipt.contains(&format!("Anfragenummer: {id}")),
        "{receipt}"
    );
    assert!(receipt.contains("28.12.2026"), "the due date: {receipt}");
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "in_progress");
    assert_eq!(view["due_at"], "2026-12-28");
    assert_eq!(view["days_left"], 30);
    assert!(view.get("download_url").is_none());
    step();
    let (status, body) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/extend"),
            &json!({"months": 1, "reason": "Umfang"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    step();

    // The worker builds the export.
    assert_eq!(d.pump(&id, 2).await, 0);
    step();
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "completed");
    assert_eq!(view["outcome"], "export_ready");
    let url = view["download_url"].as_str().unwrap().to_owned();
    let expires: u64 = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Expires="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires <= 900, "presigned for {expires} s");
    assert!(!url.contains("wilhelmine"), "no personal data in the URL");

    let files = unzip(&d.download(&url).await);
    for name in ["LIESMICH.txt", "information.json", "data.json"] {
        assert!(files.contains_key(name), "{name} in the package");
    }
    let data: Value = serde_json::from_slice(&files["data.json"]).unwrap();
    let sign_up = &data["subject"]["sign_up"];
    assert_eq!(sign_up["first_name"], FIRST);
    assert_eq!(sign_up["last_name"], LAST);
    assert_eq!(sign_up["email"], EMAIL);
    assert_eq!(sign_up["phone"], PHONE_E164);
    assert_eq!(sign_up["notes"], NOTES);
    assert_eq!(data["subject"]["technical"]["source_ip"], "203.0.113.7");
    assert!(!data["consents"].as_array().unwrap().is_empty());
    let calls = data["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["call_id"], call_id.as_str());
    assert!(
        calls[0]["call"]["call_analysis"].is_object(),
        "call content decrypted: {}",
        calls[0]
    );
    assert!(calls[0]["transcript"].is_object() || calls[0]["transcript"].is_array());
    assert_eq!(
        data["requests"][0]["request_id"],
        id.as_str(),
        "request history"
    );
    let recording = files
        .iter()
        .find(|(k, _)| k.starts_with("recordings/"))
        .expect("the recording");
    // The stored recording begins at the consent answer (R7.5): the package holds exactly it.
    let (want_sha, want_len) =
        PatternWav::of_ms(1, script.duration_ms()).trimmed_sha256(script.consent_cut_ms().unwrap());
    assert_eq!(recording.1.len() as u64, want_len);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(recording.1)),
        want_sha,
        "identical bytes"
    );
    assert!(files.contains_key(&format!("transcripts/{call_id}.json")));
    let info: Value = serde_json::from_slice(&files["information.json"]).unwrap();
    for key in [
        "controller",
        "purposes",
        "categories",
        "recipients",
        "retention",
        "rights",
        "complaint",
        "source",
        "automated_decision_making",
        "third_country_transfers",
    ] {
        assert!(!info[key].is_null(), "information.json has {key} (Art. 15)");
    }
    let readme = String::from_utf8(files["LIESMICH.txt"].clone()).unwrap();
    assert!(readme.contains("7 Tage") || readme.contains("sieben Tage"));

    // Stored in the exports bucket, encrypted under the customer key.
    let head = d
        .signup
        .head("ExportsBucket", &format!("exports/{id}.zip"))
        .await;
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("aws:kms")
    );
    // The request record keeps no content: the sealed contact and the indexes are gone.
    let item = d.request_item(&id).await;
    assert!(!item.contains_key("subject_email_bidx"));
    let contact = aws_sdk_dynamodb::Client::new(&d.signup.stack.aws)
        .get_item()
        .table_name(&d.signup.stack.table)
        .key("pk", AttributeValue::S(format!("DSAR#{id}")))
        .key("sk", AttributeValue::S("CONTACT".into()))
        .send()
        .await
        .unwrap();
    assert!(
        contact.item.is_none(),
        "the sealed contact goes when the request closes"
    );
    // A completion mail links to the status route.
    let mails = d.signup.stack.sent_mail(EMAIL).await.unwrap();
    assert!(mails
        .iter()
        .any(|m| m.body.contains(&format!("/v1/dsar/{id}"))));
    // Every step is audited, in order, by whoever took it, with opaque ids only.
    let audit = request_audit(&d, &id).await;
    let steps = steps_of(&audit);
    assert_eq!(
        steps,
        [
            ("dsar.received", "dsar"),
            ("dsar.code_sent", "dsar"),
            ("dsar.code_rejected", "dsar"),
            ("dsar.verified", "dsar"),
            ("dsar.extended", STAFF),
            ("dsar.worker_started", "dsar-worker"),
            ("dsar.export_completed", "dsar-worker"),
            ("dsar.download_issued", "dsar"),
        ]
    );
    assert_audit_items_hold_no_personal_data(&audit, &lead);
    // Nothing of the subject in clear anywhere: tables, object keys, metadata.
    assert_stored_state_free_of(&d, &PERSONAL).await;
    d.shutdown().await.unwrap();
    logs.assert_free_of(&[FIRST, LAST, EMAIL, PHONE_E164, NOTES, "1709876543"]);
}

/// The attributes an audit item may have: what, who, when, and opaque ids.
const AUDIT_ATTRIBUTES: [&str; 9] = [
    "pk",
    "sk",
    "kind",
    "action",
    "actor",
    "at",
    "ttl",
    "request_id",
    "lead_id",
];

/// Asserts that audit items hold nothing but [`AUDIT_ATTRIBUTES`], a lead id only of
/// `lead`, and none of the personal values of [`form`].
fn assert_audit_items_hold_no_personal_data(audit: &[(String, String, Item)], lead: &str) {
    for (action, _, item) in audit {
        for (name, value) in item {
            assert!(
                AUDIT_ATTRIBUTES.contains(&name.as_str()),
                "{action}: {name} in an audit item"
            );
            let mut out = Vec::new();
            flatten(value, &mut out);
            for bytes in out {
                for p in PERSONAL {
                    assert!(!contains_ci(&bytes, p), "{action}: {name} holds {p}");
                }
            }
        }
        if let Some(l) = item.get("lead_id") {
            assert_eq!(l.as_s().unwrap(), lead, "{action}");
        }
    }
}

#[tokio::test]
async fn known_and_unknown_email_get_the_same_answer_and_the_same_status() {
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let unknown = unique_email();
    let (s1, b1) = d.submit(&json!({"type": "access", "email": EMAIL})).await;
    let (s2, b2) = d.submit(&json!({"type": "access", "email": unknown})).await;
    assert_eq!((s1, s2), (202, 202));
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    assert_eq!(strip(b1.clone()), strip(b2.clone()));
    let i1 = d.request_item(b1["request_id"].as_str().unwrap()).await;
    let i2 = d.request_item(b2["request_id"].as_str().unwrap()).await;
    assert_eq!(i1["status"], i2["status"]);
    // Both get a code.
    d.latest_code(EMAIL, b1["request_id"].as_str().unwrap())
        .await;
    d.latest_code(&unknown, b2["request_id"].as_str().unwrap())
        .await;

    // Nobody's export: a short package saying we hold nothing.
    let code = d
        .latest_code(&unknown, b2["request_id"].as_str().unwrap())
        .await;
    let id = b2["request_id"].as_str().unwrap();
    let (_, v) = d.verify(id, &code).await;
    let token = v["request_token"].as_str().unwrap();
    assert_eq!(d.pump(id, 1).await, 0);
    let (_, view) = d.status(id, Some(token)).await;
    assert_eq!(view["outcome"], "no_data");
    let files = unzip(&d.download(view["download_url"].as_str().unwrap()).await);
    let data: Value = serde_json::from_slice(&files["data.json"]).unwrap();
    assert_eq!(data["holds_data"], false);
    assert!(!files.keys().any(|k| k.starts_with("recordings/")));
}

/// R4.1, R4.2, R4.11: a code is refused after five wrong tries (the right one too), after
/// 15 minutes and a second time; each wrong try and each end is audited (four
/// `dsar.code_rejected`, then `dsar.verification_failed`); missing, wrong and foreign
/// tokens get one and the same 401.
#[tokio::test]
async fn wrong_codes_expired_codes_reused_codes_and_bad_tokens_get_clear_errors() {
    let d = World::on_mail_emulator().await;
    // Five wrong codes end the request.
    let email = unique_email();
    let (_, b) = d.submit(&json!({"type": "access", "email": email})).await;
    let id = b["request_id"].as_str().unwrap().to_owned();
    let right = d.latest_code(&email, &id).await;
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..4 {
        let (status, body) = d.verify(&id, wrong).await;
        assert_eq!(status, 422, "{body}");
        assert!(!body.to_string().contains(&right));
    }
    let (status, body) = d.verify(&id, wrong).await;
    assert_eq!(status, 410, "fifth wrong try: {body}");
    assert_eq!(
        body["type"],
        "https://polly-ki.de/problems/too-many-attempts"
    );
    let (status, _) = d.verify(&id, &right).await;
    assert_eq!(
        status, 410,
        "the request has ended, the right code no longer helps"
    );
    assert_eq!(
        d.request_item(&id).await["status"].as_s().unwrap(),
        "verification_failed"
    );
    let actions: Vec<String> = request_audit(&d, &id)
        .await
        .into_iter()
        .map(|(action, _, _)| action)
        .collect();
    assert_eq!(
        actions,
        [
            "dsar.received",
            "dsar.code_sent",
            "dsar.code_rejected",
            "dsar.code_rejected",
            "dsar.code_rejected",
            "dsar.code_rejected",
            "dsar.verification_failed",
        ]
    );

    // An expired code ends the request.
    let email = unique_email();
    let (_, b) = d.submit(&json!({"type": "access", "email": email})).await;
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;
    d.signup.clock.advance(Duration::minutes(16));
    let (status, body) = d.verify(&id, &code).await;
    assert_eq!(status, 410);
    assert_eq!(body["type"], "https://polly-ki.de/problems/code-expired");
    let actions: Vec<String> = request_audit(&d, &id)
        .await
        .into_iter()
        .map(|(action, _, _)| action)
        .collect();
    assert_eq!(
        actions,
        [
            "dsar.received",
            "dsar.code_sent",
            "dsar.verification_failed"
        ]
    );

    // A code works once.
    let email = unique_email();
    let (status, b) = d.submit(&json!({"type": "access", "email": email})).await;
    assert_eq!(status, 202);
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;
    let (status, v) = d.verify(&id, &code).await;
    assert_eq!(status, 200, "{v}");
    let token = v["request_token"].as_str().unwrap().to_owned();
    let (status, body) = d.verify(&id, &code).await;
    assert!(
        status == 409 || status == 422,
        "reused code: {status} {body}"
    );

    // Missing, wrong and foreign tokens: one answer, nothing leaked.
    let (s1, b1) = d.status(&id, None).await;
    let (s2, b2) = d.status(&id, Some("not-the-token")).await;
    let other = "01a2235f-2d5a-7731-9aab-eea22f1bd4c3";
    let (s3, b3) = d.status(other, Some(&token)).await;
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b2, b3);
    // An unknown request id to verify.
    let (status, _) = d.verify(other, "12345678").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_oversized_and_hostile_bodies_are_refused_and_nothing_is_stored() {
    let d = World::on_mail_emulator().await;
    let before = d.signup.scan().await.len();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"{not json".to_vec(), 400),
        (br#"{"type":"access","type":"erasure","email":"a@example.org"}"#.to_vec(), 400),
        (serde_json::to_vec(&json!({"type": "delete_all", "email": "a@example.org"})).unwrap(), 422),
        (serde_json::to_vec(&json!({"type": "access"})).unwrap(), 422),
        (serde_json::to_vec(&json!({"type": "access", "email": "not-an-email"})).unwrap(), 422),
        (serde_json::to_vec(&json!({"type": "access", "email": "a@example.org", "admin": true})).unwrap(), 422),
        (serde_json::to_vec(&json!({"type": "access", "email": "a@example.org", "corrections": {"email": "b@example.org"}})).unwrap(), 422),
        (serde_json::to_vec(&json!({"type": "rectification", "email": "a@example.org", "corrections": {"password": "x"}})).unwrap(), 422),
        (serde_json::to_vec(&json!({"type": "access", "email": "a@example.org", "message": "x".repeat(20_000)})).unwrap(), 413),
        (serde_json::to_vec(&json!(["access"])).unwrap(), 400),
    ];
    for (body, expected) in cases {
        let (status, problem) = d.call(ApiRequest::post_json("/v1/dsar", &body)).await;
        assert_eq!(
            status,
            expected,
            "{}: {problem}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert!(
            !problem.to_string().contains("a@example.org"),
            "no input echoed"
        );
    }
    let (status, _) = d
        .call(
            ApiRequest::post_json("/v1/dsar", br#"{"type":"access","email":"a@example.org"}"#)
                .header("content-type", "text/plain"),
        )
        .await;
    assert_eq!(status, 415);
    assert_eq!(d.signup.scan().await.len(), before, "nothing stored");
}

#[tokio::test]
async fn a_fourth_request_for_the_same_email_on_one_day_is_refused() {
    let d = World::on_mail_emulator().await;
    let email = unique_email();
    for _ in 0..3 {
        assert_eq!(
            d.submit(&json!({"type": "access", "email": email})).await.0,
            202
        );
    }
    let (status, body) = d
        .submit(&json!({"type": "objection", "email": email}))
        .await;
    assert_eq!(status, 429, "{body}");
    d.signup.clock.advance(Duration::days(1));
    assert_eq!(
        d.submit(&json!({"type": "access", "email": email})).await.0,
        202
    );
}

/// An open request as the staff list shows it: (type, status, due date, days left,
/// overdue, extended).
fn listed(list: &Value, id: &str) -> (String, String, String, i64, bool, bool) {
    let r = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    (
        r["type"].as_str().unwrap().to_owned(),
        r["status"].as_str().unwrap().to_owned(),
        r["due_at"].as_str().unwrap().to_owned(),
        r["days_left"].as_i64().unwrap(),
        r["overdue"].as_bool().unwrap(),
        r["extended"].as_bool().unwrap(),
    )
}

/// R4.3, R4.10, R5.4: the staff routes need an IAM principal; the open list gives each
/// request's type, status, due date and days left (30, then −1 and overdue, first), an
/// extension is refused beyond two months, without a reason, a second time and after the
/// first month, and its reason reaches the subject escaped; staff verify a phone-only
/// requester's identity; a denial needs reasons, is mailed with the supervisory authority,
/// and closes the request.
#[tokio::test]
async fn staff_routes_need_iam_list_open_requests_and_enforce_the_deadline_rules() {
    let d = World::on_mail_emulator().await;
    let email = unique_email();
    let (id, token) = d.verified("erasure", &email).await;
    let phone_only = d
        .submit(&json!({"type": "access", "phone": "0171 2345678"}))
        .await;
    assert_eq!(phone_only.0, 202);
    let phone_id = phone_only.1["request_id"].as_str().unwrap().to_owned();

    // Without an IAM principal: forbidden.
    let (status, _) = d
        .call(ApiRequest::get("/v1/admin/dsar").query("status=open"))
        .await;
    assert_eq!(status, 403);

    let (status, list) = d
        .call(
            ApiRequest::get("/v1/admin/dsar")
                .query("status=open")
                .as_staff(STAFF),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert_eq!(
        listed(&list, &id),
        (
            "erasure".into(),
            "in_progress".into(),
            "2026-12-28".into(),
            30,
            false,
            false
        )
    );
    assert_eq!(
        listed(&list, &phone_id),
        (
            "access".into(),
            "awaiting_identity_check".into(),
            "2026-12-28".into(),
            30,
            false,
            false
        )
    );

    // Extension: at most two months, once, with a reason, within the first month.
    let path = format!("/v1/admin/dsar/{id}/extend");
    assert_eq!(
        d.staff_post(&path, &json!({"months": 3, "reason": "Umfang"}))
            .await
            .0,
        422
    );
    assert_eq!(
        d.staff_post(&path, &json!({"months": 2, "reason": " "}))
            .await
            .0,
        422
    );
    let (status, body) = d
        .staff_post(
            &path,
            &json!({"months": 2, "reason": "Sehr umfangreiche Daten <b>&</b>"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["due_at"], "2027-02-28");
    assert_eq!(
        d.staff_post(&path, &json!({"months": 1, "reason": "noch mal"}))
            .await
            .0,
        422
    );
    let mails = d.signup.stack.sent_mail(&email).await.unwrap();
    assert!(
        mails.iter().any(|m| m
            .body
            .contains("Sehr umfangreiche Daten &lt;b&gt;&amp;&lt;/b&gt;")),
        "the reason reaches the subject, escaped"
    );
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["due_at"], "2027-02-28");
    assert_eq!(view["extended"], true);

    // Too late: after the first month.
    d.signup.clock.advance(Duration::days(31));
    let path = format!("/v1/admin/dsar/{phone_id}/extend");
    let (status, body) = d
        .staff_post(&path, &json!({"months": 1, "reason": "Umfang"}))
        .await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("first month"));
    let (_, list) = d
        .call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
        .await;
    // The erasure's worker never ran (no stream here): a month without a change, it is
    // stuck and listed right after failed ones; then the overdue one first.
    assert_eq!(
        list["requests"][0]["request_id"],
        id.as_str(),
        "stuck first"
    );
    assert_eq!(list["requests"][0]["stuck"], true);
    assert_eq!(
        list["requests"][1]["request_id"],
        phone_id.as_str(),
        "overdue first"
    );
    // 29 December 2026, 11:00 in Berlin.
    assert_eq!(
        listed(&list, &phone_id),
        (
            "access".into(),
            "awaiting_identity_check".into(),
            "2026-12-28".into(),
            -1,
            true,
            false
        )
    );
    assert_eq!(
        listed(&list, &id),
        (
            "erasure".into(),
            "in_progress".into(),
            "2027-02-28".into(),
            61,
            false,
            true
        )
    );

    // A phone-only request: staff verify the identity and get the token.
    let (status, body) = d
        .staff_post(
            &format!("/v1/admin/dsar/{phone_id}/verify-identity"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let phone_token = body["request_token"].as_str().unwrap();
    assert_eq!(d.status(&phone_id, Some(phone_token)).await.0, 200);

    // Denial with reasons: the subject is told where to complain.
    let (status, _) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/deny"),
            &json!({"reasons": []}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/deny"),
            &json!({"reasons": ["Offenkundig unbegründet (Art. 12 Abs. 5 DSGVO)"]}),
        )
        .await;
    assert_eq!(status, 200);
    let mails = d.signup.stack.sent_mail(&email).await.unwrap();
    let denial = mails.last().unwrap();
    assert!(denial.body.contains("Offenkundig unbegründet"));
    assert!(denial.body.contains("Landesbeauftragte für Datenschutz"));
    let (_, view) = d.status(&id, Some(&token)).await;
    assert_eq!(view["status"], "denied");
    let (status, _) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/deny"),
            &json!({"reasons": ["again"]}),
        )
        .await;
    assert_eq!(status, 409, "a closed request stays closed");
    let item = d.request_item(&id).await;
    assert_eq!(
        item["pk"].as_s().unwrap(),
        &request_pk(&shared::domain::RequestId::parse(&id).unwrap())
    );
}

#[tokio::test]
async fn portability_adds_the_provided_data_as_json_and_csv() {
    let d = World::on_mail_emulator().await;
    let mut f = form();
    f["first_name"] = json!("=HYPERLINK(\"x\")");
    d.signup.sign_up(&f).await;
    let (id, token) = d.verified("portability", EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    let (_, view) = d.status(&id, Some(&token)).await;
    let files = unzip(&d.download(view["download_url"].as_str().unwrap()).await);
    let portable: Value = serde_json::from_slice(&files["portable.json"]).unwrap();
    assert_eq!(portable["sign_up"]["email"], EMAIL);
    let csv = String::from_utf8(files["portable.csv"].clone()).unwrap();
    assert!(csv.starts_with("field,value\r\n"));
    assert!(csv.contains(&format!("\"email\",\"{EMAIL}\"")));
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"x\"\")\""),
        "formula neutralised: {csv}"
    );
    assert!(files.contains_key("data.json"));
}

fn sweeper(d: &World) -> shared::sweep::Sweeper {
    let config = d.signup.stack.config_for("RetentionSweepFunction").unwrap();
    let s3 = harness::s3_client(&d.signup.stack.aws);
    shared::sweep::Sweeper::new(
        aws_sdk_dynamodb::Client::new(&d.signup.stack.aws),
        d.signup.stack.table.clone(),
        d.signup.stack.key_table.clone(),
        shared::adapters::s3::BlobStore::new(
            s3.clone(),
            config.recordings_bucket.unwrap(),
            config.data_key_arn.clone(),
        ),
    )
    .with_exports(shared::adapters::s3::BlobStore::new(
        s3,
        config.exports_bucket.unwrap(),
        config.data_key_arn,
    ))
}

async fn sweep(d: &World, dry_run: bool) -> shared::sweep::SweepReport {
    sweeper(d)
        .run(
            shared::sweep::SweepRequest {
                dry_run,
                now: d.signup.clock.now(),
            },
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn exports_codes_and_request_records_go_when_their_retention_ends() {
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let (id, token) = d.verified("access", EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    // An abandoned request: its code is never entered.
    let other = unique_email();
    let (_, b) = d.submit(&json!({"type": "erasure", "email": other})).await;
    let abandoned = b["request_id"].as_str().unwrap().to_owned();
    let object = format!("exports/{id}.zip");
    assert_eq!(d.signup.versions("ExportsBucket", &object).await, 1);

    // 16 minutes on: the unused code and the unverified contact go; the request ends.
    d.signup.clock.advance(Duration::minutes(16));
    let report = sweep(&d, false).await;
    assert_eq!(report.classes["verification"].deleted, 2, "{report:?}");
    let item = d.request_item(&abandoned).await;
    assert_eq!(item["status"].as_s().unwrap(), "verification_failed");
    assert!(
        !item.contains_key("subject_email_bidx"),
        "blind index gone with the code"
    );

    // 7 days after creation − 1 minute: the package stays; then it goes, every version.
    d.signup.clock.set(t("2026-12-05T09:59:00Z"));
    let dry = sweep(&d, true).await;
    assert_eq!(dry.classes["export"].deleted, 0);
    assert!(d.status(&id, Some(&token)).await.1["download_url"].is_string());
    d.signup.clock.set(t("2026-12-05T10:00:01Z"));
    let dry = sweep(&d, true).await;
    assert_eq!(dry.classes["export"].objects, 1);
    assert_eq!(
        d.signup.versions("ExportsBucket", &object).await,
        1,
        "a dry run deletes nothing"
    );
    let report = sweep(&d, false).await;
    assert_eq!(report.classes["export"], dry.classes["export"]);
    assert_eq!(d.signup.versions("ExportsBucket", &object).await, 0);
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200);
    assert!(
        view.get("download_url").is_none(),
        "no link to a deleted package"
    );

    // The request records go 3 years after they closed.
    d.signup.clock.set(t("2029-11-28T10:00:01Z"));
    sweep(&d, false).await;
    assert!(d.request_item(&id).await.is_empty());
    assert!(d.request_item(&abandoned).await.is_empty());
    assert!(d
        .signup
        .scan()
        .await
        .iter()
        .all(|i| !i["pk"].as_s().unwrap().starts_with("DSAR#")));
}

/// R4.1: the code goes by mail to the address given and nowhere else: one German mail to
/// exactly that address (no copy), naming the request and its type, an 8-digit code that
/// is valid 15 minutes and once, and no personal data (neither the name, number or notes
/// nor the address itself); that code verifies the request 14:59 minutes later, a code
/// differing in one digit does not, nor does it verify another request.
#[tokio::test]
async fn the_code_mail_goes_only_to_the_given_address_and_its_code_verifies() {
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let (status, b) = d.submit(&json!({"type": "access", "email": EMAIL})).await;
    assert_eq!(status, 202, "{b}");
    let id = b["request_id"].as_str().unwrap().to_owned();
    let (_, b) = d
        .submit(&json!({"type": "erasure", "email": unique_email()}))
        .await;
    let other = b["request_id"].as_str().unwrap().to_owned();

    let mails = raw_mails_naming(&d, &id).await;
    assert_eq!(mails.len(), 1, "one mail about the request: {mails:?}");
    let mail = &mails[0];
    assert_only_to(mail, EMAIL);
    assert_eq!(
        mail["subject"],
        "Polly KI: Ihr Bestätigungscode für Ihre Datenschutzanfrage"
    );
    let body = mail["body"].as_str().unwrap();
    let code = d.latest_code(EMAIL, &id).await;
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert_eq!(
        body.matches(code.as_str()).count(),
        1,
        "the code once: {body}"
    );
    for fact in [
        "Auskunft",
        "Art. 15 DSGVO",
        &format!("Vorgangsnummer: {id}"),
        "Der Code ist 15 Minuten gültig und kann nur einmal verwendet werden",
        "ignorieren Sie diese E-Mail",
    ] {
        assert!(body.contains(fact), "{fact:?} in {body}");
    }
    for value in PERSONAL {
        assert!(!contains_ci(body.as_bytes(), value), "{value} in the mail");
    }

    // One digit off, or on another request: refused. The right one, just in time: verified.
    assert_eq!(d.verify(&id, &one_off(&code)).await.0, 422);
    assert_eq!(d.verify(&other, &code).await.0, 422);
    d.signup
        .clock
        .advance(Duration::minutes(14) + Duration::seconds(59));
    let (status, v) = d.verify(&id, &code).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "in_progress");
    assert_eq!(
        d.request_item(&other).await["status"].as_s().unwrap(),
        "awaiting_verification"
    );
}

/// R4.1, R4.2, R5.3: the one-time code and the request token are stored only as hashes: a
/// raw scan of the main table and the key table after intake and after verification finds
/// neither, nor their hex or base64 forms; the code's stored value is the KMS HMAC of
/// request id and code (not an unkeyed SHA-256, which 10^8 guesses would undo), the
/// token's exactly its SHA-256, and the code's item is gone once it was used.
#[tokio::test]
async fn code_and_token_are_stored_only_as_keyed_or_one_way_hashes() {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let d = World::on_mail_emulator().await;
    let email = unique_email();
    let (_, b) = d.submit(&json!({"type": "access", "email": email})).await;
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;

    let stored = |bytes: Vec<Vec<u8>>, forms: &[String], what: &str| {
        for b in &bytes {
            for f in forms {
                assert!(!contains_ci(b, f), "{what} stored as {f:?}");
            }
        }
    };
    let all_bytes = || async {
        let mut out = Vec::new();
        for item in d.signup.scan().await {
            for (name, value) in item {
                out.push(name.into_bytes());
                flatten(&value, &mut out);
            }
        }
        out
    };
    let b64 = |v: &[u8]| {
        [
            base64::engine::general_purpose::STANDARD.encode(v),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v),
        ]
    };
    let mut code_forms = vec![code.clone(), hex::encode(&code)];
    code_forms.extend(b64(code.as_bytes()));
    stored(all_bytes().await, &code_forms, "the code");

    let code_item = d
        .signup
        .item(format!("DSAR#{id}"), "CODE")
        .await
        .expect("the code's item");
    let code_hash = code_item["code_hash"].as_s().unwrap().clone();
    let keyed = d
        .api
        .service
        .keys
        .blind_index(IdentifierKind::RequestCode, &format!("{id}:{code}"))
        .await
        .unwrap();
    assert_eq!(code_hash, keyed.as_str(), "the KMS HMAC of id and code");
    for unkeyed in [code.clone(), format!("{id}:{code}")] {
        let digest = Sha256::digest(unkeyed.as_bytes());
        assert_ne!(code_hash, hex::encode(digest));
        for form in b64(&digest) {
            assert_ne!(code_hash, form);
        }
    }

    let (status, v) = d.verify(&id, &code).await;
    assert_eq!(status, 200, "{v}");
    let token = v["request_token"].as_str().unwrap().to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap();
    assert_eq!(raw.len(), 32, "256 random bits");
    let mut token_forms = vec![token.clone(), hex::encode(&raw)];
    token_forms.extend(b64(&raw));
    let after = all_bytes().await;
    stored(after.clone(), &token_forms, "the token");
    assert!(
        !after.iter().any(|b| b == &raw),
        "the token's bytes are stored"
    );
    stored(after, &code_forms, "the code");
    assert!(
        d.signup.item(format!("DSAR#{id}"), "CODE").await.is_none(),
        "a used code is gone"
    );
    assert_eq!(
        d.request_item(&id).await["token_hash"].as_s().unwrap(),
        &hex::encode(Sha256::digest(token.as_bytes())),
        "the token's SHA-256"
    );
}

/// R4.11, R5.3: every step of an erasure leaves its audit item, in order and by whoever
/// took it: received, code sent, code rejected, verified, worker started, erased; the audit
/// items hold only opaque ids, and afterwards no item, object key or object metadata holds
/// any of the subject's personal values.
#[tokio::test]
async fn every_step_of_an_erasure_is_audited_in_order_and_nothing_personal_remains() {
    let d = World::on_mail_emulator().await;
    let (lead, _) = d.recorded_call().await;
    let (_, b) = d.submit(&json!({"type": "erasure", "email": EMAIL})).await;
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(EMAIL, &id).await;
    let step = || d.signup.clock.advance(Duration::seconds(1));
    step();
    assert_eq!(d.verify(&id, &one_off(&code)).await.0, 422);
    step();
    let (status, v) = d.verify(&id, &code).await;
    assert_eq!(status, 200, "{v}");
    step();
    assert_eq!(d.pump(&id, 1).await, 0);
    assert_eq!(
        d.request_item(&id).await["outcome"].as_s().unwrap(),
        "erased"
    );

    let audit = request_audit(&d, &id).await;
    let steps = steps_of(&audit);
    assert_eq!(
        steps,
        [
            ("dsar.received", "dsar"),
            ("dsar.code_sent", "dsar"),
            ("dsar.code_rejected", "dsar"),
            ("dsar.verified", "dsar"),
            ("dsar.worker_started", "dsar-worker"),
            ("dsar.erased", "dsar-worker"),
        ]
    );
    assert_audit_items_hold_no_personal_data(&audit, &lead.to_string());
    assert_stored_state_free_of(&d, &PERSONAL).await;
    d.shutdown().await.unwrap();
}

/// R4.3: the due date through the public and staff routes, in Berlin days: received
/// 31 January 10:00 UTC it is 28 February (clamped to the month's end), received 31 January
/// 23:30 UTC (1 February in Berlin) it is 1 March; staff may extend each once, by at most
/// two months from the due date (28 April, 1 May), and the mail with the new date and the
/// reason goes to the requester's address only.
#[tokio::test]
async fn the_deadline_is_a_calendar_month_in_berlin_days_and_extends_once_by_two_months() {
    let d = World::on_mail_emulator().await;
    d.signup.clock.set(t("2027-01-31T10:00:00Z"));
    let late_email = unique_email();
    let (late, late_token) = d.verified("access", &late_email).await;
    let (_, view) = d.status(&late, Some(&late_token)).await;
    assert_eq!(
        (&view["due_at"], &view["days_left"]),
        (&json!("2027-02-28"), &json!(28))
    );
    d.signup.clock.set(t("2027-01-31T23:30:00Z"));
    let (berlin, berlin_token) = d.verified("access", &unique_email()).await;
    let (_, view) = d.status(&berlin, Some(&berlin_token)).await;
    assert_eq!(
        (&view["due_at"], &view["days_left"]),
        (&json!("2027-03-01"), &json!(28))
    );

    let world = &d;
    let extend = |id: &str, months: u32| {
        let path = format!("/v1/admin/dsar/{id}/extend");
        let reason = format!("Umfangreiche Aufzeichnungen {id}");
        async move {
            world
                .staff_post(&path, &json!({"months": months, "reason": reason}))
                .await
        }
    };
    assert_eq!(extend(&late, 3).await.0, 422, "at most two months");
    let (status, body) = extend(&late, 2).await;
    assert_eq!(
        (status, &body["due_at"]),
        (200, &json!("2027-04-28")),
        "{body}"
    );
    let (status, body) = extend(&berlin, 2).await;
    assert_eq!(
        (status, &body["due_at"]),
        (200, &json!("2027-05-01")),
        "{body}"
    );
    assert_eq!(extend(&late, 1).await.0, 422, "only once");
    let (_, view) = d.status(&late, Some(&late_token)).await;
    assert_eq!(
        (&view["due_at"], &view["extended"]),
        (&json!("2027-04-28"), &json!(true))
    );

    let mails = raw_mails_naming(&d, &late).await;
    let extensions: Vec<&Value> = mails
        .iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("Fristverlängerung"))
        .collect();
    assert_eq!(extensions.len(), 1, "{mails:?}");
    assert_only_to(extensions[0], &late_email);
    let body = extensions[0]["body"].as_str().unwrap();
    assert!(body.contains("28.04.2027"), "{body}");
    assert!(
        body.contains(&format!("Umfangreiche Aufzeichnungen {late}")),
        "{body}"
    );
}

/// A request's audit trail as (action, actor) pairs, in order.
fn steps_of(audit: &[(String, String, Item)]) -> Vec<(&str, &str)> {
    audit
        .iter()
        .map(|(action, actor, _)| (action.as_str(), actor.as_str()))
        .collect()
}
