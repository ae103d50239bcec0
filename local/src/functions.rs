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
}

/// Where API Gateway sends a request: the function, and whether the route is backend-facing
/// (`AWS_IAM` in template.yaml; bcast-local serves those to loopback clients only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub function: Function,
    pub backend: bool,
}

/// The route `path` matches, exactly as API Gateway matches template.yaml's routes: the whole
/// path, segment by segment (`{}` is one parameter); it also says which routes are
/// backend-facing, which only loopback clients may call here.
pub fn route(path: &str) -> Option<Target> {
    const ROUTES: [(&[&str], Function, bool); 7] = [
        (&["login"], Function::Login, false),
        (&["logout"], Function::Login, false),
        (&["sessions", "{}", "{}"], Function::Login, true),
        (&["publish"], Function::Publish, true),
        (&["broadcasts"], Function::Fetch, false),
        (&["heartbeat"], Function::Heartbeat, false),
        (&["presence", "{}", "{}"], Function::Heartbeat, true),
    ];
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    ROUTES.iter().find_map(|(pattern, function, backend)| {
        let matches = pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| {
                if *p == "{}" {
                    *s != "." && *s != ".."
                } else {
                    p == s
                }
            });
        matches.then_some(Target {
            function: *function,
            backend: *backend,
        })
    })
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
        let to = |path| route(path).map(|t| (t.function, t.backend));
        assert_eq!(to("/login"), Some((Function::Login, false)));
        assert_eq!(to("/logout"), Some((Function::Login, false)));
        assert_eq!(to("/sessions/wp/1"), Some((Function::Login, true)));
        assert_eq!(to("/publish"), Some((Function::Publish, true)));
        assert_eq!(to("/publish/"), Some((Function::Publish, true)));
        assert_eq!(to("/broadcasts"), Some((Function::Fetch, false)));
        assert_eq!(to("/heartbeat"), Some((Function::Heartbeat, false)));
        assert_eq!(to("/presence/wp/1"), Some((Function::Heartbeat, true)));
        assert_eq!("fetch".parse::<Function>(), Ok(Function::Fetch));
        assert!("sqs".parse::<Function>().is_err());
    }

    #[test]
    fn only_whole_paths_match() {
        for path in [
            "/",
            "/nope",
            "/heartbeat/presence/wp/1",
            "/login/sessions/wp/1",
            "/prod/publish",
            "/broadcasts/x",
            "/presence/wp",
            "/presence/wp/1/2",
            "/presence/../1",
            "/%70ublish",
            "/_local/token",
        ] {
            assert_eq!(route(path), None, "{path}");
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
