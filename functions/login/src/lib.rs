//! The login function: `POST /login` turns a login token from the application's backend into a
//! session and its first client key; `POST /logout` ends a session; `DELETE
//! /sessions/{client}/{account_id}` (backend-facing) ends every session of an account.

pub mod token;

use std::time::{SystemTime, UNIX_EPOCH};

use bcast_shared::config::ConfigError;
use bcast_shared::http::{self, ApiError, InvalidEvent, RequestLog, Route};
use bcast_shared::{ClientNames, Config, Cursor, Store};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

pub use token::{mint, LoginClaims, TokenVerifier};

const ROUTES: [Route; 3] = [
    Route {
        method: Method::POST,
        pattern: &["login"],
        name: "POST /login",
    },
    Route {
        method: Method::POST,
        pattern: &["logout"],
        name: "POST /logout",
    },
    Route {
        method: Method::DELETE,
        pattern: &["sessions", "{}", "{}"],
        name: "DELETE /sessions",
    },
];

/// State built once per cold start.
pub struct App {
    store: Store,
    clients: ClientNames,
    tokens: TokenVerifier,
    heartbeat_interval: u64,
}

impl App {
    pub fn new(config: &Config, store: Store) -> Result<Self, ConfigError> {
        Ok(Self {
            tokens: TokenVerifier::new(&config.login, config.clients.clone())?,
            store,
            clients: config.clients.clone(),
            heartbeat_interval: config.sessions.heartbeat_interval_secs,
        })
    }
}

#[derive(Serialize)]
struct LoginResponse<'a> {
    client_key: String,
    expires_in: u64,
    heartbeat_interval: u64,
    cursor: Option<Cursor>,
    client: &'a str,
    account_id: &'a str,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serves one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut log = RequestLog::start("login");
    let (name, result) = match http::route(&req, &ROUTES) {
        Err(e) => ("unrouted", Err(e)),
        Ok((route, params)) => {
            let result = match route.name {
                "POST /login" => login(app, &req, &mut log).await,
                "POST /logout" => logout(app, &req, &mut log).await,
                _ => revoke_all(app, &req, &params, &mut log).await,
            };
            (route.name, result)
        }
    };
    log.finish(name, result)
}

async fn login(app: &App, req: &Request, log: &mut RequestLog) -> Result<Response<Body>, ApiError> {
    http::query(req)?;
    let token = http::bearer(req)?;
    let claims = app.tokens.verify(token, now_secs())?;
    log.account = Some(claims.account.to_string());
    let jti = claims.jti.as_ref().map(|(j, exp)| (j.as_str(), *exp));
    let login = log
        .redis(app.store.login(claims.account.clone(), jti))
        .await?;
    Ok(http::json(
        StatusCode::CREATED,
        &LoginResponse {
            client_key: login.grant.client_key.reveal(),
            expires_in: login.grant.expires_in,
            heartbeat_interval: app.heartbeat_interval,
            cursor: login.cursor,
            client: claims.account.client().as_str(),
            account_id: claims.account.id().as_str(),
        },
    ))
}

async fn logout(
    app: &App,
    req: &Request,
    log: &mut RequestLog,
) -> Result<Response<Body>, ApiError> {
    http::query(req)?;
    let key = http::client_key(req, &app.clients)?;
    log.account = Some(key.account().to_string());
    log.redis(app.store.logout(&key)).await?;
    Ok(http::no_content())
}

async fn revoke_all(
    app: &App,
    req: &Request,
    params: &[String],
    log: &mut RequestLog,
) -> Result<Response<Body>, ApiError> {
    http::query(req)?;
    let target = http::path_account(params, &app.clients)?;
    log.account = Some(target.to_string());
    log.redis(app.store.revoke_all(&target)).await?;
    Ok(http::no_content())
}

/// Runs the function on one API Gateway event (JSON) and returns its JSON response.
pub async fn invoke(app: &App, payload: &str) -> Result<serde_json::Value, InvalidEvent> {
    http::invoke(payload, |req| handle(app, req)).await
}
