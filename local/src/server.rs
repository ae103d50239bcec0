//! `bcast-local serve`: one HTTP server in front of the four functions. Each request becomes
//! the API Gateway event the Lambda would get and goes through the function's own `invoke`;
//! the demo page and the JS client are served beside them.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bcast_shared::{Account, ClientNames};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::functions::{self, Functions};
use crate::gateway::{self, Incoming};
use crate::web;

/// The largest request body accepted: API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What the server needs besides the functions.
pub struct State {
    pub functions: Functions,
    /// The HS256 secret `/_local/token` signs with, when one is configured.
    pub signing_secret: Option<String>,
    pub clients: ClientNames,
    /// `LOGIN_TOKEN_MAX_AGE_SECS`.
    pub max_token_secs: u64,
}

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, peer, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type HttpResponse = Response<Full<Bytes>>;

/// A problem+json error made by the local server itself (not by a function).
fn problem(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    let body = json!({
        "type": format!("https://bcast.dev/problems/{}", code.replace('_', "-")),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether the `Host` header names this machine by `localhost` or an IP address. A web page
/// on another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name,
/// so it cannot reach the backend routes through the developer's browser.
fn local_host(headers: &hyper::http::HeaderMap) -> bool {
    let Some(host) = headers
        .get(hyper::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// Answers one request from `peer`.
pub async fn handle<B>(state: &State, peer: SocketAddr, req: Request<B>) -> HttpResponse
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    if let Some(asset) = web::asset(&path) {
        return match *req.method() {
            Method::GET | Method::HEAD => asset_response(asset, *req.method() == Method::HEAD),
            _ => {
                let mut r = problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed",
                );
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            }
        };
    }
    let target = functions::route(&path);
    let local_token = path == "/_local/token";
    if target.is_none() && !local_token {
        return problem(StatusCode::NOT_FOUND, "not_found", "no such route");
    }
    let backend = local_token || target.is_some_and(|t| t.backend);
    if backend && !loopback(peer.ip()) {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "backend routes (publish, presence, sessions) answer loopback clients only",
        );
    }
    if backend && !local_host(req.headers()) {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "backend routes answer requests for localhost or an IP address only",
        );
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the body is over {MAX_BODY_BYTES} bytes"),
            );
        }
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body could not be read",
            )
        }
    };
    let Some(target) = target else {
        return mint_token(state, &parts.method, &body);
    };
    let event = gateway::v2_event(&Incoming {
        method: &parts.method,
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        peer: peer.ip(),
    });
    let function = target.function;
    let response = match state.functions.invoke(function, &event.to_string()).await {
        Ok(response) => response,
        Err(_) => {
            // The detail could quote the request; it is not logged.
            tracing::warn!(function = function.name(), "event refused");
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "malformed request",
            );
        }
    };
    match gateway::from_gateway_response(&response) {
        Ok(out) => {
            let mut r = Response::new(Full::new(Bytes::from(out.body)));
            *r.status_mut() = out.status;
            *r.headers_mut() = out.headers;
            r
        }
        Err(e) => {
            tracing::error!(function = function.name(), error = %e, "bad function response");
            problem(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the function returned a response API Gateway would not accept",
            )
        }
    }
}

fn asset_response(asset: &web::Asset, head: bool) -> HttpResponse {
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from_static(asset.body.as_bytes())
    };
    let mut r = Response::new(Full::new(body));
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    client: String,
    account_id: String,
    #[serde(default)]
    ttl: Option<u64>,
}

/// `POST /_local/token {"client", "account_id", "ttl"?}`: a login token, as the application's
/// backend would mint after authenticating a user. Loopback only; for the demo page and tests.
fn mint_token(state: &State, method: &Method, body: &[u8]) -> HttpResponse {
    if *method != Method::POST {
        let mut r = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let Some(secret) = &state.signing_secret else {
        return problem(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "no LOGIN_TOKEN_SECRET is configured (public-key login tokens only): mint tokens with your backend",
        );
    };
    let request: TokenRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("expected {{\"client\", \"account_id\", \"ttl\"?}}: {e}"),
            )
        }
    };
    if let Err(e) = Account::parse(&state.clients, &request.client, &request.account_id) {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string());
    }
    let ttl = request.ttl.unwrap_or(state.max_token_secs);
    if ttl == 0 || ttl > state.max_token_secs {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "ttl must be from 1 to {} (LOGIN_TOKEN_MAX_AGE_SECS)",
                state.max_token_secs
            ),
        );
    }
    match bcast_login::mint(
        secret,
        &request.client,
        &request.account_id,
        now_secs() + ttl,
        None,
    ) {
        Ok(token) => {
            let mut r = Response::new(Full::new(Bytes::from(
                json!({"token": token, "expires_in": ttl}).to_string(),
            )));
            *r.status_mut() = StatusCode::CREATED;
            let headers = r.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the token could not be signed",
        ),
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_are_loopback() {
        assert!(loopback(IpAddr::from([127, 0, 0, 1])));
        assert!(loopback(IpAddr::from([127, 9, 9, 9])));
        assert!(loopback("::1".parse().unwrap()));
        assert!(loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!loopback(IpAddr::from([192, 168, 1, 20])));
        assert!(!loopback("::ffff:192.168.1.20".parse().unwrap()));
        assert!(!loopback("2001:db8::1".parse().unwrap()));
    }

    fn state() -> State {
        // Redis is never reached: the port is closed and these requests stop before it.
        let local =
            crate::functions::LocalConfig::from_lookup(|_| None, Some("redis://127.0.0.1:1"))
                .unwrap();
        State {
            functions: Functions::new(&local.config).unwrap(),
            signing_secret: local.signing_secret().map(str::to_owned),
            clients: local.config.clients.clone(),
            max_token_secs: 300,
        }
    }

    async fn status(state: &State, peer: [u8; 4], method: &str, path: &str, body: &str) -> u16 {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        handle(state, SocketAddr::from((peer, 40000)), req)
            .await
            .status()
            .as_u16()
    }

    #[test]
    fn backend_routes_need_a_local_host_name() {
        let host = |h: &str| {
            let mut headers = hyper::http::HeaderMap::new();
            headers.insert("host", HeaderValue::from_str(h).unwrap());
            local_host(&headers)
        };
        assert!(host("127.0.0.1:3000"));
        assert!(host("localhost:3000"));
        assert!(host("LOCALHOST"));
        assert!(host("[::1]:3000"));
        assert!(host("192.168.1.5:3000"));
        assert!(!host("evil.example:3000"));
        assert!(!host("localhost.evil.example"));
        assert!(local_host(&hyper::http::HeaderMap::new()));
    }

    #[tokio::test]
    async fn backend_routes_answer_loopback_clients_only() {
        let state = state();
        let token = r#"{"client":"wp","account_id":"1"}"#;
        let lan = [192, 168, 1, 20];
        for (method, path, body) in [
            ("POST", "/publish", "{}"),
            ("GET", "/presence/wp/1", ""),
            ("DELETE", "/sessions/wp/1", ""),
            ("POST", "/_local/token", token),
        ] {
            assert_eq!(
                status(&state, lan, method, path, body).await,
                403,
                "{method} {path}"
            );
        }
        // Only whole paths are routes; these are not.
        for (method, path) in [
            ("GET", "/heartbeat/presence/wp/1"),
            ("DELETE", "/login/sessions/wp/1"),
            ("POST", "/x/publish"),
        ] {
            assert_eq!(
                status(&state, lan, method, path, "").await,
                404,
                "{method} {path}"
            );
        }
        // Client routes and the page are open to everyone.
        assert_eq!(status(&state, lan, "GET", "/broadcasts", "").await, 401);
        assert_eq!(status(&state, lan, "POST", "/login", "").await, 401);
        assert_eq!(status(&state, lan, "GET", "/", "").await, 200);
        // From loopback the backend routes work.
        assert_eq!(
            status(&state, [127, 0, 0, 1], "POST", "/_local/token", token).await,
            201
        );
        assert_eq!(
            status(&state, [127, 0, 0, 1], "POST", "/publish", "x").await,
            415
        );
        assert_eq!(
            status(&state, [127, 0, 0, 1], "PUT", "/_local/token", "").await,
            405
        );
        assert_eq!(status(&state, [127, 0, 0, 1], "POST", "/", "").await, 405);
        // A page on another site re-pointed at 127.0.0.1 (DNS rebinding) is refused.
        let req = Request::builder()
            .method("POST")
            .uri("/_local/token")
            .header("host", "evil.example:3000")
            .body(Full::new(Bytes::from(token)))
            .unwrap();
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        assert_eq!(handle(&state, peer, req).await.status(), 403);
    }
}
