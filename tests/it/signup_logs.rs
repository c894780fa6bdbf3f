//! The personal-data scan of the sign-up logs: every sign-up flow, including refusals
//! and a failing dependency, with known personal data, then the captured logs are searched.

use crate::common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;

/// R5.5, R1.6: no personal value in any sign-up log; the answer's reference and the lead
/// id share one log line, so support can correlate without the answer naming the lead.
#[tokio::test]
async fn logs_of_all_signup_flows_contain_no_personal_data() {
    let (logs, _guard) = LogCapture::start();
    let app = TestApp::spawn().await;

    let (_, first) = app.sign_up(&form()).await;
    app.clock.advance(Duration::hours(30));
    app.sign_up(&form()).await;
    // A stranger with the email of a known subject and another number.
    let mut stranger = form();
    stranger["phone"] = serde_json::json!("0152 11122233");
    let (_, mismatch) = app.sign_up(&stranger).await;
    for case in bad_cases() {
        let request = ApiRequest::post_json("/v1/signups", &case.body);
        app.post(request).await;
    }
    // A failing dependency logs too: a table that does not exist.
    let mut config = app.stack.signup_config().unwrap();
    config.table_name = "no-such-table".into();
    let broken = signup::App::from_aws(config, &app.stack.aws, Arc::new(app.clock.clone()));
    let body = serde_json::to_vec(&form()).unwrap();
    let resp = signup::handle(&broken, ApiRequest::post_json("/v1/signups", &body).build()).await;
    assert!(resp.status().is_server_error());

    let text = logs.text();
    assert!(
        text.contains("sign-up stored"),
        "the flows were logged: {text}"
    );
    assert!(text.contains("sign-up rejected"));
    assert!(text.contains("sign-up failed"));
    let lead = app.lead_of(EMAIL).await.to_string();
    for (answer, outcome) in [(&first, "created"), (&mismatch, "mismatch")] {
        let reference = answer["reference"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.contains("sign-up stored")
                && l.contains(reference)
                && l.contains(&lead)
                && l.contains(outcome)),
            "reference and lead id logged together ({outcome}): {text}"
        );
    }
    logs.assert_free_of(
        &[
            &PERSONAL[..],
            &["PFLAUME", "wilhelmine", "0152 11122233", "15211122233"],
        ]
        .concat(),
    );
}
