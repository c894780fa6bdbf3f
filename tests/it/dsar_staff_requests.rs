//! Staff work on single requests through the staff function against the emulator: one
//! request with its timeline (`GET /v1/admin/dsar/{id}`), a request received by letter,
//! phone or mail entered with its receipt time (`POST /v1/admin/dsar`), and stuck
//! requests in the open list and `retry`.

use crate::common;

use chrono::{Duration, SecondsFormat};
use common::dsar::*;
use common::*;
use harness::events::ApiRequest;
use serde_json::{json, Value};
use shared::Clock;

/// A session of a role that is not in the allow-list.
const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/polly-developer/eve";

async fn show(d: &World, id: &str) -> (u16, Value) {
    d.call(ApiRequest::get(&format!("/v1/admin/dsar/{id}")).as_staff(STAFF))
        .await
}

/// The (action, actor) pairs of a view's timeline.
fn steps(view: &Value) -> Vec<(String, String)> {
    view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The request items (kind `dsar_request`) in the table.
async fn request_count(d: &World) -> usize {
    d.signup.items_of_kind("dsar_request").await.len()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// R4.10, R4.11: after a full public flow (submitted, verified, extended by staff, built
/// by the worker, downloaded) staff see the request's facts and every step in order with
/// who took it, read back through the request index, and no personal data; the view is
/// audited with the viewer. An unknown and a malformed id get the same 404.
#[tokio::test]
async fn one_request_shows_its_facts_and_its_timeline_in_order() {
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let (id, token) = d.verified("access", EMAIL).await;
    let (status, _) = d
        .staff_post(
            &format!("/v1/admin/dsar/{id}/extend"),
            &json!({"months": 1, "reason": "Viele Anfragen gleichzeitig"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(d.pump(&id, 1).await, 0);
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("completed")));

    let resp = ::dsar::staff::handle(
        &d.staff,
        ApiRequest::get(&format!("/v1/admin/dsar/{id}"))
            .as_staff(STAFF)
            .build(),
    )
    .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, view) = show(&d, &id).await;

    assert_eq!(status, 200, "{view}");
    assert_eq!(view["request_id"], id.as_str());
    assert_eq!(view["type"], "access");
    assert_eq!(view["status"], "completed");
    assert_eq!(view["channel"], "online");
    assert_eq!(view["extended"], true);
    assert_eq!(view["overdue"], false);
    assert_eq!(view["stuck"], false);
    assert!(view["due_at"].is_string() && view["days_left"].is_i64());
    // The first view (the handle above) is in the second, not in its own.
    assert_eq!(
        steps(&view),
        pairs(&[
            ("dsar.received", "dsar"),
            ("dsar.code_sent", "dsar"),
            ("dsar.verified", "dsar"),
            ("dsar.extended", STAFF),
            ("dsar.worker_started", "dsar-worker"),
            ("dsar.export_completed", "dsar-worker"),
            ("dsar.download_issued", "dsar"),
            ("dsar.viewed", STAFF),
        ])
    );
    let times: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]), "{times:?}");
    let text = view.to_string();
    for personal in PERSONAL {
        assert!(!contains_ci(text.as_bytes(), personal), "{personal}");
    }
    assert!(!text.contains("Viele Anfragen"), "the reason stays out");
    let viewed: Vec<String> = request_audit(&d, &id)
        .await
        .into_iter()
        .filter(|(action, actor, _)| action == "dsar.viewed" && actor == STAFF)
        .map(|(action, _, _)| action)
        .collect();
    assert_eq!(viewed.len(), 2, "each view audited with the viewer");

    let (unknown_status, unknown) = show(&d, &uuid::Uuid::now_v7().to_string()).await;
    let (malformed_status, malformed) = show(&d, "..%2F..%2Fetc").await;
    assert_eq!((unknown_status, malformed_status), (404, 404));
    assert_eq!(unknown, malformed, "the same answer");
    d.shutdown().await.unwrap();
}

/// R4.3, R4.1, R4.11: a letter received 20 days ago, entered by staff with the identity
/// checked, is due one month after its receipt; the answer gives staff the token and the
/// status address to pass on; the subject gets the receipt mail (no code); the request
/// binds to the subject as a verified public one (the worker builds the subject's export,
/// which the token downloads); the channel is stored and shown, and the entry and the
/// check are audited with the principal (the entry naming the channel).
#[tokio::test]
async fn a_letter_entered_with_its_receipt_date_runs_like_a_verified_request() {
    let d = World::on_mail_emulator().await;
    d.signup.sign_up(&form()).await;
    let now = d.signup.clock.now();
    let received = now - Duration::days(20);

    let (status, body) = d
        .staff_post(
            "/v1/admin/dsar",
            &json!({
                "type": "access",
                "channel": "letter",
                "received_at": rfc3339(received),
                "email": EMAIL,
                "message": "Bitte senden Sie mir alle Daten.",
                "identity_verified": true,
            }),
        )
        .await;

    assert_eq!(status, 201, "{body}");
    let id = body["request_id"].as_str().unwrap().to_owned();
    let due = shared::dsar::due_date(received);
    assert_eq!(body["due_at"], due.to_string());
    assert_eq!(
        body["days_left"],
        (due - now.date_naive()).num_days() as i64
    );
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["overdue"], false);
    assert!(body["status_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/dsar/{id}")));
    let token = body["request_token"].as_str().unwrap().to_owned();
    let mails: Vec<_> = d
        .signup
        .stack
        .sent_mail(EMAIL)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.body.contains(&id))
        .collect();
    assert_eq!(mails.len(), 1, "the receipt, no code");
    assert!(mails[0].subject.contains("Eingangsbestätigung"));
    let (_, list) = d
        .call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
        .await;
    let listed = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["channel"], "letter");
    assert_eq!(listed["due_at"], due.to_string());

    assert_eq!(d.pump(&id, 1).await, 0);
    assert_eq!(
        d.request_item(&id).await["outcome"].as_s().unwrap(),
        "export_ready",
        "bound to the subject"
    );
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200, "{view}");
    assert!(view["download_url"].is_string(), "the token downloads");

    let (_, view) = show(&d, &id).await;
    assert_eq!(view["channel"], "letter");
    assert_eq!(
        view["received_at"].as_str().unwrap().get(..19),
        rfc3339(received).get(..19)
    );
    assert_eq!(
        steps(&view)[..3],
        pairs(&[
            ("dsar.entered", STAFF),
            ("dsar.identity_verified", STAFF),
            ("dsar.worker_started", "dsar-worker"),
        ])[..]
    );
    assert_eq!(view["timeline"][0]["channel"], "letter");
    let entered = request_audit(&d, &id).await;
    assert_eq!(entered[0].2["channel"].as_s().unwrap(), "letter");
    d.shutdown().await.unwrap();
}

/// R4.1: a phone call entered without the identity checked and without an email waits
/// for `verify-identity`, which hands staff the token for a letter; a receipt older than
/// the deadline is accepted and listed overdue at once.
#[tokio::test]
async fn a_call_entered_without_the_check_waits_and_an_old_receipt_is_overdue() {
    let d = World::on_mail_emulator().await;
    let received = d.signup.clock.now() - Duration::days(40);

    let (status, body) = d
        .staff_post(
            "/v1/admin/dsar",
            &json!({
                "type": "erasure",
                "channel": "phone",
                "received_at": rfc3339(received),
                "phone": PHONE,
                "identity_verified": false,
            }),
        )
        .await;

    assert_eq!(status, 201, "{body}");
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "awaiting_identity_check");
    assert_eq!(body["overdue"], true);
    assert!(body.get("request_token").is_none());
    let (_, view) = show(&d, &id).await;
    assert_eq!(
        (view["overdue"].as_bool(), view["channel"].as_str()),
        (Some(true), Some("phone"))
    );
    assert_eq!(
        d.pump(&id, 1).await,
        0,
        "nothing for the worker while it waits"
    );
    assert_eq!(
        d.request_item(&id).await["status"].as_s().unwrap(),
        "awaiting_identity_check"
    );

    let (status, verified) = d
        .staff_post(&format!("/v1/admin/dsar/{id}/verify-identity"), &json!({}))
        .await;
    assert_eq!(status, 200, "{verified}");
    assert!(verified["request_token"].is_string());
    d.shutdown().await.unwrap();
}

/// R4.1, R4.10: malformed, hostile and oversized entries are refused with problem+json
/// naming the field (no input echoed), and nothing is stored or audited: a receipt in the
/// future or unparseable, an unknown channel, no identifier, an unknown field, a
/// duplicate member, a missing or non-boolean `identity_verified`, an over-long message,
/// a body over the size limit.
#[tokio::test]
async fn hostile_entries_are_refused_and_nothing_is_stored() {
    let d = World::on_mail_emulator().await;
    let now = d.signup.clock.now();
    let valid = json!({
        "type": "access",
        "channel": "email",
        "received_at": rfc3339(now - Duration::days(2)),
        "email": "a@example.org",
        "identity_verified": true,
    });
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = valid.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("future", edit(&|v| v["received_at"] = json!(rfc3339(now + Duration::days(1)))), 422, "received_at"),
        ("over a year", edit(&|v| v["received_at"] = json!(rfc3339(now - Duration::days(400)))), 422, "received_at"),
        ("unparseable", edit(&|v| v["received_at"] = json!("letzten Dienstag")), 422, "received_at"),
        ("a date only", edit(&|v| v["received_at"] = json!("2026-11-10")), 422, "received_at"),
        ("missing date", edit(&|v| { v.as_object_mut().unwrap().remove("received_at"); }), 422, "received_at"),
        ("bad channel", edit(&|v| v["channel"] = json!("fax")), 422, "channel"),
        ("online channel", edit(&|v| v["channel"] = json!("online")), 422, "channel"),
        ("no identifier", edit(&|v| { v.as_object_mut().unwrap().remove("email"); }), 422, "email"),
        ("bad email", edit(&|v| v["email"] = json!("a.at.example.org")), 422, "email"),
        ("unknown field", edit(&|v| v["status"] = json!("completed")), 422, "body"),
        ("bad type", edit(&|v| v["type"] = json!("delete_all")), 422, "type"),
        ("verified as a string", edit(&|v| v["identity_verified"] = json!("yes")), 422, "identity_verified"),
        ("verified missing", edit(&|v| { v.as_object_mut().unwrap().remove("identity_verified"); }), 422, "identity_verified"),
        ("long message", edit(&|v| v["message"] = json!("x".repeat(2001))), 422, "message"),
        ("oversized", edit(&|v| v["message"] = json!("x".repeat(20_000))), 413, ""),
        (
            "duplicate member",
            br#"{"type":"access","channel":"letter","channel":"email","received_at":"2026-11-20T10:00:00Z","email":"a@example.org","identity_verified":true}"#.to_vec(),
            400,
            "",
        ),
        ("not json", b"{type: access".to_vec(), 400, ""),
    ];
    for (name, body, expected, field) in cases {
        let resp = ::dsar::staff::handle(
            &d.staff,
            ApiRequest::post_json("/v1/admin/dsar", &body)
                .as_staff(STAFF)
                .build(),
        )
        .await;
        assert_eq!(resp.status(), expected, "{name}");
        assert_eq!(
            resp.headers()["content-type"],
            shared::http::PROBLEM_JSON,
            "{name}"
        );
        let text = match resp.body() {
            lambda_http::Body::Text(t) => t.clone(),
            lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        if !field.is_empty() {
            let problem: Value = serde_json::from_str(&text).unwrap();
            assert!(
                problem["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["field"] == field),
                "{name}: {problem}"
            );
        }
        for echoed in ["a@example.org", "letzten Dienstag", "fax", "delete_all"] {
            assert!(!text.contains(echoed), "{name} echoes {echoed}: {text}");
        }
    }
    assert_eq!(request_count(&d).await, 0, "nothing stored");
    assert!(
        !d.signup
            .audit_actions()
            .await
            .iter()
            .any(|a| a == "dsar.entered"),
        "nothing audited as entered"
    );
    d.shutdown().await.unwrap();
}

/// R4.10, R4.11, R5.4: a caller outside the staff allow-list, and one API Gateway named
/// no one, cannot enter a request nor read one (403, the refusal audited with the caller,
/// nothing stored), and the public function does not serve the routes (404).
#[tokio::test]
async fn outsiders_and_the_public_function_cannot_enter_or_read_requests() {
    let d = World::on_mail_emulator().await;
    let (id, _) = d.verified("access", &unique_email()).await;
    let entry = serde_json::to_vec(&json!({
        "type": "erasure",
        "channel": "letter",
        "received_at": rfc3339(d.signup.clock.now()),
        "phone": PHONE,
        "identity_verified": true,
    }))
    .unwrap();
    let show_path = format!("/v1/admin/dsar/{id}");
    let before = request_count(&d).await;

    for caller in [Some(OUTSIDER), None] {
        let mut post = ApiRequest::post_json("/v1/admin/dsar", &entry);
        let mut get = ApiRequest::get(&show_path);
        post.iam_user_arn = caller;
        get.iam_user_arn = caller;
        let (status, _) = d.call_staff(post).await;
        assert_eq!(status, 403);
        let (status, body) = d.call_staff(get).await;
        assert_eq!(status, 403);
        assert!(body.get("timeline").is_none());
    }
    let mut post = ApiRequest::post_json("/v1/admin/dsar", &entry);
    post.iam_user_arn = Some(STAFF);
    assert_eq!(d.call_public(post).await.0, 404);
    let mut get = ApiRequest::get(&show_path);
    get.iam_user_arn = Some(STAFF);
    assert_eq!(d.call_public(get).await.0, 404);

    assert_eq!(request_count(&d).await, before, "nothing entered");
    let actions = d.signup.audit_actions().await;
    assert!(
        !actions
            .iter()
            .any(|a| a == "dsar.entered" || a == "dsar.viewed"),
        "{actions:?}"
    );
    assert_eq!(
        request_audit(&d, &id)
            .await
            .iter()
            .filter(|(a, _, _)| a == "dsar.viewed")
            .count(),
        0
    );
    let refused = d
        .signup
        .items_of_kind("audit")
        .await
        .into_iter()
        .filter(|a| a["action"].as_s().unwrap() == "staff.refused")
        .map(|a| a["actor"].as_s().unwrap().clone())
        .collect::<Vec<_>>();
    assert_eq!(
        refused.iter().filter(|a| *a == OUTSIDER).count(),
        2,
        "{refused:?}"
    );
    d.shutdown().await.unwrap();
}

/// R4.10, R4.11: a verified request whose worker never ran is stuck an hour after its
/// last change: listed first with `stuck` (before an open request due earlier), shown
/// so; staff retry it (refused before the
/// hour), it is marked failed as stuck and back in progress, both audited with the
/// principal, and the worker then finishes it.
#[tokio::test]
async fn a_stuck_request_is_listed_and_retried_by_staff() {
    let d = World::on_mail_emulator().await;
    let (fresh, _) = d.verified("access", &unique_email()).await;
    let (stuck, _) = d.verified("access", &unique_email()).await;
    // Due earlier than the stuck one, but waiting for its identity check: not stuck.
    let (status, early) = d
        .staff_post(
            "/v1/admin/dsar",
            &json!({
                "type": "access",
                "channel": "letter",
                "received_at": rfc3339(d.signup.clock.now() - Duration::days(10)),
                "phone": PHONE,
                "identity_verified": false,
            }),
        )
        .await;
    assert_eq!(status, 201, "{early}");
    let retry = format!("/v1/admin/dsar/{stuck}/retry");
    d.signup.clock.advance(Duration::minutes(59));
    let (status, problem) = d.staff_post(&retry, &json!({})).await;
    assert_eq!(status, 409, "not stuck yet: {problem}");
    // The other one moves on (staff extend it), so only the first stays unchanged.
    let (status, _) = d
        .staff_post(
            &format!("/v1/admin/dsar/{fresh}/extend"),
            &json!({"months": 1, "reason": "Umfangreich"}),
        )
        .await;
    assert_eq!(status, 200);
    d.signup.clock.advance(Duration::minutes(1));

    let (_, list) = d
        .call(ApiRequest::get("/v1/admin/dsar").as_staff(STAFF))
        .await;
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests[0]["request_id"], stuck.as_str(), "{list}");
    assert_eq!(requests[0]["stuck"], true);
    assert_eq!(requests[1]["request_id"], early["request_id"], "{list}");
    assert_eq!(requests[1]["stuck"], false);
    let other = requests
        .iter()
        .find(|r| r["request_id"] == fresh.as_str())
        .unwrap();
    assert_eq!(other["stuck"], false);
    assert_eq!(show(&d, &stuck).await.1["stuck"], true);

    let (status, body) = d.staff_post(&retry, &json!({})).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "in_progress");
    let audit = request_audit(&d, &stuck).await;
    let last: Vec<(&str, &str)> = audit[audit.len() - 2..]
        .iter()
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(last, [("dsar.failed", STAFF), ("dsar.retried", STAFF)]);
    let (_, view) = show(&d, &stuck).await;
    assert_eq!(view["stuck"], false, "the retry starts its clock again");
    assert_eq!(d.pump(&stuck, 1).await, 0);
    assert_eq!(
        d.request_item(&stuck).await["status"].as_s().unwrap(),
        "completed"
    );
    d.shutdown().await.unwrap();
}
