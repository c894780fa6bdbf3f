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
    let exporter = Arc::new(dsar::worker::exporter_from_aws(
        &config,
        &aws,
        Arc::new(SystemClock),
    )?);
    // Two event sources: the table's stream and the `ErasuresDue` schedule.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let exporter = Arc::clone(&exporter);
        // The work on a request stops short of the invocation's deadline, so a timeout is
        // a counted, visible failure rather than a silent one.
        let left = dsar::worker::invocation_time(
            event.context.deadline(),
            std::time::SystemTime::now(),
            dsar::worker::TIMEOUT,
            dsar::worker::DEADLINE_MARGIN,
        )
        .saturating_sub(dsar::worker::DEADLINE_MARGIN);
        let deadline = tokio::time::Instant::now() + left;
        async move {
            if dsar::worker::is_erasures_due(&event.payload) {
                let report = dsar::worker::erasures_due(&exporter).await?;
                return Ok::<_, Error>(report.to_json());
            }
            let batch: Event = serde_json::from_value(event.payload)?;
            let response = dsar::worker::handle_until(&exporter, batch, Some(deadline)).await;
            Ok(serde_json::to_value(response)?)
        }
    }))
    .await
}
