//! Lambda entry point of the heartbeat function: tracing, configuration and the Redis connection once
//! per cold start, then every event through the library's `invoke`.

use bcast_heartbeat::{invoke, App};
use bcast_shared::{telemetry, Config, Store};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let app = App::new(&config, Store::open(&config)?);
    // The raw payload rather than `lambda_http::run`: `invoke` makes API Gateway events safe
    // for lambda_http first (see `bcast_shared::http::invoke`).
    run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let app = &app;
        async move { Ok::<_, Error>(invoke(app, event.payload.get()).await?) }
    }))
    .await
}
