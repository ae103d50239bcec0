//! Lambda entry point of the login function.

use bcast_login::{handle, App};
use bcast_shared::{telemetry, Config, Store};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let store = Store::open(&config)?;
    let app = App::new(&config, store)?;
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&app, req).await)
    }))
    .await
}
