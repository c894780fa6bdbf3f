use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{Config, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::load().await;
    let worker = Arc::new(dsar::crm::worker_from_aws(
        &config,
        &aws,
        Arc::new(SystemClock),
    )?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let worker = Arc::clone(&worker);
        let left = event
            .context
            .deadline()
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        let budget = left.saturating_sub(dsar::crm::DEADLINE_MARGIN.min(left / 4));
        async move { Ok::<_, Error>(dsar::crm::handle(&worker, event.payload, budget).await?) }
    }))
    .await
}
