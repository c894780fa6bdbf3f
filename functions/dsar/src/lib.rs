//! Data-subject requests over HTTP (R4.1–R4.3, R4.10):
//!
//! - `POST /v1/dsar`: a request with `type` and `email` and/or `phone` → `202`, the same
//!   whether or not we hold data; the one-time code goes out by SES.
//! - `POST /v1/dsar/{id}/verify` with `{"code"}` → the request token.
//! - `GET /v1/dsar/{id}` with `Authorization: Bearer <token>` → status, due date, and
//!   a fresh download link once the export is ready.
//! - `GET` / `POST /v1/dsar/{id}/cancel`: the erasure cancel link of the receipt mail
//!   (module `cancel`).
//!
//! The staff routes (`/v1/admin/…`) are served by another function with its own role
//! (module `staff`, binary `dsar-staff`; R5.4). Here they are unknown paths (404), so
//! this function's role needs no access to subject profiles and no scans.
//!
//! The export itself is built by the worker (`worker`), driven by the table's stream; the
//! pseudonymised analytics export by its own worker (`analytics`, binary
//! `analytics-worker`), also driven by the stream.

pub mod analytics;
pub mod cancel;
pub mod crm;
pub mod digest;
pub mod openapi;
pub mod pages;
pub mod staff;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{header, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Map, Value};
use shared::adapters::dsar::DsarStore;
use shared::adapters::dsar_subjects::DynamoSubjects;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::mail::SesMailer;
use shared::adapters::s3::BlobStore;
use shared::domain::{Email, Notes, PersonName, PhoneNumber, RequestId};
use shared::dsar::service::{DsarError, DsarService, Intake};
use shared::dsar::RequestType;
use shared::http::{
    apply_cors, body_within, json_response, parse_json_object, require_json_content_type,
    FieldProblem, Problem,
};
use shared::ports::Retry;
use shared::{Clock, Config};

/// Largest accepted body of any route.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest free-text message or denial reason.
pub const MAX_TEXT_CHARS: usize = 2000;

pub struct App {
    pub service: DsarService,
    config: Config,
}

/// Builds the service from an SDK configuration.
pub fn service_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<DsarService, &'static str> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let keys = Arc::new(KmsKeyService::new(
        aws_sdk_kms::Client::new(aws),
        config.data_key_id.clone(),
        config.blind_index_key_id.clone(),
    ));
    Ok(DsarService {
        store: Arc::new(DsarStore::new(
            ddb.clone(),
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
        claims: Arc::new(DynamoSubjects::new(
            ddb,
            config.table_name.clone(),
            config.key_table_name.clone(),
        )),
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
        daily_limit: config.dsar_daily_limit,
        source_daily_limit: config.dsar_source_daily_limit,
        identifier_daily_limit: config.dsar_identifier_daily_limit,
        public_api_base_url: config
            .public_api_base_url
            .clone()
            .ok_or("PUBLIC_API_BASE_URL is required")?,
        erasure_cancel_window: usecases::dsar::erasure_window::cancel_window(
            config.erasure_cancel_hours,
        )
        .ok_or("ERASURE_CANCEL_HOURS is out of range")?,
    })
}

impl App {
    pub fn from_aws(
        config: Config,
        aws: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, &'static str> {
        let service = service_from_aws(&config, aws, clock)?;
        Ok(Self { service, config })
    }
}

fn problem(
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: &'static str,
) -> Response<Body> {
    Problem::simple(status, kind, title, detail).into_response()
}

fn not_found() -> Response<Body> {
    problem(
        StatusCode::NOT_FOUND,
        "https://polly-ki.de/problems/not-found",
        "Not found",
        "There is no such resource.",
    )
}

fn unauthorised() -> Response<Body> {
    let mut r = problem(
        StatusCode::UNAUTHORIZED,
        "https://polly-ki.de/problems/unauthorised",
        "Not authorised",
        "Unknown request or missing or wrong request token.",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    r
}

fn failure(err: &DsarError) -> Response<Body> {
    match err {
        DsarError::RateLimited => problem(
            StatusCode::TOO_MANY_REQUESTS,
            "https://polly-ki.de/problems/rate-limited",
            "Too many requests",
            "Too many requests for this identifier today; please try again tomorrow.",
        ),
        DsarError::SourceRateLimited => problem(
            StatusCode::TOO_MANY_REQUESTS,
            "https://polly-ki.de/problems/rate-limited",
            "Too many requests",
            "Too many requests from this network today; please try again tomorrow.",
        ),
        DsarError::AmbiguousSubject => problem(
            StatusCode::CONFLICT,
            "https://polly-ki.de/problems/ambiguous-subject",
            "Identifiers of different subjects",
            "The email and the phone number of this request belong to different subjects; deny it with reasons and ask for one request per subject.",
        ),
        DsarError::NotAuthorised => unauthorised(),
        DsarError::NotFound => problem(
            StatusCode::NOT_FOUND,
            "https://polly-ki.de/problems/request-not-found",
            "Unknown request",
            "There is no request with this id.",
        ),
        DsarError::AlreadyVerified => problem(
            StatusCode::CONFLICT,
            "https://polly-ki.de/problems/already-verified",
            "Already verified",
            "This request is already verified; a code works only once.",
        ),
        DsarError::Ended => problem(
            StatusCode::GONE,
            "https://polly-ki.de/problems/request-ended",
            "Request ended",
            "This request ended without verification; please submit a new one.",
        ),
        DsarError::CodeExpired => problem(
            StatusCode::GONE,
            "https://polly-ki.de/problems/code-expired",
            "Code expired",
            "The code was valid for 15 minutes; the request has ended. Please submit a new one.",
        ),
        DsarError::WrongCode { .. } => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "https://polly-ki.de/problems/wrong-code",
            "Wrong code",
            "The code is not correct. After five wrong codes the request ends.",
        ),
        DsarError::TooManyAttempts => problem(
            StatusCode::GONE,
            "https://polly-ki.de/problems/too-many-attempts",
            "Too many wrong codes",
            "The code was entered wrongly five times; the request has ended. Please submit a new one.",
        ),
        DsarError::NotOpen => problem(
            StatusCode::CONFLICT,
            "https://polly-ki.de/problems/request-not-open",
            "Request not open",
            "Only open requests can be extended or denied, and only failed or stuck ones retried.",
        ),
        DsarError::Receipt(e) => {
            let (code, detail) = match e {
                usecases::dsar::requests::ReceiptError::InFuture => {
                    ("in_future", "must not lie in the future")
                }
                usecases::dsar::requests::ReceiptError::TooOld => (
                    "too_old",
                    "must be within the last 365 days; check the date",
                ),
            };
            rejected(Problem::validation(vec![FieldProblem::new(
                "received_at",
                code,
                detail,
            )]))
        }
        DsarError::NoIdentityCheck => problem(
            StatusCode::CONFLICT,
            "https://polly-ki.de/problems/no-identity-check",
            "No identity check pending",
            "Only requests waiting for an identity check can be verified by staff.",
        ),
        DsarError::Extension(e) => {
            let detail = match e {
                shared::dsar::ExtensionError::AlreadyExtended => "The deadline can be extended only once.",
                shared::dsar::ExtensionError::TooLate => "The deadline can be extended only within the first month after receipt.",
                shared::dsar::ExtensionError::InvalidLength => "The deadline can be extended by one or two months.",
                shared::dsar::ExtensionError::ReasonMissing => "An extension needs a reason; it is sent to the subject.",
                shared::dsar::ExtensionError::NotOpen => "Only open requests can be extended.",
            };
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "https://polly-ki.de/problems/extension-refused",
                "Extension refused",
                detail,
            )
        }
        DsarError::Conflict => problem(
            StatusCode::CONFLICT,
            "https://polly-ki.de/problems/conflict",
            "Changed concurrently",
            "The request changed while this action ran; read it again and retry.",
        ),
        other => {
            tracing::error!(error = %other, retry = ?other.retry(), "request failed");
            match other.retry() {
                Retry::Transient => Problem::unavailable().into_response(),
                Retry::Permanent => Problem::internal().into_response(),
            }
        }
    }
}

/// Handles one HTTP request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let mut resp = match (method, segments.as_slice()) {
        (Method::OPTIONS, ["v1", "dsar", ..]) => {
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        (Method::POST, ["v1", "dsar"]) => submit(app, &req).await,
        (Method::POST, ["v1", "dsar", id, "verify"]) => verify(app, &req, id).await,
        (Method::GET, ["v1", "dsar", id]) => status(app, &req, id).await,
        (Method::GET, ["v1", "dsar", id, "cancel"]) => cancel::confirm(&req, id),
        (Method::POST, ["v1", "dsar", id, "cancel"]) => cancel::cancel(app, &req, id).await,
        (Method::GET, ["v1", "openapi.json"]) => crate::openapi::serve(),
        (_, ["v1", "dsar"])
        | (_, ["v1", "dsar", _])
        | (_, ["v1", "dsar", _, "verify"])
        | (_, ["v1", "dsar", _, "cancel"]) => Problem::method_not_allowed().into_response(),
        _ if crate::pages::is_page(&path) => crate::pages::handle(app, &req).await,
        _ => not_found(),
    };
    apply_cors(&mut resp, origin.as_deref(), &app.config.allowed_origins);
    resp
}

fn json_body(req: &Request, fields: &[&str]) -> Result<Map<String, Value>, Problem> {
    require_json_content_type(req.headers())?;
    let bytes = body_within(req.body(), MAX_BODY_BYTES)?;
    parse_json_object(bytes, fields)
}

fn rejected(problem: Problem) -> Response<Body> {
    let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    tracing::info!(status = problem.status, ?fields, "request rejected");
    problem.into_response()
}

/// The members of the `POST /v1/dsar` body, by dotted path; any other is refused.
pub const SUBMIT_FIELDS: &[&str] = &[
    "type",
    "email",
    "phone",
    "message",
    "corrections",
    "corrections.first_name",
    "corrections.last_name",
    "corrections.email",
    "corrections.phone",
    "corrections.notes",
];

fn text_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldProblem>,
) -> Option<&'a str> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(FieldProblem::new(name, "wrong_type", "must be a string"));
            None
        }
    }
}

/// Parses the body of `POST /v1/dsar` into an intake, collecting every failed field.
pub fn parse_intake(body: &Map<String, Value>) -> Result<Intake, Vec<FieldProblem>> {
    let mut errors = Vec::new();
    // An unknown member is refused without naming it: its name is caller input and may
    // itself be personal data (as `parse_json_object` names duplicates only when known).
    if body
        .keys()
        .any(|name| !SUBMIT_FIELDS.contains(&name.as_str()))
    {
        errors.push(FieldProblem::new(
            "body",
            "unknown_field",
            "has a member that is not a field of this request",
        ));
    }
    let request_type = match body.get("type") {
        Some(Value::String(t)) => match RequestType::parse(t) {
            Some(t) => Some(t),
            None => {
                errors.push(FieldProblem::new(
                    "type",
                    "unknown_type",
                    "must be one of access, portability, erasure, rectification, restriction, objection, withdraw_consent",
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldProblem::new("type", "required", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldProblem::new("type", "wrong_type", "must be a string"));
            None
        }
    };
    let email = text_field(body, "email", &mut errors).and_then(|s| match Email::parse(s) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push(FieldProblem::new(
                "email",
                e.code(),
                "must be a valid email address",
            ));
            None
        }
    });
    let phone = text_field(body, "phone", &mut errors).and_then(|s| match PhoneNumber::parse(s) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(FieldProblem::new(
                "phone",
                e.code(),
                "must be a dialable phone number",
            ));
            None
        }
    });
    if email.is_none()
        && phone.is_none()
        && !errors
            .iter()
            .any(|e| e.field == "email" || e.field == "phone")
    {
        errors.push(FieldProblem::new(
            "email",
            "required",
            "email or phone is required (email gets a one-time code; phone-only requests are checked by staff)",
        ));
    }
    let message = text_field(body, "message", &mut errors).and_then(|s| match Notes::parse(s) {
        Ok(n) => n.map(|n| n.expose().to_owned()),
        Err(e) => {
            errors.push(FieldProblem::new(
                "message",
                e.code(),
                "must be at most 2000 characters without control characters",
            ));
            None
        }
    });
    let corrections = parse_corrections(body.get("corrections"), &mut errors);
    if corrections.is_some() && request_type != Some(RequestType::Rectification) {
        errors.push(FieldProblem::new(
            "corrections",
            "not_allowed",
            "corrections belong to a rectification request",
        ));
    }
    match request_type {
        Some(request_type) if errors.is_empty() => Ok(Intake {
            request_type,
            email,
            phone,
            message,
            corrections,
            source: None,
        }),
        _ => Err(errors),
    }
}

/// Corrections are validated like the sign-up (R4.6) and kept normalised.
fn parse_corrections(
    value: Option<&Value>,
    errors: &mut Vec<FieldProblem>,
) -> Option<BTreeMap<String, String>> {
    let obj = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(o)) => o,
        Some(_) => {
            errors.push(FieldProblem::new(
                "corrections",
                "wrong_type",
                "must be an object",
            ));
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for (name, v) in obj {
        // Named only when known, like every other caller-chosen member name.
        let field = if SUBMIT_FIELDS.contains(&format!("corrections.{name}").as_str()) {
            format!("corrections.{name}")
        } else {
            "corrections".to_owned()
        };
        let Value::String(s) = v else {
            errors.push(FieldProblem::new(&field, "wrong_type", "must be a string"));
            continue;
        };
        let parsed: Result<String, &'static str> = match name.as_str() {
            "first_name" | "last_name" => PersonName::parse(s)
                .map(|n| n.expose().to_owned())
                .map_err(|e| e.code()),
            "email" => Email::parse(s)
                .map(|e| e.expose().to_owned())
                .map_err(|e| e.code()),
            "phone" => PhoneNumber::parse(s)
                .map(|p| p.expose().to_owned())
                .map_err(|e| e.code()),
            "notes" => Notes::parse(s)
                .map(|n| n.map(|n| n.expose().to_owned()).unwrap_or_default())
                .map_err(|e| e.code()),
            _ => Err("unknown_field"),
        };
        match parsed {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(code) => errors.push(FieldProblem::new(
                &field,
                code,
                "is not a valid value for this field",
            )),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(FieldProblem::new(
            "corrections",
            "empty",
            "name at least one field to correct",
        ));
    }
    Some(out)
}

#[tracing::instrument(name = "dsar_submit", skip_all)]
async fn submit(app: &App, req: &Request) -> Response<Body> {
    let intake = match json_body(req, SUBMIT_FIELDS)
        .and_then(|b| parse_intake(&b).map_err(Problem::validation))
    {
        Ok(i) => Intake {
            source: shared::http::source_ip(req),
            ..i
        },
        Err(p) => return rejected(p),
    };
    match app.service.submit(intake).await {
        Ok(id) => json_response(
            StatusCode::ACCEPTED,
            &json!({
                "request_id": id.to_string(),
                "status": "received",
                "next": "If we can reach you at the email address given, a one-time code is on its way; send it to /v1/dsar/{request_id}/verify within 15 minutes.",
            }),
        ),
        Err(e) => failure(&e),
    }
}

#[tracing::instrument(name = "dsar_verify", skip_all)]
async fn verify(app: &App, req: &Request, id: &str) -> Response<Body> {
    let Ok(id) = RequestId::parse(id) else {
        return failure(&DsarError::NotFound);
    };
    let body = match json_body(req, &["code"]) {
        Ok(b) => b,
        Err(p) => return rejected(p),
    };
    let code = match body.get("code") {
        Some(Value::String(c)) if !c.is_empty() && c.len() <= 32 => c.trim().to_owned(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return rejected(Problem::validation(vec![FieldProblem::new(
                "code",
                "required",
                "the one-time code from the email is required",
            )]))
        }
        Some(_) => {
            return rejected(Problem::validation(vec![FieldProblem::new(
                "code",
                "wrong_type",
                "must be a string",
            )]))
        }
    };
    match app.service.verify(&id, &code).await {
        Ok(v) => json_response(
            StatusCode::OK,
            &json!({"request_token": v.token, "status": v.status}),
        ),
        Err(e) => failure(&e),
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[tracing::instrument(name = "dsar_status", skip_all)]
async fn status(app: &App, req: &Request, id: &str) -> Response<Body> {
    let (Ok(id), Some(token)) = (RequestId::parse(id), bearer(req)) else {
        return unauthorised();
    };
    match app.service.status(&id, token).await {
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
