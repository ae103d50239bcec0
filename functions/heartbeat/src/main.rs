//! Lambda entry point of the heartbeat function.

use bcast_heartbeat::{handle, App};
use bcast_shared::{telemetry, Config, Store};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let app = App::new(&config, Store::open(&config)?);
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&app, req).await)
    }))
    .await
}
