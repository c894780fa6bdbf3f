use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{Config, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::load().await;
    let worker = Arc::new(telephony::worker_from_aws(
        &config,
        &aws,
        Arc::new(SystemClock),
    )?);
    // Two event sources: the table's stream and the dispatcher's schedule (R7.2).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let worker = Arc::clone(&worker);
        async move {
            if telephony::worker::is_dispatch(&event.payload) {
                let report = telephony::worker::dispatch(&worker).await?;
                return Ok::<_, Error>(serde_json::to_value(report)?);
            }
            let batch: Event = serde_json::from_value(event.payload)?;
            let response = telephony::worker::handle(&worker, batch).await;
            Ok(serde_json::to_value(response)?)
        }
    }))
    .await
}
