//! What API Gateway does for a Lambda, done locally: an HTTP request becomes an HTTP API
//! (payload 2.0) event, and the function's response JSON becomes the HTTP response.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hyper::http::header::{HeaderName, HeaderValue};
use hyper::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

/// The parts of an HTTP request an event is made of.
pub struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub peer: IpAddr,
}

/// The HTTP API (payload format 2.0) event API Gateway would send for `req`: header names in
/// lower case with repeated headers joined by commas, cookies in `cookies`, a body that is not
/// UTF-8 in base64.
pub fn v2_event(req: &Incoming<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in req.headers.keys() {
        let values: Vec<&str> = req
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            continue;
        }
        if name == hyper::http::header::COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("localhost")
        .to_owned();
    let user_agent = headers
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (body, base64) = match std::str::from_utf8(req.body) {
        _ if req.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(req.body)),
            true,
        ),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let request_id = hex::encode(rand::random::<[u8; 16]>());
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": host.clone(),
            "domainPrefix": host.split('.').next().unwrap_or("localhost"),
            "http": {
                "method": req.method.as_str(),
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.peer.to_string(),
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": clf_time(now.as_secs()),
            "timeEpoch": now.as_millis() as u64,
        },
        "isBase64Encoded": base64,
    });
    if let Some(fields) = event.as_object_mut() {
        if !body.is_null() {
            fields.insert("body".into(), body);
        }
        if !cookies.is_empty() {
            fields.insert("cookies".into(), json!(cookies));
        }
    }
    event
}

/// Unix seconds as API Gateway's `requestContext.time`: `04/Dec/2026:20:00:00 +0000`.
pub fn clf_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// An HTTP response read back from a function's API Gateway response JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Reads an API Gateway response (v2, or v1 with `multiValueHeaders`) as API Gateway would
/// send it to the client.
pub fn from_gateway_response(response: &Value) -> Result<Outgoing, String> {
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("the response has no valid statusCode")?;
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &Value| -> Result<(), String> {
        let Some(text) = value.as_str() else {
            return Ok(());
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(text).map_err(|e| e.to_string())?;
        headers.append(name, value);
        Ok(())
    };
    let multi = response
        .get("multiValueHeaders")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty());
    if let Some(multi) = multi {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                add(name, value)?;
            }
        }
    }
    if let Some(single) = response.get("headers").and_then(Value::as_object) {
        for (name, value) in single {
            if multi.is_some_and(|m| m.contains_key(name)) {
                continue;
            }
            add(name, value)?;
        }
    }
    for cookie in response
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add("set-cookie", cookie)?;
    }
    let body = match response.get("body").and_then(Value::as_str) {
        None => Vec::new(),
        Some(text) if response.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("body is not base64: {e}"))?
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    Ok(Outgoing {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            method: &Method::POST,
            path: "/publish",
            query: "a=1&b=%20",
            headers,
            body,
            peer: IpAddr::from([127, 0, 0, 1]),
        }
    }

    #[test]
    fn requests_become_v2_events() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.append("cookie", HeaderValue::from_static("c=1; d=2"));
        let event = v2_event(&incoming(&headers, br#"{"x":1}"#));
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/publish");
        assert_eq!(event["rawQueryString"], "a=1&b=%20");
        assert_eq!(event["headers"]["x-multi"], "a,b");
        assert_eq!(event["headers"]["host"], "127.0.0.1:3000");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["c=1", "d=2"]));
        assert_eq!(event["body"], r#"{"x":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        // lambda_http reads it back as the same request.
        let req = lambda_http_request(&event);
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().path(), "/publish");
        assert_eq!(req.uri().query(), Some("a=1&b=%20"));
        assert_eq!(req.headers()["cookie"], "c=1; d=2");
        assert_eq!(req.headers()["x-multi"], "a,b");
        match req.body() {
            lambda_http::Body::Text(t) => assert_eq!(t, r#"{"x":1}"#),
            other => panic!("body {other:?}"),
        }
    }

    fn lambda_http_request(event: &Value) -> lambda_http::Request {
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn binary_bodies_travel_in_base64() {
        let headers = HeaderMap::new();
        let event = v2_event(&incoming(&headers, &[0xff, 0x00, 0x80]));
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "/wCA");
        let empty = v2_event(&incoming(&headers, b""));
        assert!(empty.get("body").is_none());
        assert_eq!(empty["requestContext"]["domainName"], "localhost");
    }

    #[test]
    fn request_times_are_in_api_gateway_format() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(1_796_328_000), "03/Dec/2026:20:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn gateway_responses_become_http_responses() {
        let v2 = json!({
            "statusCode": 429,
            "headers": {"content-type": "application/problem+json", "retry-after": "7"},
            "multiValueHeaders": {},
            "body": "{\"code\":\"rate_limited\"}",
            "isBase64Encoded": false,
            "cookies": []
        });
        let out = from_gateway_response(&v2).unwrap();
        assert_eq!(out.status, 429);
        assert_eq!(out.headers["retry-after"], "7");
        assert_eq!(out.body, br#"{"code":"rate_limited"}"#);

        let v1 = json!({
            "statusCode": 204,
            "headers": {},
            "multiValueHeaders": {"cache-control": ["no-store"], "x": ["1", "2"]},
            "isBase64Encoded": false
        });
        let out = from_gateway_response(&v1).unwrap();
        assert_eq!(out.status, 204);
        assert_eq!(out.headers.get_all("x").iter().count(), 2);
        assert!(out.body.is_empty());

        let binary = json!({"statusCode": 200, "body": "/wCA", "isBase64Encoded": true});
        assert_eq!(
            from_gateway_response(&binary).unwrap().body,
            [0xff, 0x00, 0x80]
        );
        assert!(from_gateway_response(&json!({"statusCode": 99})).is_err());
        assert!(from_gateway_response(&json!({})).is_err());
    }
}
