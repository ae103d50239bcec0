//! Lambda entry point of the publish function (API Gateway and SQS; see the library).

use bcast_publish::{invoke, App};
use bcast_shared::{telemetry, Config, Store};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let app = App::new(&config, Store::open(&config)?);
    run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let app = &app;
        async move { Ok::<_, Error>(invoke(app, event.payload.get()).await?) }
    }))
    .await
}
