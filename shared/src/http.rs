//! The HTTP side every function shares: the error type (problem+json), reading requests
//! defensively, writing JSON responses, routing by path, and the per-request log line.

use std::time::{Instant, SystemTime};

use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::request::RequestOrigin;
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::metrics::Metrics;
use crate::store::{PublishError, SessionError, StoreError};
use crate::{Account, ClientKey, ClientNames};

/// Seconds a client should wait before retrying when Redis is unavailable.
const UNAVAILABLE_RETRY_SECS: u64 = 1;

/// Deepest JSON nesting a request body may have.
pub const MAX_JSON_DEPTH: usize = 32;

/// A body limit for routes that take at most a cursor.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// Every way a request can fail, each with its status and stable `code`.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("unknown or expired client key")]
    ClientKeyInvalid,
    #[error("a rotated-out client key was used again; the session is revoked, log in again")]
    ClientKeyReused,
    #[error("the session passed its maximum age; log in again")]
    SessionExpired,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the store is unavailable; retry shortly")]
    Unavailable,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_)
            | Self::ClientKeyInvalid
            | Self::ClientKeyReused
            | Self::SessionExpired => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::ClientKeyInvalid => "client_key_invalid",
            Self::ClientKeyReused => "client_key_reused",
            Self::SessionExpired => "session_expired",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    /// The problem+json response (RFC 9457) with the headers the status calls for.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let body = serde_json::json!({
            "type": format!("https://bcast.dev/problems/{}", self.code().replace('_', "-")),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
        });
        let mut response = respond(status, "application/problem+json", body.to_string());
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_)
            | Self::ClientKeyInvalid
            | Self::ClientKeyReused
            | Self::SessionExpired => {
                headers.insert(
                    lambda_http::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::RateLimited { retry_after } => {
                headers.insert(
                    lambda_http::http::header::RETRY_AFTER,
                    (*retry_after).into(),
                );
            }
            Self::Unavailable => {
                headers.insert(
                    lambda_http::http::header::RETRY_AFTER,
                    UNAVAILABLE_RETRY_SECS.into(),
                );
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(
                    lambda_http::http::header::ALLOW,
                    HeaderValue::from_static(allow),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "redis failed");
        Self::Unavailable
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::ClientKeyInvalid => Self::ClientKeyInvalid,
            SessionError::ClientKeyReused => Self::ClientKeyReused,
            SessionError::SessionExpired => Self::SessionExpired,
            SessionError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            SessionError::TokenReused => {
                Self::Unauthorized("this login token was already used".into())
            }
            SessionError::Store(e) => e.into(),
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Empty | PublishError::TooMany => Self::InvalidRequest(e.to_string()),
            PublishError::TooLarge { .. } => Self::PayloadTooLarge(e.to_string()),
            PublishError::Store(e) => e.into(),
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => respond(status, "application/json", text),
        Err(e) => {
            tracing::error!(error = %e, "response did not serialize");
            ApiError::Unavailable.into_response()
        }
    }
}

/// An empty response (204).
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(req: &Request) -> Result<&str, ApiError> {
    let mut values = req
        .headers()
        .get_all(lambda_http::http::header::AUTHORIZATION)
        .iter();
    let value = values
        .next()
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer header".into()))?;
    if values.next().is_some() {
        return Err(ApiError::Unauthorized(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::Unauthorized(
            "expected Authorization: Bearer <token>".into(),
        ));
    }
    Ok(token)
}

/// The client key of `Authorization: Bearer`, for every client-facing route after login.
pub fn client_key(req: &Request, clients: &ClientNames) -> Result<ClientKey, ApiError> {
    ClientKey::parse(bearer(req)?, clients).map_err(|_| ApiError::ClientKeyInvalid)
}

/// The account of a backend route's `{client}/{account_id}` path parameters.
pub fn path_account(params: &[String], clients: &ClientNames) -> Result<Account, ApiError> {
    let [client, id] = params else {
        return Err(ApiError::NotFound);
    };
    Account::parse(clients, client, id).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Query parameter names that would carry a credential; secrets travel only in headers.
const SECRET_PARAMETERS: [&str; 6] = [
    "client_key",
    "clientkey",
    "key",
    "token",
    "access_token",
    "authorization",
];

/// The query parameters as (name, value) pairs, decoded. A credential in the query string is
/// refused, as is a parameter given twice.
pub fn query(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let Some(raw) = req.uri().query() else {
        return Ok(pairs);
    };
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = percent_decode(name)?;
        let value = percent_decode(value)?;
        if SECRET_PARAMETERS.contains(&name.to_ascii_lowercase().as_str())
            || ClientKey::looks_like(&value)
        {
            return Err(ApiError::invalid(
                "credentials are not accepted in the query string; use the Authorization header",
            ));
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::invalid(format!(
                "query parameter {name:?} given twice"
            )));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("malformed query string");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Whether the JSON text nests deeper than `max` (strings are skipped).
fn too_deep(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The JSON body, or `None` when there is none. Enforces the size limit (413), a JSON content
/// type (415) and the nesting cap, and turns parse errors into a 400 that says what is wrong.
pub fn json_body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<Option<T>, ApiError> {
    let bytes = body_bytes(req);
    if bytes.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes, over the limit of {limit}",
            bytes.len()
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| {
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        });
    if !json_type {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(bytes).map(Some)
}

/// JSON from a request (a body, an SQS message), with the nesting cap and a 400 that says
/// what is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if too_deep(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::invalid(format!(
            "JSON nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// The path's segments, without the API Gateway stage that `lambda_http` puts in front of the
/// path for a named stage.
pub fn segments(req: &Request) -> Vec<&str> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.as_deref(),
        _ => None,
    };
    let mut segments: Vec<&str> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if let (Some(stage), Some(first)) = (stage, segments.first()) {
        if *first == stage && stage != "$default" {
            segments.remove(0);
        }
    }
    segments
}

/// A route a function serves: method, path pattern (`{}` for a parameter), and its name in logs.
pub struct Route {
    pub method: Method,
    pub pattern: &'static [&'static str],
    pub name: &'static str,
}

/// The route that matches `req`, with its path parameters (percent-decoded). A known path
/// with another method is 405; anything else 404.
pub fn route<'r>(req: &Request, routes: &'r [Route]) -> Result<(&'r Route, Vec<String>), ApiError> {
    let segments = segments(req);
    let mut path_known = None;
    for route in routes {
        // The whole path must match: `/heartbeat/presence/wp/1` is not the backend route.
        if segments.len() != route.pattern.len() {
            continue;
        }
        let tail = &segments[..];
        let matches = route
            .pattern
            .iter()
            .zip(tail)
            .all(|(p, s)| *p == "{}" || p == s);
        if !matches {
            continue;
        }
        if route.method != *req.method() {
            path_known = Some(route);
            continue;
        }
        let params = route
            .pattern
            .iter()
            .zip(tail)
            .filter(|(p, _)| **p == "{}")
            .map(|(_, s)| percent_decode(s))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((route, params));
    }
    match path_known {
        Some(route) => Err(ApiError::MethodNotAllowed {
            allow: route.method.as_str_static(),
        }),
        None => Err(ApiError::NotFound),
    }
}

trait MethodName {
    fn as_str_static(&self) -> &'static str;
}

impl MethodName for Method {
    fn as_str_static(&self) -> &'static str {
        match *self {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::DELETE => "DELETE",
            Method::PUT => "PUT",
            _ => "GET, POST, DELETE",
        }
    }
}

/// What one request did: its account and metrics, written out as its one log line and one
/// metrics line when it ends.
pub struct RequestLog {
    function: &'static str,
    started: Instant,
    /// `client/account_id` of the request, once known. Never a key or a token.
    pub account: Option<String>,
    pub metrics: Metrics,
}

impl RequestLog {
    pub fn start(function: &'static str) -> Self {
        Self {
            function,
            started: Instant::now(),
            account: None,
            metrics: Metrics::default(),
        }
    }

    /// Awaits one store call, timing it as `RedisLatency`.
    pub async fn redis<T>(&mut self, call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        self.metrics.time("RedisLatency", started.elapsed());
        result
    }

    /// Writes the metrics line.
    pub fn emit_metrics(&self) {
        if let Some(line) = self.metrics.to_emf(self.function, SystemTime::now()) {
            crate::telemetry::metrics_line(&line);
        }
    }

    /// Turns a handler's result into the response, and writes the request's log line (route,
    /// status, duration, account) and metrics line.
    pub fn finish(
        mut self,
        route: &str,
        result: Result<Response<Body>, ApiError>,
    ) -> Response<Body> {
        let (response, code) = match result {
            Ok(r) => (r, None),
            Err(e) => {
                match e {
                    ApiError::ClientKeyReused => self.metrics.count("KeyReuse", 1),
                    ApiError::RateLimited { .. } => self.metrics.count("RateLimited", 1),
                    ApiError::Unavailable => self.metrics.count("RedisErrors", 1),
                    _ => {}
                }
                let code = e.code();
                (e.into_response(), Some(code))
            }
        };
        tracing::info!(
            route,
            status = response.status().as_u16(),
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            account = self.account.as_deref(),
            error = code,
            "request"
        );
        self.emit_metrics();
        response
    }
}

/// An event file or payload that is not an API Gateway request.
#[derive(Debug, Error)]
#[error("not an API Gateway request event: {0}")]
pub struct InvalidEvent(String);

impl InvalidEvent {
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// Runs `handler` on an API Gateway event (HTTP API v2 or REST v1, as JSON) and returns the
/// response in the same format: the path a Lambda takes, for runners other than
/// `lambda_http::run`.
pub async fn invoke<F, Fut>(event: &str, handler: F) -> Result<serde_json::Value, InvalidEvent>
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let event = normalize_event(event)?;
    let req = lambda_http::request::from_str(&event).map_err(|e| InvalidEvent(e.to_string()))?;
    let origin = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(_)) => RequestOrigin::ApiGatewayV1,
        _ => RequestOrigin::ApiGatewayV2,
    };
    Ok(gateway_response(&origin, handler(req).await))
}

/// Whether a byte may stand in a URI path or query as it is.
fn uri_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)
}

/// `text` with every byte a URI may not hold percent-encoded (a `%` that starts no escape
/// included).
fn escape_uri(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if uri_safe(b) || escape_start {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `host` makes a URL the way lambda_http builds one (it unwraps the parse).
fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && url::Url::parse(&format!("https://{host}/")).is_ok()
}

/// Whether a header would be fine for `lambda_http` (only `Host` and `X-Forwarded-Proto` go
/// into the URI it builds).
fn header_ok(name: &str, value: Option<&str>) -> bool {
    if name.eq_ignore_ascii_case("host") {
        value.is_some_and(host_ok)
    } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
        matches!(value, Some("http" | "https"))
    } else {
        true
    }
}

type Text<'a> = std::borrow::Cow<'a, str>;

/// A header map that only remembers whether every entry is fine, so a name given twice is
/// checked twice (a map would keep one of them).
struct HeadersOk(bool);

impl<'de> serde::Deserialize<'de> for HeadersOk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = HeadersOk;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header map")
            }
            fn visit_unit<E>(self) -> Result<HeadersOk, E> {
                Ok(HeadersOk(true))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HeadersOk, A::Error> {
                let mut ok = true;
                while let Some(name) = map.next_key::<Text<'de>>()? {
                    let value: HeaderValueText<'de> = map.next_value()?;
                    ok &= header_ok(&name, value.first());
                }
                Ok(HeadersOk(ok))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One header's value in a v2/v1 (`headers`) or v1 (`multiValueHeaders`) event.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum HeaderValueText<'a> {
    One(#[serde(borrow)] Text<'a>),
    Many(#[serde(borrow)] Vec<Text<'a>>),
    Null(()),
}

impl HeaderValueText<'_> {
    fn first(&self) -> Option<&str> {
        match self {
            Self::One(v) => Some(v),
            Self::Many(v) => v.first().map(|v| v.as_ref()),
            Self::Null(()) => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct RequestContextFields<'a> {
    #[serde(rename = "domainName", default, borrow)]
    domain_name: Option<Text<'a>>,
}

/// The fields of an event that `lambda_http` builds its URI and body from, read without
/// building a JSON tree: the common case, an event that needs no change, costs one scan.
#[derive(serde::Deserialize)]
struct UriFields<'a> {
    #[serde(rename = "rawQueryString", default, borrow)]
    raw_query: Option<Text<'a>>,
    #[serde(rename = "rawPath", default, borrow)]
    raw_path: Option<Text<'a>>,
    #[serde(default, borrow)]
    path: Option<Text<'a>>,
    #[serde(default)]
    headers: Option<HeadersOk>,
    #[serde(rename = "multiValueHeaders", default)]
    multi_value_headers: Option<HeadersOk>,
    #[serde(rename = "requestContext", default, borrow)]
    request_context: Option<RequestContextFields<'a>>,
    #[serde(rename = "isBase64Encoded", default)]
    base64: bool,
    #[serde(default, borrow)]
    body: Option<Text<'a>>,
}

fn base64_ok(body: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .is_ok()
}

impl UriFields<'_> {
    fn safe(&self) -> bool {
        let uri_ok = [&self.raw_query, &self.raw_path, &self.path]
            .into_iter()
            .flatten()
            .all(|text| text.bytes().all(uri_safe));
        let headers_ok = [&self.headers, &self.multi_value_headers]
            .into_iter()
            .flatten()
            .all(|h| h.0);
        let domain_ok = self
            .request_context
            .as_ref()
            .and_then(|c| c.domain_name.as_deref())
            .is_none_or(host_ok);
        let body_ok = !self.base64 || self.body.as_deref().is_none_or(base64_ok);
        uri_ok && headers_ok && domain_ok && body_ok
    }
}

/// Makes an API Gateway event safe for `lambda_http`, which panics (and with `panic = "abort"`
/// kills the function) on a query string or path with bytes a URI cannot hold, on a `Host`,
/// `X-Forwarded-Proto` or domain name that does not form a URL, and on a "base64" body that is
/// not. A client can send such query strings and headers; the gateway passes them on.
fn normalize_event(event: &str) -> Result<std::borrow::Cow<'_, str>, InvalidEvent> {
    if serde_json::from_str::<UriFields>(event).is_ok_and(|f| f.safe()) {
        return Ok(std::borrow::Cow::Borrowed(event));
    }
    let mut v: serde_json::Value =
        serde_json::from_str(event).map_err(|e| InvalidEvent(e.to_string()))?;
    let Some(fields) = v.as_object_mut() else {
        return Err(InvalidEvent("not a JSON object".into()));
    };
    for name in ["rawQueryString", "rawPath", "path"] {
        if let Some(serde_json::Value::String(text)) = fields.get_mut(name) {
            if !text.bytes().all(uri_safe) {
                *text = escape_uri(text);
            }
        }
    }
    for headers in ["headers", "multiValueHeaders"] {
        if let Some(serde_json::Value::Object(map)) = fields.get_mut(headers) {
            map.retain(|name, value| {
                let first = match value {
                    serde_json::Value::Array(values) => values.first().and_then(|v| v.as_str()),
                    other => other.as_str(),
                };
                header_ok(name, first)
            });
        }
    }
    if let Some(serde_json::Value::Object(context)) = fields.get_mut("requestContext") {
        if let Some(serde_json::Value::String(domain)) = context.get_mut("domainName") {
            if !host_ok(domain) {
                *domain = "localhost".into();
            }
        }
    }
    let base64 = fields.get("isBase64Encoded") == Some(&serde_json::Value::Bool(true));
    if base64 {
        if let Some(serde_json::Value::String(body)) = fields.get("body") {
            if !base64_ok(body) {
                return Err(InvalidEvent("the body is marked base64 but is not".into()));
            }
        }
    }
    Ok(std::borrow::Cow::Owned(v.to_string()))
}

/// The API Gateway response for `origin` (REST v1 or HTTP API v2) as JSON: what `sam local
/// invoke` prints and what a function returns when it is not run by `lambda_http::run`.
pub fn gateway_response(origin: &RequestOrigin, response: Response<Body>) -> serde_json::Value {
    let (parts, body) = response.into_parts();
    let (is_base64_encoded, body) = match body {
        Body::Empty => (false, None),
        Body::Text(t) => (false, Some(Body::Text(t))),
        Body::Binary(b) => (true, Some(Body::Binary(b))),
        _ => (false, None),
    };
    let status_code = i64::from(parts.status.as_u16());
    let value = match origin {
        RequestOrigin::ApiGatewayV1 => {
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = status_code;
            r.multi_value_headers = parts.headers;
            r.headers = HeaderMap::new();
            r.body = body;
            r.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(r)
        }
        _ => {
            let mut r = ApiGatewayV2httpResponse::default();
            r.status_code = status_code;
            r.headers = parts.headers;
            r.body = body;
            r.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(r)
        }
    };
    value.unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str) -> Request {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::Empty)
            .unwrap()
    }

    #[test]
    fn events_lambda_http_would_panic_on_are_made_safe() {
        let event = |query: &str, host: &str| {
            serde_json::json!({
                "version": "2.0", "routeKey": "$default", "rawPath": "/b r", "rawQueryString": query,
                "headers": {"host": host, "x-forwarded-proto": "ht tp"},
                "requestContext": {"http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1",
                    "sourceIp": "1.2.3.4", "userAgent": "x"}, "accountId": "1", "apiId": "a",
                    "domainName": "example.com", "domainPrefix": "e", "requestId": "r",
                    "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0},
                "isBase64Encoded": false
            })
            .to_string()
        };
        let unsafe_event = event("since=\"é{|}%zz", "bad host");
        let safe = normalize_event(&unsafe_event).unwrap();
        assert!(matches!(safe, std::borrow::Cow::Owned(_)));
        let fine = event("since=abc", "example.com")
            .replace("ht tp", "https")
            .replace("/b r", "/b");
        assert!(matches!(
            normalize_event(&fine).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
        let req = lambda_http::request::from_str(&safe).unwrap();
        assert_eq!(req.uri().query(), Some("since=%22%C3%A9%7B%7C%7D%25zz"));
        assert_eq!(req.uri().host(), Some("example.com"));
        assert_eq!(req.uri().path(), "/b%20r");
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!too_deep(b"[[[]]]", 3));
        assert!(too_deep(b"[[[[]]]]", 3));
        assert!(!too_deep(br#"{"a":"[[[[[[[["}"#, 3));
        assert!(!too_deep(br#"{"a":"\"[[[[[[[["}"#, 3));
    }

    #[test]
    fn credentials_in_the_query_are_refused() {
        assert!(query(&request("GET", "/broadcasts?since=abc&limit=3")).is_ok());
        assert!(query(&request("GET", "/broadcasts?client_key=x")).is_err());
        assert!(query(&request("GET", "/broadcasts?Token=x")).is_err());
        assert!(query(&request("GET", "/broadcasts?since=a&since=b")).is_err());
        assert!(query(&request("GET", "/broadcasts?since=%zz")).is_err());
        assert_eq!(
            query(&request("GET", "/b?since=a%2Bb+c")).unwrap(),
            [("since".to_string(), "a+b c".to_string())]
        );
    }

    #[test]
    fn hosts_and_bodies_lambda_http_would_panic_on_are_caught() {
        let event = |host: &str, domain: &str| {
            serde_json::json!({
                "version": "2.0", "routeKey": "$default", "rawPath": "/b", "rawQueryString": "",
                "headers": {"host": host},
                "requestContext": {"http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1",
                    "sourceIp": "1.2.3.4", "userAgent": "x"}, "accountId": "1", "apiId": "a",
                    "domainName": domain, "domainPrefix": "e", "requestId": "r",
                    "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0},
                "isBase64Encoded": false
            })
            .to_string()
        };
        for host in ["localhost:99999", "a:b:c", "[", "a b", ""] {
            for domain in ["example.com", "a b", "[", "x:99999"] {
                let raw = event(host, domain);
                let safe = normalize_event(&raw).unwrap();
                let req = lambda_http::request::from_str(&safe).unwrap();
                assert!(req.uri().host().is_some(), "{host} / {domain}");
            }
        }
        // Duplicate names: every value is checked, not just the one a map would keep.
        let twice = event("example.com", "example.com").replace(
            "\"host\":\"example.com\"",
            "\"host\":\"a:b:c\",\"host\":\"example.com\"",
        );
        assert!(matches!(
            normalize_event(&twice).unwrap(),
            std::borrow::Cow::Owned(_)
        ));
        let bad_body = event("example.com", "example.com").replace(
            "\"isBase64Encoded\":false",
            "\"isBase64Encoded\":true,\"body\":\"!!\"",
        );
        assert!(normalize_event(&bad_body).is_err());
    }

    #[test]
    fn a_named_stage_is_not_part_of_the_route() {
        let v2 = serde_json::json!({
            "version": "2.0", "routeKey": "GET /presence/{client}/{account_id}",
            "rawPath": "/prod/presence/wp/12", "rawQueryString": "", "headers": {},
            "requestContext": {"http": {"method": "GET", "path": "/prod/presence/wp/12",
                "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "x"},
                "accountId": "1", "apiId": "a", "domainName": "example.com", "domainPrefix": "e",
                "requestId": "r", "routeKey": "GET /presence/{client}/{account_id}",
                "stage": "prod", "time": "", "timeEpoch": 0},
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&v2.to_string()).unwrap();
        assert_eq!(segments(&req), ["presence", "wp", "12"]);
        let v1 = serde_json::json!({
            "resource": "/presence/{client}/{account_id}", "path": "/presence/wp/12",
            "httpMethod": "GET", "headers": {}, "multiValueHeaders": {},
            "requestContext": {"accountId": "1", "apiId": "a", "httpMethod": "GET",
                "path": "/prod/presence/wp/12", "stage": "prod", "requestId": "r",
                "resourcePath": "/presence/{client}/{account_id}", "identity": {}},
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&v1.to_string()).unwrap();
        assert_eq!(segments(&req), ["presence", "wp", "12"]);
    }

    #[test]
    fn routes_match_the_whole_path_after_the_stage() {
        let routes = [
            Route {
                method: Method::GET,
                pattern: &["presence", "{}", "{}"],
                name: "presence",
            },
            Route {
                method: Method::POST,
                pattern: &["heartbeat"],
                name: "heartbeat",
            },
        ];
        let (r, params) = route(&request("GET", "/presence/wp/12"), &routes).unwrap();
        assert_eq!(
            (r.name, params),
            ("presence", vec!["wp".to_string(), "12".to_string()])
        );
        assert_eq!(
            route(&request("GET", "/heartbeat"), &routes).err(),
            Some(ApiError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route(&request("GET", "/login"), &routes).err(),
            Some(ApiError::NotFound)
        );
    }

    #[test]
    fn errors_carry_their_headers() {
        let r = ApiError::RateLimited { retry_after: 7 }.into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let r = ApiError::ClientKeyReused.into_response();
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(
            ApiError::Unavailable.into_response().headers()["retry-after"],
            "1"
        );
    }
}
