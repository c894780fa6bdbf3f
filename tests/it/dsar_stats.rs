//! The accountability figures route `GET /v1/admin/stats?from&to` (Art. 5(2) GDPR) on the
//! staff function against the emulator: counted from the stored request records by
//! Berlin receipt day, audited, staff only, and every malformed or hostile period
//! refused with problem+json.

use crate::common;

use chrono::Duration;
use common::dsar::*;
use common::*;
use harness::events::ApiRequest;
use serde_json::Value;
use shared::Clock;

const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/polly-developer/eve";

async fn stats(d: &World, query: &str) -> (u16, Value) {
    d.call_staff(
        ApiRequest::get("/v1/admin/stats")
            .query(query)
            .as_staff(STAFF),
    )
    .await
}

/// R4.3, R4.11: the figures per type count the requests received in the period
/// (received, verified, completed on time, median days) as stored, a request received
/// on another day is not counted, and each view is audited with the caller's principal.
#[tokio::test]
async fn the_figures_count_the_stored_requests_of_the_period_and_the_view_is_audited() {
    let d = World::on_mail_emulator().await;
    let today = shared::domain::retention::berlin_date(d.signup.clock.now()).to_string();
    let (access, _) = d.verified("access", &unique_email()).await;
    let (status, body) = d
        .submit(&serde_json::json!({"type": "erasure", "email": unique_email()}))
        .await;
    assert_eq!(status, 202, "{body}");
    let query = format!("from={today}&to={today}");

    let (status, body) = stats(&d, &query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some(today.as_str()), Some(today.as_str()))
    );
    let a = &body["types"]["access"];
    assert_eq!(
        (
            a["received"].as_u64(),
            a["verified"].as_u64(),
            a["completed"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert!(a["median_days"].is_null(), "{a}");
    let e = &body["types"]["erasure"];
    assert_eq!(
        (e["received"].as_u64(), e["verified"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(body["types"].as_object().unwrap().len(), 7, "{body}");

    // Two days later the worker completes the access request.
    d.signup.clock.advance(Duration::days(2));
    assert_eq!(d.pump(&access, 1).await, 0);
    let (_, body) = stats(&d, &query).await;
    let a = &body["types"]["access"];
    assert_eq!(
        (a["completed"].as_u64(), a["completed_on_time"].as_u64()),
        (Some(1), Some(1)),
        "{a}"
    );
    assert_eq!(a["median_days"].as_f64(), Some(2.0));

    // The day before: nothing.
    let yesterday =
        shared::domain::retention::berlin_date(d.signup.clock.now() - Duration::days(3))
            .to_string();
    let (_, body) = stats(&d, &format!("from={yesterday}&to={yesterday}")).await;
    assert_eq!(
        body["types"]["access"]["received"].as_u64(),
        Some(0),
        "{body}"
    );

    let audited = d
        .signup
        .items_of_kind("audit")
        .await
        .into_iter()
        .filter(|a| {
            a.get("action")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("dsar.stats_viewed")
                && a.get("actor")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(STAFF)
        })
        .count();
    assert_eq!(audited, 3);
}

/// R4.10, R5.4: a missing, malformed, reversed, too wide (over 366 days), injected or
/// oversized period is refused with 422 problem+json naming the field, without echoing
/// the input; a caller outside the allow-list gets 403 and no figures.
#[tokio::test]
async fn bad_periods_are_refused_and_outsiders_get_nothing() {
    let d = World::start().await;
    let long = "9".repeat(10_000);
    let long_query = format!("from={long}&to=2027-01-01");
    let cases: Vec<(&str, &str, &str)> = vec![
        ("to=2027-01-31", "from", "required"),
        ("from=2027-01-01", "to", "required"),
        ("from=2027-13-01&to=2027-12-31", "from", "invalid"),
        ("from=2027-1-1&to=2027-01-31", "from", "invalid"),
        ("from=2027-02-01&to=2027-01-31", "to", "before_from"),
        ("from=2025-01-01&to=2026-01-02", "to", "too_wide"),
        (
            "from=2027-01-01'%20OR%20'1'='1&to=2027-01-31",
            "from",
            "invalid",
        ),
        (
            "from=2027-01-01,2027-02-01&to=2027-03-01",
            "from",
            "invalid",
        ),
        (long_query.as_str(), "from", "invalid"),
    ];
    for (query, field, code) in cases {
        let (status, body) = stats(&d, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
        assert_eq!(body["errors"][0]["code"], code, "{query}: {body}");
        assert!(!body.to_string().contains("OR"), "no echo: {body}");
        assert!(!body.to_string().contains(&long[..20]), "no echo");
    }
    // 366 days (a leap year) is fine.
    let (status, _) = stats(&d, "from=2024-01-01&to=2024-12-31").await;
    assert_eq!(status, 200);

    let (status, body) = d
        .call_staff(
            ApiRequest::get("/v1/admin/stats")
                .query("from=2024-01-01&to=2024-12-31")
                .as_staff(OUTSIDER),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("types").is_none());
    let (status, _) = d
        .call_staff(ApiRequest::get("/v1/admin/stats").query("from=2024-01-01&to=2024-12-31"))
        .await;
    assert_eq!(status, 403, "unsigned");
    let (status, _) = d
        .call_staff(ApiRequest::post_json("/v1/admin/stats", b"{}").as_staff(STAFF))
        .await;
    assert_eq!(status, 404, "GET only");
}
