//! The sales handoff (issue 17) on the real handlers against moto: the follow-up queue
//! holds exactly the analysed, settled leads that may be processed; each field of a
//! record; no transcript text in the item or the answer; a later restriction, objection
//! or erasure-pending flag removes the item; sales and the privacy team are each refused
//! on the other's routes; every read is audited with the principal.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::world::World;
use common::*;
use harness::events::ApiRequest;
use harness::simulator::scenario::{CallScript, Scenario, SIM_INTEREST, SIM_NEEDS};
use lambda_http::Body;
use serde_json::{json, Value};
use shared::adapters::dynamo::lead_pk;
use shared::adapters::sales::FOLLOWUP_SK;
use shared::domain::LeadId;
use shared::Clock;
use usecases::dsar::ports::{Flag, SubjectRights};
use usecases::sales::HandoffOutcome;

type Item = HashMap<String, AttributeValue>;

/// The sales role the test's sales function admits.
const SALES_ROLE: &str = "arn:aws:iam::123456789012:role/polly-sales";
const SALES: &str = "arn:aws:sts::123456789012:assumed-role/polly-sales/sam";
/// A session of the privacy team's role (`common::world::STAFF_ROLE`).
const PRIVACY: &str = "arn:aws:sts::123456789012:assumed-role/polly-staff/pia";
const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/polly-developer/eve";

fn sales_app(w: &World) -> sales::App {
    let mut config = w.signup.stack.config_for("SalesApiFunction").unwrap();
    config.sales_principal_arns = vec![SALES_ROLE.to_owned()];
    sales::App::from_aws(
        &config,
        &w.signup.stack.aws,
        Arc::new(w.signup.clock.clone()),
    )
    .unwrap()
}

fn answer(resp: lambda_http::Response<Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn call_sales(app: &sales::App, req: ApiRequest<'_>) -> (u16, Value) {
    answer(sales::handle(app, req.build()).await)
}

async fn queue(app: &sales::App) -> Vec<Value> {
    let (status, body) =
        call_sales(app, ApiRequest::get("/v1/sales/follow-ups").as_staff(SALES)).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn queued_leads(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i["lead_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A lead of its own (its own email, number and source address), signed up through
/// the real handler with a calling window.
async fn lead(w: &World, n: u32) -> (LeadId, String) {
    let email = format!("sales-{n}-{}@example.org", uuid::Uuid::now_v7().simple());
    let mut body = form();
    body["email"] = json!(email);
    body["phone"] = json!(format!("0170 55{n:05}"));
    body["call_window"] =
        json!({"from": "10:00", "to": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let ip = format!("198.51.100.{n}");
    let (status, text, _) = w
        .signup
        .post(ApiRequest::post_json("/v1/signups", &bytes).source_ip(&ip))
        .await;
    assert_eq!(status, 201, "{text}");
    (w.signup.lead_of(&email).await, email)
}

/// Plays a consented call of `lead` through the webhook (`events`) and the worker: the
/// first pass copies the recording, the second sees the call settled.
async fn call(w: &World, lead: &LeadId, events: &[&str], seq: u64) -> CallScript {
    let script = w.script(Scenario::ConsentYes, lead);
    for e in events {
        w.deliver(&script, e).await;
    }
    assert_eq!(w.pump_call(script.call_id(), seq).await, 0);
    assert_eq!(w.pump_call(script.call_id(), seq + 1).await, 0);
    script
}

fn subjects(w: &World) -> shared::adapters::dsar_subjects::DynamoSubjects {
    let stack = &w.signup.stack;
    shared::adapters::dsar_subjects::DynamoSubjects::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack.table.clone(),
        stack.key_table.clone(),
    )
}

async fn followup_item(w: &World, lead: &LeadId) -> Option<Item> {
    w.signup.item(lead_pk(lead), FOLLOWUP_SK).await
}

/// The words of the call's transcript that the summary and analysis do not contain:
/// none of them may reach sales.
fn transcript_only_words(script: &CallScript) -> Vec<String> {
    let analysed: Value =
        serde_json::from_slice(&script.event("call_analyzed").unwrap().unwrap().body).unwrap();
    // The person's name is in the record by design (the agent says it too).
    let allowed = format!(
        "{} {SIM_NEEDS} {SIM_INTEREST} {FIRST} {LAST}",
        analysed["call"]["call_analysis"]["call_summary"]
    )
    .to_lowercase();
    let transcript = analysed["call"]["transcript"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let mut words: Vec<String> = transcript
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 7 && !allowed.contains(*w))
        .map(str::to_owned)
        .collect();
    words.sort();
    words.dedup();
    words
}

/// R4.7, R4.8 (issue 17): the sales queue holds exactly the analysed, settled leads that
/// may be processed: not a lead whose call was not analysed, nor one analysed whose
/// recording is not settled, nor a restricted, objecting, erasure-pending or erased
/// subject, nor a number on the do-not-call list; the one ok lead's record carries each
/// field, and no word of the transcript reaches the item or the answers.
#[tokio::test]
async fn the_queue_holds_exactly_the_analysed_settled_unrestricted_leads() {
    let w = World::start().await;
    let app = sales_app(&w);
    let rights = subjects(&w);
    let stack = &w.signup.stack;

    // ok: analysed and settled.
    let (ok, ok_email) = lead(&w, 1).await;
    let ok_call = call(&w, &ok, &["call_ended", "call_analyzed"], 10).await;
    // Not analysed: ended and settled only.
    let (not_analysed, _) = lead(&w, 2).await;
    call(&w, &not_analysed, &["call_ended"], 20).await;
    // Analysed but its recording still pending: the worker has not copied it yet.
    let (unsettled, _) = lead(&w, 3).await;
    let pending = w.script(Scenario::ConsentYes, &unsettled);
    for e in ["call_ended", "call_analyzed"] {
        w.deliver(&pending, e).await;
    }
    assert_eq!(
        w.worker.followups.handoff(pending.call_id()).await.unwrap(),
        HandoffOutcome::NotReady
    );
    // Restricted, objecting, erasure pending before the call.
    let mut flagged = Vec::new();
    for (n, flag) in [
        (4, Flag::Restricted),
        (5, Flag::Objected),
        (6, Flag::ErasurePending),
    ] {
        let (id, _) = lead(&w, n).await;
        rights.set_flag(&id, flag).await.unwrap();
        call(&w, &id, &["call_ended", "call_analyzed"], u64::from(n) * 10).await;
        assert!(followup_item(&w, &id).await.is_none(), "{flag:?}");
        flagged.push(id);
    }
    // A number on the do-not-call list (listed by staff before the call).
    let (listed, _) = lead(&w, 7).await;
    let keys = shared::adapters::kms::KmsKeyService::new(
        aws_sdk_kms::Client::new(&stack.aws),
        stack.config_for("SignupFunction").unwrap().data_key_id,
        stack
            .config_for("SignupFunction")
            .unwrap()
            .blind_index_key_id,
    );
    let index = usecases::ports::KeyService::blind_index(
        &keys,
        usecases::ports::IdentifierKind::Phone,
        "+491705500007",
    )
    .await
    .unwrap();
    usecases::dnc::DoNotCall::list(
        &shared::adapters::dnc::DynamoDoNotCall::new(
            aws_sdk_dynamodb::Client::new(&stack.aws),
            stack.table.clone(),
        ),
        &index,
        usecases::dnc::DncSource::Staff,
        w.signup.clock.now(),
    )
    .await
    .unwrap();
    call(&w, &listed, &["call_ended", "call_analyzed"], 70).await;
    assert!(followup_item(&w, &listed).await.is_none());
    // Erased: its record was written, then the subject's partition went (erasure
    // mechanics: every item of the subject, tombstone left).
    let (erased, _) = lead(&w, 8).await;
    let erased_call = call(&w, &erased, &["call_ended", "call_analyzed"], 80).await;
    assert!(followup_item(&w, &erased).await.is_some());
    // The erasure's mechanics (the use case itself is `dsar_rights::`): the tombstone,
    // then every record the subject's partition holds.
    let lead_store = shared::adapters::dynamo::DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack.table.clone(),
        stack.key_table.clone(),
    );
    assert!(
        usecases::ports::LeadStore::bury(&lead_store, &erased, w.signup.clock.now(), false)
            .await
            .unwrap()
    );
    let held = usecases::dsar::ports::SubjectData::subject(&rights, &erased)
        .await
        .unwrap()
        .unwrap();
    assert!(held.records.iter().any(|r| r.kind == "followup"));
    rights
        .delete(
            held.records
                .iter()
                .map(|r| usecases::dsar::ports::Doomed::Held(erased, r.key.clone()))
                .collect(),
        )
        .await
        .unwrap();
    assert!(followup_item(&w, &erased).await.is_none());
    assert_eq!(
        w.worker
            .followups
            .handoff(erased_call.call_id())
            .await
            .unwrap(),
        HandoffOutcome::NoLead,
        "a redelivery after the erasure writes nothing"
    );

    let items = queue(&app).await;
    assert_eq!(queued_leads(&items), vec![ok.to_string()], "{items:?}");
    let line = &items[0];
    let mut keys_of_line: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys_of_line.sort_unstable();
    assert_eq!(
        keys_of_line,
        [
            "call_date",
            "first_name",
            "interest",
            "last_name",
            "lead_id",
            "ready_at"
        ]
    );
    assert_eq!(line["first_name"], FIRST);
    assert_eq!(line["last_name"], LAST);
    assert_eq!(line["interest"], SIM_INTEREST);

    // The full record, field by field.
    let path = format!("/v1/sales/follow-ups/{ok}");
    let (status, record) = call_sales(&app, ApiRequest::get(&path).as_staff(SALES)).await;
    assert_eq!(status, 200, "{record}");
    let end = chrono::DateTime::from_timestamp_millis(ok_call.end_ms() as i64).unwrap();
    let now = w.signup.clock.now();
    let analysed: Value =
        serde_json::from_slice(&ok_call.event("call_analyzed").unwrap().unwrap().body).unwrap();
    assert_eq!(
        record,
        json!({
            "lead_id": ok.to_string(),
            "first_name": FIRST,
            "last_name": LAST,
            "email": ok_email,
            "phone": "+491705500001",
            "call_window": {"from": "10:00", "to": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
            "call_date": end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "summary": analysed["call"]["call_analysis"]["call_summary"],
            "analysis": {
                "needs": SIM_NEEDS,
                "interest": SIM_INTEREST,
                "user_sentiment": "Positive",
                "call_successful": true,
            },
            "consent": {"contact_by_phone": true, "recording": true, "policy_version": "2024-04-08"},
            "ready_at": now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "done_at": null,
        })
    );

    // No transcript word in the raw item or in either answer.
    let words = transcript_only_words(&ok_call);
    assert!(
        words.len() >= 5,
        "the test needs transcript words: {words:?}"
    );
    let item = followup_item(&w, &ok).await.unwrap();
    let mut raw = Vec::new();
    for (k, v) in &item {
        raw.push(k.clone().into_bytes());
        flatten(v, &mut raw);
    }
    let answers = format!("{items:?} {record}").to_lowercase();
    for word in &words {
        assert!(
            !answers.contains(word.as_str()),
            "transcript word {word} in an answer"
        );
        assert!(
            !raw.iter().any(|b| contains_ci(b, word)),
            "transcript word {word} in the item"
        );
    }
    // The item: in the subject's partition, sealed, in the due index under `followup`.
    assert_eq!(item["due_kind"].as_s().unwrap(), "followup");
    assert!(item["sealed"].as_b().is_ok());
    assert!(!raw
        .iter()
        .any(|b| contains_ci(b, FIRST) || contains_ci(b, &ok_email)));
    assert!(ttl(&item) > now.timestamp());
    w.shutdown().await.unwrap();
}

/// A redelivered stream record writes the follow-up record once and keeps a `done`
/// mark (issue 17); done leaves the queue; a second call replaces the record and opens it again.
#[tokio::test]
async fn the_record_is_idempotent_done_leaves_the_queue_and_a_second_call_replaces_it() {
    let w = World::start().await;
    let app = sales_app(&w);
    let (id, _) = lead(&w, 11).await;
    let first = call(&w, &id, &["call_ended", "call_analyzed"], 10).await;
    assert_eq!(queued_leads(&queue(&app).await), vec![id.to_string()]);
    let done = format!("/v1/sales/follow-ups/{id}/done");
    let (status, body) = call_sales(&app, ApiRequest::post_json(&done, b"").as_staff(SALES)).await;
    assert_eq!(status, 200, "{body}");
    assert!(queue(&app).await.is_empty());
    let item = followup_item(&w, &id).await.unwrap();
    assert!(!item.contains_key("due_kind") && item.contains_key("done_at"));
    // Redelivery of the settled call: nothing rewritten, still done.
    assert_eq!(
        w.worker.followups.handoff(first.call_id()).await.unwrap(),
        HandoffOutcome::Unchanged
    );
    assert!(queue(&app).await.is_empty());
    let audits_before = w.signup.audit_actions().await;
    assert_eq!(
        audits_before
            .iter()
            .filter(|a| *a == "sales.followup_ready")
            .count(),
        1
    );
    // A second call: one record per lead, open again.
    call(&w, &id, &["call_ended", "call_analyzed"], 30).await;
    let items = queue(&app).await;
    assert_eq!(queued_leads(&items), vec![id.to_string()]);
    let path = format!("/v1/sales/follow-ups/{id}");
    let (_, record) = call_sales(&app, ApiRequest::get(&path).as_staff(SALES)).await;
    assert_eq!(record["done_at"], Value::Null);
    w.shutdown().await.unwrap();
}

/// R4.7, R4.8 (issue 17): a restriction, an objection or an erasure waiting in its
/// cancel window that arrives after the record was written removes the item, and the
/// subject leaves the queue and the record route at once.
#[tokio::test]
async fn a_later_restriction_objection_or_pending_erasure_removes_the_record() {
    let w = World::start().await;
    let app = sales_app(&w);
    let rights = subjects(&w);
    for (n, flag) in [
        (21, Flag::Restricted),
        (22, Flag::Objected),
        (23, Flag::ErasurePending),
    ] {
        let (id, _) = lead(&w, n).await;
        call(&w, &id, &["call_ended", "call_analyzed"], u64::from(n) * 10).await;
        assert!(queued_leads(&queue(&app).await).contains(&id.to_string()));
        rights.set_flag(&id, flag).await.unwrap();
        assert!(followup_item(&w, &id).await.is_none(), "{flag:?}");
        assert!(!queued_leads(&queue(&app).await).contains(&id.to_string()));
        let path = format!("/v1/sales/follow-ups/{id}");
        let (status, _) = call_sales(&app, ApiRequest::get(&path).as_staff(SALES)).await;
        assert_eq!(status, 404, "{flag:?}");
    }
    w.shutdown().await.unwrap();
}

/// R4.7 (issue 17): the read-time filter, too: a restricted subject whose item is still there
/// (the flag written by a path that does not remove it) is hidden from the queue, the
/// record and `done`.
#[tokio::test]
async fn a_flagged_subject_is_hidden_at_read_time_even_with_its_item() {
    let w = World::start().await;
    let app = sales_app(&w);
    let (id, _) = lead(&w, 31).await;
    call(&w, &id, &["call_ended", "call_analyzed"], 10).await;
    // The flag alone, as the agent's objection tool writes it.
    aws_sdk_dynamodb::Client::new(&w.signup.stack.aws)
        .update_item()
        .table_name(&w.signup.stack.table)
        .key("pk", AttributeValue::S(lead_pk(&id)))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .update_expression("SET restricted = :t")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    assert!(followup_item(&w, &id).await.is_some());
    assert!(queue(&app).await.is_empty());
    let path = format!("/v1/sales/follow-ups/{id}");
    assert_eq!(
        call_sales(&app, ApiRequest::get(&path).as_staff(SALES))
            .await
            .0,
        404
    );
    let done = format!("{path}/done");
    assert_eq!(
        call_sales(&app, ApiRequest::post_json(&done, b"").as_staff(SALES))
            .await
            .0,
        404
    );
    w.shutdown().await.unwrap();
}

/// The privacy team's routes (`dsar-staff`), one concrete request per template route.
fn privacy_routes(lead: &LeadId) -> Vec<(&'static str, String)> {
    let request = "01930000-0000-7000-8000-000000000000";
    vec![
        ("GET", "/v1/admin/dsar".into()),
        ("POST", "/v1/admin/dsar".into()),
        ("GET", format!("/v1/admin/dsar/{request}")),
        ("POST", format!("/v1/admin/dsar/{request}/extend")),
        ("POST", format!("/v1/admin/dsar/{request}/deny")),
        ("GET", format!("/v1/admin/subjects/{lead}")),
        ("POST", format!("/v1/admin/subjects/{lead}/contracts")),
        (
            "POST",
            format!("/v1/admin/subjects/{lead}/lift-restriction"),
        ),
        ("POST", "/v1/admin/analytics-exports".into()),
        ("GET", format!("/v1/admin/analytics-exports/{request}")),
        ("POST", "/v1/admin/do-not-call".into()),
        ("POST", "/v1/admin/do-not-call/lift".into()),
        ("GET", "/v1/admin/stats".into()),
    ]
}

/// Whether a concrete request is an instance of a template route: the method equal (or
/// `ANY`), `{x}` matching one segment and `{x+}` the rest of the path.
fn instance_of(method: &str, path: &str, route: &harness::template::HttpRoute) -> bool {
    if !(route.method.eq_ignore_ascii_case(method) || route.method.eq_ignore_ascii_case("any")) {
        return false;
    }
    let p: Vec<&str> = path.split('/').collect();
    let r: Vec<&str> = route.path.split('/').collect();
    for (i, segment) in r.iter().enumerate() {
        if segment.starts_with('{') && segment.ends_with("+}") {
            return p.len() > i;
        }
        match p.get(i) {
            Some(s) if s == segment || (segment.starts_with('{') && segment.ends_with('}')) => {}
            _ => return false,
        }
    }
    p.len() == r.len()
}

/// The refusal test below walks every route of the privacy team's function and of the
/// sales function in the template: each template route has a request in its list, and
/// each request in a list is one of that function's routes. A route added to the
/// template without a line here fails this test.
#[test]
fn the_refusal_test_walks_every_privacy_and_sales_route_of_the_template() {
    let lead = LeadId::new();
    let routes = harness::template::Template::load().unwrap().http_routes();
    for (function, listed) in [
        ("DsarStaffFunction", privacy_routes(&lead)),
        ("SalesApiFunction", sales_routes(&lead)),
    ] {
        let of: Vec<_> = routes.iter().filter(|r| r.function == function).collect();
        assert!(!of.is_empty(), "{function}");
        for r in &of {
            assert!(
                listed.iter().any(|(m, p)| instance_of(m, p, r)),
                "{function}: no request for {} {}",
                r.method,
                r.path
            );
        }
        for (m, p) in &listed {
            assert!(
                of.iter().any(|r| instance_of(m, p, r)),
                "{function}: {m} {p} is not one of its routes"
            );
        }
    }
}

fn sales_routes(lead: &LeadId) -> Vec<(&'static str, String)> {
    vec![
        ("GET", "/v1/sales/follow-ups".into()),
        ("GET", format!("/v1/sales/follow-ups/{lead}")),
        ("POST", format!("/v1/sales/follow-ups/{lead}/done")),
    ]
}

fn request<'a>(method: &str, path: &'a str, who: Option<&'a str>) -> ApiRequest<'a> {
    let req = if method == "GET" {
        ApiRequest::get(path)
    } else {
        ApiRequest::post_json(path, b"{}")
    };
    match who {
        Some(arn) => req.as_staff(arn),
        None => req,
    }
}

/// R4.11, R5.4 (issue 17): a sales principal is refused on every privacy-team route and
/// a privacy principal on every sales route (as are unsigned and unknown callers), each
/// refusal audited with the caller's principal, nothing read or marked; the admitted
/// principal's reads are each audited with its ARN (queue, record, done).
#[tokio::test]
async fn sales_and_privacy_are_refused_on_each_others_routes_and_every_read_is_audited() {
    let w = World::start().await;
    let app = sales_app(&w);
    let (id, _) = lead(&w, 41).await;
    call(&w, &id, &["call_ended", "call_analyzed"], 10).await;

    for (method, path) in privacy_routes(&id) {
        let (status, body) = answer(
            ::dsar::staff::handle(&w.staff, request(method, &path, Some(SALES)).build()).await,
        );
        assert_eq!(status, 403, "sales on {method} {path}: {body}");
    }
    for who in [Some(PRIVACY), Some(OUTSIDER), None] {
        for (method, path) in sales_routes(&id) {
            let (status, body) = call_sales(&app, request(method, &path, who)).await;
            assert_eq!(status, 403, "{who:?} on {method} {path}: {body}");
        }
    }
    // Nothing was marked by the refused `done`.
    assert!(followup_item(&w, &id)
        .await
        .unwrap()
        .contains_key("due_kind"));

    let audit = w.signup.items_of_kind("audit").await;
    let by = |actor: &str, action: &str| {
        audit
            .iter()
            .filter(|a| {
                a["actor"].as_s().unwrap() == actor && a["action"].as_s().unwrap() == action
            })
            .count()
    };
    assert_eq!(by(SALES, "staff.refused"), privacy_routes(&id).len());
    assert_eq!(by(PRIVACY, "sales.refused"), 3);
    assert_eq!(by(OUTSIDER, "sales.refused"), 3);
    assert_eq!(by("unauthenticated", "sales.refused"), 3);

    // Admitted: each read and the done mark audited with the principal and the lead.
    queue(&app).await;
    let path = format!("/v1/sales/follow-ups/{id}");
    assert_eq!(
        call_sales(&app, ApiRequest::get(&path).as_staff(SALES))
            .await
            .0,
        200
    );
    let done = format!("{path}/done");
    assert_eq!(
        call_sales(&app, ApiRequest::post_json(&done, b"").as_staff(SALES))
            .await
            .0,
        200
    );
    let audit = w.signup.items_of_kind("audit").await;
    let mine: Vec<(String, Option<String>)> = audit
        .iter()
        .filter(|a| a["actor"].as_s().unwrap() == SALES)
        .filter(|a| a["action"].as_s().unwrap().starts_with("sales."))
        .map(|a| {
            (
                a["action"].as_s().unwrap().clone(),
                a.get("lead_id").map(|l| l.as_s().unwrap().clone()),
            )
        })
        .collect();
    let mut mine_sorted = mine.clone();
    mine_sorted.sort();
    assert_eq!(
        mine_sorted,
        vec![
            ("sales.followup_done".to_owned(), Some(id.to_string())),
            ("sales.followup_viewed".to_owned(), Some(id.to_string())),
            ("sales.queue_viewed".to_owned(), None),
        ]
    );
    // Audit items name nobody: no name, email or phone in any of them.
    for a in &audit {
        let mut raw = Vec::new();
        for v in a.values() {
            flatten(v, &mut raw);
        }
        assert!(!raw
            .iter()
            .any(|b| contains_ci(b, FIRST) || contains_ci(b, "example.org")));
    }
    w.shutdown().await.unwrap();
}

/// Hostile input on the sales routes (issue 17) gets clean answers: malformed and unknown ids, other
/// methods, paths beyond the routes: 404/405 problem answers, nothing written but the
/// audit.
#[tokio::test]
async fn malformed_ids_unknown_leads_and_other_methods_are_answered_cleanly() {
    let w = World::start().await;
    let app = sales_app(&w);
    let unknown = LeadId::new();
    let long = "x".repeat(5000);
    for (method, path, want) in [
        ("GET", "/v1/sales/follow-ups/not-an-id".to_owned(), 404),
        ("GET", format!("/v1/sales/follow-ups/{unknown}"), 404),
        ("POST", format!("/v1/sales/follow-ups/{unknown}/done"), 404),
        (
            "POST",
            "/v1/sales/follow-ups/%00%27%22/done".to_owned(),
            404,
        ),
        ("GET", format!("/v1/sales/follow-ups/{long}"), 404),
        ("POST", "/v1/sales/follow-ups".to_owned(), 405),
        ("GET", format!("/v1/sales/follow-ups/{unknown}/done"), 405),
        ("GET", "/v1/sales/other".to_owned(), 404),
    ] {
        let (status, body) = call_sales(&app, request(method, &path, Some(SALES))).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(body["title"].is_string(), "problem+json: {body}");
    }
    assert!(w.signup.items_of_kind("followup").await.is_empty());
    w.shutdown().await.unwrap();
}

fn cli_settings(url: &str, key: &harness::gateway::LocalKey) -> admin::Settings {
    admin::Settings {
        api_url: Some(url.to_owned()),
        credentials: Some(key.credentials()),
        region: None,
        poll_interval: std::time::Duration::from_millis(50),
        wait_limit: std::time::Duration::from_secs(30),
    }
}

/// R5.4 (issue 17): `polly-admin sales queue|show|done` (+ `--json`) through the local
/// gateway as `make run` wires it: the `local-sales` key is admitted by the sales
/// function (its role in `SALES_PRINCIPAL_ARNS`), the local staff key and the intruder
/// key are refused there, and the staff key's principal is not sales.
#[tokio::test]
async fn polly_admin_sales_commands_through_the_local_gateway() {
    use harness::gateway::{
        local_keys, Gateway, SalesBackend, StaffBackend, LOCAL_SALES_KEY, LOCAL_SALES_PRINCIPAL,
        LOCAL_SALES_ROLE, LOCAL_STAFF_PRINCIPAL,
    };
    let w = World::start().await;
    let mut config = w.signup.stack.config_for("SalesApiFunction").unwrap();
    config.sales_principal_arns = vec![LOCAL_SALES_ROLE.to_owned()];
    let app = sales::App::from_aws(
        &config,
        &w.signup.stack.aws,
        Arc::new(w.signup.clock.clone()),
    )
    .unwrap();
    let mut staff_config = w.signup.stack.config_for("DsarStaffFunction").unwrap();
    staff_config.staff_principal_arns = vec![harness::gateway::LOCAL_STAFF_ROLE.to_owned()];
    let staff = ::dsar::staff::StaffApp::from_aws(
        staff_config,
        &w.signup.stack.aws,
        Arc::new(w.signup.clock.clone()),
    )
    .unwrap();
    let gw = Gateway::new(local_keys(), StaffBackend::InProcess(Arc::new(staff)), None)
        .with_sales(SalesBackend::InProcess(Arc::new(app)))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let keys = local_keys();
    let sales_key = keys
        .iter()
        .find(|k| k.access_key_id == LOCAL_SALES_KEY)
        .unwrap();
    let run = |key: &harness::gateway::LocalKey, args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let settings = cli_settings(gw.base_url(), key);
        async move { admin::run(&args, settings).await }
    };

    let (id, _) = lead(&w, 51).await;
    call(&w, &id, &["call_ended", "call_analyzed"], 10).await;
    let lead_id = id.to_string();

    let out = run(sales_key, &["sales", "queue"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("1 open follow-up") && out.stdout.contains(&lead_id),
        "{}",
        out.stdout
    );
    let out = run(sales_key, &["--json", "sales", "show", &lead_id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let record: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(record["lead_id"], lead_id.as_str());
    assert_eq!(record["analysis"]["needs"], SIM_NEEDS);
    let out = run(sales_key, &["sales", "done", &lead_id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("marked done"), "{}", out.stdout);
    let out = run(sales_key, &["--json", "sales", "queue"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({"items": []})
    );

    // The privacy team's key and the intruder are refused by the sales function; the
    // sales key by the staff function.
    for key in keys.iter().filter(|k| k.access_key_id != LOCAL_SALES_KEY) {
        let out = run(key, &["sales", "queue"]).await;
        assert_eq!(out.code, 1, "{}: {out:?}", key.access_key_id);
        assert!(out.stderr.contains("403"), "{out:?}");
    }
    let out = run(sales_key, &["list"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    // Usage errors.
    for args in [
        &["sales"][..],
        &["sales", "show"],
        &["sales", "frobnicate", "x"],
        &["sales", "done", ".."],
    ] {
        assert_eq!(run(sales_key, args).await.code, 2, "{args:?}");
    }
    let audit = w.signup.items_of_kind("audit").await;
    let by = |actor: &str, action: &str| {
        audit
            .iter()
            .filter(|a| {
                a["actor"].as_s().unwrap() == actor && a["action"].as_s().unwrap() == action
            })
            .count()
    };
    assert_eq!(by(LOCAL_SALES_PRINCIPAL, "sales.queue_viewed"), 2);
    assert_eq!(by(LOCAL_SALES_PRINCIPAL, "sales.followup_viewed"), 1);
    assert_eq!(by(LOCAL_SALES_PRINCIPAL, "sales.followup_done"), 1);
    assert_eq!(by(LOCAL_SALES_PRINCIPAL, "staff.refused"), 1);
    assert_eq!(by(LOCAL_STAFF_PRINCIPAL, "sales.refused"), 1);
    gw.shutdown().await.unwrap();
    w.shutdown().await.unwrap();
}

/// R5.4 (issue 17): the sales routes are served only by the sales function, IAM-signed;
/// its own role reaches only what the job needs: the `followup` partition of the due
/// index, items of subject partitions (`LEAD#…`: no request `DSAR#`, call `CALL#` or
/// audit item can be read), `done_at` and the due keys as the only updatable
/// attributes, append-only audit puts, the subject's data key under its context; no
/// scan, no delete, no bucket, no blind index, no key generation.
#[test]
fn the_sales_role_reaches_only_the_follow_up_items() {
    let t = harness::template::Template::load().unwrap();
    let routes = t.http_routes();
    let sales: Vec<_> = routes
        .iter()
        .filter(|r| r.path.starts_with("/v1/sales"))
        .collect();
    let mut keys: Vec<String> = sales.iter().map(|r| r.key()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "GET /v1/sales/follow-ups",
            "GET /v1/sales/follow-ups/{lead_id}",
            "POST /v1/sales/follow-ups/{lead_id}/done"
        ]
    );
    for r in &sales {
        assert_eq!(r.function, "SalesApiFunction", "{}", r.key());
        assert_eq!(r.authorizer.as_deref(), Some("AWS_IAM"), "{}", r.key());
    }
    assert!(routes
        .iter()
        .filter(|r| r.function == "SalesApiFunction")
        .all(|r| r.path.starts_with("/v1/sales/")));
    let role = t.function_role("SalesApiFunction").unwrap();
    assert_eq!(role, "SalesApiFunctionRole");
    let statements = t.role_statements(&role);
    let mut allowed: Vec<String> = Vec::new();
    for st in &statements {
        assert_eq!(st["Effect"], "Allow");
        let actions: Vec<String> = match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            _ => panic!("no action"),
        };
        for a in &actions {
            assert!(!a.contains('*'), "wildcard action {a}");
        }
        let resource = st["Resource"].to_string();
        let condition = st["Condition"].to_string();
        if actions.iter().any(|a| a.starts_with("dynamodb:")) {
            // Every table grant is bounded by its leading keys.
            assert!(condition.contains("dynamodb:LeadingKeys"), "{st}");
            let leading = if resource.contains("index/by-due") {
                "followup"
            } else if actions == ["dynamodb:PutItem"] {
                "AUDIT#*"
            } else {
                "LEAD#*"
            };
            assert!(condition.contains(leading), "{st}");
            if actions.contains(&"dynamodb:UpdateItem".to_owned()) {
                assert!(condition.contains("dynamodb:Attributes"), "{st}");
                assert!(
                    condition.contains("done_at") && !condition.contains("sealed"),
                    "{st}"
                );
            }
        }
        allowed.extend(actions);
    }
    allowed.sort();
    allowed.dedup();
    assert_eq!(
        allowed,
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "kms:Decrypt",
            "logs:CreateLogStream",
            "logs:PutLogEvents"
        ]
    );
    // The allow-list: its own parameter, apart from the privacy team's.
    let env = t.function_variable_names("SalesApiFunction");
    assert!(env.contains("SALES_PRINCIPAL_ARNS") && !env.contains("STAFF_PRINCIPAL_ARNS"));
    assert!(!t
        .function_variable_names("DsarStaffFunction")
        .contains("SALES_PRINCIPAL_ARNS"));
    assert_eq!(
        t.parameter_default("SalesPrincipalArns").as_deref(),
        Some("")
    );
}

/// R4.4 (issue 17): what sales received is part of the subject's Art. 15 export:
/// `data.json` shows the follow-up record opened under `sales_followup`, field for field
/// what the sales route answers (sales' `done` mark included), not as an opaque item
/// under `other_records`; the read-me points to it.
#[tokio::test]
async fn the_access_export_shows_the_record_sales_received() {
    let w = World::on_mail_emulator_named("sales").await;
    let app = sales_app(&w);
    let (id, email) = lead(&w, 61).await;
    call(&w, &id, &["call_ended", "call_analyzed"], 10).await;
    let path = format!("/v1/sales/follow-ups/{id}");
    let done = format!("{path}/done");
    let (status, body) = call_sales(&app, ApiRequest::post_json(&done, b"").as_staff(SALES)).await;
    assert_eq!(status, 200, "{body}");
    let (status, record) = call_sales(&app, ApiRequest::get(&path).as_staff(SALES)).await;
    assert_eq!(status, 200, "{record}");
    assert!(!record["summary"].as_str().unwrap().is_empty(), "{record}");

    let (request, token) = w.verified("access", &email).await;
    assert_eq!(w.pump(&request, 40).await, 0);
    let (_, view) = w.status(&request, Some(&token)).await;
    assert_eq!(view["outcome"], "export_ready", "{view}");
    let files = common::dsar::unzip(&w.download(view["download_url"].as_str().unwrap()).await);
    let data: Value = serde_json::from_slice(&files["data.json"]).unwrap();
    let shown = &data["sales_followup"];
    let instant = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|_| panic!("not an instant: {v}"))
    };
    for (name, value) in record.as_object().unwrap() {
        if name == "done_at" {
            assert_eq!(instant(&shown[name]), instant(value), "{shown}");
        } else {
            assert_eq!(&shown[name], value, "{name}: {shown}");
        }
    }
    assert!(
        data["other_records"].get("followup").is_none(),
        "{}",
        data["other_records"]
    );
    let readme = String::from_utf8(files["LIESMICH.txt"].clone()).unwrap();
    assert!(readme.contains("\"sales_followup\""), "{readme}");
    w.shutdown().await.unwrap();
}

/// R7.1 (issue 17): a number the privacy team lists as do-not-call after its subject's
/// follow-up record was written takes that subject out of the sales queue at once (the
/// item goes; the queue and the record route no longer show it), and no one else; a
/// second listing changes nothing.
#[tokio::test]
async fn a_number_listed_by_staff_later_leaves_the_sales_queue() {
    let w = World::start().await;
    let app = sales_app(&w);
    let (listed, _) = lead(&w, 71).await;
    let (kept, _) = lead(&w, 72).await;
    call(&w, &listed, &["call_ended", "call_analyzed"], 10).await;
    call(&w, &kept, &["call_ended", "call_analyzed"], 20).await;
    let mut both = vec![listed.to_string(), kept.to_string()];
    both.sort();
    assert_eq!(queued_leads(&queue(&app).await), both);

    let number = json!({"phone": "0170 5500071"});
    let (status, body) = w.staff_post("/v1/admin/do-not-call", &number).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true, "{body}");
    assert!(followup_item(&w, &listed).await.is_none());
    assert!(followup_item(&w, &kept).await.is_some());
    assert_eq!(queued_leads(&queue(&app).await), vec![kept.to_string()]);
    let path = format!("/v1/sales/follow-ups/{listed}");
    let (status, body) = call_sales(&app, ApiRequest::get(&path).as_staff(SALES)).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = w.staff_post("/v1/admin/do-not-call", &number).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], false, "{body}");
    assert_eq!(queued_leads(&queue(&app).await), vec![kept.to_string()]);
    w.shutdown().await.unwrap();
}

/// Issue 17 (measured, not counted from the code): the AWS requests the telephony worker's
/// handoff makes to write one follow-up record, and to find a redelivered call's record
/// written already, counted on the wire over the worker's own adapters. Prints both;
/// the bounds keep a change that multiplies them from passing unnoticed.
#[tokio::test]
async fn the_handoff_makes_a_bounded_number_of_aws_requests_per_record() {
    use shared::adapters::calls::{DynamoAuditTrail, DynamoCallStore};
    use shared::adapters::dnc::DynamoDoNotCall;
    use shared::adapters::dynamo::DynamoLeadStore;
    use shared::adapters::kms::KmsKeyService;
    use shared::adapters::sales::DynamoFollowUps;

    let w = World::start().await;
    let (id, _) = lead(&w, 81).await;
    let script = call(&w, &id, &["call_ended", "call_analyzed"], 10).await;
    let stack = &w.signup.stack;
    let config = stack.config_for("TelephonyWorkerFunction").unwrap();
    let counter = harness::requests::RequestCounter::default();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&stack.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let clock: Arc<dyn Clock> = Arc::new(w.signup.clock.clone());
    let keys = Arc::new(KmsKeyService::new(
        kms,
        config.data_key_id.clone(),
        config.blind_index_key_id.clone(),
    ));
    let table = config.table_name.clone();
    let handoff = usecases::sales::FollowUpHandoff::new(
        Arc::new(DynamoCallStore::new(ddb.clone(), table.clone())),
        Arc::new(DynamoLeadStore::new(
            ddb.clone(),
            table.clone(),
            config.key_table_name.clone(),
        )),
        keys,
        usecases::dnc::DoNotCallList::new(
            Arc::new(DynamoDoNotCall::new(ddb.clone(), table.clone())),
            Arc::new(DynamoAuditTrail::new(ddb.clone(), table.clone())),
            Arc::clone(&clock),
        ),
        Arc::new(DynamoFollowUps::new(ddb.clone(), table.clone())),
        clock,
    );

    // The worker wrote the record; take it away so the counted handoff writes it anew.
    aws_sdk_dynamodb::Client::new(&stack.aws)
        .delete_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(lead_pk(&id)))
        .key("sk", AttributeValue::S(FOLLOWUP_SK.into()))
        .send()
        .await
        .unwrap();
    counter.reset();
    assert_eq!(
        handoff.handoff(script.call_id()).await.unwrap(),
        HandoffOutcome::Ready
    );
    let written = counter.by_operation();
    counter.reset();
    assert_eq!(
        handoff.handoff(script.call_id()).await.unwrap(),
        HandoffOutcome::Unchanged
    );
    let redelivered = counter.by_operation();
    let total = |m: &std::collections::BTreeMap<String, usize>| m.values().sum::<usize>();
    println!(
        "handoff AWS requests: {} to write a record {written:?}; {} for a redelivery {redelivered:?}",
        total(&written),
        total(&redelivered)
    );
    assert!(followup_item(&w, &id).await.is_some());
    assert_eq!(written.get("TransactWriteItems"), Some(&1), "{written:?}");
    assert!(total(&written) <= 10, "{written:?}");
    assert!(total(&redelivered) <= total(&written), "{redelivered:?}");
    w.shutdown().await.unwrap();
}
