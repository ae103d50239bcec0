//! The test harness itself: the local cluster forms, fails over, and the delay proxy delays.

use std::time::{Duration, Instant};

use bcast_testing::{sync_query, DelayProxy, RedisCluster, RedisServer, MASTERS};
use redis::AsyncCommands;

#[test]
fn a_cluster_of_three_masters_with_a_replica_each_forms_and_fails_over() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start();
    eprintln!("cluster ready in {:?}", started.elapsed());
    assert_eq!(cluster.ports().len(), MASTERS * 2);
    assert_eq!(cluster.master_ports().len(), MASTERS);
    for port in cluster.ports() {
        let info: String = sync_query(port, &["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_known_nodes:6"), "{info}");
    }

    let key = "bcast:wpfailover";
    let master = cluster.master_of(key);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    runtime.block_on(async {
        let mut conn = client.get_async_connection().await.unwrap();
        let _: () = conn.set(key, "1").await.unwrap();
        // WAIT for the replica so the write survives the failover.
        let _: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query_async(&mut conn)
            .await
            .unwrap_or(0);
    });

    let started = Instant::now();
    cluster.kill(master);
    cluster.wait_ready(Duration::from_secs(30));
    eprintln!("failover done in {:?}", started.elapsed());
    let new_master = cluster.master_of(key);
    assert_ne!(new_master, master, "the replica took the slots over");
    assert_eq!(cluster.master_ports().len(), MASTERS);

    cluster.restart(master);
    cluster.wait_ready(Duration::from_secs(30));
    let info: String = sync_query(cluster.ports()[master], &["INFO", "replication"]).unwrap();
    assert!(
        info.contains("role:slave"),
        "the old master came back as a replica: {info}"
    );
    let value: String = runtime.block_on(async {
        let mut conn = client.get_async_connection().await.unwrap();
        conn.get(key).await.unwrap()
    });
    assert_eq!(value, "1");
}

#[test]
fn the_proxy_forwards_and_delays() {
    let server = RedisServer::start();
    let proxy = DelayProxy::start(server.port());
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let started = Instant::now();
    let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
    assert!(started.elapsed() < Duration::from_millis(200));
    proxy.set_delay(Duration::from_millis(150));
    let started = Instant::now();
    let _: String = redis::cmd("PING").query(&mut conn).unwrap();
    // One delay each way.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}
