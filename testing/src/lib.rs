//! Test support for bcast: a throw-away `redis-server` on a free loopback port, with no
//! persistence, stopped when the handle drops. Tests never touch a Redis that happens to run
//! on the machine already.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bcast_shared::{Config, Store};

mod cluster;
pub mod fixtures;
mod proxy;
mod target;

pub use cluster::{RedisCluster, MASTERS};
pub use proxy::DelayProxy;
pub use target::{cluster_mode, TestConnection, TestRedis};

/// A `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Arguments beyond the defaults, kept for restarts.
    extra: Vec<String>,
    tls: bool,
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

fn redis_server_missing() -> ! {
    panic!(
        "redis-server was not found on PATH. The tests start their own throw-away Redis; \
         install it first (Debian/Ubuntu: `apt-get install -y redis-server`)."
    )
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (`["--maxmemory", "10mb"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::launch(extra, false)
    }

    /// Starts a server that speaks only TLS, with a certificate for 127.0.0.1 signed by a
    /// throw-away CA ([`RedisServer::ca_file`]). Needs the `openssl` command.
    pub fn start_tls() -> Self {
        Self::launch(&[], true)
    }

    fn launch(extra: &[&str], tls: bool) -> Self {
        Self::launch_on(extra, tls, free_port)
    }

    /// Starts a server on a port from `pick`, trying again on another port if it is taken.
    pub(crate) fn launch_on(extra: &[&str], tls: bool, pick: impl Fn() -> u16) -> Self {
        let mut last_error = String::new();
        for _ in 0..8 {
            let port = pick();
            let dir =
                std::env::temp_dir().join(format!("bcast-redis-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let mut server = Self {
                child: None,
                port,
                dir,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                tls,
            };
            if tls {
                server.make_certificates();
            }
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}")
    }

    fn make_certificates(&self) {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .unwrap_or_else(|e| panic!("openssl is needed for the TLS test: {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2";
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let mut ca = words(&format!("req -x509 {ec} -keyout ca.key -out ca.crt -subj"));
        ca.push("/CN=bcast test CA".into());
        run(&ca.iter().map(String::as_str).collect::<Vec<_>>());
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            self.dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> String {
        self.dir.join("ca.crt").to_string_lossy().into_owned()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ];
        if self.tls {
            args.extend_from_slice(&[
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
                "--tls-auth-clients",
                "no",
            ]);
        } else {
            args.extend_from_slice(&["--port", &port]);
        }
        args.extend(self.extra.iter().map(String::as_str));
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => redis_server_missing(),
            Err(e) => return Err(e.to_string()),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("redis-server exited early with {status}"));
            }
            if self.ping() {
                return self.check_ours();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err("redis-server did not answer within 10 s".into())
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls {
            // Listening is enough; the handshake is the client's test.
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// A server that answered on our port must be our child: with ports picked by binding and
    /// releasing, another test's server may have won the race for the same port.
    fn check_ours(&mut self) -> Result<(), String> {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return Err("redis-server exited".into());
        };
        if self.tls {
            return Ok(());
        }
        let info: String = sync_query(self.port, &["INFO", "server"]).unwrap_or_default();
        if info.contains(&format!("process_id:{pid}\r\n")) {
            Ok(())
        } else {
            self.kill();
            Err(format!("port {} answered by another server", self.port))
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A plain client, for checking what is in Redis with ordinary commands.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap_or_else(|e| panic!("bad redis url: {e}"))
    }

    /// A plain async connection.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test redis: {e}"))
    }

    /// Whether the server process is up (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server abruptly (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port after [`RedisServer::kill`].
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("could not restart redis-server: {e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A configuration pointing at `url`, with defaults overridden by `vars` (`("BCAST_TTL_SECS",
/// "2")`), read through the same parser as the functions.
pub fn config(url: &str, vars: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.entry("REDIS_URL".into())
        .or_insert_with(|| url.to_owned());
    Config::from_lookup(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("test configuration: {e}"))
}

/// Something a store can be pointed at: a single server or a test target that may be a
/// cluster.
pub trait Target {
    /// A configuration for it, with defaults overridden by `vars`.
    fn config(&self, vars: &[(&str, &str)]) -> Config;
}

impl Target for RedisServer {
    fn config(&self, vars: &[(&str, &str)]) -> Config {
        config(&self.url(), vars)
    }
}

/// A store on `target` with the given overrides.
pub fn store(target: &impl Target, vars: &[(&str, &str)]) -> Store {
    Store::open(&target.config(vars)).unwrap_or_else(|e| panic!("store: {e}"))
}

/// One command to the server on a loopback `port` over a fresh plain connection, for harness
/// bookkeeping (INFO, CLUSTER, CONFIG) outside any runtime.
pub fn sync_query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn)
}

/// `INFO commandstats` text as command name → calls.
pub fn parse_command_calls(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// `INFO commandstats` as command name → calls.
pub async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
    parse_command_calls(&info)
}

/// The Redis commands the product's Lua scripts call (lowercase), read from `shared/scripts`.
pub fn script_commands() -> std::collections::HashSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/scripts");
    let mut names = std::collections::HashSet::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for part in text.split("redis.call(").skip(1) {
            let name: String = part
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            names.insert(name.to_ascii_lowercase());
        }
    }
    names
}

/// Commands sent by clients, from `INFO commandstats` calls: everything except what the
/// scripts call inside Redis, the harness's own bookkeeping (INFO, CONFIG RESETSTAT,
/// CLUSTER INFO/NODES/KEYSLOT) and replication traffic (REPLCONF ACK from replicas). With the connection warm, this is the round trips.
pub fn client_commands(calls: &HashMap<String, u64>) -> u64 {
    let inside = script_commands();
    calls
        .iter()
        .filter(|(name, _)| {
            !inside.contains(name.as_str())
                && !matches!(
                    name.as_str(),
                    "info"
                        | "config|resetstat"
                        | "cluster|info"
                        | "cluster|nodes"
                        | "cluster|keyslot"
                        // Replicas acknowledging the replication stream to their master.
                        | "replconf"
                        | "psync"
                )
        })
        .map(|(_, n)| *n)
        .sum()
}
