//! Faults under load, through the real handlers, on loopback only and in bounded loops:
//! a standalone Redis killed and restarted, a cluster master killed and replaced by its replica,
//! and a slow Redis behind a delaying proxy. Every request ends in success or a clean 503 with
//! `Retry-After` within the configured time budget, the same process serves again afterwards,
//! and every publish that was acknowledged is still readable.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bcast_shared::{Account, Store};
use bcast_testing::{DelayProxy, RedisServer, TestRedis};
use common::{Functions, Reply, Request, Service};
use serde_json::json;

/// The Redis timeouts the functions run with in these tests (ms).
const CONNECT_MS: u64 = 500;
const RESPONSE_MS: u64 = 500;

fn vars() -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_CONNECT_TIMEOUT_MS", CONNECT_MS.to_string()),
        ("REDIS_RESPONSE_TIMEOUT_MS", RESPONSE_MS.to_string()),
        ("RATE_LIMIT_PER_MIN", "1000000".into()),
        ("BCAST_MAX_EVENTS", "100000".into()),
    ]
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The longest a request may take: a reconnect (connect timeout) and a reply (response timeout),
/// a script reload after a failover (another reply), and scheduling slack for a busy CI machine.
fn budget() -> Duration {
    Duration::from_millis(CONNECT_MS + 2 * RESPONSE_MS + 1000)
}

/// What one worker saw.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    unavailable: u64,
    slowest: Duration,
    /// Publishes answered 200: (account id, event id).
    acked: Vec<(String, String)>,
    /// When a publish and a fetch last succeeded.
    last_publish_ok: Option<Instant>,
    last_fetch_ok: Option<Instant>,
}

impl Tally {
    /// Checks a reply: success or a clean 503, in time.
    fn record(&mut self, what: &str, reply: &Reply, elapsed: Duration) -> bool {
        self.slowest = self.slowest.max(elapsed);
        assert!(
            elapsed <= budget(),
            "{what} took {elapsed:?}, over the budget of {:?}",
            budget()
        );
        reply.check_envelope();
        match reply.status {
            200 => {
                self.ok += 1;
                true
            }
            503 => {
                assert_eq!(reply.code(), "unavailable", "{reply:?}");
                assert!(reply.headers.contains_key("retry-after"), "{reply:?}");
                self.unavailable += 1;
                false
            }
            _ => panic!("{what}: neither success nor a clean 503: {reply:?}"),
        }
    }
}

/// Publishes and fetches for one account in a loop until `stop`, following key rotation.
async fn worker(
    functions: Functions,
    account: String,
    mut key: String,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    for n in 0..20_000u32 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = format!("{account}-{n}");
        let request = Request::new("POST", "/publish")
            .json(&json!({"client": "wp", "account_id": account, "id": id, "data": {"n": n}}));
        let started = Instant::now();
        let reply = functions.call("publish", &request).await;
        if tally.record("publish", &reply, started.elapsed()) {
            assert_eq!(reply.body["results"][0]["id"], id.as_str());
            tally.acked.push((account.clone(), id));
            tally.last_publish_ok = Some(Instant::now());
        }

        let request = Request::new("GET", "/broadcasts?limit=5").bearer(&key);
        let started = Instant::now();
        let reply = functions.call("fetch", &request).await;
        if tally.record("fetch", &reply, started.elapsed()) {
            // A 503 keeps the key: if Redis did rotate it, the grace period gives the same
            // successor on the retry.
            key = reply.body["client_key"].as_str().unwrap().to_owned();
            tally.last_fetch_ok = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tally
}

struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    async fn start(service: &Service, accounts: &[String]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for account in accounts {
            let key = service.client_key("wp", account).await;
            workers.push(tokio::spawn(worker(
                service.functions(),
                account.clone(),
                key,
                stop.clone(),
            )));
        }
        Self { stop, workers }
    }

    async fn finish(self) -> Vec<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        let mut tallies = Vec::new();
        for w in self.workers {
            tallies.push(w.await.expect("a worker panicked"));
        }
        tallies
    }
}

/// Every acknowledged publish is in the store.
async fn assert_all_readable(store: &Store, tallies: &[Tally]) {
    let mut acked: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for t in tallies {
        for (account, id) in &t.acked {
            acked.entry(account).or_default().insert(id);
        }
    }
    let names = bcast_shared::ClientNames::default();
    for (account, ids) in acked {
        let account = Account::parse(&names, "wp", account).unwrap();
        let mut found = BTreeSet::new();
        let mut since = None;
        for _ in 0..10_000 {
            let page = store.read(&account, since, Some(1000)).await.unwrap();
            found.extend(page.events.iter().map(|e| e.id.clone()));
            since = page.cursor;
            if !page.more {
                break;
            }
        }
        let lost: Vec<&&str> = ids.iter().filter(|id| !found.contains(**id)).collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    }
}

fn accounts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_redis_gives_clean_503s_then_serves_again() {
    // Acknowledged writes survive the crash only if they reach the disk before the reply.
    let server = TestRedis::single_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let vars = vars();
    let mut service = Service::on(server, &borrowed(&vars));
    let load = Load::start(&service, &accounts("s", 6)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    service.server.server().unwrap().kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    service.server.server().unwrap().restart();
    let restarted = Instant::now();

    // Load on the recovered server; every worker must succeed again in that time.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let tallies = load.finish().await;
    for (i, t) in tallies.iter().enumerate() {
        eprintln!("worker {i}: {t:?}", t = (t.ok, t.unavailable, t.slowest));
        assert!(
            t.last_publish_ok.is_some_and(|at| at > restarted),
            "worker {i} published again after the restart without a new process"
        );
        assert!(
            t.last_fetch_ok.is_some_and(|at| at > restarted),
            "worker {i} fetched again after the restart"
        );
    }
    let unavailable: u64 = tallies.iter().map(|t| t.unavailable).sum();
    assert!(unavailable > 0, "the outage was seen");
    assert!(killed < restarted);
    assert_all_readable(&service.store, &tallies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_master_is_replaced_and_requests_succeed_again() {
    let server = TestRedis::cluster_with(&["--cluster-node-timeout", "1000"]);
    let vars = vars();
    let mut service = Service::on(server, &borrowed(&vars));
    let names = accounts("c", 9);
    let load = Load::start(&service, &names).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cluster = service.server.cluster().unwrap();
    let victim = cluster.master_of("bcast:wpc0");
    cluster.kill(victim);
    let killed = Instant::now();
    cluster.wait_ready(Duration::from_secs(30));
    let failed_over = Instant::now();
    eprintln!("failover took {:?}", failed_over - killed);

    tokio::time::sleep(Duration::from_millis(2000)).await;
    let tallies = load.finish().await;
    for (i, t) in tallies.iter().enumerate() {
        eprintln!("worker {i}: {:?}", (t.ok, t.unavailable, t.slowest));
        assert!(
            t.last_publish_ok.is_some_and(|at| at > failed_over),
            "worker {i} published again after the failover"
        );
        assert!(
            t.last_fetch_ok.is_some_and(|at| at > failed_over),
            "worker {i} fetched again after the failover"
        );
    }
    assert_all_readable(&service.store, &tallies).await;
    assert_eq!(service.server.crossslot_errors(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_gives_503_within_the_response_timeout() {
    let server = TestRedis::single_with(&[]);
    let proxy = DelayProxy::start(server.primary_ports()[0]);
    let vars = vars();
    let mut all = borrowed(&vars);
    let url = proxy.url();
    all.push(("REDIS_URL", &url));
    let service = Service::on(server, &all);
    let key = service.client_key("wp", "slow").await;

    proxy.set_delay(Duration::from_millis(3 * RESPONSE_MS));
    for function in ["publish", "fetch"] {
        let request = match function {
            "publish" => Request::new("POST", "/publish")
                .json(&json!({"client": "wp", "account_id": "slow", "data": 1})),
            _ => Request::new("GET", "/broadcasts").bearer(&key),
        };
        let started = Instant::now();
        let reply = service.call(function, &request).await;
        let elapsed = started.elapsed();
        eprintln!(
            "{function} behind a slow redis: {} in {elapsed:?}",
            reply.status
        );
        let reply = reply.expect(503, Some("unavailable"));
        assert!(reply.headers.contains_key("retry-after"));
        assert!(
            elapsed < Duration::from_millis(RESPONSE_MS + 400),
            "{function} answered after {elapsed:?}, past the response timeout"
        );
    }

    // Fast again: the same process serves.
    proxy.set_delay(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = service
            .call("fetch", &Request::new("GET", "/broadcasts").bearer(&key))
            .await;
        if reply.status == 200 {
            break;
        }
        reply.expect(503, Some("unavailable"));
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_cluster_failover_is_followed_through_moved() {
    // No node dies: the old master turns replica and answers MOVED, with no connection error
    // to tell the client.
    let server = TestRedis::cluster_with(&[]);
    let vars = vars();
    let mut service = Service::on(server, &borrowed(&vars));
    let names = accounts("m", 6);
    let load = Load::start(&service, &names).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let cluster = service.server.cluster().unwrap();
    let old = cluster.master_of("bcast:wpm0");
    let replica = cluster.replica_of(old);
    let replica_port = cluster.ports()[replica];
    // A manual failover gives up if the replica cannot catch up in time on a busy machine;
    // ask again, and in the end without waiting for the master's agreement.
    let mut switched_over = false;
    for attempt in 0..4 {
        let mut args = vec!["CLUSTER", "FAILOVER"];
        if attempt >= 2 {
            args.push("FORCE");
        }
        let _: String = bcast_testing::sync_query(replica_port, &args).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !switched_over {
            switched_over = cluster.master_of("bcast:wpm0") != old;
            std::thread::sleep(Duration::from_millis(50));
        }
        if switched_over {
            break;
        }
    }
    assert!(switched_over, "the manual failover did not happen");
    cluster.wait_ready(Duration::from_secs(30));
    let switched = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tallies = load.finish().await;
    for (i, t) in tallies.iter().enumerate() {
        eprintln!("worker {i}: {:?}", (t.ok, t.unavailable, t.slowest));
        assert!(
            t.last_publish_ok.is_some_and(|at| at > switched)
                && t.last_fetch_ok.is_some_and(|at| at > switched),
            "worker {i} succeeded again after the switch"
        );
    }
    assert_all_readable(&service.store, &tallies).await;
}

#[tokio::test]
async fn a_demoted_primary_answering_readonly_is_left_for_the_new_one() {
    // A primary endpoint whose name moves to the promoted replica: connections made before
    // the switch still reach the old primary, now a replica that answers READONLY.
    let old = RedisServer::start();
    let new = RedisServer::start();
    let proxy = DelayProxy::start(old.port());
    let url = proxy.url();
    let vars = vars();
    let mut all = borrowed(&vars);
    all.push(("REDIS_URL", &url));
    let service = Service::on(TestRedis::single_with(&[]), &all);
    let publish = || {
        Request::new("POST", "/publish")
            .json(&json!({"client": "wp", "account_id": "ro", "data": 1}))
    };
    service.call("publish", &publish()).await.expect(200, None);

    // Fail over: the new server is the primary, the old one follows it.
    proxy.set_target(new.port());
    let _: String = bcast_testing::sync_query(
        old.port(),
        &["REPLICAOF", "127.0.0.1", &new.port().to_string()],
    )
    .unwrap();
    let started = Instant::now();
    let reply = service.call("publish", &publish()).await;
    assert!(started.elapsed() <= budget());
    reply.expect(200, None);
    let mut conn = new.connection().await;
    let stored: u64 = redis::AsyncCommands::zcard(&mut conn, "bcast:wpro")
        .await
        .unwrap();
    assert!(stored >= 1, "the publish reached the new primary");
}
