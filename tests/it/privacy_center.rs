//! The privacy center's pages (`dsar::pages`) through the real `dsar-api` handler against
//! the emulator: forms posted as a browser without JavaScript posts them, codes read from
//! the emulator's sent mail, the export worker driven as the stream would.
//! trace-level: component

use std::time::{Duration as StdDuration, Instant};

use crate::common;

use common::dsar::*;
use common::*;
use harness::events::ApiRequest;
use harness::logs::LogCapture;
use lambda_http::Body;
use serde_json::json;

const FORM: &str = "application/x-www-form-urlencoded";
const COOKIE_FLAGS: &str = "; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=86400";

/// One page answer.
#[derive(Debug)]
struct Page {
    status: u16,
    headers: http::HeaderMap,
    body: String,
    took: StdDuration,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn location(&self) -> &str {
        self.header("location").expect("a Location header")
    }

    /// The page headers of the contract, on every answer.
    fn assert_page_headers(&self) {
        for (name, value) in [
            ("content-security-policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("x-robots-tag", "noindex, nofollow"),
            ("cache-control", "no-store"),
            ("content-type", "text/html; charset=utf-8"),
            ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
        ] {
            assert_eq!(self.header(name), Some(value), "{name} on {} {}", self.status, self.body);
        }
        if self.status != 303 {
            assert!(self.body.starts_with("<!doctype html>"), "{}", self.body);
            assert_eq!(self.body.matches("<h1").count(), 1, "one h1: {}", self.body);
            assert!(!self.body.contains("style=") && !self.body.contains("<style"));
            assert_eq!(self.body.matches("<script").count(), 1, "only site.js");
        }
    }

    /// Nothing of `secret` in the Location header or in any link or form target.
    fn assert_nowhere(&self, secret: &str) {
        assert!(!self.header("location").unwrap_or("").contains(secret));
        for attr in ["href=\"", "action=\"", "src=\""] {
            for part in self.body.split(attr).skip(1) {
                let target = part.split('"').next().unwrap();
                assert!(!target.contains(secret), "{attr}{target}");
            }
        }
    }

    /// The text of the element marked `data-field="name"`.
    fn field(&self, name: &str) -> Option<&str> {
        let start = self.body.find(&format!("data-field=\"{name}\">"))?;
        let rest = &self.body[start..];
        let rest = &rest[rest.find('>')? + 1..];
        Some(&rest[..rest.find('<')?])
    }
}

async fn page(d: &World, req: ApiRequest<'_>) -> Page {
    let started = Instant::now();
    let resp = ::dsar::handle(&d.api, req.build()).await;
    let took = started.elapsed();
    let body = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let p = Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body,
        took,
    };
    p.assert_page_headers();
    p
}

async fn get(d: &World, path: &str) -> Page {
    page(d, ApiRequest::get(path)).await
}

async fn get_with_cookie(d: &World, path: &str, cookie: &str) -> Page {
    page(d, ApiRequest::get(path).header("cookie", cookie)).await
}

async fn post(d: &World, path: &str, form: &str) -> Page {
    page(
        d,
        ApiRequest::post_json(path, form.as_bytes()).header("content-type", FORM),
    )
    .await
}

/// Percent-encodes a form value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The request id of a redirect to `/privacy/requests/{id}[/code]`.
fn id_of(location: &str) -> String {
    location
        .split("/privacy/requests/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/code")
        .to_owned()
}

/// Submits a request through the form and enters the mailed code; returns the id and
/// the cookie (`polly_request=<id>.<token>`) as the browser keeps it.
async fn through_pages(d: &World, prefix: &str, form: &str, email: &str) -> (String, String) {
    let sent = post(d, &format!("{prefix}/privacy/request"), form).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(
        sent.header("set-cookie").is_none(),
        "no cookie before the code"
    );
    let id = id_of(sent.location());
    assert_eq!(
        sent.location(),
        format!("{prefix}/privacy/requests/{id}/code")
    );
    let code = d.latest_code(email, &id).await;
    let ok = post(
        d,
        &format!("{prefix}/privacy/requests/{id}/code"),
        &format!("code={code}"),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location(), format!("{prefix}/privacy/requests/{id}"));
    let set = ok.header("set-cookie").unwrap().to_owned();
    let value = set.strip_suffix(COOKIE_FLAGS).expect(&set);
    let token = value
        .strip_prefix(&format!("polly_request={id}."))
        .unwrap()
        .to_owned();
    ok.assert_nowhere(&token);
    (id, value.to_owned())
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
}

/// R4.1, R4.2, R4.4, R4.11: the whole access flow with forms and redirects only: the
/// rights page links the form, the form's POST answers 303 to the code page (no cookie),
/// a wrong code is refused at its field, the mailed code sets the `polly_request` cookie
/// (HttpOnly, Secure, SameSite=Strict) and redirects to the status page, which shows
/// type, status, due date and days left from the cookie alone; after the worker ran it
/// offers `<a id="download">` to the package; the token is in no Location, link or form
/// target of any answer; every page carries the CSP and the other page headers; every mail
/// sent ends with the no-calls and withdraw links.
#[tokio::test]
async fn access_request_through_the_pages_ends_at_the_download() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator_named("privacy-center").await;
    let (_lead, _script) = d.recorded_call().await;
    let mut weights = Vec::new();

    let rights = get(&d, "/privacy").await;
    assert_eq!(rights.status, 200);
    for t in [
        "access",
        "portability",
        "rectification",
        "erasure",
        "restriction",
        "objection",
        "withdraw_consent",
    ] {
        assert!(
            rights
                .body
                .contains(&format!("href=\"/privacy/request?type={t}\"")),
            "{t}"
        );
    }
    weights.push(("/privacy", rights.body.len(), rights.took));
    let form = page(&d, ApiRequest::get("/privacy/request").query("type=access")).await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("value=\"access\" checked"),
        "{}",
        form.body
    );
    for needle in [
        "<legend>",
        "for=\"f-email\"",
        "autocomplete=\"email\"",
        "autocomplete=\"tel\"",
        "action=\"/privacy/request\"",
    ] {
        assert!(form.body.contains(needle), "{needle}");
    }
    weights.push(("/privacy/request", form.body.len(), form.took));

    let sent = post(
        &d,
        "/privacy/request",
        &format!("type=access&email={}&phone=&message=", enc(EMAIL)),
    )
    .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let id = id_of(sent.location());
    let code_page = get(&d, &format!("/privacy/requests/{id}/code")).await;
    assert_eq!(code_page.status, 200);
    assert!(code_page
        .body
        .contains("inputmode=\"numeric\" autocomplete=\"one-time-code\""));
    weights.push((
        "/privacy/requests/{id}/code",
        code_page.body.len(),
        code_page.took,
    ));
    let code = d.latest_code(EMAIL, &id).await;
    let wrong = post(
        &d,
        &format!("/privacy/requests/{id}/code"),
        &format!("code={}", one_off(&code)),
    )
    .await;
    assert_eq!(wrong.status, 422);
    assert!(
        wrong
            .body
            .contains("<p class=\"field-error\" id=\"e-code\">"),
        "{}",
        wrong.body
    );
    assert!(wrong
        .body
        .contains("aria-invalid=\"true\" aria-describedby=\"e-code\""));
    assert!(wrong.body.contains("<a href=\"#f-code\">"));
    assert!(wrong.header("set-cookie").is_none());
    let ok = post(
        &d,
        &format!("/privacy/requests/{id}/code"),
        &format!("code={code}"),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location(), format!("/privacy/requests/{id}"));
    let set = ok.header("set-cookie").unwrap().to_owned();
    assert!(set.ends_with(COOKIE_FLAGS), "{set}");
    let cookie = set.strip_suffix(COOKIE_FLAGS).unwrap().to_owned();
    let token = cookie
        .strip_prefix(&format!("polly_request={id}."))
        .unwrap()
        .to_owned();
    assert!(token.len() >= 40, "the request token");
    for p in [&rights, &form, &sent, &code_page, &wrong, &ok] {
        p.assert_nowhere(&token);
    }

    let status = get_with_cookie(&d, &format!("/privacy/requests/{id}"), &cookie).await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.field("type"), Some("Auskunft (Art. 15 DSGVO)"));
    assert_eq!(status.field("status"), Some("In Bearbeitung"));
    assert_eq!(status.field("due_at"), Some("28.12.2026"));
    assert_eq!(status.field("days_left"), Some("30"));
    assert_eq!(status.field("extended"), Some("Nein"));
    assert!(!status.body.contains("id=\"download\""));
    status.assert_nowhere(&token);
    assert!(!status.body.contains(&token));

    assert_eq!(d.pump(&id, 2).await, 0);
    let done = get_with_cookie(&d, &format!("/privacy/requests/{id}"), &cookie).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.field("status"), Some("Erledigt"));
    assert_eq!(
        done.field("outcome"),
        Some("Ihre Daten stehen zum Herunterladen bereit.")
    );
    let href = done
        .body
        .split("<a id=\"download\" class=\"button\" href=\"")
        .nth(1)
        .expect(&done.body);
    let url = unescape(href.split('"').next().unwrap());
    assert!(!url.contains(&token));
    done.assert_nowhere(&token);
    weights.push(("/privacy/requests/{id}", done.body.len(), done.took));
    let files = unzip(&d.download(&url).await);
    let data: serde_json::Value = serde_json::from_slice(&files["data.json"]).unwrap();
    assert_eq!(data["subject"]["sign_up"]["email"], EMAIL);

    // The English status page says the same.
    let en = get_with_cookie(&d, &format!("/en/privacy/requests/{id}"), &cookie).await;
    assert!(en.body.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert_eq!(en.field("status"), Some("Completed"));
    assert_eq!(en.field("due_at"), Some("2026-12-28"));

    // Every mail of the flow ends with both links of the privacy center.
    let base = d
        .signup
        .stack
        .config_for("DsarApiFunction")
        .unwrap()
        .public_api_base_url
        .unwrap();
    let mails = d.signup.stack.sent_mail(EMAIL).await.unwrap();
    let ours: Vec<_> = mails.iter().filter(|m| m.body.contains(&id)).collect();
    assert!(ours.len() >= 3, "code, receipt, completion: {}", ours.len());
    for m in ours {
        assert!(
            m.body
                .contains(&format!("href=\"{base}/privacy/no-calls\"")),
            "{}",
            m.subject
        );
        assert!(
            m.body
                .contains(&format!("href=\"{base}/privacy/withdraw\"")),
            "{}",
            m.subject
        );
    }
    logs.assert_free_of(&[EMAIL, PHONE_E164, FIRST, &token, &code]);
    for (path, bytes, took) in weights {
        eprintln!("page {path}: {bytes} bytes, handler {took:?}");
        assert!(bytes < 50 * 1024, "{path} weighs {bytes} bytes");
    }
}

/// R4.2: the status page reads the token from the cookie only: without a cookie, with
/// another request's cookie, with a wrong token in the cookie, and for an id nobody
/// requested, the answer is one and the same page (bodies equal but for the id in the
/// form target), offering the code form and showing nothing of the request; a token in
/// the query or an Authorization header opens nothing.
#[tokio::test]
async fn status_page_without_the_right_cookie_is_the_unknown_id_page() {
    let d = World::on_mail_emulator_named("privacy-center").await;
    let a_mail = unique_email();
    let b_mail = unique_email();
    let (a, a_cookie) = through_pages(
        &d,
        "",
        &format!("type=access&email={}", enc(&a_mail)),
        &a_mail,
    )
    .await;
    let (_b, b_cookie) = through_pages(
        &d,
        "",
        &format!("type=access&email={}", enc(&b_mail)),
        &b_mail,
    )
    .await;
    let a_token = a_cookie.rsplit('.').next().unwrap().to_owned();
    let unknown = uuid::Uuid::now_v7().to_string();
    let path = format!("/privacy/requests/{a}");
    let normal = |p: &Page, id: &str| p.body.replace(id, "ID");
    let reference = get(&d, &format!("/privacy/requests/{unknown}")).await;
    assert_eq!(reference.status, 200);
    assert!(reference.body.contains("autocomplete=\"one-time-code\""));
    let reference = normal(&reference, &unknown);
    let answers = [
        get(&d, &path).await,
        get_with_cookie(&d, &path, &b_cookie).await,
        get_with_cookie(&d, &path, &format!("polly_request={a}.{}x", a_token)).await,
        get_with_cookie(&d, &path, &format!("polly_request={a}.")).await,
        get_with_cookie(&d, &path, &format!("{a_cookie}; {b_cookie}")).await,
        page(
            &d,
            ApiRequest::get(&path).query(&format!("token={a_token}")),
        )
        .await,
        page(
            &d,
            ApiRequest::get(&path).header("authorization", &format!("Bearer {a_token}")),
        )
        .await,
    ];
    for (i, p) in answers.iter().enumerate() {
        assert_eq!(p.status, 200, "case {i}");
        assert_eq!(normal(p, &a), reference, "case {i}");
        assert!(!p.body.contains("data-field"), "case {i}");
    }
    // The right cookie opens it.
    let own = get_with_cookie(&d, &path, &a_cookie).await;
    assert_eq!(own.field("status"), Some("In Bearbeitung"));
    // A malformed id is a plain 404 page.
    assert_eq!(get(&d, "/privacy/requests/..%2Fetc").await.status, 404);
}

/// R4.1, R4.6: every validation error of the form shows at its field (an error summary
/// linking `#f-<field>`, `<p class="field-error" id="e-<field>">`, the input
/// `aria-invalid` and described by it), in German and English, with the values kept
/// (escaped); nothing is stored and no mail is sent for a refused form.
#[tokio::test]
async fn every_validation_error_is_shown_at_its_field_and_nothing_is_stored() {
    let (logs, _guard) = LogCapture::start();
    let d = World::on_mail_emulator_named("privacy-center").await;
    let before = d.signup.scan().await.len();
    let hostile = "<script>alert(1)</script>\"'&";
    let long = "x".repeat(2001);
    let cases: Vec<(String, &str)> = vec![
        (format!("email={}", enc("a@b.example")), "type"),
        (
            format!("type=teleport&email={}", enc("a@b.example")),
            "type",
        ),
        ("type=access&email=&phone=".to_owned(), "email"),
        (format!("type=access&email={}", enc(hostile)), "email"),
        (format!("type=access&phone={}", enc("12ab")), "phone"),
        (
            format!("type=access&email=a%40b.example&message={long}"),
            "message",
        ),
        (
            format!(
                "type=access&email=a%40b.example&corrections.last_name={}",
                enc("Neu")
            ),
            "corrections",
        ),
        (
            format!(
                "type=rectification&email=a%40b.example&corrections.first_name={}",
                enc("B4d\u{7}")
            ),
            "corrections.first_name",
        ),
        (
            format!(
                "type=rectification&email=a%40b.example&corrections.email={}",
                enc("nope")
            ),
            "corrections.email",
        ),
        (
            format!(
                "type=rectification&email=a%40b.example&corrections.notes=&corrections.phone={}",
                enc("x")
            ),
            "corrections.phone",
        ),
    ];
    for prefix in ["", "/en"] {
        for (form, field) in &cases {
            let p = post(&d, &format!("{prefix}/privacy/request"), form).await;
            assert_eq!(p.status, 422, "{form}: {}", p.body);
            let id = field.replace('.', "-");
            assert!(
                p.body
                    .contains("<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\""),
                "{form}"
            );
            assert!(
                p.body
                    .contains(&format!("<p class=\"field-error\" id=\"e-{id}\">")),
                "{form}: {}",
                p.body
            );
            let anchor = if *field == "type" {
                "f-type-access".to_owned()
            } else {
                format!("f-{id}")
            };
            assert!(
                p.body.contains(&format!("<a href=\"#{anchor}\">")),
                "{form}"
            );
            assert!(
                p.body.contains(&format!(
                    "aria-invalid=\"true\" aria-describedby=\"e-{id}\""
                )),
                "{form}"
            );
            assert!(!p.body.contains("<script>alert"), "escaped: {form}");
            assert!(p.body.contains(&format!(
                "<html lang=\"{}\">",
                if prefix.is_empty() { "de" } else { "en" }
            )));
        }
    }
    // Values are kept, escaped.
    let p = post(
        &d,
        "/privacy/request",
        &format!(
            "type=access&email={}&message={}",
            enc(hostile),
            enc(hostile)
        ),
    )
    .await;
    assert!(
        p.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"),
        "{}",
        p.body
    );
    assert!(p.body.contains("value=\"access\" checked"));
    assert_eq!(d.signup.scan().await.len(), before, "nothing stored");
    assert!(d
        .signup
        .stack
        .sent_mail("a@b.example")
        .await
        .unwrap()
        .is_empty());
    logs.assert_free_of(&["a@b.example", "B4d", "Neu"]);
}

/// R4.1: bodies refused as a whole: not a form (JSON to the page route: 415), too large
/// (413), a field given twice (400: parsers disagree which one wins), broken
/// percent-encoding (400), a field the form does not have (422, not echoed); none of them
/// stores anything or sends mail, and the wrong method gets 405 with `Allow`.
#[tokio::test]
async fn malformed_oversized_duplicated_and_foreign_bodies_store_nothing() {
    let d = World::on_mail_emulator_named("privacy-center").await;
    let before = d.signup.scan().await.len();
    let email = unique_email();
    let e = enc(&email);
    let json = serde_json::to_vec(&json!({"type": "access", "email": email})).unwrap();
    let as_json = page(&d, ApiRequest::post_json("/privacy/request", &json)).await;
    assert_eq!(as_json.status, 415);
    let big = format!("type=access&email={e}&message={}", "x".repeat(17 * 1024));
    assert_eq!(post(&d, "/privacy/request", &big).await.status, 413);
    let dup = post(
        &d,
        "/privacy/request",
        &format!("type=access&email={e}&type=erasure"),
    )
    .await;
    assert_eq!(dup.status, 400);
    assert_eq!(
        post(
            &d,
            "/privacy/request",
            &format!("type=access&email={e}&x=%G1")
        )
        .await
        .status,
        400
    );
    let foreign = post(
        &d,
        "/privacy/request",
        &format!("type=access&email={e}&secret_{e}=1"),
    )
    .await;
    assert_eq!(foreign.status, 422);
    assert!(!foreign.body.contains("secret_"));
    let code_dup = post(
        &d,
        &format!("/privacy/requests/{}/code", uuid::Uuid::now_v7()),
        "code=1&code=2",
    )
    .await;
    assert_eq!(code_dup.status, 400);
    let put = page(
        &d,
        ApiRequest {
            method: "PUT",
            ..ApiRequest::get("/privacy/request")
        },
    )
    .await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, POST"));
    assert_eq!(d.signup.scan().await.len(), before, "nothing stored");
    assert!(d.signup.stack.sent_mail(&email).await.unwrap().is_empty());
}

/// R4.2: the code form uses the JSON route's try limit: four wrong codes are refused at
/// the field with the attempts left, the fifth ends the request (410), and the right
/// code afterwards opens nothing and sets no cookie.
#[tokio::test]
async fn wrong_codes_are_refused_at_the_field_until_the_try_limit_ends_the_request() {
    let d = World::on_mail_emulator_named("privacy-center").await;
    let email = unique_email();
    let sent = post(
        &d,
        "/privacy/request",
        &format!("type=access&email={}", enc(&email)),
    )
    .await;
    let id = id_of(sent.location());
    let code = d.latest_code(&email, &id).await;
    let path = format!("/privacy/requests/{id}/code");
    for left in (1..=4).rev() {
        let p = post(&d, &path, &format!("code={}", one_off(&code))).await;
        assert_eq!(p.status, 422);
        assert!(
            p.body.contains(&format!("noch {left} Versuch")),
            "{left}: {}",
            p.body
        );
    }
    let last = post(&d, &path, &format!("code={}", one_off(&code))).await;
    assert_eq!(last.status, 410, "{}", last.body);
    let late = post(&d, &path, &format!("code={code}")).await;
    assert_eq!(late.status, 410);
    assert!(late.header("set-cookie").is_none());
    let empty = post(&d, &path, "code=").await;
    assert!(empty.body.contains("id=\"e-code\""));
}

/// R4.1, R4.5, R4.7: consent withdrawal from `/privacy/withdraw` and "no more calls"
/// from `/en/privacy/no-calls` (the forms the mails link, preset) and an erasure, each
/// through the pages to a completed status page; a phone-only request goes straight to
/// the status page (no code), which asks for the code like any unknown request.
#[tokio::test]
async fn withdrawal_objection_and_erasure_through_the_pages() {
    let d = World::on_mail_emulator_named("privacy-center").await;
    let (_lead, _script) = d.recorded_call().await;
    let withdraw = get(&d, "/privacy/withdraw").await;
    assert!(withdraw.body.contains("value=\"withdraw_consent\" checked"));
    assert!(
        withdraw.body.contains("<a href=\"/en/privacy/withdraw\""),
        "the language switch"
    );
    let no_calls = get(&d, "/en/privacy/no-calls").await;
    assert!(no_calls.body.contains("value=\"objection\" checked"));
    assert!(no_calls.body.contains("action=\"/en/privacy/request\""));

    let mut seq = 10;
    for (prefix, kind, done) in [
        ("", "withdraw_consent", "Erledigt"),
        ("/en", "objection", "Completed"),
        ("", "erasure", "Erledigt"),
    ] {
        let (id, cookie) = through_pages(
            &d,
            prefix,
            &format!("type={kind}&email={}", enc(EMAIL)),
            EMAIL,
        )
        .await;
        seq += 1;
        assert_eq!(d.pump(&id, seq).await, 0, "{kind}");
        let p = get_with_cookie(&d, &format!("{prefix}/privacy/requests/{id}"), &cookie).await;
        assert_eq!(p.field("status"), Some(done), "{kind}: {}", p.body);
    }

    let phone_only = post(
        &d,
        "/privacy/request",
        &format!("type=objection&phone={}", enc("+49 30 1234567")),
    )
    .await;
    assert_eq!(phone_only.status, 303);
    let id = id_of(phone_only.location());
    assert_eq!(phone_only.location(), format!("/privacy/requests/{id}"));
}

/// R4.1: the pages share the JSON route's abuse limits by source address: after the
/// day's requests from one address through the JSON route, the form from that address is
/// refused (429) and stores nothing, while another address still gets through.
#[tokio::test]
async fn the_form_shares_the_json_routes_source_limit() {
    let d = World::on_mail_emulator_named("privacy-center").await;
    let limit = d
        .signup
        .stack
        .config_for("DsarApiFunction")
        .unwrap()
        .dsar_source_daily_limit;
    for _ in 0..limit {
        let body = serde_json::to_vec(&json!({"type": "access", "email": unique_email()})).unwrap();
        let (status, _) = d
            .call(ApiRequest::post_json("/v1/dsar", &body).source_ip("198.51.100.9"))
            .await;
        assert_eq!(status, 202);
    }
    let before = d.signup.scan().await.len();
    let form = format!("type=access&email={}", enc(&unique_email()));
    let refused = page(
        &d,
        ApiRequest::post_json("/privacy/request", form.as_bytes())
            .header("content-type", FORM)
            .source_ip("198.51.100.9"),
    )
    .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(d.signup.scan().await.len(), before);
    let other = page(
        &d,
        ApiRequest::post_json("/privacy/request", form.as_bytes())
            .header("content-type", FORM)
            .source_ip("198.51.100.10"),
    )
    .await;
    assert_eq!(other.status, 303);
}
