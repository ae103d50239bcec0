//! The four functions wired to a throw-away redis-server, called the way Lambda calls them:
//! with API Gateway (or SQS) event JSON, answering with the gateway's response JSON.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bcast_shared::{Config, Store};
use bcast_testing::{Target, TestRedis};
use serde_json::{json, Value};

/// The four function apps, shareable across tasks.
#[derive(Clone)]
pub struct Functions(Arc<Apps>);

struct Apps {
    login: bcast_login::App,
    publish: bcast_publish::App,
    fetch: bcast_fetch::App,
    heartbeat: bcast_heartbeat::App,
}

pub struct Service {
    /// One redis-server, or a local cluster under `REDIS_CLUSTER=true`.
    pub server: TestRedis,
    pub store: Store,
    pub config: Config,
    /// The HS256 login secret of this run: random, never valid anywhere else.
    pub secret: String,
    functions: Functions,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

impl Service {
    pub fn start(vars: &[(&str, &str)]) -> Self {
        Self::on(TestRedis::start(), vars)
    }

    /// The four functions on a given Redis (a single server or a cluster).
    pub fn on(server: TestRedis, vars: &[(&str, &str)]) -> Self {
        let secret = random_hex(32);
        let mut all: Vec<(&str, &str)> = vec![("LOGIN_TOKEN_SECRET", &secret)];
        all.extend_from_slice(vars);
        let config = server.config(&all);
        let store = Store::open(&config).unwrap();
        let functions = Functions(Arc::new(Apps {
            login: bcast_login::App::new(&config, store.clone()).unwrap(),
            publish: bcast_publish::App::new(&config, store.clone()),
            fetch: bcast_fetch::App::new(&config, store.clone()),
            heartbeat: bcast_heartbeat::App::new(&config, store.clone()),
        }));
        Self {
            functions,
            server,
            store,
            config,
            secret,
        }
    }

    /// The function apps, to call from other tasks.
    pub fn functions(&self) -> Functions {
        self.functions.clone()
    }

    /// Runs `function` on one payload, as its Lambda would.
    pub async fn invoke_raw(
        &self,
        function: &str,
        event: &str,
    ) -> Result<Value, bcast_shared::http::InvalidEvent> {
        self.functions.invoke_raw(function, event).await
    }

    /// Runs `function` on one event that must be valid.
    pub async fn invoke(&self, function: &str, event: &str) -> Value {
        self.functions.invoke(function, event).await
    }

    /// Calls `function` with a request and reads the gateway response.
    pub async fn call(&self, function: &str, request: &Request) -> Reply {
        self.functions.call(function, request).await
    }

    /// A fresh single-use login token for (client, account).
    pub fn token(&self, client: &str, account: &str) -> String {
        bcast_login::mint(
            &self.secret,
            client,
            account,
            now_secs() + 60,
            Some(&random_hex(8)),
        )
        .unwrap()
    }

    /// A client key of a new session, made through the store.
    pub async fn client_key(&self, client: &str, account: &str) -> String {
        let account = bcast_shared::Account::parse(&self.config.clients, client, account).unwrap();
        self.store
            .login(account, None)
            .await
            .unwrap()
            .grant
            .client_key
            .reveal()
    }
}

impl Functions {
    /// Runs `function` on one payload, as its Lambda would.
    pub async fn invoke_raw(
        &self,
        function: &str,
        event: &str,
    ) -> Result<Value, bcast_shared::http::InvalidEvent> {
        let apps = &self.0;
        match function {
            "login" => bcast_login::invoke(&apps.login, event).await,
            "publish" => bcast_publish::invoke(&apps.publish, event).await,
            "fetch" => bcast_fetch::invoke(&apps.fetch, event).await,
            "heartbeat" => bcast_heartbeat::invoke(&apps.heartbeat, event).await,
            other => panic!("no function {other}"),
        }
    }

    /// Runs `function` on one event that must be valid.
    pub async fn invoke(&self, function: &str, event: &str) -> Value {
        self.invoke_raw(function, event)
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"))
    }

    /// Calls `function` with a request and reads the gateway response.
    pub async fn call(&self, function: &str, request: &Request) -> Reply {
        Reply::from(&self.invoke(function, &request.v2()).await)
    }
}

/// An HTTP request, written out as an API Gateway HTTP API (v2) event.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Request {
    pub fn new(method: &'static str, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Self {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw_body("application/json", &body.to_string())
    }

    pub fn raw_body(mut self, content_type: &str, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self.header("content-type", content_type)
    }

    pub fn v2(&self) -> String {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "test", "domainName": "test.local",
                "domainPrefix": "test", "requestId": "test", "routeKey": "$default",
                "stage": "$default", "time": "04/Dec/2026:20:00:00 +0000", "timeEpoch": 0,
                "http": {"method": self.method, "path": self.path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        if let Some(body) = &self.body {
            event["body"] = Value::String(body.clone());
        }
        event.to_string()
    }
}

/// A gateway response (v1 or v2) read back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl From<&Value> for Reply {
    fn from(v: &Value) -> Self {
        let status = v["statusCode"].as_u64().expect("statusCode") as u16;
        let mut headers = HashMap::new();
        if let Some(h) = v["headers"].as_object() {
            for (k, val) in h {
                headers.insert(
                    k.to_ascii_lowercase(),
                    val.as_str().unwrap_or("").to_owned(),
                );
            }
        }
        if let Some(h) = v["multiValueHeaders"].as_object() {
            for (k, vals) in h {
                let joined: Vec<&str> = vals
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                headers.insert(k.to_ascii_lowercase(), joined.join(", "));
            }
        }
        let body = match v["body"].as_str() {
            Some(text) if !text.is_empty() => serde_json::from_str(text).expect("JSON body"),
            _ => Value::Null,
        };
        Self {
            status,
            headers,
            body,
        }
    }
}

impl Reply {
    /// Checks what every response must carry, and for errors the problem+json shape.
    pub fn check_envelope(&self) {
        assert_eq!(
            self.headers.get("cache-control").map(String::as_str),
            Some("no-store"),
            "{self:?}"
        );
        if self.status >= 400 {
            assert_eq!(
                self.headers["content-type"], "application/problem+json",
                "{self:?}"
            );
            for field in ["type", "title", "status", "detail", "code"] {
                assert!(
                    !self.body[field].is_null(),
                    "problem without {field}: {self:?}"
                );
            }
            assert_eq!(self.body["status"], self.status);
            if self.status == 401 {
                assert_eq!(
                    self.headers["www-authenticate"],
                    "Bearer error=\"invalid_token\""
                );
            }
            if self.status == 429 || self.status == 503 {
                assert!(self.headers.contains_key("retry-after"), "{self:?}");
            }
        } else if self.status != 204 {
            assert_eq!(self.headers["content-type"], "application/json", "{self:?}");
        }
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn expect(self, status: u16, code: Option<&str>) -> Self {
        self.check_envelope();
        assert_eq!(self.status, status, "{self:?}");
        if let Some(code) = code {
            assert_eq!(self.code(), code, "{self:?}");
        }
        self
    }
}
