//! The sales routes (issue 17), in their own function (`sales-api`) with their own role:
//!
//! - `GET /v1/sales/follow-ups`: the open follow-ups
//!   (`{"items":[{"lead_id","first_name","last_name","call_date","interest","ready_at"}]}`),
//!   audited `sales.queue_viewed`;
//! - `GET /v1/sales/follow-ups/{lead_id}`: a lead's follow-up record, audited
//!   `sales.followup_viewed`;
//! - `POST /v1/sales/follow-ups/{lead_id}/done`: marks it done (it leaves the queue),
//!   audited `sales.followup_done`.
//!
//! API Gateway lets only IAM-signed requests through (`AWS_IAM`); the caller's principal
//! must be in the configured sales allow-list (`SALES_PRINCIPAL_ARNS`), which is apart from
//! the privacy team's (`STAFF_PRINCIPAL_ARNS`): anyone else, the privacy team included,
//! gets 403 and an audit item `sales.refused` naming the principal. Every read is audited
//! with the principal ARN as actor; audit items carry the opaque lead id, nothing more.
//! The role reaches nothing but the follow-up items, the subject's key to open them and
//! the flags that hide them (see the template).

use std::sync::Arc;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::sales::DynamoFollowUps;
use shared::domain::LeadId;
use shared::dsar::staff::StaffPrincipals;
use shared::http::{iam_principal, json_response, Problem};
use shared::{Clock, Config};
use usecases::sales::{SalesError, SalesService};

/// The actor of a refusal when API Gateway named no principal (only reachable when the
/// route is misconfigured without `AWS_IAM`).
pub const UNAUTHENTICATED: &str = "unauthenticated";

pub struct App {
    pub service: SalesService,
    principals: StaffPrincipals,
}

impl App {
    pub fn new(service: SalesService, principals: StaffPrincipals) -> Self {
        Self {
            service,
            principals,
        }
    }

    pub fn from_aws(
        config: &Config,
        aws: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, &'static str> {
        let principals = StaffPrincipals::parse(&config.sales_principal_arns)
            .map_err(|_| "SALES_PRINCIPAL_ARNS may list only IAM role and user ARNs")?;
        if principals.is_empty() {
            tracing::warn!("SALES_PRINCIPAL_ARNS is empty: every sales request is refused");
        }
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let keys = Arc::new(KmsKeyService::new(
            aws_sdk_kms::Client::new(aws),
            config.data_key_id.clone(),
            config.blind_index_key_id.clone(),
        ));
        let leads = Arc::new(DynamoLeadStore::new(
            ddb.clone(),
            config.table_name.clone(),
            config.key_table_name.clone(),
        ));
        let store = Arc::new(DynamoFollowUps::new(ddb, config.table_name.clone()));
        Ok(Self::new(
            SalesService::new(store, leads, keys, clock),
            principals,
        ))
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

fn forbidden() -> Response<Body> {
    problem(
        StatusCode::FORBIDDEN,
        "https://polly-ki.de/problems/forbidden",
        "Forbidden",
        "Sales routes are open only to the configured sales principals.",
    )
}

fn method_not_allowed() -> Response<Body> {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "https://polly-ki.de/problems/method-not-allowed",
        "Method not allowed",
        "This route does not accept that method.",
    )
}

fn failure(e: &SalesError) -> Response<Body> {
    tracing::error!(error = %e, "sales request failed");
    let status = if e.retry() == shared::ports::Retry::Transient {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    problem(
        status,
        "https://polly-ki.de/problems/internal",
        "Internal error",
        "The request could not be completed.",
    )
}

/// Handles one request to a sales route.
#[tracing::instrument(name = "sales_api", skip_all)]
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ["v1", "sales", rest @ ..] = segments.as_slice() else {
        return not_found();
    };
    let principal = iam_principal(&req);
    let Some(actor) = principal.as_deref().filter(|p| app.principals.admits(p)) else {
        return refuse(app, principal.as_deref()).await;
    };
    let method = req.method().clone();
    match rest {
        ["follow-ups"] => {
            if method != Method::GET {
                return method_not_allowed();
            }
            match app.service.queue(actor).await {
                Ok(items) => json_response(StatusCode::OK, &json!({ "items": items })),
                Err(e) => failure(&e),
            }
        }
        ["follow-ups", id] => {
            if method != Method::GET {
                return method_not_allowed();
            }
            // A malformed id gets the same answer as an unknown one.
            let Ok(lead) = LeadId::parse(id) else {
                return not_found();
            };
            match app.service.show(actor, &lead).await {
                Ok(Some(record)) => json_response(StatusCode::OK, &record),
                Ok(None) => not_found(),
                Err(e) => failure(&e),
            }
        }
        ["follow-ups", id, "done"] => {
            if method != Method::POST {
                return method_not_allowed();
            }
            let Ok(lead) = LeadId::parse(id) else {
                return not_found();
            };
            match app.service.done(actor, &lead).await {
                Ok(true) => json_response(
                    StatusCode::OK,
                    &json!({ "lead_id": lead.to_string(), "done": true }),
                ),
                Ok(false) => not_found(),
                Err(e) => failure(&e),
            }
        }
        _ => not_found(),
    }
}

/// 403 and an audit item naming the caller. The principal stays out of the logs (a
/// session name may be a person's name); the audit item is where it belongs.
async fn refuse(app: &App, principal: Option<&str>) -> Response<Body> {
    let actor = principal.unwrap_or(UNAUTHENTICATED);
    tracing::warn!(
        authenticated = principal.is_some(),
        "sales request refused: principal not in the allow-list"
    );
    if let Err(e) = app.service.record_refusal(actor).await {
        tracing::error!(error = %e, "refusal not audited");
        shared::telemetry::metric("SalesRefusalNotAudited", 1.0);
    }
    forbidden()
}
