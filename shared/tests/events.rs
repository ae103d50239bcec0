//! Publishing and reading events against a real redis-server.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bcast_shared::domain::NewEvent;
use bcast_shared::{Account, ClientNames, Cursor, EventId, PublishError, Store};
use bcast_testing::{client_commands, store, TestRedis};
use redis::AsyncCommands;
use serde_json::value::RawValue;

fn account(client: &str, id: &str) -> Account {
    Account::parse(&ClientNames::default(), client, id).unwrap()
}

fn event(account: &Account, id: Option<&str>, data: &str) -> NewEvent {
    NewEvent {
        account: account.clone(),
        id: id.map(|i| EventId::parse(i).unwrap()),
        data: RawValue::from_string(data.to_owned()).unwrap(),
    }
}

async fn publish_n(store: &Store, account: &Account, n: usize) -> Vec<Cursor> {
    let mut cursors = Vec::new();
    for i in 0..n {
        let r = store
            .publish(vec![event(account, None, &format!("{{\"n\":{i}}}"))])
            .await
            .unwrap();
        cursors.push(r[0].cursor);
    }
    cursors
}

#[tokio::test]
async fn seed_example_reads_back_with_plain_redis_commands() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let wp = account("wp", "123456");
    let batch = (1..=5)
        .map(|i| event(&wp, None, &format!("{{\"msg\":\"data{i}\"}}")))
        .collect();
    let results = store.publish(batch).await.unwrap();
    assert_eq!(results.len(), 5);
    assert!(results
        .iter()
        .all(|r| r.key == "bcast:wp123456" && !r.duplicate));

    let mut conn = server.connection().await;
    let rows: Vec<(String, f64)> = conn
        .zrange_withscores("bcast:wp123456", 0, -1)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut previous = 0.0;
    for (i, (member, score)) in rows.iter().enumerate() {
        let json: serde_json::Value = serde_json::from_str(member).unwrap();
        assert_eq!(
            json["data"]["msg"],
            format!("data{}", i + 1),
            "in publish order"
        );
        assert_eq!(json["id"], results[i].id.as_str());
        // Unix seconds, not milliseconds.
        assert!(
            (score - now).abs() < 60.0,
            "score {score} is not near {now}"
        );
        assert!(*score > previous, "scores strictly increase");
        assert_eq!(json["ts"].as_f64().unwrap(), *score);
        previous = *score;
    }
    // An outside reader's range query on seconds keeps working.
    let from = rows[2].1;
    let tail: Vec<String> = conn
        .zrangebyscore("bcast:wp123456", from, "+inf")
        .await
        .unwrap();
    assert_eq!(tail.len(), 3);
    let ttl: i64 = conn.ttl("bcast:wp123456").await.unwrap();
    assert!(ttl > 0 && ttl <= 600, "ttl {ttl}");
}

#[tokio::test]
async fn keeps_only_the_newest_n_and_says_when_a_reader_missed_some() {
    let server = TestRedis::start();
    let store = store(&server, &[("BCAST_MAX_EVENTS", "5")]);
    let wp = account("wp", "1");
    let cursors = publish_n(&store, &wp, 12).await;

    let mut conn = server.connection().await;
    let count: u64 = conn.zcard("bcast:wp1").await.unwrap();
    assert_eq!(count, 5);

    let page = store.read(&wp, None, None).await.unwrap();
    let got: Vec<Cursor> = page.events.iter().map(|e| e.cursor).collect();
    assert_eq!(got, cursors[7..]);
    assert!(!page.missed, "no cursor: nothing can be missed");
    assert_eq!(page.cursor, Some(cursors[11]));

    // Event 6 (index 6) was the newest trimmed: a reader at 6 missed nothing, one at 5 did.
    assert!(
        !store
            .read(&wp, Some(cursors[6]), None)
            .await
            .unwrap()
            .missed
    );
    let behind = store.read(&wp, Some(cursors[5]), None).await.unwrap();
    assert!(behind.missed);
    assert_eq!(behind.events.len(), 5);
    assert!(
        !store
            .read(&wp, Some(cursors[9]), None)
            .await
            .unwrap()
            .missed
    );

    // Up to date: nothing new, nothing missed, cursor unchanged.
    let idle = store.read(&wp, Some(cursors[11]), None).await.unwrap();
    assert!(idle.events.is_empty() && !idle.missed && !idle.more);
    assert_eq!(idle.cursor, Some(cursors[11]));
}

#[tokio::test]
async fn events_older_than_the_ttl_are_never_returned() {
    let server = TestRedis::start();
    let store = store(&server, &[("BCAST_TTL_SECS", "1")]);
    let wp = account("wp", "ttl");
    let old = publish_n(&store, &wp, 2).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The key still exists until Redis expires it, but its events are past the TTL.
    let gone = store.read(&wp, None, None).await.unwrap();
    assert!(gone.events.is_empty());
    assert!(store.read(&wp, Some(old[0]), None).await.unwrap().missed);
    assert!(
        !store.read(&wp, Some(old[1]), None).await.unwrap().missed,
        "idle while nothing after the cursor was dropped"
    );

    let new = publish_n(&store, &wp, 1).await;
    let page = store.read(&wp, None, None).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].cursor, new[0]);
    assert!(store.read(&wp, Some(old[0]), None).await.unwrap().missed);
    assert!(!store.read(&wp, Some(old[1]), None).await.unwrap().missed);

    let mut conn = server.connection().await;
    let count: u64 = conn.zcard("bcast:wpttl").await.unwrap();
    assert_eq!(count, 1, "publish removed the aged-out events");

    // Let Redis expire the whole key: the metadata still knows what was lost.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let exists: bool = conn.exists("bcast:wpttl").await.unwrap();
    assert!(!exists);
    assert!(store.read(&wp, Some(old[1]), None).await.unwrap().missed);
    assert!(!store.read(&wp, Some(new[0]), None).await.unwrap().missed);
    publish_n(&store, &wp, 1).await;
    assert!(store.read(&wp, Some(old[1]), None).await.unwrap().missed);
    assert!(!store.read(&wp, Some(new[0]), None).await.unwrap().missed);
}

#[tokio::test]
async fn an_id_is_stored_once_within_the_ttl() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let wp = account("wp", "idem");
    let first = store
        .publish(vec![event(&wp, Some("order:1"), "{\"v\":1}")])
        .await
        .unwrap();
    assert!(!first[0].duplicate);
    let again = store
        .publish(vec![
            event(&wp, Some("order:1"), "{\"v\":2}"),
            event(&wp, Some("order:2"), "{\"v\":3}"),
            event(&wp, Some("order:2"), "{\"v\":4}"),
        ])
        .await
        .unwrap();
    assert!(again[0].duplicate);
    assert_eq!(
        again[0].cursor, first[0].cursor,
        "a duplicate returns the original cursor"
    );
    assert!(!again[1].duplicate);
    assert!(again[2].duplicate);
    assert_eq!(again[2].cursor, again[1].cursor);

    let page = store.read(&wp, None, None).await.unwrap();
    let data: Vec<&str> = page.events.iter().map(|e| e.data.get()).collect();
    assert_eq!(data, ["{\"v\":1}", "{\"v\":3}"]);
    assert_eq!(page.events[0].id, "order:1");
}

#[tokio::test]
async fn the_same_id_in_another_account_is_another_event() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let (a, b) = (account("wp", "a"), account("app", "a"));
    let r = store
        .publish(vec![
            event(&a, Some("x"), "1"),
            event(&b, Some("x"), "2"),
            event(&a, Some("y"), "3"),
        ])
        .await
        .unwrap();
    assert_eq!(
        r.iter()
            .map(|p| (p.key.as_str(), p.duplicate))
            .collect::<Vec<_>>(),
        [
            ("bcast:wpa", false),
            ("bcast:appa", false),
            ("bcast:wpa", false)
        ],
        "results in input order"
    );
    assert_eq!(store.read(&a, None, None).await.unwrap().events.len(), 2);
    assert_eq!(store.read(&b, None, None).await.unwrap().events.len(), 1);
}

#[tokio::test]
async fn limit_cuts_pages_and_more_says_so() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let wp = account("wp", "pages");
    let cursors = publish_n(&store, &wp, 10).await;
    let mut since = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.read(&wp, since, Some(3)).await.unwrap();
        pages += 1;
        assert!(page.events.len() <= 3);
        assert!(!page.missed);
        seen.extend(page.events.iter().map(|e| e.cursor));
        since = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, cursors);
    // Exactly a full page: `more` is false.
    let exact = store.read(&wp, Some(cursors[6]), Some(3)).await.unwrap();
    assert_eq!(exact.events.len(), 3);
    assert!(!exact.more);
}

#[tokio::test]
async fn concurrent_publishers_lose_and_duplicate_nothing() {
    let server = TestRedis::start();
    let store = store(&server, &[("BCAST_MAX_EVENTS", "2000")]);
    let wp = account("wp", "busy");
    let publishers: Vec<_> = (0..20)
        .map(|task| {
            let store = store.clone();
            let wp = wp.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let id = format!("t{task}-{i}");
                    store
                        .publish(vec![event(&wp, Some(&id), "{}")])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // A reader follows along with cursors while the publishers run.
    let reader = {
        let store = store.clone();
        let wp = wp.clone();
        tokio::spawn(async move {
            let mut since = None;
            let mut seen = Vec::new();
            while seen.len() < 1000 {
                let page = store.read(&wp, since, Some(37)).await.unwrap();
                assert!(!page.missed);
                seen.extend(page.events.into_iter().map(|e| (e.cursor, e.id)));
                since = page.cursor;
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for p in publishers {
        p.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("reader caught up")
        .unwrap();
    assert_eq!(seen.len(), 1000);
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "cursors strictly increase"
    );
    let ids: HashSet<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 1000, "no duplicates");
    for task in 0..20 {
        for i in 0..50 {
            assert!(ids.contains(format!("t{task}-{i}").as_str()));
        }
    }
    let all = store.read(&wp, None, Some(5000)).await.unwrap();
    assert_eq!(all.events.len(), 1000);
}

#[tokio::test]
async fn oversized_and_overfull_batches_store_nothing() {
    let server = TestRedis::start();
    let store = store(&server, &[("BCAST_MAX_EVENT_BYTES", "16")]);
    let wp = account("wp", "big");
    let err = store
        .publish(vec![
            event(&wp, None, "1"),
            event(&wp, None, "\"12345678901234567\""),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::TooLarge { index: 1, .. }),
        "{err:?}"
    );
    let many = (0..101).map(|_| event(&wp, None, "1")).collect();
    assert!(matches!(
        store.publish(many).await.unwrap_err(),
        PublishError::TooMany
    ));
    assert!(matches!(
        store.publish(vec![]).await.unwrap_err(),
        PublishError::Empty
    ));
    let mut conn = server.connection().await;
    let exists: bool = conn.exists("bcast:wpbig").await.unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn members_written_by_other_systems_are_still_read() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let wp = account("wp", "seed");
    let mut conn = server.connection().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let _: () = conn
        .zadd("bcast:wpseed", "{\"legacy\":true}", now)
        .await
        .unwrap();
    let _: () = conn
        .zadd("bcast:wpseed", "not json", now + 1)
        .await
        .unwrap();
    let ours = publish_n(&store, &wp, 1).await;
    let page = store.read(&wp, None, None).await.unwrap();
    assert_eq!(page.events.len(), 3);
    assert_eq!(page.events[0].data.get(), "{\"legacy\":true}");
    assert_eq!(page.events[1].data.get(), "\"not json\"");
    assert!(
        ours[0] > page.events[1].cursor,
        "our score stays above theirs"
    );
}

#[tokio::test]
async fn scripts_come_back_after_a_flush() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    let wp = account("wp", "flush");
    publish_n(&store, &wp, 1).await;
    server.script_flush();
    let cursors = publish_n(&store, &wp, 1).await;
    assert_eq!(
        store.read(&wp, None, None).await.unwrap().cursor,
        Some(cursors[0])
    );
}

#[tokio::test]
async fn publish_and_read_are_one_round_trip_each() {
    let server = TestRedis::start();
    let store = store(&server, &[]);
    store.load_scripts().await.unwrap();
    let (a, b) = (account("wp", "rt"), account("api", "rt"));
    // Warm the connection (and on a cluster, the slot map) before counting.
    store.read(&a, None, None).await.unwrap();
    server.reset_stats();

    let batch = (0..10)
        .map(|i| event(if i % 2 == 0 { &a } else { &b }, None, "1"))
        .collect();
    store.publish(batch).await.unwrap();
    let calls = server.command_calls();
    // Two accounts: two script calls, sent together in one pipeline (on a cluster, one call
    // per slot, side by side).
    assert_eq!(calls.get("evalsha"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("time"), Some(&2));
    assert_eq!(
        client_commands(&calls),
        2,
        "nothing else was sent: {calls:?}"
    );

    server.reset_stats();
    store.read(&a, None, None).await.unwrap();
    let calls = server.command_calls();
    assert_eq!(calls.get("evalsha"), Some(&1), "{calls:?}");
    assert_eq!(
        client_commands(&calls),
        1,
        "nothing else was sent: {calls:?}"
    );

    // A batch for one account is one call, however many events.
    server.reset_stats();
    store
        .publish((0..10).map(|_| event(&a, None, "1")).collect())
        .await
        .unwrap();
    let calls = server.command_calls();
    assert_eq!(calls.get("evalsha"), Some(&1), "{calls:?}");
    assert_eq!(
        client_commands(&calls),
        1,
        "nothing else was sent: {calls:?}"
    );
    assert_eq!(server.crossslot_errors(), 0);
}

#[tokio::test]
async fn missed_stays_exact_without_metadata_while_the_cursor_event_is_retained() {
    let server = TestRedis::start();
    let store = store(&server, &[("BCAST_MAX_EVENTS", "3")]);
    let wp = account("wp", "nometa");
    let cursors = publish_n(&store, &wp, 4).await;
    let mut conn = server.connection().await;
    let _: () = conn.del("{bcast:wpnometa}:meta").await.unwrap();
    // cursors[1] is still retained: nothing after it can have been lost.
    assert!(
        !store
            .read(&wp, Some(cursors[1]), None)
            .await
            .unwrap()
            .missed
    );
    // cursors[0] was trimmed and the metadata is gone: conservatively true.
    assert!(
        store
            .read(&wp, Some(cursors[0]), None)
            .await
            .unwrap()
            .missed
    );
}

#[tokio::test]
async fn a_page_stops_short_of_what_a_lambda_response_can_carry() {
    let server = TestRedis::start();
    let store = store(&server, &[("BCAST_MAX_EVENT_BYTES", "1048576")]);
    let wp = account("wp", "big");
    let data = format!("\"{}\"", "x".repeat(1024 * 1024 - 2));
    for _ in 0..3 {
        let batch = (0..2).map(|_| event(&wp, None, &data)).collect();
        store.publish(batch).await.unwrap();
    }
    let (mut since, mut seen, mut pages) = (None, 0, 0);
    loop {
        let page = store.read(&wp, since, None).await.unwrap();
        let bytes: usize = page.events.iter().map(|e| e.data.get().len()).sum();
        assert!(
            !page.events.is_empty() && bytes <= 2 * 1024 * 1024,
            "{bytes}"
        );
        seen += page.events.len();
        pages += 1;
        since = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, 6, "every event, across pages");
    assert!(pages > 1, "six 1 MiB events do not fit one page");
}
