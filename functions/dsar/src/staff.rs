//! The staff routes (R4.10, R4.11, R5.4), in their own function (`dsar-staff`) with its
//! own role: only this function may read subject profiles or scan the table.
//!
//! - `GET /v1/admin/dsar?status=open` (failed requests first, with their reason code, and
//!   the deletions still pending at the provider, incidents first),
//!   `POST /v1/admin/dsar/{id}/extend`, `POST /v1/admin/dsar/{id}/deny`,
//!   `POST /v1/admin/dsar/{id}/verify-identity`, `POST /v1/admin/dsar/{id}/retry` (a
//!   failed or stuck request goes back to the worker);
//! - `GET /v1/admin/dsar/{id}`: one request, its facts and its timeline (audited as
//!   `dsar.viewed`); `POST /v1/admin/dsar`: a request received by letter, phone or mail,
//!   entered with its receipt time (`dsar.entered`);
//! - `GET /v1/admin/subjects/{lead_id}`, `POST /v1/admin/subjects/{lead_id}/contracts`,
//!   `POST /v1/admin/subjects/{lead_id}/contracts/{contract_id}/end`,
//!   `POST /v1/admin/subjects/{lead_id}/lift-restriction`;
//! - `POST /v1/admin/analytics-exports` (202: a job the analytics worker carries out) and
//!   `GET /v1/admin/analytics-exports/{export_id}` (its status, and the file once done);
//! - `POST /v1/admin/do-not-call` and `POST /v1/admin/do-not-call/lift` with
//!   `{"phone": "..."}`: list a number, or lift its listing (R7.1). The number is
//!   normalised and blind-indexed; it is never logged, audited or stored in clear.
//!
//! API Gateway lets only IAM-signed requests through (`AWS_IAM`); IAM says who the caller
//! is, not that they are staff. The caller's principal must be in the configured
//! allow-list (`STAFF_PRINCIPAL_ARNS`, [`StaffPrincipals`]); anyone else gets 403 and an
//! audit item `staff.refused` naming the principal. Every action is audited with the
//! principal ARN as actor (R4.11).

use std::sync::Arc;

use http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Map, Value};
use shared::adapters::dsar_staff::DynamoStaff;
use shared::adapters::dsar_subjects::DynamoSubjects;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::mail::SesMailer;
use shared::adapters::outbox::DynamoOutbox;
use shared::adapters::s3::BlobStore;
use shared::domain::RequestId;
use shared::dsar::service::{DsarError, DsarService};
use shared::dsar::staff::{Staff, StaffPrincipals};
use shared::http::{iam_principal, json_response, FieldProblem, Problem};
use shared::leads::LeadService;
use shared::{Clock, Config};
use usecases::dsar::analytics_job::{find_export, start_export, ExportJobs};
use usecases::dsar::records::Channel;
use usecases::dsar::requests::Entry;
use usecases::outbox::ProviderOutbox;

use super::{failure, json_body, not_found, problem, rejected, service_from_aws, MAX_TEXT_CHARS};

/// The actor of a refusal when API Gateway named no principal (only reachable when the
/// route is misconfigured without `AWS_IAM`).
pub const UNAUTHENTICATED: &str = "unauthenticated";

pub struct StaffApp {
    pub service: Arc<DsarService>,
    pub staff: Staff,
    principals: StaffPrincipals,
    /// The provider-deletion outbox: its entries (incidents first) are part of the list.
    outbox: Arc<dyn ProviderOutbox>,
    /// The request records of a period, for the accountability figures (`/v1/admin/stats`).
    history: Arc<dyn usecases::dsar::figures::RequestHistory>,
    /// The analytics export jobs (R6): started and looked at here, carried out by the
    /// analytics worker.
    analytics: Arc<dyn ExportJobs>,
}

/// The staff actions on subjects over AWS, next to the request side `service`.
pub fn staff_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
    service: Arc<DsarService>,
) -> Result<Staff, &'static str> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let keys = Arc::new(KmsKeyService::new(
        aws_sdk_kms::Client::new(aws),
        config.data_key_id.clone(),
        config.blind_index_key_id.clone(),
    ));
    let lead_store = Arc::new(DynamoLeadStore::new(
        ddb.clone(),
        config.table_name.clone(),
        config.key_table_name.clone(),
    ));
    Ok(Staff {
        requests: service,
        store: Arc::new(DynamoStaff::new(ddb.clone(), config.table_name.clone())),
        contracts: Arc::new(DynamoStaff::new(ddb.clone(), config.table_name.clone())),
        rights: Arc::new(DynamoSubjects::new(
            ddb.clone(),
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
        leads: Arc::new(LeadService::new(
            lead_store.clone(),
            keys.clone(),
            Arc::clone(&clock),
        )),
        lead_store,
        keys,
        mailer: Arc::new(
            SesMailer::new(
                aws_sdk_sesv2::Client::new(aws),
                config.mail_from.clone().ok_or("MAIL_FROM is required")?,
            )
            .with_privacy_links(config.public_api_base_url.clone()),
        ),
        exports: Arc::new(BlobStore::new(
            aws_sdk_s3::Client::new(aws),
            config
                .exports_bucket
                .clone()
                .ok_or("EXPORTS_BUCKET is required")?,
            config.data_key_arn.clone(),
        )),
        clock,
        ledger: config.ledger_key_id.as_ref().map(|key| {
            (
                Arc::new(shared::adapters::ledger::DynamoLedgerStore::from_sdk(
                    aws,
                    config.table_name.clone(),
                )) as Arc<dyn shared::ledger::LedgerStore>,
                Arc::new(shared::adapters::ledger::KmsHeadSigner::from_sdk(
                    aws,
                    key.clone(),
                )) as Arc<dyn shared::ledger::HeadSigner>,
            )
        }),
        do_not_call: Arc::new(shared::adapters::dnc::DynamoDoNotCall::new(
            ddb,
            config.table_name.clone(),
        )),
    })
}

impl StaffApp {
    pub fn from_aws(
        config: Config,
        aws: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, &'static str> {
        let principals = StaffPrincipals::parse(&config.staff_principal_arns)
            .map_err(|_| "STAFF_PRINCIPAL_ARNS may list only IAM role and user ARNs")?;
        if principals.is_empty() {
            tracing::warn!("STAFF_PRINCIPAL_ARNS is empty: every staff request is refused");
        }
        let service = Arc::new(service_from_aws(&config, aws, Arc::clone(&clock))?);
        let outbox = Arc::new(DynamoOutbox::new(
            aws_sdk_dynamodb::Client::new(aws),
            config.table_name.clone(),
        ));
        let history = Arc::new(shared::adapters::dsar::DsarStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            config.table_name.clone(),
            config.key_table_name.clone(),
        ));
        let analytics = Arc::new(shared::adapters::analytics::DynamoAnalytics::new(
            aws_sdk_dynamodb::Client::new(aws),
            config.table_name.clone(),
        ));
        Ok(Self {
            outbox,
            history,
            analytics,
            staff: staff_from_aws(&config, aws, clock, Arc::clone(&service))?,
            service,
            principals,
        })
    }
}

fn forbidden() -> Response<Body> {
    problem(
        StatusCode::FORBIDDEN,
        "https://polly-ki.de/problems/forbidden",
        "Forbidden",
        "Staff routes are open only to the configured staff principals.",
    )
}

/// Handles one request to a staff route.
pub async fn handle(app: &StaffApp, req: Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ["v1", "admin", rest @ ..] = segments.as_slice() else {
        return not_found();
    };
    let principal = iam_principal(&req);
    let Some(actor) = principal.as_deref().filter(|p| app.principals.admits(p)) else {
        return refuse(app, principal.as_deref()).await;
    };
    let method = req.method().clone();
    match rest {
        ["stats"] if method == Method::GET => stats(app, &req, actor).await,
        ["dsar", tail @ ..] => requests(app, &req, &method, tail, actor).await,
        _ => subjects(app, &req, &method, rest, actor).await,
    }
}

/// 403 and an audit item naming the caller. The principal stays out of the logs (a
/// session name may be a person's name); the audit item is where it belongs.
#[tracing::instrument(name = "dsar_staff_refused", skip_all)]
async fn refuse(app: &StaffApp, principal: Option<&str>) -> Response<Body> {
    let actor = principal.unwrap_or(UNAUTHENTICATED);
    tracing::warn!(
        authenticated = principal.is_some(),
        "staff request refused: principal not in the allow-list"
    );
    if let Err(e) = app.staff.record_staff_refusal(actor).await {
        // The refusal stands either way; a lost audit item is an alarm, not a reason to
        // let the caller in or to answer differently.
        tracing::error!(error = %e, "refusal not audited");
        shared::telemetry::metric("StaffRefusalNotAudited", 1.0);
    }
    forbidden()
}

/// Request routes: the open list, extend, deny, verify identity (R4.3, R4.10).
#[tracing::instrument(name = "dsar_staff", skip_all)]
async fn requests(
    app: &StaffApp,
    req: &Request,
    method: &Method,
    rest: &[&str],
    actor: &str,
) -> Response<Body> {
    match (method, rest) {
        (&Method::POST, []) => enter(app, req, actor).await,
        (&Method::GET, [id]) => {
            // A malformed id gets the same answer as an unknown one.
            let Ok(id) = RequestId::parse(id) else {
                return failure(&DsarError::NotFound);
            };
            match app.service.request_view(&id, actor).await {
                Ok(view) => {
                    let mut r = json_response(StatusCode::OK, &view);
                    r.headers_mut().insert(
                        header::CACHE_CONTROL,
                        http::HeaderValue::from_static("no-store"),
                    );
                    r
                }
                Err(e) => failure(&e),
            }
        }
        (&Method::GET, []) => {
            let query = req.query_string_parameters_ref();
            let status = query.and_then(|q| q.first("status")).unwrap_or("open");
            if status != "open" {
                return rejected(Problem::validation(vec![FieldProblem::new(
                    "status",
                    "unsupported",
                    "only status=open is listed",
                )]));
            }
            let list = match app.staff.list_open_requests(actor).await {
                Ok(list) => list,
                Err(e) => return failure(&e),
            };
            // Deletions at the provider still pending (only provider call ids), the
            // incidents (they kept failing) first.
            let mut pending = match app.outbox.pending().await {
                Ok(p) => p,
                Err(e) => return failure(&DsarError::Store(e)),
            };
            pending.sort_by_key(|p| (!p.incident, p.queued_at));
            let provider_deletions: Vec<Value> = pending
                .iter()
                .map(|p| {
                    json!({
                        "call_id": p.call_id,
                        "attempts": p.attempts,
                        "queued_at": p.queued_at,
                        "next_attempt_at": p.next_attempt_at,
                        "incident": p.incident,
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"requests": list, "provider_deletions": provider_deletions}),
            )
        }
        (&Method::POST, [id, action]) => {
            let Ok(id) = RequestId::parse(id) else {
                return failure(&DsarError::NotFound);
            };
            match *action {
                "extend" => {
                    let body = match json_body(req, &["months", "reason"]) {
                        Ok(b) => b,
                        Err(p) => return rejected(p),
                    };
                    let months = body.get("months").and_then(Value::as_u64).unwrap_or(0);
                    let reason = body.get("reason").and_then(Value::as_str).unwrap_or("");
                    if reason.chars().count() > MAX_TEXT_CHARS {
                        return rejected(Problem::validation(vec![FieldProblem::new(
                            "reason",
                            "too_long",
                            "must be at most 2000 characters",
                        )]));
                    }
                    match app
                        .service
                        .extend(&id, u32::try_from(months).unwrap_or(0), reason, actor)
                        .await
                    {
                        Ok(due) => json_response(
                            StatusCode::OK,
                            &json!({"request_id": id.to_string(), "due_at": due}),
                        ),
                        Err(e) => failure(&e),
                    }
                }
                "deny" => {
                    let body = match json_body(req, &["reasons"]) {
                        Ok(b) => b,
                        Err(p) => return rejected(p),
                    };
                    let reasons: Vec<String> = body
                        .get("reasons")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    if reasons.is_empty()
                        || reasons.iter().any(|r| r.chars().count() > MAX_TEXT_CHARS)
                    {
                        return rejected(Problem::validation(vec![FieldProblem::new(
                            "reasons",
                            "required",
                            "give one or more reasons of at most 2000 characters (Art. 12(4) GDPR)",
                        )]));
                    }
                    match app.service.deny(&id, &reasons, actor).await {
                        Ok(()) => json_response(
                            StatusCode::OK,
                            &json!({"request_id": id.to_string(), "status": "denied"}),
                        ),
                        Err(e) => failure(&e),
                    }
                }
                "retry" => match app.service.retry(&id, actor).await {
                    Ok(()) => json_response(
                        StatusCode::OK,
                        &json!({"request_id": id.to_string(), "status": "in_progress"}),
                    ),
                    Err(e) => failure(&e),
                },
                "verify-identity" => match app.service.verify_identity(&id, actor).await {
                    Ok(v) => json_response(
                        StatusCode::OK,
                        &json!({"request_id": id.to_string(), "request_token": v.token, "status": v.status}),
                    ),
                    Err(e) => failure(&e),
                },
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// The members of `POST /v1/admin/dsar` besides the public intake's.
pub const ENTRY_FIELDS: &[&str] = &["channel", "received_at", "identity_verified"];

/// Parses the body of `POST /v1/admin/dsar`: the public intake's fields, validated as
/// there (`parse_intake`), and the channel, the receipt time and whether staff checked the
/// identity. Every failed field is reported.
pub fn parse_entry(body: &Map<String, Value>) -> Result<Entry, Vec<FieldProblem>> {
    let mut public = body.clone();
    for f in ENTRY_FIELDS {
        public.remove(*f);
    }
    let intake = super::parse_intake(&public);
    let mut errors = intake.as_ref().err().cloned().unwrap_or_default();
    let channel = match body.get("channel") {
        Some(Value::String(c)) => Channel::parse_offline(c),
        _ => None,
    };
    if channel.is_none() {
        errors.push(FieldProblem::new(
            "channel",
            "invalid",
            "must be letter, phone or email (how the request reached us)",
        ));
    }
    let received_at = parse_time(body, "received_at");
    if received_at.is_none() {
        errors.push(FieldProblem::new(
            "received_at",
            "invalid",
            "must be the receipt time in RFC 3339, e.g. 2026-11-10T09:30:00+01:00",
        ));
    }
    let identity_verified = match body.get("identity_verified") {
        Some(Value::Bool(b)) => Some(*b),
        _ => {
            errors.push(FieldProblem::new(
                "identity_verified",
                "required",
                "must be true (staff checked the identity) or false",
            ));
            None
        }
    };
    match (intake, channel, received_at, identity_verified) {
        (Ok(i), Some(channel), Some(received_at), Some(identity_verified)) if errors.is_empty() => {
            Ok(Entry {
                request_type: i.request_type,
                channel,
                received_at,
                email: i.email,
                phone: i.phone,
                message: i.message,
                corrections: i.corrections,
                identity_verified,
            })
        }
        _ => Err(errors),
    }
}

/// `POST /v1/admin/dsar` (R4.1, R4.10): 201 with the request id, its status and due date;
/// with the identity checked, also the request token and the status address for staff
/// to hand to the subject (by letter when there is no email).
#[tracing::instrument(name = "dsar_staff_enter", skip_all)]
async fn enter(app: &StaffApp, req: &Request, actor: &str) -> Response<Body> {
    let fields: Vec<&str> = super::SUBMIT_FIELDS
        .iter()
        .chain(ENTRY_FIELDS)
        .copied()
        .collect();
    let entry =
        match json_body(req, &fields).and_then(|b| parse_entry(&b).map_err(Problem::validation)) {
            Ok(e) => e,
            Err(p) => return rejected(p),
        };
    match app.service.enter(entry, actor).await {
        Ok(e) => {
            let id = e.request_id.to_string();
            let mut body = json!({
                "request_id": id,
                "status": e.status,
                "due_at": e.due_date,
                "days_left": e.days_left,
                "overdue": e.days_left < 0,
                "status_url": format!("{}/v1/dsar/{id}", app.service.public_api_base_url),
            });
            if let Some(token) = e.token {
                body["request_token"] = Value::String(token);
            }
            let mut r = json_response(StatusCode::CREATED, &body);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) => failure(&e),
    }
}

fn parse_time(body: &Map<String, Value>, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    body.get(field)?
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn parse_records(body: &Map<String, Value>) -> Option<shared::domain::retention::ContractRecords> {
    serde_json::from_value(body.get("records")?.clone()).ok()
}

fn invalid(field: &str, code: &'static str, detail: &'static str) -> Response<Body> {
    rejected(Problem::validation(vec![FieldProblem::new(
        field, code, detail,
    )]))
}

/// Staff routes about subjects and analytics (R4.7, R4.10, R6).
#[tracing::instrument(name = "dsar_staff_subjects", skip_all)]
async fn subjects(
    app: &StaffApp,
    req: &Request,
    method: &Method,
    rest: &[&str],
    actor: &str,
) -> Response<Body> {
    if let (&Method::POST, ["do-not-call", tail @ ..]) = (method, rest) {
        return do_not_call(app, req, tail, actor).await;
    }
    if let ["analytics-exports", tail @ ..] = rest {
        return analytics_exports(app, req, method, tail, actor).await;
    }
    let ["subjects", lead, tail @ ..] = rest else {
        return not_found();
    };
    let Ok(lead) = shared::domain::LeadId::parse(lead) else {
        return not_found();
    };
    match (method, tail) {
        // The subject's consent history from the verified consent ledger (R7.6).
        (&Method::GET, ["consents"]) => match app.staff.consent_history(&lead, actor).await {
            Ok(Some(history)) => {
                let mut r = json_response(StatusCode::OK, &history);
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                r
            }
            Ok(None) => not_found(),
            Err(e) => failure(&e),
        },
        (&Method::GET, []) => match app.staff.view_subject(&lead, actor).await {
            Ok(Some(view)) => {
                let mut r = json_response(StatusCode::OK, &view);
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                r
            }
            Ok(None) => not_found(),
            Err(e) => failure(&e),
        },
        (&Method::POST, ["contracts"]) => {
            let body = match json_body(req, &["start", "end", "records"]) {
                Ok(b) => b,
                Err(p) => return rejected(p),
            };
            let (Some(start), Some(end)) = (parse_time(&body, "start"), parse_time(&body, "end"))
            else {
                return invalid("end", "invalid", "start and end must be RFC 3339 times");
            };
            let Some(records) = parse_records(&body) else {
                return invalid(
                    "records",
                    "invalid",
                    "must be business_letters, booking_vouchers or books",
                );
            };
            if end < start {
                return invalid("end", "before_start", "must not be before start");
            }
            let contract = shared::contracts::Contract {
                start,
                end,
                records,
            };
            match app.staff.record_contract(&lead, contract, actor).await {
                Ok(Some(id)) => json_response(StatusCode::CREATED, &json!({"contract_id": id})),
                Ok(None) => not_found(),
                Err(e) => failure(&e),
            }
        }
        (&Method::POST, ["contracts", contract, "end"]) => {
            let body = match json_body(req, &["end", "records"]) {
                Ok(b) => b,
                Err(p) => return rejected(p),
            };
            let (Some(end), Some(records)) = (parse_time(&body, "end"), parse_records(&body))
            else {
                return invalid("end", "invalid", "end (RFC 3339) and records are required");
            };
            match app
                .staff
                .end_contract(&lead, contract, records, end, actor)
                .await
            {
                Ok(true) => json_response(
                    StatusCode::OK,
                    &json!({"contract_id": contract, "ended_at": end}),
                ),
                Ok(false) => not_found(),
                Err(e) => failure(&e),
            }
        }
        (&Method::POST, ["lift-restriction"]) => {
            match app.staff.lift_restriction(&lead, actor).await {
                Ok(shared::dsar::staff::LiftOutcome::Lifted) => json_response(
                    StatusCode::OK,
                    &json!({"lead_id": lead.to_string(), "restricted": false, "subject_notified": true}),
                ),
                Ok(shared::dsar::staff::LiftOutcome::NotRestricted) => problem(
                    StatusCode::CONFLICT,
                    "https://polly-ki.de/problems/not-restricted",
                    "Not restricted",
                    "The subject's processing is not restricted.",
                ),
                Ok(shared::dsar::staff::LiftOutcome::Gone) => not_found(),
                Err(e) => failure(&e),
            }
        }
        _ => not_found(),
    }
}

/// `POST /v1/admin/do-not-call[/lift]` (R7.1): 200 with `changed` (false: listed already,
/// or not listed to lift); 422 when the number is not a valid phone number.
async fn do_not_call(app: &StaffApp, req: &Request, tail: &[&str], actor: &str) -> Response<Body> {
    let lift = match tail {
        [] => false,
        ["lift"] => true,
        _ => return not_found(),
    };
    let body = match json_body(req, &["phone"]) {
        Ok(b) => b,
        Err(p) => return rejected(p),
    };
    let phone = body
        .get("phone")
        .and_then(Value::as_str)
        .and_then(|p| shared::domain::PhoneNumber::parse(p).ok());
    let Some(phone) = phone else {
        return invalid("phone", "invalid", "A valid phone number is required.");
    };
    let result = if lift {
        app.staff.lift_number(&phone, actor).await
    } else {
        app.staff.list_number(&phone, actor).await
    };
    match result {
        Ok(changed) => json_response(
            StatusCode::OK,
            &json!({"status": if lift { "lifted" } else { "listed" }, "changed": changed}),
        ),
        Err(e) => failure(&e),
    }
}

/// `GET /v1/admin/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`: the accountability figures per
/// request type of the requests received in the period (Berlin days, at most 366), from
/// the stored request records (Art. 5(2) GDPR); audited as `dsar.stats_viewed`.
#[tracing::instrument(name = "dsar_staff_stats", skip_all)]
async fn stats(app: &StaffApp, req: &Request, actor: &str) -> Response<Body> {
    use usecases::dsar::figures::{period, PeriodError};
    let query = req.query_string_parameters_ref();
    // A bad date: (field, code, detail); the input is never echoed.
    type Bad = (&'static str, &'static str, &'static str);
    let date = |name: &'static str| -> Result<chrono::NaiveDate, Bad> {
        let values: Vec<&str> = query
            .map(|q| q.all(name).unwrap_or_default())
            .unwrap_or_default();
        match values.as_slice() {
            [one] if one.len() == 10 => chrono::NaiveDate::parse_from_str(one, "%Y-%m-%d")
                .map_err(|_| (name, "invalid", "must be a date YYYY-MM-DD")),
            [] => Err((name, "required", "a date YYYY-MM-DD is required")),
            _ => Err((name, "invalid", "must be one date YYYY-MM-DD")),
        }
    };
    let (from, to) = match (date("from"), date("to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err((field, code, detail)), _) | (_, Err((field, code, detail))) => {
            return invalid(field, code, detail)
        }
    };
    let (from, to) = match period(from, to) {
        Ok(p) => p,
        Err(PeriodError::Reversed) => {
            return invalid("to", "before_from", "must not be before from")
        }
        Err(PeriodError::TooWide) => {
            return invalid("to", "too_wide", "the period may span at most 366 days")
        }
    };
    let records = match app.history.received_between(from, to).await {
        Ok(r) => r,
        Err(e) => return failure(&DsarError::Store(e)),
    };
    let now = app.staff.clock.now();
    if let Err(e) = app
        .staff
        .store
        .audit(actor, "dsar.stats_viewed", None, now)
        .await
    {
        return failure(&DsarError::Store(e));
    }
    json_response(
        StatusCode::OK,
        &usecases::dsar::figures::stats(&records, from, to, now),
    )
}

/// `POST /v1/admin/analytics-exports` (R6): starts an export job (audited, `running`) and
/// answers 202 with its id; the body is empty or `{}`. `GET
/// /v1/admin/analytics-exports/{export_id}`: the job's status and counters, and its file
/// once `done`; 404 for an unknown or malformed id.
///
/// A body with fields, malformed JSON or more than `MAX_BODY_BYTES` is refused (no job).
async fn analytics_exports(
    app: &StaffApp,
    req: &Request,
    method: &Method,
    tail: &[&str],
    actor: &str,
) -> Response<Body> {
    match (method, tail) {
        (&Method::POST, []) => {
            let bytes: &[u8] = req.body().as_ref();
            if bytes.len() > super::MAX_BODY_BYTES {
                return rejected(Problem::payload_too_large(super::MAX_BODY_BYTES));
            }
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                match json_body(req, &[]) {
                    Ok(body) if body.is_empty() => {}
                    Ok(_) => {
                        return invalid("body", "unexpected", "an export takes no fields");
                    }
                    Err(p) => return rejected(p),
                }
            }
            match start_export(app.analytics.as_ref(), app.staff.clock.now(), actor).await {
                Ok(job) => json_response(
                    StatusCode::ACCEPTED,
                    &json!({"export_id": job.export_id, "status": job.status.as_str()}),
                ),
                Err(e) => failure(&DsarError::Store(e)),
            }
        }
        (&Method::GET, [id]) => match find_export(app.analytics.as_ref(), id).await {
            Ok(Some(job)) => {
                let mut r = json_response(StatusCode::OK, &job.view());
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                r
            }
            Ok(None) => not_found(),
            Err(e) => failure(&DsarError::Store(e)),
        },
        _ => not_found(),
    }
}
