//! Sessions and rotating client keys against a real redis-server.

use std::collections::HashSet;
use std::time::Duration;

use bcast_shared::domain::NewEvent;
use bcast_shared::{Account, ClientKey, ClientNames, SessionError, Store};
use bcast_testing::{client_commands, store, TestRedis};
use redis::AsyncCommands;
use serde_json::value::RawValue;

fn account(id: &str) -> Account {
    Account::parse(&ClientNames::default(), "wp", id).unwrap()
}

async fn login(store: &Store, id: &str) -> ClientKey {
    store
        .login(account(id), None)
        .await
        .unwrap()
        .grant
        .client_key
}

/// Fetches with `key` and returns the next key.
async fn rotate(store: &Store, key: &ClientKey) -> Result<ClientKey, SessionError> {
    store
        .fetch(key, None, None)
        .await
        .map(|(grant, _)| grant.client_key)
}

#[tokio::test]
async fn every_request_rotates_and_the_old_key_has_a_grace_period() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let k1 = login(&store, "1").await;
    let k2 = rotate(&store, &k1).await.unwrap();
    assert_ne!(k1.reveal(), k2.reveal());
    // Inside the grace period the old key gives the same successor.
    let again = rotate(&store, &k1).await.unwrap();
    assert_eq!(again.reveal(), k2.reveal());
    let k3 = rotate(&store, &k2).await.unwrap();
    assert_ne!(k3.reveal(), k2.reveal());
    // k1 is now two keys old: taken as theft, the session is gone.
    assert!(matches!(
        rotate(&store, &k1).await,
        Err(SessionError::ClientKeyReused)
    ));
    assert!(matches!(
        rotate(&store, &k3).await,
        Err(SessionError::ClientKeyInvalid)
    ));
}

#[tokio::test]
async fn sixty_four_parallel_requests_with_one_key_get_one_successor() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let key = login(&store, "par").await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { rotate(&store, &key).await })
        })
        .collect();
    let mut successors = HashSet::new();
    for t in tasks {
        if let Ok(next) = t.await.unwrap() {
            successors.insert(next.reveal());
        }
    }
    assert_eq!(successors.len(), 1, "never two different successors");
    let next =
        ClientKey::parse(successors.iter().next().unwrap(), &ClientNames::default()).unwrap();
    assert!(rotate(&store, &next).await.is_ok());
}

#[tokio::test]
async fn a_rotated_out_key_after_the_grace_period_revokes_the_session() {
    let server = TestRedis::start();
    let store = store(&server, &[("ROTATION_GRACE_SECS", "1")]);
    let k1 = login(&store, "theft").await;
    let k2 = rotate(&store, &k1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        rotate(&store, &k1).await,
        Err(SessionError::ClientKeyReused)
    ));
    // The legitimate successor dies with the session.
    assert!(matches!(
        rotate(&store, &k2).await,
        Err(SessionError::ClientKeyInvalid)
    ));
}

#[tokio::test]
async fn revoking_while_rotating_never_leaves_a_valid_key() {
    let server = TestRedis::start();
    let store = store(&server, &[("RATE_LIMIT_PER_MIN", "100000")]);
    for round in 0..5 {
        let acct = format!("race{round}");
        let keys: Vec<ClientKey> = {
            let mut keys = Vec::new();
            for _ in 0..8 {
                keys.push(login(&store, &acct).await);
            }
            keys
        };
        let mut tasks = Vec::new();
        for key in keys {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut issued = vec![key.clone()];
                let mut key = key;
                for _ in 0..20 {
                    match rotate(&store, &key).await {
                        Ok(next) => {
                            issued.push(next.clone());
                            key = next;
                        }
                        Err(_) => break,
                    }
                }
                issued
            }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.revoke_all(&account(&acct)).await.unwrap();
        let mut issued = Vec::new();
        for t in tasks {
            issued.extend(t.await.unwrap());
        }
        for key in issued {
            let r = rotate(&store, &key).await;
            assert!(
                matches!(r, Err(SessionError::ClientKeyInvalid)),
                "a key survived revocation: {r:?}"
            );
        }
        assert_eq!(store.presence(&account(&acct)).await.unwrap().online, 0);
        // Logging in again works after a revocation.
        let fresh = login(&store, &acct).await;
        assert!(rotate(&store, &fresh).await.is_ok());
    }
}

#[tokio::test]
async fn a_session_ends_at_its_maximum_age_however_active() {
    let server = TestRedis::start();
    let store = store(&server, &[("SESSION_MAX_AGE_SECS", "1")]);
    let mut key = login(&store, "old").await;
    key = rotate(&store, &key).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        rotate(&store, &key).await,
        Err(SessionError::SessionExpired)
    ));
    assert!(matches!(
        rotate(&store, &key).await,
        Err(SessionError::ClientKeyInvalid)
    ));
}

#[tokio::test]
async fn a_key_expires_without_requests() {
    let server = TestRedis::start();
    let store = store(&server, &[("CLIENT_KEY_TTL_SECS", "1")]);
    let key = login(&store, "idle").await;
    let (grant, _) = store.fetch(&key, None, None).await.unwrap();
    assert_eq!(grant.expires_in, 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(matches!(
        rotate(&store, &grant.client_key).await,
        Err(SessionError::ClientKeyInvalid)
    ));
}

#[tokio::test]
async fn the_rate_limit_holds_under_concurrency() {
    let server = TestRedis::start();
    let store = store(
        &server,
        &[("RATE_LIMIT_PER_MIN", "10"), ("ROTATION", "off")],
    );
    let key = login(&store, "busy").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.heartbeat(&key, None).await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(SessionError::RateLimited { retry_after }) => {
                assert!((1..=60).contains(&retry_after));
                limited += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, limited), (10, 40));
}

#[tokio::test]
async fn the_rate_limit_holds_with_rotation_and_grace_replays() {
    let server = TestRedis::start();
    let store = store(&server, &[("RATE_LIMIT_PER_MIN", "7")]);
    let key = login(&store, "busy2").await;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { rotate(&store, &key).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 7);
}

#[tokio::test]
async fn without_rotation_the_key_stays_the_same() {
    let server = TestRedis::start();
    let store = store(&server, &[("ROTATION", "off")]);
    let key = login(&store, "static").await;
    for _ in 0..3 {
        let next = rotate(&store, &key).await.unwrap();
        assert_eq!(next.reveal(), key.reveal());
    }
}

#[tokio::test]
async fn no_plaintext_client_key_is_stored_anywhere() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let mut keys = vec![login(&store, "leak").await];
    for _ in 0..3 {
        let next = rotate(&store, keys.last().unwrap()).await.unwrap();
        keys.push(next);
    }
    store.heartbeat(keys.last().unwrap(), None).await.unwrap();

    let mut conn = server.connection().await;
    let names = server.keys("*");
    assert!(names.len() >= 3, "{names:?}");
    let mut dump = names.join("\n");
    for name in &names {
        let kind: String = redis::cmd("TYPE")
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![conn.get(name).await.unwrap()],
            "hash" => {
                let h: Vec<Vec<u8>> = redis::cmd("HGETALL")
                    .arg(name)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                h
            }
            "list" => conn.lrange(name, 0, -1).await.unwrap(),
            "zset" => conn.zrange(name, 0, -1).await.unwrap(),
            "set" => conn.smembers(name).await.unwrap(),
            other => panic!("unexpected type {other}"),
        };
        for v in values {
            dump.push('\n');
            dump.push_str(&String::from_utf8_lossy(&v));
        }
    }
    for key in &keys {
        assert!(!dump.contains(&key.reveal()));
        for secret in key.secret_encodings() {
            assert!(!dump.contains(&secret), "a key's secret is in Redis");
        }
    }
    // What is there is the hash.
    assert!(dump.contains(&keys.last().unwrap().hash()));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let key = login(&store, "bye").await;
    let next = rotate(&store, &key).await.unwrap();
    store.logout(&next).await.unwrap();
    assert!(matches!(
        rotate(&store, &next).await,
        Err(SessionError::ClientKeyInvalid)
    ));
    assert!(matches!(
        store.logout(&next).await,
        Err(SessionError::ClientKeyInvalid)
    ));
}

#[tokio::test]
async fn presence_lists_the_sessions_seen_recently() {
    let server = TestRedis::start();
    let store = store(&server, &[("PRESENCE_TIMEOUT_SECS", "1")]);
    let a = login(&store, "here").await;
    let b = login(&store, "here").await;
    let seen = store.presence(&account("here")).await.unwrap();
    assert_eq!(seen.online, 2);
    let labels: HashSet<String> = seen.sessions.iter().map(|s| s.session.clone()).collect();
    assert!(labels.contains(&bcast_shared::store::label_of(a.session())));
    assert!(!labels.iter().any(|l| l.contains(&a.session().to_string())));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.heartbeat(&b, None).await.unwrap();
    let seen = store.presence(&account("here")).await.unwrap();
    assert_eq!(seen.online, 1);
    assert_eq!(
        seen.sessions[0].session,
        bcast_shared::store::label_of(b.session())
    );
    // A session that went quiet is still valid, just not online.
    store.logout(&a).await.unwrap();
    store.logout(&b).await.unwrap();
    assert_eq!(store.presence(&account("here")).await.unwrap().online, 0);
}

#[tokio::test]
async fn a_login_token_id_works_once() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    store
        .login(account("jti"), Some(("t-1", exp)))
        .await
        .unwrap();
    assert!(matches!(
        store.login(account("jti"), Some(("t-1", exp))).await,
        Err(SessionError::TokenReused)
    ));
    store
        .login(account("jti"), Some(("t-2", exp)))
        .await
        .unwrap();

    // A token just past its exp (inside the verifier's leeway) still works only once.
    let just_expired = exp - 63;
    store
        .login(account("jti"), Some(("t-3", just_expired)))
        .await
        .unwrap();
    assert!(matches!(
        store
            .login(account("jti"), Some(("t-3", just_expired)))
            .await,
        Err(SessionError::TokenReused)
    ));
    let mut conn = server.connection().await;
    let ttl: i64 = conn.ttl("{bcast:wpjti}:jti").await.unwrap();
    assert!(ttl > 0, "the used-token set expires ({ttl})");
}

#[tokio::test]
async fn revocation_does_not_expire() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    login(&store, "gen").await;
    store.revoke_all(&account("gen")).await.unwrap();
    let mut conn = server.connection().await;
    let ttl: i64 = conn.ttl("{bcast:wpgen}:generation").await.unwrap();
    assert_eq!(
        ttl, -1,
        "an expired or evicted counter would revive revoked sessions"
    );
}

#[tokio::test]
async fn login_fetch_and_heartbeat_see_the_events() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let acct = account("flow");
    let first = store.login(acct.clone(), None).await.unwrap();
    assert_eq!(first.cursor, None);
    let publish = |data: &str| NewEvent {
        account: acct.clone(),
        id: None,
        data: RawValue::from_string(data.to_owned()).unwrap(),
    };
    let published = store
        .publish(vec![publish("1"), publish("2"), publish("3")])
        .await
        .unwrap();
    let login = store.login(acct.clone(), None).await.unwrap();
    assert_eq!(login.cursor, Some(published[2].cursor));

    let key = first.grant.client_key;
    let (grant, pulse) = store.heartbeat(&key, None).await.unwrap();
    assert_eq!(pulse.pending, 3);
    assert_eq!(pulse.latest, Some(published[2].cursor));
    let (grant, pulse) = store
        .heartbeat(&grant.client_key, Some(published[0].cursor))
        .await
        .unwrap();
    assert_eq!(pulse.pending, 2);
    let (grant, page) = store
        .fetch(&grant.client_key, Some(published[0].cursor), None)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    assert_eq!(page.cursor, Some(published[2].cursor));
    assert!(!page.missed);
    assert!(grant.expires_in > 3500 && grant.expires_in <= 3600);
}

#[tokio::test]
async fn session_operations_are_one_round_trip_each() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    store.load_scripts().await.unwrap();
    // Warm the connection (and on a cluster, the slot map) before counting.
    store.presence(&account("rt")).await.unwrap();
    let count = |what: &str| {
        let calls = server.command_calls();
        server.reset_stats();
        assert_eq!(calls.get("evalsha"), Some(&1), "{what}: {calls:?}");
        assert_eq!(calls.get("time"), Some(&1), "{what}: one script ran");
        assert_eq!(
            client_commands(&calls),
            1,
            "{what}: one round trip and nothing else: {calls:?}"
        );
    };
    server.reset_stats();
    let key = login(&store, "rt").await;
    count("login");
    let key = rotate(&store, &key).await.unwrap();
    count("fetch");
    let (grant, _) = store.heartbeat(&key, None).await.unwrap();
    count("heartbeat");
    store.presence(&account("rt")).await.unwrap();
    count("presence");
    store.logout(&grant.client_key).await.unwrap();
    count("logout");
    assert_eq!(server.crossslot_errors(), 0);
}
