//! The fetch function: `GET /broadcasts?since=<cursor>&limit=<n>` returns the events of the
//! client key's account newer than the cursor, and the next client key.

use bcast_shared::domain::Page;
use bcast_shared::http::{self, ApiError, InvalidEvent, RequestLog, Route};
use bcast_shared::{ClientNames, Config, Cursor, Store};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

const ROUTES: [Route; 1] = [Route {
    method: Method::GET,
    pattern: &["broadcasts"],
    name: "GET /broadcasts",
}];

/// State built once per cold start.
pub struct App {
    store: Store,
    clients: ClientNames,
}

impl App {
    pub fn new(config: &Config, store: Store) -> Self {
        Self {
            store,
            clients: config.clients.clone(),
        }
    }
}

#[derive(Serialize)]
struct FetchResponse {
    #[serde(flatten)]
    page: Page,
    client_key: String,
    expires_in: u64,
}

/// `since` and `limit` from the query string; nothing else is read from it.
fn parameters(req: &Request) -> Result<(Option<Cursor>, Option<u64>), ApiError> {
    let (mut since, mut limit) = (None, None);
    for (name, value) in http::query(req)? {
        match name.as_str() {
            "since" if !value.is_empty() => {
                since = Some(
                    Cursor::parse(&value)
                        .map_err(|_| ApiError::invalid("malformed cursor in since"))?,
                );
            }
            "limit" => {
                let n: u64 = value
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::invalid("limit must be a whole number from 1"))?;
                limit = Some(n);
            }
            _ => {}
        }
    }
    Ok((since, limit))
}

/// Serves one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut log = RequestLog::start("fetch");
    let result = match http::route(&req, &ROUTES) {
        Err(e) => Err(e),
        Ok(_) => fetch(app, &req, &mut log).await,
    };
    log.finish("GET /broadcasts", result)
}

async fn fetch(app: &App, req: &Request, log: &mut RequestLog) -> Result<Response<Body>, ApiError> {
    // Input is checked before the key is spent on a request that cannot succeed.
    let (since, limit) = parameters(req)?;
    let key = http::client_key(req, &app.clients)?;
    log.account = Some(key.account().to_string());
    let (grant, page) = log.redis(app.store.fetch(&key, since, limit)).await?;
    log.metrics.count("Fetched", page.events.len() as u64);
    log.metrics.count("Missed", u64::from(page.missed));
    Ok(http::json(
        StatusCode::OK,
        &FetchResponse {
            page,
            client_key: grant.client_key.reveal(),
            expires_in: grant.expires_in,
        },
    ))
}

/// Runs the function on one API Gateway event (JSON) and returns its JSON response.
pub async fn invoke(app: &App, payload: &str) -> Result<serde_json::Value, InvalidEvent> {
    http::invoke(payload, |req| handle(app, req)).await
}
