//! The erasure cancel window (R4.5 with R4.7 in between) against the emulator: the public
//! function and the staff function as the template configures them (48 hours), the dsar
//! worker on the stream and on its `ErasuresDue` schedule, the telephony worker placing
//! calls at the provider simulator.

use crate::common;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use common::dsar::*;
use common::*;
use harness::events::ApiRequest;
use lambda_http::Body;
use serde_json::{json, Value};
use shared::adapters::dynamo::{lead_pk, LEAD_SK};
use shared::domain::LeadId;
use shared::Clock;

/// The public and staff functions with the template's cancel window (the [`World`]'s
/// own run erasures at once, for the erasure mechanics' tests).
struct Windowed {
    api: ::dsar::App,
    staff: ::dsar::staff::StaffApp,
}

fn windowed(d: &World) -> Windowed {
    let stack = &d.signup.stack;
    let clock = std::sync::Arc::new(d.signup.clock.clone());
    let api_config = stack.config_for("DsarApiFunction").unwrap();
    assert_eq!(
        api_config.erasure_cancel_hours, 48,
        "the template's default"
    );
    let mut staff_config = stack.config_for("DsarStaffFunction").unwrap();
    staff_config.staff_principal_arns = vec![common::world::STAFF_ROLE.to_owned()];
    Windowed {
        api: ::dsar::App::from_aws(api_config, &stack.aws, clock.clone()).unwrap(),
        staff: ::dsar::staff::StaffApp::from_aws(staff_config, &stack.aws, clock).unwrap(),
    }
}

/// An answer as the caller sees it: status, headers we check, body text.
struct Answer {
    status: u16,
    content_type: String,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

fn answer(resp: lambda_http::Response<Body>) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        Body::Empty => String::new(),
        _ => String::new(),
    };
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

impl Windowed {
    async fn public(&self, req: ApiRequest<'_>) -> Answer {
        answer(::dsar::handle(&self.api, req.build()).await)
    }

    /// Submits an erasure for `email` and verifies it with the mailed code; the request id,
    /// the cancel token from the link in the receipt mail and the request token.
    async fn erasure(&self, d: &World, email: &str) -> (String, String, String) {
        let body = serde_json::to_vec(&json!({"type": "erasure", "email": email})).unwrap();
        let a = self.public(ApiRequest::post_json("/v1/dsar", &body)).await;
        assert_eq!(a.status, 202, "{}", a.body);
        let id = a.json()["request_id"].as_str().unwrap().to_owned();
        let code = d.latest_code(email, &id).await;
        let path = format!("/v1/dsar/{id}/verify");
        let body = serde_json::to_vec(&json!({ "code": code })).unwrap();
        let a = self.public(ApiRequest::post_json(&path, &body)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let request_token = a.json()["request_token"].as_str().unwrap().to_owned();
        let mails = d.signup.stack.sent_mail(email).await.unwrap();
        let link = format!("/v1/dsar/{id}/cancel?t=");
        let receipt = mails
            .iter()
            .rev()
            .find(|m| m.body.contains(&link))
            .expect("a receipt with the cancel link");
        let start = receipt.body.find(&link).unwrap() + link.len();
        let token: String = receipt.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        assert_eq!(token.len(), 43, "256 bits, base64url");
        (id, token, request_token)
    }

    async fn page(&self, id: &str, query: &str) -> Answer {
        let path = format!("/v1/dsar/{id}/cancel");
        self.public(ApiRequest::get(&path).query(query)).await
    }

    /// The confirmation page's button: a form POST of `form`.
    async fn button(&self, id: &str, form: &str) -> Answer {
        let path = format!("/v1/dsar/{id}/cancel");
        self.public(
            ApiRequest::post_json(&path, form.as_bytes())
                .header("content-type", "application/x-www-form-urlencoded"),
        )
        .await
    }

    async fn cancel_json(&self, id: &str, body: &[u8]) -> Answer {
        let path = format!("/v1/dsar/{id}/cancel");
        self.public(ApiRequest::post_json(&path, body)).await
    }

    async fn open_list(&self) -> Value {
        let resp = ::dsar::staff::handle(
            &self.staff,
            ApiRequest::get("/v1/admin/dsar")
                .query("status=open")
                .as_staff(STAFF)
                .build(),
        )
        .await;
        answer(resp).json()
    }
}

/// Everything stored: both tables by key and every object version of every bucket.
async fn everything(d: &World) -> (BTreeMap<(String, String), Item>, Vec<String>) {
    let s3 = harness::s3_client(&d.signup.stack.aws);
    let mut objects = Vec::new();
    for (logical, bucket) in &d.signup.stack.buckets {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_ne!(page.is_truncated(), Some(true), "one page is all");
        for v in page.versions() {
            objects.push(format!(
                "{logical}/{}#{}",
                v.key().unwrap_or_default(),
                v.version_id().unwrap_or_default()
            ));
        }
        for m in page.delete_markers() {
            objects.push(format!(
                "{logical}/{} (marker)",
                m.key().unwrap_or_default()
            ));
        }
    }
    objects.sort();
    (d.signup.by_key().await, objects)
}

/// What a request leaves by design: its own items, the audit trail and the abuse
/// counters of intake; and the lead's optimistic `version`, which the window's flag
/// (set and lifted) moves on.
fn without_request_traces(
    mut items: BTreeMap<(String, String), Item>,
) -> BTreeMap<(String, String), Item> {
    items.retain(|(pk, _), item| {
        !(pk.starts_with("DSAR")
            || pk.starts_with("AUDIT#")
            || item
                .get("kind")
                .and_then(|k| k.as_s().ok())
                .map(String::as_str)
                == Some("audit"))
    });
    for ((pk, sk), item) in items.iter_mut() {
        if pk.starts_with("LEAD#") && sk == LEAD_SK {
            item.remove("version");
        }
    }
    items
}

async fn lead_flag(d: &World, lead: &LeadId, name: &str) -> Option<AttributeValue> {
    d.signup
        .item(lead_pk(lead), LEAD_SK)
        .await
        .expect("the lead")
        .get(name)
        .cloned()
}

/// R4.5, R4.7, R4.11: an erasure cancelled inside its window leaves every item of both
/// tables and every object version as they were before the request (full scans; only the
/// request's own items, audits, intake counters and the lead's version differ); the
/// subject was restricted (`erasure_pending`) meanwhile and is not after; opening the
/// link's page any number of times cancels nothing; the request ends `cancelled`, a
/// confirmation mail goes out, and a replay of the button answers the same.
#[tokio::test]
async fn cancel_inside_window_keeps_everything() {
    let d = World::on_mail_emulator().await;
    let w = windowed(&d);
    let (lead, script) = d.recorded_call().await;
    let before = everything(&d).await;
    assert!(before.1.iter().any(|k| k.contains(&lead.to_string())));

    let (id, token, _) = w.erasure(&d, EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    assert_eq!(
        lead_flag(&d, &lead, "erasure_pending").await,
        Some(AttributeValue::Bool(true))
    );
    assert_eq!(lead_flag(&d, &lead, "restricted").await, None);

    let page = w.page(&id, &format!("t={token}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.content_type.starts_with("text/html"));
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert!(page.body.contains(&format!("value=\"{token}\"")));
    assert!(!page.body.contains("<script") && !page.body.contains("https://"));
    for _ in 0..3 {
        assert_eq!(w.page(&id, &format!("t={token}")).await.status, 200);
    }
    let record = d.request_item(&id).await;
    assert_eq!(
        record["status"].as_s().unwrap(),
        "in_progress",
        "GET never cancels"
    );

    d.signup.clock.advance(Duration::hours(47));
    let done = w.button(&id, &format!("t={token}")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.content_type.starts_with("text/html"));
    assert_eq!(done.headers["referrer-policy"], "no-referrer");
    assert!(done.body.contains("ist widerrufen"), "{}", done.body);
    let record = d.request_item(&id).await;
    assert_eq!(record["status"].as_s().unwrap(), "cancelled");
    assert!(!record.contains_key("due_kind"), "out of the due index");
    // The stream hands the cancelled record to the worker: the window's flag goes.
    assert_eq!(d.pump(&id, 2).await, 0);
    assert_eq!(lead_flag(&d, &lead, "erasure_pending").await, None);

    let audits = d.signup.audit_actions().await;
    for action in [
        "dsar.erasure_window_restricted",
        "dsar.erasure_cancelled",
        "dsar.erasure_window_lifted",
    ] {
        assert!(audits.contains(&action.to_owned()), "{action}: {audits:?}");
    }
    let confirmation = d.signup.stack.sent_mail(EMAIL).await.unwrap();
    assert!(confirmation
        .iter()
        .any(|m| m.subject.contains("widerrufen") && m.subject.contains(&id)));

    // Nothing of the subject changed: both tables and every object version.
    let after = everything(&d).await;
    assert_eq!(after.1, before.1, "object versions");
    assert_eq!(
        without_request_traces(after.0),
        without_request_traces(before.0),
        "table items"
    );
    assert!(!d.sim.deleted_calls().contains(&script.call_id().to_owned()));

    // A replay of the button: the same answer, nothing written.
    let snapshot = d.signup.by_key().await;
    let again = w
        .cancel_json(&id, &serde_json::to_vec(&json!({"token": token})).unwrap())
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["status"], "cancelled");
    assert_eq!(d.signup.by_key().await, snapshot);
    d.shutdown().await.unwrap();
}

/// R4.5, R4.10: while it waits, the status view and the staff list show when the erasure
/// runs; after the window the `ErasuresDue` schedule (moved clock) finds it through the
/// due index and erases the subject exactly as without a window; the right token is then
/// told "too late" (409), and a second run finds nothing.
#[tokio::test]
async fn after_the_window_the_scheduled_job_erases() {
    let d = World::on_mail_emulator().await;
    let w = windowed(&d);
    let lead = d.signup.subject().await;
    let (id, token, _) = w.erasure(&d, EMAIL).await;
    let scheduled = d.signup.clock.now() + Duration::hours(48);
    assert_eq!(d.pump(&id, 1).await, 0);
    let listed = w.open_list().await;
    let entry = listed["requests"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|o| o["request_id"] == id.as_str())
        .cloned()
        .expect("listed");
    let expected = serde_json::to_value(scheduled).unwrap();
    assert_eq!(entry["erasure_scheduled_at"], expected, "{entry}");

    // Not yet due: the schedule leaves it.
    d.signup.clock.advance(Duration::hours(47));
    let report = ::dsar::worker::erasures_due(&d.exporter).await.unwrap();
    assert_eq!(report.due, 0);
    assert!(d.signup.item(lead_pk(&lead), LEAD_SK).await.is_some());

    d.signup.clock.advance(Duration::hours(1));
    let report = ::dsar::worker::erasures_due(&d.exporter).await.unwrap();
    assert_eq!((report.due, report.carried_out, report.failed), (1, 1, 0));
    assert!(
        d.signup.item(lead_pk(&lead), LEAD_SK).await.is_none(),
        "erased"
    );
    let record = d.request_item(&id).await;
    assert_eq!(record["status"].as_s().unwrap(), "completed");
    assert_eq!(record["outcome"].as_s().unwrap(), "erased");
    assert!(record.contains_key("erasure_started_at"));
    let audits = d.signup.audit_actions().await;
    assert!(audits.contains(&"dsar.erasure_started".to_owned()));
    assert!(audits.contains(&"dsar.erased".to_owned()));

    let late = w
        .cancel_json(&id, &serde_json::to_vec(&json!({"token": token})).unwrap())
        .await;
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(
        late.json()["type"],
        "https://polly-ki.de/problems/erasure-started"
    );
    let late_page = w.button(&id, &format!("t={token}")).await;
    assert_eq!(late_page.status, 409);
    assert!(late_page.body.contains("nicht mehr"));
    let report = ::dsar::worker::erasures_due(&d.exporter).await.unwrap();
    assert_eq!(report.due, 0);
    d.shutdown().await.unwrap();
}

/// R4.5: the status view of a waiting erasure names its scheduled time; a stranger gets
/// one and the same 404 for a wrong token, another request's token, an unknown id and a
/// malformed id; oversized, wrongly typed, duplicated and foreign-media bodies are
/// refused; none of it cancels anything.
#[tokio::test]
async fn hostile_cancel_attempts_reveal_nothing_and_change_nothing() {
    let d = World::on_mail_emulator().await;
    let w = windowed(&d);
    d.signup.subject().await;
    let other_email = unique_email();
    let (id, token, request_token) = w.erasure(&d, EMAIL).await;
    let (_, other_token, _) = w.erasure(&d, &other_email).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    let scheduled = d.signup.clock.now() + Duration::hours(48);
    let (status, view) = d.status(&id, Some(&request_token)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "in_progress");
    assert_eq!(
        view["erasure_scheduled_at"],
        serde_json::to_value(scheduled).unwrap()
    );
    let snapshot = d.signup.by_key().await;

    let invalid = w.button(&id, "t=wrong").await;
    assert_eq!(invalid.status, 404);
    let json = |t: &str| serde_json::to_vec(&json!({ "token": t })).unwrap();
    let reference = w.cancel_json(&id, &json("wrong")).await;
    assert_eq!(reference.status, 404);
    let unknown = uuid::Uuid::now_v7().to_string();
    for (what, a) in [
        (
            "other request's token",
            w.cancel_json(&id, &json(&other_token)).await,
        ),
        ("unknown id", w.cancel_json(&unknown, &json(&token)).await),
        (
            "malformed id",
            w.cancel_json("..%2F..", &json(&token)).await,
        ),
        (
            "the request token",
            w.cancel_json(&id, &json(&request_token)).await,
        ),
        (
            "oversized token",
            w.cancel_json(&id, &json(&"a".repeat(5000))).await,
        ),
    ] {
        assert_eq!((a.status, &a.body), (404, &reference.body), "{what}");
    }
    for (what, a) in [
        (
            "other token",
            w.button(&id, &format!("t={other_token}")).await,
        ),
        (
            "duplicated t",
            w.button(&id, &format!("t={token}&t={token}")).await,
        ),
        ("encoded", w.button(&id, &format!("t={token}%00")).await),
        ("no t", w.button(&id, "x=1").await),
        (
            "unknown id",
            w.button(&unknown, &format!("t={token}")).await,
        ),
    ] {
        assert_eq!((a.status, &a.body), (404, &invalid.body), "{what}");
    }
    let big = format!("t={}", "a".repeat(17 * 1024));
    assert_eq!(w.button(&id, &big).await.status, 413);
    assert_eq!(w.cancel_json(&id, br#"{"token": 5}"#).await.status, 422);
    assert_eq!(
        w.cancel_json(&id, br#"{"token": "a", "token": "b"}"#)
            .await
            .status,
        400
    );
    assert_eq!(w.cancel_json(&id, b"{").await.status, 400);
    let path = format!("/v1/dsar/{id}/cancel");
    let text = w
        .public(
            ApiRequest::post_json(&path, format!("t={token}").as_bytes())
                .header("content-type", "text/plain"),
        )
        .await;
    assert_eq!(text.status, 415);
    // A page for a malformed link shows nothing of any request.
    let bad_page = w.page("not-an-id", &format!("t={token}")).await;
    assert_eq!(bad_page.status, 404);
    assert_eq!(w.page(&id, "t=").await.status, 404);
    assert_eq!(w.page(&id, "").await.status, 404);

    // Nothing changed by any of it (refusals write nothing, not even an audit item).
    assert_eq!(d.signup.by_key().await, snapshot);
    let record = d.request_item(&id).await;
    assert_eq!(record["status"].as_s().unwrap(), "in_progress");
    d.shutdown().await.unwrap();
}

/// R4.5, R4.7, R2.10: no call is placed for a subject whose erasure waits in its window
/// (the telephony worker refuses the call request), while another subject's call request
/// in the same world is placed.
#[tokio::test]
async fn no_call_is_placed_during_the_window() {
    let d = World::on_mail_emulator().await;
    let w = windowed(&d);
    let lead = d.signup.subject().await;
    let mut other = form();
    other["email"] = json!(unique_email());
    other["phone"] = json!("+49 171 2233445");
    let (status, body) = d.signup.sign_up(&other).await;
    assert_eq!(status, 201, "{body}");
    let other_lead = d.signup.lead_of(other["email"].as_str().unwrap()).await;

    let (id, _, _) = w.erasure(&d, EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    assert_eq!(d.pump_lead(&lead, 2).await, 0);
    let placed_for = |l: &LeadId| {
        d.sim
            .create_requests()
            .iter()
            .filter(|r| r.body["metadata"]["lead_id"] == l.to_string().as_str())
            .count()
    };
    assert_eq!(placed_for(&lead), 0, "no call during the window");
    assert_eq!(d.pump_lead(&other_lead, 3).await, 0);
    assert_eq!(placed_for(&other_lead), 1, "the control subject is called");
    d.shutdown().await.unwrap();
}
