//! Configuration from the environment, validated once at cold start.
//!
//! An invalid value is an error that names the variable, so a misconfigured function stops at
//! init instead of failing on its first request.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::keys::ClientNames;

/// A configuration value that is wrong; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where Redis is and how to talk to it. `Debug` hides a password in the URL.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` (TLS).
    pub url: String,
    pub cluster: bool,
    pub auth_secret_arn: Option<String>,
    /// AUTH user and password, loaded from `REDIS_AUTH_SECRET_ARN` at cold start.
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub iam_user: Option<String>,
    pub iam_cache_name: Option<String>,
    /// The IAM cache is ElastiCache Serverless (`REDIS_IAM_SERVERLESS`; by default read from
    /// the endpoint's host name).
    pub iam_serverless: bool,
    /// PEM file of the CA that signed a `rediss://` server's certificate, when it is not a
    /// public one (self-hosted Redis, tests).
    pub tls_ca_file: Option<String>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

/// `url` with any `user:password@` replaced, for printing.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted_url(&self.url))
            .field("cluster", &self.cluster)
            .field("auth_secret_arn", &self.auth_secret_arn)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("iam_user", &self.iam_user)
            .field("iam_cache_name", &self.iam_cache_name)
            .field("iam_serverless", &self.iam_serverless)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// The limits of the broadcast store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// How long an event is kept after it was published, and the key after the last publish.
    pub ttl_secs: u64,
    /// How many events a key keeps; older ones are trimmed on publish.
    pub max_events: u64,
    /// The largest serialized `data` of one event.
    pub max_event_bytes: usize,
}

/// Sessions, client keys and their rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A client key lives this long from the last authenticated request.
    pub key_ttl_secs: u64,
    /// A session ends this long after login, however active.
    pub max_age_secs: u64,
    pub rotation: bool,
    /// How long a rotated-out key still answers with the same successor.
    pub grace_secs: u64,
    pub heartbeat_interval_secs: u64,
    pub presence_timeout_secs: u64,
    /// Requests a session may make in any 60 s window.
    pub rate_limit_per_min: u64,
}

/// How login tokens are verified.
#[derive(Debug, Clone)]
pub struct LoginTokenConfig {
    pub secret: Option<Secret>,
    pub secret_arn: Option<String>,
    pub public_key_pem: Option<String>,
    pub max_age_secs: u64,
}

/// The largest `BCAST_MAX_EVENT_BYTES` accepted.
const MAX_EVENT_BYTES_LIMIT: u64 = 1024 * 1024;

/// Everything the functions read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub redis: RedisConfig,
    pub clients: ClientNames,
    pub events: EventLimits,
    pub sessions: SessionPolicy,
    pub login: LoginTokenConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let url = env.string("REDIS_URL", "redis://127.0.0.1:6379");
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError {
                variable: "REDIS_URL",
                reason: "must start with redis:// or rediss://".into(),
            });
        }
        let redis = RedisConfig {
            url: url.clone(),
            cluster: env.flag("REDIS_CLUSTER", false)?,
            auth_secret_arn: env.optional("REDIS_AUTH_SECRET_ARN"),
            username: None,
            password: None,
            iam_user: env.optional("REDIS_IAM_USER"),
            iam_cache_name: env.optional("REDIS_IAM_CACHE_NAME"),
            iam_serverless: env.flag("REDIS_IAM_SERVERLESS", url.contains(".serverless."))?,
            tls_ca_file: env.optional("REDIS_TLS_CA_FILE"),
            connect_timeout: Duration::from_millis(env.number("REDIS_CONNECT_TIMEOUT_MS", 1000)?),
            response_timeout: Duration::from_millis(env.number("REDIS_RESPONSE_TIMEOUT_MS", 1000)?),
        };
        if redis.iam_user.is_some() != redis.iam_cache_name.is_some() {
            return Err(ConfigError {
                variable: "REDIS_IAM_CACHE_NAME",
                reason: "REDIS_IAM_USER and REDIS_IAM_CACHE_NAME go together".into(),
            });
        }

        let clients = match env.optional("BCAST_CLIENTS") {
            None => ClientNames::default(),
            Some(list) => {
                ClientNames::new(list.split(',').map(str::trim)).map_err(|reason| ConfigError {
                    variable: "BCAST_CLIENTS",
                    reason,
                })?
            }
        };

        let max_event_bytes = env.number("BCAST_MAX_EVENT_BYTES", 65536)?;
        if max_event_bytes > MAX_EVENT_BYTES_LIMIT {
            return Err(ConfigError {
                variable: "BCAST_MAX_EVENT_BYTES",
                reason: format!(
                    "at most {MAX_EVENT_BYTES_LIMIT} (a page of events must fit a Lambda response)"
                ),
            });
        }
        let events = EventLimits {
            ttl_secs: env.number("BCAST_TTL_SECS", 600)?,
            max_events: env.number("BCAST_MAX_EVENTS", 100)?,
            max_event_bytes: max_event_bytes as usize,
        };

        let sessions = SessionPolicy {
            key_ttl_secs: env.number("CLIENT_KEY_TTL_SECS", 3600)?,
            max_age_secs: env.number("SESSION_MAX_AGE_SECS", 86400)?,
            rotation: env.flag("ROTATION", true)?,
            grace_secs: env.number_or_zero("ROTATION_GRACE_SECS", 10)?,
            heartbeat_interval_secs: env.number("HEARTBEAT_INTERVAL_SECS", 30)?,
            presence_timeout_secs: env.number("PRESENCE_TIMEOUT_SECS", 90)?,
            rate_limit_per_min: env.number("RATE_LIMIT_PER_MIN", 120)?,
        };

        let login = LoginTokenConfig {
            secret: env.optional("LOGIN_TOKEN_SECRET").map(Secret::new),
            secret_arn: env.optional("LOGIN_TOKEN_SECRET_ARN"),
            public_key_pem: env.optional("LOGIN_TOKEN_PUBLIC_KEY"),
            max_age_secs: env.number("LOGIN_TOKEN_MAX_AGE_SECS", 300)?,
        };

        Ok(Self {
            redis,
            clients,
            events,
            sessions,
            login,
        })
    }
}

/// Variable lookup with the parsing rules shared by every setting.
struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// A set, non-blank value.
    fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.optional(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| default.to_owned())
    }

    fn parse_number(&self, name: &'static str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(n) if n >= min && n <= 1_000_000_000 => Ok(n),
            _ => Err(ConfigError {
                variable: name,
                reason: format!("{raw:?} is not a whole number from {min} to 1000000000"),
            }),
        }
    }

    /// A positive whole number.
    fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.parse_number(name, default, 1)
    }

    fn number_or_zero(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.parse_number(name, default, 0)
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" => Ok(true),
            "0" | "false" | "off" | "no" => Ok(false),
            _ => Err(ConfigError {
                variable: name,
                reason: format!("{raw:?} is not on/off or true/false"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_specs() {
        let c = config(&[]).unwrap();
        assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
        assert!(!c.redis.cluster);
        assert_eq!(c.clients.names(), ["wp", "api", "app"]);
        assert_eq!(
            c.events,
            EventLimits {
                ttl_secs: 600,
                max_events: 100,
                max_event_bytes: 65536
            }
        );
        assert_eq!(c.sessions.key_ttl_secs, 3600);
        assert_eq!(c.sessions.max_age_secs, 86400);
        assert!(c.sessions.rotation);
        assert_eq!(c.sessions.grace_secs, 10);
        assert_eq!(c.sessions.heartbeat_interval_secs, 30);
        assert_eq!(c.sessions.presence_timeout_secs, 90);
        assert_eq!(c.sessions.rate_limit_per_min, 120);
        assert_eq!(c.login.max_age_secs, 300);
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("BCAST_TTL_SECS", "ten"),
            ("BCAST_MAX_EVENTS", "0"),
            ("BCAST_MAX_EVENTS", "-5"),
            ("ROTATION", "maybe"),
            ("REDIS_CLUSTER", "2"),
            ("REDIS_URL", "http://x"),
            ("BCAST_CLIENTS", "wp,wpx"),
            ("RATE_LIMIT_PER_MIN", "1.5"),
            ("BCAST_MAX_EVENT_BYTES", "2000000"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn values_are_read() {
        let c = config(&[
            ("ROTATION", "off"),
            ("BCAST_CLIENTS", "web, ios"),
            ("ROTATION_GRACE_SECS", "0"),
            ("LOGIN_TOKEN_SECRET", "s3cret"),
        ])
        .unwrap();
        assert!(!c.sessions.rotation);
        assert_eq!(c.sessions.grace_secs, 0);
        assert_eq!(c.clients.names(), ["web", "ios"]);
        assert!(!format!("{c:?}").contains("s3cret"));
        let with_password = config(&[("REDIS_URL", "rediss://bcast:hunter22@cache:6379")]).unwrap();
        let shown = format!("{with_password:?}");
        assert!(
            !shown.contains("hunter22") && shown.contains("rediss://***@cache:6379"),
            "{shown}"
        );
    }
}
