//! The baseline for size and cold start: the smallest `lambda_runtime` function, built with the
//! same profile and the same `lambda_runtime`/`tokio` features as the bcast functions.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
