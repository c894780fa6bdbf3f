use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use shared::{Config, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::load().await;
    let app = Arc::new(sales::App::from_aws(&config, &aws, Arc::new(SystemClock))?);
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(sales::handle(&app, req).await) }
    }))
    .await
}
