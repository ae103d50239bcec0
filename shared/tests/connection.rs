//! Connection handling against real redis-servers: TLS, and recovery after Redis restarts.

use std::time::{Duration, Instant};

use bcast_shared::domain::NewEvent;
use bcast_shared::{Account, ClientNames, PublishError, Store};
use bcast_testing::{store, RedisServer};
use serde_json::value::RawValue;

fn event() -> NewEvent {
    NewEvent {
        account: Account::parse(&ClientNames::default(), "api", "conn").unwrap(),
        id: None,
        data: RawValue::from_string("{\"ok\":true}".into()).unwrap(),
    }
}

async fn publish(store: &Store) -> Result<(), PublishError> {
    store.publish(vec![event()]).await.map(drop)
}

#[tokio::test]
async fn talks_tls_to_a_rediss_url() {
    let server = RedisServer::start_tls();
    assert!(server.url().starts_with("rediss://"));
    let ca = server.ca_file();
    let store = store(&server, &[("REDIS_TLS_CA_FILE", &ca)]);
    publish(&store).await.unwrap();
    let page = store.read(&event().account, None, None).await.unwrap();
    assert_eq!(page.events.len(), 1);

    // Without the CA the server's certificate is not trusted: a clean error, not a hang.
    let untrusted = store_without_ca(&server);
    let started = Instant::now();
    assert!(publish(&untrusted).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn store_without_ca(server: &RedisServer) -> Store {
    store(server, &[])
}

#[tokio::test]
async fn a_missing_ca_file_is_a_configuration_error() {
    let server = RedisServer::start_tls();
    let config = bcast_testing::config(
        &server.url(),
        &[("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")],
    );
    let err = Store::open(&config).err().expect("an error");
    assert!(err.to_string().contains("REDIS_TLS_CA_FILE"), "{err}");
}

/// A store with short Redis timeouts, so a dead server shows quickly.
fn fail_fast_store(server: &RedisServer) -> Store {
    store(
        server,
        &[
            ("REDIS_RESPONSE_TIMEOUT_MS", "300"),
            ("REDIS_CONNECT_TIMEOUT_MS", "300"),
        ],
    )
}

#[tokio::test]
async fn the_same_store_works_again_after_redis_restarts() {
    let mut server = RedisServer::start();
    let store = fail_fast_store(&server);
    publish(&store).await.unwrap();

    server.kill();
    let started = Instant::now();
    let down = publish(&store).await;
    assert!(matches!(down, Err(PublishError::Store(_))), "{down:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast");

    server.restart();
    // The connection comes back by itself; allow it a few attempts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match publish(&store).await {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("did not recover: {e}"),
        }
    }
    // The restarted server is empty; scripts were reloaded on NOSCRIPT.
    let page = store.read(&event().account, None, None).await.unwrap();
    assert_eq!(page.events.len(), 1);
}

#[tokio::test]
async fn a_restart_between_requests_is_retried_away() {
    let mut server = RedisServer::start();
    let store = fail_fast_store(&server);
    publish(&store).await.unwrap();
    // The connection the store holds is now dead; the first request finds out and, as a
    // publish is safe to repeat (its id makes a repeat a duplicate), retries on a new one.
    server.restart();
    let started = Instant::now();
    publish(&store).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let page = store.read(&event().account, None, None).await.unwrap();
    assert_eq!(
        page.events.len(),
        1,
        "the restarted server is empty but for the retry"
    );
}
