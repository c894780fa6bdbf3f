use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::{Config, SystemClock};
use usecases::dsar::analytics_job::Budget;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::load().await;
    let exports = Arc::new(dsar::analytics::exports_from_aws(
        &config,
        &aws,
        Arc::new(SystemClock),
    )?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let exports = Arc::clone(&exports);
        // A slice stops short of the invocation's deadline and checkpoints; the stream
        // hands the job back for the next one.
        // (A short local deadline keeps three quarters of itself.)
        let left = dsar::worker::invocation_time(
            event.context.deadline(),
            std::time::SystemTime::now(),
            dsar::worker::TIMEOUT,
            dsar::analytics::DEADLINE_MARGIN,
        );
        let left = left.saturating_sub(dsar::analytics::DEADLINE_MARGIN.min(left / 4));
        let budget = Budget::until(std::time::Instant::now() + left);
        async move { Ok::<_, Error>(dsar::analytics::handle(&exports, event.payload, budget).await) }
    }))
    .await
}
