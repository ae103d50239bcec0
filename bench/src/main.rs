//! `cargo run --release -p bcast-bench [-- --quick]`
//!
//! Starts its own redis-server (and, for round trips, a local Redis Cluster) and prints:
//! - publish, fetch and heartbeat through the real handlers called in-process (API Gateway event
//!   JSON in, response JSON out) at 1 and 50 concurrent callers: throughput, p50, p99;
//! - the Redis floor for the same operation: the minimal raw commands sent with the same redis
//!   client (`ConnectionManager`) at the same concurrency, and the ratio handler/floor;
//! - client commands (round trips) and server µs per operation from `INFO commandstats`, on a
//!   single node and on a cluster;
//! - the release size of each function binary and its cold start (process start to its first
//!   `GET /runtime/invocation/next`) against a stand-in for the Lambda runtime API, beside a
//!   hello-world `lambda_runtime` binary built with the same profile.

mod runtime_api;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bcast_shared::{Account, ClientNames, Config, Store};
use bcast_testing::{parse_command_calls, sync_query, Target, TestRedis};
use redis::aio::ConnectionManager;
use serde_json::{json, Value};

/// How much work each measurement does.
#[derive(Clone, Copy)]
struct Plan {
    ops_single: usize,
    ops_concurrent: usize,
    warmup: usize,
    cold_runs: usize,
    counted_ops: u64,
}

const CONCURRENCY: [usize; 2] = [1, 50];

/// Per operation: handler (commands, server µs), floor (commands, server µs), and handler
/// commands on a cluster.
type Counts = ((f64, f64), (f64, f64), f64);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Publish,
    Fetch,
    Heartbeat,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Fetch => "fetch",
            Op::Heartbeat => "heartbeat",
        }
    }
}

/// The four function apps, as their Lambdas hold them.
struct Apps {
    publish: bcast_publish::App,
    fetch: bcast_fetch::App,
    heartbeat: bcast_heartbeat::App,
}

fn v2_event(
    method: &str,
    path: &str,
    query: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> String {
    let mut headers = serde_json::Map::new();
    if let Some(key) = bearer {
        headers.insert("authorization".into(), format!("Bearer {key}").into());
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.local",
            "domainPrefix": "bench", "requestId": "bench", "routeKey": "$default",
            "stage": "$default", "time": "04/Dec/2026:20:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"}
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["headers"]["content-type"] = "application/json".into();
        event["body"] = body.to_string().into();
    }
    event.to_string()
}

fn status_of(reply: &Value) -> u64 {
    reply["statusCode"].as_u64().unwrap_or(0)
}

fn body_of(reply: &Value) -> Value {
    reply["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}

/// One caller's state: its account, session key and the cursor it reads from.
struct Caller {
    account: String,
    key: String,
    since: String,
    /// Score (seconds) of `since`, for the floor.
    since_score: f64,
    session_key: String,
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Apps {
    async fn call(&self, op: Op, caller: &mut Caller, n: usize) {
        let reply = match op {
            Op::Publish => {
                let body = json!({"client": "wp", "account_id": caller.account,
                                  "data": {"n": n, "msg": "hello, world"}});
                let event = v2_event("POST", "/publish", "", None, Some(&body));
                bcast_publish::invoke(&self.publish, &event).await
            }
            Op::Fetch => {
                let query = format!("since={}&limit=10", caller.since);
                let event = v2_event("GET", "/broadcasts", &query, Some(&caller.key), None);
                bcast_fetch::invoke(&self.fetch, &event).await
            }
            Op::Heartbeat => {
                let body = json!({"cursor": caller.since});
                let event = v2_event("POST", "/heartbeat", "", Some(&caller.key), Some(&body));
                bcast_heartbeat::invoke(&self.heartbeat, &event).await
            }
        };
        let reply = reply.unwrap_or_else(|e| panic!("{}: {e}", op.name()));
        assert_eq!(status_of(&reply), 200, "{}: {reply}", op.name());
        if op != Op::Publish {
            let body = body_of(&reply);
            if let Some(key) = body["client_key"].as_str() {
                caller.key = key.to_owned();
            }
        }
    }
}

/// The floor: the fewest raw commands that do the operation's Redis work.
async fn floor(conn: &mut ConnectionManager, op: Op, caller: &Caller, n: usize) {
    let key = format!("bcast:wp{}", caller.account);
    match op {
        Op::Publish => {
            let member = json!({"id": format!("f{n}"), "data": {"n": n, "msg": "hello, world"}});
            let _: () = redis::pipe()
                .cmd("ZADD")
                .arg(&key)
                .arg(now_secs_f64())
                .arg(member.to_string())
                .ignore()
                .cmd("ZREMRANGEBYRANK")
                .arg(&key)
                .arg(0)
                .arg(-101)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(600)
                .ignore()
                .query_async(conn)
                .await
                .unwrap_or_else(|e| panic!("floor publish: {e}"));
        }
        Op::Fetch => {
            let rows: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(format!("({}", caller.since_score))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(11)
                .query_async(conn)
                .await
                .unwrap_or_else(|e| panic!("floor fetch: {e}"));
            assert!(!rows.is_empty());
        }
        Op::Heartbeat => {
            let presence = format!("{{{key}}}:presence");
            let (_, _, pending): ((), (), u64) = redis::pipe()
                .cmd("PEXPIRE")
                .arg(&caller.session_key)
                .arg(3_600_000)
                .cmd("ZADD")
                .arg(&presence)
                .arg(now_secs_f64())
                .arg(&caller.session_key)
                .cmd("ZCOUNT")
                .arg(&key)
                .arg(format!("({}", caller.since_score))
                .arg("+inf")
                .query_async(conn)
                .await
                .unwrap_or_else(|e| panic!("floor heartbeat: {e}"));
            assert!(pending > 0);
        }
    }
}

#[derive(Clone, Copy)]
struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        per_sec: latencies.len() as f64 / wall.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Runs `ops` operations spread over `callers` tasks; `handler` picks handler or floor.
async fn measure(
    apps: &Arc<Apps>,
    conn: &ConnectionManager,
    callers: &mut Vec<Caller>,
    op: Op,
    concurrency: usize,
    ops: usize,
    handler: bool,
) -> Stats {
    let per_task = ops.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut caller in callers.drain(..concurrency) {
        let apps = apps.clone();
        let mut conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for n in 0..per_task {
                let t = Instant::now();
                if handler {
                    apps.call(op, &mut caller, n).await;
                } else {
                    floor(&mut conn, op, &caller, n).await;
                }
                latencies.push(t.elapsed());
            }
            (caller, latencies)
        }));
    }
    let mut all = Vec::with_capacity(ops);
    let mut back = Vec::new();
    for t in tasks {
        let (caller, latencies) = t.await.expect("a bench task panicked");
        back.push(caller);
        all.extend(latencies);
    }
    let wall = started.elapsed();
    back.append(callers);
    *callers = back;
    stats(all, wall)
}

fn config_for(target: &impl Target, secret: &str) -> Config {
    target.config(&[
        ("LOGIN_TOKEN_SECRET", secret),
        ("RATE_LIMIT_PER_MIN", "1000000000"),
        ("REDIS_RESPONSE_TIMEOUT_MS", "5000"),
    ])
}

fn apps_for(config: &Config, store: &Store) -> Apps {
    Apps {
        publish: bcast_publish::App::new(config, store.clone()),
        fetch: bcast_fetch::App::new(config, store.clone()),
        heartbeat: bcast_heartbeat::App::new(config, store.clone()),
    }
}

/// Callers with their own account holding 100 events, a session, and a cursor 10 events back.
async fn make_callers(store: &Store, names: &ClientNames, n: usize, tag: &str) -> Vec<Caller> {
    let mut callers = Vec::new();
    for i in 0..n {
        let account_id = format!("{tag}{i}");
        let account = Account::parse(names, "wp", &account_id).unwrap();
        let events = (0..100)
            .map(|j| bcast_shared::domain::NewEvent {
                account: account.clone(),
                id: None,
                data: serde_json::value::RawValue::from_string(format!(
                    "{{\"n\":{j},\"msg\":\"hello, world\"}}"
                ))
                .unwrap(),
            })
            .collect();
        let published = store.publish(events).await.unwrap();
        let since = published[89].cursor;
        let login = store.login(account.clone(), None).await.unwrap();
        let session_key = format!(
            "{{bcast:wp{account_id}}}:session:{}",
            login.grant.client_key.session()
        );
        callers.push(Caller {
            account: account_id,
            key: login.grant.client_key.reveal(),
            since: since.to_string(),
            since_score: since.seconds(),
            session_key,
        });
    }
    callers
}

/// Client-sent commands and their server µs per operation, from `INFO commandstats`.
fn counted(ports: &[u16], ops: u64, handler: bool) -> (f64, f64) {
    let (mut calls, mut usec) = (0u64, 0u64);
    let skip = |name: &str| {
        matches!(
            name,
            "info" | "config|resetstat" | "cluster|slots" | "cluster|nodes"
        ) || name.starts_with("client|")
            || name == "ping"
    };
    for &port in ports {
        let info: String = sync_query(port, &["INFO", "commandstats"]).unwrap();
        let names = parse_command_calls(&info);
        for line in info.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let client_sent = if handler {
                matches!(name, "evalsha" | "eval" | "script|load")
            } else {
                !skip(name)
            };
            if !client_sent {
                continue;
            }
            calls += names.get(name).copied().unwrap_or(0);
            usec += fields
                .split(',')
                .find_map(|f| f.strip_prefix("usec="))
                .and_then(|u| u.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (calls as f64 / ops as f64, usec as f64 / ops as f64)
}

fn reset(ports: &[u16]) {
    for &port in ports {
        let _: redis::Value = sync_query(port, &["CONFIG", "RESETSTAT"]).unwrap();
    }
}

/// Round trips (client commands) and server µs per operation, handler and floor.
async fn count_round_trips(
    apps: &Apps,
    conn: Option<&mut ConnectionManager>,
    callers: &mut [Caller],
    ports: &[u16],
    op: Op,
    ops: u64,
) -> ((f64, f64), Option<(f64, f64)>) {
    // Warm: scripts loaded, connections up.
    apps.call(op, &mut callers[0], 0).await;
    reset(ports);
    for n in 0..ops {
        apps.call(op, &mut callers[0], n as usize).await;
    }
    let handler = counted(ports, ops, true);
    let floor_counts = match conn {
        Some(conn) => {
            floor(conn, op, &callers[0], 0).await;
            reset(ports);
            for n in 0..ops {
                floor(conn, op, &callers[0], n as usize).await;
            }
            Some(counted(ports, ops, false))
        }
        None => None,
    };
    (handler, floor_counts)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{} GiB", kb / 1024 / 1024));
    let version = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores, {mem} RAM, {} {}; {}; {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        version("redis-server", "--version")
            .split(" sha=")
            .next()
            .unwrap_or(""),
        version("rustc", "-V")
    )
}

fn parse_args() -> (Plan, bool) {
    let mut plan = Plan {
        ops_single: 5000,
        ops_concurrent: 20000,
        warmup: 500,
        cold_runs: 10,
        counted_ops: 200,
    };
    let mut build = true;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => {
                plan = Plan {
                    ops_single: 100,
                    ops_concurrent: 200,
                    warmup: 20,
                    cold_runs: 2,
                    counted_ops: 20,
                }
            }
            "--no-build" => build = false,
            other => {
                eprintln!("usage: bcast-bench [--quick] [--no-build]\n  unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    (plan, build)
}

/// Builds the function binaries and the hello-world with the release profile (what this
/// binary was built with), and returns the directory they are in.
fn build_binaries(build: bool) -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("the bench's own directory");
    if build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--bins"])
            .args([
                "-p",
                "bcast-login",
                "-p",
                "bcast-publish",
                "-p",
                "bcast-fetch",
            ])
            .args(["-p", "bcast-heartbeat", "-p", "bcast-bench"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the release binaries failed");
    }
    dir
}

#[tokio::main]
async fn main() {
    // Measure the handlers as they run on Lambda, metrics line included.
    if std::env::var_os("BCAST_METRICS").is_none() {
        std::env::set_var("BCAST_METRICS", "stdout");
    }
    let (plan, build) = parse_args();
    let bin_dir = build_binaries(build);
    let names = ClientNames::default();
    let secret = hex::encode(rand::random::<[u8; 32]>());

    let server = TestRedis::single_with(&[]);
    let config = config_for(&server, &secret);
    let store = Store::open(&config).unwrap();
    store.load_scripts().await.unwrap();
    let apps = Arc::new(apps_for(&config, &store));
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = ConnectionManager::new_with_config(
        client,
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis.connect_timeout))
            .set_response_timeout(Some(config.redis.response_timeout)),
    )
    .await
    .unwrap();
    let mut callers = make_callers(&store, &names, 50, "b").await;

    // Throughput and latency.
    let mut rows: Vec<(Op, usize, Stats, Stats)> = Vec::new();
    for op in [Op::Publish, Op::Fetch, Op::Heartbeat] {
        for concurrency in CONCURRENCY {
            let ops = if concurrency == 1 {
                plan.ops_single
            } else {
                plan.ops_concurrent
            };
            for handler in [true, false] {
                measure(
                    &apps,
                    &conn,
                    &mut callers,
                    op,
                    concurrency,
                    plan.warmup,
                    handler,
                )
                .await;
            }
            // Alternate handler and floor in halves so drift hits both alike.
            let mut h = Vec::new();
            let mut f = Vec::new();
            for _ in 0..2 {
                h.push(measure(&apps, &conn, &mut callers, op, concurrency, ops / 2, true).await);
                f.push(measure(&apps, &conn, &mut callers, op, concurrency, ops / 2, false).await);
            }
            let avg = |s: &[Stats]| Stats {
                per_sec: (s[0].per_sec + s[1].per_sec) / 2.0,
                p50: (s[0].p50 + s[1].p50) / 2,
                p99: (s[0].p99 + s[1].p99) / 2,
            };
            rows.push((op, concurrency, avg(&h), avg(&f)));
            eprintln!("measured {} at {concurrency}", op.name());
        }
    }

    // Round trips on one node.
    let ports = server.primary_ports();
    let mut counts: HashMap<&str, Counts> = HashMap::new();
    for op in [Op::Publish, Op::Fetch, Op::Heartbeat] {
        let (h, f) = count_round_trips(
            &apps,
            Some(&mut conn),
            &mut callers,
            &ports,
            op,
            plan.counted_ops,
        )
        .await;
        counts.insert(op.name(), (h, f.unwrap(), 0.0));
    }
    // And on a cluster.
    {
        let cluster = TestRedis::cluster_with(&[]);
        let config = config_for(&cluster, &secret);
        let store = Store::open(&config).unwrap();
        store.load_scripts().await.unwrap();
        let apps = apps_for(&config, &store);
        let mut callers = make_callers(&store, &names, 1, "c").await;
        let ports = cluster.primary_ports();
        for op in [Op::Publish, Op::Fetch, Op::Heartbeat] {
            let (h, _) =
                count_round_trips(&apps, None, &mut callers, &ports, op, plan.counted_ops).await;
            if let Some(entry) = counts.get_mut(op.name()) {
                entry.2 = h.0;
            }
        }
        assert_eq!(cluster.crossslot_errors(), 0, "CROSSSLOT on the cluster");
    }

    // Binaries: size and cold start.
    let redis_url = server.url();
    let mut binaries = Vec::new();
    for name in ["hello-lambda", "login", "publish", "fetch", "heartbeat"] {
        let path = bin_dir.join(name);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (build with --release)", path.display()))
            .len();
        let cold = runtime_api::cold_starts(&path, name, &redis_url, &secret, plan.cold_runs).await;
        binaries.push((name, size, cold));
    }

    print_report(&rows, &counts, &binaries);
    drop(server);
}

fn print_report(
    rows: &[(Op, usize, Stats, Stats)],
    counts: &HashMap<&str, Counts>,
    binaries: &[(&str, u64, runtime_api::ColdStart)],
) {
    let mut out: Vec<String> = Vec::new();
    out.push(format!("Machine: {}\n", machine()));
    out.push("| operation | callers | handler ops/s | handler p50 ms | handler p99 ms | floor ops/s | floor p50 ms | floor p99 ms | handler/floor (ops/s) |".to_string());
    out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|".to_string());
    for (op, c, h, f) in rows {
        out.push(format!(
            "| {} | {c} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2} |",
            op.name(),
            h.per_sec,
            ms(h.p50),
            ms(h.p99),
            f.per_sec,
            ms(f.p50),
            ms(f.p99),
            h.per_sec / f.per_sec
        ));
    }
    out.push(String::new());
    out.push("| operation | handler commands/op (1 node) | handler commands/op (cluster) | handler server µs/op | floor commands/op (1 pipeline) | floor server µs/op |".to_string());
    out.push("|---|---:|---:|---:|---:|---:|".to_string());
    for op in ["publish", "fetch", "heartbeat"] {
        let ((hc, hu), (fc, fu), cluster) = counts[op];
        out.push(format!(
            "| {op} | {hc:.2} | {cluster:.2} | {hu:.1} | {fc:.2} | {fu:.1} |"
        ));
    }
    out.push(String::new());
    let hello = binaries
        .iter()
        .find(|(n, _, _)| *n == "hello-lambda")
        .map(|(_, size, cold)| (*size, cold.ready));
    out.push("| binary | size MiB | × hello | cold start ms (to first /next) | × hello | first reply ms |".to_string());
    out.push("|---|---:|---:|---:|---:|---:|".to_string());
    for (name, size, cold) in binaries {
        let (hs, hr) = hello.unwrap_or((*size, cold.ready));
        out.push(format!(
            "| {name} | {:.2} | {:.2} | {} | {:.2} | {} |",
            *size as f64 / (1024.0 * 1024.0),
            *size as f64 / hs as f64,
            ms(cold.ready),
            cold.ready.as_secs_f64() / hr.as_secs_f64(),
            ms(cold.first_reply)
        ));
    }
    // The handlers write their metrics lines to stdout (as on Lambda); the table also goes to
    // a file so it is easy to find.
    let report = out.join("\n");
    println!("\n{report}");
    let path = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("bench-report.md")));
    if let Some(path) = path {
        if std::fs::write(&path, format!("{report}\n")).is_ok() {
            eprintln!("report written to {}", path.display());
        }
    }
}
