//! The Redis a test runs against: one server, or a local Redis Cluster when the environment says
//! `REDIS_CLUSTER=true`. The same test code runs on both; the helpers here hide the difference
//! (commands that must reach every node, statistics summed across the masters).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bcast_shared::Config;
use redis::Value;

use crate::{config, parse_command_calls, sync_query, RedisCluster, RedisServer, Target};

/// Whether the tests run against a cluster: `REDIS_CLUSTER=true` (or `1`) in the environment.
pub fn cluster_mode() -> bool {
    std::env::var("REDIS_CLUSTER")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

enum Kind {
    Single(RedisServer),
    Cluster(RedisCluster),
}

/// A single `redis-server` or a local Redis Cluster, chosen by [`cluster_mode`].
///
/// In cluster mode the configurations it makes carry `REDIS_CLUSTER=true`, and on drop it
/// checks that no node ever answered `CROSSSLOT` (every script must stay in one slot).
pub struct TestRedis {
    kind: Kind,
    /// CROSSSLOT errors counted before a statistics reset.
    crossslot: AtomicU64,
}

impl TestRedis {
    /// A cluster when `REDIS_CLUSTER=true`, else a single server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`TestRedis::start`] with extra `redis-server` arguments (for every node).
    pub fn start_with(extra: &[&str]) -> Self {
        if cluster_mode() {
            Self::cluster_with(extra)
        } else {
            Self::single_with(extra)
        }
    }

    /// Always a single server, whatever the environment says.
    pub fn single_with(extra: &[&str]) -> Self {
        Self::wrap(Kind::Single(RedisServer::start_with(extra)))
    }

    /// Always a cluster, whatever the environment says.
    pub fn cluster_with(extra: &[&str]) -> Self {
        Self::wrap(Kind::Cluster(RedisCluster::start_with(extra)))
    }

    fn wrap(kind: Kind) -> Self {
        Self {
            kind,
            crossslot: AtomicU64::new(0),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// The single server, if this is one.
    pub fn server(&mut self) -> Option<&mut RedisServer> {
        match &mut self.kind {
            Kind::Single(s) => Some(s),
            Kind::Cluster(_) => None,
        }
    }

    /// The cluster, if this is one.
    pub fn cluster(&mut self) -> Option<&mut RedisCluster> {
        match &mut self.kind {
            Kind::Single(_) => None,
            Kind::Cluster(c) => Some(c),
        }
    }

    /// The URL a store is given: the server's, or one node's for a cluster.
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::Single(s) => s.url(),
            Kind::Cluster(c) => c.url(),
        }
    }

    /// A plain async connection for checking keys with ordinary commands (ZRANGE, TTL, DEL …);
    /// a cluster connection routes each command to its key's node.
    pub async fn connection(&self) -> TestConnection {
        match &self.kind {
            Kind::Single(s) => TestConnection::Single(
                redis::aio::ConnectionManager::new(s.client())
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to the test redis: {e}")),
            ),
            Kind::Cluster(c) => {
                let client = redis::cluster::ClusterClient::new(c.urls())
                    .unwrap_or_else(|e| panic!("cluster client: {e}"));
                TestConnection::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}")),
                )
            }
        }
    }

    /// The ports that serve clients' writes: the server, or every running master.
    pub fn primary_ports(&self) -> Vec<u16> {
        match &self.kind {
            Kind::Single(s) => vec![s.port()],
            Kind::Cluster(c) => c.master_ports(),
        }
    }

    fn running_ports(&self) -> Vec<u16> {
        match &self.kind {
            Kind::Single(s) if s.is_running() => vec![s.port()],
            Kind::Single(_) => Vec::new(),
            Kind::Cluster(c) => c.running_ports(),
        }
    }

    fn on_each(&self, ports: &[u16], args: &[&str]) {
        for &port in ports {
            let _: Value =
                sync_query(port, args).unwrap_or_else(|e| panic!("{args:?} on port {port}: {e}"));
        }
    }

    fn sum_info(
        &self,
        ports: &[u16],
        section: &str,
        parse: fn(&str) -> HashMap<String, u64>,
    ) -> HashMap<String, u64> {
        let mut total = HashMap::new();
        for &port in ports {
            let info: String = sync_query(port, &["INFO", section])
                .unwrap_or_else(|e| panic!("INFO {section} on port {port}: {e}"));
            for (name, n) in parse(&info) {
                *total.entry(name).or_insert(0) += n;
            }
        }
        total
    }

    /// `INFO commandstats` calls summed across the primaries: the commands clients sent
    /// (replicas only replay what their master propagates, so they are left out).
    pub fn command_calls(&self) -> HashMap<String, u64> {
        self.sum_info(&self.primary_ports(), "commandstats", parse_command_calls)
    }

    /// `INFO errorstats` counts (error prefix → count) summed across every running node.
    pub fn error_counts(&self) -> HashMap<String, u64> {
        self.sum_info(&self.running_ports(), "errorstats", parse_error_counts)
    }

    /// `CONFIG RESETSTAT` on every running node.
    pub fn reset_stats(&self) {
        let crossslot = self.error_counts().get("CROSSSLOT").copied().unwrap_or(0);
        self.crossslot.fetch_add(crossslot, Ordering::SeqCst);
        self.on_each(&self.running_ports(), &["CONFIG", "RESETSTAT"]);
    }

    /// `SCRIPT FLUSH` on every running node, as after a failover to a node that never saw the
    /// scripts.
    pub fn script_flush(&self) {
        self.on_each(&self.running_ports(), &["SCRIPT", "FLUSH"]);
    }

    /// `FLUSHALL` on every primary.
    pub fn flush_all(&self) {
        self.on_each(&self.primary_ports(), &["FLUSHALL"]);
    }

    /// `KEYS pattern` across the primaries.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut all = Vec::new();
        for port in self.primary_ports() {
            let keys: Vec<String> = sync_query(port, &["KEYS", pattern])
                .unwrap_or_else(|e| panic!("KEYS on port {port}: {e}"));
            all.extend(keys);
        }
        all.sort();
        all
    }

    /// CROSSSLOT errors answered by any node since start.
    pub fn crossslot_errors(&self) -> u64 {
        self.crossslot.load(Ordering::SeqCst)
            + self.error_counts().get("CROSSSLOT").copied().unwrap_or(0)
    }

    /// Stops the server, or every node of the cluster, abruptly.
    pub fn kill(&mut self) {
        match &mut self.kind {
            Kind::Single(s) => s.kill(),
            Kind::Cluster(c) => c.kill_all(),
        }
    }
}

impl Target for TestRedis {
    fn config(&self, vars: &[(&str, &str)]) -> Config {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if self.is_cluster() && !vars.iter().any(|(k, _)| *k == "REDIS_CLUSTER") {
            all.push(("REDIS_CLUSTER", "true"));
        }
        all.extend_from_slice(vars);
        config(&self.url(), &all)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if self.is_cluster() && !std::thread::panicking() && !self.running_ports().is_empty() {
            let n = self.crossslot_errors();
            assert_eq!(n, 0, "the cluster answered CROSSSLOT {n} times");
        }
    }
}

/// `INFO errorstats` text as error prefix → count.
fn parse_error_counts(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("errorstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let count = stats.strip_prefix("count=")?.trim();
            Some((name.to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// A plain async connection to a [`TestRedis`], single or cluster: the product's own
/// connection type, which already speaks to both.
pub type TestConnection = bcast_shared::Connection;
