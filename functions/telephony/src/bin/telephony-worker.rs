use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let worker = Arc::clone(&worker);
        async move { Ok::<_, Error>(telephony::worker::handle(&worker, event.payload).await) }
    }))
    .await
}
