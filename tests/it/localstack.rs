//! The local stack (`harness::localstack::LocalStack`): the whole system in process on
//! free ports, driven only over HTTP as `make run` is (the README's sign-up and access
//! request), with the one-time code read from the emulator's sent mail.

use std::time::{Duration, Instant};

use crate::common::dsar::{code_in, unique_email, unzip};
use harness::localstack::LocalStack;
use serde_json::{json, Value};

/// Polls `probe` every 200 ms until it gives a value or `limit` passes.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = http.post(url).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A sign-up through the gateway leads to a call the telephony worker places at the
/// simulator (played, webhooks recorded, the recording copied and the provider's copy
/// deleted); an access request through the gateway, verified with the code from the
/// emulator's mail, ends with a downloadable ZIP that holds that call's transcript and
/// recording; the mail links point at the stack's own base URL.
#[tokio::test]
async fn signup_call_and_access_request_end_to_end_over_http() {
    let stack = LocalStack::start().await.unwrap();
    let base = stack.base_url().to_owned();
    let http = reqwest::Client::new();
    let email = unique_email();

    let (status, body) = post(
        &http,
        &format!("{base}/v1/signups"),
        &json!({"first_name": "Erika", "last_name": "Mustermann", "email": email,
                "phone": "0170 1234567", "notes": "Bitte nachmittags",
                "consent": {"contact_by_phone": true, "privacy_policy_version": "2024-04-08"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The stream → telephony worker → simulator → webhooks → recording copied; the
    // provider's copy is deleted last.
    let sim = stack.simulator();
    let call_id = eventually("the call to be placed", Duration::from_secs(60), || async {
        sim.created_calls()
            .into_iter()
            .find(|c| c["to_number"] == "+491701234567")
            .and_then(|c| c["call_id"].as_str().map(str::to_owned))
    })
    .await;
    eventually(
        "the call to be recorded",
        Duration::from_secs(90),
        || async { sim.deleted_calls().contains(&call_id).then_some(()) },
    )
    .await;

    let (status, body) = post(
        &http,
        &format!("{base}/v1/dsar"),
        &json!({"type": "access", "email": email}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["request_id"].as_str().unwrap().to_owned();
    let mails = eventually("the code mail", Duration::from_secs(30), || async {
        let mails = harness::stack::sent_mail_at(stack.moto_url(), &email)
            .await
            .unwrap();
        mails
            .iter()
            .any(|m| m.body.contains(&id) && m.body.contains("letter-spacing"))
            .then_some(mails)
    })
    .await;
    let code = code_in(&mails, &id);
    let (status, body) = post(
        &http,
        &format!("{base}/v1/dsar/{id}/verify"),
        &json!({"code": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["request_token"].as_str().unwrap().to_owned();

    let view = eventually("the export", Duration::from_secs(90), || async {
        let resp = http
            .get(format!("{base}/v1/dsar/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let view: Value = resp.json().await.unwrap();
        (view["status"] == "completed").then_some(view)
    })
    .await;
    assert_eq!(view["outcome"], "export_ready", "{view}");
    let url = view["download_url"].as_str().unwrap();
    let zip = reqwest::get(url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let files = unzip(&zip);
    assert!(files.contains_key("LIESMICH.txt"), "{:?}", files.keys());
    assert!(
        files.contains_key(&format!("transcripts/{call_id}.json")),
        "{:?}",
        files.keys()
    );
    let wav = &files[&format!("recordings/{call_id}.wav")];
    assert_eq!(&wav[..4], b"RIFF", "a WAV recording");

    // Links in the mails point at this stack's gateway (PUBLIC_API_BASE_URL).
    let mails = harness::stack::sent_mail_at(stack.moto_url(), &email)
        .await
        .unwrap();
    assert!(
        mails.iter().any(|m| m.body.contains(&format!("{base}/"))),
        "no mail links to {base}"
    );
    stack.stop().await.unwrap();
}

/// The host answers the Lambda Invoke API as Lambda does (an unknown function is a 404
/// `ResourceNotFoundException`; a worker's report is its JSON result), the gateway does
/// not expose it, unknown routes are API Gateway's 404, and `stop` frees every port.
#[tokio::test]
async fn invoke_api_routes_and_stop() {
    let stack = LocalStack::start().await.unwrap();
    let http = reqwest::Client::new();
    let functions = stack.functions_url().to_owned();
    let base = stack.base_url().to_owned();

    let resp = http
        .post(format!("{functions}/2015-03-31/functions/nope/invocations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );

    // The dispatcher's scheduled run, as the event pump sends it: a report.
    let resp = http
        .post(format!(
            "{functions}/2015-03-31/functions/telephony-worker/invocations"
        ))
        .json(&json!({"job": "dispatch-due"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-amz-function-error").is_none());
    let report: Value = resp.json().await.unwrap();
    assert!(report.is_object(), "{report}");

    // A stream batch that is not one: the function's error, as Lambda reports it.
    let resp = http
        .post(format!(
            "{functions}/2015-03-31/functions/dsar-worker/invocations"
        ))
        .json(&json!({"Records": "no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-amz-function-error"], "Unhandled");

    // Through the gateway, the Invoke API does not exist; nor does an unknown route.
    for path in [
        "/2015-03-31/functions/dsar-staff/invocations",
        "/v1/nothing",
    ] {
        let resp = http.post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }

    stack.stop().await.unwrap();
    for url in [&base, &functions] {
        assert!(
            http.get(format!("{url}/v1/signups")).send().await.is_err(),
            "{url} still answers"
        );
    }
}
