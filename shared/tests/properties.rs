//! Property tests: key validation, and the bounds every sequence of publishes keeps on a real
//! redis-server.

use std::collections::HashSet;

use bcast_shared::domain::NewEvent;
use bcast_shared::{Account, ClientNames, EventId};
use bcast_testing::{store, TestRedis};
use proptest::prelude::*;
use redis::AsyncCommands;
use serde_json::value::RawValue;

/// The text inside the first `{…}`: what Redis Cluster hashes.
fn hash_tag(key: &str) -> &str {
    match (key.find('{'), key.find('}')) {
        (Some(open), Some(close)) if close > open + 1 => &key[open + 1..close],
        _ => key,
    }
}

proptest! {
    #[test]
    fn valid_account_ids_are_accepted_and_share_one_slot(
        client in prop::sample::select(vec!["wp", "api", "app"]),
        id in "[A-Za-z0-9_-]{1,64}",
    ) {
        let account = Account::parse(&ClientNames::default(), client, &id).unwrap();
        let events = account.events_key();
        prop_assert_eq!(&events, &format!("bcast:{client}{id}"));
        // The events key has no braces, so Redis hashes all of it: the same text as every
        // companion key's tag.
        prop_assert_eq!(hash_tag(&events), events.as_str());
        for companion in [account.meta_key(), account.ids_key(), account.presence_key(),
                          account.generation_key(), account.used_tokens_key()] {
            prop_assert_eq!(hash_tag(&companion), events.as_str());
        }
    }

    #[test]
    fn ids_with_any_other_character_are_refused(
        prefix in "[A-Za-z0-9_-]{0,30}",
        bad in "[^A-Za-z0-9_-]",
        suffix in "[A-Za-z0-9_-]{0,30}",
    ) {
        let id = format!("{prefix}{bad}{suffix}");
        prop_assert!(Account::parse(&ClientNames::default(), "wp", &id).is_err());
    }

    #[test]
    fn too_long_ids_are_refused(id in "[a-z]{65,100}") {
        prop_assert!(Account::parse(&ClientNames::default(), "wp", &id).is_err());
    }

    #[test]
    fn distinct_accounts_never_share_a_key(
        a in (prop::sample::select(vec!["wp", "api", "app"]), "[a-z0-9]{1,6}"),
        b in (prop::sample::select(vec!["wp", "api", "app"]), "[a-z0-9]{1,6}"),
    ) {
        let clients = ClientNames::default();
        let ka = Account::parse(&clients, a.0, &a.1).unwrap();
        let kb = Account::parse(&clients, b.0, &b.1).unwrap();
        prop_assert_eq!(ka == kb, ka.events_key() == kb.events_key());
    }

    #[test]
    fn client_lists_are_accepted_exactly_when_no_name_prefixes_another(
        names in prop::collection::vec("[a-c]{1,3}", 1..5),
    ) {
        let prefixed = names.iter().enumerate().any(|(i, a)| {
            names.iter().enumerate().any(|(j, b)| i != j && b.starts_with(a.as_str()))
        });
        prop_assert_eq!(ClientNames::new(names.clone()).is_ok(), !prefixed);
    }

    #[test]
    fn event_ids_follow_the_spec(id in "[A-Za-z0-9_.:-]{1,128}", bad in "[^A-Za-z0-9_.:-]") {
        prop_assert!(EventId::parse(&id).is_ok());
        let with_bad = format!("{id}{bad}");
        prop_assert!(EventId::parse(&with_bad).is_err());
    }
}

/// One publish in a generated history: events with an id from a small pool (so duplicates
/// happen) or none.
fn batches() -> impl Strategy<Value = Vec<Vec<Option<u8>>>> {
    prop::collection::vec(prop::collection::vec(prop::option::of(0u8..6), 1..12), 1..8)
}

#[test]
fn any_publish_sequence_keeps_the_bounds() {
    let server = TestRedis::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    });
    runner
        .run(&(1u64..8, batches()), |(max_events, history)| {
            runtime.block_on(check_history(&server, max_events, history));
            Ok(())
        })
        .unwrap();
}

async fn check_history(server: &TestRedis, max_events: u64, history: Vec<Vec<Option<u8>>>) {
    server.flush_all();
    let mut conn = server.connection().await;
    let store = store(server, &[("BCAST_MAX_EVENTS", &max_events.to_string())]);
    let account = Account::parse(&ClientNames::default(), "app", "prop").unwrap();
    // Ids stored so far, in order: what the newest N must be.
    let mut stored: Vec<String> = Vec::new();
    let mut known: HashSet<String> = HashSet::new();
    for batch in history {
        let events = batch
            .iter()
            .map(|id| NewEvent {
                account: account.clone(),
                id: id.map(|i| EventId::parse(&format!("id{i}")).unwrap()),
                data: RawValue::from_string("{\"x\":1}".into()).unwrap(),
            })
            .collect();
        let results = store.publish(events).await.unwrap();
        for r in results {
            assert_eq!(
                r.duplicate,
                known.contains(&r.id),
                "duplicate flag for {}",
                r.id
            );
            if !r.duplicate {
                known.insert(r.id.clone());
                stored.push(r.id);
            }
        }

        let rows: Vec<(String, f64)> = conn
            .zrange_withscores("bcast:appprop", 0, -1)
            .await
            .unwrap();
        assert!(rows.len() as u64 <= max_events, "at most N events");
        assert!(
            rows.windows(2).all(|w| w[0].1 < w[1].1),
            "scores strictly increase"
        );
        let ids: Vec<String> = rows
            .iter()
            .map(|(m, _)| {
                let v: serde_json::Value = serde_json::from_str(m).unwrap();
                v["id"].as_str().unwrap().to_owned()
            })
            .collect();
        let keep = stored.len().saturating_sub(max_events as usize);
        assert_eq!(ids, stored[keep..], "the newest N in publish order");
        for key in [
            "bcast:appprop",
            "{bcast:appprop}:meta",
            "{bcast:appprop}:ids",
        ] {
            let ttl: i64 = conn.ttl(key).await.unwrap();
            assert!(ttl > 0 && ttl <= 7 * 24 * 3600, "TTL of {key} is {ttl}");
        }
        let ttl: i64 = conn.ttl("bcast:appprop").await.unwrap();
        assert!(ttl <= 600);
    }
}
