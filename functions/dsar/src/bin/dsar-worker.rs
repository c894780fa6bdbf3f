use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let exporter = Arc::clone(&exporter);
        // The work on a request stops short of the invocation's deadline, so a timeout is
        // a counted, visible failure rather than a silent one.
        let left = event
            .context
            .deadline()
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(dsar::worker::DEADLINE_MARGIN);
        let deadline = tokio::time::Instant::now() + left;
        async move {
            Ok::<_, Error>(
                dsar::worker::handle_until(&exporter, event.payload, Some(deadline)).await,
            )
        }
    }))
    .await
}
