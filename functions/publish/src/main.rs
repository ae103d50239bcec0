//! Lambda entry point of the publish function: tracing, configuration (with its secrets) and the
//! Redis connection once per cold start, then every event through the library's `invoke`.

use bcast_publish::{invoke, App};
use bcast_shared::{aws, telemetry, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let mut config = Config::from_env()?;
    let store = aws::open_store(&mut config).await?;
    let app = App::new(&config, store);
    // The raw payload rather than `lambda_http::run`: `invoke` makes API Gateway events safe
    // for lambda_http first (see `bcast_shared::http::invoke`) and also takes SQS batches.
    run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let app = &app;
        async move { Ok::<_, Error>(invoke(app, event.payload.get()).await?) }
    }))
    .await
}
