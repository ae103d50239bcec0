//! Property test of everything that parses request input: bodies, cursors, limits, headers,
//! tokens, paths, SQS bodies and whole payloads. Arbitrary input gives a 4xx (or, when it
//! happens to be valid, a success), never a 5xx and never a panic.

mod common;

use common::{Reply, Request, Service};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::json;

/// Text that is often almost right: JSON fragments, cursor-like strings, unicode, controls.
fn fuzzy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,64}",
        "[A-Za-z0-9_-]{0,16}",
        r#"[\[\]{}",:0-9a-z ]{0,64}"#,
        Just("{\"events\":[]}".to_string()),
        Just("{\"client\":\"wp\",\"account_id\":\"1\",\"data\":".to_string()),
        Just("null".to_string()),
        Just("\u{0}\u{7f}\u{202e}".to_string()),
    ]
}

/// Header values as they can reach a function: API Gateway refuses control characters at the
/// edge (and `lambda_http` could not represent them).
fn header_text() -> impl Strategy<Value = String> {
    fuzzy_text().prop_map(|s| s.chars().filter(|c| !c.is_control()).collect())
}

fn run(cases: u32, strategy: impl Strategy<Value = Request>, function: &'static str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let service = Service::start(&[("RATE_LIMIT_PER_MIN", "1000000")]);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |request| {
            let reply = runtime.block_on(service.call(function, &request));
            prop_assert!(reply.status < 500, "{request:?} gave {reply:?}");
            reply.check_envelope();
            Ok(())
        })
        .unwrap();
}

#[test]
fn publish_bodies() {
    let body = prop_oneof![
        fuzzy_text(),
        (fuzzy_text(), fuzzy_text(), fuzzy_text()).prop_map(|(c, a, d)| {
            json!({"client": c, "account_id": a, "data": d, "id": a}).to_string()
        }),
        prop::collection::vec((fuzzy_text(), fuzzy_text()), 0..4).prop_map(|events| {
            let events: Vec<_> = events
                .into_iter()
                .map(|(c, a)| json!({"client": c, "account_id": a, "data": {"x": a}}))
                .collect();
            json!({ "events": events }).to_string()
        }),
    ];
    let content_type = prop_oneof![
        Just("application/json".to_string()),
        Just("application/problem+json; charset=utf-8".to_string()),
        "[ -~]{0,24}",
    ];
    let strategy = (body, content_type)
        .prop_map(|(body, ct)| Request::new("POST", "/publish").raw_body(&ct, &body));
    run(300, strategy, "publish");
}

#[test]
fn fetch_queries_and_keys() {
    let query = prop_oneof![
        fuzzy_text().prop_map(|s| format!("since={s}")),
        "[0-9-]{0,22}".prop_map(|s| format!("limit={s}")),
        "[%&=+a-z0-9]{0,40}",
    ];
    let key = prop_oneof![header_text(), "[A-Za-z0-9_-]{40,180}"];
    let strategy = (query, key, any::<bool>()).prop_map(|(q, key, scheme)| {
        let req = Request::new("GET", "/broadcasts");
        let req = Request { query: q, ..req };
        if scheme {
            req.bearer(&key)
        } else {
            req.header("authorization", &key)
        }
    });
    run(300, strategy, "fetch");
}

#[test]
fn heartbeat_bodies_and_presence_paths() {
    let heartbeat = (fuzzy_text(), header_text()).prop_map(|(body, key)| {
        Request::new("POST", "/heartbeat")
            .bearer(&key)
            .raw_body("application/json", &body)
    });
    let presence = (fuzzy_text(), fuzzy_text()).prop_map(|(c, a)| {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        Request::new("GET", &format!("/presence/{}/{}", enc(&c), enc(&a)))
    });
    run(300, prop_oneof![heartbeat, presence], "heartbeat");
}

#[test]
fn login_tokens() {
    let token = prop_oneof![
        header_text(),
        "[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{1,80}\\.[A-Za-z0-9_-]{0,60}",
        // A well-formed header with an arbitrary payload.
        fuzzy_text().prop_map(|p| {
            use base64::Engine;
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.c2ln",
                e.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
                e.encode(p)
            )
        }),
    ];
    let strategy = (token, prop_oneof![Just("/login"), Just("/logout")])
        .prop_map(|(t, path)| Request::new("POST", path).bearer(&t));
    run(300, strategy, "login");
}

#[test]
fn sqs_bodies_never_fail_their_neighbours() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let service = Service::start(&[]);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&fuzzy_text(), |body| {
            let event = json!({"Records": [
                {"messageId": "bad", "body": body, "eventSource": "aws:sqs"},
                {"messageId": "good", "body": "{\"client\":\"wp\",\"account_id\":\"1\",\"data\":1}",
                 "eventSource": "aws:sqs"}
            ]});
            let reply = runtime.block_on(service.invoke("publish", &event.to_string()));
            let failed = reply["batchItemFailures"].as_array().unwrap();
            prop_assert!(
                failed.iter().all(|f| f["itemIdentifier"] == "bad"),
                "{reply}"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn whole_payloads_and_paths() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let service = Service::start(&[]);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let strategy = (
        fuzzy_text(),
        "(/[a-z%0-9{}]{0,8}){0,4}",
        prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PATCH")],
        // Host headers, which lambda_http builds a URL from.
        prop_oneof![header_text(), "[a-z0-9.:\\[\\]-]{0,12}"],
    );
    runner
        .run(&strategy, |(payload, path, method, host)| {
            for function in ["login", "publish", "fetch", "heartbeat"] {
                // A payload that is not an event is refused, not a panic.
                let _ = runtime.block_on(service.invoke_raw(function, &payload));
                let request = Request {
                    method,
                    ..Request::new("GET", if path.is_empty() { "/" } else { &path })
                }
                .header("host", &host);
                let reply: Reply = runtime.block_on(service.call(function, &request));
                prop_assert!(reply.status < 500, "{request:?} gave {reply:?}");
                reply.check_envelope();
            }
            Ok(())
        })
        .unwrap();
}
