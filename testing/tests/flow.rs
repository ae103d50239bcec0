//! End to end through the four handlers and a real redis-server: login → publish (HTTP and SQS)
//! → fetch → heartbeat → rotation → reuse → revoke → logout, and every error of the spec's table.

mod common;

use std::time::Duration;

use common::{now_secs, Reply, Request, Service};
use serde_json::{json, Value};

async fn login(service: &Service, account: &str) -> String {
    let reply = service
        .call(
            "login",
            &Request::new("POST", "/login").bearer(&service.token("wp", account)),
        )
        .await
        .expect(201, None);
    reply.body["client_key"].as_str().unwrap().to_owned()
}

async fn fetch(service: &Service, key: &str, query: &str) -> Reply {
    service
        .call(
            "fetch",
            &Request::new("GET", &format!("/broadcasts{query}")).bearer(key),
        )
        .await
}

fn sqs(messages: &[(&str, &str)]) -> String {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": "r", "body": body, "attributes": {},
                   "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                   "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q", "awsRegion": "eu-west-1"})
        })
        .collect();
    json!({ "Records": records }).to_string()
}

#[tokio::test]
async fn the_whole_life_of_a_session() {
    let service = Service::start(&[]);

    // Login: 201 with everything a client needs.
    let token = service.token("wp", "42");
    let first = service
        .call("login", &Request::new("POST", "/login").bearer(&token))
        .await
        .expect(201, None);
    assert_eq!(first.body["client"], "wp");
    assert_eq!(first.body["account_id"], "42");
    assert_eq!(first.body["expires_in"], 3600);
    assert_eq!(first.body["heartbeat_interval"], 30);
    assert_eq!(first.body["cursor"], Value::Null);
    let mut key = first.body["client_key"].as_str().unwrap().to_owned();
    // A token with a jti is single-use.
    service
        .call("login", &Request::new("POST", "/login").bearer(&token))
        .await
        .expect(401, Some("unauthorized"));

    // Publish over HTTP (one, then a batch) and over SQS.
    let one = service
        .call(
            "publish",
            &Request::new("POST", "/publish")
                .json(&json!({"client": "wp", "account_id": "42", "id": "a", "data": {"n": 1}})),
        )
        .await
        .expect(200, None);
    assert_eq!(one.body["results"][0]["key"], "bcast:wp42");
    assert_eq!(one.body["results"][0]["id"], "a");
    assert_eq!(one.body["results"][0]["duplicate"], false);
    let batch = service
        .call(
            "publish",
            &Request::new("POST", "/publish").json(&json!({"events": [
                {"client": "wp", "account_id": "42", "id": "a", "data": {"n": 1}},
                {"client": "wp", "account_id": "42", "data": [2]},
                {"client": "app", "account_id": "42", "data": "elsewhere"}
            ]})),
        )
        .await
        .expect(200, None);
    assert_eq!(batch.body["results"][0]["duplicate"], true);
    assert_eq!(
        batch.body["results"][0]["cursor"],
        one.body["results"][0]["cursor"]
    );
    assert_eq!(batch.body["results"][2]["key"], "bcast:app42");
    let sqs_reply = service
        .invoke(
            "publish",
            &sqs(&[
                ("m-1", r#"{"client":"wp","account_id":"42","data":{"n":3}}"#),
                (
                    "m-2",
                    r#"{"events":[{"client":"wp","account_id":"42","data":{"n":4}}]}"#,
                ),
            ]),
        )
        .await;
    assert_eq!(sqs_reply["batchItemFailures"], json!([]));

    // Fetch: everything for wp/42 in order, and a new key.
    let page = fetch(&service, &key, "").await.expect(200, None);
    let data: Vec<&Value> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"])
        .collect();
    assert_eq!(
        data,
        [
            &json!({"n": 1}),
            &json!([2]),
            &json!({"n": 3}),
            &json!({"n": 4})
        ]
    );
    let ids: Vec<&str> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "a");
    assert_eq!(ids[2], "m-1", "an SQS message id is the idempotency id");
    assert_eq!(ids[3], "m-2:0");
    assert_eq!(page.body["more"], false);
    assert_eq!(page.body["missed"], false);
    assert!(page.body["events"][0]["ts"].as_f64().unwrap() > 1.7e9);
    let cursor = page.body["cursor"].as_str().unwrap().to_owned();
    assert_eq!(cursor, page.body["events"][3]["cursor"].as_str().unwrap());
    let next = page.body["client_key"].as_str().unwrap().to_owned();
    assert_ne!(next, key, "the key rotates");

    // Inside the grace period the old key answers with the same successor.
    let retry = fetch(&service, &key, "").await.expect(200, None);
    assert_eq!(retry.body["client_key"], next.as_str());
    key = next;

    // Nothing new after the cursor; limit and more.
    let after = fetch(&service, &key, &format!("?since={cursor}"))
        .await
        .expect(200, None);
    assert_eq!(after.body["events"], json!([]));
    assert_eq!(after.body["cursor"], cursor.as_str());
    key = after.body["client_key"].as_str().unwrap().to_owned();
    let limited = fetch(&service, &key, "?limit=1").await.expect(200, None);
    assert_eq!(limited.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(limited.body["more"], true);
    key = limited.body["client_key"].as_str().unwrap().to_owned();

    // Heartbeat: pending after a cursor.
    let first_cursor = page.body["events"][0]["cursor"].as_str().unwrap();
    let beat = service
        .call(
            "heartbeat",
            &Request::new("POST", "/heartbeat")
                .bearer(&key)
                .json(&json!({"cursor": first_cursor})),
        )
        .await
        .expect(200, None);
    assert_eq!(beat.body["pending"], 3);
    assert_eq!(beat.body["latest"], cursor.as_str());
    assert_eq!(beat.body["heartbeat_interval"], 30);
    let old = key.clone();
    key = beat.body["client_key"].as_str().unwrap().to_owned();
    let beat = service
        .call(
            "heartbeat",
            &Request::new("POST", "/heartbeat").bearer(&key),
        )
        .await
        .expect(200, None);
    assert_eq!(beat.body["pending"], 4, "no cursor: every retained event");
    let newest = beat.body["client_key"].as_str().unwrap().to_owned();

    // Presence sees the session.
    let presence = service
        .call("heartbeat", &Request::new("GET", "/presence/wp/42"))
        .await
        .expect(200, None);
    assert_eq!(presence.body["online"], 1);
    assert_eq!(presence.body["sessions"].as_array().unwrap().len(), 1);

    // Reuse: a key two rotations old is theft; the session dies with it.
    fetch(&service, &old, "")
        .await
        .expect(401, Some("client_key_reused"));
    fetch(&service, &newest, "")
        .await
        .expect(401, Some("client_key_invalid"));

    // Revoke every session of the account.
    let a = login(&service, "42").await;
    let b = login(&service, "42").await;
    service
        .call("login", &Request::new("DELETE", "/sessions/wp/42"))
        .await
        .expect(204, None);
    fetch(&service, &a, "")
        .await
        .expect(401, Some("client_key_invalid"));
    fetch(&service, &b, "")
        .await
        .expect(401, Some("client_key_invalid"));

    // Logout.
    let c = login(&service, "42").await;
    let c2 = fetch(&service, &c, "").await.expect(200, None).body["client_key"]
        .as_str()
        .unwrap()
        .to_owned();
    service
        .call("login", &Request::new("POST", "/logout").bearer(&c2))
        .await
        .expect(204, None);
    fetch(&service, &c2, "")
        .await
        .expect(401, Some("client_key_invalid"));
}

#[tokio::test]
async fn missed_events_are_reported() {
    let service = Service::start(&[("BCAST_MAX_EVENTS", "2")]);
    let key = login(&service, "7").await;
    let publish = |n: u32| {
        Request::new("POST", "/publish")
            .json(&json!({"client": "wp", "account_id": "7", "data": n}))
    };
    let first = service.call("publish", &publish(1)).await.expect(200, None);
    let cursor = first.body["results"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 2..=4 {
        service.call("publish", &publish(n)).await.expect(200, None);
    }
    let page = fetch(&service, &key, &format!("?since={cursor}"))
        .await
        .expect(200, None);
    assert_eq!(page.body["missed"], true);
    assert_eq!(page.body["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_error_of_the_table() {
    let service = Service::start(&[
        ("BCAST_MAX_EVENT_BYTES", "64"),
        ("RATE_LIMIT_PER_MIN", "3"),
        ("SESSION_MAX_AGE_SECS", "1"),
    ]);
    // 400 invalid_request: malformed JSON, bad cursor, bad id, too many events.
    service
        .call(
            "publish",
            &Request::new("POST", "/publish").raw_body("application/json", "{\"client\":"),
        )
        .await
        .expect(400, Some("invalid_request"));
    service
        .call(
            "publish",
            &Request::new("POST", "/publish")
                .json(&json!({"client": "wp", "account_id": "1", "data": 1, "id": "no spaces"})),
        )
        .await
        .expect(400, Some("invalid_request"));
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({"client": "wp", "account_id": "1", "data": 1}))
        .collect();
    service
        .call(
            "publish",
            &Request::new("POST", "/publish").json(&json!({ "events": too_many })),
        )
        .await
        .expect(400, Some("invalid_request"));
    // One bad event in a batch: nothing stored.
    service
        .call(
            "publish",
            &Request::new("POST", "/publish").json(&json!({"events": [
                {"client": "wp", "account_id": "1", "data": 1},
                {"client": "wp", "account_id": "bad id", "data": 2}
            ]})),
        )
        .await
        .expect(400, Some("invalid_request"));
    let account = bcast_shared::Account::parse(&service.config.clients, "wp", "1").unwrap();
    assert!(service
        .store
        .read(&account, None, None)
        .await
        .unwrap()
        .events
        .is_empty());

    // 401 unauthorized: no header, wrong scheme, expired or far-future or badly signed token.
    service
        .call("login", &Request::new("POST", "/login"))
        .await
        .expect(401, Some("unauthorized"));
    service
        .call(
            "login",
            &Request::new("POST", "/login").header("authorization", "Basic abc"),
        )
        .await
        .expect(401, Some("unauthorized"));
    let expired = bcast_login::mint(&service.secret, "wp", "1", now_secs() - 60, None).unwrap();
    service
        .call("login", &Request::new("POST", "/login").bearer(&expired))
        .await
        .expect(401, Some("unauthorized"));
    let too_long = bcast_login::mint(&service.secret, "wp", "1", now_secs() + 3600, None).unwrap();
    service
        .call("login", &Request::new("POST", "/login").bearer(&too_long))
        .await
        .expect(401, Some("unauthorized"));
    let forged = bcast_login::mint(&"x".repeat(32), "wp", "1", now_secs() + 60, None).unwrap();
    service
        .call("login", &Request::new("POST", "/login").bearer(&forged))
        .await
        .expect(401, Some("unauthorized"));
    let bad_client = bcast_login::mint(&service.secret, "tv", "1", now_secs() + 60, None).unwrap();
    service
        .call("login", &Request::new("POST", "/login").bearer(&bad_client))
        .await
        .expect(400, Some("invalid_request"));

    // A client key in the query string is refused under any name.
    let key_in_query = service.client_key("wp", "1").await;
    fetch(&service, &key_in_query, &format!("?k={key_in_query}"))
        .await
        .expect(400, Some("invalid_request"));

    // 401 client_key_invalid for a garbage key.
    fetch(&service, "garbage", "")
        .await
        .expect(401, Some("client_key_invalid"));

    // 413: the data of one event over the limit.
    service
        .call(
            "publish",
            &Request::new("POST", "/publish")
                .json(&json!({"client": "wp", "account_id": "1", "data": "x".repeat(100)})),
        )
        .await
        .expect(413, Some("payload_too_large"));
    // 413: a body over the limit.
    service
        .call(
            "heartbeat",
            &Request::new("POST", "/heartbeat").raw_body("application/json", &" ".repeat(20_000)),
        )
        .await
        .expect(413, Some("payload_too_large"));

    // 415: not JSON.
    service
        .call(
            "publish",
            &Request::new("POST", "/publish").raw_body("text/plain", "hi"),
        )
        .await
        .expect(415, Some("unsupported_media_type"));

    // 400: nesting too deep.
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    service
        .call(
            "publish",
            &Request::new("POST", "/publish").raw_body(
                "application/json",
                &format!("{{\"client\":\"wp\",\"account_id\":\"1\",\"data\":{deep}}}"),
            ),
        )
        .await
        .expect(400, Some("invalid_request"));

    // 429 with Retry-After once the session is over its rate.
    let key = login(&service, "1").await;
    let mut current = key;
    let mut limited = None;
    for _ in 0..5 {
        let reply = fetch(&service, &current, "").await;
        reply.check_envelope();
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        current = reply.body["client_key"].as_str().unwrap().to_owned();
    }
    let limited = limited
        .expect("rate limited")
        .expect(429, Some("rate_limited"));
    let retry: u64 = limited.headers["retry-after"].parse().unwrap();
    assert!((1..=60).contains(&retry));

    // 401 session_expired after the maximum age.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fetch(&service, &current, "")
        .await
        .expect(401, Some("session_expired"));

    // 404 and 405.
    service
        .call("fetch", &Request::new("GET", "/nope"))
        .await
        .expect(404, Some("not_found"));
    let wrong = service
        .call("fetch", &Request::new("POST", "/broadcasts"))
        .await
        .expect(405, None);
    assert_eq!(wrong.headers["allow"], "GET");
}

#[tokio::test]
async fn redis_down_is_a_clean_503() {
    let mut service = Service::start(&[
        ("REDIS_RESPONSE_TIMEOUT_MS", "300"),
        ("REDIS_CONNECT_TIMEOUT_MS", "300"),
    ]);
    let key = login(&service, "9").await;
    service.server.kill();
    let started = std::time::Instant::now();
    fetch(&service, &key, "")
        .await
        .expect(503, Some("unavailable"));
    service
        .call(
            "publish",
            &Request::new("POST", "/publish")
                .json(&json!({"client": "wp", "account_id": "9", "data": 1})),
        )
        .await
        .expect(503, Some("unavailable"));
    let sqs_reply = service
        .invoke(
            "publish",
            &sqs(&[("m-9", r#"{"client":"wp","account_id":"9","data":1}"#)]),
        )
        .await;
    assert_eq!(
        sqs_reply["batchItemFailures"][0]["itemIdentifier"], "m-9",
        "retried later, not lost"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
