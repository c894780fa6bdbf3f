//! `POST /v1/signups`: the sign-up form's endpoint (R1).
//!
//! Parses the body into domain types at the edge, then hands them to the lead service,
//! which encrypts and stores the lead in one write whose `call_state = requested` drives
//! the telephony worker through the table's stream. Every outcome is a response: 201 with
//! a random per-submission reference (the same for new and known people, R1.6), or a
//! problem+json that names the failed field and never the value.

use std::sync::Arc;

use http::{header, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use shared::adapters::{dynamo::DynamoLeadStore, kms::KmsKeyService};
use shared::domain::calling_hours::{CallWindow, CallWindowError};
use shared::domain::{ClientSoftware, Email, LeadProfile, Notes, PersonName, PhoneNumber};
use shared::http::{
    apply_cors, body_within, json_response, parse_json_object, require_json_content_type,
    FieldProblem, Problem,
};
use shared::leads::{LeadService, SignupRequest};
use shared::ports::Retry;
use shared::{Clock, Config};

pub mod pages;

/// Largest accepted body (R1.2).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The members of the sign-up body, by dotted path.
pub const FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "notes",
    "consent",
    "consent.contact_by_phone",
    "consent.privacy_policy_version",
    "call_window",
    "call_window.from",
    "call_window.to",
    "call_window.days",
];

/// The function's state, built once per cold start.
pub struct App {
    service: LeadService,
    config: Config,
}

impl App {
    pub fn new(config: Config, service: LeadService) -> Self {
        Self { service, config }
    }

    /// Wires the AWS adapters from an SDK configuration.
    pub fn from_aws(config: Config, aws: &aws_config::SdkConfig, clock: Arc<dyn Clock>) -> Self {
        let store = DynamoLeadStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            config.table_name.clone(),
            config.key_table_name.clone(),
        );
        let keys = KmsKeyService::new(
            aws_sdk_kms::Client::new(aws),
            config.data_key_id.clone(),
            config.blind_index_key_id.clone(),
        );
        // The consent ledger and the receipt mail (R7.6).
        let ledger =
            shared::adapters::ledger::DynamoLedgerStore::from_sdk(aws, config.table_name.clone());
        let receipts = config.mail_from.as_ref().map(|from| {
            Arc::new(
                shared::adapters::mail::SesMailer::new(
                    aws_sdk_sesv2::Client::new(aws),
                    from.clone(),
                )
                .with_privacy_links(config.public_api_base_url.clone()),
            ) as Arc<dyn shared::ports::Mailer>
        });
        let service = LeadService::new(Arc::new(store), Arc::new(keys), clock).with_ledger(
            Arc::new(shared::ledger::ConsentLedger::new(
                Arc::new(ledger),
                "signup",
            )),
            receipts,
        );
        Self::new(config, service)
    }
}

/// The answer to every stored sign-up. It names no lead and nothing time-ordered: a new
/// person, the same person again and a stranger naming someone's email or number get
/// the same bytes but for a fresh random reference (R1.6), so the form does not tell
/// anyone whether someone signed up before, nor link two submissions.
#[derive(serde::Serialize)]
struct Accepted {
    /// Random (UUID v4) per submission; logged with the lead id for support.
    reference: String,
    status: &'static str,
}

/// Handles one HTTP request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The sign-up pages (issue 16): same function, same use case, same limits.
    if pages::is_page(req.uri().path()) {
        return pages::handle(app, &req).await;
    }
    let mut resp = match *req.method() {
        Method::POST => sign_up(app, &req).await,
        Method::OPTIONS => {
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        _ => Problem::method_not_allowed().into_response(),
    };
    apply_cors(&mut resp, origin.as_deref(), &app.config.allowed_origins);
    resp
}

#[tracing::instrument(name = "signup", skip_all)]
async fn sign_up(app: &App, req: &Request) -> Response<Body> {
    let parsed = (|| {
        require_json_content_type(req.headers())?;
        let bytes = body_within(req.body(), MAX_BODY_BYTES)?;
        let object = parse_json_object(bytes, FIELDS)?;
        parse_form(&object, &app.config.privacy_policy_versions).map_err(Problem::validation)
    })();
    let (profile, policy_version, call_window) = match parsed {
        Ok(v) => v,
        Err(problem) => {
            log_rejected(&problem);
            return problem.into_response();
        }
    };
    match store(app, req, profile, policy_version, call_window).await {
        Ok(reference) => json_response(
            StatusCode::CREATED,
            &Accepted {
                reference: reference.to_string(),
                status: "accepted",
            },
        ),
        Err(problem) => problem.into_response(),
    }
}

/// Logs a refused sign-up: the status and the failed fields' names, never a value.
pub(crate) fn log_rejected(problem: &Problem) {
    let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    tracing::info!(status = problem.status, ?fields, "sign-up rejected");
}

/// Stores a parsed sign-up through the lead service, with the request's source address and
/// reduced user agent: the one path of the JSON route and the page form alike. `Ok` holds
/// the random per-submission reference (logged with the lead id); `Err` the problem to
/// answer (nothing was stored).
pub(crate) async fn store(
    app: &App,
    req: &Request,
    profile: LeadProfile,
    policy_version: String,
    call_window: Option<CallWindow>,
) -> Result<uuid::Uuid, Problem> {
    let request = SignupRequest {
        profile,
        source_ip: shared::http::source_ip(req),
        client: user_agent(req).and_then(ClientSoftware::from_user_agent),
        policy_version,
        call_window,
    };
    match app.service.sign_up(request).await {
        Ok(outcome) => {
            let reference = uuid::Uuid::new_v4();
            tracing::info!(
                %reference,
                lead_id = outcome.lead_id().map(tracing::field::display),
                other_lead_id = outcome.other_lead_id().map(tracing::field::display),
                outcome = outcome.kind(),
                call_requested = outcome.call_requested(),
                "sign-up stored"
            );
            Ok(reference)
        }
        Err(err) => {
            let retry = err.retry();
            tracing::error!(error = %err, ?retry, "sign-up failed; nothing stored");
            Err(match retry {
                Retry::Transient => Problem::unavailable(),
                Retry::Permanent => Problem::internal(),
            })
        }
    }
}

fn user_agent(req: &Request) -> Option<&str> {
    req.headers().get(header::USER_AGENT)?.to_str().ok()
}

/// Turns the JSON object into domain types, collecting every failed field.
pub fn parse_form(
    body: &Map<String, Value>,
    known_policy_versions: &[String],
) -> Result<(LeadProfile, String, Option<CallWindow>), Vec<FieldProblem>> {
    let mut errors = Vec::new();
    let first_name = field(body, "first_name", &mut errors, |s| {
        PersonName::parse(s).map_err(|e| {
            (
                e.code(),
                "must be 1 to 100 characters without control characters",
            )
        })
    });
    let last_name = field(body, "last_name", &mut errors, |s| {
        PersonName::parse(s).map_err(|e| {
            (
                e.code(),
                "must be 1 to 100 characters without control characters",
            )
        })
    });
    let email = field(body, "email", &mut errors, |s| {
        Email::parse(s).map_err(|e| {
            (
                e.code(),
                "must be a valid email address with a dotted domain, at most 254 characters",
            )
        })
    });
    let phone = field(body, "phone", &mut errors, |s| {
        PhoneNumber::parse(s).map_err(|e| {
            (
                e.code(),
                "must be a dialable phone number; without country code it is read as German",
            )
        })
    });
    let notes = match body.get("notes") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Notes::parse(s) {
            Ok(n) => n,
            Err(e) => {
                errors.push(FieldProblem::new(
                    "notes",
                    e.code(),
                    "must be at most 2000 characters without control characters",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldProblem::new("notes", "wrong_type", "must be a string"));
            None
        }
    };
    let call_window = parse_call_window(body.get("call_window"), &mut errors);
    let policy_version = parse_consent(body.get("consent"), known_policy_versions, &mut errors);
    match (first_name, last_name, email, phone, policy_version) {
        (Some(first_name), Some(last_name), Some(email), Some(phone), Some(version))
            if errors.is_empty() =>
        {
            Ok((
                LeadProfile {
                    first_name,
                    last_name,
                    email,
                    phone,
                    notes,
                },
                version,
                call_window,
            ))
        }
        _ => Err(errors),
    }
}

/// The optional preferred call window (R7.2): `{"from": "10:00", "to": "12:30",
/// "days": ["mon", "tue"]}` (`days` optional: every day). Its times are Berlin time; a
/// window that never overlaps the calling hours is refused (422), naming `call_window`.
fn parse_call_window(value: Option<&Value>, errors: &mut Vec<FieldProblem>) -> Option<CallWindow> {
    let window = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(w)) => w,
        Some(_) => {
            errors.push(FieldProblem::new(
                "call_window",
                "wrong_type",
                "must be an object",
            ));
            return None;
        }
    };
    let time = |name: &'static str, errors: &mut Vec<FieldProblem>| match window.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        None | Some(Value::Null) => {
            errors.push(FieldProblem::new(
                &format!("call_window.{name}"),
                "required",
                "is required",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldProblem::new(
                &format!("call_window.{name}"),
                "wrong_type",
                "must be a string",
            ));
            None
        }
    };
    let from = time("from", errors);
    let to = time("to", errors);
    let days: Option<Option<Vec<&str>>> = match window.get("days") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(list)) => list
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
            .map(Some),
        Some(_) => None,
    };
    let Some(days) = days else {
        errors.push(FieldProblem::new(
            "call_window.days",
            "wrong_type",
            "must be a list of day codes",
        ));
        return None;
    };
    let (from, to) = (from?, to?);
    match CallWindow::parse(from, to, days.as_deref()) {
        Ok(w) => Some(w),
        Err(e) => {
            let field = match e.field() {
                Some("from") => "call_window.from",
                Some("to") => "call_window.to",
                Some(_) => "call_window.days",
                None => "call_window",
            };
            let detail = match e {
                CallWindowError::BadTime { .. } => "must be a time of day as HH:MM (24 h)",
                CallWindowError::BadDays => {
                    "must be a non-empty list of distinct days: mon, tue, wed, thu, fri, sat, sun"
                }
                CallWindowError::Empty => "must be later than call_window.from",
                CallWindowError::NeverLegal => {
                    "must overlap the calling hours: Mon-Fri 08:00-20:00, Sat 09:00-18:00"
                }
            };
            errors.push(FieldProblem::new(field, e.code(), detail));
            None
        }
    }
}

fn field<T>(
    body: &Map<String, Value>,
    name: &'static str,
    errors: &mut Vec<FieldProblem>,
    parse: impl FnOnce(&str) -> Result<T, (&'static str, &'static str)>,
) -> Option<T> {
    match body.get(name) {
        None | Some(Value::Null) => {
            errors.push(FieldProblem::new(name, "required", "is required"));
            None
        }
        Some(Value::String(s)) => match parse(s) {
            Ok(v) => Some(v),
            Err((code, detail)) => {
                errors.push(FieldProblem::new(name, code, detail));
                None
            }
        },
        Some(_) => {
            errors.push(FieldProblem::new(name, "wrong_type", "must be a string"));
            None
        }
    }
}

fn parse_consent(
    consent: Option<&Value>,
    known_versions: &[String],
    errors: &mut Vec<FieldProblem>,
) -> Option<String> {
    let consent = match consent {
        None | Some(Value::Null) => {
            errors.push(FieldProblem::new("consent", "required", "is required"));
            return None;
        }
        Some(Value::Object(c)) => c,
        Some(_) => {
            errors.push(FieldProblem::new(
                "consent",
                "wrong_type",
                "must be an object",
            ));
            return None;
        }
    };
    let mut ok = true;
    match consent.get("contact_by_phone") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            ok = false;
            errors.push(FieldProblem::new(
                "consent.contact_by_phone",
                "must_be_true",
                "we only call people who agree to be called",
            ));
        }
        None | Some(Value::Null) => {
            ok = false;
            errors.push(FieldProblem::new(
                "consent.contact_by_phone",
                "required",
                "is required",
            ));
        }
        Some(_) => {
            ok = false;
            errors.push(FieldProblem::new(
                "consent.contact_by_phone",
                "wrong_type",
                "must be a boolean",
            ));
        }
    }
    let version = match consent.get("privacy_policy_version") {
        Some(Value::String(v)) if known_versions.iter().any(|k| k == v) => Some(v.clone()),
        Some(Value::String(_)) => {
            errors.push(FieldProblem::new(
                "consent.privacy_policy_version",
                "unknown_version",
                "must name the version of the privacy policy shown on the form",
            ));
            None
        }
        None | Some(Value::Null) => {
            errors.push(FieldProblem::new(
                "consent.privacy_policy_version",
                "required",
                "is required",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldProblem::new(
                "consent.privacy_policy_version",
                "wrong_type",
                "must be a string",
            ));
            None
        }
    };
    version.filter(|_| ok)
}
