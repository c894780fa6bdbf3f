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
use harness::simulator::recordings::wav_tone;
use serde_json::{json, Value};
use shared::adapters::dsar::request_pk;
use shared::Clock;

#[tokio::test]
async fn access_request_end_to_end_exports_everything_decrypted() {
    let (logs, _guard) = LogCapture::start();
    // A subject with a consented, recorded call.
    let d = World::on_mail_emulator().await;
    let (_lead, script) = d.recorded_call().await;
    let call_id = script.call_id().to_owned();

    // The access request, verified with the code from the mail.
    let (id, token) = d.verified("access", EMAIL).await;
    let mails = d.signup.stack.sent_mail(EMAIL).await.unwrap();
    assert!(
        mails
            .iter()
            .any(|m| m.body.contains(&id) && m.subject.contains("Eingang") || m.body.contains(&id)),
        "a receipt naming the request id"
    );
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "in_progress");
    assert_eq!(view["due_at"], "2026-12-28");
    assert_eq!(view["days_left"], 30);
    assert!(view.get("download_url").is_none());

    // The worker builds the export.
    assert_eq!(d.pump(&id, 2).await, 0);
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
    assert_eq!(
        recording.1.as_slice(),
        wav_tone(1).as_slice(),
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
    // Every step is audited.
    let audits: Vec<String> = d
        .signup
        .items_of_kind("audit")
        .await
        .iter()
        .filter(|a| a.get("request_id").and_then(|v| v.as_s().ok()) == Some(&id))
        .map(|a| a["action"].as_s().unwrap().clone())
        .collect();
    for action in ["dsar.received", "dsar.verified", "dsar.export_completed"] {
        assert!(
            audits.contains(&action.to_owned()),
            "{action} in {audits:?}"
        );
    }
    d.shutdown().await.unwrap();
    logs.assert_free_of(&[FIRST, LAST, EMAIL, PHONE_E164, NOTES, "1709876543"]);
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

    // An expired code ends the request.
    let email = unique_email();
    let (_, b) = d.submit(&json!({"type": "access", "email": email})).await;
    let id = b["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(&email, &id).await;
    d.signup.clock.advance(Duration::minutes(16));
    let (status, body) = d.verify(&id, &code).await;
    assert_eq!(status, 410);
    assert_eq!(body["type"], "https://polly-ki.de/problems/code-expired");

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
    assert!(ids.contains(&id.as_str()) && ids.contains(&phone_id.as_str()));
    assert_eq!(list["requests"][0]["days_left"], 30);

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
    assert_eq!(
        list["requests"][0]["request_id"],
        phone_id.as_str(),
        "overdue first"
    );
    assert_eq!(list["requests"][0]["overdue"], true);

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
