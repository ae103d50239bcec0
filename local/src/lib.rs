//! `bcast-local`: bcast on one machine, without AWS or Docker.
//!
//! - [`serve`]: one HTTP server in front of the four functions' own handlers (each request
//!   becomes the API Gateway event the Lambda would get), the demo page and the JS client.
//! - [`invoke`]: one function on one event file, like `sam local invoke -e`.
//! - [`token`]: a login token signed with the local secret.
//!
//! Redis is `REDIS_URL` when set, otherwise a private `redis-server` started for the run.

pub mod cli;
pub mod functions;
pub mod gateway;
pub mod redis_server;
pub mod server;
pub mod web;

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bcast_shared::Account;
use hyper::http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

use functions::{Function, Functions, LocalConfig};
use redis_server::{PrivateRedis, StartError};

/// The account whose login token `serve` prints.
pub const DEMO_ACCOUNT: &str = "demo";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A private Redis when `REDIS_URL` is unset. Runs on the calling (main) thread.
fn redis_for_run() -> Result<(Option<PrivateRedis>, String), ExitCode> {
    if let Some(url) = env("REDIS_URL") {
        return Ok((None, url));
    }
    match PrivateRedis::start() {
        Ok(redis) => {
            let url = redis.url();
            Ok((Some(redis), url))
        }
        Err(e @ StartError::Missing) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("bcast-local: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("bcast-local: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn local_config(redis_url: Option<&str>) -> Result<LocalConfig, ExitCode> {
    LocalConfig::from_lookup(env, redis_url).map_err(|e| {
        eprintln!("bcast-local: {e}");
        ExitCode::from(2)
    })
}

/// Completes on Ctrl-C, SIGTERM or SIGHUP. The handlers are installed when this is called
/// (not when the future is first polled), so a signal that comes right after the banner is
/// not lost. Must be called inside the runtime.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ];
    let mut streams: Vec<_> = kinds.into_iter().filter_map(|k| signal(k).ok()).collect();
    async move {
        if streams.is_empty() {
            std::future::pending::<()>().await;
        }
        let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
        futures_select_all(waits).await;
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Completes when the first of `futures` does.
async fn futures_select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// `bcast-local serve`.
pub fn serve(host: &str, port: u16) -> ExitCode {
    match serve_inner(host, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn serve_inner(host: &str, port: u16) -> Result<(), ExitCode> {
    bcast_shared::telemetry::init_with_writer(std::io::stderr);
    // Checked before a Redis is started for nothing.
    local_config(Some("redis://127.0.0.1:6379"))?;
    let (private, redis_url) = redis_for_run()?;
    let local = local_config(Some(&redis_url))?;
    if local.dev_secret {
        eprintln!("{}", LocalConfig::dev_secret_warning());
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| {
                eprintln!("bcast-local: cannot listen on {host}:{port}: {e}");
                ExitCode::FAILURE
            })?;
        let addr = listener.local_addr().map_err(|e| {
            eprintln!("bcast-local: {e}");
            ExitCode::FAILURE
        })?;
        if local.dev_secret && !addr.ip().to_canonical().is_loopback() {
            eprintln!(
                "bcast-local: refusing to listen on {addr} with the public development login \
                 secret: anyone who can reach it could log in as any account. Set \
                 LOGIN_TOKEN_SECRET (at least 32 bytes) or use a loopback --host."
            );
            return Err(ExitCode::from(2));
        }
        let functions = Functions::new(&local.config).map_err(|e| {
            eprintln!("bcast-local: {e}");
            ExitCode::from(2)
        })?;
        if let Err(e) = functions.check_redis().await {
            eprintln!(
                "bcast-local: warning: Redis at {} does not answer yet ({e}); requests get 503 until it does",
                bcast_shared::config::redacted_url(&redis_url)
            );
        }
        let state = Arc::new(server::State {
            functions,
            signing_secret: local.signing_secret().map(str::to_owned),
            clients: local.config.clients.clone(),
            max_token_secs: local.config.login.max_age_secs,
        });
        let shutdown = shutdown_signal();
        print_banner(&local, addr, &redis_url, private.as_ref());
        server::serve(listener, state, shutdown).await;
        Ok(())
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    if let Some(mut redis) = private {
        redis.stop();
        eprintln!("bcast-local: stopped; the private redis-server is stopped too");
    } else {
        eprintln!("bcast-local: stopped");
    }
    result
}

fn print_banner(
    local: &LocalConfig,
    addr: std::net::SocketAddr,
    redis_url: &str,
    private: Option<&PrivateRedis>,
) {
    let shown: IpAddr = if addr.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let url = match shown {
        IpAddr::V6(ip) => format!("http://[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("http://{ip}:{}", addr.port()),
    };
    let mut lines = vec![
        format!("bcast-local is listening on {url}"),
        format!("  demo page    {url}/"),
        format!("  JS client    {url}/bcast.js"),
        match private {
            Some(redis) => format!(
                "  redis        private redis-server on 127.0.0.1:{} (no persistence, stopped on exit)",
                redis.port()
            ),
            None => format!("  redis        {} (REDIS_URL)", bcast_shared::config::redacted_url(redis_url)),
        },
    ];
    let client = local
        .config
        .clients
        .names()
        .first()
        .cloned()
        .unwrap_or_else(|| "wp".into());
    let ttl = local.config.login.max_age_secs;
    if let Some(secret) = local.signing_secret() {
        let exp = server::now_secs() + ttl;
        if let Ok(token) = bcast_login::mint(secret, &client, DEMO_ACCOUNT, exp, None) {
            lines.push(format!(
                "  login token  client {client:?}, account {DEMO_ACCOUNT:?}, valid {ttl} s \
                 (more: cargo run -p bcast-local -- token --client {client} --account {DEMO_ACCOUNT}):"
            ));
            lines.push(format!("    {token}"));
            lines.push(format!(
                "  try          curl -si -X POST {url}/login -H \"Authorization: Bearer <login token>\""
            ));
        }
    }
    lines.push("Press Ctrl-C to stop.".into());
    println!("{}", lines.join("\n"));
}

/// `bcast-local token`.
pub fn token(client: &str, account: &str, ttl: Option<u64>) -> ExitCode {
    let Ok(local) = local_config(Some("redis://127.0.0.1:6379")) else {
        return ExitCode::from(2);
    };
    match mint_for(&local, client, account, ttl) {
        Ok(token) => {
            if local.dev_secret {
                eprintln!(
                    "bcast-local: WARNING: LOGIN_TOKEN_SECRET is not set; signed with the public development secret"
                );
            }
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bcast-local: {e}");
            ExitCode::from(2)
        }
    }
}

/// A login token for `client`/`account` from the local configuration's secret.
pub fn mint_for(
    local: &LocalConfig,
    client: &str,
    account: &str,
    ttl: Option<u64>,
) -> Result<String, String> {
    Account::parse(&local.config.clients, client, account).map_err(|e| e.to_string())?;
    let max = local.config.login.max_age_secs;
    let ttl = ttl.unwrap_or(max);
    if ttl == 0 || ttl > max {
        return Err(format!(
            "--ttl must be from 1 to {max} s (LOGIN_TOKEN_MAX_AGE_SECS): the functions refuse longer-lived tokens"
        ));
    }
    let secret = local.signing_secret().ok_or(
        "only LOGIN_TOKEN_PUBLIC_KEY is configured: login tokens are signed by your backend's private key",
    )?;
    bcast_login::mint(secret, client, account, server::now_secs() + ttl, None)
        .map_err(|e| format!("cannot sign the token: {e}"))
}

/// `bcast-local invoke`.
pub fn invoke(
    function: Function,
    event: &Path,
    client: &str,
    account: &str,
    fill: bool,
) -> ExitCode {
    bcast_shared::telemetry::init_with_writer(std::io::stderr);
    let text = match std::fs::read_to_string(event) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("bcast-local: {}: {e}", event.display());
            return ExitCode::from(2);
        }
    };
    let Ok(_) = local_config(Some("redis://127.0.0.1:6379")) else {
        return ExitCode::from(2);
    };
    let (private, redis_url) = match redis_for_run() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Ok(local) = local_config(Some(&redis_url)) else {
        return ExitCode::from(2);
    };
    let Ok(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let code = rt.block_on(async {
        let functions = match Functions::new(&local.config) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("bcast-local: {e}");
                return ExitCode::from(2);
            }
        };
        let payload = if fill {
            match fill_placeholders(&text, &local, &functions, client, account).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("bcast-local: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            text
        };
        match functions.invoke(function, &payload).await {
            Ok(response) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&response).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bcast-local: {}: {e}", event.display());
                ExitCode::FAILURE
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(private);
    code
}

/// A credential put into an event must not break out of its JSON string.
fn credential(name: &str, value: String) -> Result<String, String> {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
    {
        Ok(value)
    } else {
        Err(format!("{name} holds characters a token never has"))
    }
}

/// Replaces `${LOGIN_TOKEN}` and `${CLIENT_KEY}` in an event: with the `LOGIN_TOKEN` and
/// `CLIENT_KEY` environment variables when set, else with a fresh login token for
/// `client`/`account` and the client key of a fresh session (made by the login function).
pub async fn fill_placeholders(
    text: &str,
    local: &LocalConfig,
    functions: &Functions,
    client: &str,
    account: &str,
) -> Result<String, String> {
    let mut text = text.to_owned();
    if text.contains("${LOGIN_TOKEN}") {
        let token = match env("LOGIN_TOKEN") {
            Some(t) => credential("LOGIN_TOKEN", t)?,
            None => mint_for(local, client, account, None)?,
        };
        text = text.replace("${LOGIN_TOKEN}", &token);
    }
    if text.contains("${CLIENT_KEY}") {
        let key = match env("CLIENT_KEY") {
            Some(k) => credential("CLIENT_KEY", k)?,
            None => new_session(local, functions, client, account).await?,
        };
        text = text.replace("${CLIENT_KEY}", &key);
    }
    Ok(text)
}

/// Logs in through the login function and returns the new session's client key.
async fn new_session(
    local: &LocalConfig,
    functions: &Functions,
    client: &str,
    account: &str,
) -> Result<String, String> {
    let token = mint_for(local, client, account, None)?;
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?;
    headers.insert("authorization", bearer);
    headers.insert("host", HeaderValue::from_static("localhost"));
    let event = gateway::v2_event(&gateway::Incoming {
        method: &Method::POST,
        path: "/login",
        query: "",
        headers: &headers,
        body: b"",
        peer: IpAddr::from([127, 0, 0, 1]),
    });
    let response = functions
        .invoke(Function::Login, &event.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response
        .get("body")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    match body.get("client_key").and_then(Value::as_str) {
        Some(key) => Ok(key.to_owned()),
        None => Err(format!(
            "logging in for ${{CLIENT_KEY}} failed with status {}: {}",
            response["statusCode"],
            body.get("detail").and_then(Value::as_str).unwrap_or("")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_redis_urls_are_not_printed() {
        assert_eq!(
            bcast_shared::config::redacted_url("redis://user:hunter2@127.0.0.1:6379"),
            "redis://***@127.0.0.1:6379"
        );
        assert_eq!(
            bcast_shared::config::redacted_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn credentials_cannot_break_the_event_json() {
        assert!(credential("X", "eyJhbGci.eyJzdWIi.sig-_".into()).is_ok());
        assert!(credential("X", "a\",\"b".into()).is_err());
        assert!(credential("X", "a b".into()).is_err());
    }
}
