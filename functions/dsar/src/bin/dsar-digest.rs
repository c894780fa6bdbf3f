use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{Config, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::load().await;
    let job = Arc::new(dsar::digest::digest_from_aws(
        &config,
        &aws,
        Arc::new(SystemClock),
    )?);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let job = Arc::clone(&job);
        async move { Ok::<_, Error>(dsar::digest::handle(&job).await?) }
    }))
    .await
}
