//! A real local Redis Cluster: three masters with one replica each, every node a throw-away
//! `redis-server` on loopback, joined with `redis-cli --cluster create`, stopped on drop.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{free_port, sync_query, RedisServer};

/// Masters in a test cluster; each has one replica.
pub const MASTERS: usize = 3;

/// Failure detection time of the test cluster. Short enough that a failover takes a couple of
/// seconds, long enough that a loaded CI machine does not see false failures.
const NODE_TIMEOUT_MS: &str = "2000";

/// A local Redis Cluster of [`MASTERS`] masters and as many replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// A port whose cluster bus port (port + 10000) is free as well.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port();
        if port <= 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port with a free cluster bus port")
}

/// One slot range and the port of the master serving it, as a node sees the cluster.
type SlotMap = BTreeMap<(u16, u16), u16>;

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` and every replica is in sync with its master.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`RedisCluster::start`], with extra `redis-server` arguments for every node.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            NODE_TIMEOUT_MS,
            // Replicas take over whatever their last contact with the master was.
            "--cluster-replica-validity-factor",
            "0",
            "--cluster-allow-replica-migration",
            "no",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ];
        args.extend_from_slice(extra);
        let nodes: Vec<RedisServer> = (0..MASTERS * 2)
            .map(|_| RedisServer::launch_on(&args, false, cluster_port))
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("redis-cli is needed to create the test cluster: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    /// The nodes, masters and replicas alike, in creation order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The URL of every node; a cluster client takes them all as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The first running node's URL.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .map(RedisServer::url)
            .unwrap_or_else(|| self.nodes[0].url())
    }

    /// The ports of the running masters.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .filter(|n| {
                sync_query::<String>(n.port(), &["INFO", "replication"])
                    .is_ok_and(|i| i.contains("role:master"))
            })
            .map(RedisServer::port)
            .collect()
    }

    /// The running nodes' ports.
    pub fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(RedisServer::port)
            .collect()
    }

    /// The index of the node that is the master of `key`'s slot now.
    pub fn master_of(&self, key: &str) -> usize {
        let port = self.running_ports()[0];
        let slot: u16 = sync_query(port, &["CLUSTER", "KEYSLOT", key])
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT: {e}"));
        let map = slot_map(port).unwrap_or_else(|e| panic!("CLUSTER NODES: {e}"));
        let master = map
            .iter()
            .find(|((from, to), _)| (*from..=*to).contains(&slot))
            .map(|(_, port)| *port)
            .unwrap_or_else(|| panic!("slot {slot} has no master"));
        self.index_of(master)
    }

    /// The index of a running replica of the master at `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let master_port = self.nodes[master].port().to_string();
        self.nodes
            .iter()
            .position(|n| {
                n.is_running()
                    && sync_query::<String>(n.port(), &["INFO", "replication"]).is_ok_and(|i| {
                        i.contains("role:slave")
                            && i.contains(&format!("master_port:{master_port}\r\n"))
                    })
            })
            .unwrap_or_else(|| panic!("node {master} has no running replica"))
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("port {port} is not a node of this cluster"))
    }

    /// Kills node `index` abruptly, as a crash would.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Starts node `index` again with its saved cluster configuration; a master that lost its
    /// slots to its replica meanwhile comes back as that replica's replica.
    pub fn restart(&mut self, index: usize) {
        self.nodes[index].restart();
    }

    /// Waits (at most `timeout`) until every running node reports `cluster_state:ok`, all
    /// running nodes agree on which running master serves every slot, and every running replica
    /// is in sync. After a master is killed this is the end of the failover.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.readiness() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the test cluster did not become ready within {timeout:?}: {last}")
    }

    fn readiness(&self) -> Result<(), String> {
        let running = self.running_ports();
        let mut agreed: Option<SlotMap> = None;
        for &port in &running {
            let info: String =
                sync_query(port, &["CLUSTER", "INFO"]).map_err(|e| format!("{port}: {e}"))?;
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return Err(format!("{port}: {info}"));
            }
            let map = slot_map(port).map_err(|e| format!("{port}: {e}"))?;
            let covered: u32 = map.keys().map(|(a, b)| u32::from(b - a) + 1).sum();
            if covered != 16384 {
                return Err(format!("{port} sees {covered} slots served"));
            }
            if let Some(dead) = map.values().find(|p| !running.contains(p)) {
                return Err(format!("{port} still routes slots to stopped node {dead}"));
            }
            match &agreed {
                None => agreed = Some(map),
                Some(first) if *first != map => {
                    return Err(format!("{port} disagrees: {map:?} vs {first:?}"))
                }
                Some(_) => {}
            }
            let replication: String =
                sync_query(port, &["INFO", "replication"]).map_err(|e| format!("{port}: {e}"))?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("replica {port} is not in sync"));
            }
        }
        Ok(())
    }
}

/// The slot ranges and their masters as the node on `port` sees them (`CLUSTER NODES`), leaving
/// out masters it considers failed.
fn slot_map(port: u16) -> redis::RedisResult<SlotMap> {
    let nodes: String = sync_query(port, &["CLUSTER", "NODES"])?;
    let mut map = SlotMap::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 8 {
            continue;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
            continue;
        }
        let Some(node_port) = fields[1]
            .split(['@', ','])
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        for range in &fields[8..] {
            if range.starts_with('[') {
                continue; // a slot being migrated
            }
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(from), Ok(to)) = (from.parse(), to.parse()) {
                map.insert((from, to), node_port);
            }
        }
    }
    Ok(map)
}
