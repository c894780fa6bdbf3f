//! The CRM worker (function `crm-worker`, issue 17): delivers the CRM outbox
//! (`usecases::crm`). The table stream invokes it for each new outbox item (the dsar
//! worker's Art. 19 notices) and for each follow-up item sales' handoff writes, whose
//! `followup` event it queues (idempotently: one per item and call), so a record
//! reaches the CRM seconds after the change that caused it; the `CrmRetry` schedule
//! (every minute) retries what failed, each item on its own backoff. Every invocation
//! drains whatever is due.
//!
//! Its role reads and writes only the outbox items, reads the follow-up item, lead and
//! wrapped key of the subject whose record it sends (and the subject-context KMS
//! decryption that needs), and the webhook secret; nothing else.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::adapters::crm::{DynamoCrmOutbox, DynamoFollowUpItems, HttpCrmEndpoint};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::kms::KmsKeyService;
use shared::domain::LeadId;
use shared::leads::LeadService;
use shared::{Clock, Config};
pub use usecases::crm::CrmDelivery;
use usecases::crm::{CrmQueue, FollowUpRecords, SealedFollowUps};

/// Time kept back before the invocation's deadline, to record the last attempt.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// The worker: the delivery (absent without a CRM) and the queue the stream feeds.
pub struct CrmWorker {
    pub delivery: Option<CrmDelivery>,
    pub queue: Arc<dyn CrmQueue>,
    pub clock: Arc<dyn Clock>,
}

/// The SDK clients the worker uses (a test passes counting ones).
pub struct Clients {
    pub ddb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    pub fn from_sdk(aws: &aws_config::SdkConfig) -> Self {
        Self {
            ddb: aws_sdk_dynamodb::Client::new(aws),
            kms: aws_sdk_kms::Client::new(aws),
            secrets: aws_sdk_secretsmanager::Client::new(aws),
        }
    }
}

/// The follow-up records the `followup` and `rectified` events send.
pub fn follow_ups_from(
    config: &Config,
    clients: &Clients,
    clock: Arc<dyn Clock>,
) -> Arc<dyn FollowUpRecords> {
    let keys = Arc::new(KmsKeyService::new(
        clients.kms.clone(),
        config.data_key_id.clone(),
        config.blind_index_key_id.clone(),
    ));
    let lead_store = Arc::new(DynamoLeadStore::new(
        clients.ddb.clone(),
        config.table_name.clone(),
        config.key_table_name.clone(),
    ));
    Arc::new(SealedFollowUps {
        store: Arc::new(DynamoFollowUpItems::new(
            clients.ddb.clone(),
            config.table_name.clone(),
        )),
        leads: Arc::new(LeadService::new(lead_store, keys, clock)),
    })
}

/// The worker over AWS; its delivery is `None` when no CRM is configured (nothing is
/// queued then either).
pub fn worker_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<CrmWorker, &'static str> {
    worker_from(config, &Clients::from_sdk(aws), clock)
}

/// [`worker_from_aws`] over the given clients.
pub fn worker_from(
    config: &Config,
    clients: &Clients,
    clock: Arc<dyn Clock>,
) -> Result<CrmWorker, &'static str> {
    let outbox = Arc::new(DynamoCrmOutbox::new(
        clients.ddb.clone(),
        config.table_name.clone(),
    ));
    let delivery = match config.crm_webhook_url.clone() {
        None => None,
        Some(url) => {
            let secret = config
                .crm_webhook_secret_arn
                .clone()
                .ok_or("CRM_WEBHOOK_SECRET_ARN is required with CRM_WEBHOOK_URL")?;
            Some(CrmDelivery {
                outbox: outbox.clone(),
                endpoint: Arc::new(
                    HttpCrmEndpoint::new(
                        url,
                        shared::adapters::secrets::ProviderKeySource::new(
                            clients.secrets.clone(),
                            secret,
                        ),
                    )
                    .map_err(|_| "the CRM HTTP client cannot be built")?,
                ),
                records: follow_ups_from(config, clients, Arc::clone(&clock)),
                clock: Arc::clone(&clock),
            })
        }
    };
    Ok(CrmWorker {
        delivery,
        queue: outbox,
        clock,
    })
}

/// The follow-up items of a stream batch (new image `kind = "followup"`, not done): lead
/// and call.
fn follow_ups_in(event: &Value) -> Vec<(LeadId, String)> {
    event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let new = &r["dynamodb"]["NewImage"];
            if new["kind"]["S"] != "followup" || !new["done_at"].is_null() {
                return None;
            }
            let lead = LeadId::parse(new["lead_id"]["S"].as_str()?).ok()?;
            Some((lead, new["call_id"]["S"].as_str()?.to_owned()))
        })
        .collect()
}

/// One run: queues the `followup` events of the batch's follow-up items, then drains
/// what is due within `budget`; the report, or an error when the outbox cannot be read
/// or written (the invocation fails and is retried: the stream redelivers, the queueing
/// is idempotent).
#[tracing::instrument(name = "crm_worker", skip_all)]
pub async fn handle(
    worker: &CrmWorker,
    event: Value,
    budget: std::time::Duration,
) -> Result<Value, usecases::ports::StoreError> {
    let Some(delivery) = worker.delivery.as_ref() else {
        return Ok(json!({"configured": false}));
    };
    let mut queued = 0;
    for (lead, call) in follow_ups_in(&event) {
        let e = usecases::crm::followup_event(lead, &call, worker.clock.now());
        queued += usize::from(worker.queue.enqueue(&e).await?);
    }
    let r = delivery.drain(budget).await.inspect_err(|e| {
        tracing::error!(error = %e, "CRM outbox not drained");
    })?;
    Ok(json!({
        "configured": true,
        "queued": queued,
        "due": r.due,
        "delivered": r.delivered,
        "failed": r.failed,
        "pending": r.pending,
        "failing": r.failing,
    }))
}
