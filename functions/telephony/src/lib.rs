//! `POST /v1/telephony/retell`: the provider's webhooks and the agent's tool calls
//! (`record_consent`; `record_objection` and `confirm_signup`, see
//! `usecases::telephony::tools`).
//!
//! Before anything else, a configured source allow-list (`WEBHOOK_SOURCE_CIDRS`) refuses
//! other networks with 403, and a body over [`MAX_BODY_BYTES`] is refused with 413;
//! neither reads, verifies or stores anything. Every request is then verified
//! (`X-Retell-Signature` over the raw bytes, ±5 minutes, constant time, current or
//! previous API key); a bad or missing signature is answered 401 and nothing is stored
//! (R2.1). A verified lifecycle event is merged into the call
//! item and answered 204 at once (R2.5); the table's stream carries the rest to the
//! worker. Other events are acknowledged and ignored (R2.2).

use std::sync::Arc;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::adapters::calls::{DynamoAuditTrail, DynamoCallRequests, DynamoCallStore};
use shared::adapters::dnc::{DynamoCallLines, DynamoDoNotCall};
use shared::adapters::dsar::DsarStore;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::s3::BlobStore;
use shared::adapters::secrets::ProviderKeySource;
use shared::calls::CallService;
use shared::config::Cidr;
use shared::http::{body_within, json_response, source_ip, Problem};
use shared::ports::Retry;
use shared::retell::compliance::{DisclosurePatterns, CONSENT_TOOL};
use shared::retell::model::{parse_delivery, CallId, Delivery};
use shared::retell::signature::{verify, SIGNATURE_HEADER};
use shared::retell::tools::AgentToolCall;
use shared::{Clock, Config};
use usecases::dnc::DoNotCallList;
use usecases::telephony::ports::Metrics;
use usecases::telephony::tools::{
    CallTools, ToolCallFacts, ToolOutcome, CONFIRM_SIGNUP_TOOL, OBJECTION_TOOL,
};

pub mod worker;

/// Metrics as CloudWatch embedded-metric records on stdout.
pub struct EmfMetrics;

impl Metrics for EmfMetrics {
    fn count(&self, name: &'static str, value: f64) {
        shared::telemetry::metric(name, value);
    }
}

/// Builds the stream worker from the configuration.
pub fn worker_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<worker::Worker, &'static str> {
    let secret = config
        .provider_api_key_secret_arn
        .clone()
        .ok_or("PROVIDER_API_KEY_SECRET_ARN is required")?;
    let settings = shared::outbound::OutboundSettings {
        from_number: config
            .retell_from_number
            .clone()
            .ok_or("RETELL_FROM_NUMBER is required")?,
        agent_id: config
            .retell_agent_id
            .clone()
            .ok_or("RETELL_AGENT_ID is required")?,
        data_storage_setting: config.retell_data_storage_setting.clone(),
        ring_duration_ms: config.ring_duration_ms,
        calling_rules: shared::domain::calling_hours::CallingRules {
            state: config.calling_state,
        },
    };
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
    let leads =
        shared::leads::LeadService::new(lead_store.clone(), keys.clone(), Arc::clone(&clock));
    let provider = shared::adapters::retell::RetellClient::new(&config.retell_api_base_url)
        .map_err(|_| "the provider HTTP client cannot be built")?;
    let bucket = config
        .recordings_bucket
        .clone()
        .ok_or("RECORDINGS_BUCKET is required")?;
    let mut policy = shared::adapters::recordings::FetchPolicy::new(config.recording_hosts.clone());
    policy.allow_loopback_http = config.recordings_allow_loopback;
    let copier = shared::adapters::recordings::RecordingCopier::new(
        policy,
        aws_sdk_s3::Client::new(aws),
        bucket,
        config.data_key_arn.clone(),
    )
    .map_err(|_| "the recording HTTP client cannot be built")?;
    let provider = Arc::new(provider);
    let audit = Arc::new(DynamoAuditTrail::new(
        ddb.clone(),
        config.table_name.clone(),
    ));
    let ingest = shared::ingest::Ingest::new(
        Arc::new(DynamoCallStore::new(ddb.clone(), config.table_name.clone())),
        audit.clone(),
        lead_store.clone(),
        keys.clone(),
        Arc::new(copier),
        provider.clone(),
        Arc::clone(&clock),
        config.provider_delete_calls,
    )
    .with_outbox(Arc::new(shared::adapters::outbox::DynamoOutbox::new(
        ddb.clone(),
        config.table_name.clone(),
    )));
    // R7.1: the worker never calls a listed number.
    let do_not_call = usecases::dnc::DoNotCallList::new(
        Arc::new(shared::adapters::dnc::DynamoDoNotCall::new(
            ddb.clone(),
            config.table_name.clone(),
        )),
        audit.clone(),
        Arc::clone(&clock),
    );
    let followups = usecases::sales::FollowUpHandoff::new(
        Arc::new(DynamoCallStore::new(ddb.clone(), config.table_name.clone())),
        lead_store.clone(),
        keys.clone(),
        do_not_call.clone(),
        Arc::new(shared::adapters::sales::DynamoFollowUps::new(
            ddb.clone(),
            config.table_name.clone(),
        )),
        Arc::clone(&clock),
    );
    Ok(worker::Worker {
        followups,
        ingest,
        outbound: shared::outbound::Outbound::new(
            lead_store,
            Arc::new(DynamoCallRequests::new(ddb, config.table_name.clone())),
            audit,
            leads,
            provider,
            clock,
            settings,
        )
        .with_do_not_call(do_not_call),
        provider_keys: ProviderKeySource::new(aws_sdk_secretsmanager::Client::new(aws), secret),
    })
}

/// Largest accepted body, checked before the signature so that junk is not hashed: the
/// provider's largest webhook is the `call_ended` / `call_analyzed` of a long call, about
/// 1 MiB for 60 minutes with word timings (see `bench-webhook`); 4 MiB leaves room for
/// calls of several hours and stays below Lambda's 6 MB synchronous payload limit, which
/// also has to carry API Gateway's base64 encoding of the body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub struct App {
    calls: CallService,
    /// The `record_objection` and `confirm_signup` tool calls (R7.1, R7.4).
    tools: CallTools,
    provider_keys: ProviderKeySource,
    clock: Arc<dyn Clock>,
    /// Networks deliveries may come from; empty: any (R2.1).
    source_cidrs: Vec<Cidr>,
}

impl App {
    pub fn from_aws(
        config: &Config,
        aws: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, &'static str> {
        let secret = config
            .provider_api_key_secret_arn
            .clone()
            .ok_or("PROVIDER_API_KEY_SECRET_ARN is required")?;
        let bucket = config
            .recordings_bucket
            .clone()
            .ok_or("RECORDINGS_BUCKET is required")?;
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let transcripts = Arc::new(BlobStore::new(
            aws_sdk_s3::Client::new(aws),
            bucket,
            config.data_key_arn.clone(),
        ));
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
        let audit = Arc::new(DynamoAuditTrail::new(
            ddb.clone(),
            config.table_name.clone(),
        ));
        let tools = CallTools {
            lines: Arc::new(DynamoCallLines::new(ddb.clone(), config.table_name.clone())),
            do_not_call: DoNotCallList::new(
                Arc::new(DynamoDoNotCall::new(ddb.clone(), config.table_name.clone())),
                audit.clone(),
                Arc::clone(&clock),
            ),
            requests: Arc::new(DsarStore::new(
                ddb.clone(),
                config.table_name.clone(),
                config.key_table_name.clone(),
            )),
            transcripts: transcripts.clone(),
            audit,
            clock: Arc::clone(&clock),
            // Listings, lifts and opt-ins confirmed on the line (R7.6).
            ledger: Some(Arc::new(shared::ledger::ConsentLedger::new(
                Arc::new(shared::adapters::ledger::DynamoLedgerStore::from_sdk(
                    aws,
                    config.table_name.clone(),
                )),
                "telephony-webhook",
            ))),
        };
        let calls = CallService::new(
            Arc::new(DynamoCallStore::new(ddb, config.table_name.clone())),
            transcripts,
            leads,
            keys,
            Arc::clone(&clock),
            Arc::new(EmfMetrics),
            DisclosurePatterns {
                ai: config.disclosure_ai_patterns.clone(),
                recording: config.disclosure_recording_patterns.clone(),
            },
        )
        // Every recording-consent decision goes to the consent ledger first (R7.6).
        .with_ledger(Arc::new(shared::ledger::ConsentLedger::new(
            Arc::new(shared::adapters::ledger::DynamoLedgerStore::from_sdk(
                aws,
                config.table_name.clone(),
            )),
            "telephony-webhook",
        )));
        Ok(Self {
            calls,
            tools,
            provider_keys: ProviderKeySource::new(aws_sdk_secretsmanager::Client::new(aws), secret),
            clock,
            source_cidrs: config.webhook_source_cidrs.clone(),
        })
    }

    /// Whether the request comes from an allowed network: any, when no list is set; else
    /// the source address API Gateway saw must lie in one of them.
    fn source_allowed(&self, req: &Request) -> bool {
        self.source_cidrs.is_empty()
            || source_ip(req).is_some_and(|ip| self.source_cidrs.iter().any(|c| c.contains(ip)))
    }
}

fn forbidden() -> Response<Body> {
    Problem::simple(
        StatusCode::FORBIDDEN,
        "https://polly-ki.de/problems/forbidden",
        "Forbidden",
        "Deliveries are accepted only from the provider's networks.",
    )
    .into_response()
}

fn unauthorized() -> Response<Body> {
    Problem {
        kind: "https://polly-ki.de/problems/unauthorized",
        title: "Unauthorized",
        status: 401,
        detail: "The request signature is missing or not valid.",
        errors: Vec::new(),
    }
    .into_response()
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn failure_response(retry: Retry) -> Response<Body> {
    match retry {
        // 5xx makes the provider retry the delivery: nothing is lost.
        Retry::Transient => Problem::unavailable().into_response(),
        Retry::Permanent => Problem::internal().into_response(),
    }
}

/// Handles one request.
#[tracing::instrument(name = "telephony_webhook", skip_all)]
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    if !app.source_allowed(&req) {
        // The address itself is personal data of whoever sent it: not logged.
        tracing::warn!("webhook refused: source outside the allow-list");
        return forbidden();
    }
    if req.method() != Method::POST {
        return Problem::method_not_allowed().into_response();
    }
    let body = match body_within(req.body(), MAX_BODY_BYTES) {
        Ok(b) => b,
        Err(p) => {
            tracing::info!(status = p.status, "webhook rejected: body too large");
            return p.into_response();
        }
    };
    let keys = match app.provider_keys.keys().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "provider key unavailable");
            return failure_response(e.retry);
        }
    };
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let now_ms = app.clock.now().timestamp_millis().max(0) as u64;
    if let Err(reason) = verify(body, header, &keys.all(), now_ms) {
        tracing::warn!(%reason, "webhook signature rejected");
        return unauthorized();
    }

    match parse_delivery(body) {
        // The agent's custom tool call: {"name": ..., "call": {...}, "args": {...}}.
        Ok(Delivery::ToolCall {
            name,
            call_id,
            args,
        }) => tool_call(app, &name, call_id, &args, body).await,
        Ok(Delivery::Ignored) => {
            tracing::info!("event acknowledged and ignored");
            no_content()
        }
        Ok(Delivery::Call(event)) => match app.calls.record(&event).await {
            Ok(shared::calls::MergeOutcome::SubjectErased) => no_content(),
            // R7.1, R7.4: an objection or "never signed up" whose live tool call was lost
            // is applied from the call's transcript (idempotent).
            Ok(_) => match app.tools.apply_from_transcript(&event).await {
                Ok(()) => no_content(),
                Err(e) => {
                    tracing::error!(error = %e, "tool invocations of the call not applied");
                    failure_response(e.retry())
                }
            },
            Err(e) => {
                tracing::error!(error = %e, retry = ?e.retry(), "call event not stored");
                failure_response(e.retry())
            }
        },
        Err(e) => {
            tracing::info!(reason = %e, "webhook payload rejected");
            Problem {
                kind: "https://polly-ki.de/problems/malformed-payload",
                title: "The payload cannot be read",
                status: 400,
                detail: "A JSON object with event and call.call_id is required.",
                errors: Vec::new(),
            }
            .into_response()
        }
    }
}

async fn tool_call(
    app: &App,
    name: &str,
    call_id: Option<CallId>,
    args: &Value,
    body: &[u8],
) -> Response<Body> {
    if name == OBJECTION_TOOL || name == CONFIRM_SIGNUP_TOOL {
        let Some(call_id) = call_id else {
            return json_response(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": "call.call_id is required"}),
            );
        };
        let facts = ToolCallFacts::of(body);
        let outcome = if name == OBJECTION_TOOL {
            app.tools
                .record_objection(call_id.as_str(), &facts, args)
                .await
        } else {
            app.tools
                .confirm_signup(call_id.as_str(), &facts, args)
                .await
        };
        return match outcome {
            // The text goes back to the agent's language model.
            Ok(ToolOutcome::Done(result)) => {
                json_response(StatusCode::OK, &serde_json::json!({ "result": result }))
            }
            Ok(ToolOutcome::UnknownCall) => json_response(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "unknown call"}),
            ),
            Ok(ToolOutcome::OtherSubject) => json_response(
                StatusCode::CONFLICT,
                &serde_json::json!({"error": "the call is not the named subject's"}),
            ),
            Ok(ToolOutcome::BadArguments) => json_response(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": "the arguments do not fit the tool"}),
            ),
            Err(e) => {
                tracing::error!(error = %e, "tool call not applied");
                failure_response(e.retry())
            }
        };
    }
    if name != CONSENT_TOOL {
        tracing::info!("unknown tool call refused");
        return json_response(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "unknown function"}),
        );
    }
    // The parser `make agent` checks the tools' schemas against (R7.4).
    let granted = match AgentToolCall::parse(name, args) {
        Ok(AgentToolCall::RecordConsent { granted }) => Some(granted),
        _ => None,
    };
    let (Some(call_id), Some(granted)) = (call_id, granted) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "call.call_id and args.granted (boolean) are required"}),
        );
    };
    match app.calls.record_live_consent(&call_id, granted).await {
        // The text goes back to the agent's language model.
        Ok(()) => json_response(
            StatusCode::OK,
            &serde_json::json!({"result": if granted { "Einwilligung gespeichert." } else { "Ablehnung gespeichert; es wird nichts aufgezeichnet." }}),
        ),
        Err(e) => {
            tracing::error!(error = %e, "live consent not stored");
            failure_response(e.retry())
        }
    }
}
