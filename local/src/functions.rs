//! The four functions, built once as their Lambdas build them at cold start, sharing one Redis
//! connection, and the local configuration around them.

use std::fmt;
use std::str::FromStr;

use bcast_shared::config::ConfigError;
use bcast_shared::http::InvalidEvent;
use bcast_shared::{Config, Store};
use serde_json::Value;

/// The login secret bcast-local uses when none is configured. It is public (it is in this
/// repository): tokens signed with it prove nothing, so it is for a developer's machine only.
pub const DEV_LOGIN_SECRET: &str = "bcast-local-development-login-secret-do-not-deploy";

/// One of the four functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Login,
    Publish,
    Fetch,
    Heartbeat,
}

impl Function {
    pub const ALL: [Function; 4] = [Self::Login, Self::Publish, Self::Fetch, Self::Heartbeat];

    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Publish => "publish",
            Self::Fetch => "fetch",
            Self::Heartbeat => "heartbeat",
        }
    }

    /// The function API Gateway routes `path` to (template.yaml's routes), by its first
    /// segment. Unknown paths go to login, whose router answers 404.
    pub fn for_path(path: &str) -> Self {
        match path.split('/').find(|s| !s.is_empty()).unwrap_or("") {
            "publish" => Self::Publish,
            "broadcasts" => Self::Fetch,
            "heartbeat" | "presence" => Self::Heartbeat,
            _ => Self::Login,
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Function {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown function {s:?}: expected login, publish, fetch or heartbeat")
            })
    }
}

/// Whether `path` is a backend-facing route (`AWS_IAM` in template.yaml), which bcast-local
/// serves to loopback clients only. `/_local/` (token minting) is one too.
pub fn is_backend_path(path: &str) -> bool {
    matches!(
        path.split('/').find(|s| !s.is_empty()).unwrap_or(""),
        "publish" | "presence" | "sessions" | "_local"
    )
}

/// The configuration of a local run.
pub struct LocalConfig {
    pub config: Config,
    /// True when no login secret or key was configured and [`DEV_LOGIN_SECRET`] is in use.
    pub dev_secret: bool,
}

impl LocalConfig {
    /// The functions' configuration from `lookup` (the environment), with `REDIS_URL` replaced
    /// by `redis_url` when given, and the development login secret when neither
    /// `LOGIN_TOKEN_SECRET` nor `LOGIN_TOKEN_PUBLIC_KEY` is set.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        redis_url: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let set = |name: &str| lookup(name).is_some_and(|v| !v.trim().is_empty());
        let dev_secret = !set("LOGIN_TOKEN_SECRET") && !set("LOGIN_TOKEN_PUBLIC_KEY");
        let config = Config::from_lookup(|name| match name {
            "REDIS_URL" if redis_url.is_some() => redis_url.map(str::to_owned),
            "LOGIN_TOKEN_SECRET" if dev_secret => Some(DEV_LOGIN_SECRET.to_owned()),
            _ => lookup(name),
        })?;
        Ok(Self { config, dev_secret })
    }

    /// The HS256 secret login tokens are signed with, when there is one.
    pub fn signing_secret(&self) -> Option<&str> {
        self.config.login.secret.as_ref().map(|s| s.expose())
    }

    /// The loud notice printed whenever the development secret is in use.
    pub fn dev_secret_warning() -> &'static str {
        "\
################################################################################
#  WARNING: LOGIN_TOKEN_SECRET is not set, so bcast-local uses its built-in    #
#  DEVELOPMENT login secret. It is public: anyone can mint a login token for   #
#  any account with it. Use it on your own machine only; set                   #
#  LOGIN_TOKEN_SECRET (at least 32 bytes) to use a secret of your own.         #
################################################################################"
    }
}

/// An error building the functions.
#[derive(Debug)]
pub struct SetupError(pub String);

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// The four functions' state, as each Lambda builds it at cold start.
pub struct Functions {
    login: bcast_login::App,
    publish: bcast_publish::App,
    fetch: bcast_fetch::App,
    heartbeat: bcast_heartbeat::App,
    store: Store,
}

impl Functions {
    /// Builds every function on one lazy Redis connection. Must run inside a tokio runtime.
    pub fn new(config: &Config) -> Result<Self, SetupError> {
        let store = Store::open(config).map_err(|e| SetupError(format!("redis: {e}")))?;
        Ok(Self {
            login: bcast_login::App::new(config, store.clone())
                .map_err(|e| SetupError(e.to_string()))?,
            publish: bcast_publish::App::new(config, store.clone()),
            fetch: bcast_fetch::App::new(config, store.clone()),
            heartbeat: bcast_heartbeat::App::new(config, store.clone()),
            store,
        })
    }

    /// Runs `function` on one raw Lambda payload, exactly as its Lambda's `main` does.
    pub async fn invoke(&self, function: Function, payload: &str) -> Result<Value, InvalidEvent> {
        match function {
            Function::Login => bcast_login::invoke(&self.login, payload).await,
            Function::Publish => bcast_publish::invoke(&self.publish, payload).await,
            Function::Fetch => bcast_fetch::invoke(&self.fetch, payload).await,
            Function::Heartbeat => bcast_heartbeat::invoke(&self.heartbeat, payload).await,
        }
    }

    /// Checks that Redis answers (loads the scripts).
    pub async fn check_redis(&self) -> Result<(), String> {
        self.store.load_scripts().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn paths_go_to_the_function_template_yaml_names() {
        assert_eq!(Function::for_path("/login"), Function::Login);
        assert_eq!(Function::for_path("/logout"), Function::Login);
        assert_eq!(Function::for_path("/sessions/wp/1"), Function::Login);
        assert_eq!(Function::for_path("/publish"), Function::Publish);
        assert_eq!(Function::for_path("/broadcasts"), Function::Fetch);
        assert_eq!(Function::for_path("/heartbeat"), Function::Heartbeat);
        assert_eq!(Function::for_path("/presence/wp/1"), Function::Heartbeat);
        assert_eq!(Function::for_path("/nope"), Function::Login);
        assert_eq!("fetch".parse::<Function>(), Ok(Function::Fetch));
        assert!("sqs".parse::<Function>().is_err());
    }

    #[test]
    fn backend_routes_are_known() {
        for path in [
            "/publish",
            "/presence/wp/1",
            "/sessions/wp/1",
            "/_local/token",
            "//publish",
        ] {
            assert!(is_backend_path(path), "{path}");
        }
        for path in [
            "/",
            "/login",
            "/logout",
            "/broadcasts",
            "/heartbeat",
            "/bcast.js",
        ] {
            assert!(!is_backend_path(path), "{path}");
        }
    }

    fn local(vars: &[(&str, &str)], redis: Option<&str>) -> LocalConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LocalConfig::from_lookup(|n| vars.get(n).cloned(), redis).unwrap()
    }

    #[test]
    fn the_dev_secret_is_used_only_when_nothing_is_configured() {
        let c = local(&[], Some("redis://127.0.0.1:1"));
        assert!(c.dev_secret);
        assert_eq!(c.signing_secret(), Some(DEV_LOGIN_SECRET));
        assert_eq!(c.config.redis.url, "redis://127.0.0.1:1");
        assert!(DEV_LOGIN_SECRET.len() >= 32);

        let own = "x".repeat(40);
        let c = local(
            &[
                ("LOGIN_TOKEN_SECRET", &own),
                ("REDIS_URL", "redis://127.0.0.1:6390"),
            ],
            None,
        );
        assert!(!c.dev_secret);
        assert_eq!(c.signing_secret(), Some(own.as_str()));
        assert_eq!(c.config.redis.url, "redis://127.0.0.1:6390");

        let c = local(&[("LOGIN_TOKEN_PUBLIC_KEY", "pem")], None);
        assert!(!c.dev_secret);
        assert_eq!(c.signing_secret(), None);
    }
}
