use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{Config, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::load().await;
    let app = std::sync::Arc::new(retention_sweep::App::from_aws(&config, &aws)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = std::sync::Arc::clone(&app);
        async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            // Lambda always sets a deadline; a local runtime may not (zero): then the
            // function's configured maximum applies.
            let remaining = match deadline.duration_since(SystemTime::now()) {
                Ok(d) if !d.is_zero() => d,
                _ => Duration::from_secs(900),
            };
            let budget = retention_sweep::budget(remaining);
            tracing::info!(
                remaining_ms = remaining.as_millis() as u64,
                budget_ms = budget.as_millis() as u64,
                "sweep starting"
            );
            let report = app
                .handle_event(&event.payload, &SystemClock, budget)
                .await?;
            Ok::<_, Error>(report)
        }
    }))
    .await
}
