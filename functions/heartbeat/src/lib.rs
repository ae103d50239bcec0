//! The heartbeat function: `POST /heartbeat` keeps a session alive and online and says what is
//! pending; `GET /presence/{client}/{account_id}` (backend-facing) lists who is online.

use bcast_shared::http::{self, ApiError, InvalidEvent, RequestLog, Route, SMALL_BODY_BYTES};
use bcast_shared::{ClientNames, Config, Cursor, Store};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

const ROUTES: [Route; 2] = [
    Route {
        method: Method::POST,
        pattern: &["heartbeat"],
        name: "POST /heartbeat",
    },
    Route {
        method: Method::GET,
        pattern: &["presence", "{}", "{}"],
        name: "GET /presence",
    },
];

/// State built once per cold start.
pub struct App {
    store: Store,
    clients: ClientNames,
    heartbeat_interval: u64,
}

impl App {
    pub fn new(config: &Config, store: Store) -> Self {
        Self {
            store,
            clients: config.clients.clone(),
            heartbeat_interval: config.sessions.heartbeat_interval_secs,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    #[serde(default)]
    cursor: Option<Cursor>,
}

#[derive(Serialize)]
struct HeartbeatResponse {
    client_key: String,
    expires_in: u64,
    heartbeat_interval: u64,
    latest: Option<Cursor>,
    pending: u64,
}

/// Serves one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut log = RequestLog::start("heartbeat");
    let (name, result) = match http::route(&req, &ROUTES) {
        Err(e) => ("unrouted", Err(e)),
        Ok((route, _)) if route.name == "POST /heartbeat" => {
            (route.name, heartbeat(app, &req, &mut log).await)
        }
        Ok((route, params)) => (route.name, presence(app, &req, &params, &mut log).await),
    };
    log.finish(name, result)
}

async fn heartbeat(
    app: &App,
    req: &Request,
    log: &mut RequestLog,
) -> Result<Response<Body>, ApiError> {
    http::query(req)?;
    let body: Option<HeartbeatBody> = http::json_body(req, SMALL_BODY_BYTES)?;
    let since = body.and_then(|b| b.cursor);
    let key = http::client_key(req, &app.clients)?;
    log.account = Some(key.account().to_string());
    let (grant, pulse) = log.redis(app.store.heartbeat(&key, since)).await?;
    Ok(http::json(
        StatusCode::OK,
        &HeartbeatResponse {
            client_key: grant.client_key.reveal(),
            expires_in: grant.expires_in,
            heartbeat_interval: app.heartbeat_interval,
            latest: pulse.latest,
            pending: pulse.pending,
        },
    ))
}

async fn presence(
    app: &App,
    req: &Request,
    params: &[String],
    log: &mut RequestLog,
) -> Result<Response<Body>, ApiError> {
    http::query(req)?;
    let target = http::path_account(params, &app.clients)?;
    log.account = Some(target.to_string());
    let presence = log.redis(app.store.presence(&target)).await?;
    Ok(http::json(StatusCode::OK, &presence))
}

/// Runs the function on one API Gateway event (JSON) and returns its JSON response.
pub async fn invoke(app: &App, payload: &str) -> Result<serde_json::Value, InvalidEvent> {
    http::invoke(payload, |req| handle(app, req)).await
}
