//! The Redis store: every operation of the product as one script call, one round trip.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, RedisError, RedisFuture, Script, ServerErrorKind, Value};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::aws::IamAuth;
use crate::client_key::{random_bytes, ClientKey};
use crate::config::{Config, EventLimits, RedisConfig, SessionPolicy};
use crate::cursor::Cursor;
use crate::domain::{
    Event, Grant, Login, NewEvent, Page, Presence, Published, Pulse, Retention, SeenSession,
    MAX_BATCH,
};
use crate::keys::{Account, SessionId};
use crate::scripts::Scripts;

/// Redis could not do what was asked. Requests map this to 503.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(&'static str),
    #[error("{0}")]
    Config(String),
}

/// A publish that cannot be done as asked.
#[derive(Debug, Error)]
pub enum PublishError {
    #[error("a batch needs at least one event")]
    Empty,
    #[error("a batch holds at most {MAX_BATCH} events")]
    TooMany,
    #[error("event {index}: data is {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        index: usize,
        bytes: usize,
        limit: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an authenticated request or a login was refused.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("unknown or expired client key")]
    ClientKeyInvalid,
    #[error("a rotated-out client key was used again; the session is revoked")]
    ClientKeyReused,
    #[error("the session passed its maximum age")]
    SessionExpired,
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("this login token was already used")]
    TokenReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One connection per process, standalone or cluster, cloned cheaply per request.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Sets the connection up without I/O; it connects on the first command and reconnects by
    /// itself after a drop. `iam` supplies ElastiCache IAM tokens as credentials.
    pub fn open(config: &RedisConfig, iam: Option<IamAuth>) -> Result<Self, StoreError> {
        let tls = config.url.starts_with("rediss://");
        if tls {
            // The first caller wins; a provider already installed is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certs =
            match (&config.tls_ca_file, tls) {
                (Some(path), true) => Some(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(path).map_err(|e| {
                        StoreError::Config(format!("REDIS_TLS_CA_FILE {path}: {e}"))
                    })?),
                }),
                _ => None,
            };
        let mut info = config.url.as_str().into_connection_info()?;
        if let Some(password) = &config.password {
            let mut settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            if let Some(user) = &config.username {
                settings = settings.set_username(user);
            }
            info = info.set_redis_settings(settings);
        }
        if config.cluster {
            // Few, short retries: a request must end (in a 503 at worst) within its time
            // budget; `Store::run` retries what is safe to repeat.
            let mut builder = redis::cluster::ClusterClientBuilder::new(vec![info])
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(3)
                .min_retry_wait(25)
                .max_retry_wait(250);
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            if let Some(iam) = iam {
                builder = builder.set_credentials_provider(iam);
            }
            let client = builder.build()?;
            Ok(Self::Cluster(
                client.get_pending_async_connection_with_config(Default::default()),
            ))
        } else {
            let client = match certs {
                Some(certs) => redis::Client::build_with_tls(info, certs)?,
                None => redis::Client::open(info)?,
            };
            let mut manager_config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout))
                .set_number_of_retries(2);
            if let Some(iam) = iam {
                manager_config = manager_config.set_credentials_provider(iam);
            }
            Ok(Self::Single(ConnectionManager::new_lazy_with_config(
                client,
                manager_config,
            )?))
        }
    }
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Metadata outlives events by far, so `missed` stays exact for clients idle much longer than
/// the event TTL.
const META_TTL_SECS: u64 = 7 * 24 * 3600;

/// The broadcast store. Cheap to clone; build it once per cold start.
#[derive(Clone)]
pub struct Store {
    conn: Connection,
    scripts: Arc<Scripts>,
    limits: EventLimits,
    policy: SessionPolicy,
}

/// One script call: the script and its keys and arguments.
struct Call<'a> {
    script: &'a Script,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

impl<'a> Call<'a> {
    fn new(script: &'a Script, keys: Vec<String>) -> Self {
        Self {
            script,
            keys,
            args: Vec::new(),
        }
    }

    fn arg(mut self, arg: impl redis::ToRedisArgs) -> Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn evalsha(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }
}

fn since_arg(since: Option<Cursor>) -> i64 {
    since.map_or(-1, |c| c.micros() as i64)
}

impl Store {
    pub fn new(conn: Connection, config: &Config) -> Self {
        Self {
            conn,
            scripts: Arc::new(Scripts::new()),
            limits: config.events,
            policy: config.sessions,
        }
    }

    /// Opens the connection described by `config.redis` (no I/O until the first request).
    pub fn open(config: &Config) -> Result<Self, StoreError> {
        Self::open_with(config, None)
    }

    /// Like [`Store::open`], authenticating with ElastiCache IAM tokens from `iam`.
    pub fn open_with(config: &Config, iam: Option<IamAuth>) -> Result<Self, StoreError> {
        Ok(Self::new(Connection::open(&config.redis, iam)?, config))
    }

    /// Runs the calls: one pipeline on a single node. A cluster pipeline must stay in one slot
    /// and each call is one account's slot, so there the calls go out side by side instead.
    ///
    /// A failure that comes fast is retried with backoff, at most twice: errors that say the
    /// calls did not run (`READONLY`, `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, a refused
    /// connection) for every call, and a connection lost mid-call only for calls that are safe
    /// to repeat (all but login and logout: publishes carry their ids, so a repeat is a
    /// duplicate; a repeated rotation is answered by the grace period with the same successor).
    /// A timeout is not retried: the response timeout is the request's budget. `READONLY` on a
    /// single node means the endpoint now names another server (a failover): the connection is
    /// closed so the retry reconnects. A cluster connection follows `MOVED`, `ASK` and
    /// `READONLY` itself.
    async fn run(&self, calls: &[Call<'_>]) -> Result<Vec<Value>, StoreError> {
        const BACKOFF_MS: [u64; 2] = [25, 100];
        const FAST: std::time::Duration = std::time::Duration::from_millis(250);
        let repeatable = calls.iter().all(|c| {
            !std::ptr::eq(c.script, &self.scripts.login)
                && !std::ptr::eq(c.script, &self.scripts.logout)
        });
        let mut attempt = 0;
        loop {
            let started = tokio::time::Instant::now();
            let result = if matches!(self.conn, Connection::Cluster(_)) && calls.len() > 1 {
                let replies = futures::future::join_all(
                    calls.iter().map(|c| self.pipeline(std::slice::from_ref(c))),
                )
                .await;
                let mut values = Vec::with_capacity(calls.len());
                let mut failed = None;
                for reply in replies {
                    match reply {
                        Ok(v) => values.extend(v),
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
                failed.map_or(Ok(values), Err)
            } else {
                self.pipeline(calls).await
            };
            let e = match result {
                Err(StoreError::Redis(e)) => e,
                other => return other,
            };
            let not_run = e.is_connection_refusal()
                || matches!(
                    e.kind(),
                    redis::ErrorKind::Server(
                        ServerErrorKind::ReadOnly
                            | ServerErrorKind::BusyLoading
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::ClusterDown
                            | ServerErrorKind::MasterDown
                    )
                );
            let lost = e.is_connection_dropped() && !e.is_timeout();
            if attempt >= BACKOFF_MS.len()
                || started.elapsed() > FAST
                || !(not_run || (lost && repeatable))
            {
                return Err(e.into());
            }
            if e.kind() == redis::ErrorKind::Server(ServerErrorKind::ReadOnly) {
                if let Connection::Single(conn) = &self.conn {
                    // The server closes the connection after QUIT; the PING that then fails
                    // makes the manager reconnect, resolving the endpoint again.
                    let mut conn = conn.clone();
                    let _: redis::RedisResult<Value> =
                        redis::cmd("QUIT").query_async(&mut conn).await;
                    let _: redis::RedisResult<Value> =
                        redis::cmd("PING").query_async(&mut conn).await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(BACKOFF_MS[attempt])).await;
            attempt += 1;
        }
    }

    /// Runs the calls in one pipeline. A script the server has lost (flush, failover) is loaded
    /// and only the calls that failed for that reason are sent again.
    async fn pipeline(&self, calls: &[Call<'_>]) -> Result<Vec<Value>, StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for call in calls {
            pipe.add_command(call.evalsha());
        }
        let replies: Vec<redis::RedisResult<Value>> = pipe.query_async(&mut conn).await?;
        if replies.len() != calls.len() {
            return Err(StoreError::Reply(
                "pipeline answered a different number of replies",
            ));
        }
        let mut values = Vec::with_capacity(calls.len());
        let mut retry = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            match reply {
                Ok(value) => values.push(value),
                Err(e) if e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                    retry.push(i);
                    values.push(Value::Nil);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !retry.is_empty() {
            let mut loaded: Vec<&str> = Vec::new();
            for &i in &retry {
                let script = calls[i].script;
                if !loaded.contains(&script.get_hash()) {
                    script.load_async(&mut conn).await?;
                    loaded.push(script.get_hash());
                }
            }
            let mut pipe = redis::pipe();
            for &i in &retry {
                pipe.add_command(calls[i].evalsha());
            }
            let again: Vec<Value> = pipe.query_async(&mut conn).await?;
            for (i, value) in retry.into_iter().zip(again) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    async fn run_one(&self, call: Call<'_>) -> Result<Reply, StoreError> {
        let value = self
            .run(std::slice::from_ref(&call))
            .await?
            .pop()
            .ok_or(StoreError::Reply("no reply"))?;
        Reply::new(value)
    }

    /// Publishes a batch: one script call per account, all in one pipeline. Results come back
    /// in input order.
    pub async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>, PublishError> {
        if events.is_empty() {
            return Err(PublishError::Empty);
        }
        if events.len() > MAX_BATCH {
            return Err(PublishError::TooMany);
        }
        let limit = self.limits.max_event_bytes;
        if let Some((index, e)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| e.data.get().len() > limit)
        {
            return Err(PublishError::TooLarge {
                index,
                bytes: e.data.get().len(),
                limit,
            });
        }

        // Group by account, keeping each account's events in input order.
        let mut groups: Vec<(&Account, Vec<usize>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match groups.iter_mut().find(|(a, _)| *a == &e.account) {
                Some((_, members)) => members.push(i),
                None => groups.push((&e.account, vec![i])),
            }
        }
        let ids: Vec<String> = events
            .iter()
            .map(|e| match &e.id {
                Some(id) => id.as_str().to_owned(),
                None => base64_id(),
            })
            .collect();
        let calls: Vec<Call> = groups
            .iter()
            .map(|(account, members)| {
                let mut call = Call::new(
                    &self.scripts.publish,
                    vec![account.events_key(), account.meta_key(), account.ids_key()],
                )
                .arg(self.limits.ttl_secs)
                .arg(self.limits.max_events)
                .arg(META_TTL_SECS.max(self.limits.ttl_secs * 10));
                for &i in members {
                    call = call.arg(&ids[i]).arg(events[i].data.get());
                }
                call
            })
            .collect();
        let replies = self.run(&calls).await?;

        let mut results: Vec<Option<Published>> = vec![None; events.len()];
        for ((account, members), value) in groups.iter().zip(replies) {
            let mut reply = Reply::new(value)?;
            let key = account.events_key();
            for &i in members {
                let micros = reply.micros()?;
                let duplicate = reply.int()? == 1;
                results[i] = Some(Published {
                    key: key.clone(),
                    id: ids[i].clone(),
                    cursor: Cursor::from_micros(micros),
                    duplicate,
                });
            }
        }
        results
            .into_iter()
            .map(|r| r.ok_or(StoreError::Reply("publish result missing").into()))
            .collect()
    }

    fn page_limit(&self, limit: Option<u64>) -> u64 {
        let max = self.limits.max_events;
        limit.map_or(max, |l| l.clamp(1, max))
    }

    /// The retained events of an account newer than `since`, without a session (backends, tests).
    pub async fn read(
        &self,
        account: &Account,
        since: Option<Cursor>,
        limit: Option<u64>,
    ) -> Result<Page, StoreError> {
        let limit = self.page_limit(limit);
        let call = Call::new(
            &self.scripts.read,
            vec![account.events_key(), account.meta_key()],
        )
        .arg(self.limits.ttl_secs)
        .arg(since_arg(since))
        .arg(limit);
        let mut reply = self.run_one(call).await?;
        reply.page(since, limit)
    }

    /// Creates a session for `account`. `token` is the login token's `jti` and `exp` (Unix
    /// seconds) when it has a `jti`: such a token works once.
    pub async fn login(
        &self,
        account: Account,
        token: Option<(&str, u64)>,
    ) -> Result<Login, SessionError> {
        let key = ClientKey::new_session(account);
        let account = key.account();
        let (jti, exp) = token.unwrap_or(("", 0));
        let call = Call::new(
            &self.scripts.login,
            vec![
                account.session_key(&key.session()),
                account.generation_key(),
                account.presence_key(),
                account.events_key(),
                account.used_tokens_key(),
            ],
        )
        .arg(key.hash())
        .arg(key.session().to_string())
        .arg(self.policy.key_ttl_secs)
        .arg(self.policy.max_age_secs)
        .arg(self.policy.presence_timeout_secs)
        .arg(self.limits.ttl_secs)
        .arg(jti)
        .arg(exp);
        let mut reply = self.run_one(call).await?;
        match reply.string()?.as_str() {
            "ok" => {
                let newest = reply.optional_micros()?;
                let expires_in = reply.int()? as u64 / 1000;
                Ok(Login {
                    grant: Grant {
                        client_key: key,
                        expires_in,
                    },
                    cursor: newest.map(Cursor::from_micros),
                })
            }
            "token_reused" => Err(SessionError::TokenReused),
            _ => Err(StoreError::Reply("unknown login status").into()),
        }
    }

    /// The session part of an authenticated script call: keys 1-4 and arguments 1-10.
    fn session_call<'a>(&self, script: &'a Script, key: &ClientKey) -> Call<'a> {
        let account = key.account();
        let session = key.session();
        let nonce = random_bytes::<32>();
        Call::new(
            script,
            vec![
                account.session_key(&session),
                account.rate_key(&session),
                account.generation_key(),
                account.presence_key(),
            ],
        )
        .arg(key.hash())
        .arg(session.to_string())
        .arg(hex::encode(nonce))
        .arg(key.successor(&nonce).hash())
        .arg(self.policy.key_ttl_secs)
        .arg(self.policy.max_age_secs)
        .arg(if self.policy.rotation { "1" } else { "0" })
        .arg(self.policy.grace_secs)
        .arg(self.policy.rate_limit_per_min)
        .arg(self.policy.presence_timeout_secs)
    }

    /// `GET /broadcasts`: authenticates and rotates `key`, then reads the events after `since`.
    pub async fn fetch(
        &self,
        key: &ClientKey,
        since: Option<Cursor>,
        limit: Option<u64>,
    ) -> Result<(Grant, Page), SessionError> {
        let limit = self.page_limit(limit);
        let account = key.account();
        let call = self.session_call(&self.scripts.fetch, key);
        let mut call = call
            .arg(self.limits.ttl_secs)
            .arg(since_arg(since))
            .arg(limit);
        call.keys.push(account.events_key());
        call.keys.push(account.meta_key());
        let mut reply = self.run_one(call).await?;
        let grant = reply.grant(key)?;
        let page = reply.page(since, limit)?;
        Ok((grant, page))
    }

    /// `POST /heartbeat`: authenticates and rotates `key`, and counts what is pending after
    /// `since`.
    pub async fn heartbeat(
        &self,
        key: &ClientKey,
        since: Option<Cursor>,
    ) -> Result<(Grant, Pulse), SessionError> {
        let call = self.session_call(&self.scripts.heartbeat, key);
        let mut call = call.arg(self.limits.ttl_secs).arg(since_arg(since));
        call.keys.push(key.account().events_key());
        let mut reply = self.run_one(call).await?;
        let grant = reply.grant(key)?;
        let latest = reply.optional_micros()?.map(Cursor::from_micros);
        let pending = reply.int()?.max(0) as u64;
        Ok((grant, Pulse { latest, pending }))
    }

    /// `POST /logout`: revokes the session of `key`.
    pub async fn logout(&self, key: &ClientKey) -> Result<(), SessionError> {
        let call = self.session_call(&self.scripts.logout, key);
        self.run_one(call).await?.session_status()
    }

    /// `DELETE /sessions/{client}/{account_id}`: revokes every session of the account.
    pub async fn revoke_all(&self, account: &Account) -> Result<(), StoreError> {
        let call = Call::new(
            &self.scripts.revoke_all,
            vec![account.generation_key(), account.presence_key()],
        );
        self.run_one(call).await.map(drop)
    }

    /// `GET /presence/{client}/{account_id}`: sessions seen within the presence timeout.
    pub async fn presence(&self, account: &Account) -> Result<Presence, StoreError> {
        let call = Call::new(&self.scripts.presence, vec![account.presence_key()])
            .arg(self.policy.presence_timeout_secs);
        let mut reply = self.run_one(call).await?;
        let mut sessions = Vec::new();
        while !reply.is_done() {
            let session = reply.string()?;
            let last_seen_ms = reply.int()?;
            sessions.push(SeenSession {
                session: session_label(&session),
                last_seen: last_seen_ms as f64 / 1000.0,
            });
        }
        Ok(Presence {
            online: sessions.len(),
            sessions,
        })
    }

    /// Loads every script on every primary (a warm-up; calls reload them on NOSCRIPT anyway).
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        for script in self.scripts.all() {
            script.load_async(&mut conn).await?;
        }
        Ok(())
    }
}

/// Presence shows a label derived from the session id rather than the id itself.
fn session_label(session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bcast.session-label.v1");
    h.update(session_id.as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// A label for a session, as presence shows it.
pub fn label_of(session: SessionId) -> String {
    session_label(&session.to_string())
}

/// A server-made event id: 128 random bits, URL-safe.
fn base64_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// The most event bytes one page carries: a Lambda response is at most 6 MB, and escaping the
/// body into the gateway's JSON string can double data made of quotes.
const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// A member as this service writes it; other writers' members are read leniently.
#[derive(Deserialize)]
struct Member<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    data: Box<RawValue>,
}

fn event_from(member: &str, micros: u64) -> Event {
    let cursor = Cursor::from_micros(micros);
    let (id, data) = match serde_json::from_str::<Member>(member) {
        Ok(m) => (m.id.into_owned(), m.data),
        Err(_) => {
            // Written by someone else: the whole member is the data.
            let data = RawValue::from_string(member.to_owned())
                .or_else(|_| serde_json::to_string(member).and_then(RawValue::from_string))
                .unwrap_or_else(|_| RawValue::NULL.to_owned());
            (cursor.to_string(), data)
        }
    };
    Event {
        id,
        cursor,
        ts: cursor.seconds(),
        data,
    }
}

/// A script's array reply, read front to back.
struct Reply {
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    fn new(value: Value) -> Result<Self, StoreError> {
        match value {
            Value::Array(items) => Ok(Self {
                items: items.into_iter(),
            }),
            _ => Err(StoreError::Reply("expected an array")),
        }
    }

    fn is_done(&self) -> bool {
        self.items.len() == 0
    }

    fn next(&mut self) -> Result<Value, StoreError> {
        self.items
            .next()
            .ok_or(StoreError::Reply("reply too short"))
    }

    fn int(&mut self) -> Result<i64, StoreError> {
        match self.next()? {
            Value::Int(n) => Ok(n),
            _ => Err(StoreError::Reply("expected an integer")),
        }
    }

    fn micros(&mut self) -> Result<u64, StoreError> {
        u64::try_from(self.int()?).map_err(|_| StoreError::Reply("negative timestamp"))
    }

    /// A µs value where -1 means none.
    fn optional_micros(&mut self) -> Result<Option<u64>, StoreError> {
        Ok(u64::try_from(self.int()?).ok())
    }

    /// A string, with bytes that are not UTF-8 replaced (members other systems wrote).
    fn lossy_string(&mut self) -> Result<String, StoreError> {
        match self.next()? {
            Value::BulkString(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            _ => Err(StoreError::Reply("expected a string")),
        }
    }

    fn string(&mut self) -> Result<String, StoreError> {
        match self.next()? {
            Value::BulkString(b) => {
                String::from_utf8(b).map_err(|_| StoreError::Reply("expected UTF-8"))
            }
            Value::SimpleString(s) => Ok(s),
            Value::Okay => Ok("OK".into()),
            _ => Err(StoreError::Reply("expected a string")),
        }
    }

    /// The verdict at the head of an authenticated script's reply: `ok`, or the refusal.
    fn session_status(&mut self) -> Result<(), SessionError> {
        match self.string()?.as_str() {
            "ok" => Ok(()),
            "invalid" => Err(SessionError::ClientKeyInvalid),
            "reused" => Err(SessionError::ClientKeyReused),
            "expired" => Err(SessionError::SessionExpired),
            "rate_limited" => {
                let ms = self.int()?.max(0) as u64;
                Err(SessionError::RateLimited {
                    retry_after: ms.div_ceil(1000).max(1),
                })
            }
            _ => Err(StoreError::Reply("unknown session status").into()),
        }
    }

    /// Reads the session verdict at the head of a reply: the key to hand back, or the refusal.
    fn grant(&mut self, presented: &ClientKey) -> Result<Grant, SessionError> {
        self.session_status()?;
        let nonce = self.string()?;
        let client_key = if nonce.is_empty() {
            presented.clone()
        } else {
            let nonce: [u8; 32] = hex::decode(&nonce)
                .ok()
                .and_then(|n| n.try_into().ok())
                .ok_or(StoreError::Reply("bad rotation nonce"))?;
            presented.successor(&nonce)
        };
        let expires_in = self.int()?.max(0) as u64 / 1000;
        Ok(Grant {
            client_key,
            expires_in,
        })
    }

    /// The page layout written by `events.lua`.
    fn page(&mut self, since: Option<Cursor>, limit: u64) -> Result<Page, StoreError> {
        let retention = Retention {
            created: self.optional_micros()?,
            last: self.optional_micros()?,
            dropped: self.optional_micros()?,
            key_exists: self.int()? == 1,
            expired: self.optional_micros()?,
            since_retained: self.int()? == 1,
        };
        let mut events = Vec::new();
        let (mut bytes, mut more) = (0, false);
        while !self.is_done() {
            let member = self.lossy_string()?;
            let micros = self.micros()?;
            // The script sends one event past the limit to tell whether there is more; a page
            // also stops short of what a Lambda response can carry.
            if events.len() as u64 == limit
                || (!events.is_empty() && bytes + member.len() > PAGE_BYTES)
            {
                more = true;
                break;
            }
            bytes += member.len();
            events.push(event_from(&member, micros));
        }
        Ok(Page {
            cursor: events.last().map(|e| e.cursor).or(since),
            more,
            missed: retention.missed_since(since),
            events,
        })
    }
}
